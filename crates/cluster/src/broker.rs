//! The connection to Redis: one multiplexed command connection, one subscriber
//! connection that survives Redis restarts (reconnect with backoff, resubscribe to
//! what is still held), an ordered publisher with a bounded queue (over a connection
//! of its own that the caller writes to, `pub_conn.rs`, except with TLS or a Redis
//! Cluster), and the health the readiness probe and the metrics report.
//!
//! Which Redis: the URL's, or with `redis+sentinel://` the master the Sentinels name
//! ([`Target`]). Then a watcher asks them again every [`SENTINEL_CHECK`]; when the
//! master moves (a failover), every connection moves with it: the command connection
//! is replaced, and the subscriber and the streams reader reconnect to the new master.
//!
//! With `redis+cluster://` (a Redis Cluster, see `redis_cluster.rs`) commands go through
//! a cluster connection ([`Conn::Cluster`]) and subscriptions through one with RESP3
//! pushes ([`push_subscriber`]), which also serves shard channels ([`Sub::Shard`]) on a
//! single Redis for the `redis-sharded` adapter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchboard_engine::Shutdown;
use switchboard_engine::adapter::AdapterError;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::connect::{classify, client_for_url, redact_url};
use crate::pub_conn::PubConn;
use crate::redis_cluster::{ClusterUrl, SlotPipes, is_cluster_url};
use crate::sentinel::{SentinelUrl, is_sentinel_url};
use crate::sub_conn::{Plain, SubConn, SubError};
use crate::{AdapterKind, ClusterConfig, ClusterError};
use wanted::{Applied, ShardDropped, Wanted};

mod wanted;

/// How often the Sentinels are asked which server is the master.
pub(crate) const SENTINEL_CHECK: Duration = Duration::from_secs(1);

/// Reconnect attempts of one request before it fails, with Sentinels.
const SENTINEL_RETRIES: usize = 2;

/// Where commands go until the Sentinels first answer: nothing listens there, so they
/// fail (and the node is not ready) instead of reaching a wrong server.
const UNRESOLVED: &str = "redis://127.0.0.1:1";

/// The Redis this node talks to: the configured URL's, or the master the Sentinels
/// name now (moved by [`sentinel_watcher`] on a failover).
pub(crate) struct Target {
    config: ClusterConfig,
    sentinel: Option<SentinelUrl>,
    /// Set for a Redis Cluster (`redis+cluster://`).
    cluster: Option<ClusterUrl>,
    current: RwLock<Current>,
    /// Bumped whenever `current` moves to another server: long-lived connections
    /// (the subscriber, the streams reader) reconnect to it.
    moves: watch::Sender<u64>,
    /// How long a command may wait for its answer.
    response_timeout: Duration,
}

/// The server commands go to now.
#[derive(Clone)]
pub(crate) struct Current {
    /// The single server's client (none for a Redis Cluster).
    pub(crate) client: Option<redis::Client>,
    conn: Conn,
    /// The master's `host:port` (Sentinel only).
    address: Option<String>,
}

impl Target {
    pub(crate) fn new(
        config: &ClusterConfig,
        response_timeout: Duration,
    ) -> Result<Arc<Target>, ClusterError> {
        let sentinel = if is_sentinel_url(&config.redis_url) {
            Some(SentinelUrl::parse(&config.redis_url)?)
        } else {
            None
        };
        let cluster = if is_cluster_url(&config.redis_url) {
            Some(ClusterUrl::parse(&config.redis_url)?)
        } else {
            None
        };
        let (client, conn) = match &cluster {
            Some(url) => (None, cluster_conn(url, config, response_timeout)?),
            None => {
                let client = match &sentinel {
                    Some(_) => client_for_url(config, UNRESOLVED)?,
                    None => crate::connect::client(config)?,
                };
                let conn =
                    Self::manager(&client, response_timeout, sentinel.is_some()).map_err(|e| {
                        ClusterError::BadUrl(format!("{}: {e}", redact_url(&config.redis_url)))
                    })?;
                (Some(client), Conn::Single(conn))
            }
        };
        Ok(Arc::new(Target {
            config: config.clone(),
            sentinel,
            cluster,
            current: RwLock::new(Current {
                client,
                conn,
                address: None,
            }),
            moves: watch::channel(0).0,
            response_timeout,
        }))
    }

    /// A command connection to `client`'s server. With Sentinels a request fails once a
    /// couple of reconnects failed (its caller retries on whichever server is the master
    /// by then) instead of waiting for a server that may never come back.
    fn manager(
        client: &redis::Client,
        response_timeout: Duration,
        sentinel: bool,
    ) -> redis::RedisResult<ConnectionManager> {
        let mut config = manager_config(response_timeout);
        if sentinel {
            config = config.set_number_of_retries(SENTINEL_RETRIES);
        }
        ConnectionManager::new_lazy_with_config(client.clone(), config)
    }

    pub(crate) fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A command connection to the current server (a cheap clone).
    pub(crate) fn conn(&self) -> Conn {
        self.current().conn
    }

    /// Whether this is a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// Whether every server this node talks to is reached over plain TCP or a Unix
    /// socket (not TLS, not a Redis Cluster): the publisher's and the subscriber's own
    /// connections serve those.
    fn is_plain(&self) -> bool {
        let tls_master = self.sentinel.as_ref().is_some_and(|s| s.tls);
        !self.is_cluster()
            && !tls_master
            && self.current().client.as_ref().and_then(Plain::of).is_some()
    }

    /// A command connection of one's own to the current server (or cluster).
    fn own_conn(&self, response_timeout: Duration) -> Result<Conn, ClusterError> {
        let current = self.current();
        match (&self.cluster, current.client) {
            (Some(url), _) => cluster_conn(url, &self.config, response_timeout),
            (None, Some(client)) => {
                Self::manager(&client, response_timeout, self.sentinel.is_some())
                    .map(Conn::Single)
                    .map_err(|e| ClusterError::Redis(e.to_string()))
            }
            (None, None) => Err(ClusterError::Redis("no server".to_owned())),
        }
    }

    /// Changes whenever the server moves (see [`Target::moves`]).
    pub(crate) fn moved(&self) -> watch::Receiver<u64> {
        self.moves.subscribe()
    }

