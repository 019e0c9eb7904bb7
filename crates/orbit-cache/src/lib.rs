//! The chunk cache. Object data is cached in fixed-size chunks of the
//! immutable blobs that hold it, so a ranged read of a huge object touches
//! only the chunks it needs, and a cached chunk can never be stale: a new
//! write makes a new blob, never changes an old one.
//!
//! foyer's hybrid cache (RAM, then an SSD tier that survives restarts) does
//! the work; this crate keeps its fast-moving API behind a small one of
//! ours. Every chunk carries a CRC32C: a corrupted or truncated copy is
//! dropped and fetched again, never served. Chunks of pinned prefixes are
//! kept as well in a tier that never evicts (`pinned`).

mod pinned;

pub use pinned::{PinnedStore, PinnedUsage};

use bytes::{Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, HybridCachePolicy,
    PsyncIoEngineConfig, RecoverMode,
};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const CRC_LEN: usize = 4;
/// Each cached chunk carries the time it was cached (ms since the epoch), for TTLs.
const STAMP_LEN: usize = 8;
/// Chunks remembered as missed once, for admission on the second miss.
const GHOSTS: usize = 65_536;

/// How one bucket's chunks are cached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkPolicy {
    /// Cache a chunk only when it is missed a second time (one-pass scans
    /// then do not flush what is hot).
    pub admit_on_second_miss: bool,
    /// Treat a cached chunk older than this as missing.
    pub ttl: Option<std::time::Duration>,
    /// The chunk belongs to a pinned prefix: keep it in the pinned tier.
    pub pin: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Bytes of chunk data kept in memory.
    pub ram_bytes: usize,
    /// Directory of the SSD tier; none means RAM only.
    pub ssd_dir: Option<PathBuf>,
    /// Bytes of the SSD tier.
    pub ssd_bytes: usize,
    /// Size of a chunk; reads are aligned to it.
    pub chunk_size: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { ram_bytes: 1 << 30, ssd_dir: None, ssd_bytes: 0, chunk_size: 4 << 20 }
    }
}

/// Enough shards for concurrency, but at least 64 chunks per shard.
fn shards_for(ram_bytes: usize, chunk_size: u64) -> usize {
    (ram_bytes / (chunk_size.max(1) as usize).saturating_mul(64)).clamp(1, 8)
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot open the cache: {0}")]
    Open(String),
}

/// Counters of what the cache did, for metrics and tests.
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub corrupt: AtomicU64,
}

/// Counts what the RAM tier evicts to make room (to the SSD tier, when
/// there is one, or out of the cache).
struct Evictions {
    count: metrics::Counter,
    bytes: metrics::Counter,
}

impl Evictions {
    fn new() -> Self {
        Self {
            count: metrics::counter!("orbit_cache_evictions_total", "tier" => "ram"),
            bytes: metrics::counter!("orbit_cache_evicted_bytes_total", "tier" => "ram"),
        }
    }
}

impl foyer::EventListener for Evictions {
    type Key = String;
    type Value = Bytes;

    fn on_leave(&self, reason: foyer::Event, _key: &String, value: &Bytes) {
        if reason == foyer::Event::Evict {
            self.count.increment(1);
            self.bytes.increment(value.len() as u64);
        }
    }
}

/// Where a hit was served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Ram,
    Ssd,
    Pinned,
}

impl Tier {
    const ALL: [Tier; 3] = [Tier::Ram, Tier::Ssd, Tier::Pinned];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Ram => "ram",
            Tier::Ssd => "ssd",
            Tier::Pinned => "pinned",
        }
    }
}

/// One owner's (tenant's) cache figures: kept as numbers for the admin API
/// and as Prometheus counters labelled with the owner's id. The handles are
/// made once per owner, so the hot path allocates no labels.
pub struct OwnerStats {
    hits: [AtomicU64; 3],
    hit_bytes: [AtomicU64; 3],
    misses: AtomicU64,
    miss_bytes: AtomicU64,
    hit_counters: [(metrics::Counter, metrics::Counter); 3],
    miss_counters: (metrics::Counter, metrics::Counter),
}

