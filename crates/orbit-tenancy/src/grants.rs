//! Per-user grants on buckets and prefixes.
//!
//! The rules, precisely:
//! - A user with no grants keeps its role's tenant-wide access.
//! - A user with grants may touch only what a grant covers. A grant covers a
//!   key when the bucket is the grant's and the key starts with the grant's
//!   prefix (bytes, no normalisation; an empty prefix is the whole bucket).
//! - `read` allows get, head and list; `write` allows put, delete and the
//!   multipart steps. Write does not imply read (an upload-only drop box is
//!   a valid grant); give both when both are meant.
//! - A listing with prefix P needs a read grant whose prefix P starts with:
//!   the whole listing must fall inside what the user may read.
//! - The role stays the ceiling: a read-only user given a write grant still
//!   cannot write.

use crate::Directory;
use crate::directory::meta_error;
use orbit_meta::{MetaError, MetaStoreExt, Table, Txn, encode};
use orbit_types::{BucketName, Error, Resource, Result, TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Access::Read),
            "write" => Ok(Access::Write),
            _ => Err(format!("unknown access `{s}` (expected read or write)")),
        }
    }
}

/// One grant: `access` to the keys of `bucket` that start with `prefix`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    pub access: Access,
}

impl Grant {
    fn covers_key(&self, bucket: &str, key: &str, access: Access) -> bool {
        self.access == access && self.bucket == bucket && key.as_bytes().starts_with(self.prefix.as_bytes())
    }
}

/// The grants of one user, loaded with its credential. Empty means
/// "unrestricted within the role".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants(Arc<Vec<Grant>>);

impl Grants {
    pub fn new(grants: Vec<Grant>) -> Self {
        Self(Arc::new(grants))
    }

    pub fn is_restricted(&self) -> bool {
        !self.0.is_empty()
    }

    pub fn list(&self) -> &[Grant] {
        &self.0
    }

    /// May the user read (get, head) this key, or write (put, delete) it?
    pub fn allows_key(&self, bucket: &str, key: &str, access: Access) -> bool {
        !self.is_restricted() || self.0.iter().any(|g| g.covers_key(bucket, key, access))
    }

    /// May the user list `bucket` with `prefix` (every key it could return
    /// must be readable)? Multipart upload listings use `Access::Write`.
    pub fn allows_listing(&self, bucket: &str, prefix: &str, access: Access) -> bool {
        !self.is_restricted() || self.0.iter().any(|g| g.covers_key(bucket, prefix, access))
    }

    /// Does the user hold any grant on the bucket (so may see that it exists)?
    pub fn allows_bucket(&self, bucket: &str) -> bool {
        !self.is_restricted() || self.0.iter().any(|g| g.bucket == bucket)
    }

