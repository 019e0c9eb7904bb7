//! The holder side of write leases. A write at this site of a key under a
//! write lease it holds is staged on this site's own disk (a blob of the
//! `_held` backend and a row of the HeldWrites table, committed together
//! with the lease's sequence counter) and acknowledged once durable; reads of
//! the leased prefix here, and those other sites redirect here, are served
//! from the latest staged write of each key, or from home for keys not
//! written under the lease. A flusher applies the staged writes at home in
//! order (one data request per write, with its bytes); home's answer says up
//! to where it applied, and those rows are dropped.
//!
//! Multipart uploads and copies into a leased prefix are written through to
//! home instead (after everything staged for the key is flushed): they are
//! large and rare next to the puts of a checkpoint.

use super::Sites;
use super::wire::*;
use futures::StreamExt;
use orbit_core::{BucketRecord, ListPage, ListQuery, Namespace, ObjectRecord, PutObject, WriteConditions};
use orbit_meta::{Table, Txn, prefix_end};
use orbit_site::{LeaseId, LeaseScope, Message, RequestId, SatelliteEvent, SiteId, WriteKind, WriteLeaseState};
use orbit_types::{BucketId, Error, ObjectKey, Resource, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::ops::Bound;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The backend the holder stages its writes in: a directory on this site's
/// own disk (see `orbit serve`).
pub const HELD_BACKEND: &str = "_held";
/// Settings key prefix of the write leases this site holds.
const HELD_LEASE_PREFIX: &str = "leases/held/";
/// Staged writes a holder has on their way home at once.
const FLUSH_PIPELINE: usize = 8;
/// Versions of staged writes start with this, then the holder's name.
const HELD_VERSION: &str = "held:";

/// A write lease this site holds, as persisted.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HeldLeaseRow {
    home: SiteId,
    lease: LeaseId,
    scope: LeaseScope,
    bucket: BucketRef,
    next_seq: u64,
}

/// One staged write, as persisted: the record of a put, none for a delete.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct HeldWriteRow {
    key: String,
    record: Option<ObjectRecord>,
}

fn lease_tag(home: &SiteId, lease: LeaseId) -> String {
    format!("{home}/{lease}/")
}

fn row_key(home: &SiteId, lease: LeaseId, seq: u64) -> Vec<u8> {
    let mut k = lease_tag(home, lease).into_bytes();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn lease_setting(home: &SiteId, lease: LeaseId) -> Vec<u8> {
    format!("{HELD_LEASE_PREFIX}{home}/{lease}").into_bytes()
}

/// The site that staged `version`, if it is a staged write's version.
pub(crate) fn staged_by(version: &str) -> Option<&str> {
    version.strip_prefix(HELD_VERSION)?.split(':').next()
}

/// The latest staged write of one key.
#[derive(Clone, Debug)]
struct Latest {
    home: SiteId,
    lease: LeaseId,
    seq: u64,
    record: Option<ObjectRecord>,
}

/// One write lease as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WriteLeaseView {
    pub lease: String,
    /// The holder (in the home table) or the home site (held here).
    pub site: String,
    pub tenant: String,
    pub bucket: String,
    pub prefix: String,
    /// At the holder: writes acknowledged here and not yet applied at home.
    /// At home: the holder's writes applied here so far (their sequence).
    pub unflushed: u64,
    pub flushed_upto: u64,
    /// held, releasing, unconfirmed (restored after a restart, home not asked yet), or granted.
    pub state: String,
}

/// What an operator's revocation declared lost, as the holder learned it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LostWrites {
    pub lease: String,
    pub home: String,
    pub keys: Vec<String>,
}

type AcquireReply = oneshot::Sender<std::result::Result<(SiteId, LeaseId), Error>>;

/// The holder's bookkeeping next to the state machine.
#[derive(Default)]
pub(crate) struct HeldState {
    latest: HashMap<(BucketId, String), Latest>,
    leases: HashMap<(SiteId, LeaseId), BucketRef>,
    flushing: HashSet<(SiteId, LeaseId)>,
    acquiring: Vec<(RequestId, SiteId, LeaseScope, BucketRef, Instant, AcquireReply)>,
    releasing: Vec<((SiteId, LeaseId), oneshot::Sender<()>)>,
    lost: Vec<LostWrites>,
}

fn poisoned() -> Error {
    Error::Internal("write lease state poisoned".into())
}

fn busy(what: &str) -> Error {
    Error::Unavailable(format!("the write lease over this key is {what}; retry shortly"))
}

