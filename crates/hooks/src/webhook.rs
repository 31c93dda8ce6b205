//! [`WebhookSink`]: lifecycle events and forwarded client events as signed HTTP POSTs
//! to the backend.
//!
//! Lifecycle events go through a bounded queue drained by a few worker tasks, with
//! retries (exponential backoff, full jitter, `Retry-After`) and a dead-letter store.
//! Forwarded events are POSTed at once and their reply awaited, bounded by the forward
//! timeout; they are **not retried**, because a client is waiting for the answer and a
//! late ack is worth less than a prompt error.
//!
//! # Layout
//!
//! - `payload`: the JSON bodies and ids;
//! - `client`: one signed POST with a deadline;
//! - `retry`: status classification, backoff, `Retry-After`;
//! - `queue`: the bounded queue and its overflow policy;
//! - `worker`: delivery workers and the shutdown supervisor;
//! - `dead_letter`: the dead-letter ring and JSONL file.

mod client;
mod dead_letter;
mod payload;
mod queue;
mod retry;
mod worker;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use switchboard_http_client::BuildError;
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, timeout_at};

use self::client::{Client, PostError};
use self::queue::{Job, Push, Queue};
use self::retry::Backoff;
use self::worker::Phase;
use crate::event::{ForwardedEvent, LifecycleEvent};
use crate::metrics::{HookMetrics, Metrics, incr};
use crate::reply::HookReply;
use crate::settings::WebhookSettings;
use crate::sink::{BoxFuture, HookError, HookSink};

pub use self::dead_letter::{DeadLetter, DeadLetterReason};

/// Largest reply body read for a forwarded event: an ack and a few actions fit in far
/// less, and the bound caps what one misbehaving backend can make each forward buffer.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Why a [`WebhookSink`] could not start. Reported once at startup, like bad config.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An `https` URL is configured but there is no root certificate to trust: the
    /// system has none (install a CA bundle or set `SSL_CERT_FILE`) and no
    /// `tls_ca_file` is set.
    #[error("no root certificates for https: the system has none and tls_ca_file is not set")]
    NoRoots,
    /// `tls_ca_file` cannot be read or holds no usable certificate.
    #[error("tls_ca_file: {message}")]
    CaFile {
        /// What went wrong, with the path.
        message: String,
    },
    /// The TLS library refused its configuration (should not happen).
    #[error("{0}")]
    Tls(#[source] BuildError),
    /// The dead-letter file cannot be opened for appending.
    #[error("cannot open the dead-letter file {}: {source}", path.display())]
    DeadLetterFile {
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl From<BuildError> for StartError {
    fn from(err: BuildError) -> Self {
        match err {
            BuildError::NoRoots => StartError::NoRoots,
            err if err.is_ca_file() => StartError::CaFile {
                message: err.to_string(),
            },
            err => StartError::Tls(err),
        }
    }
}

/// A [`HookSink`] that POSTs signed JSON to the backend. Cheap to clone: clones share
/// the queue, workers, metrics and dead letters.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    shared: Arc<Shared>,
    done: watch::Receiver<bool>,
}

/// What the sink's handle, workers and supervisor share.
#[derive(Debug)]
struct Shared {
    settings: WebhookSettings,
    client: Client,
    queue: Queue,
    dead: dead_letter::DeadLetters,
    metrics: Arc<Metrics>,
    backoff: Backoff,
    /// The sink's phase; workers and `deliver` read it, the supervisor moves it.
    phase: watch::Sender<Phase>,
    /// Bounds forwarded events in flight; a permit is held for the whole POST.
    forward_slots: Semaphore,
}

impl WebhookSink {
    /// Starts the sink's workers. Must be called within a Tokio runtime.
    ///
    /// `shutdown` resolves when the process begins to shut down (for the engine's
    /// signal: `async move { shutdown.wait().await }`; for a
    /// `watch::Receiver<bool>`: `async move { let _ = rx.wait_for(|v| *v).await; }`).
    /// From then on the workers flush the queue for at most `drain_timeout`; what is
    /// still undelivered is dead-lettered, and [`finished`](Self::finished) resolves.
    /// The workers run until `shutdown` resolves: dropping every handle does not stop
    /// them.
    pub fn start(
        settings: WebhookSettings,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Self, StartError> {
        let client = Client::new(
            settings.secret.clone(),
            [&settings.url, settings.forward_url()],
            settings.tls_ca_file.as_deref(),
        )?;
        let metrics = Arc::new(Metrics::default());
        let dead = dead_letter::DeadLetters::open(
            settings.dead_letter_path.as_deref(),
            settings.dead_letter_max_bytes,
            settings.dead_letter_memory,
            Arc::clone(&metrics),
        )
        .map_err(|source| StartError::DeadLetterFile {
            path: settings.dead_letter_path.clone().unwrap_or_default(),
            source,
        })?;
        let shared = Arc::new(Shared {
            client,
            queue: Queue::new(settings.queue_capacity, settings.overflow),
            dead,
            metrics,
            backoff: Backoff {
                initial: settings.backoff_initial,
                max: settings.backoff_max,
                multiplier: settings.backoff_multiplier,
            },
            phase: watch::Sender::new(Phase::Running),
            forward_slots: Semaphore::new(settings.forward_concurrency.max(1)),
            settings,
        });
        let (done_tx, done) = watch::channel(false);
        worker::spawn(Arc::clone(&shared), shutdown, done_tx);
        Ok(WebhookSink { shared, done })
    }

    /// The most recent dead letters (up to `dead_letter_memory`), oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead.snapshot()
    }

    /// A snapshot of the sink's counters, gauges and histograms.
    pub fn metrics(&self) -> HookMetrics {
        self.shared
            .metrics
            .snapshot(self.shared.queue.len(), self.shared.queue.capacity())
    }

    /// Ends the flush now, whatever is left of `drain_timeout`: an event being
    /// delivered is given up, and it and every queued one are dead-lettered
    /// (`shutdown`). For a process whose own drain deadline has come (the shutdown
    /// signal must have been given); [`finished`](Self::finished) then resolves once
    /// the dead letters are written.
    pub fn expire(&self) {
        worker::advance(&self.shared.phase, Phase::Expired);
    }

    /// Resolves once shutdown has completed: the queue was flushed or dead-lettered and
    /// the dead-letter file is written. `main` awaits it within its drain deadline.
    pub async fn finished(&self) {
        let mut done = self.done.clone();
        // An error means the supervisor is gone, which only happens once it is done
        // or the runtime is shutting down: either way there is nothing to wait for.
        let _ = done.wait_for(|d| *d).await;
    }
}

impl HookSink for WebhookSink {
    fn deliver(&self, event: LifecycleEvent) {
        let id = payload::new_id();
        let body = payload::lifecycle(&id, &event);
        let job = Job::new(id, event.kind(), body).made_by(event.room_source());
        let shared = &self.shared;
        if *shared.phase.borrow() == Phase::Stopped {
            shared
                .dead
                .push(DeadLetter::from_job(job, DeadLetterReason::Shutdown));
            return;
        }
        match shared.queue.push(job) {
            Push::Queued => {}
            Push::Overflow(lost) => {
                incr(&shared.metrics.dropped_overflow);
                shared
                    .dead
                    .push(DeadLetter::from_job(lost, DeadLetterReason::Overflow));
            }
            Push::Capped => incr(&shared.metrics.dropped_overflow),
        }
        // The supervisor moves to `Stopped` and then empties the queue; checking after
        // the push means an event pushed in between is never stranded.
        if *shared.phase.borrow() == Phase::Stopped {
            for job in shared.queue.take_all() {
                shared
                    .dead
                    .push(DeadLetter::from_job(job, DeadLetterReason::Shutdown));
            }
        }
    }

    fn forward(&self, event: ForwardedEvent) -> BoxFuture<'static, Result<HookReply, HookError>> {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.forward(event).await })
    }
}

