//! Mapped buckets: the object with key K is the backend object `<prefix>K`,
//! which other tools may write directly. Object metadata comes from the
//! backend (HEAD and LIST), remembered per the bucket's consistency mode;
//! bytes go through the same chunk cache as blobs, keyed by the object's
//! ETag, and are fetched only while the object still has that ETag.
//!
//! Content headers, user metadata and checksums live on the backend object
//! itself (as attributes: `x-amz-meta-*` on S3), so other tools see and set
//! them; writes through Orbit count in usage and quotas.

use super::list::{ListPage, ListQuery, MAX_KEYS};
use super::object::{
    GetObject, ObjectBody, PutObject, ReadConditions, WriteConditions, check_read_conditions, check_write_conditions,
    parse_content_md5, verify_body,
};
use super::{MAX_CAS_RETRIES, Namespace, ResolvedBucket};
use crate::checksum::{BodyDigests, ChecksumAlgorithm, ChecksumKind};
use crate::gc::{due_value, gc_key};
use crate::layout::{Consistency, MappedLocation, MappingEntry, Mappings, normalize_prefix, overlaps};
use crate::records::{
    BucketRecord, ContentHeaders, ObjectRecord, PartRecord, Segment, StoredChecksum, bucket_key, new_blob_path,
};
use crate::usage::accounting::{Charge, Guard, release};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orbit_backend::{BackendError, BackendExt, BlobMeta, ListRequest, ObjectAttributes};
use orbit_meta::{MetaError, Table, Txn, decode, encode};
use orbit_tenancy::meta_error;
use orbit_types::{BucketId, BucketName, Error, Resource, Result, TenantId, TenantName, now_ms};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Object metadata remembered per process before it is forgotten wholesale;
/// bounds memory, and forgetting only costs HEAD requests.
const META_CACHE_ENTRIES: usize = 100_000;
/// Restarts of a read whose object changed under it before giving up with a 503.
const READ_RESTARTS: usize = 3;
/// Bodies up to this size are verified in memory and written to `<prefix>K`
/// in one request with every attribute; larger ones are staged first.
const INLINE_PUT_MAX: u64 = 8 << 20;
/// User metadata names under which a mapped object keeps what object stores
/// have no attribute for. Underscores, since Azure allows only identifiers.
const CHECKSUM_META: &str = "orbit_checksum";
const EXPIRES_META: &str = "orbit_expires";

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

/// The attributes a mapped object is written with: its content headers, its
/// user metadata, and Orbit's own entries for Expires and the checksum.
fn attributes_of(
    headers: &ContentHeaders,
    user_metadata: &BTreeMap<String, String>,
    checksum: Option<&StoredChecksum>,
) -> ObjectAttributes {
    let mut metadata = user_metadata.clone();
    if let Some(e) = &headers.expires {
        metadata.insert(EXPIRES_META.into(), e.clone());
    }
    if let Some(c) = checksum {
        metadata.insert(CHECKSUM_META.into(), format!("{} {} {}", c.algorithm.as_str(), c.kind.as_str(), c.value));
    }
    ObjectAttributes {
        content_type: headers.content_type.clone(),
        content_encoding: headers.content_encoding.clone(),
        content_disposition: headers.content_disposition.clone(),
        content_language: headers.content_language.clone(),
        cache_control: headers.cache_control.clone(),
        metadata,
    }
}

/// Orbit's checksum entry (`ALGORITHM KIND VALUE`); None if it is not one.
fn parse_checksum(s: &str) -> Option<StoredChecksum> {
    let mut it = s.split(' ');
    let algorithm: ChecksumAlgorithm = it.next()?.parse().ok()?;
    let kind = match it.next()? {
        "FULL_OBJECT" => ChecksumKind::FullObject,
        "COMPOSITE" => ChecksumKind::Composite,
        _ => return None,
    };
    let value = it.next()?.to_owned();
    it.next().is_none().then_some(StoredChecksum { algorithm, kind, value })
}

/// User metadata names Orbit keeps for itself on mapped objects.
pub(crate) fn check_reserved_metadata(user_metadata: &BTreeMap<String, String>) -> Result<()> {
    for name in [CHECKSUM_META, EXPIRES_META] {
        if user_metadata.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(Error::InvalidArgument(format!(
                "user metadata `x-amz-meta-{name}` is reserved in a mapped bucket (Orbit keeps it on the object)"
            )));
        }
    }
    Ok(())
}

