//! A namespace: its handlers and middleware, its connected sockets and its rooms.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Once, RwLock};
use std::time::Duration;

use serde_json::Value;
use switchboard_protocol::Sid;

use crate::adapter::{Adapter, BroadcastOptions, Room, ServerAck};
use crate::reason::DisconnectReason;
use crate::sid_map::SidMap;

use super::broadcast::BroadcastOperator;
use super::event::{ConnectError, Event, Payload};
use super::recovery::{RecoveryBudget, RecoveryBuffer, RecoveryConfig};
use super::socket::Socket;

/// A boxed future returned by middleware.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;
type EventHandler = Arc<dyn Fn(Event) + Send + Sync>;
type ConnectHandler = Arc<dyn Fn(&Arc<Socket>) + Send + Sync>;
type DisconnectHandler = Arc<dyn Fn(&Arc<Socket>, DisconnectReason) + Send + Sync>;
type RoomHandler = Arc<dyn Fn(&Namespace, &str, Sid) + Send + Sync>;
type ServerSideHandler = Arc<dyn Fn(&Arc<Namespace>, Vec<Value>, Option<ServerAck>) + Send + Sync>;
type Middleware = Arc<dyn Fn(Arc<Socket>) -> BoxFuture<Result<(), ConnectError>> + Send + Sync>;
type ResumeCheck = Arc<dyn Fn(&Resume<'_>) -> bool + Send + Sync>;

/// A session a connection would resume, as [`Handlers::on_resume`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Resume<'a> {
    /// The session's data.
    pub stored: &'a Value,
    /// What the middleware put in the new socket's data (`null` when it set nothing,
    /// or was skipped: `recovery.skip_middlewares`).
    pub fresh: &'a Value,
    /// The rooms the session would come back in.
    pub rooms: &'a [&'a str],
}

impl<'a> Resume<'a> {
    /// A session of `stored` data in `rooms`, resumed by a socket whose middleware
    /// left `fresh`.
    pub fn new(stored: &'a Value, fresh: &'a Value, rooms: &'a [&'a str]) -> Self {
        Resume {
            stored,
            fresh,
            rooms,
        }
    }
}

/// The handlers of a namespace (or of every namespace a pattern creates).
///
/// Handlers live on the namespace, not on each socket: a socket costs no memory for
/// them. Event handlers run on the connection's read path and must not block; spawn a
/// task for slow work and answer through [`Event::take_ack`].
#[derive(Default)]
pub struct Handlers {
    middleware: RwLock<Vec<Middleware>>,
    connect: RwLock<Vec<ConnectHandler>>,
    events: RwLock<HashMap<String, EventHandler>>,
    any: RwLock<Option<EventHandler>>,
    disconnect: RwLock<Vec<DisconnectHandler>>,
    room_occupied: RwLock<Vec<RoomHandler>>,
    room_vacated: RwLock<Vec<RoomHandler>>,
    server_side: RwLock<Option<ServerSideHandler>>,
    resume_check: RwLock<Option<ResumeCheck>>,
    /// Most rooms (its own id room aside) a socket is joined to by
    /// [`Namespace::add_sockets_local`]: joins another node asks for, or the
    /// application's `socketsJoin`. 0 (the default): no bound.
    max_rooms_per_socket: AtomicUsize,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handlers").finish_non_exhaustive()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Handlers {
    /// Bounds the rooms [`Namespace::add_sockets_local`] joins a socket to: a socket
    /// already in `max` rooms (its own id room aside) joins no more that way. A message
    /// from Redis asking every socket to join rooms is anyone's who can publish there
    /// (the Node adapters' formats cannot be signed), so without a bound one message
    /// could put every socket of the node in thousands of rooms. 0: no bound.
    pub fn set_max_rooms_per_socket(&self, max: usize) {
        self.max_rooms_per_socket.store(max, Ordering::Relaxed);
    }

