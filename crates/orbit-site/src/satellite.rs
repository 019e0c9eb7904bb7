//! The satellite side of the lease protocol: the leases this site holds,
//! which cached entries each lease vouches for, and the write leases it
//! holds with their unflushed writes. Pure, like the home side.
//!
//! The one rule everything here serves: a read lease is valid until
//! `asked_at + duration` by this site's own clock, where `asked_at` is when
//! the request was first sent, and nothing is served from cache under a lease
//! past that instant.

use crate::clock::{LeaseTiming, MonoTime};
use crate::message::{FlushedWrite, LeaseId, Message, Outgoing, Refusal, RequestId, SiteId, WriteKind};
use crate::scope::LeaseScope;
use orbit_types::{BucketId, ObjectKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the caller of [`SatelliteSite`] must know or do.
#[derive(Clone, Debug, PartialEq)]
pub enum SatelliteEvent {
    Send(Outgoing),
    ReadLeaseGranted {
        home: SiteId,
        lease: LeaseId,
        scope: LeaseScope,
    },
    /// The request `req` (a lease request, an acquisition, or a forwarded
    /// write, which was not applied) was answered: reads and writes of
    /// `scope` are served by `holder`, which holds a write lease.
    Redirected {
        req: RequestId,
        scope: LeaseScope,
        holder: SiteId,
    },
    /// Home turned the request down for good (`Busy` is retried instead).
    Refused {
        req: RequestId,
        reason: Refusal,
    },
    /// The home site acknowledged a forwarded write.
    ForwardAcked {
        req: RequestId,
    },
    /// A write lease was granted; persist [`SatelliteSite::write_lease_state`].
    WriteLeaseGranted {
        home: SiteId,
        lease: LeaseId,
        scope: LeaseScope,
    },
    /// A write lease is given back, everything flushed.
    WriteLeaseReleased {
        home: SiteId,
        lease: LeaseId,
    },
    /// An operator revoked a write lease; these acknowledged writes were
    /// declared lost at home and must be discarded here.
    WritesLost {
        home: SiteId,
        lease: LeaseId,
        writes: Vec<FlushedWrite>,
    },
    /// Flushed writes up to `upto` are applied at home; persist the new state.
    Flushed {
        home: SiteId,
        lease: LeaseId,
        upto: u64,
    },
}

/// A fetch from the home site under a lease, to be completed (or abandoned)
/// with [`SatelliteSite::complete_fetch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FetchId(u64);

/// How to serve a read at this satellite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadPlan {
    /// The cached value is vouched for by a valid lease: serve it.
    Cached,
    /// This site holds a write lease over the key: it is the authority.
    /// Serve its own acknowledged writes; for keys it has not written, home's
    /// copy is current (it changes only through this site's flushes).
    Local,
    /// A valid lease covers the key but nothing is cached: fetch from home,
    /// serve what comes, and report it with [`SatelliteSite::complete_fetch`].
    Fetch(FetchId),
    /// No valid lease: read through from home (or from the write-lease holder
    /// the home site redirects to), and do not cache.
    ReadThrough,
}

/// A write lease as the holder persists it, with its unflushed writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteLeaseState {
    pub home: SiteId,
    pub lease: LeaseId,
    pub scope: LeaseScope,
    /// Acknowledged here, not yet applied at home, in order.
    pub unflushed: Vec<FlushedWrite>,
    pub next_seq: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Entry {
    Object(ObjectKey),
    Listing(String),
}

impl Entry {
    fn shows(&self, key: &ObjectKey) -> bool {
        match self {
            Entry::Object(k) => k == key,
            Entry::Listing(p) => key.as_str().as_bytes().starts_with(p.as_bytes()),
        }
    }
}

type HomeLease = (SiteId, LeaseId);

#[derive(Clone, Debug)]
struct PendingRequest {
    home: SiteId,
    scope: LeaseScope,
    asked_at: MonoTime,
    last_sent: MonoTime,
}

#[derive(Clone, Debug)]
struct Renewal {
    req: RequestId,
    asked_at: MonoTime,
    last_sent: MonoTime,
}

#[derive(Clone, Debug)]
struct HeldLease {
    scope: LeaseScope,
    valid_until: MonoTime,
    used: bool,
    renewal: Option<Renewal>,
}

