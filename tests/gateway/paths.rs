//! Path confusion (C01, C02, C05 and the kinds around them): every spelling of a request target
//! gets the exact status and error code, and the upstream receives either nothing or the one
//! canonical path the rules were decided on.
//!
//! Fixture R throughout, on Redis: `/public/` anonymous, `/admin/` role admin, anything else a
//! session. Targets are sent as raw bytes so they reach the gateway exactly as written.

use std::net::SocketAddr;

use crate::support::{
    config_yaml, login, raw, Gateway, RedisServer, Store, Upstream, ADMIN_PW, RULES_R, USER_PW,
};

/// The gateway's answer to one raw request: status and JSON error code (empty when the body is
/// not one of the gateway's JSON errors).
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    code: String,
}

/// The three clients every case is tried with: no cookie, `user` (reader), `admin`.
struct Clients {
    user: String,
    admin: String,
}

/// Upstream, Redis and gateway with fixture R, its rules replaced by `rules` when given, and
/// `extra` YAML appended (a `paths:` block).
async fn start(redis: &RedisServer, rules: Option<&str>, extra: &str) -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let mut yaml = config_yaml(upstream.addr, Store::Redis(redis), extra);
    if let Some(rules) = rules {
        yaml = yaml.replace(RULES_R, rules);
    }
    (upstream, Gateway::start(&yaml).await)
}

async fn sessions(gateway: &Gateway) -> Clients {
    Clients {
        user: login(&mut gateway.client(), "user", USER_PW).await,
        admin: login(&mut gateway.client(), "admin", ADMIN_PW).await,
    }
}

