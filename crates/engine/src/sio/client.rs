//! One Engine.IO connection seen by Socket.IO: decodes packets (reassembling binary
//! attachments) and routes them to the connection's sockets, one per namespace.

use crate::untrusted::Untrusted;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;
use switchboard_protocol::socketio::{Decoder, Packet, PacketType};

use crate::adapter::{
    AdapterError, DurableSession, LogFilter, LogRead, LoggedEvent, Room, SessionStore,
};
use crate::breadcrumbs::Step;
use crate::diagnosis::{Category, Cutoff, Refusal, Stage};
use crate::eio::inbound::Charge;
use crate::eio::session::now;
use crate::eio::{Message, Session, SessionHandler};
use crate::reason::DisconnectReason;
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::TransportKind;

use super::broadcast::{append_offset, audience, encode};
use super::event::ConnectError;
use super::namespace::{Resume, auth_or_empty};
use super::recovery::{
    Listener, Memberships, RecoveryBuffer, ReplayStart, Restored, SavedSession, SavedSessionParts,
    Unreplayable, durable_parts, saved_from_parts,
};
use super::server::{IoInner, Reservation, Unreserved};
use super::socket::{Identity, Socket};

/// Per-connection state. Touched by the connection's read path and, briefly, by
/// middleware tasks completing a connect; a `std` mutex never held across `.await`.
#[derive(Debug)]
struct State {
    decoder: Decoder,
    /// The binary packet the decoder holds while its attachments arrive, as the node's
    /// inbound budget counts it (boxed: most connections never send one).
    reconstructing: Option<Box<Reconstructing>>,
    /// Bytes of the binary packet waiting for its attachments so far (its text part
    /// and the attachments in): a packet is one message, bounded by
    /// `engine.max_payload` whatever frames carry it ([`binary_too_large`]).
    binary_bytes: usize,
    /// Connected sockets by namespace; a connection rarely has more than a few.
    sockets: Vec<(String, Arc<Socket>)>,
    /// Namespaces whose CONNECT is running middleware.
    connecting: Vec<String>,
    /// The CONNECTs this connection has made, as [`ConnectAllowance`] counts them.
    connects: ConnectAllowance,
}

/// CONNECTs a connection may make in a burst: enough for every namespace it may hold
/// at once ([`MAX_NAMESPACES_PER_CONNECTION`]).
pub(crate) const CONNECT_BURST: u32 = MAX_NAMESPACES_PER_CONNECTION as u32;

/// How often a connection past its burst may CONNECT again: one a second.
///
/// Every bound the rules keep per socket (a rate limit's bucket, forwarded events
/// waiting) starts afresh with a new socket, and every socket costs lifecycle hooks,
/// a session save with recovery and a middleware run. Leaving a namespace and
/// connecting to it again on the same connection makes a new socket, so without this
/// a loop of `41`/`40` packets in one polling body would make thousands a second.
/// Real clients reconnect a namespace after a network change or a refused token,
/// seconds apart.
const CONNECT_INTERVAL_SECS: u32 = 1;

/// The CONNECTs of one connection as a generic cell rate algorithm counts them (one
/// number, so four bytes per connection): the second at which the connection would
/// have its whole burst again, counted from a process-wide epoch.
#[derive(Debug, Default, Clone, Copy)]
struct ConnectAllowance {
    full_at: u32,
}

impl ConnectAllowance {
    /// Takes one CONNECT at `now` (seconds since the epoch), if the burst has room.
    fn take(&mut self, now: u32) -> bool {
        let full_at = self.full_at.max(now);
        if full_at - now >= CONNECT_BURST * CONNECT_INTERVAL_SECS {
            return false;
        }
        self.full_at = full_at.saturating_add(CONNECT_INTERVAL_SECS);
        true
    }

    /// Whole seconds since the first call in this process (saturating after 136 years).
    fn now() -> u32 {
        static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
        let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
        let secs = tokio::time::Instant::now()
            .saturating_duration_since(epoch)
            .as_secs();
        u32::try_from(secs).unwrap_or(u32::MAX)
    }
}

/// Shared between the [`Client`] handler, its sockets and middleware tasks.
#[derive(Debug)]
pub(crate) struct ClientShared {
    io: Arc<IoInner>,
    state: Mutex<State>,
}

impl State {
    /// A connection in no namespace and joining none (after its last one was left, or
    /// a CONNECT refused) is held to the connect timeout: from now, unless a deadline
    /// is already set (a refused CONNECT does not extend the first one) or a binary
    /// packet is waiting for its attachments (whose deadline comes first; once whole,
    /// the packet names a namespace this connection is not in, which closes it).
    fn hold_to_connect_timeout(&self, session: &Session, timeout: Duration) {
        if self.sockets.is_empty() && self.connecting.is_empty() && self.reconstructing.is_none() {
            session.set_app_deadline_if_unset(now() + timeout);
        }
    }

    /// `nsp` is no longer connecting. The list is freed once empty: every connection
    /// connects at least once, and most never again.
    fn done_connecting(&mut self, nsp: &str) {
        self.connecting.retain(|n| n != nsp);
        if self.connecting.is_empty() {
            self.connecting = Vec::new();
        }
    }
}

impl ClientShared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server the connection belongs to.
    pub(crate) fn io(&self) -> &Arc<IoInner> {
        &self.io
    }

    /// `nsp` was left. A connection then in no namespace, joining none, is held to the
    /// connect timeout again, from now: joining a namespace and leaving it must not
    /// keep a connection (and its places among `max_connections` and its address's)
    /// for as long as it answers pings. The official client closes its connection when
    /// its last namespace goes.
    ///
    /// By the socket, not its namespace's name: the connection may hold a newer socket
    /// of that namespace by the time an older one is taken out (a take-over or a
    /// server-side disconnect racing the client's leaving and joining again), which
    /// then never heard its connection close and stayed connected for good.
    pub(crate) fn remove_socket(&self, socket: &Arc<Socket>, session: &Session) {
        let mut state = self.lock();
        state.sockets.retain(|(_, s)| !Arc::ptr_eq(s, socket));
        state.hold_to_connect_timeout(session, self.io.config.connect_timeout);
    }

    /// The connection's sockets now.
    pub(crate) fn sockets(&self) -> Vec<Arc<Socket>> {
        self.lock().sockets.iter().map(|(_, s)| s.clone()).collect()
    }

    fn socket(&self, nsp: &str) -> Option<Arc<Socket>> {
        self.lock()
            .sockets
            .iter()
            .find(|(n, _)| n == nsp)
            .map(|(_, s)| s.clone())
    }

    /// Whether the connection has joined (or is joining) any namespace.
    pub(crate) fn has_namespaces(&self) -> bool {
        let state = self.lock();
        !state.sockets.is_empty() || !state.connecting.is_empty()
    }
}

/// The [`SessionHandler`] of a Socket.IO connection.
#[derive(Debug)]
pub(crate) struct Client {
    shared: Arc<ClientShared>,
}

/// A binary packet waiting for its attachments: what its parts so far hold of the
/// node's inbound budget (`engine.max_inbound_bytes`), and since when. It holds them as
/// an unfinished WebSocket message does: from its first part it may be made to give
/// way to a newer message when the budget is full ([`GiveWay`] then closes its
/// session), and it must be whole within `engine.body_timeout`.
#[derive(Debug)]
struct Reconstructing {
    charge: Charge,
    since: tokio::time::Instant,
}

/// What a message did to the binary packet waiting for attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Its first part: the packet now waits.
    Started,
    /// Another attachment; it still waits.
    Continued,
    /// It is whole, or was refused.
    Ended,
}

/// The waker of a waiting binary packet's charge: woken when the packet gave way, it
/// closes the session. Holds the session weakly: the charge lives in the session's own
/// handler.
struct GiveWay {
    session: Weak<Session>,
    since: tokio::time::Instant,
    limit: usize,
}

impl std::task::Wake for GiveWay {
    fn wake(self: Arc<Self>) {
        if let Some(session) = self.session.upgrade() {
            session.close_cut_off(Cutoff::InboundGaveWay {
                limit: self.limit,
                after: tokio::time::Instant::now().saturating_duration_since(self.since),
            });
        }
    }
}

