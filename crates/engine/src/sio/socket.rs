//! One socket: a client's membership of one namespace, with its rooms, data and
//! pending acknowledgements.

use crate::untrusted::Untrusted;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

use serde_json::Value;
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::TransportKind;
use switchboard_protocol::socketio::{Packet, PacketType, is_reserved_event};
use tokio::sync::oneshot;

use crate::adapter::{DurableSession, Room, SocketInfo};
use crate::breadcrumbs::{self, Crumb, Step, Trail};
use crate::diagnosis::{self, Diagnosis};
use crate::eio::session::now;
use crate::eio::{Frame, HandshakeInfo, SendError, Session};
use crate::reason::DisconnectReason;

use super::broadcast::{BroadcastOperator, encode};
use super::client::ClientShared;
use super::event::{AckError, AckSender, EmitError, Event, Payload, event_packet};
use super::namespace::Namespace;
use super::recovery::{Memberships, RecoveryBuffer, SavedSessionParts, is_recoverable};

/// Acknowledgements the server may wait for from one socket at once. Each holds an
/// entry, a channel and a timer until the client answers or the timeout passes; a
/// client that never answers would otherwise let every broadcast with acks (from the
/// API, or a peer on Redis with any timeout it likes) add to them. A client with
/// this many unanswered is as far behind as a full outbound queue
/// (`queue.max_packets`, 1024 by default).
pub const MAX_PENDING_ACKS: usize = 1024;

/// One client connected to one namespace.
pub struct Socket {
    id: Sid,
    /// Private session id for connection state recovery (never shown to other clients).
    pid: Option<Sid>,
    /// Whether this socket resumed a previous session.
    recovered: bool,
    /// Recovery buffer position when the socket connected.
    connected_at_offset: u128,
    /// Which resume of its durable session this socket is (see
    /// [`DurableSession::epoch`]).
    epoch: u64,
    ns: Arc<Namespace>,
    session: Arc<Session>,
    client: Arc<ClientShared>,
    /// The CONNECT payload, kept for the middleware and the connection handlers
    /// (Node's order) and then forgotten (`{}`): it often carries a token, and at up
    /// to `max_connect_auth` bytes per socket it would be the largest thing a socket
    /// holds. Whoever needs part of it later copies it into `data` in a middleware.
    auth: RwLock<Arc<Value>>,
    /// Application data (Node's `socket.data`). JSON so it can cross nodes.
    data: RwLock<Value>,
    /// Server → client acknowledgements awaiting an answer. Allocates only once used.
    acks: Mutex<HashMap<u64, oneshot::Sender<Payload>>>,
    next_ack: AtomicU64,
    connected: AtomicBool,
    /// Whether the socket has closed: set once, by [`Socket::on_closed`], before the
    /// namespace lets go of it. Not `!connected`: a socket still in its middleware is
    /// not connected either, and its joins count (they carry over to the socket its
    /// connection registers). Held across each change this socket makes to its rooms
    /// in the index while it has not closed ([`Socket::change_rooms`]), so a close
    /// cannot begin between a change's look at it and the change: the change lands
    /// before the close takes the socket out of its rooms, never after a session
    /// resumed under its id came in.
    closed: Mutex<bool>,
    /// What waits for the connection handlers to finish; `None` once they have run.
    early: Mutex<Option<Box<Early>>>,
    /// What the application noted for the diagnosis of this socket's disconnect, the
    /// socket's steps for its timeline, then the diagnosis once it left. Allocated on
    /// the first step (the connect).
    explained: Mutex<Option<Box<Explained>>>,
    /// Held while a bounded join counts the socket's rooms and joins (see
    /// [`Socket::lock_joins`]), so that two at once cannot both see room for theirs.
    joins: Mutex<()>,
}

/// What waits for a socket's connection handlers to finish. Node runs `connection`
/// handlers before any event of the socket and before it can be disconnected by
/// anything but themselves; here the client may already send, leave or drop its
/// connection while they run on another thread (or before they begin).
#[derive(Debug, Default)]
struct Early {
    /// Events that arrived meanwhile, in order.
    packets: Vec<Packet>,
    /// The thread running the handlers, once they began.
    running_on: Option<std::thread::ThreadId>,
    /// A close from another thread meanwhile: its disconnect handlers run once the
    /// connection handlers are done, so none of those runs after them (its joins
    /// would stay in the rooms for good, its hooks arrive after the disconnect's).
    closed: Option<DisconnectReason>,
}

/// Ends a socket's early phase if its connection handlers panic: events no longer
/// queue for them, and closes no longer wait for them. A close recorded meanwhile is
/// finished as far as the engine goes (the rooms the handlers joined, the namespace
/// let go if this was its last socket); its disconnect handlers are lost with the
/// panic.
struct EarlyGuard<'a>(Option<&'a Arc<Socket>>);

impl Drop for EarlyGuard<'_> {
    fn drop(&mut self) {
        if let Some(socket) = self.0 {
            let closed = socket.lock_early().take().and_then(|e| e.closed);
            if closed.is_some() {
                socket.leave_rooms_joined_late();
                socket.after_close(None);
            }
        }
    }
}

/// The diagnosis of a socket's disconnect, the facts noted for it and the socket's
/// own steps.
#[derive(Debug, Default)]
struct Explained {
    noted: Vec<String>,
    trail: Trail,
    /// Once the socket left: its report (also kept in the node's ring).
    report: Option<Arc<diagnosis::Report>>,
}

/// Facts a socket keeps for its diagnosis: the last few, the latest being the most
/// telling (a socket noted many times is told by its last notes).
const MAX_NOTES: usize = 4;

/// Who a socket is: fresh ids, or those of a recovered session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    pub(crate) id: Sid,
    pub(crate) pid: Option<Sid>,
    pub(crate) recovered: bool,
    pub(crate) connected_at_offset: u128,
    pub(crate) epoch: u64,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("nsp", &self.ns.name())
            .finish_non_exhaustive()
    }
}

