//! Trace context: W3C `traceparent` and `tracestate`, and Zipkin B3 (the
//! single `b3` header and the `x-b3-*` family).
//!
//! Both services only *propagate* trace context (a mesh proxy or a tracing
//! backend joins the spans): the edge forwards every header in
//! [`PROPAGATED`] to the worker unchanged, and starts a W3C trace when a
//! request arrives without one ([`resolve`]). Every access-log line carries
//! the trace id.

use arrayvec::ArrayString;

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";
/// Vendor-specific W3C trace state; travels with `traceparent`.
pub const TRACESTATE: &str = "tracestate";
/// Zipkin's single-header form.
pub const B3: &str = "b3";
pub const X_B3_TRACEID: &str = "x-b3-traceid";
pub const X_B3_SPANID: &str = "x-b3-spanid";
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
pub const X_B3_FLAGS: &str = "x-b3-flags";

/// Headers forwarded to the worker exactly as received (besides
/// `traceparent`, which is forwarded as received or as started here).
pub const PROPAGATED: [&str; 7] = [
    TRACESTATE,
    B3,
    X_B3_TRACEID,
    X_B3_SPANID,
    X_B3_PARENTSPANID,
    X_B3_SAMPLED,
    X_B3_FLAGS,
];

/// Longest propagated header value; longer ones are dropped, not truncated
/// (W3C asks for at least 512 bytes of `tracestate` to be kept).
pub const MAX_PROPAGATED_LEN: usize = 1024;

const TRACEPARENT_LEN: usize = 55;

/// A syntactically valid version-00 `traceparent`, held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    raw: ArrayString<TRACEPARENT_LEN>,
}

impl std::fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TraceParent").field(&self.as_str()).finish()
    }
}

fn is_lower_hex(p: &[u8]) -> bool {
    p.iter()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

fn nonzero(p: &[u8]) -> bool {
    p.iter().any(|&c| c != b'0')
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lower-case hex into `out` (twice as long).
pub(crate) fn write_hex(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

/// Random non-zero bits (an all-zero id is invalid in both formats).
fn random_nonzero_u128() -> u128 {
    loop {
        let v = fastrand::u128(..);
        if v != 0 {
            return v;
        }
    }
}

fn random_nonzero_u64() -> u64 {
    loop {
        let v = fastrand::u64(..);
        if v != 0 {
            return v;
        }
    }
}

impl TraceParent {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower-case,
    /// ids not all zero. Anything else is `None`, and the caller starts a
    /// new trace (as the W3C specification asks).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let raw: [u8; TRACEPARENT_LEN] = value.try_into().ok()?;
        let valid = &raw[..3] == b"00-"
            && raw[35] == b'-'
            && raw[52] == b'-'
            && is_lower_hex(&raw[3..35])
            && nonzero(&raw[3..35])
            && is_lower_hex(&raw[36..52])
            && nonzero(&raw[36..52])
            && is_lower_hex(&raw[53..55]);
        if !valid {
            return None;
        }
        ArrayString::from_byte_string(&raw)
            .ok()
            .map(|raw| Self { raw })
    }

    /// A new trace: random trace and parent ids; `sampled` sets flag 01.
    pub fn start(sampled: bool) -> Self {
        Self::from_ids(random_nonzero_u128(), random_nonzero_u64(), sampled)
    }

    fn from_ids(trace_id: u128, parent_id: u64, sampled: bool) -> Self {
        let mut raw = *b"00-00000000000000000000000000000000-0000000000000000-00";
        write_hex(&mut raw[3..35], &trace_id.to_be_bytes());
        write_hex(&mut raw[36..52], &parent_id.to_be_bytes());
        raw[54] = if sampled { b'1' } else { b'0' };
        Self {
            // Only ASCII was written.
            raw: ArrayString::from_byte_string(&raw).unwrap_or_default(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn trace_id(&self) -> &str {
        &self.as_str()[3..35]
    }

    pub fn sampled(&self) -> bool {
        matches!(self.raw.as_bytes()[54], b'1' | b'3')
    }
}

/// Where a request's `traceparent` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceOrigin {
    /// The client sent a valid `traceparent`.
    Received,
    /// Built from the client's B3 ids (same trace id, padded to 128 bits).
    FromB3,
    /// None arrived: a new trace was started here.
    Started,
}

/// B3 ids, from either the single header or the `x-b3-*` family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct B3Ids {
    trace_id: u128,
    span_id: Option<u64>,
    sampled: Option<bool>,
}

fn parse_hex_id(v: &[u8], lens: &[usize]) -> Option<u128> {
    if !lens.contains(&v.len()) || !is_lower_hex(v) || !nonzero(v) {
        return None;
    }
    let s = std::str::from_utf8(v).ok()?;
    u128::from_str_radix(s, 16).ok()
}

fn parse_sampled(v: &[u8]) -> Option<bool> {
    match v {
        b"1" | b"d" | b"true" => Some(true),
        b"0" | b"false" => Some(false),
        _ => None,
    }
}

/// `b3: {trace}-{span}[-{sampled}[-{parent}]]` or just `{sampled}`.
fn parse_b3_single(v: &[u8]) -> Option<B3Ids> {
    let mut parts = v.split(|&c| c == b'-');
    let trace = parts.next()?;
    let span = parts.next()?;
    let sampled = parts.next().and_then(parse_sampled);
    Some(B3Ids {
        trace_id: parse_hex_id(trace, &[16, 32])?,
        span_id: parse_hex_id(span, &[16]).map(|s| s as u64),
        sampled,
    })
}

fn parse_b3_multi<'a>(header: &impl Fn(&str) -> Option<&'a [u8]>) -> Option<B3Ids> {
    let trace_id = parse_hex_id(header(X_B3_TRACEID)?, &[16, 32])?;
    let span_id = header(X_B3_SPANID)
        .and_then(|v| parse_hex_id(v, &[16]))
        .map(|s| s as u64);
    let sampled = if header(X_B3_FLAGS) == Some(b"1") {
        Some(true)
    } else {
        header(X_B3_SAMPLED).and_then(parse_sampled)
    };
    Some(B3Ids {
        trace_id,
        span_id,
        sampled,
    })
}

/// Decides the request's `traceparent`: the client's if valid, else one built
/// from B3 ids, else a new trace, sampled with probability `sample_ratio`.
/// `header` returns a request header's value by lower-case name.
pub fn resolve<'a>(
    header: impl Fn(&str) -> Option<&'a [u8]>,
    sample_ratio: f64,
) -> (TraceParent, TraceOrigin) {
    if let Some(tp) = header(TRACEPARENT).and_then(TraceParent::parse) {
        return (tp, TraceOrigin::Received);
    }
    let b3 = header(B3)
        .and_then(parse_b3_single)
        .or_else(|| parse_b3_multi(&header));
    if let Some(ids) = b3 {
        let span = ids.span_id.unwrap_or_else(random_nonzero_u64);
        let sampled = ids.sampled.unwrap_or(false);
        return (
            TraceParent::from_ids(ids.trace_id, span, sampled),
            TraceOrigin::FromB3,
        );
    }
    let sampled = sample_ratio > 0.0 && fastrand::f64() < sample_ratio;
    (TraceParent::start(sampled), TraceOrigin::Started)
}

/// The trace id to log for a request seen by a service that does not start
/// traces (the worker): from `traceparent`, else from B3.
pub fn trace_id_hex<'a>(header: impl Fn(&str) -> Option<&'a [u8]>) -> Option<String> {
    if let Some(tp) = header(TRACEPARENT).and_then(TraceParent::parse) {
        return Some(tp.trace_id().to_owned());
    }
    header(B3)
        .and_then(parse_b3_single)
        .or_else(|| parse_b3_multi(&header))
        .map(|ids| format!("{:032x}", ids.trace_id))
}

