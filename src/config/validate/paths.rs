//! `paths` (which ambiguous spellings an API accepts) and the warnings for rules no path can
//! reach.

use super::invalid;
use crate::access::{PathOptions, PathPattern, PathPolicy, RuleSet};
use crate::config::file::RawPaths;
use crate::config::ConfigError;

/// The `paths` options.
pub(super) fn options(raw: &RawPaths) -> Result<PathOptions, ConfigError> {
    Ok(PathOptions {
        encoded_slash: policy("paths.encoded_slash", &raw.encoded_slash)?,
        encoded_percent: policy("paths.encoded_percent", &raw.encoded_percent)?,
        semicolon: policy("paths.semicolon", &raw.semicolon)?,
    })
}

/// One warning per rule that an earlier rule shadows: first match wins, so it never applies.
pub(super) fn warn_unreachable_rules(rules: &RuleSet, warnings: &mut Vec<String>) {
    for (later, earlier) in rules.shadowed() {
        let rule = &rules.rules()[earlier];
        let path = match &rule.path {
            PathPattern::Prefix(p) | PathPattern::Exact(p) => p,
        };
        // Methods never make a request fall through: the ones a rule leaves out are denied there.
        let methods = match &rule.methods {
            Some(_) => ", for every method (those it does not list are denied there)",
            None => "",
        };
        warnings.push(format!(
            "access.rules[{later}] is never reached: access.rules[{earlier}] (`{path}`) matches \
             all its paths first{methods}"
        ));
    }
}

fn policy(key: &str, text: &str) -> Result<PathPolicy, ConfigError> {
    match text {
        "reject" => Ok(PathPolicy::Reject),
        "preserve" => Ok(PathPolicy::Preserve),
        other => Err(invalid(
            key,
            format!("must be reject or preserve, not `{other}`"),
        )),
    }
}
