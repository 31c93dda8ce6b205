//! The `redis-streams` adapter: `@socket.io/redis-streams-adapter` 0.3 on the wire,
//! and the durable half of connection state recovery.
//!
//! - Broadcasts and room operations are XADDed to one stream (`socket.io`, trimmed
//!   with `MAXLEN ~`). One reader per node XREADs it in order. Unlike Node, a node
//!   delivers its *own* recoverable broadcasts when it reads them back, so every node
//!   delivers in stream order, offsets are stream ids, and a replay from any offset
//!   never overlaps live delivery.
//! - Requests that need answers (fetch sockets, server-side emit, broadcasts with
//!   acks) travel over pub/sub on `socket.io#<nsp>#`, answers on
//!   `socket.io#<nsp>#<uid>#`, msgpack-encoded, as in Node.
//! - Sessions are written to `sio:session:<pid>` when a socket connects, joins,
//!   leaves or changes its data, refreshed while it lives, and taken (an idempotent
//!   claim, [`CLAIM_SESSION`]) by whichever node the client comes back to. A session
//!   whose socket left without one to keep (its client ended it, or was kicked) is
//!   deleted at once, not behind the node's stream writes ([`deleter`]).
//! - Stream writes go out from a writer on a thread of its own (not behind the node's
//!   socket tasks), in order, pipelined.
//! - While Redis is down, stream writes wait in order in memory (up to
//!   [`MAX_PENDING_WRITES`]) and go out when it is back; the reader resumes from the
//!   last id it read, so no entry is skipped. At most one save per session waits: a
//!   later one replaces its value ([`queue`]).
//!
//! [`reply`] walks what XREAD and XRANGE answer without copying it.

mod deleter;
mod queue;
mod reply;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use switchboard_engine::Shutdown;
use switchboard_engine::adapter::{
    Adapter, AdapterError, AdapterFactory, BoxFuture, BroadcastOptions, ClusterOp, DurableSession,
    LogFilter, LogRead, LoggedEvent, MemoryAdapter, NodeAnswers, Room, SessionStore, SocketInfo,
    SocketsPage, frame_bytes,
};
use switchboard_engine::sio::Namespace;
use switchboard_protocol::Sid;
use switchboard_protocol::cluster::CodecError;
use switchboard_protocol::cluster::msgpack::MsgValue;
use switchboard_protocol::cluster::streams::{
    ClusterMessage, MessageBody, PersistedSession, private_channel, public_channel, session_key,
};
use switchboard_protocol::socketio::Packet;
use tokio::sync::{mpsc, oneshot};

use crate::broker::{
    Broker, Conn, Health, OwnConn, Publish, Sub, Target, contained, handler_of, jitter,
};
use crate::convert::{engine_opts, relayable, rooms, to_json, to_wire, wire_opts};
use crate::exchange::Exchange;
use crate::questions;
use crate::redis_cluster::{SlotPipes, beside};
use crate::sign::Signer;
use crate::{ClusterConfig, ClusterError, NodeHandle, random_uid};
use deleter::Deleter;
use queue::{Taker, WriteQueue};
use reply::{Entry, ReplyError};

/// Stream writes kept while Redis is unreachable; beyond this, new ones are dropped
/// (and counted) rather than exhausting memory.
pub(crate) const MAX_PENDING_WRITES: usize = 100_000;
/// Bytes of the stream writes kept (with [`MAX_PENDING_WRITES`]), as the pub/sub
/// publish queue keeps: entries carry events of up to a client's `max_payload` each
/// (a relayed 1 MB event), so a count alone would let 100,000 of them take 100 GB.
pub(crate) const MAX_PENDING_WRITE_BYTES: usize = crate::pub_conn::MAX_PENDING_BYTES;
/// Entries read per XREAD.
const READ_COUNT: usize = 256;
/// How long one XREAD blocks.
const BLOCK: Duration = Duration::from_secs(2);
/// Entries fetched per XRANGE during a replay.
const RANGE_COUNT: usize = 1000;
/// Longest pause between two tries of a failed stream write: every node's writer sends
/// what it queued while Redis was away within this of Redis' return.
const MAX_WRITE_BACKOFF: Duration = Duration::from_millis(500);
/// Longest pause between two tries of a failed stream read: a node is back to reading
/// the stream within this of Redis' return, well inside the catch-up wait a resuming
/// client gets (3 s in the engine).
const MAX_READ_BACKOFF: Duration = Duration::from_secs(1);
/// How long after this node last saw Redis fail a missing session is looked for again
/// (every 100 ms): long enough for the other nodes' writers to send what they queued
/// meanwhile ([`MAX_WRITE_BACKOFF`] plus their own reconnect).
const WRITES_SETTLE: Duration = Duration::from_secs(3);

/// The extra field of a stored session that holds its `offset` (see
/// [`DurableSession::offset`]); Node ignores it.
const SESSION_OFFSET: &str = "offset";

/// A write to Redis that must keep its order.
#[derive(Debug)]
enum Write {
    /// A stream entry, and who to tell once Redis has it.
    Entry(Vec<(&'static str, String)>, Option<oneshot::Sender<()>>),
    /// Stores a session unless it was taken since with a later epoch, and when
    /// `fence` (its socket left) fences off the socket's later saves
    /// ([`SAVE_SESSION`]).
    SaveSession {
        key: String,
        value: String,
        ttl: Duration,
        epoch: u64,
        fence: bool,
    },
    /// A save's place in the queue: the writer turns it into the [`Write::SaveSession`]
    /// of the latest value saved for `key` while it waited, or drops it when `key` was
    /// forgotten since ([`queue::Taker::fill`]); never sent as it is.
    SaveWaiting { key: String, seq: u64 },
    /// Deletes a session, on the same condition, and when `fence` (its socket left)
    /// fences off the socket's later saves ([`FORGET_SESSION`]).
    Forget {
        key: String,
        epoch: u64,
        fence: bool,
    },
    /// A save taken out of a batch the writer holds, because its socket's session was
    /// deleted at once since ([`queue::Taker::strip`]): sends nothing. It keeps the
    /// save's place so the runs of entries around it keep their numbers when the batch
    /// is sent again ([`APPEND_ONCE`]: two runs merged into one under the first's
    /// number would be skipped whole if Redis had applied that first run).
    Withdrawn { key: String },
}

impl Write {
    /// The bytes it keeps while queued, as [`MAX_PENDING_WRITE_BYTES`] counts them.
    fn bytes(&self) -> usize {
        match self {
            Write::Entry(fields, _) => fields.iter().map(|(k, v)| k.len() + v.len()).sum(),
            Write::SaveSession { key, value, .. } => key.len() + value.len(),
            Write::Forget { key, .. }
            | Write::SaveWaiting { key, .. }
            | Write::Withdrawn { key } => key.len(),
        }
    }
}

/// The namespaces this node serves and how far its reader got, under one lock: the
/// reader dispatches under it, and a namespace registers under it, so a new namespace
/// starts exactly at the reader's position.
#[derive(Debug, Default)]
struct Routes {
    namespaces: HashMap<String, Weak<Namespace>>,
    /// The id of the last entry read (`0-0` before any).
    position: String,
}

impl Routes {
    /// Forgets the namespace `ns` named `name`, unless a namespace of the same name
    /// has replaced it already.
    fn forget(&mut self, name: &str, ns: &Weak<Namespace>) {
        if self
            .namespaces
            .get(name)
            .is_some_and(|known| Weak::ptr_eq(known, ns))
        {
            self.namespaces.remove(name);
        }
    }
}

/// One node's membership of a `redis-streams` cluster.
pub(crate) struct StreamsNode {
    config: ClusterConfig,
    broker: OnceLock<Arc<Broker>>,
    /// Questions to the other Switchboard nodes (set by `Cluster::start`).
    questions: questions::Slot,
    routes: Mutex<Routes>,
    /// Namespaces closed but perhaps still in `routes`, each with its name: closing
    /// cannot wait for the routes lock, because a namespace may close on the reader's
    /// own thread while it dispatches under that lock (the last socket leaves on a
    /// `disconnectSockets` read from the stream), so whoever takes the lock next
    /// forgets them ([`StreamsNode::lock_routes`]). A leaf lock: nothing is called
    /// while it is held.
    closed: Mutex<Vec<(String, Weak<Namespace>)>>,
    /// Set once the reader knows where the stream ends.
    started: tokio::sync::watch::Sender<bool>,
    /// Set when the reader found a gap, until it reads a batch that is fresh again
    /// (small, and less than [`GAP_CHECK_LAG_MS`] old) or finds nothing to read: the
    /// node is not ready meanwhile.
    behind: std::sync::atomic::AtomicBool,
    /// How far the reader has read (a stream id as numbers), for those who wait for
    /// it ([`SessionStore::read_through`]): moved after each batch.
    read_to: tokio::sync::watch::Sender<(u64, u64)>,
    /// Stream entries and session writes for the [`writer`], in order.
    writes: WriteQueue,
    /// Deletions of sessions whose socket left, for the [`deleter`] to write at once.
    deleter: Deleter,
    /// Requests and answers over pub/sub, and this node's uid.
    exchange: Exchange,
}

impl std::fmt::Debug for StreamsNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsNode")
            .field("uid", &self.uid())
            .finish_non_exhaustive()
    }
}

impl NodeHandle for StreamsNode {
    fn uid(&self) -> &str {
        self.exchange.uid()
    }
    fn broker(&self) -> Option<&Arc<Broker>> {
        self.broker.get()
    }
    fn questions(&self) -> &questions::Slot {
        &self.questions
    }
    /// Started, and not behind the stream after a gap (see [`StreamsNode::behind`]):
    /// readiness says so, so a balancer sends the clients it closed elsewhere.
    fn unsent_bytes(&self) -> usize {
        self.writes.unsent_bytes()
    }

    fn joined(&self) -> bool {
        *self.started.borrow() && !self.behind.load(Ordering::Acquire)
    }
}

impl StreamsNode {
    pub(crate) fn start(
        config: &ClusterConfig,
        shutdown: Shutdown,
    ) -> Result<Arc<StreamsNode>, ClusterError> {
        let (writes, taker, writes_rx) =
            WriteQueue::new(MAX_PENDING_WRITES, MAX_PENDING_WRITE_BYTES);
        let (deleter, deletions) = Deleter::new();
        let node = Arc::new(StreamsNode {
            config: config.clone(),
            broker: OnceLock::new(),
            questions: OnceLock::new(),
            routes: Mutex::new(Routes {
                namespaces: HashMap::new(),
                position: "0-0".to_owned(),
            }),
            closed: Mutex::default(),
            started: tokio::sync::watch::channel(false).0,
            behind: std::sync::atomic::AtomicBool::new(false),
            read_to: tokio::sync::watch::channel((0, 0)).0,
            writes,
            deleter,
            exchange: Exchange::new(
                format!("{:016x}", rand::random::<u64>()),
                &config.key_prefix,
                config.request_timeout,
                Publish::Classic,
                ClusterMessage::encode_pubsub,
            ),
        });
        let on_message = handler_of(&node, |node: &StreamsNode, channel, payload| {
            node.on_pubsub(channel, &payload);
        });
        let broker = Broker::start(config, on_message, shutdown.clone())?;
        spawn_writer(writer(
            broker.target().clone(),
            writes_rx,
            taker,
            WriteTarget::new(config, node.uid()),
            broker.health().clone(),
        ))?;
        tokio::spawn(deletions.run(
            broker.target().clone(),
            broker.health().clone(),
            shutdown.clone(),
        ));
        let redis = broker.target().clone();
        let _ = node.broker.set(broker);
        tokio::spawn(reader(Arc::downgrade(&node), redis, shutdown.clone()));
        tokio::spawn(refresher(Arc::downgrade(&node), shutdown));
        Ok(node)
    }

    fn broker(&self) -> &Arc<Broker> {
        self.broker.get().expect("broker set at start")
    }

    pub(crate) fn health(&self) -> &Arc<Health> {
        self.broker().health()
    }

    pub(crate) fn factory(self: &Arc<Self>) -> AdapterFactory {
        let node = self.clone();
        Arc::new(move |nsp: &str| {
            Arc::new(StreamsAdapter {
                node: node.clone(),
                nsp: nsp.to_owned(),
                public: public_channel(&node.config.key_prefix, nsp),
                index: MemoryAdapter::default(),
                served: OnceLock::new(),
            }) as Arc<dyn Adapter>
        })
    }

