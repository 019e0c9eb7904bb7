//! The site's peer channel in `orbit serve`: the listener for peer sites,
//! the client to them, the liveness prober, the lease runtime of the global
//! namespace (orbit-global) answering on that listener, and the views the
//! admin API shows.

use crate::config::Config;
use anyhow::{Context, Result};
use orbit_admin::sites::{LeaseEntry, LeasesRenderer, Site, SiteLeases, SitesRenderer};
use orbit_global::leases::{LeaseView, Sites};
use orbit_meta::MetaStore;
use orbit_peer::{PeerClient, PeerServer, Prober};
use orbit_tenancy::Directory;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The lease runtime, started before the namespace serves anything so its
/// hooks are installed first.
pub struct Leases {
    pub sites: Sites,
    client: Arc<PeerClient>,
}

/// Starts the lease runtime when peers are configured (none otherwise: a
/// lone site is home to every bucket and has nobody to grant leases to).
pub async fn start_leases(config: &Config, meta: Arc<dyn MetaStore>, directory: Directory) -> Result<Option<Leases>> {
    let peer_config = config.peer_config()?;
    if peer_config.peers.is_empty() {
        return Ok(None);
    }
    let client = Arc::new(PeerClient::new(&peer_config)?);
    let timing = config.leases.timing()?;
    let sites = Sites::start(orbit_site::SiteId::new(config.site.clone()), timing, client.clone(), meta, directory)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::info!(epoch = sites.table().home_epoch, "lease runtime started");
    Ok(Some(Leases { sites, client }))
}

/// What runs for the peer channel; dropped with `stop`.
pub struct Peering {
    pub renderer: SitesRenderer,
    pub leases: LeasesRenderer,
    server: Option<JoinHandle<std::io::Result<()>>>,
    prober: Option<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
}

fn entry(v: &LeaseView) -> LeaseEntry {
    LeaseEntry { lease: v.lease.clone(), site: v.site.clone(), bucket: v.bucket.clone(), prefix: v.prefix.clone() }
}

impl Peering {
    /// Start the listener, the prober and the lease timers when peers are
    /// configured; with none, only this site is shown and no port is opened
    /// (nothing could authenticate to it).
    pub async fn start(
        config: &Config,
        leases: Option<Leases>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self> {
        let peer_config = config.peer_config()?;
        let local_name = config.site.clone();
        let Some(Leases { sites, client }) = leases.filter(|_| !peer_config.peers.is_empty()) else {
            let renderer: SitesRenderer = Arc::new(move || vec![local_site(&local_name, None)]);
            let site = config.site.clone();
            let leases: LeasesRenderer = Arc::new(move || SiteLeases { site: site.clone(), ..Default::default() });
            return Ok(Self { renderer, leases, server: None, prober: None, ticker: None });
        };
        let listener = TcpListener::bind(config.peer_addr)
            .await
            .with_context(|| format!("cannot listen on {} (peer_addr)", config.peer_addr))?;
        let prober = Prober::new(client);
        let timeout = Duration::from_millis(config.peer_timeout_ms);
        let probing = prober.start(Duration::from_millis(config.peer_probe_interval_ms), timeout);
        let server = PeerServer::new(&peer_config, sites.peer_handler()).with_data(sites.data_handler());
        let serving = tokio::spawn(server.serve(listener, shutdown));
        let ticker = sites.spawn_ticker();
        let leases: LeasesRenderer = Arc::new(move || {
            let t = sites.table();
            SiteLeases {
                site: t.site,
                home_epoch: t.home_epoch,
                granted: t.granted.iter().map(entry).collect(),
                held: t.held.iter().map(entry).collect(),
            }
        });
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
        Ok(Self { renderer, leases, server: Some(serving), prober: Some(probing), ticker: Some(ticker) })
    }

    /// Stop probing and wait for the listener to finish in-flight requests.
    pub async fn stop(self) {
        if let Some(p) = self.prober {
            p.abort();
        }
        if let Some(t) = self.ticker {
            t.abort();
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
