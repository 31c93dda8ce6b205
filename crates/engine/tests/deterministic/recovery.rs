//! Connection state recovery on one node: a dropped client that comes back with its
//! `pid` (and `offset`) gets its id, rooms, data and every missed event, in order.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_engine::sio::RecoveryConfig;
use switchboard_test_support::eventually;

use super::harness::{
    Client, PING_INTERVAL, PING_TIMEOUT, config, connect_answer, disconnects, disconnects_seen,
    server,
};

fn recovering_server() -> switchboard_engine::Io {
    recovering_server_with(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        ..RecoveryConfig::default()
    })
}

/// [`recovering_server`] that replays at most `bytes` to a connection.
fn replaying_at_most(bytes: usize) -> switchboard_engine::Io {
    recovering_server_with(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        max_replay_bytes: bytes,
        ..RecoveryConfig::default()
    })
}

fn recovering_server_with(recovery: RecoveryConfig) -> switchboard_engine::Io {
    let mut cfg = config();
    cfg.recovery = Some(recovery);
    let io = server(cfg);
    io.of("/").on("join", |ev| {
        if let Some(room) = ev.payload.args.first().and_then(Value::as_str) {
            ev.socket.join(&[room]);
        }
        ev.socket.set_data(json!({"joined": true}));
    });
    io
}

