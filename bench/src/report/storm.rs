//! The recovery storm's table: how long until every client of a SIGKILLed node was
//! recovered on the survivor, what was lost or duplicated, and what the storm cost the
//! survivor and Redis at its peak; a row per round.

use std::fmt::Write as _;

use super::tables::ran;
use crate::scenarios::storm::StormResult;
use crate::suite::SuiteReport;

/// The table (nothing when no storm ran).
pub(super) fn table(report: &SuiteReport) -> String {
    // One row per round: a storm is an event, its figures are not averaged.
    let storms: Vec<_> = ran(report)
        .flat_map(|s| {
            let each = s.rounds.iter().enumerate();
            each.filter_map(|(i, r)| Some((s.server, i + 1, r.cluster_storm.as_ref()?)))
        })
        .collect();
    let Some((_, _, first)) = storms.first() else {
        return String::new();
    };
    let mut md = format!(
        "\n## Cluster recovery storm (2 nodes, redis-streams, recovery on; the clients' node \
         SIGKILLed)\n\n\
         {} clients on one node, spread over {} rooms; a publisher on the other node sends \
         {:.0} numbered events/s (the rooms in turn) with acks. The clients' node is \
         SIGKILLed; each client waits a random 0–{:.1} s, reconnects to the survivor and \
         claims its session (`pid` of its first CONNECT answer, offset of the last event it \
         received). *Recovered*: the survivor answered with the old `sid`. *All back*: kill → \
         last client recovered; *kill → recovered* includes the clients' own delays; \
         *reconnect* is one attempt's handshake and recovery on the survivor. *Lost*: acked \
         events that never reached a recovered member of their room; *duplicated*: arrivals \
         after the first; both must be 0. Peaks over kill → 1 s after the last answer, \
         sampled every 200 ms from `/proc` (RSS before the kill in brackets). The generator \
         shares the two cores.\n\n\
         | server | clients | recovered | not recovered · gave up | all back s | kill → \
         recovered p50 · p99 ms | reconnect p50 · p99 · max ms | acked (published after kill) | \
         lost | \
         duplicated | survivor peak cores | survivor peak RSS MiB | Redis peak cores | Redis \
         peak RSS MiB | generator CPU s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        first.clients, first.rooms, first.rate, first.backoff_secs
    );
    for (server, round, r) in &storms {
        let round = if report.params.repeat > 1 {
            format!(", round {round}")
        } else {
            String::new()
        };
        let _ = writeln!(md, "| {}{round} | {} |", server.label(), row(r));
    }
    md.push_str(
        "| node | not run: Node's Redis adapters save a session only when its socket \
         disconnects, which a SIGKILLed node never does, so its clients cannot be recovered \
         on another node | | | | | | | | | | | | | |\n",
    );
    md
}

/// One storm's cells after the server's.
fn row(r: &StormResult) -> String {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let all_back = r
        .all_recovered_secs
        .map_or("—".to_owned(), |s| format!("{s:.2}"));
    format!(
        "{} | {} | {} · {} | {all_back} | {:.0} · {:.0} | {:.1} · {:.1} · {:.1} | {} ({}) | {} | \
         {} | {:.2} | {:.0} ({:.0}) | {:.2} | {:.0} ({:.0}) | {:.2}",
        r.clients,
        r.recovered,
        r.not_recovered,
        r.gave_up,
        r.recovered_p50_ms,
        r.recovered_p99_ms,
        r.connect_p50_ms,
        r.connect_p99_ms,
        r.connect_max_ms,
        r.acked,
        r.published_after_kill,
        r.lost,
        r.duplicated,
        r.survivor.peak_cores,
        mib(r.survivor.peak_rss_bytes),
        mib(r.survivor_rss_before_bytes),
        r.redis.peak_cores,
        mib(r.redis.peak_rss_bytes),
        mib(r.redis_rss_before_bytes),
        r.generator_cpu_seconds
    )
}
