//! The backend's answer to a forwarded event: acknowledgement arguments and actions.
//!
//! The reply body is JSON, every field optional:
//!
//! ```json
//! {
//!   "ack": ["ok", {"id": 7}],
//!   "actions": [
//!     {"type": "join",  "rooms": ["chat:42"]},
//!     {"type": "leave", "rooms": ["lobby"]},
//!     {"type": "emit",  "rooms": ["chat:42"], "event": "joined", "args": [{"user": "u1"}]}
//!   ]
//! }
//! ```
//!
//! An empty body (e.g. `204 No Content`) is an empty reply. Unknown top-level fields
//! are ignored so backends can add their own; an unknown action `type`, or an unknown
//! field inside an action, makes the whole reply invalid, because silently skipping
//! (part of) an action the backend asked for could send a message to the wrong
//! audience.
//!
//! A backend's actions are trusted (no room policy applies to them), but a reply is
//! bounded in shape: at most [`MAX_ACTIONS`] actions, [`MAX_ROOMS_PER_ACTION`] rooms
//! per action and joins of room names of [`MAX_ROOM_LEN`] bytes (a leave or an emit
//! keeps nothing, and may name a room the HTTP API made); past any, the whole reply is
//! invalid and nothing of it is applied. A backend that passes a client's room names
//! on (`{"type": "join", "rooms": <what the client sent>}`) would otherwise pass the
//! client past what the server bounds for clients (the binary also applies
//! `rooms.max_per_socket` to joins, which needs the socket).

use serde::Deserialize;
use serde_json::Value;

/// Most actions one reply may carry: a reply does one client's event's work.
pub const MAX_ACTIONS: usize = 100;
/// Most rooms one action may name.
pub const MAX_ROOMS_PER_ACTION: usize = 1000;
/// Longest room name a join may name, as long as a client may ask for: room names
/// live in the room index as long as the room has members.
pub const MAX_ROOM_LEN: usize = 256;

/// What the backend asked for in its reply to a forwarded event.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct HookReply {
    /// Arguments of the acknowledgement sent to the client, if the client asked for
    /// one. `None` when the reply has no `ack` (or `"ack": null`).
    pub ack: Option<Vec<Value>>,
    /// Actions to apply, in order.
    pub actions: Vec<HookAction>,
}

/// One action in a [`HookReply`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum HookAction {
    /// Make the sending socket join these rooms.
    Join {
        /// The rooms.
        rooms: Vec<String>,
    },
    /// Make the sending socket leave these rooms.
    Leave {
        /// The rooms.
        rooms: Vec<String>,
    },
    /// Emit an event.
    Emit {
        /// The target rooms; empty (or absent): the sender only.
        #[serde(default)]
        rooms: Vec<String>,
        /// The event name.
        event: String,
        /// The event's arguments (JSON only; see the README).
        #[serde(default)]
        args: Vec<Value>,
    },
}

impl HookReply {
    /// Reads a reply body. Empty or whitespace-only bodies are an empty reply.
    ///
    /// The reply and each action must be JSON objects: serde would also read a struct
    /// or an internally tagged enum from an array, field by field in order
    /// (`[["ok"], [["join", ["a"]]]]`), a form nobody documents or expects.
    pub fn from_body(body: &[u8]) -> Result<Self, serde_json::Error> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(HookReply::default());
        }
        let value: Value = serde_json::from_slice(body)?;
        let objects = value.is_object()
            && match value.get("actions") {
                Some(Value::Array(actions)) => actions.iter().all(Value::is_object),
                _ => true,
            };
        if !objects {
            return Err(serde::de::Error::custom(
                "a reply and each of its actions must be a JSON object",
            ));
        }
        let reply = HookReply::deserialize(value)?;
        reply.check_shape().map_err(serde::de::Error::custom)?;
        Ok(reply)
    }

    /// Whether the reply is within [`MAX_ACTIONS`], [`MAX_ROOMS_PER_ACTION`] and, for
    /// joins, [`MAX_ROOM_LEN`]; the error says which bound it passed.
    fn check_shape(&self) -> Result<(), String> {
        if self.actions.len() > MAX_ACTIONS {
            return Err(format!(
                "{} actions, at most {MAX_ACTIONS} allowed",
                self.actions.len()
            ));
        }
        for action in &self.actions {
            let rooms = action.rooms();
            if rooms.len() > MAX_ROOMS_PER_ACTION {
                return Err(format!(
                    "an action names {} rooms, at most {MAX_ROOMS_PER_ACTION} allowed",
                    rooms.len()
                ));
            }
            let joins = matches!(action, HookAction::Join { .. });
            if let Some(room) = rooms.iter().find(|room| joins && room.len() > MAX_ROOM_LEN) {
                return Err(format!(
                    "a room name of {} bytes, at most {MAX_ROOM_LEN} allowed",
                    room.len()
                ));
            }
        }
        Ok(())
    }
}

