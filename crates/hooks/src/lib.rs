//! Switchboard's backend hooks: lifecycle events (connect, disconnect, room occupied and
//! vacated) and forwarded client events go to the application's backend, so the common
//! cases need no server code. This crate does not know the engine: it sees only the
//! plain event types below, and the binary wires the two together.
//!
//! # Layout
//!
//! - [`sink`]: the [`HookSink`] seam the engine calls, its errors, and [`NullSink`];
//! - [`event`]: what is handed to a sink ([`LifecycleEvent`], [`ForwardedEvent`]);
//! - [`reply`]: what a backend answers to a forwarded event ([`HookReply`]);
//! - [`settings`]: typed [`WebhookSettings`] and their loader from TOML;
//! - [`webhook`]: [`WebhookSink`] — signed HTTP webhooks with a bounded queue, retries,
//!   backoff and a dead-letter store;
//! - [`signature`]: how a body is signed, and how a receiver checks it;
//! - [`metrics`]: counters and latency histograms for `/metrics`.
//!
//! The JSON bodies, headers and the signature scheme are described in the crate's
//! `README.md`, which backends implementing a receiver should read.

pub mod event;
pub mod metrics;
pub mod reply;
pub mod settings;
pub mod signature;
pub mod sink;
pub mod webhook;

pub use event::{ForwardedEvent, LifecycleEvent};
pub use metrics::{HistogramSnapshot, HookMetrics};
pub use reply::{HookAction, HookReply};
pub use settings::{OverflowPolicy, Secret, SettingError, WebhookSettings};
pub use sink::{BoxFuture, HookError, HookSink, NullSink};
pub use webhook::{DeadLetter, DeadLetterReason, StartError, WebhookSink};
