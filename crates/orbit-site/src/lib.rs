//! The inter-site protocol of Orbit as pure code: the typed messages sites
//! exchange and the lease state machines of both sides, driven by messages
//! and a clock the caller passes in. Nothing here does I/O, so every
//! interleaving of messages, losses, crashes and clock drift can be tested
//! deterministically (see `tests/sim.rs`). The contract and the message
//! sequences are described in `docs/consistency.md`.

mod clock;
mod home;
mod message;
mod satellite;
mod scope;

pub use clock::{LeaseTiming, MonoTime};
pub use home::{Gate, HomeEvent, HomeRead, HomeSite, RevokeStatement, WriteLeaseRecord, WriteOrigin};
pub use message::{
    DirectoryEntry, DirectoryError, DirectoryTable, DirectoryVersion, Envelope, FlushedWrite, LeaseId, Message,
    Outgoing, PROTOCOL_VERSION, PendingInvalidation, Refusal, RequestId, SiteId, WriteId, WriteKind,
};
pub use satellite::{FetchId, ReadPlan, SatelliteEvent, SatelliteSite, WriteLeaseState};
pub use scope::LeaseScope;
