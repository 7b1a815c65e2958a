//! The other readings of a canonical path: the names a backend behind Portcullis might give to
//! the path it receives, so the rules can judge every one of them (DESIGN invariants 2 and 3).
//!
//! A reading is written like a canonical path (ASCII, upper-case escapes, unreserved characters
//! decoded, dot and empty segments resolved), so rule patterns compare with it directly. Starting
//! from the forwarded path, every step below is applied to every reading found so far until
//! nothing new appears, so every combination and order of them is covered:
//! - `%2F` read as a separator, and `%5C` read as one (a backend that decodes before it routes);
//! - `%25XX` decoded: `%252e` reads as `%2e`, which is `.` (decoded once, then twice);
//! - each segment's `;` parameters removed, at raw `;` only (Tomcat) or also at `%3B`;
//! - trailing spaces, or trailing dots and spaces, trimmed from each segment (Windows, IIS);
//! - escaped UTF-8 decoded, NFKC-normalized and lower-cased (full-width `．．` is then `..`), with
//!   the look-alikes of `/` and `\` that Windows "best fit" code-page conversion maps to them
//!   (`∕`, `⁄`, `⧸`; `¥`, `₩`, `∖`) read as those separators;
//! - escaped UTF-8 decoded with its accents removed (`admiń` is `admin` to an accent-insensitive
//!   comparison);
//! - each segment cut at its first `:` (NTFS streams: `admin::$INDEX_ALLOCATION` is `admin`);
//! - the last segment cut at its first `.` (format suffixes: `/admin.json` is `/admin` to Spring's
//!   suffix matching or a Rails `(.:format)` route).
//!
//! After each step the dot segments are resolved twice: dropping empty segments first, as the
//! canonical path does (`/a//..` is `/`), and as RFC 3986 does (`/a//..` is `/a/`).
//!
//! Steps that find nothing to change add nothing, so a plain path has no other reading and costs
//! a few scans.

use std::collections::{HashSet, VecDeque};

use unicode_normalization::UnicodeNormalization as _;

use super::{escape_at, is_unreserved, push_escape, resolve_segments, PathError, RAW_PATH_EXTRA};

/// More readings than this and the request is refused (400). A real path has a handful; only a
/// contrived stack of escapes comes near, and every reading costs a pass over the rules.
const MAX_READINGS: usize = 128;

/// More bytes across all readings than this and the request is refused (400): the work is
/// proportional to readings times length, so a long path may have fewer readings than a short
/// one (2 KiB paths keep all 128).
const MAX_READING_BYTES: usize = 256 * 1024;

/// A way of reading a path; `None` when it reads the path as it is.
type Step = fn(&str) -> Option<String>;

const STEPS: [Step; 11] = [
    |r| separator(r, "%2F"),
    |r| separator(r, "%5C"),
    percent_decoded,
    |r| without_parameters(r, false),
    |r| without_parameters(r, true),
    |r| trimmed(r, false),
    |r| trimmed(r, true),
    unicode_folded,
    unaccented,
    without_streams,
    without_format_suffix,
];

/// Every reading of the canonical `path` other than itself, in the order found.
///
/// A reading that denotes invalid UTF-8 or a control character (`%25C0%25AE`, `%2500` decoded
/// twice) refuses the whole path, as the same bytes sent once-encoded are refused.
pub(super) fn other_readings(path: &str) -> Result<Vec<String>, PathError> {
    let mut seen = HashSet::from([path.to_owned()]);
    let mut found = Vec::new();
    let mut bytes = path.len();
    let mut queue = VecDeque::from([path.to_owned()]);
    while let Some(reading) = queue.pop_front() {
        for step in STEPS {
            let Some(text) = step(&reading) else {
                continue;
            };
            let settled = settle(&text);
            for next in [
                resolve_segments(&settled, true),
                resolve_segments(&settled, false),
            ] {
                if seen.insert(next.clone()) {
                    bytes += next.len();
                    if found.len() + 1 >= MAX_READINGS || bytes > MAX_READING_BYTES {
                        return Err(PathError::TooManyReadings);
                    }
                    super::check_denoted(&denoted(&next))?;
                    found.push(next.clone());
                    queue.push_back(next);
                }
            }
        }
    }
    Ok(found)
}