    /// The routes, without the namespaces closed since the lock was last taken.
    fn lock_routes(&self) -> MutexGuard<'_, Routes> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        self.without_closed(routes)
    }

    fn without_closed<'a>(&self, mut routes: MutexGuard<'a, Routes>) -> MutexGuard<'a, Routes> {
        let closed = std::mem::take(&mut *self.closed.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, ns) in &closed {
            routes.forget(name, ns);
        }
        routes
    }

    /// Forgets a closed namespace: now if the routes are free, else when they are
    /// next taken (see [`StreamsNode::closed`]).
    fn forget(&self, name: String, ns: Weak<Namespace>) {
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name, ns));
        match self.routes.try_lock() {
            Ok(routes) => drop(self.without_closed(routes)),
            Err(TryLockError::Poisoned(poisoned)) => {
                drop(self.without_closed(poisoned.into_inner()));
            }
            Err(TryLockError::WouldBlock) => {}
        }
    }

    fn namespace(&self, nsp: &str) -> Option<Arc<Namespace>> {
        self.lock_routes()
            .namespaces
            .get(nsp)
            .and_then(Weak::upgrade)
    }

    /// Queues `write`; false when the queue is full (in count or bytes) and the write
    /// was dropped.
    fn write(&self, write: Write) -> bool {
        let queued = self.writes.push(write);
        if !queued {
            self.write_dropped();
        }
        queued
    }

    fn write_dropped(&self) {
        write_dropped(self.health());
    }

    fn append(&self, message: &ClusterMessage) {
        self.write(Write::Entry(message.to_stream_fields(), None));
    }

    /// Appends `message`; the receiver resolves once Redis has the entry (it never
    /// does if the node stops first). `None`: the write was dropped.
    fn append_confirmed(&self, message: &ClusterMessage) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        self.write(Write::Entry(message.to_stream_fields(), Some(tx)))
            .then_some(rx)
    }

    fn message(&self, nsp: &str, body: MessageBody) -> ClusterMessage {
        self.exchange.message(nsp, body)
    }

    /// One stream entry, in stream order, under the routes lock.
    fn on_entry(&self, routes: &Routes, id: &str, message: ClusterMessage) {
        let Some(ns) = routes.namespaces.get(&message.nsp).and_then(Weak::upgrade) else {
            return;
        };
        let own = message.uid == self.uid();
        match message.body {
            MessageBody::Broadcast {
                packet,
                opts,
                request_id: None,
            } if relayable(&packet) => {
                let opts = engine_opts(&opts);
                if own && !delivered_on_read(&ns, &opts) {
                    // Delivered when emitted; only the position moves.
                    ns.deliver_logged(id, None, &opts);
                } else {
                    ns.deliver_logged(id, Some(packet), &opts);
                }
            }
            MessageBody::SocketsJoin { opts, rooms: names } if !own => {
                ns.add_sockets_local(&engine_opts(&opts), &rooms(&names));
            }
            MessageBody::SocketsLeave { opts, rooms: names } if !own => {
                ns.del_sockets_local(&engine_opts(&opts), &rooms(&names));
            }
            MessageBody::DisconnectSockets { opts, close } if !own => {
                ns.disconnect_sockets_local(&engine_opts(&opts), close);
            }
            _ => {}
        }
    }

    /// Ephemeral requests and answers over pub/sub.
    fn on_pubsub(&self, _channel: &str, payload: &[u8]) {
        let message = match ClusterMessage::decode_pubsub(payload) {
            Ok(m) => m,
            Err(err) => {
                tracing::debug!(error = %err, "ignoring malformed cluster message");
                return;
            }
        };
        if message.uid == self.uid() {
            return;
        }
        let Some(ns) = self.namespace(&message.nsp) else {
            return;
        };
        // What is not a request or an answer (the stream carries the rest) is ignored.
        let _ = self.exchange.on_message(self.broker(), &ns, message);
    }
}

/// Counts a write the full queue dropped.
fn write_dropped(health: &Health) {
    health.publish_errors.fetch_add(1, Ordering::Relaxed);
    health.publish_dropped.fetch_add(1, Ordering::Relaxed);
    tracing::error!("stream write queue full (redis down too long); write dropped");
}

/// Whether a node delivers its own broadcast when it reads it back from the stream
/// (recoverable events, so they get stream offsets in stream order) rather than when
/// it is emitted. Both sides of the decision use this one rule.
fn delivered_on_read(ns: &Namespace, opts: &BroadcastOptions) -> bool {
    ns.recovery_enabled() && !opts.flags.volatile
}

/// Reads the stream in order from where the node joined, forever; resumes from the
/// last id read after any error.
async fn reader(node: Weak<StreamsNode>, target: Arc<Target>, shutdown: Shutdown) {
    let Some(stream) = node.upgrade().map(|n| n.config.stream_name.clone()) else {
        return;
    };
    // Its own connection: a blocking XREAD must not hold up the node's commands.
    let Ok(mut conn) = OwnConn::new(&target, BLOCK * 3) else {
        tracing::error!("the stream reader's connection could not be made");
        return;
    };
    // Where the stream ends now: the node serves what comes after.
    let mut backoff = Duration::from_millis(100);
    let start;
    loop {
        match start_position(&mut conn, &stream).await {
            Ok(found) => {
                let position = found.position.clone();
                start = found;
                let Some(node) = node.upgrade() else { return };
                let mut routes = node.lock_routes();
                routes.position = position.clone();
                for ns in routes.namespaces.values().filter_map(Weak::upgrade) {
                    ns.recovery_start_at(&position);
                }
                drop(routes);
                node.moved_to(&position);
                node.started.send_replace(true);
                break;
            }
            Err(err) => {
                tracing::warn!(error = %err, "redis unreachable; stream reader waiting");
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = tokio::time::sleep(jitter(backoff)) => {}
                    () = conn.moved() => {}
                }
                backoff = (backoff * 2).min(MAX_READ_BACKOFF);
            }
        }
    }
    let signer = node
        .upgrade()
        .and_then(|n| n.config.secret.as_ref().map(|s| Arc::new(Signer::new(s))));
    let mut reappended = Reappended::new(signer);
    let block_ms = u64::try_from(BLOCK.as_millis()).unwrap_or(2000);
    backoff = Duration::from_millis(100);
    let max_len = node.upgrade().map_or(1, |n| n.config.stream_max_len);
    let mut watch = GapWatch::new(max_len, &start);
    loop {
        let Some(position) = node.upgrade().map(|n| n.lock_routes().position.clone()) else {
            return;
        };
        // The reply is walked where it lies ([`reply`]): redis-rs's `StreamReadReply`
        // cloned the whole reply once and built a map of owned strings per entry.
        let mut read = redis::cmd("XREAD");
        read.arg("BLOCK")
            .arg(block_ms)
            .arg("COUNT")
            .arg(READ_COUNT)
            .arg("STREAMS")
            .arg(&stream)
            .arg(&position);
        let read = tokio::select! {
            () = shutdown.wait() => return,
            r = read.query_async::<redis::Value>(conn.get()) => r,
        };
        let Some(node) = node.upgrade() else { return };
        let read = match read {
            // A check that could not be made fails the read: the batch is read again
            // (and checked) rather than applied past a gap nobody looked for.
            Ok(reply) => match watch.check(&mut conn, &stream, &position, &reply).await {
                Ok(gap) => {
                    if let Some(first) = gap {
                        node.on_gap(&position, &first);
                    } else if watch.caught_up {
                        node.behind.store(false, Ordering::Release);
                    }
                    node.on_read(&reply, &mut reappended)
                }
                Err(err) => Err(err),
            },
            Err(err) => Err(ReadError::from(err)),
        };
        match read {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(err) => {
                watch.suspect = true;
                tracing::warn!(error = %err, retry_in = ?backoff, "stream read failed; will resume from the last id read");
                node.health().trouble();
                drop(node);
                tokio::select! {
                    () = shutdown.wait() => return,
                    () = tokio::time::sleep(jitter(backoff)) => {}
                }
                backoff = (backoff * 2).min(MAX_READ_BACKOFF);
                // Redis may be another host now (a failover), with another clock.
                if let Some(skew) = clock_skew(&mut conn).await {
                    watch.skew_ms = skew;
                }
            }
        }
    }
}

/// Where the node starts reading: the stream's last id now (`0-0` when there is no
/// stream yet), and how many entries had been trimmed from it by then (Redis 7.0 and
/// later), so that only later trims count ([`trimmed_past`]). `XINFO STREAM` gives
/// both at once; refused it (an ACL user without it) or answered anything unexpected,
/// the last entry's id.
async fn start_position(conn: &mut OwnConn, stream: &str) -> Result<Start, ReadError> {
    let skew_ms = clock_skew(conn).await.unwrap_or(0);
    let start = start_at(conn, stream).await?;
    Ok(Start { skew_ms, ..start })
}

/// How far this node's clock is ahead of Redis' (ms; negative: behind), from Redis'
/// `TIME`; `None` when it does not say. Entry ids carry Redis' time: a batch is judged
/// late ([`GAP_CHECK_LAG_MS`]) against Redis' clock, so that a node whose clock runs
/// ahead does not take every batch for a late one (it then stayed not ready after a
/// gap, and checked the stream at every batch). Measured when the reader starts and
/// after each failed read (Redis may be another host then).
async fn clock_skew(conn: &mut OwnConn) -> Option<i64> {
    let time: redis::RedisResult<(String, String)> =
        redis::cmd("TIME").query_async(conn.get()).await;
    let (secs, micros) = time.ok()?;
    let (secs, micros) = (secs.parse::<u64>().ok()?, micros.parse::<u64>().ok()?);
    let redis_ms = secs.saturating_mul(1000).saturating_add(micros / 1000);
    Some(i64::try_from(now_ms()).ok()? - i64::try_from(redis_ms).ok()?)
}

/// [`start_position`] but the clock.
async fn start_at(conn: &mut OwnConn, stream: &str) -> Result<Start, ReadError> {
    let info: redis::RedisResult<redis::Value> = xinfo_stream(stream).query_async(conn.get()).await;
    let info = match info {
        Ok(info) => reply::stream_info(&info)
            .ok()
            .and_then(|i| Some((i.last_generated_id?.to_owned(), i.entries_added, i.length))),
        Err(err) if no_such_key(&err) => {
            return Ok(Start {
                position: "0-0".to_owned(),
                trimmed: Some(0),
                added: 0,
                skew_ms: 0,
            });
        }
        // Refused (an ACL user without it) or anything else: the last entry, below.
        Err(_) => None,
    };
    match info {
        Some((position, added, length)) => Ok(Start {
            position,
            trimmed: added.map(|a| a.saturating_sub(length)),
            added: added.unwrap_or(0),
            skew_ms: 0,
        }),
        None => {
            let last: redis::Value = end_entry(stream, End::Newest)
                .query_async(conn.get())
                .await?;
            let entries = reply::range_entries(&last)?;
            Ok(Start {
                position: entries.first().map_or("0-0", |e| e.id).to_owned(),
                trimmed: None,
                added: 0,
                skew_ms: 0,
            })
        }
    }
}

/// Where the reader starts ([`start_position`]).
#[derive(Debug)]
struct Start {
    /// The stream's last id.
    position: String,
    /// Entries trimmed from it by then (Redis 7.0 and later).
    trimmed: Option<u64>,
    /// Entries ever added to it by then (0 when unknown).
    added: u64,
    /// How far this node's clock is ahead of Redis' ([`clock_skew`]).
    skew_ms: i64,
}

/// What the stream reader keeps between batches to find gaps in its read: entries
/// trimmed from the stream before it read them ([`trimmed_past`]). A check is one
/// `XINFO STREAM`, made only of a batch that gives reason to.
#[derive(Debug)]
struct GapWatch {
    /// Check the next batch with entries: a read failed, a stall was seen, or the
    /// last check found a gap (trimming may have overtaken that batch too).
    suspect: bool,
    /// When the last answer came: a read answers within `BLOCK` (empty if nothing
    /// came), so a longer silence means this node stalled (stopped, frozen, its
    /// network hung).
    last_answer: tokio::time::Instant,
    /// A batch of this many entries means the node is behind by half the stream (or
    /// by a whole read): a stream shorter than a read is overtaken without one.
    full_at: usize,
    /// Off once Redis refused `XINFO` (an ACL user without it); warned once.
    enabled: bool,
    /// The last batch was empty, or small and fresh: the reader is not behind.
    caught_up: bool,
    /// Entries trimmed from the stream before the node started, when Redis says;
    /// 0 again once the stream was begun anew (fewer entries ever added than seen
    /// before: Redis lost its data, or the stream was deleted).
    trimmed_before: Option<u64>,
    /// Entries ever added, as the last check saw it.
    added_seen: u64,
    /// How far this node's clock is ahead of Redis' ([`clock_skew`]).
    skew_ms: i64,
    /// Checks in a row that Redis did not answer while reads worked: past
    /// [`MAX_CHECK_FAILURES`] the checks stop, as when refused.
    failures: u32,
}

/// Checks that may fail in a row, reads working, before the gap checks stop (a
/// proxy or server that does not do `XINFO STREAM` as Redis does): rather than read
/// nothing more.
const MAX_CHECK_FAILURES: u32 = 3;

impl GapWatch {
    fn new(stream_max_len: usize, start: &Start) -> Self {
        GapWatch {
            suspect: false,
            last_answer: tokio::time::Instant::now(),
            full_at: READ_COUNT.min((stream_max_len / 2).max(1)),
            enabled: true,
            caught_up: true,
            trimmed_before: start.trimmed,
            added_seen: start.added,
            failures: 0,
            skew_ms: start.skew_ms,
        }
    }

