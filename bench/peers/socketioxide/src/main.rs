//! The benchmark workload served by socketioxide (default settings, axum, websocket).
//!
//! Same contract as `protocol_fixture cluster` for what the benchmarks use, namespace `/`:
//! `join` (room) joins and acks `true`; `broadcast` (room, event, arg) emits `event` with
//! `arg` to the room and acks `true`; `message-with-ack` (arg) acks the same argument.
//!
//! Defaults everywhere except TCP_NODELAY (see `main`).
//!
//! Usage: `switchboard-bench-peer-socketioxide [--port N] [--host H]`; prints exactly
//! `listening on HOST:PORT` once bound and exits on SIGINT/SIGTERM.

use axum::serve::ListenerExt;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

/// Joins the sender to the room named by the first argument and acks `true`.
async fn on_join(s: SocketRef, Data(room): Data<String>, ack: AckSender) {
    s.join(room);
    ack.send(&true).ok();
}

/// Emits `event` with `arg` to every socket in `room`, then acks `true`.
async fn on_broadcast(
    io: SocketIo,
    Data((room, event, arg)): Data<(String, String, Value)>,
    ack: AckSender,
) {
    io.to(room).emit(event, &(arg,)).await.ok();
    ack.send(&true).ok();
}

/// Acks with the argument it received.
async fn on_message_with_ack(Data(arg): Data<Value>, ack: AckSender) {
    ack.send(&(arg,)).ok();
}

/// Registers the event handlers of one connected socket.
fn on_connect(s: SocketRef) {
    s.on("join", on_join);
    s.on("broadcast", on_broadcast);
    s.on("message-with-ack", on_message_with_ack);
}

/// Reads `--port` and `--host` from the command line.
fn parse_args() -> (String, u16) {
    let mut host = "127.0.0.1".to_owned();
    let mut port = 0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().unwrap_or(0),
            "--host" => host = value,
            other => eprintln!("ignoring unknown argument {other}"),
        }
    }
    (host, port)
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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (host, port) = parse_args();
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |s: SocketRef| on_connect(s));
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
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
