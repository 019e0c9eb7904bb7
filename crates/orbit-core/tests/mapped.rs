//! Mapped buckets over a backend that "another writer" also writes to
//! directly: what each consistency mode lets a reader see, and that the
//! chunk cache never serves bytes of a version the object no longer has.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orbit_backend::{Backend, BackendExt, BackendSet, ByteStream, ObjectStoreBackend};
use orbit_core::{
    AdminService, ByteRange, CompletedPart, Consistency, ContentHeaders, CopySource, ExpectedChecksum, GetObject,
    ListQuery, MetadataDirective, Namespace, PutObject, ReadConditions, WriteConditions,
};
use orbit_meta::{MemoryStore, MetaStore};
use orbit_tenancy::{Caller, Directory, MasterKey, TenantModel};
use orbit_types::{Error, Resource, Role};
use std::sync::Arc;

struct Site {
    ns: Namespace,
    dir: Directory,
    admin: AdminService,
    /// The bucket's backend, as the other writer reaches it.
    remote: Arc<Switch>,
}

const CHUNK: u64 = 64 << 10;

async fn site(cached: bool) -> Site {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
    let remote = Arc::new(Switch { inner: ObjectStoreBackend::memory(), down: Default::default() });
    let dir = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let backends = BackendSet::new(Arc::new(ObjectStoreBackend::memory())).with("remote", remote.clone());
    let mut ns = Namespace::new(meta.clone(), backends, "test");
    if cached {
        let cache = orbit_cache::ChunkCache::open(&orbit_cache::CacheConfig {
            ram_bytes: 64 << 20,
            ssd_dir: None,
            ssd_bytes: 0,
            chunk_size: CHUNK,
        })
        .await
        .unwrap();
        ns = ns.with_cache(orbit_cache::CachePool::new(cache));
    }
    let admin = AdminService::new(dir.clone(), ns.clone(), orbit_core::Prefetcher::new(ns.clone(), meta.clone()));
    Site { ns, dir, admin, remote }
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
        headers: ContentHeaders::default(),
        user_metadata: Default::default(),
        content_md5: None,
        checksum: ExpectedChecksum::default(),
        conditions: WriteConditions::default(),
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

async fn read(site: &Site, c: &Caller, key: &str, get: GetObject) -> Result<Vec<u8>, Error> {
    let b = site.ns.get_object(c, "dsets", key, &get).await?;
    let parts: Vec<Bytes> = b.stream.try_collect().await.map_err(|e| Error::Internal(e.to_string()))?;
    Ok(parts.concat())
}

fn range(first: u64, last: u64) -> GetObject {
    GetObject { range: Some(ByteRange::FromTo { first, last: Some(last) }), ..Default::default() }
}

/// The other writer: straight to the backend, as any tool would.
async fn write_directly(site: &Site, path: &str, data: &[u8]) {
    site.remote.put(path, body(data)).await.unwrap();
}

/// An operator, a tenant user, and bucket `ds` of tenant `acme` mapped onto `remote:datasets/`.
async fn mapped(site: &Site, mode: &str) -> (Caller, Caller) {
    let op = caller(site, "_system", "root", Role::Operator).await;
    let c = caller(site, "acme", "alice", Role::ReadWrite).await;
    site.admin
        .create_mapped_bucket(&op, "acme", "dsets", Some("remote"), "datasets", Some(mode.parse().unwrap()))
        .await
        .unwrap();
    (op, c)
}

#[tokio::test]
async fn an_existing_dataset_is_readable_and_listable() {
    for cached in [false, true] {
        let site = site(cached).await;
        let a = pattern(300_000, 1);
        write_directly(&site, "datasets/train/a.bin", &a).await;
        write_directly(&site, "datasets/train/b.bin", b"bee").await;
        write_directly(&site, "datasets/readme", b"hello").await;
        write_directly(&site, "elsewhere/secret", b"not mapped").await;
        let (_, c) = mapped(&site, "validate").await;

        assert_eq!(read(&site, &c, "train/a.bin", GetObject::default()).await.unwrap(), a);
        assert_eq!(read(&site, &c, "train/a.bin", range(70_000, 140_000)).await.unwrap(), a[70_000..=140_000]);
        let (rec, _) = site.ns.head_object(&c, "dsets", "readme", &GetObject::default()).await.unwrap();
        assert_eq!(rec.size, 5);
        assert!(!rec.etag.is_empty());

        let q = ListQuery { delimiter: Some("/".into()), max_keys: 1000, ..Default::default() };
        let page = site.ns.list_objects(&c, "dsets", &q).await.unwrap();
        let keys: Vec<&str> = page.objects.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["readme"]);
        assert_eq!(page.common_prefixes, ["train/"]);
        let q = ListQuery { prefix: "train/".into(), max_keys: 1, ..Default::default() };
        let page = site.ns.list_objects(&c, "dsets", &q).await.unwrap();
        assert_eq!(page.objects[0].0, "train/a.bin");
        assert_eq!(page.objects[0].1.size, 300_000);
        assert!(page.is_truncated);
        let q =
            ListQuery { prefix: "train/".into(), start_after: page.next_marker, max_keys: 10, ..Default::default() };
        let page = site.ns.list_objects(&c, "dsets", &q).await.unwrap();
        assert_eq!(page.objects.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["train/b.bin"]);
        assert!(!page.is_truncated);

        // Nothing outside the location can be named.
        assert!(matches!(
            read(&site, &c, "../elsewhere/secret", GetObject::default()).await,
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            read(&site, &c, "missing", GetObject::default()).await,
            Err(Error::NotFound(Resource::Object))
        ));
    }
}

