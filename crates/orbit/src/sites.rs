//! The site's peer channel in `orbit serve`: the listener for peer sites,
//! the client to them, the liveness prober, and the view the admin API shows.

use crate::config::Config;
use anyhow::{Context, Result};
use orbit_admin::sites::{Site, SitesRenderer};
use orbit_peer::{LivenessHandler, PeerClient, PeerServer, Prober};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What runs for the peer channel; dropped with `stop`.
pub struct Peering {
    pub renderer: SitesRenderer,
    server: Option<JoinHandle<std::io::Result<()>>>,
    prober: Option<JoinHandle<()>>,
}

impl Peering {
    /// Start the listener and the prober when peers are configured; with
    /// none, only this site is shown and no port is opened (nothing could
    /// authenticate to it).
    pub async fn start(config: &Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<Self> {
        let peer_config = config.peer_config()?;
        let local_name = config.site.clone();
        if peer_config.peers.is_empty() {
            let renderer: SitesRenderer = Arc::new(move || vec![local_site(&local_name, None)]);
            return Ok(Self { renderer, server: None, prober: None });
        }
        let listener = TcpListener::bind(config.peer_addr)
            .await
            .with_context(|| format!("cannot listen on {} (peer_addr)", config.peer_addr))?;
        let client = Arc::new(PeerClient::new(&peer_config)?);
        let prober = Prober::new(client);
        let timeout = Duration::from_millis(config.peer_timeout_ms);
        let probing = prober.start(Duration::from_millis(config.peer_probe_interval_ms), timeout);
        // The lease state machines replace this handler in the next step.
        let server = PeerServer::new(&peer_config, Arc::new(LivenessHandler));
        let serving = tokio::spawn(server.serve(listener, shutdown));
        let own_url = format!("http://{}", config.peer_addr);
        let renderer: SitesRenderer = Arc::new(move || {
            let snap = prober.snapshot();
            let mut sites = vec![local_site(&local_name, Some(own_url.clone()))];
            sites.extend(snap.peers.into_iter().map(|p| Site {
                name: p.name.0,
                local: false,
                url: Some(p.url),
                reachable: p.reachable,
                rtt_ms: p.last_rtt.map(|d| d.as_secs_f64() * 1000.0),
                last_error: p.last_error,
                protocol_version: p.protocol_version,
                last_probe_ms: p.last_probe_ms,
                last_seen_ms: p.last_seen_ms,
            }));
            sites
        });
        tracing::info!(peer = %config.peer_addr, peers = peer_config.peers.len(), "peer listener up");
        Ok(Self { renderer, server: Some(serving), prober: Some(probing) })
    }

    /// Stop probing and wait for the listener to finish in-flight requests.
    pub async fn stop(self) {
        if let Some(p) = self.prober {
            p.abort();
        }
        if let Some(s) = self.server {
            let _ = s.await;
        }
    }
}

fn local_site(name: &str, url: Option<String>) -> Site {
    Site {
        name: name.to_owned(),
        local: true,
        url,
        reachable: true,
        rtt_ms: None,
        last_error: None,
        protocol_version: Some(orbit_site::PROTOCOL_VERSION),
        last_probe_ms: None,
        last_seen_ms: None,
    }
}