    /// Decides whether a connection may resume a stored session: `f` gets the
    /// session's data and rooms and what the middleware put in the new socket's data
    /// ([`Resume`]), and `false` starts the socket afresh, the session left as it was
    /// for its owner (asked before the session is taken). The
    /// rules refuse a session whose verified identity is not the new token's (a `pid`
    /// is a secret, but a client that keeps it across a log-out and a log-in as
    /// someone else would otherwise resume the first user's rooms and data), whose
    /// token expired, or whose rooms the new token no longer grants. `f` may run with
    /// the recovery buffer locked: it must decide from what it is given alone, and not
    /// emit.
    pub fn on_resume(&self, f: impl Fn(&Resume<'_>) -> bool + Send + Sync + 'static) {
        *write(&self.resume_check) = Some(Arc::new(f));
    }

    /// Whether `resume` may go ahead ([`Handlers::on_resume`]; yes without a check).
    pub(crate) fn may_resume(&self, resume: &Resume<'_>) -> bool {
        read(&self.resume_check)
            .as_ref()
            .is_none_or(|check| check(resume))
    }

    /// The bound [`Handlers::set_max_rooms_per_socket`] set (`usize::MAX`: none).
    pub fn max_rooms_per_socket(&self) -> usize {
        match self.max_rooms_per_socket.load(Ordering::Relaxed) {
            0 => usize::MAX,
            max => max,
        }
    }

    /// Adds a middleware, run in order for every connection attempt before it is
    /// accepted. Returning an error refuses the connection with that message.
    pub fn use_middleware<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        write(&self.middleware).push(Arc::new(move |s| Box::pin(f(s))));
    }

    /// Called for every accepted socket, after the client was told it is connected.
    pub fn on_connection(&self, f: impl Fn(&Arc<Socket>) + Send + Sync + 'static) {
        write(&self.connect).push(Arc::new(f));
    }

    /// Handles the client event `name`.
    pub fn on(&self, name: impl Into<String>, f: impl Fn(Event) + Send + Sync + 'static) {
        write(&self.events).insert(name.into(), Arc::new(f));
    }

    /// Handles every client event that has no handler of its own.
    pub fn on_any(&self, f: impl Fn(Event) + Send + Sync + 'static) {
        *write(&self.any) = Some(Arc::new(f));
    }

    /// Called once per socket when it leaves the namespace, with the reason.
    pub fn on_disconnect(
        &self,
        f: impl Fn(&Arc<Socket>, DisconnectReason) + Send + Sync + 'static,
    ) {
        write(&self.disconnect).push(Arc::new(f));
    }

    /// Called when a room gets its first member on this node, with the socket that
    /// joined it and no engine lock held: the handler may broadcast (to the room, say).
    pub fn on_room_occupied(&self, f: impl Fn(&Namespace, &str, Sid) + Send + Sync + 'static) {
        write(&self.room_occupied).push(Arc::new(f));
    }

    /// Called when a room loses its last member on this node, with the socket that
    /// left it (or whose session ended) and no engine lock held.
    pub fn on_room_vacated(&self, f: impl Fn(&Namespace, &str, Sid) + Send + Sync + 'static) {
        write(&self.room_vacated).push(Arc::new(f));
    }

    /// Handles events other nodes send with `server_side_emit` (Node's
    /// `io.on(event, …)` for server-side events): the arguments (event name first)
    /// and, when the sender waits for answers, the callback that answers it.
    pub fn on_server_side_emit(
        &self,
        f: impl Fn(&Arc<Namespace>, Vec<Value>, Option<ServerAck>) + Send + Sync + 'static,
    ) {
        *write(&self.server_side) = Some(Arc::new(f));
    }

    pub(crate) fn run_room_changes(
        &self,
        ns: &Namespace,
        by: Sid,
        occupied: &[Room],
        vacated: &[Room],
    ) {
        if !occupied.is_empty() {
            let handlers = read(&self.room_occupied).clone();
            for room in occupied {
                handlers.iter().for_each(|h| h(ns, room, by));
            }
        }
        if !vacated.is_empty() {
            let handlers = read(&self.room_vacated).clone();
            for room in vacated {
                handlers.iter().for_each(|h| h(ns, room, by));
            }
        }
    }

