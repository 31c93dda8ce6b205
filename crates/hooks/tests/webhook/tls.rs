//! HTTPS backends: a private CA given as `tls_ca_file` is trusted, an unknown one is not.

use std::time::SystemTime;

use switchboard_hooks::settings::Secret;
use switchboard_hooks::{
    ForwardedEvent, HookError, HookSink, StartError, WebhookSettings, WebhookSink,
};
use switchboard_test_support::eventually;

use super::receiver::{Answer, Receiver, testdata};
use super::setup::{connected, settings, start};

fn event() -> ForwardedEvent {
    ForwardedEvent {
        namespace: "/".into(),
        socket_id: "s1".into(),
        event: "ping".into(),
        args: vec![],
        binary: vec![],
        claims: None,
        at: SystemTime::now(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_backend_signed_by_the_configured_ca_is_reached() {
    let mut receiver =
        Receiver::start_tls(vec![], Answer::Full(200, vec![], r#"{"ack":[1]}"#.into())).await;
    assert_eq!(receiver.url.scheme_str(), Some("https"));
    let mut settings = settings(&receiver.url);
    settings.tls_ca_file = Some(testdata("ca.pem"));
    let (sink, _stop) = start(settings);

    let reply = sink.forward(event()).await.unwrap();
    assert_eq!(reply.ack, Some(vec![serde_json::json!(1)]));
    sink.deliver(connected("s1"));
    receiver.next().await;
    receiver.next().await;
    eventually("delivered", || async { sink.metrics().delivered == 1 }).await;
}

#[tokio::test(start_paused = true)]
async fn a_backend_with_an_unknown_ca_is_unavailable() {
    let receiver = Receiver::start_tls(vec![], Answer::Status(200)).await;
    // The system's roots only: the test CA is not among them.
    let (sink, _stop) = start(settings(&receiver.url));
    assert_eq!(sink.forward(event()).await, Err(HookError::Unavailable));
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_at_start() {
    let mut settings = WebhookSettings::new(
        "https://127.0.0.1:9/hooks".parse().unwrap(),
        Secret::new("k"),
    );
    settings.tls_ca_file = Some(testdata("missing.pem"));
    let started = WebhookSink::start(settings.clone(), std::future::pending());
    assert!(
        matches!(started, Err(StartError::CaFile { .. })),
        "{started:?}"
    );
    settings.tls_ca_file = Some(testdata("README.md"));
    let started = WebhookSink::start(settings, std::future::pending());
    assert!(
        matches!(started, Err(StartError::CaFile { .. })),
        "{started:?}"
    );
}
