//! The benchmark workload served by socketioxide (default settings, axum, websocket),
//! alone (in-memory adapter) or as one node of a cluster over Redis (`socketioxide-redis`,
//! its `redis` crate driver, default adapter config).
//!
//! Same contract as `protocol_fixture cluster` for what the benchmarks use, namespace `/`:
//! `join` (room) joins and acks `true`; `broadcast` (room, event, arg) emits `event` with
//! `arg` to the room (on every node of the cluster) and acks `true`; `message-with-ack`
//! (arg) acks the same argument.
//!
//! Defaults everywhere except TCP_NODELAY (see `serve`).
//!
//! Usage: `switchboard-bench-peer-socketioxide [--port N] [--host H] [--adapter
//! memory|redis] [--redis-url URL] [--name NAME (ignored)]`; prints exactly `listening on HOST:PORT` once bound
//! (with `redis`, after the adapter subscribed to its channels) and exits on
//! SIGINT/SIGTERM. socketioxide has no Redis-streams adapter.

use axum::serve::ListenerExt;
use serde_json::Value;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};

/// Joins the sender to the room named by the first argument and acks `true`.
async fn on_join<A: Adapter>(s: SocketRef<A>, Data(room): Data<String>, ack: AckSender<A>) {
    s.join(room);
    ack.send(&true).ok();
}

/// Emits `event` with `arg` to every socket in `room`, then acks `true`.
async fn on_broadcast<A: Adapter>(
    io: SocketIo<A>,
    Data((room, event, arg)): Data<(String, String, Value)>,
    ack: AckSender<A>,
) {
    io.to(room).emit(event, &(arg,)).await.ok();
    ack.send(&true).ok();
}

/// Acks with the argument it received.
async fn on_message_with_ack<A: Adapter>(Data(arg): Data<Value>, ack: AckSender<A>) {
    ack.send(&(arg,)).ok();
}

/// Registers the event handlers of one connected socket.
fn on_connect<A: Adapter>(s: SocketRef<A>) {
    s.on("join", on_join::<A>);
    s.on("broadcast", on_broadcast::<A>);
    s.on("message-with-ack", on_message_with_ack::<A>);
}

/// The command line.
struct Args {
    /// Address to bind.
    host: String,
    /// Port to bind (0: any free port).
    port: u16,
    /// `memory` or `redis`.
    adapter: String,
    /// Redis URL for the `redis` adapter.
    redis_url: Option<String>,
}

/// Reads `--port`, `--host`, `--adapter` and `--redis-url` (and `--name`, unused) from
/// the command line.
fn parse_args() -> Args {
    let mut parsed = Args {
        host: "127.0.0.1".to_owned(),
        port: 0,
        adapter: "memory".to_owned(),
        redis_url: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => parsed.port = value.parse().unwrap_or(0),
            "--host" => parsed.host = value,
            "--adapter" => parsed.adapter = value,
            "--redis-url" => parsed.redis_url = Some(value),
            // Node names are the runner's; socketioxide-redis names nodes itself.
            "--name" => {}
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    parsed
}

/// Resolves when the process receives SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Binds, says so, and serves `app` until a signal.
async fn serve(args: &Args, app: axum::Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    println!("listening on {}", listener.local_addr()?);
    // Nagle off, as Node's http server does by default (`noDelay: true`): without it each
    // small frame waits for the previous one's ACK and the benchmark measures delayed ACKs.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args();
    match args.adapter.as_str() {
        "memory" => {
            let (layer, io) = SocketIo::new_layer();
            io.ns("/", async |s: SocketRef| on_connect(s));
            serve(&args, axum::Router::new().layer(layer)).await?;
        }
        "redis" => {
            let url = args
                .redis_url
                .as_deref()
                .ok_or("--adapter redis needs --redis-url")?;
            // The redis driver of socketioxide-redis speaks RESP3.
            let client = redis::Client::open(format!("{url}?protocol=resp3"))?;
            let adapter = RedisAdapterCtr::new_with_redis(&client).await?;
            let (layer, io) = SocketIoBuilder::new()
                .with_adapter::<RedisAdapter<_>>(adapter)
                .build_layer();
            // Subscribes to the namespace's channels before the `listening on` line.
            io.ns("/", async |s: SocketRef<RedisAdapter<_>>| on_connect(s))
                .await?;
            serve(&args, axum::Router::new().layer(layer)).await?;
        }
        other => return Err(format!("unknown --adapter {other} (memory, redis)").into()),
    }
    Ok(())
}
