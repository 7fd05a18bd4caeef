//! Percent-encoding, one way for every crate: path segments and query values are encoded with
//! everything but RFC 3986's unreserved characters escaped; header values are decoded strictly.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but `A–Z a–z 0–9 - . _ ~` is escaped (safe in a path segment and a query value).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Decodes a percent-encoded value; `None` when an escape is malformed or the bytes are not UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let malformed = text
        .match_indices('%')
        .any(|(i, _)| !text.get(i + 1..i + 3).is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit())));
    if malformed {
        return None;
    }
    percent_decode_str(text).decode_utf8().ok().map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_keep_unreserved_characters_only() {
        assert_eq!(encode("thr_01abc"), "thr_01abc");
        assert_eq!(encode("a/b c?é~"), "a%2Fb%20c%3F%C3%A9~");
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(decode("Bearer%20abc").as_deref(), Some("Bearer abc"));
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("50%"), None);
        assert_eq!(decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(decode("%FF"), None);
    }
}
