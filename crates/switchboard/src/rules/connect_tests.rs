//! The rules at connect time, over a real `Io` and a long-polling client: a client
//! that hears "connected" is already in its auto-joined rooms. And a backend's
//! replies applied at once on one socket.

use std::sync::{Mutex, mpsc};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use serde_json::json;
use switchboard_engine::{Io, Payload, SocketIoConfig, shutdown};

use super::Hooks;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// One polling request to `io`; the body of the answer.
async fn exchange(io: &Io, method: Method, query: &str, body: &str) -> String {
    let req = Request::builder()
        .method(method)
        .uri(format!("/socket.io/?EIO=4&transport=polling{query}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    let res = io
        .handle(req, "127.0.0.1:9".parse().expect("an address"))
        .await;
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An `Io` with `/chat` under the rules written after its `[[namespaces]]` header (its
/// auth secret is [`SECRET`]), and `recovery` when given; what `install` returned
/// must be kept for as long as the rules should act.
fn rules_io(
    rules: &str,
    recovery: Option<switchboard_engine::sio::RecoveryConfig>,
) -> (Io, super::Installed) {
    let config = crate::config::from_text(&format!(
        "[[namespaces]]\nname = \"/chat\"\n[namespaces.auth]\nsecret = \"{SECRET}\"\n{rules}"
    ))
    .expect("valid rules");
    let (trigger, signal) = shutdown::channel();
    // The rules' tasks live as long as the test.
    std::mem::forget(trigger);
    let io = Io::new(
        SocketIoConfig {
            recovery,
            ..SocketIoConfig::default()
        },
        signal.clone(),
    );
    let installed = super::install(&io, &config, Hooks::none(), &signal);
    (io, installed)
}

/// Recovery that verifies a resuming client's token (`skip_middlewares = false`).
fn verifying_recovery() -> Option<switchboard_engine::sio::RecoveryConfig> {
    Some(switchboard_engine::sio::RecoveryConfig {
        skip_middlewares: false,
        ..switchboard_engine::sio::RecoveryConfig::default()
    })
}

/// The query naming the session an `open` packet (a handshake's answer) opened.
fn session_query(open: String) -> String {
    let open: serde_json::Value =
        serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    format!("&sid={}", open["sid"].as_str().expect("a sid"))
}

fn token(sub: &str) -> String {
    token_with(json!({ "sub": sub }))
}

/// A token of `claims` (an object) expiring in ten minutes, signed with [`SECRET`].
fn token_with(mut claims: serde_json::Value) -> String {
    let exp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 600;
    claims["exp"] = json!(exp);
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token")
}

/// The CONNECT answer goes out before the `connection` handlers run (on another
/// thread after the async auth middleware). The auto-join happens in the middleware,
/// before the answer: a message sent to `user:{sub}` the instant the client hears
/// "connected" reaches it even while the handlers are still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hears_connected_is_already_in_its_auto_joined_rooms() {
    let config = crate::config::from_text(&format!(
        "[[namespaces]]\nname = \"/chat\"\n[namespaces.auth]\nsecret = \"{SECRET}\"\n\
         [namespaces.rooms]\nauto_join = [\"user:{{sub}}\"]\n"
    ))
    .expect("valid rules");
    let (_trigger, signal) = shutdown::channel();
    let io = Io::new(SocketIoConfig::default(), signal.clone());
    // Registered before the rules' own handler, so it holds them all.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    io.of("/chat").on_connection(move |_| {
        let _ = started_tx.send(());
        let go = go_rx.lock().unwrap_or_else(|e| e.into_inner());
        let _ = go.recv_timeout(Duration::from_secs(10));
    });
    let _installed = super::install(&io, &config, Hooks::none(), &signal);

    let open = exchange(&io, Method::GET, "", "").await;
    let open: serde_json::Value =
        serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    let sid = format!("&sid={}", open["sid"].as_str().expect("a sid"));
    let connect = format!(r#"40/chat,{{"token":"{}"}}"#, token("alice"));
    assert_eq!(exchange(&io, Method::POST, &sid, &connect).await, "ok");
    let answer = exchange(&io, Method::GET, &sid, "").await;
    assert!(answer.starts_with("40/chat,{\"sid\":"), "{answer}");
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("joined")
        .expect("the connection handlers started");

    // The client heard "connected"; the handlers still run.
    io.of("/chat")
        .to("user:alice")
        .emit("news", Payload::new(vec![json!(1)]));
    go_tx.send(()).expect("the handler waits");
    let next = tokio::time::timeout(Duration::from_secs(5), exchange(&io, Method::GET, &sid, ""))
        .await
        .expect("the message sent to user:alice at the CONNECT answer never arrived");
    assert_eq!(next, r#"42/chat,["news",1]"#);
}

/// A client that resumes its session on a new connection while its old socket's
/// connection handlers still run (on another thread): the old socket's handlers and
/// its disconnect handlers, which come after them, leave the resumed socket (same
/// id) its own rate-limit bucket. They used to remove it, or replace it and then
/// remove it, leaving the resumed socket with no rate limit at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumed_while_its_old_sockets_handlers_run_keeps_its_rate_limit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let config = crate::config::from_text(&format!(
        "[[namespaces]]\nname = \"/chat\"\n[namespaces.auth]\nsecret = \"{SECRET}\"\n\
         [namespaces.rate_limit]\nevents_per_second = 0.01\nburst = 1\ndisconnect_after = 0\n\
         [[namespaces.events]]\nname = \"x\"\naction = \"deny\"\n"
    ))
    .expect("valid rules");
    let (_trigger, signal) = shutdown::channel();
    let engine = SocketIoConfig {
        recovery: Some(switchboard_engine::sio::RecoveryConfig::default()),
        ..SocketIoConfig::default()
    };
    let io = Io::new(engine, signal.clone());
    // Holds the first socket's connection handlers (the rules' among them) until told.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let (go_rx, first) = (Mutex::new(go_rx), AtomicBool::new(true));
    io.of("/chat").on_connection(move |_| {
        if first.swap(false, Ordering::SeqCst) {
            let _ = started_tx.send(());
            let go = go_rx.lock().unwrap_or_else(|e| e.into_inner());
            let _ = go.recv_timeout(Duration::from_secs(10));
        }
    });
    let _installed = super::install(&io, &config, Hooks::none(), &signal);
    let connect = format!(r#"40/chat,{{"token":"{}"}}"#, token("alice"));

    let old = session_query(exchange(&io, Method::GET, "", "").await);
    assert_eq!(exchange(&io, Method::POST, &old, &connect).await, "ok");
    let answer = exchange(&io, Method::GET, &old, "").await;
    let answer: serde_json::Value =
        serde_json::from_str(answer.strip_prefix("40/chat,").expect("connected")).expect("JSON");
    let pid = answer["pid"].as_str().expect("a pid").to_owned();
    let socket_id = answer["sid"].as_str().expect("a socket id").to_owned();
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("joined")
        .expect("the connection handlers started");
    // An event with an offset, for the resume.
    io.of("/chat").emit("tick", Payload::new(vec![json!(1)]));
    let tick = exchange(&io, Method::GET, &old, "").await;
    let offset = tick.rsplit('"').nth(1).expect("an offset").to_owned();

    // The client resumes on a new connection while the old handlers still run.
    let new = session_query(exchange(&io, Method::GET, "", "").await);
    let resume = format!(
        r#"40/chat,{{"token":"{}","pid":"{pid}","offset":"{offset}"}}"#,
        token("alice")
    );
    assert_eq!(exchange(&io, Method::POST, &new, &resume).await, "ok");
    let answer = exchange(&io, Method::GET, &new, "").await;
    assert!(
        answer.starts_with(&format!(r#"40/chat,{{"sid":"{socket_id}""#)),
        "resumed under the same id: {answer}"
    );
    go_tx.send(()).expect("the handler waits");
    // Let the old socket's handlers, then its disconnect handlers, run.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The resumed socket's bucket holds one event: the second is rate limited.
    assert_eq!(
        exchange(
            &io,
            Method::POST,
            &new,
            "42/chat,1[\"x\"]\u{1e}42/chat,2[\"x\"]"
        )
        .await,
        "ok"
    );
    let acks = exchange(&io, Method::GET, &new, "").await;
    assert!(acks.contains("rate limited"), "{acks}");
}

/// With `recovery.skip_middlewares = false`, a resuming client's token is verified
/// again, and a session is resumed only by the identity it belonged to: another
/// user's token with the first user's `pid` (a client that kept it across a log-out
/// and a log-in) gets a fresh socket, in its own rooms, and the first user's socket
/// is not closed for it. The same user with a fresh token resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_resumed_only_by_the_identity_it_belonged_to() {
    let (io, _installed) = rules_io(
        "[namespaces.rooms]\nauto_join = [\"user:{sub}\"]\n",
        verifying_recovery(),
    );
    // Connects on a new connection with `auth`; the CONNECT answer.
    let connect = |auth: serde_json::Value| {
        let io = io.clone();
        async move {
            let conn = session_query(exchange(&io, Method::GET, "", "").await);
            let packet = format!("40/chat,{auth}");
            assert_eq!(exchange(&io, Method::POST, &conn, &packet).await, "ok");
            let answer = exchange(&io, Method::GET, &conn, "").await;
            let answer: serde_json::Value =
                serde_json::from_str(answer.strip_prefix("40/chat,").expect("connected"))
                    .expect("JSON");
            (conn, answer)
        }
    };
    let (alice_conn, first) = connect(json!({ "token": token("alice") })).await;
    let (sid, pid) = (first["sid"].clone(), first["pid"].clone());
    io.of("/chat").emit("tick", Payload::new(vec![json!(1)]));
    let tick = exchange(&io, Method::GET, &alice_conn, "").await;
    let offset = tick.rsplit('"').nth(1).expect("an offset").to_owned();

    let (_, bob) = connect(json!({ "token": token("bob"), "pid": pid, "offset": offset })).await;
    assert_ne!(bob["sid"], sid, "bob does not resume alice's session");
    let chat = io.of("/chat");
    let alice = chat
        .sockets()
        .into_iter()
        .find(|s| s.id().as_str() == sid.as_str().expect("a string"))
        .expect("alice's socket is still there");
    assert!(alice.connected());
    let bobs = chat
        .sockets()
        .into_iter()
        .find(|s| s.id().as_str() == bob["sid"].as_str().expect("a string"))
        .expect("bob's socket");
    assert!(
        !bobs.rooms().contains(&"user:alice".to_owned()),
        "{:?}",
        bobs.rooms()
    );

    let (_, again) =
        connect(json!({ "token": token("alice"), "pid": pid, "offset": offset })).await;
    assert_eq!(again["sid"], sid, "alice resumes her own session");
}

/// A refreshed token moves the socket's rooms with its claims: the `auto_join` room of
/// the old `org` is left and the new one's joined, as the client hears `{ok: true}`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_moves_the_auto_joined_rooms_with_the_claims() {
    let (io, _installed) = rules_io(
        "refresh_event = \"auth:refresh\"\n[namespaces.rooms]\nauto_join = [\"org:{org}\"]\n",
        None,
    );
    let org_token = |org: &str| token_with(json!({ "sub": "alice", "org": org }));
    let conn = session_query(exchange(&io, Method::GET, "", "").await);
    let connect = format!(r#"40/chat,{{"token":"{}"}}"#, org_token("acme"));
    assert_eq!(exchange(&io, Method::POST, &conn, &connect).await, "ok");
    assert!(
        exchange(&io, Method::GET, &conn, "")
            .await
            .starts_with("40/chat,")
    );
    let socket = io.of("/chat").sockets().pop().expect("connected");
    assert!(socket.rooms().contains(&"org:acme".to_owned()));

    refreshed_ok(&io, &conn, &org_token("globex")).await;
    let rooms = socket.rooms();
    assert!(rooms.contains(&"org:globex".to_owned()), "{rooms:?}");
    assert!(!rooms.contains(&"org:acme".to_owned()), "{rooms:?}");
}

/// A refresh whose socket leaves while its token is verified (the same POST carries
/// the refresh and the disconnect) joins nothing: before, its auto-joined rooms were
/// joined again for the gone socket, whose id then stayed in them for good (the room
/// never vacated, its size wrong), once per refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_of_a_socket_gone_meanwhile_joins_nothing() {
    let (io, _installed) = rules_io(
        "refresh_event = \"auth:refresh\"\n[namespaces.rooms]\nauto_join = [\"org:{org}\"]\n",
        None,
    );
    let org_token = token_with(json!({ "sub": "alice", "org": "acme" }));
    for round in 0..20 {
        let (conn, answer) = connect_with(&io, json!({ "token": org_token })).await;
        assert!(answer.starts_with("40/chat,"), "{answer}");
        let body = format!("42/chat,[\"auth:refresh\",\"{org_token}\"]\u{1e}41/chat,");
        assert_eq!(exchange(&io, Method::POST, &conn, &body).await, "ok");
        let chat = io.of("/chat");
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(chat.sockets().len(), 0, "round {round}: left");
        assert_eq!(
            chat.adapter().room_size("org:acme"),
            0,
            "round {round}: no gone socket left in the room"
        );
    }
}

/// The rooms a refresh's new claims add are joined within `rooms.max_per_socket`, as
/// every other join: before, a socket at the bound passed it by the rooms its new
/// claims named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_joins_its_new_rooms_within_the_bound() {
    let (io, _installed) = rules_io(
        "refresh_event = \"auth:refresh\"\n[namespaces.rooms]\nauto_join = [\"org:{org}\", \"team:{team}\"]\nmax_per_socket = 2\n",
        None,
    );
    let first = token_with(json!({ "sub": "alice", "org": "acme" }));
    let (conn, answer) = connect_with(&io, json!({ "token": first })).await;
    assert!(answer.starts_with("40/chat,"), "{answer}");
    let socket = io.of("/chat").sockets().pop().expect("connected");
    socket.join(&["chat:x"]);
    let second = token_with(json!({ "sub": "alice", "org": "acme", "team": "t" }));
    refreshed_ok(&io, &conn, &second).await;
    let own = socket.id().to_string();
    let rooms: Vec<String> = socket.rooms().into_iter().filter(|r| *r != own).collect();
    assert_eq!(rooms.len(), 2, "{rooms:?}");
    assert!(!rooms.contains(&"team:t".to_owned()), "{rooms:?}");
}

