//! The directory site's change counter: a decorator over its metadata store
//! that counts commits touching directory tables, so a mirror's poll is
//! answered "unchanged" from two numbers instead of the tables.

use super::tables::is_directory_table;
use async_trait::async_trait;
use orbit_meta::{MetaResult, MetaStore, Op, Table, Txn};
use orbit_site::DirectoryVersion;
use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often a consistent read tries before it gives up (each try waits
/// out commits in flight).
const CONSISTENT_READ_TRIES: usize = 50;

/// Counts directory commits. Wrap the directory site's store in it before
/// anything else uses the store, so no write path escapes the count.
pub struct VersionedStore {
    inner: Arc<dyn MetaStore>,
    /// Drawn at start: versions of an earlier run never match this run's.
    epoch: u64,
    /// Directory commits begun and ended (a seqlock: equal means none in flight).
    begun: AtomicU64,
    ended: AtomicU64,
    /// Directory commits that succeeded.
    generation: AtomicU64,
}

impl VersionedStore {
    pub fn new(inner: Arc<dyn MetaStore>) -> Arc<Self> {
        let epoch = std::collections::hash_map::RandomState::new().build_hasher().finish();
        Arc::new(Self {
            inner,
            epoch,
            begun: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        })
    }

    /// The version of the directory records now.
    pub fn version(&self) -> DirectoryVersion {
        DirectoryVersion { epoch: self.epoch, generation: self.generation.load(Ordering::SeqCst) }
    }

    /// Run `read` so that no directory commit is in flight when it starts
    /// and none begins before it ends: what it reads is one state of the
    /// directory, the one of the returned version. None when commits kept
    /// landing (the caller answers busy and the mirror asks again).
    pub async fn consistent<T, F, Fut>(&self, read: F) -> MetaResult<Option<(T, DirectoryVersion)>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = MetaResult<T>>,
    {
        for _ in 0..CONSISTENT_READ_TRIES {
            let begun = self.begun.load(Ordering::SeqCst);
            if self.ended.load(Ordering::SeqCst) != begun {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
            let version = self.version();
            let value = read().await?;
            if self.begun.load(Ordering::SeqCst) == begun {
                return Ok(Some((value, version)));
            }
        }
        Ok(None)
    }
}

fn touches_directory(txn: &Txn) -> bool {
    txn.ops.iter().any(|op| {
        let (Op::Put { table, .. } | Op::Delete { table, .. } | Op::Add { table, .. }) = op;
        is_directory_table(*table)
    })
}

#[async_trait]
impl MetaStore for VersionedStore {
    async fn get(&self, table: Table, key: &[u8]) -> MetaResult<Option<Vec<u8>>> {
        self.inner.get(table, key).await
    }

    async fn scan(
        &self,
        table: Table,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(table, start, end, limit).await
    }

    async fn commit(&self, txn: Txn) -> MetaResult<()> {
        if !touches_directory(&txn) {
            return self.inner.commit(txn).await;
        }
        self.begun.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.commit(txn).await;
        if result.is_ok() {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.ended.fetch_add(1, Ordering::SeqCst);
        result
    }
}
