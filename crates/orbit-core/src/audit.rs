//! The audit log: append-only, hash-chained, one chain per tenant.
//!
//! Each record carries the SHA-256 of the previous record of its chain and
//! its own hash over a canonical encoding (`canonical_bytes`), and each chain
//! has a head (last sequence and hash) in the same store, so an edited,
//! removed, reordered or truncated record is detected by `verify_chain`.
//!
//! Records are appended by one task fed through a bounded channel: callers
//! never wait for a metadata commit (only, under overload, for room in the
//! channel), and the chain stays valid however many requests record at once.
//! The appender commits a batch per transaction, guarded by the heads it read
//! (compare-and-swap), so even a second writer could not fork a chain.

use orbit_meta::{MetaError, MetaStore, MetaStoreExt, Table, Txn, decode, encode};
use orbit_tenancy::{Caller, meta_error};
use orbit_types::{Error, Result, TenantId, now_ms};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use tokio::sync::{mpsc, oneshot};

/// Room in the appender's queue; beyond it, recorders wait (back-pressure)
/// rather than drop records.
const QUEUE: usize = 8192;
/// Most records committed in one transaction.
const BATCH: usize = 512;
/// Longest text kept in one field (actor names, targets, unknown key ids).
const MAX_FIELD: usize = 1100;
/// The hash a chain's first record points back to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened, before it has a place in a chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditEvent {
    /// The chain: the tenant the event concerns (None: the system tenant's).
    pub chain: Option<TenantId>,
    /// Name of that tenant, kept in the record for reading.
    pub tenant: String,
    /// Who acted: `tenant/user`, or empty when unknown (failed authentication).
    pub actor: String,
    /// The access key used or presented (key ids are not secret).
    pub access_key: String,
    /// Dotted action name: `user.create`, `auth.s3`, `s3.GetObject`, ...
    pub action: String,
    /// What it was done to: a path, `bucket/key`, a tenant name.
    pub target: String,
    /// `ok`, `denied`, or an error code.
    pub outcome: String,
}

impl AuditEvent {
    /// An event by an authenticated caller, in the caller's tenant's chain.
    pub fn by(
        caller: &Caller,
        action: impl Into<String>,
        target: impl Into<String>,
        outcome: impl Into<String>,
    ) -> Self {
        AuditEvent {
            chain: Some(caller.tenant_id),
            tenant: caller.tenant.to_string(),
            actor: format!("{}/{}", caller.tenant, caller.user),
            access_key: caller.access_key_id.clone(),
            action: action.into(),
            target: target.into(),
            outcome: outcome.into(),
        }
    }
}

/// One stored record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub time_ms: i64,
    pub tenant: String,
    pub actor: String,
    pub access_key: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    /// Hex SHA-256 of the previous record of the chain (`GENESIS` for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this record's canonical encoding.
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
    time_ms: i64,
}

/// Data-access audit switch of a tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditSettings {
    pub data_access: bool,
}

/// The bytes a record's hash covers: a domain tag, the chain id, then every
/// field in a fixed order, each length-prefixed so no two records encode alike.
pub fn canonical_bytes(chain: &[u8; 16], r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"orbit-audit-v1\0");
    out.extend_from_slice(chain);
    out.extend_from_slice(&r.seq.to_be_bytes());
    out.extend_from_slice(&r.time_ms.to_be_bytes());
    for f in [&r.tenant, &r.actor, &r.access_key, &r.action, &r.target, &r.outcome, &r.prev_hash] {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f.as_bytes());
    }
    out
}

pub fn record_hash(chain: &[u8; 16], r: &AuditRecord) -> String {
    hex::encode(Sha256::digest(canonical_bytes(chain, r)))
}

