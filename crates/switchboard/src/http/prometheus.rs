//! Engine metrics rendered in the Prometheus text exposition format, version 0.0.4,
//! and the [`Collector`] seam through which the rest of the server adds its own.

use std::fmt::{Debug, Write as _};

use std::sync::atomic::Ordering;

use switchboard_cluster::Cluster;
use switchboard_engine::diagnosis::{Ending, category_of};
use switchboard_engine::metrics::MetricsSnapshot;

/// A part of the server that adds its own families to every scrape: the API's request
/// counters, the namespace rules and hooks.
///
/// Why a trait: `/metrics` sits below the parts it reports on (they use its
/// [`Exposition`] and its errors), so they hand it a collector instead of it importing
/// their types.
pub(crate) trait Collector: Debug + Send + Sync {
    /// Writes this part's families.
    fn render(&self, out: &mut Exposition);
}

/// The cluster's health: whether the broker is reachable, its traffic and the stream
/// reader's lag, with an info sample naming the adapter, the node's uid and its name.
pub(crate) fn cluster(out: &mut Exposition, cluster: &Cluster, node: &str) {
    out.family(
        "switchboard_cluster_info",
        "gauge",
        "Always 1; the labels name this node's adapter, uid and name.",
    );
    let uid = cluster.uid().unwrap_or("");
    let labels = [
        ("adapter", cluster.adapter().as_str()),
        ("uid", uid),
        ("node", node),
    ];
    out.sample("switchboard_cluster_info", &labels, 1);
    out.gauge(
        "switchboard_cluster_up",
        "1 while the cluster's broker (Redis) is reachable both ways (always 1 in memory mode).",
        u8::from(cluster.is_ready()),
    );
    let Some(h) = cluster.health() else { return };
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    out.counter(
        "switchboard_cluster_reconnects_total",
        "Times the subscriber connection to Redis was re-established.",
        load(&h.reconnects),
    );
    out.counter(
        "switchboard_cluster_published_total",
        "Messages and stream entries written to Redis.",
        load(&h.published),
    );
    out.counter(
        "switchboard_cluster_publish_errors_total",
        "Writes to Redis that failed or were dropped (pub/sub: lost; streams: retried unless the queue overflowed).",
        load(&h.publish_errors),
    );
    out.counter(
        "switchboard_cluster_publish_dropped_total",
        "Writes to Redis dropped because the publish or stream write queue was full (also in publish_errors).",
        load(&h.publish_dropped),
    );
    out.counter(
        "switchboard_cluster_forward_rejected_total",
        "Forwarding frames dropped: unsigned or forged, too old, replayed, or meant for another node.",
        load(&h.forward_rejected),
    );
    out.counter(
        "switchboard_cluster_oversized_total",
        "Messages from Redis longer than a node decodes (16 MiB), dropped undecoded.",
        load(&h.oversized),
    );
    out.counter(
        "switchboard_cluster_received_total",
        "Messages received from the cluster.",
        load(&h.received),
    );
    out.counter(
        "switchboard_cluster_stream_gaps_total",
        "Times entries of the stream were trimmed before this node read them (redis-streams); its sockets of namespaces with recovery were closed to recover.",
        load(&h.stream_gaps),
    );
    out.gauge(
        "switchboard_cluster_stream_lag_ms",
        "Milliseconds between an entry entering the stream and this node reading it (redis-streams).",
        load(&h.stream_lag_ms),
    );
}

