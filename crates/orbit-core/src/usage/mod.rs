//! Quotas, usage accounting and usage metering.
//!
//! - `accounting`: bytes and objects per tenant and per bucket, changed in
//!   the same conditional commit as each object change, with hard quotas
//!   as conditions of that commit.
//! - `meter`: hourly billing records (requests by class, bytes in and out,
//!   cache hits, byte-hours), counted in memory and flushed periodically.
//! - here: quota records, reading usage, the recount, and the authorised
//!   admin operations over them.

pub(crate) mod accounting;
pub mod meter;

use crate::admin::AdminService;
use crate::namespace::Namespace;
use crate::records::BucketRecord;
use accounting::{BYTES, OBJECTS, SEQ, bucket_counter, bucket_quota_key, read_counter, read_figures, tenant_counter};
use orbit_backend::ListRequest;
use orbit_meta::{MetaError, MetaStoreExt, Table, Txn, decode, encode};
use orbit_tenancy::{AdminAction, Caller, authorize_admin, meta_error};
use orbit_types::{BucketId, Error, Result, TenantId, now_ms};
use serde::{Deserialize, Serialize};

pub use meter::{FLUSH_INTERVAL, MeterCounts, MeterRecord, RequestClass};

/// Whether going past a limit refuses the request or only reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaKind {
    /// The request is refused (S3 `QuotaExceeded`, 403).
    Hard,
    /// The request goes on; a warning is logged and counted.
    Soft,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub max_bytes: Option<u64>,
    pub max_objects: Option<u64>,
    pub kind: QuotaKind,
    pub updated_ms: i64,
}

/// Bytes stored (objects plus parts of unfinished multipart uploads) and
/// the number of objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageFigures {
    pub bytes: u64,
    pub objects: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketUsage {
    pub bucket: String,
    pub usage: UsageFigures,
    pub quota: Option<Quota>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantUsage {
    pub usage: UsageFigures,
    pub quota: Option<Quota>,
    pub buckets: Vec<BucketUsage>,
}

/// What a recount found for one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drift {
    /// None for the tenant's own counters.
    pub bucket: Option<String>,
    /// What the counters said.
    pub counted: UsageFigures,
    /// What the records add up to.
    pub actual: UsageFigures,
    pub corrected: bool,
}

const RECOUNT_RETRIES: usize = 8;

impl Namespace {
    async fn bucket_id(&self, tenant: TenantId, bucket: &str) -> Result<BucketId> {
        Ok(self.resolve_bucket(tenant, bucket).await?.record.id)
    }

    fn quota_key(tenant: TenantId, bucket: Option<BucketId>) -> Vec<u8> {
        match bucket {
            Some(b) => bucket_quota_key(tenant, b),
            None => accounting::tenant_quota_key(tenant),
        }
    }

    pub async fn quota(&self, tenant: TenantId, bucket: Option<&str>) -> Result<Option<Quota>> {
        let b = match bucket {
            Some(name) => Some(self.bucket_id(tenant, name).await?),
            None => None,
        };
        self.meta().get_record(Table::Quotas, &Self::quota_key(tenant, b)).await.map_err(meta_error)
    }

