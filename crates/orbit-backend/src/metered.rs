use crate::{Backend, BackendError, BackendResult, BlobList, BlobMeta, ByteStream, ListRequest, ObjectAttributes};
use async_trait::async_trait;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

/// Records every backend call as `orbit_backend_requests_total` and
/// `orbit_backend_request_seconds`, labelled by backend, operation and
/// outcome, around any other backend.
pub struct MeteredBackend {
    inner: Arc<dyn Backend>,
    name: String,
}

impl MeteredBackend {
    pub fn new(name: impl Into<String>, inner: Arc<dyn Backend>) -> Self {
        Self { inner, name: name.into() }
    }

    fn record<T>(&self, op: &'static str, started: Instant, r: &BackendResult<T>) {
        let outcome = match r {
            Ok(_) => "ok",
            Err(BackendError::NotFound(_)) => "not_found",
            Err(BackendError::Input(_)) => "input_error",
            Err(BackendError::Unavailable(_)) => "error",
            Err(BackendError::Changed(_)) => "changed",
        };
        let labels = [("backend", self.name.clone()), ("op", op.to_owned()), ("outcome", outcome.to_owned())];
        metrics::counter!("orbit_backend_requests_total", &labels).increment(1);
        metrics::histogram!("orbit_backend_request_seconds", &labels).record(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Backend for MeteredBackend {
    async fn put_with_attributes(
        &self,
        path: &str,
        body: ByteStream,
        attributes: &ObjectAttributes,
    ) -> BackendResult<u64> {
        let t = Instant::now();
        let r = self.inner.put_with_attributes(path, body, attributes).await;
        if let Ok(n) = &r {
            metrics::counter!("orbit_backend_bytes_written_total", "backend" => self.name.clone()).increment(*n);
        }
        self.record("put", t, &r);
        r
    }

    /// Time to first byte: the stream itself is not timed.
    async fn get(&self, path: &str, range: Option<Range<u64>>) -> BackendResult<ByteStream> {
        let t = Instant::now();
        if let Some(r) = &range {
            metrics::counter!("orbit_backend_bytes_requested_total", "backend" => self.name.clone())
                .increment(r.end.saturating_sub(r.start));
        }
        let r = self.inner.get(path, range).await;
        self.record("get", t, &r);
        r
    }

    async fn get_if(&self, path: &str, range: Option<Range<u64>>, etag: &str) -> BackendResult<ByteStream> {
        let t = Instant::now();
        if let Some(r) = &range {
            metrics::counter!("orbit_backend_bytes_requested_total", "backend" => self.name.clone())
                .increment(r.end.saturating_sub(r.start));
        }
        let r = self.inner.get_if(path, range, etag).await;
        self.record("get", t, &r);
        r
    }

    async fn head(&self, path: &str) -> BackendResult<BlobMeta> {
        let t = Instant::now();
        let r = self.inner.head(path).await;
        self.record("head", t, &r);
        r
    }

    async fn list(&self, req: &ListRequest) -> BackendResult<BlobList> {
        let t = Instant::now();
        let r = self.inner.list(req).await;
        self.record("list", t, &r);
        r
    }

    async fn delete(&self, path: &str) -> BackendResult<()> {
        let t = Instant::now();
        let r = self.inner.delete(path).await;
        self.record("delete", t, &r);
        r
    }

    async fn copy(&self, from: &str, to: &str) -> BackendResult<()> {
        let t = Instant::now();
        let r = self.inner.copy(from, to).await;
        self.record("copy", t, &r);
        r
    }

    fn keeps_attributes(&self) -> bool {
        self.inner.keeps_attributes()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}
