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

use serde::Deserialize;
use serde_json::Value;

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
        HookReply::deserialize(value)
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
