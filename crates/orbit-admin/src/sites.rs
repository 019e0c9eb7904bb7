//! The sites routes: this site and its peer sites with their liveness, as
//! the peer prober last saw them. Operators only: the topology of the
//! deployment is not tenant business.

use crate::api::ErrorBody;
use crate::client::seg;
use crate::error::ApiError;
use crate::routes::ApiResult;
use crate::{AdminClient, ClientError};
use axum::extract::Path;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::{get, post};
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

/// One write lease: held here (`site` is its home site) or granted by this
/// site as a home (`site` is the holder).
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WriteLeaseEntry {
    pub lease: String,
    pub site: String,
    /// The bucket's tenant id and name, where this site knows them; the bucket id otherwise.
    pub tenant: String,
    pub bucket: String,
    pub prefix: String,
    /// Writes acknowledged by the holder and not yet applied at home (at the holder).
    pub unflushed: u64,
    /// The holder's writes applied at home so far, by sequence number.
    pub flushed_upto: u64,
    /// `held`, `releasing or unconfirmed` (at the holder) or `granted` (at home).
    pub state: String,
}

/// Writes a holder acknowledged and had to discard when an operator revoked its lease.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct LostWritesEntry {
    pub lease: String,
    pub home: String,
    pub keys: Vec<String>,
}

/// The write leases of this site.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WriteLeases {
    pub site: String,
    pub held: Vec<WriteLeaseEntry>,
    pub granted: Vec<WriteLeaseEntry>,
    pub lost: Vec<LostWritesEntry>,
}

/// Asks the bucket's home site for an exclusive write lease on a prefix.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AcquireWriteLease {
    /// The tenant's name.
    pub tenant: String,
    pub bucket: String,
    /// The key prefix; empty for the whole bucket.
    #[serde(default)]
    pub prefix: String,
    /// How long to wait for the grant (default 30 s); the request stays pending after.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

/// What an operator's revocation declares lost.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RevokeOutcome {
    pub lease: String,
    pub holder: String,
    pub bucket: String,
    pub prefix: String,
    /// Writes the holder acknowledged with a sequence number above this were
    /// never applied at home and are lost.
    pub lost_after: u64,
    pub statement: String,
}

/// Whether a release completed within the wait.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReleaseOutcome {
    pub lease: String,
    /// False: still flushing; the release completes in the background.
    pub released: bool,
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait_ms: Option<u64>,
}

/// The write-lease operations of this site; wired by the binary when peers are configured.
#[async_trait::async_trait]
pub trait WriteLeaseControl: Send + Sync + 'static {
    fn table(&self) -> WriteLeases;
    async fn acquire(&self, req: AcquireWriteLease) -> Result<WriteLeaseEntry, Error>;
    async fn release(&self, lease: &str, wait: std::time::Duration) -> Result<bool, Error>;
    async fn revoke(&self, lease: &str) -> Result<RevokeOutcome, Error>;
    async fn recall(&self, lease: &str) -> Result<(), Error>;
}

pub type WriteLeaseControlRef = Arc<dyn WriteLeaseControl>;

/// Serve the write-lease routes from `control` (without it: 409, no peers).
pub fn with_write_leases(router: Router, control: WriteLeaseControlRef) -> Router {
    router.layer(Extension(control))
}

fn lease_control(c: &Caller, control: Option<Extension<WriteLeaseControlRef>>) -> ApiResult<WriteLeaseControlRef> {
    if c.role != Role::Operator {
        return Err(Error::AccessDenied.into());
    }
    control.map(|Extension(c)| c).ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "NoPeerSites",
            "this site has no peer sites: write leases need a home site elsewhere".into(),
        )
    })
}

/// Lease errors keep their message (the operator needs to know what home said).
fn lease_error(e: Error) -> ApiError {
    match e {
        Error::Unavailable(m) => ApiError(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", m),
        e => e.into(),
    }
}

#[utoipa::path(get, path = "/admin/v1/sites/write-leases",
    responses((status = 200, body = WriteLeases), (status = 403, body = ErrorBody)))]
async fn list_write_leases(
    Extension(c): Extension<Caller>,
    control: Option<Extension<WriteLeaseControlRef>>,
) -> ApiResult<Json<WriteLeases>> {
    if c.role != Role::Operator {
        return Err(Error::AccessDenied.into());
    }
    Ok(Json(control.map(|Extension(c)| c.table()).unwrap_or_default()))
}

