//! `switchboard`: a standalone Socket.IO server (Engine.IO v4 + Socket.IO v5).
//!
//! # Layout
//!
//! - `cli`: the command line, `serve` and `check-config`;
//! - `config`: typed settings, loaded from a file, the environment and flags;
//! - `logging`: `tracing` output as text or JSON;
//! - `server`: the engine and HTTP routes on one listener, and the drain;
//! - `rules`: the namespace rules (auth, rooms, events, rate limits) and hooks;
//! - `http`: health, readiness and Prometheus metrics routes, and the HTTP errors;
//! - `api`: the HTTP API for backends, static files, and the site that puts them
//!   beside the engine;
//! - `paths`: which URL paths the API, health and metrics own;
//! - `signal`: SIGTERM and SIGINT;
//! - `admin`: the Socket.IO Admin UI's admin namespace.
//!
//! Layers, each importing only those below it: `paths`; `config` and `http`; `rules`,
//! `api` and `admin`; `server`, which wires them; `main`.
//!
//! `main` stays thin: command line → config → logging → bind → announce the address →
//! wait for a signal → drain within the deadline.

mod admin;
mod api;
mod cli;
mod config;
mod http;
mod logging;
mod paths;
mod rules;
mod server;
mod signal;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

use crate::cli::{CheckConfigArgs, Cli, Command, ServeArgs};
use crate::config::{Config, ConfigErrors};
use crate::server::Server;
use crate::signal::StopSignals;

/// Exit status for an invalid configuration: `EX_USAGE` from sysexits(3), which scripts
/// and supervisors read as "fix the invocation" rather than "restart and retry".
const EXIT_INVALID_CONFIG: u8 = 64;

/// How long the runtime waits, once `serve` has returned, for blocking tasks still
/// running (a host name lookup that hangs, a file write). Tokio's default waits for
/// them without a limit: a resolver that never answered held the process past the
/// drain deadline until the supervisor's SIGKILL.
const RUNTIME_SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Exit status after a second SIGTERM or SIGINT cut the drain short.
const EXIT_SECOND_SIGNAL: i32 = 1;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let cli = match Cli::try_parse() {
            Ok(cli) => cli,
            Err(err) => return usage_error(&err),
        };
        match cli.command {
            Command::Serve(args) => serve(&args).await,
            Command::CheckConfig(args) => check_config(&args),
        }
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_WAIT);
    code
}

/// A command line clap could not read: its message, and exit 64 as for any other
/// bad configuration (clap's own exit was 2). `--help` and `--version` print and
/// exit 0.
fn usage_error(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::from(EXIT_INVALID_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}

async fn serve(args: &ServeArgs) -> ExitCode {
    let loaded = match config::load(&args.sources(cli::process_env())) {
        Ok(loaded) => loaded,
        Err(errors) => return invalid(&errors),
    };
    logging::init(&loaded.config.log);
    match run(loaded.config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "switchboard failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let signals = StopSignals::install().context("installing signal handlers")?;
    let server = Server::bind(&config).await?;
    let addr = server.local_addr()?;
    if let Some(api) = server.api_addr()? {
        tracing::info!(%api, "api listening");
        println!("api listening on {api}");
    }
    let namespaces: Vec<&str> = config
        .namespaces
        .iter()
        .map(|n| n.target.as_str())
        .collect();
    tracing::info!(%addr, ?namespaces, "listening");
    println!("listening on {addr}");
    let stop = async move {
        let mut signals = signals;
        let signal = signals.recv().await;
        tracing::info!(
            signal,
            "shutting down (the same signal again exits at once)"
        );
        // The drain may last up to `shutdown.drain_deadline` (24 h at most): an
        // operator's second signal ends it. Before, it was ignored. Only the same
        // signal: a Ctrl-C under a process manager (foreman, honcho) sends SIGINT
        // from the terminal and then SIGTERM from the manager, which must drain.
        tokio::spawn(async move {
            loop {
                let again = signals.recv().await;
                if again == signal {
                    tracing::warn!(
                        signal = again,
                        "second signal: exiting now, the drain unfinished"
                    );
                    std::process::exit(EXIT_SECOND_SIGNAL);
                }
                tracing::info!(
                    signal = again,
                    first = signal,
                    "signal during the drain ignored; the first one again exits at once"
                );
            }
        });
    };
    let drained = server.run(stop).await.context("serving")?;
    let took_ms = drained.took.as_millis() as u64;
    if drained.in_time {
        tracing::info!(took_ms, "drained, exiting");
    } else {
        let sessions_left = drained.sessions_left;
        tracing::warn!(
            took_ms,
            sessions_left,
            "drain deadline passed, exiting anyway"
        );
    }
    Ok(())
}

fn check_config(args: &CheckConfigArgs) -> ExitCode {
    match config::load(&args.sources(cli::process_env())) {
        Ok(loaded) => {
            println!("{}: configuration is valid", args.file.display());
            print!("{}", config::summary(&loaded));
            ExitCode::SUCCESS
        }
        Err(errors) => invalid(&errors),
    }
}

fn invalid(errors: &ConfigErrors) -> ExitCode {
    eprintln!("error: {errors}");
    ExitCode::from(EXIT_INVALID_CONFIG)
}
