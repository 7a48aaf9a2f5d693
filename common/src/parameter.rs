//! SSM parameter names, validated once at the boundary.
//!
//! The API takes a name *relative* to the configured prefix
//! (`/parameter/db/host` reads `<prefix>/db/host`). The raw path segment is
//! percent-decoded exactly once and then checked against the rules SSM itself
//! applies, so an invalid name never costs an AWS call and cannot escape the
//! prefix (`.` and `..` segments are refused, not resolved).

use std::fmt;

use percent_encoding::percent_decode;

/// Longest full parameter name SSM accepts, in characters.
pub const MAX_NAME_LEN: usize = 1011;
/// Deepest hierarchy SSM accepts, in `/`-separated levels.
pub const MAX_DEPTH: usize = 15;

/// Why a name (or prefix) is not acceptable. The `Display` text is safe to
/// return to clients: it never echoes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParameterNameError {
    #[error("parameter name is empty")]
    Empty,
    #[error("parameter name contains an empty segment")]
    EmptySegment,
    #[error("parameter name contains a '.' or '..' segment")]
    DotSegment,
    #[error("parameter name contains a control character")]
    ControlCharacter,
    #[error(
        "parameter name is not valid percent-encoding: '%' must be followed by two hex digits, and the bytes must be UTF-8"
    )]
    InvalidEncoding,
    #[error("parameter name contains a character outside a-z, A-Z, 0-9, '_', '.', '-' and '/'")]
    InvalidCharacter,
    #[error("parameter name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("parameter name is nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("a prefix must start with '/' and must not end with '/'")]
    PrefixShape,
    #[error("names beginning with 'aws' or 'ssm' are reserved by SSM")]
    ReservedPrefix,
}

fn is_allowed_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Checks `/`-separated segments; returns how many there are.
fn check_segments(path: &str) -> Result<usize, ParameterNameError> {
    let mut depth = 0;
    for segment in path.split('/') {
        if segment.is_empty() {
            return Err(ParameterNameError::EmptySegment);
        }
        if segment == "." || segment == ".." {
            return Err(ParameterNameError::DotSegment);
        }
        if let Some(&bad) = segment.as_bytes().iter().find(|&&c| !is_allowed_char(c)) {
            return Err(if bad.is_ascii_control() {
                ParameterNameError::ControlCharacter
            } else {
                ParameterNameError::InvalidCharacter
            });
        }
        depth += 1;
    }
    Ok(depth)
}

/// The SSM path the service may read, e.g. `/kantox-challenge/dev`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParameterPrefix {
    path: String,
    depth: usize,
}

