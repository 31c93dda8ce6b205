//! A client that ends its own session (`socket.disconnect()` in the official client: a
//! Socket.IO DISCONNECT) and connects again at once, keeping its `pid`, starts afresh
//! on whichever node it reaches, as with Node, however far behind the node it left
//! is with its stream writes: with `redis-streams` recovery the session saved while
//! it was connected is deleted at once, not behind those writes, by one task of the
//! node however many sessions end together, and a save of it the node's writer still
//! holds does not bring it back. Over a real `redis-server`.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, eventually, formed};
use switchboard_cluster::{AdapterKind, ClusterConfig};
use tokio::time::Instant;

fn options(name: &str) -> NodeOptions {
    NodeOptions::new(AdapterKind::RedisStreams, name).recovery()
}

/// How many times Redis has run `command` (`INFO commandstats`).
async fn calls(redis: &RedisServer, command: &str) -> u64 {
    let mut conn = support::patient_conn(redis).await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Deletes `key` from Redis behind the nodes' backs.
async fn delete_key(redis: &RedisServer, key: &str) {
    let mut conn = support::patient_conn(redis).await;
    let _: i64 = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// How many entries the cluster's stream holds.
async fn stream_len(redis: &RedisServer) -> u64 {
    let mut conn = support::patient_conn(redis).await;
    redis::cmd("XLEN")
        .arg(ClusterConfig::default().stream_name)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// A client on `one` in room `a`, once Redis holds its session with that room (read
/// through `two`, without taking it): the client and its CONNECT answer.
async fn in_room_a(one: &Node, two: &Node) -> (Client, support::Connected) {
    let (client, first) = Client::connected(&one.io).await;
    let pid = first.pid.clone().expect("recovery gives a pid");
    client.emit("join", &[json!("a")]).await;
    let store = two.ns().adapter().session_store().unwrap();
    eventually("Redis holds the session in room a", || async {
        store
            .peek(&pid)
            .await
            .ok()
            .flatten()
            .is_some_and(|s| s.rooms.contains(&"a".to_owned()))
    })
    .await;
    (client, first)
}

/// The client ends its session: a DISCONNECT of `/`, its Engine.IO session left open
/// (as `socket.disconnect()` on one of several namespaces); returns once `node` let
/// the socket go, and so has asked for the session's deletion.
async fn ends_its_session(client: &Client, node: &Node) {
    client.post("41").await;
    eventually("the node let the socket go", || async {
        node.ns().socket_count() == 0
    })
    .await;
}

/// The client of `first` connects to `node` again with its `pid`: it must start
/// afresh, with a new socket, outside the room it was in.
async fn starts_afresh(node: &Node, first: &support::Connected) {
    let pid = first.pid.as_deref().unwrap();
    let back = Client::handshake(&node.io).await;
    let again = back.connect(&json!({ "pid": pid }).to_string()).await;
    assert_ne!(
        again.id, first.id,
        "a session its client ended is not resumed"
    );
    let socket = || {
        node.ns()
            .sockets()
            .into_iter()
            .find(|s| s.id().as_str() == again.id)
    };
    eventually("the new socket is listed", || async { socket().is_some() }).await;
    let socket = socket().unwrap();
    assert!(!socket.recovered());
    assert!(
        !socket.rooms().contains(&"a".to_owned()),
        "{:?}",
        socket.rooms()
    );
}

/// Node one's writer is held up for the whole test: it waits for a replica that does
/// not exist (`replicas_to_ack = 1` against a Redis without replicas, as when the
/// replicas are down), so the batch of a broadcast's entry is sent again and again
/// and every write queued behind it waits as long. A busy publisher's backlog holds a
/// deletion up the same way, but only for as long as it lasts; this holds it until
/// the test is over. Before, the deletion waited in that queue: the session stayed in
/// Redis, and the client connecting to node two resumed it (`recovered`, back in room
/// `a`). Now it is written at once, while the entry still waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_its_client_ended_is_deleted_while_the_nodes_stream_writes_wait() {
    let redis = RedisServer::start().await;
    let (one, two) = one_waiting_for_a_replica(&redis).await;
    let (client, first) = in_room_a(&one, &two).await;
    let pid = first.pid.clone().unwrap();

    // No replica will ever acknowledge the entry. Once it is in the stream, the
    // writer has sent its batch (and sends it again and again): the deletion cannot
    // be in that batch, and waits behind it if it is queued.
    let before = stream_len(&redis).await;
    one.ns().to("a").emit("news", json!("held up"));
    let redis = &redis;
    eventually("node one's writer sent the entry", || async {
        stream_len(redis).await > before
    })
    .await;
    assert!(
        one.cluster.flush_writes(Instant::now()).await > 0,
        "node one's stream writes wait"
    );

    ends_its_session(&client, &one).await;
    eventually("the ended session is deleted from Redis", || async {
        support::session_ttl(redis, &pid).await.is_none()
    })
    .await;
    assert!(
        one.cluster.flush_writes(Instant::now()).await > 0,
        "deleted while node one's stream writes still wait"
    );
    starts_afresh(&two, &first).await;
}

/// A deletion Redis could not take when it was asked for (Redis was down) is not lost:
/// it is queued and written once Redis is back, and counted as unsent meanwhile (a
/// drain waits for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_while_redis_is_down_is_deleted_once_it_is_back() {
    let mut redis = RedisServer::start().await;
    let (one, two) = (
        Node::start(&redis, options("one")).await,
        Node::start(&redis, options("two")).await,
    );
    formed(&[&one, &two]).await;
    let (client, first) = in_room_a(&one, &two).await;
    let pid = first.pid.clone().unwrap();

    redis.kill();
    ends_its_session(&client, &one).await;
    assert!(
        one.cluster.flush_writes(Instant::now()).await > 0,
        "the deletion is unsent while Redis is down"
    );
    redis.restart().await;
    let redis = &redis;
    eventually(
        "the ended session is deleted once Redis is back",
        || async { support::session_ttl(redis, &pid).await.is_none() },
    )
    .await;
    nothing_left_unsent(&one).await;
    starts_afresh(&two, &first).await;
}

/// The writer holds a batch with a save of the session (it waits for a replica that
/// does not exist, and is sent again, save and all, every second or so) when the
/// client ends its session. The deletion, written at once, fences the socket's later
/// saves in Redis for a minute (`FORGET_FENCE`), but the batch is sent again for as
/// long as the replica stays away: before, once the fence expired, the next try
/// stored the session again with its whole life, and a client reconnecting through
/// node two was resumed (`recovered`, back in room `a`). Now the writer takes the save
/// out of the batch it holds once the deletion is made. The fence's expiry is brought
/// about by deleting its key (what expiry does), not by waiting a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_the_writer_sends_again_does_not_outlive_the_deletions_fence() {
    let redis = RedisServer::start().await;
    let (one, two) = one_waiting_for_a_replica(&redis).await;
    let (client, first) = in_room_a(&one, &two).await;
    let pid = first.pid.clone().unwrap();
    let key = format!("sio:session:{pid}");
    let socket = one
        .ns()
        .sockets()
        .into_iter()
        .find(|s| s.id().as_str() == first.id)
        .unwrap();

    // A save of the session in the same batch as a broadcast's entry. Redis stopped,
    // the writer sends nothing meanwhile: it holds the first save (alone, sent once
    // Redis is back, the entry and the second save then taken together) or takes
    // all at once; either way a batch with the entry and a save follows.
    let before = stream_len(&redis).await;
    redis.pause();
    socket.join(&["b"]);
    one.ns().to("a").emit("news", json!("held up"));
    socket.join(&["c"]);
    redis.resume();
    let redis = &redis;
    eventually("node one's writer sent the entry", || async {
        stream_len(redis).await > before
    })
    .await;
    // The batch holding the entry holds a save of the session: deleted, the session
    // is stored again by the batch's next try (nothing behind the batch is sent).
    delete_key(redis, &key).await;
    eventually("the held batch stores the session again", || async {
        support::session_ttl(redis, &pid).await.is_some()
    })
    .await;

    ends_its_session(&client, &one).await;
    eventually("the ended session is deleted from Redis", || async {
        support::session_ttl(redis, &pid).await.is_none()
    })
    .await;
    // The fence expires (its key is the session's epoch key).
    delete_key(redis, &format!("{{{key}}}:epoch")).await;
    // Two more tries of the held batch (one may have been under way already): each
    // answers its `WAIT`, the only one anyone sends here.
    let tried = calls(redis, "wait").await;
    eventually("node one's writer sent its batch twice more", || async {
        calls(redis, "wait").await >= tried + 2
    })
    .await;
    assert_eq!(
        support::session_ttl(redis, &pid).await,
        None,
        "the held batch did not store the ended session again"
    );
    starts_afresh(&two, &first).await;
}

