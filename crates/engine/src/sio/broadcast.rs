//! Broadcasting: choose recipients by rooms and exclusions, encode the packet once,
//! and push the same frames into every recipient's queue (DESIGN §4).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use switchboard_protocol::Sid;
use switchboard_protocol::socketio::{Packet, PacketType, is_reserved_event};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::adapter::{
    AckReport, AckSink, AdapterError, BroadcastOptions, Room, SocketInfo, SocketsPage,
};
use crate::eio::Frame;
use crate::eio::session::now;

use super::event::{AckError, Payload, event_packet};
use super::namespace::Namespace;
use super::recovery::{Audience, RecoveryBuffer};

/// Encodes a packet into its Engine.IO frames: one text message, then one binary
/// message per attachment.
pub(crate) fn encode(packet: &Packet) -> Vec<Frame> {
    let mut text = Vec::with_capacity(64);
    text.push(b'4');
    packet.encode_into(&mut text);
    // The frame may live long (queues, the recovery buffer): no spare capacity, which
    // growing the buffer while encoding leaves at up to half of it.
    text.shrink_to_fit();
    let text = String::from_utf8(text).unwrap_or_default();
    let mut frames = Vec::with_capacity(1 + packet.attachments.len());
    frames.push(Frame::Text(Utf8Bytes::from(text)));
    frames.extend(packet.attachments.iter().cloned().map(Frame::Binary));
    frames
}

/// Chooses the recipients of a broadcast. Built by [`Namespace::to`],
/// [`super::Socket::to`] and friends; nothing is sent until [`BroadcastOperator::emit`].
///
/// Every operation goes through the namespace's adapter, so in a cluster it reaches
/// the sockets of every node; the counts returned are this node's.
#[derive(Debug, Clone)]
pub struct BroadcastOperator {
    ns: Arc<Namespace>,
    opts: BroadcastOptions,
}

impl BroadcastOperator {
    pub(crate) fn new(ns: Arc<Namespace>) -> Self {
        Self::with_options(ns, BroadcastOptions::default())
    }

    pub(crate) fn with_options(ns: Arc<Namespace>, opts: BroadcastOptions) -> Self {
        BroadcastOperator { ns, opts }
    }

    /// Adds a target room (a socket id also names that socket's own room).
    pub fn to(mut self, room: impl Into<Room>) -> Self {
        self.opts.rooms.push(room.into());
        self
    }

    /// Excludes the sockets in `room`.
    pub fn except(mut self, room: impl Into<Room>) -> Self {
        self.opts.except.push(room.into());
        self
    }

    pub(crate) fn except_socket(mut self, sid: Sid) -> Self {
        self.opts.except.push(Room::from(sid.as_str()));
        self
    }

    /// Drops the packet for recipients that are not ready to receive it right now.
    pub fn volatile(mut self) -> Self {
        self.opts.flags.volatile = true;
        self
    }

    /// This node only: nothing is sent to the rest of the cluster.
    pub fn local(mut self) -> Self {
        self.opts.flags.local = true;
        self
    }

    /// The selection as adapter options.
    pub fn options(&self) -> &BroadcastOptions {
        &self.opts
    }

    /// Emits the event; returns the number of sockets on this node it was queued for.
    pub fn emit(self, event: &str, payload: impl Into<Payload>) -> usize {
        if is_reserved_event(event) {
            return 0;
        }
        let packet = event_packet(self.ns.name(), event, payload.into(), None);
        self.ns.adapter().broadcast(&self.ns, packet, self.opts)
    }

