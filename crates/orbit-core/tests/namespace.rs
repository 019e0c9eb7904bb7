//! The namespace core, end to end over real stores: tenancy, objects,
//! multipart, conditions, isolation, crash-safety of writes.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orbit_backend::{Backend, BackendSet, ByteStream, ObjectStoreBackend};
use orbit_core::{
    AdminService, ByteRange, ChecksumAlgorithm, CompletedPart, ContentHeaders, CopySource, ExpectedChecksum, GetObject,
    ListQuery, MetadataDirective, Namespace, PutObject, ReadConditions, WriteConditions,
};
use orbit_meta::{MemoryStore, MetaStore, RedbStore};
use orbit_tenancy::{Caller, Directory, MasterKey, TenantModel};
use orbit_types::{Error, Resource, Role};
use std::sync::Arc;

struct Site {
    ns: Namespace,
    dir: Directory,
    meta: Arc<dyn MetaStore>,
}

fn site_with(meta: Arc<dyn MetaStore>, backend: Arc<dyn Backend>) -> Site {
    let dir = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let backends = BackendSet::new(backend).with("second", Arc::new(ObjectStoreBackend::memory()));
    Site { ns: Namespace::new(meta.clone(), backends, "test"), dir, meta }
}

fn memory_site() -> Site {
    site_with(Arc::new(MemoryStore::new()), Arc::new(ObjectStoreBackend::memory()))
}

async fn caller(site: &Site, tenant: &str, user: &str, role: Role) -> Caller {
    let t = match site.dir.tenant_by_name(&tenant.parse().unwrap()).await {
        Ok(t) => t,
        Err(_) => site.dir.create_tenant(&tenant.parse().unwrap(), TenantModel::SelfManaged).await.unwrap(),
    };
    let u = site.dir.create_user(&t, &user.parse().unwrap(), role).await.unwrap();
    let (k, _) = site.dir.create_key(&u, None).await.unwrap();
    site.dir.authenticate(&k.access_key_id).await.unwrap().0
}

fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

fn put(data: &[u8]) -> PutObject {
    PutObject {
        body: body(data),
        content_length: Some(data.len() as u64),
        headers: ContentHeaders { content_type: Some("text/plain".into()), ..Default::default() },
        user_metadata: [("color".to_string(), "blue".to_string())].into(),
        content_md5: None,
        checksum: ExpectedChecksum::default(),
        conditions: WriteConditions::default(),
    }
}

