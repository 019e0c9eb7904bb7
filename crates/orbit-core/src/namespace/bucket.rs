use super::access::{require_bucket, require_bucket_admin};
use super::{MAX_CAS_RETRIES, Namespace};
use crate::gc::{SUPERSEDED_GRACE_MS, due_value, gc_key};
use crate::records::{BucketRecord, ObjectRecord, UploadRecord, bucket_key};
use orbit_meta::{MetaError, MetaStoreExt, Table, Txn, decode, encode};
use orbit_tenancy::{Caller, meta_error};
use orbit_types::{BucketId, BucketName, Error, Resource, Result, TenantId, now_ms};

const SCAN_BATCH: usize = 1000;

impl Namespace {
    pub async fn create_bucket(&self, caller: &Caller, name: &str) -> Result<BucketRecord> {
        require_bucket_admin(caller, name)?;
        let name = BucketName::new(name)?;
        if caller.role != orbit_types::Role::Operator {
            self.check_bucket_limit(caller.tenant_id, caller.tenant.as_str()).await?;
        }
        self.create_bucket_in(caller.tenant_id, &caller.tenant, &name, orbit_backend::BackendSet::DEFAULT).await
    }

    /// Create a bucket in a tenant, homed at this site (the caller is
    /// authorised already). At a site that mirrors the directory, the
    /// directory site creates it and its record is applied here before this
    /// returns.
    pub async fn create_bucket_in(
        &self,
        tenant: TenantId,
        tenant_name: &orbit_types::TenantName,
        name: &BucketName,
        backend: &str,
    ) -> Result<BucketRecord> {
        if let Some(d) = self.mirrored_directory() {
            return d.create_bucket(tenant, name, backend).await;
        }
        let home = self.site.clone();
        self.create_bucket_homed(tenant, tenant_name, name, backend, &home).await
    }

    /// Create a bucket record here, homed at `home_site` (at the directory
    /// site, for a bucket another site asked for or an operator placed).
    pub async fn create_bucket_homed(
        &self,
        tenant: TenantId,
        tenant_name: &orbit_types::TenantName,
        name: &BucketName,
        backend: &str,
        home_site: &str,
    ) -> Result<BucketRecord> {
        if !self.has_backend(backend) {
            return Err(Error::InvalidArgument(format!("unknown backend `{backend}`")));
        }
        let rec = BucketRecord {
            id: BucketId::generate(),
            tenant_id: tenant,
            name: name.clone(),
            created_ms: now_ms(),
            home_site: home_site.to_owned(),
            backend: backend.to_owned(),
            cache: Default::default(),
            pinned_prefixes: Vec::new(),
            mapped: None,
        };
        let key = bucket_key(tenant, name);
        let txn = Txn::new()
            // The tenant must still exist, so no bucket outlives a deleted tenant.
            .require_equals(Table::TenantNames, tenant_name.as_str().as_bytes().to_vec(), tenant.as_bytes().to_vec())
            .require_absent(Table::Buckets, key.clone())
            .put(Table::Buckets, key.clone(), encode(&rec));
        match self.meta.commit(txn).await {
            Ok(()) => Ok(rec),
            Err(MetaError::Conflict) => {
                if self.meta.get(Table::Buckets, &key).await.map_err(meta_error)?.is_some() {
                    Err(Error::AlreadyExists(Resource::Bucket))
                } else {
                    Err(Error::NotFound(Resource::Tenant))
                }
            }
            Err(e) => Err(meta_error(e)),
        }
    }

    /// Change how a bucket of a tenant is cached.
    pub async fn set_cache_policy(
        &self,
        tenant: TenantId,
        name: &str,
        policy: crate::records::CachePolicy,
    ) -> Result<BucketRecord> {
        self.update_bucket(tenant, name, |rec| {
            rec.cache = policy;
            Ok(())
        })
        .await
    }

