//! Getting each server ready to launch: finding its binary, building it when asked
//! (`cargo build`), writing `switchboard serve`'s config, installing Node dependencies
//! (`npm ci`). A server that cannot be made ready is reported as skipped with the
//! reason; the others carry on.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::peers::{Launch, Listen, Paths, ServerKind};
use crate::sio::BENCH_EVENT;
use crate::suite::Plan;

/// Binary name of the socketioxide peer crate.
const SOCKETIOXIDE_BIN: &str = "switchboard-bench-peer-socketioxide";
/// File name of `switchboard serve`'s generated config, in the run's output directory.
pub(crate) const SERVE_CONFIG_FILE: &str = "switchboard-serve.toml";
/// The one API key of `switchboard serve`'s generated config: the SSE scenario publishes
/// through the HTTP API with it. Not a secret: the server listens on loopback for the
/// length of one step.
pub(crate) const API_KEY: &str = "switchboard-bench-api-key";

/// Makes `kind` ready to launch, (re)building protocol_fixture, `switchboard serve` or
/// the socketioxide peer when the plan says so (else using whatever binary exists);
/// `Err` holds the human-readable reason it cannot run.
pub(crate) async fn prepare(
    kind: ServerKind,
    paths: &Paths,
    plan: &Plan,
) -> Result<Launch, String> {
    match kind {
        ServerKind::Bare => bare(paths),
        ServerKind::Switchboard => match &plan.switchboard_bin {
            Some(bin) => fixture_at(bin, paths),
            None => switchboard(paths, plan.build_fixture).await,
        },
        ServerKind::SwitchboardBaseline => match &plan.baseline_bin {
            Some(bin) => fixture_at(bin, paths),
            None => Err(
                "no --baseline-bin given: the baseline row measures an older \
                 protocol_fixture binary"
                    .to_owned(),
            ),
        },
        ServerKind::SwitchboardServe => serve(paths, plan).await,
        ServerKind::Socketioxide => socketioxide(paths, plan.build_socketioxide).await,
        ServerKind::Node => node(paths).await,
    }
}

/// A launch of `program args… --host H --port P` in `cwd`, with the environment as is.
fn launch(program: PathBuf, args: &[&str], cwd: &Path) -> Launch {
    Launch {
        program,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        listen: Listen::HostPort,
        env: Vec::new(),
        env_remove: Vec::new(),
        cwd: cwd.to_path_buf(),
    }
}

/// The bare broadcaster is this binary's `bare-server` subcommand.
fn bare(paths: &Paths) -> Result<Launch, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    Ok(launch(program, &["bare-server"], &paths.root))
}

/// `protocol_fixture cluster`, built with the same profile as this binary.
async fn switchboard(paths: &Paths, build: bool) -> Result<Launch, String> {
    let program = paths.exe_dir.join("examples").join("protocol_fixture");
    // Always ask cargo when building is allowed: it is a no-op when the binary is fresh,
    // and the engine changes under our feet.
    if build {
        let args = ["-p", "switchboard-cluster", "--example", "protocol_fixture"];
        build_in_profile(&paths.root, &args)
            .await
            .map_err(|e| format!("build of protocol_fixture failed: {e}"))?;
    }
    if !program.exists() {
        return Err(format!(
            "{} is not built (cargo build --release -p switchboard-cluster --examples)",
            program.display()
        ));
    }
    Ok(launch(program, &["cluster"], &paths.root))
}

/// A given protocol_fixture binary (`--switchboard-bin`, `--baseline-bin`), started as
/// the workspace's is: `cluster --host H --port P` (the command line every fixture since
/// the first benchmarked one takes).
fn fixture_at(program: &Path, paths: &Paths) -> Result<Launch, String> {
    if !program.exists() {
        return Err(format!("{} does not exist", program.display()));
    }
    Ok(launch(program.to_path_buf(), &["cluster"], &paths.root))
}

