//! The lease protocol of orbit-site driven over the peer channel, for one
//! site that is home to some buckets and a satellite of others:
//!
//! - `home`: the write gate of buckets homed here (orbit-core's
//!   [`orbit_core::WriteGate`]) and the answers to satellites' lease messages;
//! - `satellite`: reads, listings and writes of buckets homed elsewhere
//!   (orbit-core's [`orbit_core::RemoteBuckets`]): served from this site's
//!   caches while a read lease vouches for them, fetched from home otherwise,
//!   writes forwarded;
//! - `data`: the home site's answers on the data routes (records, chunks,
//!   listing pages, forwarded writes);
//! - `wire`: what those routes carry.
//!
//! One [`Sites`] per process holds both state machines, each behind its own
//! mutex that is never held across an await; messages they ask to send go
//! out on tasks of their own, and answers are fed back in.

mod data;
mod held;
mod home;
mod metrics;
mod satellite;
mod wire;

pub use held::{HELD_BACKEND, LostWrites, WriteLeaseTable, WriteLeaseView};
pub use metrics::{LeaseStats, StatsSnapshot};

use async_trait::async_trait;
use orbit_core::Namespace;
use orbit_meta::{MetaStore, Table, Txn};
use orbit_peer::{DataHandler, PeerClient, PeerHandler, Reply};
use orbit_site::{
    HomeEvent, HomeSite, LeaseTiming, Message, MonoTime, Outgoing, SatelliteEvent, SatelliteSite, SiteId,
};
use orbit_tenancy::Directory;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Settings-table keys of what the lease runtime persists.
const EPOCH_SETTING: &[u8] = b"leases/home_epoch";
const GRANTED_SETTING: &[u8] = b"leases/granted";
/// The write leases this site granted as a home site (they never expire).
const WRITE_LEASES_SETTING: &[u8] = b"leases/write_leases";

/// Why the lease runtime cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("lease timing: {0}")]
    Timing(String),
    #[error("cannot read or persist the home epoch: {0}")]
    Store(String),
}

/// The site's monotonic clock as orbit-site sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    fn new() -> Self {
        Self { origin: Instant::now() }
    }

    pub(crate) fn now(&self) -> MonoTime {
        MonoTime::from_nanos(u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// One read lease, for the admin view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    pub lease: String,
    /// The holder (in the home table) or the home site (at a satellite).
    pub site: String,
    pub bucket: String,
    pub prefix: String,
}

/// The leases this site grants (as a home) and holds (as a satellite).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LeaseTable {
    pub site: String,
    pub home_epoch: u64,
    pub granted: Vec<LeaseView>,
    pub held: Vec<LeaseView>,
}

pub(crate) struct Inner {
    pub(crate) me: SiteId,
    pub(crate) timing: LeaseTiming,
    pub(crate) clock: Clock,
    pub(crate) peers: Arc<PeerClient>,
    /// How long one protocol message may wait for its answer.
    pub(crate) message_timeout: Duration,
    pub(crate) epoch: u64,
    pub(crate) home: Mutex<home::HomeState>,
    pub(crate) sat: Mutex<satellite::SatState>,
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) directory: Directory,
    /// Whether this incarnation has persisted that it granted a lease.
    granted_marked: AtomicBool,
    /// The namespace with this runtime's hooks installed (set once, by `install`).
    pub(crate) ns: OnceLock<Namespace>,
    pub(crate) stats: LeaseStats,
    /// When each peer last answered and last failed to: reads at a satellite
    /// whose home stopped answering fail at once instead of each waiting out
    /// its own timeout (a partition costs availability, promptly).
    reach: Mutex<std::collections::HashMap<SiteId, Reach>>,
    /// The holder side of write leases (see `held`).
    pub(crate) held: Mutex<held::HeldState>,
    /// Staged writes commit one at a time, in sequence order.
    pub(crate) held_write: tokio::sync::Mutex<()>,
    /// Home applies one flushed write at a time.
    pub(crate) flush_apply: tokio::sync::Mutex<()>,
    /// Woken when home applied a flushed write (later ones wait their turn).
    pub(crate) flush_landed: tokio::sync::Notify,
    /// Persists of home's write-lease table, one at a time, each of the latest table.
    pub(crate) home_persist: tokio::sync::Mutex<()>,
}