/// The client asks (through the server's `join` handler) to join `room`; returns once
/// the handler ran.
async fn join(client: &Client, room: &str) {
    client.post(&format!(r#"42["join","{room}"]"#)).await;
    tokio::task::yield_now().await;
}

/// The event packets of a polling body, as JSON arrays.
fn events(body: &str) -> Vec<Value> {
    body.split('\x1e')
        .filter_map(|p| p.strip_prefix("42"))
        .map(|p| serde_json::from_str(p).unwrap())
        .collect()
}

async fn drop_by_ping_timeout(client: &Client) {
    // Stop answering pings: the session times out.
    tokio::time::sleep(PING_INTERVAL + PING_TIMEOUT + Duration::from_millis(50)).await;
    let (status, _) = client.get_raw().await;
    assert!(status.is_success() || status.as_u16() == 400);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_client_resumes_with_id_rooms_data_and_missed_events_in_order() {
    let io = recovering_server();
    let ns = io.of("/");
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    join(&client, "room-a").await;
    ns.to("room-a").emit("seq", json!(0));
    let first = events(&client.get().await);
    assert_eq!(first[0][1], 0);
    let offset = first[0]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();

    drop_by_ping_timeout(&client).await;
    for i in 1..=3 {
        ns.to("room-a").emit("seq", json!(i));
        ns.to("room-b").emit("other", json!(i));
    }

    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}","offset":"{offset}"}}"#))
        .await;
    let body = back.get().await;
    let (sid2, pid2) = connect_answer(&body);
    assert_eq!(
        (sid2.as_str(), pid2.as_str()),
        (sid.as_str(), pid.as_str()),
        "same ids"
    );
    let replayed: Vec<i64> = events(&body)
        .iter()
        .map(|e| {
            assert_eq!(e[0], "seq", "only the socket's rooms are replayed");
            e[1].as_i64().unwrap()
        })
        .collect();
    assert_eq!(replayed, vec![1, 2, 3]);

    let socket = ns.sockets().pop().unwrap();
    assert!(socket.recovered());
    assert_eq!(socket.data(), json!({"joined": true}));
    assert!(socket.rooms().contains(&"room-a".to_owned()));
    ns.to("room-a").emit("seq", json!(4));
    assert_eq!(
        events(&back.get().await)[0][1],
        4,
        "live delivery continues"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_saw_no_event_yet_still_recovers_what_it_missed() {
    let io = recovering_server();
    let ns = io.of("/");
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    drop_by_ping_timeout(&client).await;
    ns.emit("news", json!("while away"));

    let back = Client::handshake(&io).await;
    // socket.io-client sends no offset when it never received an event.
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let body = back.get().await;
    assert_eq!(connect_answer(&body).0, sid);
    let replayed = events(&body);
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0][1], "while away");
}

#[tokio::test(start_paused = true)]
async fn an_expired_session_is_not_recovered() {
    let io = recovering_server();
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    drop_by_ping_timeout(&client).await;
    tokio::time::sleep(Duration::from_secs(61)).await;
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let (sid2, pid2) = connect_answer(&back.get().await);
    assert_ne!(sid2, sid);
    assert_ne!(pid2, pid, "a new pid tells the client it was not recovered");
    assert!(!io.of("/").sockets()[0].recovered());
}

#[tokio::test(start_paused = true)]
async fn a_deliberate_disconnect_is_not_resumable() {
    let io = recovering_server();
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    client.post("41").await;
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    assert_ne!(connect_answer(&back.get().await).0, sid);
}

#[tokio::test(start_paused = true)]
async fn direct_emits_carry_offsets_and_acks_do_not() {
    let io = recovering_server();
    io.of("/").on("ask", |mut ev| {
        let _ = ev.socket.emit("direct", json!("x"));
        if let Some(ack) = ev.take_ack() {
            let _ = ack.send(json!("answer"));
        }
    });
    let client = Client::handshake(&io).await;
    client.post("40").await;
    client.get().await;
    client.post(r#"421["ask"]"#).await;
    let body = client.get().await;
    let direct = events(&body);
    assert_eq!(direct[0].as_array().unwrap().len(), 3, "event, arg, offset");
    assert!(body.contains(r#"431["answer"]"#), "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_client_back_before_its_old_connection_was_seen_to_drop_takes_it_over() {
    let io = recovering_server();
    let ns = io.of("/");
    let old = Client::handshake(&io).await;
    old.post("40").await;
    let (sid, pid) = connect_answer(&old.get().await);
    ns.emit("seq", json!(0));
    let first = events(&old.get().await);
    let offset = first[0]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    // The old connection is still open on the server when these are emitted...
    ns.emit("seq", json!(1));
    ns.emit("seq", json!(2));
    // ...and when the client shows up again on a new connection.
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}","offset":"{offset}"}}"#))
        .await;
    let body = back.get().await;
    assert_eq!(connect_answer(&body).0, sid);
    let replayed: Vec<i64> = events(&body)
        .iter()
        .map(|e| e[1].as_i64().unwrap())
        .collect();
    assert_eq!(replayed, vec![1, 2]);
    assert_eq!(ns.socket_count(), 1, "the stale socket is gone");
    old.assert_closed().await;
}

/// The disconnect handlers of a socket whose session a new connection took over see
/// its old connection closed (what the rules' rate limiter drops a bucket on at once,
/// rather than keeping it for an open connection's next CONNECT).
#[tokio::test(start_paused = true)]
async fn a_taken_over_socket_leaves_with_its_connection_closed() {
    let io = recovering_server();
    let ns = io.of("/");
    let seen = disconnects_seen(&ns);
    let old = Client::handshake(&io).await;
    old.post("40").await;
    let (sid, pid) = connect_answer(&old.get().await);
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    assert_eq!(connect_answer(&back.get().await).0, sid);
    assert_eq!(*seen.lock().unwrap(), vec![("transport close", true)]);
}

#[tokio::test(start_paused = true)]
async fn data_set_by_middleware_is_kept_when_recovery_is_on() {
    let io = recovering_server();
    io.of("/").use_middleware(|socket| async move {
        socket.set_data(json!({"claims": {"sub": "alice"}}));
        Ok(())
    });
    let client = Client::handshake(&io).await;
    client.post("40").await;
    client.get().await;
    assert_eq!(
        io.of("/").sockets()[0].data(),
        json!({"claims": {"sub": "alice"}})
    );
}

/// A server keeping at most `max_sessions` sessions of `max_bytes` in all, where
/// `fill` sets a socket's data to that many bytes.
fn bounded_server(max_sessions: usize, max_bytes: usize) -> switchboard_engine::Io {
    let mut cfg = config();
    cfg.recovery = Some(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        max_sessions,
        max_sessions_bytes: max_bytes,
        ..RecoveryConfig::default()
    });
    let io = server(cfg);
    io.of("/").on("fill", |ev| {
        let n = ev.payload.args.first().and_then(Value::as_u64).unwrap_or(0);
        ev.socket.set_data(json!("x".repeat(n as usize)));
    });
    io
}

/// Connects a client to `/`, returning it with its `(sid, pid)`.
async fn connect(io: &switchboard_engine::Io) -> (Client, String, String) {
    let client = Client::handshake(io).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    (client, sid, pid)
}

/// What an attacker's churn (or a flaky network) does: the Engine.IO connection closes
/// without a Socket.IO disconnect, a reason that keeps the session.
async fn drop_connection(client: &Client) {
    client.post("1").await;
    // Taking the closing noop lets the server finish the session at once.
    let (_, body) = client.get_raw().await;
    assert_eq!(body, "6");
    // Lets the driver finish, and gives each drop its own time, so "oldest" is
    // well defined.
    tokio::time::sleep(Duration::from_millis(1)).await;
}

/// Whether the client holding `(sid, pid)` gets its session back.
async fn resumes(io: &switchboard_engine::Io, sid: &str, pid: &str) -> bool {
    let back = Client::handshake(io).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let (sid2, pid2) = connect_answer(&back.get().await);
    assert_eq!(sid2 == sid, pid2 == pid, "a new sid comes with a new pid");
    sid2 == sid
}

fn recovery_metrics(io: &switchboard_engine::Io) -> (i64, u64, u64) {
    let m = io.engine().metrics().snapshot();
    (
        m.recovery_sessions,
        m.recovery_sessions_evicted,
        m.recovery_sessions_expired,
    )
}

#[tokio::test(start_paused = true)]
async fn churn_beyond_max_sessions_keeps_the_newest_and_counts_the_dropped() {
    let io = bounded_server(3, usize::MAX);
    let mut ids = Vec::new();
    for _ in 0..5 {
        let (client, sid, pid) = connect(&io).await;
        drop_connection(&client).await;
        ids.push((sid, pid));
    }
    assert_eq!(recovery_metrics(&io), (3, 2, 0));
    for (sid, pid) in &ids[..2] {
        assert!(!resumes(&io, sid, pid).await, "the two oldest were dropped");
    }
    for (sid, pid) in &ids[2..] {
        assert!(resumes(&io, sid, pid).await, "the three newest are kept");
    }
    assert_eq!(recovery_metrics(&io).0, 0, "all taken back");
}

#[tokio::test(start_paused = true)]
async fn kept_sessions_stay_within_max_bytes_oldest_dropped_first() {
    // Room for two sessions of 10 kB data each, not three.
    let io = bounded_server(100, 25_000);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (client, sid, pid) = connect(&io).await;
        client.post(r#"42["fill",10000]"#).await;
        tokio::task::yield_now().await;
        drop_connection(&client).await;
        ids.push((sid, pid));
    }
    assert_eq!(recovery_metrics(&io), (2, 1, 0));
    assert!(!resumes(&io, &ids[0].0, &ids[0].1).await);
    assert!(resumes(&io, &ids[1].0, &ids[1].1).await);
    assert!(resumes(&io, &ids[2].0, &ids[2].1).await);
}

#[tokio::test(start_paused = true)]
async fn a_session_too_large_to_keep_is_not_recovered() {
    let io = bounded_server(100, usize::MAX);
    let (small, small_sid, small_pid) = connect(&io).await;
    drop_connection(&small).await;
    let (big, sid, pid) = connect(&io).await;
    // Over DEFAULT_MAX_BYTES_PER_SESSION (64 KiB).
    big.post(r#"42["fill",70000]"#).await;
    tokio::task::yield_now().await;
    drop_connection(&big).await;
    assert_eq!(recovery_metrics(&io), (1, 1, 0), "it pushed nothing out");
    assert!(!resumes(&io, &sid, &pid).await);
    assert!(resumes(&io, &small_sid, &small_pid).await);
}

#[tokio::test(start_paused = true)]
async fn expired_sessions_are_gone_and_counted() {
    let io = bounded_server(100, usize::MAX);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (client, sid, pid) = connect(&io).await;
        drop_connection(&client).await;
        ids.push((sid, pid));
    }
    tokio::time::sleep(Duration::from_secs(61)).await;
    let (client, sid, pid) = connect(&io).await;
    drop_connection(&client).await;
    assert_eq!(recovery_metrics(&io), (1, 0, 3));
    for (sid, pid) in &ids {
        assert!(!resumes(&io, sid, pid).await);
    }
    assert!(resumes(&io, &sid, &pid).await);
}

/// A namespace with no traffic after its clients dropped still lets their sessions and
/// packets go once the window is over (a timer looks every quarter of it): before,
/// only the namespace's own next persist, resume or broadcast expired them, and what a
/// quiet namespace held stayed charged to `recovery.max_total_bytes`, which every
/// namespace shares, for ever.
#[tokio::test(start_paused = true)]
async fn a_quiet_namespace_lets_its_expired_sessions_and_packets_go() {
    let io = recovering_server();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(connect(&io).await);
    }
    for (client, _, _) in &clients {
        drop_connection(client).await;
    }
    // Missed by all three: kept for their replays.
    io.of("/").emit("tick", json!(1));
    let held = || {
        let m = io.engine().metrics().snapshot();
        (m.recovery_sessions, m.recovery_bytes)
    };
    let (sessions, bytes) = held();
    assert_eq!(sessions, 3);
    assert!(bytes > 0);
    // The window (60 s) and a quarter more: nothing else happens meanwhile.
    tokio::time::sleep(Duration::from_secs(60 + 16)).await;
    assert_eq!(held(), (0, 0), "expired without traffic");
    assert_eq!(recovery_metrics(&io).2, 3, "and counted as expired");
}

#[tokio::test(start_paused = true)]
async fn a_resume_with_an_older_offset_replays_nothing_from_before_the_socket_connected() {
    let io = recovering_server();
    let ns = io.of("/");
    // Someone else is in room-a and hears everything, so it knows every offset.
    let (witness, _, _) = connect(&io).await;
    join(&witness, "room-a").await;
    ns.to("room-a").emit("secret", json!(1));
    ns.emit("news", json!("before"));
    let heard = events(&witness.get().await);
    let oldest = heard[0]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(heard.len(), 2);

    let (client, sid, pid) = connect(&io).await;
    join(&client, "room-a").await;
    drop_connection(&client).await;
    ns.to("room-a").emit("seq", json!("missed"));

    // It claims the oldest buffered offset, from before it existed.
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}","offset":"{oldest}"}}"#))
        .await;
    let body = back.get().await;
    assert_eq!(connect_answer(&body).0, sid, "recovered");
    let replayed: Vec<Value> = events(&body).iter().map(|e| e[0].clone()).collect();
    assert_eq!(
        replayed,
        ["seq"],
        "only what it missed, nothing from before"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_missed_more_than_max_replay_bytes_is_not_recovered() {
    // Each missed event is a frame of about 250 bytes: four fit, ten do not.
    let io = replaying_at_most(1200);
    let ns = io.of("/");
    let (witness, _, _) = connect(&io).await;
    let (far, far_sid, far_pid) = connect(&io).await;
    let (near, near_sid, near_pid) = connect(&io).await;
    drop_connection(&far).await;
    drop_connection(&near).await;
    let pad = "x".repeat(200);
    for n in 1..=10 {
        ns.emit("seq", json!({ "n": n, "pad": pad }));
    }
    let heard = events(&witness.get().await);
    assert_eq!(heard.len(), 10);

    // Ten missed: refused whole, a fresh socket with nothing replayed.
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{far_pid}"}}"#)).await;
    let body = back.get().await;
    let (sid, pid) = connect_answer(&body);
    assert_ne!(
        (sid.as_str(), pid.as_str()),
        (far_sid.as_str(), far_pid.as_str())
    );
    assert!(events(&body).is_empty(), "{body}");

    // The last three missed (it claims the offset of the seventh): within the bound.
    let (_back, replayed) =
        resume_claiming(&io, &near_sid, &near_pid, Some(&offset_of(&heard[6]))).await;
    let numbers: Vec<Value> = replayed.iter().map(|e| e["n"].clone()).collect();
    assert_eq!(numbers, [json!(8), json!(9), json!(10)]);
}

#[tokio::test(start_paused = true)]
async fn max_replay_bytes_bounds_the_replays_of_a_connection_together() {
    // Each namespace's replay is three frames of about 230 bytes: one fits in 1,200
    // bytes, two do not. Before, each namespace of a connection (up to 64) had the
    // whole bound.
    let io = replaying_at_most(1200);
    io.of("/b");
    let client = Client::handshake(&io).await;
    client.post("40").await;
    client.post("40/b,").await;
    let body = client.get().await;
    // The CONNECT answer of `/` (`40{…}`) or of `/b` (`40/b,{…}`): (sid, pid).
    let answer = |prefix: &str, body: &str| -> (String, String) {
        let json = body
            .split('\x1e')
            .find_map(|p| p.strip_prefix(prefix).filter(|rest| rest.starts_with('{')))
            .unwrap_or_else(|| panic!("{prefix} in {body}"))
            .to_owned();
        let v: Value = serde_json::from_str(&json).unwrap();
        let field = |name: &str| v[name].as_str().unwrap().to_owned();
        (field("sid"), field("pid"))
    };
    let (_, root_pid) = answer("40", &body);
    let (b_sid, b_pid) = answer("40/b,", &body);
    drop_connection(&client).await;
    let pad = "x".repeat(150);
    for n in 1..=3 {
        io.of("/").emit("seq", json!({ "n": n, "pad": pad }));
        io.of("/b").emit("seq", json!({ "n": n, "pad": pad }));
    }
    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{root_pid}"}}"#)).await;
    back.post(&format!(r#"40/b,{{"pid":"{b_pid}"}}"#)).await;
    let body = back.get().await;
    let root_events = body.split('\x1e').filter(|p| p.starts_with("42[")).count();
    let b_events = body
        .split('\x1e')
        .filter(|p| p.starts_with("42/b,"))
        .count();
    assert_eq!(root_events, 3, "the first resumed with its replay: {body}");
    assert_eq!(b_events, 0, "the second is not replayed on top: {body}");
    let (sid, pid) = answer("40/b,", &body);
    assert_ne!(
        (sid.as_str(), pid.as_str()),
        (b_sid.as_str(), b_pid.as_str()),
        "not recovered"
    );
}

/// The offset of an event (its last argument).
fn offset_of(event: &Value) -> String {
    event
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Resumes `pid`, claiming `offset` if given; returns the first argument of each
/// replayed event.
async fn resume_claiming(
    io: &switchboard_engine::Io,
    sid: &str,
    pid: &str,
    offset: Option<&str>,
) -> (Client, Vec<Value>) {
    let back = Client::handshake(io).await;
    let claim = match offset {
        Some(offset) => json!({"pid": pid, "offset": offset}),
        None => json!({ "pid": pid }),
    };
    back.post(&format!("40{claim}")).await;
    let body = back.get().await;
    assert_eq!(connect_answer(&body).0, sid, "recovered");
    let replayed = events(&body).iter().map(|e| e[1].clone()).collect();
    (back, replayed)
}

#[tokio::test(start_paused = true)]
async fn a_resume_with_an_older_offset_replays_no_event_of_a_room_from_before_the_socket_joined_it()
{
    let io = recovering_server();
    let ns = io.of("/");
    let (client, sid, pid) = connect(&io).await;
    ns.emit("news", json!("to everyone, before the join"));
    ns.to("room-a")
        .emit("secret", json!("room-a, before the join"));
    // The first event it received gives it an offset from before its join.
    let heard = events(&client.get().await);
    assert_eq!(heard.len(), 1);
    let early = offset_of(&heard[0]);
    join(&client, "room-a").await;
    ns.to("room-a").emit("seq", json!("room-a, after the join"));
    assert_eq!(events(&client.get().await).len(), 1);
    drop_connection(&client).await;
    ns.to("room-a").emit("seq", json!("room-a, missed"));

    // It claims the early offset: what room-a heard before it joined stays unheard.
    let (back, replayed) = resume_claiming(&io, &sid, &pid, Some(&early)).await;
    assert_eq!(replayed, ["room-a, after the join", "room-a, missed"]);

    // Resumed and dropped again, it keeps the floor it joined with.
    drop_connection(&back).await;
    let (_, replayed) = resume_claiming(&io, &sid, &pid, Some(&early)).await;
    assert_eq!(replayed, ["room-a, after the join", "room-a, missed"]);
}

/// An application that joins a socket to its own id's room (a no-op in Node) does not
/// make the socket's direct events from before look like another room's.
#[tokio::test(start_paused = true)]
async fn joining_its_own_room_keeps_its_direct_events_replayable() {
    let io = recovering_server();
    let ns = io.of("/");
    let (client, sid, pid) = connect(&io).await;
    ns.to(sid.as_str()).emit("seq", json!("direct"));
    let heard = events(&client.get().await);
    assert_eq!(heard.len(), 1);
    join(&client, &sid).await;
    drop_connection(&client).await;

    // The client claims it read nothing (its offset from before the direct event).
    let (_, replayed) = resume_claiming(&io, &sid, &pid, None).await;
    assert_eq!(replayed, ["direct"]);
}

/// A resumed socket rejoins its rooms with the recovery buffer locked (so no broadcast
/// slips between its replay and live delivery); a room that becomes occupied then runs
/// the application's handler, which may broadcast, once the lock is released rather
/// than under it (where a broadcast would wait for the lock forever).
#[test]
fn a_room_occupied_handler_that_broadcasts_does_not_block_a_resume() {
    switchboard_test_support::without_hanging(async {
        let io = recovering_server();
        let ns = io.of("/");
        let weak = std::sync::Arc::downgrade(&ns);
        ns.handlers().on_room_occupied(move |_, room, _| {
            if let Some(ns) = weak.upgrade() {
                ns.to(room).emit("welcome", json!(room));
            }
        });
        let (client, sid, pid) = connect(&io).await;
        client.post(r#"42["join","lobby"]"#).await;
        let welcome = events(&client.get().await);
        assert_eq!(welcome[0][0], "welcome");
        let read = offset_of(&welcome[0]);
        drop_connection(&client).await;
        // On real time and two threads, the close may still be under way: wait for it
        // rather than for a fixed moment (a 1 ms pause was once too short on a busy
        // machine).
        eventually("the lobby to be vacated and the session kept", || async {
            ns.adapter().room_size("lobby") == 0 && recovery_metrics(&io).0 == 1
        })
        .await;

        // Nothing was missed: what arrives with the CONNECT answer is the welcome the
        // handler broadcast once the lobby was occupied again.
        let (_, arrived) = resume_claiming(&io, &sid, &pid, Some(&read)).await;
        assert_eq!(arrived, ["lobby"]);
    });
}

/// An event sent to everyone except a room, before the socket joined that room, was
/// the socket's: if the client never read it before its connection dropped, it is
/// replayed (judged by the rooms of now, it would be lost without a word).
#[tokio::test(start_paused = true)]
async fn an_unread_event_excepting_a_room_joined_since_is_still_replayed() {
    let io = recovering_server();
    let ns = io.of("/");
    let (client, sid, pid) = connect(&io).await;
    ns.except("muted").emit("seq", json!("to all but muted"));
    join(&client, "muted").await;
    ns.except("muted").emit("seq", json!("muted by now"));
    // The client reads nothing more: its connection times out.
    drop_by_ping_timeout(&client).await;

    let (_, replayed) = resume_claiming(&io, &sid, &pid, None).await;
    assert_eq!(replayed, ["to all but muted"]);
}

/// The last event to a room, sent just before the server took the socket out of it,
/// was the socket's: if the client never read it before its connection dropped, it is
/// replayed. What the room hears after the leave is not.
#[tokio::test(start_paused = true)]
async fn an_unread_event_to_a_room_left_since_is_still_replayed() {
    let io = recovering_server();
    let ns = io.of("/");
    let (client, sid, pid) = connect(&io).await;
    join(&client, "game").await;
    ns.to("game").emit("seq", json!("game over"));
    ns.sockets().pop().expect("the socket").leave("game");
    ns.to("game").emit("seq", json!("after it left"));
    // The client reads nothing more: its connection times out.
    drop_by_ping_timeout(&client).await;

    let (_, replayed) = resume_claiming(&io, &sid, &pid, None).await;
    assert_eq!(replayed, ["game over"]);
}

/// A client away long enough to miss more events than its queue holds still gets them
/// all: the replay is not a slow consumer (before, the session was closed right after
/// the CONNECT answer told it it recovered, and it came back to a longer replay, in a
/// loop). The bounds still hold for what is sent live after the replay.
#[tokio::test(start_paused = true)]
async fn a_replay_longer_than_the_queue_bound_is_delivered_whole_and_the_bound_still_holds() {
    const BOUND: usize = 8;
    let mut cfg = config();
    cfg.engine.queue = switchboard_engine::QueueLimits {
        max_packets: BOUND,
        max_bytes: 1 << 20,
    };
    cfg.recovery = Some(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        ..RecoveryConfig::default()
    });
    let io = server(cfg);
    let ns = io.of("/");
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let (sid, pid) = connect_answer(&client.get().await);
    drop_by_ping_timeout(&client).await;
    let missed = 5 * BOUND as i64;
    for i in 0..missed {
        ns.emit("seq", json!(i));
    }

    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let body = back.get().await;
    assert_eq!(connect_answer(&body).0, sid, "recovered under its id");
    let mut got: Vec<i64> = events(&body)
        .iter()
        .map(|e| e[1].as_i64().unwrap())
        .collect();
    // Live events arrive behind the replay while it drains, within the bound.
    ns.emit("live", json!(0));
    while got.len() < missed as usize {
        let more = events(&back.get().await);
        assert!(!more.is_empty(), "the session closed mid-replay");
        got.extend(
            more.iter()
                .filter(|e| e[0] == "seq")
                .map(|e| e[1].as_i64().unwrap()),
        );
    }
    assert_eq!(got, (0..missed).collect::<Vec<_>>());
    assert_eq!(disconnects(&io, "slow consumer"), 0);
    let socket = ns.sockets().pop().expect("still connected");
    assert!(socket.recovered());

    // Replay gone: more than the bound, unread, is a slow consumer again.
    for i in 0..=BOUND {
        ns.emit("flood", json!(i));
    }
    // The session's driver counts the close.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
}

/// A server whose resuming clients go through the middleware too, and wait there
/// until the test adds a permit to the gate; and one client that connected and
/// dropped (the server kept its session): the server, the gate, its `(sid, pid)`.
async fn gated_resumes() -> (
    switchboard_engine::Io,
    std::sync::Arc<tokio::sync::Semaphore>,
    (String, String),
) {
    let mut cfg = config();
    cfg.recovery = Some(RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        skip_middlewares: false,
        ..RecoveryConfig::default()
    });
    let io = server(cfg);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let in_middleware = gate.clone();
    io.of("/").use_middleware(move |socket| {
        let gate = in_middleware.clone();
        async move {
            if socket.auth().get("pid").is_some() {
                gate.acquire().await.unwrap().forget();
            }
            Ok(())
        }
    });
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let ids = connect_answer(&client.get().await);
    drop_by_ping_timeout(&client).await;
    (io, gate, ids)
}

/// A client whose connection closes while its resume is still in the middleware (a
/// slow auth check) never heard it was recovered: the session it came for is kept
/// again, and its next try recovers it.
#[tokio::test(start_paused = true)]
async fn a_resume_whose_connection_closes_midway_leaves_the_session_for_the_next_try() {
    let (io, gate, (sid, pid)) = gated_resumes().await;
    let ns = io.of("/");

    let gone = Client::handshake(&io).await;
    gone.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    // The connection closes (here on a bad packet) while the middleware still runs.
    let _ = gone.post_raw("7").await;
    gone.assert_closed().await;
    gate.add_permits(1);
    tokio::time::sleep(PING_INTERVAL / 2).await;
    assert_eq!(ns.socket_count(), 0, "the closed connection got no socket");

    let back = Client::handshake(&io).await;
    gate.add_permits(1);
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let (sid2, pid2) = connect_answer(&back.get().await);
    assert_eq!((sid2, pid2), (sid, pid), "recovered on the next try");
    assert!(ns.sockets().pop().unwrap().recovered());
}

/// A namespace declared with `of_without_recovery` on a server with recovery: its
/// CONNECT answer has no `pid`, and a client naming one from another namespace gets a
/// fresh socket that passes the middleware (what the Admin UI's login relies on).
#[tokio::test(start_paused = true)]
async fn a_namespace_without_recovery_keeps_no_session_and_always_runs_its_middleware() {
    let io = recovering_server();
    let checked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = checked.clone();
    io.of_without_recovery("/guarded")
        .use_middleware(move |_socket| {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Ok(()) }
        });
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let (_, pid) = connect_answer(&client.get().await);
    client.post("40/guarded,").await;
    let answer = client.get().await;
    let v: Value = serde_json::from_str(answer.strip_prefix("40/guarded,").unwrap()).unwrap();
    assert!(v["sid"].is_string(), "{answer}");
    assert!(v.get("pid").is_none(), "no session kept: {answer}");
    client.post("41/guarded,").await;
    client
        .post(&format!(r#"40/guarded,{{"pid":"{pid}","offset":"0"}}"#))
        .await;
    let again: Value =
        serde_json::from_str(client.get().await.strip_prefix("40/guarded,").unwrap()).unwrap();
    assert!(again.get("pid").is_none());
    assert_eq!(
        checked.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "both ran it"
    );
}

/// Node's `skipMiddlewares` spares a *resumed* session the middleware. A client that
/// names a kept session it then does not resume (here: an offset that is not one)
/// starts afresh, and a fresh socket passes the middleware: without a token it is
/// refused. Before, it was accepted unchecked: anyone who once had a session (a token
/// since expired or revoked) got a socket with no claims by resuming with a bad offset.
#[tokio::test(start_paused = true)]
async fn a_session_named_but_not_resumed_does_not_skip_the_middleware() {
    let io = recovering_server();
    io.of("/").use_middleware(|socket| async move {
        if socket.auth()["token"] == "good" {
            Ok(())
        } else {
            Err(switchboard_engine::ConnectError::new("token required"))
        }
    });
    let client = Client::handshake(&io).await;
    client.post(r#"40{"token":"good"}"#).await;
    let (sid, pid) = connect_answer(&client.get().await);
    drop_connection(&client).await;

    let back = Client::handshake(&io).await;
    back.post(&format!(r#"40{{"pid":"{pid}","offset":"not-an-offset"}}"#))
        .await;
    assert_eq!(back.get().await, r#"44{"message":"token required"}"#);
    // With a token, the same claim gets a fresh socket (the session is not resumed).
    back.post(&format!(
        r#"40{{"token":"good","pid":"{pid}","offset":"not-an-offset"}}"#
    ))
    .await;
    let (fresh, _) = connect_answer(&back.get().await);
    assert_ne!(fresh, sid);
    // A real resume still skips the middleware, as in Node.
    let (other, other_sid, other_pid) = {
        let c = Client::handshake(&io).await;
        c.post(r#"40{"token":"good"}"#).await;
        let (s, p) = connect_answer(&c.get().await);
        (c, s, p)
    };
    drop_connection(&other).await;
    assert!(resumes(&io, &other_sid, &other_pid).await);
}

/// Disconnecting sockets with `close` (an operator's kick: the API, the Admin UI, a
/// Node server's `disconnectSockets(true)`) keeps no session, as in Node, where every
/// socket of the connection leaves with `server namespace disconnect`. Before, the
/// connection was closed as `forced close`, which recovery keeps sessions for: the
/// official client, reconnecting by itself, resumed with its `pid`, rooms and all.
#[tokio::test(start_paused = true)]
async fn a_socket_disconnected_with_close_keeps_no_session_to_resume() {
    let io = recovering_server();
    let seen = disconnects_seen(&io.of("/"));
    let (client, sid, pid) = connect(&io).await;
    join(&client, "banned").await;
    io.of("/").to("banned").disconnect_sockets(true);
    let _ = client.get_raw().await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(io.of("/").sockets().len(), 0);
    assert_eq!(
        seen.lock().unwrap().first().map(|(reason, _)| *reason),
        Some("server namespace disconnect")
    );
    assert!(!resumes(&io, &sid, &pid).await, "the kick is not undone");
}

/// A connection an operator ends on purpose (disconnect with `close`, through a socket
/// it has in another namespace) while one of its resumes is still in the middleware:
/// the session that resume took is not kept again (as it is when a connection merely
/// closes midway, above), so the kick cannot be undone by resuming it later.
#[tokio::test(start_paused = true)]
async fn a_resume_under_way_on_a_kicked_connection_is_not_kept_again() {
    let (io, gate, (sid, pid)) = gated_resumes().await;
    let ns = io.of("/");
    io.of("/other");

    let kicked = Client::handshake(&io).await;
    kicked.post("40/other,").await;
    assert!(kicked.get().await.starts_with("40/other,"));
    kicked.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    // While that resume waits in the middleware, the operator kicks the connection.
    io.of("/other").all().disconnect_sockets(true);
    gate.add_permits(1);
    tokio::time::sleep(PING_INTERVAL / 2).await;
    assert_eq!(ns.socket_count(), 0, "the kicked connection got no socket");

    let back = Client::handshake(&io).await;
    gate.add_permits(1);
    back.post(&format!(r#"40{{"pid":"{pid}"}}"#)).await;
    let (sid2, _) = connect_answer(&back.get().await);
    assert_ne!(sid2, sid, "the session the kicked connection took is gone");
}