    /// Whether the batch `reply`, read after `position`, follows entries trimmed
    /// before this node read them: then the id of its first entry. Checked after a
    /// stall, a failed read or a gap, or when the batch is large or its first entry
    /// older than [`GAP_CHECK_LAG_MS`]; an empty batch keeps what was suspected for
    /// the next. An error: the check could not be made now (Redis away).
    async fn check(
        &mut self,
        conn: &mut OwnConn,
        stream: &str,
        position: &str,
        reply: &redis::Value,
    ) -> Result<Option<String>, ReadError> {
        if self.last_answer.elapsed() > BLOCK + STALL_MARGIN {
            self.suspect = true;
        }
        self.last_answer = tokio::time::Instant::now();
        let (first, n) = {
            let entries = reply::read_entries(reply)?;
            let Some(first) = entries.first() else {
                self.caught_up = true;
                return Ok(None);
            };
            (first.id.to_owned(), entries.len())
        };
        // Against Redis' clock, which the ids carry.
        let redis_now = now_ms().saturating_add_signed(-self.skew_ms);
        let lagging = stream_id(&first)
            .is_some_and(|(ms, _)| redis_now.saturating_sub(ms) > GAP_CHECK_LAG_MS);
        self.caught_up = !lagging && n < self.full_at;
        if !self.enabled || !(self.suspect || lagging || n >= self.full_at) {
            self.suspect = false;
            return Ok(None);
        }
        let answer: redis::RedisResult<redis::Value> =
            xinfo_stream(stream).query_async(conn.get()).await;
        let refused_now = answer.as_ref().is_err_and(refused);
        let checked = answer.map_err(ReadError::from).and_then(|answer| {
            let info = reply::stream_info(&answer)?;
            if let Some(added) = info.entries_added {
                if added < self.added_seen {
                    // Fewer ever added than before: a stream begun anew.
                    self.trimmed_before = Some(0);
                }
                self.added_seen = added;
            }
            Ok(trimmed_past(position, &info, self.trimmed_before))
        });
        let gap = match checked {
            Ok(gap) => gap,
            Err(err) => {
                // Only answers that are not what Redis would give count toward giving
                // up: Redis away or slow (its connection dropped, a timeout) is tried
                // again at the next check, however often, or a Redis crash-looping
                // between reads turned the gap checks off until a restart.
                let away = matches!(&err, ReadError::Redis(e)
                    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal());
                if !away {
                    self.failures += 1;
                }
                if refused_now || self.failures >= MAX_CHECK_FAILURES {
                    tracing::warn!(error = %err, "no XINFO STREAM from Redis: this node cannot notice entries trimmed before it read them (an ACL user needs +xinfo)");
                    self.enabled = false;
                    self.suspect = false;
                    return Ok(None);
                }
                return Err(err);
            }
        };
        self.failures = 0;
        self.suspect = gap;
        Ok(gap.then_some(first))
    }
}

/// Whether Redis answered that the stream does not exist (`XINFO STREAM` of a key
/// never written, or deleted).
fn no_such_key(err: &redis::RedisError) -> bool {
    err.to_string().to_ascii_lowercase().contains("no such key")
}

/// Whether Redis refused a command for good (no permission, unknown to it), as
/// opposed to not answering now.
fn refused(err: &redis::RedisError) -> bool {
    let text = err.to_string().to_ascii_lowercase();
    text.contains("noperm") || text.contains("unknown command")
}

/// A batch whose first entry is this much older than the node's clock (or a full
/// batch, or the first after a failed read or a stall) may follow a gap: the node was
/// behind, and the stream is trimmed from its oldest end ([`GapWatch::check`]).
const GAP_CHECK_LAG_MS: u64 = 2_000;

/// Silence of the stream reader past `BLOCK` that counts as a stall.
const STALL_MARGIN: Duration = Duration::from_secs(2);

/// Whether the stream `info` describes was trimmed past `position`, so that entries
/// after it may have gone before this node read them. The stream is trimmed from its
/// oldest end: when its oldest entry is past the id right after `position`, entries
/// may have been between. Perhaps none were (ids are not dense), or the trim took only
/// entries of the batch just read: the node had then all but fallen behind the trim,
/// and it is taken as a gap all the same, the safe side. Before anything was read
/// (`0-0`: the stream did not exist when the node started), any entry trimmed is one
/// it never read (Redis 7.0 and later say how many were added; before, nothing is
/// found).
fn trimmed_past(position: &str, info: &reply::StreamInfo<'_>, trimmed_before: Option<u64>) -> bool {
    // Redis 7.0 and later count every entry added: when no more have gone than had
    // when the node started, nothing was trimmed since (nor in a stream begun again,
    // as after a Redis restarted without its data, which starts past any position and
    // has lost nothing of its own).
    let trimmed = info
        .entries_added
        .is_none_or(|added| added.saturating_sub(info.length) > trimmed_before.unwrap_or(0));
    match (stream_id(position), info.first_id.and_then(stream_id)) {
        (Some((0, 0)), _) => info.entries_added.is_some() && trimmed,
        (Some(read), Some(oldest)) => trimmed && oldest > id_after(read),
        _ => false,
    }
}

/// An end of the stream.
#[derive(Debug, Clone, Copy)]
enum End {
    Oldest,
    Newest,
}

/// The command that reads the one entry at `end` of `stream` (none if it is empty).
fn end_entry(stream: &str, end: End) -> redis::Cmd {
    let (cmd, from, to) = match end {
        End::Oldest => ("XRANGE", "-", "+"),
        End::Newest => ("XREVRANGE", "+", "-"),
    };
    let mut c = redis::cmd(cmd);
    c.arg(stream).arg(from).arg(to).arg("COUNT").arg(1);
    c
}

/// The command that asks what the stream holds (`XINFO STREAM`, read with
/// [`reply::stream_info`]).
fn xinfo_stream(stream: &str) -> redis::Cmd {
    let mut c = redis::cmd("XINFO");
    c.arg("STREAM").arg(stream);
    c
}

/// The least stream id above `(ms, seq)`.
fn id_after((ms, seq): (u64, u64)) -> (u64, u64) {
    match seq.checked_add(1) {
        Some(seq) => (ms, seq),
        None => (ms.saturating_add(1), 0),
    }
}

/// The greatest stream id below `id` (`None` for `0-0` or what is no id): a position
/// after which `id` is the next entry.
fn id_before(id: &str) -> Option<String> {
    match stream_id(id)? {
        (0, 0) => None,
        (ms, 0) => Some(format!("{}-{}", ms - 1, u64::MAX)),
        (ms, seq) => Some(format!("{ms}-{}", seq - 1)),
    }
}

/// A stream id `<ms>-<seq>` as numbers, for comparisons.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// Why a read of the stream failed; the reader reads again from the last id read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// Redis did not answer, or answered with an error.
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// Redis answered with something not shaped like the command's reply.
    #[error(transparent)]
    Reply(#[from] ReplyError),
}

impl StreamsNode {
    /// The entries of one XREAD `reply`, in stream order, under the routes lock: each
    /// delivered unless it is a run appended again after a failover ([`Reappended`])
    /// or does not decode, and each moving the position and the lag. A misshapen reply
    /// delivers nothing.
    fn on_read(&self, reply: &redis::Value, reappended: &mut Reappended) -> Result<(), ReadError> {
        let entries = reply::read_entries(reply)?;
        let now = now_ms();
        let mut routes = self.lock_routes();
        for entry in entries {
            if reappended.is_reappended(&entry) {
                tracing::debug!(id = %entry.id, "skipping an entry appended again after a failover");
            } else if self.changes_nothing(&routes, &entry) {
                // Not decoded: [`StreamsNode::on_entry`] would drop it.
            } else if self.oversized(&entry) {
                // Not decoded: counted.
            } else {
                match decode_entry(&entry) {
                    Ok(message) => contained(self.health(), || {
                        self.on_entry(&routes, entry.id, message);
                    }),
                    Err(err) => {
                        tracing::debug!(id = %entry.id, error = %err, "skipping entry");
                    }
                }
            }
            routes.position.clear();
            routes.position.push_str(entry.id);
            if let Some((ms, _)) = stream_id(entry.id) {
                self.health()
                    .stream_lag_ms
                    .store(now.saturating_sub(ms), Ordering::Relaxed);
            }
        }
        let position = routes.position.clone();
        drop(routes);
        self.moved_to(&position);
        Ok(())
    }

    /// Whether the stream still holds every entry after `after`, an offset that names
    /// no entry (a position marked just before the first entry after a gap): its
    /// oldest entry is no later than the id right after `after`, so nothing can have
    /// been between them. Asked after the entries were read: the stream is trimmed
    /// from its oldest end, so it held them all then too.
    /// Whether no entry was ever taken out of the stream (trimmed or deleted): Redis
    /// 7.0 and later count every entry added. Before 2026-12-07 a replay from the
    /// stream's beginning (`0-0`) was not checked at all, and one whose oldest events
    /// had been trimmed was replayed the rest, a silent gap. Not knowing (an older
    /// Redis, no stream) is taken as trimmed: the client is not recovered.
    async fn never_trimmed(&self, conn: &mut Conn) -> Result<bool, AdapterError> {
        let reply: redis::Value = match xinfo_stream(&self.config.stream_name)
            .query_async(conn)
            .await
        {
            Ok(reply) => reply,
            // No stream, or Redis will not say (an ACL user without XINFO): not known.
            Err(err) if refused(&err) || no_such_key(&err) => {
                return Ok(false);
            }
            // Away or slow: a failure to read, which the caller may try again.
            Err(err) => return Err(AdapterError::Unavailable(err.to_string())),
        };
        let info =
            reply::stream_info(&reply).map_err(|e| AdapterError::Unavailable(e.to_string()))?;
        Ok(info.entries_added == Some(info.length))
    }

    async fn holds_all_after(&self, conn: &mut Conn, after: &str) -> Result<bool, AdapterError> {
        let unavailable = |e: redis::RedisError| AdapterError::Unavailable(e.to_string());
        let oldest: redis::Value = end_entry(&self.config.stream_name, End::Oldest)
            .query_async(conn)
            .await
            .map_err(unavailable)?;
        let entries =
            reply::range_entries(&oldest).map_err(|e| AdapterError::Unavailable(e.to_string()))?;
        let oldest = entries.first().and_then(|e| stream_id(e.id));
        let next = stream_id(after).map(id_after);
        Ok(oldest
            .zip(next)
            .is_some_and(|(oldest, next)| oldest <= next))
    }

    /// Tells those waiting for the reader ([`SessionStore::read_through`]) that it has
    /// read through `position`.
    fn moved_to(&self, position: &str) {
        if let Some(id) = stream_id(position) {
            self.read_to.send_if_modified(|at| {
                let moved = id > *at;
                if moved {
                    *at = id;
                }
                moved
            });
        }
    }

    /// This node's read of the stream skipped entries after `position`, trimmed before
    /// it read them; the next it reads is `first`. Its sockets of namespaces with
    /// recovery missed them without a word: each namespace drops what it buffered
    /// before the gap and closes its sockets here, whose clients come back through
    /// recovery (read from the stream, which tells whether it still holds what they
    /// missed). Without recovery nothing is promised (as with Redis pub/sub): it is
    /// logged and counted.
    fn on_gap(&self, position: &str, first: &str) {
        self.health().stream_gaps.fetch_add(1, Ordering::Relaxed);
        self.behind.store(true, Ordering::Release);
        let namespaces: Vec<Arc<Namespace>> = {
            let mut routes = self.lock_routes();
            // A namespace made from now on starts its buffer past the gap, not at the
            // position before it (the batch being read moves it on from there).
            if let Some(before) = id_before(first) {
                routes.position = before;
            }
            routes
                .namespaces
                .values()
                .filter_map(Weak::upgrade)
                .collect()
        };
        let closed: usize = namespaces.iter().map(|ns| ns.recovery_log_gap(first)).sum();
        tracing::warn!(
            after = %position,
            next = %first,
            closed,
            "entries of the stream were trimmed before this node read them; its sockets of namespaces with recovery were closed to recover"
        );
    }

    /// Whether `entry` is over [`MAX_PEER_MESSAGE_BYTES`](crate::broker::MAX_PEER_MESSAGE_BYTES),
    /// too long to decode (anyone who can write to Redis can append one): counted in
    /// `oversized`, for the live reader and a replay's read of the log alike.
    fn oversized(&self, entry: &Entry<'_>) -> bool {
        let bytes: usize = entry.fields().map(|(k, v)| k.len() + v.len()).sum();
        if bytes <= crate::broker::MAX_PEER_MESSAGE_BYTES {
            return false;
        }
        self.health().oversized.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(id = %entry.id, bytes, "entry over MAX_PEER_MESSAGE_BYTES skipped undecoded");
        true
    }

    /// Whether `entry` is one of this node's own in a namespace without recovery (or
    /// one it does not serve), which [`StreamsNode::on_entry`] would drop after
    /// decoding: a node applies its own broadcasts and room operations when it makes
    /// them, and reading one back only matters to recovery (a broadcast delivered on
    /// read, or the position of the recovery log). Every node reads its own entries
    /// back, so this spares it a decode per entry it wrote.
    fn changes_nothing(&self, routes: &Routes, entry: &Entry<'_>) -> bool {
        if entry.field(b"uid") != Some(self.uid().as_bytes()) {
            return false;
        }
        // As the decoder reads the namespace (see `from_stream_fields`).
        let Some(nsp) = entry.field(b"nsp").map(String::from_utf8_lossy) else {
            return false;
        };
        routes
            .namespaces
            .get(nsp.as_ref())
            .and_then(Weak::upgrade)
            .is_none_or(|ns| !ns.recovery_enabled())
    }
}

