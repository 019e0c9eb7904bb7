//! Authentication of the peer channel, on the signing scheme of the admin
//! API (`orbit_types::signing`): the credential is the sender's site name
//! and the key is the secret the two sites share. Answers are signed too,
//! over the request's signature, so a peer's reply cannot be forged or
//! replayed onto another request.

use crate::config::PeerSpec;
use orbit_site::SiteId;
use orbit_types::signing;
use std::collections::BTreeMap;

/// Default bound on the distance between a request's timestamp and the
/// receiver's clock: a captured request cannot be replayed after this.
pub const PEER_MAX_SKEW_SECS: i64 = 30;

/// Header carrying the signature of an answer.
pub(crate) const REPLY_SIGNATURE_HEADER: &str = "x-orbit-peer-signature";

/// Why a request on the peer port was refused (HTTP 401, counted by reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthRefusal {
    /// No `Authorization` header.
    Unsigned,
    /// An `Authorization` header not of our scheme.
    Malformed,
    /// Signed by a site name this site has no secret for.
    UnknownSite,
    /// The signature does not match the pair's secret.
    BadSignature,
    /// The timestamp is outside the window (a replay, or a clock far off).
    StaleTimestamp,
    /// The envelope names another sender than the signature.
    SiteMismatch,
}

impl AuthRefusal {
    /// The `reason` label of `orbit_peer_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::Malformed => "malformed",
            Self::UnknownSite => "unknown_site",
            Self::BadSignature => "bad_signature",
            Self::StaleTimestamp => "stale_timestamp",
            Self::SiteMismatch => "site_mismatch",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Unsigned => "missing Authorization header",
            Self::Malformed => "malformed Authorization header",
            // Unknown site and bad signature read the same, so a prober
            // cannot learn which site names are configured.
            Self::UnknownSite | Self::BadSignature => "invalid site credential or signature",
            Self::StaleTimestamp => "request timestamp is outside the accepted window",
            Self::SiteMismatch => "the envelope's sender is not the signing site",
        }
    }
}

pub(crate) fn sign_request(from: &SiteId, secret: &str, path: &str, body: &[u8], now_s: i64) -> String {
    signing::authorization_header(&from.0, secret, "POST", path, now_s, body)
}

/// The first checks, which need no body: signed, in our scheme, by a
/// configured peer. Run before the body is read, so a stranger cannot make
/// the server buffer bodies.
pub(crate) fn identify(header: Option<&str>, peers: &BTreeMap<SiteId, PeerSpec>) -> Result<(), AuthRefusal> {
    let parsed = signing::parse(header.ok_or(AuthRefusal::Unsigned)?).ok_or(AuthRefusal::Malformed)?;
    if peers.contains_key(&SiteId::new(parsed.access_key)) { Ok(()) } else { Err(AuthRefusal::UnknownSite) }
}

/// The signing site and the request's signature, if the request is signed
/// by a configured peer with its pair's secret within the time window.
pub(crate) fn verify_request(
    header: Option<&str>,
    peers: &BTreeMap<SiteId, PeerSpec>,
    path: &str,
    body: &[u8],
    now_s: i64,
    max_skew_s: i64,
) -> Result<(SiteId, String), AuthRefusal> {
    let header = header.ok_or(AuthRefusal::Unsigned)?;
    let parsed = signing::parse(header).ok_or(AuthRefusal::Malformed)?;
    let site = SiteId::new(parsed.access_key.clone());
    let peer = peers.get(&site).ok_or(AuthRefusal::UnknownSite)?;
    if !signing::verify(&peer.secret, "POST", path, &parsed, body) {
        return Err(AuthRefusal::BadSignature);
    }
    // Checked after the signature, so only authentic old requests count as replays.
    if (now_s - parsed.timestamp).abs() > max_skew_s {
        return Err(AuthRefusal::StaleTimestamp);
    }
    Ok((site, parsed.signature))
}

fn reply_method(status: u16) -> String {
    format!("REPLY {status}")
}

