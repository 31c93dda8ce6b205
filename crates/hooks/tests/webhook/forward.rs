//! Forwarded events: one POST, the reply awaited within the forward timeout, never
//! retried.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::json;
use switchboard_hooks::signature::{self, DEFAULT_TOLERANCE};
use switchboard_hooks::{ForwardedEvent, HookAction, HookError, HookSink};
use tokio::time::Instant;

use super::receiver::{Answer, Receiver};
use super::setup::{SECRET, settings, start};

fn event() -> ForwardedEvent {
    ForwardedEvent {
        namespace: "/chat".into(),
        socket_id: "s1".into(),
        event: "message".into(),
        args: vec![json!("hi"), json!({"_placeholder": true, "num": 0})],
        binary: vec![Bytes::from_static(b"\xff\x00bin")],
        claims: Some(json!({"sub": "u1"})),
        at: SystemTime::now(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_reply_with_ack_and_actions_is_parsed() {
    let reply = json!({
        "ack": ["ok", {"n": 1}],
        "actions": [
            {"type": "join", "rooms": ["chat:1"]},
            {"type": "leave", "rooms": ["lobby"]},
            {"type": "emit", "rooms": ["chat:1"], "event": "said", "args": ["hi"]}
        ]
    });
    let mut receiver = Receiver::start(
        vec![],
        Answer::Full(
            200,
            vec![("content-type", "application/json".into())],
            reply.to_string(),
        ),
    )
    .await;
    let (sink, _stop) = start(settings(&receiver.url));

    let reply = sink.forward(event()).await.unwrap();
    assert_eq!(reply.ack, Some(vec![json!("ok"), json!({"n": 1})]));
    assert_eq!(
        reply.actions,
        vec![
            HookAction::Join {
                rooms: vec!["chat:1".into()]
            },
            HookAction::Leave {
                rooms: vec!["lobby".into()]
            },
            HookAction::Emit {
                rooms: vec!["chat:1".into()],
                event: "said".into(),
                args: vec![json!("hi")]
            },
        ]
    );

    let got = receiver.next().await;
    let body = got.json();
    assert_eq!(got.header("idempotency-key"), body["id"].as_str().unwrap());
    assert_eq!(body["type"], "event");
    assert_eq!(
        body["data"],
        json!({
            "namespace": "/chat", "socket_id": "s1", "event": "message",
            "args": ["hi", {"_placeholder": true, "num": 0}],
            "binary": ["/wBiaW4="],
            "claims": {"sub": "u1"}
        })
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
    let m = sink.metrics();
    assert_eq!((m.forward_ok, m.forward_latency.count), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn an_empty_2xx_reply_is_an_empty_reply() {
    let receiver = Receiver::start(vec![], Answer::Status(204)).await;
    let (sink, _stop) = start(settings(&receiver.url));
    let reply = sink.forward(event()).await.unwrap();
    assert_eq!(reply, Default::default());
}

#[tokio::test(start_paused = true)]
async fn a_500_reply_is_rejected_and_not_retried() {
    let mut receiver = Receiver::start(vec![], Answer::Status(500)).await;
    let (sink, _stop) = start(settings(&receiver.url));
    assert_eq!(
        sink.forward(event()).await,
        Err(HookError::Rejected { status: 500 })
    );
    receiver.next().await;
    assert!(
        receiver
            .more_within(Duration::from_secs(60))
            .await
            .is_none()
    );
    assert_eq!(sink.metrics().forward_rejected, 1);
}

#[tokio::test(start_paused = true)]
async fn a_garbage_reply_is_invalid() {
    let receiver = Receiver::start(
        vec![Answer::Full(200, vec![], "<html>oops</html>".into())],
        Answer::Full(200, vec![], r#"{"actions":[{"type":"explode"}]}"#.into()),
    )
    .await;
    let (sink, _stop) = start(settings(&receiver.url));
    assert_eq!(sink.forward(event()).await, Err(HookError::InvalidReply));
    assert_eq!(sink.forward(event()).await, Err(HookError::InvalidReply));
    assert_eq!(sink.metrics().forward_invalid_reply, 2);
}

#[tokio::test(start_paused = true)]
async fn a_reply_that_never_comes_times_out() {
    let mut receiver = Receiver::start(vec![], Answer::Hang).await;
    let mut settings = settings(&receiver.url);
    settings.forward_timeout = Duration::from_secs(5);
    let (sink, _stop) = start(settings);

    let started = Instant::now();
    assert_eq!(sink.forward(event()).await, Err(HookError::Timeout));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "waited {waited:?}"
    );
    receiver.next().await;
    assert!(
        receiver
            .more_within(Duration::from_secs(60))
            .await
            .is_none()
    );
    assert_eq!(sink.metrics().forward_timeout, 1);
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_backend_is_unavailable() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/hooks").parse().unwrap();
    let (sink, _stop) = start(settings(&url));
    assert_eq!(sink.forward(event()).await, Err(HookError::Unavailable));
    assert_eq!(sink.metrics().forward_unavailable, 1);
}