    pub(crate) fn middleware(&self) -> Vec<Middleware> {
        read(&self.middleware).clone()
    }

    pub(crate) fn run_connect(&self, socket: &Arc<Socket>) {
        let handlers = read(&self.connect).clone();
        for h in handlers {
            h(socket);
        }
    }

    pub(crate) fn run_event(&self, event: Event) {
        let handler = read(&self.events)
            .get(&event.name)
            .cloned()
            .or_else(|| read(&self.any).clone());
        if let Some(h) = handler {
            h(event);
        }
    }

    pub(crate) fn run_disconnect(&self, socket: &Arc<Socket>, reason: DisconnectReason) {
        let handlers = read(&self.disconnect).clone();
        for h in handlers {
            h(socket, reason);
        }
    }
}

/// One namespace.
///
/// A namespace declared by [`crate::Io::of`] lives as long as the server. One created
/// from a pattern ([`crate::Io::of_matching`]) for a connection lives while it has
/// sockets or connections being accepted ("pending"), and is removed as soon as it has
/// neither, as Node's `cleanupEmptyChildNamespaces` does; its adapter is initialised
/// (cluster subscriptions) only once a first connection has passed the middleware.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    handlers: Arc<Handlers>,
    /// Connected sockets. Read on every broadcast, written on connect/disconnect;
    /// never held across `.await`.
    sockets: RwLock<SidMap<Arc<Socket>>>,
    adapter: Arc<dyn Adapter>,
    /// Set when connection state recovery is on.
    recovery: Option<RecoveryBuffer>,
    /// Created from a pattern and not declared with `Io::of`: removed once idle.
    removable: AtomicBool,
    /// CONNECTs to this namespace between their arrival and their socket's
    /// registration (or refusal). Incremented only under the server's namespace
    /// registry lock, so the registry sees a stable count while it decides to remove.
    pending: AtomicUsize,
    /// Runs [`Adapter::init`] once, when the namespace starts serving sockets.
    initialised: Once,
    /// When the namespace was made: the clock of `left_at`.
    born: tokio::time::Instant,
    /// When a socket last left, in milliseconds after `born` ([`NEVER_LEFT`]: none
    /// has). Written with the socket's removal, under the sockets lock, so whoever
    /// sees the namespace empty sees when it emptied.
    left_at: AtomicU64,
    /// Its key in the server's index of emptied pattern namespaces (`None`: not in
    /// it); changed under that index's lock.
    pub(crate) idle_key: std::sync::Mutex<Option<super::server::IdleKey>>,
}

/// `left_at` of a namespace no socket has left yet.
const NEVER_LEFT: u64 = u64::MAX;

impl Namespace {
    /// A namespace whose adapter is not initialised yet ([`Namespace::activate`]).
    pub(crate) fn new(
        name: String,
        handlers: Arc<Handlers>,
        adapter: Arc<dyn Adapter>,
        recovery: Option<(RecoveryConfig, Arc<RecoveryBudget>)>,
        removable: bool,
    ) -> Arc<Self> {
        let logged = adapter.session_store().is_some();
        let recovery = recovery.map(|(config, budget)| {
            let buffer = if logged {
                RecoveryBuffer::logged(config)
            } else {
                RecoveryBuffer::new(config)
            };
            buffer.sharing(budget)
        });
        Arc::new(Namespace {
            name,
            handlers,
            sockets: RwLock::default(),
            adapter,
            recovery,
            removable: AtomicBool::new(removable),
            pending: AtomicUsize::new(0),
            initialised: Once::new(),
            born: tokio::time::Instant::now(),
            left_at: AtomicU64::new(NEVER_LEFT),
            idle_key: std::sync::Mutex::new(None),
        })
    }

    /// Initialises the adapter (once): from now on the namespace serves sockets, is
    /// listed by [`crate::Io::namespaces`] and, in a cluster, hears the other nodes.
    pub(crate) fn activate(self: &Arc<Self>) {
        self.initialised.call_once(|| self.adapter.init(self));
    }

