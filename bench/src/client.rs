//! One generator connection: WebSocket + Engine.IO + Socket.IO handshake, room joins,
//! and the receive loop that counts deliveries and records their latency.
//!
//! The receive loop does one read per wake-up, walks every complete frame in place, and
//! touches shared state once per read: that is the whole per-message cost.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::net::SourcePool;
use crate::sio::{self, ConnectAnswer, Dialect, Incoming};
use crate::stats::{Group, Stats};
use crate::ws::{self, FrameHead, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// Replies a batch of frames asks for, sent after the batch is walked.
#[derive(Debug, Default)]
pub(crate) struct Replies {
    /// Engine.IO pings to answer with `3`.
    pub(crate) eio_pings: usize,
    /// Payload of a WebSocket ping to answer with a pong.
    pub(crate) ws_ping: Option<Vec<u8>>,
    /// The server closed or refused the session.
    pub(crate) closed: bool,
}

impl Replies {
    /// Notes what a control frame or packet asks for; returns the packet if it is neither.
    fn note<'a>(&mut self, opcode: u8, payload: &'a [u8]) -> Option<Incoming<'a>> {
        match opcode {
            OP_TEXT => match sio::classify(payload) {
                Incoming::Ping => self.eio_pings += 1,
                Incoming::Refused => self.closed = true,
                other => return Some(other),
            },
            OP_PING => self.ws_ping = Some(payload.to_vec()),
            OP_CLOSE => self.closed = true,
            _ => {}
        }
        None
    }

    /// Encodes the replies (masked, client side) into `out`.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        for _ in 0..self.eio_pings {
            ws::encode_frame(out, OP_TEXT, b"3", Some(rand::random()));
        }
        if let Some(payload) = &self.ws_ping {
            ws::encode_frame(out, OP_PONG, payload, Some(rand::random()));
        }
    }
}

/// Walks every complete frame in `buf`, handing Socket.IO packets to `on_packet` and
/// control frames to `replies`; consumes what it walked.
pub(crate) fn drain_frames(
    buf: &mut BytesMut,
    replies: &mut Replies,
    mut on_packet: impl FnMut(Incoming<'_>),
) -> anyhow::Result<()> {
    walk_frames(buf, replies, |packet| {
        on_packet(packet);
        None::<()>
    })?;
    Ok(())
}

/// Walks the complete frames in `buf` as [`drain_frames`] does, but stops after the
/// first packet `want` picks something out of: the frames after it stay in `buf` (a
/// resumed session's replay follows its CONNECT answer in the same read).
fn walk_frames<T>(
    buf: &mut BytesMut,
    replies: &mut Replies,
    mut want: impl FnMut(Incoming<'_>) -> Option<T>,
) -> anyhow::Result<Option<T>> {
    let mut pos = 0;
    let mut found = None;
    while found.is_none()
        && let Some(head) = FrameHead::parse(&buf[pos..])?
    {
        let end = pos + head.total_len();
        if let Some(packet) = replies.note(head.opcode, head.payload(&mut buf[pos..end])) {
            found = want(packet);
        }
        pos = end;
    }
    buf.advance(pos);
    Ok(found)
}

/// Reads more bytes into `buf`, failing on end of stream.
pub(crate) async fn fill<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
) -> anyhow::Result<()> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(ws::READ_BUFFER);
    }
    if rd.read_buf(buf).await? == 0 {
        bail!("server closed the connection");
    }
    Ok(())
}

/// Longest one handshake step may take (connect, upgrade, open, namespace connect, ack).
const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs one handshake step with a timeout; errors name the step.
async fn within<T>(
    step: &str,
    future: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(STEP_TIMEOUT, future).await {
        Ok(result) => result.with_context(|| step.to_owned()),
        Err(_) => bail!("{step}: no answer within {STEP_TIMEOUT:?}"),
    }
}

/// A connected Socket.IO client on namespace `/`.
#[derive(Debug)]
pub(crate) struct Session {
    /// The TCP connection.
    pub(crate) stream: TcpStream,
    /// Bytes read and not yet walked.
    pub(crate) buf: BytesMut,
    /// Scratch buffer for outgoing frames.
    out: BytesMut,
    /// Next acknowledgement id.
    next_id: u64,
    /// How this server joins, publishes and delivers.
    pub(crate) dialect: Dialect,
}

impl Session {
    /// Connects and completes the WebSocket, Engine.IO and Socket.IO handshakes with a
    /// server that speaks `dialect`.
    pub(crate) async fn open(
        pool: &SourcePool,
        target: SocketAddr,
        dialect: Dialect,
    ) -> anyhow::Result<Session> {
        let (session, _) = Session::connect(pool, target, dialect, b"40").await?;
        Ok(session)
    }

