use super::OrbitS3;
use crate::convert::{
    self, body_in, body_out, check_version_id, checksum_out, content_range, etag, expires_out, headers_in, metadata_in,
    metadata_out, range_in, read_conditions, ts,
};
use crate::error::{IntoS3, s3_error};
use orbit_core::{
    CopySource as CoreCopySource, GetObject, MetadataDirective as CoreDirective, PutObject, WriteConditions,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

fn wants_checksum(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

pub(super) async fn put_object(
    s: &OrbitS3,
    mut req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let c = caller_of(&req)?;
    let body = req.input.body.take();
    let i = &req.input;
    let checksum = convert::expected_checksum(&req, convert::checksum_headers!(i))?;
    let headers = headers_in(
        i.content_type.clone(),
        i.content_encoding.clone(),
        i.content_disposition.clone(),
        i.content_language.clone(),
        i.cache_control.clone(),
        i.expires.as_ref(),
    );
    let content_length = match i.content_length {
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "Content-Length must not be negative")),
        Some(n) => Some(n as u64),
        None => None,
    };
    let put = PutObject {
        content_length,
        headers,
        user_metadata: metadata_in(i.metadata.clone()),
        content_md5: i.content_md5.clone(),
        checksum,
        conditions: WriteConditions {
            if_match: convert::condition(i.if_match.as_ref()),
            if_none_match: convert::condition(i.if_none_match.as_ref()),
        },
        body: crate::qos::paced(&req.extensions, body_in(body)),
    };
    let rec = s.ns.put_object(&c, &i.bucket, &i.key, put).await.s3()?;
    let cs = checksum_out(rec.checksum.as_ref());
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&rec.etag)),
        checksum_crc32: cs.crc32,
        checksum_crc32c: cs.crc32c,
        checksum_crc64nvme: cs.crc64nvme,
        checksum_sha1: cs.sha1,
        checksum_sha256: cs.sha256,
        checksum_type: cs.kind,
        ..Default::default()
    }))
}

fn get_request(
    range: Option<&Range>,
    part_number: Option<i32>,
    conditions: orbit_core::ReadConditions,
) -> S3Result<GetObject> {
    let part_number = match part_number {
        Some(n) if n < 1 => {
            return Err(s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"));
        }
        Some(n) => Some(n as u32),
        None => None,
    };
    Ok(GetObject { range: range.map(range_in), part_number, conditions })
}

/// GetObject and HeadObject take the same read parameters.
#[allow(clippy::too_many_arguments)]
fn read_request(
    version_id: Option<&String>,
    range: Option<&Range>,
    part_number: Option<i32>,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<GetObject> {
    check_version_id(version_id)?;
    get_request(range, part_number, read_conditions(if_match, if_none_match, if_modified_since, if_unmodified_since))
}

/// The response headers GetObject and HeadObject share (their output types
/// differ, their fields do not). Checksums only for whole-object reads that
/// ask for them, as S3 does.
macro_rules! object_output {
    ($ty:ident, $rec:expr, $range:expr, $part_number:expr, $checksum_mode:expr) => {{
        let rec: &orbit_core::ObjectRecord = $rec;
        let range: &Option<std::ops::Range<u64>> = $range;
        let cs = if range.is_none() && wants_checksum($checksum_mode) {
            checksum_out(rec.checksum.as_ref())
        } else {
            Default::default()
        };
        $ty {
            content_length: Some(range.as_ref().map_or(rec.size, |r| r.end - r.start) as i64),
            content_range: range.as_ref().map(|r| content_range(r, rec.size)),
            accept_ranges: Some("bytes".into()),
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(ts(rec.last_modified_ms)),
            metadata: metadata_out(&rec.user_metadata),
            content_type: rec.headers.content_type.clone().or_else(|| Some("binary/octet-stream".into())),
            content_encoding: rec.headers.content_encoding.clone(),
            content_disposition: rec.headers.content_disposition.clone(),
            content_language: rec.headers.content_language.clone(),
            cache_control: rec.headers.cache_control.clone(),
            expires: expires_out(rec.headers.expires.as_ref()),
            parts_count: $part_number.and(rec.parts_count).map(|n| n as i32),
            checksum_crc32: cs.crc32,
            checksum_crc32c: cs.crc32c,
            checksum_crc64nvme: cs.crc64nvme,
            checksum_sha1: cs.sha1,
            checksum_sha256: cs.sha256,
            checksum_type: cs.kind,
            ..Default::default()
        }
    }};
}

/// A 304 carries the object's ETag and Last-Modified as S3 sends them, so a
/// client revalidating its copy learns which version it still holds.
async fn not_modified(s: &OrbitS3, c: &orbit_tenancy::Caller, bucket: &str, key: &str) -> s3s::S3Error {
    let mut err = s3_error(orbit_types::Error::NotModified);
    // The object was just read under the same caller; if it vanished since, a bare 304 is still right.
    if let Ok((rec, _)) = s.ns.head_object(c, bucket, key, &GetObject::default()).await {
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", rec.etag)) {
            headers.insert(http::header::ETAG, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&convert::http_date(rec.last_modified_ms)) {
            headers.insert(http::header::LAST_MODIFIED, v);
        }
        err.set_headers(headers);
    }
    err
}

pub(super) async fn get_object(s: &OrbitS3, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let get = read_request(
        i.version_id.as_ref(),
        i.range.as_ref(),
        i.part_number,
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    )?;
    let body = match s.ns.get_object(&c, &i.bucket, &i.key, &get).await {
        Err(orbit_types::Error::NotModified) => return Err(not_modified(s, &c, &i.bucket, &i.key).await),
        r => r.s3()?,
    };
    let mut output =
        object_output!(GetObjectOutput, &body.record, &body.range, get.part_number, i.checksum_mode.as_ref());
    output.body = Some(body_out(crate::qos::paced(&req.extensions, body.stream)));
    Ok(S3Response::new(output))
}

pub(super) async fn head_object(
    s: &OrbitS3,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let get = read_request(
        i.version_id.as_ref(),
        i.range.as_ref(),
        i.part_number,
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    )?;
    let (rec, range) = match s.ns.head_object(&c, &i.bucket, &i.key, &get).await {
        Err(orbit_types::Error::NotModified) => return Err(not_modified(s, &c, &i.bucket, &i.key).await),
        r => r.s3()?,
    };
    Ok(S3Response::new(object_output!(HeadObjectOutput, &rec, &range, get.part_number, i.checksum_mode.as_ref())))
}

pub(super) async fn delete_object(
    s: &OrbitS3,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let c = caller_of(&req)?;
    check_version_id(req.input.version_id.as_ref())?;
    s.ns.delete_object(&c, &req.input.bucket, &req.input.key).await.s3()?;
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub(super) async fn delete_objects(
    s: &OrbitS3,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    if i.delete.objects.len() > 1000 {
        return Err(s3_error!(MalformedXML, "The request may not contain more than 1000 keys"));
    }
    // Resolve the bucket once so a missing bucket fails the whole request, as in S3.
    s.ns.head_bucket(&c, &i.bucket).await.s3()?;
    let quiet = i.delete.quiet.unwrap_or(false);
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for obj in i.delete.objects {
        let result = match obj.version_id.as_deref() {
            None | Some("null") => s.ns.delete_object(&c, &i.bucket, &obj.key).await.map_err(s3_error),
            Some(_) => Err(s3_error!(NoSuchVersion, "The specified version does not exist.")),
        };
        match result {
            Ok(()) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(obj.key),
                        version_id: obj.version_id,
                        ..Default::default()
                    });
                }
            }
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_owned()),
                key: Some(obj.key),
                message: e.message().map(str::to_owned),
                version_id: obj.version_id,
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput { deleted: Some(deleted), errors: Some(errors), ..Default::default() }))
}

