//! The directory mirror between two sites in one process: the satellite's
//! channel hands each message straight to the directory site's authority
//! (what the peer channel does over the network, minus the bytes).

use async_trait::async_trait;
use orbit_backend::{BackendSet, ObjectStoreBackend};
use orbit_core::Namespace;
use orbit_global::directory::{
    DirectoryAuthority, DirectoryChannel, DirectorySiteBuckets, Mirror, PullError, PullOutcome, VersionedStore,
};
use orbit_meta::{MemoryStore, MetaResult, MetaStore, MetaStoreExt, Table, Txn};
use orbit_site::{Message, SiteId};
use orbit_tenancy::{Directory, MasterKey, TenantModel};
use orbit_types::{Error, Resource, Role};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Delivers messages to the directory site's authority, unless
/// "partitioned"; can answer a pull with an old copy, like a late answer.
struct Loopback {
    authority: Arc<DirectoryAuthority>,
    from: SiteId,
    down: AtomicBool,
    sent: AtomicUsize,
    last_copy: std::sync::Mutex<Option<Message>>,
    replay_old_copy: AtomicBool,
}

#[async_trait]
impl DirectoryChannel for Loopback {
    async fn ask(&self, message: Message) -> Result<Message, String> {
        if self.down.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        self.sent.fetch_add(1, Ordering::SeqCst);
        let is_pull = matches!(message, Message::DirectoryPull { .. });
        if is_pull && self.replay_old_copy.load(Ordering::SeqCst) {
            return self.last_copy.lock().unwrap().clone().ok_or_else(|| "no copy yet".to_owned());
        }
        match self.authority.handle(&self.from, message).await {
            Some(Ok(Some(answer))) => {
                if matches!(answer, Message::DirectorySnapshot { .. }) {
                    *self.last_copy.lock().unwrap() = Some(answer.clone());
                }
                Ok(answer)
            }
            other => Err(format!("no answer: {other:?}")),
        }
    }
}

/// A store that counts commits and can be told to fail them.
struct Recording {
    inner: MemoryStore,
    commits: AtomicUsize,
    fail: AtomicBool,
}

#[async_trait]
impl MetaStore for Recording {
    async fn get(&self, table: Table, key: &[u8]) -> MetaResult<Option<Vec<u8>>> {
        self.inner.get(table, key).await
    }
    async fn scan(
        &self,
        table: Table,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> MetaResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.inner.scan(table, start, end, limit).await
    }
    async fn commit(&self, txn: Txn) -> MetaResult<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(orbit_meta::MetaError::Unavailable("disk full".into()));
        }
        self.commits.fetch_add(1, Ordering::SeqCst);
        self.inner.commit(txn).await
    }
}

struct Site {
    directory: Directory,
    namespace: Namespace,
}

async fn site(name: &str, meta: Arc<dyn MetaStore>, master: MasterKey, operator_key: &str) -> Site {
    let directory = Directory::new(meta.clone(), master);
    directory.check_master_key().await.unwrap();
    directory.ensure_operator_key(operator_key, "operator-secret-of-this-site").await.unwrap();
    let backends = BackendSet::new(Arc::new(ObjectStoreBackend::memory()));
    let namespace = Namespace::new(meta, backends, name);
    Site { directory, namespace }
}

struct World {
    eu: Site,
    us: Site,
    us_store: Arc<Recording>,
    link: Arc<Loopback>,
    mirror: Arc<Mirror>,
}

