//! Request signing for the admin API. The scheme is shared with the peer
//! channel between sites, so it lives in `orbit_types::signing`.

pub use orbit_types::signing::*;
