//! Conversions between [`MsgValue`] and the JSON-with-placeholders form the Socket.IO
//! codec uses for binary data (see [`crate::socketio::placeholder`]).

use bytes::Bytes;
use serde_json::{Map, Number, Value};

use super::MsgValue;
use crate::cluster::js::{js_property_order, property_key};
use crate::socketio::placeholder;

/// 2⁵³: integral floats below this print as integers, as in JavaScript.
const TWO_POW_53: f64 = 9_007_199_254_740_992.0;

/// The value Node would hold for `value` once its placeholders are replaced by
/// `attachments` (as `socket.io-parser` reconstructs a packet).
///
/// A placeholder is `{"_placeholder":true,"num":i}` with `i < attachments.len()`; any
/// other object stays a map. JSON integers become [`MsgValue::Int`], other numbers
/// [`MsgValue::F64`]. Object keys are put in JavaScript's property order (array-index
/// keys such as `"2"` first, ascending), because that is the order Node's
/// `JSON.parse` produces and the encoders write maps in order.
pub fn from_json(value: &Value, attachments: &[Bytes]) -> MsgValue {
    match value {
        Value::Null => MsgValue::Nil,
        Value::Bool(b) => MsgValue::Bool(*b),
        Value::Number(n) => number(n),
        Value::String(s) => MsgValue::Str(s.clone()),
        Value::Array(items) => MsgValue::Array(
            items
                .iter()
                .map(|item| from_json(item, attachments))
                .collect(),
        ),
        Value::Object(obj) => {
            if let Some(bin) = placeholder_target(obj, attachments) {
                return MsgValue::Bin(bin.clone());
            }
            let mut entries: Vec<(String, MsgValue)> = obj
                .iter()
                .map(|(k, v)| (k.clone(), from_json(v, attachments)))
                .collect();
            js_property_order(&mut entries);
            MsgValue::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (MsgValue::Str(k), v))
                    .collect(),
            )
        }
    }
}

fn number(n: &Number) -> MsgValue {
    if let Some(i) = n.as_i64() {
        MsgValue::Int(i.into())
    } else if let Some(u) = n.as_u64() {
        MsgValue::Int(u.into())
    } else {
        MsgValue::F64(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn placeholder_target<'a>(obj: &Map<String, Value>, attachments: &'a [Bytes]) -> Option<&'a Bytes> {
    if obj.get("_placeholder")?.as_bool()? {
        let num = usize::try_from(obj.get("num")?.as_u64()?).ok()?;
        return attachments.get(num);
    }
    None
}

/// Splits `value` into JSON with placeholders and the attachments they reference,
/// numbered depth-first (the order `socket.io-parser` uses).
///
/// `nil` and extensions become `null`; non-finite floats `null` (as `JSON.stringify`
/// writes them); integral floats below 2⁵³ become JSON integers. Map keys are turned
/// into strings as JavaScript does (`1` → `"1"`), later duplicates overwrite earlier
/// ones in place, and keys are put in JavaScript's property order — the object Node's
/// decoder would have built.
pub fn to_json(value: MsgValue) -> (Value, Vec<Bytes>) {
    let mut attachments = Vec::new();
    let json = to_json_inner(value, &mut attachments);
    (json, attachments)
}

fn to_json_inner(value: MsgValue, attachments: &mut Vec<Bytes>) -> Value {
    match value {
        MsgValue::Nil | MsgValue::Ext(..) => Value::Null,
        MsgValue::Bool(b) => Value::Bool(b),
        MsgValue::Int(n) => {
            if let Ok(i) = i64::try_from(n) {
                Value::from(i)
            } else if let Ok(u) = u64::try_from(n) {
                Value::from(u)
            } else {
                float(n as f64)
            }
        }
        MsgValue::F64(f) => float(f),
        MsgValue::Str(s) => Value::String(s),
        MsgValue::Bin(bytes) => {
            attachments.push(bytes);
            placeholder(attachments.len() - 1)
        }
        MsgValue::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| to_json_inner(item, attachments))
                .collect(),
        ),
        MsgValue::Map(entries) => {
            let mut obj = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key = property_key(&k);
                let v = to_json_inner(v, attachments);
                // An existing key keeps its position and takes the new value.
                obj.insert(key, v);
            }
            let mut ordered: Vec<(String, Value)> = obj.into_iter().collect();
            js_property_order(&mut ordered);
            Value::Object(ordered.into_iter().collect())
        }
    }
}

fn float(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < TWO_POW_53 && !super::encode::keeps_float(f) {
        // Integral and below 2^53: exact. (A float whose integer text would be much
        // longer stays one: see `keeps_float`.)
        Value::from(f as i64)
    } else {
        Number::from_f64(f).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placeholders_become_binary_and_back() {
        let a = Bytes::from_static(b"a");
        let b = Bytes::from_static(b"b");
        let json = json!(["ev", {"x": {"_placeholder": true, "num": 1}}, {"_placeholder": true, "num": 0}]);
        let value = from_json(&json, &[a.clone(), b.clone()]);
        assert_eq!(
            value,
            MsgValue::Array(vec![
                "ev".into(),
                MsgValue::Map(vec![("x".into(), MsgValue::Bin(b.clone()))]),
                MsgValue::Bin(a.clone()),
            ])
        );
        // Renumbered depth-first.
        let (back, attachments) = to_json(value);
        assert_eq!(
            back,
            json!(["ev", {"x": {"_placeholder": true, "num": 0}}, {"_placeholder": true, "num": 1}])
        );
        assert_eq!(attachments, [b, a]);
    }

    #[test]
    fn dangling_placeholders_stay_objects() {
        let json = json!({"_placeholder": true, "num": 3});
        assert_eq!(
            from_json(&json, &[]),
            MsgValue::Map(vec![
                ("_placeholder".into(), MsgValue::Bool(true)),
                ("num".into(), MsgValue::Int(3)),
            ])
        );
    }

    #[test]
    fn numbers_follow_javascript() {
        assert_eq!(from_json(&json!(1), &[]), MsgValue::Int(1));
        assert_eq!(
            from_json(&json!(u64::MAX), &[]),
            MsgValue::Int(u64::MAX.into())
        );
        assert_eq!(from_json(&json!(1.5), &[]), MsgValue::F64(1.5));
        assert_eq!(to_json(MsgValue::F64(2.0)).0, json!(2));
        assert_eq!(to_json(MsgValue::F64(f64::INFINITY)).0, json!(null));
        assert_eq!(
            to_json(MsgValue::Int(-(1 << 70))).0,
            json!(-1.1805916207174113e21)
        );
    }

    #[test]
    fn keys_are_stringified_and_ordered_like_javascript() {
        let value = MsgValue::Map(vec![
            ("b".into(), MsgValue::Int(1)),
            (MsgValue::Int(2), MsgValue::Int(2)),
            ("b".into(), MsgValue::Int(3)),
            (MsgValue::Bool(true), MsgValue::Nil),
        ]);
        let (json, _) = to_json(value);
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["2", "b", "true"]);
        assert_eq!(json["b"], json!(3));
        let parsed: Value = serde_json::from_str(r#"{"b":1,"10":2,"a":3,"2":4}"#).unwrap();
        let MsgValue::Map(entries) = from_json(&parsed, &[]) else {
            panic!()
        };
        let keys: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["2", "10", "b", "a"]);
    }
}
