//! Lifecycle webhooks: the backend hears of every connect (with the token's claims),
//! every disconnect with its classified reason, and rooms becoming occupied and
//! vacated — including the disconnects of a graceful shutdown.

use serde_json::json;

use super::backend::{no_reply, serve_rules};
use super::client::metric;
use super::socket::{SioClient, token};

#[test]
fn the_backend_hears_of_connects_and_disconnects_with_their_reason() -> anyhow::Result<()> {
    let (server, backend) = serve_rules(no_reply)?;
    let auth = json!({ "token": token("alice", 60, json!({"plan": "pro"}))? });
    let (mut alice, sid) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    let connected = backend.wait_for("connection", |d| d["socket_id"] == sid.as_str())?;
    assert_eq!(connected["data"]["namespace"], "/chat");
    assert_eq!(connected["data"]["claims"]["plan"], "pro");
    assert_eq!(connected["data"]["address"], "127.0.0.1");
    alice.disconnect()?;
    backend.wait_for("disconnection", |d| {
        d["socket_id"] == sid.as_str() && d["reason"] == "client namespace disconnect"
    })?;
    backend.wait_for("room_vacated", |d| d["room"] == "user:alice")?;
    let delivered = metric(server.addr(), "switchboard_hook_delivered_total")?;
    assert!(delivered.is_some_and(|n| n >= 2.0), "{delivered:?}");
    Ok(())
}

#[test]
fn disconnects_during_a_graceful_shutdown_are_delivered_before_exit() -> anyhow::Result<()> {
    let (mut server, backend) = serve_rules(no_reply)?;
    let auth = json!({ "token": token("alice", 60, json!({}))? });
    let (_alice, sid) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    backend.wait_for("connection", |d| d["socket_id"] == sid.as_str())?;
    server.signal("TERM")?;
    let status = server.wait()?;
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let delivered = backend.received().into_iter().any(|b| {
        b["type"] == "disconnection"
            && b["data"]["socket_id"] == sid.as_str()
            && b["data"]["reason"] == "server shutting down"
    });
    assert!(delivered, "{:#?}", backend.received());
    Ok(())
}
