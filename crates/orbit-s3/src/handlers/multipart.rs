use super::OrbitS3;
use super::object::{caller_of, copy_source};
use crate::convert::{
    self, algorithm, body_in, checksum_out, etag, headers_in, is_url_encoding, list_encode, metadata_in,
    part_checksum_out, ts,
};
use crate::error::IntoS3;
use orbit_core::{ChecksumAlgorithm as CoreAlg, ChecksumKind, CompletedPart as CorePart, WriteConditions};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

fn kind_in(t: Option<&ChecksumType>) -> S3Result<Option<ChecksumKind>> {
    match t.map(ChecksumType::as_str) {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("COMPOSITE") => Ok(Some(ChecksumKind::Composite)),
        Some(v) if v.eq_ignore_ascii_case("FULL_OBJECT") => Ok(Some(ChecksumKind::FullObject)),
        Some(v) => Err(s3_error!(InvalidRequest, "Unknown checksum type {v}")),
    }
}

pub(super) async fn create(
    s: &OrbitS3,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let alg = i.checksum_algorithm.as_ref().map(algorithm).transpose()?;
    let headers = headers_in(
        i.content_type.clone(),
        i.content_encoding.clone(),
        i.content_disposition.clone(),
        i.content_language.clone(),
        i.cache_control.clone(),
        i.expires.as_ref(),
    );
    let up = s
        .ns
        .create_upload(&c, &i.bucket, &i.key, headers, metadata_in(i.metadata), alg, kind_in(i.checksum_type.as_ref())?)
        .await
        .s3()?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(up.id.to_string()),
        checksum_algorithm: up.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
        checksum_type: up.checksum_kind.map(|k| ChecksumType::from(k.as_str().to_owned())),
        ..Default::default()
    }))
}

fn part_number(n: i32) -> S3Result<u32> {
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| s3_error!(InvalidArgument, "Part number must be an integer between 1 and 10000, inclusive"))
}

pub(super) async fn upload_part(
    s: &OrbitS3,
    mut req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let c = caller_of(&req)?;
    let body = req.input.body.take();
    let i = &req.input;
    let number = part_number(i.part_number)?;
    let checksum = convert::expected_checksum(&req, convert::checksum_headers!(i))?;
    let alg = checksum.algorithm;
    let content_length = i.content_length.map(|n| n.max(0) as u64);
    let part =
        s.ns.upload_part(
            &c,
            &i.bucket,
            &i.key,
            &i.upload_id,
            number,
            crate::qos::paced(&req.extensions, body_in(body)),
            content_length,
            i.content_md5.as_deref(),
            checksum,
        )
        .await
        .s3()?;
    let cs = part_checksum_out(alg, part.checksum.as_ref());
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&part.etag)),
        checksum_crc32: cs.crc32,
        checksum_crc32c: cs.crc32c,
        checksum_crc64nvme: cs.crc64nvme,
        checksum_sha1: cs.sha1,
        checksum_sha256: cs.sha256,
        ..Default::default()
    }))
}

pub(super) async fn upload_part_copy(
    s: &OrbitS3,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let number = part_number(i.part_number)?;
    let src = copy_source(&i.copy_source, convert::copy_source_conditions!(i))?;
    let range = match &i.copy_source_range {
        Some(r) => Some(convert::range_in(&Range::parse(r).map_err(|_| {
            s3_error!(InvalidArgument, "The x-amz-copy-source-range value must be of the form bytes=first-last")
        })?)),
        None => None,
    };
    let part = s.ns.upload_part_copy(&c, &i.bucket, &i.key, &i.upload_id, number, src, range).await.s3()?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&part.etag)),
            last_modified: Some(ts(part.last_modified_ms)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}

fn completed_part_checksum(p: &CompletedPart) -> Option<String> {
    p.checksum_crc32
        .clone()
        .or_else(|| p.checksum_crc32c.clone())
        .or_else(|| p.checksum_crc64nvme.clone())
        .or_else(|| p.checksum_sha1.clone())
        .or_else(|| p.checksum_sha256.clone())
}

