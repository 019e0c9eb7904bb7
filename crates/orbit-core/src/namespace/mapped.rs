//! Mapped buckets: the object with key K is the backend object `<prefix>K`,
//! which other tools may write directly. Object metadata comes from the
//! backend (HEAD and LIST), remembered per the bucket's consistency mode;
//! bytes go through the same chunk cache as blobs, keyed by the object's
//! ETag, and are fetched only while the object still has that ETag.

use super::list::{ListPage, ListQuery, MAX_KEYS};
use super::object::{
    GetObject, ObjectBody, PutObject, ReadConditions, WriteConditions, check_read_conditions, check_write_conditions,
};
use super::{MAX_CAS_RETRIES, Namespace, ResolvedBucket};
use crate::gc::{due_value, gc_key};
use crate::layout::{Consistency, MappedLocation, MappingEntry, Mappings, normalize_prefix, overlaps};
use crate::records::{BucketRecord, ContentHeaders, ObjectRecord, PartRecord, Segment, bucket_key, new_blob_path};
use futures::{StreamExt, TryStreamExt};
use orbit_backend::{BackendError, BackendExt, BlobMeta, ListRequest};
use orbit_meta::{MetaError, Table, Txn, decode, encode};
use orbit_tenancy::meta_error;
use orbit_types::{BucketId, BucketName, Error, Resource, Result, TenantId, TenantName, now_ms};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Object metadata remembered per process before it is forgotten wholesale;
/// bounds memory, and forgetting only costs HEAD requests.
const META_CACHE_ENTRIES: usize = 100_000;
/// Restarts of a read whose object changed under it before giving up with a 503.
const READ_RESTARTS: usize = 3;

/// What the backend said about mapped objects (or that they were missing),
/// for the `ttl` and `exclusive` modes. `validate` never uses it.
#[derive(Default)]
pub(crate) struct MetaCache {
    map: Mutex<HashMap<(BucketId, String), Remembered>>,
}

/// The object as last described (None: missing), and when.
type Remembered = (Option<BlobMeta>, Instant);

impl MetaCache {
    fn get(&self, bucket: BucketId, key: &str, mode: Consistency) -> Option<Option<BlobMeta>> {
        let max_age = match mode {
            Consistency::Validate => return None,
            Consistency::Ttl { secs } => Some(Duration::from_secs(secs)),
            Consistency::Exclusive => None,
        };
        let map = self.map.lock().ok()?;
        let (meta, at) = map.get(&(bucket, key.to_owned()))?;
        if max_age.is_some_and(|m| at.elapsed() >= m) {
            return None;
        }
        Some(meta.clone())
    }

    fn put(&self, bucket: BucketId, key: &str, mode: Consistency, meta: Option<BlobMeta>) {
        if mode == Consistency::Validate {
            return;
        }
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= META_CACHE_ENTRIES {
                map.clear();
            }
            map.insert((bucket, key.to_owned()), (meta, Instant::now()));
        }
    }

    fn forget(&self, bucket: BucketId, key: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&(bucket, key.to_owned()));
        }
    }

    fn forget_bucket(&self, bucket: BucketId) {
        if let Ok(mut map) = self.map.lock() {
            map.retain(|(b, _), _| *b != bucket);
        }
    }
}

/// The backend path of key `key`, or the reason the backend cannot hold it.
/// Keys are never rewritten to fit: `a//b` and `a/b` would become one object.
pub(crate) fn mapped_path(m: &MappedLocation, key: &str) -> Result<String> {
    let path = format!("{}{key}", m.prefix);
    orbit_backend::check_path(&path).map_err(|why| {
        Error::InvalidArgument(format!("this key cannot be stored in a mapped bucket: its backend path has {why}"))
    })?;
    Ok(path)
}

fn unavailable(e: BackendError) -> Error {
    Error::Unavailable(e.to_string())
}