    /// With Sentinels: asks them for the master and moves there if it changed.
    async fn check(&self) -> Result<(), ClusterError> {
        let Some(sentinel) = &self.sentinel else {
            return Ok(());
        };
        let address = sentinel
            .resolve(|url| client_for_url(&self.config, url))
            .await?;
        if self.current().address.as_deref() == Some(address.as_str()) {
            return Ok(());
        }
        let client = client_for_url(&self.config, &sentinel.master_url(&address))?;
        let conn = Self::manager(&client, self.response_timeout, true)
            .map_err(|e| ClusterError::Redis(e.to_string()))?;
        let previous = {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            let previous = current.address.replace(address.clone());
            current.client = Some(client);
            current.conn = Conn::Single(conn);
            previous
        };
        tracing::info!(
            master = sentinel.master,
            address,
            previous = previous.as_deref().unwrap_or("(none yet)"),
            "redis master (from Sentinel)"
        );
        self.moves.send_modify(|n| *n += 1);
        Ok(())
    }
}

/// A connection of one's own to the current server (a blocking read, a `WAIT` must not
/// hold up the node's shared connection), made again when the server moves.
pub(crate) struct OwnConn {
    target: Arc<Target>,
    moved: watch::Receiver<u64>,
    /// The move count `conn` was made at.
    made_at: u64,
    conn: Conn,
    response_timeout: Duration,
}

impl OwnConn {
    pub(crate) fn new(
        target: &Arc<Target>,
        response_timeout: Duration,
    ) -> Result<Self, ClusterError> {
        let mut moved = target.moved();
        let made_at = *moved.borrow_and_update();
        let conn = target.own_conn(response_timeout)?;
        Ok(OwnConn {
            target: target.clone(),
            moved,
            made_at,
            conn,
            response_timeout,
        })
    }

    /// The connection, to the server commands go to now (made again if it moved).
    pub(crate) fn get(&mut self) -> &mut Conn {
        let now = *self.moved.borrow();
        if now != self.made_at
            && let Ok(conn) = self.target.own_conn(self.response_timeout)
        {
            self.made_at = now;
            self.conn = conn;
        }
        &mut self.conn
    }

    /// Resolves when the server moves (Sentinel); never otherwise.
    pub(crate) async fn moved(&mut self) {
        if self.moved.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A command connection: to one server (reconnecting by itself), or to a Redis
/// Cluster (routing each command by its key's slot, following redirections).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A cluster connection that connects in the background (the node starts while the
/// cluster is unreachable, as with a single Redis).
fn cluster_conn(
    url: &ClusterUrl,
    config: &ClusterConfig,
    response_timeout: Duration,
) -> Result<Conn, ClusterError> {
    let client = url.client(config, response_timeout, None)?;
    let settings = redis::cluster::ClusterConfig::default()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(response_timeout);
    Ok(Conn::Cluster(
        client.get_pending_async_connection_with_config(settings),
    ))
}

/// Asks the Sentinels every [`SENTINEL_CHECK`] (at once at start) where the master is.
async fn sentinel_watcher(target: Arc<Target>, health: Arc<Health>, shutdown: Shutdown) {
    let mut failing = false;
    loop {
        match target.check().await {
            Ok(()) => {
                health.master(true);
                failing = false;
            }
            Err(err) => {
                // Sentinels all unreachable while the master they named last still
                // answers: the node works on (a failover meanwhile would go unseen
                // until they answer). Any other failure (no master known, or none of
                // the answers a master yet: a failover under way) is a gap.
                let current = target.current();
                let blind = matches!(err, ClusterError::SentinelsUnreachable(_))
                    && current.address.is_some();
                // Blind, the known master must still say it is one: cut off from the
                // Sentinels, the node may reach an old master they demoted, and its
                // publishes would reach only the peers still on it.
                let still_master = match (blind, current.client) {
                    (true, Some(client)) => {
                        matches!(crate::sentinel::is_master(&client).await, Ok(true))
                    }
                    _ => false,
                };
                if !still_master {
                    health.master(false);
                }
                if !failing {
                    tracing::warn!(error = %err, "no master from the Sentinels; asking again");
                }
                failing = true;
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(SENTINEL_CHECK) => {}
        }
    }
}

/// Longest pause between two reconnect attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// First pause after a failure.
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two attempts of the push subscriber ([`push_subscriber`]):
/// after a Redis Cluster master dies, its subscriptions fail until a replica takes over
/// (1–3 s), and each second waited longer is a second of messages missed.
const MAX_PUSH_BACKOFF: Duration = Duration::from_secs(1);
/// How long a subscription change or a connection's first command may take.
const SUBSCRIBER_TIMEOUT: Duration = Duration::from_secs(5);
/// Most publishes sent in one pipeline.
const PUBLISH_BATCH: usize = 256;
/// Publishes queued while Redis is slow or unreachable; beyond this, new ones are
/// dropped (and counted) rather than exhausting memory, as the streams writer does
/// with its queue. Pub/sub delivery is at most once anyway: a publish that waits this
/// long behind others is one the other nodes can do without.
pub(crate) const MAX_PENDING_PUBLISHES: usize = 100_000;

/// The longest message a node decodes from Redis (pub/sub, sharded pub/sub, a stream
/// entry's fields together). Decoding expands a message up to about 32 times (every
/// MessagePack element becomes a 32-byte value, then JSON), and Redis takes values of
/// up to 512 MiB from anyone who can publish, so without this one message could take
/// a node's memory. Nothing a node sends comes near it: a client's event is at most
/// `engine.max_payload` (1 MB), and Redis' default pub/sub output buffer limit
/// (32 MB hard) cuts off subscribers of larger messages anyway.
pub const MAX_PEER_MESSAGE_BYTES: usize = 16 << 20;

/// Broker health, read by the readiness probe and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Health {
    /// The subscriber connection is up (so this node hears the cluster).
    subscribed: AtomicBool,
    /// The last command round trip succeeded.
    commands_ok: AtomicBool,
    /// With Sentinel: the last look found the master (or the Sentinels were only
    /// unreachable while the known master answers). Its own flag: the prober's
    /// `PING`, which a demoted master answers too, set `commands_ok` back every
    /// second, and readiness flapped.
    master_lost: AtomicBool,
    /// Subscription changes asked for and not yet sent to Redis: until they are, a
    /// node that says it is ready might not hear a channel it just subscribed (its
    /// forwarding channel at start-up, say).
    pending_subscriptions: AtomicUsize,
    /// Set once the node was up with no subscription pending.
    settled: AtomicBool,
    /// Times the subscriber connection was re-established.
    pub reconnects: AtomicU64,
    /// Messages published.
    pub published: AtomicU64,
    /// Publishes that failed (Redis down) or were dropped: lost for pub/sub, as in
    /// Node.
    pub publish_errors: AtomicU64,
    /// Of those, the ones dropped because the publish (or stream write) queue was
    /// full ([`MAX_PENDING_PUBLISHES`], the streams writer's own bound).
    pub publish_dropped: AtomicU64,
    /// Forwarding frames refused: unsigned, signed with another secret, too old or
    /// replayed, or meant for another node.
    pub forward_rejected: AtomicU64,
    /// Messages received from the cluster.
    pub received: AtomicU64,
    /// Messages from Redis longer than [`MAX_PEER_MESSAGE_BYTES`], dropped undecoded.
    pub oversized: AtomicU64,
    /// Milliseconds between an event entering the stream and this node reading it
    /// (streams mode; 0 otherwise).
    pub stream_lag_ms: AtomicU64,
    /// Times this node found that entries of the stream were trimmed before it read
    /// them (streams mode): it had fallen further behind than the stream is long.
    pub stream_gaps: AtomicU64,
    /// Messages whose handling panicked (an application handler a peer's message
    /// ran, such as a server-side event's): each was dropped, see [`contained`].
    pub handler_panics: AtomicU64,
    /// When this node last saw Redis fail (a lost subscriber connection or a failed
    /// command); `None` if it never did.
    trouble_at: Mutex<Option<Instant>>,
}

/// Runs `handle`, the handling of one message from the cluster, so that a panic in
/// it costs that message only. Handling runs the application's handlers (a
/// server-side event's, the disconnect handlers of a peer's `disconnectSockets`) on
/// the task that reads every message for this node — the subscriber, the stream
/// reader: unwinding out of it would end that task, and the node would stop hearing
/// the cluster while still saying it is ready.
pub(crate) fn contained(health: &Health, handle: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(handle)) {
        health.handler_panics.fetch_add(1, Ordering::Relaxed);
        let what = panic
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic without text)");
        tracing::error!(
            panic = what,
            "handling a cluster message panicked; that message was dropped"
        );
    }
}

