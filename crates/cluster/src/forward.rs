//! Long-polling without sticky sessions: a [`Forwarder`] over Redis pub/sub.
//!
//! Every clustered node puts its tag (its `uid`) at the start of the Engine.IO session
//! ids it creates and listens on `<key_prefix>-fwd#<tag>`. A node that receives a
//! polling request for a session it does not hold publishes the request on the owner's
//! channel and waits for the answer on its own; the owner runs it through the very
//! code an HTTP request takes there
//! ([`EngineServer::handle_forwarded`]) and publishes the answer back.
//!
//! - **Only the cluster's nodes are heard:** anyone who can publish on the Redis can
//!   write on these channels, and a request run here takes a session's frames or
//!   delivers packets as its client. So every frame (request, answer, cancel) is
//!   sealed with the [`ClusterSecret`] (encrypted and authenticated: anyone who can
//!   read the Redis reads these channels too, and a request's query holds the
//!   session's id, a bearer credential on every node) and names its destination and
//!   when it was sent ([`frame`]); a node drops, counts (`forward_rejected`) and logs
//!   at debug, without what it carried, every frame that is not sealed or sealed with
//!   another secret, meant for another node, sent more than the forward timeout ago (or that
//!   far in the future: clocks must agree to within it), or a request it already ran.
//!   Request ids are random 128-bit numbers, so an answer or a cancel cannot be aimed
//!   at a request without having seen it; an answer must come from the node asked.
//! - **Unknown owner, fast:** `PUBLISH` says how many nodes listen on the owner's
//!   channel; none means no live node has that tag (it died, or the id is made up),
//!   and the client is told at once that its session is unknown, so it opens a new
//!   one (and resumes its Socket.IO state when recovery is on).
//! - **Waiting long enough:** a long-polling GET is answered only when the owner has
//!   frames for it, at most `pingInterval + pingTimeout` later; the forwarding node
//!   waits that long plus [`NETWORK_MARGIN`].
//! - **...but not for a node that died:** while requests wait, every [`OWNER_CHECK`]
//!   the forwarding node asks Redis who still listens on each of their owners'
//!   channels (`PUBSUB NUMSUB`). An owner absent at two checks in a row (a live node's
//!   subscription that reconnects is absent for a moment only) has left: its requests
//!   fail at once with an unknown owner, so their clients open a new session (and
//!   resume) a few seconds after a node's crash instead of after their own ping
//!   timeout. A node that is frozen keeps its connection and is not noticed here; the
//!   clients' ping timeout and the load balancer's health checks cover it.
//! - **Cancellation:** when the client gives up on its request (the future is
//!   dropped), a cancel message ends the request on the owner too, as an aborted
//!   local poll would, so frames are not taken for a client no longer there. A cancel
//!   that overtakes its request is remembered so the request is never run.
//! - **What can be lost:** an answer in flight when Redis fails. For a GET that held
//!   frames this is a gap in the Engine.IO stream; the session then fails its next
//!   poll and, with connection state recovery, the client resumes and is replayed the
//!   missed events.
//!
//! Frames on the wire (Switchboard nodes only; Node.js servers never see them) are
//! described in [`frame`].

pub(crate) mod frame;
pub(crate) mod recent;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use switchboard_engine::config::NodeTag;
use switchboard_engine::eio::forward::{
    ForwardError, ForwardedRequest, ForwardedResponse, Forwarder,
};
use switchboard_engine::eio::server::EngineServer;
use switchboard_engine::protocol::engineio::handshake::Query;
use switchboard_engine::{DisconnectReason, Shutdown};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use self::frame::{Envelope, Frame, RequestId, Seal};
use self::recent::{EarlyCancels, RequestKey, Seen};
use crate::ClusterSecret;
use crate::broker::{Broker, MessageHandler};

/// Added to the engine's longest poll before a forwarded request is given up: the
/// two pub/sub hops and the owner's scheduling.
pub(crate) const NETWORK_MARGIN: Duration = Duration::from_secs(5);

/// How often the owners of waiting requests are checked for (see the module doc).
pub(crate) const OWNER_CHECK: Duration = Duration::from_secs(2);

/// The pub/sub channel of the node tagged `tag`.
pub(crate) fn channel(key_prefix: &str, tag: &str) -> String {
    format!("{key_prefix}-fwd#{tag}")
}

/// Milliseconds since the Unix epoch: the send time in frames, compared across nodes.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A request sent, waiting for its answer from `owner` (or for the news that `owner`
/// left).
struct Waiter {
    owner: String,
    answer: oneshot::Sender<Result<ForwardedResponse, ForwardError>>,
}

