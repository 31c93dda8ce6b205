//! The server side of the official Socket.IO Admin UI (`@socket.io/admin-ui` 0.5): an
//! admin namespace speaking the protocol its UI expects, so the hosted UI or its
//! bundle watches and steers a Switchboard cluster with no Node server.
//!
//! - **Login**: `{username, password}` in the CONNECT `auth`, checked against a bcrypt
//!   hash (off the runtime's threads, at most [`LOGINS_PER_SECOND`] a second per node,
//!   so a password guesser cannot spend the node's CPU), answered with a `session`
//!   event whose id logs the UI in again after a reload (`{sessionId}`); anything else
//!   is refused with `invalid credentials`, as the package does. With a Redis adapter
//!   the sessions are kept in Redis as the package's `RedisStore` keeps them, so a
//!   reload that reaches another node stays logged in.
//! - **On connect**: `config` (the features: the commands unless `readonly`, the
//!   aggregated events, and in development mode every event), then in development
//!   mode `all_sockets`: the sockets of every namespace this node has, on every node
//!   (`fetchSockets`), up to [`LISTING_MAX_SOCKETS`] and [`LISTING_MAX_BYTES`].
//! - **Every 2 s**: `server_stats` of this node (id, host, pid, uptime, connections,
//!   polling connections, namespaces with their sockets, and what happened since the
//!   last one: connections, disconnections by reason, packets and bytes in and out),
//!   emitted to the admin namespace through the adapter, so a UI on any node sees
//!   every node.
//! - **Commands**: `emit`, `join`, `leave`, `_disconnect`, each on a namespace and an
//!   optional room filter, cluster-wide through the adapter; none in `readonly`, and
//!   never on a namespace this node does not have (a command cannot create one).
//! - **Live events** (development mode): `socket_connected`, `socket_updated` (a
//!   transport upgrade, `data` set), `socket_disconnected`, `room_joined`, `room_left`,
//!   `event_received`, `event_sent`, told by the engine's
//!   [`Observer`] seam and emitted to the admin namespace through the adapter. In
//!   production mode no observer is installed: the engine's paths pay nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchboard_engine::adapter::SocketsPage;
use switchboard_engine::bucket::TokenBucket;
use switchboard_engine::diagnosis::Category;
use switchboard_engine::metrics::MetricsSnapshot;
use switchboard_engine::protocol::Sid;
use switchboard_engine::protocol::engineio::TransportKind;
use switchboard_engine::protocol::socketio::is_reserved_event;
use switchboard_engine::sio::{BroadcastOperator, Observer};
use switchboard_engine::untrusted;
use switchboard_engine::{ConnectError, DisconnectReason, Event, Io, Namespace, Shutdown, Socket};

use switchboard_cluster::admin_sessions::{self, AdminSessions};

use crate::config::{AdminConfig, AdminMode};
use crate::http::Collector;
use crate::http::prometheus::Exposition;

/// Most rooms a UI's socket is joined to by `socketsJoin` from elsewhere: it needs none.
const ADMIN_MAX_ROOMS_PER_SOCKET: usize = 8;

/// How often each node sends its `server_stats` (the package's period).
const STATS_INTERVAL: Duration = Duration::from_secs(2);
/// How long a login session lasts (the package's Redis store default).
const SESSION_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most sessions a node keeps (the oldest go first): each login makes one.
const MAX_SESSIONS: usize = 10_000;
/// Password checks a node runs per second at most (bcrypt costs ~50–100 ms of CPU at
/// cost 10); attempts beyond it are refused without checking.
pub(crate) const LOGINS_PER_SECOND: f64 = 5.0;
/// See [`LOGINS_PER_SECOND`].
const LOGIN_BURST: f64 = 10.0;
/// Session ids a node looks up in Redis per second at most (`EXISTS`): an unknown id
/// costs no password check, so without it anyone could send the node's Redis
/// connection, which real clients' recoveries share, one lookup per CONNECT. Past it
/// an id this node did not hand out is refused unchecked (the UI logs in again).
pub(crate) const SESSION_LOOKUPS_PER_SECOND: f64 = 50.0;
/// See [`SESSION_LOOKUPS_PER_SECOND`].
const SESSION_LOOKUP_BURST: f64 = 100.0;
/// How long a session id made at login waits for its socket's connection handler
/// (which hands it out) before it is forgotten: the connection may close first.
const FRESH_TTL: Duration = Duration::from_secs(30);
/// The message the UI shows for a refused login (the package's).
const INVALID_CREDENTIALS: &str = "invalid credentials";
/// Longest username or password read from a CONNECT (bcrypt reads 72 bytes).
const MAX_CREDENTIAL: usize = 256;

/// The features the UI enables (the package's `Feature` names).
fn features(config: &AdminConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !config.readonly {
        out.extend([
            "EMIT",
            "JOIN",
            "LEAVE",
            "DISCONNECT",
            "MJOIN",
            "MLEAVE",
            "MDISCONNECT",
        ]);
    }
    out.push("AGGREGATED_EVENTS");
    if config.mode == AdminMode::Development {
        out.push("ALL_EVENTS");
    }
    out
}

/// Login sessions: ids the `session` event handed out, with when they expire; with a
/// Redis adapter also in Redis (the package's `RedisStore` keys), so any node knows
/// them.
#[derive(Debug)]
struct Sessions {
    ids: Mutex<HashMap<String, Instant>>,
    redis: Option<AdminSessions>,
    /// What this node's sessions hold in Redis: the marker of its credentials.
    marker: String,
    /// Whether a Node server's session (`true`) logs in too
    /// (`admin.accept_node_sessions`).
    node_sessions: bool,
    /// Lookups in Redis ([`SESSION_LOOKUPS_PER_SECOND`]).
    lookups: TokenBucket,
}

