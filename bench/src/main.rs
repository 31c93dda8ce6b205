//! Switchboard's benchmark suite: a Socket.IO load generator, the runner that starts
//! each server under test and stops it after, the bare broadcaster, and the reports.
//!
//! # Layout
//!
//! - `cli`: subcommands and their options.
//! - `ws`, `sio`: the minimal WebSocket and Engine.IO/Socket.IO codecs (no IO).
//! - `http`, `sse`: the HTTP/1.1 of `switchboard serve`'s API and metrics, and its
//!   Server-Sent Events listener.
//! - `net`: outgoing connections spread over 127.0.0.x source addresses.
//! - `client`, `fleet`, `publish`, `stats`: the load generator (receivers, publishers,
//!   counters and latency histograms).
//! - `scenarios`: idle memory, fan-out + latency, many rooms, churn, memory under
//!   load, SSE against WebSocket, and the same spread over 1–3 nodes clustered over
//!   Redis.
//! - `peers`, `prepare`: the servers under test, how they are built, started, stopped.
//! - `redis`, `cluster`: a throwaway `redis-server` and a cluster of nodes on it.
//! - `bare`: the bare Rust WebSocket broadcaster (`bare-server` subcommand).
//! - `procstat`: RSS and CPU from `/proc`, machine description.
//! - `suite`: the runner; `report`, `chart`: JSON, markdown, SVG, BENCHMARKS.md.
//! - `verdict`: what fails the CI smoke.
//! - `progress`, `versions`: progress bars; versions and timestamps.

mod arrival;
mod bare;
mod chart;
mod cli;
mod client;
mod cluster;
mod fleet;
mod http;
mod net;
mod peers;
mod prepare;
mod procstat;
mod progress;
mod publish;
mod redis;
mod report;
mod scenarios;
mod sio;
mod sse;
mod stats;
mod suite;
mod verdict;
mod versions;
mod ws;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the chosen subcommand; a runner interrupted by SIGINT/SIGTERM/SIGHUP stops every
/// server it started (their guards kill the process groups) and exits 130.
async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::BareServer { host, port } = &cli.command {
        bare::serve(host, *port).await?;
        return Ok(ExitCode::SUCCESS);
    }
    raise_open_files_limit();
    tokio::select! {
        result = cli::execute(cli.command) => result,
        signal = interrupted() => {
            eprintln!("\ninterrupted by {signal}: stopping every server started");
            Ok(ExitCode::from(130))
        }
    }
}

/// Resolves with the name of the first terminating signal received.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
        _ = hup.recv() => "SIGHUP",
    }
}

/// Raises this process's soft open-files limit to its hard limit (the generator holds
/// one descriptor per connection).
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
        _ => {}
    }
}
