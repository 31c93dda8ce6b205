//! Refused handshakes and CONNECTs get a report (category, the refusal's code, the
//! facts), are counted per stage and category, and are reported at a bounded rate
//! however many arrive.

use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use switchboard_engine::diagnosis::{Category, Report, Stage};
use switchboard_engine::{ConnectError, Io};

use super::harness::{Client, config, request, server};

/// The refusal reports of `io`, oldest first.
fn refusals(io: &Io) -> Vec<Arc<Report>> {
    io.disconnect_reports()
        .into_iter()
        .filter(|r| r.reason.as_str().ends_with("refused"))
        .collect()
}

fn counted(io: &Io, stage: Stage, category: Category) -> u64 {
    io.engine()
        .metrics()
        .snapshot()
        .refusals
        .iter()
        .find(|(s, c, _)| *s == stage && *c == category)
        .map_or(0, |(_, _, n)| *n)
}

#[tokio::test(start_paused = true)]
async fn refused_handshakes_are_reported_with_their_cause() {
    let mut cfg = config();
    cfg.engine.max_connections = 1;
    let io = server(cfg);
    // allowRequest says no to requests carrying `x-deny`.
    io.engine()
        .set_allow_request(Arc::new(|headers, _| !headers.contains_key("x-deny")));
    let _first = Client::handshake(&io).await;
    // At capacity.
    let (status, _) = request(&io, Method::GET, "EIO=4&transport=polling", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Not a valid handshake (Engine.IO v3).
    let (status, _) = request(&io, Method::GET, "EIO=3&transport=polling", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Refused by the application.
    let req = http::Request::builder()
        .uri("/socket.io/?EIO=4&transport=polling")
        .header("x-deny", "1")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let (status, _) = super::harness::send(&io, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let reports = refusals(&io);
    let shown: Vec<(&str, Category, &str)> = reports
        .iter()
        .map(|r| {
            (
                r.reason.as_str(),
                r.diagnosis.category,
                r.diagnosis.evidence[0].as_str(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                "handshake refused",
                Category::Policy,
                "refused (at_capacity)"
            ),
            (
                "handshake refused",
                Category::Protocol,
                "refused (bad_request)"
            ),
            ("handshake refused", Category::Policy, "refused (forbidden)"),
        ]
    );
    assert_eq!(
        reports[0].diagnosis.evidence[1],
        "1 connections open (engine.max_connections 1)"
    );
    assert_eq!(
        reports[1].diagnosis.evidence[1],
        "not a valid Engine.IO handshake: Unsupported protocol version"
    );
    assert!(
        reports
            .iter()
            .all(|r| r.socket_id.is_empty() && r.namespace.is_empty())
    );
    assert_eq!(counted(&io, Stage::Handshake, Category::Policy), 2);
    assert_eq!(counted(&io, Stage::Handshake, Category::Protocol), 1);
}

#[tokio::test(start_paused = true)]
async fn refused_connects_are_reported_with_the_middleware_category_and_scrubbed_words() {
    let io = server(config());
    io.of("/").use_middleware(|_socket| async {
        Err(ConnectError::new("token of ann@example.com expired")
            .with_data(serde_json::json!({ "code": "invalid_token" }))
            .with_category(Category::Auth))
    });
    let client = Client::handshake(&io).await;
    client.post("40").await;
    let answer = client.get().await;
    assert!(answer.starts_with("44{"), "{answer}");
    client.post("40/nowhere,").await;
    let answer = client.get().await;
    assert!(answer.contains("Invalid namespace"), "{answer}");

    let reports = refusals(&io);
    assert_eq!(reports.len(), 2);
    let auth = &reports[0];
    assert_eq!(
        (auth.reason.as_str(), auth.namespace.as_str()),
        ("connect refused", "/")
    );
    assert_eq!(auth.diagnosis.category, Category::Auth);
    assert_eq!(
        auth.diagnosis.evidence,
        [
            "refused (invalid_token)",
            "the namespace's middleware refused: token of [email] expired"
        ]
    );
    let nowhere = &reports[1];
    assert_eq!(nowhere.namespace, "/nowhere");
    assert_eq!(nowhere.diagnosis.category, Category::Protocol);
    assert_eq!(counted(&io, Stage::Connect, Category::Auth), 1);
    assert_eq!(counted(&io, Stage::Connect, Category::Protocol), 1);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_refusals_is_counted_whole_but_reported_at_a_bounded_rate() {
    let io = server(config());
    let heard = Arc::new(Mutex::new(0usize));
    let h = heard.clone();
    io.on_refusal(move |_| *h.lock().unwrap() += 1);
    for _ in 0..300 {
        let (status, _) = request(&io, Method::GET, "EIO=3&transport=polling", "").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(counted(&io, Stage::Handshake, Category::Protocol), 300);
    let burst = switchboard_engine::diagnosis::REFUSAL_REPORTS_BURST as usize;
    // Paused clock: no time passed, so the burst is all that was reported.
    assert_eq!(refusals(&io).len(), burst);
    assert_eq!(*heard.lock().unwrap(), burst);
}
