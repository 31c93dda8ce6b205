//! What every request goes through before its handler: the API prefix, the key, the
//! rate limit, routing, the body's size and deadline; and the metrics after.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Frame;
use serde_json::json;

use super::support::{Harness, KEY, authorized, request};
use crate::api::metrics::RequestCount;
use crate::config::{ApiKey, RateLimit};

#[tokio::test]
async fn requests_without_a_valid_key_are_401_whatever_the_route() {
    let h = Harness::new();
    for path in ["/api/v1/namespaces", "/api/v1/no-such-route", "/api/"] {
        let reply = h.send(request("GET", path, "")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(reply.code(), "unauthorized");
        assert_eq!(
            reply.headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"switchboard\""
        );
    }
    let mut wrong = request("GET", "/api/v1/namespaces", "");
    wrong.headers_mut().insert(
        header::AUTHORIZATION,
        http::HeaderValue::from_static("Bearer test-key-0123456789abcdeX"),
    );
    let reply = h.send(wrong).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json["message"], "unknown API key");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let h = Harness::new();
    let reply = h.get("/api/v1/nope").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.code(), "not_found");
    let reply = h.get("/api/v1/emit").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers[header::ALLOW], "POST");
    let reply = h.post("/api/v1/namespaces", &json!({})).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers[header::ALLOW], "GET");
    // Outside the API prefix the router answers nothing but 404, key or not.
    let reply = h.send(request("GET", "/metrics", "")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_400_and_wrong_shapes_422() {
    let h = Harness::new();
    for body in ["", "{", "not json", "{\"event\": \"x\",}"] {
        let reply = h.send(authorized("POST", "/api/v1/emit", body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(reply.code(), "malformed_json");
    }
    for body in [
        json!({}),
        json!({"event": 5}),
        json!({"event": "x", "room": ["typo of rooms"]}),
        json!([1, 2]),
    ] {
        let reply = h.post("/api/v1/emit", &body).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.code(), "invalid_request");
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let h = Harness::with(|c| c.max_body_bytes = 64);
    let big = json!({"event": "x", "args": ["y".repeat(100)]});
    let reply = h.post("/api/v1/emit", &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.code(), "payload_too_large");
    let mut declared = authorized("POST", "/api/v1/emit", "{}");
    declared
        .headers_mut()
        .insert(header::CONTENT_LENGTH, http::HeaderValue::from(1_000_000));
    assert_eq!(h.send(declared).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    let small = json!({"event": "x"});
    assert_eq!(h.post("/api/v1/emit", &small).await.status, StatusCode::OK);
}

/// A body that sends a first byte and then stalls.
struct Stalled(bool);

impl hyper::body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if std::mem::replace(&mut self.0, true) {
            Poll::Pending
        } else {
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{")))))
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_stalls_is_408_after_the_body_timeout() {
    let h = Harness::with(|c| c.body_timeout = Duration::from_secs(3));
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/emit")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Stalled(false))
        .expect("a request");
    let started = tokio::time::Instant::now();
    let res = h.router.handle(req).await;
    assert_eq!(res.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
    let body = res.into_body().collect().await.map(|c| c.to_bytes());
    let text = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
    assert!(text.contains("\"code\":\"body_timeout\""), "{text}");
}

#[tokio::test(start_paused = true)]
async fn each_key_has_a_token_bucket_and_429_says_when_to_retry() {
    const OTHER: &str = "other-key-0123456789abcdef";
    let h = Harness::with(|c| {
        c.keys.push(ApiKey::new(OTHER));
        c.rate_limit = RateLimit {
            per_second: 2,
            burst: 3,
        };
    });
    for _ in 0..3 {
        assert_eq!(h.get("/api/v1/namespaces").await.status, StatusCode::OK);
    }
    let limited = h.get("/api/v1/namespaces").await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.headers[header::RETRY_AFTER], "1");
    // The other key is not affected.
    let mut other = request("GET", "/api/v1/namespaces", "");
    other.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {OTHER}").parse().expect("a header value"),
    );
    assert_eq!(h.send(other).await.status, StatusCode::OK);
    // Half a second later one token is back.
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(h.get("/api/v1/namespaces").await.status, StatusCode::OK);
    assert_eq!(
        h.get("/api/v1/namespaces").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn requests_are_counted_by_route_template_method_and_status() {
    let h = Harness::new();
    h.get("/api/v1/namespaces/%2F/rooms").await;
    h.get("/api/v1/namespaces/%2Fchat/rooms").await;
    h.get("/api/v1/namespaces/nope/rooms").await;
    h.send(request("GET", "/api/v1/whatever", "")).await;
    let count = |route: &str, status: u16| {
        h.metrics
            .snapshot()
            .iter()
            .find(|c: &&RequestCount| c.route == route && c.status == status)
            .map(|c| (c.method, c.count))
    };
    let rooms = "/api/v1/namespaces/{namespace}/rooms";
    assert_eq!(count(rooms, 200), Some(("GET", 2)));
    assert_eq!(count(rooms, 404), Some(("GET", 1)));
    assert_eq!(count("unmatched", 401), Some(("GET", 1)));
}
