//! Broadcasts with acknowledgements across nodes (`emit_with_ack` on a selection): all
//! answers or a timeout, never some answers passed off as all of them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use switchboard_engine::adapter::{
    AckReport, Adapter, AdapterError, BoxFuture, BroadcastOptions, ClusterOp, MemoryAdapter,
};
use switchboard_engine::protocol::socketio::{Packet, PacketType};
use switchboard_engine::{AckError, Io, Namespace, Payload, Shutdown};

use super::harness::{Client, config};

/// A cluster of this node and one other, as a cluster adapter reports it: the other
/// node counts `clients` that never answer, then its relay gives up at once (as a
/// relay whose timer, started with the same timeout, fires just before the caller's).
#[derive(Debug, Default)]
struct TwoNodes {
    index: MemoryAdapter,
    /// `server_count` fails (the broker cannot be reached).
    count_fails: bool,
}

impl Adapter for TwoNodes {
    super::harness::memory_index!(index);
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        let failed = self.count_fails;
        Box::pin(async move {
            match failed {
                true => Err(AdapterError::Unavailable("refused".into())),
                false => Ok(2),
            }
        })
    }
    fn publish_op(&self, _ns: &Arc<Namespace>, _opts: &BroadcastOptions, op: ClusterOp<'_>) {
        if let ClusterOp::BroadcastWithAck { sink, .. } = op {
            let _ = sink.send(AckReport::ClientCount(1));
        }
    }
}

fn two_nodes(count_fails: bool) -> Io {
    let factory: switchboard_engine::adapter::AdapterFactory = Arc::new(move |_| {
        Arc::new(TwoNodes {
            count_fails,
            ..TwoNodes::default()
        }) as Arc<dyn Adapter>
    });
    Io::with_adapter(quiet(), factory, Arc::default(), Shutdown::never())
}

/// Heartbeats far apart: a client that does not answer is not closed (which would
/// end its acknowledgements) while a test waits.
fn quiet() -> switchboard_engine::SocketIoConfig {
    let mut config = config();
    config.engine.ping_interval = Duration::from_secs(600);
    config.engine.ping_timeout = Duration::from_secs(600);
    config
}

/// The ack id of the event the client was sent (`42<id>[...]`).
async fn answer(client: &Client, with: &str) {
    let sent = client.get().await;
    let id: String = sent
        .strip_prefix("42")
        .unwrap_or_default()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    assert!(!id.is_empty(), "an event with an ack id: {sent}");
    client.post(&format!("43{id}[{with}]")).await;
}

/// What `emit_with_ack` to every client of the two nodes gives when this node's one
/// client answers (`local`: to this node's clients only).
async fn this_nodes_answer_only(io: &Io, local: bool) -> Result<Vec<Payload>, AckError> {
    let client = Client::connected(io).await;
    let selection = match local {
        true => io.of("/").all().local(),
        false => io.of("/").all(),
    };
    let asked = tokio::spawn(selection.emit_with_ack("q", json!(1), Duration::from_secs(5)));
    answer(&client, "\"yes\"").await;
    asked.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_missing_answer_is_a_timeout_even_when_every_reporter_gave_up() {
    // The other node's client never answered: this node's one answer is not all.
    let io = two_nodes(false);
    assert_eq!(
        this_nodes_answer_only(&io, false).await,
        Err(AckError::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn an_unknown_node_count_is_not_taken_for_one_node() {
    let io = two_nodes(true);
    assert_eq!(
        this_nodes_answer_only(&io, false).await,
        Err(AckError::Timeout)
    );
}

#[tokio::test(start_paused = true)]
async fn a_local_broadcast_waits_for_this_node_only() {
    let io = two_nodes(false);
    let answers = this_nodes_answer_only(&io, true).await;
    let answers = answers.expect("every local client answered");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].args, vec![json!("yes")]);
}

/// A node answering another node's broadcast reports each answer as it comes: a
/// requester that hands over what arrived when it times out (Node's
/// `timeout(t).emit(ev, (err, answers))`) must not lose them all to one silent client.
#[tokio::test(start_paused = true)]
async fn each_answer_is_reported_as_it_comes() {
    let io = Io::new(quiet(), Shutdown::never());
    let quick = Client::connected(&io).await;
    let _silent = Client::connected(&io).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut opts = BroadcastOptions::default();
    opts.flags.timeout = Some(Duration::from_secs(30));
    let packet = Packet::new(PacketType::Event, "/", Some(json!(["q", 1])));
    io.of("/").broadcast_with_ack_local(packet, &opts, tx);
    assert_eq!(rx.recv().await, Some(AckReport::ClientCount(2)));
    let started = tokio::time::Instant::now();
    answer(&quick, "\"yes\"").await;
    let first = rx.recv().await;
    assert!(matches!(first, Some(AckReport::Ack(_))), "{first:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "held back until the silent client timed out: {:?}",
        started.elapsed()
    );
}
