//! The sites routes: this site and its peer sites with their liveness, as
//! the peer prober last saw them. Operators only: the topology of the
//! deployment is not tenant business.

use crate::api::ErrorBody;
use crate::client::seg;
use crate::error::ApiError;
use crate::routes::ApiResult;
use crate::{AdminClient, ClientError};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Json, Router};
use orbit_core::AdminService;
use orbit_tenancy::Caller;
use orbit_types::{Error, Role};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Site {
    pub name: String,
    /// Whether this is the site answering the request.
    pub local: bool,
    /// Base URL of the site's peer listener (for this site: its own, when listening).
    pub url: Option<String>,
    /// Whether the last liveness probe got an answer (always true for this site).
    pub reachable: bool,
    /// Round trip of the last successful probe, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Why the last probe failed.
    pub last_error: Option<String>,
    /// The inter-site protocol version the site speaks.
    pub protocol_version: Option<u32>,
    /// When the last probe ended (ms since the Unix epoch).
    pub last_probe_ms: Option<i64>,
    /// When the site last answered (ms since the Unix epoch).
    pub last_seen_ms: Option<i64>,
}

/// One read lease: in the home table (`site` is the holder) or held here
/// (`site` is the home that granted it).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LeaseEntry {
    /// `epoch.sequence`, as the home site numbers it.
    pub lease: String,
    pub site: String,
    /// The bucket's id (leases name buckets by id, never by a tenant's name for it).
    pub bucket: String,
    /// The key prefix covered; empty for the whole bucket.
    pub prefix: String,
}

/// The leases of this site: granted as a home site, held as a satellite.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct SiteLeases {
    pub site: String,
    /// This site's incarnation as a home site (grows at every start).
    pub home_epoch: u64,
    /// Read leases granted to satellites and not yet surely expired.
    pub granted: Vec<LeaseEntry>,
    /// Read leases this site holds and may serve under now.
    pub held: Vec<LeaseEntry>,
}

/// Renders this site's lease tables; wired by the binary when peers are configured.
pub type LeasesRenderer = Arc<dyn Fn() -> SiteLeases + Send + Sync>;

/// Serve `GET /admin/v1/sites/leases` from `leases` (without it: empty tables).
pub fn with_leases(router: Router, leases: LeasesRenderer) -> Router {
    router.layer(Extension(leases))
}

/// Lists this site first, then its peers; wired by the binary.
pub type SitesRenderer = Arc<dyn Fn() -> Vec<Site> + Send + Sync>;

/// Serve the sites routes from `sites` (without it they answer 404).
pub fn with_sites(router: Router, sites: SitesRenderer) -> Router {
    router.layer(Extension(sites))
}

pub(crate) fn routes() -> Router<AdminService> {
    Router::new()
        .route("/admin/v1/sites", get(list_sites))
        .route("/admin/v1/sites/leases", get(site_leases))
        .route("/admin/v1/sites/{site}", get(get_site))
}

#[derive(OpenApi)]
#[openapi(paths(list_sites, get_site, site_leases), components(schemas(Site, SiteLeases, LeaseEntry)))]
pub(crate) struct SitesDoc;

fn sites(c: &Caller, renderer: Option<Extension<SitesRenderer>>) -> ApiResult<Vec<Site>> {
    if c.role != Role::Operator {
        return Err(Error::AccessDenied.into());
    }
    Ok(renderer.map(|Extension(r)| r()).unwrap_or_default())
}

#[utoipa::path(get, path = "/admin/v1/sites",
    responses((status = 200, body = Vec<Site>), (status = 403, body = ErrorBody)))]
async fn list_sites(
    Extension(c): Extension<Caller>,
    renderer: Option<Extension<SitesRenderer>>,
) -> ApiResult<Json<Vec<Site>>> {
    Ok(Json(sites(&c, renderer)?))
}

#[utoipa::path(get, path = "/admin/v1/sites/{site}", params(("site" = String, Path)),
    responses((status = 200, body = Site), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_site(
    Extension(c): Extension<Caller>,
    renderer: Option<Extension<SitesRenderer>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Site>> {
    let found = sites(&c, renderer)?.into_iter().find(|s| s.name == name);
    found.map(Json).ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "NotFound", format!("no site named `{name}`")))
}

#[utoipa::path(get, path = "/admin/v1/sites/leases",
    responses((status = 200, body = SiteLeases), (status = 403, body = ErrorBody)))]
async fn site_leases(
    Extension(c): Extension<Caller>,
    renderer: Option<Extension<LeasesRenderer>>,
) -> ApiResult<Json<SiteLeases>> {
    if c.role != Role::Operator {
        return Err(Error::AccessDenied.into());
    }
    Ok(Json(renderer.map(|Extension(r)| r()).unwrap_or_default()))
}

impl AdminClient {
    pub async fn site_leases(&self) -> Result<SiteLeases, ClientError> {
        self.call(Method::GET, "/admin/v1/sites/leases", None::<&()>).await?.ok_or_else(empty)
    }

    pub async fn list_sites(&self) -> Result<Vec<Site>, ClientError> {
        self.call(Method::GET, "/admin/v1/sites", None::<&()>).await?.ok_or_else(empty)
    }

    pub async fn get_site(&self, name: &str) -> Result<Site, ClientError> {
        self.call(Method::GET, &format!("/admin/v1/sites/{}", seg(name)), None::<&()>).await?.ok_or_else(empty)
    }
}

fn empty() -> ClientError {
    ClientError::Transport("empty response".into())
}
