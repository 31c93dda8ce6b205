//! Figures over the rounds of a repeated run (`--repeat`): the median the tables, ratios
//! and charts use, the spread (`min–max`) shown beside the headline figures, and the
//! totals of counters. With one round each is that round's own value, so a run of one
//! round reads as it always did.

use crate::suite::{Results, ServerReport, SuiteReport};

/// What the reports of a run of several rounds say first: how many, and how to read the
/// tables (nothing for one round).
pub(super) fn note(report: &SuiteReport) -> String {
    let n = report.params.repeat;
    if n <= 1 {
        return String::new();
    }
    format!(
        "\n**{n} rounds.** Each scenario ran {n} rounds in a row, every server in turn \
         within each round (so noise from other work on the shared machine spreads over \
         all servers). Tables show the median of the rounds and, beside the headline \
         figures, the spread of the rounds as (min–max); ratios (`× SB`), the targets and \
         the charts use the medians; counters (dropped, undelivered, unacked, lost conns, \
         failures, received) add up the rounds. Each round's latency phases ran at fractions of that round's \
         own fan-out peak.\n"
    )
}

/// One server's results of one kind, one per round that has it, in round order.
#[derive(Debug)]
pub(super) struct Rounds<'a, T>(Vec<&'a T>);

impl<'a, T> Rounds<'a, T> {
    /// What `pick` finds in each round of `s` (rounds without it are left out); `None`
    /// when no round has it.
    pub(super) fn of(
        s: &'a ServerReport,
        pick: impl Fn(&'a Results) -> Option<&'a T>,
    ) -> Option<Rounds<'a, T>> {
        Rounds::from(s.rounds.iter().filter_map(pick).collect())
    }

    /// The given results; `None` when there are none.
    pub(super) fn from(found: Vec<&'a T>) -> Option<Rounds<'a, T>> {
        (!found.is_empty()).then_some(Rounds(found))
    }

    /// Each round's result.
    pub(super) fn each(&self) -> impl Iterator<Item = &'a T> + '_ {
        self.0.iter().copied()
    }

    /// The first round's result (for what does not change from round to round).
    pub(super) fn first(&self) -> &'a T {
        self.0[0]
    }

    /// The median of `f` over the rounds.
    pub(super) fn median(&self, f: impl Fn(&T) -> f64) -> f64 {
        self.spread(f).median
    }

    /// `f` over the rounds.
    pub(super) fn spread(&self, f: impl Fn(&T) -> f64) -> Spread {
        Spread::of(self.0.iter().map(|t| f(t)))
    }

    /// The sum of a counter over the rounds.
    pub(super) fn total(&self, f: impl Fn(&T) -> u64) -> u64 {
        self.0.iter().map(|t| f(t)).sum()
    }
}

/// A figure over the rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spread {
    /// The median (of an even count: the mean of the middle two).
    pub(super) median: f64,
    /// The lowest round.
    pub(super) min: f64,
    /// The highest round.
    pub(super) max: f64,
    /// Rounds.
    pub(super) rounds: usize,
}

impl Spread {
    /// Of the values (NaN sorts last; none gives zeros).
    pub(super) fn of(values: impl Iterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread {
            median,
            min: v.first().copied().unwrap_or(0.0),
            max: v.last().copied().unwrap_or(0.0),
            rounds: n,
        }
    }

    /// `0.92 (0.88–0.97)` with each value written by `fmt`, or just `0.92` for one round.
    pub(super) fn show(&self, fmt: impl Fn(f64) -> String) -> String {
        if self.rounds > 1 {
            format!("{} ({}–{})", fmt(self.median), fmt(self.min), fmt(self.max))
        } else {
            fmt(self.median)
        }
    }
}

/// `v` with two decimals: the tables' usual figure.
pub(super) fn two(v: f64) -> String {
    format!("{v:.2}")
}

/// Microseconds as milliseconds with two decimals.
pub(super) fn ms(us: f64) -> String {
    format!("{:.2}", us / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        let odd = Spread::of([3.0, 1.0, 2.0].into_iter());
        assert_eq!(
            (odd.median, odd.min, odd.max, odd.rounds),
            (2.0, 1.0, 3.0, 3)
        );
        assert_eq!(odd.show(two), "2.00 (1.00–3.00)");
        let even = Spread::of([4.0, 1.0, 2.0, 10.0].into_iter());
        assert_eq!(even.median, 3.0);
        // One round reads as a plain value, as before rounds existed.
        assert_eq!(Spread::of([0.92].into_iter()).show(two), "0.92");
        assert_eq!(Spread::of(std::iter::empty()).median, 0.0);
    }
}
