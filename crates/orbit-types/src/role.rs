use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a user may do. Roles are ordered by power only within a tenant;
/// `Operator` exists only in the system tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the site: creates tenants, manages everything through the admin API.
    Operator,
    /// Manages its own tenant's users, keys and buckets (self-managed tenants).
    TenantAdmin,
    /// Reads and writes objects, creates and deletes buckets.
    ReadWrite,
    /// Lists and reads.
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::TenantAdmin, Role::ReadWrite, Role::ReadOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::TenantAdmin => "tenant-admin",
            Role::ReadWrite => "read-write",
            Role::ReadOnly => "read-only",
        }
    }

    /// Whether the role may change data (objects and buckets) through a data protocol.
    pub fn can_write_data(self) -> bool {
        !matches!(self, Role::ReadOnly)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}` (expected operator, tenant-admin, read-write or read-only)"))
    }
}
