//! Forwarding a client event to the backend hook in its own task, then applying the
//! reply: its actions first, so that when the client gets its acknowledgement the
//! joins and leaves it implies have happened, then the acknowledgement.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;
use switchboard_engine::{Event, Socket};
use switchboard_hooks::{ForwardedEvent, HookAction, HookError, HookReply};
use switchboard_protocol::Sid;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::metrics::EventOutcome;
use super::reply::{self, Refusal};
use super::slots::{PerKey, Slot};
use super::{Policy, auth, rooms};
use crate::config::RoomRules;

/// Forwarded events waiting for the backend at once, process-wide. The sink bounds
/// requests in flight; this bounds the tasks (each holding its event's payload) that
/// wait for a slot, so a flood of events costs a fixed amount of memory and the excess
/// is told `backend busy` at once.
pub(crate) const MAX_PENDING_FORWARDS: usize = 4096;

/// Forwarded events of one connection waiting for the backend at once, all its
/// sockets together. Without it one client's flood takes every one of
/// [`MAX_PENDING_FORWARDS`] and the backend is busy for everyone else; with it, a
/// flood needs 64 connections to do that (see `engine.max_sessions_per_ip`). Counted
/// per Engine.IO connection, not per socket: a socket is the client's to replace
/// (leave the namespace and connect again, or connect to 64 namespaces), and each new
/// one would bring 64 more places while the old one's events still wait. A client
/// that awaits its acknowledgements never meets it.
pub(crate) const MAX_PENDING_FORWARDS_PER_CONNECTION: usize = 64;

/// Bytes of the forwarded events waiting for the backend, process-wide, each charged
/// its values and the request body made from them ([`forward_cost`]): the counts above
/// alone let events of up to `max_payload` with ten attachments of as much (about
/// 11 MB each) take 45 GB.
pub(crate) const MAX_PENDING_FORWARD_BYTES: usize = 128 << 20;

/// Bytes of one connection's forwarded events waiting at once. An event larger than
/// this is let through when the connection has nothing else waiting.
pub(crate) const MAX_PENDING_FORWARD_BYTES_PER_CONNECTION: usize = 16 << 20;

/// Forwarded events waiting for the backend, counted and in bytes: every
/// connection's together and each one's.
#[derive(Debug)]
pub(crate) struct PendingForwards {
    all: Arc<Semaphore>,
    all_bytes: Arc<Semaphore>,
    /// Events waiting per connection (Engine.IO session id).
    by_connection: Arc<PerKey>,
    /// Their bytes per connection.
    bytes_by_connection: Arc<PerKey>,
}

/// One forwarded event waiting: its places in every bound, given back when dropped.
struct Pending {
    _permit: OwnedSemaphorePermit,
    _bytes: OwnedSemaphorePermit,
    _slot: Slot,
    _byte_slot: Slot,
}

impl PendingForwards {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(PendingForwards {
            all: Arc::new(Semaphore::new(MAX_PENDING_FORWARDS)),
            all_bytes: Arc::new(Semaphore::new(MAX_PENDING_FORWARD_BYTES)),
            by_connection: Arc::default(),
            bytes_by_connection: Arc::default(),
        })
    }

    /// A place for one more event of the connection `connection`, charged `bytes`, if
    /// every bound has one.
    fn take(&self, connection: Sid, bytes: usize) -> Option<Pending> {
        let permit = self.all.clone().try_acquire_owned().ok()?;
        // An event charged more than the node's whole budget (`max_payload` has no
        // upper bound without a Redis adapter, and 11 payloads of 15 MiB with one) is
        // charged the whole budget: it goes only when nothing else waits on the node.
        let charged = u32::try_from(bytes.min(MAX_PENDING_FORWARD_BYTES)).unwrap_or(u32::MAX);
        let byte_permit = self
            .all_bytes
            .clone()
            .try_acquire_many_owned(charged)
            .ok()?;
        let slot = self
            .by_connection
            .take(connection, 1, MAX_PENDING_FORWARDS_PER_CONNECTION)?;
        let byte_slot = self.bytes_by_connection.take(
            connection,
            bytes,
            MAX_PENDING_FORWARD_BYTES_PER_CONNECTION,
        )?;
        Some(Pending {
            _permit: permit,
            _bytes: byte_permit,
            _slot: slot,
            _byte_slot: byte_slot,
        })
    }
}