    /// May the user create or delete the bucket itself (write on all of it)?
    pub fn allows_bucket_admin(&self, bucket: &str) -> bool {
        !self.is_restricted()
            || self.0.iter().any(|g| g.bucket == bucket && g.prefix.is_empty() && g.access == Access::Write)
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct GrantsRecord {
    pub grants: Vec<Grant>,
}

pub(crate) fn grants_key(tenant: TenantId, user: UserId) -> Vec<u8> {
    let mut k = tenant.as_bytes().to_vec();
    k.extend_from_slice(user.as_bytes());
    k
}

/// Longest prefix a grant may carry (S3 keys are at most 1024 bytes).
const MAX_PREFIX: usize = 1024;
/// Grants per user: enough for any sane policy, small enough to scan per request.
pub const MAX_GRANTS_PER_USER: usize = 256;

impl Directory {
    pub(crate) async fn load_grants(&self, tenant: TenantId, user: UserId) -> Result<Grants> {
        let rec: Option<GrantsRecord> =
            self.meta.get_record(Table::Grants, &grants_key(tenant, user)).await.map_err(meta_error)?;
        Ok(Grants::new(rec.map(|r| r.grants).unwrap_or_default()))
    }

    /// The grants of a user (empty: the role's tenant-wide access).
    pub async fn grants(&self, tenant: TenantId, user: UserId) -> Result<Vec<Grant>> {
        Ok(self.load_grants(tenant, user).await?.list().to_vec())
    }

    /// Add a grant (adding one that exists is a no-op). Returns the user's grants.
    pub async fn add_grant(&self, user: &crate::UserRecord, grant: Grant) -> Result<Vec<Grant>> {
        BucketName::new(&grant.bucket)?;
        if grant.prefix.len() > MAX_PREFIX {
            return Err(Error::InvalidArgument(format!("a grant prefix is at most {MAX_PREFIX} bytes")));
        }
        self.update_grants(user, |grants| {
            if !grants.contains(&grant) {
                if grants.len() >= MAX_GRANTS_PER_USER {
                    return Err(Error::LimitExceeded(format!("a user may hold at most {MAX_GRANTS_PER_USER} grants")));
                }
                grants.push(grant.clone());
                grants.sort();
            }
            Ok(())
        })
        .await
    }

    /// Remove a grant; one the user does not hold is "not found".
    pub async fn remove_grant(&self, user: &crate::UserRecord, grant: &Grant) -> Result<Vec<Grant>> {
        self.update_grants(user, |grants| {
            let before = grants.len();
            grants.retain(|g| g != grant);
            if grants.len() == before { Err(Error::NotFound(Resource::Grant)) } else { Ok(()) }
        })
        .await
    }

    async fn update_grants(
        &self,
        user: &crate::UserRecord,
        change: impl Fn(&mut Vec<Grant>) -> Result<()>,
    ) -> Result<Vec<Grant>> {
        let key = grants_key(user.tenant_id, user.id);
        let name_key = {
            let mut k = user.tenant_id.as_bytes().to_vec();
            k.extend_from_slice(user.name.as_str().as_bytes());
            k
        };
        loop {
            let raw = self.meta.get(Table::Grants, &key).await.map_err(meta_error)?;
            let mut rec: GrantsRecord = match &raw {
                Some(r) => orbit_meta::decode(r).map_err(meta_error)?,
                None => GrantsRecord::default(),
            };
            change(&mut rec.grants)?;
            let mut txn = Txn::new()
                // The user must still exist, so no grant outlives its user.
                .require_equals(Table::UserNames, name_key.clone(), user.id.as_bytes().to_vec())
                .require_current(Table::Grants, key.clone(), raw);
            if rec.grants.is_empty() {
                txn.push_delete(Table::Grants, key.clone());
            } else {
                txn.push_put(Table::Grants, key.clone(), encode(&rec));
            }
            let committed = self.meta.commit(txn).await;
            self.forget_credentials();
            match committed {
                Ok(()) => return Ok(rec.grants),
                Err(MetaError::Conflict) => {
                    if self.user_by_id(user.id).await.is_err() {
                        return Err(Error::NotFound(Resource::User));
                    }
                }
                Err(e) => return Err(meta_error(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(bucket: &str, prefix: &str, access: Access) -> Grant {
        Grant { bucket: bucket.into(), prefix: prefix.into(), access }
    }

    #[test]
    fn no_grants_means_the_roles_access() {
        let none = Grants::default();
        assert!(none.allows_key("b", "k", Access::Read));
        assert!(none.allows_key("b", "k", Access::Write));
        assert!(none.allows_listing("b", "", Access::Read));
        assert!(none.allows_bucket("any"));
        assert!(none.allows_bucket_admin("any"));
    }

    #[test]
    fn prefix_grants_match_bytes_not_paths() {
        let gs = Grants::new(vec![g("data", "train/", Access::Read)]);
        assert!(gs.allows_key("data", "train/a.bin", Access::Read));
        assert!(gs.allows_key("data", "train/", Access::Read));
        // No path semantics: `train` (no slash) and `training/` are outside `train/`.
        assert!(!gs.allows_key("data", "train", Access::Read));
        assert!(!gs.allows_key("data", "training/x", Access::Read));
        assert!(!gs.allows_key("data", "TRAIN/x", Access::Read));
        // Keys are not normalised: `./train/x` or `/train/x` are other keys.
        assert!(!gs.allows_key("data", "./train/x", Access::Read));
        assert!(!gs.allows_key("data", "/train/x", Access::Read));
        // Another bucket, or write, is not covered.
        assert!(!gs.allows_key("data2", "train/a", Access::Read));
        assert!(!gs.allows_key("data", "train/a", Access::Write));
    }

    #[test]
    fn write_does_not_imply_read() {
        let gs = Grants::new(vec![g("drop", "", Access::Write)]);
        assert!(gs.allows_key("drop", "x", Access::Write));
        assert!(!gs.allows_key("drop", "x", Access::Read));
        assert!(!gs.allows_listing("drop", "", Access::Read));
        assert!(gs.allows_bucket("drop"));
        assert!(gs.allows_bucket_admin("drop"));
    }

    #[test]
    fn listing_must_fall_inside_a_read_grant() {
        let gs = Grants::new(vec![g("data", "train/", Access::Read), g("data", "", Access::Write)]);
        assert!(gs.allows_listing("data", "train/", Access::Read));
        assert!(gs.allows_listing("data", "train/cats/", Access::Read));
        // Wider than the grant: the whole bucket, or `train` which also matches `training/`.
        assert!(!gs.allows_listing("data", "", Access::Read));
        assert!(!gs.allows_listing("data", "train", Access::Read));
        assert!(!gs.allows_listing("data", "tr", Access::Read));
        assert!(gs.allows_listing("data", "", Access::Write));
    }

    #[test]
    fn bucket_admin_needs_whole_bucket_write() {
        let gs = Grants::new(vec![g("a", "p/", Access::Write), g("b", "", Access::Read)]);
        assert!(!gs.allows_bucket_admin("a"));
        assert!(!gs.allows_bucket_admin("b"));
        assert!(gs.allows_bucket("a") && gs.allows_bucket("b"));
        assert!(!gs.allows_bucket("c"));
    }

    #[test]
    fn empty_prefix_grant_covers_every_key_including_empty_listing() {
        let gs = Grants::new(vec![g("a", "", Access::Read)]);
        assert!(gs.allows_key("a", "", Access::Read));
        assert!(gs.allows_key("a", "\u{0}weird/../key", Access::Read));
        assert!(gs.allows_listing("a", "", Access::Read));
    }

    #[tokio::test]
    async fn grants_are_loaded_with_the_credential_and_changes_apply_at_once() {
        use crate::{MasterKey, TenantModel};
        use orbit_types::Role;
        let d = Directory::new(std::sync::Arc::new(orbit_meta::MemoryStore::new()), MasterKey::generate().0);
        let t = d.create_tenant(&"acme".parse().unwrap(), TenantModel::SelfManaged).await.unwrap();
        let u = d.create_user(&t, &"alice".parse().unwrap(), Role::ReadWrite).await.unwrap();
        let (k, _) = d.create_key(&u, None).await.unwrap();
        assert!(!d.authenticate(&k.access_key_id).await.unwrap().0.grants.is_restricted());
        d.add_grant(&u, g("data", "train/", Access::Read)).await.unwrap();
        d.add_grant(&u, g("data", "train/", Access::Read)).await.unwrap();
        let caller = d.authenticate(&k.access_key_id).await.unwrap().0;
        assert_eq!(caller.grants.list(), &[g("data", "train/", Access::Read)]);
        assert!(matches!(d.add_grant(&u, g("Not_A_Bucket", "", Access::Read)).await, Err(Error::InvalidName(_))));
        assert!(matches!(
            d.remove_grant(&u, &g("data", "", Access::Read)).await,
            Err(Error::NotFound(Resource::Grant))
        ));
        d.remove_grant(&u, &g("data", "train/", Access::Read)).await.unwrap();
        assert!(!d.authenticate(&k.access_key_id).await.unwrap().0.grants.is_restricted());
        // Grants go with their user.
        d.add_grant(&u, g("data", "", Access::Write)).await.unwrap();
        d.delete_user(&u).await.unwrap();
        assert!(matches!(d.add_grant(&u, g("data", "", Access::Write)).await, Err(Error::NotFound(Resource::User))));
    }
}
