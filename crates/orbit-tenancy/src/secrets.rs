use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, Generate, Key, KeyInit};
use orbit_types::{Error, Result};

const NONCE_LEN: usize = 24;

/// The site's key for sealing secrets at rest (XChaCha20-Poly1305; random
/// 192-bit nonces are safe to draw without coordination).
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key = Key::<XChaCha20Poly1305>::try_from(bytes)
            .map_err(|_| Error::InvalidArgument("the master key must be exactly 32 bytes".into()))?;
        Ok(Self { cipher: XChaCha20Poly1305::new(&key) })
    }

    /// A key from its base64 text form (as in `ORBIT_MASTER_KEY`).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes =
            B64.decode(text.trim()).map_err(|_| Error::InvalidArgument("the master key is not valid base64".into()))?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random key, with its base64 text form for storing.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        let text = B64.encode(bytes);
        (Self::from_bytes(&bytes).expect("32 bytes"), text)
    }

    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = chacha20poly1305::XNonce::generate();
        let ct = self.cipher.encrypt(&nonce, plaintext.as_bytes()).expect("encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    pub fn open(&self, sealed: &str) -> Result<String> {
        let wrong =
            || Error::Internal("a stored secret cannot be decrypted: wrong master key or corrupt record".into());
        let raw = B64.decode(sealed).map_err(|_| wrong())?;
        if raw.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = chacha20poly1305::XNonce::try_from(nonce).map_err(|_| wrong())?;
        let pt = self.cipher.decrypt(&nonce, ct).map_err(|_| wrong())?;
        String::from_utf8(pt).map_err(|_| wrong())
    }
}

fn random_string(len: usize, alphabet: &[u8]) -> String {
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).expect("the OS random source works");
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// A new access key id: 20 characters, `OK` then upper-case letters and digits.
pub fn generate_access_key_id() -> String {
    format!("OK{}", random_string(18, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"))
}

/// A new secret access key: 40 characters, about 238 bits of entropy.
pub fn generate_secret() -> String {
    random_string(40, b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_hide_the_secret() {
        let (key, text) = MasterKey::generate();
        let sealed = key.seal("s3cr3t-value");
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(sealed, key.seal("s3cr3t-value"), "nonces must differ");
        assert_eq!(key.open(&sealed).unwrap(), "s3cr3t-value");
        assert_eq!(MasterKey::from_base64(&text).unwrap().open(&sealed).unwrap(), "s3cr3t-value");
        let (other, _) = MasterKey::generate();
        assert!(other.open(&sealed).is_err());
        assert!(key.open("AAAA").is_err());
    }

    #[test]
    fn generated_credentials_have_their_shape() {
        let id = generate_access_key_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("OK"));
        let s = generate_secret();
        assert_eq!(s.len(), 40);
        assert_ne!(s, generate_secret());
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
