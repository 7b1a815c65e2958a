//! `cors` and `csrf`: origins normalized like browsers write them; `null`, wildcards and paths
//! refused with the key named.

use super::*;

#[test]
fn origins_are_normalized_and_csrf_defaults_to_cors() {
    let c = load_ok(&base(
        "cors:\n  allowed_origins: [\"HTTPS://App.Example.test:443\", \"http://localhost:5173/\"]\n",
    ));
    assert_eq!(
        c.cors.allowed_origins,
        ["https://app.example.test", "http://localhost:5173"]
    );
    assert_eq!(c.csrf.allowed_origins, c.cors.allowed_origins);
    assert_eq!(c.cors.allowed_headers, "content-type");
    assert_eq!(c.cors.max_age, 600);

    let c = load_ok(&base(
        "cors:\n  allowed_origins: [\"https://app.example.test\"]\n  allowed_headers: [Content-Type, X-Requested-With]\n  max_age: 1h\ncsrf:\n  allowed_origins: []\n",
    ));
    assert!(c.csrf.allowed_origins.is_empty());
    assert_eq!(c.cors.allowed_headers, "content-type, x-requested-with");
    assert_eq!(c.cors.max_age, 3600);

    let c = load_ok(&base(""));
    assert!(c.cors.allowed_origins.is_empty() && c.csrf.allowed_origins.is_empty());
}

#[test]
fn null_wildcards_and_non_origins_are_errors_naming_the_key() {
    for (yaml, key) in [
        (
            "cors:\n  allowed_origins: [\"null\"]\n",
            "cors.allowed_origins[0]",
        ),
        (
            "cors:\n  allowed_origins: [\"https://a.test\", \"*\"]\n",
            "cors.allowed_origins[1]",
        ),
        (
            "cors:\n  allowed_origins: [\"https://*.a.test\"]\n",
            "cors.allowed_origins[0]",
        ),
        (
            "cors:\n  allowed_origins: [\"https://a.test/app\"]\n",
            "cors.allowed_origins[0]",
        ),
        (
            "cors:\n  allowed_origins: [\"a.test\"]\n",
            "cors.allowed_origins[0]",
        ),
        (
            "cors:\n  allowed_origins: [\"ftp://a.test\"]\n",
            "cors.allowed_origins[0]",
        ),
        (
            "csrf:\n  allowed_origins: [\"null\"]\n",
            "csrf.allowed_origins[0]",
        ),
        (
            "cors:\n  allowed_headers: [\"bad header\"]\n",
            "cors.allowed_headers[0]",
        ),
        ("cors:\n  max_age: soon\n", "cors.max_age"),
    ] {
        assert_eq!(err_key(&base(yaml)), key, "{yaml}");
    }
}
