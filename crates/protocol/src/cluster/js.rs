//! JavaScript semantics the wire formats inherit: `JSON.stringify`, `Number#toString`,
//! property keys and their enumeration order.

use std::fmt::Write as _;

use super::msgpack::MsgValue;

/// `JSON.stringify(value)` for the value Node would hold: `nil` is `null`, binary is a
/// `Buffer` (`{"type":"Buffer","data":[..]}`), non-finite numbers and extensions are
/// `null`, integers beyond 2⁵³ are printed as the float JavaScript would hold.
pub(crate) fn stringify(value: &MsgValue) -> String {
    let mut out = String::new();
    write_json(&mut out, value);
    out
}

fn write_json(out: &mut String, value: &MsgValue) {
    match value {
        MsgValue::Nil | MsgValue::Ext(..) => out.push_str("null"),
        MsgValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        MsgValue::Int(n) => write_int(out, *n),
        MsgValue::F64(f) if f.is_finite() => write_number(out, *f),
        MsgValue::F64(_) => out.push_str("null"),
        MsgValue::Str(s) => write_string(out, s),
        MsgValue::Bin(bytes) => {
            out.push_str(r#"{"type":"Buffer","data":["#);
            for (i, b) in bytes.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{b}");
            }
            out.push_str("]}");
        }
        MsgValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        MsgValue::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, &property_key(k));
                out.push(':');
                write_json(out, v);
            }
            out.push('}');
        }
    }
}

fn write_int(out: &mut String, n: i128) {
    if n.unsigned_abs() <= 1 << 53 {
        let _ = write!(out, "{n}");
    } else {
        // Came as an integer: written as JavaScript writes the number it would hold.
        write_js_number(out, n as f64);
    }
}

/// A string literal escaped as `JSON.stringify` does: `"`, `\`, the short escapes and
/// `\u00xx` (lowercase) for other control characters; everything else verbatim.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A finite number in JSON as `JSON.stringify` writes it ([`write_js_number`]), except
/// a whole number JavaScript writes as a much longer integer than the float it came as
/// (`1e15` as `1000000000000000`, see
/// [`keeps_float`](super::msgpack::keeps_float)): read back, such an integer stays one,
/// and a client's event would reach other nodes' clients several times as long. There
/// the form [`crate::json`] writes is written; JavaScript reads the same number. (Other
/// numbers JavaScript writes long, `1e20` or `0.000001`, are read back as floats and
/// written short to clients: only the message in Redis is longer.)
pub(crate) fn write_number(out: &mut String, f: f64) {
    if super::msgpack::keeps_float(f) {
        let mut short = Vec::new();
        crate::json::write(&mut short, &f);
        out.push_str(std::str::from_utf8(&short).unwrap_or("null"));
    } else {
        write_js_number(out, f);
    }
}

/// `Number.prototype.toString()` of a finite number: the shortest digits that round-trip,
/// positional between 1e-7 and 1e21, exponential (`1e+21`, `1.5e-7`) outside.
fn write_js_number(out: &mut String, f: f64) {
    if f == 0.0 {
        out.push('0');
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    let (digits, exp) = shortest_digits(f.abs());
    // `digits` (k of them) × 10^(n−k) is the value, as in ECMA-262 Number::toString.
    let k = digits.len() as i32;
    let n = exp + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(out, "e{}{}", if n > 0 { '+' } else { '-' }, (n - 1).abs());
    }
}

