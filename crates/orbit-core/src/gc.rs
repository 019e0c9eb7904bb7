//! Blob garbage collection.
//!
//! Object bytes are written before the metadata that points at them is
//! committed, and superseded bytes are removed after. Both ends go through
//! one table: a blob is entered with a due time before it is written (an
//! "intent", cancelled by the commit that references it) and when it stops
//! being referenced. The collector deletes blobs whose time has come, so a
//! crash at any point leaves neither a visible partial object nor a leak.

use orbit_backend::BackendSet;
use orbit_meta::{MetaStore, MetaStoreExt, Table, Txn};
use orbit_tenancy::meta_error;
use orbit_types::{Result, now_ms};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long a write may take before its unreferenced blob is collected.
pub(crate) const INTENT_GRACE_MS: i64 = 24 * 3600 * 1000;
/// How long superseded bytes stay readable for GETs already streaming them.
pub(crate) const SUPERSEDED_GRACE_MS: i64 = 15 * 60 * 1000;

const BATCH: usize = 500;

#[derive(Clone)]
pub(crate) struct Collector {
    meta: Arc<dyn MetaStore>,
    backends: BackendSet,
    wake: Arc<Notify>,
    cache: Option<orbit_cache::CachePool>,
}

pub(crate) fn due_value(due_ms: i64) -> Vec<u8> {
    due_ms.to_be_bytes().to_vec()
}

/// The collection-queue key of a blob: backend name, '/', blob path.
/// Backend names never contain '/', so the first one splits them.
pub(crate) fn gc_key(backend: &str, blob: &str) -> Vec<u8> {
    format!("{backend}/{blob}").into_bytes()
}

impl Collector {
    pub(crate) fn new(meta: Arc<dyn MetaStore>, backends: BackendSet) -> Self {
        Self { meta, backends, wake: Arc::new(Notify::new()), cache: None }
    }

    pub(crate) fn with_cache(mut self, cache: orbit_cache::CachePool) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Record that `blob` is about to be written; collected unless a commit claims it.
    pub(crate) async fn register_intent(&self, backend: &str, blob: &str) -> Result<()> {
        let txn = Txn::new().put(Table::Gc, gc_key(backend, blob), due_value(now_ms() + INTENT_GRACE_MS));
        self.meta.commit(txn).await.map_err(meta_error)
    }

    /// A blob that will never be referenced (a failed or rejected write): collect it now.
    pub(crate) async fn discard(&self, backend: &str, blob: &str) {
        let txn = Txn::new().put(Table::Gc, gc_key(backend, blob), due_value(0));
        if let Err(e) = self.meta.commit(txn).await {
            tracing::warn!(blob, error = %e, "could not schedule a discarded blob for collection");
        }
        self.wake.notify_one();
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Delete every blob that is due. Returns how many were removed.
    pub(crate) async fn run_once(&self) -> Result<usize> {
        let now = now_ms();
        let mut removed = 0;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = self.meta.scan_prefix(Table::Gc, b"", after.as_deref(), BATCH).await.map_err(meta_error)?;
            let done = batch.len() < BATCH;
            for (key, value) in batch {
                after = Some(key.clone());
                let due = value.as_slice().try_into().map(i64::from_be_bytes).unwrap_or(0);
                if due > now {
                    continue;
                }
                let Some((backend, blob)) = std::str::from_utf8(&key).ok().and_then(|k| k.split_once('/')) else {
                    continue;
                };
                let Some(store) = self.backends.get(backend) else {
                    tracing::warn!(backend, blob, "blob of an unconfigured backend left in place");
                    continue;
                };
                if let Err(e) = store.delete(blob).await {
                    tracing::warn!(blob, error = %e, "blob deletion failed; will retry");
                    continue;
                }
                // The queue key is the cache's name for the blob, too.
                if let Some(cache) = &self.cache {
                    cache.unpin_blob(&format!("{backend}/{blob}")).await;
                }
                // Only forget the entry if nobody re-registered it meanwhile.
                let txn = Txn::new().require_equals(Table::Gc, key.clone(), value).delete(Table::Gc, key);
                if self.meta.commit(txn).await.is_ok() {
                    removed += 1;
                }
            }
            if done {
                return Ok(removed);
            }
        }
    }

    /// Run forever: on every wake-up and at least every `period`.
    pub(crate) fn spawn(self, period: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(removed = n, "collected blobs"),
                    Err(e) => tracing::warn!(error = %e, "blob collection failed"),
                }
                let _ = tokio::time::timeout(period, self.wake.notified()).await;
            }
        })
    }
}
