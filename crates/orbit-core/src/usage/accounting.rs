//! Usage counters (bytes stored and object count, per tenant and per
//! bucket) and quota checks, applied inside the same conditional commit
//! that changes an object, so usage is exact after any crash.
//!
//! Counters are changed with the metadata store's atomic add, which never
//! conflicts: every writer of a bucket touches the same counter, and a
//! compare-and-swap on it would make them retry each other. A hard quota
//! adds an at-most condition on the counter to the commit, so the check
//! and the increment are one atomic step: hard quotas never overshoot.

use super::{Quota, QuotaKind, UsageFigures};
use crate::records::BucketRecord;
use orbit_meta::{MetaStore, MetaStoreExt, Table, Txn, counter_value, decode};
use orbit_tenancy::meta_error;
use orbit_types::{BucketId, Error, Result, TenantId};

pub(crate) const BYTES: u8 = b'B';
pub(crate) const OBJECTS: u8 = b'O';
/// Bumped by every change of a scope's usage, so a recount can tell that
/// nothing changed while it scanned.
pub(crate) const SEQ: u8 = b'S';

/// Counter key of a tenant: tenant id ++ kind (17 bytes).
pub(crate) fn tenant_counter(tenant: TenantId, kind: u8) -> Vec<u8> {
    let mut k = tenant.as_bytes().to_vec();
    k.push(kind);
    k
}

/// Counter key of a bucket: tenant id ++ bucket id ++ kind (33 bytes).
pub(crate) fn bucket_counter(tenant: TenantId, bucket: BucketId, kind: u8) -> Vec<u8> {
    let mut k = tenant.as_bytes().to_vec();
    k.extend_from_slice(bucket.as_bytes());
    k.push(kind);
    k
}

pub(crate) fn tenant_quota_key(tenant: TenantId) -> Vec<u8> {
    tenant.as_bytes().to_vec()
}

pub(crate) fn bucket_quota_key(tenant: TenantId, bucket: BucketId) -> Vec<u8> {
    let mut k = tenant.as_bytes().to_vec();
    k.extend_from_slice(bucket.as_bytes());
    k
}

pub(crate) async fn read_counter(meta: &dyn MetaStore, key: &[u8]) -> Result<i64> {
    match meta.get(Table::Usage, key).await.map_err(meta_error)? {
        None => Ok(0),
        Some(b) => counter_value(&b).ok_or_else(|| Error::Internal("a usage counter is not 8 bytes".into())),
    }
}

/// Bytes and objects of one scope, from its counters.
pub(crate) async fn read_figures(meta: &dyn MetaStore, key: impl Fn(u8) -> Vec<u8>) -> Result<UsageFigures> {
    let bytes = read_counter(meta, &key(BYTES)).await?;
    let objects = read_counter(meta, &key(OBJECTS)).await?;
    Ok(UsageFigures { bytes: bytes.max(0) as u64, objects: objects.max(0) as u64 })
}

/// A change of usage caused by one commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Charge {
    pub bytes: i64,
    pub objects: i64,
}

impl Charge {
    pub fn new(bytes: i64, objects: i64) -> Self {
        Self { bytes, objects }
    }
    pub fn is_zero(&self) -> bool {
        self.bytes == 0 && self.objects == 0
    }
}

/// One scope (tenant or bucket) as read before a commit: its quota, the
/// exact bytes of the quota record, and its usage.
struct Scope {
    what: &'static str,
    counter: Box<dyn Fn(u8) -> Vec<u8> + Send + Sync>,
    quota_key: Vec<u8>,
    quota_raw: Option<Vec<u8>>,
    quota: Option<Quota>,
    usage: UsageFigures,
}

/// A soft limit that a committed write went past.
#[derive(Debug)]
pub(crate) struct SoftExceeded {
    pub scope: &'static str,
    pub resource: &'static str,
    pub limit: u64,
    pub after: u64,
}

/// Quotas and usage of a bucket and its tenant, read before a commit.
pub(crate) struct Guard {
    tenant: TenantId,
    scopes: [Scope; 2],
}

impl Guard {
    pub(crate) async fn read(meta: &dyn MetaStore, bucket: &BucketRecord) -> Result<Guard> {
        let (t, b) = (bucket.tenant_id, bucket.id);
        let tenant = Self::scope(meta, "tenant", Box::new(move |k| tenant_counter(t, k)), tenant_quota_key(t)).await?;
        let bucket =
            Self::scope(meta, "bucket", Box::new(move |k| bucket_counter(t, b, k)), bucket_quota_key(t, b)).await?;
        Ok(Guard { tenant: t, scopes: [tenant, bucket] })
    }

    async fn scope(
        meta: &dyn MetaStore,
        what: &'static str,
        counter: Box<dyn Fn(u8) -> Vec<u8> + Send + Sync>,
        quota_key: Vec<u8>,
    ) -> Result<Scope> {
        let quota_raw = meta.get(Table::Quotas, &quota_key).await.map_err(meta_error)?;
        let quota = quota_raw.as_deref().map(decode::<Quota>).transpose().map_err(meta_error)?;
        // Usage is only needed where a limit is set.
        let usage = if quota.is_some() { read_figures(meta, &counter).await? } else { UsageFigures::default() };
        Ok(Scope { what, counter, quota_key, quota_raw, quota, usage })
    }

