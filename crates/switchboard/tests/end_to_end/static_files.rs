//! `[static] dir`: files at `/` beside Socket.IO, health and metrics.

use super::client::get;
use super::support::{TestServer, testdata};

#[test]
fn a_static_directory_is_served_at_the_root() -> anyhow::Result<()> {
    let dir = testdata("static");
    let server = TestServer::builder()
        .env("SWITCHBOARD_STATIC__DIR", &dir.to_string_lossy())
        .start()?;
    let addr = server.addr();
    let index = get(addr, "/")?;
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        index.body.contains("switchboard static test"),
        "{}",
        index.body
    );
    let script = get(addr, "/js/app.js")?;
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    for path in ["/../static.toml", "/js/../../valid.toml", "/missing.css"] {
        assert_eq!(get(addr, path)?.status, 404, "{path}");
    }
    assert_eq!(get(addr, "/health/live")?.status, 200);
    let handshake = get(addr, "/socket.io/?EIO=4&transport=polling")?;
    assert!(handshake.body.starts_with("0{"), "{}", handshake.body);
    Ok(())
}

#[test]
fn a_missing_static_directory_is_a_config_error() -> anyhow::Result<()> {
    let mut cmd = super::support::command();
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("SWITCHBOARD_STATIC__DIR", "/no/such/dir");
    let out = super::support::run(cmd)?;
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(out.stderr.contains("static.dir"), "{}", out.stderr);
    Ok(())
}
