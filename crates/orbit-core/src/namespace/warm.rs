//! Warming the cache with objects, for prefetch jobs.

use super::Namespace;
use futures::StreamExt;
use orbit_types::{Error, Result, TenantId};

impl Namespace {
    /// Read a whole object through the chunk cache, keeping nothing but the
    /// cached chunks. Returns the bytes read, or None when the object no
    /// longer exists. Fails when there is no cache to warm.
    pub async fn warm_object(&self, tenant: TenantId, bucket: &str, key: &str) -> Result<Option<u64>> {
        if self.cache.is_none() {
            return Err(Error::InvalidRequest("the chunk cache is disabled on this site".into()));
        }
        let b = self.resolve_bucket(tenant, bucket).await?;
        if let Some(remote) = self.remote_for(&b.record) {
            return remote.warm_object(tenant, &b.record, key).await;
        }
        if let Some(m) = &b.record.mapped {
            return self.mapped_warm(&b.record, m, key).await;
        }
        let Some((_, rec)) = self.read_object(b.record.id, key).await? else { return Ok(None) };
        // A prefetch is an explicit request to cache: admit on the first read.
        let policy = orbit_cache::ChunkPolicy { admit_on_second_miss: false, ..b.record.chunk_policy(key) };
        let mut stream = self.stream_range(&rec, 0..rec.size, tenant, policy, None).await?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            n += chunk.map_err(|e| Error::Unavailable(e.to_string()))?.len() as u64;
        }
        Ok(Some(n))
    }
}
