//! Client events: the rate limit first, then the events the rules handle themselves
//! (token refresh, join, leave), then the first event rule whose name matches — relay,
//! forward or deny. Everything here runs on the connection's read path and returns at
//! once; forwarding and refreshing continue in their own tasks.

use std::sync::Arc;

use switchboard_engine::sio::DurableEmitError;
use switchboard_engine::untrusted::Untrusted;
use switchboard_engine::{DisconnectReason, Event};
use tokio::time::Instant;

use super::limit::Verdict;
use super::metrics::EventOutcome;
use super::reply::{self, Refusal};
use super::{Policy, auth, forward, rooms};
use crate::config::{EventAction, Events, NamespaceRules};

/// What the rules do with an event called `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// `auth.refresh_event`.
    Refresh,
    /// `rooms.join_event`.
    Join,
    /// `rooms.leave_event`.
    Leave,
    /// The first matching event rule's action; `Deny` when none matches.
    Action(EventAction),
}

/// Where `name` goes under `rules`.
pub(crate) fn route(rules: &NamespaceRules, name: &str) -> Route {
    let refresh = rules.auth.as_ref().and_then(|a| a.refresh_event.as_deref());
    if refresh == Some(name) {
        return Route::Refresh;
    }
    if rules.rooms.join_event.as_deref() == Some(name) {
        return Route::Join;
    }
    if rules.rooms.leave_event.as_deref() == Some(name) {
        return Route::Leave;
    }
    let Events::Rules(list) = &rules.events else {
        return Route::Action(EventAction::Deny);
    };
    let action = list
        .iter()
        .find(|rule| rule.pattern.matches(name))
        .map_or(EventAction::Deny, |rule| rule.action);
    Route::Action(action)
}

/// Handles one client event.
pub(crate) fn dispatch(policy: &Arc<Policy>, mut event: Event) {
    if !admit(policy, &mut event) {
        return;
    }
    match route(&policy.rules, &event.name) {
        Route::Refresh => auth::refresh(policy, event),
        Route::Join => rooms::join(policy, event),
        Route::Leave => rooms::leave(policy, event),
        Route::Action(EventAction::Relay { include_sender }) => {
            relay(policy, event, include_sender)
        }
        Route::Action(EventAction::Forward) => forward::forward(policy, event),
        Route::Action(EventAction::Deny) => deny(policy, event),
    }
}

/// Charges the event to the socket's bucket; refuses it (and disconnects a socket
/// that keeps going) when over the limit.
fn admit(policy: &Policy, event: &mut Event) -> bool {
    let Some(limiter) = &policy.limiter else {
        return true;
    };
    let verdict = limiter.check(event.socket.connection_id(), Instant::now());
    if verdict == Verdict::Allowed {
        return true;
    }
    policy.metrics.event(EventOutcome::RateLimited);
    reply::answer(event.take_ack(), Err(Refusal::RateLimited));
    if let Some(limit) = policy.rules.rate_limit {
        // One step per streak: the same mark twice in a row is kept once.
        event.socket.mark(&format!(
            "events refused by the rate limit ({} events/s, burst {})",
            limit.events_per_second, limit.burst
        ));
    }
    if verdict == Verdict::Disconnect {
        tracing::debug!(sid = %event.socket.id(), namespace = %Untrusted(event.socket.namespace()), "rate limit exceeded, disconnecting");
        if let Some(limit) = policy.rules.rate_limit {
            event.socket.note(format!(
                "{} events refused in a row (limit {} events/s, burst {})",
                limit.disconnect_after, limit.events_per_second, limit.burst
            ));
        }
        event.socket.close_connection(DisconnectReason::RateLimited);
    }
    false
}

/// Broadcasts the event, unchanged, to the room its first argument names; the sender
/// must be in that room.
///
/// A sender that asked for an acknowledgement is answered once the event is as safe as
/// the adapter makes it ([`BroadcastOperator::emit_durable`]): with `redis-streams`,
/// once Redis holds it, so `{ok: true}` is never said of an event the cluster dropped
/// (its write queue full while Redis is away); that is `{error: "cluster unavailable"}`.
/// Without an acknowledgement the event is emitted and nothing waits.
///
/// [`BroadcastOperator::emit_durable`]: switchboard_engine::sio::BroadcastOperator::emit_durable
fn relay(policy: &Policy, mut event: Event, include_sender: bool) {
    let ack = event.take_ack();
    let target = rooms::room_arg(&event.payload.args)
        .map(str::to_owned)
        .and_then(|room| {
            let socket = &event.socket;
            if !socket.ns().adapter().is_in(socket.id(), &room) {
                return Err(Refusal::NotInRoom);
            }
            Ok(match include_sender {
                true => socket.ns().to(room),
                false => socket.to(room),
            })
        });
    let target = match target {
        Ok(target) => target,
        Err(refusal) => {
            policy.metrics.event(EventOutcome::Refused);
            reply::answer(ack, Err(refusal));
            return;
        }
    };
    policy.metrics.event(EventOutcome::Relayed);
    let payload = std::mem::take(&mut event.payload);
    let Some(ack) = ack else {
        target.emit(&event.name, payload);
        return;
    };
    target.emit_durable_then(&event.name, payload, move |result| {
        reply::answer(Some(ack), relayed(result));
    });
}

/// A relay's answer from its durable emit.
fn relayed(result: Result<usize, DurableEmitError>) -> Result<(), Refusal> {
    result.map(drop).map_err(|err| {
        tracing::debug!(error = %err, "relayed event not taken by the cluster");
        Refusal::ClusterUnavailable
    })
}

/// Refuses the event: an error acknowledgement if one was asked for, else nothing.
fn deny(policy: &Policy, mut event: Event) {
    tracing::debug!(sid = %event.socket.id(), namespace = %Untrusted(event.socket.namespace()), event = %Untrusted(&event.name), "event not allowed");
    policy.metrics.event(EventOutcome::Denied);
    reply::answer(event.take_ack(), Err(Refusal::EventNotAllowed));
}
