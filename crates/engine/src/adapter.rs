//! The adapter seam: the room index of a namespace, and (in a cluster) the only part
//! that knows about other nodes. The in-memory adapter is the embedded default.
//!
//! Two halves, one trait:
//!
//! - the **room index** (`add_all`, `del`, `sockets_in`, …): synchronous and cheap, on
//!   the hot paths of join and broadcast;
//! - the **cluster operations** (`broadcast`, `fetch_sockets`, `server_count`, …): what
//!   Node's `Adapter` does across servers. Each has a default that acts on this node
//!   only, so the in-memory adapter is the whole single-node story. A cluster adapter
//!   publishes to the other nodes and then calls the same local operation (for the
//!   room operations and broadcasts with acks, the defaults do both around
//!   [`Adapter::publish_op`]), and applies what other nodes publish through the
//!   `Namespace`'s `*_local` methods.
//!
//! Durable recovery is a third, optional part: [`SessionStore`], returned by
//! [`Adapter::session_store`], keeps recovery sessions and the event log outside the
//! process (Redis Streams), so a client can resume on any node.

mod memory;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_protocol::Sid;
use switchboard_protocol::socketio::Packet;
use tokio::sync::mpsc;

use crate::eio::Frame;
use crate::sio::{Namespace, Payload};

pub use memory::MemoryAdapter;

/// A room name, shared: each name is stored once per namespace no matter how many
/// sockets are in the room.
pub type Room = Arc<str>;

/// A boxed, sendable future (the cluster operations are object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which sockets an operation targets, as Node's `BroadcastOptions`: sockets in any of
/// `rooms` (every socket when empty), minus those in any of `except`. A socket id
/// names the room of that socket.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BroadcastOptions {
    /// Target rooms; empty means the whole namespace.
    pub rooms: Vec<Room>,
    /// Excluded rooms (and socket ids).
    pub except: Vec<Room>,
    /// Modifiers.
    pub flags: BroadcastFlags,
}

/// Modifiers of a broadcast (Node's `BroadcastFlags`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastFlags {
    /// Drop the packet for recipients that cannot take it right now; never stored for
    /// recovery.
    pub volatile: bool,
    /// This node only: nothing is published to the cluster.
    pub local: bool,
    /// The acknowledgement timeout of a broadcast with acks.
    pub timeout: Option<Duration>,
}

/// One page of a socket listing: the sockets whose id sorts after `after`, the first
/// `limit` of them by id. Each node answers only its own page, so a listing of a large
/// cluster a page at a time moves a page from each node, not every socket of every node
/// (an answer of 20,000 sockets' handshakes is larger than a node reads from Redis).
/// The default is every socket, described in full.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketsPage {
    /// Only sockets whose id sorts after this one.
    pub after: Option<String>,
    /// At most this many (the first by id).
    pub limit: Option<usize>,
    /// Each socket by its id and rooms only (no handshake, no `data`): what counts,
    /// room sizes and an action's selection need, about 100 bytes a socket where a
    /// browser's handshake is about a kilobyte.
    pub brief: bool,
}

impl SocketsPage {
    /// Whether a socket with this id can be on the page.
    pub fn admits(&self, id: &str) -> bool {
        self.after.as_deref().is_none_or(|after| id > after)
    }

    /// Whether this is every socket, in no particular order.
    pub fn is_all(&self) -> bool {
        self.after.is_none() && self.limit.is_none()
    }

    /// The same page, each socket by its id and rooms only.
    pub fn brief() -> Self {
        SocketsPage {
            brief: true,
            ..SocketsPage::default()
        }
    }

    /// Keeps the page of `items` (sockets, or what describes them, by `id`): those it
    /// [admits](Self::admits), sorted by id, one of each id (the same id on two nodes
    /// must not take two places of the page and push a socket off it), at most
    /// `limit`. Every socket is left as it is.
    pub fn cut<T>(&self, items: &mut Vec<T>, id: impl Fn(&T) -> &str) {
        if self.is_all() {
            return;
        }
        items.retain(|t| self.admits(id(t)));
        items.sort_unstable_by(|a, b| id(a).cmp(id(b)));
        items.dedup_by(|a, b| id(a) == id(b));
        if let Some(limit) = self.limit {
            items.truncate(limit);
        }
    }
}

