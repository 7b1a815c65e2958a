//! Secret values and `${VAR}` / `${file:/path}` substitution.
//!
//! Secrets reach the configuration through the environment or through files (a Kubernetes
//! Secret mounted as a volume), so configuration values may name them instead of holding them.
//! [`expand`] works on one string at a time; the configuration loader applies it to every scalar
//! value and reports failures with the YAML key. Values that hold secrets are kept in [`Secret`],
//! whose `Debug` never shows them.
use std::fmt;
use std::path::{Path, PathBuf};

/// A value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

/// Why a `${...}` reference could not be expanded. Never carries the expanded value.
#[derive(Debug, thiserror::Error)]
pub enum ExpandError {
    /// `${VAR}` names a variable that is not set.
    #[error("environment variable `{0}` is not set")]
    UnsetVariable(String),
    /// `${...}` holds something that is neither a variable name nor `file:<path>`.
    #[error("`${{{0}}}` is not a valid reference (expected `${{NAME}}` or `${{file:/path}}`)")]
    InvalidReference(String),
    /// A `${` without its closing `}`.
    #[error("unterminated `${{` (write `$${{` for a literal `${{`)")]
    Unterminated,
    /// `${file:...}` names a file that cannot be read as UTF-8 text.
    #[error("cannot read `{}`: {source}", path.display())]
    UnreadableFile {
        /// The file, resolved against the configuration directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl<T> Secret<T> {
    /// Wrap a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }
    /// The value itself; call only where it is used, never to log.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Expand every `${VAR}` (from `env`) and `${file:/path}` (file contents, one trailing newline
/// removed; relative paths resolved against `base_dir`) in `input`.
///
/// `$${` is a literal `${`; any other `$` is kept as is. Expanded text is never scanned again, so
/// a secret containing `${` stays exactly what it is.
pub fn expand(
    input: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(ExpandError::Unterminated)?;
            out.push_str(&resolve(&after[..end], base_dir, env)?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The replacement for the inside of one `${...}`.
fn resolve(
    reference: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    if let Some(file) = reference.strip_prefix("file:") {
        if file.is_empty() {
            return Err(ExpandError::InvalidReference(reference.to_owned()));
        }
        let path = base_dir.join(file);
        let mut text = std::fs::read_to_string(&path)
            .map_err(|source| ExpandError::UnreadableFile { path, source })?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        return Ok(text);
    }
    if !is_variable_name(reference) {
        return Err(ExpandError::InvalidReference(reference.to_owned()));
    }
    env(reference).ok_or_else(|| ExpandError::UnsetVariable(reference.to_owned()))
}

/// `[A-Za-z_][A-Za-z0-9_]*`, the portable shell variable name.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "NESTED" => Some("${A}".into()),
            _ => None,
        }
    }

    fn run(input: &str) -> Result<String, ExpandError> {
        expand(input, Path::new(""), &env)
    }

    #[test]
    fn expands_several_references_anywhere() {
        assert_eq!(run("x${A}y${A}").unwrap(), "xalphayalpha");
        assert_eq!(run("no refs $ here $x").unwrap(), "no refs $ here $x");
    }

    #[test]
    fn double_dollar_is_a_literal_and_results_are_not_rescanned() {
        assert_eq!(run("$${A}").unwrap(), "${A}");
        assert_eq!(run("$${A} ${A}").unwrap(), "${A} alpha");
        assert_eq!(run("${NESTED}").unwrap(), "${A}");
    }

    #[test]
    fn bad_references_are_errors() {
        assert!(matches!(run("${UNSET}"), Err(ExpandError::UnsetVariable(n)) if n == "UNSET"));
        assert!(matches!(run("${A"), Err(ExpandError::Unterminated)));
        assert!(matches!(run("${}"), Err(ExpandError::InvalidReference(_))));
        assert!(matches!(
            run("${1X}"),
            Err(ExpandError::InvalidReference(_))
        ));
        assert!(matches!(
            run("${file:}"),
            Err(ExpandError::InvalidReference(_))
        ));
    }

    #[test]
    fn file_reference_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s"), "line\n\n").unwrap();
        std::fs::write(dir.path().join("crlf"), "v\r\n").unwrap();
        let got = expand("<${file:s}>", dir.path(), &env).unwrap();
        assert_eq!(got, "<line\n>");
        assert_eq!(expand("${file:crlf}", dir.path(), &env).unwrap(), "v");
        let err = expand("${file:missing}", dir.path(), &env).unwrap_err();
        assert!(matches!(err, ExpandError::UnreadableFile { .. }));
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "[redacted]");
    }
}
