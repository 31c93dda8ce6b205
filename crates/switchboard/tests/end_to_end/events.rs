//! Client events under the namespace rules: relayed to a room without the sender,
//! forwarded to the backend whose reply becomes the acknowledgement (without holding up
//! the sender's other events while the backend thinks), denied when no rule allows
//! them, and cut off by the rate limit.

use std::sync::Mutex;
use std::sync::mpsc;

use serde_json::{Value, json};

use super::backend::{no_reply, serve_rules, serve_rules_from};
use super::client::{Polling, metric};
use super::socket::{SioClient, token};
use super::support::SAFETY_TIMEOUT;

fn user(addr: std::net::SocketAddr, sub: &str) -> anyhow::Result<SioClient> {
    let auth = json!({ "token": token(sub, 60, json!({}))? });
    Ok(SioClient::connect(addr, "/chat", auth)?.accepted()?.0)
}

#[test]
fn relayed_events_reach_the_room_but_not_the_sender() -> anyhow::Result<()> {
    let (server, _backend) = serve_rules(no_reply)?;
    let (mut bob, mut carol, mut dave) = (
        user(server.addr(), "bob")?,
        user(server.addr(), "carol")?,
        user(server.addr(), "dave")?,
    );
    for client in [&mut bob, &mut carol] {
        assert_eq!(
            client.call("join", &[json!("chat:lobby")])?,
            [json!({"ok": true})]
        );
    }
    let said = [json!("chat:lobby"), json!({"text": "hi"})];
    assert_eq!(bob.call("message", &said)?, [json!({"ok": true})]);
    assert_eq!(carol.event("message")?, said);
    assert_eq!(
        dave.call("message", &said)?,
        [json!({"error": "not in room"})]
    );
    // Everything for bob and dave up to their acks has arrived: no relayed message.
    assert_eq!(bob.pending_events(), Vec::<String>::new());
    assert_eq!(dave.pending_events(), Vec::<String>::new());
    Ok(())
}

/// The backend's answer to `order:create`: an ack echoing the item, a join, and an
/// emit to the lobby.
fn order_backend(body: &Value) -> Value {
    let data = &body["data"];
    json!({
        "ack": [{"order": 1, "item": data["args"][0]["item"], "by": data["claims"]["sub"]}],
        "actions": [
            {"type": "join", "rooms": ["chat:order-1"]},
            {"type": "emit", "rooms": ["chat:lobby"], "event": "order:created", "args": [{"id": 1}]}
        ]
    })
}

#[test]
fn a_forwarded_event_is_answered_by_the_backend_and_its_actions_applied() -> anyhow::Result<()> {
    let (server, backend) = serve_rules(order_backend)?;
    let (mut bob, mut carol) = (user(server.addr(), "bob")?, user(server.addr(), "carol")?);
    assert_eq!(
        carol.call("join", &[json!("chat:lobby")])?,
        [json!({"ok": true})]
    );
    let ack = bob.call("order:create", &[json!({"item": "tea"})])?;
    assert_eq!(ack, [json!({"order": 1, "item": "tea", "by": "bob"})]);
    assert_eq!(carol.event("order:created")?, [json!({"id": 1})]);
    let forwarded = backend.wait_for("event", |d| d["event"] == "order:create")?;
    assert_eq!(forwarded["data"]["args"], json!([{"item": "tea"}]));
    // The join action ran before the ack: bob may relay to the order's room.
    let relay = bob.call("message", &[json!("chat:order-1"), json!("paid")])?;
    assert_eq!(relay, [json!({"ok": true})]);
    Ok(())
}

/// A backend that passes the client's first argument on as its actions, as one that
/// echoes a client's room names would.
fn echoing_backend(body: &Value) -> Value {
    json!({ "ack": ["done"], "actions": body["data"]["args"][0] })
}

