//! The satellite side: object operations on buckets homed at other sites.
//! Records and listing pages are served from this site's memory while a
//! read lease vouches for them, fetched from home (and kept) under a lease,
//! or read through from home without one; object bytes are cached in the
//! site's chunk cache under the object's version, which never changes, so
//! chunks need no invalidation. Writes are forwarded to home with their
//! bytes streaming, and acknowledged only once home committed them (after
//! invalidating every lease, this site's included).

use super::wire::*;
use super::{Sites, held};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orbit_backend::ByteStream;
use orbit_core::{
    BucketRecord, CopySource, GetObject, ListPage, ListQuery, MetadataDirective, Namespace, ObjectBody, ObjectRecord,
    PutObject, RemoteBuckets, WriteConditions,
};
use orbit_core::{
    ChecksumAlgorithm, ChecksumKind, CompletedPart, ContentHeaders, ExpectedChecksum, PartRecord, PartsPage,
    UploadRecord, UploadsPage,
};
use orbit_peer::{DataBody, PeerError};
use orbit_site::{LeaseScope, Message, MonoTime, ReadPlan, SatelliteEvent, SatelliteSite, SiteId};
use orbit_tenancy::Caller;
use orbit_types::{BucketId, Error, ObjectKey, Resource, Result, TenantId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Chunk size for reads of remote objects when the site has no cache.
const UNCACHED_CHUNK: u64 = 4 << 20;
/// Chunks fetched ahead of the one being sent.
const READ_AHEAD: usize = 2;
/// How many times a read starts over when the object changes at home under it.
const MAX_RESTARTS: usize = 3;

/// One listing query, as its page is kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PageKey {
    prefix: String,
    delimiter: Option<String>,
    start_after: Option<String>,
    max_keys: usize,
}

impl PageKey {
    fn of(q: &ListQuery) -> Self {
        Self {
            prefix: q.prefix.clone(),
            delimiter: q.delimiter.clone(),
            start_after: q.start_after.clone(),
            max_keys: q.max_keys,
        }
    }
}

/// The satellite state machine and the values its cached entries stand for.
/// A value is served only while the state machine says its entry is cached
/// under a valid lease; values it no longer vouches for are pruned at ticks.
pub(crate) struct SatState {
    pub(crate) site: SatelliteSite,
    records: HashMap<(BucketId, String), Option<ObjectRecord>>,
    pages: HashMap<(BucketId, PageKey), ListPage>,
}

impl SatState {
    pub(crate) fn new(site: SatelliteSite) -> Self {
        Self { site, records: HashMap::new(), pages: HashMap::new() }
    }

    pub(crate) fn tick(&mut self, now: MonoTime) -> Vec<SatelliteEvent> {
        let events = self.site.tick(now);
        let site = &self.site;
        self.records.retain(|(b, k), _| ObjectKey::new(k).is_ok_and(|k| site.is_cached(*b, &k)));
        self.pages.retain(|(b, p), _| site.is_listing_cached(*b, &p.prefix));
        super::metrics::set_held(site.valid_leases(now).len());
        events
    }

    pub(crate) fn on_message(
        &mut self,
        now: MonoTime,
        from: &SiteId,
        message: Message,
        stats: &super::LeaseStats,
    ) -> Vec<SatelliteEvent> {
        if matches!(message, Message::Invalidate { .. }) {
            stats.count_invalidation_received();
        }
        self.site.on_message(now, from, message)
    }
}

/// orbit-core's satellite path, over [`SatelliteSite`] and the data routes.
pub(crate) struct Remote {
    pub(crate) sites: Sites,
}

/// The object changed at home between its record and its bytes.
#[derive(Debug, thiserror::Error)]
#[error("the object changed at its home site")]
struct Changed;

/// Travels as a kind of its own too, as the chunk cache keeps only the kind
/// of a fetcher's error.
const CHANGED_KIND: std::io::ErrorKind = std::io::ErrorKind::StaleNetworkFileHandle;

fn changed() -> std::io::Error {
    std::io::Error::new(CHANGED_KIND, Changed)
}

fn is_changed(e: &std::io::Error) -> bool {
    e.kind() == CHANGED_KIND || e.get_ref().is_some_and(|i| i.is::<Changed>())
}