pub fn record_key(chain: &[u8; 16], seq: u64) -> Vec<u8> {
    let mut k = chain.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

enum Msg {
    Event(AuditEvent),
    Flush(oneshot::Sender<()>),
}

/// Records audit events and answers queries over them.
#[derive(Clone)]
pub struct Auditor {
    meta: Arc<dyn MetaStore>,
    tx: mpsc::Sender<Msg>,
    system: TenantId,
    /// Tenants with data-access audit on (kept in memory: checked per S3 request).
    data_access: Arc<RwLock<HashSet<TenantId>>>,
}

impl Auditor {
    /// Start the appender. `system` is the system tenant, whose chain takes
    /// events that belong to no tenant (an unknown access key, say).
    pub async fn start(meta: Arc<dyn MetaStore>, system: TenantId) -> Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut on = HashSet::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = meta.scan_prefix(Table::AuditSettings, b"", after.as_deref(), 1000).await.map_err(meta_error)?;
            let done = rows.len() < 1000;
            for (k, v) in rows {
                let s: AuditSettings = decode(&v).map_err(meta_error)?;
                if s.data_access
                    && let Some(t) = TenantId::from_slice(&k)
                {
                    on.insert(t);
                }
                after = Some(k);
            }
            if done {
                break;
            }
        }
        tokio::spawn(appender(meta.clone(), rx, system));
        Ok(Self { meta, tx, system, data_access: Arc::new(RwLock::new(on)) })
    }

    pub fn system_tenant(&self) -> TenantId {
        self.system
    }

    /// Queue an event. Waits only when the queue is full.
    pub async fn record(&self, event: AuditEvent) {
        if self.tx.send(Msg::Event(event)).await.is_err() {
            tracing::error!("audit appender is gone; an audit event was lost");
        }
    }

    /// Wait until every event queued before this call is committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Whether S3 data access of the tenant is audited.
    pub fn data_access_on(&self, tenant: TenantId) -> bool {
        self.data_access.read().map(|s| s.contains(&tenant)).unwrap_or(false)
    }

    pub async fn settings(&self, tenant: TenantId) -> Result<AuditSettings> {
        Ok(self.meta.get_record(Table::AuditSettings, tenant.as_bytes()).await.map_err(meta_error)?.unwrap_or_default())
    }

    pub async fn set_settings(&self, tenant: &orbit_tenancy::TenantRecord, s: AuditSettings) -> Result<()> {
        let txn = Txn::new()
            .require_equals(Table::TenantNames, tenant.name.as_str().as_bytes().to_vec(), tenant.id.as_bytes().to_vec())
            .put(Table::AuditSettings, tenant.id.as_bytes().to_vec(), encode(&s));
        match self.meta.commit(txn).await {
            Ok(()) => {}
            Err(MetaError::Conflict) => return Err(Error::NotFound(orbit_types::Resource::Tenant)),
            Err(e) => return Err(meta_error(e)),
        }
        if let Ok(mut set) = self.data_access.write() {
            if s.data_access {
                set.insert(tenant.id);
            } else {
                set.remove(&tenant.id);
            }
        }
        Ok(())
    }

    /// Records of one chain matching the query, oldest first.
    pub async fn list(&self, chain: TenantId, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
        list_chain(self.meta.as_ref(), chain, q).await
    }

    /// The ids of every chain that has records.
    pub async fn chains(&self) -> Result<Vec<TenantId>> {
        chains(self.meta.as_ref()).await
    }
}

/// Filters of `audit list`; all optional.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    /// Actor user name (the part after `tenant/`).
    pub user: Option<String>,
    /// Action name or a dotted prefix of it (`s3.` matches every S3 operation).
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: usize,
}

impl AuditQuery {
    fn matches(&self, r: &AuditRecord) -> bool {
        if let Some(u) = &self.user
            && r.actor.split_once('/').map(|(_, user)| user) != Some(u.as_str())
        {
            return false;
        }
        if let Some(a) = &self.action
            && !(r.action == *a || (a.ends_with('.') && r.action.starts_with(a.as_str())))
        {
            return false;
        }
        self.until_ms.is_none_or(|u| r.time_ms < u) && self.since_ms.is_none_or(|s| r.time_ms >= s)
    }
}

