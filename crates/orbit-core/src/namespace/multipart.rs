//! Multipart uploads. Parts are stored as blobs of their own and the
//! completed object points at them in order, so completion moves no bytes.

use super::object::{
    ByteRange, CopySource, WriteConditions, check_write_conditions, parse_key, resolve_range, validate_metadata,
};
use super::{MAX_CAS_RETRIES, Namespace, ResolvedBucket, require_write};
use crate::checksum::{ChecksumAlgorithm, ChecksumKind, ExpectedChecksum, combine_part_checksums, multipart_etag};
use crate::gc::{due_value, gc_key};
use crate::records::{
    ContentHeaders, ObjectRecord, PartRecord, Segment, StoredChecksum, UploadRecord, new_part_blob_path, object_key,
    part_key, upload_key,
};
use crate::usage::accounting::{Charge, Guard, release};
use orbit_backend::ByteStream;
use orbit_meta::{MetaError, MetaStoreExt, Table, Txn, decode, encode};
use orbit_tenancy::{Caller, meta_error};
use orbit_types::{Error, Resource, Result, UploadId, now_ms};
use std::collections::{BTreeMap, HashMap};

pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
pub const MAX_PART_SIZE: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Clone, Debug)]
pub struct CompletedPart {
    pub number: u32,
    pub etag: String,
    pub checksum: Option<String>,
}

#[derive(Clone, Debug)]
pub struct PartsPage {
    pub upload: UploadRecord,
    pub parts: Vec<PartRecord>,
    pub is_truncated: bool,
    pub next_marker: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct UploadsPage {
    pub uploads: Vec<UploadRecord>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

struct ResolvedUpload {
    bucket: ResolvedBucket,
    record: UploadRecord,
    raw: Vec<u8>,
    key: Vec<u8>,
}

/// A stored part; its checksum is kept only in the upload's algorithm.
fn part_record(number: u32, w: super::object::WrittenBlob, upload: &UploadRecord) -> PartRecord {
    PartRecord {
        number,
        backend: w.backend,
        blob: w.blob,
        size: w.size,
        etag: w.md5_hex,
        last_modified_ms: now_ms(),
        checksum: w.checksum.filter(|(a, _)| Some(*a) == upload.checksum_algorithm).map(|(_, v)| v),
    }
}

fn part_number_ok(n: u32) -> Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(Error::InvalidArgument("part number must be an integer between 1 and 10000".into()))
    }
}

