//! The peer listener: verifies each request, checks the protocol version,
//! dispatches the envelope to the handler and signs the answer.

use crate::auth::{self, AuthRefusal, REPLY_SIGNATURE_HEADER};
use crate::config::{PeerConfig, PeerSpec};
use crate::handler::PeerHandler;
use crate::metrics::{self, IN, OUT};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use http_body_util::BodyExt;
use orbit_site::{Envelope, PROTOCOL_VERSION, Refusal, SiteId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

/// The one route of the peer protocol.
pub const ENVELOPE_PATH: &str = "/peer/v1/envelope";
/// Envelopes are small; invalidation key lists are the largest.
pub const MAX_ENVELOPE_BYTES: usize = 8 << 20;

/// The body of a refusal answer (HTTP 422): orbit-site's typed refusal.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RefusalBody {
    pub(crate) refusal: Refusal,
}

/// The body of an error answer (401, 400, 413).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: String,
}

/// Only the version, read before the message so that a message of a newer
/// protocol is refused rather than failing to parse.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

struct Inner {
    site: SiteId,
    peers: BTreeMap<SiteId, PeerSpec>,
    max_skew_s: i64,
    handler: Arc<dyn PeerHandler>,
    /// The data routes' handler; without one they answer 404.
    data: Option<Arc<dyn crate::data::DataHandler>>,
}

/// The server side of the peer channel.
#[derive(Clone)]
pub struct PeerServer {
    inner: Arc<Inner>,
}

impl PeerServer {
    pub fn new(config: &PeerConfig, handler: Arc<dyn PeerHandler>) -> Self {
        Self {
            inner: Arc::new(Inner {
                site: config.site.clone(),
                peers: config.peers.clone(),
                max_skew_s: config.max_skew.as_secs() as i64,
                handler,
                data: None,
            }),
        }
    }

    /// Serve the data routes (`/peer/v1/data/{op}`) through `handler`.
    pub fn with_data(self, handler: Arc<dyn crate::data::DataHandler>) -> Self {
        let inner = Inner {
            site: self.inner.site.clone(),
            peers: self.inner.peers.clone(),
            max_skew_s: self.inner.max_skew_s,
            handler: self.inner.handler.clone(),
            data: Some(handler),
        };
        Self { inner: Arc::new(inner) }
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route(ENVELOPE_PATH, post(envelope))
            .route(&format!("{}{{op}}", crate::data::DATA_PATH_PREFIX), post(data_route))
            .with_state(self.inner.clone())
    }

    /// Serve until `shutdown` resolves: HTTP/2 by prior knowledge or
    /// HTTP/1.1, TCP_NODELAY on every connection (small envelopes must not
    /// wait for delayed ACKs).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on a peer connection");
            }
        });
        axum::serve(listener, self.router()).with_graceful_shutdown(shutdown).await
    }
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(ErrorBody { error: msg.to_owned() })).into_response()
}

async fn envelope(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Err(r) = auth::identify(auth_header, &inner.peers) {
        return refuse_auth(r);
    }
    let bytes: Bytes = match http_body_util::Limited::new(body, MAX_ENVELOPE_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            metrics::refused("too_large");
            return error(StatusCode::PAYLOAD_TOO_LARGE, "envelope too large");
        }
    };
    let now_s = orbit_types::now_ms() / 1000;
    let (from, request_sig) =
        match auth::verify_request(auth_header, &inner.peers, ENVELOPE_PATH, &bytes, now_s, inner.max_skew_s) {
            Ok(v) => v,
            Err(r) => return refuse_auth(r),
        };
    metrics::bytes(&from.0, IN, bytes.len());
    let (status, body, outcome) = dispatch(&inner, &from, &bytes).await;
    let (status, body, outcome) = match status {
        Err(r) => return refuse_auth(r),
        Ok(s) => (s, body, outcome),
    };
    metrics::bytes(&from.0, OUT, body.len());
    metrics::request(&from.0, IN, outcome, started.elapsed());
    let secret = &inner.peers[&from].secret;
    let sig = auth::sign_reply(&inner.site, secret, status.as_u16(), &request_sig, &body, now_s);
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&sig) {
        resp.headers_mut().insert(REPLY_SIGNATURE_HEADER, v);
    }
    resp
}