/// How long a login waits for Redis before it goes on without it.
const REDIS_WAIT: Duration = Duration::from_secs(2);

impl Sessions {
    fn new(redis: Option<AdminSessions>, marker: String, now: Instant) -> Self {
        Sessions {
            ids: Mutex::default(),
            redis,
            marker,
            node_sessions: false,
            lookups: TokenBucket::new(SESSION_LOOKUPS_PER_SECOND, SESSION_LOOKUP_BURST, now),
        }
    }

    fn contains(&self, id: &str, now: Instant) -> bool {
        let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.get(id).is_some_and(|expires| *expires > now)
    }

    /// Whether `id` is a session of this node or, with Redis, of any node.
    async fn known(&self, id: &str, now: Instant) -> bool {
        if self.contains(id, now) {
            return true;
        }
        let Some(redis) = &self.redis else {
            return false;
        };
        if !self.lookups.take(now) {
            tracing::debug!("admin: session lookups past their rate; refused unchecked");
            return false;
        }
        match tokio::time::timeout(
            REDIS_WAIT,
            redis.holds(id, &self.marker, self.node_sessions),
        )
        .await
        {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "admin: session not checked in Redis");
                false
            }
            Err(_) => false,
        }
    }

    /// A new session, kept here and, with Redis, there too (this node knows it
    /// whatever Redis answers).
    async fn open(&self, now: Instant) -> String {
        let id = self.create(now);
        if let Some(redis) = &self.redis {
            let save = redis.save(&id, SESSION_TTL, &self.marker);
            match tokio::time::timeout(REDIS_WAIT, save).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "admin: session not saved in Redis"),
                Err(_) => tracing::warn!("admin: session not saved in Redis (timeout)"),
            }
        }
        id
    }

    fn create(&self, now: Instant) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.retain(|_, expires| *expires > now);
        if ids.len() >= MAX_SESSIONS
            && let Some(oldest) = ids.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone())
        {
            ids.remove(&oldest);
        }
        ids.insert(id.clone(), now + SESSION_TTL);
        id
    }
}

/// How long a password check waits for the one under way before it is refused.
const TURN_WAIT: Duration = Duration::from_secs(1);

/// Password checks: at most [`LOGINS_PER_SECOND`] (in bursts of [`LOGIN_BURST`]), and
/// one at a time (a check waits up to [`TURN_WAIT`] for its turn). The rate alone lets
/// checks pile up on the blocking threads when each takes longer than the rate's
/// interval (a bcrypt cost above 12).
#[derive(Debug)]
struct PasswordChecks {
    rate: TokenBucket,
    running: tokio::sync::Semaphore,
}

impl PasswordChecks {
    fn new(now: Instant) -> Self {
        PasswordChecks {
            rate: TokenBucket::new(LOGINS_PER_SECOND, LOGIN_BURST, now),
            running: tokio::sync::Semaphore::new(1),
        }
    }

    /// Whether `password` matches `hash`; `None`, unchecked, while another check runs
    /// or past the rate. The clock is read here, after whatever the caller awaited
    /// (a session lookup in Redis may have waited seconds).
    async fn verify(&self, password: String, hash: String) -> Option<bool> {
        // Two people logging in at once: the second waits for the first's check (tens
        // of milliseconds), not for a guesser's whole run.
        let _turn = tokio::time::timeout(TURN_WAIT, self.running.acquire())
            .await
            .ok()?
            .ok()?;
        if !self.rate.take(Instant::now()) {
            return None;
        }
        let matches = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        Some(matches)
    }
}

/// The admin namespace's shared state.
struct Admin {
    config: AdminConfig,
    io: Io,
    sessions: Sessions,
    passwords: PasswordChecks,
    /// Session ids made at login, handed to the socket once it is connected, with
    /// when they were made (forgotten after [`FRESH_TTL`]).
    fresh: Mutex<HashMap<Sid, (String, Instant)>>,
    /// The last list of every socket (development mode), shared by the UIs that
    /// connected before it began.
    listing: Listing<Vec<Value>>,
}

/// One computation at a time of a value every caller wants as it is *after* they
/// asked (a list of every socket in the cluster, for each UI that connects): a caller
/// takes the last value if it began after the caller asked, and otherwise computes a
/// new one while the others wait. A burst of callers costs at most two computations,
/// and none runs beside another.
struct Listing<T> {
    last: tokio::sync::Mutex<Option<(Instant, Arc<T>)>>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Listing {
            last: tokio::sync::Mutex::new(None),
        }
    }
}

impl<T> Listing<T> {
    /// A value begun after `asked`: the last one, or one `compute` makes now.
    async fn get<F: Future<Output = T>>(
        &self,
        asked: Instant,
        compute: impl FnOnce() -> F,
    ) -> Arc<T> {
        let mut last = self.last.lock().await;
        if let Some((began, value)) = &*last
            && *began >= asked
        {
            return value.clone();
        }
        let began = Instant::now();
        let value = Arc::new(compute().await);
        *last = Some((began, value.clone()));
        value
    }
}

/// What the Admin UI's support adds to `/metrics` (development mode).
#[derive(Debug, Default)]
pub(crate) struct AdminMetrics {
    /// Live events dropped because the queue ([`LIVE_QUEUE`]) was full.
    live_dropped: AtomicU64,
}

impl Collector for AdminMetrics {
    fn render(&self, out: &mut Exposition) {
        out.counter(
            "switchboard_admin_live_dropped_total",
            "Live events for the Admin UI (development mode) dropped because its queue of 10,000 was full.",
            self.live_dropped.load(Ordering::Relaxed),
        );
    }
}

