//! WebSocket upgrades relayed between two nodes over real TCP: a client whose session
//! lives on node A opens its WebSocket on node B (a round-robin balancer's pick), and
//! B relays it to A. The cluster transport is in-process (`InProcess`); the client's
//! polling requests go to A in-process; its WebSocket is a real connection to B, and
//! B's to A is real too.
//!
//! The drain of a relaying node: once A answered `2probe` with `3probe`, the official
//! client pauses polling and waits to send `5` on the WebSocket. Ending the relay then
//! left it paused, hearing nothing, until its ping timeout (found in the rolling
//! restart of the interop tests); so B's drain waits until `5` has gone by.

#![allow(clippy::unwrap_used, missing_docs)]

#[path = "common/in_process.rs"]
mod in_process;

#[allow(dead_code)] // the polling client only
#[path = "deterministic/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_engine::config::NodeTag;
use switchboard_engine::shutdown::{DrainPlan, ShutdownTrigger};
use switchboard_engine::{Io, SocketIoConfig, not_found, serve, shutdown};
use switchboard_test_support::{eventually, within};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use harness::Client;
use in_process::InProcess;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A node on a real listener, its relay address set, echoing `echo` events.
struct Node {
    io: Io,
    url: String,
    stop: ShutdownTrigger,
}

async fn node(tag: &str, cluster: &Arc<InProcess>) -> Node {
    let (stop, signal) = shutdown::channel();
    let mut config = SocketIoConfig::default();
    config.engine.node_tag = Some(NodeTag::new(tag).unwrap());
    let io = Io::new(config, signal.clone());
    cluster.join(tag, io.engine());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(io.engine().set_relay_address(&addr.to_string()));
    tokio::spawn(serve(listener, io.engine().clone(), not_found, signal));
    io.of("/").on("echo", |ev| {
        let _ = ev.socket.emit("echo", ev.payload.clone());
    });
    Node {
        io,
        url: format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
        stop,
    }
}

/// Nodes A (owning the client's session) and B (relaying its WebSocket).
async fn two_nodes() -> (Node, Node) {
    let cluster = Arc::new(InProcess::default());
    (node("nodA", &cluster).await, node("nodB", &cluster).await)
}

/// The WebSocket of `client`'s session opened on `node`, probed: `2probe` sent and
/// `3probe` received. The client would now pause polling.
async fn probed(node: &Node, client: &Client) -> Ws {
    let url = format!("{}&sid={}", node.url, client.sid);
    let (mut ws, _) = within(
        "the WebSocket to open",
        tokio_tungstenite::connect_async(url),
    )
    .await
    .unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws).await.as_deref(), Some("3probe"));
    ws
}

/// The next text message; `None` once the connection has ended.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match within("a WebSocket message", ws.next()).await {
            Some(Ok(Message::Text(text))) => return Some(text.to_string()),
            Some(Ok(Message::Close(_)) | Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

fn plan(deadline: Duration) -> DrainPlan {
    DrainPlan {
        batch_size: 500,
        interval: Duration::from_millis(50),
        deadline,
    }
}

/// `client`'s session upgraded through `node` (`5` sent), an echo gone both ways.
async fn upgraded_through(node: &Node, client: &Client) -> Ws {
    let mut ws = probed(node, client).await;
    ws.send(Message::text("5")).await.unwrap();
    ws.send(Message::text(r#"42["echo",1]"#)).await.unwrap();
    assert_eq!(next_text(&mut ws).await.as_deref(), Some(r#"42["echo",1]"#));
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_relayed_by_another_node_carries_the_session_both_ways() {
    let (a, b) = two_nodes().await;
    let client = Client::connected(&a.io).await;
    let _ws = upgraded_through(&b, &client).await;
    assert_eq!(b.io.engine().metrics().snapshot().upgrades_relayed, 1);
    assert_eq!(b.io.engine().session_count(), 0, "the session stays on A");
}

/// A relay ends with the owner's side: a client that stopped reading and never
/// closes its connection (an attacker's, or one whose network went away unheard) no
/// longer keeps the relay, its place among the relaying node's `max_connections` and
/// its buffers after the owner closed the session (before, the relay waited for the
/// client's end too, for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_ends_when_the_owner_closes_the_session_though_the_client_stays_silent() {
    let (a, b) = two_nodes().await;
    let client = Client::connected(&a.io).await;
    let ws = upgraded_through(&b, &client).await;
    let relayed = || b.io.engine().metrics().snapshot().relayed_connections;
    assert_eq!(relayed(), 1);
    // The owner ends the session (as its heartbeat would for a silent client); the
    // client neither reads nor closes from now on (`ws` is held, never polled).
    assert!(a.io.engine().close_session(
        &client.sid,
        switchboard_engine::DisconnectReason::TransportError
    ));
    eventually("the relay to end with the owner's side", || async {
        relayed() == 0
    })
    .await;
    drop(ws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_keeps_a_relayed_upgrade_until_the_client_has_sent_its_upgrade_packet() {
    let (a, b) = two_nodes().await;
    let client = Client::connected(&a.io).await;
    let mut ws = probed(&b, &client).await;

    // B drains (then shuts down, below): what a SIGTERM does. B holds no session of its
    // own.
    let drain = tokio::spawn({
        let engine = b.io.engine().clone();
        async move { engine.drain(plan(Duration::from_secs(30))).await }
    });
    eventually("B to drain", || async { b.io.engine().is_draining() }).await;
    // The drain has every chance to end (it used to, at once, and the shutdown after it
    // then cut the relay while the client was paused) ...
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !drain.is_finished(),
        "the drain waits for the relayed upgrade under way"
    );
    // ... and a new upgrade is not relayed meanwhile: that client stays on polling.
    let other = Client::connected(&a.io).await;
    let refused = tokio_tungstenite::connect_async(format!("{}&sid={}", b.url, other.sid)).await;
    assert!(refused.is_err(), "a draining node relays no new upgrade");

    // The client's `upgrade` packet goes by: the drain ends, in time, and the client is
    // on its WebSocket, with A, through B.
    ws.send(Message::text("5")).await.unwrap();
    let report = within("B's drain", drain).await.unwrap();
    assert!(report.in_time(), "{report:?}");
    assert_eq!(report.relayed_upgrades_unfinished, 0);
    ws.send(Message::text(r#"42["echo",2]"#)).await.unwrap();
    assert_eq!(next_text(&mut ws).await.as_deref(), Some(r#"42["echo",2]"#));
    // B's shutdown ends the relay, and the client notices at once (so it reconnects),
    // instead of waiting for its ping timeout.
    b.stop.trigger();
    assert_eq!(
        next_text(&mut ws).await,
        None,
        "B's shutdown ends the relay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_upgrade_that_never_completes_does_not_hold_the_drain_past_its_deadline() {
    let (a, b) = two_nodes().await;
    let client = Client::connected(&a.io).await;
    let _ws = probed(&b, &client).await; // and never `5`
    let report = within(
        "B's drain",
        b.io.engine().drain(plan(Duration::from_millis(300))),
    )
    .await;
    assert_eq!(report.relayed_upgrades_unfinished, 1, "{report:?}");
    assert!(!report.in_time());
}
