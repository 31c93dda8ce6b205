//! What a scenario lost, as its tables show it: the publisher's write-offs and the exact
//! counts of events never delivered, broadcasts never acked and receivers whose
//! connection the server closed, added up over the rounds in one cell, and a footnote
//! naming every row that lost something, round by round.

use std::fmt::Write as _;

use crate::scenarios::DRAIN;
use crate::scenarios::fanout::FanoutResult;
use crate::scenarios::rooms::RoomsResult;

/// The head of a table's loss column.
pub(super) const HEAD: &str = "dropped · undelivered · unacked · lost conns";

/// One round's loss counters of a scenario.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Lost {
    /// Deliveries the publisher wrote off after a 1 s stall (a guess: they may have
    /// arrived later).
    pub(super) dropped: u64,
    /// Deliveries owed that never arrived (exact).
    pub(super) undelivered: u64,
    /// Broadcasts or emits never acknowledged (exact).
    pub(super) unacked: u64,
    /// Receivers whose connection the server closed.
    pub(super) conns: u64,
}

impl Lost {
    /// A fan-out's counters (single server or cluster).
    pub(super) fn of_fanout(f: &FanoutResult) -> Lost {
        Lost {
            dropped: f.written_off,
            undelivered: f.undelivered,
            unacked: f.unacked,
            conns: f.lost_connections as u64,
        }
    }

    /// A many-rooms run's counters (single server or cluster).
    pub(super) fn of_rooms(r: &RoomsResult) -> Lost {
        Lost {
            dropped: r.written_off,
            undelivered: r.undelivered,
            unacked: r.unacked,
            conns: r.lost_connections as u64,
        }
    }

    /// Whether the server lost something: an event, an ack or a connection (a
    /// write-off alone is the publisher's guess, not a loss).
    fn any(&self) -> bool {
        self.undelivered + self.unacked + self.conns > 0
    }

    /// The counters of every round added up.
    fn sum(rounds: &[Lost]) -> Lost {
        rounds.iter().fold(Lost::default(), |a, b| Lost {
            dropped: a.dropped + b.dropped,
            undelivered: a.undelivered + b.undelivered,
            unacked: a.unacked + b.unacked,
            conns: a.conns + b.conns,
        })
    }
}

/// The loss cells of one table, and the rows that lost something for its footnote.
#[derive(Debug)]
pub(super) struct Losses {
    /// What the publisher sends and the server acks: `broadcasts`, `emits`.
    sent: &'static str,
    /// Each row that lost something: its name and its rounds' counters.
    lossy: Vec<(String, Vec<Lost>)>,
}

impl Losses {
    /// For a table whose publisher sends `sent` (`broadcasts`, `emits`).
    pub(super) fn new(sent: &'static str) -> Losses {
        Losses {
            sent,
            lossy: Vec::new(),
        }
    }

    /// The cell of the row named `row`: `dropped · undelivered · unacked · lost conns`,
    /// each added up over `rounds`, in bold when the server lost something.
    pub(super) fn cell(&mut self, row: String, rounds: Vec<Lost>) -> String {
        let t = Lost::sum(&rounds);
        let cell = format!(
            "{} · {} · {} · {}",
            t.dropped, t.undelivered, t.unacked, t.conns
        );
        if t.any() {
            self.lossy.push((row, rounds));
            format!("**{cell}**")
        } else {
            cell
        }
    }

    /// The footnote: what the cell counts over `scope`, then each row that lost
    /// something, with its rounds when there were several.
    pub(super) fn note(&self, scope: &str) -> String {
        let mut md = format!(
            "\n`{HEAD}`, added up over the rounds: `dropped` is the publisher's guess after \
             a 1 s stall in the measured phase (events that then arrived count too); \
             `undelivered` (events owed to the rooms' members that never arrived) and \
             `unacked` ({} never acknowledged) are exact counts over {scope}, after \
             waiting up to {} s for each; `lost conns` counts receivers whose connection \
             the server closed.",
            self.sent,
            DRAIN.as_secs()
        );
        if self.lossy.is_empty() {
            md.push_str(" No server lost an event, an ack or a connection.\n");
            return md;
        }
        md.push_str(" **Lost** (the cells in bold):");
        for (i, (row, rounds)) in self.lossy.iter().enumerate() {
            let t = Lost::sum(rounds);
            let mut what = Vec::new();
            let by_round = |f: fn(&Lost) -> u64| {
                if rounds.len() > 1 {
                    let each: Vec<String> = rounds.iter().map(|l| f(l).to_string()).collect();
                    format!(" ({} by round)", each.join(" · "))
                } else {
                    String::new()
                }
            };
            for (n, name, f) in [
                (
                    t.undelivered,
                    "events undelivered",
                    (|l: &Lost| l.undelivered) as fn(&Lost) -> u64,
                ),
                (t.unacked, "unacked", |l: &Lost| l.unacked),
                (t.conns, "connections lost", |l: &Lost| l.conns),
            ] {
                if n > 0 {
                    let name = if name == "unacked" {
                        format!("{} unacked", self.sent)
                    } else {
                        name.to_owned()
                    };
                    what.push(format!("{n} {name}{}", by_round(f)));
                }
            }
            let sep = if i == 0 { " " } else { "; " };
            let _ = write!(md, "{sep}{row}: {}", what.join(", "));
        }
        md.push_str(".\n");
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_adds_the_rounds_up_and_the_note_names_what_each_round_lost() {
        let mut losses = Losses::new("broadcasts");
        let clean = losses.cell("bare".to_owned(), vec![Lost::default(); 3]);
        assert_eq!(clean, "0 · 0 · 0 · 0");
        assert!(losses.note("x").contains("No server lost"));
        let acks = |unacked| Lost {
            unacked,
            ..Lost::default()
        };
        let lossy = losses.cell(
            "socketioxide".to_owned(),
            vec![acks(768), acks(768), acks(529)],
        );
        assert_eq!(lossy, "**0 · 0 · 2065 · 0**");
        let guess = Lost {
            dropped: 40,
            ..Lost::default()
        };
        // A write-off alone is a guess: not bold, not named.
        assert_eq!(
            losses.cell("node".to_owned(), vec![guess]),
            "40 · 0 · 0 · 0"
        );
        let note = losses.note("the whole scenario");
        assert!(
            note.contains("socketioxide: 2065 broadcasts unacked (768 · 768 · 529 by round)."),
            "{note}"
        );
        assert!(!note.contains("node:"), "{note}");
    }
}
