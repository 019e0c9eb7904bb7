//! Usage metering for billing: per tenant, bucket and hour, the requests by
//! class, bytes in and out, cache hits and byte-hours stored.
//!
//! Events are counted in memory (one short lock per event) and flushed to
//! the `metering` table every [`FLUSH_INTERVAL`] and on graceful shutdown,
//! so a kill -9 loses at most the events of one interval. Byte-hours are
//! integrated at each flush: every bucket's stored bytes (its usage
//! counter) times the time since the previous flush, split at hour
//! boundaries. The time of the last sample is persisted with the records,
//! so the time a server was down is still integrated when it comes back.
//! Global Prometheus counters (no tenant names) are bumped by the same
//! calls, so totals reconcile with the records.

use super::accounting::{BYTES, OBJECTS, bucket_counter, read_counter};
use crate::records::BucketRecord;
use orbit_meta::{MetaStore, MetaStoreExt, Table, Txn, decode, encode};
use orbit_tenancy::meta_error;
use orbit_types::{Error, Result, TenantId, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often counted events and stored bytes are written to the metadata store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
pub const HOUR_MS: i64 = 3_600_000;
/// Down time longer than this is not billed as storage (a clock jump, not an outage).
const MAX_GAP_MS: i64 = 31 * 24 * HOUR_MS;
const SAMPLED_KEY: &[u8] = b"metering.sampled_ms";

/// What a request does, as billing sees it. The front-end that knows the
/// protocol operation picks the class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestClass {
    /// GET, HEAD
    Read,
    /// PUT, COPY, POST, multipart
    Write,
    /// object, bucket, upload and part listings
    List,
    /// object, bucket and upload deletions
    Delete,
    /// anything else
    Other,
}

impl RequestClass {
    const ALL: [RequestClass; 5] =
        [RequestClass::Read, RequestClass::Write, RequestClass::List, RequestClass::Delete, RequestClass::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestClass::Read => "read",
            RequestClass::Write => "write",
            RequestClass::List => "list",
            RequestClass::Delete => "delete",
            RequestClass::Other => "other",
        }
    }
}

/// The figures of one tenant, bucket and hour.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterCounts {
    #[serde(default)]
    pub read_requests: u64,
    #[serde(default)]
    pub write_requests: u64,
    #[serde(default)]
    pub list_requests: u64,
    #[serde(default)]
    pub delete_requests: u64,
    #[serde(default)]
    pub other_requests: u64,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    /// Chunks (and their bytes sent) that reads found in the chunk cache.
    #[serde(default)]
    pub cache_hit_chunks: u64,
    #[serde(default)]
    pub cache_hit_bytes: u64,
    /// Stored bytes integrated over the hour, in byte-seconds.
    #[serde(default)]
    pub byte_seconds: u64,
    /// Stored bytes and objects at the hour's last sample.
    #[serde(default)]
    pub stored_bytes: u64,
    #[serde(default)]
    pub objects: u64,
}

impl MeterCounts {
    fn merge(&mut self, o: &MeterCounts, sampled: bool) {
        self.read_requests += o.read_requests;
        self.write_requests += o.write_requests;
        self.list_requests += o.list_requests;
        self.delete_requests += o.delete_requests;
        self.other_requests += o.other_requests;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        self.cache_hit_chunks += o.cache_hit_chunks;
        self.cache_hit_bytes += o.cache_hit_bytes;
        self.byte_seconds = self.byte_seconds.saturating_add(o.byte_seconds);
        if sampled {
            self.stored_bytes = o.stored_bytes;
            self.objects = o.objects;
        }
    }

    pub fn byte_hours(&self) -> f64 {
        self.byte_seconds as f64 / 3600.0
    }

    pub fn requests(&self) -> u64 {
        self.read_requests + self.write_requests + self.list_requests + self.delete_requests + self.other_requests
    }
}

/// One hourly record as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeterRecord {
    pub tenant_id: TenantId,
    /// Start of the hour, milliseconds since the Unix epoch.
    pub hour_ms: i64,
    /// The bucket name; empty for requests that name none (ListBuckets).
    pub bucket: String,
    pub counts: MeterCounts,
}

type Slot = (TenantId, i64, String);

fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

