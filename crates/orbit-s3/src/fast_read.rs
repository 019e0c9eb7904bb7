//! The fast read path: a plain GET or HEAD of a whole object — the request a
//! training job's data loader makes millions of times — answered without
//! s3s's routing and DTOs, with its SigV4 signature checked against a cached
//! signing key. On this machine s3s's share of a hot 4 KiB GET was half of
//! Orbit's CPU (docs/benchmarks.md).
//!
//! It takes only what it fully understands: path-style addressing, a
//! signature in the `Authorization` header or the query string, no query
//! parameters but the signature's own (and `x-id`, which AWS SDKs add), and
//! no headers but the few that cannot change the answer (no Range, no
//! conditions, no checksum mode, no session token). Everything else, and
//! every request it cannot answer with a 200 (unknown key, bad signature,
//! missing object, throttled), goes to s3s, which gives the response S3
//! clients expect. Nothing here has a side effect before it is sure to
//! answer, so a request it hands over is metered, throttled and audited
//! once, by s3s's path. The response carries exactly the headers s3s would
//! send (tests/e2e/test_fast_read.py compares them header by header).

use crate::audit::{AuditMark, Seen};
use crate::host::VirtualHosts;
use crate::sigv4::{self, Claim, SigningKeys};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use orbit_core::{GetObject, Namespace, ObjectRecord, RequestClass};
use orbit_tenancy::{Direction, Directory};
use s3s::host::S3Host;
use s3s::{Body, HttpResponse};
use std::borrow::Cow;

pub(crate) struct FastRead {
    ns: Namespace,
    dir: Directory,
    hosts: VirtualHosts,
    keys: SigningKeys,
    gets: metrics::Counter,
    heads: metrics::Counter,
}

/// A request this path can answer if its signature holds.
struct Plan<'a> {
    head: bool,
    /// `x-amz-checksum-mode: ENABLED`: send the stored checksum.
    checksum: bool,
    bucket: Cow<'a, str>,
    key: Cow<'a, str>,
    claim: Claim<'a>,
    canonical_request: String,
}

/// Headers that never change a GET's answer; any other sends it to s3s.
fn is_inert(name: &HeaderName, value: &HeaderValue) -> bool {
    match name.as_str() {
        "host" | "authorization" | "x-amz-date" | "x-amz-content-sha256" | "user-agent" | "x-amz-user-agent"
        | "accept" | "accept-encoding" | "connection" | "keep-alive" | "amz-sdk-invocation-id" | "amz-sdk-request"
        // Sent by default by recent AWS SDKs on GetObject; it adds the stored checksum.
        | "x-amz-checksum-mode" => true,
        "content-length" => value.as_bytes() == b"0",
        _ => false,
    }
}

impl FastRead {
    pub fn new(ns: Namespace, dir: Directory, hosts: VirtualHosts) -> Self {
        let counter = |op: &'static str| metrics::counter!("orbit_s3_fast_reads_total", "op" => op);
        let (gets, heads) = (counter("GetObject"), counter("HeadObject"));
        Self { ns, dir, hosts, keys: SigningKeys::default(), gets, heads }
    }

    /// The response to `req`, or `None` to hand it to s3s.
    pub async fn serve(&self, req: &http::request::Parts, mark: &AuditMark) -> Option<HttpResponse> {
        let query = Query::parse(req.uri.query().unwrap_or(""))?;
        let plan = self.plan(req, &query)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if !plan.claim.is_current(now) {
            return None;
        }
        let (caller, secret) = self.dir.authenticate(plan.claim.access_key).await.ok()?;
        if !plan.claim.verify(&self.keys, &secret, &plan.canonical_request) {
            return None;
        }
        let (bucket, key) = (&*plan.bucket, &*plan.key);
        let (record, body) = if plan.head {
            let (record, _) = self.ns.head_object(&caller, bucket, key, &GetObject::default()).await.ok()?;
            (record, None)
        } else {
            let body = self.ns.get_object(&caller, bucket, key, &GetObject::default()).await.ok()?;
            (body.record, Some(body.stream))
        };
        let headers = object_headers(&record, plan.checksum)?;
        // Sure to answer from here on: the side effects s3s's path would have.
        let op = if plan.head { "HeadObject" } else { "GetObject" };
        let pacer = self.dir.qos().admit(caller.tenant_id, Some(bucket), Direction::Read).ok()?;
        self.ns.meter().request(caller.tenant_id, bucket, RequestClass::Read);
        mark.set(Seen { caller, op: op.to_owned(), target: format!("{bucket}/{key}") });
        if plan.head { &self.heads } else { &self.gets }.increment(1);
        let body = match body {
            Some(stream) => Body::from(crate::convert::body_out(crate::qos::paced_by(&pacer, stream))),
            None => Body::empty(),
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = StatusCode::OK;
        *resp.headers_mut() = headers;
        Some(resp)
    }

    fn plan<'a>(&self, req: &'a http::request::Parts, query: &'a Query<'a>) -> Option<Plan<'a>> {
        let head = match req.method {
            Method::GET => false,
            Method::HEAD => true,
            _ => return None,
        };
        if !req.headers.iter().all(|(n, v)| is_inert(n, v)) {
            return None;
        }
        let host = req.headers.get(header::HOST)?.to_str().ok()?;
        // Virtual-hosted requests name the bucket in the host: s3s's job.
        if self.hosts.parse_host_header(host).ok()?.bucket().is_some() {
            return None;
        }
        let (bucket, key) = req.uri.path().strip_prefix('/')?.split_once('/')?;
        let (bucket, key) = (urlencoding::decode(bucket).ok()?, urlencoding::decode(key).ok()?);
        if bucket.is_empty() || key.is_empty() {
            return None;
        }

