//! The admin HTTP routes. Each handler authorises through the core's
//! `AdminService` and only translates between JSON and core types.

use crate::api::*;
use crate::error::ApiError;
use crate::signing;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use http_body_util::BodyExt;
use orbit_core::{AdminService, BucketRecord};
use orbit_tenancy::{AccessKeyRecord, Caller, TenantModel, TenantRecord, UserRecord};
use orbit_types::{Error, Role};
use utoipa::OpenApi;

/// Admin request bodies are small JSON documents.
const MAX_BODY: usize = 1024 * 1024;

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// A JSON body whose rejections are admin API errors (JSON, 400), not the
/// framework's plain-text replies.
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e) => Err(ApiError(StatusCode::BAD_REQUEST, "InvalidArgument", json_rejection_message(&e))),
        }
    }
}

fn json_rejection_message(e: &JsonRejection) -> String {
    match e {
        JsonRejection::MissingJsonContentType(_) => "expected a JSON body with Content-Type: application/json".into(),
        other => format!("invalid JSON body: {}", other.body_text()),
    }
}

/// Query parameters whose rejections are admin API errors.
pub(crate) struct Query<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(ApiError(StatusCode::BAD_REQUEST, "InvalidArgument", query_rejection_message(&e))),
        }
    }
}

fn query_rejection_message(e: &QueryRejection) -> String {
    format!("invalid query string: {}", e.body_text())
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "NotFound", "no such admin API route".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "this route does not take that method".into())
}

fn tenant_view(t: TenantRecord) -> Tenant {
    Tenant {
        name: t.name.to_string(),
        model: t.model.to_string(),
        cache_share_bytes: t.cache_share_bytes,
        created_ms: t.created_ms,
    }
}

fn user_view(tenant: &str, u: UserRecord) -> User {
    User { tenant: tenant.to_owned(), name: u.name.to_string(), role: u.role.to_string(), created_ms: u.created_ms }
}

fn key_view(tenant: &str, k: AccessKeyRecord, u: &UserRecord) -> AccessKey {
    AccessKey {
        access_key_id: k.access_key_id,
        tenant: tenant.to_owned(),
        user: u.name.to_string(),
        created_ms: k.created_ms,
    }
}

fn job_view(tenant: &str, j: orbit_core::PrefetchJob) -> PrefetchJob {
    let (prefix, manifest_keys) = match j.selection {
        orbit_core::Selection::Prefix(p) => (Some(p), None),
        orbit_core::Selection::Keys(k) => (None, Some(k.len() as u64)),
    };
    let state = match j.state {
        orbit_core::JobState::Running => "running",
        orbit_core::JobState::Done => "done",
        orbit_core::JobState::Failed => "failed",
        orbit_core::JobState::Cancelled => "cancelled",
    };
    PrefetchJob {
        id: j.id,
        tenant: tenant.to_owned(),
        bucket: j.bucket,
        prefix,
        manifest_keys,
        state: state.into(),
        objects_done: j.objects_done,
        objects_total: j.objects_total,
        bytes_done: j.bytes_done,
        bytes_total: j.bytes_total,
        errors: j.errors,
        created_ms: j.created_ms,
        updated_ms: j.updated_ms,
        message: j.message,
    }
}

fn cache_view(p: orbit_core::CachePolicy) -> BucketCache {
    BucketCache {
        admission: if p.admit_on_second_miss { "second-miss" } else { "first-miss" }.into(),
        ttl_seconds: p.ttl_secs,
    }
}

fn bucket_view(tenant: &str, b: BucketRecord) -> Bucket {
    Bucket {
        tenant: tenant.to_owned(),
        name: b.name.to_string(),
        backend: b.backend,
        cache: cache_view(b.cache),
        pinned_prefixes: b.pinned_prefixes,
        home_site: b.home_site,
        created_ms: b.created_ms,
        layout: if b.mapped.is_some() { "mapped" } else { "blob" }.into(),
        location_prefix: b.mapped.as_ref().map(|m| m.prefix.clone()),
        mode: b.mapped.as_ref().map(|m| m.mode.to_string()),
    }
}