/// Installs the admin namespace on `io` (when `[admin] enabled`) and starts this
/// node's stats until `shutdown`; login sessions are kept in `redis` too when given.
/// The arguments of `private_events` (token refreshes) are never shown. In
/// development mode, returns the metrics of the live events.
pub(crate) fn install(
    io: &Io,
    config: &AdminConfig,
    private_events: HashSet<String>,
    redis: Option<AdminSessions>,
    shutdown: &Shutdown,
) -> Option<Arc<AdminMetrics>> {
    if !config.enabled {
        return None;
    }
    if config.login.is_none() {
        tracing::warn!(namespace = %config.namespace, "the Admin UI is open: [admin] auth = false");
    }
    let admin = Arc::new(Admin {
        config: config.clone(),
        io: io.clone(),
        sessions: Sessions {
            node_sessions: config.accept_node_sessions,
            ..Sessions::new(
                redis,
                config.login.as_ref().map_or_else(String::new, |login| {
                    admin_sessions::marker(&login.username, &login.password_hash)
                }),
                Instant::now(),
            )
        },
        passwords: PasswordChecks::new(Instant::now()),
        fresh: Mutex::default(),
        listing: Listing::default(),
    });
    // Every connection passes the login: no session of this namespace is kept for
    // recovery (a resumed one would skip it, and one in Redis is anyone's to write).
    let ns = io.of_without_recovery(&config.namespace);
    // The UI's sockets are in no room but their own; a join another node asks for
    // (anyone's who can publish on Redis) gets them into at most this many.
    ns.handlers()
        .set_max_rooms_per_socket(ADMIN_MAX_ROOMS_PER_SOCKET);
    let a = admin.clone();
    ns.use_middleware(move |socket| {
        let a = a.clone();
        async move {
            // The UI speaks Socket.IO; an event stream of the admin namespace would be
            // a second way in, outside the rules' `sse` switch.
            if socket.transport() == TransportKind::Sse {
                return Err(
                    ConnectError::new("Server-Sent Events are off for this namespace")
                        .with_data(json!({ "code": "sse_disabled" })),
                );
            }
            a.login(&socket).await
        }
    });
    let a = admin.clone();
    ns.on_connection(move |socket| a.connected(socket));
    let mut metrics = None;
    if config.mode == AdminMode::Development {
        let live = Arc::new(AdminMetrics::default());
        metrics = Some(live.clone());
        let watcher = Arc::new(Watcher::start(
            ns.clone(),
            config.namespace.clone(),
            private_events,
            live,
        ));
        if !io.observe(watcher) {
            tracing::warn!(
                "another observer watches the sockets: the Admin UI gets no live events"
            );
        }
    }
    if !config.readonly {
        for command in ["emit", "join", "leave", "_disconnect"] {
            let a = admin.clone();
            ns.on(command, move |event| a.command(event));
        }
    }
    tokio::spawn(stats(admin, ns, shutdown.clone()));
    tracing::info!(namespace = %config.namespace, "Socket.IO Admin UI served");
    metrics
}

impl Admin {
    /// The login middleware.
    async fn login(&self, socket: &Arc<Socket>) -> Result<(), ConnectError> {
        let Some(login) = &self.config.login else {
            return Ok(());
        };
        let refused = || ConnectError::new(INVALID_CREDENTIALS).with_category(Category::Auth);
        let auth = socket.auth();
        let text = |key: &str| {
            auth.get(key)
                .and_then(Value::as_str)
                .filter(|s| s.len() <= MAX_CREDENTIAL)
                .map(str::to_owned)
        };
        let now = Instant::now();
        if let Some(id) = text("sessionId")
            && self.sessions.known(&id, now).await
        {
            return Ok(());
        }
        let (Some(username), Some(password)) = (text("username"), text("password")) else {
            return Err(refused());
        };
        // Both checked, the name in constant time, whatever either says: a wrong name
        // refused before the password's check (unrated, at once) told a guesser the
        // name by the answer's speed.
        let user = switchboard_auth::ApiKeys::new([login.username.as_bytes()])
            .find(username.as_bytes())
            .is_some();
        let hash = login.password_hash.clone();
        let password = self.passwords.verify(password, hash).await == Some(true);
        if !(user && password) {
            return Err(refused());
        }
        let now = Instant::now();
        let id = self.sessions.open(now).await;
        let mut fresh = self.fresh.lock().unwrap_or_else(|e| e.into_inner());
        // Ids whose connection closed before its handler ran are never taken.
        fresh.retain(|_, (_, made)| now.saturating_duration_since(*made) < FRESH_TTL);
        fresh.insert(socket.id(), (id, now));
        Ok(())
    }