impl Health {
    /// Whether Redis is reachable both ways.
    /// Until the node is up the first time, its subscriptions must all have been sent
    /// too (see [`Health::pending_subscriptions`]); after that they are not waited for,
    /// or rooms joined and left all the time (the sharded adapter's dynamic channels)
    /// would make readiness flap.
    pub fn is_up(&self) -> bool {
        if !(self.subscribed.load(Ordering::Acquire)
            && self.commands_ok.load(Ordering::Acquire)
            && !self.master_lost.load(Ordering::Acquire))
        {
            return false;
        }
        if self.settled.load(Ordering::Acquire) {
            return true;
        }
        let settled = self.pending_subscriptions.load(Ordering::Acquire) == 0;
        if settled {
            self.settled.store(true, Ordering::Release);
        }
        settled
    }

    /// `n` subscription changes were sent to Redis (or covered by a new connection).
    fn subscriptions_done(&self, n: usize) {
        let _ = self
            .pending_subscriptions
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
    }

    /// With Sentinel: whether the last look found the master.
    pub(crate) fn master(&self, found: bool) {
        self.master_lost.store(!found, Ordering::Release);
        if !found {
            self.trouble();
        }
    }

    pub(crate) fn commands(&self, ok: bool) {
        self.commands_ok.store(ok, Ordering::Release);
        if !ok {
            self.trouble();
        }
    }

    /// Records that Redis failed just now.
    pub(crate) fn trouble(&self) {
        *self.trouble_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    /// Whether Redis failed, as this node saw it, less than `within` ago.
    pub(crate) fn troubled_within(&self, within: Duration) -> bool {
        self.trouble_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < within)
    }
}

/// A subscription: an exact channel, a pattern, or a shard channel (`SSUBSCRIBE`,
/// Redis 7: served by the master of the channel's slot on a Redis Cluster).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Sub {
    Channel(String),
    Pattern(String),
    Shard(String),
}

/// How a message is published: `PUBLISH` (every subscriber of the cluster) or
/// `SPUBLISH` (the shard channel's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publish {
    Classic,
    Shard,
}

impl Publish {
    fn command(self) -> &'static str {
        match self {
            Publish::Classic => "PUBLISH",
            Publish::Shard => "SPUBLISH",
        }
    }
}

/// Whether a [`Sub`] is taken or given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Subscribe,
    Unsubscribe,
}

/// Where answers to another node's request go: its channel, published as the adapter
/// publishes (classic, or a shard channel).
#[derive(Clone)]
pub(crate) struct Reply {
    pub(crate) broker: Arc<Broker>,
    pub(crate) channel: String,
    pub(crate) kind: Publish,
}

impl Reply {
    /// Publishes one answer, in order with this node's other publishes.
    pub(crate) fn send(&self, payload: Bytes) {
        self.broker
            .enqueue(self.kind, self.channel.clone(), payload);
    }
}

/// Receives every pub/sub message: `(channel, payload)`.
pub(crate) type MessageHandler = Arc<dyn Fn(&str, Bytes) + Send + Sync>;

/// A [`MessageHandler`] that hands each message to `node` for as long as it lives.
/// Weak: the node holds the broker and the broker holds its handler, so a strong
/// reference would keep both alive for ever.
pub(crate) fn handler_of<N: Send + Sync + 'static>(
    node: &Arc<N>,
    on_message: impl Fn(&N, &str, Bytes) + Send + Sync + 'static,
) -> MessageHandler {
    let node = Arc::downgrade(node);
    Arc::new(move |channel: &str, payload: Bytes| {
        if let Some(node) = node.upgrade() {
            on_message(&node, channel, payload);
        }
    })
}

/// Handlers of exact channels that are not the adapter's (e.g. forwarded requests),
/// consulted before the adapter's handler.
type Routes = Arc<RwLock<HashMap<String, MessageHandler>>>;

/// The node's Redis connections.
pub(crate) struct Broker {
    target: Arc<Target>,
    health: Arc<Health>,
    /// The subscriptions wanted, which the subscriber task applies (`broker/wanted.rs`):
    /// one entry per channel, however many changes Redis has not taken yet.
    wanted: Arc<Wanted>,
    /// Where publishes go, in call order.
    publish: Publishing,
    /// This node's own channels (forwarding) are shard channels: on a Redis Cluster a
    /// classic `PUBLISH` counts only the receivers on the node it reached.
    own_sharded: bool,
    routes: Routes,
    /// Counts the subscriber connection's ups and downs (see [`Broker::link`]).
    link: watch::Receiver<u64>,
}

impl Drop for Broker {
    /// Ends the subscriber task.
    fn drop(&mut self) {
        self.wanted.close();
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").finish_non_exhaustive()
    }
}

