//! Markdown tables of a run: what each row is, one table per scenario with each server's
//! value (the median of the rounds, with their spread beside the headline figures) and
//! its ratio to Switchboard's (protocol_fixture), and the list of what did not run.

use std::fmt::Write as _;

use super::lost::{self, Losses, Lost};
use super::rounds::{Rounds, ms, two};
use super::samples;
use crate::chart::human;
use crate::peers::ServerKind;
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::idle::IdlePoint;
use crate::stats::Quantiles;
use crate::suite::{Results, ServerReport, SuiteReport};

/// Every table of a report, in order.
pub(super) fn all(report: &SuiteReport) -> String {
    let mut md = head(report);
    md.push_str(&body(report));
    md
}

/// What ran, what did not, and the targets: what BENCHMARKS.md's own notes follow.
pub(super) fn head(report: &SuiteReport) -> String {
    let mut md = servers(report);
    md.push_str(&what_ran(report));
    md.push_str(&targets(report));
    md
}

/// The scenarios' tables, in order.
pub(super) fn body(report: &SuiteReport) -> String {
    let mut md = String::new();
    for table in [
        idle(report),
        fanout(report),
        latency(report),
        rooms(report),
        churn(report),
        super::loaded::table(report),
    ] {
        md.push_str(&with_rows(table));
    }
    md.push_str(&super::sse::section(report));
    md.push_str(&super::cluster::tables(report));
    md.push_str(&super::ceiling::table(report));
    md
}

/// The sections of an earlier run (`earlier`) that `report` has none of and that no
/// run before it gave (`given`, updated): Server-Sent Events and the cluster scenarios,
/// which a run of a subset of the suite may leave out.
pub(super) fn not_repeated(
    report: &SuiteReport,
    earlier: &SuiteReport,
    given: &mut [bool; 2],
) -> String {
    let mut md = String::new();
    let sections: [fn(&SuiteReport) -> String; 2] = [super::sse::section, super::cluster::tables];
    for (section, given) in sections.into_iter().zip(given.iter_mut()) {
        if *given || !section(report).is_empty() {
            continue;
        }
        let text = section(earlier);
        if !text.trim().is_empty() {
            *given = true;
            md.push_str(&text);
        }
    }
    md
}

/// The table, or nothing when no server has a row in it.
pub(super) fn with_rows(table: String) -> String {
    let rows = table.lines().filter(|l| l.starts_with("| ")).count();
    if rows > 1 { table } else { String::new() }
}

/// The machine and versions.
pub(super) fn machine(report: &SuiteReport) -> String {
    let (m, v) = (&report.machine, &report.versions);
    format!(
        "\n## Machine\n\n\
         - CPU: {} — {} cores available, shared by the server and the load generator\n\
         - Memory: {:.1} GiB; kernel {}\n\
         - Open files per process: {} (a server tops out a little under that many connections)\n\
         - Ephemeral ports: {}\n\
         - Load average (1/5/15 min) at start: {}; at end: {} (other engineers share the machine)\n\
         - {}; Node {} with socket.io {}; socketioxide {}; Switchboard at {}{}{}\n",
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.open_files_limit,
        m.port_range,
        m.load_at_start,
        m.load_at_end,
        v.rustc,
        v.node,
        v.socket_io,
        v.socketioxide,
        v.switchboard,
        v.switchboard_binary
            .as_ref()
            .map_or(String::new(), |b| format!(" (binary {b})")),
        v.baseline_binary
            .as_ref()
            .map_or(String::new(), |_| format!(
                "; baseline {}",
                baseline(report)
            ))
    )
}

/// The baseline binary and what it was built from: `` `PATH` at REV ``.
fn baseline(report: &SuiteReport) -> String {
    let v = &report.versions;
    let path = v.baseline_binary.as_deref().unwrap_or("?");
    let rev = v.baseline_rev.as_deref().map_or_else(
        || "(no --baseline-rev given)".to_owned(),
        |r| format!("at {r}"),
    );
    format!("`{path}` {rev}")
}

/// The bare broadcaster's row: a reference, not a limit (a server that does more per
/// delivery can still beat it).
const BARE: &str = "a bare Rust WebSocket broadcaster speaking just enough Engine.IO and \
                    Socket.IO (`bench/src/bare.rs`): a reference point for a server that \
                    does little besides writing frames, not a limit of the hardware (other \
                    servers can beat it).";

/// What each row of the tables is, for the servers of this run.
fn servers(report: &SuiteReport) -> String {
    let mut md = String::from("\n## Servers\n\n| row | what runs |\n|---|---|\n");
    for s in &report.servers {
        let extra = match s.server {
            ServerKind::SwitchboardBaseline if report.versions.baseline_binary.is_some() => {
                format!(" Binary: {}.", baseline(report))
            }
            _ => String::new(),
        };
        let what = match s.server {
            ServerKind::Bare => BARE,
            kind => kind.describe(),
        };
        let _ = writeln!(md, "| {} | {what}{extra} |", s.server.label());
    }
    md
}