    /// Set (Some) or clear (None) the quota of a tenant or of one of its buckets.
    pub async fn set_quota(&self, tenant: TenantId, bucket: Option<&str>, quota: Option<Quota>) -> Result<()> {
        if let Some(q) = &quota
            && q.max_bytes.is_none()
            && q.max_objects.is_none()
        {
            return Err(Error::InvalidArgument("a quota needs max_bytes, max_objects or both".into()));
        }
        for _ in 0..RECOUNT_RETRIES {
            let mut txn = Txn::new();
            let key = match bucket {
                Some(name) => {
                    // The bucket must still exist when its quota is written.
                    let b = self.resolve_bucket(tenant, name).await?;
                    txn = txn.require_equals(Table::Buckets, b.key, b.raw);
                    Self::quota_key(tenant, Some(b.record.id))
                }
                None => Self::quota_key(tenant, None),
            };
            txn = match &quota {
                Some(q) => txn.put(Table::Quotas, key, encode(q)),
                None => txn.delete(Table::Quotas, key),
            };
            match self.meta().commit(txn).await {
                Ok(()) => return Ok(()),
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("the bucket kept changing, retry".into()))
    }

    /// Current usage and quotas of a tenant and each of its buckets.
    pub async fn usage(&self, tenant: TenantId, bucket: Option<&str>) -> Result<TenantUsage> {
        let meta = self.meta();
        let usage = read_figures(&**meta, |k| tenant_counter(tenant, k)).await?;
        let quota = meta.get_record(Table::Quotas, &Self::quota_key(tenant, None)).await.map_err(meta_error)?;
        let mut buckets = Vec::new();
        let records = match bucket {
            Some(name) => vec![self.resolve_bucket(tenant, name).await?.record],
            None => self.list_buckets_of(tenant).await?,
        };
        for b in records {
            let usage = read_figures(&**meta, |k| bucket_counter(tenant, b.id, k)).await?;
            let quota =
                meta.get_record(Table::Quotas, &Self::quota_key(tenant, Some(b.id))).await.map_err(meta_error)?;
            buckets.push(BucketUsage { bucket: b.name.to_string(), usage, quota });
        }
        Ok(TenantUsage { usage, quota, buckets })
    }

    /// What a bucket holds: its objects (the records of the blob layout; for
    /// a mapped bucket, a listing of its backend location, which includes what
    /// other tools wrote there), and the parts of its unfinished multipart
    /// uploads (which count as stored bytes).
    async fn tally(&self, b: &BucketRecord) -> Result<UsageFigures> {
        let bucket = b.id;
        let meta = self.meta();
        let mut f = UsageFigures::default();
        if let Some(m) = &b.mapped {
            let backend = self.backend(&b.backend)?;
            let mut after: Option<String> = None;
            loop {
                let req =
                    ListRequest { prefix: m.prefix.clone(), delimiter: false, start_after: after.take(), max: 1000 };
                let page = backend.list(&req).await.map_err(|e| Error::Unavailable(e.to_string()))?;
                for o in &page.objects {
                    f.bytes += o.size;
                    f.objects += 1;
                }
                match page.objects.last() {
                    Some(last) if page.truncated => after = Some(last.path.clone()),
                    _ => break,
                }
            }
        }
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = meta
                .scan_prefix(Table::Objects, bucket.as_bytes(), after.as_deref(), 1000)
                .await
                .map_err(meta_error)?;
            let done = rows.len() < 1000;
            for (k, v) in rows {
                let rec: crate::records::ObjectRecord = decode(&v).map_err(meta_error)?;
                f.bytes += rec.size;
                f.objects += 1;
                after = Some(k);
            }
            if done {
                break;
            }
        }
        for (_, v) in meta.scan_prefix(Table::Uploads, bucket.as_bytes(), None, usize::MAX).await.map_err(meta_error)? {
            let up: crate::records::UploadRecord = decode(&v).map_err(meta_error)?;
            for (_, pv) in
                meta.scan_prefix(Table::Parts, up.id.as_bytes(), None, usize::MAX).await.map_err(meta_error)?
            {
                f.bytes += decode::<crate::records::PartRecord>(&pv).map_err(meta_error)?.size;
            }
        }
        Ok(f)
    }

