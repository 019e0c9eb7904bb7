//! `orbit serve`: wire the components together and run until a signal.

use crate::config::{BackendKind, Config, NamedBackend, StoreKind, backend_env};
use anyhow::{Context, Result, bail};
use orbit_backend::{AzureOptions, Backend, BackendSet, GcsOptions, MeteredBackend, ObjectStoreBackend, S3Options};
use orbit_cache::{CacheConfig, CachePool, ChunkCache, PinnedStore};
use orbit_core::{AdminService, Namespace, Prefetcher};
use orbit_meta::{MetaStore, RedbStore};
use orbit_s3::{S3Server, S3ServerConfig};
use orbit_tenancy::{Directory, MasterKey};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub const ROOT_CREDENTIALS_FILE: &str = "root-credentials.json";

#[derive(Serialize, Deserialize)]
pub struct RootCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Write a file readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn master_key(config: &Config) -> Result<MasterKey> {
    if let Ok(text) = std::env::var("ORBIT_MASTER_KEY") {
        return MasterKey::from_base64(&text).map_err(|e| anyhow::anyhow!("ORBIT_MASTER_KEY: {e}"));
    }
    let path = config.master_key_file.clone().unwrap_or_else(|| config.data_dir.join("master.key"));
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read the master key {}", path.display()))?;
        return MasterKey::from_base64(&text).map_err(|e| anyhow::anyhow!("master key file {}: {e}", path.display()));
    }
    if config.master_key_file.is_some() {
        bail!("config field `master_key_file`: {} does not exist", path.display());
    }
    let (key, text) = MasterKey::generate();
    write_private(&path, text.as_bytes())?;
    tracing::info!(path = %path.display(), "generated a master key for sealing secrets; keep it with the data directory, or supply ORBIT_MASTER_KEY");
    Ok(key)
}

/// Make sure an operator credential exists: from the environment when set,
/// else generated once, stored in the data directory and printed.
async fn bootstrap_operator(dir: &Directory, config: &Config) -> Result<()> {
    let env_key = std::env::var("ORBIT_ROOT_ACCESS_KEY").ok().filter(|s| !s.is_empty());
    let env_secret = std::env::var("ORBIT_ROOT_SECRET_KEY").ok().filter(|s| !s.is_empty());
    match (env_key, env_secret) {
        (Some(key), Some(secret)) => {
            dir.ensure_operator_key(&key, &secret).await.map_err(|e| anyhow::anyhow!("ORBIT_ROOT_ACCESS_KEY: {e}"))?;
            tracing::info!(access_key_id = %key, "operator credential taken from ORBIT_ROOT_ACCESS_KEY");
        }
        (Some(_), None) | (None, Some(_)) => {
            bail!("set both ORBIT_ROOT_ACCESS_KEY and ORBIT_ROOT_SECRET_KEY, or neither")
        }
        (None, None) => {
            if dir.has_operator_key().await? {
                return Ok(());
            }
            let creds = RootCredentials {
                access_key_id: orbit_tenancy::generate_access_key_id(),
                secret_access_key: orbit_tenancy::generate_secret(),
            };
            dir.ensure_operator_key(&creds.access_key_id, &creds.secret_access_key).await?;
            let path = config.data_dir.join(ROOT_CREDENTIALS_FILE);
            write_private(&path, &serde_json::to_vec_pretty(&creds)?)?;
            println!("Generated the bootstrap operator credential (also saved to {}):", path.display());
            println!("  access key id:     {}", creds.access_key_id);
            println!("  secret access key: {}", creds.secret_access_key);
        }
    }
    Ok(())
}

