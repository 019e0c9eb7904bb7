//! The one error vocabulary of Orbit's core. Errors are semantic: they say
//! what went wrong and whether retrying can help; each front-end (S3, admin)
//! maps them to its wire format in exactly one place.

use crate::InvalidName;
use std::fmt;

/// The kinds of thing a request can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Tenant,
    User,
    AccessKey,
    Bucket,
    Object,
    Upload,
    Job,
    Grant,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Tenant => "tenant",
            Resource::User => "user",
            Resource::AccessKey => "access key",
            Resource::Bucket => "bucket",
            Resource::Object => "object",
            Resource::Upload => "multipart upload",
            Resource::Job => "job",
            Resource::Grant => "grant",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the {0} does not exist")]
    NotFound(Resource),
    #[error("the {0} already exists")]
    AlreadyExists(Resource),
    #[error("the {0} is not empty")]
    NotEmpty(Resource),
    /// The request would contradict existing state (a mapped location that overlaps another).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    InvalidName(#[from] InvalidName),
    #[error("{0}")]
    InvalidArgument(String),
    /// A request that is well-formed but not allowed as asked (S3's InvalidRequest).
    #[error("{0}")]
    InvalidRequest(String),
    #[error("the user metadata exceeds 2 KiB")]
    MetadataTooLarge,
    #[error("access denied")]
    AccessDenied,
    #[error("a precondition does not hold")]
    PreconditionFailed,
    #[error("not modified")]
    NotModified,
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    #[error("{0}")]
    BadDigest(String),
    #[error("{0}")]
    InvalidPart(String),
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    #[error("a part other than the last is smaller than the 5 MiB minimum")]
    EntityTooSmall,
    #[error("{0}")]
    EntityTooLarge(String),
    /// The request body ended before its declared length (a client went away).
    #[error("the request body ended early: {0}")]
    IncompleteBody(String),
    /// A rate limit of the caller's tenant or bucket is exceeded; a retry
    /// after `retry_after_secs` (at least 1) can succeed.
    #[error("request rate limit exceeded; retry in {retry_after_secs} s")]
    SlowDown { retry_after_secs: u64 },
    /// A hard quota of the caller's own tenant or bucket would be exceeded;
    /// the message names only that limit.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A limit the operator set for the tenant would be exceeded (users, keys, buckets).
    #[error("{0}")]
    LimitExceeded(String),
    /// The operation is valid S3 but this deployment does not perform it
    /// (a copy between buckets of different home sites); no retry will help.
    #[error("{0}")]
    NotImplemented(String),
    /// A dependency (metadata store, backend) failed; retrying may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupt state; retrying will not help. Never shown to clients verbatim.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
