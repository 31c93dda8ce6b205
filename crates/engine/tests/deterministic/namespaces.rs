//! Namespaces: refusal of unknown ones, middleware errors, dynamic creation, several
//! namespaces over one connection, server-side disconnect and acks.

use std::time::Duration;

use serde_json::json;
use switchboard_engine::ConnectError;

use super::harness::{Client, config, server};

#[tokio::test(start_paused = true)]
async fn unknown_namespace_gets_invalid_namespace() {
    let io = server(config());
    io.of("/");
    let client = Client::handshake(&io).await;
    client.post("40/nope,").await;
    assert_eq!(
        client.get().await,
        r#"44/nope,{"message":"Invalid namespace"}"#
    );
}

#[tokio::test(start_paused = true)]
async fn middleware_can_refuse_with_a_message_and_data() {
    let io = server(config());
    io.of("/private").use_middleware(|socket| async move {
        if socket.auth()["token"] == "secret" {
            Ok(())
        } else {
            Err(ConnectError::new("unauthorized").with_data(json!({"hint": "send a token"})))
        }
    });
    let client = Client::handshake(&io).await;
    client.post(r#"40/private,{"token":"wrong"}"#).await;
    assert_eq!(
        client.get().await,
        r#"44/private,{"message":"unauthorized","data":{"hint":"send a token"}}"#
    );
    client.post(r#"40/private,{"token":"secret"}"#).await;
    assert!(client.get().await.starts_with("40/private,{\"sid\":"));
}

#[tokio::test(start_paused = true)]
async fn dynamic_namespaces_are_created_on_first_connection() {
    let io = server(config());
    let handlers = io.of_matching(|name| name.starts_with("/dyn-"));
    handlers.on_connection(|socket| {
        let _ = socket.emit("welcome", json!(socket.namespace()));
    });
    let client = Client::handshake(&io).await;
    client.post("40/dyn-42,").await;
    let body = client.get().await;
    assert!(body.starts_with("40/dyn-42,{\"sid\":"), "{body}");
    assert!(
        body.ends_with(r#"42/dyn-42,["welcome","/dyn-42"]"#),
        "{body}"
    );
    assert!(io.namespaces().iter().any(|ns| ns.name() == "/dyn-42"));
    client.post("40/other,").await;
    assert_eq!(
        client.get().await,
        r#"44/other,{"message":"Invalid namespace"}"#
    );
}

#[tokio::test(start_paused = true)]
async fn two_namespaces_share_one_connection() {
    let io = server(config());
    io.of("/");
    io.of("/b").on("ping", |mut ev| {
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send(json!("pong"));
        }
    });
    let client = Client::connected(&io).await;
    client.post("40/b,").await;
    assert!(client.get().await.starts_with("40/b,"));
    client.post(r#"42/b,7["ping"]"#).await;
    assert_eq!(client.get().await, r#"43/b,7["pong"]"#);
    client.post("41/b,").await;
    assert_eq!(io.of("/b").socket_count(), 0);
    assert_eq!(io.of("/").socket_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn server_to_client_ack_resolves_and_times_out() {
    let io = server(config());
    let client = Client::connected(&io).await;
    let socket = io.of("/").sockets().pop().unwrap();
    let answer = tokio::spawn(socket.emit_with_ack("q", json!(1), Duration::from_secs(5)));
    assert_eq!(client.get().await, r#"420["q",1]"#);
    client.post(r#"430["a",2]"#).await;
    let reply = answer.await.unwrap().unwrap();
    assert_eq!(reply.args, vec![json!("a"), json!(2)]);
    let late = tokio::spawn(socket.emit_with_ack("q", json!(2), Duration::from_millis(100)));
    assert_eq!(
        late.await.unwrap(),
        Err(switchboard_engine::AckError::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn server_disconnect_sends_disconnect_packet_and_runs_handlers() {
    let io = server(config());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let ns = io.of("/");
    ns.on_disconnect(move |_, reason| seen2.lock().unwrap().push(reason.as_str()));
    let client = Client::connected(&io).await;
    ns.sockets().pop().unwrap().disconnect();
    assert_eq!(client.get().await, "41");
    assert_eq!(*seen.lock().unwrap(), vec!["server namespace disconnect"]);
    assert_eq!(ns.socket_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn rooms_report_occupied_and_vacated_once_each() {
    let io = server(config());
    let ns = io.of("/");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (a, b) = (log.clone(), log.clone());
    ns.handlers()
        .on_room_occupied(move |_, room| a.lock().unwrap().push(format!("+{room}")));
    ns.handlers()
        .on_room_vacated(move |_, room| b.lock().unwrap().push(format!("-{room}")));
    let first = Client::connected(&io).await;
    let second = Client::connected(&io).await;
    let sockets = ns.sockets();
    sockets[0].join(&["lobby"]);
    sockets[1].join(&["lobby"]);
    sockets[0].leave("lobby");
    second.post("41").await;
    first.post("41").await;
    assert_eq!(*log.lock().unwrap(), vec!["+lobby", "-lobby"]);
}

#[tokio::test(start_paused = true)]
async fn selections_fetch_join_leave_and_disconnect_sockets() {
    let io = server(config());
    let ns = io.of("/");
    let clients = [
        Client::connected(&io).await,
        Client::connected(&io).await,
        Client::connected(&io).await,
    ];
    let sockets = ns.sockets();
    sockets[0].join(&["a"]);
    sockets[1].join(&["a"]);
    assert_eq!(ns.to("a").sockets().len(), 2);
    assert_eq!(
        ns.to("a").except(sockets[0].id().as_str()).sockets().len(),
        1
    );
    assert_eq!(ns.to("a").sockets_join(&["b"]), 2);
    assert_eq!(ns.adapter().room_size("b"), 2);
    assert_eq!(ns.all().except("a").sockets().len(), 1);
    assert_eq!(ns.to("b").sockets_leave("b"), 2);
    assert_eq!(ns.adapter().room_size("b"), 0);
    assert_eq!(ns.to("a").disconnect_sockets(false), 2);
    assert_eq!(ns.socket_count(), 1);
    // Two of the three clients were in room "a": each of those gets the disconnect
    // packet; the third only sees a heartbeat ping.
    let mut disconnected = 0;
    for c in &clients {
        if c.get().await.split('\x1e').any(|p| p == "41") {
            disconnected += 1;
        }
    }
    assert_eq!(disconnected, 2);
}

/// Node runs a socket's `connection` handlers before any of its events. Here the
/// CONNECT answer goes out before the handlers run (on another thread after async
/// middleware), so an event the client sends at once must wait for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wait_for_the_connection_handlers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, mpsc};

    let io = server(config());
    let ns = io.of("/");
    ns.use_middleware(|_| async { Ok(()) });
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let connected = Arc::new(AtomicBool::new(false));
    let flag = connected.clone();
    ns.on_connection(move |_| {
        let _ = started_tx.send(());
        // Hold the handler until the client's event has reached the server.
        let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
        flag.store(true, Ordering::SeqCst);
    });
    let (seen_tx, seen_rx) = mpsc::channel::<bool>();
    let seen_tx = Mutex::new(seen_tx);
    let flag = connected.clone();
    ns.on("ev", move |_| {
        let _ = seen_tx.lock().unwrap().send(flag.load(Ordering::SeqCst));
    });
    let client = Client::handshake(&io).await;
    client.post("40").await;
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("connection handler started");
    client.post(r#"42["ev"]"#).await;
    go_tx.send(()).unwrap();
    let seen_after_handlers =
        tokio::task::spawn_blocking(move || seen_rx.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap()
            .expect("event handled");
    assert!(
        seen_after_handlers,
        "the event ran before the connection handler finished"
    );
}