async fn read(site: &Site, c: &Caller, bucket: &str, key: &str, get: GetObject) -> Result<Vec<u8>, Error> {
    let b = site.ns.get_object(c, bucket, key, &get).await?;
    let parts: Vec<Bytes> = b.stream.try_collect().await.map_err(|e| Error::Internal(e.to_string()))?;
    Ok(parts.concat())
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

#[tokio::test]
async fn objects_round_trip_with_metadata_ranges_and_etags() {
    let site = memory_site();
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    let data = pattern(300_000, 1);
    let rec = site.ns.put_object(&c, "data", "dir/file.bin", put(&data)).await.unwrap();
    assert_eq!(rec.etag, md5_hex(&data));
    assert_eq!(read(&site, &c, "data", "dir/file.bin", GetObject::default()).await.unwrap(), data);
    let ranged = GetObject { range: Some(ByteRange::FromTo { first: 1000, last: Some(1999) }), ..Default::default() };
    assert_eq!(read(&site, &c, "data", "dir/file.bin", ranged).await.unwrap(), data[1000..2000]);
    let suffix = GetObject { range: Some(ByteRange::Suffix { length: 10 }), ..Default::default() };
    assert_eq!(read(&site, &c, "data", "dir/file.bin", suffix).await.unwrap(), data[data.len() - 10..]);
    let (head, _) = site.ns.head_object(&c, "data", "dir/file.bin", &GetObject::default()).await.unwrap();
    assert_eq!(head.user_metadata.get("color").map(String::as_str), Some("blue"));
    assert_eq!(head.headers.content_type.as_deref(), Some("text/plain"));
    let beyond = GetObject { range: Some(ByteRange::FromTo { first: 300_000, last: None }), ..Default::default() };
    assert!(matches!(read(&site, &c, "data", "dir/file.bin", beyond).await, Err(Error::InvalidRange)));
    assert!(matches!(
        read(&site, &c, "data", "missing", GetObject::default()).await,
        Err(Error::NotFound(Resource::Object))
    ));

    // Keys are opaque: dot segments and slashes are stored verbatim.
    for key in ["../../etc/passwd", "a//b", "/lead", "ünï"] {
        site.ns.put_object(&c, "data", key, put(b"x")).await.unwrap();
        assert_eq!(read(&site, &c, "data", key, GetObject::default()).await.unwrap(), b"x");
    }
    assert!(matches!(site.ns.put_object(&c, "data", &"k".repeat(1025), put(b"x")).await, Err(Error::InvalidName(_))));
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

#[tokio::test]
async fn conditions_and_checksums_guard_writes_and_reads() {
    let site = memory_site();
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    let only_new = || WriteConditions { if_none_match: Some("*".into()), if_match: None };
    site.ns.put_object(&c, "data", "k", PutObject { conditions: only_new(), ..put(b"one") }).await.unwrap();
    let again = site.ns.put_object(&c, "data", "k", PutObject { conditions: only_new(), ..put(b"two") }).await;
    assert!(matches!(again, Err(Error::PreconditionFailed)));
    assert_eq!(read(&site, &c, "data", "k", GetObject::default()).await.unwrap(), b"one");

    let (rec, _) = site.ns.head_object(&c, "data", "k", &GetObject::default()).await.unwrap();
    let cond = |m: Option<&str>, n: Option<&str>| GetObject {
        conditions: ReadConditions {
            if_match: m.map(Into::into),
            if_none_match: n.map(Into::into),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(matches!(read(&site, &c, "data", "k", cond(None, Some(&rec.etag))).await, Err(Error::NotModified)));
    assert!(matches!(read(&site, &c, "data", "k", cond(Some("nope"), None)).await, Err(Error::PreconditionFailed)));
    assert_eq!(read(&site, &c, "data", "k", cond(Some(&format!("\"{}\"", rec.etag)), None)).await.unwrap(), b"one");

    // A wrong checksum or Content-MD5 is refused and nothing changes.
    let bad = PutObject {
        checksum: ExpectedChecksum {
            algorithm: Some(ChecksumAlgorithm::Crc32),
            value: Some("AAAAAA==".into()),
            trailer: None,
        },
        ..put(b"three")
    };
    assert!(matches!(site.ns.put_object(&c, "data", "k", bad).await, Err(Error::BadDigest(_))));
    let bad_md5 = PutObject { content_md5: Some("AAAAAAAAAAAAAAAAAAAAAA==".into()), ..put(b"three") };
    assert!(matches!(site.ns.put_object(&c, "data", "k", bad_md5).await, Err(Error::BadDigest(_))));
    // A trailer-borne checksum is read after the body.
    let good = PutObject {
        checksum: ExpectedChecksum {
            algorithm: Some(ChecksumAlgorithm::Crc32),
            value: None,
            trailer: Some(Box::new(|| Some(ChecksumAlgorithm::Crc32.digest(b"four")))),
        },
        ..put(b"four")
    };
    let rec = site.ns.put_object(&c, "data", "k", good).await.unwrap();
    assert_eq!(rec.checksum.unwrap().value, ChecksumAlgorithm::Crc32.digest(b"four"));
    // A body shorter than declared is refused.
    let short = PutObject { content_length: Some(100), ..put(b"five") };
    assert!(matches!(site.ns.put_object(&c, "data", "k", short).await, Err(Error::IncompleteBody(_))));
    assert_eq!(read(&site, &c, "data", "k", GetObject::default()).await.unwrap(), b"four");
}

#[tokio::test]
async fn tenants_never_see_each_other() {
    let site = memory_site();
    let a = caller(&site, "tenant-a", "alice", Role::TenantAdmin).await;
    let b = caller(&site, "tenant-b", "bob", Role::TenantAdmin).await;
    site.ns.create_bucket(&a, "datasets").await.unwrap();
    site.ns.create_bucket(&b, "datasets").await.unwrap();
    site.ns.put_object(&a, "datasets", "k", put(b"from a")).await.unwrap();
    site.ns.put_object(&b, "datasets", "k", put(b"from b")).await.unwrap();
    assert_eq!(read(&site, &a, "datasets", "k", GetObject::default()).await.unwrap(), b"from a");
    assert_eq!(read(&site, &b, "datasets", "k", GetObject::default()).await.unwrap(), b"from b");

    site.ns.create_bucket(&a, "private-a").await.unwrap();
    site.ns.put_object(&a, "private-a", "secret", put(b"s")).await.unwrap();
    let names: Vec<_> = site.ns.list_buckets(&b).await.unwrap().into_iter().map(|b| b.name.to_string()).collect();
    assert_eq!(names, ["datasets"]);
    let nb = |r: Result<(), Error>| assert!(matches!(r, Err(Error::NotFound(Resource::Bucket))), "{r:?}");
    nb(site.ns.head_bucket(&b, "private-a").await.map(|_| ()));
    nb(read(&site, &b, "private-a", "secret", GetObject::default()).await.map(|_| ()));
    nb(site.ns.put_object(&b, "private-a", "x", put(b"x")).await.map(|_| ()));
    nb(site.ns.delete_object(&b, "private-a", "secret").await);
    nb(site.ns.list_objects(&b, "private-a", &ListQuery { max_keys: 10, ..Default::default() }).await.map(|_| ()));
    nb(site.ns.delete_bucket(&b, "private-a").await);
    nb(site
        .ns
        .create_upload(&b, "private-a", "x", ContentHeaders::default(), Default::default(), None, None)
        .await
        .map(|_| ()));
    let steal = CopySource { bucket: "private-a".into(), key: "secret".into(), conditions: ReadConditions::default() };
    nb(site
        .ns
        .copy_object(&b, "datasets", "stolen", steal, MetadataDirective::Copy, WriteConditions::default())
        .await
        .map(|_| ()));
    // Creating "private-a" in tenant b is allowed and separate.
    site.ns.create_bucket(&b, "private-a").await.unwrap();
    assert!(matches!(
        read(&site, &b, "private-a", "secret", GetObject::default()).await,
        Err(Error::NotFound(Resource::Object))
    ));
    assert_eq!(read(&site, &a, "private-a", "secret", GetObject::default()).await.unwrap(), b"s");
}

#[tokio::test]
async fn read_only_users_cannot_change_anything() {
    let site = memory_site();
    let rw = caller(&site, "acme", "writer", Role::ReadWrite).await;
    let ro = caller(&site, "acme", "reader", Role::ReadOnly).await;
    site.ns.create_bucket(&rw, "data").await.unwrap();
    site.ns.put_object(&rw, "data", "k", put(b"v")).await.unwrap();
    assert_eq!(read(&site, &ro, "data", "k", GetObject::default()).await.unwrap(), b"v");
    assert!(matches!(site.ns.put_object(&ro, "data", "k2", put(b"v")).await, Err(Error::AccessDenied)));
    assert!(matches!(site.ns.delete_object(&ro, "data", "k").await, Err(Error::AccessDenied)));
    assert!(matches!(site.ns.create_bucket(&ro, "other").await, Err(Error::AccessDenied)));
    assert!(matches!(site.ns.delete_bucket(&ro, "data").await, Err(Error::AccessDenied)));
}

#[tokio::test]
async fn multipart_uploads_complete_validate_and_abort() {
    let site = memory_site();
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    let up = site
        .ns
        .create_upload(
            &c,
            "data",
            "big",
            ContentHeaders::default(),
            Default::default(),
            Some(ChecksumAlgorithm::Crc32),
            None,
        )
        .await
        .unwrap();
    let id = up.id.to_string();
    let p1 = pattern(5 * 1024 * 1024, 1);
    let p2 = pattern(5 * 1024 * 1024 + 7, 2);
    let p3 = pattern(1000, 3);
    let mut etags = Vec::new();
    for (n, data) in [(1u32, &p1), (2, &p2), (3, &p3)] {
        let part = site
            .ns
            .upload_part(
                &c,
                "data",
                "big",
                &id,
                n,
                body(data),
                Some(data.len() as u64),
                None,
                ExpectedChecksum::default(),
            )
            .await
            .unwrap();
        assert_eq!(part.checksum.as_deref(), Some(ChecksumAlgorithm::Crc32.digest(data).as_str()));
        etags.push(part.etag);
    }
    let parts = site.ns.list_parts(&c, "data", "big", &id, None, 2).await.unwrap();
    assert_eq!(parts.parts.len(), 2);
    assert!(parts.is_truncated);
    let uploads = site.ns.list_uploads(&c, "data", "", None, None, None, 100).await.unwrap();
    assert_eq!(uploads.uploads.len(), 1);

    let cp = |n: u32, e: &str| CompletedPart { number: n, etag: format!("\"{e}\""), checksum: None };
    let wrong_order = vec![cp(2, &etags[1]), cp(1, &etags[0])];
    let r = site.ns.complete_upload(&c, "data", "big", &id, wrong_order, WriteConditions::default(), None).await;
    assert!(matches!(r, Err(Error::InvalidPartOrder)));
    let wrong_etag = vec![cp(1, "0123456789abcdef0123456789abcdef")];
    let r = site.ns.complete_upload(&c, "data", "big", &id, wrong_etag, WriteConditions::default(), None).await;
    assert!(matches!(r, Err(Error::InvalidPart(_))));
    // A part under 5 MiB anywhere but last: part 3 (1000 bytes) before a part 4.
    let p4 = site
        .ns
        .upload_part(&c, "data", "big", &id, 4, body(&p1), Some(p1.len() as u64), None, ExpectedChecksum::default())
        .await
        .unwrap();
    let small_first = vec![cp(3, &etags[2]), cp(4, &p4.etag)];
    let r = site.ns.complete_upload(&c, "data", "big", &id, small_first, WriteConditions::default(), None).await;
    assert!(matches!(r, Err(Error::EntityTooSmall)), "{r:?}");

    let all = vec![cp(1, &etags[0]), cp(2, &etags[1]), cp(3, &etags[2])];
    let rec = site.ns.complete_upload(&c, "data", "big", &id, all, WriteConditions::default(), None).await.unwrap();
    assert!(rec.etag.ends_with("-3"));
    assert_eq!(rec.parts_count, Some(3));
    assert!(rec.checksum.as_ref().unwrap().value.ends_with("-3"));
    let whole: Vec<u8> = [p1.clone(), p2.clone(), p3.clone()].concat();
    assert_eq!(read(&site, &c, "data", "big", GetObject::default()).await.unwrap(), whole);
    // A range across the part boundary, and a part by number.
    let edge = 5 * 1024 * 1024 - 10;
    let across = GetObject {
        range: Some(ByteRange::FromTo { first: edge as u64, last: Some(edge as u64 + 19) }),
        ..Default::default()
    };
    assert_eq!(read(&site, &c, "data", "big", across).await.unwrap(), whole[edge..edge + 20]);
    let part2 = GetObject { part_number: Some(2), ..Default::default() };
    assert_eq!(read(&site, &c, "data", "big", part2).await.unwrap(), p2);
    // The upload is gone once completed.
    assert!(matches!(
        site.ns.list_parts(&c, "data", "big", &id, None, 10).await,
        Err(Error::NotFound(Resource::Upload))
    ));

    // Abort removes an upload and its parts.
    let up = site
        .ns
        .create_upload(&c, "data", "gone", ContentHeaders::default(), Default::default(), None, None)
        .await
        .unwrap();
    let id = up.id.to_string();
    site.ns
        .upload_part(&c, "data", "gone", &id, 1, body(b"x"), Some(1), None, ExpectedChecksum::default())
        .await
        .unwrap();
    site.ns.abort_upload(&c, "data", "gone", &id).await.unwrap();
    assert!(matches!(
        site.ns.upload_part(&c, "data", "gone", &id, 2, body(b"x"), Some(1), None, ExpectedChecksum::default()).await,
        Err(Error::NotFound(Resource::Upload))
    ));
    // An upload id is bound to its key.
    let up = site
        .ns
        .create_upload(&c, "data", "key-a", ContentHeaders::default(), Default::default(), None, None)
        .await
        .unwrap();
    assert!(matches!(
        site.ns.list_parts(&c, "data", "key-b", &up.id.to_string(), None, 10).await,
        Err(Error::NotFound(Resource::Upload))
    ));
}

#[tokio::test]
async fn buckets_must_be_empty_to_delete_unless_forced() {
    let site = memory_site();
    let op = caller(&site, "_system", "root", Role::Operator).await;
    let c = caller(&site, "acme", "alice", Role::TenantAdmin).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    assert!(matches!(site.ns.create_bucket(&c, "data").await, Err(Error::AlreadyExists(Resource::Bucket))));
    site.ns.put_object(&c, "data", "k", put(b"v")).await.unwrap();
    assert!(matches!(site.ns.delete_bucket(&c, "data").await, Err(Error::NotEmpty(Resource::Bucket))));
    let admin = AdminService::new(
        site.dir.clone(),
        site.ns.clone(),
        orbit_core::Prefetcher::new(site.ns.clone(), site.meta.clone()),
    );
    assert!(matches!(admin.delete_tenant(&op, "acme", false).await, Err(Error::NotEmpty(Resource::Tenant))));
    admin.delete_tenant(&op, "acme", true).await.unwrap();
    assert!(site.dir.authenticate(&c.access_key_id).await.is_err());
    // A re-created tenant and bucket of the same names start empty.
    let c2 = caller(&site, "acme", "alice", Role::TenantAdmin).await;
    site.ns.create_bucket(&c2, "data").await.unwrap();
    assert!(matches!(
        read(&site, &c2, "data", "k", GetObject::default()).await,
        Err(Error::NotFound(Resource::Object))
    ));
}

#[tokio::test]
async fn listing_pages_through_prefixes() {
    let site = memory_site();
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    for i in 0..25 {
        site.ns.put_object(&c, "data", &format!("logs/{i:02}"), put(b"x")).await.unwrap();
    }
    site.ns.put_object(&c, "data", "readme", put(b"x")).await.unwrap();
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let q = ListQuery { prefix: "logs/".into(), delimiter: None, start_after: after.clone(), max_keys: 7 };
        let page = site.ns.list_objects(&c, "data", &q).await.unwrap();
        keys.extend(page.objects.iter().map(|(k, _)| k.clone()));
        if !page.is_truncated {
            break;
        }
        after = page.next_marker;
    }
    assert_eq!(keys.len(), 25);
    assert_eq!(keys[0], "logs/00");
    let q = ListQuery { prefix: String::new(), delimiter: Some("/".into()), start_after: None, max_keys: 1000 };
    let page = site.ns.list_objects(&c, "data", &q).await.unwrap();
    assert_eq!(page.common_prefixes, ["logs/"]);
    assert_eq!(page.objects.len(), 1);
}

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test]
async fn failed_writes_leave_nothing_and_data_survives_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let objects = tmp.path().join("objects");
    let open = || {
        let meta: Arc<dyn MetaStore> = Arc::new(RedbStore::open(&tmp.path().join("meta.redb")).unwrap());
        let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&objects).unwrap());
        site_with(meta, backend)
    };
    let site = open();
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    site.ns.put_object(&c, "data", "keep", put(&pattern(200_000, 9))).await.unwrap();
    assert_eq!(files_under(&objects).len(), 1);

    // A client that goes away mid-body: the error surfaces, no object, no file left after collection.
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from(vec![1u8; 100_000])),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone")),
    ])
    .boxed();
    let r = site
        .ns
        .put_object(&c, "data", "partial", PutObject { body: failing, content_length: Some(1_000_000), ..put(b"") })
        .await;
    assert!(matches!(r, Err(Error::IncompleteBody(_))), "{r:?}");
    assert!(matches!(read(&site, &c, "data", "partial", GetObject::default()).await, Err(Error::NotFound(_))));
    site.ns.collect_garbage().await.unwrap();
    assert_eq!(files_under(&objects).len(), 1, "the failed write's blob must be collected");
    let key = c.access_key_id.clone();
    drop(site);

    let site = open();
    let c = site.dir.authenticate(&key).await.unwrap().0;
    assert_eq!(read(&site, &c, "data", "keep", GetObject::default()).await.unwrap(), pattern(200_000, 9));
}

