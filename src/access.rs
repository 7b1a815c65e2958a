//! Path canonicalization and access rules: pure functions, no I/O.
//!
//! Every request path is turned into one canonical string before anything else looks at it; the
//! rules decide on that string and the upstream receives that same string, so the gate and the
//! backend can never disagree about which resource a request names.

use http::Method;

/// Why a request target was refused before routing (always a 400 to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The target is not in origin form (`/path`): `*`, absolute URLs, or no leading slash.
    #[error("request target is not in origin form")]
    NotOriginForm,
    /// A `%` not followed by two hex digits.
    #[error("invalid percent escape")]
    InvalidEscape,
    /// A NUL or other control byte, raw or escaped.
    #[error("control byte in path")]
    ControlByte,
    /// `/` or `\` hidden in an escape, or a raw `\`.
    #[error("encoded or ambiguous path separator")]
    AmbiguousSeparator,
    /// `%25` followed by two hex digits: a double-encoding attempt.
    #[error("double-encoded percent escape")]
    DoubleEncoding,
    /// A `;` (raw or escaped): path parameters that some servers strip.
    #[error("semicolon in path")]
    Semicolon,
    /// A byte that has no business in a path (`#`, `"`, space, non-ASCII, ...), or escapes
    /// that do not decode to UTF-8.
    #[error("invalid character in path")]
    InvalidCharacter,
}

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Allow {
    /// Forwarded without reading any session; identity headers are never sent.
    Anonymous,
    /// Forwarded with identity when a valid session exists, without otherwise.
    Optional,
    /// Needs a valid session (and one of the rule's roles, when it lists any).
    Authenticated,
    /// Never forwarded.
    Deny,
}

/// Which paths a rule covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// `"/x/"`: `/x/` and everything under it (and the bare `/x`, which names the same thing to
    /// most servers).
    Prefix(String),
    /// `"/x"`: exactly `/x` (and `/x/`, which names the same thing to most servers).
    Exact(String),
}

/// One access rule, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The paths this rule covers (canonical form).
    pub path: PathPattern,
    /// When set, the only methods allowed on these paths; others are denied, never passed on.
    pub methods: Option<Vec<Method>>,
    /// When non-empty, the session must carry at least one of these roles.
    pub roles: Vec<String>,
    /// What the rule allows.
    pub allow: Allow,
}

/// The ordered rule list plus the default for paths no rule covers. First match wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    rules: Vec<Rule>,
    default: Allow,
}

/// The combined answer for one request: what it needs before it may be forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward without reading the session.
    Anonymous,
    /// Forward; inject identity if a valid session exists.
    Optional,
    /// Needs a valid session whose roles meet every listed role set (each set: any one of
    /// its roles). An empty list means any valid session.
    Session {
        /// Every set must be met by at least one of the session's roles.
        role_sets: Vec<Vec<String>>,
    },
    /// Never forwarded: 401 without a session, 403 with one.
    Deny,
}

/// Canonicalize the path part of an origin-form request target (DESIGN invariant 2).
///
/// Decodes percent-escapes of unreserved characters once, upper-cases the hex of the escapes it
/// keeps, resolves `.` and `..` segments (never above the root) and collapses empty segments,
/// keeping a trailing slash. Ambiguous input is an error.
pub fn canonicalize(path: &str) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    let mut decoded = String::with_capacity(path.len());
    // The bytes the path denotes (every escape decoded), only to check that they are UTF-8: a
    // backend that decodes fully must not be handed a name that means nothing to it.
    let mut denoted = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte != b'%' {
            check_raw(byte)?;
            decoded.push(char::from(byte));
            denoted.push(byte);
            i += 1;
            continue;
        }
        let value = escape_at(bytes, i).ok_or(PathError::InvalidEscape)?;
        match value {
            b'/' | b'\\' => return Err(PathError::AmbiguousSeparator),
            b';' => return Err(PathError::Semicolon),
            v if is_control(v) => return Err(PathError::ControlByte),
            b'%' if escape_at(bytes, i + 2).is_some() => return Err(PathError::DoubleEncoding),
            v if is_unreserved(v) => decoded.push(char::from(v)),
            v => {
                decoded.push('%');
                decoded.push(char::from(HEX_UPPER[usize::from(v >> 4)]));
                decoded.push(char::from(HEX_UPPER[usize::from(v & 0xf)]));
            }
        }
        denoted.push(value);
        i += 3;
    }
    if std::str::from_utf8(&denoted).is_err() {
        return Err(PathError::InvalidCharacter);
    }
    // The single decode may have built a new escape (`%25%32%65` -> `%252e`) that the next hop
    // would decode again.
    if decoded
        .match_indices("%25")
        .any(|(at, _)| escape_at(decoded.as_bytes(), at + 2).is_some())
    {
        return Err(PathError::DoubleEncoding);
    }
    Ok(resolve_segments(&decoded))
}

