//! The two Node MessagePack encoders, reproduced byte for byte.
//!
//! Both pick the smallest format for strings (`fixstr`, `str 8/16/32`), binary, arrays
//! and maps, and the same integer formats; they differ only in which numbers count as
//! integers.

use super::MsgValue;

/// 2⁵³ − 1, JavaScript's `Number.MAX_SAFE_INTEGER`.
const MAX_SAFE_INTEGER: i128 = (1 << 53) - 1;
/// 2⁶⁴ as a float (exact).
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;
/// 2⁶³ as a float (exact).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Which Node library's number rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Notepack,
    Msgpack,
}

/// Encodes like `notepack.io` 3.0 `encode()` (the classic Redis adapter and emitter).
///
/// Numbers: every integral finite float is written as an integer (`1.0` → `0x01`,
/// `-0.0` → `0x00`, 2⁶⁰ → `uint 64`); beyond 64 bits notepack keeps the low 64 bits,
/// and so does this. Other floats are `float 64`. [`MsgValue::Int`] outside the
/// MessagePack range goes through the same float path, as the JavaScript number would.
pub fn encode_notepack(value: &MsgValue) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value, Flavor::Notepack);
    out
}

/// Encodes like `@msgpack/msgpack` 2.8 `encode()` with default options (the streams
/// adapter).
///
/// Numbers: only safe integers (|n| ≤ 2⁵³−1, `Number.isSafeInteger`) are written as
/// integers; everything else, including integral floats such as 2⁶⁰ and
/// [`MsgValue::Int`] beyond 2⁵³, is `float 64`.
pub fn encode_msgpack(value: &MsgValue) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value, Flavor::Msgpack);
    out
}

fn write(out: &mut Vec<u8>, value: &MsgValue, flavor: Flavor) {
    match value {
        MsgValue::Nil => out.push(0xc0),
        MsgValue::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        MsgValue::Int(n) => write_int_value(out, *n, flavor),
        MsgValue::F64(f) => write_float_value(out, *f, flavor),
        MsgValue::Str(s) => {
            header(out, s.len(), [0xa0, 0xd9, 0xda, 0xdb], 32);
            out.extend_from_slice(s.as_bytes());
        }
        MsgValue::Bin(b) => {
            // Binary has no "fix" form: `bin 8` from length 0.
            header(out, b.len(), [0, 0xc4, 0xc5, 0xc6], 0);
            out.extend_from_slice(b);
        }
        MsgValue::Array(items) => {
            header(out, items.len(), [0x90, 0, 0xdc, 0xdd], 16);
            for item in items {
                write(out, item, flavor);
            }
        }
        MsgValue::Map(entries) => {
            header(out, entries.len(), [0x80, 0, 0xde, 0xdf], 16);
            for (k, v) in entries {
                write(out, k, flavor);
                write(out, v, flavor);
            }
        }
        MsgValue::Ext(kind, data) => {
            match data.len() {
                1 => out.push(0xd4),
                2 => out.push(0xd5),
                4 => out.push(0xd6),
                8 => out.push(0xd7),
                16 => out.push(0xd8),
                n => header(out, n, [0, 0xc7, 0xc8, 0xc9], 0),
            }
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(data);
        }
    }
}