impl Shared {
    async fn forward(&self, event: ForwardedEvent) -> Result<HookReply, HookError> {
        let started = Instant::now();
        let deadline = started + self.settings.forward_timeout;
        let id = payload::new_id();
        let body = payload::forwarded(&id, &event);
        let result = match timeout_at(deadline, self.forward_slots.acquire()).await {
            Err(_) => Err(HookError::Timeout),
            Ok(Err(_closed)) => Err(HookError::Unavailable),
            Ok(Ok(_permit)) => self.post_forward(&id, &body, deadline).await,
        };
        let counter = match &result {
            Ok(_) => {
                self.metrics.forward_latency.observe(started.elapsed());
                &self.metrics.forward_ok
            }
            Err(HookError::Timeout) => &self.metrics.forward_timeout,
            Err(HookError::Rejected { .. }) => &self.metrics.forward_rejected,
            Err(HookError::InvalidReply) => &self.metrics.forward_invalid_reply,
            Err(HookError::Unavailable) => &self.metrics.forward_unavailable,
        };
        incr(counter);
        result
    }

    async fn post_forward(
        &self,
        id: &str,
        body: &bytes::Bytes,
        deadline: Instant,
    ) -> Result<HookReply, HookError> {
        let url = self.settings.forward_url();
        let response = match self
            .client
            .post(url, id, body, deadline, MAX_REPLY_BYTES)
            .await
        {
            Ok(response) => response,
            Err(PostError::Timeout) => {
                tracing::warn!(%id, "forwarded event: the backend did not answer in time");
                return Err(HookError::Timeout);
            }
            Err(PostError::Network(cause)) => {
                tracing::warn!(%id, %cause, "forwarded event: the backend is unavailable");
                return Err(HookError::Unavailable);
            }
        };
        if !response.status.is_success() {
            let status = response.status.as_u16();
            tracing::warn!(%id, status, "forwarded event: the backend rejected it");
            return Err(HookError::Rejected { status });
        }
        let Some(reply) = response.body else {
            if Instant::now() >= deadline {
                tracing::warn!(%id, "forwarded event: the reply body did not arrive in time");
                return Err(HookError::Timeout);
            }
            tracing::warn!(%id, limit = MAX_REPLY_BYTES, "forwarded event: the reply is too large or broken");
            return Err(HookError::InvalidReply);
        };
        HookReply::from_body(&reply).map_err(|cause| {
            tracing::warn!(%id, %cause, "forwarded event: the reply is not valid");
            HookError::InvalidReply
        })
    }
}
