//! The dead-letter store: lifecycle events that could not be delivered, kept in a
//! bounded in-memory ring for inspection and, when a path is configured, appended to a
//! size-bounded JSONL file for replay.
//!
//! File writes never happen on the caller's task: records go through a bounded channel
//! to a writer task that appends them with `spawn_blocking`. The file is rotated when
//! the next record would take it past `dead_letter_max_bytes`: `<path>` is renamed to
//! `<path>.1` (replacing the previous `.1`) and a new `<path>` begins, so the store
//! never holds more than two files of that size. Records are not fsync'ed: they
//! survive a crash of the process, not of the machine.

mod file;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use self::file::{DeadLetterFile, FileCommand, write_loop};
use super::payload::unix_millis;
use super::queue::Job;
use crate::metrics::{Metrics, incr};

/// Records waiting for the file writer. Bounds the memory a burst of dead letters
/// (a full queue dead-lettered on shutdown, an overflow flood) can take while the disk
/// catches up; a record that finds it full stays in memory only and is counted in
/// `dead_letter_file_errors`. Workers wait for room instead, so shutdown loses nothing.
const FILE_CHANNEL_CAPACITY: usize = 1024;

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Every attempt failed with a retryable outcome (network, timeout, 408, 429, 5xx).
    MaxAttempts,
    /// The backend refused it (4xx other than 408 and 429, or 1xx/3xx).
    Rejected,
    /// The queue was full and the overflow policy dropped it.
    Overflow,
    /// Shutdown's drain deadline passed before it was delivered.
    Shutdown,
}

impl DeadLetterReason {
    /// The `reason` in the JSONL record.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::MaxAttempts => "max_attempts",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Overflow => "overflow",
            DeadLetterReason::Shutdown => "shutdown",
        }
    }
}

/// A lifecycle event that was not delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The event's id (its idempotency key).
    pub id: String,
    /// The body's `type`.
    pub kind: &'static str,
    /// The exact JSON body that was (or would have been) POSTed; replaying it with the
    /// same id is safe for receivers that honour the idempotency key.
    pub body: Bytes,
    /// Why it was given up.
    pub reason: DeadLetterReason,
    /// Attempts made (0 for overflow and for shutdown before the first attempt).
    pub attempts: u32,
    /// The last attempt's HTTP status, if it got one.
    pub last_status: Option<u16>,
    /// The last attempt's error, if it failed without a status.
    pub last_error: Option<String>,
    /// When it was queued.
    pub queued_at: SystemTime,
    /// When it was given up.
    pub at: SystemTime,
}

impl DeadLetter {
    pub(crate) fn from_job(job: Job, reason: DeadLetterReason) -> Self {
        DeadLetter {
            id: job.id,
            kind: job.kind,
            body: job.body,
            reason,
            attempts: job.attempts,
            last_status: job.last_status,
            last_error: job.last_error,
            queued_at: job.queued_wall,
            at: SystemTime::now(),
        }
    }

    /// One JSONL record: the metadata, then the body verbatim as `event`.
    fn to_line(&self) -> Vec<u8> {
        let meta = json!({
            "dead_lettered_at": unix_millis(self.at),
            "queued_at": unix_millis(self.queued_at),
            "reason": self.reason.as_str(),
            "attempts": self.attempts,
            "last_status": self.last_status,
            "last_error": self.last_error,
        })
        .to_string();
        // `meta` is a JSON object: reopen it to append the body, which is itself JSON.
        let mut line = Vec::with_capacity(meta.len() + self.body.len() + 12);
        line.extend_from_slice(&meta.as_bytes()[..meta.len() - 1]);
        line.extend_from_slice(b",\"event\":");
        line.extend_from_slice(&self.body);
        line.extend_from_slice(b"}\n");
        line
    }
}

/// The store shared by the sink, its workers and `deliver`.
#[derive(Debug)]
pub(crate) struct DeadLetters {
    /// Newest at the back. A `std` mutex: pushes come from synchronous code and each
    /// critical section is one push or one clone of the ring.
    ring: Mutex<VecDeque<DeadLetter>>,
    memory: usize,
    file: Option<mpsc::Sender<FileCommand>>,
    metrics: Arc<Metrics>,
}

