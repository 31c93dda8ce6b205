//! Namespace rules are configuration like any other: `check-config` prints them without
//! secrets, and reports every mistake in them at once with exit status 64.

use super::support::{command, run, testdata};

#[test]
fn check_config_prints_the_rules_without_secrets() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.arg("check-config").arg(testdata("rules.toml"));
    let out = run(cmd)?;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("namespaces "))
        .unwrap_or_default();
    assert!(line.contains(r#"{ name = "/chat", auth = {"#), "{line}");
    assert!(
        line.contains(r#"{ pattern = "/tenant-*", events = [] }"#),
        "{line}"
    );
    assert!(!out.stdout.contains("chat-secret"), "{}", out.stdout);
    assert!(!out.stdout.contains("webhook-secret"), "{}", out.stdout);
    Ok(())
}

#[test]
fn serve_refuses_bad_rules_with_every_key_and_status_64() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(testdata("invalid_rules.toml"));
    let out = run(cmd)?;
    assert_eq!(out.code, Some(64), "{}", out.stderr);
    assert!(out.stderr.contains("(18 errors)"), "{}", out.stderr);
    for key in [
        "namespaces[0].auth.algorithms",
        "namespaces[0].events[1].action",
        "namespaces[3].rooms.allow_from_claim",
        "hooks.retries",
    ] {
        assert!(
            out.stderr.contains(&format!("  - {key}: ")),
            "{key}:\n{}",
            out.stderr
        );
    }
    Ok(())
}
