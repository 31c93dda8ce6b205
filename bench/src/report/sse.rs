//! The SSE scenario's section: `switchboard serve` with Server-Sent Events listeners
//! against the same server with Socket.IO clients over WebSocket, idle memory and
//! fan-out published through the HTTP API.

use std::fmt::Write as _;

use super::lost::{self, Losses, Lost};
use super::rounds::{Rounds, Spread, two};
use super::samples;
use super::tables::{ran, ratio};
use crate::chart::human;
use crate::fleet::Transport;
use crate::peers::ServerKind;
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::idle::IdlePoint;
use crate::scenarios::sse::TransportResult;
use crate::suite::{ServerReport, SuiteReport};

/// The section (nothing when the scenario did not run).
pub(super) fn section(report: &SuiteReport) -> String {
    let Some(serve) = ran(report).find(|s| s.server == ServerKind::SwitchboardServe) else {
        return String::new();
    };
    if serve.rounds.iter().all(|r| r.sse.is_empty()) {
        return String::new();
    }
    let results = serve;
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

/// The entry of `transport`, every round.
fn of(serve: &ServerReport, transport: Transport) -> Option<Rounds<'_, TransportResult>> {
    Rounds::of(serve, move |r| {
        r.sse.iter().find(|t| t.transport == transport)
    })
}

/// Idle memory per receiver at `n` receivers, every round.
fn idle_at<'a>(t: &Rounds<'a, TransportResult>, n: usize) -> Option<Rounds<'a, IdlePoint>> {
    let points = t.each().filter_map(|t| t.idle.as_ref());
    Rounds::from(
        points
            .filter_map(|i| i.points.iter().find(|p| p.connections == n))
            .collect(),
    )
}

/// Idle memory per receiver, SSE against WebSocket.
fn idle(report: &SuiteReport, results: &ServerReport) -> String {
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
    let kib = |p: &IdlePoint| p.bytes_per_connection / 1024.0;
    let per = |t: &Rounds<'_, TransportResult>, n: usize| idle_at(t, n).map(|p| p.median(kib));
    let last = counts.last().copied().unwrap_or(0);
    let base = of(results, Transport::WebSocket).and_then(|t| per(&t, last));
    let mut rows = 0;
    for transport in [Transport::Sse, Transport::WebSocket] {
        let Some(t) = of(results, transport) else {
            continue;
        };
        if t.each().all(|t| t.idle.is_none()) {
            continue;
        }
        rows += 1;
        let _ = write!(md, "| {} |", transport.label());
        for &n in counts {
            let v = idle_at(&t, n).map_or("—".into(), |p| p.spread(kib).show(two));
            let _ = write!(md, " {v} |");
        }
        let last_points = t.each().filter_map(|t| t.idle.as_ref()?.points.last());
        let rss = Rounds::from(last_points.collect()).map_or("—".into(), |p| {
            format!("{:.1} MiB", p.median(|p| p.rss_bytes as f64) / 1048576.0)
        });
        let counted: Vec<f64> = t
            .each()
            .filter_map(|t| t.server_connections)
            .map(|c| c as f64)
            .collect();
        let counted = if counted.is_empty() {
            "—".to_owned()
        } else {
            format!("{:.0}", Spread::of(counted.into_iter()).median)
        };
        let _ = writeln!(md, " {rss} | {counted} | {} |", ratio(per(&t, last), base));
    }
    if rows == 0 { String::new() } else { md }
}

