//! What an [`Observer`] (the Admin UI in development mode) is told of events sent:
//! an emit to one socket once, with or without recovery (with it the emit goes
//! through a broadcast, which tells it); a broadcast's recipients each once, as
//! Node's adapter tells each socket's outgoing listeners, up to 64 of them.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use switchboard_engine::Socket;
use switchboard_engine::sio::{Observer, RecoveryConfig};

use super::harness::{Client, config, server};

/// The events told as sent: (socket id, name, arguments).
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, String, Vec<Value>)>>);

impl Observer for Recorder {
    fn event_sent(&self, socket: &Socket, name: &str, args: &[Value]) {
        let mut seen = self.0.lock().unwrap();
        seen.push((socket.id().to_string(), name.to_owned(), args.to_vec()));
    }
}

impl Recorder {
    fn named(&self, name: &str) -> Vec<(String, Vec<Value>)> {
        let seen = self.0.lock().unwrap();
        seen.iter()
            .filter(|(_, n, _)| n == name)
            .map(|(id, _, args)| (id.clone(), args.clone()))
            .collect()
    }
}

fn observed(recovery: bool) -> (switchboard_engine::Io, Arc<Recorder>) {
    let mut cfg = config();
    if recovery {
        cfg.recovery = Some(RecoveryConfig::default());
    }
    let io = server(cfg);
    let recorder = Arc::new(Recorder::default());
    assert!(io.observe(recorder.clone()));
    (io, recorder)
}

#[tokio::test(start_paused = true)]
async fn an_emit_to_one_socket_is_told_once_with_or_without_recovery() {
    for recovery in [false, true] {
        let (io, recorder) = observed(recovery);
        let _client = Client::connected(&io).await;
        let socket = io.of("/").sockets().pop().unwrap();
        socket.emit("hello", vec![json!(1)]).unwrap();
        let told = recorder.named("hello");
        assert_eq!(told.len(), 1, "recovery {recovery}: {told:?}");
        assert_eq!(told[0].0, socket.id().to_string());
        // With recovery the client reads the event's offset as its last argument,
        // and the observer is told what the client reads (as Node's listeners are).
        assert_eq!(told[0].1[0], json!(1), "recovery {recovery}");
        assert_eq!(told[0].1.len(), if recovery { 2 } else { 1 }, "{told:?}");
        assert_eq!(told[0].1.get(1).is_some_and(Value::is_string), recovery);
    }
}

#[tokio::test(start_paused = true)]
async fn a_broadcast_tells_each_recipient_up_to_64() {
    let (io, recorder) = observed(false);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connected(&io).await);
    }
    io.of("/").emit("news", vec![json!("a")]);
    let mut told: Vec<String> = recorder
        .named("news")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    told.sort();
    let mut ids: Vec<String> = io
        .of("/")
        .sockets()
        .iter()
        .map(|s| s.id().to_string())
        .collect();
    ids.sort();
    assert_eq!(told, ids);

    for _ in 0..70 {
        clients.push(Client::connected(&io).await);
    }
    io.of("/").emit("crowd", vec![json!("b")]);
    assert_eq!(recorder.named("crowd").len(), 64);
}

/// An observer that emits `audit` to `/` from `event_sent`, for every event it is
/// told of.
struct Echoing {
    io: std::sync::OnceLock<switchboard_engine::Io>,
    seen: Recorder,
}

impl Observer for Echoing {
    fn event_sent(&self, socket: &Socket, name: &str, args: &[Value]) {
        self.seen.event_sent(socket, name, args);
        if let Some(io) = self.io.get() {
            io.of("/").emit("audit", vec![json!(name)]);
        }
    }
}

/// An observer may send from `event_sent`: the engine holds no lock then (with
/// recovery, the buffer's lock was held, and the thread locking it again hung), and
/// what it sends is not told to it again (which never ended: the stack overflowed).
#[tokio::test(start_paused = true)]
async fn an_observer_that_sends_from_event_sent_neither_hangs_nor_feeds_itself() {
    let mut cfg = config();
    cfg.recovery = Some(RecoveryConfig::default());
    let io = server(cfg);
    let echoing = Arc::new(Echoing {
        io: std::sync::OnceLock::new(),
        seen: Recorder::default(),
    });
    assert!(io.observe(echoing.clone()));
    let _ = echoing.io.set(io.clone());
    let _client = Client::connected(&io).await;
    // On a thread of its own, so a hang fails the test rather than stopping it.
    let (done, finished) = std::sync::mpsc::channel();
    let emitting = io.clone();
    std::thread::spawn(move || {
        emitting.of("/").emit("hello", vec![json!(1)]);
        let _ = done.send(());
    });
    finished
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the emit returned (the observer's own emit did not hang on a lock)");
    assert_eq!(echoing.seen.named("hello").len(), 1);
    // The observer's `audit` reached the client, but was not told back to it.
    assert!(echoing.seen.named("audit").is_empty());
}

/// An observer that greets each socket it is told connected, from `connected`: the
/// first moment another thread can reach the socket.
struct Greeting;

impl Observer for Greeting {
    fn connected(&self, socket: &Arc<Socket>) {
        let _ = socket.emit("welcome", vec![json!(1)]);
    }
}

/// Nothing reaches a client before its CONNECT answer: once a socket can be reached
/// from elsewhere (here an observer told it connected; in a server, a broadcast on
/// another thread or another node's `disconnectSockets`), the answer is already
/// queued. Before, the socket was registered first and answered after, so what was
/// sent in between came first, and the client read an event for a namespace it had
/// not joined yet.
#[tokio::test(start_paused = true)]
async fn what_reaches_a_socket_once_it_is_registered_follows_its_connect_answer() {
    let io = server(config());
    assert!(io.observe(Arc::new(Greeting)));
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let body = client.get().await;
    let packets: Vec<&str> = body.split('\u{1e}').collect();
    assert_eq!(packets.len(), 2, "{body:?}");
    assert!(packets[0].starts_with("40{\"sid\":"), "{body:?}");
    assert_eq!(packets[1], "42[\"welcome\",1]", "{body:?}");
}

/// An observer that announces each socket to its namespace from `connected`.
struct Announcing {
    io: std::sync::OnceLock<switchboard_engine::Io>,
}

impl Observer for Announcing {
    fn connected(&self, socket: &Arc<Socket>) {
        if let Some(io) = self.io.get() {
            io.of("/").emit("joined", vec![json!(socket.id().as_str())]);
        }
    }
}

/// With recovery off, an observer may broadcast to the socket's namespace (or read
/// its sockets) from `connected`. Before, it was told under the namespace's lock of
/// its sockets, which is not reentrant: the connect never finished, and the thread
/// held the lock for good, so every later broadcast to the namespace hung too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_may_broadcast_to_the_namespace_from_connected() {
    let io = server(config());
    let announcing = Arc::new(Announcing {
        io: std::sync::OnceLock::new(),
    });
    assert!(io.observe(announcing.clone()));
    let _ = announcing.io.set(io.clone());
    let (done, finished) = std::sync::mpsc::channel();
    let connecting = io.clone();
    tokio::spawn(async move {
        let client = Client::handshake(&connecting).await;
        client.post("40").await;
        let _ = done.send(client.get().await);
    });
    let body = tokio::task::spawn_blocking(move || {
        finished.recv_timeout(std::time::Duration::from_secs(20))
    })
    .await
    .unwrap()
    .expect("connected (the observer's broadcast did not hang on the namespace's lock)");
    assert!(body.starts_with("40{\"sid\":"), "{body:?}");
    assert!(body.contains("joined"), "{body:?}");
}