/// Verify the request signature and attach the caller.
async fn authenticate(State(svc): State<AdminService>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let target = format!("{} {}", parts.method, parts.uri.path());
    let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        crate::audit::auth_failure(&svc, "", target, "missing-authorization").await;
        return ApiError::unauthorized("missing Authorization header").into_response();
    };
    let Some(parsed) = signing::parse(header) else {
        crate::audit::auth_failure(&svc, "", target, "malformed-authorization").await;
        return ApiError::unauthorized("malformed Authorization header").into_response();
    };
    let now = orbit_types::now_ms() / 1000;
    if (now - parsed.timestamp).abs() > signing::MAX_SKEW_SECS {
        crate::audit::auth_failure(&svc, &parsed.access_key, target, "clock-skew").await;
        return ApiError::unauthorized("request timestamp is too far from the server's clock").into_response();
    }
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return ApiError(StatusCode::PAYLOAD_TOO_LARGE, "InvalidArgument", "request body too large".into())
                .into_response();
        }
    };
    let path_and_query = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
    let caller = match svc.directory().authenticate(&parsed.access_key).await {
        Ok((caller, secret)) if signing::verify(&secret, parts.method.as_str(), path_and_query, &parsed, &bytes) => {
            caller
        }
        Ok(_) | Err(Error::NotFound(_)) => {
            crate::audit::auth_failure(&svc, &parsed.access_key, target, "bad-signature-or-key").await;
            return ApiError::unauthorized("invalid credentials or signature").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut req = Request::from_parts(parts, axum::body::Body::from(bytes));
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Renders the site's metrics in the Prometheus text format.
pub type MetricsRenderer = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// The admin API. `/health`, `/metrics` and the OpenAPI document need no
/// signature (metrics carry no tenant names); everything else does.
pub fn router(svc: AdminService, metrics: MetricsRenderer) -> Router {
    let api = Router::new()
        .route("/admin/v1/whoami", get(whoami))
        .route("/admin/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/admin/v1/tenants/{tenant}", get(get_tenant).delete(delete_tenant))
        .route("/admin/v1/tenants/{tenant}/cache-share", axum::routing::put(set_cache_share))
        .route("/admin/v1/tenants/{tenant}/users", post(create_user).get(list_users))
        .route("/admin/v1/tenants/{tenant}/users/{user}", delete(delete_user))
        .route("/admin/v1/tenants/{tenant}/users/{user}/keys", post(create_key))
        .route("/admin/v1/tenants/{tenant}/keys", get(list_keys))
        .route("/admin/v1/tenants/{tenant}/keys/{key}", delete(delete_key))
        .route("/admin/v1/tenants/{tenant}/buckets", post(create_bucket).get(list_buckets))
        .route("/admin/v1/tenants/{tenant}/buckets/{bucket}", delete(delete_bucket))
        .route("/admin/v1/tenants/{tenant}/buckets/{bucket}/cache", axum::routing::put(set_bucket_cache))
        .route("/admin/v1/tenants/{tenant}/buckets/{bucket}/pins", post(pin_prefix).delete(unpin_prefix))
        .route("/admin/v1/tenants/{tenant}/cache", get(tenant_cache))
        .route("/admin/v1/tenants/{tenant}/buckets/{bucket}/mode", axum::routing::put(set_bucket_mode))
        .route("/admin/v1/tenants/{tenant}/prefetch", post(start_prefetch).get(list_prefetch))
        .route("/admin/v1/tenants/{tenant}/prefetch/{id}", get(get_prefetch).delete(cancel_prefetch))
        .route(
            "/admin/v1/tenants/{tenant}/qos",
            get(crate::qos::get_tenant_qos).put(crate::qos::set_tenant_qos).delete(crate::qos::clear_tenant_qos),
        )
        .route(
            "/admin/v1/tenants/{tenant}/buckets/{bucket}/qos",
            get(crate::qos::get_bucket_qos).put(crate::qos::set_bucket_qos).delete(crate::qos::clear_bucket_qos),
        )
        .merge(crate::usage::routes())
        .merge(crate::sites::routes())
        .merge(crate::audit::routes())
        .merge(crate::directory::routes())
        // Innermost: a directory write at a mirroring site is refused (and recorded as such).
        .route_layer(middleware::from_fn(crate::directory::refuse_at_mirror))
        // Inside authentication, so every authenticated action is recorded with its caller.
        .route_layer(middleware::from_fn_with_state(svc.clone(), crate::audit::record_action))
        .route_layer(middleware::from_fn_with_state(svc.clone(), authenticate))
        .with_state(svc);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/admin/v1/openapi.json", get(|| async { Json(openapi_document()) }))
        .route(
            "/metrics",
            get(move || {
                let text = metrics();
                async move { ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

/// The OpenAPI document, derived from the route annotations below.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::qos::QosApiDoc::openapi());
    doc.merge(crate::usage::UsageDoc::openapi());
    doc.merge(crate::sites::SitesDoc::openapi());
    doc.merge(crate::directory::DirectoryDoc::openapi());
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Orbit admin API",
        description = "Tenants, users, access keys and buckets of an Orbit site. Requests are signed: `Authorization: ORBIT-HMAC-SHA256 Credential=<access key id>, Timestamp=<unix seconds>, Signature=<hex HMAC-SHA256 of METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nhex(SHA-256(body)) keyed by the secret>`."
    ),
    paths(
        whoami,
        create_tenant,
        list_tenants,
        get_tenant,
        delete_tenant,
        set_cache_share,
        create_user,
        list_users,
        delete_user,
        create_key,
        list_keys,
        delete_key,
        create_bucket,
        list_buckets,
        delete_bucket,
        set_bucket_cache,
        pin_prefix,
        unpin_prefix,
        tenant_cache,
        set_bucket_mode,
        start_prefetch,
        list_prefetch,
        get_prefetch,
        cancel_prefetch,
        crate::audit::audit_list,
        crate::audit::audit_verify,
        crate::audit::get_audit_settings,
        crate::audit::put_audit_settings,
        crate::audit::get_limits,
        crate::audit::put_limits,
        crate::audit::list_grants,
        crate::audit::add_grant,
        crate::audit::remove_grant
    ),
    components(schemas(
        PinPrefix,
        Pinned,
        TierFigures,
        TenantCache,
        StartPrefetch,
        PrefetchJob,
        BucketCache,
        CacheShare,
        Tenant,
        CreateTenant,
        User,
        CreateUser,
        AccessKey,
        NewAccessKey,
        Bucket,
        CreateBucket,
        BucketMode,
        ErrorBody,
        ErrorDetail,
        WhoAmI,
        GrantBody,
        Limits,
        AuditSettingsBody,
        AuditRecord,
        ChainVerdict,
        AuditVerification
    ))
)]
struct ApiDoc;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WhoAmI {
    pub tenant: String,
    pub user: String,
    pub role: String,
    pub access_key_id: String,
}

#[utoipa::path(get, path = "/admin/v1/whoami", responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)))]
async fn whoami(Extension(c): Extension<Caller>) -> Json<WhoAmI> {
    Json(WhoAmI {
        tenant: c.tenant.to_string(),
        user: c.user.to_string(),
        role: c.role.to_string(),
        access_key_id: c.access_key_id,
    })
}

#[utoipa::path(post, path = "/admin/v1/tenants", request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 409, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn create_tenant(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Body(body): Body<CreateTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let model = match body.model.as_deref() {
        None => TenantModel::default(),
        Some(m) => m.parse::<TenantModel>().map_err(|e| ApiError::from(Error::InvalidArgument(e)))?,
    };
    let t = svc.create_tenant(&c, &body.name, model).await?;
    Ok((StatusCode::CREATED, Json(tenant_view(t))))
}

#[utoipa::path(get, path = "/admin/v1/tenants", responses((status = 200, body = Vec<Tenant>)))]
async fn list_tenants(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Vec<Tenant>>> {
    Ok(Json(svc.list_tenants(&c).await?.into_iter().map(tenant_view).collect()))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}", params(("tenant" = String, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
async fn get_tenant(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Tenant>> {
    Ok(Json(tenant_view(svc.get_tenant(&c, &tenant).await?)))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}", params(("tenant" = String, Path), ForceQuery),
    responses((status = 204), (status = 409, body = ErrorBody, description = "the tenant still owns buckets")))]
async fn delete_tenant(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(q): Query<ForceQuery>,
) -> ApiResult<StatusCode> {
    svc.delete_tenant(&c, &tenant, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users", params(("tenant" = String, Path)), request_body = CreateUser,
    responses((status = 201, body = User), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<CreateUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let role: Role = body.role.parse().map_err(|e| ApiError::from(Error::InvalidArgument(e)))?;
    let u = svc.create_user(&c, &tenant, &body.name, role).await?;
    Ok((StatusCode::CREATED, Json(user_view(&tenant, u))))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/users", params(("tenant" = String, Path)), responses((status = 200, body = Vec<User>)))]
async fn list_users(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(svc.list_users(&c, &tenant).await?.into_iter().map(|u| user_view(&tenant, u)).collect()))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/users/{user}", params(("tenant" = String, Path), ("user" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_user(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc.delete_user(&c, &tenant, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/users/{user}/keys", params(("tenant" = String, Path), ("user" = String, Path)),
    responses((status = 201, body = NewAccessKey), (status = 404, body = ErrorBody)))]
async fn create_key(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, user)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<NewAccessKey>)> {
    let (k, secret, u) = svc.create_key(&c, &tenant, &user).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewAccessKey {
            access_key_id: k.access_key_id,
            secret_access_key: secret,
            tenant,
            user: u.name.to_string(),
            created_ms: k.created_ms,
        }),
    ))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/keys", params(("tenant" = String, Path), KeysQuery), responses((status = 200, body = Vec<AccessKey>)))]
