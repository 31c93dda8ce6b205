//! The recovery storm: two nodes of `protocol_fixture cluster --adapter redis-streams
//! --recovery` on one Redis; every client on the second node, spread over rooms; a
//! publisher on the first sends numbered, acked events at a fixed rate; the second node
//! is SIGKILLed and every client reconnects to the first after a random delay, claiming
//! its session with the `pid` of its first CONNECT answer and the offset of the last
//! event it received. Measures how long until every client is recovered (the survivor
//! answers with the old `sid`), whether every acked event arrived exactly once at every
//! recovered client, and the survivor's and Redis's peak CPU and RSS meanwhile.
//!
//! Switchboard only: Node's adapters save a session only when its socket disconnects,
//! so the clients of a killed Node.js node are never recovered elsewhere.

mod client;
mod publisher;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::client::Session;
use crate::procstat::{Peak, cpu_seconds, rss_bytes, sample_peaks};
use crate::progress::Progress;
use crate::scenarios::{DRAIN, Params, Target, secs};
use crate::sio::Dialect;

use client::{Board, Outcome, Spec, Tally};
use publisher::Publisher;

/// Client setups in flight at once (as the fleet's).
const CONNECT_CONCURRENCY: usize = 256;
/// Longest the warm-up waits, past `--warmup-secs`, for every client to hold an offset
/// (a room receives an event every rooms ÷ rate seconds: 0.5 s at the defaults).
const OFFSET_WAIT: Duration = Duration::from_secs(10);
/// Longest wait, past the clients' own delays, for every client's reconnection to be
/// decided: five attempts of at most 10 s per handshake step is the worst a client can
/// take; past this the survivor is not coping and the rest count as given up.
const RECOVERY_WAIT: Duration = Duration::from_secs(60);
/// Publishing after every client is back, so events delivered live after the replay
/// are checked too.
const TAIL: Duration = Duration::from_secs(1);
/// Interval of the CPU and RSS samples (10 clock ticks of 10 ms: a peak is exact to
/// about 0.05 cores).
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// The result of one recovery storm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StormResult {
    /// Clients on the killed node.
    pub(crate) clients: usize,
    /// Rooms they were spread over (client `i` in room `i % rooms`).
    pub(crate) rooms: usize,
    /// Numbered events published per second (all rooms together).
    pub(crate) rate: f64,
    /// Longest random delay a client waited before each reconnection attempt, s.
    pub(crate) backoff_secs: f64,
    /// Clients the survivor answered with their old `sid`.
    pub(crate) recovered: usize,
    /// Clients answered with a new `sid` (a fresh session: missed events gone).
    pub(crate) not_recovered: usize,
    /// Clients whose every reconnection attempt failed.
    pub(crate) gave_up: usize,
    /// Clients whose first connection ended before the kill.
    pub(crate) lost_before_kill: usize,
    /// Reconnection attempts that failed (each then waited again and retried).
    pub(crate) failed_attempts: u64,
    /// Kill → the last client recovered, s; `None` unless every client was.
    pub(crate) all_recovered_secs: Option<f64>,
    /// Kill → recovered, median over recovered clients, ms (the clients' random
    /// delays included).
    pub(crate) recovered_p50_ms: f64,
    /// Kill → recovered, 99th percentile, ms.
    pub(crate) recovered_p99_ms: f64,
    /// Start of the answered attempt → the CONNECT answer (TCP, WebSocket, Engine.IO,
    /// Socket.IO handshake and the session's recovery), median, ms.
    pub(crate) connect_p50_ms: f64,
    /// The same, 99th percentile, ms.
    pub(crate) connect_p99_ms: f64,
    /// The same, maximum, ms.
    pub(crate) connect_max_ms: f64,
    /// Numbered events published.
    pub(crate) published: u64,
    /// Of those, published after the kill (while clients were away or coming back).
    pub(crate) published_after_kill: u64,
    /// Events the survivor acked `true` (in the stream: must reach every member).
    pub(crate) acked: u64,
    /// Events not acked `true` (refused, or no ack within 5 s of the end).
    pub(crate) unacked: u64,
    /// Acked events that never reached a recovered member of their room (sum over
    /// recovered clients). Must be 0.
    pub(crate) lost: u64,
    /// Events that reached a client more than once (every arrival after the first, any
    /// client). Must be 0.
    pub(crate) duplicated: u64,
    /// The survivor over the storm (kill → end of the tail).
    pub(crate) survivor: Peak,
    /// The survivor's RSS just before the kill, bytes.
    pub(crate) survivor_rss_before_bytes: u64,
    /// Redis over the storm.
    pub(crate) redis: Peak,
    /// Redis's RSS just before the kill, bytes.
    pub(crate) redis_rss_before_bytes: u64,
    /// CPU seconds of this generator over the storm (it shares the cores).
    pub(crate) generator_cpu_seconds: f64,
    /// Kill → end of the tail, s: the stretch the peaks cover.
    pub(crate) storm_secs: f64,
    /// The first reason a client was not recovered, if any was not.
    pub(crate) first_error: Option<String>,
}