/// The ordered publisher.
enum Publishing {
    /// Its own plain connection, written by the caller (`pub_conn.rs`).
    Direct(PubConn),
    /// A queue to [`publisher`], which sends through the `redis` crate (TLS, a Redis
    /// Cluster).
    Queue {
        /// Bounded by [`MAX_PENDING_PUBLISHES`].
        tx: mpsc::Sender<(Publish, String, Bytes)>,
        /// Set when the queue overflows, cleared when a publish gets through: one
        /// log line per overflow rather than one per dropped message.
        overflowing: AtomicBool,
    },
}

/// The reconnect policy of command connections: keep trying, never give up.
pub(crate) fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_min_delay(MIN_BACKOFF)
        .set_max_delay(MAX_BACKOFF)
        .set_number_of_retries(usize::MAX)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
}

impl Broker {
    /// Connects lazily: the node starts even while Redis is down (not ready until it
    /// is up) and keeps trying with backoff.
    pub(crate) fn start(
        config: &ClusterConfig,
        on_message: MessageHandler,
        shutdown: Shutdown,
    ) -> Result<Arc<Broker>, ClusterError> {
        let target = Target::new(config, Duration::from_secs(5))?;
        let health = Arc::new(Health::default());
        if target.sentinel.is_some() {
            tokio::spawn(sentinel_watcher(
                target.clone(),
                health.clone(),
                shutdown.clone(),
            ));
        }
        let wanted = Arc::new(Wanted::new(health.clone()));
        let routes = Routes::default();
        let (link_tx, link) = watch::channel(0);
        let dispatch = {
            let routes = routes.clone();
            let health = health.clone();
            Arc::new(move |channel: &str, payload: Bytes| {
                if payload.len() > MAX_PEER_MESSAGE_BYTES {
                    health.oversized.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        channel = %switchboard_engine::untrusted::Untrusted(channel),
                        bytes = payload.len(),
                        "cluster message over MAX_PEER_MESSAGE_BYTES dropped undecoded"
                    );
                    return;
                }
                let routed = routes
                    .read()
                    .ok()
                    .and_then(|routes| routes.get(channel).cloned());
                contained(&health, || match routed {
                    Some(handler) => handler(channel, payload),
                    None => on_message(channel, payload),
                });
            })
        };
        let sub_link = Link {
            health: health.clone(),
            changes: link_tx,
        };
        // Shard channels need RESP3 pushes (the classic pub/sub connection has no
        // SSUBSCRIBE); so does a Redis Cluster, whose connection subscribes each channel
        // on its slot's master.
        if target.is_cluster() || config.adapter == AdapterKind::RedisSharded {
            tokio::spawn(push_subscriber(
                target.clone(),
                wanted.clone(),
                dispatch,
                sub_link,
                shutdown.clone(),
            ));
        } else {
            tokio::spawn(subscriber(
                target.clone(),
                wanted.clone(),
                dispatch,
                sub_link,
                shutdown.clone(),
            ));
        }
        let publish = if target.is_plain() {
            Publishing::Direct(PubConn::start(target.clone(), health.clone())?)
        } else {
            let (tx, rx) = mpsc::channel(MAX_PENDING_PUBLISHES);
            tokio::spawn(publisher(target.clone(), rx, health.clone()));
            Publishing::Queue {
                tx,
                overflowing: AtomicBool::new(false),
            }
        };
        tokio::spawn(prober(target.clone(), health.clone(), shutdown));
        let own_sharded = target.is_cluster();
        Ok(Arc::new(Broker {
            target,
            health,
            wanted,
            publish,
            own_sharded,
            routes,
            link,
        }))
    }

    /// Changes whenever the subscriber connection goes down or comes back up: a
    /// message published to this node in between may never have arrived. The current
    /// state is [`Broker::subscribed`].
    pub(crate) fn link(&self) -> watch::Receiver<u64> {
        self.link.clone()
    }

    /// Whether this node hears its subscriptions right now.
    pub(crate) fn subscribed(&self) -> bool {
        self.health.subscribed.load(Ordering::Acquire)
    }

    /// Sends the messages of `channel` to `handler` instead of the adapter, now and
    /// after every reconnect.
    /// A shard channel on a Redis Cluster (see [`Broker::own_sharded`]).
    pub(crate) fn route(&self, channel: String, handler: MessageHandler) {
        if let Ok(mut routes) = self.routes.write() {
            routes.insert(channel.clone(), handler);
        }
        if self.own_sharded {
            self.subscribe(Sub::Shard(channel));
        } else {
            self.subscribe(Sub::Channel(channel));
        }
    }

    /// Publishes on a [`Broker::route`]d channel at once, outside the ordered queue, and
    /// says how many connections received the message (0: nobody listens on `channel`).
    pub(crate) async fn publish_now(
        &self,
        channel: &str,
        payload: &[u8],
    ) -> Result<usize, ClusterError> {
        let mut conn = self.conn();
        let command = if self.own_sharded {
            Publish::Shard
        } else {
            Publish::Classic
        };
        let receivers = redis::cmd(command.command())
            .arg(channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        match receivers {
            Ok(n) => {
                self.health.published.fetch_add(1, Ordering::Relaxed);
                Ok(n)
            }
            Err(err) => {
                self.health.publish_errors.fetch_add(1, Ordering::Relaxed);
                Err(ClusterError::Redis(err.to_string()))
            }
        }
    }

    pub(crate) fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Where this node's Redis is now (it moves on a Sentinel failover).
    pub(crate) fn target(&self) -> &Arc<Target> {
        &self.target
    }

    /// A command connection to the current server (cheap clone of the multiplexed one).
    pub(crate) fn conn(&self) -> Conn {
        self.target.conn()
    }

    /// Subscribes now and after every reconnect.
    pub(crate) fn subscribe(&self, sub: Sub) {
        self.change(Change::Subscribe, sub);
    }

    /// Records a subscription change for the subscriber task, counted as pending
    /// until it is sent.
    fn change(&self, change: Change, sub: Sub) {
        self.wanted.change(change, sub);
    }

    /// Gives back one [`Broker::subscribe`] of `sub`: once no holder is left, the
    /// node unsubscribes now and is not subscribed again after a reconnect. Kept in
    /// order with subscribes.
    pub(crate) fn unsubscribe(&self, sub: Sub) {
        self.change(Change::Unsubscribe, sub);
    }

    /// Publishes in call order (fire and forget; counted when it fails). Dropped, and
    /// counted, when [`MAX_PENDING_PUBLISHES`] are already waiting.
    pub(crate) fn publish(&self, channel: String, payload: Bytes) {
        self.enqueue(Publish::Classic, channel, payload);
    }

    /// Publishes on a shard channel (`SPUBLISH`), in call order with [`Broker::publish`].
    pub(crate) fn spublish(&self, channel: String, payload: Bytes) {
        self.enqueue(Publish::Shard, channel, payload);
    }

    fn enqueue(&self, kind: Publish, channel: String, payload: Bytes) {
        let (tx, overflowing) = match &self.publish {
            Publishing::Direct(conn) => return conn.publish(kind, &channel, &payload),
            Publishing::Queue { tx, overflowing } => (tx, overflowing),
        };
        match tx.try_send((kind, channel, payload)) {
            Ok(()) => {
                overflowing.store(false, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.health.publish_dropped.fetch_add(1, Ordering::Relaxed);
                self.health.publish_errors.fetch_add(1, Ordering::Relaxed);
                if !overflowing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        queued = MAX_PENDING_PUBLISHES,
                        "redis publish queue full (redis slow or down); dropping publishes"
                    );
                }
            }
            // The publisher ended: the node is shutting down.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Subscribes to each of `subs` (see [`Broker::subscribe`]).
    pub(crate) fn subscribe_all(&self, subs: impl IntoIterator<Item = Sub>) {
        for sub in subs {
            self.subscribe(sub);
        }
    }

    /// Gives back each of `subs` (see [`Broker::unsubscribe`]).
    pub(crate) fn unsubscribe_all(&self, subs: impl IntoIterator<Item = Sub>) {
        for sub in subs {
            self.unsubscribe(sub);
        }
    }

    /// `PUBSUB NUMSUB channel` (`SHARDNUMSUB` for `Publish::Shard`): how many
    /// connections listen (one per node), summed over a cluster's nodes.
    /// On a Redis Cluster a shard channel's count is asked of its slot's master only,
    /// where its subscribers are: asked of every node (the client's default for
    /// `SHARDNUMSUB`), replicas included, one node down (a replica of another shard)
    /// failed every count, and with it `fetchSockets`, acks and `serverSideEmit`.
    pub(crate) async fn numsub(&self, kind: Publish, channel: &str) -> Result<usize, ClusterError> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg(match kind {
            Publish::Classic => "NUMSUB",
            Publish::Shard => "SHARDNUMSUB",
        })
        .arg(channel);
        let reply: redis::Value = match (self.conn(), kind) {
            (Conn::Cluster(mut conn), Publish::Shard) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let slot = crate::redis_cluster::key_slot(channel.as_bytes());
                let master =
                    SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                let asked = conn
                    .route_command(cmd.clone(), RoutingInfo::SingleNode(master))
                    .await;
                match asked {
                    // None there: the command has no key, so a node that no longer
                    // serves the slot (resharded, and this connection not told yet)
                    // answers 0 rather than MOVED. Every node is asked then.
                    Ok(reply) if count_reply(&reply) == 0 => cmd.query_async(&mut conn).await,
                    other => other,
                }
            }
            (mut conn, _) => cmd.query_async(&mut conn).await,
        }
        .map_err(|e| ClusterError::Redis(e.to_string()))?;
        Ok(usize::try_from(count_reply(&reply)).unwrap_or(0))
    }

    /// How many connections listen on a [`Broker::route`]d channel.
    pub(crate) async fn route_listeners(&self, channel: &str) -> Result<usize, ClusterError> {
        let kind = if self.own_sharded {
            Publish::Shard
        } else {
            Publish::Classic
        };
        self.numsub(kind, channel).await
    }

    /// How many nodes serve a namespace, as an adapter reports it: the listeners of
    /// `channel`, one that every node serving the namespace subscribes to.
    pub(crate) async fn server_count(
        &self,
        kind: Publish,
        channel: &str,
    ) -> Result<usize, AdapterError> {
        // This node counts as one of the listeners only while its subscriber is up;
        // while it is down no answer can reach it either, and a count of the others
        // alone made a request complete on fewer answers than the cluster owes.
        if !self.subscribed() {
            return Err(AdapterError::Unavailable(
                "this node's subscriber connection is down".to_owned(),
            ));
        }
        let count = self
            .numsub(kind, channel)
            .await
            .map_err(|e| AdapterError::Unavailable(e.to_string()))?;
        Ok(count.max(1))
    }
}

