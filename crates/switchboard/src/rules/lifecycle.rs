//! A socket's life under the rules: before the CONNECT answer, its auto-joined rooms;
//! at connect, the lifecycle hook, a rate-limit bucket and an expiry deadline; at
//! disconnect, the hook with the classified reason, and the bucket and deadline
//! forgotten. Room occupied and vacated hooks too.

use std::sync::Arc;
use std::time::SystemTime;
use switchboard_engine::untrusted::Untrusted;

use switchboard_auth::jwt::Claims;
use switchboard_engine::diagnosis::{Category, Diagnosis};
use switchboard_engine::protocol::Sid;
use switchboard_engine::{DisconnectReason, Namespace, Socket};
use switchboard_hooks::LifecycleEvent;
use tokio::time::Instant;

use super::{Policy, auth, limit, rooms};

/// A socket was accepted (after the middleware).
pub(crate) fn connected(policy: &Policy, socket: &Arc<Socket>) {
    let claims = auth::claims_of(socket);
    tracing::debug!(sid = %socket.id(), namespace = %Untrusted(socket.namespace()), "socket connected");
    // The auto-joined rooms were filled in the middleware, before this hook: their
    // `room_occupied` may reach the backend first (hooks are not ordered).
    policy.sink.deliver_with(|| LifecycleEvent::Connected {
        namespace: socket.namespace().to_owned(),
        socket_id: socket.id().to_string(),
        transport: socket.transport().as_str().to_owned(),
        address: policy
            .client_ips
            .show(socket.handshake().address.ip())
            .map(|ip| ip.to_string()),
        claims: claims.as_ref().map(|c| c.to_value()),
        at: SystemTime::now(),
    });
    // Joined in the middleware already (`auto_join`); a socket that resumed a session
    // skipping the middleware gets them here (joining twice is a no-op).
    join_auto_rooms(policy, socket, claims.as_ref());
    // The connection's bucket, shared with its other sockets under this rule. Not for
    // a socket closed while the handlers ran: its disconnect handlers come next, and
    // would only let go of it again.
    if let Some(limiter) = &policy.limiter
        && socket.connected()
    {
        limiter.insert(socket.connection_id(), limit::owner(socket), Instant::now());
    }
    if let Some(claims) = &claims {
        // Counted here, the socket the engine registered (see `users`); one that
        // finds its user full (it raced another past the middleware, or resumed a
        // session without it) is closed.
        if !auth::admit_user(policy, socket, claims) {
            policy.metrics.auth_refused_as(auth::TOO_MANY_SOCKETS);
            socket.note("too many sockets for this user (auth.max_sockets_per_user)");
            socket.disconnect();
            return;
        }
        policy.arm_expiry(socket, claims);
    }
}

/// The connect middleware that joins the `auto_join` rooms, before the client is told
/// it is connected (see `rules::attach`).
pub(crate) fn auto_join(policy: &Policy, socket: &Arc<Socket>) {
    join_auto_rooms(policy, socket, auth::claims_of(socket).as_ref());
}

fn join_auto_rooms(policy: &Policy, socket: &Arc<Socket>, claims: Option<&Claims>) {
    let joined = rooms::auto_join(&policy.rules.rooms, claims);
    if !joined.is_empty() {
        let joined: Vec<&str> = joined.iter().map(String::as_str).collect();
        socket.join(&joined);
    }
}

/// A socket left its namespace.
pub(crate) fn disconnected(policy: &Policy, socket: &Arc<Socket>, reason: DisconnectReason) {
    // One read of the report for the log line and the hook: its diagnosis is worded
    // once, and not copied.
    let report = socket.report();
    log_disconnect(socket, reason, report.as_deref().map(|r| r.diagnosis.get()));
    if let Some(limiter) = &policy.limiter {
        limiter.remove(
            socket.connection_id(),
            limit::owner(socket),
            !socket.conn().is_closed(),
            Instant::now(),
        );
    }
    policy.cancel_expiry(socket);
    auth::release_user(policy, socket, auth::claims_of(socket).as_ref());
    policy.sink.deliver_with(|| LifecycleEvent::Disconnected {
        namespace: socket.namespace().to_owned(),
        socket_id: socket.id().to_string(),
        transport: socket.transport().as_str().to_owned(),
        reason: reason.as_str().to_owned(),
        diagnosis: report.map(|r| r.to_value()),
        at: SystemTime::now(),
    });
}

/// One structured line per disconnect, its level by category: what the server or the
/// client did on purpose at `debug`, what an operator may want to look into (a network
/// drop, a heartbeat, a slow reader, a refused token, a policy limit, a protocol
/// error, memory pressure) at `info`.
fn log_disconnect(socket: &Socket, reason: DisconnectReason, diagnosis: Option<&Diagnosis>) {
    let Some(d) = diagnosis else {
        tracing::debug!(sid = %socket.id(), namespace = %Untrusted(socket.namespace()), %reason, "socket disconnected");
        return;
    };
    // The evidence is joined inside each macro: only when the line is logged.
    match d.category {
        Category::Client | Category::Server => tracing::debug!(
            sid = %socket.id(), namespace = %Untrusted(socket.namespace()), %reason,
            category = %d.category, confidence = d.confidence,
            evidence = %d.evidence.join("; "), "socket disconnected"
        ),
        _ => tracing::info!(
            sid = %socket.id(), namespace = %Untrusted(socket.namespace()), %reason,
            category = %d.category, confidence = d.confidence,
            evidence = %d.evidence.join("; "), "socket disconnected"
        ),
    }
}

/// A room got its first member, `by`.
pub(crate) fn room_occupied(policy: &Policy, ns: &Namespace, room: &str, by: Sid) {
    policy.sink.deliver_with(|| LifecycleEvent::RoomOccupied {
        namespace: ns.name().to_owned(),
        room: room.to_owned(),
        by: by.to_string(),
        at: SystemTime::now(),
    });
}

/// A room lost its last member, `by`.
pub(crate) fn room_vacated(policy: &Policy, ns: &Namespace, room: &str, by: Sid) {
    policy.sink.deliver_with(|| LifecycleEvent::RoomVacated {
        namespace: ns.name().to_owned(),
        room: room.to_owned(),
        by: by.to_string(),
        at: SystemTime::now(),
    });
}
