//! Liveness of the peers: a `Ping` to each every few seconds over the peer
//! channel, keeping the last outcome for the admin API.

use crate::client::PeerClient;
use orbit_site::{Message, PROTOCOL_VERSION, RequestId, SiteId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What this site last learnt about a peer.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStatus {
    pub name: SiteId,
    pub url: String,
    /// Whether the last probe got a `Pong`.
    pub reachable: bool,
    /// Round trip of the last successful probe.
    pub last_rtt: Option<Duration>,
    /// Why the last probe failed, if it did.
    pub last_error: Option<String>,
    /// The protocol version the peer answered with.
    pub protocol_version: Option<u32>,
    /// When the last probe ended (ms since the epoch).
    pub last_probe_ms: Option<i64>,
    /// When the peer last answered (ms since the epoch).
    pub last_seen_ms: Option<i64>,
}

/// This site and its peers, as the admin API shows them.
#[derive(Clone, Debug)]
pub struct SitesSnapshot {
    pub site: SiteId,
    pub protocol_version: u32,
    pub peers: Vec<PeerStatus>,
}

pub struct Prober {
    client: Arc<PeerClient>,
    state: RwLock<BTreeMap<SiteId, PeerStatus>>,
    next_req: AtomicU64,
}

impl Prober {
    pub fn new(client: Arc<PeerClient>) -> Arc<Self> {
        let state = client
            .peers()
            .map(|(name, url)| {
                let status = PeerStatus {
                    name: name.clone(),
                    url: url.to_owned(),
                    reachable: false,
                    last_rtt: None,
                    last_error: None,
                    protocol_version: None,
                    last_probe_ms: None,
                    last_seen_ms: None,
                };
                (name.clone(), status)
            })
            .collect();
        Arc::new(Self { client, state: RwLock::new(state), next_req: AtomicU64::new(1) })
    }

    pub fn snapshot(&self) -> SitesSnapshot {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        SitesSnapshot {
            site: self.client.site().clone(),
            protocol_version: PROTOCOL_VERSION,
            peers: state.values().cloned().collect(),
        }
    }

    /// Probe every peer once, concurrently, each bounded by `timeout`.
    pub async fn probe_all(&self, timeout: Duration) {
        let names: Vec<SiteId> = self.state.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        futures::future::join_all(names.iter().map(|n| self.probe(n, timeout))).await;
    }

    async fn probe(&self, peer: &SiteId, timeout: Duration) {
        let req = RequestId(self.next_req.fetch_add(1, Ordering::Relaxed));
        let started = Instant::now();
        let result = self.client.send(peer, Message::Ping { req }, timeout).await;
        let rtt = started.elapsed();
        let now = orbit_types::now_ms();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let Some(s) = state.get_mut(peer) else { return };
        s.last_probe_ms = Some(now);
        match result {
            Ok(Some(env)) if env.message == (Message::Pong { req }) => {
                s.reachable = true;
                s.last_rtt = Some(rtt);
                s.last_error = None;
                s.protocol_version = Some(env.version);
                s.last_seen_ms = Some(now);
            }
            Ok(other) => {
                s.reachable = false;
                s.last_error = Some(format!("unexpected answer to Ping: {other:?}"));
            }
            Err(e) => {
                if s.reachable {
                    tracing::warn!(peer = %peer, error = %e, "peer site became unreachable");
                }
                s.reachable = false;
                s.last_error = Some(e.to_string());
                if let crate::PeerError::Refused(orbit_site::Refusal::UnsupportedVersion { supported }) = e {
                    s.protocol_version = Some(supported);
                }
            }
        }
    }

    /// Probe every `interval` until the task is aborted.
    pub fn start(self: &Arc<Self>, interval: Duration, timeout: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                me.probe_all(timeout).await;
                tokio::time::sleep(interval).await;
            }
        })
    }
}
