//! The load generator's ceiling: its receive capacity per core measured against the bare
//! broadcaster, the most CPU it needed at any server's result, and, since it shares the
//! machine's cores with the server, the two together at each peak against those cores:
//! a peak where they fill the cores is what the pair reached, not the server alone. On
//! the medians of the rounds.

use std::fmt::Write as _;

use super::rounds::Rounds;
use super::tables::{fanout_of, ran};
use crate::chart::human;
use crate::peers::ServerKind;
use crate::scenarios::rooms::RoomsResult;
use crate::suite::{ServerReport, SuiteReport};

/// Share of the machine's cores that server and generator together must use at a peak
/// for it to count as CPU-bound (and of one core, for a one-thread server's own).
pub(super) const BOUND: f64 = 0.9;

/// The table.
pub(super) fn table(report: &SuiteReport) -> String {
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
         per delivery in that server's run). A generator under one core is not out of the \
         way: it shares the machine's cores with the server, which at its peak gets what the \
         generator leaves; the table after this one adds the two up at each peak.\n\n\
         | workload | capacity per core | bare reached | best server | generator cores, worst | generator under one core |\n\
         |---|---:|---:|---:|---:|:---:|\n",
    );
    let capacity = |cpu_per_m: f64| {
        if cpu_per_m > 0.0 {
            1e6 / cpu_per_m
        } else {
            f64::INFINITY
        }
    };
    for &size in &report.params.room_sizes {
        let Some(f) = bare.and_then(|b| fanout_of(b, size)) else {
            continue;
        };
        let runs: Vec<(f64, f64)> = ran(report)
            .filter_map(|s| fanout_of(s, size))
            .map(|o| {
                (
                    o.median(|o| o.deliveries_per_sec),
                    o.median(|o| o.generator_cpu_s_per_m),
                )
            })
            .collect();
        let label = format!("fan-out, room of {size}");
        let bare_cpu = f.median(|f| f.generator_cpu_s_per_m);
        let reached = Some(f.median(|f| f.deliveries_per_sec));
        row(&mut md, &label, (capacity(bare_cpu), reached), &runs);
    }
    let rooms = |s| Rounds::of(s, |r| r.rooms.as_ref());
    if let Some(r) = bare.and_then(rooms) {
        let medians = |o: Rounds<'_, RoomsResult>| {
            (
                o.median(|o| o.deliveries_per_sec),
                o.median(|o| o.generator_cpu_s_per_m),
            )
        };
        let runs: Vec<(f64, f64)> = ran(report).filter_map(rooms).map(medians).collect();
        let (reached, cpu) = medians(r);
        row(&mut md, "many rooms", (capacity(cpu), Some(reached)), &runs);
    }
    // The SSE scenario's receivers against `switchboard serve` (there is no bare SSE
    // server: its capacity is measured on Switchboard's stream).
    for (transport, size, rate, cpu) in sse {
        let label = format!(
            "{} receivers, API publisher, room of {size}",
            transport.label()
        );
        row(&mut md, &label, (capacity(cpu), None), &[(rate, cpu)]);
    }
    md.push_str(&peaks(report));
    md
}

/// (server cores, generator cores) of `s` at each single-server peak: fan-out on each
/// room size, then many rooms (medians of the rounds; `None` where it has no result).
fn cores_at_peaks(report: &SuiteReport, s: &ServerReport) -> Vec<Option<(f64, f64)>> {
    let mut cells: Vec<Option<(f64, f64)>> = report
        .params
        .room_sizes
        .iter()
        .map(|&size| {
            let f = fanout_of(s, size)?;
            Some((
                f.median(|f| f.server_cores),
                f.median(|f| f.generator_cpu_s_per_m * f.deliveries_per_sec / 1e6),
            ))
        })
        .collect();
    let cores =
        |cpu: fn(&RoomsResult) -> f64| move |r: &RoomsResult| cpu(r) * r.deliveries_per_sec / 1e6;
    cells.push(Rounds::of(s, |r| r.rooms.as_ref()).map(|r| {
        (
            r.median(cores(|r| r.server_cpu_s_per_m)),
            r.median(cores(|r| r.generator_cpu_s_per_m)),
        )
    }));
    cells
}

