//! A stale socket against the session its client resumed on another connection: the
//! old socket (same id, closed, or closing) whose handlers still run, or which the API
//! or another node still holds, changes no room of the resumed socket, nor what an
//! observer is told of it. The room index knows sockets by id, and the two share one.
//! The races are staged exactly: a [`Gate`] holds the stale socket's handler on its
//! thread (real threads, not the paused clock) while the client resumes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_engine::Socket;
use switchboard_engine::sio::{Observer, RecoveryConfig};
use switchboard_engine::{DisconnectReason, Io, Namespace};

use super::harness::{Client, Gate, config, connect_answer, request, server};

/// A server with connection state recovery on `/`. Pings far apart: the held client
/// answers none, and must not time out while a test runs on real threads.
fn recovering_server() -> Io {
    let mut cfg = config();
    cfg.engine.ping_interval = Duration::from_secs(30);
    cfg.engine.ping_timeout = Duration::from_secs(30);
    cfg.recovery = Some(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        ..RecoveryConfig::default()
    });
    server(cfg)
}

/// A client connected to `/` on a fresh connection: its socket's `(sid, pid)`.
async fn connected(io: &Io) -> (String, String) {
    let client = Client::handshake(io).await;
    client.post("40").await;
    connect_answer(&client.get().await)
}

/// A client connected, then back on a new connection before its first was seen to
/// drop (a take-over): its first socket (the stale one), the new connection, and the
/// socket id both had.
async fn taken_over(io: &Io) -> (Arc<Socket>, Client, String) {
    let (sid, pid) = connected(io).await;
    let stale = io.of("/").sockets().pop().expect("registered");
    let (back, resumed) = resume(io, &pid).await;
    assert_eq!(resumed, sid, "recovered, under the same id");
    (stale, back, sid)
}

/// A new connection of the client resuming `pid`: returns once it is answered, with
/// the socket id it was given.
async fn resume(io: &Io, pid: &str) -> (Client, String) {
    let back = Client::handshake(io).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let (sid, _) = connect_answer(&back.get().await);
    (back, sid)
}

/// The one socket of `ns`: the resumed one, with `sid`, in `kept` and in no room the
/// stale socket joined after the take-over.
fn assert_resumed_socket_kept_its_rooms(ns: &Arc<Namespace>, sid: &str) {
    let sockets = ns.sockets();
    assert_eq!(
        sockets.len(),
        1,
        "the stale socket is gone, the resumed one stays"
    );
    let resumed = &sockets[0];
    assert_eq!(resumed.id().as_str(), sid);
    assert!(resumed.recovered());
    let rooms = resumed.rooms();
    assert!(
        rooms.contains(&"kept".to_owned()),
        "the stale socket's leave took the resumed one out of its room: {rooms:?}"
    );
    assert!(
        !rooms.contains(&"stolen".to_owned()),
        "the stale socket's join put the resumed one in its room: {rooms:?}"
    );
    let adapter = ns.adapter();
    assert_eq!(
        (adapter.room_size("kept"), adapter.room_size("stolen")),
        (1, 0)
    );
}

