//! The QoS routes: rate limits of a tenant and of its buckets. Setting and
//! clearing is for operators; a tenant-admin may read its own tenant's.

use crate::api::{ErrorBody, Qos, QosLimits};
use crate::routes::{ApiResult, Body};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use orbit_core::AdminService;
use orbit_tenancy::Caller;

fn to_core(l: QosLimits) -> orbit_tenancy::QosLimits {
    orbit_tenancy::QosLimits {
        read_rps: l.read_rps,
        write_rps: l.write_rps,
        read_bps: l.read_bps,
        write_bps: l.write_bps,
        burst_seconds: l.burst_seconds,
    }
}

fn view(tenant: String, bucket: Option<String>, l: orbit_tenancy::QosLimits) -> Qos {
    let limits = QosLimits {
        read_rps: l.read_rps,
        write_rps: l.write_rps,
        read_bps: l.read_bps,
        write_bps: l.write_bps,
        // The burst in force, also when left at its default.
        burst_seconds: (!l.is_unlimited()).then(|| l.burst_seconds()),
    };
    Qos { tenant, bucket, limits }
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/qos", params(("tenant" = String, Path)),
    responses((status = 200, body = Qos), (status = 403, body = ErrorBody)))]
pub(crate) async fn get_tenant_qos(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Qos>> {
    let l = svc.qos_limits(&c, &tenant, None).await?;
    Ok(Json(view(tenant, None, l)))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/qos", params(("tenant" = String, Path)), request_body = QosLimits,
    responses((status = 200, body = Qos), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn set_tenant_qos(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<QosLimits>,
) -> ApiResult<Json<Qos>> {
    let l = svc.set_qos_limits(&c, &tenant, None, to_core(body)).await?;
    Ok(Json(view(tenant, None, l)))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/qos", params(("tenant" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub(crate) async fn clear_tenant_qos(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<StatusCode> {
    svc.clear_qos_limits(&c, &tenant, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/qos",
    params(("tenant" = String, Path), ("bucket" = String, Path)),
    responses((status = 200, body = Qos), (status = 403, body = ErrorBody)))]
pub(crate) async fn get_bucket_qos(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
) -> ApiResult<Json<Qos>> {
    let l = svc.qos_limits(&c, &tenant, Some(&bucket)).await?;
    Ok(Json(view(tenant, Some(bucket), l)))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/qos",
    params(("tenant" = String, Path), ("bucket" = String, Path)), request_body = QosLimits,
    responses((status = 200, body = Qos), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn set_bucket_qos(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
    Body(body): Body<QosLimits>,
) -> ApiResult<Json<Qos>> {
    let l = svc.set_qos_limits(&c, &tenant, Some(&bucket), to_core(body)).await?;
    Ok(Json(view(tenant, Some(bucket), l)))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/qos",
    params(("tenant" = String, Path), ("bucket" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody)))]
pub(crate) async fn clear_bucket_qos(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    svc.clear_qos_limits(&c, &tenant, Some(&bucket)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The QoS part of the OpenAPI document (merged into the whole).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_tenant_qos, set_tenant_qos, clear_tenant_qos, get_bucket_qos, set_bucket_qos, clear_bucket_qos),
    components(schemas(Qos, QosLimits))
)]
pub(crate) struct QosApiDoc;