/// The content type Prometheus expects for this format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the start of one scrape: the engine's counters and gauges, how many
/// `namespaces` exist, the `sockets` of each label (a declared namespace's name or a
/// pattern's text), and whether the server is ready.
pub(crate) fn render(
    m: &MetricsSnapshot,
    namespaces: usize,
    sockets: &[(String, usize)],
    ready: bool,
) -> String {
    let mut out = Exposition::default();
    out.gauge(
        "switchboard_ready",
        "1 while serving, 0 once shutdown began.",
        u8::from(ready),
    );
    out.family(
        "switchboard_connections",
        "gauge",
        "Open connections by transport (Engine.IO's two, and Server-Sent Events).",
    );
    out.sample(
        "switchboard_connections",
        &[("transport", "polling")],
        m.connections_polling,
    );
    out.sample(
        "switchboard_connections",
        &[("transport", "websocket")],
        m.connections_websocket,
    );
    out.sample(
        "switchboard_connections",
        &[("transport", "sse")],
        m.connections_sse,
    );
    out.gauge(
        "switchboard_namespaces",
        "Namespaces that exist.",
        namespaces,
    );
    out.family(
        "switchboard_sockets",
        "gauge",
        "Connected sockets per declared namespace, and per pattern (labelled with its text) for every namespace it created.",
    );
    for (label, sockets) in sockets {
        out.sample("switchboard_sockets", &[("namespace", label)], sockets);
    }
    out.counter(
        "switchboard_packets_received_total",
        "Engine.IO message packets received.",
        m.packets_in,
    );
    out.counter(
        "switchboard_packets_sent_total",
        "Engine.IO message packets sent.",
        m.packets_out,
    );
    out.counter(
        "switchboard_received_bytes_total",
        "Payload bytes received.",
        m.bytes_in,
    );
    out.counter(
        "switchboard_sent_bytes_total",
        "Payload bytes sent.",
        m.bytes_out,
    );
    out.family(
        "switchboard_disconnects_total",
        "counter",
        "Closed connections by diagnosed category and reason (docs/diagnosis.md).",
    );
    // Every reason with its usual category (zero until it happens, so the series
    // exist from the start), and the other categories a reason was diagnosed as.
    for (reason, _) in &m.disconnects {
        let usual = category_of(*reason, Ending::Unknown);
        let count_of = |category| {
            m.disconnect_categories
                .iter()
                .find(|(r, c, _)| r == reason && *c == category)
                .map_or(0, |(_, _, n)| *n)
        };
        out.sample(
            "switchboard_disconnects_total",
            &[("category", usual.as_str()), ("reason", reason.as_str())],
            count_of(usual),
        );
        for (r, category, count) in &m.disconnect_categories {
            if r == reason && *category != usual {
                out.sample(
                    "switchboard_disconnects_total",
                    &[("category", category.as_str()), ("reason", reason.as_str())],
                    count,
                );
            }
        }
    }
    out.counter(
        "switchboard_volatile_dropped_total",
        "Volatile packets dropped because the client was not ready.",
        m.volatile_dropped,
    );
    out.counter(
        "switchboard_connections_refused_total",
        "Handshakes refused because engine.max_connections was reached, or the client address held engine.max_sessions_per_ip or opened sessions faster than engine.handshakes_per_ip_per_second.",
        m.connections_refused,
    );
    out.counter(
        "switchboard_tcp_connections_refused_total",
        "TCP connections closed at once because engine.max_tcp_connections were open, or their address held its share (2 × engine.max_sessions_per_ip + 8).",
        m.tcp_connections_refused,
    );
    out.counter(
        "switchboard_upgrades_relayed_total",
        "WebSocket upgrades of sessions other nodes own, relayed to their node (a balancer without sticky sessions sent them here).",
        m.upgrades_relayed,
    );
    out.gauge(
        "switchboard_relayed_connections",
        "Relayed WebSocket connections open on this node (two TCP connections each).",
        m.relayed_connections,
    );
    out.gauge(
        "switchboard_recovery_sessions",
        "Sessions of dropped sockets kept for connection state recovery.",
        m.recovery_sessions,
    );
    out.counter(
        "switchboard_recovery_sessions_evicted_total",
        "Recovery sessions dropped before they expired to stay within recovery.max_sessions / max_bytes (oldest first), or too large to keep.",
        m.recovery_sessions_evicted,
    );
    out.counter(
        "switchboard_recovery_sessions_expired_total",
        "Recovery sessions dropped unclaimed after recovery.max_disconnection_duration.",
        m.recovery_sessions_expired,
    );
    out.gauge(
        "switchboard_recovery_bytes",
        "Bytes of events buffered for replay and sessions kept, every namespace together, as recovery.max_total_bytes counts them.",
        m.recovery_bytes,
    );
    out.gauge(
        "switchboard_inbound_bytes",
        "Bytes of messages on their way in (unfinished WebSocket messages, polling bodies being read), every session together, as engine.max_inbound_bytes counts them.",
        m.inbound_bytes,
    );
    out.counter(
        "switchboard_inbound_gave_way_total",
        "Messages on their way in (unfinished for over a tenth of engine.body_timeout) that gave way to newer ones when engine.max_inbound_bytes was full; their sessions were closed as server overloaded.",
        m.inbound_gave_way,
    );
    out.counter(
        "switchboard_namespaces_evicted_total",
        "Emptied namespaces created from patterns removed before their recovery window ended, to make room under socketio.max_pattern_namespaces (oldest emptied first).",
        m.namespaces_evicted,
    );
    out.counter(
        "switchboard_room_joins_refused_total",
        "Rooms sockets were not joined to by socketsJoin (the HTTP API, the Admin UI or another node, Node servers included) because they were in rooms.max_per_socket rooms already.",
        m.room_joins_refused,
    );
    memory(&mut out, m);
    out.family(
        "switchboard_refusals_total",
        "counter",
        "Refused handshakes (stage handshake: origin, allowRequest, capacity, draining, memory pressure, malformed) and CONNECTs (stage connect: middleware, unknown namespace, limits), by diagnosis category.",
    );
    for (stage, category, n) in &m.refusals {
        out.sample(
            "switchboard_refusals_total",
            &[("stage", stage.as_str()), ("category", category.as_str())],
            n,
        );
    }
    out.0
}

