//! BENCHMARKS.md's *Method and limits*, written from the run's own parameters and
//! machine (`results.json`): durations, loads, publishers, rooms, loops and clients as
//! this run used them. The ack windows and backlogs are the scenarios' constants, not
//! parameters of a run.

use std::fmt::Write as _;

use super::samples::thousands;
use super::tables::load_label;
use crate::scenarios::loaded::{LOAD, RSS_SAMPLES};
use crate::suite::SuiteReport;

/// `2`, `0.5`, `2.25`: seconds as a run's parameters give them.
fn secs(s: f64) -> String {
    format!("{s}")
}

/// `50%, 10% and 1%`.
fn loads(list: &[f64]) -> String {
    let each: Vec<String> = list
        .iter()
        .map(|&l| load_label(Some(l)).trim_end_matches(" of peak").to_owned())
        .collect();
    match each.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The section.
pub(super) fn section(report: &SuiteReport) -> String {
    let p = &report.params;
    let m = &report.machine;
    let n = |v: usize| thousands(v as u64);
    let mut md = String::from("\n## Method and limits\n\n");
    let idle_max = p.idle_counts.iter().max().copied().unwrap_or(0);
    let _ = writeln!(
        md,
        "- **One process may hold at most {} open files** on this machine, so a server tops \
         out a little under that many connections: the idle scenario stops at {}, and the \
         many-rooms scenario holds {} rooms of {} members with {} clients that each join {} \
         rooms (client *i* joins rooms *i … i−{}*), so every room still has {} distinct \
         members.",
        thousands(m.open_files_limit),
        n(idle_max),
        n(p.rooms),
        p.members,
        n(p.rooms),
        p.members,
        p.members.saturating_sub(1),
        p.members
    );
    let _ = writeln!(
        md,
        "- **{} cores, shared**: the generator and the server under test run on the same \
         {} cores. The generator's own CPU per million deliveries is reported next to the \
         server's; the load generator ceiling below compares the two together with the \
         machine's cores at each peak.",
        m.cores, m.cores
    );
    let rounds = if p.repeat > 1 {
        format!(
            "this run has {} rounds of each scenario, every server in turn within a round, and \
             the tables show the median of the rounds with their spread (min–max)",
            p.repeat
        )
    } else {
        "this run has one round of each scenario".to_owned()
    };
    let _ = writeln!(
        md,
        "- Scenarios run one at a time, each on every server in turn (so load from other \
         work on the shared machine spreads over all servers); {rounds}; every scenario \
         starts a fresh server process; servers bind 127.0.0.1 and clients use the \
         websocket transport directly (`/socket.io/?EIO=4&transport=websocket`). \
         Connections are spread over 127.0.0.x source addresses when one address runs out \
         of ports."
    );
    let _ = writeln!(
        md,
        "- **Fan-out**: one room, a publisher outside it calls `broadcast` (room, `bench`, \
         100-byte string) with at most 16 unacknowledged calls and at most 16 broadcasts' \
         worth of events published but not yet received (so a server that acks before it \
         writes cannot hide a backlog). {} s warm-up, {} s measured at the receivers. \
         `switchboard serve` has no `broadcast` call: its publisher joins the room and \
         emits `bench` (room, 100-byte string), which the relay rule sends unchanged to the \
         room's other members.",
        secs(p.warmup_secs),
        secs(p.fanout_secs)
    );
    let rates = match p.latency_rate {
        Some(rate) => format!("a fixed publish rate of {rate} broadcasts/s for every server"),
        None => {
            let half = if p.latency_loads.contains(&0.5) {
                " (50% is the target's \"half of peak\")"
            } else {
                ""
            };
            format!(
                "fixed publish rates of {} of the broadcast rate each server reached in its \
                 own fan-out phase{half}, at least 1 broadcast/s",
                loads(&p.latency_loads)
            )
        }
    };
    let _ = writeln!(
        md,
        "- **Latency**: {rates}, same room and connections, each {} s measured after {} s \
         warm-up, paced in 1 ms ticks; the payload carries the time the broadcast was due \
         (start + k ÷ rate, in µs: a publisher that falls behind counts its lateness, no \
         coordinated omission), receivers record (receive − due) into an HDR histogram. At the peak, each \
         write and read carries many queued frames; at a fixed rate nearly every delivery \
         costs the server one write and the generator one read (each several µs on \
         loopback), so even a tenth of a batched peak can saturate {} shared cores and the \
         percentiles then measure queueing. The lowest rates show the latency of an \
         unloaded fan-out; the server and generator CPU columns show which case a row is. \
         A phase rests on its broadcasts (rate × seconds): the table gives them, and leaves \
         out a p99.9 or p99 that rests on too few.",
        secs(p.latency_secs),
        secs(p.warmup_secs),
        m.cores
    );
    let pace = match p.rooms_rate {
        Some(rate) => format!("at {rate} targeted emits/s together"),
        None => "as fast as acks come back".to_owned(),
    };
    let _ = writeln!(
        md,
        "- **Many rooms**: {} publishers, {pace}, each with up to 64 unacknowledged \
         targeted emits (4 publishers of up to 256 in runs before 2026-12-07) and 20k \
         undelivered events, {} s warm-up and {} s measured. For \
         `switchboard serve` each publisher first joins the {} rooms it publishes to (relay \
         wants the sender in the room; the publishers' sets are disjoint, so no publisher \
         receives another's events).",
        p.publishers,
        secs(p.warmup_secs),
        secs(p.rooms_secs),
        n(p.rooms / p.publishers.max(1))
    );
    let _ = writeln!(
        md,
        "- **Churn**: {} loops of connect → WebSocket upgrade → Engine.IO open → Socket.IO \
         connect → Socket.IO disconnect → WebSocket close (waiting for the server to \
         close), for {} s.",
        p.churn_workers,
        secs(p.churn_secs)
    );
    let clients = n(p.loaded_clients);
    let _ = writeln!(
        md,
        "- **Memory under load**: one room of {clients} clients and a publisher outside it, \
         as in fan-out, on a fresh server: RSS before any client, then with every client in \
         the room (idle, settled, mean of 3 samples 0.5 s apart), then {} s warm-up and {} s \
         at a fixed rate of {:.0}% of the broadcast rate the same server reached in the \
         fan-out scenario's room of {clients} in the same round (a separate process, so this \
         one never ran at the peak), RSS sampled {RSS_SAMPLES} times, every {} s: KiB/conn = \
         (RSS − RSS before any client) ÷ clients, idle and under load (the mean of the \
         samples), the highest sample as max RSS, and every event then waited for (exact \
         counts of deliveries lost, broadcasts unacked, connections lost).",
        secs(p.warmup_secs),
        secs(p.loaded_secs),
        LOAD * 100.0,
        secs(p.loaded_secs / f64::from(RSS_SAMPLES))
    );
    md.push_str("- Ratios (`× SB`) are the server's value divided by `switchboard (fixture)`'s.\n");
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_method_says_what_this_run_used() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results/20261205-042301/results.json");
        let text = std::fs::read_to_string(path).expect("a committed results.json");
        let mut report: SuiteReport = serde_json::from_str(&text).expect("it parses");
        let md = section(&report);
        assert!(
            md.contains("2 s warm-up, 10 s measured at the receivers"),
            "{md}"
        );
        assert!(md.contains("50%, 10% and 1% of the broadcast rate"), "{md}");
        assert!(md.contains("joins the 2,500 rooms"), "{md}");
        assert!(md.contains("**Churn**: 32 loops"), "{md}");
        assert!(md.contains("one room of 10,000 clients"), "{md}");
        let p = &mut report.params;
        (p.warmup_secs, p.fanout_secs, p.publishers, p.rooms) = (1.0, 3.0, 2, 2000);
        (p.churn_workers, p.loaded_clients, p.latency_loads) = (8, 500, vec![0.25]);
        report.machine.cores = 8;
        let md = section(&report);
        assert!(
            md.contains("1 s warm-up, 3 s measured at the receivers"),
            "{md}"
        );
        assert!(md.contains("rates of 25% of the broadcast rate"), "{md}");
        assert!(!md.contains("half of peak"), "{md}");
        assert!(md.contains("joins the 1,000 rooms"), "{md}");
        assert!(md.contains("**Churn**: 8 loops"), "{md}");
        assert!(md.contains("one room of 500 clients"), "{md}");
        assert!(md.contains("**8 cores, shared**"), "{md}");
    }
}