impl Client {
    /// Charges `part` more bytes of a binary packet that waits for attachments.
    fn hold(
        &self,
        state: &mut State,
        session: &Arc<Session>,
        part: usize,
    ) -> Result<Option<Held>, Cutoff> {
        let Some(budget) = self.shared.io.inbound.get() else {
            return Ok(None);
        };
        let first = state.reconstructing.is_none();
        let held = state.reconstructing.get_or_insert_with(|| {
            Box::new(Reconstructing {
                charge: Charge::new(budget.clone()),
                since: tokio::time::Instant::now(),
            })
        });
        let since = held.since;
        let mut result = held.charge.add(part, since);
        if first && result.is_ok() {
            let waker = std::task::Waker::from(Arc::new(GiveWay {
                session: Arc::downgrade(session),
                since,
                limit: budget.limit(),
            }));
            result = held
                .charge
                .wait(since, &std::task::Context::from_waker(&waker));
        }
        if result.is_err() {
            // Its bytes go back now; the session is closed.
            state.reconstructing = None;
        }
        result.map(|()| {
            Some(if first {
                Held::Started
            } else {
                Held::Continued
            })
        })
    }

    /// `engine.body_timeout`: how long a binary packet's attachments may take.
    fn body_timeout(&self) -> Duration {
        self.shared.io.config.engine.body_timeout
    }

    pub(crate) fn new(io: Arc<IoInner>) -> Self {
        let max = io.config.max_attachments;
        Client {
            shared: Arc::new(ClientShared {
                io,
                state: Mutex::new(State {
                    decoder: Decoder::new(max),
                    reconstructing: None,
                    binary_bytes: 0,
                    sockets: Vec::new(),
                    connecting: Vec::new(),
                    connects: ConnectAllowance::default(),
                }),
            }),
        }
    }

    /// `size` is the length of the text message that carried the packet.
    fn on_packet(&self, session: &Arc<Session>, packet: Packet, size: usize) {
        if packet.kind == PacketType::Connect {
            return self.connect(session, packet, size);
        }
        let Some(socket) = self.shared.socket(&packet.nsp) else {
            // A packet for a namespace this client has not joined: close, as Node does.
            tracing::debug!(sid = %session.sid(), nsp = %Untrusted(&packet.nsp), "packet for unjoined namespace");
            return session.close(DisconnectReason::ParseError);
        };
        match packet.kind {
            PacketType::Event | PacketType::BinaryEvent => socket.on_event(packet),
            PacketType::Ack | PacketType::BinaryAck => socket.on_ack(packet),
            PacketType::Disconnect => {
                self.shared.remove_socket(&socket, session);
                socket.on_closed(DisconnectReason::ClientNamespaceDisconnect);
            }
            PacketType::Connect | PacketType::ConnectError => {
                session.close(DisconnectReason::ParseError)
            }
        }
    }

    fn connect(&self, session: &Arc<Session>, packet: Packet, size: usize) {
        let nsp = packet.nsp;
        // Namespaces joined or joining, this CONNECT included.
        let joining = {
            let mut state = self.shared.lock();
            if state.sockets.iter().any(|(n, _)| *n == nsp) || state.connecting.contains(&nsp) {
                drop(state);
                return session.close(DisconnectReason::ParseError);
            }
            if !state.connects.take(ConnectAllowance::now()) {
                drop(state);
                tracing::debug!(sid = %session.sid(), "CONNECTs too often on one connection");
                let err = ConnectError::new(TOO_MANY_CONNECTS).with_category(Category::Policy);
                let fact = format!(
                    "more than {CONNECT_BURST} CONNECTs on one connection, then more than one a second"
                );
                report_refusal(&self.shared.io, session, &nsp, &err, fact);
                let _ = session.send(&connect_error(&nsp, &err), false);
                return;
            }
            state.connecting.push(nsp.clone());
            state.sockets.len() + state.connecting.len()
        };
        let decline = |message: &str, category: Category, fact: String| {
            self.shared.lock().done_connecting(&nsp);
            let err = ConnectError::new(message).with_category(category);
            report_refusal(&self.shared.io, session, &nsp, &err, fact);
            let _ = session.send(&connect_error(&nsp, &err), false);
        };
        if joining > MAX_NAMESPACES_PER_CONNECTION {
            tracing::debug!(sid = %session.sid(), "too many namespaces on one connection");
            return decline(
                TOO_MANY_NAMESPACES,
                Category::Policy,
                format!("more than {MAX_NAMESPACES_PER_CONNECTION} namespaces on one connection"),
            );
        }
        if auth_size(&nsp, size) > self.shared.io.config.max_connect_auth {
            tracing::debug!(sid = %session.sid(), nsp = %Untrusted(&nsp), size, "CONNECT payload too large");
            return decline(
                AUTH_TOO_LARGE,
                Category::Policy,
                format!(
                    "a CONNECT payload of {} over socketio.max_connect_auth ({})",
                    crate::diagnosis::bytes(auth_size(&nsp, size)),
                    crate::diagnosis::bytes(self.shared.io.config.max_connect_auth)
                ),
            );
        }
        let reservation = match self.shared.io.reserve(&nsp) {
            Ok(reservation) => reservation,
            Err(Unreserved::Unknown) => {
                return decline(
                    INVALID_NAMESPACE,
                    Category::Protocol,
                    "no such namespace on this server".to_owned(),
                );
            }
            Err(Unreserved::Full) => {
                tracing::debug!(sid = %session.sid(), nsp = %Untrusted(&nsp), "too many pattern namespaces");
                let limit = self.shared.io.config.max_pattern_namespaces;
                return decline(
                    TOO_MANY_SERVER_NAMESPACES,
                    Category::Policy,
                    format!(
                        "socketio.max_pattern_namespaces ({limit}) namespaces created from patterns exist, none of them idle"
                    ),
                );
            }
        };
        let ns = reservation.namespace().clone();
        let socket = Socket::new(
            ns.clone(),
            session.clone(),
            self.shared.clone(),
            auth_or_empty(packet.data),
        );
        let auth = socket.auth_shared();
        if session.transport() == TransportKind::Sse {
            return self.connect_sse(socket, reservation);
        }
        let durable = ns
            .adapter()
            .session_store()
            .filter(|_| ns.recovery().is_some());
        if let (Some(store), Some((pid, offset))) = (durable, recovery_claim(&auth))
            && ns
                .recovery()
                .is_some_and(|buffer| claim_is_well_formed(buffer, pid, offset))
        {
            // The session lives in the cluster's store: fetch it (and the part of the
            // log this node does not hold) before deciding anything.
            let (pid, offset) = (pid.to_owned(), offset.map(str::to_owned));
            let shared = self.shared.clone();
            let may_skip = ns.recovery().is_some_and(|b| b.config().skip_middlewares);
            let in_flight = super::server::ResumeInFlight::new(socket.io());
            tokio::spawn(async move {
                let _in_flight = in_flight;
                // Taking the session deletes it from the store: when the middleware is
                // to run anyway, it runs first, so a client it refuses (someone who
                // knows a `pid` but holds no valid token) leaves the session where it
                // was for its owner. Node takes it first and loses it.
                if !may_skip && let Err(err) = run_middleware(&socket).await {
                    return refuse(&shared, &socket, reservation, &err);
                }
                let prepared = prepare_durable(&socket, store.clone(), &pid, offset).await;
                if prepared.is_none() {
                    catch_up_to_log_end(&socket, &store).await;
                }
                let skip = may_skip && prepared.is_some();
                if may_skip
                    && !skip
                    && let Err(err) = run_middleware(&socket).await
                {
                    return refuse(&shared, &socket, reservation, &err);
                }
                finish_connect(
                    &shared,
                    socket,
                    prepared,
                    None,
                    reservation,
                    Passage::of(skip),
                );
            });
            return;
        }
        // Node's `skipMiddlewares`: a client resuming a live session skips middleware.
        let resuming = ns.recovery().is_some_and(|buffer| {
            buffer.config().skip_middlewares
                && recovery_claim(&auth).is_some_and(|(pid, _)| buffer.has_session(pid))
        });
        if resuming || ns.handlers().middleware().is_empty() {
            return finish_connect(
                &self.shared,
                socket,
                None,
                None,
                reservation,
                Passage::of(resuming),
            );
        }
        let shared = self.shared.clone();
        tokio::spawn(async move {
            match run_middleware(&socket).await {
                Ok(()) => finish_connect(
                    &shared,
                    socket,
                    None,
                    None,
                    reservation,
                    Passage::Middleware,
                ),
                Err(err) => refuse(&shared, &socket, reservation, &err),
            }
        });
    }