async fn list_keys(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(q): Query<KeysQuery>,
) -> ApiResult<Json<Vec<AccessKey>>> {
    let keys = svc.list_keys(&c, &tenant, q.user.as_deref()).await?;
    Ok(Json(keys.into_iter().map(|(k, u)| key_view(&tenant, k, &u)).collect()))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/keys/{key}", params(("tenant" = String, Path), ("key" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_key(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc.delete_key(&c, &tenant, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/buckets", params(("tenant" = String, Path)), request_body = CreateBucket,
    responses((status = 201, body = Bucket), (status = 409, body = ErrorBody)))]
async fn create_bucket(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<CreateBucket>,
) -> ApiResult<(StatusCode, Json<Bucket>)> {
    let mode = body.mode.as_deref().map(str::parse::<orbit_core::Consistency>).transpose()?;
    let b = match body.location_prefix.as_deref() {
        Some(prefix) => {
            svc.create_mapped_bucket(&c, &tenant, &body.name, body.backend.as_deref(), prefix, mode).await?
        }
        None if mode.is_some() => {
            return Err(
                Error::InvalidArgument("a mode applies only to a mapped bucket (give location_prefix)".into()).into()
            );
        }
        None => svc.create_bucket(&c, &tenant, &body.name, body.backend.as_deref(), body.home_site.as_deref()).await?,
    };
    Ok((StatusCode::CREATED, Json(bucket_view(&tenant, b))))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/buckets", params(("tenant" = String, Path)), responses((status = 200, body = Vec<Bucket>)))]
async fn list_buckets(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<Bucket>>> {
    Ok(Json(svc.list_buckets(&c, &tenant).await?.into_iter().map(|b| bucket_view(&tenant, b)).collect()))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}", params(("tenant" = String, Path), ("bucket" = String, Path), ForceQuery),
    responses((status = 204), (status = 409, body = ErrorBody, description = "the bucket is not empty")))]