pub(super) async fn complete(
    s: &OrbitS3,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let parts = i.multipart_upload.and_then(|m| m.parts).ok_or_else(|| {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    })?;
    let parts = parts
        .iter()
        .map(|p| {
            let number = p.part_number.ok_or_else(|| s3_error!(MalformedXML, "A part is missing its PartNumber"))?;
            let etag = p.e_tag.as_ref().ok_or_else(|| s3_error!(MalformedXML, "A part is missing its ETag"))?;
            Ok(CorePart {
                number: part_number(number)?,
                etag: etag.value().to_owned(),
                checksum: completed_part_checksum(p),
            })
        })
        .collect::<S3Result<Vec<_>>>()?;
    let whole = [
        (CoreAlg::Crc32, i.checksum_crc32.as_ref()),
        (CoreAlg::Crc32c, i.checksum_crc32c.as_ref()),
        (CoreAlg::Crc64Nvme, i.checksum_crc64nvme.as_ref()),
    ]
    .into_iter()
    .find_map(|(a, v)| v.map(|v| (a, v.clone())));
    let conditions = WriteConditions {
        if_match: convert::condition(i.if_match.as_ref()),
        if_none_match: convert::condition(i.if_none_match.as_ref()),
    };
    let rec = s.ns.complete_upload(&c, &i.bucket, &i.key, &i.upload_id, parts, conditions, whole).await.s3()?;
    let cs = checksum_out(rec.checksum.as_ref());
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        bucket: Some(i.bucket.clone()),
        key: Some(i.key.clone()),
        location: Some(format!("/{}/{}", i.bucket, i.key)),
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

pub(super) async fn abort(
    s: &OrbitS3,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    s.ns.abort_upload(&c, &i.bucket, &i.key, &i.upload_id).await.s3()?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub(super) async fn list_parts(s: &OrbitS3, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let after = match i.part_number_marker {
        None | Some(0) => None,
        Some(m) => {
            Some(u32::try_from(m).map_err(|_| s3_error!(InvalidArgument, "part-number-marker must not be negative"))?)
        }
    };
    let max = i.max_parts.map_or(1000, |m| m.clamp(0, 1000) as usize);
    let page = s.ns.list_parts(&c, &i.bucket, &i.key, &i.upload_id, after, max).await.s3()?;
    let alg = page.upload.checksum_algorithm;
    let parts = page
        .parts
        .iter()
        .map(|p| {
            let cs = part_checksum_out(alg, p.checksum.as_ref());
            Part {
                part_number: Some(p.number as i32),
                e_tag: Some(etag(&p.etag)),
                size: Some(p.size as i64),
                last_modified: Some(ts(p.last_modified_ms)),
                checksum_crc32: cs.crc32,
                checksum_crc32c: cs.crc32c,
                checksum_crc64nvme: cs.crc64nvme,
                checksum_sha1: cs.sha1,
                checksum_sha256: cs.sha256,
            }
        })
        .collect();
    let who = Some(page.upload.initiator.clone());
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        parts: Some(parts),
        is_truncated: Some(page.is_truncated),
        next_part_number_marker: page.next_marker.map(|n| n as i32),
        part_number_marker: i.part_number_marker,
        max_parts: Some(max as i32),
        initiator: Some(Initiator { display_name: who.clone(), id: who.clone() }),
        owner: Some(Owner { display_name: who.clone(), id: who }),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        checksum_algorithm: alg.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
        checksum_type: page.upload.checksum_kind.map(|k| ChecksumType::from(k.as_str().to_owned())),
        ..Default::default()
    }))
}

pub(super) async fn list_uploads(
    s: &OrbitS3,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let c = caller_of(&req)?;
    let i = req.input;
    let url = is_url_encoding(i.encoding_type.as_ref());
    let max = i.max_uploads.map_or(1000, |m| m.clamp(0, 1000) as usize);
    let page =
        s.ns.list_uploads(
            &c,
            &i.bucket,
            i.prefix.as_deref().unwrap_or(""),
            i.delimiter.as_deref(),
            i.key_marker.as_deref(),
            i.upload_id_marker.as_deref(),
            max,
        )
        .await
        .s3()?;
    let uploads = page
        .uploads
        .iter()
        .map(|u| MultipartUpload {
            key: Some(list_encode(url, &u.key)),
            upload_id: Some(u.id.to_string()),
            initiated: Some(ts(u.initiated_ms)),
            initiator: Some(Initiator { display_name: Some(u.initiator.clone()), id: Some(u.initiator.clone()) }),
            owner: Some(Owner { display_name: Some(u.initiator.clone()), id: Some(u.initiator.clone()) }),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            checksum_algorithm: u.checksum_algorithm.map(|a| ChecksumAlgorithm::from(a.as_str().to_owned())),
            checksum_type: u.checksum_kind.map(|k| ChecksumType::from(k.as_str().to_owned())),
        })
        .collect();
    let enc = |v: Option<String>| v.map(|v| list_encode(url, &v));
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        uploads: Some(uploads),
        common_prefixes: Some(
            page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(list_encode(url, p)) }).collect(),
        ),
        is_truncated: Some(page.is_truncated),
        next_key_marker: enc(page.next_key_marker),
        next_upload_id_marker: page.next_upload_id_marker,
        key_marker: enc(i.key_marker),
        upload_id_marker: i.upload_id_marker,
        prefix: enc(i.prefix),
        delimiter: enc(i.delimiter),
        max_uploads: Some(max as i32),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}