    /// The CONNECT of a Server-Sent Events listener (made on its behalf by the SSE
    /// transport): the middleware always runs (it joins the rooms the request asks
    /// for), then, with recovery on and a `Last-Event-ID`, the events of those rooms
    /// after it are replayed — from this node's buffer, and from the durable log for
    /// what the buffer does not hold.
    fn connect_sse(&self, socket: Arc<Socket>, reservation: Reservation) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if let Err(err) = run_middleware(&socket).await {
                return refuse(&shared, &socket, reservation, &err);
            }
            let replay = match last_event_id(socket.session()) {
                Some(id) => Some(prepare_sse(&socket, &id).await),
                None => None,
            };
            finish_connect(
                &shared,
                socket,
                None,
                replay,
                reservation,
                Passage::Middleware,
            );
        });
    }
}

/// The `Last-Event-ID` an SSE listener presents: the header its `EventSource` sends
/// when it reconnects, or the `lastEventId` query parameter (a first connection, or
/// a client that cannot set headers).
fn last_event_id(session: &Session) -> Option<String> {
    let info = session.handshake();
    let header = info
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let query = || {
        info.query_params
            .iter()
            .find(|(name, _)| name == "lastEventId")
            .map(|(_, v)| v.as_str())
    };
    header
        .or_else(query)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// What an SSE listener that presented a `Last-Event-ID` is owed.
#[derive(Debug)]
enum SseReplay {
    /// The events after where it starts: what was read from the durable log, then
    /// the buffer's.
    From(ReplayStart),
    /// Nothing can be replayed, for this reason (told to the client).
    Unavailable(&'static str),
}

/// What an SSE listener is told of its `Last-Event-ID`: `{"recovered":true,
/// "replayed":N}`, or `{"recovered":false,"reason":"…"}`.
fn replay_report(outcome: Result<usize, &'static str>) -> Value {
    match outcome {
        Ok(replayed) => serde_json::json!({ "recovered": true, "replayed": replayed }),
        Err(reason) => serde_json::json!({ "recovered": false, "reason": reason }),
    }
}

/// Why an SSE listener's missed events cannot be replayed.
const RECOVERY_OFF: &str = "connection state recovery is off for this namespace";
const OFFSET_UNKNOWN: &str = "unknown event id";
const OFFSET_GONE: &str = "event id no longer available";
const LOG_UNAVAILABLE: &str = "event log unavailable";
const TOO_MANY_MISSED: &str = "too many missed events";

/// What an SSE listener is told of a replay that could not be made.
fn unreplayable(why: Unreplayable) -> &'static str {
    match why {
        Unreplayable::Gap => OFFSET_GONE,
        Unreplayable::TooLarge => TOO_MANY_MISSED,
    }
}

/// Where an SSE listener's replay starts, and the part of it this node's buffer does
/// not hold, read from the durable log (recovery on).
async fn prepare_sse(socket: &Arc<Socket>, id: &str) -> SseReplay {
    let ns = socket.ns();
    let Some(buffer) = ns.recovery() else {
        return SseReplay::Unavailable(RECOVERY_OFF);
    };
    let Some(from) = buffer.parse_offset(id) else {
        return SseReplay::Unavailable(OFFSET_UNKNOWN);
    };
    if let Some(unavailable) = log_offset_out_of_window(buffer, from) {
        return SseReplay::Unavailable(unavailable);
    }
    let Some(store) = ns.adapter().session_store() else {
        return SseReplay::From(ReplayStart::buffer(from));
    };
    let rooms = sse_rooms(socket);
    match read_older(socket, &store, from, Listener::since_start(&rooms)).await {
        Ok(start) => SseReplay::From(start),
        Err(why) => SseReplay::Unavailable(why),
    }
}

/// How far a log offset's time (a Redis stream id is the milliseconds of Redis' clock
/// when it was written) may be from this node's clock and still be taken: the
/// difference between the clocks, which the cluster already needs within its forward
/// timeout.
const LOG_CLOCK_SLACK: Duration = Duration::from_secs(30);

/// Why an SSE listener's `Last-Event-ID`, an offset of the durable log, names nothing
/// it may be replayed from; `None` when it may. An SSE listener has no session, so
/// its id is the only claim: what this node's buffer holds after it is replayed
/// whatever its age (no read), but the durable log is read for it only as far back as
/// `max_disconnection_duration`, not for the whole stream (`0-0`, an anonymous request
/// reading up to `cluster.stream_max_len` entries from Redis); and an id from the
/// future is unknown at once, not waited for.
fn log_offset_out_of_window(buffer: &RecoveryBuffer, from: u128) -> Option<&'static str> {
    if !buffer.is_logged() {
        return None;
    }
    let now_ms = crate::breadcrumbs::to_us(std::time::SystemTime::now()) / 1000;
    let at_ms = u64::try_from(from >> 64).unwrap_or(u64::MAX);
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let window = ms(buffer.config().max_disconnection_duration + LOG_CLOCK_SLACK);
    if at_ms.saturating_add(window) < now_ms && from < buffer.covered_from() {
        return Some(OFFSET_GONE);
    }
    if at_ms > now_ms.saturating_add(ms(LOG_CLOCK_SLACK)) {
        return Some(OFFSET_UNKNOWN);
    }
    None
}

/// The rooms an SSE listener's replay covers: those its middleware joined (its own id
/// is new, so nothing was ever addressed to it).
fn sse_rooms(socket: &Socket) -> Vec<Room> {
    socket.ns().adapter().socket_rooms(socket.id())
}

/// Waits until this node's buffer has reached `from` (the client came from a node
/// that had read further), then reads from the durable log the events after `from`
/// for `listener` that the buffer no longer holds, at most `max_replay_bytes` of them:
/// where the replay starts, with their frames and the offset they cover up to (`from`
/// when the buffer holds everything).
async fn read_older(
    socket: &Socket,
    store: &Arc<dyn SessionStore>,
    from: u128,
    listener: Listener<'_>,
) -> Result<ReplayStart, &'static str> {
    let ns = socket.ns();
    let Some(buffer) = ns.recovery() else {
        return Err(OFFSET_UNKNOWN);
    };
    let from_wire = buffer.offset_string(from);
    // As far as the log reached now, so the replay holds everything sent before the
    // client came back, and this node has looked for a gap in its own read of it
    // first; as far as `from` at least (the client came from a node that had read
    // further).
    read_to_log_end(store, buffer, Some(from)).await;
    if buffer.head() < from {
        tracing::debug!(offset = %from_wire, "log position never reached; not recovered");
        return Err(OFFSET_UNKNOWN);
    }
    let covered = buffer.covered_from();
    if from >= covered {
        return Ok(ReplayStart::buffer(from));
    }
    let until = buffer.offset_string(covered);
    let max_bytes = buffer.config().max_replay_bytes;
    let keep = move |event: LoggedEvent| {
        let at = buffer.parse_offset(&event.offset).unwrap_or(u128::MAX);
        if !audience(&event.opts).includes(listener, at) {
            return None;
        }
        let mut packet = event.packet;
        append_offset(&mut packet, event.offset);
        Some(encode(&packet))
    };
    let keep: &LogFilter<'_> = &keep;
    let nsp = ns.name();
    let read = || store.read_log(nsp, &from_wire, &until, keep, max_bytes);
    let turn = socket.io().log_reads.acquire().await;
    let read = with_store_retry("read log", read).await;
    drop(turn);
    let older = match read {
        Ok(LogRead::Events(frames)) => frames,
        Ok(LogRead::Gone) => {
            tracing::debug!(offset = %from_wire, "offset no longer in the event log; not recovered");
            return Err(OFFSET_GONE);
        }
        Ok(LogRead::TooLarge) => {
            tracing::debug!(offset = %from_wire, max_bytes, "more missed in the event log than may be replayed; not recovered");
            return Err(TOO_MANY_MISSED);
        }
        Err(err) => {
            tracing::warn!(error = %err, "event log unavailable; client not recovered");
            return Err(LOG_UNAVAILABLE);
        }
    };
    Ok(ReplayStart {
        offset: from,
        older,
        older_until: covered,
    })
}

/// The refusal of a namespace that does not exist (or a name no pattern may create),
/// Node's message.
const INVALID_NAMESPACE: &str = "Invalid namespace";

/// The refusal of a CONNECT that would create a namespace past
/// `socketio.max_pattern_namespaces`.
pub(crate) const TOO_MANY_SERVER_NAMESPACES: &str = "too many namespaces on this server";