/// An object record for what the backend describes. Content headers, user
/// metadata and checksums are not kept for mapped objects.
fn record_of(meta: &BlobMeta) -> ObjectRecord {
    let etag = meta.etag.as_deref().unwrap_or_default().trim_start_matches("W/").trim_matches('"').to_owned();
    ObjectRecord {
        version: meta.version.clone().unwrap_or_else(|| etag.clone()),
        size: meta.size,
        etag,
        last_modified_ms: meta.last_modified_ms,
        headers: ContentHeaders::default(),
        user_metadata: Default::default(),
        checksum: None,
        segments: vec![],
        parts_count: None,
    }
}

impl Namespace {
    /// Whether a bucket of the tenant is mapped (a missing one is not: the
    /// ordinary path then reports it).
    pub(crate) async fn is_mapped(&self, tenant: TenantId, name: &str) -> Result<bool> {
        match self.resolve_bucket(tenant, name).await {
            Ok(b) => Ok(b.record.mapped.is_some()),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The object as the backend describes it, or as remembered under the bucket's mode.
    async fn mapped_head(&self, b: &BucketRecord, m: &MappedLocation, key: &str, fresh: bool) -> Result<BlobMeta> {
        let path = mapped_path(m, key)?;
        if !fresh && let Some(hit) = self.mapped_meta.get(b.id, key, m.mode) {
            return hit.ok_or(Error::NotFound(Resource::Object));
        }
        let meta = self.backend(&b.backend)?.head_opt(&path).await.map_err(unavailable)?;
        self.mapped_meta.put(b.id, key, m.mode, meta.clone());
        meta.ok_or(Error::NotFound(Resource::Object))
    }

    pub(crate) async fn mapped_lookup(
        &self,
        b: &BucketRecord,
        m: &MappedLocation,
        key: &str,
        get: &GetObject,
    ) -> Result<(BlobMeta, ObjectRecord, Option<Range<u64>>)> {
        let meta = self.mapped_head(b, m, key, false).await?;
        let rec = record_of(&meta);
        check_read_conditions(&rec, &get.conditions, false)?;
        let range = Self::requested_range(&rec, get)?;
        Ok((meta, rec, range))
    }

    /// GET of a mapped object. The first chunk is read before answering; if
    /// the object changed since its HEAD (or since the remembered one), the
    /// read starts over with the new version, so no response mixes two.
    pub(crate) async fn mapped_get(
        &self,
        b: &BucketRecord,
        m: &MappedLocation,
        key: &str,
        get: &GetObject,
        tap: super::read::HitTap,
    ) -> Result<ObjectBody> {
        for _ in 0..READ_RESTARTS {
            let (meta, record, range) = self.mapped_lookup(b, m, key, get).await?;
            let span = range.clone().unwrap_or(0..record.size);
            match self.stream_mapped(b.tenant_id, b.chunk_policy(key), &b.backend, &meta, span, Some(tap.clone())).await
            {
                Ok(stream) => return Ok(ObjectBody { record, range, stream }),
                Err(e @ (Error::PreconditionFailed | Error::Unavailable(_))) => {
                    // Did the object change, or is the backend failing?
                    let now = match self.mapped_head(b, m, key, true).await {
                        Ok(now) => now,
                        Err(Error::NotFound(r)) => return Err(Error::NotFound(r)),
                        Err(other) => return Err(other),
                    };
                    if now.etag == meta.etag && now.version == meta.version {
                        return Err(match e {
                            Error::PreconditionFailed => Error::Unavailable("the backend refused a read".into()),
                            other => other,
                        });
                    }
                }
                Err(other) => return Err(other),
            }
        }
        Err(Error::Unavailable("the object kept changing while it was read, retry".into()))
    }

    /// Bytes `span` of a copy source as resolved (`source`), whichever its bucket's layout.
    pub(crate) async fn copy_source_range(
        &self,
        b: &BucketRecord,
        key: &str,
        source: &ObjectRecord,
        span: Range<u64>,
    ) -> Result<orbit_backend::ByteStream> {
        let Some(m) = &b.mapped else {
            return self.stream_range(source, span, b.tenant_id, b.chunk_policy(key), None).await;
        };
        let meta = self.mapped_head(b, m, key, false).await?;
        if record_of(&meta).etag != source.etag {
            return Err(Error::Unavailable("the copy source changed during the copy, retry".into()));
        }
        self.stream_mapped(b.tenant_id, b.chunk_policy(key), &b.backend, &meta, span, None)
            .await
            .map_err(|_| Error::Unavailable("the copy source changed or failed during the copy, retry".into()))
    }

    /// Read a whole mapped object through the chunk cache (prefetch jobs).
    pub(crate) async fn mapped_warm(&self, b: &BucketRecord, m: &MappedLocation, key: &str) -> Result<Option<u64>> {
        let meta = match self.mapped_head(b, m, key, false).await {
            Ok(meta) => meta,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        // A prefetch is an explicit request to cache: admit on the first read.
        let policy = orbit_cache::ChunkPolicy { admit_on_second_miss: false, ..b.chunk_policy(key) };
        let mut stream = self.stream_mapped(b.tenant_id, policy, &b.backend, &meta, 0..meta.size, None).await?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            n += chunk.map_err(|e| Error::Unavailable(e.to_string()))?.len() as u64;
        }
        Ok(Some(n))
    }

    /// Write the verified bytes of `staging` (a blob of Orbit's own area) to
    /// `<prefix>K`, then forget the staging blob. Staging first means a body
    /// that fails its length or digest checks never replaces the object.
    async fn mapped_publish(
        &self,
        b: &BucketRecord,
        m: &MappedLocation,
        key: &str,
        path: &str,
        staging: &str,
    ) -> Result<BlobMeta> {
        let backend = self.backend(&b.backend)?.clone();
        let copied = backend.copy(staging, path).await;
        self.gc.discard(&b.backend, staging).await;
        self.mapped_meta.forget(b.id, key);
        copied.map_err(unavailable)?;
        let meta = backend.head(path).await.map_err(unavailable)?;
        self.mapped_meta.put(b.id, key, m.mode, Some(meta.clone()));
        Ok(meta)
    }

    /// Conditions of a write, against the object as the backend has it now
    /// (checked before the write, not atomically with it).
    async fn mapped_write_conditions(
        &self,
        b: &BucketRecord,
        m: &MappedLocation,
        key: &str,
        c: &WriteConditions,
    ) -> Result<()> {
        if c.if_match.is_none() && c.if_none_match.is_none() {
            return Ok(());
        }
        let current = match self.mapped_head(b, m, key, true).await {
            Ok(meta) => Some(record_of(&meta)),
            Err(Error::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        check_write_conditions(current.as_ref(), c)
    }

    pub(crate) async fn mapped_put(
        &self,
        b: &ResolvedBucket,
        m: &MappedLocation,
        key: &str,
        put: PutObject,
    ) -> Result<ObjectRecord> {
        let b = &b.record;
        let path = mapped_path(m, key)?;
        self.mapped_write_conditions(b, m, key, &put.conditions).await?;
        let staging = new_blob_path(b.id);
        let w = self
            .write_blob(
                b.tenant_id,
                &b.backend,
                staging,
                put.body,
                put.content_length,
                put.content_md5.as_deref(),
                put.checksum,
            )
            .await?;
        let meta = self.mapped_publish(b, m, key, &path, &w.blob).await?;
        let mut rec = record_of(&meta);
        rec.checksum = w.checksum.map(|(algorithm, value)| crate::records::StoredChecksum {
            algorithm,
            kind: crate::checksum::ChecksumKind::FullObject,
            value,
        });
        Ok(rec)
    }

    pub(crate) async fn mapped_delete(&self, b: &BucketRecord, m: &MappedLocation, key: &str) -> Result<()> {
        let path = mapped_path(m, key)?;
        let r = self.backend(&b.backend)?.delete(&path).await;
        self.mapped_meta.forget(b.id, key);
        r.map_err(unavailable)
    }

    /// Copy into or out of a mapped bucket: the bytes pass through Orbit, read
    /// as a GET would and written as a PUT would. Headers and user metadata
    /// go with them only into an Orbit-layout bucket.
    pub(crate) async fn mapped_copy(
        &self,
        caller: &orbit_tenancy::Caller,
        bucket: &str,
        key: &str,
        src: super::object::CopySource,
        directive: super::object::MetadataDirective,
        conditions: WriteConditions,
    ) -> Result<ObjectRecord> {
        if src.bucket == bucket && src.key == key {
            return Err(Error::InvalidRequest(
                "this copy request is illegal because it is trying to copy an object to itself".into(),
            ));
        }
        let sb = self.resolve_bucket(caller.tenant_id, &src.bucket).await?;
        let get = GetObject { conditions: ReadConditions::default(), ..Default::default() };
        let (source, stream) = match &sb.record.mapped {
            Some(m) => {
                let (meta, rec, _) = self.mapped_lookup(&sb.record, m, &src.key, &get).await?;
                check_read_conditions(&rec, &src.conditions, true)?;
                let s = self.stream_mapped(
                    sb.record.tenant_id,
                    sb.record.chunk_policy(&src.key),
                    &sb.record.backend,
                    &meta,
                    0..rec.size,
                    None,
                );
                (rec, s.await.map_err(|_| Error::Unavailable("the copy source changed or failed, retry".into()))?)
            }
            None => {
                let (_, rec) = self.resolve_copy_source_in(caller, &src).await?;
                let s = self
                    .stream_range(&rec, 0..rec.size, sb.record.tenant_id, sb.record.chunk_policy(&src.key), None)
                    .await?;
                (rec, s)
            }
        };
        let (headers, user_metadata) = match directive {
            super::object::MetadataDirective::Copy => (source.headers.clone(), source.user_metadata.clone()),
            super::object::MetadataDirective::Replace { headers, user_metadata } => (headers, user_metadata),
        };
        let put = PutObject {
            body: stream,
            content_length: Some(source.size),
            headers,
            user_metadata,
            content_md5: None,
            checksum: Default::default(),
            conditions,
        };
        self.put_object(caller, bucket, key, put).await
    }

    pub(crate) async fn mapped_list(&self, b: &BucketRecord, m: &MappedLocation, q: &ListQuery) -> Result<ListPage> {
        let delimiter = match q.delimiter.as_deref().filter(|d| !d.is_empty()) {
            None => false,
            Some("/") => true,
            Some(d) => {
                return Err(Error::InvalidArgument(format!(
                    "a mapped bucket lists only with the `/` delimiter, not `{d}`"
                )));
            }
        };
        let max = q.max_keys.min(MAX_KEYS);
        if max == 0 {
            return Ok(ListPage::default());
        }
        let req = ListRequest {
            prefix: format!("{}{}", m.prefix, q.prefix),
            delimiter,
            start_after: q.start_after.as_ref().map(|a| format!("{}{a}", m.prefix)),
            max,
        };
        let l = self.backend(&b.backend)?.list(&req).await.map_err(unavailable)?;
        let strip = |p: &str| p.strip_prefix(m.prefix.as_str()).unwrap_or(p).to_owned();
        let mut page = ListPage { is_truncated: l.truncated, ..Default::default() };
        page.objects = l.objects.iter().map(|o| (strip(&o.path), record_of(o))).collect();
        page.common_prefixes = l.common_prefixes.iter().map(|p| strip(p)).collect();
        page.next_marker = page.objects.last().map(|(k, _)| k.clone()).max(page.common_prefixes.last().cloned());
        Ok(page)
    }

    /// Complete a multipart upload into a mapped bucket: the parts (blobs in
    /// Orbit's own area) are streamed, in order, into one backend write of
    /// `<prefix>K`, then the upload and its parts are dropped.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn mapped_complete(
        &self,
        bucket: &ResolvedBucket,
        m: &MappedLocation,
        upload_key: &[u8],
        upload_raw: &[u8],
        stored: &[(Vec<u8>, Vec<u8>, PartRecord)],
        key: &str,
        rec: ObjectRecord,
        conditions: &WriteConditions,
    ) -> Result<ObjectRecord> {
        let b = &bucket.record;
        let path = mapped_path(m, key)?;
        self.mapped_write_conditions(b, m, key, conditions).await?;
        let backend = self.backend(&b.backend)?.clone();
        let segments: Vec<Segment> = rec.segments.clone();
        let mut sources = Vec::with_capacity(segments.len());
        for s in &segments {
            sources.push((self.backend(&s.backend)?.clone(), s.blob.clone()));
        }
        let body = futures::stream::iter(sources)
            .then(|(be, blob)| async move { be.get(&blob, None).await.map_err(std::io::Error::other) })
            .try_flatten()
            .boxed();
        let written = backend.put(&path, body).await.map_err(|e| match e {
            BackendError::Input(e) => Error::Unavailable(format!("reading the parts failed: {e}")),
            other => unavailable(other),
        })?;
        if written != rec.size {
            return Err(Error::Internal(format!("assembled {written} bytes of {}", rec.size)));
        }
        self.mapped_meta.forget(b.id, key);
        let mut txn = Txn::new()
            .require_equals(Table::Uploads, upload_key.to_vec(), upload_raw.to_vec())
            .delete(Table::Uploads, upload_key.to_vec());
        let mut part_bytes = 0i64;
        for (pk, pv, part) in stored {
            txn.conditions.push(orbit_meta::Condition::Equals {
                table: Table::Parts,
                key: pk.clone(),
                value: pv.clone(),
            });
            txn.push_delete(Table::Parts, pk.clone());
            txn.push_put(Table::Gc, gc_key(&part.backend, &part.blob), due_value(now_ms()));
            part_bytes += part.size as i64;
        }
        // Stored parts were counted as the tenant's bytes; the object they made
        // lives in the mapped location, outside usage, so they are given back.
        crate::usage::accounting::release(
            &mut txn,
            b.tenant_id,
            b.id,
            crate::usage::accounting::Charge::new(-part_bytes, 0),
        );
        match self.meta.commit(txn).await {
            Ok(()) => self.gc.wake(),
            // Aborted meanwhile: the object is written all the same; its parts go with the abort.
            Err(MetaError::Conflict) => {}
            Err(e) => return Err(meta_error(e)),
        }
        let meta = backend.head(&path).await.map_err(unavailable)?;
        self.mapped_meta.put(b.id, key, m.mode, Some(meta.clone()));
        Ok(ObjectRecord { parts_count: rec.parts_count, ..record_of(&meta) })
    }

    /// Create a bucket of a tenant mapped onto `prefix` of `backend` (the
    /// operator's decision: callers authorise first). No two buckets of any
    /// tenants may map overlapping locations.
    pub async fn create_mapped_bucket_in(
        &self,
        tenant: TenantId,
        tenant_name: &TenantName,
        name: &BucketName,
        backend: &str,
        prefix: &str,
        mode: Consistency,
    ) -> Result<BucketRecord> {
        if !self.has_backend(backend) {
            return Err(Error::InvalidArgument(format!("unknown backend `{backend}`")));
        }
        let prefix = normalize_prefix(prefix)?;
        let rec = BucketRecord {
            id: BucketId::generate(),
            tenant_id: tenant,
            name: name.clone(),
            created_ms: now_ms(),
            home_site: self.site.clone(),
            backend: backend.to_owned(),
            cache: Default::default(),
            mapped: Some(MappedLocation { prefix: prefix.clone(), mode }),
            pinned_prefixes: Vec::new(),
        };
        let key = bucket_key(tenant, name);
        for _ in 0..MAX_CAS_RETRIES {
            let (raw, mut maps) = self.mappings(backend).await?;
            if let Some(other) = maps.entries.iter().find(|e| overlaps(&e.prefix, &prefix)) {
                return Err(Error::Conflict(format!(
                    "location `{prefix}` of backend `{backend}` overlaps `{}`, which another bucket maps",
                    other.prefix
                )));
            }
            maps.entries.push(MappingEntry { prefix: prefix.clone(), tenant_id: tenant, bucket_id: rec.id });
            let txn = Txn::new()
                .require_equals(
                    Table::TenantNames,
                    tenant_name.as_str().as_bytes().to_vec(),
                    tenant.as_bytes().to_vec(),
                )
                .require_absent(Table::Buckets, key.clone())
                .require_current(Table::Mappings, backend.as_bytes().to_vec(), raw)
                .put(Table::Buckets, key.clone(), encode(&rec))
                .put(Table::Mappings, backend.as_bytes().to_vec(), encode(&maps));
            match self.meta.commit(txn).await {
                Ok(()) => return Ok(rec),
                Err(MetaError::Conflict) => {
                    if self.meta.get(Table::Buckets, &key).await.map_err(meta_error)?.is_some() {
                        return Err(Error::AlreadyExists(Resource::Bucket));
                    }
                    // The tenant is gone, or another mapping raced ours: look again.
                }
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::NotFound(Resource::Tenant))
    }

    async fn mappings(&self, backend: &str) -> Result<(Option<Vec<u8>>, Mappings)> {
        let raw = self.meta.get(Table::Mappings, backend.as_bytes()).await.map_err(meta_error)?;
        let maps = match &raw {
            Some(r) => decode(r).map_err(meta_error)?,
            None => Mappings::default(),
        };
        Ok((raw, maps))
    }

    /// Change how fresh a mapped bucket's reads are.
    pub async fn set_mapped_mode(&self, tenant: TenantId, name: &str, mode: Consistency) -> Result<BucketRecord> {
        for _ in 0..MAX_CAS_RETRIES {
            let b = self.resolve_bucket(tenant, name).await?;
            let mut rec = b.record.clone();
            let Some(m) = rec.mapped.as_mut() else {
                return Err(Error::InvalidRequest(
                    "only a mapped bucket has a consistency mode (Orbit is the only writer of this one)".into(),
                ));
            };
            m.mode = mode;
            let txn = Txn::new().require_equals(Table::Buckets, b.key.clone(), b.raw.clone()).put(
                Table::Buckets,
                b.key,
                encode(&rec),
            );
            match self.meta.commit(txn).await {
                Ok(()) => {
                    self.mapped_meta.forget_bucket(rec.id);
                    return Ok(rec);
                }
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("the bucket kept changing, retry".into()))
    }

    /// Add to a bucket deletion what unmaps a mapped bucket. Its objects stay
    /// in the backend; without `force`, a location that holds any is refused.
    pub(crate) async fn mapped_unmap(&self, mut txn: Txn, b: &BucketRecord, force: bool) -> Result<Txn> {
        let Some(m) = &b.mapped else { return Ok(txn) };
        let backend = self.backend(&b.backend)?;
        if !force {
            let req = ListRequest { prefix: m.prefix.clone(), delimiter: false, start_after: None, max: 1 };
            if !backend.list(&req).await.map_err(unavailable)?.objects.is_empty() {
                return Err(Error::NotEmpty(Resource::Bucket));
            }
        }
        let (raw, mut maps) = self.mappings(&b.backend).await?;
        maps.entries.retain(|e| e.bucket_id != b.id);
        let key = b.backend.as_bytes().to_vec();
        txn = txn.require_current(Table::Mappings, key.clone(), raw);
        txn = if maps.entries.is_empty() {
            txn.delete(Table::Mappings, key)
        } else {
            txn.put(Table::Mappings, key, encode(&maps))
        };
        self.mapped_meta.forget_bucket(b.id);
        Ok(txn)
    }
}