#[utoipa::path(post, path = "/admin/v1/sites/write-leases", request_body = AcquireWriteLease,
    responses((status = 201, body = WriteLeaseEntry), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn acquire_write_lease(
    Extension(c): Extension<Caller>,
    control: Option<Extension<WriteLeaseControlRef>>,
    Json(req): Json<AcquireWriteLease>,
) -> ApiResult<(StatusCode, Json<WriteLeaseEntry>)> {
    let control = lease_control(&c, control)?;
    Ok((StatusCode::CREATED, Json(control.acquire(req).await.map_err(lease_error)?)))
}

#[utoipa::path(delete, path = "/admin/v1/sites/write-leases/{lease}", params(("lease" = String, Path)),
    responses((status = 200, body = ReleaseOutcome), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn release_write_lease(
    Extension(c): Extension<Caller>,
    control: Option<Extension<WriteLeaseControlRef>>,
    Path(lease): Path<String>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<ReleaseOutcome>> {
    let control = lease_control(&c, control)?;
    let wait = std::time::Duration::from_millis(q.wait_ms.unwrap_or(60_000));
    let released = control.release(&lease, wait).await.map_err(lease_error)?;
    Ok(Json(ReleaseOutcome { lease, released }))
}

#[utoipa::path(post, path = "/admin/v1/sites/write-leases/{lease}/revoke", params(("lease" = String, Path)),
    responses((status = 200, body = RevokeOutcome), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn revoke_write_lease(
    Extension(c): Extension<Caller>,
    control: Option<Extension<WriteLeaseControlRef>>,
    Path(lease): Path<String>,
) -> ApiResult<Json<RevokeOutcome>> {
    let control = lease_control(&c, control)?;
    Ok(Json(control.revoke(&lease).await.map_err(lease_error)?))
}

#[utoipa::path(post, path = "/admin/v1/sites/write-leases/{lease}/recall", params(("lease" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn recall_write_lease(
    Extension(c): Extension<Caller>,
    control: Option<Extension<WriteLeaseControlRef>>,
    Path(lease): Path<String>,
) -> ApiResult<StatusCode> {
    let control = lease_control(&c, control)?;
    control.recall(&lease).await.map_err(lease_error)?;
    Ok(StatusCode::NO_CONTENT)
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
        .route("/admin/v1/sites/write-leases", get(list_write_leases).post(acquire_write_lease))
        .route("/admin/v1/sites/write-leases/{lease}", axum::routing::delete(release_write_lease))
        .route("/admin/v1/sites/write-leases/{lease}/revoke", post(revoke_write_lease))
        .route("/admin/v1/sites/write-leases/{lease}/recall", post(recall_write_lease))
        .route("/admin/v1/sites/{site}", get(get_site))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_sites,
        get_site,
        site_leases,
        list_write_leases,
        acquire_write_lease,
        release_write_lease,
        revoke_write_lease,
        recall_write_lease
    ),
    components(schemas(
        Site,
        SiteLeases,
        LeaseEntry,
        WriteLeases,
        WriteLeaseEntry,
        LostWritesEntry,
        AcquireWriteLease,
        RevokeOutcome,
        ReleaseOutcome
    ))
)]
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

    pub async fn write_leases(&self) -> Result<WriteLeases, ClientError> {
        self.call(Method::GET, "/admin/v1/sites/write-leases", None::<&()>).await?.ok_or_else(empty)
    }

    pub async fn acquire_write_lease(&self, req: &AcquireWriteLease) -> Result<WriteLeaseEntry, ClientError> {
        self.call(Method::POST, "/admin/v1/sites/write-leases", Some(req)).await?.ok_or_else(empty)
    }

    pub async fn release_write_lease(&self, lease: &str, wait_ms: u64) -> Result<ReleaseOutcome, ClientError> {
        let path = format!("/admin/v1/sites/write-leases/{}?wait_ms={wait_ms}", seg(lease));
        self.call(Method::DELETE, &path, None::<&()>).await?.ok_or_else(empty)
    }

    pub async fn revoke_write_lease(&self, lease: &str) -> Result<RevokeOutcome, ClientError> {
        let path = format!("/admin/v1/sites/write-leases/{}/revoke", seg(lease));
        self.call(Method::POST, &path, None::<&()>).await?.ok_or_else(empty)
    }

    pub async fn recall_write_lease(&self, lease: &str) -> Result<(), ClientError> {
        let path = format!("/admin/v1/sites/write-leases/{}/recall", seg(lease));
        self.call::<serde_json::Value>(Method::POST, &path, None::<&()>).await?;
        Ok(())
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