async fn delete_bucket(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
    Query(q): Query<ForceQuery>,
) -> ApiResult<StatusCode> {
    svc.delete_bucket(&c, &tenant, &bucket, q.force).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/prefetch", params(("tenant" = String, Path)), request_body = StartPrefetch,
    responses((status = 201, body = PrefetchJob), (status = 404, body = ErrorBody)))]
async fn start_prefetch(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<StartPrefetch>,
) -> ApiResult<(StatusCode, Json<PrefetchJob>)> {
    let selection = match (body.prefix, body.keys) {
        (Some(p), None) => orbit_core::Selection::Prefix(p),
        (None, Some(k)) => orbit_core::Selection::Keys(k),
        (None, None) => orbit_core::Selection::Prefix(String::new()),
        (Some(_), Some(_)) => {
            return Err(Error::InvalidArgument("give a prefix or a list of keys, not both".into()).into());
        }
    };
    let job = svc.start_prefetch(&c, &tenant, &body.bucket, selection).await?;
    Ok((StatusCode::CREATED, Json(job_view(&tenant, job))))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/prefetch", params(("tenant" = String, Path)), responses((status = 200, body = Vec<PrefetchJob>)))]
async fn list_prefetch(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Vec<PrefetchJob>>> {
    Ok(Json(svc.prefetch_jobs(&c, &tenant).await?.into_iter().map(|j| job_view(&tenant, j)).collect()))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/prefetch/{id}", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PrefetchJob), (status = 404, body = ErrorBody)))]
async fn get_prefetch(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<PrefetchJob>> {
    Ok(Json(job_view(&tenant, svc.prefetch_job(&c, &tenant, &id).await?)))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/prefetch/{id}", params(("tenant" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = PrefetchJob, description = "the job, cancelled unless it had already finished"), (status = 404, body = ErrorBody)))]
async fn cancel_prefetch(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<PrefetchJob>> {
    Ok(Json(job_view(&tenant, svc.cancel_prefetch(&c, &tenant, &id).await?)))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/cache", params(("tenant" = String, Path), ("bucket" = String, Path)),
    request_body = BucketCache, responses((status = 200, body = Bucket), (status = 404, body = ErrorBody)))]
async fn set_bucket_cache(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
    Body(body): Body<BucketCache>,
) -> ApiResult<Json<Bucket>> {
    let admit_on_second_miss = match body.admission.as_str() {
        "first-miss" => false,
        "second-miss" => true,
        other => {
            return Err(
                Error::InvalidArgument(format!("admission `{other}`: expected first-miss or second-miss")).into()
            );
        }
    };
    if body.ttl_seconds == Some(0) {
        return Err(Error::InvalidArgument("ttl_seconds must be positive, or null for no limit".into()).into());
    }
    let policy = orbit_core::CachePolicy { admit_on_second_miss, ttl_secs: body.ttl_seconds };
    Ok(Json(bucket_view(&tenant, svc.set_cache_policy(&c, &tenant, &bucket, policy).await?)))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/pins", params(("tenant" = String, Path), ("bucket" = String, Path)),
    request_body = PinPrefix, responses((status = 201, body = Pinned), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn pin_prefix(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
    Body(body): Body<PinPrefix>,
) -> ApiResult<(StatusCode, Json<Pinned>)> {
    let (rec, job) = svc.pin_prefix(&c, &tenant, &bucket, &body.prefix).await?;
    Ok((StatusCode::CREATED, Json(Pinned { bucket: bucket_view(&tenant, rec), job: job_view(&tenant, job) })))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/pins", params(("tenant" = String, Path), ("bucket" = String, Path), PrefixQuery),
    responses((status = 200, body = Bucket), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn unpin_prefix(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
    Query(q): Query<PrefixQuery>,
) -> ApiResult<Json<Bucket>> {
    Ok(Json(bucket_view(&tenant, svc.unpin_prefix(&c, &tenant, &bucket, &q.prefix).await?)))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/cache", params(("tenant" = String, Path)),
    responses((status = 200, body = TenantCache), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn tenant_cache(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<TenantCache>> {
    let (t, f) = svc.cache_figures(&c, &tenant).await?;
    let tiers = |v: [u64; 3]| TierFigures { ram: v[0], ssd: v[1], pinned: v[2] };
    let hits: u64 = f.hits.iter().sum();
    let reads = hits + f.misses;
    Ok(Json(TenantCache {
        tenant: t.name.to_string(),
        cache_share_bytes: t.cache_share_bytes,
        hits: tiers(f.hits),
        hit_bytes: tiers(f.hit_bytes),
        misses: f.misses,
        miss_bytes: f.miss_bytes,
        hit_ratio: (reads > 0).then(|| hits as f64 / reads as f64),
    }))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/mode", params(("tenant" = String, Path), ("bucket" = String, Path)),
    request_body = BucketMode, responses((status = 200, body = Bucket), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_bucket_mode(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
    Body(body): Body<BucketMode>,
) -> ApiResult<Json<Bucket>> {
    let mode: orbit_core::Consistency = body.mode.parse()?;
    Ok(Json(bucket_view(&tenant, svc.set_bucket_mode(&c, &tenant, &bucket, mode).await?)))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/cache-share", params(("tenant" = String, Path)), request_body = CacheShare,
    responses((status = 200, body = Tenant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_cache_share(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<CacheShare>,
) -> ApiResult<Json<Tenant>> {
    Ok(Json(tenant_view(svc.set_cache_share(&c, &tenant, body.ram_bytes).await?)))
}