    /// A UI connected: its session id (after a password login), `config`, and in
    /// development mode every socket.
    fn connected(self: &Arc<Self>, socket: &Arc<Socket>) {
        let fresh = self
            .fresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&socket.id());
        if let Some((id, _)) = fresh {
            let _ = socket.emit("session", json!(id));
        }
        let _ = socket.emit(
            "config",
            json!({ "supportedFeatures": features(&self.config) }),
        );
        if self.config.mode == AdminMode::Development {
            let (a, socket, asked) = (self.clone(), socket.clone(), Instant::now());
            tokio::spawn(async move {
                // One listing at a time, shared by the UIs that connected before it
                // began: each is a request to every node for every namespace's sockets.
                let sockets = a.listing.get(asked, || a.all_sockets()).await;
                if socket.connected() {
                    let _ = socket.emit("all_sockets", Value::Array(sockets.to_vec()));
                }
            });
        }
    }

    /// The sockets of every namespace this node has, on every node, as the UI reads
    /// them: by namespace, then by id, up to [`LISTING_MAX_SOCKETS`] and
    /// [`LISTING_MAX_BYTES`]. Each node is asked for at most that many, so no answer
    /// passes what a node reads from Redis, and the list is one frame the UI's queue
    /// takes (a larger one closed the UI as a slow consumer on every connect). Sockets
    /// past the bounds are not listed; the UI still hears of each that changes.
    async fn all_sockets(&self) -> Vec<Value> {
        // A quarter of the UI's outbound queue at most, as at the default bound.
        let max_bytes = LISTING_MAX_BYTES.min(self.io.engine().config().queue.max_bytes / 4);
        let mut out = Vec::new();
        let mut bytes = 0;
        let mut complete = true;
        let until = Instant::now() + LISTING_DEADLINE;
        'namespaces: for ns in shown_namespaces(&self.io) {
            if Instant::now() >= until {
                complete = false;
                break;
            }
            let left = LISTING_MAX_SOCKETS - out.len();
            // One more than fits, to know whether any was left out.
            let page = SocketsPage {
                after: None,
                limit: Some(left + 1),
                brief: false,
            };
            let asked =
                tokio::time::timeout_at(until.into(), ns.all().fetch_sockets_page(&page)).await;
            let sockets = match asked {
                Ok(Ok(sockets)) => sockets,
                Err(_) => {
                    complete = false;
                    break;
                }
                Ok(Err(err)) => {
                    tracing::debug!(namespace = %ns.name(), error = %err, "admin: sockets not listed");
                    continue;
                }
            };
            for s in sockets {
                let mut socket = serialize(&s, ns.name());
                // A socket of this node listed before the watcher marked it (its own
                // connection, say, racing the UI's): the mark is computed here, as
                // Node's `instrument()` has marked it before anyone can list it.
                if socket["clientId"].is_null()
                    && let Some(local) = s.id.parse().ok().and_then(|sid| ns.socket(sid))
                {
                    socket["clientId"] = json!(client_id(&local));
                    socket["transport"] = json!(local.transport().as_str());
                }
                let size = (out.len() < LISTING_MAX_SOCKETS)
                    .then(|| json_len_within(&socket, max_bytes - bytes))
                    .flatten();
                let Some(size) = size else {
                    complete = false;
                    break 'namespaces;
                };
                bytes += size;
                out.push(socket);
            }
        }
        if !complete {
            tracing::info!(
                listed = out.len(),
                bytes,
                "admin: the UI's list of sockets is cut at {LISTING_MAX_SOCKETS} sockets, {max_bytes} bytes or {LISTING_DEADLINE:?}"
            );
        }
        out
    }

    /// `emit`, `join`, `leave` or `_disconnect` from the UI.
    fn command(&self, event: Event) {
        let args = &event.payload.args;
        let text = |i: usize| args.get(i).and_then(Value::as_str);
        let Some(ns) = text(0).and_then(|name| self.io.namespace(name)) else {
            return;
        };
        let (room, filter) = match event.name.as_str() {
            "emit" => (None, text(1)),
            "_disconnect" => (None, text(2)),
            _ => (text(1), text(2)),
        };
        let target = targets(&ns, filter);
        tracing::info!(command = %event.name, namespace = %ns.name(), "admin command");
        match event.name.as_str() {
            "emit" => {
                let Some(name) = text(2).filter(|n| !is_reserved_event(n)) else {
                    return;
                };
                target.emit(name, args[3..].to_vec());
            }
            "join" => {
                if let Some(room) = room {
                    target.sockets_join(&[room]);
                }
            }
            "leave" => {
                if let Some(room) = room {
                    target.sockets_leave(room);
                }
            }
            "_disconnect" => {
                let close = args.get(1).and_then(Value::as_bool).unwrap_or(false);
                target.disconnect_sockets(close);
            }
            _ => {}
        }
    }
}

/// Development mode's live events: what sockets do on this node, emitted to the admin
/// namespace through the adapter (so every node's UI hears it), as the package's
/// verbose listeners emit them. Events of the admin namespace itself are not told.
///
/// The engine tells from wherever it happens, sometimes under a namespace's locks (a
/// socket registers under its recovery buffer's); emitting from there could take the
/// same lock again. So the watcher only queues, in order, and one task emits: at most
/// [`LIVE_QUEUE`] waiting (what comes beyond is dropped and counted in the log).
struct Watcher {
    name: String,
    queue: tokio::sync::mpsc::Sender<Live>,
    /// Events whose arguments are shown as [`REDACTED`] (token refreshes).
    private_events: HashSet<String>,
    metrics: Arc<AdminMetrics>,
}

/// What the UI is shown instead of a private event's arguments.
const REDACTED: &str = "[redacted]";

/// Live events waiting to be emitted, at most.
const LIVE_QUEUE: usize = 10_000;

/// One live event: a connected socket (serialized when emitted, outside the engine's
/// locks) or an event with its arguments.
enum Live {
    Connected(Arc<Socket>, Value),
    Told(&'static str, Vec<Value>),
}

impl Watcher {
    fn start(
        admin: Arc<Namespace>,
        name: String,
        private_events: HashSet<String>,
        metrics: Arc<AdminMetrics>,
    ) -> Watcher {
        let (queue, mut rx) = tokio::sync::mpsc::channel(LIVE_QUEUE);
        tokio::spawn(async move {
            while let Some(live) = rx.recv().await {
                match live {
                    Live::Connected(socket, at) => {
                        mark_client(&socket);
                        let info = serialize(&socket.info(), socket.namespace());
                        admin.emit("socket_connected", vec![info, at]);
                    }
                    Live::Told(event, args) => {
                        admin.emit(event, args);
                    }
                }
            }
        });
        Watcher {
            name,
            queue,
            private_events,
            metrics,
        }
    }

