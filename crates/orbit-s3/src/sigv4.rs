//! SigV4 verification for the fast read path only (`fast_read.rs`): a GET or
//! HEAD signed in its `Authorization` header or its query string.
//!
//! s3s verifies every other request. This exists because s3s 0.14 keeps its
//! SigV4 code private and derives the signing key (four HMACs) anew for each
//! request; a hot 4 KiB GET is small enough for that to matter. Signing keys
//! are cached here per access key, secret, day and region.
//!
//! It can only say yes: anything it does not recognise, or a signature that
//! does not match, sends the request to s3s, which gives the answer (and the
//! error) S3 clients expect. So a difference from AWS in here can cost speed,
//! never admit a request that s3s would refuse, provided what is checked here
//! covers everything the fast path acts on (method, bucket, key, host).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// How far a header-signed request's date may be from now, as S3 allows.
const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;
/// Presigned URLs live at most a week.
const MAX_PRESIGNED_EXPIRY_SECS: i64 = 7 * 24 * 3600;
/// Entries kept before the cache starts over (one per access key in use).
const MAX_CACHED_KEYS: usize = 4096;

/// What a request claims about its signature, parsed from the header or the
/// query string, before the secret is known.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Claim<'a> {
    pub access_key: &'a str,
    /// `YYYYMMDD` of the credential scope.
    date: &'a str,
    region: &'a str,
    /// `YYYYMMDDTHHMMSSZ`.
    amz_date: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    /// Seconds a presigned URL is valid; `None` for a header signature.
    expires: Option<i64>,
}

/// The `Authorization` header of a header-signed request.
pub(crate) fn parse_authorization<'a>(header: &'a str, amz_date: &'a str) -> Option<Claim<'a>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for field in rest.split(',') {
        let (name, value) = field.trim().split_once('=')?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    claim(credential?, amz_date, signed_headers?, signature?, None)
}

/// The `X-Amz-*` parameters of a presigned URL, already percent-decoded.
pub(crate) fn parse_presigned<'a>(
    algorithm: &str,
    credential: &'a str,
    amz_date: &'a str,
    expires: &str,
    signed_headers: &'a str,
    signature: &'a str,
) -> Option<Claim<'a>> {
    if algorithm != "AWS4-HMAC-SHA256" || !expires.bytes().all(|b| b.is_ascii_digit()) || expires.len() > 7 {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    if !(1..=MAX_PRESIGNED_EXPIRY_SECS).contains(&expires) {
        return None;
    }
    claim(credential, amz_date, signed_headers, signature, Some(expires))
}

fn claim<'a>(
    credential: &'a str,
    amz_date: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
    expires: Option<i64>,
) -> Option<Claim<'a>> {
    let mut scope = credential.split('/');
    let (access_key, date, region, service, terminator) =
        (scope.next()?, scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    let well_formed = scope.next().is_none()
        && !access_key.is_empty()
        && service == "s3"
        && terminator == "aws4_request"
        && date.len() == 8
        && amz_date.len() == 16
        && amz_date.starts_with(date)
        && signature.len() == 64
        && signature.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !well_formed {
        return None;
    }
    Some(Claim { access_key, date, region, amz_date, signed_headers, signature, expires })
}

impl Claim<'_> {
    /// Whether the claim is within its time window at `now` (Unix seconds).
    pub fn is_current(&self, now: i64) -> bool {
        let Some(signed_at) = unix_seconds(self.amz_date) else { return false };
        match self.expires {
            None => (now - signed_at).abs() <= MAX_CLOCK_SKEW_SECS,
            Some(expires) => signed_at - MAX_CLOCK_SKEW_SECS <= now && now <= signed_at + expires,
        }
    }

    pub fn signed_headers(&self) -> impl Iterator<Item = &str> {
        self.signed_headers.split(';')
    }

    /// Whether the request this claim came with is signed by `secret`.
    /// `canonical_request` is built by the caller from the request itself.
    pub fn verify(&self, keys: &SigningKeys, secret: &str, canonical_request: &str) -> bool {
        let mut to_sign = String::with_capacity(160);
        to_sign.push_str("AWS4-HMAC-SHA256\n");
        to_sign.push_str(self.amz_date);
        to_sign.push('\n');
        to_sign.push_str(self.date);
        to_sign.push('/');
        to_sign.push_str(self.region);
        to_sign.push_str("/s3/aws4_request\n");
        to_sign.push_str(&hex::encode(Sha256::digest(canonical_request.as_bytes())));
        let key = keys.signing_key(self.access_key, secret, self.date, self.region);
        let Some(expected) = hmac_sha256(&key, to_sign.as_bytes()) else { return false };
        let mut provided = [0u8; 32];
        if hex::decode_to_slice(self.signature, &mut provided).is_err() {
            return false;
        }
        // Compare without an early exit, so timing tells nothing of the signature.
        expected.iter().zip(provided.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// Signing keys derived for (access key, secret, day, region), reused until
/// any of them changes: a rotated secret derives a new key at once.
#[derive(Default)]
pub(crate) struct SigningKeys {
    keys: Mutex<HashMap<String, CachedKey>>,
}

struct CachedKey {
    secret: String,
    date: String,
    region: String,
    key: [u8; 32],
}

impl SigningKeys {
    fn signing_key(&self, access_key: &str, secret: &str, date: &str, region: &str) -> [u8; 32] {
        if let Ok(keys) = self.keys.lock()
            && let Some(c) = keys.get(access_key)
            && c.secret == secret
            && c.date == date
            && c.region == region
        {
            return c.key;
        }
        let key = derive_signing_key(secret, date, region);
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= MAX_CACHED_KEYS {
                keys.clear();
            }
            let entry = CachedKey { secret: secret.to_owned(), date: date.to_owned(), region: region.to_owned(), key };
            keys.insert(access_key.to_owned(), entry);
        }
        key
    }
}

fn derive_signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    let mut k = Vec::with_capacity(secret.len() + 4);
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret.as_bytes());
    let mut key = [0u8; 32];
    for part in [date, region, "s3", "aws4_request"] {
        match hmac_sha256(&k, part.as_bytes()) {
            Some(next) => key = next,
            None => return [0u8; 32],
        }
        k.clear();
        k.extend_from_slice(&key);
    }
    key
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().into())
}