/// Switchboard (protocol_fixture) against the targets of DESIGN.md §7, on the medians
/// of the rounds. Fan-out ratios are of deliveries/s, as the targets are worded, with
/// the ratio of deliveries per server CPU-second beside (Node runs one thread, the Rust
/// servers two worker threads). A latency phase that lost deliveries fails its target
/// (its percentiles are of what arrived); one whose p99 rests on too few broadcasts is
/// not judged.
fn targets(report: &SuiteReport) -> String {
    let Some(sb) = switchboard(report) else {
        return String::new();
    };
    let mut rows = String::new();
    let mut row = |what: String, value: String, target: &str, verdict: String| {
        let _ = writeln!(rows, "| {what} | {value} | {target} | {verdict} |");
    };
    let judged = |met: Option<bool>| match met {
        Some(true) => "met".to_owned(),
        Some(false) => "**not met**".to_owned(),
        None => "—".to_owned(),
    };
    if let Some(p) = Rounds::of(sb, |r| r.idle.as_ref()?.points.last()) {
        let kib = p.median(|p| p.bytes_per_connection) / 1024.0;
        row(
            format!("idle memory at {}", p.first().connections),
            format!("{kib:.2} KiB/conn"),
            "≤ 8 KiB",
            judged(Some(kib <= 8.0)),
        );
    }
    for &size in &report.params.room_sizes {
        let Some(own) = fanout_of(sb, size) else {
            continue;
        };
        for (kind, goal) in [
            (ServerKind::Node, 5.0),
            (ServerKind::Socketioxide, 1.5),
            (ServerKind::Bare, 0.7),
        ] {
            let other = ran(report)
                .find(|s| s.server == kind)
                .and_then(|s| fanout_of(s, size));
            let rate = |f: &FanoutResult| f.deliveries_per_sec;
            let cpu = |f: &FanoutResult| f.server_cpu_s_per_m;
            let value = other.as_ref().map(|o| own.median(rate) / o.median(rate));
            let per_cpu = other
                .as_ref()
                .map(|o| (o.median(cpu), own.median(cpu)))
                .filter(|&(_, ours)| ours > 0.0)
                .map(|(theirs, ours)| theirs / ours);
            let shown = match (value, per_cpu) {
                (Some(v), Some(c)) => format!("×{v:.2} (×{c:.2} per server CPU-second)"),
                (Some(v), None) => format!("×{v:.2}"),
                _ => "—".to_owned(),
            };
            row(
                format!("fan-out {size} vs {}", kind.label()),
                shown,
                &format!("≥ ×{goal}"),
                judged(value.map(|v| v >= goal)),
            );
        }
    }
    for &size in &report.params.room_sizes {
        let Some(l) = latency_of(sb, size, Some(0.5)) else {
            continue;
        };
        let value = samples::measured(&l).map(|m| m.median(|l| l.quantiles.p99_us as f64) / 1000.0);
        let shown = value.map_or("— (nothing arrived)".to_owned(), |p| format!("{p:.2} ms"));
        let verdict = if samples::short(&l) {
            format!(
                "**not met**: {:.1} % of its deliveries arrived, and a p99 of those says \
                 nothing of the rest",
                (samples::received(&l) * 10.0).floor() / 10.0
            )
        } else if !samples::Gate::of(&l).p99 {
            format!(
                "— (fewer than {} broadcasts in a round: no p99)",
                samples::P99_BROADCASTS
            )
        } else {
            judged(value.map(|p| p <= 10.0))
        };
        row(
            format!("p99 latency, room {size}, 50% of peak"),
            shown,
            "≤ 10 ms",
            verdict,
        );
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\n## Switchboard against the targets (DESIGN.md §7)\n\n\
         Measured on `{}`, as every earlier run; the other rows are in the tables below. \
         Fan-out ratios are of deliveries/s, as the targets are worded; beside them, the \
         ratio of deliveries per server CPU-second (Node runs one thread, the Rust servers \
         two worker threads, so deliveries/s also count the cores each used).\n\n\
         | measure | Switchboard | target | |\n|---|---:|---:|---|\n{rows}",
        ServerKind::Switchboard.label()
    )
}