    fn send(&self, live: Live) {
        if self.queue.try_send(live).is_err() {
            self.metrics.live_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("admin: live event dropped (the queue is full)");
        }
    }

    fn tell(&self, event: &'static str, args: Vec<Value>) {
        self.send(Live::Told(event, args));
    }

    fn own(&self, nsp: &str) -> bool {
        nsp == self.name
    }

    /// The arguments of event `name` as the UI is shown them.
    fn shown<'a>(&self, name: &str, args: &'a [Value]) -> std::borrow::Cow<'a, [Value]> {
        if self.private_events.contains(name) {
            std::borrow::Cow::Owned(vec![json!(REDACTED)])
        } else {
            std::borrow::Cow::Borrowed(args)
        }
    }
}

impl Observer for Watcher {
    fn connected(&self, socket: &Arc<Socket>) {
        self.send(Live::Connected(socket.clone(), now_iso()));
    }

    fn disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        let args = vec![
            json!(socket.namespace()),
            json!(socket.id().as_str()),
            json!(reason.as_str()),
            now_iso(),
        ];
        self.tell("socket_disconnected", args);
    }

    fn upgraded(&self, socket: &Socket, transport: TransportKind) {
        let update = json!({
            "id": socket.id().as_str(),
            "nsp": socket.namespace(),
            "transport": transport.as_str(),
        });
        self.tell("socket_updated", vec![update]);
    }

    fn data_changed(&self, socket: &Socket) {
        let mut data = socket.data();
        if let Some(d) = data.as_object_mut() {
            d.remove("_admin");
        }
        let update = json!({
            "id": socket.id().as_str(),
            "nsp": socket.namespace(),
            "data": if data.is_null() { json!({}) } else { data },
        });
        self.tell("socket_updated", vec![update]);
    }

    // Room names are cut as event names are: one join names one room for every
    // socket it joins (an Admin UI's `join`, another node's `socketsJoin`), so a name
    // of a megabyte shown whole was a megabyte per socket in the live-event queue.
    fn joined(&self, nsp: &str, room: &str, id: Sid) {
        let room = untrusted::cut(room, MAX_SHOWN_NAME);
        self.tell(
            "room_joined",
            vec![json!(nsp), json!(room), json!(id.as_str()), now_iso()],
        );
    }

    fn left(&self, nsp: &str, room: &str, id: Sid) {
        let room = untrusted::cut(room, MAX_SHOWN_NAME);
        self.tell(
            "room_left",
            vec![json!(nsp), json!(room), json!(id.as_str()), now_iso()],
        );
    }

    fn event_received(&self, socket: &Socket, name: &str, args: &[Value]) {
        if self.own(socket.namespace()) {
            return;
        }
        self.tell(
            "event_received",
            event_args(socket, name, &self.shown(name, args)),
        );
    }

    fn event_sent(&self, socket: &Socket, name: &str, args: &[Value]) {
        if self.own(socket.namespace()) {
            return;
        }
        self.tell(
            "event_sent",
            event_args(socket, name, &self.shown(name, args)),
        );
    }
}

/// `(nsp, id, [name, ...args], date)`, as the package's `onAny` listeners send them.
/// An event longer than [`MAX_SHOWN_ARGS`] as JSON (its name and arguments) is shown
/// as its name, cut to [`MAX_SHOWN_NAME`] bytes, and one string saying so: each live
/// event waits in the queue and crosses Redis, and a client's events (the name is the
/// client's too) may be up to `engine.max_payload` each.
fn event_args(socket: &Socket, name: &str, args: &[Value]) -> Vec<Value> {
    let mut all = Vec::with_capacity(args.len() + 1);
    if json_fits(&(name, args), MAX_SHOWN_ARGS) {
        all.push(json!(name));
        all.extend_from_slice(args);
    } else {
        all.push(json!(untrusted::cut(name, MAX_SHOWN_NAME)));
        all.push(json!(format!("[over {MAX_SHOWN_ARGS} bytes: not shown]")));
    }
    vec![
        json!(socket.namespace()),
        json!(socket.id().as_str()),
        Value::Array(all),
        now_iso(),
    ]
}

/// Most sockets `all_sockets` lists (the first by namespace, then id). A browser's
/// socket is about a kilobyte of JSON (its handshake's headers), and one at most about
/// 9 KiB (headers are kept up to 8 KiB), so a node's answer of this many is far below
/// the 16 MiB a node reads from Redis.
const LISTING_MAX_SOCKETS: usize = 1_000;
/// Most bytes of JSON `all_sockets` lists: one frame, a quarter of the default
/// `queue.max_bytes` (4 MiB), so the UI's queue takes it with room for the rest; a quarter
/// of a smaller `queue.max_bytes`.
const LISTING_MAX_BYTES: usize = 1 << 20;
/// Longest `all_sockets` takes: each namespace is a request to every node, one after
/// another.
const LISTING_DEADLINE: Duration = Duration::from_secs(10);
/// Most namespaces a node shows the UI (`server_stats`, `all_sockets`). Clients may
/// make up to `socketio.max_pattern_namespaces` (10,000) namespaces from a pattern:
/// listed whole, each node's stats every 2 s were over a megabyte through Redis to
/// every node and UI, and one UI's listing was that many requests to every node.
const MAX_SHOWN_NAMESPACES: usize = 100;

