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

#[test]
fn login_url_is_a_path_or_an_absolute_url_and_warns_unless_public() {
    let c = load_ok(&base(
        "login_url: /login?app=1\naccess:\n  rules:\n    - path: /login\n      allow: anonymous\n",
    ));
    let login = c.login.expect("login configured");
    assert_eq!(login.url, LoginUrl::Path("/login?app=1".into()));
    assert_eq!(login.return_param, "return_to");
    assert!(!c.warnings.iter().any(|w| w.starts_with("login_url")));

    let c = load_ok(&base("login_url: /login\n"));
    assert!(
        c.warnings.iter().any(|w| w.starts_with("login_url")),
        "{:?}",
        c.warnings
    );

    let c = load_ok(&base(
        "login_url: \"https://sso.example/start\"\nlogin_return_param: rd\nallowed_redirect_hosts: [App.Example.test, .corp.example, \"gw.test:8443\"]\n",
    ));
    let login = c.login.unwrap();
    assert_eq!(
        login.url,
        LoginUrl::Absolute("https://sso.example/start".into())
    );
    assert_eq!(login.return_param, "rd");
    assert_eq!(
        login.allowed_redirect_hosts,
        ["app.example.test", ".corp.example", "gw.test:8443"]
    );
    assert!(load_ok(&base("")).login.is_none());
}

#[test]
fn bad_login_settings_are_errors_naming_the_key() {
    for (yaml, key) in [
        ("login_url: login\n", "login_url"),
        ("login_url: /a/../login\n", "login_url"),
        ("login_url: \"ftp://sso.example/\"\n", "login_url"),
        ("login_url: \"/login#x\"\n", "login_url"),
        ("login_return_param: \"a b\"\n", "login_return_param"),
        (
            "allowed_redirect_hosts: [\"https://a.test\"]\n",
            "allowed_redirect_hosts[0]",
        ),
        (
            "allowed_redirect_hosts: [\"a.test\", \"*.b.test\"]\n",
            "allowed_redirect_hosts[1]",
        ),
        (
            "allowed_redirect_hosts: [\"a.test/x\"]\n",
            "allowed_redirect_hosts[0]",
        ),
    ] {
        assert_eq!(err_key(&base(yaml)), key, "{yaml}");
    }
}
