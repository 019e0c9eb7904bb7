//! The home side of the lease protocol: the lease table of one home site and
//! the write gate. Pure: every input carries the time, every output is an
//! event for the caller to act on (messages to send, writes to commit).

use crate::clock::{LeaseTiming, MonoTime};
use crate::message::{
    FlushedWrite, LeaseId, Message, Outgoing, PendingInvalidation, Refusal, RequestId, SiteId, WriteId, WriteKind,
};
use crate::scope::LeaseScope;
use orbit_types::{BucketId, ObjectKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How many forwarded requests home remembers to drop duplicates. Forwards
/// are never resent by a satellite (a lost answer is its client's timeout),
/// so only a duplicating network repeats one, and soon after the original.
const FORWARDS_REMEMBERED: usize = 65_536;

/// What the caller of [`HomeSite`] must do.
#[derive(Clone, Debug, PartialEq)]
pub enum HomeEvent {
    /// Send this message.
    Send(Outgoing),
    /// Every lease covering the write is invalidated or surely expired: the
    /// caller may now commit the write and then call [`HomeSite::finish_write`].
    WriteReady(WriteId),
    /// A write-lease holder flushed these writes (in order, each once): apply
    /// them, together with the new `flushed_upto` of [`HomeSite::write_leases`],
    /// in one durable commit before sending the events that follow.
    ApplyFlushed { holder: SiteId, bucket: BucketId, writes: Vec<FlushedWrite> },
    /// A satellite forwarded a write: it goes through the gate as `write`;
    /// the caller takes the bytes that came with the request, and commits them
    /// at [`HomeEvent::WriteReady`].
    WriteForwarded { write: WriteId, from: SiteId, req: RequestId, bucket: BucketId, key: ObjectKey, kind: WriteKind },
    /// The write-lease table changed: persist [`HomeSite::write_leases`]
    /// before sending the messages that follow.
    WriteLeasesChanged,
}

/// Where a write came from, so its acknowledgement goes back the right way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOrigin {
    /// A client of the home site itself.
    Local,
    /// A satellite without a write lease forwarded it.
    Forwarded { from: SiteId, req: RequestId },
}

/// The answer to a write or a read at the home site.
#[derive(Clone, Debug, PartialEq)]
pub enum Gate {
    /// Proceed; for a write, wait for [`HomeEvent::WriteReady`] of this id.
    Proceed(WriteId),
    /// A write lease covers the key: the holder is the authority.
    Redirect { holder: SiteId },
}

/// How the home site may serve a read of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HomeRead {
    /// Serve the committed value. `cacheable` is false while a write of the
    /// key awaits its gate: a satellite may return that value but must not
    /// keep it, as it will be stale the moment the write is acknowledged.
    Local {
        cacheable: bool,
    },
    Redirect {
        holder: SiteId,
    },
}

/// A write lease as the home site persists it: write leases never expire, so
/// they must survive a restart of the home site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteLeaseRecord {
    pub lease: LeaseId,
    pub holder: SiteId,
    pub scope: LeaseScope,
    /// Every write of the holder up to this sequence number is applied here.
    pub flushed_upto: u64,
}

/// What an operator's revocation of a write lease declares lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeStatement {
    pub lease: LeaseId,
    pub holder: SiteId,
    pub scope: LeaseScope,
    /// Writes the holder acknowledged with a sequence number above this were
    /// never flushed here and are lost; the holder discards them if it returns.
    pub lost_after: u64,
}

#[derive(Clone, Debug)]
struct ReadLease {
    holder: SiteId,
    /// The request it answered, to recognise that request sent again.
    req: RequestId,
    scope: LeaseScope,
    /// The last grant or renewal, by the home clock.
    granted_at: MonoTime,
    /// Set once a write-lease acquisition recalled it: renewals are refused.
    recalled: bool,
}

#[derive(Clone, Debug)]
struct Waiting {
    holder: SiteId,
    /// When the holder surely stopped serving under the lease, as it stood when
    /// the wait began (renewals afterwards carry the invalidation, see
    /// [`Message::LeaseRenewed`]).
    expires: MonoTime,
    last_sent: MonoTime,
}

#[derive(Clone, Debug)]
struct PendingWrite {
    bucket: BucketId,
    keys: Vec<ObjectKey>,
    origin: WriteOrigin,
    waiting: BTreeMap<LeaseId, Waiting>,
    reported: bool,
}