    /// Add the usage change to `txn`, with the hard quotas as conditions of
    /// the same commit. A change that would exceed a hard quota as read now
    /// is refused here; one that a concurrent writer pushes over the limit
    /// fails its condition, and the caller's retry re-reads and refuses it.
    /// Changes that shrink usage are never refused.
    pub(crate) fn charge(&self, txn: &mut Txn, c: Charge) -> Result<Vec<SoftExceeded>> {
        let mut soft = Vec::new();
        if c.is_zero() {
            return Ok(soft);
        }
        for s in &self.scopes {
            if let Some(q) = &s.quota {
                // The limit checked is the one committed against.
                if let Some(raw) = &s.quota_raw {
                    txn.conditions.push(orbit_meta::Condition::Equals {
                        table: Table::Quotas,
                        key: s.quota_key.clone(),
                        value: raw.clone(),
                    });
                }
                for (resource, kind, delta, limit, used) in [
                    ("bytes", BYTES, c.bytes, q.max_bytes, s.usage.bytes),
                    ("objects", OBJECTS, c.objects, q.max_objects, s.usage.objects),
                ] {
                    let Some(limit) = limit else { continue };
                    if delta <= 0 {
                        continue;
                    }
                    let after = used.saturating_add(delta as u64);
                    match q.kind {
                        QuotaKind::Hard => {
                            if after > limit {
                                return Err(Error::QuotaExceeded(format!(
                                    "the {} quota of {limit} {resource} would be exceeded",
                                    s.what
                                )));
                            }
                            let max = i64::try_from(limit).unwrap_or(i64::MAX).saturating_sub(delta);
                            txn.push_require_at_most(Table::Usage, (s.counter)(kind), max);
                        }
                        QuotaKind::Soft => {
                            if after > limit {
                                soft.push(SoftExceeded { scope: s.what, resource, limit, after });
                            }
                        }
                    }
                }
            }
            if c.bytes != 0 {
                txn.push_add(Table::Usage, (s.counter)(BYTES), c.bytes);
            }
            if c.objects != 0 {
                txn.push_add(Table::Usage, (s.counter)(OBJECTS), c.objects);
            }
            txn.push_add(Table::Usage, (s.counter)(SEQ), 1);
        }
        Ok(soft)
    }

    /// Report soft limits passed by a committed write: a log event for the
    /// operator and a counter without tenant names.
    pub(crate) fn report(&self, soft: Vec<SoftExceeded>) {
        for s in soft {
            metrics::counter!("orbit_quota_soft_exceeded_total", "scope" => s.scope, "resource" => s.resource)
                .increment(1);
            tracing::warn!(
                tenant = %self.tenant,
                scope = s.scope,
                resource = s.resource,
                limit = s.limit,
                usage = s.after,
                "soft quota exceeded"
            );
        }
    }
}

/// Add a usage change without quota checks (deletions, purges).
pub(crate) fn release(txn: &mut Txn, tenant: TenantId, bucket: BucketId, c: Charge) {
    if c.is_zero() {
        return;
    }
    for key in [
        &(|k| tenant_counter(tenant, k)) as &dyn Fn(u8) -> Vec<u8>,
        &(|k| bucket_counter(tenant, bucket, k)) as &dyn Fn(u8) -> Vec<u8>,
    ] {
        if c.bytes != 0 {
            txn.push_add(Table::Usage, key(BYTES), c.bytes);
        }
        if c.objects != 0 {
            txn.push_add(Table::Usage, key(OBJECTS), c.objects);
        }
        txn.push_add(Table::Usage, key(SEQ), 1);
    }
}

/// Remove a bucket's counters and quota as it is deleted, taking what its
/// counters hold off its tenant's. The counters' values are conditions of
/// the commit, so a concurrent change makes the deletion retry.
pub(crate) async fn drop_bucket(meta: &dyn MetaStore, txn: &mut Txn, tenant: TenantId, bucket: BucketId) -> Result<()> {
    for kind in [BYTES, OBJECTS, SEQ] {
        let key = bucket_counter(tenant, bucket, kind);
        let raw = meta.get(Table::Usage, &key).await.map_err(meta_error)?;
        let value = raw.as_deref().and_then(counter_value).unwrap_or(0);
        txn.conditions.push(match raw {
            Some(v) => orbit_meta::Condition::Equals { table: Table::Usage, key: key.clone(), value: v },
            None => orbit_meta::Condition::Absent { table: Table::Usage, key: key.clone() },
        });
        txn.push_delete(Table::Usage, key);
        if kind != SEQ && value != 0 {
            txn.push_add(Table::Usage, tenant_counter(tenant, kind), -value);
        }
    }
    txn.push_add(Table::Usage, tenant_counter(tenant, SEQ), 1);
    txn.push_delete(Table::Quotas, bucket_quota_key(tenant, bucket));
    Ok(())
}

/// Remove everything kept for a deleted tenant (its counters and quotas).
pub(crate) async fn drop_tenant(meta: &dyn MetaStore, tenant: TenantId) -> Result<()> {
    let mut txn = Txn::new();
    for table in [Table::Usage, Table::Quotas] {
        for (k, _) in meta.scan_prefix(table, tenant.as_bytes(), None, usize::MAX).await.map_err(meta_error)? {
            txn.push_delete(table, k);
        }
    }
    meta.commit(txn).await.map_err(meta_error)
}
