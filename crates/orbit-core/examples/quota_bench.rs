//! What usage accounting and hard quotas cost a PUT, and whether concurrent
//! writers ever overshoot a hard quota. Prints figures; asserts nothing about time.
//!
//!   cargo run -p orbit-core --example quota_bench [--release] -- [WRITERS] [PUTS_PER_WRITER]
//!
//! Over redb on disk (fsync per commit) and an in-memory backend, WRITERS
//! tasks each PUT PUTS_PER_WRITER 4 KiB objects to distinct keys of one
//! bucket, three ways: no quota (counters only); hard tenant and bucket
//! quotas far above what is written (the quota check and its commit
//! condition); and a hard bucket quota that admits exactly half the writes,
//! repeated for ROUNDS buckets, to count overshoot.

use bytes::Bytes;
use futures::StreamExt;
use orbit_backend::{BackendSet, ObjectStoreBackend};
use orbit_core::{ContentHeaders, ExpectedChecksum, Namespace, PutObject, Quota, QuotaKind, WriteConditions};
use orbit_meta::{MetaStore, RedbStore};
use orbit_tenancy::{Caller, Directory, MasterKey, TenantModel};
use orbit_types::{Error, Role};
use std::sync::Arc;
use std::time::Instant;

const SIZE: usize = 4096;
const ROUNDS: usize = 10;

fn put() -> PutObject {
    let body = futures::stream::iter(vec![Ok(Bytes::from(vec![1u8; SIZE]))]).boxed();
    PutObject {
        body,
        content_length: Some(SIZE as u64),
        headers: ContentHeaders::default(),
        user_metadata: Default::default(),
        content_md5: None,
        checksum: ExpectedChecksum::default(),
        conditions: WriteConditions::default(),
    }
}

/// (seconds, accepted, refused) of `writers` × `each` concurrent PUTs.
async fn run(ns: &Namespace, c: &Caller, bucket: &str, writers: usize, each: usize) -> (f64, usize, usize) {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (ns, c, bucket) = (ns.clone(), c.clone(), bucket.to_owned());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut refused) = (0, 0);
            for i in 0..each {
                match ns.put_object(&c, &bucket, &format!("w{w}/k{i}"), put()).await {
                    Ok(_) => ok += 1,
                    Err(Error::QuotaExceeded(_)) => refused += 1,
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            (ok, refused)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for t in tasks {
        let (o, r) = t.await.expect("writer task");
        ok += o;
        refused += r;
    }
    (start.elapsed().as_secs_f64(), ok, refused)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let writers = args.first().copied().unwrap_or(16);
    let each = args.get(1).copied().unwrap_or(50);
    let dir = tempfile::tempdir().expect("temp dir");
    let meta: Arc<dyn MetaStore> = Arc::new(RedbStore::open(&dir.path().join("meta.redb")).expect("redb"));
    let dirx = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).expect("key"));
    let ns = Namespace::new(meta, BackendSet::new(Arc::new(ObjectStoreBackend::memory())), "bench");
    let t = dirx.create_tenant(&"bench".parse().unwrap(), TenantModel::AdminOnly).await.unwrap();
    let u = dirx.create_user(&t, &"writer".parse().unwrap(), Role::ReadWrite).await.unwrap();
    let (k, _) = dirx.create_key(&u, None).await.unwrap();
    let c = dirx.authenticate(&k.access_key_id).await.unwrap().0;
    let hard = |b: u64| Some(Quota { max_bytes: Some(b), max_objects: None, kind: QuotaKind::Hard, updated_ms: 0 });
    let total = writers * each;
    println!("{writers} writers x {each} PUTs of {SIZE} B, redb on disk, memory backend");

    ns.create_bucket(&c, "plain").await.unwrap();
    let (s, ok, _) = run(&ns, &c, "plain", writers, each).await;
    println!("no quota (counters only): {:>8.0} PUT/s ({ok} PUTs in {s:.2} s)", ok as f64 / s);

    ns.create_bucket(&c, "roomy").await.unwrap();
    ns.set_quota(c.tenant_id, None, hard(u64::MAX / 2)).await.unwrap();
    ns.set_quota(c.tenant_id, Some("roomy"), hard(u64::MAX / 2)).await.unwrap();
    let (s, ok, _) = run(&ns, &c, "roomy", writers, each).await;
    println!("hard tenant + bucket quota, far: {:>8.0} PUT/s ({ok} PUTs in {s:.2} s)", ok as f64 / s);
    ns.set_quota(c.tenant_id, None, None).await.unwrap();

    let half = (total / 2 * SIZE) as u64;
    let (mut secs, mut worst, mut attempts) = (0.0, 0i64, 0);
    for r in 0..ROUNDS {
        let b = format!("tight-{r}");
        ns.create_bucket(&c, &b).await.unwrap();
        ns.set_quota(c.tenant_id, Some(&b), hard(half)).await.unwrap();
        let (s, _, _) = run(&ns, &c, &b, writers, each).await;
        secs += s;
        attempts += total;
        let u = ns.usage(c.tenant_id, Some(&b)).await.unwrap();
        worst = worst.max(u.buckets[0].usage.bytes as i64 - half as i64);
    }
    println!(
        "hard bucket quota admitting half, {ROUNDS} rounds: {:>8.0} attempts/s; worst overshoot {worst} bytes",
        attempts as f64 / secs
    );
}