/// The memory pressure families (docs/diagnosis.md#memory-pressure).
fn memory(out: &mut Exposition, m: &MetricsSnapshot) {
    out.gauge(
        "switchboard_memory_pressure_tier",
        "Memory pressure: 0 normal, 1 elevated (>= 70 % of limits.memory), 2 critical (>= 85 %: new sessions refused, volatile packets dropped, bounds halved), 3 imminent (>= 95 %: connections shed).",
        m.pressure_tier as u8,
    );
    out.gauge(
        "switchboard_memory_rss_bytes",
        "Resident memory at the last sample.",
        m.memory_rss,
    );
    out.gauge(
        "switchboard_memory_budget_bytes",
        "The memory budget (limits.memory); 0 when off.",
        m.memory_budget,
    );
    out.counter(
        "switchboard_memory_pressure_shed_total",
        "Connections closed (server overloaded) at imminent memory pressure, those holding the most queued bytes first.",
        m.pressure_shed,
    );
    out.counter(
        "switchboard_memory_pressure_refused_total",
        "New sessions refused (503) at critical memory pressure or worse.",
        m.pressure_refused,
    );
}

/// The text being built; every [`Collector`] writes its families with it too.
#[derive(Debug, Default)]
pub(crate) struct Exposition(String);

impl Exposition {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub(crate) fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) {
        self.0.push_str(name);
        if !labels.is_empty() {
            let pairs: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    /// A family with one unlabelled counter.
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }

    /// A family with one unlabelled gauge.
    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// The text.
    pub(crate) fn into_string(self) -> String {
        self.0
    }
}

