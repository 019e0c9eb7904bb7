//! Quotas, usage and metering in the admin API: the types, the routes, the
//! OpenAPI fragment they derive, and the client calls the CLI makes.

use crate::client::{AdminClient, ClientError, seg};
use crate::error::ApiError;
use crate::routes::{Body, Query};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use orbit_core::{AdminService, Drift, MeterRecord, QuotaKind};
use orbit_tenancy::Caller;
use orbit_types::Error;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, OpenApi, ToSchema};

type ApiResult<T> = Result<T, ApiError>;

/// Limits on bytes stored and on object count; null means no limit.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SetQuota {
    pub max_bytes: Option<u64>,
    pub max_objects: Option<u64>,
    /// `hard` (default: refuse with QuotaExceeded) or `soft` (log and count, let the write through).
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UsageFigures {
    /// Bytes of objects plus parts of unfinished multipart uploads.
    pub bytes: u64,
    pub objects: u64,
}

/// A tenant's or a bucket's quota with its current usage.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct QuotaView {
    pub tenant: String,
    /// Null for the tenant's own quota.
    pub bucket: Option<String>,
    /// `hard` or `soft`; null when no quota is set.
    pub kind: Option<String>,
    pub max_bytes: Option<u64>,
    pub max_objects: Option<u64>,
    pub usage: UsageFigures,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct TenantUsageView {
    pub tenant: String,
    pub usage: UsageFigures,
    pub quota: QuotaView,
    pub buckets: Vec<QuotaView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct DriftView {
    /// Null for the tenant's own counters.
    pub bucket: Option<String>,
    /// What the counters held.
    pub counted: UsageFigures,
    /// What the object records (a mapped bucket: a listing of its location) and stored parts add up to.
    pub actual: UsageFigures,
    /// Whether the counters were set to the actual figures.
    pub corrected: bool,
}

/// One hour of one bucket's metered use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct UsageRecord {
    pub tenant: String,
    /// Empty for requests that name no bucket (ListBuckets).
    pub bucket: String,
    /// Start of the hour, RFC 3339 (UTC).
    pub hour: String,
    /// Bytes stored integrated over the hour.
    pub byte_hours: f64,
    /// Bytes and objects stored at the hour's last sample.
    pub stored_bytes: u64,
    pub objects: u64,
    pub read_requests: u64,
    pub write_requests: u64,
    pub list_requests: u64,
    pub delete_requests: u64,
    pub other_requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub cache_hit_chunks: u64,
    pub cache_hit_bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// Only this bucket.
    pub bucket: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct RecountQuery {
    /// Correct the counters (default: only report).
    #[serde(default)]
    pub fix: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
pub struct ReportQuery {
    /// Only this bucket.
    pub bucket: Option<String>,
    /// Hours starting at or after this time (RFC 3339); default: the epoch.
    pub from: Option<String>,
    /// Hours starting before this time (RFC 3339); default: now.
    pub to: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

pub const CSV_HEADER: &str = "tenant,bucket,hour,byte_hours,stored_bytes,objects,read_requests,write_requests,list_requests,delete_requests,other_requests,bytes_in,bytes_out,cache_hit_chunks,cache_hit_bytes";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// The records as CSV, one line per record after a header line.
pub fn records_csv(records: &[UsageRecord]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in records {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.tenant),
            csv_field(&r.bucket),
            r.hour,
            r.byte_hours,
            r.stored_bytes,
            r.objects,
            r.read_requests,
            r.write_requests,
            r.list_requests,
            r.delete_requests,
            r.other_requests,
            r.bytes_in,
            r.bytes_out,
            r.cache_hit_chunks,
            r.cache_hit_bytes
        ));
    }
    out
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn parse_time(what: &str, s: &str) -> Result<i64, Error> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| Error::InvalidArgument(format!("`{what}` must be an RFC 3339 time such as 2026-01-31T00:00:00Z")))
}

fn kind_name(k: QuotaKind) -> &'static str {
    match k {
        QuotaKind::Hard => "hard",
        QuotaKind::Soft => "soft",
    }
}

