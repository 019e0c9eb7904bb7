//! Orbit's metadata store.
//!
//! The trait is deliberately the shape of an etcd transaction: reads, ordered
//! range scans, and an atomic commit of puts and deletes guarded by
//! conditions. Everything Orbit persists about tenants, buckets and objects is
//! built on it, so the embedded store (redb) can later be swapped for a
//! coordinated one without touching the layers above.

#[cfg(test)]
pub mod conformance;
mod memory;
mod record;
mod redb_store;
mod store;

pub use memory::MemoryStore;
pub use record::{DecodeCache, decode, encode};
pub use redb_store::RedbStore;
pub use store::{Condition, MetaError, MetaResult, MetaStore, MetaStoreExt, Op, Table, Txn, counter_value, prefix_end};