/// A socket as the cluster describes it (Node's `RemoteSocket` fields): what
/// `fetchSockets` returns from any node.
#[derive(Debug, Clone, PartialEq)]
pub struct SocketInfo {
    /// Socket id.
    pub id: String,
    /// Node's handshake object: `headers`, `time`, `address`, `xdomain`, `secure`,
    /// `issued`, `url`, `query`, `auth`.
    pub handshake: Value,
    /// Rooms, the socket's own id room included.
    pub rooms: Vec<String>,
    /// `socket.data`.
    pub data: Value,
}

/// Why a cluster operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AdapterError {
    /// Not every node answered in time.
    #[error("timeout: {received} of {expected} nodes answered")]
    Timeout {
        /// Answers received.
        received: usize,
        /// Answers expected.
        expected: usize,
    },
    /// The broker (Redis) could not be reached.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

/// What a broadcast with acknowledgements reports, from every node: how many clients
/// each node sent the packet to, then one message per client answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AckReport {
    /// A node sent the packet to this many clients.
    ClientCount(usize),
    /// One client answered (its acknowledgement arguments).
    Ack(Payload),
}

/// Where a broadcast with acknowledgements reports (see [`AckReport`]).
pub type AckSink = mpsc::UnboundedSender<AckReport>;

/// What a cluster operation asks of the other nodes (see [`Adapter::publish_op`]).
#[derive(Debug, Clone, Copy)]
pub enum ClusterOp<'a> {
    /// The targeted sockets join these rooms ([`Adapter::add_sockets`]).
    Join(&'a [Room]),
    /// The targeted sockets leave these rooms ([`Adapter::del_sockets`]).
    Leave(&'a [Room]),
    /// The targeted sockets are disconnected ([`Adapter::disconnect_sockets`]).
    Disconnect {
        /// Close the whole connection, not only this namespace.
        close: bool,
    },
    /// A broadcast with acknowledgements ([`Adapter::broadcast_with_ack`]): every
    /// other node reports to `sink` (see [`AckReport`]).
    BroadcastWithAck {
        /// The event packet (its `id` is ignored).
        packet: &'a Packet,
        /// Where the reports go.
        sink: &'a AckSink,
    },
}

/// The answer to a server-side event from one node (Node's `serverSideEmitWithAck`
/// callback: one argument).
pub type ServerAck = Box<dyn FnOnce(Value) + Send>;

/// What the other Switchboard nodes of the cluster answered to one question of this
/// node ([`Adapter::ask_nodes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeAnswers {
    /// How many other Switchboard nodes the question reached; `None` when the cluster
    /// could not be asked (its broker unreachable): how many nodes there are is then
    /// unknown.
    pub asked: Option<usize>,
    /// The answers that came in time, at most one per node asked: each node's name
    /// (its [`Adapter::node_name`]) and what it answered.
    pub answers: Vec<(String, Value)>,
}

