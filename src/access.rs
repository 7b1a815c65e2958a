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
    /// `"/x"`: exactly `/x`.
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
    let _ = path;
    todo!()
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
    pub fn decide(&self, canonical_path: &str, method: &Method) -> Decision {
        let _ = (canonical_path, method);
        todo!()
    }
}

impl Decision {
    /// Whether a session with `roles` meets this decision (always false for `Deny`).
    pub fn permits(&self, roles: &[String]) -> bool {
        let _ = roles;
        todo!()
    }
}
