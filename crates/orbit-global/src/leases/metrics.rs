//! The lease runtime's figures: counters kept here (tests read them) and
//! exported to Prometheus as they change. Labels never name a tenant or a
//! bucket, only sites and kinds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one site's lease runtime.
#[derive(Debug, Default)]
pub struct LeaseStats {
    granted: AtomicU64,
    renewed: AtomicU64,
    taken: AtomicU64,
    invalidations_sent: AtomicU64,
    invalidations_received: AtomicU64,
    gate_waits: AtomicU64,
    hits: AtomicU64,
    fetches: AtomicU64,
    read_throughs: AtomicU64,
    forwarded: AtomicU64,
    chunks_fetched: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Read leases granted to satellites (home side).
    pub granted: u64,
    /// Read leases renewed for satellites (home side).
    pub renewed: u64,
    /// Read leases this site obtained from a home site.
    pub taken: u64,
    pub invalidations_sent: u64,
    pub invalidations_received: u64,
    /// Writes at home that waited at the gate for invalidations or expiries.
    pub gate_waits: u64,
    /// Satellite reads (records and listings) served from cache under a lease.
    pub hits: u64,
    /// Satellite reads fetched from home under a lease (then cached).
    pub fetches: u64,
    /// Satellite reads fetched from home with no lease (not cached).
    pub read_throughs: u64,
    /// Writes forwarded from this satellite to a home site.
    pub forwarded: u64,
    /// Chunks of object bytes fetched from a home site (misses of this site's cache).
    pub chunks_fetched: u64,
}

fn add(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl LeaseStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            granted: g(&self.granted),
            renewed: g(&self.renewed),
            taken: g(&self.taken),
            invalidations_sent: g(&self.invalidations_sent),
            invalidations_received: g(&self.invalidations_received),
            gate_waits: g(&self.gate_waits),
            hits: g(&self.hits),
            fetches: g(&self.fetches),
            read_throughs: g(&self.read_throughs),
            forwarded: g(&self.forwarded),
            chunks_fetched: g(&self.chunks_fetched),
        }
    }

    pub(crate) fn count_granted(&self, new: bool) {
        if new {
            add(&self.granted);
            metrics::counter!("orbit_lease_granted_total").increment(1);
        } else {
            add(&self.renewed);
            metrics::counter!("orbit_lease_renewed_total").increment(1);
        }
    }

    pub(crate) fn count_lease_taken(&self) {
        add(&self.taken);
        metrics::counter!("orbit_lease_taken_total").increment(1);
    }

    pub(crate) fn count_invalidation_sent(&self) {
        add(&self.invalidations_sent);
        metrics::counter!("orbit_lease_invalidations_total", "direction" => "out").increment(1);
    }

    pub(crate) fn count_invalidation_received(&self) {
        add(&self.invalidations_received);
        metrics::counter!("orbit_lease_invalidations_total", "direction" => "in").increment(1);
    }

    pub(crate) fn record_gate_wait(&self, waited: Duration) {
        add(&self.gate_waits);
        metrics::histogram!("orbit_lease_invalidation_wait_seconds").record(waited.as_secs_f64());
    }

    /// A satellite read of `what` ("record" or "listing") and how it was served.
    pub(crate) fn count_read(&self, what: &'static str, outcome: &'static str) {
        match outcome {
            "hit" => add(&self.hits),
            "fetch" => add(&self.fetches),
            _ => add(&self.read_throughs),
        }
        metrics::counter!("orbit_satellite_reads_total", "what" => what, "outcome" => outcome).increment(1);
    }

    pub(crate) fn count_chunk_fetched(&self) {
        add(&self.chunks_fetched);
        metrics::counter!("orbit_satellite_chunks_fetched_total").increment(1);
    }

    pub(crate) fn count_forwarded(&self, op: &'static str) {
        add(&self.forwarded);
        metrics::counter!("orbit_satellite_forwarded_writes_total", "op" => op).increment(1);
    }
}

/// Read leases in the home table (granted, not yet surely expired), set at every tick.
pub(crate) fn set_granted(granted: usize) {
    metrics::gauge!("orbit_lease_granted").set(granted as f64);
}

/// Read leases this site holds and may serve under, set at every tick.
pub(crate) fn set_held(held: usize) {
    metrics::gauge!("orbit_lease_held").set(held as f64);
}