/// Whether a data operation only reads at home (no write gate to wait for).
fn is_read(op: &str) -> bool {
    [OP_RECORD, OP_LIST, OP_BYTES, OP_MP_PARTS, OP_MP_UPLOADS].contains(&op)
}

/// Time to allow for `bytes` on top of the message timeout.
fn transfer_allowance(bytes: u64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(bytes as f64 / 10e6)
}

pub(crate) fn bucket_ref(b: &BucketRecord) -> BucketRef {
    BucketRef { tenant: b.tenant_id, name: b.name.as_str().to_owned(), id: b.id }
}

fn home_of(b: &BucketRecord) -> SiteId {
    SiteId::new(b.home_site.clone())
}

fn forwarder(c: &Caller) -> Forwarder {
    Forwarder { access_key_id: c.access_key_id.clone(), tenant: c.tenant_id, user: c.user_id }
}

fn unreachable(home: &SiteId, e: PeerError) -> Error {
    // Never a stale answer: without home, only what a valid lease vouches for is served.
    Error::Unavailable(format!("the bucket's home site `{home}` cannot be reached: {e}"))
}

/// Whether the answer to a fetch came from the incarnation of home that
/// granted the lease it is made under: a home that restarted (or an old
/// process still answering) knows nothing of that lease's invalidations.
fn same_incarnation(site: &SatelliteSite, fetch: orbit_site::FetchId, epoch: u64) -> bool {
    site.fetch_lease(fetch).is_some_and(|l| l.epoch == epoch)
}

fn poisoned() -> Error {
    Error::Internal("satellite lease state poisoned".into())
}

impl Sites {
    /// One data request to `home`, its answer decoded or its error restored.
    async fn call<T: DeserializeOwned>(
        &self,
        home: &SiteId,
        op: &str,
        description: &impl Serialize,
        body: Option<DataBody>,
    ) -> Result<(T, Bytes)> {
        self.call_expecting(home, op, description, body, None).await
    }

    /// [`Self::call`] for an answer of about `expected_bytes` bytes. A read
    /// that home redirects to the holder of a write lease is asked there.
    pub(crate) async fn call_expecting<T: DeserializeOwned>(
        &self,
        home: &SiteId,
        op: &str,
        description: &impl Serialize,
        body: Option<DataBody>,
        expected_bytes: Option<u64>,
    ) -> Result<(T, Bytes)> {
        let description = serde_json::to_vec(description).map_err(|e| Error::Internal(e.to_string()))?;
        // Nothing is sent to a home that stopped answering, so a refused
        // write here was surely not applied there.
        if self.looks_unreachable(home) {
            return Err(Error::Unavailable(format!(
                "the bucket's home site `{home}` is not answering; retry once it is back"
            )));
        }
        // Every exchange is bounded, so a satellite cut off from home answers
        // its clients (503) within about one message timeout instead of
        // holding them: bytes add time at a modest 10 MB/s, and a write adds
        // the longest home's gate may wait (an unreachable holder's lease).
        // A body of unknown length streams as long as it takes.
        let gate = if is_read(op) {
            std::time::Duration::ZERO
        } else {
            self.inner.timing.surely_expired_after(self.inner.timing.read_lease)
        };
        let sized = body.is_none() || expected_bytes.is_some();
        let timeout =
            sized.then(|| self.inner.message_timeout + transfer_allowance(expected_bytes.unwrap_or(0)) + gate);
        let mut body = body;
        let mut target = home.clone();
        for hop in 0..2 {
            let answer = self.inner.peers.data(&target, op, description.clone(), body.take(), timeout).await;
            self.note_reach(&target, &answer);
            let answer = answer.map_err(|e| unreachable(&target, e))?;
            return match answer.status {
                STATUS_OK => {
                    let v = serde_json::from_slice(&answer.description)
                        .map_err(|e| Error::Unavailable(format!("unreadable answer from `{target}`: {e}")))?;
                    Ok((v, answer.body))
                }
                STATUS_ERROR => {
                    let e: WireError = serde_json::from_slice(&answer.description)
                        .map_err(|e| Error::Unavailable(format!("unreadable error from `{target}`: {e}")))?;
                    Err(e.into())
                }
                STATUS_REDIRECT if hop == 0 && is_read(op) => {
                    let r: RedirectAnswer = serde_json::from_slice(&answer.description)
                        .map_err(|e| Error::Unavailable(format!("unreadable redirect from `{target}`: {e}")))?;
                    metrics::counter!("orbit_lease_redirected_reads_total").increment(1);
                    target = SiteId::new(r.holder);
                    if target == self.inner.me {
                        return Err(Error::Unavailable("home redirects this site's read to itself".into()));
                    }
                    continue;
                }
                s => Err(Error::Unavailable(format!("site `{target}` answered HTTP {s}"))),
            };
        }
        Err(Error::Unavailable("too many redirects between sites".into()))
    }

