//! Tests for canonicalization, readings in decisions and rules: pure, fed strings.

use proptest::prelude::*;

use super::*;

/// Decide on a path the way the router does (default options): parse, then judge every reading.
trait Judge {
    fn judge(&self, path: &str, method: &Method) -> Decision;
}

impl Judge for RuleSet {
    #[track_caller]
    fn judge(&self, path: &str, method: &Method) -> Decision {
        let path = CanonicalPath::parse(path, &PathOptions::default())
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        self.decide(&path, method)
    }
}

/// A rule as the config writes it: `"/x/"` is a prefix, `"/x"` exact.
fn rule(path: &str, allow: Allow, roles: &[&str]) -> Rule {
    let path = match path.ends_with('/') {
        true => PathPattern::Prefix(path.to_string()),
        false => PathPattern::Exact(path.to_string()),
    };
    let roles = roles.iter().map(|r| r.to_string()).collect();
    Rule {
        path,
        methods: None,
        roles,
        allow,
    }
}

fn only(methods: &[Method], rule: Rule) -> Rule {
    Rule {
        methods: Some(methods.to_vec()),
        ..rule
    }
}

/// Fixture R from cases.md plus a GET-only area (`/session` is the router's business).
fn fixture_r(default: Allow) -> RuleSet {
    let rules = vec![
        rule("/public/", Allow::Anonymous, &[]),
        rule("/admin/", Allow::Authenticated, &["admin"]),
        only(&[Method::GET], rule("/reports/", Allow::Authenticated, &[])),
    ];
    RuleSet::new(rules, default)
}

fn session(role_sets: &[&[&str]]) -> Decision {
    let role_sets = role_sets.iter().map(|set| roles(set)).collect();
    Decision::Session { role_sets }
}

fn roles(names: &[&str]) -> Vec<String> {
    names.iter().map(|r| r.to_string()).collect()
}

#[test]
fn dot_and_empty_segments_resolve_to_the_protected_path() {
    let inputs = "/public/../admin/users /public/%2e%2e/admin/users /public/.%2e/admin/users
        /public/%2E%2E/admin/users /./admin/users /admin/./users //admin/users
        /admin//users ///admin/users /public/x/../../admin/users /%61dmin/users";
    for input in inputs.split_whitespace() {
        let canonical = canonicalize(input);
        assert_eq!(canonical.as_deref(), Ok("/admin/users"), "{input}");
    }
}

#[test]
fn canonical_forms_of_edge_paths() {
    // Pairs of input and canonical form.
    let pairs = "/ /  // /  /../.. /  /. /  /a/b/.. /a/  /a/b/. /a/b/  /public/ /public/
        /admin// /admin/  /%73ession /session  /public/../public/a /public/a
        /caf%c3%a9 /caf%C3%A9  /a%20b /a%20b  /a%3f%5b /a%3F%5B  /a%25zz /a%25zz
        /a%3a%40%21 /a%3A%40%21  /a:b@c!$&'()*+,=-._~ /a:b@c!$&'()*+,=-._~";
    let words: Vec<&str> = pairs.split_whitespace().collect();
    for pair in words.chunks(2) {
        assert_eq!(canonicalize(pair[0]).as_deref(), Ok(pair[1]), "{}", pair[0]);
    }
}

#[test]
fn ambiguous_targets_are_rejected() {
    use PathError::*;
    let cases = [
        (
            NotOriginForm,
            "* admin/users http://gw.example.test/admin/users",
        ),
        (
            Semicolon,
            "/public/..;/admin/users /public/..%3badmin/users",
        ),
        (
            AmbiguousSeparator,
            r"/public/..%2fadmin/users /public/..%2Fadmin/users /public/..%5cadmin/users
            /public/..%5Cadmin/users /public/..\admin/users /public%2f..%2fadmin/users
            /admin%2fusers /admin/..%2fpublic/x",
        ),
        (
            DoubleEncoding,
            "/public/%252e%252e/admin/users /public/%252e%252e%252fadmin/users
            /public/%25%32%65%25%32%65/admin/users",
        ),
        (InvalidEscape, "/admin/%zz /admin/% /admin/%0"),
        (
            ControlByte,
            "/admin/%00users /admin/%7f /admin/\u{1}users /a\u{7f} /a%09 /a%C2%85 /a%c2%9f",
        ),
        (
            InvalidCharacter,
            "/admin/%ff%fe /admin/%c3a%a9 /admin/users#x /admin/users?x /admin/caf\u{e9} /a[b]
            /public/%C0%AE%C0%AE/admin /%E0%80%AE /%ED%A0%80 /%F4%90%80%80 /%C3 /a%80",
        ),
    ];
    for (expected, inputs) in cases {
        for input in inputs.split_whitespace() {
            assert_eq!(canonicalize(input), Err(expected), "{input:?}");
        }
    }
    assert_eq!(canonicalize(""), Err(NotOriginForm));
    assert_eq!(canonicalize("/admin/ users"), Err(InvalidCharacter));
}