async fn world_with_keys(eu_master: MasterKey, us_master: MasterKey) -> World {
    let versioned = VersionedStore::new(Arc::new(MemoryStore::new()));
    let eu = site("eu", versioned.clone(), eu_master, "EUROOT").await;
    let peers = ["us".to_owned(), "asia".to_owned()];
    eu.namespace.set_bucket_directory(Arc::new(DirectorySiteBuckets::new("eu", peers)));
    let authority =
        Arc::new(DirectoryAuthority::new(SiteId::new("eu"), versioned, eu.directory.clone(), eu.namespace.clone()));
    let us_store =
        Arc::new(Recording { inner: MemoryStore::new(), commits: AtomicUsize::new(0), fail: AtomicBool::new(false) });
    let us = site("us", us_store.clone(), us_master, "USROOT").await;
    let link = Arc::new(Loopback {
        authority,
        from: SiteId::new("us"),
        down: AtomicBool::new(false),
        sent: AtomicUsize::new(0),
        last_copy: Default::default(),
        replay_old_copy: AtomicBool::new(false),
    });
    let mirror = Mirror::new(
        SiteId::new("us"),
        SiteId::new("eu"),
        ["eu".to_owned(), "asia".to_owned()],
        link.clone(),
        us_store.clone(),
        us.directory.clone(),
        us.namespace.clone(),
    );
    mirror.install();
    World { eu, us, us_store, link, mirror }
}

async fn world() -> World {
    let master = MasterKey::generate().0;
    world_with_keys(master.clone(), master).await
}

/// A tenant with a read-write user and a key, made at the directory site.
async fn tenant_with_key(d: &Directory, name: &str) -> (String, String) {
    let t = d.create_tenant(&name.parse().unwrap(), TenantModel::SelfManaged).await.unwrap();
    let u = d.create_user(&t, &"alice".parse().unwrap(), Role::ReadWrite).await.unwrap();
    let (k, secret) = d.create_key(&u, None).await.unwrap();
    (k.access_key_id, secret)
}

