use serde::{Deserialize, Serialize};
use std::fmt;

/// S3's limit on the length of an object key, in bytes of UTF-8.
pub const MAX_KEY_LEN: usize = 1024;

/// A name or key that breaks the rules, with the reason in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct InvalidName {
    pub what: &'static str,
    pub reason: String,
    /// The name is over its length limit (S3 answers that one with its own code).
    pub too_long: bool,
}

fn invalid(what: &'static str, reason: impl Into<String>) -> InvalidName {
    InvalidName { what, reason: reason.into(), too_long: false }
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl std::str::FromStr for $name {
            type Err = InvalidName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidName;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

/// A bucket name following the S3 naming rules for general purpose buckets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BucketName(String);
string_newtype!(BucketName);

impl BucketName {
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        const W: &str = "bucket name";
        if !(3..=63).contains(&s.len()) {
            return Err(invalid(W, "must be between 3 and 63 characters long"));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
            return Err(invalid(W, "may contain only lowercase letters, digits, '-' and '.'"));
        }
        let first = s.as_bytes()[0];
        let last = s.as_bytes()[s.len() - 1];
        if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
            return Err(invalid(W, "must begin and end with a letter or digit"));
        }
        if s.contains("..") || s.contains(".-") || s.contains("-.") {
            return Err(invalid(W, "must not contain adjacent periods or a period next to a hyphen"));
        }
        if s.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(invalid(W, "must not be formatted as an IP address"));
        }
        for p in ["xn--", "sthree-", "amzn-s3-demo-"] {
            if s.starts_with(p) {
                return Err(invalid(W, format!("must not start with `{p}`")));
            }
        }
        for p in ["-s3alias", "--ol-s3", "--x-s3", "--table-s3", ".mrap"] {
            if s.ends_with(p) {
                return Err(invalid(W, format!("must not end with `{p}`")));
            }
        }
        Ok(Self(s.to_owned()))
    }
}

/// Name of a tenant or a user: 1 to 63 of lowercase letters, digits and '-',
/// beginning with a letter or digit. Stricter than bucket names on purpose:
/// these appear in URLs, metric labels and file names.
fn check_principal_name(what: &'static str, s: &str) -> Result<(), InvalidName> {
    if s.is_empty() || s.len() > 63 {
        return Err(invalid(what, "must be between 1 and 63 characters long"));
    }
    if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(invalid(what, "may contain only lowercase letters, digits and '-'"));
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(invalid(what, "must begin with a letter or digit"));
    }
    Ok(())
}

/// A tenant's name, unique on the site.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);
string_newtype!(TenantName);

impl TenantName {
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        if s == crate::SYSTEM_TENANT {
            return Ok(Self(s.to_owned()));
        }
        check_principal_name("tenant name", s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn system() -> Self {
        Self(crate::SYSTEM_TENANT.to_owned())
    }

    pub fn is_system(&self) -> bool {
        self.0 == crate::SYSTEM_TENANT
    }
}

/// A user's name, unique within its tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);
string_newtype!(UserName);

impl UserName {
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        check_principal_name("user name", s)?;
        Ok(Self(s.to_owned()))
    }
}

/// An S3 object key: opaque UTF-8 of 1 to 1024 bytes. Orbit never interprets
/// it (no normalisation of `/`, `..` or empty segments) and never uses it as a
/// file path; the only character refused is NUL, which no XML listing can carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);
string_newtype!(ObjectKey);

impl ObjectKey {
    pub fn new(s: &str) -> Result<Self, InvalidName> {
        if s.is_empty() {
            return Err(invalid("object key", "must not be empty"));
        }
        if s.len() > MAX_KEY_LEN {
            return Err(InvalidName { too_long: true, ..invalid("object key", "is longer than 1024 bytes") });
        }
        if s.contains('\0') {
            return Err(invalid("object key", "must not contain the NUL character"));
        }
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3_rules() {
        for ok in ["abc", "my-bucket", "my.bucket.1", "a1b", &"a".repeat(63)] {
            assert!(BucketName::new(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "Bad_Bucket",
            "UPPER",
            "-abc",
            "abc-",
            "a..b",
            "a.-b",
            "192.168.1.1",
            "xn--abc",
            "abc-s3alias",
            "with space",
        ] {
            assert!(BucketName::new(bad).is_err(), "{bad} should be invalid");
        }
    }

    #[test]
    fn object_keys_are_opaque_but_bounded() {
        for ok in ["a", "../../etc/passwd", "a//b", "/leading", "dir/", "ünïcødé", " "] {
            assert_eq!(ObjectKey::new(ok).unwrap().as_str(), ok);
        }
        assert!(ObjectKey::new("").is_err());
        assert!(ObjectKey::new("a\0b").is_err());
        assert!(ObjectKey::new(&"k".repeat(1024)).is_ok());
        assert!(ObjectKey::new(&"k".repeat(1025)).unwrap_err().too_long);
        assert!(!ObjectKey::new("a\0b").unwrap_err().too_long);
    }

    #[test]
    fn principal_names() {
        assert!(TenantName::new("acme-labs").is_ok());
        assert!(TenantName::new("_system").unwrap().is_system());
        assert!(TenantName::new("_other").is_err());
        assert!(TenantName::new("Acme").is_err());
        assert!(UserName::new("alice").is_ok());
        assert!(UserName::new("").is_err());
        assert!(UserName::new("-x").is_err());
    }
}
