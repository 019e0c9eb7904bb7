use crate::{Backend, BackendError, BackendResult, BlobList, BlobMeta, ByteStream, ListRequest, ObjectAttributes};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, GetResultPayload, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// Bodies up to this size are written in one put; larger ones stream as parts.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once while streaming a large body.
const PART_CONCURRENCY: usize = 2;
/// Block size when reading local files: large blocks keep the per-block
/// thread hop negligible (object_store's own file stream uses 8 KiB).
const READ_BLOCK: u64 = 1024 * 1024;

/// An S3-compatible store.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// Endpoint URL; AWS itself when unset.
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow plain `http://` endpoints (test servers, private networks).
    pub allow_http: bool,
    /// Address buckets as `bucket.endpoint` instead of `endpoint/bucket`.
    pub virtual_hosted_style: bool,
}

/// A Google Cloud Storage bucket.
#[derive(Clone, Debug, Default)]
pub struct GcsOptions {
    pub bucket: String,
    /// Service account key file; the environment's default credentials when unset.
    pub service_account_path: Option<String>,
}

/// An Azure Blob Storage container.
#[derive(Clone, Debug, Default)]
pub struct AzureOptions {
    pub account: String,
    pub container: String,
    pub access_key: Option<String>,
    /// Endpoint URL (for Azurite or sovereign clouds); Azure's when unset.
    pub endpoint: Option<String>,
    pub allow_http: bool,
}

/// Fail fast when a remote store is down: a client waiting minutes on
/// retries is worse than a 503 it can retry itself.
fn remote_client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(300))
}

fn remote_retry() -> RetryConfig {
    RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(15), ..Default::default() }
}

/// A [`Backend`] over any object_store implementation.
#[derive(Debug, Clone)]
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    description: String,
    /// The store lists in path order (object stores do; a local directory does not).
    sorted_listing: bool,
    /// The store keeps content headers and user metadata with an object
    /// (object stores and memory do; object_store's local directory refuses them).
    keeps_attributes: bool,
}

impl ObjectStoreBackend {
    /// A local directory, fsynced on every write so an acknowledged PUT survives a crash.
    pub fn local(root: &std::path::Path) -> BackendResult<Self> {
        std::fs::create_dir_all(root).map_err(|e| BackendError::Unavailable(format!("{}: {e}", root.display())))?;
        let fs =
            LocalFileSystem::new_with_prefix(root).map_err(unavailable)?.with_fsync(true).with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(fs),
            description: format!("local:{}", root.display()),
            sorted_listing: false,
            keeps_attributes: false,
        })
    }

    /// Blobs held in memory: for tests and throwaway servers.
    pub fn memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            description: "memory".into(),
            sorted_listing: true,
            keeps_attributes: true,
        }
    }

    /// An S3-compatible bucket, optionally under a key prefix.
    pub fn s3(opts: &S3Options, prefix: Option<&str>) -> BackendResult<Self> {
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&opts.bucket)
            .with_region(&opts.region)
            .with_virtual_hosted_style_request(opts.virtual_hosted_style)
            .with_client_options(remote_client_options(opts.allow_http))
            .with_retry(remote_retry());
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e);
        }
        if let (Some(k), Some(s)) = (&opts.access_key_id, &opts.secret_access_key) {
            b = b.with_access_key_id(k).with_secret_access_key(s);
        }
        let store = b.build().map_err(unavailable)?;
        let where_ = format!("s3:{}/{}", opts.endpoint.as_deref().unwrap_or("aws"), opts.bucket);
        Ok(Self::with_prefix(Arc::new(store), prefix, where_))
    }

    /// A Google Cloud Storage bucket, optionally under a key prefix.
    pub fn gcs(opts: &GcsOptions, prefix: Option<&str>) -> BackendResult<Self> {
        let mut b = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&opts.bucket)
            .with_client_options(remote_client_options(false))
            .with_retry(remote_retry());
        if let Some(p) = &opts.service_account_path {
            b = b.with_service_account_path(p);
        }
        let store = b.build().map_err(unavailable)?;
        Ok(Self::with_prefix(Arc::new(store), prefix, format!("gcs:{}", opts.bucket)))
    }

    /// An Azure Blob Storage container, optionally under a key prefix.
    pub fn azure(opts: &AzureOptions, prefix: Option<&str>) -> BackendResult<Self> {
        let mut b = MicrosoftAzureBuilder::new()
            .with_account(&opts.account)
            .with_container_name(&opts.container)
            .with_client_options(remote_client_options(opts.allow_http))
            .with_retry(remote_retry());
        if let Some(k) = &opts.access_key {
            b = b.with_access_key(k);
        }
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e.clone());
        }
        let store = b.build().map_err(unavailable)?;
        Ok(Self::with_prefix(Arc::new(store), prefix, format!("azure:{}/{}", opts.account, opts.container)))
    }

    fn with_prefix(store: Arc<dyn ObjectStore>, prefix: Option<&str>, description: String) -> Self {
        match prefix.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) {
            Some(p) => Self {
                store: Arc::new(PrefixStore::new(store, p.to_owned())),
                description: format!("{description}/{p}"),
                sorted_listing: true,
                keeps_attributes: true,
            },
            None => Self { store, description, sorted_listing: true, keeps_attributes: true },
        }
    }

    /// Any other object_store implementation (assumed unsorted and unable
    /// to keep attributes, which are then dropped).
    pub fn from_store(store: Arc<dyn ObjectStore>, description: impl Into<String>) -> Self {
        Self { store, description: description.into(), sorted_listing: false, keeps_attributes: false }
    }
}

