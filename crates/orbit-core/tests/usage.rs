//! Usage accounting and quotas over real stores: counters follow every
//! object change exactly, hard quotas refuse and never overshoot under
//! concurrency, soft quotas let writes through, and a recount finds drift.

use bytes::Bytes;
use futures::StreamExt;
use orbit_backend::{BackendSet, ByteStream, ObjectStoreBackend};
use orbit_core::{
    CompletedPart, ContentHeaders, CopySource, ExpectedChecksum, MetadataDirective, Namespace, PutObject, Quota,
    QuotaKind, UsageFigures, WriteConditions,
};
use orbit_meta::{MemoryStore, MetaStore, RedbStore};
use orbit_tenancy::{Caller, Directory, MasterKey, TenantModel};
use orbit_types::{Error, Role};
use std::sync::Arc;

struct Site {
    ns: Namespace,
    dir: Directory,
}

fn site_over(meta: Arc<dyn MetaStore>) -> Site {
    let dir = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let backends = BackendSet::new(Arc::new(ObjectStoreBackend::memory()));
    Site { ns: Namespace::new(meta, backends, "test"), dir }
}

async fn caller(site: &Site, tenant: &str) -> Caller {
    let t = match site.dir.tenant_by_name(&tenant.parse().unwrap()).await {
        Ok(t) => t,
        Err(_) => site.dir.create_tenant(&tenant.parse().unwrap(), TenantModel::AdminOnly).await.unwrap(),
    };
    let name = format!("u{}", orbit_types::new_blob_id()[..8].to_lowercase());
    let u = site.dir.create_user(&t, &name.parse().unwrap(), Role::ReadWrite).await.unwrap();
    let (k, _) = site.dir.create_key(&u, None).await.unwrap();
    site.dir.authenticate(&k.access_key_id).await.unwrap().0
}

fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

fn put(len: usize) -> PutObject {
    let data = vec![7u8; len];
    PutObject {
        body: body(&data),
        content_length: Some(len as u64),
        headers: ContentHeaders::default(),
        user_metadata: Default::default(),
        content_md5: None,
        checksum: ExpectedChecksum::default(),
        conditions: WriteConditions::default(),
    }
}

fn figures(bytes: u64, objects: u64) -> UsageFigures {
    UsageFigures { bytes, objects }
}

fn hard(max_bytes: Option<u64>, max_objects: Option<u64>) -> Quota {
    Quota { max_bytes, max_objects, kind: QuotaKind::Hard, updated_ms: 0 }
}

async fn usage(site: &Site, c: &Caller, bucket: &str) -> (UsageFigures, UsageFigures) {
    let u = site.ns.usage(c.tenant_id, None).await.unwrap();
    let b = u.buckets.iter().find(|b| b.bucket == bucket).map(|b| b.usage).unwrap_or_default();
    (u.usage, b)
}

#[tokio::test]
async fn counters_follow_put_overwrite_copy_delete_and_bucket_deletion() {
    let site = site_over(Arc::new(MemoryStore::new()));
    let c = caller(&site, "acme").await;
    site.ns.create_bucket(&c, "aaa").await.unwrap();
    site.ns.create_bucket(&c, "bbb").await.unwrap();
    site.ns.put_object(&c, "aaa", "k1", put(100)).await.unwrap();
    site.ns.put_object(&c, "aaa", "k2", put(50)).await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await, (figures(150, 2), figures(150, 2)));
    // An overwrite changes bytes, not the count.
    site.ns.put_object(&c, "aaa", "k1", put(10)).await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await.1, figures(60, 2));
    let src = CopySource { bucket: "aaa".into(), key: "k2".into(), conditions: Default::default() };
    site.ns.copy_object(&c, "bbb", "copy", src, MetadataDirective::Copy, Default::default()).await.unwrap();
    assert_eq!(usage(&site, &c, "bbb").await, (figures(110, 3), figures(50, 1)));
    site.ns.delete_object(&c, "aaa", "k1").await.unwrap();
    // Deleting what is not there changes nothing.
    site.ns.delete_object(&c, "aaa", "k1").await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await, (figures(100, 2), figures(50, 1)));
    site.ns.delete_bucket_in(c.tenant_id, "bbb", true).await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await.0, figures(50, 1));
    let drift = site.ns.recount(c.tenant_id, false).await.unwrap();
    assert!(drift.iter().all(|d| d.counted == d.actual), "{drift:?}");
}