/// `disconnectSockets` of many sockets ends many sessions at once. Each deletion used
/// to be a task of its own, and with Redis not answering (stopped here) they all
/// waited on the node's shared connection; now one task takes them, through a
/// bounded channel, and what it cannot take is queued behind the node's other
/// writes. None is lost: all are counted unsent until Redis has them, and written
/// once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ended_sessions_takes_no_task_each_and_all_are_deleted() {
    const ENDED: usize = 5000;
    let redis = RedisServer::start().await;
    let one = Node::start(&redis, options("one")).await;
    let pids: Vec<String> = (0..ENDED).map(|i| format!("ended{i}")).collect();
    {
        let mut conn = support::patient_conn(&redis).await;
        let mut pipe = redis::pipe();
        for pid in &pids {
            pipe.cmd("SET")
                .arg(format!("sio:session:{pid}"))
                .arg("a session")
                .arg("PX")
                .arg(600_000)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
    let store = one.ns().adapter().session_store().unwrap();

    redis.pause();
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks = metrics.num_alive_tasks();
    for pid in &pids {
        store.forget(pid, 0, true);
    }
    let added = metrics.num_alive_tasks().saturating_sub(tasks);
    assert!(added < 100, "{added} tasks for {ENDED} deletions");
    assert!(
        one.cluster.flush_writes(Instant::now()).await > 0,
        "unsent while Redis does not answer"
    );
    redis.resume();

    let redis = &redis;
    let keys: Vec<String> = pids.iter().map(|p| format!("sio:session:{p}")).collect();
    eventually("every ended session is deleted", || async {
        let mut conn = support::patient_conn(redis).await;
        let left: usize = redis::cmd("EXISTS")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
        left == 0
    })
    .await;
    nothing_left_unsent(&one).await;
}

/// Nodes one and two on `redis`, formed; node one's writer waits for a replica that
/// does not exist (`replicas_to_ack = 1` against a Redis without replicas, as when the
/// replicas are down), so every batch it takes is sent again and again.
async fn one_waiting_for_a_replica(redis: &RedisServer) -> (Node, Node) {
    let waits_for_a_replica = ClusterConfig {
        redis_url: redis.url(),
        replicas_to_ack: 1,
        ..ClusterConfig::default()
    };
    let one = Node::start_with(waits_for_a_replica, options("one")).await;
    let two = Node::start(redis, options("two")).await;
    formed(&[&one, &two]).await;
    (one, two)
}

/// Asserts `node` has nothing left to send to Redis (waiting up to the deadline).
async fn nothing_left_unsent(node: &Node) {
    assert_eq!(
        node.cluster
            .flush_writes(Instant::now() + support::DEADLINE)
            .await,
        0,
        "nothing left unsent"
    );
}
