//! The rules at connect time, over a real `Io` and a long-polling client: a client
//! that hears "connected" is already in its auto-joined rooms.

use std::sync::{Mutex, mpsc};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt as _, Full};
use serde_json::json;
use switchboard_engine::{Io, Payload, SocketIoConfig, shutdown};

use super::Hooks;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// One polling request to `io`; the body of the answer.
async fn exchange(io: &Io, method: Method, query: &str, body: &str) -> String {
    let req = Request::builder()
        .method(method)
        .uri(format!("/socket.io/?EIO=4&transport=polling{query}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a valid request");
    let res = io
        .handle(req, "127.0.0.1:9".parse().expect("an address"))
        .await;
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn token(sub: &str) -> String {
    let exp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": sub, "exp": exp }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("a token")
}

/// The CONNECT answer goes out before the `connection` handlers run (on another
/// thread after the async auth middleware). The auto-join happens in the middleware,
/// before the answer: a message sent to `user:{sub}` the instant the client hears
/// "connected" reaches it even while the handlers are still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hears_connected_is_already_in_its_auto_joined_rooms() {
    let config = crate::config::from_text(&format!(
        "[[namespaces]]\nname = \"/chat\"\n[namespaces.auth]\nsecret = \"{SECRET}\"\n\
         [namespaces.rooms]\nauto_join = [\"user:{{sub}}\"]\n"
    ))
    .expect("valid rules");
    let (_trigger, signal) = shutdown::channel();
    let io = Io::new(SocketIoConfig::default(), signal.clone());
    // Registered before the rules' own handler, so it holds them all.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    io.of("/chat").on_connection(move |_| {
        let _ = started_tx.send(());
        let go = go_rx.lock().unwrap_or_else(|e| e.into_inner());
        let _ = go.recv_timeout(Duration::from_secs(10));
    });
    let _installed = super::install(&io, &config, Hooks::none(), &signal);

    let open = exchange(&io, Method::GET, "", "").await;
    let open: serde_json::Value =
        serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    let sid = format!("&sid={}", open["sid"].as_str().expect("a sid"));
    let connect = format!(r#"40/chat,{{"token":"{}"}}"#, token("alice"));
    assert_eq!(exchange(&io, Method::POST, &sid, &connect).await, "ok");
    let answer = exchange(&io, Method::GET, &sid, "").await;
    assert!(answer.starts_with("40/chat,{\"sid\":"), "{answer}");
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("joined")
        .expect("the connection handlers started");

    // The client heard "connected"; the handlers still run.
    io.of("/chat")
        .to("user:alice")
        .emit("news", Payload::new(vec![json!(1)]));
    go_tx.send(()).expect("the handler waits");
    let next = tokio::time::timeout(Duration::from_secs(5), exchange(&io, Method::GET, &sid, ""))
        .await
        .expect("the message sent to user:alice at the CONNECT answer never arrived");
    assert_eq!(next, r#"42/chat,["news",1]"#);
}