impl ParameterPrefix {
    pub fn parse(raw: &str) -> Result<Self, ParameterNameError> {
        if raw.is_empty() {
            return Err(ParameterNameError::Empty);
        }
        let Some(inner) = raw.strip_prefix('/') else {
            return Err(ParameterNameError::PrefixShape);
        };
        if inner.is_empty() || inner.ends_with('/') {
            return Err(ParameterNameError::PrefixShape);
        }
        let depth = check_segments(inner)?;
        let lower = inner.to_ascii_lowercase();
        if lower.starts_with("aws") || lower.starts_with("ssm") {
            return Err(ParameterNameError::ReservedPrefix);
        }
        // Leave room for at least "/x" below the prefix.
        if raw.len() + 2 > MAX_NAME_LEN {
            return Err(ParameterNameError::TooLong);
        }
        if depth >= MAX_DEPTH {
            return Err(ParameterNameError::TooDeep);
        }
        Ok(Self {
            path: raw.to_owned(),
            depth,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The relative part of `full` below this prefix, if `full` is under it.
    pub fn strip<'a>(&self, full: &'a str) -> Option<&'a str> {
        full.strip_prefix(self.path.as_str())?
            .strip_prefix('/')
            .filter(|rest| !rest.is_empty())
    }
}

impl fmt::Display for ParameterPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

impl std::str::FromStr for ParameterPrefix {
    type Err = ParameterNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A parameter name relative to a prefix, already validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParameterName {
    relative: String,
}

impl ParameterName {
    /// Parses the still percent-encoded path remainder after `/parameter/`.
    /// Decodes exactly once: `db%2Fhost` is `db/host`, `a%252Fb` is the
    /// invalid `a%2Fb`. A `%` not followed by two hex digits (`bad%zz`,
    /// `a%2`) is a bad encoding, not a character to check.
    pub fn from_path_segment(raw: &str) -> Result<Self, ParameterNameError> {
        if raw.is_empty() {
            return Err(ParameterNameError::Empty);
        }
        let bytes = raw.as_bytes();
        let malformed_escape = bytes.iter().enumerate().any(|(i, &c)| {
            c == b'%'
                && !matches!(
                    (bytes.get(i + 1), bytes.get(i + 2)),
                    (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit()
                )
        });
        if malformed_escape {
            return Err(ParameterNameError::InvalidEncoding);
        }
        let decoded = percent_decode(raw.as_bytes())
            .decode_utf8()
            .map_err(|_| ParameterNameError::InvalidEncoding)?;
        Self::from_decoded(&decoded)
    }

    /// Validates an already decoded relative name.
    pub fn from_decoded(name: &str) -> Result<Self, ParameterNameError> {
        if name.is_empty() {
            return Err(ParameterNameError::Empty);
        }
        if name.chars().any(char::is_control) {
            return Err(ParameterNameError::ControlCharacter);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ParameterNameError::TooLong);
        }
        check_segments(name)?;
        Ok(Self {
            relative: name.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.relative
    }

    /// The full SSM name under `prefix`, checked against SSM's limits on the
    /// whole name.
    pub fn full_name(&self, prefix: &ParameterPrefix) -> Result<String, ParameterNameError> {
        let len = prefix.path.len() + 1 + self.relative.len();
        if len > MAX_NAME_LEN {
            return Err(ParameterNameError::TooLong);
        }
        let depth = prefix.depth + self.relative.split('/').count();
        if depth > MAX_DEPTH {
            return Err(ParameterNameError::TooDeep);
        }
        let mut full = String::with_capacity(len);
        full.push_str(&prefix.path);
        full.push('/');
        full.push_str(&self.relative);
        Ok(full)
    }
}

impl fmt::Display for ParameterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn prefix() -> ParameterPrefix {
        ParameterPrefix::parse("/kantox-challenge/dev").unwrap()
    }

    #[test]
    fn accepts_plain_nested_and_encoded_names() {
        for (raw, want) in [
            ("param1", "param1"),
            ("db/host", "db/host"),
            ("db%2Fhost", "db/host"),
            ("db%2fhost", "db/host"),
            ("a.b-c_d", "a.b-c_d"),
            ("%70aram1", "param1"),
        ] {
            let name = ParameterName::from_path_segment(raw).unwrap();
            assert_eq!(name.as_str(), want, "{raw}");
        }
        let full = ParameterName::from_path_segment("db/host")
            .unwrap()
            .full_name(&prefix())
            .unwrap();
        assert_eq!(full, "/kantox-challenge/dev/db/host");
    }

    #[test]
    fn rejects_each_rule() {
        use ParameterNameError::*;
        for (raw, want) in [
            ("", Empty),
            ("a//b", EmptySegment),
            ("a/", EmptySegment),
            ("/a", EmptySegment),
            ("..", DotSegment),
            ("a/../b", DotSegment),
            ("%2E%2E/secret", DotSegment),
            (".", DotSegment),
            ("a%00b", ControlCharacter),
            ("a%0Ab", ControlCharacter),
            ("a%7Fb", ControlCharacter),
            ("a%FFb", InvalidEncoding),
            ("bad%zz", InvalidEncoding),
            ("a%2", InvalidEncoding),
            ("%", InvalidEncoding),
            ("a%2G", InvalidEncoding),
            ("a b", InvalidCharacter),
            ("a%20b", InvalidCharacter),
            ("a%252Fb", InvalidCharacter),
            ("caf%C3%A9", InvalidCharacter),
            ("a:b", InvalidCharacter),
        ] {
            assert_eq!(ParameterName::from_path_segment(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn limits_apply_to_the_full_name() {
        let long = "a".repeat(MAX_NAME_LEN - "/kantox-challenge/dev/".len());
        let ok = ParameterName::from_decoded(&long).unwrap();
        assert_eq!(ok.full_name(&prefix()).unwrap().len(), MAX_NAME_LEN);
        let too_long = ParameterName::from_decoded(&format!("{long}a")).unwrap();
        assert_eq!(
            too_long.full_name(&prefix()),
            Err(ParameterNameError::TooLong)
        );
        let deep = vec!["x"; MAX_DEPTH - 2].join("/");
        assert!(
            ParameterName::from_decoded(&deep)
                .unwrap()
                .full_name(&prefix())
                .is_ok()
        );
        let deeper = format!("{deep}/x");
        assert_eq!(
            ParameterName::from_decoded(&deeper)
                .unwrap()
                .full_name(&prefix()),
            Err(ParameterNameError::TooDeep)
        );
    }

    #[test]
    fn prefix_rules() {
        assert!(ParameterPrefix::parse("/kantox-challenge/dev").is_ok());
        assert!(ParameterPrefix::parse("/a").is_ok());
        for bad in [
            "", "/", "a/b", "/a/", "/a//b", "/a/../b", "/aws/x", "/SSM", "/a b",
        ] {
            assert!(ParameterPrefix::parse(bad).is_err(), "{bad:?}");
        }
        let p = prefix();
        assert_eq!(p.strip("/kantox-challenge/dev/db/host"), Some("db/host"));
        assert_eq!(p.strip("/kantox-challenge/devx/a"), None);
        assert_eq!(p.strip("/kantox-challenge/dev"), None);
        assert_eq!(p.strip("/other/param"), None);
    }

    proptest! {
        /// Whatever the input, parsing never panics, and an accepted name is
        /// made only of allowed characters, has no empty or dot segment and
        /// stays below the prefix.
        #[test]
        fn accepted_names_are_safe(raw in "(%[0-9A-Fa-f]{2}|[a-zA-Z0-9/._%~ -]){0,64}") {
            if let Ok(name) = ParameterName::from_path_segment(&raw) {
                let s = name.as_str();
                prop_assert!(s.bytes().all(|c| is_allowed_char(c) || c == b'/'));
                prop_assert!(s.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != ".."));
                if let Ok(full) = name.full_name(&prefix()) {
                    prop_assert_eq!(prefix().strip(&full), Some(s));
                }
            }
        }

        /// Any valid name survives a round trip through percent-encoding of
        /// every byte.
        #[test]
        fn encoded_round_trip(name in "[a-zA-Z0-9_-]{1,8}(/[a-zA-Z0-9_-]{1,8}){0,4}") {
            let encoded: String = name.bytes().map(|b| format!("%{b:02X}")).collect();
            let parsed = ParameterName::from_path_segment(&encoded).unwrap();
            prop_assert_eq!(parsed.as_str(), name.as_str());
        }

        /// Arbitrary text never panics the parser, and whatever it accepts
        /// is made of allowed characters only.
        #[test]
        fn arbitrary_input_is_refused_or_safe(raw in any::<String>()) {
            if let Ok(name) = ParameterName::from_path_segment(&raw) {
                prop_assert!(name.as_str().bytes().all(|c| is_allowed_char(c) || c == b'/'));
            }
            if let Ok(prefix) = ParameterPrefix::parse(&raw) {
                prop_assert!(prefix.as_str().starts_with('/'));
                prop_assert!(prefix.as_str().bytes().all(|c| is_allowed_char(c) || c == b'/'));
            }
        }
    }
}
