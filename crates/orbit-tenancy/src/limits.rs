//! Limits the operator sets on what a tenant may create for itself: users,
//! keys per user, buckets. They bind the tenant's own tenant-admins and data
//! users; the operator, who sets them, is not bound by them.

use crate::directory::meta_error;
use orbit_meta::{MetaStore, MetaStoreExt, Table, Txn, encode};
use orbit_types::{Result, TenantId};
use serde::{Deserialize, Serialize};

/// None means "no limit".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimits {
    #[serde(default)]
    pub max_users: Option<u32>,
    #[serde(default)]
    pub max_keys_per_user: Option<u32>,
    #[serde(default)]
    pub max_buckets: Option<u32>,
}

/// The tenant's limits (all unset when the operator set none).
pub async fn tenant_limits(meta: &dyn MetaStore, tenant: TenantId) -> Result<TenantLimits> {
    Ok(meta.get_record(Table::TenantLimits, tenant.as_bytes()).await.map_err(meta_error)?.unwrap_or_default())
}

/// Replace the tenant's limits. The tenant must still exist.
pub async fn set_tenant_limits(meta: &dyn MetaStore, tenant: &crate::TenantRecord, limits: TenantLimits) -> Result<()> {
    let txn = Txn::new()
        .require_equals(Table::TenantNames, tenant.name.as_str().as_bytes().to_vec(), tenant.id.as_bytes().to_vec())
        .put(Table::TenantLimits, tenant.id.as_bytes().to_vec(), encode(&limits));
    match meta.commit(txn).await {
        Ok(()) => Ok(()),
        Err(orbit_meta::MetaError::Conflict) => Err(orbit_types::Error::NotFound(orbit_types::Resource::Tenant)),
        Err(e) => Err(meta_error(e)),
    }
}

/// Refuse when `current` already reaches `limit`.
pub fn check_limit(limit: Option<u32>, current: usize, what: &str, tenant: &str) -> Result<()> {
    match limit {
        Some(max) if current >= max as usize => Err(orbit_types::Error::LimitExceeded(format!(
            "tenant {tenant} may have at most {max} {what} (a limit set by the operator)"
        ))),
        _ => Ok(()),
    }
}
