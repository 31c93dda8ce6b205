//! RESP2, the Redis protocol, as far as a subscribed connection needs it: the commands
//! it sends (arrays of bulk strings) and the frames it reads (a channel's message, a
//! pattern's message, the confirmation of a subscription, a reply to `AUTH`, an
//! error). Frames are parsed where they lie in the read buffer and described by byte
//! ranges, so a message's payload can be handed on as a slice of that buffer, never
//! copied.
//!
//! Bounded for a broken or hostile server: a bulk string longer than [`MAX_BULK`]
//! (Redis' own `proto-max-bulk-len` default), an array of more than [`MAX_ITEMS`]
//! elements or nested in another, and a line longer than [`MAX_LINE`] are errors, so
//! the reader never buffers more than one bounded frame nor scans without end.

use std::ops::Range;

/// Longest bulk string accepted: 512 MiB, Redis' default `proto-max-bulk-len` (a
/// server cannot send a longer message than a client could publish).
pub const MAX_BULK: usize = 512 << 20;
/// Most elements of an array: a pattern's message has four.
pub const MAX_ITEMS: usize = 4;
/// Longest line (a length, an integer, a status or an error text), without its CRLF.
pub const MAX_LINE: usize = 4096;

/// Why bytes from the server are not RESP2 a subscriber reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// A frame starts with a byte that is no RESP2 type.
    #[error("RESP frame of unknown type {0:#04x}")]
    UnknownType(u8),
    /// A line without its CRLF within [`MAX_LINE`] bytes.
    #[error("RESP line longer than {MAX_LINE} bytes")]
    LongLine,
    /// A length or integer that is not one.
    #[error("RESP number {0:?} is not an integer")]
    BadNumber(String),
    /// A bulk string over [`MAX_BULK`], or of a negative length other than -1.
    #[error("RESP bulk string of length {0} (at most {MAX_BULK})")]
    BadBulkLength(i64),
    /// A bulk string not followed by CRLF.
    #[error("RESP bulk string not ended by CRLF")]
    Unterminated,
    /// An array over [`MAX_ITEMS`] elements, of a negative length other than -1, or
    /// holding an array.
    #[error("RESP array {0} (a subscriber reads flat arrays of at most {MAX_ITEMS})")]
    BadArray(String),
}

/// One element of an array: a string (bulk or status), null, or an integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A bulk string's or status line's bytes.
    Str(Range<usize>),
    /// A null bulk string.
    Nil,
    /// An integer.
    Int(i64),
}

/// One frame, its strings as ranges of the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+OK`: a status line.
    Status(Range<usize>),
    /// `-ERR …`: an error line.
    Error(Range<usize>),
    /// `:n`.
    Int(i64),
    /// `$n`: a bulk string.
    Bulk(Range<usize>),
    /// `$-1` or `*-1`.
    Nil,
    /// `*n`: a flat array of at most [`MAX_ITEMS`] elements.
    Array(Items),
}

/// The elements of an array frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items {
    items: [Item; MAX_ITEMS],
    len: usize,
}

impl Items {
    /// The elements, in order.
    pub fn as_slice(&self) -> &[Item] {
        &self.items[..self.len]
    }
}

/// The frame at the start of `buf` and its length in bytes; `None` while it is
/// incomplete (read more and try again).
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, RespError> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let Some((line, mut at)) = line(buf, 1)? else {
        return Ok(None);
    };
    let frame = match kind {
        b'+' => Frame::Status(line),
        b'-' => Frame::Error(line),
        b':' => Frame::Int(number(&buf[line])?),
        b'$' => match bulk(buf, &line, at)? {
            Some((Some(range), next)) => {
                at = next;
                Frame::Bulk(range)
            }
            Some((None, next)) => {
                at = next;
                Frame::Nil
            }
            None => return Ok(None),
        },
        b'*' => {
            let n = number(&buf[line])?;
            if n == -1 {
                return Ok(Some((Frame::Nil, at)));
            }
            let len = usize::try_from(n)
                .ok()
                .filter(|&n| n <= MAX_ITEMS)
                .ok_or_else(|| RespError::BadArray(format!("of {n} elements")))?;
            let mut items: [Item; MAX_ITEMS] = std::array::from_fn(|_| Item::Nil);
            for item in items.iter_mut().take(len) {
                let Some((parsed, next)) = element(buf, at)? else {
                    return Ok(None);
                };
                *item = parsed;
                at = next;
            }
            Frame::Array(Items { items, len })
        }
        other => return Err(RespError::UnknownType(other)),
    };
    Ok(Some((frame, at)))
}

