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

/// Decoded records remembered by their stored bytes, for hot read paths: a
/// record read again unchanged is cloned instead of parsed again. The stored
/// bytes are always read and compared, so a changed record is never served
/// from here; the cache only saves the decoding.
/// Key -> (stored bytes, the record decoded from them).
type Decoded<T> = std::collections::HashMap<Vec<u8>, (Vec<u8>, T)>;

pub struct DecodeCache<T> {
    // Hits (the common case) only take the read lock, so worker threads do not queue on each other.
    entries: std::sync::RwLock<Decoded<T>>,
    capacity: usize,
}

impl<T: Clone + DeserializeOwned> DecodeCache<T> {
    pub fn new(capacity: usize) -> Self {
        Self { entries: Default::default(), capacity: capacity.max(1) }
    }

    /// The record stored under `key` as `raw`.
    pub fn decode(&self, key: &[u8], raw: &[u8]) -> MetaResult<T> {
        {
            let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
            if let Some((seen, rec)) = entries.get(key)
                && seen.as_slice() == raw
            {
                return Ok(rec.clone());
            }
        }
        let rec: T = decode(raw)?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            // Crude but bounded: a full cache starts over.
            entries.clear();
        }
        entries.insert(key.to_vec(), (raw.to_vec(), rec.clone()));
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_record_is_decoded_again() {
        let cache = DecodeCache::<String>::new(2);
        assert_eq!(cache.decode(b"k", &encode(&"one".to_owned())).unwrap(), "one");
        assert_eq!(cache.decode(b"k", &encode(&"one".to_owned())).unwrap(), "one");
        assert_eq!(cache.decode(b"k", &encode(&"two".to_owned())).unwrap(), "two");
        for i in 0..5 {
            assert_eq!(cache.decode(format!("k{i}").as_bytes(), &encode(&i.to_string())).unwrap(), i.to_string());
        }
        assert!(cache.decode(b"k", b"not json").is_err());
    }
}