impl PathPattern {
    fn matches(&self, path: &str, case: Case) -> bool {
        let same = |a: &[u8], b: &str| match case {
            Case::Exact => a == b.as_bytes(),
            Case::Folded => a.eq_ignore_ascii_case(b.as_bytes()),
        };
        let path = path.as_bytes();
        let starts_with = |prefix: &str| {
            path.get(..prefix.len())
                .is_some_and(|head| same(head, prefix))
        };
        match self {
            // `/x` and `/x/` name the same resource to most servers, so an exact rule covers
            // both; otherwise the trailing-slash reading of every request would fall to the
            // default and no exact rule could ever be more permissive than it.
            PathPattern::Exact(exact) => {
                same(path, exact)
                    || (path.last() == Some(&b'/') && same(&path[..path.len() - 1], exact))
            }
            // A prefix written without its trailing slash still covers only whole segments.
            PathPattern::Prefix(prefix) => match prefix.strip_suffix('/') {
                Some(bare) => starts_with(prefix) || (!bare.is_empty() && same(path, bare)),
                None => {
                    same(path, prefix)
                        || (starts_with(prefix) && path.get(prefix.len()) == Some(&b'/'))
                }
            },
        }
    }
}

impl RuleSet {
    /// A rule set with `rules` tried in order and `default` for paths none covers.
    pub fn new(rules: Vec<Rule>, default: Allow) -> Self {
        Self { rules, default }
    }

    /// The configured rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What happens to paths no rule covers.
    pub fn default_allow(&self) -> Allow {
        self.default
    }

    /// Decide what a request for `canonical_path` with `method` needs.
    ///
    /// Every plausible reading is judged (as-is and ASCII case-folded; with and without a
    /// trailing slash; HEAD also as GET) and the most restrictive answer wins, so protective
    /// rules match broadly and permissive ones narrowly (DESIGN invariant 3).
    pub fn decide(&self, canonical_path: &str, method: &Method) -> Decision {
        let mut methods = vec![method];
        if method == Method::HEAD {
            methods.push(&Method::GET);
        }
        let paths = slash_readings(canonical_path);
        let mut strictest = Allow::Anonymous;
        let mut role_sets: Vec<Vec<String>> = Vec::new();
        for case in [Case::Exact, Case::Folded] {
            for path in &paths {
                for method in &methods {
                    let (allow, roles) = self.decide_reading(path, method, case);
                    strictest = strictest.max(allow);
                    if allow == Allow::Authenticated
                        && !roles.is_empty()
                        && !role_sets.iter().any(|set| set == roles)
                    {
                        role_sets.push(roles.to_vec());
                    }
                }
            }
        }
        match strictest {
            Allow::Anonymous => Decision::Anonymous,
            Allow::Optional => Decision::Optional,
            Allow::Authenticated => Decision::Session { role_sets },
            Allow::Deny => Decision::Deny,
        }
    }