/// Subscription changes a subscriber sends in one turn of its loop before it goes back
/// to delivering messages (the rest are taken in the next turns).
const CHANGES_PER_TURN: usize = 64;

/// Keeps the subscriber connection up; every message goes to `on_message`. Over plain
/// TCP or a Unix socket the connection is the subscriber's own ([`SubConn`]); with TLS
/// it is the `redis` crate's pub/sub connection.
async fn subscriber(
    target: Arc<Target>,
    wanted: Arc<Wanted>,
    on_message: MessageHandler,
    link: Link,
    shutdown: Shutdown,
) {
    let mut moved = target.moved();
    let mut sub = Subscriber {
        wanted,
        on_message,
        link,
        shutdown,
        connected_once: false,
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        if sub.shutdown.is_triggered() || sub.wanted.is_closed() {
            return;
        }
        moved.borrow_and_update();
        let Some(client) = target.current().client else {
            return;
        };
        let served = match Plain::of(&client) {
            Some(plain) => sub.serve_plain(&plain, &mut moved).await,
            None => sub.serve_pubsub(&client, &mut moved).await,
        };
        sub.link.set(false);
        match served {
            Served::Done => return,
            Served::Lost { was_up } => {
                if was_up {
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!("redis subscriber connection lost; reconnecting");
            }
            Served::Failed(ClusterError::Auth(why)) => tracing::error!(
                error = why,
                retry_in = ?backoff,
                "redis refused the credentials of cluster.redis_url"
            ),
            Served::Failed(err) => {
                tracing::warn!(error = %err, retry_in = ?backoff, "redis unreachable");
            }
        }
        tokio::select! {
            () = sub.shutdown.wait() => return,
            () = tokio::time::sleep(jitter(backoff)) => {}
            // A master found (Sentinel): try it now.
            _ = moved.changed() => backoff = MIN_BACKOFF,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// How one subscriber connection ended.
enum Served {
    /// Shut down, or the broker is gone.
    Done,
    /// The connection dropped, failed a subscription change, or the master moved.
    /// `was_up`: it had been subscribed to everything held.
    Lost { was_up: bool },
    /// No connection.
    Failed(ClusterError),
}

/// The classic subscriber's state across its connections.
struct Subscriber {
    /// What every new connection subscribes to, and the changes since.
    wanted: Arc<Wanted>,
    on_message: MessageHandler,
    link: Link,
    shutdown: Shutdown,
    /// A connection was up before (the next one up is a reconnect).
    connected_once: bool,
}

impl Subscriber {
    /// A connection subscribed to everything held: the node hears the cluster.
    fn up(&mut self) {
        if self.connected_once {
            self.link.health.reconnects.fetch_add(1, Ordering::Relaxed);
            tracing::info!("redis subscriber reconnected and resubscribed");
        }
        self.connected_once = true;
        self.link.set(true);
    }

    /// One connection of the subscriber's own ([`SubConn`]) to `plain`, until it ends.
    async fn serve_plain(&mut self, plain: &Plain, moved: &mut watch::Receiver<u64>) -> Served {
        let mut conn = tokio::select! {
            () = self.shutdown.wait() => return Served::Done,
            conn = SubConn::connect(plain, Duration::from_secs(2)) => match conn {
                Ok(conn) => conn,
                Err(err) => return Served::Failed(sub_error(err)),
            },
        };
        // What is held now: changes made while no connection was up are in it, and
        // nothing given back meanwhile.
        let held = self.wanted.snapshot();
        for sub in &held {
            conn.queue(Change::Subscribe, sub);
        }
        let mut applied = Applied::all(&held);
        let health = self.link.health.clone();
        let on_message = self.on_message.clone();
        let mut deliver = |channel: &str, payload: Bytes| {
            health.received.fetch_add(1, Ordering::Relaxed);
            on_message(channel, payload);
        };
        // Subscribed to everything held before the node says it hears the cluster.
        let subscribed = async {
            conn.flush().await?;
            while conn.unconfirmed() > 0 {
                conn.fill().await?;
                conn.dispatch(&mut deliver)?;
            }
            Ok::<(), SubError>(())
        };
        match tokio::time::timeout(SUBSCRIBER_TIMEOUT, subscribed).await {
            Ok(Ok(())) => {}
            // `NOAUTH`: the URL has no credentials and Redis wants some.
            Ok(Err(SubError::Auth(why))) => return Served::Failed(ClusterError::Auth(why)),
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "redis subscriber could not subscribe");
                return Served::Lost { was_up: false };
            }
            Err(_) => {
                tracing::warn!(timeout = ?SUBSCRIBER_TIMEOUT, "redis subscriber got no confirmation");
                return Served::Lost { was_up: false };
            }
        }
        self.up();
        loop {
            tokio::select! {
                () = self.shutdown.wait() => return Served::Done,
                // The master moved (Sentinel): subscribe there.
                _ = moved.changed() => return Served::Lost { was_up: true },
                // Recorded before it is sent: if sending fails, the reconnect applies
                // it (subscribes, or leaves out).
                () = self.wanted.changed() => {
                    if self.wanted.is_closed() {
                        return Served::Done;
                    }
                    let changes = self.wanted.take(CHANGES_PER_TURN);
                    for (sub, held) in &changes {
                        if let Some(change) = applied.command(sub, *held) {
                            conn.queue(change, sub);
                        }
                    }
                    let sent = conn.flush().await;
                    self.wanted.done(changes.len());
                    if let Err(err) = sent {
                        tracing::warn!(error = %err, "subscription change failed");
                        return Served::Lost { was_up: true };
                    }
                }
                read = conn.fill() => {
                    if let Err(err) = read.and_then(|()| conn.dispatch(&mut deliver).map(drop)) {
                        tracing::debug!(error = %err, "redis subscriber connection ended");
                        return Served::Lost { was_up: true };
                    }
                }
            }
        }
    }

    /// One `redis` crate pub/sub connection (TLS) to `client`, until it ends.
    async fn serve_pubsub(
        &mut self,
        client: &redis::Client,
        moved: &mut watch::Receiver<u64>,
    ) -> Served {
        let pubsub = match client.get_async_pubsub().await {
            Ok(pubsub) => pubsub,
            Err(err) => return Served::Failed(classify(&err)),
        };
        let (mut sink, mut stream) = pubsub.split();
        let held = self.wanted.snapshot();
        for sub in &held {
            if !apply(&mut sink, Change::Subscribe, sub).await {
                return Served::Lost { was_up: false };
            }
        }
        let mut applied = Applied::all(&held);
        self.up();
        let health = self.link.health.clone();
        loop {
            tokio::select! {
                () = self.shutdown.wait() => return Served::Done,
                // The master moved (Sentinel): subscribe there.
                _ = moved.changed() => return Served::Lost { was_up: true },
                // Recorded before it is sent: if sending fails, the reconnect applies
                // it (subscribes, or leaves out).
                () = self.wanted.changed() => {
                    if self.wanted.is_closed() {
                        return Served::Done;
                    }
                    let changes = self.wanted.take(CHANGES_PER_TURN);
                    let mut sent = true;
                    for (sub, held) in &changes {
                        if let Some(change) = applied.command(sub, *held) {
                            sent = apply(&mut sink, change, sub).await;
                            if !sent {
                                break;
                            }
                        }
                    }
                    self.wanted.done(changes.len());
                    if !sent {
                        return Served::Lost { was_up: true };
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else {
                        return Served::Lost { was_up: true };
                    };
                    health.received.fetch_add(1, Ordering::Relaxed);
                    let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                    (self.on_message)(msg.get_channel_name(), payload);
                }
            }
        }
    }
}

/// What a failed connection of the subscriber's own means, as the node reports it.
fn sub_error(err: SubError) -> ClusterError {
    match err {
        SubError::Auth(why) => ClusterError::Auth(why),
        other => ClusterError::Redis(other.to_string()),
    }
}

/// A subscriber connection with RESP3 pushes: to one server, or to a Redis Cluster.
/// A clone is a handle on the same connection (commands are pipelined on it).
#[derive(Clone)]
enum PushConn {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl PushConn {
    /// Connects, with pushes (messages, and `Disconnection` when a connection drops)
    /// going to `push`.
    async fn open(
        target: &Target,
        push: mpsc::UnboundedSender<redis::PushInfo>,
    ) -> redis::RedisResult<PushConn> {
        if let Some(url) = &target.cluster {
            let client = url
                .client(&target.config, SUBSCRIBER_TIMEOUT, Some(push))
                .map_err(|e| {
                    redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "cluster client",
                        e.to_string(),
                    ))
                })?;
            return Ok(PushConn::Cluster(client.get_async_connection().await?));
        }
        let Some(client) = target.current().client else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "no server",
            )));
        };
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(SUBSCRIBER_TIMEOUT))
            .set_push_sender(push);
        Ok(PushConn::Single(
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await?,
        ))
    }

    /// Sends one subscription change.
    async fn apply(&mut self, change: Change, sub: &Sub) -> redis::RedisResult<()> {
        match self {
            PushConn::Cluster(c) => match (change, sub) {
                (Change::Subscribe, Sub::Channel(ch)) => c.subscribe(ch).await,
                (Change::Subscribe, Sub::Pattern(p)) => c.psubscribe(p).await,
                (Change::Subscribe, Sub::Shard(ch)) => c.ssubscribe(ch).await,
                (Change::Unsubscribe, Sub::Channel(ch)) => c.unsubscribe(ch).await,
                (Change::Unsubscribe, Sub::Pattern(p)) => c.punsubscribe(p).await,
                (Change::Unsubscribe, Sub::Shard(ch)) => c.sunsubscribe(ch).await,
            },
            PushConn::Single(c) => match (change, sub) {
                (Change::Subscribe, Sub::Channel(ch)) => c.subscribe(ch).await,
                (Change::Subscribe, Sub::Pattern(p)) => c.psubscribe(p).await,
                (Change::Unsubscribe, Sub::Channel(ch)) => c.unsubscribe(ch).await,
                (Change::Unsubscribe, Sub::Pattern(p)) => c.punsubscribe(p).await,
                // The connection has no method for these; a single channel is
                // confirmed by one push, which it takes as the reply.
                (Change::Subscribe, Sub::Shard(ch)) => {
                    redis::cmd("SSUBSCRIBE").arg(ch).exec_async(c).await
                }
                (Change::Unsubscribe, Sub::Shard(ch)) => {
                    redis::cmd("SUNSUBSCRIBE").arg(ch).exec_async(c).await
                }
            },
        }
    }

    /// Subscribes to each of `subs`, [`SUBSCRIBES_AT_ONCE`] in flight at a time (one
    /// round trip each, one after the other, took tens of seconds for tens of
    /// thousands of room channels); returns those that failed, the first error logged.
    async fn subscribe_each(&self, subs: Vec<Sub>) -> Vec<Sub> {
        use futures_util::StreamExt as _;
        let asked = subs.len();
        let results: Vec<(Sub, redis::RedisResult<()>)> = futures_util::stream::iter(subs)
            .map(|sub| {
                let mut conn = self.clone();
                async move {
                    let result = conn.apply(Change::Subscribe, &sub).await;
                    (sub, result)
                }
            })
            .buffer_unordered(SUBSCRIBES_AT_ONCE)
            .collect()
            .await;
        let mut failed = Vec::new();
        for (sub, result) in results {
            if let Err(err) = result {
                if failed.is_empty() {
                    tracing::warn!(error = %err, ?sub, asked, "subscriptions failed");
                }
                failed.push(sub);
            }
        }
        if failed.len() > 1 {
            tracing::warn!(
                failed = failed.len(),
                asked,
                "subscriptions failed; trying them again"
            );
        }
        failed
    }
}

