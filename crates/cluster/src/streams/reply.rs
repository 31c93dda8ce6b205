//! XREAD and XRANGE replies walked where they lie: entry ids and field values are
//! borrowed from the reply, no map is built and nothing is copied; no IO.
//!
//! XREAD answers with an array of `[stream, entries]` pairs in RESP2 and with a map
//! from stream to entries in RESP3; XRANGE with the entries alone. An entry is
//! `[id, [name, value, …]]` in both versions, every part a bulk string.

use redis::Value;

/// A reply not shaped like an XREAD or XRANGE answer (Redis never sends one): none of
/// its entries is read, as when redis-rs could not parse it, and the reader tries the
/// same read again after a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplyError {
    /// The streams level is neither nil, an array of `[stream, entries]` nor a map.
    #[error("stream reply: the streams are not an array of pairs or a map")]
    Streams,
    /// A stream's entries are not an array.
    #[error("stream reply: a stream's entries are not an array")]
    Entries,
    /// An entry is not `[id, fields]` with a text id.
    #[error("stream reply: an entry is not [id, fields]")]
    Entry,
    /// An entry's fields are not a flat array of names and values.
    #[error("stream reply: an entry's fields are not name/value pairs")]
    Fields,
    /// An XINFO STREAM answer is not a flat array of names and values, nor a map.
    #[error("stream info: not name/value pairs")]
    Info,
}

/// One stream entry, borrowed from the reply that holds it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    /// The stream id, `<ms>-<seq>`.
    pub(crate) id: &'a str,
    fields: Fields<'a>,
}

/// An entry's fields as the reply holds them.
#[derive(Debug, Clone, Copy)]
enum Fields<'a> {
    /// `[name, value, name, value, …]` (even length), as Redis sends them.
    Flat(&'a [Value]),
    /// Name/value pairs: a map, which Redis does not send for entries but RESP3 could.
    Pairs(&'a [(Value, Value)]),
}

impl<'a> Entry<'a> {
    /// The fields in the order written, names and values as bytes. A pair whose name
    /// or value is not a string (never written by any adapter) is left out, so the
    /// entry reads as missing it.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + use<'a> {
        self.pairs()
            .filter_map(|(name, value)| Some((bytes(name)?, bytes(value)?)))
    }

    /// The value of the field `name` (its last occurrence, as a later duplicate wins);
    /// `None` when absent or not a string.
    pub(crate) fn field(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.pairs()
            .filter(|(n, _)| bytes(n) == Some(name))
            .last()
            .and_then(|(_, value)| bytes(value))
    }

    fn pairs(&self) -> impl Iterator<Item = (&'a Value, &'a Value)> + use<'a> {
        // One of the two is empty: one iterator type for both shapes.
        let (flat, pairs): (&'a [Value], &'a [(Value, Value)]) = match self.fields {
            Fields::Flat(flat) => (flat, &[]),
            Fields::Pairs(pairs) => (&[], pairs),
        };
        flat.chunks_exact(2)
            .filter_map(|pair| match pair {
                [name, value] => Some((name, value)),
                _ => None,
            })
            .chain(pairs.iter().map(|(name, value)| (name, value)))
    }
}

/// The entries of an XREAD reply, stream after stream (the reader reads one); nil, the
/// answer of a read that timed out, has none.
pub(crate) fn read_entries(reply: &Value) -> Result<Vec<Entry<'_>>, ReplyError> {
    let mut out = Vec::new();
    match inner(reply) {
        Value::Nil => {}
        // RESP3.
        Value::Map(streams) => {
            for (_, entries) in streams {
                push_entries(entries, &mut out)?;
            }
        }
        // RESP2: `[[stream, entries], …]`.
        Value::Array(streams) => {
            for stream in streams {
                match inner(stream) {
                    Value::Array(pair) => {
                        let [_, entries] = pair.as_slice() else {
                            return Err(ReplyError::Streams);
                        };
                        push_entries(entries, &mut out)?;
                    }
                    Value::Map(pairs) => {
                        for (_, entries) in pairs {
                            push_entries(entries, &mut out)?;
                        }
                    }
                    _ => return Err(ReplyError::Streams),
                }
            }
        }
        _ => return Err(ReplyError::Streams),
    }
    Ok(out)
}

/// The entries of an XRANGE or XREVRANGE reply, in the reply's order.
pub(crate) fn range_entries(reply: &Value) -> Result<Vec<Entry<'_>>, ReplyError> {
    let mut out = Vec::new();
    push_entries(reply, &mut out)?;
    Ok(out)
}

