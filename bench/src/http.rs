//! The little HTTP/1.1 the generator speaks besides the WebSocket upgrade, all of it to
//! `switchboard serve`: the API publish (`POST /api/v1/emit`, pipelined on one
//! keep-alive connection, see `publish::Via::Api`), one gauge of `/metrics`, and the
//! response side of a Server-Sent Events stream (its head, then chunked transfer
//! coding, see `sse`). Byte work only, but for [`get`].

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::SourcePool;
use crate::sio::{BENCH_EVENT, payload};

/// Path of `switchboard serve`'s emit endpoint.
pub(crate) const EMIT_PATH: &str = "/api/v1/emit";
/// Path of `switchboard serve`'s Prometheus metrics.
pub(crate) const METRICS_PATH: &str = "/metrics";
/// Largest response head accepted; real ones are a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body read whole (an API answer, an error, the metrics text).
const MAX_BODY: usize = 4 << 20;

/// Appends one `POST /api/v1/emit` to `out`: event `bench` with the arguments (`room`,
/// payload stamped `stamp_us`) to the members of `room` in namespace `/`. The same
/// arguments a relay rule delivers (`sio::Dialect::Rules`), so receivers read the
/// stamp the same way whichever path published. Room names are plain: nothing is
/// escaped.
pub(crate) fn emit_request(out: &mut BytesMut, host: &str, key: &str, room: &str, stamp_us: u64) {
    let body = format!(
        "{{\"namespace\":\"/\",\"rooms\":[\"{room}\"],\"event\":\"{BENCH_EVENT}\",\
         \"args\":[\"{room}\",\"{}\"]}}",
        payload(stamp_us)
    );
    let mut head = String::with_capacity(192);
    let _ = write!(
        head,
        "POST {EMIT_PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
}

/// A response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// Status code.
    pub(crate) status: u16,
    /// Bytes of the head, the blank line included.
    pub(crate) len: usize,
    /// `Content-Length`, if given.
    pub(crate) content_length: Option<usize>,
    /// `Transfer-Encoding: chunked`.
    pub(crate) chunked: bool,
}

impl Head {
    /// Parses the head at the start of `buf`; `None` until all of it is there.
    pub(crate) fn parse(buf: &[u8]) -> anyhow::Result<Option<Head>> {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if buf.len() > MAX_HEAD {
                bail!("HTTP response head over {MAX_HEAD} bytes");
            }
            return Ok(None);
        };
        let text = std::str::from_utf8(&buf[..end]).context("non-UTF-8 HTTP response head")?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
            .and_then(|rest| rest.get(..3)?.parse().ok())
            .with_context(|| format!("bad HTTP status line {status_line:?}"))?;
        let mut head = Head {
            status,
            len: end + 4,
            content_length: None,
            chunked: false,
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                head.content_length = Some(value.parse().context("bad Content-Length")?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = value.to_ascii_lowercase().contains("chunked");
            }
        }
        Ok(Some(head))
    }
}

/// Consumes the complete responses at the start of `buf` (pipelined answers to
/// [`emit_request`]s); returns how many there were. Any status but 200 is an error
/// that carries the answer's body (a refused key, a rate limit, a bad request).
pub(crate) fn take_responses(buf: &mut BytesMut) -> anyhow::Result<u64> {
    let mut taken = 0;
    while let Some(head) = Head::parse(buf)? {
        if head.chunked {
            bail!("chunked API answer (expected a Content-Length)");
        }
        let body = head.content_length.unwrap_or(0);
        if body > MAX_BODY {
            bail!("API answer of {body} bytes");
        }
        if buf.len() < head.len + body {
            break;
        }
        if head.status != 200 {
            let text = String::from_utf8_lossy(&buf[head.len..head.len + body]);
            bail!("API answered {}: {text}", head.status);
        }
        buf.advance(head.len + body);
        taken += 1;
    }
    Ok(taken)
}

/// Undoes chunked transfer coding (RFC 9112 §7.1) incrementally: the chunks' data is
/// appended to a text buffer as it arrives, chunk sizes and line ends are dropped.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    /// Data bytes of the current chunk still to come.
    left: usize,
    /// Bytes of the CRLF after the current chunk's data still to skip.
    crlf: usize,
    /// The last chunk (size 0) was seen: the body is over.
    pub(crate) ended: bool,
}

impl Chunked {
    /// Moves what `raw` holds of the body into `text` (data only), leaving an
    /// incomplete chunk-size line in `raw`.
    pub(crate) fn decode(&mut self, raw: &mut BytesMut, text: &mut BytesMut) -> anyhow::Result<()> {
        while !self.ended && !raw.is_empty() {
            if self.left > 0 {
                let n = self.left.min(raw.len());
                text.extend_from_slice(&raw[..n]);
                raw.advance(n);
                self.left -= n;
                if self.left == 0 {
                    self.crlf = 2;
                }
                continue;
            }
            if self.crlf > 0 {
                let n = self.crlf.min(raw.len());
                raw.advance(n);
                self.crlf -= n;
                continue;
            }
            let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
                if raw.len() > 64 {
                    bail!("chunk-size line over 64 bytes");
                }
                return Ok(());
            };
            let line = std::str::from_utf8(&raw[..eol]).context("non-UTF-8 chunk size")?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .with_context(|| format!("bad chunk size {size:?}"))?;
            raw.advance(eol + 2);
            if size == 0 {
                self.ended = true;
            }
            self.left = size;
        }
        Ok(())
    }
}