    /// Emits the event now (in call order with every other emit, like
    /// [`BroadcastOperator::emit`]) and returns a future that resolves once it is
    /// durable in the cluster's log (see
    /// [`Adapter::broadcast_durable`](crate::adapter::Adapter::broadcast_durable)):
    /// what to wait for before telling a publisher its event was accepted. At once,
    /// without a durable log.
    pub fn emit_durable(
        self,
        event: &str,
        payload: impl Into<Payload>,
    ) -> impl std::future::Future<Output = Result<usize, DurableEmitError>> + Send + 'static {
        let confirmed = if is_reserved_event(event) {
            Err(DurableEmitError::ReservedEvent)
        } else {
            let packet = event_packet(self.ns.name(), event, payload.into(), None);
            let adapter = self.ns.adapter().clone();
            Ok(adapter.broadcast_durable(&self.ns, packet, self.opts))
        };
        async move { Ok(confirmed?.await?) }
    }

    /// Emits the event now and calls `answer` with what [`Self::emit_durable`]
    /// resolves to: at once when that is ready (an adapter without a durable log), so
    /// no task is spawned per event, which would cost as much as the event's
    /// deliveries; otherwise from a task, once the log holds the event.
    pub fn emit_durable_then(
        self,
        event: &str,
        payload: impl Into<Payload>,
        answer: impl FnOnce(Result<usize, DurableEmitError>) + Send + 'static,
    ) {
        let mut durable = Box::pin(self.emit_durable(event, payload));
        let mut now = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(result) = durable.as_mut().poll(&mut now) {
            return answer(result);
        }
        tokio::spawn(async move { answer(durable.await) });
    }

    /// Emits the event to every targeted client in the cluster and collects their
    /// acknowledgements (Node's `timeout(t).emitWithAck`): all of them, or
    /// [`AckError::Timeout`] when some did not answer within `timeout` — or when the
    /// number of nodes could not be read (the broker is unreachable), since then no
    /// set of answers is known to be all of them. With [`Self::local`] only this
    /// node's clients are asked, and only they are waited for.
    pub async fn emit_with_ack(
        mut self,
        event: &str,
        payload: impl Into<Payload>,
        timeout: Duration,
    ) -> Result<Vec<Payload>, AckError> {
        if is_reserved_event(event) {
            return Err(AckError::Emit(super::EmitError::ReservedEvent));
        }
        self.opts.flags.timeout = Some(timeout);
        let local = self.opts.flags.local;
        let packet = event_packet(self.ns.name(), event, payload.into(), None);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let adapter = self.ns.adapter().clone();
        adapter.broadcast_with_ack(&self.ns, packet, self.opts, tx);
        let collect = async {
            // Not knowing how many nodes must count, no number of counts is all of
            // them: the call can only time out (it used to assume one node, and
            // returned that node's answers alone as if they were everyone's).
            let servers = match local {
                true => 1,
                false => adapter.server_count().await.unwrap_or(usize::MAX),
            };
            let (mut counted, mut expected, mut acks) = (0usize, 0usize, Vec::new());
            while counted < servers || acks.len() < expected {
                match rx.recv().await {
                    Some(AckReport::ClientCount(n)) => {
                        counted += 1;
                        // A count from the wire (any Redis client may answer).
                        expected = expected.saturating_add(n);
                    }
                    Some(AckReport::Ack(p)) => acks.push(p),
                    // Every reporter gave up (their timers, started with the same
                    // timeout, fired just before this one): some answers never came.
                    None => return Err(AckError::Timeout),
                }
            }
            Ok(acks)
        };
        tokio::time::timeout(timeout, collect)
            .await
            .unwrap_or(Err(AckError::Timeout))
    }

    /// The connected sockets on this node this selection targets.
    pub fn sockets(&self) -> Vec<Arc<super::Socket>> {
        self.ns.local_sockets(&self.opts)
    }

    /// `page` of [`sockets`](Self::sockets) ([`SocketsPage::cut`]).
    pub fn sockets_page(&self, page: &SocketsPage) -> Vec<Arc<super::Socket>> {
        self.ns.local_sockets_page(&self.opts, page)
    }

    /// The targeted sockets on every node of the cluster (Node's `fetchSockets`).
    pub async fn fetch_sockets(&self) -> Result<Vec<SocketInfo>, AdapterError> {
        self.fetch_sockets_page(&SocketsPage::default()).await
    }

    /// One page of the targeted sockets on every node of the cluster, sorted by id
    /// ([`SocketsPage`]); each node is asked for its own page only.
    pub async fn fetch_sockets_page(
        &self,
        page: &SocketsPage,
    ) -> Result<Vec<SocketInfo>, AdapterError> {
        self.ns
            .adapter()
            .fetch_sockets(&self.ns, self.opts.clone(), page)
            .await
    }

    /// Makes every targeted socket in the cluster join `rooms` (Node's
    /// `socketsJoin`); returns how many sockets on this node were affected.
    pub fn sockets_join(&self, rooms: &[&str]) -> usize {
        let local = self.ns.local_sockets(&self.opts).len();
        let rooms = rooms.iter().map(|r| Room::from(*r)).collect();
        self.ns
            .adapter()
            .add_sockets(&self.ns, self.opts.clone(), rooms);
        local
    }

    /// Makes every targeted socket in the cluster leave `room` (Node's
    /// `socketsLeave`); returns how many sockets on this node were affected.
    pub fn sockets_leave(&self, room: &str) -> usize {
        let local = self.ns.local_sockets(&self.opts).len();
        self.ns
            .adapter()
            .del_sockets(&self.ns, self.opts.clone(), vec![Room::from(room)]);
        local
    }

    /// Disconnects every targeted socket in the cluster (Node's `disconnectSockets`):
    /// from the namespace only, or with `close` the whole underlying connection.
    /// Returns how many sockets on this node were affected.
    pub fn disconnect_sockets(&self, close: bool) -> usize {
        let local = self.ns.local_sockets(&self.opts).len();
        self.ns
            .adapter()
            .disconnect_sockets(&self.ns, self.opts.clone(), close);
        local
    }
}

