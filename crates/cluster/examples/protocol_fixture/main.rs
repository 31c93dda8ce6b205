//! `protocol_fixture`: the servers the official Engine.IO v4 and Socket.IO v5 test
//! suites expect, plus a `cluster` mode for interop tests and benchmarks. See the
//! README beside this file for the exact behaviour of each mode.

mod modes;

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use switchboard_engine::shutdown::{self, DrainPlan};

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
    /// Node name (`whoami`, `socket.data.node`); default `node-<port>`.
    #[arg(long)]
    name: Option<String>,
    /// Turn on connection state recovery in `cluster` mode (maxDisconnectionDuration
    /// 120 s). Clients then receive each event's offset as its last argument.
    #[arg(long)]
    recovery: bool,
    /// `redis-streams`: replicas that must hold an event before its broadcast is
    /// acknowledged (`cluster.replicas_to_ack`).
    #[arg(long, default_value_t = 0)]
    replicas_to_ack: usize,
    /// `redis-sharded`: `static`, `dynamic` (default) or `dynamic-private`, as
    /// `createShardedAdapter`'s `subscriptionMode`.
    #[arg(long, default_value = "dynamic")]
    subscription_mode: switchboard_cluster::SubscriptionMode,
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
    RedisSharded,
}

/// How long to wait for connections to close after a shutdown signal.
const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// The paced part of the drain ends this long before the deadline, so the last
/// closed sessions have time to flush.
const FLUSH_RESERVE: Duration = Duration::from_secs(1);

/// The cluster secret of fixture nodes (forwarded polling requests are signed).
const FIXTURE_SECRET: &str = "switchboard protocol_fixture test secret (not for production)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let (trigger, signal) = shutdown::channel();
    let adapter = match args.adapter {
        Adapter::Memory => switchboard_cluster::AdapterKind::Memory,
        Adapter::Redis => switchboard_cluster::AdapterKind::Redis,
        Adapter::RedisStreams => switchboard_cluster::AdapterKind::RedisStreams,
        Adapter::RedisSharded => switchboard_cluster::AdapterKind::RedisSharded,
    };
    let mut cluster_config = switchboard_cluster::ClusterConfig {
        adapter,
        // Every fixture node of a test shares this fixed secret, so the harnesses
        // start them with the command line they always had. A test secret: the
        // fixture is never a production server.
        secret: Some(
            switchboard_cluster::ClusterSecret::new(FIXTURE_SECRET).map_err(anyhow::Error::msg)?,
        ),
        ..Default::default()
    };
    if let Some(url) = &args.redis_url {
        cluster_config.redis_url = url.clone();
    }
    cluster_config.replicas_to_ack = args.replicas_to_ack;
    cluster_config.subscription_mode = args.subscription_mode;
    let cluster = switchboard_cluster::Cluster::start(&cluster_config, signal.clone())?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("node-{}", listener.local_addr().map_or(0, |a| a.port())));
    let engine = match args.mode {
        Mode::Engineio => modes::engineio(signal.clone()),
        Mode::Socketio => modes::socketio(signal.clone()).engine().clone(),
        Mode::Cluster => {
            let io = modes::cluster(
                signal.clone(),
                args.recovery,
                cluster.adapter_factory(),
                cluster.node_tag(),
                name,
            );
            // Polling requests for other nodes' sessions go to their owner, and their
            // WebSocket upgrades are relayed to it at the address it listens on.
            cluster.serve_forwarded(io.engine());
            io.engine()
                .set_relay_address(&listener.local_addr()?.to_string());
            io.engine().clone()
        }
    };
    // Take part in the cluster before saying we listen (the contract).
    let joined = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cluster.is_ready() && tokio::time::Instant::now() < joined {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.set_allow_request(std::sync::Arc::new(modes::allow_request));
    let signals = wait_for_signal();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", listener.local_addr()?)?;
    stdout.flush()?;
    let server = tokio::spawn(switchboard_engine::serve(
        listener,
        engine.clone(),
        switchboard_engine::not_found,
        signal,
    ));
    signals.await;
    let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
    // Sessions closed in paced batches (clients reconnect elsewhere), new ones
    // refused; then everything stops.
    let plan = DrainPlan {
        deadline: DRAIN_DEADLINE - FLUSH_RESERVE,
        ..DrainPlan::default()
    };
    engine.drain(plan).await;
    trigger.trigger();
    while engine.session_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = server.await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when it is awaited: call it before saying `listening on`, or a signal sent right
/// after that line kills the process instead of draining it.
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
