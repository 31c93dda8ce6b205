//! Many rooms: R rooms of M members, targeted emits to one room at a time.
//!
//! A server process tops out near 19k connections (20,000 open files), so R×M distinct
//! clients (50k for 10k×5) cannot be held; instead R clients each join M rooms: client
//! `i` joins rooms `i, i-1, …, i-M+1` (mod R), so every room has exactly M members and
//! every emit still reaches M distinct connections. Every emit is thus owed exactly M
//! deliveries, and the scenario ends with exact counts of those that never arrived and
//! of emits never acked.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::fleet::{Fleet, RoomsOf};
use crate::procstat::{Spent, Usage};
use crate::progress::Progress;
use crate::publish::{Pace, Publisher, rooms_visited};
use crate::scenarios::{DRAIN, Params, Target, per_million, secs};
use crate::stats::Stats;

/// Unacknowledged emits allowed per publisher: under socketioxide's default
/// per-socket buffer of 128 packets, which its acks to the publisher go through (with
/// 256 before 2026-12-07, socketioxide dropped hundreds of acks a round, and one
/// publisher's blocked window then held its share of the load back).
const ACK_WINDOW: u64 = 64;
/// Published-but-undelivered events allowed per publisher, in deliveries.
const MAX_BACKLOG: u64 = 20_000;

/// Result of the many-rooms scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomsResult {
    /// Rooms.
    pub(crate) rooms: usize,
    /// Members per room.
    pub(crate) members: usize,
    /// Client connections (one per room, each in `members` rooms).
    pub(crate) connections: usize,
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// Targeted emits per second.
    pub(crate) emits_per_sec: f64,
    /// Deliveries per second.
    pub(crate) deliveries_per_sec: f64,
    /// Server CPU seconds per million deliveries.
    pub(crate) server_cpu_s_per_m: f64,
    /// Generator CPU seconds per million deliveries.
    pub(crate) generator_cpu_s_per_m: f64,
    /// Deliveries written off after the server stopped delivering (the publishers' guess
    /// after a 1 s stall, measured phase only; events that arrive later count here too).
    pub(crate) written_off: u64,
    /// Deliveries of the whole scenario (warm-up included) that had not arrived when it
    /// ended: emits × members − events received. Exact.
    #[serde(default)]
    pub(crate) undelivered: u64,
    /// Emits of the whole scenario never acknowledged by its end (write-offs after a
    /// stall are not acks). Exact.
    #[serde(default)]
    pub(crate) unacked: u64,
    /// Clients whose connection the server closed.
    pub(crate) lost_connections: usize,
}

/// Where publisher `i` of `publishers` starts among the rooms and how far it steps:
/// publishers walk disjoint rooms whenever `publishers` divides the number of rooms (the
/// defaults), so where relay rules make each one join the rooms it publishes to, none of
/// them receives another's events.
fn pick(i: usize, publishers: usize) -> (usize, usize) {
    (i * 7919, publishers)
}

/// Room names of client `index`.
fn rooms_of(rooms: usize, members: usize) -> RoomsOf {
    Arc::new(move |index| {
        (0..members)
            .map(|j| format!("r{}", (index + rooms - j) % rooms))
            .collect()
    })
}

/// Runs every publisher for `seconds`; returns (sent, written off).
async fn publish_all(
    publishers: &mut [Publisher],
    names: &[String],
    pace: Pace,
    stats: &Stats,
    seconds: f64,
) -> anyhow::Result<(u64, u64)> {
    let until = Instant::now() + secs(seconds);
    let stride = publishers.len();
    let runs = publishers
        .iter_mut()
        .enumerate()
        .map(|(i, p)| p.run(names, pick(i, stride), pace, stats, until));
    let mut totals = (0, 0);
    for result in futures_util::future::join_all(runs).await {
        let published = result?;
        totals = (totals.0 + published.sent, totals.1 + published.written_off);
    }
    Ok(totals)
}

/// Runs the many-rooms scenario.
pub(crate) async fn run(target: &Target, params: &Params) -> anyhow::Result<RoomsResult> {
    Ok(run_measured(target, params).await?.0)
}

