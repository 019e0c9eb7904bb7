use crate::store::{counter_add, counter_at_most};
use crate::{Condition, MetaError, MetaResult, MetaStore, Op, Table, Txn, prefix_end};
use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

fn def(table: Table) -> TableDefinition<'static, &'static [u8], &'static [u8]> {
    TableDefinition::new(table.name())
}

fn unavailable(e: impl std::fmt::Display) -> MetaError {
    MetaError::Unavailable(e.to_string())
}

/// The embedded metadata store: one redb file. Commits are fsynced before
/// they return, so an acknowledged write survives a crash.
#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
}

impl RedbStore {
    /// Open (or create) the store at `path`.
    pub fn open(path: &Path) -> MetaResult<Self> {
        let db = Database::create(path).map_err(unavailable)?;
        Self::init(db)
    }

    /// A store that lives in memory only (tests, throwaway servers).
    pub fn in_memory() -> MetaResult<Self> {
        let db =
            Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).map_err(unavailable)?;
        Self::init(db)
    }

    fn init(db: Database) -> MetaResult<Self> {
        // Create every table up front so read transactions never meet a missing one.
        let txn = db.begin_write().map_err(unavailable)?;
        for t in Table::ALL {
            txn.open_table(def(t)).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        Ok(Self { db: Arc::new(db) })
    }

    fn commit_blocking(db: &Database, txn: Txn) -> MetaResult<()> {
        let wtx = db.begin_write().map_err(unavailable)?;
        {
            for cond in &txn.conditions {
                let holds = match cond {
                    Condition::Absent { table, key } => {
                        let t = wtx.open_table(def(*table)).map_err(unavailable)?;
                        t.get(key.as_slice()).map_err(unavailable)?.is_none()
                    }
                    Condition::Equals { table, key, value } => {
                        let t = wtx.open_table(def(*table)).map_err(unavailable)?;
                        t.get(key.as_slice()).map_err(unavailable)?.is_some_and(|v| v.value() == value.as_slice())
                    }
                    Condition::PrefixEmpty { table, prefix } => {
                        let t = wtx.open_table(def(*table)).map_err(unavailable)?;
                        let end = prefix_end(prefix);
                        let mut range = match &end {
                            Some(e) => t.range::<&[u8]>(prefix.as_slice()..e.as_slice()),
                            None => t.range::<&[u8]>(prefix.as_slice()..),
                        }
                        .map_err(unavailable)?;
                        range.next().is_none()
                    }
                    Condition::AtMost { table, key, max } => {
                        let t = wtx.open_table(def(*table)).map_err(unavailable)?;
                        let cur = t.get(key.as_slice()).map_err(unavailable)?;
                        counter_at_most(cur.as_ref().map(|v| v.value()), *max)?
                    }
                };
                if !holds {
                    wtx.abort().map_err(unavailable)?;
                    return Err(MetaError::Conflict);
                }
            }
            for op in &txn.ops {
                match op {
                    Op::Put { table, key, value } => {
                        let mut t = wtx.open_table(def(*table)).map_err(unavailable)?;
                        t.insert(key.as_slice(), value.as_slice()).map_err(unavailable)?;
                    }
                    Op::Delete { table, key } => {
                        let mut t = wtx.open_table(def(*table)).map_err(unavailable)?;
                        t.remove(key.as_slice()).map_err(unavailable)?;
                    }
                    Op::Add { table, key, delta } => {
                        let mut t = wtx.open_table(def(*table)).map_err(unavailable)?;
                        let next = {
                            let cur = t.get(key.as_slice()).map_err(unavailable)?;
                            counter_add(cur.as_ref().map(|v| v.value()), *delta)?
                        };
                        t.insert(key.as_slice(), next.as_slice()).map_err(unavailable)?;
                    }
                }
            }
        }
        wtx.commit().map_err(unavailable)
    }
}

#[async_trait]
impl MetaStore for RedbStore {
    async fn get(&self, table: Table, key: &[u8]) -> MetaResult<Option<Vec<u8>>> {
        // Reads are served from redb's page cache in microseconds; no thread hop.
        let rtx = self.db.begin_read().map_err(unavailable)?;
        let t = rtx.open_table(def(table)).map_err(unavailable)?;
        Ok(t.get(key).map_err(unavailable)?.map(|v| v.value().to_vec()))
    }

    async fn scan(
        &self,
        table: Table,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let rtx = self.db.begin_read().map_err(unavailable)?;
        let t = rtx.open_table(def(table)).map_err(unavailable)?;
        let bounds = (as_slice_bound(&start), as_slice_bound(&end));
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) = bounds
            && s > e
        {
            return Ok(Vec::new());
        }
        let range = t.range::<&[u8]>(bounds).map_err(unavailable)?;
        let mut out = Vec::new();
        for item in range.take(limit) {
            let (k, v) = item.map_err(unavailable)?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    async fn commit(&self, txn: Txn) -> MetaResult<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || Self::commit_blocking(&db, txn)).await.map_err(unavailable)?
    }
}

fn as_slice_bound(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(&dir.path().join("meta.redb")).unwrap();
        crate::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn conformance_in_memory_backend() {
        crate::conformance::run_all(&RedbStore::in_memory().unwrap()).await;
    }

    #[tokio::test]
    async fn committed_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        {
            let store = RedbStore::open(&path).unwrap();
            store.commit(Txn::new().put(Table::Objects, b"k".to_vec(), b"v".to_vec())).await.unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        assert_eq!(store.get(Table::Objects, b"k").await.unwrap(), Some(b"v".to_vec()));
    }
}