/// A scenario as the tables name it, with whether a round has a result of it.
type Scenario = (&'static str, fn(&Results) -> bool);

/// The scenarios a report can hold.
fn scenarios() -> [Scenario; 11] {
    [
        ("idle", |r| r.idle.is_some()),
        ("fan-out", |r| !r.fanout.is_empty()),
        ("latency", |r| !r.latency.is_empty()),
        ("many rooms", |r| r.rooms.is_some()),
        ("churn", |r| r.churn.is_some()),
        ("memory under load", |r| r.loaded.is_some()),
        ("Server-Sent Events", |r| !r.sse.is_empty()),
        ("cluster fan-out", |r| !r.cluster_fanout.is_empty()),
        ("cluster latency", |r| !r.cluster_latency.is_empty()),
        ("cluster many rooms", |r| !r.cluster_rooms.is_empty()),
        ("recovery storm", |r| r.cluster_storm.is_some()),
    ]
}

/// Which scenarios the run has (a result from any server), which servers ran each (a
/// table when not every server that ran has every one), then the servers that were
/// skipped and the steps that failed (to start, by a crash, or in the scenario), with
/// their round when there were several.
fn what_ran(report: &SuiteReport) -> String {
    let every = scenarios();
    let has = |s: &ServerReport, found: fn(&Results) -> bool| {
        s.rounds.iter().filter(|r| found(r)).count()
    };
    let (inside, outside): (Vec<_>, Vec<_>) = every
        .iter()
        .partition(|(_, found)| ran(report).any(|s| has(s, *found) > 0));
    let names = |list: &[&Scenario]| list.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let mut md = String::new();
    if !inside.is_empty() {
        let _ = write!(md, "\nScenarios in this run: {}", names(&inside));
        if !outside.is_empty() {
            let _ = write!(md, " (not in it: {})", names(&outside));
        }
        md.push('.');
        let whole = |s: &ServerReport| {
            inside
                .iter()
                .all(|(_, found)| has(s, *found) == s.rounds.len())
        };
        if ran(report).all(whole) {
            md.push_str(" Every server ran each of them in every round.\n");
        } else {
            md.push_str(" Not every server ran each of them:\n\n| server |");
            for (name, _) in &inside {
                let _ = write!(md, " {name} |");
            }
            md.push_str("\n|---|");
            md.push_str(&":---:|".repeat(inside.len()));
            md.push('\n');
            for s in ran(report) {
                let _ = write!(md, "| {} |", s.server.label());
                for (_, found) in &inside {
                    let n = has(s, *found);
                    let cell = if n == 0 {
                        "—".to_owned()
                    } else if n == s.rounds.len() {
                        "yes".to_owned()
                    } else {
                        format!("{n} of {} rounds", s.rounds.len())
                    };
                    let _ = write!(md, " {cell} |");
                }
                md.push('\n');
            }
            md.push_str(
                "\n`—`: no result from that server (failures are listed below; Server-Sent \
                 Events are `switchboard serve`'s only, the recovery storm Switchboard's \
                 fixture's only, and a server clusters only with the adapters it has).\n",
            );
        }
    }
    let mut failed = String::new();
    let rounds = report.params.repeat;
    for s in &report.servers {
        if let Some(reason) = &s.skipped {
            let _ = writeln!(
                failed,
                "- **{}** did not run: {}",
                s.server.label(),
                one_line(reason)
            );
        }
        for f in &s.failures {
            let round = if rounds > 1 {
                format!(" round {}", f.round)
            } else {
                String::new()
            };
            let _ = writeln!(
                failed,
                "- **{}** `{}`{round} {}: {}",
                s.server.label(),
                f.step,
                f.kind.label(),
                one_line(&f.reason)
            );
        }
    }
    if !failed.is_empty() {
        let _ = write!(md, "\n## What did not run\n\n{failed}");
    }
    md
}

/// `reason` on one line, bounded, with pipes escaped.
fn one_line(reason: &str) -> String {
    let line: String = reason
        .replace('\n', " ")
        .replace('|', "\\|")
        .chars()
        .take(400)
        .collect();
    line
}

/// Servers that ran.
pub(super) fn ran(report: &SuiteReport) -> impl Iterator<Item = &ServerReport> {
    report.servers.iter().filter(|s| s.skipped.is_none())
}

/// The Switchboard entry, if it ran.
pub(super) fn switchboard(report: &SuiteReport) -> Option<&ServerReport> {
    ran(report).find(|s| s.server == ServerKind::Switchboard)
}

/// `value / base` as `×1.23`, or `—`.
pub(super) fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("×{:.2}", v / b),
        _ => "—".to_owned(),
    }
}

/// `s`'s idle measurement at `n` connections, every round.
pub(super) fn idle_at(s: &ServerReport, n: usize) -> Option<Rounds<'_, IdlePoint>> {
    Rounds::of(s, move |r| {
        r.idle.as_ref()?.points.iter().find(|p| p.connections == n)
    })
}

