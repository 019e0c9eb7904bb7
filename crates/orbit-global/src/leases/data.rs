//! The home site's side of the data routes: records, chunks and listing
//! pages with home's verdict on whether a satellite may cache them, and
//! writes forwarded by satellites, applied through the namespace (so through
//! the write gate, the caller's grants and the quotas) as if made here.

use super::Sites;
use super::home::WRITING_FOR;
use super::wire::*;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use orbit_core::{
    BucketRecord, CopySource, ExpectedChecksum, MetadataDirective, PutObject, ReadConditions, WriteConditions,
};
use orbit_peer::{DataAnswer, DataBody, DataHandler};
use orbit_site::{HomeRead, SiteId};
use orbit_tenancy::Caller;
use orbit_types::{Error, ObjectKey, Resource, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) struct HomeData {
    pub(crate) sites: Sites,
}

/// A read answered here, or sent to the site holding a write lease over it.
pub(crate) enum Served<T> {
    Here(T),
    Redirect(SiteId),
}

fn served<T: Serialize>(r: Result<Served<T>>) -> DataAnswer {
    match r {
        Ok(Served::Here(v)) => ok(&v),
        Ok(Served::Redirect(holder)) => {
            metrics::counter!("orbit_lease_redirected_reads_total").increment(1);
            DataAnswer {
                status: STATUS_REDIRECT,
                description: serde_json::to_vec(&RedirectAnswer { holder: holder.0 }).unwrap_or_default(),
                body: Bytes::new(),
            }
        }
        Err(e) => fail(&e),
    }
}

fn ok<T: Serialize>(v: &T) -> DataAnswer {
    DataAnswer { status: STATUS_OK, description: serde_json::to_vec(v).unwrap_or_default(), body: Bytes::new() }
}

fn fail(e: &Error) -> DataAnswer {
    if let Error::Internal(m) | Error::Unavailable(m) = e {
        tracing::warn!(error = %m, "a satellite's request failed at home");
    }
    let wire = WireError::from(e);
    DataAnswer { status: STATUS_ERROR, description: serde_json::to_vec(&wire).unwrap_or_default(), body: Bytes::new() }
}

/// A read sent here as to a write-lease holder, for a key this site holds
/// no lease over (home and this site disagree for a moment: a release or
/// revocation in flight). Never answered from this site's tables.
fn not_holder(asking: &SiteId) -> Error {
    Error::Unavailable(format!("site `{asking}` sent a read here that this site holds no write lease for; retry"))
}

fn parse<T: DeserializeOwned>(description: &[u8]) -> Result<T> {
    serde_json::from_slice(description).map_err(|e| Error::InvalidRequest(format!("malformed data request: {e}")))
}

fn answer<T: Serialize>(r: Result<T>) -> DataAnswer {
    match r {
        Ok(v) => ok(&v),
        Err(e) => fail(&e),
    }
}

impl HomeData {
    async fn bucket(&self, b: &BucketRef) -> Result<BucketRecord> {
        self.sites.ns()?.homed_bucket(b.tenant, &b.name, b.id).await
    }

    /// Home's verdict on a read for `from`: whether the answer may be
    /// cached, or the holder of a write lease that serves it instead (the
    /// holder itself reads here what it has not written).
    fn verdict(&self, read: HomeRead, from: &SiteId) -> std::result::Result<bool, SiteId> {
        match read {
            HomeRead::Local { cacheable } => Ok(cacheable),
            HomeRead::Redirect { holder } if holder == *from => Ok(false),
            HomeRead::Redirect { holder } => Err(holder),
        }
    }

    fn home_read(&self, read: impl FnOnce(&orbit_site::HomeSite) -> HomeRead) -> Result<HomeRead> {
        self.sites
            .inner
            .home
            .lock()
            .map(|h| read(&h.site))
            .map_err(|_| Error::Internal("home lease state poisoned".into()))
    }

    /// A bucket this site holds a write lease in (homed elsewhere).
    async fn held_bucket(&self, b: &BucketRef) -> Result<Option<BucketRecord>> {
        let bucket = self.sites.ns()?.bucket_record(b.tenant, &b.name, Some(b.id)).await?;
        Ok((bucket.home_site != self.sites.inner.me.0).then_some(bucket))
    }