    /// Change a bucket's record with `change`, retried on a concurrent change.
    pub(crate) async fn update_bucket(
        &self,
        tenant: TenantId,
        name: &str,
        change: impl Fn(&mut BucketRecord) -> Result<()>,
    ) -> Result<BucketRecord> {
        for _ in 0..MAX_CAS_RETRIES {
            let b = self.resolve_bucket(tenant, name).await?;
            let mut rec = b.record.clone();
            change(&mut rec)?;
            let txn = Txn::new().require_equals(Table::Buckets, b.key.clone(), b.raw.clone()).put(
                Table::Buckets,
                b.key,
                encode(&rec),
            );
            match self.meta.commit(txn).await {
                Ok(()) => return Ok(rec),
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("the bucket kept changing, retry".into()))
    }

    /// Refuse a new bucket when the tenant holds as many as its operator-set limit allows.
    /// (Checked before the create: concurrent creates can overshoot by the number racing.)
    pub async fn check_bucket_limit(&self, tenant: TenantId, tenant_name: &str) -> Result<()> {
        let limits = orbit_tenancy::tenant_limits(self.meta.as_ref(), tenant).await?;
        if let Some(max) = limits.max_buckets {
            let held = self
                .meta
                .scan_prefix(Table::Buckets, tenant.as_bytes(), None, max as usize + 1)
                .await
                .map_err(meta_error)?
                .len();
            orbit_tenancy::check_limit(Some(max), held, "buckets", tenant_name)?;
        }
        Ok(())
    }

    pub async fn head_bucket(&self, caller: &Caller, name: &str) -> Result<BucketRecord> {
        require_bucket(caller, name)?;
        Ok(self.resolve_bucket(caller.tenant_id, name).await?.record)
    }

    pub async fn list_buckets(&self, caller: &Caller) -> Result<Vec<BucketRecord>> {
        let mut all = self.list_buckets_of(caller.tenant_id).await?;
        // A user limited by grants sees only the buckets it holds a grant on.
        all.retain(|b| caller.grants.allows_bucket(b.name.as_str()));
        Ok(all)
    }

    pub async fn list_buckets_of(&self, tenant: TenantId) -> Result<Vec<BucketRecord>> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = self
                .meta
                .scan_prefix(Table::Buckets, tenant.as_bytes(), after.as_deref(), SCAN_BATCH)
                .await
                .map_err(meta_error)?;
            let done = batch.len() < SCAN_BATCH;
            for (k, v) in batch {
                out.push(decode::<BucketRecord>(&v).map_err(meta_error)?);
                after = Some(k);
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// Delete an empty bucket. Unfinished multipart uploads go with it.
    pub async fn delete_bucket(&self, caller: &Caller, name: &str) -> Result<()> {
        require_bucket_admin(caller, name)?;
        self.delete_bucket_in(caller.tenant_id, name, false).await
    }

    /// Delete a bucket of a tenant; with `force`, its objects are deleted first.
    ///
    /// With several sites only the bucket's home holds its objects, so only
    /// the home can tell that it is empty: the home deletes it locally (one
    /// conditional commit, as on a single site) and then has the directory
    /// site delete the record; any other site asks the directory site, which
    /// deletes only a bucket homed there and otherwise names the home.
    pub async fn delete_bucket_in(&self, tenant: TenantId, name: &str, force: bool) -> Result<()> {
        let Some(d) = self.bucket_directory().cloned() else {
            return self.delete_bucket_here(tenant, name, force, None).await;
        };
        let record = self.resolve_bucket(tenant, name).await?.record;
        if record.home_site != self.site {
            if d.is_directory_site() {
                return Err(homed_elsewhere(&record.home_site));
            }
            return d.delete_bucket(&record).await;
        }
        if d.is_directory_site() {
            return self.delete_bucket_here(tenant, name, force, Some(record.id)).await;
        }
        // Home here, directory elsewhere: the mirror must not bring the
        // record back between the local delete and the directory's.
        d.hold_deleted(&record, true);
        let outcome = async {
            self.delete_bucket_here(tenant, name, force, Some(record.id)).await?;
            if let Err(e) = d.delete_bucket(&record).await {
                // The directory still has it: so does this site, empty.
                let key = crate::records::bucket_key(tenant, &record.name);
                let txn = Txn::new().require_absent(Table::Buckets, key.clone()).put(Table::Buckets, key, encode(&record));
                if let Err(put_back) = self.meta.commit(txn).await {
                    tracing::warn!(error = %put_back, "could not restore a bucket record after a failed deletion; the mirror will");
                }
                return Err(e);
            }
            Ok(())
        }
        .await;
        d.hold_deleted(&record, false);
        outcome
    }

    /// Delete a bucket record and what hangs on it in this site's store
    /// (`expect`: only if it is still that bucket). The caller decided that
    /// this site may (see `delete_bucket_in`).
    pub async fn delete_bucket_here(
        &self,
        tenant: TenantId,
        name: &str,
        force: bool,
        expect: Option<BucketId>,
    ) -> Result<()> {
        for _ in 0..MAX_CAS_RETRIES {
            let b = self.resolve_bucket(tenant, name).await?;
            let id = b.record.id;
            if expect.is_some_and(|e| e != id) {
                return Err(Error::NotFound(Resource::Bucket));
            }
            // Writes staged at another site under a write lease are objects
            // of this bucket this site cannot see yet.
            if self.gate.as_ref().is_some_and(|g| g.listing_held_elsewhere(&b.record, "")) {
                return Err(Error::NotEmpty(Resource::Bucket));
            }
            if force {
                self.purge_objects(tenant, id).await?;
            }
            let mut txn = Txn::new()
                .require_equals(Table::Buckets, b.key.clone(), b.raw.clone())
                .require_prefix_empty(Table::Objects, id.as_bytes().to_vec())
                .delete(Table::Buckets, b.key.clone());
            txn = self.mapped_unmap(txn, &b.record, force).await?;
            crate::usage::accounting::drop_bucket(&*self.meta, &mut txn, tenant, id).await?;
            let due = due_value(now_ms());
            let uploads =
                self.meta.scan_prefix(Table::Uploads, id.as_bytes(), None, usize::MAX).await.map_err(meta_error)?;
            for (k, v) in uploads {
                let up: UploadRecord = decode(&v).map_err(meta_error)?;
                for (pk, pv) in
                    self.meta.scan_prefix(Table::Parts, up.id.as_bytes(), None, usize::MAX).await.map_err(meta_error)?
                {
                    let part: crate::records::PartRecord = decode(&pv).map_err(meta_error)?;
                    txn.push_put(Table::Gc, gc_key(&part.backend, &part.blob), due.clone());
                    txn.push_delete(Table::Parts, pk);
                }
                txn.conditions.push(orbit_meta::Condition::Equals { table: Table::Uploads, key: k.clone(), value: v });
                txn.push_delete(Table::Uploads, k);
            }
            match self.meta.commit(txn).await {
                Ok(()) => {
                    self.gc.wake();
                    return Ok(());
                }
                Err(MetaError::Conflict) => {
                    let any =
                        self.meta.scan_prefix(Table::Objects, id.as_bytes(), None, 1).await.map_err(meta_error)?;
                    if !any.is_empty() && !force {
                        return Err(Error::NotEmpty(Resource::Bucket));
                    }
                }
                Err(e) => return Err(meta_error(e)),
            }
        }
        Err(Error::Unavailable("the bucket kept changing while being deleted".into()))
    }

    /// Delete every object of a bucket (forced bucket or tenant deletion).
    async fn purge_objects(&self, tenant: TenantId, bucket: BucketId) -> Result<()> {
        loop {
            let batch =
                self.meta.scan_prefix(Table::Objects, bucket.as_bytes(), None, SCAN_BATCH).await.map_err(meta_error)?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut txn = Txn::new();
            let due = due_value(now_ms() + SUPERSEDED_GRACE_MS);
            let mut freed = crate::usage::accounting::Charge::default();
            for (k, v) in batch {
                let rec: ObjectRecord = decode(&v).map_err(meta_error)?;
                freed.bytes -= rec.size as i64;
                freed.objects -= 1;
                for (backend, blob) in rec.blobs() {
                    txn.push_put(Table::Gc, gc_key(backend, blob), due.clone());
                }
                txn.conditions.push(orbit_meta::Condition::Equals { table: Table::Objects, key: k.clone(), value: v });
                txn.push_delete(Table::Objects, k);
            }
            crate::usage::accounting::release(&mut txn, tenant, bucket, freed);
            match self.meta.commit(txn).await {
                Ok(()) | Err(MetaError::Conflict) => {}
                Err(e) => return Err(meta_error(e)),
            }
        }
    }

    /// Whether a tenant still holds any bucket.
    pub async fn tenant_has_buckets(&self, tenant: TenantId) -> Result<bool> {
        let any = self.meta.scan_prefix(Table::Buckets, tenant.as_bytes(), None, 1).await.map_err(meta_error)?;
        Ok(!any.is_empty())
    }
}

/// A bucket is deleted at its home site, the one that holds its objects.
fn homed_elsewhere(home: &str) -> Error {
    Error::InvalidRequest(format!("the bucket is homed at site `{home}`: delete it there"))
}
