//! Single objects: put, get, head, copy, delete.

use super::{MAX_CAS_RETRIES, Namespace, ResolvedBucket};
use crate::checksum::{BodyDigests, ChecksumAlgorithm, ChecksumKind, ExpectedChecksum, md5_hex};
use crate::gc::{SUPERSEDED_GRACE_MS, due_value, gc_key};
use crate::records::{ContentHeaders, ObjectRecord, Segment, StoredChecksum, new_blob_path, object_key};
use crate::usage::accounting::{Charge, Guard, release};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::{StreamExt, TryStreamExt};
use md5::Digest as _;
use orbit_backend::{BackendError, BackendExt, ByteStream, ObjectAttributes};
use orbit_meta::{MetaError, Table, Txn, encode};
use orbit_tenancy::{Caller, meta_error};
use orbit_types::{BucketId, Error, ObjectKey, Resource, Result, now_ms};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// S3's limit for one PUT (larger objects use multipart upload).
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// S3's limit on user metadata, keys plus values.
pub const MAX_USER_METADATA: usize = 2048;

pub struct PutObject {
    pub body: ByteStream,
    pub content_length: Option<u64>,
    pub headers: ContentHeaders,
    pub user_metadata: BTreeMap<String, String>,
    /// Content-MD5 as sent: base64 of the 16 raw bytes.
    pub content_md5: Option<String>,
    pub checksum: ExpectedChecksum,
    pub conditions: WriteConditions,
}

/// Conditions on the object a write would replace.
#[derive(Clone, Debug, Default)]
pub struct WriteConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