#[tokio::test]
async fn concurrent_writers_to_one_key_leave_one_whole_version() {
    let site = Arc::new(memory_site());
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let (site, c) = (site.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            site.ns.put_object(&c, "data", "hot", put(&pattern(50_000, i))).await.map(|_| i)
        }));
    }
    let mut written = Vec::new();
    for t in tasks {
        written.push(t.await.unwrap().unwrap());
    }
    let got = read(&site, &c, "data", "hot", GetObject::default()).await.unwrap();
    assert!(written.iter().any(|&i| pattern(50_000, i) == got), "the object must be exactly one writer's bytes");
}

#[tokio::test]
async fn buckets_live_on_their_backend_and_copy_across_backends() {
    let site = memory_site();
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    let tenant = site.dir.tenant_by_name(&"acme".parse().unwrap()).await.unwrap();
    let name = |n: &str| orbit_types::BucketName::new(n).unwrap();
    let unknown = site.ns.create_bucket_in(tenant.id, &tenant.name, &name("nowhere"), "missing").await;
    assert!(matches!(unknown, Err(Error::InvalidArgument(_))));
    let rec = site.ns.create_bucket_in(tenant.id, &tenant.name, &name("far"), "second").await.unwrap();
    assert_eq!(rec.backend, "second");
    site.ns.create_bucket(&c, "near").await.unwrap();
    let data = pattern(123_456, 5);
    let far = site.ns.put_object(&c, "far", "k", put(&data)).await.unwrap();
    assert!(far.segments.iter().all(|s| s.backend == "second"));
    let src = CopySource { bucket: "far".into(), key: "k".into(), conditions: ReadConditions::default() };
    let near =
        site.ns.copy_object(&c, "near", "k", src, MetadataDirective::Copy, WriteConditions::default()).await.unwrap();
    assert!(near.segments.iter().all(|s| s.backend == "default"));
    assert_eq!(near.etag, far.etag);
    assert_eq!(read(&site, &c, "near", "k", GetObject::default()).await.unwrap(), data);
    assert_eq!(read(&site, &c, "far", "k", GetObject::default()).await.unwrap(), data);
}