/// Room membership and cluster operations of one namespace.
///
/// Why a trait: the in-memory index serves one node; a cluster adapter keeps the same
/// local index and adds cross-node broadcast and membership requests on top, without
/// the engine changing. The index methods are synchronous and cheap: the engine calls
/// them on hot paths (join, broadcast) while holding no lock. The cluster methods
/// default to this node only.
pub trait Adapter: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a socket to rooms (joining a room twice is a no-op). Returns the rooms
    /// that had no member before: they are now occupied (room lifecycle hooks).
    fn add_all(&self, sid: Sid, rooms: &[&str]) -> Vec<Room>;
    /// Removes a socket from one room; returns whether the room is now empty.
    fn del(&self, sid: Sid, room: &str) -> bool;
    /// Removes a socket from every room (it disconnected); returns the rooms it left
    /// empty.
    fn del_all(&self, sid: Sid) -> Vec<Room>;
    /// The rooms a socket is in (its own id room excluded).
    fn socket_rooms(&self, sid: Sid) -> Vec<Room>;
    /// Whether a socket is in `room` (its own id room excluded). The default walks
    /// [`Adapter::socket_rooms`]; an index should answer without copying the list, as a
    /// relay asks it for every event and a socket may be in thousands of rooms.
    fn is_in(&self, sid: Sid, room: &str) -> bool {
        self.socket_rooms(sid).iter().any(|r| **r == *room)
    }
    /// How many rooms a socket is in (its own id room excluded); see [`Adapter::is_in`].
    fn socket_room_count(&self, sid: Sid) -> usize {
        self.socket_rooms(sid).len()
    }
    /// Appends to `out` the sockets in any of `rooms`, each once.
    fn sockets_in(&self, rooms: &[Room], out: &mut Vec<Sid>);
    /// Every room with at least one socket on this node.
    fn rooms(&self) -> Vec<Room>;
    /// Number of sockets in `room` on this node.
    fn room_size(&self, room: &str) -> usize;

    /// Called once, when the namespace this adapter serves starts serving sockets:
    /// at creation for a declared namespace, on its first accepted connection for one
    /// created from a pattern. A cluster adapter subscribes to its channels here.
    fn init(&self, _ns: &Arc<Namespace>) {}

    /// Called once when the namespace is removed (one created from a pattern lost its
    /// last socket), after `init`: a cluster adapter unsubscribes from its channels
    /// and forgets the namespace, so that churning namespaces costs nothing lasting.
    /// Nothing is called on this adapter afterwards.
    ///
    /// It runs under the server's namespace registry lock (so a same-name namespace
    /// created next is initialised after it), and it can run inside this adapter's own
    /// message dispatch (a remote `disconnectSockets` removing the last socket): it
    /// must not take a lock that dispatch holds, nor block.
    fn close(&self, _ns: &Namespace) {}

    /// Broadcasts an event packet; returns the number of local recipients it was
    /// queued for (a cluster adapter cannot know the remote ones without asking).
    fn broadcast(&self, ns: &Arc<Namespace>, packet: Packet, opts: BroadcastOptions) -> usize {
        ns.broadcast_local(packet, &opts)
    }

    /// Broadcasts like [`Adapter::broadcast`] and resolves once the broadcast is as
    /// safe as this adapter can make it: for an adapter with a durable log
    /// (`redis-streams`), once the log has it, so it reaches every node and stays
    /// replayable even if this node dies right after; for the others, at once. An
    /// error means the broadcast may not reach anyone beyond this node. The number is
    /// [`Adapter::broadcast`]'s. The broadcast itself must happen in the call, not in
    /// the future: emits keep their call order whether or not anyone awaits.
    fn broadcast_durable(
        &self,
        ns: &Arc<Namespace>,
        packet: Packet,
        opts: BroadcastOptions,
    ) -> BoxFuture<'static, Result<usize, AdapterError>> {
        let queued = self.broadcast(ns, packet, opts);
        Box::pin(std::future::ready(Ok(queued)))
    }

    /// Broadcasts a packet that asks for acknowledgements; every node reports to
    /// `sink`. `packet.id` is ignored: each recipient gets its own.
    fn broadcast_with_ack(
        &self,
        ns: &Arc<Namespace>,
        packet: Packet,
        opts: BroadcastOptions,
        sink: AckSink,
    ) {
        if !opts.flags.local {
            let op = ClusterOp::BroadcastWithAck {
                packet: &packet,
                sink: &sink,
            };
            self.publish_op(ns, &opts, op);
        }
        ns.broadcast_with_ack_local(packet, &opts, sink);
    }

    /// Makes the targeted sockets join `rooms`, cluster-wide.
    fn add_sockets(&self, ns: &Arc<Namespace>, opts: BroadcastOptions, rooms: Vec<Room>) {
        if !opts.flags.local {
            self.publish_op(ns, &opts, ClusterOp::Join(&rooms));
        }
        ns.add_sockets_local(&opts, &rooms);
    }

    /// Makes the targeted sockets leave `rooms`, cluster-wide.
    fn del_sockets(&self, ns: &Arc<Namespace>, opts: BroadcastOptions, rooms: Vec<Room>) {
        if !opts.flags.local {
            self.publish_op(ns, &opts, ClusterOp::Leave(&rooms));
        }
        ns.del_sockets_local(&opts, &rooms);
    }

    /// Disconnects the targeted sockets, cluster-wide (`close`: the whole connection).
    fn disconnect_sockets(&self, ns: &Arc<Namespace>, opts: BroadcastOptions, close: bool) {
        if !opts.flags.local {
            self.publish_op(ns, &opts, ClusterOp::Disconnect { close });
        }
        ns.disconnect_sockets_local(&opts, close);
    }

    /// Asks the other nodes to apply `op` to the sockets `opts` targets there. The
    /// defaults of [`Adapter::broadcast_with_ack`], [`Adapter::add_sockets`],
    /// [`Adapter::del_sockets`] and [`Adapter::disconnect_sockets`] call it first,
    /// unless `opts.flags.local`, then act on this node: a cluster adapter implements
    /// this one method for all four, and the rule "local means nothing is published"
    /// lives here only. It must not act on this node itself. By default it does
    /// nothing: one node has no others.
    fn publish_op(&self, _ns: &Arc<Namespace>, _opts: &BroadcastOptions, _op: ClusterOp<'_>) {}

    /// The targeted sockets on every node, `page` of them: each node's own page (a
    /// node of Node.js answers with all its sockets, cut to the page here).
    fn fetch_sockets<'a>(
        &'a self,
        ns: &'a Arc<Namespace>,
        opts: BroadcastOptions,
        page: &'a SocketsPage,
    ) -> BoxFuture<'a, Result<Vec<SocketInfo>, AdapterError>> {
        Box::pin(async move {
            let mut sockets = ns.fetch_sockets_local_page(&opts, page);
            if !opts.flags.local {
                sockets.extend(self.fetch_remote_sockets(ns, opts, page).await?);
                page.cut(&mut sockets, |s| s.id.as_str());
            }
            Ok(sockets)
        })
    }

    /// The targeted sockets on the other nodes, each node asked for its `page`: what
    /// the default [`Adapter::fetch_sockets`] adds to this node's own, unless
    /// `opts.flags.local`. A cluster adapter asks the other nodes here; by default
    /// there are none.
    fn fetch_remote_sockets<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        _opts: BroadcastOptions,
        _page: &'a SocketsPage,
    ) -> BoxFuture<'a, Result<Vec<SocketInfo>, AdapterError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Every room with a member on any node.
    fn all_rooms<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(async move { Ok(self.rooms()) })
    }

    /// Emits an event to the other nodes' server-side handlers (not to clients).
    fn server_side_emit(&self, _ns: &Arc<Namespace>, _args: Vec<Value>) {}

    /// Emits an event to the other nodes' server-side handlers and collects one
    /// answer per node.
    fn server_side_emit_with_ack<'a>(
        &'a self,
        _ns: &'a Arc<Namespace>,
        _args: Vec<Value>,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Number of nodes serving this namespace, this one included.
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(async { Ok(1) })
    }

    /// This node's name in the cluster, as the other nodes' answers to
    /// [`Adapter::ask_nodes`] name theirs; `None` without a cluster.
    fn node_name(&self) -> Option<String> {
        None
    }

    /// Asks every other Switchboard node of the cluster `question` and collects their
    /// answers, until each answered or the adapter's request timeout passed.
    ///
    /// Why it exists: the HTTP API's diagnosis (disconnect reports, a live socket's
    /// timeline) answers for the whole cluster, and what a node recorded lives on that
    /// node only. Node-wide, not per namespace: every namespace's adapter asks the same
    /// nodes. Only Switchboard nodes hear the question; Node.js servers sharing the
    /// cluster never see it, so they neither answer nor are waited for. `question` and
    /// the answers are JSON the asking and the answering side (the binary's API) agree
    /// on: the adapter carries them, bounded in size and signed, without reading them.
    /// A partial answer shows: fewer answers than [`NodeAnswers::asked`]. By default
    /// there are no other nodes.
    fn ask_nodes<'a>(&'a self, _question: &'a Value) -> BoxFuture<'a, NodeAnswers> {
        Box::pin(std::future::ready(NodeAnswers {
            asked: Some(0),
            answers: Vec::new(),
        }))
    }

    /// The durable session store, when recovery sessions live outside the process.
    fn session_store(&self) -> Option<Arc<dyn SessionStore>> {
        None
    }
}