/// The shortest significant digits of a positive finite `v` that read back as `v`, and
/// the decimal exponent of the first digit.
///
/// Rust's `{:e}` finds them (Grisu with a Dragon fallback) but breaks an exact tie
/// between two equally close candidates upwards, where ECMA-262 takes the even one
/// (V8: `591308287112042.25` prints as `…042.2`). A tie needs `v` to be exactly the
/// midpoint, i.e. to have k+1 significant digits ending in 5, which is checked first
/// cheaply, then exactly (a double's decimal expansion has at most 767 digits).
fn shortest_digits(v: f64) -> (String, i32) {
    let (digits, exp) = sci_digits(&format!("{v:e}"));
    let k = digits.len();
    let (longer, longer_exp) = sci_digits(&format!("{v:.k$e}"));
    if longer.len() != k + 1 || !longer.ends_with('5') {
        return (digits, exp);
    }
    let (exact, _) = sci_digits(&format!("{v:.800e}"));
    if exact.bytes().skip(k + 1).any(|b| b != b'0') {
        return (digits, exp);
    }
    let down = &longer[..k];
    let even = if down
        .bytes()
        .last()
        .is_some_and(|d| (d - b'0').is_multiple_of(2))
    {
        (down.to_owned(), longer_exp)
    } else {
        increment(down, longer_exp)
    };
    // Only a candidate that reads back as `v` counts.
    if format!(
        "{}e{}",
        even.0,
        i64::from(even.1) - (even.0.len() as i64 - 1)
    )
    .parse::<f64>()
        == Ok(v)
    {
        let trimmed = even.0.trim_end_matches('0');
        (trimmed.to_owned(), even.1)
    } else {
        (digits, exp)
    }
}

/// Splits Rust's `d[.ddd]e<exp>` into the digits and the exponent.
fn sci_digits(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.chars().filter(|c| *c != '.').collect();
    (digits, exp.parse().unwrap_or(0))
}

/// `digits` + 1 unit in the last place; a carry out of the first digit (`99` → `100`)
/// moves the exponent.
fn increment(digits: &str, exp: i32) -> (String, i32) {
    let mut bytes = digits.as_bytes().to_vec();
    for b in bytes.iter_mut().rev() {
        if *b == b'9' {
            *b = b'0';
        } else {
            *b += 1;
            return (String::from_utf8_lossy(&bytes).into_owned(), exp);
        }
    }
    bytes.insert(0, b'1');
    bytes.pop();
    (String::from_utf8_lossy(&bytes).into_owned(), exp + 1)
}

