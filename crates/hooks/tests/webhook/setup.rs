//! Shared test setup: settings for a receiver, a shutdown trigger, events, dead-letter
//! files. Tests wait with `switchboard_test_support::eventually`.

use std::path::PathBuf;
use std::time::SystemTime;

use http::Uri;
use switchboard_hooks::settings::Secret;
use switchboard_hooks::{LifecycleEvent, WebhookSettings, WebhookSink};
use tokio::sync::watch;

pub(crate) const SECRET: &str = "test-secret";

/// Settings for `url` signed with [`SECRET`], every other value at its default.
pub(crate) fn settings(url: &Uri) -> WebhookSettings {
    WebhookSettings::new(url.clone(), Secret::new(SECRET))
}

/// Starts a sink; dropping or sending `true` on the returned sender shuts it down.
pub(crate) fn start(settings: WebhookSettings) -> (WebhookSink, watch::Sender<bool>) {
    let (tx, mut rx) = watch::channel(false);
    let sink = WebhookSink::start(settings, async move {
        let _ = rx.wait_for(|stop| *stop).await;
    })
    .unwrap();
    (sink, tx)
}

/// A connection event whose socket id tells tests apart.
pub(crate) fn connected(socket_id: &str) -> LifecycleEvent {
    LifecycleEvent::Connected {
        namespace: "/chat".into(),
        socket_id: socket_id.into(),
        transport: "websocket".into(),
        address: Some("127.0.0.1".into()),
        claims: Some(serde_json::json!({"sub": "u1"})),
        at: SystemTime::now(),
    }
}

/// A fresh dead-letter path in a new temporary directory, removed when the returned
/// directory is dropped (even when the test fails).
pub(crate) fn dead_letter_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead-letters.jsonl");
    (dir, path)
}

/// The JSON lines of a dead-letter file.
pub(crate) fn read_lines(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}