/// A recovery session as it is stored for other nodes (the Node streams adapter's
/// `sio:session:<pid>` value, plus the position the socket connected at).
#[derive(Debug, Clone, PartialEq)]
pub struct DurableSession {
    /// Socket id.
    pub sid: String,
    /// Private session id.
    pub pid: String,
    /// Rooms, the own id room included.
    pub rooms: Vec<String>,
    /// When the socket was in the rooms it joined late or left (empty in sessions Node
    /// wrote, whose replays judge every event by the rooms of now, as Node's do).
    pub memberships: DurableMemberships,
    /// `socket.data`.
    pub data: Value,
    /// Event-log position when the socket connected: where replay starts for a
    /// client that never received an event (and so sends no offset).
    pub offset: Option<String>,
    /// Which resume of the session this is: 0 for a session never taken, then the
    /// number the store handed out with [`SessionStore::take`]. A store refuses a
    /// save or forget with a lower epoch than the session's latest, so a socket left
    /// behind on a node that froze or lost its network cannot overwrite the session
    /// its client has since resumed elsewhere.
    pub epoch: u64,
    /// How much longer the store would have kept the session, as it was taken
    /// ([`SessionStore::take`]); `None` when unknown, and in a session to save. A
    /// session taken but not resumed after all (refused to the connection that named
    /// it) is kept again for this long, not for a whole new window.
    pub expires_in: Option<Duration>,
}

