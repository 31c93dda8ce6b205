//! A full queue applies its overflow policy: the caller is never blocked, the loss is
//! counted and dead-lettered, and the queue never grows past its capacity.

use std::time::Duration;

use serde_json::Value;
use switchboard_hooks::{DeadLetterReason, HookSink, OverflowPolicy};
use tokio::time::Instant;

use super::receiver::{Answer, Receiver};
use super::setup::{connected, settings, start};

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

    // Nothing yields between these calls, so no worker has taken anything yet: the
    // queue fills and the rest overflows, and no call waited (the clock did not move).
    let before = Instant::now();
    for n in 1..=5 {
        sink.deliver(connected(&format!("s{n}")));
    }
    assert_eq!(Instant::now(), before);
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

    for n in 1..=5 {
        sink.deliver(connected(&format!("s{n}")));
    }
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

    let before = Instant::now();
    for n in 0..10_000 {
        sink.deliver(connected(&format!("s{n}")));
    }
    assert_eq!(Instant::now(), before, "deliver never waits");
    let m = sink.metrics();
    assert_eq!(m.queue_depth, 100);
    assert_eq!(m.dropped_overflow, 9_900);
    assert_eq!(
        sink.dead_letters().len(),
        256,
        "the ring keeps the newest only"
    );
}
