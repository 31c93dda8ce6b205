//! Process-wide counters and gauges of the engine, as lock-free atomics; rendering them
//! (Prometheus text) is the binary's job.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering::Relaxed};

use switchboard_protocol::engineio::TransportKind;

use crate::diagnosis::{Category, Stage};
use crate::pressure::Tier;
use crate::reason::DisconnectReason;

/// Engine metrics. All updates are `Relaxed`: each value is independent and only read
/// for reporting.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_polling: AtomicI64,
    connections_websocket: AtomicI64,
    connections_sse: AtomicI64,
    /// Engine.IO packets received.
    pub packets_in: AtomicU64,
    /// Engine.IO packets sent (queued for writing).
    pub packets_out: AtomicU64,
    /// Payload bytes received.
    pub bytes_in: AtomicU64,
    /// Payload bytes sent (queued for writing).
    pub bytes_out: AtomicU64,
    /// Volatile packets dropped because the client was not ready.
    pub volatile_dropped: AtomicU64,
    /// Handshakes refused because `max_connections` was reached, or the client's address
    /// held `max_sessions_per_ip` or opened sessions faster than `handshake_rate_per_ip`.
    pub connections_refused: AtomicU64,
    /// TCP connections closed as soon as accepted because `max_tcp_connections` were
    /// open, or their address held its share (see `max_sessions_per_ip`).
    pub tcp_connections_refused: AtomicU64,
    /// WebSocket upgrades of other nodes' sessions relayed to their owner.
    pub upgrades_relayed: AtomicU64,
    /// Relayed WebSocket connections open now.
    pub relayed_connections: AtomicI64,
    /// Recovery sessions dropped before they expired to stay within the session
    /// bounds (oldest first), or not kept because larger than one session may be.
    pub recovery_sessions_evicted: AtomicU64,
    /// Recovery sessions that expired unclaimed.
    pub recovery_sessions_expired: AtomicU64,
    /// Emptied pattern namespaces removed before their recovery window ended, to make
    /// room under `max_pattern_namespaces` (oldest emptied first).
    pub namespaces_evicted: AtomicU64,
    /// Rooms sockets were not joined to by `socketsJoin` (this node's application or
    /// API, another node's request) because they were at their namespace's
    /// `max_rooms_per_socket`.
    pub room_joins_refused: AtomicU64,
    /// Bytes of events buffered for replay and sessions kept, every namespace
    /// together, as `recovery.max_total_bytes` counts them: the server's recovery
    /// budget keeps its count here.
    pub(crate) recovery_bytes: Arc<AtomicUsize>,
    /// Bytes of messages on their way in (unfinished WebSocket messages, polling
    /// bodies being read), as `engine.max_inbound_bytes` counts them: the engine's
    /// inbound budget keeps its count here.
    pub(crate) inbound_bytes: Arc<AtomicUsize>,
    /// Messages on their way in that gave way to newer ones when
    /// `engine.max_inbound_bytes` was full (their sessions closed).
    pub(crate) inbound_gave_way: Arc<AtomicU64>,
    recovery_sessions: AtomicI64,
    /// The memory pressure tier ([`Tier`] as a number), read on every send.
    pressure_tier: AtomicU8,
    /// Resident memory at the last sample, in bytes.
    pub memory_rss: AtomicU64,
    /// The memory budget in bytes (0: no budget).
    pub memory_budget: AtomicU64,
    /// Connections closed to relieve memory pressure.
    pub pressure_shed: AtomicU64,
    /// New sessions refused under memory pressure.
    pub pressure_refused: AtomicU64,
    /// Refused handshakes and CONNECTs, per stage and category.
    refusals: [[AtomicU64; Category::ALL.len()]; Stage::ALL.len()],
    /// Per reason, then per category (the reason's and the diagnosis' split).
    disconnects: [[AtomicU64; Category::ALL.len()]; DisconnectReason::ALL.len()],
}

/// A point-in-time copy of [`Metrics`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Open polling sessions.
    pub connections_polling: i64,
    /// Open WebSocket sessions.
    pub connections_websocket: i64,
    /// Open Server-Sent Events streams.
    pub connections_sse: i64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Volatile packets dropped.
    pub volatile_dropped: u64,
    /// Handshakes refused at capacity.
    pub connections_refused: u64,
    /// TCP connections refused at `max_tcp_connections`.
    pub tcp_connections_refused: u64,
    /// WebSocket upgrades relayed to their session's node.
    pub upgrades_relayed: u64,
    /// Relayed WebSocket connections open.
    pub relayed_connections: i64,
    /// Sessions of dropped sockets kept for recovery, all namespaces.
    pub recovery_sessions: i64,
    /// Recovery sessions dropped to stay within bounds.
    pub recovery_sessions_evicted: u64,
    /// Recovery sessions that expired unclaimed.
    pub recovery_sessions_expired: u64,
    /// Emptied pattern namespaces removed early to make room for new ones.
    pub namespaces_evicted: u64,
    /// Rooms sockets were not joined to at their namespace's rooms-per-socket bound.
    pub room_joins_refused: u64,
    /// Bytes the recovery buffers of every namespace hold together.
    pub recovery_bytes: usize,
    /// Bytes of messages on their way in, every session together.
    pub inbound_bytes: usize,
    /// Messages on their way in that gave way to newer ones at the inbound budget.
    pub inbound_gave_way: u64,
    /// The memory pressure tier.
    pub pressure_tier: Tier,
    /// Resident memory at the last sample.
    pub memory_rss: u64,
    /// The memory budget (0: none).
    pub memory_budget: u64,
    /// Connections shed under memory pressure.
    pub pressure_shed: u64,
    /// New sessions refused under memory pressure.
    pub pressure_refused: u64,
    /// Refusals per stage and category, where non-zero.
    pub refusals: Vec<(Stage, Category, u64)>,
    /// Connection disconnects per reason.
    pub disconnects: Vec<(DisconnectReason, u64)>,
    /// Connection disconnects per reason and diagnosed category, where non-zero.
    pub disconnect_categories: Vec<(DisconnectReason, Category, u64)>,
}

