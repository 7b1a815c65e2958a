//! The extra identity headers: display name, e-mail address and the signed identity assertion
//! (HS256 with a shared secret, EdDSA with the public key fetched as a JWKS from the admin
//! listener), verified here by hand the way an upstream would, and client copies stripped on
//! every route.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::Method;

use crate::support::{config_yaml, login, Client, Gateway, Store, Upstream, ADMIN_PW, USER_PW};

/// A gateway with fixture R (the `user` entry given a display name and an address) and
/// `identity_headers` as `headers` says.
async fn start(headers: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let yaml = config_yaml(upstream.addr, Store::Memory, headers).replacen(
        "    roles: [reader]\n",
        "    roles: [reader]\n    display_name: \"Ursula Ü. User\"\n    email: user@example.test\n",
        1,
    );
    let gateway = Gateway::start(&yaml).await;
    (upstream, gateway)
}

/// The header, claims, signature and signed part of a compact JWT.
fn jwt(token: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWT: {token}");
    let json = |s: &str| -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).expect("base64url")).expect("JSON")
    };
    (
        json(parts[0]),
        json(parts[1]),
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        format!("{}.{}", parts[0], parts[1]),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims every assertion for `user` (role `reader`) carries, checked; returns `kid`.
fn check_claims(header: &serde_json::Value, claims: &serde_json::Value, alg: &str) -> String {
    assert_eq!(header["alg"], alg);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(claims["iss"], "https://gw.example.test");
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["sub"], "user");
    assert_eq!(claims["roles"], serde_json::json!(["reader"]));
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp, iat + 60);
    assert!(iat.abs_diff(now()) <= 5, "iat {iat} is now");
    header["kid"].as_str().expect("a kid").to_owned()
}

#[tokio::test]
async fn hs256_assertions_verify_with_the_shared_secret_and_client_copies_never_pass() {
    use hmac::{Hmac, Mac};
    let dir = tempfile::tempdir().unwrap();
    let secret = "assertion-secret-for-tests-0123456789";
    std::fs::write(dir.path().join("assertion"), format!("{secret}\n")).unwrap();
    let (upstream, gateway) = start(&format!(
        "identity_headers:\n  assertion:\n    algorithm: HS256\n    secret: \"${{file:{}}}\"\n    issuer: https://gw.example.test\n    audience: orders-api\n",
        dir.path().join("assertion").display()
    ))
    .await;
    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    let reply = user
        .send(
            Method::GET,
            "/api/x",
            &[("x-auth-assertion", forged), ("X_Auth_Assertion", forged)],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    let token = seen.header("x-auth-assertion").expect("an assertion");
    assert_ne!(token, forged);
    assert!(!seen.headers.iter().any(|(n, _)| n == "x_auth_assertion"));
    let (header, claims, signature, signed) = jwt(token);
    check_claims(&header, &claims, "HS256");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature)
        .expect("signed with the configured secret");

    // A public route: the client's copy is removed and none is added.
    upstream.clear();
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/public/a",
            &[("x-auth-assertion", forged)],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only().header("x-auth-assertion"), None);
    // HS256 publishes no keys.
    let jwks = Client::new(gateway.admin)
        .get("/.well-known/jwks.json")
        .await;
    assert_eq!(jwks.status, 404);
}

