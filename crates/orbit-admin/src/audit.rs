//! Admin routes of the audit log, tenant limits and per-user grants, and the
//! middleware that records every admin action and authentication failure.

use crate::api::*;
use crate::error::ApiError;
use crate::routes::{ApiResult, Body, Query};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Json, Router};
use orbit_core::{AdminService, AuditEvent, AuditQuery, AuditSettings, ChainReport};
use orbit_tenancy::{Access, Caller, Grant, TenantLimits};
use orbit_types::{Error, TenantName};

pub(crate) fn routes() -> Router<AdminService> {
    Router::new()
        .route("/admin/v1/audit", get(audit_list))
        .route("/admin/v1/audit/verify", get(audit_verify))
        .route("/admin/v1/tenants/{tenant}/audit-settings", get(get_audit_settings).put(put_audit_settings))
        .route("/admin/v1/tenants/{tenant}/limits", get(get_limits).put(put_limits))
        .route("/admin/v1/tenants/{tenant}/users/{user}/grants", get(list_grants).post(add_grant).delete(remove_grant))
}

/// A stable action name for a route, so `audit list --action` can filter.
fn action_name(method: &Method, route: &str) -> String {
    let m = method.as_str();
    let name = match (m, route) {
        ("POST", "/admin/v1/tenants") => "tenant.create",
        ("GET", "/admin/v1/tenants") => "tenant.list",
        ("GET", "/admin/v1/tenants/{tenant}") => "tenant.show",
        ("DELETE", "/admin/v1/tenants/{tenant}") => "tenant.delete",
        ("PUT", "/admin/v1/tenants/{tenant}/cache-share") => "tenant.cache-share",
        ("GET", "/admin/v1/tenants/{tenant}/limits") => "tenant.limits.show",
        ("PUT", "/admin/v1/tenants/{tenant}/limits") => "tenant.limits.set",
        ("GET", "/admin/v1/tenants/{tenant}/audit-settings") => "audit.settings.show",
        ("PUT", "/admin/v1/tenants/{tenant}/audit-settings") => "audit.settings.set",
        ("POST", "/admin/v1/tenants/{tenant}/users") => "user.create",
        ("GET", "/admin/v1/tenants/{tenant}/users") => "user.list",
        ("DELETE", "/admin/v1/tenants/{tenant}/users/{user}") => "user.delete",
        ("POST", "/admin/v1/tenants/{tenant}/users/{user}/keys") => "key.create",
        ("GET", "/admin/v1/tenants/{tenant}/keys") => "key.list",
        ("DELETE", "/admin/v1/tenants/{tenant}/keys/{key}") => "key.delete",
        ("GET", "/admin/v1/tenants/{tenant}/users/{user}/grants") => "grant.list",
        ("POST", "/admin/v1/tenants/{tenant}/users/{user}/grants") => "grant.add",
        ("DELETE", "/admin/v1/tenants/{tenant}/users/{user}/grants") => "grant.remove",
        ("POST", "/admin/v1/tenants/{tenant}/buckets") => "bucket.create",
        ("GET", "/admin/v1/tenants/{tenant}/buckets") => "bucket.list",
        ("DELETE", "/admin/v1/tenants/{tenant}/buckets/{bucket}") => "bucket.delete",
        ("PUT", "/admin/v1/tenants/{tenant}/buckets/{bucket}/cache") => "bucket.cache",
        ("POST", "/admin/v1/tenants/{tenant}/prefetch") => "prefetch.start",
        ("DELETE", "/admin/v1/tenants/{tenant}/prefetch/{id}") => "prefetch.cancel",
        ("GET", "/admin/v1/audit") => "audit.list",
        ("GET", "/admin/v1/audit/verify") => "audit.verify",
        _ => return format!("admin.{} {route}", m.to_lowercase()),
    };
    name.to_owned()
}

fn outcome(status: StatusCode) -> String {
    match status.as_u16() {
        200..=299 => "ok".into(),
        403 => "denied".into(),
        404 => "not-found".into(),
        409 => "conflict".into(),
        s => format!("http-{s}"),
    }
}

