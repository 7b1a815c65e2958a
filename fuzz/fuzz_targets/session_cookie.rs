//! The session cookie: `CookieSigner::verify` on arbitrary bytes, and `Sessions::find_cookie` /
//! `Sessions::verified_ids` on `Cookie` fields built from arbitrary bytes.
//!
//! Input: the first byte picks the cookie name; the rest is split at `\n` into `Cookie` field
//! values (lines that are no valid header value are skipped), and the whole rest is also given
//! to `verify` as one cookie value.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{header, HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::config::{CookieConfig, Secret, SessionConfig, StoreConfig};
use portcullis::session::store::MemoryStore;
use portcullis::session::{CookieLookup, CookieSigner, SessionId, Sessions, Verified};

const K1: &[u8] = b"fuzz-first-secret-0123456789abcdef012345";
const K2: &[u8] = b"fuzz-second-secret-0123456789abcdef01234";
const NAMES: [&str; 4] = [
    "portcullis_session",
    "__Host-portcullis_session",
    "sid",
    "a",
];

struct Fixture {
    /// Signs with K2, verifies K2 and K1 (a rotation in progress).
    rotated: CookieSigner,
    /// K1 alone: what signed the "stale" cookies.
    old: CookieSigner,
    /// One `Sessions` per cookie name, over the rotated secrets.
    sessions: Vec<Sessions>,
}

fn secrets(keys: &[&[u8]]) -> Vec<Secret<Vec<u8>>> {
    keys.iter().map(|k| Secret::new(k.to_vec())).collect()
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rotated = CookieSigner::new(&secrets(&[K2, K1]));
        let old = CookieSigner::new(&secrets(&[K1]));
        // Round trip: a signed id verifies, under the right key and flagged when stale.
        let id = SessionId::generate();
        let fresh = rotated.sign(&id);
        assert_eq!(
            rotated.verify(fresh.as_bytes()),
            Some(Verified {
                id: id.clone(),
                stale_key: false
            })
        );
        let stale = old.sign(&id);
        assert_eq!(
            rotated.verify(stale.as_bytes()),
            Some(Verified {
                id: id.clone(),
                stale_key: true
            })
        );
        assert_eq!(
            CookieSigner::new(&secrets(&[K2])).verify(stale.as_bytes()),
            None
        );
        let store: Arc<MemoryStore> = Arc::new(MemoryStore::new());
        let sessions = NAMES
            .iter()
            .map(|name| {
                let config = SessionConfig {
                    store: StoreConfig::Memory,
                    key_prefix: "fuzz:".into(),
                    secrets: secrets(&[K2, K1]),
                    secret_generated: false,
                    idle_timeout: Duration::from_secs(60),
                    absolute_timeout: Duration::from_secs(3600),
                    cookie: CookieConfig {
                        name: (*name).into(),
                        secure: true,
                        same_site: cookie::SameSite::Lax,
                        domain: None,
                        path: "/".into(),
                    },
                };
                Sessions::new(&config, store.clone())
            })
            .collect();
        Fixture {
            rotated,
            old,
            sessions,
        }
    })
}

/// `verify` accepts a value only if it is exactly how the verifying key signs that id: random or
/// damaged input never verifies, and each id has one spelling.
fn check_verify(f: &Fixture, value: &[u8]) -> Option<SessionId> {
    let verified = f.rotated.verify(value)?;
    let signer = if verified.stale_key {
        &f.old
    } else {
        &f.rotated
    };
    assert_eq!(
        signer.sign(&verified.id).as_bytes(),
        value,
        "a value verified that is not the signature of its id"
    );
    Some(verified.id)
}

/// The `(name, value)` pairs of the `Cookie` fields, read independently of `cookie_pairs`.
fn reference_pairs(fields: &[HeaderValue]) -> Vec<(&[u8], &[u8])> {
    let mut pairs = Vec::new();
    for field in fields {
        for pair in field.as_bytes().split(|b| *b == b';') {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &[][..]),
            };
            let (name, value) = (name.trim_ascii(), value.trim_ascii());
            if !name.is_empty() {
                pairs.push((name, value));
            }
        }
    }
    pairs
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    check_verify(f, rest);

    let sessions = &f.sessions[usize::from(pick) % NAMES.len()];
    let name = sessions.cookie_name().as_bytes();
    let fields: Vec<HeaderValue> = rest
        .split(|b| *b == b'\n')
        .filter_map(|line| HeaderValue::from_bytes(line).ok())
        .collect();
    let mut headers = HeaderMap::new();
    for field in &fields {
        headers.append(header::COOKIE, field.clone());
    }
    // Some other field must never be read as a cookie.
    if let Ok(other) = HeaderValue::from_bytes(rest) {
        headers.append(header::SET_COOKIE, other);
    }

    let matching: Vec<&[u8]> = reference_pairs(&fields)
        .into_iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .collect();
    let lookup = sessions.find_cookie(&headers);
    match (lookup, matching.as_slice()) {
        (CookieLookup::Absent, []) => {}
        (CookieLookup::Present(value), [expected]) => {
            assert_eq!(value, *expected);
            assert!(!value.contains(&b';'));
        }
        (CookieLookup::Duplicate, [_, _, ..]) => {}
        (lookup, expected) => panic!("find_cookie gave {lookup:?}, expected values {expected:?}"),
    }

    let ids = sessions.verified_ids(&headers);
    let expected: Vec<SessionId> = matching
        .iter()
        .filter_map(|value| check_verify(f, value))
        .collect();
    assert_eq!(ids, expected, "verified_ids");
});