    /// Whether the namespace serves sockets (see [`Namespace::activate`]).
    pub(crate) fn is_active(&self) -> bool {
        self.initialised.is_completed()
    }

    /// Whether the namespace was created from a pattern (not declared with `Io::of`),
    /// and so goes away once idle.
    pub fn from_pattern(&self) -> bool {
        self.removable()
    }

    /// Whether the namespace goes away once idle (created from a pattern).
    pub(crate) fn removable(&self) -> bool {
        self.removable.load(Ordering::Acquire)
    }

    /// Keeps the namespace for the server's lifetime (`Io::of` declared it).
    pub(crate) fn make_permanent(&self) {
        self.removable.store(false, Ordering::Release);
    }

    /// Counts a connection being accepted; called under the registry lock.
    pub(crate) fn add_pending(&self) {
        self.pending.fetch_add(1, Ordering::AcqRel);
    }

    /// A connection was accepted or refused; true when it was the last pending one.
    pub(crate) fn sub_pending(&self) -> bool {
        self.pending.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// How much of `window` is left since a socket last left (zero when none has, or
    /// when it is over): how long an emptied namespace still keeps its sockets'
    /// sessions for recovery.
    pub(crate) fn window_left(&self, window: Duration) -> Duration {
        let left_at = self.left_at.load(Ordering::Acquire);
        if left_at == NEVER_LEFT {
            return Duration::ZERO;
        }
        let since_birth = self.born.elapsed();
        let since_left = since_birth.saturating_sub(Duration::from_millis(left_at));
        window.saturating_sub(since_left)
    }

    /// Whether nothing keeps the namespace: no socket and no connection being
    /// accepted. Stable while the registry's write lock is held, since a socket is
    /// only ever inserted by a pending connection.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0 && read(&self.sockets).is_empty()
    }

    /// Runs the server-side event handler for an event another node sent.
    pub fn server_side_event(self: &Arc<Self>, args: Vec<Value>, ack: Option<ServerAck>) {
        let handler = read(&self.handlers.server_side).clone();
        match handler {
            Some(h) => h(self, args, ack),
            None => {
                if let Some(ack) = ack {
                    ack(Value::Null);
                }
            }
        }
    }

    /// Sends an event to the server-side handlers of the other nodes.
    pub fn server_side_emit(self: &Arc<Self>, args: Vec<Value>) {
        self.adapter.server_side_emit(self, args);
    }

    /// Sends an event to the server-side handlers of the other nodes and collects one
    /// answer from each.
    pub async fn server_side_emit_with_ack(
        self: &Arc<Self>,
        args: Vec<Value>,
        timeout: std::time::Duration,
    ) -> Result<Vec<Value>, crate::adapter::AdapterError> {
        self.adapter
            .server_side_emit_with_ack(self, args, timeout)
            .await
    }

    /// Every room with a member on any node of the cluster.
    pub async fn all_rooms(self: &Arc<Self>) -> Result<Vec<Room>, crate::adapter::AdapterError> {
        self.adapter.all_rooms(self).await
    }

    /// Number of nodes serving this namespace, this one included.
    pub async fn server_count(&self) -> Result<usize, crate::adapter::AdapterError> {
        self.adapter.server_count().await
    }

    pub(crate) fn recovery(&self) -> Option<&RecoveryBuffer> {
        self.recovery.as_ref()
    }

    /// Whether connection state recovery is on for this namespace.
    pub fn recovery_enabled(&self) -> bool {
        self.recovery.is_some()
    }

    /// What the recovery buffer holds now and what its bounds charge for it
    /// (recovery on).
    pub fn recovery_usage(&self) -> Option<super::recovery::RecoveryUsage> {
        self.recovery.as_ref().map(RecoveryBuffer::usage)
    }

    /// How long a dropped socket may come back and resume (recovery on).
    pub fn recovery_window(&self) -> Option<std::time::Duration> {
        self.recovery
            .as_ref()
            .map(|b| b.config().max_disconnection_duration)
    }

    /// The namespace name, e.g. `/` or `/chat`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The handlers (shared with sibling namespaces created by the same pattern).
    pub fn handlers(&self) -> &Arc<Handlers> {
        &self.handlers
    }

