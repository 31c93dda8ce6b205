//! Events that cannot be delivered end in the dead-letter store: the in-memory ring
//! and the JSONL file.

use std::time::Duration;

use switchboard_hooks::{DeadLetterReason, HookSink};
use switchboard_test_support::eventually;

use super::receiver::{Answer, Receiver};
use super::setup::{connected, dead_letter_path, read_lines, settings, start};

#[tokio::test(start_paused = true)]
async fn a_receiver_that_never_answers_is_dead_lettered_after_max_attempts() {
    let mut receiver = Receiver::start(vec![], Answer::Hang).await;
    let (_dir, path) = dead_letter_path();
    let mut settings = settings(&receiver.url);
    settings.timeout = Duration::from_secs(2);
    settings.max_attempts = 3;
    settings.dead_letter_path = Some(path.clone());
    let (sink, stop) = start(settings);
    sink.deliver(connected("s1"));

    let attempts: Vec<_> = [
        receiver.next().await,
        receiver.next().await,
        receiver.next().await,
    ]
    .into();
    let id = attempts[0].header("idempotency-key").to_owned();
    assert!(attempts.iter().all(|a| a.header("idempotency-key") == id));
    // Each attempt waited for its full timeout before the next one started.
    assert!(attempts[1].at - attempts[0].at >= Duration::from_secs(2));

    eventually("dead-lettered", || async {
        sink.metrics().dead_lettered == 1
    })
    .await;
    let letters = sink.dead_letters();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.id, id);
    assert_eq!(letter.kind, "connection");
    assert_eq!(letter.reason, DeadLetterReason::MaxAttempts);
    assert_eq!(letter.attempts, 3);
    assert_eq!(letter.last_status, None);
    assert_eq!(letter.last_error.as_deref(), Some("timed out"));
    assert_eq!(letter.body, attempts[0].body);
    let m = sink.metrics();
    assert_eq!((m.failed_attempts, m.retried, m.delivered), (3, 2, 0));
    assert!(
        receiver
            .more_within(Duration::from_secs(300))
            .await
            .is_none()
    );

    // The file is written by its own task; shutdown waits for it.
    stop.send_replace(true);
    sink.finished().await;
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "max_attempts");
    assert_eq!(lines[0]["attempts"], 3);
    assert_eq!(lines[0]["last_error"], "timed out");
    assert_eq!(lines[0]["event"], attempts[0].json());
}

#[tokio::test(start_paused = true)]
async fn a_400_is_not_retried_and_is_dead_lettered() {
    let mut receiver = Receiver::start(vec![], Answer::Status(400)).await;
    let (_dir, path) = dead_letter_path();
    let mut settings = settings(&receiver.url);
    settings.dead_letter_path = Some(path.clone());
    let (sink, stop) = start(settings);
    sink.deliver(connected("s1"));

    let only = receiver.next().await;
    assert!(
        receiver
            .more_within(Duration::from_secs(300))
            .await
            .is_none()
    );
    eventually("dead-lettered", || async {
        sink.metrics().dead_lettered == 1
    })
    .await;
    let letter = sink.dead_letters().remove(0);
    assert_eq!(letter.reason, DeadLetterReason::Rejected);
    assert_eq!(letter.last_status, Some(400));
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.body, only.body);
    let m = sink.metrics();
    assert_eq!((m.rejected, m.retried, m.failed_attempts), (1, 0, 1));

    stop.send_replace(true);
    sink.finished().await;
    let lines = read_lines(&path);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["reason"], "rejected");
    assert_eq!(lines[0]["last_status"], 400);
}

#[tokio::test(start_paused = true)]
async fn the_in_memory_ring_is_bounded() {
    let receiver = Receiver::start(vec![], Answer::Status(422)).await;
    let mut settings = settings(&receiver.url);
    settings.dead_letter_memory = 2;
    let (sink, _stop) = start(settings);
    for n in 0..5 {
        sink.deliver(connected(&format!("s{n}")));
    }
    eventually("all dead-lettered", || async {
        sink.metrics().dead_lettered == 5
    })
    .await;
    assert_eq!(sink.dead_letters().len(), 2);
}
