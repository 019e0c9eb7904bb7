//! The namespace: buckets and objects of every tenant, resolved inside the
//! caller's tenant so that one tenant can never name another's data.

mod access;
mod bucket;
pub mod global;
mod held;
pub mod list;
mod mapped;
pub mod multipart;
pub mod object;
mod pin;
mod read;
mod warm;

use crate::gc::Collector;
use crate::records::{BucketRecord, ObjectRecord, bucket_key};
use orbit_backend::{Backend, BackendSet};
use orbit_cache::{CachePool, ChunkCache};
use orbit_meta::{DecodeCache, MetaStore, Table};
use orbit_tenancy::{Caller, meta_error};
use orbit_types::{BucketName, Error, Resource, Result, TenantId};
use std::sync::Arc;
use std::time::Duration;

/// How many times an operation re-reads and retries after losing a race.
const MAX_CAS_RETRIES: usize = 16;
/// Decoded bucket and object records kept for hot reads (see `DecodeCache`).
const DECODED_BUCKETS: usize = 4096;
const DECODED_OBJECTS: usize = 8192;

#[derive(Clone)]
pub struct Namespace {
    meta: Arc<dyn MetaStore>,
    backends: BackendSet,
    cache: Option<CachePool>,
    /// Put written bytes into the cache as they stream to the backend.
    ingest_writes: bool,
    gc: Collector,
    site: String,
    decoded_buckets: Arc<DecodeCache<BucketRecord>>,
    decoded_objects: Arc<DecodeCache<ObjectRecord>>,
    /// Object metadata of mapped buckets, as their consistency modes allow.
    mapped_meta: Arc<mapped::MetaCache>,
    meter: crate::usage::meter::Meter,
    /// Set in a multi-site deployment: where bucket records are decided.
    bucket_directory: Arc<std::sync::OnceLock<Arc<dyn crate::BucketDirectory>>>,
    /// The home site's write gate (see `global`), when sites are configured.
    gate: Option<Arc<dyn global::WriteGate>>,
    /// The satellite path for buckets homed elsewhere, when sites are configured.
    remote: Option<Arc<dyn global::RemoteBuckets>>,
}

/// A bucket as read, with the exact stored bytes so a commit can require
/// that it still exists unchanged.
pub(crate) struct ResolvedBucket {
    pub record: BucketRecord,
    pub raw: Vec<u8>,
    pub key: Vec<u8>,
}

impl Namespace {
    pub fn new(meta: Arc<dyn MetaStore>, backends: BackendSet, site: impl Into<String>) -> Self {
        let gc = Collector::new(meta.clone(), backends.clone());
        let meter = crate::usage::meter::Meter::new(meta.clone());
        Self {
            meta,
            backends,
            cache: None,
            ingest_writes: false,
            gc,
            site: site.into(),
            decoded_buckets: Arc::new(DecodeCache::new(DECODED_BUCKETS)),
            decoded_objects: Arc::new(DecodeCache::new(DECODED_OBJECTS)),
            mapped_meta: Default::default(),
            meter,
            bucket_directory: Arc::default(),
            gate: None,
            remote: None,
        }
    }

    /// Join a multi-site deployment: bucket records are decided at the
    /// directory site (set once, before serving).
    pub fn set_bucket_directory(&self, directory: Arc<dyn crate::BucketDirectory>) {
        let _ = self.bucket_directory.set(directory);
    }

    pub(crate) fn bucket_directory(&self) -> Option<&Arc<dyn crate::BucketDirectory>> {
        self.bucket_directory.get()
    }

    /// The directory hook at a site that mirrors the directory (not the directory site).
    pub(crate) fn mirrored_directory(&self) -> Option<&Arc<dyn crate::BucketDirectory>> {
        self.bucket_directory.get().filter(|d| !d.is_directory_site())
    }

    /// This site's name (the home of the buckets it creates).
    pub fn site(&self) -> &str {
        &self.site
    }

    pub(crate) fn meta(&self) -> &Arc<dyn MetaStore> {
        &self.meta
    }

