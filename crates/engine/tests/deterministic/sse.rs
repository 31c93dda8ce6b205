//! Server-Sent Events under the paused clock: the stream's framing, replay by
//! `Last-Event-ID`, refusals as HTTP errors, heartbeats whose write counts as the
//! pong, and the listener that stops reading.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use switchboard_engine::eio::Body;
use switchboard_engine::protocol::engineio::TransportKind;
use switchboard_engine::sio::RecoveryConfig;
use switchboard_engine::{ConnectError, Io, SseConfig};

use super::harness::{PING_TIMEOUT, config, disconnects, server};

const HEARTBEAT: Duration = Duration::from_millis(500);

/// A server with SSE on, recovery as asked, and a middleware that joins an SSE
/// listener to the rooms its query names (what the rules do in the binary) and
/// refuses `room=forbidden` with a code.
fn sse_server(recovery: bool) -> Io {
    sse_server_beating(recovery, HEARTBEAT)
}

fn sse_server_beating(recovery: bool, heartbeat: Duration) -> Io {
    let recovery = recovery.then(|| RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        ..RecoveryConfig::default()
    });
    sse_server_with(recovery, heartbeat)
}

/// The suites' config with SSE on, at its defaults.
fn sse_on() -> switchboard_engine::SocketIoConfig {
    let mut cfg = config();
    cfg.engine.sse = Some(SseConfig::default());
    cfg
}

fn sse_server_with(recovery: Option<RecoveryConfig>, heartbeat: Duration) -> Io {
    let mut cfg = config();
    cfg.engine.sse = Some(SseConfig {
        heartbeat,
        ..SseConfig::default()
    });
    cfg.recovery = recovery;
    let io = server(cfg);
    io.of("/").use_middleware(|socket| async move {
        if socket.transport() != TransportKind::Sse {
            return Ok(());
        }
        let rooms: Vec<String> = socket
            .handshake()
            .query_params
            .iter()
            .filter(|(n, _)| n == "room")
            .map(|(_, r)| r.clone())
            .collect();
        if rooms.iter().any(|r| r == "forbidden") {
            return Err(ConnectError::new("room not allowed")
                .with_data(json!({ "code": "room_not_allowed" })));
        }
        let rooms: Vec<&str> = rooms.iter().map(String::as_str).collect();
        socket.join(&rooms);
        Ok(())
    });
    io
}

