//! A Server-Sent Events listener of `switchboard serve`: `GET /sse?nsp=/&room=…` over
//! HTTP/1.1 (one TCP connection per listener), then the event stream, read as lean as
//! the WebSocket receiver reads frames: one read per wake-up, chunked transfer coding
//! undone into a text buffer, events found at blank lines, and of each event only its
//! `event:` and `data:` lines looked at; shared counters touched once per read.
//!
//! The stream is what the server writes (`\n` line ends, one `data:` line per event):
//! `retry: 2000`, `: connected <sid>`, then `event: bench` / `data: [<args>]` per
//! delivery and `:` heartbeats. A listener has nothing to answer: the server counts a
//! heartbeat taken off the connection as its pong.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::client::fill;
use crate::http::{Chunked, Head};
use crate::net::SourcePool;
use crate::sio::{BENCH_EVENT, Dialect};
use crate::stats::{Group, Stats};

/// Path of `switchboard serve`'s SSE endpoint (`[sse] path`, its default).
pub(crate) const PATH: &str = "/sse";
/// Event name of the notice the server sends before it closes a stream.
const CLOSE_EVENT: &[u8] = b"switchboard:close";
/// The comment that opens a connected stream (`: connected <sid>`).
const CONNECTED: &[u8] = b": connected";
/// Initial read buffer per listener: small, because idle listeners must stay cheap.
const READ_BUFFER: usize = 2 * 1024;

/// What one event of a stream is to a listener. Slices point into the text buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// `: connected <sid>`: the listener is in its namespace and rooms.
    Connected,
    /// A benchmark delivery: its arguments after the `[` of its `data:` line (the
    /// shape of `sio::Incoming::Delivery`), for [`Dialect::stamp`].
    Delivery(&'a [u8]),
    /// The server's close notice.
    Closed,
    /// Anything else: `retry:`, heartbeats, other events.
    Other,
}

/// Reads one event (its lines, without the blank line that ends it).
fn classify(block: &[u8]) -> Event<'_> {
    let (mut name, mut data, mut connected) = (&b"message"[..], None, false);
    for line in block.split(|&b| b == b'\n') {
        if let Some(value) = line.strip_prefix(b"data:") {
            data.get_or_insert(value.strip_prefix(b" ").unwrap_or(value));
        } else if let Some(value) = line.strip_prefix(b"event:") {
            name = value.strip_prefix(b" ").unwrap_or(value);
        } else if line.starts_with(CONNECTED) {
            connected = true;
        }
    }
    match data {
        Some(data) if name == BENCH_EVENT.as_bytes() => data
            .strip_prefix(b"[")
            .map_or(Event::Other, Event::Delivery),
        _ if name == CLOSE_EVENT => Event::Closed,
        _ if connected => Event::Connected,
        _ => Event::Other,
    }
}

/// Hands each complete event of `text` to `each` until it says stop (`false`);
/// consumes the events handed over, leaving the rest (and any incomplete event).
fn walk_events(text: &mut BytesMut, mut each: impl FnMut(Event<'_>) -> bool) {
    let mut pos = 0;
    while let Some(end) = text[pos..].windows(2).position(|w| w == b"\n\n") {
        let go_on = each(classify(&text[pos..pos + end]));
        pos += end + 2;
        if !go_on {
            break;
        }
    }
    text.advance(pos);
}

/// The request that opens a stream of `rooms` in namespace `/`.
fn request(host: &str, rooms: &[String]) -> String {
    let mut query = String::from("nsp=/");
    for room in rooms {
        query.push_str("&room=");
        query.push_str(room);
    }
    format!("GET {PATH}?{query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n")
}

/// An open event stream.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The TCP connection.
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    raw: BytesMut,
    /// Decoded stream text not yet walked.
    text: BytesMut,
    /// Chunked transfer coding state (`None`: the body is sent as is).
    chunked: Option<Chunked>,
    /// How deliveries carry their stamp.
    dialect: Dialect,
}

