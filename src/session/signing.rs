//! Signed cookie values: `base64url(id) "." base64url(HMAC-SHA256(key, id))`, one key per
//! configured secret (HKDF-SHA256), the first signing and every one verifying.
//!
//! The same value is the bearer token when `session.bearer` is on. Verification checks the exact
//! shape (lengths, the separator, canonical base64) before the MAC, in constant time, so that a
//! forged, damaged or re-spelled value is refused without any store lookup.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{SessionId, ID_LEN};
use crate::config::Secret;

/// Length of a base64url (unpadded) encoding of 32 bytes.
const B64_32_LEN: usize = 43;
/// Cookie value length: id, `.`, MAC.
const COOKIE_VALUE_LEN: usize = B64_32_LEN + 1 + B64_32_LEN;
/// HKDF `info` for the cookie signing key; a new purpose gets a new label.
const SIGNING_KEY_INFO: &[u8] = b"portcullis cookie signing v1";

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies cookie values (`base64url(id) "." base64url(HMAC-SHA256(key, id))`).
#[derive(Clone)]
pub struct CookieSigner {
    keys: Vec<[u8; 32]>,
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CookieSigner({} keys, [redacted])", self.keys.len())
    }
}

/// A cookie that verified: the id, and whether it was signed by a key other than the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The session id.
    pub id: SessionId,
    /// True when an older secret verified it, so the client should get a re-signed cookie.
    pub stale_key: bool,
}

impl CookieSigner {
    /// Derive one signing key per secret with HKDF-SHA256. The first signs, all verify.
    ///
    /// # Panics
    /// If `secrets` is empty (the config layer guarantees at least one).
    pub fn new(secrets: &[Secret<Vec<u8>>]) -> Self {
        assert!(
            !secrets.is_empty(),
            "at least one session secret is required"
        );
        let keys = secrets
            .iter()
            .map(|secret| {
                let mut key = [0u8; 32];
                hkdf::Hkdf::<Sha256>::new(None, secret.expose())
                    .expand(SIGNING_KEY_INFO, &mut key)
                    .expect("32 bytes is a valid HKDF-SHA256 output length");
                key
            })
            .collect();
        Self { keys }
    }

    /// The cookie value for `id`, signed with the first key.
    pub fn sign(&self, id: &SessionId) -> String {
        let mac = mac(&self.keys[0], id).finalize().into_bytes();
        let mut value = String::with_capacity(COOKIE_VALUE_LEN);
        URL_SAFE_NO_PAD.encode_string(id.0, &mut value);
        value.push('.');
        URL_SAFE_NO_PAD.encode_string(mac, &mut value);
        value
    }

    /// Check a cookie value's exact shape and its MAC (in constant time) against every key.
    pub fn verify(&self, value: &[u8]) -> Option<Verified> {
        if value.len() != COOKIE_VALUE_LEN || value[B64_32_LEN] != b'.' {
            return None;
        }
        let id: [u8; ID_LEN] = decode_32(&value[..B64_32_LEN])?;
        let tag: [u8; 32] = decode_32(&value[B64_32_LEN + 1..])?;
        let id = SessionId(id);
        let index = self
            .keys
            .iter()
            .position(|key| mac(key, &id).verify_slice(&tag).is_ok())?;
        Some(Verified {
            id,
            stale_key: index > 0,
        })
    }
}

fn mac(key: &[u8; 32], id: &SessionId) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(&id.0);
    mac
}

fn decode_32(b64: &[u8]) -> Option<[u8; 32]> {
    let mut out = [0u8; 33];
    // The strict decoder refuses non-canonical trailing bits, so each id has one spelling.
    match URL_SAFE_NO_PAD.decode_slice(b64, &mut out) {
        Ok(32) => out[..32].try_into().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secrets: &[&str]) -> CookieSigner {
        let secrets: Vec<Secret<Vec<u8>>> = secrets
            .iter()
            .map(|s| Secret::new(s.as_bytes().to_vec()))
            .collect();
        CookieSigner::new(&secrets)
    }

    const K1: &str = "first-secret-0123456789abcdef0123456789";
    const K2: &str = "second-secret-0123456789abcdef012345678";

    #[test]
    fn signed_cookie_verifies_and_has_the_exact_shape() {
        let s = signer(&[K1]);
        let id = SessionId::generate();
        let value = s.sign(&id);
        assert_eq!(value.len(), COOKIE_VALUE_LEN);
        assert_eq!(
            s.verify(value.as_bytes()),
            Some(Verified {
                id,
                stale_key: false
            })
        );
    }

    #[test]
    fn rotation_verifies_with_older_keys_and_flags_them() {
        let id = SessionId::generate();
        let old = signer(&[K1]).sign(&id);
        let rotated = signer(&[K2, K1]);
        assert_eq!(
            rotated.verify(old.as_bytes()),
            Some(Verified {
                id: id.clone(),
                stale_key: true
            })
        );
        assert_eq!(signer(&[K2]).verify(old.as_bytes()), None);
        assert!(
            !rotated
                .verify(rotated.sign(&id).as_bytes())
                .unwrap()
                .stale_key
        );
    }

    #[test]
    fn tampered_or_malformed_values_never_verify() {
        let s = signer(&[K1]);
        let value = s.sign(&SessionId::generate());
        let (id, mac) = value.split_once('.').unwrap();
        let other = s.sign(&SessionId::generate());
        let other_mac = other.split_once('.').unwrap().1;
        let mut flipped = value.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        for bad in [
            String::new(),
            id.to_owned(),
            format!("{id}."),
            format!(".{mac}"),
            format!("{id}.{other_mac}"),
            format!("\"{value}\""),
            format!("{value}="),
            value.replace('.', ":"),
            String::from_utf8(flipped).unwrap(),
        ] {
            assert_eq!(s.verify(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn non_canonical_base64_is_refused() {
        let s = signer(&[K1]);
        let value = s.sign(&SessionId::generate());
        // The last character of a 43-char encoding of 32 bytes carries 2 unused bits; setting
        // them spells the same bytes differently, which must not verify.
        let mut bytes = value.into_bytes();
        let last_id = B64_32_LEN - 1;
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let pos = alphabet.iter().position(|c| *c == bytes[last_id]).unwrap();
        bytes[last_id] = alphabet[pos | 1];
        if pos & 1 == 0 {
            assert_eq!(s.verify(&bytes), None);
        }
    }
}
