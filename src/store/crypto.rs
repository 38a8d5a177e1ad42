//! Tokens at rest: XChaCha20-Poly1305 under a 32-byte key, the WABA id as associated data.
//!
//! Why this AEAD: ChaCha20-Poly1305 is constant-time in plain software (AES-GCM is only
//! without AES-NI tricks; a container may land on any CPU), and the extended 24-byte
//! nonce of the X variant makes a random nonce per encryption safe for any number of
//! encryptions under one key, so there is no counter to keep across replicas. RustCrypto's
//! `chacha20poly1305` is pure Rust (no C build) and zeroizes its key on drop.
//!
//! - Every ciphertext is stored with its nonce and the id of its key ([`KeyId`]: the first
//!   8 hex digits of a SHA-256 of the key, domain-separated; never the key). The current
//!   key encrypts; it and the old keys (`WABA_STORE_OLD_KEYS_DIR`) decrypt, picked by id,
//!   so a key rotates without downtime and `store rekey` moves everything to the current.
//! - The associated data names the row: a ciphertext copied into another customer's row
//!   fails to decrypt instead of handing one customer's token to another.
//! - Key files hold the base64 of exactly 32 bytes; anything else is refused with its path
//!   and what is wrong with it, never its content.

use super::Error;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

/// Length of a key, in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a nonce, in bytes.
pub const NONCE_LEN: usize = 24;

/// Binds a ciphertext to what it is and to the row it belongs to.
fn associated_data(waba_id: &str) -> Vec<u8> {
    let mut aad = b"waba-numbers/customer-token/v1\0".to_vec();
    aad.extend_from_slice(waba_id.as_bytes());
    aad
}

/// A token as stored: never the token itself. `Debug` shows only the key id and sizes.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
    pub key_id: String,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// One key and its id.
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
    /// The whole digest the id is cut from: tells one key given twice from two keys
    /// whose ids collide.
    fingerprint: [u8; 32],
    /// Where it was read from, for error messages.
    path: String,
    /// The key of the request fingerprints idempotency records keep (derived, so the
    /// encryption key itself signs nothing).
    mac_key: Zeroizing<[u8; 32]>,
}

/// The current key and the old ones. `Debug` shows their ids only.
pub struct Keys {
    current: Key,
    old: Vec<Key>,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let old: Vec<&str> = self.old.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("Keys")
            .field("current", &self.current.id)
            .field("old", &old)
            .finish()
    }
}

impl Keys {
    /// Reads the current key from `current` and, when given, every file in `old_dir`
    /// (names starting with `.` skipped, as the `..data` links of a mounted Kubernetes
    /// secret). The old keys are only ever read.
    pub fn load(current: &Path, old_dir: Option<&Path>) -> Result<Keys, Error> {
        let current = read_key(current)?;
        let mut old = Vec::new();
        if let Some(dir) = old_dir {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| Error::key(dir, format!("cannot read the folder: {e}")))?;
            let mut paths = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| Error::key(dir, format!("cannot read: {e}")))?;
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                let path = entry.path();
                if !hidden && path.is_file() {
                    paths.push(path);
                }
            }
            paths.sort();
            for path in paths {
                old.push(read_key(&path)?);
            }
        }
        // The same key twice (as current and old, or in two files) is harmless: kept once.
        // Two different keys with one id would make ids ambiguous: refused.
        let mut kept: Vec<Key> = Vec::new();
        for key in old {
            let twin = std::iter::once(&current)
                .chain(&kept)
                .find(|k| k.id == key.id);
            match twin {
                Some(twin) if twin.fingerprint == key.fingerprint => {}
                Some(twin) => {
                    return Err(Error::SameKeyId {
                        first: twin.path.clone(),
                        second: key.path,
                        key_id: key.id,
                    });
                }
                None => kept.push(key),
            }
        }
        let old = kept;
        Ok(Keys { current, old })
    }

    /// The id of the key that encrypts.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// The keys request fingerprints are signed with, each with its store key's id: the
    /// current key's first, then the old ones' (a record kept before a rotation still
    /// matches its request, and one kept under a key this replica lacks says whose it is).
    pub fn mac_keys(&self) -> Vec<(String, [u8; 32])> {
        std::iter::once(&self.current)
            .chain(&self.old)
            .map(|k| (k.id.clone(), *k.mac_key))
            .collect()
    }

    /// Encrypts `token` for the row of `waba_id` under the current key.
    pub fn seal(&self, waba_id: &str, token: &SecretString) -> Result<Sealed, Error> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload {
            msg: token.expose_secret().as_bytes(),
            aad: &associated_data(waba_id),
        };
        let ciphertext = self
            .current
            .cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| Error::Encrypt {
                waba_id: waba_id.to_owned(),
            })?;
        Ok(Sealed {
            ciphertext,
            nonce: nonce.to_vec(),
            key_id: self.current.id.clone(),
        })
    }

    /// Decrypts the token of the row of `waba_id`, under whichever key it names.
    pub fn open(&self, waba_id: &str, sealed: &Sealed) -> Result<SecretString, Error> {
        let key = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| Error::UnknownKey {
                waba_id: waba_id.to_owned(),
                key_id: sealed.key_id.clone(),
            })?;
        let nonce = XNonce::try_from(sealed.nonce.as_slice())
            .map_err(|_| Error::corrupt(waba_id, "token nonce"))?;
        let payload = Payload {
            msg: &sealed.ciphertext,
            aad: &associated_data(waba_id),
        };
        let plain = key
            .cipher
            .decrypt(&nonce, payload)
            .map(Zeroizing::new)
            .map_err(|_| Error::Decrypt {
                waba_id: waba_id.to_owned(),
                key_id: sealed.key_id.clone(),
            })?;
        let token = std::str::from_utf8(&plain)
            .map_err(|_| Error::corrupt(waba_id, "token (not UTF-8)"))?;
        Ok(SecretString::from(token))
    }

    /// Whether `sealed` is under the current key already.
    pub fn is_current(&self, sealed: &Sealed) -> bool {
        sealed.key_id == self.current.id
    }
}

/// The id of `key`: 8 hex digits of a SHA-256 over a label and the key. Enough to tell a
/// handful of keys apart (two keys with one id are refused at load), too short and
/// one-way, so it says nothing about the key.
fn key_id(key: &[u8; KEY_LEN]) -> (String, [u8; 32]) {
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"waba-numbers/store-key-id/v1\0")
        .chain_update(key)
        .finalize()
        .into();
    (hex::encode(&digest[..4]), digest)
}

fn read_key(path: &Path) -> Result<Key, Error> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::key(path, format!("cannot read it: {}", e.kind())))?,
    );
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| Error::key(path, "not base64 (expected the base64 of 32 random bytes)"))?,
    );
    let key: Zeroizing<[u8; KEY_LEN]> =
        Zeroizing::new(bytes.as_slice().try_into().map_err(|_| {
            Error::key(
                path,
                format!(
                    "holds {} bytes, expected {KEY_LEN} (the base64 of 32 random bytes)",
                    bytes.len()
                ),
            )
        })?);
    let (id, fingerprint) = key_id(&key);
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key.as_slice())
        .expect("any key length");
    hmac::Mac::update(&mut mac, b"waba-numbers idempotency fingerprints v1");
    let mac_key = Zeroizing::new(hmac::Mac::finalize(mac).into_bytes().into());
    Ok(Key {
        id,
        fingerprint,
        mac_key,
        cipher: XChaCha20Poly1305::new(&chacha20poly1305::Key::from(*key)),
        path: path.display().to_string(),
    })
}
