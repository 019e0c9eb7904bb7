//! Pinned prefixes: chunks of objects under a pinned prefix stay in the
//! site's pinned cache tier, which never evicts, until the prefix is
//! unpinned or the objects' blobs are collected.

use super::Namespace;
use crate::records::{BucketRecord, ObjectRecord, object_key};
use orbit_cache::CachePool;
use orbit_meta::{MetaStoreExt, Table, decode};
use orbit_tenancy::meta_error;
use orbit_types::{Error, Result, TenantId};

const SCAN_BATCH: usize = 1000;

impl Namespace {
    fn pinning_pool(&self) -> Result<&CachePool> {
        self.cache.as_ref().filter(|p| p.pinned_usage().is_some()).ok_or_else(|| {
            Error::InvalidRequest(
                "pinning is off on this site: it needs the chunk cache and `cache.pinned_bytes`".into(),
            )
        })
    }

    /// Pin `prefix` of a bucket (the empty prefix pins the whole bucket).
    /// Chunks are pinned as they are read; a prefetch job fills them at once.
    pub async fn pin_prefix(&self, tenant: TenantId, bucket: &str, prefix: &str) -> Result<BucketRecord> {
        self.pinning_pool()?;
        self.update_bucket(tenant, bucket, |rec| {
            if rec.mapped.is_some() {
                // Its chunks are not tied to collected blobs, so nothing would release them.
                return Err(Error::InvalidRequest("pinning a mapped bucket is not supported yet".into()));
            }
            if !rec.pinned_prefixes.iter().any(|p| p == prefix) {
                rec.pinned_prefixes.push(prefix.to_owned());
                rec.pinned_prefixes.sort();
            }
            Ok(())
        })
        .await
    }

    /// Unpin `prefix` and release the pinned chunks of every object under it
    /// that no other pinned prefix still covers.
    pub async fn unpin_prefix(&self, tenant: TenantId, bucket: &str, prefix: &str) -> Result<BucketRecord> {
        let pool = self.pinning_pool()?.clone();
        let rec = self
            .update_bucket(tenant, bucket, |rec| {
                let before = rec.pinned_prefixes.len();
                rec.pinned_prefixes.retain(|p| p != prefix);
                if rec.pinned_prefixes.len() == before {
                    return Err(Error::InvalidArgument(format!("prefix `{prefix}` is not pinned in this bucket")));
                }
                Ok(())
            })
            .await?;
        let scan = object_key(rec.id, prefix);
        let id_len = rec.id.as_bytes().len();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch =
                self.meta.scan_prefix(Table::Objects, &scan, after.as_deref(), SCAN_BATCH).await.map_err(meta_error)?;
            let done = batch.len() < SCAN_BATCH;
            for (k, v) in batch {
                let key = String::from_utf8_lossy(&k[id_len..]).into_owned();
                after = Some(k);
                if rec.chunk_policy(&key).pin {
                    continue;
                }
                let obj: ObjectRecord = decode(&v).map_err(meta_error)?;
                for (backend, blob) in obj.blobs() {
                    pool.unpin_blob(&format!("{backend}/{blob}")).await;
                }
            }
            if done {
                return Ok(rec);
            }
        }
    }
}