fn push_entries<'a>(entries: &'a Value, out: &mut Vec<Entry<'a>>) -> Result<(), ReplyError> {
    let entries = match inner(entries) {
        Value::Nil => return Ok(()),
        Value::Array(entries) => entries,
        _ => return Err(ReplyError::Entries),
    };
    out.reserve(entries.len());
    for entry in entries {
        let Value::Array(parts) = inner(entry) else {
            return Err(ReplyError::Entry);
        };
        let [id, fields] = parts.as_slice() else {
            return Err(ReplyError::Entry);
        };
        let id = bytes(id)
            .and_then(|id| std::str::from_utf8(id).ok())
            .ok_or(ReplyError::Entry)?;
        let fields = match inner(fields) {
            Value::Nil => Fields::Flat(&[]),
            Value::Array(flat) if flat.len() % 2 == 0 => Fields::Flat(flat),
            Value::Map(pairs) => Fields::Pairs(pairs),
            _ => return Err(ReplyError::Fields),
        };
        out.push(Entry { id, fields });
    }
    Ok(())
}

/// What an XINFO STREAM answer says of the stream's oldest end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamInfo<'a> {
    /// Entries in the stream now.
    pub(crate) length: u64,
    /// Entries ever added (Redis 7.0 and later), so `entries_added - length` were
    /// trimmed or deleted.
    pub(crate) entries_added: Option<u64>,
    /// The oldest entry's id; `None` when the stream is empty.
    pub(crate) first_id: Option<&'a str>,
    /// The id of the last entry ever added (`0-0` if none), deleted or not.
    pub(crate) last_generated_id: Option<&'a str>,
}

/// Reads an XINFO STREAM answer: a flat array of names and values (RESP2) or a map.
pub(crate) fn stream_info(reply: &Value) -> Result<StreamInfo<'_>, ReplyError> {
    let pairs: Vec<(&Value, &Value)> = match inner(reply) {
        Value::Array(flat) if flat.len() % 2 == 0 => {
            flat.chunks_exact(2).map(|p| (&p[0], &p[1])).collect()
        }
        Value::Map(pairs) => pairs.iter().map(|(k, v)| (k, v)).collect(),
        _ => return Err(ReplyError::Info),
    };
    let field = |name: &[u8]| {
        pairs
            .iter()
            .find(|(k, _)| bytes(k) == Some(name))
            .map(|(_, v)| inner(v))
    };
    let int = |v: &Value| match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        _ => None,
    };
    let length = field(b"length").and_then(int).ok_or(ReplyError::Info)?;
    let entries_added = field(b"entries-added").and_then(int);
    let first_id = match field(b"first-entry") {
        None | Some(Value::Nil) => None,
        Some(Value::Array(entry)) => {
            let id = entry.first().and_then(bytes).ok_or(ReplyError::Info)?;
            Some(std::str::from_utf8(id).map_err(|_| ReplyError::Info)?)
        }
        Some(_) => return Err(ReplyError::Info),
    };
    let last_generated_id = match field(b"last-generated-id") {
        None => None,
        Some(v) => {
            let id = bytes(v).ok_or(ReplyError::Info)?;
            Some(std::str::from_utf8(id).map_err(|_| ReplyError::Info)?)
        }
    };
    Ok(StreamInfo {
        length,
        entries_added,
        first_id,
        last_generated_id,
    })
}

/// The value an attribute (RESP3) is attached to; any other value as it is.
fn inner(value: &Value) -> &Value {
    match value {
        Value::Attribute { data, .. } => inner(data),
        other => other,
    }
}

