//! Request and response bodies of the admin API.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub name: String,
    /// `admin-only` or `self-managed`.
    pub model: String,
    /// RAM of the site's chunk cache reserved for this tenant (null: it uses the shared cache).
    pub cache_share_bytes: Option<u64>,
    /// Milliseconds since the Unix epoch.
    pub created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CacheShare {
    /// Bytes of RAM cache reserved for the tenant; null removes the reservation.
    pub ram_bytes: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateTenant {
    pub name: String,
    /// `admin-only` (default) or `self-managed`.
    #[serde(default)]
    pub model: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub tenant: String,
    pub name: String,
    /// `operator`, `tenant-admin`, `read-write` or `read-only`.
    pub role: String,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateUser {
    pub name: String,
    pub role: String,
}

/// An access key as listed: the secret is never shown again after creation.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessKey {
    pub access_key_id: String,
    pub tenant: String,
    pub user: String,
    pub created_ms: i64,
}

/// A newly created access key, with its secret (shown once).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub tenant: String,
    pub user: String,
    pub created_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    pub tenant: String,
    pub name: String,
    /// The backend that holds the bucket's bytes.
    pub backend: String,
    pub cache: BucketCache,
    /// Prefixes whose data the site keeps in its pinned cache tier.
    pub pinned_prefixes: Vec<String>,
    pub home_site: String,
    pub created_ms: i64,
    /// `blob` (Orbit's own blobs; Orbit is the only writer) or `mapped`
    /// (key K is the backend object `<location_prefix>K`, which others may write).
    #[serde(default = "blob_layout")]
    pub layout: String,
    /// For a mapped bucket: where its objects live in the backend.
    #[serde(default)]
    pub location_prefix: Option<String>,
    /// For a mapped bucket: `validate`, `ttl=<seconds>` or `exclusive`.
    #[serde(default)]
    pub mode: Option<String>,
}

fn blob_layout() -> String {
    "blob".into()
}

/// A mapped bucket's consistency mode.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BucketMode {
    /// `validate` (every read checks the backend's ETag first), `ttl=<seconds>`
    /// (object metadata reused for at most that long) or `exclusive` (Orbit is the only writer).
    pub mode: String,
}

/// Pin a prefix of a bucket (the empty prefix pins the whole bucket).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PinPrefix {
    pub prefix: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct PrefixQuery {
    /// The pinned prefix to release.
    pub prefix: String,
}

/// A pinned prefix, and the prefetch job that fills the pinned tier with it.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Pinned {
    pub bucket: Bucket,
    pub job: PrefetchJob,
}

/// Figures by cache tier.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct TierFigures {
    pub ram: u64,
    pub ssd: u64,
    pub pinned: u64,
}

/// What the site's chunk cache did for one tenant since the process started.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantCache {
    pub tenant: String,
    /// RAM reserved for the tenant (null: it uses the shared cache).
    pub cache_share_bytes: Option<u64>,
    /// Chunk reads served from the cache, by tier.
    pub hits: TierFigures,
    pub hit_bytes: TierFigures,
    /// Chunk reads that went to the backend.
    pub misses: u64,
    pub miss_bytes: u64,
    /// Hits over all chunk reads (null before the first read).
    pub hit_ratio: Option<f64>,
}

/// How a bucket's data is cached at the site.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BucketCache {
    /// `first-miss` (default) or `second-miss`: cache a chunk only when it is read a second time.
    pub admission: String,
    /// Re-read cached data older than this; null for no limit.
    pub ttl_seconds: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateBucket {
    pub name: String,
    /// A backend configured on the site (default: `default`, the local one).
    #[serde(default)]
    pub backend: Option<String>,
    /// Map the bucket onto this existing location of the backend (operators
    /// only): key K is the object `<prefix>/K`, which other tools may write too.
    #[serde(default)]
    pub location_prefix: Option<String>,
    /// For a mapped bucket: `validate` (default), `ttl=<seconds>` or `exclusive`.
    #[serde(default)]
    pub mode: Option<String>,
    /// The site that is the authority for the bucket's contents: this site
    /// (the default) or a configured peer. Only at the directory site.
    #[serde(default)]
    pub home_site: Option<String>,
}

