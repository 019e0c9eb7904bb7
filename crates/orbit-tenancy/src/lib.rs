//! Tenancy: tenants, their users, access keys and roles, and the rules of
//! who may do what. Secrets are sealed at rest with the site's master key.

mod authz;
mod directory;
mod grants;
mod limits;
mod model;
mod qos;
mod secrets;

pub use authz::{AdminAction, authorize_admin, may_grant};
pub use directory::{Directory, DirectoryRefresh, meta_error};
pub use grants::{Access, Grant, Grants, MAX_GRANTS_PER_USER};
pub use limits::{TenantLimits, check_limit, set_tenant_limits, tenant_limits};
pub use model::{AccessKeyRecord, Caller, TenantModel, TenantRecord, UserRecord};
pub use qos::{BytePacer, DEFAULT_BURST_SECONDS, Direction, Qos, QosLimits, QosScope, retry_after_secs};
pub use secrets::{MasterKey, generate_access_key_id, generate_secret};