/// `method target` as raw bytes with an optional session cookie.
async fn send(addr: SocketAddr, method: &str, target: &str, sid: Option<&str>) -> Answer {
    let cookie = sid
        .map(|sid| format!("Cookie: gw_sid={sid}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: gw.example.test\r\n{cookie}Connection: close\r\n\r\n"
    );
    let (status, text) = raw(addr, request.as_bytes()).await;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|json| json["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Answer { status, code }
}

async fn get(gateway: &Gateway, target: &str, sid: Option<&str>) -> Answer {
    send(gateway.addr, "GET", target, sid).await
}

fn answer(status: u16, code: &str) -> Answer {
    Answer {
        status,
        code: code.to_owned(),
    }
}

fn bad_request() -> Answer {
    answer(400, "bad_request")
}

/// Without a cookie 401 `unauthenticated`, as `user` 403 `forbidden`; nothing forwarded.
async fn assert_admin_only(gateway: &Gateway, upstream: &Upstream, s: &Clients, target: &str) {
    let anonymous = get(gateway, target, None).await;
    assert_eq!(anonymous, answer(401, "unauthenticated"), "{target}");
    let user = get(gateway, target, Some(&s.user)).await;
    assert_eq!(user, answer(403, "forbidden"), "{target} as user");
    assert!(upstream.is_untouched(), "{target} reached the upstream");
}

/// As `admin`: 200, and the upstream received exactly `forwarded`.
async fn assert_forwarded(
    gateway: &Gateway,
    upstream: &Upstream,
    sid: Option<&str>,
    target: &str,
    forwarded: &str,
) {
    let reply = get(gateway, target, sid).await;
    assert_eq!(reply.status, 200, "{target}: {reply:?}");
    assert_eq!(upstream.only().target, forwarded, "{target}");
    upstream.clear();
}

/// 400 `bad_request` with and without a session, before any store read; nothing forwarded.
async fn assert_refused(
    gateway: &Gateway,
    upstream: &Upstream,
    redis: &RedisServer,
    s: &Clients,
    target: &str,
) {
    redis.reset_stats();
    assert_eq!(get(gateway, target, None).await, bad_request(), "{target}");
    let user = get(gateway, target, Some(&s.user)).await;
    assert_eq!(user, bad_request(), "{target} with a session");
    assert_eq!(redis.command_calls("get"), 0, "{target}: store read");
    assert!(upstream.is_untouched(), "{target} reached the upstream");
}

#[tokio::test]
async fn c01_dot_and_empty_segments_resolve_before_the_rules() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, None, "").await;
    let s = sessions(&gateway).await;
    let targets = [
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/public/.%2e/admin/users",
        "/public/%2E%2E/admin/users",
        "/./admin/users",
        "/admin/./users",
        "//admin/users",
        "/admin//users",
        "///admin/users",
        "/public/x/../../admin/users",
        "/admin/users#x",
    ];
    for target in targets {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    // The upstream sees the resolved path, never the raw form.
    for target in targets {
        assert_forwarded(&gateway, &upstream, Some(&s.admin), target, "/admin/users").await;
    }
    // `..;` is a semicolon: refused by default (see the preserve test for the other choice).
    assert_refused(&gateway, &upstream, &redis, &s, "/public/..;/admin/users").await;
    // Control: resolves to a public path and is forwarded as such.
    assert_forwarded(
        &gateway,
        &upstream,
        None,
        "/public/../public/a",
        "/public/a",
    )
    .await;
}

#[tokio::test]
async fn c01_with_semicolons_preserved_dot_dot_semicolon_is_judged_as_a_parent_segment() {
    let redis = RedisServer::start();
    let extra = "paths:\n  semicolon: preserve\n";
    let (upstream, gateway) = start(&redis, None, extra).await;
    let s = sessions(&gateway).await;
    for target in [
        "/public/..;/admin/users",
        "/public/..%3B/admin/users",
        "/public;x/../admin/users",
        "/admin;v=1/users",
    ] {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    // Forwarded as checked: the semicolon stays, escapes upper-cased.
    let admin = Some(s.admin.as_str());
    let forwarded = "/public/..;/admin/users";
    assert_forwarded(&gateway, &upstream, admin, forwarded, forwarded).await;
    let target = "/public/..%3b/admin/users";
    assert_forwarded(
        &gateway,
        &upstream,
        admin,
        target,
        "/public/..%3B/admin/users",
    )
    .await;
    // Parameters on a public path stay public.
    assert_forwarded(&gateway, &upstream, None, "/public/a;v=1", "/public/a;v=1").await;
    // A public-looking first segment with parameters is not public as sent.
    let public_ish = get(&gateway, "/public;x/a", None).await;
    assert_eq!(public_ish, answer(401, "unauthenticated"));
    // Other ambiguous spellings stay refused.
    assert_refused(&gateway, &upstream, &redis, &s, "/public/..%2Fadmin/users").await;
}

#[tokio::test]
async fn c02_encoded_separators_and_double_encoding_are_400_before_any_lookup() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, None, "").await;
    let s = sessions(&gateway).await;
    for target in [
        "/public/..%2fadmin/users",
        "/public/..%2Fadmin/users",
        "/public/..%5cadmin/users",
        "/public/..%5Cadmin/users",
        r"/public/..\admin/users",
        "/public%2f..%2fadmin/users",
        "/admin%2fusers",
        "/admin/..%2fpublic/x",
        "/public/%252e%252e/admin/users",
        "/public/%252e%252e%252fadmin/users",
        "/public/%25%32%65%25%32%65/admin/users",
        "/public/%252E%252E/admin/users",
    ] {
        assert_refused(&gateway, &upstream, &redis, &s, target).await;
    }
    // Decoded once: an encoded letter is the letter.
    assert_admin_only(&gateway, &upstream, &s, "/%61dmin/users").await;
    let admin = Some(s.admin.as_str());
    assert_forwarded(&gateway, &upstream, admin, "/%61dmin/users", "/admin/users").await;
}