/// Most writers [`Reappended`] remembers (nodes, each start a new one); beyond, one is
/// forgotten (a node long gone, most likely).
const MAX_WRITERS: usize = 4096;

/// The field of a stream entry holding its [`Mark`]'s signature (Node ignores it).
const MARK_SIGNATURE: &str = "wsig";

/// The label of a mark's signature (see [`crate::sign`]).
const MARK_LABEL: &[u8] = b"switchboard stream mark\0";

/// Which writer appended an entry, in which run and where in it (`uid`, `wrun`,
/// `wix`), signed with the cluster secret (`wsig`). A reader skips an entry whose
/// mark it has passed ([`Reappended`]), so an unsigned mark would let anyone who can
/// append to the stream silence a node: one entry naming its uid with a run of
/// 2^64 − 1 and every reader would skip that node's entries until it restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark<'a> {
    writer: &'a str,
    run: u64,
    index: u64,
}

impl<'a> Mark<'a> {
    fn new(writer: &'a str, run: u64, index: u64) -> Self {
        Mark { writer, run, index }
    }

    /// Runs `f` on what the signature covers: the three fields, unambiguous (the uid's
    /// length first, the numbers at fixed width), on the stack.
    fn with_body<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> R {
        let len = (self.writer.len() as u64).to_be_bytes();
        let (run, index) = (self.run.to_be_bytes(), self.index.to_be_bytes());
        f(&[&len, self.writer.as_bytes(), &run, &index])
    }

    fn sign(&self, signer: &Signer) -> String {
        self.with_body(|body| {
            String::from_utf8_lossy(&signer.short_tag(MARK_LABEL, body)).into_owned()
        })
    }

    fn signed_by(&self, signer: &Signer, tag: &[u8]) -> bool {
        self.with_body(|body| signer.checks_short_tag(MARK_LABEL, body, tag))
    }
}

/// What the reader has read from each writer (a node's uid): the last `(run, index)`
/// ([`APPEND_ONCE`]). A writer appends its runs in order and retries a run until it
/// succeeds, so an entry at or before the last one read from its writer is a run
/// appended again on a new master after a failover: read, delivered and recorded
/// before, it is skipped.
///
/// With the cluster secret, only marks signed with it count; an entry whose mark is
/// unsigned or signed otherwise is read as unmarked (delivered), as Node's are.
#[derive(Debug, Default)]
struct Reappended {
    last: HashMap<String, (u64, u64)>,
    signer: Option<Arc<Signer>>,
}

impl Reappended {
    /// Whether the entry `(run, index)` of `writer` was read before; records it if not.
    fn seen_before(&mut self, writer: &str, run: u64, index: u64) -> bool {
        if let Some(last) = self.last.get_mut(writer) {
            if (run, index) <= *last {
                return true;
            }
            *last = (run, index);
            return false;
        }
        if self.last.len() >= MAX_WRITERS
            && let Some(gone) = self.last.keys().next().cloned()
        {
            self.last.remove(&gone);
        }
        self.last.insert(writer.to_owned(), (run, index));
        false
    }

    fn new(signer: Option<Arc<Signer>>) -> Self {
        Reappended {
            last: HashMap::new(),
            signer,
        }
    }

    /// Whether `entry` is a run appended again (see above). Entries without the marks
    /// (Node's), or whose marks the cluster secret did not sign, are never. The marks
    /// are read in place: a string is made only for a writer not seen before.
    fn is_reappended(&mut self, entry: &Entry<'_>) -> bool {
        let text = |name: &[u8]| entry.field(name).and_then(|v| std::str::from_utf8(v).ok());
        let number = |name: &[u8]| text(name).and_then(|v| v.parse::<u64>().ok());
        let (Some(writer), Some(run), Some(index)) =
            (text(b"uid"), number(b"wrun"), number(b"wix"))
        else {
            return false;
        };
        if let Some(signer) = &self.signer {
            let tag = entry.field(MARK_SIGNATURE.as_bytes()).unwrap_or_default();
            if !Mark::new(writer, run, index).signed_by(signer, tag) {
                return false;
            }
        }
        self.seen_before(writer, run, index)
    }
}

/// A stream entry as a cluster message. Field values that are not strings (never
/// written by any adapter) are left out, so the entry reads as missing them.
fn decode_entry(entry: &Entry<'_>) -> Result<ClusterMessage, CodecError> {
    ClusterMessage::from_stream_fields(entry.fields())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Appends a run of stream entries at most once, however often it is sent: the node's
/// marker key holds the number of the last run Redis applied, and a run numbered at or
/// below it is skipped. A batch is retried whole after an error, and an error may come
/// after Redis applied it (the connection dropped before the reply, Redis was killed
/// right after writing its append-only file); without the marker, the retry appended
/// the same events again under new ids and every node delivered them twice.
///
/// Each entry also gets `wrun` (the run number) and `wix` (its place in the run), which
/// Node's adapters ignore: after a Sentinel failover, a run the old master had appended
/// (and this node's reader had already delivered) but not yet replicated is appended
/// again on the new master, and readers skip what they read before ([`Reappended`]).
///
/// KEYS: stream, marker. ARGV: run number, marker TTL (ms), `MAXLEN ~` bound, then per
/// entry its field count followed by the fields and values.
const APPEND_ONCE: &str = r"
local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
local i = 4
local k = 0
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local args = {'XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*'}
  for j = 1, n do args[#args + 1] = ARGV[i + j] end
  args[#args + 1] = 'wrun'
  args[#args + 1] = ARGV[1]
  args[#args + 1] = 'wix'
  args[#args + 1] = tostring(k)
  redis.call(unpack(args))
  k = k + 1
  i = i + n + 1
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
";

/// The longest stored session a node reads: base64 MessagePack of the largest session
/// a node keeps (`recovery`'s 64 KiB a session by default, counted as heap) is a
/// fraction of it, and Node's sessions of ordinary `socket.data` are far below.
pub(crate) const MAX_STORED_SESSION_BYTES: usize = 1 << 20;

/// Takes a stored session at most once, idempotently, and fences the sockets that
/// held it before: `KEYS[1]` is the session, `KEYS[2]` the claim of one take,
/// `KEYS[3]` the session's epoch (`ARGV[1]`: how long the claim is kept, ms). The
/// first call moves the session into the claim, with the next epoch in front of it;
/// a retry of the same take finds both there. Returns `[session, epoch, ms left]` or
/// nil: how long the session still had to live when it was taken (`-1` for a retry,
/// which no longer knows; a session is kept again for that long if it is not resumed
/// after all).
///
/// The epoch: each take of a `pid` gets a higher one, and [`SAVE_SESSION`] and
/// [`FORGET_SESSION`] ignore a socket whose epoch is lower than the latest. So a
/// socket left behind on a node that froze or lost its network (its client has since
/// resumed elsewhere) cannot, when it finally closes or refreshes, replace the
/// session with its old rooms and data, or delete it. The epoch key lives as long as
/// the session the current socket keeps saving (each save extends both).
///
/// Claim and epoch keys are `{session key}:claim:<token>` and `{session key}:epoch`
/// (or the key itself with the suffix when it has a hash tag of its own: `beside`), in
/// the session key's hash slot on a Redis Cluster.
///
/// A stored value longer than `ARGV[2]` bytes ([`MAX_STORED_SESSION_BYTES`]) is
/// deleted unread: no node writes one, and anyone who can write to Redis could
/// otherwise make a resuming client's node read half a gigabyte.
const CLAIM_SESSION: &str = r"
local claimed = redis.call('GET', KEYS[2])
if claimed then
  local sep = string.find(claimed, ':', 1, true)
  return {string.sub(claimed, sep + 1), string.sub(claimed, 1, sep - 1), '-1'}
end
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return false
end
local stored = redis.call('GET', KEYS[1])
if not stored then return false end
local left = redis.call('PTTL', KEYS[1])
redis.call('DEL', KEYS[1])
local epoch = redis.call('INCR', KEYS[3])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[3], ARGV[1])
end
redis.call('SET', KEYS[2], epoch .. ':' .. stored, 'PX', ARGV[1])
return {stored, tostring(epoch), tostring(left)}
";

/// Saves a session unless it has been taken since by a later epoch (see
/// [`CLAIM_SESSION`]). KEYS: session, epoch. ARGV: value, TTL (ms), the saving
/// socket's epoch, `1` when the socket has left (the session kept for its client to
/// resume). A session never taken has no epoch key and is saved as Node saves it.
///
/// When the socket has left, its later saves are fenced off as after a deletion
/// ([`FORGET_SESSION`]): the epoch becomes one higher, for as long as the session or
/// the epoch key lives, so a save of the live socket read just before it left (the
/// 20 s refresh), written after this one, is ignored instead of replacing the kept
/// session with older rooms and a longer life. A take then gets the epoch after it.
const SAVE_SESSION: &str = r"
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[3]) < latest then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[4] == '1' then
  local keep = tonumber(ARGV[2])
  local left = redis.call('PTTL', KEYS[2])
  if left > keep then keep = left end
  redis.call('SET', KEYS[2], tonumber(ARGV[3]) + 1, 'PX', keep)
elseif latest > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
";

/// Deletes a session unless it has been taken since by a later epoch. When its socket
/// has left (`ARGV[2]` > 0), also fences off the socket's later saves: the epoch
/// becomes one higher, for at least [`FORGET_FENCE`] and no shorter than the epoch key
/// already lived (it fences older sockets too), so a save of the same socket sent
/// after the deletion (the 20 s refresh, which read the socket just before it closed)
/// is ignored rather than bring back a session its client was deliberately ended
/// from. KEYS: session, epoch. ARGV: the socket's epoch, the fence's lifetime in ms
/// (0: no fence, the socket is still connected).
const FORGET_SESSION: &str = r"
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[1]) < latest then return 0 end
redis.call('DEL', KEYS[1])
local fence = tonumber(ARGV[2])
if fence > 0 then
  local left = redis.call('PTTL', KEYS[2])
  if left > fence then fence = left end
  redis.call('SET', KEYS[2], tonumber(ARGV[1]) + 1, 'PX', fence)
end
return 1
";

/// Reads a stored session without taking it (no claim, no epoch): nil when there is
/// none, or when it is longer than `ARGV[1]` bytes ([`MAX_STORED_SESSION_BYTES`]; not
/// read, left for a take to delete). KEYS: session.
const PEEK_SESSION: &str = r"
if redis.call('STRLEN', KEYS[1]) > tonumber(ARGV[1]) then return false end
return redis.call('GET', KEYS[1])
";

/// A stored session's value as the engine takes it; `None` when it does not decode.
fn durable_session(
    stored: &str,
    epoch: u64,
    expires_in: Option<Duration>,
) -> Option<DurableSession> {
    let stored = PersistedSession::decode(stored).ok()?;
    let offset = stored
        .extra(SESSION_OFFSET)
        .and_then(MsgValue::as_str)
        .map(str::to_owned);
    let memberships = stored.memberships();
    Some(DurableSession {
        sid: stored.sid,
        pid: stored.pid,
        rooms: stored.rooms,
        memberships,
        data: to_json(stored.data),
        offset,
        epoch,
        expires_in,
    })
}

/// How long a deleted session's fence lasts: a save of the same socket written after
/// the deletion follows it in the same node's write queue, moments later (or, for a
/// deletion written at once, is the save that waited in that queue when it was sent).
/// A save the writer already holds in a batch it keeps sending again (Redis away, or
/// too few replicas) could outlast it: the writer takes such saves out of the batch
/// once the deletion is made ([`queue::Taker::strip`]).
const FORGET_FENCE: Duration = Duration::from_secs(60);

/// `ARGV[2]` of [`FORGET_SESSION`]: the fence's lifetime in ms, 0 for none.
fn fence_ms(fence: bool) -> u64 {
    match fence {
        true => u64::try_from(FORGET_FENCE.as_millis()).unwrap_or(u64::MAX),
        false => 0,
    }
}

/// The [`FORGET_SESSION`] call deleting the session at `key` for the socket of
/// `epoch`, fencing off its later saves when `fence` (its socket left).
fn forget_session(key: &str, epoch: u64, fence: bool) -> redis::Cmd {
    forget_session_by(("EVAL", FORGET_SESSION), key, epoch, fence)
}

/// [`forget_session`] called as `call` names the script: `("EVAL", script)`, or
/// `("EVALSHA", sha)` once the server has it ([`deleter`]).
fn forget_session_by(call: (&str, &str), key: &str, epoch: u64, fence: bool) -> redis::Cmd {
    let mut cmd = redis::cmd(call.0);
    cmd.arg(call.1)
        .arg(2)
        .arg(key)
        .arg(epoch_key(key))
        .arg(epoch)
        .arg(fence_ms(fence));
    cmd
}

/// The key of the epoch of the session stored at `key`.
fn epoch_key(key: &str) -> String {
    beside(key, ":epoch")
}

/// How long a claimed session stays readable by a retry of the take that claimed it:
/// far longer than a take waits for Redis (5 s in the engine).
const CLAIM_TTL: Duration = Duration::from_secs(30);

/// A session claimed by a take: its stored value, the epoch of this take, and how
/// much longer it would have lived (unknown to a retry, and for a key without expiry).
struct Claimed {
    stored: String,
    epoch: u64,
    expires_in: Option<Duration>,
}

/// Claims the session at `key` for the take `token` (see [`CLAIM_SESSION`]).
async fn claim_session(
    conn: &mut Conn,
    key: &str,
    token: &str,
) -> redis::RedisResult<Option<Claimed>> {
    let claimed: Option<(String, String, String)> = redis::cmd("EVAL")
        .arg(CLAIM_SESSION)
        .arg(3)
        .arg(key)
        .arg(beside(key, &format!(":claim:{token}")))
        .arg(epoch_key(key))
        .arg(u64::try_from(CLAIM_TTL.as_millis()).unwrap_or(u64::MAX))
        .arg(MAX_STORED_SESSION_BYTES)
        .query_async(conn)
        .await?;
    Ok(claimed.map(|(stored, epoch, left)| Claimed {
        stored,
        epoch: epoch.parse().unwrap_or(0),
        expires_in: left.parse::<u64>().ok().map(Duration::from_millis),
    }))
}

/// How long a node's marker outlives its last write: far longer than any retry (the
/// backoff tops out at [`MAX_WRITE_BACKOFF`]), short enough that markers of dead nodes
/// go away.
const MARKER_TTL: Duration = Duration::from_secs(24 * 3600);

/// Where one node's writer appends, and the marker that makes its appends idempotent.
struct WriteTarget {
    stream: String,
    max_len: usize,
    /// `{<stream>}-writer:<uid>` (`beside` the stream): in the stream's slot, so a
    /// script may touch both on a Redis Cluster too.
    marker: String,
    /// The number of the next run of entries; runs are numbered in write order.
    next_run: u64,
    /// Replicas that must hold a batch of entries before it counts as written
    /// (`WAIT`), so that a failover cannot lose an acknowledged event.
    replicas_to_ack: usize,
    /// The cluster secret's signer, for each entry's [`Mark`] signature (none without
    /// a secret).
    signer: Option<Arc<Signer>>,
}

/// How long a batch waits for its replicas (`WAIT`) before it is sent again.
const REPLICA_WAIT: Duration = Duration::from_secs(1);

/// How long the writer waits for Redis to answer a batch (a `WAIT` included).
const WRITER_TIMEOUT: Duration = Duration::from_secs(5);

impl WriteTarget {
    fn new(config: &ClusterConfig, uid: &str) -> Self {
        WriteTarget {
            stream: config.stream_name.clone(),
            max_len: config.stream_max_len,
            marker: beside(&config.stream_name, &format!("-writer:{uid}")),
            next_run: 0,
            replicas_to_ack: config.replicas_to_ack,
            signer: config.secret.as_ref().map(|s| Arc::new(Signer::new(s))),
        }
    }

    /// The commands of `batch`: each run of consecutive entries as one [`APPEND_ONCE`]
    /// call with a number of its own, session writes (idempotent) as they are. The
    /// numbers are assigned once per batch, so a retry of the same batch reuses them.
    /// On a Redis Cluster, one pipeline per slot: the stream's (its marker shares the
    /// slot), and each session's (its epoch and claims share the session key's).
    fn pipeline(&self, batch: &[Write], first_run: u64, cluster: bool) -> (SlotPipes, u64) {
        let mut pipes = SlotPipes::new(cluster);
        let mut run = first_run;
        let mut i = 0;
        while i < batch.len() {
            match &batch[i] {
                Write::Entry(..) => {
                    let cmd = pipes
                        .pipe(self.stream.as_bytes())
                        .cmd("EVAL")
                        .arg(APPEND_ONCE)
                        .arg(2)
                        .arg(&self.stream)
                        .arg(&self.marker)
                        .arg(run)
                        .arg(u64::try_from(MARKER_TTL.as_millis()).unwrap_or(u64::MAX))
                        .arg(self.max_len);
                    let mut index = 0u64;
                    while let Some(Write::Entry(fields, _)) = batch.get(i) {
                        // Over the entry's own `uid`, which readers check it with.
                        let uid = fields.iter().find(|(k, _)| *k == "uid").map(|(_, v)| v);
                        let signed = self
                            .signer
                            .as_ref()
                            .zip(uid)
                            .map(|(signer, uid)| Mark::new(uid, run, index).sign(signer));
                        cmd.arg(fields.len() * 2 + if signed.is_some() { 2 } else { 0 });
                        for (k, v) in fields {
                            cmd.arg(*k).arg(v);
                        }
                        if let Some(tag) = signed {
                            cmd.arg(MARK_SIGNATURE).arg(tag);
                        }
                        index += 1;
                        i += 1;
                    }
                    cmd.ignore();
                    run += 1;
                }
                Write::SaveSession {
                    key,
                    value,
                    ttl,
                    epoch,
                    fence,
                } => {
                    pipes
                        .pipe(key.as_bytes())
                        .cmd("EVAL")
                        .arg(SAVE_SESSION)
                        .arg(2)
                        .arg(key)
                        .arg(epoch_key(key))
                        .arg(value)
                        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                        .arg(*epoch)
                        .arg(if *fence { "1" } else { "0" })
                        .ignore();
                    i += 1;
                }
                // Filled or dropped before a batch is sent; taken out of it.
                Write::SaveWaiting { .. } | Write::Withdrawn { .. } => i += 1,
                Write::Forget { key, epoch, fence } => {
                    pipes
                        .pipe(key.as_bytes())
                        .add_command(forget_session(key, *epoch, *fence))
                        .ignore();
                    i += 1;
                }
            }
        }
        (pipes, run)
    }

    /// Sends `batch` once (no retry); on success the run numbers it used are spent.
    /// Sending the same batch again after an error applies none of its entries twice.
    async fn send(&mut self, conn: &Conn, batch: &[Write]) -> redis::RedisResult<()> {
        let cluster = matches!(conn, Conn::Cluster(_));
        let (mut pipes, next) = self.pipeline(batch, self.next_run, cluster);
        let entries = batch.iter().any(|w| matches!(w, Write::Entry(..)));
        if self.replicas_to_ack > 0 && entries {
            // Sent again if too few replicas have it: the entries are appended at most
            // once on this master (the marker), and once on a promoted replica that
            // lacked them. In the stream's pipeline: on a cluster, its master's replicas.
            pipes
                .pipe(self.stream.as_bytes())
                .cmd("WAIT")
                .arg(self.replicas_to_ack)
                .arg(u64::try_from(REPLICA_WAIT.as_millis()).unwrap_or(1000));
            let replies = pipes.query(conn).await?;
            let acked: usize = match replies.first() {
                Some(reply) => redis::FromRedisValue::from_redis_value_ref(reply)?,
                None => 0,
            };
            if acked < self.replicas_to_ack {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "too few replicas acknowledged the write",
                    format!("{acked} of {}", self.replicas_to_ack),
                )));
            }
        } else {
            pipes.query(conn).await?;
        }
        self.next_run = next;
        Ok(())
    }
}

