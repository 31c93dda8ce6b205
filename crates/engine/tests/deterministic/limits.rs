//! Bounded outbound queues: slow consumers are cut with their own reason, volatile
//! packets are dropped instead of queued, and other clients are unaffected.

use serde_json::json;
use switchboard_engine::QueueLimits;

use super::harness::{Client, config, server};

fn disconnects(io: &switchboard_engine::Io, reason: &str) -> u64 {
    let snap = io.engine().metrics().snapshot();
    snap.disconnects
        .iter()
        .find(|(r, _)| r.as_str() == reason)
        .unwrap()
        .1
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_is_disconnected_as_slow_consumer() {
    let mut cfg = config();
    cfg.engine.queue = QueueLimits {
        max_packets: 8,
        max_bytes: 1 << 20,
    };
    let io = server(cfg);
    let slow = Client::connected(&io).await;
    let fast = Client::connected(&io).await;
    let ns = io.of("/");
    let mut reached = Vec::new();
    for i in 0..20 {
        reached.push(ns.emit("tick", json!(i)));
        if i % 4 == 0 {
            let _ = fast.get().await;
        }
    }
    tokio::task::yield_now().await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
    assert_eq!(*reached.last().unwrap(), 1, "only the fast client remains");
    assert!(fast.get().await.contains("tick"));
    slow.assert_closed().await;
}

#[tokio::test(start_paused = true)]
async fn the_byte_bound_applies_too() {
    let mut cfg = config();
    cfg.engine.queue = QueueLimits {
        max_packets: 1000,
        max_bytes: 1000,
    };
    let io = server(cfg);
    let _slow = Client::connected(&io).await;
    let ns = io.of("/");
    for _ in 0..5 {
        ns.emit("big", json!("x".repeat(300)));
    }
    tokio::task::yield_now().await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
}

#[tokio::test(start_paused = true)]
async fn volatile_packets_are_dropped_while_the_client_is_not_ready() {
    let io = server(config());
    let client = Client::connected(&io).await;
    let ns = io.of("/");
    ns.emit("first", json!(1));
    for _ in 0..5 {
        ns.to("nobody-room").emit("ignored", json!(0));
        switchboard_engine::sio::BroadcastOperator::clone(&ns.except("nobody-room"))
            .volatile()
            .emit("volatile", json!(2));
    }
    let body = client.get().await;
    assert_eq!(body, "42[\"first\",1]");
    assert_eq!(io.engine().metrics().snapshot().volatile_dropped, 5);
    assert_eq!(disconnects(&io, "slow consumer"), 0);
}
