//! The client side: one HTTP/2 connection pool per peer, reused by every
//! message to it; each request signed, each answer's signature checked.

use crate::auth::{self, REPLY_SIGNATURE_HEADER};
use crate::config::PeerConfig;
use crate::metrics::{self, IN, OUT};
use crate::server::{ENVELOPE_PATH, ErrorBody, MAX_ENVELOPE_BYTES, RefusalBody};
use orbit_site::{Envelope, Message, Refusal, SiteId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Why a message got no answer from a peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("`{0}` is not a configured peer site")]
    UnknownPeer(SiteId),
    /// No connection, a broken one, or no answer within the timeout.
    #[error("peer unreachable: {0}")]
    Unreachable(String),
    /// The peer understood and turned the message down.
    #[error("peer refused the message: {0:?}")]
    Refused(Refusal),
    /// The peer did not accept our credentials (a secret or clock mismatch).
    #[error("peer rejected our request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// The answer was unsigned, wrongly signed or not an envelope.
    #[error("bad answer from peer: {0}")]
    BadAnswer(String),
}

impl PeerError {
    /// Whether sending the same message again may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Unreachable(_) | Self::BadAnswer(_) => true,
            Self::Refused(r) => matches!(r, Refusal::Busy),
            Self::UnknownPeer(_) | Self::Rejected { .. } => false,
        }
    }
}

struct Peer {
    url: String,
    /// The listener's base URL, for the data routes.
    base: String,
    secret: String,
    http: reqwest::Client,
}

/// Sends envelopes to the configured peers.
pub struct PeerClient {
    site: SiteId,
    peers: BTreeMap<SiteId, Peer>,
}

impl PeerClient {
    pub fn new(config: &PeerConfig) -> Result<Self, PeerError> {
        let mut peers = BTreeMap::new();
        for (name, spec) in &config.peers {
            let http = reqwest::Client::builder()
                // Peers speak HTTP/2 cleartext: one connection multiplexes
                // every message to the peer, no upgrade round trip.
                .http2_prior_knowledge()
                // Straight to the configured URL: an HTTP(S)_PROXY meant for
                // other traffic must not carry (or break) the peer channel.
                .no_proxy()
                .tcp_nodelay(true)
                .connect_timeout(config.connect_timeout)
                // Pings on the idle connection find a dead peer (or a
                // partition) without waiting for a request to time out.
                .http2_keep_alive_interval(Some(Duration::from_secs(10)))
                .http2_keep_alive_timeout(Duration::from_secs(5))
                .http2_keep_alive_while_idle(true)
                .build()
                .map_err(|e| PeerError::Unreachable(format!("cannot build the client for `{name}`: {e}")))?;
            peers.insert(
                name.clone(),
                Peer {
                    url: format!("{}{ENVELOPE_PATH}", spec.url),
                    base: spec.url.clone(),
                    secret: spec.secret.clone(),
                    http,
                },
            );
        }
        Ok(Self { site: config.site.clone(), peers })
    }

    pub fn site(&self) -> &SiteId {
        &self.site
    }

    /// The configured peers and their URLs.
    pub fn peers(&self) -> impl Iterator<Item = (&SiteId, &str)> {
        self.peers.iter().map(|(n, p)| (n, p.url.trim_end_matches(ENVELOPE_PATH)))
    }

