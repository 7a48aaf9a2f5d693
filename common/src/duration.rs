//! `*_SECONDS` configuration values: non-negative decimals such as `5` or `0.25`.

use std::time::Duration;

/// Parses seconds within `[min, max]`, with a message fit for a config error.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_bounds() {
        assert_eq!(parse_seconds("5", 0.0, 60.0), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_seconds("0.25", 0.0, 60.0),
            Ok(Duration::from_millis(250))
        );
        assert!(parse_seconds("-1", 0.0, 60.0).is_err());
        assert!(parse_seconds("61", 0.0, 60.0).is_err());
        assert!(parse_seconds("NaN", 0.0, 60.0).is_err());
        assert!(parse_seconds("five", 0.0, 60.0).is_err());
    }
}
