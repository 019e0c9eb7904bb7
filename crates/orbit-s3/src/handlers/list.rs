use super::OrbitS3;
use crate::convert::{etag, is_url_encoding, list_encode, max_keys, ts};
use crate::error::IntoS3;
use crate::identity::caller;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use orbit_core::{ListPage, ListQuery};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

fn contents(page: &ListPage, url: bool) -> Vec<Object> {
    page.objects
        .iter()
        .map(|(k, r)| Object {
            key: Some(list_encode(url, k)),
            e_tag: Some(etag(&r.etag)),
            size: Some(r.size as i64),
            last_modified: Some(ts(r.last_modified_ms)),
            storage_class: Some(ObjectStorageClass::from_static(ObjectStorageClass::STANDARD)),
            checksum_algorithm: r
                .checksum
                .as_ref()
                .map(|c| vec![ChecksumAlgorithm::from(c.algorithm.as_str().to_owned())]),
            checksum_type: r.checksum.as_ref().map(|c| ChecksumType::from(c.kind.as_str().to_owned())),
            ..Default::default()
        })
        .collect()
}

pub(super) fn prefixes(page: &ListPage, url: bool) -> Vec<CommonPrefix> {
    page.common_prefixes.iter().map(|p| CommonPrefix { prefix: Some(list_encode(url, p)) }).collect()
}

/// S3 answers max-keys=0 with no keys and IsTruncated=false.
pub(super) fn truncated(page: &ListPage, max: usize) -> bool {
    page.is_truncated && max > 0
}

/// The core query of a listing; an empty delimiter or marker is none, as in S3.
pub(super) fn query(
    prefix: &Option<String>,
    delimiter: &Option<String>,
    after: &Option<String>,
    max: usize,
) -> ListQuery {
    ListQuery {
        prefix: prefix.clone().unwrap_or_default(),
        delimiter: delimiter.clone().filter(|d| !d.is_empty()),
        start_after: after.clone().filter(|m| !m.is_empty()),
        max_keys: max,
    }
}

pub(super) async fn list_objects(
    s: &OrbitS3,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let c = caller(&req)?;
    let i = req.input;
    let url = is_url_encoding(i.encoding_type.as_ref());
    let max = max_keys(i.max_keys)?;
    let q = query(&i.prefix, &i.delimiter, &i.marker, max);
    let page = s.ns.list_objects(&c, &i.bucket, &q).await.s3()?;
    let enc = |v: Option<String>| v.map(|v| list_encode(url, &v));
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        contents: Some(contents(&page, url)),
        common_prefixes: Some(prefixes(&page, url)),
        is_truncated: Some(truncated(&page, max)),
        // S3 returns NextMarker only with a delimiter; clients use the last key otherwise.
        next_marker: if page.is_truncated && q.delimiter.is_some() { enc(page.next_marker.clone()) } else { None },
        // V1 always echoes Marker (empty when none was given) and never URL-encodes the
        // echoed Prefix: botocore decodes only Marker, Delimiter, NextMarker and keys.
        marker: Some(enc(i.marker).unwrap_or_default()),
        prefix: i.prefix,
        delimiter: enc(q.delimiter.clone()),
        max_keys: Some(max as i32),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}

pub(super) async fn list_objects_v2(
    s: &OrbitS3,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let c = caller(&req)?;
    let i = req.input;
    let url = is_url_encoding(i.encoding_type.as_ref());
    let max = max_keys(i.max_keys)?;
    let resume = match &i.continuation_token {
        Some(t) => Some(
            B64.decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| s3_error!(InvalidArgument, "The continuation token provided is incorrect"))?,
        ),
        None => None,
    };
    let q = query(&i.prefix, &i.delimiter, &resume.or_else(|| i.start_after.clone()), max);
    let page = s.ns.list_objects(&c, &i.bucket, &q).await.s3()?;
    let enc = |v: Option<String>| v.map(|v| list_encode(url, &v));
    let key_count = (page.objects.len() + page.common_prefixes.len()) as i32;
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        contents: Some(contents(&page, url)),
        common_prefixes: Some(prefixes(&page, url)),
        is_truncated: Some(truncated(&page, max)),
        key_count: Some(key_count),
        next_continuation_token: if page.is_truncated {
            page.next_marker.as_ref().map(|m| B64.encode(m))
        } else {
            None
        },
        continuation_token: i.continuation_token,
        start_after: enc(i.start_after),
        prefix: enc(i.prefix),
        delimiter: enc(q.delimiter.clone()),
        max_keys: Some(max as i32),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}
