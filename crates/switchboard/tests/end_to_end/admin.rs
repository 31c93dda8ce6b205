//! The Admin UI's namespace under CONNECTs nobody logged in for: made-up session ids
//! cost the node's Redis a bounded number of lookups; and a session ends with the
//! password it was opened with.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use switchboard_test_support::RedisServer;

use super::client::{Polling, ready};
use super::support::TestServer;

/// bcrypt of `changeit` at cost 4.
const PASSWORD_HASH: &str = "$2b$04$DGiHFj8ZMmuoGJBcJZxvXus40HSeThXhhgNjjSsYgnYKqu7M5nsUS";

/// The cluster secret of the test node.
const SECRET: &str = "end-to-end cluster secret, at least 32 bytes";

/// How many `GET` commands `redis` has run (`INFO commandstats`): session lookups.
fn get_calls(redis: &RedisServer) -> anyhow::Result<u64> {
    let mut conn = TcpStream::connect(("127.0.0.1", redis.port()))?;
    conn.write_all(b"INFO commandstats\r\n")?;
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    reader.read_line(&mut head)?;
    let len: usize = head
        .trim()
        .strip_prefix('$')
        .ok_or_else(|| anyhow::anyhow!("not a bulk reply: {head}"))?
        .parse()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8(body)?;
    Ok(body
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(Ok(0), str::parse)?)
}

/// docs/security.md: a session id this node did not hand out is looked up in Redis
/// (any node may have), at most 50 a second in bursts of 100. 600 CONNECTs with
/// made-up ids, 60 on each of 10 connections, are all refused, and Redis runs no more
/// lookups than the burst and the rate over the time they took. Without the bound
/// every one was a lookup on the connection real clients' recoveries share.
#[test]
fn made_up_admin_session_ids_cost_redis_a_bounded_number_of_lookups() -> anyhow::Result<()> {
    let redis = RedisServer::start_blocking();
    let server = admin_node(&redis, PASSWORD_HASH)?;
    let addr = server.addr();
    let before = get_calls(&redis)?;
    let started = Instant::now();
    const CONNECTIONS: usize = 10;
    const PER_CONNECTION: usize = 60;
    let mut n = 0u64;
    for _ in 0..CONNECTIONS {
        let session = Polling::handshake(addr)?;
        // One at a time: a second CONNECT to a namespace still connecting is a
        // protocol error that closes the connection.
        for _ in 0..PER_CONNECTION {
            n += 1;
            session.send(&[&format!(r#"40/admin,{{"sessionId":"{n:032x}"}}"#)])?;
            let packets = session.poll()?;
            anyhow::ensure!(
                packets.len() == 1
                    && packets[0].starts_with("44/admin,")
                    && packets[0].contains("invalid credentials"),
                "not refused: {packets:?}"
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let lookups = get_calls(&redis)? - before;
    let allowed = 100 + (50.0 * seconds).ceil() as u64;
    assert!(
        lookups <= allowed,
        "{lookups} lookups for {} CONNECTs in {seconds:.1} s (allowed {allowed})",
        CONNECTIONS * PER_CONNECTION
    );
    assert!(lookups >= 100, "the burst is looked up: {lookups}");
    Ok(())
}

/// A node started on `redis` with `password_hash` for the Admin UI.
fn admin_node(redis: &RedisServer, password_hash: &str) -> anyhow::Result<TestServer> {
    let server = TestServer::builder()
        .env("SWITCHBOARD_CLUSTER__ADAPTER", "redis")
        .env("SWITCHBOARD_CLUSTER__REDIS_URL", &redis.url())
        .env("SWITCHBOARD_CLUSTER__SECRET", SECRET)
        .env("SWITCHBOARD_ADMIN__ENABLED", "true")
        .env("SWITCHBOARD_ADMIN__USERNAME", "admin")
        .env("SWITCHBOARD_ADMIN__PASSWORD_HASH", password_hash)
        .start()?;
    ready(server.addr(), "the node to be ready")?;
    Ok(server)
}

/// The Admin UI CONNECT with `auth` on a fresh connection to `node`: the packets it
/// gets back (the answer, then what the UI is sent at once).
///
/// Polls until the UI's `config` event has come (it follows the `session` event of a
/// login): the CONNECT answer is queued before the connection handler runs, so a
/// poll may return with the answer alone.
fn admin_connect(node: &TestServer, auth: &str) -> anyhow::Result<Vec<String>> {
    let session = Polling::handshake(node.addr())?;
    session.send(&[&format!("40/admin,{auth}")])?;
    let mut packets = session.poll()?;
    for _ in 0..5 {
        let accepted = packets.first().is_some_and(|p| p.starts_with("40/admin,"));
        if !accepted
            || packets
                .iter()
                .any(|p| p.starts_with(r#"42/admin,["config""#))
        {
            break;
        }
        packets.extend(session.poll()?);
    }
    Ok(packets)
}

/// A login session is kept in Redis for 24 hours so that a reload reaching another
/// node stays logged in; it ends when the password does. A node restarted with a new
/// `password_hash` (the same password hashed again, here) refuses the old session's
/// id, and a node with the old hash still takes it. Before, any node took any stored
/// session for its 24 hours, whatever the password had become.
#[test]
fn an_admin_session_ends_with_the_password_it_was_opened_with() -> anyhow::Result<()> {
    let redis = RedisServer::start_blocking();
    let old = admin_node(&redis, PASSWORD_HASH)?;
    let answer = admin_connect(&old, r#"{"username":"admin","password":"changeit"}"#)?;
    let id = answer
        .iter()
        .find_map(|p| p.strip_prefix(r#"42/admin,["session",""#))
        .and_then(|rest| rest.strip_suffix(r#""]"#))
        .ok_or_else(|| anyhow::anyhow!("no session event: {answer:?}"))?
        .to_owned();
    let by_id = format!(r#"{{"sessionId":"{id}"}}"#);

    let rotated = bcrypt::hash("changeit", 4)?;
    let new = admin_node(&redis, &rotated)?;
    let refused = admin_connect(&new, &by_id)?;
    assert!(
        refused[0].starts_with("44/admin,") && refused[0].contains("invalid credentials"),
        "{refused:?}"
    );
    let same = admin_node(&redis, PASSWORD_HASH)?;
    let taken = admin_connect(&same, &by_id)?;
    assert!(taken[0].starts_with("40/admin,"), "{taken:?}");
    drop(old);
    Ok(())
}