impl Metrics {
    fn gauge(&self, t: TransportKind) -> &AtomicI64 {
        match t {
            TransportKind::Polling => &self.connections_polling,
            TransportKind::Websocket => &self.connections_websocket,
            TransportKind::Sse => &self.connections_sse,
        }
    }

    pub(crate) fn connection_opened(&self, t: TransportKind) {
        self.gauge(t).fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_upgraded(&self) {
        self.connections_polling.fetch_sub(1, Relaxed);
        self.connections_websocket.fetch_add(1, Relaxed);
    }

    pub(crate) fn connection_closed(
        &self,
        t: TransportKind,
        reason: DisconnectReason,
        category: Category,
    ) {
        self.gauge(t).fetch_sub(1, Relaxed);
        self.disconnects[reason.index()][category.index()].fetch_add(1, Relaxed);
    }

    /// A connection opened for a request that was then refused (counted as a
    /// refusal, not as a disconnect).
    pub(crate) fn connection_refused_after_open(&self, t: TransportKind) {
        self.gauge(t).fetch_sub(1, Relaxed);
    }

    pub(crate) fn refused(&self, stage: Stage, category: Category) {
        self.refusals[stage.index()][category.index()].fetch_add(1, Relaxed);
    }

    pub(crate) fn received(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Relaxed);
    }

    /// `frames` (a packet and its attachments) were queued `times` times: once for
    /// a single send, once per recipient for a broadcast, counted in one step.
    pub(crate) fn sent(&self, frames: &[crate::eio::Frame], times: usize) {
        let bytes: usize = frames.iter().map(crate::eio::Frame::len).sum();
        self.packets_out
            .fetch_add((frames.len() * times) as u64, Relaxed);
        self.bytes_out.fetch_add((bytes * times) as u64, Relaxed);
    }

    pub(crate) fn recovery_sessions_changed(&self, delta: i64) {
        self.recovery_sessions.fetch_add(delta, Relaxed);
    }

    /// The memory pressure tier now.
    pub fn pressure_tier(&self) -> Tier {
        Tier::from_u8(self.pressure_tier.load(Relaxed))
    }

    pub(crate) fn set_pressure_tier(&self, tier: Tier) {
        self.pressure_tier.store(tier as u8, Relaxed);
    }

    /// Whether bounds are halved and new sessions refused (critical pressure or
    /// worse).
    pub fn shrunk(&self) -> bool {
        self.pressure_tier() >= Tier::Critical
    }

    /// Open connections on all transports.
    pub fn open_connections(&self) -> i64 {
        self.connections_polling.load(Relaxed)
            + self.connections_websocket.load(Relaxed)
            + self.connections_sse.load(Relaxed)
    }

    /// Copies every value.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            connections_polling: self.connections_polling.load(Relaxed),
            connections_websocket: self.connections_websocket.load(Relaxed),
            connections_sse: self.connections_sse.load(Relaxed),
            packets_in: self.packets_in.load(Relaxed),
            packets_out: self.packets_out.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            volatile_dropped: self.volatile_dropped.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            tcp_connections_refused: self.tcp_connections_refused.load(Relaxed),
            upgrades_relayed: self.upgrades_relayed.load(Relaxed),
            relayed_connections: self.relayed_connections.load(Relaxed),
            recovery_sessions: self.recovery_sessions.load(Relaxed),
            recovery_sessions_evicted: self.recovery_sessions_evicted.load(Relaxed),
            recovery_sessions_expired: self.recovery_sessions_expired.load(Relaxed),
            namespaces_evicted: self.namespaces_evicted.load(Relaxed),
            room_joins_refused: self.room_joins_refused.load(Relaxed),
            recovery_bytes: self.recovery_bytes.load(Relaxed),
            inbound_bytes: self.inbound_bytes.load(Relaxed),
            inbound_gave_way: self.inbound_gave_way.load(Relaxed),
            pressure_tier: self.pressure_tier(),
            memory_rss: self.memory_rss.load(Relaxed),
            memory_budget: self.memory_budget.load(Relaxed),
            pressure_shed: self.pressure_shed.load(Relaxed),
            pressure_refused: self.pressure_refused.load(Relaxed),
            refusals: Stage::ALL
                .iter()
                .flat_map(|s| Category::ALL.iter().map(move |c| (*s, *c)))
                .map(|(s, c)| (s, c, self.refusals[s.index()][c.index()].load(Relaxed)))
                .filter(|(_, _, n)| *n > 0)
                .collect(),
            disconnects: DisconnectReason::ALL
                .iter()
                .map(|r| {
                    let row = &self.disconnects[r.index()];
                    (*r, row.iter().map(|n| n.load(Relaxed)).sum())
                })
                .collect(),
            disconnect_categories: DisconnectReason::ALL
                .iter()
                .flat_map(|r| {
                    Category::ALL.iter().filter_map(move |c| {
                        let n = self.disconnects[r.index()][c.index()].load(Relaxed);
                        (n > 0).then_some((*r, *c, n))
                    })
                })
                .collect(),
        }
    }
}
