//! A lifecycle event reaches the backend once, signed, with its idempotency key.

use std::time::{Duration, SystemTime};

use serde_json::json;
use switchboard_hooks::signature::{self, DEFAULT_TOLERANCE};
use switchboard_hooks::{HookSink, LifecycleEvent};
use switchboard_test_support::eventually;

use super::receiver::{Answer, Receiver};
use super::setup::{SECRET, connected, settings, start};

#[tokio::test(start_paused = true)]
async fn delivers_a_signed_event_with_its_idempotency_key() {
    let mut receiver = Receiver::start(vec![], Answer::Status(204)).await;
    let (sink, _stop) = start(settings(&receiver.url));
    sink.deliver(connected("s1"));

    let got = receiver.next().await;
    assert_eq!(got.header("content-type"), "application/json");
    let body = got.json();
    assert_eq!(got.header("idempotency-key"), body["id"].as_str().unwrap());
    assert!(body["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(body["type"], "connection");
    assert!(body["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        body["data"],
        json!({"namespace": "/chat", "socket_id": "s1", "transport": "websocket",
               "address": "127.0.0.1", "claims": {"sub": "u1"}})
    );
    let verified = signature::verify(
        SECRET.as_bytes(),
        got.header("switchboard-timestamp"),
        &got.body,
        got.header("switchboard-signature"),
        SystemTime::now(),
        DEFAULT_TOLERANCE,
    );
    assert_eq!(verified, Ok(()));
    let wrong_secret = signature::verify(
        b"not-the-secret",
        got.header("switchboard-timestamp"),
        &got.body,
        got.header("switchboard-signature"),
        SystemTime::now(),
        DEFAULT_TOLERANCE,
    );
    assert!(wrong_secret.is_err());

    eventually("delivered is counted", || async {
        sink.metrics().delivered == 1
    })
    .await;
    let metrics = sink.metrics();
    assert_eq!(metrics.failed_attempts, 0);
    assert_eq!(metrics.delivery_latency.count, 1);
    assert_eq!(metrics.queue_depth, 0);
    assert!(
        receiver
            .more_within(Duration::from_secs(60))
            .await
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn every_lifecycle_kind_has_its_type_and_data() {
    let mut receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let mut settings = settings(&receiver.url);
    settings.concurrency = 1; // one worker: bodies arrive in queue order
    let (sink, _stop) = start(settings);
    let at = SystemTime::now();
    sink.deliver(LifecycleEvent::Disconnected {
        namespace: "/".into(),
        socket_id: "s2".into(),
        transport: "polling".into(),
        reason: "ping timeout".into(),
        diagnosis: None,
        at,
    });
    sink.deliver(LifecycleEvent::RoomOccupied {
        namespace: "/".into(),
        room: "chat:1".into(),
        by: "s1".into(),
        at,
    });
    sink.deliver(LifecycleEvent::RoomVacated {
        namespace: "/".into(),
        room: "chat:1".into(),
        by: "s1".into(),
        at,
    });
    let mut seen = Vec::new();
    for _ in 0..3 {
        let body = receiver.next().await.json();
        seen.push((body["type"].clone(), body["data"].clone()));
    }
    assert_eq!(
        seen,
        vec![
            (
                json!("disconnection"),
                json!({"namespace": "/", "socket_id": "s2", "transport": "polling",
                       "reason": "ping timeout", "diagnosis": null})
            ),
            (
                json!("room_occupied"),
                json!({"namespace": "/", "room": "chat:1"})
            ),
            (
                json!("room_vacated"),
                json!({"namespace": "/", "room": "chat:1"})
            ),
        ]
    );
}
