//! Memory under load: each server's RSS per connection while one room takes half its
//! fan-out peak, beside its idle RSS per connection at the same count (the medians of the
//! rounds, with their spread), and its chart.

use std::fmt::Write as _;

use super::rounds::{Rounds, two};
use super::tables::{ran, ratio, switchboard};
use crate::chart::{BarChart, Series, human};
use crate::scenarios::loaded::{LoadedResult, PeakSource};
use crate::suite::{ServerReport, SuiteReport};

/// `s`'s memory under load, every round.
fn of(s: &ServerReport) -> Option<Rounds<'_, LoadedResult>> {
    Rounds::of(s, |r| r.loaded.as_ref())
}

/// KiB per connection under load.
fn loaded_kib(l: &LoadedResult) -> f64 {
    l.bytes_per_connection / 1024.0
}

/// KiB per connection with the same clients idle.
fn idle_kib(l: &LoadedResult) -> f64 {
    l.idle_bytes_per_connection / 1024.0
}

/// The table (nothing when the scenario did not run).
pub(super) fn table(report: &SuiteReport) -> String {
    let p = &report.params;
    let mut md = format!(
        "\n## Memory under load (one room of {}, publisher at half of each server's fan-out \
         peak)\n\n\
         Server RSS per connection = (RSS − RSS before any client) ÷ clients: `idle` with \
         every client connected and in the room before anything is published, `under load` \
         the mean of {} samples over {:.0} s of publishing at the rate shown (after a warm-up); \
         `max RSS` is the highest sample. `× idle` is under load ÷ idle; `× SB` compares the \
         under-load figure with Switchboard's (fixture). `lost` counts deliveries that never \
         arrived · broadcasts never acked · connections lost.\n\n\
         | server | KiB/conn idle | KiB/conn under load | × idle | max RSS MiB | × SB | \
         broadcasts/s | deliveries/s | server cores | lost |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        p.loaded_clients,
        crate::scenarios::loaded::RSS_SAMPLES,
        p.loaded_secs
    );
    let base = switchboard(report)
        .and_then(of)
        .map(|l| l.median(loaded_kib));
    let mut measured = Vec::new();
    let mut rows = 0;
    for s in ran(report) {
        let Some(l) = of(s) else { continue };
        rows += 1;
        let under = l.median(loaded_kib);
        if l.each().any(|l| l.peak_source == PeakSource::Measured) {
            measured.push(s.server.label());
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {:.2} | {} · {} · {} |",
            s.server.label(),
            l.spread(idle_kib).show(two),
            l.spread(loaded_kib).show(two),
            ratio(Some(under), Some(l.median(idle_kib))),
            l.spread(|l| l.max_rss_bytes as f64 / 1048576.0)
                .show(|v| format!("{v:.1}")),
            ratio(Some(under), base),
            l.median(|l| l.rate),
            l.spread(|l| l.deliveries_per_sec).show(human),
            l.median(|l| l.server_cores),
            l.total(|l| l.undelivered),
            l.total(|l| l.unacked),
            l.total(|l| l.lost_connections as u64)
        );
    }
    if rows == 0 {
        return String::new();
    }
    let every_row = measured.len() == rows;
    let _ = writeln!(
        md,
        "\n{}",
        peak_note(&measured, every_row, p.loaded_clients)
    );
    md
}

/// Where the publish rates come from; `measured` lists the rows whose step measured
/// its own peak (no fan-out on a room of `clients` in the same round), `every_row`
/// whether that is all of them.
fn peak_note(measured: &[&str], every_row: bool, clients: usize) -> String {
    let fanout = format!(
        "half of the server's peak on a room of {clients} in the fan-out scenario of the \
         same round (another process of it: the one measured here never ran at the peak)"
    );
    let own = "half of a short peak measured by the step itself first (no fan-out on a \
               room of that size ran in the round), so the RSS under load also holds what \
               that peak left allocated";
    if measured.is_empty() {
        format!("The publish rate is {fanout}.")
    } else if every_row {
        format!("The publish rate is {own}.")
    } else {
        format!(
            "The publish rate of {} is {own}; of any other row it is {fanout}.",
            measured.join(", ")
        )
    }
}

/// The chart: KiB per connection idle and under load, one bar per server.
pub(super) fn chart(report: &SuiteReport) -> BarChart {
    BarChart {
        title: format!(
            "Memory per connection, {} clients: idle and under load (lower is better)",
            report.params.loaded_clients
        ),
        unit: "KiB RSS per connection".into(),
        categories: vec!["idle".into(), "under load".into()],
        series: ran(report)
            .map(|s| Series {
                name: s.server.label().to_owned(),
                values: match of(s) {
                    Some(l) => vec![Some(l.median(idle_kib)), Some(l.median(loaded_kib))],
                    None => vec![None, None],
                },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_says_where_each_rows_rate_comes_from() {
        let all_reused = peak_note(&[], false, 10);
        assert!(all_reused.contains("fan-out scenario of the same round"));
        assert!(!all_reused.contains("measured by the step"));
        let all_measured = peak_note(&["node", "bare"], true, 10);
        assert!(all_measured.contains("measured by the step"));
        assert!(!all_measured.contains("other row"));
        let some = peak_note(&["node"], false, 10);
        assert!(some.starts_with("The publish rate of node is half of a short peak"));
        assert!(some.contains("of any other row it is half of the server's peak"));
    }
}