    async fn record(&self, req: RecordRequest, from: &SiteId) -> Result<Served<RecordAnswer>> {
        if let Some(bucket) = self.held_bucket(&req.bucket).await? {
            if self.sites.holds(bucket.id, &req.key).is_none() {
                return Err(not_holder(from));
            }
            let record = self.sites.held_record(&bucket, &req.key).await?;
            return Ok(Served::Here(RecordAnswer { record, cacheable: false, epoch: 0 }));
        }
        let bucket = self.bucket(&req.bucket).await?;
        let key = ObjectKey::new(&req.key)?;
        // The verdict is taken before the read: a write that begins after it
        // invalidates the satellite's lease before it can commit.
        let cacheable = match self.verdict(self.home_read(|h| h.read(bucket.id, &key))?, from) {
            Ok(c) => c,
            Err(holder) => return Ok(Served::Redirect(holder)),
        };
        let record = self.sites.ns()?.home_record(&bucket, &req.key).await?;
        Ok(Served::Here(RecordAnswer { record, cacheable, epoch: self.sites.inner.epoch }))
    }

    async fn bytes(&self, req: BytesRequest) -> DataAnswer {
        let result = async {
            let want = (req.end - req.start) as usize;
            if want > orbit_peer::MAX_DATA_ANSWER_BYTES {
                return Err(Error::InvalidRequest("range larger than a data answer".into()));
            }
            let mut stream = match self.held_bucket(&req.bucket).await? {
                Some(bucket) => self.sites.held_bytes(&bucket, &req.key, &req.version, req.start..req.end).await?,
                None => {
                    let bucket = self.bucket(&req.bucket).await?;
                    self.sites.ns()?.home_bytes(&bucket, &req.key, &req.version, req.start..req.end).await?
                }
            };
            let mut buf = BytesMut::with_capacity(want);
            while let Some(piece) = stream.next().await {
                buf.extend_from_slice(&piece.map_err(|e| Error::Unavailable(e.to_string()))?);
            }
            Ok(buf.freeze())
        }
        .await;
        match result {
            Ok(body) => DataAnswer { status: STATUS_OK, description: b"{}".to_vec(), body },
            Err(e) => fail(&e),
        }
    }

    async fn list(&self, req: ListRequest, from: &SiteId) -> Result<Served<ListAnswer>> {
        if let Some(bucket) = self.held_bucket(&req.bucket).await? {
            if !self.sites.holds_listing(bucket.id, &req.prefix) {
                return Err(not_holder(from));
            }
            let page = self.sites.held_list(&bucket, &req.query()).await?;
            return Ok(Served::Here(ListAnswer { page: page.into(), cacheable: false, epoch: 0 }));
        }
        let bucket = self.bucket(&req.bucket).await?;
        let cacheable = match self.verdict(self.home_read(|h| h.list(bucket.id, &req.prefix))?, from) {
            Ok(c) => c,
            Err(holder) => return Ok(Served::Redirect(holder)),
        };
        let page = self.sites.ns()?.home_list(&bucket, &req.query()).await?;
        Ok(Served::Here(ListAnswer { page: page.into(), cacheable, epoch: self.sites.inner.epoch }))
    }