/// Runs the [`writer`] on a thread of its own, with a runtime of its own (its Redis
/// connection lives there). On the node's runtime it waited in the run queue behind the
/// socket tasks the local delivery had just woken, so the XADD of a broadcast to 3,300
/// local members left the node p50 2.2 ms / p90 6.3 ms after the event (0.1 / 1.4 ms
/// on its own thread; `BENCHMARKS.md`, appendix), and the other nodes' members waited
/// for it. The thread ends with the writer: when the node's write queue closes.
fn spawn_writer(job: impl Future<Output = ()> + Send + 'static) -> Result<(), ClusterError> {
    std::thread::Builder::new()
        .name("stream-writer".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(job),
                Err(err) => tracing::error!(error = %err, "no runtime for the stream writer"),
            }
        })
        .map(drop)
        .map_err(|e| ClusterError::Redis(e.to_string()))
}

/// Sends stream entries and session writes in order, pipelined; on failure keeps the
/// batch and retries with backoff, so nothing queued is lost while Redis restarts, and
/// nothing is appended twice (see [`APPEND_ONCE`]).
async fn writer(
    redis: Arc<Target>,
    mut rx: mpsc::Receiver<Write>,
    taker: Taker,
    mut target: WriteTarget,
    health: Arc<Health>,
) {
    let mut batch = Vec::with_capacity(256);
    let mut backoff = Duration::from_millis(50);
    // A connection of its own: a `WAIT` for replicas (`replicas_to_ack`) must not hold
    // up the node's other commands.
    let Ok(mut conn) = OwnConn::new(&redis, WRITER_TIMEOUT) else {
        tracing::error!("the stream writer's connection could not be made");
        return;
    };
    while rx.recv_many(&mut batch, 256).await > 0 {
        taker.fill(&mut batch);
        if batch.is_empty() {
            continue;
        }
        loop {
            // Each time, the first included: the saves of sessions deleted at once
            // since the batch was filled are not sent (again). A batch Redis keeps
            // failing is sent again for as long as that lasts, past the deletion's
            // fence ([`FORGET_FENCE`]), and its save would bring the session back.
            taker.strip(&mut batch);
            match target.send(conn.get(), &batch).await {
                Ok(()) => {
                    let written = batch
                        .iter()
                        .filter(|w| !matches!(w, Write::Withdrawn { .. }))
                        .count();
                    health
                        .published
                        .fetch_add(written as u64, Ordering::Relaxed);
                    health.commands(true);
                    backoff = Duration::from_millis(50);
                    for write in &mut batch {
                        if let Write::Entry(_, confirm) = write
                            && let Some(confirm) = confirm.take()
                        {
                            let _ = confirm.send(());
                        }
                    }
                    break;
                }
                Err(err) => {
                    health.commands(false);
                    tracing::warn!(error = %err, pending = batch.len(), "stream write failed; retrying");
                    tokio::time::sleep(jitter(backoff)).await;
                    backoff = (backoff * 2).min(MAX_WRITE_BACKOFF);
                }
            }
        }
        taker.sent(&batch);
        batch.clear();
    }
}

/// Re-saves the session of every live socket well before it would expire, so a
/// client whose node dies can always resume within `max_disconnection_duration`.
async fn refresher(node: Weak<StreamsNode>, shutdown: Shutdown) {
    loop {
        let Some(interval) = node.upgrade().map(|n| n.refresh_interval()) else {
            return;
        };
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
        let Some(node) = node.upgrade() else { return };
        let namespaces: Vec<Arc<Namespace>> = node
            .lock_routes()
            .namespaces
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for ns in namespaces {
            for socket in ns.sockets() {
                if let Some(session) = socket.durable_session() {
                    node.save(session, node.session_ttl(&ns), false);
                }
            }
        }
    }
}

impl StreamsNode {
    fn refresh_interval(&self) -> Duration {
        Duration::from_secs(20)
    }

    /// A live socket's session outlives one missed refresh.
    fn session_ttl(&self, ns: &Namespace) -> Duration {
        self.live_ttl(ns.recovery_window().unwrap_or_default())
    }
}

impl SessionStore for StreamsNode {
    /// The window plus two refresh intervals: a session saved when its socket connects
    /// (or joins) must not expire before the refresher saves it again, however short
    /// the window (a 3 s window used to leave live sessions of a killed node gone).
    fn live_ttl(&self, window: Duration) -> Duration {
        window + self.refresh_interval() * 2
    }

    fn save(&self, session: DurableSession, ttl: Duration, ended: bool) {
        let mut stored = PersistedSession {
            sid: session.sid,
            pid: session.pid,
            rooms: session.rooms,
            data: to_wire(&session.data),
            extra: session
                .offset
                .map(|offset| (SESSION_OFFSET.to_owned(), MsgValue::Str(offset)))
                .into_iter()
                .collect(),
        };
        stored.set_memberships(session.memberships);
        let key = session_key(&self.config.session_key_prefix, &stored.pid);
        // One save per session waits at a time, holding the latest value
        // (`streams::queue`): a socket changing rooms in a loop takes one place.
        if !self
            .writes
            .save(key, stored.encode(), ttl, session.epoch, ended)
        {
            self.write_dropped();
        }
    }

    fn forget(&self, pid: &str, epoch: u64, ended: bool) {
        let key = session_key(&self.config.session_key_prefix, pid);
        // The socket left: its client may be connecting to another node already, so
        // the deletion goes to Redis at once ([`deleter`]), unless the deleter cannot
        // take it now (behind by a whole channel, or Redis failing): then it is queued
        // behind the node's other writes, as every deletion was before.
        if ended {
            let direct = self.writes.forget_at_once(key, epoch);
            if let Err(direct) = self.deleter.delete(direct)
                && !direct.queue()
            {
                self.write_dropped();
            }
            return;
        }
        // A connected socket's session grown too large to store keeps queue order:
        // it is not fenced, so its next save (once it fits again) must follow it.
        if !self.writes.forget(key, epoch, false) {
            self.write_dropped();
        }
    }

