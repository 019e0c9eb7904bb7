//! The checksums S3 clients send and ask for, computed while bytes stream.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 5] = [Self::Crc32, Self::Crc32c, Self::Crc64Nvme, Self::Sha1, Self::Sha256];

    /// The name S3 uses (`CRC32`, `CRC64NVME`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC32",
            Self::Crc32c => "CRC32C",
            Self::Crc64Nvme => "CRC64NVME",
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
        }
    }

    /// The header that carries it (`x-amz-checksum-crc32`, ...).
    pub fn header_name(self) -> &'static str {
        match self {
            Self::Crc32 => "x-amz-checksum-crc32",
            Self::Crc32c => "x-amz-checksum-crc32c",
            Self::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Self::Sha1 => "x-amz-checksum-sha1",
            Self::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            Self::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            Self::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            Self::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            _ => None,
        }
    }

    fn width_bytes(self) -> usize {
        if self == Self::Crc64Nvme { 8 } else { 4 }
    }

    /// Whether whole-object checksums of a multipart upload can be combined from parts.
    pub fn supports_full_object(self) -> bool {
        self.crc().is_some()
    }

    /// Checksum of a buffer, base64 as on the wire.
    pub fn digest(self, data: &[u8]) -> String {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish_base64()
    }
}

impl FromStr for ChecksumAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unsupported checksum algorithm `{s}`"))
    }
}

/// How a multipart upload's whole-object checksum is formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumKind {
    /// Checksum of all bytes (always for single-part objects).
    FullObject,
    /// Checksum of the parts' checksums, suffixed `-N`.
    Composite,
}

impl ChecksumKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumKind::FullObject => "FULL_OBJECT",
            ChecksumKind::Composite => "COMPOSITE",
        }
    }
}

/// A running checksum of one algorithm.
pub enum Hasher {
    Crc(ChecksumAlgorithm, crc_fast::Digest),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(alg: ChecksumAlgorithm) -> Self {
        match alg {
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            crc => Hasher::Crc(crc, crc_fast::Digest::new(crc.crc().expect("a CRC algorithm"))),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn finish_raw(self) -> Vec<u8> {
        match self {
            Hasher::Crc(alg, d) => {
                let v = d.finalize();
                v.to_be_bytes()[8 - alg.width_bytes()..].to_vec()
            }
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }

    pub fn finish_base64(self) -> String {
        B64.encode(self.finish_raw())
    }
}

/// What the client told us a body's checksum should be. The value may come
/// in a header before the body, or in a trailer after it.
#[derive(Default)]
pub struct ExpectedChecksum {
    pub algorithm: Option<ChecksumAlgorithm>,
    pub value: Option<String>,
    /// Reads the trailer's value once the body has been consumed.
    pub trailer: Option<Box<dyn FnOnce() -> Option<String> + Send>>,
}

impl std::fmt::Debug for ExpectedChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpectedChecksum")
            .field("algorithm", &self.algorithm)
            .field("value", &self.value)
            .field("trailer", &self.trailer.is_some())
            .finish()
    }
}

/// MD5 plus an optional S3 checksum, fed as the body streams through.
pub struct BodyDigests {
    pub md5: Md5,
    pub checksum: Option<Hasher>,
    pub size: u64,
}

impl BodyDigests {
    pub fn new(alg: Option<ChecksumAlgorithm>) -> Self {
        Self { md5: Md5::new(), checksum: alg.map(Hasher::new), size: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(h) = &mut self.checksum {
            h.update(data);
        }
        self.size += data.len() as u64;
    }
}

pub fn md5_hex(raw: &[u8]) -> String {
    hex::encode(raw)
}

/// ETag of a multipart object: MD5 of the parts' binary MD5s, then `-N`.
pub fn multipart_etag(part_etags: &[String]) -> Option<String> {
    let mut h = Md5::new();
    for e in part_etags {
        h.update(hex::decode(e).ok()?);
    }
    Some(format!("{}-{}", hex::encode(h.finalize()), part_etags.len()))
}

/// Whole-object checksum of a multipart upload from its parts' checksums.
pub fn combine_part_checksums(alg: ChecksumAlgorithm, kind: ChecksumKind, parts: &[(String, u64)]) -> Option<String> {
    match kind {
        ChecksumKind::Composite => {
            let mut h = Hasher::new(alg);
            for (b64, _) in parts {
                h.update(&B64.decode(b64).ok()?);
            }
            Some(format!("{}-{}", h.finish_base64(), parts.len()))
        }
        ChecksumKind::FullObject => {
            let crc = alg.crc()?;
            let mut acc: Option<u64> = None;
            for (b64, len) in parts {
                let raw = B64.decode(b64).ok()?;
                if raw.len() != alg.width_bytes() {
                    return None;
                }
                let mut buf = [0u8; 8];
                buf[8 - raw.len()..].copy_from_slice(&raw);
                let v = u64::from_be_bytes(buf);
                acc = Some(match acc {
                    None => v,
                    Some(a) => crc_fast::checksum_combine(crc, a, v, *len),
                });
            }
            let v = acc?;
            Some(B64.encode(&v.to_be_bytes()[8 - alg.width_bytes()..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // Values as AWS documents / computes them for "hello world".
        let data = b"hello world";
        assert_eq!(ChecksumAlgorithm::Crc32.digest(data), "DUoRhQ==");
        assert_eq!(ChecksumAlgorithm::Crc32c.digest(data), "yZRlqg==");
        assert_eq!(ChecksumAlgorithm::Sha1.digest(data), "Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(ChecksumAlgorithm::Sha256.digest(data), "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=");
        assert_eq!(ChecksumAlgorithm::Crc64Nvme.digest(data).len(), 12);
    }

    #[test]
    fn full_object_crc_combines_parts() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        for alg in [ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme] {
            let (a, b) = data.split_at(37_000);
            let parts = vec![(alg.digest(a), a.len() as u64), (alg.digest(b), b.len() as u64)];
            assert_eq!(
                combine_part_checksums(alg, ChecksumKind::FullObject, &parts).unwrap(),
                alg.digest(&data),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn multipart_etag_is_md5_of_md5s() {
        let e1 = md5_hex(&Md5::digest(b"part one"));
        let e2 = md5_hex(&Md5::digest(b"part two"));
        let mut h = Md5::new();
        h.update(Md5::digest(b"part one"));
        h.update(Md5::digest(b"part two"));
        assert_eq!(multipart_etag(&[e1, e2]).unwrap(), format!("{}-2", hex::encode(h.finalize())));
    }
}