    /// See [`Handlers::use_middleware`].
    pub fn use_middleware<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Socket>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.handlers.use_middleware(f);
    }

    /// See [`Handlers::on_connection`].
    pub fn on_connection(&self, f: impl Fn(&Arc<Socket>) + Send + Sync + 'static) {
        self.handlers.on_connection(f);
    }

    /// See [`Handlers::on`].
    pub fn on(&self, name: impl Into<String>, f: impl Fn(Event) + Send + Sync + 'static) {
        self.handlers.on(name, f);
    }

    /// See [`Handlers::on_disconnect`].
    pub fn on_disconnect(
        &self,
        f: impl Fn(&Arc<Socket>, DisconnectReason) + Send + Sync + 'static,
    ) {
        self.handlers.on_disconnect(f);
    }

    /// The room index.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    /// A connected socket by id.
    pub fn socket(&self, sid: Sid) -> Option<Arc<Socket>> {
        read(&self.sockets).get(&sid).cloned()
    }

    /// Every connected socket.
    pub fn sockets(&self) -> Vec<Arc<Socket>> {
        read(&self.sockets).values().cloned().collect()
    }

    /// Number of connected sockets.
    pub fn socket_count(&self) -> usize {
        read(&self.sockets).len()
    }

    /// Targets sockets in `room` (call again on the result to add rooms).
    pub fn to(self: &Arc<Self>, room: impl Into<Room>) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).to(room)
    }

    /// Targets every socket of the namespace (narrow it with `to`/`except`).
    pub fn all(self: &Arc<Self>) -> BroadcastOperator {
        BroadcastOperator::new(self.clone())
    }

    /// Targets every socket except those in `room`.
    pub fn except(self: &Arc<Self>, room: impl Into<Room>) -> BroadcastOperator {
        BroadcastOperator::new(self.clone()).except(room)
    }

    /// Emits to every socket of the namespace; returns how many on this node were
    /// reached.
    pub fn emit(self: &Arc<Self>, event: &str, payload: impl Into<Payload>) -> usize {
        BroadcastOperator::new(self.clone()).emit(event, payload)
    }

    /// Targets the sockets `opts` selects.
    pub fn select_with(self: &Arc<Self>, opts: BroadcastOptions) -> BroadcastOperator {
        BroadcastOperator::with_options(self.clone(), opts)
    }

    /// Registers `socket`, running `first` (its CONNECT answer queued, the socket
    /// marked connected) under the lock that broadcasts and look-ups read the sockets
    /// under: what they send to the socket comes after what `first` queued, and
    /// whoever looks for the socket once its client has the answer finds it. `first`
    /// must not read this namespace's sockets (or send to it): the lock is not
    /// reentrant.
    pub(crate) fn insert_after(&self, socket: Arc<Socket>, first: impl FnOnce()) {
        let mut sockets = write(&self.sockets);
        first();
        sockets.insert(socket.id(), socket);
    }

    /// Unregisters `socket` and takes its id out of its rooms, unless another socket
    /// holds that id now: a session resumed under the same id while this one's close
    /// ran (its connection taken over) is left registered and in its rooms (before, the
    /// stale socket's close took the resumed one out, and its client, told it was
    /// recovered, heard no broadcast again).
    pub(crate) fn remove(&self, socket: &Arc<Socket>) {
        let sid = socket.id();
        let mut sockets = write(&self.sockets);
        match sockets.get(&sid) {
            Some(held) if !Arc::ptr_eq(held, socket) => return,
            Some(_) => {
                sockets.remove(&sid);
                let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(NEVER_LEFT - 1);
                self.left_at.store(ms, Ordering::Release);
            }
            None => {}
        }
        // Out of its rooms before the lock goes: a socket resuming under this id right
        // after (its session was kept just before) registers, then joins, only then;
        // left after, this took the resumed socket out of the rooms it had just joined.
        let vacated = self.leave_all_unreported(sid);
        drop(sockets);
        self.report_room_changes(sid, &[], &vacated);
    }

    /// Takes `sid` out of every room, reporting rooms it left empty: a socket that
    /// left, or one whose connection was refused after a middleware joined rooms.
    pub(crate) fn leave_all(&self, sid: Sid) {
        let vacated = self.leave_all_unreported(sid);
        self.report_room_changes(sid, &[], &vacated);
    }

    /// Adds `sid` to rooms; returns the rooms that became occupied, for the caller to
    /// report ([`Namespace::report_room_changes`]) once it holds no lock a handler's
    /// broadcast would take.
    pub(crate) fn join_unreported(&self, sid: Sid, rooms: &[&str]) -> Vec<Room> {
        self.adapter.add_all(sid, rooms)
    }

    /// Takes `sid` out of every room; returns the rooms it left empty, to report as
    /// [`Namespace::join_unreported`]'s.
    pub(crate) fn leave_all_unreported(&self, sid: Sid) -> Vec<Room> {
        self.adapter.del_all(sid)
    }

    /// Runs the application's handlers of rooms that became occupied or empty by what
    /// the socket `by` joined or left.
    pub(crate) fn report_room_changes(&self, by: Sid, occupied: &[Room], vacated: &[Room]) {
        self.handlers.run_room_changes(self, by, occupied, vacated);
    }

    /// Removes `sid` from a room; returns whether it became empty, for the caller to
    /// report as [`Namespace::join_unreported`]'s.
    pub(crate) fn leave_unreported(&self, sid: Sid, room: &str) -> bool {
        self.adapter.del(sid, room)
    }

    /// Runs `f` with the socket registered under `sid` (`None`: none is), holding the
    /// lock it is registered under: a socket resuming under `sid` registers only
    /// once `f` is done, and joins its rooms only after that, so what `f` decides
    /// from the holder still holds for the room changes it makes. `f` must not read
    /// this namespace's sockets, send to them or run a room handler (the lock is not
    /// reentrant): it changes the room index, and its caller reports.
    pub(crate) fn with_holder<T>(&self, sid: Sid, f: impl FnOnce(Option<&Arc<Socket>>) -> T) -> T {
        let sockets = read(&self.sockets);
        f(sockets.get(&sid))
    }

    /// Runs `f` on the connected sockets `keep` accepts, in chunks of up to
    /// [`SOCKET_CHUNK`], while holding the read lock: every socket when `sids` is
    /// `None`, else each listed one that is connected. A chunk lets a broadcast look
    /// at a few recipients before it writes to any (see `Namespace::deliver`).
    pub(crate) fn for_socket_chunks(
        &self,
        sids: Option<&[Sid]>,
        keep: impl Fn(&Arc<Socket>) -> bool,
        f: impl FnMut(&[&Arc<Socket>]),
    ) {
        let sockets = read(&self.sockets);
        match sids {
            None => in_chunks(sockets.values().filter(|s| keep(s)), f),
            Some(sids) => in_chunks(
                sids.iter()
                    .filter_map(|sid| sockets.get(sid))
                    .filter(|s| keep(s)),
                f,
            ),
        }
    }
}

/// Runs `f` on the items of `items` in chunks of up to [`SOCKET_CHUNK`].
fn in_chunks<'a, T: 'a>(items: impl Iterator<Item = &'a T>, mut f: impl FnMut(&[&'a T])) {
    let mut chunk = Vec::with_capacity(SOCKET_CHUNK);
    for item in items {
        chunk.push(item);
        if chunk.len() == SOCKET_CHUNK {
            f(&chunk);
            chunk.clear();
        }
    }
    if !chunk.is_empty() {
        f(&chunk);
    }
}

/// Sockets per chunk of [`Namespace::for_socket_chunks`]: enough recipients for their
/// cache misses to overlap, few enough to stay in the cache until they are written.
const SOCKET_CHUNK: usize = 32;

/// The data a client sent with its CONNECT packet, `{}` when it sent none.
pub(crate) fn auth_or_empty(data: Option<Value>) -> Value {
    data.unwrap_or_else(|| Value::Object(Default::default()))
}