pub async fn chains(meta: &dyn MetaStore) -> Result<Vec<TenantId>> {
    let rows = meta.scan_prefix(Table::AuditHeads, b"", None, usize::MAX).await.map_err(meta_error)?;
    Ok(rows.into_iter().filter_map(|(k, _)| TenantId::from_slice(&k)).collect())
}

async fn record_at(meta: &dyn MetaStore, chain: &[u8; 16], seq: u64) -> Result<Option<AuditRecord>> {
    meta.get_record(Table::Audit, &record_key(chain, seq)).await.map_err(meta_error)
}

/// The first sequence number whose record is at or after `since` (times
/// never go back within a chain, so a binary search over sequence numbers
/// finds it in O(log n) reads).
async fn first_seq_since(meta: &dyn MetaStore, chain: &[u8; 16], last: u64, since: i64) -> Result<u64> {
    let (mut lo, mut hi) = (1u64, last + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match record_at(meta, chain, mid).await? {
            Some(r) if r.time_ms < since => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

pub async fn list_chain(meta: &dyn MetaStore, chain: TenantId, q: &AuditQuery) -> Result<Vec<AuditRecord>> {
    let id = chain.as_bytes();
    let Some(head) = meta.get_record::<Head>(Table::AuditHeads, id).await.map_err(meta_error)? else {
        return Ok(Vec::new());
    };
    let start = match q.since_ms {
        Some(s) => first_seq_since(meta, id, head.seq, s).await?,
        None => 1,
    };
    let mut out = Vec::new();
    // Sequence numbers start at 1, so "after record 0" is the whole chain.
    let mut after = record_key(id, start.saturating_sub(1));
    loop {
        let rows = meta.scan_prefix(Table::Audit, id, Some(&after), 1000).await.map_err(meta_error)?;
        let done = rows.len() < 1000;
        for (k, v) in rows {
            let r: AuditRecord = decode(&v).map_err(meta_error)?;
            if q.until_ms.is_some_and(|u| r.time_ms >= u) {
                return Ok(out);
            }
            if q.matches(&r) {
                out.push(r);
                if out.len() >= q.limit {
                    return Ok(out);
                }
            }
            after = k;
        }
        if done {
            return Ok(out);
        }
    }
}

/// Why a chain failed verification, at which record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainFault {
    /// Sequence number of the first bad record (or where one is missing).
    pub seq: u64,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainReport {
    pub chain: TenantId,
    /// Tenant name as the records give it (empty for a chain with none).
    pub tenant: String,
    pub records: u64,
    pub fault: Option<ChainFault>,
}

/// Check one chain: sequence numbers run 1, 2, 3 ... without gaps (removal
/// and reordering show here), each record's hash is that of its contents
/// (edits), each links to the hash of the one before, and the head names the
/// last record (truncation, or records appended behind the appender's back).
pub async fn verify_chain(meta: &dyn MetaStore, chain: TenantId) -> Result<ChainReport> {
    let id = chain.as_bytes();
    let head: Option<Head> = meta.get_record(Table::AuditHeads, id).await.map_err(meta_error)?;
    let mut report = ChainReport { chain, tenant: String::new(), records: 0, fault: None };
    let mut prev = GENESIS.to_owned();
    let mut expected = 1u64;
    let mut after: Option<Vec<u8>> = None;
    let fault = |seq: u64, reason: String| Some(ChainFault { seq, reason });
    'scan: loop {
        let rows = meta.scan_prefix(Table::Audit, id, after.as_deref(), 1000).await.map_err(meta_error)?;
        let done = rows.len() < 1000;
        for (k, v) in rows {
            let key_seq = k.get(16..24).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
            after = Some(k);
            let r: AuditRecord = match decode(&v) {
                Ok(r) => r,
                Err(_) => {
                    report.fault = fault(key_seq, "the record cannot be decoded".into());
                    break 'scan;
                }
            };
            if report.tenant.is_empty() {
                report.tenant = r.tenant.clone();
            }
            if key_seq != expected {
                report.fault = fault(expected, format!("record {expected} is missing (next is {key_seq})"));
                break 'scan;
            }
            if r.seq != key_seq {
                report.fault = fault(key_seq, format!("record {key_seq} holds record {} (reordered)", r.seq));
                break 'scan;
            }
            if r.prev_hash != prev {
                report.fault = fault(key_seq, "its previous-record hash does not match the record before it".into());
                break 'scan;
            }
            if record_hash(id, &r) != r.hash {
                report.fault = fault(key_seq, "its contents do not match its hash (edited)".into());
                break 'scan;
            }
            prev = r.hash;
            report.records = key_seq;
            expected += 1;
        }
        if done {
            break;
        }
    }
    if report.fault.is_none() {
        let last = report.records;
        report.fault = match head {
            None if last > 0 => fault(last, "the chain has records but no head".into()),
            None => None,
            Some(h) if h.seq > last => {
                fault(last + 1, format!("records {} to {} are missing (truncated)", last + 1, h.seq))
            }
            Some(h) if h.seq < last => fault(h.seq + 1, "records follow the chain's head".into()),
            Some(h) if h.hash != prev => fault(last, "the chain's head does not match its last record".into()),
            Some(_) => None,
        };
    }
    Ok(report)
}

/// The appender: the only writer of chains. Heads are read once and kept;
/// every batch commits only if the stored heads are still those.
async fn appender(meta: Arc<dyn MetaStore>, mut rx: mpsc::Receiver<Msg>, system: TenantId) {
    let mut heads: HashMap<TenantId, (Option<Vec<u8>>, Head)> = HashMap::new();
    let mut buf = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut buf, BATCH).await > 0 {
        let mut events = Vec::new();
        let mut flushes = Vec::new();
        for m in buf.drain(..) {
            match m {
                Msg::Event(e) => events.push(e),
                Msg::Flush(done) => flushes.push(done),
            }
        }
        if !events.is_empty() {
            let mut delay = std::time::Duration::from_millis(50);
            loop {
                match append_batch(meta.as_ref(), &mut heads, &events, system).await {
                    Ok(()) => break,
                    Err(e) => {
                        // Forget cached heads (another writer, or a failed commit) and retry;
                        // the events stay queued here, so none is lost while the store is down.
                        heads.clear();
                        tracing::warn!(error = %e, "audit append failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(5));
                    }
                }
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

async fn append_batch(
    meta: &dyn MetaStore,
    heads: &mut HashMap<TenantId, (Option<Vec<u8>>, Head)>,
    events: &[AuditEvent],
    system: TenantId,
) -> Result<()> {
    let mut next = heads.clone();
    let mut txn = Txn::new();
    let mut guarded = HashSet::new();
    let now = now_ms();
    for e in events {
        let chain = e.chain.unwrap_or(system);
        if let std::collections::hash_map::Entry::Vacant(slot) = next.entry(chain) {
            let raw = meta.get(Table::AuditHeads, chain.as_bytes()).await.map_err(meta_error)?;
            let head = match &raw {
                Some(r) => decode(r).map_err(meta_error)?,
                None => Head { seq: 0, hash: GENESIS.to_owned(), time_ms: i64::MIN },
            };
            slot.insert((raw, head));
        }
        let (raw, head) = next.get_mut(&chain).expect("inserted above");
        if guarded.insert(chain) {
            txn = txn.require_current(Table::AuditHeads, chain.as_bytes().to_vec(), raw.clone());
        }
        let mut r = AuditRecord {
            seq: head.seq + 1,
            // Never earlier than the record before, so time ranges are seq ranges.
            time_ms: now.max(head.time_ms),
            tenant: clip(e.tenant.clone()),
            actor: clip(e.actor.clone()),
            access_key: clip(e.access_key.clone()),
            action: clip(e.action.clone()),
            target: clip(e.target.clone()),
            outcome: clip(e.outcome.clone()),
            prev_hash: head.hash.clone(),
            hash: String::new(),
        };
        r.hash = record_hash(chain.as_bytes(), &r);
        txn.push_put(Table::Audit, record_key(chain.as_bytes(), r.seq), encode(&r));
        *head = Head { seq: r.seq, hash: r.hash.clone(), time_ms: r.time_ms };
    }
    for chain in &guarded {
        let (raw, head) = next.get_mut(chain).expect("present");
        let bytes = encode(&*head);
        txn.push_put(Table::AuditHeads, chain.as_bytes().to_vec(), bytes.clone());
        *raw = Some(bytes);
    }
    match meta.commit(txn).await {
        Ok(()) => {
            *heads = next;
            Ok(())
        }
        Err(MetaError::Conflict) => Err(Error::Unavailable("an audit chain's head moved".into())),
        Err(e) => Err(meta_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit_meta::MemoryStore;

    fn ev(chain: TenantId, n: usize) -> AuditEvent {
        AuditEvent {
            chain: Some(chain),
            tenant: "acme".into(),
            actor: "acme/alice".into(),
            access_key: "AK".into(),
            action: "user.create".into(),
            target: format!("user-{n}"),
            outcome: "ok".into(),
        }
    }

    async fn chain_of(n: usize) -> (Arc<dyn MetaStore>, Auditor, TenantId) {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let a = Auditor::start(meta.clone(), TenantId::generate()).await.unwrap();
        let t = TenantId::generate();
        for i in 0..n {
            a.record(ev(t, i)).await;
        }
        a.flush().await;
        (meta, a, t)
    }

    async fn raw(meta: &Arc<dyn MetaStore>, t: TenantId, seq: u64) -> Vec<u8> {
        meta.get(Table::Audit, &record_key(t.as_bytes(), seq)).await.unwrap().unwrap()
    }

    async fn put(meta: &Arc<dyn MetaStore>, table: Table, key: Vec<u8>, v: Vec<u8>) {
        meta.commit(Txn::new().put(table, key, v)).await.unwrap();
    }

    #[tokio::test]
    async fn an_intact_chain_verifies() {
        let (meta, a, t) = chain_of(5).await;
        let r = verify_chain(meta.as_ref(), t).await.unwrap();
        assert_eq!((r.records, r.fault, r.tenant.as_str()), (5, None, "acme"));
        assert_eq!(a.chains().await.unwrap(), vec![t]);
    }

    #[tokio::test]
    async fn an_edited_record_is_named() {
        let (meta, _, t) = chain_of(5).await;
        let mut r: AuditRecord = decode(&raw(&meta, t, 3).await).unwrap();
        r.outcome = "denied".into();
        put(&meta, Table::Audit, record_key(t.as_bytes(), 3), encode(&r)).await;
        let f = verify_chain(meta.as_ref(), t).await.unwrap().fault.unwrap();
        assert_eq!(f.seq, 3, "{f:?}");
        assert!(f.reason.contains("edited"));
    }

    #[tokio::test]
    async fn an_edit_that_recomputes_the_hash_breaks_the_next_link() {
        let (meta, _, t) = chain_of(5).await;
        let mut r: AuditRecord = decode(&raw(&meta, t, 2).await).unwrap();
        r.actor = "acme/mallory".into();
        r.hash = record_hash(t.as_bytes(), &r);
        put(&meta, Table::Audit, record_key(t.as_bytes(), 2), encode(&r)).await;
        assert_eq!(verify_chain(meta.as_ref(), t).await.unwrap().fault.unwrap().seq, 3);
    }

    #[tokio::test]
    async fn a_removed_record_is_named() {
        let (meta, _, t) = chain_of(5).await;
        meta.commit(Txn::new().delete(Table::Audit, record_key(t.as_bytes(), 2))).await.unwrap();
        let f = verify_chain(meta.as_ref(), t).await.unwrap().fault.unwrap();
        assert_eq!(f.seq, 2, "{f:?}");
        assert!(f.reason.contains("missing"));
    }

    #[tokio::test]
    async fn reordered_records_are_named() {
        let (meta, _, t) = chain_of(5).await;
        let (r2, r4) = (raw(&meta, t, 2).await, raw(&meta, t, 4).await);
        put(&meta, Table::Audit, record_key(t.as_bytes(), 2), r4).await;
        put(&meta, Table::Audit, record_key(t.as_bytes(), 4), r2).await;
        let f = verify_chain(meta.as_ref(), t).await.unwrap().fault.unwrap();
        assert_eq!(f.seq, 2, "{f:?}");
        assert!(f.reason.contains("reordered"));
    }

    #[tokio::test]
    async fn truncation_is_caught_by_the_head() {
        let (meta, _, t) = chain_of(5).await;
        let txn = Txn::new()
            .delete(Table::Audit, record_key(t.as_bytes(), 5))
            .delete(Table::Audit, record_key(t.as_bytes(), 4));
        meta.commit(txn).await.unwrap();
        let f = verify_chain(meta.as_ref(), t).await.unwrap().fault.unwrap();
        assert_eq!(f.seq, 4, "{f:?}");
        assert!(f.reason.contains("truncated"));
        // Dropping the head as well leaves records without one.
        meta.commit(Txn::new().delete(Table::AuditHeads, t.as_bytes().to_vec())).await.unwrap();
        assert!(verify_chain(meta.as_ref(), t).await.unwrap().fault.is_some());
    }

    #[tokio::test]
    async fn concurrent_recorders_keep_one_valid_chain_per_tenant() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let a = Auditor::start(meta.clone(), TenantId::generate()).await.unwrap();
        let (t1, t2) = (TenantId::generate(), TenantId::generate());
        let mut tasks = Vec::new();
        for w in 0..8 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..100 {
                    a.record(ev(if (w + i) % 2 == 0 { t1 } else { t2 }, i)).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        a.flush().await;
        let (r1, r2) = (verify_chain(meta.as_ref(), t1).await.unwrap(), verify_chain(meta.as_ref(), t2).await.unwrap());
        assert_eq!((r1.fault, r2.fault), (None, None));
        assert_eq!(r1.records + r2.records, 800);
        // A restarted appender continues the same chains.
        let b = Auditor::start(meta.clone(), TenantId::generate()).await.unwrap();
        b.record(ev(t1, 0)).await;
        b.flush().await;
        let r = verify_chain(meta.as_ref(), t1).await.unwrap();
        assert_eq!((r.records, r.fault), (r1.records + 1, None));
    }

    #[tokio::test]
    async fn queries_filter_by_user_action_and_time() {
        let (meta, a, t) = chain_of(3).await;
        let mut other = ev(t, 9);
        other.actor = "acme/bob".into();
        other.action = "s3.GetObject".into();
        a.record(other).await;
        a.flush().await;
        let all = a.list(t, &AuditQuery { limit: 100, ..Default::default() }).await.unwrap();
        assert_eq!(all.len(), 4);
        let q = |f: fn(&mut AuditQuery)| {
            let mut q = AuditQuery { limit: 100, ..Default::default() };
            f(&mut q);
            q
        };
        assert_eq!(a.list(t, &q(|q| q.user = Some("bob".into()))).await.unwrap().len(), 1);
        assert_eq!(a.list(t, &q(|q| q.action = Some("s3.".into()))).await.unwrap().len(), 1);
        assert_eq!(a.list(t, &q(|q| q.action = Some("user.create".into()))).await.unwrap().len(), 3);
        assert_eq!(a.list(t, &q(|q| q.limit = 2)).await.unwrap().len(), 2);
        let last = all[3].time_ms;
        let since = a.list(t, &AuditQuery { since_ms: Some(last), limit: 100, ..Default::default() }).await.unwrap();
        assert!(since.iter().all(|r| r.time_ms >= last) && since.last().unwrap().seq == 4);
        let until = AuditQuery { until_ms: Some(all[0].time_ms), limit: 100, ..Default::default() };
        assert!(a.list(t, &until).await.unwrap().is_empty());
        assert_eq!(first_seq_since(meta.as_ref(), t.as_bytes(), 4, i64::MAX).await.unwrap(), 5);
    }
}
