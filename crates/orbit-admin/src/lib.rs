//! The admin API. `api` holds the request and response types once; the
//! server routes (`routes`), the OpenAPI document (derived from the routes,
//! never written by hand) and the client the CLI uses all share them.

pub mod api;
mod audit;
pub mod client;
pub mod directory;
mod error;
mod qos;
mod routes;
pub mod signing;
pub mod sites;
pub mod usage;

pub use audit::verdicts as audit_verdicts;
pub use client::{AdminClient, ClientError};
pub use routes::{MetricsRenderer, WhoAmI, openapi_document, router};
