//! Every S3 response names its request in `x-amz-request-id`, and an error
//! body repeats it in `<RequestId>`, as S3 does: users quote it when they
//! report a failure, and SDKs show it in their error messages.

use bytes::Bytes;
use http::HeaderValue;
use s3s::{Body, HttpResponse};

const HEADER: &str = "x-amz-request-id";
const ERROR_END: &[u8] = b"</Error>";

/// A fresh request id: a time-ordered UUID, upper-case hex as S3's look.
pub(crate) fn new_id() -> String {
    orbit_types::new_blob_id().to_ascii_uppercase()
}

/// Stamp `id` on the response: the header always, and the error body when it
/// is an S3 error document s3s made (small and already in memory).
pub(crate) fn stamp(resp: &mut HttpResponse, id: &str) {
    let Ok(value) = HeaderValue::from_str(id) else { return };
    resp.headers_mut().insert(HEADER, value);
    if resp.status().as_u16() < 300 {
        return;
    }
    let Some(body) = resp.body().bytes() else { return };
    let Some(stamped) = with_request_id(&body, id) else { return };
    resp.headers_mut().insert(http::header::CONTENT_LENGTH, HeaderValue::from(stamped.len()));
    *resp.body_mut() = Body::from(stamped);
}

fn with_request_id(body: &[u8], id: &str) -> Option<Bytes> {
    let trimmed = body.trim_ascii_end();
    if !trimmed.ends_with(ERROR_END) || contains(trimmed, b"<RequestId>") {
        return None;
    }
    let at = trimmed.len() - ERROR_END.len();
    let mut out = Vec::with_capacity(body.len() + id.len() + 24);
    out.extend_from_slice(&trimmed[..at]);
    out.extend_from_slice(b"<RequestId>");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"</RequestId>");
    out.extend_from_slice(ERROR_END);
    Some(Bytes::from(out))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_gets_the_request_id_before_its_end() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code></Error>";
        let out = with_request_id(body, "ABC").unwrap();
        assert!(out.ends_with(b"<Code>NoSuchKey</Code><RequestId>ABC</RequestId></Error>"));
    }

    #[test]
    fn other_bodies_are_left_alone() {
        assert!(with_request_id(b"", "ABC").is_none());
        assert!(with_request_id(b"<ListBucketResult/>", "ABC").is_none());
        assert!(with_request_id(b"<Error><RequestId>X</RequestId></Error>", "ABC").is_none());
    }
}
