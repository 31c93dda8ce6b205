//! The paced drain of a rolling restart: sessions closed in batches with "server
//! shutting down", handshakes refused meanwhile, the rest closed at the deadline, and
//! the clients' Socket.IO sessions kept for them to resume on another node.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_engine::adapter::{
    Adapter, AdapterError, BoxFuture, DurableSession, LogFilter, LogRead, MemoryAdapter,
    SessionStore,
};
use switchboard_engine::protocol::Sid;
use switchboard_engine::shutdown::{DrainPlan, DrainReport};
use switchboard_engine::sio::RecoveryConfig;
use switchboard_engine::{DisconnectReason, Io, Metrics, Shutdown};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::harness::{Client, config, connect_answer, request, server};

/// When each socket's disconnect handler ran, and why.
type Closes = Arc<Mutex<Vec<(Instant, DisconnectReason)>>>;

fn recording(io: &Io) -> Closes {
    let closes = Closes::default();
    let sink = closes.clone();
    io.of("/").on_disconnect(move |_, reason| {
        sink.lock().unwrap().push((Instant::now(), reason));
    });
    closes
}

/// Milliseconds after `start` of each close, sorted, asserting every reason.
fn offsets_ms(closes: &Closes, start: Instant) -> Vec<u64> {
    let mut offsets: Vec<u64> = closes
        .lock()
        .unwrap()
        .iter()
        .map(|(at, reason)| {
            assert_eq!(*reason, DisconnectReason::ServerShuttingDown);
            at.duration_since(start).as_millis() as u64
        })
        .collect();
    offsets.sort_unstable();
    offsets
}

