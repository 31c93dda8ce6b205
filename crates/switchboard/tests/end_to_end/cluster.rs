//! Two `switchboard` processes sharing a real redis-server: the HTTP API of either
//! node acts on the sockets of both, a long-polling session is served through any
//! node, readiness follows Redis, a bad `[cluster]` section (a missing secret
//! included) is refused, and `check-config` never shows the Redis password or the
//! cluster secret.

use std::net::SocketAddr;

use serde_json::{Value, json};
use switchboard_test_support::RedisServer;

use super::api::{KEY, call, connect};
use super::client::{Polling, get, metric, ready};
use super::support::{TestServer, command, eventually, run};

/// The cluster secret the test nodes share (forwarded polling requests are signed).
const SECRET: &str = "end-to-end cluster secret, at least 32 bytes";

/// A node of `adapter` on `redis`, with the API on and recovery as `recovery` says.
fn node(redis: &RedisServer, adapter: &str, recovery: bool) -> anyhow::Result<TestServer> {
    let server = TestServer::builder()
        .env("SWITCHBOARD_API__KEYS", KEY)
        .env("SWITCHBOARD_CLUSTER__ADAPTER", adapter)
        .env("SWITCHBOARD_CLUSTER__REDIS_URL", &redis.url())
        .env("SWITCHBOARD_CLUSTER__SECRET", SECRET)
        .env("SWITCHBOARD_RECOVERY__ENABLED", &recovery.to_string())
        .start()?;
    ready(server.addr(), "the node to be ready")?;
    Ok(server)
}