#[test]
fn fixture_r_decisions() {
    let r = fixture_r(Allow::Authenticated);
    let get = Method::GET;
    assert_eq!(r.judge("/public/a", &get), Decision::Anonymous);
    assert_eq!(r.judge("/public/", &get), Decision::Anonymous);
    assert_eq!(r.judge("/public", &get), Decision::Anonymous);
    // As-is `/Public/a` matches no rule (default authenticated); the folded reading is
    // public. The most restrictive reading wins.
    assert_eq!(r.judge("/Public/a", &get), session(&[]));
    for admin in [
        "/admin/users",
        "/ADMIN/users",
        "/admin",
        "/admin/",
        "/Admin",
    ] {
        assert_eq!(r.judge(admin, &get), session(&[&["admin"]]), "{admin}");
    }
    assert_eq!(r.judge("/administrator", &get), session(&[]));
    assert_eq!(r.judge("/api/x", &get), session(&[]));
    assert_eq!(r.judge("/", &get), session(&[]));
}

#[test]
fn method_restricted_rule_denies_other_methods() {
    let r = fixture_r(Allow::Authenticated);
    assert_eq!(r.judge("/reports/q1", &Method::GET), session(&[]));
    assert_eq!(r.judge("/reports/q1", &Method::POST), Decision::Deny);
    assert_eq!(r.judge("/Reports/q1", &Method::DELETE), Decision::Deny);
    // HEAD is read as HEAD and as GET; the HEAD reading is not in the list, so a rule that
    // lists GET but not HEAD denies HEAD (list HEAD explicitly to allow it).
    assert_eq!(r.judge("/reports/q1", &Method::HEAD), Decision::Deny);
    let both = only(
        &[Method::GET, Method::HEAD],
        rule("/reports/", Allow::Authenticated, &[]),
    );
    let r = RuleSet::new(vec![both], Allow::Deny);
    assert_eq!(r.judge("/reports/q1", &Method::HEAD), session(&[]));
    // And the GET reading of HEAD counts too: a HEAD-only rule denies HEAD.
    let head_only = only(&[Method::HEAD], rule("/x/", Allow::Anonymous, &[]));
    let r = RuleSet::new(vec![head_only], Allow::Anonymous);
    assert_eq!(r.judge("/x/a", &Method::HEAD), Decision::Deny);
}

#[test]
fn default_deny_covers_unmatched_paths() {
    let r = fixture_r(Allow::Deny);
    assert_eq!(r.judge("/unknown-area/x", &Method::GET), Decision::Deny);
    assert_eq!(r.judge("/public/a", &Method::GET), Decision::Anonymous);
    // The folded reading of `/PUBLIC/a` is public, the as-is one falls to the default.
    assert_eq!(r.judge("/PUBLIC/a", &Method::GET), Decision::Deny);
}

#[test]
fn exact_pattern_and_trailing_slash_readings() {
    let rules = vec![
        rule("/health", Allow::Anonymous, &[]),
        rule("/me", Allow::Optional, &[]),
        rule("/ops", Allow::Deny, &[]),
    ];
    let r = RuleSet::new(rules, Allow::Anonymous);
    assert_eq!(r.judge("/health", &Method::GET), Decision::Anonymous);
    assert_eq!(r.judge("/me", &Method::GET), Decision::Optional);
    assert_eq!(r.judge("/ME/", &Method::GET), Decision::Optional);
    assert_eq!(r.judge("/ops/", &Method::GET), Decision::Deny);
    assert_eq!(r.judge("/Ops", &Method::GET), Decision::Deny);
}

