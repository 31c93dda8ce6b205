//! Questions one Switchboard node asks the others and their answers, beyond the Node
//! adapters' protocol: what [`Adapter::ask_nodes`](switchboard_engine::adapter::Adapter::ask_nodes)
//! carries (the HTTP API's diagnosis answering for the whole cluster). The same for
//! every adapter: it rides the node's broker, not the adapter's channels.
//!
//! - **Switchboard nodes only:** questions go to `<key_prefix>-ask`, which only
//!   Switchboard nodes subscribe to, so `PUBLISH` says how many there are (this node
//!   included: it hears its own question and ignores it). Node.js servers sharing the
//!   cluster never see a question, and are neither asked nor waited for. Answers go
//!   to the asker's own `<key_prefix>-ask#<uid>` (shard channels on a Redis Cluster,
//!   as the forwarding channels).
//! - **Bounded in time:** the asker waits until every node asked answered, or the
//!   adapter's request timeout (`cluster.request_timeout`) passed, and returns what it
//!   has; how many were asked travels with the answers, so a partial answer shows.
//! - **Only the cluster's nodes are heard:** every frame is signed with the
//!   [`ClusterSecret`](crate::ClusterSecret) ([`frame`]); a question older (or further
//!   ahead) than the request timeout, or one answered already, is not answered again,
//!   and an answer is taken only for a question still waiting, once per node, to this
//!   node ([`pending`]). Frames are size-checked before their signature: a question
//!   at most [`MAX_QUESTION_BYTES`], an answer at most [`MAX_ANSWER_BYTES`], and the
//!   answers held for every waiting question together at most [`MAX_HELD_BYTES`].
//!   What an answer says is the asking side's to check (the API bounds the reports it
//!   takes).

pub(crate) mod frame;
mod pending;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use switchboard_engine::adapter::{BoxFuture, NodeAnswers};

use self::frame::{Frame, QuestionId, Seal};
use self::pending::Pending;
use crate::broker::{Broker, MessageHandler};
use crate::forward::recent::Seen;
use crate::{ClusterConfig, ClusterSecret};

/// Largest question: a question names a filter, a few hundred bytes of JSON.
pub(crate) const MAX_QUESTION_BYTES: usize = 16 << 10;

/// Largest answer: 1000 disconnect reports (the most the API asks for at once), each
/// with a full timeline of 32 steps, are about 3 MB of JSON. An answer that would be
/// larger is not sent; the answerer is told the room it has ([`Answerer`]).
pub(crate) const MAX_ANSWER_BYTES: usize = 4 << 20;

/// What a frame adds around an answer's body: the tag, the ids, names and time.
const ENVELOPE_BYTES: usize = 1 << 10;

/// Answers held for every question still waiting, together: sixteen nodes' largest
/// answers. Beyond it answers are dropped (and the asker sees them missing).
pub(crate) const MAX_HELD_BYTES: usize = 16 * MAX_ANSWER_BYTES;

/// Answers this node makes and sends at once. Each may be [`MAX_ANSWER_BYTES`] of JSON
/// to build and publish; a burst of questions beyond this (an API client looping over
/// every node) goes unanswered, and the askers see it, rather than piling up work.
const MAX_ANSWERING: usize = 8;

/// Answers being opened at once, each on a blocking thread (its signature checked over
/// up to [`MAX_ANSWER_BYTES`]); the others wait their turn, holding at most
/// [`MAX_HELD_BYTES`] together. The answer channel is public on Redis: without these
/// bounds, junk sent there while a question waits would start a thread per message.
const MAX_OPENING: usize = 4;

/// What a message waiting to be opened costs beyond its bytes (its task, its place in
/// the semaphore's queue), charged to [`MAX_HELD_BYTES`] too: empty messages would
/// otherwise queue without limit. At most 16,384 wait.
const WAITING_COST: usize = 4 << 10;

/// What this node answers to another node's question: called with the question and the
/// most bytes the answer's JSON may take (a larger one is not sent), it returns the
/// answer (JSON `null` for a question it does not know). Runs on a Tokio worker: it
/// must not block.
pub type Answerer = Arc<dyn Fn(&Value, usize) -> Value + Send + Sync>;

/// Where a node's adapters find its questions: set once the node started, weak because
/// the answerer holds the server, whose adapters hold the node ([`crate::Cluster`] keeps
/// the questions alive).
pub(crate) type Slot = OnceLock<Weak<Questions>>;