impl Socket {
    pub(crate) fn new(
        ns: Arc<Namespace>,
        session: Arc<Session>,
        client: Arc<ClientShared>,
        auth: Value,
    ) -> Arc<Self> {
        let identity = Identity {
            id: Sid::from_random(rand::random()),
            // An SSE listener resumes by event id, never by session: it keeps none.
            pid: ns
                .recovery()
                .filter(|_| session.transport() != TransportKind::Sse)
                .map(|_| Sid::from_random(rand::random())),
            recovered: false,
            connected_at_offset: 0,
            epoch: 0,
        };
        Socket::with_identity(ns, session, client, auth, identity)
    }

    pub(crate) fn with_identity(
        ns: Arc<Namespace>,
        session: Arc<Session>,
        client: Arc<ClientShared>,
        auth: Value,
        identity: Identity,
    ) -> Arc<Self> {
        Arc::new(Socket {
            id: identity.id,
            pid: identity.pid,
            recovered: identity.recovered,
            connected_at_offset: identity.connected_at_offset,
            epoch: identity.epoch,
            ns,
            session,
            client,
            auth: RwLock::new(Arc::new(auth)),
            data: RwLock::new(Value::Null),
            acks: Mutex::default(),
            next_ack: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            closed: Mutex::new(false),
            early: Mutex::new(Some(Box::default())),
            explained: Mutex::new(None),
            joins: Mutex::new(()),
        })
    }

    /// The socket id (not the Engine.IO session id, as in Socket.IO v5).
    pub fn id(&self) -> Sid {
        self.id
    }

    /// The socket id as text, borrowed (to sort or compare sockets by id).
    pub(crate) fn id_str(&self) -> &str {
        self.id.as_str()
    }

    /// The namespace name.
    pub fn namespace(&self) -> &str {
        self.ns.name()
    }

    /// The namespace.
    pub fn ns(&self) -> &Arc<Namespace> {
        &self.ns
    }

    /// A copy of the CONNECT payload (`auth` in `socket.io-client`), `{}` if none.
    /// Available to the middleware and the connection handlers; `{}` once those ran
    /// (unlike Node, which keeps `socket.handshake.auth`): copy what is needed later
    /// into [`Socket::set_data`].
    pub fn auth(&self) -> Value {
        Value::clone(&self.auth_shared())
    }