fn named_backend(name: &str, b: &NamedBackend) -> Result<Arc<dyn Backend>> {
    let env = |what: &str| std::env::var(backend_env(name, what)).ok().filter(|v| !v.is_empty());
    let built = match b.clone() {
        NamedBackend::S3 {
            endpoint,
            bucket,
            region,
            prefix,
            allow_http,
            virtual_hosted_style,
            access_key_id,
            secret_access_key,
        } => {
            let opts = S3Options {
                endpoint,
                bucket,
                region,
                access_key_id: access_key_id.or_else(|| env("ACCESS_KEY_ID")),
                secret_access_key: secret_access_key.or_else(|| env("SECRET_ACCESS_KEY")),
                allow_http,
                virtual_hosted_style,
            };
            ObjectStoreBackend::s3(&opts, prefix.as_deref())
        }
        NamedBackend::Gcs { bucket, prefix, service_account_path } => {
            ObjectStoreBackend::gcs(&GcsOptions { bucket, service_account_path }, prefix.as_deref())
        }
        NamedBackend::Azure { account, container, prefix, access_key, endpoint, allow_http } => {
            let opts = AzureOptions {
                account,
                container,
                access_key: access_key.or_else(|| env("ACCESS_KEY")),
                endpoint,
                allow_http,
            };
            ObjectStoreBackend::azure(&opts, prefix.as_deref())
        }
        NamedBackend::Local { path } => ObjectStoreBackend::local(&path),
    };
    Ok(Arc::new(built.map_err(|e| anyhow::anyhow!("config table `backends.{name}`: {e}"))?))
}