    /// A write-lease holder's write (or, without one, its question whether
    /// home still knows the lease). Applied only as the next in the lease's
    /// order; the answer is home's stand: `FlushAck` up to where it applied,
    /// `WriteLeaseRevoked` or `LeaseUnknown`.
    async fn flush(&self, from: &SiteId, req: FlushRequest, body: DataBody) -> Result<orbit_site::Message> {
        use orbit_site::{FlushedWrite, Message, WriteKind};
        let stand = |writes: Vec<FlushedWrite>| -> Result<(Message, bool)> {
            let now = self.sites.inner.clock.now();
            let mut h =
                self.sites.inner.home.lock().map_err(|_| Error::Internal("home lease state poisoned".into()))?;
            let events = h.site.on_message(now, from, Message::FlushWrites { req: req.req, lease: req.lease, writes });
            let changed = events.iter().any(|e| matches!(e, orbit_site::HomeEvent::ApplyFlushed { .. }));
            let answer = events.into_iter().find_map(|e| match e {
                orbit_site::HomeEvent::Send(o) if o.to == *from => Some(o.message),
                _ => None,
            });
            Ok((answer.unwrap_or(Message::LeaseUnknown { req: req.req, lease: req.lease }), changed))
        };
        let (Some(write), Some(bref)) = (&req.write, &req.bucket) else {
            let _one = self.sites.inner.flush_apply.lock().await;
            return Ok(stand(Vec::new())?.0);
        };
        // A revoked or unknown lease is told so before anything is stored.
        {
            let _one = self.sites.inner.flush_apply.lock().await;
            let (status, _) = stand(Vec::new())?;
            if !matches!(&status, Message::FlushAck { upto, .. } if write.seq > *upto) {
                return Ok(status);
            }
        }
        let bucket = self.bucket(bref).await?;
        let key = ObjectKey::new(&write.key)?;
        let covered = self
            .sites
            .inner
            .home
            .lock()
            .ok()
            .and_then(|h| h.site.write_lease(req.lease))
            .is_some_and(|l| l.scope.covers(bucket.id, &key));
        if !covered {
            return Err(Error::InvalidRequest("a flushed write outside its write lease".into()));
        }
        let ns = self.sites.ns()?;
        // A put's bytes are stored first, several writes at once; each is
        // then committed in its turn.
        let staged = match &write.record {
            Some(rec) => {
                let checksum = rec.checksum.as_ref().filter(|c| c.kind == orbit_core::ChecksumKind::FullObject);
                let put = PutObject {
                    body,
                    content_length: Some(rec.size),
                    headers: rec.headers.clone(),
                    user_metadata: rec.user_metadata.clone(),
                    content_md5: None,
                    checksum: ExpectedChecksum {
                        algorithm: checksum.map(|c| c.algorithm),
                        value: checksum.map(|c| c.value.clone()),
                        trailer: None,
                    },
                    conditions: WriteConditions::default(),
                };
                let staged = ns.stage_object(&bucket, &bucket.backend, put).await?;
                if staged.etag != rec.etag {
                    ns.discard_blobs(&staged).await;
                    return Err(Error::BadDigest("a flushed write's bytes differ from what the holder staged".into()));
                }
                Some(staged)
            }
            None => None,
        };
        let discard = |staged: Option<orbit_core::ObjectRecord>| async move {
            if let Some(s) = staged {
                ns.discard_blobs(&s).await;
            }
        };
        // Wait for the turn while earlier writes keep landing; a lease whose
        // earlier writes stop arriving answers where home stands.
        let (_one, status) = loop {
            let one = self.sites.inner.flush_apply.lock().await;
            let (status, _) = match stand(Vec::new()) {
                Ok(s) => s,
                Err(e) => {
                    drop(one);
                    discard(staged).await;
                    return Err(e);
                }
            };
            let waiting = matches!(&status, Message::FlushAck { upto, .. } if write.seq > upto + 1);
            if !waiting {
                break (one, status);
            }
            let landed = self.sites.inner.flush_landed.notified();
            futures::pin_mut!(landed);
            landed.as_mut().enable();
            drop(one);
            if tokio::time::timeout(self.sites.inner.message_timeout * 2, landed).await.is_err() {
                discard(staged).await;
                return Ok(status);
            }
        };
        let applies = matches!(&status, Message::FlushAck { upto, .. } if write.seq == upto + 1);
        if !applies {
            discard(staged).await;
            return Ok(status);
        }
        let kind = match &staged {
            Some(rec) => {
                WRITING_FOR.scope(from.clone(), ns.apply_staged_put(&bucket, &write.key, rec)).await?;
                WriteKind::Put
            }
            None => {
                WRITING_FOR.scope(from.clone(), ns.apply_delete(&bucket, &write.key)).await?;
                WriteKind::Delete
            }
        };
        let version = write.record.as_ref().map(|r| r.version.clone()).unwrap_or_default();
        let (answer, changed) = stand(vec![FlushedWrite { seq: write.seq, key, kind, version }])?;
        self.sites.inner.flush_landed.notify_waiters();
        if changed {
            self.sites.persist_write_leases().await?;
        }
        Ok(answer)
    }