/// A snapshot of [`OwnerStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OwnerFigures {
    /// Hits and hit bytes by tier, in the order ram, ssd, pinned.
    pub hits: [u64; 3],
    pub hit_bytes: [u64; 3],
    pub misses: u64,
    pub miss_bytes: u64,
}

impl OwnerStats {
    fn new(owner: &str) -> Self {
        let o = owner.to_owned();
        let hit = |t: Tier| {
            (
                metrics::counter!("orbit_cache_hits_total", "tier" => t.as_str(), "tenant" => o.clone()),
                metrics::counter!("orbit_cache_hit_bytes_total", "tier" => t.as_str(), "tenant" => o.clone()),
            )
        };
        Self {
            hits: Default::default(),
            hit_bytes: Default::default(),
            misses: AtomicU64::new(0),
            miss_bytes: AtomicU64::new(0),
            hit_counters: Tier::ALL.map(hit),
            miss_counters: (
                metrics::counter!("orbit_cache_misses_total", "tenant" => o.clone()),
                metrics::counter!("orbit_cache_miss_bytes_total", "tenant" => o),
            ),
        }
    }

    fn hit(&self, tier: Tier, bytes: usize) {
        let i = tier as usize;
        self.hits[i].fetch_add(1, Ordering::Relaxed);
        self.hit_bytes[i].fetch_add(bytes as u64, Ordering::Relaxed);
        self.hit_counters[i].0.increment(1);
        self.hit_counters[i].1.increment(bytes as u64);
    }

    fn miss(&self, bytes: usize) {
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.miss_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.miss_counters.0.increment(1);
        self.miss_counters.1.increment(bytes as u64);
    }

    pub fn figures(&self) -> OwnerFigures {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OwnerFigures {
            hits: [load(&self.hits[0]), load(&self.hits[1]), load(&self.hits[2])],
            hit_bytes: [load(&self.hit_bytes[0]), load(&self.hit_bytes[1]), load(&self.hit_bytes[2])],
            misses: load(&self.misses),
            miss_bytes: load(&self.miss_bytes),
        }
    }
}

/// Which chunk: the blob (already unique per backend) and its index.
fn key(blob: &str, index: u64) -> String {
    format!("{blob}#{index}")
}

/// data ++ cached-at (8 bytes) ++ CRC32C of both (4 bytes).
fn seal(data: Bytes) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + STAMP_LEN + CRC_LEN);
    out.extend_from_slice(&data);
    out.extend_from_slice(&now_ms().to_be_bytes());
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &out) as u32;
    out.extend_from_slice(&crc.to_be_bytes());
    out.freeze()
}

/// The chunk's data and when it was cached, if its checksum holds.
fn open(sealed: &Bytes) -> Option<(Bytes, u64)> {
    let n = sealed.len().checked_sub(CRC_LEN)?;
    let want = u32::from_be_bytes(sealed[n..].try_into().ok()?);
    if crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &sealed[..n]) as u32 != want {
        return None;
    }
    let d = n.checked_sub(STAMP_LEN)?;
    let stamp = u64::from_be_bytes(sealed[d..n].try_into().ok()?);
    Some((sealed.slice(..d), stamp))
}

