//! The site's peer handler: one entry point for every verified envelope,
//! dispatching by message family, so the directory and the lease protocol
//! each handle their own messages.

use crate::directory::DirectoryAuthority;
use async_trait::async_trait;
use orbit_peer::{PeerHandler, Reply};
use orbit_site::{Message, Refusal, SiteId};
use std::sync::Arc;

/// Answers `Ping`, gives directory messages to the directory authority (at
/// the directory site; elsewhere they are refused as not implemented) and
/// everything else to the lease handler it is given.
pub struct PeerRouter {
    directory: Option<Arc<DirectoryAuthority>>,
    leases: Arc<dyn PeerHandler>,
}

impl PeerRouter {
    pub fn new(leases: Arc<dyn PeerHandler>) -> Self {
        Self { directory: None, leases }
    }

    /// This site is the directory site: serve the directory to peers.
    pub fn with_directory(mut self, authority: Arc<DirectoryAuthority>) -> Self {
        self.directory = Some(authority);
        self
    }
}

fn is_directory_message(m: &Message) -> bool {
    matches!(
        m,
        Message::DirectoryPull { .. }
            | Message::DirectoryUnchanged { .. }
            | Message::DirectorySnapshot { .. }
            | Message::DirectoryCreateBucket { .. }
            | Message::DirectoryDeleteBucket { .. }
            | Message::DirectoryBucketDone { .. }
            | Message::DirectoryBucketRefused { .. }
    )
}

#[async_trait]
impl PeerHandler for PeerRouter {
    async fn handle(&self, from: SiteId, message: Message) -> Reply {
        if let Message::Ping { req } = message {
            return Ok(Some(Message::Pong { req }));
        }
        if is_directory_message(&message) {
            let Some(d) = &self.directory else { return Err(Refusal::NotImplemented) };
            return d.handle(&from, message).await.unwrap_or(Err(Refusal::NotImplemented));
        }
        self.leases.handle(from, message).await
    }
}
