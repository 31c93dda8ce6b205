//! Memory pressure tiers under the paused clock, on a memory model the test controls:
//! resident memory is a base plus every session's queued bytes, so a backlog of
//! clients that do not read grows it, and what the tiers do (refuse, drop, shed) shows
//! in it at the next sample.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use switchboard_engine::breadcrumbs::Step;
use switchboard_engine::config::QueueLimits;
use switchboard_engine::pressure::{Change, PressureConfig, Tier};
use switchboard_engine::{Io, Shutdown};

use super::harness::{Client, config, disconnects, request, server};

const MIB: u64 = 1 << 20;
const BUDGET: u64 = 10 * MIB;
/// What the node holds besides the queues.
const BASE: u64 = 2 * MIB;
const INTERVAL: Duration = Duration::from_millis(100);
/// Small enough that a round (five chunks) moves memory less than a tier's band.
const CHUNK: usize = 96 * 1024;

/// A server whose clients are never pinged during the test, with queues far larger
/// than the budget (so only the tiers act), watched by a monitor that samples
/// `BASE + queued bytes`; and the transitions it reported.
fn watched() -> (Io, Arc<Mutex<Vec<Change>>>) {
    let mut cfg = config();
    cfg.engine.ping_interval = Duration::from_secs(600);
    cfg.engine.ping_timeout = Duration::from_secs(600);
    cfg.engine.queue = QueueLimits {
        max_packets: 100_000,
        max_bytes: 64 << 20,
    };
    let io = server(cfg);
    let changes = Arc::new(Mutex::new(Vec::new()));
    let seen = changes.clone();
    io.on_pressure(move |c| seen.lock().unwrap().push(*c));
    let engine = io.engine().clone();
    io.watch_memory(
        PressureConfig {
            budget: BUDGET,
            interval: INTERVAL,
        },
        move || Some(BASE + engine.queued_bytes()),
        Shutdown::never(),
    );
    (io, changes)
}

/// One chunk (distinct text) to the socket `sid` of `/`.
fn send_chunk(io: &Io, sid: &str, n: usize) {
    let text = format!("{n:08}{}", "x".repeat(CHUNK - 8));
    io.of("/").to(sid.to_owned()).emit("chunk", json!(text));
}

fn tiers(changes: &Mutex<Vec<Change>>) -> Vec<Tier> {
    changes.lock().unwrap().iter().map(|c| c.to).collect()
}

/// The socket id of a polling client connected to `/` (from the CONNECT answer).
async fn connected_socket(io: &Io) -> (Client, String) {
    let client = Client::handshake(io).await;
    client.post("40").await;
    let body = client.get().await;
    let answer: serde_json::Value = serde_json::from_str(body.strip_prefix("40").unwrap()).unwrap();
    let sid = answer["sid"].as_str().unwrap().to_owned();
    (client, sid)
}

