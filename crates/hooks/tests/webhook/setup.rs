//! Shared test setup: settings for a receiver, a shutdown trigger, events, waiting.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

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
        address: Some("127.0.0.1".into()),
        claims: Some(serde_json::json!({"sub": "u1"})),
        at: SystemTime::now(),
    }
}

/// Polls `check` until it holds; panics after the safety timeout (paused clock).
pub(crate) async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(600);
    while !check() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh dead-letter path under the system temp dir.
pub(crate) fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-hooks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("dead-letters.jsonl")
}

/// The JSON lines of a dead-letter file.
pub(crate) fn read_lines(path: &PathBuf) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Removes the directory `temp_file` made.
pub(crate) fn remove_temp(path: &std::path::Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
