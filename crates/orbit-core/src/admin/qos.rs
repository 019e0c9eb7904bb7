//! QoS limits through the admin API: only operators set them; a tenant's
//! admins may read their own tenant's.

use super::AdminService;
use orbit_tenancy::{AdminAction, Caller, QosLimits, QosScope, authorize_admin};
use orbit_types::{BucketName, Result};

impl AdminService {
    /// The scope a request names, authorised for `action` on its tenant.
    async fn qos_scope(
        &self,
        caller: &Caller,
        tenant: &str,
        bucket: Option<&str>,
        action: fn(orbit_types::TenantId) -> AdminAction,
    ) -> Result<QosScope> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, action(t.id))?;
        Ok(match bucket {
            None => QosScope::Tenant(t.id),
            Some(b) => QosScope::Bucket(t.id, BucketName::new(b)?),
        })
    }

    pub async fn qos_limits(&self, caller: &Caller, tenant: &str, bucket: Option<&str>) -> Result<QosLimits> {
        let scope = self.qos_scope(caller, tenant, bucket, AdminAction::ReadTenant).await?;
        self.dir.qos().get(&scope).await
    }

    /// Replace a scope's limits (unset fields are unlimited); they apply to
    /// requests admitted from now on, and to the rest of bodies being paced.
    pub async fn set_qos_limits(
        &self,
        caller: &Caller,
        tenant: &str,
        bucket: Option<&str>,
        limits: QosLimits,
    ) -> Result<QosLimits> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let scope = self.qos_scope(caller, tenant, bucket, |_| AdminAction::ManageTenants).await?;
        if let QosScope::Bucket(t, b) = &scope {
            // A limit on a bucket that does not exist is most likely a typo.
            self.ns.resolve_bucket(*t, b.as_str()).await?;
        }
        self.dir.qos().set(&scope, limits).await
    }

    /// Remove a scope's limits (also those of a bucket deleted since).
    pub async fn clear_qos_limits(&self, caller: &Caller, tenant: &str, bucket: Option<&str>) -> Result<()> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let scope = self.qos_scope(caller, tenant, bucket, |_| AdminAction::ManageTenants).await?;
        self.dir.qos().clear(&scope).await
    }
}