fn check_conditions(current: Option<&ObjectRecord>, c: &WriteConditions) -> Result<()> {
    if let Some(m) = &c.if_none_match
        && (m.trim() == "*" && current.is_some() || current.is_some_and(|r| m.trim().trim_matches('"') == r.etag))
    {
        return Err(Error::PreconditionFailed);
    }
    if let Some(m) = &c.if_match {
        let wanted = m.trim().trim_matches('"');
        match current {
            Some(r) if wanted == "*" || wanted == r.etag => {}
            Some(_) => return Err(Error::PreconditionFailed),
            None => return Err(Error::NotFound(Resource::Object)),
        }
    }
    Ok(())
}

impl Sites {
    /// Restores the write leases this site holds, with their staged writes
    /// (for `SatelliteSite::start`).
    pub(crate) async fn restore_held(
        meta: &dyn orbit_meta::MetaStore,
    ) -> std::result::Result<(Vec<WriteLeaseState>, HeldState), orbit_meta::MetaError> {
        let mut states = Vec::new();
        let mut held = HeldState::default();
        let prefix = HELD_LEASE_PREFIX.as_bytes().to_vec();
        let end = prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        for (_, raw) in meta.scan(Table::Settings, Bound::Included(prefix), end, usize::MAX).await? {
            let Ok(row) = serde_json::from_slice::<HeldLeaseRow>(&raw) else { continue };
            let tag = lease_tag(&row.home, row.lease).into_bytes();
            let end = prefix_end(&tag).map_or(Bound::Unbounded, Bound::Excluded);
            let mut unflushed = Vec::new();
            let mut next_seq = row.next_seq;
            for (k, v) in meta.scan(Table::HeldWrites, Bound::Included(tag.clone()), end, usize::MAX).await? {
                let Some(seq) = k.get(tag.len()..).and_then(|s| s.try_into().ok()).map(u64::from_be_bytes) else {
                    continue;
                };
                let Ok(w) = serde_json::from_slice::<HeldWriteRow>(&v) else { continue };
                let Ok(key) = ObjectKey::new(&w.key) else { continue };
                next_seq = next_seq.max(seq);
                let (kind, version) = match &w.record {
                    Some(r) => (WriteKind::Put, r.version.clone()),
                    None => (WriteKind::Delete, String::new()),
                };
                unflushed.push(orbit_site::FlushedWrite { seq, key, kind, version });
                held.latest.insert(
                    (row.scope.bucket, w.key),
                    Latest { home: row.home.clone(), lease: row.lease, seq, record: w.record },
                );
            }
            held.leases.insert((row.home.clone(), row.lease), row.bucket.clone());
            states.push(WriteLeaseState { home: row.home, lease: row.lease, scope: row.scope, unflushed, next_seq });
        }
        Ok((states, held))
    }

