//! Namespaces: refusal of unknown ones, middleware errors, dynamic creation, several
//! namespaces over one connection, server-side disconnect and acks.

use std::time::Duration;

use serde_json::json;
use switchboard_engine::{ConnectError, Payload};

use super::harness::{Client, PING_INTERVAL, PING_TIMEOUT, config, disconnects_seen, server};

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

/// A connect middleware that panics refuses that CONNECT, and the namespace can be
/// joined again on the same connection: before, the panic ended the middleware's task
/// with the namespace still marked as connecting, and every later CONNECT to it was
/// refused.
#[tokio::test(start_paused = true)]
async fn a_panicking_middleware_refuses_and_the_namespace_can_be_joined_again() {
    let io = server(config());
    io.of("/fragile").use_middleware(|socket| async move {
        if socket.auth()["boom"] == true {
            panic!("a middleware's bug");
        }
        Ok(())
    });
    let client = Client::handshake(&io).await;
    client.post(r#"40/fragile,{"boom":true}"#).await;
    assert_eq!(
        client.get().await,
        r#"44/fragile,{"message":"server error"}"#
    );
    client.post(r#"40/fragile,{"boom":false}"#).await;
    assert!(client.get().await.starts_with("40/fragile,{\"sid\":"));
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

/// A client that never answers holds at most `MAX_PENDING_ACKS` acknowledgements
/// (entries, channels, timers) on the server: the next emit with ack is refused
/// without being sent, and a broadcast with acks leaves the socket out of its count,
/// so it resolves instead of waiting out its timeout. Once the waiting ones time out,
/// the socket takes acknowledgements again.
#[tokio::test(start_paused = true)]
async fn a_client_that_never_acknowledges_holds_a_bounded_number_of_acks() {
    use switchboard_engine::sio::MAX_PENDING_ACKS;
    let io = server(slow_heartbeat());
    let client = Client::connected(&io).await;
    let socket = io.of("/").sockets().pop().unwrap();
    let mut waiting = Vec::new();
    for i in 0..MAX_PENDING_ACKS {
        waiting.push(tokio::spawn(socket.emit_with_ack(
            "q",
            json!(i),
            Duration::from_secs(10),
        )));
        if i % 100 == 99 {
            client.get().await;
        }
    }
    client.get().await;
    assert_eq!(
        socket
            .emit_with_ack("q", json!("more"), Duration::from_secs(10))
            .await,
        Err(switchboard_engine::AckError::TooManyWaiting)
    );
    let answers = io
        .of("/")
        .all()
        .emit_with_ack("q", json!("all"), Duration::from_secs(5))
        .await;
    assert_eq!(
        answers.map(|a| a.len()),
        Ok(0),
        "resolved without the socket"
    );
    tokio::time::sleep(Duration::from_secs(11)).await;
    for w in waiting {
        assert_eq!(w.await.unwrap(), Err(switchboard_engine::AckError::Timeout));
    }
    let again = tokio::spawn(socket.emit_with_ack("q", json!("again"), Duration::from_secs(5)));
    // Sent (after what the polls above left in the queue).
    while !client.get().await.ends_with(r#"["q","again"]"#) {}
    drop(again);
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

/// A disconnect handler can tell a socket that left its namespace on an open
/// connection from one whose connection closed (the rules keep an open connection's
/// rate-limit bucket for its next CONNECT, and drop a closed one's at once).
#[tokio::test(start_paused = true)]
async fn a_disconnect_handler_sees_whether_the_connection_is_still_open() {
    let io = server(config());
    let ns = io.of("/");
    let seen = disconnects_seen(&ns);
    let left = Client::connected(&io).await;
    left.post("41").await;
    let closed = Client::connected(&io).await;
    closed.post("1").await;
    switchboard_test_support::eventually("both disconnects", || async {
        seen.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            ("client namespace disconnect", false),
            ("transport close", true)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn rooms_report_occupied_and_vacated_once_each() {
    let io = server(config());
    let ns = io.of("/");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (a, b) = (log.clone(), log.clone());
    ns.handlers()
        .on_room_occupied(move |_, room, _| a.lock().unwrap().push(format!("+{room}")));
    ns.handlers()
        .on_room_vacated(move |_, room, _| b.lock().unwrap().push(format!("-{room}")));
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

/// `Handlers::set_max_rooms_per_socket` holds `socketsJoin` (the application's, and
/// another node's through the adapter) to the bound: rooms a socket is already in, or
/// its own id room, take no place; the rest past the bound are not joined and counted.
#[tokio::test(start_paused = true)]
async fn sockets_join_holds_each_socket_to_the_namespace_bound() {
    let io = server(config());
    let ns = io.of("/");
    ns.handlers().set_max_rooms_per_socket(3);
    let _clients = [Client::connected(&io).await, Client::connected(&io).await];
    let sockets = ns.sockets();
    sockets[0].join(&["a", "b"]);
    let own = sockets[0].id().to_string();
    let refused = || io.engine().metrics().snapshot().room_joins_refused;

    ns.all()
        .sockets_join(&["a", own.as_str(), "c", "d", "e", "f"]);
    let mut first = sockets[0].rooms();
    first.sort();
    let mut expected = vec!["a".to_owned(), "b".to_owned(), "c".to_owned(), own.clone()];
    expected.sort();
    assert_eq!(first, expected);
    // The second socket was in no room: a, the first one's id room, c.
    assert_eq!(sockets[1].rooms().len(), 1 + 3);
    assert!(!sockets[1].rooms().contains(&"d".to_owned()));
    // Each: d, e, f past the bound.
    assert_eq!(refused(), 3 + 3);

    // Without a bound (the engine's default), every room is joined.
    ns.handlers().set_max_rooms_per_socket(0);
    ns.all().sockets_join(&["g", "h"]);
    assert_eq!(sockets[0].rooms().len(), 1 + 5);
    assert_eq!(refused(), 6);
}

/// Bounded joins of one socket made at the same moment on several threads (another
/// node's `socketsJoin`, a backend's replies) each count the rooms the others joined:
/// together they never pass the bound. (Each counted, then joined, they did: every
/// thread saw room for its own.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_at_once_on_several_threads_stay_within_the_bound() {
    const MAX: usize = 8;
    const THREADS: usize = 4;
    let io = server(config());
    let ns = io.of("/");
    let _client = Client::connected(&io).await;
    let socket = ns.sockets().pop().expect("the socket");
    for round in 0..200 {
        let start = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (socket, start) = (&socket, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..MAX {
                        let room = format!("r{round}-{t}-{i}");
                        socket.join_within(&[room.as_str()], MAX);
                    }
                });
            }
        });
        let rooms = socket.rooms().len() - 1;
        assert_eq!(
            rooms, MAX,
            "round {round}: {rooms} rooms joined, bound {MAX}"
        );
        for room in socket.rooms() {
            if room != socket.id().to_string() {
                socket.leave(&room);
            }
        }
    }
}

/// Changes of different keys of a socket's data made at once on two threads (a token
/// refresh storing its claims, the Admin UI marking the socket) both hold with
/// `update_data`: each read, then `set_data`, lost one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_changed_in_place_at_once_keeps_both_changes() {
    let io = server(config());
    let ns = io.of("/");
    let _client = Client::connected(&io).await;
    let socket = ns.sockets().pop().expect("the socket");
    for round in 0..200 {
        socket.set_data(json!({}));
        let start = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            for key in ["a", "b"] {
                let (socket, start) = (&socket, &start);
                s.spawn(move || {
                    start.wait();
                    socket.update_data(|data| {
                        data[key] = json!(round);
                    });
                });
            }
        });
        assert_eq!(
            socket.data(),
            json!({"a": round, "b": round}),
            "round {round}"
        );
    }
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

/// The namespaces a pattern created that exist now (listed, as on /metrics).
fn listed(io: &switchboard_engine::Io) -> Vec<String> {
    let mut names: Vec<String> = io
        .namespaces()
        .iter()
        .map(|ns| ns.name().to_owned())
        .filter(|n| n.starts_with("/tenant-"))
        .collect();
    names.sort();
    names
}

/// The client closes its Engine.IO connection (and takes the closing noop, so the
/// server finishes the session at once).
async fn close_connection(client: &Client) {
    client.post("1").await;
    assert_eq!(client.get_raw().await.1, "6");
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// An adapter that counts `init` and `close` calls, to see a cluster adapter told.
#[derive(Debug, Default)]
struct Counting {
    index: switchboard_engine::adapter::MemoryAdapter,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl switchboard_engine::adapter::Adapter for Counting {
    super::harness::memory_index!(index);
    fn init(&self, ns: &std::sync::Arc<switchboard_engine::Namespace>) {
        self.log.lock().unwrap().push(format!("init {}", ns.name()));
    }
    fn close(&self, ns: &switchboard_engine::Namespace) {
        self.log
            .lock()
            .unwrap()
            .push(format!("close {}", ns.name()));
    }
}

/// A server whose adapters log their `init` and `close` calls into the returned log.
fn counting_server() -> (
    switchboard_engine::Io,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shared = log.clone();
    let factory: switchboard_engine::adapter::AdapterFactory = std::sync::Arc::new(move |_| {
        std::sync::Arc::new(Counting {
            log: shared.clone(),
            ..Counting::default()
        }) as std::sync::Arc<dyn switchboard_engine::adapter::Adapter>
    });
    let io = switchboard_engine::Io::with_adapter(
        config(),
        factory,
        std::sync::Arc::new(switchboard_engine::Metrics::default()),
        switchboard_engine::Shutdown::never(),
    );
    log.lock().unwrap().clear();
    (io, log)
}

/// Node's `cleanupEmptyChildNamespaces`: a namespace a pattern created goes away with
/// its last socket (namespace disconnect or closed connection), and its adapter is
/// closed; a declared namespace stays.
#[tokio::test(start_paused = true)]
async fn a_pattern_namespace_goes_away_with_its_last_socket() {
    let (io, log) = counting_server();
    io.of_matching(|name| name.starts_with("/tenant-"));
    let first = Client::handshake(&io).await;
    first.post("40/tenant-a,").await;
    assert!(first.get().await.starts_with("40/tenant-a,{\"sid\":"));
    let second = Client::handshake(&io).await;
    second.post("40/tenant-a,").await;
    assert!(second.get().await.starts_with("40/tenant-a,{\"sid\":"));
    assert_eq!(listed(&io), ["/tenant-a"]);
    assert_eq!(*log.lock().unwrap(), ["init /tenant-a"]);

    first.post("41/tenant-a,").await;
    assert_eq!(listed(&io), ["/tenant-a"], "one socket is left");
    close_connection(&second).await;
    assert_eq!(listed(&io), Vec::<String>::new());
    assert!(io.namespace("/tenant-a").is_none());
    assert_eq!(*log.lock().unwrap(), ["init /tenant-a", "close /tenant-a"]);

    // It comes back (a new one) on the next connection.
    first.post("40/tenant-a,").await;
    assert!(first.get().await.starts_with("40/tenant-a,{\"sid\":"));
    assert_eq!(listed(&io), ["/tenant-a"]);
    assert_eq!(io.namespace("/tenant-a").unwrap().socket_count(), 1);

    // A namespace declared with `of` stays, even when a pattern matches it.
    io.of("/tenant-static");
    let third = Client::handshake(&io).await;
    third.post("40/tenant-static,").await;
    assert!(third.get().await.starts_with("40/tenant-static,"));
    third.post("41/tenant-static,").await;
    assert!(io.namespace("/tenant-static").is_some());
}

/// A namespace a pattern accepts exists only once a connection passed its middleware:
/// nothing is listed (or subscribed) while the middleware runs, and nothing is left
/// when it refuses.
#[tokio::test(start_paused = true)]
async fn a_refused_connection_leaves_no_pattern_namespace_behind() {
    let (io, log) = counting_server();
    let handlers = io.of_matching(|name| name.starts_with("/tenant-"));
    // The namespace the middleware saw, to check that nothing keeps it afterwards.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::sync::Weak::new()));
    let seen_in_middleware = seen.clone();
    handlers.use_middleware(move |socket| {
        *seen_in_middleware.lock().unwrap() = std::sync::Arc::downgrade(socket.ns());
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            // Rooms joined before a refusal are left again.
            socket.join(&["user:x"]);
            match socket.auth()["token"] == "good" {
                true => Ok(()),
                false => Err(ConnectError::new("unauthorized")),
            }
        }
    });
    let client = Client::handshake(&io).await;
    client.post(r#"40/tenant-random,{"token":"bad"}"#).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        listed(&io),
        Vec::<String>::new(),
        "listed during middleware"
    );
    assert_eq!(
        client.get().await,
        r#"44/tenant-random,{"message":"unauthorized"}"#
    );
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(listed(&io), Vec::<String>::new());
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    assert!(
        seen.lock().unwrap().upgrade().is_none(),
        "the refused connection's namespace is still held"
    );

    client.post(r#"40/tenant-random,{"token":"good"}"#).await;
    assert!(client.get().await.starts_with("40/tenant-random,{\"sid\":"));
    let ns = io
        .namespace("/tenant-random")
        .expect("created once accepted");
    assert_eq!(ns.adapter().room_size("user:x"), 1);
    assert_eq!(*log.lock().unwrap(), ["init /tenant-random"]);
}

/// Names a pattern may not create: globs and separators of Redis channel names, control
/// characters, more than 128 bytes. Refused as unknown namespaces, nothing created.
#[tokio::test(start_paused = true)]
async fn bad_pattern_names_are_refused_and_create_nothing() {
    let (io, log) = counting_server();
    io.of_matching(|name| name.starts_with("/tenant-"));
    let long = format!("/tenant-{}", "x".repeat(1000));
    let at_limit = format!("/tenant-{}", "x".repeat(128 - "/tenant-".len()));
    let client = Client::handshake(&io).await;
    for name in [
        "/tenant-*",
        "/tenant-#x",
        "/tenant-a?",
        "/tenant-[ab]",
        "/tenant-a\\b",
        "/tenant-\u{7}",
        "/tenant-\u{85}",
        long.as_str(),
    ] {
        client.post(&format!("40{name},")).await;
        assert_eq!(
            client.get().await,
            format!(r#"44{name},{{"message":"Invalid namespace"}}"#),
            "{name:?}"
        );
    }
    assert_eq!(listed(&io), Vec::<String>::new());
    assert!(log.lock().unwrap().is_empty(), "{:?}", log.lock().unwrap());
    client.post(&format!("40{at_limit},")).await;
    assert!(client.get().await.starts_with(&format!("40{at_limit},")));
}

/// The last socket leaving while another connection joins: the joining socket always
/// ends up in the namespace that is listed, never in a removed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_joining_while_the_last_one_leaves_is_never_orphaned() {
    let io = server(config());
    io.of_matching(|name| name.starts_with("/tenant-"));
    for round in 0..100 {
        let leaving = Client::handshake(&io).await;
        leaving.post("40/tenant-race,").await;
        assert!(leaving.get().await.starts_with("40/tenant-race,"));
        let joining = Client::handshake(&io).await;
        let (left, joined) = tokio::join!(
            tokio::spawn(async move { leaving.post("41/tenant-race,").await }),
            tokio::spawn(async move {
                joining.post("40/tenant-race,").await;
                joining
            }),
        );
        left.unwrap();
        let joining = joined.unwrap();
        assert!(joining.get().await.starts_with("40/tenant-race,"));
        assert_joined_the_listed_namespace(&io, round);
        joining.post("41/tenant-race,").await;
        assert!(io.namespace("/tenant-race").is_none(), "round {round}");
    }
}

/// With recovery and a window of a few milliseconds, sockets joining while the sweeper
/// removes the emptied namespace: the joining socket always ends up in the listed
/// namespace, and once every socket has left the namespace goes (the sweeper never
/// loses it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_recovery_a_socket_joining_while_the_sweeper_removes_is_never_orphaned() {
    let io = server(recovering(Duration::from_millis(3)));
    io.of_matching(|name| name.starts_with("/tenant-"));
    for round in 0..200u64 {
        let leaving = Client::handshake(&io).await;
        leaving.post("40/tenant-race,").await;
        assert!(leaving.get().await.starts_with("40/tenant-race,"));
        leaving.post("41/tenant-race,").await;
        // Around the end of the window: before it, at it, after it.
        tokio::time::sleep(Duration::from_micros(round % 7 * 1_000)).await;
        let joining = Client::handshake(&io).await;
        joining.post("40/tenant-race,").await;
        assert!(joining.get().await.starts_with("40/tenant-race,"));
        assert_joined_the_listed_namespace(&io, round);
        joining.post("41/tenant-race,").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(listed(&io), Vec::<String>::new());
}

/// With connection state recovery a namespace a pattern created outlives its last
/// socket by the recovery window, so a client dropped by a network blip resumes.
#[tokio::test(start_paused = true)]
async fn with_recovery_an_empty_pattern_namespace_waits_for_the_window() {
    let mut config = config();
    let recovery = switchboard_engine::sio::RecoveryConfig::default();
    config.recovery = Some(recovery);
    let io = server(config);
    io.of_matching(|name| name.starts_with("/tenant-"));
    let client = Client::handshake(&io).await;
    client.post("40/tenant-r,").await;
    assert!(client.get().await.starts_with("40/tenant-r,"));
    close_connection(&client).await;
    assert_eq!(listed(&io), ["/tenant-r"]);
    tokio::time::sleep(recovery.max_disconnection_duration + Duration::from_secs(1)).await;
    assert_eq!(listed(&io), Vec::<String>::new());
}

/// The window of an emptied pattern namespace counts from its last socket's departure:
/// emptied, used again halfway through the window and emptied again, it keeps the
/// second client's session for a whole window from that client's drop, not from the
/// first departure.
#[tokio::test(start_paused = true)]
async fn with_recovery_the_window_counts_from_the_last_socket_to_leave() {
    let window = Duration::from_secs(60);
    let io = server(recovering(window));
    io.of_matching(|name| name.starts_with("/tenant-"));
    let first = Client::handshake(&io).await;
    first.post("40/tenant-r,").await;
    assert!(first.get().await.starts_with("40/tenant-r,"));
    close_connection(&first).await;

    tokio::time::sleep(window / 2).await;
    let second = Client::handshake(&io).await;
    second.post("40/tenant-r,").await;
    let (sid, pid) = sid_and_pid(&second.get().await);
    // Dropped (no pong): its session is kept for the window.
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT + Duration::from_millis(50)).await;
    let _ = second.get_raw().await;

    // Past the first departure's window, well within the second's.
    tokio::time::sleep(window / 2 + Duration::from_secs(5)).await;
    assert_eq!(listed(&io), ["/tenant-r"]);
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40/tenant-r,{{"pid":"{pid}"}}"#))
        .await;
    let (resumed, _) = sid_and_pid(&back.get().await);
    assert_eq!(resumed, sid, "the dropped client resumes its session");
    assert!(io.namespace("/tenant-r").unwrap().sockets()[0].recovered());
    // Emptied for good: gone a window later.
    close_connection(&back).await;
    tokio::time::sleep(window + Duration::from_secs(1)).await;
    assert_eq!(listed(&io), Vec::<String>::new());
}

/// However often sockets come and go, an emptied pattern namespace waits out its window
/// with one task (the server's sweeper): a client cycling CONNECT and DISCONNECT does
/// not pile up a task per departure for the length of the window.
#[tokio::test(start_paused = true)]
async fn with_recovery_sockets_coming_and_going_leave_one_task() {
    let io = server(recovering(Duration::from_secs(120)));
    io.of_matching(|name| name.starts_with("/tenant-"));
    // Ten connections of 50 each: a connection makes 64 CONNECTs in a burst.
    let mut clients = Vec::new();
    for _ in 0..10 {
        clients.push(Client::handshake(&io).await);
    }
    let before = alive_tasks();
    for client in &clients {
        for _ in 0..50 {
            client.post("40/tenant-c,").await;
            assert!(client.get().await.starts_with("40/tenant-c,"));
            client.post("41/tenant-c,").await;
        }
    }
    tokio::task::yield_now().await;
    assert_eq!(listed(&io), ["/tenant-c"]);
    assert!(
        alive_tasks() <= before + 1,
        "{} tasks alive after 500 departures, {before} before",
        alive_tasks()
    );
    // And the sweeper removes it a window after the last departure.
    tokio::time::sleep(Duration::from_secs(119)).await;
    assert_eq!(listed(&io), ["/tenant-c"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(listed(&io), Vec::<String>::new());
}

/// One sweeper waits out the windows of every emptied pattern namespace: fifty
/// namespaces emptied a second apart leave one task, not one per namespace, and each
/// goes a window after its own last departure, in the order they emptied.
#[tokio::test(start_paused = true)]
async fn with_recovery_one_sweeper_removes_every_emptied_namespace_in_turn() {
    let window = Duration::from_secs(60);
    let io = server(recovering(window));
    io.of_matching(|name| name.starts_with("/tenant-"));
    let before = alive_tasks();
    for n in 0..50 {
        join_and_leave(&io, &format!("/tenant-{n:02}"), "").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(listed(&io).len(), 50);
    assert!(
        alive_tasks() <= before + 1,
        "{} tasks alive for 50 emptied namespaces, {before} before",
        alive_tasks()
    );
    // Namespace n emptied at about n s, so its window ends at n + 60 s; it is 50 s
    // now: at 69.5 s, the first ten are gone.
    tokio::time::sleep(Duration::from_millis(19_500)).await;
    let left = listed(&io);
    assert_eq!(left.len(), 40, "{left:?}");
    assert_eq!(left[0], "/tenant-10");
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(listed(&io), Vec::<String>::new());
    tokio::task::yield_now().await;
    assert!(
        alive_tasks() <= before,
        "the sweeper ends with nothing to wait for"
    );
}

/// A CONNECT to an emptied namespace takes it off the list; refused, it goes back with
/// the window of its last socket's departure, not a new one. That window may end
/// before every window the sweeper waits for (here: the CONNECT's middleware ran past
/// it), so the sweeper is woken and the namespace goes at once, not with the next.
#[tokio::test(start_paused = true)]
async fn with_recovery_a_refused_connect_neither_extends_nor_delays_a_window() {
    let window = Duration::from_secs(60);
    let io = server(recovering(window));
    let handlers = io.of_matching(|name| name.starts_with("/tenant-"));
    handlers.use_middleware(|socket| async move {
        if socket.auth()["token"] == "good" {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(45)).await;
        Err(ConnectError::new("unauthorized"))
    });
    for name in ["/tenant-a", "/tenant-b"] {
        join_and_leave(&io, name, r#"{"token":"good"}"#).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // /tenant-a emptied at 0 s and /tenant-b at 10 s; at 20 s a CONNECT to /tenant-a
    // waits 45 s for its middleware, which refuses it at 65 s.
    let client = Client::handshake(&io).await;
    client.post(r#"40/tenant-a,{"token":"bad"}"#).await;
    let mut refused = false;
    while !refused {
        // Answers pings meanwhile.
        for packet in client.get().await.split('\x1e') {
            match packet {
                "2" => client.post("3").await,
                answer => {
                    assert_eq!(answer, r#"44/tenant-a,{"message":"unauthorized"}"#);
                    refused = true;
                }
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        listed(&io),
        ["/tenant-b"],
        "/tenant-a's window ended at 60 s"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(listed(&io), Vec::<String>::new(), "/tenant-b's at 70 s");
}

/// At most `max_pattern_namespaces` namespaces created from patterns exist at once: a
/// CONNECT that would create one more is refused with a CONNECT_ERROR while every one
/// of them has sockets; declared namespaces do not count; a namespace that goes makes
/// room.
#[tokio::test(start_paused = true)]
async fn pattern_namespaces_past_the_cap_are_refused_while_none_is_idle() {
    let mut config = config();
    config.max_pattern_namespaces = 3;
    let io = server(config);
    io.of_matching(|name| name.starts_with("/tenant-"));
    io.of("/tenant-declared");
    let client = Client::handshake(&io).await;
    for name in ["a", "b", "c"] {
        client.post(&format!("40/tenant-{name},")).await;
        assert!(
            client
                .get()
                .await
                .starts_with(&format!("40/tenant-{name},"))
        );
    }
    client.post("40/tenant-d,").await;
    assert_eq!(
        client.get().await,
        r#"44/tenant-d,{"message":"too many namespaces on this server"}"#
    );
    assert_eq!(
        listed(&io),
        ["/tenant-a", "/tenant-b", "/tenant-c", "/tenant-declared"]
    );
    client.post("40/tenant-declared,").await;
    assert!(client.get().await.starts_with("40/tenant-declared,"));

    client.post("41/tenant-a,").await;
    client.post("40/tenant-d,").await;
    assert!(client.get().await.starts_with("40/tenant-d,"));
    assert_eq!(
        listed(&io),
        ["/tenant-b", "/tenant-c", "/tenant-d", "/tenant-declared"]
    );
}

/// With recovery, emptied namespaces wait out their window; at the cap, a new one takes
/// the place of the one emptied longest ago (its kept sessions go: that client comes
/// back `recovered: false`), counted in `namespaces_evicted`. Only when none is idle is
/// a CONNECT refused.
#[tokio::test(start_paused = true)]
async fn at_the_cap_the_namespace_emptied_longest_ago_makes_room() {
    let mut config = recovering(Duration::from_secs(60));
    config.max_pattern_namespaces = 2;
    let io = server(config);
    io.of_matching(|name| name.starts_with("/tenant-"));
    // /tenant-a empties first (a dropped client: its session is kept), then /tenant-b.
    let dropped = Client::handshake(&io).await;
    dropped.post("40/tenant-a,").await;
    let (sid, pid) = sid_and_pid(&dropped.get().await);
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT + Duration::from_millis(50)).await;
    let _ = dropped.get_raw().await;
    let other = Client::handshake(&io).await;
    other.post("40/tenant-b,").await;
    assert!(other.get().await.starts_with("40/tenant-b,"));
    other.post("41/tenant-b,").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(listed(&io), ["/tenant-a", "/tenant-b"]);

    other.post("40/tenant-c,").await;
    assert!(other.get().await.starts_with("40/tenant-c,"));
    assert_eq!(
        listed(&io),
        ["/tenant-b", "/tenant-c"],
        "/tenant-a emptied first"
    );
    let evicted = || io.engine().metrics().snapshot().namespaces_evicted;
    assert_eq!(evicted(), 1);

    // The dropped client comes back: its namespace is new (replacing /tenant-b, the
    // only idle one), its session gone.
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40/tenant-a,{{"pid":"{pid}"}}"#))
        .await;
    let (again, _) = sid_and_pid(&back.get().await);
    assert_ne!(again, sid, "not recovered");
    assert!(!io.namespace("/tenant-a").unwrap().sockets()[0].recovered());
    assert_eq!(listed(&io), ["/tenant-a", "/tenant-c"]);
    assert_eq!(evicted(), 2);

    // Both have sockets now: nothing to replace.
    other.post("40/tenant-d,").await;
    assert_eq!(
        other.get().await,
        r#"44/tenant-d,{"message":"too many namespaces on this server"}"#
    );
    assert_eq!(evicted(), 2);
}

/// The recovery buffers of every namespace share `max_total_bytes`: with room for one
/// kept session, a client dropped from /tenant-a is kept and resumes, while one dropped
/// from /tenant-b afterwards is not (its namespace has nothing of its own to give) and
/// comes back `recovered: false`.
#[tokio::test(start_paused = true)]
async fn pattern_namespaces_share_one_recovery_budget() {
    /// Connects to `nsp` and drops by ping timeout: the sid and pid.
    async fn dropped(io: &switchboard_engine::Io, nsp: &str) -> (String, String) {
        let client = Client::handshake(io).await;
        client.post(&format!("40{nsp},")).await;
        let ids = sid_and_pid(&client.get().await);
        tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT + Duration::from_millis(50)).await;
        let _ = client.get_raw().await;
        ids
    }
    /// Comes back to `nsp` with `pid`: whether the old sid was given back.
    async fn resumed(
        io: &switchboard_engine::Io,
        nsp: &str,
        (sid, pid): &(String, String),
    ) -> bool {
        let back = Client::handshake(io).await;
        back.post(&format!(r#"40{nsp},{{"pid":"{pid}"}}"#)).await;
        sid_and_pid(&back.get().await).0 == *sid
    }
    // What one kept session is charged (every socket's is the same: its id room).
    let probe = server(recovering(Duration::from_secs(60)));
    probe.of_matching(|name| name.starts_with("/tenant-"));
    dropped(&probe, "/tenant-p").await;
    let one = probe
        .namespace("/tenant-p")
        .unwrap()
        .recovery_usage()
        .unwrap()
        .session_bytes;
    assert!(one > 0);

    let mut config = recovering(Duration::from_secs(60));
    if let Some(recovery) = config.recovery.as_mut() {
        recovery.max_total_bytes = one;
    }
    let io = server(config);
    io.of_matching(|name| name.starts_with("/tenant-"));
    let a = dropped(&io, "/tenant-a").await;
    let b = dropped(&io, "/tenant-b").await;
    let usage = |nsp: &str| {
        io.namespace(nsp)
            .unwrap()
            .recovery_usage()
            .unwrap()
            .sessions
    };
    assert_eq!((usage("/tenant-a"), usage("/tenant-b")), (1, 0));
    let counted = || io.engine().metrics().snapshot().recovery_bytes;
    assert_eq!(counted(), one, "the metrics count what the budget holds");
    assert!(
        !resumed(&io, "/tenant-b", &b).await,
        "no room left for /tenant-b's"
    );
    assert!(
        resumed(&io, "/tenant-a", &a).await,
        "/tenant-a's kept session resumes"
    );
    assert_eq!(counted(), 0, "a resumed session is no longer kept");
}

/// `/tenant-race` is listed, with the one socket that joined it in `round`.
fn assert_joined_the_listed_namespace(io: &switchboard_engine::Io, round: impl std::fmt::Display) {
    let ns = io
        .namespace("/tenant-race")
        .expect("listed while a socket is in it");
    assert_eq!(ns.socket_count(), 1, "round {round}");
}

/// Tasks alive on the test's runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// A new client (one each: a test that sleeps would otherwise have to answer pings)
/// joins `nsp` with CONNECT `payload` ("" for none) and leaves it again.
async fn join_and_leave(io: &switchboard_engine::Io, nsp: &str, payload: &str) {
    let client = Client::handshake(io).await;
    client.post(&format!("40{nsp},{payload}")).await;
    let answer = client.get().await;
    assert!(answer.starts_with(&format!("40{nsp},")), "{answer}");
    client.post(&format!("41{nsp},")).await;
}

fn recovering(window: Duration) -> switchboard_engine::SocketIoConfig {
    let mut config = config();
    config.recovery = Some(switchboard_engine::sio::RecoveryConfig {
        max_disconnection_duration: window,
        ..switchboard_engine::sio::RecoveryConfig::default()
    });
    config
}

/// The `sid` and `pid` of a namespace's CONNECT answer (`40/nsp,{..}`).
fn sid_and_pid(body: &str) -> (String, String) {
    let first = body.split('\x1e').next().unwrap();
    let json = &first[first.find('{').unwrap()..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    (
        v["sid"].as_str().unwrap().to_owned(),
        v["pid"].as_str().unwrap().to_owned(),
    )
}

/// The CONNECT payload is bounded (16 KiB by default), refused with a message.
#[tokio::test(start_paused = true)]
async fn a_connect_payload_over_the_limit_is_refused() {
    let io = server(config());
    io.of_matching(|name| name.starts_with("/tenant-"));
    let payload = |kib: usize| format!(r#"{{"token":"{}"}}"#, "t".repeat(kib * 1024 - 12));
    let client = Client::handshake(&io).await;
    client.post(&format!("40/tenant-big,{}", payload(20))).await;
    assert_eq!(
        client.get().await,
        r#"44/tenant-big,{"message":"auth payload too large"}"#
    );
    assert_eq!(listed(&io), Vec::<String>::new());
    client.post(&format!("40{}", payload(20))).await;
    assert_eq!(
        client.get().await,
        r#"44{"message":"auth payload too large"}"#
    );
    client.post(&format!("40/tenant-big,{}", payload(15))).await;
    assert!(client.get().await.starts_with("40/tenant-big,{\"sid\":"));
}

/// The CONNECT payload is there for the middleware and the connection handlers, then
/// forgotten: a socket does not keep (nor show to `fetchSockets`) a token.
#[tokio::test(start_paused = true)]
async fn the_connect_payload_is_forgotten_after_the_connection_handlers() {
    let io = server(config());
    let ns = io.of("/");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (in_middleware, in_handler) = (seen.clone(), seen.clone());
    ns.use_middleware(move |socket| {
        in_middleware.lock().unwrap().push(socket.auth());
        async { Ok(()) }
    });
    ns.on_connection(move |socket| in_handler.lock().unwrap().push(socket.auth()));
    let client = Client::handshake(&io).await;
    client.post(r#"40{"token":"abc"}"#).await;
    assert!(client.get().await.starts_with("40{\"sid\":"));
    let token = json!({"token": "abc"});
    assert_eq!(*seen.lock().unwrap(), [token.clone(), token]);
    let socket = ns.sockets().pop().unwrap();
    assert_eq!(socket.auth(), json!({}));
    assert_eq!(socket.info().handshake["auth"], json!({}));
}

/// The harness's config with a heartbeat slow enough for tests that let seconds pass.
fn slow_heartbeat() -> switchboard_engine::SocketIoConfig {
    let mut config = config();
    config.engine.ping_interval = Duration::from_secs(60);
    config
}

/// One connection may join (or be joining) at most 64 namespaces, and make 64
/// CONNECTs in a burst, then one a second: a polling body of a thousand CONNECTs gets
/// 64 sockets and a refusal for each of the rest, and the connection stays usable. A
/// second later a 65th namespace is refused for the count of namespaces; leaving one
/// makes room for another.
#[tokio::test(start_paused = true)]
async fn one_connection_joins_at_most_64_namespaces() {
    let io = server(slow_heartbeat());
    io.of_matching(|name| name.starts_with("/tenant-"));
    let client = Client::handshake(&io).await;
    let body: Vec<String> = (0..1000).map(|i| format!("40/tenant-{i},")).collect();
    client.post(&body.join("\u{1e}")).await;
    let mut joined = 0;
    let mut refused = 0;
    while joined + refused < 1000 {
        for packet in client.get().await.split('\u{1e}') {
            if packet.starts_with("40/tenant-") {
                joined += 1;
            } else if packet.ends_with(r#",{"message":"too many connects on this connection"}"#) {
                refused += 1;
            } else {
                panic!("unexpected packet {packet}");
            }
        }
    }
    assert_eq!((joined, refused), (64, 936));
    assert_eq!(listed(&io).len(), 64);
    tokio::time::advance(Duration::from_secs(1)).await;
    client.post("40/tenant-more,").await;
    assert_eq!(
        client.get().await,
        r#"44/tenant-more,{"message":"too many namespaces on this connection"}"#
    );
    // Leaving one makes room for another.
    tokio::time::advance(Duration::from_secs(1)).await;
    client.post("41/tenant-0,").await;
    client.post("40/tenant-new,").await;
    assert!(client.get().await.starts_with("40/tenant-new,"));
}

/// Leaving a namespace and connecting to it again makes a new socket, with fresh
/// per-socket bounds and hooks; a connection gets 64 in a burst, then one a second.
/// The 65th CONNECT in a polling body of leave-and-connect pairs is refused at once:
/// no socket, no `connection` handler (and the next leave, of a namespace the client
/// is not in, closes the session, as Node does).
#[tokio::test(start_paused = true)]
async fn a_connection_reconnecting_a_namespace_in_a_loop_gets_one_socket_a_second() {
    let io = server(slow_heartbeat());
    let ns = io.of("/");
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = runs.clone();
    ns.on_connection(move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let refused = r#"44{"message":"too many connects on this connection"}"#;
    let answers = |body: String| body.split('\u{1e}').map(str::to_owned).collect::<Vec<_>>();
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let pairs: Vec<&str> = (0..63).flat_map(|_| ["41", "40"]).collect();
    client.post(&pairs.join("\u{1e}")).await;
    let mut accepted = 0;
    while accepted < 64 {
        for answer in answers(client.get().await) {
            assert!(answer.starts_with("40{\"sid\":"), "{answer}");
            accepted += 1;
        }
    }
    client.post("41\u{1e}40").await;
    assert_eq!(answers(client.get().await), [refused]);
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 64);
    // A second later, one more.
    tokio::time::advance(Duration::from_secs(1)).await;
    client.post("40").await;
    assert!(client.get().await.starts_with("40{\"sid\":"));
    client.post("41\u{1e}40").await;
    assert_eq!(answers(client.get().await), [refused]);
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 65);
}

/// Node queues the CONNECT answer and runs the `connection` handlers in one tick, so a
/// client that hears the answer is already in the rooms they joined. Here the handlers
/// may run on another thread after async middleware, and the answer goes out first: a
/// broadcast to a room a handler joins, sent as soon as the client hears "connected",
/// can miss it. Rules' `auto_join` does not have the race (it joins in the connect
/// middleware, before the answer); handlers of an embedding program do. Listed in the
/// README under "Behaviour that differs from Node".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "open race: the CONNECT answer precedes the connection handlers (README, differences from Node); holding the socket's frames until the handlers ran was reverted in 5df432e"]
async fn the_connect_answer_waits_for_the_connection_handlers() {
    use std::sync::{Mutex, mpsc};

    let io = server(config());
    let ns = io.of("/");
    ns.use_middleware(|_| async { Ok(()) });
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    ns.on_connection(move |socket| {
        let _ = started_tx.send(());
        let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
        socket.join(&["r"]);
        let _ = socket.emit("welcome", Payload::new(vec![]));
    });
    let client = std::sync::Arc::new(Client::handshake(&io).await);
    client.post("40").await;
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .unwrap()
        .expect("connection handler started");
    let poll = {
        let client = client.clone();
        tokio::spawn(async move { client.get().await })
    };
    // Real time on purpose: the handler holds a worker thread; the answer must not
    // go out meanwhile.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !poll.is_finished(),
        "CONNECT answered while the connection handler still ran"
    );
    go_tx.send(()).unwrap();
    let answer = poll.await.unwrap();
    let packets: Vec<&str> = answer.split('\x1e').collect();
    assert!(packets[0].starts_with("40"), "{answer}");
    // What the handler sent comes after the answer, and its room is joined.
    let mut rest: Vec<String> = packets[1..].iter().map(|p| p.to_string()).collect();
    ns.to("r").emit("news", Payload::new(vec![]));
    while rest.len() < 2 {
        rest.extend(client.get().await.split('\x1e').map(str::to_owned));
    }
    assert_eq!(rest, [r#"42["welcome"]"#, r#"42["news"]"#]);
}

/// A fact noted again before the socket has gone is in the diagnosis once: the rules'
/// rate limit notes it for every event still arriving while the socket is told to go
/// (diagnosis.test.mjs saw it twice on a busy machine).
#[tokio::test(start_paused = true)]
async fn the_same_note_twice_in_a_row_is_evidence_once() {
    let io = server(config());
    io.of("/").on("flood", |ev| {
        ev.socket.note("3 events refused in a row");
        ev.socket.note("3 events refused in a row");
        ev.socket
            .close_connection(switchboard_engine::DisconnectReason::RateLimited);
    });
    let client = Client::connected(&io).await;
    client.post("42[\"flood\"]").await;
    client.get_raw().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    let report = io.disconnect_reports().pop().expect("a report");
    let refused = report
        .diagnosis
        .evidence
        .iter()
        .filter(|fact| fact.as_str() == "3 events refused in a row")
        .count();
    assert_eq!(refused, 1, "{:?}", report.diagnosis.evidence);
}

/// A leave asked for from elsewhere (another node's `socketsLeave`, anyone's who can
/// publish on Redis) takes each socket out of exactly the named rooms it is in, its
/// own id room included, whether the names are fewer than its rooms or, repeated and
/// made up, a great many more (each socket is then checked against its own rooms).
#[tokio::test(start_paused = true)]
async fn a_leave_from_elsewhere_takes_sockets_out_of_exactly_the_named_rooms() {
    use switchboard_engine::adapter::{BroadcastOptions, Room};
    let io = server(config());
    let ns = io.of("/");
    let _clients = [Client::connected(&io).await, Client::connected(&io).await];
    let sockets = ns.sockets();
    sockets[0].join(&["a", "b", "c"]);
    sockets[1].join(&["b", "d"]);
    let rooms = |s: &switchboard_engine::Socket| {
        let mut r = s.rooms();
        r.sort();
        r
    };
    ns.del_sockets_local(&BroadcastOptions::default(), &[Room::from("b")]);
    assert_eq!(ns.adapter().room_size("b"), 0);
    assert_eq!(ns.adapter().room_size("a"), 1);
    // Many more names than rooms: repeated ones, made-up ones, and one real.
    let mut many: Vec<Room> = (0..10_000).map(|n| Room::from(format!("x{n}"))).collect();
    many.extend(std::iter::repeat_n(Room::from("c"), 1_000));
    ns.del_sockets_local(&BroadcastOptions::default(), &many);
    let mut want = vec![sockets[0].id().to_string(), "a".to_owned()];
    want.sort();
    assert_eq!(rooms(&sockets[0]), want);
    let mut want = vec![sockets[1].id().to_string(), "d".to_owned()];
    want.sort();
    assert_eq!(rooms(&sockets[1]), want);
}
