//! The hook sink the rules deliver to: the webhook sink when `[hooks.webhook]` is set,
//! else one that drops lifecycle events and refuses forwarding; its metrics; and its
//! flush at shutdown.

use std::sync::Arc;

use switchboard_engine::shutdown::{self, ShutdownTrigger};
use switchboard_hooks::{HookMetrics, HookSink, NullSink, StartError, WebhookSink};

use crate::config::HooksConfig;

/// Where hook events go.
///
/// The sink has its own stop signal rather than the server's: it must keep delivering
/// while the drain closes sessions, so that their disconnect hooks go out, and flush
/// only once they are all queued ([`Hooks::flush`]).
#[derive(Debug, Clone)]
pub(crate) struct Hooks {
    pub(super) sink: Arc<dyn HookSink>,
    /// The same sink, typed, for its metrics and its flush.
    webhook: Option<WebhookSink>,
    /// Tells the sink to flush and stop (dropping the last clone does too).
    stop: Arc<ShutdownTrigger>,
}

impl Hooks {
    /// Starts the configured sink.
    pub(crate) fn start(config: &HooksConfig) -> Result<Self, StartError> {
        let Some(webhook) = &config.webhook else {
            return Ok(Hooks::none());
        };
        let (stop, signal) = shutdown::channel();
        let sink = WebhookSink::start(webhook.settings.clone(), async move {
            signal.wait().await;
        })?;
        Ok(Hooks {
            sink: Arc::new(sink.clone()),
            webhook: Some(sink),
            stop: Arc::new(stop),
        })
    }

    /// No hooks.
    pub(crate) fn none() -> Self {
        Hooks {
            sink: Arc::new(NullSink),
            webhook: None,
            stop: Arc::new(shutdown::channel().0),
        }
    }

    /// The webhook sink's metrics, if there is one.
    pub(crate) fn metrics(&self) -> Option<HookMetrics> {
        self.webhook.as_ref().map(WebhookSink::metrics)
    }

    /// Flushes the sink: events queued so far are delivered (or dead-lettered once the
    /// sink's `drain_timeout` is over), later ones are dead-lettered. Called by the
    /// drain once every session is gone, so their disconnect hooks are queued.
    pub(crate) async fn flush(&self) {
        self.stop.trigger();
        if let Some(webhook) = &self.webhook {
            webhook.finished().await;
        }
    }

    /// Ends a [`flush`](Self::flush) the drain's deadline cut short: what is left is
    /// dead-lettered now, and this waits for that at most `wait`. Whether it was done.
    pub(crate) async fn expire(&self, wait: std::time::Duration) -> bool {
        self.stop.trigger();
        let Some(webhook) = &self.webhook else {
            return true;
        };
        webhook.expire();
        tokio::time::timeout(wait, webhook.finished()).await.is_ok()
    }
}