fn figures(f: orbit_core::UsageFigures) -> UsageFigures {
    UsageFigures { bytes: f.bytes, objects: f.objects }
}

fn quota_view(
    tenant: &str,
    bucket: Option<String>,
    q: Option<orbit_core::Quota>,
    usage: orbit_core::UsageFigures,
) -> QuotaView {
    QuotaView {
        tenant: tenant.to_owned(),
        bucket,
        kind: q.as_ref().map(|q| kind_name(q.kind).to_owned()),
        max_bytes: q.as_ref().and_then(|q| q.max_bytes),
        max_objects: q.as_ref().and_then(|q| q.max_objects),
        usage: figures(usage),
    }
}

fn record_view(tenant: &str, r: MeterRecord) -> UsageRecord {
    let c = &r.counts;
    UsageRecord {
        tenant: tenant.to_owned(),
        bucket: r.bucket.clone(),
        hour: rfc3339(r.hour_ms),
        byte_hours: c.byte_hours(),
        stored_bytes: c.stored_bytes,
        objects: c.objects,
        read_requests: c.read_requests,
        write_requests: c.write_requests,
        list_requests: c.list_requests,
        delete_requests: c.delete_requests,
        other_requests: c.other_requests,
        bytes_in: c.bytes_in,
        bytes_out: c.bytes_out,
        cache_hit_chunks: c.cache_hit_chunks,
        cache_hit_bytes: c.cache_hit_bytes,
    }
}

fn drift_view(d: Drift) -> DriftView {
    DriftView { bucket: d.bucket, counted: figures(d.counted), actual: figures(d.actual), corrected: d.corrected }
}

pub(crate) fn routes() -> Router<AdminService> {
    Router::new()
        .route(
            "/admin/v1/tenants/{tenant}/quota",
            get(get_tenant_quota).put(set_tenant_quota).delete(clear_tenant_quota),
        )
        .route(
            "/admin/v1/tenants/{tenant}/buckets/{bucket}/quota",
            get(get_bucket_quota).put(set_bucket_quota).delete(clear_bucket_quota),
        )
        .route("/admin/v1/tenants/{tenant}/usage", get(get_usage))
        .route("/admin/v1/tenants/{tenant}/usage/recount", post(recount))
        .route("/admin/v1/tenants/{tenant}/usage/report", get(report))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        get_tenant_quota,
        set_tenant_quota,
        clear_tenant_quota,
        get_bucket_quota,
        set_bucket_quota,
        clear_bucket_quota,
        get_usage,
        recount,
        report
    ),
    components(schemas(SetQuota, UsageFigures, QuotaView, TenantUsageView, DriftView, UsageRecord))
)]
pub(crate) struct UsageDoc;

async fn show_quota(svc: &AdminService, c: &Caller, tenant: &str, bucket: Option<&str>) -> ApiResult<QuotaView> {
    let q = svc.get_quota(c, tenant, bucket).await?;
    let u = svc.usage(c, tenant, bucket).await?;
    let usage = match bucket {
        Some(_) => u.buckets.first().map(|b| b.usage).unwrap_or_default(),
        None => u.usage,
    };
    Ok(quota_view(tenant, bucket.map(str::to_owned), q, usage))
}

async fn put_quota(
    svc: &AdminService,
    c: &Caller,
    tenant: &str,
    bucket: Option<&str>,
    body: SetQuota,
) -> ApiResult<QuotaView> {
    let kind = match body.kind.as_deref().unwrap_or("hard") {
        "hard" => QuotaKind::Hard,
        "soft" => QuotaKind::Soft,
        other => return Err(Error::InvalidArgument(format!("kind `{other}`: expected hard or soft")).into()),
    };
    svc.set_quota(c, tenant, bucket, Some((body.max_bytes, body.max_objects, kind))).await?;
    show_quota(svc, c, tenant, bucket).await
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/quota", params(("tenant" = String, Path)),
    responses((status = 200, body = QuotaView), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
async fn get_tenant_quota(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<QuotaView>> {
    Ok(Json(show_quota(&svc, &c, &tenant, None).await?))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/quota", params(("tenant" = String, Path)), request_body = SetQuota,
    responses((status = 200, body = QuotaView), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)))]
async fn set_tenant_quota(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Body(body): Body<SetQuota>,
) -> ApiResult<Json<QuotaView>> {
    Ok(Json(put_quota(&svc, &c, &tenant, None, body).await?))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/quota", params(("tenant" = String, Path)),
    responses((status = 200, body = QuotaView), (status = 403, body = crate::api::ErrorBody)))]
