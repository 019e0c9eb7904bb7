use crate::{
    AccessKeyRecord, Caller, MasterKey, TenantModel, TenantRecord, UserRecord, generate_access_key_id, generate_secret,
};
use orbit_meta::{MetaError, MetaStore, MetaStoreExt, Table, Txn, decode, encode};
use orbit_types::{Error, Resource, Result, Role, TenantId, TenantName, UserId, UserName, now_ms};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a resolved credential is reused. Deleting a key, user or tenant
/// through this directory takes effect at once (the cache is cleared); the
/// bound only matters for changes made by another process.
const CREDENTIAL_TTL: Duration = Duration::from_secs(30);
const CREDENTIAL_CACHE_MAX: usize = 100_000;

type CredentialCache = Mutex<HashMap<String, (Instant, Caller, String)>>;

const CANARY_KEY: &[u8] = b"master_key_canary";
const CANARY: &str = "orbit master key canary";

/// Brings this site's copy of the directory up to date when a request names
/// something it does not know (a site that mirrors the directory site's
/// records; see orbit-global). Concurrent calls are coalesced by the
/// implementation, which also bounds how often it asks.
#[async_trait::async_trait]
pub trait DirectoryRefresh: Send + Sync + 'static {
    async fn refresh(&self);
}

/// Map a metadata-store failure to the core vocabulary.
pub fn meta_error(e: MetaError) -> Error {
    match e {
        MetaError::Conflict => Error::Unavailable("concurrent update, retry".into()),
        MetaError::Unavailable(m) => Error::Unavailable(m),
        MetaError::Corrupt(m) => Error::Internal(m),
    }
}

const SCAN_BATCH: usize = 1000;

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(a.len() + b.len());
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

/// The tenants, users and access keys of the site, over the metadata store.
#[derive(Clone)]
pub struct Directory {
    pub(crate) meta: Arc<dyn MetaStore>,
    master: MasterKey,
    /// Resolved credentials: every signed request needs one, twice.
    credentials: Arc<CredentialCache>,
    /// Rate and bandwidth limits of tenants and buckets.
    qos: crate::Qos,
    /// Set at a site that mirrors the directory: asked before an unknown
    /// access key is refused.
    refresh: Arc<OnceLock<Arc<dyn DirectoryRefresh>>>,
}

impl Directory {
    pub fn new(meta: Arc<dyn MetaStore>, master: MasterKey) -> Self {
        let qos = crate::Qos::new(meta.clone());
        Self { meta, master, credentials: Arc::default(), qos, refresh: Arc::default() }
    }

    /// Refresh the mirrored directory before refusing an unknown key (set
    /// once, at a site that is not the directory site).
    pub fn set_refresh(&self, refresh: Arc<dyn DirectoryRefresh>) {
        let _ = self.refresh.set(refresh);
    }

    /// The master-key canary as stored (sealed), for a peer to check that it
    /// holds the same key.
    pub async fn sealed_canary(&self) -> Result<Option<String>> {
        let raw = self.meta.get(Table::Settings, CANARY_KEY).await.map_err(meta_error)?;
        Ok(raw.and_then(|r| String::from_utf8(r).ok()))
    }

    /// Whether `sealed` is a canary sealed with this site's master key.
    pub fn opens_canary(&self, sealed: &str) -> bool {
        self.master.open(sealed).is_ok_and(|text| text == CANARY)
    }

    /// The QoS limits and their live limiters (load them once at start-up).
    pub fn qos(&self) -> &crate::Qos {
        &self.qos
    }

    /// Forget every resolved credential (after any change to tenants, users,
    /// keys or grants, here or mirrored from the directory site).
    pub fn forget_credentials(&self) {
        if let Ok(mut c) = self.credentials.lock() {
            c.clear();
        }
    }

