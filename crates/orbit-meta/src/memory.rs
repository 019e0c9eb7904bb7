use crate::store::{counter_add, counter_at_most};
use crate::{Condition, MetaError, MetaResult, MetaStore, Op, Table, Txn, prefix_end};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Mutex;

type Tables = HashMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

/// A metadata store held in a map: for tests and for servers that keep nothing.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn holds(tables: &Tables, cond: &Condition) -> MetaResult<bool> {
        let get = |t: &Table, k: &[u8]| tables.get(t).and_then(|m| m.get(k));
        Ok(match cond {
            Condition::Absent { table, key } => get(table, key).is_none(),
            Condition::Equals { table, key, value } => get(table, key) == Some(value),
            Condition::PrefixEmpty { table, prefix } => {
                let Some(m) = tables.get(table) else { return Ok(true) };
                let end = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
                m.range::<Vec<u8>, _>((Bound::Included(prefix.clone()), end)).next().is_none()
            }
            Condition::AtMost { table, key, max } => counter_at_most(get(table, key).map(Vec::as_slice), *max)?,
        })
    }
}

#[async_trait]
impl MetaStore for MemoryStore {
    async fn get(&self, table: Table, key: &[u8]) -> MetaResult<Option<Vec<u8>>> {
        let tables = self.tables.lock().map_err(|e| MetaError::Unavailable(e.to_string()))?;
        Ok(tables.get(&table).and_then(|m| m.get(key)).cloned())
    }

    async fn scan(
        &self,
        table: Table,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let tables = self.tables.lock().map_err(|e| MetaError::Unavailable(e.to_string()))?;
        let Some(m) = tables.get(&table) else { return Ok(Vec::new()) };
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) = (&start, &end)
            && s > e
        {
            return Ok(Vec::new());
        }
        if let (Bound::Excluded(s), Bound::Excluded(e)) = (&start, &end)
            && s == e
        {
            return Ok(Vec::new());
        }
        Ok(m.range((start, end)).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    async fn commit(&self, txn: Txn) -> MetaResult<()> {
        let mut tables = self.tables.lock().map_err(|e| MetaError::Unavailable(e.to_string()))?;
        for c in &txn.conditions {
            if !Self::holds(&tables, c)? {
                return Err(MetaError::Conflict);
            }
        }
        // Check every counter first, so a corrupt one writes nothing.
        for op in &txn.ops {
            if let Op::Add { table, key, .. } = op {
                counter_add(tables.get(table).and_then(|m| m.get(key)).map(Vec::as_slice), 0)?;
            }
        }
        for op in txn.ops {
            match op {
                Op::Put { table, key, value } => {
                    tables.entry(table).or_default().insert(key, value);
                }
                Op::Delete { table, key } => {
                    if let Some(m) = tables.get_mut(&table) {
                        m.remove(&key);
                    }
                }
                Op::Add { table, key, delta } => {
                    let m = tables.entry(table).or_default();
                    let next = counter_add(m.get(&key).map(Vec::as_slice), delta)?;
                    m.insert(key, next);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn conformance() {
        crate::conformance::run_all(&super::MemoryStore::new()).await;
    }
}