/// `s`'s fan-out on a room of `size`, every round.
pub(super) fn fanout_of(s: &ServerReport, size: usize) -> Option<Rounds<'_, FanoutResult>> {
    Rounds::of(s, move |r| r.fanout.iter().find(|f| f.room_size == size))
}

/// `s`'s latency on a room of `size` at `load`, every round.
pub(super) fn latency_of(
    s: &ServerReport,
    size: usize,
    load: Option<f64>,
) -> Option<Rounds<'_, LatencyResult>> {
    Rounds::of(s, move |r| {
        r.latency
            .iter()
            .find(|l| l.room_size == size && l.load == load)
    })
}

/// Idle memory table.
fn idle(report: &SuiteReport) -> String {
    let counts = &report.params.idle_counts;
    let mut md = String::from("\n## Idle memory (server RSS per connection)\n\n| server |");
    for n in counts {
        let _ = write!(md, " KiB/conn at {n} |");
    }
    md.push_str(" RSS at max | × SB (at max) |\n|---|");
    md.push_str(&"---:|".repeat(counts.len() + 2));
    md.push('\n');
    let kib = |p: &IdlePoint| p.bytes_per_connection / 1024.0;
    let per = |s: &ServerReport, n: usize| idle_at(s, n).map(|p| p.median(kib));
    let last = counts.last().copied().unwrap_or(0);
    let base = switchboard(report).and_then(|s| per(s, last));
    for s in ran(report) {
        if Rounds::of(s, |r| r.idle.as_ref()).is_none() {
            continue;
        }
        let _ = write!(md, "| {} |", s.server.label());
        for &n in counts {
            let cell = idle_at(s, n).map_or("—".into(), |p| p.spread(kib).show(two));
            let _ = write!(md, " {cell} |");
        }
        let rss = Rounds::of(s, |r| r.idle.as_ref()?.points.last())
            .map(|p| p.median(|p| p.rss_bytes as f64) / 1048576.0);
        let _ = writeln!(
            md,
            " {} | {} |",
            rss.map_or("—".into(), |r| format!("{r:.1} MiB")),
            ratio(per(s, last), base)
        );
    }
    md
}

/// Fan-out table.
fn fanout(report: &SuiteReport) -> String {
    let mut md = format!(
        "\n## Fan-out (one room, publisher as fast as the server accepts)\n\n\
         | server | room | deliveries/s | × SB | server CPU s / M deliveries | server cores | \
         generator CPU s / M | {} |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        lost::HEAD
    );
    let rate = |f: &FanoutResult| f.deliveries_per_sec;
    let mut losses = Losses::new("broadcasts");
    for &size in &report.params.room_sizes {
        let base = switchboard(report).and_then(|s| fanout_of(s, size));
        for s in ran(report) {
            let Some(f) = fanout_of(s, size) else {
                continue;
            };
            let lost = losses.cell(
                format!("{}, room {size}", s.server.label()),
                f.each().map(Lost::of_fanout).collect(),
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {lost} |",
                s.server.label(),
                size,
                f.spread(rate).show(human),
                ratio(Some(f.median(rate)), base.as_ref().map(|b| b.median(rate))),
                f.spread(|f| f.server_cpu_s_per_m).show(two),
                f.median(|f| f.server_cores),
                f.median(|f| f.generator_cpu_s_per_m),
            );
        }
    }
    md.push_str(&losses.note(
        "the whole scenario on that room (its peak and the latency phases after it, \
         warm-ups included)",
    ));
    md.push_str(
        "\n`× SB` compares deliveries/s, which also counts the cores each server used \
         (`server cores`: Node runs one thread, the Rust servers two worker threads); \
         `server CPU s / M deliveries` is the cost of a delivery whatever the cores.\n",
    );
    md
}

/// Every latency phase of a run: single server, cluster and SSE, every round.
fn every_latency(report: &SuiteReport) -> impl Iterator<Item = &LatencyResult> {
    report.servers.iter().flat_map(|s| &s.rounds).flat_map(|r| {
        r.latency
            .iter()
            .chain(r.cluster_latency.iter().map(|c| &c.latency))
            .chain(r.sse.iter().flat_map(|t| &t.latency))
    })
}

/// Whether a run's latency samples end at the receiver's socket (kernel receive stamps,
/// `crate::arrival`): its results carry the same samples ended at the read beside them.
pub(super) fn arrival_stamped(report: &SuiteReport) -> bool {
    every_latency(report).any(|l| l.at_read.is_some())
}

