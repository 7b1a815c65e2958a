//! Path canonicalization and access rules: pure functions, no I/O.
//!
//! Every request path is turned into one canonical string before anything else looks at it; the
//! rules decide on that string and the upstream receives that same string, so the gate and the
//! backend can never disagree about which resource a request names.
//!
//! Some APIs need a spelling the default refuses (`%2F` inside a segment, `%25`, `;` matrix
//! parameters); `paths` options keep those as sent, and then the rules are decided on every way
//! a backend might read the path ([`readings`]), so opting in never opens a bypass.

use http::Method;

mod readings;

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
    /// So many readings that judging them all would cost more than any real path needs.
    #[error("path has too many readings")]
    TooManyReadings,
}

/// What to do with one kind of ambiguous spelling (`paths.*` in the config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PathPolicy {
    /// Refuse the request with 400.
    #[default]
    Reject,
    /// Forward the escape as sent (hex upper-cased) and decide the rules on every reading.
    Preserve,
}

/// The `paths` options: which ambiguous spellings an API accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathOptions {
    /// `%2F`, and `\` raw or as `%5C` (a raw `\` is forwarded as `%5C`).
    pub encoded_slash: PathPolicy,
    /// `%25` followed by two hex digits, as sent or after the single decode.
    pub encoded_percent: PathPolicy,
    /// `;`, raw or as `%3B`.
    pub semicolon: PathPolicy,
}

/// A request path made canonical, with every other way a backend might read it.
///
/// Built once per request by the router; the upstream receives [`CanonicalPath::as_str`] and
/// [`RuleSet::decide`] judges every one of [`CanonicalPath::readings`]. The readings are derived
/// from the forwarded string alone, so parsing that string again yields the same value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalPath {
    path: String,
    other_readings: Vec<String>,
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

/// Canonicalize the path part of an origin-form request target (DESIGN invariant 2) with the
/// default options: every ambiguous spelling is an error.
pub fn canonicalize(path: &str) -> Result<String, PathError> {
    canonicalize_with(path, &PathOptions::default())
}

/// Canonicalize the path part of an origin-form request target.
///
/// Decodes percent-escapes of unreserved characters once, upper-cases the hex of the escapes it
/// keeps, resolves `.` and `..` segments (never above the root) and collapses empty segments,
/// keeping a trailing slash. Ambiguous input is an error unless `options` preserve it.
pub fn canonicalize_with(path: &str, options: &PathOptions) -> Result<String, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    let mut decoded = String::with_capacity(path.len());
    // The bytes the path denotes (every escape decoded), only for `check_denoted`.
    let mut denoted = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte != b'%' {
            match byte {
                b';' => options.semicolon.check(PathError::Semicolon)?,
                // Kept, but as `%5C`: the one spelling the readings know as data or separator.
                b'\\' => options.encoded_slash.check(PathError::AmbiguousSeparator)?,
                _ => check_raw(byte)?,
            }
            if byte == b'\\' {
                push_escape(&mut decoded, byte);
            } else {
                decoded.push(char::from(byte));
            }
            denoted.push(byte);
            i += 1;
            continue;
        }
        let value = escape_at(bytes, i).ok_or(PathError::InvalidEscape)?;
        match value {
            b'/' | b'\\' => options.encoded_slash.check(PathError::AmbiguousSeparator)?,
            b';' => options.semicolon.check(PathError::Semicolon)?,
            v if is_control(v) => return Err(PathError::ControlByte),
            b'%' if escape_at(bytes, i + 2).is_some() => {
                options.encoded_percent.check(PathError::DoubleEncoding)?
            }
            _ => {}
        }
        if is_unreserved(value) {
            decoded.push(char::from(value));
        } else {
            push_escape(&mut decoded, value);
        }
        denoted.push(value);
        i += 3;
    }
    check_denoted(&denoted)?;
    // The single decode may have built a new escape (`%25%32%65` -> `%252e`) that the next hop
    // would decode again.
    if decoded
        .match_indices("%25")
        .any(|(at, _)| escape_at(decoded.as_bytes(), at + 2).is_some())
    {
        options.encoded_percent.check(PathError::DoubleEncoding)?;
    }
    Ok(resolve_segments(&decoded, true))
}

impl PathPolicy {
    /// `Err(refusal)` when this policy rejects the spelling.
    fn check(self, refusal: PathError) -> Result<(), PathError> {
        match self {
            PathPolicy::Reject => Err(refusal),
            PathPolicy::Preserve => Ok(()),
        }
    }
}

