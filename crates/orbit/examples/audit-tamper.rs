//! Test helper: tamper with the audit log in a STOPPED server's metadata file,
//! the way someone with write access to the disk could, so the end-to-end
//! suite can check that `orbit audit verify` notices. Not part of the product.
//!
//! `audit-tamper DATA_DIR TENANT edit|remove|reorder|truncate SEQ`
//! - edit: change record SEQ's outcome (its hash no longer matches)
//! - remove: delete record SEQ
//! - reorder: swap records SEQ and SEQ+1
//! - truncate: delete records SEQ to the end (the head stays)

use orbit_core::audit::record_key;
use orbit_meta::{MetaStore, RedbStore, Table, Txn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, tenant, mode, seq] = args.as_slice() else {
        return Err("usage: audit-tamper DATA_DIR TENANT edit|remove|reorder|truncate SEQ".into());
    };
    let seq: u64 = seq.parse()?;
    let meta = RedbStore::open(&std::path::Path::new(dir).join("meta.redb"))?;
    let id = meta.get(Table::TenantNames, tenant.as_bytes()).await?.ok_or("no such tenant")?;
    let chain: [u8; 16] = id.as_slice().try_into()?;
    let key = |s: u64| record_key(&chain, s);
    let get = |s: u64| {
        let meta = meta.clone();
        let k = key(s);
        async move { meta.get(Table::Audit, &k).await.map(|v| v.ok_or(format!("no record {s}"))) }
    };
    let txn = match mode.as_str() {
        "edit" => {
            let mut v: serde_json::Value = serde_json::from_slice(&get(seq).await??)?;
            v["d"]["outcome"] = serde_json::Value::String("ok-edited".into());
            Txn::new().put(Table::Audit, key(seq), serde_json::to_vec(&v)?)
        }
        "remove" => Txn::new().delete(Table::Audit, key(seq)),
        "reorder" => {
            let (a, b) = (get(seq).await??, get(seq + 1).await??);
            Txn::new().put(Table::Audit, key(seq), b).put(Table::Audit, key(seq + 1), a)
        }
        "truncate" => {
            let mut txn = Txn::new();
            let mut s = seq;
            while get(s).await?.is_ok() {
                txn.push_delete(Table::Audit, key(s));
                s += 1;
            }
            txn
        }
        other => return Err(format!("unknown mode {other}").into()),
    };
    meta.commit(txn).await?;
    Ok(())
}