    /// Asks home for a read lease over the whole bucket (nothing if one is
    /// held or asked for already); the answer arrives on its own.
    fn want_lease(&self, home: &SiteId, bucket: BucketId) {
        let now = self.inner.clock.now();
        let events = self
            .inner
            .sat
            .lock()
            .map(|mut s| s.site.request_read_lease(now, home, LeaseScope::bucket(bucket)))
            .unwrap_or_default();
        self.sat_events(events);
    }

    /// Drops the record of `key` kept under a lease (always safe: the next
    /// read asks home again).
    fn forget_record(&self, bucket: BucketId, key: &str) {
        if let Ok(mut s) = self.inner.sat.lock() {
            s.records.remove(&(bucket, key.to_owned()));
        }
    }

    /// The record of `key` (none: absent), as the lease protocol allows.
    /// The site holding a write lease over `key` of a bucket homed here.
    fn holder_of(&self, bucket: &BucketRecord, key: &ObjectKey) -> Result<SiteId> {
        let h = self.inner.home.lock().map_err(|_| poisoned())?;
        h.site
            .write_lease_holder(bucket.id, key)
            .ok_or_else(|| Error::Unavailable("the write lease over the key was just given back; retry".into()))
    }

    async fn remote_record(&self, bucket: &BucketRecord, key: &str) -> Result<Option<ObjectRecord>> {
        let home = home_of(bucket);
        let okey = ObjectKey::new(key)?;
        let entry = (bucket.id, key.to_owned());
        let req = RecordRequest { bucket: bucket_ref(bucket), key: key.to_owned() };
        // Homed here, leased to another site: that site is the authority.
        if home == self.inner.me {
            let holder = self.holder_of(bucket, &okey)?;
            metrics::counter!("orbit_lease_redirected_reads_total").increment(1);
            return Ok(self.call::<RecordAnswer>(&holder, OP_RECORD, &req, None).await?.0.record);
        }
        let plan = {
            let mut s = self.inner.sat.lock().map_err(|_| poisoned())?;
            let now = self.inner.clock.now();
            match s.site.read(now, bucket.id, &okey) {
                ReadPlan::Cached => match s.records.get(&entry) {
                    Some(v) => {
                        self.inner.stats.count_read("record", "hit");
                        return Ok(v.clone());
                    }
                    None => ReadPlan::ReadThrough,
                },
                p => p,
            }
        };
        match plan {
            ReadPlan::Local => self.held_record(bucket, key).await,
            ReadPlan::Fetch(id) => {
                self.inner.stats.count_read("record", "fetch");
                let answer = self.call::<RecordAnswer>(&home, OP_RECORD, &req, None).await;
                let mut s = self.inner.sat.lock().map_err(|_| poisoned())?;
                let now = self.inner.clock.now();
                match answer {
                    Ok((a, _)) => {
                        let cacheable = a.cacheable && same_incarnation(&s.site, id, a.epoch);
                        if s.site.complete_fetch(now, id, cacheable) {
                            s.records.insert(entry, a.record.clone());
                        }
                        Ok(a.record)
                    }
                    Err(e) => {
                        s.site.complete_fetch(now, id, false);
                        Err(e)
                    }
                }
            }
            _ => {
                self.inner.stats.count_read("record", "read_through");
                self.want_lease(&home, bucket.id);
                Ok(self.call::<RecordAnswer>(&home, OP_RECORD, &req, None).await?.0.record)
            }
        }
    }