/// `YYYYMMDDTHHMMSSZ` as Unix seconds.
fn unix_seconds(amz_date: &str) -> Option<i64> {
    let b = amz_date.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = amz_date.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) { s.parse().ok() } else { None }
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let month = time::Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let t = date.with_hms(u8::try_from(hour).ok()?, u8::try_from(minute).ok()?, u8::try_from(second).ok()?).ok()?;
    Some(t.assume_utc().unix_timestamp())
}

/// S3's URI encoding: every byte but `A-Za-z0-9-._~` as `%XX` (upper-case),
/// and `/` too unless `keep_slash` (object paths keep theirs).
pub(crate) fn uri_encode(out: &mut String, s: &str, keep_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// A header value as SigV4 canonicalises it: trimmed, inner runs of spaces
/// collapsed to one.
pub(crate) fn push_canonical_value(out: &mut String, value: &str) {
    let mut space = false;
    for c in value.trim().chars() {
        if c == ' ' {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of AWS's "Authenticating Requests: Using Query Parameters"
    // and "... Using the Authorization Header" (GET Object) pages.
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn aws_presigned_example_verifies() {
        let c = parse_presigned(
            "AWS4-HMAC-SHA256",
            "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
            "20130524T000000Z",
            "86400",
            "host",
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404",
        )
        .unwrap();
        let canonical = "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD";
        let keys = SigningKeys::default();
        assert!(c.verify(&keys, SECRET, canonical));
        // Cached key, same answer; a changed request or secret fails.
        assert!(c.verify(&keys, SECRET, canonical));
        assert!(!c.verify(&keys, SECRET, &canonical.replace("test.txt", "test.txu")));
        assert!(!c.verify(&keys, "another-secret", canonical));
        assert!(c.verify(&keys, SECRET, canonical), "rotating back re-derives the key");
        let signed_at = unix_seconds("20130524T000000Z").unwrap();
        assert!(c.is_current(signed_at + 86400));
        assert!(!c.is_current(signed_at + 86401));
        assert!(!c.is_current(signed_at - 901));
    }

    #[test]
    fn aws_header_example_verifies() {
        let header = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let c = parse_authorization(header, "20130524T000000Z").unwrap();
        assert_eq!(c.access_key, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(c.signed_headers().collect::<Vec<_>>(), ["host", "range", "x-amz-content-sha256", "x-amz-date"]);
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let canonical = format!(
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:{empty}\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n{empty}"
        );
        assert!(c.verify(&SigningKeys::default(), SECRET, &canonical));
        let signed_at = unix_seconds("20130524T000000Z").unwrap();
        assert!(c.is_current(signed_at - 900) && c.is_current(signed_at + 900));
        assert!(!c.is_current(signed_at + 901));
    }

    #[test]
    fn malformed_claims_are_not_recognised() {
        let sig = "a".repeat(64);
        let d = "20130524T000000Z";
        for header in [
            format!(
                "AWS4-HMAC-SHA1 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/sqs/aws4_request,SignedHeaders=host,Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=AK/20130525/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={sig}"
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={}",
                "A".repeat(64)
            ),
            format!(
                "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host,Signature={sig},Signature={sig}"
            ),
            "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request,SignedHeaders=host".to_owned(),
        ] {
            assert_eq!(parse_authorization(&header, d), None, "{header}");
        }
        let cred = "AK/20130524/us-east-1/s3/aws4_request";
        assert!(parse_presigned("AWS4-HMAC-SHA256", cred, d, "604800", "host", &sig).is_some());
        assert!(parse_presigned("AWS4-HMAC-SHA256", cred, d, "604801", "host", &sig).is_none());
        assert!(parse_presigned("AWS4-HMAC-SHA256", cred, d, "0", "host", &sig).is_none());
        assert!(parse_presigned("AWS4-HMAC-SHA256", cred, d, "-5", "host", &sig).is_none());
        assert!(parse_presigned("AWS4-HMAC-SHA256", cred, "20130524T000000", "60", "host", &sig).is_none());
    }

    #[test]
    fn dates_and_encodings() {
        assert_eq!(unix_seconds("19700101T000001Z"), Some(1));
        assert_eq!(unix_seconds("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(unix_seconds("20131324T000000Z"), None);
        assert_eq!(unix_seconds("2013052AT000000Z"), None);
        let mut s = String::new();
        uri_encode(&mut s, "a b/ü~+*", true);
        assert_eq!(s, "a%20b/%C3%BC~%2B%2A");
        s.clear();
        uri_encode(&mut s, "a/b", false);
        assert_eq!(s, "a%2Fb");
        s.clear();
        push_canonical_value(&mut s, "  a   b c ");
        assert_eq!(s, "a b c");
    }
}
