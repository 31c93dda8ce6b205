//! JSON written back no longer than it was read.
//!
//! `serde_json` reads every number with a fraction or an exponent as an `f64`, and
//! writes an `f64` in `ryu`'s form, which is positional from 1e-5 up to 1e16:
//! `1e15` (4 bytes) comes back as `1000000000000000.0` (18). Every event the server
//! passes on is read and written again (a client's event relayed to a room, a backend's
//! reply sent to clients), so an event of `engine.max_payload` made of such numbers
//! would leave up to 4.5 times larger: through the Redis adapter, into every receiver's
//! queue, and past `queue.max_bytes` a single such frame closes each receiver as a slow
//! consumer. Found by a review of what a client's bytes cost (docs/security.md).
//!
//! [`write`] writes an `f64` in scientific form (`1.5e15`, `-1e-5`, `1234567e4`) when
//! that is more than [`POSITIONAL_SLACK`] bytes shorter than `ryu`'s form. The digits
//! are `ryu`'s, the fewest that read back as the same `f64` (serde_json's
//! `float_roundtrip` makes the reading exact), and of the two scientific forms (a point
//! after the first digit, or none) the shorter is taken, so a number is written at most
//! `POSITIONAL_SLACK` bytes longer than the text it was read from. A float takes at
//! least 3 bytes and a separator, so an event grows by at most 1.5 times, and in
//! practice by none.
//! Everything else is written as `serde_json` writes it (strings never grow: what it
//! escapes had to come escaped), and every reader gets the same value back: `1e15` is a
//! float in Python as `1000000000000000.0` is, and JavaScript reads a number.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

/// How many bytes longer than the scientific form `ryu`'s positional form may be and
/// still be written: enough that everyday floats read as written (`0.25`, `100.0`,
/// `3.14159`), small enough that no number grows by more than this.
pub const POSITIONAL_SLACK: usize = 2;

/// Writes `value` as compact JSON into `out`, floats as [the module](self) describes.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mut serializer = serde_json::Serializer::with_formatter(out, ShortFloats);
    // Serializing into a Vec fails only for a map with non-string keys, which no
    // `Value` has.
    let _ = value.serialize(&mut serializer);
}

/// How many bytes [`write`] takes for `value`, counted without writing them.
pub fn len<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut counter = Counter(0);
    let mut serializer = serde_json::Serializer::with_formatter(&mut counter, ShortFloats);
    // Counting cannot fail, and no `Value` is a map with non-string keys.
    let _ = value.serialize(&mut serializer);
    counter.0
}

/// `serde_json`'s compact formatter, with [`write_float`] for `f64`s.
struct ShortFloats;

impl Formatter for ShortFloats {
    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        write_float(writer, value)
    }
}

/// How many bytes [`write`] takes for the `f64` `value` (as `null` when not finite).
/// The cluster's encoders ask, to keep a whole float a float where its integer text
/// would be much longer (`1e15`).
pub fn float_len(value: f64) -> usize {
    let mut counter = Counter(0);
    // Counting cannot fail.
    let _ = write_float(&mut counter, value);
    counter.0
}

/// A writer that only counts.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `value` in `ryu`'s form, or in the shorter scientific form when that saves
/// more than [`POSITIONAL_SLACK`] bytes.
fn write_float<W: ?Sized + io::Write>(writer: &mut W, value: f64) -> io::Result<()> {
    if !value.is_finite() {
        // serde_json writes `null` for these before it asks the formatter.
        return CompactFormatter.write_null(writer);
    }
    if value == 0.0 && value.is_sign_negative() {
        // serde_json reads `-0` (2 bytes) as this float, which `ryu` writes `-0.0`;
        // `-0` reads back as the same value, in JavaScript too.
        return writer.write_all(b"-0");
    }
    let mut buffer = ryu::Buffer::new();
    let positional = buffer.format_finite(value);
    let mut text = Text::default();
    match scientific(positional, &mut text) {
        Some(short) if short.len() + POSITIONAL_SLACK < positional.len() => writer.write_all(short),
        _ => writer.write_all(positional.as_bytes()),
    }
}

/// A short text on the stack: `ryu` writes at most 17 digits, a sign, a point and an
/// exponent of three digits, so 32 bytes always suffice.
#[derive(Default)]
struct Text {
    bytes: [u8; 32],
    len: usize,
}

impl Text {
    fn push(&mut self, byte: u8) -> Option<()> {
        *self.bytes.get_mut(self.len)? = byte;
        self.len += 1;
        Some(())
    }

    fn push_all(&mut self, bytes: &[u8]) -> Option<()> {
        bytes.iter().try_for_each(|&b| self.push(b))
    }