/// The namespaces a node shows the UI: those declared (`Io::of`: configured, the
/// admin namespace) and those a pattern made that hold sockets here, the fullest
/// first, at most [`MAX_SHOWN_NAMESPACES`]. A pattern's namespaces emptied here but
/// kept for the recovery window are not shown.
fn shown_namespaces(io: &Io) -> Vec<Arc<Namespace>> {
    let mut shown: Vec<(bool, usize, Arc<Namespace>)> = io
        .namespaces()
        .into_iter()
        .map(|ns| (ns.from_pattern(), ns.socket_count(), ns))
        .filter(|(from_pattern, count, _)| !from_pattern || *count > 0)
        .collect();
    shown.sort_by(|a, b| {
        (a.0, std::cmp::Reverse(a.1), a.2.name()).cmp(&(b.0, std::cmp::Reverse(b.1), b.2.name()))
    });
    shown.truncate(MAX_SHOWN_NAMESPACES);
    shown.into_iter().map(|(_, _, ns)| ns).collect()
}

/// Most bytes of a live event (its name and arguments, as JSON) shown to the UI.
const MAX_SHOWN_ARGS: usize = 4096;
/// Most bytes of the name of a live event too long to show.
const MAX_SHOWN_NAME: usize = 256;

/// Whether `value` written as JSON takes at most `max` bytes; stops writing past it,
/// so a large value costs no more than `max` bytes of work.
fn json_fits<T: serde::Serialize + ?Sized>(value: &T, max: usize) -> bool {
    json_len_within(value, max).is_some()
}

/// How many bytes `value` takes written as JSON, if at most `max`; stops writing past
/// it, so a large value costs no more than `max` bytes of work.
fn json_len_within<T: serde::Serialize + ?Sized>(value: &T, max: usize) -> Option<usize> {
    /// Counts bytes, failing once past its bound.
    struct Bounded(usize);
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(buf.len())
                .ok_or_else(|| std::io::Error::other("past the bound"))?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut left = Bounded(max);
    serde_json::to_writer(&mut left, value).ok()?;
    Some(max - left.0)
}

/// Now as a JavaScript `Date` crosses JSON: `2026-12-04T15:00:01.250Z`.
fn now_iso() -> Value {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    json!(iso(ms))
}

/// `ms` since the Unix epoch as ISO 8601 in UTC with milliseconds.
fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// The sockets of `ns` in room `filter`, or all of them.
fn targets(ns: &Arc<Namespace>, filter: Option<&str>) -> BroadcastOperator {
    match filter.filter(|f| !f.is_empty()) {
        Some(room) => ns.to(room.to_owned()),
        None => ns.all(),
    }
}

/// A socket as the UI reads it (the package's `serialize`): its handshake without
/// `auth` and without the client's credentials (`Cookie`, `Authorization`,
/// `Proxy-Authorization`: the UI's events go through Redis, where docs/security.md
/// promises they never are), its transport and client id from Node's `data._admin`,
/// which Switchboard does not keep (the UI shows them empty).
fn serialize(socket: &switchboard_engine::adapter::SocketInfo, nsp: &str) -> Value {
    let mut handshake = switchboard_cluster::without_credentials(socket.handshake.clone());
    if let Some(h) = handshake.as_object_mut() {
        h.remove("auth");
    }
    let mut data = socket.data.clone();
    let admin = data
        .as_object_mut()
        .and_then(|d| d.remove("_admin"))
        .unwrap_or(Value::Null);
    let transport = admin
        .get("transport")
        .or_else(|| handshake.get("query").and_then(|q| q.get("transport")))
        .cloned()
        .unwrap_or(Value::Null);
    json!({
        "id": socket.id,
        "clientId": admin.get("clientId").cloned().unwrap_or(Value::Null),
        "transport": transport,
        "nsp": nsp,
        "data": if data.is_null() { json!({}) } else { data },
        "handshake": handshake,
        "rooms": socket.rooms,
    })
}

/// Development mode: what Node's `instrument()` keeps in `socket.data._admin` — the
/// socket's client (its connection's id, 12 characters, shared by the namespaces of one
/// connection) and transport — so the UI groups sockets by client, whichever node
/// lists them (`data` crosses nodes in `fetchSockets`). Data that is not an object (set
/// by the application) is left alone.
fn mark_client(socket: &Socket) {
    if !socket.connected() {
        return;
    }
    let mark = json!({ "clientId": client_id(socket), "transport": socket.transport().as_str() });
    // In place: a token refresh storing its claims at the same moment must keep them.
    socket.update_data(|data| {
        if data.is_null() {
            *data = json!({});
        }
        if let Some(map) = data.as_object_mut() {
            map.insert("_admin".into(), mark);
        }
    });
}

/// The UI's client id of a socket: the first 12 characters of its connection's id,
/// shared by the namespaces of one connection.
fn client_id(socket: &Socket) -> String {
    socket.conn().sid().to_string().chars().take(12).collect()
}

/// This node's stats every [`STATS_INTERVAL`], to every UI of the cluster.
async fn stats(admin: Arc<Admin>, ns: Arc<Namespace>, shutdown: Shutdown) {
    let started = Instant::now();
    let base = json!({
        "serverId": admin.config.server_id.clone().unwrap_or_else(hostname),
        "hostname": hostname(),
        "pid": std::process::id(),
    });
    let metrics = admin.io.engine().metrics().clone();
    let mut last = metrics.snapshot();
    let mut ticker = tokio::time::interval(STATS_INTERVAL);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.wait() => return,
        }
        let now = metrics.snapshot();
        let namespaces: Vec<Value> = shown_namespaces(&admin.io)
            .iter()
            .map(|n| json!({ "name": n.name(), "socketsCount": n.socket_count() }))
            .collect();
        let mut stats = base.clone();
        if let Some(map) = stats.as_object_mut() {
            map.insert("uptime".into(), json!(started.elapsed().as_secs_f64()));
            map.insert(
                "clientsCount".into(),
                json!(now.connections_polling + now.connections_websocket + now.connections_sse),
            );
            map.insert("pollingClientsCount".into(), json!(now.connections_polling));
            map.insert(
                "aggregatedEvents".into(),
                Value::Array(aggregated(&last, &now, SystemTime::now())),
            );
            map.insert("namespaces".into(), Value::Array(namespaces));
        }
        ns.emit("server_stats", stats);
        last = now;
    }
}