    async fn scan_all(&self, table: Table, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            let after = out.last().map(|(k, _)| k.clone());
            let batch = self.meta.scan_prefix(table, prefix, after.as_deref(), SCAN_BATCH).await.map_err(meta_error)?;
            let done = batch.len() < SCAN_BATCH;
            out.extend(batch);
            if done {
                return Ok(out);
            }
        }
    }

    /// Make sure the master key is the one this store's secrets were sealed
    /// with, so a wrong key stops start-up instead of failing every request.
    pub async fn check_master_key(&self) -> Result<()> {
        match self.meta.get(Table::Settings, CANARY_KEY).await.map_err(meta_error)? {
            Some(sealed) => match String::from_utf8(sealed).ok().and_then(|s| self.master.open(&s).ok()) {
                Some(text) if text == CANARY => Ok(()),
                _ => Err(Error::InvalidArgument(
                    "the master key does not match the one this data directory's secrets were sealed with".into(),
                )),
            },
            None => {
                let txn = Txn::new().require_absent(Table::Settings, CANARY_KEY.to_vec()).put(
                    Table::Settings,
                    CANARY_KEY.to_vec(),
                    self.master.seal(CANARY).into_bytes(),
                );
                match self.meta.commit(txn).await {
                    Ok(()) | Err(MetaError::Conflict) => Ok(()),
                    Err(e) => Err(meta_error(e)),
                }
            }
        }
    }

    // ---- tenants ----

    pub async fn create_tenant(&self, name: &TenantName, model: TenantModel) -> Result<TenantRecord> {
        let rec = TenantRecord {
            id: TenantId::generate(),
            name: name.clone(),
            model,
            created_ms: now_ms(),
            cache_share_bytes: None,
        };
        let txn = Txn::new()
            .require_absent(Table::TenantNames, name.as_str().as_bytes().to_vec())
            .put(Table::TenantNames, name.as_str().as_bytes().to_vec(), rec.id.as_bytes().to_vec())
            .put(Table::Tenants, rec.id.as_bytes().to_vec(), encode(&rec));
        match self.meta.commit(txn).await {
            Ok(()) => Ok(rec),
            Err(MetaError::Conflict) => Err(Error::AlreadyExists(Resource::Tenant)),
            Err(e) => Err(meta_error(e)),
        }
    }

    pub async fn tenant_by_name(&self, name: &TenantName) -> Result<TenantRecord> {
        let id = self
            .meta
            .get(Table::TenantNames, name.as_str().as_bytes())
            .await
            .map_err(meta_error)?
            .ok_or(Error::NotFound(Resource::Tenant))?;
        self.meta.get_record(Table::Tenants, &id).await.map_err(meta_error)?.ok_or(Error::NotFound(Resource::Tenant))
    }

    /// Set (or clear) the tenant's reserved share of the chunk cache.
    pub async fn set_cache_share(&self, tenant: &TenantRecord, bytes: Option<u64>) -> Result<TenantRecord> {
        loop {
            let raw = self.meta.get(Table::Tenants, tenant.id.as_bytes()).await.map_err(meta_error)?;
            let Some(raw) = raw else { return Err(Error::NotFound(Resource::Tenant)) };
            let mut rec: TenantRecord = decode(&raw).map_err(meta_error)?;
            rec.cache_share_bytes = bytes;
            let txn = Txn::new().require_equals(Table::Tenants, tenant.id.as_bytes().to_vec(), raw).put(
                Table::Tenants,
                tenant.id.as_bytes().to_vec(),
                encode(&rec),
            );
            match self.meta.commit(txn).await {
                Ok(()) => return Ok(rec),
                Err(MetaError::Conflict) => continue,
                Err(e) => return Err(meta_error(e)),
            }
        }
    }

    pub async fn tenant_by_id(&self, id: TenantId) -> Result<TenantRecord> {
        self.meta
            .get_record(Table::Tenants, id.as_bytes())
            .await
            .map_err(meta_error)?
            .ok_or(Error::NotFound(Resource::Tenant))
    }

    pub async fn list_tenants(&self) -> Result<Vec<TenantRecord>> {
        let mut out = Vec::new();
        for (_, v) in self.scan_all(Table::Tenants, b"").await? {
            out.push(decode::<TenantRecord>(&v).map_err(meta_error)?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Remove the tenant with its users and keys. Refused (as a conflict)
    /// while the tenant owns a bucket.
    pub async fn delete_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let tid = tenant.id.as_bytes();
        let mut txn = Txn::new()
            .require_equals(Table::TenantNames, tenant.name.as_str().as_bytes().to_vec(), tid.to_vec())
            // Buckets are the namespace's to remove; a tenant that still owns one stays.
            .require_prefix_empty(Table::Buckets, tid.to_vec())
            .delete(Table::TenantNames, tenant.name.as_str().as_bytes().to_vec())
            .delete(Table::Tenants, tid.to_vec());
        for (k, user_id) in self.scan_all(Table::UserNames, tid).await? {
            txn.push_delete(Table::UserNames, k);
            txn.push_delete(Table::Users, user_id);
        }
        for (k, _) in self.scan_all(Table::UserKeys, tid).await? {
            txn.push_delete(Table::AccessKeys, k[32..].to_vec());
            txn.push_delete(Table::UserKeys, k);
        }
        for (k, _) in self.scan_all(Table::Grants, tid).await? {
            txn.push_delete(Table::Grants, k);
        }
        txn.push_delete(Table::TenantLimits, tid.to_vec());
        txn.push_delete(Table::AuditSettings, tid.to_vec());
        let committed = self.meta.commit(txn).await;
        self.forget_credentials();
        match committed {
            Ok(()) => Ok(()),
            Err(MetaError::Conflict) => {
                if self.meta.scan_prefix(Table::Buckets, tid, None, 1).await.map_err(meta_error)?.is_empty() {
                    Err(Error::NotFound(Resource::Tenant))
                } else {
                    Err(Error::NotEmpty(Resource::Tenant))
                }
            }
            Err(e) => Err(meta_error(e)),
        }
    }

    // ---- users ----

    pub async fn create_user(&self, tenant: &TenantRecord, name: &UserName, role: Role) -> Result<UserRecord> {
        if role == Role::Operator && !tenant.name.is_system() {
            return Err(Error::InvalidArgument("the operator role exists only in the system tenant".into()));
        }
        let rec =
            UserRecord { id: UserId::generate(), tenant_id: tenant.id, name: name.clone(), role, created_ms: now_ms() };
        let name_key = cat(tenant.id.as_bytes(), name.as_str().as_bytes());
        let txn = Txn::new()
            .require_equals(Table::TenantNames, tenant.name.as_str().as_bytes().to_vec(), tenant.id.as_bytes().to_vec())
            .require_absent(Table::UserNames, name_key.clone())
            .put(Table::UserNames, name_key.clone(), rec.id.as_bytes().to_vec())
            .put(Table::Users, rec.id.as_bytes().to_vec(), encode(&rec));
        match self.meta.commit(txn).await {
            Ok(()) => Ok(rec),
            Err(MetaError::Conflict) => {
                // Either the name is taken or the tenant vanished meanwhile.
                if self.meta.get(Table::UserNames, &name_key).await.map_err(meta_error)?.is_some() {
                    Err(Error::AlreadyExists(Resource::User))
                } else {
                    Err(Error::NotFound(Resource::Tenant))
                }
            }
            Err(e) => Err(meta_error(e)),
        }
    }

    pub async fn user_by_name(&self, tenant_id: TenantId, name: &UserName) -> Result<UserRecord> {
        let id = self
            .meta
            .get(Table::UserNames, &cat(tenant_id.as_bytes(), name.as_str().as_bytes()))
            .await
            .map_err(meta_error)?
            .ok_or(Error::NotFound(Resource::User))?;
        self.meta.get_record(Table::Users, &id).await.map_err(meta_error)?.ok_or(Error::NotFound(Resource::User))
    }

    pub async fn user_by_id(&self, id: UserId) -> Result<UserRecord> {
        self.meta
            .get_record(Table::Users, id.as_bytes())
            .await
            .map_err(meta_error)?
            .ok_or(Error::NotFound(Resource::User))
    }

    pub async fn list_users(&self, tenant_id: TenantId) -> Result<Vec<UserRecord>> {
        let mut out = Vec::new();
        for (_, id) in self.scan_all(Table::UserNames, tenant_id.as_bytes()).await? {
            if let Some(u) = self.meta.get_record::<UserRecord>(Table::Users, &id).await.map_err(meta_error)? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Remove a user and every key of theirs.
    pub async fn delete_user(&self, user: &UserRecord) -> Result<()> {
        let name_key = cat(user.tenant_id.as_bytes(), user.name.as_str().as_bytes());
        let mut txn = Txn::new()
            .require_equals(Table::UserNames, name_key.clone(), user.id.as_bytes().to_vec())
            .delete(Table::UserNames, name_key)
            .delete(Table::Users, user.id.as_bytes().to_vec())
            .delete(Table::Grants, crate::grants::grants_key(user.tenant_id, user.id));
        let prefix = cat(user.tenant_id.as_bytes(), user.id.as_bytes());
        for (k, _) in self.scan_all(Table::UserKeys, &prefix).await? {
            txn.push_delete(Table::AccessKeys, k[32..].to_vec());
            txn.push_delete(Table::UserKeys, k);
        }
        let committed = self.meta.commit(txn).await;
        self.forget_credentials();
        match committed {
            Ok(()) => Ok(()),
            Err(MetaError::Conflict) => Err(Error::NotFound(Resource::User)),
            Err(e) => Err(meta_error(e)),
        }
    }

    // ---- access keys ----

    /// Issue a key for `user`. `fixed` gives the id and secret (bootstrap);
    /// otherwise both are generated. Returns the record and the plain secret,
    /// which is shown once and never stored unsealed.
    pub async fn create_key(
        &self,
        user: &UserRecord,
        fixed: Option<(&str, &str)>,
    ) -> Result<(AccessKeyRecord, String)> {
        let (akid, secret) = match fixed {
            Some((a, s)) => (a.to_owned(), s.to_owned()),
            None => (generate_access_key_id(), generate_secret()),
        };
        if akid.len() < 3 || akid.len() > 128 || !akid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::InvalidArgument("an access key id is 3 to 128 letters and digits".into()));
        }
        if secret.len() < 8 || secret.len() > 128 || secret.chars().any(char::is_whitespace) {
            return Err(Error::InvalidArgument("a secret key is 8 to 128 characters without spaces".into()));
        }
        let rec = AccessKeyRecord {
            access_key_id: akid.clone(),
            tenant_id: user.tenant_id,
            user_id: user.id,
            sealed_secret: self.master.seal(&secret),
            created_ms: now_ms(),
        };
        let index = cat(&cat(user.tenant_id.as_bytes(), user.id.as_bytes()), akid.as_bytes());
        let txn = Txn::new()
            .require_equals(
                Table::UserNames,
                cat(user.tenant_id.as_bytes(), user.name.as_str().as_bytes()),
                user.id.as_bytes().to_vec(),
            )
            .require_absent(Table::AccessKeys, akid.as_bytes().to_vec())
            .put(Table::AccessKeys, akid.as_bytes().to_vec(), encode(&rec))
            .put(Table::UserKeys, index, Vec::new());
        let committed = self.meta.commit(txn).await;
        self.forget_credentials();
        match committed {
            Ok(()) => Ok((rec, secret)),
            Err(MetaError::Conflict) => {
                if self.meta.get(Table::AccessKeys, akid.as_bytes()).await.map_err(meta_error)?.is_some() {
                    Err(Error::AlreadyExists(Resource::AccessKey))
                } else {
                    Err(Error::NotFound(Resource::User))
                }
            }
            Err(e) => Err(meta_error(e)),
        }
    }

    pub async fn list_keys(&self, tenant_id: TenantId, user: Option<UserId>) -> Result<Vec<AccessKeyRecord>> {
        let prefix = match user {
            Some(u) => cat(tenant_id.as_bytes(), u.as_bytes()),
            None => tenant_id.as_bytes().to_vec(),
        };
        let mut out = Vec::new();
        for (k, _) in self.scan_all(Table::UserKeys, &prefix).await? {
            if let Some(rec) =
                self.meta.get_record::<AccessKeyRecord>(Table::AccessKeys, &k[32..]).await.map_err(meta_error)?
            {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Delete a key of the tenant. A key of another tenant is "not found".
    pub async fn delete_key(&self, tenant_id: TenantId, access_key_id: &str) -> Result<()> {
        let rec: AccessKeyRecord = self
            .meta
            .get_record(Table::AccessKeys, access_key_id.as_bytes())
            .await
            .map_err(meta_error)?
            .filter(|r: &AccessKeyRecord| r.tenant_id == tenant_id)
            .ok_or(Error::NotFound(Resource::AccessKey))?;
        let index = cat(&cat(rec.tenant_id.as_bytes(), rec.user_id.as_bytes()), access_key_id.as_bytes());
        let txn =
            Txn::new().delete(Table::AccessKeys, access_key_id.as_bytes().to_vec()).delete(Table::UserKeys, index);
        let committed = self.meta.commit(txn).await.map_err(meta_error);
        self.forget_credentials();
        committed
    }

    /// Resolve an access key to its caller and plain secret.
    pub async fn authenticate(&self, access_key_id: &str) -> Result<(Caller, String)> {
        if let Ok(c) = self.credentials.lock()
            && let Some((at, caller, secret)) = c.get(access_key_id)
            && at.elapsed() < CREDENTIAL_TTL
        {
            return Ok((caller.clone(), secret.clone()));
        }
        let (caller, secret) = match self.authenticate_uncached(access_key_id).await {
            Err(Error::NotFound(_)) if self.refresh.get().is_some() => {
                // A key created at the directory site moments ago: pull, then look again.
                if let Some(r) = self.refresh.get() {
                    r.refresh().await;
                }
                self.authenticate_uncached(access_key_id).await?
            }
            other => other?,
        };
        if let Ok(mut c) = self.credentials.lock() {
            if c.len() >= CREDENTIAL_CACHE_MAX {
                c.clear();
            }
            c.insert(access_key_id.to_owned(), (Instant::now(), caller.clone(), secret.clone()));
        }
        Ok((caller, secret))
    }

    async fn authenticate_uncached(&self, access_key_id: &str) -> Result<(Caller, String)> {
        let rec: AccessKeyRecord = self
            .meta
            .get_record(Table::AccessKeys, access_key_id.as_bytes())
            .await
            .map_err(meta_error)?
            .ok_or(Error::NotFound(Resource::AccessKey))?;
        let user = self.user_by_id(rec.user_id).await.map_err(|_| Error::NotFound(Resource::AccessKey))?;
        let tenant = self.tenant_by_id(rec.tenant_id).await.map_err(|_| Error::NotFound(Resource::AccessKey))?;
        let secret = self.master.open(&rec.sealed_secret)?;
        let caller = Caller {
            tenant_id: tenant.id,
            tenant: tenant.name,
            model: tenant.model,
            user_id: user.id,
            user: user.name,
            role: user.role,
            access_key_id: rec.access_key_id,
            grants: self.load_grants(tenant.id, user.id).await?,
        };
        Ok((caller, secret))
    }

    /// Make sure the bootstrap operator exists with exactly this credential.
    /// Returns true when the key was created now.
    pub async fn ensure_operator_key(&self, access_key_id: &str, secret: &str) -> Result<bool> {
        let system = TenantName::system();
        let tenant = match self.tenant_by_name(&system).await {
            Ok(t) => t,
            Err(Error::NotFound(_)) => match self.create_tenant(&system, TenantModel::AdminOnly).await {
                Ok(t) => t,
                Err(Error::AlreadyExists(_)) => self.tenant_by_name(&system).await?,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let root = UserName::new("root").expect("valid");
        let user = match self.user_by_name(tenant.id, &root).await {
            Ok(u) => u,
            Err(Error::NotFound(_)) => self.create_user(&tenant, &root, Role::Operator).await?,
            Err(e) => return Err(e),
        };
        if let Ok((caller, existing)) = self.authenticate(access_key_id).await {
            if caller.user_id == user.id && existing == secret {
                return Ok(false);
            }
            // The configured secret changed (or the id belonged elsewhere): reissue.
            self.delete_key(caller.tenant_id, access_key_id).await?;
        }
        self.create_key(&user, Some((access_key_id, secret))).await?;
        Ok(true)
    }

    /// Whether any operator key exists (so a generated bootstrap credential is needed).
    pub async fn has_operator_key(&self) -> Result<bool> {
        let Ok(system) = self.tenant_by_name(&TenantName::system()).await else { return Ok(false) };
        for user in self.list_users(system.id).await? {
            if user.role == Role::Operator && !self.list_keys(system.id, Some(user.id)).await?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orbit_meta::MemoryStore;

    fn dir() -> Directory {
        Directory::new(Arc::new(MemoryStore::new()), MasterKey::generate().0)
    }

    #[tokio::test]
    async fn tenants_users_and_keys_lifecycle() {
        let d = dir();
        let acme = d.create_tenant(&"acme".parse().unwrap(), TenantModel::SelfManaged).await.unwrap();
        assert!(matches!(
            d.create_tenant(&"acme".parse().unwrap(), TenantModel::AdminOnly).await,
            Err(Error::AlreadyExists(Resource::Tenant))
        ));
        let alice = d.create_user(&acme, &"alice".parse().unwrap(), Role::ReadWrite).await.unwrap();
        assert!(matches!(
            d.create_user(&acme, &"alice".parse().unwrap(), Role::ReadOnly).await,
            Err(Error::AlreadyExists(Resource::User))
        ));
        assert!(d.create_user(&acme, &"bob".parse().unwrap(), Role::Operator).await.is_err());
        let (key, secret) = d.create_key(&alice, None).await.unwrap();
        let (caller, got) = d.authenticate(&key.access_key_id).await.unwrap();
        assert_eq!(got, secret);
        assert_eq!(caller.tenant, acme.name);
        assert_eq!(caller.role, Role::ReadWrite);
        assert_eq!(d.list_keys(acme.id, None).await.unwrap().len(), 1);

        // A key is deleted only through its own tenant.
        let other = d.create_tenant(&"other".parse().unwrap(), TenantModel::AdminOnly).await.unwrap();
        assert!(matches!(d.delete_key(other.id, &key.access_key_id).await, Err(Error::NotFound(_))));
        // Resolved credentials are cached, and a deletion takes effect at once all the same.
        d.authenticate(&key.access_key_id).await.unwrap();
        d.delete_user(&alice).await.unwrap();
        assert!(matches!(d.authenticate(&key.access_key_id).await, Err(Error::NotFound(Resource::AccessKey))));

        let bob = d.create_user(&acme, &"bob".parse().unwrap(), Role::ReadOnly).await.unwrap();
        let (bkey, _) = d.create_key(&bob, None).await.unwrap();
        d.authenticate(&bkey.access_key_id).await.unwrap();
        let (ckey, _) = d.create_key(&bob, None).await.unwrap();
        d.authenticate(&ckey.access_key_id).await.unwrap();
        d.delete_key(acme.id, &ckey.access_key_id).await.unwrap();
        assert!(d.authenticate(&ckey.access_key_id).await.is_err());
        d.delete_tenant(&acme).await.unwrap();
        assert!(d.authenticate(&bkey.access_key_id).await.is_err());
        assert!(matches!(d.tenant_by_name(&acme.name).await, Err(Error::NotFound(_))));
        assert_eq!(d.list_tenants().await.unwrap().len(), 1);
        // Users cannot be added to a deleted tenant.
        assert!(d.create_user(&acme, &"carol".parse().unwrap(), Role::ReadOnly).await.is_err());
    }

    #[tokio::test]
    async fn a_wrong_master_key_is_refused() {
        let meta: Arc<dyn MetaStore> = Arc::new(MemoryStore::new());
        let right = MasterKey::generate().0;
        Directory::new(meta.clone(), right.clone()).check_master_key().await.unwrap();
        Directory::new(meta.clone(), right).check_master_key().await.unwrap();
        assert!(Directory::new(meta, MasterKey::generate().0).check_master_key().await.is_err());
    }

    #[tokio::test]
    async fn bootstrap_operator_is_idempotent_and_follows_config() {
        let d = dir();
        assert!(!d.has_operator_key().await.unwrap());
        assert!(d.ensure_operator_key("ROOTKEY", "rootsecret1").await.unwrap());
        assert!(!d.ensure_operator_key("ROOTKEY", "rootsecret1").await.unwrap());
        assert!(d.has_operator_key().await.unwrap());
        assert!(d.ensure_operator_key("ROOTKEY", "rootsecret2").await.unwrap());
        let (caller, secret) = d.authenticate("ROOTKEY").await.unwrap();
        assert_eq!(secret, "rootsecret2");
        assert_eq!(caller.role, Role::Operator);
        assert!(caller.tenant.is_system());
    }
}