/// One element of an array starting at `at`, and where the next begins.
fn element(buf: &[u8], at: usize) -> Result<Option<(Item, usize)>, RespError> {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((line, next)) = line(buf, at + 1)? else {
        return Ok(None);
    };
    let item = match kind {
        b'+' => (Item::Str(line), next),
        b':' => (Item::Int(number(&buf[line])?), next),
        b'$' => match bulk(buf, &line, next)? {
            Some((Some(range), end)) => (Item::Str(range), end),
            Some((None, end)) => (Item::Nil, end),
            None => return Ok(None),
        },
        b'*' => return Err(RespError::BadArray("inside an array".to_owned())),
        other => return Err(RespError::UnknownType(other)),
    };
    Ok(Some(item))
}

/// The body of a bulk string whose length line is `len` and whose bytes start at
/// `at` (`None` inside for a null one), and where the frame after it begins.
#[allow(clippy::type_complexity)]
fn bulk(
    buf: &[u8],
    len: &Range<usize>,
    at: usize,
) -> Result<Option<(Option<Range<usize>>, usize)>, RespError> {
    let n = number(&buf[len.clone()])?;
    if n == -1 {
        return Ok(Some((None, at)));
    }
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= MAX_BULK)
        .ok_or(RespError::BadBulkLength(n))?;
    let end = at + n;
    let Some(crlf) = buf.get(end..end + 2) else {
        return Ok(None);
    };
    if crlf != b"\r\n" {
        return Err(RespError::Unterminated);
    }
    Ok(Some((Some(at..end), end + 2)))
}

/// The line starting at `at` (without its CRLF) and where the next begins.
fn line(buf: &[u8], at: usize) -> Result<Option<(Range<usize>, usize)>, RespError> {
    let window = &buf[at.min(buf.len())..buf.len().min(at + MAX_LINE + 2)];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((at..at + i, at + i + 2))),
        None if window.len() >= MAX_LINE + 2 => Err(RespError::LongLine),
        None => Ok(None),
    }
}

/// A RESP integer: an optional minus and decimal digits, within `i64`.
fn number(text: &[u8]) -> Result<i64, RespError> {
    let bad = || RespError::BadNumber(String::from_utf8_lossy(text).into_owned());
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(bad());
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(if negative { -n } else { n })
}

/// What a frame read on a subscribed connection means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// A message: `message` (a channel's) or `pmessage` (a pattern's), or `smessage`
    /// (a shard channel's).
    Message {
        /// The channel it was published to.
        channel: Range<usize>,
        /// What was published.
        payload: Range<usize>,
    },
    /// The confirmation of one channel's or pattern's subscribe or unsubscribe.
    Confirmed,
    /// A status line (`+OK`, the answer to `AUTH`).
    Status,
    /// An error reply.
    Error(Range<usize>),
    /// Anything else (a `pong`): nothing to do.
    Other,
}

