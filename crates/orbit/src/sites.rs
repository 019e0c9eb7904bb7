//! The site's peer channel in `orbit serve`: the listener for peer sites,
//! the client to them, the liveness prober, the directory (served here or
//! mirrored from the directory site), the lease runtime of the global
//! namespace (orbit-global) answering on that listener, and the views the
//! admin API shows.

use crate::config::Config;
use anyhow::{Context, Result};
use orbit_admin::directory::{DirectoryRenderer, DirectoryStatus};
use orbit_admin::sites::{
    AcquireWriteLease, LeaseEntry, LeasesRenderer, LostWritesEntry, RevokeOutcome, Site, SiteLeases, SitesRenderer,
    WriteLeaseControl, WriteLeaseEntry, WriteLeases,
};
use orbit_core::Namespace;
use orbit_global::PeerRouter;
use orbit_global::directory::{DirectoryAuthority, DirectorySiteBuckets, Mirror, PeerChannel, VersionedStore};
use orbit_global::leases::{LeaseView, Sites};
use orbit_meta::MetaStore;
use orbit_peer::{PeerClient, PeerServer, Prober};
use orbit_site::SiteId;
use orbit_tenancy::Directory;
use orbit_types::Error;
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
    pub directory: DirectoryRenderer,
    pub leases: LeasesRenderer,
    /// The write-lease operations (none without peers).
    pub write_leases: Option<orbit_admin::sites::WriteLeaseControlRef>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    prober: Option<JoinHandle<()>>,
    mirror: Option<JoinHandle<()>>,
    ticker: Option<JoinHandle<()>>,
}

/// The parts of the site the directory is served from or mirrored into.
pub struct SiteParts {
    pub meta: Arc<dyn MetaStore>,
    /// The directory site's change-counting store (None elsewhere).
    pub versioned: Option<Arc<VersionedStore>>,
    pub directory: Directory,
    pub namespace: Namespace,
}

fn entry(v: &LeaseView) -> LeaseEntry {
    LeaseEntry { lease: v.lease.clone(), site: v.site.clone(), bucket: v.bucket.clone(), prefix: v.prefix.clone() }
}