/// `n` clients connected to `/`, each with a poll waiting, as real clients have.
async fn connected_and_polling(io: &Io, n: usize) -> Vec<JoinHandle<(StatusCode, String)>> {
    let mut polls = Vec::new();
    for _ in 0..n {
        let client = Client::connected(io).await;
        polls.push(tokio::spawn(async move { client.get_raw().await }));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    polls
}

fn plan(batch_size: usize, interval_ms: u64, deadline_ms: u64) -> DrainPlan {
    DrainPlan {
        batch_size,
        interval: Duration::from_millis(interval_ms),
        deadline: Duration::from_millis(deadline_ms),
    }
}

#[tokio::test(start_paused = true)]
async fn sessions_close_in_batches_an_interval_apart() {
    let io = server(config());
    let closes = recording(&io);
    let polls = connected_and_polling(&io, 7).await;

    let start = Instant::now();
    let report = io.engine().drain(plan(3, 100, 10_000)).await;

    // ceil(7 / 3) = 3 batches, at 0, 100 and 200 ms; done once the last one finished.
    assert_eq!(offsets_ms(&closes, start), [0, 0, 0, 100, 100, 100, 200]);
    assert_eq!(start.elapsed(), Duration::from_millis(200));
    let expected = DrainReport {
        batches: 3,
        paced: 7,
        at_deadline: 0,
        unfinished: 0,
        relayed_upgrades_unfinished: 0,
    };
    assert_eq!(report, expected);
    assert!(report.in_time());
    for poll in polls {
        // The transport is closed with Engine.IO `close`, not a Socket.IO DISCONNECT
        // (which the client would take as final).
        assert_eq!(poll.await.unwrap(), (StatusCode::OK, "1".to_owned()));
    }
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn what_is_left_at_the_deadline_is_closed_at_once() {
    let io = server(config());
    let closes = recording(&io);
    let _polls = connected_and_polling(&io, 10).await;

    let start = Instant::now();
    let report = io.engine().drain(plan(2, 100, 250)).await;

    assert_eq!(
        start.elapsed(),
        Duration::from_millis(250),
        "ends by the deadline"
    );
    assert_eq!(
        (report.batches, report.paced, report.at_deadline),
        (3, 6, 4)
    );
    assert!(!report.in_time());
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        offsets_ms(&closes, start),
        [0, 0, 100, 100, 200, 200, 250, 250, 250, 250]
    );
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn queued_frames_are_flushed_before_the_close_packet() {
    let io = server(config());
    let client = Client::connected(&io).await;
    io.of("/").emit("last", json!(1));
    let drain = tokio::spawn({
        let engine = io.engine().clone();
        async move { engine.drain(plan(10, 50, 10_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    // The client comes back for its frames after the close: they are still there,
    // and the close packet follows alone in the next poll. Sharing a payload with it,
    // the events would reach the official JS client after its socket disconnected
    // (it emits a payload's packets on the next tick, handles a close at once), and it
    // would emit them again after recovering: a duplicate (found by the chaos test).
    assert_eq!(client.get().await, "42[\"last\",1]");
    assert_eq!(client.get().await, "1");
    let report = drain.await.unwrap();
    assert!(report.in_time(), "{report:?}");
    let (status, _) = client.get_raw().await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "gone once flushed");
}

#[tokio::test(start_paused = true)]
async fn handshakes_are_refused_while_open_sessions_keep_working() {
    let io = server(config());
    io.of("/").on("echo", |ev| {
        let _ = ev.socket.emit("echo", ev.payload.clone());
    });
    let clients = [Client::connected(&io).await, Client::connected(&io).await];
    let drain = tokio::spawn({
        let engine = io.engine().clone();
        async move { engine.drain(plan(1, 200, 10_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(io.engine().is_draining());

    let (status, body) = request(&io, Method::GET, "EIO=4&transport=polling", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // One client was in the first batch; the other still works until the next one.
    let open: Vec<Sid> = io
        .of("/")
        .sockets()
        .iter()
        .filter(|s| !s.conn().is_closed())
        .map(|s| s.conn().sid())
        .collect();
    assert_eq!(open.len(), 1);
    let survivor = clients.iter().find(|c| c.sid == open[0].as_str()).unwrap();
    survivor.post(r#"42["echo","still here"]"#).await;
    assert_eq!(survivor.get().await, r#"42["echo","still here"]"#);

    let report = drain.await.unwrap();
    assert_eq!((report.batches, report.paced), (2, 2));
}

/// A recovery session store shared by the nodes of these tests (what Redis is to a
/// cluster), with an event log that never holds anything.
#[derive(Debug, Default)]
struct SharedStore {
    sessions: Mutex<HashMap<String, DurableSession>>,
    /// The last epoch handed out per `pid`: saves and forgets below it are ignored.
    epochs: Mutex<HashMap<String, u64>>,
    /// The next this many `take`s fail as if Redis were restarting.
    unreachable_for: std::sync::atomic::AtomicUsize,
    /// Saves asked for (each a write to Redis in a cluster).
    saves: std::sync::atomic::AtomicUsize,
    /// Log reads wait for `reads_released` while this is set, counted in `reading`
    /// (and the most at once in `most_reading`).
    hold_reads: std::sync::atomic::AtomicBool,
    reads_released: std::sync::atomic::AtomicBool,
    released: tokio::sync::Notify,
    reading: std::sync::atomic::AtomicUsize,
    most_reading: std::sync::atomic::AtomicUsize,
    /// The offset of the log's last entry (`None`: empty).
    log_end: Mutex<Option<String>>,
    /// How far "the reader" has read (set by the test as it delivers entries), and
    /// its waiters.
    read: Mutex<Option<String>>,
    read_moved: tokio::sync::Notify,
}

impl SharedStore {
    /// The test's reader has read through `offset`.
    fn read_to(&self, offset: &str) {
        *self.read.lock().unwrap() = Some(offset.to_owned());
        self.read_moved.notify_waiters();
    }
}

/// A log offset `ms-seq` as numbers, for comparisons.
fn offset_key(offset: &str) -> (u64, u64) {
    let (ms, seq) = offset.split_once('-').unwrap();
    (ms.parse().unwrap(), seq.parse().unwrap())
}

impl SessionStore for SharedStore {
    fn save(&self, session: DurableSession, _ttl: Duration, _ended: bool) {
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if session.epoch < self.epoch(&session.pid) {
            return;
        }
        let mut sessions = self.sessions.lock().unwrap();
        sessions.insert(session.pid.clone(), session);
    }

    fn forget(&self, pid: &str, epoch: u64, _ended: bool) {
        if epoch < self.epoch(pid) {
            return;
        }
        self.sessions.lock().unwrap().remove(pid);
    }

    fn take<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<DurableSession>, AdapterError>> {
        use std::sync::atomic::Ordering::SeqCst;
        let down = self.unreachable_for.load(SeqCst);
        if down > 0 {
            self.unreachable_for.store(down - 1, SeqCst);
            return Box::pin(async { Err(AdapterError::Unavailable("restarting".into())) });
        }
        let session = self.sessions.lock().unwrap().remove(pid).map(|mut s| {
            let mut epochs = self.epochs.lock().unwrap();
            let epoch = epochs.entry(pid.to_owned()).or_default();
            *epoch += 1;
            s.epoch = *epoch;
            s
        });
        Box::pin(async move { Ok(session) })
    }

    fn peek<'a>(
        &'a self,
        pid: &'a str,
    ) -> BoxFuture<'a, Result<Option<DurableSession>, AdapterError>> {
        let session = self.sessions.lock().unwrap().get(pid).cloned();
        Box::pin(async move { Ok(session) })
    }

    fn read_log<'a>(
        &'a self,
        _nsp: &'a str,
        _after: &'a str,
        _until: &'a str,
        _keep: &'a LogFilter<'a>,
        _max_bytes: usize,
    ) -> BoxFuture<'a, Result<LogRead, AdapterError>> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            if self.hold_reads.load(SeqCst) {
                let now = self.reading.fetch_add(1, SeqCst) + 1;
                self.most_reading.fetch_max(now, SeqCst);
                loop {
                    let released = self.released.notified();
                    if self.reads_released.load(SeqCst) {
                        break;
                    }
                    released.await;
                }
                self.reading.fetch_sub(1, SeqCst);
            }
            Ok(LogRead::Events(Vec::new()))
        })
    }

    fn log_end(&self) -> BoxFuture<'_, Result<Option<String>, AdapterError>> {
        let end = self.log_end.lock().unwrap().clone();
        Box::pin(async move { Ok(end) })
    }

    /// The tests deliver the log's entries to each node by hand, and say with
    /// `read_to` how far that got; a test that does not is read through everything.
    fn read_through<'a>(&'a self, offset: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            loop {
                let notified = self.read_moved.notified();
                match self.read.lock().unwrap().as_deref() {
                    None => return,
                    Some(read) if offset_key(read) >= offset_key(offset) => return,
                    Some(_) => {}
                }
                notified.await;
            }
        })
    }
}

impl SharedStore {
    fn epoch(&self, pid: &str) -> u64 {
        self.epochs.lock().unwrap().get(pid).copied().unwrap_or(0)
    }
}

/// In-memory rooms plus the shared store.
#[derive(Debug)]
struct Durable {
    rooms: MemoryAdapter,
    store: Arc<SharedStore>,
}

impl Adapter for Durable {
    super::harness::memory_index!(rooms);
    fn session_store(&self) -> Option<Arc<dyn SessionStore>> {
        Some(self.store.clone())
    }
}

fn durable_node(store: &Arc<SharedStore>) -> Io {
    let mut cfg = config();
    cfg.recovery = Some(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        ..RecoveryConfig::default()
    });
    let store = store.clone();
    let factory = Arc::new(move |_: &str| -> Arc<dyn Adapter> {
        Arc::new(Durable {
            rooms: MemoryAdapter::default(),
            store: store.clone(),
        })
    });
    let io = Io::with_adapter(
        cfg,
        factory,
        Arc::new(Metrics::default()),
        Shutdown::never(),
    );
    io.of("/").on("leave", |ev| {
        if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
            ev.socket.leave(room);
        }
    });
    io.of("/").on("join", |ev| {
        if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
            ev.socket.join(&[room]);
        }
        ev.socket.set_data(json!({"joined": true}));
    });
    io
}

