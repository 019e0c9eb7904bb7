//! Listing a bucket: prefix, delimiter and pagination over the ordered
//! object table, skipping whole common prefixes instead of walking them.

use super::Namespace;
use crate::records::{ObjectRecord, cat};
use orbit_meta::{MetaStore, Table, decode, prefix_end};
use orbit_tenancy::{Caller, meta_error};
use orbit_types::Result;
use std::ops::Bound;

/// The most entries one listing page returns (S3's limit).
pub const MAX_KEYS: usize = 1000;
const SCAN_BATCH: usize = 256;

#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    /// List keys strictly after this one (marker, start-after or continuation).
    pub start_after: Option<String>,
    pub max_keys: usize,
}

#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub objects: Vec<(String, ObjectRecord)>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// The last key or common prefix returned, to resume after when truncated.
    pub next_marker: Option<String>,
}

impl Namespace {
    pub async fn list_objects(&self, caller: &Caller, bucket: &str, q: &ListQuery) -> Result<ListPage> {
        super::access::require_list(caller, bucket, &q.prefix, orbit_tenancy::Access::Read)?;
        self.list_objects_of(caller.tenant_id, bucket, q).await
    }

    /// List a bucket of a tenant (for work done on a tenant's behalf, like prefetch jobs).
    pub async fn list_objects_of(
        &self,
        tenant: orbit_types::TenantId,
        bucket: &str,
        q: &ListQuery,
    ) -> Result<ListPage> {
        let b = self.resolve_bucket(tenant, bucket).await?;
        if let Some(remote) = self.list_remote_for(&b.record, &q.prefix) {
            return remote.list_objects(tenant, &b.record, q).await;
        }
        if let Some(m) = &b.record.mapped {
            return self.mapped_list(&b.record, m, q).await;
        }
        list_in(&*self.meta, b.record.id.as_bytes(), q).await
    }
}

pub(crate) async fn list_in(meta: &dyn MetaStore, bucket: &[u8], q: &ListQuery) -> Result<ListPage> {
    let max = q.max_keys.min(MAX_KEYS);
    let delimiter = q.delimiter.as_deref().filter(|d| !d.is_empty());
    let full_prefix = cat(bucket, q.prefix.as_bytes());
    let end = prefix_end(&full_prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let mut start = match &q.start_after {
        Some(a) if a.as_str() >= q.prefix.as_str() => Bound::Excluded(cat(bucket, a.as_bytes())),
        _ => Bound::Included(full_prefix.clone()),
    };
    let mut page = ListPage::default();
    let mut count = 0usize;
    loop {
        let batch = meta.scan(Table::Objects, start.clone(), end.clone(), SCAN_BATCH).await.map_err(meta_error)?;
        let exhausted = batch.len() < SCAN_BATCH;
        let mut next_start = None;
        for (k, v) in batch {
            let key = String::from_utf8_lossy(&k[bucket.len()..]).into_owned();
            if let Some(d) = delimiter
                && let Some(pos) = key[q.prefix.len()..].find(d)
            {
                let cp = key[..q.prefix.len() + pos + d.len()].to_owned();
                // Resume after the whole common prefix, not key by key.
                let skip_to = prefix_end(&cat(bucket, cp.as_bytes())).map_or(Bound::Unbounded, Bound::Included);
                if q.start_after.as_deref().is_some_and(|a| cp.as_str() <= a) {
                    next_start = Some(skip_to);
                    break;
                }
                if count == max {
                    page.is_truncated = true;
                    return Ok(page);
                }
                page.common_prefixes.push(cp.clone());
                page.next_marker = Some(cp);
                count += 1;
                next_start = Some(skip_to);
                break;
            }
            if count == max {
                page.is_truncated = true;
                return Ok(page);
            }
            let rec: ObjectRecord = decode(&v).map_err(meta_error)?;
            page.next_marker = Some(key.clone());
            page.objects.push((key, rec));
            count += 1;
            start = Bound::Excluded(k);
        }
        match next_start {
            Some(Bound::Unbounded) => return Ok(page),
            Some(s) => start = s,
            None if exhausted => return Ok(page),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ContentHeaders;
    use orbit_meta::{MemoryStore, Txn, encode};

    async fn store_with(keys: &[&str]) -> MemoryStore {
        let s = MemoryStore::new();
        let mut txn = Txn::new();
        for k in keys {
            let rec = ObjectRecord {
                version: "v".into(),
                size: 1,
                etag: "e".into(),
                last_modified_ms: 0,
                headers: ContentHeaders::default(),
                user_metadata: Default::default(),
                checksum: None,
                segments: vec![],
                parts_count: None,
            };
            txn.push_put(Table::Objects, cat(b"B", k.as_bytes()), encode(&rec));
        }
        // Another bucket's keys must never appear.
        txn.push_put(Table::Objects, b"Ca".to_vec(), b"x".to_vec());
        s.commit(txn).await.unwrap();
        s
    }

    fn q(prefix: &str, delim: Option<&str>, after: Option<&str>, max: usize) -> ListQuery {
        ListQuery {
            prefix: prefix.into(),
            delimiter: delim.map(Into::into),
            start_after: after.map(Into::into),
            max_keys: max,
        }
    }

    fn keys(p: &ListPage) -> Vec<&str> {
        p.objects.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[tokio::test]
    async fn prefix_delimiter_and_pages() {
        let s = store_with(&["a/1", "a/2", "a/b/3", "b", "c/1", "c/2", "d"]).await;
        let p = list_in(&s, b"B", &q("", Some("/"), None, 1000)).await.unwrap();
        assert_eq!(keys(&p), ["b", "d"]);
        assert_eq!(p.common_prefixes, ["a/", "c/"]);
        assert!(!p.is_truncated);

        let p = list_in(&s, b"B", &q("a/", Some("/"), None, 1000)).await.unwrap();
        assert_eq!(keys(&p), ["a/1", "a/2"]);
        assert_eq!(p.common_prefixes, ["a/b/"]);

        // Page by two entries, counting prefixes and keys alike, resuming after the marker.
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = list_in(&s, b"B", &q("", Some("/"), after.as_deref(), 2)).await.unwrap();
            seen.extend(p.objects.iter().map(|(k, _)| k.clone()));
            seen.extend(p.common_prefixes.iter().cloned());
            if !p.is_truncated {
                break;
            }
            after = p.next_marker.clone();
        }
        seen.sort();
        assert_eq!(seen, ["a/", "b", "c/", "d"]);

        let p = list_in(&s, b"B", &q("", None, Some("c/1"), 1000)).await.unwrap();
        assert_eq!(keys(&p), ["c/2", "d"]);
        let p = list_in(&s, b"B", &q("", None, None, 3)).await.unwrap();
        assert_eq!(keys(&p), ["a/1", "a/2", "a/b/3"]);
        assert!(p.is_truncated);
        let p = list_in(&s, b"B", &q("zz", None, None, 10)).await.unwrap();
        assert!(p.objects.is_empty() && !p.is_truncated);
        let p = list_in(&s, b"B", &q("", None, None, 0)).await.unwrap();
        assert!(p.objects.is_empty());
    }
}