/// When a stored session's socket was in the rooms whose events its replays judge by
/// time, as event-log positions (the recovery buffer's memberships, as stored).
pub type DurableMemberships = switchboard_protocol::cluster::streams::SessionMemberships;

/// A stored broadcast read back from the durable log.
#[derive(Debug, Clone)]
pub struct LoggedEvent {
    /// Its offset (a stream id).
    pub offset: String,
    /// The event packet, without the offset argument.
    pub packet: Packet,
    /// Who it was for.
    pub opts: BroadcastOptions,
}

/// Durable recovery: sessions and the event log in a broker, so a client can resume
/// on any node, even after its node died without a word.
///
/// With a store, a namespace's recovery buffer is keyed by the log's offsets, and its
/// broadcasts reach local sockets only once read back from the log (through
/// [`Namespace::deliver_logged`]), so every node delivers in log order and a replay
/// never overlaps live delivery.
pub trait SessionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Saves or refreshes a session (fire and forget, ordered per session); it expires
    /// after `ttl` unless saved again. Ignored when the session has since been taken
    /// with a later epoch (see [`DurableSession::epoch`]).
    ///
    /// `ended`: the socket has left (this is the session kept for its client to
    /// resume): later saves of the same epoch are ignored, as after a deletion, so a
    /// save of the live socket read just before it left, written after this one,
    /// cannot replace it.
    fn save(&self, session: DurableSession, ttl: Duration, ended: bool);
    /// How long the saved session of a socket still connected must live, for a
    /// recovery window of `window`: until the store's next refresh of it, plus the
    /// window (its node may die just before that refresh). By default the window.
    fn live_ttl(&self, window: Duration) -> Duration {
        window
    }
    /// Forgets a session: the client left on purpose (`ended`), or its socket's
    /// session grew past what may be stored while it is still connected. Ignored, as
    /// a save is, when `epoch` is older than the session's latest. When `ended`, later
    /// saves of the same epoch are ignored too: a save of the socket read just before
    /// it left, written after the deletion, must not bring the session back.
    fn forget(&self, pid: &str, epoch: u64, ended: bool);
    /// Takes a session out of the store; at most one caller ever gets it, with an
    /// epoch above every earlier take's.
    fn take<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<DurableSession>, AdapterError>>;
    /// Reads a session without taking it: nothing changes in the store (its epoch
    /// included), so a resume the application would refuse is turned down before the
    /// session is taken from its owner ([`SessionStore::take`] fences the owner's
    /// socket off). Its `epoch` is 0. `Ok(None)`: none stored now, or a store that
    /// cannot tell (the default: the take then decides alone).
    fn peek<'a>(
        &'a self,
        _pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<DurableSession>, AdapterError>> {
        Box::pin(async { Ok(None) })
    }
    /// The logged events of namespace `nsp` after `after` up to `until` (exclusive of
    /// `after`, inclusive of `until`), oldest first, each handed to `keep`, which
    /// returns the frames a resuming client gets of it (none: not its). A client asked
    /// for the events it missed: past `max_bytes` of frames (as [`frame_bytes`] counts
    /// them) the read stops and says so, rather than hold a copy of the whole log for
    /// one client; and only frames are kept, not the decoded events.
    fn read_log<'a>(
        &'a self,
        nsp: &'a str,
        after: &'a str,
        until: &'a str,
        keep: &'a LogFilter<'a>,
        max_bytes: usize,
    ) -> BoxFuture<'a, Result<LogRead, AdapterError>>;
    /// The offset of the log's last entry now; `None` when it is empty. A resuming
    /// client (recovered or refused) gets everything, and nothing more, from before
    /// it came back: the node first reads the log this far ([`Self::read_through`]).
    fn log_end(&self) -> BoxFuture<'_, Result<Option<String>, AdapterError>>;
    /// Resolves once this node has read the log through `offset` (every namespace's
    /// entries, whatever they were), or never if it does not get there (the caller
    /// bounds the wait); at once for what is no offset of the log.
    fn read_through<'a>(&'a self, offset: &'a str) -> BoxFuture<'a, ()>;
}

