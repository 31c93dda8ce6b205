//! `protocol_fixture`: the servers the official Engine.IO v4 and Socket.IO v5 test
//! suites expect, plus a `cluster` mode for interop tests and benchmarks. See the
//! README beside this file for the exact behaviour of each mode.

mod modes;

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use switchboard_engine::shutdown;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Fixture servers for the official Socket.IO protocol test suites")]
struct Args {
    /// Which fixture to run.
    mode: Mode,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Adapter for `cluster` mode.
    #[arg(long, value_enum, default_value_t = Adapter::Memory)]
    adapter: Adapter,
    /// Redis URL for the redis adapters.
    #[arg(long)]
    redis_url: Option<String>,
    /// Turn on connection state recovery in `cluster` mode (maxDisconnectionDuration
    /// 120 s). Clients then receive each event's offset as its last argument.
    #[arg(long)]
    recovery: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Engineio,
    Socketio,
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Adapter {
    Memory,
    Redis,
    RedisStreams,
}

/// How long to wait for connections to close after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.adapter != Adapter::Memory {
        anyhow::bail!(
            "only --adapter memory is available in this build (redis adapters: see issue 5)"
        );
    }
    let _ = &args.redis_url;
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let (trigger, signal) = shutdown::channel();
    let engine = match args.mode {
        Mode::Engineio => modes::engineio(signal.clone()),
        Mode::Socketio => modes::socketio(signal.clone()).engine().clone(),
        Mode::Cluster => modes::cluster(signal.clone(), args.recovery)
            .engine()
            .clone(),
    };
    engine.set_allow_request(std::sync::Arc::new(modes::allow_request));
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    let server = tokio::spawn(switchboard_engine::serve(
        listener,
        engine.clone(),
        switchboard_engine::not_found,
        signal,
    ));
    wait_for_signal().await;
    trigger.trigger();
    let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
    while engine.session_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = server.await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
