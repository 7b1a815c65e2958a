//! `regulation` and the `trusted_proxies` warning that goes with it.

use super::*;

fn window(max_retries: u64, find_secs: u64, ban_secs: u64) -> RegulationWindow {
    RegulationWindow {
        max_retries,
        find_time: Duration::from_secs(find_secs),
        ban_time: Duration::from_secs(ban_secs),
    }
}

#[test]
fn regulation_defaults_are_the_documented_ones() {
    let r = load_ok(&base("")).regulation;
    assert_eq!(r.per_user_and_address, window(5, 120, 300));
    assert_eq!(r.per_user, window(20, 120, 60));
    assert_eq!(r.per_address, window(50, 120, 300));
}

#[test]
fn every_regulation_field_is_optional_and_the_rest_keep_their_defaults() {
    let r = load_ok(&base(
        "regulation:\n  per_user_and_address:\n    max_retries: 3\n  per_user:\n    find_time: 10m\n    ban_time: 15m\n  per_address: {}\n",
    ))
    .regulation;
    assert_eq!(r.per_user_and_address, window(3, 120, 300));
    assert_eq!(r.per_user, window(20, 600, 900));
    assert_eq!(r.per_address, DEFAULT_REGULATION_PER_ADDRESS);
    let r = load_ok(&base("regulation: {}\n")).regulation;
    assert_eq!(r.per_user, DEFAULT_REGULATION_PER_USER);
    // Values may come from the environment like any other.
    let r = load_ok(&base(
        "regulation:\n  per_address:\n    max_retries: \"${QUEUE}\"\n",
    ))
    .regulation;
    assert_eq!(r.per_address.max_retries, 7);
}

#[test]
fn invalid_regulation_values_name_their_key() {
    let cases: &[(&str, &str)] = &[
        (
            "regulation:\n  per_user_and_address:\n    max_retries: 0\n",
            "regulation.per_user_and_address.max_retries",
        ),
        (
            "regulation:\n  per_user:\n    max_retries: many\n",
            "regulation.per_user.max_retries",
        ),
        (
            "regulation:\n  per_user:\n    max_retries: -1\n",
            "regulation.per_user.max_retries",
        ),
        (
            "regulation:\n  per_address:\n    find_time: 0s\n",
            "regulation.per_address.find_time",
        ),
        (
            "regulation:\n  per_address:\n    ban_time: 5 minutes\n",
            "regulation.per_address.ban_time",
        ),
        (
            "regulation:\n  per_user:\n    ban_time: 0ms\n",
            "regulation.per_user.ban_time",
        ),
    ];
    for (yaml, key) in cases {
        assert_eq!(err_key(&base(yaml)), *key, "{yaml}");
    }
    for unknown in [
        "regulation:\n  per_client:\n    max_retries: 3\n",
        "regulation:\n  per_user:\n    maxretry: 3\n",
    ] {
        let message = err_message(&base(unknown));
        assert!(message.contains("unknown field"), "{unknown}: {message}");
    }
}

#[test]
fn empty_trusted_proxies_warn_only_on_a_non_loopback_listener() {
    let warned = |c: &Config| c.warnings.iter().any(|w| w.starts_with("trusted_proxies"));
    let public =
        "listen: 0.0.0.0:4180\nupstream:\n  url: http://127.0.0.1:1\nsession:\n  store: memory\n";
    assert!(warned(&load_ok(public)));
    assert!(!warned(&load_ok(&format!(
        "{public}trusted_proxies: [10.0.0.0/8]\n"
    ))));
    assert!(!warned(&load_ok(&base(""))));
    assert!(!warned(&load_ok(
        "listen: \"[::1]:4180\"\nupstream:\n  url: http://127.0.0.1:1\n"
    )));
}