/// Chunks seen missing once, oldest forgotten first.
#[derive(Default)]
struct Ghosts {
    set: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Ghosts {
    /// Whether `k` was missed before; remembers it otherwise. A key stays
    /// remembered (until it ages out), so a fetch that fails on the second
    /// miss is admitted on the next.
    fn seen_before(&mut self, k: &str) -> bool {
        if self.set.contains(k) {
            return true;
        }
        if self.order.len() >= GHOSTS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(k.to_owned());
        self.order.push_back(k.to_owned());
        false
    }
}

#[derive(Clone)]
pub struct ChunkCache {
    inner: HybridCache<String, Bytes>,
    chunk_size: u64,
    stats: Arc<CacheStats>,
    ghosts: Arc<std::sync::Mutex<Ghosts>>,
    pinned: Option<Arc<PinnedStore>>,
    /// Whose reads this handle serves (set by [`CachePool::for_owner`]).
    owner: Arc<OwnerStats>,
}

impl ChunkCache {
    pub async fn open(config: &CacheConfig) -> Result<Self, CacheError> {
        let err = |e: foyer::Error| CacheError::Open(e.to_string());
        let builder = HybridCacheBuilder::new()
            .with_name("orbit-chunks")
            .with_event_listener(Arc::new(Evictions::new()))
            // Only what RAM evicts goes to SSD: hot chunks are written once.
            .with_policy(HybridCachePolicy::WriteOnEviction)
            .memory(config.ram_bytes.max(1))
            // Each shard evicts on its own: with few large chunks per shard an
            // unlucky shard would evict while the cache as a whole has room.
            .with_shards(shards_for(config.ram_bytes, config.chunk_size))
            .with_weighter(|k: &String, v: &Bytes| k.len() + v.len())
            .storage();
        let inner = match &config.ssd_dir {
            Some(dir) if config.ssd_bytes > 0 => {
                std::fs::create_dir_all(dir).map_err(|e| CacheError::Open(format!("{}: {e}", dir.display())))?;
                let device = FsDeviceBuilder::new(dir).with_capacity(config.ssd_bytes).build().map_err(err)?;
                // Blocks must hold a whole chunk with its key and checksum.
                let block = (config.chunk_size as usize + 64 * 1024).next_power_of_two().max(16 << 20);
                builder
                    .with_io_engine_config(PsyncIoEngineConfig::new())
                    .with_engine_config(BlockEngineConfig::new(device).with_block_size(block))
                    .with_recover_mode(RecoverMode::Quiet)
                    .build()
                    .await
                    .map_err(err)?
            }
            _ => builder.build().await.map_err(err)?,
        };
        Ok(Self {
            inner,
            chunk_size: config.chunk_size.max(4096),
            stats: Arc::new(CacheStats::default()),
            ghosts: Arc::default(),
            pinned: None,
            owner: Arc::new(OwnerStats::new("")),
        })
    }