#[derive(Clone, Copy, Default)]
struct Reach {
    answered: Option<std::time::Instant>,
    unreachable: Option<std::time::Instant>,
    probed: Option<std::time::Instant>,
}

/// The global namespace's lease runtime of one site.
#[derive(Clone)]
pub struct Sites {
    pub(crate) inner: Arc<Inner>,
}

impl Sites {
    /// Starts the runtime: the home epoch grows by one (persisted before
    /// anything is granted), the home side waits out the leases of its
    /// previous incarnation unless it never granted one, and the satellite
    /// side starts with no read lease and request ids above any used before.
    pub async fn start(
        me: SiteId,
        timing: LeaseTiming,
        peers: Arc<PeerClient>,
        meta: Arc<dyn MetaStore>,
        directory: Directory,
    ) -> Result<Self, StartError> {
        timing.validate().map_err(StartError::Timing)?;
        let store = |e: orbit_meta::MetaError| StartError::Store(e.to_string());
        let previous = meta.get(Table::Settings, EPOCH_SETTING).await.map_err(store)?;
        let epoch = previous.as_deref().and_then(|v| v.try_into().ok()).map_or(0, u64::from_be_bytes) + 1;
        let granted_before = meta.get(Table::Settings, GRANTED_SETTING).await.map_err(store)?.is_some();
        let txn = Txn::new().require_current(Table::Settings, EPOCH_SETTING.to_vec(), previous).put(
            Table::Settings,
            EPOCH_SETTING.to_vec(),
            epoch.to_be_bytes().to_vec(),
        );
        meta.commit(txn).await.map_err(store)?;
        let write_leases: Vec<orbit_site::WriteLeaseRecord> =
            match meta.get(Table::Settings, WRITE_LEASES_SETTING).await.map_err(store)? {
                Some(raw) => {
                    serde_json::from_slice(&raw).map_err(|e| StartError::Store(format!("write leases: {e}")))?
                }
                None => Vec::new(),
            };
        let (held_leases, held_state) = Self::restore_held(&*meta).await.map_err(store)?;
        let clock = Clock::new();
        let home = HomeSite::start(me.clone(), timing.clone(), epoch, write_leases, clock.now(), !granted_before);
        // Boot time in microseconds: above every request id an earlier
        // incarnation used (one per message, far fewer than a million a second).
        let first_req = u64::try_from(orbit_types::now_ms()).unwrap_or(0).saturating_mul(1000);
        let sat = SatelliteSite::start(me.clone(), timing.clone(), held_leases, first_req);
        let message_timeout = timing.retry_every.max(Duration::from_millis(200)) * 4;
        let inner = Inner {
            me,
            timing,
            clock,
            peers,
            message_timeout,
            epoch,
            home: Mutex::new(home::HomeState::new(home)),
            sat: Mutex::new(satellite::SatState::new(sat)),
            meta,
            directory,
            granted_marked: AtomicBool::new(granted_before),
            ns: OnceLock::new(),
            stats: LeaseStats::default(),
            reach: Mutex::default(),
            held: Mutex::new(held_state),
            held_write: tokio::sync::Mutex::new(()),
            flush_apply: tokio::sync::Mutex::new(()),
            flush_landed: tokio::sync::Notify::new(),
            home_persist: tokio::sync::Mutex::new(()),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// `ns` with the write gate and the satellite path installed; this
    /// runtime answers peers with that namespace from now on.
    pub fn install(&self, ns: Namespace) -> Namespace {
        let ns = ns
            .with_write_gate(Arc::new(home::Gate { sites: self.clone() }))
            .with_remote_buckets(Arc::new(satellite::Remote { sites: self.clone() }));
        let _ = self.inner.ns.set(ns.clone());
        ns
    }

    /// The handler of protocol envelopes (replaces orbit-peer's liveness handler).
    pub fn peer_handler(&self) -> Arc<dyn PeerHandler> {
        Arc::new(self.clone())
    }

    /// The handler of the data routes (records, chunks, listings, forwarded writes).
    pub fn data_handler(&self) -> Arc<dyn DataHandler> {
        Arc::new(data::HomeData { sites: self.clone() })
    }

    /// Drives both state machines' timers: expiries, renewals, resends, and
    /// writes whose wait ended. Every `retry_every / 2`.
    pub fn spawn_ticker(&self) -> tokio::task::JoinHandle<()> {
        let sites = self.clone();
        let every = (self.inner.timing.retry_every / 2).max(Duration::from_millis(10));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                sites.tick();
            }
        })
    }

    /// One tick of both sides (the ticker calls it; tests may too).
    pub fn tick(&self) {
        let now = self.inner.clock.now();
        let home_events = self.inner.home.lock().map(|mut h| h.tick(now)).unwrap_or_default();
        self.home_events(home_events);
        let sat_events = self.inner.sat.lock().map(|mut s| s.tick(now)).unwrap_or_default();
        self.sat_events(sat_events);
    }

    pub fn site(&self) -> &SiteId {
        &self.inner.me
    }

    pub fn stats(&self) -> &LeaseStats {
        &self.inner.stats
    }

    /// The lease table of this site, for the admin API.
    pub fn table(&self) -> LeaseTable {
        let now = self.inner.clock.now();
        let view = |lease: orbit_site::LeaseId, site: &SiteId, scope: &orbit_site::LeaseScope| LeaseView {
            lease: lease.to_string(),
            site: site.0.clone(),
            bucket: scope.bucket.to_string(),
            prefix: scope.prefix.clone(),
        };
        let granted = self
            .inner
            .home
            .lock()
            .map(|h| h.site.read_leases().iter().map(|(l, s, sc)| view(*l, s, sc)).collect())
            .unwrap_or_default();
        let held = self
            .inner
            .sat
            .lock()
            .map(|s| s.site.valid_leases(now).iter().map(|(h, l, sc)| view(*l, h, sc)).collect())
            .unwrap_or_default();
        LeaseTable { site: self.inner.me.0.clone(), home_epoch: self.inner.epoch, granted, held }
    }

    pub(crate) fn ns(&self) -> orbit_types::Result<&Namespace> {
        self.inner.ns.get().ok_or_else(|| orbit_types::Error::Unavailable("the site is starting".into()))
    }

    /// Sends `out` on a task of its own; its answer goes back to the side
    /// that expects it.
    pub(crate) fn send(&self, out: Outgoing) {
        let sites = self.clone();
        tokio::spawn(async move {
            let to = out.to.clone();
            let timeout = sites.inner.message_timeout;
            let req = request_id(&out.message);
            let answer = sites.inner.peers.send(&to, out.message, timeout).await;
            sites.note_reach(&to, &answer);
            match answer {
                Ok(Some(env)) => match env.open() {
                    Ok((from, message)) => sites.receive_answer(&from, message),
                    Err(_) => tracing::debug!(peer = %to, "an answer of another protocol version"),
                },
                Ok(None) => {}
                // A typed refusal of a request answers it (a `Busy` one is
                // sent again by the state machine).
                Err(orbit_peer::PeerError::Refused(reason)) if req.is_some() => {
                    let req = req.unwrap_or(orbit_site::RequestId(0));
                    sites.receive_answer(&to, Message::Refused { req, reason });
                }
                // Unanswered messages are sent again by the state machines.
                Err(e) => tracing::debug!(peer = %to, error = %e, "a lease message got no answer"),
            }
        });
    }

    /// Records whether `peer` answered (anything, even an error) or could
    /// not be reached.
    pub(crate) fn note_reach<T>(&self, peer: &SiteId, answer: &Result<T, orbit_peer::PeerError>) {
        let now = std::time::Instant::now();
        if let Ok(mut reach) = self.inner.reach.lock() {
            let r = reach.entry(peer.clone()).or_default();
            match answer {
                Err(orbit_peer::PeerError::Unreachable(_)) => r.unreachable = Some(now),
                _ => r.answered = Some(now),
            }
        }
    }

    /// Whether `peer`'s last exchange failed to reach it. While it looks so,
    /// a ping goes out at most every `retry_every`, so this clears soon after
    /// the peer is back even when no lease message is pending.
    pub(crate) fn looks_unreachable(&self, peer: &SiteId) -> bool {
        let now = std::time::Instant::now();
        let probe = {
            let Ok(mut reach) = self.inner.reach.lock() else { return false };
            let Some(r) = reach.get_mut(peer) else { return false };
            let down = match (r.unreachable, r.answered) {
                (Some(u), Some(a)) => u > a,
                (Some(_), None) => true,
                _ => false,
            };
            if !down {
                return false;
            }
            let due = r.probed.is_none_or(|p| now.duration_since(p) >= self.inner.timing.retry_every);
            if due {
                r.probed = Some(now);
            }
            due
        };
        if probe {
            self.send(Outgoing { to: peer.clone(), message: Message::Ping { req: orbit_site::RequestId(0) } });
        }
        true
    }

    pub(crate) fn receive_answer(&self, from: &SiteId, message: Message) {
        let now = self.inner.clock.now();
        if is_for_home(&message) {
            let events = self.inner.home.lock().map(|mut h| h.on_message(now, from, message)).unwrap_or_default();
            self.home_events(events);
        } else {
            let events = self
                .inner
                .sat
                .lock()
                .map(|mut s| s.on_message(now, from, message, &self.inner.stats))
                .unwrap_or_default();
            self.sat_events(events);
        }
    }

    /// Acts on what the home side asked for. A change of the write-lease
    /// table is persisted before any message that follows it goes out.
    pub(crate) fn home_events(&self, events: Vec<HomeEvent>) {
        let Some(at) = events.iter().position(|e| matches!(e, HomeEvent::WriteLeasesChanged)) else {
            for e in events {
                self.home_send(e);
            }
            return;
        };
        let mut events = events;
        let after = events.split_off(at);
        for e in events {
            self.home_send(e);
        }
        let sites = self.clone();
        tokio::spawn(async move {
            if let Err(e) = sites.persist_write_leases().await {
                // Nothing that follows goes out: the grant or release is
                // answered again when the request is sent again.
                tracing::warn!(error = %e, "cannot persist the write-lease table");
                return;
            }
            for e in after {
                sites.home_send(e);
            }
        });
    }

    fn home_send(&self, e: HomeEvent) {
        if let HomeEvent::Send(out) = e {
            if matches!(out.message, Message::Invalidate { .. }) {
                self.inner.stats.count_invalidation_sent();
            }
            match out.message {
                Message::RecallWriteLease { .. } => {
                    ::metrics::counter!("orbit_lease_recalls_sent_total", "lease" => "write").increment(1)
                }
                Message::RecallReadLease { .. } => {
                    ::metrics::counter!("orbit_lease_recalls_sent_total", "lease" => "read").increment(1)
                }
                _ => {}
            }
            self.send(out);
        }
    }

    /// Persists home's write-lease table as it stands now.
    pub(crate) async fn persist_write_leases(&self) -> orbit_types::Result<()> {
        let _one = self.inner.home_persist.lock().await;
        let table = self
            .inner
            .home
            .lock()
            .map(|h| h.site.write_leases())
            .map_err(|_| orbit_types::Error::Internal("home lease state poisoned".into()))?;
        ::metrics::gauge!("orbit_lease_write_leases_granted").set(table.len() as f64);
        let raw = serde_json::to_vec(&table).map_err(|e| orbit_types::Error::Internal(e.to_string()))?;
        let txn = Txn::new().put(Table::Settings, WRITE_LEASES_SETTING.to_vec(), raw);
        self.inner.meta.commit(txn).await.map_err(|e| orbit_types::Error::Unavailable(e.to_string()))
    }

    /// Acts on what the satellite side asked for. Flushes of write leases
    /// travel on the data route with their bytes, not as protocol messages.
    pub(crate) fn sat_events(&self, events: Vec<SatelliteEvent>) {
        for e in events {
            match e {
                SatelliteEvent::Send(Outgoing { to, message: Message::FlushWrites { req, lease, writes } }) => {
                    self.start_flush(to, req, lease, writes)
                }
                SatelliteEvent::Send(out) => self.send(out),
                SatelliteEvent::ReadLeaseGranted { .. } => self.inner.stats.count_lease_taken(),
                other => self.held_event(other),
            }
        }
    }

    /// Persists, once per incarnation and before the first grant is answered,
    /// that leases were granted: a restart must then wait them out.
    async fn mark_granted(&self) -> bool {
        if self.inner.granted_marked.load(Ordering::Acquire) {
            return true;
        }
        let txn = Txn::new().put(Table::Settings, GRANTED_SETTING.to_vec(), self.inner.epoch.to_be_bytes().to_vec());
        match self.inner.meta.commit(txn).await {
            Ok(()) => {
                self.inner.granted_marked.store(true, Ordering::Release);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot persist the lease marker; lease refused");
                false
            }
        }
    }
}

