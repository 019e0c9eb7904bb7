//! The hooks of the global namespace. orbit-core knows nothing of sites,
//! leases or peers; it only asks two questions, through traits another crate
//! (orbit-global) implements and the binary installs:
//!
//! - for a bucket homed at this site, may a write of these keys be committed
//!   now? ([`WriteGate`]: every lease covering the keys is invalidated or
//!   surely expired first, so no other site still serves the old value);
//! - for a bucket homed at another site, who serves this operation?
//!   ([`RemoteBuckets`]: the satellite path, which never touches this site's
//!   object tables for such a bucket).

use super::Namespace;
use super::list::{ListPage, ListQuery};
use super::multipart::{CompletedPart, PartsPage, UploadsPage};
use super::object::{CopySource, GetObject, MetadataDirective, ObjectBody, PutObject, WriteConditions};
use crate::checksum::{ChecksumAlgorithm, ChecksumKind, ExpectedChecksum};
use crate::records::{BucketRecord, ObjectRecord};
use crate::records::{ContentHeaders, PartRecord, UploadRecord};
use async_trait::async_trait;
use orbit_backend::ByteStream;
use orbit_tenancy::Caller;
use orbit_types::{Error, Result, TenantId};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

/// Permission to commit one gated write. Call [`WritePass::committed`] once
/// the commit succeeded; dropping it without (a failed commit, a client that
/// went away) abandons the write.
pub struct WritePass {
    done: Option<Box<dyn FnOnce(bool) + Send>>,
}

impl WritePass {
    /// A pass that needs no report (no gate installed, or nothing to gate).
    pub fn free() -> Self {
        Self { done: None }
    }

    /// A pass whose `done` learns whether the write was committed.
    pub fn new(done: impl FnOnce(bool) + Send + 'static) -> Self {
        Self { done: Some(Box::new(done)) }
    }

    pub fn committed(mut self) {
        if let Some(done) = self.done.take() {
            done(true);
        }
    }
}

impl Drop for WritePass {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            done(false);
        }
    }
}

/// The home site's write gate: consulted before every commit of an object
/// write (put, copy destination, delete, multipart completion) of a bucket
/// homed at this site.
#[async_trait]
pub trait WriteGate: Send + Sync + 'static {
    /// Returns once `keys` of `bucket` may be committed. With no other site
    /// holding a lease over them this must cost next to nothing.
    async fn open(&self, bucket: &BucketRecord, keys: &[String]) -> Result<WritePass>;

    /// Whether another site holds a write lease over `key`: it is the
    /// authority for the key, so reads go to it (through [`RemoteBuckets`]).
    fn key_held_elsewhere(&self, _bucket: &BucketRecord, _key: &str) -> bool {
        false
    }

    /// Whether a listing of `prefix` may show a key another site holds a
    /// write lease over.
    fn listing_held_elsewhere(&self, _bucket: &BucketRecord, _prefix: &str) -> bool {
        false
    }
}

/// The satellite path: object operations on a bucket homed at another site.
/// The caller's access to the bucket and key has been checked already.
#[async_trait]
pub trait RemoteBuckets: Send + Sync + 'static {
    async fn head_object(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        get: &GetObject,
    ) -> Result<(ObjectRecord, Option<Range<u64>>)>;

    async fn get_object(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        get: &GetObject,
    ) -> Result<ObjectBody>;

    /// A listing for work done on the tenant's behalf (the caller's access
    /// was checked, if there is a caller).
    async fn list_objects(&self, tenant: TenantId, bucket: &BucketRecord, q: &ListQuery) -> Result<ListPage>;

    /// Reads a whole object into this site's cache (a prefetch job's step):
    /// the bytes read, or none when the object does not exist.
    async fn warm_object(&self, tenant: TenantId, bucket: &BucketRecord, key: &str) -> Result<Option<u64>>;

    async fn put_object(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        put: PutObject,
    ) -> Result<ObjectRecord>;

    async fn delete_object(&self, caller: &Caller, bucket: &BucketRecord, key: &str) -> Result<()>;

    /// Multipart steps, forwarded to the home site (uploads live there only).
    #[allow(clippy::too_many_arguments)]
    async fn create_upload(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        headers: ContentHeaders,
        user_metadata: BTreeMap<String, String>,
        checksum_algorithm: Option<ChecksumAlgorithm>,
        checksum_kind: Option<ChecksumKind>,
    ) -> Result<UploadRecord>;

    #[allow(clippy::too_many_arguments)]
    async fn upload_part(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        upload_id: &str,
        number: u32,
        body: ByteStream,
        content_length: Option<u64>,
        content_md5: Option<&str>,
        checksum: ExpectedChecksum,
    ) -> Result<PartRecord>;

    #[allow(clippy::too_many_arguments)]
    async fn complete_upload(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        conditions: WriteConditions,
        expected_checksum: Option<(ChecksumAlgorithm, String)>,
    ) -> Result<ObjectRecord>;

    async fn abort_upload(&self, caller: &Caller, bucket: &BucketRecord, key: &str, upload_id: &str) -> Result<()>;

    #[allow(clippy::too_many_arguments)]
    async fn list_parts(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        upload_id: &str,
        after: Option<u32>,
        max: usize,
    ) -> Result<PartsPage>;

    #[allow(clippy::too_many_arguments)]
    async fn list_uploads(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> Result<UploadsPage>;

    /// A copy into `bucket`; `source` is the source's bucket, homed wherever.
    #[allow(clippy::too_many_arguments)]
    async fn copy_object(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        source: &BucketRecord,
        src: CopySource,
        directive: MetadataDirective,
        conditions: WriteConditions,
    ) -> Result<ObjectRecord>;
}