/// Waits (real time) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The client resumes while its old socket's connection handler still runs (held on
/// its thread): the take-over closes the old socket and its disconnect handlers wait
/// for that handler. When it goes on, it joins a room and leaves the one it joined
/// first, through the old socket, whose id the resumed socket holds by then. Before,
/// both reached the resumed socket (in `stolen`, out of `kept`): the index knows
/// sockets by id, and `leave_rooms_joined_late` leaves nothing once another socket
/// holds the id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_sockets_connection_handler_changes_no_room_of_the_resumed_socket() {
    let io = recovering_server();
    let gate = Gate::new();
    let held = gate.clone();
    let first = AtomicBool::new(true);
    io.of("/").on_connection(move |socket| {
        // The resumed socket's own connection handler does nothing.
        if !first.swap(false, Ordering::SeqCst) {
            return;
        }
        socket.join(&["kept"]);
        held.hold();
        socket.join(&["stolen"]);
        socket.leave("kept");
    });
    let disconnected = Arc::new(AtomicBool::new(false));
    let seen = disconnected.clone();
    io.of("/")
        .on_disconnect(move |_socket, _reason| seen.store(true, Ordering::SeqCst));

    let old = Client::handshake(&io).await;
    let connecting = {
        let (io, query) = (io.clone(), old.query());
        tokio::spawn(async move { request(&io, http::Method::POST, &query, "40").await })
    };
    gate.entered().await;
    // The CONNECT answer was queued before the handlers began.
    let (sid, pid) = connect_answer(&old.get().await);

    let (_back, resumed) = resume(&io, &pid).await;
    assert_eq!(resumed, sid, "recovered, under the same id");
    assert!(
        !disconnected.load(Ordering::SeqCst),
        "the old socket's disconnect handlers wait for its connection handler"
    );

    gate.open();
    connecting.await.unwrap();
    until("the old socket's disconnect handlers ran", || {
        disconnected.load(Ordering::SeqCst)
    })
    .await;
    assert_resumed_socket_kept_its_rooms(&io.of("/"), &sid);
}

/// The old socket's connection closes on its own thread, whose disconnect handler is
/// held there (after the close saved the session and let go of the socket); the
/// client resumes meanwhile. When the handler goes on, it joins a room and leaves the
/// one the socket had, through the closed socket. Before, the resumed socket was put
/// in the one and taken out of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_sockets_disconnect_handler_changes_no_room_of_the_resumed_socket() {
    let io = recovering_server();
    let gate = Gate::new();
    let held = gate.clone();
    io.of("/").on_connection(|socket| socket.join(&["kept"]));
    let first = AtomicBool::new(true);
    let done = Arc::new(AtomicBool::new(false));
    let finished = done.clone();
    io.of("/").on_disconnect(move |socket, _reason| {
        if !first.swap(false, Ordering::SeqCst) {
            return;
        }
        held.hold();
        socket.join(&["stolen"]);
        socket.leave("kept");
        finished.store(true, Ordering::SeqCst);
    });

    let old = Client::handshake(&io).await;
    old.post("40").await;
    let (sid, pid) = connect_answer(&old.get().await);
    let stale = io.of("/").sockets().pop().expect("registered");
    // A connection lost, not ended: its session is kept for the client.
    stale.close_connection(DisconnectReason::TransportClose);
    gate.entered().await;

    let (_back, resumed) = resume(&io, &pid).await;
    assert_eq!(resumed, sid, "recovered, under the same id");

    gate.open();
    until("the old socket's disconnect handler finished", || {
        done.load(Ordering::SeqCst)
    })
    .await;
    assert_resumed_socket_kept_its_rooms(&io.of("/"), &sid);
}

/// A take-over from the new connection's own thread: the old socket's disconnect
/// handlers run there, just before the resumed socket registers, with nobody holding
/// the id. What they join was left in the index under the id, and the resumed socket
/// came back in it.
#[tokio::test(start_paused = true)]
async fn a_taken_over_sockets_disconnect_handler_joins_no_room_for_the_resumed_socket() {
    let io = recovering_server();
    io.of("/").on_connection(|socket| {
        if !socket.recovered() {
            socket.join(&["kept"]);
        }
    });
    io.of("/").on_disconnect(|socket, _reason| {
        socket.join(&["stolen"]);
        socket.leave("kept");
    });
    let (sid, pid) = connected(&io).await;
    // Back before its old connection was seen to drop: taken over.
    let (_back, resumed) = resume(&io, &pid).await;
    assert_eq!(resumed, sid, "recovered, under the same id");
    assert_resumed_socket_kept_its_rooms(&io.of("/"), &sid);
}

/// Counts what an observer is told of data changes, by socket id.
#[derive(Default)]
struct DataWatch {
    told: Mutex<Vec<(String, Value)>>,
}