/// A round of tries of a push subscriber's missing subscriptions: those tried, and
/// those that failed again.
type Round = std::pin::Pin<Box<dyn std::future::Future<Output = (Vec<Sub>, Vec<Sub>)> + Send>>;

/// Subscriptions a RESP3 subscriber has in flight at once when it subscribes anew.
const SUBSCRIBES_AT_ONCE: usize = 64;

/// Rounds of trying failed subscriptions again on one connection before it is made
/// anew from the current topology (a master that died is named by the connection's
/// slot map until a replica takes over; one made anew asks the cluster again).
const MISSING_ROUNDS: u32 = 4;

/// The bytes of a string reply.
fn bytes_of(v: &redis::Value) -> Option<&[u8]> {
    match v {
        redis::Value::BulkString(b) => Some(b.as_slice()),
        redis::Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A pushed message as `(channel, payload)`; `None` for other pushes.
fn pushed_message(push: &redis::PushInfo) -> Option<(&[u8], &[u8])> {
    let bytes = bytes_of;
    match push.kind {
        redis::PushKind::Message | redis::PushKind::SMessage => {
            Some((bytes(push.data.first()?)?, bytes(push.data.get(1)?)?))
        }
        redis::PushKind::PMessage => Some((bytes(push.data.get(1)?)?, bytes(push.data.get(2)?)?)),
        _ => None,
    }
}

/// The subscriber on RESP3 pushes (a Redis Cluster, or shard channels): like
/// [`subscriber`], but any dropped connection (a master killed, a failover, a
/// replica restarted: the connection cannot tell which) makes the whole connection
/// again, from the cluster's current slot map, and subscribes again to everything
/// held, many at once. Subscriptions that fail (those of a master that died, until a
/// replica takes over) do not hold up the others: they are tried again on the same
/// connection with a backoff, the node not ready meanwhile, and after
/// [`MISSING_ROUNDS`] the connection is made anew. A shard channel Redis takes back
/// because its slot moved is subscribed again where it lives now.
async fn push_subscriber(
    target: Arc<Target>,
    wanted: Arc<Wanted>,
    on_message: MessageHandler,
    link: Link,
    shutdown: Shutdown,
) {
    let health = link.health.clone();
    let mut backoff = MIN_BACKOFF;
    let mut connected_once = false;
    let mut moved = target.moved();
    loop {
        if shutdown.is_triggered() || wanted.is_closed() {
            return;
        }
        moved.borrow_and_update();
        let (push_tx, mut push_rx) = mpsc::unbounded_channel();
        let opened = tokio::select! {
            () = shutdown.wait() => {
                link.set(false);
                return;
            }
            opened = async {
                let conn = PushConn::open(&target, push_tx).await?;
                let held = wanted.snapshot();
                let failed = conn.subscribe_each(held.clone()).await;
                Ok::<_, redis::RedisError>((conn, held, failed))
            } => opened,
        };
        match opened {
            // Nothing held could be subscribed: as good as no connection.
            Ok((_, held, failed)) if !held.is_empty() && failed.len() == held.len() => {
                link.set(false);
            }
            Ok((mut conn, held, failed)) => {
                let mut applied = Applied::all(&held);
                for sub in &failed {
                    applied.failed(Change::Subscribe, sub);
                }
                if connected_once {
                    health.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("redis subscriber reconnected and resubscribed");
                }
                connected_once = true;
                backoff = MIN_BACKOFF;
                link.set(applied.complete());
                let mut retry_in = MIN_BACKOFF;
                let mut rounds = 0;
                let retry = tokio::time::sleep(jitter(retry_in));
                tokio::pin!(retry);
                // A round of tries of the missing subscriptions, under way beside the
                // loop (each try may wait out the response timeout: awaited here, it
                // held up messages, changes and shutdown).
                let mut round: Option<Round> = None;
                loop {
                    tokio::select! {
                        () = shutdown.wait() => {
                            link.set(false);
                            return;
                        }
                        _ = moved.changed() => break,
                        () = &mut retry, if !applied.complete() && round.is_none() => {
                            rounds += 1;
                            if rounds > MISSING_ROUNDS {
                                tracing::warn!("subscriptions still failing; making the connection anew");
                                break;
                            }
                            let missing = applied.missing();
                            let conn = conn.clone();
                            round = Some(Box::pin(async move {
                                let failed = conn.subscribe_each(missing.clone()).await;
                                (missing, failed)
                            }));
                        }
                        (tried, failed) = async { round.as_mut().expect("a round under way").await }, if round.is_some() => {
                            round = None;
                            for sub in tried.iter().filter(|s| !failed.contains(s)) {
                                if !applied.subscribed(sub) {
                                    // Given back while it was tried: Redis has it now.
                                    if let Err(err) = conn.apply(Change::Unsubscribe, sub).await {
                                        tracing::warn!(error = %err, ?sub, "subscription change failed");
                                    }
                                }
                            }
                            link.set(applied.complete());
                            retry_in = (retry_in * 2).min(MAX_PUSH_BACKOFF);
                            retry.as_mut().reset(tokio::time::Instant::now() + jitter(retry_in));
                        }
                        () = wanted.changed() => {
                            if wanted.is_closed() {
                                return;
                            }
                            let was_complete = applied.complete();
                            let changes = wanted.take(CHANGES_PER_TURN);
                            for (sub, held) in &changes {
                                if let Some(change) = applied.command(sub, *held)
                                    && let Err(err) = conn.apply(change, sub).await
                                {
                                    tracing::warn!(error = %err, ?change, ?sub, "subscription change failed");
                                    applied.failed(change, sub);
                                }
                            }
                            wanted.done(changes.len());
                            if was_complete && !applied.complete() {
                                (retry_in, rounds) = (MIN_BACKOFF, 0);
                                retry.as_mut().reset(tokio::time::Instant::now() + jitter(retry_in));
                            }
                            link.set(applied.complete());
                        }
                        push = push_rx.recv() => match push {
                            Some(push) if push.kind == redis::PushKind::Disconnection => break,
                            Some(push) if push.kind == redis::PushKind::SUnsubscribe => {
                                let Some(channel) = push.data.first().and_then(bytes_of) else {
                                    continue;
                                };
                                let was_complete = applied.complete();
                                if applied.shard_dropped(&String::from_utf8_lossy(channel))
                                    == ShardDropped::Moved
                                {
                                    tracing::info!("a shard channel's slot moved; subscribing again");
                                    if was_complete {
                                        // At once: the first try goes where it lives now.
                                        (retry_in, rounds) = (MIN_BACKOFF, 0);
                                        retry.as_mut().reset(tokio::time::Instant::now());
                                    }
                                    link.set(false);
                                }
                            }
                            Some(push) => {
                                if let Some((channel, payload)) = pushed_message(&push) {
                                    health.received.fetch_add(1, Ordering::Relaxed);
                                    on_message(
                                        &String::from_utf8_lossy(channel),
                                        Bytes::copy_from_slice(payload),
                                    );
                                }
                            }
                            None => break,
                        },
                    }
                }
                link.set(false);
                tracing::warn!("redis subscriber connection lost; reconnecting");
            }
            Err(err) => {
                link.set(false);
                match classify(&err) {
                    ClusterError::Auth(why) => tracing::error!(
                        error = why,
                        retry_in = ?backoff,
                        "redis refused the credentials of cluster.redis_url"
                    ),
                    _ => tracing::warn!(error = %err, retry_in = ?backoff, "redis unreachable"),
                }
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(jitter(backoff)) => {}
            _ = moved.changed() => backoff = MIN_BACKOFF,
        }
        backoff = (backoff * 2).min(MAX_PUSH_BACKOFF);
    }
}

/// The count in a `PUBSUB NUMSUB`/`SHARDNUMSUB` reply for one channel, whatever its
/// shape (`[channel, n]`, a map, or a cluster's replies combined): every integer in it
/// is a count, channel names are strings.
fn count_reply(reply: &redis::Value) -> i64 {
    match reply {
        redis::Value::Int(n) => *n,
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().map(count_reply).sum()
        }
        redis::Value::Map(pairs) => pairs.iter().map(|(_, v)| count_reply(v)).sum(),
        _ => 0,
    }
}

/// The subscriber connection's state, in [`Health`] and as changes to watch.
struct Link {
    health: Arc<Health>,
    changes: watch::Sender<u64>,
}

impl Link {
    fn set(&self, up: bool) {
        if !up {
            self.health.trouble();
        }
        if self.health.subscribed.swap(up, Ordering::AcqRel) != up {
            self.changes.send_modify(|n| *n += 1);
        }
    }
}

/// Sends one subscription change; false when the connection failed.
async fn apply(sink: &mut redis::aio::PubSubSink, change: Change, sub: &Sub) -> bool {
    let result = match (change, sub) {
        (Change::Subscribe, Sub::Channel(c)) => sink.subscribe(c).await,
        (Change::Subscribe, Sub::Pattern(p)) => sink.psubscribe(p).await,
        (Change::Unsubscribe, Sub::Channel(c)) => sink.unsubscribe(c).await,
        (Change::Unsubscribe, Sub::Pattern(p)) => sink.punsubscribe(p).await,
        // Never held here: shard channels go to the push subscriber.
        (_, Sub::Shard(_)) => Ok(()),
    };
    if let Err(err) = &result {
        tracing::warn!(error = %err, ?change, ?sub, "subscription change failed");
    }
    result.is_ok()
}

/// Sends publishes in order, pipelining whatever has queued up.
async fn publisher(
    target: Arc<Target>,
    mut rx: mpsc::Receiver<(Publish, String, Bytes)>,
    health: Arc<Health>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let conn = target.conn();
        let mut pipes = SlotPipes::new(target.is_cluster());
        for (kind, channel, payload) in &batch {
            pipes
                .pipe(channel.as_bytes())
                .cmd(kind.command())
                .arg(channel)
                .arg(payload.as_ref())
                .ignore();
        }
        match pipes.query(&conn).await {
            Ok(_) => {
                health
                    .published
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                health.commands(true);
            }
            Err(err) => {
                health
                    .publish_errors
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                health.commands(false);
                tracing::warn!(error = %err, lost = batch.len(), "publish failed");
            }
        }
        batch.clear();
    }
}

/// Pings Redis every second so readiness follows the command connection too.
async fn prober(target: Arc<Target>, health: Arc<Health>, shutdown: Shutdown) {
    loop {
        let mut conn = target.conn();
        let ok = redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok();
        health.commands(ok);
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// `d` plus up to 20% random extra, so nodes do not reconnect in lockstep.
pub(crate) fn jitter(d: Duration) -> Duration {
    d + d.mul_f64(rand::random::<f64>() * 0.2)
}