#[tokio::test]
async fn multipart_parts_count_when_stored_and_completion_drops_unused_ones() {
    let site = site_over(Arc::new(MemoryStore::new()));
    let c = caller(&site, "acme").await;
    site.ns.create_bucket(&c, "aaa").await.unwrap();
    let up = site
        .ns
        .create_upload(&c, "aaa", "big", ContentHeaders::default(), Default::default(), None, None)
        .await
        .unwrap();
    let id = up.id.to_string();
    let mut etags = Vec::new();
    for (n, len) in [(1u32, 5 * 1024 * 1024), (2, 300), (3, 200)] {
        let data = vec![1u8; len];
        let p = site
            .ns
            .upload_part(&c, "aaa", "big", &id, n, body(&data), Some(len as u64), None, ExpectedChecksum::default())
            .await
            .unwrap();
        etags.push(p.etag);
    }
    // Parts are stored bytes; no object yet.
    assert_eq!(usage(&site, &c, "aaa").await.1, figures(5 * 1024 * 1024 + 500, 0));
    // Part 3 is left out: its bytes go with the upload.
    let parts = vec![
        CompletedPart { number: 1, etag: etags[0].clone(), checksum: None },
        CompletedPart { number: 2, etag: etags[1].clone(), checksum: None },
    ];
    site.ns.complete_upload(&c, "aaa", "big", &id, parts, Default::default(), None).await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await.1, figures(5 * 1024 * 1024 + 300, 1));
    // An aborted upload gives its parts back.
    let up = site
        .ns
        .create_upload(&c, "aaa", "other", ContentHeaders::default(), Default::default(), None, None)
        .await
        .unwrap();
    let id = up.id.to_string();
    site.ns
        .upload_part(&c, "aaa", "other", &id, 1, body(&[0u8; 40]), Some(40), None, ExpectedChecksum::default())
        .await
        .unwrap();
    assert_eq!(usage(&site, &c, "aaa").await.1, figures(5 * 1024 * 1024 + 340, 1));
    site.ns.abort_upload(&c, "aaa", "other", &id).await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await.1, figures(5 * 1024 * 1024 + 300, 1));
}

