//! The load generator's ceiling: its receive capacity per core measured against the bare
//! broadcaster, and the most CPU it needed at any server's result (it shares the two
//! cores with the server, so it must stay well under one core to be out of the way). On
//! the medians of the rounds.

use std::fmt::Write as _;

use super::rounds::Rounds;
use super::tables::{fanout_of, ran};
use crate::chart::human;
use crate::peers::ServerKind;
use crate::scenarios::rooms::RoomsResult;
use crate::suite::SuiteReport;

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