/// Escapes a label value: backslash, double quote and newline, as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use switchboard_engine::DisconnectReason;
    use switchboard_engine::diagnosis::Category;

    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let snapshot = MetricsSnapshot {
            connections_polling: 2,
            connections_websocket: 3,
            connections_sse: 4,
            packets_in: 10,
            packets_out: 11,
            bytes_in: 100,
            bytes_out: 110,
            volatile_dropped: 4,
            connections_refused: 5,
            tcp_connections_refused: 21,
            upgrades_relayed: 22,
            relayed_connections: 23,
            recovery_sessions: 9,
            recovery_sessions_evicted: 12,
            recovery_sessions_expired: 13,
            namespaces_evicted: 24,
            room_joins_refused: 5,
            recovery_bytes: 25,
            inbound_bytes: 26,
            inbound_gave_way: 27,
            pressure_tier: switchboard_engine::pressure::Tier::Critical,
            memory_rss: 900,
            memory_budget: 1000,
            pressure_shed: 14,
            pressure_refused: 15,
            refusals: vec![(
                switchboard_engine::diagnosis::Stage::Connect,
                Category::Auth,
                16,
            )],
            disconnects: vec![
                (DisconnectReason::PingTimeout, 6),
                (DisconnectReason::ServerShuttingDown, 7),
                (DisconnectReason::TransportClose, 5),
            ],
            disconnect_categories: vec![
                (DisconnectReason::PingTimeout, Category::Heartbeat, 6),
                (DisconnectReason::ServerShuttingDown, Category::Server, 7),
                (DisconnectReason::TransportClose, Category::Client, 2),
                (DisconnectReason::TransportClose, Category::SlowConsumer, 3),
            ],
        };
        let namespaces = [("/".to_owned(), 4), ("/chat".to_owned(), 1)];
        let text = render(&snapshot, namespaces.len(), &namespaces, true);
        for line in [
            "switchboard_ready 1",
            "switchboard_connections{transport=\"polling\"} 2",
            "switchboard_connections{transport=\"websocket\"} 3",
            "switchboard_namespaces 2",
            "switchboard_sockets{namespace=\"/\"} 4",
            "switchboard_sockets{namespace=\"/chat\"} 1",
            "switchboard_packets_received_total 10",
            "switchboard_packets_sent_total 11",
            "switchboard_received_bytes_total 100",
            "switchboard_sent_bytes_total 110",
            "switchboard_disconnects_total{category=\"heartbeat\",reason=\"ping timeout\"} 6",
            "switchboard_disconnects_total{category=\"server\",reason=\"server shutting down\"} 7",
            "switchboard_disconnects_total{category=\"network\",reason=\"transport close\"} 0",
            "switchboard_disconnects_total{category=\"client\",reason=\"transport close\"} 2",
            "switchboard_disconnects_total{category=\"slow_consumer\",reason=\"transport close\"} 3",
            "switchboard_volatile_dropped_total 4",
            "switchboard_memory_pressure_tier 2",
            "switchboard_memory_rss_bytes 900",
            "switchboard_memory_budget_bytes 1000",
            "switchboard_memory_pressure_shed_total 14",
            "switchboard_memory_pressure_refused_total 15",
            "switchboard_refusals_total{stage=\"connect\",category=\"auth\"} 16",
            "switchboard_connections_refused_total 5",
            "switchboard_tcp_connections_refused_total 21",
            "switchboard_upgrades_relayed_total 22",
            "switchboard_relayed_connections 23",
            "switchboard_recovery_sessions 9",
            "switchboard_recovery_sessions_evicted_total 12",
            "switchboard_recovery_sessions_expired_total 13",
            "switchboard_namespaces_evicted_total 24",
            "switchboard_room_joins_refused_total 5",
            "switchboard_recovery_bytes 25",
            "switchboard_inbound_bytes 26",
            "switchboard_inbound_gave_way_total 27",
            "# TYPE switchboard_disconnects_total counter",
            "# TYPE switchboard_sockets gauge",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample belongs to a family declared just before it.
        let families = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        assert_eq!(
            families,
            text.lines().filter(|l| l.starts_with("# HELP")).count()
        );
        assert_eq!(families, 28);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"/a"b\c"#), r#"/a\"b\\c"#);
        assert_eq!(escape("a\nb"), r"a\nb");
    }
}
