//! The hook through which a site of a multi-site deployment keeps bucket
//! records in one directory (implemented by orbit-global). Without it the
//! namespace is a single site and every bucket is created and deleted here.

use crate::records::BucketRecord;
use orbit_types::{BucketName, Result, TenantId};

/// Where bucket records are decided: at the directory site, mirrored to
/// every other site.
#[async_trait::async_trait]
pub trait BucketDirectory: Send + Sync + 'static {
    /// Whether this site is the directory site (its store is the authority).
    fn is_directory_site(&self) -> bool;

    /// Whether `site` names this site or a configured peer.
    fn knows_site(&self, site: &str) -> bool;

    /// Bring the local copy up to date now (a request named a bucket this
    /// site does not know). Coalesced and rate-limited by the implementation.
    async fn refresh(&self);

    /// At a satellite: create the bucket at the directory site, homed here,
    /// and apply its record locally before returning it.
    async fn create_bucket(&self, tenant: TenantId, name: &BucketName, backend: &str) -> Result<BucketRecord>;

    /// At a satellite: have the directory site delete the bucket's record.
    /// Sent by the bucket's home after it deleted the empty bucket locally;
    /// from any other site the directory site deletes only a bucket it is
    /// the home of, and otherwise answers which site to ask.
    async fn delete_bucket(&self, record: &BucketRecord) -> Result<()>;

    /// Keep (true) or stop keeping (false) the mirror from restoring this
    /// bucket's record while its deletion is under way.
    fn hold_deleted(&self, record: &BucketRecord, held: bool);
}
