//! The global namespace at run time. orbit-site holds the lease protocol as
//! pure state machines and orbit-peer moves signed envelopes between sites;
//! this crate puts them to work for one site:
//!
//! - `leases`: the home side (every write of a bucket homed here passes the
//!   write gate) and the satellite side (reads and listings of buckets homed
//!   elsewhere are fetched from home and cached under read leases; writes
//!   are forwarded), with the timers and persistence the state machines ask for.
//! - `directory`: tenants, users, keys and buckets are managed at one
//!   directory site and mirrored to every other site, so a key works and a
//!   bucket is visible everywhere.
//!
//! orbit-core knows nothing of sites beyond the hooks it exposes; the binary
//! wires this crate in when peers are configured.

pub mod directory;
pub mod leases;
mod router;

pub use router::PeerRouter;