/// Namespaces one connection may have joined or be joining at once. Real clients
/// multiplex a handful; without a bound, one polling body of tiny CONNECT packets would
/// start tens of thousands of middleware runs (JWT checks) and make every further
/// CONNECT scan them all.
pub(crate) const MAX_NAMESPACES_PER_CONNECTION: usize = 64;

/// The refusal of a CONNECT beyond [`MAX_NAMESPACES_PER_CONNECTION`].
const TOO_MANY_NAMESPACES: &str = "too many namespaces on this connection";

/// The refusal of a CONNECT past the connection's [`CONNECT_BURST`].
const TOO_MANY_CONNECTS: &str = "too many connects on this connection";

/// The refusal of a CONNECT whose payload passes `max_connect_auth`.
pub(crate) const AUTH_TOO_LARGE: &str = "auth payload too large";

/// The size of a CONNECT packet's payload (its JSON text) in a text message of
/// `size` bytes: the message less the type digit and the `/nsp,` prefix.
fn auth_size(nsp: &str, size: usize) -> usize {
    let header = if nsp == "/" { 1 } else { 1 + nsp.len() + 1 };
    size.saturating_sub(header)
}

/// Runs the namespace middleware in order; the first refusal stops them.
async fn run_middleware(socket: &Arc<Socket>) -> Result<(), ConnectError> {
    use futures_util::FutureExt as _;
    for m in socket.ns().handlers().middleware() {
        // A middleware that panics refuses the CONNECT: unwinding out of the task
        // left the namespace marked as connecting on this connection for good (no
        // CONNECT to it again, and the connect timeout never applied).
        match std::panic::AssertUnwindSafe(m(socket.clone()))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome?,
            Err(_) => {
                tracing::error!(
                    namespace = %Untrusted(socket.namespace()),
                    "a connect middleware panicked; the CONNECT is refused"
                );
                return Err(ConnectError::new("server error")
                    .with_category(crate::diagnosis::Category::Server));
            }
        }
    }
    Ok(())
}

/// A middleware refused the connection: rooms a middleware joined are left and the
/// `reservation` released (a namespace created for this connection goes away), then
/// the client is told why.
fn refuse(
    shared: &Arc<ClientShared>,
    socket: &Arc<Socket>,
    reservation: Reservation,
    err: &ConnectError,
) {
    {
        let mut state = shared.lock();
        state.done_connecting(socket.namespace());
        let timeout = shared.io.config.connect_timeout;
        state.hold_to_connect_timeout(socket.session(), timeout);
    }
    socket.let_go();
    drop(reservation);
    let fact = format!("the namespace's middleware refused: {}", err.message);
    report_refusal(&shared.io, socket.session(), socket.namespace(), err, fact);
    let _ = socket.send_frames(&connect_error(socket.namespace(), err), false);
}

/// Counts and reports a refused CONNECT.
fn report_refusal(io: &IoInner, session: &Session, nsp: &str, err: &ConnectError, fact: String) {
    let category = err.category;
    session.metrics.refused(Stage::Connect, category);
    let mut refusal = Refusal::new(
        Stage::Connect,
        nsp,
        session.transport(),
        category,
        err.code(),
        &fact,
    );
    if category == Category::Pressure {
        refusal
            .evidence
            .push(crate::diagnosis::Memory::of(&session.metrics).fact());
    }
    io.refused(refusal);
}

/// How long a resuming client waits for this node to catch up with the log position
/// it presents (it came from a node that had read further), or with the log's end
/// when it was refused ([`catch_up_to_log_end`]).
const CATCH_UP_WAIT: Duration = Duration::from_secs(3);

/// Waits, at most [`CATCH_UP_WAIT`] in all, until this node has read the log through
/// its end now (asked of the store), and through `at_least`; whether it did. The
/// node's reader says when ([`SessionStore::read_through`]): nobody polls.
async fn read_to_log_end(
    store: &Arc<dyn SessionStore>,
    buffer: &RecoveryBuffer,
    at_least: Option<u128>,
) -> bool {
    let wait = async {
        let end = match store.log_end().await {
            Ok(end) => end.and_then(|end| buffer.parse_offset(&end)),
            Err(err) => {
                tracing::debug!(error = %err, "the log's end unknown");
                None
            }
        };
        let Some(target) = end.max(at_least) else {
            return;
        };
        store.read_through(&buffer.offset_string(target)).await;
    };
    tokio::time::timeout(CATCH_UP_WAIT, wait).await.is_ok()
}

/// A client that asked to resume and was refused starts afresh, and must get nothing
/// sent before it connected (`recovered: false`, then only what comes after). This
/// node delivers the log's events as its reader reaches them, which may be behind what
/// the log already holds: it waits (at most [`CATCH_UP_WAIT`]) until it has read as
/// far as the log reached now. Before, a client refused while the reader lagged got
/// the events published just before its reconnect. Redis unreachable: no wait (what
/// the log holds is unknown).
async fn catch_up_to_log_end(socket: &Socket, store: &Arc<dyn SessionStore>) {
    let Some(buffer) = socket.ns().recovery() else {
        return;
    };
    if !read_to_log_end(store, buffer, None).await {
        tracing::debug!("the log's end not reached; the refused client starts anyway");
    }
}

/// Reads of the durable event log a node runs at once for replays (resuming Socket.IO
/// clients and SSE listeners whose events this node's buffer no longer holds); the
/// others wait their turn. Each may read up to `cluster.stream_max_len` entries and
/// decode them all, and an SSE listener asks anonymously: without a bound, many at
/// once would take every core.
pub(crate) const MAX_LOG_READS: usize = 8;

/// How long a resuming client waits for an unreachable session store (Redis
/// restarting) before it is told it was not recovered.
const STORE_WAIT: Duration = Duration::from_secs(5);

