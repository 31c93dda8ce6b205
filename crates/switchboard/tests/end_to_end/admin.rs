//! The Admin UI's namespace under CONNECTs nobody logged in for: made-up session ids
//! cost the node's Redis a bounded number of lookups.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use switchboard_test_support::RedisServer;

use super::client::{Polling, get};
use super::support::{TestServer, eventually};

/// bcrypt of `changeit` at cost 4.
const PASSWORD_HASH: &str = "$2b$04$DGiHFj8ZMmuoGJBcJZxvXus40HSeThXhhgNjjSsYgnYKqu7M5nsUS";

/// The cluster secret of the test node.
const SECRET: &str = "end-to-end cluster secret, at least 32 bytes";

/// How many `EXISTS` commands `redis` has run (`INFO commandstats`).
fn exists_calls(redis: &RedisServer) -> anyhow::Result<u64> {
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
        .find_map(|line| line.strip_prefix("cmdstat_exists:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(Ok(0), str::parse)?)
}

/// docs/security.md: a session id this node did not hand out is looked up in Redis
/// (any node may have), at most 50 a second in bursts of 100. 600 CONNECTs with
/// made-up ids, 60 on each of 10 connections, are all refused, and Redis runs no more
/// lookups than the burst and the rate over the time they took. Without the bound
/// every one was an `EXISTS` on the connection real clients' recoveries share.
#[test]
fn made_up_admin_session_ids_cost_redis_a_bounded_number_of_lookups() -> anyhow::Result<()> {
    let redis = RedisServer::start_blocking();
    let server = TestServer::builder()
        .env("SWITCHBOARD_CLUSTER__ADAPTER", "redis")
        .env("SWITCHBOARD_CLUSTER__REDIS_URL", &redis.url())
        .env("SWITCHBOARD_CLUSTER__SECRET", SECRET)
        .env("SWITCHBOARD_ADMIN__ENABLED", "true")
        .env("SWITCHBOARD_ADMIN__USERNAME", "admin")
        .env("SWITCHBOARD_ADMIN__PASSWORD_HASH", PASSWORD_HASH)
        .start()?;
    let addr = server.addr();
    eventually("the node to be ready", || {
        Ok((get(addr, "/health/ready")?.status == 200).then_some(()))
    })?;
    let before = exists_calls(&redis)?;
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
    let lookups = exists_calls(&redis)? - before;
    let allowed = 100 + (50.0 * seconds).ceil() as u64;
    assert!(
        lookups <= allowed,
        "{lookups} lookups for {} CONNECTs in {seconds:.1} s (allowed {allowed})",
        CONNECTIONS * PER_CONNECTION
    );
    assert!(lookups >= 100, "the burst is looked up: {lookups}");
    Ok(())
}
