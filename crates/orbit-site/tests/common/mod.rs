//! A deterministic simulator of one home site and N satellites: a clock per
//! site (with its own rate and offset), a network that delays, drops,
//! duplicates, reorders and partitions messages, and crashes with restarts.
//! Clients read and write a per-key register; every read served anywhere is
//! checked against the last write acknowledged before the read began.

#![allow(dead_code)]

use orbit_lincheck::{Op, Operation};
use orbit_site::{
    FetchId, Gate, HomeEvent, HomeRead, HomeSite, LeaseScope, LeaseTiming, Message, MonoTime, ReadPlan, SatelliteEvent,
    SatelliteSite, SiteId, WriteId, WriteKind, WriteLeaseRecord, WriteLeaseState, WriteOrigin,
};
use orbit_types::{BucketId, ObjectKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const KEYS: [&str; 4] = ["a/0", "a/1", "b/0", "b/1"];
pub const SCOPES: [&str; 4] = ["", "a/", "b/", "a/0"];

pub fn bucket() -> BucketId {
    BucketId::from_slice(&[1; 16]).expect("16 bytes")
}

pub fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).expect("valid key")
}

/// A read that reached a satellite site and is waiting for home.
#[derive(Clone, Debug)]
struct PendingRead {
    key: ObjectKey,
    fetch: Option<FetchId>,
    /// The last acknowledged write of the key when the read began.
    floor: u64,
    called: Option<u64>,
}

/// A write in home's gate: its key, the satellite and request that forwarded
/// it (if any), and its index in the history (for a home client's write).
type InGate = (ObjectKey, Option<(usize, orbit_site::RequestId)>, Option<usize>);

#[derive(Clone, Debug)]
enum Payload {
    Proto(Message),
    FetchReq { read: u64, key: ObjectKey },
    FetchResp { read: u64, value: Option<u64>, cacheable: bool },
}

#[derive(Clone, Debug)]
struct InFlight {
    at: u64,
    from: usize,
    to: usize,
    payload: Payload,
}

/// How the network and the sites misbehave.
#[derive(Clone, Debug)]
pub struct Faults {
    pub drop: f64,
    pub duplicate: f64,
    pub max_delay_ms: u64,
    pub partitions: bool,
    pub crash_satellites: bool,
    pub crash_home: bool,
    pub write_leases: bool,
}

impl Faults {
    pub fn all() -> Self {
        Self {
            drop: 0.1,
            duplicate: 0.05,
            max_delay_ms: 80,
            partitions: true,
            crash_satellites: true,
            crash_home: true,
            write_leases: true,
        }
    }
}

struct Satellite {
    sm: SatelliteSite,
    up: bool,
    /// Cached values, as the data layer would keep them.
    cache: BTreeMap<ObjectKey, u64>,
    /// Writes acknowledged under a write lease, durable on this site's disk.
    local: BTreeMap<ObjectKey, u64>,
    persisted: Vec<WriteLeaseState>,
    reads: BTreeMap<u64, PendingRead>,
    forwards: BTreeMap<u64, ObjectKey>,
    restarts: u64,
}

pub struct Sim {
    pub rng: StdRng,
    pub timing: LeaseTiming,
    pub faults: Faults,
    /// Real time, in milliseconds: only the simulator sees it.
    pub now_ms: u64,
    /// Clock of each site: local = offset + real * rate. Site 0 is home.
    rates: Vec<f64>,
    offsets: Vec<u64>,
    names: Vec<SiteId>,
    home: HomeSite,
    home_up: bool,
    epoch: u64,
    home_persisted: Vec<WriteLeaseRecord>,
    /// The committed register at home: key -> version (0 = never written).
    store: BTreeMap<ObjectKey, u64>,
    /// Writes in the gate: key, and the satellite and request that forwarded it.
    pending_writes: BTreeMap<WriteId, InGate>,
    /// Versions of forwarded writes committed at home, until their ack arrives.
    forward_versions: BTreeMap<(usize, orbit_site::RequestId), u64>,
    sats: Vec<Satellite>,
    net: Vec<InFlight>,
    isolated: BTreeSet<usize>,
    next_version: u64,
    next_read: u64,
    /// Version of the last acknowledged write of each key.
    pub acked: BTreeMap<ObjectKey, u64>,
    pub violations: Vec<String>,
    pub served: u64,
    pub served_cached: u64,
    pub acked_writes: u64,
    /// Every client operation, for the linearizability checker.
    history: Vec<Operation>,
    stamp: u64,
    /// History index of each forwarded write, by satellite and request.
    forward_ops: BTreeMap<(usize, orbit_site::RequestId), usize>,
}