/// The request id of a satellite's request that a refusal would answer.
fn request_id(m: &Message) -> Option<orbit_site::RequestId> {
    match m {
        Message::GrantReadLease { req, .. } | Message::AcquireWriteLease { req, .. } => Some(*req),
        _ => None,
    }
}

/// Messages only a home site receives (requests of satellites, acks to home's own requests).
fn is_for_home(m: &Message) -> bool {
    matches!(
        m,
        Message::GrantReadLease { .. }
            | Message::RenewLease { .. }
            | Message::ReleaseLease { .. }
            | Message::InvalidateAck { .. }
            | Message::RecallReadAck { .. }
            | Message::ForwardWrite { .. }
            | Message::AcquireWriteLease { .. }
            | Message::FlushWrites { .. }
            | Message::ReleaseWriteLease { .. }
    )
}

#[async_trait]
impl PeerHandler for Sites {
    async fn handle(&self, from: SiteId, message: Message) -> Reply {
        use orbit_site::Refusal;
        let now = self.inner.clock.now();
        match message {
            Message::Ping { req } => return Ok(Some(Message::Pong { req })),
            // Forwarded and flushed writes travel on the data route with
            // their bytes, never as bare protocol messages.
            Message::ForwardWrite { .. } | Message::FlushWrites { .. } => return Err(Refusal::NotImplemented),
            Message::GrantReadLease { .. } if !self.mark_granted().await => return Err(Refusal::Busy),
            // A write lease only in a bucket homed here: nobody else's table
            // decides who writes it.
            Message::AcquireWriteLease { ref scope, .. } => {
                let homed = match self.ns() {
                    Ok(ns) => ns.homed_bucket_by_id(scope.bucket).await.map_err(|_| Refusal::Busy)?,
                    Err(_) => return Err(Refusal::Busy),
                };
                if homed.is_none() {
                    return Err(Refusal::NotHome);
                }
            }
            _ => {}
        }
        let counted = match &message {
            Message::GrantReadLease { .. } => Some(true),
            Message::RenewLease { .. } => Some(false),
            _ => None,
        };
        let events: Vec<Outgoing> = if is_for_home(&message) {
            let events = self.inner.home.lock().map(|mut h| h.on_message(now, &from, message)).unwrap_or_default();
            // A grant or release of a write lease is durable before it is answered.
            if events.contains(&HomeEvent::WriteLeasesChanged) && self.persist_write_leases().await.is_err() {
                return Err(Refusal::Busy);
            }
            let (sends, rest): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| matches!(e, HomeEvent::Send(_)));
            let rest = rest.into_iter().filter(|e| !matches!(e, HomeEvent::WriteLeasesChanged)).collect();
            self.home_events(rest);
            sends.into_iter().filter_map(|e| if let HomeEvent::Send(o) = e { Some(o) } else { None }).collect()
        } else {
            let events = self
                .inner
                .sat
                .lock()
                .map(|mut s| s.on_message(now, &from, message, &self.inner.stats))
                .unwrap_or_default();
            let (sends, rest): (Vec<_>, Vec<_>) =
                events.into_iter().partition(|e| matches!(e, SatelliteEvent::Send(_)));
            self.sat_events(rest);
            sends.into_iter().filter_map(|e| if let SatelliteEvent::Send(o) = e { Some(o) } else { None }).collect()
        };
        // The first message for the sender is the answer; anything else goes out on its own.
        let mut reply = None;
        for out in events {
            if reply.is_none() && out.to == from {
                if let (Some(grant), Message::ReadLeaseGranted { .. } | Message::LeaseRenewed { .. }) =
                    (counted, &out.message)
                {
                    self.inner.stats.count_granted(grant);
                }
                reply = Some(out.message);
            } else {
                self.send(out);
            }
        }
        Ok(reply)
    }
}
