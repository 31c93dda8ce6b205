//! Counters of the namespace rules (authentication, client events, room requests) and
//! of the webhook sink, rendered into `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use switchboard_auth::jwt::AuthError;
use switchboard_hooks::{HistogramSnapshot, HookMetrics};

use super::reply::Refusal;
use crate::http::prometheus::Exposition;

/// What became of a client event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventOutcome {
    /// Broadcast to a room.
    Relayed,
    /// Answered by the backend.
    Forwarded,
    /// The backend did not answer (or too many were waiting).
    ForwardFailed,
    /// No rule allows it.
    Denied,
    /// Over the socket's rate limit.
    RateLimited,
    /// Allowed, but its arguments were refused (no room, not in the room).
    Refused,
}

impl EventOutcome {
    const ALL: [EventOutcome; 6] = [
        EventOutcome::Relayed,
        EventOutcome::Forwarded,
        EventOutcome::ForwardFailed,
        EventOutcome::Denied,
        EventOutcome::RateLimited,
        EventOutcome::Refused,
    ];

    fn label(self) -> &'static str {
        match self {
            EventOutcome::Relayed => "relayed",
            EventOutcome::Forwarded => "forwarded",
            EventOutcome::ForwardFailed => "forward_failed",
            EventOutcome::Denied => "denied",
            EventOutcome::RateLimited => "rate_limited",
            EventOutcome::Refused => "refused",
        }
    }
}

type Labeled = Mutex<BTreeMap<(&'static str, &'static str), u64>>;

/// The rules' counters. Client events, counted on every event, are atomics; the rest
/// (connects, refreshes, room requests) sit behind a `std` mutex held for one map
/// update.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    events: [AtomicU64; EventOutcome::ALL.len()],
    /// `(outcome, code)`: accepted, refreshed, refresh_refused (code empty), refused.
    auth: Labeled,
    /// `(request, outcome)`.
    rooms: Labeled,
}

fn bump(map: &Labeled, key: (&'static str, &'static str)) {
    *map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(key)
        .or_default() += 1;
}

fn copy(map: &Labeled) -> Vec<((&'static str, &'static str), u64)> {
    let map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.iter().map(|(k, v)| (*k, *v)).collect()
}