#[derive(Clone, Debug)]
struct Fetch {
    lease: HomeLease,
    bucket: BucketId,
    entry: Entry,
    spoiled: bool,
}

#[derive(Clone, Debug)]
struct HeldWriteLease {
    scope: LeaseScope,
    unflushed: Vec<FlushedWrite>,
    next_seq: u64,
    /// A flush in flight: its request and when it was last sent.
    flushing: Option<(RequestId, MonoTime)>,
    /// Recalled by home or released by us: no new local writes; release once
    /// all is flushed.
    giving_back: Option<(RequestId, Option<MonoTime>)>,
    /// False for a lease restored after a restart until home answers a flush:
    /// the release may have completed just before the crash, and a write
    /// acknowledged under a lease home no longer knows would be lost.
    confirmed: bool,
}

/// The leases one satellite site holds, from any number of home sites.
#[derive(Debug)]
pub struct SatelliteSite {
    me: SiteId,
    timing: LeaseTiming,
    next_req: u64,
    next_fetch: u64,
    asking: BTreeMap<RequestId, PendingRequest>,
    acquiring: BTreeMap<RequestId, PendingRequest>,
    leases: BTreeMap<HomeLease, HeldLease>,
    cached: BTreeMap<(BucketId, Entry), HomeLease>,
    fetches: BTreeMap<FetchId, Fetch>,
    write_leases: BTreeMap<HomeLease, HeldWriteLease>,
    forwards: BTreeMap<RequestId, SiteId>,
    /// Leases recalled before their grant arrived: the grant, when it comes,
    /// must not be taken, as home has already forgotten the lease.
    recalled_early: std::collections::BTreeSet<HomeLease>,
}

impl SatelliteSite {
    /// A satellite starting (or restarting). It holds no read lease, whatever
    /// it held before: a lease learned before a restart cannot be trusted,
    /// since the monotonic clock it was measured on is gone. Write leases are
    /// restored from what the caller persisted, with their unflushed writes,
    /// which are flushed again. `first_req` must exceed every request id used
    /// before the restart (persist a counter, or use a boot-time high value).
    pub fn start(me: SiteId, timing: LeaseTiming, write_leases: Vec<WriteLeaseState>, first_req: u64) -> Self {
        let write_leases = write_leases
            .into_iter()
            .map(|w| {
                let held = HeldWriteLease {
                    scope: w.scope,
                    unflushed: w.unflushed,
                    next_seq: w.next_seq,
                    flushing: None,
                    giving_back: None,
                    confirmed: false,
                };
                ((w.home, w.lease), held)
            })
            .collect();
        Self {
            me,
            timing,
            next_req: first_req,
            next_fetch: 0,
            asking: BTreeMap::new(),
            acquiring: BTreeMap::new(),
            leases: BTreeMap::new(),
            cached: BTreeMap::new(),
            fetches: BTreeMap::new(),
            write_leases,
            forwards: BTreeMap::new(),
            recalled_early: std::collections::BTreeSet::new(),
        }
    }

    pub fn site(&self) -> &SiteId {
        &self.me
    }

    fn req(&mut self) -> RequestId {
        self.next_req += 1;
        RequestId(self.next_req)
    }

    fn send(to: &SiteId, message: Message) -> SatelliteEvent {
        SatelliteEvent::Send(Outgoing { to: to.clone(), message })
    }

    /// The write leases to persist, with their unflushed writes.
    pub fn write_lease_state(&self) -> Vec<WriteLeaseState> {
        self.write_leases
            .iter()
            .map(|((home, lease), w)| WriteLeaseState {
                home: home.clone(),
                lease: *lease,
                scope: w.scope.clone(),
                unflushed: w.unflushed.clone(),
                next_seq: w.next_seq,
            })
            .collect()
    }

    /// Read leases valid at `now`, as (home, lease, scope).
    pub fn valid_leases(&self, now: MonoTime) -> Vec<(SiteId, LeaseId, LeaseScope)> {
        self.leases
            .iter()
            .filter(|(_, l)| l.valid_until > now)
            .map(|((h, id), l)| (h.clone(), *id, l.scope.clone()))
            .collect()
    }

