//! The Engine.IO / Socket.IO frame parser: any text a socket sends is refused or read, never a
//! panic; an event read back from the server's own encoding is the same event.
#![no_main]

use agentry_core::socketio::{self, EngineFrame, Incoming};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|text: &str| {
    let Ok(EngineFrame::Message(Incoming::Event { namespace, name, data, ack: _ })) = socketio::parse(text) else {
        return;
    };
    if data.is_null() {
        // An absent argument and an explicit `null` encode alike; nothing to compare.
        return;
    }
    let encoded = socketio::event(&namespace, &name, &data);
    match socketio::parse(&encoded) {
        Ok(EngineFrame::Message(Incoming::Event { namespace: n2, name: name2, data: d2, ack: None })) => {
            assert_eq!((n2, name2), (namespace, name), "{encoded}");
            assert!(same_json(&d2, &data), "{encoded} reads back as {d2}");
        }
        other => panic!("the server's own frame {encoded:?} reads back as {other:?}"),
    }
});

/// Equal JSON, numbers compared as the values they denote: serde_json reads a long decimal to the
/// nearest double only approximately (without its `float_roundtrip` feature), so a float written
/// back may differ in its last bits.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(f64::NAN), y.as_f64().unwrap_or(f64::NAN));
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}
