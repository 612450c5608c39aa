//! [`KeySecret`]: the deployment's secret that names the Redis keys of the bucket's and the
//! cache's Redis stores (feature `redis`).
//!
//! A Redis key derived from a bearer token with a public function (a hash under fixed keys)
//! lets anyone who can list the keys confirm a guessed token offline. The stores therefore
//! name per-token keys with HMAC-SHA-256 (the `hmac` and `sha2` crates) under a secret only
//! the deployment knows: without it, a key name says nothing about the token. Every process
//! that shares a Redis must be given the same secret (an environment variable, a secrets
//! manager), or they will not find each other's keys.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::InvalidConfig;

/// The deployment's secret for naming Redis keys; see the [module docs](self).
///
/// At least [`MIN_LEN`](Self::MIN_LEN) bytes, e.g. 32 random bytes in hex or base64 from
/// `openssl rand -hex 32`. Its `Debug` never shows it.
///
/// # Example
/// ```
/// use bulwark_http::KeySecret;
///
/// let secret = KeySecret::new("3f1c9a7e5b2d4f6081a3c5e7f9b1d3e5")?; // from your secret store
/// let mut digest = secret.digest();
/// digest.part(b"Bearer secret_abc");
/// let name = bulwark_http::key_secret::hex(&digest.finish()[..16]);
/// assert_eq!(name.len(), 32);
/// assert!(KeySecret::new("short").is_err());
/// assert_eq!(format!("{secret:?}"), "KeySecret(<redacted>)");
/// # Ok::<(), bulwark_http::InvalidConfig>(())
/// ```
#[derive(Clone)]
pub struct KeySecret {
    /// HMAC-SHA-256 already keyed with the secret: each digest starts from a clone.
    keyed: Hmac<Sha256>,
}

impl KeySecret {
    /// The shortest secret accepted, in bytes (128 bits).
    pub const MIN_LEN: usize = 16;

    /// A secret from its bytes.
    ///
    /// # Errors
    /// [`InvalidConfig`] (field `secret`) when it is shorter than [`MIN_LEN`](Self::MIN_LEN)
    /// bytes.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, InvalidConfig> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_LEN {
            return Err(InvalidConfig::new(
                "secret",
                format!(
                    "{} bytes; a Redis key secret needs at least {} (e.g. `openssl rand -hex 32`)",
                    secret.len(),
                    Self::MIN_LEN
                ),
            ));
        }
        // HMAC takes a key of any length.
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .map_err(|e| InvalidConfig::new("secret", e.to_string()))?;
        Ok(Self { keyed })
    }

    /// A fresh keyed digest.
    #[must_use]
    pub fn digest(&self) -> KeyDigest {
        KeyDigest {
            mac: self.keyed.clone(),
        }
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(<redacted>)")
    }
}

/// HMAC-SHA-256 under a [`KeySecret`], fed part by part.
#[derive(Clone)]
pub struct KeyDigest {
    mac: Hmac<Sha256>,
}

impl KeyDigest {
    /// Feeds `bytes` preceded by their length, so that no two sequences of parts collide.
    pub fn part(&mut self, bytes: &[u8]) {
        self.mac.update(&(bytes.len() as u64).to_le_bytes());
        self.mac.update(bytes);
    }

    /// The 32-byte MAC.
    #[must_use]
    pub fn finish(self) -> [u8; 32] {
        self.mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}

/// Lower-case hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_case_2() {
        // The crates compute standard HMAC-SHA-256: RFC 4231 §4.3 ("Jefe" is shorter than
        // MIN_LEN, so through the raw Mac).
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        let out: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(
            hex(&out),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn digests_depend_on_the_secret_and_the_parts() {
        let a = KeySecret::new([1u8; 32]).unwrap();
        let b = KeySecret::new([2u8; 32]).unwrap();
        let of = |s: &KeySecret, parts: &[&[u8]]| {
            let mut d = s.digest();
            for p in parts {
                d.part(p);
            }
            d.finish()
        };
        assert_eq!(of(&a, &[b"x", b"y"]), of(&a, &[b"x", b"y"]));
        assert_ne!(of(&a, &[b"x", b"y"]), of(&b, &[b"x", b"y"]));
        assert_ne!(
            of(&a, &[b"xy"]),
            of(&a, &[b"x", b"y"]),
            "parts are length-prefixed"
        );
    }

    #[test]
    fn short_secrets_are_refused_with_the_field_name() {
        let err = KeySecret::new([0u8; 15]).unwrap_err();
        assert_eq!(err.field(), "secret");
        assert!(err.to_string().contains("at least 16"), "{err}");
        assert!(KeySecret::new([0u8; 16]).is_ok());
    }
}