/// A data request: authenticated from its signed description before any of
/// its body is read, then handed to the data handler with the body streaming.
async fn data_route(
    State(inner): State<Arc<Inner>>,
    axum::extract::Path(op): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    use crate::data;
    use futures::{StreamExt, TryStreamExt};
    let started = Instant::now();
    let auth_header = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Err(r) = auth::identify(auth_header, &inner.peers) {
        return refuse_auth(r);
    }
    let Some(description) =
        headers.get(data::REQUEST_HEADER).and_then(|v| v.to_str().ok()).and_then(data::decode_header)
    else {
        metrics::refused("malformed_request");
        return error(StatusCode::BAD_REQUEST, "missing or malformed request description");
    };
    let now_s = orbit_types::now_ms() / 1000;
    let path = data::path(&op);
    let (from, request_sig) =
        match auth::verify_request(auth_header, &inner.peers, &path, &description, now_s, inner.max_skew_s) {
            Ok(v) => v,
            Err(r) => return refuse_auth(r),
        };
    let Some(handler) = inner.data.clone() else {
        return error(StatusCode::NOT_FOUND, "this site serves no data routes");
    };
    data::count(&from, data::DIR_IN, description.len());
    let counted = from.clone();
    let stream = TryStreamExt::map_err(body.into_data_stream(), std::io::Error::other)
        .inspect_ok(move |b| data::count(&counted, data::DIR_IN, b.len()))
        .boxed();
    let answer = handler.handle(from.clone(), op, Bytes::from(description), stream).await;
    data::count(&from, data::DIR_OUT, answer.description.len() + answer.body.len());
    let outcome = if answer.status < 400 { "ok" } else { "error" };
    metrics::request(&from.0, IN, outcome, started.elapsed());
    let secret = &inner.peers[&from].secret;
    let sig = data::sign_answer(&inner.site, secret, &answer, &request_sig, now_s);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let desc_header = data::encode_header(&answer.description);
    let mut resp = Response::new(Body::from(answer.body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = HeaderValue::from_str(&desc_header) {
        resp.headers_mut().insert(data::ANSWER_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&sig) {
        resp.headers_mut().insert(data::SIGNATURE_HEADER, v);
    }
    resp
}

fn refuse_auth(r: AuthRefusal) -> Response {
    metrics::refused(r.reason());
    tracing::debug!(reason = r.reason(), "refused a request on the peer port");
    error(StatusCode::UNAUTHORIZED, r.message())
}

/// Version check, parse, sender check and the handler's answer, as a status,
/// a body and the outcome label.
async fn dispatch(
    inner: &Inner,
    from: &SiteId,
    bytes: &[u8],
) -> (Result<StatusCode, AuthRefusal>, Vec<u8>, &'static str) {
    match serde_json::from_slice::<VersionOnly>(bytes) {
        Ok(v) if v.version != PROTOCOL_VERSION => {
            metrics::refused("version");
            let body = RefusalBody { refusal: Refusal::UnsupportedVersion { supported: PROTOCOL_VERSION } };
            return (Ok(StatusCode::UNPROCESSABLE_ENTITY), json(&body), "refused");
        }
        Ok(_) => {}
        Err(e) => {
            metrics::refused("malformed_envelope");
            let body = ErrorBody { error: format!("not an envelope: {e}") };
            return (Ok(StatusCode::BAD_REQUEST), json(&body), "error");
        }
    }
    let env: Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) => {
            metrics::refused("malformed_envelope");
            let body = ErrorBody { error: format!("not an envelope: {e}") };
            return (Ok(StatusCode::BAD_REQUEST), json(&body), "error");
        }
    };
    if &env.from != from {
        return (Err(AuthRefusal::SiteMismatch), Vec::new(), "refused");
    }
    let message = match env.open() {
        Ok((_, m)) => m,
        Err(refusal) => return (Ok(StatusCode::UNPROCESSABLE_ENTITY), json(&RefusalBody { refusal }), "refused"),
    };
    match inner.handler.handle(from.clone(), message).await {
        Ok(Some(m)) => (Ok(StatusCode::OK), json(&Envelope::new(inner.site.clone(), m)), "ok"),
        Ok(None) => (Ok(StatusCode::NO_CONTENT), Vec::new(), "ok"),
        Err(refusal) => (Ok(StatusCode::UNPROCESSABLE_ENTITY), json(&RefusalBody { refusal }), "refused"),
    }
}

/// Serialising our own message types cannot fail.
fn json<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