        let authorization = req.headers.get(header::AUTHORIZATION);
        let (claim, payload_hash) = match (&query.signature, authorization) {
            (Some(signature), None) => {
                let claim = sigv4::parse_presigned(
                    query.algorithm.as_deref()?,
                    query.credential.as_ref()?,
                    query.date.as_ref()?,
                    query.expires.as_deref()?,
                    query.signed_headers.as_ref()?,
                    signature,
                )?;
                (claim, "UNSIGNED-PAYLOAD")
            }
            (None, Some(authorization)) if query.has_no_auth_params() => {
                let amz_date = req.headers.get("x-amz-date")?.to_str().ok()?;
                let claim = sigv4::parse_authorization(authorization.to_str().ok()?, amz_date)?;
                let payload = req.headers.get("x-amz-content-sha256")?.to_str().ok()?;
                if payload.starts_with("STREAMING-") {
                    return None;
                }
                (claim, payload)
            }
            _ => return None,
        };

        let mut canonical = String::with_capacity(512);
        canonical.push_str(if head { "HEAD\n/" } else { "GET\n/" });
        sigv4::uri_encode(&mut canonical, &bucket, true);
        canonical.push('/');
        sigv4::uri_encode(&mut canonical, &key, true);
        canonical.push('\n');
        query.push_canonical(&mut canonical);
        canonical.push('\n');
        let mut previous = "";
        let mut host_signed = false;
        for name in claim.signed_headers() {
            // Signed header names come lower-case and sorted; anything else is s3s's to judge.
            if name <= previous || name.bytes().any(|b| b.is_ascii_uppercase()) {
                return None;
            }
            previous = name;
            host_signed |= name == "host";
            canonical.push_str(name);
            canonical.push(':');
            let mut values = req.headers.get_all(name).iter();
            sigv4::push_canonical_value(&mut canonical, values.next()?.to_str().ok()?);
            for v in values {
                canonical.push(',');
                sigv4::push_canonical_value(&mut canonical, v.to_str().ok()?);
            }
            canonical.push('\n');
        }
        if !host_signed {
            return None;
        }
        canonical.push('\n');
        for (i, name) in claim.signed_headers().enumerate() {
            if i > 0 {
                canonical.push(';');
            }
            canonical.push_str(name);
        }
        canonical.push('\n');
        canonical.push_str(payload_hash);
        let checksum = req
            .headers
            .get("x-amz-checksum-mode")
            .is_some_and(|v| v.to_str().is_ok_and(|v| v.eq_ignore_ascii_case("ENABLED")));
        Some(Plan { head, checksum, bucket, key, claim, canonical_request: canonical })
    }
}

/// The query string of a request this path may take: only SigV4's own
/// parameters and `x-id`, each at most once, percent-decoded.
#[derive(Default)]
struct Query<'a> {
    algorithm: Option<Cow<'a, str>>,
    credential: Option<Cow<'a, str>>,
    date: Option<Cow<'a, str>>,
    expires: Option<Cow<'a, str>>,
    signed_headers: Option<Cow<'a, str>>,
    signature: Option<Cow<'a, str>>,
    x_id: Option<Cow<'a, str>>,
}