/// The channel every Switchboard node hears questions on.
fn question_channel(key_prefix: &str) -> String {
    format!("{key_prefix}-ask")
}

/// The channel where answers to node `uid`'s questions go.
fn answer_channel(key_prefix: &str, uid: &str) -> String {
    format!("{key_prefix}-ask#{uid}")
}

/// Milliseconds since the Unix epoch: the send time in frames, compared across nodes.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One node's side of the questions: asking, answering, and the answers awaited.
pub(crate) struct Questions {
    broker: Arc<Broker>,
    key_prefix: String,
    /// This node's uid: where its answers come back, and what its frames say.
    uid: String,
    seal: Seal,
    /// How long an asker waits, and how old (or how far ahead) a question may be.
    timeout: Duration,
    /// This node's name and what it answers, once the server is built
    /// ([`crate::Cluster::answer_nodes`]). Until then it answers nothing and is named by
    /// its uid.
    answerer: OnceLock<(String, Answerer)>,
    /// A `std` mutex: held for a map operation, never across an await.
    pending: Mutex<Pending>,
    /// Questions answered already, so a replayed frame is not answered again.
    seen: Mutex<Seen>,
    /// Answers being opened now ([`MAX_OPENING`] permits).
    opening: Arc<tokio::sync::Semaphore>,
    /// Bytes of the answers being opened or waiting to be (at most
    /// [`MAX_HELD_BYTES`]).
    opening_bytes: Arc<AtomicUsize>,
    /// Answers being made or sent now (at most [`MAX_ANSWERING`]).
    answering: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Questions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Questions")
            .field("uid", &self.uid)
            .finish_non_exhaustive()
    }
}

/// Why a frame was dropped, for the debug log (never what it carried).
#[derive(Debug, thiserror::Error)]
enum Rejected {
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error("an answer on the question channel, or a question on an answer channel")]
    WrongChannel,
    #[error("meant for another node")]
    NotForMe,
    #[error("sent too long ago, or ahead of this node's clock")]
    Stale,
    #[error("a question answered already")]
    Replayed,
    #[error("{MAX_ANSWERING} answers under way already")]
    Busy,
    #[error("longer than an answer may be ({MAX_ANSWER_BYTES} bytes)")]
    TooLong,
    #[error("answers waiting to be opened hold {MAX_HELD_BYTES} bytes already")]
    OpeningFull,
    #[error(transparent)]
    Refused(#[from] pending::Refused),
}

impl Questions {
    /// Hears and asks questions through `broker` as node `uid`; `None` without the
    /// cluster secret (every Redis adapter has one).
    pub(crate) fn start(
        broker: &Arc<Broker>,
        config: &ClusterConfig,
        uid: &str,
    ) -> Option<Arc<Questions>> {
        Some(Self::with_secret(
            broker,
            config,
            uid,
            config.secret.as_ref()?,
        ))
    }

    fn with_secret(
        broker: &Arc<Broker>,
        config: &ClusterConfig,
        uid: &str,
        secret: &ClusterSecret,
    ) -> Arc<Questions> {
        let questions = Arc::new(Questions {
            broker: broker.clone(),
            key_prefix: config.key_prefix.clone(),
            uid: uid.to_owned(),
            seal: Seal::new(secret),
            timeout: config.request_timeout,
            answerer: OnceLock::new(),
            pending: Mutex::new(Pending::new(MAX_HELD_BYTES)),
            seen: Mutex::default(),
            opening: Arc::new(tokio::sync::Semaphore::new(MAX_OPENING)),
            opening_bytes: Arc::default(),
            answering: Arc::default(),
        });
        let on = |receive: fn(&Arc<Questions>, &Bytes) -> Result<(), Rejected>| {
            let weak = Arc::downgrade(&questions);
            let handler: MessageHandler = Arc::new(move |_channel: &str, payload: Bytes| {
                if let Some(questions) = weak.upgrade()
                    && let Err(why) = receive(&questions, &payload)
                {
                    tracing::debug!(reason = %why, "node question frame dropped");
                }
            });
            handler
        };
        broker.route(question_channel(&config.key_prefix), on(Self::on_question));
        broker.route(
            answer_channel(&config.key_prefix, uid),
            on(Self::on_answer_off_the_subscriber),
        );
        questions
    }

