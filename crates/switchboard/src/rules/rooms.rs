//! Rooms: which rooms a client may join or leave (pure decisions over the rules and
//! the socket's claims), the join and leave events, and the rooms joined at connect.

use std::sync::Arc;

use serde_json::Value;
use serde_json::json;
use switchboard_auth::jwt::Claims;
use switchboard_auth::policy::RoomPattern;
use switchboard_engine::protocol::engineio::TransportKind;
use switchboard_engine::untrusted::Untrusted;
use switchboard_engine::{ConnectError, Event, Socket};
use switchboard_protocol::Sid;

use super::reply::{self, Refusal};
use super::{Policy, auth};
use crate::config::{AllowedRoom, RoomRules};

/// Longest room name a client may ask for: room names live in the room index as long
/// as the room has members, so a client must not be able to make them large. Real
/// names (`chat:42`, `user:8f3a…`) are far shorter. A backend's reply is held to the
/// same length.
pub(crate) const MAX_ROOM_LEN: usize = switchboard_hooks::reply::MAX_ROOM_LEN;

/// Whether `socket` (in `current` rooms besides its own) may join `room`.
pub(crate) fn check_join(
    rules: &RoomRules,
    room: &str,
    claims: Option<&Claims>,
    current: usize,
) -> Result<(), Refusal> {
    check_leave(rules, room, claims)?;
    if current >= rules.max_per_socket {
        return Err(Refusal::TooManyRooms);
    }
    Ok(())
}

/// Whether a socket may leave `room`: only rooms it could join, so rooms the server
/// put it in (`user:{sub}`) stay joined.
pub(crate) fn check_leave(
    rules: &RoomRules,
    room: &str,
    claims: Option<&Claims>,
) -> Result<(), Refusal> {
    if room.len() > MAX_ROOM_LEN || names_a_socket(room) {
        return Err(Refusal::RoomNotAllowed);
    }
    let by_pattern = match rules.allow.as_slice() {
        [] => rules.allow_from_claim.is_some(),
        allow => allow.iter().any(|a| allows(a, room, claims)),
    };
    let by_claim = match &rules.allow_from_claim {
        Some(claim) => claim_lists(claims, claim, room),
        None => true,
    };
    match by_pattern && by_claim {
        true => Ok(()),
        false => Err(Refusal::RoomNotAllowed),
    }
}

/// Every socket is alone in the room named by its id, and broadcasts to that room
/// reach it: a client must never join another socket's room.
pub(crate) fn names_a_socket(room: &str) -> bool {
    room.parse::<Sid>().is_ok()
}

fn allows(allowed: &AllowedRoom, room: &str, claims: Option<&Claims>) -> bool {
    match allowed {
        AllowedRoom::Pattern(pattern) => pattern.matches(room),
        AllowedRoom::Template(template) => claims
            .and_then(|c| template.render_pattern(c))
            .is_some_and(|pattern| pattern.matches(room)),
    }
}

/// Whether the claim `name` lists `room`: a list of room names or patterns (a single
/// string counts as a list of one).
fn claim_lists(claims: Option<&Claims>, name: &str, room: &str) -> bool {
    let listed = |entry: &Value| {
        entry.as_str().is_some_and(|text| {
            text == room || RoomPattern::parse(text).is_ok_and(|p| p.matches(room))
        })
    };
    match claims.and_then(|c| c.get(name)) {
        Some(Value::Array(entries)) => entries.iter().any(listed),
        Some(one @ Value::String(_)) => listed(one),
        _ => false,
    }
}

/// What a token refresh does to a socket in `current` rooms (its own id room `own`
/// aside): the rooms to leave and to join. Rooms follow the claims: an `auto_join`
/// room the new claims render no more, or a room the old claims let the client join
/// and the new ones do not, is left; the new claims' `auto_join` rooms are joined.
/// Rooms a backend or the API put the socket in (no claim ever let the client join
/// them) stay.
pub(crate) fn after_refresh(
    rules: &RoomRules,
    current: &[String],
    own: &str,
    old: Option<&Claims>,
    new: &Claims,
) -> (Vec<String>, Vec<String>) {
    let old_auto = auto_join(rules, old);
    let new_auto = auto_join(rules, Some(new));
    let leave = current
        .iter()
        .filter(|room| room.as_str() != own && !new_auto.contains(room))
        .filter(|room| {
            let had = old_auto.contains(room) || check_leave(rules, room, old).is_ok();
            had && check_leave(rules, room, Some(new)).is_err()
        })
        .cloned()
        .collect();
    let join = new_auto
        .into_iter()
        .filter(|room| !current.contains(room))
        .collect();
    (leave, join)
}

