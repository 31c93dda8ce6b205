//! Retryable failures are retried with the same id and body; `Retry-After` is obeyed.

use std::time::Duration;

use switchboard_hooks::HookSink;
use switchboard_test_support::eventually;

use super::receiver::{Answer, Receiver};
use super::setup::{connected, settings, start};

#[tokio::test(start_paused = true)]
async fn a_500_is_retried_and_delivered_once_more() {
    let mut receiver = Receiver::start(vec![Answer::Status(500)], Answer::Status(200)).await;
    let (sink, _stop) = start(settings(&receiver.url));
    sink.deliver(connected("s1"));

    let first = receiver.next().await;
    let second = receiver.next().await;
    assert_eq!(first.body, second.body, "a retry sends the same bytes");
    assert_eq!(
        first.header("idempotency-key"),
        second.header("idempotency-key")
    );
    assert!(
        second.at - first.at <= Duration::from_millis(500),
        "first backoff cap"
    );
    assert!(
        receiver
            .more_within(Duration::from_secs(120))
            .await
            .is_none()
    );

    eventually("delivered", || async { sink.metrics().delivered == 1 }).await;
    let m = sink.metrics();
    assert_eq!((m.failed_attempts, m.retried, m.dead_lettered), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn timeouts_5xx_and_dropped_connections_are_retried() {
    let mut receiver = Receiver::start(
        vec![Answer::Status(408), Answer::Status(502), Answer::Drop],
        Answer::Status(200),
    )
    .await;
    let (sink, _stop) = start(settings(&receiver.url));
    sink.deliver(connected("s1"));
    for _ in 0..4 {
        receiver.next().await;
    }
    eventually("delivered", || async { sink.metrics().delivered == 1 }).await;
    assert_eq!(sink.metrics().retried, 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_on_429_is_honoured() {
    let mut receiver = Receiver::start(
        vec![Answer::Full(
            429,
            vec![("retry-after", "30".into())],
            String::new(),
        )],
        Answer::Status(200),
    )
    .await;
    let mut settings = settings(&receiver.url);
    // Without Retry-After the retry would come within a millisecond.
    settings.backoff_initial = Duration::from_millis(1);
    settings.backoff_max = Duration::from_millis(1);
    let (sink, _stop) = start(settings);
    sink.deliver(connected("s1"));

    let first = receiver.next().await;
    let second = receiver.next().await;
    let waited = second.at - first.at;
    assert!(waited >= Duration::from_secs(30), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(31), "waited {waited:?}");
    eventually("delivered", || async { sink.metrics().delivered == 1 }).await;
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped() {
    let mut receiver = Receiver::start(
        vec![Answer::Full(
            503,
            vec![("retry-after", "86400".into())],
            String::new(),
        )],
        Answer::Status(200),
    )
    .await;
    let mut settings = settings(&receiver.url);
    settings.max_retry_after = Duration::from_secs(60);
    let (sink, _stop) = start(settings);
    sink.deliver(connected("s1"));
    let first = receiver.next().await;
    let second = receiver.next().await;
    let waited = second.at - first.at;
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
        "waited {waited:?}"
    );
}