/// Runs `op` until it succeeds or [`STORE_WAIT`] has passed, with a short pause between
/// tries; the last error if it never does. One try is cut off at the deadline too: a
/// store whose connection retries by itself (Redis refusing connections) would
/// otherwise hold the client past it.
async fn with_store_retry<'a, T, F>(what: &str, mut op: F) -> Result<T, AdapterError>
where
    F: FnMut() -> BoxFuture<'a, Result<T, AdapterError>>,
{
    let give_up = now() + STORE_WAIT;
    loop {
        let left = give_up.saturating_duration_since(now());
        let attempt = match tokio::time::timeout(left, op()).await {
            Ok(result) => result,
            Err(_) => Err(AdapterError::Unavailable(format!(
                "{what}: no answer within {STORE_WAIT:?}"
            ))),
        };
        match attempt {
            Ok(value) => return Ok(value),
            Err(err) if now() >= give_up => return Err(err),
            Err(err) => {
                tracing::debug!(error = %err, what, "session store unavailable; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A durable session taken from the store, with the frames of the events it missed
/// that this node's buffer no longer (or never) held.
#[derive(Debug)]
struct Prepared {
    session: SavedSession,
    start: ReplayStart,
}

/// Takes the session `pid` from the durable store and reads the older part of its
/// replay from the log. `None`: not recoverable (the client is told so).
///
/// The session is read first without taking it ([`SessionStore::peek`]) and checked
/// as it would be once taken, the application's `on_resume` included: a resume that
/// would be refused (another user's token with the first one's `pid`, a token that no
/// longer grants its rooms, a bad offset) leaves the session where it is. A take
/// fences the owner's socket off (its later saves and deletions are ignored), so
/// before 2026-12-07 such a refused claim on a connected socket's session kept its
/// copy away from the socket's own deletion (a kicked client could resume), and a
/// refused claim on a kept session discarded it.
async fn prepare_durable(
    socket: &Arc<Socket>,
    store: Arc<dyn SessionStore>,
    pid: &str,
    offset: Option<String>,
) -> Option<Prepared> {
    let ns = socket.ns();
    let buffer = ns.recovery()?;
    let peek = || {
        let (store, pid) = (store.clone(), pid.to_owned());
        Box::pin(async move { store.peek(&pid).await }) as BoxFuture<'static, _>
    };
    // Not found: the take decides, as it waits for a session still on its way to
    // the store (right after Redis trouble). The store away past the wait: not
    // recovered now, rather than wait as long again for the take.
    match with_store_retry("read session", peek).await {
        Ok(Some(stored)) => {
            if let Err(why) = resumable(socket, buffer, &stored, pid, offset.as_deref()) {
                tracing::debug!(
                    why,
                    "stored session not resumable by this client; left in the store"
                );
                return None;
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(error = %err, "session store unavailable; client not recovered");
            return None;
        }
    }
    // A connection closed meanwhile (a drain, the client gone) would only put the
    // session back: leave it in the store, where its client finds it elsewhere.
    if socket.connection_closed() {
        tracing::debug!("connection closed before the take; session left in the store");
        return None;
    }
    let take = || {
        let (store, pid) = (store.clone(), pid.to_owned());
        Box::pin(async move { store.take(&pid).await }) as BoxFuture<'static, _>
    };
    let session = match with_store_retry("take session", take).await {
        Ok(Some::<DurableSession>(session)) => {
            tracing::debug!(
                socket = %session.sid,
                rooms = session.rooms.len(),
                offset = ?session.offset,
                claimed = ?offset,
                "stored session taken"
            );
            session
        }
        Ok(None) => {
            tracing::debug!("no stored session (expired, taken, or never saved); not recovered");
            return None;
        }
        Err(err) => {
            tracing::warn!(error = %err, "session store unavailable; client not recovered");
            return None;
        }
    };
    // When it was left, as far as the store tells (measured at the take): the window
    // it has left is what it keeps if it is put back ([`put_back`]), not a new one.
    let window = buffer.config().max_disconnection_duration;
    let taken_at = now();
    let disconnected_at = session
        .expires_in
        .and_then(|left| taken_at.checked_sub(window.saturating_sub(left)))
        .unwrap_or(taken_at);
    // Checked again: it may have changed since it was read.
    let Ok(Resumable {
        from,
        start,
        rooms,
        memberships,
    }) = resumable(socket, buffer, &session, pid, offset.as_deref()).inspect_err(|why| {
        tracing::debug!(why, "stored session taken, not resumable; not recovered")
    })
    else {
        return None;
    };
    let listener = Listener {
        rooms: &rooms,
        memberships: &memberships,
    };
    let start_replay = read_older(socket, &store, from, listener).await.ok()?;
    let parts = SavedSessionParts {
        sid: session.sid.parse().ok()?,
        pid: session.pid.parse().ok()?,
        rooms,
        memberships,
        data: session.data,
        connected_at_offset: start.unwrap_or(from),
        epoch: session.epoch,
    };
    Some(Prepared {
        session: saved_from_parts(parts, disconnected_at),
        start: start_replay,
    })
}

/// Whether the application's `on_resume` lets `socket` (what its middleware left in
/// its data) resume a session of `stored` data in `rooms`.
fn may_resume<'r>(socket: &Socket, stored: &Value, rooms: impl Iterator<Item = &'r str>) -> bool {
    let rooms: Vec<&str> = rooms.collect();
    socket.ns().handlers().may_resume(&Resume {
        stored,
        fresh: &socket.data(),
        rooms: &rooms,
    })
}

/// What a stored session resumes from, when the client that names it may resume it.
struct Resumable {
    /// Where its replay starts.
    from: u128,
    /// Its own start (absent from sessions Node wrote).
    start: Option<u128>,
    rooms: Vec<Room>,
    memberships: Memberships,
}

/// Whether `socket`, naming `pid` with `offset`, may resume `session` as stored: the
/// session is the `pid`'s own, within a kept session's bounds, its replay has a start,
/// and the application's `on_resume` lets this connection have it. Why not, otherwise.
fn resumable(
    socket: &Socket,
    buffer: &RecoveryBuffer,
    session: &DurableSession,
    pid: &str,
    offset: Option<&str>,
) -> Result<Resumable, &'static str> {
    // The store is shared with everyone who can write to Redis: a session stored
    // under another pid than its own is no session this cluster saved. (Neither pid is
    // logged: with `skip_middlewares` a pid is all it takes to resume a session.)
    if session.pid != pid {
        return Err("stored session names another pid");
    }
    // Never before the session began (its stored offset, absent from sessions Node
    // wrote): an old or forged offset must not replay events from before it connected.
    let start = session
        .offset
        .as_deref()
        .and_then(|o| buffer.parse_offset(o));
    let from = match start {
        Some(start) => buffer.resume_from(offset, start),
        None => offset.and_then(|o| buffer.parse_offset(o)),
    };
    let from = from.ok_or("offset missing or unreadable")?;
    // As large as a session this node would keep, no larger (a node saves only what it
    // would keep, `Socket::save_durable`): rooms past every bound on joins are not
    // handed to a socket.
    let (rooms, memberships, bytes) = durable_parts(buffer, session);
    if bytes > buffer.config().max_bytes_per_session {
        return Err("stored session larger than a kept one");
    }
    // In no more rooms than a socket may join here (its own id room aside): anyone who
    // can write to Redis can store a session, and Node's servers know no such bound.
    let ns = socket.ns();
    if rooms_past(&rooms, &session.sid, ns.handlers().max_rooms_per_socket()) {
        return Err("stored session in more rooms than a socket may join");
    }
    if !may_resume(socket, &session.data, rooms.iter().map(|r| &**r)) {
        return Err("refused to this connection by the application");
    }
    Ok(Resumable {
        from,
        start,
        rooms,
        memberships,
    })
}

/// A resumed socket's data as Node makes it: Node restores the session's data and
/// then runs the middleware (unless `skipMiddlewares`), so what the middleware writes
/// wins. Here the middleware ran first, on the socket that was to be: its top-level
/// fields go over the session's (a middleware that set nothing leaves `null`, and the
/// session's data stays; one that set something other than an object replaces it).
/// Before, the session's data replaced the middleware's, and with it the claims the
/// token just verified.
fn resumed_data(stored: Value, fresh: Value) -> Value {
    match (stored, fresh) {
        (stored, Value::Null) => stored,
        (Value::Object(mut stored), Value::Object(fresh)) => {
            stored.extend(fresh);
            Value::Object(stored)
        }
        (_, fresh) => fresh,
    }
}

/// Whether `rooms`, its own id room aside, are more than `max` (`usize::MAX`: no
/// bound). Each name counts once, as a socket is in a room once.
fn rooms_past(rooms: &[Room], own: &str, max: usize) -> bool {
    if max == usize::MAX || rooms.len() <= max {
        return false;
    }
    let distinct: HashSet<&str> = rooms.iter().map(|r| &**r).filter(|r| *r != own).collect();
    distinct.len() > max
}

fn connect_error(nsp: &str, err: &ConnectError) -> Vec<crate::eio::Frame> {
    let packet = Packet::new(PacketType::ConnectError, nsp, Some(err.to_value()));
    super::broadcast::encode(&packet)
}

/// Whether a recovery claim could name a session this cluster keeps: a `pid` shaped
/// like a socket id (every node makes them so; a stored session under any other is
/// refused) and an `offset` this buffer reads, if one is given. Checked before the
/// store is asked: a claim comes before any middleware, from anyone, and each one that
/// reaches the store is a script run on Redis, with keys made from the `pid` (one that
/// put them in different slots of a Redis Cluster made the script fail, and every take
/// retry for seconds).
fn claim_is_well_formed(buffer: &RecoveryBuffer, pid: &str, offset: Option<&str>) -> bool {
    pid.parse::<Sid>().is_ok() && offset.is_none_or(|o| buffer.parse_offset(o).is_some())
}

/// The `pid` and `offset` a client sends in its CONNECT payload to resume a session.
fn recovery_claim(auth: &Value) -> Option<(&str, Option<&str>)> {
    let pid = auth.get("pid")?.as_str()?;
    Some((pid, auth.get("offset").and_then(Value::as_str)))
}

/// Accepts a socket: registers it, answers CONNECT, runs connection handlers. With
/// recovery on, first tries to resume the session the client names, all under the
/// recovery buffer lock so no broadcast slips between the replay and live delivery.
/// The `reservation` is released once the socket's connection handlers are done (or
/// it could not be registered): until then a namespace a pattern made stays, even if
/// the socket is closed meanwhile.
///
/// An SSE listener (`sse` set when it presented a `Last-Event-ID`) gets the events of
/// its rooms after that id replayed under the same lock, and its CONNECT answer says
/// whether that was possible (see [`connect_answer`]).
///
/// `passage`: whether the middleware ran, or was skipped because the client names a
/// session to resume (Node's `skipMiddlewares`); when that session is not resumed
/// after all, the middleware runs, and the fresh socket is accepted after it.
fn finish_connect(
    shared: &Arc<ClientShared>,
    socket: Arc<Socket>,
    prepared: Option<Prepared>,
    sse: Option<SseReplay>,
    reservation: Reservation,
    passage: Passage,
) {
    // Before the buffer lock: a cluster adapter's `init` reads the buffer.
    socket.ns().activate();
    let Some(buffer) = socket.ns().recovery() else {
        let recovery = sse.map(|_| replay_report(Err(RECOVERY_OFF)));
        let registered = register(shared, &socket, &connect_answer(&socket, recovery));
        if registered {
            socket.run_connect();
            // Only now: a socket closed while its handlers ran no longer counts in
            // the namespace, and the reservation keeps a pattern's namespace from
            // being let go under the handlers still to run.
            drop(reservation);
        } else {
            drop(reservation);
            socket.let_go();
        }
        return;
    };
    let auth = socket.auth_shared();
    // The claim, unless it was tried already (and not resumed) before the middleware
    // ran for it. Never an SSE listener's: it resumes by event id, and a `pid` copied
    // into its `auth` from its query (an operator listing `pid` in `sse.auth_params`)
    // must not take over or restore a Socket.IO session.
    let claim = recovery_claim(&auth)
        .filter(|_| passage != Passage::AfterSkip && socket.transport() != TransportKind::Sse);
    // A live socket holding the `pid` is taken over, unless the application would not
    // hand its session to this connection: then it is not closed for it, and no copy
    // of the session (a durable one) is resumed beside it either.
    let mut refused_take_over = false;
    if let Some((pid, _)) = claim
        && let Some(stale) = buffer.live_socket(pid)
    {
        let rooms = stale.rooms();
        if may_resume(&socket, &stale.data(), rooms.iter().map(String::as_str)) {
            // Outside the buffer lock: disconnect handlers may emit.
            stale.take_over();
        } else {
            refused_take_over = true;
        }
    }
    buffer.bind_metrics(&socket.session().metrics);
    let max_replay = buffer.config().max_replay_bytes;
    let mut state = buffer.lock();
    let restored = if buffer.is_logged() {
        prepared.and_then(|p| {
            // Another connected socket's id (a session written to the store by hand, or a
            // pid's session copied under another): resuming it would take that socket's
            // place in the namespace. Its own pid's stale socket was taken over above.
            if let Some(live) = socket.ns().socket(p.session.sid)
                && live.pid() != Some(p.session.pid)
            {
                tracing::debug!(socket = %p.session.sid, "stored session names a connected socket; not recovered");
                return None;
            }
            // Asked before the session was taken (`prepare_durable`); again here, as it
            // may have changed since it was read (taken: gone).
            if refused_take_over
                || !may_resume(&socket, &p.session.data, p.session.rooms.iter().map(|r| &**r))
            {
                tracing::debug!(socket = %p.session.sid, "session refused to this connection by the application; not recovered");
                return None;
            }
            let missed = RecoveryBuffer::replay(&state, p.session.listener(), p.start, max_replay)
                .inspect_err(|why| {
                    tracing::debug!(socket = %p.session.sid, ?why, "session not recovered");
                })
                .ok()?;
            Some(Restored {
                session: p.session,
                missed,
            })
        })
    } else {
        // The application may refuse the session to this socket (another user's
        // token with the first one's `pid`): then it starts afresh, and the session is
        // left for its owner (`restore` asks before taking it).
        claim.and_then(|(pid, offset)| {
            let allowed = |kept: &SavedSession| {
                !refused_take_over
                    && may_resume(&socket, &kept.data, kept.rooms.iter().map(|r| &**r))
            };
            buffer.restore(&mut state, pid, offset, now(), allowed)
        })
    };
    // `max_replay_bytes` bounds the replays of a connection together, not each: one
    // connection may resume a session in each of its namespaces (up to
    // `MAX_NAMESPACES_PER_CONNECTION`).
    let restored = restored.filter(|r| {
        let ok = socket.session().reserve_replay(&r.missed, max_replay);
        if !ok {
            tracing::debug!(socket = %r.session.sid, "the connection's replays would pass max_replay_bytes; not recovered");
        }
        ok
    });
    // A session the middleware was skipped for that is not resumed after all (its
    // offset, the replay's bound or the application refused it): the client starts
    // afresh, and a fresh socket passes the middleware like any other. Node decides
    // after the restore. Before, the fresh socket was accepted without it: a client
    // whose token had expired, or who had none, got a socket by naming its old `pid`
    // with a bad offset.
    if passage == Passage::Skipped
        && restored.is_none()
        && !socket.ns().handlers().middleware().is_empty()
    {
        drop(state);
        let shared = shared.clone();
        tokio::spawn(async move {
            match run_middleware(&socket).await {
                Ok(()) => {
                    finish_connect(&shared, socket, None, sse, reservation, Passage::AfterSkip)
                }
                Err(err) => refuse(&shared, &socket, reservation, &err),
            }
        });
        return;
    }
    let identity = match &restored {
        Some(r) => Identity {
            id: r.session.sid,
            pid: Some(r.session.pid),
            recovered: true,
            connected_at_offset: r.session.connected_at_offset,
            epoch: r.session.epoch,
        },
        None => Identity {
            id: socket.id(),
            pid: socket.pid(),
            recovered: false,
            connected_at_offset: RecoveryBuffer::head_of(&state),
            epoch: 0,
        },
    };
    let prepared = &socket;
    let socket = Socket::with_identity(
        prepared.ns().clone(),
        prepared.session().clone(),
        shared.clone(),
        Value::clone(&auth),
        identity,
    );
    // What middleware stored (e.g. verified claims) carries over; a recovered
    // session's data goes under it below, as in Node.
    socket.set_data(prepared.data());
    // Before the socket is registered: the CONNECT answer says what came of it.
    let sse = sse.map(|replay| match replay {
        SseReplay::From(start) => RecoveryBuffer::replay(
            &state,
            Listener::since_start(&sse_rooms(&socket)),
            start,
            max_replay,
        )
        .map_err(unreplayable)
        .and_then(|missed| {
            if socket.session().reserve_replay(&missed, max_replay) {
                Ok(missed)
            } else {
                Err(TOO_MANY_MISSED)
            }
        }),
        SseReplay::Unavailable(why) => Err(why),
    });
    let report = sse
        .as_ref()
        .map(|r| replay_report(r.as_ref().map(Vec::len).map_err(|e| *e)));
    if !register(shared, &socket, &connect_answer(&socket, report)) {
        // Outside the buffer lock: a handler of a room left empty may broadcast.
        drop(state);
        socket.let_go();
        prepared.let_go();
        if let Some(restored) = restored {
            put_back(&socket, buffer, restored.session);
        }
        return;
    }
    if let Some(pid) = socket.pid() {
        RecoveryBuffer::register_live(&mut state, pid, Arc::downgrade(&socket));
    }
    if let Some(Ok(missed)) = &sse {
        let _ = socket.send_replay(missed);
        tracing::debug!(socket = %socket.id(), missed = missed.len(), "sse listener replayed");
        let id = last_event_id(socket.session()).unwrap_or_default();
        socket.step(Step::recovered(&id, missed.len()));
    }
    let (mut occupied, mut vacated) = (Vec::new(), Vec::new());
    if let Some(mut restored) = restored {
        let own = socket.id().to_string();
        let rooms: Vec<&str> = restored
            .session
            .rooms
            .iter()
            .map(|r| &**r)
            .filter(|r| *r != own)
            .collect();
        // With the buffer locked: the rooms come back with the memberships they had.
        occupied = socket.join_unnoted(&rooms);
        let mut memberships = std::mem::take(&mut restored.session.memberships);
        if prepared.id() != socket.id() {
            // Rooms a middleware joined under the fresh id move to the resumed one,
            // joined now as far as its replays go. The socket the middleware saw is
            // let go first: whoever holds it joins nothing more under the fresh id.
            prepared.mark_closed();
            let joined = socket.ns().adapter().socket_rooms(prepared.id());
            let head = RecoveryBuffer::head_of(&state);
            if head > restored.session.connected_at_offset {
                for room in joined
                    .iter()
                    .filter(|r| !restored.session.rooms.contains(r))
                {
                    memberships.joined_at(room.clone(), head);
                }
            }
            let joined: Vec<&str> = joined.iter().map(|r| &**r).collect();
            occupied.extend(socket.join_unnoted(&joined));
            vacated = socket.ns().leave_all_unreported(prepared.id());
        }
        if let Some(pid) = socket.pid() {
            buffer.set_memberships(pid, memberships);
        }
        socket.set_data(resumed_data(restored.session.data, prepared.data()));
        let _ = socket.send_replay(&restored.missed);
        tracing::debug!(socket = %socket.id(), missed = restored.missed.len(), "session recovered");
        let offset = recovery_claim(&auth).and_then(|(_, offset)| offset);
        socket.step(Step::recovered(
            offset.unwrap_or_default(),
            restored.missed.len(),
        ));
    }
    drop(state);
    // Outside the buffer lock: a handler of these may broadcast, which takes it.
    // The fresh id's rooms left empty count as the resumed socket's: one client.
    socket
        .ns()
        .report_room_changes(socket.id(), &occupied, &vacated);
    socket.save_durable();
    socket.run_connect();
    // After the handlers, as above.
    drop(reservation);
}

/// How a CONNECT reached [`finish_connect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Passage {
    /// Through the namespace's middleware (or it has none).
    Middleware,
    /// The middleware was skipped: the client names a session to resume.
    Skipped,
    /// The session it named was not resumed, and the middleware then ran: a fresh
    /// socket, whatever the claim. Trying the claim again would resume on the
    /// middleware's word what was refused without it (a session whose stored token
    /// expired, resumed on the same token within the verifier's leeway), or take over
    /// a live socket twice.
    AfterSkip,
}

impl Passage {
    /// [`Passage::Skipped`] if `skipped`, otherwise [`Passage::Middleware`].
    fn of(skipped: bool) -> Self {
        if skipped {
            Passage::Skipped
        } else {
            Passage::Middleware
        }
    }
}

/// Keeps again a session that was taken to resume a connection which closed before
/// its socket could be registered: the client never heard it was recovered, and its
/// next try must find the session where the first one did (the durable store, or this
/// node's buffer), with its original disconnection time, so the window is not
/// extended.
fn put_back(socket: &Socket, buffer: &RecoveryBuffer, session: SavedSession) {
    if socket.session().kicked() {
        // Its connection was ended on purpose meanwhile: nothing to come back to.
        tracing::debug!(socket = %session.sid, "connection ended on purpose while resuming; session dropped");
        return;
    }
    tracing::debug!(socket = %session.sid, "connection closed while resuming; session kept again");
    let (parts, disconnected_at) = session.into_parts();
    let Some(store) = socket.ns().adapter().session_store() else {
        buffer.persist(parts, disconnected_at);
        return;
    };
    let window = buffer.config().max_disconnection_duration;
    let ttl = window.saturating_sub(now().saturating_duration_since(disconnected_at));
    if ttl.is_zero() {
        tracing::debug!(socket = %parts.sid, "its window has passed; session dropped");
        return;
    }
    let durable = DurableSession {
        sid: parts.sid.to_string(),
        pid: parts.pid.to_string(),
        rooms: parts.rooms.iter().map(|r| r.to_string()).collect(),
        memberships: parts.memberships.to_durable(buffer),
        data: parts.data,
        offset: Some(buffer.offset_string(parts.connected_at_offset)),
        epoch: parts.epoch,
        expires_in: None,
    };
    store.save(durable, ttl, true);
}

/// Queues the CONNECT `answer`, then marks the socket connected and registers it;
/// false if the connection closed first (then the caller leaves the rooms a
/// middleware joined, once it holds no lock a room handler's broadcast would take).
/// The caller holds the namespace's reservation, so the namespace cannot be removed
/// meanwhile.
///
/// The answer goes first, under the client lock and the namespace's lock of its
/// sockets: once registered, the socket can be reached from other threads (a
/// broadcast not kept for recovery, another node's `disconnectSockets`; then the
/// observer is told it connected), and what they send must follow the answer, as it
/// does in Node, which answers before anything else runs. Packets the client sends
/// once it has the answer look the socket up under the client lock, and a look-up in
/// the namespace waits for the lock of its sockets, so both find it registered.
fn register(
    shared: &Arc<ClientShared>,
    socket: &Arc<Socket>,
    answer: &[crate::eio::Frame],
) -> bool {
    let nsp = socket.namespace().to_owned();
    // Subscribed (in a cluster) before the socket can be reached.
    socket.ns().activate();
    let mut state = shared.lock();
    state.done_connecting(&nsp);
    if socket.connection_closed() {
        return false;
    }
    // Marked and registered under the client lock, so a concurrent close either sees
    // the socket (and removes it) or ran before (and we stopped above).
    socket.ns().insert_after(socket.clone(), || {
        let _ = socket.send_frames(answer, false);
        socket.mark_connected();
    });
    // Outside the namespace's lock of its sockets, which is not reentrant: an observer
    // may read the namespace or broadcast to it (before 2026-12-08 it was told under
    // that lock, and either hung the namespace for good).
    socket.tell_connected();
    // Room for exactly one more: most connections join one namespace, and a grown
    // list would keep room for four for the connection's whole life.
    state.sockets.reserve_exact(1);
    state.sockets.push((nsp, socket.clone()));
    // Joined a namespace: the connect timeout no longer applies. A binary packet of
    // another namespace waiting for its attachments keeps its own deadline.
    if state.reconstructing.is_none() {
        socket.session().set_app_deadline(None);
    }
    true
}

/// The CONNECT answer: `{"sid"}`, plus `"pid"` when recovery is on. An SSE
/// listener's (read by the SSE transport, never sent as such) says instead whether
/// its events carry offsets (`"offsets"`: recovery on) and, when it presented a
/// `Last-Event-ID`, what came of it (`"recovery"`, see [`replay_report`]).
fn connect_answer(socket: &Arc<Socket>, recovery: Option<Value>) -> Vec<crate::eio::Frame> {
    let mut data = serde_json::Map::new();
    data.insert("sid".into(), Value::String(socket.id().to_string()));
    if let Some(pid) = socket.pid() {
        data.insert("pid".into(), Value::String(pid.to_string()));
    }
    if socket.session().transport() == TransportKind::Sse {
        let offsets = socket.ns().recovery().is_some();
        data.insert("offsets".into(), Value::Bool(offsets));
        if let Some(recovery) = recovery {
            data.insert("recovery".into(), recovery);
        }
    }
    let packet = Packet::new(
        PacketType::Connect,
        socket.namespace(),
        Some(Value::Object(data)),
    );
    encode(&packet)
}

/// Longest excerpt of an offending packet kept for diagnosis: enough to recognise
/// the packet, too short to carry a whole token or message body.
const PREVIEW_CHARS: usize = 48;

/// The start of a message for logs: text truncated, binary reduced to its length.
fn preview(message: &Message) -> String {
    match message {
        Message::Text(t) => String::from_utf8_lossy(t)
            .chars()
            .take(PREVIEW_CHARS)
            .collect(),
        Message::Binary(b) => format!("<{} binary bytes>", b.len()),
    }
}

/// What one binary attachment is charged beyond its bytes while its packet is put
/// together, toward `engine.max_payload` and the node's inbound budget: its handle in
/// the packet's list (a [`bytes::Bytes`], the list's capacity up to twice its length)
/// and its own allocation at the allocator's smallest with its bookkeeping (64). Charged
/// its length only, an empty or 1-byte attachment cost far more than it counted: with
/// a large `socketio.max_attachments`, one polling session held ~90 MB for 1 MB
/// charged.
const ATTACHMENT_OVERHEAD: usize = 2 * std::mem::size_of::<bytes::Bytes>() + 64;

/// Adds `part` to the bytes of the binary packet being put together; the cut-off when
/// they pass `max` (`engine.max_payload`). A packet with attachments is one message:
/// over polling Node bounds it whole (one body), and each receiver's outbound queue
/// must take it whole; before 2026-12-07 each attachment had the bound alone, so one
/// event of ten attachments could be ten times `max_payload`, past every receiver's
/// `queue.max_bytes` (each closed as a slow consumer).
fn binary_too_large(bytes: &mut usize, part: usize, max: usize) -> Option<Cutoff> {
    *bytes = bytes.saturating_add(part);
    (*bytes > max).then(|| Cutoff::TooLarge {
        size: u64::try_from(*bytes).unwrap_or(u64::MAX),
        max,
    })
}

impl SessionHandler for Client {
    fn on_message(&self, session: &Arc<Session>, message: Message) {
        let preview = preview(&message);
        let (size, part) = match &message {
            Message::Text(text) => (text.len(), text.len()),
            // An attachment costs its bytes and its place in the packet.
            Message::Binary(data) => (0, data.len().saturating_add(ATTACHMENT_OVERHEAD)),
        };
        let (decoded, held) = {
            let mut state = self.shared.lock();
            let decoded = match message {
                Message::Text(text) => match std::str::from_utf8(&text) {
                    Ok(text) => state.decoder.decode_text(text),
                    Err(_) => Err(switchboard_protocol::socketio::DecodeError::InvalidPayload),
                },
                Message::Binary(data) => state.decoder.decode_binary(data),
            };
            let max = self.shared.io.config.engine.max_payload;
            let held = match decoded {
                // A binary packet waits for (more of) its attachments: its parts so
                // far are bytes on their way in, like an unfinished message's.
                Ok(None) => match binary_too_large(&mut state.binary_bytes, part, max) {
                    Some(cut) => Err(cut),
                    None => self.hold(&mut state, session, part),
                },
                // Whole (or refused): what it held goes back.
                _ => {
                    // The last part of a binary packet counts too.
                    let cut = (state.binary_bytes > 0 && decoded.is_ok())
                        .then(|| binary_too_large(&mut state.binary_bytes, part, max))
                        .flatten();
                    state.binary_bytes = 0;
                    let ended = state.reconstructing.take().map(|_| Held::Ended);
                    cut.map_or(Ok(ended), Err)
                }
            };
            if held.is_err() {
                state.reconstructing = None;
                state.binary_bytes = 0;
            }
            (decoded, held)
        };
        match held {
            Err(cut) => {
                tracing::debug!(sid = %session.sid(), %cut, "binary packet cut off");
                return session.close_cut_off(cut);
            }
            // The first part: the packet must be whole within `body_timeout`.
            Ok(Some(Held::Started)) => {
                session.set_app_deadline(Some(now() + self.body_timeout()));
            }
            // Whole: no deadline left (the connect timeout is over for a connection
            // that could send it; a refused packet closes the session anyway).
            Ok(Some(Held::Ended)) if decoded.is_ok() => session.set_app_deadline(None),
            _ => {}
        }
        match decoded {
            Ok(Some(packet)) => self.on_packet(session, packet, size),
            Ok(None) => {}
            Err(err) => {
                tracing::debug!(sid = %session.sid(), error = %err, packet = %preview, "malformed socket.io packet");
                session.close(DisconnectReason::ParseError);
            }
        }
    }

    fn on_deadline(&self, session: &Arc<Session>) {
        // The connect timeout: a connection that joined no namespace is closed.
        if !self.shared.has_namespaces() {
            tracing::debug!(sid = %session.sid(), "no namespace joined in time");
            return session.close(DisconnectReason::ConnectTimeout);
        }
        // A binary packet whose attachments did not all arrive within `body_timeout`.
        let timeout = self.body_timeout();
        let late = self.shared.lock().reconstructing.as_ref().is_some_and(|r| {
            tokio::time::Instant::now().saturating_duration_since(r.since) >= timeout
        });
        if late {
            tracing::debug!(sid = %session.sid(), "binary packet not whole in time");
            session.close_cut_off(crate::diagnosis::Cutoff::TooSlow { timeout });
        }
    }

    fn on_upgrade(&self, session: &Arc<Session>) {
        let Some(observer) = self.shared.io.observer() else {
            return;
        };
        let sockets: Vec<Arc<Socket>> = self
            .shared
            .lock()
            .sockets
            .iter()
            .map(|(_, s)| s.clone())
            .collect();
        for socket in sockets {
            observer.upgraded(&socket, session.transport());
        }
    }

    fn on_close(&self, _session: &Arc<Session>, reason: DisconnectReason) {
        let sockets = std::mem::take(&mut self.shared.lock().sockets);
        for (_, socket) in sockets {
            socket.on_closed(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        CONNECT_BURST, ConnectAllowance, LOG_CLOCK_SLACK, OFFSET_GONE, OFFSET_UNKNOWN,
        log_offset_out_of_window, rooms_past,
    };
    use crate::adapter::Room;
    use serde_json::json;

    /// What the middleware wrote goes over the stored data, field by field.
    #[test]
    fn a_resumed_sockets_data_is_the_sessions_under_the_middlewares() {
        use super::resumed_data;
        let stored = json!({"claims": {"sub": "old"}, "cart": 3});
        assert_eq!(
            resumed_data(stored.clone(), serde_json::Value::Null),
            stored
        );
        assert_eq!(
            resumed_data(stored.clone(), json!({"claims": {"sub": "new"}})),
            json!({"claims": {"sub": "new"}, "cart": 3})
        );
        assert_eq!(resumed_data(stored, json!(7)), json!(7));
        assert_eq!(resumed_data(json!(1), json!({"a": 1})), json!({"a": 1}));
    }

    /// A stored session's rooms against the bound: its own id room and names repeated
    /// are not counted; `usize::MAX` is no bound.
    #[test]
    fn a_sessions_rooms_are_counted_as_a_socket_holds_them() {
        let rooms = |names: &[&str]| names.iter().map(|n| Room::from(*n)).collect::<Vec<_>>();
        let own = "sid";
        assert!(!rooms_past(&rooms(&["sid", "a", "b"]), own, 2));
        assert!(rooms_past(&rooms(&["sid", "a", "b", "c"]), own, 2));
        assert!(!rooms_past(&rooms(&["a", "b", "a", "b", "sid"]), own, 2));
        assert!(!rooms_past(&rooms(&["a", "b", "c"]), own, usize::MAX));
        assert!(rooms_past(&rooms(&["a"]), own, 0), "0 means none here");
    }
    use crate::sio::RecoveryConfig;
    use crate::sio::recovery::RecoveryBuffer;
    use std::time::{Duration, SystemTime};

    /// An SSE listener's id of the durable log: one the buffer covers is taken at any
    /// age (no read: a listener of a quiet namespace); one it does not cover is taken
    /// back to the recovery window (plus the clocks' slack) and no further, `0-0`
    /// included; one from further than the slack in the future is unknown.
    #[test]
    fn an_sse_id_reads_the_log_only_within_the_recovery_window() {
        let window = Duration::from_secs(120);
        let buffer = RecoveryBuffer::logged(RecoveryConfig {
            max_disconnection_duration: window,
            ..RecoveryConfig::default()
        });
        let now_ms = crate::breadcrumbs::to_us(SystemTime::now()) / 1000;
        let id = |ms: u64| u128::from(ms) << 64;
        let ago = |d: Duration| id(now_ms - d.as_millis() as u64);
        let ahead = |d: Duration| id(now_ms + d.as_millis() as u64);
        // The buffer holds everything after an hour ago (this node read from there).
        let hour = Duration::from_secs(3600);
        buffer.start_at(&format!("{}-0", now_ms - hour.as_millis() as u64));
        let old = ago(window + LOG_CLOCK_SLACK + Duration::from_secs(60));
        assert_eq!(
            log_offset_out_of_window(&buffer, old),
            None,
            "covered: no read"
        );
        assert_eq!(
            log_offset_out_of_window(&buffer, 0),
            Some(OFFSET_GONE),
            "0-0"
        );
        assert_eq!(
            log_offset_out_of_window(&buffer, ago(2 * hour)),
            Some(OFFSET_GONE),
            "older than the buffer and the window"
        );
        let fresh = RecoveryBuffer::logged(RecoveryConfig {
            max_disconnection_duration: window,
            ..RecoveryConfig::default()
        });
        fresh.start_at(&format!("{now_ms}-0"));
        assert_eq!(
            log_offset_out_of_window(&fresh, ago(window)),
            None,
            "in the window"
        );
        assert_eq!(log_offset_out_of_window(&fresh, old), Some(OFFSET_GONE));
        assert_eq!(
            log_offset_out_of_window(&fresh, ahead(Duration::from_secs(10))),
            None,
            "within the slack"
        );
        assert_eq!(
            log_offset_out_of_window(&fresh, ahead(hour)),
            Some(OFFSET_UNKNOWN)
        );
    }

    /// A burst of 64, then one a second; a quiet connection earns its burst back, and
    /// no more than it.
    #[test]
    fn the_connect_allowance_is_a_burst_then_one_a_second() {
        let mut allowance = ConnectAllowance::default();
        let taken = (0..1000).filter(|_| allowance.take(100)).count();
        assert_eq!(taken, CONNECT_BURST as usize);
        assert!(allowance.take(101));
        assert!(!allowance.take(101));
        let taken = (0..1000).filter(|_| allowance.take(1000)).count();
        assert_eq!(taken, CONNECT_BURST as usize);
    }
}