/// What a forwarded event holds while it waits for its slot and its reply: its
/// arguments as values, and the body written from them, counted as written (a string
/// of control characters is six times as long there as it was read, and binary goes as
/// base64), plus room for the envelope. Twice the values, as charged before, was a
/// sixth of it for such strings.
fn forward_cost(
    payload: &switchboard_engine::Payload,
    claims: &Option<serde_json::Value>,
) -> usize {
    use switchboard_engine::protocol::json;
    let binary: usize = payload.binary.iter().map(|b| b.len().div_ceil(3) * 4).sum();
    payload
        .heap_bytes()
        .saturating_add(json::len(&payload.args))
        .saturating_add(binary)
        .saturating_add(json::len(claims))
        .saturating_add(ENVELOPE_BYTES)
}

/// The rest of the body, at most: its id, type and time, the namespace, the socket id
/// and the event's name (the engine's 256 bytes), and their keys.
const ENVELOPE_BYTES: usize = 1024;

/// Sends `event` to the backend and answers the client when the reply arrives.
pub(crate) fn forward(policy: &Arc<Policy>, mut event: Event) {
    let ack = event.take_ack();
    let claims = auth::claims_value(&event.socket);
    let bytes = forward_cost(&event.payload, &claims);
    let Some(permit) = policy
        .pending_forwards
        .take(event.socket.connection_id(), bytes)
    else {
        policy.metrics.event(EventOutcome::ForwardFailed);
        reply::answer(ack, Err(Refusal::Busy));
        return;
    };
    let socket = event.socket;
    let forwarded = ForwardedEvent {
        namespace: socket.namespace().to_owned(),
        socket_id: socket.id().to_string(),
        event: event.name,
        args: event.payload.args,
        binary: event.payload.binary,
        claims,
        at: SystemTime::now(),
    };
    let reply = policy.sink.forward(forwarded);
    let policy = policy.clone();
    tokio::spawn(async move {
        let _permit = permit;
        match reply.await {
            Ok(reply) => match apply(&policy.rules.rooms, &socket, reply) {
                Ok(args) => {
                    policy.metrics.event(EventOutcome::Forwarded);
                    if let Some(ack) = ack {
                        let _ = ack.send(args);
                    }
                }
                Err(refusal) => {
                    policy.metrics.event(EventOutcome::ForwardFailed);
                    reply::answer(ack, Err(refusal));
                }
            },
            Err(err) => {
                tracing::debug!(sid = %socket.id(), error = %err, "forwarded event failed");
                policy.metrics.event(EventOutcome::ForwardFailed);
                reply::answer(ack, Err(Refusal::Hook(err)));
            }
        }
    });
}

/// Applies the reply's actions and returns the acknowledgement arguments (none when
/// the backend gave no `ack`: the client's callback still runs). All or nothing: a
/// reply whose joins would put the socket in another socket's id room, or in more than
/// `rooms.max_per_socket` rooms, is refused before any action is applied. Checked and
/// applied under the socket's join gate: replies applied at once on several threads
/// (the client's events are forwarded concurrently) each count the rooms the others
/// joined. (The rules' room handlers only queue a hook, and an emit joins nothing.)
pub(crate) fn apply(
    rules: &RoomRules,
    socket: &Arc<Socket>,
    reply: HookReply,
) -> Result<Vec<Value>, Refusal> {
    let _gate = socket.lock_joins();
    check_joins(rules, socket, &reply.actions)?;
    for action in reply.actions {
        match action {
            // A socket that left meanwhile, or leaves while it joins, must not be put
            // back into rooms.
            HookAction::Join { rooms } => {
                // Its own id room it is in already (`check_joins` counts it so).
                let own = socket.id();
                let rooms: Vec<&str> = rooms
                    .iter()
                    .map(String::as_str)
                    .filter(|room| *room != own.as_str())
                    .collect();
                socket.join_while_connected(&rooms);
            }
            HookAction::Leave { rooms } => rooms.iter().for_each(|room| socket.leave(room)),
            HookAction::Emit { rooms, event, args } => emit(socket, rooms, &event, args),
        }
    }
    Ok(reply.ack.unwrap_or_default())
}

/// Whether the reply's joins, with its leaves in between, keep the socket within
/// `rooms.max_per_socket` and out of other sockets' id rooms (any name shaped like a
/// socket id, as for a client's own join: one on another node cannot be looked up
/// here). A backend's joins are trusted as to which rooms (no pattern applies), not as
/// to how many: one that passes a client's room names on would otherwise let the
/// client past the bound every other way of joining keeps.
fn check_joins(rules: &RoomRules, socket: &Socket, actions: &[HookAction]) -> Result<(), Refusal> {
    if !actions.iter().any(|a| matches!(a, HookAction::Join { .. })) {
        return Ok(());
    }
    let id = socket.id();
    let outcome = joins_within(socket.rooms(), id.as_str(), actions, rules.max_per_socket);
    if outcome == Err(Refusal::Hook(HookError::InvalidReply)) {
        tracing::warn!(
            sid = %id,
            "forwarded event: the reply joins another socket's id room; nothing applied"
        );
    }
    outcome
}