/// What `frame`, parsed from `buf`, means on a subscribed connection.
pub fn push(buf: &[u8], frame: &Frame) -> Push {
    match frame {
        Frame::Status(_) => Push::Status,
        Frame::Error(text) => Push::Error(text.clone()),
        Frame::Array(items) => {
            let str_at = |i: usize| match items.as_slice().get(i) {
                Some(Item::Str(r)) => Some(r.clone()),
                _ => None,
            };
            let Some(kind) = str_at(0) else {
                return Push::Other;
            };
            let kind = &buf[kind];
            let message = |channel_at: usize, payload_at: usize| match (
                str_at(channel_at),
                str_at(payload_at),
            ) {
                (Some(channel), Some(payload)) if items.as_slice().len() == payload_at + 1 => {
                    Push::Message { channel, payload }
                }
                _ => Push::Other,
            };
            if kind.eq_ignore_ascii_case(b"message") || kind.eq_ignore_ascii_case(b"smessage") {
                message(1, 2)
            } else if kind.eq_ignore_ascii_case(b"pmessage") {
                message(2, 3)
            } else if [
                &b"subscribe"[..],
                b"psubscribe",
                b"ssubscribe",
                b"unsubscribe",
                b"punsubscribe",
                b"sunsubscribe",
            ]
            .iter()
            .any(|k| kind.eq_ignore_ascii_case(k))
            {
                Push::Confirmed
            } else {
                Push::Other
            }
        }
        Frame::Int(_) | Frame::Bulk(_) | Frame::Nil => Push::Other,
    }
}

/// Appends the command `args` (an array of bulk strings) to `out`.
pub fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    let Some((last, first)) = args.split_last() else {
        out.extend_from_slice(b"*0\r\n");
        return;
    };
    command_head(out, first, last.len());
    out.extend_from_slice(last);
    out.extend_from_slice(b"\r\n");
}