    /// One reading: the first matching rule, or the default. A rule that restricts methods
    /// denies the others itself; they never fall through to later rules.
    fn decide_reading(&self, path: &str, method: &Method, case: Case) -> (Allow, &[String]) {
        match self.rules.iter().find(|rule| rule.path.matches(path, case)) {
            None => (self.default, &[]),
            Some(rule)
                if rule
                    .methods
                    .as_ref()
                    .is_some_and(|allowed| !allowed.contains(method)) =>
            {
                (Allow::Deny, &[])
            }
            Some(rule) => (rule.allow, &rule.roles),
        }
    }
}

impl Decision {
    /// Whether a session with `roles` meets this decision (always false for `Deny`).
    pub fn permits(&self, roles: &[String]) -> bool {
        match self {
            Decision::Deny => false,
            Decision::Anonymous | Decision::Optional => true,
            Decision::Session { role_sets } => role_sets
                .iter()
                .all(|set| set.iter().any(|role| roles.contains(role))),
        }
    }
}

/// The path with and without its trailing slash (the root only as itself).
fn slash_readings(path: &str) -> Vec<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    if path == "/" {
        vec![Cow::Borrowed(path)]
    } else if let Some(bare) = path.strip_suffix('/') {
        vec![Cow::Borrowed(path), Cow::Borrowed(bare)]
    } else {
        vec![Cow::Borrowed(path), Cow::Owned(format!("{path}/"))]
    }
}

/// How a reading compares a path with a rule's pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// Byte for byte.
    Exact,
    /// ASCII case-insensitively: the reading of a backend that lowercases paths (pattern and
    /// path both lowercased, so a pattern written with capitals still protects).
    Folded,
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Sub-delimiters (minus `;`) and the other characters RFC 3986 allows raw in a path.
const RAW_PATH_EXTRA: &[u8] = b"!$&'()*+,=:@/";

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

fn check_raw(byte: u8) -> Result<(), PathError> {
    match byte {
        b if is_unreserved(b) || RAW_PATH_EXTRA.contains(&b) => Ok(()),
        b';' => Err(PathError::Semicolon),
        b'\\' => Err(PathError::AmbiguousSeparator),
        b if is_control(b) => Err(PathError::ControlByte),
        _ => Err(PathError::InvalidCharacter),
    }
}

/// The byte a `%` at `at` denotes, when two hex digits follow it.
fn escape_at(bytes: &[u8], at: usize) -> Option<u8> {
    let digit = |i: usize| char::from(*bytes.get(i)?).to_digit(16);
    let value = digit(at + 1)? << 4 | digit(at + 2)?;
    u8::try_from(value).ok()
}

