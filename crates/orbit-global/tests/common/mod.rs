//! Several sites in one process: each with its own metadata store, backend,
//! chunk cache and peer listener, talking to the others through cuttable TCP
//! links on loopback, so a test can partition a site or restart it.

#![allow(dead_code)]

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use orbit_backend::{Backend, BackendSet, ByteStream, ObjectStoreBackend};
use orbit_cache::{CacheConfig, CachePool, ChunkCache};
use orbit_core::{ContentHeaders, ExpectedChecksum, GetObject, ListQuery, Namespace, PutObject, WriteConditions};
use orbit_global::leases::Sites;
use orbit_meta::{MemoryStore, MetaStore, Table, Txn};
use orbit_peer::{PeerClient, PeerConfig, PeerServer};
use orbit_site::{LeaseTiming, SiteId};
use orbit_tenancy::{Caller, Directory, MasterKey, TenantModel};
use orbit_types::{Error, Role};
use std::net::SocketAddr;
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const SECRET: &str = "pair-secret";

/// Short leases, so expiries happen within a test.
pub fn timing() -> LeaseTiming {
    LeaseTiming {
        read_lease: Duration::from_secs(2),
        drift: 0.01,
        margin: Duration::from_millis(200),
        renew_before: Duration::from_millis(800),
        retry_every: Duration::from_millis(200),
    }
}

