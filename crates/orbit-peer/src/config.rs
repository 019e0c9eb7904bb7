//! Who this site is and which peers it talks to, with the secret of each pair.

use orbit_site::SiteId;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// One peer site: where its peer listener is and the secret the pair shares.
#[derive(Clone)]
pub struct PeerSpec {
    /// Base URL of the peer's listener, e.g. `http://10.0.0.2:9002`.
    pub url: String,
    pub secret: String,
}

// The secret must never reach a log line through `{:?}`.
impl fmt::Debug for PeerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerSpec").field("url", &self.url).field("secret", &"<redacted>").finish()
    }
}

/// The peer side of a site's configuration. Timeouts are explicit so the
/// lease code above can choose them per message kind.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    pub site: SiteId,
    pub peers: BTreeMap<SiteId, PeerSpec>,
    /// How long to wait for a TCP connection to a peer.
    pub connect_timeout: Duration,
    /// How far a request's timestamp may be from this site's clock; older
    /// (replayed) or future-dated requests are refused.
    pub max_skew: Duration,
}

impl PeerConfig {
    pub fn new(site: SiteId) -> Self {
        Self {
            site,
            peers: BTreeMap::new(),
            connect_timeout: Duration::from_secs(2),
            max_skew: Duration::from_secs(crate::auth::PEER_MAX_SKEW_SECS as u64),
        }
    }

    pub fn with_peer(mut self, name: SiteId, url: impl Into<String>, secret: impl Into<String>) -> Self {
        self.peers.insert(name, PeerSpec { url: url.into().trim_end_matches('/').to_owned(), secret: secret.into() });
        self
    }
}