    /// Asks `home` for a read lease on `scope`. Validity will count from now.
    pub fn request_read_lease(&mut self, now: MonoTime, home: &SiteId, scope: LeaseScope) -> Vec<SatelliteEvent> {
        if self.asking.values().any(|p| &p.home == home && p.scope == scope) {
            return Vec::new();
        }
        // A valid lease on that very scope is extended by renewal instead.
        if self.leases.iter().any(|((h, _), l)| h == home && l.scope == scope && l.valid_until > now) {
            return Vec::new();
        }
        let req = self.req();
        self.asking
            .insert(req, PendingRequest { home: home.clone(), scope: scope.clone(), asked_at: now, last_sent: now });
        vec![Self::send(home, Message::GrantReadLease { req, scope })]
    }

    /// Gives a read lease back; from now on nothing is served under it.
    pub fn release_read_lease(&mut self, home: &SiteId, lease: LeaseId) -> Vec<SatelliteEvent> {
        let key = (home.clone(), lease);
        if self.leases.remove(&key).is_none() {
            return Vec::new();
        }
        self.drop_lease_entries(&key);
        vec![Self::send(home, Message::ReleaseLease { lease })]
    }

    fn write_lease_over(&self, bucket: BucketId, key: &ObjectKey) -> Option<&HomeLease> {
        self.write_leases.iter().find(|(_, w)| w.scope.covers(bucket, key)).map(|(k, _)| k)
    }

    fn valid_lease_over(&self, now: MonoTime, covers: impl Fn(&LeaseScope) -> bool) -> Option<HomeLease> {
        self.leases
            .iter()
            .filter(|(_, l)| l.valid_until > now && covers(&l.scope))
            .max_by_key(|(_, l)| l.valid_until)
            .map(|(k, _)| k.clone())
    }

    fn plan(&mut self, now: MonoTime, bucket: BucketId, entry: Entry) -> ReadPlan {
        if let Some(cached_under) = self.cached.get(&(bucket, entry.clone()))
            && let Some(l) = self.leases.get_mut(cached_under)
            && l.valid_until > now
        {
            l.used = true;
            return ReadPlan::Cached;
        }
        let lease = match &entry {
            Entry::Object(k) => self.valid_lease_over(now, |s| s.covers(bucket, k)),
            Entry::Listing(p) => self.valid_lease_over(now, |s| s.covers_prefix(bucket, p)),
        };
        let Some(lease) = lease else { return ReadPlan::ReadThrough };
        if let Some(l) = self.leases.get_mut(&lease) {
            l.used = true;
        }
        self.next_fetch += 1;
        let id = FetchId(self.next_fetch);
        self.fetches.insert(id, Fetch { lease, bucket, entry, spoiled: false });
        ReadPlan::Fetch(id)
    }

    /// Whether this site is the authority for reads of `covers`: it holds a
    /// write lease and has not yet sent its release (once sent, home may take
    /// writes of the prefix at any moment).
    fn serves_locally(&self, covers: impl Fn(&LeaseScope) -> bool) -> bool {
        self.write_leases.values().any(|w| covers(&w.scope) && w.giving_back.is_none_or(|(_, sent)| sent.is_none()))
    }

    /// How to serve a read of `key`.
    pub fn read(&mut self, now: MonoTime, bucket: BucketId, key: &ObjectKey) -> ReadPlan {
        if self.serves_locally(|s| s.covers(bucket, key)) {
            return ReadPlan::Local;
        }
        self.plan(now, bucket, Entry::Object(key.clone()))
    }

    /// How to serve a listing of `prefix` (the lease must cover all of it).
    pub fn list(&mut self, now: MonoTime, bucket: BucketId, prefix: &str) -> ReadPlan {
        if self.serves_locally(|s| s.covers_prefix(bucket, prefix)) {
            return ReadPlan::Local;
        }
        self.plan(now, bucket, Entry::Listing(prefix.to_owned()))
    }

    /// A fetch of a listing of `prefix` under a valid lease even when an entry
    /// for the prefix is cached: the caller keeps one page per query, and a
    /// cached page of one query vouches for nothing about another page of the
    /// same prefix. `ReadThrough` when no valid lease covers the prefix.
    pub fn refetch_listing(&mut self, now: MonoTime, bucket: BucketId, prefix: &str) -> ReadPlan {
        let Some(lease) = self.valid_lease_over(now, |s| s.covers_prefix(bucket, prefix)) else {
            return ReadPlan::ReadThrough;
        };
        if let Some(l) = self.leases.get_mut(&lease) {
            l.used = true;
        }
        self.next_fetch += 1;
        let id = FetchId(self.next_fetch);
        self.fetches.insert(id, Fetch { lease, bucket, entry: Entry::Listing(prefix.to_owned()), spoiled: false });
        ReadPlan::Fetch(id)
    }

