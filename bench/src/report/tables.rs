//! Markdown tables of a run: what each row is, one table per scenario with each server's
//! value and its ratio to Switchboard's (protocol_fixture), the generator ceiling and
//! the list of what did not run.

use std::fmt::Write as _;

use crate::chart::human;
use crate::peers::ServerKind;
use crate::suite::{ServerReport, SuiteReport};

/// Every table of a report, in order.
pub(super) fn all(report: &SuiteReport) -> String {
    let mut md = servers(report);
    md.push_str(&not_run(report));
    md.push_str(&targets(report));
    for table in [
        idle(report),
        fanout(report),
        latency(report),
        rooms(report),
        churn(report),
    ] {
        md.push_str(&with_rows(table));
    }
    md.push_str(&super::sse::section(report));
    md.push_str(&super::cluster::tables(report));
    md.push_str(&ceiling(report));
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

/// Switchboard (protocol_fixture) against the targets of DESIGN.md §7.
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
    if let Some(p) = sb.idle.as_ref().and_then(|i| i.points.last()) {
        let kib = p.bytes_per_connection / 1024.0;
        row(
            format!("idle memory at {}", p.connections),
            format!("{kib:.2} KiB/conn"),
            "≤ 8 KiB",
            Some(kib <= 8.0),
        );
    }
    for f in &sb.fanout {
        for (kind, goal) in [
            (ServerKind::Node, 5.0),
            (ServerKind::Socketioxide, 1.5),
            (ServerKind::Bare, 0.7),
        ] {
            let other = ran(report)
                .find(|s| s.server == kind)
                .and_then(|s| s.fanout.iter().find(|o| o.room_size == f.room_size));
            let value = other.map(|o| f.deliveries_per_sec / o.deliveries_per_sec);
            row(
                format!("fan-out {} vs {}", f.room_size, kind.label()),
                value.map_or("—".into(), |v| format!("×{v:.2}")),
                &format!("≥ ×{goal}"),
                value.map(|v| v >= goal),
            );
        }
    }
    for l in sb.latency.iter().filter(|l| l.load == Some(0.5)) {
        let p99 = l.p99_us as f64 / 1000.0;
        row(
            format!("p99 latency, room {}, 50% of peak", l.room_size),
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

/// Servers that were skipped and steps that failed (to start, by a crash, or in the scenario).
fn not_run(report: &SuiteReport) -> String {
    let mut md = String::new();
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
            let _ = writeln!(
                md,
                "- **{}** `{}` {}: {}",
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
    let per = |s: &ServerReport, n: usize| {
        let points = &s.idle.as_ref()?.points;
        Some(
            points
                .iter()
                .find(|p| p.connections == n)?
                .bytes_per_connection
                / 1024.0,
        )
    };
    let last = counts.last().copied().unwrap_or(0);
    let base = switchboard(report).and_then(|s| per(s, last));
    for s in ran(report).filter(|s| s.idle.is_some()) {
        let _ = write!(md, "| {} |", s.server.label());
        for &n in counts {
            let _ = write!(
                md,
                " {} |",
                per(s, n).map_or("—".into(), |v| format!("{v:.2}"))
            );
        }
        let rss = s
            .idle
            .as_ref()
            .and_then(|i| i.points.last())
            .map(|p| p.rss_bytes as f64 / 1048576.0);
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
    for &size in &report.params.room_sizes {
        let base = switchboard(report).and_then(|s| s.fanout.iter().find(|f| f.room_size == size));
        for s in ran(report) {
            let Some(f) = s.fanout.iter().find(|f| f.room_size == size) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
                s.server.label(),
                size,
                human(f.deliveries_per_sec),
                ratio(
                    Some(f.deliveries_per_sec),
                    base.map(|b| b.deliveries_per_sec)
                ),
                f.server_cpu_s_per_m,
                f.server_cores,
                f.generator_cpu_s_per_m,
                f.written_off,
                f.lost_connections
            );
        }
    }
    md
}

/// Latency table.
fn latency(report: &SuiteReport) -> String {
    let mut md = String::from(
        "\n## Latency (fixed publish rate, a fraction of each server's own fan-out peak)\n\n\
         | server | room | load | broadcasts/s | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | \
         p99 × SB | received | server cores | generator cores |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let ms = |us: u64| format!("{:.2}", us as f64 / 1000.0);
    for (size, load) in latency_points(report) {
        let find = |s: &'_ ServerReport| {
            s.latency
                .iter()
                .find(|l| l.room_size == size && l.load == load)
                .cloned()
        };
        let base = switchboard(report).and_then(find);
        for s in ran(report) {
            let Some(l) = find(s) else { continue };
            let received = if l.expected == 0 {
                0.0
            } else {
                100.0 * l.samples as f64 / l.expected as f64
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {:.1}% | {:.2} | {:.2} |",
                s.server.label(),
                size,
                load_label(load),
                l.rate,
                human(l.offered_deliveries_per_sec),
                ms(l.p50_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
                ratio(
                    Some(l.p99_us as f64),
                    base.as_ref().map(|b| b.p99_us as f64)
                ),
                received,
                l.server_cores,
                l.generator_cores
            );
        }
    }
    md
}

/// Distinct (room size, load) latency points of a report, in order.
pub(super) fn latency_points(report: &SuiteReport) -> Vec<(usize, Option<f64>)> {
    let mut points: Vec<(usize, Option<f64>)> = Vec::new();
    for s in &report.servers {
        for l in &s.latency {
            if !points.contains(&(l.room_size, l.load)) {
                points.push((l.room_size, l.load));
            }
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
    let base = switchboard(report)
        .and_then(|s| s.rooms.as_ref())
        .map(|r| r.deliveries_per_sec);
    for s in ran(report) {
        let Some(r) = &s.rooms else { continue };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.2} | {:.2} | {} | {} |",
            s.server.label(),
            human(r.emits_per_sec),
            human(r.deliveries_per_sec),
            ratio(Some(r.deliveries_per_sec), base),
            r.server_cpu_s_per_m,
            r.generator_cpu_s_per_m,
            r.written_off,
            r.lost_connections
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
    let base = switchboard(report)
        .and_then(|s| s.churn.as_ref())
        .map(|c| c.cycles_per_sec);
    let mib = |b: u64| b as f64 / 1048576.0;
    for s in ran(report) {
        let Some(c) = &s.churn else { continue };
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {} | {:.2} | {:.1} → {:.1} MiB | {} |",
            s.server.label(),
            c.cycles_per_sec,
            ratio(Some(c.cycles_per_sec), base),
            c.failures,
            c.server_cpu_s_per_k,
            mib(c.rss_before_bytes),
            mib(c.rss_after_bytes),
            c.source_addresses
        );
    }
    md
}

/// The load generator's ceiling: its receive capacity per core measured against the bare
/// broadcaster, and the most CPU it needed at any server's result (it shares the two cores
/// with the server, so it must stay well under one core to be out of the way).
fn ceiling(report: &SuiteReport) -> String {
    let bare = ran(report).find(|s| s.server == ServerKind::Bare);
    let sse = super::sse::fanouts(report);
    if bare.is_none() && sse.is_empty() {
        return "\n## Load generator ceiling\n\nThe bare broadcaster did not run, so the ceiling is not shown.\n".to_owned();
    }
    let mut md = String::from(
        "\n## Load generator ceiling\n\n\
         `capacity per core` is what the generator receives per CPU-second of its own against \
         the bare broadcaster (1 / its CPU s per delivery; the SSE rows against `switchboard \
         serve`, there being no bare SSE server). `generator cores, worst` is the most \
         CPU the generator used at any server's measured rate (that rate × the generator's CPU \
         per delivery in that server's run). The generator and the server share two cores; \
         while the generator needs less than one of them at every server's result, it is not \
         what limits the results.\n\n\
         | workload | capacity per core | bare reached | best server | generator cores, worst | under one core |\n\
         |---|---:|---:|---:|---:|:---:|\n",
    );
    let capacity = |cpu_per_m: f64| {
        if cpu_per_m > 0.0 {
            1e6 / cpu_per_m
        } else {
            f64::INFINITY
        }
    };
    let bare_fanout = bare.map_or(&[][..], |b| &b.fanout);
    for f in bare_fanout {
        let runs: Vec<(f64, f64)> = ran(report)
            .filter_map(|s| s.fanout.iter().find(|o| o.room_size == f.room_size))
            .map(|o| (o.deliveries_per_sec, o.generator_cpu_s_per_m))
            .collect();
        let label = format!("fan-out, room of {}", f.room_size);
        row(
            &mut md,
            &label,
            (
                capacity(f.generator_cpu_s_per_m),
                Some(f.deliveries_per_sec),
            ),
            &runs,
        );
    }
    if let Some(r) = bare.and_then(|b| b.rooms.as_ref()) {
        let runs: Vec<(f64, f64)> = ran(report)
            .filter_map(|s| s.rooms.as_ref())
            .map(|o| (o.deliveries_per_sec, o.generator_cpu_s_per_m))
            .collect();
        row(
            &mut md,
            "many rooms",
            (
                capacity(r.generator_cpu_s_per_m),
                Some(r.deliveries_per_sec),
            ),
            &runs,
        );
    }
    // The SSE scenario's receivers against `switchboard serve` (there is no bare SSE
    // server: its capacity is measured on Switchboard's stream).
    for (transport, f) in sse {
        let label = format!(
            "{} receivers, API publisher, room of {}",
            transport.label(),
            f.room_size
        );
        let runs = [(f.deliveries_per_sec, f.generator_cpu_s_per_m)];
        row(
            &mut md,
            &label,
            (capacity(f.generator_cpu_s_per_m), None),
            &runs,
        );
    }
    md
}

/// One ceiling row; `runs` holds (deliveries/s, generator CPU s per M) of every server;
/// `bare` is what the bare broadcaster reached (none for SSE receivers).
fn row(md: &mut String, label: &str, (capacity, bare): (f64, Option<f64>), runs: &[(f64, f64)]) {
    let best = runs.iter().map(|r| r.0).fold(0.0f64, f64::max);
    let worst = runs
        .iter()
        .map(|(rate, cpu)| rate * cpu / 1e6)
        .fold(0.0f64, f64::max);
    let ok = if worst < 1.0 { "yes" } else { "**no**" };
    let _ = writeln!(
        md,
        "| {label} | {} | {} | {} | {worst:.2} | {ok} |",
        human(capacity),
        bare.map_or("—".to_owned(), human),
        human(best)
    );
}