#[tokio::test]
async fn c02_with_encoded_slashes_preserved_both_readings_are_judged() {
    let redis = RedisServer::start();
    let extra = "paths:\n  encoded_slash: preserve\n";
    let (upstream, gateway) = start(&redis, None, extra).await;
    let s = sessions(&gateway).await;
    for target in [
        // The Caddy direction: one opaque segment as data, `/admin/users` once decoded.
        "/public/..%2fadmin/users",
        "/public/..%2Fadmin/users",
        "/public%2f..%2fadmin/users",
        "/public/..%5cadmin/users",
        r"/public/..\admin/users",
        // The bifrost direction: decoded it is public, as data it is under /admin/.
        "/admin/..%2fpublic/x",
        "/admin%2fusers",
        "/admin%5Cusers",
    ] {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    // Forwarded as checked: the escape kept, hex upper-cased; a raw backslash as `%5C`.
    let admin = Some(s.admin.as_str());
    let target = "/public/..%2fadmin/users";
    assert_forwarded(
        &gateway,
        &upstream,
        admin,
        target,
        "/public/..%2Fadmin/users",
    )
    .await;
    let target = r"/public/..\admin/users";
    assert_forwarded(
        &gateway,
        &upstream,
        admin,
        target,
        "/public/..%5Cadmin/users",
    )
    .await;
    // What the option is for: a slash inside a segment of a public path.
    let target = "/public/files/a%2fb.txt";
    assert_forwarded(&gateway, &upstream, None, target, "/public/files/a%2Fb.txt").await;
    // Other ambiguous spellings stay refused.
    assert_refused(
        &gateway,
        &upstream,
        &redis,
        &s,
        "/public/%252e%252e/admin/users",
    )
    .await;
    assert_refused(&gateway, &upstream, &redis, &s, "/public/..;/admin/users").await;
}

#[tokio::test]
async fn c02_with_encoded_percent_preserved_double_decoding_is_judged() {
    let redis = RedisServer::start();
    let extra = "paths:\n  encoded_percent: preserve\n";
    let (upstream, gateway) = start(&redis, None, extra).await;
    let s = sessions(&gateway).await;
    for target in [
        "/public/%252e%252e/admin/users",
        "/public/%252E%252E/admin/users",
        "/public/%25%32%65%25%32%65/admin/users",
        "/%2561dmin/users",
        "/public/%25252e%25252e/admin/users",
    ] {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    // Forwarded as checked: the single decode of `%25%32%65` is `%252e`, never `.`.
    let admin = Some(s.admin.as_str());
    let target = "/public/%25%32%65%25%32%65/admin/users";
    let forwarded = "/public/%252e%252e/admin/users";
    assert_forwarded(&gateway, &upstream, admin, target, forwarded).await;
    assert_forwarded(
        &gateway,
        &upstream,
        None,
        "/public/100%25",
        "/public/100%25",
    )
    .await;
    // A separator made by the second decode is judged too, and refused as bytes that decode to
    // nothing valid: an overlong `.`, a NUL.
    assert_admin_only(
        &gateway,
        &upstream,
        &s,
        "/public/%252e%252e%252fadmin/users",
    )
    .await;
    for target in ["/public/%25C0%25AE%25C0%25AE/admin/users", "/public/a%2500"] {
        assert_refused(&gateway, &upstream, &redis, &s, target).await;
    }
    assert_refused(&gateway, &upstream, &redis, &s, "/public/..%2Fadmin/users").await;
}

#[tokio::test]
async fn c05_malformed_targets_are_400_and_unmatched_paths_401() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, None, "").await;
    let s = sessions(&gateway).await;
    for target in [
        "/admin/%zz",
        "/admin/%",
        "/admin/%0",
        "/admin/%00users",
        "/admin/%ff%fe",
        "/admin/%7f",
        "/admin/%0d%0aX-Auth-User:%20admin",
        "/%u0061dmin/users",
        "*",
        "http://gw.example.test/admin/users",
    ] {
        assert_refused(&gateway, &upstream, &redis, &s, target).await;
    }
    let request = "GET /admin/%zz HTTP/1.1\r\nHost: gw.example.test\r\nConnection: close\r\n\r\n";
    let (status, text) = raw(gateway.addr, request.as_bytes()).await;
    let head = text.split_once("\r\n\r\n").map_or("", |(head, _)| head);
    assert_eq!(status, 400, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .split("\r\n")
            .any(|line| line == "cache-control: no-store"),
        "{head}"
    );
    // Raw control bytes, spaces and a target without its slash break the request line itself:
    // 400 from the HTTP parser.
    for target in [
        "/admin/a\x01b",
        "/admin/a b",
        "/admin/a\x00b",
        "admin/users",
    ] {
        let refused = get(&gateway, target, None).await;
        assert_eq!(refused.status, 400, "{target:?}");
    }
    assert_eq!(
        get(&gateway, "/unknown-area/x", None).await,
        answer(401, "unauthenticated")
    );
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn letter_case_is_judged_lowercased_and_forwarded_as_sent() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, None, "").await;
    let s = sessions(&gateway).await;
    for target in ["/ADMIN/users", "/Admin/users", "/aDmIn", "/%41DMIN/users"] {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    let admin = Some(s.admin.as_str());
    assert_forwarded(&gateway, &upstream, admin, "/ADMIN/users", "/ADMIN/users").await;
    // A permissive rule matches narrowly: `/PUBLIC/a` is not public as sent.
    let shouted = get(&gateway, "/PUBLIC/a", None).await;
    assert_eq!(shouted, answer(401, "unauthenticated"));
    let user = Some(s.user.as_str());
    assert_forwarded(&gateway, &upstream, user, "/PUBLIC/a", "/PUBLIC/a").await;
}

