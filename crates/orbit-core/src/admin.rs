//! The operations of the admin API, authorised: tenants, users, keys and
//! buckets. The HTTP layer only translates; every rule lives here.

use crate::Namespace;
use crate::prefetch::{PrefetchJob, Prefetcher, Selection};
use crate::records::BucketRecord;
use orbit_tenancy::{
    AccessKeyRecord, AdminAction, Caller, Directory, TenantModel, TenantRecord, UserRecord, authorize_admin, may_grant,
};
use orbit_types::{BucketName, Error, Resource, Result, Role, TenantName, UserName};

mod qos;

#[derive(Clone)]
pub struct AdminService {
    pub(crate) dir: Directory,
    pub(crate) ns: Namespace,
    prefetcher: Prefetcher,
    /// The audit log (see `admin_audit.rs`); None only in tests that do not need one.
    pub(crate) auditor: Option<crate::Auditor>,
}

impl AdminService {
    pub fn new(dir: Directory, ns: Namespace, prefetcher: Prefetcher) -> Self {
        Self { dir, ns, prefetcher, auditor: None }
    }

    /// Record admin actions and answer audit queries with this log.
    pub fn with_auditor(mut self, auditor: crate::Auditor) -> Self {
        self.auditor = Some(auditor);
        self
    }

    pub fn directory(&self) -> &Directory {
        &self.dir
    }

    pub(crate) fn ns(&self) -> &Namespace {
        &self.ns
    }

    /// Resolve a tenant named in a request. Anyone but an operator may only
    /// name their own tenant; any other name is refused without a lookup,
    /// so the answer is the same whether that tenant exists or not.
    pub(crate) async fn target(&self, caller: &Caller, name: &str) -> Result<TenantRecord> {
        if caller.role != Role::Operator && name != caller.tenant.as_str() {
            return Err(Error::AccessDenied);
        }
        let name = TenantName::new(name)?;
        self.dir.tenant_by_name(&name).await
    }