impl Sim {
    /// `rates[0]` is home's clock rate, the rest the satellites'.
    pub fn new(seed: u64, satellites: usize, timing: LeaseTiming, faults: Faults, rates: Vec<f64>) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let names: Vec<SiteId> =
            (0..=satellites).map(|i| SiteId::new(if i == 0 { "home".to_owned() } else { format!("sat{i}") })).collect();
        let offsets: Vec<u64> = (0..=satellites).map(|_| rng.random_range(0..1_000_000_000_000)).collect();
        let mut sim = Self {
            rng,
            home: HomeSite::start(names[0].clone(), timing.clone(), 1, Vec::new(), MonoTime::from_nanos(0), true),
            home_up: true,
            epoch: 1,
            home_persisted: Vec::new(),
            store: KEYS.iter().map(|k| (key(k), 0)).collect(),
            pending_writes: BTreeMap::new(),
            forward_versions: BTreeMap::new(),
            sats: (1..=satellites)
                .map(|i| Satellite {
                    sm: SatelliteSite::start(names[i].clone(), timing.clone(), Vec::new(), 0),
                    up: true,
                    cache: BTreeMap::new(),
                    local: BTreeMap::new(),
                    persisted: Vec::new(),
                    reads: BTreeMap::new(),
                    forwards: BTreeMap::new(),
                    restarts: 0,
                })
                .collect(),
            timing,
            faults,
            now_ms: 0,
            rates,
            offsets,
            names,
            net: Vec::new(),
            isolated: BTreeSet::new(),
            next_version: 0,
            next_read: 0,
            acked: KEYS.iter().map(|k| (key(k), 0)).collect(),
            violations: Vec::new(),
            served: 0,
            served_cached: 0,
            acked_writes: 0,
            history: Vec::new(),
            stamp: 0,
            forward_ops: BTreeMap::new(),
        };
        let now = sim.local(0);
        sim.home = HomeSite::start(sim.names[0].clone(), sim.timing.clone(), 1, Vec::new(), now, true);
        sim
    }

    /// Site `i`'s own clock now.
    pub fn local(&self, i: usize) -> MonoTime {
        let nanos = (self.now_ms as f64 * 1e6 * self.rates[i]) as u64;
        MonoTime::from_nanos(self.offsets[i] + nanos)
    }

    fn index(&self, site: &SiteId) -> usize {
        self.names.iter().position(|n| n == site).expect("known site")
    }

    fn up(&self, i: usize) -> bool {
        if i == 0 { self.home_up } else { self.sats[i - 1].up }
    }

    fn send(&mut self, from: usize, to: usize, payload: Payload) {
        let delay = self.rng.random_range(0..=self.faults.max_delay_ms);
        self.net.push(InFlight { at: self.now_ms + delay, from, to, payload });
    }

    /// Real time as the history records it: one shared counter, so events
    /// in the same millisecond keep their order.
    fn stamp(&mut self) -> u64 {
        self.stamp += 1;
        self.stamp
    }

    /// The history of every client operation: reads that never returned are
    /// left out, writes never acknowledged stay with an unknown outcome.
    pub fn history(&self) -> Vec<Operation> {
        self.history.iter().filter(|o| o.op != Op::Get || o.ret.is_some()).cloned().collect()
    }

    fn call_write(&mut self, site: usize, key: &ObjectKey) -> usize {
        let call = self.stamp();
        let id = self.history.len();
        self.history.push(Operation {
            id: id as u64,
            client: format!("{}-{id}", self.names[site]),
            key: key.to_string(),
            // The value is the version, known once committed.
            op: Op::Put(format!("uncommitted-{id}")),
            output: None,
            call,
            ret: None,
        });
        id
    }

    fn committed(&mut self, op: usize, version: u64) {
        self.history[op].op = Op::Put(format!("v{version}"));
    }

    fn returned(&mut self, op: usize) {
        self.history[op].ret = Some(self.stamp());
    }

    fn check_read(&mut self, site: usize, key: &ObjectKey, value: u64, floor: u64, how: &str, called: Option<u64>) {
        let call = called.unwrap_or_else(|| self.stamp());
        let ret = self.stamp();
        let id = self.history.len();
        self.history.push(Operation {
            id: id as u64,
            client: format!("{}-{id}", self.names[site]),
            key: key.to_string(),
            op: Op::Get,
            output: Some((value > 0).then(|| format!("v{value}"))),
            call,
            ret: Some(ret),
        });
        self.served += 1;
        if value < floor {
            self.violations.push(format!(
                "t={}ms: {} served {key} = v{value} ({how}), but v{floor} was acknowledged before the read began",
                self.now_ms, self.names[site]
            ));
        }
    }

    fn trace(&self, what: &str) {
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("t={}ms {what}", self.now_ms);
        }
    }

    fn acknowledge(&mut self, key: &ObjectKey, version: u64) {
        self.trace(&format!("ack {key} v{version}"));
        self.acked_writes += 1;
        let a = self.acked.entry(key.clone()).or_insert(0);
        *a = (*a).max(version);
    }

    fn commit(&mut self, key: &ObjectKey) -> u64 {
        self.next_version += 1;
        self.store.insert(key.clone(), self.next_version);
        self.next_version
    }

    // --- home ---

    fn home_events(&mut self, events: Vec<HomeEvent>) {
        let mut queue = events;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for e in queue {
                match e {
                    HomeEvent::Send(o) => {
                        let to = self.index(&o.to);
                        self.send(0, to, Payload::Proto(o.message));
                    }
                    HomeEvent::WriteForwarded { write, from, req, key, .. } => {
                        let sat = self.index(&from);
                        self.pending_writes.insert(write, (key, Some((sat, req)), None));
                    }
                    HomeEvent::WriteReady(w) => {
                        if let Some((k, origin, op)) = self.pending_writes.remove(&w) {
                            let v = self.commit(&k);
                            match origin {
                                // A local client's write is acknowledged at
                                // once; a forwarded one when its ack arrives.
                                None => {
                                    if let Some(op) = op {
                                        self.committed(op, v);
                                        self.returned(op);
                                    }
                                    self.acknowledge(&k, v)
                                }
                                Some(o) => {
                                    if let Some(op) = self.forward_ops.get(&o).copied() {
                                        self.committed(op, v);
                                    }
                                    self.forward_versions.insert(o, v);
                                }
                            }
                            let now = self.local(0);
                            next.extend(self.home.finish_write(now, w));
                        }
                    }
                    HomeEvent::ApplyFlushed { writes, .. } => {
                        for w in writes {
                            let v: u64 = w.version.parse().expect("sim versions are numbers");
                            self.store.insert(w.key.clone(), v);
                        }
                    }
                    HomeEvent::WriteLeasesChanged => {}
                }
            }
            queue = next;
        }
        self.home_persisted = self.home.write_leases();
    }

    /// A client of the home site writes `key`.
    pub fn write_at_home(&mut self, key: &ObjectKey) {
        if !self.home_up {
            return;
        }
        let now = self.local(0);
        match self.home.begin_write(now, bucket(), vec![key.clone()], WriteOrigin::Local) {
            (Gate::Proceed(w), events) => {
                let op = self.call_write(0, key);
                self.pending_writes.insert(w, (key.clone(), None, Some(op)));
                self.home_events(events);
            }
            // The holder is the authority: the client's write would go there.
            (Gate::Redirect { holder }, _) => {
                let h = self.index(&holder);
                let op = self.call_write(0, key);
                if self.write_under_write_lease(h, key) {
                    let v = self.next_version;
                    self.committed(op, v);
                    self.returned(op);
                } else {
                    // Refused outright: it never took effect.
                    self.history.pop();
                }
            }
        }
    }

    /// The value a write-lease holder serves for `key`: its own acknowledged
    /// writes, else what home had (home's copy of a write-leased prefix only
    /// changes through the holder's flushes).
    fn holder_value(&self, sat: usize, key: &ObjectKey) -> u64 {
        let s = &self.sats[sat - 1];
        s.local.get(key).copied().unwrap_or(0).max(self.store.get(key).copied().unwrap_or(0))
    }

    /// A client of the home site reads `key`.
    pub fn read_at_home(&mut self, key: &ObjectKey) {
        if !self.home_up {
            return;
        }
        let floor = self.acked[key];
        match self.home.read(bucket(), key) {
            HomeRead::Local { .. } => {
                let v = self.store[key];
                self.check_read(0, key, v, floor, "home store", None);
            }
            HomeRead::Redirect { holder } => {
                let h = self.index(&holder);
                if self.sats[h - 1].up && !self.isolated.contains(&h) {
                    let v = self.holder_value(h, key);
                    self.check_read(0, key, v, floor, "redirected to the write-lease holder", None);
                }
            }
        }
    }

    fn home_receive(&mut self, from: usize, payload: Payload) {
        let now = self.local(0);
        match payload {
            Payload::Proto(m) => {
                let from_name = self.names[from].clone();
                self.trace(&format!("home <- {from_name}: {m:?}"));
                let events = self.home.on_message(now, &from_name, m);
                self.home_events(events);
            }
            Payload::FetchReq { read, key } => {
                let (value, cacheable) = match self.home.read(bucket(), &key) {
                    HomeRead::Local { cacheable } => (Some(self.store[&key]), cacheable),
                    HomeRead::Redirect { holder } => {
                        let h = self.index(&holder);
                        if self.sats[h - 1].up && !self.isolated.contains(&h) {
                            (Some(self.holder_value(h, &key)), false)
                        } else {
                            (None, false)
                        }
                    }
                };
                self.send(0, from, Payload::FetchResp { read, value, cacheable });
            }
            Payload::FetchResp { .. } => {}
        }
    }

    // --- satellites ---

    fn sat_events(&mut self, i: usize, events: Vec<SatelliteEvent>) {
        for e in events {
            match e {
                SatelliteEvent::Send(o) => {
                    let to = self.index(&o.to);
                    self.send(i, to, Payload::Proto(o.message));
                }
                SatelliteEvent::ForwardAcked { req } => {
                    if let Some(k) = self.sats[i - 1].forwards.remove(&req.0)
                        && let Some(v) = self.forward_versions.remove(&(i, req))
                    {
                        if let Some(op) = self.forward_ops.get(&(i, req)).copied() {
                            self.returned(op);
                        }
                        self.acknowledge(&k, v);
                    }
                }
                SatelliteEvent::Redirected { .. } => {
                    // The forwarded write (if any) was not applied: its
                    // client gets an error; nothing to acknowledge.
                }
                SatelliteEvent::Refused { .. }
                | SatelliteEvent::WritesLost { .. }
                | SatelliteEvent::ReadLeaseGranted { .. }
                | SatelliteEvent::WriteLeaseGranted { .. }
                | SatelliteEvent::WriteLeaseReleased { .. }
                | SatelliteEvent::Flushed { .. } => {}
            }
        }
        let s = &mut self.sats[i - 1];
        s.persisted = s.sm.write_lease_state();
    }

    fn write_under_write_lease(&mut self, i: usize, key: &ObjectKey) -> bool {
        if !self.sats[i - 1].up || self.isolated.contains(&i) {
            return false;
        }
        let version = self.next_version + 1;
        let s = &mut self.sats[i - 1];
        if s.sm.local_write(bucket(), key, WriteKind::Put, version.to_string()).is_none() {
            return false;
        }
        self.next_version = version;
        s.local.insert(key.clone(), version);
        s.persisted = s.sm.write_lease_state();
        self.acknowledge(key, version);
        true
    }

    /// A client of satellite `i` writes `key`.
    pub fn write_at_satellite(&mut self, i: usize, key: &ObjectKey) {
        if !self.sats[i - 1].up {
            return;
        }
        if self.sats[i - 1].sm.write_lease_busy(bucket(), key) {
            return;
        }
        // `write_under_write_lease` refuses when isolated only for writes
        // redirected from elsewhere; the holder's own clients are local.
        let version = self.next_version + 1;
        let s = &mut self.sats[i - 1];
        if s.sm.local_write(bucket(), key, WriteKind::Put, version.to_string()).is_some() {
            self.next_version = version;
            s.local.insert(key.clone(), version);
            s.persisted = s.sm.write_lease_state();
            let op = self.call_write(i, key);
            self.committed(op, version);
            self.returned(op);
            self.acknowledge(key, version);
            return;
        }
        let home = self.names[0].clone();
        let (req, events) = self.sats[i - 1].sm.forward_write(&home, bucket(), key.clone(), WriteKind::Put);
        let op = self.call_write(i, key);
        self.forward_ops.insert((i, req), op);
        self.sats[i - 1].forwards.insert(req.0, key.clone());
        self.sat_events(i, events);
    }

    /// A client of satellite `i` reads `key`.
    pub fn read_at_satellite(&mut self, i: usize, key: &ObjectKey) {
        if !self.sats[i - 1].up {
            return;
        }
        let now = self.local(i);
        let floor = self.acked[key];
        match self.sats[i - 1].sm.read(now, bucket(), key) {
            ReadPlan::Cached => {
                let v = *self.sats[i - 1].cache.get(key).expect("an entry the lease vouches for has a value");
                self.served_cached += 1;
                self.check_read(i, key, v, floor, "cache under a read lease", None);
            }
            ReadPlan::Local => {
                let v = self.holder_value(i, key);
                self.check_read(i, key, v, floor, "own write lease", None);
            }
            plan => {
                let fetch = if let ReadPlan::Fetch(f) = plan { Some(f) } else { None };
                self.next_read += 1;
                let read = self.next_read;
                let called = Some(self.stamp());
                self.sats[i - 1].reads.insert(read, PendingRead { key: key.clone(), fetch, floor, called });
                self.send(i, 0, Payload::FetchReq { read, key: key.clone() });
                // As the data layer would: a read with no lease asks for one,
                // for the whole bucket, the key's folder or the key alone.
                if fetch.is_none() && self.rng.random_bool(0.5) {
                    let scopes = ["", &key.as_str()[..2], key.as_str()];
                    let p = scopes[self.rng.random_range(0..scopes.len())].to_owned();
                    self.request_lease(i, &p);
                }
            }
        }
    }

    pub fn request_lease(&mut self, i: usize, prefix: &str) {
        if !self.sats[i - 1].up {
            return;
        }
        let now = self.local(i);
        let home = self.names[0].clone();
        let events = self.sats[i - 1].sm.request_read_lease(now, &home, LeaseScope::new(bucket(), prefix));
        self.sat_events(i, events);
    }

    pub fn acquire_write_lease(&mut self, i: usize, prefix: &str) {
        if !self.sats[i - 1].up {
            return;
        }
        let now = self.local(i);
        let home = self.names[0].clone();
        let events = self.sats[i - 1].sm.acquire_write_lease(now, &home, LeaseScope::new(bucket(), prefix));
        self.sat_events(i, events);
    }

    pub fn release_write_leases(&mut self, i: usize) {
        if !self.sats[i - 1].up {
            return;
        }
        let now = self.local(i);
        let home = self.names[0].clone();
        for w in self.sats[i - 1].sm.write_lease_state() {
            let events = self.sats[i - 1].sm.release_write_lease(now, &home, w.lease);
            self.sat_events(i, events);
        }
    }

    pub fn recall_write_leases(&mut self) {
        if !self.home_up {
            return;
        }
        let now = self.local(0);
        for r in self.home.write_leases() {
            let events = self.home.recall_write_lease(now, r.lease);
            self.home_events(events);
        }
    }

    fn sat_receive(&mut self, i: usize, from: usize, payload: Payload) {
        let now = self.local(i);
        match payload {
            Payload::Proto(m) => {
                let from_name = self.names[from].clone();
                self.trace(&format!("{} <- {from_name}: {m:?}", self.names[i]));
                let events = self.sats[i - 1].sm.on_message(now, &from_name, m);
                self.sat_events(i, events);
            }
            Payload::FetchResp { read, value, cacheable } => {
                let Some(r) = self.sats[i - 1].reads.remove(&read) else { return };
                let Some(v) = value else {
                    if let Some(f) = r.fetch {
                        self.sats[i - 1].sm.complete_fetch(now, f, false);
                    }
                    return;
                };
                if let Some(f) = r.fetch
                    && self.sats[i - 1].sm.complete_fetch(now, f, cacheable)
                {
                    self.sats[i - 1].cache.insert(r.key.clone(), v);
                }
                self.check_read(i, &r.key, v, r.floor, "fetched from home", r.called);
            }
            Payload::FetchReq { .. } => {}
        }
    }

    // --- failures ---

    pub fn crash_satellite(&mut self, i: usize) {
        let s = &mut self.sats[i - 1];
        s.up = false;
        s.cache.clear();
        s.reads.clear();
        s.forwards.clear();
        // Connections break: nothing in flight to or from it arrives.
        self.net.retain(|m| m.to != i && m.from != i);
    }

    pub fn restart_satellite(&mut self, i: usize) {
        let timing = self.timing.clone();
        let name = self.names[i].clone();
        let s = &mut self.sats[i - 1];
        s.restarts += 1;
        s.sm = SatelliteSite::start(name, timing, s.persisted.clone(), s.restarts * 1_000_000_000);
        s.up = true;
    }

    pub fn crash_home(&mut self) {
        self.home_up = false;
        self.pending_writes.clear();
        self.net.retain(|m| m.to != 0 && m.from != 0);
    }

    pub fn restart_home(&mut self) {
        self.epoch += 1;
        let now = self.local(0);
        self.home = HomeSite::start(
            self.names[0].clone(),
            self.timing.clone(),
            self.epoch,
            self.home_persisted.clone(),
            now,
            false,
        );
        self.home_up = true;
    }

    pub fn isolate(&mut self, i: usize) {
        self.isolated.insert(i);
    }

    pub fn heal(&mut self, i: usize) {
        self.isolated.remove(&i);
    }

    // --- time and the network ---

    /// Real time moves on by `ms`; every site's timers fire.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        if self.home_up {
            let now = self.local(0);
            let events = self.home.tick(now);
            self.home_events(events);
        }
        for i in 1..=self.sats.len() {
            if self.sats[i - 1].up {
                let now = self.local(i);
                let events = self.sats[i - 1].sm.tick(now);
                self.sat_events(i, events);
            }
        }
    }

    /// Delivers the messages that are due, in random order, dropping and
    /// duplicating some; messages across a partition are lost.
    pub fn deliver(&mut self) {
        let (mut due, rest): (Vec<InFlight>, Vec<InFlight>) = self.net.drain(..).partition(|m| m.at <= self.now_ms);
        self.net = rest;
        while !due.is_empty() {
            let m = due.swap_remove(self.rng.random_range(0..due.len()));
            let cut = self.isolated.contains(&m.from) || self.isolated.contains(&m.to);
            if cut || !self.up(m.to) || self.rng.random_bool(self.faults.drop) {
                continue;
            }
            if self.rng.random_bool(self.faults.duplicate) {
                let delay = self.rng.random_range(0..=self.faults.max_delay_ms);
                self.net.push(InFlight { at: self.now_ms + delay, ..m.clone() });
            }
            if m.to == 0 {
                self.home_receive(m.from, m.payload);
            } else {
                self.sat_receive(m.to, m.from, m.payload);
            }
        }
    }

    /// Delivers everything until the network is empty, with no faults.
    pub fn settle(&mut self) {
        let saved = self.faults.clone();
        self.faults.drop = 0.0;
        self.faults.duplicate = 0.0;
        for _ in 0..100 {
            self.now_ms = self.net.iter().map(|m| m.at).max().unwrap_or(self.now_ms).max(self.now_ms);
            self.deliver();
            if self.net.is_empty() {
                break;
            }
        }
        self.faults = saved;
    }

    /// One random step of a schedule.
    pub fn step(&mut self) {
        let n = self.sats.len();
        let k = key(KEYS[self.rng.random_range(0..KEYS.len())]);
        let sat = self.rng.random_range(1..=n);
        match self.rng.random_range(0..100) {
            0..=44 => self.read_at_satellite(sat, &k),
            45..=51 => self.read_at_home(&k),
            52..=55 => self.write_at_home(&k),
            56..=58 => self.write_at_satellite(sat, &k),
            59..=61 => {
                let p = SCOPES[self.rng.random_range(0..SCOPES.len())];
                self.request_lease(sat, p);
            }
            62 if self.faults.write_leases => self.acquire_write_lease(sat, "b/"),
            63 if self.faults.write_leases => self.release_write_leases(sat),
            64 if self.faults.write_leases => self.recall_write_leases(),
            65..=66 if self.faults.partitions => {
                if self.isolated.contains(&sat) {
                    self.heal(sat)
                } else {
                    self.isolate(sat)
                }
            }
            67 if self.faults.crash_satellites => {
                if self.sats[sat - 1].up {
                    self.crash_satellite(sat)
                } else {
                    self.restart_satellite(sat)
                }
            }
            68 if self.faults.crash_home && self.rng.random_bool(0.3) => {
                if self.home_up {
                    self.crash_home()
                } else {
                    self.restart_home()
                }
            }
            _ => {}
        }
        let ms =
            if self.rng.random_bool(0.05) { self.rng.random_range(200..1500) } else { self.rng.random_range(0..40) };
        self.advance(ms);
        self.deliver();
    }

    /// Brings every site back and heals every partition.
    pub fn recover_all(&mut self) {
        self.isolated.clear();
        if !self.home_up {
            self.restart_home();
        }
        for i in 1..=self.sats.len() {
            if !self.sats[i - 1].up {
                self.restart_satellite(i);
            }
        }
    }
}

pub fn timing() -> LeaseTiming {
    LeaseTiming {
        read_lease: Duration::from_millis(1000),
        drift: 0.05,
        margin: Duration::from_millis(20),
        renew_before: Duration::from_millis(400),
        retry_every: Duration::from_millis(100),
    }
}