impl HookAction {
    /// The rooms the action names.
    pub fn rooms(&self) -> &[String] {
        match self {
            HookAction::Join { rooms } | HookAction::Leave { rooms } => rooms,
            HookAction::Emit { rooms, .. } => rooms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_ack_and_every_action() -> Result<(), serde_json::Error> {
        let body = json!({
            "ack": ["ok", 1],
            "actions": [
                {"type": "join", "rooms": ["a", "b"]},
                {"type": "leave", "rooms": ["c"]},
                {"type": "emit", "rooms": ["a"], "event": "hi", "args": [{"x": 1}]},
                {"type": "emit", "event": "to-sender"}
            ],
            "extra": "ignored"
        });
        let reply = HookReply::from_body(body.to_string().as_bytes())?;
        assert_eq!(reply.ack, Some(vec![json!("ok"), json!(1)]));
        assert_eq!(
            reply.actions,
            vec![
                HookAction::Join {
                    rooms: vec!["a".into(), "b".into()]
                },
                HookAction::Leave {
                    rooms: vec!["c".into()]
                },
                HookAction::Emit {
                    rooms: vec!["a".into()],
                    event: "hi".into(),
                    args: vec![json!({"x": 1})]
                },
                HookAction::Emit {
                    rooms: vec![],
                    event: "to-sender".into(),
                    args: vec![]
                },
            ]
        );
        Ok(())
    }

    #[test]
    fn empty_bodies_and_objects_are_empty_replies() -> Result<(), serde_json::Error> {
        assert_eq!(HookReply::from_body(b"")?, HookReply::default());
        assert_eq!(HookReply::from_body(b" \n")?, HookReply::default());
        assert_eq!(HookReply::from_body(b"{}")?, HookReply::default());
        assert_eq!(HookReply::from_body(br#"{"ack":null}"#)?.ack, None);
        Ok(())
    }

    /// Found by fuzzing (`fuzz/`, target `hook_reply`): serde reads a struct, and an
    /// internally tagged enum, from a JSON array too, by position.
    #[test]
    fn arrays_are_not_replies_or_actions() {
        for body in [
            "[]",
            "[null, []]",
            r#"[["ok"], [{"type": "join", "rooms": ["a"]}]]"#,
            r#"{"actions": [["join", ["a"]]]}"#,
            r#"{"actions": [["emit", ["a"], "ev", [1]]]}"#,
        ] {
            assert!(HookReply::from_body(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn replies_past_their_bounds_are_invalid() {
        let actions = |n: usize| {
            let action = json!({"type": "leave", "rooms": ["a"]});
            json!({ "actions": vec![action; n] }).to_string()
        };
        assert!(HookReply::from_body(actions(MAX_ACTIONS).as_bytes()).is_ok());
        let err = HookReply::from_body(actions(MAX_ACTIONS + 1).as_bytes());
        assert!(err.is_err_and(|e| e.to_string().contains("101 actions")));

        let rooms = |kind: &str, n: usize, len: usize| {
            let rooms = vec!["r".repeat(len); n];
            json!({"actions": [{"type": kind, "event": "e", "rooms": rooms}]}).to_string()
        };
        let emit = rooms("emit", MAX_ROOMS_PER_ACTION, MAX_ROOM_LEN + 100);
        assert!(HookReply::from_body(emit.as_bytes()).is_ok());
        let emit = rooms("emit", MAX_ROOMS_PER_ACTION + 1, 1);
        assert!(HookReply::from_body(emit.as_bytes()).is_err());
        let join = |n, len| rooms("join", n, len).replace(r#""event":"e","#, "");
        assert!(HookReply::from_body(join(1, MAX_ROOM_LEN).as_bytes()).is_ok());
        let err = HookReply::from_body(join(1, MAX_ROOM_LEN + 1).as_bytes());
        assert!(err.is_err_and(|e| e.to_string().contains("257 bytes")));
    }

    #[test]
    fn rejects_garbage_and_unknown_actions() {
        assert!(HookReply::from_body(b"<html>").is_err());
        assert!(HookReply::from_body(br#"{"ack": 3}"#).is_err());
        assert!(HookReply::from_body(br#"{"actions":[{"type":"kick"}]}"#).is_err());
        assert!(HookReply::from_body(br#"{"actions":[{"type":"join"}]}"#).is_err());
        assert!(
            HookReply::from_body(br#"{"actions":[{"type":"join","rooms":["a"],"x":1}]}"#).is_err()
        );
    }
}