    pub async fn create_tenant(&self, caller: &Caller, name: &str, model: TenantModel) -> Result<TenantRecord> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let name = TenantName::new(name)?;
        if name.is_system() {
            return Err(Error::AlreadyExists(Resource::Tenant));
        }
        self.dir.create_tenant(&name, model).await
    }

    /// Reserve (or release) RAM of the site's chunk cache for one tenant.
    pub async fn set_cache_share(&self, caller: &Caller, tenant: &str, bytes: Option<u64>) -> Result<TenantRecord> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, tenant).await?;
        if bytes == Some(0) {
            return Err(Error::InvalidArgument("a cache share must be positive, or null to remove it".into()));
        }
        let rec = self.dir.set_cache_share(&t, bytes).await?;
        self.ns.apply_cache_share(rec.id, rec.cache_share_bytes).await?;
        Ok(rec)
    }

    pub async fn list_tenants(&self, caller: &Caller) -> Result<Vec<TenantRecord>> {
        if authorize_admin(caller, AdminAction::ManageTenants).is_ok() {
            return self.dir.list_tenants().await;
        }
        authorize_admin(caller, AdminAction::ReadTenant(caller.tenant_id))?;
        Ok(vec![self.dir.tenant_by_id(caller.tenant_id).await?])
    }

    pub async fn get_tenant(&self, caller: &Caller, name: &str) -> Result<TenantRecord> {
        let t = self.target(caller, name).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        Ok(t)
    }

    /// Delete a tenant. One that still owns buckets is refused unless
    /// `force`, which deletes every bucket and object first.
    pub async fn delete_tenant(&self, caller: &Caller, name: &str, force: bool) -> Result<()> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, name).await?;
        if t.name.is_system() {
            return Err(Error::InvalidRequest("the system tenant cannot be deleted".into()));
        }
        if self.ns.tenant_has_buckets(t.id).await? {
            if !force {
                return Err(Error::NotEmpty(Resource::Tenant));
            }
            for b in self.ns.list_buckets_of(t.id).await? {
                match self.ns.delete_bucket_in(t.id, b.name.as_str(), true).await {
                    Ok(()) | Err(Error::NotFound(Resource::Bucket)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.dir.delete_tenant(&t).await?;
        // Its usage counters and quotas go too; metering records stay for billing.
        crate::usage::accounting::drop_tenant(&**self.ns.meta(), t.id).await?;
        // Its reserved cache, if any, goes with it.
        self.ns.apply_cache_share(t.id, None).await
    }

    pub async fn create_user(&self, caller: &Caller, tenant: &str, name: &str, role: Role) -> Result<UserRecord> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageIdentities(t.id))?;
        if !may_grant(caller, role, t.name.is_system()) {
            return Err(if role == Role::Operator && caller.role == Role::Operator {
                Error::InvalidArgument("the operator role exists only in the system tenant".into())
            } else {
                Error::AccessDenied
            });
        }
        if caller.role != Role::Operator {
            let limits = orbit_tenancy::tenant_limits(self.ns.meta_store(), t.id).await?;
            if limits.max_users.is_some() {
                let users = self.dir.list_users(t.id).await?.len();
                orbit_tenancy::check_limit(limits.max_users, users, "users", t.name.as_str())?;
            }
        }
        self.dir.create_user(&t, &UserName::new(name)?, role).await
    }

    pub async fn list_users(&self, caller: &Caller, tenant: &str) -> Result<Vec<UserRecord>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        self.dir.list_users(t.id).await
    }

    pub async fn delete_user(&self, caller: &Caller, tenant: &str, name: &str) -> Result<()> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageIdentities(t.id))?;
        let user = self.dir.user_by_name(t.id, &UserName::new(name)?).await?;
        if user.id == caller.user_id {
            return Err(Error::InvalidRequest("you cannot delete the user you are signed in as".into()));
        }
        if user.role == Role::Operator && caller.role != Role::Operator {
            return Err(Error::AccessDenied);
        }
        self.dir.delete_user(&user).await
    }

    pub async fn create_key(
        &self,
        caller: &Caller,
        tenant: &str,
        user: &str,
    ) -> Result<(AccessKeyRecord, String, UserRecord)> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageIdentities(t.id))?;
        let user = self.dir.user_by_name(t.id, &UserName::new(user)?).await?;
        if caller.role != Role::Operator {
            let limits = orbit_tenancy::tenant_limits(self.ns.meta_store(), t.id).await?;
            if limits.max_keys_per_user.is_some() {
                let keys = self.dir.list_keys(t.id, Some(user.id)).await?.len();
                orbit_tenancy::check_limit(limits.max_keys_per_user, keys, "access keys per user", t.name.as_str())?;
            }
        }
        let (rec, secret) = self.dir.create_key(&user, None).await?;
        Ok((rec, secret, user))
    }

    /// Keys of a tenant (or of one user), with the user record of each.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        tenant: &str,
        user: Option<&str>,
    ) -> Result<Vec<(AccessKeyRecord, UserRecord)>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        let only = match user {
            Some(u) => Some(self.dir.user_by_name(t.id, &UserName::new(u)?).await?.id),
            None => None,
        };
        let users: std::collections::HashMap<_, _> =
            self.dir.list_users(t.id).await?.into_iter().map(|u| (u.id, u)).collect();
        Ok(self
            .dir
            .list_keys(t.id, only)
            .await?
            .into_iter()
            .filter_map(|k| users.get(&k.user_id).cloned().map(|u| (k, u)))
            .collect())
    }

    pub async fn delete_key(&self, caller: &Caller, tenant: &str, access_key_id: &str) -> Result<()> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageIdentities(t.id))?;
        if access_key_id == caller.access_key_id {
            return Err(Error::InvalidRequest("you cannot delete the key you are signed in with".into()));
        }
        self.dir.delete_key(t.id, access_key_id).await
    }

    /// Create a bucket of a tenant on a named backend (`default` when None),
    /// homed at `home` (this site when None; another site must be a
    /// configured peer).
    pub async fn create_bucket(
        &self,
        caller: &Caller,
        tenant: &str,
        name: &str,
        backend: Option<&str>,
        home: Option<&str>,
    ) -> Result<BucketRecord> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageBuckets(t.id))?;
        let backend = backend.unwrap_or(orbit_backend::BackendSet::DEFAULT);
        let home = home.unwrap_or(self.ns.site()).to_owned();
        let known = match self.ns.bucket_directory() {
            Some(d) => d.knows_site(&home),
            None => home == self.ns.site(),
        };
        if !known {
            return Err(Error::InvalidArgument(format!(
                "home site `{home}` is neither this site (`{}`) nor a configured peer",
                self.ns.site()
            )));
        }
        if caller.role != Role::Operator {
            self.ns.check_bucket_limit(t.id, t.name.as_str()).await?;
        }
        let name = BucketName::new(name)?;
        if home == self.ns.site() {
            self.ns.create_bucket_in(t.id, &t.name, &name, backend).await
        } else {
            self.ns.create_bucket_homed(t.id, &t.name, &name, backend, &home).await
        }
    }

    /// Create a bucket of a tenant over an existing location of a backend
    /// (`<prefix>K` holds key K). Only an operator may: a mapping reaches
    /// whatever the location holds, whoever wrote it.
    pub async fn create_mapped_bucket(
        &self,
        caller: &Caller,
        tenant: &str,
        name: &str,
        backend: Option<&str>,
        prefix: &str,
        mode: Option<crate::layout::Consistency>,
    ) -> Result<BucketRecord> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, tenant).await?;
        let backend = backend.unwrap_or(orbit_backend::BackendSet::DEFAULT);
        let mode = mode.unwrap_or(crate::layout::Consistency::Validate);
        self.ns.create_mapped_bucket_in(t.id, &t.name, &BucketName::new(name)?, backend, prefix, mode).await
    }

    /// Change a mapped bucket's consistency mode (how stale its reads may be).
    pub async fn set_bucket_mode(
        &self,
        caller: &Caller,
        tenant: &str,
        name: &str,
        mode: crate::layout::Consistency,
    ) -> Result<BucketRecord> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageBuckets(t.id))?;
        self.ns.set_mapped_mode(t.id, name, mode).await
    }

    pub async fn list_buckets(&self, caller: &Caller, tenant: &str) -> Result<Vec<BucketRecord>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        self.ns.list_buckets_of(t.id).await
    }

    pub async fn start_prefetch(
        &self,
        caller: &Caller,
        tenant: &str,
        bucket: &str,
        selection: Selection,
    ) -> Result<PrefetchJob> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::Prefetch(t.id))?;
        self.prefetcher.start(t.id, bucket, selection).await
    }

    pub async fn prefetch_job(&self, caller: &Caller, tenant: &str, id: &str) -> Result<PrefetchJob> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        self.prefetcher.get(t.id, id).await
    }

    pub async fn prefetch_jobs(&self, caller: &Caller, tenant: &str) -> Result<Vec<PrefetchJob>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        self.prefetcher.list(t.id).await
    }

    pub async fn cancel_prefetch(&self, caller: &Caller, tenant: &str, id: &str) -> Result<PrefetchJob> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::Prefetch(t.id))?;
        self.prefetcher.cancel(t.id, id).await
    }

    pub async fn set_cache_policy(
        &self,
        caller: &Caller,
        tenant: &str,
        name: &str,
        policy: crate::records::CachePolicy,
    ) -> Result<BucketRecord> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageBuckets(t.id))?;
        self.ns.set_cache_policy(t.id, name, policy).await
    }

    /// Pin a prefix of a bucket in the site's pinned tier and start a
    /// prefetch job that fills it. Pinned space is the site's, so only the
    /// operator pins.
    pub async fn pin_prefix(
        &self,
        caller: &Caller,
        tenant: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<(BucketRecord, PrefetchJob)> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, tenant).await?;
        let rec = self.ns.pin_prefix(t.id, bucket, prefix).await?;
        let job = self.prefetcher.start(t.id, bucket, Selection::Prefix(prefix.to_owned())).await?;
        Ok((rec, job))
    }

    pub async fn unpin_prefix(
        &self,
        caller: &Caller,
        tenant: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<BucketRecord> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, tenant).await?;
        self.ns.unpin_prefix(t.id, bucket, prefix).await
    }

    /// A tenant's chunk-cache figures on this site (its own only).
    pub async fn cache_figures(
        &self,
        caller: &Caller,
        tenant: &str,
    ) -> Result<(TenantRecord, orbit_cache::OwnerFigures)> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        let figures = self.ns.cache().map(|c| c.figures(&t.id.to_string())).unwrap_or_default();
        Ok((t, figures))
    }

    pub async fn delete_bucket(&self, caller: &Caller, tenant: &str, name: &str, force: bool) -> Result<()> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ManageBuckets(t.id))?;
        self.ns.delete_bucket_in(t.id, name, force).await
    }
}