/// Writes a length header: `markers` are the fix form (or-ed with the length, used below
/// `fix_limit`), the 8-, 16- and 32-bit forms; a 0 marker means "no such form".
/// Lengths above `u32::MAX` cannot be represented (Node throws); they are clamped,
/// which yields a message no decoder accepts — Redis values stop at 512 MiB anyway.
fn header(out: &mut Vec<u8>, len: usize, markers: [u8; 4], fix_limit: usize) {
    let [fix, m8, m16, m32] = markers;
    if len < fix_limit {
        // `fix_limit` is at most 32, so the length fits the low bits.
        out.push(fix | len as u8);
    } else if m8 != 0 && len < 0x100 {
        out.extend_from_slice(&[m8, len as u8]);
    } else if len < 0x1_0000 {
        out.push(m16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(m32);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
}

fn write_int_value(out: &mut Vec<u8>, n: i128, flavor: Flavor) {
    let in_range = match flavor {
        Flavor::Notepack => (i128::from(i64::MIN)..=i128::from(u64::MAX)).contains(&n),
        Flavor::Msgpack => (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n),
    };
    if in_range {
        write_int(out, n);
    } else {
        // The JavaScript number this integer would be.
        write_float_value(out, n as f64, flavor);
    }
}

fn write_float_value(out: &mut Vec<u8>, f: f64, flavor: Flavor) {
    let integral = f.is_finite() && f.fract() == 0.0;
    let int_range = match flavor {
        Flavor::Msgpack => f.abs() <= MAX_SAFE_INTEGER as f64,
        Flavor::Notepack => (-TWO_POW_63..TWO_POW_64).contains(&f),
    };
    if integral && int_range && keeps_float(f) {
        out.push(0xcb);
        out.extend_from_slice(&f.to_be_bytes());
        return;
    }
    match flavor {
        Flavor::Msgpack if integral && f.abs() <= MAX_SAFE_INTEGER as f64 => {
            // Safe integer: the cast is exact (and maps -0.0 to 0).
            write_int(out, f as i128);
        }
        // Beyond that range notepack computes `hi`/`lo` with 32-bit JavaScript
        // operators and keeps the value modulo 2⁶⁴ under the sign-chosen marker: a
        // client's `1e20` (or `6.02e23`, or `1e300`: every float that large is whole)
        // reached the other nodes as another number, Node's included. It goes as the
        // float64 it is, which notepack reads back exactly; only the bytes differ from
        // what Node's encoder writes.
        Flavor::Notepack if integral && (-TWO_POW_63..TWO_POW_64).contains(&f) => {
            write_int(out, f as i128);
        }
        _ => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_be_bytes());
        }
    }
}

/// Whether the whole float `f` goes (and, read back, stays) a float, where Node's
/// encoders write an integer: when the integer's text is more than
/// [`POSITIONAL_SLACK`](crate::json::POSITIONAL_SLACK) bytes longer than the float's
/// ([`float_len`](crate::json::float_len)). A client's `1e15` (4 bytes) would otherwise
/// reach the receivers on other nodes as `1000000000000000` (16), `1e19` through
/// notepack as 20 bytes: an event passed through Redis would grow up to five times,
/// where on its own node it does not (`crate::json`). JavaScript reads the same number
/// either way; Node's own encoders never write a whole number below 2⁵³ as a float, so
/// nothing they send changes meaning.
/// Only a whole float within ±2⁶⁴ has an integer text to compare; any other (a
/// fraction, beyond 2⁶⁴, not finite: its `fract()` is NaN) is no.
pub(crate) fn keeps_float(f: f64) -> bool {
    if f.fract() != 0.0 || f.abs() >= TWO_POW_64 {
        return false;
    }
    // Whole and within 2⁶⁴: the cast is exact.
    let n = f as i128;
    let mut int_len = usize::from(n < 0) + 1;
    let mut rest = n.unsigned_abs() / 10;
    while rest > 0 {
        int_len += 1;
        rest /= 10;
    }
    int_len > crate::json::float_len(f) + crate::json::POSITIONAL_SLACK
}

