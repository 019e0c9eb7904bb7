//! What a lease covers: a key prefix inside one bucket.

use orbit_types::{BucketId, ObjectKey};
use serde::{Deserialize, Serialize};

/// A prefix of object keys inside one bucket. The empty prefix covers the
/// whole bucket. Prefixes are compared as raw bytes, like S3 listings: `a/`
/// covers `a/b` but not `a`, and `a` covers `a/b` and `ab`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeaseScope {
    pub bucket: BucketId,
    pub prefix: String,
}

impl LeaseScope {
    pub fn new(bucket: BucketId, prefix: impl Into<String>) -> Self {
        Self { bucket, prefix: prefix.into() }
    }

    /// The scope of the whole bucket.
    pub fn bucket(bucket: BucketId) -> Self {
        Self { bucket, prefix: String::new() }
    }

    /// Whether `key` of `bucket` lies in this scope.
    pub fn covers(&self, bucket: BucketId, key: &ObjectKey) -> bool {
        self.bucket == bucket && key.as_str().as_bytes().starts_with(self.prefix.as_bytes())
    }

    /// Whether a listing of `prefix` in `bucket` lies wholly inside this scope.
    pub fn covers_prefix(&self, bucket: BucketId, prefix: &str) -> bool {
        self.bucket == bucket && prefix.as_bytes().starts_with(self.prefix.as_bytes())
    }

    /// Whether some key could lie in both scopes: same bucket and one prefix
    /// starts with the other.
    pub fn overlaps(&self, other: &LeaseScope) -> bool {
        self.bucket == other.bucket
            && (self.prefix.as_bytes().starts_with(other.prefix.as_bytes())
                || other.prefix.as_bytes().starts_with(self.prefix.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(n: u8) -> BucketId {
        BucketId::from_slice(&[n; 16]).expect("16 bytes")
    }

    fn key(s: &str) -> ObjectKey {
        ObjectKey::new(s).expect("valid key")
    }

    #[test]
    fn empty_prefix_covers_the_whole_bucket_and_nothing_else() {
        let s = LeaseScope::bucket(bucket(1));
        assert!(s.covers(bucket(1), &key("anything/at/all")));
        assert!(!s.covers(bucket(2), &key("anything/at/all")));
    }

    #[test]
    fn prefixes_are_raw_bytes_not_path_segments() {
        let s = LeaseScope::new(bucket(1), "a/");
        assert!(s.covers(bucket(1), &key("a/b")));
        assert!(!s.covers(bucket(1), &key("a")));
        assert!(!s.covers(bucket(1), &key("ab")));
        let s = LeaseScope::new(bucket(1), "a");
        assert!(s.covers(bucket(1), &key("ab")));
        assert!(s.covers(bucket(1), &key("a//b")));
    }

    #[test]
    fn overlap_is_symmetric_and_bucket_scoped() {
        let whole = LeaseScope::bucket(bucket(1));
        let a = LeaseScope::new(bucket(1), "data/a/");
        let ab = LeaseScope::new(bucket(1), "data/a/b");
        let b = LeaseScope::new(bucket(1), "data/b/");
        let other = LeaseScope::new(bucket(2), "data/a/");
        assert!(whole.overlaps(&a) && a.overlaps(&whole));
        assert!(a.overlaps(&ab) && ab.overlaps(&a));
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(!a.overlaps(&other));
        assert!(a.covers_prefix(bucket(1), "data/a/x"));
        assert!(!ab.covers_prefix(bucket(1), "data/a/"));
    }
}