/// [`check_joins`] over the socket's rooms now (`current`, its own id room `own`
/// among them or not): what the actions, in order, would make them.
fn joins_within(
    current: Vec<String>,
    own: &str,
    actions: &[HookAction],
    max: usize,
) -> Result<(), Refusal> {
    let mut rooms: HashSet<String> = current.into_iter().filter(|r| r != own).collect();
    for action in actions {
        match action {
            HookAction::Join { rooms: joins } => {
                for room in joins.iter().filter(|room| room.as_str() != own) {
                    if rooms::names_a_socket(room) {
                        return Err(Refusal::Hook(HookError::InvalidReply));
                    }
                    // Only a room it is not in yet takes a place: a socket over the
                    // bound (a lowered setting) may still be joined to its own rooms.
                    if rooms.insert(room.clone()) && rooms.len() > max {
                        return Err(Refusal::TooManyRooms);
                    }
                }
            }
            HookAction::Leave { rooms: leaves } => leaves.iter().for_each(|room| {
                rooms.remove(room);
            }),
            HookAction::Emit { .. } => {}
        }
    }
    Ok(())
}

/// Emits to `rooms` of the sender's namespace (the sender included if it is in one),
/// or to the sender alone when `rooms` is empty.
fn emit(socket: &Arc<Socket>, rooms: Vec<String>, event: &str, args: Vec<Value>) {
    let mut rooms = rooms.into_iter();
    let Some(first) = rooms.next() else {
        let _ = socket.emit(event, args);
        return;
    };
    let target = rooms.fold(socket.ns().to(first), |target, room| target.to(room));
    target.emit(event, args);
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "AAAAAAAAAAAAAAAAAAAA";

    fn join(rooms: &[&str]) -> HookAction {
        HookAction::Join {
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn leave(rooms: &[&str]) -> HookAction {
        HookAction::Leave {
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        }
    }

    fn current(rooms: &[&str]) -> Vec<String> {
        rooms.iter().map(|r| (*r).to_owned()).collect()
    }

    /// A forwarded event is charged what its body will take, not twice its values:
    /// control characters are written six times as long as they are held, binary as
    /// base64, and the claims go in the body too.
    #[test]
    fn a_forward_is_charged_at_least_its_body() {
        let payload =
            switchboard_engine::Payload::new(vec![serde_json::json!("\u{1}".repeat(1000))]);
        let cost = forward_cost(&payload, &None);
        assert!(cost >= 6_000 + payload.heap_bytes(), "{cost}");
        let mut binary = switchboard_engine::Payload::new(vec![]);
        binary.binary = vec![bytes::Bytes::from(vec![0u8; 3_000])];
        assert!(
            forward_cost(&binary, &None) >= 4_000 + 3_000,
            "base64 and the bytes"
        );
        let claims = Some(serde_json::json!({ "sub": "x".repeat(5_000) }));
        assert!(forward_cost(&payload, &claims) >= cost + 5_000);
    }

    #[test]
    fn joins_are_counted_against_the_bound_with_leaves_in_between() {
        let now = current(&[OWN, "a"]);
        assert_eq!(joins_within(now.clone(), OWN, &[join(&["b"])], 2), Ok(()));
        assert_eq!(
            joins_within(now.clone(), OWN, &[join(&["b", "c"])], 2),
            Err(Refusal::TooManyRooms)
        );
        let swap = [leave(&["a"]), join(&["b", "c"])];
        assert_eq!(joins_within(now.clone(), OWN, &swap, 2), Ok(()));
        // Its own id room takes no place, and is no other socket's.
        assert_eq!(joins_within(now, OWN, &[join(&[OWN, "b"])], 2), Ok(()));
    }

    /// A socket over the bound (the setting was lowered) may be joined to rooms it is
    /// in, not to new ones.
    #[test]
    fn a_socket_over_the_bound_keeps_its_rooms() {
        let now = current(&[OWN, "a", "b", "c"]);
        assert_eq!(
            joins_within(now.clone(), OWN, &[join(&["a", "c"])], 2),
            Ok(())
        );
        assert_eq!(
            joins_within(now, OWN, &[join(&["d"])], 2),
            Err(Refusal::TooManyRooms)
        );
    }

    #[test]
    fn a_name_shaped_like_a_socket_id_is_refused() {
        let other = "BBBBBBBBBBBBBBBBBBBB";
        assert_eq!(
            joins_within(current(&[OWN]), OWN, &[join(&[other])], 100),
            Err(Refusal::Hook(HookError::InvalidReply))
        );
    }
}
