//! Object storage behind one small trait.
//!
//! A backend stores immutable blobs under paths that Orbit chooses (never an
//! S3 key), or, for a mapped bucket, objects under `<prefix><key>` that other
//! tools may write too, which is why it can also describe (`head`), list and
//! read conditionally. Every implementation goes through the object_store
//! crate and passes the same conformance suite.

#[cfg(test)]
mod conformance;
mod metered;
mod object_store_backend;
mod set;

pub use metered::MeteredBackend;
pub use object_store_backend::{AzureOptions, GcsOptions, ObjectStoreBackend, S3Options, check_path};
pub use set::BackendSet;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::collections::BTreeMap;
use std::ops::Range;

/// A stream of bytes in or out of a backend. I/O errors carry the reason a
/// stream ended early (a client that went away, a backend that failed).
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("blob not found: {0}")]
    NotFound(String),
    /// The input stream failed (for example the client disconnected); nothing was stored.
    #[error("input ended early: {0}")]
    Input(std::io::Error),
    /// The backend failed or could not be reached; a retry may succeed.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// A conditional read found another version of the object than the one asked for.
    #[error("object changed: {0}")]
    Changed(String),
}

/// Content headers and user metadata stored with an object itself, where
/// the store keeps them (S3, GCS, Azure, memory: see
/// [`Backend::keeps_attributes`]), so other tools reading or writing the
/// store directly see and set them too.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectAttributes {
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    /// User metadata: names without the store's prefix (`x-amz-meta-`,
    /// `x-ms-meta-`), as the store gives them back (S3 lowercases names).
    pub metadata: BTreeMap<String, String>,
}

impl ObjectAttributes {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What a backend says about one stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub path: String,
    pub size: u64,
    /// As the store reports it (S3 quotes it); compare it only with what the same store said.
    pub etag: Option<String>,
    pub version: Option<String>,
    pub last_modified_ms: i64,
    /// Filled by [`Backend::head`] on stores that keep attributes; always
    /// empty in listings (object stores do not list them).
    pub attributes: ObjectAttributes,
}

/// One page of a listing. Prefixes are plain string prefixes, as in S3.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    pub prefix: String,
    /// Group keys by the next `/` after the prefix (the only delimiter object stores share).
    pub delimiter: bool,
    /// List paths strictly after this one.
    pub start_after: Option<String>,
    pub max: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobList {
    pub objects: Vec<BlobMeta>,
    /// Each ends with `/`.
    pub common_prefixes: Vec<String>,
    /// More entries follow the last one returned.
    pub truncated: bool,
}

pub type BackendResult<T> = Result<T, BackendError>;

/// Durable blob storage. A `put` is atomic: readers see the whole blob or none.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Store the stream under `path` with `attributes` (dropped by a store
    /// that cannot keep them: see [`Backend::keeps_attributes`]). Returns
    /// the number of bytes stored. Durable when it returns. (Plain `put`
    /// is in [`BackendExt`].)
    async fn put_with_attributes(
        &self,
        path: &str,
        body: ByteStream,
        attributes: &ObjectAttributes,
    ) -> BackendResult<u64>;

    /// Whether [`ObjectAttributes`] written with an object are stored and
    /// given back by `head` and kept by `copy` (not by a local directory).
    fn keeps_attributes(&self) -> bool;

    /// Read the blob, or the byte range of it.
    async fn get(&self, path: &str, range: Option<Range<u64>>) -> BackendResult<ByteStream>;

    /// Read the range of the object only while its ETag is still `etag`;
    /// otherwise [`BackendError::Changed`], so one response never mixes versions.
    async fn get_if(&self, path: &str, range: Option<Range<u64>>, etag: &str) -> BackendResult<ByteStream>;

    /// Size, ETag, version, modification time and attributes of the object at `path`.
    async fn head(&self, path: &str) -> BackendResult<BlobMeta>;

    /// One page of the objects whose paths start with `req.prefix`, in path order.
    async fn list(&self, req: &ListRequest) -> BackendResult<BlobList>;

    /// Remove the blob; removing a missing blob is not an error.
    async fn delete(&self, path: &str) -> BackendResult<()>;

    /// Copy a blob (with its attributes) to a new path without passing its
    /// bytes through Orbit where the store allows.
    async fn copy(&self, from: &str, to: &str) -> BackendResult<()>;

    /// A short description for logs (`local:/var/lib/orbit/objects`, `memory`).
    fn describe(&self) -> String;
}

/// Conveniences over any [`Backend`], so that wrappers only implement the trait's verbs.
#[async_trait]
pub trait BackendExt: Backend {
    /// Store the stream under `path` without attributes (Orbit's own blobs,
    /// whose metadata lives in Orbit's records).
    async fn put(&self, path: &str, body: ByteStream) -> BackendResult<u64> {
        self.put_with_attributes(path, body, &ObjectAttributes::default()).await
    }

    /// `head`, with a missing object as `None`.
    async fn head_opt(&self, path: &str) -> BackendResult<Option<BlobMeta>> {
        match self.head(path).await {
            Ok(m) => Ok(Some(m)),
            Err(BackendError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<T: Backend + ?Sized> BackendExt for T {}
