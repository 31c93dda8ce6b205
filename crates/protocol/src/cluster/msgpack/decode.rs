//! The MessagePack decoder: one value, every format both Node libraries write, plus
//! `notepack.io`'s legacy extensions; bounded and panic-free on any input.

use bytes::Bytes;

use super::{MAX_DEPTH, MsgValue};
use crate::cluster::CodecError;

/// Decodes exactly one MessagePack value spanning all of `input`.
///
/// Never panics: lengths are checked against the remaining input before anything is
/// allocated, nesting is bounded by [`MAX_DEPTH`], and trailing bytes are an error (as in
/// both Node decoders).
pub fn decode(input: &[u8]) -> Result<MsgValue, CodecError> {
    let mut reader = Reader { buf: input, pos: 0 };
    let value = reader.value(0)?;
    match input.len() - reader.pos {
        0 => Ok(value),
        n => Err(CodecError::TrailingBytes(n)),
    }
}

/// The string field `key` of the map `input` holds, as reading the decoded map would
/// give it (the last entry named so; `nil` is none), found without decoding anything
/// else: every other key and value is skipped, nothing is allocated but the strings
/// under `key`. `None` when `input` is not a single well-formed map, or has no string
/// under `key`. What a node needs to tell whether a message is for it before it pays
/// for decoding the whole (up to about 32 times its size).
pub fn peek_str(input: &[u8], key: &str) -> Option<String> {
    let mut reader = Reader { buf: input, pos: 0 };
    let marker = reader.u8().ok()?;
    let n = match marker {
        0x80..=0x8f => usize::from(marker & 0x0f),
        0xde => reader.u16().ok()?,
        0xdf => reader.u32().ok()?,
        _ => return None,
    };
    let mut found = None;
    for _ in 0..n {
        let start = reader.pos;
        reader.skip(1).ok()?;
        let is_key = reader
            .buf
            .get(start..reader.pos)
            .is_some_and(|raw| str_bytes(raw) == Some(key.as_bytes()));
        if is_key {
            // Only a string (or nil, or notepack's `undefined`) is read; anything
            // else, which the decoded message is refused for, is not decoded here.
            found = match reader.buf.get(reader.pos..) {
                Some([0xa0..=0xbf | 0xd9..=0xdb, ..]) => match reader.value(1).ok()? {
                    MsgValue::Str(s) => Some(s),
                    _ => return None,
                },
                Some([0xc0, ..] | [0xd4, 0x00, _, ..]) => {
                    reader.skip(1).ok()?;
                    None
                }
                _ => return None,
            };
        } else {
            reader.skip(1).ok()?;
        }
    }
    // Trailing bytes: decoded, the message is refused.
    (reader.pos == input.len()).then_some(found).flatten()
}

/// The bytes of a string value's encoding (`fixstr`, `str 8/16/32`), if it is one.
fn str_bytes(raw: &[u8]) -> Option<&[u8]> {
    let (&marker, rest) = raw.split_first()?;
    let header = match marker {
        0xa0..=0xbf => 0,
        0xd9 => 1,
        0xda => 2,
        0xdb => 4,
        _ => return None,
    };
    rest.get(header..)
}

