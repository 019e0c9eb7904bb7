//! Quality of service: request-rate and bandwidth limits per tenant and per
//! bucket, read and write apart, as token buckets (governor's GCRA).
//!
//! Limits are records in the metadata store (`Table::Qos`); the registry
//! keeps one limiter set per limited scope in memory, loaded at start-up and
//! replaced whenever the operator changes a limit, so the hot path is a map
//! lookup under a read lock and never a metadata read.
//!
//! Request rates are enforced by refusal ([`Qos::admit`] answers
//! `Error::SlowDown` with the time until a token is free); bandwidth by
//! pacing bodies ([`BytePacer`] says how long to wait before the next piece),
//! so a large object is slowed down, never refused half-way.

use crate::directory::meta_error;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use orbit_meta::{MetaStore, MetaStoreExt, Table, Txn, encode};
use orbit_types::{BucketName, Error, Result, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Bandwidth limiters count cells of this many bytes, so that rates up to
/// terabytes per second fit governor's 32-bit cell counts.
pub const BYTE_CELL: u64 = 1024;
/// Burst allowance when none is given: one second's worth of each rate.
pub const DEFAULT_BURST_SECONDS: f64 = 1.0;
const MAX_BURST_SECONDS: f64 = 3600.0;

/// Which way a request moves data: reads (GET, HEAD, listings) and writes
/// (everything else) have limits of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Read,
    Write,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Read => "read",
            Direction::Write => "write",
        }
    }
}

/// The limits of one scope (a tenant, or one bucket of a tenant). `None`
/// means unlimited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QosLimits {
    /// Read requests per second.
    #[serde(default)]
    pub read_rps: Option<u32>,
    /// Write requests per second.
    #[serde(default)]
    pub write_rps: Option<u32>,
    /// Bytes per second of object bodies read.
    #[serde(default)]
    pub read_bps: Option<u64>,
    /// Bytes per second of object bodies written.
    #[serde(default)]
    pub write_bps: Option<u64>,
    /// How many seconds' worth of each rate may be used at once after a
    /// quiet period (default 1).
    #[serde(default)]
    pub burst_seconds: Option<f64>,
}

impl QosLimits {
    pub fn is_unlimited(&self) -> bool {
        self.read_rps.is_none() && self.write_rps.is_none() && self.read_bps.is_none() && self.write_bps.is_none()
    }

    pub fn burst_seconds(&self) -> f64 {
        self.burst_seconds.unwrap_or(DEFAULT_BURST_SECONDS)
    }