/// The sentence saying where a run's latency samples end, and how many the kernel did
/// not stamp.
pub(super) fn latency_end_note(report: &SuiteReport) -> String {
    if !arrival_stamped(report) {
        return "Latency ends when the generator read the event.".to_owned();
    }
    let unstamped: u64 = every_latency(report).map(|l| l.unstamped).sum();
    let mut note = "Latency ends when the event reached the receiver's socket (the kernel's \
                    receive stamp, `SO_TIMESTAMPNS`, `--latency-arrival`), not when the \
                    generator got a core to read it; `p99 at read` is the same samples ended \
                    at the read (what runs without the option measure)."
        .to_owned();
    if unstamped > 0 {
        let _ = write!(
            note,
            " {unstamped} samples came in reads the kernel did not stamp; they end at the read."
        );
    }
    note
}

/// Latency table: each row with the broadcasts and deliveries its percentiles rest on,
/// p99.9 and p99 left out where they rest on too few broadcasts, `received` in bold where
/// deliveries were lost, and rows of one server that ran at one rate said to be one.
fn latency(report: &SuiteReport) -> String {
    let stamped = arrival_stamped(report);
    let (read_head, read_sep) = if stamped {
        (" p99 at read ms |", "---:|")
    } else {
        ("", "")
    };
    let mut md = format!(
        "\n## Latency (fixed publish rate, a fraction of each server's own fan-out peak)\n\n\
         {}\n\n\
         | server | room | load | broadcasts/s | broadcasts / round | deliveries / round | \
         deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | p99 × SB | received | \
         server cores | generator cores |{read_head}\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{read_sep}\n",
        latency_end_note(report)
    );
    let points = latency_points(report);
    let (mut dashed, mut lossy) = (false, false);
    let mut rate_notes = Vec::new();
    for &(size, load) in &points {
        let base = switchboard(report)
            .and_then(|s| latency_of(s, size, load))
            .and_then(|b| samples::p99(&b));
        for s in ran(report) {
            let Some(l) = latency_of(s, size, load) else {
                continue;
            };
            let loads: Vec<Option<f64>> =
                points.iter().filter(|p| p.0 == size).map(|p| p.1).collect();
            let notes = samples::same_rates(s, size, &loads);
            let mut load_cell = load_label(load);
            if let Some(note) = notes.iter().find(|n| n.load == load) {
                if let Some(other) = note.same_as {
                    let _ = write!(load_cell, " (ran at the {} row's rate)", load_label(other));
                }
                rate_notes.push((s.server.label(), size, *note));
            }
            let gate = samples::Gate::of(&l);
            dashed |= !gate.p999;
            lossy |= samples::short(&l);
            let [p50, p99, p999, max] = samples::quantile_cells(&l, gate);
            let [sent, got] = samples::count_cells(&l);
            let _ = write!(
                md,
                "| {} | {} | {load_cell} | {:.0} | {sent} | {got} | {} | {p50} | {p99} | {p999} | \
                 {max} | {} | {} | {:.2} | {:.2} |",
                s.server.label(),
                size,
                l.median(|l| l.rate),
                human(l.median(|l| l.offered_deliveries_per_sec)),
                ratio(samples::p99(&l), base),
                samples::received_cell(&l),
                l.median(|l| l.server_cores),
                l.median(|l| l.generator_cores)
            );
            if stamped {
                let at_read = l.each().filter_map(|l| l.at_read.as_ref()).collect();
                let read = if gate.p99 {
                    read_p99(Rounds::from(at_read))
                } else {
                    "—".to_owned()
                };
                let _ = write!(md, " {read} |");
            }
            md.push('\n');
        }
    }
    md.push_str(&samples::note(dashed, lossy));
    md.push_str(&rates_note(&rate_notes));
    md
}

/// The footnote on latency rows that ran at the 1 broadcast/s floor or at another row's
/// rate: (server, room, note) of each.
fn rates_note(notes: &[(&str, usize, samples::RateNote)]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\nA latency phase publishes at least 1 broadcast/s, whatever its share of the \
         peak:\n\n",
    );
    for (server, size, n) in notes {
        let rounds = if n.floored == n.rounds {
            "every round".to_owned()
        } else {
            format!("{} of {} rounds", n.floored, n.rounds)
        };
        let _ = match n.same_as {
            Some(other) => {
                let floor = if n.floored == n.rounds {
                    " (1 broadcast/s, the floor)".to_owned()
                } else if n.floored > 0 {
                    format!(" (the floor of 1 broadcast/s in {rounds})")
                } else {
                    String::new()
                };
                writeln!(
                    md,
                    "- {server}, room {size}: the {} and {} rows ran at the same rate in every \
                     round{floor}: one load measured twice, not two loads.",
                    load_label(other),
                    load_label(n.load)
                )
            }
            None => writeln!(
                md,
                "- {server}, room {size}, {}: at the floor of 1 broadcast/s in {rounds}, its \
                 share of the peak being under one a second.",
                load_label(n.load)
            ),
        };
    }
    md
}