/// docs/rules.md: a backend's joins are trusted as to which rooms, not how many. Bob
/// starts in `user:bob` (`max_per_socket = 3` in the test rules); a reply that would
/// take him past three rooms, into another socket's id room, or into a room with a name
/// over 256 bytes, is refused whole: nothing of it applied, the client told why. (Ten
/// events at most: the test rules' rate limit has a burst of ten.)
#[test]
fn a_backends_joins_are_held_to_the_room_bounds() -> anyhow::Result<()> {
    let (server, _backend) = serve_rules(echoing_backend)?;
    let mut bob = user(server.addr(), "bob")?;
    let auth = json!({ "token": token("carol", 60, json!({}))? });
    let (_carol, carol_sid) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    let join = |rooms: Value| json!([{"type": "join", "rooms": rooms}]);
    let relay = |bob: &mut SioClient, room: &str| bob.call("message", &[json!(room), json!("hi")]);

    // A name over 256 bytes, while there is room for it.
    let long = format!("chat:{}", "x".repeat(252));
    let too_long = bob.call("order:actions", &[join(json!([long]))])?;
    assert_eq!(too_long, [json!({"error": "backend reply invalid"})]);

    let ok = bob.call("order:actions", &[join(json!(["chat:a", "chat:b"]))])?;
    assert_eq!(ok, [json!("done")]);
    let over = bob.call("order:actions", &[join(json!(["chat:c"]))])?;
    assert_eq!(over, [json!({"error": "too many rooms"})]);
    assert_eq!(
        relay(&mut bob, "chat:c")?,
        [json!({"error": "not in room"})]
    );
    // At the bound, rooms it is in already take no place.
    let again = bob.call("order:actions", &[join(json!(["chat:a"]))])?;
    assert_eq!(again, [json!("done")]);

    // A leave before a join in the same reply makes room for it.
    let swap = json!([
        {"type": "leave", "rooms": ["chat:a"]},
        {"type": "join", "rooms": ["chat:c"]}
    ]);
    assert_eq!(bob.call("order:actions", &[swap])?, [json!("done")]);
    assert_eq!(relay(&mut bob, "chat:c")?, [json!({"ok": true})]);

    // Another socket's id room, even with a leave making room: the reply is invalid
    // and its leave is not applied either.
    let steal = json!([
        {"type": "leave", "rooms": ["chat:b"]},
        {"type": "join", "rooms": [carol_sid]}
    ]);
    let stolen = bob.call("order:actions", &[steal])?;
    assert_eq!(stolen, [json!({"error": "backend reply invalid"})]);
    assert_eq!(relay(&mut bob, "chat:b")?, [json!({"ok": true})]);
    Ok(())
}

/// docs/rules.md: "Forwarding never blocks the socket: other events keep flowing while
/// the backend thinks." The backend holds its answer to `order:slow` until the test
/// releases it; meanwhile the same socket's forwarded `order:fast`, a join and a relayed
/// message are all answered and delivered. Only then is `order:slow` released, and its
/// acknowledgement is still the backend's answer (not a timeout). Were forwarding
/// awaited in the socket's read loop, `order:fast` could only be answered after
/// `order:slow` timed out, and the last assertion would see `backend timeout`.
#[test]
fn a_forwarded_event_waiting_for_the_backend_does_not_hold_up_the_socket() -> anyhow::Result<()> {
    let (arrived_tx, arrived) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let (arrived_tx, released) = (Mutex::new(arrived_tx), Mutex::new(released));
    let (server, _backend) = serve_rules(move |body| {
        let event = &body["data"]["event"];
        if event == "order:slow" {
            let _ = arrived_tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(());
            // Safety net: a test that failed early never releases.
            let _ = released
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv_timeout(SAFETY_TIMEOUT);
        }
        json!({ "ack": [event] })
    })?;
    let (mut bob, mut carol) = (user(server.addr(), "bob")?, user(server.addr(), "carol")?);
    assert_eq!(
        carol.call("join", &[json!("chat:lobby")])?,
        [json!({"ok": true})]
    );

    let slow = bob.emit_with_ack("order:slow", &[])?;
    arrived.recv_timeout(SAFETY_TIMEOUT)?;
    // The backend is holding `order:slow`; the socket is not.
    assert_eq!(bob.call("order:fast", &[])?, [json!("order:fast")]);
    assert_eq!(
        bob.call("join", &[json!("chat:lobby")])?,
        [json!({"ok": true})]
    );
    let said = [json!("chat:lobby"), json!("meanwhile")];
    assert_eq!(bob.call("message", &said)?, [json!({"ok": true})]);
    assert_eq!(carol.event("message")?, said);

    release.send(())?;
    assert_eq!(bob.ack(slow)?, [json!("order:slow")]);
    Ok(())
}

#[test]
fn events_no_rule_allows_are_denied() -> anyhow::Result<()> {
    let (server, _backend) = serve_rules(no_reply)?;
    let mut bob = user(server.addr(), "bob")?;
    assert_eq!(
        bob.call("shout", &[json!("hey")])?,
        [json!({"error": "event not allowed"})]
    );
    bob.emit("shout", &[json!("no ack wanted")])?;
    assert_eq!(bob.call("join", &[json!("chat:x")])?, [json!({"ok": true})]);
    let denied = r#"switchboard_client_events_total{outcome="denied"}"#;
    assert_eq!(metric(server.addr(), denied)?, Some(2.0));
    Ok(())
}