/// Why [`BroadcastOperator::emit_durable`] could not confirm an event.
#[derive(Debug, thiserror::Error)]
pub enum DurableEmitError {
    /// The event name is reserved by Socket.IO.
    #[error("reserved event name")]
    ReservedEvent,
    /// The cluster could not take the event; it may reach only this node.
    #[error(transparent)]
    Adapter(#[from] AdapterError),
}

/// The local half of every adapter operation: what a node does with its own sockets,
/// whether the operation started here or on another node.
impl Namespace {
    /// Delivers an event packet to the targeted local sockets; returns how many it was
    /// queued for. With in-process recovery, the packet gets the next offset and is
    /// stored first (all under the buffer lock, so a concurrent restore sees it
    /// exactly once). Adapters call this for broadcasts from other nodes.
    pub fn broadcast_local(&self, mut packet: Packet, opts: &BroadcastOptions) -> usize {
        let recorded = match self.recovery() {
            Some(buffer) if !buffer.is_logged() && is_recordable(&packet, opts) => buffer,
            _ => return self.deliver(&encode(&packet), opts).tell(&packet),
        };
        let mut state = recorded.lock();
        let offset = RecoveryBuffer::next_offset(&state);
        append_offset(&mut packet, recorded.offset_string(offset));
        let frames = encode(&packet);
        // Delivered, then stored (both under the lock): the buffer takes the frames
        // themselves, so a packet nobody receives now shares nothing.
        let delivery = self.deliver(&frames, opts);
        recorded.store(&mut state, offset, audience(opts), frames, now());
        // The observer, if any, is told with the lock let go.
        drop(state);
        delivery.tell(&packet)
    }

    /// Delivers an event read back from the durable log at `offset`, in log order. With
    /// recovery on, the offset is appended to the packet and the packet stored, under
    /// the buffer lock. `packet: None` only moves the buffer's position (an entry
    /// without local recipients, e.g. another namespace's).
    pub fn deliver_logged(
        &self,
        offset: &str,
        packet: Option<Packet>,
        opts: &BroadcastOptions,
    ) -> usize {
        let logged = self
            .recovery()
            .filter(|b| b.is_logged())
            .and_then(|b| Some((b, b.parse_offset(offset)?)));
        let Some((buffer, key)) = logged else {
            return packet.map_or(0, |p| self.deliver(&encode(&p), opts).tell(&p));
        };
        let mut state = buffer.lock();
        let Some(mut packet) = packet else {
            RecoveryBuffer::advance(&mut state, key);
            return 0;
        };
        if key <= RecoveryBuffer::head_of(&state) {
            // Already seen (a re-read after a reconnect to the broker): never twice.
            return 0;
        }
        if !is_recordable(&packet, opts) {
            RecoveryBuffer::advance(&mut state, key);
            drop(state);
            return self.deliver(&encode(&packet), opts).tell(&packet);
        }
        append_offset(&mut packet, offset.to_owned());
        let frames = encode(&packet);
        let delivery = self.deliver(&frames, opts);
        buffer.store(&mut state, key, audience(opts), frames, now());
        drop(state);
        delivery.tell(&packet)
    }