fn row_key(tenant: TenantId, hour_ms: i64, bucket: &str) -> Vec<u8> {
    let mut k = tenant.as_bytes().to_vec();
    k.extend_from_slice(&(hour_ms as u64).to_be_bytes());
    k.extend_from_slice(bucket.as_bytes());
    k
}

fn parse_row_key(k: &[u8]) -> Option<(TenantId, i64, String)> {
    let tenant = TenantId::from_slice(k.get(..16)?)?;
    let hour = u64::from_be_bytes(k.get(16..24)?.try_into().ok()?) as i64;
    let bucket = String::from_utf8(k.get(24..)?.to_vec()).ok()?;
    Some((tenant, hour, bucket))
}

/// Split the interval `from..to` (ms) into its pieces per hour.
pub(crate) fn split_hours(from: i64, to: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let hour = hour_of(t);
        let end = (hour + HOUR_MS).min(to);
        out.push((hour, end - t));
        t = end;
    }
    out
}

#[derive(Clone)]
pub struct Meter {
    inner: Arc<Inner>,
}

struct Inner {
    meta: Arc<dyn MetaStore>,
    pending: Pending,
    /// One flush at a time: the flusher is the only writer of the table.
    flushing: tokio::sync::Mutex<()>,
    counters: Counters,
}

/// Shards of the pending map: every request adds to it, so one lock for all
/// would serialise every worker thread of a busy server.
const PENDING_SHARDS: usize = 16;

/// Events counted and not yet flushed, by (tenant, hour), then bucket name
/// (looked up by `&str`, so counting an event allocates nothing once its
/// bucket has a row).
type Shard = HashMap<(TenantId, i64), HashMap<String, MeterCounts>>;

struct Pending {
    shards: Vec<Mutex<Shard>>,
}

impl Pending {
    fn new() -> Self {
        Self { shards: (0..PENDING_SHARDS).map(|_| Mutex::default()).collect() }
    }

    fn shard(&self, tenant: TenantId) -> &Mutex<Shard> {
        let b = tenant.as_bytes();
        &self.shards[(b[b.len() - 1] as usize) % PENDING_SHARDS]
    }

    fn add(&self, tenant: TenantId, hour: i64, bucket: &str, f: impl FnOnce(&mut MeterCounts)) {
        let mut shard = self.shard(tenant).lock().unwrap_or_else(|p| p.into_inner());
        let rows = shard.entry((tenant, hour)).or_default();
        match rows.get_mut(bucket) {
            Some(c) => f(c),
            None => f(rows.entry(bucket.to_owned()).or_default()),
        }
    }

    /// Everything counted so far, leaving nothing behind.
    fn take(&self) -> HashMap<Slot, MeterCounts> {
        let mut out = HashMap::new();
        for shard in &self.shards {
            let taken = std::mem::take(&mut *shard.lock().unwrap_or_else(|p| p.into_inner()));
            for ((tenant, hour), rows) in taken {
                for (bucket, counts) in rows {
                    out.insert((tenant, hour, bucket), counts);
                }
            }
        }
        out
    }

    /// Events a failed flush could not write, kept for the next one.
    fn put_back(&self, taken: HashMap<Slot, MeterCounts>) {
        for ((tenant, hour, bucket), v) in taken {
            self.add(tenant, hour, &bucket, |c| c.merge(&v, false));
        }
    }
}

/// The metering counters, made once (no registry lookup per event).
struct Counters {
    requests: [metrics::Counter; 5],
    bytes_in: metrics::Counter,
    bytes_out: metrics::Counter,
    cache_hits: metrics::Counter,
    cache_hit_bytes: metrics::Counter,
}

impl Counters {
    fn new() -> Self {
        Self {
            requests: RequestClass::ALL
                .map(|c| metrics::counter!("orbit_metered_requests_total", "class" => c.as_str())),
            bytes_in: metrics::counter!("orbit_metered_bytes_total", "direction" => "in"),
            bytes_out: metrics::counter!("orbit_metered_bytes_total", "direction" => "out"),
            cache_hits: metrics::counter!("orbit_metered_cache_hits_total"),
            cache_hit_bytes: metrics::counter!("orbit_metered_cache_hit_bytes_total"),
        }
    }
}

