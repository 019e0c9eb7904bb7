//! The peer channel's metrics, named once. Site names are operator
//! configuration, never tenant data, so they may be labels; a name that is
//! not a configured peer never becomes one (refusals count by reason only).

use std::time::Duration;

pub(crate) const IN: &str = "in";
pub(crate) const OUT: &str = "out";

/// One request handled (`in`) or sent (`out`) and how it ended.
pub(crate) fn request(peer: &str, direction: &'static str, outcome: &'static str, took: Duration) {
    metrics::counter!("orbit_peer_requests_total", "peer" => peer.to_owned(), "direction" => direction, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("orbit_peer_request_seconds", "peer" => peer.to_owned(), "direction" => direction)
        .record(took.as_secs_f64());
}

/// Bytes of envelopes that crossed the wide area, as seen by this site:
/// `in` received from the peer, `out` sent to it.
pub(crate) fn bytes(peer: &str, direction: &'static str, n: usize) {
    metrics::counter!("orbit_peer_bytes_total", "peer" => peer.to_owned(), "direction" => direction)
        .increment(n as u64);
}

/// A request on the peer port refused before reaching the handler.
pub(crate) fn refused(reason: &'static str) {
    metrics::counter!("orbit_peer_refused_total", "reason" => reason).increment(1);
}

/// Bytes of the data routes (records, chunks, listings, forwarded writes)
/// that crossed the wide area, as seen by this site.
pub(crate) fn data_bytes(peer: &str, direction: &'static str, n: usize) {
    metrics::counter!("orbit_peer_data_bytes_total", "peer" => peer.to_owned(), "direction" => direction)
        .increment(n as u64);
}
