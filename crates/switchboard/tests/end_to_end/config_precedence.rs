//! Precedence seen from a client: flags win over `SWITCHBOARD_*` variables, which win
//! over the file, as the handshake's `pingInterval` and `pingTimeout` show.

use super::client::Polling;
use super::support::{TestServer, testdata};

fn config_file() -> String {
    testdata("env_override.toml").display().to_string()
}

#[test]
fn environment_overrides_the_file() -> anyhow::Result<()> {
    let server = TestServer::builder()
        .args(["--config", &config_file()])
        .env("SWITCHBOARD_ENGINE__PING_INTERVAL", "1234")
        .start()?;
    let session = Polling::handshake(server.addr())?;
    assert_eq!(session.open["pingInterval"], 1234, "{}", session.open);
    // Not overridden: the file's value.
    assert_eq!(session.open["pingTimeout"], 20_000, "{}", session.open);
    Ok(())
}

#[test]
fn flags_override_the_environment() -> anyhow::Result<()> {
    let server = TestServer::builder()
        .args(["--config", &config_file()])
        .args(["--set", "engine.ping_interval=4321ms"])
        .env("SWITCHBOARD_ENGINE__PING_INTERVAL", "1234")
        // The --listen flag of the test harness wins over this address.
        .env("SWITCHBOARD_LISTEN", "127.0.0.1:1")
        .start()?;
    assert_ne!(server.addr().port(), 1);
    let session = Polling::handshake(server.addr())?;
    assert_eq!(session.open["pingInterval"], 4321, "{}", session.open);
    Ok(())
}

#[test]
fn the_config_file_can_come_from_the_environment() -> anyhow::Result<()> {
    let server = TestServer::builder()
        .env("SWITCHBOARD_CONFIG", &config_file())
        .env("SWITCHBOARD_ENGINE__PING_TIMEOUT", "7s")
        .start()?;
    let session = Polling::handshake(server.addr())?;
    assert_eq!(session.open["pingInterval"], 25_000, "{}", session.open);
    assert_eq!(session.open["pingTimeout"], 7_000, "{}", session.open);
    Ok(())
}
