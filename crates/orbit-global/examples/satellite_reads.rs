//! What a read costs at a satellite, on loopback in one process: a GET of a
//! 64 KiB object at home, at a satellite holding a lease with everything
//! cached (no wide-area round trip), and at a satellite that must fetch the
//! record and the chunk from home (the first read after a write there).
//!
//! `cargo run -p orbit-global --example satellite_reads`

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orbit_backend::{Backend, BackendSet, ObjectStoreBackend};
use orbit_cache::{CacheConfig, CachePool, ChunkCache};
use orbit_core::{ContentHeaders, ExpectedChecksum, GetObject, Namespace, PutObject, WriteConditions};
use orbit_global::leases::Sites;
use orbit_meta::{MemoryStore, MetaStore, Table, Txn};
use orbit_peer::{PeerClient, PeerConfig, PeerServer};
use orbit_site::{LeaseTiming, SiteId};
use orbit_tenancy::{Caller, Directory, MasterKey, TenantModel};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn site(
    name: &str,
    peer: &str,
    peer_addr: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
) -> (Namespace, Directory, Arc<dyn MetaStore>) {
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
    let config = PeerConfig::new(SiteId::new(name)).with_peer(
        SiteId::new(peer),
        format!("http://{peer_addr}"),
        "pair-secret-pair",
    );
    let client = Arc::new(PeerClient::new(&config).unwrap());
    let dir = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let sites =
        Sites::start(SiteId::new(name), LeaseTiming::default(), client, meta.clone(), dir.clone()).await.unwrap();
    let cache = ChunkCache::open(&CacheConfig { ram_bytes: 256 << 20, ..Default::default() }).await.unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory());
    let ns =
        sites.install(Namespace::new(meta.clone(), BackendSet::new(backend), name).with_cache(CachePool::new(cache)));
    let server = PeerServer::new(&config, sites.peer_handler()).with_data(sites.data_handler());
    tokio::spawn(server.serve(listener, futures::future::pending()));
    sites.spawn_ticker();
    (ns, dir, meta)
}

fn put(data: &[u8]) -> PutObject {
    PutObject {
        body: futures::stream::once(futures::future::ready(Ok(Bytes::copy_from_slice(data)))).boxed(),
        content_length: Some(data.len() as u64),
        headers: ContentHeaders::default(),
        user_metadata: Default::default(),
        content_md5: None,
        checksum: ExpectedChecksum::default(),
        conditions: WriteConditions::default(),
    }
}

async fn get(ns: &Namespace, c: &Caller, key: &str) -> Duration {
    let started = Instant::now();
    let body = ns.get_object(c, "data", key, &GetObject::default()).await.unwrap();
    let parts: Vec<Bytes> = body.stream.try_collect().await.unwrap();
    assert_eq!(parts.concat().len(), 64 << 10);
    started.elapsed()
}

fn report(what: &str, mut t: Vec<Duration>) {
    t.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{what:<44} p50 {:>8.0} µs   p99 {:>8.0} µs   (n={})",
        us(t[t.len() / 2]),
        us(t[t.len() * 99 / 100]),
        t.len()
    );
}

#[tokio::main]
async fn main() {
    let (lh, ls) = (
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let (ah, as_) = (lh.local_addr().unwrap(), ls.local_addr().unwrap());
    let (home, hdir, hmeta) = site("home", "sat", as_, lh).await;
    let (sat, sdir, smeta) = site("sat", "home", ah, ls).await;
    let t = hdir.create_tenant(&"acme".parse().unwrap(), TenantModel::SelfManaged).await.unwrap();
    let u = hdir.create_user(&t, &"alice".parse().unwrap(), orbit_types::Role::ReadWrite).await.unwrap();
    let (k, _) = hdir.create_key(&u, None).await.unwrap();
    let hc = hdir.authenticate(&k.access_key_id).await.unwrap().0;
    home.create_bucket(&hc, "data").await.unwrap();
    for table in [
        Table::Tenants,
        Table::TenantNames,
        Table::Users,
        Table::UserNames,
        Table::AccessKeys,
        Table::UserKeys,
        Table::Buckets,
    ] {
        let mut txn = Txn::new();
        for (k, v) in hmeta.scan(table, Bound::Unbounded, Bound::Unbounded, usize::MAX).await.unwrap() {
            txn.push_put(table, k, v);
        }
        smeta.commit(txn).await.unwrap();
    }
    let sc = sdir.authenticate(&k.access_key_id).await.unwrap().0;
    let data = vec![7u8; 64 << 10];
    home.put_object(&hc, "data", "k", put(&data)).await.unwrap();
    get(&sat, &sc, "k").await;
    tokio::time::sleep(Duration::from_millis(200)).await; // the lease arrives
    get(&sat, &sc, "k").await;
    let n = 500;
    let mut at_home = Vec::new();
    let mut hits = Vec::new();
    for _ in 0..n {
        at_home.push(get(&home, &hc, "k").await);
        hits.push(get(&sat, &sc, "k").await);
    }
    let mut fetches = Vec::new();
    for i in 0..100u32 {
        let mut d = data.clone();
        d[..4].copy_from_slice(&i.to_be_bytes());
        home.put_object(&hc, "data", "k", put(&d)).await.unwrap();
        fetches.push(get(&sat, &sc, "k").await);
    }
    report("GET 64 KiB at home (hot cache)", at_home);
    report("GET 64 KiB at a leased satellite, cached", hits);
    report("GET 64 KiB at a satellite after a write at home", fetches);
}
