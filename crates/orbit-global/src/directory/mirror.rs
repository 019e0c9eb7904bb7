//! A satellite's copy of the directory: pulled from the directory site
//! every interval and at once when a request names something unknown,
//! applied in one metadata transaction, and handed to the caches above.

use super::authority::local_error;
use super::tables::{self, Records, directory_table};
use async_trait::async_trait;
use orbit_core::{BucketDirectory, BucketRecord, Namespace};
use orbit_meta::{MetaStore, Table, Txn, decode};
use orbit_site::{DirectoryTable, DirectoryVersion, Message, RequestId, SiteId};
use orbit_tenancy::{Directory, DirectoryRefresh, TenantRecord};
use orbit_types::{BucketName, Error, Result, TenantId, now_ms};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many pulls triggered by unknown names per second (each is
/// one cheap round trip when nothing changed); more wait for the next.
const TRIGGERED_PULLS_PER_SEC: u32 = 20;
/// While pulls fail, at most one triggered pull per this interval, so
/// requests naming unknown things do not each wait out a timeout while the
/// directory site is unreachable.
const FAILED_PULL_BACKOFF: Duration = Duration::from_secs(1);

/// How a satellite reaches the directory site.
#[async_trait]
pub trait DirectoryChannel: Send + Sync + 'static {
    /// Send a request and return the answer; an error says why none came.
    async fn ask(&self, message: Message) -> std::result::Result<Message, String>;
}

/// The peer channel to the directory site.
pub struct PeerChannel {
    client: Arc<orbit_peer::PeerClient>,
    to: SiteId,
    timeout: Duration,
}

impl PeerChannel {
    pub fn new(client: Arc<orbit_peer::PeerClient>, to: SiteId, timeout: Duration) -> Self {
        Self { client, to, timeout }
    }
}