#[tokio::test]
async fn validate_mode_sees_direct_overwrites_at_once_and_never_old_chunks() {
    let site = site(true).await;
    let (_, c) = mapped(&site, "validate").await;
    let v1 = pattern(500_000, 1);
    write_directly(&site, "datasets/obj", &v1).await;
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v1);
    assert_eq!(read(&site, &c, "obj", range(100_000, 200_000)).await.unwrap(), v1[100_000..=200_000]);

    // Same size, other bytes: every chunk of v1 is cached, none may be served.
    let v2 = pattern(500_000, 2);
    write_directly(&site, "datasets/obj", &v2).await;
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v2);
    assert_eq!(read(&site, &c, "obj", range(100_000, 200_000)).await.unwrap(), v2[100_000..=200_000]);
    let (rec, _) = site.ns.head_object(&c, "dsets", "obj", &GetObject::default()).await.unwrap();
    assert_eq!(rec.size, 500_000);

    // Deleted by the other writer: gone at once.
    site.remote.delete("datasets/obj").await.unwrap();
    assert!(matches!(read(&site, &c, "obj", GetObject::default()).await, Err(Error::NotFound(Resource::Object))));
}

#[tokio::test]
async fn ttl_mode_is_stale_at_most_for_the_ttl() {
    let site = site(true).await;
    let (op, c) = mapped(&site, "ttl=1").await;
    let v1 = pattern(200_000, 1);
    write_directly(&site, "datasets/obj", &v1).await;
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v1);
    let v2 = pattern(200_000, 2);
    write_directly(&site, "datasets/obj", &v2).await;
    // Within the TTL the remembered version is served, whole and consistent.
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v1);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v2);

    // A remembered version whose chunks are not cached restarts on the new one.
    let v3 = pattern(200_000, 3);
    write_directly(&site, "datasets/cold", &v1).await;
    let (rec, _) = site.ns.head_object(&c, "dsets", "cold", &GetObject::default()).await.unwrap();
    assert_eq!(rec.size, 200_000);
    write_directly(&site, "datasets/cold", &v3).await;
    assert_eq!(read(&site, &c, "cold", GetObject::default()).await.unwrap(), v3);

    // Switching to validate applies at once.
    write_directly(&site, "datasets/obj", &v3).await;
    site.admin.set_bucket_mode(&op, "acme", "dsets", Consistency::Validate).await.unwrap();
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v3);
}

#[tokio::test]
async fn exclusive_mode_trusts_orbit_writes_only() {
    let site = site(true).await;
    let (_, c) = mapped(&site, "exclusive").await;
    let v1 = pattern(100_000, 1);
    site.ns.put_object(&c, "dsets", "obj", put(&v1)).await.unwrap();
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v1);
    // Orbit's own overwrite is seen at once.
    let v2 = pattern(100_000, 2);
    site.ns.put_object(&c, "dsets", "obj", put(&v2)).await.unwrap();
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), v2);
    site.ns.delete_object(&c, "dsets", "obj").await.unwrap();
    assert!(matches!(read(&site, &c, "obj", GetObject::default()).await, Err(Error::NotFound(Resource::Object))));
}