/// The ids `GET .../sockets` lists on `addr`.
fn listed(addr: SocketAddr) -> anyhow::Result<Vec<String>> {
    let list = call(addr, "GET", "/api/v1/namespaces/%2F/sockets", &Value::Null)?;
    Ok(list["sockets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect())
}

/// The first event packet among the next polls of `client`.
fn next_event(client: &Polling) -> anyhow::Result<String> {
    eventually("an event", || {
        Ok(client.poll()?.into_iter().find(|p| p.starts_with("42")))
    })
}

fn the_api_of_one_node_acts_on_the_sockets_of_another(adapter: &str) -> anyhow::Result<()> {
    let redis = RedisServer::start_blocking();
    let (a, b) = (node(&redis, adapter, false)?, node(&redis, adapter, false)?);
    let (client, id) = connect(b.addr())?;

    // Listed by node A, with node B's view of it.
    assert_eq!(listed(a.addr())?, std::slice::from_ref(&id));
    // Joined to a room through node A, then reached there through node A.
    let join = json!({"socket_ids": [id], "join": ["team:1"]});
    let joined = call(a.addr(), "POST", "/api/v1/sockets/join", &join)?;
    assert_eq!(joined["affected"], 1, "{joined}");
    eventually("the room to list it", || {
        let room = call(
            a.addr(),
            "GET",
            "/api/v1/namespaces/%2F/rooms/team%3A1",
            &Value::Null,
        )?;
        Ok((room["socket_ids"] == json!([id])).then_some(()))
    })?;
    let emit = json!({"rooms": ["team:1"], "event": "news", "args": [{"n": 1}]});
    let emitted = call(a.addr(), "POST", "/api/v1/emit", &emit)?;
    assert_eq!(emitted["recipients"], 0, "none on node A itself: {emitted}");
    assert_eq!(next_event(&client)?, r#"42["news",{"n":1}]"#);
    Ok(())
}

#[test]
fn the_api_of_one_node_acts_on_the_sockets_of_another_over_redis_pubsub() -> anyhow::Result<()> {
    the_api_of_one_node_acts_on_the_sockets_of_another("redis")
}

#[test]
fn the_api_of_one_node_acts_on_the_sockets_of_another_over_redis_streams() -> anyhow::Result<()> {
    the_api_of_one_node_acts_on_the_sockets_of_another("redis-streams")
}

#[test]
fn a_polling_session_is_served_through_any_node() -> anyhow::Result<()> {
    let redis = RedisServer::start_blocking();
    let (a, b) = (
        node(&redis, "redis-streams", true)?,
        node(&redis, "redis-streams", true)?,
    );
    // Opened on A; every later request goes to B, which forwards it to A.
    let on_a = Polling::handshake(a.addr())?;
    let on_b = on_a.through(b.addr());
    on_b.send(&["40"])?;
    let answer = on_b.poll()?;
    let connect = answer.iter().find(|p| p.starts_with("40{"));
    let id = connect
        .and_then(|p| serde_json::from_str::<Value>(&p[2..]).ok())
        .and_then(|body| body["sid"].as_str().map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("no CONNECT answer in {answer:?}"))?;
    // The socket lives on A (each node's gauge counts its own sockets), and either
    // node's API lists it.
    let sockets = r#"switchboard_sockets{namespace="/"}"#;
    assert_eq!(metric(a.addr(), sockets)?, Some(1.0));
    assert_eq!(metric(b.addr(), sockets)?, Some(0.0));
    assert_eq!(listed(b.addr())?, std::slice::from_ref(&id));
    // An emit through B's API reaches it, read through B.
    let emit = json!({"event": "hello", "args": ["through b"]});
    call(b.addr(), "POST", "/api/v1/emit", &emit)?;
    // (with recovery on, the event's offset follows its arguments)
    let event = next_event(&on_b)?;
    assert!(event.starts_with(r#"42["hello","through b""#), "{event}");
    // What it posts through B acts on A: leaving the namespace there.
    on_b.send(&["41"])?;
    eventually("the socket to leave A", || {
        Ok((metric(a.addr(), sockets)? == Some(0.0)).then_some(()))
    })?;
    Ok(())
}

#[test]
fn readiness_follows_redis_and_the_metrics_show_it() -> anyhow::Result<()> {
    let mut redis = RedisServer::start_blocking();
    let server = node(&redis, "redis-streams", true)?;
    let addr = server.addr();
    assert_eq!(metric(addr, "switchboard_cluster_up")?, Some(1.0));

    redis.kill();
    let down = eventually("readiness to turn 503", || {
        let res = get(addr, "/health/ready")?;
        Ok((res.status == 503).then_some(res))
    })?;
    assert!(down.body.contains("cluster_unavailable"), "{}", down.body);
    assert_eq!(get(addr, "/health/live")?.status, 200, "still alive");
    assert_eq!(metric(addr, "switchboard_cluster_up")?, Some(0.0));

    redis.restart_blocking();
    ready(addr, "readiness to come back")?;
    let reconnects = metric(addr, "switchboard_cluster_reconnects_total")?;
    assert!(reconnects.is_some_and(|n| n >= 1.0), "{reconnects:?}");
    Ok(())
}

#[test]
fn a_bad_cluster_section_lists_every_bad_key_and_exits_64() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    for set in [
        "cluster.adapter=kafka",
        "cluster.redis_url=http://cache",
        "cluster.stream_max_len=0",
        "recovery.max_disconnection_duration=0",
    ] {
        cmd.args(["--set", set]);
    }
    let out = run(cmd)?;
    assert_eq!(out.code, Some(64), "{out:?}");
    for key in [
        "cluster.adapter",
        "cluster.redis_url",
        "cluster.stream_max_len",
        "recovery.max_disconnection_duration",
    ] {
        assert!(
            out.stderr.contains(&format!("  - {key}:")),
            "{key} in {}",
            out.stderr
        );
    }
    Ok(())
}

#[test]
fn a_redis_adapter_without_a_secret_exits_64_with_the_other_bad_keys() -> anyhow::Result<()> {
    for adapter in ["redis", "redis-streams"] {
        let mut cmd = command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        cmd.args(["--set", &format!("cluster.adapter={adapter}")]);
        cmd.args(["--set", "cluster.stream_max_len=0"]);
        let out = run(cmd)?;
        assert_eq!(out.code, Some(64), "{out:?}");
        for key in ["cluster.secret", "cluster.stream_max_len"] {
            assert!(
                out.stderr.contains(&format!("  - {key}:")),
                "{key} in {}",
                out.stderr
            );
        }
    }
    Ok(())
}

#[test]
fn check_config_shows_neither_the_redis_password_nor_the_secret() -> anyhow::Result<()> {
    // The password in the file, the secret in the environment.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("check-config.toml");
    std::fs::write(
        &file,
        "[cluster]\nadapter = \"redis\"\nredis_url = \"redis://:file-password-1@cache\"\n",
    )?;
    let mut cmd = command();
    cmd.arg("check-config")
        .arg(&file)
        .env("SWITCHBOARD_CLUSTER__SECRET", SECRET);
    let from_file = run(cmd)?;
    assert_eq!(from_file.code, Some(0), "{from_file:?}");
    assert!(from_file.stdout.contains(r#""redis://:***@cache""#));
    assert!(!from_file.stdout.contains("file-password-1"));

    let file = dir.path().join("check-config-env.toml");
    std::fs::write(&file, "")?;
    let mut cmd = command();
    cmd.arg("check-config")
        .arg(&file)
        .env(
            "SWITCHBOARD_CLUSTER__REDIS_URL",
            "rediss://app:hunter2-password@cache.internal:6380/0",
        )
        .env("SWITCHBOARD_CLUSTER__ADAPTER", "redis")
        .env("SWITCHBOARD_CLUSTER__SECRET", SECRET);
    let out = run(cmd)?;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains(r#""rediss://app:***@cache.internal:6380/0""#),
        "{}",
        out.stdout
    );
    for hidden in ["hunter2-password", SECRET] {
        assert!(!out.stdout.contains(hidden), "{}", out.stdout);
        assert!(!out.stderr.contains(hidden), "{}", out.stderr);
    }
    Ok(())
}
