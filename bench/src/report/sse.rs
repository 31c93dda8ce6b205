//! The SSE scenario's section: `switchboard serve` with Server-Sent Events listeners
//! against the same server with Socket.IO clients over WebSocket, idle memory and
//! fan-out published through the HTTP API.

use std::fmt::Write as _;

use super::tables::{ran, ratio};
use crate::chart::human;
use crate::fleet::Transport;
use crate::peers::ServerKind;
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::sse::TransportResult;
use crate::suite::SuiteReport;

/// The section (nothing when the scenario did not run).
pub(super) fn section(report: &SuiteReport) -> String {
    let Some(serve) = ran(report).find(|s| s.server == ServerKind::SwitchboardServe) else {
        return String::new();
    };
    let results = &serve.sse;
    if results.is_empty() {
        return String::new();
    }
    let p = &report.params;
    let mut md = format!(
        "\n## Server-Sent Events (`switchboard serve`, SSE against WebSocket)\n\n\
         The same `switchboard serve` and config (`switchboard-serve.toml`: `[sse] enabled`, \
         one API key, no API rate limit); only the receivers' transport differs, each step on \
         a fresh server. **SSE**: `GET /sse?nsp=/&room=<room>` over HTTP/1.1, one TCP \
         connection per listener, read by the generator's own lean client (chunked coding \
         undone, only `event:` and `data:` lines looked at). **WebSocket**: the Socket.IO \
         clients of the other scenarios, which join the room with `join`. The publisher is \
         the HTTP API for both: `POST /api/v1/emit` of `bench` (room, 100-byte payload \
         carrying its publish time in µs) to the room, pipelined on one keep-alive \
         connection, each 200 answer its ack, so the fan-out scenario's closed loop (16 \
         unanswered emits, 16 emits' worth of undelivered events) applies unchanged; then \
         {:.0} emits/s with the publish→deliver latency of every delivery. The WebSocket \
         rows differ from the `fanout` scenario's `switchboard serve` rows only in the \
         publisher (the API instead of a relayed Socket.IO event).\n",
        p.sse_rate
    );
    md.push_str(&idle(report, results));
    md.push_str(&fanout(report, results));
    md
}

/// The entry of `transport`.
fn of(results: &[TransportResult], transport: Transport) -> Option<&TransportResult> {
    results.iter().find(|t| t.transport == transport)
}

/// Idle memory per receiver, SSE against WebSocket.
fn idle(report: &SuiteReport, results: &[TransportResult]) -> String {
    let counts = &report.params.sse_idle_counts;
    let mut md = String::from(
        "\n### Idle memory per receiver (server RSS − RSS before any, ÷ receivers; each in \
         one room)\n\n| transport |",
    );
    for n in counts {
        let _ = write!(md, " KiB/receiver at {n} |");
    }
    md.push_str(" RSS at max | counted by `/metrics` | × WebSocket (at max) |\n|---|");
    md.push_str(&"---:|".repeat(counts.len() + 3));
    md.push('\n');
    let per = |t: &TransportResult, n: usize| {
        let points = &t.idle.as_ref()?.points;
        let point = points.iter().find(|p| p.connections == n)?;
        Some(point.bytes_per_connection / 1024.0)
    };
    let last = counts.last().copied().unwrap_or(0);
    let base = of(results, Transport::WebSocket).and_then(|t| per(t, last));
    let mut rows = 0;
    for t in [Transport::Sse, Transport::WebSocket].map(|t| of(results, t)) {
        let Some(t) = t.filter(|t| t.idle.is_some()) else {
            continue;
        };
        rows += 1;
        let _ = write!(md, "| {} |", t.transport.label());
        for &n in counts {
            let v = per(t, n).map_or("—".into(), |v| format!("{v:.2}"));
            let _ = write!(md, " {v} |");
        }
        let rss = t.idle.as_ref().and_then(|i| i.points.last());
        let rss = rss.map_or("—".into(), |p| {
            format!("{:.1} MiB", p.rss_bytes as f64 / 1048576.0)
        });
        let counted = t.server_connections.map_or("—".into(), |c| c.to_string());
        let _ = writeln!(md, " {rss} | {counted} | {} |", ratio(per(t, last), base));
    }
    if rows == 0 { String::new() } else { md }
}