/// What a read of the log keeps of each logged event ([`SessionStore::read_log`]):
/// its frames for the resuming client, or nothing.
pub type LogFilter<'a> = dyn Fn(LoggedEvent) -> Option<Vec<Frame>> + Send + Sync + 'a;

/// What a read of the durable log found ([`SessionStore::read_log`]).
#[derive(Debug)]
pub enum LogRead {
    /// The frames of the events kept, oldest first.
    Events(Vec<Frame>),
    /// `after` is no longer (or never was) in the log: the client cannot be recovered.
    Gone,
    /// The events kept passed the read's `max_bytes`: the client missed more than it
    /// may be replayed, and is not recovered.
    TooLarge,
}

/// What frames cost in a replay, against `recovery.max_replay_bytes`: their bytes and
/// their places in the outbound queue. The bytes may be shared with the recovery
/// buffer (nothing more is allocated for them) or the client's own (read from the
/// log): counted either way, as the queue counts them.
pub fn frame_bytes(frames: &[Frame]) -> usize {
    frames
        .iter()
        .map(|f| f.len() + std::mem::size_of::<Frame>())
        .sum()
}

/// Creates the adapter of each namespace.
pub type AdapterFactory = Arc<dyn Fn(&str) -> Arc<dyn Adapter> + Send + Sync>;

/// The embedded default: one in-memory adapter per namespace.
pub fn memory_factory() -> AdapterFactory {
    Arc::new(|_| Arc::new(MemoryAdapter::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(id: &str) -> SocketInfo {
        SocketInfo {
            id: id.to_owned(),
            handshake: Value::Null,
            rooms: vec![id.to_owned()],
            data: Value::Null,
        }
    }

    fn ids(sockets: &[SocketInfo]) -> Vec<&str> {
        sockets.iter().map(|s| s.id.as_str()).collect()
    }

    /// Each node's page merged: after `after`, by id, one of each id (a socket id on
    /// two nodes must not push another off the page), at most `limit`.
    #[test]
    fn a_page_of_merged_answers() {
        let mut merged = vec![
            socket("d"),
            socket("a"),
            socket("b"),
            socket("a"),
            socket("c"),
        ];
        let page = SocketsPage {
            after: Some("a".into()),
            limit: Some(2),
            brief: false,
        };
        page.cut(&mut merged, |s| s.id.as_str());
        assert_eq!(ids(&merged), ["b", "c"]);

        let mut with_twin = vec![socket("a"), socket("a"), socket("b")];
        let first = SocketsPage {
            limit: Some(2),
            ..SocketsPage::default()
        };
        first.cut(&mut with_twin, |s| s.id.as_str());
        assert_eq!(ids(&with_twin), ["a", "b"]);

        // Every socket: left as it came.
        let mut all = vec![socket("b"), socket("a")];
        SocketsPage::brief().cut(&mut all, |s| s.id.as_str());
        assert_eq!(ids(&all), ["b", "a"]);
    }
}