/// Runs the many-rooms scenario (receivers spread over the target's nodes, publishers on
/// the first); also returns the CPU each process under test spent in the measured phase.
pub(crate) async fn run_measured(
    target: &Target,
    params: &Params,
) -> anyhow::Result<(RoomsResult, Spent)> {
    let mut rooms = Rooms::open(target, params).await?;
    let pace = rooms.pace(params);
    let phase = rooms
        .measure(target, params, pace, "rooms: targeted emits")
        .await?;
    let mut result = rooms.result(&phase);
    rooms.settle(&mut result).await?;
    Ok((result, phase.spent))
}

/// One measured phase of targeted emits.
#[derive(Debug)]
pub(crate) struct Phase {
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// Emits sent.
    pub(crate) sent: u64,
    /// Events received.
    pub(crate) deliveries: u64,
    /// Deliveries written off after a stall.
    pub(crate) written_off: u64,
    /// CPU each process under test spent.
    pub(crate) spent: Spent,
}

/// The rooms' clients and the publishers, ready for phases of targeted emits.
pub(crate) struct Rooms {
    /// The clients, each in `members` rooms.
    fleet: Fleet,
    /// The publishers, on the first node.
    publishers: Vec<Publisher>,
    /// Room names.
    names: Vec<String>,
    /// Shared counters.
    stats: Arc<Stats>,
    /// Rooms.
    rooms: usize,
    /// Members per room.
    members: usize,
    /// Emits sent so far, every phase.
    sent: u64,
}

impl Rooms {
    /// Opens the clients (spread over the target's nodes) and the publishers (on the
    /// first node).
    pub(crate) async fn open(target: &Target, params: &Params) -> anyhow::Result<Rooms> {
        let (rooms, members) = (params.rooms.max(1), params.members.min(params.rooms).max(1));
        let stats = Arc::new(Stats::new(false)?);
        let mut fleet = Fleet::new(target, stats.clone());
        fleet
            .grow(
                rooms,
                rooms_of(rooms, members),
                &format!("rooms: opening {rooms}×{members}"),
            )
            .await?;
        let names: Vec<String> = (0..rooms).map(|r| format!("r{r}")).collect();
        let count = params.publishers.max(1);
        let mut publishers = Vec::new();
        for i in 0..count {
            let own: Vec<String> = rooms_visited(rooms, pick(i, count))
                .into_iter()
                .map(|r| names[r].clone())
                .collect();
            publishers.push(Publisher::open(target, &own).await?);
        }
        Ok(Rooms {
            fleet,
            publishers,
            names,
            stats,
            rooms,
            members,
            sent: 0,
        })
    }

    /// The scenario's pace: --rooms-rate emits per second, or as fast as acks come back.
    pub(crate) fn pace(&self, params: &Params) -> Pace {
        match params.rooms_rate {
            Some(rate) => self.rate(rate),
            None => self.closed_loop(),
        }
    }

    /// As fast as acks come back, each publisher its share of the backlog.
    fn closed_loop(&self) -> Pace {
        Pace::Closed {
            window: ACK_WINDOW,
            fanout: self.members as u64,
            max_backlog: MAX_BACKLOG,
            share: self.publishers.len() as u64,
        }
    }

    /// `rate` emits per second, all publishers together.
    pub(crate) fn rate(&self, rate: f64) -> Pace {
        Pace::Rate(rate / self.publishers.len() as f64)
    }