    /// The CONNECT payload without copying it.
    pub(crate) fn auth_shared(&self) -> Arc<Value> {
        self.auth.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Drops the CONNECT payload (see the `auth` field) for the one `{}` every socket
    /// shares, so what a socket keeps for it costs no allocation of its own.
    fn forget_auth(&self) {
        static FORGOTTEN: LazyLock<Arc<Value>> =
            LazyLock::new(|| Arc::new(Value::Object(serde_json::Map::new())));
        *self.auth.write().unwrap_or_else(|e| e.into_inner()) = FORGOTTEN.clone();
    }

    /// The HTTP request that opened the connection.
    pub fn handshake(&self) -> &HandshakeInfo {
        self.session.handshake()
    }

    /// The server this socket belongs to.
    pub(crate) fn io(&self) -> &Arc<super::server::IoInner> {
        self.client.io()
    }

    /// The Engine.IO session id of the underlying connection.
    pub fn connection_id(&self) -> Sid {
        self.session.sid()
    }

    /// A copy of the application data.
    pub fn data(&self) -> Value {
        self.data.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the application data (saved to a durable session store, if any).
    pub fn set_data(&self, value: Value) {
        self.update_data(|data| *data = value);
    }

    /// Changes the application data in place, under its lock: two changes of
    /// different keys at once (a token refresh storing its claims, the Admin UI
    /// marking the socket) both hold, where a read, then a [`Self::set_data`], lost
    /// one of them. Then saved and told as by `set_data`. `change` must not touch
    /// this socket's data itself.
    pub fn update_data(&self, change: impl FnOnce(&mut Value)) {
        change(&mut self.data.write().unwrap_or_else(|e| e.into_inner()));
        self.save_durable();
        // Not told for a closed socket whose id a resumed session holds now: an
        // observer keeps data by socket id (the Admin UI), and this socket's would
        // show as the resumed one's. (Saved it is not either: it is not connected.)
        if let Some(o) = self.client.io().observer()
            && !self.superseded()
        {
            o.data_changed(self);
        }
    }

    /// Whether this socket resumed a previous session (connection state recovery):
    /// same id, rooms and data, missed events replayed.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    pub(crate) fn pid(&self) -> Option<Sid> {
        self.pid
    }

    /// Whether the socket is still connected.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    fn lock_closed(&self) -> std::sync::MutexGuard<'_, bool> {
        self.closed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the socket has closed and its id is another socket's now: its client
    /// resumed the session on another connection ([`Socket::take_over`], or its close
    /// ran on another thread while the client came back). Its handlers may still run
    /// (connection handlers held up, disconnect handlers), and whoever kept it (the
    /// API, another node's request) may still call it; the room index and the
    /// observers know sockets by id, so what it does to its rooms would be done to
    /// the resumed socket's. A look only: [`Socket::change_rooms`] decides under the
    /// locks that make it hold.
    fn superseded(&self) -> bool {
        // Copied out: the lock is not held while the namespace's is taken.
        let closed = *self.lock_closed();
        closed
            && self
                .ns
                .socket(self.id)
                .is_some_and(|held| !std::ptr::eq(Arc::as_ptr(&held), self))
    }

    /// Makes `change`, a change of this socket's rooms in the room index, unless the
    /// socket has closed and its id is another socket's now (then `None`, and nothing
    /// changed): a resumed session's rooms are its own, not those its stale socket's
    /// handlers join or leave after the take-over.
    ///
    /// `change` must only touch the index: it runs under this socket's `closed` lock
    /// or the namespace's lock of its sockets, and a room handler or an observer run
    /// from it could wait for either.
    ///
    /// Not closed: `change` runs under the `closed` lock, so the close waits for it
    /// and then takes the socket out of what it joined (or keeps it in its saved
    /// session, as for any join before a close). Closed: under the namespace's lock
    /// of its sockets, which a resumed socket is registered under (and joins its
    /// rooms only after), so the id's holder cannot change between the look and the
    /// change. A leave (`joining` false) is made while nobody else holds the id.
    ///
    /// A join is made only while the namespace still holds this very socket: its
    /// close is under way, and takes it out of the rooms once its session is saved
    /// from them (a resumed socket rejoining its session's rooms while its own new
    /// connection drops must not lose them: the saved session would have none). Once
    /// the namespace has let it go, whoever holds the id, a join is not made: it went
    /// to a resumed socket registering meanwhile (before 2026-12-08; what the stale
    /// socket's handlers joined was left again only if they ended before that
    /// registration), or, nobody resuming, stayed in the index with nothing to take
    /// it out. A socket that never registered and was let go (refused, or replaced
    /// by the session it resumed) is closed too ([`Self::mark_closed`]): held
    /// somewhere, it joins nothing.
    fn change_rooms<T>(&self, joining: bool, change: impl FnOnce() -> T) -> Option<T> {
        {
            let closed = self.lock_closed();
            if !*closed {
                return Some(change());
            }
        }
        // Closed for good: the lock is not needed for the rest.
        self.ns.with_holder(self.id, |held| {
            let itself = held.is_some_and(|held| std::ptr::eq(Arc::as_ptr(held), self));
            let allowed = if joining {
                itself
            } else {
                held.is_none() || itself
            };
            allowed.then(change)
        })
    }

    /// Marks the socket closed: by its close ([`Self::on_closed`]), or, for one the
    /// namespace never registered, when it is let go (refused by a middleware, its
    /// connection closed before registration, replaced by the session it resumed):
    /// whoever still holds it then joins no room through it (see
    /// [`Self::change_rooms`]) and waits for no acknowledgement.
    pub(crate) fn mark_closed(&self) {
        *self.lock_closed() = true;
    }

    /// Lets go of a socket the namespace never registered: marked closed first, so
    /// that nothing joins through it after it leaves the rooms its middleware joined.
    pub(crate) fn let_go(&self) {
        self.mark_closed();
        self.ns.leave_all(self.id);
    }

    /// Emits an event to this client.
    pub fn emit(&self, event: &str, payload: impl Into<Payload>) -> Result<(), EmitError> {
        if is_reserved_event(event) {
            return Err(EmitError::ReservedEvent);
        }
        let payload = payload.into();
        let recorded = self.ns.recovery().is_some();
        if !recorded && let Some(o) = self.client.io().observer() {
            // With recovery the event goes through a broadcast, which tells it.
            o.event_sent(self, event, &payload.args);
        }
        if recorded {
            // Through the recorded path, so the event gets an offset and is replayed
            // if this client drops before receiving it (as Node does).
            return match BroadcastOperator::new(self.ns.clone())
                .to(self.id.as_str())
                .emit(event, payload)
            {
                0 => Err(EmitError::Disconnected),
                _ => Ok(()),
            };
        }
        let packet = event_packet(self.namespace(), event, payload, None);
        self.send_packet(&packet, false)
    }

    /// Emits an event and waits up to `timeout` for the client's acknowledgement.
    /// Refused at once ([`AckError::TooManyWaiting`], nothing sent) while
    /// [`MAX_PENDING_ACKS`] of this socket's acknowledgements are waiting.
    pub fn emit_with_ack(
        self: &Arc<Self>,
        event: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Payload, AckError>> + Send + 'static {
        let payload = payload.into();
        if let Some(o) = self.client.io().observer() {
            o.event_sent(self, event, &payload.args);
        }
        let sent = self.start_ack(event, payload, timeout);
        async move { sent?.await }
    }

    /// Sends an event asking for an acknowledgement, now; `Err` when it was not sent
    /// (nothing waits then), else what waits up to `timeout` for the answer. A
    /// broadcast with acks counts only the sockets this sent to.
    pub(crate) fn start_ack(
        self: &Arc<Self>,
        event: &str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<impl Future<Output = Result<Payload, AckError>> + Send + 'static, AckError> {
        if is_reserved_event(event) {
            return Err(AckError::Emit(EmitError::ReservedEvent));
        }
        let id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut acks = self.lock_acks();
            // A closed socket's acknowledgements were let go (the close clears them
            // after it marks the socket closed, under this lock): one asked for now
            // would wait out its whole timeout.
            if *self.lock_closed() {
                return Err(AckError::Disconnected);
            }
            if acks.len() >= MAX_PENDING_ACKS {
                return Err(AckError::TooManyWaiting);
            }
            acks.insert(id, tx);
        }
        let packet = event_packet(self.namespace(), event, payload, Some(id));
        if let Err(err) = self.send_packet(&packet, false) {
            self.lock_acks().remove(&id);
            return Err(AckError::Emit(err));
        }
        let acks = Arc::downgrade(self);
        Ok(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(payload)) => Ok(payload),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => {
                    if let Some(acks) = acks.upgrade() {
                        acks.lock_acks().remove(&id);
                    }
                    Err(AckError::Timeout)
                }
            }
        })
    }

    fn lock_acks(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Payload>>> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins rooms.
    pub fn join(&self, rooms: &[&str]) {
        let occupied = self.join_unreported(rooms);
        self.ns.report_room_changes(self.id, &occupied, &[]);
        self.save_durable();
    }

    /// Joins rooms, noting where the recovery buffer stands for each, without
    /// reporting the rooms that became occupied (returned) or saving the durable
    /// session: [`Self::join`] up to where a room handler may run.
    #[must_use = "the rooms that became occupied are to be reported"]
    fn join_unreported(&self, rooms: &[&str]) -> Vec<Room> {
        if let (Some(buffer), Some(pid)) = (self.ns.recovery(), self.pid)
            && self.connected()
        {
            let adapter = self.ns.adapter();
            // Its own id's room it is in from the start, whatever the index says.
            buffer.note_joins(pid, self, self.connected_at_offset, rooms, |room| {
                room == self.id.as_str() || adapter.is_in(self.id, room)
            });
        }
        self.join_unnoted(rooms)
    }

    /// Holds off this socket's other bounded joins while the holder counts its rooms
    /// and joins: a bound on the rooms per socket checked under it holds however many
    /// join at once (a backend's replies, another node's `socketsJoin`, the client's
    /// own join). [`Self::join_within`] takes it itself, and releases it before the
    /// room handlers run, so a handler may join this socket; whoever holds it across
    /// [`Self::join`] must know its room handlers do not.
    pub fn lock_joins(&self) -> std::sync::MutexGuard<'_, ()> {
        self.joins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins `rooms` unless the socket has left; if it leaves while it joins (its
    /// disconnect took it out of its rooms just before this join put it back), it is
    /// taken out of them again once the namespace no longer holds it. For joins that
    /// come from elsewhere than the socket's own handlers (a backend's reply to a
    /// forwarded event).
    pub fn join_while_connected(&self, rooms: &[&str]) {
        // Unbounded: no count, and no join lock taken (its callers may hold it).
        self.join_within_while_connected(rooms, usize::MAX);
    }

    /// [`Self::join_within`] for joins that come from elsewhere than the socket's own
    /// handlers, only while the socket is connected: one whose close ran between a
    /// caller's check and this join is taken out of the rooms again (`join_within`
    /// alone does that only for a socket connected when it began; a socket gone
    /// before was joined and left in them for good). Returns what `join_within` does.
    pub fn join_within_while_connected(&self, rooms: &[&str], max: usize) -> usize {
        if !self.connected() {
            return 0;
        }
        let refused = self.join_within(rooms, max);
        self.leave_if_gone();
        refused
    }

    /// After a join from elsewhere than the socket's own handlers (another node's
    /// `socketsJoin`, the API, a backend's reply) of a socket that was connected when
    /// the join began: one whose disconnect took it out of its rooms just before the
    /// join put it back is taken out of them again, so no room is left holding a
    /// socket that is gone — never vacated, its size wrong.
    ///
    /// Only once the namespace no longer holds the socket: a disconnect clears the
    /// flag, then saves the session for recovery from the socket's rooms, then takes
    /// the socket out of the namespace and its rooms. Leaving in between took every
    /// room out of the saved session, and the client resumed in none.
    ///
    /// The look at the namespace and the leave are made under its lock of its sockets:
    /// a session resumed under this id in between (registered, then in its rooms)
    /// was taken out of them.
    fn leave_if_gone(&self) {
        if self.connected() {
            return;
        }
        let vacated = self.ns.with_holder(self.id, |held| {
            held.is_none()
                .then(|| self.ns.leave_all_unreported(self.id))
        });
        if let Some(vacated) = vacated {
            self.ns.report_room_changes(self.id, &[], &vacated);
        }
    }

    /// Joins those of `rooms` it is not in while it is in fewer than `max` rooms (its
    /// own id room aside); returns how many of `rooms` it did not look at because it
    /// had reached `max` (counted in the engine's `room_joins_refused`: rooms it was
    /// already in may be among them). Each room named costs a look-up until the first
    /// new one past the bound, the rest none: a message naming a million distinct
    /// rooms costs a socket at its bound at most `max` + 1 (names repeated in one
    /// message are dropped by [`Namespace::add_sockets_local`](super::Namespace)).
    ///
    /// The count is read and the rooms joined under [`Self::lock_joins`], so joins
    /// at once (another node's request, a backend's reply, the client's own) cannot
    /// each see room for theirs and pass the bound together. A socket that was
    /// connected when the join began and is gone by its end is taken out of the rooms
    /// again, as by [`Self::join_while_connected`].
    pub fn join_within(&self, rooms: &[&str], max: usize) -> usize {
        // Nothing to count against the resumed socket's rooms (the join itself would
        // not be made: see `change_rooms`).
        if self.superseded() {
            return 0;
        }
        // A socket still in its middleware is not connected yet, and not left.
        let was_connected = self.connected();
        if max == usize::MAX {
            self.join(rooms);
            if was_connected {
                self.leave_if_gone();
            }
            return 0;
        }
        let gate = self.lock_joins();
        let adapter = self.ns.adapter();
        let mut count = adapter.socket_room_count(self.id);
        let mut new: Vec<&str> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut refused = 0;
        for (i, &room) in rooms.iter().enumerate() {
            if room == self.id.as_str() || seen.contains(room) || adapter.is_in(self.id, room) {
                continue;
            }
            if count >= max {
                refused = rooms.len() - i;
                break;
            }
            count += 1;
            seen.insert(room);
            new.push(room);
        }
        let occupied = match new.is_empty() {
            true => Vec::new(),
            false => self.join_unreported(&new),
        };
        drop(gate);
        if !new.is_empty() {
            self.ns.report_room_changes(self.id, &occupied, &[]);
            self.save_durable();
            if was_connected {
                self.leave_if_gone();
            }
        }
        if refused > 0 {
            self.client
                .io()
                .metrics()
                .room_joins_refused
                .fetch_add(refused as u64, std::sync::atomic::Ordering::Relaxed);
        }
        refused
    }

    /// Joins rooms without recording where the recovery buffer stands, reporting the
    /// rooms that became occupied, nor saving the durable session: for a socket
    /// resuming its session, which joins with the buffer locked (its memberships come
    /// with the session), reports the rooms once the lock is released (their handlers
    /// may broadcast) and is saved once it is done. Returns the rooms to report.
    #[must_use = "the rooms that became occupied are to be reported"]
    pub(crate) fn join_unnoted(&self, rooms: &[&str]) -> Vec<Room> {
        let Some(occupied) = self.change_rooms(true, || self.ns.join_unreported(self.id, rooms))
        else {
            tracing::debug!(socket = %self.id, "a closed socket's join not made");
            return Vec::new();
        };
        let observer = self.client.io().observer();
        for room in rooms {
            self.step(Step::joined(room));
            if let Some(o) = observer {
                o.joined(self.namespace(), room, self.id);
            }
        }
        occupied
    }

    /// Leaves a room. Leaving a room the socket is not in changes nothing and costs
    /// nothing: no step, no session save (a client asking to leave made-up rooms in a
    /// loop would otherwise make one write to Redis each).
    ///
    /// A socket that has closed leaves nothing once its id is another socket's (a
    /// session resumed on another connection): see [`Self::change_rooms`].
    pub fn leave(&self, room: &str) {
        // (`is_in` leaves out the socket's own id room, which Node lets it leave.)
        if room != self.id.as_str() && !self.ns.adapter().is_in(self.id, room) {
            return;
        }
        let noted = match (self.ns.recovery(), self.pid) {
            (Some(buffer), Some(pid)) if self.connected() && room != self.id.as_str() => {
                Some((buffer, pid))
            }
            _ => None,
        };
        let Some(vacated) = self.change_rooms(false, || self.ns.leave_unreported(self.id, room))
        else {
            tracing::debug!(socket = %self.id, "a closed socket's leave not made: its session was resumed");
            return;
        };
        // Reported outside the locks `change_rooms` took: a handler may broadcast.
        if vacated {
            self.ns
                .report_room_changes(self.id, &[], &[Room::from(room)]);
        }
        // After the leave: an event delivered to the room just before it still counts.
        if let Some((buffer, pid)) = noted {
            buffer.note_leave(pid, self, self.connected_at_offset, room);
        }
        self.step(Step::left(room));
        if let Some(o) = self.client.io().observer() {
            o.left(self.namespace(), room, self.id);
        }
        self.save_durable();
    }

    /// The socket as the cluster describes it (Node's `RemoteSocket` fields, with
    /// Node's handshake shape).
    pub fn info(&self) -> SocketInfo {
        SocketInfo {
            id: self.id.to_string(),
            handshake: node_handshake(self.handshake(), &self.auth_shared()),
            rooms: self.rooms(),
            data: self.data(),
        }
    }

    /// The recovery session as a durable store keeps it, while the socket is live
    /// (`None` once it left: what its close decided, kept or forgotten, stands).
    pub fn durable_session(&self) -> Option<DurableSession> {
        if !self.connected() {
            return None;
        }
        let (Some(buffer), Some(pid)) = (self.ns.recovery(), self.pid) else {
            return None;
        };
        self.durable_session_with(buffer, pid, &buffer.memberships_of(pid))
    }

    /// The session as stored, or `None` when it is larger than a session any node
    /// resumes (`recovery.max_bytes_per_session`, as the in-process buffer keeps): a
    /// node reading it would refuse it (it cannot tell it from a forged one), so it is
    /// not written, and the one stored before is forgotten ([`Socket::save_durable`]).
    fn durable_session_with(
        &self,
        buffer: &RecoveryBuffer,
        pid: Sid,
        memberships: &Memberships,
    ) -> Option<DurableSession> {
        let session = DurableSession {
            sid: self.id.to_string(),
            pid: pid.to_string(),
            rooms: self.rooms(),
            memberships: memberships.to_durable(buffer),
            data: self.data(),
            offset: Some(buffer.offset_string(self.connected_at_offset)),
            epoch: self.epoch,
            expires_in: None,
        };
        (super::recovery::durable_bytes(buffer, &session) <= buffer.config().max_bytes_per_session)
            .then_some(session)
    }

    /// With a durable session store: writes the session now, so the client can resume
    /// on another node even if this one dies without a word (DESIGN §5). A session too
    /// large to be resumed is forgotten instead.
    pub(crate) fn save_durable(&self) {
        if !self.connected() {
            return;
        }
        let (Some(store), Some(buffer), Some(pid)) = (
            self.ns.adapter().session_store(),
            self.ns.recovery(),
            self.pid,
        ) else {
            return;
        };
        match self.durable_session_with(buffer, pid, &buffer.memberships_of(pid)) {
            Some(session) => store.save(session, store.live_ttl(self.durable_ttl()), false),
            // Still connected: its next save, once it fits again, must be taken.
            None => store.forget(pid.as_str(), self.epoch, false),
        }
    }

    fn durable_ttl(&self) -> Duration {
        self.ns
            .recovery()
            .map_or(Duration::ZERO, |b| b.config().max_disconnection_duration)
    }

    /// The socket's rooms, its own id first (as in Node, where every socket is in the
    /// room named by its id).
    pub fn rooms(&self) -> Vec<String> {
        let mut rooms = vec![self.id.to_string()];
        rooms.extend(
            self.ns
                .adapter()
                .socket_rooms(self.id)
                .iter()
                .map(|r| r.to_string()),
        );
        rooms
    }

    /// Broadcasts to `room`, this socket excluded.
    pub fn to(&self, room: impl Into<Room>) -> BroadcastOperator {
        self.broadcast().to(room)
    }

    /// Broadcasts to every other socket of the namespace.
    pub fn broadcast(&self) -> BroadcastOperator {
        BroadcastOperator::new(self.ns.clone()).except_socket(self.id)
    }

    /// Disconnects the socket from its namespace (the client sees
    /// `io server disconnect` and does not reconnect by itself).
    pub fn disconnect(self: &Arc<Self>) {
        if !self.connected() {
            return;
        }
        let packet = Packet::new(PacketType::Disconnect, self.namespace(), None);
        let _ = self.send_packet(&packet, false);
        self.client.remove_socket(self, &self.session);
        self.on_closed(DisconnectReason::ServerNamespaceDisconnect);
    }

    /// A new connection presented this socket's `pid`: the client has abandoned this
    /// connection (it has not been seen to drop yet). Close it and keep the session so
    /// the new connection can resume it. The connection is closed before the socket's
    /// disconnect handlers run, so they see it closed, as for any transport close.
    pub(crate) fn take_over(self: &Arc<Self>) {
        // Gone meanwhile (its client left the namespace, and may have joined it again
        // on that connection): nothing to take over, and its connection is not closed.
        if !self.connected() {
            return;
        }
        tracing::debug!(socket = %self.id, "session taken over by a reconnecting client");
        self.note("the client resumed this session on a new connection");
        self.client.remove_socket(self, &self.session);
        // Its client is on the new connection: nobody polls this one for what it held.
        self.session.close_unread(DisconnectReason::ForcedClose);
        self.on_closed(DisconnectReason::TransportClose);
    }

    /// Node's `socket.disconnect(true)`: disconnects every socket of this socket's
    /// connection from its namespace (`server namespace disconnect`, so no session is
    /// kept for recovery), then closes the connection. A kick, not a drop: closing the
    /// connection alone (`forced close`) keeps the sessions, and the client, which
    /// reconnects by itself after a transport close, resumed them with its `pid` (the
    /// middleware skipped, its rooms back).
    pub fn disconnect_connection(self: &Arc<Self>) {
        // First: a socket closed by anything else from here on (the connection closing
        // as a slow consumer when a DISCONNECT packet overflows its queue), or one
        // still resuming, keeps no session either.
        self.session.mark_kicked();
        for socket in self.client.sockets() {
            socket.disconnect();
        }
        self.session.close(DisconnectReason::ForcedClose);
    }

    /// Closes the whole connection (every namespace of this client) with `reason`.
    /// Its sockets keep their sessions when `reason` is one recovery keeps them for.
    pub fn close_connection(&self, reason: DisconnectReason) {
        self.session.close(reason);
    }

    pub(crate) fn send_packet(&self, packet: &Packet, volatile: bool) -> Result<(), EmitError> {
        self.send_frames(&encode(packet), volatile)
    }

    pub(crate) fn send_frames(&self, frames: &[Frame], volatile: bool) -> Result<(), EmitError> {
        self.session.send(frames, volatile).map_err(emit_error)
    }

    /// Sends a recovered session's replay, which may exceed the queue bounds (see
    /// [`Session::send_replay`]).
    pub(crate) fn send_replay(&self, frames: &[Frame]) -> Result<(), EmitError> {
        self.session.send_replay(frames).map_err(emit_error)
    }

    /// The transport its connection uses now (`polling` until an upgrade, `sse` for
    /// a Server-Sent Events listener).
    pub fn transport(&self) -> TransportKind {
        self.session.transport()
    }

    pub(crate) fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// The underlying Engine.IO connection (Node's `socket.conn`), shared by every
    /// namespace this client joined.
    pub fn conn(&self) -> &Arc<Session> {
        &self.session
    }

    pub(crate) fn connection_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Marks the socket connected (not yet told to the observer: see
    /// [`Self::tell_connected`]).
    pub(crate) fn mark_connected(self: &Arc<Self>) {
        self.connected.store(true, Ordering::Release);
        self.step(Step::Connected {
            recovered: self.recovered,
        });
    }

    /// Tells the observer the socket connected: once it is registered, and before
    /// anything can close it (the caller holds the client's lock, which a close
    /// takes first), so the observer hears `connected` before `disconnected`.
    pub(crate) fn tell_connected(self: &Arc<Self>) {
        if let Some(o) = self.client.io().observer() {
            o.connected(self);
        }
    }

    /// Handles an EVENT packet from the client, after the connection handlers.
    pub(crate) fn on_event(self: &Arc<Self>, packet: Packet) {
        if let Some(early) = self.lock_early().as_mut() {
            early.packets.push(packet);
            return;
        }
        self.dispatch_event(packet);
    }

    /// Runs the connection handlers, then the events that arrived meanwhile, in order;
    /// events arriving while those run still queue behind them. A close from another
    /// thread meanwhile has already taken the socket out of everything the engine
    /// holds; its disconnect handlers run here, after the connection handlers (the
    /// events still queued then are dropped), and the rooms those handlers joined are
    /// left. On a
    /// socket closed before they began (the client left, or its connection closed,
    /// between the socket's registration and now) neither runs: the application never
    /// saw it.
    pub(crate) fn run_connect(self: &Arc<Self>) {
        let closed_first = match self.lock_early().as_mut() {
            Some(early) => {
                early.running_on = Some(std::thread::current().id());
                early.closed.is_some()
            }
            None => false,
        };
        // A handler that panics must not leave closes waiting and events queueing
        // for handlers that will never finish.
        let mut guard = EarlyGuard(Some(self));
        if !closed_first {
            self.ns.handlers().run_connect(self);
        }
        self.forget_auth();
        let closed = loop {
            let batch = {
                let mut early = self.lock_early();
                match early.as_mut() {
                    // Not once it is closed: the application's handlers would run
                    // for a socket that is gone (with no rate-limit bucket, which
                    // the rules no longer make for it), or, its id resumed since,
                    // as the resumed socket.
                    Some(e) if e.closed.is_none() && !e.packets.is_empty() => {
                        std::mem::take(&mut e.packets)
                    }
                    Some(e) => {
                        let closed = e.closed;
                        *early = None;
                        break closed;
                    }
                    None => break None,
                }
            };
            for packet in batch {
                self.dispatch_event(packet);
            }
        };
        guard.0 = None;
        if let Some(reason) = closed {
            self.leave_rooms_joined_late();
            self.after_close((!closed_first).then_some(reason));
        }
    }

    /// Takes a closed socket out of the rooms its connection handlers joined after the
    /// close had taken it out of its rooms (unless its id is another socket's
    /// already: a session resumed since).
    ///
    /// The look at the namespace and the leave are made under its lock of its sockets:
    /// a session resumed under this id in between (registered, then in its rooms)
    /// was taken out of them.
    fn leave_rooms_joined_late(self: &Arc<Self>) {
        let vacated = self.ns.with_holder(self.id, |held| {
            held.is_none_or(|held| Arc::ptr_eq(held, self))
                .then(|| self.ns.leave_all_unreported(self.id))
        });
        if let Some(vacated) = vacated {
            self.ns.report_room_changes(self.id, &[], &vacated);
        }
    }

    fn lock_early(&self) -> std::sync::MutexGuard<'_, Option<Box<Early>>> {
        self.early.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the disconnect handlers must wait for the connection handlers (then the
    /// close is recorded for [`Socket::run_connect`] to finish): they have not
    /// finished, and this is not the thread running them (a handler that disconnects
    /// its socket runs the disconnect handlers at once, as in Node).
    fn defer_disconnect(&self, reason: DisconnectReason) -> bool {
        let mut early = self.lock_early();
        match early.as_mut() {
            Some(e) if e.running_on != Some(std::thread::current().id()) => {
                e.closed = Some(reason);
                true
            }
            _ => false,
        }
    }

    fn dispatch_event(self: &Arc<Self>, packet: Packet) {
        let Some(Value::Array(mut args)) = packet.data else {
            return;
        };
        let name = match args.first() {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return,
        };
        args.remove(0);
        if let Some(o) = self.client.io().observer() {
            o.event_received(self, &name, &args);
        }
        let ack = packet.id.map(|id| AckSender::new(self.clone(), id));
        let payload = Payload {
            args,
            binary: packet.attachments,
        };
        self.ns
            .handlers()
            .run_event(Event::new(self.clone(), name, payload, ack));
    }

    /// Handles an ACK packet from the client.
    pub(crate) fn on_ack(&self, packet: Packet) {
        let Some(id) = packet.id else { return };
        let Some(tx) = self.lock_acks().remove(&id) else {
            return;
        };
        let args = match packet.data {
            Some(Value::Array(args)) => args,
            _ => Vec::new(),
        };
        let _ = tx.send(Payload {
            args,
            binary: packet.attachments,
        });
    }

    /// Notes a fact for the diagnosis of this socket's disconnect, worded for an
    /// operator with its numbers ("token expired at 12:00:01Z", "43 events refused in
    /// 1.0 s"); call it before closing. Only the last few are kept, the same fact
    /// twice in a row once; e-mail addresses and tokens in it are scrubbed.
    pub fn note(&self, fact: impl Into<String>) {
        let fact: String = fact.into();
        let fact = match crate::scrub::text(&fact) {
            std::borrow::Cow::Borrowed(_) => fact,
            std::borrow::Cow::Owned(scrubbed) => scrubbed,
        };
        let mut explained = self.lock_explained();
        let noted = &mut explained.get_or_insert_with(Box::default).noted;
        // The same fact again adds nothing: e.g. the events already in flight when
        // a rate-limited socket was told to go each find it over the limit.
        if noted.last() == Some(&fact) {
            return;
        }
        if noted.len() == MAX_NOTES {
            noted.remove(0);
        }
        noted.push(fact);
    }

    /// Why the socket left, explained (see [`crate::diagnosis`]); `None` while it is
    /// connected. Disconnect handlers read it.
    pub fn diagnosis(&self) -> Option<Diagnosis> {
        self.report().map(|r| r.diagnosis.get().clone())
    }

    /// The report of its disconnect (the diagnosis and the timeline that led to it);
    /// `None` while it is connected.
    pub fn report(&self) -> Option<Arc<diagnosis::Report>> {
        self.lock_explained()
            .as_ref()
            .and_then(|e| e.report.clone())
    }

    /// Marks a step on this socket's timeline, worded for an operator ("token
    /// refreshed, expires at 12:30:00Z", "12 events refused by the rate limit"); e-mail
    /// addresses and tokens in it are scrubbed. Only the last
    /// [`crate::SocketIoConfig::breadcrumbs`] steps are kept.
    pub fn mark(&self, text: &str) {
        self.step(Step::Marked(crate::scrub::text(text).into()));
    }

    /// Records a step; a mark equal to the socket's previous step is kept once (a
    /// streak of refused events is one step, not the whole ring).
    pub(crate) fn step(&self, step: Step) {
        let max = self.client.io().config.breadcrumbs;
        if max == 0 {
            // Timelines off: nothing allocated for them.
            return;
        }
        let mut explained = self.lock_explained();
        let explained = explained.get_or_insert_with(Box::default);
        if matches!(step, Step::Marked(_))
            && explained
                .trail
                .crumbs()
                .last()
                .is_some_and(|c| c.step == step)
        {
            return;
        }
        explained.trail.push(Crumb::now(step), max);
    }

    /// The socket's timeline: its own steps, its connection's and the node's since
    /// the connection opened, oldest first, the last
    /// [`crate::SocketIoConfig::breadcrumbs`] of them, with how many earlier steps are
    /// not shown.
    pub fn timeline(&self) -> (Vec<Crumb>, u32) {
        let explained = self.lock_explained();
        let own: Vec<&Crumb> = explained
            .as_ref()
            .map(|e| e.trail.crumbs().collect())
            .unwrap_or_default();
        let dropped = explained.as_ref().map_or(0, |e| e.trail.dropped());
        let (opened, session) = self.session.crumbs();
        let mut connection = vec![&opened];
        connection.extend(session.crumbs());
        let node = self.client.io().node_crumbs();
        let node: Vec<&Crumb> = node.iter().collect();
        breadcrumbs::merge(
            [&own, &connection, &node],
            opened.at_us,
            dropped,
            self.client.io().config.breadcrumbs,
        )
    }

    fn lock_explained(&self) -> std::sync::MutexGuard<'_, Option<Box<Explained>>> {
        self.explained.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket left its namespace: unregister, fail pending acks, run handlers.
    ///
    /// Everything the engine holds for it goes at once; the application's disconnect
    /// handlers wait for its connection handlers when those are still running on
    /// another thread (see [`Socket::run_connect`]).
    pub(crate) fn on_closed(self: &Arc<Self>, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        // Closed before anything below: from here on its room changes are checked
        // against whoever holds its id. Until the namespace lets go of it below, that
        // is itself, so they are made as before (its session is saved from its rooms
        // first, then it leaves them); once a resumed socket holds the id, none is.
        self.mark_closed();
        {
            let (breadcrumbs, dropped) = self.timeline();
            let mut facts = self.session.facts(reason);
            let facts_ending = facts.ending;
            let mut explained = self.lock_explained();
            let explained = explained.get_or_insert_with(Box::default);
            facts.noted = std::mem::take(&mut explained.noted);
            // The report has the steps now; the socket keeps only its diagnosis.
            explained.trail = Trail::default();
            let report = Arc::new(diagnosis::Report {
                at: std::time::SystemTime::now(),
                namespace: self.namespace().to_owned(),
                socket_id: self.id.to_string(),
                transport: facts.transport,
                reason: diagnosis::Reason::Disconnect(reason),
                diagnosis: diagnosis::Wording::of(facts),
                breadcrumbs,
                dropped_steps: dropped,
            });
            explained.report = Some(report.clone());
            let reports = &self.client.io().reports;
            if diagnosis::category_of(reason, facts_ending) == diagnosis::Category::Client {
                reports.push_client(report);
            } else {
                reports.push(report);
            }
        }
        let memberships = match (self.ns.recovery(), self.pid) {
            (Some(buffer), Some(pid)) => buffer.unregister_live(pid, Arc::as_ptr(self)),
            _ => Memberships::default(),
        };
        self.persist_for_recovery(reason, memberships);
        self.ns.remove(self);
        self.lock_acks().clear();
        tracing::debug!(socket = %self.id, nsp = %Untrusted(self.namespace()), %reason, "socket disconnected");
        if let Some(o) = self.client.io().observer() {
            o.disconnected(self, reason);
        }
        if self.defer_disconnect(reason) {
            return;
        }
        self.after_close(Some(reason));
    }

    /// The application's disconnect handlers (`None`: its connection handlers never
    /// ran, so neither do these), then the namespace let go when a pattern made it and
    /// this was its last socket: after the handlers, which may still broadcast.
    ///
    /// The disconnect handlers join nothing: they run once the namespace has let the
    /// socket go, and a closed socket joins only while it holds it
    /// ([`Socket::change_rooms`]).
    fn after_close(self: &Arc<Self>, handlers: Option<DisconnectReason>) {
        if let Some(reason) = handlers {
            self.ns.handlers().run_disconnect(self, reason);
        }
        if self.ns.removable() {
            self.client.io().release(&self.ns);
        }
    }

    /// Keeps the session for a later reconnect when the drop was not deliberate.
    fn persist_for_recovery(&self, reason: DisconnectReason, memberships: Memberships) {
        let (Some(buffer), Some(pid)) = (self.ns.recovery(), self.pid) else {
            return;
        };
        let recoverable = is_recoverable(reason) && !self.session.kicked();
        if let Some(store) = self.ns.adapter().session_store() {
            // Durable: the last snapshot, or nothing if the client left on purpose.
            let kept = recoverable
                .then(|| self.durable_session_with(buffer, pid, &memberships))
                .flatten();
            if let Some(session) = kept {
                tracing::debug!(
                    socket = %self.id,
                    rooms = session.rooms.len(),
                    offset = ?session.offset,
                    "session stored for recovery"
                );
                store.save(session, self.durable_ttl(), true);
            } else {
                store.forget(pid.as_str(), self.epoch, true);
            }
            return;
        }
        if !recoverable {
            return;
        }
        // Exactly as many as there are: the list is kept for the whole window.
        let joined = self.ns.adapter().socket_rooms(self.id);
        let mut rooms = Vec::with_capacity(1 + joined.len());
        rooms.push(Room::from(self.id.as_str()));
        rooms.extend(joined);
        let parts = SavedSessionParts {
            sid: self.id,
            pid,
            rooms,
            memberships,
            data: self.data(),
            connected_at_offset: self.connected_at_offset,
            epoch: self.epoch,
        };
        buffer.persist(parts, now());
    }
}

/// Node's `socket.handshake` object, as `fetchSockets` carries it across nodes.
fn node_handshake(h: &HandshakeInfo, auth: &Value) -> Value {
    let headers: serde_json::Map<String, Value> = h
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), Value::from(v.to_str().ok()?))))
        .collect();
    let issued = crate::breadcrumbs::to_us(h.issued) / 1000;
    let mut query = node_query(&h.query_params);
    if h.transport == TransportKind::Sse {
        // An Engine.IO client names its transport in the query; an SSE listener's is
        // said the same way, so other nodes (and Node servers) can tell.
        query.insert("transport".to_owned(), Value::from("sse"));
    }
    serde_json::json!({
        "headers": headers,
        "time": crate::diagnosis::http_date(issued / 1000),
        "address": h.address.ip().to_string(),
        "xdomain": h.headers.contains_key(http::header::ORIGIN),
        "secure": false,
        "issued": issued,
        "url": format!("/socket.io/?{}", h.query),
        "query": query,
        "auth": auth,
    })
}