#[tokio::test]
async fn a_corrupted_cached_chunk_is_refetched() {
    let site = site(true).await;
    let (_, c) = mapped(&site, "validate").await;
    let data = pattern(3 * CHUNK as usize + 10, 5);
    write_directly(&site, "datasets/obj", &data).await;
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), data);
    let etag = site.remote.head("datasets/obj").await.unwrap().etag.unwrap();
    let cache = site.ns.cache().unwrap().for_owner(&c.tenant_id.to_string());
    let cache_blob = format!("remote/datasets/obj\0{etag}");
    cache.insert_unsealed(&cache_blob, 1, Bytes::from(vec![0u8; CHUNK as usize + 4]));
    let corrupt_before = cache.stats().corrupt.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(read(&site, &c, "obj", GetObject::default()).await.unwrap(), data);
    assert_eq!(cache.stats().corrupt.load(std::sync::atomic::Ordering::Relaxed), corrupt_before + 1);
}

#[tokio::test]
async fn writes_land_at_the_mapped_path() {
    let site = site(true).await;
    let (_, c) = mapped(&site, "validate").await;
    let data = pattern(70_000, 9);
    let rec = site.ns.put_object(&c, "dsets", "new/file", put(&data)).await.unwrap();
    let m = site.remote.head("datasets/new/file").await.unwrap();
    assert_eq!(m.size, 70_000);
    assert_eq!(Some(rec.etag.as_str()), m.etag.as_deref().map(|e| e.trim_matches('"')));

    // A body that fails its checks never replaces the object.
    let mut bad = put(b"other");
    bad.content_md5 = Some("AAAAAAAAAAAAAAAAAAAAAA==".into());
    assert!(matches!(site.ns.put_object(&c, "dsets", "new/file", bad).await, Err(Error::BadDigest(_))));
    assert_eq!(read(&site, &c, "new/file", GetObject::default()).await.unwrap(), data);

    // Conditional writes are checked against the backend's object.
    let mut create_only = put(b"x");
    create_only.conditions.if_none_match = Some("*".into());
    assert!(matches!(site.ns.put_object(&c, "dsets", "new/file", create_only).await, Err(Error::PreconditionFailed)));

    // Copies in and out of the mapped bucket.
    site.ns.create_bucket(&c, "plain").await.unwrap();
    let src = CopySource { bucket: "dsets".into(), key: "new/file".into(), conditions: ReadConditions::default() };
    site.ns.copy_object(&c, "plain", "copy", src, MetadataDirective::Copy, WriteConditions::default()).await.unwrap();
    let back = CopySource { bucket: "plain".into(), key: "copy".into(), conditions: ReadConditions::default() };
    site.ns
        .copy_object(&c, "dsets", "copied", back, MetadataDirective::Copy, WriteConditions::default())
        .await
        .unwrap();
    assert_eq!(read(&site, &c, "copied", GetObject::default()).await.unwrap(), data);

    // Multipart: parts stay in Orbit's own area; completion writes one object at the path.
    let up =
        site.ns.create_upload(&c, "dsets", "big", Default::default(), Default::default(), None, None).await.unwrap();
    let p1 = pattern(5 << 20, 1);
    let p2 = pattern(1000, 2);
    let mut parts = Vec::new();
    for (n, p) in [(1, &p1), (2, &p2)] {
        let r = site
            .ns
            .upload_part(
                &c,
                "dsets",
                "big",
                &up.id.to_string(),
                n,
                body(p),
                Some(p.len() as u64),
                None,
                Default::default(),
            )
            .await
            .unwrap();
        parts.push(CompletedPart { number: n, etag: r.etag, checksum: None });
    }
    let done = site
        .ns
        .complete_upload(&c, "dsets", "big", &up.id.to_string(), parts, WriteConditions::default(), None)
        .await
        .unwrap();
    assert_eq!(done.size, p1.len() as u64 + 1000);
    let whole = [p1.as_slice(), p2.as_slice()].concat();
    assert_eq!(read(&site, &c, "big", GetObject::default()).await.unwrap(), whole);
    let req = orbit_backend::ListRequest { prefix: "datasets/".into(), max: 100, ..Default::default() };
    let listed: Vec<String> = site.remote.list(&req).await.unwrap().objects.into_iter().map(|m| m.path).collect();
    assert_eq!(listed, ["datasets/big", "datasets/copied", "datasets/new/file"]);
    // Regression: the parts' bytes, counted while stored, become the object's
    // once it is in the mapped location (they once leaked upward with every upload).
    let u = site.ns.usage(c.tenant_id, Some("dsets")).await.unwrap();
    let objects_bytes = 70_000 + 70_000 + whole.len() as u64;
    assert_eq!((u.buckets[0].usage.bytes, u.buckets[0].usage.objects), (objects_bytes, 3), "{u:?}");
}

