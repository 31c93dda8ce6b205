//! `POST /api/v1/sockets/{join,leave,disconnect}` against real polling clients.

use http::StatusCode;
use serde_json::json;

use super::support::Harness;

#[tokio::test(start_paused = true)]
async fn sockets_joined_through_the_api_receive_the_room_s_events() {
    let h = Harness::new();
    let (a, b, c) = (
        h.connect("/").await,
        h.connect("/").await,
        h.connect("/").await,
    );
    let join = json!({"socket_ids": [a.id, b.id], "join": ["room:7", "vip"]});
    let reply = h.post("/api/v1/sockets/join", &join).await;
    assert_eq!(reply.json, json!({"affected": 2}), "{}", reply.text);
    // Sockets in `vip`, except `b`, also join `inner`.
    let by_room = json!({"rooms": ["vip"], "except": [b.id], "join": ["inner"]});
    let reply = h.post("/api/v1/sockets/join", &by_room).await;
    assert_eq!(reply.json, json!({"affected": 1}));

    let emit = json!({"rooms": ["room:7"], "event": "news"});
    assert_eq!(h.post("/api/v1/emit", &emit).await.json["recipients"], 2);
    assert_eq!(a.next().await, [r#"42["news"]"#]);
    assert_eq!(b.next().await, [r#"42["news"]"#]);
    assert!(c.next().await.is_empty());
    let inner = h.get("/api/v1/namespaces/%2F/rooms/inner").await;
    assert_eq!(inner.json["socket_ids"], json!([a.id]));
}

#[tokio::test(start_paused = true)]
async fn leaving_selects_first_so_a_whole_room_can_be_emptied() {
    let h = Harness::new();
    let (a, b) = (h.connect("/").await, h.connect("/").await);
    let join = json!({"all": true, "join": ["lobby", "news"]});
    assert_eq!(
        h.post("/api/v1/sockets/join", &join).await.json["affected"],
        2
    );
    let leave = json!({"rooms": ["lobby"], "leave": ["lobby"]});
    let reply = h.post("/api/v1/sockets/leave", &leave).await;
    assert_eq!(reply.json, json!({"affected": 2}), "{}", reply.text);
    let rooms = h.get("/api/v1/namespaces/%2F/rooms").await;
    assert_eq!(rooms.json["rooms"], json!([{"name": "news", "size": 2}]));
    let leave_one = json!({"socket_ids": [a.id], "leave": ["news"]});
    assert_eq!(
        h.post("/api/v1/sockets/leave", &leave_one).await.json["affected"],
        1
    );
    let news = h.get("/api/v1/namespaces/%2F/rooms/news").await;
    assert_eq!(news.json["socket_ids"], json!([b.id]));
}

#[tokio::test(start_paused = true)]
async fn disconnect_leaves_the_namespace_or_closes_the_connection() {
    let h = Harness::new();
    let (a, b, c) = (
        h.connect("/").await,
        h.connect("/").await,
        h.connect("/").await,
    );
    let reply = h
        .post("/api/v1/sockets/disconnect", &json!({"socket_ids": [a.id]}))
        .await;
    assert_eq!(reply.json, json!({"affected": 1}), "{}", reply.text);
    assert_eq!(a.next().await, ["41"]);
    assert_eq!(
        h.io.engine().session_count(),
        3,
        "the connection stays open"
    );

    // With `close`, as Node's `disconnect(true)`: the socket leaves its namespace
    // (the client hears DISCONNECT, `io server disconnect`, and does not reconnect by
    // itself; no session is kept for recovery), then the connection closes.
    let close = json!({"socket_ids": [b.id], "close": true});
    let waiting = tokio::spawn(async move {
        let packets = b.poll().await;
        // The close packet comes in the next poll, as a client's.
        (packets, b.poll().await)
    });
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    let reply = h.post("/api/v1/sockets/disconnect", &close).await;
    assert_eq!(reply.json["affected"], 1);
    let (packets, then) = waiting.await.unwrap_or_default();
    assert_eq!(
        packets.first().map(String::as_str),
        Some("41"),
        "{packets:?}"
    );
    assert_eq!(then, ["1"]);
    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    assert_eq!(h.io.engine().session_count(), 2, "the connection is closed");
    let sockets = h.get("/api/v1/namespaces/%2F/sockets").await;
    let ids: Vec<&str> = sockets.json["sockets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(ids, [c.id.as_str()]);
}

#[tokio::test]
async fn operations_need_a_selection_and_their_own_action() {
    let h = Harness::new();
    let cases = [
        ("join", json!({"join": ["r"]}), "empty_selection"),
        (
            "leave",
            json!({"except": ["x"], "leave": ["r"]}),
            "empty_selection",
        ),
        ("disconnect", json!({}), "empty_selection"),
        ("disconnect", json!({"close": true}), "empty_selection"),
        (
            "join",
            json!({"all": true, "rooms": ["a"], "join": ["r"]}),
            "invalid_request",
        ),
        ("join", json!({"all": true}), "invalid_request"),
        ("join", json!({"all": true, "join": []}), "invalid_request"),
        (
            "leave",
            json!({"all": true, "leave": [""]}),
            "invalid_request",
        ),
        (
            "join",
            json!({"all": true, "join": ["r"], "close": true}),
            "invalid_request",
        ),
        (
            "disconnect",
            json!({"all": true, "leave": ["r"]}),
            "invalid_request",
        ),
        (
            "disconnect",
            json!({"socket_ids": ["short"]}),
            "invalid_request",
        ),
        (
            "join",
            json!({"all": true, "join": ["r"], "rooms_typo": 1}),
            "invalid_request",
        ),
        // `null` is not "absent": the document allows no null (found by schemathesis).
        (
            "disconnect",
            json!({"all": true, "close": null}),
            "invalid_request",
        ),
        (
            "join",
            json!({"all": true, "join": null}),
            "invalid_request",
        ),
    ];
    for (op, body, code) in cases {
        let reply = h.post(&format!("/api/v1/sockets/{op}"), &body).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{op} {body}"
        );
        assert_eq!(reply.code(), code, "{op} {body}: {}", reply.text);
    }
    let unknown = json!({"namespace": "/nope", "all": true});
    let reply = h.post("/api/v1/sockets/disconnect", &unknown).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "unknown_namespace");
}

#[tokio::test(start_paused = true)]
async fn leaving_the_room_that_selects_nobody_affects_nobody() {
    let h = Harness::new();
    let a = h.connect("/").await;
    let join = json!({"socket_ids": [a.id], "join": ["stay"]});
    h.post("/api/v1/sockets/join", &join).await;
    // The selection is made by the room being left, and is empty: it must not widen
    // to every socket.
    let leave = json!({"rooms": ["ghost"], "leave": ["ghost", "stay"]});
    let reply = h.post("/api/v1/sockets/leave", &leave).await;
    assert_eq!(reply.json, json!({"affected": 0}), "{}", reply.text);
    let stay = h.get("/api/v1/namespaces/%2F/rooms/stay").await;
    assert_eq!(stay.json["socket_ids"], json!([a.id]));
}
