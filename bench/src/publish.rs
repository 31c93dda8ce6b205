//! The publisher: a separate client that publishes to rooms it is not a receiver of:
//! through the `broadcast` handler from no room, or, where relay rules want the sender in
//! the room ([`Dialect::publisher_joins`]), as a member the relayed event skips; or,
//! for `switchboard serve`, through its HTTP API ([`Via::Api`]): one `POST
//! /api/v1/emit` per broadcast, pipelined on one keep-alive connection, each 200 answer
//! the broadcast's ack.
//!
//! Two pacing modes: closed loop ("as fast as the server accepts them": a window of
//! unacknowledged broadcasts, and a cap on published-but-undelivered events so a server
//! that acks before it delivers cannot hide a growing backlog), and a fixed rate.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::client::{Replies, Session, drain_frames, fill};
use crate::http;
use crate::prepare::API_KEY;
use crate::scenarios::Target;
use crate::sio::{Dialect, Incoming};
use crate::stats::Stats;
use crate::ws::{self, OP_TEXT};

/// Tick used while waiting for deliveries to catch up or for the next scheduled publish.
const PACE_TICK: Duration = Duration::from_millis(1);
/// Time without any delivery after which a blocked publisher writes its backlog off as
/// lost (a server that dropped events must not stall the run forever).
const STALL: Duration = Duration::from_secs(1);
/// Most broadcasts written in one batch, so a stalled server cannot make one huge write.
const MAX_BATCH: u64 = 256;

/// Where a publisher publishes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// A Socket.IO client, in the target's dialect.
    Socket,
    /// `switchboard serve`'s HTTP API, with the key its generated config accepts.
    Api,
}

/// What a publisher's connection speaks.
#[derive(Debug)]
enum Wire {
    /// Socket.IO in this dialect: broadcasts are events, acks are Socket.IO acks.
    Socket(Dialect),
    /// HTTP/1.1 to the API of the server at this `Host`: broadcasts are emit requests,
    /// acks are their 200 answers, in order.
    Api(String),
}

/// How the publisher decides when to send the next broadcast.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pace {
    /// As fast as acks come back, with at most `window` unacked broadcasts and at most
    /// `max_backlog` published events not yet delivered to all `fanout` members.
    Closed {
        /// Unacknowledged broadcasts allowed.
        window: u64,
        /// Members per room (deliveries per broadcast).
        fanout: u64,
        /// Undelivered events allowed, counted in deliveries.
        max_backlog: u64,
        /// Publishers sharing the receivers (each counts its share of deliveries).
        share: u64,
    },
    /// A fixed number of broadcasts per second.
    Rate(f64),
}

/// What one publishing phase did (counts of that phase only).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Published {
    /// Broadcasts sent.
    pub(crate) sent: u64,
    /// Broadcasts acknowledged by the server.
    pub(crate) acked: u64,
    /// Deliveries written off as lost after a stall.
    pub(crate) written_off: u64,
    /// Acks written off as lost after a stall.
    pub(crate) lost_acks: u64,
}

/// A publisher connection, split so acks are read while broadcasts are written.
#[derive(Debug)]
pub(crate) struct Publisher {
    /// Read half: acks and pings.
    rd: OwnedReadHalf,
    /// Write half: broadcasts and pongs.
    wr: OwnedWriteHalf,
    /// Bytes read and not yet walked.
    buf: BytesMut,
    /// Outgoing frames of one batch.
    out: BytesMut,
    /// Counts of this publisher so far.
    done: Published,
    /// How broadcasts are sent and acknowledged.
    wire: Wire,
}

impl Publisher {
    /// Opens a publisher that will publish to `rooms`; joins them first when the
    /// server's dialect wants the sender in the room.
    pub(crate) async fn open(target: &Target, rooms: &[String]) -> anyhow::Result<Publisher> {
        let mut session = Session::open(&target.pool, target.addr, target.dialect).await?;
        if target.dialect.publisher_joins() {
            for room in rooms {
                session.join(room).await?;
            }
        }
        let (rd, wr) = session.stream.into_split();
        Ok(Publisher {
            rd,
            wr,
            buf: session.buf,
            out: BytesMut::new(),
            done: Published::default(),
            wire: Wire::Socket(session.dialect),
        })
    }

    /// Opens a publisher through `switchboard serve`'s HTTP API (a plain keep-alive
    /// connection; nothing to join).
    pub(crate) async fn api(target: &Target) -> anyhow::Result<Publisher> {
        let (rd, wr) = target.pool.connect(target.addr).await?.into_split();
        Ok(Publisher {
            rd,
            wr,
            buf: BytesMut::with_capacity(ws::READ_BUFFER),
            out: BytesMut::new(),
            done: Published::default(),
            wire: Wire::Api(target.addr.to_string()),
        })
    }

    /// Opens a publisher to `rooms` from `via`.
    pub(crate) async fn open_via(
        target: &Target,
        rooms: &[String],
        via: Via,
    ) -> anyhow::Result<Publisher> {
        match via {
            Via::Socket => Publisher::open(target, rooms).await,
            Via::Api => Publisher::api(target).await,
        }
    }