/// The smallest integer format, as both libraries choose it. `n` is in −2⁶³ … 2⁶⁴−1.
fn write_int(out: &mut Vec<u8>, n: i128) {
    if n >= 0 {
        if n < 0x80 {
            out.push(n as u8);
        } else if n < 0x100 {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n < 0x1_0000 {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n < 0x1_0000_0000 {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -0x20 {
        out.push(n as i8 as u8);
    } else if n >= -0x80 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -0x8000 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -0x8000_0000 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&(n as i64).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn np(v: MsgValue) -> Vec<u8> {
        encode_notepack(&v)
    }

    fn mp(v: MsgValue) -> Vec<u8> {
        encode_msgpack(&v)
    }

    #[test]
    fn integral_floats_are_integers() {
        assert_eq!(np(MsgValue::F64(1.0)), [0x01]);
        assert_eq!(mp(MsgValue::F64(1.0)), [0x01]);
        assert_eq!(np(MsgValue::F64(-0.0)), [0x00]);
        assert_eq!(mp(MsgValue::F64(-0.0)), [0x00]);
        assert_eq!(np(MsgValue::F64(1.5)), [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn unsafe_integers_differ_between_libraries() {
        let big = 1i128 << 60;
        assert_eq!(np(MsgValue::Int(big)), [0xcf, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            np(MsgValue::F64(big as f64)),
            [0xcf, 0x10, 0, 0, 0, 0, 0, 0, 0]
        );
        let float = [0xcb, 0x43, 0xb0, 0, 0, 0, 0, 0, 0];
        assert_eq!(mp(MsgValue::Int(big)), float);
        assert_eq!(mp(MsgValue::F64(big as f64)), float);
    }

    /// notepack keeps only the low 64 bits of a whole number beyond 64 bits (2⁶⁴ + 2¹²
    /// came back as 4096); here it goes as the float64 it is, and reads back exactly.
    #[test]
    fn whole_floats_beyond_64_bits_go_as_floats() -> Result<(), crate::cluster::CodecError> {
        for f in [TWO_POW_64 + 4096.0, -TWO_POW_64, 6.02e23, f64::MAX, -1e300] {
            let bytes = np(MsgValue::F64(f));
            let mut expected = vec![0xcb];
            expected.extend_from_slice(&f.to_be_bytes());
            assert_eq!(bytes, expected, "{f:e}");
            assert_eq!(super::super::decode(&bytes)?, MsgValue::F64(f), "{f:e}");
        }
        // The integer range is still written as Node writes it.
        assert_eq!(np(MsgValue::F64(TWO_POW_63))[0], 0xcf);
        Ok(())
    }

    #[test]
    fn integer_boundaries() {
        let cases: [(i128, &[u8]); 10] = [
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (256, &[0xcd, 0x01, 0x00]),
            (65536, &[0xce, 0, 1, 0, 0]),
            (-32, &[0xe0]),
            (-33, &[0xd0, 0xdf]),
            (-129, &[0xd1, 0xff, 0x7f]),
            (-32769, &[0xd2, 0xff, 0xff, 0x7f, 0xff]),
            (
                -(1 << 31) - 1,
                &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            ),
            (u32::MAX.into(), &[0xce, 0xff, 0xff, 0xff, 0xff]),
        ];
        for (n, bytes) in cases {
            assert_eq!(np(MsgValue::Int(n)), bytes, "{n}");
            assert_eq!(mp(MsgValue::Int(n)), bytes, "{n}");
        }
    }

    #[test]
    fn length_headers() {
        assert_eq!(np(MsgValue::Str("a".repeat(31)))[0], 0xbf);
        assert_eq!(np(MsgValue::Str("a".repeat(32)))[..2], [0xd9, 32]);
        assert_eq!(np(MsgValue::Str("a".repeat(256)))[..3], [0xda, 1, 0]);
        assert_eq!(np(MsgValue::Bin(Bytes::new())), [0xc4, 0]);
        assert_eq!(
            np(MsgValue::Array(vec![MsgValue::Nil; 16]))[..3],
            [0xdc, 0, 16]
        );
        assert_eq!(np(MsgValue::Map(vec![])), [0x80]);
        assert_eq!(
            np(MsgValue::Ext(5, Bytes::from_static(&[1, 2, 3]))),
            [0xc7, 3, 5, 1, 2, 3]
        );
        assert_eq!(
            np(MsgValue::Ext(-1, Bytes::from_static(&[9]))),
            [0xd4, 0xff, 9]
        );
    }

    #[test]
    fn decode_then_encode_is_identity() {
        let bytes = [
            0x93, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0, 0xcb, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d,
            0x18, 0x81, 0xa1, b'k', 0xc4, 0x01, 0x00,
        ];
        let value = super::super::decode(&bytes).unwrap();
        assert_eq!(np(value), bytes);
    }
}
