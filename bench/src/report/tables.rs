//! Markdown tables of a run: what each row is, one table per scenario with each server's
//! value (the median of the rounds, with their spread beside the headline figures) and
//! its ratio to Switchboard's (protocol_fixture), and the list of what did not run.

use std::fmt::Write as _;

use super::rounds::{Rounds, ms, two};
use crate::chart::human;
use crate::peers::ServerKind;
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::idle::IdlePoint;
use crate::stats::Quantiles;
use crate::suite::{ServerReport, SuiteReport};

/// Every table of a report, in order.
pub(super) fn all(report: &SuiteReport) -> String {
    let mut md = head(report);
    md.push_str(&body(report));
    md
}

/// What ran, what did not, and the targets: what BENCHMARKS.md's own notes follow.
pub(super) fn head(report: &SuiteReport) -> String {
    let mut md = servers(report);
    md.push_str(&not_run(report));
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
         - Open files per process: {} (a server tops out near 19k connections)\n\
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
        let _ = writeln!(
            md,
            "| {} | {}{extra} |",
            s.server.label(),
            s.server.describe()
        );
    }
    md
}

/// Switchboard (protocol_fixture) against the targets of DESIGN.md §7, on the medians
/// of the rounds.
fn targets(report: &SuiteReport) -> String {
    let Some(sb) = switchboard(report) else {
        return String::new();
    };
    let mut rows = String::new();
    let mut row = |what: String, value: String, target: &str, met: Option<bool>| {
        let met = match met {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "—",
        };
        let _ = writeln!(rows, "| {what} | {value} | {target} | {met} |");
    };
    if let Some(p) = Rounds::of(sb, |r| r.idle.as_ref()?.points.last()) {
        let kib = p.median(|p| p.bytes_per_connection) / 1024.0;
        row(
            format!("idle memory at {}", p.first().connections),
            format!("{kib:.2} KiB/conn"),
            "≤ 8 KiB",
            Some(kib <= 8.0),
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
            let value = other.map(|o| own.median(rate) / o.median(rate));
            row(
                format!("fan-out {size} vs {}", kind.label()),
                value.map_or("—".into(), |v| format!("×{v:.2}")),
                &format!("≥ ×{goal}"),
                value.map(|v| v >= goal),
            );
        }
    }
    for &size in &report.params.room_sizes {
        let Some(l) = latency_of(sb, size, Some(0.5)) else {
            continue;
        };
        let p99 = l.median(|l| l.quantiles.p99_us as f64) / 1000.0;
        row(
            format!("p99 latency, room {size}, 50% of peak"),
            format!("{p99:.2} ms"),
            "≤ 10 ms",
            Some(p99 <= 10.0),
        );
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "\n## Switchboard against the targets (DESIGN.md §7)\n\n\
         Measured on `{}`, as every earlier run; the other rows are in the tables below.\n\n\
         | measure | Switchboard | target | |\n|---|---:|---:|---|\n{rows}",
        ServerKind::Switchboard.label()
    )
}

/// Servers that were skipped and steps that failed (to start, by a crash, or in the
/// scenario), with their round when there were several.
fn not_run(report: &SuiteReport) -> String {
    let mut md = String::new();
    let rounds = report.params.repeat;
    for s in &report.servers {
        if let Some(reason) = &s.skipped {
            let _ = writeln!(
                md,
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
                md,
                "- **{}** `{}`{round} {}: {}",
                s.server.label(),
                f.step,
                f.kind.label(),
                one_line(&f.reason)
            );
        }
    }
    if md.is_empty() {
        "\nEvery server ran every scenario.\n".to_owned()
    } else {
        format!("\n## What did not run\n\n{md}")
    }
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

/// Received ÷ expected samples over the rounds, in percent.
pub(super) fn received(l: &Rounds<'_, LatencyResult>) -> f64 {
    let expected = l.total(|l| l.expected);
    if expected == 0 {
        0.0
    } else {
        100.0 * l.total(|l| l.samples) as f64 / expected as f64
    }
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
    let mut md = String::from(
        "\n## Fan-out (one room, publisher as fast as the server accepts)\n\n\
         | server | room | deliveries/s | × SB | server CPU s / M deliveries | server cores | \
         generator CPU s / M | dropped | lost conns |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let rate = |f: &FanoutResult| f.deliveries_per_sec;
    for &size in &report.params.room_sizes {
        let base = switchboard(report).and_then(|s| fanout_of(s, size));
        for s in ran(report) {
            let Some(f) = fanout_of(s, size) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {} | {} |",
                s.server.label(),
                size,
                f.spread(rate).show(human),
                ratio(Some(f.median(rate)), base.as_ref().map(|b| b.median(rate))),
                f.spread(|f| f.server_cpu_s_per_m).show(two),
                f.median(|f| f.server_cores),
                f.median(|f| f.generator_cpu_s_per_m),
                f.total(|f| f.written_off),
                f.total(|f| f.lost_connections as u64)
            );
        }
    }
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

/// Latency table.
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
         | server | room | load | broadcasts/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | \
         p99 × SB | received | server cores | generator cores |{read_head}\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{read_sep}\n",
        latency_end_note(report)
    );
    let p99 = |l: &LatencyResult| l.quantiles.p99_us as f64;
    for (size, load) in latency_points(report) {
        let base = switchboard(report).and_then(|s| latency_of(s, size, load));
        for s in ran(report) {
            let Some(l) = latency_of(s, size, load) else {
                continue;
            };
            let _ = write!(
                md,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.1}% | {:.2} | {:.2} |",
                s.server.label(),
                size,
                load_label(load),
                l.median(|l| l.rate),
                human(l.median(|l| l.offered_deliveries_per_sec)),
                l.spread(|l| l.quantiles.p50_us as f64).show(ms),
                l.spread(p99).show(ms),
                l.spread(|l| l.quantiles.p999_us as f64).show(ms),
                ms(l.median(|l| l.quantiles.max_us as f64)),
                ratio(Some(l.median(p99)), base.as_ref().map(|b| b.median(p99))),
                received(&l),
                l.median(|l| l.server_cores),
                l.median(|l| l.generator_cores)
            );
            if stamped {
                let at_read = l.each().filter_map(|l| l.at_read.as_ref()).collect();
                let _ = write!(md, " {} |", read_p99(Rounds::from(at_read)));
            }
            md.push('\n');
        }
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
         | server | emits/s | deliveries/s | × SB | server CPU s / M deliveries | generator CPU s / M | dropped | lost conns |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
        p.rooms, p.members
    );
    let rate = |r: &crate::scenarios::rooms::RoomsResult| r.deliveries_per_sec;
    let base = switchboard(report)
        .and_then(|s| Rounds::of(s, |r| r.rooms.as_ref()))
        .map(|r| r.median(rate));
    for s in ran(report) {
        let Some(r) = Rounds::of(s, |r| r.rooms.as_ref()) else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            s.server.label(),
            r.spread(|r| r.emits_per_sec).show(human),
            r.spread(rate).show(human),
            ratio(Some(r.median(rate)), base),
            r.spread(|r| r.server_cpu_s_per_m).show(two),
            r.median(|r| r.generator_cpu_s_per_m),
            r.total(|r| r.written_off),
            r.total(|r| r.lost_connections as u64)
        );
    }
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
