use async_trait::async_trait;
use std::ops::Bound;

/// The tables of the metadata store. Keys and values are bytes; the typed
/// layers above decide their encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// tenant id -> tenant record
    Tenants,
    /// tenant name -> tenant id
    TenantNames,
    /// user id -> user record
    Users,
    /// tenant id ++ user name -> user id
    UserNames,
    /// access key id -> access key record (secret sealed)
    AccessKeys,
    /// tenant id ++ user id ++ access key id -> empty (keys by tenant and user)
    UserKeys,
    /// tenant id ++ bucket name -> bucket record
    Buckets,
    /// bucket id ++ object key -> object record
    Objects,
    /// bucket id ++ upload id -> multipart upload record
    Uploads,
    /// upload id ++ part number (big endian) -> part record
    Parts,
    /// blob path -> time after which the blob may be deleted (garbage and put intents)
    Gc,
    /// setting name -> value (site-wide settings and markers)
    Settings,
    /// tenant id ++ job id -> background job record (prefetch jobs)
    Jobs,
    /// backend name -> the locations of that backend mapped by buckets (mapped layout)
    Mappings,
    /// tenant id ++ bucket name (empty for the tenant as a whole) -> QoS limits
    Qos,
    /// usage counter key -> counter (bytes and objects per tenant and per bucket; see [`Op::Add`])
    Usage,
    /// tenant id [++ bucket id] -> quota record
    Quotas,
    /// tenant id ++ hour ++ bucket id -> metering record of that hour
    Metering,
    /// chain (tenant) id ++ sequence (u64 big endian) -> audit record
    Audit,
    /// chain (tenant) id -> head of the audit chain (last sequence and hash)
    AuditHeads,
    /// tenant id -> audit settings of the tenant (data-access audit on or off)
    AuditSettings,
    /// tenant id -> limits the operator set for a self-managed tenant
    TenantLimits,
    /// tenant id ++ user id -> the user's bucket and prefix grants
    Grants,
    /// write lease ++ sequence (u64 big endian) -> a write this site
    /// acknowledged under a write lease it holds, not yet applied at home
    HeldWrites,
}

impl Table {
    pub const ALL: [Table; 24] = [
        Table::Tenants,
        Table::TenantNames,
        Table::Users,
        Table::UserNames,
        Table::AccessKeys,
        Table::UserKeys,
        Table::Buckets,
        Table::Objects,
        Table::Uploads,
        Table::Parts,
        Table::Gc,
        Table::Settings,
        Table::Jobs,
        Table::Mappings,
        Table::Qos,
        Table::Usage,
        Table::Quotas,
        Table::Metering,
        Table::Audit,
        Table::AuditHeads,
        Table::AuditSettings,
        Table::TenantLimits,
        Table::Grants,
        Table::HeldWrites,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::TenantNames => "tenant_names",
            Table::Users => "users",
            Table::UserNames => "user_names",
            Table::AccessKeys => "access_keys",
            Table::UserKeys => "user_keys",
            Table::Buckets => "buckets",
            Table::Objects => "objects",
            Table::Uploads => "uploads",
            Table::Parts => "parts",
            Table::Gc => "gc",
            Table::Settings => "settings",
            Table::Jobs => "jobs",
            Table::Mappings => "mappings",
            Table::Qos => "qos",
            Table::Usage => "usage",
            Table::Quotas => "quotas",
            Table::Metering => "metering",
            Table::Audit => "audit",
            Table::AuditHeads => "audit_heads",
            Table::AuditSettings => "audit_settings",
            Table::TenantLimits => "tenant_limits",
            Table::Grants => "grants",
            Table::HeldWrites => "held_writes",
        }
    }
}

/// A guard on a commit: all must hold, or nothing is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The key has no value.
    Absent { table: Table, key: Vec<u8> },
    /// The key holds exactly this value.
    Equals { table: Table, key: Vec<u8>, value: Vec<u8> },
    /// No key in the table starts with this prefix.
    PrefixEmpty { table: Table, prefix: Vec<u8> },
    /// The counter at the key (absent counts as 0) is at most `max`, before
    /// this commit's ops apply. With [`Op::Add`] this makes a limit check and
    /// the increment one atomic step, so concurrent writers never overshoot.
    AtMost { table: Table, key: Vec<u8>, max: i64 },
}

/// One write of a commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        table: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: Table,
        key: Vec<u8>,
    },
    /// Add `delta` to the counter at the key (absent counts as 0). Adds never
    /// conflict with each other, so hot counters shared by every writer of a
    /// bucket cost no retries. Counters are 8 bytes, big-endian i64.
    Add {
        table: Table,
        key: Vec<u8>,
        delta: i64,
    },
}

