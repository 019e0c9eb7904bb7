//! Which metadata tables make up the directory, which of their records stay
//! site-local (the system tenant's), and reading them whole.

use orbit_meta::{MetaResult, MetaStore, MetaStoreExt, Table};
use orbit_tenancy::{AccessKeyRecord, UserRecord};
use orbit_types::{TenantId, TenantName};
use std::collections::BTreeMap;

/// The tables the directory site is the authority for (see the module doc
/// for why these and no others).
pub const DIRECTORY_TABLES: [Table; 12] = [
    Table::Tenants,
    Table::TenantNames,
    Table::Users,
    Table::UserNames,
    Table::AccessKeys,
    Table::UserKeys,
    Table::Grants,
    Table::TenantLimits,
    Table::Qos,
    Table::Quotas,
    Table::AuditSettings,
    Table::Buckets,
];

/// Whether a commit touching this table changes the directory.
pub fn is_directory_table(table: Table) -> bool {
    DIRECTORY_TABLES.contains(&table)
}

/// The directory table with this name, if it is one.
pub fn directory_table(name: &str) -> Option<Table> {
    DIRECTORY_TABLES.iter().copied().find(|t| t.name() == name)
}

/// Directory records by table, then key.
pub type Records = BTreeMap<Table, BTreeMap<Vec<u8>, Vec<u8>>>;

/// The id of this store's system tenant (each site's own: it holds the
/// site's bootstrap operator and the chain of its unattributed audit records).
pub async fn system_tenant(store: &dyn MetaStore) -> MetaResult<Option<TenantId>> {
    let raw = store.get(Table::TenantNames, TenantName::system().as_str().as_bytes()).await?;
    Ok(raw.and_then(|r| TenantId::from_slice(&r)))
}

/// Whether a record belongs to the system tenant, which every site keeps
/// for itself and never mirrors.
pub fn is_site_local(table: Table, key: &[u8], value: &[u8], system: Option<TenantId>) -> bool {
    let Some(system) = system else { return false };
    match table {
        Table::TenantNames => key == TenantName::system().as_str().as_bytes(),
        Table::Tenants => key == system.as_bytes(),
        Table::Users => orbit_meta::decode::<UserRecord>(value).is_ok_and(|u| u.tenant_id == system),
        Table::AccessKeys => orbit_meta::decode::<AccessKeyRecord>(value).is_ok_and(|k| k.tenant_id == system),
        // Every other directory table is keyed by tenant id first.
        _ => key.starts_with(system.as_bytes()),
    }
}

const SCAN_BATCH: usize = 1000;

/// Every directory record of the store except the system tenant's.
pub async fn read_directory(store: &dyn MetaStore) -> MetaResult<Records> {
    let system = system_tenant(store).await?;
    let mut out = Records::new();
    for table in DIRECTORY_TABLES {
        let rows = out.entry(table).or_default();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let batch = store.scan_prefix(table, b"", after.as_deref(), SCAN_BATCH).await?;
            let done = batch.len() < SCAN_BATCH;
            after = batch.last().map(|(k, _)| k.clone());
            for (k, v) in batch {
                if !is_site_local(table, &k, &v, system) {
                    rows.insert(k, v);
                }
            }
            if done {
                break;
            }
        }
    }
    Ok(out)
}

/// How many records `records` holds in all.
pub fn count(records: &Records) -> usize {
    records.values().map(BTreeMap::len).sum()
}
