//! The behaviour of each fixture mode, built on the public engine API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_engine::eio::{
    EngineHandler, EngineServer, Frame, Message, Session, SessionHandler,
};
use switchboard_engine::{
    AllowedOrigins, CorsConfig, EngineConfig, Io, Metrics, Payload, Shutdown, SocketIoConfig,
};

/// The timings and limits both official suites expect.
fn suite_engine_config(path: &str) -> EngineConfig {
    EngineConfig {
        path: path.to_owned(),
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        cors: CorsConfig {
            allowed_origins: AllowedOrigins::Any,
            credentials: false,
        },
        ..EngineConfig::default()
    }
}

/// Echoes every message back as it came (text as text, binary as binary).
struct Echo;

impl EngineHandler for Echo {
    fn on_open(&self, _session: &Arc<Session>) -> Arc<dyn SessionHandler> {
        Arc::new(Echo)
    }
}

impl SessionHandler for Echo {
    fn on_message(&self, session: &Arc<Session>, message: Message) {
        let frame = match message {
            Message::Text(text) => {
                let mut out = String::with_capacity(text.len() + 1);
                out.push('4');
                out.push_str(std::str::from_utf8(&text).unwrap_or_default());
                Frame::text(out)
            }
            Message::Binary(data) => Frame::Binary(data),
        };
        let _ = session.send(&[frame], false);
    }

    fn on_close(&self, _session: &Arc<Session>, _reason: switchboard_engine::DisconnectReason) {}
}

/// Refuses handshakes carrying `x-conformance-deny: 1`, so the Forbidden answer
/// (code 4) can be tested.
pub(crate) fn allow_request(headers: &http::HeaderMap, _remote: std::net::SocketAddr) -> bool {
    headers.get("x-conformance-deny").is_none_or(|v| v != "1")
}

/// `engineio` mode: Engine.IO only, on `/engine.io/`.
pub(crate) fn engineio(shutdown: Shutdown) -> Arc<EngineServer> {
    EngineServer::new(
        suite_engine_config("/engine.io/"),
        Arc::new(Echo),
        Arc::new(Metrics::default()),
        shutdown,
    )
}

/// `socketio` mode: namespaces `/` and `/custom`, everything else refused.
pub(crate) fn socketio(shutdown: Shutdown) -> Io {
    let config = SocketIoConfig {
        engine: suite_engine_config("/socket.io/"),
        connect_timeout: Duration::from_millis(1000),
        ..SocketIoConfig::default()
    };
    let io = Io::new(config, shutdown);
    let root = io.of("/");
    root.on_connection(emit_auth);
    root.on("message", |ev| {
        let _ = ev.socket.emit("message-back", ev.payload.clone());
    });
    root.on("message-with-ack", |mut ev| {
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send(ev.payload.clone());
        }
    });
    io.of("/custom").on_connection(emit_auth);
    io
}

fn emit_auth(socket: &Arc<switchboard_engine::Socket>) {
    let _ = socket.emit("auth", socket.auth().clone());
}

/// How long `request-ack` waits for the client.
const REQUEST_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// `cluster` mode: rooms, broadcasts and acks in both directions on `/`.
pub(crate) fn cluster(
    shutdown: Shutdown,
    recovery: bool,
    adapters: switchboard_engine::adapter::AdapterFactory,
    node_tag: Option<switchboard_engine::config::NodeTag>,
    name: String,
) -> Io {
    let config = SocketIoConfig {
        recovery: recovery.then(switchboard_engine::sio::RecoveryConfig::default),
        engine: EngineConfig {
            cors: CorsConfig {
                allowed_origins: AllowedOrigins::Any,
                credentials: false,
            },
            node_tag,
            ..EngineConfig::default()
        },
        ..SocketIoConfig::default()
    };
    let metrics = std::sync::Arc::new(switchboard_engine::Metrics::default());
    let io = Io::with_adapter(config, adapters, metrics.clone(), shutdown);
    let ns = io.of("/");
    // The WebSocket upgrades this node relayed to their session's owner so far.
    ns.on("upgrades-relayed", move |mut ev| {
        if let Some(ack) = ev.take_ack() {
            let relayed = metrics
                .upgrades_relayed
                .load(std::sync::atomic::Ordering::Relaxed);
            let _ = ack.send(json!(relayed));
        }
    });
    let node = name.clone();
    ns.on_connection(move |socket| {
        socket.set_data(json!({ "node": node }));
        if socket.auth().get("quiet").and_then(Value::as_bool) != Some(true) {
            emit_auth(socket);
        }
    });
    cluster_requests(&ns, name);
    ns.on("join", |mut ev| {
        if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
            ev.socket.join(&[room]);
        }
        ack_true(&mut ev);
    });
    ns.on("leave", |mut ev| {
        if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
            ev.socket.leave(room);
        }
        ack_true(&mut ev);
    });
    // Acked once the broadcast is durable in the cluster (at once without a log).
    ns.on("broadcast", |mut ev| {
        let Some((op, event, payload)) = broadcast(&ev, false) else {
            return ack_true(&mut ev);
        };
        let ack = ev.take_ack();
        // Emitted now, in the order the events came; only the ack waits.
        op.emit_durable_then(&event, payload, move |result| durable_ack(ack, result));
    });
    ns.on("broadcast-except-self", |mut ev| {
        if let Some((op, event, payload)) = broadcast(&ev, true) {
            op.emit(&event, payload);
        }
        ack_true(&mut ev);
    });
    ns.on("rooms", |mut ev| {
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send(json!(ev.socket.rooms()));
        }
    });
    ns.on("message", |ev| {
        let _ = ev.socket.emit("message-back", ev.payload.clone());
    });
    ns.on("message-with-ack", |mut ev| {
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send(ev.payload.clone());
        }
    });
    ns.on("request-ack", request_ack);
    ns.on("disconnect-me", |ev| ev.socket.disconnect());
    io
}

