//! The authenticated channel between Orbit sites. It carries
//! `orbit_site::Envelope`s as request/response pairs over
//! `POST /peer/v1/envelope` (HTTP/2 cleartext by prior knowledge, HTTP/1.1
//! accepted), each request and each answer signed with the secret the two
//! sites share. What a site does with a message is a [`PeerHandler`]'s
//! business: this crate only moves, authenticates and counts envelopes, and
//! probes peers for liveness. No HTTP reaches orbit-site or orbit-core.

mod auth;
mod client;
mod config;
mod data;
mod handler;
mod metrics;
mod prober;
mod server;

pub use auth::{AuthRefusal, PEER_MAX_SKEW_SECS};
pub use client::{PeerClient, PeerError};
pub use config::{PeerConfig, PeerSpec};
pub use data::{DATA_PATH_PREFIX, DataAnswer, DataBody, DataHandler, MAX_DATA_ANSWER_BYTES};
pub use handler::{LivenessHandler, PeerHandler, Reply};
pub use prober::{PeerStatus, Prober, SitesSnapshot};
pub use server::{ENVELOPE_PATH, MAX_ENVELOPE_BYTES, PeerServer};