/// A string value's bytes; `None` for any other kind of value.
fn bytes(value: &Value) -> Option<&[u8]> {
    match inner(value) {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) | Value::VerbatimString { text, .. } => Some(text.as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_info_is_read_from_either_shape_of_xinfo() {
        let entry = Value::Array(vec![bulk("5-1"), Value::Array(vec![bulk("a"), bulk("1")])]);
        let flat = Value::Array(vec![
            bulk("length"),
            Value::Int(3),
            bulk("entries-added"),
            Value::Int(9),
            bulk("first-entry"),
            entry.clone(),
            bulk("last-generated-id"),
            bulk("7-0"),
        ]);
        let want = StreamInfo {
            length: 3,
            entries_added: Some(9),
            first_id: Some("5-1"),
            last_generated_id: Some("7-0"),
        };
        assert_eq!(stream_info(&flat), Ok(want));
        let map = Value::Map(vec![
            (bulk("length"), Value::Int(0)),
            (bulk("first-entry"), Value::Nil),
        ]);
        let empty = StreamInfo {
            length: 0,
            entries_added: None,
            first_id: None,
            last_generated_id: None,
        };
        assert_eq!(stream_info(&map), Ok(empty), "Redis 6 has no entries-added");
        assert_eq!(stream_info(&Value::Int(1)), Err(ReplyError::Info));
        let no_length = Value::Array(vec![bulk("first-entry"), entry]);
        assert_eq!(stream_info(&no_length), Err(ReplyError::Info));
        let odd = Value::Array(vec![
            bulk("length"),
            Value::Int(1),
            bulk("first-entry"),
            Value::Int(7),
        ]);
        assert_eq!(stream_info(&odd), Err(ReplyError::Info));
    }

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    /// `[id, [name, value, …]]`.
    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    fn ids<'a>(entries: &[Entry<'a>]) -> Vec<&'a str> {
        entries.iter().map(|e| e.id).collect()
    }

    fn fields<'a>(entry: &Entry<'a>) -> Vec<(&'a [u8], &'a [u8])> {
        entry.fields().collect()
    }

    #[test]
    fn resp2_xread_replies_are_arrays_of_stream_and_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("socket.io"),
            Value::Array(vec![
                entry("1-0", &["uid", "a", "nsp", "/"]),
                entry("2-0", &["uid", "b"]),
            ]),
        ])]);
        let entries = read_entries(&reply).expect("an XREAD reply");
        assert_eq!(ids(&entries), ["1-0", "2-0"]);
        assert_eq!(
            fields(&entries[0]),
            [(&b"uid"[..], &b"a"[..]), (b"nsp", b"/")]
        );
        assert_eq!(entries[1].field(b"uid"), Some(&b"b"[..]));
    }

    #[test]
    fn resp3_xread_replies_map_streams_to_entries() {
        let reply = Value::Map(vec![(
            bulk("socket.io"),
            Value::Array(vec![
                entry("3-1", &["uid", "a"]),
                entry("3-2", &["uid", "b"]),
            ]),
        )]);
        let entries = read_entries(&reply).expect("an XREAD reply");
        assert_eq!(ids(&entries), ["3-1", "3-2"]);
        assert_eq!(entries[1].field(b"uid"), Some(&b"b"[..]));
        // An attribute around any part is looked through.
        let wrapped = Value::Attribute {
            data: Box::new(reply),
            attributes: Vec::new(),
        };
        assert_eq!(
            ids(&read_entries(&wrapped).expect("wrapped")),
            ["3-1", "3-2"]
        );
    }

    #[test]
    fn a_timed_out_read_has_no_entries() {
        assert!(read_entries(&Value::Nil).expect("nil").is_empty());
        assert!(
            range_entries(&Value::Array(vec![]))
                .expect("empty")
                .is_empty()
        );
    }

    #[test]
    fn xrange_replies_are_the_entries_alone() {
        let reply = Value::Array(vec![entry("5-0", &["a", "1"]), entry("6-0", &[])]);
        let entries = range_entries(&reply).expect("an XRANGE reply");
        assert_eq!(ids(&entries), ["5-0", "6-0"]);
        assert!(fields(&entries[1]).is_empty());
    }

    /// A value that is not a string leaves its pair out; the entry and its id stay,
    /// so the reader still moves past it.
    #[test]
    fn pairs_with_values_that_are_not_strings_are_left_out() {
        let odd = Value::Array(vec![
            bulk("7-0"),
            Value::Array(vec![
                bulk("uid"),
                Value::Int(5),
                bulk("nsp"),
                Value::SimpleString("/".into()),
                Value::Int(1),
                bulk("name not a string"),
            ]),
        ]);
        let reply = Value::Array(vec![odd]);
        let entries = range_entries(&reply).expect("read");
        assert_eq!(ids(&entries), ["7-0"]);
        assert_eq!(fields(&entries[0]), [(&b"nsp"[..], &b"/"[..])]);
        assert_eq!(entries[0].field(b"uid"), None, "present, but not a string");
        assert_eq!(entries[0].field(b"type"), None, "missing");
    }

    #[test]
    fn the_last_duplicate_field_wins() {
        let reply = Value::Array(vec![entry("1-0", &["wix", "1", "wix", "2"])]);
        let entries = range_entries(&reply).expect("read");
        assert_eq!(entries[0].field(b"wix"), Some(&b"2"[..]));
    }

    #[test]
    fn misshapen_replies_are_errors() {
        let stream = |entries| Value::Array(vec![Value::Array(vec![bulk("s"), entries])]);
        assert_eq!(
            read_entries(&Value::Int(1)).err(),
            Some(ReplyError::Streams)
        );
        assert_eq!(
            read_entries(&Value::Array(vec![Value::Array(vec![bulk("s")])])).err(),
            Some(ReplyError::Streams)
        );
        assert_eq!(
            read_entries(&stream(bulk("x"))).err(),
            Some(ReplyError::Entries)
        );
        let no_fields = Value::Array(vec![bulk("1-0")]);
        assert_eq!(
            read_entries(&stream(Value::Array(vec![no_fields]))).err(),
            Some(ReplyError::Entry)
        );
        let binary_id = Value::Array(vec![Value::BulkString(vec![0xff]), Value::Array(vec![])]);
        assert_eq!(
            range_entries(&Value::Array(vec![binary_id])).err(),
            Some(ReplyError::Entry)
        );
        let odd_fields = Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("uid")])]);
        assert_eq!(
            range_entries(&Value::Array(vec![odd_fields])).err(),
            Some(ReplyError::Fields)
        );
    }
}