pub(super) fn copy_source(src: &CopySource, conditions: orbit_core::ReadConditions) -> S3Result<CoreCopySource> {
    match src {
        CopySource::Bucket { bucket, key, version_id } => {
            check_version_id(version_id.as_ref().map(|v| v.to_string()).as_ref())?;
            Ok(CoreCopySource { bucket: bucket.to_string(), key: key.to_string(), conditions })
        }
        _ => Err(s3_error!(NotImplemented, "Access point copy sources are not supported")),
    }
}

pub(super) async fn copy_object(
    s: &OrbitS3,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let src = copy_source(&i.copy_source, convert::copy_source_conditions!(i))?;
    let directive = match i.metadata_directive.as_ref().map(MetadataDirective::as_str) {
        None | Some("COPY") => CoreDirective::Copy,
        Some("REPLACE") => CoreDirective::Replace {
            headers: headers_in(
                i.content_type.clone(),
                i.content_encoding.clone(),
                i.content_disposition.clone(),
                i.content_language.clone(),
                i.cache_control.clone(),
                i.expires.as_ref(),
            ),
            user_metadata: metadata_in(i.metadata.clone()),
        },
        Some(other) => return Err(s3_error!(InvalidArgument, "Unknown metadata directive {other}")),
    };
    let rec = s.ns.copy_object(&c, &i.bucket, &i.key, src, directive, WriteConditions::default()).await.s3()?;
    let cs = checksum_out(rec.checksum.as_ref());
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(ts(rec.last_modified_ms)),
            checksum_crc32: cs.crc32,
            checksum_crc32c: cs.crc32c,
            checksum_crc64nvme: cs.crc64nvme,
            checksum_sha1: cs.sha1,
            checksum_sha256: cs.sha256,
            checksum_type: cs.kind,
        }),
        ..Default::default()
    }))
}

pub(super) fn caller_of<T>(req: &S3Request<T>) -> S3Result<orbit_tenancy::Caller> {
    crate::identity::caller(req)
}
