//! Orbit's shared vocabulary. Every name that crosses a boundary (a bucket,
//! a tenant, a user, an object key) is validated here once, so the layers
//! above can hold a typed value instead of re-checking strings.

mod error;
mod ids;
mod names;
mod role;
pub mod signing;

pub use error::{Error, Resource, Result};
pub use ids::{BucketId, TenantId, UploadId, UserId, new_blob_id};
pub use names::{BucketName, InvalidName, MAX_KEY_LEN, ObjectKey, TenantName, UserName};
pub use role::Role;

/// Milliseconds since the Unix epoch, the one timestamp unit of persisted records.
pub fn now_ms() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Name of the tenant that holds the operators. Tenant names cannot contain
/// `_`, so no tenant a person creates can collide with it.
pub const SYSTEM_TENANT: &str = "_system";