/// Runs one storm on a two-node cluster: `target.nodes` are the survivor (publisher's
/// node) then the node that is killed; `target.processes` the same, then Redis.
pub(crate) async fn run(target: &Target, params: &Params) -> anyhow::Result<StormResult> {
    let (&[survivor, doomed], &[survivor_pid, doomed_pid, redis_pid]) =
        (&target.nodes[..], &target.processes[..])
    else {
        bail!("the recovery storm runs on two nodes and Redis");
    };
    let count = params.storm_clients.max(1);
    let rooms = params.storm_rooms.clamp(1, count);
    let backoff = secs(params.storm_backoff_secs);
    let board = Arc::new(Board::new(count));
    let (stop_clients, stopped) = watch::channel(false);
    let spec = |index| Spec {
        index,
        room: index % rooms,
        rooms,
        doomed,
        survivor,
        backoff,
        pool: target.pool.clone(),
    };
    let mut clients = open(count, &spec, &board, &stopped).await?;

    let session = Session::open(&target.pool, survivor, Dialect::Handlers).await?;
    let (stop_publisher, publishing) = watch::channel(false);
    let next = Arc::new(AtomicU64::new(0));
    let publisher = Publisher::new(session, rooms).run(params.storm_rate, publishing, next.clone());
    let publisher = tokio::spawn(publisher);
    warm_up(&board, count, secs(params.warmup_secs)).await?;

    let survivor_rss_before_bytes = rss_bytes(survivor_pid)?;
    let redis_rss_before_bytes = rss_bytes(redis_pid)?;
    let (stop_sampling, sampling) = watch::channel(false);
    let sampler = tokio::spawn(sample_peaks(
        vec![survivor_pid, redis_pid],
        SAMPLE_EVERY,
        sampling,
    ));
    let generator_before = cpu_seconds(None)?;
    let kill_at = board.kill();
    let first_after_kill = next.load(Ordering::Relaxed);
    crate::peers::sigkill(doomed_pid).context("SIGKILL to the clients' node")?;
    wait_resolved(&board, count, backoff).await;
    tokio::time::sleep(TAIL).await;
    let _ = stop_publisher.send(true);
    let published = publisher.await.context("publisher task")??;
    let storm_secs = kill_at.elapsed().as_secs_f64();
    let _ = stop_sampling.send(true);
    let peaks = sampler.await.context("sampler task")?;
    let generator_cpu_seconds = cpu_seconds(None)? - generator_before;
    drain(&board, count, rooms, &published.acked).await;
    let _ = stop_clients.send(true);
    let mut tallies = Vec::with_capacity(count);
    while let Some(joined) = clients.join_next().await {
        tallies.push(joined.context("client task")?);
    }
    let (lost, duplicated) = losses(&tallies, &published.acked, rooms);
    let acked = published.acked.iter().filter(|&&a| a).count() as u64;
    let outcomes = Outcomes::of(&tallies);
    let result = StormResult {
        clients: count,
        rooms,
        rate: params.storm_rate,
        backoff_secs: params.storm_backoff_secs,
        recovered: outcomes.recovered.len(),
        not_recovered: outcomes.not_recovered,
        gave_up: outcomes.gave_up,
        lost_before_kill: outcomes.lost_before_kill,
        failed_attempts: tallies.iter().map(|t| u64::from(t.failed_attempts)).sum(),
        all_recovered_secs: (outcomes.recovered.len() == count)
            .then(|| outcomes.recovered.last().map_or(0.0, Duration::as_secs_f64)),
        recovered_p50_ms: ms(quantile(&outcomes.recovered, 0.5)),
        recovered_p99_ms: ms(quantile(&outcomes.recovered, 0.99)),
        connect_p50_ms: ms(quantile(&outcomes.connects, 0.5)),
        connect_p99_ms: ms(quantile(&outcomes.connects, 0.99)),
        connect_max_ms: ms(quantile(&outcomes.connects, 1.0)),
        published: published.sent,
        published_after_kill: published.sent.saturating_sub(first_after_kill),
        acked,
        unacked: published.sent - acked,
        lost,
        duplicated,
        survivor: peaks.first().copied().unwrap_or_default(),
        survivor_rss_before_bytes,
        redis: peaks.get(1).copied().unwrap_or_default(),
        redis_rss_before_bytes,
        generator_cpu_seconds,
        storm_secs,
        first_error: outcomes.first_error,
    };
    eprintln!(
        "    storm of {count}: {} recovered, {} not, {} gave up; all back after {}; \
         {lost} lost, {duplicated} duplicated of {acked} acked events",
        result.recovered,
        result.not_recovered,
        result.gave_up,
        result
            .all_recovered_secs
            .map_or("-".to_owned(), |s| format!("{s:.2} s"))
    );
    Ok(result)
}

