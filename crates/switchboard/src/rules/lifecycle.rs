//! A socket's life under the rules: at connect, the lifecycle hook, auto-joined rooms,
//! a rate-limit bucket and an expiry deadline; at disconnect, the hook with the
//! classified reason, and the bucket and deadline forgotten. Room occupied and vacated
//! hooks too.

use std::sync::Arc;
use std::time::SystemTime;

use switchboard_engine::{DisconnectReason, Namespace, Socket};
use switchboard_hooks::LifecycleEvent;
use tokio::time::Instant;

use super::{Policy, auth, rooms};

/// A socket was accepted (after the middleware).
pub(crate) fn connected(policy: &Policy, socket: &Arc<Socket>) {
    let claims = auth::claims_of(socket);
    tracing::debug!(sid = %socket.id(), namespace = socket.namespace(), "socket connected");
    // The hook first, so the backend hears of the socket before the rooms it fills.
    policy.sink.deliver(LifecycleEvent::Connected {
        namespace: socket.namespace().to_owned(),
        socket_id: socket.id().to_string(),
        address: Some(socket.handshake().address.ip().to_string()),
        claims: claims.as_ref().map(|c| c.to_value()),
        at: SystemTime::now(),
    });
    let joined = rooms::auto_join(&policy.rules.rooms, claims.as_ref());
    if !joined.is_empty() {
        let joined: Vec<&str> = joined.iter().map(String::as_str).collect();
        socket.join(&joined);
    }
    if let Some(limiter) = &policy.limiter {
        limiter.insert(socket.id(), Instant::now());
    }
    if let Some(claims) = &claims {
        policy.arm_expiry(socket, claims);
    }
}

/// A socket left its namespace.
pub(crate) fn disconnected(policy: &Policy, socket: &Arc<Socket>, reason: DisconnectReason) {
    tracing::debug!(sid = %socket.id(), namespace = socket.namespace(), %reason, "socket disconnected");
    if let Some(limiter) = &policy.limiter {
        limiter.remove(socket.id());
    }
    policy.expiries.cancel(socket.id());
    policy.sink.deliver(LifecycleEvent::Disconnected {
        namespace: socket.namespace().to_owned(),
        socket_id: socket.id().to_string(),
        reason: reason.as_str().to_owned(),
        at: SystemTime::now(),
    });
}

/// A room got its first member.
pub(crate) fn room_occupied(policy: &Policy, ns: &Namespace, room: &str) {
    policy.sink.deliver(LifecycleEvent::RoomOccupied {
        namespace: ns.name().to_owned(),
        room: room.to_owned(),
        at: SystemTime::now(),
    });
}

/// A room lost its last member.
pub(crate) fn room_vacated(policy: &Policy, ns: &Namespace, room: &str) {
    policy.sink.deliver(LifecycleEvent::RoomVacated {
        namespace: ns.name().to_owned(),
        room: room.to_owned(),
        at: SystemTime::now(),
    });
}