    /// Appends `e` and the decimal exponent.
    fn push_exponent(&mut self, exponent: isize) -> Option<()> {
        self.push(b'e')?;
        if exponent < 0 {
            self.push(b'-')?;
        }
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut rest = exponent.unsigned_abs();
        loop {
            start -= 1;
            // The remainder is below 10: one digit.
            *digits.get_mut(start)? = b'0' + u8::try_from(rest % 10).ok()?;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.push_all(digits.get(start..)?)
    }
}

/// The length of `e` and a decimal exponent.
fn exponent_len(exponent: isize) -> usize {
    let mut len = 2 + usize::from(exponent < 0);
    let mut rest = exponent.unsigned_abs() / 10;
    while rest > 0 {
        len += 1;
        rest /= 10;
    }
    len
}

/// `positional` (`-0.00012`, `12340000.0`) in the shorter of the two scientific forms,
/// the point after the first digit (`-1.2e-4`, `1.234e7`) or none (`1234e4`): a text
/// read from either form is never shorter than the one chosen. `None` when `positional`
/// is already scientific (`1e16`) or zero.
fn scientific<'a>(positional: &str, text: &'a mut Text) -> Option<&'a [u8]> {
    let (negative, unsigned) = match positional.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, positional),
    };
    let (whole, fraction) = unsigned.split_once('.')?;
    let mut digits = Text::default();
    digits.push_all(whole.as_bytes())?;
    digits.push_all(fraction.as_bytes())?;
    let all = digits.bytes.get(..digits.len)?;
    if !all.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let leading = all.iter().take_while(|&&d| d == b'0').count();
    let trailing = all.iter().rev().take_while(|&&d| d == b'0').count();
    let significant = all.get(leading..all.len().checked_sub(trailing)?)?;
    let (first, rest) = significant.split_first()?;
    // The exponent of the first significant digit: `whole.len() - 1` for `1234.5`,
    // negative for `0.0012`; and of the last, for the form without a point.
    let exponent = isize::try_from(whole.len()).ok()? - isize::try_from(leading).ok()? - 1;
    let last = exponent - isize::try_from(rest.len()).ok()?;
    if negative {
        text.push(b'-')?;
    }
    let dotted = usize::from(!rest.is_empty()) + exponent_len(exponent);
    if rest.is_empty() || dotted <= exponent_len(last) {
        text.push(*first)?;
        if !rest.is_empty() {
            text.push(b'.')?;
            text.push_all(rest)?;
        }
        text.push_exponent(exponent)?;
    } else {
        text.push_all(significant)?;
        text.push_exponent(last)?;
    }
    text.bytes.get(..text.len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn written(value: &Value) -> String {
        let mut out = Vec::new();
        write(&mut out, value);
        String::from_utf8(out).unwrap_or_default()
    }

    fn reread(text: &str) -> String {
        let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        written(&value)
    }

    #[test]
    fn long_positional_floats_are_written_scientific() {
        for (input, output) in [
            ("1e15", "1e15"),
            ("9e15", "9e15"),
            ("-1e15", "-1e15"),
            ("1.5e15", "15e14"),
            ("1e-5", "1e-5"),
            ("-2.5e-5", "-25e-6"),
            ("12e-6", "12e-6"),
            ("1234567e4", "1234567e4"),
            ("1.23456789e20", "1.23456789e20"),
            ("-2.5e-15", "-2.5e-15"),
            ("1000.0", "1e3"),
            ("1e16", "1e16"),
            ("1e300", "1e300"),
            ("5e-324", "5e-324"),
        ] {
            assert_eq!(reread(input), output, "{input}");
        }
    }

    #[test]
    fn everyday_numbers_are_written_as_before() {
        for (input, output) in [
            ("0", "0"),
            ("-7", "-7"),
            ("18446744073709551615", "18446744073709551615"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("0.0", "0.0"),
            ("-0.0", "-0"),
            ("-0", "-0"),
            ("1.0", "1.0"),
            ("0.25", "0.25"),
            ("100.0", "100.0"),
            ("3.14159", "3.14159"),
            ("1700000000.123", "1700000000.123"),
            ("0.001", "0.001"),
        ] {
            assert_eq!(reread(input), output, "{input}");
        }
    }

    #[test]
    fn values_read_back_unchanged() {
        let value = json!(["ev", {"a": [1e15, -2.5e-5, 1000.0, 0.1, 1, -1, "1e15"]}, null]);
        let text = written(&value);
        assert_eq!(serde_json::from_str::<Value>(&text).ok(), Some(value));
        assert_eq!(
            text,
            r#"["ev",{"a":[1e15,-25e-6,1e3,0.1,1,-1,"1e15"]},null]"#
        );
    }

    /// Float texts of one to seventeen significant digits at every exponent `f64` has,
    /// in three of the ways JSON allows: read and written again, each is at most
    /// [`POSITIONAL_SLACK`] bytes longer than it came, and reads back as the same
    /// value; and [`float_len`] is the length written.
    #[test]
    fn no_number_grows_by_more_than_the_slack() {
        let mut checked = 0;
        for mantissa in [
            "1",
            "9",
            "12",
            "99",
            "105",
            "7071",
            "31416",
            "123457",
            "1234567",
            "12345678",
            "123456789123",
            "31415926535897",
            "12345678901234567",
        ] {
            for exponent in -330..=310 {
                for negative in [false, true] {
                    let sign = if negative { "-" } else { "" };
                    let (head, tail) = mantissa.split_at(1);
                    let forms = [
                        format!("{sign}{mantissa}e{exponent}"),
                        format!("{sign}{head}.{tail}0E+{exponent}"),
                        format!("{sign}{mantissa}.0e{exponent}"),
                    ];
                    for input in forms {
                        let Ok(value) = serde_json::from_str::<Value>(&input) else {
                            continue; // out of `f64`'s range: refused on reading
                        };
                        let output = written(&value);
                        assert!(
                            output.len() <= input.len() + POSITIONAL_SLACK,
                            "{input} → {output}"
                        );
                        if let Some(f) = value.as_f64() {
                            assert_eq!(float_len(f), output.len(), "{input}");
                        }
                        assert_eq!(serde_json::from_str::<Value>(&output).ok(), Some(value));
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 40_000, "{checked}");
    }

    #[test]
    fn positional_inputs_never_grow() {
        // The fewest bytes a float can take positionally: `ryu` writes the same
        // digits, with at most the `.0` a whole number gets.
        for input in ["5.0", "0.5", "12.5", "0.00001", "100000.0", "-0.000123"] {
            let output = reread(input);
            assert!(output.len() <= input.len(), "{input} → {output}");
        }
    }
}