/// Opens `count` clients on the doomed node, each joined to its room and receiving;
/// fails when any could not be set up.
async fn open(
    count: usize,
    spec: &dyn Fn(usize) -> Spec,
    board: &Arc<Board>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<JoinSet<Tally>> {
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let (ready_tx, mut ready_rx) = mpsc::channel(CONNECT_CONCURRENCY);
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let (spec, board, stop) = (spec(index), board.clone(), stop.clone());
        let (gate, ready) = (gate.clone(), ready_tx.clone());
        tasks.spawn(async move {
            match client::setup(&spec, &gate).await {
                Ok(first) => {
                    let _ = ready.send(Ok(())).await;
                    drop(ready);
                    client::run(spec, board, first, stop).await
                }
                Err(e) => {
                    let _ = ready.send(Err(format!("{e:#}"))).await;
                    let outcome = Outcome::LostBeforeKill(format!("{e:#}"));
                    client::failed(&spec, outcome)
                }
            }
        });
    }
    drop(ready_tx);
    let progress = Progress::new(&format!("storm: opening {count}"), count as u64);
    let (mut failed, mut first_error) = (0, None);
    while let Some(result) = ready_rx.recv().await {
        progress.inc();
        if let Err(e) = result {
            failed += 1;
            first_error.get_or_insert(e);
        }
    }
    progress.finish();
    match first_error {
        Some(e) => bail!("{failed} of {count} connections failed; first: {e}"),
        None => Ok(tasks),
    }
}