    fn take<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<DurableSession>, AdapterError>> {
        Box::pin(async move {
            let mut conn = self.broker().conn();
            let key = session_key(&self.config.session_key_prefix, pid);
            // One claim per take, retried with the same token: a take whose reply was
            // lost (Redis killed right after it logged the claim) gets its session on
            // the next try instead of finding the key gone.
            let token = random_uid(16);
            let claimed = loop {
                match claim_session(&mut conn, &key, &token).await {
                    Ok(Some(claimed)) => break claimed,
                    // Right after Redis failed, another node may still hold this session
                    // in its write queue (saved while Redis was away, sent at its next
                    // retry): a miss then is not yet an answer.
                    Ok(None) if self.health().troubled_within(WRITES_SETTLE) => {}
                    Ok(None) => return Ok(None),
                    // The caller bounds how long a take may wait for Redis.
                    Err(err) => {
                        self.health().trouble();
                        tracing::debug!(error = %err, "session take failed; retrying");
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            Ok(durable_session(
                &claimed.stored,
                claimed.epoch,
                claimed.expires_in,
            ))
        })
    }

    fn peek<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<DurableSession>, AdapterError>> {
        Box::pin(async move {
            let mut conn = self.broker().conn();
            let key = session_key(&self.config.session_key_prefix, pid);
            let read: Option<String> = redis::cmd("EVAL")
                .arg(PEEK_SESSION)
                .arg(1)
                .arg(&key)
                .arg(MAX_STORED_SESSION_BYTES)
                .query_async(&mut conn)
                .await
                .map_err(|err| AdapterError::Unavailable(err.to_string()))?;
            Ok(read.and_then(|stored| durable_session(&stored, 0, None)))
        })
    }

    fn read_through<'a>(&'a self, offset: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(target) = stream_id(offset) else {
                return;
            };
            let mut at = self.read_to.subscribe();
            // The sender lives as long as the node; a node gone reads nothing more.
            let _ = at.wait_for(|at| *at >= target).await;
        })
    }

    fn log_end(&self) -> BoxFuture<'_, Result<Option<String>, AdapterError>> {
        Box::pin(async move {
            let mut conn = self.broker().conn();
            let last: redis::Value = end_entry(&self.config.stream_name, End::Newest)
                .query_async(&mut conn)
                .await
                .map_err(|e| AdapterError::Unavailable(e.to_string()))?;
            let entries = reply::range_entries(&last)
                .map_err(|e| AdapterError::Unavailable(e.to_string()))?;
            Ok(entries.first().map(|e| e.id.to_owned()))
        })
    }

    fn read_log<'a>(
        &'a self,
        nsp: &'a str,
        after: &'a str,
        until: &'a str,
        keep: &'a LogFilter<'a>,
        max_bytes: usize,
    ) -> BoxFuture<'a, Result<LogRead, AdapterError>> {
        Box::pin(async move {
            let unavailable = |e: redis::RedisError| AdapterError::Unavailable(e.to_string());
            let misshapen = |e: ReplyError| AdapterError::Unavailable(e.to_string());
            let mut conn = self.broker().conn();
            let stream = &self.config.stream_name;
            // The offset must still be in the stream (as Node checks), or a trimmed
            // gap would go unnoticed: the first page begins with it, in the same
            // command as what follows it (checked apart, a trim in between went
            // unnoticed). The stream is trimmed from its oldest end, so with the offset
            // there, everything after it is too.
            let mut first_page = after != "0-0";
            let mut from = if first_page {
                after.to_owned()
            } else {
                format!("({after}")
            };
            // What is kept is the client's own copy: it stops at `max_bytes`, and the
            // entries of others (other rooms, other namespaces) are dropped a page at
            // a time.
            let (mut frames, mut bytes) = (Vec::new(), 0usize);
            loop {
                let reply: redis::Value = redis::cmd("XRANGE")
                    .arg(stream)
                    .arg(&from)
                    .arg(until)
                    .arg("COUNT")
                    .arg(RANGE_COUNT)
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                let mut entries = reply::range_entries(&reply).map_err(misshapen)?;
                let n = entries.len();
                if std::mem::take(&mut first_page) {
                    if entries.first().is_some_and(|e| e.id == after) {
                        entries.remove(0);
                    } else if !self.holds_all_after(&mut conn, after).await? {
                        return Ok(LogRead::Gone);
                    }
                    from = format!("({after}");
                } else if after == "0-0" && from == "(0-0" && !self.never_trimmed(&mut conn).await?
                {
                    // From the stream's beginning (a session that began before this
                    // node read anything): no entry of it may have gone, asked after
                    // the first page so that a trim racing it counts.
                    return Ok(LogRead::Gone);
                }
                for entry in entries {
                    from = format!("({}", entry.id);
                    // As the live reader: no entry over the bound is decoded (a forged
                    // one of 100 MB decoded to gigabytes, on every replay over it).
                    if self.oversized(&entry) {
                        continue;
                    }
                    let Ok(message) = decode_entry(&entry) else {
                        continue;
                    };
                    if message.nsp != nsp {
                        continue;
                    }
                    if let MessageBody::Broadcast {
                        packet,
                        opts,
                        request_id: None,
                    } = message.body
                        && opts.flags.volatile != Some(true)
                        && packet.id.is_none()
                        && relayable(&packet)
                    {
                        let event = LoggedEvent {
                            offset: entry.id.to_owned(),
                            packet,
                            opts: engine_opts(&opts),
                        };
                        let Some(kept) = keep(event) else {
                            continue;
                        };
                        bytes += frame_bytes(&kept);
                        if bytes > max_bytes {
                            return Ok(LogRead::TooLarge);
                        }
                        frames.extend(kept);
                    }
                }
                if n < RANGE_COUNT {
                    break;
                }
            }
            Ok(LogRead::Events(frames))
        })
    }
}

/// One namespace's adapter in a `redis-streams` cluster.
#[derive(Debug)]
struct StreamsAdapter {
    node: Arc<StreamsNode>,
    nsp: String,
    public: String,
    index: MemoryAdapter,
    /// The namespace this adapter serves, set by `init`: what `close` removes from
    /// the routes. Weak, since the namespace owns its adapter; it also keeps the
    /// namespace's address from being reused while the removal may still compare it.
    served: OnceLock<Weak<Namespace>>,
}

impl StreamsAdapter {
    /// The namespace's pub/sub channels, as Node's adapter subscribes them: requests
    /// to every node, and answers to this one.
    fn subscriptions(&self) -> [Sub; 2] {
        [
            Sub::Channel(self.public.clone()),
            Sub::Channel(private_channel(
                &self.node.config.key_prefix,
                &self.nsp,
                self.node.uid(),
            )),
        ]
    }

    /// A broadcast's stream entry.
    fn entry(&self, packet: Packet, opts: &BroadcastOptions) -> ClusterMessage {
        self.node.message(
            &self.nsp,
            MessageBody::Broadcast {
                packet,
                opts: wire_opts(opts),
                request_id: None,
            },
        )
    }

    /// Queues a broadcast's stream entry with `append`, then delivers it to this
    /// node's recipients, unless this node delivers it when it reads it back from the
    /// stream; returns how many recipients it has here, and what `append` returned.
    /// The entry goes first (as Node's adapters publish before they deliver locally),
    /// so the other nodes' share is on its way to Redis while this node pushes to its
    /// own: delivered the other way round, a room's members on other nodes waited for
    /// this node's, and their p99 was 2.7–4.3 ms behind.
    fn append_then_deliver<T>(
        &self,
        ns: &Arc<Namespace>,
        packet: Packet,
        opts: &BroadcastOptions,
        append: impl FnOnce(&ClusterMessage) -> T,
    ) -> (usize, T) {
        if delivered_on_read(ns, opts) {
            let local = ns.local_sockets(opts).len();
            return (local, append(&self.entry(packet, opts)));
        }
        let appended = append(&self.entry(packet.clone(), opts));
        (ns.broadcast_local(packet, opts), appended)
    }
}

impl Adapter for StreamsAdapter {
    delegate_room_index!();

    fn init(&self, ns: &Arc<Namespace>) {
        let _ = self.served.set(Arc::downgrade(ns));
        let mut routes = self.node.lock_routes();
        routes
            .namespaces
            .insert(ns.name().to_owned(), Arc::downgrade(ns));
        if *self.node.started.borrow() {
            ns.recovery_start_at(&routes.position);
        }
        drop(routes);
        self.node.broker().subscribe_all(self.subscriptions());
    }

    /// Undoes `init`; the stream is every namespace's and stays read. The engine calls
    /// it under its registry lock, so a namespace of the same name created next
    /// subscribes after this unsubscribes (the broker keeps both in order) and may
    /// already be in the routes: only this instance is removed, perhaps a little
    /// later (see [`StreamsNode::closed`]); meanwhile what the reader hands it finds
    /// no socket.
    fn close(&self, _ns: &Namespace) {
        if let Some(ns) = self.served.get() {
            self.node.forget(self.nsp.clone(), ns.clone());
        }
        self.node.broker().unsubscribe_all(self.subscriptions());
    }

    fn broadcast(&self, ns: &Arc<Namespace>, packet: Packet, opts: BroadcastOptions) -> usize {
        if opts.flags.local {
            return ns.broadcast_local(packet, &opts);
        }
        let (local, ()) = self.append_then_deliver(ns, packet, &opts, |m| self.node.append(m));
        local
    }

    fn broadcast_durable(
        &self,
        ns: &Arc<Namespace>,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<usize, AdapterError>> {
        if opts.flags.local {
            let local = ns.broadcast_local(packet, &opts);
            return Box::pin(std::future::ready(Ok(local)));
        }
        let (local, confirmed) =
            self.append_then_deliver(ns, packet, &opts, |m| self.node.append_confirmed(m));
        Box::pin(async move {
            let unavailable = |why: &str| AdapterError::Unavailable(why.to_owned());
            let confirmed = confirmed.ok_or_else(|| unavailable("stream write queue full"))?;
            confirmed
                .await
                .map_err(|_| unavailable("node stopped before the stream took the event"))?;
            Ok(local)
        })
    }

    /// Room operations go to the stream, in order with broadcasts; broadcasts with
    /// acks over pub/sub, as in Node.
    fn publish_op(&self, _ns: &Arc<Namespace>, opts: &BroadcastOptions, op: ClusterOp<'_>) {
        let body = match op {
            ClusterOp::Join(rooms) => MessageBody::SocketsJoin {
                opts: wire_opts(opts),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            },
            ClusterOp::Leave(rooms) => MessageBody::SocketsLeave {
                opts: wire_opts(opts),
                rooms: rooms.iter().map(|r| r.to_string()).collect(),
            },
            ClusterOp::Disconnect { close } => MessageBody::DisconnectSockets {
                opts: wire_opts(opts),
                close,
            },
            ClusterOp::BroadcastWithAck { packet, sink } => {
                let node = &self.node;
                node.exchange.broadcast_with_ack(
                    node.broker(),
                    &self.nsp,
                    &self.public,
                    packet,
                    opts,
                    sink,
                );
                return;
            }
        };
        self.node.append(&self.node.message(&self.nsp, body));
    }

    fn fetch_remote_sockets<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        opts: BroadcastOptions,
        page: &'a SocketsPage,
    ) -> BoxFuture<'a, Result<Vec<SocketInfo>, AdapterError>> {
        let node = &self.node;
        Box::pin(async move {
            node.exchange
                .fetch_sockets(node.broker(), &self.nsp, &self.public, &opts, page)
                .await
        })
    }

    fn server_side_emit(&self, _ns: &Arc<Namespace>, args: Vec<Value>) {
        let node = &self.node;
        node.exchange
            .server_side_emit(node.broker(), &self.nsp, &self.public, &args);
    }

    fn server_side_emit_with_ack<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        args: Vec<Value>,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        let node = &self.node;
        Box::pin(async move {
            node.exchange
                .server_side_emit_with_ack(node.broker(), &self.nsp, &self.public, &args, timeout)
                .await
        })
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(
            self.node
                .broker()
                .server_count(Publish::Classic, &self.public),
        )
    }

    fn node_name(&self) -> Option<String> {
        questions::node_name(&self.node.questions)
    }

    fn ask_nodes<'a>(&'a self, question: &'a Value) -> BoxFuture<'a, NodeAnswers> {
        questions::ask(&self.node.questions, question)
    }

    fn session_store(&self) -> Option<Arc<dyn SessionStore>> {
        Some(self.node.clone())
    }
}

#[cfg(test)]
mod tests {
    use redis::aio::ConnectionManager;
    use switchboard_test_support::RedisServer;

    use super::*;

    /// A throwaway `redis-server` and a connection to it over its unix socket.
    async fn start_redis() -> (RedisServer, Conn) {
        let redis = RedisServer::start().await;
        let client = redis::Client::open(redis.unix_url()).expect("url");
        let conn = ConnectionManager::new(client).await.expect("a connection");
        (redis, Conn::Single(conn))
    }

    fn entry(n: u8) -> Write {
        // A value with bytes that are not UTF-8 text in Lua's eyes either.
        Write::Entry(
            vec![
                ("uid", format!("n{n}")),
                ("data", format!("\u{0}\u{ff}{n}")),
            ],
            None,
        )
    }

    /// The stream's every entry, as Redis answers `XRANGE`.
    async fn whole_stream(conn: &mut Conn) -> redis::Value {
        redis::cmd("XRANGE")
            .arg("socket.io")
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await
            .expect("XRANGE")
    }

