//! Request correlation: `x-request-id` and W3C `traceparent`.

use std::fmt;

/// Header carrying the request id, taken from the client or generated.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// W3C trace-context header, accepted, logged and forwarded.
pub const TRACEPARENT_HEADER: &str = "traceparent";

const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id safe to log and echo: 1 to 128 characters of
/// `A-Z a-z 0-9 - _ . : /`. Anything else from a client is replaced by a new
/// UUID rather than echoed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn from_header(value: Option<&[u8]>) -> Self {
        value.and_then(Self::parse).unwrap_or_else(Self::generate)
    }

    pub fn parse(value: &[u8]) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= MAX_REQUEST_ID_LEN
            && value.iter().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b':' | b'/')
            });
        // The check above admits only ASCII, so this conversion cannot fail.
        ok.then(|| std::str::from_utf8(value).ok().map(|s| Self(s.to_owned())))
            .flatten()
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A syntactically valid version-00 `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    raw: String,
}

impl TraceParent {
    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lower-case,
    /// ids not all zero. Anything else is ignored (not forwarded).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(value).ok()?;
        let mut parts = s.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |p: &str, n: usize| {
            p.len() == n
                && p.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        };
        let nonzero = |p: &str| p.bytes().any(|c| c != b'0');
        let valid = parts.next().is_none()
            && version == "00"
            && hex(trace, 32)
            && nonzero(trace)
            && hex(parent, 16)
            && nonzero(parent)
            && hex(flags, 2);
        valid.then(|| Self { raw: s.to_owned() })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn trace_id(&self) -> &str {
        &self.raw[3..35]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_is_kept_when_safe_and_replaced_otherwise() {
        assert_eq!(RequestId::from_header(Some(b"abc-123")).as_str(), "abc-123");
        for bad in [&b""[..], b"a b", b"x\ny", "é".as_bytes(), &[b'a'; 129]] {
            let id = RequestId::from_header(Some(bad));
            assert_ne!(id.as_str().as_bytes(), bad);
            assert_eq!(id.as_str().len(), 36, "a generated UUID");
        }
        assert_ne!(RequestId::generate(), RequestId::generate());
    }

    #[test]
    fn traceparent() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(ok.as_bytes()).unwrap();
        assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "garbage",
        ] {
            assert!(TraceParent::parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