impl Observer for DataWatch {
    fn data_changed(&self, socket: &Socket) {
        self.told
            .lock()
            .unwrap()
            .push((socket.id().to_string(), socket.data()));
    }
}

/// The stale socket as the API or another node's request may still hold it, called
/// after the take-over: its joins, bounded joins and leaves change nothing of the
/// resumed socket's rooms, and its data, its own, is not told to observers as the
/// resumed socket's (the Admin UI keeps data by socket id).
#[tokio::test(start_paused = true)]
async fn a_stale_socket_held_elsewhere_changes_no_room_or_data_of_the_resumed_socket() {
    let io = recovering_server();
    let watch = Arc::new(DataWatch::default());
    assert!(io.observe(watch.clone()));
    io.of("/").on_connection(|socket| {
        if !socket.recovered() {
            socket.join(&["kept"]);
            socket.set_data(json!({"user": "alice"}));
        }
    });
    let (stale, _back, sid) = taken_over(&io).await;
    watch.told.lock().unwrap().clear();

    stale.join(&["stolen"]);
    assert_eq!(stale.join_within(&["stolen"], 10), 0);
    stale.join_while_connected(&["stolen"]);
    stale.leave("kept");
    stale.set_data(json!({"user": "mallory"}));

    assert_resumed_socket_kept_its_rooms(&io.of("/"), &sid);
    let resumed = io.of("/").sockets().pop().unwrap();
    assert_eq!(resumed.data(), json!({"user": "alice"}));
    assert!(
        watch.told.lock().unwrap().is_empty(),
        "the stale socket's data was told as the resumed one's: {:?}",
        watch.told.lock().unwrap()
    );
}

/// A socket that has closed and been let go joins no room, and asks for no
/// acknowledgement: a socket whose client left for good, joined afterwards by whoever
/// still held it, stayed in the room with nothing to take it out, and an emit with
/// an ack waited out its whole timeout for a client that had left. Its plain emits,
/// with recovery on, still go to the room of its id, as in Node (which stores them
/// for the session's resume): after a take-over, the resumed client gets them.
#[tokio::test(start_paused = true)]
async fn a_closed_socket_joins_no_room_and_waits_for_no_ack() {
    let io = recovering_server();
    let (stale, back, _sid) = taken_over(&io).await;
    stale.emit("as-in-node", vec![json!(1)]).unwrap();
    let body = back.get().await;
    assert!(body.contains("as-in-node"), "{body:?}");

    // Nobody resumes this one: its client leaves the namespace for good.
    let live = io.of("/").sockets().pop().expect("the resumed socket");
    back.post("41").await;
    until("the socket is gone", || io.of("/").socket_count() == 0).await;
    live.join(&["late"]);
    assert_eq!(io.of("/").adapter().room_size("late"), 0);
    let ack = live.emit_with_ack("question", vec![json!(2)], Duration::from_secs(3600));
    let answered = tokio::time::timeout(Duration::from_secs(1), ack).await;
    assert!(
        matches!(
            answered,
            Ok(Err(switchboard_engine::AckError::Disconnected))
        ),
        "refused at once: {answered:?}"
    );
}

/// A socket its middleware refused, held on to by the application (a task the
/// middleware started), joins no room afterwards: nothing would ever take it out, and
/// the room would count a member that never existed.
#[tokio::test(start_paused = true)]
async fn a_socket_its_middleware_refused_joins_no_room_afterwards() {
    let io = server(config());
    let kept: Arc<Mutex<Option<Arc<Socket>>>> = Arc::default();
    let keeper = kept.clone();
    io.of("/").use_middleware(move |socket| {
        *keeper.lock().unwrap() = Some(socket);
        async { Err(switchboard_engine::ConnectError::new("not you")) }
    });
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let body = client.get().await;
    assert!(body.starts_with("44"), "refused: {body:?}");
    let refused = kept.lock().unwrap().take().expect("the middleware ran");
    refused.join(&["ghost"]);
    assert_eq!(io.of("/").adapter().room_size("ghost"), 0);
}