/// The rooms of `rules.auto_join` rendered from `claims`; templates naming a claim the
/// token lacks are skipped.
pub(crate) fn auto_join(rules: &RoomRules, claims: Option<&Claims>) -> Vec<String> {
    let empty = Claims::default();
    let claims = claims.unwrap_or(&empty);
    rules
        .auto_join
        .iter()
        .filter_map(|template| template.render(claims))
        .filter(|room| room.len() <= MAX_ROOM_LEN && !names_a_socket(room))
        .collect()
}

/// The room named by an event's first argument.
pub(crate) fn room_arg(args: &[Value]) -> Result<&str, Refusal> {
    match args.first() {
        Some(Value::String(room)) if !room.is_empty() => Ok(room),
        _ => Err(Refusal::RoomRequired),
    }
}

/// The join event: `join(room, ack)`.
pub(crate) fn join(policy: &Policy, mut event: Event) {
    let ack = event.take_ack();
    let outcome =
        room_arg(&event.payload.args).and_then(|room| join_room(policy, &event.socket, room));
    policy.metrics.room_request("join", outcome);
    reply::answer(ack, outcome);
}

fn join_room(policy: &Policy, socket: &Arc<Socket>, room: &str) -> Result<(), Refusal> {
    let adapter = socket.ns().adapter();
    // Counted and joined under the socket's join gate, so a backend's reply or
    // another node's join at the same moment cannot pass the bound with this one.
    // (The rules' room handlers only queue a hook: they join nothing.)
    let _gate = socket.lock_joins();
    if adapter.is_in(socket.id(), room) {
        return Ok(());
    }
    let claims = auth::claims_of(socket);
    let joined = adapter.socket_room_count(socket.id());
    check_join(&policy.rules.rooms, room, claims.as_ref(), joined)?;
    // A close from another thread meanwhile (the API, another node's
    // `disconnectSockets`, a slow-consumer cut) must not leave its id in the room.
    socket.join_while_connected(&[room]);
    Ok(())
}

/// The leave event: `leave(room, ack)`. Leaving a room one is not in succeeds.
pub(crate) fn leave(policy: &Policy, mut event: Event) {
    let ack = event.take_ack();
    let outcome = room_arg(&event.payload.args).and_then(|room| {
        let claims = auth::claims_of(&event.socket);
        check_leave(&policy.rules.rooms, room, claims.as_ref())?;
        event.socket.leave(room);
        Ok(())
    });
    policy.metrics.room_request("leave", outcome);
    reply::answer(ack, outcome);
}

/// The connect middleware of a Server-Sent Events listener (see `rules::attach`):
/// refuses it when the namespace does not serve SSE, else joins the rooms its request
/// names (`?room=a&room=b`), each checked as a join event would be. All or nothing: one
/// room refused refuses the connection (the client asked for a stream of those rooms,
/// and a stream silently missing one would look like a quiet room). Other transports
/// pass through.
pub(crate) fn sse_listen(policy: &Policy, socket: &Arc<Socket>) -> Result<(), ConnectError> {
    if socket.transport() != TransportKind::Sse {
        return Ok(());
    }
    if !policy.sse {
        return Err(
            ConnectError::new("Server-Sent Events are off for this namespace")
                .with_data(json!({ "code": "sse_disabled" })),
        );
    }
    let requested: Vec<&str> = socket
        .handshake()
        .query_params
        .iter()
        .filter(|(name, _)| name == "room")
        .map(|(_, room)| room.as_str())
        .collect();
    if requested.is_empty() {
        return Ok(());
    }
    let claims = auth::claims_of(socket);
    // As for a join event (the socket is in its middleware: only another node's
    // `socketsJoin` can join it meanwhile).
    let _gate = socket.lock_joins();
    let mut joined: Vec<String> = socket
        .ns()
        .adapter()
        .socket_rooms(socket.id())
        .iter()
        .map(|r| r.to_string())
        .collect();
    let mut new = Vec::new();
    for room in requested {
        if room.is_empty() || joined.iter().any(|r| r == room) {
            continue;
        }
        if let Err(refusal) = check_join(&policy.rules.rooms, room, claims.as_ref(), joined.len()) {
            let code = match refusal {
                Refusal::TooManyRooms => "too_many_rooms",
                _ => "room_not_allowed",
            };
            policy.metrics.room_request("join", Err(refusal));
            // Scrubbed before `Untrusted` cuts it: an address cut first no longer
            // looks like one, and the report's scrub let its start through.
            let room = switchboard_engine::scrub::text(room);
            return Err(
                ConnectError::new(format!("{refusal}: {}", Untrusted(&room)))
                    .with_data(json!({ "code": code })),
            );
        }
        joined.push(room.to_owned());
        new.push(room);
    }
    for _ in &new {
        policy.metrics.room_request("join", Ok(()));
    }
    socket.join(&new);
    Ok(())
}
