//! What travels on the data routes between a satellite and the home site:
//! the requests' descriptions, the answers, and errors as values, so a
//! satellite's client gets the same S3 answer it would get at home.

use orbit_core::{ContentHeaders, ListPage, ListQuery, ObjectRecord};
use orbit_types::{BucketId, Error, Resource, TenantId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Data route names.
pub(crate) const OP_RECORD: &str = "record";
pub(crate) const OP_BYTES: &str = "bytes";
pub(crate) const OP_LIST: &str = "list";
pub(crate) const OP_PUT: &str = "put";
pub(crate) const OP_DELETE: &str = "delete";
pub(crate) const OP_COPY: &str = "copy";
pub(crate) const OP_MP_CREATE: &str = "mp-create";
pub(crate) const OP_MP_PART: &str = "mp-part";
pub(crate) const OP_MP_COMPLETE: &str = "mp-complete";
pub(crate) const OP_MP_ABORT: &str = "mp-abort";
pub(crate) const OP_MP_PARTS: &str = "mp-parts";
pub(crate) const OP_MP_UPLOADS: &str = "mp-uploads";
/// A write-lease holder's write, applied at home (or, without a write, the
/// question whether home still knows the lease).
pub(crate) const OP_FLUSH: &str = "flush";

/// The answer status of a success and of an error carried as [`WireError`].
pub(crate) const STATUS_OK: u16 = 200;
pub(crate) const STATUS_ERROR: u16 = 409;
/// A read of a key another site holds a write lease over: ask that site
/// ([`RedirectAnswer`]).
pub(crate) const STATUS_REDIRECT: u16 = 307;

/// Where a redirected read goes: the holder of the write lease.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RedirectAnswer {
    pub holder: String,
}

/// One write a write-lease holder acknowledged, sent home with its bytes.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FlushRequest {
    pub lease: orbit_site::LeaseId,
    /// The holder's request id for this flush (echoed in home's answer).
    pub req: orbit_site::RequestId,
    /// None with no write.
    pub bucket: Option<BucketRef>,
    pub write: Option<HeldWriteWire>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HeldWriteWire {
    pub seq: u64,
    pub key: String,
    /// The record as the holder stored it; none for a delete.
    pub record: Option<ObjectRecord>,
}

