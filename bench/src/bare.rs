//! The bare broadcaster: tokio plus the minimal WebSocket codec, speaking just enough
//! Engine.IO/Socket.IO for the workload (open, connect, `join`, `broadcast`,
//! `message-with-ack`). Each broadcast frame is encoded once and its bytes shared by
//! every recipient's queue. No pings, no polling, no namespaces but `/`: a reference point for what a minimal
//! broadcaster costs on this hardware, not a limit of it (the fixture's peaks are above
//! its own), and not a server anyone should run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use serde_json::value::RawValue;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::client::fill;
use crate::ws::{self, FrameHead, OP_CLOSE, OP_TEXT};

/// Frames queued per connection before further broadcasts to it are dropped; far more
/// than the generator's backlog cap ever lets build up.
const OUTBOX_FRAMES: usize = 4096;
/// Bytes gathered from the queue into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// Outgoing queue of one connection.
type Outbox = mpsc::Sender<Bytes>;

/// Rooms and their members. A `std` lock: it is never held across an await, and
/// broadcasts only read it.
#[derive(Debug, Default)]
struct Hub {
    /// Room name → connection id → its queue.
    rooms: RwLock<HashMap<String, HashMap<u64, Outbox>>>,
    /// Broadcast frames dropped because a queue was full.
    dropped: AtomicU64,
}

impl Hub {
    /// Adds connection `id` to `room`.
    fn join(&self, room: &str, id: u64, outbox: &Outbox) {
        let mut rooms = self
            .rooms
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rooms
            .entry(room.to_owned())
            .or_default()
            .insert(id, outbox.clone());
    }