/// Fan-out through the API: as fast as accepted, then the fixed rate.
fn fanout(report: &SuiteReport, results: &[TransportResult]) -> String {
    let mut md = String::from(
        "\n### Fan-out to one room, published through the API\n\n\
         | transport | room | publish | emits/s | deliveries/s | server cores | server CPU s / \
         M deliveries | × WebSocket | p50 ms | p99 ms | p99.9 ms | max ms | received | \
         generator cores | dropped · undelivered · lost conns |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    let mut worst_generator = 0.0f64;
    let mut rows = 0;
    for &size in &report.params.sse_room_sizes {
        let find = |transport| {
            let t = of(results, transport)?;
            let f = t.fanout.iter().find(|f| f.room_size == size);
            let l = t.latency.iter().find(|l| l.room_size == size);
            Some((f, l))
        };
        let base = find(Transport::WebSocket);
        let base_peak = base.and_then(|(f, _)| f).map(|f| f.server_cpu_s_per_m);
        let base_rate = base.and_then(|(_, l)| l).map(fixed_cpu_per_m);
        for transport in [Transport::Sse, Transport::WebSocket] {
            let Some((f, l)) = find(transport) else {
                continue;
            };
            let label = transport.label();
            if let Some(f) = f {
                rows += 1;
                let generator = f.generator_cpu_s_per_m * f.deliveries_per_sec / 1e6;
                worst_generator = worst_generator.max(generator);
                let _ = writeln!(
                    md,
                    "| {label} | {size} | as fast as accepted | {} | {} | {:.2} | {:.2} | {} | \
                     — | — | — | — | — | {generator:.2} | {} · {} · {} |",
                    human(f.broadcasts as f64 / f.seconds.max(f64::MIN_POSITIVE)),
                    human(f.deliveries_per_sec),
                    f.server_cores,
                    f.server_cpu_s_per_m,
                    ratio(Some(f.server_cpu_s_per_m), base_peak),
                    f.written_off,
                    f.undelivered,
                    f.lost_connections,
                );
            }
            if let Some(l) = l {
                rows += 1;
                worst_generator = worst_generator.max(l.generator_cores);
                let received = if l.expected == 0 {
                    0.0
                } else {
                    100.0 * l.samples as f64 / l.expected as f64
                };
                let _ = writeln!(
                    md,
                    "| {label} | {size} | fixed rate | {:.0} | {} | {:.2} | {:.2} | {} | {} | {} | \
                     {} | {} | {received:.1}% | {:.2} | |",
                    l.rate,
                    human(l.offered_deliveries_per_sec),
                    l.server_cores,
                    fixed_cpu_per_m(l),
                    ratio(Some(fixed_cpu_per_m(l)), base_rate),
                    ms(l.p50_us),
                    ms(l.p99_us),
                    ms(l.p999_us),
                    ms(l.max_us),
                    l.generator_cores,
                );
            }
        }
    }
    if rows == 0 {
        return String::new();
    }
    let verdict = if worst_generator < 1.0 {
        "under one of the two cores, so it is not what limits these rows"
    } else {
        "**one core or more**: the generator may be what limits these rows"
    };
    let _ = write!(
        md,
        "\n`× WebSocket`: server CPU per delivery ÷ the WebSocket row's at the same room and \
         publish. `generator cores`: the most CPU the generator needed for a row was \
         {worst_generator:.2} cores, {verdict}.\n"
    );
    md
}

/// Server CPU seconds per million deliveries of a fixed-rate phase.
fn fixed_cpu_per_m(l: &LatencyResult) -> f64 {
    if l.offered_deliveries_per_sec > 0.0 {
        l.server_cores / l.offered_deliveries_per_sec * 1e6
    } else {
        0.0
    }
}

/// The SSE scenario's fan-out results, for the load generator ceiling table.
pub(super) fn fanouts(report: &SuiteReport) -> Vec<(Transport, &FanoutResult)> {
    ran(report)
        .filter(|s| s.server == ServerKind::SwitchboardServe)
        .flat_map(|s| &s.sse)
        .flat_map(|t| t.fanout.iter().map(move |f| (t.transport, f)))
        .collect()
}
