//! Object storage behind one small trait.
//!
//! A backend stores immutable blobs under paths that Orbit chooses (never an
//! S3 key), so it needs only four verbs. Every implementation goes through
//! the object_store crate and passes the same conformance suite.

#[cfg(test)]
mod conformance;
mod metered;
mod object_store_backend;
mod set;

pub use metered::MeteredBackend;
pub use object_store_backend::{AzureOptions, GcsOptions, ObjectStoreBackend, S3Options};
pub use set::BackendSet;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
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
}

pub type BackendResult<T> = Result<T, BackendError>;

/// Durable blob storage. A `put` is atomic: readers see the whole blob or none.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Store the stream under `path`, replacing nothing (paths are never reused).
    /// Returns the number of bytes stored. Durable when it returns.
    async fn put(&self, path: &str, body: ByteStream) -> BackendResult<u64>;

    /// Read the blob, or the byte range of it.
    async fn get(&self, path: &str, range: Option<Range<u64>>) -> BackendResult<ByteStream>;

    /// Remove the blob; removing a missing blob is not an error.
    async fn delete(&self, path: &str) -> BackendResult<()>;

    /// Copy a blob to a new path without passing its bytes through Orbit where the store allows.
    async fn copy(&self, from: &str, to: &str) -> BackendResult<()>;

    /// A short description for logs (`local:/var/lib/orbit/objects`, `memory`).
    fn describe(&self) -> String;
}
