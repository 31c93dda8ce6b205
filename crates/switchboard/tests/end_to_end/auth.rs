//! Authentication by namespace rules: connections without a valid token are refused
//! with a reason, accepted ones join their user room, and a socket whose token expires
//! is disconnected with `auth expired` unless it refreshed its token in time.

use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use super::backend::{no_reply, serve_rules};
use super::client::metric;
use super::socket::{Connect, SioClient, now, token};

fn refusal(connect: Connect) -> anyhow::Result<Value> {
    match connect {
        Connect::Refused(err) => Ok(err),
        Connect::Accepted(_, sid) => anyhow::bail!("accepted as {sid}"),
    }
}

#[test]
fn connections_without_a_valid_token_are_refused_with_a_reason() -> anyhow::Result<()> {
    let (server, _backend) = serve_rules(no_reply)?;
    let addr = server.addr();
    let none = refusal(SioClient::connect(addr, "/chat", json!({}))?)?;
    assert_eq!(
        none,
        json!({"message": "authentication required", "data": {"code": "missing"}})
    );
    let forged = format!("{}x", token("alice", 60, json!({}))?);
    let bad = refusal(SioClient::connect(
        addr,
        "/chat",
        json!({ "token": forged }),
    )?)?;
    assert_eq!(bad["data"]["code"], "bad_signature", "{bad}");
    assert_eq!(bad["message"], "invalid token");
    // Expired beyond the 30 s leeway.
    let old = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": now() - 120}),
        &jsonwebtoken::EncodingKey::from_secret(super::socket::SECRET.as_bytes()),
    )?;
    let expired = refusal(SioClient::connect(addr, "/chat", json!({ "token": old }))?)?;
    assert_eq!(
        expired,
        json!({"message": "token expired", "data": {"code": "expired"}})
    );
    assert_eq!(
        metric(
            addr,
            r#"switchboard_auth_total{outcome="refused",code="missing"}"#
        )?,
        Some(1.0)
    );
    Ok(())
}

#[test]
fn a_valid_token_connects_and_joins_the_user_room() -> anyhow::Result<()> {
    let (server, backend) = serve_rules(no_reply)?;
    let alice = json!({ "token": token("alice", 60, json!({}))? });
    let (mut first_tab, sid) =
        SioClient::connect(server.addr(), "/chat", alice.clone())?.accepted()?;
    backend.wait_for("connection", |d| {
        d["socket_id"] == sid.as_str() && d["claims"]["sub"] == "alice"
    })?;
    backend.wait_for("room_occupied", |d| d["room"] == "user:alice")?;
    // A second tab of the same user is in the same room: a relay reaches it.
    let (mut second_tab, _) = SioClient::connect(server.addr(), "/chat", alice)?.accepted()?;
    let ack = first_tab.call("message", &[json!("user:alice"), json!("from tab 1")])?;
    assert_eq!(ack, [json!({"ok": true})]);
    assert_eq!(
        second_tab.event("message")?,
        [json!("user:alice"), json!("from tab 1")]
    );
    Ok(())
}

#[test]
fn an_expired_token_disconnects_the_socket_with_auth_expired() -> anyhow::Result<()> {
    let (server, backend) = serve_rules(no_reply)?;
    let auth = json!({ "token": token("alice", 2, json!({}))? });
    let (mut client, sid) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    client.closed()?;
    backend.wait_for("disconnection", |d| {
        d["socket_id"] == sid.as_str() && d["reason"] == "auth expired"
    })?;
    let sample = r#"switchboard_disconnects_total{category="auth",reason="auth expired"}"#;
    assert_eq!(metric(server.addr(), sample)?, Some(1.0));
    Ok(())
}

#[test]
fn a_refreshed_token_keeps_the_socket_connected() -> anyhow::Result<()> {
    let (server, backend) = serve_rules(no_reply)?;
    let auth = json!({ "token": token("alice", 2, json!({}))? });
    let (mut client, sid) = SioClient::connect(server.addr(), "/chat", auth)?.accepted()?;
    let mallory = token("mallory", 60, json!({}))?;
    assert_eq!(
        client.call("auth:refresh", &[json!(mallory)])?,
        [json!({"error": "token subject mismatch"})]
    );
    assert_eq!(
        client.call("auth:refresh", &[json!("not.a.token")])?,
        [json!({"error": "malformed token"})]
    );
    let fresh = token("alice", 60, json!({}))?;
    assert_eq!(
        client.call("auth:refresh", &[json!(fresh)])?,
        [json!({"ok": true})]
    );
    // Past the first token's expiry the socket still answers.
    thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        client.call("join", &[json!("chat:after")])?,
        [json!({"ok": true})]
    );
    assert!(
        !backend
            .received()
            .iter()
            .any(|b| b["type"] == "disconnection" && b["data"]["socket_id"] == sid.as_str()),
        "{:#?}",
        backend.received()
    );
    Ok(())
}