impl Peering {
    /// Start the listener, the prober, the directory and the lease timers
    /// when peers are configured; with none, only this site is shown, no
    /// port is opened (nothing could authenticate to it), and the site is its
    /// own directory.
    pub async fn start(
        config: &Config,
        parts: SiteParts,
        leases: Option<Leases>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self> {
        let peer_config = config.peer_config()?;
        let local_name = config.site.clone();
        let Some(Leases { sites, client }) = leases.filter(|_| !peer_config.peers.is_empty()) else {
            let renderer: SitesRenderer = Arc::new(move || vec![local_site(&local_name, None)]);
            let site = config.site.clone();
            let shown = site.clone();
            let directory: DirectoryRenderer = Arc::new(move || DirectoryStatus {
                directory_site: shown.clone(),
                site: shown.clone(),
                is_directory_site: true,
                ..Default::default()
            });
            let leases: LeasesRenderer = Arc::new(move || SiteLeases { site: site.clone(), ..Default::default() });
            return Ok(Self {
                renderer,
                directory,
                leases,
                write_leases: None,
                server: None,
                prober: None,
                mirror: None,
                ticker: None,
            });
        };
        let listener = TcpListener::bind(config.peer_addr)
            .await
            .with_context(|| format!("cannot listen on {} (peer_addr)", config.peer_addr))?;
        let prober = Prober::new(client.clone());
        let timeout = Duration::from_millis(config.peer_timeout_ms);
        let probing = prober.start(Duration::from_millis(config.peer_probe_interval_ms), timeout);
        let mut router = PeerRouter::new(sites.peer_handler());
        let (control_directory, control_namespace) = (parts.directory.clone(), parts.namespace.clone());
        let (directory, mirror, authority) = wire_directory(config, parts, &client).await?;
        if let Some(a) = authority {
            router = router.with_directory(a);
        }
        let server = PeerServer::new(&peer_config, Arc::new(router)).with_data(sites.data_handler());
        let serving = tokio::spawn(server.serve(listener, shutdown));
        let ticker = sites.spawn_ticker();
        let write_leases: orbit_admin::sites::WriteLeaseControlRef = Arc::new(WriteLeaseAdmin {
            sites: sites.clone(),
            directory: control_directory,
            namespace: control_namespace,
        });
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
        Ok(Self {
            renderer,
            directory,
            leases,
            write_leases: Some(write_leases),
            server: Some(serving),
            prober: Some(probing),
            mirror,
            ticker: Some(ticker),
        })
    }

    /// Stop probing and wait for the listener to finish in-flight requests.
    pub async fn stop(self) {
        if let Some(p) = self.prober {
            p.abort();
        }
        if let Some(m) = self.mirror {
            m.abort();
        }
        if let Some(t) = self.ticker {
            t.abort();
        }
        if let Some(s) = self.server {
            let _ = s.await;
        }
    }
}

/// Serve the directory (at the directory site) or mirror it (elsewhere).
async fn wire_directory(
    config: &Config,
    parts: SiteParts,
    client: &Arc<PeerClient>,
) -> Result<(DirectoryRenderer, Option<JoinHandle<()>>, Option<Arc<DirectoryAuthority>>)> {
    let site = config.site.clone();
    let directory_site = config.directory_site().to_owned();
    let peers: Vec<String> = config.peers.keys().cloned().collect();
    if directory_site == site {
        let versioned = parts.versioned.context("the directory site needs its change-counting store")?;
        let authority = Arc::new(DirectoryAuthority::new(
            SiteId::new(site.clone()),
            versioned,
            parts.directory,
            parts.namespace.clone(),
        ));
        parts.namespace.set_bucket_directory(Arc::new(DirectorySiteBuckets::new(site.clone(), peers)));
        let shown = authority.clone();
        let renderer: DirectoryRenderer = Arc::new(move || DirectoryStatus {
            directory_site: site.clone(),
            site: site.clone(),
            is_directory_site: true,
            version: Some(shown.version().to_string()),
            ..Default::default()
        });
        return Ok((renderer, None, Some(authority)));
    }
    let channel = Arc::new(PeerChannel::new(
        client.clone(),
        SiteId::new(directory_site.clone()),
        Duration::from_millis(config.peer_timeout_ms),
    ));
    let mirror = Mirror::new(
        SiteId::new(site.clone()),
        SiteId::new(directory_site.clone()),
        peers,
        channel,
        parts.meta,
        parts.directory,
        parts.namespace,
    );
    mirror.install();
    // A first copy before serving; failing it, the site serves what it has.
    match mirror.pull().await {
        Ok(outcome) => tracing::info!(directory_site = %directory_site, ?outcome, "directory mirrored"),
        Err(e) => tracing::warn!(directory_site = %directory_site, error = %e, "directory not mirrored at start"),
    }
    let task = mirror.spawn(Duration::from_millis(config.directory_pull_interval_ms));
    let renderer: DirectoryRenderer = Arc::new(move || {
        let s = mirror.status();
        DirectoryStatus {
            directory_site: s.directory_site,
            site: site.clone(),
            is_directory_site: false,
            version: s.version.map(|v| v.to_string()),
            last_sync_ms: s.last_sync_ms,
            lag_ms: s.lag.map(|d| d.as_millis() as u64),
            records_mirrored: s.records_mirrored,
            syncs_ok: s.syncs_ok,
            syncs_failed: s.syncs_failed,
            last_error: s.last_error,
        }
    });
    Ok((renderer, Some(task), None))
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

/// The admin API's write-lease operations over the lease runtime.
struct WriteLeaseAdmin {
    sites: Sites,
    directory: Directory,
    namespace: Namespace,
}

fn write_lease_entry(v: orbit_global::leases::WriteLeaseView) -> WriteLeaseEntry {
    WriteLeaseEntry {
        lease: v.lease,
        site: v.site,
        tenant: v.tenant,
        bucket: v.bucket,
        prefix: v.prefix,
        unflushed: v.unflushed,
        flushed_upto: v.flushed_upto,
        state: v.state,
    }
}

#[async_trait::async_trait]
impl WriteLeaseControl for WriteLeaseAdmin {
    fn table(&self) -> WriteLeases {
        let t = self.sites.write_leases();
        WriteLeases {
            site: t.site,
            held: t.held.into_iter().map(write_lease_entry).collect(),
            granted: t.granted.into_iter().map(write_lease_entry).collect(),
            lost: t.lost.into_iter().map(|l| LostWritesEntry { lease: l.lease, home: l.home, keys: l.keys }).collect(),
        }
    }

    async fn acquire(&self, req: AcquireWriteLease) -> Result<WriteLeaseEntry, Error> {
        let name = orbit_types::TenantName::new(&req.tenant).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let tenant = self.directory.tenant_by_name(&name).await?;
        let bucket = self.namespace.bucket_record(tenant.id, &req.bucket, None).await?;
        let wait = Duration::from_millis(req.wait_ms.unwrap_or(30_000).min(600_000));
        let mut view = self.sites.acquire_write_lease(&bucket, &req.prefix, wait).await?;
        view.tenant = req.tenant;
        view.bucket = req.bucket;
        Ok(write_lease_entry(view))
    }

    async fn release(&self, lease: &str, wait: Duration) -> Result<bool, Error> {
        self.sites.release_write_lease(lease, wait).await
    }

    async fn revoke(&self, lease: &str) -> Result<RevokeOutcome, Error> {
        let s = self.sites.revoke_write_lease(lease).await?;
        let statement = format!(
            "write lease {} of site `{}` on prefix `{}` revoked: every write `{}` acknowledged under it after \
             sequence number {} was never applied here and is lost",
            s.lease, s.holder, s.scope.prefix, s.holder, s.lost_after
        );
        Ok(RevokeOutcome {
            lease: s.lease.to_string(),
            holder: s.holder.0,
            bucket: s.scope.bucket.to_string(),
            prefix: s.scope.prefix,
            lost_after: s.lost_after,
            statement,
        })
    }

    async fn recall(&self, lease: &str) -> Result<(), Error> {
        self.sites.recall_write_lease(lease)
    }
}