/// What happened between two snapshots, as the UI's aggregated events (the package's
/// `EventBuffer`: `{timestamp, type, subType?, count}`, the timestamp a whole second).
fn aggregated(before: &MetricsSnapshot, now: &MetricsSnapshot, at: SystemTime) -> Vec<Value> {
    let second = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() * 1000);
    let mut out = Vec::new();
    let mut push = |kind: &str, sub: Option<&str>, count: u64| {
        if count > 0 {
            let mut v = json!({ "timestamp": second, "type": kind, "count": count });
            if let (Some(sub), Some(map)) = (sub, v.as_object_mut()) {
                map.insert("subType".into(), json!(sub));
            }
            out.push(v);
        }
    };
    let mut closed = 0;
    for ((reason, n), (_, m)) in now.disconnects.iter().zip(&before.disconnects) {
        let d = n.saturating_sub(*m);
        closed += d;
        push("rawDisconnection", Some(reason.as_str()), d);
    }
    let open =
        |s: &MetricsSnapshot| s.connections_polling + s.connections_websocket + s.connections_sse;
    let opened = (open(now) - open(before) + i64::try_from(closed).unwrap_or(i64::MAX)).max(0);
    push("rawConnection", None, opened.unsigned_abs());
    for (kind, now, before) in [
        ("packetsIn", now.packets_in, before.packets_in),
        ("packetsOut", now.packets_out, before.packets_out),
        ("bytesIn", now.bytes_in, before.bytes_in),
        ("bytesOut", now.bytes_out, before.bytes_out),
    ] {
        push(kind, None, now.saturating_sub(before));
    }
    out
}