/// The cluster-wide requests of the contract (tests/interop/cluster/CONTRACT.md).
fn cluster_requests(ns: &std::sync::Arc<switchboard_engine::Namespace>, name: String) {
    use switchboard_engine::adapter::SocketInfo;
    use switchboard_engine::sio::BroadcastOperator;
    fn target(
        ns: &std::sync::Arc<switchboard_engine::Namespace>,
        room: Option<&Value>,
    ) -> BroadcastOperator {
        match room.and_then(Value::as_str) {
            Some(room) => ns.to(room),
            None => ns.all(),
        }
    }
    fn answer(ev: &mut switchboard_engine::Event, value: Value) {
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send(value);
        }
    }
    let me = name.clone();
    ns.on("whoami", move |mut ev| answer(&mut ev, json!(me)));
    /// Acks `io.in(room).fetchSockets()` (room|null), each socket as `shape` makes it,
    /// sorted by id.
    fn fetch_answer(mut ev: switchboard_engine::Event, shape: fn(SocketInfo) -> Value) {
        let op = target(ev.socket.ns(), ev.payload.args.first());
        let ack = ev.take_ack();
        tokio::spawn(async move {
            let result = match op.fetch_sockets().await {
                Ok(mut sockets) => {
                    sockets.sort_by(|a, b| a.id.cmp(&b.id));
                    json!(sockets.into_iter().map(shape).collect::<Vec<_>>())
                }
                Err(err) => json!({"error": err.to_string()}),
            };
            if let Some(ack) = ack {
                let _ = ack.send(result);
            }
        });
    }
    ns.on("fetch-sockets", |ev| {
        fetch_answer(ev, |mut s| {
            s.rooms.sort();
            json!({"id": s.id, "rooms": s.rooms, "data": s.data})
        });
    });
    ns.on("fetch-handshake-queries", |ev| {
        fetch_answer(
            ev,
            |s| json!({"id": s.id, "query": s.handshake["query"].clone()}),
        );
    });
    ns.on("sockets-join", |mut ev| {
        if let Some(room) = ev.payload.args.get(1).and_then(Value::as_str) {
            target(ev.socket.ns(), ev.payload.args.first()).sockets_join(&[room]);
        }
        answer(&mut ev, json!(true));
    });
    ns.on("sockets-leave", |mut ev| {
        if let Some(room) = ev.payload.args.get(1).and_then(Value::as_str) {
            target(ev.socket.ns(), ev.payload.args.first()).sockets_leave(room);
        }
        answer(&mut ev, json!(true));
    });
    // `broadcast-flags` (room|null, {except, volatile, local}, event, ...args): the
    // broadcast operator with Node's flags, `io.to(room).except(..).volatile.local`.
    ns.on("broadcast-flags", |mut ev| {
        let mut args = ev.payload.args.clone();
        if args.len() >= 3 {
            let rest = args.split_off(3);
            let flags = &args[1];
            let mut op = target(ev.socket.ns(), args.first());
            let except = flags.get("except").and_then(Value::as_array);
            for room in except.into_iter().flatten().filter_map(Value::as_str) {
                op = op.except(room);
            }
            if flags.get("volatile").and_then(Value::as_bool) == Some(true) {
                op = op.volatile();
            }
            if flags.get("local").and_then(Value::as_bool) == Some(true) {
                op = op.local();
            }
            if let Some(event) = args[2].as_str() {
                let payload = Payload {
                    args: rest,
                    binary: ev.payload.binary.clone(),
                };
                op.emit(event, payload);
            }
        }
        answer(&mut ev, json!(true));
    });
    ns.on("disconnect-sockets", |mut ev| {
        let close = ev.payload.args.get(1).and_then(Value::as_bool) == Some(true);
        let op = target(ev.socket.ns(), ev.payload.args.first());
        answer(&mut ev, json!(true));
        op.disconnect_sockets(close);
    });
    ns.on("server-side-emit", |mut ev| {
        ev.socket.ns().server_side_emit(ev.payload.args.clone());
        answer(&mut ev, json!(true));
    });
    ns.on("server-side-emit-with-ack", |mut ev| {
        let ns = ev.socket.ns().clone();
        let ack = ev.take_ack();
        tokio::spawn(async move {
            let result = match ns
                .server_side_emit_with_ack(vec![json!("whoami")], Duration::from_secs(5))
                .await
            {
                Ok(mut names) => {
                    names.sort_by_key(|v| v.to_string());
                    json!(names)
                }
                Err(_) => json!({"error": "timeout", "responses": []}),
            };
            if let Some(ack) = ack {
                let _ = ack.send(result);
            }
        });
    });
    ns.on("server-count", |mut ev| {
        let ns = ev.socket.ns().clone();
        let ack = ev.take_ack();
        tokio::spawn(async move {
            let n = ns.server_count().await.unwrap_or(1);
            if let Some(ack) = ack {
                let _ = ack.send(json!(n));
            }
        });
    });
    ns.on("broadcast-with-ack", |mut ev| {
        let mut args = ev.payload.args.clone();
        let ack = ev.take_ack();
        if args.len() < 2 {
            return;
        }
        let rest = args.split_off(2);
        let op = target(ev.socket.ns(), args.first());
        let event = args[1].as_str().unwrap_or_default().to_owned();
        let payload = Payload {
            args: rest,
            binary: ev.payload.binary.clone(),
        };
        tokio::spawn(async move {
            let result = match op
                .emit_with_ack(&event, payload, Duration::from_secs(3))
                .await
            {
                Ok(replies) => {
                    let mut firsts: Vec<Value> = replies
                        .into_iter()
                        .map(|p| p.args.into_iter().next().unwrap_or(Value::Null))
                        .collect();
                    firsts.sort_by_key(|v| v.to_string());
                    json!(firsts)
                }
                Err(_) => json!({"error": "timeout"}),
            };
            if let Some(ack) = ack {
                let _ = ack.send(result);
            }
        });
    });
    ns.handlers().on_server_side_emit(move |ns, args, ack| {
        let event = args
            .first()
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if event == "whoami" {
            if let Some(ack) = ack {
                ack(json!(name));
            }
            return;
        }
        ns.all().local().emit("server-side", args);
        if let Some(ack) = ack {
            ack(json!(true));
        }
    });
}