    async fn entries(conn: &mut Conn) -> Vec<String> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg("socket.io")
            .arg("-")
            .arg("+")
            .query_async(conn)
            .await
            .expect("XRANGE");
        reply
            .ids
            .iter()
            .map(|e| {
                let uid: String = e.get("uid").expect("uid");
                let data: String = e.get("data").expect("data");
                assert!(data.starts_with("\u{0}\u{ff}"), "binary-safe: {data:?}");
                uid
            })
            .collect()
    }

    /// The gap watch against a real `redis-server`: a batch after a trim past the
    /// position is a gap, and the next batch is checked too; an empty batch keeps the
    /// suspicion; a fresh small batch costs no `XINFO`, fresh by Redis' clock; a user without `XINFO` turns
    /// the checks off instead of stopping the reader.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_gap_watch_finds_a_trim_past_what_was_read() {
        let (redis, mut admin) = start_redis().await;
        let xadd = |conn: &mut Conn| {
            let mut c = redis::cmd("XADD");
            c.arg("s").arg("*").arg("k").arg("v");
            let conn = conn.clone();
            async move {
                let mut conn = conn;
                c.query_async::<String>(&mut conn).await.expect("XADD")
            }
        };
        let xinfo_calls = |conn: &mut Conn| {
            let conn = conn.clone();
            async move {
                let mut conn = conn;
                let info: String = redis::cmd("INFO")
                    .arg("commandstats")
                    .query_async(&mut conn)
                    .await
                    .expect("INFO");
                info.lines()
                    .find_map(|l| l.strip_prefix("cmdstat_xinfo|stream:calls="))
                    .or_else(|| {
                        info.lines()
                            .find_map(|l| l.strip_prefix("cmdstat_xinfo:calls="))
                    })
                    .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
                    .unwrap_or(0)
            }
        };
        let read_after = |conn: &mut Conn, position: String, count: usize| {
            let conn = conn.clone();
            async move {
                let mut conn = conn;
                redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(count)
                    .arg("STREAMS")
                    .arg("s")
                    .arg(position)
                    .query_async::<redis::Value>(&mut conn)
                    .await
                    .expect("XREAD")
            }
        };
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(xadd(&mut admin).await);
        }
        let config = ClusterConfig {
            redis_url: redis.url(),
            ..ClusterConfig::default()
        };
        let target = crate::broker::Target::new(&config, Duration::from_secs(5)).expect("target");
        let mut own = OwnConn::new(&target, Duration::from_secs(5)).expect("conn");
        let start = Start {
            position: ids[0].clone(),
            trimmed: Some(0),
            added: 1,
            skew_ms: 0,
        };
        let mut watch = GapWatch::new(100, &start);

        // Judged against Redis' clock: entries a minute older than this node's clock
        // are fresh to a node whose clock runs a minute ahead of Redis' (not checked),
        // late to one whose clock agrees (checked). Before, every batch was late to a
        // node ahead of Redis by over 2 s.
        let minute_ago = now_ms() - 60_000;
        let _: String = redis::cmd("XADD")
            .arg("t")
            .arg(format!("{minute_ago}-1"))
            .arg("f")
            .arg("v")
            .query_async(&mut admin)
            .await
            .unwrap();
        let old = {
            let mut conn = admin.clone();
            redis::cmd("XREAD")
                .arg("STREAMS")
                .arg("t")
                .arg("0-0")
                .query_async::<redis::Value>(&mut conn)
                .await
                .expect("XREAD")
        };
        let ahead = Start {
            position: "0-0".to_owned(),
            trimmed: Some(0),
            added: 0,
            skew_ms: 60_000,
        };
        let before = xinfo_calls(&mut admin).await;
        let mut skewed = GapWatch::new(100, &ahead);
        assert_eq!(
            skewed.check(&mut own, "t", "0-0", &old).await.unwrap(),
            None
        );
        assert!(skewed.caught_up, "fresh by Redis' clock");
        assert_eq!(xinfo_calls(&mut admin).await, before, "not checked");
        let mut agreeing = GapWatch::new(
            100,
            &Start {
                skew_ms: 0,
                ..ahead
            },
        );
        let _ = agreeing.check(&mut own, "t", "0-0", &old).await.unwrap();
        assert!(!agreeing.caught_up, "a minute late by its own clock");

        // A fresh batch of one entry right after the position: not checked.
        let before = xinfo_calls(&mut admin).await;
        let one = read_after(&mut admin, ids[0].clone(), 1).await;
        assert!(watch.caught_up);
        assert_eq!(
            watch.check(&mut own, "s", &ids[0], &one).await.unwrap(),
            None
        );
        assert_eq!(
            xinfo_calls(&mut admin).await,
            before,
            "no XINFO for a fresh batch"
        );

        // A failed read: the next batch is checked. Trimmed past the position: a gap
        // before the batch's first entry.
        let _: u64 = redis::cmd("XTRIM")
            .arg("s")
            .arg("MAXLEN")
            .arg(3)
            .query_async(&mut admin)
            .await
            .unwrap();
        watch.suspect = true;
        let batch = read_after(&mut admin, ids[0].clone(), READ_COUNT).await;
        let gap = watch.check(&mut own, "s", &ids[0], &batch).await.unwrap();
        assert_eq!(gap.as_deref(), Some(ids[7].as_str()));
        assert!(watch.suspect, "the next batch is checked too");
        assert!(watch.caught_up, "three fresh entries");
        // A batch of half the stream (here 6 long) is not caught up.
        let mut many = GapWatch::new(6, &start);
        assert_eq!(many.full_at, 3);
        let _ = many.check(&mut own, "s", &ids[0], &batch).await.unwrap();
        assert!(!many.caught_up);
        // An empty batch keeps it so.
        let empty = read_after(&mut admin, ids[9].clone(), READ_COUNT).await;
        assert_eq!(
            watch.check(&mut own, "s", &ids[9], &empty).await.unwrap(),
            None
        );
        assert!(watch.suspect);
        // The next batch, right after what was read: checked, and clear.
        let before = xinfo_calls(&mut admin).await;
        xadd(&mut admin).await;
        let batch = read_after(&mut admin, ids[9].clone(), READ_COUNT).await;
        assert_eq!(
            watch.check(&mut own, "s", &ids[9], &batch).await.unwrap(),
            None
        );
        assert_eq!(xinfo_calls(&mut admin).await, before + 1);
        assert!(!watch.suspect);

        // A user Redis refuses XINFO: the checks stop, the batch is still read.
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("limited")
            .arg("on")
            .arg(">secret")
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .arg("-xinfo")
            .query_async(&mut admin)
            .await
            .unwrap();
        let limited = ClusterConfig {
            redis_url: format!("redis://limited:secret@127.0.0.1:{}", redis.port()),
            ..ClusterConfig::default()
        };
        let target = crate::broker::Target::new(&limited, Duration::from_secs(5)).expect("target");
        let mut own = OwnConn::new(&target, Duration::from_secs(5)).expect("conn");
        let mut watch = GapWatch::new(100, &start);
        watch.suspect = true;
        let batch = read_after(&mut admin, ids[0].clone(), READ_COUNT).await;
        assert_eq!(
            watch.check(&mut own, "s", &ids[0], &batch).await.unwrap(),
            None
        );
        assert!(!watch.enabled, "checks off, with a warning");
    }

    #[test]
    fn a_stream_trimmed_past_the_position_is_a_gap() {
        let info = |first: Option<&'static str>, length, added| reply::StreamInfo {
            length,
            entries_added: added,
            first_id: first,
            last_generated_id: None,
        };
        let gap = |position: &str, info: reply::StreamInfo<'_>| trimmed_past(position, &info, None);
        // The oldest entry at or before what was read: nothing unread is gone.
        assert!(!gap("10-0", info(Some("3-0"), 20, Some(30))));
        assert!(!gap("10-0", info(Some("10-0"), 20, Some(30))));
        // Right after it: nothing can have been between.
        assert!(!gap("10-0", info(Some("10-1"), 20, Some(30))));
        // Past that (same millisecond too): entries after the position may have gone.
        assert!(gap("10-0", info(Some("10-2"), 20, Some(30))));
        assert!(gap("10-18446744073709551615", info(Some("11-1"), 20, None)));
        assert!(!gap(
            "10-18446744073709551615",
            info(Some("11-0"), 20, None)
        ));
        assert!(gap("10-0", info(Some("12-0"), 20, None)));
        // Nothing read yet: a gap only if something was ever trimmed (Redis 7).
        assert!(!gap("0-0", info(Some("12-0"), 20, Some(20))));
        assert!(gap("0-0", info(Some("12-0"), 20, Some(21))));
        assert!(!gap("0-0", info(Some("12-0"), 20, None)));
        // Nothing ever trimmed (a stream begun again after Redis lost its data).
        assert!(!gap("10-0", info(Some("12-0"), 3, Some(3))));
        // An empty stream, or a position that is no id: nothing to say.
        assert!(!gap("10-0", info(None, 0, Some(30))));
        assert!(!gap("x", info(Some("12-0"), 20, Some(30))));
    }

    #[test]
    fn only_what_was_trimmed_since_the_node_started_counts() {
        let info = reply::StreamInfo {
            length: 10,
            entries_added: Some(15),
            first_id: Some("30-0"),
            last_generated_id: Some("40-0"),
        };
        // Five had gone before it started (a stream that existed, emptied or not).
        assert!(!trimmed_past("20-0", &info, Some(5)));
        assert!(trimmed_past("20-0", &info, Some(4)));
        assert!(!trimmed_past("0-0", &info, Some(5)));
    }

    #[test]
    fn the_id_before_an_id_is_the_greatest_below_it() {
        assert_eq!(id_before("12-3").as_deref(), Some("12-2"));
        assert_eq!(
            id_before("12-0").as_deref(),
            Some("11-18446744073709551615")
        );
        assert_eq!(id_before("0-0"), None);
        assert_eq!(id_before("x"), None);
    }

    /// A batch sent again after Redis applied it (the reply lost) appends nothing twice;
    /// session writes between runs keep their place, and later batches go on appending.
    #[tokio::test]
    async fn a_batch_sent_twice_is_appended_once() {
        let (_redis, mut conn) = start_redis().await;
        let mut target = WriteTarget::new(&ClusterConfig::default(), "node-a");
        let batch = vec![
            entry(1),
            entry(2),
            Write::SaveSession {
                key: "sio:session:x".into(),
                value: "v".into(),
                ttl: Duration::from_secs(60),
                epoch: 0,
                fence: false,
            },
            entry(3),
        ];
        let first_run = target.next_run;
        target.send(&conn, &batch).await.expect("first send");
        assert_eq!(target.next_run, first_run + 2, "two runs of entries");
        // The retry a lost reply causes: the same batch with the same run numbers.
        target.next_run = first_run;
        target.send(&conn, &batch).await.expect("second send");
        assert_eq!(entries(&mut conn).await, ["n1", "n2", "n3"]);

        target.send(&conn, &[entry(4)]).await.expect("next batch");
        assert_eq!(entries(&mut conn).await, ["n1", "n2", "n3", "n4"]);
        // Another node's runs are numbered on their own marker.
        let mut other = WriteTarget::new(&ClusterConfig::default(), "node-b");
        other.send(&conn, &[entry(5)]).await.expect("other node");
        assert_eq!(entries(&mut conn).await, ["n1", "n2", "n3", "n4", "n5"]);
        let session: String = redis::cmd("GET")
            .arg("sio:session:x")
            .query_async(&mut conn)
            .await
            .expect("GET");
        assert_eq!(session, "v");
    }

    /// A take retried after its reply was lost gets the session it claimed; another
    /// take (another token) finds it gone, and the claim goes away with its TTL. The
    /// first take learns how long the session had left to live.
    #[tokio::test]
    async fn a_session_claim_retried_with_its_token_gets_the_session_again() {
        let (_redis, mut conn) = start_redis().await;
        let key = "sio:session:abc";
        let _: () = redis::AsyncCommands::pset_ex(&mut conn, key, "stored", 60_000)
            .await
            .expect("SET");
        let first = claim_session(&mut conn, key, "t1").await.expect("claim");
        let left = first.as_ref().and_then(|c| c.expires_in);
        assert!(
            left.is_some_and(|left| left > Duration::ZERO && left <= Duration::from_secs(60)),
            "how long the session had left: {left:?}"
        );
        assert_eq!(
            first.map(|c| (c.stored, c.epoch)),
            Some(("stored".to_owned(), 1))
        );
        let retried = claim_session(&mut conn, key, "t1").await.expect("retry");
        assert_eq!(
            retried.as_ref().and_then(|c| c.expires_in),
            None,
            "a retry no longer knows"
        );
        assert_eq!(
            retried.map(|c| (c.stored, c.epoch)),
            Some(("stored".to_owned(), 1)),
            "the same take, retried, with the same epoch"
        );
        let other = claim_session(&mut conn, key, "t2")
            .await
            .expect("other")
            .map(|c| (c.stored, c.epoch));
        assert_eq!(other, None, "taken at most once");
        let ttl: i64 = redis::cmd("PTTL")
            .arg("{sio:session:abc}:claim:t1")
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(ttl > 0 && ttl <= 30_000, "the claim expires: {ttl}");
    }

    /// What Redis holds at `key`.
    async fn stored(mut conn: Conn, key: &str) -> Option<String> {
        redis::AsyncCommands::get::<_, Option<String>>(&mut conn, key)
            .await
            .expect("GET")
    }

    fn save(key: &str, value: &str, epoch: u64) -> Write {
        Write::SaveSession {
            key: key.into(),
            value: value.into(),
            ttl: Duration::from_secs(60),
            epoch,
            fence: false,
        }
    }

    /// A socket left behind on a node that froze (its client resumed elsewhere since)
    /// can neither replace nor delete the session of the resumed socket; the resumed
    /// socket's saves and a later take go on as usual, with a higher epoch each time.
    #[tokio::test]
    async fn a_session_taken_again_is_fenced_from_the_sockets_that_held_it_before() {
        let (_redis, mut conn) = start_redis().await;
        let mut target = WriteTarget::new(&ClusterConfig::default(), "node-a");
        let key = "sio:session:abc";
        let get = |conn: Conn| stored(conn, key);
        // Never taken: saved as Node saves it (no epoch key).
        target
            .send(&conn, &[save(key, "first", 0)])
            .await
            .expect("save");
        let taken = claim_session(&mut conn, key, "t1")
            .await
            .expect("claim")
            .map(|c| (c.stored, c.epoch));
        assert_eq!(taken, Some(("first".to_owned(), 1)));
        target
            .send(&conn, &[save(key, "resumed", 1)])
            .await
            .expect("save");

        // The old socket's refresh, its close, its forget: all ignored.
        let stale = [
            save(key, "stale", 0),
            Write::Forget {
                key: key.into(),
                epoch: 0,
                fence: true,
            },
        ];
        target.send(&conn, &stale).await.expect("stale writes");
        assert_eq!(get(conn.clone()).await.as_deref(), Some("resumed"));

        let again = claim_session(&mut conn, key, "t2")
            .await
            .expect("claim")
            .map(|c| (c.stored, c.epoch));
        assert_eq!(
            again,
            Some(("resumed".to_owned(), 2)),
            "a later take, a later epoch"
        );
        target
            .send(&conn, &[save(key, "third", 2)])
            .await
            .expect("save");
        target
            .send(&conn, &[save(key, "second", 1)])
            .await
            .expect("save");
        assert_eq!(get(conn.clone()).await.as_deref(), Some("third"));
        // A live socket's session grown too large to store is deleted unfenced: its
        // next save, once it fits again, is taken.
        let forget = |fence| Write::Forget {
            key: key.into(),
            epoch: 2,
            fence,
        };
        target.send(&conn, &[forget(false)]).await.expect("forget");
        assert_eq!(get(conn.clone()).await, None, "deleted");
        // Saved for ten minutes (a long recovery window).
        let long_save = Write::SaveSession {
            key: key.into(),
            value: "fits again".into(),
            ttl: Duration::from_secs(600),
            epoch: 2,
            fence: false,
        };
        target.send(&conn, &[long_save]).await.expect("save");
        assert_eq!(get(conn.clone()).await.as_deref(), Some("fits again"));
        let long: i64 = redis::cmd("PTTL")
            .arg(epoch_key(key))
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        target.send(&conn, &[forget(true)]).await.expect("forget");
        assert_eq!(
            get(conn.clone()).await,
            None,
            "the current socket may forget it"
        );
        let fenced: i64 = redis::cmd("PTTL")
            .arg(epoch_key(key))
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(
            long > 500_000 && fenced >= long - 5_000,
            "a fence never shortens the epoch key's life: {fenced} after {long}"
        );
        // A save of that socket written after it (its 20 s refresh read it just
        // before it closed) does not bring the session back.
        target
            .send(&conn, &[save(key, "refreshed", 2)])
            .await
            .expect("save");
        assert_eq!(get(conn.clone()).await, None, "fenced");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(epoch_key(key))
            .query_async(&mut conn)
            .await
            .expect("PTTL");
        assert!(ttl > 0, "the epoch key expires: {ttl}");
    }

    /// A deletion written at once for a socket that left ([`deleter`]) leaves no
    /// session whichever way it crosses that socket's live save of the same epoch
    /// still in the write queue: sent before the deletion, the save is deleted; after
    /// it, ignored (the fence). A save of a later epoch (the session taken since) wins
    /// either way. So the deletion need not wait for the queue.
    #[tokio::test]
    async fn a_deletion_written_at_once_and_a_queued_save_of_its_socket_agree_in_either_order() {
        let (_redis, mut conn) = start_redis().await;
        let mut target = WriteTarget::new(&ClusterConfig::default(), "node-a");
        let delete_at_once = |conn: &mut Conn, key: &'static str, epoch| {
            let mut conn = conn.clone();
            async move {
                forget_session(key, epoch, true)
                    .query_async::<redis::Value>(&mut conn)
                    .await
                    .expect("the deletion");
            }
        };
        // Never taken (epoch 0, no epoch key), and taken once (epoch 1).
        for (key, epoch) in [("sio:session:never", 0), ("sio:session:once", 1)] {
            target
                .send(&conn, &[save(key, "connected", epoch)])
                .await
                .expect("save");
            // The save sent first, the deletion after.
            target
                .send(&conn, &[save(key, "joined a room", epoch)])
                .await
                .expect("save");
            delete_at_once(&mut conn, key, epoch).await;
            assert_eq!(stored(conn.clone(), key).await, None, "{key}: deleted");
            // A save of the same socket sent after the deletion.
            target
                .send(&conn, &[save(key, "refresh", epoch)])
                .await
                .expect("save");
            assert_eq!(stored(conn.clone(), key).await, None, "{key}: fenced");
        }

        // A save of a later epoch (another node took the session since) wins in either
        // order: the older socket's deletion is ignored.
        let key = "sio:session:taken";
        target
            .send(&conn, &[save(key, "old socket", 0)])
            .await
            .expect("save");
        let taken = claim_session(&mut conn, key, "t1").await.expect("claim");
        assert_eq!(taken.map(|c| c.epoch), Some(1));
        target
            .send(&conn, &[save(key, "resumed", 1)])
            .await
            .expect("save");
        delete_at_once(&mut conn, key, 0).await;
        assert_eq!(stored(conn.clone(), key).await.as_deref(), Some("resumed"));
        delete_at_once(&mut conn, key, 1).await;
        assert_eq!(stored(conn.clone(), key).await, None, "its own socket's");
    }

    /// The session kept when its socket left (a recoverable close) is not replaced by a
    /// save of the live socket read just before (the 20 s refresh) written after it;
    /// a take then gets the epoch after the fence, and the resumed socket saves.
    #[tokio::test]
    async fn a_session_kept_for_resume_is_fenced_from_its_sockets_earlier_refresh() {
        let (_redis, mut conn) = start_redis().await;
        let mut target = WriteTarget::new(&ClusterConfig::default(), "node-a");
        let key = "sio:session:kept";
        let get = |conn: Conn| stored(conn, key);
        let kept = Write::SaveSession {
            key: key.into(),
            value: "at the close".into(),
            ttl: Duration::from_secs(60),
            epoch: 0,
            fence: true,
        };
        target
            .send(&conn, &[save(key, "live", 0)])
            .await
            .expect("save");
        target.send(&conn, &[kept]).await.expect("save");
        target
            .send(&conn, &[save(key, "refresh read before the close", 0)])
            .await
            .expect("save");
        assert_eq!(get(conn.clone()).await.as_deref(), Some("at the close"));
        let taken = claim_session(&mut conn, key, "t1")
            .await
            .expect("claim")
            .map(|c| (c.stored, c.epoch));
        assert_eq!(taken, Some(("at the close".to_owned(), 2)));
        target
            .send(&conn, &[save(key, "resumed", 2)])
            .await
            .expect("save");
        assert_eq!(get(conn.clone()).await.as_deref(), Some("resumed"));
    }

    /// With `replicas_to_ack`, a batch no replica acknowledged is an error (the writer
    /// sends it again), and sending it again appends nothing twice.
    #[tokio::test]
    async fn a_batch_too_few_replicas_hold_is_sent_again_and_appended_once() {
        let redis = RedisServer::start().await;
        let client = redis::Client::open(redis.unix_url()).expect("url");
        // Answers may take the whole `WAIT`.
        let mut conn = Conn::Single(
            ConnectionManager::new_with_config(
                client,
                crate::broker::manager_config(WRITER_TIMEOUT),
            )
            .await
            .expect("a connection"),
        );
        let config = ClusterConfig {
            replicas_to_ack: 1,
            ..ClusterConfig::default()
        };
        let mut target = WriteTarget::new(&config, "node-a");
        let batch = [entry(1)];
        let first_run = target.next_run;
        let err = target.send(&conn, &batch).await.err();
        assert!(err.is_some(), "no replica: not written yet");
        assert_eq!(target.next_run, first_run, "the run number is not spent");
        assert!(target.send(&conn, &batch).await.is_err());
        assert_eq!(entries(&mut conn).await, ["n1"], "appended once");
    }

    /// A run appended again after a failover (the same writer, run and index) is seen
    /// as read before; new entries, other writers and a writer's next run are not.
    #[test]
    fn entries_appended_again_after_a_failover_are_recognised() {
        let mut r = Reappended::default();
        assert!(!r.seen_before("a", 0, 0));
        assert!(!r.seen_before("a", 0, 1));
        assert!(!r.seen_before("b", 0, 0), "another writer");
        assert!(r.seen_before("a", 0, 0), "run 0 again");
        assert!(r.seen_before("a", 0, 1));
        assert!(!r.seen_before("a", 1, 0), "the next run");
        assert!(r.seen_before("a", 0, 1), "older still");
    }

    /// Appended entries carry their run and place in it, for [`Reappended`].
    #[tokio::test]
    async fn appended_entries_carry_their_run_and_index() {
        let (_redis, mut conn) = start_redis().await;
        let mut target = WriteTarget::new(&ClusterConfig::default(), "node-a");
        target
            .send(&conn, &[entry(1), entry(2)])
            .await
            .expect("send");
        target.send(&conn, &[entry(3)]).await.expect("send");
        let raw = whole_stream(&mut conn).await;
        let reply: redis::streams::StreamRangeReply =
            redis::from_redis_value_ref(&raw).expect("an XRANGE reply");
        let marks: Vec<(String, String)> = reply
            .ids
            .iter()
            .map(|e| (e.get("wrun").expect("wrun"), e.get("wix").expect("wix")))
            .collect();
        let first = target.next_run - 2;
        assert_eq!(
            marks,
            [
                (first.to_string(), "0".to_owned()),
                (first.to_string(), "1".to_owned()),
                ((first + 1).to_string(), "0".to_owned()),
            ]
        );
        // The reader's view: the same reply walked in place.
        let walked = reply::range_entries(&raw).expect("an XRANGE reply");
        let ids: Vec<&str> = walked.iter().map(|e| e.id).collect();
        let expected: Vec<&str> = reply.ids.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, expected);
        let mut r = Reappended::default();
        let fresh: Vec<bool> = walked.iter().map(|e| !r.is_reappended(e)).collect();
        assert_eq!(fresh, [true, true, true]);
        assert!(walked.iter().all(|e| r.is_reappended(e)), "read again");
    }

    /// With the cluster secret, marks are signed and only signed marks count: an entry
    /// appended by anyone who can write to the stream, naming a writer and a run past
    /// all of its own (unsigned, or signed with another secret), is read as unmarked,
    /// and that writer's entries are still read after it. Without the signature one
    /// such entry silenced the writer for every reader until it restarted.
    #[tokio::test]
    async fn only_marks_signed_with_the_cluster_secret_count() {
        let (_redis, mut conn) = start_redis().await;
        let with = |fill: &str| ClusterConfig {
            secret: Some(crate::ClusterSecret::new(&fill.repeat(32)).expect("long")),
            ..ClusterConfig::default()
        };
        let config = with("s");
        let mut target = WriteTarget::new(&config, "n1");
        target.send(&conn, &[entry(1)]).await.expect("send");
        let forged = |sig: &str| {
            let mut cmd = redis::cmd("XADD");
            cmd.arg("socket.io").arg("*").arg("uid").arg("n1");
            cmd.arg("wrun").arg(u64::MAX).arg("wix").arg(0);
            if !sig.is_empty() {
                cmd.arg(MARK_SIGNATURE).arg(sig);
            }
            cmd
        };
        let other = Signer::new(with("o").secret.as_ref().expect("a secret"));
        let elsewhere = Mark::new("n1", u64::MAX, 0).sign(&other);
        for sig in ["", "00", elsewhere.as_str()] {
            let _: String = forged(sig).query_async(&mut conn).await.expect("XADD");
        }
        target
            .send(&conn, &[entry(1), entry(1)])
            .await
            .expect("send");
        let raw = whole_stream(&mut conn).await;
        let walked = reply::range_entries(&raw).expect("an XRANGE reply");
        assert_eq!(walked.len(), 6);
        let signer = config.secret.as_ref().map(|s| Arc::new(Signer::new(s)));
        let mut r = Reappended::new(signer);
        let fresh: Vec<bool> = walked.iter().map(|e| !r.is_reappended(e)).collect();
        assert_eq!(fresh, [true; 6], "the forged marks moved nothing");
        let again: Vec<bool> = walked.iter().map(|e| r.is_reappended(e)).collect();
        assert_eq!(
            again,
            [true, false, false, false, true, true],
            "the genuine entries are known when read again; the forged never count"
        );
    }
}