    async fn remote_list(&self, bucket: &BucketRecord, q: &ListQuery) -> Result<ListPage> {
        let home = home_of(bucket);
        let entry = (bucket.id, PageKey::of(q));
        if home == self.inner.me {
            // Homed here, a write lease over part of the listing: the holder
            // flushes what it staged there, then lists here.
            let holder = {
                let h = self.inner.home.lock().map_err(|_| poisoned())?;
                match h.site.list(bucket.id, &q.prefix) {
                    orbit_site::HomeRead::Redirect { holder } => holder,
                    orbit_site::HomeRead::Local { .. } => {
                        return Err(Error::Unavailable("the write lease was just given back; retry".into()));
                    }
                }
            };
            let req = ListRequest::new(bucket_ref(bucket), q);
            return Ok(self.call::<ListAnswer>(&holder, OP_LIST, &req, None).await?.0.page.into());
        }
        let plan = {
            let mut s = self.inner.sat.lock().map_err(|_| poisoned())?;
            let now = self.inner.clock.now();
            match s.site.list(now, bucket.id, &q.prefix) {
                ReadPlan::Cached => match s.pages.get(&entry) {
                    Some(p) => {
                        self.inner.stats.count_read("listing", "hit");
                        return Ok(p.clone());
                    }
                    None => s.site.refetch_listing(now, bucket.id, &q.prefix),
                },
                p => p,
            }
        };
        if plan == ReadPlan::Local {
            return self.held_list(bucket, q).await;
        }
        let req = ListRequest::new(bucket_ref(bucket), q);
        match plan {
            ReadPlan::Fetch(id) => {
                self.inner.stats.count_read("listing", "fetch");
                let answer = self.call::<ListAnswer>(&home, OP_LIST, &req, None).await;
                let mut s = self.inner.sat.lock().map_err(|_| poisoned())?;
                let now = self.inner.clock.now();
                match answer {
                    Ok((a, _)) => {
                        let page: ListPage = a.page.into();
                        let cacheable = a.cacheable && same_incarnation(&s.site, id, a.epoch);
                        if s.site.complete_fetch(now, id, cacheable) {
                            s.pages.insert(entry, page.clone());
                        }
                        Ok(page)
                    }
                    Err(e) => {
                        s.site.complete_fetch(now, id, false);
                        Err(e)
                    }
                }
            }
            _ => {
                self.inner.stats.count_read("listing", "read_through");
                self.want_lease(&home, bucket.id);
                Ok(self.call::<ListAnswer>(&home, OP_LIST, &req, None).await?.0.page.into())
            }
        }
    }