#[test]
fn exact_permissive_rule_works_under_default_deny() {
    let r = RuleSet::new(vec![rule("/health", Allow::Anonymous, &[])], Allow::Deny);
    assert_eq!(r.judge("/health", &Method::GET), Decision::Anonymous);
    assert_eq!(r.judge("/health/", &Method::GET), Decision::Anonymous);
    assert_eq!(r.judge("/health/x", &Method::GET), Decision::Deny);
}

#[test]
fn capitalised_protective_pattern_still_covers_lowercase_requests() {
    let r = RuleSet::new(
        vec![rule("/Admin/", Allow::Authenticated, &["admin"])],
        Allow::Anonymous,
    );
    assert_eq!(
        r.judge("/admin/users", &Method::GET),
        session(&[&["admin"]])
    );
}

#[test]
fn role_sets_from_every_authenticated_reading_are_combined() {
    let rules = vec![
        rule("/Team/", Allow::Authenticated, &["team"]),
        rule("/team/", Allow::Authenticated, &["admin", "ops"]),
    ];
    let decision = RuleSet::new(rules, Allow::Deny).judge("/team/x", &Method::GET);
    assert_eq!(decision, session(&[&["admin", "ops"], &["team"]]));
    assert!(decision.permits(&roles(&["ops", "team"])));
    assert!(!decision.permits(&roles(&["ops"])));
}

#[test]
fn permits_checks_every_role_set() {
    assert!(!Decision::Deny.permits(&roles(&["admin"])));
    assert!(Decision::Anonymous.permits(&[]));
    assert!(Decision::Optional.permits(&[]));
    assert!(session(&[]).permits(&[]));
    assert!(session(&[&["admin"]]).permits(&roles(&["reader", "admin"])));
    assert!(!session(&[&["admin"]]).permits(&roles(&["reader"])));
    assert!(!session(&[&["admin"]]).permits(&[]));
}

#[test]
fn canonicalization_is_idempotent_and_decision_stable() {
    let r = fixture_r(Allow::Authenticated);
    let tricky = "/ // /./ /.. /a/. /a/.. /a/b/../ /%2e /%2e%2e/ /.%2e. /... /a%2e/b /%25
        /%25zz /%25%32 /%25%32%65 /%c3%a9/%C3%A9 /%41%42/c /a%20b/ /public/%2E%2e/admin
        /Public/../ADMIN/ /~user/x%7e /a:b@c /public// /x/%21%24 /%252 /reports/%2e/ /admin/..";
    for input in tricky.split_whitespace() {
        let Ok(once) = canonicalize(input) else {
            continue;
        };
        let twice = canonicalize(&once);
        assert_eq!(twice.as_deref(), Ok(once.as_str()), "{input}");
        for method in [Method::GET, Method::HEAD, Method::POST] {
            let again = r.judge(twice.as_deref().unwrap(), &method);
            assert_eq!(r.judge(&once, &method), again, "{input}");
        }
    }
}

#[test]
fn every_short_path_is_idempotent_and_clean() {
    // Every string of up to five characters over an alphabet of dots, slashes and escape
    // material, after a leading slash (bijective numbering, so no length is skipped).
    const ALPHABET: &[u8] = b"/.%2eEa5fF";
    let mut input = Vec::new();
    for n in 0..111_111usize {
        input.clear();
        input.push(b'/');
        let mut rest = n;
        while rest > 0 {
            rest -= 1;
            input.push(ALPHABET[rest % ALPHABET.len()]);
            rest /= ALPHABET.len();
        }
        let text = std::str::from_utf8(&input).unwrap();
        let Ok(once) = canonicalize(text) else {
            continue;
        };
        assert_eq!(canonicalize(&once).as_deref(), Ok(once.as_str()), "{text}");
        let clean = once.split('/').skip(1).all(|s| s != "." && s != "..");
        assert!(clean && !once.contains("//"), "{text} -> {once}");
    }
}

const PRESERVE_ALL: PathOptions = PathOptions {
    encoded_slash: PathPolicy::Preserve,
    encoded_percent: PathPolicy::Preserve,
    semicolon: PathPolicy::Preserve,
};

