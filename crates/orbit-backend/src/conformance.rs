//! The behaviour every [`Backend`] must show, run against each implementation.

use crate::{Backend, BackendError, BackendExt, ByteStream, ListRequest, ObjectAttributes, ObjectStoreBackend};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};

fn stream_of(chunks: Vec<Vec<u8>>) -> ByteStream {
    futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).boxed()
}

async fn read_all(b: &dyn Backend, path: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let s = b.get(path, range).await.unwrap();
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

async fn run_all(b: &dyn Backend) {
    // Small put and full, ranged and empty-range reads.
    let small = pattern(1000);
    assert_eq!(b.put("t/small", stream_of(vec![small[..10].to_vec(), small[10..].to_vec()])).await.unwrap(), 1000);
    assert_eq!(read_all(b, "t/small", None).await, small);
    assert_eq!(read_all(b, "t/small", Some(100..200)).await, small[100..200]);
    assert!(read_all(b, "t/small", Some(5..5)).await.is_empty());

    // A body larger than one part streams through multipart and reads back whole.
    let big = pattern(20 * 1024 * 1024 + 123);
    let chunks: Vec<Vec<u8>> = big.chunks(1024 * 1024).map(<[u8]>::to_vec).collect();
    assert_eq!(b.put("t/big", stream_of(chunks)).await.unwrap(), big.len() as u64);
    assert_eq!(read_all(b, "t/big", None).await, big);
    let r = 8 * 1024 * 1024 - 10..9 * 1024 * 1024 + 10;
    assert_eq!(read_all(b, "t/big", Some(r.clone())).await, big[r.start as usize..r.end as usize]);

    // A failing input stream stores nothing, small or large.
    for size in [10usize, 12 * 1024 * 1024] {
        let failing: ByteStream = futures::stream::iter(vec![
            Ok(Bytes::from(vec![1u8; size])),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
        ])
        .boxed();
        assert!(matches!(b.put("t/failed", failing).await, Err(BackendError::Input(_))));
        assert!(matches!(b.get("t/failed", None).await, Err(BackendError::NotFound(_))));
    }

    // Copy, delete, and deleting twice.
    b.copy("t/small", "t/copy").await.unwrap();
    assert_eq!(read_all(b, "t/copy", None).await, small);
    b.delete("t/small").await.unwrap();
    b.delete("t/small").await.unwrap();
    assert!(matches!(b.get("t/small", None).await, Err(BackendError::NotFound(_))));
    assert_eq!(read_all(b, "t/copy", None).await, small);

    // Empty blobs exist and read back empty.
    b.put("t/empty", stream_of(vec![])).await.unwrap();
    assert!(read_all(b, "t/empty", None).await.is_empty());

    describe_and_read_conditionally(b).await;
    list_pages(b).await;
    attributes_round_trip(b).await;
}

/// Content headers and user metadata written with an object come back from
/// `head` and survive `copy` (what mapped buckets keep their metadata in),
/// for small bodies and multipart ones; a store that cannot keep them
/// (a local directory) says so, stores the bytes all the same and gives
/// back none.
async fn attributes_round_trip(b: &dyn Backend) {
    let attrs = ObjectAttributes {
        content_type: Some("text/csv; charset=utf-8".into()),
        content_encoding: Some("gzip".into()),
        content_disposition: Some("attachment; filename=\"a b.csv\"".into()),
        content_language: Some("fr-CA".into()),
        cache_control: Some("max-age=60".into()),
        // Names as Azure allows them (C# identifiers), which S3 and GCS accept too.
        metadata: [("origin".to_owned(), "camera 7".to_owned()), ("orbit_sha".to_owned(), "abc=".to_owned())].into(),
    };
    let want = if b.keeps_attributes() { attrs.clone() } else { ObjectAttributes::default() };
    let small = pattern(2000);
    b.put_with_attributes("a/small", stream_of(vec![small.clone()]), &attrs).await.unwrap();
    assert_eq!(read_all(b, "a/small", None).await, small);
    assert_eq!(b.head("a/small").await.unwrap().attributes, want);
    b.copy("a/small", "a/copied").await.unwrap();
    assert_eq!(b.head("a/copied").await.unwrap().attributes, want);

    let big = pattern(9 * 1024 * 1024);
    let chunks: Vec<Vec<u8>> = big.chunks(1024 * 1024).map(<[u8]>::to_vec).collect();
    b.put_with_attributes("a/big", stream_of(chunks), &attrs).await.unwrap();
    assert_eq!(b.head("a/big").await.unwrap().attributes, want);
    assert_eq!(read_all(b, "a/big", None).await, big);

    // An overwrite without attributes drops them: they belong to one version.
    b.put("a/small", stream_of(vec![small])).await.unwrap();
    let plain = b.head("a/small").await.unwrap().attributes;
    assert!(plain.metadata.is_empty() && plain.content_encoding.is_none(), "{plain:?}");
}

/// `head` and `get_if`: what mapped buckets build on when others write too.
async fn describe_and_read_conditionally(b: &dyn Backend) {
    let one = pattern(3000);
    b.put("h/obj", stream_of(vec![one.clone()])).await.unwrap();
    let m = b.head("h/obj").await.unwrap();
    assert_eq!((m.path.as_str(), m.size), ("h/obj", 3000));
    assert!(m.last_modified_ms > 1_600_000_000_000, "last-modified in ms since the epoch");
    let etag = m.etag.clone().expect("every backend gives an ETag");
    assert!(matches!(b.head("h/missing").await, Err(BackendError::NotFound(_))));
    assert_eq!(b.head_opt("h/missing").await.unwrap(), None);

    let read_if = |range, etag: String| async move {
        let s = b.get_if("h/obj", range, &etag).await?;
        let parts: Vec<bytes::Bytes> = s.try_collect().await.map_err(|e| BackendError::Unavailable(e.to_string()))?;
        Ok::<_, BackendError>(parts.concat())
    };
    assert_eq!(read_if(Some(10..20), etag.clone()).await.unwrap(), one[10..20]);
    assert_eq!(read_if(None, etag.clone()).await.unwrap(), one);

    // Overwritten by someone else: the old ETag no longer reads, the new one does.
    let two: Vec<u8> = pattern(3000).into_iter().map(|x| x ^ 0xff).collect();
    b.put("h/obj", stream_of(vec![two.clone()])).await.unwrap();
    let m2 = b.head("h/obj").await.unwrap();
    assert_ne!(m2.etag, Some(etag.clone()), "an overwrite changes the ETag");
    assert!(matches!(read_if(Some(10..20), etag.clone()).await, Err(BackendError::Changed(_))));
    assert_eq!(read_if(Some(10..20), m2.etag.clone().unwrap()).await.unwrap(), two[10..20]);
    // Deleted: either answer says "not that version" (Azure answers If-Match on a missing blob with 412).
    b.delete("h/obj").await.unwrap();
    assert!(matches!(read_if(Some(0..1), etag).await, Err(BackendError::NotFound(_) | BackendError::Changed(_))));
}

/// Listings by string prefix, with and without the `/` delimiter, paged.
async fn list_pages(b: &dyn Backend) {
    for p in ["l/a/1", "l/a/2", "l/b", "l/c/x", "l/cz", "l/d"] {
        b.put(p, stream_of(vec![p.as_bytes().to_vec()])).await.unwrap();
    }
    let list = |prefix: &str, delimiter: bool, after: Option<&str>, max: usize| {
        let req = ListRequest { prefix: prefix.into(), delimiter, start_after: after.map(Into::into), max };
        async move { b.list(&req).await.unwrap() }
    };
    let names = |l: &crate::BlobList| l.objects.iter().map(|m| m.path.clone()).collect::<Vec<_>>();

    let l = list("l/", true, None, 100).await;
    assert_eq!(names(&l), ["l/b", "l/cz", "l/d"]);
    assert_eq!(l.common_prefixes, ["l/a/", "l/c/"]);
    assert!(!l.truncated);
    assert_eq!(l.objects[0].size, 3);
    assert!(l.objects[0].etag.is_some());

    // A prefix that ends inside a segment matches by string, as S3 does.
    let l = list("l/c", true, None, 100).await;
    assert_eq!((names(&l), l.common_prefixes), (vec!["l/cz".to_owned()], vec!["l/c/".to_owned()]));

    let l = list("l/", false, None, 100).await;
    assert_eq!(names(&l), ["l/a/1", "l/a/2", "l/b", "l/c/x", "l/cz", "l/d"]);

    // Pages: a marker resumes strictly after itself, prefixes count as entries.
    let l = list("l/", false, None, 2).await;
    assert_eq!((names(&l), l.truncated), (vec!["l/a/1".to_owned(), "l/a/2".to_owned()], true));
    let l = list("l/", false, Some("l/a/2"), 3).await;
    assert_eq!((names(&l), l.truncated), (vec!["l/b".to_owned(), "l/c/x".to_owned(), "l/cz".to_owned()], true));
    let l = list("l/", true, None, 2).await;
    assert_eq!(
        (names(&l), l.common_prefixes.clone(), l.truncated),
        (vec!["l/b".to_owned()], vec!["l/a/".to_owned()], true)
    );
    let l = list("l/", true, Some("l/b"), 10).await;
    assert_eq!(
        (names(&l), l.common_prefixes, l.truncated),
        (vec!["l/cz".to_owned(), "l/d".to_owned()], vec!["l/c/".to_owned()], false)
    );
    let l = list("l/a/1x", false, None, 10).await;
    assert!(l.objects.is_empty() && l.common_prefixes.is_empty());
    assert!(list("nothing/here/", true, None, 10).await.objects.is_empty());
}

#[test]
fn paths_a_backend_cannot_hold_are_named() {
    assert!(crate::check_path("a/b.txt").is_ok());
    assert!(crate::check_path("a b/ü/x~y").is_ok());
    for bad in ["", "/a", "a/", "a//b", "./a", "a/../b", "a\x01b"] {
        assert!(crate::check_path(bad).is_err(), "{bad:?} must be refused");
    }
}

#[tokio::test]
async fn memory_backend() {
    run_all(&ObjectStoreBackend::memory()).await;
}

#[tokio::test]
async fn local_backend() {
    let dir = tempfile::tempdir().unwrap();
    let b = ObjectStoreBackend::local(dir.path()).unwrap();
    run_all(&b).await;
    // Nothing but finished blobs is left behind on disk (no staging files).
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let name = e.file_name().into_string().unwrap();
                assert!(!name.contains('#'), "staging file left behind: {name}");
            }
        }
    }
}