    /// An answer, opened on a blocking thread: checking its signature and reading its
    /// JSON (up to [`MAX_ANSWER_BYTES`]) would otherwise hold up the subscriber
    /// connection's task, which delivers the cluster's broadcasts. Nothing is opened
    /// while no question waits (a late answer, or noise on the channel), nothing longer
    /// than an answer may be; [`MAX_OPENING`] are opened at once and the rest wait,
    /// up to [`MAX_HELD_BYTES`] (past that, one is dropped and its node is left out
    /// of the answer, as a late one would be).
    fn on_answer_off_the_subscriber(self: &Arc<Self>, payload: &Bytes) -> Result<(), Rejected> {
        if !self.lock_pending().is_waiting() {
            return Err(pending::Refused::NotAsked.into());
        }
        if payload.len() > MAX_ANSWER_BYTES {
            return Err(Rejected::TooLong);
        }
        let charge = payload.len() + WAITING_COST;
        let held = Share::take(&self.opening_bytes, charge, MAX_HELD_BYTES)
            .ok_or(Rejected::OpeningFull)?;
        let me = self.clone();
        // A copy: a slice would keep the subscriber's whole read buffer (up to a 16 MiB
        // message it was cut from) alive while it waits, charged for its own length.
        let payload = Bytes::copy_from_slice(payload);
        tokio::spawn(async move {
            let Ok(_turn) = me.opening.clone().acquire_owned().await else {
                return;
            };
            let opened = tokio::task::spawn_blocking(move || me.on_answer(&payload)).await;
            drop(held);
            if let Ok(Err(why)) = opened {
                tracing::debug!(reason = %why, "node question frame dropped");
            }
        });
        Ok(())
    }

    /// Answers other nodes' questions with `answerer`, naming this node `name`. Once:
    /// a second call changes nothing.
    pub(crate) fn answer_with(&self, name: String, answerer: Answerer) {
        // A name no node could have would make every answer refused: the uid instead.
        let name = if frame::is_name(&name) {
            name
        } else {
            self.uid.clone()
        };
        let _ = self.answerer.set((name, answerer));
    }

    /// This node's name, as its answers carry it.
    pub(crate) fn name(&self) -> String {
        self.answerer
            .get()
            .map_or_else(|| self.uid.clone(), |(name, _)| name.clone())
    }