impl Namespace {
    async fn resolve_upload(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<ResolvedUpload> {
        // Every step of an upload (part, part copy, complete, abort, list parts) writes its key.
        super::access::require_write_key(caller, bucket, key)?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        self.refuse_remote_multipart(&b.record)?;
        let id: UploadId = upload_id.parse().map_err(|_| Error::NotFound(Resource::Upload))?;
        let ukey = upload_key(b.record.id, id);
        let raw =
            self.meta.get(Table::Uploads, &ukey).await.map_err(meta_error)?.ok_or(Error::NotFound(Resource::Upload))?;
        let record: UploadRecord = decode(&raw).map_err(meta_error)?;
        if record.key != key {
            return Err(Error::NotFound(Resource::Upload));
        }
        Ok(ResolvedUpload { bucket: b, record, raw, key: ukey })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create_upload(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        headers: ContentHeaders,
        user_metadata: BTreeMap<String, String>,
        checksum_algorithm: Option<ChecksumAlgorithm>,
        checksum_kind: Option<ChecksumKind>,
    ) -> Result<UploadRecord> {
        super::access::require_write_key(caller, bucket, key)?;
        parse_key(key)?;
        validate_metadata(&user_metadata)?;
        if checksum_kind == Some(ChecksumKind::FullObject)
            && checksum_algorithm.is_some_and(|a| !a.supports_full_object())
        {
            return Err(Error::InvalidRequest("the FULL_OBJECT checksum type needs a CRC algorithm".into()));
        }
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        if let Some(remote) = self.remote_for(&b.record) {
            return remote
                .create_upload(caller, &b.record, key, headers, user_metadata, checksum_algorithm, checksum_kind)
                .await;
        }
        if let Some(m) = &b.record.mapped {
            super::mapped::mapped_path(m, key)?;
            super::mapped::check_reserved_metadata(&user_metadata)?;
        }
        let kind = checksum_algorithm.map(|a| match (checksum_kind, a) {
            (Some(k), _) => k,
            (None, ChecksumAlgorithm::Crc64Nvme) => ChecksumKind::FullObject,
            (None, _) => ChecksumKind::Composite,
        });
        let rec = UploadRecord {
            id: UploadId::generate(),
            bucket_id: b.record.id,
            key: key.to_owned(),
            initiated_ms: now_ms(),
            headers,
            user_metadata,
            checksum_algorithm,
            checksum_kind: kind,
            initiator: caller.user.to_string(),
        };
        let txn = Txn::new().require_equals(Table::Buckets, b.key.clone(), b.raw.clone()).put(
            Table::Uploads,
            upload_key(b.record.id, rec.id),
            encode(&rec),
        );
        match self.meta.commit(txn).await {
            Ok(()) => Ok(rec),
            Err(MetaError::Conflict) => Err(Error::NotFound(Resource::Bucket)),
            Err(e) => Err(meta_error(e)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        body: ByteStream,
        content_length: Option<u64>,
        content_md5: Option<&str>,
        mut checksum: ExpectedChecksum,
    ) -> Result<PartRecord> {
        require_write(caller)?;
        part_number_ok(number)?;
        if content_length.is_some_and(|l| l > MAX_PART_SIZE) {
            return Err(Error::EntityTooLarge("a part is limited to 5 GiB".into()));
        }
        if let Some((remote, b)) = self.remote_upload(caller, bucket, key).await? {
            return remote
                .upload_part(caller, &b, key, upload_id, number, body, content_length, content_md5, checksum)
                .await;
        }
        let up = self.resolve_upload(caller, bucket, key, upload_id).await?;
        if checksum.algorithm.is_none() {
            checksum.algorithm = up.record.checksum_algorithm;
        }
        let blob = new_part_blob_path(up.bucket.record.id, up.record.id, number);
        let w = self
            .write_blob(
                up.bucket.record.tenant_id,
                &up.bucket.record.backend,
                blob,
                body,
                content_length,
                content_md5,
                checksum,
                &orbit_backend::ObjectAttributes::default(),
            )
            .await?;
        let part = part_record(number, w, &up.record);
        let part = self.commit_part(&up, part).await?;
        self.meter().bytes_in(caller.tenant_id, bucket, part.size);
        Ok(part)
    }

    async fn commit_part(&self, up: &ResolvedUpload, part: PartRecord) -> Result<PartRecord> {
        let pkey = part_key(up.record.id, part.number);
        let result = async {
            for _ in 0..MAX_CAS_RETRIES {
                let old = self.meta.get(Table::Parts, &pkey).await.map_err(meta_error)?;
                // Stored parts count as stored bytes (as S3 bills them), so the
                // bytes quota is checked as each part is stored.
                let guard = Guard::read(&*self.meta, &up.bucket.record).await?;
                let mut txn = Txn::new()
                    .require_equals(Table::Uploads, up.key.clone(), up.raw.clone())
                    .require_current(Table::Parts, pkey.clone(), old.clone())
                    .put(Table::Parts, pkey.clone(), encode(&part))
                    .delete(Table::Gc, gc_key(&part.backend, &part.blob));
                let mut replaced = 0;
                if let Some(old) = &old {
                    let old: PartRecord = decode(old).map_err(meta_error)?;
                    replaced = old.size as i64;
                    txn.push_put(Table::Gc, gc_key(&old.backend, &old.blob), due_value(now_ms()));
                }
                let soft = guard.charge(&mut txn, Charge::new(part.size as i64 - replaced, 0))?;
                match self.meta.commit(txn).await {
                    Ok(()) => {
                        guard.report(soft);
                        return Ok(());
                    }
                    Err(MetaError::Conflict) => {
                        if self.meta.get(Table::Uploads, &up.key).await.map_err(meta_error)?.as_ref() != Some(&up.raw) {
                            return Err(Error::NotFound(Resource::Upload));
                        }
                    }
                    Err(e) => return Err(meta_error(e)),
                }
            }
            Err(Error::Unavailable("too many concurrent uploads of the part, retry".into()))
        }
        .await;
        match result {
            Ok(()) => {
                self.gc.wake();
                Ok(part)
            }
            Err(e) => {
                self.gc.discard(&part.backend, &part.blob).await;
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        src: CopySource,
        range: Option<ByteRange>,
    ) -> Result<PartRecord> {
        require_write(caller)?;
        part_number_ok(number)?;
        if self.crosses_sites(caller, bucket, key, &src.bucket).await? {
            return self.upload_part_copy_across_sites(caller, bucket, key, upload_id, number, src, range).await;
        }
        let up = self.resolve_upload(caller, bucket, key, upload_id).await?;
        let (source_bucket, source) = self.resolve_copy_source_in(caller, &src).await?;
        let span = copy_span(source.size, range)?;
        let stream = self.copy_source_range(&source_bucket, &src.key, &source, span.clone()).await?;
        let alg = up.record.checksum_algorithm;
        let blob = new_part_blob_path(up.bucket.record.id, up.record.id, number);
        let expected = ExpectedChecksum { algorithm: alg, value: None, trailer: None };
        let w = self
            .write_blob(
                up.bucket.record.tenant_id,
                &up.bucket.record.backend,
                blob,
                stream,
                Some(span.end - span.start),
                None,
                expected,
                &orbit_backend::ObjectAttributes::default(),
            )
            .await?;
        let part = part_record(number, w, &up.record);
        self.commit_part(&up, part).await
    }

    /// Whether the upload's bucket or the copy source's is homed at another site.
    async fn crosses_sites(&self, caller: &Caller, bucket: &str, key: &str, src_bucket: &str) -> Result<bool> {
        super::access::require_write_key(caller, bucket, key)?;
        let dst = self.resolve_bucket(caller.tenant_id, bucket).await?;
        let src = self.resolve_bucket(caller.tenant_id, src_bucket).await?;
        Ok(self.remote_for(&dst.record).is_some() || self.remote_for(&src.record).is_some())
    }

    /// A part copied where the source or the upload is homed at another
    /// site: the source's bytes are read as a GET of them is served here
    /// (pinned to the version whose conditions were checked) and sent as an
    /// UploadPart, which goes wherever the upload lives.
    #[allow(clippy::too_many_arguments)]
    async fn upload_part_copy_across_sites(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        src: CopySource,
        range: Option<ByteRange>,
    ) -> Result<PartRecord> {
        let source = self.checked_copy_source(caller, &src).await?;
        let span = copy_span(source.size, range)?;
        let body = self.read_copy_source(caller, &src, &source, Some(span.clone())).await?;
        let checksum = ExpectedChecksum { algorithm: None, value: None, trailer: None };
        self.upload_part(
            caller,
            bucket,
            key,
            upload_id,
            number,
            body.stream,
            Some(span.end - span.start),
            None,
            checksum,
        )
        .await
    }

    async fn parts_of(&self, upload: UploadId) -> Result<Vec<(Vec<u8>, Vec<u8>, PartRecord)>> {
        let rows =
            self.meta.scan_prefix(Table::Parts, upload.as_bytes(), None, usize::MAX).await.map_err(meta_error)?;
        rows.into_iter()
            .map(|(k, v)| {
                let rec: PartRecord = decode(&v).map_err(meta_error)?;
                Ok((k, v, rec))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn complete_upload(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        conditions: WriteConditions,
        expected_checksum: Option<(ChecksumAlgorithm, String)>,
    ) -> Result<ObjectRecord> {
        require_write(caller)?;
        if parts.is_empty() {
            return Err(Error::InvalidRequest("you must specify at least one part".into()));
        }
        if parts.windows(2).any(|w| w[0].number >= w[1].number) {
            return Err(Error::InvalidPartOrder);
        }
        if let Some((remote, b)) = self.remote_upload(caller, bucket, key).await? {
            return remote.complete_upload(caller, &b, key, upload_id, parts, conditions, expected_checksum).await;
        }
        let gated = self.resolve_bucket(caller.tenant_id, bucket).await?;
        let pass = self.open_gate(&gated.record, &[key.to_owned()]).await?;
        for _ in 0..MAX_CAS_RETRIES {
            let up = match self.resolve_upload(caller, bucket, key, upload_id).await {
                Err(Error::NotFound(Resource::Upload)) => {
                    return self.completed_before(caller, bucket, key, upload_id, &parts).await;
                }
                r => r?,
            };
            let stored = self.parts_of(up.record.id).await?;
            let by_number: HashMap<u32, &(Vec<u8>, Vec<u8>, PartRecord)> =
                stored.iter().map(|p| (p.2.number, p)).collect();
            let mut chosen = Vec::with_capacity(parts.len());
            for (i, want) in parts.iter().enumerate() {
                let Some(&entry) = by_number.get(&want.number) else {
                    return Err(Error::InvalidPart(format!("part {} was not uploaded", want.number)));
                };
                let part = &entry.2;
                if want.etag.trim().trim_matches('"') != part.etag {
                    return Err(Error::InvalidPart(format!("the ETag of part {} does not match", want.number)));
                }
                if let (Some(given), Some(have)) = (&want.checksum, &part.checksum)
                    && given.trim() != have
                {
                    return Err(Error::InvalidPart(format!("the checksum of part {} does not match", want.number)));
                }
                if i + 1 < parts.len() && part.size < MIN_PART_SIZE {
                    return Err(Error::EntityTooSmall);
                }
                chosen.push(entry);
            }
            let etags: Vec<String> = chosen.iter().map(|e| e.2.etag.clone()).collect();
            let etag = multipart_etag(&etags).ok_or_else(|| Error::Internal("stored part ETag is not hex".into()))?;
            let checksum = match (up.record.checksum_algorithm, up.record.checksum_kind) {
                (Some(alg), Some(kind)) => {
                    let sums: Option<Vec<(String, u64)>> =
                        chosen.iter().map(|e| e.2.checksum.clone().map(|c| (c, e.2.size))).collect();
                    sums.and_then(|s| combine_part_checksums(alg, kind, &s)).map(|value| StoredChecksum {
                        algorithm: alg,
                        kind,
                        value,
                    })
                }
                _ => None,
            };
            if let (Some((alg, want)), Some(have)) = (&expected_checksum, &checksum)
                && have.kind == ChecksumKind::FullObject
                && have.algorithm == *alg
                && want.trim() != have.value
            {
                return Err(Error::BadDigest("the whole-object checksum does not match the parts".into()));
            }
            let rec = ObjectRecord {
                // The upload id is as unique as a fresh blob id (an upload completes once)
                // and lets a retried Complete recognise the object it made.
                version: up.record.id.to_string(),
                size: chosen.iter().map(|e| e.2.size).sum(),
                etag,
                last_modified_ms: now_ms(),
                headers: up.record.headers.clone(),
                user_metadata: up.record.user_metadata.clone(),
                checksum,
                segments: chosen
                    .iter()
                    .map(|e| Segment { backend: e.2.backend.clone(), blob: e.2.blob.clone(), size: e.2.size })
                    .collect(),
                parts_count: Some(chosen.len() as u32),
            };
            if let Some(m) = &up.bucket.record.mapped {
                return self.mapped_complete(&up.bucket, m, &up.key, &up.raw, &stored, key, rec, &conditions).await;
            }
            let okey = object_key(up.bucket.record.id, key);
            let current = self.read_object(up.bucket.record.id, key).await?;
            check_write_conditions(current.as_ref().map(|(_, r)| r), &conditions)?;
            let (cur_raw, cur) = current.map_or((None, None), |(raw, rec)| (Some(raw), Some(rec)));
            let guard = Guard::read(&*self.meta, &up.bucket.record).await?;
            let mut txn = Self::object_write_txn(&up.bucket, &okey, cur_raw, cur.as_ref(), &rec)
                .require_equals(Table::Uploads, up.key.clone(), up.raw.clone())
                .delete(Table::Uploads, up.key.clone());
            // The parts were counted as they were stored: the object adds
            // nothing to bytes but drops unused parts and the replaced object.
            let parts_total: u64 = stored.iter().map(|p| p.2.size).sum();
            let charge = Charge::new(
                rec.size as i64 - parts_total as i64 - cur.as_ref().map_or(0, |c| c.size as i64),
                if cur.is_some() { 0 } else { 1 },
            );
            let soft = guard.charge(&mut txn, charge)?;
            let used: std::collections::HashSet<u32> = parts.iter().map(|p| p.number).collect();
            for (pk, pv, part) in &stored {
                txn.conditions.push(orbit_meta::Condition::Equals {
                    table: Table::Parts,
                    key: pk.clone(),
                    value: pv.clone(),
                });
                txn.push_delete(Table::Parts, pk.clone());
                if !used.contains(&part.number) {
                    txn.push_put(Table::Gc, gc_key(&part.backend, &part.blob), due_value(now_ms()));
                }
            }
            match self.meta.commit(txn).await {
                Ok(()) => {
                    pass.committed();
                    guard.report(soft);
                    self.gc.wake();
                    return Ok(rec);
                }
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("the upload kept changing while being completed, retry".into()))
    }

    /// A Complete retried after it succeeded (its answer lost to a timeout, as
    /// SDKs retry) gets the same object back, as S3 answers it, while the key
    /// still holds what that upload made with the same parts; otherwise NoSuchUpload.
    async fn completed_before(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<ObjectRecord> {
        let gone = Error::NotFound(Resource::Upload);
        let id: UploadId = upload_id.parse().map_err(|_| Error::NotFound(Resource::Upload))?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        if b.record.mapped.is_some() {
            return Err(gone);
        }
        let Some((_, rec)) = self.read_object(b.record.id, key).await? else {
            return Err(gone);
        };
        let etags: Vec<String> = parts.iter().map(|p| p.etag.trim().trim_matches('"').to_owned()).collect();
        if rec.version == id.to_string() && multipart_etag(&etags).is_some_and(|e| e == rec.etag) {
            Ok(rec)
        } else {
            Err(gone)
        }
    }

    pub async fn abort_upload(&self, caller: &Caller, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        require_write(caller)?;
        if let Some((remote, b)) = self.remote_upload(caller, bucket, key).await? {
            return remote.abort_upload(caller, &b, key, upload_id).await;
        }
        for _ in 0..MAX_CAS_RETRIES {
            let up = self.resolve_upload(caller, bucket, key, upload_id).await?;
            let mut txn = Txn::new()
                .require_equals(Table::Uploads, up.key.clone(), up.raw.clone())
                .delete(Table::Uploads, up.key.clone());
            let mut freed = 0i64;
            for (pk, pv, part) in self.parts_of(up.record.id).await? {
                txn.conditions.push(orbit_meta::Condition::Equals { table: Table::Parts, key: pk.clone(), value: pv });
                txn.push_delete(Table::Parts, pk);
                txn.push_put(Table::Gc, gc_key(&part.backend, &part.blob), due_value(now_ms()));
                freed += part.size as i64;
            }
            release(&mut txn, up.bucket.record.tenant_id, up.bucket.record.id, Charge::new(-freed, 0));
            match self.meta.commit(txn).await {
                Ok(()) => {
                    self.gc.wake();
                    return Ok(());
                }
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("the upload kept changing while being aborted, retry".into()))
    }

    pub async fn list_parts(
        &self,
        caller: &Caller,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: Option<u32>,
        max: usize,
    ) -> Result<PartsPage> {
        if let Some((remote, b)) = self.remote_upload(caller, bucket, key).await? {
            return remote.list_parts(caller, &b, key, upload_id, after, max).await;
        }
        let up = self.resolve_upload(caller, bucket, key, upload_id).await?;
        let max = max.min(1000);
        let mut parts: Vec<PartRecord> = self
            .parts_of(up.record.id)
            .await?
            .into_iter()
            .map(|(_, _, p)| p)
            .filter(|p| after.is_none_or(|a| p.number > a))
            .collect();
        let is_truncated = parts.len() > max;
        parts.truncate(max);
        let next_marker = if is_truncated { parts.last().map(|p| p.number) } else { None };
        Ok(PartsPage { upload: up.record, parts, is_truncated, next_marker })
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn list_uploads(
        &self,
        caller: &Caller,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> Result<UploadsPage> {
        // Uploads in progress are writes: listing them needs write on the whole prefix.
        super::access::require_list(caller, bucket, prefix, orbit_tenancy::Access::Write)?;
        let b = self.resolve_bucket(caller.tenant_id, bucket).await?;
        if let Some(remote) = self.remote_for(&b.record) {
            return remote.list_uploads(caller, &b.record, prefix, delimiter, key_marker, upload_id_marker, max).await;
        }
        let rows = self
            .meta
            .scan_prefix(Table::Uploads, b.record.id.as_bytes(), None, usize::MAX)
            .await
            .map_err(meta_error)?;
        let mut all: Vec<UploadRecord> =
            rows.into_iter().map(|(_, v)| decode::<UploadRecord>(&v).map_err(meta_error)).collect::<Result<_>>()?;
        all.retain(|u| u.key.starts_with(prefix));
        all.sort_by(|a, b| (a.key.as_str(), a.initiated_ms, a.id).cmp(&(b.key.as_str(), b.initiated_ms, b.id)));
        if let Some(km) = key_marker {
            let uid = upload_id_marker.and_then(|u| u.parse::<UploadId>().ok());
            all.retain(|u| match uid {
                Some(id) => u.key.as_str() > km || (u.key == km && u.id > id),
                None => u.key.as_str() > km,
            });
        }
        let max = max.min(1000);
        let mut page = UploadsPage::default();
        let delimiter = delimiter.filter(|d| !d.is_empty());
        for u in all {
            let entries = page.uploads.len() + page.common_prefixes.len();
            if let Some(d) = delimiter
                && let Some(pos) = u.key[prefix.len()..].find(d)
            {
                let cp = u.key[..prefix.len() + pos + d.len()].to_owned();
                if page.common_prefixes.last() == Some(&cp) {
                    continue;
                }
                if entries == max {
                    page.is_truncated = true;
                    break;
                }
                page.next_key_marker = Some(cp.clone());
                page.next_upload_id_marker = None;
                page.common_prefixes.push(cp);
                continue;
            }
            if entries == max {
                page.is_truncated = true;
                break;
            }
            page.next_key_marker = Some(u.key.clone());
            page.next_upload_id_marker = Some(u.id.to_string());
            page.uploads.push(u);
        }
        if !page.is_truncated {
            page.next_key_marker = None;
            page.next_upload_id_marker = None;
        }
        Ok(page)
    }
}

/// The bytes of a source of `size` that a part copy takes. Unlike a GET's, a
/// copy's range is never clamped to the object.
fn copy_span(size: u64, range: Option<ByteRange>) -> Result<std::ops::Range<u64>> {
    let span = match range {
        Some(ByteRange::FromTo { first, last: Some(last) }) if last >= size || first > last => {
            return Err(Error::InvalidArgument(format!(
                "Range specified is not valid for source object of size: {size}"
            )));
        }
        Some(r) => resolve_range(size, r)?,
        None => 0..size,
    };
    if span.end - span.start > MAX_PART_SIZE {
        return Err(Error::EntityTooLarge("a part is limited to 5 GiB".into()));
    }
    Ok(span)
}
