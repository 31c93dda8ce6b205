//! The delivery workers and their supervisor: workers take lifecycle events off the
//! queue and deliver each with retries; the supervisor waits for shutdown, lets the
//! workers flush within the drain deadline, and dead-letters whatever is left.
//!
//! A worker owns one event from its first attempt to its last, sleeping through the
//! backoff in between: `concurrency` bounds both the requests in flight and the events
//! being retried, and a backend that is down fills the queue, where the overflow
//! policy takes over. Events are therefore not delivered in order once there is more
//! than one worker or a retry; receivers order by `timestamp`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Shared;
use super::dead_letter::{DeadLetter, DeadLetterReason};
use super::queue::Job;
use super::retry::{Verdict, classify};
use crate::metrics::incr;

/// The response to a lifecycle event is not used; reading up to this much of it lets
/// the connection be reused, and more is not worth the memory.
const LIFECYCLE_BODY_LIMIT: usize = 64 * 1024;

/// Where the sink is in its life. Ordered: each phase only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Phase {
    /// Delivering.
    Running,
    /// Shutdown signalled: workers empty the queue, then stop.
    Draining,
    /// The drain deadline passed: workers give up their event and stop.
    Expired,
    /// Workers are gone; `deliver` dead-letters directly.
    Stopped,
}

/// How one event's delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Rejected,
    Exhausted,
    Shutdown,
}

/// Starts `concurrency` workers and the supervisor; `done` turns true once the sink
/// has stopped and the dead-letter file is flushed.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    done: watch::Sender<bool>,
) {
    let mut workers = JoinSet::new();
    for _ in 0..shared.settings.concurrency.max(1) {
        workers.spawn(run(Arc::clone(&shared)));
    }
    tokio::spawn(supervise(shared, workers, shutdown, done));
}

async fn supervise(
    shared: Arc<Shared>,
    mut workers: JoinSet<()>,
    shutdown: impl Future<Output = ()>,
    done: watch::Sender<bool>,
) {
    shutdown.await;
    let queued = shared.queue.len();
    tracing::debug!(queued, "webhook sink draining");
    advance(&shared.phase, Phase::Draining);
    let flushed = tokio::time::timeout(shared.settings.drain_timeout, join_all(&mut workers))
        .await
        .is_ok();
    if !flushed {
        advance(&shared.phase, Phase::Expired);
        join_all(&mut workers).await;
    }
    shared.phase.send_replace(Phase::Stopped);
    let left = shared.queue.take_all();
    if !left.is_empty() {
        tracing::warn!(
            events = left.len(),
            "webhook drain deadline passed; dead-lettering the rest"
        );
    }
    for job in left {
        shared
            .dead
            .push_waiting(DeadLetter::from_job(job, DeadLetterReason::Shutdown))
            .await;
    }
    shared.dead.close().await;
    done.send_replace(true);
}

/// Moves the sink's phase forward to `to`; never back (the process's own drain may
/// have expired it already, [`crate::WebhookSink::expire`]).
pub(crate) fn advance(phase: &watch::Sender<Phase>, to: Phase) {
    phase.send_if_modified(|p| {
        let moved = *p < to;
        if moved {
            *p = to;
        }
        moved
    });
}

async fn join_all(workers: &mut JoinSet<()>) {
    while let Some(joined) = workers.join_next().await {
        if let Err(err) = joined {
            tracing::error!(cause = %err, "webhook worker failed");
        }
    }
}

/// One worker: deliver events until the queue is empty while draining, or the drain
/// deadline passes.
async fn run(shared: Arc<Shared>) {
    let mut phase = shared.phase.subscribe();
    loop {
        let current = *phase.borrow_and_update();
        if current >= Phase::Expired {
            return;
        }
        if let Some(job) = shared.queue.pop() {
            deliver_one(&shared, job, &mut phase).await;
            continue;
        }
        if current == Phase::Draining {
            return;
        }
        tokio::select! {
            () = shared.queue.ready() => {}
            _ = phase.changed() => {}
        }
    }
}

/// Delivers one event (or gives up on it when the drain deadline passes) and records
/// the outcome.
async fn deliver_one(shared: &Shared, mut job: Job, phase: &mut watch::Receiver<Phase>) {
    shared.metrics.in_flight.fetch_add(1, Relaxed);
    let outcome = tokio::select! {
        outcome = attempts(shared, &mut job) => outcome,
        () = expired(phase) => Outcome::Shutdown,
    };
    shared.metrics.in_flight.fetch_sub(1, Relaxed);
    let reason = match outcome {
        Outcome::Delivered => {
            incr(&shared.metrics.delivered);
            shared
                .metrics
                .delivery_latency
                .observe(job.queued_at.elapsed());
            return;
        }
        Outcome::Rejected => {
            incr(&shared.metrics.rejected);
            DeadLetterReason::Rejected
        }
        Outcome::Exhausted => DeadLetterReason::MaxAttempts,
        Outcome::Shutdown => DeadLetterReason::Shutdown,
    };
    shared
        .dead
        .push_waiting(DeadLetter::from_job(job, reason))
        .await;
}

async fn expired(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p >= Phase::Expired).await.is_err() {
        // The sender lives in `Shared`, which outlives this worker; never give up an
        // event because of a closed channel.
        std::future::pending::<()>().await;
    }
}

/// Attempts `job` until it is delivered, refused, or out of attempts, sleeping the
/// backoff (or the backend's `Retry-After`) in between.
async fn attempts(shared: &Shared, job: &mut Job) -> Outcome {
    let settings = &shared.settings;
    loop {
        job.attempts += 1;
        let deadline = Instant::now() + settings.timeout;
        let result = shared
            .client
            .post(
                &settings.url,
                &job.id,
                &job.body,
                deadline,
                LIFECYCLE_BODY_LIMIT,
            )
            .await;
        let retry_after = match result {
            Ok(response) => {
                job.last_status = Some(response.status.as_u16());
                job.last_error = None;
                match classify(response.status, &response.headers, SystemTime::now()) {
                    Verdict::Delivered => return Outcome::Delivered,
                    Verdict::Reject => {
                        incr(&shared.metrics.failed_attempts);
                        return Outcome::Rejected;
                    }
                    Verdict::Retry { after } => after,
                }
            }
            Err(err) => {
                job.last_status = None;
                job.last_error = Some(err.to_string());
                None
            }
        };
        incr(&shared.metrics.failed_attempts);
        if job.attempts >= settings.max_attempts {
            return Outcome::Exhausted;
        }
        let delay = match retry_after {
            Some(asked) => asked.min(settings.max_retry_after),
            None => shared.backoff.delay(job.attempts),
        };
        tracing::debug!(
            id = %job.id,
            attempt = job.attempts,
            status = job.last_status,
            error = job.last_error.as_deref(),
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "webhook delivery failed; retrying"
        );
        incr(&shared.metrics.retried);
        tokio::time::sleep(delay).await;
    }
}