/// The shipped binary, built with the same profile as this binary, as
/// `switchboard serve --config <out>/switchboard-serve.toml --listen H:P`, without the
/// `SWITCHBOARD_*` variables of this environment (they would override the config).
async fn serve(paths: &Paths, plan: &Plan) -> Result<Launch, String> {
    let program = paths.exe_dir.join("switchboard");
    if plan.build_serve {
        build_in_profile(&paths.root, &["-p", "switchboard", "--bin", "switchboard"])
            .await
            .map_err(|e| format!("build of switchboard failed: {e}"))?;
    }
    if !program.exists() {
        return Err(format!(
            "{} is not built (cargo build --release -p switchboard --bin switchboard)",
            program.display()
        ));
    }
    let config = plan.out_dir.join(SERVE_CONFIG_FILE);
    let mut text = serve_config();
    if !plan.serve_set.is_empty() {
        text.push_str("\n# Given to this run with --serve-set (switchboard serve --set):\n");
        for set in &plan.serve_set {
            text.push_str(&format!("# {set}\n"));
        }
    }
    std::fs::create_dir_all(&plan.out_dir)
        .and_then(|()| std::fs::write(&config, text))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let config = config.to_string_lossy();
    let mut args = vec!["serve", "--config", &config];
    for set in &plan.serve_set {
        args.extend(["--set", set.as_str()]);
    }
    Ok(Launch {
        listen: Listen::Addr,
        env: Vec::new(),
        env_remove: std::env::vars_os()
            .map(|(name, _)| name)
            .filter(|name| name.to_string_lossy().starts_with("SWITCHBOARD_"))
            .collect(),
        ..launch(program, &args, &paths.root)
    })
}

/// The config `switchboard serve` runs the workload with: what `protocol_fixture cluster`
/// does by default (namespace `/`, in-memory adapter, no recovery, engine defaults),
/// written as namespace rules, with nothing that throttles the generator.
pub(crate) fn serve_config() -> String {
    format!(
        r#"# switchboard serve, as the benchmark runs it (written by switchboard-bench: bench/src/prepare.rs).
# The same work as protocol_fixture cluster, done by namespace rules instead of handlers:
# `join` joins a room, acked {{"ok":true}}; `{BENCH_EVENT}` (room, payload) is relayed unchanged
# to the room's other members, acked {{"ok":true}}. Engine settings stay at their defaults,
# which are protocol_fixture's.

[log]
# Per-connection events log at debug; warnings and errors still reach the run's raw/ logs.
level = "warn"

[cluster]
# One node, nothing shared, as protocol_fixture cluster runs by default.
adapter = "memory"

[recovery]
# Off, as protocol_fixture runs without --recovery: events carry no offset argument.
enabled = false

[sse]
# Server-Sent Events at /sse, for the SSE scenario's listeners (`?room=` joins, checked
# as `join` is). Heartbeats every 15 s and retry at their defaults.
enabled = true

[api]
# The HTTP API, through which the SSE scenario publishes (`POST /api/v1/emit`) to SSE
# listeners and, side by side, to Socket.IO clients. No rate limit: the publisher sends
# thousands of requests per second (the default allows 200).
keys = ["{API_KEY}"]
rate_limit_per_second = 0

[shutdown]
# The generator has closed its connections when the runner stops the server; a short
# drain keeps the stop well inside the runner's 5 s grace period.
drain_deadline = "1s"

[[namespaces]]
name = "/"
# No [namespaces.rate_limit] table: no limit on events per socket. The publisher sends
# thousands of events per second, far past any limit a real deployment would set.

[namespaces.rooms]
# Every room the scenarios use (`fanout`, `idle`, `r0` … `r9999`).
allow = ["*"]
# Above any count of rooms one socket joins here: a receiver of the many-rooms scenario
# joins 5; a publisher joins every room it publishes to (rooms / publishers: 2,500 at
# the full sizes), since relay rules want the sender in the room.
max_per_socket = 1000000

[[namespaces.events]]
name = "{BENCH_EVENT}"
action = "relay"
"#
    )
}

/// The socketioxide peer, a separate crate that CI never builds.
async fn socketioxide(paths: &Paths, build: bool) -> Result<Launch, String> {
    let dir = paths.peer_dir("socketioxide");
    let program = dir.join("target").join("release").join(SOCKETIOXIDE_BIN);
    if build {
        let manifest = dir.join("Cargo.toml");
        let manifest = manifest.to_string_lossy();
        cargo(
            &dir,
            &[
                "build",
                "--release",
                "--locked",
                "--manifest-path",
                &manifest,
            ],
        )
        .await
        .map_err(|e| format!("build of the socketioxide peer failed: {e}"))?;
    }
    if !program.exists() {
        return Err(format!(
            "socketioxide peer not built (cargo build --release --manifest-path {})",
            dir.join("Cargo.toml").display()
        ));
    }
    Ok(launch(program, &[], &dir))
}

