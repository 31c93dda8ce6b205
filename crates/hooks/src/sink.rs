//! The hook sink seam: where the engine's lifecycle events and forwarded client events
//! go. Implementations live beside it: [`NullSink`] here, `WebhookSink` in
//! [`crate::webhook`].

use crate::event::{ForwardedEvent, LifecycleEvent};
use crate::reply::HookReply;

pub use futures_util::future::BoxFuture;

/// Where lifecycle events and forwarded client events go. Never blocks the caller: the
/// engine calls it from a socket's read loop and from room bookkeeping, which must keep
/// serving every other socket whatever the backend does.
pub trait HookSink: Send + Sync + std::fmt::Debug + 'static {
    /// Queues a lifecycle event and returns at once.
    ///
    /// It exists apart from [`forward`](Self::forward) because nobody waits for a
    /// lifecycle event: it may be delivered later, retried, or dead-lettered, and the
    /// sink decides all of that off the caller's task. It never blocks and never waits
    /// for IO; the queue behind it is bounded and what happens when it is full is the
    /// sink's documented overflow policy.
    fn deliver(&self, event: LifecycleEvent);

    /// Whether [`deliver`](Self::deliver) sends lifecycle events anywhere. `false`
    /// lets a caller skip building events nobody receives (`deliver_with`): a
    /// deployment without hooks then builds no JSON at each connect and disconnect.
    /// `true` unless a sink says otherwise.
    fn wants_lifecycle(&self) -> bool {
        true
    }

    /// Sends a client event to the backend and resolves with its reply.
    ///
    /// It exists because a client may be waiting for an acknowledgement that only the
    /// backend can give, and the reply may carry actions (join, leave, emit). The call
    /// itself returns a future at once; the future is bounded by the sink's forward
    /// timeout ([`HookError::Timeout`]), so a slow backend costs the caller at most
    /// that long. It is `'static` so the engine can spawn it instead of awaiting it
    /// in the read loop.
    fn forward(&self, event: ForwardedEvent) -> BoxFuture<'static, Result<HookReply, HookError>>;
}

impl dyn HookSink {
    /// Delivers the lifecycle event `build` makes, building it only when the sink
    /// wants lifecycle events ([`HookSink::wants_lifecycle`]): what every caller of
    /// [`HookSink::deliver`] whose event costs something to build goes through.
    pub fn deliver_with(&self, build: impl FnOnce() -> LifecycleEvent) {
        if self.wants_lifecycle() {
            self.deliver(build());
        }
    }
}

/// Why a forwarded event got no usable reply. Callers match on the variant, never on
/// the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// The backend did not answer within the forward timeout.
    #[error("the backend did not answer in time")]
    Timeout,
    /// The backend answered with a non-2xx status.
    #[error("the backend rejected the event with status {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// No backend could be reached (connection refused, TLS failure, reset, or no
    /// backend configured at all).
    #[error("the backend is unavailable")]
    Unavailable,
    /// The backend answered 2xx with a body that is not a valid reply (or too large).
    #[error("the backend's reply is not valid")]
    InvalidReply,
}

/// A sink for deployments without hooks: drops lifecycle events, and answers every
/// forwarded event with [`HookError::Unavailable`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl HookSink for NullSink {
    fn deliver(&self, _event: LifecycleEvent) {}

    fn wants_lifecycle(&self) -> bool {
        false
    }

    fn forward(&self, _event: ForwardedEvent) -> BoxFuture<'static, Result<HookReply, HookError>> {
        Box::pin(std::future::ready(Err(HookError::Unavailable)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::SystemTime;

    #[tokio::test]
    async fn null_sink_drops_and_refuses() {
        let sink: Arc<dyn HookSink> = Arc::new(NullSink);
        assert!(!sink.wants_lifecycle());
        sink.deliver_with(|| unreachable!("no event is built for a sink that wants none"));
        sink.deliver(LifecycleEvent::RoomVacated {
            namespace: "/".into(),
            room: "r".into(),
            by: "s1".into(),
            at: SystemTime::now(),
        });
        let forwarded = ForwardedEvent {
            namespace: "/".into(),
            socket_id: "s".into(),
            event: "e".into(),
            args: vec![],
            binary: vec![],
            claims: None,
            at: SystemTime::now(),
        };
        assert_eq!(sink.forward(forwarded).await, Err(HookError::Unavailable));
    }

    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl HookSink for Counting {
        fn deliver(&self, _event: LifecycleEvent) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }

        fn forward(
            &self,
            _event: ForwardedEvent,
        ) -> BoxFuture<'static, Result<HookReply, HookError>> {
            Box::pin(std::future::ready(Err(HookError::Unavailable)))
        }
    }

    #[test]
    fn deliver_with_builds_and_delivers_for_a_sink_that_wants_lifecycle_events() {
        let counting = Arc::new(Counting::default());
        let sink: Arc<dyn HookSink> = counting.clone();
        sink.deliver_with(|| LifecycleEvent::RoomOccupied {
            namespace: "/".into(),
            room: "r".into(),
            by: "s1".into(),
            at: SystemTime::now(),
        });
        assert_eq!(counting.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