/// Publishes for at least `warmup`, and until every client holds an offset.
async fn warm_up(board: &Board, count: usize, warmup: Duration) -> anyhow::Result<()> {
    tokio::time::sleep(warmup).await;
    let give_up = Instant::now() + OFFSET_WAIT;
    while board.with_offset() < count {
        if Instant::now() > give_up {
            bail!(
                "after {OFFSET_WAIT:?} only {} of {count} clients had received an event",
                board.with_offset()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Waits until every client's reconnection is decided (at most the clients' delays
/// plus [`RECOVERY_WAIT`]), with a progress bar.
async fn wait_resolved(board: &Board, count: usize, backoff: Duration) {
    let progress = Progress::new(&format!("storm: recovering {count}"), count as u64);
    let give_up = Instant::now() + backoff * 5 + RECOVERY_WAIT;
    let mut shown = 0;
    while board.resolved() < count && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
        for _ in shown..board.resolved() {
            progress.inc();
        }
        shown = shown.max(board.resolved());
    }
    progress.finish();
}

/// Waits (at most [`DRAIN`]) until every recovered client has received at least as
/// many distinct events as its room had acked: a server that lost some costs one wait.
async fn drain(board: &Board, count: usize, rooms: usize, acked: &[bool]) {
    let mut owed = vec![0u64; rooms];
    for (n, _) in acked.iter().enumerate().filter(|(_, a)| **a) {
        owed[n % rooms] += 1;
    }
    let give_up = Instant::now() + DRAIN;
    let behind = |i: usize| {
        let (recovered, distinct) = board.client(i);
        recovered && distinct < owed[i % rooms]
    };
    while (0..count).any(behind) && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Acked events missing at recovered clients, and arrivals after the first anywhere.
fn losses(tallies: &[Tally], acked: &[bool], rooms: usize) -> (u64, u64) {
    let (mut lost, mut duplicated) = (0, 0);
    for t in tallies {
        duplicated += t
            .received
            .iter()
            .map(|&c| u64::from(c.saturating_sub(1)))
            .sum::<u64>();
        if t.outcome != Outcome::Recovered {
            continue;
        }
        for n in (t.room..acked.len()).step_by(rooms.max(1)) {
            let arrived = t.received.get(n / rooms).copied().unwrap_or(0);
            lost += u64::from(acked[n] && arrived == 0);
        }
    }
    (lost, duplicated)
}

/// The clients' outcomes, gathered.
#[derive(Debug, Default)]
struct Outcomes {
    /// Kill → recovered, per recovered client, sorted.
    recovered: Vec<Duration>,
    /// Attempt → CONNECT answer, per answered client, sorted.
    connects: Vec<Duration>,
    /// Clients answered with a new sid.
    not_recovered: usize,
    /// Clients that gave up.
    gave_up: usize,
    /// Clients lost before the kill (or never disconnected by it).
    lost_before_kill: usize,
    /// The first reason a client was not recovered.
    first_error: Option<String>,
}

impl Outcomes {
    /// Sorts the tallies' outcomes out.
    fn of(tallies: &[Tally]) -> Outcomes {
        let mut o = Outcomes::default();
        for t in tallies {
            o.connects.extend(t.connect_took);
            let why = match &t.outcome {
                Outcome::Recovered => {
                    o.recovered.extend(t.answered_after);
                    continue;
                }
                Outcome::NotRecovered => {
                    o.not_recovered += 1;
                    "answered with a new sid (session not recovered)".to_owned()
                }
                Outcome::GaveUp(e) => {
                    o.gave_up += 1;
                    format!("gave up reconnecting: {e}")
                }
                Outcome::LostBeforeKill(e) => {
                    o.lost_before_kill += 1;
                    format!("connection lost before the kill: {e}")
                }
                Outcome::NeverDisconnected => {
                    o.lost_before_kill += 1;
                    "connection still open after the kill".to_owned()
                }
            };
            o.first_error.get_or_insert(why);
        }
        o.recovered.sort();
        o.connects.sort();
        o
    }
}

/// The `q` quantile of sorted `values` (zero when empty).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let Some(last) = sorted.len().checked_sub(1) else {
        return Duration::ZERO;
    };
    sorted[((last as f64 * q).round() as usize).min(last)]
}

/// Milliseconds.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(room: usize, received: &[u8], outcome: Outcome) -> Tally {
        Tally {
            room,
            received: received.to_vec(),
            outcome,
            answered_after: Some(Duration::from_millis(10)),
            connect_took: Some(Duration::from_millis(1)),
            failed_attempts: 0,
        }
    }

    #[test]
    fn every_acked_event_of_its_room_must_reach_a_recovered_client_once() {
        // Two rooms; events 0..6, event 5 not acked; room 1 gets 1, 3, 5.
        let acked = [true, true, true, true, true, false];
        let whole = tally(1, &[1, 1, 0], Outcome::Recovered);
        assert_eq!(losses(&[whole], &acked, 2), (0, 0));
        let missing = tally(1, &[1, 0], Outcome::Recovered);
        assert_eq!(losses(&[missing], &acked, 2), (1, 0));
        let twice = tally(0, &[1, 2, 3], Outcome::Recovered);
        assert_eq!(losses(&[twice], &acked, 2), (0, 3));
        // A client not recovered owes nothing (it is counted as not recovered).
        let fresh = tally(0, &[1], Outcome::NotRecovered);
        assert_eq!(losses(&[fresh], &acked, 2), (0, 0));
    }

    #[test]
    fn outcomes_are_sorted_out() {
        let tallies = [
            tally(0, &[], Outcome::Recovered),
            tally(0, &[], Outcome::NotRecovered),
            tally(0, &[], Outcome::GaveUp("refused".to_owned())),
        ];
        let o = Outcomes::of(&tallies);
        assert_eq!(o.recovered, [Duration::from_millis(10)]);
        assert_eq!(o.connects.len(), 3);
        assert_eq!((o.not_recovered, o.gave_up, o.lost_before_kill), (1, 1, 0));
        assert_eq!(
            o.first_error.as_deref(),
            Some("answered with a new sid (session not recovered)")
        );
    }

    #[test]
    fn quantiles_pick_from_sorted_values() {
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&values, 0.5), Duration::from_millis(51));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&values, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }
}