#[tokio::test]
async fn eddsa_assertions_verify_with_the_jwks_from_the_admin_listener() {
    use ring::signature::{UnparsedPublicKey, ED25519};
    let dir = tempfile::tempdir().unwrap();
    // `openssl genpkey -algorithm ed25519` writes the same PKCS#8 PEM.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let key_file = dir.path().join("assertion.pem");
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    // A header outside the default strip patterns: configured names are stripped all the same.
    let (upstream, gateway) = start(&format!(
        "identity_headers:\n  assertion:\n    header: Identity-Assertion\n    algorithm: EdDSA\n    key_file: \"{}\"\n    issuer: https://gw.example.test\n    audience: orders-api\n",
        key_file.display()
    ))
    .await;
    let jwks = Client::new(gateway.admin)
        .get("/.well-known/jwks.json")
        .await;
    assert_eq!(jwks.status, 200);
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(jwk.get("d").is_none(), "no private part");
    // Not on the proxy listener.
    assert_eq!(
        gateway.client().get("/.well-known/jwks.json").await.status,
        401
    );

    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let reply = user
        .send(
            Method::GET,
            "/api/x",
            &[
                ("identity-assertion", "forged"),
                ("Identity_Assertion", "forged"),
            ],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    let token = seen.header("identity-assertion").expect("an assertion");
    let (header, claims, signature, signed) = jwt(token);
    let kid = check_claims(&header, &claims, "EdDSA");
    // The verifier picks the key by kid, as a JWKS client does.
    let key = keys
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the kid names a published key");
    let x = URL_SAFE_NO_PAD.decode(key["x"].as_str().unwrap()).unwrap();
    UnparsedPublicKey::new(&ED25519, x)
        .verify(signed.as_bytes(), &signature)
        .expect("signed with the published key");
    assert!(!seen
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("identity_assertion") || v == "forged"));

    // Anonymous route: stripped, nothing added.
    upstream.clear();
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/public/a",
            &[("Identity-Assertion", "forged")],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(upstream.only().header("identity-assertion"), None);
}

#[tokio::test]
async fn display_name_and_email_reach_the_upstream_only_from_portcullis() {
    let (upstream, gateway) =
        start("identity_headers:\n  display_name: X-User-Name\n  email: X-User-Email\n").await;
    let spoof = [
        ("x-user-name", "Eve"),
        ("X_User_Email", "eve@example.test"),
        ("x-user-email", "eve@example.test"),
    ];
    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let reply = user
        .send(Method::GET, "/api/x", &spoof, bytes::Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(seen.header("x-user-name"), Some("Ursula Ü. User"));
    assert_eq!(seen.header("x-user-email"), Some("user@example.test"));
    assert!(!seen.headers.iter().any(|(n, _)| n.contains('_')));

    // A user without them: neither header, and the client's copies are gone.
    upstream.clear();
    let mut admin = gateway.client();
    login(&mut admin, "admin", ADMIN_PW).await;
    assert_eq!(
        admin
            .send(Method::GET, "/api/x", &spoof, bytes::Bytes::new())
            .await
            .status,
        200
    );
    let seen = upstream.only();
    assert_eq!(seen.header("x-user-name"), None);
    assert_eq!(seen.header("x-user-email"), None);
    upstream.clear();
    let reply = gateway
        .client()
        .send(Method::GET, "/public/a", &spoof, bytes::Bytes::new())
        .await;
    assert_eq!(reply.status, 200);
    let seen = upstream.only();
    assert_eq!(
        (seen.header("x-user-name"), seen.header("x-user-email")),
        (None, None)
    );
}

#[tokio::test]
async fn a_forward_auth_allow_carries_the_assertion_for_the_proxy_to_pass_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s"),
        "assertion-secret-for-tests-0123456789",
    )
    .unwrap();
    let (_upstream, gateway) = start(&format!(
        "trusted_proxies: [\"127.0.0.1/32\"]\nidentity_headers:\n  display_name: X-User-Name\n  assertion:\n    algorithm: HS256\n    secret: \"${{file:{}}}\"\n    issuer: https://gw.example.test\n    audience: orders-api\n",
        dir.path().join("s").display()
    ))
    .await;
    let mut user = gateway.client();
    login(&mut user, "user", USER_PW).await;
    let described = [
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/api/x"),
        ("x-forwarded-host", "gw.example.test"),
        ("x-auth-assertion", "forged"),
    ];
    let reply = user
        .send(
            Method::GET,
            "/.portcullis/auth",
            &described,
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    let name = reply.headers.get("x-user-name").map(|v| v.as_bytes());
    assert_eq!(name, Some("Ursula Ü. User".as_bytes()), "sent as UTF-8");
    let (header, claims, _, _) = jwt(reply.header("x-auth-assertion").expect("an assertion"));
    check_claims(&header, &claims, "HS256");
    // No session: 401 and nothing a proxy could copy.
    let reply = gateway
        .client()
        .send(
            Method::GET,
            "/.portcullis/auth",
            &described,
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.header("x-auth-assertion"), None);
}