/// Record every admin action that changes something (whatever its outcome)
/// and every refused one (reads included). Successful reads are not actions.
pub(crate) async fn record_action(
    State(svc): State<AdminService>,
    route: Option<MatchedPath>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let mut target = req.uri().path().to_owned();
    let caller = req.extensions().get::<Caller>().cloned();
    // The body says what was created (a user's name and role, a grant); admin
    // bodies are small and carry no secrets. It was buffered by authentication.
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && !fields.is_empty()
    {
        target = format!("{target} {}", serde_json::Value::Object(fields));
    }
    if let Some(q) = parts.uri.query() {
        target = format!("{target}?{q}");
    }
    let path = parts.uri.path().to_owned();
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let resp = next.run(req).await;
    let status = resp.status();
    if method == Method::GET && status.is_success() {
        return resp;
    }
    let Some(caller) = caller else { return resp };
    let route = route.as_ref().map_or("", |r| r.as_str());
    // `/admin/v1/tenants/{tenant}/...`: the tenant the action concerns.
    let named = path.strip_prefix("/admin/v1/tenants/").map(|rest| rest.split('/').next().unwrap_or(""));
    let (chain, tenant) = svc.audit_chain_for(&caller, named).await;
    let mut ev = AuditEvent::by(&caller, action_name(&method, route), target, outcome(status));
    ev.chain = Some(chain);
    ev.tenant = tenant;
    svc.audit(ev).await;
    resp
}

/// Record a request that failed authentication, in the chain of the key's
/// tenant when the key exists, else in the system tenant's.
pub(crate) async fn auth_failure(svc: &AdminService, access_key: &str, target: String, outcome: &str) {
    let key: String = access_key.chars().take(128).collect();
    let ev = match svc.directory().authenticate(&key).await {
        Ok((caller, _)) if !key.is_empty() => AuditEvent::by(&caller, "auth.admin", target, outcome),
        _ => AuditEvent {
            chain: None,
            tenant: TenantName::system().to_string(),
            actor: String::new(),
            access_key: key,
            action: "auth.admin".into(),
            target,
            outcome: outcome.into(),
        },
    };
    svc.audit(ev).await;
}

fn record_view(r: orbit_core::AuditRecord) -> AuditRecord {
    AuditRecord {
        tenant: r.tenant,
        seq: r.seq,
        time_ms: r.time_ms,
        actor: r.actor,
        access_key: r.access_key,
        action: r.action,
        target: r.target,
        outcome: r.outcome,
        prev_hash: r.prev_hash,
        hash: r.hash,
    }
}

pub fn verdicts(reports: Vec<ChainReport>) -> AuditVerification {
    let chains: Vec<ChainVerdict> = reports
        .into_iter()
        .map(|r| ChainVerdict {
            tenant: if r.tenant.is_empty() { r.chain.to_string() } else { r.tenant },
            records: r.records,
            ok: r.fault.is_none(),
            bad_seq: r.fault.as_ref().map(|f| f.seq),
            reason: r.fault.map(|f| f.reason),
        })
        .collect();
    AuditVerification { ok: chains.iter().all(|c| c.ok), chains }
}

#[utoipa::path(get, path = "/admin/v1/audit", params(AuditListQuery),
    responses((status = 200, body = Vec<AuditRecord>), (status = 403, body = ErrorBody)))]
pub(crate) async fn audit_list(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Query(q): Query<AuditListQuery>,
) -> ApiResult<Json<Vec<AuditRecord>>> {
    let query = AuditQuery {
        user: q.user,
        action: q.action,
        since_ms: q.since_ms,
        until_ms: q.until_ms,
        limit: q.limit.unwrap_or(1000),
    };
    let records = svc.audit_list(&c, q.tenant.as_deref(), query).await?;
    Ok(Json(records.into_iter().map(record_view).collect()))
}

#[utoipa::path(get, path = "/admin/v1/audit/verify", params(AuditVerifyQuery),
    responses((status = 200, body = AuditVerification, description = "the verdict; `ok` is false when any chain was tampered with"), (status = 403, body = ErrorBody)))]