    /// Asks every other Switchboard node `question`; see the module doc.
    pub(crate) async fn ask(&self, question: &Value) -> NodeAnswers {
        let unknown = NodeAnswers {
            asked: None,
            answers: Vec::new(),
        };
        if !self.broker.subscribed() {
            tracing::warn!("cannot ask the other nodes: this node does not hear the cluster");
            return unknown;
        }
        let id: QuestionId = rand::random();
        let frame = Frame::Question {
            id,
            from: self.uid.clone(),
            ts: now_ms(),
            body: question.clone(),
        };
        let sealed = match self.seal.seal(&frame) {
            Ok(sealed) if sealed.len() <= MAX_QUESTION_BYTES => sealed,
            Ok(sealed) => {
                tracing::error!(
                    bytes = sealed.len(),
                    "a node question over its bound; not asked"
                );
                return unknown;
            }
            Err(err) => {
                tracing::error!(error = %err, "a node question could not be encoded");
                return unknown;
            }
        };
        // Waiting before publishing: an answer may arrive before `PUBLISH` replies.
        let mut rx = self.lock_pending().wait(id);
        let _forget = Forget {
            questions: self,
            id,
        };
        let receivers = match self
            .broker
            .publish_now(&question_channel(&self.key_prefix), &sealed)
            .await
        {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, "cannot ask the other nodes");
                return unknown;
            }
        };
        // This node hears its own question too (and ignores it).
        let asked = receivers.saturating_sub(1);
        let mut answers = Vec::with_capacity(asked);
        let deadline = tokio::time::Instant::now() + self.timeout;
        while answers.len() < asked {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(answer)) => answers.push(answer),
                Ok(None) | Err(_) => break,
            }
        }
        if answers.len() < asked {
            tracing::info!(
                asked,
                answered = answers.len(),
                "not every node answered a node question in time"
            );
        }
        NodeAnswers {
            asked: Some(asked),
            answers,
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Another node's question: answered (on a task of its own) if it is fresh, signed
    /// and not answered already, and once this node has an answerer.
    fn on_question(self: &Arc<Self>, payload: &Bytes) -> Result<(), Rejected> {
        let Frame::Question { id, from, ts, body } = self.seal.open(payload, MAX_QUESTION_BYTES)?
        else {
            return Err(Rejected::WrongChannel);
        };
        if from == self.uid {
            return Ok(());
        }
        let now = now_ms();
        let window = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        if ts.abs_diff(now) > window {
            return Err(Rejected::Stale);
        }
        // Anything sent before this is refused as stale: no need to remember it.
        let forget_before = now.saturating_sub(window.saturating_mul(2));
        let first = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first_time(&(from.clone(), id), ts, forget_before);
        if !first {
            return Err(Rejected::Replayed);
        }
        let Some((name, answerer)) = self.answerer.get().cloned() else {
            tracing::debug!("a node question before this node answers any; not answered");
            return Ok(());
        };
        let permit = Share::take(&self.answering, 1, MAX_ANSWERING).ok_or(Rejected::Busy)?;
        let me = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let body = answerer(&body, MAX_ANSWER_BYTES - ENVELOPE_BYTES);
            me.send_answer(id, from, name, body).await;
        });
        Ok(())
    }

    /// Publishes this node's answer to question `id` of node `to`.
    async fn send_answer(&self, id: QuestionId, to: String, node: String, body: Value) {
        let channel = answer_channel(&self.key_prefix, &to);
        let frame = Frame::Answer {
            id,
            from: self.uid.clone(),
            to,
            node,
            ts: now_ms(),
            body,
        };
        let sealed = match self.seal.seal(&frame) {
            Ok(sealed) if sealed.len() <= MAX_ANSWER_BYTES => sealed,
            Ok(sealed) => {
                tracing::error!(
                    bytes = sealed.len(),
                    "an answer to a node question over its bound; not sent"
                );
                return;
            }
            Err(err) => {
                tracing::error!(error = %err, "an answer to a node question could not be encoded");
                return;
            }
        };
        match self.broker.publish_now(&channel, &sealed).await {
            Ok(0) => tracing::debug!(channel, "the asking node left before its answer"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, channel, "answer to a node question not sent"),
        }
    }

    /// An answer to one of this node's questions.
    fn on_answer(self: &Arc<Self>, payload: &[u8]) -> Result<(), Rejected> {
        let Frame::Answer {
            id,
            from,
            to,
            node,
            body,
            ..
        } = self.seal.open(payload, MAX_ANSWER_BYTES)?
        else {
            return Err(Rejected::WrongChannel);
        };
        if to != self.uid {
            return Err(Rejected::NotForMe);
        }
        self.lock_pending()
            .offer(id, &from, payload.len(), (node, body))?;
        Ok(())
    }
}

/// `n` of a bounded count (tasks under way, bytes waiting), given back when dropped.
struct Share(Arc<AtomicUsize>, usize);

impl Share {
    /// `n` more of `count`, unless that would pass `max`.
    fn take(count: &Arc<AtomicUsize>, n: usize, max: usize) -> Option<Share> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                taken.checked_add(n).filter(|total| *total <= max)
            })
            .ok()
            .map(|_| Share(count.clone(), n))
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::AcqRel);
    }
}

/// Stops waiting for a question's answers however [`Questions::ask`] ends (answered,
/// timed out, or its caller gone).
struct Forget<'a> {
    questions: &'a Questions,
    id: QuestionId,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.questions.lock_pending().forget(self.id);
    }
}

/// [`Adapter::node_name`](switchboard_engine::adapter::Adapter::node_name) of a node's
/// adapters.
pub(crate) fn node_name(slot: &Slot) -> Option<String> {
    slot.get()?.upgrade().map(|q| q.name())
}

/// [`Adapter::ask_nodes`](switchboard_engine::adapter::Adapter::ask_nodes) of a node's
/// adapters: nobody could be asked while the node has no questions (it is starting or
/// stopping).
pub(crate) fn ask<'a>(slot: &'a Slot, question: &'a Value) -> BoxFuture<'a, NodeAnswers> {
    Box::pin(async move {
        match slot.get().and_then(Weak::upgrade) {
            Some(questions) => questions.ask(question).await,
            None => NodeAnswers {
                asked: None,
                answers: Vec::new(),
            },
        }
    })
}

#[cfg(test)]
mod tests;
