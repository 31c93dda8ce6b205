//! A backend's reply to a forwarded event: the body of an HTTP response from a server
//! the operator configured, but not one Switchboard controls.

use serde_json::{Value, json};
use switchboard_hooks::{HookAction, HookReply};

use crate::support::json_close;

/// `HookReply::from_body`: only a blank body or a JSON object is accepted, and the
/// reply written back as JSON reads as the same reply.
pub fn hook_reply(data: &[u8]) {
    let Ok(reply) = HookReply::from_body(data) else {
        return;
    };
    if !data.iter().all(u8::is_ascii_whitespace) {
        let value: Value = serde_json::from_slice(data).expect("an accepted body is JSON");
        assert!(value.is_object(), "accepted a non-object reply");
        if let Some(Value::Array(actions)) = value.get("actions") {
            assert!(
                actions.iter().all(Value::is_object),
                "accepted a non-object action"
            );
        }
    }
    let body = serde_json::to_vec(&to_json(&reply)).expect("JSON values serialize");
    let again = HookReply::from_body(&body).expect("a written reply reads back");
    assert!(
        json_close(&to_json(&again), &to_json(&reply)),
        "{reply:?} read back as {again:?}"
    );
}

/// The reply in the documented format (see `switchboard_hooks::reply`).
fn to_json(reply: &HookReply) -> Value {
    let actions: Vec<Value> = reply
        .actions
        .iter()
        .map(|action| match action {
            HookAction::Join { rooms } => json!({"type": "join", "rooms": rooms}),
            HookAction::Leave { rooms } => json!({"type": "leave", "rooms": rooms}),
            HookAction::Emit { rooms, event, args } => {
                json!({"type": "emit", "rooms": rooms, "event": event, "args": args})
            }
        })
        .collect();
    json!({"ack": reply.ack, "actions": actions})
}