    /// Recompute a tenant's usage from its records and report drift; with
    /// `fix`, correct the counters. Each correction is conditional on the
    /// scope's change sequence being what it was before the scan, so a
    /// write that lands during the scan makes it scan again instead of
    /// writing a stale figure.
    pub async fn recount(&self, tenant: TenantId, fix: bool) -> Result<Vec<Drift>> {
        let meta = self.meta().clone();
        let mut out = Vec::new();
        let mut sum = UsageFigures::default();
        for b in self.list_buckets_of(tenant).await? {
            let mut done = false;
            for _ in 0..RECOUNT_RETRIES {
                let seq_key = bucket_counter(tenant, b.id, SEQ);
                let seq = meta.get(Table::Usage, &seq_key).await.map_err(meta_error)?;
                let counted = read_figures(&*meta, |k| bucket_counter(tenant, b.id, k)).await?;
                let actual = self.tally(&b).await?;
                if counted == actual || !fix {
                    out.push(Drift { bucket: Some(b.name.to_string()), counted, actual, corrected: false });
                    sum.bytes += actual.bytes;
                    sum.objects += actual.objects;
                    done = true;
                    break;
                }
                let mut txn = Txn::new().require_current(Table::Usage, seq_key, seq);
                let d = accounting::Charge::new(
                    actual.bytes as i64 - read_counter(&*meta, &bucket_counter(tenant, b.id, BYTES)).await?,
                    actual.objects as i64 - read_counter(&*meta, &bucket_counter(tenant, b.id, OBJECTS)).await?,
                );
                // Only the bucket's counters: the tenant's are recounted below.
                txn.push_add(Table::Usage, bucket_counter(tenant, b.id, BYTES), d.bytes);
                txn.push_add(Table::Usage, bucket_counter(tenant, b.id, OBJECTS), d.objects);
                txn.push_add(Table::Usage, bucket_counter(tenant, b.id, SEQ), 1);
                match meta.commit(txn).await {
                    Ok(()) => {
                        out.push(Drift { bucket: Some(b.name.to_string()), counted, actual, corrected: true });
                        sum.bytes += actual.bytes;
                        sum.objects += actual.objects;
                        done = true;
                        break;
                    }
                    Err(MetaError::Conflict) => continue,
                    Err(e) => return Err(meta_error(e)),
                }
            }
            if !done {
                return Err(Error::Unavailable("the bucket kept changing during the recount, retry".into()));
            }
        }
        // The tenant's counters are the sum of its buckets'.
        for _ in 0..RECOUNT_RETRIES {
            let seq_key = tenant_counter(tenant, SEQ);
            let seq = meta.get(Table::Usage, &seq_key).await.map_err(meta_error)?;
            let mut actual = UsageFigures::default();
            for b in self.list_buckets_of(tenant).await? {
                let f = read_figures(&*meta, |k| bucket_counter(tenant, b.id, k)).await?;
                actual.bytes += f.bytes;
                actual.objects += f.objects;
            }
            let counted = read_figures(&*meta, |k| tenant_counter(tenant, k)).await?;
            if counted == actual || !fix {
                let actual = if fix { actual } else { sum };
                out.push(Drift { bucket: None, counted, actual, corrected: false });
                return Ok(out);
            }
            let mut txn = Txn::new().require_current(Table::Usage, seq_key, seq);
            txn.push_add(
                Table::Usage,
                tenant_counter(tenant, BYTES),
                actual.bytes as i64 - read_counter(&*meta, &tenant_counter(tenant, BYTES)).await?,
            );
            txn.push_add(
                Table::Usage,
                tenant_counter(tenant, OBJECTS),
                actual.objects as i64 - read_counter(&*meta, &tenant_counter(tenant, OBJECTS)).await?,
            );
            txn.push_add(Table::Usage, tenant_counter(tenant, SEQ), 1);
            match meta.commit(txn).await {
                Ok(()) => {
                    out.push(Drift { bucket: None, counted, actual, corrected: true });
                    return Ok(out);
                }
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("the tenant kept changing during the recount, retry".into()))
    }
}

/// The authorised operations of the admin API over quotas and usage.
impl AdminService {
    /// A quota of a tenant (bucket None) or a bucket. Anyone who may read
    /// the tenant (its tenant-admin, an operator) may read it.
    pub async fn get_quota(&self, caller: &Caller, tenant: &str, bucket: Option<&str>) -> Result<Option<Quota>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        self.ns().quota(t.id, bucket).await
    }

    /// Set or clear a quota: operators only.
    pub async fn set_quota(
        &self,
        caller: &Caller,
        tenant: &str,
        bucket: Option<&str>,
        quota: Option<(Option<u64>, Option<u64>, QuotaKind)>,
    ) -> Result<Option<Quota>> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, tenant).await?;
        let quota =
            quota.map(|(max_bytes, max_objects, kind)| Quota { max_bytes, max_objects, kind, updated_ms: now_ms() });
        self.ns().set_quota(t.id, bucket, quota.clone()).await?;
        Ok(quota)
    }

    pub async fn usage(&self, caller: &Caller, tenant: &str, bucket: Option<&str>) -> Result<TenantUsage> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        self.ns().usage(t.id, bucket).await
    }

    /// Recount a tenant's usage from its records: operators only.
    pub async fn recount(&self, caller: &Caller, tenant: &str, fix: bool) -> Result<Vec<Drift>> {
        authorize_admin(caller, AdminAction::ManageTenants)?;
        let t = self.target(caller, tenant).await?;
        self.ns().recount(t.id, fix).await
    }

    /// Hourly metering records whose hour starts in `from_ms..to_ms`.
    pub async fn usage_report(
        &self,
        caller: &Caller,
        tenant: &str,
        bucket: Option<&str>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<MeterRecord>> {
        let t = self.target(caller, tenant).await?;
        authorize_admin(caller, AdminAction::ReadTenant(t.id))?;
        if from_ms > to_ms {
            return Err(Error::InvalidArgument("`from` is after `to`".into()));
        }
        self.ns().meter().report(t.id, bucket, from_ms, to_ms).await
    }
}
