//! The single-server charts of a run (the cluster ones are in `cluster`), one bar per
//! server that ran, each the median of the rounds.

use super::rounds::Rounds;
use super::samples;
use super::tables::{self, fanout_of, idle_at, latency_of};
use crate::chart::{BarChart, Series};
use crate::scenarios::fanout::LatencyResult;
use crate::suite::{ServerReport, SuiteReport};

/// The charts of a report, with their file names.
pub(super) fn all(report: &SuiteReport) -> Vec<(&'static str, BarChart)> {
    let ran: Vec<&ServerReport> = tables::ran(report).collect();
    let series = |f: &dyn Fn(&ServerReport) -> Vec<Option<f64>>| series_of(&ran, f);
    let idle_counts = &report.params.idle_counts;
    let sizes = &report.params.room_sizes;
    let idle = BarChart {
        title: "Idle memory per connection (lower is better)".into(),
        unit: "KiB RSS per connection".into(),
        categories: idle_counts
            .iter()
            .map(|n| format!("{n} connections"))
            .collect(),
        series: series(&|s| {
            idle_counts
                .iter()
                .map(|&n| Some(idle_at(s, n)?.median(|p| p.bytes_per_connection) / 1024.0))
                .collect()
        }),
    };
    let fanout = BarChart {
        title: "Fan-out deliveries per second (higher is better)".into(),
        unit: "deliveries/s".into(),
        categories: sizes.iter().map(|n| format!("room of {n}")).collect(),
        series: series(&|s| {
            sizes
                .iter()
                .map(|&n| Some(fanout_of(s, n)?.median(|f| f.deliveries_per_sec)))
                .collect()
        }),
    };
    let cpu = BarChart {
        title: "Server CPU seconds per million deliveries (lower is better)".into(),
        unit: "CPU s / M deliveries".into(),
        categories: sizes.iter().map(|n| format!("room of {n}")).collect(),
        series: series(&|s| {
            sizes
                .iter()
                .map(|&n| Some(fanout_of(s, n)?.median(|f| f.server_cpu_s_per_m)))
                .collect()
        }),
    };
    let p50 = latency_chart(report, &ran, ("p50", |l| l.quantiles.p50_us), 0);
    let p99 = latency_chart(
        report,
        &ran,
        ("p99", |l| l.quantiles.p99_us),
        samples::P99_BROADCASTS,
    );
    let rooms = BarChart {
        title: format!(
            "Many rooms: {} rooms × {} members, deliveries per second (higher is better)",
            report.params.rooms, report.params.members
        ),
        unit: "deliveries/s".into(),
        categories: vec!["targeted emits".into()],
        series: series(&|s| {
            let rooms = Rounds::of(s, |r| r.rooms.as_ref());
            vec![rooms.map(|r| r.median(|r| r.deliveries_per_sec))]
        }),
    };
    let churn = BarChart {
        title: "Churn: connect + handshake + disconnect per second (higher is better)".into(),
        unit: "cycles/s".into(),
        categories: vec!["connect/disconnect cycles".into()],
        series: series(&|s| {
            let churn = Rounds::of(s, |r| r.churn.as_ref());
            vec![churn.map(|c| c.median(|c| c.cycles_per_sec))]
        }),
    };
    let mut charts = vec![
        ("idle_memory.svg", idle),
        ("fanout.svg", fanout),
        ("fanout_cpu.svg", cpu),
        ("latency_p50.svg", p50),
        ("latency_p99.svg", p99),
        ("rooms.svg", rooms),
        ("churn.svg", churn),
        ("loaded_memory.svg", super::loaded::chart(report)),
    ];
    charts.extend(super::cluster::charts(report));
    charts
}

/// One series per server that ran, valued by `f`.
fn series_of(ran: &[&ServerReport], f: &dyn Fn(&ServerReport) -> Vec<Option<f64>>) -> Vec<Series> {
    ran.iter()
        .map(|s| Series {
            name: s.server.label().to_owned(),
            values: f(s),
        })
        .collect()
}

/// Latency chart of one percentile, one group per (room size, load): no bar where a
/// round published fewer than `least` broadcasts, or where nothing arrived.
fn latency_chart(
    report: &SuiteReport,
    ran: &[&ServerReport],
    (label, pick): (&str, fn(&LatencyResult) -> u64),
    least: u64,
) -> BarChart {
    let points = tables::latency_points(report);
    let few = if least > 0 {
        format!("; no bar where a round had fewer than {least} broadcasts")
    } else {
        String::new()
    };
    BarChart {
        title: format!("Publish→deliver latency, {label} (lower is better{few})"),
        unit: "milliseconds".into(),
        categories: points
            .iter()
            .map(|(n, load)| format!("room {n}, {}", tables::load_label(*load)))
            .collect(),
        series: series_of(ran, &|s| {
            points
                .iter()
                .map(|&(n, load)| {
                    let l = latency_of(s, n, load)?;
                    if !samples::rests_on(&l, least) {
                        return None;
                    }
                    Some(samples::measured(&l)?.median(|l| pick(l) as f64) / 1000.0)
                })
                .collect()
        }),
    }
}