/// `options` with only `which` set to preserve.
fn preserving(which: &str) -> PathOptions {
    let mut options = PathOptions::default();
    match which {
        "encoded_slash" => options.encoded_slash = PathPolicy::Preserve,
        "encoded_percent" => options.encoded_percent = PathPolicy::Preserve,
        "semicolon" => options.semicolon = PathPolicy::Preserve,
        _ => unreachable!("{which}"),
    }
    options
}

#[track_caller]
fn parse(path: &str, options: &PathOptions) -> CanonicalPath {
    CanonicalPath::parse(path, options).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn preserved_escapes_are_forwarded_as_sent_with_upper_case_hex() {
    let cases = [
        ("encoded_slash", "/files/a%2fb", "/files/a%2Fb"),
        ("encoded_slash", "/files/a%5cb/", "/files/a%5Cb/"),
        (
            "encoded_slash",
            "/public/..%2Fadmin/x",
            "/public/..%2Fadmin/x",
        ),
        ("encoded_slash", "/a/%2e%2e%2fb", "/a/..%2Fb"),
        ("encoded_slash", r"/a\b/..\c", "/a%5Cb/..%5Cc"),
        ("encoded_percent", "/100%25/x", "/100%25/x"),
        ("encoded_percent", "/a%252e", "/a%252e"),
        ("encoded_percent", "/a%25%32%65", "/a%252e"),
        ("encoded_percent", "/a%252F", "/a%252F"),
        ("semicolon", "/a;v=1/b", "/a;v=1/b"),
        ("semicolon", "/public/..;/admin", "/public/..;/admin"),
        ("semicolon", "/a%3bb", "/a%3Bb"),
    ];
    for (option, input, forwarded) in cases {
        let path = parse(input, &preserving(option));
        assert_eq!(path.as_str(), forwarded, "{option}: {input}");
        assert_eq!(path.readings().next(), Some(forwarded));
    }
}

#[test]
fn each_option_governs_only_its_own_spellings() {
    use PathError::*;
    let cases = [
        ("encoded_slash", "/a;b", Semicolon),
        ("encoded_slash", "/a%3Bb", Semicolon),
        ("encoded_slash", "/a%252e", DoubleEncoding),
        ("encoded_percent", "/a%2Fb", AmbiguousSeparator),
        ("encoded_percent", r"/a\b", AmbiguousSeparator),
        ("encoded_percent", "/a;b", Semicolon),
        ("semicolon", r"/a\b", AmbiguousSeparator),
        ("semicolon", "/a%2Fb", AmbiguousSeparator),
        ("semicolon", "/a%5Cb", AmbiguousSeparator),
        ("semicolon", "/a%25%32%65", DoubleEncoding),
    ];
    for (option, input, refusal) in cases {
        assert_eq!(
            CanonicalPath::parse(input, &preserving(option)),
            Err(refusal),
            "{option}: {input}"
        );
    }
    // Controls, bad escapes, bad UTF-8 and raw non-ASCII stay refused whatever the options.
    for input in [
        "/a%00",
        "/a%C2%85",
        "/a%zz",
        "/a%2",
        "/a%C0%AE",
        "/a b",
        "/a#b",
        "/caf\u{e9}",
    ] {
        assert!(
            CanonicalPath::parse(input, &PRESERVE_ALL).is_err(),
            "{input}"
        );
    }
}

#[test]
fn default_options_refuse_what_invariant_2_calls_ambiguous() {
    use PathError::*;
    for (input, refusal) in [
        ("/public/..%2Fadmin/users", AmbiguousSeparator),
        ("/public/..%5cadmin/users", AmbiguousSeparator),
        ("/public/%252e%252e/admin/users", DoubleEncoding),
        ("/public/%25%32%65%25%32%65/admin/users", DoubleEncoding),
        ("/public/..;/admin/users", Semicolon),
        ("/public/..%3Badmin/users", Semicolon),
    ] {
        assert_eq!(
            CanonicalPath::parse(input, &PathOptions::default()),
            Err(refusal),
            "{input}"
        );
    }
}

#[test]
fn encoded_slash_is_judged_as_data_and_as_separator() {
    let r = fixture_r(Allow::Authenticated);
    let options = preserving("encoded_slash");
    let decide = |path: &str| r.decide(&parse(path, &options), &Method::GET);
    // The Caddy direction: opaque as data, `/admin/x` once decoded.
    assert_eq!(decide("/public/..%2Fadmin/x"), session(&[&["admin"]]));
    assert_eq!(decide("/public/..%5Cadmin/x"), session(&[&["admin"]]));
    assert_eq!(decide("/public%2F..%2Fadmin/x"), session(&[&["admin"]]));
    // The bifrost direction: decoded it is public, as data it is under /admin/.
    assert_eq!(decide("/admin/..%2Fpublic/x"), session(&[&["admin"]]));
    assert_eq!(decide("/admin%2Fusers"), session(&[&["admin"]]));
    // Permissive rules stay narrow but still apply when every reading agrees.
    assert_eq!(decide("/public/a%2Fb"), Decision::Anonymous);
    assert_eq!(decide("/public/a%2F..%2Fb"), Decision::Anonymous);
}

#[test]
fn encoded_percent_is_judged_decoded_once_and_twice() {
    let r = fixture_r(Allow::Authenticated);
    let options = preserving("encoded_percent");
    let decide = |path: &str| r.decide(&parse(path, &options), &Method::GET);
    for path in [
        "/public/%252e%252e/admin/users",
        "/public/%25%32%65%25%32%65/admin/users",
        "/public/%252e%252e%252fadmin/users",
        "/%2561dmin/users",
    ] {
        assert_eq!(decide(path), session(&[&["admin"]]), "{path}");
    }
    assert_eq!(decide("/public/100%25"), Decision::Anonymous);
    assert_eq!(decide("/public/%2541"), Decision::Anonymous);
}

#[test]
fn semicolon_is_judged_with_and_without_parameters() {
    let r = fixture_r(Allow::Authenticated);
    let options = preserving("semicolon");
    let decide = |path: &str| r.decide(&parse(path, &options), &Method::GET);
    assert_eq!(decide("/public/..;/admin/users"), session(&[&["admin"]]));
    assert_eq!(decide("/public/..%3B/admin/users"), session(&[&["admin"]]));
    assert_eq!(decide("/admin;x/users"), session(&[&["admin"]]));
    assert_eq!(decide("/public;x/a"), session(&[]));
    assert_eq!(decide("/public/a;v=1"), Decision::Anonymous);
}

#[test]
fn trailing_dots_and_spaces_are_judged_trimmed() {
    let r = fixture_r(Allow::Authenticated);
    for path in [
        "/admin./users",
        "/admin%20/users",
        "/admin.%20./users",
        "/admin.",
        "/public/..%20/admin/x",
    ] {
        assert_eq!(
            r.judge(path, &Method::GET),
            session(&[&["admin"]]),
            "{path}"
        );
    }
    // Trimming never makes a path public: as sent, `/public./a` is under no rule.
    assert_eq!(r.judge("/public./a", &Method::GET), session(&[]));
    assert_eq!(r.judge("/public/a.", &Method::GET), Decision::Anonymous);
}

#[test]
fn unicode_is_judged_normalized_and_folded() {
    let r = fixture_r(Allow::Authenticated);
    for path in [
        "/public/%EF%BC%8E%EF%BC%8E/admin",
        "/public/%ef%bc%8e%ef%bc%8e/admin/users",
        "/adm%C4%B1n/users",
        "/%EF%BC%A1DMIN/users",
        "/public%EF%BC%8F..%EF%BC%8Fadmin/x",
    ] {
        assert_eq!(
            r.judge(path, &Method::GET),
            session(&[&["admin"]]),
            "{path}"
        );
    }
    assert_eq!(
        r.judge("/public/caf%C3%A9", &Method::GET),
        Decision::Anonymous
    );
}

#[test]
fn extra_readings_get_trailing_slash_case_and_head_readings_too() {
    let r = RuleSet::new(
        vec![
            rule("/public/", Allow::Anonymous, &[]),
            only(&[Method::GET], rule("/reports", Allow::Anonymous, &[])),
            rule("/Ops/", Allow::Deny, &[]),
        ],
        Allow::Anonymous,
    );
    let slash = preserving("encoded_slash");
    let decide = |path: &str, method: &Method| r.decide(&parse(path, &slash), method);
    // The decoded reading `/reports/` meets the exact rule through its trailing-slash reading,
    // and HEAD is also read as GET there.
    assert_eq!(
        decide("/public/..%2Freports/", &Method::GET),
        Decision::Anonymous
    );
    assert_eq!(
        decide("/public/..%2Freports/", &Method::HEAD),
        Decision::Deny
    );
    assert_eq!(
        decide("/public/..%2Freports", &Method::POST),
        Decision::Deny
    );
    // And the case-folded reading of the decoded one.
    assert_eq!(decide("/public/..%2Fops/x", &Method::GET), Decision::Deny);
}

#[test]
fn most_restrictive_reading_wins_across_options() {
    let r = fixture_r(Allow::Authenticated);
    let decide = |path: &str| r.decide(&parse(path, &PRESERVE_ALL), &Method::GET);
    assert_eq!(decide("/public/..%252F..;x/admin"), session(&[&["admin"]]));
    assert_eq!(
        decide("/public/%25EF%25BC%258E%25EF%25BC%258E/admin"),
        session(&[&["admin"]])
    );
    assert_eq!(decide("/public/x%2F;y%2520"), Decision::Anonymous);
}

#[test]
fn reparsing_the_forwarded_path_gives_the_same_value() {
    for input in [
        "/public/..%2fadmin/x",
        "/a%25%32%65/..;x/%3b",
        "/public/%EF%BC%8E%EF%BC%8E/admin",
        "/admin.%20/x",
        "/%2561%5c/",
    ] {
        let once = parse(input, &PRESERVE_ALL);
        assert_eq!(parse(once.as_str(), &PRESERVE_ALL), once, "{input}");
    }
}

#[test]
fn covering_patterns() {
    let prefix = |p: &str| PathPattern::Prefix(p.into());
    let exact = |p: &str| PathPattern::Exact(p.into());
    assert!(prefix("/api/").covers(&prefix("/api/v1/")));
    assert!(prefix("/api/").covers(&prefix("/api/")));
    assert!(prefix("/api/").covers(&exact("/api/x")));
    assert!(prefix("/api/").covers(&exact("/api")));
    assert!(prefix("/").covers(&prefix("/x/")));
    assert!(prefix("/").covers(&exact("/x")));
    assert!(exact("/health").covers(&exact("/health")));
    assert!(!exact("/health").covers(&exact("/health2")));
    assert!(!exact("/api").covers(&prefix("/api/")));
    assert!(!prefix("/api/").covers(&prefix("/")));
    assert!(!prefix("/api/").covers(&prefix("/apis/")));
    assert!(!prefix("/api/").covers(&exact("/apis")));
    assert!(!prefix("/Api/").covers(&prefix("/api/x/")));
    // A prefix written without its slash covers whole segments only.
    assert!(prefix("/api").covers(&prefix("/api/v1/")));
    assert!(!prefix("/api").covers(&exact("/apis")));
}

#[test]
fn shadowed_rules_name_the_earliest_cover() {
    let r = RuleSet::new(
        vec![
            rule("/public/", Allow::Anonymous, &[]),
            rule("/api/", Allow::Authenticated, &[]),
            rule("/health", Allow::Anonymous, &[]),
            rule("/api/admin/", Allow::Authenticated, &["admin"]),
            rule("/public", Allow::Anonymous, &[]),
            rule("/health", Allow::Deny, &[]),
            rule("/api", Allow::Anonymous, &[]),
            rule("/healthz", Allow::Anonymous, &[]),
        ],
        Allow::Deny,
    );
    assert_eq!(r.shadowed(), [(3, 1), (4, 0), (5, 2), (6, 1)]);
    // A method-restricted rule still catches every method first.
    let r = RuleSet::new(
        vec![
            only(&[Method::GET], rule("/reports/", Allow::Anonymous, &[])),
            rule("/reports/x", Allow::Authenticated, &[]),
        ],
        Allow::Deny,
    );
    assert_eq!(r.shadowed(), [(1, 0)]);
    assert_eq!(fixture_r(Allow::Deny).shadowed(), []);
}

/// Paths built from the characters that make escapes, dots, separators and parameters, or from
/// whole pieces that name rules and confuse parsers; both kinds are needed, one finds spelling
/// edge cases, the other decisions that differ.
fn tricky_path() -> impl Strategy<Value = String> {
    let chars: Vec<char> = "/.%2efF5c;aA3B\\ ".chars().collect();
    let by_char = proptest::collection::vec(proptest::sample::select(chars), 0..24)
        .prop_map(|chars| std::iter::once('/').chain(chars).collect::<String>());
    let pieces = vec![
        "/",
        "admin",
        "Admin",
        "public",
        "PUBLIC",
        "reports",
        "session",
        "..",
        ".",
        "%2e%2E",
        "%2F",
        "%2f",
        "%5C",
        "\\",
        "%25",
        "%252e",
        "%252F",
        ";",
        ";x=1",
        "%3B",
        "%20",
        "%2520",
        "%EF%BC%8E",
        "%EF%BD%81",
        "%C4%B1",
        "%E2%80%8B",
        "x",
        "%41",
        "",
    ];
    let by_piece = proptest::collection::vec(proptest::sample::select(pieces), 0..10)
        .prop_map(|pieces| format!("/{}", pieces.concat()));
    prop_oneof![by_char, by_piece]
}

fn any_options() -> impl Strategy<Value = PathOptions> {
    let policy = || prop_oneof![Just(PathPolicy::Reject), Just(PathPolicy::Preserve)];
    (policy(), policy(), policy()).prop_map(|(encoded_slash, encoded_percent, semicolon)| {
        PathOptions {
            encoded_slash,
            encoded_percent,
            semicolon,
        }
    })
}

fn any_method() -> impl Strategy<Value = Method> {
    proptest::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::DELETE,
    ])
}

