//! Reading and building the JavaScript objects messages are made of, field by field.

use std::collections::HashMap;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::CodecError;
use super::js::{js_property_order, property_key};
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
///
/// The parser builds the [`MsgValue`] itself ([`JsonSeed`]), the value
/// [`msgpack::from_json`] makes of the `serde_json::Value` of the same text, without
/// building that `Value` first: every stream entry and JSON pub/sub message is read
/// here.
pub(crate) fn json(text: &[u8]) -> Result<MsgValue, CodecError> {
    if json_depth(text) > msgpack::MAX_DEPTH {
        return Err(CodecError::Json);
    }
    let mut parser = serde_json::Deserializer::from_slice(text);
    parser.disable_recursion_limit();
    let value =
        DeserializeSeed::deserialize(JsonSeed, &mut parser).map_err(|_| CodecError::Json)?;
    parser.end().map_err(|_| CodecError::Json)?;
    Ok(value)
}

/// Reads one JSON value as [`msgpack::from_json`] converts a `serde_json::Value` (with
/// `preserve_order`, as this workspace builds it): integers as [`MsgValue::Int`], other
/// numbers as [`MsgValue::F64`], an object's keys once each at the place of their first
/// occurrence with the value of their last, then in JavaScript's property order.
/// Placeholders stay objects, as `from_json` leaves them without attachments.
///
/// One difference, in `JSON.parse`'s favour: an object whose first key is
/// `$serde_json::private::RawValue` is an object here, where `serde_json`'s own
/// `Value` (with the `raw_value` feature this crate enables) took its value for JSON
/// text and parsed that instead.
#[derive(Clone, Copy)]
struct JsonSeed;

/// Keys an object has before its duplicates are looked up in an index rather than by
/// a scan: past this, a scan per key would make a large object quadratic.
const OBJECT_SCAN_KEYS: usize = 16;

impl<'de> DeserializeSeed<'de> for JsonSeed {
    type Value = MsgValue;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<MsgValue, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonSeed {
    type Value = MsgValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<MsgValue, E> {
        Ok(MsgValue::Nil)
    }

    fn visit_bool<E>(self, b: bool) -> Result<MsgValue, E> {
        Ok(MsgValue::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<MsgValue, E> {
        Ok(MsgValue::Int(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<MsgValue, E> {
        Ok(MsgValue::Int(n.into()))
    }

    /// Non-finite numbers are `null`, as `serde_json::Number::from_f64` makes them.
    fn visit_f64<E>(self, f: f64) -> Result<MsgValue, E> {
        Ok(if f.is_finite() {
            MsgValue::F64(f)
        } else {
            MsgValue::Nil
        })
    }

    fn visit_str<E>(self, s: &str) -> Result<MsgValue, E> {
        Ok(MsgValue::Str(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<MsgValue, E> {
        Ok(MsgValue::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MsgValue, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(MsgValue::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MsgValue, A::Error> {
        let mut entries: Vec<(String, MsgValue)> = Vec::new();
        // Where each key is, once the object is too large to scan.
        let mut index: Option<HashMap<String, usize>> = None;
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            let first = match &index {
                Some(index) => index.get(&key).copied(),
                None => entries.iter().position(|(k, _)| *k == key),
            };
            if let Some(slot) = first.and_then(|i| entries.get_mut(i)) {
                slot.1 = value;
                continue;
            }
            if let Some(index) = &mut index {
                index.insert(key.clone(), entries.len());
            }
            entries.push((key, value));
            if index.is_none() && entries.len() > OBJECT_SCAN_KEYS {
                let keys = entries.iter().enumerate().map(|(i, (k, _))| (k.clone(), i));
                index = Some(keys.collect());
            }
        }
        js_property_order(&mut entries);
        Ok(MsgValue::Map(
            entries
                .into_iter()
                .map(|(k, v)| (MsgValue::Str(k), v))
                .collect(),
        ))
    }
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

    /// The value the parser builds is the one `from_json` makes of `serde_json`'s
    /// `Value` of the same text: numbers, duplicate keys (few, and past the scan),
    /// array-index keys, placeholders, escapes.
    #[test]
    fn json_reads_as_from_json_of_a_serde_value() {
        let many_keys: String = (0..40)
            .map(|i| format!("\"k{}\":{i},", i % 25))
            .collect::<String>();
        let texts = [
            r##"{"packet":{"type":2,"data":["ev","#123#xxx"]},"opts":{"rooms":["r"],"except":[],"flags":{}}}"##.to_owned(),
            r#"{"a":1,"b":2,"a":3,"10":4,"2":5,"b":{"c":[null,true,false]}}"#.to_owned(),
            r#"[0,-0,1.0,-1.5,1e300,18446744073709551615,-9223372036854775808,12345678901234567890123]"#.to_owned(),
            r#"{"_placeholder":true,"num":0}"#.to_owned(),
            r#"["\u00e9\ud83d\ude00","a\"b\\c\n",""]"#.to_owned(),
            format!("{{{many_keys}\"k3\":\"last\",\"7\":0}}"),
            "[[[[{}]]]]".to_owned(),
        ];
        for text in texts {
            let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(
                json(text.as_bytes()),
                Ok(msgpack::from_json(&value, &[])),
                "{text}"
            );
        }
        assert_eq!(
            json(br#"{"$serde_json::private::RawValue":"[1]"}"#),
            Ok(ObjBuilder::new()
                .field("$serde_json::private::RawValue", "[1]")
                .build()),
            "an object, as JSON.parse gives"
        );
        assert_eq!(json(br#"{"a":1,}"#), Err(CodecError::Json));
        assert_eq!(json(b"1e400"), Err(CodecError::Json), "out of range");
        assert_eq!(json(b"\"\xff\""), Err(CodecError::Json), "not UTF-8");
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
