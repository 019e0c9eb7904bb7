//! Bucket layouts. A bucket either keeps its objects as Orbit's own blobs
//! (the default; object metadata in the metadata store), or is *mapped*: the
//! object with key K is the backend object `<prefix>K`, which other tools may
//! read and write directly, under a consistency mode that bounds staleness.

use orbit_types::{BucketId, Error, Result, TenantId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The longest TTL a mapped bucket may have (one day).
pub const MAX_TTL_SECS: u64 = 86_400;

/// How fresh a mapped bucket's reads are when others write its location too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Consistency {
    /// Every read asks the backend for the object's ETag first: never stale.
    Validate,
    /// Object metadata is reused for up to `secs`: a read may be that stale.
    Ttl { secs: u64 },
    /// Orbit is the only writer: metadata is reused until Orbit itself changes the object.
    Exclusive,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Consistency::Validate => f.write_str("validate"),
            Consistency::Ttl { secs } => write!(f, "ttl={secs}"),
            Consistency::Exclusive => f.write_str("exclusive"),
        }
    }
}

impl FromStr for Consistency {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "mode `{s}` is not one of `validate`, `ttl=<seconds>` (1 to {MAX_TTL_SECS}) or `exclusive`"
            ))
        };
        match s {
            "validate" => Ok(Consistency::Validate),
            "exclusive" => Ok(Consistency::Exclusive),
            _ => {
                let secs: u64 = s.strip_prefix("ttl=").and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                if (1..=MAX_TTL_SECS).contains(&secs) { Ok(Consistency::Ttl { secs }) } else { Err(bad()) }
            }
        }
    }
}

/// Where a mapped bucket's objects live in its backend, and how fresh reads are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedLocation {
    /// Ends with `/`; the object with key K is `<prefix>K`.
    pub prefix: String,
    pub mode: Consistency,
}

/// The locations of one backend that buckets map, kept in one record per
/// backend so that a new mapping is checked against all others atomically.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mappings {
    pub entries: Vec<MappingEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MappingEntry {
    pub prefix: String,
    pub tenant_id: TenantId,
    pub bucket_id: BucketId,
}

/// Orbit's own blobs live under `b/` of every backend; no mapping may reach them.
const BLOB_AREA: &str = "b/";

/// The prefix as stored: validated, ending with `/` (so `data` maps `data/…`, never `database/…`).
pub fn normalize_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        return Err(Error::InvalidArgument(
            "a mapped bucket needs a non-empty location prefix (Orbit keeps its own blobs under `b/`)".into(),
        ));
    }
    orbit_backend::check_path(trimmed)
        .map_err(|why| Error::InvalidArgument(format!("location prefix `{prefix}` is not a valid path: {why}")))?;
    let p = format!("{trimmed}/");
    if p.starts_with(BLOB_AREA) {
        return Err(Error::InvalidArgument(format!(
            "location prefix `{prefix}` is inside `b/`, where Orbit keeps the blobs of its own buckets"
        )));
    }
    Ok(p)
}

/// Two mapped locations overlap when one contains the other.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for s in ["validate", "exclusive", "ttl=60", "ttl=1", "ttl=86400"] {
            assert_eq!(s.parse::<Consistency>().unwrap().to_string(), s);
        }
        for s in ["", "ttl", "ttl=", "ttl=0", "ttl=-1", "ttl=86401", "ttl=1s", "Validate", "strict"] {
            assert!(matches!(s.parse::<Consistency>(), Err(Error::InvalidArgument(_))), "{s}");
        }
    }

    #[test]
    fn prefixes_are_checked_and_end_with_a_slash() {
        assert_eq!(normalize_prefix("datasets/imagenet").unwrap(), "datasets/imagenet/");
        assert_eq!(normalize_prefix("datasets/").unwrap(), "datasets/");
        for bad in ["", "/", "a//b", "a/../b", "/a", "b", "b/x", "b/"] {
            assert!(normalize_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_prefix("bx/").is_ok());
        assert!(overlaps("a/", "a/b/") && overlaps("a/b/", "a/") && overlaps("a/", "a/"));
        assert!(!overlaps("a/", "ab/") && !overlaps("a/b/", "a/c/"));
    }
}
