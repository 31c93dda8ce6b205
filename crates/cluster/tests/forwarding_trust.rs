//! Forwarded polling requests come from the cluster's nodes only: a frame published on
//! a node's forwarding channel (`<key_prefix>-fwd#<tag>`) by anyone who can reach the
//! Redis but does not hold the cluster secret — unsealed, sealed with another secret,
//! sent long ago, or meant for another node — runs no poll on a session and answers
//! no waiting request; a frame sealed with the secret is served as before, once. And
//! whoever reads the channel cannot read a forwarded request: its session id is a
//! bearer credential on every node's public listener.
//!
//! The frames here are made by this test, not by the crate: as an attacker on the
//! Redis would (ChaCha20-Poly1305 under a key derived from the secret and a salt,
//! through `ring`). The control cases (a correctly sealed GET and POST that are served) prove
//! the test writes the format the nodes read.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use serde_json::json;
use support::{Client, Node, NodeOptions, RedisServer, SECRET, eventually, formed, within};
use switchboard_cluster::AdapterKind;

/// The label authenticated beside the frame (the crate's `forward::frame::DOMAIN`).
const DOMAIN: &[u8] = b"switchboard forwarding frame v1\0";
/// What the sealing keys are derived from the secret with, beside a salt (the crate's
/// `sign::SEAL_KEY_LABEL`).
const SEAL_KEY_LABEL: &[u8] = b"switchboard sealing key v1\0";
const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
/// The tag of a node that does not exist: where the attacker reads its answers.
const ATTACKER: &str = "evil00";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// How a forged frame is sealed.
#[derive(Debug, Clone, Copy)]
enum Signed {
    /// Not at all: the frame in the clear.
    Not,
    /// With the cluster's secret.
    Right,
    /// With a secret of the right length that is not the cluster's.
    Wrong,
}

/// The sealing key the nodes derive from `secret` and a `salt`.
fn sealing_key(secret: &str, salt: &[u8]) -> LessSafeKey {
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()));
    ctx.update(SEAL_KEY_LABEL);
    ctx.update(salt);
    let derived = ctx.sign();
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, derived.as_ref()).unwrap())
}

/// Bytes of the salt that picks the sealing key.
const SALT_LEN: usize = 16;

/// A frame as the nodes write it: `salt | nonce | sealed(kind | header length | JSON
/// header | body) | tag`.
fn frame(signed: Signed, kind: u8, header: &str, body: &[u8]) -> Vec<u8> {
    let mut plain = vec![kind];
    plain.extend_from_slice(&(header.len() as u32).to_be_bytes());
    plain.extend_from_slice(header.as_bytes());
    plain.extend_from_slice(body);
    let secret = match signed {
        Signed::Not => return plain,
        Signed::Right => SECRET,
        Signed::Wrong => "another secret, just as long as the real one",
    };
    let (salt, nonce): ([u8; SALT_LEN], [u8; NONCE_LEN]) = (rand::random(), rand::random());
    let mut out = [&salt[..], &nonce[..], &plain[..]].concat();
    let tag = sealing_key(secret, &salt)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(DOMAIN),
            &mut out[SALT_LEN + NONCE_LEN..],
        )
        .unwrap();
    out.extend_from_slice(tag.as_ref());
    out
}

/// A sealed frame opened with the cluster's secret (what no one without it can do).
fn opened(sealed: &[u8]) -> Vec<u8> {
    let (salt, rest) = sealed.split_at(SALT_LEN);
    let (nonce, rest) = rest.split_at(NONCE_LEN);
    let mut plain = rest.to_vec();
    let len = sealing_key(SECRET, salt)
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::from(DOMAIN),
            &mut plain,
        )
        .unwrap()
        .len();
    plain.truncate(len);
    plain
}

/// A polling request for `sid` from [`ATTACKER`], meant for node `to`, sent at `ts`.
fn request(
    signed: Signed,
    to: &str,
    ts: u64,
    id: u128,
    method: &str,
    sid: &str,
    body: &str,
) -> Vec<u8> {
    let header = json!({
        "to": to,
        "ts": ts,
        "from": ATTACKER,
        "method": method,
        "query": format!("EIO=4&transport=polling&sid={sid}"),
        "remote": "203.0.113.9:4444",
        "headers": [["content-type", "text/plain;charset=UTF-8"]],
    })
    .to_string();
    // `id` is a 128-bit number: spliced in as JSON text.
    let header = header.replacen('{', &format!("{{\"id\":{id},"), 1);
    frame(signed, KIND_REQUEST, &header, body.as_bytes())
}

