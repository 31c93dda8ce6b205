//! Rooms by client request: joins and leaves are checked against the allowed patterns
//! and the per-socket bound, and every one is acknowledged `{ok}` or `{error}`.

use serde_json::{Value, json};

use super::backend::{no_reply, serve_rules};
use super::socket::{SioClient, token};

fn ok() -> Vec<Value> {
    vec![json!({"ok": true})]
}

fn error(reason: &str) -> Vec<Value> {
    vec![json!({ "error": reason })]
}

#[test]
fn joins_and_leaves_follow_the_patterns_and_the_room_bound() -> anyhow::Result<()> {
    let (server, backend) = serve_rules(no_reply)?;
    let auth = json!({ "token": token("alice", 60, json!({}))? });
    let (mut alice, _) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    assert_eq!(alice.call("join", &[json!("chat:a")])?, ok());
    assert_eq!(
        alice.call("join", &[json!("admin")])?,
        error("room not allowed")
    );
    assert_eq!(alice.call("join", &[])?, error("room required"));
    assert_eq!(alice.call("join", &[json!("chat:b")])?, ok());
    // user:alice, chat:a and chat:b: the bound of 3 is reached.
    assert_eq!(
        alice.call("join", &[json!("chat:c")])?,
        error("too many rooms")
    );
    assert_eq!(
        alice.call("join", &[json!("chat:a")])?,
        ok(),
        "already in it"
    );
    assert_eq!(alice.call("leave", &[json!("chat:a")])?, ok());
    assert_eq!(alice.call("join", &[json!("chat:c")])?, ok());
    assert_eq!(
        alice.call("leave", &[json!("user:alice")])?,
        error("room not allowed"),
        "the server's rooms stay joined"
    );
    backend.wait_for("room_vacated", |d| d["room"] == "chat:a")?;
    Ok(())
}
