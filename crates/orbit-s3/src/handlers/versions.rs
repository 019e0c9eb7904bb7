//! ListObjectVersions over unversioned buckets: every object is its one "null"
//! version, the latest. AWS answers this on buckets that never had versioning,
//! and clients rely on it to empty a bucket (terraform force_destroy, s3-tests,
//! `aws s3api list-object-versions`), so it must not be NotImplemented.

use super::OrbitS3;
use crate::convert::{etag, is_url_encoding, list_encode, max_keys, ts};
use crate::error::IntoS3;
use crate::identity::caller;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

const NULL_VERSION: &str = "null";

pub(super) async fn list_object_versions(
    s: &OrbitS3,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let c = caller(&req)?;
    let i = req.input;
    let url = is_url_encoding(i.encoding_type.as_ref());
    let max = max_keys(i.max_keys)?;
    // With one version per key, a version-id marker adds nothing: resume after the key.
    let q = super::list::query(&i.prefix, &i.delimiter, &i.key_marker, max);
    let page = s.ns.list_objects(&c, &i.bucket, &q).await.s3()?;
    let enc = |v: Option<String>| v.map(|v| list_encode(url, &v));
    let versions = page
        .objects
        .iter()
        .map(|(k, r)| ObjectVersion {
            key: Some(list_encode(url, k)),
            version_id: Some(NULL_VERSION.to_owned()),
            is_latest: Some(true),
            e_tag: Some(etag(&r.etag)),
            size: Some(r.size as i64),
            last_modified: Some(ts(r.last_modified_ms)),
            storage_class: Some(ObjectVersionStorageClass::from_static(ObjectVersionStorageClass::STANDARD)),
            checksum_algorithm: r
                .checksum
                .as_ref()
                .map(|c| vec![ChecksumAlgorithm::from(c.algorithm.as_str().to_owned())]),
            checksum_type: r.checksum.as_ref().map(|c| ChecksumType::from(c.kind.as_str().to_owned())),
            ..Default::default()
        })
        .collect();
    let prefixes = super::list::prefixes(&page, url);
    let is_truncated = super::list::truncated(&page, max);
    let (next_key_marker, next_version_id_marker) =
        if is_truncated { (enc(page.next_marker.clone()), Some(NULL_VERSION.to_owned())) } else { (None, None) };
    Ok(S3Response::new(ListObjectVersionsOutput {
        name: Some(i.bucket),
        versions: Some(versions),
        common_prefixes: Some(prefixes),
        is_truncated: Some(is_truncated),
        next_key_marker,
        next_version_id_marker,
        key_marker: enc(i.key_marker),
        version_id_marker: i.version_id_marker,
        prefix: enc(i.prefix),
        delimiter: enc(q.delimiter.clone()),
        max_keys: Some(max as i32),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}