    /// One chunk of a version of an object, from the site that has it
    /// (home, or the write-lease holder that staged it).
    async fn fetch_chunk(
        self,
        bucket: BucketRef,
        home: SiteId,
        key: String,
        version: String,
        range: Range<u64>,
    ) -> std::io::Result<Bytes> {
        let want = (range.end - range.start) as usize;
        self.inner.stats.count_chunk_fetched();
        let req = BytesRequest { bucket, key, version, start: range.start, end: range.end };
        match self.call_expecting::<serde_json::Value>(&home, OP_BYTES, &req, None, Some(want as u64)).await {
            Ok((_, bytes)) if bytes.len() == want => Ok(bytes),
            Ok((_, bytes)) => Err(std::io::Error::other(format!("home sent {} of {want} bytes", bytes.len()))),
            Err(Error::PreconditionFailed) => Err(changed()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// Bytes `span` of `rec`: chunk by chunk from this site's cache or from
    /// home, the first before returning (so home being down is a 503, not a
    /// truncated body), the rest read ahead.
    async fn remote_stream(
        &self,
        bucket: &BucketRecord,
        key: &str,
        rec: &ObjectRecord,
        span: Range<u64>,
    ) -> std::io::Result<ByteStream> {
        if span.is_empty() {
            return Ok(futures::stream::empty().boxed());
        }
        let as_io = |e: Error| match e {
            Error::PreconditionFailed => changed(),
            e => std::io::Error::other(e.to_string()),
        };
        // Staged here under a write lease, or home's own (a read of a leased
        // key at home that the holder answered from home's copy): local bytes.
        let source = match held::staged_by(&rec.version) {
            Some(site) => SiteId::new(site),
            None => home_of(bucket),
        };
        if source == self.inner.me {
            return if held::staged_by(&rec.version).is_some() {
                self.held_bytes(bucket, key, &rec.version, span).await.map_err(as_io)
            } else {
                let ns = self.ns().map_err(as_io)?;
                ns.home_bytes(bucket, key, &rec.version, span).await.map_err(as_io)
            };
        }
        let ns: Option<&Namespace> = self.inner.ns.get();
        let pool = ns.and_then(|n| n.cache());
        let cache = pool.map(|p| p.for_owner(&bucket.tenant_id.to_string()));
        let size = pool.map_or(UNCACHED_CHUNK, |p| p.chunk_size());
        let policy = bucket.chunk_policy(key);
        // The version names the object's bytes forever: chunks never go stale.
        let cache_blob = Arc::<str>::from(format!("site:{}/{}/{}", source, bucket.id, rec.version));
        let (bref, home, version, total) = (bucket_ref(bucket), source, rec.version.clone(), rec.size);
        let key = key.to_owned();
        let sites = self.clone();
        let read = move |index: u64| {
            let chunk = index * size..((index + 1) * size).min(total);
            let fetch = sites.clone().fetch_chunk(bref.clone(), home.clone(), key.clone(), version.clone(), chunk);
            let cache = cache.clone();
            let cache_blob = cache_blob.clone();
            async move {
                match cache {
                    Some(c) => c.get_or_fetch_with(&cache_blob, index, policy, move || fetch).await,
                    None => fetch.await,
                }
            }
        };
        let first_index = span.start / size;
        let last = span.end.div_ceil(size);
        let slice = move |index: u64, data: Bytes| {
            let base = index * size;
            let from = (span.start.max(base) - base) as usize;
            let to = ((span.end.min(base + size)) - base).min(data.len() as u64) as usize;
            data.slice(from..to)
        };
        let first = slice(first_index, read(first_index).await?);
        let rest = futures::stream::iter(first_index + 1..last)
            .map(move |i| {
                let r = read(i);
                async move { r.await.map(|d| slice(i, d)) }
            })
            .buffered(READ_AHEAD);
        Ok(futures::stream::once(futures::future::ready(Ok(first))).chain(rest).boxed())
    }
}

/// A body that checks an `aws-chunked` trailer checksum as it streams (home
/// cannot see the trailer, which arrives after the body): a mismatch ends the
/// body with an error, so home stores nothing.
fn check_trailer(body: ByteStream, checksum: &mut ExpectedChecksum, mismatch: Arc<Mutex<bool>>) -> ByteStream {
    let (Some(alg), None, Some(trailer)) = (checksum.algorithm, &checksum.value, checksum.trailer.take()) else {
        return body;
    };
    let hasher = Arc::new(Mutex::new(Some(orbit_core::checksum::Hasher::new(alg))));
    let feed = hasher.clone();
    let checked = body.inspect_ok(move |b| {
        if let Ok(mut h) = feed.lock()
            && let Some(h) = h.as_mut()
        {
            h.update(b);
        }
    });
    let end = futures::stream::once(async move {
        let got = hasher.lock().ok().and_then(|mut h| h.take()).map(|h| h.finish_base64());
        match (trailer(), got) {
            (Some(want), Some(got)) if want.trim() != got => {
                if let Ok(mut m) = mismatch.lock() {
                    *m = true;
                }
                Err(std::io::Error::other("the trailer checksum does not match the body"))
            }
            _ => Ok(Bytes::new()),
        }
    });
    checked.chain(end).try_filter(|b| futures::future::ready(!b.is_empty())).boxed()
}

#[async_trait]
impl RemoteBuckets for Remote {
    async fn head_object(
        &self,
        _caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        get: &GetObject,
    ) -> Result<(ObjectRecord, Option<Range<u64>>)> {
        let rec = self.sites.remote_record(bucket, key).await?.ok_or(Error::NotFound(Resource::Object))?;
        let range = Namespace::check_read(&rec, get)?;
        Ok((rec, range))
    }

    async fn get_object(
        &self,
        _caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        get: &GetObject,
    ) -> Result<ObjectBody> {
        for _ in 0..MAX_RESTARTS {
            let record = self.sites.remote_record(bucket, key).await?.ok_or(Error::NotFound(Resource::Object))?;
            let range = Namespace::check_read(&record, get)?;
            let span = range.clone().unwrap_or(0..record.size);
            match self.sites.remote_stream(bucket, key, &record, span).await {
                Ok(stream) => return Ok(ObjectBody { record, range, stream }),
                // Replaced at home since its record was read: read it again.
                Err(e) if is_changed(&e) => {
                    // Home moved on before its invalidation reached us: the
                    // record kept here is older than home's, so read it again.
                    self.sites.forget_record(bucket.id, key);
                    continue;
                }
                Err(e) => return Err(Error::Unavailable(e.to_string())),
            }
        }
        Err(Error::Unavailable("the object kept changing at its home site, retry".into()))
    }

    async fn warm_object(&self, _tenant: TenantId, bucket: &BucketRecord, key: &str) -> Result<Option<u64>> {
        for _ in 0..MAX_RESTARTS {
            let Some(record) = self.sites.remote_record(bucket, key).await? else { return Ok(None) };
            let mut stream = match self.sites.remote_stream(bucket, key, &record, 0..record.size).await {
                Ok(s) => s,
                Err(e) if is_changed(&e) => {
                    self.sites.forget_record(bucket.id, key);
                    continue;
                }
                Err(e) => return Err(Error::Unavailable(e.to_string())),
            };
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                n += chunk.map_err(|e| Error::Unavailable(e.to_string()))?.len() as u64;
            }
            return Ok(Some(n));
        }
        Err(Error::Unavailable("the object kept changing at its home site, retry".into()))
    }

    async fn list_objects(&self, _tenant: TenantId, bucket: &BucketRecord, q: &ListQuery) -> Result<ListPage> {
        self.sites.remote_list(bucket, q).await
    }

    async fn put_object(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        mut put: PutObject,
    ) -> Result<ObjectRecord> {
        if self.sites.holds(bucket.id, key).is_some() {
            return self.sites.held_put(bucket, key, put).await;
        }
        self.sites.inner.stats.count_forwarded("put");
        let mismatch = Arc::new(Mutex::new(false));
        let body = std::mem::replace(&mut put.body, futures::stream::empty().boxed());
        let body = check_trailer(body, &mut put.checksum, mismatch.clone());
        let req = PutRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            key: key.to_owned(),
            content_length: put.content_length,
            headers: put.headers,
            user_metadata: put.user_metadata,
            content_md5: put.content_md5,
            checksum_algorithm: put.checksum.algorithm,
            checksum_value: put.checksum.value,
            conditions: Conditions { if_match: put.conditions.if_match, if_none_match: put.conditions.if_none_match },
        };
        let length = req.content_length;
        let result =
            self.sites.call_expecting::<ObjectRecord>(&home_of(bucket), OP_PUT, &req, Some(body), length).await;
        if mismatch.lock().is_ok_and(|m| *m) {
            return Err(Error::BadDigest("the checksum you specified did not match the calculated checksum".into()));
        }
        result.map(|(r, _)| r)
    }

    async fn delete_object(&self, caller: &Caller, bucket: &BucketRecord, key: &str) -> Result<()> {
        if self.sites.holds(bucket.id, key).is_some() {
            return self.sites.held_delete(bucket, key).await;
        }
        self.sites.inner.stats.count_forwarded("delete");
        let req = DeleteRequest { caller: forwarder(caller), bucket: bucket_ref(bucket), key: key.to_owned() };
        self.sites.call::<()>(&home_of(bucket), OP_DELETE, &req, None).await.map(|_| ())
    }

    async fn create_upload(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        headers: ContentHeaders,
        user_metadata: std::collections::BTreeMap<String, String>,
        checksum_algorithm: Option<ChecksumAlgorithm>,
        checksum_kind: Option<ChecksumKind>,
    ) -> Result<UploadRecord> {
        self.sites.inner.stats.count_forwarded("create_upload");
        let req = CreateUploadRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            key: key.to_owned(),
            headers,
            user_metadata,
            checksum_algorithm,
            checksum_kind,
        };
        self.sites.call(&home_of(bucket), OP_MP_CREATE, &req, None).await.map(|(r, _)| r)
    }

