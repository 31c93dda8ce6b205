//! The read-only routes against real polling clients.

use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde_json::{Value, json};
use switchboard_engine::protocol::Sid;

use super::support::{Client, Harness};

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn namespaces_rooms_and_room_members_are_listed_by_name() {
    let h = Harness::new();
    let (a, b) = (h.connect("/").await, h.connect("/").await);
    h.connect("/chat").await;
    let join = json!({"socket_ids": [a.id, b.id], "join": ["zeta"]});
    h.post("/api/v1/sockets/join", &join).await;
    let alpha = json!({"socket_ids": [a.id], "join": ["alpha"]});
    h.post("/api/v1/sockets/join", &alpha).await;

    let namespaces = h.get("/api/v1/namespaces").await;
    assert_eq!(
        namespaces.json,
        json!({"namespaces": [{"name": "/", "sockets": 2}, {"name": "/chat", "sockets": 1}]})
    );
    let rooms = h.get("/api/v1/namespaces/%2F/rooms").await;
    assert_eq!(
        rooms.json,
        json!({"namespace": "/", "rooms": [{"name": "alpha", "size": 1}, {"name": "zeta", "size": 2}]})
    );
    let chat = h.get("/api/v1/namespaces/chat/rooms").await;
    assert_eq!(chat.json, json!({"namespace": "/chat", "rooms": []}));

    let zeta = h.get("/api/v1/namespaces/%2F/rooms/zeta").await;
    let mut members = vec![a.id.clone(), b.id.clone()];
    members.sort();
    assert_eq!(
        zeta.json,
        json!({"namespace": "/", "name": "zeta", "size": 2, "socket_ids": members})
    );
    let empty = h.get("/api/v1/namespaces/%2F/rooms/nobody%20here").await;
    assert_eq!(
        empty.json,
        json!({"namespace": "/", "name": "nobody here", "size": 0, "socket_ids": []})
    );
    let unknown = h.get("/api/v1/namespaces/%2Fnope/rooms").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "unknown_namespace");
}

#[tokio::test(start_paused = true)]
async fn a_socket_shows_its_handshake_without_secrets_its_rooms_and_data() {
    let h = Harness::new();
    let headers = [
        ("user-agent", "test-agent/1"),
        ("cookie", "session=secret"),
        ("authorization", "Bearer secret"),
        ("x-auth-token", "secret"),
    ];
    let client = Client::connect(&h.io, "/", "&token=secret&room=x%20y", &headers).await;
    let sid: Sid = client.id.parse().expect("a socket id");
    let socket = h.io.of("/").socket(sid).expect("the socket");
    socket.join(&["team"]);
    socket.set_data(json!({"user": "alice"}));

    let reply = h
        .get(&format!("/api/v1/namespaces/%2F/sockets/{}", client.id))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(!reply.text.contains("secret"), "{}", reply.text);
    let s = &reply.json;
    assert_eq!(s["id"], client.id.as_str());
    assert_eq!(s["namespace"], "/");
    assert_eq!(s["rooms"], json!([client.id, "team"]));
    assert_eq!(s["data"], json!({"user": "alice"}));
    let hs = &s["handshake"];
    assert_eq!(hs["address"], "127.0.0.1:40000");
    assert_eq!(hs["headers"], json!({"user-agent": "test-agent/1"}));
    assert_eq!(
        hs["query"],
        json!({"EIO": "4", "room": "x y", "transport": "polling"})
    );
    assert_eq!(hs["transport"], "polling");
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let issued = hs["issued"].as_u64().unwrap_or_default();
    assert!(
        issued <= now_ms && now_ms - issued < 60_000,
        "{issued} vs {now_ms}"
    );

    for id in ["AAAAAAAAAAAAAAAAAAAA", "not-an-id"] {
        let missing = h.get(&format!("/api/v1/namespaces/%2F/sockets/{id}")).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{id}");
        assert_eq!(missing.code(), "unknown_socket");
    }
}