    /// The lease a fetch is made under: its answer may be kept only if it came
    /// from the incarnation of home that granted it (the lease's epoch).
    pub fn fetch_lease(&self, fetch: FetchId) -> Option<LeaseId> {
        self.fetches.get(&fetch).map(|f| f.lease.1)
    }

    /// Whether a listing of `prefix` has an entry cached (to prune the caller's pages).
    pub fn is_listing_cached(&self, bucket: BucketId, prefix: &str) -> bool {
        self.cached.contains_key(&(bucket, Entry::Listing(prefix.to_owned())))
    }

    /// Reports the answer to a fetch. `cacheable` is what the home site said
    /// (false while a write of the key was pending there). Returns whether the
    /// value may be kept in cache: only if the lease is still valid and no
    /// invalidation of the key arrived since the fetch was sent. The value
    /// itself may be served either way: it was current at home while the read
    /// was in progress.
    pub fn complete_fetch(&mut self, now: MonoTime, fetch: FetchId, cacheable: bool) -> bool {
        let Some(f) = self.fetches.remove(&fetch) else { return false };
        let valid = self.leases.get(&f.lease).is_some_and(|l| l.valid_until > now);
        if !(cacheable && valid && !f.spoiled) {
            return false;
        }
        self.cached.insert((f.bucket, f.entry), f.lease);
        true
    }

    /// Whether `key` has an entry cached (for tests and metrics).
    pub fn is_cached(&self, bucket: BucketId, key: &ObjectKey) -> bool {
        self.cached.contains_key(&(bucket, Entry::Object(key.clone())))
    }

    fn drop_lease_entries(&mut self, lease: &HomeLease) {
        self.cached.retain(|_, l| l != lease);
        for f in self.fetches.values_mut() {
            if &f.lease == lease {
                f.spoiled = true;
            }
        }
    }

    fn invalidate(&mut self, bucket: Option<BucketId>, keys: &[ObjectKey]) {
        // Per key, whatever lease the entry is cached under: two leases can
        // cover one key, and an invalidation sent for one is as good for all.
        let hit = |b: BucketId, e: &Entry| bucket.is_none_or(|x| x == b) && keys.iter().any(|k| e.shows(k));
        self.cached.retain(|(b, e), _| !hit(*b, e));
        for f in self.fetches.values_mut() {
            if hit(f.bucket, &f.entry) {
                f.spoiled = true;
            }
        }
    }

    /// Forwards a write of a key this site holds no write lease for.
    pub fn forward_write(
        &mut self,
        home: &SiteId,
        bucket: BucketId,
        key: ObjectKey,
        kind: WriteKind,
    ) -> (RequestId, Vec<SatelliteEvent>) {
        let req = self.req();
        self.forwards.insert(req, home.clone());
        (req, vec![Self::send(home, Message::ForwardWrite { req, bucket, key, kind })])
    }

    /// A write at this site under a write lease it holds: returns the sequence
    /// number to persist with the write before acknowledging it, or `None`
    /// when no usable write lease covers the key (forward it instead; during
    /// a recall or release the caller should answer "retry later").
    pub fn local_write(&mut self, bucket: BucketId, key: &ObjectKey, kind: WriteKind, version: String) -> Option<u64> {
        let lease = self.write_lease_over(bucket, key)?.clone();
        let w = self.write_leases.get_mut(&lease)?;
        if w.giving_back.is_some() || !w.confirmed {
            return None;
        }
        w.next_seq += 1;
        w.unflushed.push(FlushedWrite { seq: w.next_seq, key: key.clone(), kind, version });
        Some(w.next_seq)
    }

    /// The write lease this site holds over `key` (in whatever state), as
    /// (home, lease, scope).
    pub fn write_lease_for(&self, bucket: BucketId, key: &ObjectKey) -> Option<(SiteId, LeaseId, LeaseScope)> {
        let (home, lease) = self.write_lease_over(bucket, key)?;
        let w = self.write_leases.get(&(home.clone(), *lease))?;
        Some((home.clone(), *lease, w.scope.clone()))
    }

