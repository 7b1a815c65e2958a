//! The path canonicalizer and the readings of a path, under every combination of `paths`
//! options.
//!
//! Input: the first byte picks the options (bit 0 `encoded_slash`, bit 1 `encoded_percent`,
//! bit 2 `semicolon`: set means preserve); the rest is the request path (lossily UTF-8, so
//! arbitrary bytes still reach the canonicalizer, as non-ASCII).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::access::{canonicalize_with, CanonicalPath, PathOptions, PathPolicy};

fn policy(preserve: bool) -> PathPolicy {
    if preserve {
        PathPolicy::Preserve
    } else {
        PathPolicy::Reject
    }
}

/// What every canonical path and every reading must look like.
#[track_caller]
fn assert_canonical_shape(input: &str, what: &str, path: &str) {
    assert!(path.starts_with('/'), "{input:?}: {what} {path:?} lacks /");
    assert!(path.is_ascii(), "{input:?}: {what} {path:?} is not ASCII");
    assert!(
        !path.bytes().any(|b| b < 0x20 || b == 0x7f),
        "{input:?}: {what} {path:?} holds a control byte"
    );
    assert!(!path.contains("//"), "{input:?}: {what} {path:?} has //");
    // Also at the end: `/.` and `/..` are dot segments too.
    assert!(
        !path[1..].split('/').any(|s| s == "." || s == ".."),
        "{input:?}: {what} {path:?} has a dot segment"
    );
    for needle in ["/./", "/../"] {
        assert!(
            !path.contains(needle),
            "{input:?}: {what} {path:?} has {needle}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let options = PathOptions {
        encoded_slash: policy(flags & 1 != 0),
        encoded_percent: policy(flags & 2 != 0),
        semicolon: policy(flags & 4 != 0),
    };
    let input = String::from_utf8_lossy(rest);

    let canonical = canonicalize_with(&input, &options);
    if let Ok(once) = &canonical {
        assert_canonical_shape(&input, "canonical path", once);
        let twice = canonicalize_with(once, &options);
        assert_eq!(
            twice.as_ref(),
            Ok(once),
            "{input:?}: canonicalizing is not idempotent"
        );
    }

    let parsed = CanonicalPath::parse(&input, &options);
    match (&parsed, &canonical) {
        (Ok(parsed), Ok(once)) => assert_eq!(parsed.as_str(), once, "{input:?}"),
        (Ok(_), Err(e)) => panic!("{input:?}: parse accepted what canonicalize refused ({e:?})"),
        (Err(_), _) => {}
    }
    let Ok(parsed) = parsed else {
        return;
    };
    let readings: Vec<&str> = parsed.readings().collect();
    assert_eq!(readings[0], parsed.as_str(), "{input:?}: first reading");
    for reading in &readings {
        assert_canonical_shape(&input, "reading", reading);
    }
    // The readings come from the forwarded string alone: parsing it again gives the same value.
    let again = CanonicalPath::parse(parsed.as_str(), &options);
    assert_eq!(
        again.as_ref(),
        Ok(&parsed),
        "{input:?}: parse is not idempotent"
    );
});