/// A backend that can be switched off, counting the reads that reach it.
struct Switchable {
    inner: ObjectStoreBackend,
    down: std::sync::atomic::AtomicBool,
    gets: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Backend for Switchable {
    async fn put_with_attributes(
        &self,
        path: &str,
        body: ByteStream,
        attributes: &orbit_backend::ObjectAttributes,
    ) -> orbit_backend::BackendResult<u64> {
        self.inner.put_with_attributes(path, body, attributes).await
    }
    fn keeps_attributes(&self) -> bool {
        self.inner.keeps_attributes()
    }
    async fn get(&self, path: &str, range: Option<std::ops::Range<u64>>) -> orbit_backend::BackendResult<ByteStream> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(orbit_backend::BackendError::Unavailable("switched off".into()));
        }
        self.inner.get(path, range).await
    }
    async fn get_if(
        &self,
        path: &str,
        range: Option<std::ops::Range<u64>>,
        etag: &str,
    ) -> orbit_backend::BackendResult<ByteStream> {
        self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(orbit_backend::BackendError::Unavailable("switched off".into()));
        }
        self.inner.get_if(path, range, etag).await
    }
    async fn head(&self, path: &str) -> orbit_backend::BackendResult<orbit_backend::BlobMeta> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(orbit_backend::BackendError::Unavailable("switched off".into()));
        }
        self.inner.head(path).await
    }
    async fn list(&self, req: &orbit_backend::ListRequest) -> orbit_backend::BackendResult<orbit_backend::BlobList> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(orbit_backend::BackendError::Unavailable("switched off".into()));
        }
        self.inner.list(req).await
    }
    async fn delete(&self, path: &str) -> orbit_backend::BackendResult<()> {
        self.inner.delete(path).await
    }
    async fn copy(&self, from: &str, to: &str) -> orbit_backend::BackendResult<()> {
        self.inner.copy(from, to).await
    }
    fn describe(&self) -> String {
        "switchable".into()
    }
}