/// The median p99 at the read over the rounds that have one, in ms, or `—`.
pub(super) fn read_p99(q: Option<Rounds<'_, Quantiles>>) -> String {
    q.map_or("—".to_owned(), |q| ms(q.median(|q| q.p99_us as f64)))
}

/// Distinct (room size, load) latency points of a report, in order.
pub(super) fn latency_points(report: &SuiteReport) -> Vec<(usize, Option<f64>)> {
    let mut points: Vec<(usize, Option<f64>)> = Vec::new();
    for l in report
        .servers
        .iter()
        .flat_map(|s| &s.rounds)
        .flat_map(|r| &r.latency)
    {
        if !points.contains(&(l.room_size, l.load)) {
            points.push((l.room_size, l.load));
        }
    }
    points
}

/// `50% of peak`, or `fixed` for an explicit rate.
pub(super) fn load_label(load: Option<f64>) -> String {
    load.map_or("fixed".to_owned(), |l| format!("{:.0}% of peak", l * 100.0))
}

/// Many-rooms table.
fn rooms(report: &SuiteReport) -> String {
    let p = &report.params;
    let mut md = format!(
        "\n## Many rooms ({} rooms × {} members, targeted emits)\n\n\
         | server | emits/s | deliveries/s | × SB | server CPU s / M deliveries | generator CPU s / M | {} |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
        p.rooms,
        p.members,
        lost::HEAD
    );
    let rate = |r: &crate::scenarios::rooms::RoomsResult| r.deliveries_per_sec;
    let base = switchboard(report)
        .and_then(|s| Rounds::of(s, |r| r.rooms.as_ref()))
        .map(|r| r.median(rate));
    let mut losses = Losses::new("emits");
    for s in ran(report) {
        let Some(r) = Rounds::of(s, |r| r.rooms.as_ref()) else {
            continue;
        };
        let lost = losses.cell(
            s.server.label().to_owned(),
            r.each().map(Lost::of_rooms).collect(),
        );
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {lost} |",
            s.server.label(),
            r.spread(|r| r.emits_per_sec).show(human),
            r.spread(rate).show(human),
            ratio(Some(r.median(rate)), base),
            r.spread(|r| r.server_cpu_s_per_m).show(two),
            r.median(|r| r.generator_cpu_s_per_m),
        );
    }
    md.push_str(&losses.note("the whole scenario (warm-up included)"));
    md
}