#[tokio::test(start_paused = true)]
async fn tiers_engage_in_order_under_a_growing_backlog_shed_the_largest_queue_and_release() {
    let (io, changes) = watched();
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(connected_socket(&io).await);
    }
    // One client holds more than the others: it is the one shed.
    let heavy = clients[0].1.clone();
    // A client that is sent nothing: its queue stays empty.
    let (_reader, reader) = connected_socket(&io).await;
    let mut n = 0;
    let mut refused_while_critical = false;
    let mut volatile_dropped_while_critical = false;
    // 480 KiB a round (a chunk to each, two to the heavy one) until the monitor sheds;
    // a bound on the rounds so a broken monitor fails instead of looping.
    for _round in 0..40 {
        for (i, (_, sid)) in clients.iter().enumerate() {
            for _ in 0..if i == 0 { 2 } else { 1 } {
                send_chunk(&io, sid, n);
                n += 1;
            }
        }
        tokio::time::sleep(INTERVAL).await;
        let tier = io.engine().metrics().pressure_tier();
        if tier == Tier::Critical {
            // New sessions are refused with 503 and Retry-After.
            let (status, body) = request(&io, Method::GET, "EIO=4&transport=polling", "").await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("memory pressure"), "{body}");
            refused_while_critical = true;
            // Volatile packets are dropped even to a client with an empty queue.
            let before = io.engine().metrics().snapshot().volatile_dropped;
            io.of("/")
                .to(reader.clone())
                .volatile()
                .emit("tick", json!(1));
            volatile_dropped_while_critical =
                io.engine().metrics().snapshot().volatile_dropped > before;
        }
        if disconnects(&io, "server overloaded") > 0 {
            break;
        }
    }
    assert_eq!(
        tiers(&changes),
        [Tier::Elevated, Tier::Critical, Tier::Imminent],
        "the tiers engage in order"
    );
    assert!(
        refused_while_critical,
        "a handshake was tried while critical"
    );
    assert!(volatile_dropped_while_critical);
    // Only the connection holding the most was shed, and what it held covers the excess.
    assert_eq!(disconnects(&io, "server overloaded"), 1);
    let snapshot = io.engine().metrics().snapshot();
    assert_eq!(
        (snapshot.pressure_shed, snapshot.pressure_tier),
        (1, Tier::Imminent)
    );
    let reports = io.disconnect_reports();
    let report = reports.iter().find(|r| r.socket_id == heavy).unwrap();
    assert_eq!(report.reason.as_str(), "server overloaded");
    let d = &report.diagnosis;
    assert_eq!(d.category.as_str(), "pressure");
    assert!(
        d.evidence[0].starts_with("outbound queue at "),
        "{:?}",
        d.evidence
    );
    assert!(
        d.evidence[1].starts_with("memory ") && d.evidence[1].contains("of a 10.0 MiB budget"),
        "{:?}",
        d.evidence
    );
    assert!(d.evidence[1].contains("tier imminent"), "{:?}", d.evidence);

    // Relief: at the next sample the tier falls; once the others read, back to normal.
    tokio::time::sleep(INTERVAL).await;
    assert!(io.engine().metrics().pressure_tier() < Tier::Imminent);
    for (client, _) in &clients[1..] {
        client.get().await;
    }
    tokio::time::sleep(INTERVAL).await;
    let seen = tiers(&changes);
    assert_eq!(seen.last(), Some(&Tier::Normal), "{seen:?}");
    assert!(
        seen.windows(2).skip(2).all(|w| w[1] < w[0]),
        "released in order: {seen:?}"
    );
    // New sessions are welcome again.
    let (status, _) = request(&io, Method::GET, "EIO=4&transport=polling", "").await;
    assert_eq!(status, StatusCode::OK);
    // Every timeline shows the node's pressure steps.
    let (timeline, _) = io.timeline("/", &clients[1].1).unwrap();
    let steps: Vec<&str> = timeline
        .iter()
        .filter_map(|c| match c.step {
            Step::Pressure(tier) => Some(tier),
            _ => None,
        })
        .collect();
    assert_eq!(steps.first(), Some(&"elevated"));
    assert_eq!(steps.last(), Some(&"normal"));
}

#[tokio::test(start_paused = true)]
async fn critical_pressure_halves_the_queue_bounds() {
    let mut cfg = config();
    cfg.engine.ping_interval = Duration::from_secs(600);
    cfg.engine.ping_timeout = Duration::from_secs(600);
    cfg.engine.queue = QueueLimits {
        max_packets: 100_000,
        max_bytes: 4 * CHUNK,
    };
    let io = server(cfg);
    // A model where memory is high whatever the queues hold.
    io.watch_memory(
        PressureConfig {
            budget: BUDGET,
            interval: INTERVAL,
        },
        || Some(BUDGET * 88 / 100),
        Shutdown::never(),
    );
    let (_client, sid) = connected_socket(&io).await;
    tokio::time::sleep(INTERVAL * 2).await;
    assert_eq!(io.engine().metrics().pressure_tier(), Tier::Critical);
    // Three chunks fit the configured bound (four) but not the halved one (two).
    for n in 0..3 {
        send_chunk(&io, &sid, n);
    }
    // The driver closes the session (and counts it) on its own task.
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
    let report = io.disconnect_reports().pop().unwrap();
    assert!(
        report
            .diagnosis
            .evidence
            .iter()
            .any(|e| e.contains("queue bounds halved")),
        "{:?}",
        report.diagnosis.evidence
    );
    assert!(
        report.diagnosis.evidence[0].contains("(bounds 50000 / 192.0 KiB)"),
        "{:?}",
        report.diagnosis.evidence
    );
}
