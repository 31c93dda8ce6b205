//! A full queue applies its overflow policy: the caller is never blocked, the loss is
//! counted and dead-lettered, and the queue never grows past its capacity.
//!
//! "Never blocked" is shown by behaviour, not by a clock: the paused tokio clock cannot
//! move inside synchronous calls, so comparing it before and after proves nothing, and
//! a wall-clock bound would test speed. Instead the calls run while no worker can run
//! (see [`deliver_while_workers_cannot_run`]): a `deliver` that waited for a worker to
//! make room or to send would wait forever, and the safety net turns that into a failure.

use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use switchboard_hooks::{DeadLetterReason, HookSink, LifecycleEvent, OverflowPolicy, WebhookSink};

use super::receiver::{Answer, Receiver};
use super::setup::{connected, settings, start};

/// Safety net only: the calls return at once unless one waits, and then it never returns.
const DELIVER_SAFETY_NET: Duration = Duration::from_secs(60);

/// Calls `deliver` with each event on a plain thread (inside the runtime's context, as
/// the engine calls it) while the test's thread blocks until they all returned. The
/// test runtime is current-thread, so the sink's workers and the receiver cannot run
/// meanwhile: every call returning proves none waited for them. A call that waits hangs,
/// and the test fails after [`DELIVER_SAFETY_NET`] instead of hanging.
fn deliver_while_workers_cannot_run(sink: &WebhookSink, events: Vec<LifecycleEvent>) {
    let sink = sink.clone();
    let runtime = tokio::runtime::Handle::current();
    let (returned_tx, returned) = mpsc::channel();
    std::thread::spawn(move || {
        let _context = runtime.enter();
        for event in events {
            sink.deliver(event);
        }
        let _ = returned_tx.send(());
    });
    match returned.recv_timeout(DELIVER_SAFETY_NET) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("deliver blocked: the calls did not return while no worker could run")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("deliver panicked"),
    }
}

fn socket_id(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["data"]["socket_id"].as_str().unwrap().to_owned()
}

#[tokio::test(start_paused = true)]
async fn drop_newest_keeps_the_queue_and_dead_letters_newcomers() {
    let mut receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let mut settings = settings(&receiver.url);
    settings.queue_capacity = 2;
    settings.concurrency = 1;
    let (sink, _stop) = start(settings);

    // No worker runs during these calls, so none has taken anything yet: the queue
    // fills and the rest overflows, and no call waited for room.
    deliver_while_workers_cannot_run(
        &sink,
        (1..=5).map(|n| connected(&format!("s{n}"))).collect(),
    );
    let m = sink.metrics();
    assert_eq!((m.queue_depth, m.queue_capacity), (2, 2));
    assert_eq!((m.dropped_overflow, m.dead_lettered), (3, 3));

    let lost: Vec<String> = sink
        .dead_letters()
        .iter()
        .map(|d| socket_id(&d.body))
        .collect();
    assert_eq!(lost, vec!["s3", "s4", "s5"]);
    assert!(
        sink.dead_letters()
            .iter()
            .all(|d| d.reason == DeadLetterReason::Overflow && d.attempts == 0)
    );
    assert_eq!(socket_id(&receiver.next().await.body), "s1");
    assert_eq!(socket_id(&receiver.next().await.body), "s2");
    assert!(
        receiver
            .more_within(Duration::from_secs(60))
            .await
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_evicts_the_oldest_queued_event() {
    let mut receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let mut settings = settings(&receiver.url);
    settings.queue_capacity = 2;
    settings.concurrency = 1;
    settings.overflow = OverflowPolicy::DropOldest;
    let (sink, _stop) = start(settings);

    deliver_while_workers_cannot_run(
        &sink,
        (1..=5).map(|n| connected(&format!("s{n}"))).collect(),
    );
    let lost: Vec<String> = sink
        .dead_letters()
        .iter()
        .map(|d| socket_id(&d.body))
        .collect();
    assert_eq!(lost, vec!["s1", "s2", "s3"]);
    assert_eq!(sink.metrics().dropped_overflow, 3);
    assert_eq!(socket_id(&receiver.next().await.body), "s4");
    assert_eq!(socket_id(&receiver.next().await.body), "s5");
}

#[tokio::test(start_paused = true)]
async fn a_stuck_backend_never_blocks_the_caller() {
    let receiver = Receiver::start(vec![], Answer::Hang).await;
    let mut settings = settings(&receiver.url);
    settings.queue_capacity = 100;
    let (sink, _stop) = start(settings);
    // Let the workers take their first events and hang on them.
    for n in 0..4 {
        sink.deliver(connected(&format!("first{n}")));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sink.metrics().in_flight, 4);

    deliver_while_workers_cannot_run(
        &sink,
        (0..10_000).map(|n| connected(&format!("s{n}"))).collect(),
    );
    let m = sink.metrics();
    assert_eq!(m.queue_depth, 100);
    assert_eq!(m.dropped_overflow, 9_900);
    assert_eq!(
        sink.dead_letters().len(),
        256,
        "the ring keeps the newest only"
    );
}

/// One socket's room events past its share of the queue are counted, not
/// dead-lettered: kept, one client joining and leaving rooms in a loop while the
/// receiver is behind pushed every other dead letter out of the list and the file.
#[tokio::test(start_paused = true)]
async fn one_sockets_room_churn_does_not_push_out_dead_letters() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let mut settings = settings(&receiver.url);
    settings.queue_capacity = 10_000;
    let (sink, _stop) = start(settings);
    let at = std::time::SystemTime::now();
    let churn = (0..1_000).map(|n| LifecycleEvent::RoomOccupied {
        namespace: "/".into(),
        room: format!("made-up:{n}"),
        by: "churner".into(),
        at,
    });
    deliver_while_workers_cannot_run(&sink, churn.collect());
    // 256 of one socket's room events at most in the queue.
    let m = sink.metrics();
    assert_eq!((m.queue_depth, m.dropped_overflow), (256, 1_000 - 256));
    assert!(
        sink.dead_letters().is_empty(),
        "{} dead letters",
        sink.dead_letters().len()
    );
}