/// The bucket a request is about, named as both sites know it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BucketRef {
    pub tenant: TenantId,
    pub name: String,
    pub id: BucketId,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RecordRequest {
    pub bucket: BucketRef,
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RecordAnswer {
    pub record: Option<ObjectRecord>,
    /// Home's verdict: false while a write of the key awaits its gate.
    pub cacheable: bool,
    /// The incarnation of home that answered (see [`orbit_site::LeaseId`]).
    pub epoch: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BytesRequest {
    pub bucket: BucketRef,
    pub key: String,
    pub version: String,
    pub start: u64,
    pub end: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListRequest {
    pub bucket: BucketRef,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    pub max_keys: usize,
}

impl ListRequest {
    pub fn new(bucket: BucketRef, q: &ListQuery) -> Self {
        Self {
            bucket,
            prefix: q.prefix.clone(),
            delimiter: q.delimiter.clone(),
            start_after: q.start_after.clone(),
            max_keys: q.max_keys,
        }
    }

    pub fn query(&self) -> ListQuery {
        ListQuery {
            prefix: self.prefix.clone(),
            delimiter: self.delimiter.clone(),
            start_after: self.start_after.clone(),
            max_keys: self.max_keys,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct WirePage {
    pub objects: Vec<(String, ObjectRecord)>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_marker: Option<String>,
}

impl From<ListPage> for WirePage {
    fn from(p: ListPage) -> Self {
        Self {
            objects: p.objects,
            common_prefixes: p.common_prefixes,
            is_truncated: p.is_truncated,
            next_marker: p.next_marker,
        }
    }
}

impl From<WirePage> for ListPage {
    fn from(p: WirePage) -> Self {
        ListPage {
            objects: p.objects,
            common_prefixes: p.common_prefixes,
            is_truncated: p.is_truncated,
            next_marker: p.next_marker,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ListAnswer {
    pub page: WirePage,
    pub cacheable: bool,
    pub epoch: u64,
}

/// Who asked for a forwarded write, as the satellite authenticated them. Home
/// resolves the access key in its own directory (the same, mirrored) and
/// insists on the same tenant and user, so its grants and quotas decide.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Forwarder {
    pub access_key_id: String,
    pub tenant: TenantId,
    pub user: orbit_types::UserId,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PutRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub key: String,
    pub content_length: Option<u64>,
    pub headers: ContentHeaders,
    pub user_metadata: BTreeMap<String, String>,
    pub content_md5: Option<String>,
    pub checksum_algorithm: Option<orbit_core::ChecksumAlgorithm>,
    pub checksum_value: Option<String>,
    pub conditions: Conditions,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DeleteRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ReadConditionsWire {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<i64>,
    pub if_unmodified_since: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CopyRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub key: String,
    pub source_bucket: String,
    pub source_key: String,
    pub source_conditions: ReadConditionsWire,
    /// None: copy the source's metadata; some: replace it.
    pub replace: Option<(ContentHeaders, BTreeMap<String, String>)>,
    pub conditions: Conditions,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CreateUploadRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub key: String,
    pub headers: ContentHeaders,
    pub user_metadata: BTreeMap<String, String>,
    pub checksum_algorithm: Option<orbit_core::ChecksumAlgorithm>,
    pub checksum_kind: Option<orbit_core::ChecksumKind>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PartRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub key: String,
    pub upload_id: String,
    pub number: u32,
    pub content_length: Option<u64>,
    pub content_md5: Option<String>,
    pub checksum_algorithm: Option<orbit_core::ChecksumAlgorithm>,
    pub checksum_value: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct CompleteRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub key: String,
    pub upload_id: String,
    /// (number, ETag, checksum) of each part, in order.
    pub parts: Vec<(u32, String, Option<String>)>,
    pub conditions: Conditions,
    pub expected_checksum: Option<(orbit_core::ChecksumAlgorithm, String)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UploadRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub key: String,
    pub upload_id: String,
    pub after: Option<u32>,
    pub max: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WirePartsPage {
    pub upload: orbit_core::UploadRecord,
    pub parts: Vec<orbit_core::PartRecord>,
    pub is_truncated: bool,
    pub next_marker: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UploadsRequest {
    pub caller: Forwarder,
    pub bucket: BucketRef,
    pub prefix: String,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
    pub max: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireUploadsPage {
    pub uploads: Vec<orbit_core::UploadRecord>,
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
}

/// An error as a value, with what the client must see.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    NotFound(String),
    AlreadyExists(String),
    Conflict(String),
    InvalidArgument(String),
    InvalidRequest(String),
    MetadataTooLarge,
    AccessDenied,
    PreconditionFailed,
    NotModified,
    InvalidRange,
    BadDigest(String),
    EntityTooLarge(String),
    IncompleteBody(String),
    SlowDown(u64),
    QuotaExceeded(String),
    LimitExceeded(String),
    NotImplemented(String),
    InvalidPart(String),
    InvalidPartOrder,
    EntityTooSmall,
    Unavailable(String),
    Internal(String),
}

fn resource_name(r: Resource) -> String {
    format!("{r:?}")
}

fn resource(name: &str) -> Resource {
    match name {
        "Bucket" => Resource::Bucket,
        "Upload" => Resource::Upload,
        "Tenant" => Resource::Tenant,
        "User" => Resource::User,
        "AccessKey" => Resource::AccessKey,
        _ => Resource::Object,
    }
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::NotFound(r) => Self::NotFound(resource_name(*r)),
            Error::AlreadyExists(r) => Self::AlreadyExists(resource_name(*r)),
            Error::Conflict(m) => Self::Conflict(m.clone()),
            Error::NotEmpty(_) => Self::Conflict(e.to_string()),
            Error::InvalidName(_) | Error::InvalidArgument(_) => Self::InvalidArgument(e.to_string()),
            Error::InvalidRequest(m) => Self::InvalidRequest(m.clone()),
            Error::MetadataTooLarge => Self::MetadataTooLarge,
            Error::AccessDenied => Self::AccessDenied,
            Error::PreconditionFailed => Self::PreconditionFailed,
            Error::NotModified => Self::NotModified,
            Error::InvalidRange => Self::InvalidRange,
            Error::BadDigest(m) => Self::BadDigest(m.clone()),
            Error::EntityTooLarge(m) => Self::EntityTooLarge(m.clone()),
            Error::IncompleteBody(m) => Self::IncompleteBody(m.clone()),
            Error::SlowDown { retry_after_secs } => Self::SlowDown(*retry_after_secs),
            Error::QuotaExceeded(m) => Self::QuotaExceeded(m.clone()),
            Error::LimitExceeded(m) => Self::LimitExceeded(m.clone()),
            Error::NotImplemented(m) => Self::NotImplemented(m.clone()),
            Error::Unavailable(m) => Self::Unavailable(m.clone()),
            Error::InvalidPart(m) => Self::InvalidPart(m.clone()),
            Error::InvalidPartOrder => Self::InvalidPartOrder,
            Error::EntityTooSmall => Self::EntityTooSmall,
            Error::Internal(m) => Self::Internal(m.clone()),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::NotFound(r) => Error::NotFound(resource(&r)),
            WireError::AlreadyExists(r) => Error::AlreadyExists(resource(&r)),
            WireError::Conflict(m) => Error::Conflict(m),
            WireError::InvalidArgument(m) => Error::InvalidArgument(m),
            WireError::InvalidRequest(m) => Error::InvalidRequest(m),
            WireError::MetadataTooLarge => Error::MetadataTooLarge,
            WireError::AccessDenied => Error::AccessDenied,
            WireError::PreconditionFailed => Error::PreconditionFailed,
            WireError::NotModified => Error::NotModified,
            WireError::InvalidRange => Error::InvalidRange,
            WireError::BadDigest(m) => Error::BadDigest(m),
            WireError::EntityTooLarge(m) => Error::EntityTooLarge(m),
            WireError::IncompleteBody(m) => Error::IncompleteBody(m),
            WireError::SlowDown(s) => Error::SlowDown { retry_after_secs: s },
            WireError::QuotaExceeded(m) => Error::QuotaExceeded(m),
            WireError::LimitExceeded(m) => Error::LimitExceeded(m),
            WireError::NotImplemented(m) => Error::NotImplemented(m),
            WireError::InvalidPart(m) => Error::InvalidPart(m),
            WireError::InvalidPartOrder => Error::InvalidPartOrder,
            WireError::EntityTooSmall => Error::EntityTooSmall,
            WireError::Unavailable(m) => Error::Unavailable(format!("at the home site: {m}")),
            WireError::Internal(m) => Error::Internal(format!("at the home site: {m}")),
        }
    }
}