impl<'a> Query<'a> {
    fn parse(query: &'a str) -> Option<Self> {
        let mut q = Query::default();
        // '+' means a space to some encoders and a plus to others: s3s decides.
        if query.contains('+') {
            return None;
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "X-Amz-Algorithm" => &mut q.algorithm,
                "X-Amz-Credential" => &mut q.credential,
                "X-Amz-Date" => &mut q.date,
                "X-Amz-Expires" => &mut q.expires,
                "X-Amz-SignedHeaders" => &mut q.signed_headers,
                "X-Amz-Signature" => &mut q.signature,
                "x-id" => &mut q.x_id,
                _ => return None,
            };
            if slot.replace(urlencoding::decode(value).ok()?).is_some() {
                return None;
            }
        }
        // `x-id` names the operation an SDK meant; only these two are reads of an object.
        if q.x_id.as_deref().is_some_and(|op| op != "GetObject" && op != "HeadObject") {
            return None;
        }
        Some(q)
    }

    fn has_no_auth_params(&self) -> bool {
        self.algorithm.is_none()
            && self.credential.is_none()
            && self.date.is_none()
            && self.expires.is_none()
            && self.signed_headers.is_none()
            && self.signature.is_none()
    }

    /// SigV4's canonical query string: every parameter but the signature,
    /// encoded, in byte order of the names (here all distinct).
    fn push_canonical(&self, out: &mut String) {
        let params = [
            ("X-Amz-Algorithm", &self.algorithm),
            ("X-Amz-Credential", &self.credential),
            ("X-Amz-Date", &self.date),
            ("X-Amz-Expires", &self.expires),
            ("X-Amz-SignedHeaders", &self.signed_headers),
            ("x-id", &self.x_id),
        ];
        let mut first = true;
        for (name, value) in params {
            let Some(value) = value else { continue };
            if !first {
                out.push('&');
            }
            first = false;
            out.push_str(name);
            out.push('=');
            sigv4::uri_encode(out, value, false);
        }
    }
}

/// The headers s3s sends for a whole-object GetObject/HeadObject output as
/// the S3 handlers fill it (`handlers/object.rs`), or `None` where s3s would
/// have to encode something (non-ASCII metadata: RFC 2047).
fn object_headers(rec: &ObjectRecord, checksum: bool) -> Option<HeaderMap> {
    let mut h = HeaderMap::with_capacity(10 + rec.user_metadata.len());
    let value = |s: &str| HeaderValue::from_str(s).ok();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let content = &rec.headers;
    if let Some(v) = &content.cache_control {
        h.insert(header::CACHE_CONTROL, value(v)?);
    }
    if checksum && let Some(c) = &rec.checksum {
        h.insert(c.algorithm.header_name(), value(&c.value)?);
        h.insert("x-amz-checksum-type", HeaderValue::from_static(c.kind.as_str()));
    }
    if let Some(v) = &content.content_disposition {
        h.insert(header::CONTENT_DISPOSITION, value(v)?);
    }
    if let Some(v) = &content.content_encoding {
        h.insert(header::CONTENT_ENCODING, value(v)?);
    }
    if let Some(v) = &content.content_language {
        h.insert(header::CONTENT_LANGUAGE, value(v)?);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(rec.size));
    match &content.content_type {
        Some(v) => h.insert(header::CONTENT_TYPE, value(v)?),
        None => h.insert(header::CONTENT_TYPE, HeaderValue::from_static("binary/octet-stream")),
    };
    h.insert(header::ETAG, value(&format!("\"{}\"", rec.etag))?);
    if let Some(expires) = crate::convert::expires_out(content.expires.as_ref()) {
        let mut out = Vec::with_capacity(32);
        expires.format(s3s::dto::TimestampFormat::HttpDate, &mut out).ok()?;
        h.insert(header::EXPIRES, HeaderValue::from_bytes(&out).ok()?);
    }
    h.insert(header::LAST_MODIFIED, value(&crate::convert::http_date(rec.last_modified_ms))?);
    for (k, v) in &rec.user_metadata {
        if !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        let name = HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes()).ok()?;
        h.insert(name, value(v)?);
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signature_parameters_are_taken() {
        let q = Query::parse("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=abc&x-id=GetObject").unwrap();
        assert_eq!(q.credential.as_deref(), Some("AK/20130524/us-east-1/s3/aws4_request"));
        let mut s = String::new();
        q.push_canonical(&mut s);
        assert_eq!(
            s,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&x-id=GetObject"
        );
        for refused in [
            "versionId=1",
            "partNumber=1",
            "response-content-type=text%2Fplain",
            "X-Amz-Security-Token=abc",
            "x-id=PutObject",
            "X-Amz-Date=1&X-Amz-Date=2",
            "acl",
            "X-Amz-Credential=a+b",
        ] {
            assert!(Query::parse(refused).is_none(), "{refused}");
        }
        assert!(Query::parse("").unwrap().has_no_auth_params());
        assert!(Query::parse("x-id=GetObject").unwrap().has_no_auth_params());
    }

    #[test]
    fn headers_that_change_the_answer_are_not_inert() {
        let v = HeaderValue::from_static("x");
        for name in
            ["range", "if-match", "if-none-match", "x-amz-security-token", "transfer-encoding", "x-amz-request-payer"]
        {
            assert!(!is_inert(&HeaderName::from_static(name), &v), "{name}");
        }
        assert!(is_inert(&header::USER_AGENT, &v));
        assert!(is_inert(&header::CONTENT_LENGTH, &HeaderValue::from_static("0")));
        assert!(!is_inert(&header::CONTENT_LENGTH, &HeaderValue::from_static("5")));
    }
}
