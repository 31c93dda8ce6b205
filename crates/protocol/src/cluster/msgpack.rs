//! MessagePack values as the Node adapters exchange them: the value model, a bounded
//! decoder, and encoders that reproduce `notepack.io` and `@msgpack/msgpack` byte for
//! byte.
//!
//! The two Node encoders differ only in numbers; see [`encode_notepack`] and
//! [`encode_msgpack`]. One decoder reads both (and `notepack.io`'s legacy extensions).

mod decode;
mod encode;
mod json;

use bytes::Bytes;

pub use decode::{decode, peek_str};
pub(crate) use encode::keeps_float;
pub use encode::{encode_msgpack, encode_notepack};
pub use json::{from_json, to_json};

/// Deepest nesting of arrays and maps [`decode`] accepts: `serde_json`'s recursion limit
/// (128), which bounds the client JSON this server relays, plus headroom for the adapter
/// envelope around it (message, packet, arguments: at most 4 levels). Anything this
/// server accepted from a client therefore decodes again; deeper input only comes from
/// a misbehaving peer, and the bound keeps the recursive decoder's stack small.
pub const MAX_DEPTH: usize = 160;

/// A MessagePack value. Maps keep their wire order (and duplicates), so a decoded value
/// re-encodes to the same bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MsgValue {
    /// `nil`; also `notepack.io`'s legacy `undefined` (`d4 00 00`).
    #[default]
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// Any integer format. The range of MessagePack integers is −2⁶³ … 2⁶⁴−1; values
    /// outside it are encoded as floats.
    Int(i128),
    /// `float 64` (and `float 32`, widened).
    F64(f64),
    /// A string. Invalid UTF-8 is replaced by U+FFFD, as Node's decoders do.
    Str(String),
    /// Binary data (`bin 8/16/32`): Node `Buffer`s. `notepack.io`'s legacy
    /// `ArrayBuffer` extension (type 0 in `ext 8/16/32`) decodes to this too.
    Bin(Bytes),
    /// An array.
    Array(Vec<MsgValue>),
    /// A map, in wire order. Node only ever writes string keys.
    Map(Vec<(MsgValue, MsgValue)>),
    /// Any other extension (e.g. type −1, timestamps from JavaScript `Date`s).
    Ext(i8, Bytes),
}

impl MsgValue {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MsgValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value under string key `key` of a map: the last one, as a JavaScript object
    /// keeps the last assignment.
    pub fn get(&self, key: &str) -> Option<&MsgValue> {
        match self {
            MsgValue::Map(entries) => entries
                .iter()
                .rev()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The number as a non-negative integer, if it is one (integral floats included, as
    /// JavaScript has a single number type).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MsgValue::Int(n) => u64::try_from(n).ok(),
            MsgValue::F64(f)
                if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) =>
            {
                // Integral and in range: the cast is exact.
                Some(f as u64)
            }
            _ => None,
        }
    }

    /// Whether binary data occurs anywhere inside (the streams adapter's `hasBinary`).
    pub fn has_binary(&self) -> bool {
        match self {
            MsgValue::Bin(_) => true,
            MsgValue::Array(items) => items.iter().any(MsgValue::has_binary),
            MsgValue::Map(entries) => entries.iter().any(|(_, v)| v.has_binary()),
            _ => false,
        }
    }
}

impl From<&str> for MsgValue {
    fn from(s: &str) -> Self {
        MsgValue::Str(s.to_owned())
    }
}

impl From<String> for MsgValue {
    fn from(s: String) -> Self {
        MsgValue::Str(s)
    }
}

impl From<bool> for MsgValue {
    fn from(b: bool) -> Self {
        MsgValue::Bool(b)
    }
}

impl From<i64> for MsgValue {
    fn from(n: i64) -> Self {
        MsgValue::Int(n.into())
    }
}

impl From<u64> for MsgValue {
    fn from(n: u64) -> Self {
        MsgValue::Int(n.into())
    }
}

impl From<f64> for MsgValue {
    fn from(f: f64) -> Self {
        MsgValue::F64(f)
    }
}

impl From<Bytes> for MsgValue {
    fn from(b: Bytes) -> Self {
        MsgValue::Bin(b)
    }
}

impl From<Vec<MsgValue>> for MsgValue {
    fn from(items: Vec<MsgValue>) -> Self {
        MsgValue::Array(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, MsgValue)>) -> MsgValue {
        MsgValue::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    #[test]
    fn helpers() {
        let v = map(vec![
            ("a", MsgValue::Int(1)),
            ("a", MsgValue::F64(2.0)),
            ("b", MsgValue::Array(vec![MsgValue::Bin(Bytes::new())])),
        ]);
        assert_eq!(v.get("a").and_then(MsgValue::as_u64), Some(2));
        assert_eq!(MsgValue::F64(1.5).as_u64(), None);
        assert_eq!(MsgValue::Int(-1).as_u64(), None);
        assert!(v.has_binary());
        assert!(!MsgValue::from("x").has_binary());
    }

    /// A whole float whose integer text would be much longer crosses Redis as a float
    /// and stays one, in both flavours, so it is written to other nodes' clients as
    /// short as on its own node; one whose integer is short goes as Node's encoders
    /// send it, an integer.
    #[test]
    fn whole_floats_cross_as_short_as_they_came() -> Result<(), crate::cluster::CodecError> {
        let text = r#"[1e15,-9e15,1e19,2.0,1000.0,1.5,7]"#;
        let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        for encode in [encode_notepack, encode_msgpack] {
            let bytes = encode(&from_json(&value, &[]));
            let (back, _) = to_json(decode(&bytes)?);
            let mut out = Vec::new();
            crate::json::write(&mut out, &back);
            assert_eq!(
                String::from_utf8_lossy(&out),
                "[1e15,-9e15,1e19,2,1000,1.5,7]"
            );
        }
        // As Node writes them: 2.0 as the integer 2, 1e15 as a float64.
        let bytes = encode_notepack(&MsgValue::F64(2.0));
        assert_eq!(bytes, [2]);
        let bytes = encode_notepack(&MsgValue::F64(1e15));
        assert_eq!(bytes.first(), Some(&0xcb));
        Ok(())
    }
}
