//! Conversions between s3s DTOs and the core's types.

use futures::{StreamExt, TryStreamExt};
use orbit_backend::ByteStream;
use orbit_core::{ByteRange, ChecksumAlgorithm, ContentHeaders, ExpectedChecksum, ReadConditions, StoredChecksum};
use s3s::dto::{self, ETag, ETagCondition, StreamingBlob, Timestamp, TimestampFormat};
use s3s::{S3Request, S3Result, s3_error};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64))
}

/// A timestamp as an HTTP date (`Last-Modified` in a header we set ourselves).
pub(crate) fn http_date(ms: i64) -> String {
    let mut out = Vec::new();
    let _ = ts(ms).format(TimestampFormat::HttpDate, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

pub(crate) fn ms(t: &Timestamp) -> i64 {
    let odt: time::OffsetDateTime = t.clone().into();
    (odt.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

pub(crate) fn condition(c: Option<&ETagCondition>) -> Option<String> {
    c.map(|c| match c {
        ETagCondition::Any => "*".to_owned(),
        ETagCondition::ETag(e) => e.value().to_owned(),
    })
}

pub(crate) fn read_conditions(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> ReadConditions {
    ReadConditions {
        if_match: condition(if_match),
        if_none_match: condition(if_none_match),
        if_modified_since: if_modified_since.map(ms),
        if_unmodified_since: if_unmodified_since.map(ms),
    }
}

fn format_http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

pub(crate) fn expires_out(s: Option<&String>) -> Option<Timestamp> {
    s.and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

pub(crate) fn headers_in(
    content_type: Option<String>,
    content_encoding: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    cache_control: Option<String>,
    expires: Option<&Timestamp>,
) -> ContentHeaders {
    ContentHeaders {
        content_type,
        content_encoding: content_encoding.and_then(strip_aws_chunked),
        content_disposition,
        content_language,
        cache_control,
        expires: expires.and_then(format_http_date),
    }
}

/// `aws-chunked` only frames the upload; S3 drops it from the stored encoding.
fn strip_aws_chunked(encoding: String) -> Option<String> {
    let rest: Vec<&str> = encoding
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    if rest.is_empty() { None } else { Some(rest.join(", ")) }
}

pub(crate) fn metadata_in(m: Option<dto::Metadata>) -> BTreeMap<String, String> {
    m.map(|m| m.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()).unwrap_or_default()
}

pub(crate) fn metadata_out(m: &BTreeMap<String, String>) -> Option<dto::Metadata> {
    if m.is_empty() { None } else { Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()) }
}

pub(crate) fn range_in(r: &dto::Range) -> ByteRange {
    match *r {
        dto::Range::Int { first, last } => ByteRange::FromTo { first, last },
        dto::Range::Suffix { length } => ByteRange::Suffix { length },
    }
}

pub(crate) fn content_range(range: &std::ops::Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{}", range.start, range.end.saturating_sub(1), size)
}

pub(crate) fn body_in(body: Option<StreamingBlob>) -> ByteStream {
    match body {
        Some(b) => b.map_err(std::io::Error::other).boxed(),
        None => futures::stream::empty().boxed(),
    }
}

pub(crate) fn body_out(stream: ByteStream) -> StreamingBlob {
    StreamingBlob::wrap(sync_wrapper::SyncStream::new(stream))
}

pub(crate) fn algorithm(a: &dto::ChecksumAlgorithm) -> S3Result<ChecksumAlgorithm> {
    a.as_str().parse().map_err(|e: String| s3_error!(InvalidRequest, "{e}"))
}

/// The checksum headers of an input that has S3's usual checksum fields
/// (PutObject, UploadPart).
macro_rules! checksum_headers {
    ($input:expr) => {
        $crate::convert::ChecksumHeaders {
            algorithm: $input.checksum_algorithm.as_ref(),
            crc32: $input.checksum_crc32.as_ref(),
            crc32c: $input.checksum_crc32c.as_ref(),
            crc64nvme: $input.checksum_crc64nvme.as_ref(),
            sha1: $input.checksum_sha1.as_ref(),
            sha256: $input.checksum_sha256.as_ref(),
        }
    };
}
pub(crate) use checksum_headers;

/// The `x-amz-copy-source-if-*` conditions of an input (CopyObject, UploadPartCopy).
macro_rules! copy_source_conditions {
    ($input:expr) => {
        $crate::convert::read_conditions(
            $input.copy_source_if_match.as_ref(),
            $input.copy_source_if_none_match.as_ref(),
            $input.copy_source_if_modified_since.as_ref(),
            $input.copy_source_if_unmodified_since.as_ref(),
        )
    };
}
pub(crate) use copy_source_conditions;

/// The checksum headers a request may carry, in the order S3 names them.
pub(crate) struct ChecksumHeaders<'a> {
    pub algorithm: Option<&'a dto::ChecksumAlgorithm>,
    pub crc32: Option<&'a String>,
    pub crc32c: Option<&'a String>,
    pub crc64nvme: Option<&'a String>,
    pub sha1: Option<&'a String>,
    pub sha256: Option<&'a String>,
}

/// What the body's checksum must be: a value in a header, a value in a
/// trailer (aws-chunked uploads), or only an algorithm to compute.
pub(crate) fn expected_checksum<T>(req: &S3Request<T>, h: ChecksumHeaders<'_>) -> S3Result<ExpectedChecksum> {
    let given: Vec<(ChecksumAlgorithm, &String)> = [
        (ChecksumAlgorithm::Crc32, h.crc32),
        (ChecksumAlgorithm::Crc32c, h.crc32c),
        (ChecksumAlgorithm::Crc64Nvme, h.crc64nvme),
        (ChecksumAlgorithm::Sha1, h.sha1),
        (ChecksumAlgorithm::Sha256, h.sha256),
    ]
    .into_iter()
    .filter_map(|(a, v)| v.map(|v| (a, v)))
    .collect();
    if given.len() > 1 {
        return Err(s3_error!(
            InvalidRequest,
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        ));
    }
    if let Some((alg, value)) = given.first() {
        return Ok(ExpectedChecksum { algorithm: Some(*alg), value: Some((*value).clone()), trailer: None });
    }
    let trailer_alg = req
        .headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| ChecksumAlgorithm::ALL.into_iter().find(|a| t.trim().eq_ignore_ascii_case(a.header_name())));
    if let Some(alg) = trailer_alg
        && let Some(trailers) = req.trailing_headers.clone()
    {
        let read = move || {
            trailers.take().and_then(|h| h.get(alg.header_name()).and_then(|v| v.to_str().ok()).map(str::to_owned))
        };
        return Ok(ExpectedChecksum { algorithm: Some(alg), value: None, trailer: Some(Box::new(read)) });
    }
    Ok(ExpectedChecksum { algorithm: h.algorithm.map(algorithm).transpose()?, value: None, trailer: None })
}

/// Checksum fields for an output, as S3 names them.
#[derive(Default)]
pub(crate) struct ChecksumOut {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub kind: Option<dto::ChecksumType>,
}

pub(crate) fn checksum_out(c: Option<&StoredChecksum>) -> ChecksumOut {
    let mut out = ChecksumOut::default();
    if let Some(c) = c {
        let v = Some(c.value.clone());
        match c.algorithm {
            ChecksumAlgorithm::Crc32 => out.crc32 = v,
            ChecksumAlgorithm::Crc32c => out.crc32c = v,
            ChecksumAlgorithm::Crc64Nvme => out.crc64nvme = v,
            ChecksumAlgorithm::Sha1 => out.sha1 = v,
            ChecksumAlgorithm::Sha256 => out.sha256 = v,
        }
        out.kind = Some(dto::ChecksumType::from(c.kind.as_str().to_owned()));
    }
    out
}

pub(crate) fn part_checksum_out(alg: Option<ChecksumAlgorithm>, value: Option<&String>) -> ChecksumOut {
    match (alg, value) {
        (Some(algorithm), Some(v)) => {
            let mut out = checksum_out(Some(&StoredChecksum {
                algorithm,
                kind: orbit_core::ChecksumKind::FullObject,
                value: v.clone(),
            }));
            out.kind = None;
            out
        }
        _ => ChecksumOut::default(),
    }
}

/// Encode a key or prefix for a listing when the client asked for `encoding-type=url`.
/// S3 leaves `/` as it is (`foo/bar%2B1`), and clients that split on the delimiter expect that.
pub(crate) fn list_encode(url: bool, s: &str) -> String {
    if url { urlencoding::encode(s).replace("%2F", "/") } else { s.to_owned() }
}

pub(crate) fn is_url_encoding(e: Option<&dto::EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str().eq_ignore_ascii_case("url"))
}

/// Only the null version exists in an unversioned bucket.
pub(crate) fn check_version_id(v: Option<&String>) -> S3Result<()> {
    match v.map(String::as_str) {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

pub(crate) fn max_keys(m: Option<i32>) -> S3Result<usize> {
    match m {
        None => Ok(1000),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be a non-negative integer")),
        Some(n) => Ok((n as usize).min(1000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_chunked_is_not_a_stored_encoding() {
        assert_eq!(strip_aws_chunked("aws-chunked".into()), None);
        assert_eq!(strip_aws_chunked("aws-chunked, gzip".into()).as_deref(), Some("gzip"));
        assert_eq!(strip_aws_chunked("gzip".into()).as_deref(), Some("gzip"));
    }
}