/// Server + generator cores at each peak against the machine's cores, and which peaks
/// were CPU-bound (nothing when no server has a peak).
fn peaks(report: &SuiteReport) -> String {
    let cores = report.machine.cores.max(1);
    let full = BOUND * cores as f64;
    let mut heads: Vec<String> = report
        .params
        .room_sizes
        .iter()
        .map(|n| format!("fan-out, room of {n}"))
        .collect();
    heads.push("many rooms".to_owned());
    let mut table = String::new();
    let (mut bound, mut all, mut single) = (0, 0, Vec::new());
    for s in ran(report) {
        let cells = cores_at_peaks(report, s);
        if cells.iter().all(Option::is_none) {
            continue;
        }
        let _ = write!(table, "| {} |", s.server.label());
        for cell in cells {
            let Some((server, generator)) = cell else {
                table.push_str(" — |");
                continue;
            };
            all += 1;
            let sum = server + generator;
            let text = format!("{sum:.2} = {server:.2} + {generator:.2}");
            if sum >= full {
                bound += 1;
                let _ = write!(table, " **{text}** |");
            } else {
                let _ = write!(table, " {text} |");
            }
            if s.server == ServerKind::Node && server >= BOUND {
                single.push(server);
            }
        }
        table.push('\n');
    }
    if all == 0 {
        return String::new();
    }
    let mut md = format!(
        "\nServer + generator cores at each peak (medians of the rounds), against the \
         machine's {cores} cores. **In bold**: the two used at least {:.0} % of them, so the \
         peak is CPU-bound: it is what server and generator reached sharing the cores, and \
         a machine with more cores (or the generator on another one) may give the server \
         more; {bound} of {all} peaks here.",
        BOUND * 100.0
    );
    if !single.is_empty() {
        let (lo, hi) = single.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &c| {
            (lo.min(c), hi.max(c))
        });
        let _ = write!(
            md,
            " Node runs one thread: at {lo:.2}–{hi:.2} cores its peaks are bound by that \
             thread."
        );
    }
    md.push_str("\n\n| server |");
    for h in &heads {
        let _ = write!(md, " {h} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(heads.len()));
    md.push('\n');
    md.push_str(&table);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed full run of 2026-12-05 (3 rounds, every server).
    fn full_run() -> SuiteReport {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results/20261205-042301/results.json");
        let text = std::fs::read_to_string(path).expect("a committed results.json");
        serde_json::from_str(&text).expect("it parses")
    }

    #[test]
    fn peaks_where_server_and_generator_fill_the_cores_are_cpu_bound() {
        let mut report = full_run();
        let md = table(&report);
        assert!(!md.contains("it is not what limits"), "{md}");
        assert!(md.contains("against the machine's 2 cores"), "{md}");
        assert!(md.contains("15 of 18 peaks here"), "{md}");
        let row = |md: &str, start: &str| {
            md.lines()
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("{start} in {md}"))
                .to_owned()
        };
        assert_eq!(
            row(&md, "| switchboard (fixture) | **"),
            "| switchboard (fixture) | **1.96 = 1.24 + 0.72** | **1.97 = 1.35 + 0.63** | \
             **1.93 = 1.29 + 0.64** |"
        );
        assert!(!row(&md, "| node |").contains("**"));
        assert!(
            md.contains("Node runs one thread: at 0.91–0.99 cores"),
            "{md}"
        );
        // The same peaks on a machine of 4 cores: none bound by the machine.
        report.machine.cores = 4;
        let md = table(&report);
        assert!(md.contains("0 of 18 peaks here"), "{md}");
    }
}
