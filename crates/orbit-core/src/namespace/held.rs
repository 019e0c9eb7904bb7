//! What the write leases of the global namespace need from the namespace,
//! without orbit-core knowing of leases: a write-lease holder stages the
//! writes it acknowledges as blobs and records of its own (claimed by its
//! own commit), and the home site applies them later on the holder's behalf,
//! the caller's access having been checked where the write was taken.

use super::Namespace;
use super::object::PutObject;
use crate::gc::{SUPERSEDED_GRACE_MS, due_value, gc_key};
use crate::records::{BucketRecord, ObjectRecord, new_blob_path};
use orbit_backend::{ByteStream, ObjectAttributes};
use orbit_meta::Txn;
use orbit_types::{Error, Result, TenantId, now_ms};
use std::ops::Range;

impl Namespace {
    /// Stores `put`'s body as a fresh blob of `backend` with every check a
    /// PUT makes (length, Content-MD5, checksums), and returns the record it
    /// would have. Nothing refers to the blob yet: it is collected unless a
    /// commit claims it ([`Self::claim_blobs`]). Conditions are the caller's.
    pub async fn stage_object(&self, bucket: &BucketRecord, backend: &str, put: PutObject) -> Result<ObjectRecord> {
        let w = self
            .write_blob(
                bucket.tenant_id,
                backend,
                new_blob_path(bucket.id),
                put.body,
                put.content_length,
                put.content_md5.as_deref(),
                put.checksum,
                &ObjectAttributes::default(),
            )
            .await?;
        Ok(w.into_record(put.headers, put.user_metadata))
    }

    /// Adds to `txn` the claim on `rec`'s blobs: once committed they are
    /// kept until retired.
    pub fn claim_blobs(txn: &mut Txn, rec: &ObjectRecord) {
        for (backend, blob) in rec.blobs() {
            txn.push_delete(orbit_meta::Table::Gc, gc_key(backend, blob));
        }
    }

    /// Adds to `txn` the retirement of `rec`'s blobs: collected after the
    /// grace that lets reads in flight finish.
    pub fn retire_blobs(txn: &mut Txn, rec: &ObjectRecord) {
        let due = due_value(now_ms() + SUPERSEDED_GRACE_MS);
        for (backend, blob) in rec.blobs() {
            txn.push_put(orbit_meta::Table::Gc, gc_key(backend, blob), due.clone());
        }
    }

    /// Drops the blobs of a staged record that will never be committed.
    pub async fn discard_blobs(&self, rec: &ObjectRecord) {
        for (backend, blob) in rec.blobs() {
            self.gc.discard(backend, blob).await;
        }
    }

    /// Bytes `span` of a record this site holds (a staged one), through its cache.
    pub async fn record_bytes(
        &self,
        rec: &ObjectRecord,
        span: Range<u64>,
        bucket: &BucketRecord,
        key: &str,
    ) -> Result<ByteStream> {
        if span.start > span.end || span.end > rec.size {
            return Err(Error::InvalidRange);
        }
        self.stream_range(rec, span, bucket.tenant_id, bucket.chunk_policy(key), None).await
    }

    /// A put into `bucket` (homed here) made on a write-lease holder's
    /// behalf: its writer's access was checked at the holder.
    pub async fn apply_put(&self, bucket: &BucketRecord, key: &str, put: PutObject) -> Result<ObjectRecord> {
        let b = self.resolve_bucket(bucket.tenant_id, bucket.name.as_str()).await?;
        if b.record.id != bucket.id {
            return Err(Error::NotFound(orbit_types::Resource::Bucket));
        }
        self.put_resolved(bucket.tenant_id, bucket.name.as_str(), b, key, put).await
    }

    /// A delete in `bucket` (homed here) made on a write-lease holder's behalf.
    pub async fn apply_delete(&self, bucket: &BucketRecord, key: &str) -> Result<()> {
        let b = self.resolve_bucket(bucket.tenant_id, bucket.name.as_str()).await?;
        if b.record.id != bucket.id {
            return Err(Error::NotFound(orbit_types::Resource::Bucket));
        }
        self.delete_resolved(bucket.tenant_id, bucket.name.as_str(), b, key).await
    }
}

impl Namespace {
    /// The bucket `name` of `tenant`, wherever it is homed; `id` (when
    /// given) must match, as a bucket made again under the same name is
    /// another bucket.
    pub async fn bucket_record(
        &self,
        tenant: TenantId,
        name: &str,
        id: Option<orbit_types::BucketId>,
    ) -> Result<BucketRecord> {
        let b = self.resolve_bucket(tenant, name).await?;
        if id.is_some_and(|id| id != b.record.id) {
            return Err(Error::NotFound(orbit_types::Resource::Bucket));
        }
        Ok(b.record)
    }
}

impl Namespace {
    /// A listing of a bucket homed here from this site's own tables, whoever
    /// holds leases over it: home's answer to a satellite, or to the holder
    /// of a write lease listing what it has flushed.
    pub async fn home_list(&self, bucket: &BucketRecord, q: &super::list::ListQuery) -> Result<super::list::ListPage> {
        if bucket.mapped.is_some() {
            return Err(Error::NotImplemented("mapped buckets are not served to other sites".into()));
        }
        super::list::list_in(&*self.meta, bucket.id.as_bytes(), q).await
    }
}

impl Namespace {
    /// The bucket with id `id` if it is homed at this site (and not mapped):
    /// what another site may take a write lease in. A scan of the bucket
    /// table, for the rare lease acquisition.
    pub async fn homed_bucket_by_id(&self, id: orbit_types::BucketId) -> Result<Option<BucketRecord>> {
        let rows = self
            .meta
            .scan(orbit_meta::Table::Buckets, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, usize::MAX)
            .await
            .map_err(orbit_tenancy::meta_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|(_, raw)| orbit_meta::decode::<BucketRecord>(&raw).ok())
            .find(|b| b.id == id && b.home_site == self.site && b.mapped.is_none()))
    }
}

impl Namespace {
    /// Makes `rec`, staged in `bucket`'s own backend with
    /// [`Self::stage_object`], the object at `key` (homed here): a write a
    /// write-lease holder acknowledged, applied on its behalf. The staged
    /// blobs are dropped if the commit fails.
    pub async fn apply_staged_put(&self, bucket: &BucketRecord, key: &str, rec: &ObjectRecord) -> Result<()> {
        let b = self.resolve_bucket(bucket.tenant_id, bucket.name.as_str()).await?;
        if b.record.id != bucket.id || b.record.mapped.is_some() {
            self.discard_blobs(rec).await;
            return Err(Error::NotFound(orbit_types::Resource::Bucket));
        }
        let conditions = super::object::WriteConditions::default();
        self.commit_object(bucket.tenant_id, bucket.name.as_str(), key, rec, &conditions).await?;
        self.meter.bytes_in(bucket.tenant_id, bucket.name.as_str(), rec.size);
        Ok(())
    }
}
