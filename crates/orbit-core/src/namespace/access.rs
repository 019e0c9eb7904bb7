//! Grant checks for data operations (the rules are in `orbit_tenancy::Grants`).
//! Each check runs before the bucket is resolved, so a user limited by
//! grants learns nothing about buckets or keys outside them.

use super::require_write;
use orbit_tenancy::{Access, Caller};
use orbit_types::{Error, Result};

fn allow(ok: bool) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::AccessDenied) }
}

/// Get or head a key (also the source of a copy).
pub(crate) fn require_read(caller: &Caller, bucket: &str, key: &str) -> Result<()> {
    allow(caller.grants.allows_key(bucket, key, Access::Read))
}

/// Put, delete, or any multipart step on a key: the role must write, and a grant must cover it.
pub(crate) fn require_write_key(caller: &Caller, bucket: &str, key: &str) -> Result<()> {
    require_write(caller)?;
    allow(caller.grants.allows_key(bucket, key, Access::Write))
}

/// List objects (read) or multipart uploads (write) under a prefix.
pub(crate) fn require_list(caller: &Caller, bucket: &str, prefix: &str, access: Access) -> Result<()> {
    allow(caller.grants.allows_listing(bucket, prefix, access))
}

/// See that a bucket exists (head, location, versioning).
pub(crate) fn require_bucket(caller: &Caller, bucket: &str) -> Result<()> {
    allow(caller.grants.allows_bucket(bucket))
}

/// Create or delete the bucket itself.
pub(crate) fn require_bucket_admin(caller: &Caller, bucket: &str) -> Result<()> {
    require_write(caller)?;
    allow(caller.grants.allows_bucket_admin(bucket))
}
