//! Fan-out and latency on one room: the publisher (not a receiver) broadcasts 100-byte
//! events as fast as the server accepts them (deliveries/s, CPU per million
//! deliveries), then at a fixed rate of half that peak (publish→deliver percentiles).
//!
//! Every event published reaches every member of the room exactly once, so between phases
//! the scenario waits until all of them have arrived: a latency phase then records exactly
//! its own events (`samples == expected`), and the scenario ends ([`Room::settle`]) with
//! exact counts of events that never arrived (`undelivered`), broadcasts never acked
//! (`unacked`) and receivers lost over every phase (`lost_connections`).

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::fleet::{Fleet, RoomsOf, Transport};
use crate::procstat::{Spent, Usage};
use crate::progress::Progress;
use crate::publish::{Pace, Published, Publisher, Via};
use crate::scenarios::{DRAIN, Params, Target, per_million, secs};
use crate::stats::{End, Quantiles, Stats};

/// Name of the one room of this scenario.
const ROOM: &str = "fanout";
/// Unacknowledged broadcasts the publisher allows.
const ACK_WINDOW: u64 = 16;
/// Published-but-undelivered events allowed, in broadcasts' worth: each receiver has at
/// most this many events queued for it on average, well under socketioxide's default
/// per-socket buffer of 128 packets, so no server is pushed into dropping.
const BACKLOG_BROADCASTS: u64 = 16;

/// Throughput of one room size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct FanoutResult {
    /// Clients in the room.
    pub(crate) room_size: usize,
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// Broadcasts sent during the measured phase.
    pub(crate) broadcasts: u64,
    /// Events received by the room's clients during the measured phase.
    pub(crate) deliveries: u64,
    /// Deliveries per second.
    pub(crate) deliveries_per_sec: f64,
    /// Server CPU seconds per million deliveries.
    pub(crate) server_cpu_s_per_m: f64,
    /// Server CPU use during the phase, in cores.
    pub(crate) server_cores: f64,
    /// Generator CPU seconds per million deliveries (its own cost).
    pub(crate) generator_cpu_s_per_m: f64,
    /// Deliveries written off after the server stopped delivering (dropped events). The
    /// publisher's guess after a 1 s stall, during the measured phase only: events that
    /// arrive later are counted here all the same.
    pub(crate) written_off: u64,
    /// Deliveries of the whole scenario (every phase of this room size, warm-ups included)
    /// that had not arrived when it ended: broadcasts × room size − events received. Exact.
    #[serde(default)]
    pub(crate) undelivered: u64,
    /// Broadcasts of the whole scenario never acknowledged by its end (write-offs after
    /// a stall are not acks). Exact.
    #[serde(default)]
    pub(crate) unacked: u64,
    /// Room clients whose connection ended (the server closed it) by the end of the
    /// scenario, every phase.
    pub(crate) lost_connections: usize,
}

/// Latency at a fixed publish rate for one room size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LatencyResult {
    /// Clients in the room.
    pub(crate) room_size: usize,
    /// Publish rate as a fraction of the measured fan-out peak (`None`: a fixed rate).
    pub(crate) load: Option<f64>,
    /// Publish rate in broadcasts per second.
    pub(crate) rate: f64,
    /// Server CPU use during the phase, in cores.
    pub(crate) server_cores: f64,
    /// Generator CPU use during the phase, in cores.
    pub(crate) generator_cores: f64,
    /// Deliveries per second that rate asks for.
    pub(crate) offered_deliveries_per_sec: f64,
    /// Deliveries recorded.
    pub(crate) samples: u64,
    /// Deliveries expected (broadcasts × room size).
    pub(crate) expected: u64,
    /// Publish→deliver percentiles: to the event's arrival at the socket in a run with
    /// arrival stamps, to the generator's read otherwise. Serialized inline, as the four
    /// fields of this struct that results written before had.
    #[serde(flatten)]
    pub(crate) quantiles: Quantiles,
    /// The same samples ended at the generator's read instead of the event's arrival at
    /// the socket (`None`: a run before arrival stamps, whose percentiles above are
    /// already at the read).
    #[serde(default)]
    pub(crate) at_read: Option<Quantiles>,
    /// Samples whose read the kernel did not stamp (ended at the read; 0 in runs before
    /// arrival stamps).
    #[serde(default)]
    pub(crate) unstamped: u64,
}