#[derive(Clone, Debug)]
struct PendingAcquire {
    holder: SiteId,
    req: RequestId,
    scope: LeaseScope,
    waiting: BTreeMap<LeaseId, Waiting>,
}

#[derive(Clone, Debug)]
struct WriteLease {
    holder: SiteId,
    /// The request it answered (zero for a lease restored after a restart).
    req: RequestId,
    scope: LeaseScope,
    flushed_upto: u64,
    recall_sent: Option<MonoTime>,
}

/// The lease table and write gate of one home site.
#[derive(Debug)]
pub struct HomeSite {
    me: SiteId,
    timing: LeaseTiming,
    epoch: u64,
    next_lease: u64,
    next_write: u64,
    /// After a restart the table of read leases is gone: no write may be
    /// acknowledged and no write lease granted before every lease of the
    /// previous incarnation has surely expired.
    recovering_until: MonoTime,
    read_leases: BTreeMap<LeaseId, ReadLease>,
    write_leases: BTreeMap<LeaseId, WriteLease>,
    revoked: BTreeMap<LeaseId, u64>,
    writes: BTreeMap<WriteId, PendingWrite>,
    acquires: Vec<PendingAcquire>,
    /// Forwarded writes seen in this incarnation, so a duplicated message is
    /// not applied twice.
    forwarded: BTreeSet<(SiteId, RequestId)>,
    /// The same, oldest first, to forget the oldest past `FORWARDS_REMEMBERED`.
    forwarded_order: VecDeque<(SiteId, RequestId)>,
}

impl HomeSite {
    /// A home site starting at `now`. `epoch` must be larger than at every
    /// earlier start (the caller persists a counter). `write_leases` are the
    /// records persisted before the restart. `first_start` is true only when
    /// this home site has never granted a lease, so there is nothing to wait for.
    pub fn start(
        me: SiteId,
        timing: LeaseTiming,
        epoch: u64,
        write_leases: Vec<WriteLeaseRecord>,
        now: MonoTime,
        first_start: bool,
    ) -> Self {
        let recovering_until = if first_start { now } else { now.plus(timing.surely_expired_after(timing.read_lease)) };
        let write_leases = write_leases
            .into_iter()
            .map(|r| {
                let lease = WriteLease {
                    holder: r.holder,
                    req: RequestId(0),
                    scope: r.scope,
                    flushed_upto: r.flushed_upto,
                    recall_sent: None,
                };
                (r.lease, lease)
            })
            .collect();
        Self {
            me,
            timing,
            epoch,
            next_lease: 0,
            next_write: 0,
            recovering_until,
            read_leases: BTreeMap::new(),
            write_leases,
            revoked: BTreeMap::new(),
            writes: BTreeMap::new(),
            acquires: Vec::new(),
            forwarded: BTreeSet::new(),
            forwarded_order: VecDeque::new(),
        }
    }

    pub fn site(&self) -> &SiteId {
        &self.me
    }

    /// The write leases to persist (see [`HomeEvent::WriteLeasesChanged`]).
    pub fn write_leases(&self) -> Vec<WriteLeaseRecord> {
        self.write_leases
            .iter()
            .map(|(id, w)| WriteLeaseRecord {
                lease: *id,
                holder: w.holder.clone(),
                scope: w.scope.clone(),
                flushed_upto: w.flushed_upto,
            })
            .collect()
    }

    /// The write lease `lease`, if this home site holds it in its table.
    pub fn write_lease(&self, lease: LeaseId) -> Option<WriteLeaseRecord> {
        self.write_leases().into_iter().find(|r| r.lease == lease)
    }

    /// The holder of a write lease over `key`, if any.
    pub fn write_lease_holder(&self, bucket: BucketId, key: &ObjectKey) -> Option<SiteId> {
        self.write_lease_over_key(bucket, key).map(|w| w.holder.clone())
    }

    /// Read leases currently in the table, as (lease, holder, scope).
    pub fn read_leases(&self) -> Vec<(LeaseId, SiteId, LeaseScope)> {
        self.read_leases.iter().map(|(id, l)| (*id, l.holder.clone(), l.scope.clone())).collect()
    }

    fn surely_expired_at(&self, granted_at: MonoTime) -> MonoTime {
        granted_at.plus(self.timing.surely_expired_after(self.timing.read_lease))
    }

    fn write_lease_over_key(&self, bucket: BucketId, key: &ObjectKey) -> Option<&WriteLease> {
        self.write_leases.values().find(|w| w.scope.covers(bucket, key))
    }