/// `GET path` on a connection of its own (`Connection: close`); the status and the
/// body, read to the end.
pub(crate) async fn get(
    pool: &SourcePool,
    addr: SocketAddr,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = pool.connect(addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = BytesMut::new();
    while stream.read_buf(&mut raw).await? > 0 {
        if raw.len() > MAX_HEAD + MAX_BODY {
            bail!("GET {path}: answer over {} bytes", MAX_HEAD + MAX_BODY);
        }
    }
    let head = Head::parse(&raw)?.with_context(|| format!("GET {path}: no complete answer"))?;
    raw.advance(head.len);
    let body = if head.chunked {
        let mut text = BytesMut::new();
        Chunked::default().decode(&mut raw, &mut text)?;
        text
    } else {
        raw.truncate(head.content_length.unwrap_or(raw.len()));
        raw
    };
    Ok((head.status, String::from_utf8_lossy(&body).into_owned()))
}

/// The value of the sample `series` (name and labels exactly as exposed, e.g.
/// `switchboard_connections{transport="sse"}`) in a Prometheus text exposition.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sio::Dialect;

    #[test]
    fn emit_requests_are_complete_and_carry_a_relay_shaped_stamp() {
        let mut out = BytesMut::new();
        emit_request(&mut out, "127.0.0.1:80", "k", "fanout", 42);
        let text = std::str::from_utf8(&out).unwrap_or_default();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("POST /api/v1/emit HTTP/1.1\r\n"));
        assert!(head.contains("\r\nAuthorization: Bearer k\r\n"));
        assert!(head.ends_with(&format!("Content-Length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        assert_eq!(json["rooms"], serde_json::json!(["fanout"]));
        assert_eq!(json["event"], "bench");
        // What a member receives is `bench` (room, payload), as a relay rule sends it.
        let args = serde_json::to_string(&json["args"]).unwrap_or_default();
        assert_eq!(Dialect::Rules.stamp(&args.as_bytes()[1..]), Some(42));
    }

    #[test]
    fn pipelined_answers_are_counted_once_complete() {
        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 18\r\n\r\n\
                  {\"recipients\":100}";
        let mut buf = BytesMut::from(format!("{ok}{ok}{}", &ok[..40]).as_bytes());
        assert_eq!(take_responses(&mut buf).ok(), Some(2));
        assert_eq!(buf.len(), 40);
        buf.extend_from_slice(&ok.as_bytes()[40..]);
        assert_eq!(take_responses(&mut buf).ok(), Some(1));
        assert!(buf.is_empty());
        let limited = "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 7\r\n\r\nslow dn";
        let mut buf = BytesMut::from(limited.as_bytes());
        let err = take_responses(&mut buf).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("API answered 429: slow dn"));
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\na\r\nworld\n\n:\n\n\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let (mut chunked, mut text) = (Chunked::default(), BytesMut::new());
            let mut raw = BytesMut::from(&wire[..split]);
            chunked.decode(&mut raw, &mut text).unwrap_or_default();
            raw.extend_from_slice(&wire[split..]);
            chunked.decode(&mut raw, &mut text).unwrap_or_default();
            assert_eq!(&text[..], b"hello world\n\n:\n\n", "split at {split}");
            assert!(chunked.ended);
        }
        let mut raw = BytesMut::from(&b"zz\r\n"[..]);
        assert!(
            Chunked::default()
                .decode(&mut raw, &mut BytesMut::new())
                .is_err()
        );
    }

    #[test]
    fn heads_give_status_and_framing() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                    Transfer-Encoding: chunked\r\n\r\nrest";
        let parsed = Head::parse(head.as_bytes()).ok().flatten();
        assert_eq!(
            parsed,
            Some(Head {
                status: 200,
                len: head.len() - 4,
                content_length: None,
                chunked: true
            })
        );
        assert_eq!(Head::parse(b"HTTP/1.1 200 OK\r\n").ok(), Some(None));
        assert!(Head::parse(b"SPDY 200\r\n\r\n").is_err());
    }

    #[test]
    fn metric_samples_are_found_by_series() {
        let text = "# TYPE switchboard_connections gauge\n\
                    switchboard_connections{transport=\"websocket\"} 3\n\
                    switchboard_connections{transport=\"sse\"} 5000\n";
        let sse = "switchboard_connections{transport=\"sse\"}";
        assert_eq!(sample(text, sse), Some(5000.0));
        assert_eq!(sample(text, "switchboard_connections"), None);
    }
}