/// Fixture R plus rules of every kind, so decisions differ between readings.
fn rich_rules() -> RuleSet {
    let mut rules = fixture_r(Allow::Authenticated).rules().to_vec();
    rules.push(rule("/reports/x", Allow::Anonymous, &[]));
    rules.push(rule("/x", Allow::Optional, &[]));
    rules.push(rule("/Admin", Allow::Deny, &[]));
    RuleSet::new(rules, Allow::Authenticated)
}

/// How strict a decision is, for "at least as strict" comparisons.
fn strictness(decision: &Decision) -> (u8, usize) {
    match decision {
        Decision::Anonymous => (0, 0),
        Decision::Optional => (1, 0),
        Decision::Session { role_sets } => (2, role_sets.len()),
        Decision::Deny => (3, 0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn canonicalization_is_idempotent(path in tricky_path(), options in any_options()) {
        if let Ok(once) = CanonicalPath::parse(&path, &options) {
            let twice = CanonicalPath::parse(once.as_str(), &options);
            prop_assert_eq!(twice.as_ref(), Ok(&once));
        }
    }

    #[test]
    fn decision_on_a_path_equals_decision_on_its_canonical_form(
        path in tricky_path(),
        options in any_options(),
        method in any_method(),
    ) {
        let r = rich_rules();
        if let Ok(once) = CanonicalPath::parse(&path, &options) {
            let twice = CanonicalPath::parse(once.as_str(), &options).unwrap();
            prop_assert_eq!(r.decide(&once, &method), r.decide(&twice, &method));
        }
    }

    #[test]
    fn readings_of_a_reading_are_readings_of_the_path(path in tricky_path()) {
        // So judging the path is at least as strict as judging any of its readings alone.
        if let Ok(parsed) = CanonicalPath::parse(&path, &PRESERVE_ALL) {
            let all: Vec<&str> = parsed.readings().collect();
            for reading in &all {
                let Ok(again) = CanonicalPath::parse(reading, &PRESERVE_ALL) else {
                    continue;
                };
                prop_assert_eq!(again.as_str(), *reading);
                for inner in again.readings() {
                    prop_assert!(all.contains(&inner), "{} -> {} -> {}", path, reading, inner);
                }
            }
        }
    }

    #[test]
    fn a_path_is_judged_at_least_as_strictly_as_each_reading(
        path in tricky_path(),
        method in any_method(),
    ) {
        let r = rich_rules();
        if let Ok(parsed) = CanonicalPath::parse(&path, &PRESERVE_ALL) {
            let whole = strictness(&r.decide(&parsed, &method));
            for reading in parsed.readings() {
                if let Ok(alone) = CanonicalPath::parse(reading, &PRESERVE_ALL) {
                    let alone = strictness(&r.decide(&alone, &method));
                    prop_assert!(whole >= alone, "{} vs {}", path, reading);
                }
            }
        }
    }
}