/// A room of clients plus a publisher, ready to publish.
pub(crate) struct Room {
    /// The room's clients.
    fleet: Fleet,
    /// The publisher.
    publisher: Publisher,
    /// Shared counters.
    pub(crate) stats: Arc<Stats>,
    /// Clients in the room.
    pub(crate) size: usize,
    /// Broadcasts sent so far, every phase.
    published: u64,
    /// Deliveries an earlier [`Room::drain`] gave up waiting for (so a server that lost
    /// events costs one wait, not one per phase).
    given_up: u64,
}

/// Opens `size` clients in the room (spread over the target's nodes) and a publisher
/// that is not one of them (a member of the room when the dialect wants one, see
/// [`Publisher::open`]), on the first node.
pub(crate) async fn open_room(target: &Target, size: usize) -> anyhow::Result<Room> {
    open_room_via(target, size, Transport::WebSocket, Via::Socket).await
}

/// [`open_room`] with members that listen over `transport` and a publisher that
/// publishes from `via`.
pub(crate) async fn open_room_via(
    target: &Target,
    size: usize,
    transport: Transport,
    via: Via,
) -> anyhow::Result<Room> {
    let stats = Arc::new(Stats::new(target.arrival)?);
    let mut fleet = Fleet::new(target, stats.clone()).over(transport);
    let rooms: RoomsOf = Arc::new(|_| vec![ROOM.to_owned()]);
    let label = match transport {
        Transport::WebSocket => format!("fanout: opening {size}"),
        Transport::Sse => format!("fanout: opening {size} SSE listeners"),
    };
    fleet.grow(size, rooms, &label).await?;
    let publisher = Publisher::open_via(target, &[ROOM.to_owned()], via).await?;
    Ok(Room {
        fleet,
        publisher,
        stats,
        size,
        published: 0,
        given_up: 0,
    })
}

impl Room {
    /// Closed-loop pacing for this room.
    fn closed_loop(&self) -> Pace {
        let fanout = self.size as u64;
        let max_backlog = BACKLOG_BROADCASTS * fanout;
        Pace::Closed {
            window: ACK_WINDOW,
            fanout,
            max_backlog,
            share: 1,
        }
    }

    /// Publishes with `pace` for `seconds`.
    pub(crate) async fn publish(
        &mut self,
        pace: Pace,
        seconds: f64,
        label: &str,
    ) -> anyhow::Result<crate::publish::Published> {
        let _bar = Progress::timed(label, secs(seconds));
        let rooms = [ROOM.to_owned()];
        let until = Instant::now() + secs(seconds);
        let published = self
            .publisher
            .run(&rooms, (0, 1), pace, &self.stats, until)
            .await?;
        self.published += published.sent;
        Ok(published)
    }

    /// Deliveries every broadcast so far asks for.
    fn expected(&self) -> u64 {
        self.published * self.size as u64
    }

    /// Waits until every event published so far has arrived (less what an earlier drain
    /// gave up on), bounded by [`DRAIN`]; on timeout, gives up on what is missing.
    pub(crate) async fn drain(&mut self) {
        let expected = self.expected() - self.given_up;
        if !self.stats.wait_delivered(expected, DRAIN).await {
            self.given_up = self.undelivered();
        }
    }

    /// Deliveries asked for so far that have not arrived.
    fn undelivered(&self) -> u64 {
        self.expected().saturating_sub(self.stats.delivered())
    }

