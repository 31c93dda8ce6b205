//! Shared by the bodies: how one fuzz input is cut into several messages, and value
//! comparisons that allow the last bits of a float to differ.
//!
//! `serde_json` is built without `float_roundtrip`, so parsing a float it printed may
//! land a few units in the last place away; a re-encoding is only required to read
//! back to the same value within that tolerance.

use serde::Deserialize as _;
use serde_json::Value;
use switchboard_protocol::cluster::msgpack::{self, MsgValue};

/// Splits fuzz input into a selector byte and the rest (`0` and nothing when empty).
pub(crate) fn select(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((first, rest)) => (*first, rest),
        None => (0, &[]),
    }
}

/// Whether two floats are equal up to a few units in the last place (NaN equals NaN).
pub(crate) fn float_close(a: f64, b: f64) -> bool {
    if a == b || (a.is_nan() && b.is_nan()) {
        return true;
    }
    let scale = a.abs().max(b.abs());
    (a - b).abs() <= scale * f64::EPSILON * 8.0
}

/// JSON equality with [`float_close`] numbers; objects compare key by key.
pub(crate) fn json_close(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => float_close(x, y),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_close(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_close(v, w)))
        }
        _ => a == b,
    }
}

/// [`MsgValue`] equality with [`float_close`] numbers, an integer equal to an integral
/// float (JavaScript has one number type).
pub(crate) fn msg_close(a: &MsgValue, b: &MsgValue) -> bool {
    match (a, b) {
        (MsgValue::F64(x), MsgValue::F64(y)) => float_close(*x, *y),
        (MsgValue::Int(i), MsgValue::F64(f)) | (MsgValue::F64(f), MsgValue::Int(i)) => {
            float_close(*i as f64, *f)
        }
        (MsgValue::Array(x), MsgValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| msg_close(x, y))
        }
        (MsgValue::Map(x), MsgValue::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((k, v), (l, w))| msg_close(k, l) && msg_close(v, w))
        }
        _ => a == b,
    }
}

/// Reads a cluster payload the way the adapters pick its format: JSON when it starts
/// with `{`, MessagePack otherwise. For comparing two encodings of one message.
pub(crate) fn wire_value(bytes: &[u8]) -> MsgValue {
    if bytes.first() == Some(&b'{') {
        // Our encodings nest at most `msgpack::MAX_DEPTH` deep, past `serde_json`'s 128.
        let mut parser = serde_json::Deserializer::from_slice(bytes);
        parser.disable_recursion_limit();
        let json = Value::deserialize(&mut parser).expect("our JSON encoding parses");
        msgpack::from_json(&json, &[])
    } else {
        msgpack::decode(bytes).expect("our MessagePack encoding decodes")
    }
}

/// Asserts that two encodings of one message carry the same value (byte equality, or
/// [`msg_close`] values when a float moved in its last bits).
pub(crate) fn assert_same_wire(first: &[u8], second: &[u8], what: &str) {
    if first != second {
        assert!(
            msg_close(&wire_value(first), &wire_value(second)),
            "{what}: re-encoding changed the message\n first: {first:02x?}\nsecond: {second:02x?}"
        );
    }
}

/// Whether some object in `value` has a `_placeholder` key. Such user data cannot be
/// told from a binary placeholder once binary is present (as in Node's
/// `socket.io-parser`), so a re-encoding may legitimately turn it into an attachment.
pub(crate) fn has_placeholder_lookalike(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(has_placeholder_lookalike),
        Value::Object(map) => {
            map.contains_key("_placeholder") || map.values().any(has_placeholder_lookalike)
        }
        _ => false,
    }
}