/// A site with a chunk cache in front of a backend that can be switched off.
async fn cached_site() -> (Site, Arc<Switchable>) {
    let backend = Arc::new(Switchable {
        inner: ObjectStoreBackend::memory(),
        down: Default::default(),
        gets: Default::default(),
    });
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
    let cache = orbit_cache::ChunkCache::open(&orbit_cache::CacheConfig {
        ram_bytes: 64 << 20,
        ssd_dir: None,
        ssd_bytes: 0,
        chunk_size: 64 << 10,
    })
    .await
    .unwrap();
    let dir = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let ns = Namespace::new(meta.clone(), BackendSet::new(backend.clone()), "test")
        .with_cache(orbit_cache::CachePool::new(cache));
    (Site { ns, dir, meta }, backend)
}

#[tokio::test]
async fn cached_reads_match_the_data_and_survive_a_backend_outage() {
    use std::sync::atomic::Ordering;
    let (site, backend) = cached_site().await;
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    let data = pattern(1_000_003, 3);
    site.ns.put_object(&c, "data", "obj", put(&data)).await.unwrap();
    let cold = backend.gets.load(Ordering::SeqCst);
    assert_eq!(read(&site, &c, "data", "obj", GetObject::default()).await.unwrap(), data);
    assert!(backend.gets.load(Ordering::SeqCst) > cold);

    // Hot: every range, aligned or not, comes from the cache with the backend off.
    backend.down.store(true, Ordering::SeqCst);
    let hot = backend.gets.load(Ordering::SeqCst);
    for (first, last) in [(0u64, 0u64), (65_535, 65_536), (100, 300_000), (999_999, 1_000_002), (131_072, 196_607)] {
        let g = GetObject { range: Some(ByteRange::FromTo { first, last: Some(last) }), ..Default::default() };
        assert_eq!(read(&site, &c, "data", "obj", g).await.unwrap(), data[first as usize..=last as usize]);
    }
    assert_eq!(read(&site, &c, "data", "obj", GetObject::default()).await.unwrap(), data);
    assert_eq!(backend.gets.load(Ordering::SeqCst), hot, "hot reads must not reach the backend");

    // A cold object with the backend down is an error, never a wrong body.
    backend.down.store(false, Ordering::SeqCst);
    site.ns.put_object(&c, "data", "cold", put(&pattern(200_000, 4))).await.unwrap();
    backend.down.store(true, Ordering::SeqCst);
    assert!(matches!(read(&site, &c, "data", "cold", GetObject::default()).await, Err(Error::Unavailable(_))));
    // And it is served once the backend is back.
    backend.down.store(false, Ordering::SeqCst);
    assert_eq!(read(&site, &c, "data", "cold", GetObject::default()).await.unwrap(), pattern(200_000, 4));
    // An overwrite is never served stale: the new version is a new blob.
    site.ns.put_object(&c, "data", "obj", put(b"new")).await.unwrap();
    assert_eq!(read(&site, &c, "data", "obj", GetObject::default()).await.unwrap(), b"new");
}

