//! Prefetch jobs: warm the chunk cache with a prefix or a list of keys so a
//! training job finds its data hot. Jobs are records in the metadata store,
//! so they are listed, watched and cancelled through the admin API, and a
//! job still running when the process stops resumes where it was.

use crate::Namespace;
use crate::namespace::list::ListQuery;
use futures::StreamExt;
use orbit_meta::{MetaError, MetaStore, MetaStoreExt, Table, Txn, decode, encode};
use orbit_tenancy::meta_error;
use orbit_types::{Error, Resource, Result, TenantId, now_ms};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Objects warmed at once by one job.
const CONCURRENCY: usize = 4;
/// How often a job's progress is written down.
const PERSIST_EVERY: Duration = Duration::from_millis(500);
const LIST_PAGE: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
    Cancelled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Selection {
    /// Every object whose key starts with this prefix.
    Prefix(String),
    /// Exactly these keys (a manifest), in this order.
    Keys(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrefetchJob {
    pub id: String,
    pub tenant_id: TenantId,
    pub bucket: String,
    pub selection: Selection,
    pub state: JobState,
    /// Known once the selection has been counted.
    pub objects_total: Option<u64>,
    pub bytes_total: Option<u64>,
    pub objects_done: u64,
    pub bytes_done: u64,
    /// Objects that could not be read (they are retried by a new job).
    pub errors: u64,
    /// Prefix jobs resume after this key; key-list jobs at `next_index`.
    pub cursor: Option<String>,
    pub next_index: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub message: Option<String>,
}

fn job_key(tenant: TenantId, id: &str) -> Vec<u8> {
    let mut k = tenant.as_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// Starts, tracks and resumes prefetch jobs.
#[derive(Clone)]
pub struct Prefetcher {
    ns: Namespace,
    meta: Arc<dyn MetaStore>,
    /// Jobs with a worker in this process.
    running: Arc<Mutex<HashMap<String, tokio::task::AbortHandle>>>,
}

impl Prefetcher {
    pub fn new(ns: Namespace, meta: Arc<dyn MetaStore>) -> Self {
        Self { ns, meta, running: Arc::default() }
    }

    pub async fn start(&self, tenant: TenantId, bucket: &str, selection: Selection) -> Result<PrefetchJob> {
        if self.ns.cache().is_none() {
            return Err(Error::InvalidRequest("the chunk cache is disabled on this site".into()));
        }
        if let Selection::Keys(keys) = &selection
            && keys.is_empty()
        {
            return Err(Error::InvalidArgument("a manifest must name at least one key".into()));
        }
        self.ns.resolve_bucket(tenant, bucket).await?;
        let now = now_ms();
        let job = PrefetchJob {
            id: orbit_types::new_blob_id(),
            tenant_id: tenant,
            bucket: bucket.to_owned(),
            selection,
            state: JobState::Running,
            objects_total: None,
            bytes_total: None,
            objects_done: 0,
            bytes_done: 0,
            errors: 0,
            cursor: None,
            next_index: 0,
            created_ms: now,
            updated_ms: now,
            message: None,
        };
        let raw = encode(&job);
        self.meta
            .commit(Txn::new().put(Table::Jobs, job_key(tenant, &job.id), raw.clone()))
            .await
            .map_err(meta_error)?;
        self.spawn(job.clone(), raw);
        Ok(job)
    }

    pub async fn get(&self, tenant: TenantId, id: &str) -> Result<PrefetchJob> {
        self.meta
            .get_record(Table::Jobs, &job_key(tenant, id))
            .await
            .map_err(meta_error)?
            .ok_or(Error::NotFound(Resource::Job))
    }

    pub async fn list(&self, tenant: TenantId) -> Result<Vec<PrefetchJob>> {
        let rows = self.meta.scan_prefix(Table::Jobs, tenant.as_bytes(), None, usize::MAX).await.map_err(meta_error)?;
        let mut jobs: Vec<PrefetchJob> =
            rows.into_iter().map(|(_, v)| decode(&v).map_err(meta_error)).collect::<Result<_>>()?;
        jobs.sort_by_key(|j| j.created_ms);
        Ok(jobs)
    }

    /// Cancel a running job; a finished one is returned as it is.
    pub async fn cancel(&self, tenant: TenantId, id: &str) -> Result<PrefetchJob> {
        loop {
            let key = job_key(tenant, id);
            let raw =
                self.meta.get(Table::Jobs, &key).await.map_err(meta_error)?.ok_or(Error::NotFound(Resource::Job))?;
            let mut job: PrefetchJob = decode(&raw).map_err(meta_error)?;
            if job.state != JobState::Running {
                return Ok(job);
            }
            job.state = JobState::Cancelled;
            job.updated_ms = now_ms();
            job.message = Some("cancelled".into());
            let txn = Txn::new().require_equals(Table::Jobs, key.clone(), raw).put(Table::Jobs, key, encode(&job));
            match self.meta.commit(txn).await {
                Ok(()) => {
                    if let Some(h) = self.running.lock().ok().and_then(|mut r| r.remove(id)) {
                        h.abort();
                    }
                    return Ok(job);
                }
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
    }

    /// Restart the workers of jobs that were running when the process stopped.
    pub async fn resume_all(&self) -> Result<usize> {
        let rows = self.meta.scan_prefix(Table::Jobs, b"", None, usize::MAX).await.map_err(meta_error)?;
        let mut resumed = 0;
        for (_, raw) in rows {
            let job: PrefetchJob = decode(&raw).map_err(meta_error)?;
            if job.state == JobState::Running {
                tracing::info!(job = %job.id, bucket = %job.bucket, done = job.objects_done, "resuming prefetch job");
                self.spawn(job, raw);
                resumed += 1;
            }
        }
        Ok(resumed)
    }

    fn spawn(&self, job: PrefetchJob, raw: Vec<u8>) {
        let id = job.id.clone();
        let worker = Worker { ns: self.ns.clone(), meta: self.meta.clone(), job, raw };
        let running = self.running.clone();
        let handle = tokio::spawn(async move {
            let id = worker.job.id.clone();
            worker.run().await;
            if let Ok(mut r) = running.lock() {
                r.remove(&id);
            }
        });
        if let Ok(mut r) = self.running.lock() {
            r.insert(id, handle.abort_handle());
        }
    }
}

/// One job's work, with the record as last written so progress updates
/// never overwrite a cancellation.
struct Worker {
    ns: Namespace,
    meta: Arc<dyn MetaStore>,
    job: PrefetchJob,
    raw: Vec<u8>,
}

enum Persist {
    Written,
    /// Someone else changed the record (a cancellation): stop.
    Superseded,
}

impl Worker {
    async fn persist(&mut self) -> Result<Persist> {
        self.job.updated_ms = now_ms();
        let key = job_key(self.job.tenant_id, &self.job.id);
        let raw = encode(&self.job);
        let txn =
            Txn::new().require_equals(Table::Jobs, key.clone(), self.raw.clone()).put(Table::Jobs, key, raw.clone());
        match self.meta.commit(txn).await {
            Ok(()) => {
                self.raw = raw;
                Ok(Persist::Written)
            }
            Err(MetaError::Conflict) => Ok(Persist::Superseded),
            Err(e) => Err(meta_error(e)),
        }
    }

    async fn run(mut self) {
        metrics::gauge!("orbit_prefetch_jobs_running").increment(1.0);
        let outcome = self.work().await;
        metrics::gauge!("orbit_prefetch_jobs_running").decrement(1.0);
        match outcome {
            Ok(Persist::Superseded) => return,
            Ok(Persist::Written) => {
                self.job.state = JobState::Done;
            }
            Err(e) => {
                tracing::warn!(job = %self.job.id, error = %e, "prefetch job failed");
                self.job.state = JobState::Failed;
                self.job.message = Some(e.to_string());
            }
        }
        if let Err(e) = self.persist().await {
            tracing::warn!(job = %self.job.id, error = %e, "could not record the end of a prefetch job");
        }
    }

    /// The keys still to warm, in order, from the resume point.
    async fn keys_from_cursor(&self) -> Result<Vec<String>> {
        match &self.job.selection {
            Selection::Keys(keys) => Ok(keys.iter().skip(self.job.next_index as usize).cloned().collect()),
            Selection::Prefix(prefix) => {
                let mut out = Vec::new();
                let mut after = self.job.cursor.clone();
                loop {
                    let q = ListQuery {
                        prefix: prefix.clone(),
                        delimiter: None,
                        start_after: after.clone(),
                        max_keys: LIST_PAGE,
                    };
                    let page = self.ns.list_objects_of(self.job.tenant_id, &self.job.bucket, &q).await?;
                    out.extend(page.objects.into_iter().map(|(k, _)| k));
                    if !page.is_truncated {
                        return Ok(out);
                    }
                    after = page.next_marker;
                }
            }
        }
    }

    async fn count_totals(&mut self) -> Result<()> {
        let (mut objects, mut bytes) = (0u64, 0u64);
        match self.job.selection.clone() {
            Selection::Keys(keys) => {
                let b = self.ns.resolve_bucket(self.job.tenant_id, &self.job.bucket).await?;
                for k in keys {
                    if let Some((_, rec)) = self.ns.read_object(b.record.id, &k).await? {
                        objects += 1;
                        bytes += rec.size;
                    }
                }
            }
            Selection::Prefix(prefix) => {
                let mut after = None;
                loop {
                    let q =
                        ListQuery { prefix: prefix.clone(), delimiter: None, start_after: after, max_keys: LIST_PAGE };
                    let page = self.ns.list_objects_of(self.job.tenant_id, &self.job.bucket, &q).await?;
                    objects += page.objects.len() as u64;
                    bytes += page.objects.iter().map(|(_, r)| r.size).sum::<u64>();
                    if !page.is_truncated {
                        break;
                    }
                    after = page.next_marker;
                }
            }
        }
        self.job.objects_total = Some(objects);
        self.job.bytes_total = Some(bytes);
        Ok(())
    }

    async fn work(&mut self) -> Result<Persist> {
        if self.job.objects_total.is_none() {
            self.count_totals().await?;
            if let Persist::Superseded = self.persist().await? {
                return Ok(Persist::Superseded);
            }
        }
        let keys = self.keys_from_cursor().await?;
        let (ns, tenant, bucket) = (self.ns.clone(), self.job.tenant_id, self.job.bucket.clone());
        let mut warmed = futures::stream::iter(keys)
            .map(|key| {
                let (ns, bucket) = (ns.clone(), bucket.clone());
                async move {
                    let r = ns.warm_object(tenant, &bucket, &key).await;
                    (key, r)
                }
            })
            .buffered(CONCURRENCY);
        let mut last_persist = tokio::time::Instant::now();
        while let Some((key, result)) = warmed.next().await {
            match result {
                Ok(Some(n)) => {
                    self.job.objects_done += 1;
                    self.job.bytes_done += n;
                    metrics::counter!("orbit_prefetch_objects_total").increment(1);
                    metrics::counter!("orbit_prefetch_bytes_total").increment(n);
                }
                Ok(None) => {}
                Err(Error::NotFound(Resource::Bucket)) => return Err(Error::NotFound(Resource::Bucket)),
                Err(e) => {
                    tracing::debug!(key = %key, error = %e, "prefetch of an object failed");
                    self.job.errors += 1;
                    metrics::counter!("orbit_prefetch_errors_total").increment(1);
                }
            }
            self.job.next_index += 1;
            self.job.cursor = Some(key);
            if last_persist.elapsed() >= PERSIST_EVERY {
                last_persist = tokio::time::Instant::now();
                if let Persist::Superseded = self.persist().await? {
                    return Ok(Persist::Superseded);
                }
            }
        }
        Ok(Persist::Written)
    }
}