impl Listener {
    /// Opens a stream of `rooms` and waits until the server says it is connected
    /// (`200 text/event-stream`, then `: connected <sid>`); a refusal (401/403/404)
    /// is an error with the server's JSON.
    pub(crate) async fn open(
        pool: &SourcePool,
        target: SocketAddr,
        rooms: &[String],
        dialect: Dialect,
    ) -> anyhow::Result<Listener> {
        let mut stream = pool.connect(target).await?;
        let host = target.to_string();
        stream
            .write_all(request(&host, rooms).as_bytes())
            .await
            .context("SSE request")?;
        let mut raw = BytesMut::with_capacity(READ_BUFFER);
        let head = loop {
            if let Some(head) = Head::parse(&raw)? {
                break head;
            }
            fill(&mut stream, &mut raw).await.context("SSE answer")?;
        };
        if head.status != 200 {
            let body = String::from_utf8_lossy(&raw[head.len..]);
            bail!("SSE refused: {} {}", head.status, body.trim());
        }
        raw.advance(head.len);
        let mut listener = Listener {
            stream,
            raw,
            text: BytesMut::new(),
            chunked: head.chunked.then(Chunked::default),
            dialect,
        };
        loop {
            let mut connected = false;
            listener.decode()?;
            walk_events(&mut listener.text, |event| {
                connected = event == Event::Connected;
                !connected
            });
            if connected {
                return Ok(listener);
            }
            listener.read(false).await.context("SSE stream start")?;
        }
    }

    /// Reads more of the stream (with the kernel's receive stamp when `stamped`, see
    /// `crate::arrival`); fails once it has ended.
    async fn read(&mut self, stamped: bool) -> anyhow::Result<crate::arrival::Stamped> {
        if self.chunked.as_ref().is_some_and(|c| c.ended) {
            bail!("server ended the stream");
        }
        crate::arrival::read(&mut self.stream, &mut self.raw, stamped).await
    }

    /// Moves what was read into the text buffer.
    fn decode(&mut self) -> anyhow::Result<()> {
        match &mut self.chunked {
            Some(chunked) => chunked.decode(&mut self.raw, &mut self.text),
            None => {
                self.text.extend_from_slice(&self.raw);
                self.raw.clear();
                Ok(())
            }
        }
    }

    /// Counts deliveries (and records their latency, into `lane`'s group, while `stats`
    /// is recording) until the stream ends, as `client::Session::receive` does.
    pub(crate) async fn receive(
        mut self,
        stats: &Stats,
        lane: (Group, usize),
    ) -> anyhow::Result<()> {
        let mut stamps = Vec::new();
        let dialect = self.dialect;
        let arrival = stats.arrival();
        if arrival {
            crate::arrival::enable(&self.stream)?;
        }
        loop {
            let at = self.read(arrival).await?;
            let recording = stats.recording();
            let (mut delivered, mut closed) = (0, false);
            self.decode()?;
            walk_events(&mut self.text, |event| {
                match event {
                    Event::Delivery(args) => {
                        delivered += 1;
                        // A stamp that does not parse is a missing sample.
                        if recording && let Some(stamp) = dialect.stamp(args) {
                            stamps.push(stamp);
                        }
                    }
                    Event::Closed => closed = true,
                    Event::Connected | Event::Other => {}
                }
                true
            });
            if !stamps.is_empty() {
                stats.record(lane, at, &stamps);
                stamps.clear();
            }
            // After recording: a drain that sees these deliveries counted sees their samples.
            stats.add_delivered(delivered);
            if closed {
                bail!("server closed the stream");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sio::payload;

    #[test]
    fn a_stream_reads_as_connected_then_deliveries() {
        let delivery = format!("event: bench\ndata: [\"fanout\",\"{}\"]\n\n", payload(1234));
        let stream = format!(
            "retry: 2000\n\n: connected abc\n\n{delivery}:\n\nid: 9\n{delivery}\
             event: switchboard:close\ndata: {{\"reason\":\"x\"}}\n\nevent: bench\ndata: [1"
        );
        let mut text = BytesMut::from(stream.as_bytes());
        let mut seen = Vec::new();
        walk_events(&mut text, |event| {
            seen.push(match event {
                Event::Delivery(args) => format!("{:?}", Dialect::Rules.stamp(args)),
                other => format!("{other:?}"),
            });
            true
        });
        assert_eq!(
            seen,
            [
                "Other",
                "Connected",
                "Some(1234)",
                "Other",
                "Some(1234)",
                "Closed"
            ]
        );
        // The incomplete event stays for the next read.
        assert_eq!(&text[..], b"event: bench\ndata: [1");
    }

    #[test]
    fn walking_stops_where_asked_and_keeps_the_rest() {
        let mut text = BytesMut::from(&b": connected a\n\nevent: bench\ndata: [2]\n\n"[..]);
        walk_events(&mut text, |event| event != Event::Connected);
        assert_eq!(&text[..], b"event: bench\ndata: [2]\n\n");
    }

    #[test]
    fn requests_name_the_namespace_and_each_room() {
        let rooms = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            request("h:1", &rooms),
            "GET /sse?nsp=/&room=a&room=b HTTP/1.1\r\nHost: h:1\r\nAccept: text/event-stream\r\n\r\n"
        );
    }
}
