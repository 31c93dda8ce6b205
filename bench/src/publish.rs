//! The publisher: a separate client that publishes to rooms it is not a receiver of:
//! through the `broadcast` handler from no room, or, where relay rules want the sender in
//! the room ([`Dialect::publisher_joins`]), as a member the relayed event skips; or,
//! for `switchboard serve`, through its HTTP API ([`Via::Api`]): one `POST
//! /api/v1/emit` per broadcast, pipelined on one keep-alive connection, each 200 answer
//! the broadcast's ack.
//!
//! Two pacing modes: closed loop ("as fast as the server accepts them": a window of
//! unacknowledged broadcasts, and a cap on published-but-undelivered events so a server
//! that acks before it delivers cannot hide a growing backlog), and a fixed rate. At a
//! fixed rate each broadcast carries the time it was *due* (`start + k / rate`), not
//! the time it was written: a publisher that falls behind (its runtime busy with the
//! receivers, or a write that blocks on a server not reading) sends its backlog late,
//! and stamping those with the time of writing would hide exactly the delay a
//! latency measurement is for (coordinated omission). The latency measured is thus
//! from when the broadcast was due to when it arrived, the generator's lateness
//! included, never less than the server's share.
//!
//! Every ack must be the dialect's positive one (a refused broadcast is an error), and
//! [`Publisher::settle`] ends a scenario with the exact number of broadcasts never acked:
//! the closed loop's write-offs after a stall only free its window, they do not count as
//! acks.

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
/// Time without progress of its own (an ack; a delivery too when it is the only
/// publisher) after which a blocked publisher writes its backlog off as lost (a server
/// that dropped events or acks must not stall the run forever). Other publishers'
/// deliveries are not its progress: counted, one publisher whose acks a server dropped
/// stayed blocked while the others ran.
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
    /// Counts of this publisher so far (`acked`: acks received, never write-offs).
    done: Published,
    /// Acks written off after a stall (every phase) that have not arrived since: they no
    /// longer hold places in the window.
    forgiven: u64,
    /// Broadcasts numbered below this had their acks written off: a Socket.IO ack of
    /// one of them arriving late gives its place in `forgiven` back.
    forgiven_below: u64,
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
            forgiven: 0,
            forgiven_below: 0,
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
            forgiven: 0,
            forgiven_below: 0,
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
        // Deliveries are this publisher's own only when it publishes alone.
        let alone = matches!(pace, Pace::Closed { share: 0 | 1, .. });
        let (mut last_seen, mut last_progress) = ((0, 0), Instant::now());
        while Instant::now() < until {
            let sent = self.done.sent - base.sent;
            let delivered = stats.delivered() - base_delivered;
            let progress = (if alone { delivered } else { 0 }, self.done.acked);
            if progress != last_seen {
                (last_seen, last_progress) = (progress, Instant::now());
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
                let at = match pace {
                    Pace::Rate(rate) => due_at(start, self.done.sent - base.sent, rate),
                    Pace::Closed { .. } => Instant::now(),
                };
                let stamp = stats.stamp(at);
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

    /// Broadcasts that may be sent now (at a fixed rate, those whose [`due_at`] has
    /// come).
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
                // The first at once: a phase of `s` seconds sends `rate × s`, not one
                // fewer (the last used to fall due on the phase's deadline, and a
                // phase asked for 1,000 broadcasts sent 999).
                let target = (start.elapsed().as_secs_f64() * rate) as u64 + 1;
                target.saturating_sub(sent)
            }
        }
    }

    /// Writes the current backlog and missing acks off as lost (the server dropped them),
    /// so the closed loop goes on; an ack that arrives later is still counted.
    fn write_off(&mut self, pace: Pace, sent: u64, delivered: u64) {
        if let Pace::Closed { fanout, share, .. } = pace {
            let counted = delivered / share.max(1) + self.done.written_off;
            self.done.written_off += (sent * fanout).saturating_sub(counted);
            let missing = self.unacked();
            self.done.lost_acks += missing;
            self.forgiven += missing;
            self.forgiven_below = self.done.sent;
        }
    }

    /// Broadcasts sent and neither acknowledged nor written off: the window's places in
    /// use (saturating: a server that acks twice must not wrap it).
    fn unacked(&self) -> u64 {
        self.done
            .sent
            .saturating_sub(self.done.acked + self.forgiven)
    }

    /// Counts `acks` new acks, `late` of them for written-off broadcasts.
    fn count_acks(&mut self, acks: u64, late: u64) {
        self.done.acked += acks;
        self.forgiven = self.forgiven.saturating_sub(late);
    }

    /// Reads acks until every broadcast sent so far has one or `until` passes; returns
    /// how many never got one (exact: write-offs do not count as acks). Ends a scenario,
    /// after its deliveries were waited for.
    pub(crate) async fn settle(&mut self, until: Instant) -> anyhow::Result<u64> {
        while self.done.acked < self.done.sent {
            tokio::select! {
                read = fill(&mut self.rd, &mut self.buf) => { read?; self.walk().await?; }
                () = tokio::time::sleep_until(until.into()) => break,
            }
        }
        Ok(self.done.sent.saturating_sub(self.done.acked))
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

    /// Walks what was read: counts acks (each must be positive), answers pings.
    async fn walk(&mut self) -> anyhow::Result<()> {
        let dialect = match self.wire {
            Wire::Socket(dialect) => dialect,
            Wire::Api(_) => {
                // Answers come in request order: after a write-off, the first ones
                // answer the written-off requests.
                let answers = http::take_responses(&mut self.buf)?;
                self.count_acks(answers, answers.min(self.forgiven));
                return Ok(());
            }
        };
        let mut replies = Replies::default();
        let (mut acked, mut late, mut refused) = (0, 0, None);
        let forgiven_below = self.forgiven_below;
        drain_frames(&mut self.buf, &mut replies, |p| {
            if let Incoming::Ack(id, args) = p {
                acked += 1;
                late += u64::from(id < forgiven_below);
                if args != dialect.ok_ack() && refused.is_none() {
                    let args = String::from_utf8_lossy(args);
                    refused = Some(format!("broadcast {id} refused: ack {args}"));
                }
            }
        })?;
        if let Some(refused) = refused {
            anyhow::bail!("{refused}");
        }
        self.count_acks(acked, late);
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

/// When broadcast `k` (from 0) of a fixed-rate run that began at `start` was due:
/// `Pace::Rate`'s `due` releases it once `elapsed × rate` reaches `k`.
fn due_at(start: Instant, k: u64, rate: f64) -> Instant {
    let offset = Duration::try_from_secs_f64(k as f64 / rate).unwrap_or(Duration::ZERO);
    // Never in the future: `due` released it, so its time has come (rounding aside).
    (start + offset).min(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// At a fixed rate a broadcast carries the time it was due, however late it is
    /// written, and never a time still to come.
    #[test]
    fn a_fixed_rate_broadcast_is_stamped_when_it_was_due() {
        let start = Instant::now() - Duration::from_secs(2);
        assert_eq!(due_at(start, 0, 10.0), start);
        assert_eq!(due_at(start, 10, 10.0), start + Duration::from_secs(1));
        let now = Instant::now();
        assert!(due_at(now, 1_000, 10.0) <= Instant::now());
    }

    /// A publisher in `dialect` whose server is the returned end of a loopback socket.
    async fn loopback(dialect: Dialect) -> anyhow::Result<(Publisher, tokio::net::TcpStream)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connect = tokio::net::TcpStream::connect(addr);
        let (client, server) = tokio::join!(connect, listener.accept());
        let (rd, wr) = client?.into_split();
        let publisher = Publisher {
            rd,
            wr,
            buf: BytesMut::new(),
            out: BytesMut::new(),
            done: Published::default(),
            forgiven: 0,
            forgiven_below: 0,
            wire: Wire::Socket(dialect),
        };
        Ok((publisher, server?.0))
    }

    /// Sends Socket.IO `packets` from the server side, one WebSocket frame each.
    async fn send(server: &mut tokio::net::TcpStream, packets: &[&str]) -> anyhow::Result<()> {
        let mut frames = BytesMut::new();
        for packet in packets {
            ws::encode_frame(&mut frames, OP_TEXT, packet.as_bytes(), None);
        }
        server.write_all(&frames).await?;
        Ok(())
    }

    /// A deadline `ms` milliseconds from now.
    fn in_ms(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[tokio::test]
    async fn a_late_ack_after_a_write_off_counts_once() -> anyhow::Result<()> {
        let (mut publisher, mut server) = loopback(Dialect::Handlers).await?;
        let pace = Pace::Closed {
            window: 16,
            fanout: 10,
            max_backlog: 160,
            share: 1,
        };
        publisher.done.sent = 16;
        publisher.write_off(pace, 16, 160);
        assert_eq!((publisher.done.lost_acks, publisher.unacked()), (16, 0));
        // The ack of broadcast 3 arrives after all: counted, and its written-off place
        // is not given twice (this used to overflow `sent - acked`).
        send(&mut server, &["433[true]"]).await?;
        assert_eq!(publisher.settle(in_ms(200)).await?, 15);
        assert_eq!((publisher.done.acked, publisher.forgiven), (1, 15));
        assert_eq!(publisher.unacked(), 0);
        // A broadcast sent after the write-off holds a place until its own ack.
        publisher.done.sent = 17;
        assert_eq!(publisher.unacked(), 1);
        send(&mut server, &["4316[true]"]).await?;
        assert_eq!(publisher.settle(in_ms(200)).await?, 15);
        assert_eq!(publisher.unacked(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn settle_waits_for_every_ack() -> anyhow::Result<()> {
        let (mut publisher, mut server) = loopback(Dialect::Handlers).await?;
        publisher.done.sent = 3;
        send(&mut server, &["430[true]", "431[true]"]).await?;
        assert_eq!(publisher.settle(in_ms(200)).await?, 1);
        let late = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            send(&mut server, &["432[true]"]).await
        };
        let (settled, sent) = tokio::join!(publisher.settle(in_ms(5000)), late);
        sent?;
        assert_eq!(settled?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn a_refused_broadcast_is_an_error_naming_its_ack() -> anyhow::Result<()> {
        let (mut publisher, mut server) = loopback(Dialect::Rules).await?;
        publisher.done.sent = 2;
        send(
            &mut server,
            &["430[{\"ok\":true}]", "431[{\"error\":\"not in room\"}]"],
        )
        .await?;
        let err = publisher.settle(in_ms(1000)).await.err();
        assert_eq!(
            err.map(|e| e.to_string()).as_deref(),
            Some("broadcast 1 refused: ack [{\"error\":\"not in room\"}]")
        );
        Ok(())
    }

    #[test]
    fn a_publisher_visits_one_residue_class_of_rooms() {
        assert_eq!(rooms_visited(1, (0, 1)), [0]);
        assert_eq!(rooms_visited(6, (1, 1)), [1, 2, 3, 4, 5, 0]);
        assert_eq!(rooms_visited(8, (3, 2)), [3, 5, 7, 1]);
        assert_eq!(rooms_visited(8, (3, 0)), [3]);
        assert!(rooms_visited(0, (3, 2)).is_empty());
    }
}