/// The same suite against a real S3 server that is not Orbit. Run by
/// `scripts/test.sh`, which starts moto's server and creates the bucket:
/// `ORBIT_TEST_S3_ENDPOINT=http://127.0.0.1:PORT ORBIT_TEST_S3_BUCKET=NAME
///  cargo test -p orbit-backend -- --ignored s3_backend`
#[tokio::test]
#[ignore = "needs a real S3 server; run by scripts/test.sh"]
async fn s3_backend() {
    let endpoint = std::env::var("ORBIT_TEST_S3_ENDPOINT").expect("ORBIT_TEST_S3_ENDPOINT must name an S3 server");
    let bucket = std::env::var("ORBIT_TEST_S3_BUCKET").expect("ORBIT_TEST_S3_BUCKET must name a bucket in it");
    let opts = crate::S3Options {
        endpoint: Some(endpoint),
        bucket,
        region: "us-east-1".into(),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        allow_http: true,
        virtual_hosted_style: false,
    };
    run_all(&ObjectStoreBackend::s3(&opts, Some("conformance")).unwrap()).await;
    // An unreachable store fails fast with an error a caller can retry, not a hang.
    let down = crate::S3Options { endpoint: Some("http://127.0.0.1:9".into()), ..opts };
    let b = ObjectStoreBackend::s3(&down, None).unwrap();
    let started = std::time::Instant::now();
    assert!(matches!(b.get("t/x", None).await, Err(BackendError::Unavailable(_))));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

/// The same suite against Azurite, the Azure Blob emulator (from npm). Run by
/// `scripts/test.sh`, which starts it and creates the container:
/// `ORBIT_TEST_AZURE_ENDPOINT=http://127.0.0.1:PORT/devstoreaccount1 ORBIT_TEST_AZURE_CONTAINER=NAME
///  cargo test -p orbit-backend -- --ignored azure_backend`
#[tokio::test]
#[ignore = "needs Azurite; run by scripts/test.sh"]
async fn azure_backend() {
    let endpoint = std::env::var("ORBIT_TEST_AZURE_ENDPOINT").expect("ORBIT_TEST_AZURE_ENDPOINT must name Azurite");
    let container =
        std::env::var("ORBIT_TEST_AZURE_CONTAINER").expect("ORBIT_TEST_AZURE_CONTAINER must name a container");
    let opts = crate::AzureOptions {
        account: "devstoreaccount1".into(),
        container,
        // Azurite's published development key.
        access_key: Some(
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==".into(),
        ),
        endpoint: Some(endpoint),
        allow_http: true,
    };
    run_all(&ObjectStoreBackend::azure(&opts, Some("conformance")).unwrap()).await;
}
