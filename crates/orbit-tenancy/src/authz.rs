use crate::{Caller, TenantModel};
use orbit_types::{Error, Result, Role, TenantId};

/// What an admin API request wants to do, and to which tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAction {
    /// Create or delete tenants, or list all of them.
    ManageTenants,
    /// Read a tenant's settings, users, keys and buckets.
    ReadTenant(TenantId),
    /// Create or delete users and keys of a tenant.
    ManageIdentities(TenantId),
    /// Create or delete buckets of a tenant.
    ManageBuckets(TenantId),
    /// Read a tenant's audit log, verify its chain, turn data-access audit on or off.
    Audit(TenantId),
    /// Start or cancel prefetch jobs (warming the site's cache changes no configuration).
    Prefetch(TenantId),
}

/// Decide an admin request. A caller outside the target tenant is refused
/// the same way whether the tenant exists or not, so nothing leaks.
pub fn authorize_admin(caller: &Caller, action: AdminAction) -> Result<()> {
    let own = |t: TenantId| t == caller.tenant_id;
    let allowed = match (caller.role, action) {
        (Role::Operator, _) => true,
        (Role::TenantAdmin, AdminAction::ReadTenant(t) | AdminAction::Audit(t) | AdminAction::Prefetch(t)) => own(t),
        // In the admin-only model the operator alone manages users, keys and buckets.
        (Role::TenantAdmin, AdminAction::ManageIdentities(t) | AdminAction::ManageBuckets(t)) => {
            own(t) && caller.model == TenantModel::SelfManaged
        }
        _ => false,
    };
    if allowed { Ok(()) } else { Err(Error::AccessDenied) }
}

/// Whether `caller` may give a user `role`: operators only in the system
/// tenant; tenant-admins anything but operator.
pub fn may_grant(caller: &Caller, role: Role, target_is_system: bool) -> bool {
    match role {
        Role::Operator => caller.role == Role::Operator && target_is_system,
        _ => matches!(caller.role, Role::Operator | Role::TenantAdmin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit_types::{TenantName, UserId, UserName};

    fn caller(role: Role, model: TenantModel) -> Caller {
        Caller {
            tenant_id: TenantId::generate(),
            tenant: TenantName::new("acme").unwrap(),
            model,
            user_id: UserId::generate(),
            user: UserName::new("u").unwrap(),
            role,
            access_key_id: "OKTEST".into(),
            grants: Default::default(),
        }
    }

    #[test]
    fn operator_may_do_everything() {
        let c = caller(Role::Operator, TenantModel::AdminOnly);
        let other = TenantId::generate();
        for a in [
            AdminAction::ManageTenants,
            AdminAction::ReadTenant(other),
            AdminAction::ManageIdentities(other),
            AdminAction::ManageBuckets(other),
        ] {
            assert!(authorize_admin(&c, a).is_ok());
        }
    }

    #[test]
    fn tenant_admin_stays_in_its_tenant_and_model() {
        let managed = caller(Role::TenantAdmin, TenantModel::SelfManaged);
        let own = managed.tenant_id;
        let other = TenantId::generate();
        assert!(authorize_admin(&managed, AdminAction::ManageIdentities(own)).is_ok());
        assert!(authorize_admin(&managed, AdminAction::ReadTenant(own)).is_ok());
        assert!(authorize_admin(&managed, AdminAction::ManageIdentities(other)).is_err());
        assert!(authorize_admin(&managed, AdminAction::ReadTenant(other)).is_err());
        assert!(authorize_admin(&managed, AdminAction::ManageTenants).is_err());

        let admin_only = caller(Role::TenantAdmin, TenantModel::AdminOnly);
        assert!(authorize_admin(&admin_only, AdminAction::ManageIdentities(admin_only.tenant_id)).is_err());
        assert!(authorize_admin(&admin_only, AdminAction::ReadTenant(admin_only.tenant_id)).is_ok());
        assert!(authorize_admin(&admin_only, AdminAction::ManageBuckets(admin_only.tenant_id)).is_err());
        assert!(authorize_admin(&admin_only, AdminAction::Prefetch(admin_only.tenant_id)).is_ok());
    }

    #[test]
    fn data_roles_have_no_admin_rights() {
        for role in [Role::ReadWrite, Role::ReadOnly] {
            let c = caller(role, TenantModel::SelfManaged);
            assert!(authorize_admin(&c, AdminAction::ReadTenant(c.tenant_id)).is_err());
            assert!(authorize_admin(&c, AdminAction::ManageBuckets(c.tenant_id)).is_err());
        }
    }

    #[test]
    fn only_operators_grant_operator() {
        let op = caller(Role::Operator, TenantModel::AdminOnly);
        let ta = caller(Role::TenantAdmin, TenantModel::SelfManaged);
        assert!(may_grant(&op, Role::Operator, true));
        assert!(!may_grant(&op, Role::Operator, false));
        assert!(!may_grant(&ta, Role::Operator, true));
        assert!(may_grant(&ta, Role::ReadOnly, false));
    }

    /// Every role, model, action and target (own tenant or another) against the rules.
    #[test]
    fn authz_matrix() {
        for role in Role::ALL {
            for model in [TenantModel::AdminOnly, TenantModel::SelfManaged] {
                let c = caller(role, model);
                for own in [true, false] {
                    let t = if own { c.tenant_id } else { TenantId::generate() };
                    for action in [
                        AdminAction::ManageTenants,
                        AdminAction::ReadTenant(t),
                        AdminAction::ManageIdentities(t),
                        AdminAction::ManageBuckets(t),
                        AdminAction::Audit(t),
                        AdminAction::Prefetch(t),
                    ] {
                        let expected = match (role, action) {
                            (Role::Operator, _) => true,
                            (Role::TenantAdmin, AdminAction::ManageTenants) => false,
                            (Role::TenantAdmin, AdminAction::ManageIdentities(_) | AdminAction::ManageBuckets(_)) => {
                                own && model == TenantModel::SelfManaged
                            }
                            (Role::TenantAdmin, _) => own,
                            (Role::ReadWrite | Role::ReadOnly, _) => false,
                        };
                        assert_eq!(
                            authorize_admin(&c, action).is_ok(),
                            expected,
                            "{role} {model} {action:?} own={own}"
                        );
                    }
                }
            }
        }
    }
}