/// `node server.js`, after `npm ci` if a dependency is missing from `node_modules`.
async fn node(paths: &Paths) -> Result<Launch, String> {
    let dir = paths.peer_dir("node");
    let node = run(&dir, "node", &["--version"])
        .await
        .map_err(|e| format!("node not usable: {e}"))?;
    // Every dependency of package.json: a node_modules installed before the Redis
    // adapters were added is brought up to date.
    let installed = [
        "socket.io",
        "ioredis",
        "@socket.io/redis-adapter",
        "@socket.io/redis-streams-adapter",
    ]
    .iter()
    .all(|package| dir.join("node_modules").join(package).exists());
    if !installed {
        run(&dir, "npm", &["--version"])
            .await
            .map_err(|e| format!("npm not usable: {e}"))?;
        eprintln!(
            "  node: installing dependencies (npm ci) in {}",
            dir.display()
        );
        run(&dir, "npm", &["ci", "--no-audit", "--no-fund"])
            .await
            .map_err(|e| format!("npm ci failed: {e}"))?;
    }
    eprintln!("  node: {}", node.trim());
    Ok(launch(PathBuf::from("node"), &["server.js"], &dir))
}

/// `cargo build <args>` in the profile of this binary (`--release` unless it is a debug
/// build), so every server is measured as optimised as the generator.
async fn build_in_profile(root: &Path, args: &[&str]) -> Result<String, String> {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    if !cfg!(debug_assertions) {
        all.push("--release");
    }
    cargo(root, &all).await
}

/// Runs `cargo` with `args` in `dir`.
async fn cargo(dir: &Path, args: &[&str]) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("  running cargo {}", args.join(" "));
    run(dir, &cargo, args).await
}

/// Runs a command to completion; `Ok(stdout)` on success, else a short reason.
pub(crate) async fn run(dir: &Path, program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last: Vec<&str> = stderr.lines().rev().take(3).collect();
    Err(format!(
        "{program} exited with {}: {}",
        output.status,
        last.into_iter().rev().collect::<Vec<_>>().join(" | ")
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// `table.key` → value of every setting of a flat TOML text (array tables by name).
    fn settings(toml: &str) -> BTreeMap<String, String> {
        let mut table = String::new();
        let mut out = BTreeMap::new();
        for line in toml.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[') {
                table = name.trim_matches(|c| c == '[' || c == ']').to_owned();
                out.insert(table.clone(), String::new());
            } else if let Some((key, value)) = line.split_once(" = ") {
                out.insert(format!("{table}.{key}"), value.to_owned());
            } else {
                panic!("unexpected line {line:?}");
            }
        }
        out
    }

    #[test]
    fn serve_config_relays_the_bench_event_in_memory_without_throttling() {
        let config = serve_config();
        let s = settings(&config);
        let get = |key: &str| s.get(key).map(String::as_str);
        assert_eq!(get("cluster.adapter"), Some("\"memory\""));
        assert_eq!(get("recovery.enabled"), Some("false"));
        assert_eq!(get("namespaces.name"), Some("\"/\""));
        assert_eq!(get("namespaces.rooms.allow"), Some("[\"*\"]"));
        // The rules' join event is the generator's `join`.
        assert_eq!(get("namespaces.rooms.join_event"), None);
        assert_eq!(get("namespaces.events.name"), Some("\"bench\""));
        assert_eq!(get("namespaces.events.action"), Some("\"relay\""));
        // The sender does not receive its own event: receivers count every delivery.
        assert_eq!(get("namespaces.events.include_sender"), None);
        // No rate limit at all, and room for a full-size publisher's 2,500 rooms.
        assert!(!s.keys().any(|k| k.starts_with("namespaces.rate_limit")));
        let max: usize = get("namespaces.rooms.max_per_socket")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        assert!(max >= 10_000, "max_per_socket {max}");
        // Only the listen address comes from the command line.
        assert_eq!(get(".listen"), None);
        // SSE listeners, and an API key for the SSE scenario's publisher, unthrottled.
        assert_eq!(get("sse.enabled"), Some("true"));
        assert_eq!(get("api.keys"), Some(format!("[\"{API_KEY}\"]").as_str()));
        assert!(API_KEY.len() >= 16);
        assert_eq!(get("api.rate_limit_per_second"), Some("0"));
    }
}
