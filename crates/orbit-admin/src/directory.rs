//! The directory routes and rule. In a multi-site deployment one site, the
//! directory site, is the authority for tenants, users, keys, grants, limits,
//! QoS, quotas and bucket records; every other site mirrors them (see
//! orbit-global). At those sites the admin API refuses writes of these
//! records with 409 naming the directory site, and `GET /admin/v1/directory`
//! shows how fresh the mirror is.

use crate::api::ErrorBody;
use crate::error::ApiError;
use crate::routes::ApiResult;
use crate::{AdminClient, ClientError};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use orbit_core::AdminService;
use orbit_tenancy::Caller;
use orbit_types::{Error, Role};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

/// Where this site's directory records come from, and how fresh they are.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DirectoryStatus {
    /// The site that is the authority for directory records.
    pub directory_site: String,
    /// The site answering.
    pub site: String,
    /// Whether the answering site is the directory site (nothing to mirror).
    pub is_directory_site: bool,
    /// The directory version last applied here (`epoch.generation`).
    pub version: Option<String>,
    /// When the last pull succeeded (ms since the Unix epoch).
    pub last_sync_ms: Option<i64>,
    /// Milliseconds since the last successful pull: how stale the mirror may be.
    pub lag_ms: Option<u64>,
    /// Directory records held here as a copy of the directory site's.
    pub records_mirrored: u64,
    /// Pulls that succeeded (changed or not) and that failed, since start.
    pub syncs_ok: u64,
    pub syncs_failed: u64,
    /// Why the last pull failed, while it has not succeeded since.
    pub last_error: Option<String>,
}

/// Renders the directory status; wired by the binary.
pub type DirectoryRenderer = Arc<dyn Fn() -> DirectoryStatus + Send + Sync>;

/// Serve `GET /admin/v1/directory` from `status`, and refuse directory
/// writes when the status says another site is the directory site.
pub fn with_directory(router: Router, status: DirectoryRenderer) -> Router {
    router.layer(Extension(status))
}

pub(crate) fn routes() -> Router<AdminService> {
    Router::new().route("/admin/v1/directory", get(get_directory))
}

#[derive(OpenApi)]
#[openapi(paths(get_directory), components(schemas(DirectoryStatus)))]
pub(crate) struct DirectoryDoc;

#[utoipa::path(get, path = "/admin/v1/directory",
    responses((status = 200, body = DirectoryStatus), (status = 403, body = ErrorBody)))]
async fn get_directory(
    Extension(c): Extension<Caller>,
    renderer: Option<Extension<DirectoryRenderer>>,
) -> ApiResult<Json<DirectoryStatus>> {
    if c.role != Role::Operator {
        return Err(Error::AccessDenied.into());
    }
    let Some(Extension(r)) = renderer else {
        return Err(ApiError(StatusCode::NOT_FOUND, "NotFound", "this server has no directory view".into()));
    };
    Ok(Json(r()))
}

/// Whether a request changes directory records (and so belongs at the
/// directory site). Prefetch jobs and usage recounts act on this site's own
/// cache and counters, so they stay allowed everywhere.
pub(crate) fn is_directory_write(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let Some(rest) = path.strip_prefix("/admin/v1/tenants") else { return false };
    if !(rest.is_empty() || rest.starts_with('/')) {
        return false;
    }
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    !(segments.get(1) == Some(&"prefetch") || segments.ends_with(&["usage", "recount"]))
}

/// At a site that mirrors the directory, refuse directory writes with 409
/// and the directory site's name (placed inside authentication).
pub(crate) async fn refuse_at_mirror(req: Request, next: Next) -> Response {
    let renderer = req.extensions().get::<DirectoryRenderer>().cloned();
    if let Some(r) = renderer
        && is_directory_write(req.method(), req.uri().path())
    {
        let s = r();
        if !s.is_directory_site {
            return ApiError(
                StatusCode::CONFLICT,
                "NotDirectorySite",
                format!(
                    "tenants, users, keys, grants, limits, QoS, quotas and buckets are managed at the directory site `{}`; this is site `{}`",
                    s.directory_site, s.site
                ),
            )
            .into_response();
        }
    }
    next.run(req).await
}

impl AdminClient {
    pub async fn directory_status(&self) -> Result<DirectoryStatus, ClientError> {
        self.call(reqwest::Method::GET, "/admin/v1/directory", None::<&()>)
            .await?
            .ok_or_else(|| ClientError::Transport("empty response".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_writes_are_told_apart_from_site_local_actions() {
        let post = Method::POST;
        assert!(is_directory_write(&post, "/admin/v1/tenants"));
        assert!(is_directory_write(&post, "/admin/v1/tenants/acme/users/alice/keys"));
        assert!(is_directory_write(&Method::DELETE, "/admin/v1/tenants/acme/keys/AK1"));
        assert!(is_directory_write(&Method::PUT, "/admin/v1/tenants/acme/buckets/b/qos"));
        assert!(is_directory_write(&Method::PUT, "/admin/v1/tenants/acme/quota"));
        assert!(is_directory_write(&post, "/admin/v1/tenants/acme/buckets/b/pins"));
        assert!(!is_directory_write(&Method::GET, "/admin/v1/tenants/acme/buckets"));
        assert!(!is_directory_write(&post, "/admin/v1/tenants/acme/prefetch"));
        assert!(!is_directory_write(&Method::DELETE, "/admin/v1/tenants/acme/prefetch/j1"));
        assert!(!is_directory_write(&post, "/admin/v1/tenants/acme/usage/recount"));
        assert!(!is_directory_write(&post, "/admin/v1/tenantsx"));
        assert!(!is_directory_write(&post, "/admin/v1/audit"));
    }
}
