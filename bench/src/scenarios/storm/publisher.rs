//! The recovery storm's publisher, on the surviving node: numbered events `0, 1, 2, …`
//! through the `broadcast` handler at a fixed rate, event `n` to room `n % rooms`, each
//! acked under its own number, so the scenario knows exactly which events the cluster
//! promised to deliver (`broadcast` on the streams adapter acks `true` once the stream
//! holds the event).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use crate::client::{Replies, Session, drain_frames, fill};
use crate::sio::{self, Incoming};
use crate::ws::{self, OP_TEXT};

use super::client::room_name;

/// Pacing tick: at 200 events/s one event is due every 5 ms.
const TICK: Duration = Duration::from_millis(2);
/// How long the publisher waits, after it stops, for the acks of its last events.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// The one ack that promises delivery (the contract's `true`).
const ACK_TRUE: &[u8] = b"[true]";

/// What the publisher did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Published {
    /// Events sent.
    pub(crate) sent: u64,
    /// Per event number: whether the server acked it `true`.
    pub(crate) acked: Vec<bool>,
    /// Events acked with anything else (`{"error": …}`).
    pub(crate) refused: u64,
}

/// The publisher's connection, split so acks are read while events are written.
#[derive(Debug)]
pub(crate) struct Publisher {
    /// Read half: acks and pings.
    rd: OwnedReadHalf,
    /// Write half: events and pongs.
    wr: OwnedWriteHalf,
    /// Bytes read and not yet walked.
    buf: BytesMut,
    /// Outgoing frames of one tick.
    out: BytesMut,
    /// Rooms, in turn.
    rooms: usize,
    /// Counts so far.
    done: Published,
}

impl Publisher {
    /// A publisher on `session` (a client in no room) for `rooms` rooms.
    pub(crate) fn new(session: Session, rooms: usize) -> Publisher {
        let (rd, wr) = session.stream.into_split();
        Publisher {
            rd,
            wr,
            buf: session.buf,
            out: BytesMut::new(),
            rooms: rooms.max(1),
            done: Published::default(),
        }
    }

    /// Publishes `rate` events per second until `stop`, then waits (at most
    /// [`ACK_WAIT`]) for the acks still owed. `next` always holds the number of the next
    /// event (the scenario reads it when it kills the node).
    pub(crate) async fn run(
        mut self,
        rate: f64,
        mut stop: watch::Receiver<bool>,
        next: Arc<AtomicU64>,
    ) -> anyhow::Result<Published> {
        let start = Instant::now();
        while !*stop.borrow() {
            let target = (start.elapsed().as_secs_f64() * rate) as u64;
            for n in self.done.sent..target {
                let room = room_name((n % self.rooms as u64) as usize);
                let packet = sio::numbered_broadcast(n, &room, n);
                ws::encode_frame(
                    &mut self.out,
                    OP_TEXT,
                    packet.as_bytes(),
                    Some(rand::random()),
                );
                self.done.sent += 1;
            }
            next.store(self.done.sent, Ordering::Relaxed);
            self.flush().await?;
            tokio::select! {
                read = fill(&mut self.rd, &mut self.buf) => { read?; self.walk().await?; }
                () = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => {}
            }
        }
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        while self.owed() > 0 {
            tokio::select! {
                read = fill(&mut self.rd, &mut self.buf) => { read?; self.walk().await?; }
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        Ok(self.done)
    }

    /// Events sent and not answered yet.
    fn owed(&self) -> u64 {
        let acked = self.done.acked.iter().filter(|&&a| a).count() as u64;
        self.done.sent - acked - self.done.refused
    }

    /// Writes the pending frames.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.out.is_empty() {
            self.wr.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Walks what was read: records acks, answers pings.
    async fn walk(&mut self) -> anyhow::Result<()> {
        let mut replies = Replies::default();
        let done = &mut self.done;
        drain_frames(&mut self.buf, &mut replies, |p| {
            let Incoming::Ack(n, args) = p else { return };
            let Ok(i) = usize::try_from(n) else { return };
            if args != ACK_TRUE {
                done.refused += 1;
            } else if i < done.sent as usize {
                if i >= done.acked.len() {
                    done.acked.resize(i + 1, false);
                }
                done.acked[i] = true;
            }
        })?;
        replies.encode(&mut self.out);
        if replies.closed {
            anyhow::bail!("server closed the publisher's session");
        }
        self.flush().await
    }
}