    /// The write leases this site holds whose scope overlaps `scope`.
    pub fn write_leases_overlapping(&self, scope: &LeaseScope) -> Vec<(SiteId, LeaseId)> {
        self.write_leases.iter().filter(|(_, w)| w.scope.overlaps(scope)).map(|(k, _)| k.clone()).collect()
    }

    /// Takes back the write `seq` just returned by [`Self::local_write`],
    /// when persisting it failed (it was never acknowledged).
    pub fn undo_local_write(&mut self, bucket: BucketId, key: &ObjectKey, seq: u64) {
        let Some(lease) = self.write_lease_over(bucket, key).cloned() else { return };
        if let Some(w) = self.write_leases.get_mut(&lease)
            && w.unflushed.last().is_some_and(|x| x.seq == seq)
        {
            w.unflushed.pop();
            w.next_seq -= 1;
        }
    }

    /// Whether a write lease covers `key` but is being given back: writes
    /// must wait (answer "retry later"), not be forwarded.
    pub fn write_lease_busy(&self, bucket: BucketId, key: &ObjectKey) -> bool {
        self.write_lease_over(bucket, key)
            .and_then(|l| self.write_leases.get(l))
            .is_some_and(|w| w.giving_back.is_some() || !w.confirmed)
    }

    /// Asks `home` for an exclusive write lease on `scope`.
    pub fn acquire_write_lease(&mut self, now: MonoTime, home: &SiteId, scope: LeaseScope) -> Vec<SatelliteEvent> {
        if self.acquiring.values().any(|p| &p.home == home && p.scope == scope) {
            return Vec::new();
        }
        // Held already, or still being given back: wait for the release first.
        if self.write_leases.iter().any(|((h, _), w)| h == home && w.scope.overlaps(&scope)) {
            return Vec::new();
        }
        let req = self.req();
        self.acquiring
            .insert(req, PendingRequest { home: home.clone(), scope: scope.clone(), asked_at: now, last_sent: now });
        vec![Self::send(home, Message::AcquireWriteLease { req, scope })]
    }

    /// Gives a write lease back: flush everything, then release.
    pub fn release_write_lease(&mut self, now: MonoTime, home: &SiteId, lease: LeaseId) -> Vec<SatelliteEvent> {
        let req = self.req();
        if let Some(w) = self.write_leases.get_mut(&(home.clone(), lease))
            && w.giving_back.is_none()
        {
            w.giving_back = Some((req, None));
        }
        self.tick(now)
    }