/// Whether a header value may be propagated: visible ASCII (plus spaces and
/// tabs, which `tracestate` allows), bounded in length.
pub fn propagatable(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_PROPAGATED_LEN
        && value
            .iter()
            .all(|&c| c == b'\t' || (b' '..=b'~').contains(&c))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &'static str)]) -> HashMap<&'static str, &'static [u8]> {
        pairs.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
    }

    #[test]
    fn traceparent_is_parsed_strictly() {
        let tp = TraceParent::parse(TP.as_bytes()).unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.as_str(), TP);
        assert!(tp.sampled());
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(TraceParent::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_received_traceparent_wins() {
        let h = headers(&[
            (TRACEPARENT, TP),
            (B3, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"),
        ]);
        let (tp, origin) = resolve(|n| h.get(n).copied(), 0.0);
        assert_eq!((tp.as_str(), origin), (TP, TraceOrigin::Received));
    }

    #[test]
    fn b3_ids_carry_over_to_traceparent() {
        let h = headers(&[(
            B3,
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90",
        )]);
        let (tp, origin) = resolve(|n| h.get(n).copied(), 0.0);
        assert_eq!(origin, TraceOrigin::FromB3);
        assert_eq!(
            tp.as_str(),
            "00-80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-01"
        );
        let h = headers(&[
            (X_B3_TRACEID, "a3ce929d0e0e4736"),
            (X_B3_SPANID, "00f067aa0ba902b7"),
            (X_B3_SAMPLED, "0"),
        ]);
        let (tp, origin) = resolve(|n| h.get(n).copied(), 1.0);
        assert_eq!(origin, TraceOrigin::FromB3);
        assert_eq!(
            tp.as_str(),
            "00-0000000000000000a3ce929d0e0e4736-00f067aa0ba902b7-00"
        );
        assert_eq!(
            trace_id_hex(|n| h.get(n).copied()).as_deref(),
            Some("0000000000000000a3ce929d0e0e4736")
        );
    }

    #[test]
    fn a_trace_is_started_when_none_arrives() {
        let h = headers(&[(TRACEPARENT, "garbage"), (B3, "1")]);
        let (a, origin) = resolve(|n| h.get(n).copied(), 1.0);
        assert_eq!(origin, TraceOrigin::Started);
        assert!(TraceParent::parse(a.as_str().as_bytes()).is_some());
        assert!(a.sampled());
        let (b, _) = resolve(|n| h.get(n).copied(), 0.0);
        assert!(!b.sampled());
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(trace_id_hex(|n| h.get(n).copied()), None);
    }

    #[test]
    fn only_sane_values_are_propagated() {
        assert!(propagatable(b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
        assert!(!propagatable(b""));
        assert!(!propagatable(b"a\nb"));
        assert!(!propagatable(&[b'a'; MAX_PROPAGATED_LEN + 1]));
    }
}