    /// Removes connection `id` from `rooms`.
    fn leave_all(&self, rooms_of_conn: &[String], id: u64) {
        let mut rooms = self
            .rooms
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for room in rooms_of_conn {
            if let Some(members) = rooms.get_mut(room) {
                members.remove(&id);
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
        }
    }

    /// Queues one pre-encoded frame to every member of `room`.
    fn broadcast(&self, room: &str, frame: &Bytes) {
        let rooms = self
            .rooms
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for outbox in rooms.get(room).into_iter().flat_map(HashMap::values) {
            if outbox.try_send(frame.clone()).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Binds `host:port`, prints `listening on ADDR`, serves until SIGINT/SIGTERM.
pub(crate) async fn serve(host: &str, port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind((host, port))
        .await
        .with_context(|| format!("bind {host}:{port}"))?;
    println!("listening on {}", listener.local_addr()?);
    let hub = Arc::new(Hub::default());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                next_id += 1;
                tokio::spawn(connection(stream, hub.clone(), next_id));
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    eprintln!(
        "bare: dropped {} frames",
        hub.dropped.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Encodes one server text frame.
fn text_frame(payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 4);
    ws::encode_frame(&mut out, OP_TEXT, payload, None);
    out.freeze()
}

/// Drives one connection: handshake, then reads packets until the client leaves.
async fn connection(mut stream: TcpStream, hub: Arc<Hub>, id: u64) {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(ws::READ_BUFFER);
    if ws::server_handshake(&mut stream, &mut buf).await.is_err() {
        return;
    }
    let (mut rd, wr) = stream.into_split();
    let (outbox, queue) = mpsc::channel(OUTBOX_FRAMES);
    tokio::spawn(write_loop(wr, queue));
    let open = format!(
        "0{{\"sid\":\"b{id}\",\"upgrades\":[],\"pingInterval\":25000,\"pingTimeout\":20000,\"maxPayload\":1000000}}"
    );
    let mut conn = Conn {
        id,
        hub,
        outbox,
        rooms: Vec::new(),
    };
    conn.send(text_frame(open.as_bytes()));
    while fill(&mut rd, &mut buf).await.is_ok() && conn.walk(&mut buf) {}
    conn.hub.leave_all(&conn.rooms, id);
    let mut close = BytesMut::new();
    ws::encode_frame(&mut close, OP_CLOSE, &1000u16.to_be_bytes(), None);
    conn.send(close.freeze());
}

/// Writes queued frames, gathering what is queued into one write.
async fn write_loop(mut wr: OwnedWriteHalf, mut queue: mpsc::Receiver<Bytes>) {
    let mut out = BytesMut::new();
    while let Some(frame) = queue.recv().await {
        out.extend_from_slice(&frame);
        while out.len() < WRITE_BATCH {
            match queue.try_recv() {
                Ok(frame) => out.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if wr.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
    let _ = wr.shutdown().await;
}

/// One connection's state on the read side.
struct Conn {
    /// Connection id (also its Engine.IO sid).
    id: u64,
    /// Shared rooms.
    hub: Arc<Hub>,
    /// Own outgoing queue.
    outbox: Outbox,
    /// Rooms joined, to leave them on close.
    rooms: Vec<String>,
}

impl Conn {
    /// Queues a frame to this connection.
    fn send(&self, frame: Bytes) {
        let _ = self.outbox.try_send(frame);
    }

    /// Handles every complete frame in `buf`; `false` once the client is gone.
    fn walk(&mut self, buf: &mut BytesMut) -> bool {
        let mut pos = 0;
        while let Ok(Some(head)) = FrameHead::parse(&buf[pos..]) {
            let end = pos + head.total_len();
            let opcode = head.opcode;
            let payload = head.payload(&mut buf[pos..end]);
            if opcode == OP_CLOSE || (opcode == OP_TEXT && !self.packet(payload)) {
                return false;
            }
            pos = end;
        }
        bytes::Buf::advance(buf, pos);
        FrameHead::parse(buf).is_ok()
    }

    /// Handles one Socket.IO packet; `false` on disconnect.
    fn packet(&mut self, packet: &[u8]) -> bool {
        match packet {
            b"40" | [b'4', b'0', b'{', ..] => {
                self.send(text_frame(
                    format!("40{{\"sid\":\"s{}\"}}", self.id).as_bytes(),
                ));
            }
            [b'4', b'1', ..] => return false,
            [b'4', b'2', rest @ ..] => self.event(rest),
            _ => {}
        }
        true
    }

    /// Handles `42<id>[event, ...args]`.
    fn event(&mut self, rest: &[u8]) {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (ack, body) = rest.split_at(digits);
        let Ok(args) = serde_json::from_slice::<Vec<&RawValue>>(body) else {
            return;
        };
        let Some((event, args)) = args.split_first() else {
            return;
        };
        let reply = match event.get() {
            "\"join\"" => self.join(args),
            "\"broadcast\"" => self.broadcast(args),
            "\"message-with-ack\"" => Some(join_raw(args)),
            _ => None,
        };
        if let (false, Some(reply)) = (ack.is_empty(), reply) {
            let ack = std::str::from_utf8(ack).unwrap_or("0");
            self.send(text_frame(format!("43{ack}[{reply}]").as_bytes()));
        }
    }

    /// `join` (room): joins, acks `true`.
    fn join(&mut self, args: &[&RawValue]) -> Option<String> {
        let room: String = serde_json::from_str(args.first()?.get()).ok()?;
        self.hub.join(&room, self.id, &self.outbox);
        self.rooms.push(room);
        Some("true".to_owned())
    }

    /// `broadcast` (room, event, ...args): encodes the event frame once, queues it to the
    /// room, acks `true`.
    fn broadcast(&mut self, args: &[&RawValue]) -> Option<String> {
        let (room, rest) = args.split_first()?;
        let room: String = serde_json::from_str(room.get()).ok()?;
        let frame = text_frame(format!("42[{}]", join_raw(rest)).as_bytes());
        self.hub.broadcast(&room, &frame);
        Some("true".to_owned())
    }
}

/// Raw JSON values joined with commas.
fn join_raw(values: &[&RawValue]) -> String {
    values.iter().map(|v| v.get()).collect::<Vec<_>>().join(",")
}
