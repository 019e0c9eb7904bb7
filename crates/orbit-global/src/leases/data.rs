//! The home site's side of the data routes: records, chunks and listing
//! pages with home's verdict on whether a satellite may cache them, and
//! writes forwarded by satellites, applied through the namespace (so through
//! the write gate, the caller's grants and the quotas) as if made here.

use super::Sites;
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

    fn verdict(&self, read: HomeRead) -> Result<bool> {
        match read {
            HomeRead::Local { cacheable } => Ok(cacheable),
            HomeRead::Redirect { holder } => {
                Err(Error::Unavailable(format!("site `{holder}` holds a write lease over the key")))
            }
        }
    }

    async fn record(&self, req: RecordRequest) -> Result<RecordAnswer> {
        let bucket = self.bucket(&req.bucket).await?;
        let key = ObjectKey::new(&req.key)?;
        // The verdict is taken before the read: a write that begins after it
        // invalidates the satellite's lease before it can commit.
        let read = self.sites.inner.home.lock().map(|h| h.site.read(bucket.id, &key));
        let cacheable = self.verdict(read.map_err(|_| Error::Internal("home lease state poisoned".into()))?)?;
        let record = self.sites.ns()?.home_record(&bucket, &req.key).await?;
        Ok(RecordAnswer { record, cacheable, epoch: self.sites.inner.epoch })
    }

    async fn bytes(&self, req: BytesRequest) -> DataAnswer {
        let result = async {
            let bucket = self.bucket(&req.bucket).await?;
            let mut stream = self.sites.ns()?.home_bytes(&bucket, &req.key, &req.version, req.start..req.end).await?;
            let want = (req.end - req.start) as usize;
            if want > orbit_peer::MAX_DATA_ANSWER_BYTES {
                return Err(Error::InvalidRequest("range larger than a data answer".into()));
            }
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

    async fn list(&self, req: ListRequest) -> Result<ListAnswer> {
        let bucket = self.bucket(&req.bucket).await?;
        let read = self.sites.inner.home.lock().map(|h| h.site.list(bucket.id, &req.prefix));
        let cacheable = self.verdict(read.map_err(|_| Error::Internal("home lease state poisoned".into()))?)?;
        let page = self.sites.ns()?.list_objects_of(req.bucket.tenant, &req.bucket.name, &req.query()).await?;
        Ok(ListAnswer { page: page.into(), cacheable, epoch: self.sites.inner.epoch })
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
    async fn handle(&self, _from: SiteId, op: String, description: Bytes, body: DataBody) -> DataAnswer {
        match op.as_str() {
            OP_RECORD => match parse(&description) {
                Ok(r) => answer(self.record(r).await),
                Err(e) => fail(&e),
            },
            OP_BYTES => match parse(&description) {
                Ok(r) => self.bytes(r).await,
                Err(e) => fail(&e),
            },
            OP_LIST => match parse(&description) {
                Ok(r) => answer(self.list(r).await),
                Err(e) => fail(&e),
            },
            OP_PUT => match parse(&description) {
                Ok(r) => answer(self.put(r, body.map_err(std::io::Error::other).boxed()).await),
                Err(e) => fail(&e),
            },
            OP_DELETE => match parse(&description) {
                Ok(r) => answer(self.delete(r).await),
                Err(e) => fail(&e),
            },
            OP_COPY => match parse(&description) {
                Ok(r) => answer(self.copy(r).await),
                Err(e) => fail(&e),
            },
            OP_MP_CREATE => match parse(&description) {
                Ok(r) => answer(self.mp_create(r).await),
                Err(e) => fail(&e),
            },
            OP_MP_PART => match parse(&description) {
                Ok(r) => answer(self.mp_part(r, body.map_err(std::io::Error::other).boxed()).await),
                Err(e) => fail(&e),
            },
            OP_MP_COMPLETE => match parse(&description) {
                Ok(r) => answer(self.mp_complete(r).await),
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
