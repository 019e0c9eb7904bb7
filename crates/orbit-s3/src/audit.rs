//! What the S3 edge records in the audit log: every request that fails
//! authentication (bad signature, unknown or expired key, anonymous), and,
//! for tenants that turned it on, every data access with its outcome.
//!
//! A mark travels in the request's extensions: the access check fills it
//! once the signature is verified, so a failed request without it never got
//! past authentication.

use orbit_core::{AuditEvent, Auditor};
use orbit_tenancy::{Caller, Directory};
use std::sync::{Arc, Mutex};

/// The identity and operation of a request that passed authentication.
pub(crate) struct Seen {
    pub caller: Caller,
    pub op: String,
    pub target: String,
}

#[derive(Clone, Default)]
pub(crate) struct AuditMark(pub Arc<Mutex<Option<Seen>>>);

impl AuditMark {
    pub fn set(&self, seen: Seen) {
        if let Ok(mut m) = self.0.lock() {
            *m = Some(seen);
        }
    }
    fn take(&self) -> Option<Seen> {
        self.0.lock().ok().and_then(|mut m| m.take())
    }
}

#[derive(Clone)]
pub(crate) struct S3Audit {
    pub auditor: Auditor,
    pub dir: Directory,
}

/// The access key id a request presents (SigV4 header or presigned query).
pub(crate) fn presented_key(req: &http::request::Parts) -> String {
    let from_header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.split("Credential=").nth(1))
        .and_then(|c| c.split('/').next());
    let from_query = || {
        req.uri.query()?.split('&').find_map(|kv| kv.strip_prefix("X-Amz-Credential=")).and_then(|c| {
            // `AKID%2FDATE%2F...` or `AKID/DATE/...`
            c.split(['/', '%']).next()
        })
    };
    from_header.or_else(from_query).unwrap_or("").chars().take(128).collect()
}

/// The S3 error code of an error response body, when it has one.
fn error_code(body: &s3s::Body) -> Option<String> {
    let bytes = body.bytes()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_owned())
}

fn outcome(status: http::StatusCode, body: &s3s::Body) -> String {
    if status.as_u16() < 400 {
        "ok".into()
    } else {
        error_code(body).unwrap_or_else(|| format!("http-{}", status.as_u16()))
    }
}

impl S3Audit {
    /// Called with each response head.
    pub async fn after(
        &self,
        mark: &AuditMark,
        method: &str,
        path: &str,
        key: String,
        resp: &http::Response<s3s::Body>,
    ) {
        let status = resp.status();
        match mark.take() {
            Some(seen) => {
                if self.auditor.data_access_on(seen.caller.tenant_id) {
                    let ev = AuditEvent::by(
                        &seen.caller,
                        format!("s3.{}", seen.op),
                        seen.target,
                        outcome(status, resp.body()),
                    );
                    self.auditor.record(ev).await;
                }
            }
            None => {
                let code = error_code(resp.body());
                let auth_failure = status == http::StatusCode::FORBIDDEN
                    || (status == http::StatusCode::BAD_REQUEST
                        && code.as_deref().is_some_and(|c| c.starts_with("Authorization")));
                if !auth_failure {
                    return;
                }
                let outcome = code.unwrap_or_else(|| format!("http-{}", status.as_u16()));
                let target = format!("{method} {path}");
                // Attribute the failure to the key's tenant when the key exists.
                let ev = match self.dir.authenticate(&key).await {
                    Ok((caller, _)) if !key.is_empty() => AuditEvent::by(&caller, "auth.s3", target, outcome),
                    _ => AuditEvent {
                        chain: None,
                        tenant: orbit_types::TenantName::system().to_string(),
                        actor: String::new(),
                        access_key: key,
                        action: "auth.s3".into(),
                        target,
                        outcome,
                    },
                };
                self.auditor.record(ev).await;
            }
        }
    }
}