    /// Time passes: expire leases, renew those in use, resend what is
    /// unanswered, flush write leases.
    pub fn tick(&mut self, now: MonoTime) -> Vec<SatelliteEvent> {
        let mut events = Vec::new();
        let retry = self.timing.retry_every;
        let expired: Vec<HomeLease> =
            self.leases.iter().filter(|(_, l)| l.valid_until <= now).map(|(k, _)| k.clone()).collect();
        for k in expired {
            self.leases.remove(&k);
            self.drop_lease_entries(&k);
        }
        // Fetches whose lease is gone can never be cached: forget them even if
        // the caller never completes them.
        let leases = &self.leases;
        self.fetches.retain(|_, f| leases.contains_key(&f.lease));
        // A grant can only be taken for a pending request: with none pending
        // to a home, its early recalls no longer matter.
        let asking = &self.asking;
        self.recalled_early.retain(|(home, _)| asking.values().any(|p| &p.home == home));
        // Requests sent again keep their id and their first `asked_at`: a
        // grant may answer either send, and the earlier start is the safe one.
        for (req, p) in &mut self.asking {
            if now.since(p.last_sent) >= retry {
                p.last_sent = now;
                events.push(Self::send(&p.home, Message::GrantReadLease { req: *req, scope: p.scope.clone() }));
            }
        }
        for (req, p) in &mut self.acquiring {
            if now.since(p.last_sent) >= retry {
                p.last_sent = now;
                events.push(Self::send(&p.home, Message::AcquireWriteLease { req: *req, scope: p.scope.clone() }));
            }
        }
        // Request ids for new renewals are taken after the loop, which holds
        // `self.leases` borrowed.
        let mut new_reqs = 0;
        let renew_before = self.timing.renew_before;
        let base = self.next_req;
        for ((home, lease), l) in &mut self.leases {
            match &mut l.renewal {
                Some(r) if now.since(r.last_sent) >= retry => {
                    r.last_sent = now;
                    events.push(Self::send(home, Message::RenewLease { req: r.req, lease: *lease }));
                }
                Some(_) => {}
                None if l.used && l.valid_until.since(now) < renew_before => {
                    new_reqs += 1;
                    let req = RequestId(base + new_reqs);
                    l.renewal = Some(Renewal { req, asked_at: now, last_sent: now });
                    events.push(Self::send(home, Message::RenewLease { req, lease: *lease }));
                }
                None => {}
            }
        }
        self.next_req += new_reqs;
        for ((home, lease), w) in &mut self.write_leases {
            let due = w.flushing.is_none_or(|(_, sent)| now.since(sent) >= retry);
            // An unconfirmed lease sends a flush even with nothing in it: the
            // answer says whether home still knows the lease.
            if (!w.unflushed.is_empty() || !w.confirmed) && due {
                let req = match w.flushing {
                    Some((req, _)) => req,
                    None => {
                        self.next_req += 1;
                        RequestId(self.next_req)
                    }
                };
                w.flushing = Some((req, now));
                events.push(Self::send(home, Message::FlushWrites { req, lease: *lease, writes: w.unflushed.clone() }));
            }
            if w.unflushed.is_empty()
                && let Some((req, sent)) = &mut w.giving_back
                && sent.is_none_or(|s| now.since(s) >= retry)
            {
                *sent = Some(now);
                let flushed_upto = w.next_seq;
                events.push(Self::send(home, Message::ReleaseWriteLease { req: *req, lease: *lease, flushed_upto }));
            }
        }
        events
    }