/// The host's name (`/proc/sys/kernel/hostname`), or `switchboard`.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "switchboard".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// bcrypt of `changeit` at cost 4 (cheap for a test).
    const HASH: &str = "$2b$04$DGiHFj8ZMmuoGJBcJZxvXus40HSeThXhhgNjjSsYgnYKqu7M5nsUS";

    /// One check at a time: one arriving while another runs waits for it, and is
    /// refused unchecked if it runs past [`TURN_WAIT`] (spending none of the rate);
    /// then the burst, after which checks are refused.
    #[tokio::test]
    async fn passwords_are_checked_one_at_a_time_and_at_a_bounded_rate() {
        let checks = PasswordChecks::new(Instant::now());
        let check = |password: &str| checks.verify(password.to_owned(), HASH.to_owned());
        let running = checks.running.try_acquire().expect("free");
        assert_eq!(check("changeit").await, None, "another check runs too long");
        drop(running);
        let running = checks.running.try_acquire().expect("free");
        let (waited, ()) = tokio::join!(check("changeit"), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(running);
        });
        assert_eq!(waited, Some(true), "waited for its turn");
        assert_eq!(check("wrong").await, Some(false));
        assert_eq!(check("changeit").await, Some(true));
        let mut checked = 3;
        while check("changeit").await.is_some() {
            checked += 1;
        }
        // The burst, plus what refilled while the checks ran (cost 4: about a
        // millisecond each, against the rate's 200 ms between two).
        assert!(
            (LOGIN_BURST as usize..LOGIN_BURST as usize + 20).contains(&checked),
            "{checked} checks"
        );
    }

    /// The UI's events go through Redis in a cluster: a socket as the UI reads it has
    /// no credentials (headers in any case, `auth`), its other headers as they came.
    #[test]
    fn sockets_reach_the_ui_without_credentials() {
        let socket = switchboard_engine::adapter::SocketInfo {
            id: "s1".into(),
            handshake: json!({
                "headers": {
                    "authorization": "Bearer secret",
                    "Cookie": "session=secret",
                    "proxy-authorization": "Basic secret",
                    "user-agent": "test",
                },
                "auth": {"token": "secret"},
                "query": {"room": "a"},
            }),
            rooms: vec!["s1".into()],
            data: Value::Null,
        };
        let seen = serialize(&socket, "/");
        assert!(!seen.to_string().contains("secret"), "{seen}");
        assert_eq!(seen["handshake"]["headers"], json!({"user-agent": "test"}));
        assert_eq!(seen["handshake"]["query"], json!({"room": "a"}));
    }

    /// A token refresh's arguments (the token) never reach the UI's live events; other
    /// events' do.
    #[test]
    fn token_refreshes_are_shown_without_their_token() {
        let watcher = Watcher {
            name: "/admin".into(),
            queue: tokio::sync::mpsc::channel(1).0,
            private_events: HashSet::from(["auth:refresh".to_owned()]),
            metrics: Arc::default(),
        };
        let args = [json!("eyJ.secret.token")];
        assert_eq!(&*watcher.shown("auth:refresh", &args), [json!(REDACTED)]);
        assert_eq!(&*watcher.shown("chat", &args), args);
    }

    /// Live events show small arguments as they are and large ones as a notice, and
    /// measuring one stops at the bound.
    #[test]
    fn large_arguments_are_not_shown() {
        assert!(json_fits(&[json!("x".repeat(4000))], MAX_SHOWN_ARGS));
        assert!(
            !json_fits(&("x".repeat(5000), [json!(1)]), MAX_SHOWN_ARGS),
            "the name counts"
        );
        assert!(!json_fits(&[json!("x".repeat(5000))], MAX_SHOWN_ARGS));
        assert!(json_fits(&[json!("ab")], 6), r#"["ab"] is 6 bytes"#);
        assert_eq!(json_len_within(&[json!("ab")], 6), Some(6));
        assert_eq!(json_len_within(&[json!("ab")], 100), Some(6));
        assert_eq!(json_len_within(&[json!("abc")], 6), None);
        assert!(!json_fits(&[json!("abc")], 6));
    }

    /// Twenty callers at once: the first computes; the others asked before it began or
    /// while it ran, so they wait and share the next one. None runs beside another,
    /// and every caller gets a value begun after it asked.
    #[tokio::test]
    async fn listings_run_one_at_a_time_and_are_shared_by_those_waiting() {
        let listing = Arc::new(Listing::<Instant>::default());
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let (listing, runs, running) = (listing.clone(), runs.clone(), running.clone());
                tokio::spawn(async move {
                    let asked = Instant::now();
                    let began = listing
                        .get(asked, || async {
                            use std::sync::atomic::Ordering::SeqCst;
                            runs.fetch_add(1, SeqCst);
                            assert_eq!(running.fetch_add(1, SeqCst), 0, "one at a time");
                            let began = Instant::now();
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            running.fetch_sub(1, SeqCst);
                            began
                        })
                        .await;
                    assert!(*began >= asked, "begun after it was asked for");
                })
            })
            .collect();
        for caller in callers {
            caller.await.expect("caller");
        }
        let runs = runs.load(std::sync::atomic::Ordering::SeqCst);
        assert!((1..=2).contains(&runs), "{runs} listings for 20 callers");
    }

    /// A live event that finds the queue full is dropped and counted on `/metrics`.
    #[test]
    fn live_events_dropped_are_counted() {
        let (queue, _rx) = tokio::sync::mpsc::channel(1);
        let watcher = Watcher {
            name: "/admin".into(),
            queue,
            private_events: HashSet::new(),
            metrics: Arc::default(),
        };
        watcher.tell("event_received", vec![json!(1)]);
        watcher.tell("event_received", vec![json!(2)]);
        let mut out = Exposition::default();
        watcher.metrics.render(&mut out);
        let text = out.into_string();
        assert!(
            text.contains("\nswitchboard_admin_live_dropped_total 1\n"),
            "{text}"
        );
    }

    /// A room joined under a name of a megabyte (an Admin UI's `join`, another node's
    /// `socketsJoin`) is shown cut, as event names are: one such join is a live event
    /// per socket it joins, and each held the whole name.
    #[test]
    fn long_room_names_are_shown_cut() {
        let (queue, mut rx) = tokio::sync::mpsc::channel(4);
        let watcher = Watcher {
            name: "/admin".into(),
            queue,
            private_events: HashSet::new(),
            metrics: Arc::default(),
        };
        let room = "é".repeat(500_000);
        let id = Sid::from_random([7; 15]);
        watcher.joined("/", &room, id);
        watcher.left("/", &room, id);
        for expected in ["room_joined", "room_left"] {
            let Some(Live::Told(event, args)) = rx.try_recv().ok() else {
                panic!("a live event");
            };
            assert_eq!(event, expected);
            let shown = args[1].as_str().expect("the room");
            assert_eq!(shown, "é".repeat(MAX_SHOWN_NAME / 2));
        }
    }

    #[test]
    fn sessions_expire_and_stay_bounded() {
        let sessions = Sessions::new(None, String::new(), Instant::now());
        let t0 = Instant::now();
        let id = sessions.create(t0);
        assert!(sessions.contains(&id, t0));
        assert!(!sessions.contains(&id, t0 + SESSION_TTL));
        assert!(!sessions.contains("forged", t0));
    }

    #[test]
    fn readonly_has_no_commands_and_development_every_event() {
        let mut config = AdminConfig::default();
        assert!(features(&config).contains(&"MDISCONNECT"));
        assert!(!features(&config).contains(&"ALL_EVENTS"));
        config.readonly = true;
        config.mode = AdminMode::Development;
        assert_eq!(features(&config), ["AGGREGATED_EVENTS", "ALL_EVENTS"]);
    }

    #[test]
    fn dates_are_what_javascript_writes() {
        assert_eq!(iso(1_796_396_401_250), "2026-12-04T15:00:01.250Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn aggregated_events_are_the_differences() {
        let before = MetricsSnapshot {
            disconnects: vec![(switchboard_engine::DisconnectReason::PingTimeout, 2)],
            connections_websocket: 3,
            packets_in: 10,
            ..MetricsSnapshot::default()
        };
        let now = MetricsSnapshot {
            disconnects: vec![(switchboard_engine::DisconnectReason::PingTimeout, 3)],
            connections_websocket: 4,
            packets_in: 15,
            ..MetricsSnapshot::default()
        };
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_500);
        let events = aggregated(&before, &now, at);
        assert_eq!(
            events,
            [
                json!({"timestamp": 1_700_000_000_000_u64, "type": "rawDisconnection", "subType": "ping timeout", "count": 1}),
                json!({"timestamp": 1_700_000_000_000_u64, "type": "rawConnection", "count": 2}),
                json!({"timestamp": 1_700_000_000_000_u64, "type": "packetsIn", "count": 5}),
            ]
        );
    }
}
