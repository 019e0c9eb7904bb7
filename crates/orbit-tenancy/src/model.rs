use orbit_types::{Role, TenantId, TenantName, UserId, UserName};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who manages a tenant's users and keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TenantModel {
    /// Only the operator manages users, keys and buckets.
    #[default]
    AdminOnly,
    /// The tenant's own tenant-admins manage them, inside the operator's limits.
    SelfManaged,
}

impl TenantModel {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantModel::AdminOnly => "admin-only",
            TenantModel::SelfManaged => "self-managed",
        }
    }
}

impl fmt::Display for TenantModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TenantModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin-only" => Ok(TenantModel::AdminOnly),
            "self-managed" => Ok(TenantModel::SelfManaged),
            _ => Err(format!("unknown tenant model `{s}` (expected admin-only or self-managed)")),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: TenantName,
    pub model: TenantModel,
    pub created_ms: i64,
    /// RAM of the site's chunk cache reserved for this tenant alone.
    #[serde(default)]
    pub cache_share_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: UserId,
    pub tenant_id: TenantId,
    pub name: UserName,
    pub role: Role,
    pub created_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// The secret, sealed with the master key; never stored in plain text.
    pub sealed_secret: String,
    pub created_ms: i64,
}

/// The authenticated identity behind a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: TenantId,
    pub tenant: TenantName,
    pub model: TenantModel,
    pub user_id: UserId,
    pub user: UserName,
    pub role: Role,
    pub access_key_id: String,
    /// The user's bucket and prefix grants (empty: the role's tenant-wide access).
    pub grants: crate::Grants,
}