pub(crate) fn sign_reply(
    site: &SiteId,
    secret: &str,
    status: u16,
    request_sig: &str,
    body: &[u8],
    now_s: i64,
) -> String {
    signing::authorization_header(&site.0, secret, &reply_method(status), request_sig, now_s, body)
}

/// Whether an answer was signed by `peer` with the pair's secret, for the
/// request whose signature is `request_sig`.
pub(crate) fn verify_reply(
    header: Option<&str>,
    peer: &SiteId,
    secret: &str,
    status: u16,
    request_sig: &str,
    body: &[u8],
) -> bool {
    let Some(parsed) = header.and_then(signing::parse) else { return false };
    parsed.access_key == peer.0 && signing::verify(secret, &reply_method(status), request_sig, &parsed, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers() -> BTreeMap<SiteId, PeerSpec> {
        let mut m = BTreeMap::new();
        m.insert(SiteId::new("us"), PeerSpec { url: "http://x".into(), secret: "s3cret".into() });
        m
    }

    const P: &str = "/peer/v1/envelope";

    #[test]
    fn a_request_signed_by_a_peer_within_the_window_passes() {
        let h = sign_request(&SiteId::new("us"), "s3cret", P, b"{}", 1000);
        let (site, sig) = verify_request(Some(&h), &peers(), P, b"{}", 1010, 30).unwrap();
        assert_eq!(site, SiteId::new("us"));
        assert!(h.ends_with(&sig));
    }

    #[test]
    fn each_kind_of_bad_request_is_refused_for_its_reason() {
        let ps = peers();
        let v = |h: Option<&str>, body: &[u8], now: i64| verify_request(h, &ps, P, body, now, 30).unwrap_err();
        assert_eq!(v(None, b"{}", 1000), AuthRefusal::Unsigned);
        assert_eq!(v(Some("Bearer abc"), b"{}", 1000), AuthRefusal::Malformed);
        let stranger = sign_request(&SiteId::new("mars"), "s3cret", P, b"{}", 1000);
        assert_eq!(v(Some(&stranger), b"{}", 1000), AuthRefusal::UnknownSite);
        let wrong = sign_request(&SiteId::new("us"), "other", P, b"{}", 1000);
        assert_eq!(v(Some(&wrong), b"{}", 1000), AuthRefusal::BadSignature);
        let good = sign_request(&SiteId::new("us"), "s3cret", P, b"{}", 1000);
        assert_eq!(v(Some(&good), b"{ }", 1000), AuthRefusal::BadSignature, "body altered");
        assert_eq!(v(Some(&good), b"{}", 1031), AuthRefusal::StaleTimestamp, "replayed after the window");
        assert_eq!(v(Some(&good), b"{}", 969), AuthRefusal::StaleTimestamp, "dated in the future");
        assert!(verify_request(Some(&good), &ps, "/peer/v1/other", b"{}", 1000, 30).is_err(), "path altered");
        assert_eq!(AuthRefusal::UnknownSite.message(), AuthRefusal::BadSignature.message());
        assert_eq!(identify(None, &ps), Err(AuthRefusal::Unsigned));
        assert_eq!(identify(Some(&stranger), &ps), Err(AuthRefusal::UnknownSite));
        assert_eq!(identify(Some(&wrong), &ps), Ok(()), "the signature is checked with the body");
    }

    #[test]
    fn a_reply_is_bound_to_its_request_and_status() {
        let us = SiteId::new("us");
        let h = sign_reply(&us, "s3cret", 200, "abcd", b"pong", 1000);
        assert!(verify_reply(Some(&h), &us, "s3cret", 200, "abcd", b"pong"));
        assert!(!verify_reply(Some(&h), &us, "s3cret", 200, "abce", b"pong"), "another request");
        assert!(!verify_reply(Some(&h), &us, "s3cret", 422, "abcd", b"pong"), "another status");
        assert!(!verify_reply(Some(&h), &us, "other", 200, "abcd", b"pong"), "another secret");
        assert!(!verify_reply(Some(&h), &SiteId::new("eu"), "s3cret", 200, "abcd", b"pong"), "another site");
        assert!(!verify_reply(None, &us, "s3cret", 200, "abcd", b"pong"));
    }
}