impl Meter {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Self {
            inner: Arc::new(Inner {
                meta,
                pending: Pending::new(),
                flushing: tokio::sync::Mutex::new(()),
                counters: Counters::new(),
            }),
        }
    }

    fn add(&self, tenant: TenantId, bucket: &str, f: impl FnOnce(&mut MeterCounts)) {
        self.inner.pending.add(tenant, hour_of(now_ms()), bucket, f);
    }

    /// A request of a tenant, on a bucket (empty: none named).
    pub fn request(&self, tenant: TenantId, bucket: &str, class: RequestClass) {
        self.inner.counters.requests[class as usize].increment(1);
        self.add(tenant, bucket, |c| match class {
            RequestClass::Read => c.read_requests += 1,
            RequestClass::Write => c.write_requests += 1,
            RequestClass::List => c.list_requests += 1,
            RequestClass::Delete => c.delete_requests += 1,
            RequestClass::Other => c.other_requests += 1,
        });
    }

    /// Body bytes a write stored.
    pub fn bytes_in(&self, tenant: TenantId, bucket: &str, n: u64) {
        self.inner.counters.bytes_in.increment(n);
        self.add(tenant, bucket, |c| c.bytes_in += n);
    }

    /// Body bytes a read sent.
    pub fn bytes_out(&self, tenant: TenantId, bucket: &str, n: u64) {
        self.inner.counters.bytes_out.increment(n);
        self.add(tenant, bucket, |c| c.bytes_out += n);
    }

    /// A chunk a read found in the cache, and how many of its bytes it sent.
    pub fn cache_hit(&self, tenant: TenantId, bucket: &str, bytes: u64) {
        self.inner.counters.cache_hits.increment(1);
        self.inner.counters.cache_hit_bytes.increment(bytes);
        self.add(tenant, bucket, |c| {
            c.cache_hit_chunks += 1;
            c.cache_hit_bytes += bytes;
        });
    }

    /// Flush every FLUSH_INTERVAL until the process ends.
    pub fn spawn(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let meter = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = meter.flush().await {
                    tracing::warn!(error = %e, "metering flush failed; the events are kept for the next one");
                }
            }
        })
    }

    /// Write the counted events and a stored-bytes sample to the store.
    pub async fn flush(&self) -> Result<()> {
        let _one = self.inner.flushing.lock().await;
        let meta = &*self.inner.meta;
        let taken = self.inner.pending.take();
        let result = async {
            let now = now_ms();
            let sampled_raw = meta.get(Table::Settings, SAMPLED_KEY).await.map_err(meta_error)?;
            let last = sampled_raw
                .as_deref()
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(i64::from_be_bytes)
                .filter(|&t| t <= now && now - t <= MAX_GAP_MS)
                .unwrap_or(now);
            let mut slots: HashMap<Slot, (MeterCounts, bool)> =
                taken.iter().map(|(k, v)| (k.clone(), (v.clone(), false))).collect();
            for b in all_buckets(meta).await? {
                let bytes = read_counter(meta, &bucket_counter(b.tenant_id, b.id, BYTES)).await?.max(0) as u64;
                let objects = read_counter(meta, &bucket_counter(b.tenant_id, b.id, OBJECTS)).await?.max(0) as u64;
                let slot = (b.tenant_id, hour_of(now), b.name.to_string());
                // An empty bucket with no activity adds nothing: skip its row. One
                // emptied by this interval's deletes has events, so its 0 is sampled.
                if bytes == 0 && objects == 0 && !slots.contains_key(&slot) {
                    continue;
                }
                for (hour, ms) in split_hours(last, now) {
                    let e = slots.entry((b.tenant_id, hour, b.name.to_string())).or_default();
                    e.0.byte_seconds = e.0.byte_seconds.saturating_add(((bytes as u128 * ms as u128) / 1000) as u64);
                }
                let e = slots.entry(slot).or_default();
                e.0.stored_bytes = bytes;
                e.0.objects = objects;
                e.1 = true;
            }
            let mut txn = Txn::new().require_current(Table::Settings, SAMPLED_KEY.to_vec(), sampled_raw).put(
                Table::Settings,
                SAMPLED_KEY.to_vec(),
                now.to_be_bytes().to_vec(),
            );
            for ((tenant, hour, bucket), (counts, sampled)) in slots {
                let key = row_key(tenant, hour, &bucket);
                let raw = meta.get(Table::Metering, &key).await.map_err(meta_error)?;
                let mut row: MeterCounts = match &raw {
                    Some(r) => decode(r).map_err(meta_error)?,
                    None => MeterCounts::default(),
                };
                row.merge(&counts, sampled);
                txn = txn.require_current(Table::Metering, key.clone(), raw).put(Table::Metering, key, encode(&row));
            }
            meta.commit(txn).await.map_err(meta_error)
        }
        .await;
        if result.is_err() {
            // Keep the events for the next flush.
            self.inner.pending.put_back(taken);
        }
        result
    }

    /// The hourly records of a tenant whose hour starts in `from_ms..to_ms`,
    /// after flushing what is counted so far, so a report is current.
    pub async fn report(
        &self,
        tenant: TenantId,
        bucket: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<MeterRecord>> {
        self.flush().await?;
        let meta = &*self.inner.meta;
        let start = row_key(tenant, hour_of(from_ms.max(0)), "");
        let end = row_key(tenant, to_ms.max(0), "");
        let mut out = Vec::new();
        let mut after = std::ops::Bound::Included(start);
        loop {
            let rows = meta
                .scan(Table::Metering, after.clone(), std::ops::Bound::Excluded(end.clone()), 1000)
                .await
                .map_err(meta_error)?;
            let done = rows.len() < 1000;
            for (k, v) in rows {
                after = std::ops::Bound::Excluded(k.clone());
                let (t, hour_ms, b) =
                    parse_row_key(&k).ok_or_else(|| Error::Internal("a metering key is malformed".into()))?;
                if t != tenant || bucket.is_some_and(|want| want != b) {
                    continue;
                }
                out.push(MeterRecord { tenant_id: t, hour_ms, bucket: b, counts: decode(&v).map_err(meta_error)? });
            }
            if done {
                return Ok(out);
            }
        }
    }
}