    /// Handles one message from `from`.
    pub fn on_message(&mut self, now: MonoTime, from: &SiteId, message: Message) -> Vec<SatelliteEvent> {
        let mut events = Vec::new();
        match message {
            Message::ReadLeaseGranted { req, lease, scope, duration } => {
                let asked = self.asking.get(&req).is_some_and(|p| &p.home == from && p.scope == scope);
                if !asked {
                    if !self.leases.contains_key(&(from.clone(), lease)) {
                        events.push(Self::send(from, Message::ReleaseLease { lease }));
                    }
                    return events;
                }
                if self.recalled_early.remove(&(from.clone(), lease)) {
                    // Recalled on its way here: the request stays pending and
                    // its next send gets a lease home knows.
                    return events;
                }
                let Some(p) = self.asking.remove(&req) else { return events };
                let valid_until = p.asked_at.plus(duration);
                let key = (from.clone(), lease);
                let held = self.leases.entry(key).or_insert(HeldLease {
                    scope: scope.clone(),
                    valid_until,
                    used: false,
                    renewal: None,
                });
                held.valid_until = held.valid_until.max(valid_until);
                if valid_until > now {
                    events.push(SatelliteEvent::ReadLeaseGranted { home: from.clone(), lease, scope });
                }
            }
            Message::LeaseRenewed { req, lease, duration, invalidations } => {
                let key = (from.clone(), lease);
                let Some(l) = self.leases.get_mut(&key) else { return events };
                let Some(r) = l.renewal.take_if(|r| r.req == req) else { return events };
                let bucket = l.scope.bucket;
                l.valid_until = l.valid_until.max(r.asked_at.plus(duration));
                l.used = false;
                for inv in invalidations {
                    self.invalidate(Some(bucket), &inv.keys);
                    events.push(Self::send(from, Message::InvalidateAck { lease, write: inv.write }));
                }
            }
            Message::LeaseUnknown { req: _, lease } => {
                let key = (from.clone(), lease);
                if self.leases.remove(&key).is_some() {
                    self.drop_lease_entries(&key);
                }
                // Home no longer knows this write lease: its release completed
                // just before this site restarted (nothing was left to flush
                // then), or home lost it. What is unflushed cannot reach home
                // any more: reported, never kept.
                if let Some(w) = self.write_leases.remove(&key) {
                    events.push(if w.unflushed.is_empty() {
                        SatelliteEvent::WriteLeaseReleased { home: from.clone(), lease }
                    } else {
                        SatelliteEvent::WritesLost { home: from.clone(), lease, writes: w.unflushed }
                    });
                }
            }
            Message::Invalidate { lease, write, keys } => {
                let bucket = self.leases.get(&(from.clone(), lease)).map(|l| l.scope.bucket);
                // An unknown lease (its grant still on the way, or already
                // expired here) still gets its keys dropped in every bucket:
                // dropping too much only costs a fetch.
                self.invalidate(bucket, &keys);
                events.push(Self::send(from, Message::InvalidateAck { lease, write }));
            }
            Message::RecallReadLease { lease } => {
                let key = (from.clone(), lease);
                if self.leases.remove(&key).is_some() {
                    self.drop_lease_entries(&key);
                } else if self.asking.values().any(|p| &p.home == from) {
                    self.recalled_early.insert(key);
                }
                events.push(Self::send(from, Message::RecallReadAck { lease }));
            }
            Message::Redirect { req, scope, holder } => {
                self.asking.remove(&req);
                self.acquiring.remove(&req);
                self.forwards.remove(&req);
                events.push(SatelliteEvent::Redirected { req, scope, holder });
            }
            // Busy: the request stays pending and is sent again at the next
            // retry. Any other refusal ends it.
            Message::Refused { reason: Refusal::Busy, .. } => {}
            Message::Refused { req, reason } => {
                let pending = self.asking.remove(&req).is_some()
                    | self.acquiring.remove(&req).is_some()
                    | self.forwards.remove(&req).is_some();
                if pending {
                    events.push(SatelliteEvent::Refused { req, reason });
                }
            }
            Message::WriteAcked { req } if self.forwards.remove(&req).is_some() => {
                events.push(SatelliteEvent::ForwardAcked { req });
            }
            Message::WriteLeaseGranted { req, lease, scope } => {
                let key = (from.clone(), lease);
                let asked = self.acquiring.get(&req).is_some_and(|p| &p.home == from && p.scope == scope);
                if !asked {
                    // A late duplicate of a grant for a request already settled:
                    // give back a lease this site does not know it holds, or
                    // the prefix would stay redirected here forever.
                    if !self.write_leases.contains_key(&key) {
                        events.push(Self::send(from, Message::ReleaseWriteLease { req, lease, flushed_upto: 0 }));
                    }
                    return events;
                }
                self.acquiring.remove(&req);
                self.write_leases.entry((from.clone(), lease)).or_insert(HeldWriteLease {
                    scope: scope.clone(),
                    unflushed: Vec::new(),
                    next_seq: 0,
                    flushing: None,
                    giving_back: None,
                    confirmed: true,
                });
                events.push(SatelliteEvent::WriteLeaseGranted { home: from.clone(), lease, scope });
            }
            Message::FlushAck { req, lease, upto } => {
                let key = (from.clone(), lease);
                if let Some(w) = self.write_leases.get_mut(&key) {
                    w.unflushed.retain(|x| x.seq > upto);
                    w.confirmed = true;
                    if w.flushing.is_some_and(|(r, _)| r == req) {
                        w.flushing = None;
                    }
                    events.push(SatelliteEvent::Flushed { home: from.clone(), lease, upto });
                    events.extend(self.tick(now));
                }
            }
            Message::RecallWriteLease { lease } => {
                let req = self.req();
                if let Some(w) = self.write_leases.get_mut(&(from.clone(), lease))
                    && w.giving_back.is_none()
                {
                    w.giving_back = Some((req, None));
                }
                events.extend(self.tick(now));
            }
            Message::WriteLeaseReleased { req, lease } => {
                let key = (from.clone(), lease);
                if self.write_leases.get(&key).is_some_and(|w| w.giving_back.is_some_and(|(r, _)| r == req)) {
                    self.write_leases.remove(&key);
                    events.push(SatelliteEvent::WriteLeaseReleased { home: from.clone(), lease });
                }
            }
            Message::WriteLeaseRevoked { lease, lost_after } => {
                if let Some(w) = self.write_leases.remove(&(from.clone(), lease)) {
                    let writes: Vec<FlushedWrite> = w.unflushed.into_iter().filter(|x| x.seq > lost_after).collect();
                    events.push(SatelliteEvent::WritesLost { home: from.clone(), lease, writes });
                }
            }
            // Requests only a home site answers: ignored, never a panic.
            _ => {}
        }
        events
    }
}
