//! The command line: `check-config` summaries and error lists, and `serve` refusing an
//! invalid configuration with exit status 64.

use super::support::{command, run, testdata};

/// The exit status promised for an invalid configuration (`EX_USAGE`).
const EXIT_INVALID_CONFIG: i32 = 64;

/// Every key `testdata/invalid.toml` gets wrong.
const INVALID_KEYS: &[&str] = &[
    "listen",
    "namespces",
    "namespaces",
    "socketio",
    "log.format",
    "log.level",
    "engine.path",
    "engine.transports",
    "engine.ping_interval",
    "engine.ping_timeout",
    "engine.max_payload",
    "engine.max_conections",
    "cors.allowed_origins",
    "cors.credentials",
    "queue.max_packets",
    "shutdown.drain_deadline",
    "limits.max",
    "limits.memory",
    "quotas",
];

#[test]
fn check_config_prints_every_effective_value_with_its_origin() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.arg("check-config").arg(testdata("valid.toml"));
    cmd.env("SWITCHBOARD_ENGINE__PING_TIMEOUT", "3s");
    let out = run(cmd)?;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("configuration is valid"),
        "{}",
        out.stdout
    );
    let line = |key: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("listen").contains(r#""127.0.0.1:4000""#),
        "{}",
        out.stdout
    );
    assert!(line("listen").contains("# file"), "{}", out.stdout);
    let timeout = line("engine.ping_timeout");
    assert!(timeout.contains(r#""3s""#), "{timeout}");
    assert!(
        timeout.ends_with("# env SWITCHBOARD_ENGINE__PING_TIMEOUT"),
        "{timeout}"
    );
    Ok(())
}

#[test]
fn check_config_lists_every_bad_key_and_exits_64() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.arg("check-config").arg(testdata("invalid.toml"));
    let out = run(cmd)?;
    assert_eq!(out.code, Some(EXIT_INVALID_CONFIG), "{out:?}");
    let listed: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("  - ")?.split(':').next())
        .collect();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort_unstable();
    let mut expected = INVALID_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(listed_sorted, expected, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    Ok(())
}

#[test]
fn serve_refuses_an_invalid_config_with_status_64() -> anyhow::Result<()> {
    let mut cmd = command();
    // No --listen: it would override the file's bad `listen` (and nothing is bound).
    cmd.args(["serve", "--config"]);
    cmd.arg(testdata("invalid.toml"));
    let out = run(cmd)?;
    assert_eq!(out.code, Some(EXIT_INVALID_CONFIG), "{out:?}");
    assert!(!out.stdout.contains("listening on"), "{}", out.stdout);
    for key in INVALID_KEYS {
        assert!(
            out.stderr.contains(&format!("  - {key}:")),
            "{key} in {}",
            out.stderr
        );
    }
    Ok(())
}

#[test]
fn serve_reports_bad_flags_and_variables_together() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.args([
        "serve",
        "--listen",
        "nowhere",
        "--set",
        "engine.ping_timeout=0",
    ]);
    cmd.env("SWITCHBOARD_ENGINE__PING_INTERVL", "5s");
    let out = run(cmd)?;
    assert_eq!(out.code, Some(EXIT_INVALID_CONFIG), "{out:?}");
    assert!(out.stderr.contains("listen: `nowhere`"), "{}", out.stderr);
    assert!(out.stderr.contains("(flag --listen)"), "{}", out.stderr);
    assert!(
        out.stderr.contains("(flag --set engine.ping_timeout)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("engine.ping_intervl: unknown key, did you mean `ping_interval`? (env SWITCHBOARD_ENGINE__PING_INTERVL)"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[test]
fn check_config_of_a_missing_file_exits_64() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.arg("check-config").arg(testdata("no-such-file.toml"));
    let out = run(cmd)?;
    assert_eq!(out.code, Some(EXIT_INVALID_CONFIG), "{out:?}");
    assert!(out.stderr.contains("cannot read"), "{}", out.stderr);
    Ok(())
}

#[test]
fn check_config_points_at_syntax_errors() -> anyhow::Result<()> {
    let mut cmd = command();
    cmd.arg("check-config").arg(testdata("syntax_error.toml"));
    let out = run(cmd)?;
    assert_eq!(out.code, Some(EXIT_INVALID_CONFIG), "{out:?}");
    assert!(
        out.stderr.contains("is not valid TOML: line 2, column"),
        "{}",
        out.stderr
    );
    Ok(())
}

#[test]
fn the_example_config_is_valid() -> anyhow::Result<()> {
    let example = testdata("../../../switchboard.example.toml");
    let mut cmd = command();
    cmd.arg("check-config").arg(example);
    let out = run(cmd)?;
    assert_eq!(out.code, Some(0), "{out:?}");
    Ok(())
}

/// A command line clap cannot read is a bad configuration too: exit 64 with clap's
/// message (it was clap's 2); `--help` and `--version` still exit 0.
#[test]
fn a_command_line_clap_cannot_read_exits_64() -> anyhow::Result<()> {
    for args in [
        &["serve", "--lissten", "127.0.0.1:0"][..],
        &["serve", "--log-level"][..],
        &["no-such-command"][..],
    ] {
        let mut cmd = command();
        cmd.args(args);
        let out = run(cmd)?;
        assert_eq!(
            out.code,
            Some(EXIT_INVALID_CONFIG),
            "{args:?}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("error:"), "{args:?}: {}", out.stderr);
    }
    for args in [
        &["--help"][..],
        &["--version"][..],
        &["serve", "--help"][..],
    ] {
        let mut cmd = command();
        cmd.args(args);
        let out = run(cmd)?;
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    Ok(())
}