    /// With a durable log: this node reads the log from just after `offset`, so the
    /// recovery buffer holds every event after it. Adapters call it from `init`.
    pub fn recovery_start_at(&self, offset: &str) {
        if let Some(buffer) = self.recovery() {
            buffer.start_at(offset);
        }
    }

    /// With a durable log: this node's read of it skipped entries just before
    /// `offset` (the log was trimmed past where this node had read). The recovery
    /// buffer can then replay nothing from before `offset` (a client resuming from
    /// there is read from the log, which tells whether it still holds what the client
    /// missed), and this namespace's sockets here, which missed those entries without
    /// a word, have their connections closed (`forced close`, marked in their
    /// timelines), so their clients come back through recovery and are told whether
    /// they got everything. Returns how many were closed.
    pub fn recovery_log_gap(&self, offset: &str) -> usize {
        let Some(buffer) = self.recovery().filter(|b| b.is_logged()) else {
            return 0;
        };
        let Some(key) = buffer.parse_offset(offset) else {
            return 0;
        };
        buffer.gap_before(key);
        let sockets = self.local_sockets(&BroadcastOptions::default());
        for s in &sockets {
            s.mark(LOG_GAP_MARK);
            s.close_connection(crate::DisconnectReason::ForcedClose);
        }
        sockets.len()
    }

    /// Broadcasts a packet to the targeted local sockets, each with its own ack id,
    /// and reports the client count and each answer to `sink`.
    /// A socket the event could not be sent to (one with
    /// [`MAX_PENDING_ACKS`](super::MAX_PENDING_ACKS) acknowledgements waiting, or
    /// closing) is left out of the count, as a socket that left would be.
    pub fn broadcast_with_ack_local(&self, packet: Packet, opts: &BroadcastOptions, sink: AckSink) {
        let sockets = self.local_sockets(opts);
        let timeout = opts.flags.timeout.unwrap_or(DEFAULT_ACK_TIMEOUT);
        let (event, args) = match &packet.data {
            Some(Value::Array(a)) => (
                a.first().and_then(Value::as_str).unwrap_or(""),
                a.get(1..).unwrap_or_default(),
            ),
            _ => ("", &[][..]),
        };
        let payload = Payload {
            args: args.to_vec(),
            binary: packet.attachments.clone(),
        };
        let mut told = Vec::new();
        let waiting: Vec<_> = sockets
            .iter()
            .filter_map(|socket| {
                let sent = socket.start_ack(event, payload.clone(), timeout).ok()?;
                if told.len() < MAX_TOLD_PER_BROADCAST {
                    told.push(Arc::clone(socket));
                }
                Some(sent)
            })
            .collect();
        if let Some(observer) = told.first().and_then(|s| s.io().observer()) {
            tell_each(observer.as_ref(), &told, event, args);
        }
        let _ = sink.send(AckReport::ClientCount(waiting.len()));
        if waiting.is_empty() {
            return;
        }
        // Each answer is reported as it comes: a requester on another node (Node's
        // `timeout(t).emit(ev, (err, answers))` hands over what arrived when it times
        // out) must not lose every answer of this node to one silent client.
        tokio::spawn(async move {
            let mut waiting: futures_util::stream::FuturesUnordered<_> =
                waiting.into_iter().collect();
            while let Some(answer) = waiting.next().await {
                if let Ok(answer) = answer {
                    let _ = sink.send(AckReport::Ack(answer));
                }
            }
        });
    }

    /// The targeted sockets on this node.
    pub fn local_sockets(&self, opts: &BroadcastOptions) -> Vec<Arc<super::Socket>> {
        let mut out = Vec::new();
        self.select(opts, |chunk| {
            out.extend(chunk.iter().map(|s| Arc::clone(s)))
        });
        out
    }

    /// Makes the targeted local sockets join `rooms`, each up to the namespace's
    /// [`max_rooms_per_socket`](super::Handlers::max_rooms_per_socket)
    /// ([`Socket::join_within`](super::Socket::join_within)).
    pub fn add_sockets_local(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        // Each name once: a message naming one room a million times must cost each
        // socket one look-up, not a million.
        let mut seen = std::collections::HashSet::with_capacity(rooms.len().min(1024));
        let rooms: Vec<&str> = rooms
            .iter()
            .map(|r| &**r)
            .filter(|r| seen.insert(*r))
            .collect();
        let max = self.handlers().max_rooms_per_socket();
        let refused: usize = self
            .local_sockets(opts)
            .iter()
            .map(|s| s.join_within(&rooms, max))
            .sum();
        if refused > 0 {
            tracing::debug!(
                namespace = %crate::untrusted::Untrusted(self.name()),
                refused,
                "joins past the namespace's rooms per socket not applied"
            );
        }
    }