/// Fan-out through the API: as fast as accepted, then the fixed rate.
fn fanout(report: &SuiteReport, results: &ServerReport) -> String {
    let mut md = format!(
        "\n### Fan-out to one room, published through the API\n\n{}\n\n\
         | transport | room | publish | emits/s | deliveries/s | server cores | server CPU s / \
         M deliveries | × WebSocket | p50 ms | p99 ms | p99.9 ms | max ms | received | \
         generator cores | {} |\n\
         |---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        super::tables::latency_end_note(report),
        lost::HEAD
    );
    let mut worst_generator = 0.0f64;
    let mut rows = 0;
    let mut losses = Losses::new("emits");
    // Server + generator cores at each peak, by transport.
    let mut peaks: Vec<(&str, f64, f64)> = Vec::new();
    // Broadcasts per round of each fixed-rate phase whose p99.9 or p99 is left out.
    let mut few: Vec<(&str, String)> = Vec::new();
    let mut lossy = false;
    let cpu = |f: &FanoutResult| f.server_cpu_s_per_m;
    for &size in &report.params.sse_room_sizes {
        let base_peak = fanout_at(results, Transport::WebSocket, size).map(|f| f.median(cpu));
        let base_rate =
            latency_at(results, Transport::WebSocket, size).map(|l| l.median(fixed_cpu_per_m));
        for transport in [Transport::Sse, Transport::WebSocket] {
            let label = transport.label();
            if let Some(f) = fanout_at(results, transport, size) {
                rows += 1;
                let generator = f.median(|f| f.generator_cpu_s_per_m * f.deliveries_per_sec / 1e6);
                worst_generator = worst_generator.max(generator);
                peaks.push((label, f.median(|f| f.server_cores), generator));
                let lost = losses.cell(
                    format!("{label}, room {size}"),
                    f.each().map(Lost::of_fanout).collect(),
                );
                let _ = writeln!(
                    md,
                    "| {label} | {size} | as fast as accepted | {} | {} | {:.2} | {} | {} | \
                     — | — | — | — | — | {generator:.2} | {lost} |",
                    human(f.median(|f| f.broadcasts as f64 / f.seconds.max(f64::MIN_POSITIVE))),
                    f.spread(|f| f.deliveries_per_sec).show(human),
                    f.median(|f| f.server_cores),
                    f.spread(cpu).show(two),
                    ratio(Some(f.median(cpu)), base_peak),
                );
            }
            if let Some(l) = latency_at(results, transport, size) {
                rows += 1;
                let generator = l.median(|l| l.generator_cores);
                worst_generator = worst_generator.max(generator);
                let gate = samples::Gate::of(&l);
                if !gate.p999 {
                    few.push((label, samples::count_cells(&l)[0].clone()));
                }
                lossy |= samples::short(&l);
                let [p50, p99, p999, max] = samples::quantile_cells(&l, gate);
                let _ = writeln!(
                    md,
                    "| {label} | {size} | fixed rate | {:.0} | {} | {:.2} | {} | {} | {p50} | \
                     {p99} | {p999} | {max} | {} | {generator:.2} | |",
                    l.median(|l| l.rate),
                    human(l.median(|l| l.offered_deliveries_per_sec)),
                    l.median(|l| l.server_cores),
                    l.spread(fixed_cpu_per_m).show(two),
                    ratio(Some(l.median(fixed_cpu_per_m)), base_rate),
                    samples::received_cell(&l),
                );
            }
        }
    }
    if rows == 0 {
        return String::new();
    }
    let cores = report.machine.cores;
    let each: Vec<String> = peaks
        .iter()
        .map(|(label, server, generator)| {
            format!(
                "{:.2} ({label}: server {server:.2} + generator {generator:.2})",
                server + generator
            )
        })
        .collect();
    let full = super::ceiling::BOUND * cores as f64;
    let bound = peaks.iter().filter(|(_, s, g)| s + g >= full).count();
    let share = format!("{:.0} %", super::ceiling::BOUND * 100.0);
    let verdict = if bound == 0 {
        format!("under {share} of the machine's {cores} cores")
    } else {
        let which = if bound == peaks.len() { "each" } else { "some" };
        format!(
            "{which} at least {share} of the machine's {cores} cores: such a peak is what the \
             two processes sharing the cores reached, not the server's alone"
        )
    };
    let _ = write!(
        md,
        "\n`× WebSocket`: server CPU per delivery ÷ the WebSocket row's at the same room and \
         publish; at the peak each transport ran at its own rate (`emits/s`), so the peak's \
         ratio compares two loads, the fixed-rate rows one. `generator cores`: the most CPU \
         the generator needed for a row was {worst_generator:.2} cores; at the peaks server \
         and generator together used {}, {verdict}.\n",
        each.join(" and ")
    );
    if !few.is_empty() {
        let each: Vec<String> = few
            .iter()
            .map(|(label, n)| format!("{n} ({label})"))
            .collect();
        let _ = writeln!(
            md,
            "\n`—` in the percentiles: the fixed-rate phases published {} broadcasts a round, \
             fewer than the {} a p99.9 needs (a p99 needs {}).",
            each.join(" and "),
            samples::thousands(samples::P999_BROADCASTS),
            samples::P99_BROADCASTS
        );
    }
    md.push_str(&samples::note(false, lossy));
    md.push_str(&losses.note(
        "the whole step on that room (its peak and the fixed-rate phase, warm-ups included)",
    ));
    md
}

/// The fan-out over `transport` on a room of `size`, every round.
fn fanout_at(
    serve: &ServerReport,
    transport: Transport,
    size: usize,
) -> Option<Rounds<'_, FanoutResult>> {
    let t = of(serve, transport)?;
    Rounds::from(
        t.each()
            .filter_map(|t| t.fanout.iter().find(|f| f.room_size == size))
            .collect(),
    )
}

/// The fixed-rate phase over `transport` on a room of `size`, every round.
fn latency_at(
    serve: &ServerReport,
    transport: Transport,
    size: usize,
) -> Option<Rounds<'_, LatencyResult>> {
    let t = of(serve, transport)?;
    Rounds::from(
        t.each()
            .filter_map(|t| t.latency.iter().find(|l| l.room_size == size))
            .collect(),
    )
}

/// Server CPU seconds per million deliveries of a fixed-rate phase.
fn fixed_cpu_per_m(l: &LatencyResult) -> f64 {
    if l.offered_deliveries_per_sec > 0.0 {
        l.server_cores / l.offered_deliveries_per_sec * 1e6
    } else {
        0.0
    }
}

/// The SSE scenario's fan-out results, for the load generator ceiling table: (transport,
/// room size, deliveries/s, generator CPU s per M deliveries), medians of the rounds.
pub(super) fn fanouts(report: &SuiteReport) -> Vec<(Transport, usize, f64, f64)> {
    let Some(serve) = ran(report).find(|s| s.server == ServerKind::SwitchboardServe) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for transport in [Transport::Sse, Transport::WebSocket] {
        for &size in &report.params.sse_room_sizes {
            if let Some(f) = fanout_at(serve, transport, size) {
                let rate = f.median(|f| f.deliveries_per_sec);
                out.push((transport, size, rate, f.median(|f| f.generator_cpu_s_per_m)));
            }
        }
    }
    out
}
