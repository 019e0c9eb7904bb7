//! The directory site's side: answers mirrors' pulls with the directory's
//! records (or "unchanged"), and creates and deletes buckets for other sites.

use super::tables::{self, Records};
use super::versioned::VersionedStore;
use orbit_core::{BucketRecord, Namespace};
use orbit_meta::{MetaStore, encode};
use orbit_peer::Reply;
use orbit_site::{DirectoryEntry, DirectoryError, DirectoryTable, Message, Refusal, RequestId, SiteId};
use orbit_tenancy::Directory;
use orbit_types::{BucketId, BucketName, Error, Resource, TenantId};
use std::sync::Arc;

/// Serves the directory to the other sites.
pub struct DirectoryAuthority {
    site: SiteId,
    store: Arc<VersionedStore>,
    directory: Directory,
    namespace: Namespace,
}

impl DirectoryAuthority {
    /// `store` must be the store `directory` and `namespace` write through,
    /// so every change is counted.
    pub fn new(site: SiteId, store: Arc<VersionedStore>, directory: Directory, namespace: Namespace) -> Self {
        Self { site, store, directory, namespace }
    }

    /// The version of the directory now.
    pub fn version(&self) -> orbit_site::DirectoryVersion {
        self.store.version()
    }

    /// Answer a directory message from `from`; None when it is not one.
    pub async fn handle(&self, from: &SiteId, message: Message) -> Option<Reply> {
        Some(match message {
            Message::DirectoryPull { req, known } => self.pull(req, known).await,
            Message::DirectoryCreateBucket { req, tenant, bucket, backend } => {
                Ok(Some(self.create_bucket(req, from, tenant, &bucket, &backend).await))
            }
            Message::DirectoryDeleteBucket { req, tenant, bucket, id } => {
                Ok(Some(self.delete_bucket(req, from, tenant, &bucket, id).await))
            }
            _ => return None,
        })
    }

    async fn pull(&self, req: RequestId, known: Option<orbit_site::DirectoryVersion>) -> Reply {
        let now = self.store.version();
        if known == Some(now) {
            return Ok(Some(Message::DirectoryUnchanged { req, version: now }));
        }
        let store: &dyn MetaStore = self.store.as_ref();
        let read = self.store.consistent(|| tables::read_directory(store)).await;
        let (records, version) = match read {
            Ok(Some(r)) => r,
            // Commits kept landing, or the store failed: the mirror asks again.
            Ok(None) => return Err(Refusal::Busy),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the directory for a mirror");
                return Err(Refusal::Busy);
            }
        };
        let sealed_canary = match self.directory.sealed_canary().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the master-key canary for a mirror");
                return Err(Refusal::Busy);
            }
        };
        Ok(Some(Message::DirectorySnapshot { req, version, sealed_canary, tables: to_wire(records) }))
    }

    async fn create_bucket(
        &self,
        req: RequestId,
        from: &SiteId,
        tenant: TenantId,
        bucket: &BucketName,
        backend: &str,
    ) -> Message {
        let created = async {
            let t = self.directory.tenant_by_id(tenant).await?;
            self.namespace.create_bucket_homed(tenant, &t.name, bucket, backend, &from.0).await
        }
        .await;
        match created {
            Ok(rec) => {
                tracing::info!(bucket = %rec.id, home = %from, "bucket created for a peer site");
                Message::DirectoryBucketDone { req, version: self.store.version(), record: Some(encode(&rec)) }
            }
            Err(e) => Message::DirectoryBucketRefused { req, error: wire_error(e) },
        }
    }

    async fn delete_bucket(
        &self,
        req: RequestId,
        from: &SiteId,
        tenant: TenantId,
        bucket: &BucketName,
        id: BucketId,
    ) -> Message {
        let key = orbit_core::records::bucket_key(tenant, bucket);
        let record = match self.store.get(orbit_meta::Table::Buckets, &key).await {
            Ok(Some(raw)) => orbit_meta::decode::<BucketRecord>(&raw).ok().filter(|r| r.id == id),
            Ok(None) => None,
            Err(e) => {
                return Message::DirectoryBucketRefused {
                    req,
                    error: DirectoryError::Unavailable { message: e.to_string() },
                };
            }
        };
        let Some(record) = record else {
            return Message::DirectoryBucketRefused { req, error: DirectoryError::NoSuchBucket };
        };
        // Only the home holds the objects: it asks after deleting the empty
        // bucket itself; or this site is the home and checks here.
        if record.home_site != from.0 && record.home_site != self.site.0 {
            return Message::DirectoryBucketRefused {
                req,
                error: DirectoryError::HomedElsewhere { home: record.home_site },
            };
        }
        match self.namespace.delete_bucket_here(tenant, bucket.as_str(), false, Some(id)).await {
            Ok(()) => {
                tracing::info!(bucket = %id, asked_by = %from, "bucket deleted for a peer site");
                Message::DirectoryBucketDone { req, version: self.store.version(), record: None }
            }
            Err(e) => Message::DirectoryBucketRefused { req, error: wire_error(e) },
        }
    }
}

fn to_wire(records: Records) -> Vec<DirectoryTable> {
    records
        .into_iter()
        .map(|(table, rows)| DirectoryTable {
            table: table.name().to_owned(),
            entries: rows.into_iter().map(|(key, value)| DirectoryEntry { key, value }).collect(),
        })
        .collect()
}

/// The refusal a peer receives for a failed bucket change.
pub(crate) fn wire_error(e: Error) -> DirectoryError {
    match e {
        Error::AlreadyExists(_) => DirectoryError::BucketExists,
        Error::NotFound(Resource::Tenant) => DirectoryError::NoSuchTenant,
        Error::NotFound(_) => DirectoryError::NoSuchBucket,
        Error::NotEmpty(_) => DirectoryError::BucketNotEmpty,
        Error::InvalidArgument(m) | Error::InvalidRequest(m) | Error::Conflict(m) => {
            DirectoryError::Invalid { message: m }
        }
        Error::InvalidName(n) => DirectoryError::Invalid { message: n.to_string() },
        other => {
            tracing::warn!(error = %other, "a bucket change asked by a peer failed");
            DirectoryError::Unavailable { message: "the directory site could not commit the change".into() }
        }
    }
}

/// The error a client at the asking site receives.
pub(crate) fn local_error(e: DirectoryError) -> Error {
    match e {
        DirectoryError::BucketExists => Error::AlreadyExists(Resource::Bucket),
        DirectoryError::NoSuchBucket => Error::NotFound(Resource::Bucket),
        DirectoryError::NoSuchTenant => Error::NotFound(Resource::Tenant),
        DirectoryError::BucketNotEmpty => Error::NotEmpty(Resource::Bucket),
        DirectoryError::HomedElsewhere { home } => {
            Error::InvalidRequest(format!("the bucket is homed at site `{home}`: delete it there"))
        }
        DirectoryError::Invalid { message } => Error::InvalidArgument(message),
        DirectoryError::Unavailable { message } => Error::Unavailable(message),
    }
}