    /// Ends the scenario: waits for every event ([`Room::drain`]) and then for every ack
    /// (at most [`DRAIN`]), and records on `result` the exact counts of the whole
    /// scenario: deliveries that never arrived, broadcasts never acked, receivers lost.
    pub(crate) async fn settle(&mut self, result: &mut FanoutResult) -> anyhow::Result<()> {
        (result.undelivered, result.unacked, result.lost_connections) = self.finish().await?;
        Ok(())
    }

    /// [`Room::settle`]'s counts: (deliveries that never arrived, broadcasts never
    /// acked, receivers lost), every phase.
    pub(crate) async fn finish(&mut self) -> anyhow::Result<(u64, u64, usize)> {
        self.drain().await;
        let undelivered = self.undelivered();
        let unacked = self.publisher.settle(Instant::now() + DRAIN).await?;
        Ok((undelivered, unacked, self.fleet.lost()))
    }
}

/// Measures peak fan-out throughput on an open room; also returns the CPU each process
/// under test spent in the measured phase.
pub(crate) async fn measure_peak(
    room: &mut Room,
    target: &Target,
    params: &Params,
) -> anyhow::Result<(FanoutResult, Spent)> {
    let pace = room.closed_loop();
    room.publish(pace, params.warmup_secs, "fanout: warm-up")
        .await?;
    let usage = Usage::of(target)?;
    let (delivered0, start) = (room.stats.delivered(), Instant::now());
    let published = room
        .publish(
            pace,
            params.fanout_secs,
            &format!("fanout: {} clients", room.size),
        )
        .await?;
    let deliveries = room.stats.delivered() - delivered0;
    let seconds = start.elapsed().as_secs_f64();
    let spent = usage.since()?;
    let (server_cpu, generator_cpu) = (spent.total(), spent.generator);
    if deliveries == 0 {
        anyhow::bail!(
            "no deliveries in {seconds:.1} s: {} broadcasts sent, {} acked, {} acks and {} deliveries written off",
            published.sent,
            published.acked,
            published.lost_acks,
            published.written_off
        );
    }
    let result = FanoutResult {
        room_size: room.size,
        seconds,
        broadcasts: published.sent,
        deliveries,
        deliveries_per_sec: deliveries as f64 / seconds,
        server_cpu_s_per_m: per_million(server_cpu, deliveries),
        server_cores: server_cpu / seconds,
        generator_cpu_s_per_m: per_million(generator_cpu, deliveries),
        written_off: published.written_off,
        // Set by `Room::settle` at the end of the scenario.
        undelivered: 0,
        unacked: 0,
        lost_connections: room.fleet.lost(),
    };
    Ok((result, spent))
}

/// What the measured part of [`at_rate`] published, spent and delivered.
pub(crate) struct Phase {
    /// The broadcasts of the measured part.
    pub(crate) published: Published,
    /// CPU of every process over it.
    pub(crate) spent: Spent,
    /// Its length.
    pub(crate) seconds: f64,
    /// Deliveries that arrived during it.
    pub(crate) delivered: u64,
}

/// A phase at `rate` broadcasts per second on an open room, measured for `secs` after
/// an unmeasured warm-up at the same rate; each part starts from an empty pipeline.
/// With `record`, latency samples are recorded from the measured part on (the caller
/// stops them once its events have arrived). `what` names the phase in the progress.
pub(crate) async fn at_rate(
    room: &mut Room,
    target: &Target,
    rate: f64,
    secs: f64,
    params: &Params,
    what: &str,
    record: bool,
) -> anyhow::Result<Phase> {
    room.drain().await;
    room.publish(
        Pace::Rate(rate),
        params.warmup_secs,
        &format!("{what}: warm-up"),
    )
    .await?;
    room.drain().await;
    room.stats.set_recording(record);
    let label = format!("{what}: {} clients at {rate:.0}/s", room.size);
    let usage = Usage::of(target)?;
    let (delivered0, start) = (room.stats.delivered(), Instant::now());
    let published = room.publish(Pace::Rate(rate), secs, &label).await?;
    let spent = usage.since()?;
    Ok(Phase {
        published,
        spent,
        seconds: start.elapsed().as_secs_f64(),
        delivered: room.stats.delivered() - delivered0,
    })
}