async fn open(io: &Io, query: &str, last_event_id: Option<&str>) -> (StatusCode, Body) {
    let mut req = Request::builder().uri(format!("/sse?{query}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let res = io.handle(req, "127.0.0.1:9".parse().unwrap()).await;
    let status = res.status();
    (status, res.into_body())
}

/// The stream's text until it holds `needle`, the stream ends, or 5 s (of the paused
/// clock: heartbeats keep coming, so the bound is on the whole read) have passed.
async fn read_until(body: &mut Body, needle: &str) -> String {
    let mut text = String::new();
    let read = async {
        while !text.contains(needle) {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        text.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    text
}

/// `(id, event, data)` of every event in `text`.
fn events(text: &str) -> Vec<(Option<String>, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            Some((id, name?, data?))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn room_events_stream_with_ids_and_a_reconnect_replays_what_was_missed() {
    let io = sse_server(true);
    let ns = io.of("/");
    let (status, mut body) = open(&io, "room=news", None).await;
    assert_eq!(status, StatusCode::OK);
    let head = read_until(&mut body, ": connected").await;
    assert!(head.starts_with("retry: 2000\n\n"), "{head}");
    for n in 1..=3 {
        ns.to("news").emit("headline", vec![json!({ "n": n })]);
    }
    ns.to("elsewhere")
        .emit("headline", vec![json!({ "n": 99 })]);
    let text = read_until(&mut body, r#"[{"n":3}]"#).await;
    let got = events(&text);
    assert_eq!(got.len(), 3, "{text}");
    assert!(
        got.iter()
            .all(|(id, name, _)| id.is_some() && name == "headline")
    );
    let first = got[0].0.clone().unwrap();
    // The listener goes away; two more events are missed.
    drop(body);
    tokio::task::yield_now().await;
    for n in 4..=5 {
        ns.to("news").emit("headline", vec![json!({ "n": n })]);
    }
    let (status, mut body) = open(&io, "room=news", Some(&first)).await;
    assert_eq!(status, StatusCode::OK);
    let text = read_until(&mut body, r#"[{"n":5}]"#).await;
    let got = events(&text);
    assert_eq!(got[0].1, "switchboard:recovery", "{text}");
    assert_eq!(got[0].2, json!({ "recovered": true, "replayed": 4 }));
    let numbers: Vec<Value> = got[1..].iter().map(|(_, _, d)| d[0]["n"].clone()).collect();
    assert_eq!(numbers, [json!(2), json!(3), json!(4), json!(5)]);
    // Live events follow the replay.
    ns.to("news").emit("headline", vec![json!({ "n": 6 })]);
    assert!(
        read_until(&mut body, r#"[{"n":6}]"#)
            .await
            .contains("n\":6")
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_event_id_or_recovery_off_is_said_not_skipped() {
    let io = sse_server(true);
    let (_, mut body) = open(&io, "room=news", Some("not-an-offset")).await;
    let text = read_until(&mut body, "unknown event id").await;
    assert!(
        text.contains("event: switchboard:recovery\ndata: {\"recovered\":false,\"reason\":\"unknown event id\"}\n\n"),
        "{text}"
    );
    let io = sse_server(false);
    let (_, mut body) = open(&io, "room=news", Some("1-1")).await;
    let text = read_until(&mut body, "recovery is off").await;
    assert!(text.contains("\"recovered\":false"), "{text}");
    io.of("/").to("news").emit("x", vec![json!(1)]);
    let text = read_until(&mut body, "event: x").await;
    // Without recovery, events carry no id.
    assert!(
        text.contains("event: x\ndata: [1]\n\n") && !text.contains("id: "),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_listener_that_missed_more_than_max_replay_bytes_is_told_so_and_goes_on_live() {
    // Each missed event is a frame of about 250 bytes: four fit, nine do not.
    let recovery = RecoveryConfig {
        max_disconnection_duration: Duration::from_secs(60),
        max_replay_bytes: 1200,
        ..RecoveryConfig::default()
    };
    let io = sse_server_with(Some(recovery), HEARTBEAT);
    let ns = io.of("/");
    let pad = "x".repeat(200);
    let (_, mut witness) = open(&io, "room=news", None).await;
    read_until(&mut witness, ": connected").await;
    for n in 1..=10 {
        ns.to("news")
            .emit("seq", vec![json!({ "n": n, "pad": pad })]);
    }
    let text = read_until(&mut witness, r#""n":10"#).await;
    let ids: Vec<String> = events(&text)
        .into_iter()
        .filter_map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids.len(), 10, "{text}");

    // From the first: nine missed, refused, and the stream goes on live.
    let (_, mut far) = open(&io, "room=news", Some(&ids[0])).await;
    let text = read_until(&mut far, "too many").await;
    assert!(
        text.contains(
            "event: switchboard:recovery\ndata: {\"recovered\":false,\"reason\":\"too many missed events\"}\n\n"
        ),
        "{text}"
    );
    assert!(!text.contains("event: seq"), "nothing replayed: {text}");
    ns.to("news").emit("seq", vec![json!({ "n": 11 })]);
    assert!(
        read_until(&mut far, r#""n":11"#)
            .await
            .contains(r#""n":11"#)
    );

    // From the seventh: three missed and the small eleventh, within the bound.
    let (_, mut near) = open(&io, "room=news", Some(&ids[6])).await;
    let text = read_until(&mut near, r#""n":11"#).await;
    let got = events(&text);
    assert_eq!(
        got[0].2,
        json!({ "recovered": true, "replayed": 4 }),
        "{text}"
    );
    let numbers: Vec<Value> = got[1..].iter().map(|(_, _, d)| d[0]["n"].clone()).collect();
    assert_eq!(numbers, [json!(8), json!(9), json!(10), json!(11)]);
}

#[tokio::test(start_paused = true)]
async fn refusals_are_http_errors_with_json_bodies() {
    let io = sse_server(false);
    let (status, body) = open(&io, "room=forbidden", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let text = String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["code"], "room_not_allowed");
    let (status, _) = open(&io, "nsp=/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = open(&io, "nsp=chat", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // None of them is left open, and none counts as a disconnect: each is a refusal
    // (two CONNECTs refused, one request malformed).
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(io.engine().session_count(), 0);
    let m = io.engine().metrics().snapshot();
    assert_eq!(
        m.disconnects.iter().map(|(_, n)| n).sum::<u64>(),
        0,
        "{m:?}"
    );
    assert_eq!(m.connections_sse, 0);
    let refused: Vec<_> = m
        .refusals
        .iter()
        .map(|(s, c, n)| (s.as_str(), c.as_str(), *n))
        .collect();
    assert_eq!(
        refused,
        [
            ("handshake", "protocol", 1),
            ("connect", "policy", 1),
            ("connect", "protocol", 1)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_reading_listener_outlives_many_heartbeats_and_a_silent_one_times_out() {
    let io = sse_server(false);
    let (_, mut reading) = open(&io, "room=a", None).await;
    let (_, mut silent) = open(&io, "room=a", None).await;
    read_until(&mut silent, ": connected").await;
    read_until(&mut reading, ": connected").await;
    // Several heartbeat periods, each longer than the ping timeout: the reader takes
    // every heartbeat (its pong), the silent one takes none after the first.
    let mut heartbeats = 0;
    for _ in 0..6 {
        let text = read_until(&mut reading, ":\n\n").await;
        heartbeats += text.matches(":\n\n").count();
    }
    assert!(heartbeats >= 6, "{heartbeats}");
    assert!(HEARTBEAT * 6 > HEARTBEAT + PING_TIMEOUT);
    assert_eq!(disconnects(&io, "ping timeout"), 1);
    assert_eq!(io.engine().session_count(), 1);
    // The silent stream, read now, holds its close notice.
    let text = read_until(&mut silent, "ping timeout").await;
    assert!(text.contains(r#"{"reason":"ping timeout"}"#), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_listener_that_stops_reading_is_cut_off_without_harming_the_others() {
    // No heartbeat within the test: the queue bound, not the ping timeout, cuts it off.
    let io = sse_server_beating(false, Duration::from_secs(3600));
    let ns = io.of("/");
    let (_, mut reader) = open(&io, "room=a", None).await;
    let (_, mut stuck) = open(&io, "room=a", None).await;
    read_until(&mut reader, ": connected").await;
    read_until(&mut stuck, ": connected").await;
    let max = io.engine().config().queue.max_packets;
    let mut seen = String::new();
    for n in 0..=max + 1 {
        ns.to("a").emit("tick", vec![json!(n)]);
        if n % 64 == 0 || n == max + 1 {
            // The reader keeps up; `stuck` is never read.
            seen.push_str(&read_until(&mut reader, &format!("data: [{n}]")).await);
        }
    }
    let ticks = events(&seen);
    assert_eq!(ticks.len(), max + 2, "the reader got every event");
    assert!(
        ticks
            .iter()
            .enumerate()
            .all(|(n, (_, _, d))| d[0] == json!(n))
    );
    // The session's driver counts the close.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
    let text = read_until(&mut stuck, "slow consumer").await;
    assert!(
        text.contains(r#"{"reason":"slow consumer"}"#),
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    // What it had queued was dropped at the close, not written after it: the stream
    // ends with the close notice alone.
    assert!(!text.contains("tick"), "{} bytes of events", text.len());
}

/// Events a middleware sends before the CONNECT is answered (the JS client keeps them
/// until it is connected) follow the stream's head; read as the CONNECT's outcome,
/// the first of them made the open a 500.
#[tokio::test(start_paused = true)]
async fn an_event_sent_before_the_connect_is_answered_follows_the_head() {
    let io = server(sse_on());
    io.of("/").use_middleware(|socket| async move {
        let _ = socket.emit("welcome", vec![json!(1)]);
        Ok(())
    });
    let (status, mut body) = open(&io, "", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = read_until(&mut body, "welcome").await;
    let head = text.find(": connected").expect("the head");
    assert!(text[head..].contains("event: welcome"), "{text}");
}

/// A drain (or shutdown) while the CONNECT waits in a slow middleware: the listener
/// is told to come back (503), not that the server failed (500).
#[tokio::test(start_paused = true)]
async fn a_drain_during_the_connect_is_a_503() {
    let io = server(sse_on());
    io.of("/").use_middleware(|_socket| async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Ok(())
    });
    let opening = tokio::spawn({
        let io = io.clone();
        async move { open(&io, "", None).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let draining = tokio::spawn({
        let io = io.clone();
        async move {
            io.engine()
                .drain(switchboard_engine::shutdown::DrainPlan {
                    batch_size: 100,
                    interval: Duration::from_millis(10),
                    deadline: Duration::from_secs(5),
                })
                .await
        }
    });
    let (status, body) = opening.await.unwrap();
    let text = String::from_utf8_lossy(&body.collect().await.unwrap().to_bytes()).into_owned();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    draining.await.unwrap();
    assert_eq!(io.engine().session_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_server_disconnect_ends_the_stream_with_its_reason() {
    let io = sse_server(false);
    let (_, mut body) = open(&io, "room=a", None).await;
    read_until(&mut body, ": connected").await;
    io.of("/").to("a").disconnect_sockets(false);
    let text = read_until(&mut body, "disconnect\"}").await;
    assert!(
        text.contains(r#"{"reason":"server namespace disconnect"}"#),
        "{text}"
    );
    // And the body ends.
    let end = tokio::time::timeout(Duration::from_secs(5), body.frame()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[tokio::test(start_paused = true)]
async fn a_page_on_another_origin_is_refused_when_origins_are_listed() {
    let mut cfg = sse_on();
    cfg.engine.cors.allowed_origins =
        switchboard_engine::AllowedOrigins::List(vec!["https://app.example.com".into()]);
    let io = server(cfg);
    let ask = |origin: &'static str| {
        Request::builder()
            .uri("/sse")
            .header("origin", origin)
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let res = io
        .handle(ask("https://evil.example"), "127.0.0.1:9".parse().unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["code"], "origin_not_allowed");
    let res = io
        .handle(
            ask("https://app.example.com"),
            "127.0.0.1:9".parse().unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}

/// A token in `?token=` (named by `auth_params`) reaches the CONNECT `auth`, and is
/// not kept in the query the socket's handshake shows (`query`, `url`): what a
/// `fetchSockets` answer carries through Redis, and the Admin UI shows. The other
/// parameters are kept.
#[tokio::test(start_paused = true)]
async fn a_query_token_is_in_auth_and_not_in_the_handshake() {
    let mut cfg = config();
    cfg.engine.sse = Some(SseConfig {
        heartbeat: HEARTBEAT,
        auth_params: vec!["token".into()],
        ..SseConfig::default()
    });
    let io = server(cfg);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Value::Null));
    let record = seen.clone();
    io.of("/").use_middleware(move |socket| {
        *record.lock().unwrap() = socket.auth()["token"].clone();
        async { Ok(()) }
    });
    let (status, mut body) = open(&io, "room=news&token=s3cret", None).await;
    assert_eq!(status, StatusCode::OK);
    read_until(&mut body, ": connected").await;
    assert_eq!(*seen.lock().unwrap(), "s3cret", "the middleware reads it");
    let sockets = io.of("/").sockets();
    let [socket] = sockets.as_slice() else {
        panic!("one socket: {}", sockets.len());
    };
    let info = socket.info();
    assert!(
        !info.handshake.to_string().contains("s3cret"),
        "{}",
        info.handshake
    );
    assert_eq!(
        info.handshake["query"]["room"], "news",
        "{}",
        info.handshake
    );
}

/// A CONNECT that takes longer than a heartbeat (a middleware waiting for a JWKS
/// fetch, say) is waited for: the heartbeats due meanwhile count as answered, and the
/// stream opens (the first heartbeat used to be read as the CONNECT's answer: 500).
#[tokio::test(start_paused = true)]
async fn a_connect_slower_than_the_heartbeat_still_opens_the_stream() {
    let io = sse_server_beating(false, Duration::from_millis(100));
    io.of("/slow").use_middleware(|_socket| async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok(())
    });
    let (status, mut body) = open(&io, "nsp=/slow", None).await;
    assert_eq!(status, StatusCode::OK);
    read_until(&mut body, ": connected").await;
    io.of("/slow").emit("news", vec![json!(1)]);
    let text = read_until(&mut body, "event: news").await;
    assert!(text.contains("event: news"), "{text}");
}

/// A listener's query longer than a session keeps (8 KiB, counted per pair) is
/// refused, not served a stream that quietly misses the rooms past the cut.
#[tokio::test(start_paused = true)]
async fn a_query_longer_than_a_session_keeps_is_refused() {
    let io = sse_server(false);
    let rooms: Vec<String> = (0..400).map(|n| format!("room=r{n}")).collect();
    let (status, _) = open(&io, &rooms.join("&"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = open(&io, &rooms[..50].join("&"), None).await;
    assert_eq!(status, StatusCode::OK);
}

/// An open whose CONNECT does not answer in time gets 503 and holds no place after:
/// nobody will read what its session queued.
#[tokio::test(start_paused = true)]
async fn a_connect_that_times_out_holds_no_place() {
    let mut cfg = sse_on();
    cfg.connect_timeout = Duration::from_secs(60);
    let io = server(cfg);
    io.of("/").use_middleware(|_socket| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    });
    let (status, _) = open(&io, "", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(io.engine().session_count(), 0);
}