/// Requests sent, by id, waiting for their answer.
type Waiting = Arc<Mutex<HashMap<RequestId, Waiter>>>;

/// Forwards polling requests to their owner over Redis and runs those other nodes
/// forward here.
pub(crate) struct RedisForwarder {
    broker: Arc<Broker>,
    key_prefix: String,
    /// This node's tag (the answers come back on its channel).
    own: String,
    /// Signs what this node sends, checks what it receives.
    seal: Arc<Seal>,
    /// How long to wait for an owner's answer; also how old (or how far ahead of this
    /// node's clock) a frame may be.
    timeout: Duration,
    /// Requests sent, waiting for their answer.
    waiting: Waiting,
    /// Requests other nodes sent here, running.
    running: Mutex<HashMap<RequestKey, AbortHandle>>,
    /// Cancels that arrived before their request.
    early_cancels: Mutex<EarlyCancels>,
    /// Requests already run here, so a replayed frame runs nothing.
    seen: Mutex<Seen>,
    engine: Weak<EngineServer>,
}

impl std::fmt::Debug for RedisForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisForwarder")
            .field("own", &self.own)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a frame was dropped, for the debug log (never what it carried).
#[derive(Debug, Clone, Copy)]
enum Rejected {
    NotForMe,
    Stale,
    Replayed,
    NotAsked,
}

/// A forwarded request's entry in [`RedisForwarder::running`], taken out when its task
/// ends, whether it finished, was aborted or panicked.
struct Running {
    forwarder: Weak<RedisForwarder>,
    key: RequestKey,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(forwarder) = self.forwarder.upgrade()
            && let Ok(mut running) = forwarder.running.lock()
        {
            running.remove(&self.key);
        }
    }
}

impl RedisForwarder {
    /// Sets the forwarder on `engine` and serves the requests forwarded to `tag`;
    /// watches the owners of waiting requests until `shutdown`.
    pub(crate) fn attach(
        broker: &Arc<Broker>,
        key_prefix: &str,
        tag: NodeTag,
        secret: &ClusterSecret,
        engine: &Arc<EngineServer>,
        shutdown: Shutdown,
    ) {
        let forwarder = Arc::new(RedisForwarder {
            broker: broker.clone(),
            key_prefix: key_prefix.to_owned(),
            own: tag.as_str().to_owned(),
            seal: Arc::new(Seal::new(secret)),
            timeout: engine.config().longest_poll() + NETWORK_MARGIN,
            waiting: Waiting::default(),
            running: Mutex::default(),
            early_cancels: Mutex::default(),
            seen: Mutex::default(),
            engine: Arc::downgrade(engine),
        });
        let weak = Arc::downgrade(&forwarder);
        let handler: MessageHandler = Arc::new(move |_channel: &str, payload: Bytes| {
            if let Some(forwarder) = weak.upgrade() {
                forwarder.on_frame(&payload);
            }
        });
        broker.route(channel(key_prefix, tag.as_str()), handler);
        tokio::spawn(watch_owners(Arc::downgrade(&forwarder), shutdown));
        engine.set_forwarder(forwarder);
    }

    /// The owners that requests are waiting for.
    fn awaited_owners(&self) -> HashSet<String> {
        self.waiting
            .lock()
            .map(|w| w.values().map(|waiter| waiter.owner.clone()).collect())
            .unwrap_or_default()
    }

    /// Fails every request waiting for one of `gone`.
    fn owners_left(&self, gone: &HashSet<String>) {
        let failed: Vec<Waiter> = match self.waiting.lock() {
            Ok(mut waiting) => {
                let ids: Vec<RequestId> = waiting
                    .iter()
                    .filter(|(_, waiter)| gone.contains(&waiter.owner))
                    .map(|(id, _)| *id)
                    .collect();
                ids.iter().filter_map(|id| waiting.remove(id)).collect()
            }
            Err(_) => return,
        };
        if !failed.is_empty() {
            tracing::info!(owners = ?gone, requests = failed.len(), "the owners of forwarded polling requests left; failing them");
        }
        for waiter in failed {
            let _ = waiter
                .answer
                .send(Err(ForwardError::UnknownOwner(waiter.owner)));
        }
    }