#[tokio::test(start_paused = true)]
async fn drained_clients_resume_their_session_on_another_node() {
    let store = Arc::new(SharedStore::default());
    let (old, new) = (durable_node(&store), durable_node(&store));
    let client = Client::handshake(&old).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    client.post(r#"42["join","room-a"]"#).await;
    let poll = tokio::spawn(async move { client.get_raw().await });
    tokio::time::sleep(Duration::from_millis(1)).await;

    let report = old.engine().drain(DrainPlan::default()).await;
    assert!(report.in_time(), "{report:?}");
    assert_eq!(poll.await.unwrap(), (StatusCode::OK, "1".to_owned()));
    let (status, _) = request(&old, Method::GET, "EIO=4&transport=polling", "").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "the old node takes no one"
    );

    // The client reconnects by itself, to the other node, with its pid.
    let back = Client::handshake(&new).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let (sid2, pid2) = connect_answer(&back.get().await);
    assert_eq!((sid2, pid2), (sid, pid), "same ids: recovered");
    let socket = new.of("/").sockets().pop().unwrap();
    assert!(socket.recovered());
    assert!(socket.rooms().contains(&"room-a".to_owned()));
    assert_eq!(socket.data(), json!({"joined": true}));
}

/// A client connected to `node` that joined `room-a` (so its session is saved), with
/// its socket id and pid.
async fn in_room_a(node: &Io) -> (Client, String, String) {
    let client = Client::handshake(node).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    client.post(r#"42["join","room-a"]"#).await;
    (client, sid, pid)
}

/// A client of `old` whose session is in the store, reconnecting to `new` with its pid:
/// whether it came back recovered.
async fn resumes_on(old: &Io, new: &Io) -> bool {
    let (_client, sid, pid) = in_room_a(old).await;
    let back = Client::handshake(new).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    // The answer may take a few heartbeats while the store is retried.
    loop {
        let body = back.get().await;
        if let Some(answer) = body.split('\x1e').find(|p| p.starts_with("40")) {
            return connect_answer(answer).0 == sid;
        }
        if body.split('\x1e').any(|p| p == "2") {
            back.post("3").await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_resuming_client_waits_out_a_short_store_outage() {
    let store = Arc::new(SharedStore::default());
    let (old, new) = (durable_node(&store), durable_node(&store));
    // Redis restarting: the first takes fail, a later one succeeds.
    store
        .unreachable_for
        .store(10, std::sync::atomic::Ordering::SeqCst);
    assert!(
        resumes_on(&old, &new).await,
        "recovered once the store is back"
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_stays_down_means_not_recovered_not_a_hang() {
    let store = Arc::new(SharedStore::default());
    let (old, new) = (durable_node(&store), durable_node(&store));
    store
        .unreachable_for
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    assert!(!resumes_on(&old, &new).await, "told it was not recovered");
}

/// Whoever can write to Redis can write a session; a stored session is a claim,
/// checked before a socket takes it. The victim connects and joins a room (its session
/// is saved); the forger stores copies of it, changed, and resumes them: each one
/// makes a fresh socket (not recovered) and the victim keeps its place.
#[tokio::test(start_paused = true)]
async fn forged_stored_sessions_are_not_resumed() {
    let store = Arc::new(SharedStore::default());
    let node = durable_node(&store);
    let (victim, sid, pid) = in_room_a(&node).await;
    let saved = store
        .sessions
        .lock()
        .unwrap()
        .get(&pid)
        .cloned()
        .expect("saved");
    let forge = |key: &str, change: &dyn Fn(&mut DurableSession)| {
        let mut session = saved.clone();
        session.pid = key.to_owned();
        change(&mut session);
        store
            .sessions
            .lock()
            .unwrap()
            .insert(key.to_owned(), session);
    };
    // The victim's socket id under the forger's pid: resumed, it would take the
    // victim's place in the namespace.
    forge("forgedpidnumber00001", &|_| {});
    // Stored under one pid, naming another.
    forge("forgedpidnumber00002", &|s| {
        s.pid = "forgedpidsomeoneelse".to_owned()
    });
    // Rooms past anything a node keeps (64 KiB a session): 5,000 names of 100 bytes.
    forge("forgedpidnumber00003", &|s| {
        s.sid = "forgedsidforgedsidfo".to_owned();
        s.rooms = (0..5_000).map(|i| format!("{i:0>100}")).collect();
    });
    for key in [
        "forgedpidnumber00001",
        "forgedpidnumber00002",
        "forgedpidnumber00003",
    ] {
        let forger = Client::handshake(&node).await;
        forger.post(&format!(r#"40{{"pid":"{key}"}}"#)).await;
        let (got, _) = connect_answer(&forger.get().await);
        assert_ne!(got, sid, "{key}: resumed");
        let socket = node
            .of("/")
            .socket(got.parse().unwrap())
            .expect("connected");
        assert!(!socket.recovered(), "{key}: recovered");
        assert_eq!(socket.rooms(), std::slice::from_ref(&got), "{key}: rooms");
    }
    let victims = node
        .of("/")
        .socket(sid.parse().unwrap())
        .expect("still there");
    assert!(victims.rooms().contains(&"room-a".to_owned()));
    node.of("/").to("room-a").emit("hello", json!(1));
    assert_eq!(victim.get().await, r#"42["hello",1]"#);
}

/// Leaving a room the socket is not in changes nothing, and saves nothing: a client
/// asking to leave made-up rooms in a loop makes no writes to Redis. Leaving a room it
/// is in saves the session once.
#[tokio::test(start_paused = true)]
async fn leaving_a_room_the_socket_is_not_in_saves_nothing() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(SharedStore::default());
    let node = durable_node(&store);
    let (client, sid, _) = in_room_a(&node).await;
    let before = store.saves.load(SeqCst);
    let leaves: Vec<String> = (0..200)
        .map(|i| format!(r#"42["leave","nope-{i}"]"#))
        .collect();
    client.post(&leaves.join("\u{1e}")).await;
    assert_eq!(store.saves.load(SeqCst), before);
    client.post(r#"42["leave","room-a"]"#).await;
    assert_eq!(store.saves.load(SeqCst), before + 1);
    let socket = node.of("/").socket(sid.parse().unwrap()).unwrap();
    assert_eq!(socket.rooms(), [sid]);
}

/// A session grown past what a node resumes (`max_bytes_per_session`, 64 KiB) is not
/// saved, and the copy saved before is forgotten: a node would refuse it anyway (it
/// cannot tell it from a forged one). Once small again it is saved again.
#[tokio::test(start_paused = true)]
async fn a_session_too_large_to_resume_is_forgotten_not_saved() {
    let store = Arc::new(SharedStore::default());
    let node = durable_node(&store);
    let (client, _, pid) = in_room_a(&node).await;
    let stored = || store.sessions.lock().unwrap().contains_key(&pid);
    assert!(stored());
    let name = |i: usize| format!("{i:0>120}");
    let joins: Vec<String> = (0..700)
        .map(|i| format!(r#"42["join","{}"]"#, name(i)))
        .collect();
    client.post(&joins.join("\u{1e}")).await;
    assert!(!stored(), "forgotten once past 64 KiB");
    let leaves: Vec<String> = (0..700)
        .map(|i| format!(r#"42["leave","{}"]"#, name(i)))
        .collect();
    client.post(&leaves.join("\u{1e}")).await;
    assert!(stored(), "saved again once small");
}

/// Reads of the durable log for replays run eight at a time: twenty clients resuming
/// at once on a node whose buffer does not hold what they missed (it started reading
/// the log after their offset) make eight reads, the rest wait their turn; once the
/// reads answer, every one of them is recovered.
#[tokio::test(start_paused = true)]
async fn reads_of_the_log_for_replays_are_bounded() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = Arc::new(SharedStore::default());
    let node = durable_node(&store);
    node.of("/").recovery_start_at("1000-0");
    let id = |n: usize| format!("{n:0>20}");
    for n in 0..20 {
        let (sid, pid) = (id(n), id(100 + n));
        store.sessions.lock().unwrap().insert(
            pid.clone(),
            DurableSession {
                sid: sid.clone(),
                pid,
                rooms: vec![sid],
                memberships: Default::default(),
                data: Value::Null,
                offset: Some("400-0".to_owned()),
                epoch: 0,
                expires_in: None,
            },
        );
    }
    store.hold_reads.store(true, SeqCst);
    let mut clients = Vec::new();
    for n in 0..20 {
        let client = Client::handshake(&node).await;
        let claim = json!({"pid": id(100 + n), "offset": "500-0"});
        client.post(&format!("40{claim}")).await;
        clients.push(client);
    }
    for _ in 0..1000 {
        tokio::task::yield_now().await;
    }
    assert_eq!(store.reading.load(SeqCst), 8, "eight read, the rest wait");
    store.reads_released.store(true, SeqCst);
    store.released.notify_waiters();
    for (n, client) in clients.iter().enumerate() {
        let (sid, _) = connect_answer(&client.get().await);
        assert_eq!(sid, id(n), "recovered");
    }
    assert_eq!(store.most_reading.load(SeqCst), 8);
}

/// A client refused its resume starts afresh with nothing sent before it connected,
/// even while this node's reader is behind the log: the node first reads as far as the
/// log reached. Before, the event published just before the reconnect, read by the
/// node a moment later, reached the fresh socket.
#[tokio::test(start_paused = true)]
async fn a_refused_resume_gets_nothing_the_log_held_before_it_even_from_a_lagging_reader() {
    let store = Arc::new(SharedStore::default());
    let node = durable_node(&store);
    let ns = node.of("/");
    ns.recovery_start_at("10-0");
    let event = |name: &str| {
        use switchboard_engine::protocol::socketio::{Packet, PacketType};
        Packet::new(PacketType::Event, "/", Some(json!([name])))
    };
    let everyone = switchboard_engine::adapter::BroadcastOptions::default();
    ns.deliver_logged("11-0", Some(event("read")), &everyone);
    store.read_to("11-0");
    // 12-0 is in the log, not yet read by this node.
    *store.log_end.lock().unwrap() = Some("12-0".to_owned());
    let client = Client::handshake(&node).await;
    // A pid with no stored session (expired): not recovered.
    client
        .post(&format!(
            r#"40{{"pid":"{}","offset":"11-0"}}"#,
            "A".repeat(20)
        ))
        .await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    ns.deliver_logged("12-0", Some(event("before")), &everyone);
    store.read_to("12-0");
    tokio::time::sleep(Duration::from_millis(50)).await;
    ns.deliver_logged("13-0", Some(event("after")), &everyone);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let body = client.get().await;
    let packets: Vec<&str> = body.split('\x1e').collect();
    assert!(packets[0].starts_with("40{"), "{body}");
    assert_eq!(&packets[1..], [r#"42["after","13-0"]"#], "{body}");
}

/// A drain that waits for the session count to reach zero (the binary's does, then
/// flushes the hooks) must find every disconnect handler already run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stops_counting_only_after_its_disconnect_handlers_ran() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let io = server(config());
    let handled = Arc::new(AtomicBool::new(false));
    let flag = handled.clone();
    io.of("/").on_disconnect(move |_, _| {
        // A slow handler (e.g. queueing a hook under contention).
        std::thread::sleep(Duration::from_millis(200));
        flag.store(true, Ordering::SeqCst);
    });
    let _polls = connected_and_polling(&io, 1).await;
    let drain = {
        let engine = io.engine().clone();
        tokio::spawn(async move { engine.drain(DrainPlan::default()).await })
    };
    while io.engine().session_count() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(
        handled.load(Ordering::SeqCst),
        "the session stopped counting before its disconnect handler finished"
    );
    drain.await.unwrap();
}

/// The rooms the store holds for `pid`.
fn stored_rooms(store: &SharedStore, pid: &str) -> Vec<String> {
    let sessions = store.sessions.lock().unwrap();
    sessions
        .get(pid)
        .map(|s| s.rooms.clone())
        .unwrap_or_default()
}

/// A node that froze (or lost its network) still holds the socket of a client that
/// has since resumed elsewhere; when it wakes and the socket finally closes, its old
/// snapshot must not replace the session the client lives on now, or the client's
/// next resume (its new node dies) would come back without the rooms it joined since.
#[tokio::test(start_paused = true)]
async fn a_socket_left_behind_on_a_frozen_node_cannot_overwrite_the_resumed_session() {
    let store = Arc::new(SharedStore::default());
    let (frozen, new, third) = (
        durable_node(&store),
        durable_node(&store),
        durable_node(&store),
    );
    let client = Client::handshake(&frozen).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    client.post(r#"42["join","room-a"]"#).await;

    // The client gives up on the silent node and resumes on another, from the live
    // snapshot, then joins a second room there.
    let moved = Client::handshake(&new).await;
    moved.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    assert_eq!(connect_answer(&moved.get().await).0, sid, "recovered");
    moved.post(r#"42["join","room-b"]"#).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(stored_rooms(&store, &pid).contains(&"room-b".to_owned()));

    // The frozen node wakes: its socket of that client closes as a lost connection.
    let left_behind = frozen.of("/").sockets().pop().unwrap();
    left_behind.close_connection(DisconnectReason::PingTimeout);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(frozen.of("/").sockets().is_empty());
    assert!(
        stored_rooms(&store, &pid).contains(&"room-b".to_owned()),
        "the stale socket overwrote the session: {:?}",
        stored_rooms(&store, &pid)
    );

    // The new node dies without a word: the client resumes on a third with both rooms.
    let again = Client::handshake(&third).await;
    again.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    assert_eq!(connect_answer(&again.get().await).0, sid, "recovered again");
    let socket = third.of("/").sockets().pop().unwrap();
    let rooms = socket.rooms();
    assert!(rooms.contains(&"room-a".to_owned()) && rooms.contains(&"room-b".to_owned()));
}