async fn wait_for_job(p: &orbit_core::Prefetcher, tenant: orbit_types::TenantId, id: &str) -> orbit_core::PrefetchJob {
    for _ in 0..500 {
        let job = p.get(tenant, id).await.unwrap();
        if job.state != orbit_core::JobState::Running {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("prefetch job did not finish");
}

#[tokio::test]
async fn prefetch_jobs_warm_a_prefix_or_a_manifest() {
    use orbit_core::{JobState, Prefetcher, Selection};
    use std::sync::atomic::Ordering;
    let (site, backend) = cached_site().await;
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    for i in 0..12 {
        site.ns.put_object(&c, "data", &format!("train/{i:02}"), put(&pattern(150_000, i))).await.unwrap();
    }
    site.ns.put_object(&c, "data", "other/x", put(&pattern(10, 1))).await.unwrap();
    let p = Prefetcher::new(site.ns.clone(), site.meta.clone());
    let job = p.start(c.tenant_id, "data", Selection::Prefix("train/".into())).await.unwrap();
    let job = wait_for_job(&p, c.tenant_id, &job.id).await;
    assert_eq!(job.state, JobState::Done);
    assert_eq!((job.objects_total, job.objects_done), (Some(12), 12));
    assert_eq!((job.bytes_total, job.bytes_done), (Some(12 * 150_000), 12 * 150_000));
    assert_eq!(p.list(c.tenant_id).await.unwrap().len(), 1);

    // Everything under the prefix is now served with the backend off; the rest is not.
    backend.down.store(true, Ordering::SeqCst);
    for i in 0..12 {
        assert_eq!(
            read(&site, &c, "data", &format!("train/{i:02}"), GetObject::default()).await.unwrap(),
            pattern(150_000, i)
        );
    }
    assert!(read(&site, &c, "data", "other/x", GetObject::default()).await.is_err());
    backend.down.store(false, Ordering::SeqCst);

    // A manifest names keys; missing ones are skipped, not errors.
    let keys = vec!["other/x".to_string(), "missing".to_string()];
    let job = p.start(c.tenant_id, "data", Selection::Keys(keys)).await.unwrap();
    let job = wait_for_job(&p, c.tenant_id, &job.id).await;
    assert_eq!((job.state, job.objects_total, job.objects_done, job.errors), (JobState::Done, Some(1), 1, 0));

    // Unknown buckets are refused up front; another tenant cannot see the jobs.
    assert!(matches!(p.start(c.tenant_id, "nope", Selection::Prefix(String::new())).await, Err(Error::NotFound(_))));
    let other = caller(&site, "other", "bob", Role::ReadWrite).await;
    assert!(p.list(other.tenant_id).await.unwrap().is_empty());
    assert!(matches!(p.get(other.tenant_id, &job.id).await, Err(Error::NotFound(_))));

    // A job whose reads fail counts errors, and cancelling a finished job changes nothing.
    site.ns.put_object(&c, "data", "cold/1", put(&pattern(1000, 9))).await.unwrap();
    backend.down.store(true, Ordering::SeqCst);
    let job = p.start(c.tenant_id, "data", Selection::Prefix("cold/".into())).await.unwrap();
    let job = wait_for_job(&p, c.tenant_id, &job.id).await;
    assert_eq!((job.state, job.objects_done, job.errors), (JobState::Done, 0, 1));
    assert_eq!(p.cancel(c.tenant_id, &job.id).await.unwrap().state, JobState::Done);
}

#[tokio::test]
async fn prefetch_jobs_resume_after_a_restart_and_can_be_cancelled() {
    use orbit_core::{JobState, Prefetcher, Selection};
    use std::sync::atomic::Ordering;
    let (site, backend) = cached_site().await;
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    for i in 0..5 {
        site.ns.put_object(&c, "data", &format!("k{i}"), put(&pattern(1000, i))).await.unwrap();
    }
    // A job left "running" by a process that stopped, with two objects done.
    backend.down.store(true, Ordering::SeqCst);
    let p = Prefetcher::new(site.ns.clone(), site.meta.clone());
    let job = p.start(c.tenant_id, "data", Selection::Prefix("k".into())).await.unwrap();
    let cancelled = p.cancel(c.tenant_id, &job.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(wait_for_job(&p, c.tenant_id, &job.id).await.state, JobState::Cancelled);

    let stranded = orbit_core::PrefetchJob {
        state: JobState::Running,
        objects_total: Some(5),
        bytes_total: Some(5000),
        objects_done: 2,
        bytes_done: 2000,
        cursor: Some("k1".into()),
        next_index: 2,
        id: "stranded".into(),
        errors: 0,
        message: None,
        ..cancelled
    };
    let key = [c.tenant_id.as_bytes().as_slice(), b"stranded"].concat();
    site.meta
        .commit(orbit_meta::Txn::new().put(orbit_meta::Table::Jobs, key, orbit_meta::encode(&stranded)))
        .await
        .unwrap();
    backend.down.store(false, Ordering::SeqCst);
    let gets_before = backend.gets.load(Ordering::SeqCst);
    let restarted = Prefetcher::new(site.ns.clone(), site.meta.clone());
    assert_eq!(restarted.resume_all().await.unwrap(), 1);
    let done = wait_for_job(&restarted, c.tenant_id, "stranded").await;
    assert_eq!((done.state, done.objects_done, done.bytes_done), (JobState::Done, 5, 5000));
    // Only the three objects after the cursor were read.
    assert_eq!(backend.gets.load(Ordering::SeqCst) - gets_before, 3);
}

#[tokio::test]
async fn written_bytes_can_be_ingested_into_the_cache() {
    use std::sync::atomic::Ordering;
    let (site, backend) = cached_site().await;
    let site = Site { ns: site.ns.with_write_ingest(true), ..site };
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    // Chunks are 64 KiB: several whole ones and a partial last one.
    let data = pattern(5 * 65_536 + 1234, 8);
    site.ns.put_object(&c, "data", "fresh", put(&data)).await.unwrap();
    backend.down.store(true, Ordering::SeqCst);
    let gets = backend.gets.load(Ordering::SeqCst);
    assert_eq!(read(&site, &c, "data", "fresh", GetObject::default()).await.unwrap(), data);
    let tail = GetObject { range: Some(ByteRange::Suffix { length: 2000 }), ..Default::default() };
    assert_eq!(read(&site, &c, "data", "fresh", tail).await.unwrap(), data[data.len() - 2000..]);
    assert_eq!(backend.gets.load(Ordering::SeqCst), gets, "ingested data must not be read back from the backend");
}

#[tokio::test]
async fn bucket_cache_policy_admits_on_second_miss_and_expires() {
    use std::sync::atomic::Ordering;
    let (site, backend) = cached_site().await;
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "scan").await.unwrap();
    site.ns.put_object(&c, "scan", "k", put(&pattern(100_000, 2))).await.unwrap();
    let policy = orbit_core::CachePolicy { admit_on_second_miss: true, ttl_secs: None };
    let rec = site.ns.set_cache_policy(c.tenant_id, "scan", policy).await.unwrap();
    assert_eq!(rec.cache, policy);
    // First read: served, not kept.
    read(&site, &c, "scan", "k", GetObject::default()).await.unwrap();
    backend.down.store(true, Ordering::SeqCst);
    assert!(read(&site, &c, "scan", "k", GetObject::default()).await.is_err());
    backend.down.store(false, Ordering::SeqCst);
    // Second miss: kept.
    read(&site, &c, "scan", "k", GetObject::default()).await.unwrap();
    backend.down.store(true, Ordering::SeqCst);
    assert_eq!(read(&site, &c, "scan", "k", GetObject::default()).await.unwrap(), pattern(100_000, 2));
    backend.down.store(false, Ordering::SeqCst);

    // A TTL makes old chunks count as missing.
    let ttl = orbit_core::CachePolicy { admit_on_second_miss: false, ttl_secs: Some(1) };
    site.ns.set_cache_policy(c.tenant_id, "scan", ttl).await.unwrap();
    read(&site, &c, "scan", "k", GetObject::default()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    backend.down.store(true, Ordering::SeqCst);
    assert!(read(&site, &c, "scan", "k", GetObject::default()).await.is_err(), "an expired chunk must not be served");
    // Objects written before the policy change are still there and readable.
    backend.down.store(false, Ordering::SeqCst);
    assert_eq!(read(&site, &c, "scan", "k", GetObject::default()).await.unwrap(), pattern(100_000, 2));
}

/// Regression for cold reads over a far link: a cold read of an object of a
/// few chunks is one backend request (as a direct reader makes), not one per
/// chunk, and every chunk it streamed through is cached whole.
#[tokio::test]
async fn a_cold_read_of_a_few_chunks_is_one_backend_request() {
    use std::sync::atomic::Ordering;
    let backend = Arc::new(Switchable {
        inner: ObjectStoreBackend::memory(),
        down: Default::default(),
        gets: Default::default(),
    });
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
    const CHUNK: usize = 1 << 20;
    let cache = orbit_cache::ChunkCache::open(&orbit_cache::CacheConfig {
        ram_bytes: 256 << 20,
        ssd_dir: None,
        ssd_bytes: 0,
        chunk_size: CHUNK as u64,
    })
    .await
    .unwrap();
    let dir = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let ns = Namespace::new(meta.clone(), BackendSet::new(backend.clone()), "test")
        .with_cache(orbit_cache::CachePool::new(cache));
    let site = Site { ns, dir, meta };
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.ns.create_bucket(&c, "data").await.unwrap();
    let range = |first: usize, last: usize| GetObject {
        range: Some(ByteRange::FromTo { first: first as u64, last: Some(last as u64) }),
        ..Default::default()
    };
    let hot_ranges = |len: usize| [(0, len - 1), (CHUNK - 1, CHUNK + 1), (len - 3, len - 1), (5, CHUNK * 2)];

    // Four chunks (the last one short): one request; then all hot.
    let four = pattern(3 * CHUNK + 5, 1);
    site.ns.put_object(&c, "data", "four", put(&four)).await.unwrap();
    let before = backend.gets.load(Ordering::SeqCst);
    assert_eq!(read(&site, &c, "data", "four", GetObject::default()).await.unwrap(), four);
    assert_eq!(backend.gets.load(Ordering::SeqCst) - before, 1);
    backend.down.store(true, Ordering::SeqCst);
    for (first, last) in hot_ranges(four.len()) {
        assert_eq!(read(&site, &c, "data", "four", range(first, last)).await.unwrap(), four[first..=last]);
    }
    backend.down.store(false, Ordering::SeqCst);

    // Six chunks: the first four in one request, the other two read ahead.
    let six = pattern(6 * CHUNK, 2);
    site.ns.put_object(&c, "data", "six", put(&six)).await.unwrap();
    let before = backend.gets.load(Ordering::SeqCst);
    assert_eq!(read(&site, &c, "data", "six", GetObject::default()).await.unwrap(), six);
    assert_eq!(backend.gets.load(Ordering::SeqCst) - before, 3);

    // A range starting inside a chunk: the chunks it covers, fetched whole in one request.
    let three = pattern(3 * CHUNK, 3);
    site.ns.put_object(&c, "data", "three", put(&three)).await.unwrap();
    let before = backend.gets.load(Ordering::SeqCst);
    let from = CHUNK + 12_345;
    assert_eq!(read(&site, &c, "data", "three", range(from, three.len() - 1)).await.unwrap(), three[from..]);
    assert_eq!(backend.gets.load(Ordering::SeqCst) - before, 1);
    backend.down.store(true, Ordering::SeqCst);
    assert_eq!(read(&site, &c, "data", "three", range(CHUNK, three.len() - 1)).await.unwrap(), three[CHUNK..]);
    assert!(read(&site, &c, "data", "three", range(0, 10)).await.is_err(), "chunk 0 was never read");
    backend.down.store(false, Ordering::SeqCst);
}
