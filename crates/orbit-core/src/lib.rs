//! The namespace core: every bucket and object operation, typed, for any
//! protocol front-end (S3 now; NFS and Azure Blob later) to call. It resolves
//! names inside the caller's tenant, enforces roles, keeps object metadata in
//! the metadata store and bytes in the backend, and never speaks HTTP.

pub mod admin;
mod admin_audit;
pub mod audit;
mod bucket_directory;
pub mod checksum;
mod gc;
pub mod layout;
pub mod namespace;
pub mod prefetch;
pub mod records;
pub mod usage;

pub use admin::AdminService;
pub use admin_audit::MAX_AUDIT_LIST;
pub use audit::{AuditEvent, AuditQuery, AuditRecord, AuditSettings, Auditor, ChainFault, ChainReport};
pub use bucket_directory::BucketDirectory;
pub use checksum::{ChecksumAlgorithm, ChecksumKind, ExpectedChecksum};
pub use layout::{Consistency, MappedLocation};
pub use namespace::Namespace;
pub use namespace::global::{RemoteBuckets, WriteGate, WritePass};
pub use namespace::list::{ListPage, ListQuery};
pub use namespace::multipart::{CompletedPart, PartsPage, UploadsPage};
pub use namespace::object::{
    ByteRange, CopySource, GetObject, MetadataDirective, ObjectBody, PutObject, ReadConditions, WriteConditions,
};
pub use prefetch::{JobState, PrefetchJob, Prefetcher, Selection};
pub use records::{BucketRecord, CachePolicy, ContentHeaders, ObjectRecord, PartRecord, StoredChecksum, UploadRecord};
pub use usage::{Drift, MeterCounts, MeterRecord, Quota, QuotaKind, RequestClass, TenantUsage, UsageFigures};
