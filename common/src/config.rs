//! Configuration plumbing both binaries share: every value is parsed from
//! its string form and every problem is collected, so one start reports
//! every bad value at once (and the binary exits 64 before binding).

use std::net::SocketAddr;
use std::time::Duration;

/// Exit status for a rejected configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;

/// Problems found so far, each prefixed by the variable's name.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    /// Keeps the value, or records the problem under `name`.
    pub fn check<T>(&mut self, name: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(format!("{name}: {e}"));
                None
            }
        }
    }

    /// Records a problem that involves several variables.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every problem, one per line, as both binaries print them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

pub fn parse_addr(raw: &str) -> Result<SocketAddr, String> {
    raw.parse()
        .map_err(|_| format!("{raw:?} is not an IP:port socket address"))
}

pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{other:?} is not true or false")),
    }
}

/// A whole number within `min..=max`.
pub fn parse_count(raw: &str, min: u64, max: u64) -> Result<u64, String> {
    match raw.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("{raw:?} is outside {min}..={max}")),
        Err(_) => Err(format!("{raw:?} is not a whole number")),
    }
}

/// A number of seconds within `min..=max` (fractions allowed).
pub fn parse_seconds(raw: &str, min: f64, max: f64) -> Result<Duration, String> {
    let value: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("{raw:?} is not a number of seconds"))?;
    if !value.is_finite() || value < min || value > max {
        return Err(format!("{raw:?} is outside {min}..={max} seconds"));
    }
    Ok(Duration::from_secs_f64(value))
}

/// A fraction within `0..=1`.
pub fn parse_ratio(raw: &str) -> Result<f64, String> {
    match raw.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{raw:?} is not a number from 0 to 1")),
    }
}

/// `SERVICE_VERSION`: what image tags and release versions are made of.
pub fn check_version(raw: &str) -> Result<String, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 128
        && raw
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b'+'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "{raw:?} must be 1 to 128 characters of A-Z a-z 0-9 . - _ +"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_bound_their_values() {
        assert_eq!(parse_seconds("5", 0.0, 60.0), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_seconds("0.25", 0.0, 60.0),
            Ok(Duration::from_millis(250))
        );
        for bad in ["-1", "61", "NaN", "five"] {
            assert!(parse_seconds(bad, 0.0, 60.0).is_err(), "{bad}");
        }
        assert_eq!(parse_count("10", 1, 10), Ok(10));
        assert!(parse_count("0", 1, 10).is_err());
        assert!(parse_count("x", 1, 10).is_err());
        assert_eq!(parse_bool("true"), Ok(true));
        assert!(parse_bool("yes").is_err());
        assert_eq!(parse_ratio("0.01"), Ok(0.01));
        assert!(parse_ratio("1.5").is_err());
        assert!(check_version("1.2.3-rc.1+abc").is_ok());
        assert!(check_version("has space").is_err());
        assert!(parse_addr("127.0.0.1:80").is_ok());
        assert!(parse_addr("localhost:80").is_err());
    }

    #[test]
    fn problems_are_collected_with_their_names() {
        let mut p = Problems::default();
        assert_eq!(p.check("A", parse_count("x", 0, 1)), None);
        assert_eq!(p.check("B", parse_count("1", 0, 1)), Some(1));
        p.push("A and B disagree");
        let text = ConfigErrors(p.0).to_string();
        assert!(
            text.contains("  - A: ") && text.contains("  - A and B disagree"),
            "{text}"
        );
    }
}