impl DeadLetters {
    /// Opens the file (when configured) and starts its writer task.
    pub(crate) fn open(
        path: Option<&Path>,
        max_bytes: u64,
        memory: usize,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let file = match path {
            Some(path) => {
                let file = DeadLetterFile::open(path.to_owned(), max_bytes)?;
                let (tx, rx) = mpsc::channel(FILE_CHANNEL_CAPACITY);
                tokio::spawn(write_loop(rx, file, Arc::clone(&metrics)));
                Some(tx)
            }
            None => None,
        };
        Ok(DeadLetters {
            ring: Mutex::new(VecDeque::new()),
            memory,
            file,
            metrics,
        })
    }

    /// Stores a dead letter without waiting (for `deliver`'s overflow path).
    pub(crate) fn push(&self, letter: DeadLetter) {
        let line = self.remember(letter);
        if let (Some(file), Some(line)) = (&self.file, line)
            && file.try_send(FileCommand::Append(line)).is_err()
        {
            incr(&self.metrics.dead_letter_file_errors);
        }
    }

    /// Stores a dead letter, waiting for room in the file writer's queue (workers).
    pub(crate) async fn push_waiting(&self, letter: DeadLetter) {
        let line = self.remember(letter);
        if let (Some(file), Some(line)) = (&self.file, line)
            && file.send(FileCommand::Append(line)).await.is_err()
        {
            incr(&self.metrics.dead_letter_file_errors);
        }
    }

    /// Counts, logs and keeps `letter` in the ring; returns its file line if a file is
    /// configured.
    fn remember(&self, letter: DeadLetter) -> Option<Vec<u8>> {
        incr(&self.metrics.dead_lettered);
        if letter.reason == DeadLetterReason::Overflow {
            // A full queue drops events by the thousand; the counter tells, one log
            // line per event would only add load while the backend is behind.
            tracing::debug!(id = %letter.id, kind = letter.kind, "webhook queue full; event dead-lettered");
        } else {
            tracing::warn!(
                id = %letter.id,
                kind = letter.kind,
                reason = letter.reason.as_str(),
                attempts = letter.attempts,
                last_status = letter.last_status,
                last_error = letter.last_error.as_deref(),
                "webhook event dead-lettered"
            );
        }
        let line = self.file.as_ref().map(|_| letter.to_line());
        if self.memory > 0 {
            let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
            if ring.len() >= self.memory {
                ring.pop_front();
            }
            ring.push_back(letter);
        }
        line
    }

    /// The dead letters in memory, oldest first.
    pub(crate) fn snapshot(&self) -> Vec<DeadLetter> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().cloned().collect()
    }

    /// Waits until every record sent so far is written, then stops the writer; later
    /// records stay in memory only.
    pub(crate) async fn close(&self) {
        if let Some(file) = &self.file {
            let (tx, rx) = oneshot::channel();
            if file.send(FileCommand::Close(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(id: &str) -> DeadLetter {
        let mut job = Job::new(
            id.to_owned(),
            "connection",
            Bytes::from_static(b"{\"id\":1}"),
        );
        job.attempts = 3;
        job.last_status = Some(503);
        DeadLetter::from_job(job, DeadLetterReason::MaxAttempts)
    }

    #[test]
    fn a_record_is_one_json_line_with_the_body_inside() -> Result<(), serde_json::Error> {
        let line = letter("evt_a").to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line)?;
        assert_eq!(v["reason"], "max_attempts");
        assert_eq!(v["attempts"], 3);
        assert_eq!(v["last_status"], 503);
        assert_eq!(v["event"], json!({"id": 1}));
        Ok(())
    }

    #[tokio::test]
    async fn the_ring_keeps_the_newest() -> std::io::Result<()> {
        let store = DeadLetters::open(None, 0, 2, Arc::default())?;
        for id in ["evt_1", "evt_2", "evt_3"] {
            store.push(letter(id));
        }
        let ids: Vec<String> = store.snapshot().into_iter().map(|d| d.id).collect();
        assert_eq!(ids, vec!["evt_2", "evt_3"]);
        Ok(())
    }
}
