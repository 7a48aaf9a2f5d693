//! Wall-clock formatting for the hot path: the HTTP `Date` header
//! (IMF-fixdate) and log timestamps (RFC 3339, microseconds, UTC).
//!
//! Both change once a second, so each thread keeps the formatted second and
//! only rewrites the sub-second digits.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// `(year, month 1-12, day 1-31)` of a day count since 1970-01-01
/// (the proleptic Gregorian calendar, valid far beyond any clock we run on).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    weekday: usize,
}

fn parts(unix_secs: u64) -> Parts {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
        weekday: (days.rem_euclid(7)) as usize,
    }
}

/// `Tue, 01 Dec 2026 01:02:03 GMT` for a Unix time.
pub fn format_http_date(unix_secs: u64) -> String {
    let p = parts(unix_secs);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[p.weekday],
        p.day,
        MONTHS[(p.month - 1) as usize],
        p.year,
        p.hour,
        p.minute,
        p.second
    )
}

fn format_rfc3339_second(unix_secs: u64) -> String {
    let p = parts(unix_secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    )
}

struct Cached {
    second: u64,
    http: String,
    rfc3339: String,
}

thread_local! {
    static CACHE: RefCell<Cached> = const {
        RefCell::new(Cached { second: u64::MAX, http: String::new(), rfc3339: String::new() })
    };
}

fn now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros())
}

fn with_cached<R>(second: u64, f: impl FnOnce(&Cached) -> R) -> R {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.second != second {
            c.second = second;
            c.http = format_http_date(second);
            c.rfc3339 = format_rfc3339_second(second);
        }
        f(&c)
    })
}

/// Appends the current `Date` header value.
pub fn push_http_date(out: &mut Vec<u8>) {
    let (secs, _) = now();
    with_cached(secs, |c| out.extend_from_slice(c.http.as_bytes()));
}

/// The current `Date` header value.
pub fn http_date_now() -> String {
    let (secs, _) = now();
    with_cached(secs, |c| c.http.clone())
}

/// Appends the current time as `2026-12-01T01:02:03.123456Z`.
pub fn push_rfc3339_micros(out: &mut String) {
    let (secs, micros) = now();
    with_cached(secs, |c| out.push_str(&c.rfc3339));
    out.push('.');
    let mut digits = [b'0'; 6];
    let mut m = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
    out.push('Z');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            format_http_date(1_795_914_123),
            "Sun, 29 Nov 2026 01:02:03 GMT"
        );
        assert_eq!(
            format_http_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(format_rfc3339_second(1_795_914_123), "2026-11-29T01:02:03");
    }

    #[test]
    fn now_formats_parse_back() {
        let mut s = String::new();
        push_rfc3339_micros(&mut s);
        assert_eq!(s.len(), "2026-12-01T01:02:03.123456Z".len(), "{s}");
        assert!(s.ends_with('Z') && s.as_bytes()[10] == b'T', "{s}");
        let mut d = Vec::new();
        push_http_date(&mut d);
        assert!(String::from_utf8(d).unwrap().ends_with(" GMT"));
    }
}