    /// The caller a satellite forwarded, as this site's directory knows it.
    async fn caller(&self, f: &Forwarder) -> Result<Caller> {
        let (caller, _) = self.sites.inner.directory.authenticate(&f.access_key_id).await?;
        if caller.tenant_id != f.tenant || caller.user_id != f.user {
            return Err(Error::AccessDenied);
        }
        Ok(caller)
    }

    async fn put(&self, req: PutRequest, body: DataBody) -> Result<orbit_core::ObjectRecord> {
        let caller = self.caller(&req.caller).await?;
        self.bucket(&req.bucket).await?;
        let put = PutObject {
            body,
            content_length: req.content_length,
            headers: req.headers,
            user_metadata: req.user_metadata,
            content_md5: req.content_md5,
            checksum: ExpectedChecksum { algorithm: req.checksum_algorithm, value: req.checksum_value, trailer: None },
            conditions: WriteConditions {
                if_match: req.conditions.if_match,
                if_none_match: req.conditions.if_none_match,
            },
        };
        self.sites.ns()?.put_object(&caller, &req.bucket.name, &req.key, put).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        let caller = self.caller(&req.caller).await?;
        self.bucket(&req.bucket).await?;
        self.sites.ns()?.delete_object(&caller, &req.bucket.name, &req.key).await
    }

    async fn copy(&self, req: CopyRequest) -> Result<orbit_core::ObjectRecord> {
        let caller = self.caller(&req.caller).await?;
        self.bucket(&req.bucket).await?;
        let c = req.source_conditions;
        let src = CopySource {
            bucket: req.source_bucket,
            key: req.source_key,
            conditions: ReadConditions {
                if_match: c.if_match,
                if_none_match: c.if_none_match,
                if_modified_since: c.if_modified_since,
                if_unmodified_since: c.if_unmodified_since,
            },
        };
        let directive = match req.replace {
            None => MetadataDirective::Copy,
            Some((headers, user_metadata)) => MetadataDirective::Replace { headers, user_metadata },
        };
        let conditions =
            WriteConditions { if_match: req.conditions.if_match, if_none_match: req.conditions.if_none_match };
        self.sites.ns()?.copy_object(&caller, &req.bucket.name, &req.key, src, directive, conditions).await
    }
}

impl HomeData {
    async fn mp_create(&self, r: CreateUploadRequest) -> Result<orbit_core::UploadRecord> {
        let caller = self.caller(&r.caller).await?;
        self.bucket(&r.bucket).await?;
        let ns = self.sites.ns()?;
        ns.create_upload(
            &caller,
            &r.bucket.name,
            &r.key,
            r.headers,
            r.user_metadata,
            r.checksum_algorithm,
            r.checksum_kind,
        )
        .await
    }

    async fn mp_part(&self, r: PartRequest, body: DataBody) -> Result<orbit_core::PartRecord> {
        let caller = self.caller(&r.caller).await?;
        self.bucket(&r.bucket).await?;
        let checksum = ExpectedChecksum { algorithm: r.checksum_algorithm, value: r.checksum_value, trailer: None };
        let ns = self.sites.ns()?;
        ns.upload_part(
            &caller,
            &r.bucket.name,
            &r.key,
            &r.upload_id,
            r.number,
            body,
            r.content_length,
            r.content_md5.as_deref(),
            checksum,
        )
        .await
    }

    async fn mp_complete(&self, r: CompleteRequest) -> Result<orbit_core::ObjectRecord> {
        let caller = self.caller(&r.caller).await?;
        self.bucket(&r.bucket).await?;
        let parts = r
            .parts
            .into_iter()
            .map(|(number, etag, checksum)| orbit_core::CompletedPart { number, etag, checksum })
            .collect();
        let conditions = WriteConditions { if_match: r.conditions.if_match, if_none_match: r.conditions.if_none_match };
        let ns = self.sites.ns()?;
        ns.complete_upload(&caller, &r.bucket.name, &r.key, &r.upload_id, parts, conditions, r.expected_checksum).await
    }