    /// Publishes to `rooms` (picked round-robin from `offset`, `stride` apart) under
    /// `pace` until `until`, using `stats` for the clock and the delivery backlog.
    pub(crate) async fn run(
        &mut self,
        rooms: &[String],
        (offset, stride): (usize, usize),
        pace: Pace,
        stats: &Stats,
        until: Instant,
    ) -> anyhow::Result<Published> {
        let start = Instant::now();
        (self.done.written_off, self.done.lost_acks) = (0, 0);
        let (base, base_delivered) = (self.done, stats.delivered());
        let mut next_room = offset;
        let closed_loop = matches!(pace, Pace::Closed { .. });
        let (mut last_seen, mut last_progress) = ((0, 0), Instant::now());
        while Instant::now() < until {
            let sent = self.done.sent - base.sent;
            let delivered = stats.delivered() - base_delivered;
            if (delivered, self.done.acked) != last_seen {
                (last_seen, last_progress) = ((delivered, self.done.acked), Instant::now());
            }
            let mut due = self.due(pace, sent, delivered, start).min(MAX_BATCH);
            if due == 0 && last_progress.elapsed() > STALL {
                self.write_off(pace, sent, delivered);
                last_progress = Instant::now();
                due = self.due(pace, sent, delivered, start).min(MAX_BATCH);
            }
            for _ in 0..due {
                let room = &rooms[next_room % rooms.len()];
                next_room += stride;
                let stamp = stats.stamp(Instant::now());
                self.encode(room, stamp);
                self.done.sent += 1;
            }
            self.flush().await?;
            tokio::select! {
                read = fill(&mut self.rd, &mut self.buf) => { read?; self.walk().await?; }
                () = tokio::time::sleep(PACE_TICK) => {}
                () = stats.deliveries_arrived(), if due == 0 && closed_loop => {}
                () = tokio::time::sleep_until(until.into()) => break,
            }
        }
        Ok(Published {
            sent: self.done.sent - base.sent,
            acked: self.done.acked - base.acked,
            written_off: self.done.written_off,
            lost_acks: self.done.lost_acks,
        })
    }

    /// Broadcasts that may be sent now.
    fn due(&self, pace: Pace, sent: u64, delivered: u64, start: Instant) -> u64 {
        match pace {
            Pace::Closed {
                window,
                fanout,
                max_backlog,
                share,
            } => {
                let delivered = delivered / share.max(1) + self.done.written_off;
                let backlog = (sent * fanout).saturating_sub(delivered);
                let by_backlog = max_backlog.saturating_sub(backlog) / fanout.max(1);
                window.saturating_sub(self.unacked()).min(by_backlog)
            }
            Pace::Rate(rate) => {
                let target = (start.elapsed().as_secs_f64() * rate) as u64;
                target.saturating_sub(sent)
            }
        }
    }

    /// Writes the current backlog and missing acks off as lost (the server dropped them).
    fn write_off(&mut self, pace: Pace, sent: u64, delivered: u64) {
        if let Pace::Closed { fanout, share, .. } = pace {
            let counted = delivered / share.max(1) + self.done.written_off;
            self.done.written_off += (sent * fanout).saturating_sub(counted);
            self.done.lost_acks += self.unacked();
            self.done.acked = self.done.sent;
        }
    }

    /// Broadcasts sent and not yet acknowledged.
    fn unacked(&self) -> u64 {
        self.done.sent - self.done.acked
    }

    /// Appends the next broadcast (stamped `stamp`, to `room`) to the pending batch.
    fn encode(&mut self, room: &str, stamp: u64) {
        match &self.wire {
            Wire::Socket(dialect) => {
                let packet = dialect.publish(self.done.sent, room, stamp);
                ws::encode_frame(
                    &mut self.out,
                    OP_TEXT,
                    packet.as_bytes(),
                    Some(rand::random()),
                );
            }
            Wire::Api(host) => http::emit_request(&mut self.out, host, API_KEY, room, stamp),
        }
    }

    /// Writes the pending batch.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.out.is_empty() {
            self.wr.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Walks what was read: counts acks, answers pings.
    async fn walk(&mut self) -> anyhow::Result<()> {
        if let Wire::Api(_) = self.wire {
            self.done.acked += http::take_responses(&mut self.buf)?;
            return Ok(());
        }
        let mut replies = Replies::default();
        let mut acked = 0;
        drain_frames(&mut self.buf, &mut replies, |p| {
            acked += u64::from(matches!(p, Incoming::Ack(..)))
        })?;
        self.done.acked += acked;
        replies.encode(&mut self.out);
        if replies.closed {
            anyhow::bail!("server closed the publisher's session");
        }
        self.flush().await
    }
}

/// Indices of the rooms a publisher with `(offset, stride)` picks among `len` rooms in
/// [`Publisher::run`], each once, in the order it first picks them.
pub(crate) fn rooms_visited(len: usize, (offset, stride): (usize, usize)) -> Vec<usize> {
    if len == 0 {
        return Vec::new();
    }
    let start = offset % len;
    let mut visited = vec![start];
    let mut next = (start + stride) % len;
    while next != start {
        visited.push(next);
        next = (next + stride) % len;
    }
    visited
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_visits_one_residue_class_of_rooms() {
        assert_eq!(rooms_visited(1, (0, 1)), [0]);
        assert_eq!(rooms_visited(6, (1, 1)), [1, 2, 3, 4, 5, 0]);
        assert_eq!(rooms_visited(8, (3, 2)), [3, 5, 7, 1]);
        assert_eq!(rooms_visited(8, (3, 0)), [3]);
        assert!(rooms_visited(0, (3, 2)).is_empty());
    }
}