    /// [`Session::open`] with `connect` as the Socket.IO CONNECT packet (`40{…}`, e.g. a
    /// recovery claim); returns the server's answer too. Packets after the answer stay
    /// unread in `buf`.
    pub(crate) async fn connect(
        pool: &SourcePool,
        target: SocketAddr,
        dialect: Dialect,
        connect: &[u8],
    ) -> anyhow::Result<(Session, ConnectAnswer)> {
        let stream = within("TCP connect", async { Ok(pool.connect(target).await?) }).await?;
        let mut session = Session {
            stream,
            buf: BytesMut::with_capacity(ws::READ_BUFFER),
            out: BytesMut::new(),
            next_id: 0,
            dialect,
        };
        let host = target.to_string();
        let (stream, buf) = (&mut session.stream, &mut session.buf);
        within(
            "WebSocket upgrade",
            ws::client_handshake(stream, &host, sio::PATH, buf),
        )
        .await?;
        let open = |p: &Incoming<'_>| (*p == Incoming::Open).then_some(());
        within("Engine.IO open", session.wait_for(open)).await?;
        session.send_text(connect).await?;
        let connected = |p: &Incoming<'_>| match p {
            Incoming::Connected(payload) => Some(ConnectAnswer::parse(payload)),
            _ => None,
        };
        let answer = within("Socket.IO connect", session.wait_for(connected)).await?;
        Ok((session, answer))
    }

    /// Sends one text frame.
    pub(crate) async fn send_text(&mut self, text: &[u8]) -> anyhow::Result<()> {
        self.out.clear();
        ws::encode_frame(&mut self.out, OP_TEXT, text, Some(rand::random()));
        self.stream.write_all(&self.out).await?;
        Ok(())
    }

    /// Reads until `want` picks something out of a packet, answering pings meanwhile.
    async fn wait_for<T>(
        &mut self,
        want: impl Fn(&Incoming<'_>) -> Option<T>,
    ) -> anyhow::Result<T> {
        loop {
            let mut replies = Replies::default();
            let found = walk_frames(&mut self.buf, &mut replies, |p| want(&p))?;
            self.reply(&replies).await?;
            if let Some(found) = found {
                return Ok(found);
            }
            if replies.closed {
                bail!("server refused or closed the session");
            }
            fill(&mut self.stream, &mut self.buf).await?;
        }
    }

    /// Sends what `replies` asks for.
    pub(crate) async fn reply(&mut self, replies: &Replies) -> anyhow::Result<()> {
        self.out.clear();
        replies.encode(&mut self.out);
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
        }
        Ok(())
    }

    /// Joins `room` and waits for the server's ack, which must say it joined.
    pub(crate) async fn join(&mut self, room: &str) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(sio::join(id, room).as_bytes()).await?;
        let ack = |p: &Incoming<'_>| match p {
            Incoming::Ack(i, args) if *i == id => Some(args.to_vec()),
            _ => None,
        };
        let args = within("join ack", self.wait_for(ack)).await?;
        if args != self.dialect.ok_ack() {
            bail!(
                "join {room:?} refused: ack {}",
                String::from_utf8_lossy(&args)
            );
        }
        Ok(())
    }

    /// Closes the session properly: Socket.IO disconnect, WebSocket close, then waits
    /// (bounded) for the server to close its side.
    pub(crate) async fn close(mut self) -> anyhow::Result<()> {
        self.send_text(b"41").await?;
        self.out.clear();
        ws::encode_frame(
            &mut self.out,
            OP_CLOSE,
            &1000u16.to_be_bytes(),
            Some(rand::random()),
        );
        self.stream.write_all(&self.out).await?;
        let drain = async {
            let mut scratch = [0u8; 1024];
            while self.stream.read(&mut scratch).await.unwrap_or(0) > 0 {}
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
        Ok(())
    }

    /// Counts deliveries (and records their latency, into `lane`'s group, while `stats`
    /// is recording) until the connection ends; `lane`'s shard spreads histogram locking.
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
            let at = crate::arrival::read(&mut self.stream, &mut self.buf, arrival).await?;
            let recording = stats.recording();
            let mut delivered = 0;
            let mut replies = Replies::default();
            drain_frames(&mut self.buf, &mut replies, |packet| {
                if let Incoming::Delivery(args) = packet {
                    delivered += 1;
                    // A stamp that does not parse is a missing sample: the latency
                    // phase's sample count then differs from what it expected.
                    if recording && let Some(stamp) = dialect.stamp(args) {
                        stamps.push(stamp);
                    }
                }
            })?;
            if !stamps.is_empty() {
                stats.record(lane, at, &stamps);
                stamps.clear();
            }
            // After recording: a drain that sees these deliveries counted sees their samples.
            stats.add_delivered(delivered);
            self.reply(&replies).await?;
            if replies.closed {
                bail!("server closed the session");
            }
        }
    }
}