/// What a node publishes: channel and payload.
async fn publish(redis: &RedisServer, channel: &str, payload: &[u8]) -> usize {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Subscribes to `channel` and returns its payloads as they come.
async fn listen(
    redis: &RedisServer,
    channel: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<Vec<u8>> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(channel).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            if tx.send(msg.get_payload_bytes().to_vec()).is_err() {
                return;
            }
        }
    });
    rx
}

fn rejected(node: &Node) -> u64 {
    node.cluster
        .health()
        .unwrap()
        .forward_rejected
        .load(Ordering::Relaxed)
}

/// The JSON header of a sealed frame, as text.
fn header_text(sealed: &[u8]) -> String {
    let frame = opened(sealed);
    let len = u32::from_be_bytes(frame[1..5].try_into().unwrap()) as usize;
    String::from_utf8(frame[5..5 + len].to_vec()).unwrap()
}

/// The JSON header of a signed frame.
fn header_of(frame: &[u8]) -> serde_json::Value {
    serde_json::from_str(&header_text(frame)).unwrap()
}

/// The id of a signed frame, as JSON text (a 128-bit number does not fit a
/// `serde_json::Value`).
fn id_of(frame: &[u8]) -> String {
    let header = header_text(frame);
    let at = header.find(r#""id":"#).unwrap() + 5;
    header[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

/// A Redis and two formed nodes on it, with their tags.
async fn cluster() -> (RedisServer, Node, Node, String, String) {
    let redis = RedisServer::start().await;
    let one = Node::start(&redis, NodeOptions::new(AdapterKind::Redis, "one")).await;
    let two = Node::start(&redis, NodeOptions::new(AdapterKind::Redis, "two")).await;
    formed(&[&one, &two]).await;
    let tag = |node: &Node| node.cluster.node_tag().unwrap().as_str().to_owned();
    let (one_tag, two_tag) = (tag(&one), tag(&two));
    (redis, one, two, one_tag, two_tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_requests_run_no_poll_and_signed_ones_run_once() {
    let (redis, one, _two, tag, other) = cluster().await;
    let channel = format!("socket.io-fwd#{tag}");
    let mut answers = listen(&redis, &format!("socket.io-fwd#{ATTACKER}")).await;

    let (client, _) = Client::connected(&one.io).await;
    let socket = one.ns().sockets().pop().unwrap();
    socket.emit("held", json!(1)).unwrap();
    let join = r#"42["join","hacked"]"#;

    // Every forgery, as a GET (would take the held frames) and a POST (would join
    // the socket to `hacked`).
    let now = now_ms();
    let mut forgeries = Vec::new();
    for (method, body) in [("GET", ""), ("POST", join)] {
        let mut id = rand::random::<u128>();
        let mut next = |signed, to: &str, ts| {
            id += 1;
            request(signed, to, ts, id, method, &client.sid, body)
        };
        forgeries.push(("unsigned", next(Signed::Not, &tag, now)));
        forgeries.push(("wrong secret", next(Signed::Wrong, &tag, now)));
        forgeries.push(("ten minutes old", next(Signed::Right, &tag, now - 600_000)));
        forgeries.push(("from the future", next(Signed::Right, &tag, now + 600_000)));
        forgeries.push(("meant for node two", next(Signed::Right, &other, now)));
    }
    for (n, (what, forged)) in forgeries.iter().enumerate() {
        assert_eq!(publish(&redis, &channel, forged).await, 1, "{what}");
        eventually(&format!("the {what} frame is dropped"), || async {
            rejected(&one) == n as u64 + 1
        })
        .await;
    }
    assert!(
        answers.try_recv().is_err(),
        "no forged request was answered"
    );
    assert!(!socket.rooms().contains(&"hacked".to_owned()));
    // The held frame is still there for the real client.
    assert_eq!(client.events().await, [json!(["held", 1])]);

    // Signed with the secret, for this node, now: served (the test writes frames
    // right), and once only.
    socket.emit("held", json!(2)).unwrap();
    let signed_get = request(
        Signed::Right,
        &tag,
        now_ms(),
        rand::random(),
        "GET",
        &client.sid,
        "",
    );
    publish(&redis, &channel, &signed_get).await;
    let answer = within("the signed GET's answer", answers.recv())
        .await
        .unwrap();
    assert_eq!(header_of(&answer)["status"], 200);
    assert!(String::from_utf8_lossy(&opened(&answer)).ends_with(r#"42["held",2]"#));
    let before = rejected(&one);
    socket.emit("held", json!(3)).unwrap();
    publish(&redis, &channel, &signed_get).await;
    eventually("the replayed GET is dropped", || async {
        rejected(&one) == before + 1
    })
    .await;
    assert_eq!(client.events().await, [json!(["held", 3])]);

    let signed_post = request(
        Signed::Right,
        &tag,
        now_ms(),
        rand::random(),
        "POST",
        &client.sid,
        join,
    );
    publish(&redis, &channel, &signed_post).await;
    within("the signed POST's answer", answers.recv())
        .await
        .unwrap();
    eventually("the signed POST joined the room", || async {
        socket.rooms().contains(&"hacked".to_owned())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_answer_does_not_reach_a_waiting_forward() {
    let (redis, one, two, one_tag, two_tag) = cluster().await;
    // The attacker hears the requests node two forwards to node one; it cannot read
    // them (the next test), but say it knew the request's id anyway.
    let mut requests = listen(&redis, &format!("socket.io-fwd#{one_tag}")).await;

    let (client, _) = Client::connected(&one.io).await;
    let via_two = client.via(&two.io);
    let waiting = tokio::spawn(async move { via_two.get_raw().await });
    let seen = within("the forwarded GET", requests.recv()).await.unwrap();
    let id = id_of(&seen);
    let forged_header = |to: &str| {
        format!(
            r#"{{"id":{id},"to":"{to}","ts":{},"from":"{one_tag}","status":200,"headers":[["content-type","text/plain; charset=UTF-8"],["set-cookie","a=b"]]}}"#,
            now_ms()
        )
    };
    let body = br#"42["forged"]"#;
    let channel = format!("socket.io-fwd#{two_tag}");
    for signed in [Signed::Not, Signed::Wrong] {
        publish(
            &redis,
            &channel,
            &frame(signed, KIND_RESPONSE, &forged_header(&two_tag), body),
        )
        .await;
    }
    // Signed, but meant for another node.
    publish(
        &redis,
        &channel,
        &frame(Signed::Right, KIND_RESPONSE, &forged_header(&one_tag), body),
    )
    .await;
    eventually("node two drops the three forged answers", || async {
        rejected(&two) == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "a forged answer ended the wait");

    // The owner's real answer still arrives.
    one.ns()
        .sockets()
        .pop()
        .unwrap()
        .emit("real", json!(1))
        .unwrap();
    let (status, body) = within("the real answer", waiting).await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, r#"42["real",1]"#));
}

/// Whoever reads a node's forwarding channel learns nothing of what is forwarded: not
/// the session's id (with it, anyone could poll or post as the client on any node's
/// public listener), not what the client posts, not the answer. Before 2026-12-07
/// frames were signed, not encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_of_the_forwarding_channels_learns_no_session_id_nor_traffic() {
    let (redis, one, two, one_tag, two_tag) = cluster().await;
    let mut to_one = listen(&redis, &format!("socket.io-fwd#{one_tag}")).await;
    let mut to_two = listen(&redis, &format!("socket.io-fwd#{two_tag}")).await;
    let (client, _) = Client::connected(&one.io).await;
    let via_two = client.via(&two.io);
    via_two.post(r#"42["secret-event","private words"]"#).await;
    let socket = one.ns().sockets().pop().unwrap();
    socket.emit("reply", json!("private answer")).unwrap();
    assert_eq!(via_two.events().await, [json!(["reply", "private answer"])]);
    let mut heard = Vec::new();
    while let Ok(Some(frame)) =
        tokio::time::timeout(Duration::from_millis(200), to_one.recv()).await
    {
        heard.push(frame);
    }
    while let Ok(frame) = to_two.try_recv() {
        heard.push(frame);
    }
    assert!(
        heard.len() >= 4,
        "a POST and a GET each way: {}",
        heard.len()
    );
    for frame in &heard {
        for secret in [client.sid.as_str(), "private words", "private answer"] {
            assert!(
                !frame.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret:?} readable on the channel"
            );
        }
        // What the nodes sealed opens with the secret, and holds the session id.
        assert!(header_text(frame).contains("\"to\""));
    }
    assert!(
        heard
            .iter()
            .any(|f| String::from_utf8_lossy(&opened(f)).contains(&client.sid)),
        "the forwarded requests carry the session id, sealed"
    );
}
