//! Every persisted record carries a format version, so an upgrade can read
//! what an older Orbit wrote instead of stranding it.

use crate::{MetaError, MetaResult};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

const CURRENT_VERSION: u32 = 1;

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u32,
    d: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    v: u32,
    d: T,
}

/// Encode a record with the current format version.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(&EnvelopeOut { v: CURRENT_VERSION, d: record }).expect("records always serialise")
}

/// Decode a record, refusing versions this build does not know.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> MetaResult<T> {
    let env: EnvelopeIn<T> = serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt(e.to_string()))?;
    if env.v != CURRENT_VERSION {
        return Err(MetaError::Corrupt(format!("record format version {} is newer than this build", env.v)));
    }
    Ok(env.d)
}