fn ack_true(ev: &mut switchboard_engine::Event) {
    if let Some(ack) = ev.take_ack() {
        let _ = ack.send(json!(true));
    }
}

/// Answers a `broadcast` once its durable emit resolved.
fn durable_ack(
    ack: Option<switchboard_engine::sio::AckSender>,
    result: Result<usize, switchboard_engine::sio::DurableEmitError>,
) {
    let answer = match result {
        Ok(_) => json!(true),
        Err(err) => json!({ "error": err.to_string() }),
    };
    if let Some(ack) = ack {
        let _ = ack.send(answer);
    }
}

/// `broadcast` (room, event, ...args): the broadcast of `event` with `args` to `room`
/// (the sender excluded with `except_self`), ready to emit.
fn broadcast(
    ev: &switchboard_engine::Event,
    except_self: bool,
) -> Option<(switchboard_engine::sio::BroadcastOperator, String, Payload)> {
    let mut args = ev.payload.args.clone();
    if args.len() < 2 {
        return None;
    }
    let rest = args.split_off(2);
    let (Some(room), Some(event)) = (args[0].as_str(), args[1].as_str()) else {
        return None;
    };
    let payload = Payload {
        args: rest,
        binary: ev.payload.binary.clone(),
    };
    let op = if except_self {
        ev.socket.to(room)
    } else {
        ev.socket.ns().to(room)
    };
    Some((op, event.to_owned(), payload))
}

/// `request-ack` (event, ...args): asks the client for an ack and reports the answer.
fn request_ack(ev: switchboard_engine::Event) {
    let mut args = ev.payload.args.clone();
    if args.is_empty() {
        return;
    }
    let rest = args.split_off(1);
    let Some(event) = args[0].as_str() else {
        return;
    };
    let payload = Payload {
        args: rest,
        binary: ev.payload.binary.clone(),
    };
    let socket = ev.socket.clone();
    let answer = socket.emit_with_ack(event, payload, REQUEST_ACK_TIMEOUT);
    tokio::spawn(async move {
        let result = match answer.await {
            Ok(reply) => Payload {
                args: vec![Value::Array(reply.args)],
                binary: reply.binary,
            },
            Err(_) => Payload::from(json!({ "error": "timeout" })),
        };
        let _ = socket.emit("request-ack-result", result);
    });
}
