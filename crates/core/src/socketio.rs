//! Engine.IO v4 / Socket.IO v5 text framing, websocket transport only (the server's socket
//! endpoint reads and writes frames with it; pure code, so it is fuzzed on its own).
//!
//! Engine.IO packets are one text frame each: `0` open, `1` close, `2` ping, `3` pong, `4`
//! message. A message carries a Socket.IO packet: type digit, optional `/namespace,`, optional
//! ack id digits, then JSON: `0/agent,{auth}` connect, `1/agent,` disconnect, `2/agent,["event",…]`
//! event, `3` ack, `4` connect error. Binary packets (`5`, `6`) are refused: neither official
//! client sends them.

use serde_json::Value;

/// A Socket.IO packet received from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// Namespace connect with its optional auth payload.
    Connect {
        /// The namespace, `/` when the packet names none.
        namespace: String,
        /// The client's `auth` object, if it sent one.
        auth: Option<Value>,
    },
    /// Namespace disconnect.
    Disconnect {
        /// The namespace left.
        namespace: String,
    },
    /// An event, with an ack id if the client asked for one.
    Event {
        /// The namespace it was sent on.
        namespace: String,
        /// The event name (the array's first item).
        name: String,
        /// The first argument, `Null` when absent.
        data: Value,
        /// The acknowledgement id, if one was asked.
        ack: Option<u64>,
    },
    /// An acknowledgement from the client (ignored).
    Ack,
}

/// An Engine.IO packet received from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineFrame {
    /// The client closes.
    Close,
    /// A ping from the client (answered with a pong).
    Ping,
    /// The answer to our ping.
    Pong,
    /// A Socket.IO packet.
    Message(Incoming),
    /// Upgrade/noop packets of other transports.
    Ignored,
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not a packet this server understands.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The JSON payload does not parse.
    #[error("malformed JSON payload: {0}")]
    Json(String),
    /// Binary attachments are not supported.
    #[error("binary packets are not supported")]
    Binary,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<EngineFrame, FrameError> {
    let mut chars = text.chars();
    match chars.next() {
        Some('1') => Ok(EngineFrame::Close),
        Some('2') => Ok(EngineFrame::Ping),
        Some('3') => Ok(EngineFrame::Pong),
        Some('4') => parse_socket_packet(chars.as_str()).map(EngineFrame::Message),
        Some('5' | '6') => Ok(EngineFrame::Ignored),
        _ => Err(FrameError::Malformed("unknown Engine.IO packet type")),
    }
}

fn parse_socket_packet(packet: &str) -> Result<Incoming, FrameError> {
    let kind = packet.chars().next().ok_or(FrameError::Malformed("empty Socket.IO packet"))?;
    let mut rest = &packet[kind.len_utf8()..];
    let namespace = if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        let namespace = rest[..end].to_owned();
        rest = rest.get(end + 1..).unwrap_or("");
        namespace
    } else {
        "/".to_owned()
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let ack = if digits > 0 { rest[..digits].parse::<u64>().ok() } else { None };
    let payload = &rest[digits..];
    let json = || -> Result<Option<Value>, FrameError> {
        if payload.trim().is_empty() {
            Ok(None)
        } else {
            serde_json::from_str(payload).map(Some).map_err(|e| FrameError::Json(e.to_string()))
        }
    };
    match kind {
        '0' => Ok(Incoming::Connect { namespace, auth: json()? }),
        '1' => Ok(Incoming::Disconnect { namespace }),
        '2' => {
            let Some(Value::Array(mut items)) = json()? else {
                return Err(FrameError::Malformed("an event must be a JSON array"));
            };
            if items.is_empty() {
                return Err(FrameError::Malformed("an event needs a name"));
            }
            let Value::String(name) = items.remove(0) else {
                return Err(FrameError::Malformed("an event name must be a string"));
            };
            let data = if items.is_empty() { Value::Null } else { items.remove(0) };
            Ok(Incoming::Event { namespace, name, data, ack })
        }
        '3' => Ok(Incoming::Ack),
        '5' | '6' => Err(FrameError::Binary),
        _ => Err(FrameError::Malformed("unknown Socket.IO packet type")),
    }
}

/// The Engine.IO open packet.
pub fn open(sid: &str, ping_interval_ms: u128, ping_timeout_ms: u128, max_payload: usize) -> String {
    let body = serde_json::json!({
        "sid": sid,
        "upgrades": [],
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    });
    format!("0{body}")
}

/// Namespace connect accepted. `pid` is the private session id a socket.io-client ≥ 4.6 keeps
/// and presents again to recover the session after a reconnection.
pub fn connected(namespace: &str, sid: &str, pid: &str) -> String {
    format!("40{namespace},{}", serde_json::json!({ "sid": sid, "pid": pid }))
}