/// The value of a counter kept by [`Op::Add`]; None when the bytes are not one.
pub fn counter_value(bytes: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(bytes).ok().map(i64::from_be_bytes)
}

/// The new value of a counter after adding `delta` to its stored bytes.
pub(crate) fn counter_add(current: Option<&[u8]>, delta: i64) -> MetaResult<Vec<u8>> {
    let cur = match current {
        None => 0,
        Some(b) => counter_value(b).ok_or_else(|| MetaError::Corrupt("a counter is not 8 bytes".into()))?,
    };
    Ok(cur.saturating_add(delta).to_be_bytes().to_vec())
}

/// Whether an [`Condition::AtMost`] holds for the stored bytes.
pub(crate) fn counter_at_most(current: Option<&[u8]>, max: i64) -> MetaResult<bool> {
    match current {
        None => Ok(0 <= max),
        Some(b) => {
            counter_value(b).map(|v| v <= max).ok_or_else(|| MetaError::Corrupt("a counter is not 8 bytes".into()))
        }
    }
}

/// An atomic, conditional batch of writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    pub conditions: Vec<Condition>,
    pub ops: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn require_absent(mut self, table: Table, key: impl Into<Vec<u8>>) -> Self {
        self.conditions.push(Condition::Absent { table, key: key.into() });
        self
    }
    pub fn require_equals(mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.conditions.push(Condition::Equals { table, key: key.into(), value: value.into() });
        self
    }
    /// Require the key to hold `value`, or to be absent when `value` is None.
    pub fn require_current(self, table: Table, key: impl Into<Vec<u8>>, value: Option<Vec<u8>>) -> Self {
        match value {
            Some(v) => self.require_equals(table, key, v),
            None => self.require_absent(table, key),
        }
    }
    pub fn require_prefix_empty(mut self, table: Table, prefix: impl Into<Vec<u8>>) -> Self {
        self.conditions.push(Condition::PrefixEmpty { table, prefix: prefix.into() });
        self
    }
    pub fn put(mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Put { table, key: key.into(), value: value.into() });
        self
    }
    pub fn delete(mut self, table: Table, key: impl Into<Vec<u8>>) -> Self {
        self.ops.push(Op::Delete { table, key: key.into() });
        self
    }
    pub fn push_put(&mut self, table: Table, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(Op::Put { table, key: key.into(), value: value.into() });
    }
    pub fn push_delete(&mut self, table: Table, key: impl Into<Vec<u8>>) {
        self.ops.push(Op::Delete { table, key: key.into() });
    }
    pub fn push_add(&mut self, table: Table, key: impl Into<Vec<u8>>, delta: i64) {
        self.ops.push(Op::Add { table, key: key.into(), delta });
    }
    pub fn push_require_at_most(&mut self, table: Table, key: impl Into<Vec<u8>>, max: i64) {
        self.conditions.push(Condition::AtMost { table, key: key.into(), max });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A condition of the commit did not hold; the caller re-reads and decides.
    #[error("a commit condition did not hold")]
    Conflict,
    /// The store could not be reached or written; retrying may help.
    #[error("metadata store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be understood; retrying will not help.
    #[error("metadata record corrupt: {0}")]
    Corrupt(String),
}

pub type MetaResult<T> = Result<T, MetaError>;

/// The metadata store. Implementations must make `commit` atomic and
/// durable before it returns, and `scan` ordered by key bytes.
#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    async fn get(&self, table: Table, key: &[u8]) -> MetaResult<Option<Vec<u8>>>;

    /// Up to `limit` entries with keys in the range, in ascending key order.
    async fn scan(
        &self,
        table: Table,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Apply all ops atomically if every condition holds, else `MetaError::Conflict`.
    async fn commit(&self, txn: Txn) -> MetaResult<()>;
}

/// The smallest key greater than every key that starts with `prefix`, or
/// None when no such key exists (the prefix is all 0xff bytes).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Conveniences over [`MetaStore`], kept out of the trait so that no
/// implementation can override them inconsistently.
#[async_trait]
pub trait MetaStoreExt: MetaStore {
    /// Entries whose key starts with `prefix`, strictly after `after` when given.
    async fn scan_prefix(
        &self,
        table: Table,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        let end = match prefix_end(prefix) {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        self.scan(table, start, end, limit).await
    }

    async fn get_record<T: serde::de::DeserializeOwned>(&self, table: Table, key: &[u8]) -> MetaResult<Option<T>> {
        match self.get(table, key).await? {
            Some(bytes) => crate::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }
}

impl<S: MetaStore + ?Sized> MetaStoreExt for S {}
