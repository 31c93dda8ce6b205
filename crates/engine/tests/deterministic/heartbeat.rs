//! Server-initiated heartbeat: pings every interval, closes on a missing pong.

use std::time::Duration;

use http::StatusCode;

use super::harness::{Client, PING_INTERVAL, PING_TIMEOUT, config, server};

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