impl Namespace {
    /// Gate every write of buckets homed at this site through `gate`.
    pub fn with_write_gate(mut self, gate: Arc<dyn WriteGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// Serve buckets homed at other sites through `remote`.
    pub fn with_remote_buckets(mut self, remote: Arc<dyn RemoteBuckets>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The satellite path for `bucket`, if it is homed elsewhere and one is installed.
    pub(crate) fn remote_for(&self, bucket: &BucketRecord) -> Option<&Arc<dyn RemoteBuckets>> {
        self.remote.as_ref().filter(|_| bucket.home_site != self.site)
    }

    /// Who serves a read of `key`: the satellite path for a bucket homed
    /// elsewhere, and for a key of a bucket homed here while another site
    /// holds a write lease over it.
    pub(crate) fn read_remote_for(&self, bucket: &BucketRecord, key: &str) -> Option<&Arc<dyn RemoteBuckets>> {
        self.remote_unless_held_here(bucket, |g| g.key_held_elsewhere(bucket, key))
    }

    /// [`Self::read_remote_for`] for a listing of `prefix`.
    pub(crate) fn list_remote_for(&self, bucket: &BucketRecord, prefix: &str) -> Option<&Arc<dyn RemoteBuckets>> {
        self.remote_unless_held_here(bucket, |g| g.listing_held_elsewhere(bucket, prefix))
    }

    /// The satellite path when `bucket` is homed elsewhere, or homed here
    /// and `held_elsewhere` says another site's write lease covers the read.
    fn remote_unless_held_here(
        &self,
        bucket: &BucketRecord,
        held_elsewhere: impl FnOnce(&dyn WriteGate) -> bool,
    ) -> Option<&Arc<dyn RemoteBuckets>> {
        let homed_here = bucket.home_site == self.site;
        let held = || homed_here && self.gate.as_deref().is_some_and(held_elsewhere);
        self.remote.as_ref().filter(|_| !homed_here || held())
    }

    /// A safety net: every multipart step of a bucket homed elsewhere is
    /// forwarded (or, for a part copy, read and sent as a part) before it
    /// would reach the local path.
    pub(crate) fn refuse_remote_multipart(&self, bucket: &BucketRecord) -> Result<()> {
        if self.remote_for(bucket).is_some() {
            return Err(Error::NotImplemented("this multipart step is not forwarded to the bucket's home site".into()));
        }
        Ok(())
    }

    /// The satellite path and the bucket for a multipart step on `key`, if
    /// the bucket is homed elsewhere (the caller may write the key).
    pub(crate) async fn remote_upload(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(Arc<dyn RemoteBuckets>, BucketRecord)>> {
        if self.remote.is_none() {
            return Ok(None);
        }
        super::access::require_write_key(caller, bucket, key)?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        Ok(self.remote_for(&b.record).cloned().map(|r| (r, b.record)))
    }

    /// Waits at the write gate for `keys` of `bucket`, if it is homed here.
    pub(crate) async fn open_gate(&self, bucket: &BucketRecord, keys: &[String]) -> Result<WritePass> {
        match &self.gate {
            Some(g) if bucket.home_site == self.site && bucket.mapped.is_none() => g.open(bucket, keys).await,
            _ => Ok(WritePass::free()),
        }
    }
}

/// What the home site answers a satellite's read with, and the checks a
/// satellite applies to a record fetched from home.
impl Namespace {
    /// The bucket `name` of `tenant`, which must be `id` (a bucket deleted and
    /// made again under the same name is another bucket) and homed here.
    pub async fn homed_bucket(&self, tenant: TenantId, name: &str, id: orbit_types::BucketId) -> Result<BucketRecord> {
        let b = self.resolve_bucket(tenant, name).await?;
        if b.record.id != id || b.record.home_site != self.site {
            return Err(Error::NotFound(orbit_types::Resource::Bucket));
        }
        Ok(b.record)
    }

    /// The current record of `key` in a bucket homed here (none if absent).
    pub async fn home_record(&self, bucket: &BucketRecord, key: &str) -> Result<Option<ObjectRecord>> {
        if bucket.mapped.is_some() {
            return Err(Error::NotImplemented("mapped buckets are not served to other sites".into()));
        }
        Ok(self.read_object(bucket.id, key).await?.map(|(_, r)| r))
    }

    /// Bytes `span` of `key` while it is still the version `version`;
    /// `PreconditionFailed` once the key holds another version (the satellite
    /// starts over). Read through this site's cache.
    pub async fn home_bytes(
        &self,
        bucket: &BucketRecord,
        key: &str,
        version: &str,
        span: Range<u64>,
    ) -> Result<orbit_backend::ByteStream> {
        let rec = self.home_record(bucket, key).await?.ok_or(Error::PreconditionFailed)?;
        if rec.version != version {
            return Err(Error::PreconditionFailed);
        }
        if span.start > span.end || span.end > rec.size {
            return Err(Error::InvalidRange);
        }
        self.stream_range(&rec, span, bucket.tenant_id, bucket.chunk_policy(key), None).await
    }

    /// The conditions and range of `get` against `rec`: the byte range to
    /// serve (none for the whole object), or the S3 answer (304, 412, 416).
    pub fn check_read(rec: &ObjectRecord, get: &GetObject) -> Result<Option<Range<u64>>> {
        super::object::check_read_conditions(rec, &get.conditions, false)?;
        Self::requested_range(rec, get)
    }

    /// The copy-source conditions of a copy against its source record.
    pub fn check_copy_source(rec: &ObjectRecord, src: &CopySource) -> Result<()> {
        super::object::check_read_conditions(rec, &src.conditions, true)
    }
}