    /// Makes the targeted local sockets leave `rooms`. Each name counts once, and a
    /// socket is checked against whichever is shorter, the names or its own rooms: a
    /// message from Redis naming sixteen million rooms (anyone's who can publish
    /// there) costs each socket a walk of its own rooms, not sixteen million look-ups
    /// on the subscriber's task.
    pub fn del_sockets_local(&self, opts: &BroadcastOptions, rooms: &[Room]) {
        let asked: std::collections::HashSet<&str> = rooms.iter().map(|r| &**r).collect();
        for s in self.local_sockets(opts) {
            // Its rooms and its own id room, which Node lets a socket leave: counted
            // first, so the usual leave of a room or two lists no socket's rooms.
            if asked.len() <= self.adapter().socket_room_count(s.id()) {
                for room in &asked {
                    s.leave(room);
                }
            } else {
                let mut own = self.adapter().socket_rooms(s.id());
                own.push(Room::from(s.id_str()));
                for room in own.iter().filter(|r| asked.contains(&***r)) {
                    s.leave(room);
                }
            }
        }
    }

    /// Disconnects the targeted local sockets.
    pub fn disconnect_sockets_local(&self, opts: &BroadcastOptions, close: bool) {
        for s in self.local_sockets(opts) {
            if close {
                s.disconnect_connection();
            } else {
                s.disconnect();
            }
        }
    }

    /// `page` of the targeted local sockets, sorted by id: only the page's sockets are
    /// described.
    pub fn fetch_sockets_local_page(
        &self,
        opts: &BroadcastOptions,
        page: &SocketsPage,
    ) -> Vec<SocketInfo> {
        let describe = |s: &Arc<super::Socket>| match page.brief {
            true => SocketInfo {
                id: s.id().to_string(),
                handshake: serde_json::Value::Null,
                rooms: s.rooms(),
                data: serde_json::Value::Null,
            },
            false => s.info(),
        };
        self.local_sockets_page(opts, page)
            .iter()
            .map(describe)
            .collect()
    }

    /// `page` of the targeted local sockets ([`SocketsPage::cut`]).
    pub fn local_sockets_page(
        &self,
        opts: &BroadcastOptions,
        page: &SocketsPage,
    ) -> Vec<Arc<super::Socket>> {
        let mut sockets = self.local_sockets(opts);
        page.cut(&mut sockets, |s| s.id_str());
        sockets
    }

    /// Pushes the same frames to every targeted local socket.
    ///
    /// Recipients come in chunks, and each chunk is read before it is written: first
    /// every recipient's session is looked at (plain reads), then the frames are pushed.
    /// A push takes the session's lock, a locked instruction that lets no later memory
    /// access start before it completes; pushing straight away, each recipient's cache
    /// misses (its entry in the socket map, its socket, its session) were paid one
    /// after the other, where plain reads of a whole chunk overlap them. The node's
    /// sent counters are added to once per broadcast, not at every recipient.
    ///
    /// With an [`Observer`](super::Observer) installed (the Admin UI in development
    /// mode), the first [`MAX_TOLD_PER_BROADCAST`] recipients are kept in the
    /// [`Delivery`], which the caller tells the observer of once it holds no lock
    /// ([`Delivery::tell`]), as Node's adapter tells each socket's outgoing listeners.
    fn deliver(&self, frames: &[Frame], opts: &BroadcastOptions) -> Delivery {
        let volatile = opts.flags.volatile;
        let (mut delivered, mut queued) = (0, 0);
        let mut metrics = None;
        let mut observer = None;
        let mut told: Vec<Arc<super::Socket>> = Vec::new();
        self.select(opts, |chunk| {
            for s in chunk {
                s.session().touch();
            }
            if metrics.is_none() {
                metrics = chunk.first().map(|s| s.session().metrics.clone());
                observer = chunk.first().and_then(|s| s.io().observer().cloned());
            }
            for s in chunk {
                if let Ok(pushed) = s.session().send_uncounted(frames, volatile) {
                    delivered += 1;
                    queued += usize::from(pushed);
                    if observer.is_some() && told.len() < MAX_TOLD_PER_BROADCAST {
                        told.push(Arc::clone(s));
                    }
                }
            }
        });
        if let Some(metrics) = metrics {
            metrics.sent(frames, queued);
        }
        Delivery {
            delivered,
            observer,
            told,
        }
    }