/// A TCP link to a site's peer listener that a test can cut (every open
/// connection dropped, new ones refused) and mend, and point elsewhere. Each
/// cut starts a new generation: a connection of an earlier one is dropped
/// even if the link was mended before it noticed, so nothing reaches a
/// restarted site's previous incarnation.
pub struct Link {
    pub addr: SocketAddr,
    target: Arc<Mutex<SocketAddr>>,
    refused: Arc<std::sync::atomic::AtomicBool>,
    generation: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Link {
    pub async fn new(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(target));
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (generation, _) = watch::channel(0u64);
        let (t, r, g) = (target.clone(), refused.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if r.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let mut rx = g.subscribe();
                let born = *rx.borrow_and_update();
                let to = *t.lock().unwrap();
                tokio::spawn(async move {
                    let connect = async {
                        let mut outbound = TcpStream::connect(to).await?;
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await
                    };
                    tokio::select! {
                        _ = connect => {}
                        _ = rx.wait_for(|g| *g != born) => {}
                    }
                });
            }
        });
        Self { addr, target, refused, generation, task }
    }

    pub fn cut(&self) {
        self.refused.store(true, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn mend(&self) {
        self.refused.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn retarget(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = to;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// One running site.
pub struct Site {
    pub name: String,
    pub meta: Arc<dyn MetaStore>,
    backend: Arc<dyn Backend>,
    pub dir: Directory,
    pub ns: Namespace,
    pub sites: Sites,
    server: JoinHandle<std::io::Result<()>>,
    ticker: JoinHandle<()>,
}

impl Site {
    pub fn stop(&self) {
        self.server.abort();
        self.ticker.abort();
    }
}

/// Sites named `names`, the first being home to the test bucket.
pub struct World {
    pub sites: Vec<Site>,
    /// links[i]: the way every other site reaches site i.
    pub links: Vec<Link>,
}

async fn start_site(
    name: &str,
    meta: Arc<dyn MetaStore>,
    backend: Arc<dyn Backend>,
    peers: &[(String, String)],
) -> (Site, SocketAddr) {
    let mut config = PeerConfig::new(SiteId::new(name));
    for (peer, url) in peers {
        config = config.with_peer(SiteId::new(peer.clone()), url.clone(), SECRET);
    }
    let client = Arc::new(PeerClient::new(&config).unwrap());
    let dir = Directory::new(meta.clone(), MasterKey::from_bytes(&[7u8; 32]).unwrap());
    let sites = Sites::start(SiteId::new(name), timing(), client, meta.clone(), dir.clone()).await.unwrap();
    let cache =
        ChunkCache::open(&CacheConfig { ram_bytes: 64 << 20, ssd_dir: None, ssd_bytes: 0, chunk_size: 256 << 10 })
            .await
            .unwrap();
    let ns = Namespace::new(meta.clone(), BackendSet::new(backend.clone()), name).with_cache(CachePool::new(cache));
    let ns = sites.install(ns);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = PeerServer::new(&config, sites.peer_handler()).with_data(sites.data_handler());
    let server = tokio::spawn(server.serve(listener, futures::future::pending()));
    let ticker = sites.spawn_ticker();
    let site = Site { name: name.to_owned(), meta, backend, dir, ns, sites, server, ticker };
    (site, addr)
}

impl World {
    pub async fn new(names: &[&str]) -> Self {
        // Links first (to a placeholder), so every site knows every URL.
        let placeholder: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut links = Vec::new();
        for _ in names {
            links.push(Link::new(placeholder).await);
        }
        let mut sites = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let peers = Self::peers_of(names, &links, i);
            let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
            let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory());
            let (site, addr) = start_site(name, meta, backend, &peers).await;
            links[i].retarget(addr);
            sites.push(site);
        }
        Self { sites, links }
    }

    fn peers_of(names: &[&str], links: &[Link], i: usize) -> Vec<(String, String)> {
        names.iter().enumerate().filter(|(j, _)| *j != i).map(|(j, n)| (n.to_string(), links[j].url())).collect()
    }

    /// Restarts site `i` over the same metadata store and backend: a crash,
    /// as far as the lease protocol can tell (nothing in memory survives).
    pub async fn restart(&mut self, i: usize) {
        self.links[i].cut();
        self.sites[i].stop();
        let names: Vec<String> = self.sites.iter().map(|s| s.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let peers = Self::peers_of(&names, &self.links, i);
        let (meta, backend) = (self.sites[i].meta.clone(), self.sites[i].backend.clone());
        let (site, addr) = start_site(names[i], meta, backend, &peers).await;
        self.links[i].retarget(addr);
        self.links[i].mend();
        self.sites[i] = site;
    }

    /// Creates a tenant, a user and a bucket at site 0 (its home) and writes
    /// the same records into every other site's store, as the directory
    /// mirror does. Returns the access key id.
    pub async fn provision(&self, bucket: &str) -> String {
        let home = &self.sites[0];
        let t = home.dir.create_tenant(&"acme".parse().unwrap(), TenantModel::SelfManaged).await.unwrap();
        let u = home.dir.create_user(&t, &"alice".parse().unwrap(), Role::ReadWrite).await.unwrap();
        let (k, _) = home.dir.create_key(&u, None).await.unwrap();
        let caller = home.dir.authenticate(&k.access_key_id).await.unwrap().0;
        home.ns.create_bucket(&caller, bucket).await.unwrap();
        let tables = [
            Table::Tenants,
            Table::TenantNames,
            Table::Users,
            Table::UserNames,
            Table::AccessKeys,
            Table::UserKeys,
            Table::Buckets,
            Table::Grants,
            Table::TenantLimits,
        ];
        for other in &self.sites[1..] {
            for table in tables {
                let rows = home.meta.scan(table, Bound::Unbounded, Bound::Unbounded, usize::MAX).await.unwrap();
                let mut txn = Txn::new();
                for (k, v) in rows {
                    txn.push_put(table, k, v);
                }
                other.meta.commit(txn).await.unwrap();
            }
        }
        k.access_key_id
    }

    pub async fn caller(&self, i: usize, key: &str) -> Caller {
        self.sites[i].dir.authenticate(key).await.unwrap().0
    }
}

pub fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data.chunks(64 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(chunks).boxed()
}

pub fn put(data: &[u8]) -> PutObject {
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

pub async fn read(site: &Site, c: &Caller, bucket: &str, key: &str) -> Result<Vec<u8>, Error> {
    let b = site.ns.get_object(c, bucket, key, &GetObject::default()).await?;
    let parts: Vec<Bytes> = b.stream.try_collect().await.map_err(|e| Error::Internal(e.to_string()))?;
    Ok(parts.concat())
}

pub async fn list(site: &Site, c: &Caller, bucket: &str, prefix: &str) -> Result<Vec<String>, Error> {
    let q = ListQuery { prefix: prefix.into(), max_keys: 1000, ..Default::default() };
    let page = site.ns.list_objects(c, bucket, &q).await?;
    Ok(page.objects.into_iter().map(|(k, _)| k).collect())
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Waits (bounded) until site `i` holds a read lease from its home.
pub async fn leased(world: &World, i: usize) {
    for _ in 0..100 {
        if !world.sites[i].sites.table().held.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("site {} got no lease", world.sites[i].name);
}
