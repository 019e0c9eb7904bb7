//! Request signing, shared by the admin API and the peer channel between
//! sites: HMAC-SHA256 over the method, path and query, a timestamp and the
//! body's SHA-256, keyed by a secret (an admin user's secret access key, or
//! the secret a pair of sites shares). The secret never travels; a captured
//! request expires with its timestamp window.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

pub const SCHEME: &str = "ORBIT-HMAC-SHA256";
/// How far an admin request's timestamp may be from the server's clock.
pub const MAX_SKEW_SECS: i64 = 300;

pub fn signature(secret: &str, method: &str, path_and_query: &str, timestamp: i64, body: &[u8]) -> String {
    let body_hash = hex::encode(Sha256::digest(body));
    let to_sign = format!("{method}\n{path_and_query}\n{timestamp}\n{body_hash}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

pub fn authorization_header(
    access_key: &str,
    secret: &str,
    method: &str,
    path_and_query: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let sig = signature(secret, method, path_and_query, timestamp, body);
    format!("{SCHEME} Credential={access_key}, Timestamp={timestamp}, Signature={sig}")
}

/// The parts of an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed {
    pub access_key: String,
    pub timestamp: i64,
    pub signature: String,
}

pub fn parse(header: &str) -> Option<Parsed> {
    let rest = header.strip_prefix(SCHEME)?.trim();
    let (mut key, mut ts, mut sig) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => key = Some(v.to_owned()),
            "Timestamp" => ts = v.parse().ok(),
            "Signature" => sig = Some(v.to_owned()),
            _ => return None,
        }
    }
    Some(Parsed { access_key: key?, timestamp: ts?, signature: sig? })
}

/// Constant-time comparison of the expected and given signatures.
pub fn verify(secret: &str, method: &str, path_and_query: &str, parsed: &Parsed, body: &[u8]) -> bool {
    let Ok(given) = hex::decode(&parsed.signature) else { return false };
    let body_hash = hex::encode(Sha256::digest(body));
    let to_sign = format!("{method}\n{path_and_query}\n{}\n{body_hash}", parsed.timestamp);
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    mac.verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_parse_verify() {
        let h = authorization_header("AK", "secret", "POST", "/admin/v1/tenants", 1_700_000_000, b"{}");
        let p = parse(&h).unwrap();
        assert_eq!(p.access_key, "AK");
        assert!(verify("secret", "POST", "/admin/v1/tenants", &p, b"{}"));
        assert!(!verify("other", "POST", "/admin/v1/tenants", &p, b"{}"));
        assert!(!verify("secret", "GET", "/admin/v1/tenants", &p, b"{}"));
        assert!(!verify("secret", "POST", "/admin/v1/tenants", &p, b"{ }"));
        assert!(parse("Bearer x").is_none());
        assert!(parse("ORBIT-HMAC-SHA256 Credential=a, Timestamp=x, Signature=y").is_none());
    }
}