    fn on_frame(self: &Arc<Self>, payload: &[u8]) {
        let envelope = match self.seal.open(payload) {
            Ok(envelope) => envelope,
            Err(err) => {
                self.reject(&err);
                return;
            }
        };
        let now = now_ms();
        if let Err(why) = self.admit(&envelope, now) {
            self.reject(&format!("{why:?}"));
            return;
        }
        match envelope.frame {
            Frame::Request { from, id, request } => self.run(from, id, request),
            Frame::Response { from, id, response } => {
                let waiter = self.waiting.lock().ok().and_then(|mut w| {
                    // Only the node asked may answer.
                    w.get(&id)
                        .is_some_and(|waiter| waiter.owner == from)
                        .then(|| w.remove(&id))
                        .flatten()
                });
                match waiter {
                    Some(waiter) => {
                        let _ = waiter.answer.send(Ok(response));
                    }
                    // Usually an answer that came after its request was given up:
                    // not counted as a rejected frame.
                    None => {
                        tracing::debug!(reason = ?Rejected::NotAsked, "forwarded answer dropped")
                    }
                }
            }
            Frame::Cancel { from, id } => {
                let running = self
                    .running
                    .lock()
                    .ok()
                    .and_then(|mut r| r.remove(&(from.clone(), id)));
                match running {
                    Some(handle) => handle.abort(),
                    None => {
                        if let Ok(mut early) = self.early_cancels.lock() {
                            early.insert((from, id));
                        }
                    }
                }
            }
        }
    }

    /// Whether a frame whose signature checked is for this node, fresh, and (for a
    /// request) not one already run.
    fn admit(&self, envelope: &Envelope, now: u64) -> Result<(), Rejected> {
        if envelope.to != self.own {
            return Err(Rejected::NotForMe);
        }
        let window = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        if envelope.sent_ms.abs_diff(now) > window {
            return Err(Rejected::Stale);
        }
        if let Frame::Request { from, id, .. } = &envelope.frame {
            // Anything sent before this is refused as stale: no need to remember it.
            let forget_before = now.saturating_sub(window.saturating_mul(2));
            let first = self.seen.lock().is_ok_and(|mut seen| {
                seen.first_time(&(from.clone(), *id), envelope.sent_ms, forget_before)
            });
            if !first {
                return Err(Rejected::Replayed);
            }
        }
        Ok(())
    }

    /// Counts and logs a dropped frame: the reason only, nothing it carried.
    fn reject(&self, why: &dyn std::fmt::Display) {
        self.broker
            .health()
            .forward_rejected
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(reason = %why, "forwarding frame dropped");
    }

    /// Signs `frame` for `to` and publishes it at once.
    fn seal(&self, to: &str, frame: &Frame) -> (String, Bytes) {
        let sealed = self.seal.seal(to, now_ms(), frame);
        (channel(&self.key_prefix, to), sealed)
    }

    /// Runs a request another node forwarded here and publishes the answer back.
    fn run(self: &Arc<Self>, from: String, id: RequestId, request: ForwardedRequest) {
        let key = (from, id);
        if self
            .early_cancels
            .lock()
            .is_ok_and(|mut early| early.remove(&key))
        {
            return;
        }
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let me = self.clone();
        let mut running = match self.running.lock() {
            Ok(running) => running,
            Err(_) => return,
        };
        let task_key = key.clone();
        let forwarder = Arc::downgrade(&me);
        let task = tokio::spawn(async move {
            // Takes the entry out however the task ends: a panic in the handling left
            // it (and its key) in the map for good. Made in the task, not before it:
            // a runtime shutting down drops a spawned future at once, on this thread,
            // which holds the map's lock (a task aborted before it ran is taken out by
            // whoever aborted it).
            let _leaving = Running {
                forwarder,
                key: task_key.clone(),
            };
            let sid = Query::parse(&request.query).sid.map(str::to_owned);
            // A poll, not the question of a WebSocket relay's owner address (a GET too).
            let poll = request.method == http::Method::GET
                && Query::parse(&request.query).transport == Some("polling");
            let response = engine.handle_forwarded(request).await;
            let done = me.running.lock().ok().and_then(|mut r| r.remove(&task_key));
            if done.is_none() {
                // Cancelled while the answer was being made: the client left its request.
                // A poll answered with frames took them off the queue; nobody will see
                // them, so the session must not go on past that hole (as below).
                if poll
                    && response.status == http::StatusCode::OK
                    && response.body.as_ref() != b"6"
                    && let Some(sid) = sid
                {
                    engine.close_session(&sid, DisconnectReason::TransportError);
                }
                return;
            }
            let answer = Frame::Response {
                from: me.own.clone(),
                id,
                response,
            };
            let (to, sealed) = me.seal(&task_key.0, &answer);
            let delivered = match me.broker.publish_now(&to, &sealed).await {
                Ok(receivers) => receivers > 0,
                Err(err) => {
                    tracing::warn!(error = %err, to, "forwarded answer not sent");
                    false
                }
            };
            if !delivered && let Some(sid) = sid {
                // The client will never see this answer (and the frames it held): it
                // must resume in a new session rather than poll on past a hole.
                tracing::info!(sid, to, "forwarded answer lost; closing the session");
                engine.close_session(&sid, DisconnectReason::TransportError);
            }
        });
        running.insert(key, task.abort_handle());
    }
}