async fn all_buckets(meta: &dyn MetaStore) -> Result<Vec<BucketRecord>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = meta.scan_prefix(Table::Buckets, b"", after.as_deref(), 1000).await.map_err(meta_error)?;
        let done = rows.len() < 1000;
        for (k, v) in rows {
            out.push(decode::<BucketRecord>(&v).map_err(meta_error)?);
            after = Some(k);
        }
        if done {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit_meta::MemoryStore;

    #[test]
    fn intervals_split_at_hour_boundaries() {
        assert_eq!(split_hours(0, 10), vec![(0, 10)]);
        assert_eq!(split_hours(HOUR_MS - 5, HOUR_MS + 7), vec![(0, 5), (HOUR_MS, 7)]);
        assert_eq!(split_hours(10, 10), vec![]);
        let long = split_hours(100, 3 * HOUR_MS + 1);
        assert_eq!(long.len(), 4);
        assert_eq!(long.iter().map(|(_, ms)| ms).sum::<i64>(), 3 * HOUR_MS + 1 - 100);
    }

    #[test]
    fn row_keys_round_trip_and_sort_by_hour() {
        let t = TenantId::generate();
        let k = row_key(t, 7 * HOUR_MS, "data");
        assert_eq!(parse_row_key(&k), Some((t, 7 * HOUR_MS, "data".to_owned())));
        assert!(row_key(t, HOUR_MS, "zzz") < row_key(t, 2 * HOUR_MS, ""));
    }

    #[tokio::test]
    async fn events_are_counted_flushed_and_reported_exactly() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let m = Meter::new(meta.clone());
        let (a, b) = (TenantId::generate(), TenantId::generate());
        for _ in 0..3 {
            m.request(a, "x", RequestClass::Write);
        }
        m.request(a, "x", RequestClass::Read);
        m.request(a, "", RequestClass::List);
        m.request(b, "x", RequestClass::Delete);
        m.bytes_in(a, "x", 300);
        m.bytes_out(a, "x", 120);
        m.cache_hit(a, "x", 100);
        m.flush().await.unwrap();
        // A second flush adds to the same hour's record, never replaces it.
        m.request(a, "x", RequestClass::Write);
        let recs = m.report(a, None, 0, i64::MAX / 2).await.unwrap();
        assert_eq!(recs.len(), 2);
        let x = recs.iter().find(|r| r.bucket == "x").unwrap();
        assert_eq!(x.counts.write_requests, 4);
        assert_eq!(x.counts.read_requests, 1);
        assert_eq!((x.counts.bytes_in, x.counts.bytes_out), (300, 120));
        assert_eq!((x.counts.cache_hit_chunks, x.counts.cache_hit_bytes), (1, 100));
        assert_eq!(recs.iter().find(|r| r.bucket.is_empty()).unwrap().counts.list_requests, 1);
        // Another tenant's records are not in this report, and a bucket filter filters.
        let only_b = m.report(b, Some("x"), 0, i64::MAX / 2).await.unwrap();
        assert_eq!(only_b.len(), 1);
        assert_eq!(only_b[0].counts.requests(), 1);
        assert!(m.report(a, Some("nope"), 0, i64::MAX / 2).await.unwrap().is_empty());
        // Survives a new meter over the same store (a restart).
        let again = Meter::new(meta).report(a, Some("x"), 0, i64::MAX / 2).await.unwrap();
        assert_eq!(again[0].counts.write_requests, 4);
    }

    #[tokio::test]
    async fn stored_bytes_are_integrated_since_the_last_sample_even_across_a_restart() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let tenant = TenantId::generate();
        let name = orbit_types::BucketName::new("data").unwrap();
        let rec = BucketRecord {
            id: orbit_types::BucketId::generate(),
            tenant_id: tenant,
            name: name.clone(),
            created_ms: 0,
            home_site: "s".into(),
            backend: "default".into(),
            cache: Default::default(),
            mapped: None,
            pinned_prefixes: Vec::new(),
        };
        let empty =
            BucketRecord { id: orbit_types::BucketId::generate(), name: "empty".parse().unwrap(), ..rec.clone() };
        let mut txn = Txn::new().put(Table::Buckets, crate::records::bucket_key(tenant, &name), encode(&rec)).put(
            Table::Buckets,
            crate::records::bucket_key(tenant, &empty.name),
            encode(&empty),
        );
        txn.push_add(Table::Usage, bucket_counter(tenant, rec.id, BYTES), 7200);
        txn.push_add(Table::Usage, bucket_counter(tenant, rec.id, OBJECTS), 2);
        // The previous sample was 10 s ago (a server that was down for 10 s).
        let last = now_ms() - 10_000;
        txn.push_put(Table::Settings, SAMPLED_KEY.to_vec(), last.to_be_bytes().to_vec());
        meta.commit(txn).await.unwrap();
        let recs = Meter::new(meta).report(tenant, None, 0, i64::MAX / 2).await.unwrap();
        // The empty, idle bucket has no record.
        assert!(recs.iter().all(|r| r.bucket == "data"), "{recs:?}");
        let seconds: u64 = recs.iter().map(|r| r.counts.byte_seconds).sum();
        // 7200 bytes for at least 10 s (and less than a minute, however slow the machine).
        assert!((7200 * 10..7200 * 60).contains(&seconds), "{seconds}");
        let latest = recs.iter().max_by_key(|r| r.hour_ms).unwrap();
        assert_eq!((latest.counts.stored_bytes, latest.counts.objects), (7200, 2));
    }

    #[tokio::test]
    async fn a_crash_loses_only_what_was_not_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.redb");
        let tenant = TenantId::generate();
        {
            let meta: Arc<dyn MetaStore> = Arc::new(orbit_meta::RedbStore::open(&path).unwrap());
            let m = Meter::new(meta);
            m.request(tenant, "x", RequestClass::Write);
            m.bytes_in(tenant, "x", 10);
            m.flush().await.unwrap();
            // Counted after the last flush, then the process dies without one.
            m.request(tenant, "x", RequestClass::Write);
        }
        let meta: Arc<dyn MetaStore> = Arc::new(orbit_meta::RedbStore::open(&path).unwrap());
        let recs = Meter::new(meta).report(tenant, Some("x"), 0, i64::MAX / 2).await.unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!((recs[0].counts.write_requests, recs[0].counts.bytes_in), (1, 10));
    }
}
