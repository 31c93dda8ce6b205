//! Reading and building the JavaScript objects messages are made of, field by field.

use super::CodecError;
use super::js::property_key;
use super::msgpack::{self, MsgValue};

/// Parses a payload that is either JSON (first byte `{`, as the Redis adapter checks) or
/// MessagePack.
pub(crate) fn json_or_msgpack(msg: &[u8]) -> Result<MsgValue, CodecError> {
    match msg.first() {
        None => Err(CodecError::Truncated),
        Some(b'{') => json(msg),
        Some(_) => msgpack::decode(msg),
    }
}

/// Parses JSON text into the value `JSON.parse` would give, nested at most
/// [`msgpack::MAX_DEPTH`] deep: the bound MessagePack messages have, so a request or
/// entry read in one form and re-published in the other (Node sends server-side emits
/// as JSON, broadcasts as MessagePack) reads back. `serde_json`'s own limit (128) would
/// refuse what a MessagePack peer may send; the nesting is counted before parsing, so
/// the parser's recursion stays bounded without it.
pub(crate) fn json(text: &[u8]) -> Result<MsgValue, CodecError> {
    if json_depth(text) > msgpack::MAX_DEPTH {
        return Err(CodecError::Json);
    }
    let mut parser = serde_json::Deserializer::from_slice(text);
    parser.disable_recursion_limit();
    let value = serde::Deserialize::deserialize(&mut parser).map_err(|_| CodecError::Json)?;
    parser.end().map_err(|_| CodecError::Json)?;
    Ok(msgpack::from_json(&value, &[]))
}

/// The deepest nesting of arrays and objects in JSON text, brackets inside strings not
/// counted. Malformed text gets some number; the parser refuses it afterwards.
fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in text {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A JavaScript object being read: fields are looked up by name, the last occurrence
/// winning, and `null` counts as absent for optional fields.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    entries: &'a [(MsgValue, MsgValue)],
}

impl<'a> Obj<'a> {
    /// `value` as an object; `what` names it in the error.
    pub(crate) fn new(value: &'a MsgValue, what: &'static str) -> Result<Self, CodecError> {
        match value {
            MsgValue::Map(entries) => Ok(Obj { entries }),
            _ => Err(CodecError::Field(what)),
        }
    }