    fn send(to: &SiteId, message: Message) -> HomeEvent {
        HomeEvent::Send(Outgoing { to: to.clone(), message })
    }

    /// How a read of `key` may be served here (for a client of this site or a
    /// satellite's fetch).
    pub fn read(&self, bucket: BucketId, key: &ObjectKey) -> HomeRead {
        if let Some(w) = self.write_lease_over_key(bucket, key) {
            return HomeRead::Redirect { holder: w.holder.clone() };
        }
        let pending = self.writes.values().any(|w| w.bucket == bucket && w.keys.contains(key));
        HomeRead::Local { cacheable: !pending }
    }

    /// How a listing of `prefix` may be served (for a satellite's fetch): not
    /// cacheable while a write of any key under the prefix awaits its gate,
    /// for the same reason as [`HomeSite::read`].
    pub fn list(&self, bucket: BucketId, prefix: &str) -> HomeRead {
        let scope = LeaseScope::new(bucket, prefix);
        if let Some(w) = self.write_leases.values().find(|w| w.scope.overlaps(&scope)) {
            return HomeRead::Redirect { holder: w.holder.clone() };
        }
        let pending =
            self.writes.values().any(|w| w.bucket == bucket && w.keys.iter().any(|k| scope.covers(bucket, k)));
        HomeRead::Local { cacheable: !pending }
    }

    /// Starts the gate of a write (put, delete, multipart completion) of
    /// `keys` in `bucket`: invalidations go to every holder of a covering
    /// lease, and [`HomeEvent::WriteReady`] follows once all acknowledged or
    /// surely expired. A write of a key under a write lease is redirected.
    pub fn begin_write(
        &mut self,
        now: MonoTime,
        bucket: BucketId,
        keys: Vec<ObjectKey>,
        origin: WriteOrigin,
    ) -> (Gate, Vec<HomeEvent>) {
        if let Some(w) = keys.iter().find_map(|k| self.write_lease_over_key(bucket, k)) {
            return (Gate::Redirect { holder: w.holder.clone() }, Vec::new());
        }
        self.next_write += 1;
        let id = WriteId(self.next_write);
        let mut events = Vec::new();
        let mut waiting = BTreeMap::new();
        for (lease_id, lease) in &self.read_leases {
            if !keys.iter().any(|k| lease.scope.covers(bucket, k)) {
                continue;
            }
            let expires = self.surely_expired_at(lease.granted_at);
            if expires <= now {
                continue;
            }
            let covered: Vec<ObjectKey> = keys.iter().filter(|k| lease.scope.covers(bucket, k)).cloned().collect();
            events.push(Self::send(&lease.holder, Message::Invalidate { lease: *lease_id, write: id, keys: covered }));
            waiting.insert(*lease_id, Waiting { holder: lease.holder.clone(), expires, last_sent: now });
        }
        self.writes.insert(id, PendingWrite { bucket, keys, origin, waiting, reported: false });
        events.extend(self.poll(now));
        (Gate::Proceed(id), events)
    }

    /// The caller committed a ready write: forget it, and acknowledge it to
    /// the satellite that forwarded it.
    pub fn finish_write(&mut self, now: MonoTime, write: WriteId) -> Vec<HomeEvent> {
        let mut events = Vec::new();
        if let Some(w) = self.writes.remove(&write)
            && let WriteOrigin::Forwarded { from, req } = w.origin
        {
            events.push(Self::send(&from, Message::WriteAcked { req }));
        }
        events.extend(self.poll(now));
        events
    }

    /// Abandons a write that will not be committed (the client went away, or
    /// storing its bytes failed).
    pub fn abort_write(&mut self, now: MonoTime, write: WriteId) -> Vec<HomeEvent> {
        self.writes.remove(&write);
        self.poll(now)
    }

