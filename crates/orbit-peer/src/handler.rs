//! What a site does with a verified envelope.

use async_trait::async_trait;
use orbit_site::{Message, Refusal, SiteId};

/// A handler's answer: a message to send back, nothing (a one-way message
/// such as `ReleaseLease`), or a refusal the sender receives typed.
pub type Reply = Result<Option<Message>, Refusal>;

/// Receives every envelope that passed authentication and the version
/// check. The lease state machines plug in here.
#[async_trait]
pub trait PeerHandler: Send + Sync + 'static {
    async fn handle(&self, from: SiteId, message: Message) -> Reply;
}

/// Answers `Ping` and refuses everything else as not implemented: the
/// handler of a site whose lease protocol is not wired yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct LivenessHandler;

#[async_trait]
impl PeerHandler for LivenessHandler {
    async fn handle(&self, _from: SiteId, message: Message) -> Reply {
        match message {
            Message::Ping { req } => Ok(Some(Message::Pong { req })),
            _ => Err(Refusal::NotImplemented),
        }
    }
}