/// The connection `conn` refreshes its token to `token` (`auth:refresh` with ack 1),
/// and is told it was refreshed.
async fn refreshed_ok(io: &Io, conn: &str, token: &str) {
    let refresh = format!(r#"42/chat,1["auth:refresh","{token}"]"#);
    assert_eq!(exchange(io, Method::POST, conn, &refresh).await, "ok");
    let answer = tokio::time::timeout(Duration::from_secs(5), exchange(io, Method::GET, conn, ""))
        .await
        .expect("the refresh is answered");
    assert_eq!(answer, r#"43/chat,1[{"ok":true}]"#);
}

/// Connects to `/chat` on a new connection with `auth`: the connection's query and
/// the CONNECT answer (`40…` or `44…`).
async fn connect_with(io: &Io, auth: serde_json::Value) -> (String, String) {
    let conn = session_query(exchange(io, Method::GET, "", "").await);
    let packet = format!("40/chat,{auth}");
    assert_eq!(exchange(io, Method::POST, &conn, &packet).await, "ok");
    let answer = exchange(io, Method::GET, &conn, "").await;
    (conn, answer)
}

/// `max_sockets_per_user`: a user's sockets past the bound are refused with a
/// CONNECT_ERROR whatever connection they come on; other users and tokens without a
/// `sub` are not held up; a socket that leaves gives its place back. With recovery on
/// too, where the socket the engine registers is not the one the middleware saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_has_at_most_max_sockets_per_user_sockets() {
    for recovery in [
        None,
        Some(switchboard_engine::sio::RecoveryConfig::default()),
    ] {
        let with_recovery = recovery.is_some();
        let (io, _installed) = rules_io("max_sockets_per_user = 2\n", recovery);
        let alice = || json!({ "token": token("alice") });
        let (first, answer) = connect_with(&io, alice()).await;
        assert!(answer.starts_with("40/chat,{\"sid\""), "{answer}");
        let (_second, answer) = connect_with(&io, alice()).await;
        assert!(answer.starts_with("40/chat,{\"sid\""), "{answer}");
        // The count is taken by the connection handlers, which may still run.
        let refused = r#"44/chat,{"message":"too many connections for this user","data":{"code":"too_many_sockets"}}"#;
        let mut third = String::new();
        for _ in 0..100 {
            let (_, answer) = connect_with(&io, alice()).await;
            third = answer;
            if third == refused {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(third, refused, "recovery {with_recovery}");
        assert_eq!(
            io.of("/chat").sockets().len(),
            2,
            "recovery {with_recovery}"
        );
        let (_, bob) = connect_with(&io, json!({ "token": token("bob") })).await;
        assert!(bob.starts_with("40/chat,{\"sid\""), "{bob}");
        for _ in 0..3 {
            let (_, anonymous) = connect_with(&io, json!({ "token": token_with(json!({})) })).await;
            assert!(anonymous.starts_with("40/chat,{\"sid\""), "{anonymous}");
        }
        // Alice's first socket leaves its namespace: her place comes back, and only
        // that one.
        assert_eq!(exchange(&io, Method::POST, &first, "41/chat,").await, "ok");
        let mut admitted = false;
        for _ in 0..100 {
            let (_, answer) = connect_with(&io, alice()).await;
            if answer.starts_with("40/chat,{\"sid\"") {
                admitted = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            admitted,
            "recovery {with_recovery}: the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, answer) = connect_with(&io, alice()).await;
        assert_eq!(answer, refused, "recovery {with_recovery}");
    }
}

/// Counts `/chat`'s sockets until there are `n` (the connection handlers that count a
/// socket, and close one past its user's bound, may still run).
async fn until_sockets(io: &Io, n: usize) {
    for _ in 0..200 {
        if io.of("/chat").sockets().len() == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(io.of("/chat").sockets().len(), n);
}

/// Connects with `token`, gets an event (so the client holds an offset), and has the
/// connection drop (the session is kept for recovery): the socket id, and the CONNECT
/// payload that resumes it with `token`.
async fn dropped(io: &Io, token: &str) -> (String, serde_json::Value) {
    let (conn, answer) = connect_with(io, json!({ "token": token })).await;
    let answer: serde_json::Value =
        serde_json::from_str(answer.strip_prefix("40/chat,").expect("connected")).expect("JSON");
    io.of("/chat").emit("tick", Payload::new(vec![json!(1)]));
    let tick = exchange(io, Method::GET, &conn, "").await;
    let offset = tick.rsplit('"').nth(1).expect("an offset").to_owned();
    assert_eq!(exchange(io, Method::POST, &conn, "1").await, "ok");
    until_sockets(io, 0).await;
    let resume = json!({ "token": token, "pid": answer["pid"], "offset": offset });
    (answer["sid"].as_str().expect("a sid").to_owned(), resume)
}

/// A resumed session that skips the middleware (`recovery.skip_middlewares`, the
/// default) is counted too: a user cannot pass the bound by dropping sessions and
/// resuming them. One of the two sockets is closed, whichever was counted last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_cannot_take_its_user_past_the_bound() {
    let (io, _installed) = rules_io(
        "max_sockets_per_user = 1\n",
        Some(switchboard_engine::sio::RecoveryConfig::default()),
    );
    let (_, resume) = dropped(&io, &token("alice")).await;
    until_sockets(&io, 0).await;
    let (_, answer) = connect_with(&io, json!({ "token": token("alice") })).await;
    assert!(answer.starts_with("40/chat,{\"sid\""), "{answer}");
    until_sockets(&io, 1).await;
    // Resuming the dropped session now would give alice two sockets.
    let (_, answer) = connect_with(&io, resume).await;
    assert!(answer.starts_with("40/chat,{\"sid\""), "resumed: {answer}");
    until_sockets(&io, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(io.of("/chat").sockets().len(), 1, "alice keeps one socket");
}

/// With `skip_middlewares = false` the middleware checks the resuming socket too, and
/// the engine then registers another one under the resumed identity: a user with one
/// place, whose only socket dropped, gets it back (the place is the registered
/// socket's, not counted twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_at_the_bound_resumes_her_own_dropped_session() {
    let (io, _installed) = rules_io("max_sockets_per_user = 1\n", verifying_recovery());
    let (sid, resume) = dropped(&io, &token("alice")).await;
    until_sockets(&io, 0).await;
    let (_, answer) = connect_with(&io, resume).await;
    assert!(
        answer.starts_with(&format!(r#"40/chat,{{"sid":"{sid}""#)),
        "resumed: {answer}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(io.of("/chat").sockets().len(), 1, "and kept");
    let (_, answer) = connect_with(&io, json!({ "token": token("alice") })).await;
    assert!(
        answer.starts_with("44/chat,"),
        "the one place is taken: {answer}"
    );
}

/// A session whose token expired while its connection was down is not resumed: it
/// would get the events sent while it was away, past its token's `exp`, before its
/// expiry closed it. The client starts afresh instead (and its expired token closes
/// that socket at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_token_expired_while_away_is_not_resumed() {
    let (io, _installed) = rules_io(
        "[namespaces.rooms]\nauto_join = [\"user:{sub}\"]\n",
        Some(switchboard_engine::sio::RecoveryConfig::default()),
    );
    let exp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 2;
    let short = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": "alice", "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token");
    let (sid, resume) = dropped(&io, &short).await;
    // Past the token's exp (whole seconds), an event for alice while she is away.
    while SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        <= exp
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    io.of("/chat")
        .to("user:alice")
        .emit("secret", Payload::new(vec![json!("after exp")]));
    let (_, answer) = connect_with(&io, resume).await;
    assert!(!answer.contains(&sid), "not resumed: {answer}");
    assert!(!answer.contains("secret"), "nothing replayed: {answer}");
}

/// With `skip_middlewares = false`, a session resumes only if the new token still
/// grants its rooms: alice moved from org acme to globex does not come back in
/// `org:acme`, nor get the events it heard while she was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_with_a_token_that_no_longer_grants_its_rooms_starts_afresh() {
    let (io, _installed) = rules_io(
        "[namespaces.rooms]\nauto_join = [\"org:{org}\"]\n",
        verifying_recovery(),
    );
    let org_token = |org: &str| token_with(json!({ "sub": "alice", "org": org }));
    // Still in acme: resumed, with the event acme heard while she was away.
    let (sid, same) = dropped(&io, &org_token("acme")).await;
    io.of("/chat")
        .to("org:acme")
        .emit("acme-news", Payload::new(vec![json!("while away")]));
    let (conn, mut answer) = connect_with(&io, same).await;
    assert!(answer.contains(&sid), "resumed: {answer}");
    if !answer.contains("acme-news") {
        answer.push_str(&exchange(&io, Method::GET, &conn, "").await);
    }
    assert!(answer.contains("while away"), "replayed: {answer}");
    assert_eq!(exchange(&io, Method::POST, &conn, "41/chat,").await, "ok");
    until_sockets(&io, 0).await;
    // Moved to globex: a fresh socket, in org:globex only, nothing of acme's.
    let (sid, mut moved) = dropped(&io, &org_token("acme")).await;
    io.of("/chat")
        .to("org:acme")
        .emit("acme-news", Payload::new(vec![json!("after the move")]));
    moved["token"] = json!(org_token("globex"));
    let (_, answer) = connect_with(&io, moved).await;
    assert!(!answer.contains(&sid), "not resumed: {answer}");
    assert!(!answer.contains("acme-news"), "nothing replayed: {answer}");
    let socket = io.of("/chat").sockets().pop().expect("connected");
    assert_eq!(
        socket
            .rooms()
            .iter()
            .filter(|r| r.starts_with("org:"))
            .collect::<Vec<_>>(),
        ["org:globex"]
    );
}

/// With `skip_middlewares = false`, a session refused to the connection that named it
/// is kept again for its owner: bob, holding alice's dropped session's `pid` with his
/// own valid token, gets a fresh socket, and alice then resumes hers with what she
/// missed. Before, bob's attempt had taken the session and alice started afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_refused_to_another_user_is_kept_for_its_owner() {
    let (io, _installed) = rules_io(
        "[namespaces.rooms]\nauto_join = [\"user:{sub}\"]\n",
        verifying_recovery(),
    );
    let (sid, resume) = dropped(&io, &token("alice")).await;
    io.of("/chat")
        .to("user:alice")
        .emit("for-alice", Payload::new(vec![json!("while away")]));
    let mut bobs = resume.clone();
    bobs["token"] = json!(token("bob"));
    let (bob, answer) = connect_with(&io, bobs).await;
    assert!(answer.starts_with("40/chat,{\"sid\""), "{answer}");
    assert!(!answer.contains(&sid), "bob does not resume it: {answer}");
    assert!(!answer.contains("for-alice"), "nor hear it: {answer}");
    assert_eq!(exchange(&io, Method::POST, &bob, "41/chat,").await, "ok");
    until_sockets(&io, 0).await;

    let (conn, mut answer) = connect_with(&io, resume).await;
    assert!(answer.contains(&sid), "alice resumes: {answer}");
    if !answer.contains("for-alice") {
        answer.push_str(&exchange(&io, Method::GET, &conn, "").await);
    }
    assert!(answer.contains("while away"), "replayed: {answer}");
}

/// A named entry listed after a pattern that matches it keeps its own rules, and the
/// pattern's namespaces do not get them: before, the named entry took the pattern's
/// handlers and its auth applied to every namespace of the pattern.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_entry_after_a_matching_pattern_keeps_its_own_rules() {
    let config = crate::config::from_text(&format!(
        "[[namespaces]]\npattern = \"/t-*\"\n\
         [[namespaces]]\nname = \"/t-admin\"\n[namespaces.auth]\nsecret = \"{SECRET}\"\n"
    ))
    .expect("valid rules");
    let (trigger, signal) = shutdown::channel();
    std::mem::forget(trigger);
    let io = Io::new(SocketIoConfig::default(), signal.clone());
    let _installed = super::install(&io, &config, Hooks::none(), &signal);
    let query = session_query(exchange(&io, Method::GET, "", "").await);
    exchange(&io, Method::POST, &query, "40/t-foo,").await;
    let answer = exchange(&io, Method::GET, &query, "").await;
    assert!(
        answer.starts_with("40/t-foo,{\"sid\""),
        "no token needed: {answer}"
    );
    exchange(&io, Method::POST, &query, "40/t-admin,").await;
    let answer = exchange(&io, Method::GET, &query, "").await;
    assert!(
        answer.starts_with("44/t-admin,"),
        "a token needed: {answer}"
    );
}

/// A backend's replies applied at the same moment on several threads (a client's
/// events are forwarded concurrently) each count the rooms the others joined: their
/// joins together never take the socket past `rooms.max_per_socket`. (Each checked
/// against the rooms it read, then joined, they did.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_replies_applied_at_once_stay_within_the_rooms_bound() {
    use switchboard_hooks::reply::{HookAction, HookReply};
    const MAX: usize = 6;
    const THREADS: usize = 4;
    let (io, _installed) = rules_io("", None);
    let (_conn, answer) = connect_with(&io, json!({ "token": token("alice") })).await;
    assert!(answer.starts_with("40/chat,"), "{answer}");
    let socket = io.of("/chat").sockets().pop().expect("connected");
    let rules = crate::config::RoomRules {
        max_per_socket: MAX,
        ..crate::config::RoomRules::default()
    };
    for round in 0..100 {
        let start = std::sync::Barrier::new(THREADS);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (socket, start, rules) = (&socket, &start, &rules);
                s.spawn(move || {
                    start.wait();
                    for i in 0..MAX {
                        let reply = HookReply {
                            ack: None,
                            actions: vec![HookAction::Join {
                                rooms: vec![format!("r{round}-{t}-{i}")],
                            }],
                        };
                        let _ = super::forward::apply(rules, socket, reply);
                    }
                });
            }
        });
        let own = socket.id().to_string();
        let rooms: Vec<String> = socket.rooms().into_iter().filter(|r| *r != own).collect();
        assert_eq!(rooms.len(), MAX, "round {round}: {rooms:?}");
        rooms.iter().for_each(|room| socket.leave(room));
    }
}
