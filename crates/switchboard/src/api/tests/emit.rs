//! `POST /api/v1/emit` against real polling clients.

use http::StatusCode;
use serde_json::json;
use switchboard_engine::protocol::Sid;

use super::support::{Client, Harness};

/// Puts `client` in `room` directly through the engine.
fn join(h: &Harness, namespace: &str, client: &Client, room: &str) {
    let sid: Sid = client.id.parse().expect("a socket id");
    let ns = h.io.namespace(namespace).expect("the namespace");
    ns.socket(sid).expect("the socket").join(&[room]);
}

#[tokio::test(start_paused = true)]
async fn an_emit_to_a_room_reaches_only_its_members() {
    let h = Harness::new();
    let (a, b, c) = (
        h.connect("/").await,
        h.connect("/").await,
        h.connect("/").await,
    );
    join(&h, "/", &a, "room:1");
    join(&h, "/", &b, "room:1");
    let body = json!({"rooms": ["room:1"], "event": "message", "args": [{"text": "hi"}, 2]});
    let reply = h.post("/api/v1/emit", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json, json!({"recipients": 2}));
    let expected = r#"42["message",{"text":"hi"},2]"#;
    assert_eq!(a.next().await, [expected]);
    assert_eq!(b.next().await, [expected]);
    assert!(c.next().await.is_empty(), "a non-member received the event");
}

#[tokio::test(start_paused = true)]
async fn without_targets_every_socket_of_the_namespace_gets_it_except_the_excluded() {
    let h = Harness::new();
    let (a, b, c) = (
        h.connect("/").await,
        h.connect("/").await,
        h.connect("/").await,
    );
    join(&h, "/", &c, "muted");
    let body = json!({"event": "tick", "except": ["muted", b.id], "volatile": true});
    let reply = h.post("/api/v1/emit", &body).await;
    assert_eq!(reply.json, json!({"recipients": 1}), "{}", reply.text);
    assert_eq!(a.next().await, [r#"42["tick"]"#]);
    assert!(b.next().await.is_empty());
    assert!(c.next().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn socket_ids_and_rooms_are_a_union_in_the_named_namespace() {
    let h = Harness::new();
    let (a, b, c) = (
        h.connect("/chat").await,
        h.connect("/chat").await,
        h.connect("/chat").await,
    );
    let main = h.connect("/").await;
    join(&h, "/chat", &b, "room:2");
    let body = json!({
        "namespace": "chat",
        "socket_ids": [a.id],
        "rooms": ["room:2"],
        "event": "ping-me",
    });
    let reply = h.post("/api/v1/emit", &body).await;
    assert_eq!(reply.json, json!({"recipients": 2}), "{}", reply.text);
    assert_eq!(a.next().await, [r#"42/chat,["ping-me"]"#]);
    assert_eq!(b.next().await, [r#"42/chat,["ping-me"]"#]);
    assert!(c.next().await.is_empty());
    assert!(main.next().await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn binary_arguments_arrive_as_attachments() {
    let h = Harness::new();
    let a = h.connect("/").await;
    let body = json!({
        "socket_ids": [a.id],
        "event": "file",
        "args": ["report.bin"],
        "binary_args": [{"index": 1, "base64": "AAEC/w=="}],
    });
    let reply = h.post("/api/v1/emit", &body).await;
    assert_eq!(reply.json, json!({"recipients": 1}), "{}", reply.text);
    assert_eq!(
        a.next().await,
        [
            r#"451-["file","report.bin",{"_placeholder":true,"num":0}]"#,
            "bAAEC/w==",
        ]
    );
}

#[tokio::test]
async fn invalid_emits_are_422_and_unknown_namespaces_404() {
    let h = Harness::new();
    let cases = [
        (json!({"event": "disconnect"}), "reserved_event"),
        (json!({"event": "connect"}), "reserved_event"),
        (json!({"event": ""}), "invalid_request"),
        (
            json!({"event": "x", "binary_args": [{"index": 0, "base64": "@@"}]}),
            "invalid_base64",
        ),
        (
            json!({"event": "x", "binary_args": [{"index": 5, "base64": "AA=="}]}),
            "invalid_request",
        ),
        (
            json!({"event": "x", "socket_ids": ["nope"]}),
            "invalid_request",
        ),
        (json!({"event": "x", "rooms": [""]}), "invalid_request"),
        (
            json!({"event": "x", "args": [{"_placeholder": true, "num": 0}]}),
            "invalid_request",
        ),
    ];
    for (body, code) in cases {
        let reply = h.post("/api/v1/emit", &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.code(), code, "{body}: {}", reply.text);
    }
    let five = json!({"event": "x", "args": [], "binary_args": (0..5)
        .map(|i| json!({"index": i, "base64": "AA=="}))
        .collect::<Vec<_>>()});
    let reply = h.post("/api/v1/emit", &five).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "over the harness's 4"
    );
    let reply = h
        .post("/api/v1/emit", &json!({"namespace": "/nope", "event": "x"}))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "unknown_namespace");
}