/// A cursor over the input; `pos <= buf.len()` always holds.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<usize, CodecError> {
        Ok(u16::from_be_bytes(self.array()?).into())
    }

    fn u32(&mut self) -> Result<usize, CodecError> {
        // A length that does not fit usize cannot fit the input either.
        usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| CodecError::Truncated)
    }

    fn value(&mut self, depth: usize) -> Result<MsgValue, CodecError> {
        let marker = self.u8()?;
        Ok(match marker {
            0x00..=0x7f => MsgValue::Int(marker.into()),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.seq(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => self.str(usize::from(marker & 0x1f))?,
            0xc0 => MsgValue::Nil,
            0xc1 => return Err(CodecError::InvalidMarker(marker)),
            0xc2 => MsgValue::Bool(false),
            0xc3 => MsgValue::Bool(true),
            0xc4 => {
                let n = self.u8()?.into();
                self.bin(n)?
            }
            0xc5 => {
                let n = self.u16()?;
                self.bin(n)?
            }
            0xc6 => {
                let n = self.u32()?;
                self.bin(n)?
            }
            0xc7 => {
                let n = self.u8()?.into();
                self.ext(n, true)?
            }
            0xc8 => {
                let n = self.u16()?;
                self.ext(n, true)?
            }
            0xc9 => {
                let n = self.u32()?;
                self.ext(n, true)?
            }
            0xca => MsgValue::F64(f32::from_be_bytes(self.array()?).into()),
            0xcb => MsgValue::F64(f64::from_be_bytes(self.array()?)),
            0xcc => MsgValue::Int(self.u8()?.into()),
            0xcd => MsgValue::Int(u16::from_be_bytes(self.array()?).into()),
            0xce => MsgValue::Int(u32::from_be_bytes(self.array()?).into()),
            0xcf => MsgValue::Int(u64::from_be_bytes(self.array()?).into()),
            0xd0 => MsgValue::Int(i8::from_be_bytes(self.array()?).into()),
            0xd1 => MsgValue::Int(i16::from_be_bytes(self.array()?).into()),
            0xd2 => MsgValue::Int(i32::from_be_bytes(self.array()?).into()),
            0xd3 => MsgValue::Int(i64::from_be_bytes(self.array()?).into()),
            0xd4 => self.fixext(1)?,
            0xd5 => self.fixext(2)?,
            0xd6 => self.fixext(4)?,
            0xd7 => self.fixext(8)?,
            0xd8 => self.fixext(16)?,
            0xd9 => {
                let n = self.u8()?.into();
                self.str(n)?
            }
            0xda => {
                let n = self.u16()?;
                self.str(n)?
            }
            0xdb => {
                let n = self.u32()?;
                self.str(n)?
            }
            0xdc => {
                let n = self.u16()?;
                self.seq(n, depth)?
            }
            0xdd => {
                let n = self.u32()?;
                self.seq(n, depth)?
            }
            0xde => {
                let n = self.u16()?;
                self.map(n, depth)?
            }
            0xdf => {
                let n = self.u32()?;
                self.map(n, depth)?
            }
            0xe0..=0xff => MsgValue::Int(i8::from_be_bytes([marker]).into()),
        })
    }

    /// Moves past one value without decoding it, as bounded as [`Reader::value`]:
    /// lengths are checked against the input, nesting against [`MAX_DEPTH`].
    fn skip(&mut self, depth: usize) -> Result<(), CodecError> {
        let marker = self.u8()?;
        let n = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => 0,
            0x80..=0x8f => return self.skip_items(2 * usize::from(marker & 0x0f), depth),
            0x90..=0x9f => return self.skip_items(usize::from(marker & 0x0f), depth),
            0xa0..=0xbf => usize::from(marker & 0x1f),
            0xc1 => return Err(CodecError::InvalidMarker(marker)),
            0xc4 | 0xd9 => self.u8()?.into(),
            0xc5 | 0xda => self.u16()?,
            0xc6 | 0xdb => self.u32()?,
            // ext 8/16/32: the type byte, then the data.
            0xc7 => usize::from(self.u8()?) + 1,
            0xc8 => self.u16()? + 1,
            0xc9 => self.u32()?.checked_add(1).ok_or(CodecError::Truncated)?,
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xca | 0xce | 0xd2 => 4,
            0xcb | 0xcf | 0xd3 => 8,
            // fixext N: the type byte, then N bytes.
            0xd4 => 2,
            0xd5 => 3,
            0xd6 => 5,
            0xd7 => 9,
            0xd8 => 17,
            0xdc => {
                let n = self.u16()?;
                return self.skip_items(n, depth);
            }
            0xdd => {
                let n = self.u32()?;
                return self.skip_items(n, depth);
            }
            0xde => {
                let n = self.u16()?;
                return self.skip_items(2 * n, depth);
            }
            0xdf => {
                let n = self.u32()?.checked_mul(2).ok_or(CodecError::Truncated)?;
                return self.skip_items(n, depth);
            }
        };
        self.take(n).map(|_| ())
    }

    /// Skips `n` values nested at `depth`.
    fn skip_items(&mut self, n: usize, depth: usize) -> Result<(), CodecError> {
        if depth >= MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        if n > self.remaining() {
            return Err(CodecError::Truncated);
        }
        for _ in 0..n {
            self.skip(depth + 1)?;
        }
        Ok(())
    }

    fn str(&mut self, n: usize) -> Result<MsgValue, CodecError> {
        Ok(MsgValue::Str(
            String::from_utf8_lossy(self.take(n)?).into_owned(),
        ))
    }

    fn bin(&mut self, n: usize) -> Result<MsgValue, CodecError> {
        Ok(MsgValue::Bin(Bytes::copy_from_slice(self.take(n)?)))
    }

    /// `ext 8/16/32`: type 0 is `notepack.io`'s legacy `ArrayBuffer` encoding.
    fn ext(&mut self, n: usize, variable: bool) -> Result<MsgValue, CodecError> {
        let kind = i8::from_be_bytes(self.array()?);
        let data = Bytes::copy_from_slice(self.take(n)?);
        Ok(match kind {
            0 if variable => MsgValue::Bin(data),
            _ => MsgValue::Ext(kind, data),
        })
    }

    /// `fixext N`: `d4 00 xx` is `notepack.io`'s legacy `undefined`.
    fn fixext(&mut self, n: usize) -> Result<MsgValue, CodecError> {
        match self.ext(n, false)? {
            MsgValue::Ext(0, _) if n == 1 => Ok(MsgValue::Nil),
            other => Ok(other),
        }
    }

    fn seq(&mut self, n: usize, depth: usize) -> Result<MsgValue, CodecError> {
        if depth >= MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        // Every element takes at least one byte.
        if n > self.remaining() {
            return Err(CodecError::Truncated);
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(depth + 1)?);
        }
        Ok(MsgValue::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<MsgValue, CodecError> {
        if depth >= MAX_DEPTH {
            return Err(CodecError::TooDeep);
        }
        // Every entry takes at least two bytes.
        if n > self.remaining() / 2 {
            return Err(CodecError::Truncated);
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let key = self.value(depth + 1)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        Ok(MsgValue::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: Vec<(&str, MsgValue)>) -> MsgValue {
        MsgValue::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    #[test]
    fn decodes_scalars_and_containers() {
        assert_eq!(decode(&[0xc0]), Ok(MsgValue::Nil));
        assert_eq!(decode(&[0xff]), Ok(MsgValue::Int(-1)));
        assert_eq!(decode(&[0xd0, 0x80]), Ok(MsgValue::Int(-128)));
        assert_eq!(
            decode(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Ok(MsgValue::Int(u64::MAX.into()))
        );
        assert_eq!(decode(&[0xca, 0x3f, 0xc0, 0, 0]), Ok(MsgValue::F64(1.5)));
        assert_eq!(
            decode(&[
                0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0x92, 0xc3, 0xc4, 0x01, 0x07
            ]),
            Ok(map(vec![
                ("a", MsgValue::Int(1)),
                (
                    "b",
                    MsgValue::Array(vec![
                        MsgValue::Bool(true),
                        MsgValue::Bin(Bytes::from_static(&[7]))
                    ])
                ),
            ]))
        );
    }

    /// A string field is read the same whether peeked or decoded, past values of
    /// every shape; a missing, non-string or malformed one peeks as `None`.
    #[test]
    fn a_peeked_field_is_the_decoded_one() {
        let value = map(vec![
            ("type", MsgValue::Int(3)),
            (
                "data",
                MsgValue::Array(vec![
                    MsgValue::Bin(Bytes::from_static(&[1, 2, 3])),
                    MsgValue::F64(1.5),
                    MsgValue::Int(-1_000_000),
                    map(vec![("nested", MsgValue::Str("x".repeat(300)))]),
                    MsgValue::Ext(5, Bytes::from_static(&[9; 16])),
                    MsgValue::Nil,
                ]),
            ),
            ("requestId", MsgValue::Str("abc123".into())),
        ]);
        for bytes in [
            super::super::encode::encode_msgpack(&value),
            super::super::encode::encode_notepack(&value),
        ] {
            assert_eq!(peek_str(&bytes, "requestId"), Some("abc123".into()));
            assert_eq!(peek_str(&bytes, "type"), None, "not a string");
            assert_eq!(peek_str(&bytes, "absent"), None);
            assert_eq!(peek_str(&bytes[..bytes.len() - 3], "requestId"), None);
            let mut trailing = bytes.clone();
            trailing.push(0xc0);
            assert_eq!(peek_str(&trailing, "requestId"), None, "decode refuses it");
        }
        // The last entry of a repeated key, as the decoded map reads; `nil` is none.
        let repeated = map(vec![
            ("requestId", MsgValue::Str("first".into())),
            ("requestId", MsgValue::Str("last".into())),
        ]);
        let bytes = super::super::encode::encode_msgpack(&repeated);
        assert_eq!(peek_str(&bytes, "requestId"), Some("last".into()));
        let nil_last = map(vec![
            ("requestId", MsgValue::Str("first".into())),
            ("requestId", MsgValue::Nil),
        ]);
        let bytes = super::super::encode::encode_msgpack(&nil_last);
        assert_eq!(peek_str(&bytes, "requestId"), None);
        // notepack's `undefined` under the key counts as none; an array is not read.
        assert_eq!(peek_str(&[0x81, 0xa1, b'k', 0xd4, 0x00, 0x00], "k"), None);
        assert_eq!(peek_str(&[0x81, 0xa1, b'k', 0x91, 0xa1, b'x'], "k"), None);
        assert_eq!(
            peek_str(&[0x81, 0xa1, b'k', 0xa1, b'x'], "k"),
            Some("x".into())
        );
        assert_eq!(peek_str(&[0x91, 0xa1, b'a'], "a"), None, "not a map");
        assert_eq!(peek_str(&[], "a"), None);
    }

    #[test]
    fn decodes_notepack_legacy_extensions() {
        // `undefined`, then an `ArrayBuffer` (ext 8, type 0), then a foreign extension.
        assert_eq!(decode(&[0xd4, 0x00, 0x00]), Ok(MsgValue::Nil));
        assert_eq!(
            decode(&[0xc7, 0x02, 0x00, 0xab, 0xcd]),
            Ok(MsgValue::Bin(Bytes::from_static(&[0xab, 0xcd])))
        );
        assert_eq!(
            decode(&[0xd6, 0xff, 0, 0, 0, 1]),
            Ok(MsgValue::Ext(-1, Bytes::from_static(&[0, 0, 0, 1])))
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_like_node() {
        assert_eq!(
            decode(&[0xa2, 0xff, b'a']),
            Ok(MsgValue::Str("\u{fffd}a".into()))
        );
    }

    #[test]
    fn rejects_truncated_input() {
        for bytes in [
            &[][..],
            &[0xcd, 0x01],
            &[0xa3, b'a'],
            &[0x92, 0x01],
            &[0x81, 0xa1, b'a'],
            &[0xc6, 0xff, 0xff, 0xff, 0xff, 0x00],
            &[0xd8, 0x01, 0x00],
            &[0xcb, 0, 0, 0],
        ] {
            assert_eq!(decode(bytes), Err(CodecError::Truncated), "{bytes:02x?}");
        }
    }

    #[test]
    fn huge_announced_lengths_fail_before_allocating() {
        assert_eq!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0]),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            decode(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0]),
            Err(CodecError::Truncated)
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode(&[0xc1]), Err(CodecError::InvalidMarker(0xc1)));
        assert_eq!(decode(&[0x01, 0x02]), Err(CodecError::TrailingBytes(1)));
        assert_eq!(decode(b"{\"a\":1}"), Err(CodecError::TrailingBytes(6)));
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = [vec![0x91; MAX_DEPTH], vec![0xc0]].concat();
        assert!(decode(&ok).is_ok());
        let deep = [vec![0x91; MAX_DEPTH + 1], vec![0xc0]].concat();
        assert_eq!(decode(&deep), Err(CodecError::TooDeep));
        let deep_map = vec![0x81; 100_000];
        assert_eq!(decode(&deep_map), Err(CodecError::TooDeep));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // A small deterministic fuzz: every prefix and single-byte mutation of a valid
        // message must decode or fail cleanly.
        let valid = [
            0x93, 0xa6, b'a', b'b', b'c', b'1', b'2', b'3', 0x83, 0xa4, b't', b'y', b'p', b'e',
            0x02, 0xa4, b'd', b'a', b't', b'a', 0x92, 0xa1, b'x', 0xc4, 0x02, 0x01, 0x02, 0xa3,
            b'n', b's', b'p', 0xa1, b'/', 0x80,
        ];
        assert!(decode(&valid).is_ok());
        for end in 0..valid.len() {
            let _ = decode(&valid[..end]);
        }
        for i in 0..valid.len() {
            for b in [
                0x00, 0x7f, 0x80, 0x9f, 0xc1, 0xc6, 0xc9, 0xcf, 0xdb, 0xdd, 0xdf, 0xff,
            ] {
                let mut mutated = valid;
                mutated[i] = b;
                let _ = decode(&mutated);
            }
        }
    }
}
