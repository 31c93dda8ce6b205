//! Server-initiated heartbeat: pings every interval, closes on a missing pong.

use std::time::Duration;

use http::StatusCode;

use super::harness::{Client, PING_INTERVAL, PING_TIMEOUT, config, disconnects, server};

#[tokio::test(start_paused = true)]
async fn a_ping_arrives_after_the_interval_and_a_pong_keeps_the_session() {
    let io = server(config());
    let client = Client::connected(&io).await;
    for _ in 0..3 {
        assert_eq!(client.get().await, "2");
        client.post("3").await;
    }
    assert!(
        !io.engine()
            .metrics()
            .snapshot()
            .disconnects
            .iter()
            .any(|(_, n)| *n > 0)
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_pong_closes_the_session_with_ping_timeout() {
    let io = server(config());
    let client = Client::connected(&io).await;
    assert_eq!(client.get().await, "2");
    tokio::time::sleep(PING_TIMEOUT + Duration::from_millis(10)).await;
    let (status, body) = client.get_raw().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, r#"{"code":1,"message":"Session ID unknown"}"#);
    let snap = io.engine().metrics().snapshot();
    let timeouts = snap
        .disconnects
        .iter()
        .find(|(r, _)| r.as_str() == "ping timeout")
        .unwrap()
        .1;
    assert_eq!(timeouts, 1);
    let _ = PING_INTERVAL;
}

#[tokio::test(start_paused = true)]
async fn a_connection_without_namespace_is_closed_after_connect_timeout() {
    let io = server(config());
    let client = Client::handshake(&io).await;
    // Keep the heartbeat alive so only the connect timeout can close the session.
    for _ in 0..4 {
        let body = client.get().await;
        if body != "2" {
            assert_eq!(body, "1", "expected a close packet");
            break;
        }
        client.post("3").await;
    }
    let (status, _) = client.get_raw().await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let snap = io.engine().metrics().snapshot();
    let n = snap
        .disconnects
        .iter()
        .find(|(r, _)| r.as_str() == "connect timeout")
        .unwrap()
        .1;
    assert_eq!(n, 1);
}

/// Keeps the heartbeat alive until the session closes, for at most `pings` pings;
/// whether it closed.
async fn answer_pings_until_closed(client: &Client, pings: usize) -> bool {
    for _ in 0..pings {
        let body = client.get().await;
        let packets: Vec<&str> = body.split('\u{1e}').collect();
        if packets.contains(&"1") {
            return true;
        }
        if packets.contains(&"2") {
            client.post("3").await;
        }
    }
    false
}

/// Joining a namespace ends the connect timeout; leaving the last one starts it
/// again, so a connection cannot hold its place by joining and leaving.
#[tokio::test(start_paused = true)]
async fn a_connection_that_left_its_last_namespace_is_held_to_the_connect_timeout_again() {
    let io = server(config());
    let client = Client::connected(&io).await;
    client.post("41").await;
    // The connect timeout (1 s) is three ping cycles and more.
    assert!(answer_pings_until_closed(&client, 10).await, "still open");
    assert_eq!(disconnects(&io, "connect timeout"), 1);
}

/// A binary packet must be whole within `body_timeout`, even when another namespace's
/// CONNECT completes while its attachments are awaited (registering that socket ended
/// every deadline, the attachments' included).
#[tokio::test(start_paused = true)]
async fn a_second_namespace_connecting_does_not_lift_an_attachments_deadline() {
    let mut cfg = config();
    cfg.engine.body_timeout = Duration::from_millis(500);
    let io = server(cfg);
    io.of("/b").use_middleware(|_socket| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    });
    let client = Client::connected(&io).await;
    // CONNECT /b, then a binary event of `/` with one attachment that never comes.
    client
        .post("40/b,\u{1e}451-[\"ev\",{\"_placeholder\":true,\"num\":0}]")
        .await;
    assert!(answer_pings_until_closed(&client, 10).await, "still open");
    let cut_off: u64 = io
        .engine()
        .metrics()
        .snapshot()
        .disconnects
        .iter()
        .filter(|(r, _)| r.as_str() != "connect timeout")
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(cut_off, 1);
}

/// The same when the last namespace is left while another CONNECT is still being
/// decided, and that CONNECT is then refused: the refusal leaves the connection in no
/// namespace, held to the connect timeout.
#[tokio::test(start_paused = true)]
async fn a_connection_left_in_no_namespace_by_a_refused_connect_is_held_to_the_connect_timeout() {
    let io = server(config());
    io.of("/b").use_middleware(|_socket| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err(switchboard_engine::ConnectError::new("no"))
    });
    let client = Client::connected(&io).await;
    client.post("40/b,\u{1e}41").await;
    assert!(answer_pings_until_closed(&client, 10).await, "still open");
    assert_eq!(disconnects(&io, "connect timeout"), 1);
}
