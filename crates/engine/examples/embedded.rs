//! The smallest useful embedding of the engine: a chat namespace where clients join
//! rooms and say things to them. Run with `cargo run -p switchboard-engine --example
//! embedded` and connect any Socket.IO client to `http://127.0.0.1:3000/chat`.

use serde_json::{Value, json};
use switchboard_engine::{Io, SocketIoConfig, not_found, serve, shutdown};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (_trigger, signal) = shutdown::channel();
    let io = Io::new(SocketIoConfig::default(), signal.clone());
    let chat = io.of("/chat");
    chat.on_connection(|socket| {
        let _ = socket.emit("hello", json!("welcome"));
    });
    chat.on("join", |ev| {
        if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
            ev.socket.join(&[room]);
        }
    });
    chat.on("say", |mut ev| {
        if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
            ev.socket.to(room).emit("said", ev.payload.clone());
        }
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send(json!({ "ok": true }));
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    serve(listener, io.engine().clone(), not_found, signal).await
}
