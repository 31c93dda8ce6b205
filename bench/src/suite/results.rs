//! What a run measured, as `results.json` holds it: per server, one set of results per
//! round and the steps that failed; the machine, versions and parameters of the run.
//! Files written before rounds existed (one set of results beside `server`) read as one
//! round.

use serde::{Deserialize, Serialize};

use crate::peers::ServerKind;
use crate::procstat::Machine;
use crate::scenarios::Params;
use crate::scenarios::churn::ChurnResult;
use crate::scenarios::cluster::{ClusterFanout, ClusterLatency, ClusterRooms};
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::idle::IdleResult;
use crate::scenarios::loaded::LoadedResult;
use crate::scenarios::rooms::RoomsResult;
use crate::scenarios::sse::TransportResult;
use crate::scenarios::storm::StormResult;

/// One step that did not go as it should.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// Step name (`idle`, `fanout-1000`, ...).
    pub(crate) step: String,
    /// The round it happened in, from 1 (results.json written before `--repeat` had one).
    #[serde(default = "first_round")]
    pub(crate) round: usize,
    /// What went wrong (results.json written before kinds existed read as `scenario`).
    #[serde(default)]
    pub(crate) kind: FailureKind,
    /// Why.
    pub(crate) reason: String,
}

/// What kind of failure a step had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FailureKind {
    /// The server was prepared but did not get to `listening on` (could not be spawned,
    /// exited, or stayed silent); its later steps are not tried.
    Start,
    /// The server process exited while the step ran: the step may have a result or an
    /// error as well, the server is broken either way.
    Crash,
    /// The scenario returned an error or timed out while the server kept running.
    #[default]
    Scenario,
}

impl FailureKind {
    /// How reports and the smoke verdict say it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FailureKind::Start => "failed to start",
            FailureKind::Crash => "crashed",
            FailureKind::Scenario => "failed",
        }
    }
}

/// The round of a failure read from a results.json written before `--repeat`.
fn first_round() -> usize {
    1
}

/// Everything measured for one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "ServerReportFile")]
pub(crate) struct ServerReport {
    /// Which server.
    pub(crate) server: ServerKind,
    /// Why it could not be prepared (not built, no node, build failed), if it could not;
    /// then it ran nothing.
    pub(crate) skipped: Option<String>,
    /// What each round measured, in order (`--repeat` of them; none when skipped).
    pub(crate) rounds: Vec<Results>,
    /// Steps that failed, every round.
    pub(crate) failures: Vec<Failure>,
}

/// A server's entry as results.json holds it: its `rounds`, or, in files written before
/// `--repeat`, one round's results beside `server`.
#[derive(Deserialize)]
struct ServerReportFile {
    /// Which server.
    server: ServerKind,
    /// Why it was skipped.
    skipped: Option<String>,
    /// Every round (absent in older files).
    #[serde(default)]
    rounds: Option<Vec<Results>>,
    /// The one round of an older file (all empty in a newer one).
    #[serde(flatten)]
    single: Results,
    /// Steps that failed.
    #[serde(default)]
    failures: Vec<Failure>,
}

impl From<ServerReportFile> for ServerReport {
    fn from(file: ServerReportFile) -> ServerReport {
        let rounds = match (file.rounds, &file.skipped) {
            (Some(rounds), _) => rounds,
            (None, Some(_)) => Vec::new(),
            (None, None) => vec![file.single],
        };
        ServerReport {
            server: file.server,
            skipped: file.skipped,
            rounds,
            failures: file.failures,
        }
    }
}

impl ServerReport {
    /// A server's entry before anything ran: `rounds` empty rounds, or none when skipped.
    pub(crate) fn new(server: ServerKind, skipped: Option<String>, rounds: usize) -> ServerReport {
        let rounds = if skipped.is_some() { 0 } else { rounds };
        ServerReport {
            server,
            skipped,
            rounds: vec![Results::default(); rounds],
            failures: Vec::new(),
        }
    }
}

