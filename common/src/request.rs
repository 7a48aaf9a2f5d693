//! Request correlation: `x-request-id`.
//!
//! Trace context (W3C `traceparent`/`tracestate`, B3) lives in
//! [`crate::trace`].

use std::fmt;

use arrayvec::ArrayString;

/// Header carrying the request id, taken from the client or generated.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id safe to log and echo: 1 to 128 characters of
/// `A-Z a-z 0-9 - _ . : /`. Anything else from a client is replaced by a new
/// UUID rather than echoed. Held inline (no heap allocation), since every
/// request carries one.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(ArrayString<MAX_REQUEST_ID_LEN>);

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
        if !ok {
            return None;
        }
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| ArrayString::from(s).ok())
            .map(Self)
    }

    /// A new random (version 4) UUID, from a fast thread-local generator: a
    /// request id needs to be unique, not secret.
    pub fn generate() -> Self {
        let mut b = fastrand::u128(..).to_be_bytes();
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let mut text = *b"00000000-0000-0000-0000-000000000000";
        for (range, bytes) in [
            (0..8, 0..4),
            (9..13, 4..6),
            (14..18, 6..8),
            (19..23, 8..10),
            (24..36, 10..16),
        ] {
            crate::trace::write_hex(&mut text[range], &b[bytes]);
        }
        // Only ASCII was written, and 36 characters always fit.
        Self(
            std::str::from_utf8(&text)
                .ok()
                .and_then(|t| ArrayString::from(t).ok())
                .unwrap_or_default(),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RequestId").field(&self.as_str()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_is_kept_when_safe_and_replaced_otherwise() {
        assert_eq!(RequestId::from_header(Some(b"abc-123")).as_str(), "abc-123");
        let long = [b'a'; 128];
        assert_eq!(RequestId::from_header(Some(&long)).as_str().len(), 128);
        for bad in [&b""[..], b"a b", b"x\ny", "é".as_bytes(), &[b'a'; 129]] {
            let id = RequestId::from_header(Some(bad));
            assert_ne!(id.as_str().as_bytes(), bad);
            assert_eq!(id.as_str().len(), 36, "a generated UUID");
        }
        assert_ne!(RequestId::generate(), RequestId::generate());
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = RequestId::generate();
        let parsed = uuid::Uuid::parse_str(id.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(id.as_str(), parsed.hyphenated().to_string());
    }
}