pub async fn run(config: Config) -> Result<()> {
    config.validate()?;
    // Missing or short peer secrets are refused before anything starts.
    config.peer_config()?;
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot set up metrics: {e}"))?;
    // Histogram samples pile up until upkeep folds them in; without it a
    // server nobody scrapes would grow without bound.
    let upkeep = prometheus.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;

    let meta: Arc<dyn MetaStore> = match config.metadata.store {
        StoreKind::Embedded => {
            let path = config.data_dir.join("meta.redb");
            Arc::new(RedbStore::open(&path).map_err(|e| anyhow::anyhow!("metadata store {}: {e}", path.display()))?)
        }
        StoreKind::Memory => Arc::new(orbit_meta::MemoryStore::new()),
    };
    // The directory site of a multi-site deployment counts every change to
    // directory records, so mirrors' polls are cheap; wrapped before anything
    // else holds the store, so no write escapes the count.
    let versioned = (!config.peers.is_empty() && config.directory_site() == config.site)
        .then(|| orbit_global::directory::VersionedStore::new(meta.clone()));
    let meta: Arc<dyn MetaStore> = match &versioned {
        Some(v) => v.clone(),
        None => meta,
    };
    let default: Arc<dyn Backend> = match config.backends.get(BackendSet::DEFAULT) {
        Some(b) => named_backend(BackendSet::DEFAULT, b)?,
        None => match config.backend.kind {
            BackendKind::Local => Arc::new(ObjectStoreBackend::local(&config.backend_root())?),
            BackendKind::Memory => Arc::new(ObjectStoreBackend::memory()),
        },
    };
    let metered = |name: &str, b: Arc<dyn Backend>| -> Arc<dyn Backend> { Arc::new(MeteredBackend::new(name, b)) };
    let mut backends = BackendSet::new(metered(BackendSet::DEFAULT, default));
    for (name, b) in config.backends.iter().filter(|(n, _)| n.as_str() != BackendSet::DEFAULT) {
        backends = backends.with(name.clone(), metered(name, named_backend(name, b)?));
    }
    // Writes this site acknowledges under a write lease wait on its own disk
    // until they are applied at the bucket's home site.
    if !config.peers.is_empty() {
        let held = ObjectStoreBackend::local(&config.data_dir.join("held-writes"))?;
        backends = backends.with(orbit_global::leases::HELD_BACKEND, Arc::new(held));
    }
    let directory = Directory::new(meta.clone(), master_key(&config)?);
    directory.check_master_key().await?;
    bootstrap_operator(&directory, &config).await?;
    directory.qos().load().await?;

    let mut namespace = Namespace::new(meta.clone(), backends, config.site.clone());
    if config.cache.enabled {
        let c = &config.cache;
        let cache_config = CacheConfig {
            ram_bytes: c.ram_bytes,
            ssd_dir: (c.ssd_bytes > 0).then(|| c.ssd_dir.clone().unwrap_or_else(|| config.data_dir.join("cache"))),
            ssd_bytes: c.ssd_bytes,
            chunk_size: c.chunk_size,
        };
        let mut cache =
            ChunkCache::open(&cache_config).await.map_err(|e| anyhow::anyhow!("config table `cache`: {e}"))?;
        if c.pinned_bytes > 0 {
            let dir = c.pinned_dir.clone().unwrap_or_else(|| config.data_dir.join("pinned"));
            let pinned = PinnedStore::open(&dir, c.pinned_bytes)
                .map_err(|e| anyhow::anyhow!("config field `cache.pinned_dir`: {}: {e}", dir.display()))?;
            cache = cache.with_pinned(Arc::new(pinned));
        }
        namespace = namespace.with_cache(CachePool::new(cache)).with_write_ingest(c.ingest_writes);
        for t in directory.list_tenants().await? {
            namespace.apply_cache_share(t.id, t.cache_share_bytes).await?;
        }
    }
    // The global namespace's hooks go in before anything serves the namespace.
    let leases = crate::sites::start_leases(&config, meta.clone(), directory.clone()).await?;
    if let Some(l) = &leases {
        namespace = l.sites.install(namespace);
    }
    let collector = namespace.start_background();
    let metering = namespace.start_metering();

    let s3_listener = TcpListener::bind(config.s3_addr)
        .await
        .with_context(|| format!("cannot listen on {} (s3_addr)", config.s3_addr))?;
    let admin_listener = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("cannot listen on {} (admin_addr)", config.admin_addr))?;
    let system = directory.tenant_by_name(&orbit_types::TenantName::system()).await?;
    let auditor = orbit_core::Auditor::start(meta.clone(), system.id).await?;
    let s3 = S3Server::new(
        namespace.clone(),
        directory.clone(),
        S3ServerConfig { region: config.region.clone(), domains: config.s3_domains.clone() },
        auditor.clone(),
    );
    let prefetcher = Prefetcher::new(namespace.clone(), meta.clone());
    let resumed = prefetcher.resume_all().await?;
    if resumed > 0 {
        tracing::info!(jobs = resumed, "resumed prefetch jobs");
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let parts = crate::sites::SiteParts {
        meta: meta.clone(),
        versioned,
        directory: directory.clone(),
        namespace: namespace.clone(),
    };
    let peering = crate::sites::Peering::start(&config, parts, leases, stopped(stop_rx.clone())).await?;
    let admin = orbit_admin::router(
        AdminService::new(directory.clone(), namespace.clone(), prefetcher).with_auditor(auditor.clone()),
        Arc::new(move || prometheus.render()),
    );
    let admin = orbit_admin::sites::with_sites(admin, peering.renderer.clone());
    let admin = orbit_admin::directory::with_directory(admin, peering.directory.clone());
    let admin = orbit_admin::sites::with_leases(admin, peering.leases.clone());
    let admin = match peering.write_leases.clone() {
        Some(control) => orbit_admin::sites::with_write_leases(admin, control),
        None => admin,
    };
    let s3_threads = match config.s3_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let s3_task = tokio::spawn(s3.serve_on_threads(s3_listener, s3_threads, stop_rx.clone()));
    let admin_task =
        tokio::spawn(async move { axum::serve(admin_listener, admin).with_graceful_shutdown(stopped(stop_rx)).await });

    tracing::info!(
        site = %config.site,
        s3 = %config.s3_addr,
        admin = %config.admin_addr,
        data_dir = %config.data_dir.display(),
        backends = %namespace.backend_description(),
        "orbit is serving"
    );
    println!(
        "orbit: S3 on http://{}  admin on http://{}  data in {}",
        config.s3_addr,
        config.admin_addr,
        config.data_dir.display()
    );

    wait_for_signal().await?;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let _ = s3_task.await;
    let _ = admin_task.await;
    // Every request has been answered: commit what they recorded before exiting.
    auditor.flush().await;
    peering.stop().await;
    collector.abort();
    // Requests are done: the last metering events reach the store. The flush
    // waits for a periodic one in progress; only then is the flusher stopped,
    // so no flush holding events is cancelled halfway.
    if let Err(e) = namespace.meter().flush().await {
        tracing::warn!(error = %e, "final metering flush failed");
    }
    metering.abort();
    if let Some(cache) = namespace.cache() {
        cache.close().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
