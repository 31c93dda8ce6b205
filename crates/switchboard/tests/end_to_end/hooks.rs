//! Lifecycle webhooks: the backend hears of every connect (with the token's claims),
//! every disconnect with its classified reason, and rooms becoming occupied and
//! vacated — including the disconnects of a graceful shutdown.

use serde_json::json;

use super::backend::{no_reply, serve_rules, serve_rules_from};
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

/// A client joining and leaving made-up rooms in a loop while the backend is stuck
/// makes two room events a cycle. Each socket may have at most 256 of them queued: past
/// that its own newest are dropped, and another socket's room event still finds a
/// place in the room events' half of the queue (500 places here), and is delivered
/// once the backend answers again.
#[test]
fn one_clients_room_churn_does_not_crowd_out_another_clients_room_events() -> anyhow::Result<()> {
    let (server, backend) = serve_rules_from("rules_room_churn.toml", no_reply)?;
    backend.stall();
    let (mut churner, _) = SioClient::connect(server.addr(), "/churn", json!({}))?.accepted()?;
    for n in 0..300 {
        let room = json!(format!("churn:{n}"));
        churner.emit("join", std::slice::from_ref(&room))?;
        churner.emit("leave", &[room])?;
    }
    // Answered once every join and leave before it has been handled.
    let answer = churner.call("join", &[json!("churn:last")])?;
    assert_eq!(answer, [json!({"ok": true})]);
    let (mut other, _) = SioClient::connect(server.addr(), "/churn", json!({}))?.accepted()?;
    assert_eq!(
        other.call("join", &[json!("churn:other")])?,
        [json!({"ok": true})]
    );
    backend.resume();
    backend.wait_for("room_occupied", |d| d["room"] == "churn:other")?;
    // The churner's own: 601 room events, at most 256 of them queued at once.
    let dropped = metric(server.addr(), "switchboard_hook_dropped_total")?;
    assert!(dropped.is_some_and(|n| n >= 300.0), "{dropped:?}");
    Ok(())
}

/// A backend that stops answering as the server shuts down: the disconnects not
/// delivered by `shutdown.drain_deadline` are dead-lettered (`shutdown`) before the
/// process exits, even while a client holds an HTTP connection open (a request head
/// sent by half). Before, the sink's flush began only once the last HTTP connection
/// had ended, and a flush still under way at the deadline was cut off: either way the
/// process exited with those disconnects neither delivered nor dead-lettered.
#[test]
fn disconnects_undelivered_at_the_drain_deadline_are_dead_lettered() -> anyhow::Result<()> {
    let backend = super::backend::Backend::start(no_reply)?;
    let dir = tempfile::tempdir()?;
    let dead = dir.path().join("dead-letters.jsonl");
    let config = super::support::testdata("rules_e2e.toml");
    let mut server = super::support::TestServer::builder()
        .args([std::ffi::OsStr::new("--config"), config.as_os_str()])
        .env("SWITCHBOARD_HOOKS__WEBHOOK__URL", &backend.url())
        .env(
            "SWITCHBOARD_HOOKS__WEBHOOK__DEAD_LETTER_PATH",
            &dead.display().to_string(),
        )
        .env("SWITCHBOARD_SHUTDOWN__DRAIN_DEADLINE", "2s")
        .start()?;
    let auth = json!({ "token": token("alice", 60, json!({}))? });
    let (_alice, sid) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    backend.wait_for("connection", |d| d["socket_id"] == sid.as_str())?;
    backend.stall();
    let mut held = std::net::TcpStream::connect(server.addr())?;
    std::io::Write::write_all(&mut held, b"GET /health/live HTTP/1.1\r\nHost: x\r\n")?;
    server.signal("TERM")?;
    let status = server.wait()?;
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    let letters = std::fs::read_to_string(&dead)
        .map_err(|e| anyhow::anyhow!("no dead letters ({e}); stderr:\n{}", server.stderr()))?;
    let dead_lettered = letters.lines().any(|line| {
        serde_json::from_str::<serde_json::Value>(line).is_ok_and(|letter| {
            letter["reason"] == "shutdown"
                && letter["event"]["type"] == "disconnection"
                && letter["event"]["data"]["socket_id"] == sid.as_str()
        })
    });
    assert!(dead_lettered, "{letters}\nstderr:\n{}", server.stderr());
    drop(held);
    Ok(())
}