#[tokio::test]
async fn keys_the_backend_cannot_hold_are_refused_not_rewritten() {
    let site = site(false).await;
    let (_, c) = mapped(&site, "validate").await;
    for key in ["a//b", "dir/", "/lead", "a/./b", "a/../b", "..", "tab\tkey"] {
        match site.ns.put_object(&c, "dsets", key, put(b"x")).await {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("mapped bucket"), "{key}: {m}"),
            other => panic!("{key:?}: {:?}", other.map(|r| r.etag)),
        }
    }
    assert!(site.remote.list(&Default::default()).await.unwrap().objects.is_empty());
    assert!(matches!(
        site.ns
            .list_objects(&c, "dsets", &ListQuery { delimiter: Some("|".into()), max_keys: 10, ..Default::default() })
            .await,
        Err(Error::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn only_operators_map_locations_and_never_overlapping_ones() {
    let site = site(false).await;
    let (op, _) = mapped(&site, "validate").await;
    let admin_of_acme = caller(&site, "acme", "boss", Role::TenantAdmin).await;
    assert!(matches!(
        site.admin.create_mapped_bucket(&admin_of_acme, "acme", "mine", Some("remote"), "other", None).await,
        Err(Error::AccessDenied)
    ));
    // A tenant admin may still choose how fresh its own mapped bucket is.
    site.admin.set_bucket_mode(&admin_of_acme, "acme", "dsets", Consistency::Exclusive).await.unwrap();

    caller(&site, "globex", "g", Role::ReadWrite).await;
    for overlapping in ["datasets", "datasets/sub", "datasets/"] {
        assert!(matches!(
            site.admin.create_mapped_bucket(&op, "globex", "xxx", Some("remote"), overlapping, None).await,
            Err(Error::Conflict(_))
        ));
    }
    site.admin.create_mapped_bucket(&op, "globex", "xxx", Some("remote"), "datasets2", None).await.unwrap();
    // The same prefix of another backend is another location.
    site.admin.create_mapped_bucket(&op, "globex", "yyy", None, "datasets", None).await.unwrap();
    assert!(matches!(
        site.admin.create_mapped_bucket(&op, "globex", "zzz", Some("remote"), "b/x", None).await,
        Err(Error::InvalidArgument(_))
    ));
    site.admin.set_bucket_mode(&op, "globex", "xxx", Consistency::Ttl { secs: 30 }).await.unwrap();

    // Deleting a mapped bucket keeps the data; a populated location needs force.
    write_directly(&site, "datasets2/k", b"v").await;
    assert!(matches!(site.admin.delete_bucket(&op, "globex", "xxx", false).await, Err(Error::NotEmpty(_))));
    site.admin.delete_bucket(&op, "globex", "xxx", true).await.unwrap();
    assert_eq!(site.remote.head("datasets2/k").await.unwrap().size, 1);
    // Its location is free again.
    site.admin.create_mapped_bucket(&op, "globex", "xx2", Some("remote"), "datasets2/sub", None).await.unwrap();
    let listed = site.admin.list_buckets(&op, "globex").await.unwrap();
    assert!(listed.iter().all(|b| b.mapped.is_some()));
}

#[tokio::test]
async fn a_backend_outage_is_a_503_and_reads_recover() {
    use std::sync::atomic::Ordering;
    for cached in [false, true] {
        let site = site(cached).await;
        let (_, c) = mapped(&site, "validate").await;
        let data = pattern(150_000, 4);
        write_directly(&site, "datasets/k", &data).await;
        site.remote.down.store(true, Ordering::SeqCst);
        assert!(matches!(read(&site, &c, "k", GetObject::default()).await, Err(Error::Unavailable(_))));
        let q = ListQuery { max_keys: 10, ..Default::default() };
        assert!(matches!(site.ns.list_objects(&c, "dsets", &q).await, Err(Error::Unavailable(_))));
        assert!(matches!(site.ns.put_object(&c, "dsets", "k2", put(b"x")).await, Err(Error::Unavailable(_))));
        site.remote.down.store(false, Ordering::SeqCst);
        assert_eq!(read(&site, &c, "k", GetObject::default()).await.unwrap(), data);
        assert_eq!(site.ns.list_objects(&c, "dsets", &q).await.unwrap().objects.len(), 1);
    }
}

/// The remote store, which can be switched off.
struct Switch {
    inner: ObjectStoreBackend,
    down: std::sync::atomic::AtomicBool,
}

impl Switch {
    fn check(&self) -> orbit_backend::BackendResult<()> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Err(orbit_backend::BackendError::Unavailable("switched off".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Backend for Switch {
    async fn put_with_attributes(
        &self,
        path: &str,
        body: ByteStream,
        attributes: &orbit_backend::ObjectAttributes,
    ) -> orbit_backend::BackendResult<u64> {
        self.check()?;
        self.inner.put_with_attributes(path, body, attributes).await
    }
    fn keeps_attributes(&self) -> bool {
        self.inner.keeps_attributes()
    }
    async fn get(&self, path: &str, range: Option<std::ops::Range<u64>>) -> orbit_backend::BackendResult<ByteStream> {
        self.check()?;
        self.inner.get(path, range).await
    }
    async fn get_if(
        &self,
        path: &str,
        range: Option<std::ops::Range<u64>>,
        etag: &str,
    ) -> orbit_backend::BackendResult<ByteStream> {
        self.check()?;
        self.inner.get_if(path, range, etag).await
    }
    async fn head(&self, path: &str) -> orbit_backend::BackendResult<orbit_backend::BlobMeta> {
        self.check()?;
        self.inner.head(path).await
    }
    async fn list(&self, req: &orbit_backend::ListRequest) -> orbit_backend::BackendResult<orbit_backend::BlobList> {
        self.check()?;
        self.inner.list(req).await
    }
    async fn delete(&self, path: &str) -> orbit_backend::BackendResult<()> {
        self.check()?;
        self.inner.delete(path).await
    }
    async fn copy(&self, from: &str, to: &str) -> orbit_backend::BackendResult<()> {
        self.check()?;
        self.inner.copy(from, to).await
    }
    fn describe(&self) -> String {
        "switch".into()
    }
}

#[tokio::test]
async fn prefetch_warms_mapped_objects_under_their_etag() {
    use std::sync::atomic::Ordering;
    let site = site(true).await;
    let (_, c) = mapped(&site, "validate").await;
    let data = pattern(200_000, 6);
    write_directly(&site, "datasets/warm/a", &data).await;
    assert_eq!(site.ns.warm_object(c.tenant_id, "dsets", "warm/a").await.unwrap(), Some(200_000));
    assert_eq!(site.ns.warm_object(c.tenant_id, "dsets", "warm/missing").await.unwrap(), None);
    // The read after it (HEAD, then the chunks of that ETag) misses nothing.
    let cache = site.ns.cache().unwrap().for_owner(&c.tenant_id.to_string());
    let misses = cache.stats().misses.load(Ordering::Relaxed);
    assert_eq!(read(&site, &c, "warm/a", GetObject::default()).await.unwrap(), data);
    assert_eq!(cache.stats().misses.load(Ordering::Relaxed), misses, "a warmed object is read from the cache");
}

#[tokio::test]
async fn parts_copy_from_a_mapped_source() {
    let site = site(true).await;
    let (_, c) = mapped(&site, "validate").await;
    let data = pattern(6 << 20, 7);
    write_directly(&site, "datasets/src", &data).await;
    site.ns.create_bucket(&c, "plain").await.unwrap();
    let up =
        site.ns.create_upload(&c, "plain", "dst", Default::default(), Default::default(), None, None).await.unwrap();
    let src = || CopySource { bucket: "dsets".into(), key: "src".into(), conditions: ReadConditions::default() };
    let split = 5 << 20;
    let ranges =
        [ByteRange::FromTo { first: 0, last: Some(split - 1) }, ByteRange::FromTo { first: split, last: None }];
    let mut parts = Vec::new();
    for (i, r) in ranges.into_iter().enumerate() {
        let n = i as u32 + 1;
        let p = site.ns.upload_part_copy(&c, "plain", "dst", &up.id.to_string(), n, src(), Some(r)).await.unwrap();
        parts.push(CompletedPart { number: n, etag: p.etag, checksum: None });
    }
    site.ns
        .complete_upload(&c, "plain", "dst", &up.id.to_string(), parts, WriteConditions::default(), None)
        .await
        .unwrap();
    let got = site.ns.get_object(&c, "plain", "dst", &GetObject::default()).await.unwrap();
    let got: Vec<Bytes> = got.stream.try_collect().await.unwrap();
    assert_eq!(got.concat(), data);
}

fn headers() -> ContentHeaders {
    ContentHeaders {
        content_type: Some("text/csv".into()),
        content_encoding: Some("gzip".into()),
        content_disposition: Some("attachment; filename=\"a.csv\"".into()),
        content_language: Some("de".into()),
        cache_control: Some("no-cache".into()),
        expires: Some("Wed, 21 Oct 2026 07:28:00 GMT".into()),
    }
}

async fn head(site: &Site, c: &Caller, key: &str) -> orbit_core::ObjectRecord {
    site.ns.head_object(c, "dsets", key, &GetObject::default()).await.unwrap().0
}

#[tokio::test]
async fn metadata_written_through_orbit_is_kept_on_the_object() {
    for mode in ["validate", "ttl=60", "exclusive"] {
        let site = site(true).await;
        let (_, c) = mapped(&site, mode).await;
        let meta: std::collections::BTreeMap<String, String> = [("origin".to_owned(), "lab 3".to_owned())].into();
        // Small (verified in memory) and large (staged) bodies, checksum sent before the body.
        for (key, size) in [("small", 10_000usize), ("large", (8 << 20) + 5)] {
            let data = pattern(size, 3);
            let mut p = put(&data);
            p.headers = headers();
            p.user_metadata = meta.clone();
            p.checksum = ExpectedChecksum {
                algorithm: Some(orbit_core::ChecksumAlgorithm::Crc32c),
                value: Some(orbit_core::ChecksumAlgorithm::Crc32c.digest(&data)),
                trailer: None,
            };
            site.ns.put_object(&c, "dsets", key, p).await.unwrap();
            let rec = head(&site, &c, key).await;
            assert_eq!((rec.headers.clone(), rec.user_metadata.clone()), (headers(), meta.clone()), "{mode} {key}");
            let sum = rec.checksum.expect("checksum kept");
            assert_eq!(sum.value, orbit_core::ChecksumAlgorithm::Crc32c.digest(&data), "{mode} {key}");
            // On the backend object itself, where other readers find it.
            let direct = site.remote.head(&format!("datasets/{key}")).await.unwrap().attributes;
            assert_eq!(direct.content_type.as_deref(), Some("text/csv"));
            assert_eq!(direct.metadata.get("origin").map(String::as_str), Some("lab 3"));
            // A GET answers with them too.
            let got = site.ns.get_object(&c, "dsets", key, &GetObject::default()).await.unwrap();
            assert_eq!(got.record.headers, headers());
        }
        // A multipart upload's headers and metadata go onto the completed object.
        let up = site.ns.create_upload(&c, "dsets", "multi", headers(), meta.clone(), None, None).await.unwrap();
        let data = pattern(1000, 4);
        let r = site
            .ns
            .upload_part(&c, "dsets", "multi", &up.id.to_string(), 1, body(&data), Some(1000), None, Default::default())
            .await
            .unwrap();
        let parts = vec![CompletedPart { number: 1, etag: r.etag, checksum: None }];
        site.ns
            .complete_upload(&c, "dsets", "multi", &up.id.to_string(), parts, WriteConditions::default(), None)
            .await
            .unwrap();
        let rec = head(&site, &c, "multi").await;
        assert_eq!((rec.headers, rec.user_metadata), (headers(), meta.clone()), "{mode} multipart");
        // Copying out keeps them (metadata directive COPY).
        site.ns.create_bucket(&c, "plain").await.unwrap();
        let src = CopySource { bucket: "dsets".into(), key: "small".into(), conditions: ReadConditions::default() };
        let copied = site
            .ns
            .copy_object(&c, "plain", "copy", src, MetadataDirective::Copy, WriteConditions::default())
            .await
            .unwrap();
        assert_eq!((copied.headers, copied.user_metadata), (headers(), meta.clone()));
    }
}

#[tokio::test]
async fn metadata_written_directly_shows_through_orbit() {
    let site = site(true).await;
    let (_, c) = mapped(&site, "validate").await;
    let attrs = orbit_backend::ObjectAttributes {
        content_type: Some("image/png".into()),
        cache_control: Some("max-age=5".into()),
        metadata: [("camera".to_owned(), "7".to_owned()), ("orbit_checksum".to_owned(), "garbage".to_owned())].into(),
        ..Default::default()
    };
    site.remote.put_with_attributes("datasets/img.png", body(b"png!"), &attrs).await.unwrap();
    let rec = head(&site, &c, "img.png").await;
    assert_eq!(rec.headers.content_type.as_deref(), Some("image/png"));
    assert_eq!(rec.headers.cache_control.as_deref(), Some("max-age=5"));
    // Orbit's own entries never show as user metadata; a malformed one is no checksum.
    assert_eq!(rec.user_metadata, [("camera".to_owned(), "7".to_owned())].into());
    assert_eq!(rec.checksum, None);
    // Orbit's names are refused as user metadata, in PUTs and multipart uploads alike.
    let mut p = put(b"x");
    p.user_metadata = [("orbit_checksum".to_owned(), "CRC32 FULL_OBJECT AAAAAA==".to_owned())].into();
    assert!(matches!(site.ns.put_object(&c, "dsets", "x", p).await, Err(Error::InvalidArgument(_))));
    let meta = [("Orbit_Expires".to_owned(), "x".to_owned())].into();
    let r = site.ns.create_upload(&c, "dsets", "y", Default::default(), meta, None, None).await;
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
}

#[tokio::test]
async fn a_local_backend_keeps_the_bytes_of_mapped_objects_but_not_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(ObjectStoreBackend::local(dir.path()).unwrap());
    assert!(!local.keeps_attributes());
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
    let d = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let ns = Namespace::new(meta.clone(), BackendSet::new(local), "test");
    let admin = AdminService::new(d.clone(), ns.clone(), orbit_core::Prefetcher::new(ns.clone(), meta.clone()));
    let site = Site {
        ns,
        dir: d,
        admin,
        remote: Arc::new(Switch { inner: ObjectStoreBackend::memory(), down: Default::default() }),
    };
    let op = caller(&site, "_system", "root", Role::Operator).await;
    let c = caller(&site, "acme", "alice", Role::ReadWrite).await;
    site.admin
        .create_mapped_bucket(&op, "acme", "dsets", None, "datasets", Some(Consistency::Exclusive))
        .await
        .unwrap();
    let mut p = put(b"hello");
    p.headers = headers();
    site.ns.put_object(&c, "dsets", "k", p).await.unwrap();
    assert_eq!(read(&site, &c, "k", GetObject::default()).await.unwrap(), b"hello");
    assert_eq!(head(&site, &c, "k").await.headers, ContentHeaders::default());
}

#[tokio::test]
async fn writes_into_a_mapped_bucket_count_in_usage_and_respect_hard_quotas() {
    let site = site(false).await;
    let (op, c) = mapped(&site, "validate").await;
    site.ns.put_object(&c, "dsets", "a", put(&pattern(1000, 1))).await.unwrap();
    site.ns.put_object(&c, "dsets", "b", put(&pattern(500, 1))).await.unwrap();
    assert_eq!(usage(&site, &c).await, ((1500, 2), (1500, 2)));
    // An overwrite counts the difference; a delete gives it all back.
    site.ns.put_object(&c, "dsets", "a", put(&pattern(200, 1))).await.unwrap();
    assert_eq!(usage(&site, &c).await, ((700, 2), (700, 2)));
    site.ns.delete_object(&c, "dsets", "b").await.unwrap();
    site.ns.delete_object(&c, "dsets", "b").await.unwrap();
    assert_eq!(usage(&site, &c).await, ((200, 1), (200, 1)));

    // A hard bucket quota refuses a write that would pass it, and the
    // backend object is left as it was (or absent).
    site.admin
        .set_quota(&op, "acme", Some("dsets"), Some((Some(1000), Some(2), orbit_core::QuotaKind::Hard)))
        .await
        .unwrap();
    let r = site.ns.put_object(&c, "dsets", "big", put(&pattern(900, 2))).await;
    assert!(matches!(r, Err(Error::QuotaExceeded(_))), "{r:?}");
    assert!(site.remote.head_opt("datasets/big").await.unwrap().is_none());
    let r = site.ns.put_object(&c, "dsets", "a", put(&pattern(1200, 2))).await;
    assert!(matches!(r, Err(Error::QuotaExceeded(_))));
    assert_eq!(site.remote.head("datasets/a").await.unwrap().size, 200);
    // Staged (large) bodies are refused the same way, their staging blob collected.
    site.admin
        .set_quota(&op, "acme", Some("dsets"), Some((Some(9 << 20), Some(2), orbit_core::QuotaKind::Hard)))
        .await
        .unwrap();
    let r = site.ns.put_object(&c, "dsets", "huge", put(&pattern((9 << 20) + 1, 2))).await;
    assert!(matches!(r, Err(Error::QuotaExceeded(_))));
    assert!(site.remote.head_opt("datasets/huge").await.unwrap().is_none());
    // The object count: a second object fits, a third does not (a multipart completion either).
    site.ns.put_object(&c, "dsets", "c", put(b"c")).await.unwrap();
    let up = site.ns.create_upload(&c, "dsets", "m", Default::default(), Default::default(), None, None).await.unwrap();
    let r = site
        .ns
        .upload_part(&c, "dsets", "m", &up.id.to_string(), 1, body(b"part"), Some(4), None, Default::default())
        .await
        .unwrap();
    let parts = vec![CompletedPart { number: 1, etag: r.etag, checksum: None }];
    let r =
        site.ns.complete_upload(&c, "dsets", "m", &up.id.to_string(), parts, WriteConditions::default(), None).await;
    assert!(matches!(r, Err(Error::QuotaExceeded(_))), "{r:?}");
    assert!(site.remote.head_opt("datasets/m").await.unwrap().is_none());
    site.ns.abort_upload(&c, "dsets", "m", &up.id.to_string()).await.unwrap();
    assert_eq!(usage(&site, &c).await, ((201, 2), (201, 2)));

    // Writes behind Orbit's back are not counted until a recount lists the location.
    write_directly(&site, "datasets/direct/x", &pattern(4000, 5)).await;
    assert_eq!(usage(&site, &c).await, ((201, 2), (201, 2)));
    let drift = site.admin.recount(&op, "acme", false).await.unwrap();
    let d = drift.iter().find(|d| d.bucket.as_deref() == Some("dsets")).unwrap();
    assert_eq!((d.counted.bytes, d.actual.bytes, d.actual.objects, d.corrected), (201, 4201, 3, false));
    site.admin.recount(&op, "acme", true).await.unwrap();
    assert_eq!(usage(&site, &c).await, ((4201, 3), (4201, 3)));
    // Now over its quota, the bucket refuses growth but allows shrinking.
    let r = site.ns.put_object(&c, "dsets", "d", put(b"d")).await;
    assert!(matches!(r, Err(Error::QuotaExceeded(_))));
    site.ns.delete_object(&c, "dsets", "direct/x").await.unwrap();
    assert_eq!(usage(&site, &c).await, ((201, 2), (201, 2)));
}

/// ((tenant bytes, objects), (bucket `dsets` bytes, objects)).
async fn usage(site: &Site, c: &Caller) -> ((u64, u64), (u64, u64)) {
    let u = site.ns.usage(c.tenant_id, Some("dsets")).await.unwrap();
    ((u.usage.bytes, u.usage.objects), (u.buckets[0].usage.bytes, u.buckets[0].usage.objects))
}