    /// Drops leases that surely expired, resends unanswered invalidations and
    /// recalls, and reports writes and write-lease grants that became ready.
    pub fn tick(&mut self, now: MonoTime) -> Vec<HomeEvent> {
        let mut events = Vec::new();
        let retry = self.timing.retry_every;
        let expired: Vec<LeaseId> = self
            .read_leases
            .iter()
            .filter(|(_, l)| self.surely_expired_at(l.granted_at) <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.read_leases.remove(&id);
        }
        for (write, w) in &mut self.writes {
            for (lease, wait) in &mut w.waiting {
                if now.since(wait.last_sent) >= retry && wait.expires > now {
                    wait.last_sent = now;
                    let keys = w
                        .keys
                        .iter()
                        .filter(|k| self.read_leases.get(lease).is_none_or(|l| l.scope.covers(w.bucket, k)))
                        .cloned()
                        .collect();
                    events.push(Self::send(&wait.holder, Message::Invalidate { lease: *lease, write: *write, keys }));
                }
            }
        }
        for a in &mut self.acquires {
            for (lease, wait) in &mut a.waiting {
                if now.since(wait.last_sent) >= retry && wait.expires > now {
                    wait.last_sent = now;
                    events.push(Self::send(&wait.holder, Message::RecallReadLease { lease: *lease }));
                }
            }
        }
        for (lease, w) in &mut self.write_leases {
            if let Some(sent) = w.recall_sent
                && now.since(sent) >= retry
            {
                w.recall_sent = Some(now);
                events.push(Self::send(&w.holder, Message::RecallWriteLease { lease: *lease }));
            }
        }
        events.extend(self.poll(now));
        events
    }

    /// Reports what became ready: writes whose gate opened, acquisitions whose
    /// recalls completed.
    fn poll(&mut self, now: MonoTime) -> Vec<HomeEvent> {
        let mut events = Vec::new();
        let recovered = now >= self.recovering_until;
        for (id, w) in &mut self.writes {
            w.waiting.retain(|_, wait| wait.expires > now);
            if recovered && w.waiting.is_empty() && !w.reported {
                w.reported = true;
                events.push(HomeEvent::WriteReady(*id));
            }
        }
        let mut i = 0;
        while i < self.acquires.len() {
            let a = &mut self.acquires[i];
            a.waiting.retain(|_, wait| wait.expires > now);
            let writes_in_scope = self.writes.values().any(|w| w.keys.iter().any(|k| a.scope.covers(w.bucket, k)));
            if recovered && a.waiting.is_empty() && !writes_in_scope {
                let a = self.acquires.remove(i);
                self.next_lease += 1;
                let lease = LeaseId { epoch: self.epoch, seq: self.next_lease };
                self.write_leases.insert(
                    lease,
                    WriteLease {
                        holder: a.holder.clone(),
                        req: a.req,
                        scope: a.scope.clone(),
                        flushed_upto: 0,
                        recall_sent: None,
                    },
                );
                events.push(HomeEvent::WriteLeasesChanged);
                events.push(Self::send(&a.holder, Message::WriteLeaseGranted { req: a.req, lease, scope: a.scope }));
            } else {
                i += 1;
            }
        }
        events
    }

    /// Asks the holder of a write lease to flush and give it back.
    pub fn recall_write_lease(&mut self, now: MonoTime, lease: LeaseId) -> Vec<HomeEvent> {
        match self.write_leases.get_mut(&lease) {
            Some(w) => {
                w.recall_sent = Some(now);
                vec![Self::send(&w.holder, Message::RecallWriteLease { lease })]
            }
            None => Vec::new(),
        }
    }

    /// An operator takes a write lease away from a holder that does not come
    /// back. What the holder acknowledged and never flushed is declared lost.
    pub fn revoke_write_lease(&mut self, now: MonoTime, lease: LeaseId) -> Option<(RevokeStatement, Vec<HomeEvent>)> {
        let w = self.write_leases.remove(&lease)?;
        self.revoked.insert(lease, w.flushed_upto);
        let statement = RevokeStatement { lease, holder: w.holder.clone(), scope: w.scope, lost_after: w.flushed_upto };
        let mut events = vec![
            HomeEvent::WriteLeasesChanged,
            Self::send(&w.holder, Message::WriteLeaseRevoked { lease, lost_after: w.flushed_upto }),
        ];
        events.extend(self.poll(now));
        Some((statement, events))
    }

