//! Cross-node requests waiting for answers: a request id maps to the channel its
//! answers go to; the entry disappears when the waiting side gives up or is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use switchboard_engine::adapter::{AckReport, AckSink, AdapterError, BroadcastOptions};
use switchboard_engine::sio::Namespace;
use switchboard_protocol::socketio::Packet;
use tokio::sync::mpsc;

use crate::broker::Reply;

/// Requests in flight, by id, each with the sender its answers go to.
#[derive(Debug)]
pub(crate) struct Requests<R> {
    map: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<R>>>>,
}

impl<R> Default for Requests<R> {
    fn default() -> Self {
        Requests {
            map: Arc::default(),
        }
    }
}

/// Removes its request when dropped (answered, timed out or abandoned).
#[derive(Debug)]
pub(crate) struct Registration<R> {
    id: String,
    map: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<R>>>>,
}

impl<R> Drop for Registration<R> {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl<R> Requests<R> {
    /// Registers `id`; answers arrive on the receiver until the registration drops.
    pub(crate) fn register(&self, id: String) -> (Registration<R>, mpsc::UnboundedReceiver<R>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        (
            Registration {
                id,
                map: self.map.clone(),
            },
            rx,
        )
    }

    /// Routes an answer; false when nobody waits for `id` (late, or not ours).
    pub(crate) fn answer(&self, id: &str, answer: R) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).is_some_and(|tx| tx.send(answer).is_ok())
    }

    /// Whether `id` is one of this node's requests.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }
}

/// Collects `expected` answers, or fails with how many came within `timeout`.
pub(crate) async fn collect<R>(
    rx: &mut mpsc::UnboundedReceiver<R>,
    expected: usize,
    timeout: Duration,
) -> Result<Vec<R>, AdapterError> {
    let mut out = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < expected {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(answer)) => out.push(answer),
            Ok(None) | Err(_) => {
                return Err(AdapterError::Timeout {
                    received: out.len(),
                    expected,
                });
            }
        }
    }
    Ok(out)
}

/// This node's half of another node's broadcast with acks: delivers it to the local
/// targets and publishes each report (client count, then one per answer) to
/// `reply`, encoded by `encode` in the adapter's format.
pub(crate) fn answer_broadcast_with_ack(
    ns: &Namespace,
    packet: Packet,
    mut opts: BroadcastOptions,
    reply: Reply,
    encode: impl Fn(AckReport) -> Vec<u8> + Send + 'static,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    opts.flags.local = true;
    ns.broadcast_with_ack_local(packet, &opts, tx);
    tokio::spawn(async move {
        while let Some(report) = rx.recv().await {
            reply.send(Bytes::from(encode(report)));
        }
    });
}

/// Passes the reports other nodes send for one of this node's broadcasts with acks
/// to `sink` until `timeout`, then forgets the request (Node keeps it that long too);
/// sooner once nobody waits for them (the emit has all its answers): reports for a
/// finished request are not decoded and held for the rest of the timeout.
pub(crate) fn relay_acks(
    registration: Registration<AckReport>,
    mut rx: mpsc::UnboundedReceiver<AckReport>,
    sink: AckSink,
    timeout: Duration,
) {
    tokio::spawn(async move {
        let _registration = registration;
        let relay = async {
            loop {
                let report = tokio::select! {
                    report = rx.recv() => report,
                    () = sink.closed() => None,
                };
                let Some(report) = report else { return };
                if sink.send(report).is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, relay).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_broadcast_nobody_waits_for_takes_no_more_reports() {
        let requests = Requests::<AckReport>::default();
        let (registration, rx) = requests.register("a".into());
        let (sink, answers) = mpsc::unbounded_channel();
        relay_acks(registration, rx, sink, Duration::from_secs(60));
        assert!(requests.answer("a", AckReport::ClientCount(1)));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(answers.len(), 1, "relayed");
        // The emit has its answers (or gave up): the request is forgotten at once,
        // not a minute later.
        drop(answers);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!requests.contains("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_reach_the_waiting_request_and_late_ones_are_dropped() {
        let requests = Requests::<u32>::default();
        let (reg, mut rx) = requests.register("a".into());
        assert!(requests.answer("a", 1));
        assert!(!requests.answer("b", 2), "not ours");
        assert_eq!(
            collect(&mut rx, 1, Duration::from_secs(1)).await,
            Ok(vec![1])
        );
        let err = collect(&mut rx, 1, Duration::from_secs(1)).await;
        assert_eq!(
            err,
            Err(AdapterError::Timeout {
                received: 0,
                expected: 1
            })
        );
        drop(reg);
        assert!(!requests.answer("a", 3), "gone once dropped");
    }
}