    /// Runs `f` on the targeted local sockets, each once, in chunks.
    fn select(&self, opts: &BroadcastOptions, f: impl FnMut(&[&Arc<super::Socket>])) {
        let excluded = self.resolve_set(&opts.except);
        let keep = |s: &Arc<super::Socket>| excluded.is_empty() || !excluded.contains(&s.id());
        let targets = (!opts.rooms.is_empty()).then(|| self.resolve(&opts.rooms));
        self.for_socket_chunks(targets.as_deref(), keep, f);
    }

    /// Sockets in `rooms`: named rooms from the adapter, plus sockets named by id.
    fn resolve(&self, rooms: &[Room]) -> Vec<Sid> {
        let mut out = Vec::new();
        self.adapter().sockets_in(rooms, &mut out);
        for room in rooms {
            if let Ok(sid) = room.parse::<Sid>()
                && self.socket(sid).is_some()
                && !out.contains(&sid)
            {
                out.push(sid);
            }
        }
        out
    }

    fn resolve_set(&self, rooms: &[Room]) -> HashSet<Sid> {
        if rooms.is_empty() {
            return HashSet::new();
        }
        self.resolve(rooms).into_iter().collect()
    }
}

/// What a broadcast was delivered to: how many sockets, and the first of them an
/// observer is to be told of.
struct Delivery {
    delivered: usize,
    observer: Option<Arc<dyn super::Observer>>,
    told: Vec<Arc<super::Socket>>,
}

thread_local! {
    /// Set while this thread tells an observer of a broadcast: an observer that sends
    /// from `event_sent` (the trait asks it not to) is not told of its own sends
    /// again, which would never end.
    static TELLING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl Delivery {
    /// Tells the observer, if any, that `packet`'s event was sent to the sockets kept;
    /// returns how many it was delivered to. Called with no lock held: an observer's
    /// call may take any.
    fn tell(self, packet: &Packet) -> usize {
        if let (Some(observer), Some((name, args))) = (&self.observer, event_of(packet)) {
            tell_each(observer.as_ref(), &self.told, name, args);
        }
        self.delivered
    }
}

/// Tells `observer` that event `name` with `args` was sent to each of `sockets`,
/// unless this thread is telling it already (see [`TELLING`]).
fn tell_each(
    observer: &dyn super::Observer,
    sockets: &[Arc<super::Socket>],
    name: &str,
    args: &[Value],
) {
    /// Clears [`TELLING`] however the calls end (a panicking observer included).
    struct Telling;
    impl Drop for Telling {
        fn drop(&mut self) {
            TELLING.with(|t| t.set(false));
        }
    }
    if TELLING.with(|t| t.replace(true)) {
        return;
    }
    let _telling = Telling;
    for s in sockets {
        observer.event_sent(s, name, args);
    }
}

/// Most recipients of one broadcast an [`Observer`](super::Observer) is told of: a
/// broadcast to a room of thousands would otherwise be thousands of live events (and
/// copies of its arguments) for the Admin UI's queue at once.
const MAX_TOLD_PER_BROADCAST: usize = 64;

/// The name and arguments of an event packet (the offset a recovered namespace
/// appended is the last argument, as the client reads it).
fn event_of(packet: &Packet) -> Option<(&str, &[Value])> {
    match (&packet.kind, &packet.data) {
        (PacketType::Event | PacketType::BinaryEvent, Some(Value::Array(data))) => {
            let (name, args) = data.split_first()?;
            Some((name.as_str()?, args))
        }
        _ => None,
    }
}

/// How long a broadcast waits for acknowledgements when no timeout was given.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a packet goes into the recovery buffer: events without an ack id that are
/// not volatile (as Node's `addOffsetIfNecessary`).
fn is_recordable(packet: &Packet, opts: &BroadcastOptions) -> bool {
    matches!(packet.kind, PacketType::Event | PacketType::BinaryEvent)
        && packet.id.is_none()
        && !opts.flags.volatile
}

pub(crate) fn append_offset(packet: &mut Packet, offset: String) {
    if let Some(Value::Array(data)) = &mut packet.data {
        data.push(Value::String(offset));
    }
}

/// What the timeline of a socket closed by [`Namespace::recovery_log_gap`] says.
const LOG_GAP_MARK: &str = "closed: this node missed events of the cluster's event log (trimmed before it read them); the client resumes through recovery";

pub(crate) fn audience(opts: &BroadcastOptions) -> Audience {
    Audience {
        rooms: opts.rooms.as_slice().into(),
        except: opts.except.as_slice().into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;
    use http::Request;
    use http_body_util::{BodyExt, Full};
    use serde_json::json;

    use crate::eio::Frame;
    use crate::{Io, Shutdown, SocketIoConfig};

    async fn call(io: &Io, method: &str, query: &str, body: &str) -> String {
        let req = Request::builder()
            .method(method)
            .uri(format!("/socket.io/?EIO=4&transport=polling{query}"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let res = io.handle(req, "127.0.0.1:9".parse().unwrap()).await;
        let body = res.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    async fn connect(io: &Io) {
        let open = call(io, "GET", "", "").await;
        let sid = &open[9..29];
        call(io, "POST", &format!("&sid={sid}"), "40").await;
        call(io, "GET", &format!("&sid={sid}"), "").await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_broadcast_is_encoded_once_and_shared_by_every_recipient() {
        let io = Io::new(SocketIoConfig::default(), Shutdown::never());
        for _ in 0..3 {
            connect(&io).await;
        }
        let ns = io.of("/");
        let mut payload = crate::Payload::new(vec![json!("x".repeat(100))]);
        let bin = payload.binary_arg(vec![7u8; 64]);
        payload.args.push(bin);
        assert_eq!(ns.emit("ev", payload), 3);
        let queued: Vec<Vec<Frame>> = ns
            .sockets()
            .iter()
            .map(|s| s.session().lock().queue.iter().cloned().collect())
            .collect();
        let ptrs = |frames: &[Frame]| -> Vec<*const u8> {
            frames
                .iter()
                .map(|f| match f {
                    Frame::Text(t) => t.as_str().as_ptr(),
                    Frame::Binary(b) => b.as_ptr(),
                })
                .collect()
        };
        assert_eq!(queued[0].len(), 2, "one text frame and one attachment");
        assert_eq!(ptrs(&queued[0]), ptrs(&queued[1]));
        assert_eq!(ptrs(&queued[1]), ptrs(&queued[2]));
    }

    /// Recipients go through `deliver` in chunks (32 at a time): a room spanning
    /// several chunks, with a partial last one and an excluded member, gets the packet
    /// exactly once per member, and the node's counters count every delivery.
    #[tokio::test(start_paused = true)]
    async fn a_broadcast_over_many_chunks_reaches_each_member_once_and_counts_each() {
        let io = Io::new(SocketIoConfig::default(), Shutdown::never());
        for _ in 0..75 {
            connect(&io).await;
        }
        let ns = io.of("/");
        let sockets = ns.sockets();
        for s in &sockets[..70] {
            s.join(&["big"]);
        }
        let excluded = sockets[3].id();
        let queued = |s: &crate::Socket| s.session().lock().queue.len();
        let before: Vec<usize> = sockets.iter().map(|s| queued(s)).collect();
        let sent_before = io.engine().metrics().snapshot().packets_out;

        let n = ns.to("big").except(excluded.as_str()).emit("ev", json!(1));

        assert_eq!(n, 69);
        for (i, s) in sockets.iter().enumerate() {
            let got = queued(s) - before[i];
            let expected = usize::from(i < 70 && s.id() != excluded);
            assert_eq!(got, expected, "socket {i}");
        }
        let sent = io.engine().metrics().snapshot().packets_out - sent_before;
        assert_eq!(sent, 69);
        // Every socket, no room: all 75.
        assert_eq!(ns.emit("ev", json!(2)), 75);
    }
}