#[async_trait]
impl DirectoryChannel for PeerChannel {
    async fn ask(&self, message: Message) -> std::result::Result<Message, String> {
        match self.client.send(&self.to, message, self.timeout).await {
            Ok(Some(env)) => Ok(env.message),
            Ok(None) => Err("the directory site sent no answer".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What a pull did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullOutcome {
    /// The directory site had nothing new.
    Unchanged,
    /// A new copy was applied, changing this many records.
    Applied { changed: usize },
    /// The copy was older than a bucket change this site already applied;
    /// the next pull fetches a newer one.
    Stale,
}

/// Why a pull failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    #[error("the directory site `{0}` cannot be reached: {1}")]
    Unreachable(String, String),
    #[error("master key differs from the directory site's: its secrets cannot be opened here, nothing was mirrored")]
    MasterKeyDiffers,
    #[error("the directory site answered out of protocol: {0}")]
    BadAnswer(String),
    #[error("the local metadata store failed: {0}")]
    Store(String),
}

impl PullError {
    fn outcome_label(&self) -> &'static str {
        match self {
            PullError::Unreachable(..) => "unreachable",
            PullError::MasterKeyDiffers => "master_key_differs",
            PullError::BadAnswer(_) => "bad_answer",
            PullError::Store(_) => "store_error",
        }
    }
}

/// The mirror's state, as the admin API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorStatus {
    pub directory_site: String,
    pub version: Option<DirectoryVersion>,
    pub last_sync_ms: Option<i64>,
    /// Time since the last successful pull.
    pub lag: Option<Duration>,
    pub records_mirrored: u64,
    pub syncs_ok: u64,
    pub syncs_failed: u64,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct State {
    /// The version whose copy is applied here.
    applied: Option<DirectoryVersion>,
    /// A bucket change answered by the directory site at this version was
    /// applied here: an older copy would undo it, so it is not applied.
    floor: Option<DirectoryVersion>,
    last_ok: Option<(Instant, i64)>,
    last_started: Option<Instant>,
    last_failed: Option<Instant>,
    triggered: (Option<Instant>, u32),
    last_triggered: Option<Instant>,
    records: u64,
    ok: u64,
    failed: u64,
    last_error: Option<String>,
}

/// This site's mirror of the directory site's records.
pub struct Mirror {
    site: SiteId,
    directory_site: SiteId,
    peers: BTreeSet<String>,
    channel: Arc<dyn DirectoryChannel>,
    store: Arc<dyn MetaStore>,
    directory: Directory,
    namespace: Namespace,
    /// One pull or bucket change applies at a time.
    applying: tokio::sync::Mutex<()>,
    state: Mutex<State>,
    /// Bucket keys whose deletion is under way: a pull leaves them alone.
    held: Mutex<BTreeSet<Vec<u8>>>,
    next_req: AtomicU64,
}

impl Mirror {
    pub fn new(
        site: SiteId,
        directory_site: SiteId,
        peers: impl IntoIterator<Item = String>,
        channel: Arc<dyn DirectoryChannel>,
        store: Arc<dyn MetaStore>,
        directory: Directory,
        namespace: Namespace,
    ) -> Arc<Self> {
        Arc::new(Self {
            site,
            directory_site,
            peers: peers.into_iter().collect(),
            channel,
            store,
            directory,
            namespace,
            applying: tokio::sync::Mutex::new(()),
            state: Mutex::default(),
            held: Mutex::default(),
            next_req: AtomicU64::new(1),
        })
    }

    /// Make the tenancy directory and the namespace consult this mirror
    /// for unknown keys and buckets, and send bucket changes through it.
    pub fn install(self: &Arc<Self>) {
        self.directory.set_refresh(self.clone());
        self.namespace.set_bucket_directory(self.clone());
    }

    /// Pull every `interval` until the task is aborted.
    pub fn spawn(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let _ = me.pull().await;
                tokio::time::sleep(interval).await;
            }
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn req(&self) -> RequestId {
        RequestId(self.next_req.fetch_add(1, Ordering::Relaxed))
    }

    pub fn status(&self) -> MirrorStatus {
        let s = self.state();
        let status = MirrorStatus {
            directory_site: self.directory_site.0.clone(),
            version: s.applied,
            last_sync_ms: s.last_ok.map(|(_, ms)| ms),
            lag: s.last_ok.map(|(at, _)| at.elapsed()),
            records_mirrored: s.records,
            syncs_ok: s.ok,
            syncs_failed: s.failed,
            last_error: s.last_error.clone(),
        };
        if let Some(lag) = status.lag {
            metrics::gauge!("orbit_directory_last_sync_age_seconds").set(lag.as_secs_f64());
        }
        status
    }

    /// Pull now: ask whether the directory changed since the applied
    /// version and apply the copy it sends.
    pub async fn pull(&self) -> std::result::Result<PullOutcome, PullError> {
        let _applying = self.applying.lock().await;
        self.pull_locked().await
    }

    async fn pull_locked(&self) -> std::result::Result<PullOutcome, PullError> {
        let known = {
            let mut s = self.state();
            s.last_started = Some(Instant::now());
            s.applied
        };
        let result = self.exchange(known).await;
        let mut s = self.state();
        match &result {
            Ok(outcome) => {
                s.ok += 1;
                s.last_ok = Some((Instant::now(), now_ms()));
                s.last_error = None;
                let label = match outcome {
                    PullOutcome::Unchanged => "unchanged",
                    PullOutcome::Applied { .. } => "applied",
                    PullOutcome::Stale => "stale",
                };
                metrics::counter!("orbit_directory_sync_total", "outcome" => label).increment(1);
                metrics::gauge!("orbit_directory_last_sync_age_seconds").set(0.0);
            }
            Err(e) => {
                s.failed += 1;
                s.last_failed = Some(Instant::now());
                if s.last_error.as_deref() != Some(&e.to_string()) {
                    if *e == PullError::MasterKeyDiffers {
                        tracing::error!(directory_site = %self.directory_site, "{e}");
                    } else {
                        tracing::warn!(directory_site = %self.directory_site, error = %e, "directory pull failed; serving with the last copy");
                    }
                }
                s.last_error = Some(e.to_string());
                metrics::counter!("orbit_directory_sync_total", "outcome" => e.outcome_label()).increment(1);
                if let Some((at, _)) = s.last_ok {
                    metrics::gauge!("orbit_directory_last_sync_age_seconds").set(at.elapsed().as_secs_f64());
                }
            }
        }
        result
    }

    async fn exchange(&self, known: Option<DirectoryVersion>) -> std::result::Result<PullOutcome, PullError> {
        let answer = self
            .channel
            .ask(Message::DirectoryPull { req: self.req(), known })
            .await
            .map_err(|e| PullError::Unreachable(self.directory_site.0.clone(), e))?;
        match answer {
            Message::DirectoryUnchanged { .. } => Ok(PullOutcome::Unchanged),
            Message::DirectorySnapshot { version, sealed_canary, tables, .. } => {
                // Mirroring secrets this site cannot open would make every key fail here.
                if let Some(canary) = &sealed_canary
                    && !self.directory.opens_canary(canary)
                {
                    return Err(PullError::MasterKeyDiffers);
                }
                {
                    let mut s = self.state();
                    if let Some(floor) = s.floor {
                        if floor.epoch != version.epoch {
                            s.floor = None;
                        } else if version.generation < floor.generation {
                            return Ok(PullOutcome::Stale);
                        }
                    }
                }
                let remote = from_wire(tables)?;
                let total = tables::count(&remote) as u64;
                let changed = self.apply(remote).await?;
                let mut s = self.state();
                s.applied = Some(version);
                s.records = total;
                Ok(PullOutcome::Applied { changed })
            }
            other => Err(PullError::BadAnswer(format!("{other:?}").chars().take(120).collect())),
        }
    }

    /// Make the local directory tables equal to `remote` in one commit
    /// (except the system tenant's records and buckets being deleted), then
    /// tell the caches above the store.
    async fn apply(&self, remote: Records) -> std::result::Result<usize, PullError> {
        let store_err = |e: orbit_meta::MetaError| PullError::Store(e.to_string());
        let local = tables::read_directory(self.store.as_ref()).await.map_err(store_err)?;
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let empty = BTreeMap::new();
        let mut txn = Txn::new();
        let mut changed_tenants: Vec<(TenantId, Option<Option<u64>>)> = Vec::new();
        let mut changed_qos: Vec<Vec<u8>> = Vec::new();
        for table in tables::DIRECTORY_TABLES {
            let theirs = remote.get(&table).unwrap_or(&empty);
            let ours = local.get(&table).unwrap_or(&empty);
            let keep = |k: &Vec<u8>| table == Table::Buckets && held.contains(k);
            let mut note = |k: &[u8], v: Option<&Vec<u8>>| match table {
                Table::Tenants => {
                    if let Some(id) = TenantId::from_slice(k) {
                        let share = v.map(|v| decode::<TenantRecord>(v).ok().and_then(|t| t.cache_share_bytes));
                        changed_tenants.push((id, share));
                    }
                }
                Table::Qos => changed_qos.push(k.to_vec()),
                _ => {}
            };
            for (k, v) in theirs {
                if ours.get(k) != Some(v) && !keep(k) {
                    txn.push_put(table, k.clone(), v.clone());
                    note(k, Some(v));
                }
            }
            for k in ours.keys() {
                if !theirs.contains_key(k) && !keep(k) {
                    txn.push_delete(table, k.clone());
                    note(k, None);
                }
            }
        }
        let changed = txn.ops.len();
        if changed == 0 {
            return Ok(0);
        }
        self.store.commit(txn).await.map_err(store_err)?;
        self.after_change(changed_tenants, changed_qos).await;
        tracing::debug!(changed, "directory copy applied");
        Ok(changed)
    }

    /// Caches above the store see the new records: resolved credentials are
    /// dropped, changed QoS limits and cache shares applied. (Decoded
    /// bucket records are keyed by their stored bytes and need nothing.)
    async fn after_change(&self, tenants: Vec<(TenantId, Option<Option<u64>>)>, qos: Vec<Vec<u8>>) {
        self.directory.forget_credentials();
        for key in qos {
            if let Err(e) = self.directory.qos().reload_key(&key).await {
                tracing::warn!(error = %e, "cannot apply mirrored QoS limits");
            }
        }
        for (tenant, share) in tenants {
            if let Err(e) = self.namespace.apply_cache_share(tenant, share.flatten()).await {
                tracing::warn!(error = %e, "cannot apply a mirrored cache share");
            }
        }
    }

    fn triggered_pull_allowed(&self, asked: Instant) -> bool {
        let mut s = self.state();
        // A pull that began after the request asked has seen what it needs.
        if s.last_started.is_some_and(|t| t >= asked) {
            return false;
        }
        let failing = s.last_failed.is_some() && s.last_failed > s.last_ok.map(|o| o.0);
        if failing && s.last_triggered.is_some_and(|t| t.elapsed() < FAILED_PULL_BACKOFF) {
            return false;
        }
        s.last_triggered = Some(Instant::now());
        let (window, count) = &mut s.triggered;
        match window {
            Some(w) if w.elapsed() < Duration::from_secs(1) => {
                if *count >= TRIGGERED_PULLS_PER_SEC {
                    return false;
                }
                *count += 1;
            }
            _ => {
                *window = Some(Instant::now());
                *count = 1;
            }
        }
        true
    }

    async fn ask_bucket_change(&self, message: Message) -> Result<(DirectoryVersion, Option<Vec<u8>>)> {
        match self.channel.ask(message).await {
            Ok(Message::DirectoryBucketDone { version, record, .. }) => Ok((version, record)),
            Ok(Message::DirectoryBucketRefused { error, .. }) => Err(local_error(error)),
            Ok(_) => Err(Error::Unavailable("the directory site answered out of protocol".into())),
            Err(e) => {
                tracing::warn!(directory_site = %self.directory_site, error = %e, "bucket change not forwarded");
                Err(Error::Unavailable(format!(
                    "the directory site `{}` cannot be reached, retry",
                    self.directory_site
                )))
            }
        }
    }

    fn raise_floor(&self, version: DirectoryVersion) {
        let mut s = self.state();
        if s.floor.is_none_or(|f| f.epoch != version.epoch || f.generation < version.generation) {
            s.floor = Some(version);
        }
    }
}

fn from_wire(tables: Vec<DirectoryTable>) -> std::result::Result<Records, PullError> {
    let mut out = Records::new();
    for t in tables {
        let Some(table) = directory_table(&t.table) else {
            return Err(PullError::BadAnswer(format!("`{}` is not a directory table", t.table)));
        };
        out.entry(table).or_default().extend(t.entries.into_iter().map(|e| (e.key, e.value)));
    }
    Ok(out)
}

#[async_trait]
impl DirectoryRefresh for Mirror {
    async fn refresh(&self) {
        let asked = Instant::now();
        let _applying = self.applying.lock().await;
        if self.triggered_pull_allowed(asked) {
            let _ = self.pull_locked().await;
        }
    }
}

#[async_trait]
impl BucketDirectory for Mirror {
    fn is_directory_site(&self) -> bool {
        false
    }

    fn knows_site(&self, site: &str) -> bool {
        site == self.site.0 || self.peers.contains(site)
    }

    async fn refresh(&self) {
        DirectoryRefresh::refresh(self).await;
    }

    async fn create_bucket(&self, tenant: TenantId, name: &BucketName, backend: &str) -> Result<BucketRecord> {
        let message = Message::DirectoryCreateBucket {
            req: self.req(),
            tenant,
            bucket: name.clone(),
            backend: backend.to_owned(),
        };
        let (version, raw) = self.ask_bucket_change(message).await?;
        let raw = raw.ok_or_else(|| Error::Unavailable("the directory site sent no bucket record".into()))?;
        let record: BucketRecord = decode(&raw).map_err(orbit_tenancy::meta_error)?;
        // Applied here before the client hears of it, so the bucket is usable at once.
        let _applying = self.applying.lock().await;
        let key = orbit_core::records::bucket_key(tenant, name);
        self.store.commit(Txn::new().put(Table::Buckets, key, raw)).await.map_err(orbit_tenancy::meta_error)?;
        self.raise_floor(version);
        Ok(record)
    }

    async fn delete_bucket(&self, record: &BucketRecord) -> Result<()> {
        let message = Message::DirectoryDeleteBucket {
            req: self.req(),
            tenant: record.tenant_id,
            bucket: record.name.clone(),
            id: record.id,
        };
        let (version, _) = self.ask_bucket_change(message).await?;
        let _applying = self.applying.lock().await;
        let key = orbit_core::records::bucket_key(record.tenant_id, &record.name);
        if let Some(raw) = self.store.get(Table::Buckets, &key).await.map_err(orbit_tenancy::meta_error)?
            && decode::<BucketRecord>(&raw).is_ok_and(|r| r.id == record.id)
        {
            let txn = Txn::new().require_equals(Table::Buckets, key.clone(), raw).delete(Table::Buckets, key);
            // A concurrent change only means the next pull settles it.
            let _ = self.store.commit(txn).await;
        }
        self.raise_floor(version);
        Ok(())
    }

    fn hold_deleted(&self, record: &BucketRecord, held: bool) {
        let key = orbit_core::records::bucket_key(record.tenant_id, &record.name);
        let mut h = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held {
            h.insert(key);
        } else {
            h.remove(&key);
        }
    }
}
