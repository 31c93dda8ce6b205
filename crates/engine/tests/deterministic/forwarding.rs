//! No sticky sessions: two nodes in one process, each polling request of a client sent
//! to either of them, the node that does not own the session serving it through the
//! owner (an in-process `Forwarder` calling the owner's `handle_forwarded`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use switchboard_engine::Io;
use switchboard_engine::config::NodeTag;
use switchboard_engine::eio::ForwardedRequest;

use super::harness::{config, server};
use crate::in_process::InProcess;

const UNKNOWN_SID: &str = r#"{"code":1,"message":"Session ID unknown"}"#;

/// A node tagged `tag`, reachable through `cluster`, echoing `echo` events.
fn node(tag: &str, cluster: &Arc<InProcess>) -> Io {
    let mut cfg = config();
    cfg.engine.node_tag = Some(NodeTag::new(tag).unwrap());
    let io = server(cfg);
    cluster.join(tag, io.engine());
    io.of("/").on("echo", |ev| {
        let _ = ev.socket.emit("echo", ev.payload.clone());
    });
    io
}

fn two_nodes() -> (Arc<InProcess>, Io, Io) {
    let cluster = Arc::new(InProcess::default());
    let a = node("nodA", &cluster);
    let b = node("nodB", &cluster);
    (cluster, a, b)
}

/// One HTTP exchange with headers; the answer's status, headers and body.
async fn send(
    io: &Io,
    method: Method,
    query: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("/socket.io/?{query}"));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let res = io.handle(req, "127.0.0.1:9".parse().unwrap()).await;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// A polling client behind a round-robin balancer: request `n` goes to node `n % 2`.
#[derive(Clone)]
struct RoundRobin {
    nodes: Arc<[Io; 2]>,
    next: Arc<AtomicUsize>,
    sid: String,
}