#[tokio::test(start_paused = true)]
async fn sockets_are_listed_by_room_and_a_page_at_a_time() {
    let h = Harness::new();
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(h.connect("/").await);
    }
    let mut all: Vec<String> = clients.iter().map(|c| c.id.clone()).collect();
    all.sort();
    let join = json!({"socket_ids": [all[1], all[3]], "join": ["odd"]});
    h.post("/api/v1/sockets/join", &join).await;

    let in_room = h.get("/api/v1/namespaces/%2F/sockets?room=odd").await;
    assert_eq!(
        ids(&in_room.json["sockets"]),
        [all[1].clone(), all[3].clone()]
    );
    assert_eq!(in_room.json["next"], Value::Null);

    let mut seen = Vec::new();
    let mut path = "/api/v1/namespaces/%2F/sockets?limit=2".to_owned();
    loop {
        let page = h.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        seen.extend(ids(&page.json["sockets"]));
        match page.json["next"].as_str() {
            Some(next) => path = format!("/api/v1/namespaces/%2F/sockets?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, all);

    for query in [
        "limit=0",
        "limit=5000",
        "limit=two",
        "colour=blue",
        "room=%ZZ",
    ] {
        let reply = h
            .get(&format!("/api/v1/namespaces/%2F/sockets?{query}"))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.code(), "bad_query");
    }
}

#[tokio::test(start_paused = true)]
async fn the_last_disconnects_are_listed_newest_first_with_their_diagnosis() {
    let h = Harness::new();
    let (a, b) = (h.connect("/").await, h.connect("/chat").await);
    // `a` says goodbye (an Engine.IO close packet); `b` is disconnected by the API.
    a.send("1").await;
    let out = json!({"namespace": "/chat", "socket_ids": [b.id]});
    h.post("/api/v1/sockets/disconnect", &out).await;
    // A polling session the client closed stays answerable a moment (200 ms) before
    // its driver ends it.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let all = h.get("/api/v1/disconnects").await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.json);
    let list = all.json["disconnects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(list.len(), 2, "{list:?}");
    // Newest first: `a`'s session ends after the close grace, `b` left at once.
    assert_eq!(list[0]["socket_id"], json!(a.id));
    assert_eq!(list[0]["reason"], "transport close");
    assert_eq!(list[0]["category"], "client");
    assert_eq!(list[0]["confidence"], 1.0);
    assert_eq!(
        list[0]["evidence"][0],
        "the client closed the polling connection"
    );
    assert_eq!(list[1]["socket_id"], json!(b.id));
    assert_eq!(list[1]["reason"], "server namespace disconnect");
    assert_eq!(list[1]["category"], "server");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    assert!(
        list[0]["at"]
            .as_u64()
            .is_some_and(|at| u128::from(at) <= now + 1000)
    );

    let chat = h.get("/api/v1/disconnects?namespace=%2Fchat").await;
    assert_eq!(chat.json["disconnects"].as_array().map(Vec::len), Some(1));
    let clients = h.get("/api/v1/disconnects?category=client&limit=5").await;
    assert_eq!(clients.json["disconnects"][0]["socket_id"], json!(a.id));
    let one = h.get(&format!("/api/v1/disconnects?socket={}", b.id)).await;
    assert_eq!(one.json["disconnects"].as_array().map(Vec::len), Some(1));
    let later = h
        .get(&format!("/api/v1/disconnects?since={}", now + 60_000))
        .await;
    assert_eq!(later.json["disconnects"], json!([]));
    let bad = h.get("/api/v1/disconnects?category=gremlins").await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "bad_query")
    );
    // A filter longer than any name (it goes to every node in the question) is
    // refused, not sent: before, one of tens of kilobytes made the question too large
    // and the answer looked like a cluster outage.
    let long = h
        .get(&format!(
            "/api/v1/disconnects?namespace=%2F{}",
            "x".repeat(1024)
        ))
        .await;
    assert_eq!(
        (long.status, long.code()),
        (StatusCode::BAD_REQUEST, "bad_query")
    );
    let longest = h
        .get(&format!("/api/v1/disconnects?socket={}", "é".repeat(1024)))
        .await;
    assert_eq!(longest.status, StatusCode::OK, "1024 characters are taken");
}