impl Metrics {
    /// Counts a client event.
    pub(crate) fn event(&self, outcome: EventOutcome) {
        let index = EventOutcome::ALL.iter().position(|o| *o == outcome);
        if let Some(counter) = index.and_then(|i| self.events.get(i)) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Counts an authentication outcome without an error code.
    pub(crate) fn auth(&self, outcome: &'static str) {
        bump(&self.auth, (outcome, ""));
    }

    /// Counts a refused connection.
    pub(crate) fn auth_refused(&self, err: AuthError) {
        self.auth_refused_as(err.code());
    }

    /// Counts a connection refused with `code` after its token was accepted.
    pub(crate) fn auth_refused_as(&self, code: &'static str) {
        bump(&self.auth, ("refused", code));
    }

    /// Counts a join or leave request.
    pub(crate) fn room_request(&self, request: &'static str, outcome: Result<(), Refusal>) {
        let outcome = match outcome {
            Ok(()) => "ok",
            Err(refusal) => refusal.label(),
        };
        bump(&self.rooms, (request, outcome));
    }

    /// Writes the rules' families, and the sink's when there is a webhook.
    pub(crate) fn render(&self, out: &mut Exposition, hooks: Option<&HookMetrics>) {
        self.render_rules(out);
        if let Some(hooks) = hooks {
            render_hooks(out, hooks);
        }
    }

    fn render_rules(&self, out: &mut Exposition) {
        let name = "switchboard_client_events_total";
        out.family(
            name,
            "counter",
            "Client events handled by the namespace rules, by outcome.",
        );
        for (outcome, counter) in EventOutcome::ALL.iter().zip(&self.events) {
            out.sample(name, &[("outcome", outcome.label())], counter.load(Relaxed));
        }
        let name = "switchboard_auth_total";
        out.family(
            name,
            "counter",
            "Token checks at connect and refresh, by outcome (and error code when refused).",
        );
        for ((outcome, code), n) in copy(&self.auth) {
            match code {
                "" => out.sample(name, &[("outcome", outcome)], n),
                code => out.sample(name, &[("outcome", outcome), ("code", code)], n),
            }
        }
        let name = "switchboard_room_requests_total";
        out.family(
            name,
            "counter",
            "Join and leave requests from clients, by outcome.",
        );
        for ((request, outcome), n) in copy(&self.rooms) {
            out.sample(name, &[("request", request), ("outcome", outcome)], n);
        }
    }
}

/// The webhook sink's counters, gauges and latency histograms.
fn render_hooks(out: &mut Exposition, m: &HookMetrics) {
    let counters = [
        (
            "switchboard_hook_delivered_total",
            "Lifecycle events accepted by the backend.",
            m.delivered,
        ),
        (
            "switchboard_hook_failed_attempts_total",
            "Lifecycle delivery attempts that failed.",
            m.failed_attempts,
        ),
        (
            "switchboard_hook_retries_total",
            "Lifecycle delivery retries scheduled.",
            m.retried,
        ),
        (
            "switchboard_hook_rejected_total",
            "Lifecycle events the backend refused for good.",
            m.rejected,
        ),
        (
            "switchboard_hook_dead_lettered_total",
            "Lifecycle events put in the dead-letter store.",
            m.dead_lettered,
        ),
        (
            "switchboard_hook_dropped_total",
            "Lifecycle events lost to a full queue.",
            m.dropped_overflow,
        ),
        (
            "switchboard_hook_dead_letter_file_errors_total",
            "Dead letters that could not be written to the file.",
            m.dead_letter_file_errors,
        ),
    ];
    for (name, help, value) in counters {
        out.counter(name, help, value);
    }
    let name = "switchboard_hook_forwards_total";
    out.family(name, "counter", "Forwarded client events by outcome.");
    for (outcome, n) in [
        ("ok", m.forward_ok),
        ("timeout", m.forward_timeout),
        ("rejected", m.forward_rejected),
        ("invalid_reply", m.forward_invalid_reply),
        ("unavailable", m.forward_unavailable),
    ] {
        out.sample(name, &[("outcome", outcome)], n);
    }
    let gauges = [
        (
            "switchboard_hook_queue_depth",
            "Lifecycle events waiting for delivery.",
            m.queue_depth,
        ),
        (
            "switchboard_hook_queue_capacity",
            "Capacity of the lifecycle event queue.",
            m.queue_capacity,
        ),
        (
            "switchboard_hook_in_flight",
            "Lifecycle events being delivered now.",
            m.in_flight,
        ),
    ];
    for (name, help, value) in gauges {
        out.gauge(name, help, value);
    }
    histogram(
        out,
        "switchboard_hook_delivery_seconds",
        "From queueing a lifecycle event to the backend's 2xx.",
        &m.delivery_latency,
    );
    histogram(
        out,
        "switchboard_hook_forward_seconds",
        "From forwarding a client event to the backend's reply.",
        &m.forward_latency,
    );
}

fn histogram(out: &mut Exposition, name: &str, help: &str, h: &HistogramSnapshot) {
    out.family(name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for (bound, count) in h.bounds.iter().zip(&h.cumulative) {
        out.sample(&bucket, &[("le", &bound.to_string())], count);
    }
    out.sample(&bucket, &[("le", "+Inf")], h.count);
    out.sample(&format!("{name}_sum"), &[], h.sum_seconds);
    out.sample(&format!("{name}_count"), &[], h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rule_and_hook_families() {
        let metrics = Metrics::default();
        metrics.event(EventOutcome::Relayed);
        metrics.event(EventOutcome::Relayed);
        metrics.auth("accepted");
        metrics.auth_refused(AuthError::Expired);
        metrics.room_request("join", Err(Refusal::TooManyRooms));
        let hooks = HookMetrics {
            delivered: 3,
            forward_timeout: 1,
            queue_capacity: 10,
            delivery_latency: HistogramSnapshot {
                bounds: &[0.1, 1.0],
                cumulative: vec![1, 2],
                count: 2,
                sum_seconds: 0.5,
            },
            ..HookMetrics::default()
        };
        let mut out = Exposition::default();
        metrics.render(&mut out, Some(&hooks));
        let text = out.into_string();
        for line in [
            "switchboard_client_events_total{outcome=\"relayed\"} 2",
            "switchboard_client_events_total{outcome=\"denied\"} 0",
            "switchboard_auth_total{outcome=\"accepted\"} 1",
            "switchboard_auth_total{outcome=\"refused\",code=\"expired\"} 1",
            "switchboard_room_requests_total{request=\"join\",outcome=\"too_many_rooms\"} 1",
            "switchboard_hook_delivered_total 3",
            "switchboard_hook_forwards_total{outcome=\"timeout\"} 1",
            "switchboard_hook_queue_capacity 10",
            "switchboard_hook_delivery_seconds_bucket{le=\"0.1\"} 1",
            "switchboard_hook_delivery_seconds_bucket{le=\"+Inf\"} 2",
            "switchboard_hook_delivery_seconds_sum 0.5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