    /// The field, `None` when absent or `null`.
    pub(crate) fn get(&self, key: &str) -> Option<&'a MsgValue> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
            .filter(|v| **v != MsgValue::Nil)
    }

    pub(crate) fn str(&self, key: &'static str) -> Result<String, CodecError> {
        self.opt_str(key)?.ok_or(CodecError::Field(key))
    }

    pub(crate) fn opt_str(&self, key: &'static str) -> Result<Option<String>, CodecError> {
        match self.get(key) {
            None => Ok(None),
            Some(MsgValue::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(CodecError::Field(key)),
        }
    }

    /// A room or socket id: a string, or a number Node turned into one.
    pub(crate) fn room(&self, key: &'static str) -> Result<String, CodecError> {
        self.get(key).and_then(room).ok_or(CodecError::Field(key))
    }

    /// A list of rooms; absent means empty (`new Set(undefined)`).
    pub(crate) fn rooms(&self, key: &'static str) -> Result<Vec<String>, CodecError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(MsgValue::Array(items)) => items
                .iter()
                .map(|item| room(item).ok_or(CodecError::Field(key)))
                .collect(),
            Some(_) => Err(CodecError::Field(key)),
        }
    }

    /// JavaScript truthiness of a field that should be a boolean.
    pub(crate) fn truthy(&self, key: &str) -> bool {
        match self.get(key) {
            None | Some(MsgValue::Bool(false)) => false,
            Some(MsgValue::Int(0)) => false,
            Some(MsgValue::F64(f)) => *f != 0.0 && !f.is_nan(),
            Some(MsgValue::Str(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }

    pub(crate) fn u64(&self, key: &'static str) -> Result<u64, CodecError> {
        self.get(key)
            .and_then(MsgValue::as_u64)
            .ok_or(CodecError::Field(key))
    }

    /// The numeric `type` field.
    pub(crate) fn kind(&self) -> Result<i64, CodecError> {
        match self.get("type") {
            Some(MsgValue::Int(n)) => Ok(i64::try_from(*n).unwrap_or(i64::MAX)),
            Some(MsgValue::F64(f)) if f.fract() == 0.0 => Ok(*f as i64),
            _ => Err(CodecError::Field("type")),
        }
    }
}

fn room(value: &MsgValue) -> Option<String> {
    match value {
        MsgValue::Str(s) => Some(s.clone()),
        MsgValue::Int(_) | MsgValue::F64(_) => Some(property_key(value)),
        _ => None,
    }
}

/// Moves the field `key` (the last occurrence) out of the object `value`; `None` when
/// absent or `null`. Used for payloads, which can be large.
pub(crate) fn take(value: &mut MsgValue, key: &str) -> Option<MsgValue> {
    take_raw(value, key).filter(|v| *v != MsgValue::Nil)
}

/// Like [`take`], but a present `null` is `Some(Nil)`: only absence (`undefined`) is
/// `None`.
pub(crate) fn take_raw(value: &mut MsgValue, key: &str) -> Option<MsgValue> {
    let MsgValue::Map(entries) = value else {
        return None;
    };
    let (_, v) = entries
        .iter_mut()
        .rev()
        .find(|(k, _)| k.as_str() == Some(key))?;
    Some(std::mem::take(v))
}

/// Builds an object field by field, in the order Node's object literals have.
#[derive(Default)]
pub(crate) struct ObjBuilder(Vec<(MsgValue, MsgValue)>);

impl ObjBuilder {
    pub(crate) fn new() -> Self {
        ObjBuilder::default()
    }

    pub(crate) fn field(mut self, key: &str, value: impl Into<MsgValue>) -> Self {
        self.0.push((MsgValue::from(key), value.into()));
        self
    }

    pub(crate) fn opt_field(self, key: &str, value: Option<impl Into<MsgValue>>) -> Self {
        match value {
            Some(value) => self.field(key, value),
            None => self,
        }
    }

    pub(crate) fn build(self) -> MsgValue {
        MsgValue::Map(self.0)
    }
}

/// A list of strings as an array value.
pub(crate) fn strings(items: &[String]) -> MsgValue {
    MsgValue::Array(items.iter().map(|s| MsgValue::from(s.as_str())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_or_msgpack_dispatches_on_the_first_byte() {
        assert_eq!(json_or_msgpack(b"{}"), Ok(MsgValue::Map(vec![])));
        assert_eq!(json_or_msgpack(&[0x80]), Ok(MsgValue::Map(vec![])));
        assert_eq!(json_or_msgpack(b"{"), Err(CodecError::Json));
        assert_eq!(json_or_msgpack(b""), Err(CodecError::Truncated));
    }

    /// `depth` arrays nested, the innermost holding a string with brackets in it.
    fn nested_json(depth: usize) -> String {
        format!("{}\"[{{\\\"]\"{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn json_nests_as_deep_as_msgpack_and_no_deeper() {
        let deepest = nested_json(msgpack::MAX_DEPTH);
        let value = json(deepest.as_bytes()).expect("MAX_DEPTH levels read");
        // The same value as MessagePack reads too, so either form round-trips.
        assert_eq!(
            msgpack::decode(&msgpack::encode_notepack(&value)),
            Ok(value)
        );
        let deeper = nested_json(msgpack::MAX_DEPTH + 1);
        assert_eq!(json(deeper.as_bytes()), Err(CodecError::Json));
        // Brackets in strings are not nesting; trailing text is still refused.
        assert_eq!(json_depth(br#"["[[[{\"]", {"a": "}}}"}]"#), 2);
        assert_eq!(json(b"[] []"), Err(CodecError::Json));
    }

    #[test]
    fn fields() {
        let value = ObjBuilder::new()
            .field(
                "rooms",
                MsgValue::Array(vec!["a".into(), MsgValue::Int(12), MsgValue::F64(1.5)]),
            )
            .field("n", MsgValue::Nil)
            .field("t", MsgValue::F64(5.0))
            .build();
        let obj = Obj::new(&value, "x").unwrap();
        assert_eq!(obj.rooms("rooms").unwrap(), ["a", "12", "1.5"]);
        assert_eq!(obj.rooms("missing").unwrap(), Vec::<String>::new());
        assert_eq!(obj.opt_str("n"), Ok(None));
        assert_eq!(obj.kind(), Err(CodecError::Field("type")));
        assert_eq!(obj.u64("t"), Ok(5));
        assert_eq!(obj.str("t"), Err(CodecError::Field("t")));
        assert!(!obj.truthy("n"));
    }
}
