//! One directory for every site: tenants, users, access keys, grants,
//! limits, QoS, quotas and bucket records are decided at one site, the
//! **directory site** (`directory_site`, by default the site itself), and
//! mirrored to every other site, so an access key created once works
//! everywhere and a bucket has the same id and home site everywhere.
//!
//! **What is mirrored, and why** ([`DIRECTORY_TABLES`]):
//! - `tenants`, `tenant_names`, `users`, `user_names`, `access_keys`,
//!   `user_keys`: who may call, resolved at every site without a round trip.
//!   Secrets stay sealed with the master key, which every site of one
//!   deployment must share; a satellite checks the directory site's sealed
//!   canary before applying anything and refuses ("master key differs from
//!   the directory site's") rather than mirror secrets it cannot open.
//! - `grants`, `tenant_limits`, `qos`, `quotas`, `audit_settings`: rules about
//!   those callers and their buckets; every site enforces them, so every site
//!   needs the same ones.
//! - `buckets`: the namespace itself. A bucket's `home_site` is the authority
//!   for its contents (the lease protocol reads it at every site).
//!
//! **Not mirrored:** objects, uploads, parts and the collection queue (the
//! home site's, reached through leases), usage counters and metering (each
//! site counts what it serves), audit chains (each site's own log),
//! prefetch jobs and mapped locations (a site's own cache and backends),
//! settings (the master-key canary is per data directory), and the system
//! tenant's records: each site keeps its own bootstrap operator, so an
//! operator signs admin requests with the credential of the site they talk to.
//!
//! **How:** the directory site wraps its store in [`VersionedStore`], which
//! counts commits touching these tables. A satellite's [`Mirror`] sends
//! `DirectoryPull` with the version it applied every pull interval (1 s by
//! default) and at once when a request names an unknown access key or bucket
//! (coalesced, at most 20 a second, and one a second while pulls fail). The
//! answer is `DirectoryUnchanged` (two integers compared: cheap), or a
//! `DirectorySnapshot` read while no directory commit was in flight, which the
//! mirror turns into one metadata transaction (puts of what differs, deletes
//! of what is gone), then drops resolved credentials and reapplies changed
//! QoS limits and cache shares. A removal reaches a satellite within one pull
//! interval plus a round trip while the directory site is reachable; when
//! it is not, satellites keep serving with the last copy they applied.
//!
//! **Buckets** are the exception to "eventually": S3 CreateBucket at a
//! satellite is forwarded (`DirectoryCreateBucket`), the directory site
//! commits it homed at the asking site and returns the record, which the
//! satellite applies before answering the client. DeleteBucket is decided by
//! the home site, the only one that holds the objects: it deletes the empty
//! bucket locally in one conditional commit (while the mirror is told not to
//! restore it), then has the directory site delete the record; elsewhere the
//! request goes to the directory site, which deletes only a bucket homed
//! there and otherwise names the home.

mod authority;
mod mirror;
mod tables;
mod versioned;

pub use authority::DirectoryAuthority;
pub use mirror::{DirectoryChannel, Mirror, MirrorStatus, PeerChannel, PullError, PullOutcome};
pub use tables::{DIRECTORY_TABLES, is_directory_table, read_directory};
pub use versioned::VersionedStore;

use async_trait::async_trait;
use orbit_core::{BucketDirectory, BucketRecord};
use orbit_types::{BucketName, Error, Result, TenantId};
use std::collections::BTreeSet;

/// The directory site's own part in the bucket rules: it creates and
/// deletes records itself, and knows which sites may be a bucket's home.
pub struct DirectorySiteBuckets {
    site: String,
    peers: BTreeSet<String>,
}

impl DirectorySiteBuckets {
    pub fn new(site: impl Into<String>, peers: impl IntoIterator<Item = String>) -> Self {
        Self { site: site.into(), peers: peers.into_iter().collect() }
    }
}

#[async_trait]
impl BucketDirectory for DirectorySiteBuckets {
    fn is_directory_site(&self) -> bool {
        true
    }

    fn knows_site(&self, site: &str) -> bool {
        site == self.site || self.peers.contains(site)
    }

    async fn refresh(&self) {}

    async fn create_bucket(&self, _: TenantId, _: &BucketName, _: &str) -> Result<BucketRecord> {
        Err(Error::Internal("the directory site creates buckets itself".into()))
    }

    async fn delete_bucket(&self, _: &BucketRecord) -> Result<()> {
        Err(Error::Internal("the directory site deletes buckets itself".into()))
    }

    fn hold_deleted(&self, _: &BucketRecord, _: bool) {}
}