async fn clear_tenant_quota(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
) -> ApiResult<Json<QuotaView>> {
    svc.set_quota(&c, &tenant, None, None).await?;
    Ok(Json(show_quota(&svc, &c, &tenant, None).await?))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/quota", params(("tenant" = String, Path), ("bucket" = String, Path)),
    responses((status = 200, body = QuotaView), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
async fn get_bucket_quota(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
) -> ApiResult<Json<QuotaView>> {
    Ok(Json(show_quota(&svc, &c, &tenant, Some(&bucket)).await?))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/quota", params(("tenant" = String, Path), ("bucket" = String, Path)),
    request_body = SetQuota,
    responses((status = 200, body = QuotaView), (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
async fn set_bucket_quota(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
    Body(body): Body<SetQuota>,
) -> ApiResult<Json<QuotaView>> {
    Ok(Json(put_quota(&svc, &c, &tenant, Some(&bucket), body).await?))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/buckets/{bucket}/quota", params(("tenant" = String, Path), ("bucket" = String, Path)),
    responses((status = 200, body = QuotaView), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
async fn clear_bucket_quota(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path((tenant, bucket)): Path<(String, String)>,
) -> ApiResult<Json<QuotaView>> {
    svc.set_quota(&c, &tenant, Some(&bucket), None).await?;
    Ok(Json(show_quota(&svc, &c, &tenant, Some(&bucket)).await?))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/usage", params(("tenant" = String, Path), UsageQuery),
    responses((status = 200, body = TenantUsageView), (status = 403, body = crate::api::ErrorBody), (status = 404, body = crate::api::ErrorBody)))]
async fn get_usage(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(q): Query<UsageQuery>,
) -> ApiResult<Json<TenantUsageView>> {
    let u = svc.usage(&c, &tenant, q.bucket.as_deref()).await?;
    Ok(Json(TenantUsageView {
        tenant: tenant.clone(),
        usage: figures(u.usage),
        quota: quota_view(&tenant, None, u.quota, u.usage),
        buckets: u.buckets.into_iter().map(|b| quota_view(&tenant, Some(b.bucket), b.quota, b.usage)).collect(),
    }))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/usage/recount", params(("tenant" = String, Path), RecountQuery),
    responses((status = 200, body = Vec<DriftView>, description = "every bucket and the tenant, with what the counters held and what the records add up to"),
        (status = 403, body = crate::api::ErrorBody)))]
async fn recount(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(q): Query<RecountQuery>,
) -> ApiResult<Json<Vec<DriftView>>> {
    Ok(Json(svc.recount(&c, &tenant, q.fix).await?.into_iter().map(drift_view).collect()))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/usage/report", params(("tenant" = String, Path), ReportQuery),
    responses((status = 200, body = Vec<UsageRecord>, description = "hourly records, JSON or (format=csv) text/csv"),
        (status = 400, body = crate::api::ErrorBody), (status = 403, body = crate::api::ErrorBody)))]
async fn report(
    State(svc): State<AdminService>,
    Extension(c): Extension<Caller>,
    Path(tenant): Path<String>,
    Query(q): Query<ReportQuery>,
) -> ApiResult<Response> {
    let from = q.from.as_deref().map(|s| parse_time("from", s)).transpose()?.unwrap_or(0);
    let to = q.to.as_deref().map(|s| parse_time("to", s)).transpose()?.unwrap_or_else(orbit_types::now_ms);
    let csv = match q.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => return Err(Error::InvalidArgument(format!("format `{other}`: expected json or csv")).into()),
    };
    let records: Vec<UsageRecord> = svc
        .usage_report(&c, &tenant, q.bucket.as_deref(), from, to)
        .await?
        .into_iter()
        .map(|r| record_view(&tenant, r))
        .collect();
    Ok(if csv {
        ([(CONTENT_TYPE, "text/csv; charset=utf-8")], records_csv(&records)).into_response()
    } else {
        Json(records).into_response()
    })
}

fn query_string(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs.iter().filter_map(|(k, v)| v.map(|v| format!("{k}={}", seg(v)))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

fn quota_path(tenant: &str, bucket: Option<&str>) -> String {
    match bucket {
        Some(b) => format!("/admin/v1/tenants/{}/buckets/{}/quota", seg(tenant), seg(b)),
        None => format!("/admin/v1/tenants/{}/quota", seg(tenant)),
    }
}

fn required<T>(v: Option<T>) -> Result<T, ClientError> {
    v.ok_or_else(|| ClientError::Transport("empty response".into()))
}

impl AdminClient {
    pub async fn get_quota(&self, tenant: &str, bucket: Option<&str>) -> Result<QuotaView, ClientError> {
        required(self.call(Method::GET, &quota_path(tenant, bucket), None::<&()>).await?)
    }

    pub async fn set_quota(&self, tenant: &str, bucket: Option<&str>, q: &SetQuota) -> Result<QuotaView, ClientError> {
        required(self.call(Method::PUT, &quota_path(tenant, bucket), Some(q)).await?)
    }

    pub async fn clear_quota(&self, tenant: &str, bucket: Option<&str>) -> Result<QuotaView, ClientError> {
        required(self.call(Method::DELETE, &quota_path(tenant, bucket), None::<&()>).await?)
    }

    pub async fn usage(&self, tenant: &str, bucket: Option<&str>) -> Result<TenantUsageView, ClientError> {
        let path = format!("/admin/v1/tenants/{}/usage{}", seg(tenant), query_string(&[("bucket", bucket)]));
        required(self.call(Method::GET, &path, None::<&()>).await?)
    }

    pub async fn recount(&self, tenant: &str, fix: bool) -> Result<Vec<DriftView>, ClientError> {
        let path = format!("/admin/v1/tenants/{}/usage/recount?fix={fix}", seg(tenant));
        required(self.call(Method::POST, &path, None::<&()>).await?)
    }

    pub async fn usage_report(
        &self,
        tenant: &str,
        bucket: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<UsageRecord>, ClientError> {
        let path = format!(
            "/admin/v1/tenants/{}/usage/report{}",
            seg(tenant),
            query_string(&[("bucket", bucket), ("from", from), ("to", to)])
        );
        required(self.call(Method::GET, &path, None::<&()>).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let r = UsageRecord {
            tenant: "acme".into(),
            bucket: "data".into(),
            hour: "2026-01-01T00:00:00Z".into(),
            byte_hours: 1.5,
            stored_bytes: 10,
            objects: 1,
            read_requests: 2,
            write_requests: 3,
            list_requests: 4,
            delete_requests: 5,
            other_requests: 0,
            bytes_in: 6,
            bytes_out: 7,
            cache_hit_chunks: 8,
            cache_hit_bytes: 9,
        };
        let csv = records_csv(&[r]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines[1], "acme,data,2026-01-01T00:00:00Z,1.5,10,1,2,3,4,5,0,6,7,8,9");
        assert_eq!(csv_field("a,b\"c"), "\"a,b\"\"c\"");
    }

    #[test]
    fn times_parse_as_rfc3339_only() {
        assert_eq!(parse_time("from", "1970-01-01T01:00:00Z").unwrap(), 3_600_000);
        assert!(parse_time("from", "yesterday").is_err());
        assert_eq!(rfc3339(3_600_000), "1970-01-01T01:00:00Z");
    }
}