/// An object record for what the backend describes, with the content
/// headers, user metadata and checksum its attributes hold (none in
/// listings, which carry no attributes).
fn record_of(meta: &BlobMeta) -> ObjectRecord {
    let etag = meta.etag.as_deref().unwrap_or_default().trim_start_matches("W/").trim_matches('"').to_owned();
    let a = &meta.attributes;
    let mut user_metadata = a.metadata.clone();
    let expires = user_metadata.remove(EXPIRES_META);
    // A malformed entry (written by someone else) is no checksum at all.
    let checksum = user_metadata.remove(CHECKSUM_META).and_then(|c| parse_checksum(&c));
    ObjectRecord {
        version: meta.version.clone().unwrap_or_else(|| etag.clone()),
        size: meta.size,
        etag,
        last_modified_ms: meta.last_modified_ms,
        headers: ContentHeaders {
            content_type: a.content_type.clone(),
            content_encoding: a.content_encoding.clone(),
            content_disposition: a.content_disposition.clone(),
            content_language: a.content_language.clone(),
            cache_control: a.cache_control.clone(),
            expires,
        },
        user_metadata,
        checksum,
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

    /// The size of the object a write would replace, as the bucket's mode
    /// describes it (None: no object). Counted in usage; a write elsewhere
    /// that this description misses is what `usage recount` corrects.
    async fn mapped_previous(&self, b: &BucketRecord, m: &MappedLocation, key: &str) -> Result<Option<u64>> {
        match self.mapped_head(b, m, key, false).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Count a write into a mapped bucket before it reaches the backend,
    /// with the hard quotas as conditions of the commit (as the blob layout
    /// does), so a refused write never touches the object. The bucket must
    /// still be the one resolved.
    async fn mapped_charge(&self, b: &BucketRecord, charge: Charge) -> Result<()> {
        if charge.is_zero() {
            return Ok(());
        }
        for _ in 0..MAX_CAS_RETRIES {
            let now = self.resolve_bucket(b.tenant_id, b.name.as_str()).await?;
            if now.record.id != b.id {
                return Err(Error::NotFound(Resource::Bucket));
            }
            let guard = Guard::read(&*self.meta, &now.record).await?;
            let mut txn = Txn::new().require_equals(Table::Buckets, now.key.clone(), now.raw.clone());
            let soft = guard.charge(&mut txn, charge)?;
            match self.meta.commit(txn).await {
                Ok(()) => {
                    guard.report(soft);
                    return Ok(());
                }
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("too many concurrent writes to the bucket, retry".into()))
    }

    /// Give back usage counted by [`Self::mapped_charge`] for a write that
    /// failed, or taken by a delete. A failure here leaves drift for
    /// `usage recount`, never a failed request.
    async fn mapped_release(&self, b: &BucketRecord, charge: Charge) {
        let mut txn = Txn::new();
        release(&mut txn, b.tenant_id, b.id, charge);
        if txn.ops.is_empty() {
            return;
        }
        if let Err(e) = self.meta.commit(txn).await {
            tracing::warn!(tenant = %b.tenant_id, bucket = %b.id, error = %e, "mapped bucket usage not updated; a recount corrects it");
        }
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
        check_reserved_metadata(&put.user_metadata)?;
        self.mapped_write_conditions(b, m, key, &put.conditions).await?;
        let content_md5 = parse_content_md5(put.content_md5.as_deref())?;
        // Gather a small body whole: verified in memory, it is written to the
        // path in one request with every attribute, its checksum included.
        let mut body = put.body;
        let mut first: Vec<Bytes> = Vec::new();
        let mut gathered = 0u64;
        let mut ended = false;
        while gathered <= INLINE_PUT_MAX {
            match body.next().await {
                Some(Ok(c)) => {
                    gathered += c.len() as u64;
                    first.push(c);
                }
                Some(Err(e)) => return Err(Error::IncompleteBody(e.to_string())),
                None => {
                    ended = true;
                    break;
                }
            }
        }
        let previous = self.mapped_previous(b, m, key).await?;
        let backend = self.backend(&b.backend)?.clone();
        if ended {
            let mut digests = BodyDigests::new(put.checksum.algorithm);
            for c in &first {
                digests.update(c);
            }
            let v = verify_body(digests, gathered, put.content_length, content_md5, put.checksum)?;
            let checksum = v.checksum.map(|(algorithm, value)| StoredChecksum {
                algorithm,
                kind: ChecksumKind::FullObject,
                value,
            });
            let attrs = attributes_of(&put.headers, &put.user_metadata, checksum.as_ref());
            let charge = Charge::new(gathered as i64 - previous.unwrap_or(0) as i64, i64::from(previous.is_none()));
            self.mapped_charge(b, charge).await?;
            let stream = futures::stream::iter(first.into_iter().map(Ok)).boxed();
            let written = backend.put_with_attributes(&path, stream, &attrs).await;
            self.mapped_meta.forget(b.id, key);
            if let Err(e) = written {
                self.mapped_release(b, Charge::new(-charge.bytes, -charge.objects)).await;
                return Err(unavailable(e));
            }
            let meta = backend.head(&path).await.map_err(unavailable)?;
            self.mapped_meta.put(b.id, key, m.mode, Some(meta.clone()));
            return Ok(record_of(&meta));
        }
        // A large body is staged and verified in Orbit's own area first, so
        // one that fails its checks never replaces the object. Its checksum
        // is stored when the client sent it before the body (a trailer's
        // comes too late for the staged object's attributes).
        let known = match (&put.checksum.algorithm, &put.checksum.value) {
            (Some(algorithm), Some(value)) => Some(StoredChecksum {
                algorithm: *algorithm,
                kind: ChecksumKind::FullObject,
                value: value.trim().into(),
            }),
            _ => None,
        };
        let attrs = attributes_of(&put.headers, &put.user_metadata, known.as_ref());
        let body = futures::stream::iter(first.into_iter().map(Ok)).chain(body).boxed();
        let staging = new_blob_path(b.id);
        let w = self
            .write_blob(
                b.tenant_id,
                &b.backend,
                staging,
                body,
                put.content_length,
                put.content_md5.as_deref(),
                put.checksum,
                &attrs,
            )
            .await?;
        let charge = Charge::new(w.size as i64 - previous.unwrap_or(0) as i64, i64::from(previous.is_none()));
        if let Err(e) = self.mapped_charge(b, charge).await {
            self.gc.discard(&b.backend, &w.blob).await;
            return Err(e);
        }
        match self.mapped_publish(b, m, key, &path, &w.blob).await {
            Ok(meta) => Ok(record_of(&meta)),
            Err(e) => {
                self.mapped_release(b, Charge::new(-charge.bytes, -charge.objects)).await;
                Err(e)
            }
        }
    }

    pub(crate) async fn mapped_delete(&self, b: &BucketRecord, m: &MappedLocation, key: &str) -> Result<()> {
        let path = mapped_path(m, key)?;
        let previous = self.mapped_previous(b, m, key).await?;
        let r = self.backend(&b.backend)?.delete(&path).await;
        self.mapped_meta.forget(b.id, key);
        r.map_err(unavailable)?;
        if let Some(size) = previous {
            self.mapped_release(b, Charge::new(-(size as i64), -1)).await;
        }
        Ok(())
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
        let (headers, user_metadata) = directive.apply(&source)?;
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
        check_reserved_metadata(&rec.user_metadata)?;
        self.mapped_write_conditions(b, m, key, conditions).await?;
        let backend = self.backend(&b.backend)?.clone();
        // The parts' bytes are already counted; a new object is counted (and
        // its quota checked) before anything is written.
        let previous = self.mapped_previous(b, m, key).await?;
        let new_object = i64::from(previous.is_none());
        self.mapped_charge(b, Charge::new(0, new_object)).await?;
        let attrs = attributes_of(&rec.headers, &rec.user_metadata, rec.checksum.as_ref());
        let segments: Vec<Segment> = rec.segments.clone();
        let mut sources = Vec::with_capacity(segments.len());
        for s in &segments {
            sources.push((self.backend(&s.backend)?.clone(), s.blob.clone()));
        }
        let body = futures::stream::iter(sources)
            .then(|(be, blob)| async move { be.get(&blob, None).await.map_err(std::io::Error::other) })
            .try_flatten()
            .boxed();
        let written = backend.put_with_attributes(&path, body, &attrs).await;
        self.mapped_meta.forget(b.id, key);
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                self.mapped_release(b, Charge::new(0, -new_object)).await;
                return Err(match e {
                    BackendError::Input(e) => Error::Unavailable(format!("reading the parts failed: {e}")),
                    other => unavailable(other),
                });
            }
        };
        if written != rec.size {
            return Err(Error::Internal(format!("assembled {written} bytes of {}", rec.size)));
        }
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
        // The parts' bytes become the object's (unused parts' are given
        // back), and the object it replaced stops counting.
        let replaced = previous.unwrap_or(0) as i64;
        release(&mut txn, b.tenant_id, b.id, Charge::new(rec.size as i64 - part_bytes - replaced, 0));
        match self.meta.commit(txn).await {
            Ok(()) => self.gc.wake(),
            // Aborted meanwhile: the object is written all the same; its parts
            // go with the abort, which gave their bytes back.
            Err(MetaError::Conflict) => {
                self.mapped_release(b, Charge::new(rec.size as i64 - replaced, 0)).await;
            }
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
