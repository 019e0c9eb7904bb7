//! The pinned tier: chunks of pinned prefixes, kept on local disk until they
//! are unpinned or their blob is collected. foyer has no pinning (its tiers
//! evict by policy), so pinned chunks live beside it, one file per chunk,
//! sealed with the same CRC32C as every other cached chunk. A pin that does
//! not fit is refused chunk by chunk, never by evicting another pin.

use crate::{open, seal};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One chunk file: hex of the blob name, a dot, the chunk index.
fn file_name(blob: &str, index: u64) -> String {
    format!("{}.{index}", hex::encode(blob.as_bytes()))
}

fn parse_file_name(name: &str) -> Option<(String, u64)> {
    let (blob, index) = name.rsplit_once('.')?;
    let blob = String::from_utf8(hex::decode(blob).ok()?).ok()?;
    Some((blob, index.parse().ok()?))
}

#[derive(Default)]
struct Index {
    used: u64,
    /// blob -> chunk index -> stored size
    chunks: HashMap<String, BTreeMap<u64, u64>>,
}

impl Index {
    fn remove(&mut self, blob: &str, index: u64) -> bool {
        let Some(chunks) = self.chunks.get_mut(blob) else { return false };
        let Some(size) = chunks.remove(&index) else { return false };
        self.used -= size;
        if chunks.is_empty() {
            self.chunks.remove(blob);
        }
        true
    }
}

/// What the pinned tier holds, for the admin API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PinnedUsage {
    pub used_bytes: u64,
    pub capacity_bytes: u64,
    pub chunks: u64,
}

pub struct PinnedStore {
    dir: PathBuf,
    capacity: u64,
    index: Mutex<Index>,
}

impl PinnedStore {
    /// Open (or create) the tier in `dir`, indexing the chunks already there
    /// so pins survive a restart. Stray temporary files are removed.
    pub fn open(dir: &Path, capacity: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match parse_file_name(&name) {
                Some((blob, i)) if !name.ends_with(".tmp") => {
                    let size = entry.metadata()?.len();
                    index.used += size;
                    index.chunks.entry(blob).or_default().insert(i, size);
                }
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(Self { dir: dir.to_path_buf(), capacity, index: Mutex::new(index) })
    }

    fn path(&self, blob: &str, index: u64) -> PathBuf {
        self.dir.join(file_name(blob, index))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn usage(&self) -> PinnedUsage {
        let idx = self.lock();
        PinnedUsage {
            used_bytes: idx.used,
            capacity_bytes: self.capacity,
            chunks: idx.chunks.values().map(|c| c.len() as u64).sum(),
        }
    }

    /// The chunk, if pinned and intact. A damaged file is deleted and
    /// reported as missing, so the caller fetches the chunk again.
    pub async fn get(&self, blob: &str, index: u64) -> Option<Bytes> {
        if !self.lock().chunks.get(blob).is_some_and(|c| c.contains_key(&index)) {
            return None;
        }
        let path = self.path(blob, index);
        let sealed = match tokio::fs::read(&path).await {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "pinned chunk unreadable; refetching");
                self.drop_chunk(blob, index).await;
                return None;
            }
        };
        match open(&sealed) {
            Some((data, _)) => Some(data),
            None => {
                metrics::counter!("orbit_cache_corrupt_total").increment(1);
                tracing::warn!(path = %path.display(), "pinned chunk failed its checksum; refetching");
                self.drop_chunk(blob, index).await;
                None
            }
        }
    }

    /// Keep a chunk. Returns false (and keeps nothing) when the tier is
    /// full; a chunk already there is kept as it is.
    pub async fn put(&self, blob: &str, index: u64, data: Bytes) -> std::io::Result<bool> {
        let sealed = seal(data);
        let size = sealed.len() as u64;
        {
            let mut idx = self.lock();
            if idx.chunks.get(blob).is_some_and(|c| c.contains_key(&index)) {
                return Ok(true);
            }
            if idx.used + size > self.capacity {
                return Ok(false);
            }
            // Reserve the room now so concurrent puts cannot overfill.
            idx.used += size;
        }
        let path = self.path(blob, index);
        let tmp = path.with_extension(format!("{index}.tmp"));
        let written = async {
            tokio::fs::write(&tmp, &sealed).await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        let mut idx = self.lock();
        idx.used -= size;
        match written {
            Ok(()) => {
                idx.used += size;
                // Two puts of one chunk may race; count it once.
                if let Some(old) = idx.chunks.entry(blob.to_owned()).or_default().insert(index, size) {
                    idx.used -= old;
                }
                Ok(true)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    async fn drop_chunk(&self, blob: &str, index: u64) {
        self.lock().remove(blob, index);
        let _ = tokio::fs::remove_file(self.path(blob, index)).await;
    }

    /// Forget every chunk of a blob (unpinned, or collected). Returns the
    /// bytes released.
    pub async fn forget_blob(&self, blob: &str) -> u64 {
        let chunks = self.lock().chunks.remove(blob).unwrap_or_default();
        let mut released = 0;
        for (i, size) in chunks {
            released += size;
            if let Err(e) = tokio::fs::remove_file(self.path(blob, i)).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(blob, error = %e, "could not remove a pinned chunk file");
            }
        }
        self.lock().used -= released;
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_survive_a_reopen_and_damage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = PinnedStore::open(dir.path(), 1 << 20).unwrap();
        assert!(store.put("default/b/x/y", 0, Bytes::from_static(b"zero")).await.unwrap());
        assert!(store.put("default/b/x/y", 1, Bytes::from_static(b"one")).await.unwrap());
        assert_eq!(store.usage().chunks, 2);
        drop(store);

        let store = PinnedStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.get("default/b/x/y", 0).await.unwrap(), Bytes::from_static(b"zero"));
        // Flip a byte of chunk 1 on disk: it is never served.
        let path = dir.path().join(file_name("default/b/x/y", 1));
        let mut raw = std::fs::read(&path).unwrap();
        raw[0] ^= 0xff;
        std::fs::write(&path, raw).unwrap();
        assert!(store.get("default/b/x/y", 1).await.is_none());
        assert_eq!(store.usage().chunks, 1);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_full_tier_refuses_instead_of_evicting() {
        let dir = tempfile::tempdir().unwrap();
        let store = PinnedStore::open(dir.path(), 100).unwrap();
        assert!(store.put("a", 0, Bytes::from(vec![1u8; 60])).await.unwrap());
        assert!(!store.put("b", 0, Bytes::from(vec![2u8; 60])).await.unwrap());
        assert_eq!(store.get("a", 0).await.unwrap().len(), 60);
        assert!(store.get("b", 0).await.is_none());
        assert!(store.forget_blob("a").await > 60);
        assert_eq!(store.usage().used_bytes, 0);
        assert!(store.put("b", 0, Bytes::from(vec![2u8; 60])).await.unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn file_names_round_trip_any_blob_name() {
        for blob in ["default/b/1/2", "s3/p/u-9-1-x", "a.b.c"] {
            assert_eq!(parse_file_name(&file_name(blob, 42)), Some((blob.to_owned(), 42)));
        }
        assert_eq!(parse_file_name("junk"), None);
    }
}