/// `socket.handshake.query` as Node builds it from the decoded pairs
/// (`Object.fromEntries`): the last value of a repeated name, at the place where the
/// name first came.
fn node_query(params: &[(String, String)]) -> serde_json::Map<String, Value> {
    let mut query = serde_json::Map::new();
    for (name, value) in params {
        // An insertion-ordered map: replacing a value keeps the name's first place.
        query.insert(name.clone(), Value::from(value.as_str()));
    }
    query
}

/// What a failed send means to whoever emitted.
fn emit_error(err: SendError) -> EmitError {
    match err {
        SendError::Closed => EmitError::Disconnected,
        SendError::SlowConsumer => EmitError::SlowConsumer,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::eio::session::decode_query;

    #[test]
    fn handshake_query_is_decoded_with_the_last_value_of_a_repeated_name() {
        let params = decode_query("EIO=4&x=1&name=J%C3%BCrgen&x=2&q=a%20b%26c&bad=%zz");
        let query = serde_json::Value::Object(super::node_query(&params));
        assert_eq!(
            query,
            json!({"EIO": "4", "x": "2", "name": "Jürgen", "q": "a b&c", "bad": "%zz"})
        );
        let names: Vec<&String> = query
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(names, ["EIO", "x", "name", "q", "bad"]);
    }
}
