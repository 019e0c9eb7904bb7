//! The S3 front-end. s3s owns the protocol (routing, XML, SigV4 in headers
//! and query strings, aws-chunked bodies); this crate resolves the caller,
//! translates each operation to the namespace core, and maps core errors to
//! S3 error codes in exactly one place (`error.rs`).

mod audit;
mod convert;
mod error;
mod fast_read;
mod handlers;
mod host;
mod identity;
mod metering;
mod qos;
mod request_id;
mod server;
mod sigv4;

pub use host::VirtualHosts;
pub use server::{S3Server, S3ServerConfig};