    /// Publishes with `pace` for --warmup-secs, waits until those events arrived
    /// (at most [`DRAIN`]), then measures --rooms-secs of it.
    pub(crate) async fn measure(
        &mut self,
        target: &Target,
        params: &Params,
        pace: Pace,
        label: &str,
    ) -> anyhow::Result<Phase> {
        let (warmup_sent, _) = publish_all(
            &mut self.publishers,
            &self.names,
            pace,
            &self.stats,
            params.warmup_secs,
        )
        .await?;
        self.sent += warmup_sent;
        self.drain().await;
        let _bar = Progress::timed(label, secs(params.rooms_secs));
        let usage = Usage::of(target)?;
        let (delivered0, start) = (self.stats.delivered(), Instant::now());
        let (sent, written_off) = publish_all(
            &mut self.publishers,
            &self.names,
            pace,
            &self.stats,
            params.rooms_secs,
        )
        .await?;
        let deliveries = self.stats.delivered() - delivered0;
        let seconds = start.elapsed().as_secs_f64();
        let spent = usage.since()?;
        self.sent += sent;
        eprintln!("    rooms: {:.0} deliveries/s", deliveries as f64 / seconds);
        Ok(Phase {
            seconds,
            sent,
            deliveries,
            written_off,
            spent,
        })
    }

    /// Waits until every event sent so far has arrived, at most [`DRAIN`]; says on
    /// stderr when they did not (the measured phase after it then counts the rest of
    /// the warm-up's backlog, and the scenario's `undelivered` what never came).
    async fn drain(&self) {
        let expected = self.sent * self.members as u64;
        if !self.stats.wait_delivered(expected, DRAIN).await {
            let missing = expected.saturating_sub(self.stats.delivered());
            eprintln!("    rooms: {missing} deliveries still missing after the drain");
        }
    }

    /// The scenario's result from its measured `phase` (counts over every phase are
    /// [`Rooms::settle`]'s).
    pub(crate) fn result(&mut self, phase: &Phase) -> RoomsResult {
        let (server_cpu, generator_cpu) = (phase.spent.total(), phase.spent.generator);
        RoomsResult {
            rooms: self.rooms,
            members: self.members,
            connections: self.fleet.len(),
            seconds: phase.seconds,
            emits_per_sec: phase.sent as f64 / phase.seconds,
            deliveries_per_sec: phase.deliveries as f64 / phase.seconds,
            server_cpu_s_per_m: per_million(server_cpu, phase.deliveries),
            generator_cpu_s_per_m: per_million(generator_cpu, phase.deliveries),
            written_off: phase.written_off,
            // Set by `Rooms::settle` at the end of the scenario.
            undelivered: 0,
            unacked: 0,
            lost_connections: self.fleet.lost(),
        }
    }

    /// Ends the scenario: waits for every event and then for every ack (each at most
    /// [`DRAIN`]), and records on `result` the exact counts of every phase: deliveries
    /// that never arrived, emits never acked, clients lost.
    pub(crate) async fn settle(&mut self, result: &mut RoomsResult) -> anyhow::Result<()> {
        self.drain().await;
        let acks_until = Instant::now() + DRAIN;
        let mut unacked = 0;
        for publisher in &mut self.publishers {
            unacked += publisher.settle(acks_until).await?;
        }
        let expected = self.sent * self.members as u64;
        result.undelivered = expected.saturating_sub(self.stats.delivered());
        result.unacked = unacked;
        result.lost_connections = self.fleet.lost();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_room_gets_exactly_m_members() {
        let of = rooms_of(10, 3);
        let mut counts = std::collections::HashMap::new();
        for i in 0..10 {
            for room in of(i) {
                *counts.entry(room).or_insert(0) += 1;
            }
        }
        assert_eq!(counts.len(), 10);
        assert!(counts.values().all(|&c| c == 3));
    }

    #[test]
    fn publishers_visit_disjoint_rooms_at_the_full_and_smoke_sizes() {
        /// The command line's defaults: the full run's sizes.
        #[derive(clap::Parser)]
        struct Full {
            #[command(flatten)]
            params: Params,
        }
        let full = <Full as clap::Parser>::parse_from(["bench"]).params;
        for params in [Params::smoke(), full] {
            let (rooms, count) = (params.rooms, params.publishers);
            let mut seen = vec![0; rooms];
            for i in 0..count {
                for r in rooms_visited(rooms, pick(i, count)) {
                    seen[r] += 1;
                }
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "{rooms} rooms, {count} publishers"
            );
        }
    }
}
