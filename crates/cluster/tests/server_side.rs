//! Server-side events between nodes (Node's `io.serverSideEmit`), with either adapter:
//! an event reaches the handler of every other node, never the sender's own, in the
//! order it was emitted, and an emit that waits for answers collects one from each
//! other node.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::BTreeMap;

use serde_json::{Value, json};
use support::{DEADLINE, Node, NodeOptions, RedisServer, formed};
use switchboard_cluster::AdapterKind;
use tokio::sync::mpsc;

/// The `from` of each answer, sorted: which nodes answered.
fn answered_by(answers: &[Value]) -> Vec<&str> {
    let mut names: Vec<&str> = answers.iter().filter_map(|a| a["from"].as_str()).collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_events_reach_every_other_node_and_collect_their_answers() {
    for adapter in [AdapterKind::Redis, AdapterKind::RedisStreams] {
        let redis = RedisServer::start().await;
        let one = Node::start(&redis, NodeOptions::new(adapter, "one")).await;
        let two = Node::start(&redis, NodeOptions::new(adapter, "two")).await;
        let three = Node::start(&redis, NodeOptions::new(adapter, "three")).await;
        formed(&[&one, &two, &three]).await;

        // Every node records what its handler was given (before answering) and answers
        // with its name.
        let (seen, mut heard) = mpsc::unbounded_channel();
        for node in [&one, &two, &three] {
            let (seen, name) = (seen.clone(), node.name.clone());
            node.ns()
                .handlers()
                .on_server_side_emit(move |_ns, args, ack| {
                    let _ = seen.send((name.clone(), args));
                    if let Some(ack) = ack {
                        ack(json!({ "from": name }));
                    }
                });
        }
        drop(seen);

        one.ns().server_side_emit(vec![json!("hello"), json!(1)]);
        let answers = one
            .ns()
            .server_side_emit_with_ack(vec![json!("ping")], DEADLINE)
            .await
            .unwrap();
        assert_eq!(answered_by(&answers), ["three", "two"], "{adapter:?}");
        // Node one answers node two only after reading everything published before
        // (one Redis, read in order), its own two events included: had it handled
        // them, they would be recorded by the time this returns.
        let answers = two
            .ns()
            .server_side_emit_with_ack(vec![json!("barrier")], DEADLINE)
            .await
            .unwrap();
        assert_eq!(answered_by(&answers), ["one", "three"], "{adapter:?}");

        let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        while let Ok((node, args)) = heard.try_recv() {
            by_node.entry(node).or_default().push(Value::Array(args));
        }
        let from_one = [json!(["hello", 1]), json!(["ping"])];
        assert_eq!(by_node["one"], [json!(["barrier"])], "{adapter:?}");
        assert_eq!(by_node["two"], from_one, "{adapter:?}");
        assert_eq!(
            by_node["three"],
            [from_one[0].clone(), from_one[1].clone(), json!(["barrier"])],
            "{adapter:?}"
        );
    }
}

/// A server-side handler that panics on one event (an argument it did not expect, as
/// anyone who can publish may send) costs that event only: the node still hears the
/// next one. Before, the panic ended the task reading every message for the node,
/// which went deaf to the cluster while still saying it was ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_costs_its_own_event_only() {
    for adapter in [AdapterKind::Redis, AdapterKind::RedisStreams] {
        let redis = RedisServer::start().await;
        let one = Node::start(&redis, NodeOptions::new(adapter, "one")).await;
        let two = Node::start(&redis, NodeOptions::new(adapter, "two")).await;
        formed(&[&one, &two]).await;
        let (seen, mut heard) = mpsc::unbounded_channel();
        two.ns()
            .handlers()
            .on_server_side_emit(move |_ns, args, _ack| {
                // An application's assumption about what peers send.
                let n = args[0].as_u64().expect("a number");
                let _ = seen.send(n);
            });
        one.ns().server_side_emit(vec![json!("not a number")]);
        one.ns().server_side_emit(vec![json!(7)]);
        let next = tokio::time::timeout(DEADLINE, heard.recv()).await;
        assert_eq!(
            next,
            Ok(Some(7)),
            "{adapter:?}: the node still hears the cluster"
        );
        let panics = &two.cluster.health().unwrap().handler_panics;
        assert_eq!(
            panics.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "{adapter:?}"
        );
    }
}