fn unavailable(e: object_store::Error) -> BackendError {
    match e {
        object_store::Error::NotFound { path, .. } => BackendError::NotFound(path),
        object_store::Error::Precondition { path, .. } => BackendError::Changed(path),
        other => BackendError::Unavailable(other.to_string()),
    }
}

/// Whether `path` can name an object in every backend exactly as written:
/// object_store refuses empty segments (`a//b`, a leading or trailing `/`),
/// `.` and `..` segments and control characters. The reason when not.
pub fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an empty path".into());
    }
    match Path::parse(path) {
        Ok(p) if p.as_ref() == path => Ok(()),
        Ok(_) => Err("a leading or trailing `/` (an empty path segment)".into()),
        Err(object_store::path::Error::EmptySegment { .. }) => Err("an empty path segment (`//`)".into()),
        Err(object_store::path::Error::BadSegment { source, .. }) => Err(source.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn meta_of(m: object_store::ObjectMeta) -> BlobMeta {
    BlobMeta {
        path: m.location.to_string(),
        size: m.size,
        etag: m.e_tag,
        version: m.version,
        last_modified_ms: m.last_modified.timestamp_millis(),
        attributes: ObjectAttributes::default(),
    }
}

fn to_store_attributes(a: &ObjectAttributes) -> Attributes {
    let mut out = Attributes::new();
    for (attr, value) in [
        (Attribute::ContentType, &a.content_type),
        (Attribute::ContentEncoding, &a.content_encoding),
        (Attribute::ContentDisposition, &a.content_disposition),
        (Attribute::ContentLanguage, &a.content_language),
        (Attribute::CacheControl, &a.cache_control),
    ] {
        if let Some(v) = value {
            out.insert(attr, v.clone().into());
        }
    }
    for (k, v) in &a.metadata {
        out.insert(Attribute::Metadata(k.clone().into()), v.clone().into());
    }
    out
}

fn from_store_attributes(a: &Attributes) -> ObjectAttributes {
    let mut out = ObjectAttributes::default();
    for (attr, value) in a {
        let v = Some(value.to_string());
        match attr {
            Attribute::ContentType => out.content_type = v,
            Attribute::ContentEncoding => out.content_encoding = v,
            Attribute::ContentDisposition => out.content_disposition = v,
            Attribute::ContentLanguage => out.content_language = v,
            Attribute::CacheControl => out.cache_control = v,
            Attribute::Metadata(k) => {
                out.metadata.insert(k.to_string(), value.to_string());
            }
            // Storage class and attributes added later are not object metadata Orbit serves.
            _ => {}
        }
    }
    out
}

fn parse_path(path: &str) -> BackendResult<Path> {
    Path::parse(path).map_err(|e| BackendError::Unavailable(format!("bad blob path {path}: {e}")))
}

#[async_trait]
impl Backend for ObjectStoreBackend {
    async fn put_with_attributes(
        &self,
        path: &str,
        mut body: ByteStream,
        attributes: &ObjectAttributes,
    ) -> BackendResult<u64> {
        let location = parse_path(path)?;
        // A store that cannot keep attributes refuses a write that carries any: drop them.
        let attributes = if self.keeps_attributes { to_store_attributes(attributes) } else { Attributes::default() };
        let mut first = BytesMut::new();
        let mut total = 0u64;
        // Small bodies (the common case) are gathered and written at once.
        while first.len() < PART_SIZE {
            match body.next().await {
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    first.extend_from_slice(&chunk);
                }
                Some(Err(e)) => return Err(BackendError::Input(e)),
                None => {
                    let payload = PutPayload::from_bytes(first.freeze());
                    let opts = PutOptions { attributes, ..Default::default() };
                    self.store.put_opts(&location, payload, opts).await.map_err(unavailable)?;
                    return Ok(total);
                }
            }
        }
        let opts = PutMultipartOptions { attributes, ..Default::default() };
        let upload = self.store.put_multipart_opts(&location, opts).await.map_err(unavailable)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.put(first.freeze());
        loop {
            if let Err(e) = writer.wait_for_capacity(PART_CONCURRENCY).await {
                return Err(unavailable(e));
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    total += chunk.len() as u64;
                    writer.put(chunk);
                }
                Some(Err(e)) => {
                    let _ = writer.abort().await;
                    return Err(BackendError::Input(e));
                }
                None => break,
            }
        }
        writer.finish().await.map_err(unavailable)?;
        Ok(total)
    }

    async fn get(&self, path: &str, range: Option<Range<u64>>) -> BackendResult<ByteStream> {
        let location = parse_path(path)?;
        if range.as_ref().is_some_and(|r| r.is_empty()) {
            return Ok(futures::stream::empty().boxed());
        }
        let options = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        let result = self.store.get_opts(&location, options).await.map_err(unavailable)?;
        let byte_range = result.range.clone();
        match result.payload {
            GetResultPayload::File(file, _) => Ok(read_file_blocks(file, byte_range)),
            GetResultPayload::Stream(_) => Ok(result.into_stream().map_err(std::io::Error::other).boxed()),
        }
    }

    async fn get_if(&self, path: &str, range: Option<Range<u64>>, etag: &str) -> BackendResult<ByteStream> {
        let location = parse_path(path)?;
        // An empty range still checks the condition (a HEAD with If-Match).
        let head = range.as_ref().is_some_and(|r| r.is_empty());
        let options = GetOptions {
            range: range.filter(|r| !r.is_empty()).map(GetRange::Bounded),
            if_match: Some(etag.to_owned()),
            head,
            ..Default::default()
        };
        let result = self.store.get_opts(&location, options).await.map_err(unavailable)?;
        if head {
            return Ok(futures::stream::empty().boxed());
        }
        let byte_range = result.range.clone();
        match result.payload {
            GetResultPayload::File(file, _) => Ok(read_file_blocks(file, byte_range)),
            GetResultPayload::Stream(_) => Ok(result.into_stream().map_err(std::io::Error::other).boxed()),
        }
    }

    async fn head(&self, path: &str) -> BackendResult<BlobMeta> {
        let location = parse_path(path)?;
        if !self.keeps_attributes {
            return self.store.head(&location).await.map(meta_of).map_err(unavailable);
        }
        // A HEAD request through get_opts: the same one round trip, with the attributes.
        let options = GetOptions { head: true, ..Default::default() };
        let result = self.store.get_opts(&location, options).await.map_err(unavailable)?;
        let attributes = from_store_attributes(&result.attributes);
        Ok(BlobMeta { attributes, ..meta_of(result.meta) })
    }

    fn keeps_attributes(&self) -> bool {
        self.keeps_attributes
    }

    async fn list(&self, req: &ListRequest) -> BackendResult<BlobList> {
        // object_store lists whole path segments while S3 prefixes are plain
        // strings: list the deepest directory the prefix names, then filter.
        let dir = req.prefix.rfind('/').map_or("", |i| &req.prefix[..i]);
        let dir_path = if dir.is_empty() {
            None
        } else {
            match check_path(dir) {
                Ok(()) => Some(parse_path(dir)?),
                // No object can live under a path that cannot be written.
                Err(_) => return Ok(BlobList::default()),
            }
        };
        let after = req.start_after.as_deref().filter(|a| *a >= req.prefix.as_str());
        let wanted = |name: &str| name.starts_with(&req.prefix) && after.is_none_or(|a| name > a);
        let mut entries: Vec<(String, Option<BlobMeta>)> = Vec::new();
        if req.delimiter {
            let r = self.store.list_with_delimiter(dir_path.as_ref()).await.map_err(unavailable)?;
            for p in r.common_prefixes {
                let name = format!("{p}/");
                // A start-after inside a common prefix sorts after it, so skips it whole.
                if wanted(&name) {
                    entries.push((name, None));
                }
            }
            entries.extend(
                r.objects.into_iter().map(meta_of).filter(|m| wanted(&m.path)).map(|m| (m.path.clone(), Some(m))),
            );
            entries.sort_by(|a, b| a.0.cmp(&b.0));
        } else {
            let offset = after.filter(|a| check_path(a).is_ok()).and_then(|a| Path::parse(a).ok());
            let mut stream = match &offset {
                Some(o) => self.store.list_with_offset(dir_path.as_ref(), o),
                None => self.store.list(dir_path.as_ref()),
            };
            while let Some(m) = stream.next().await {
                let m = meta_of(m.map_err(unavailable)?);
                if wanted(&m.path) {
                    entries.push((m.path.clone(), Some(m)));
                }
                // A sorted store can stop once the page and one more entry are known.
                if self.sorted_listing && entries.len() > req.max {
                    break;
                }
            }
            if !self.sorted_listing {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
        }
        let truncated = entries.len() > req.max;
        entries.truncate(req.max);
        let mut out = BlobList { truncated, ..Default::default() };
        for (name, meta) in entries {
            match meta {
                Some(m) => out.objects.push(m),
                None => out.common_prefixes.push(name),
            }
        }
        Ok(out)
    }

    async fn delete(&self, path: &str) -> BackendResult<()> {
        match self.store.delete(&parse_path(path)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> BackendResult<()> {
        self.store.copy(&parse_path(from)?, &parse_path(to)?).await.map_err(unavailable)
    }

    fn describe(&self) -> String {
        self.description.clone()
    }
}

/// Stream a local file's range in large blocks, one blocking read per block.
fn read_file_blocks(file: std::fs::File, range: Range<u64>) -> ByteStream {
    let state = (Some(file), range.start, range.end);
    futures::stream::try_unfold(state, |(file, pos, end)| async move {
        let Some(mut file) = file else { return Ok(None) };
        if pos >= end {
            return Ok(None);
        }
        let want = (end - pos).min(READ_BLOCK) as usize;
        let (file, block) = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            file.seek(SeekFrom::Start(pos))?;
            let mut buf = vec![0u8; want];
            file.read_exact(&mut buf)?;
            Ok((file, Bytes::from(buf)))
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Some((block, (Some(file), pos + want as u64, end))))
    })
    .boxed()
}