/// Churn table.
fn churn(report: &SuiteReport) -> String {
    let mut md = String::from(
        "\n## Churn (connect + handshake + disconnect)\n\n\
         | server | cycles/s | × SB | failures | server CPU s / 1k cycles | RSS before → after | source addresses |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    let rate = |c: &crate::scenarios::churn::ChurnResult| c.cycles_per_sec;
    let base = switchboard(report)
        .and_then(|s| Rounds::of(s, |r| r.churn.as_ref()))
        .map(|c| c.median(rate));
    let mib = |b: f64| b / 1048576.0;
    for s in ran(report) {
        let Some(c) = Rounds::of(s, |r| r.churn.as_ref()) else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} | {:.1} → {:.1} MiB | {} |",
            s.server.label(),
            c.spread(rate).show(|v| format!("{v:.0}")),
            ratio(Some(c.median(rate)), base),
            c.total(|c| c.failures),
            c.median(|c| c.server_cpu_s_per_k),
            mib(c.median(|c| c.rss_before_bytes as f64)),
            mib(c.median(|c| c.rss_after_bytes as f64)),
            c.each().map(|c| c.source_addresses).max().unwrap_or(0)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenarios::Params;
    use serde_json::json;

    /// A fan-out on a room of 100 that published `broadcasts` in 10 s.
    fn fanout_json(broadcasts: u64) -> serde_json::Value {
        json!({
            "room_size": 100, "seconds": 10.0, "broadcasts": broadcasts,
            "deliveries": broadcasts * 100, "deliveries_per_sec": broadcasts as f64 * 10.0,
            "server_cpu_s_per_m": 1.0, "server_cores": 1.2, "generator_cpu_s_per_m": 1.0,
            "written_off": 0, "undelivered": 0, "unacked": 0, "lost_connections": 0
        })
    }

    /// A latency phase on a room of 100 at `load` that published `broadcasts` at `rate`
    /// and received every delivery.
    fn latency_json(load: f64, rate: f64, broadcasts: u64) -> serde_json::Value {
        json!({
            "room_size": 100, "load": load, "rate": rate, "server_cores": 0.5,
            "generator_cores": 0.4, "offered_deliveries_per_sec": rate * 100.0,
            "samples": broadcasts * 100, "expected": broadcasts * 100,
            "p50_us": 1_000, "p99_us": 5_000, "p999_us": 8_000, "max_us": 9_000
        })
    }

    /// Many rooms: 20 rooms of 5, every emit delivered and acked.
    fn rooms_json() -> serde_json::Value {
        json!({
            "rooms": 20, "members": 5, "connections": 20, "seconds": 10.0,
            "emits_per_sec": 1000.0, "deliveries_per_sec": 5000.0,
            "server_cpu_s_per_m": 3.0, "generator_cpu_s_per_m": 2.0,
            "written_off": 0, "undelivered": 0, "unacked": 0, "lost_connections": 0
        })
    }

    /// One round of a server: fan-out of `peak` broadcasts, then latency at 50 %, 10 %
    /// and 1 % of it (at least 1/s, 10 s each), and many rooms.
    fn round(peak: u64) -> Results {
        let rate = |load: f64| (peak as f64 / 10.0 * load).max(1.0);
        let phase = |load: f64| latency_json(load, rate(load), (rate(load) * 10.0) as u64);
        serde_json::from_value(json!({
            "fanout": [fanout_json(peak)],
            "latency": [phase(0.5), phase(0.1), phase(0.01)],
            "rooms": rooms_json(),
        }))
        .expect("a round")
    }

    /// A run of one round: Switchboard's fixture with a peak of 50,000 broadcasts (so its
    /// latency phases publish 25,000, 5,000 and 500), socketioxide with 20,000 (10,000,
    /// 2,000, 200) and Node with 50 (25, then 10 at the 1/s floor twice).
    fn small() -> SuiteReport {
        let mut params = Params::smoke();
        (params.room_sizes, params.latency_loads) = (vec![100], vec![0.5, 0.1, 0.01]);
        let server = |server, peak| ServerReport {
            server,
            skipped: None,
            rounds: vec![round(peak)],
            failures: Vec::new(),
        };
        SuiteReport::for_test(
            "full",
            params,
            vec![
                server(ServerKind::Switchboard, 50_000),
                server(ServerKind::Socketioxide, 20_000),
                server(ServerKind::Node, 50),
            ],
        )
    }

    /// `kind`'s only round.
    fn round_of(report: &mut SuiteReport, kind: ServerKind) -> &mut Results {
        let s = report.servers.iter_mut().find(|s| s.server == kind);
        &mut s.expect("the server ran").rounds[0]
    }

    /// The row of `md` that starts with `start`.
    fn line<'a>(md: &'a str, start: &str) -> &'a str {
        md.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no row {start:?} in {md}"))
    }

    /// The cells of a markdown row.
    fn cells(row: &str) -> Vec<&str> {
        row.trim_matches('|').split('|').map(str::trim).collect()
    }

    #[test]
    fn a_server_that_leaves_events_undelivered_or_emits_unacked_shows_it() {
        let mut report = small();
        let sio = round_of(&mut report, ServerKind::Socketioxide);
        sio.fanout[0].undelivered = 40;
        let r = sio.rooms.as_mut().unwrap();
        (r.unacked, r.lost_connections) = (768, 1);
        let md = fanout(&report);
        let row = cells(line(&md, "| socketioxide | 100 |"));
        assert_eq!(row.last(), Some(&"**0 · 40 · 0 · 0**"), "{md}");
        assert_eq!(
            cells(line(&md, "| node | 100 |")).last(),
            Some(&"0 · 0 · 0 · 0")
        );
        assert!(
            md.contains("socketioxide, room 100: 40 events undelivered."),
            "{md}"
        );
        let md = rooms(&report);
        let row = cells(line(&md, "| socketioxide |"));
        assert_eq!(row.last(), Some(&"**0 · 0 · 768 · 1**"), "{md}");
        assert!(
            md.contains("socketioxide: 768 emits unacked, 1 connections lost."),
            "{md}"
        );
    }

    #[test]
    fn a_latency_phase_that_lost_deliveries_fails_its_target_and_is_marked() {
        let mut report = small();
        // Nothing arrived at half of the peak: an empty histogram reads p99 = 0.
        let half = &mut round_of(&mut report, ServerKind::Switchboard).latency[0];
        half.samples = 0;
        half.quantiles = Quantiles {
            p50_us: 0,
            p99_us: 0,
            p999_us: 0,
            max_us: 0,
        };
        let md = targets(&report);
        let row = cells(line(&md, "| p99 latency, room 100, 50% of peak |"));
        assert_eq!(row[1], "— (nothing arrived)", "{md}");
        assert!(
            row[3].starts_with("**not met**: 0.0 % of its deliveries"),
            "{md}"
        );
        let table = latency(&report);
        let row = cells(line(
            &table,
            "| switchboard (fixture) | 100 | 50% of peak |",
        ));
        assert_eq!(
            &row[7..13],
            ["—", "—", "—", "—", "—", "**0.0%**"],
            "{table}"
        );
        assert!(table.contains("**Received in bold**"), "{table}");

        // One delivery short of every one, with a p99 well inside the target.
        let half = &mut round_of(&mut report, ServerKind::Switchboard).latency[0];
        half.samples = half.expected - 1;
        half.quantiles = Quantiles {
            p50_us: 1_000,
            p99_us: 5_000,
            p999_us: 8_000,
            max_us: 9_000,
        };
        let md = targets(&report);
        let row = cells(line(&md, "| p99 latency, room 100, 50% of peak |"));
        assert_eq!(row[1], "5.00 ms");
        assert!(
            row[3].starts_with("**not met**: 99.9 % of its deliveries"),
            "{md}"
        );
        let table = latency(&report);
        let row = cells(line(
            &table,
            "| switchboard (fixture) | 100 | 50% of peak |",
        ));
        assert_eq!(row[12], "**99.9%**", "never rounded up to 100.0%: {table}");

        // Every delivery: met.
        let half = &mut round_of(&mut report, ServerKind::Switchboard).latency[0];
        half.samples = half.expected;
        let md = targets(&report);
        let row = cells(line(&md, "| p99 latency, room 100, 50% of peak |"));
        assert_eq!(row[3], "met", "{md}");
    }

    #[test]
    fn percentiles_over_few_broadcasts_are_left_out_and_rows_at_one_rate_said_to_be_one() {
        let report = small();
        let md = latency(&report);
        // Switchboard: 25,000, 5,000 and 500 broadcasts; p99.9 of the last left out.
        let row = cells(line(&md, "| switchboard (fixture) | 100 | 1% of peak |"));
        assert_eq!(&row[4..6], ["500", "50k"], "{md}");
        assert_eq!(&row[8..10], ["5.00", "—"], "{md}");
        let row = cells(line(&md, "| switchboard (fixture) | 100 | 10% of peak |"));
        assert_eq!(&row[8..10], ["5.00", "8.00"], "{md}");
        // socketioxide: 200 broadcasts at 1 %: a p99, no p99.9.
        let row = cells(line(&md, "| socketioxide | 100 | 1% of peak |"));
        assert_eq!(&row[8..12], ["5.00", "—", "9.00", "×1.00"], "{md}");
        // Node: 25 broadcasts at half its peak, then 10 and 10 at the floor.
        let row = cells(line(&md, "| node | 100 | 50% of peak |"));
        assert_eq!(
            &row[4..12],
            ["25", "2.5k", "250", "1.00", "—", "—", "9.00", "—"]
        );
        let row = cells(line(&md, "| node | 100 | 1% of peak"));
        assert_eq!(
            row[2], "1% of peak (ran at the 10% of peak row's rate)",
            "{md}"
        );
        assert_eq!(row[4], "10", "{md}");
        assert!(
            !line(&md, "| node | 100 | 10% of peak").contains("ran at"),
            "the first of the two is named plainly: {md}"
        );
        assert!(md.contains("fewer than 1,000 broadcasts; in p99 (and its ratio), fewer than 100"));
        assert!(
            md.contains(
                "node, room 100: the 10% of peak and 1% of peak rows ran at the same rate in \
                 every round (1 broadcast/s, the floor): one load measured twice"
            ),
            "{md}"
        );
        assert!(!md.contains("socketioxide, room 100"), "{md}");
    }

    #[test]
    fn fan_out_ratios_give_deliveries_per_cpu_second_beside() {
        let mut report = small();
        // Node at a third of ours in CPU per delivery ×3: ×1000 deliveries/s, ×3 per CPU-s.
        round_of(&mut report, ServerKind::Node).fanout[0].server_cpu_s_per_m = 3.0;
        let md = targets(&report);
        let row = cells(line(&md, "| fan-out 100 vs node |"));
        assert_eq!(row[1], "×1000.00 (×3.00 per server CPU-second)", "{md}");
    }

    #[test]
    fn the_report_says_which_server_ran_which_scenario() {
        let mut report = small();
        let md = what_ran(&report);
        assert!(
            md.contains("Scenarios in this run: fan-out, latency, many rooms (not in it: idle,"),
            "{md}"
        );
        assert!(
            md.contains("Every server ran each of them in every round."),
            "{md}"
        );
        round_of(&mut report, ServerKind::Node).rooms = None;
        let md = what_ran(&report);
        assert!(!md.contains("Every server ran"), "{md}");
        assert_eq!(line(&md, "| node |"), "| node | yes | yes | — |", "{md}");
    }
}