    fn held(&self) -> Result<std::sync::MutexGuard<'_, HeldState>> {
        self.inner.held.lock().map_err(|_| poisoned())
    }

    /// The write lease this site holds over `key`, if any.
    pub(crate) fn holds(&self, bucket: BucketId, key: &str) -> Option<(SiteId, LeaseId, LeaseScope)> {
        let key = ObjectKey::new(key).ok()?;
        self.inner.sat.lock().ok()?.site.write_lease_for(bucket, &key)
    }

    /// Whether this site holds a write lease overlapping a listing of `prefix`.
    pub(crate) fn holds_listing(&self, bucket: BucketId, prefix: &str) -> bool {
        let scope = LeaseScope::new(bucket, prefix);
        self.inner.sat.lock().is_ok_and(|s| !s.site.write_leases_overlapping(&scope).is_empty())
    }

    /// A put under a write lease this site holds: staged and acknowledged here.
    pub(crate) async fn held_put(&self, bucket: &BucketRecord, key: &str, put: PutObject) -> Result<ObjectRecord> {
        let okey = ObjectKey::new(key)?;
        if self.inner.sat.lock().map_err(|_| poisoned())?.site.write_lease_busy(bucket.id, &okey) {
            return Err(busy("being given back or not yet confirmed by home"));
        }
        if put.conditions.if_match.is_some() || put.conditions.if_none_match.is_some() {
            let current = self.held_record(bucket, key).await?;
            check_conditions(current.as_ref(), &put.conditions)?;
        }
        let conditions = put.conditions.clone();
        let ns = self.ns()?;
        let mut rec = ns.stage_object(bucket, HELD_BACKEND, put).await?;
        rec.version = format!("{HELD_VERSION}{}:{}", self.inner.me, rec.version);
        match self.commit_held(bucket, &okey, Some(rec.clone()), &conditions).await {
            Ok(()) => Ok(rec),
            Err(e) => {
                ns.discard_blobs(&rec).await;
                Err(e)
            }
        }
    }

    /// A delete under a write lease this site holds.
    pub(crate) async fn held_delete(&self, bucket: &BucketRecord, key: &str) -> Result<()> {
        let okey = ObjectKey::new(key)?;
        if self.inner.sat.lock().map_err(|_| poisoned())?.site.write_lease_busy(bucket.id, &okey) {
            return Err(busy("being given back or not yet confirmed by home"));
        }
        self.commit_held(bucket, &okey, None, &WriteConditions::default()).await
    }

    /// Takes the write's sequence number and commits its row, the lease's
    /// counter and the claim on its blob in one transaction: the write is
    /// acknowledged only once all of it is durable.
    async fn commit_held(
        &self,
        bucket: &BucketRecord,
        key: &ObjectKey,
        record: Option<ObjectRecord>,
        conditions: &WriteConditions,
    ) -> Result<()> {
        // One staged commit at a time: sequence numbers reach the disk in order,
        // and the flusher never sees a number whose row is not committed.
        let _order = self.inner.held_write.lock().await;
        if conditions.if_match.is_some() || conditions.if_none_match.is_some() {
            let current = self.held_record(bucket, key.as_str()).await?;
            check_conditions(current.as_ref(), conditions)?;
        }
        let (kind, version) = match &record {
            Some(r) => (WriteKind::Put, r.version.clone()),
            None => (WriteKind::Delete, String::new()),
        };
        let (seq, home, lease, scope) = {
            let mut s = self.inner.sat.lock().map_err(|_| poisoned())?;
            let (home, lease, scope) = s.site.write_lease_for(bucket.id, key).ok_or_else(|| busy("gone"))?;
            let seq = s.site.local_write(bucket.id, key, kind, version).ok_or_else(|| busy("being given back"))?;
            (seq, home, lease, scope)
        };
        let row = HeldWriteRow { key: key.as_str().to_owned(), record: record.clone() };
        let lease_row = HeldLeaseRow {
            home: home.clone(),
            lease,
            scope,
            bucket: BucketRef { tenant: bucket.tenant_id, name: bucket.name.as_str().to_owned(), id: bucket.id },
            next_seq: seq,
        };
        let encode = |v: &dyn ErasedJson| v.json();
        let mut txn = Txn::new().put(Table::HeldWrites, row_key(&home, lease, seq), encode(&row)).put(
            Table::Settings,
            lease_setting(&home, lease),
            encode(&lease_row),
        );
        if let Some(r) = &record {
            Namespace::claim_blobs(&mut txn, r);
        }
        if let Err(e) = self.inner.meta.commit(txn).await {
            if let Ok(mut s) = self.inner.sat.lock() {
                s.site.undo_local_write(bucket.id, key, seq);
            }
            return Err(Error::Unavailable(format!("cannot persist the write: {e}")));
        }
        {
            let mut h = self.held()?;
            h.leases.insert((home.clone(), lease), lease_row.bucket.clone());
            h.latest.insert((bucket.id, key.as_str().to_owned()), Latest { home, lease, seq, record });
        }
        metrics::counter!("orbit_lease_held_writes_total").increment(1);
        // Flush soon rather than at the next tick.
        self.tick();
        Ok(())
    }

    /// The record of `key` as this holder sees it: its latest staged write,
    /// or home's record for a key it has not written (home serves the holder
    /// even though the key is leased).
    pub(crate) async fn held_record(&self, bucket: &BucketRecord, key: &str) -> Result<Option<ObjectRecord>> {
        if let Some(l) = self.held()?.latest.get(&(bucket.id, key.to_owned())) {
            return Ok(l.record.clone());
        }
        let req = RecordRequest { bucket: super::satellite::bucket_ref(bucket), key: key.to_owned() };
        let home = SiteId::new(bucket.home_site.clone());
        Ok(self.call_expecting::<RecordAnswer>(&home, OP_RECORD, &req, None, None).await?.0.record)
    }

    /// Bytes of a staged record of this site.
    pub(crate) async fn held_bytes(
        &self,
        bucket: &BucketRecord,
        key: &str,
        version: &str,
        span: std::ops::Range<u64>,
    ) -> Result<orbit_backend::ByteStream> {
        let rec = self
            .held()?
            .latest
            .get(&(bucket.id, key.to_owned()))
            .and_then(|l| l.record.clone())
            .filter(|r| r.version == version)
            .ok_or(Error::PreconditionFailed)?;
        self.ns()?.record_bytes(&rec, span, bucket, key).await
    }

    /// A listing of a prefix this site holds a write lease over: everything
    /// staged under the prefix is flushed first, then home lists it.
    pub(crate) async fn held_list(&self, bucket: &BucketRecord, q: &ListQuery) -> Result<ListPage> {
        self.flush_barrier(bucket.id, &LeaseScope::new(bucket.id, q.prefix.clone())).await?;
        let req = ListRequest::new(super::satellite::bucket_ref(bucket), q);
        let home = SiteId::new(bucket.home_site.clone());
        Ok(self.call_expecting::<ListAnswer>(&home, OP_LIST, &req, None, None).await?.0.page.into())
    }

    /// Before a write this holder makes straight at home (a multipart
    /// completion, a copy) of a key it holds a write lease over: what it
    /// staged under the lease is flushed first, so the staged writes never
    /// land over the newer one.
    pub(crate) async fn write_through_barrier(&self, bucket: &BucketRecord, key: &str) -> Result<()> {
        if self.holds(bucket.id, key).is_none() {
            return Ok(());
        }
        self.flush_barrier(bucket.id, &LeaseScope::new(bucket.id, key)).await?;
        // The key's staged entry is gone from the index once flushed; reads
        // here then go to home, where the new write lands.
        Ok(())
    }

    /// Returns once every write staged before the call under leases
    /// overlapping `scope` is applied at home.
    pub(crate) async fn flush_barrier(&self, bucket: BucketId, scope: &LeaseScope) -> Result<()> {
        let targets: Vec<((SiteId, LeaseId), u64)> = {
            let s = self.inner.sat.lock().map_err(|_| poisoned())?;
            let leases = s.site.write_leases_overlapping(scope);
            s.site
                .write_lease_state()
                .into_iter()
                .filter(|w| leases.contains(&(w.home.clone(), w.lease)) && w.scope.bucket == bucket)
                .filter_map(|w| w.unflushed.last().map(|x| ((w.home, w.lease), x.seq)))
                .collect()
        };
        let deadline = Instant::now() + self.inner.message_timeout * 8;
        for ((home, lease), upto) in targets {
            loop {
                let done = {
                    let s = self.inner.sat.lock().map_err(|_| poisoned())?;
                    s.site
                        .write_lease_state()
                        .into_iter()
                        .find(|w| w.home == home && w.lease == lease)
                        .is_none_or(|w| w.unflushed.first().is_none_or(|x| x.seq > upto))
                };
                if done {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::Unavailable(format!(
                        "writes under the write lease cannot reach home site `{home}` now; retry"
                    )));
                }
                self.tick();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(())
    }

    /// Sends the staged writes of `lease` home in order, up to
    /// `FLUSH_PIPELINE` at once, one flusher per lease; the state machine's
    /// `FlushWrites` (which names them) starts it.
    pub(crate) fn start_flush(
        &self,
        home: SiteId,
        req: RequestId,
        lease: LeaseId,
        writes: Vec<orbit_site::FlushedWrite>,
    ) {
        let key = (home.clone(), lease);
        let bucket = match self.inner.held.lock() {
            Ok(mut h) => {
                if !h.flushing.insert(key.clone()) {
                    return;
                }
                h.leases.get(&key).cloned()
            }
            Err(_) => return,
        };
        let sites = self.clone();
        tokio::spawn(async move {
            let outcome = sites.flush(&home, req, lease, bucket, writes).await;
            if let Ok(mut h) = sites.inner.held.lock() {
                h.flushing.remove(&key);
            }
            match outcome {
                Ok(Some(answer)) => sites.receive_answer(&home, answer),
                Ok(None) => {}
                Err(e) => tracing::debug!(home = %home, lease = %lease, error = %e, "flush interrupted; retried"),
            }
        });
    }

    async fn flush(
        &self,
        home: &SiteId,
        req: RequestId,
        lease: LeaseId,
        bucket: Option<BucketRef>,
        writes: Vec<orbit_site::FlushedWrite>,
    ) -> Result<Option<Message>> {
        // Nothing staged (a lease restored after a restart, say): ask home
        // whether it still knows the lease; its answer settles it.
        let (Some(bucket), false) = (bucket, writes.is_empty()) else {
            let probe = FlushRequest { lease, req, bucket: None, write: None };
            return Ok(Some(self.call_expecting::<Message>(home, OP_FLUSH, &probe, None, None).await?.0));
        };
        let ns = self.ns()?;
        let record = ns.bucket_record(bucket.tenant, &bucket.name, Some(bucket.id)).await?;
        // Several writes in flight (home applies each in its turn), their
        // answers taken in order.
        let sends = futures::stream::iter(writes)
            .map(|w| self.flush_one(home, req, lease, &bucket, &record, w.seq))
            .buffered(FLUSH_PIPELINE);
        futures::pin_mut!(sends);
        while let Some(answer) = sends.next().await {
            match answer? {
                // Flushed and dropped by an earlier round: home has it.
                None => continue,
                Some((seq, answer @ Message::FlushAck { upto, .. })) if upto >= seq => {
                    metrics::counter!("orbit_lease_flushed_writes_total").increment(1);
                    self.receive_answer(home, answer);
                }
                // Home stands elsewhere (a gap, a revocation, an unknown
                // lease): the state machine takes it from there.
                Some((_, other)) => return Ok(Some(other)),
            }
        }
        Ok(None)
    }

    /// Sends staged write `seq` home with its bytes; home's answer, or none
    /// when its row is gone (flushed already).
    async fn flush_one(
        &self,
        home: &SiteId,
        req: RequestId,
        lease: LeaseId,
        bucket: &BucketRef,
        record: &BucketRecord,
        seq: u64,
    ) -> Result<Option<(u64, Message)>> {
        let raw = self.inner.meta.get(Table::HeldWrites, &row_key(home, lease, seq)).await;
        let Some(raw) = raw.map_err(|e| Error::Unavailable(e.to_string()))? else { return Ok(None) };
        let row = serde_json::from_slice::<HeldWriteRow>(&raw).map_err(|e| Error::Internal(e.to_string()))?;
        let body = match &row.record {
            Some(r) if r.size > 0 => Some(self.ns()?.record_bytes(r, 0..r.size, record, &row.key).await?),
            _ => None,
        };
        let size = row.record.as_ref().map(|r| r.size);
        let request = FlushRequest {
            lease,
            req,
            bucket: Some(bucket.clone()),
            write: Some(HeldWriteWire { seq, key: row.key, record: row.record }),
        };
        let (answer, _) = self.call_expecting::<Message>(home, OP_FLUSH, &request, body, size).await?;
        Ok(Some((seq, answer)))
    }

    /// Acts on the write-lease events of the satellite state machine.
    pub(crate) fn held_event(&self, e: SatelliteEvent) {
        match e {
            SatelliteEvent::WriteLeaseGranted { home, lease, scope } => {
                // The waiter stays listed after its caller gave up, so a late
                // grant is still persisted with its bucket.
                let waiter = self.inner.held.lock().ok().and_then(|mut h| {
                    let i = h.acquiring.iter().position(|a| a.1 == home && a.2 == scope)?;
                    Some(h.acquiring.remove(i))
                });
                let Some((_, _, _, bucket, started, reply)) = waiter else { return };
                metrics::histogram!("orbit_lease_write_acquire_seconds").record(started.elapsed().as_secs_f64());
                let sites = self.clone();
                tokio::spawn(async move {
                    let persisted = sites.persist_grant(home.clone(), lease, scope, bucket).await;
                    if let Err(e) = &persisted {
                        tracing::warn!(error = %e, "a granted write lease could not be persisted; writes will persist it");
                    }
                    let _ = reply.send(persisted.map(|()| (home, lease)));
                });
            }
            SatelliteEvent::Redirected { req, holder, .. } => self.answer_acquire(
                req,
                Err(Error::Conflict(format!("site `{holder}` holds a write lease overlapping this prefix"))),
            ),
            SatelliteEvent::Refused { req, reason } => {
                self.answer_acquire(req, Err(Error::Unavailable(format!("home refused the write lease: {reason:?}"))))
            }
            SatelliteEvent::Flushed { home, lease, upto } => {
                let sites = self.clone();
                tokio::spawn(async move { sites.drop_flushed(&home, lease, upto, false).await });
            }
            SatelliteEvent::WriteLeaseReleased { home, lease } => {
                let sites = self.clone();
                tokio::spawn(async move {
                    sites.drop_flushed(&home, lease, u64::MAX, true).await;
                    if let Ok(mut h) = sites.inner.held.lock() {
                        h.leases.remove(&(home.clone(), lease));
                        let key = (home, lease);
                        let (done, rest): (Vec<_>, Vec<_>) = h.releasing.drain(..).partition(|(k, _)| *k == key);
                        h.releasing = rest;
                        for (_, tx) in done {
                            let _ = tx.send(());
                        }
                    }
                });
            }
            SatelliteEvent::WritesLost { home, lease, writes } => {
                tracing::error!(
                    home = %home, lease = %lease, writes = writes.len(),
                    "a write lease was revoked: writes acknowledged here and never applied at home are discarded"
                );
                if let Ok(mut h) = self.inner.held.lock() {
                    h.lost.push(LostWrites {
                        lease: lease.to_string(),
                        home: home.0.clone(),
                        keys: writes.iter().map(|w| w.key.as_str().to_owned()).collect(),
                    });
                }
                let sites = self.clone();
                tokio::spawn(async move {
                    sites.drop_flushed(&home, lease, u64::MAX, true).await;
                    if let Ok(mut h) = sites.inner.held.lock() {
                        h.leases.remove(&(home, lease));
                    }
                });
            }
            _ => {}
        }
    }

    fn answer_acquire(&self, req: RequestId, answer: std::result::Result<(SiteId, LeaseId), Error>) {
        let waiter = self.inner.held.lock().ok().and_then(|mut h| {
            let i = h.acquiring.iter().position(|a| a.0 == req)?;
            Some(h.acquiring.remove(i))
        });
        if let Some((.., reply)) = waiter {
            let _ = reply.send(answer);
        }
    }

    async fn persist_grant(&self, home: SiteId, lease: LeaseId, scope: LeaseScope, bucket: BucketRef) -> Result<()> {
        let row = HeldLeaseRow { home: home.clone(), lease, scope, bucket: bucket.clone(), next_seq: 0 };
        // A write may have come first and persisted the row with its
        // sequence counter: never put the counter back.
        let key = lease_setting(&home, lease);
        let txn = Txn::new().require_absent(Table::Settings, key.clone()).put(Table::Settings, key, row.json());
        match self.inner.meta.commit(txn).await {
            Ok(()) | Err(orbit_meta::MetaError::Conflict) => {}
            Err(e) => return Err(Error::Unavailable(format!("cannot persist the write lease: {e}"))),
        }
        self.held()?.leases.insert((home, lease), bucket);
        Ok(())
    }

    /// Drops the rows of writes up to `upto` (applied at home, or declared
    /// lost), their blobs after a grace, and, with `all`, the lease itself.
    async fn drop_flushed(&self, home: &SiteId, lease: LeaseId, upto: u64, all: bool) {
        let tag = lease_tag(home, lease).into_bytes();
        let mut end_key = tag.clone();
        end_key.extend_from_slice(&upto.saturating_add(1).to_be_bytes());
        let end = if upto == u64::MAX {
            prefix_end(&tag).map_or(Bound::Unbounded, Bound::Excluded)
        } else {
            Bound::Excluded(end_key)
        };
        let rows = match self.inner.meta.scan(Table::HeldWrites, Bound::Included(tag.clone()), end, usize::MAX).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read flushed writes to drop them; retried at the next flush");
                return;
            }
        };
        let mut txn = Txn::new();
        let mut dropped = Vec::new();
        for (k, v) in rows {
            let seq = k.get(tag.len()..).and_then(|s| s.try_into().ok()).map_or(0, u64::from_be_bytes);
            if let Ok(row) = serde_json::from_slice::<HeldWriteRow>(&v) {
                if let Some(r) = &row.record {
                    Namespace::retire_blobs(&mut txn, r);
                }
                dropped.push((row.key, seq));
            }
            txn.push_delete(Table::HeldWrites, k);
        }
        if all {
            txn.push_delete(Table::Settings, lease_setting(home, lease));
        }
        if let Err(e) = self.inner.meta.commit(txn).await {
            tracing::warn!(error = %e, "cannot drop flushed writes; retried at the next flush");
            return;
        }
        if let Ok(mut h) = self.inner.held.lock() {
            h.latest.retain(|_, l| !(l.home == *home && l.lease == lease && (all || l.seq <= upto)));
        }
        let _ = dropped;
    }

    /// Asks home for a write lease on `prefix` of `bucket` and waits for it.
    pub async fn acquire_write_lease(
        &self,
        bucket: &BucketRecord,
        prefix: &str,
        wait: Duration,
    ) -> Result<WriteLeaseView> {
        if bucket.home_site == self.inner.me.0 {
            return Err(Error::InvalidArgument(format!(
                "bucket `{}` is homed at this site, which needs no write lease to write it",
                bucket.name.as_str()
            )));
        }
        if bucket.mapped.is_some() {
            return Err(Error::InvalidArgument("mapped buckets take no write leases".into()));
        }
        let home = SiteId::new(bucket.home_site.clone());
        let scope = LeaseScope::new(bucket.id, prefix);
        let (tx, rx) = oneshot::channel();
        {
            let now = self.inner.clock.now();
            let mut s = self.inner.sat.lock().map_err(|_| poisoned())?;
            if !s.site.write_leases_overlapping(&scope).is_empty() {
                return Err(Error::Conflict("this site already holds a write lease overlapping that prefix".into()));
            }
            let events = s.site.acquire_write_lease(now, &home, scope.clone());
            let req = events.iter().find_map(|e| match e {
                SatelliteEvent::Send(o) => match &o.message {
                    Message::AcquireWriteLease { req, .. } => Some(*req),
                    _ => None,
                },
                _ => None,
            });
            let Some(req) = req else {
                return Err(Error::Conflict("a write lease on that prefix is being acquired already".into()));
            };
            let bref = super::satellite::bucket_ref(bucket);
            self.held()?.acquiring.push((req, home.clone(), scope.clone(), bref, Instant::now(), tx));
            drop(s);
            self.sat_events(events);
        }
        let (home, lease) = match tokio::time::timeout(wait, rx).await {
            Ok(Ok(answer)) => answer?,
            Ok(Err(_)) => return Err(Error::Unavailable("the site is shutting down".into())),
            Err(_) => {
                return Err(Error::Unavailable(format!(
                    "home site `{home}` has not granted the write lease yet (it recalls read leases first, or \
                     cannot be reached); the request stays pending and shows in the lease list once granted"
                )));
            }
        };
        self.write_leases()
            .held
            .into_iter()
            .find(|v| v.lease == lease.to_string() && v.site == home.0)
            .ok_or_else(|| Error::Internal("the granted write lease is not in the table".into()))
    }

    /// Gives a write lease back: everything staged is flushed, then home
    /// takes the prefix back. Waits up to `wait`; true once released.
    pub async fn release_write_lease(&self, lease: &str, wait: Duration) -> Result<bool> {
        let (home, id) = self.find_held(lease)?;
        let (tx, rx) = oneshot::channel();
        self.held()?.releasing.push(((home.clone(), id), tx));
        let events = {
            let now = self.inner.clock.now();
            self.inner.sat.lock().map_err(|_| poisoned())?.site.release_write_lease(now, &home, id)
        };
        self.sat_events(events);
        Ok(tokio::time::timeout(wait, rx).await.is_ok())
    }

    fn find_held(&self, lease: &str) -> Result<(SiteId, LeaseId)> {
        let s = self.inner.sat.lock().map_err(|_| poisoned())?;
        s.site
            .write_lease_state()
            .into_iter()
            .find(|w| w.lease.to_string() == lease)
            .map(|w| (w.home, w.lease))
            .ok_or_else(|| Error::InvalidArgument(format!("this site holds no write lease `{lease}`")))
    }

    fn granted_lease(&self, lease: &str) -> Result<LeaseId> {
        let h = self.inner.home.lock().map_err(|_| poisoned())?;
        h.site
            .write_leases()
            .into_iter()
            .find(|r| r.lease.to_string() == lease)
            .map(|r| r.lease)
            .ok_or_else(|| Error::InvalidArgument(format!("this site granted no write lease `{lease}`")))
    }

    /// At the home site: takes a write lease from a holder that does not
    /// come back. Writes the holder acknowledged and never flushed are lost;
    /// the statement says from which sequence number on.
    pub async fn revoke_write_lease(&self, lease: &str) -> Result<orbit_site::RevokeStatement> {
        let id = self.granted_lease(lease)?;
        let (statement, events) = {
            let now = self.inner.clock.now();
            let mut h = self.inner.home.lock().map_err(|_| poisoned())?;
            h.site
                .revoke_write_lease(now, id)
                .ok_or_else(|| Error::InvalidArgument(format!("no write lease `{lease}`")))?
        };
        self.persist_write_leases().await?;
        tracing::warn!(
            lease = %statement.lease, holder = %statement.holder, prefix = %statement.scope.prefix,
            lost_after = statement.lost_after,
            "write lease revoked by an operator: the holder's writes after this sequence number are lost"
        );
        self.home_events(
            events.into_iter().filter(|e| !matches!(e, orbit_site::HomeEvent::WriteLeasesChanged)).collect(),
        );
        Ok(statement)
    }

    /// At the home site: asks the holder to flush and give the lease back.
    pub fn recall_write_lease(&self, lease: &str) -> Result<()> {
        let id = self.granted_lease(lease)?;
        let events = {
            let now = self.inner.clock.now();
            self.inner.home.lock().map_err(|_| poisoned())?.recall_write_lease(now, id)
        };
        self.home_events(events);
        Ok(())
    }

    /// The write leases this site holds and, as a home site, has granted.
    pub fn write_leases(&self) -> WriteLeaseTable {
        let names = self.inner.held.lock().map(|h| h.leases.clone()).unwrap_or_default();
        let name_of = |home: &SiteId, lease: LeaseId| {
            names.get(&(home.clone(), lease)).map(|b| (b.tenant.to_string(), b.name.clone())).unwrap_or_default()
        };
        let held = self
            .inner
            .sat
            .lock()
            .map(|s| {
                s.site
                    .write_lease_state()
                    .into_iter()
                    .map(|w| {
                        let (tenant, bucket) = name_of(&w.home, w.lease);
                        // Any key of the scope tells whether new writes are taken.
                        let probe = ObjectKey::new(&format!("{}x", w.scope.prefix)).ok();
                        let taking = !probe.is_some_and(|k| s.site.write_lease_busy(w.scope.bucket, &k));
                        WriteLeaseView {
                            lease: w.lease.to_string(),
                            site: w.home.0.clone(),
                            tenant,
                            bucket,
                            prefix: w.scope.prefix.clone(),
                            unflushed: w.unflushed.len() as u64,
                            flushed_upto: w.next_seq - w.unflushed.len() as u64,
                            state: if taking { "held" } else { "releasing or unconfirmed" }.into(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let granted = self
            .inner
            .home
            .lock()
            .map(|h| {
                h.site
                    .write_leases()
                    .into_iter()
                    .map(|r| WriteLeaseView {
                        lease: r.lease.to_string(),
                        site: r.holder.0.clone(),
                        tenant: String::new(),
                        bucket: r.scope.bucket.to_string(),
                        prefix: r.scope.prefix.clone(),
                        unflushed: 0,
                        flushed_upto: r.flushed_upto,
                        state: "granted".into(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let lost = self.inner.held.lock().map(|h| h.lost.clone()).unwrap_or_default();
        WriteLeaseTable { site: self.inner.me.0.clone(), held, granted, lost }
    }
}

/// This site's write leases, for the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WriteLeaseTable {
    pub site: String,
    pub held: Vec<WriteLeaseView>,
    pub granted: Vec<WriteLeaseView>,
    pub lost: Vec<LostWrites>,
}

/// Rows as stored: JSON (a row of ours always serialises).
trait ErasedJson {
    fn json(&self) -> Vec<u8>;
}

impl<T: Serialize> ErasedJson for T {
    fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(etag: &str) -> ObjectRecord {
        ObjectRecord {
            version: "held:us:1".into(),
            size: 1,
            etag: etag.into(),
            last_modified_ms: 0,
            headers: Default::default(),
            user_metadata: Default::default(),
            checksum: None,
            segments: Vec::new(),
            parts_count: None,
        }
    }

    #[test]
    fn staged_versions_name_the_site_that_staged_them() {
        assert_eq!(staged_by("held:us:01abc"), Some("us"));
        assert_eq!(staged_by("01abc"), None);
        assert_eq!(staged_by("hold:us:1"), None);
    }

    #[test]
    fn conditions_of_a_staged_write_hold_against_the_holders_view() {
        let none = WriteConditions::default();
        let absent = WriteConditions { if_none_match: Some("*".into()), ..Default::default() };
        let matching = WriteConditions { if_match: Some("\"abc\"".into()), ..Default::default() };
        assert!(check_conditions(None, &none).is_ok());
        assert!(check_conditions(None, &absent).is_ok());
        assert!(matches!(check_conditions(Some(&rec("abc")), &absent), Err(Error::PreconditionFailed)));
        assert!(check_conditions(Some(&rec("abc")), &matching).is_ok());
        assert!(matches!(check_conditions(Some(&rec("def")), &matching), Err(Error::PreconditionFailed)));
        assert!(matches!(check_conditions(None, &matching), Err(Error::NotFound(Resource::Object))));
    }

    #[test]
    fn write_rows_sort_by_lease_then_sequence() {
        let home = SiteId::new("eu");
        let lease = LeaseId { epoch: 2, seq: 7 };
        let (a, b) = (row_key(&home, lease, 9), row_key(&home, lease, 10));
        assert!(a < b, "rows must scan in sequence order");
        assert!(a.starts_with(lease_tag(&home, lease).as_bytes()));
        assert!(!row_key(&home, LeaseId { epoch: 2, seq: 70 }, 1).starts_with(lease_tag(&home, lease).as_bytes()));
    }
}