    async fn mp_abort(&self, r: UploadRequest) -> Result<()> {
        let caller = self.caller(&r.caller).await?;
        self.bucket(&r.bucket).await?;
        self.sites.ns()?.abort_upload(&caller, &r.bucket.name, &r.key, &r.upload_id).await
    }

    async fn mp_parts(&self, r: UploadRequest) -> Result<WirePartsPage> {
        let caller = self.caller(&r.caller).await?;
        self.bucket(&r.bucket).await?;
        let p = self.sites.ns()?.list_parts(&caller, &r.bucket.name, &r.key, &r.upload_id, r.after, r.max).await?;
        Ok(WirePartsPage { upload: p.upload, parts: p.parts, is_truncated: p.is_truncated, next_marker: p.next_marker })
    }

    async fn mp_uploads(&self, r: UploadsRequest) -> Result<WireUploadsPage> {
        let caller = self.caller(&r.caller).await?;
        self.bucket(&r.bucket).await?;
        let p = self
            .sites
            .ns()?
            .list_uploads(
                &caller,
                &r.bucket.name,
                &r.prefix,
                r.delimiter.as_deref(),
                r.key_marker.as_deref(),
                r.upload_id_marker.as_deref(),
                r.max,
            )
            .await?;
        Ok(WireUploadsPage {
            uploads: p.uploads,
            common_prefixes: p.common_prefixes,
            is_truncated: p.is_truncated,
            next_key_marker: p.next_key_marker,
            next_upload_id_marker: p.next_upload_id_marker,
        })
    }
}

#[async_trait]
impl DataHandler for HomeData {
    async fn handle(&self, from: SiteId, op: String, description: Bytes, body: DataBody) -> DataAnswer {
        let body = || body.map_err(std::io::Error::other).boxed();
        // Writes are made for the asking site: the write gate lets a write-lease
        // holder write its own prefix and nobody else.
        let f = from.clone();
        match op.as_str() {
            OP_RECORD => match parse(&description) {
                Ok(r) => served(self.record(r, &from).await),
                Err(e) => fail(&e),
            },
            OP_BYTES => match parse(&description) {
                Ok(r) => self.bytes(r).await,
                Err(e) => fail(&e),
            },
            OP_LIST => match parse(&description) {
                Ok(r) => served(self.list(r, &from).await),
                Err(e) => fail(&e),
            },
            OP_FLUSH => match parse(&description) {
                Ok(r) => answer(self.flush(&from, r, body()).await),
                Err(e) => fail(&e),
            },
            OP_PUT => match parse(&description) {
                Ok(r) => answer(WRITING_FOR.scope(f, self.put(r, body())).await),
                Err(e) => fail(&e),
            },
            OP_DELETE => match parse(&description) {
                Ok(r) => answer(WRITING_FOR.scope(f, self.delete(r)).await),
                Err(e) => fail(&e),
            },
            OP_COPY => match parse(&description) {
                Ok(r) => answer(WRITING_FOR.scope(f, self.copy(r)).await),
                Err(e) => fail(&e),
            },
            OP_MP_CREATE => match parse(&description) {
                Ok(r) => answer(self.mp_create(r).await),
                Err(e) => fail(&e),
            },
            OP_MP_PART => match parse(&description) {
                Ok(r) => answer(self.mp_part(r, body()).await),
                Err(e) => fail(&e),
            },
            OP_MP_COMPLETE => match parse(&description) {
                Ok(r) => answer(WRITING_FOR.scope(f, self.mp_complete(r)).await),
                Err(e) => fail(&e),
            },
            OP_MP_ABORT => match parse(&description) {
                Ok(r) => answer(self.mp_abort(r).await),
                Err(e) => fail(&e),
            },
            OP_MP_PARTS => match parse(&description) {
                Ok(r) => answer(self.mp_parts(r).await),
                Err(e) => fail(&e),
            },
            OP_MP_UPLOADS => match parse(&description) {
                Ok(r) => answer(self.mp_uploads(r).await),
                Err(e) => fail(&e),
            },
            _ => fail(&Error::NotFound(Resource::Object)),
        }
    }
}