/// HTTP conditional-request headers of a read (times in ms since the epoch).
#[derive(Clone, Debug, Default)]
pub struct ReadConditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last` or `bytes=first-`
    FromTo { first: u64, last: Option<u64> },
    /// `bytes=-length`
    Suffix { length: u64 },
}

#[derive(Clone, Debug, Default)]
pub struct GetObject {
    pub range: Option<ByteRange>,
    pub part_number: Option<u32>,
    pub conditions: ReadConditions,
}

pub struct ObjectBody {
    pub record: ObjectRecord,
    /// The byte range served, when it is not the whole object.
    pub range: Option<Range<u64>>,
    pub stream: ByteStream,
}

impl ObjectBody {
    pub fn content_length(&self) -> u64 {
        self.range.as_ref().map_or(self.record.size, |r| r.end - r.start)
    }
}

pub enum MetadataDirective {
    Copy,
    Replace { headers: ContentHeaders, user_metadata: BTreeMap<String, String> },
}

pub struct CopySource {
    pub bucket: String,
    pub key: String,
    /// The `x-amz-copy-source-if-*` conditions; any that fails is a 412.
    pub conditions: ReadConditions,
}

fn strip_etag(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.trim_matches('"')
}

fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || strip_etag(t) == etag
    })
}

impl MetadataDirective {
    /// The headers and user metadata of a copy of `source`.
    pub(crate) fn apply(self, source: &ObjectRecord) -> Result<(ContentHeaders, BTreeMap<String, String>)> {
        match self {
            Self::Copy => Ok((source.headers.clone(), source.user_metadata.clone())),
            Self::Replace { headers, user_metadata } => {
                validate_metadata(&user_metadata)?;
                Ok((headers, user_metadata))
            }
        }
    }
}

/// Evaluate read conditions in the order RFC 9110 gives: the 412 checks
/// first, then the 304 checks.
pub(crate) fn check_read_conditions(rec: &ObjectRecord, c: &ReadConditions, copy_source: bool) -> Result<()> {
    let modified_s = rec.last_modified_ms.div_euclid(1000);
    if let Some(m) = &c.if_match {
        if !etag_list_matches(m, &rec.etag) {
            return Err(Error::PreconditionFailed);
        }
    } else if let Some(t) = c.if_unmodified_since
        && modified_s > t.div_euclid(1000)
    {
        return Err(Error::PreconditionFailed);
    }
    let not_modified = if copy_source { Error::PreconditionFailed } else { Error::NotModified };
    if let Some(m) = &c.if_none_match {
        if etag_list_matches(m, &rec.etag) {
            return Err(not_modified);
        }
    } else if let Some(t) = c.if_modified_since
        && modified_s <= t.div_euclid(1000)
    {
        return Err(not_modified);
    }
    Ok(())
}

/// Conditions of a write against the object it would replace.
pub(crate) fn check_write_conditions(current: Option<&ObjectRecord>, c: &WriteConditions) -> Result<()> {
    if let Some(m) = &c.if_none_match
        && let Some(cur) = current
        && etag_list_matches(m, &cur.etag)
    {
        return Err(Error::PreconditionFailed);
    }
    if let Some(m) = &c.if_match {
        match current {
            None => return Err(Error::NotFound(Resource::Object)),
            Some(cur) if !etag_list_matches(m, &cur.etag) => return Err(Error::PreconditionFailed),
            Some(_) => {}
        }
    }
    Ok(())
}

pub(crate) fn resolve_range(size: u64, range: ByteRange) -> Result<Range<u64>> {
    match range {
        ByteRange::FromTo { first, last } => {
            if first >= size || last.is_some_and(|l| l < first) {
                return Err(Error::InvalidRange);
            }
            let end = last.map_or(size, |l| l.saturating_add(1).min(size));
            Ok(first..end)
        }
        ByteRange::Suffix { length } => {
            if length == 0 || size == 0 {
                return Err(Error::InvalidRange);
            }
            Ok(size.saturating_sub(length)..size)
        }
    }
}

pub(crate) fn validate_metadata(meta: &BTreeMap<String, String>) -> Result<()> {
    let total: usize = meta.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_USER_METADATA { Err(Error::MetadataTooLarge) } else { Ok(()) }
}

pub(crate) fn parse_key(key: &str) -> Result<ObjectKey> {
    Ok(ObjectKey::new(key)?)
}

/// Content-MD5 as sent (base64 of 16 bytes), decoded.
pub(crate) fn parse_content_md5(content_md5: Option<&str>) -> Result<Option<Vec<u8>>> {
    content_md5
        .map(|b64| {
            B64.decode(b64.trim())
                .ok()
                .filter(|d| d.len() == 16)
                .ok_or_else(|| Error::InvalidArgument("Content-MD5 is not the base64 of 16 bytes".into()))
        })
        .transpose()
}

/// What a body that passed its checks turned out to be.
pub(crate) struct VerifiedBody {
    pub md5_hex: String,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

/// Check a received body against what the client declared: its length,
/// Content-MD5, and checksum (from a header, or from the trailer read now
/// that the body is consumed).
pub(crate) fn verify_body(
    digests: BodyDigests,
    received: u64,
    content_length: Option<u64>,
    content_md5: Option<Vec<u8>>,
    mut expected: ExpectedChecksum,
) -> Result<VerifiedBody> {
    if let Some(len) = content_length
        && len != received
    {
        return Err(Error::IncompleteBody(format!("declared {len} bytes, received {received}")));
    }
    let md5_raw = digests.md5.finalize();
    if let Some(want) = &content_md5
        && want.as_slice() != md5_raw.as_slice()
    {
        return Err(Error::BadDigest("the Content-MD5 you specified did not match what we received".into()));
    }
    let checksum = match (expected.algorithm, digests.checksum) {
        (Some(alg), Some(hasher)) => {
            let got = hasher.finish_base64();
            let want = expected.value.take().or_else(|| expected.trailer.take().and_then(|read| read()));
            if let Some(want) = want
                && want.trim() != got
            {
                return Err(Error::BadDigest(format!(
                    "the {} you specified did not match the calculated checksum",
                    alg.as_str()
                )));
            }
            Some((alg, got))
        }
        _ => None,
    };
    Ok(VerifiedBody { md5_hex: md5_hex(&md5_raw), checksum })
}

/// The outcome of streaming a body into a new blob.
pub(crate) struct WrittenBlob {
    pub backend: String,
    pub blob: String,
    pub size: u64,
    pub md5_hex: String,
    pub checksum: Option<(ChecksumAlgorithm, String)>,
}

impl WrittenBlob {
    /// The record of a new version made of this one blob.
    pub(crate) fn into_record(self, headers: ContentHeaders, user_metadata: BTreeMap<String, String>) -> ObjectRecord {
        ObjectRecord {
            version: orbit_types::new_blob_id(),
            size: self.size,
            etag: self.md5_hex,
            last_modified_ms: now_ms(),
            headers,
            user_metadata,
            checksum: self.checksum.map(|(algorithm, value)| StoredChecksum {
                algorithm,
                kind: ChecksumKind::FullObject,
                value,
            }),
            segments: vec![Segment { backend: self.backend, blob: self.blob, size: self.size }],
            parts_count: None,
        }
    }
}

impl Namespace {
    /// Stream `body` into a fresh blob of `bucket`, computing MD5 and the
    /// requested checksum, then verify what the client declared. On any
    /// failure the blob is discarded and nothing becomes visible. The blob
    /// carries `attributes` where its backend keeps them (mapped buckets).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_blob(
        &self,
        owner: orbit_types::TenantId,
        backend_name: &str,
        blob: String,
        body: ByteStream,
        content_length: Option<u64>,
        content_md5: Option<&str>,
        expected: ExpectedChecksum,
        attributes: &ObjectAttributes,
    ) -> Result<WrittenBlob> {
        let content_md5 = parse_content_md5(content_md5)?;
        let backend = self.backend(backend_name)?.clone();
        self.gc.register_intent(backend_name, &blob).await?;
        let digests = Arc::new(Mutex::new(BodyDigests::new(expected.algorithm)));
        let feed = digests.clone();
        let mut ingest = self
            .cache_for(owner)
            .filter(|_| self.ingest_writes)
            .map(|c| super::read::Ingest::new(c, format!("{backend_name}/{blob}")));
        let stream = body
            .inspect_ok(move |chunk| {
                if let Ok(mut d) = feed.lock() {
                    d.update(chunk);
                }
                if let Some(i) = &mut ingest {
                    i.feed(chunk);
                }
            })
            .boxed();
        let written = match backend.put_with_attributes(&blob, stream, attributes).await {
            Ok(n) => n,
            Err(e) => {
                self.gc.discard(backend_name, &blob).await;
                return Err(match e {
                    BackendError::Input(e) => Error::IncompleteBody(e.to_string()),
                    other => Error::Unavailable(other.to_string()),
                });
            }
        };
        let digests = match Arc::try_unwrap(digests) {
            Ok(m) => m.into_inner().map_err(|_| Error::Internal("digest state poisoned".into()))?,
            Err(_) => {
                self.gc.discard(backend_name, &blob).await;
                return Err(Error::Internal("body stream still referenced after the write".into()));
            }
        };
        match verify_body(digests, written, content_length, content_md5, expected) {
            Ok(v) => Ok(WrittenBlob {
                backend: backend_name.to_owned(),
                blob,
                size: written,
                md5_hex: v.md5_hex,
                checksum: v.checksum,
            }),
            Err(e) => {
                self.gc.discard(backend_name, &blob).await;
                Err(e)
            }
        }
    }

    /// The transaction that makes `rec` the object at `okey`, replacing
    /// `current`: the bucket must be unchanged, the key unchanged since read,
    /// the new blobs lose their collection intent, the old ones are collected.
    pub(crate) fn object_write_txn(
        bucket: &ResolvedBucket,
        okey: &[u8],
        current_raw: Option<Vec<u8>>,
        current: Option<&ObjectRecord>,
        rec: &ObjectRecord,
    ) -> Txn {
        let mut txn = Txn::new()
            .require_equals(Table::Buckets, bucket.key.clone(), bucket.raw.clone())
            .require_current(Table::Objects, okey.to_vec(), current_raw)
            .put(Table::Objects, okey.to_vec(), encode(rec));
        for (backend, blob) in rec.blobs() {
            txn.push_delete(Table::Gc, gc_key(backend, blob));
        }
        if let Some(cur) = current {
            let due = due_value(now_ms() + SUPERSEDED_GRACE_MS);
            for (backend, blob) in cur.blobs() {
                txn.push_put(Table::Gc, gc_key(backend, blob), due.clone());
            }
        }
        txn
    }

    pub(crate) async fn read_object(&self, bucket: BucketId, key: &str) -> Result<Option<(Vec<u8>, ObjectRecord)>> {
        let okey = object_key(bucket, key);
        match self.meta.get(Table::Objects, &okey).await.map_err(meta_error)? {
            Some(raw) => {
                let rec = self.decoded_objects.decode(&okey, &raw).map_err(meta_error)?;
                Ok(Some((raw, rec)))
            }
            None => Ok(None),
        }
    }

    /// Make `rec` the current object at `key`, retrying lost races. The
    /// blobs of `rec` are discarded if it cannot be committed.
    pub(crate) async fn commit_object(
        &self,
        tenant: orbit_types::TenantId,
        bucket_name: &str,
        key: &str,
        rec: &ObjectRecord,
        conditions: &WriteConditions,
    ) -> Result<()> {
        let result = async {
            let gated = self.resolve_bucket(tenant, bucket_name).await?;
            let pass = self.open_gate(&gated.record, &[key.to_owned()]).await?;
            for _ in 0..MAX_CAS_RETRIES {
                let bucket = self.resolve_bucket(tenant, bucket_name).await?;
                let okey = object_key(bucket.record.id, key);
                let current = self.read_object(bucket.record.id, key).await?;
                check_write_conditions(current.as_ref().map(|(_, r)| r), conditions)?;
                let (raw, cur) = current.map_or((None, None), |(raw, rec)| (Some(raw), Some(rec)));
                let guard = Guard::read(&*self.meta, &bucket.record).await?;
                let mut txn = Self::object_write_txn(&bucket, &okey, raw, cur.as_ref(), rec);
                let charge = Charge::new(
                    rec.size as i64 - cur.as_ref().map_or(0, |c| c.size as i64),
                    if cur.is_some() { 0 } else { 1 },
                );
                let soft = guard.charge(&mut txn, charge)?;
                match self.meta.commit(txn).await {
                    Ok(()) => {
                        pass.committed();
                        guard.report(soft);
                        if cur.is_some() {
                            self.gc.wake();
                        }
                        return Ok(());
                    }
                    Err(MetaError::Conflict) => continue,
                    Err(e) => return Err(meta_error(e)),
                }
            }
            Err(Error::Unavailable("too many concurrent writes to the key, retry".into()))
        }
        .await;
        if result.is_err() {
            for (backend, blob) in rec.blobs() {
                self.gc.discard(backend, blob).await;
            }
        }
        result
    }

    pub async fn put_object(&self, caller: &Caller, bucket: &str, key: &str, put: PutObject) -> Result<ObjectRecord> {
        super::access::require_write_key(caller, bucket, key)?;
        parse_key(key)?;
        validate_metadata(&put.user_metadata)?;
        if put.content_length.is_some_and(|l| l > MAX_PUT_SIZE) {
            return Err(Error::EntityTooLarge("a single PUT is limited to 5 GiB; use multipart upload".into()));
        }
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        if let Some(remote) = self.remote_for(&b.record) {
            // Bytes in are metered at home, which stores them: once per write.
            return remote.put_object(caller, &b.record, key, put).await;
        }
        self.put_resolved(caller.tenant_id, bucket, b, key, put).await
    }

    /// A put into a bucket homed here, its caller's access already checked.
    pub(crate) async fn put_resolved(
        &self,
        tenant: orbit_types::TenantId,
        bucket: &str,
        b: ResolvedBucket,
        key: &str,
        put: PutObject,
    ) -> Result<ObjectRecord> {
        if let Some(m) = b.record.mapped.clone() {
            let rec = self.mapped_put(&b, &m, key, put).await?;
            self.meter.bytes_in(tenant, bucket, rec.size);
            return Ok(rec);
        }
        // Fail fast on conditions that already cannot hold; they are checked again at commit.
        if put.conditions.if_match.is_some() || put.conditions.if_none_match.is_some() {
            let current = self.read_object(b.record.id, key).await?;
            check_write_conditions(current.as_ref().map(|(_, r)| r), &put.conditions)?;
        }
        let conditions = put.conditions.clone();
        let rec = self.stage_object(&b.record, &b.record.backend, put).await?;
        self.commit_object(tenant, bucket, key, &rec, &conditions).await?;
        self.meter.bytes_in(tenant, bucket, rec.size);
        Ok(rec)
    }

    pub async fn head_object(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        get: &GetObject,
    ) -> Result<(ObjectRecord, Option<Range<u64>>)> {
        super::access::require_read(caller, bucket, key)?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        if let Some(remote) = self.read_remote_for(&b.record, key) {
            return remote.head_object(caller, &b.record, key, get).await;
        }
        if let Some(m) = &b.record.mapped {
            let (_, rec, range) = self.mapped_lookup(&b.record, m, key, get).await?;
            return Ok((rec, range));
        }
        let (_, rec, range) = self.lookup_in(b, key, get).await?;
        Ok((rec, range))
    }

    /// The bucket, the object and the range a read would serve.
    async fn lookup_in(
        &self,
        b: ResolvedBucket,
        key: &str,
        get: &GetObject,
    ) -> Result<(crate::records::BucketRecord, ObjectRecord, Option<Range<u64>>)> {
        let (_, rec) = self.read_object(b.record.id, key).await?.ok_or(Error::NotFound(Resource::Object))?;
        check_read_conditions(&rec, &get.conditions, false)?;
        let range = Self::requested_range(&rec, get)?;
        Ok((b.record, rec, range))
    }

    pub(crate) fn requested_range(rec: &ObjectRecord, get: &GetObject) -> Result<Option<Range<u64>>> {
        if let Some(n) = get.part_number {
            if get.range.is_some() {
                return Err(Error::InvalidRequest("cannot specify both Range and partNumber".into()));
            }
            let count = rec.parts_count.unwrap_or(1);
            if n == 0 || n > count {
                return Err(Error::InvalidRange);
            }
            if rec.parts_count.is_none() {
                return Ok(None);
            }
            let start: u64 = rec.segments[..(n - 1) as usize].iter().map(|s| s.size).sum();
            return Ok(Some(start..start + rec.segments[(n - 1) as usize].size));
        }
        get.range.map(|r| resolve_range(rec.size, r)).transpose()
    }

    pub async fn get_object(&self, caller: &Caller, bucket: &str, key: &str, get: &GetObject) -> Result<ObjectBody> {
        super::access::require_read(caller, bucket, key)?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        let tap = super::read::HitTap { meter: self.meter.clone(), tenant: b.record.tenant_id, bucket: bucket.into() };
        let remote = self.read_remote_for(&b.record, key);
        let mut body = match &b.record.mapped {
            _ if remote.is_some() => {
                let remote = remote.expect("checked");
                remote.get_object(caller, &b.record, key, get).await?
            }
            Some(m) => self.mapped_get(&b.record, m, key, get, tap.clone()).await?,
            None => {
                let (b, record, range) = self.lookup_in(b, key, get).await?;
                let span = range.clone().unwrap_or(0..record.size);
                let policy = b.chunk_policy(key);
                let stream = self.stream_range(&record, span, b.tenant_id, policy, Some(tap.clone())).await?;
                ObjectBody { record, range, stream }
            }
        };
        // Bytes out are the bytes actually sent, counted as they go.
        body.stream =
            body.stream.inspect_ok(move |c| tap.meter.bytes_out(tap.tenant, &tap.bucket, c.len() as u64)).boxed();
        Ok(body)
    }

    pub async fn delete_object(&self, caller: &Caller, bucket: &str, key: &str) -> Result<()> {
        super::access::require_write_key(caller, bucket, key)?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        if let Some(remote) = self.remote_for(&b.record) {
            return remote.delete_object(caller, &b.record, key).await;
        }
        self.delete_resolved(caller.tenant_id, bucket, b, key).await
    }

    /// A delete in a bucket homed here, its caller's access already checked.
    pub(crate) async fn delete_resolved(
        &self,
        tenant: orbit_types::TenantId,
        bucket: &str,
        b: ResolvedBucket,
        key: &str,
    ) -> Result<()> {
        if let Some(m) = &b.record.mapped {
            return self.mapped_delete(&b.record, m, key).await;
        }
        let pass = self.open_gate(&b.record, &[key.to_owned()]).await?;
        for _ in 0..MAX_CAS_RETRIES {
            let b = self.resolve_bucket(tenant, bucket).await?;
            let Some((raw, rec)) = self.read_object(b.record.id, key).await? else { return Ok(()) };
            let okey = object_key(b.record.id, key);
            let mut txn = Txn::new().require_equals(Table::Objects, okey.clone(), raw).delete(Table::Objects, okey);
            release(&mut txn, b.record.tenant_id, b.record.id, Charge::new(-(rec.size as i64), -1));
            let due = due_value(now_ms() + SUPERSEDED_GRACE_MS);
            for (backend, blob) in rec.blobs() {
                txn.push_put(Table::Gc, gc_key(backend, blob), due.clone());
            }
            match self.meta.commit(txn).await {
                Ok(()) => {
                    pass.committed();
                    return Ok(());
                }
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("too many concurrent writes to the key, retry".into()))
    }

    /// Resolve a copy source inside the caller's tenant and check its conditions.
    pub(crate) async fn resolve_copy_source(&self, caller: &Caller, src: &CopySource) -> Result<ObjectRecord> {
        Ok(self.resolve_copy_source_in(caller, src).await?.1)
    }

    /// The copy source with its bucket (whose cache policy its reads follow).
    pub(crate) async fn resolve_copy_source_in(
        &self,
        caller: &Caller,
        src: &CopySource,
    ) -> Result<(crate::records::BucketRecord, ObjectRecord)> {
        super::access::require_read(caller, &src.bucket, &src.key)?;
        let sb = self.resolve_bucket(caller.tenant_id, &src.bucket).await?;
        if self.remote_for(&sb.record).is_some() {
            return Err(Error::NotImplemented(
                "copying from a bucket homed at another site is not supported yet; read and write instead".into(),
            ));
        }
        if let Some(m) = &sb.record.mapped {
            let (_, rec, _) = self.mapped_lookup(&sb.record, m, &src.key, &GetObject::default()).await?;
            check_read_conditions(&rec, &src.conditions, true)?;
            return Ok((sb.record, rec));
        }
        let (_, rec) = self.read_object(sb.record.id, &src.key).await?.ok_or(Error::NotFound(Resource::Object))?;
        check_read_conditions(&rec, &src.conditions, true)?;
        Ok((sb.record, rec))
    }

    /// The record of a copy source, wherever it is homed, with the copy's
    /// source conditions checked against it (412 when they do not hold).
    pub(crate) async fn checked_copy_source(&self, caller: &Caller, src: &CopySource) -> Result<ObjectRecord> {
        let (source, _) = self.head_object(caller, &src.bucket, &src.key, &GetObject::default()).await?;
        check_read_conditions(&source, &src.conditions, true)?;
        Ok(source)
    }

    /// The bytes of a copy source (`range` of it, or all), as a GET of them
    /// is served here: the very version whose conditions were checked, or
    /// a `503` to retry if it changed since.
    pub(crate) async fn read_copy_source(
        &self,
        caller: &Caller,
        src: &CopySource,
        source: &ObjectRecord,
        range: Option<Range<u64>>,
    ) -> Result<ObjectBody> {
        let same = ReadConditions { if_match: Some(format!("\"{}\"", source.etag)), ..Default::default() };
        let range =
            range.filter(|r| !r.is_empty()).map(|r| ByteRange::FromTo { first: r.start, last: Some(r.end - 1) });
        let get = GetObject { range, conditions: same, ..Default::default() };
        match self.get_object(caller, &src.bucket, &src.key, &get).await {
            Err(Error::PreconditionFailed | Error::NotFound(_)) => {
                Err(Error::Unavailable("the source object changed during the copy, retry".into()))
            }
            other => other,
        }
    }

    /// A copy between buckets homed at different sites: the source is read
    /// as any GET of it is served here (this site's cache under a lease, or
    /// its home), and its bytes are written as a PUT of the destination (its
    /// home, or a write-lease holder, decides). Like a PUT, at most 5 GiB.
    async fn copy_across_sites(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        src: CopySource,
        directive: MetadataDirective,
        conditions: WriteConditions,
    ) -> Result<ObjectRecord> {
        let source = self.checked_copy_source(caller, &src).await?;
        if source.size > MAX_PUT_SIZE {
            return Err(Error::InvalidRequest(
                "the source is larger than 5 GiB: copy it with a multipart upload instead".into(),
            ));
        }
        let (headers, user_metadata) = directive.apply(&source)?;
        let body = self.read_copy_source(caller, &src, &source, None).await?;
        // A whole-object checksum travels with the bytes and is checked again.
        let checksum = source.checksum.as_ref().filter(|c| c.kind == ChecksumKind::FullObject);
        let put = PutObject {
            body: body.stream,
            content_length: Some(source.size),
            headers,
            user_metadata,
            content_md5: None,
            checksum: ExpectedChecksum {
                algorithm: checksum.map(|c| c.algorithm),
                value: checksum.map(|c| c.value.clone()),
                trailer: None,
            },
            conditions,
        };
        self.put_object(caller, bucket, key, put).await
    }

    pub async fn copy_object(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        src: CopySource,
        directive: MetadataDirective,
        conditions: WriteConditions,
    ) -> Result<ObjectRecord> {
        super::access::require_write_key(caller, bucket, key)?;
        super::access::require_read(caller, &src.bucket, &src.key)?;
        parse_key(key)?;
        let dst_bucket = self.resolve_bucket(caller.tenant_id, bucket).await?;
        let src_bucket = self.resolve_bucket(caller.tenant_id, &src.bucket).await?;
        if dst_bucket.record.home_site != src_bucket.record.home_site
            && (self.remote_for(&dst_bucket.record).is_some() || self.remote_for(&src_bucket.record).is_some())
        {
            return self.copy_across_sites(caller, bucket, key, src, directive, conditions).await;
        }
        if let Some(remote) = self.remote_for(&dst_bucket.record) {
            return remote
                .copy_object(caller, &dst_bucket.record, key, &src_bucket.record, src, directive, conditions)
                .await;
        }
        if self.is_mapped(caller.tenant_id, bucket).await? || self.is_mapped(caller.tenant_id, &src.bucket).await? {
            return self.mapped_copy(caller, bucket, key, src, directive, conditions).await;
        }
        let source = self.resolve_copy_source(caller, &src).await?;
        if src.bucket == bucket && src.key == key && matches!(directive, MetadataDirective::Copy) {
            return Err(Error::InvalidRequest(
                "this copy request is illegal because it is trying to copy an object to itself without changing the object's metadata".into(),
            ));
        }
        let (headers, user_metadata) = directive.apply(&source)?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        let dst_name = b.record.backend.clone();
        let dst = self.backend(&dst_name)?.clone();
        let mut segments = Vec::with_capacity(source.segments.len());
        let mut failed = None;
        for seg in &source.segments {
            let blob = new_blob_path(b.record.id);
            if let Err(e) = self.gc.register_intent(&dst_name, &blob).await {
                failed = Some(e);
                break;
            }
            segments.push(Segment { backend: dst_name.clone(), blob: blob.clone(), size: seg.size });
            let copied = if seg.backend == dst_name {
                dst.copy(&seg.blob, &blob).await
            } else {
                // Across backends the bytes pass through Orbit.
                match self.backend(&seg.backend) {
                    Ok(src) => match src.get(&seg.blob, None).await {
                        Ok(stream) => dst.put(&blob, stream).await.map(|_| ()),
                        Err(e) => Err(e),
                    },
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            };
            if let Err(e) = copied {
                failed = Some(match e {
                    // The source was replaced and collected while we copied.
                    BackendError::NotFound(_) => {
                        Error::Unavailable("the source object changed during the copy, retry".into())
                    }
                    other => Error::Unavailable(other.to_string()),
                });
                break;
            }
        }
        if let Some(e) = failed {
            for s in &segments {
                self.gc.discard(&s.backend, &s.blob).await;
            }
            return Err(e);
        }
        let rec = ObjectRecord {
            version: orbit_types::new_blob_id(),
            size: source.size,
            etag: source.etag.clone(),
            last_modified_ms: now_ms(),
            headers,
            user_metadata,
            checksum: source.checksum.clone(),
            segments,
            parts_count: source.parts_count,
        };
        self.commit_object(caller.tenant_id, bucket, key, &rec, &conditions).await?;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(etag: &str, modified_s: i64) -> ObjectRecord {
        ObjectRecord {
            version: "v".into(),
            size: 10,
            etag: etag.into(),
            last_modified_ms: modified_s * 1000 + 500,
            headers: ContentHeaders::default(),
            user_metadata: BTreeMap::new(),
            checksum: None,
            segments: vec![],
            parts_count: None,
        }
    }

    #[test]
    fn read_conditions_follow_rfc_precedence() {
        let r = rec("abc", 1000);
        let c = |m: Option<&str>, n: Option<&str>, ms: Option<i64>, us: Option<i64>| ReadConditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
            if_modified_since: ms.map(|s| s * 1000),
            if_unmodified_since: us.map(|s| s * 1000),
        };
        assert!(check_read_conditions(&r, &c(Some("\"abc\""), None, None, None), false).is_ok());
        assert!(matches!(
            check_read_conditions(&r, &c(Some("\"x\""), None, None, None), false),
            Err(Error::PreconditionFailed)
        ));
        // If-Match wins over a failing If-Unmodified-Since.
        assert!(check_read_conditions(&r, &c(Some("abc"), None, None, Some(10)), false).is_ok());
        assert!(matches!(
            check_read_conditions(&r, &c(None, None, None, Some(999)), false),
            Err(Error::PreconditionFailed)
        ));
        assert!(check_read_conditions(&r, &c(None, None, None, Some(1000)), false).is_ok());
        assert!(matches!(
            check_read_conditions(&r, &c(None, Some("\"abc\""), None, None), false),
            Err(Error::NotModified)
        ));
        assert!(matches!(check_read_conditions(&r, &c(None, Some("*"), None, None), false), Err(Error::NotModified)));
        assert!(check_read_conditions(&r, &c(None, Some("\"zzz\""), Some(2000), None), false).is_ok());
        assert!(matches!(check_read_conditions(&r, &c(None, None, Some(1000), None), false), Err(Error::NotModified)));
        assert!(check_read_conditions(&r, &c(None, None, Some(999), None), false).is_ok());
        // Copy-source conditions never answer 304.
        assert!(matches!(
            check_read_conditions(&r, &c(None, Some("abc"), None, None), true),
            Err(Error::PreconditionFailed)
        ));
    }

    #[test]
    fn ranges_resolve_like_s3() {
        assert_eq!(resolve_range(100, ByteRange::FromTo { first: 0, last: Some(9) }).unwrap(), 0..10);
        assert_eq!(resolve_range(100, ByteRange::FromTo { first: 90, last: Some(1000) }).unwrap(), 90..100);
        assert_eq!(resolve_range(100, ByteRange::FromTo { first: 10, last: None }).unwrap(), 10..100);
        assert_eq!(resolve_range(100, ByteRange::Suffix { length: 30 }).unwrap(), 70..100);
        assert_eq!(resolve_range(100, ByteRange::Suffix { length: 300 }).unwrap(), 0..100);
        assert!(resolve_range(100, ByteRange::FromTo { first: 100, last: None }).is_err());
        assert!(resolve_range(0, ByteRange::FromTo { first: 0, last: None }).is_err());
        assert!(resolve_range(100, ByteRange::Suffix { length: 0 }).is_err());
    }

    #[test]
    fn write_conditions() {
        let r = rec("abc", 1);
        let none_match_any = WriteConditions { if_none_match: Some("*".into()), if_match: None };
        assert!(check_write_conditions(None, &none_match_any).is_ok());
        assert!(matches!(check_write_conditions(Some(&r), &none_match_any), Err(Error::PreconditionFailed)));
        let if_match = WriteConditions { if_match: Some("\"abc\"".into()), if_none_match: None };
        assert!(check_write_conditions(Some(&r), &if_match).is_ok());
        assert!(matches!(check_write_conditions(None, &if_match), Err(Error::NotFound(_))));
    }
}
