//! Acknowledgements the rules send: `{"ok": true}`, or `{"error": reason}` with the
//! reason from one enum, so the strings clients see are stable and documented
//! (docs/rules.md).

use serde_json::{Value, json};
use switchboard_auth::jwt::AuthError;
use switchboard_engine::sio::event::AckSender;
use switchboard_hooks::HookError;

/// Why the rules refused a client's event. The `Display` text is the wire `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// No rule allows this event (or a rule denies it).
    #[error("event not allowed")]
    EventNotAllowed,
    /// The socket is over its rate limit.
    #[error("rate limited")]
    RateLimited,
    /// The first argument must name a room.
    #[error("room required")]
    RoomRequired,
    /// The room is not allowed by the patterns, the claim, or it names a socket.
    #[error("room not allowed")]
    RoomNotAllowed,
    /// Joining would exceed `rooms.max_per_socket`.
    #[error("too many rooms")]
    TooManyRooms,
    /// A relayed event names a room the sender is not in.
    #[error("not in room")]
    NotInRoom,
    /// A refresh event without a token string.
    #[error("token required")]
    TokenRequired,
    /// A refresh event while the socket's previous one is still being verified.
    #[error("refresh in progress")]
    RefreshInProgress,
    /// A refreshed token is for another subject than the socket's.
    #[error("token subject mismatch")]
    SubjectMismatch,
    /// The socket left while its refresh was verified (no client hears this).
    #[error("disconnected")]
    Disconnected,
    /// A refreshed token did not verify.
    #[error("{}", .0.client_message())]
    Auth(AuthError),
    /// Too many forwarded events are waiting for the backend.
    #[error("backend busy")]
    Busy,
    /// A relayed event the cluster could not take (Redis unreachable and the node's
    /// stream write queue full): it reached no one.
    #[error("cluster unavailable")]
    ClusterUnavailable,
    /// The backend did not answer a forwarded event.
    #[error("{}", hook_message(*.0))]
    Hook(HookError),
}

/// What a client is told about a failed forward (no status codes or URLs).
fn hook_message(err: HookError) -> &'static str {
    match err {
        HookError::Timeout => "backend timeout",
        HookError::Rejected { .. } => "backend rejected the event",
        HookError::Unavailable => "backend unavailable",
        HookError::InvalidReply => "backend reply invalid",
    }
}

impl Refusal {
    /// A stable label for metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::EventNotAllowed => "event_not_allowed",
            Refusal::RateLimited => "rate_limited",
            Refusal::RoomRequired => "room_required",
            Refusal::RoomNotAllowed => "room_not_allowed",
            Refusal::TooManyRooms => "too_many_rooms",
            Refusal::NotInRoom => "not_in_room",
            Refusal::TokenRequired => "token_required",
            Refusal::SubjectMismatch => "subject_mismatch",
            Refusal::Disconnected => "disconnected",
            Refusal::RefreshInProgress => "refresh_in_progress",
            Refusal::Auth(_) => "auth",
            Refusal::Busy => "backend_busy",
            Refusal::ClusterUnavailable => "cluster_unavailable",
            Refusal::Hook(HookError::Timeout) => "backend_timeout",
            Refusal::Hook(HookError::Rejected { .. }) => "backend_rejected",
            Refusal::Hook(HookError::Unavailable) => "backend_unavailable",
            Refusal::Hook(HookError::InvalidReply) => "backend_invalid_reply",
        }
    }

    /// The acknowledgement argument.
    pub(crate) fn to_value(self) -> Value {
        json!({ "error": self.to_string() })
    }
}

/// The acknowledgement argument of a success.
pub(crate) fn ok() -> Value {
    json!({ "ok": true })
}

/// Answers `ack`, if the client asked for one, with `Ok` → `{"ok": true}` or the
/// refusal. A socket that is gone cannot be answered, which is fine.
pub(crate) fn answer(ack: Option<AckSender>, outcome: Result<(), Refusal>) {
    if let Some(ack) = ack {
        let arg = match outcome {
            Ok(()) => ok(),
            Err(refusal) => refusal.to_value(),
        };
        let _ = ack.send(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_documented() {
        assert_eq!(
            Refusal::EventNotAllowed.to_value(),
            json!({"error": "event not allowed"})
        );
        assert_eq!(Refusal::RateLimited.to_string(), "rate limited");
        assert_eq!(
            Refusal::Auth(AuthError::Expired).to_string(),
            "token expired"
        );
        assert_eq!(
            Refusal::Hook(HookError::Rejected { status: 500 }).to_string(),
            "backend rejected the event"
        );
        assert_eq!(ok(), json!({"ok": true}));
    }
}
