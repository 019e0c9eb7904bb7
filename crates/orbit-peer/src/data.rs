//! Signed data requests between sites: the routes that carry bytes (object
//! records, chunks, listing pages, forwarded writes), beside the envelope
//! route that carries protocol messages. Same HMAC scheme and peer secrets:
//! the request's description (JSON, in a header) is what the signature
//! covers, so a body can stream without being buffered to be signed; the
//! answer (a description and raw bytes, buffered: at most a chunk) is signed
//! whole, bound to the request's signature like envelope answers.

use crate::auth::{self, REPLY_SIGNATURE_HEADER};
use crate::metrics::{self, IN, OUT};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use bytes::Bytes;
use futures::stream::BoxStream;
use orbit_site::SiteId;
use sha2::{Digest, Sha256};

/// Routes are `DATA_PATH_PREFIX` + the operation's name.
pub const DATA_PATH_PREFIX: &str = "/peer/v1/data/";
/// The request's description, base64url of its JSON.
pub(crate) const REQUEST_HEADER: &str = "x-orbit-peer-request";
/// The answer's description, base64url of its JSON.
pub(crate) const ANSWER_HEADER: &str = "x-orbit-peer-answer";
/// The largest answer body accepted (a chunk of the largest chunk size).
pub const MAX_DATA_ANSWER_BYTES: usize = 64 << 20;

/// A request body streaming in.
pub type DataBody = BoxStream<'static, std::io::Result<Bytes>>;

/// What a data handler answers: a status of its choosing (the caller's
/// protocol), a JSON description and raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataAnswer {
    pub status: u16,
    pub description: Vec<u8>,
    pub body: Bytes,
}

/// Receives data requests that passed authentication.
#[async_trait]
pub trait DataHandler: Send + Sync + 'static {
    async fn handle(&self, from: SiteId, op: String, description: Bytes, body: DataBody) -> DataAnswer;
}

pub(crate) fn path(op: &str) -> String {
    format!("{DATA_PATH_PREFIX}{op}")
}

pub(crate) fn encode_header(description: &[u8]) -> String {
    B64.encode(description)
}

pub(crate) fn decode_header(value: &str) -> Option<Vec<u8>> {
    B64.decode(value.trim()).ok()
}

/// What an answer's signature covers: its description and the hash of its body.
pub(crate) fn signed_answer(description: &[u8], body: &[u8]) -> Vec<u8> {
    let mut v = description.to_vec();
    v.push(b'\n');
    v.extend_from_slice(hex::encode(Sha256::digest(body)).as_bytes());
    v
}

pub(crate) fn sign_answer(site: &SiteId, secret: &str, answer: &DataAnswer, request_sig: &str, now_s: i64) -> String {
    let covered = signed_answer(&answer.description, &answer.body);
    auth::sign_reply(site, secret, answer.status, request_sig, &covered, now_s)
}

pub(crate) fn count(peer: &SiteId, direction: &'static str, n: usize) {
    metrics::data_bytes(&peer.0, direction, n);
}

pub(crate) const SIGNATURE_HEADER: &str = REPLY_SIGNATURE_HEADER;
pub(crate) const DIR_IN: &str = IN;
pub(crate) const DIR_OUT: &str = OUT;
