//! The lease protocol driven over the peer channel (see the crate doc).