/// The property key JavaScript makes of a map key: `String(key)`, as in the object
/// `notepack.io`'s decoder builds. Node never writes anything but string keys; a
/// container key reads as `String()` makes it (`[object Object]`, an array's elements
/// joined by `,`, a `Buffer`'s UTF-8), so a key stays linear in the input. (Their JSON
/// text, escaped again at every level of keys within keys, grew exponentially with the
/// nesting: found by fuzzing.)
pub(crate) fn property_key(key: &MsgValue) -> String {
    match key {
        MsgValue::Str(s) => s.clone(),
        // Extensions read as `null` (see `msgpack::to_json`).
        MsgValue::Nil | MsgValue::Ext(..) => "null".to_owned(),
        MsgValue::Bool(b) => b.to_string(),
        MsgValue::Int(n) => n.to_string(),
        MsgValue::F64(f) if f.is_nan() => "NaN".to_owned(),
        MsgValue::F64(f) if f.is_infinite() => {
            if *f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
        }
        // A key is the number's string, exactly as JavaScript makes it.
        MsgValue::F64(f) => {
            let mut out = String::new();
            write_js_number(&mut out, *f);
            out
        }
        MsgValue::Bin(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        // `Array#join`: `null` and `undefined` elements are empty.
        MsgValue::Array(items) => items
            .iter()
            .map(|item| match item {
                MsgValue::Nil | MsgValue::Ext(..) => String::new(),
                other => property_key(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        MsgValue::Map(_) => "[object Object]".to_owned(),
    }
}

/// The array index a property key stands for (`"0"` … `"4294967294"`, canonical form
/// only), which JavaScript enumerates first, in numeric order.
pub(crate) fn array_index(key: &str) -> Option<u32> {
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse::<u32>().ok().filter(|n| *n != u32::MAX)
}

/// Reorders entries into JavaScript's property order: array indices ascending, then the
/// other keys in insertion order. Keys are assumed unique.
pub(crate) fn js_property_order<V>(entries: &mut [(String, V)]) {
    if entries.iter().any(|(k, _)| array_index(k).is_some()) {
        // A stable sort keeps the insertion order among non-index keys.
        entries.sort_by_key(|(k, _)| array_index(k).map_or((1, 0), |i| (0, i)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn num(f: f64) -> String {
        let mut out = String::new();
        write_js_number(&mut out, f);
        out
    }

    /// In JSON, a whole float JavaScript writes as a much longer integer is written
    /// short: a client's `1e15` must not reach other nodes' clients as 16 digits.
    /// JavaScript reads the same number. The rest is written as JavaScript writes it.
    #[test]
    fn whole_floats_javascript_writes_long_are_written_short() {
        for (f, json) in [
            (1e15, "1e15"),
            (-9e18, "-9e18"),
            (1e20, "100000000000000000000"),
            (1e-6, "0.000001"),
            (1e21, "1e+21"),
            (0.000123, "0.000123"),
            (100.0, "100"),
            (1000.0, "1000"),
            (123.456, "123.456"),
        ] {
            let mut out = String::new();
            write_number(&mut out, f);
            assert_eq!(out, json, "{f:e}");
        }
    }

    #[test]
    #[allow(clippy::excessive_precision)]
    fn numbers_print_like_javascript() {
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.000123, "0.000123"),
            (123.456, "123.456"),
            (2f64.powi(60), "1152921504606847000"),
            // Exact ties between two shortest candidates go to the even one.
            (591308287112042.25, "591308287112042.2"),
            (0.5, "0.5"),
            (9.5, "9.5"),
        ];
        for (f, js) in cases {
            assert_eq!(num(f), js, "{f:e}");
        }
    }

    #[test]
    fn stringify_matches_json_stringify() {
        let v = MsgValue::Map(vec![
            ("s".into(), "a\"b\\c\n\u{1}\u{7f}é\u{2028}".into()),
            (
                "n".into(),
                MsgValue::Array(vec![MsgValue::F64(f64::NAN), MsgValue::Nil]),
            ),
            ("b".into(), MsgValue::Bin(Bytes::from_static(&[1, 255]))),
            (MsgValue::Int(3), MsgValue::Int(-(1 << 60))),
        ]);
        assert_eq!(
            stringify(&v),
            "{\"s\":\"a\\\"b\\\\c\\n\\u0001\u{7f}é\u{2028}\",\"n\":[null,null],\
             \"b\":{\"type\":\"Buffer\",\"data\":[1,255]},\"3\":-1152921504606847000}"
        );
    }

    #[test]
    fn container_keys_read_as_javascript_strings() {
        let array = MsgValue::Array(vec![
            MsgValue::Int(1),
            MsgValue::Nil,
            "a".into(),
            MsgValue::Array(vec![MsgValue::F64(2.5), MsgValue::Bool(true)]),
            MsgValue::Map(vec![]),
        ]);
        assert_eq!(property_key(&array), "1,,a,2.5,true,[object Object]");
        assert_eq!(property_key(&MsgValue::Map(vec![])), "[object Object]");
        assert_eq!(
            property_key(&MsgValue::Bin(Bytes::from_static(b"k\xff"))),
            "k\u{fffd}"
        );
    }

    /// Found by fuzzing (`fuzz/`, target `msgpack`): maps nested as keys of maps, a
    /// few hundred bytes from a peer, made keys of gigabytes.
    #[test]
    fn keys_within_keys_stay_small() {
        let mut value = MsgValue::Nil;
        for _ in 0..super::super::msgpack::MAX_DEPTH {
            value = MsgValue::Map(vec![(value, MsgValue::Nil)]);
        }
        assert!(stringify(&value).len() < 100);
        let (json, _) = super::super::msgpack::to_json(value);
        assert!(json.to_string().len() < 100);
    }

    #[test]
    fn property_order_puts_indices_first() {
        let mut entries: Vec<(String, ())> =
            ["b", "10", "a", "2", "01", "4294967295", "4294967294"]
                .iter()
                .map(|k| (k.to_string(), ()))
                .collect();
        js_property_order(&mut entries);
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["2", "10", "4294967294", "b", "a", "01", "4294967295"]
        );
    }
}
