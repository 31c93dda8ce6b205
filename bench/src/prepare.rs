//! Getting each server ready to launch: finding its binary, building it when asked
//! (`cargo build`), installing Node dependencies (`npm ci`). A server that cannot be
//! made ready is reported as skipped with the reason; the others carry on.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use crate::peers::{Launch, Paths, ServerKind};

/// Binary name of the socketioxide peer crate.
const SOCKETIOXIDE_BIN: &str = "switchboard-bench-peer-socketioxide";

/// Makes `kind` ready to launch, (re)building protocol_fixture or the socketioxide peer
/// when `build` says so (else using whatever binary exists); `Err` holds the human-readable reason it cannot run.
pub(crate) async fn prepare(
    kind: ServerKind,
    paths: &Paths,
    build: (bool, bool),
) -> Result<Launch, String> {
    match kind {
        ServerKind::Bare => bare(paths),
        ServerKind::Switchboard => switchboard(paths, build.0).await,
        ServerKind::Socketioxide => socketioxide(paths, build.1).await,
        ServerKind::Node => node(paths).await,
    }
}

/// The bare broadcaster is this binary's `bare-server` subcommand.
fn bare(paths: &Paths) -> Result<Launch, String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    Ok(Launch {
        program,
        args: vec!["bare-server".to_owned()],
        cwd: paths.root.clone(),
    })
}

/// `protocol_fixture cluster`, built with the same profile as this binary.
async fn switchboard(paths: &Paths, build: bool) -> Result<Launch, String> {
    let program = paths.exe_dir.join("examples").join("protocol_fixture");
    // Always ask cargo when building is allowed: it is a no-op when the binary is fresh,
    // and the engine changes under our feet.
    if build {
        let mut args = vec![
            "build",
            "-p",
            "switchboard-cluster",
            "--example",
            "protocol_fixture",
        ];
        if !cfg!(debug_assertions) {
            args.push("--release");
        }
        cargo(&paths.root, &args)
            .await
            .map_err(|e| format!("build of protocol_fixture failed: {e}"))?;
    }
    if !program.exists() {
        return Err(format!(
            "{} is not built (cargo build --release -p switchboard-cluster --examples)",
            program.display()
        ));
    }
    Ok(Launch {
        program,
        args: vec!["cluster".to_owned()],
        cwd: paths.root.clone(),
    })
}

/// A given protocol_fixture binary (`--switchboard-bin`).
pub(crate) fn fixture_at(program: &Path, paths: &Paths) -> Result<Launch, String> {
    if !program.exists() {
        return Err(format!("{} does not exist", program.display()));
    }
    Ok(Launch {
        program: program.to_path_buf(),
        args: vec!["cluster".to_owned()],
        cwd: paths.root.clone(),
    })
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
    Ok(Launch {
        program,
        args: Vec::new(),
        cwd: dir,
    })
}

/// `node server.js`, after `npm ci` if `node_modules` is missing.
async fn node(paths: &Paths) -> Result<Launch, String> {
    let dir = paths.peer_dir("node");
    let node = run(&dir, "node", &["--version"])
        .await
        .map_err(|e| format!("node not usable: {e}"))?;
    if !dir.join("node_modules").join("socket.io").exists() {
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
    Ok(Launch {
        program: PathBuf::from("node"),
        args: vec!["server.js".to_owned()],
        cwd: dir,
    })
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