    /// Send `message` to `to` and wait at most `timeout` for its answer:
    /// the peer's envelope, or `None` for a message that needs none.
    pub async fn send(&self, to: &SiteId, message: Message, timeout: Duration) -> Result<Option<Envelope>, PeerError> {
        let peer = self.peers.get(to).ok_or_else(|| PeerError::UnknownPeer(to.clone()))?;
        let started = Instant::now();
        let result = self.exchange(to, peer, message, timeout).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(PeerError::Refused(_)) => "refused",
            Err(PeerError::Unreachable(_)) => "unreachable",
            Err(_) => "error",
        };
        metrics::request(&to.0, OUT, outcome, started.elapsed());
        result
    }

    async fn exchange(
        &self,
        to: &SiteId,
        peer: &Peer,
        message: Message,
        timeout: Duration,
    ) -> Result<Option<Envelope>, PeerError> {
        let body = serde_json::to_vec(&Envelope::new(self.site.clone(), message))
            .map_err(|e| PeerError::BadAnswer(format!("cannot encode the envelope: {e}")))?;
        let now_s = orbit_types::now_ms() / 1000;
        let authz = auth::sign_request(&self.site, &peer.secret, ENVELOPE_PATH, &body, now_s);
        let request_sig = orbit_types::signing::parse(&authz).map(|p| p.signature).unwrap_or_default();
        metrics::bytes(&to.0, OUT, body.len());
        let resp = peer
            .http
            .post(&peer.url)
            .header("authorization", authz)
            .header("content-type", "application/json")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| PeerError::Unreachable(describe(&e)))?;
        let status = resp.status().as_u16();
        let signature = resp.headers().get(REPLY_SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let answer = resp.bytes().await.map_err(|e| PeerError::Unreachable(describe(&e)))?;
        metrics::bytes(&to.0, IN, answer.len());
        if answer.len() > MAX_ENVELOPE_BYTES {
            return Err(PeerError::BadAnswer("answer too large".into()));
        }
        if status == 401 {
            let message = serde_json::from_slice::<ErrorBody>(&answer).map(|b| b.error).unwrap_or_default();
            return Err(PeerError::Rejected { status, message });
        }
        if !auth::verify_reply(signature.as_deref(), to, &peer.secret, status, &request_sig, &answer) {
            return Err(PeerError::BadAnswer(format!("HTTP {status} answer not signed by `{to}`")));
        }
        match status {
            200 => {
                let env: Envelope = serde_json::from_slice(&answer)
                    .map_err(|e| PeerError::BadAnswer(format!("not an envelope: {e}")))?;
                if &env.from != to {
                    return Err(PeerError::BadAnswer(format!("answer from `{}`, not `{to}`", env.from)));
                }
                Ok(Some(env))
            }
            204 => Ok(None),
            422 => match serde_json::from_slice::<RefusalBody>(&answer) {
                Ok(b) => Err(PeerError::Refused(b.refusal)),
                Err(e) => Err(PeerError::BadAnswer(format!("unreadable refusal: {e}"))),
            },
            _ => {
                let message = serde_json::from_slice::<ErrorBody>(&answer).map(|b| b.error).unwrap_or_default();
                Err(PeerError::Rejected { status, message })
            }
        }
    }
}

impl PeerClient {
    /// A signed data request to `to`'s route `op`: `description` (JSON) is
    /// signed, `body` streams after it unbuffered. `timeout` bounds the whole
    /// exchange (none for a forwarded write of unknown length). The answer's
    /// status is the data protocol's; only authentication failures and
    /// transport errors are errors here.
    pub async fn data(
        &self,
        to: &SiteId,
        op: &str,
        description: Vec<u8>,
        body: Option<crate::data::DataBody>,
        timeout: Option<Duration>,
    ) -> Result<crate::data::DataAnswer, PeerError> {
        use crate::data;
        use futures::TryStreamExt;
        let peer = self.peers.get(to).ok_or_else(|| PeerError::UnknownPeer(to.clone()))?;
        let started = Instant::now();
        let path = data::path(op);
        let now_s = orbit_types::now_ms() / 1000;
        let authz = auth::sign_request(&self.site, &peer.secret, &path, &description, now_s);
        let request_sig = orbit_types::signing::parse(&authz).map(|p| p.signature).unwrap_or_default();
        data::count(to, data::DIR_OUT, description.len());
        let mut req = peer
            .http
            .post(format!("{}{path}", peer.base))
            .header("authorization", authz)
            .header(data::REQUEST_HEADER, data::encode_header(&description));
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(body) = body {
            let counted = to.clone();
            let body = body.inspect_ok(move |b| data::count(&counted, data::DIR_OUT, b.len()));
            req = req.body(reqwest::Body::wrap_stream(body));
        }
        let result = async {
            let resp = req.send().await.map_err(|e| PeerError::Unreachable(describe(&e)))?;
            let status = resp.status().as_u16();
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let signature = header(data::SIGNATURE_HEADER);
            let answer_desc = header(data::ANSWER_HEADER);
            if resp.content_length().is_some_and(|l| l > data::MAX_DATA_ANSWER_BYTES as u64) {
                return Err(PeerError::BadAnswer("answer too large".into()));
            }
            let body = resp.bytes().await.map_err(|e| PeerError::Unreachable(describe(&e)))?;
            data::count(to, data::DIR_IN, body.len());
            if status == 401 {
                let message = serde_json::from_slice::<ErrorBody>(&body).map(|b| b.error).unwrap_or_default();
                return Err(PeerError::Rejected { status, message });
            }
            let description = answer_desc.as_deref().and_then(data::decode_header).unwrap_or_default();
            let covered = data::signed_answer(&description, &body);
            if !auth::verify_reply(signature.as_deref(), to, &peer.secret, status, &request_sig, &covered) {
                return Err(PeerError::BadAnswer(format!("HTTP {status} answer not signed by `{to}`")));
            }
            Ok(data::DataAnswer { status, description, body })
        }
        .await;
        let outcome = match &result {
            Ok(a) if a.status < 400 => "ok",
            Ok(_) => "error",
            Err(PeerError::Unreachable(_)) => "unreachable",
            Err(_) => "error",
        };
        metrics::request(&to.0, OUT, outcome, started.elapsed());
        result
    }
}

/// reqwest's top-level message hides the cause ("error sending request").
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}
