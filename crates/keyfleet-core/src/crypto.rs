//! The master key: AES-256-GCM encryption of secrets at rest, and keys derived from it.
//!
//! Every node of a cluster must hold the same master key. A blob written under one key cannot be read
//! under another, so the server stores an encrypted check value and refuses to start with a different key.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hmac, rand};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// First byte of every ciphertext, so the format can change later without guessing.
const FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("master key must be 32 bytes encoded as base64")]
    BadKey,
    #[error("ciphertext cannot be decrypted with this master key")]
    Decrypt,
    #[error("system random generator failed")]
    Random,
}

/// 32 secret bytes. `Debug` never shows them.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes).map_err(|_| CryptoError::Random)?;
        Ok(Self { bytes })
    }

    pub fn from_base64(s: &str) -> Result<Self, CryptoError> {
        let raw = STANDARD.decode(s.trim()).map_err(|_| CryptoError::BadKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self { bytes })
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    fn aead(&self) -> LessSafeKey {
        // A 32-byte key is always valid for AES-256-GCM.
        let key = UnboundKey::new(&AES_256_GCM, &self.bytes).unwrap_or_else(|_| unreachable!());
        LessSafeKey::new(key)
    }

    /// Encrypts `plaintext`; `context` (e.g. the owning row's id) is bound as associated data, so a
    /// ciphertext copied to another row does not decrypt.
    pub fn encrypt(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.aead()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut in_out)
            .map_err(|_| CryptoError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    pub fn decrypt(&self, blob: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if blob.len() < 1 + NONCE_LEN || blob[0] != FORMAT_V1 {
            return Err(CryptoError::Decrypt);
        }
        let nonce: [u8; NONCE_LEN] = blob[1..1 + NONCE_LEN].try_into().map_err(|_| CryptoError::Decrypt)?;
        let mut in_out = blob[1 + NONCE_LEN..].to_vec();
        let plain = self
            .aead()
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(context), &mut in_out)
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plain.to_vec())
    }

    /// A key for another purpose (e.g. signing JWTs), derived so that every node derives the same one.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.bytes);
        let tag = hmac::sign(&key, label.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

/// Hex SHA-256, for storing refresh tokens without storing them.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

/// A random string of `len` characters from `[A-Za-z0-9]`.
pub fn random_token(len: usize) -> Result<String, CryptoError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        rand::fill(&mut buf).map_err(|_| CryptoError::Random)?;
        // 62 * 4 = 248: reject bytes >= 248 so every character is equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == len {
                break;
            }
            out.push(ALPHABET[(*b % 62) as usize] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let key = MasterKey::generate().expect("key");
        let blob = key.encrypt(b"s3cret", b"conn-1").expect("encrypt");
        assert_eq!(key.decrypt(&blob, b"conn-1").expect("decrypt"), b"s3cret");
        assert_eq!(key.decrypt(&blob, b"conn-2"), Err(CryptoError::Decrypt));
        let other = MasterKey::generate().expect("key");
        assert_eq!(other.decrypt(&blob, b"conn-1"), Err(CryptoError::Decrypt));
        assert!(!blob.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn base64_round_trip_and_debug_redacts() {
        let key = MasterKey::generate().expect("key");
        let again = MasterKey::from_base64(&key.to_base64()).expect("parse");
        assert_eq!(again.derive("x"), key.derive("x"));
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert_eq!(MasterKey::from_base64("c2hvcnQ=").err(), Some(CryptoError::BadKey));
    }

    #[test]
    fn random_tokens_have_the_asked_length() {
        let t = random_token(64).expect("token");
        assert_eq!(t.len(), 64);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
