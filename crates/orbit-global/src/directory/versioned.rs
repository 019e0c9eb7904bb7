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

/// How long a consistent read keeps trying (waiting out commits in flight,
/// which take an fsync each) before it gives up.
const CONSISTENT_READ_PATIENCE: Duration = Duration::from_secs(2);

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
        let started = std::time::Instant::now();
        while started.elapsed() < CONSISTENT_READ_PATIENCE {
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
        // Counted as ended even when the caller drops this future halfway
        // (a peer's request that timed out), or no read would ever be
        // consistent again; and counted as a change, since it may have landed.
        let _ended = EndOfCommit(self);
        self.inner.commit(txn).await
    }
}

struct EndOfCommit<'a>(&'a VersionedStore);

impl Drop for EndOfCommit<'_> {
    fn drop(&mut self) {
        // The generation first: a reader that sees every commit ended sees its change counted.
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        self.0.ended.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit_meta::MemoryStore;

    /// A store whose commits never finish, like one whose caller gave up.
    struct Stuck;

    #[async_trait]
    impl MetaStore for Stuck {
        async fn get(&self, _: Table, _: &[u8]) -> MetaResult<Option<Vec<u8>>> {
            Ok(None)
        }
        async fn scan(
            &self,
            _: Table,
            _: Bound<Vec<u8>>,
            _: Bound<Vec<u8>>,
            _: usize,
        ) -> MetaResult<Vec<(Vec<u8>, Vec<u8>)>> {
            Ok(Vec::new())
        }
        async fn commit(&self, _: Txn) -> MetaResult<()> {
            std::future::pending().await
        }
    }

    #[tokio::test]
    async fn only_directory_commits_change_the_version() {
        let store = VersionedStore::new(Arc::new(MemoryStore::new()));
        let v0 = store.version();
        store.commit(Txn::new().put(Table::Objects, b"k".to_vec(), b"v".to_vec())).await.unwrap();
        assert_eq!(store.version(), v0);
        store.commit(Txn::new().put(Table::Tenants, b"t".to_vec(), b"v".to_vec())).await.unwrap();
        assert_eq!(store.version().generation, v0.generation + 1);
        let (n, v) = store.consistent(|| async { Ok(1) }).await.unwrap().expect("nothing in flight");
        assert_eq!((n, v), (1, store.version()));
    }

    /// Regression: a directory commit abandoned by its caller (a peer request
    /// that timed out) left the seqlock open, and every later pull was
    /// refused as busy.
    #[tokio::test]
    async fn an_abandoned_commit_does_not_block_consistent_reads_for_ever() {
        let store = VersionedStore::new(Arc::new(Stuck));
        let v0 = store.version();
        let commit = store.commit(Txn::new().put(Table::Buckets, b"b".to_vec(), b"v".to_vec()));
        let _ = tokio::time::timeout(Duration::from_millis(10), commit).await;
        let (_, v) = store.consistent(|| async { Ok(()) }).await.unwrap().expect("not stuck");
        assert!(v.generation > v0.generation, "it may have landed, so it counts as a change");
    }
}