impl CanonicalPath {
    /// Canonicalize the path of a request target under `options` and work out its readings.
    pub fn parse(target_path: &str, options: &PathOptions) -> Result<Self, PathError> {
        let path = canonicalize_with(target_path, options)?;
        let other_readings = readings::other_readings(&path)?;
        Ok(Self {
            path,
            other_readings,
        })
    }

    /// The path the upstream receives.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// Every reading the rules judge: the forwarded path first, then how a backend might read
    /// it (escapes as separators, decoded twice, without `;` parameters, trimmed as Windows
    /// does, Unicode-normalized).
    pub fn readings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str()).chain(self.other_readings.iter().map(String::as_str))
    }
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

    /// Whether `self` matches every path `other` matches, byte for byte (and so also
    /// case-folded): a rule with `other` after a rule with `self` is never reached.
    pub fn covers(&self, other: &PathPattern) -> bool {
        match (self, other) {
            (_, PathPattern::Exact(exact)) => {
                self.matches(exact, Case::Exact) && self.matches(&format!("{exact}/"), Case::Exact)
            }
            (PathPattern::Exact(_), PathPattern::Prefix(_)) => false,
            (PathPattern::Prefix(outer), PathPattern::Prefix(inner)) => {
                let dir = |p: &str| match p.ends_with('/') {
                    true => p.to_owned(),
                    false => format!("{p}/"),
                };
                let bare = inner.trim_end_matches('/');
                dir(inner).starts_with(&dir(outer))
                    && (bare.is_empty() || self.matches(bare, Case::Exact))
            }
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

    /// Decide what a request for `path` with `method` needs.
    ///
    /// Every plausible reading is judged (each of the path's readings, as-is and ASCII
    /// case-folded; with and without a trailing slash; HEAD also as GET) and the most restrictive
    /// answer wins, so protective rules match broadly and permissive ones narrowly (DESIGN
    /// invariant 3).
    pub fn decide(&self, path: &CanonicalPath, method: &Method) -> Decision {
        let mut methods = vec![method];
        if method == Method::HEAD {
            methods.push(&Method::GET);
        }
        let paths: Vec<_> = path.readings().flat_map(slash_readings).collect();
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

    /// Pairs `(later, earlier)` of rule indexes where the earlier rule covers every path of the
    /// later one, which is therefore never reached (the earliest such rule is named). An earlier
    /// rule with `methods` counts too: the methods it leaves out are denied, not passed on.
    pub fn shadowed(&self) -> Vec<(usize, usize)> {
        let rules = &self.rules;
        (0..rules.len())
            .filter_map(|later| {
                let earlier = rules[..later]
                    .iter()
                    .position(|rule| rule.path.covers(&rules[later].path))?;
                Some((later, earlier))
            })
            .collect()
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

/// RFC 3986 unreserved: letters, digits, `-`, `.`, `_`, `~`.
pub(crate) fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Appends `%XX` (upper-case hex) for `byte`.
pub(crate) fn push_escape(out: &mut String, byte: u8) {
    out.push('%');
    out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
    out.push(char::from(HEX_UPPER[usize::from(byte & 0xf)]));
}

fn is_control(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

/// The bytes a path denotes once every escape is decoded must be UTF-8 (so no overlong or
/// truncated sequences a lax decoder might read as `.` or `/`) without control characters, C1
/// included: a backend that decodes fully must not be handed a name that means nothing to it.
fn check_denoted(denoted: &[u8]) -> Result<(), PathError> {
    let text = std::str::from_utf8(denoted).map_err(|_| PathError::InvalidCharacter)?;
    match text.chars().any(char::is_control) {
        true => Err(PathError::ControlByte),
        false => Ok(()),
    }
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
///
/// With `empty_first`, empty segments are dropped before `..` is applied (`/a//..` is `/`), as
/// the canonical path does; without, `..` may remove an empty segment (`/a//..` is `/a/`), as
/// RFC 3986 section 5.2.4 does, and the empty segments left are dropped afterwards.
fn resolve_segments(path: &str, empty_first: bool) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" if empty_first => {}
            "." => {}
            ".." => {
                kept.pop();
            }
            other => kept.push(other),
        }
    }
    kept.retain(|segment| !segment.is_empty());
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
mod tests;
