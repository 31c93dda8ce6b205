//! What a latency row's figures rest on: how many broadcasts each round published (a
//! broadcast's deliveries reach the room together, so a percentile over few broadcasts
//! is decided by a handful of them), whether every delivery arrived (percentiles of what
//! arrived say nothing of what did not), and which rows of one server ran at the same
//! actual rate (the 1 broadcast/s floor).

use std::fmt::Write as _;

use super::rounds::{Rounds, ms};
use crate::chart::human;
use crate::scenarios::fanout::LatencyResult;
use crate::stats::Quantiles;
use crate::suite::ServerReport;

/// Fewest broadcasts in every round for a p99 to be printed.
pub(super) const P99_BROADCASTS: u64 = 100;
/// Fewest broadcasts in every round for a p99.9 to be printed.
pub(super) const P999_BROADCASTS: u64 = 1000;

/// Broadcasts a latency phase published (its deliveries are that many fan-outs).
pub(super) fn broadcasts(l: &LatencyResult) -> u64 {
    l.expected / l.room_size.max(1) as u64
}

/// Whether every round of `l` published at least `least` broadcasts.
pub(super) fn rests_on(l: &Rounds<'_, LatencyResult>, least: u64) -> bool {
    l.each().all(|l| broadcasts(l) >= least)
}

/// Whether some round of `l` received fewer deliveries than it published × the room.
pub(super) fn short(l: &Rounds<'_, LatencyResult>) -> bool {
    l.each().any(|l| l.samples < l.expected)
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

/// The `received` cell: the share of deliveries that arrived, in bold (and never rounded
/// up to 100 %) when some round is short.
pub(super) fn received_cell(l: &Rounds<'_, LatencyResult>) -> String {
    let pct = received(l);
    if short(l) {
        format!("**{:.1}%**", (pct * 10.0).floor() / 10.0)
    } else {
        format!("{pct:.1}%")
    }
}

/// The rounds of `l` that recorded any sample (an empty histogram reads as zeros).
pub(super) fn measured<'a>(l: &Rounds<'a, LatencyResult>) -> Option<Rounds<'a, LatencyResult>> {
    Rounds::from(l.each().filter(|l| l.samples > 0).collect())
}

/// Which percentiles of a latency row are worth printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gate {
    /// Every round published at least [`P99_BROADCASTS`].
    pub(super) p99: bool,
    /// Every round published at least [`P999_BROADCASTS`].
    pub(super) p999: bool,
}

impl Gate {
    /// Of the phase `l`.
    pub(super) fn of(l: &Rounds<'_, LatencyResult>) -> Gate {
        Gate {
            p99: rests_on(l, P99_BROADCASTS),
            p999: rests_on(l, P999_BROADCASTS),
        }
    }
}

/// The p50, p99, p99.9 and max cells of a latency row, of the rounds that recorded a
/// sample, gated by `gate`.
pub(super) fn quantile_cells(l: &Rounds<'_, LatencyResult>, gate: Gate) -> [String; 4] {
    let m = measured(l);
    let q = |l: &LatencyResult| l.quantiles;
    let cell = |ok: bool, pick: fn(&Quantiles) -> u64| match &m {
        Some(m) if ok => m.spread(|l| pick(&q(l)) as f64).show(ms),
        _ => "—".to_owned(),
    };
    [
        cell(true, |q| q.p50_us),
        cell(gate.p99, |q| q.p99_us),
        cell(gate.p999, |q| q.p999_us),
        match &m {
            Some(m) => ms(m.median(|l| l.quantiles.max_us as f64)),
            None => "—".to_owned(),
        },
    ]
}

/// The median p99 in µs of a row, when it is worth printing and something arrived.
pub(super) fn p99(l: &Rounds<'_, LatencyResult>) -> Option<f64> {
    let m = measured(l)?;
    Gate::of(l)
        .p99
        .then(|| m.median(|l| l.quantiles.p99_us as f64))
}

/// `broadcasts / round` and `deliveries / round` cells: broadcasts as median (fewest–most),
/// deliveries received as the median.
pub(super) fn count_cells(l: &Rounds<'_, LatencyResult>) -> [String; 2] {
    [
        l.spread(|l| broadcasts(l) as f64)
            .show(|v| format!("{v:.0}")),
        human(l.median(|l| l.samples as f64)),
    ]
}

/// The footnote under a latency table whose rows are gated and marked: what `—` in the
/// percentiles means, and rows in bold in `received`. `dashed` and `lossy` say whether
/// any row has them.
pub(super) fn note(dashed: bool, lossy: bool) -> String {
    let mut md = String::new();
    if dashed {
        let _ = write!(
            md,
            "\n`—` in p99.9: some round of the row published fewer than {} broadcasts; in \
             p99 (and its ratio), fewer than {}. A broadcast's deliveries reach the room \
             together, so a percentile over few broadcasts is decided by a handful of them. \
             `broadcasts / round` is the median (fewest–most) of the rounds.\n",
            thousands(P999_BROADCASTS),
            P99_BROADCASTS
        );
    }
    if lossy {
        md.push_str(
            "\n**Received in bold**: in some round fewer deliveries arrived than the phase \
             published × the room. Its percentiles are of what arrived and say nothing of \
             what did not, so a target judged on such a row is not met.\n",
        );
    }
    md
}

/// `1,000`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Rows of `s` on a room of `size` that ran at the 1 broadcast/s floor or at the same
/// rate as another load, as (load, what to say) for its `load` cell and the footnote.
pub(super) fn same_rates(s: &ServerReport, size: usize, loads: &[Option<f64>]) -> Vec<RateNote> {
    let rates = |load: Option<f64>| -> Vec<Option<f64>> {
        s.rounds
            .iter()
            .map(|r| {
                let mut l = r.latency.iter();
                l.find(|l| l.room_size == size && l.load == load)
                    .map(|l| l.rate)
            })
            .collect()
    };
    let mut notes = Vec::new();
    for (i, &load) in loads.iter().enumerate() {
        let Some(load_f) = load else { continue };
        let mine = rates(load);
        let present = mine.iter().flatten().count();
        if present == 0 {
            continue;
        }
        // Rounds whose share of that round's peak was under one broadcast a second.
        let floored = s
            .rounds
            .iter()
            .zip(&mine)
            .filter(|(r, rate)| {
                rate.is_some()
                    && r.fanout
                        .iter()
                        .find(|f| f.room_size == size)
                        .is_some_and(|f| {
                            f.seconds > 0.0 && f.broadcasts as f64 / f.seconds * load_f < 1.0
                        })
            })
            .count();
        let same_as = loads[..i].iter().copied().find(|&other| {
            let theirs = rates(other);
            mine.iter().zip(&theirs).all(|pair| match pair {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
                (None, None) => true,
                _ => false,
            })
        });
        if floored > 0 || same_as.is_some() {
            notes.push(RateNote {
                load,
                same_as,
                floored,
                rounds: present,
            });
        }
    }
    notes
}

/// A latency row that ran at the floor rate, or at another row's rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct RateNote {
    /// The row's load.
    pub(super) load: Option<f64>,
    /// The earlier row of the same server and room that ran at the same rate in every
    /// round, if one did.
    pub(super) same_as: Option<Option<f64>>,
    /// Rounds in which the load's share of the peak was under 1 broadcast/s (run at 1/s).
    pub(super) floored: usize,
    /// Rounds that have the row.
    pub(super) rounds: usize,
}