    /// The usage meter (billing records); front-ends report requests to it.
    pub fn meter(&self) -> &crate::usage::meter::Meter {
        &self.meter
    }

    /// Flush metering records every interval. Call once per process, and
    /// `meter().flush()` on shutdown.
    pub fn start_metering(&self) -> tokio::task::JoinHandle<()> {
        self.meter.spawn(crate::usage::FLUSH_INTERVAL)
    }

    /// Serve reads through the chunk caches of the pool.
    pub fn with_cache(mut self, cache: CachePool) -> Self {
        // Collected blobs leave the pinned tier too.
        self.gc = self.gc.with_cache(cache.clone());
        self.cache = Some(cache);
        self
    }

    /// The cache that holds a tenant's chunks (its share, or the shared cache).
    pub(crate) fn cache_for(&self, tenant: TenantId) -> Option<ChunkCache> {
        self.cache.as_ref().map(|p| p.for_owner(&tenant.to_string()))
    }

    /// Also cache what is written (write-through stays: a PUT is acknowledged
    /// once the backend has it).
    pub fn with_write_ingest(mut self, on: bool) -> Self {
        self.ingest_writes = on;
        self
    }

    /// Give a tenant its reserved cache partition (or take it away).
    pub async fn apply_cache_share(&self, tenant: TenantId, bytes: Option<u64>) -> Result<()> {
        let Some(pool) = &self.cache else { return Ok(()) };
        pool.set_share(&tenant.to_string(), bytes.map(|b| b as usize))
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))
    }

    /// The metadata store (for services that keep their own tables beside the namespace's).
    pub fn meta_store(&self) -> &dyn MetaStore {
        self.meta.as_ref()
    }

    pub fn cache(&self) -> Option<&CachePool> {
        self.cache.as_ref()
    }

    /// Start background work (blob collection). Call once per process.
    pub fn start_background(&self) -> tokio::task::JoinHandle<()> {
        self.gc.clone().spawn(Duration::from_secs(30))
    }

    /// Collect due garbage now (tests, admin).
    pub async fn collect_garbage(&self) -> Result<usize> {
        self.gc.run_once().await
    }

    /// `name=description` of every backend, for logs.
    pub fn backend_description(&self) -> String {
        self.backends.iter().map(|(n, b)| format!("{n}={}", b.describe())).collect::<Vec<_>>().join(", ")
    }

    pub(crate) fn backend(&self, name: &str) -> Result<&Arc<dyn Backend>> {
        self.backends
            .get(name)
            .ok_or_else(|| Error::Unavailable(format!("backend `{name}` is not configured on this site")))
    }

    /// Whether buckets may be placed on backend `name`: configured, and not
    /// one of the site's own (named with a leading `_`, such as the staging
    /// area of write leases).
    pub fn has_backend(&self, name: &str) -> bool {
        !name.starts_with('_') && self.backends.get(name).is_some()
    }

    pub(crate) async fn resolve_bucket(&self, tenant: TenantId, name: &str) -> Result<ResolvedBucket> {
        // An invalid name cannot exist; report it as missing like any other.
        let name = BucketName::new(name).map_err(|_| Error::NotFound(Resource::Bucket))?;
        let key = bucket_key(tenant, &name);
        let mut raw = self.meta.get(Table::Buckets, &key).await.map_err(meta_error)?;
        if raw.is_none()
            && let Some(d) = self.mirrored_directory()
        {
            // Perhaps created at another site moments ago: pull the directory, look again.
            d.refresh().await;
            raw = self.meta.get(Table::Buckets, &key).await.map_err(meta_error)?;
        }
        let raw = raw.ok_or(Error::NotFound(Resource::Bucket))?;
        let record = self.decoded_buckets.decode(&key, &raw).map_err(meta_error)?;
        Ok(ResolvedBucket { record, raw, key })
    }
}

pub(crate) fn require_write(caller: &Caller) -> Result<()> {
    if caller.role.can_write_data() { Ok(()) } else { Err(Error::AccessDenied) }
}