/// Resolves `.` and `..` (never above the root) and drops empty segments; a path whose last
/// segment was empty, `.` or `..` names a directory and keeps its trailing slash.
fn resolve_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
                "/admin/%00users /admin/%7f /admin/\u{1}users /a\u{7f}",
            ),
            (
                InvalidCharacter,
                "/admin/%ff%fe /admin/%c3a%a9 /admin/users#x /admin/users?x /admin/caf\u{e9} /a[b]",
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
        assert_eq!(r.decide("/public/a", &get), Decision::Anonymous);
        assert_eq!(r.decide("/public/", &get), Decision::Anonymous);
        assert_eq!(r.decide("/public", &get), Decision::Anonymous);
        // As-is `/Public/a` matches no rule (default authenticated); the folded reading is
        // public. The most restrictive reading wins.
        assert_eq!(r.decide("/Public/a", &get), session(&[]));
        for admin in [
            "/admin/users",
            "/ADMIN/users",
            "/admin",
            "/admin/",
            "/Admin",
        ] {
            assert_eq!(r.decide(admin, &get), session(&[&["admin"]]), "{admin}");
        }
        assert_eq!(r.decide("/administrator", &get), session(&[]));
        assert_eq!(r.decide("/api/x", &get), session(&[]));
        assert_eq!(r.decide("/", &get), session(&[]));
    }

    #[test]
    fn method_restricted_rule_denies_other_methods() {
        let r = fixture_r(Allow::Authenticated);
        assert_eq!(r.decide("/reports/q1", &Method::GET), session(&[]));
        assert_eq!(r.decide("/reports/q1", &Method::POST), Decision::Deny);
        assert_eq!(r.decide("/Reports/q1", &Method::DELETE), Decision::Deny);
        // HEAD is read as HEAD and as GET; the HEAD reading is not in the list, so a rule that
        // lists GET but not HEAD denies HEAD (list HEAD explicitly to allow it).
        assert_eq!(r.decide("/reports/q1", &Method::HEAD), Decision::Deny);
        let both = only(
            &[Method::GET, Method::HEAD],
            rule("/reports/", Allow::Authenticated, &[]),
        );
        let r = RuleSet::new(vec![both], Allow::Deny);
        assert_eq!(r.decide("/reports/q1", &Method::HEAD), session(&[]));
        // And the GET reading of HEAD counts too: a HEAD-only rule denies HEAD.
        let head_only = only(&[Method::HEAD], rule("/x/", Allow::Anonymous, &[]));
        let r = RuleSet::new(vec![head_only], Allow::Anonymous);
        assert_eq!(r.decide("/x/a", &Method::HEAD), Decision::Deny);
    }

    #[test]
    fn default_deny_covers_unmatched_paths() {
        let r = fixture_r(Allow::Deny);
        assert_eq!(r.decide("/unknown-area/x", &Method::GET), Decision::Deny);
        assert_eq!(r.decide("/public/a", &Method::GET), Decision::Anonymous);
        // The folded reading of `/PUBLIC/a` is public, the as-is one falls to the default.
        assert_eq!(r.decide("/PUBLIC/a", &Method::GET), Decision::Deny);
    }

    #[test]
    fn exact_pattern_and_trailing_slash_readings() {
        let rules = vec![
            rule("/health", Allow::Anonymous, &[]),
            rule("/me", Allow::Optional, &[]),
            rule("/ops", Allow::Deny, &[]),
        ];
        let r = RuleSet::new(rules, Allow::Anonymous);
        assert_eq!(r.decide("/health", &Method::GET), Decision::Anonymous);
        assert_eq!(r.decide("/me", &Method::GET), Decision::Optional);
        assert_eq!(r.decide("/ME/", &Method::GET), Decision::Optional);
        assert_eq!(r.decide("/ops/", &Method::GET), Decision::Deny);
        assert_eq!(r.decide("/Ops", &Method::GET), Decision::Deny);
    }

    #[test]
    fn exact_permissive_rule_works_under_default_deny() {
        let r = RuleSet::new(vec![rule("/health", Allow::Anonymous, &[])], Allow::Deny);
        assert_eq!(r.decide("/health", &Method::GET), Decision::Anonymous);
        assert_eq!(r.decide("/health/", &Method::GET), Decision::Anonymous);
        assert_eq!(r.decide("/health/x", &Method::GET), Decision::Deny);
    }

    #[test]
    fn capitalised_protective_pattern_still_covers_lowercase_requests() {
        let r = RuleSet::new(
            vec![rule("/Admin/", Allow::Authenticated, &["admin"])],
            Allow::Anonymous,
        );
        assert_eq!(
            r.decide("/admin/users", &Method::GET),
            session(&[&["admin"]])
        );
    }

    #[test]
    fn role_sets_from_every_authenticated_reading_are_combined() {
        let rules = vec![
            rule("/Team/", Allow::Authenticated, &["team"]),
            rule("/team/", Allow::Authenticated, &["admin", "ops"]),
        ];
        let decision = RuleSet::new(rules, Allow::Deny).decide("/team/x", &Method::GET);
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
                let again = r.decide(twice.as_deref().unwrap(), &method);
                assert_eq!(r.decide(&once, &method), again, "{input}");
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
}
