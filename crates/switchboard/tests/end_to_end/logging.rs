//! Log output: JSON lines on stderr when asked for, with the listen address announced.

use super::support::TestServer;

#[test]
fn json_logs_are_one_object_per_line() -> anyhow::Result<()> {
    let mut server = TestServer::builder()
        .args(["--log-format", "json"])
        .start()?;
    server.signal("INT")?;
    server.wait()?;
    let stderr = server.stderr();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let listening = lines
        .iter()
        .find(|l| l["fields"]["message"] == "listening")
        .ok_or_else(|| anyhow::anyhow!("no listening event in\n{stderr}"))?;
    assert_eq!(listening["level"], "INFO");
    assert_eq!(listening["fields"]["addr"], server.addr().to_string());
    Ok(())
}