#[tokio::test]
async fn a_key_made_at_the_directory_site_works_at_a_satellite_after_one_triggered_pull() {
    let w = world().await;
    let (key, secret) = tenant_with_key(&w.eu.directory, "acme").await;
    // No periodic pull has run: the unknown key itself triggers one.
    let (caller, got) = w.us.directory.authenticate(&key).await.expect("the key works at the satellite");
    assert_eq!(got, secret);
    assert_eq!(caller.tenant.as_str(), "acme");
    assert_eq!(w.link.sent.load(Ordering::SeqCst), 1, "one round trip");
    // A key nobody made costs one pull and is refused as unknown.
    assert!(matches!(w.us.directory.authenticate("AKNOSUCHKEY").await, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn nothing_changed_is_answered_without_the_tables() {
    let w = world().await;
    tenant_with_key(&w.eu.directory, "acme").await;
    assert!(matches!(w.mirror.pull().await, Ok(PullOutcome::Applied { .. })));
    assert_eq!(w.mirror.pull().await, Ok(PullOutcome::Unchanged));
    let commits = w.us_store.commits.load(Ordering::SeqCst);
    assert_eq!(w.mirror.pull().await, Ok(PullOutcome::Unchanged));
    assert_eq!(w.us_store.commits.load(Ordering::SeqCst), commits, "an unchanged pull writes nothing");
    let status = w.mirror.status();
    assert_eq!(status.syncs_ok, 3);
    assert!(status.records_mirrored > 0 && status.last_error.is_none());
}

#[tokio::test]
async fn deletions_reach_the_satellite_on_the_next_pull_even_for_a_cached_credential() {
    let w = world().await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    w.mirror.pull().await.unwrap();
    w.us.directory.authenticate(&key).await.expect("works, and is now cached");
    let acme = w.eu.directory.tenant_by_name(&"acme".parse().unwrap()).await.unwrap();
    w.eu.directory.delete_key(acme.id, &key).await.unwrap();
    assert!(matches!(w.mirror.pull().await, Ok(PullOutcome::Applied { .. })));
    assert!(matches!(w.us.directory.authenticate(&key).await, Err(Error::NotFound(Resource::AccessKey))));
    // The user and tenant go the same way.
    let alice = w.eu.directory.user_by_name(acme.id, &"alice".parse().unwrap()).await.unwrap();
    w.eu.directory.delete_user(&alice).await.unwrap();
    w.eu.directory.delete_tenant(&acme).await.unwrap();
    w.mirror.pull().await.unwrap();
    assert!(w.us.directory.tenant_by_name(&"acme".parse().unwrap()).await.is_err());
    assert!(w.us.directory.user_by_id(alice.id).await.is_err());
}

#[tokio::test]
async fn a_copy_is_applied_in_one_transaction_or_not_at_all() {
    let w = world().await;
    for t in ["t1", "t2", "t3"] {
        tenant_with_key(&w.eu.directory, t).await;
    }
    w.us_store.fail.store(true, Ordering::SeqCst);
    assert!(matches!(w.mirror.pull().await, Err(PullError::Store(_))));
    assert!(w.us.directory.tenant_by_name(&"t1".parse().unwrap()).await.is_err(), "nothing half-applied");
    w.us_store.fail.store(false, Ordering::SeqCst);
    let before = w.us_store.commits.load(Ordering::SeqCst);
    let Ok(PullOutcome::Applied { changed }) = w.mirror.pull().await else { panic!("applied") };
    assert!(changed >= 3 * 6, "tenant, its name, user, user name, key and key index per tenant: {changed}");
    assert_eq!(w.us_store.commits.load(Ordering::SeqCst), before + 1, "one commit for the whole copy");
    for t in ["t1", "t2", "t3"] {
        assert!(w.us.directory.tenant_by_name(&t.parse().unwrap()).await.is_ok());
    }
}

#[tokio::test]
async fn a_satellite_with_another_master_key_mirrors_nothing_and_says_why() {
    let w = world_with_keys(MasterKey::generate().0, MasterKey::generate().0).await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    let e = w.mirror.pull().await.unwrap_err();
    assert_eq!(e, PullError::MasterKeyDiffers);
    assert!(e.to_string().contains("master key differs from the directory site's"), "{e}");
    assert!(w.us.directory.tenant_by_name(&"acme".parse().unwrap()).await.is_err());
    assert!(w.us.directory.authenticate(&key).await.is_err());
    assert!(w.mirror.status().last_error.unwrap().contains("master key differs"));
}

#[tokio::test]
async fn each_site_keeps_its_own_operator() {
    let w = world().await;
    tenant_with_key(&w.eu.directory, "acme").await;
    w.mirror.pull().await.unwrap();
    let (op, _) = w.us.directory.authenticate("USROOT").await.expect("the satellite's own operator still works");
    assert_eq!(op.role, Role::Operator);
    assert!(w.us.directory.authenticate("EUROOT").await.is_err(), "the directory site's operator is not mirrored");
    w.mirror.pull().await.unwrap();
    assert!(w.us.directory.authenticate("USROOT").await.is_ok());
}

#[tokio::test]
async fn tenants_see_only_their_own_buckets_at_the_satellite() {
    let w = world().await;
    let (a_key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    let (b_key, _) = tenant_with_key(&w.eu.directory, "bravo").await;
    let (acme, _) = w.eu.directory.authenticate(&a_key).await.unwrap();
    let (bravo, _) = w.eu.directory.authenticate(&b_key).await.unwrap();
    w.eu.namespace.create_bucket(&acme, "datasets").await.unwrap();
    w.eu.namespace.create_bucket(&bravo, "datasets").await.unwrap();
    w.eu.namespace.create_bucket(&bravo, "secret-plans").await.unwrap();
    w.mirror.pull().await.unwrap();
    let (acme_us, _) = w.us.directory.authenticate(&a_key).await.unwrap();
    let names: Vec<String> =
        w.us.namespace.list_buckets(&acme_us).await.unwrap().into_iter().map(|b| b.name.to_string()).collect();
    assert_eq!(names, ["datasets"]);
    assert!(matches!(
        w.us.namespace.head_bucket(&acme_us, "secret-plans").await,
        Err(Error::NotFound(Resource::Bucket))
    ));
    let at_eu = w.eu.namespace.head_bucket(&acme, "datasets").await.unwrap();
    let at_us = w.us.namespace.head_bucket(&acme_us, "datasets").await.unwrap();
    assert_eq!((at_us.id, at_us.home_site.as_str()), (at_eu.id, "eu"), "same id and home everywhere");
}

#[tokio::test]
async fn a_bucket_created_at_a_satellite_is_homed_there_and_usable_at_once() {
    let w = world().await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    let (caller, _) = w.us.directory.authenticate(&key).await.unwrap();
    let made = w.us.namespace.create_bucket(&caller, "checkpoints").await.unwrap();
    assert_eq!(made.home_site, "us");
    let sent = w.link.sent.load(Ordering::SeqCst);
    let here = w.us.namespace.head_bucket(&caller, "checkpoints").await.expect("usable before any pull");
    assert_eq!(here.id, made.id);
    assert_eq!(w.link.sent.load(Ordering::SeqCst), sent, "no pull was needed");
    let (at_eu, _) = w.eu.directory.authenticate(&key).await.unwrap();
    assert_eq!(w.eu.namespace.head_bucket(&at_eu, "checkpoints").await.unwrap().id, made.id);
    // The name is taken everywhere.
    assert!(matches!(w.us.namespace.create_bucket(&caller, "checkpoints").await, Err(Error::AlreadyExists(_))));
    // A pull afterwards keeps it.
    w.mirror.pull().await.unwrap();
    assert!(w.us.namespace.head_bucket(&caller, "checkpoints").await.is_ok());
}

#[tokio::test]
async fn a_bucket_made_at_the_directory_site_is_found_at_a_satellite_by_a_triggered_pull() {
    let w = world().await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    let (caller, _) = w.us.directory.authenticate(&key).await.unwrap();
    let (at_eu, _) = w.eu.directory.authenticate(&key).await.unwrap();
    w.eu.namespace.create_bucket(&at_eu, "fresh").await.unwrap();
    assert_eq!(w.us.namespace.head_bucket(&caller, "fresh").await.unwrap().home_site, "eu");
}

#[tokio::test]
async fn buckets_are_deleted_by_their_home_site_only() {
    let w = world().await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    let (caller, _) = w.us.directory.authenticate(&key).await.unwrap();
    let acme = caller.tenant_id;

    // Homed at the satellite, holding an object there: not empty, kept everywhere.
    let ours = w.us.namespace.create_bucket(&caller, "ours").await.unwrap();
    let object_key = [ours.id.as_bytes().as_slice(), b"k"].concat();
    w.us_store.commit(Txn::new().put(Table::Objects, object_key.clone(), b"x".to_vec())).await.unwrap();
    assert!(matches!(w.us.namespace.delete_bucket(&caller, "ours").await, Err(Error::NotEmpty(_))));
    w.mirror.pull().await.unwrap();
    assert!(w.us.namespace.head_bucket(&caller, "ours").await.is_ok());
    // Emptied: gone at the home and at the directory site, and no pull brings it back.
    w.us_store.commit(Txn::new().delete(Table::Objects, object_key)).await.unwrap();
    w.us.namespace.delete_bucket(&caller, "ours").await.unwrap();
    w.mirror.pull().await.unwrap();
    assert!(matches!(w.us.namespace.head_bucket(&caller, "ours").await, Err(Error::NotFound(_))));
    let (at_eu, _) = w.eu.directory.authenticate(&key).await.unwrap();
    assert!(matches!(w.eu.namespace.head_bucket(&at_eu, "ours").await, Err(Error::NotFound(_))));

    // Homed at the directory site: the satellite forwards, the home checks and deletes.
    w.eu.namespace.create_bucket(&at_eu, "theirs").await.unwrap();
    w.us.namespace.delete_bucket(&caller, "theirs").await.unwrap();
    assert!(matches!(w.eu.namespace.head_bucket(&at_eu, "theirs").await, Err(Error::NotFound(_))));
    assert!(matches!(w.us.namespace.head_bucket(&caller, "theirs").await, Err(Error::NotFound(_))));

    // Homed at a third site: neither the satellite nor the directory site may.
    let t = w.eu.directory.tenant_by_id(acme).await.unwrap();
    w.eu.namespace.create_bucket_homed(acme, &t.name, &"far".parse().unwrap(), "default", "asia").await.unwrap();
    let e = w.us.namespace.delete_bucket(&caller, "far").await.unwrap_err();
    assert!(matches!(&e, Error::InvalidRequest(m) if m.contains("`asia`")), "{e:?}");
    let e = w.eu.namespace.delete_bucket(&at_eu, "far").await.unwrap_err();
    assert!(matches!(&e, Error::InvalidRequest(m) if m.contains("`asia`")), "{e:?}");
    assert!(w.eu.namespace.head_bucket(&at_eu, "far").await.is_ok());
}

#[tokio::test]
async fn a_satellite_cut_off_from_the_directory_site_keeps_serving_what_it_has() {
    let w = world().await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    w.mirror.pull().await.unwrap();
    w.link.down.store(true, Ordering::SeqCst);
    assert!(matches!(w.mirror.pull().await, Err(PullError::Unreachable(..))));
    let (caller, _) = w.us.directory.authenticate(&key).await.expect("existing keys keep working");
    // Creating a bucket needs the directory site: a retryable error, nothing half-made.
    assert!(matches!(w.us.namespace.create_bucket(&caller, "later").await, Err(Error::Unavailable(_))));
    let buckets = w.us_store.scan_prefix(Table::Buckets, caller.tenant_id.as_bytes(), None, 10).await.unwrap();
    assert!(buckets.is_empty());
    let status = w.mirror.status();
    assert!(status.last_error.unwrap().contains("cannot be reached"));
    assert_eq!(status.syncs_failed, 1);
}

/// A copy read before a bucket was created at the satellite, arriving after
/// it, must not take the bucket away again.
#[tokio::test]
async fn an_old_copy_does_not_undo_a_bucket_made_here() {
    let w = world().await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    let (caller, _) = w.us.directory.authenticate(&key).await.unwrap();
    w.eu.directory.create_tenant(&"other".parse().unwrap(), TenantModel::AdminOnly).await.unwrap();
    w.mirror.pull().await.unwrap(); // the copy that will come back late
    w.us.namespace.create_bucket(&caller, "fresh").await.unwrap();
    w.link.replay_old_copy.store(true, Ordering::SeqCst);
    assert_eq!(w.mirror.pull().await, Ok(PullOutcome::Stale));
    assert!(w.us.namespace.head_bucket(&caller, "fresh").await.is_ok());
    w.link.replay_old_copy.store(false, Ordering::SeqCst);
    assert!(matches!(w.mirror.pull().await, Ok(PullOutcome::Applied { .. } | PullOutcome::Unchanged)));
    assert!(w.us.namespace.head_bucket(&caller, "fresh").await.is_ok());
}

#[tokio::test]
async fn qos_limits_set_at_the_directory_site_apply_at_the_satellite() {
    use orbit_tenancy::{Direction, QosLimits, QosScope};
    let w = world().await;
    let (key, _) = tenant_with_key(&w.eu.directory, "acme").await;
    let (caller, _) = w.us.directory.authenticate(&key).await.unwrap();
    w.us.directory.qos().load().await.unwrap();
    let tenant = caller.tenant_id;
    let admit_twice = || {
        let first = w.us.directory.qos().admit(tenant, None, Direction::Read).is_ok();
        let second = w.us.directory.qos().admit(tenant, None, Direction::Read).is_ok();
        (first, second)
    };
    assert_eq!(admit_twice(), (true, true));
    let one_a_second = QosLimits { read_rps: Some(1), burst_seconds: Some(1.0), ..Default::default() };
    w.eu.directory.qos().set(&QosScope::Tenant(tenant), one_a_second).await.unwrap();
    w.mirror.pull().await.unwrap();
    assert_eq!(admit_twice(), (true, false), "the mirrored limit is live at the satellite");
    w.eu.directory.qos().clear(&QosScope::Tenant(tenant)).await.unwrap();
    w.mirror.pull().await.unwrap();
    assert_eq!(admit_twice(), (true, true), "and so is its removal");
}
