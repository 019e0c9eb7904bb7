//! The records the namespace persists, and how their keys are laid out.
//! Object data is stored under internal blob paths, never under the S3 key.

use crate::checksum::{ChecksumAlgorithm, ChecksumKind};
use orbit_types::{BucketId, BucketName, TenantId, UploadId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a bucket's chunks are cached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachePolicy {
    /// Cache a chunk only on its second miss (for data read once, in scans).
    #[serde(default)]
    pub admit_on_second_miss: bool,
    /// Re-read cached chunks older than this many seconds.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

impl CachePolicy {
    pub fn chunk_policy(&self) -> orbit_cache::ChunkPolicy {
        orbit_cache::ChunkPolicy {
            admit_on_second_miss: self.admit_on_second_miss,
            ttl: self.ttl_secs.map(std::time::Duration::from_secs),
            pin: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    pub id: BucketId,
    pub tenant_id: TenantId,
    pub name: BucketName,
    pub created_ms: i64,
    /// The site that is the authority for the bucket's contents.
    pub home_site: String,
    /// The backend that holds the bucket's bytes.
    pub backend: String,
    #[serde(default)]
    pub cache: CachePolicy,
    /// Set for a mapped bucket (objects at `<prefix>K` of the backend); absent
    /// for Orbit's own blob layout, which is what older records decode as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapped: Option<crate::layout::MappedLocation>,
    /// Key prefixes whose chunks stay in the site's pinned cache tier.
    #[serde(default)]
    pub pinned_prefixes: Vec<String>,
}

impl BucketRecord {
    /// How chunks of `key` are cached: the bucket's policy, pinned when a
    /// pinned prefix covers the key.
    pub fn chunk_policy(&self, key: &str) -> orbit_cache::ChunkPolicy {
        orbit_cache::ChunkPolicy {
            pin: self.pinned_prefixes.iter().any(|p| key.starts_with(p.as_str())),
            ..self.cache.chunk_policy()
        }
    }
}

/// Standard HTTP content headers stored with an object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// Kept as the client sent it (an HTTP date).
    pub expires: Option<String>,
}

/// A checksum of a whole object as S3 reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub kind: ChecksumKind,
    /// Base64, with `-N` appended for a composite checksum of N parts.
    pub value: String,
}

/// One stored piece of an object's data: a whole single-part object, or one part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The backend that holds the blob (the bucket's, at the time it was written).
    pub backend: String,
    pub blob: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// Unique per write: identifies this version of the key's data.
    pub version: String,
    pub size: u64,
    /// Without quotes: hex MD5, or `hex-N` for multipart uploads.
    pub etag: String,
    pub last_modified_ms: i64,
    pub headers: ContentHeaders,
    pub user_metadata: BTreeMap<String, String>,
    pub checksum: Option<StoredChecksum>,
    pub segments: Vec<Segment>,
    /// Number of parts for objects made by a multipart upload.
    pub parts_count: Option<u32>,
}

impl ObjectRecord {
    /// (backend, blob) of every segment.
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.segments.iter().map(|s| (s.backend.as_str(), s.blob.as_str()))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: UploadId,
    pub bucket_id: BucketId,
    pub key: String,
    pub initiated_ms: i64,
    pub headers: ContentHeaders,
    pub user_metadata: BTreeMap<String, String>,
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    pub checksum_kind: Option<ChecksumKind>,
    /// The caller that initiated the upload, reported as owner and initiator.
    pub initiator: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: u32,
    pub backend: String,
    pub blob: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    /// Base64 checksum of the part, in the upload's algorithm.
    pub checksum: Option<String>,
}

pub(crate) fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

/// The `buckets` table key of a tenant's bucket (tenant id ++ name).
pub fn bucket_key(tenant: TenantId, name: &BucketName) -> Vec<u8> {
    cat(tenant.as_bytes(), name.as_str().as_bytes())
}

pub(crate) fn object_key(bucket: BucketId, key: &str) -> Vec<u8> {
    cat(bucket.as_bytes(), key.as_bytes())
}

pub(crate) fn upload_key(bucket: BucketId, upload: UploadId) -> Vec<u8> {
    cat(bucket.as_bytes(), upload.as_bytes())
}

pub(crate) fn part_key(upload: UploadId, number: u32) -> Vec<u8> {
    cat(upload.as_bytes(), &number.to_be_bytes())
}

/// Where a new blob of a bucket goes in the backend.
pub(crate) fn new_blob_path(bucket: BucketId) -> String {
    format!("b/{bucket}/{}", orbit_types::new_blob_id())
}

/// Where a part blob of an upload goes.
pub(crate) fn new_part_blob_path(bucket: BucketId, upload: UploadId, number: u32) -> String {
    format!("b/{bucket}/u-{upload}-{number}-{}", orbit_types::new_blob_id())
}
