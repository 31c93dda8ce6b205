//! On shutdown the sink flushes its queue within the drain deadline and dead-letters
//! what it could not deliver.

use std::time::Duration;

use switchboard_hooks::{DeadLetterReason, HookSink};

use super::receiver::{Answer, Receiver};
use super::setup::{connected, dead_letter_path, read_lines, settings, start};

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_what_is_queued() {
    let mut receiver = Receiver::start(vec![Answer::Status(503)], Answer::Status(200)).await;
    let mut settings = settings(&receiver.url);
    settings.concurrency = 2;
    let (sink, stop) = start(settings);
    for n in 0..20 {
        sink.deliver(connected(&format!("s{n}")));
    }
    stop.send_replace(true);
    sink.finished().await;

    let m = sink.metrics();
    assert_eq!(m.delivered, 20, "{m:?}");
    assert_eq!((m.queue_depth, m.dead_lettered), (0, 0));
    let mut received = 0;
    while receiver
        .more_within(Duration::from_millis(1))
        .await
        .is_some()
    {
        received += 1;
    }
    assert_eq!(received, 21, "twenty events, one of them retried");
}

#[tokio::test(start_paused = true)]
async fn what_cannot_be_flushed_in_time_is_dead_lettered() {
    let mut receiver = Receiver::start(vec![], Answer::Hang).await;
    let (_dir, path) = dead_letter_path();
    let mut settings = settings(&receiver.url);
    settings.concurrency = 1;
    settings.drain_timeout = Duration::from_secs(3);
    settings.dead_letter_path = Some(path.clone());
    let (sink, stop) = start(settings);
    for n in 0..3 {
        sink.deliver(connected(&format!("s{n}")));
    }
    receiver.next().await; // the worker is stuck on the first one
    stop.send_replace(true);
    let began = tokio::time::Instant::now();
    sink.finished().await;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(4),
        "took {took:?}"
    );

    let letters = sink.dead_letters();
    assert_eq!(letters.len(), 3);
    assert!(
        letters
            .iter()
            .all(|d| d.reason == DeadLetterReason::Shutdown)
    );
    assert_eq!(letters.iter().map(|d| d.attempts).sum::<u32>(), 1);
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["reason"] == "shutdown"));

    // After shutdown, new events go straight to the (in-memory) dead letters.
    sink.deliver(connected("late"));
    assert_eq!(sink.dead_letters().len(), 4);
    assert_eq!(sink.metrics().queue_depth, 0);
    assert_eq!(read_lines(&path).len(), 3, "the file is closed");
}

#[tokio::test(start_paused = true)]
async fn an_idle_sink_stops_at_once() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let (sink, stop) = start(settings(&receiver.url));
    stop.send_replace(true);
    let began = tokio::time::Instant::now();
    sink.finished().await;
    assert!(began.elapsed() < Duration::from_millis(100));
}