    /// Keep the chunks of pinned prefixes in `store` too.
    pub fn with_pinned(mut self, store: Arc<PinnedStore>) -> Self {
        self.pinned = Some(store);
        self
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Chunk `index` of `blob`: from the cache, or from `fetch` (which must
    /// return exactly that chunk's bytes). Concurrent misses of the same
    /// chunk share one fetch.
    pub async fn get_or_fetch<F, Fut>(&self, blob: &str, index: u64, fetch: F) -> std::io::Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<Bytes>> + Send + 'static,
    {
        self.get_or_fetch_with(blob, index, ChunkPolicy::default(), fetch).await
    }

    /// As [`Self::get_or_fetch`], under a bucket's policy.
    pub async fn get_or_fetch_with<F, Fut>(
        &self,
        blob: &str,
        index: u64,
        policy: ChunkPolicy,
        fetch: F,
    ) -> std::io::Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::io::Result<Bytes>> + Send + 'static,
    {
        if let Some(data) = self.peek(blob, index, policy).await {
            return Ok(data);
        }
        let k = key(blob, index);
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        if !self.admits(&k, policy) {
            // First miss: serve it without caching it.
            let data = fetch().await?;
            self.owner.miss(data.len());
            return Ok(data);
        }
        let fut = fetch();
        let entry =
            self.inner.get_or_fetch(&k, move || async move { fut.await.map(seal) }).await.map_err(|e| keep_kind(&e))?;
        let data = open(entry.value())
            .map(|(data, _)| data)
            .ok_or_else(|| std::io::Error::other("a freshly fetched chunk failed its checksum"))?;
        self.owner.miss(data.len());
        self.keep_pinned(blob, index, policy, &data).await;
        Ok(data)
    }

    /// Chunk `index` of `blob` if the cache holds it intact and fresh under
    /// `policy` (a hit, counted as one); None is a miss the caller fetches.
    pub async fn peek(&self, blob: &str, index: u64, policy: ChunkPolicy) -> Option<Bytes> {
        let k = key(blob, index);
        // A cache that cannot read its own disk is a miss, never a failed request.
        let cached = self.inner.get(&k).await.unwrap_or_else(|e| {
            tracing::warn!(chunk = %k, error = %e, "chunk cache read failed; treating as a miss");
            None
        });
        if let Some(entry) = cached {
            match open(entry.value()) {
                Some((data, stamp))
                    if policy.ttl.is_none_or(|t| now_ms().saturating_sub(stamp) <= t.as_millis() as u64) =>
                {
                    self.stats.hits.fetch_add(1, Ordering::Relaxed);
                    let tier = if entry.source() == foyer::Source::Disk { Tier::Ssd } else { Tier::Ram };
                    self.owner.hit(tier, data.len());
                    return Some(data);
                }
                // Expired under this bucket's TTL: read it again.
                Some(_) => {
                    metrics::counter!("orbit_cache_expired_total").increment(1);
                }
                // A damaged copy: forget it and read the chunk again.
                None => {
                    self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("orbit_cache_corrupt_total").increment(1);
                    tracing::warn!(chunk = %k, "cached chunk failed its checksum; refetching");
                }
            }
            self.inner.remove(&k);
        }
        // A pinned chunk (expired from RAM, or not yet there after a restart).
        if policy.pin
            && let Some(store) = &self.pinned
            && let Some(data) = store.get(blob, index).await
        {
            self.owner.hit(Tier::Pinned, data.len());
            self.inner.insert(k, seal(data.clone()));
            return Some(data);
        }
        None
    }

    /// Keep a chunk that a reader fetched itself after a [`Self::peek`] miss
    /// (streamed through to its client as it arrived), exactly as
    /// [`Self::get_or_fetch_with`] would have kept it. `data` must be the
    /// whole chunk.
    pub async fn fill(&self, blob: &str, index: u64, policy: ChunkPolicy, data: Bytes) {
        let k = key(blob, index);
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        self.owner.miss(data.len());
        if !self.admits(&k, policy) {
            return;
        }
        self.inner.insert(k, seal(data.clone()));
        self.keep_pinned(blob, index, policy, &data).await;
    }

    /// Whether a missed chunk goes into the cache: always, unless the bucket
    /// admits on the second miss and this is the first.
    fn admits(&self, k: &str, policy: ChunkPolicy) -> bool {
        policy.pin || !policy.admit_on_second_miss || self.ghosts.lock().map(|mut g| g.seen_before(k)).unwrap_or(true)
    }

    async fn keep_pinned(&self, blob: &str, index: u64, policy: ChunkPolicy, data: &Bytes) {
        let Some(store) = self.pinned.as_ref().filter(|_| policy.pin) else { return };
        match store.put(blob, index, data.clone()).await {
            Ok(true) => {}
            Ok(false) => {
                metrics::counter!("orbit_cache_pinned_full_total").increment(1);
                tracing::warn!(blob, index, "the pinned tier is full; chunk cached without a pin");
            }
            Err(e) => tracing::warn!(blob, index, error = %e, "could not write a pinned chunk"),
        }
    }

    /// Drop a blob's chunks from the pinned tier (unpinned or collected).
    pub async fn unpin_blob(&self, blob: &str) -> u64 {
        match &self.pinned {
            Some(store) => store.forget_blob(blob).await,
            None => 0,
        }
    }

    /// The pinned tier's fill, if this cache has one.
    pub fn pinned_usage(&self) -> Option<PinnedUsage> {
        self.pinned.as_ref().map(|p| p.usage())
    }

    /// Store chunk `index` of `blob` (write ingestion); it must be exactly
    /// the bytes a fetch of that chunk would return.
    pub fn insert(&self, blob: &str, index: u64, data: Bytes) {
        self.inner.insert(key(blob, index), seal(data));
    }

    /// Store raw bytes as the sealed copy, to test that damaged copies are
    /// refetched (the `test-util` feature offers it to other crates' tests).
    #[cfg(any(test, feature = "test-util"))]
    pub fn insert_unsealed(&self, blob: &str, index: u64, raw: Bytes) {
        self.inner.insert(key(blob, index), raw);
    }

    /// Flush and close the SSD tier (on shutdown, so it is warm next time).
    pub async fn close(&self) {
        if let Err(e) = self.inner.close().await {
            tracing::warn!(error = %e, "closing the chunk cache failed");
        }
    }
}

/// What the pool knows of one owner: its partition, if it has a share, and
/// its figures.
#[derive(Clone)]
struct Owner {
    partition: Option<ChunkCache>,
    stats: Arc<OwnerStats>,
}

/// The site's caches: one shared by every owner (tenant), plus a partition
/// of its own for each owner given a share. A partition is guaranteed: what
/// others read can never evict it, however much they stream. Every cache of
/// the pool shares one pinned tier.
#[derive(Clone)]
pub struct CachePool {
    shared: ChunkCache,
    owners: Arc<std::sync::RwLock<std::collections::HashMap<String, Owner>>>,
}

impl CachePool {
    pub fn new(shared: ChunkCache) -> Self {
        Self { shared, owners: Arc::default() }
    }

    pub fn chunk_size(&self) -> u64 {
        self.shared.chunk_size
    }

    fn owner(&self, owner: &str) -> Owner {
        if let Some(o) = self.owners.read().ok().and_then(|o| o.get(owner).cloned()) {
            return o;
        }
        let mut owners = self.owners.write().unwrap_or_else(|p| p.into_inner());
        owners
            .entry(owner.to_owned())
            .or_insert_with(|| Owner { partition: None, stats: Arc::new(OwnerStats::new(owner)) })
            .clone()
    }

    /// The cache that holds `owner`'s chunks, counting in `owner`'s figures.
    pub fn for_owner(&self, owner: &str) -> ChunkCache {
        let o = self.owner(owner);
        let mut cache = o.partition.unwrap_or_else(|| self.shared.clone());
        cache.owner = o.stats;
        cache
    }

    /// `owner`'s hits and misses since the process started.
    pub fn figures(&self, owner: &str) -> OwnerFigures {
        self.owners.read().ok().and_then(|o| o.get(owner).map(|o| o.stats.figures())).unwrap_or_default()
    }

    /// The pinned tier's fill (one tier for the whole site).
    pub fn pinned_usage(&self) -> Option<PinnedUsage> {
        self.shared.pinned_usage()
    }

    /// Drop a blob's pinned chunks.
    pub async fn unpin_blob(&self, blob: &str) -> u64 {
        self.shared.unpin_blob(blob).await
    }

    /// Give `owner` a RAM partition of `ram_bytes` (None: back to the shared
    /// cache). A changed share starts empty.
    pub async fn set_share(&self, owner: &str, ram_bytes: Option<usize>) -> Result<(), CacheError> {
        let partition = match ram_bytes {
            Some(bytes) => {
                let config =
                    CacheConfig { ram_bytes: bytes, ssd_dir: None, ssd_bytes: 0, chunk_size: self.chunk_size() };
                let mut c = ChunkCache::open(&config).await?;
                c.pinned = self.shared.pinned.clone();
                Some(c)
            }
            None => None,
        };
        let stats = self.owner(owner).stats;
        let mut owners = self.owners.write().map_err(|_| CacheError::Open("cache partitions poisoned".into()))?;
        owners.insert(owner.to_owned(), Owner { partition, stats });
        Ok(())
    }

    /// Flush and close the shared cache's SSD tier.
    pub async fn close(&self) {
        self.shared.close().await;
    }
}

/// foyer wraps the fetcher's error in its own; keep the kind of the first
/// I/O error in the chain, so callers can still tell what went wrong (the
/// global namespace's "changed at home" travels as a kind).
fn keep_kind(e: &(dyn std::error::Error + 'static)) -> std::io::Error {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return std::io::Error::new(io.kind(), e.to_string());
        }
        cur = err.source();
    }
    std::io::Error::other(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn cfg() -> CacheConfig {
        CacheConfig { ram_bytes: 64 << 20, ssd_dir: None, ssd_bytes: 0, chunk_size: 1 << 20 }
    }

    #[tokio::test]
    async fn misses_fetch_once_then_hit() {
        let c = ChunkCache::open(&cfg()).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let calls = calls.clone();
            let got = c
                .get_or_fetch("b/x", 0, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Ok(Bytes::from_static(b"chunk"))
                })
                .await
                .unwrap();
            assert_eq!(got, Bytes::from_static(b"chunk"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(c.stats().hits.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch() {
        let c = ChunkCache::open(&cfg()).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (c, calls) = (c.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                c.get_or_fetch("b/y", 3, move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Bytes::from(vec![7u8; 1000]))
                })
                .await
                .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().len(), 1000);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failed_fetches_are_not_cached() {
        let c = ChunkCache::open(&cfg()).await.unwrap();
        let r = c.get_or_fetch("b/z", 0, || async { Err(std::io::Error::other("backend down")) }).await;
        assert!(r.is_err());
        let ok = c.get_or_fetch("b/z", 0, || async { Ok(Bytes::from_static(b"back")) }).await.unwrap();
        assert_eq!(ok, Bytes::from_static(b"back"));
    }

    /// A dataset smaller than the cache stays whole in it, whichever shard
    /// its chunks hash to (regression: 8 fixed shards evicted 4 MiB chunks
    /// from a 512 MiB cache holding 384 MiB).
    #[tokio::test]
    async fn a_dataset_smaller_than_the_cache_stays_cached() {
        let chunk = 4u64 << 20;
        let c = ChunkCache::open(&CacheConfig { ram_bytes: 512 << 20, ssd_dir: None, ssd_bytes: 0, chunk_size: chunk })
            .await
            .unwrap();
        let data = Bytes::from(vec![1u8; chunk as usize]);
        for i in 0..96u64 {
            let d = data.clone();
            c.get_or_fetch(&format!("b/blob-{i}"), 0, move || async move { Ok(d) }).await.unwrap();
        }
        for i in 0..96u64 {
            c.get_or_fetch(&format!("b/blob-{i}"), 0, || async { Err(std::io::Error::other("evicted")) })
                .await
                .unwrap_or_else(|_| panic!("chunk {i} was evicted from a cache with room for it"));
        }
        assert_eq!(shards_for(512 << 20, chunk), 2);
        assert_eq!(shards_for(64 << 30, chunk), 8);
        assert_eq!(shards_for(1 << 20, chunk), 1);
    }

    #[tokio::test]
    async fn a_share_is_never_evicted_by_another_owner() {
        let chunk = 64u64 << 10;
        let shared =
            ChunkCache::open(&CacheConfig { ram_bytes: 1 << 20, ssd_dir: None, ssd_bytes: 0, chunk_size: chunk })
                .await
                .unwrap();
        let pool = CachePool::new(shared);
        pool.set_share("tenant-a", Some(2 << 20)).await.unwrap();
        let data = Bytes::from(vec![3u8; chunk as usize]);
        for i in 0..16u64 {
            let d = data.clone();
            pool.for_owner("tenant-a").get_or_fetch("a/hot", i, move || async move { Ok(d) }).await.unwrap();
        }
        // Another tenant streams 64 times the shared cache through it.
        for i in 0..1024u64 {
            let d = data.clone();
            pool.for_owner("tenant-b").get_or_fetch("b/scan", i, move || async move { Ok(d) }).await.unwrap();
        }
        for i in 0..16u64 {
            pool.for_owner("tenant-a")
                .get_or_fetch("a/hot", i, || async { Err(std::io::Error::other("evicted")) })
                .await
                .unwrap_or_else(|_| panic!("tenant-a's chunk {i} was evicted by tenant-b"));
        }
        // Without its share, tenant-a is back in the shared cache (empty for it).
        pool.set_share("tenant-a", None).await.unwrap();
        assert!(
            pool.for_owner("tenant-a")
                .get_or_fetch("a/hot", 0, || async { Err(std::io::Error::other("gone")) })
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn second_miss_admission_and_ttl() {
        let c = ChunkCache::open(&cfg()).await.unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let fetch = |calls: Arc<AtomicUsize>| {
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from_static(b"scan"))
            }
        };
        let second = ChunkPolicy { admit_on_second_miss: true, ..Default::default() };
        for expected_calls in [1, 2, 2, 2] {
            c.get_or_fetch_with("b/s", 0, second, fetch(calls.clone())).await.unwrap();
            assert_eq!(calls.load(Ordering::SeqCst), expected_calls);
        }
        let short = ChunkPolicy { ttl: Some(Duration::from_millis(50)), ..Default::default() };
        let calls = Arc::new(AtomicUsize::new(0));
        c.get_or_fetch_with("b/ttl", 0, short, fetch(calls.clone())).await.unwrap();
        c.get_or_fetch_with("b/ttl", 0, short, fetch(calls.clone())).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(120)).await;
        c.get_or_fetch_with("b/ttl", 0, short, fetch(calls.clone())).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "an expired chunk must be fetched again");
    }

    /// Pinned chunks outlive RAM eviction and restarts; chunks of other
    /// owners streaming through never push them out.
    #[tokio::test]
    async fn pinned_chunks_are_never_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let chunk = 64u64 << 10;
        let config = CacheConfig { ram_bytes: 1 << 20, ssd_dir: None, ssd_bytes: 0, chunk_size: chunk };
        let pinned = Arc::new(PinnedStore::open(dir.path(), 4 << 20).unwrap());
        let pool = CachePool::new(ChunkCache::open(&config).await.unwrap().with_pinned(pinned.clone()));
        let pin = ChunkPolicy { pin: true, ..Default::default() };
        let data = Bytes::from(vec![9u8; chunk as usize]);
        for i in 0..32u64 {
            let d = data.clone();
            pool.for_owner("a").get_or_fetch_with("a/pinned", i, pin, move || async move { Ok(d) }).await.unwrap();
        }
        for i in 0..256u64 {
            let d = data.clone();
            pool.for_owner("b").get_or_fetch("b/scan", i, move || async move { Ok(d) }).await.unwrap();
        }
        for i in 0..32u64 {
            pool.for_owner("a")
                .get_or_fetch_with("a/pinned", i, pin, || async { Err(std::io::Error::other("evicted")) })
                .await
                .unwrap_or_else(|_| panic!("pinned chunk {i} was evicted"));
        }
        let a = pool.figures("a");
        assert_eq!(a.misses, 32);
        assert!(a.hits[Tier::Pinned as usize] > 0, "RAM was too small to hold them all: {a:?}");
        assert_eq!(pool.figures("b").misses, 256);
        // Unpinned, they are gone from the tier.
        assert_eq!(pool.pinned_usage().unwrap().chunks, 32);
        assert!(pool.unpin_blob("a/pinned").await > 0);
        assert_eq!(pool.pinned_usage().unwrap().chunks, 0);
    }

    #[tokio::test]
    async fn a_corrupt_copy_is_never_served() {
        let c = ChunkCache::open(&cfg()).await.unwrap();
        let mut bad = seal(Bytes::from_static(b"good data")).to_vec();
        bad[0] ^= 0xff;
        c.insert_unsealed("b/c", 0, Bytes::from(bad));
        let got = c.get_or_fetch("b/c", 0, || async { Ok(Bytes::from_static(b"good data")) }).await.unwrap();
        assert_eq!(got, Bytes::from_static(b"good data"));
        assert_eq!(c.stats().corrupt.load(Ordering::Relaxed), 1);
        // Truncated too.
        c.insert_unsealed("b/t", 0, Bytes::from_static(b"ab"));
        let got = c.get_or_fetch("b/t", 0, || async { Ok(Bytes::from_static(b"whole")) }).await.unwrap();
        assert_eq!(got, Bytes::from_static(b"whole"));
    }

    /// Damage every file of the SSD tier, then read: each chunk is either a
    /// verified cached copy or fetched again, never damaged bytes.
    #[tokio::test]
    async fn a_damaged_ssd_tier_is_never_served() {
        use std::io::{Read, Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let config = CacheConfig {
            ram_bytes: 1 << 20,
            ssd_dir: Some(dir.path().to_path_buf()),
            ssd_bytes: 64 << 20,
            chunk_size: 256 << 10,
        };
        let chunk = |i: u64| Bytes::from((0..256 << 10).map(|j| (j as u64 * 7 + i) as u8).collect::<Vec<u8>>());
        {
            let c = ChunkCache::open(&config).await.unwrap();
            for i in 0..8u64 {
                let data = chunk(i);
                c.get_or_fetch("b/dmg", i, move || async move { Ok(data) }).await.unwrap();
            }
            c.close().await;
        }
        let mut damaged = 0;
        for entry in std::fs::read_dir(dir.path()).unwrap().flatten() {
            let mut f = std::fs::OpenOptions::new().read(true).write(true).open(entry.path()).unwrap();
            let len = f.metadata().unwrap().len();
            let mut pos = 4096;
            while pos + 64 < len {
                let mut buf = [0u8; 64];
                f.seek(SeekFrom::Start(pos)).unwrap();
                f.read_exact(&mut buf).unwrap();
                for b in &mut buf {
                    *b ^= 0x5a;
                }
                f.seek(SeekFrom::Start(pos)).unwrap();
                f.write_all(&buf).unwrap();
                damaged += 1;
                pos += 32 * 1024;
            }
        }
        assert!(damaged > 0, "the SSD tier wrote nothing to damage");
        let c = ChunkCache::open(&config).await.unwrap();
        for i in 0..8u64 {
            let data = chunk(i);
            let got = c.get_or_fetch("b/dmg", i, move || async move { Ok(data) }).await.unwrap();
            assert_eq!(got, chunk(i), "chunk {i} was served damaged");
        }
    }

    #[tokio::test]
    async fn the_ssd_tier_is_warm_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = CacheConfig {
            ram_bytes: 1 << 20,
            ssd_dir: Some(dir.path().to_path_buf()),
            ssd_bytes: 64 << 20,
            chunk_size: 256 << 10,
        };
        {
            let c = ChunkCache::open(&config).await.unwrap();
            for i in 0..8u64 {
                let data = Bytes::from(vec![i as u8; 256 << 10]);
                c.get_or_fetch("b/warm", i, move || async move { Ok(data) }).await.unwrap();
            }
            c.close().await;
        }
        let c = ChunkCache::open(&config).await.unwrap();
        let mut served = 0;
        for i in 0..8u64 {
            let got = c
                .get_or_fetch("b/warm", i, || async { Err(std::io::Error::other("must come from the SSD tier")) })
                .await;
            if let Ok(d) = got {
                assert_eq!(d, Bytes::from(vec![i as u8; 256 << 10]));
                served += 1;
            }
        }
        assert!(served >= 4, "only {served} of 8 chunks survived the restart");
    }
}