/// The bytes a settled reading denotes: every escape decoded.
fn denoted(reading: &str) -> Vec<u8> {
    let bytes = reading.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i).filter(|_| bytes[i] == b'%') {
            Some(value) => {
                out.push(value);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// `escape` (`%2F` or `%5C`) read as `/`. Every `%` of a settled reading starts an escape, so a
/// plain substring search cannot match across two escapes.
fn separator(reading: &str, escape: &str) -> Option<String> {
    reading
        .contains(escape)
        .then(|| reading.replace(escape, "/"))
}

/// Each `%25` followed by two hex digits decoded to `%`, making a new escape: the reading of a
/// backend that decodes the path once more than Portcullis did.
fn percent_decoded(reading: &str) -> Option<String> {
    let bytes = reading.as_bytes();
    let mut out = String::with_capacity(reading.len());
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        if reading[i..].starts_with("%25") && escape_at(bytes, i + 2).is_some() {
            out.push('%');
            changed = true;
            i += 3;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    changed.then_some(out)
}

/// Each segment cut at its first `;` (and, with `escaped`, its first `%3B`): path parameters
/// as Tomcat, Jetty and Spring strip them before they route.
fn without_parameters(reading: &str, escaped: bool) -> Option<String> {
    let cut = |segment: &str| {
        let raw = segment.find(';');
        let encoded = segment.find("%3B").filter(|_| escaped);
        raw.into_iter()
            .chain(encoded)
            .min()
            .unwrap_or(segment.len())
    };
    shorten_segments(reading, cut)
}

/// Each segment without its trailing spaces (and, with `dots`, trailing dots), as Windows and IIS
/// name files: `/admin./users` and `/admin%20/users` are `/admin/users` there.
///
/// A reading rather than a 400 for such segments: this decides on the name such a backend acts
/// on (the C01 strategy), composes with every other step (`%2520` decoded twice, a full-width
/// `．` after NFKC) without readings having to fail, and only changes the answer when the
/// trimmed name crosses a rule's boundary, so a path like `/search/term%20` keeps working.
/// Trimming spaces alone is a reading too, so `..%20` can still act as `..`.
fn trimmed(reading: &str, dots: bool) -> Option<String> {
    let trim = |segment: &str| {
        let mut segment = segment;
        loop {
            if let Some(rest) = segment.strip_suffix("%20") {
                segment = rest;
            } else if let Some(rest) = segment.strip_suffix('.').filter(|_| dots) {
                segment = rest;
            } else {
                return segment.len();
            }
        }
    };
    shorten_segments(reading, trim)
}

/// Escaped UTF-8 decoded, NFKC-normalized, lower-cased and without default-ignorable characters
/// (zero-width spaces, joiners, bidi marks, variation selectors), as a backend that normalizes
/// Unicode names (NFKC_Casefold, or a case-insensitive comparison) reads them. `ı` and `İ` fold
/// to `i` and `ſ` to `s`, as the simple case folding of Java and .NET does, so `/adm%C4%B1n` is
/// `/admin` too.
fn unicode_folded(reading: &str) -> Option<String> {
    let text = decoded_utf8(reading)?;
    let folded: String = text
        .nfkc()
        .filter(|&c| !is_default_ignorable(c))
        .flat_map(|c| {
            let c = match c {
                'ı' | 'İ' => 'i',
                'ſ' => 's',
                'ß' | 'ẞ' => return "ss".chars().collect::<Vec<_>>(),
                c => best_fit(c).unwrap_or(c),
            };
            c.to_lowercase().collect()
        })
        .collect();
    Some(folded)
}

/// The ASCII separator Windows "best fit" conversion to a legacy code page makes of a look-alike
/// that NFKC leaves alone (`¥` and `₩` are the backslash of the Japanese and Korean code pages).
fn best_fit(c: char) -> Option<char> {
    match c {
        '\u{2215}' | '\u{2044}' | '\u{29F8}' | '\u{2571}' => Some('/'),
        '\u{00A5}' | '\u{20A9}' | '\u{2216}' | '\u{29F5}' | '\u{29F9}' | '\u{2572}' => Some('\\'),
        _ => None,
    }
}

/// Escaped UTF-8 decoded, decomposed, without its combining marks and lower-cased: the name an
/// accent-insensitive comparison (a database collation, a search-style router) gives the path.
fn unaccented(reading: &str) -> Option<String> {
    let text = decoded_utf8(reading)?;
    let plain: String = text
        .nfkd()
        .filter(|&c| !unicode_normalization::char::is_combining_mark(c) && !is_default_ignorable(c))
        .flat_map(char::to_lowercase)
        .collect();
    (plain != text).then_some(plain)
}

/// Each segment cut at its first `:` (raw or `%3A`): NTFS reads `name:stream` and
/// `name::$DATA` as the file or directory `name`.
fn without_streams(reading: &str) -> Option<String> {
    let cut = |segment: &str| {
        let raw = segment.find(':');
        let encoded = segment.find("%3A");
        raw.into_iter()
            .chain(encoded)
            .min()
            .unwrap_or(segment.len())
    };
    shorten_segments(reading, cut)
}

/// The last segment cut at its first `.` when something is left before it: `/admin.json`,
/// `/admin.tar.gz` are `/admin` to a router that strips a format suffix.
fn without_format_suffix(reading: &str) -> Option<String> {
    let start = reading.rfind('/').map_or(0, |i| i + 1);
    let dot = reading[start..].find('.').filter(|&i| i > 0)?;
    Some(reading[..start + dot].to_owned())
}

/// The text a reading's escaped UTF-8 denotes, or `None` when it has no escaped non-ASCII byte
/// (or the bytes are not UTF-8).
fn decoded_utf8(reading: &str) -> Option<String> {
    let bytes = reading.as_bytes();
    let mut denoted = Vec::with_capacity(reading.len());
    let mut any = false;
    let mut i = 0;
    while i < bytes.len() {
        match escape_at(bytes, i).filter(|_| bytes[i] == b'%') {
            Some(value) if value >= 0x80 => {
                denoted.push(value);
                any = true;
                i += 3;
            }
            _ => {
                denoted.push(bytes[i]);
                i += 1;
            }
        }
    }
    if !any {
        return None;
    }
    String::from_utf8(denoted).ok()
}

/// Unicode's `Default_Ignorable_Code_Point`: characters with no visible effect that NFKC_Casefold
/// removes.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0xAD | 0x34F
            | 0x61C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// `reading` with every segment cut to its first `keep(segment)` bytes; `None` if none is cut.
/// Most paths have nothing to cut, so that is found without allocating.
fn shorten_segments(reading: &str, keep: impl Fn(&str) -> usize) -> Option<String> {
    if reading
        .split('/')
        .all(|segment| keep(segment) == segment.len())
    {
        return None;
    }
    let segments: Vec<&str> = reading
        .split('/')
        .map(|segment| &segment[..keep(segment)])
        .collect();
    Some(segments.join("/"))
}

/// Back to canonical spelling: escapes of unreserved bytes decoded, other escapes upper-cased,
/// every byte a path may not hold raw escaped (including a `%` that starts no escape).
fn settle(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if let Some(value) = escape_at(bytes, i).filter(|_| byte == b'%') {
            if is_unreserved(value) {
                out.push(char::from(value));
            } else {
                push_escape(&mut out, value);
            }
            i += 3;
            continue;
        }
        if byte != b'%' && (is_unreserved(byte) || byte == b';' || RAW_PATH_EXTRA.contains(&byte)) {
            out.push(char::from(byte));
        } else {
            push_escape(&mut out, byte);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(path: &str) -> Vec<String> {
        other_readings(path).unwrap()
    }

    /// Whether `path` has `expected` among its other readings.
    #[track_caller]
    fn assert_reads_as(path: &str, expected: &str) {
        let found = readings(path);
        assert!(
            found.iter().any(|r| r == expected),
            "{path} should read as {expected}; readings: {found:?}"
        );
    }

    #[test]
    fn plain_paths_have_no_other_reading() {
        for path in [
            "/",
            "/admin/users",
            "/a-b_c~d/e.f/",
            "/a@c!$&'()*+,=",
            "/a%3F%23",
            "/.well-known/x",
        ] {
            assert_eq!(readings(path), Vec::<String>::new(), "{path}");
        }
    }

    #[test]
    fn best_fit_look_alikes_read_as_separators() {
        for slash in ["%E2%88%95", "%E2%81%84", "%E2%A7%B8"] {
            assert_reads_as(&format!("/public/..{slash}admin/users"), "/admin/users");
        }
        for backslash in ["%C2%A5", "%E2%82%A9", "%E2%88%96"] {
            assert_reads_as(&format!("/public/..{backslash}admin/users"), "/admin/users");
        }
        assert_reads_as("/se%C3%9Fion", "/session");
    }

    #[test]
    fn accents_are_read_removed() {
        assert_reads_as("/admin%CC%81/users", "/admin/users");
        assert_reads_as("/admi%C5%88/users", "/admin/users");
        assert_reads_as("/%C3%80dmin/users", "/admin/users");
    }

    #[test]
    fn ntfs_streams_are_read_cut() {
        assert_reads_as("/admin::$INDEX_ALLOCATION/users", "/admin/users");
        assert_reads_as("/admin:$i30:$INDEX_ALLOCATION/users", "/admin/users");
        assert_reads_as("/admin::$DATA", "/admin");
        assert_reads_as("/admin%3A%3A$DATA", "/admin");
        assert_reads_as("/a:b@c", "/a");
    }

    #[test]
    fn a_format_suffix_is_read_cut_from_the_last_segment() {
        assert_reads_as("/secret.json", "/secret");
        assert_reads_as("/admin.tar.gz", "/admin");
        assert_reads_as("/admin/users.xml", "/admin/users");
        // Only the last segment, and never down to nothing.
        assert!(!readings("/v1.2/x").iter().any(|r| r == "/v1/x"));
        assert_eq!(readings("/.hidden"), Vec::<String>::new());
    }

    #[test]
    fn encoded_slash_reads_as_data_and_as_a_separator() {
        assert_reads_as("/public/..%2Fadmin/x", "/admin/x");
        assert_reads_as("/files/a%2Fb", "/files/a/b");
        assert_reads_as("/admin%2Fusers", "/admin/users");
        assert_reads_as("/public/..%5Cadmin/x", "/admin/x");
        // The bifrost direction: as data it stays under /admin/ (the forwarded path itself).
        assert_reads_as("/admin/..%2Fpublic/x", "/public/x");
        // Each separator on its own, too.
        assert_reads_as("/admin%5C..%2Fpublic/x", "/admin/..%2Fpublic/x");
        assert_reads_as("/admin%5C..%2Fpublic/x", "/admin%5C../public/x");
    }

    #[test]
    fn empty_segments_resolve_both_ways() {
        // Collapsed first, `..` eats `x`; RFC 3986, `..` eats the empty segment.
        assert_reads_as("/x/%2F../admin", "/admin");
        assert_reads_as("/x/%2F../admin", "/x/admin");
    }

    #[test]
    fn encoded_percent_reads_decoded_once_and_twice() {
        assert_reads_as("/public/%252e%252e/admin/users", "/admin/users");
        assert_reads_as("/public/%252e%252e%252fadmin/users", "/admin/users");
        assert_reads_as("/public/%252E%252E%252Fadmin/users", "/admin/users");
        // Decoded once, the new escape is kept as data (no unreserved byte to decode).
        assert_reads_as("/a/%2520b", "/a/%20b");
        assert_reads_as("/%2561dmin/x", "/admin/x");
        // Three levels deep still resolves.
        assert_reads_as("/public/%25252e%25252e/admin", "/admin");
    }

    #[test]
    fn semicolon_parameters_are_read_removed_and_kept() {
        assert_reads_as("/public/..;/admin/users", "/admin/users");
        assert_reads_as("/admin;x=1/users", "/admin/users");
        assert_reads_as("/public/..%3B/admin/users", "/admin/users");
        assert_reads_as("/;a/admin", "/admin");
        // Raw `;` only: `%3B` stays data, as a server that strips before it decodes reads it.
        assert_reads_as("/a%3Bb;c/d", "/a%3Bb/d");
        assert_reads_as("/a%3Bb;c/d", "/a/d");
    }

    #[test]
    fn trailing_dots_and_spaces_are_trimmed() {
        assert_reads_as("/admin./users", "/admin/users");
        assert_reads_as("/admin%20/users", "/admin/users");
        assert_reads_as("/admin.%20./users", "/admin/users");
        assert_reads_as("/admin...", "/admin");
        assert_reads_as("/public/..%20/admin", "/admin");
        assert_reads_as("/public/.../admin", "/public/admin");
        assert_reads_as("/a/%2520", "/a/");
    }

    #[test]
    fn unicode_is_normalized_and_folded() {
        // Full-width dots and solidus.
        assert_reads_as("/public/%EF%BC%8E%EF%BC%8E/admin", "/admin");
        assert_reads_as("/public%EF%BC%8F..%EF%BC%8Fadmin/x", "/admin/x");
        // Dotless ı, long ſ, dotted İ, Kelvin sign, full-width letters.
        assert_reads_as("/adm%C4%B1n/users", "/admin/users");
        assert_reads_as("/%C5%BFession", "/session");
        assert_reads_as("/%C4%B0tems", "/items");
        assert_reads_as("/%E2%84%AAey", "/key");
        assert_reads_as("/%EF%BC%A1dmin/x", "/admin/x");
        // Other characters stay escaped, lower-cased.
        assert_reads_as("/caf%C3%89", "/caf%C3%A9");
        // Ideographic space trims like a space once normalized.
        assert_reads_as("/admin%E3%80%80/users", "/admin/users");
    }

    #[test]
    fn invisible_characters_are_read_removed() {
        // Zero-width space, soft hyphen, word joiner, BOM, right-to-left mark.
        for path in [
            "/ad%E2%80%8Bmin/x",
            "/ad%C2%ADmin/x",
            "/admin%E2%81%A0/x",
            "/%EF%BB%BFadmin/x",
            "/admin%E2%80%8F/x",
        ] {
            assert_reads_as(path, "/admin/x");
        }
    }

    #[test]
    fn a_reading_that_denotes_bad_bytes_refuses_the_path() {
        // Overlong `.` and a NUL, each only once the `%25` is decoded.
        assert_eq!(
            other_readings("/public/%25C0%25AE%25C0%25AE/admin"),
            Err(PathError::InvalidCharacter)
        );
        assert_eq!(other_readings("/a%2500"), Err(PathError::ControlByte));
        assert_eq!(other_readings("/a%2509b"), Err(PathError::ControlByte));
        // A C1 control after the Unicode step counts too.
        assert_eq!(other_readings("/a%25C2%2585"), Err(PathError::ControlByte));
    }

    #[test]
    fn readings_combine() {
        // `%25` decoded, then the `%2F` it made read as a separator, then `;` parameters gone.
        assert_reads_as("/public/..%252F..;x/admin", "/admin");
        // Full-width dot decoded twice.
        assert_reads_as("/public/%25EF%25BC%258E%25EF%25BC%258E/admin", "/admin");
    }

    #[test]
    fn every_reading_is_settled() {
        for path in [
            "/public/..%252F..;x/admin",
            "/a%2F%5C/%2520;%3B/b.%20",
            "/%EF%BC%852e/x",
        ] {
            for reading in readings(path) {
                assert!(reading.starts_with('/'), "{path}: {reading}");
                assert_eq!(settle(&reading), reading, "{path}");
                assert_eq!(resolve_segments(&reading, true), reading, "{path}");
            }
        }
    }

    #[test]
    fn too_many_readings_is_refused() {
        // Each level of `%25` is one more reading.
        let deep = format!("/%25{}41", "25".repeat(MAX_READINGS + 1));
        assert_eq!(other_readings(&deep), Err(PathError::TooManyReadings));
        let shallow = format!("/%25{}41", "25".repeat(MAX_READINGS / 4));
        assert!(other_readings(&shallow).is_ok());
        // A long path gets fewer readings: the budget counts bytes.
        let long = format!("/x%2520.;y%3B%2F%5C/{}", "a".repeat(64 * 1024));
        assert_eq!(other_readings(&long), Err(PathError::TooManyReadings));
        // But a long plain path has none to count.
        assert_eq!(readings(&format!("/{}", "a".repeat(64 * 1024))).len(), 0);
    }
}