/// Start a prefetch job: a prefix, or a manifest of keys (one or the other).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct StartPrefetch {
    pub bucket: String,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub keys: Option<Vec<String>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct PrefetchJob {
    pub id: String,
    pub tenant: String,
    pub bucket: String,
    /// The prefix warmed, for prefix jobs.
    pub prefix: Option<String>,
    /// How many keys the manifest named, for manifest jobs.
    pub manifest_keys: Option<u64>,
    /// `running`, `done`, `failed` or `cancelled`.
    pub state: String,
    pub objects_done: u64,
    /// Null until the selection has been counted.
    pub objects_total: Option<u64>,
    pub bytes_done: u64,
    pub bytes_total: Option<u64>,
    /// Objects that could not be read.
    pub errors: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub message: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct ForceQuery {
    /// Delete contents too (a tenant's buckets and objects, a bucket's objects).
    #[serde(default)]
    pub force: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct KeysQuery {
    /// Only the keys of this user.
    pub user: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `NotFound`, `Conflict`, `NotEmpty`, `InvalidArgument`,
    /// `AccessDenied`, `Unauthorized`, `Unavailable`, `InternalError`.
    pub code: String,
    pub message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Rate limits of a tenant or of one bucket. An unset (null) field is
/// unlimited; reads are GET, HEAD and listings, writes everything else.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QosLimits {
    /// Read requests per second; more are refused with S3 `SlowDown` (503, `Retry-After`).
    #[serde(default)]
    pub read_rps: Option<u32>,
    /// Write requests per second.
    #[serde(default)]
    pub write_rps: Option<u32>,
    /// Bytes per second of object bodies read (at least 1024); bodies are paced, not refused.
    #[serde(default)]
    pub read_bps: Option<u64>,
    /// Bytes per second of object bodies written (at least 1024).
    #[serde(default)]
    pub write_bps: Option<u64>,
    /// Seconds' worth of each rate usable at once after a quiet period (default 1).
    #[serde(default)]
    pub burst_seconds: Option<f64>,
}

/// The limits in force for a tenant, or for one of its buckets.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Qos {
    pub tenant: String,
    /// Null for the limits of the tenant as a whole.
    pub bucket: Option<String>,
    pub limits: QosLimits,
}

/// A grant of `read` or `write` on a bucket, or on the keys of a bucket under a prefix.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, IntoParams)]
pub struct GrantBody {
    pub bucket: String,
    /// Keys starting with this (bytes, no normalisation); empty or absent: the whole bucket.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `read` (get, head, list) or `write` (put, delete, multipart); write does not imply read.
    pub access: String,
}

/// Limits the operator sets for a tenant's own management; null: no limit.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    #[serde(default)]
    pub max_users: Option<u32>,
    #[serde(default)]
    pub max_keys_per_user: Option<u32>,
    #[serde(default)]
    pub max_buckets: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditSettingsBody {
    /// Record every S3 data access of the tenant (operation, bucket, key, outcome).
    pub data_access: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct AuditListQuery {
    /// Only this tenant's chain (a tenant-admin may name only its own).
    pub tenant: Option<String>,
    /// Only actions by this user (name within its tenant).
    pub user: Option<String>,
    /// An action name (`user.create`), or a prefix ending in `.` (`s3.`, `auth.`).
    pub action: Option<String>,
    /// From this time (milliseconds since the Unix epoch), inclusive.
    pub since_ms: Option<i64>,
    /// Until this time (milliseconds since the Unix epoch), exclusive.
    pub until_ms: Option<i64>,
    /// At most this many records (default 1000, at most 10000), oldest first.
    pub limit: Option<usize>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct AuditVerifyQuery {
    /// Only this tenant's chain (a tenant-admin may name only its own).
    pub tenant: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Tenant whose chain holds the record.
    pub tenant: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    pub time_ms: i64,
    /// `tenant/user` who acted; empty when authentication failed with an unknown key.
    pub actor: String,
    pub access_key: String,
    /// `tenant.create`, `user.delete`, `grant.add`, `auth.s3`, `auth.admin`, `s3.GetObject`, ...
    pub action: String,
    pub target: String,
    /// `ok`, `denied`, or an error code.
    pub outcome: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainVerdict {
    pub tenant: String,
    /// Records verified before the first fault (all of them when intact).
    pub records: u64,
    pub ok: bool,
    /// Sequence number of the first bad (or missing) record.
    pub bad_seq: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditVerification {
    /// True when every chain verified.
    pub ok: bool,
    pub chains: Vec<ChainVerdict>,
}