/// A server with `forward_flood.toml` whose backend holds every `order:slow` event
/// until [`HeldBackend::release`] (or the safety timeout: a failed test never
/// releases) and answers each event with its name as the acknowledgement; other
/// events at once.
struct HeldBackend {
    server: super::support::TestServer,
    _backend: super::backend::Backend,
    released: std::sync::Arc<std::sync::atomic::AtomicBool>,
    arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl HeldBackend {
    fn start() -> anyhow::Result<Self> {
        use std::sync::atomic::Ordering;
        let released = std::sync::Arc::<std::sync::atomic::AtomicBool>::default();
        let arrived = std::sync::Arc::<std::sync::atomic::AtomicUsize>::default();
        let (hold, count) = (released.clone(), arrived.clone());
        let (server, backend) = serve_rules_from("forward_flood.toml", move |body| {
            count.fetch_add(1, Ordering::AcqRel);
            let event = &body["data"]["event"];
            let until = std::time::Instant::now() + SAFETY_TIMEOUT;
            while event == "order:slow"
                && !hold.load(Ordering::Acquire)
                && std::time::Instant::now() < until
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            json!({ "ack": [event] })
        })?;
        Ok(HeldBackend {
            server,
            _backend: backend,
            released,
            arrived,
        })
    }

    /// A client connected to `/open`, and its socket id.
    fn open(&self) -> anyhow::Result<(SioClient, String)> {
        SioClient::connect(self.server.addr(), "/open", json!({}))?.accepted()
    }

    /// Events the backend has received.
    fn arrived(&self) -> usize {
        self.arrived.load(std::sync::atomic::Ordering::Acquire)
    }

    fn release(&self) {
        self.released
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// docs/rules.md: at most 64 forwarded events of one socket wait for the backend. A
/// client that floods a namespace with no rate limit (4,200 events, more than the
/// 4,096 every socket together may have waiting) gets `backend busy` for all but its
/// first 64 at once, and the backend stays available to everyone else: another
/// socket's event is still forwarded and answered. Without the per-socket bound the
/// flood took every place and the other socket was told `backend busy` too.
#[test]
fn one_sockets_flood_of_forwarded_events_leaves_the_backend_to_the_others() -> anyhow::Result<()> {
    let held = HeldBackend::start()?;
    let ((mut bob, _), (mut carol, _)) = (held.open()?, held.open()?);
    let mut waiting = Vec::new();
    // In batches, reading the refusals between them: the outbound queue holds 1,024.
    for _ in 0..7 {
        for id in bob.emit_many("order:slow", &[], 600)? {
            if waiting.len() < 64 {
                waiting.push(id);
                continue;
            }
            assert_eq!(bob.ack(id)?, [json!({"error": "backend busy"})], "ack {id}");
        }
    }
    assert_eq!(carol.call("order:fast", &[])?, [json!("order:fast")]);
    held.release();
    for id in waiting {
        assert_eq!(bob.ack(id)?, [json!("order:slow")], "ack {id}");
    }
    Ok(())
}

/// docs/security.md: forwarded events waiting are bounded in bytes too (16 MiB per
/// connection, each event charged twice its estimated size). Nine events of 900 kB
/// (1.8 MB charged each) wait for a backend that holds them; the tenth, eleventh and
/// twelfth are told `backend busy` at once, though the count (64) has room; another
/// connection's event still goes through. Without the byte bound all twelve waited,
/// and 64 of them per connection (about 11 MB each with attachments) let a node hold
/// gigabytes for one client.
#[test]
fn large_forwarded_events_are_bounded_in_bytes_per_connection() -> anyhow::Result<()> {
    let held = HeldBackend::start()?;
    let ((mut bob, _), (mut carol, _)) = (held.open()?, held.open()?);
    let large = json!("x".repeat(900_000));
    let ids: Vec<u64> = (0..12)
        .map(|_| bob.emit_with_ack("order:slow", std::slice::from_ref(&large)))
        .collect::<anyhow::Result<_>>()?;
    for &id in &ids[9..] {
        assert_eq!(bob.ack(id)?, [json!({"error": "backend busy"})], "ack {id}");
    }
    assert_eq!(carol.call("order:fast", &[])?, [json!("order:fast")]);
    held.release();
    for &id in &ids[..9] {
        assert_eq!(bob.ack(id)?, [json!("order:slow")], "ack {id}");
    }
    Ok(())
}

/// docs/security.md: the 64 are counted per connection, not per socket. A client that
/// leaves the namespace and connects again on the same connection (a new socket) while
/// its 64 events still wait gets `backend busy` for the next one at once. Without it
/// every reconnect brought 64 more places, and 64 reconnects in one polling body took
/// the node's 4,096.
#[test]
fn a_new_socket_on_the_same_connection_brings_no_more_forwarding_places() -> anyhow::Result<()> {
    let held = HeldBackend::start()?;
    let (mut bob, first) = held.open()?;
    bob.emit_many("order:slow", &[], 64)?;
    let until = std::time::Instant::now() + SAFETY_TIMEOUT;
    while held.arrived() < 64 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = bob
        .reconnect(json!({}))?
        .map_err(|err| anyhow::anyhow!("reconnect refused: {err}"))?;
    assert_ne!(first, second, "a new socket");
    for id in bob.emit_many("order:slow", &[], 3)? {
        assert_eq!(bob.ack(id)?, [json!({"error": "backend busy"})], "ack {id}");
    }
    held.release();
    Ok(())
}

#[test]
fn a_flood_is_refused_then_disconnected_as_rate_limited() -> anyhow::Result<()> {
    let (server, backend) = serve_rules(no_reply)?;
    let auth = json!({ "token": token("bob", 60, json!({}))? });
    let (mut bob, sid) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    // The burst of 10 passes the limiter (and is denied by the rules)...
    for id in bob.emit_many("spam", &[], 10)? {
        assert_eq!(
            bob.ack(id)?,
            [json!({"error": "event not allowed"})],
            "ack {id}"
        );
    }
    // ...then events are refused (a token comes back every 2 s)...
    for id in bob.emit_many("spam", &[], 2)? {
        assert_eq!(bob.ack(id)?, [json!({"error": "rate limited"})], "ack {id}");
    }
    // ...and the third refusal in a row disconnects.
    bob.emit_many("spam", &[], 1)?;
    bob.closed()?;
    backend.wait_for("disconnection", |d| {
        d["socket_id"] == sid.as_str() && d["reason"] == "rate limited"
    })?;
    let sample = r#"switchboard_client_events_total{outcome="rate_limited"}"#;
    assert_eq!(metric(server.addr(), sample)?, Some(3.0));
    Ok(())
}

/// A pattern's namespaces on one connection draw on one bucket: a client cannot
/// multiply its rate by connecting to more of them (before, each socket had its own:
/// up to 64 buckets on one connection).
#[test]
fn sockets_of_one_connection_in_a_patterns_namespaces_share_one_bucket_kept_across_reconnects()
-> anyhow::Result<()> {
    let (server, _backend) = serve_rules(no_reply)?;
    let client = Polling::handshake(server.addr())?;
    let games = ["/game-1", "/game-2", "/game-3"];
    let connects: Vec<String> = games.iter().map(|g| format!("40{g},")).collect();
    client.send(&connects.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut answers = Vec::new();
    while answers.len() < games.len() {
        answers.extend(
            client
                .poll()?
                .into_iter()
                .filter(|p| p.starts_with("40/game-")),
        );
    }
    // Three events on each namespace: 9 against one burst of 4. Unmatched events are
    // denied by the rules once the limiter let them through.
    let events: Vec<String> = games
        .iter()
        .flat_map(|g| (1..=3).map(move |id| format!(r#"42{g},{id}["spam"]"#)))
        .collect();
    client.send(&events.iter().map(String::as_str).collect::<Vec<_>>())?;
    let mut acks = Vec::new();
    while acks.len() < events.len() {
        acks.extend(
            client
                .poll()?
                .into_iter()
                .filter(|p| p.starts_with("43/game-")),
        );
    }
    let count = |what: &str| acks.iter().filter(|a| a.contains(what)).count();
    assert_eq!(
        (count("event not allowed"), count("rate limited")),
        (4, 5),
        "{acks:?}"
    );
    // Leaving every one of them and connecting again on the same connection does not
    // refill the bucket.
    client.send(&["41/game-1,", "41/game-2,", "41/game-3,", "40/game-4,"])?;
    while !client.poll()?.iter().any(|p| p.starts_with("40/game-4,")) {}
    client.send(&[r#"42/game-4,1["spam"]"#])?;
    let ack = loop {
        if let Some(ack) = client
            .poll()?
            .into_iter()
            .find(|p| p.starts_with("43/game-4,"))
        {
            break ack;
        }
    };
    assert!(ack.contains("rate limited"), "{ack}");
    Ok(())
}