impl RoundRobin {
    /// Handshakes with the first node.
    async fn handshake(nodes: [Io; 2]) -> RoundRobin {
        let (status, _, body) =
            send(&nodes[0], Method::GET, "EIO=4&transport=polling", "", &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let open: serde_json::Value =
            serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
        RoundRobin {
            nodes: Arc::new(nodes),
            next: Arc::new(AtomicUsize::new(1)),
            sid: open["sid"].as_str().unwrap().to_owned(),
        }
    }

    /// The node the balancer picks for the next request.
    fn pick(&self) -> Io {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.nodes[n % 2].clone()
    }

    async fn exchange(&self, method: Method, body: &str) -> (StatusCode, String) {
        let query = format!("EIO=4&transport=polling&sid={}", self.sid);
        let (status, _, body) = send(&self.pick(), method, &query, body, &[]).await;
        (status, body)
    }

    async fn get(&self) -> String {
        let (status, body) = self.exchange(Method::GET, "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn post(&self, body: &str) {
        let (status, answer) = self.exchange(Method::POST, body).await;
        assert_eq!((status, answer.as_str()), (StatusCode::OK, "ok"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_client_whose_requests_alternate_between_nodes_works_as_on_one() {
    let (cluster, a, b) = two_nodes();
    // Request 0 (A): the handshake; the session belongs to A.
    let client = RoundRobin::handshake([a.clone(), b.clone()]).await;
    assert!(client.sid.starts_with("nodA"), "{}", client.sid);
    assert_eq!(client.sid.len(), 20);

    client.post("40").await; // B
    assert!(client.get().await.starts_with("40{\"sid\":"), "joined /"); // A
    client.post(r#"42["echo","hi"]"#).await; // B
    assert_eq!(client.get().await, r#"42["echo","hi"]"#); // A

    // A long-poll waiting on B (for A's session) is woken by a broadcast on A.
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.get().await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(
        !waiting.is_finished(),
        "the forwarded poll waits for frames"
    );
    a.of("/").emit("news", json!("hello"));
    assert_eq!(waiting.await.unwrap(), r#"42["news","hello"]"#);

    // Heartbeat: a ping fetched on A, its pong posted through B, the next ping fetched
    // through B. Had the pong been lost, the session would have closed before it.
    assert_eq!(client.get().await, "2"); // A
    client.post("3").await; // B
    assert_eq!(client.get().await, "2"); // A
    client.post("3").await; // B
    client.post(r#"42["echo","still"]"#).await; // A
    assert_eq!(client.get().await, r#"42["echo","still"]"#); // B

    assert_eq!(a.engine().session_count(), 1);
    assert_eq!(
        b.engine().session_count(),
        0,
        "B holds nothing of the session"
    );
    assert_eq!(a.of("/").socket_count(), 1);
    assert_eq!(b.of("/").socket_count(), 0);
    assert_eq!(cluster.forwarded(), 6, "every request B got went to A");
}

#[tokio::test(start_paused = true)]
async fn each_node_tags_the_sessions_it_creates() {
    let (_cluster, a, b) = two_nodes();
    for (io, tag) in [(&a, "nodA"), (&b, "nodB")] {
        for _ in 0..3 {
            let (_, _, body) = send(io, Method::GET, "EIO=4&transport=polling", "", &[]).await;
            let open: serde_json::Value =
                serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
            let sid = open["sid"].as_str().unwrap();
            assert!(sid.starts_with(tag) && sid.len() == 20, "{sid}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn unknown_owners_and_sessions_get_session_id_unknown() {
    let (cluster, a, _b) = two_nodes();
    let poll = |sid: &str| format!("EIO=4&transport=polling&sid={sid}");

    // A node nobody knows: the forwarder fails, the client is told to start over.
    for method in [Method::GET, Method::POST] {
        let (status, _, body) = send(&a, method, &poll("zzzzAAAAAAAAAAAAAAAA"), "40", &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, UNKNOWN_SID)
        );
    }
    assert_eq!(cluster.forwarded(), 2);

    // This node's own tag, or an id too short to carry one: never forwarded.
    for sid in ["nodAAAAAAAAAAAAAAAAA", "short"] {
        let (status, _, body) = send(&a, Method::GET, &poll(sid), "", &[]).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::BAD_REQUEST, UNKNOWN_SID)
        );
    }
    assert_eq!(cluster.forwarded(), 2);

    // The owner exists but has no such session: its answer comes back as is.
    let (status, _, body) = send(&a, Method::GET, &poll("nodBAAAAAAAAAAAAAAAA"), "", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, UNKNOWN_SID)
    );
    assert_eq!(cluster.forwarded(), 3);
}

/// Without a relay address on the owner (or anything else that stops the relay), a
/// WebSocket for another node's session gets `Session ID unknown` and the client goes
/// on polling. (The relay itself needs real TCP: the interop tests run it.)
#[tokio::test(start_paused = true)]
async fn a_websocket_for_another_nodes_session_not_relayed_is_refused_and_polling_goes_on() {
    let (cluster, a, b) = two_nodes();
    let client = RoundRobin::handshake([a.clone(), b.clone()]).await;
    let ws = [
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let query = format!("EIO=4&transport=websocket&sid={}", client.sid);
    let (status, _, body) = send(&b, Method::GET, &query, "", &ws).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, UNKNOWN_SID)
    );
    assert_eq!(
        cluster.forwarded(),
        1,
        "the owner was asked where to relay it"
    );

    client.post("40").await; // B
    assert!(
        client.get().await.starts_with("40{"),
        "the session still polls"
    );
}

#[tokio::test(start_paused = true)]
async fn forwarded_answers_get_the_receiving_nodes_cors_headers() {
    let (_cluster, a, b) = two_nodes();
    let client = RoundRobin::handshake([a.clone(), b.clone()]).await;
    let query = format!("EIO=4&transport=polling&sid={}", client.sid);
    let origin = [("origin", "https://app.example")];
    let (status, headers, body) = send(&b, Method::POST, &query, "40", &origin).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(
        headers["content-type"], "text/html",
        "the owner's own headers"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_body_over_max_payload_gets_413_and_closes_the_owners_session() {
    let cluster = Arc::new(InProcess::default());
    let small = |tag: &str| {
        let mut cfg = config();
        cfg.engine.node_tag = Some(NodeTag::new(tag).unwrap());
        cfg.engine.max_payload = 100;
        let io = server(cfg);
        cluster.join(tag, io.engine());
        io
    };
    let (a, b) = (small("nodA"), small("nodB"));
    let client = RoundRobin::handshake([a.clone(), b.clone()]).await;
    let (status, _) = client
        .exchange(Method::POST, &format!("4{}", "x".repeat(200)))
        .await; // B
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(a.engine().session_count(), 0, "closed as payload too large");
}

/// An owner that never answers: what a forwarded request waits on while the owner's
/// node is slow.
#[derive(Debug)]
struct Stalled;

impl switchboard_engine::eio::Forwarder for Stalled {
    fn forward(
        &self,
        _: &str,
        _: ForwardedRequest,
    ) -> futures_util::future::BoxFuture<
        'static,
        Result<switchboard_engine::eio::ForwardedResponse, switchboard_engine::eio::ForwardError>,
    > {
        Box::pin(std::future::pending())
    }
}

/// A forwarded POST's body stays charged to `max_inbound_bytes` while it waits for
/// the owner: bodies held for a slow owner cannot pass the budget (before, the charge
/// ended once the body was read, and any number of them waited).
#[tokio::test(start_paused = true)]
async fn bodies_waiting_for_a_slow_owner_stay_within_the_inbound_budget() {
    let mut cfg = config();
    cfg.engine.node_tag = Some(NodeTag::new("nodB").unwrap());
    cfg.engine.max_inbound_bytes = 100_000;
    let b = server(cfg);
    b.engine().set_forwarder(Arc::new(Stalled));
    let body = format!("4{}", "x".repeat(60_000));
    let post = |sid: &'static str| {
        let (b, body) = (b.clone(), body.clone());
        tokio::spawn(async move {
            let query = format!("EIO=4&transport=polling&sid={sid}");
            send(&b, Method::POST, &query, &body, &[]).await
        })
    };
    // Sessions of node `nodA`'s, which never answers.
    let first = post("nodAAAAAAAAAAAAAAAAA");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!first.is_finished(), "held for the owner");
    let second = tokio::time::timeout(Duration::from_secs(60), post("nodAAAAAAAAAAAAAAAAB"));
    let (status, _, answer) = second.await.expect("refused at once, not held").unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert!(answer.contains("max_inbound_bytes"), "{answer}");
    assert!(!first.is_finished());
    first.abort();
}

#[tokio::test(start_paused = true)]
async fn a_client_giving_up_on_a_forwarded_poll_ends_it_on_the_owner_too() {
    let (_cluster, a, b) = two_nodes();
    let client = RoundRobin::handshake([a.clone(), b.clone()]).await;
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.exchange(Method::GET, "").await } // B
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    waiting.abort();
    tokio::time::sleep(Duration::from_millis(1)).await;
    // As for an aborted local poll: the owner does not take frames for nobody.
    assert_eq!(a.engine().session_count(), 0);
}

/// What the owner answers another node asking where to relay a session's upgrade: its
/// relay address while the session is open on polling, `Session ID unknown` for a
/// session it does not hold; the question takes nothing from the session.
#[tokio::test(start_paused = true)]
async fn the_owner_tells_where_to_relay_an_upgrade_only_for_its_polling_sessions() {
    let (_cluster, a, b) = two_nodes();
    let client = RoundRobin::handshake([a.clone(), b.clone()]).await;
    let ask = |node: &Io, sid: &str| {
        let request = ForwardedRequest {
            method: Method::GET,
            query: format!("EIO=4&transport=websocket&sid={sid}"),
            headers: HeaderMap::new(),
            body: Bytes::new(),
            remote: "127.0.0.1:9".parse().unwrap(),
        };
        let engine = node.engine().clone();
        async move {
            let answer = engine.handle_forwarded(request).await;
            (
                answer.status,
                String::from_utf8_lossy(&answer.body).into_owned(),
            )
        }
    };
    // No address set: nothing to relay to.
    assert_eq!(ask(&a, &client.sid).await.0, StatusCode::BAD_REQUEST);

    assert!(!a.engine().set_relay_address("not an address"));
    assert!(a.engine().set_relay_address("10.0.0.7:3000"));
    assert_eq!(
        ask(&a, &client.sid).await,
        (StatusCode::OK, "10.0.0.7:3000".to_owned())
    );
    assert!(b.engine().set_relay_address("10.0.0.8:3000"));
    let (status, body) = ask(&b, &client.sid).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, UNKNOWN_SID)
    );
    let (status, body) = ask(&a, "nodAxxxxxxxxxxxxxxxx").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, UNKNOWN_SID)
    );

    client.post("40").await;
    assert!(
        client.get().await.starts_with("40{"),
        "the session still polls"
    );
}