pub(crate) async fn audit_verify(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Query(q): Query<AuditVerifyQuery>,
) -> ApiResult<Json<AuditVerification>> {
    Ok(Json(verdicts(svc.audit_verify(&c, q.tenant.as_deref()).await?)))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/audit-settings", params(("tenant" = String, Path)),
    responses((status = 200, body = AuditSettingsBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn get_audit_settings(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<AuditSettingsBody>> {
    let s = svc.audit_settings(&c, &tenant).await?;
    Ok(Json(AuditSettingsBody { data_access: s.data_access }))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/audit-settings", params(("tenant" = String, Path)), request_body = AuditSettingsBody,
    responses((status = 200, body = AuditSettingsBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn put_audit_settings(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<AuditSettingsBody>,
) -> ApiResult<Json<AuditSettingsBody>> {
    let s = svc.set_audit_settings(&c, &tenant, AuditSettings { data_access: body.data_access }).await?;
    Ok(Json(AuditSettingsBody { data_access: s.data_access }))
}

fn limits_view(l: TenantLimits) -> Limits {
    Limits { max_users: l.max_users, max_keys_per_user: l.max_keys_per_user, max_buckets: l.max_buckets }
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/limits", params(("tenant" = String, Path)),
    responses((status = 200, body = Limits), (status = 403, body = ErrorBody)))]
pub(crate) async fn get_limits(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Limits>> {
    Ok(Json(limits_view(svc.tenant_limits(&c, &tenant).await?)))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/limits", params(("tenant" = String, Path)), request_body = Limits,
    responses((status = 200, body = Limits), (status = 403, body = ErrorBody, description = "only the operator sets limits")))]
pub(crate) async fn put_limits(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<Limits>,
) -> ApiResult<Json<Limits>> {
    let l = TenantLimits {
        max_users: body.max_users,
        max_keys_per_user: body.max_keys_per_user,
        max_buckets: body.max_buckets,
    };
    Ok(Json(limits_view(svc.set_tenant_limits(&c, &tenant, l).await?)))
}

fn grant_of(body: GrantBody) -> Result<Grant, ApiError> {
    let access: Access = body.access.parse().map_err(|e| ApiError::from(Error::InvalidArgument(e)))?;
    Ok(Grant { bucket: body.bucket, prefix: body.prefix.unwrap_or_default(), access })
}

fn grant_view(g: Grant) -> GrantBody {
    GrantBody { bucket: g.bucket, prefix: Some(g.prefix), access: g.access.to_string() }
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/users/{user}/grants", params(("tenant" = String, Path), ("user" = String, Path)),
    responses((status = 200, body = Vec<GrantBody>, description = "empty: the user has its role's access to every bucket of the tenant"), (status = 404, body = ErrorBody)))]
pub(crate) async fn list_grants(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, user)): Path<(String, String)>,
) -> ApiResult<Json<Vec<GrantBody>>> {
    Ok(Json(svc.list_grants(&c, &tenant, &user).await?.into_iter().map(grant_view).collect()))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users/{user}/grants", params(("tenant" = String, Path), ("user" = String, Path)),
    request_body = GrantBody, responses((status = 200, body = Vec<GrantBody>, description = "the user's grants"), (status = 404, body = ErrorBody)))]
pub(crate) async fn add_grant(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, user)): Path<(String, String)>,
    Body(body): Body<GrantBody>,
) -> ApiResult<Json<Vec<GrantBody>>> {
    let grants = svc.add_grant(&c, &tenant, &user, grant_of(body)?).await?;
    Ok(Json(grants.into_iter().map(grant_view).collect()))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/users/{user}/grants", params(("tenant" = String, Path), ("user" = String, Path), GrantBody),
    responses((status = 200, body = Vec<GrantBody>, description = "the user's remaining grants"), (status = 404, body = ErrorBody)))]
pub(crate) async fn remove_grant(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, user)): Path<(String, String)>,
    Query(q): Query<GrantBody>,
) -> ApiResult<Json<Vec<GrantBody>>> {
    let grants = svc.remove_grant(&c, &tenant, &user, &grant_of(q)?).await?;
    Ok(Json(grants.into_iter().map(grant_view).collect()))
}