/// Exact and prefix rules, a deny rule and method lists, to show the trailing-slash and HEAD
/// readings.
const RULES_EXACT: &str = "access:\n  default: authenticated\n  rules:\n    - path: /public/\n      allow: anonymous\n    - path: /admin/\n      roles: [admin]\n    - path: /status\n      allow: anonymous\n    - path: /ops\n      allow: deny\n    - path: /feed/\n      methods: [HEAD]\n      allow: anonymous\n    - path: /docs/\n      methods: [GET, HEAD]\n      allow: anonymous\n    - path: /reports/\n      methods: [GET]\n";

#[tokio::test]
async fn trailing_slash_is_judged_both_ways() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, Some(RULES_EXACT), "").await;
    let s = sessions(&gateway).await;
    // `/admin` is covered by the `/admin/` rule; `/ops/` by the exact `/ops` deny.
    assert_admin_only(&gateway, &upstream, &s, "/admin").await;
    for target in ["/ops", "/ops/", "/OPS/", "/ops/."] {
        let anonymous = get(&gateway, target, None).await;
        assert_eq!(anonymous, answer(401, "unauthenticated"), "{target}");
        // Deny is 403 for any session, admin too.
        for sid in [&s.user, &s.admin] {
            let with_session = get(&gateway, target, Some(sid)).await;
            assert_eq!(with_session, answer(403, "forbidden"), "{target}");
        }
    }
    assert!(upstream.is_untouched());
    // An exact permissive rule covers its trailing-slash spelling, forwarded as sent.
    assert_forwarded(&gateway, &upstream, None, "/status/", "/status/").await;
    assert_forwarded(&gateway, &upstream, None, "/status", "/status").await;
    let below = get(&gateway, "/status/x", None).await;
    assert_eq!(below, answer(401, "unauthenticated"));
}

#[tokio::test]
async fn head_is_also_judged_as_get() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, Some(RULES_EXACT), "").await;
    let s = sessions(&gateway).await;
    // A rule that allows only HEAD still denies HEAD: its GET reading is denied.
    let head = send(gateway.addr, "HEAD", "/feed/x", None).await;
    assert_eq!(head.status, 401);
    let head = send(gateway.addr, "HEAD", "/feed/x", Some(&s.user)).await;
    assert_eq!(head.status, 403);
    // A rule listing GET but not HEAD denies HEAD (list HEAD to allow it).
    let head = send(gateway.addr, "HEAD", "/reports/q1", Some(&s.user)).await;
    assert_eq!(head.status, 403);
    assert!(upstream.is_untouched());
    let head = send(gateway.addr, "HEAD", "/docs/a", None).await;
    assert_eq!(head.status, 200);
    let seen = upstream.only();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        ("HEAD", "/docs/a")
    );
    upstream.clear();
    // HEAD on the protected area is judged like GET there.
    let head = send(gateway.addr, "HEAD", "/admin/users", Some(&s.user)).await;
    assert_eq!(head.status, 403);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn trailing_dots_and_spaces_are_judged_as_windows_reads_them() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, None, "").await;
    let s = sessions(&gateway).await;
    for target in [
        "/admin./users",
        "/admin%20/users",
        "/admin.%20./users",
        "/admin...",
        "/admin%20",
        "/public/..%20/admin/users",
    ] {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    let admin = Some(s.admin.as_str());
    assert_forwarded(&gateway, &upstream, admin, "/admin./users", "/admin./users").await;
    // Trimming never makes a path public, and leaves public paths public.
    let trimmed_public = get(&gateway, "/public./a", None).await;
    assert_eq!(trimmed_public, answer(401, "unauthenticated"));
    assert_forwarded(&gateway, &upstream, None, "/public/a.", "/public/a.").await;
    assert_forwarded(&gateway, &upstream, None, "/public/a%20b", "/public/a%20b").await;
}