/// Appends a command of `first` and one more argument of `last_len` bytes, up to that
/// argument: what follows is the argument itself, then CRLF. For a caller that writes
/// a large last argument (a payload) from where it lies instead of copying it.
pub fn command_head(out: &mut Vec<u8>, first: &[&[u8]], last_len: usize) {
    out.push(b'*');
    out.extend_from_slice((first.len() + 1).to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in first {
        bulk_len(out, arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    bulk_len(out, last_len);
}

/// `$<len>\r\n`.
fn bulk_len(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole frame of `bytes`, which must be complete.
    fn whole(bytes: &[u8]) -> Frame {
        let (frame, n) = parse(bytes).expect("valid").expect("complete");
        assert_eq!(n, bytes.len(), "one frame, all of it");
        frame
    }

    #[test]
    fn a_message_and_a_pattern_message_point_at_their_channel_and_payload() {
        let m = b"*3\r\n$7\r\nmessage\r\n$4\r\nchan\r\n$5\r\nhello\r\n";
        let Push::Message { channel, payload } = push(m, &whole(m)) else {
            panic!("a message");
        };
        assert_eq!((&m[channel], &m[payload]), (&b"chan"[..], &b"hello"[..]));
        let p = b"*4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n$4\r\nchan\r\n$0\r\n\r\n";
        let Push::Message { channel, payload } = push(p, &whole(p)) else {
            panic!("a pattern message");
        };
        assert_eq!((&p[channel], &p[payload]), (&b"chan"[..], &b""[..]));
    }

    #[test]
    fn a_payload_may_hold_crlf_and_any_byte() {
        let m = b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$4\r\n\r\n\x00\xff\r\n";
        let Push::Message { payload, .. } = push(m, &whole(m)) else {
            panic!("a message");
        };
        assert_eq!(&m[payload], b"\r\n\x00\xff");
    }

    #[test]
    fn confirmations_status_and_errors() {
        let sub = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
        assert_eq!(push(sub, &whole(sub)), Push::Confirmed);
        let punsub = b"*3\r\n$12\r\npunsubscribe\r\n$1\r\np\r\n:0\r\n";
        assert_eq!(push(punsub, &whole(punsub)), Push::Confirmed);
        assert_eq!(push(b"+OK\r\n", &whole(b"+OK\r\n")), Push::Status);
        let err = b"-WRONGPASS invalid username-password pair\r\n";
        let Push::Error(text) = push(err, &whole(err)) else {
            panic!("an error");
        };
        assert!(err[text].starts_with(b"WRONGPASS"));
        let pong = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n";
        assert_eq!(push(pong, &whole(pong)), Push::Other);
    }

    #[test]
    fn every_prefix_of_a_frame_is_incomplete_never_an_error() {
        let m = b"*4\r\n$8\r\npmessage\r\n$3\r\nch*\r\n$4\r\nchan\r\n$5\r\nhello\r\n";
        for end in 0..m.len() {
            assert_eq!(parse(&m[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(parse(m).expect("valid").is_some());
    }

    #[test]
    fn frames_follow_each_other_in_one_buffer() {
        let mut buf = Vec::new();
        buf.extend_from_slice(b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
        buf.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n");
        let (_, first) = parse(&buf).expect("valid").expect("complete");
        let (frame, second) = parse(&buf[first..]).expect("valid").expect("complete");
        assert_eq!(first + second, buf.len());
        assert!(matches!(push(&buf[first..], &frame), Push::Message { .. }));
    }

    #[test]
    fn hostile_frames_are_refused_not_buffered() {
        let too_long = format!("${}\r\n", MAX_BULK + 1);
        assert_eq!(
            parse(too_long.as_bytes()),
            Err(RespError::BadBulkLength(MAX_BULK as i64 + 1))
        );
        assert!(matches!(
            parse(b"$-2\r\n"),
            Err(RespError::BadBulkLength(-2))
        ));
        assert!(matches!(parse(b"*5\r\n"), Err(RespError::BadArray(_))));
        assert!(matches!(parse(b"*-7\r\n"), Err(RespError::BadArray(_))));
        assert!(matches!(
            parse(b"*1\r\n*1\r\n:1\r\n"),
            Err(RespError::BadArray(_))
        ));
        assert!(matches!(
            parse(b"$3\r\nabcXY"),
            Err(RespError::Unterminated)
        ));
        assert!(matches!(parse(b":12a\r\n"), Err(RespError::BadNumber(_))));
        assert!(matches!(parse(b":\r\n"), Err(RespError::BadNumber(_))));
        assert!(matches!(
            parse(b":99999999999999999999\r\n"),
            Err(RespError::BadNumber(_))
        ));
        assert_eq!(parse(b"!x\r\n"), Err(RespError::UnknownType(b'!')));
        let endless = vec![b'7'; MAX_LINE + 2];
        let mut line = b"$".to_vec();
        line.extend_from_slice(&endless);
        assert_eq!(parse(&line), Err(RespError::LongLine));
        // Just under the bound it is only incomplete.
        assert_eq!(parse(&line[..MAX_LINE]), Ok(None));
    }

    #[test]
    fn nulls_and_integers() {
        assert_eq!(whole(b"$-1\r\n"), Frame::Nil);
        assert_eq!(whole(b"*-1\r\n"), Frame::Nil);
        assert_eq!(whole(b":-42\r\n"), Frame::Int(-42));
        let Frame::Array(items) = whole(b"*2\r\n$-1\r\n:7\r\n") else {
            panic!("an array");
        };
        assert_eq!(items.as_slice(), [Item::Nil, Item::Int(7)]);
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"PSUBSCRIBE", b"socket.io#/#*"]);
        assert_eq!(out, b"*2\r\n$10\r\nPSUBSCRIBE\r\n$13\r\nsocket.io#/#*\r\n");
        // What a subscriber sends, it could read back.
        let Frame::Array(items) = whole(&out) else {
            panic!("an array");
        };
        assert_eq!(items.as_slice().len(), 2);
        let mut empty = Vec::new();
        command(&mut empty, &[]);
        assert_eq!(empty, b"*0\r\n");
    }

    #[test]
    fn a_command_head_and_its_last_argument_are_the_whole_command() {
        let mut whole_command = Vec::new();
        command(&mut whole_command, &[b"PUBLISH", b"ch", b"pay\r\nload"]);
        let mut head = Vec::new();
        command_head(&mut head, &[b"PUBLISH", b"ch"], 9);
        head.extend_from_slice(b"pay\r\nload\r\n");
        assert_eq!(head, whole_command);
    }
}