/// Measures latency at `rate` broadcasts per second (`load` × peak, `None`: a fixed
/// rate) for `secs` on an open room. The samples stay in `room.stats` until the next
/// phase.
pub(crate) async fn measure_latency(
    room: &mut Room,
    target: &Target,
    (rate, load): (f64, Option<f64>),
    secs: f64,
    params: &Params,
) -> anyhow::Result<LatencyResult> {
    let phase = at_rate(room, target, rate, secs, params, "latency", true).await?;
    room.drain().await;
    room.stats.set_recording(false);
    let hist = room.stats.latency(End::Arrival)?;
    Ok(LatencyResult {
        room_size: room.size,
        load,
        rate,
        server_cores: phase.spent.total() / phase.seconds,
        generator_cores: phase.spent.generator / phase.seconds,
        offered_deliveries_per_sec: rate * room.size as f64,
        samples: hist.len(),
        expected: phase.published.sent * room.size as u64,
        quantiles: Quantiles::of(&hist),
        at_read: room.stats.quantiles_at_read(None)?,
        unstamped: room.stats.unstamped(),
    })
}

/// Runs fan-out and/or latency for one room size on one server.
pub(crate) async fn run(
    target: &Target,
    params: &Params,
    size: usize,
    want_latency: bool,
) -> anyhow::Result<(FanoutResult, Vec<LatencyResult>)> {
    let mut room = open_room(target, size).await?;
    let (mut peak, _) = measure_peak(&mut room, target, params).await?;
    eprintln!(
        "    fanout {size}: {:.0} deliveries/s, {:.2} server CPU s per M",
        peak.deliveries_per_sec, peak.server_cpu_s_per_m
    );
    let mut results = Vec::new();
    if want_latency {
        let peak_rate = peak.broadcasts as f64 / peak.seconds;
        let rates: Vec<(f64, Option<f64>)> = match params.latency_rate {
            Some(rate) => vec![(rate, None)],
            None => params
                .latency_loads
                .iter()
                .map(|&l| (peak_rate * l, Some(l)))
                .collect(),
        };
        for (rate, load) in rates {
            let paced = (rate.max(1.0), load);
            let latency =
                measure_latency(&mut room, target, paced, params.latency_secs, params).await?;
            eprintln!(
                "    latency {size} at {rate:.0}/s: p50 {} µs, p99 {} µs, p99.9 {} µs",
                latency.quantiles.p50_us, latency.quantiles.p99_us, latency.quantiles.p999_us
            );
            results.push(latency);
        }
    }
    room.settle(&mut peak).await?;
    Ok((peak, results))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The percentiles serialize as fields of the result itself, as results.json files
    /// written before they were grouped have them, and read back from that shape.
    #[test]
    fn a_latency_result_keeps_its_percentiles_at_the_top_level_of_its_json() {
        let json = serde_json::json!({
            "room_size": 1000, "load": 0.1, "rate": 200.0, "server_cores": 1.1,
            "generator_cores": 0.7, "offered_deliveries_per_sec": 200000.0,
            "samples": 10, "expected": 10,
            "p50_us": 5000, "p99_us": 12000, "p999_us": 15000, "max_us": 20000,
        });
        let read: LatencyResult = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(read.quantiles.p99_us, 12_000);
        assert!(read.at_read.is_none());
        let written = serde_json::to_value(&read).unwrap();
        assert_eq!(written["p999_us"], 15_000);
        assert!(written.get("quantiles").is_none());
        for (key, value) in json.as_object().unwrap() {
            assert_eq!(&written[key], value, "{key}");
        }
    }
}