#[tokio::test]
async fn unicode_look_alikes_are_judged_normalized_and_folded() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, None, "").await;
    let s = sessions(&gateway).await;
    for target in [
        "/%EF%BD%81dmin/users",
        "/%ef%bd%81dmin/users",
        "/%EF%BC%A1DMIN/users",
        "/adm%C4%B1n/users",
        "/ad%E2%80%8Bmin/users",
        "/public/%EF%BC%8E%EF%BC%8E/admin/users",
        "/public%EF%BC%8F..%EF%BC%8Fadmin/users",
    ] {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    // Forwarded as checked: escapes kept, hex upper-cased.
    let admin = Some(s.admin.as_str());
    let target = "/%ef%bd%81dmin/users";
    assert_forwarded(&gateway, &upstream, admin, target, "/%EF%BD%81dmin/users").await;
    let target = "/public/caf%c3%a9";
    assert_forwarded(&gateway, &upstream, None, target, "/public/caf%C3%A9").await;
    // Raw non-ASCII is not a valid request target.
    let raw_fullwidth = get(&gateway, "/\u{ff41}dmin/users", None).await;
    assert_eq!(raw_fullwidth.status, 400);
    assert!(upstream.is_untouched());
}

#[tokio::test]
async fn invalid_utf8_and_control_characters_in_escapes_are_400() {
    let redis = RedisServer::start();
    let (upstream, gateway) = start(&redis, None, "").await;
    let s = sessions(&gateway).await;
    for target in [
        // Overlong encodings of `.` and `/`.
        "/public/%C0%AE%C0%AE/admin/users",
        "/public/%E0%80%AE%E0%80%AE/admin/users",
        "/public/..%C0%AFadmin/users",
        // Truncated, stray continuation, surrogate, beyond U+10FFFF.
        "/admin/%C3",
        "/admin/%80",
        "/admin/%ED%A0%80",
        "/admin/%F4%90%80%80",
        // Controls: C0, DEL, C1.
        "/public/a%09",
        "/public/a%7F",
        "/public/a%C2%85",
    ] {
        assert_refused(&gateway, &upstream, &redis, &s, target).await;
    }
}

#[tokio::test]
async fn look_alikes_accents_streams_and_format_suffixes_are_judged_as_the_name_they_read_as() {
    let redis = RedisServer::start();
    let rules = format!("{RULES_R}    - path: /secret/\n      allow: deny\n");
    let (upstream, gateway) = start(&redis, Some(&rules), "").await;
    let s = sessions(&gateway).await;
    for target in [
        // Windows best-fit separators that NFKC leaves alone.
        "/public/..%E2%88%95admin/users",
        "/public/..%E2%81%84admin/users",
        "/public/..%E2%A7%B8admin/users",
        "/public/..%C2%A5admin/users",
        "/public/..%E2%82%A9admin/users",
        // Accent-insensitive names.
        "/admin%CC%81/users",
        "/admi%C5%88/users",
        // NTFS streams.
        "/admin::$INDEX_ALLOCATION/users",
        "/admin:$i30:$INDEX_ALLOCATION/users",
        "/admin::$DATA",
        // Format suffixes.
        "/admin.json",
        "/admin/users.xml",
    ] {
        assert_admin_only(&gateway, &upstream, &s, target).await;
    }
    for target in ["/secret.json", "/secret::$DATA", "/se%CC%81cret/x"] {
        assert_eq!(
            get(&gateway, target, Some(&s.admin)).await,
            answer(403, "forbidden"),
            "{target}"
        );
    }
    assert!(upstream.is_untouched());
    // Ordinary names keep working.
    assert_forwarded(
        &gateway,
        &upstream,
        None,
        "/public/logo.png",
        "/public/logo.png",
    )
    .await;
    assert_forwarded(
        &gateway,
        &upstream,
        Some(&s.user),
        "/api/report.pdf",
        "/api/report.pdf",
    )
    .await;
    assert_forwarded(
        &gateway,
        &upstream,
        Some(&s.admin),
        "/admin/users.xml",
        "/admin/users.xml",
    )
    .await;
}