/// Namespace connect refused, with `data` the clients inspect (`status`, `code`).
pub fn connect_error(namespace: &str, message: &str, data: Value) -> String {
    format!("44{namespace},{}", serde_json::json!({ "message": message, "data": data }))
}

/// An event to the client. Written directly (not through a `json!` array) so the event is not
/// copied: this is the per-token hot path.
pub fn event(namespace: &str, name: &str, data: &Value) -> String {
    let mut out = String::with_capacity(namespace.len() + name.len() + 128);
    out.push_str("42");
    out.push_str(namespace);
    out.push_str(",[");
    out.push_str(&Value::from(name).to_string());
    out.push(',');
    out.push_str(&data.to_string());
    out.push(']');
    out
}

/// An event whose last argument is its recovery offset: socket.io-client keeps the last one it
/// received and presents it when it reconnects. Listeners that take one argument ignore it.
pub fn event_with_offset(namespace: &str, name: &str, data: &Value, offset: &str) -> String {
    let mut out = event(namespace, name, data);
    out.pop();
    out.push(',');
    out.push_str(&Value::from(offset).to_string());
    out.push(']');
    out
}

/// An acknowledgement of a client event that asked for one.
pub fn ack(namespace: &str, id: u64, data: &Value) -> String {
    format!("43{namespace},{id}{}", serde_json::json!([data]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_packets_both_clients_send() {
        assert_eq!(
            parse("40/agent,").unwrap(),
            EngineFrame::Message(Incoming::Connect { namespace: "/agent".into(), auth: None })
        );
        assert_eq!(
            parse(r#"40/agent,{"token":"t"}"#).unwrap(),
            EngineFrame::Message(Incoming::Connect { namespace: "/agent".into(), auth: Some(json!({"token": "t"})) })
        );
        assert_eq!(
            parse(r#"42/agent,["message",{"message":"hi"}]"#).unwrap(),
            EngineFrame::Message(Incoming::Event {
                namespace: "/agent".into(),
                name: "message".into(),
                data: json!({"message": "hi"}),
                ack: None
            })
        );
        assert_eq!(
            parse(r#"42/agent,7["stop"]"#).unwrap(),
            EngineFrame::Message(Incoming::Event {
                namespace: "/agent".into(),
                name: "stop".into(),
                data: serde_json::Value::Null,
                ack: Some(7)
            })
        );
        assert_eq!(parse("40").unwrap(), EngineFrame::Message(Incoming::Connect { namespace: "/".into(), auth: None }));
        assert_eq!(
            parse("41/agent,").unwrap(),
            EngineFrame::Message(Incoming::Disconnect { namespace: "/agent".into() })
        );
        assert_eq!(parse("3").unwrap(), EngineFrame::Pong);
        assert_eq!(parse("2").unwrap(), EngineFrame::Ping);
        assert_eq!(parse("1").unwrap(), EngineFrame::Close);
    }

    #[test]
    fn refuses_malformed_and_binary_packets() {
        assert!(parse("").is_err());
        assert!(parse("9").is_err());
        assert!(parse("4").is_err());
        assert!(matches!(parse(r#"42/agent,{"not":"array"}"#), Err(FrameError::Malformed(_))));
        assert!(matches!(parse("42/agent,[]"), Err(FrameError::Malformed(_))));
        assert!(matches!(parse("42/agent,[1]"), Err(FrameError::Malformed(_))));
        assert!(matches!(parse("42/agent,[\"x\""), Err(FrameError::Json(_))));
        assert_eq!(parse(r#"451-/agent,["x",{"_placeholder":true,"num":0}]"#), Err(FrameError::Binary));
    }

    #[test]
    fn encodes_what_the_clients_expect() {
        assert_eq!(connected("/agent", "abc", "p1"), r#"40/agent,{"pid":"p1","sid":"abc"}"#);
        assert_eq!(
            event_with_offset("/agent", "agent_event", &json!({"seq": 1}), "trn_1:1"),
            r#"42/agent,["agent_event",{"seq":1},"trn_1:1"]"#
        );
        assert_eq!(
            connect_error("/agent", "unauthorized", json!({"status": 401, "code": "unauthorized"})),
            r#"44/agent,{"data":{"code":"unauthorized","status":401},"message":"unauthorized"}"#
        );
        assert_eq!(
            event("/agent", "agent_event", &json!({"type": "token"})),
            r#"42/agent,["agent_event",{"type":"token"}]"#
        );
        assert_eq!(ack("/agent", 3, &json!({"ok": true})), r#"43/agent,3[{"ok":true}]"#);
        assert!(open("s", 25000, 600000, 1000).starts_with(r#"0{"maxPayload":1000,"pingInterval":25000"#));
    }
}
