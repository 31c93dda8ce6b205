//! A socket's connection handlers against a close from elsewhere: the server
//! disconnecting it from another task (the HTTP API, the Admin UI), or its connection
//! closing, while they run on another thread. As in Node, the
//! disconnect handlers run after the connection handlers, never before, so nothing a
//! connection handler does outlives the socket. (Real threads, not the paused clock:
//! the race is between two of them.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::harness::{Client, Gate, config, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_disconnected_while_its_connection_handler_runs_is_disconnected_after_it() {
    let io = server(config());
    let order = Arc::new(Mutex::new(Vec::new()));
    let gate = Gate::new();
    let (seen, held) = (order.clone(), gate.clone());
    io.of("/").on_connection(move |socket| {
        socket.join(&["before"]);
        // Blocks this thread until the test has had the client leave.
        held.hold();
        socket.join(&["after"]);
        seen.lock().unwrap().push("connection handler done");
    });
    let seen = order.clone();
    io.of("/").on_disconnect(move |_socket, _reason| {
        seen.lock().unwrap().push("disconnected");
    });

    let client = Client::handshake(&io).await;
    let query = client.query();
    let connecting = {
        let io = io.clone();
        tokio::spawn(
            async move { super::harness::request(&io, http::Method::POST, &query, "40").await },
        )
    };
    gate.entered().await;
    // Disconnected from elsewhere while its connection handler is still running.
    let socket = io.of("/").sockets().pop().expect("registered");
    socket.disconnect();
    gate.open();
    connecting.await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while order.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            order.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *order.lock().unwrap(),
        ["connection handler done", "disconnected"]
    );
    let ns = io.of("/");
    let adapter = ns.adapter();
    assert_eq!(
        (adapter.room_size("before"), adapter.room_size("after")),
        (0, 0),
        "no room keeps the socket"
    );
    assert_eq!(io.of("/").socket_count(), 0);
}

/// A connection handler that panics ends the socket's early phase: its events reach
/// their handlers, and its disconnect handlers run when it leaves, instead of both
/// waiting for handlers that will never finish.
#[tokio::test(start_paused = true)]
async fn a_panicking_connection_handler_does_not_hold_the_sockets_events_or_close() {
    let io = server(config());
    let seen = Arc::new(Mutex::new(Vec::new()));
    // A middleware: the connection handlers run in a task of their own, which the
    // panic ends.
    io.of("/").use_middleware(|_socket| async { Ok(()) });
    io.of("/")
        .on_connection(|_socket| panic!("a handler's bug"));
    let events = seen.clone();
    io.of("/")
        .on("ping", move |_event| events.lock().unwrap().push("ping"));
    let left = seen.clone();
    io.of("/")
        .on_disconnect(move |_socket, _reason| left.lock().unwrap().push("disconnected"));
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let answer = client.get().await;
    assert!(answer.starts_with("40{"), "{answer}");
    client.post("42[\"ping\"]").await;
    client.post("41").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(*seen.lock().unwrap(), ["ping", "disconnected"]);
    assert_eq!(io.of("/").socket_count(), 0);
}

/// A namespace a pattern made is let go only once its last socket's connection
/// handlers are done: a socket disconnected while they run, then a handler that
/// panics, leaves no room joined and the namespace let go (gone from the server), not
/// held for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pattern_namespace_outlives_its_last_sockets_handlers_then_goes() {
    let io = server(config());
    let gate = Gate::new();
    let held = gate.clone();
    let handlers = io.of_matching(|name| name.starts_with("/tenant-"));
    // A middleware: the handlers run in a task of their own, which the panic ends.
    handlers.use_middleware(|_socket| async { Ok(()) });
    let first = std::sync::atomic::AtomicBool::new(true);
    handlers.on_connection(move |socket| {
        if !first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        held.hold();
        socket.join(&["late"]);
        panic!("a handler's bug, after the socket was closed");
    });
    let client = Client::handshake(&io).await;
    client.post("40/tenant-a,").await;
    gate.entered().await;
    let ns = io.namespace("/tenant-a").expect("made by the pattern");
    ns.sockets().pop().expect("registered").disconnect();
    // Another socket comes and goes meanwhile: its leaving lets go of a namespace
    // with no socket, but not of one whose last socket's handlers still run.
    let other = Client::handshake(&io).await;
    other.post("40/tenant-a,").await;
    assert!(other.get().await.starts_with("40/tenant-a,"));
    other.post("41/tenant-a,").await;
    assert!(
        io.namespace("/tenant-a").is_some(),
        "kept while the handlers run"
    );
    gate.open();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while io.namespace("/tenant-a").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the namespace was never let go"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ns.adapter().room_size("late"), 0);
}