    async fn upload_part(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        upload_id: &str,
        number: u32,
        body: ByteStream,
        content_length: Option<u64>,
        content_md5: Option<&str>,
        mut checksum: ExpectedChecksum,
    ) -> Result<PartRecord> {
        self.sites.inner.stats.count_forwarded("upload_part");
        let mismatch = Arc::new(Mutex::new(false));
        let body = check_trailer(body, &mut checksum, mismatch.clone());
        let req = PartRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            number,
            content_length,
            content_md5: content_md5.map(str::to_owned),
            checksum_algorithm: checksum.algorithm,
            checksum_value: checksum.value,
        };
        let result = self
            .sites
            .call_expecting::<PartRecord>(&home_of(bucket), OP_MP_PART, &req, Some(body), content_length)
            .await;
        if mismatch.lock().is_ok_and(|m| *m) {
            return Err(Error::BadDigest("the checksum you specified did not match the calculated checksum".into()));
        }
        result.map(|(r, _)| r)
    }

    async fn complete_upload(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
        conditions: WriteConditions,
        expected_checksum: Option<(ChecksumAlgorithm, String)>,
    ) -> Result<ObjectRecord> {
        self.sites.write_through_barrier(bucket, key).await?;
        self.sites.inner.stats.count_forwarded("complete_upload");
        let req = CompleteRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            parts: parts.into_iter().map(|p| (p.number, p.etag, p.checksum)).collect(),
            conditions: Conditions { if_match: conditions.if_match, if_none_match: conditions.if_none_match },
            expected_checksum,
        };
        self.sites.call(&home_of(bucket), OP_MP_COMPLETE, &req, None).await.map(|(r, _)| r)
    }

    async fn abort_upload(&self, caller: &Caller, bucket: &BucketRecord, key: &str, upload_id: &str) -> Result<()> {
        self.sites.inner.stats.count_forwarded("abort_upload");
        let req = UploadRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            after: None,
            max: 0,
        };
        self.sites.call::<()>(&home_of(bucket), OP_MP_ABORT, &req, None).await.map(|_| ())
    }

    async fn list_parts(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        upload_id: &str,
        after: Option<u32>,
        max: usize,
    ) -> Result<PartsPage> {
        let req = UploadRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            key: key.to_owned(),
            upload_id: upload_id.to_owned(),
            after,
            max,
        };
        let (p, _) = self.sites.call::<WirePartsPage>(&home_of(bucket), OP_MP_PARTS, &req, None).await?;
        Ok(PartsPage { upload: p.upload, parts: p.parts, is_truncated: p.is_truncated, next_marker: p.next_marker })
    }

    async fn list_uploads(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: usize,
    ) -> Result<UploadsPage> {
        let req = UploadsRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            prefix: prefix.to_owned(),
            delimiter: delimiter.map(str::to_owned),
            key_marker: key_marker.map(str::to_owned),
            upload_id_marker: upload_id_marker.map(str::to_owned),
            max,
        };
        let (p, _) = self.sites.call::<WireUploadsPage>(&home_of(bucket), OP_MP_UPLOADS, &req, None).await?;
        Ok(UploadsPage {
            uploads: p.uploads,
            common_prefixes: p.common_prefixes,
            is_truncated: p.is_truncated,
            next_key_marker: p.next_key_marker,
            next_upload_id_marker: p.next_upload_id_marker,
        })
    }

    async fn copy_object(
        &self,
        caller: &Caller,
        bucket: &BucketRecord,
        key: &str,
        source: &BucketRecord,
        src: CopySource,
        directive: MetadataDirective,
        conditions: WriteConditions,
    ) -> Result<ObjectRecord> {
        if source.home_site != bucket.home_site {
            return Err(Error::NotImplemented("copying between buckets homed at different sites".into()));
        }
        self.sites.write_through_barrier(bucket, key).await?;
        self.sites.inner.stats.count_forwarded("copy");
        let c = src.conditions;
        let req = CopyRequest {
            caller: forwarder(caller),
            bucket: bucket_ref(bucket),
            key: key.to_owned(),
            source_bucket: src.bucket,
            source_key: src.key,
            source_conditions: ReadConditionsWire {
                if_match: c.if_match,
                if_none_match: c.if_none_match,
                if_modified_since: c.if_modified_since,
                if_unmodified_since: c.if_unmodified_since,
            },
            replace: match directive {
                MetadataDirective::Copy => None,
                MetadataDirective::Replace { headers, user_metadata } => Some((headers, user_metadata)),
            },
            conditions: Conditions { if_match: conditions.if_match, if_none_match: conditions.if_none_match },
        };
        self.sites.call::<ObjectRecord>(&home_of(bucket), OP_COPY, &req, None).await.map(|(r, _)| r)
    }
}