    /// Handles one message from `from`.
    pub fn on_message(&mut self, now: MonoTime, from: &SiteId, message: Message) -> Vec<HomeEvent> {
        match message {
            Message::GrantReadLease { req, scope } => self.grant_read(now, from, req, scope),
            Message::RenewLease { req, lease } => self.renew(now, from, req, lease),
            Message::ReleaseLease { lease } => {
                if self.read_leases.get(&lease).is_some_and(|l| &l.holder == from) {
                    self.read_leases.remove(&lease);
                }
                self.stop_waiting_for(now, lease, from)
            }
            Message::InvalidateAck { lease, write } => {
                if let Some(w) = self.writes.get_mut(&write)
                    && w.waiting.get(&lease).is_some_and(|wait| &wait.holder == from)
                {
                    w.waiting.remove(&lease);
                }
                self.poll(now)
            }
            Message::RecallReadAck { lease } => {
                if self.read_leases.get(&lease).is_some_and(|l| &l.holder == from && l.recalled) {
                    self.read_leases.remove(&lease);
                }
                self.stop_waiting_for(now, lease, from)
            }
            Message::ForwardWrite { req, bucket, key, kind } => {
                if !self.forwarded.insert((from.clone(), req)) {
                    return Vec::new();
                }
                self.forwarded_order.push_back((from.clone(), req));
                if self.forwarded_order.len() > FORWARDS_REMEMBERED
                    && let Some(old) = self.forwarded_order.pop_front()
                {
                    self.forwarded.remove(&old);
                }
                let origin = WriteOrigin::Forwarded { from: from.clone(), req };
                match self.begin_write(now, bucket, vec![key.clone()], origin) {
                    (Gate::Redirect { holder }, _) => {
                        let scope = self.write_leases.values().find(|w| w.holder == holder).map(|w| w.scope.clone());
                        let scope = scope.unwrap_or_else(|| LeaseScope::bucket(bucket));
                        vec![Self::send(from, Message::Redirect { req, scope, holder })]
                    }
                    (Gate::Proceed(write), events) => {
                        let started = HomeEvent::WriteForwarded { write, from: from.clone(), req, bucket, key, kind };
                        std::iter::once(started).chain(events).collect()
                    }
                }
            }
            Message::AcquireWriteLease { req, scope } => self.acquire_write(now, from, req, scope),
            Message::FlushWrites { req, lease, writes } => self.flush(from, req, lease, writes),
            Message::ReleaseWriteLease { req, lease, flushed_upto } => {
                let mut events = Vec::new();
                match self.write_leases.get(&lease) {
                    Some(w) if &w.holder == from && w.flushed_upto >= flushed_upto => {
                        self.write_leases.remove(&lease);
                        events.push(HomeEvent::WriteLeasesChanged);
                        events.push(Self::send(from, Message::WriteLeaseReleased { req, lease }));
                    }
                    // The holder believes more is flushed than arrived: tell it
                    // where home stands so it sends the rest.
                    Some(w) if &w.holder == from => {
                        events.push(Self::send(from, Message::FlushAck { req, lease, upto: w.flushed_upto }));
                    }
                    Some(_) => {}
                    None => events.push(Self::send(from, Message::WriteLeaseReleased { req, lease })),
                }
                events.extend(self.poll(now));
                events
            }
            // Answers that only a satellite receives, and messages a home
            // site never expects: ignored, never a panic.
            _ => Vec::new(),
        }
    }

    fn stop_waiting_for(&mut self, now: MonoTime, lease: LeaseId, from: &SiteId) -> Vec<HomeEvent> {
        for w in self.writes.values_mut() {
            if w.waiting.get(&lease).is_some_and(|wait| &wait.holder == from) {
                w.waiting.remove(&lease);
            }
        }
        for a in &mut self.acquires {
            if a.waiting.get(&lease).is_some_and(|wait| &wait.holder == from) {
                a.waiting.remove(&lease);
            }
        }
        self.poll(now)
    }

    fn grant_read(&mut self, now: MonoTime, from: &SiteId, req: RequestId, scope: LeaseScope) -> Vec<HomeEvent> {
        if let Some(w) = self.write_leases.values().find(|w| w.scope.overlaps(&scope)) {
            return vec![Self::send(from, Message::Redirect { req, scope: w.scope.clone(), holder: w.holder.clone() })];
        }
        if self.acquires.iter().any(|a| a.scope.overlaps(&scope)) {
            return vec![Self::send(from, Message::Refused { req, reason: Refusal::Busy })];
        }
        // A request sent again gets the lease already granted for it, as it
        // was: its holder counts from its first send, so the bound taken at
        // the first grant still holds. Any other request gets a new lease; a
        // lease is never extended but by a renewal, which carries what is
        // still to be invalidated.
        let existing = self
            .read_leases
            .iter()
            .find(|(_, l)| &l.holder == from && l.req == req && !l.recalled)
            .map(|(id, _)| *id)
            .filter(|id| self.read_leases.get(id).is_some_and(|l| self.surely_expired_at(l.granted_at) > now));
        let lease = existing.unwrap_or_else(|| {
            self.next_lease += 1;
            let id = LeaseId { epoch: self.epoch, seq: self.next_lease };
            let lease = ReadLease { holder: from.clone(), req, scope: scope.clone(), granted_at: now, recalled: false };
            self.read_leases.insert(id, lease);
            id
        });
        vec![Self::send(from, Message::ReadLeaseGranted { req, lease, scope, duration: self.timing.read_lease })]
    }