impl Forwarder for RedisForwarder {
    fn forward(
        &self,
        owner: &str,
        request: ForwardedRequest,
    ) -> BoxFuture<'static, Result<ForwardedResponse, ForwardError>> {
        let id: RequestId = rand::random();
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(
                id,
                Waiter {
                    owner: owner.to_owned(),
                    answer: tx,
                },
            );
        }
        let (to, sealed) = self.seal(
            owner,
            &Frame::Request {
                from: self.own.clone(),
                id,
                request,
            },
        );
        let owner = owner.to_owned();
        let timeout = self.timeout;
        let mut link = self.broker.link();
        link.borrow_and_update();
        let listening = self.broker.subscribed();
        // Removes the waiter (and tells the owner) however the future ends.
        let mut pending = Pending {
            broker: self.broker.clone(),
            waiting: self.waiting.clone(),
            seal: self.seal.clone(),
            to,
            owner: owner.clone(),
            from: self.own.clone(),
            id,
            settled: false,
        };
        Box::pin(async move {
            if !listening {
                // The answer could not reach this node.
                pending.settle();
                return Err(ForwardError::Transport(Box::new(LinkError::Down)));
            }
            let receivers = pending
                .broker
                .publish_now(&pending.to, &sealed)
                .await
                .map_err(|e| ForwardError::Transport(Box::new(e)))?;
            if receivers == 0 {
                pending.settle();
                return Err(ForwardError::UnknownOwner(owner));
            }
            tokio::select! {
                answer = tokio::time::timeout(timeout, rx) => match answer {
                    Ok(Ok(Ok(response))) => {
                        pending.settle();
                        Ok(response)
                    }
                    // The owner left (see `watch_owners`): nobody to cancel.
                    Ok(Ok(Err(err))) => {
                        pending.settle();
                        Err(err)
                    }
                    // The forwarder is gone: the node is shutting down.
                    Ok(Err(_)) | Err(_) => Err(ForwardError::Timeout),
                },
                // The answer may have been published while this node was not listening;
                // the owner closes the session when it cannot deliver an answer.
                _ = link.changed() => Err(ForwardError::Transport(Box::new(LinkError::Changed))),
            }
        })
    }
}

/// Checks the owners of waiting requests every [`OWNER_CHECK`] until `shutdown` (or the
/// forwarder is gone), and fails the requests of an owner that no longer listens on
/// its channel at two checks in a row. A check that cannot reach Redis proves
/// nothing: this node's own link going down fails its requests already.
async fn watch_owners(forwarder: Weak<RedisForwarder>, shutdown: Shutdown) {
    let mut absent_before = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(OWNER_CHECK) => {}
        }
        let Some(me) = forwarder.upgrade() else {
            return;
        };
        let mut absent = HashSet::new();
        for owner in me.awaited_owners() {
            let listening = me
                .broker
                .route_listeners(&channel(&me.key_prefix, &owner))
                .await;
            if matches!(listening, Ok(0)) {
                absent.insert(owner);
            }
        }
        let gone: HashSet<String> = absent.intersection(&absent_before).cloned().collect();
        if !gone.is_empty() {
            me.owners_left(&gone);
        }
        absent_before = absent;
    }
}

/// Why a forwarded request's answer cannot arrive.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// This node does not hear its channel.
    #[error("this node's Redis subscription is down")]
    Down,
    /// This node's subscription dropped (and maybe came back) while waiting.
    #[error("this node's Redis subscription dropped while waiting; the answer may be lost")]
    Changed,
}

/// A forwarded request waiting for its answer. Dropped unanswered (the client left,
/// or the owner took too long), it tells the owner to stop.
struct Pending {
    broker: Arc<Broker>,
    waiting: Waiting,
    seal: Arc<Seal>,
    /// The owner's channel.
    to: String,
    /// The owner's tag.
    owner: String,
    /// This node's tag.
    from: String,
    id: RequestId,
    /// Answered, or never reached an owner: nothing to cancel.
    settled: bool,
}

impl Pending {
    /// Nothing left to cancel.
    fn settle(&mut self) {
        self.settled = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&self.id);
        }
        if !self.settled {
            let cancel = Frame::Cancel {
                from: std::mem::take(&mut self.from),
                id: self.id,
            };
            let sealed = self.seal.seal(&self.owner, now_ms(), &cancel);
            self.broker.publish(std::mem::take(&mut self.to), sealed);
        }
    }
}
