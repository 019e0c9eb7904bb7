//! Admin operations for the audit log, per-user grants and tenant limits,
//! authorised like the rest of `AdminService`: operators everywhere; a
//! tenant-admin in its own tenant only (identities and grants only in the
//! self-managed model); data roles nowhere. A tenant named by anyone but an
//! operator is refused before it is looked up, so the answer is the same
//! whether it exists or not.

use crate::AdminService;
use crate::audit::{
    AuditEvent, AuditQuery, AuditRecord, AuditSettings, Auditor, ChainReport, list_chain, verify_chain,
};
use orbit_tenancy::{AdminAction, Caller, Grant, TenantLimits, authorize_admin};
use orbit_types::{Error, Result, Role, TenantId, TenantName, UserName};

/// Most records one `audit list` returns.
pub const MAX_AUDIT_LIST: usize = 10_000;

impl AdminService {
    fn auditor(&self) -> Result<&Auditor> {
        self.auditor.as_ref().ok_or_else(|| Error::Unavailable("the audit log is not running".into()))
    }

    /// Record an event (no-op without an audit log). Returns once it is queued.
    pub async fn audit(&self, event: AuditEvent) {
        if let Some(a) = &self.auditor {
            a.record(event).await;
        }
    }

    /// The chain an admin request by `caller` naming `tenant` belongs in: the
    /// named tenant's when an operator acts on an existing tenant, else the
    /// caller's own (so a tenant-admin's probes of other names stay in its own
    /// chain, and nothing is looked up on its behalf).
    pub async fn audit_chain_for(&self, caller: &Caller, tenant: Option<&str>) -> (TenantId, String) {
        if caller.role == Role::Operator
            && let Some(name) = tenant
            && let Ok(name) = TenantName::new(name)
            && let Ok(t) = self.dir.tenant_by_name(&name).await
        {
            return (t.id, t.name.to_string());
        }
        (caller.tenant_id, caller.tenant.to_string())
    }

    // ---- grants ----

    pub async fn list_grants(&self, caller: &Caller, tenant: &str, user: &str) -> Result<Vec<Grant>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        let u = self.dir.user_by_name(t.id, &UserName::new(user)?).await?;
        self.dir.grants(t.id, u.id).await
    }

    pub async fn add_grant(&self, caller: &Caller, tenant: &str, user: &str, grant: Grant) -> Result<Vec<Grant>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageIdentities(t.id))?;
        let u = self.dir.user_by_name(t.id, &UserName::new(user)?).await?;
        self.dir.add_grant(&u, grant).await
    }

    pub async fn remove_grant(&self, caller: &Caller, tenant: &str, user: &str, grant: &Grant) -> Result<Vec<Grant>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageIdentities(t.id))?;
        let u = self.dir.user_by_name(t.id, &UserName::new(user)?).await?;
        self.dir.remove_grant(&u, grant).await
    }

    // ---- limits ----

    pub async fn tenant_limits(&self, caller: &Caller, tenant: &str) -> Result<TenantLimits> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        orbit_tenancy::tenant_limits(self.ns.meta_store(), t.id).await
    }

    /// Operator only: a tenant never sets its own limits.
    pub async fn set_tenant_limits(&self, caller: &Caller, tenant: &str, limits: TenantLimits) -> Result<TenantLimits> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, tenant).await?;
        orbit_tenancy::set_tenant_limits(self.ns.meta_store(), &t, limits).await?;
        Ok(limits)
    }

    // ---- audit ----

    pub async fn audit_settings(&self, caller: &Caller, tenant: &str) -> Result<AuditSettings> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::Audit(t.id))?;
        self.auditor()?.settings(t.id).await
    }

    pub async fn set_audit_settings(&self, caller: &Caller, tenant: &str, s: AuditSettings) -> Result<AuditSettings> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::Audit(t.id))?;
        self.auditor()?.set_settings(&t, s).await?;
        Ok(s)
    }

    /// The chains a caller may read: one named tenant's, or (no name) every
    /// chain for an operator and its own for a tenant-admin.
    async fn readable_chains(&self, caller: &Caller, tenant: Option<&str>) -> Result<Vec<TenantId>> {
        match tenant {
            Some(name) => {
                let t = self.target(caller, name).await?;
                authorize_admin(caller, AdminAction::Audit(t.id))?;
                Ok(vec![t.id])
            }
            None if caller.role == Role::Operator => self.auditor()?.chains().await,
            None => {
                authorize_admin(caller, AdminAction::Audit(caller.tenant_id))?;
                Ok(vec![caller.tenant_id])
            }
        }
    }

    /// Records matching the query, oldest first, at most `q.limit`.
    pub async fn audit_list(&self, caller: &Caller, tenant: Option<&str>, q: AuditQuery) -> Result<Vec<AuditRecord>> {
        let chains = self.readable_chains(caller, tenant).await?;
        let auditor = self.auditor()?;
        // What was recorded before this request is readable by it.
        auditor.flush().await;
        let q = AuditQuery { limit: q.limit.clamp(1, MAX_AUDIT_LIST), ..q };
        let mut out = Vec::new();
        for c in chains {
            out.extend(list_chain(self.ns.meta_store(), c, &q).await?);
        }
        out.sort_by_key(|r| r.time_ms);
        out.truncate(q.limit);
        Ok(out)
    }

    pub async fn audit_verify(&self, caller: &Caller, tenant: Option<&str>) -> Result<Vec<ChainReport>> {
        let chains = self.readable_chains(caller, tenant).await?;
        self.auditor()?.flush().await;
        let mut out = Vec::new();
        for c in chains {
            out.push(verify_chain(self.ns.meta_store(), c).await?);
        }
        Ok(out)
    }
}
