//! Trace context: the W3C `traceparent` a request may carry, and the ids of a turn's spans.
//!
//! A turn is one trace, or joins the caller's trace when its request carried a `traceparent`.
//! Span ids are derived from the ids of what the spans describe (the turn, a model call, a tool
//! call of the turn), so every replica names the same span the same way and a child can point to
//! its parent before the parent is written.

use serde::{Deserialize, Serialize};

/// A parsed W3C `traceparent` (`00-<trace id>-<parent span id>-<flags>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero: the caller's span.
    pub parent_span_id: String,
    /// The caller's `sampled` flag.
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header value; `None` for anything malformed (the request then
    /// starts a trace of its own, as the W3C recommendation asks).
    pub fn parse(header: &str) -> Option<TraceParent> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; a later version may add more after them.
        if !is_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if !is_hex(trace_id, 32) || !is_hex(parent, 16) || !is_hex(flags, 2) {
            return None;
        }
        if trace_id.bytes().all(|b| b == b'0') || parent.bytes().all(|b| b == b'0') {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceParent { trace_id: trace_id.to_owned(), parent_span_id: parent.to_owned(), sampled: flags & 1 == 1 })
    }
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The trace id of a turn that did not join a caller's trace (32 hex digits).
pub fn trace_id_of_turn(turn_id: &str) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let hash = turn_id.bytes().fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    format!("{:032x}", hash.max(1))
}

/// The span id of what `key` names (16 hex digits): a turn id, a model call id, or
/// [`tool_span_key`].
pub fn span_id(key: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = key.bytes().fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    format!("{:016x}", hash.max(1))
}

/// The key of a tool call's span: providers' call ids are unique only within a turn.
pub fn tool_span_key(turn_id: &str, call_id: &str) -> String {
    format!("{turn_id}/{call_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parses_the_w3c_examples_and_refuses_the_rest() {
        let parsed = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(parsed.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parsed.parent_span_id, "00f067aa0ba902b7");
        assert!(parsed.sampled);
        assert!(!TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap().sampled);
        // A later version may append fields; version 00 may not.
        assert!(TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").is_some());
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_are_stable_hex_of_the_right_length() {
        assert_eq!(trace_id_of_turn("trn_1"), trace_id_of_turn("trn_1"));
        assert_ne!(trace_id_of_turn("trn_1"), trace_id_of_turn("trn_2"));
        assert_eq!(trace_id_of_turn("trn_1").len(), 32);
        assert_eq!(span_id("mcl_1").len(), 16);
        assert_ne!(span_id(&tool_span_key("trn_1", "call_1")), span_id(&tool_span_key("trn_2", "call_1")));
    }
}