#[tokio::test]
async fn hard_quotas_refuse_and_shrinking_writes_always_pass() {
    let site = site_over(Arc::new(MemoryStore::new()));
    let c = caller(&site, "acme").await;
    site.ns.create_bucket(&c, "aaa").await.unwrap();
    site.ns.set_quota(c.tenant_id, Some("aaa"), Some(hard(Some(100), Some(2)))).await.unwrap();
    site.ns.put_object(&c, "aaa", "k1", put(60)).await.unwrap();
    let err = site.ns.put_object(&c, "aaa", "k2", put(41)).await.unwrap_err();
    assert!(matches!(&err, Error::QuotaExceeded(m) if m.contains("100 bytes")), "{err:?}");
    site.ns.put_object(&c, "aaa", "k2", put(40)).await.unwrap();
    let err = site.ns.put_object(&c, "aaa", "k3", put(0)).await.unwrap_err();
    assert!(matches!(&err, Error::QuotaExceeded(m) if m.contains("2 objects")), "{err:?}");
    // Overwriting with fewer bytes, and deleting, are never refused.
    site.ns.put_object(&c, "aaa", "k1", put(10)).await.unwrap();
    site.ns.delete_object(&c, "aaa", "k2").await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await.1, figures(10, 1));
    // A tenant quota covers every bucket of the tenant.
    site.ns.create_bucket(&c, "bbb").await.unwrap();
    site.ns.set_quota(c.tenant_id, None, Some(hard(Some(50), None))).await.unwrap();
    site.ns.put_object(&c, "bbb", "x", put(40)).await.unwrap();
    assert!(matches!(site.ns.put_object(&c, "bbb", "y", put(1)).await, Err(Error::QuotaExceeded(_))));
    site.ns.set_quota(c.tenant_id, None, None).await.unwrap();
    site.ns.put_object(&c, "bbb", "y", put(1)).await.unwrap();
    // A refused write left nothing behind.
    assert!(site.ns.head_object(&c, "aaa", "k3", &Default::default()).await.is_err());
    // A quota without limits is refused.
    assert!(matches!(
        site.ns.set_quota(c.tenant_id, None, Some(hard(None, None))).await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn soft_quotas_let_writes_through() {
    let site = site_over(Arc::new(MemoryStore::new()));
    let c = caller(&site, "acme").await;
    site.ns.create_bucket(&c, "aaa").await.unwrap();
    let soft = Quota { max_bytes: Some(10), max_objects: Some(1), kind: QuotaKind::Soft, updated_ms: 0 };
    site.ns.set_quota(c.tenant_id, Some("aaa"), Some(soft)).await.unwrap();
    site.ns.put_object(&c, "aaa", "k1", put(20)).await.unwrap();
    site.ns.put_object(&c, "aaa", "k2", put(20)).await.unwrap();
    assert_eq!(usage(&site, &c, "aaa").await.1, figures(40, 2));
}

#[tokio::test]
async fn concurrent_writers_never_overshoot_a_hard_quota() {
    let dir = tempfile::tempdir().unwrap();
    let meta: Arc<dyn MetaStore> = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).unwrap());
    let site = Arc::new(site_over(meta));
    let c = caller(&site, "acme").await;
    site.ns.create_bucket(&c, "aaa").await.unwrap();
    site.ns.set_quota(c.tenant_id, Some("aaa"), Some(hard(Some(1000), Some(7)))).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (site, c) = (site.clone(), c.clone());
        tasks.push(tokio::spawn(async move { site.ns.put_object(&c, "aaa", &format!("k{i}"), put(100)).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::QuotaExceeded(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!(ok, 7, "the object limit admits exactly 7 writes");
    let (_, b) = usage(&site, &c, "aaa").await;
    assert_eq!(b, figures(700, 7));
    let drift = site.ns.recount(c.tenant_id, false).await.unwrap();
    assert!(drift.iter().all(|d| d.counted == d.actual), "{drift:?}");
}

#[tokio::test]
async fn recount_finds_and_corrects_drift() {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
    let site = site_over(meta.clone());
    let c = caller(&site, "acme").await;
    site.ns.create_bucket(&c, "aaa").await.unwrap();
    site.ns.put_object(&c, "aaa", "k", put(30)).await.unwrap();
    // Damage the tenant's bytes counter and the bucket's object counter.
    let mut tenant_key = c.tenant_id.as_bytes().to_vec();
    tenant_key.push(b'B');
    meta.commit(orbit_meta::Txn::new().put(orbit_meta::Table::Usage, tenant_key, 999i64.to_be_bytes().to_vec()))
        .await
        .unwrap();
    let rows =
        meta.scan(orbit_meta::Table::Usage, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, 100).await.unwrap();
    let (objects_key, _) = rows.iter().find(|(k, _)| k.len() == 33 && k[32] == b'O').unwrap().clone();
    meta.commit(orbit_meta::Txn::new().put(orbit_meta::Table::Usage, objects_key, 5i64.to_be_bytes().to_vec()))
        .await
        .unwrap();
    let report = site.ns.recount(c.tenant_id, false).await.unwrap();
    assert_eq!(report.iter().filter(|d| d.counted != d.actual).count(), 2, "{report:?}");
    assert!(report.iter().all(|d| !d.corrected));
    let fixed = site.ns.recount(c.tenant_id, true).await.unwrap();
    assert_eq!(fixed.iter().filter(|d| d.corrected).count(), 2, "{fixed:?}");
    assert_eq!(usage(&site, &c, "aaa").await, (figures(30, 1), figures(30, 1)));
    let again = site.ns.recount(c.tenant_id, true).await.unwrap();
    assert!(again.iter().all(|d| !d.corrected && d.counted == d.actual));
}