    /// Refuse values no limiter can represent, naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        let burst = self.burst_seconds();
        if !burst.is_finite() || burst <= 0.0 || burst > MAX_BURST_SECONDS {
            return bad(format!("burst_seconds must be more than 0 and at most {MAX_BURST_SECONDS}, got {burst}"));
        }
        for (name, v) in [("read_rps", self.read_rps), ("write_rps", self.write_rps)] {
            match v {
                Some(0) => return bad(format!("{name} must be at least 1 (leave it unset for no limit)")),
                Some(r) if burst_cells(u64::from(r), burst).is_none() => {
                    return bad(format!("{name} times burst_seconds is too large"));
                }
                _ => {}
            }
        }
        for (name, v) in [("read_bps", self.read_bps), ("write_bps", self.write_bps)] {
            match v {
                Some(b) if b < BYTE_CELL => {
                    return bad(format!(
                        "{name} must be at least {BYTE_CELL} bytes per second (leave it unset for no limit)"
                    ));
                }
                Some(b) if u32::try_from(b.div_ceil(BYTE_CELL)).is_err() => {
                    return bad(format!(
                        "{name} is too large (at most {} bytes per second)",
                        u64::from(u32::MAX) * BYTE_CELL
                    ));
                }
                Some(b) if burst_cells(b.div_ceil(BYTE_CELL), burst).is_none() => {
                    return bad(format!("{name} times burst_seconds is too large"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Cells a bucket of `rate` per second holds for `burst` seconds (at least
/// one), or None when that does not fit in 32 bits.
fn burst_cells(rate: u64, burst: f64) -> Option<NonZeroU32> {
    let cells = (rate as f64 * burst).round().max(1.0);
    if cells > f64::from(u32::MAX) {
        return None;
    }
    NonZeroU32::new(cells as u32)
}

/// Where a limit applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum QosScope {
    Tenant(TenantId),
    Bucket(TenantId, BucketName),
}

impl QosScope {
    fn key(&self) -> Vec<u8> {
        match self {
            QosScope::Tenant(t) => t.as_bytes().to_vec(),
            QosScope::Bucket(t, b) => [t.as_bytes().as_slice(), b.as_str().as_bytes()].concat(),
        }
    }

    fn from_key(key: &[u8]) -> Option<QosScope> {
        let tenant = TenantId::from_slice(key.get(..16)?)?;
        match &key[16..] {
            [] => Some(QosScope::Tenant(tenant)),
            name => BucketName::new(std::str::from_utf8(name).ok()?).ok().map(|b| QosScope::Bucket(tenant, b)),
        }
    }
}

type Limiter<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The live limiters of one scope, built from its limits.
struct Limiters<C: Clock + Clone> {
    limits: QosLimits,
    read_rps: Option<Limiter<C>>,
    write_rps: Option<Limiter<C>>,
    read_bytes: Option<(Limiter<C>, u32)>,
    write_bytes: Option<(Limiter<C>, u32)>,
}

impl<C: Clock + Clone> Limiters<C> {
    fn build(limits: QosLimits, clock: &C) -> Self {
        let burst = limits.burst_seconds();
        let make = |rate: u64| -> Option<(Limiter<C>, u32)> {
            let per_sec = NonZeroU32::new(u32::try_from(rate).ok()?)?;
            let cells = burst_cells(rate, burst)?;
            Some((
                Limiter::direct_with_clock(Quota::per_second(per_sec).allow_burst(cells), clock.clone()),
                cells.get(),
            ))
        };
        Self {
            read_rps: limits.read_rps.and_then(|r| make(u64::from(r))).map(|(l, _)| l),
            write_rps: limits.write_rps.and_then(|r| make(u64::from(r))).map(|(l, _)| l),
            read_bytes: limits.read_bps.and_then(|b| make(b.div_ceil(BYTE_CELL))),
            write_bytes: limits.write_bps.and_then(|b| make(b.div_ceil(BYTE_CELL))),
            limits,
        }
    }

    fn requests(&self, d: Direction) -> Option<&Limiter<C>> {
        match d {
            Direction::Read => self.read_rps.as_ref(),
            Direction::Write => self.write_rps.as_ref(),
        }
    }

    fn bytes(&self, d: Direction) -> Option<&(Limiter<C>, u32)> {
        match d {
            Direction::Read => self.read_bytes.as_ref(),
            Direction::Write => self.write_bytes.as_ref(),
        }
    }
}

/// One limited scope. The slot outlives changes of its limits, so a body
/// being paced picks up a new bandwidth limit at its next piece.
struct Slot<C: Clock + Clone> {
    current: RwLock<Arc<Limiters<C>>>,
}

impl<C: Clock + Clone> Slot<C> {
    fn get(&self) -> Arc<Limiters<C>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

struct TenantSlots<C: Clock + Clone> {
    own: Option<Arc<Slot<C>>>,
    buckets: HashMap<String, Arc<Slot<C>>>,
}

impl<C: Clock + Clone> Default for TenantSlots<C> {
    fn default() -> Self {
        Self { own: None, buckets: HashMap::new() }
    }
}

/// The QoS limits of the site: stored records and their live limiters.
/// Cheap to clone (shared state).
pub struct Qos<C: Clock + Clone = DefaultClock> {
    meta: Arc<dyn MetaStore>,
    clock: C,
    slots: Arc<RwLock<HashMap<TenantId, TenantSlots<C>>>>,
}

impl<C: Clock + Clone> Clone for Qos<C> {
    fn clone(&self) -> Self {
        Self { meta: self.meta.clone(), clock: self.clock.clone(), slots: self.slots.clone() }
    }
}

impl Qos<DefaultClock> {
    pub fn new(meta: Arc<dyn MetaStore>) -> Self {
        Self::with_clock(meta, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Qos<C> {
    /// A registry on a clock of the caller's (tests drive a fake one).
    pub fn with_clock(meta: Arc<dyn MetaStore>, clock: C) -> Self {
        Self { meta, clock, slots: Arc::new(RwLock::new(HashMap::new())) }
    }

    /// Load every stored limit (at start-up).
    pub async fn load(&self) -> Result<()> {
        let rows = self.meta.scan_prefix(Table::Qos, b"", None, usize::MAX).await.map_err(meta_error)?;
        for (key, value) in rows {
            let Some(scope) = QosScope::from_key(&key) else {
                return Err(Error::Internal("a QoS record has a malformed key".into()));
            };
            let limits: QosLimits = orbit_meta::decode(&value).map_err(meta_error)?;
            self.install(&scope, limits);
        }
        Ok(())
    }

    /// Apply the stored limits of the scope with this `qos` table key (none
    /// stored: unlimited), after the record changed behind the registry's
    /// back (mirrored from the directory site).
    pub async fn reload_key(&self, key: &[u8]) -> Result<()> {
        let Some(scope) = QosScope::from_key(key) else {
            return Err(Error::Internal("a QoS record has a malformed key".into()));
        };
        let limits = self.meta.get_record(Table::Qos, key).await.map_err(meta_error)?.unwrap_or_default();
        self.install(&scope, limits);
        Ok(())
    }

    /// The stored limits of a scope (all unset when none were set).
    pub async fn get(&self, scope: &QosScope) -> Result<QosLimits> {
        Ok(self.meta.get_record(Table::Qos, &scope.key()).await.map_err(meta_error)?.unwrap_or_default())
    }

    /// Store new limits for a scope and apply them at once. Limits that
    /// are all unset remove the record.
    pub async fn set(&self, scope: &QosScope, limits: QosLimits) -> Result<QosLimits> {
        limits.validate()?;
        let txn = if limits.is_unlimited() {
            Txn::new().delete(Table::Qos, scope.key())
        } else {
            Txn::new().put(Table::Qos, scope.key(), encode(&limits))
        };
        self.meta.commit(txn).await.map_err(meta_error)?;
        self.install(scope, limits.clone());
        Ok(limits)
    }

    /// Remove every limit of a scope.
    pub async fn clear(&self, scope: &QosScope) -> Result<()> {
        self.set(scope, QosLimits::default()).await.map(|_| ())
    }

    fn install(&self, scope: &QosScope, limits: QosLimits) {
        let fresh = Arc::new(Limiters::build(limits, &self.clock));
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let tenant = match scope {
            QosScope::Tenant(t) | QosScope::Bucket(t, _) => *t,
        };
        let entry = slots.entry(tenant).or_default();
        let slot = match scope {
            QosScope::Tenant(_) => &mut entry.own,
            QosScope::Bucket(_, b) => {
                if fresh.limits.is_unlimited() && !entry.buckets.contains_key(b.as_str()) {
                    return;
                }
                let s = entry.buckets.entry(b.as_str().to_owned()).or_insert_with(|| {
                    Arc::new(Slot {
                        current: RwLock::new(Arc::new(Limiters::build(QosLimits::default(), &self.clock))),
                    })
                });
                *s.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
                return;
            }
        };
        // Slots stay once made (unlimited when cleared): bodies being paced hold them.
        match slot {
            Some(s) => *s.current.write().unwrap_or_else(|e| e.into_inner()) = fresh,
            None if fresh.limits.is_unlimited() => {}
            None => *slot = Some(Arc::new(Slot { current: RwLock::new(fresh) })),
        }
    }

    /// Decide whether a request may start: takes one token from the request
    /// rate limiter of the tenant and of the bucket (when limited). Refused
    /// with `Error::SlowDown` and the seconds until a token is free. The
    /// pacer returned paces the request's body under the bandwidth limits.
    pub fn admit(&self, tenant: TenantId, bucket: Option<&str>, direction: Direction) -> Result<BytePacer<C>> {
        let scopes: Vec<Arc<Slot<C>>> = {
            let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
            match slots.get(&tenant) {
                None => return Ok(BytePacer::unlimited(direction, self.clock.clone())),
                Some(t) => t.own.iter().chain(bucket.and_then(|b| t.buckets.get(b))).cloned().collect(),
            }
        };
        for slot in &scopes {
            if let Some(limiter) = slot.get().requests(direction)
                && let Err(not_until) = limiter.check()
            {
                let wait = not_until.wait_time_from(self.clock.now());
                metrics::counter!("orbit_qos_throttled_total", "direction" => direction.as_str()).increment(1);
                return Err(Error::SlowDown { retry_after_secs: retry_after_secs(wait) });
            }
        }
        Ok(BytePacer { direction, clock: self.clock.clone(), scopes, stage: 0 })
    }
}

/// Whole seconds to tell a client to wait: rounded up, at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_nanos().div_ceil(1_000_000_000).max(1) as u64
}

/// Paces one request's body under the bandwidth limits of its tenant and
/// bucket. The caller splits the body into pieces of at most
/// [`BytePacer::max_piece`] bytes and, for each, calls [`BytePacer::reserve`]
/// until it answers None, sleeping for each wait it answers.
pub struct BytePacer<C: Clock + Clone = DefaultClock> {
    direction: Direction,
    clock: C,
    scopes: Vec<Arc<Slot<C>>>,
    /// Scopes whose tokens the current piece already holds: each scope is
    /// charged once per piece, in order, so none is charged twice.
    stage: usize,
}

impl<C: Clock + Clone> Clone for BytePacer<C> {
    fn clone(&self) -> Self {
        Self { direction: self.direction, clock: self.clock.clone(), scopes: self.scopes.clone(), stage: 0 }
    }
}

impl<C: Clock + Clone> BytePacer<C> {
    pub fn direction(&self) -> Direction {
        self.direction
    }

    fn unlimited(direction: Direction, clock: C) -> Self {
        Self { direction, clock, scopes: Vec::new(), stage: 0 }
    }

    /// Whether any bandwidth limit may apply (a limit set later on a scope
    /// this request was admitted under applies too).
    pub fn is_paced(&self) -> bool {
        !self.scopes.is_empty()
    }

    /// The largest piece the limits can pass at once: at most their burst,
    /// and small enough to keep the flow smooth.
    pub fn max_piece(&self) -> usize {
        const SMOOTH: u64 = 256 * 1024;
        self.scopes
            .iter()
            .filter_map(|s| s.get().bytes(self.direction).map(|(_, burst)| u64::from(*burst) * BYTE_CELL))
            .fold(SMOOTH, u64::min) as usize
    }

    /// Charge `len` bytes. None: the piece may go now. Some(wait): try
    /// again (with the same piece) after `wait`.
    pub fn reserve(&mut self, len: usize) -> Option<Duration> {
        let cells = (len as u64).div_ceil(BYTE_CELL);
        while self.stage < self.scopes.len() {
            let limiters = self.scopes[self.stage].get();
            if let Some((limiter, burst)) = limiters.bytes(self.direction)
                && let Some(n) = NonZeroU32::new(u32::try_from(cells).unwrap_or(u32::MAX).min(*burst))
            {
                // A piece larger than the burst (the limit shrank mid-body) is charged the burst.
                if let Ok(Err(not_until)) = limiter.check_n(n) {
                    return Some(not_until.wait_time_from(self.clock.now()));
                }
            }
            self.stage += 1;
        }
        self.stage = 0;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use orbit_meta::MemoryStore;

    fn registry() -> (Qos<FakeRelativeClock>, FakeRelativeClock, Arc<dyn MetaStore>) {
        let clock = FakeRelativeClock::default();
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        (Qos::with_clock(meta.clone(), clock.clone()), clock, meta)
    }

    fn rps(read: u32, burst: f64) -> QosLimits {
        QosLimits { read_rps: Some(read), burst_seconds: Some(burst), ..Default::default() }
    }

    /// Admit read requests until the first refusal; the count admitted.
    fn admitted(q: &Qos<FakeRelativeClock>, t: TenantId, bucket: Option<&str>, tries: usize) -> usize {
        (0..tries).take_while(|_| q.admit(t, bucket, Direction::Read).is_ok()).count()
    }

    #[tokio::test]
    async fn request_rate_holds_after_the_burst() {
        let (q, clock, _) = registry();
        let t = TenantId::generate();
        q.set(&QosScope::Tenant(t), rps(10, 2.0)).await.unwrap();
        // The burst: two seconds' worth at once.
        assert_eq!(admitted(&q, t, None, 100), 20);
        match q.admit(t, None, Direction::Read) {
            Err(Error::SlowDown { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected SlowDown, got {:?}", other.map(|_| ())),
        }
        // Then exactly the rate: 10 per second over 5 seconds.
        let mut total = 0;
        for _ in 0..50 {
            clock.advance(Duration::from_millis(100));
            total += admitted(&q, t, None, 100);
        }
        assert_eq!(total, 50);
        // Writes are not limited by a read limit.
        assert!(q.admit(t, None, Direction::Write).is_ok());
    }

    #[tokio::test]
    async fn retry_after_rounds_up_to_whole_seconds() {
        let (q, _, _) = registry();
        let t = TenantId::generate();
        // One token a second: right after using it, the next is up to 1 s away.
        let limits = QosLimits { write_rps: Some(1), burst_seconds: Some(1.0), ..Default::default() };
        q.set(&QosScope::Tenant(t), limits).await.unwrap();
        assert!(q.admit(t, None, Direction::Write).is_ok());
        assert!(matches!(q.admit(t, None, Direction::Write), Err(Error::SlowDown { retry_after_secs: 1 })));
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[tokio::test]
    async fn tenants_and_buckets_are_limited_apart() {
        let (q, _, _) = registry();
        let (a, b) = (TenantId::generate(), TenantId::generate());
        let hot = BucketName::new("hot").unwrap();
        q.set(&QosScope::Bucket(a, hot.clone()), rps(5, 1.0)).await.unwrap();
        assert_eq!(admitted(&q, a, Some("hot"), 100), 5);
        // Another bucket of the same tenant, the tenant at large, and another
        // tenant's bucket of the same name are not limited.
        assert_eq!(admitted(&q, a, Some("cold"), 100), 100);
        assert_eq!(admitted(&q, a, None, 100), 100);
        assert_eq!(admitted(&q, b, Some("hot"), 100), 100);

        // A tenant limit covers all its buckets together.
        q.set(&QosScope::Tenant(b), rps(8, 1.0)).await.unwrap();
        let n = admitted(&q, b, Some("x"), 100) + admitted(&q, b, Some("y"), 100) + admitted(&q, b, None, 100);
        assert_eq!(n, 8);
        assert_eq!(admitted(&q, a, Some("cold"), 100), 100);
    }

    #[tokio::test]
    async fn changes_apply_at_once_and_persist() {
        let (q, _, meta) = registry();
        let t = TenantId::generate();
        let scope = QosScope::Tenant(t);
        q.set(&scope, rps(3, 1.0)).await.unwrap();
        assert_eq!(admitted(&q, t, None, 100), 3);
        // Raising the limit takes effect with a fresh burst.
        q.set(&scope, rps(50, 1.0)).await.unwrap();
        assert_eq!(admitted(&q, t, None, 100), 50);
        assert_eq!(q.get(&scope).await.unwrap(), rps(50, 1.0));

        // Another registry over the same store (a restart) loads it.
        let again = Qos::with_clock(meta.clone(), FakeRelativeClock::default());
        again.load().await.unwrap();
        assert_eq!(admitted(&again, t, None, 100), 50);

        q.clear(&scope).await.unwrap();
        assert_eq!(admitted(&q, t, None, 100), 100);
        assert_eq!(q.get(&scope).await.unwrap(), QosLimits::default());
        let after_clear = Qos::with_clock(meta, FakeRelativeClock::default());
        after_clear.load().await.unwrap();
        assert_eq!(admitted(&after_clear, t, None, 100), 100);
    }

    #[tokio::test]
    async fn bandwidth_is_paced_at_the_rate() {
        let (q, clock, _) = registry();
        let t = TenantId::generate();
        let limits = QosLimits { write_bps: Some(1024 * 1024), burst_seconds: Some(0.5), ..Default::default() };
        q.set(&QosScope::Tenant(t), limits).await.unwrap();
        let mut pacer = q.admit(t, Some("any"), Direction::Write).unwrap();
        assert!(pacer.is_paced());
        assert_eq!(pacer.max_piece(), 256 * 1024);
        // Send 4 MiB in pieces, sleeping (on the fake clock) as told.
        let (mut sent, mut waited) = (0usize, Duration::ZERO);
        while sent < 4 * 1024 * 1024 {
            let piece = pacer.max_piece();
            while let Some(wait) = pacer.reserve(piece) {
                clock.advance(wait);
                waited += wait;
            }
            sent += piece;
        }
        // The burst (0.5 MiB) goes at once, the other 3.5 MiB at 1 MiB/s.
        let secs = waited.as_secs_f64();
        assert!((3.45..=3.55).contains(&secs), "waited {secs} s");
        // Reads of the same tenant are not paced by a write limit.
        let mut reader = q.admit(t, None, Direction::Read).unwrap();
        assert!(reader.reserve(4 * 1024 * 1024).is_none());
    }

    /// Send `bytes` in 128 KiB pieces through a pacer; the time waited.
    fn pace(pacer: &mut BytePacer<FakeRelativeClock>, clock: &FakeRelativeClock, bytes: usize) -> f64 {
        let mut waited = Duration::ZERO;
        for _ in 0..bytes / (128 * 1024) {
            while let Some(wait) = pacer.reserve(128 * 1024) {
                clock.advance(wait);
                waited += wait;
            }
        }
        waited.as_secs_f64()
    }

    #[tokio::test]
    async fn pacing_charges_every_scope_once() {
        const MIB: u64 = 1024 * 1024;
        let (q, clock, _) = registry();
        let t = TenantId::generate();
        let bps = |b: u64| QosLimits { read_bps: Some(b), burst_seconds: Some(1.0), ..Default::default() };
        q.set(&QosScope::Tenant(t), bps(MIB)).await.unwrap();
        q.set(&QosScope::Bucket(t, BucketName::new("wide").unwrap()), bps(4 * MIB)).await.unwrap();
        q.set(&QosScope::Bucket(t, BucketName::new("narrow").unwrap()), bps(MIB / 2)).await.unwrap();
        // The tenant's 1 MiB/s binds: 1 MiB of burst, then 2 MiB at 1 MiB/s
        // (5 s if the tenant were charged twice per piece).
        let secs = pace(&mut q.admit(t, Some("wide"), Direction::Read).unwrap(), &clock, 3 * MIB as usize);
        assert!((1.95..=2.05).contains(&secs), "waited {secs} s");
        // Let every bucket refill; then the narrower bucket binds.
        clock.advance(Duration::from_secs(10));
        let secs = pace(&mut q.admit(t, Some("narrow"), Direction::Read).unwrap(), &clock, 2 * MIB as usize);
        assert!((2.95..=3.05).contains(&secs), "waited {secs} s");
    }

    #[tokio::test]
    async fn bad_limits_are_refused_with_the_field_named() {
        let (q, _, _) = registry();
        let scope = QosScope::Tenant(TenantId::generate());
        let cases = [
            (QosLimits { read_rps: Some(0), ..Default::default() }, "read_rps"),
            (QosLimits { write_bps: Some(10), ..Default::default() }, "write_bps"),
            (QosLimits { read_bps: Some(u64::MAX), ..Default::default() }, "read_bps"),
            (QosLimits { read_rps: Some(1), burst_seconds: Some(0.0), ..Default::default() }, "burst_seconds"),
            (QosLimits { read_rps: Some(1), burst_seconds: Some(f64::NAN), ..Default::default() }, "burst_seconds"),
            (QosLimits { write_rps: Some(u32::MAX), burst_seconds: Some(100.0), ..Default::default() }, "write_rps"),
        ];
        for (limits, field) in cases {
            match q.set(&scope, limits.clone()).await {
                Err(Error::InvalidArgument(m)) => assert!(m.contains(field), "{m}"),
                other => panic!("{limits:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn scope_keys_round_trip() {
        let t = TenantId::generate();
        for s in [QosScope::Tenant(t), QosScope::Bucket(t, BucketName::new("data-1").unwrap())] {
            assert_eq!(QosScope::from_key(&s.key()), Some(s));
        }
        assert_eq!(QosScope::from_key(b"short"), None);
    }
}