/// What one round measured on one server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Results {
    /// Idle memory.
    pub(crate) idle: Option<IdleResult>,
    /// Fan-out, one per room size.
    pub(crate) fanout: Vec<FanoutResult>,
    /// Latency, one per room size.
    pub(crate) latency: Vec<LatencyResult>,
    /// Many rooms.
    pub(crate) rooms: Option<RoomsResult>,
    /// Churn.
    pub(crate) churn: Option<ChurnResult>,
    /// Memory under load.
    pub(crate) loaded: Option<LoadedResult>,
    /// Cluster fan-out, one per (adapter, nodes, room size).
    pub(crate) cluster_fanout: Vec<ClusterFanout>,
    /// Cluster latency, one per (adapter, nodes, room size).
    pub(crate) cluster_latency: Vec<ClusterLatency>,
    /// Cluster many rooms, one per (adapter, nodes).
    pub(crate) cluster_rooms: Vec<ClusterRooms>,
    /// The recovery storm (Switchboard's fixture only).
    pub(crate) cluster_storm: Option<StormResult>,
    /// Server-Sent Events and, side by side, WebSocket (`switchboard serve` only): one
    /// entry per transport that ran a step.
    pub(crate) sse: Vec<TransportResult>,
}

impl Results {
    /// Nothing measured (what a round the runner never reached reads as).
    pub(crate) const NONE: Results = Results {
        idle: None,
        fanout: Vec::new(),
        latency: Vec::new(),
        rooms: None,
        churn: None,
        loaded: None,
        cluster_fanout: Vec::new(),
        cluster_latency: Vec::new(),
        cluster_rooms: Vec::new(),
        cluster_storm: None,
        sse: Vec::new(),
    };
}

/// Versions of what was measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Versions {
    /// `rustc --version`.
    pub(crate) rustc: String,
    /// `node --version`.
    pub(crate) node: String,
    /// Installed socket.io package.
    pub(crate) socket_io: String,
    /// socketioxide in the peer's Cargo.lock.
    pub(crate) socketioxide: String,
    /// Switchboard commit.
    pub(crate) switchboard: String,
    /// protocol_fixture binary measured, when given with `--switchboard-bin`.
    pub(crate) switchboard_binary: Option<String>,
    /// The baseline protocol_fixture binary measured (`--baseline-bin`), if any.
    #[serde(default)]
    pub(crate) baseline_binary: Option<String>,
    /// What the baseline binary was built from, as given with `--baseline-rev`.
    #[serde(default)]
    pub(crate) baseline_rev: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SuiteReport {
    /// `full`, `smoke` or a scenario name.
    pub(crate) mode: String,
    /// UTC start time, `YYYY-MM-DD HH:MM:SS`.
    pub(crate) started_at: String,
    /// The machine.
    pub(crate) machine: Machine,
    /// Versions.
    pub(crate) versions: Versions,
    /// Parameters.
    pub(crate) params: Params,
    /// Per-server results.
    pub(crate) servers: Vec<ServerReport>,
}

#[cfg(test)]
impl SuiteReport {
    /// A report of `servers` for tests, run in `mode` with `params` on a test machine
    /// ([`Machine::for_test`]).
    pub(crate) fn for_test(mode: &str, params: Params, servers: Vec<ServerReport>) -> Self {
        SuiteReport {
            mode: mode.to_owned(),
            started_at: "2026-12-07 10:00:00".to_owned(),
            machine: Machine::for_test(),
            versions: Versions::default(),
            params,
            servers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_results_file_from_before_rounds_reads_as_one_round() {
        let old = r#"{
            "server": "node",
            "skipped": null,
            "idle": {"baseline_rss_bytes": 1, "points": [], "lost_connections": 0},
            "fanout": [],
            "latency": [],
            "rooms": null,
            "churn": null,
            "failures": [{"step": "churn", "reason": "timed out"}]
        }"#;
        let report: ServerReport = serde_json::from_str(old).expect("an old entry");
        assert_eq!(report.rounds.len(), 1);
        assert!(report.rounds[0].idle.is_some());
        assert_eq!(report.failures[0].round, 1);
        assert_eq!(report.failures[0].kind, FailureKind::Scenario);
        // Written back, it has rounds, and reads the same.
        let json = serde_json::to_string(&report).expect("serialises");
        assert!(json.contains("\"rounds\""), "{json}");
        let again: ServerReport = serde_json::from_str(&json).expect("a new entry");
        assert_eq!(again.rounds.len(), 1);
        assert!(again.rounds[0].idle.is_some());
        let skipped = r#"{"server": "bare", "skipped": "no", "idle": null, "fanout": [],
            "latency": [], "rooms": null, "churn": null, "failures": []}"#;
        let skipped: ServerReport = serde_json::from_str(skipped).expect("a skipped entry");
        assert!(skipped.rounds.is_empty());
    }
}