    fn renew(&mut self, now: MonoTime, from: &SiteId, req: RequestId, lease: LeaseId) -> Vec<HomeEvent> {
        let live = self
            .read_leases
            .get(&lease)
            .is_some_and(|l| &l.holder == from && !l.recalled && self.surely_expired_at(l.granted_at) > now);
        if !live {
            return vec![Self::send(from, Message::LeaseUnknown { req, lease })];
        }
        if let Some(l) = self.read_leases.get_mut(&lease) {
            l.granted_at = now;
        }
        let invalidations = self
            .writes
            .iter()
            .filter(|(_, w)| w.waiting.contains_key(&lease))
            .map(|(id, w)| PendingInvalidation { write: *id, keys: w.keys.clone() })
            .collect();
        vec![Self::send(from, Message::LeaseRenewed { req, lease, duration: self.timing.read_lease, invalidations })]
    }

    fn acquire_write(&mut self, now: MonoTime, from: &SiteId, req: RequestId, scope: LeaseScope) -> Vec<HomeEvent> {
        if let Some((id, w)) = self.write_leases.iter().find(|(_, w)| w.scope.overlaps(&scope)) {
            // The same request sent again gets the same lease; another request
            // of the holder waits: the holder may be giving this one back, or
            // not know it has it (a grant it will refuse), and a second grant
            // of the same lease would outlive that release.
            if &w.holder == from && w.scope == scope && w.req == req {
                return vec![Self::send(from, Message::WriteLeaseGranted { req, lease: *id, scope })];
            }
            if &w.holder == from {
                return vec![Self::send(from, Message::Refused { req, reason: Refusal::Busy })];
            }
            return vec![Self::send(from, Message::Redirect { req, scope: w.scope.clone(), holder: w.holder.clone() })];
        }
        if let Some(a) = self.acquires.iter().find(|a| a.scope.overlaps(&scope)) {
            if &a.holder == from && a.req == req {
                return Vec::new();
            }
            return vec![Self::send(from, Message::Refused { req, reason: Refusal::Busy })];
        }
        let mut events = Vec::new();
        let mut waiting = BTreeMap::new();
        for (id, l) in &mut self.read_leases {
            if !l.scope.overlaps(&scope) {
                continue;
            }
            l.recalled = true;
            let expires = l.granted_at.plus(self.timing.surely_expired_after(self.timing.read_lease));
            events.push(Self::send(&l.holder, Message::RecallReadLease { lease: *id }));
            waiting.insert(*id, Waiting { holder: l.holder.clone(), expires, last_sent: now });
        }
        self.acquires.push(PendingAcquire { holder: from.clone(), req, scope, waiting });
        events.extend(self.poll(now));
        events
    }

    fn flush(&mut self, from: &SiteId, req: RequestId, lease: LeaseId, writes: Vec<FlushedWrite>) -> Vec<HomeEvent> {
        if let Some(lost_after) = self.revoked.get(&lease) {
            return vec![Self::send(from, Message::WriteLeaseRevoked { lease, lost_after: *lost_after })];
        }
        let Some(w) = self.write_leases.get_mut(&lease).filter(|w| &w.holder == from) else {
            return vec![Self::send(from, Message::LeaseUnknown { req, lease })];
        };
        // Apply in order, each once; a gap (a lost earlier batch) stops the
        // batch, and the ack tells the holder where to resume.
        let mut fresh = Vec::new();
        for write in writes {
            if write.seq == w.flushed_upto + 1 && w.scope.covers(w.scope.bucket, &write.key) {
                w.flushed_upto = write.seq;
                fresh.push(write);
            } else if write.seq > w.flushed_upto + 1 {
                break;
            }
        }
        let upto = w.flushed_upto;
        let bucket = w.scope.bucket;
        let mut events = Vec::new();
        if !fresh.is_empty() {
            events.push(HomeEvent::ApplyFlushed { holder: from.clone(), bucket, writes: fresh });
        }
        events.push(Self::send(from, Message::FlushAck { req, lease, upto }));
        events
    }
}
