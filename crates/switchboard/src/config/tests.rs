//! Loading from the `testdata/` fixtures, the environment and flags: which value wins,
//! and that every problem is reported with its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard_engine::AllowedOrigins;
use switchboard_protocol::engineio::TransportKind;

use super::error::ConfigError;
use super::sources::Origin;
use super::*;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn testdata(name: &str) -> PathBuf {
    manifest_dir().join("testdata").join(name)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Sources of a `testdata/` file (if any), environment variables and flags; the other
/// config modules' tests load through it too.
pub(super) fn sources(file: Option<&str>, env: &[(&str, &str)], flags: &[(&str, &str)]) -> Sources {
    Sources {
        file: file.map(testdata),
        env: pairs(env),
        flags: pairs(flags),
    }
}

/// The configured namespace names and patterns.
fn names(config: &Config) -> Vec<&str> {
    config
        .namespaces
        .iter()
        .map(|n| n.target.as_str())
        .collect()
}

fn load_ok(sources: &Sources) -> Loaded {
    match load(sources) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("expected a valid config, got {errors}"),
    }
}

fn load_err(sources: &Sources) -> ConfigErrors {
    match load(sources) {
        Ok(loaded) => panic!("expected errors, got {:?}", loaded.config),
        Err(errors) => errors,
    }
}

#[test]
fn no_sources_give_the_defaults() {
    let loaded = load_ok(&Sources::default());
    assert_eq!(loaded.config, Config::default());
    assert_eq!(loaded.config.listen, DEFAULT_LISTEN);
    assert_eq!(names(&loaded.config), ["/"]);
    assert_eq!(loaded.origins.of("listen"), Origin::Default);
    let minimal = load_ok(&sources(Some("minimal.toml"), &[], &[]));
    assert_eq!(minimal.config, Config::default());
}

#[test]
fn valid_fixture_sets_every_value() {
    let c = load_ok(&sources(Some("valid.toml"), &[], &[])).config;
    let e = &c.socketio.engine;
    assert_eq!(c.listen.to_string(), "127.0.0.1:4000");
    assert_eq!(names(&c), ["/", "/chat", "/orders"]);
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level.as_str(), "warn,switchboard_engine=debug");
    assert_eq!(e.path, "/realtime/");
    assert_eq!(
        e.transports,
        [TransportKind::Websocket, TransportKind::Polling]
    );
    assert_eq!(e.ping_interval, Duration::from_secs(30));
    assert_eq!(e.ping_timeout, Duration::from_secs(15));
    assert_eq!(e.upgrade_timeout, Duration::from_secs(90));
    assert_eq!(e.max_payload, 2_000_000);
    assert_eq!(e.max_connections, 5000);
    assert_eq!(c.socketio.connect_timeout, Duration::from_secs(5));
    assert_eq!(c.socketio.max_attachments, 8);
    let origins = ["https://app.example.com", "http://localhost:5173"].map(String::from);
    assert_eq!(
        e.cors.allowed_origins,
        AllowedOrigins::List(origins.to_vec())
    );
    assert!(e.cors.credentials);
    assert_eq!(e.queue.max_packets, 256);
    assert_eq!(e.queue.max_bytes, 4_194_304);
    assert_eq!(c.drain_deadline, Duration::from_millis(500));
    assert_eq!(c.drain_batch, 20);
    assert_eq!(c.drain_interval, Duration::from_millis(5));
    let api = &c.api;
    assert_eq!(api.keys.len(), 2);
    let listen = "127.0.0.1:4001".parse().ok();
    assert_eq!(api.listen, listen);
    assert_eq!(api.max_body_bytes, 4096);
    assert_eq!(api.body_timeout, Duration::from_secs(2));
    let limit = RateLimit {
        per_second: 0,
        burst: 10,
    };
    assert_eq!(api.rate_limit, limit);
    assert_eq!(c.statics.dir, Some(PathBuf::from("testdata/static")));
}

/// A bare word of `log.level` that looks meant as a level must be one: `tracing`
/// reads any other as a target, so `warning` parsed and silenced every log line,
/// errors included. Blanks around a part are dropped (`tracing` kept them: ` info`
/// was a target). Bare target names and numeric levels are still taken.
#[test]
fn a_log_level_typo_is_refused_not_read_as_a_target() {
    for typo in [
        "warning",
        "WARNING",
        "fatal",
        "verbose",
        "none",
        "info,warning",
    ] {
        let env = [("SWITCHBOARD_LOG__LEVEL", typo)];
        let errors = load_err(&sources(None, &env, &[]));
        assert_eq!(errors.keys(), ["log.level"], "{typo}: {errors}");
    }
    let env = [("SWITCHBOARD_LOG__LEVEL", "warning")];
    let shown = load_err(&sources(None, &env, &[])).to_string();
    assert!(shown.contains("did you mean `warn`"), "{shown}");
    for (fine, kept) in [
        ("warn", "warn"),
        ("INFO", "INFO"),
        ("off", "off"),
        ("3", "3"),
        ("hyper", "hyper"),
        ("warp", "warp"),
        ("info,tower_http", "info,tower_http"),
        (
            "warn,switchboard_engine=debug",
            "warn,switchboard_engine=debug",
        ),
        (" warn", "warn"),
        ("warn, info", "warn,info"),
        (
            "switchboard_engine=debug, info",
            "switchboard_engine=debug,info",
        ),
    ] {
        let env = [("SWITCHBOARD_LOG__LEVEL", fine)];
        assert_eq!(
            load_ok(&sources(None, &env, &[])).config.log.level.as_str(),
            kept
        );
    }
}

/// `api.listen` on the main listener's port, on an address it covers, could not be
/// bound: refused at start-up, not found by `serve` (exit 1).
#[test]
fn an_api_listener_that_overlaps_the_main_one_is_refused() {
    let with = |api: &'static str| {
        sources(
            None,
            &[
                ("SWITCHBOARD_LISTEN", "0.0.0.0:3901"),
                ("SWITCHBOARD_API__LISTEN", api),
                ("SWITCHBOARD_API__KEYS", "an-api-key-of-some-length-0123"),
            ],
            &[],
        )
    };
    let errors = load_err(&with("127.0.0.1:3901"));
    assert_eq!(errors.keys(), ["api.listen"], "{errors}");
    load_ok(&with("127.0.0.1:3902"));
}

#[test]
fn invalid_fixture_reports_every_bad_key_at_once() {
    let errors = load_err(&sources(Some("invalid.toml"), &[], &[]));
    let mut keys = errors.keys();
    keys.sort_unstable();
    let mut expected = vec![
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
    expected.sort_unstable();
    assert_eq!(keys, expected, "{errors}");
    let file = Origin::File(testdata("invalid.toml"));
    for err in &errors.0 {
        assert!(
            matches!(err, ConfigError::Invalid { origin, .. } | ConfigError::UnknownKey { origin, .. } if *origin == file),
            "{err}"
        );
    }
}

#[test]
fn unknown_keys_come_with_hints() {
    let errors = load_err(&sources(Some("invalid.toml"), &[], &[]));
    let hint = |wanted: &str| {
        errors.0.iter().find_map(|e| match e {
            ConfigError::UnknownKey { key, hint, .. } if key == wanted => Some(hint.clone()),
            _ => None,
        })
    };
    assert_eq!(hint("namespces"), Some(Some("namespaces".to_owned())));
    assert_eq!(
        hint("engine.max_conections"),
        Some(Some("max_connections".to_owned()))
    );
    assert_eq!(hint("quotas"), Some(None));
    assert_eq!(hint("limits.max"), Some(None));
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let env = [
        ("SWITCHBOARD_ENGINE__PING_INTERVAL", "1234ms"),
        ("SWITCHBOARD_LISTEN", "127.0.0.1:5000"),
        ("SWITCHBOARD_CORS__CREDENTIALS", "false"),
    ];
    let flags = [
        ("--listen", "127.0.0.1:6000"),
        ("--set", "queue.max_bytes=4000000"),
    ];
    let loaded = load_ok(&sources(Some("valid.toml"), &env, &flags));
    let c = &loaded.config;
    assert_eq!(c.socketio.engine.ping_interval, Duration::from_millis(1234));
    assert!(!c.socketio.engine.cors.credentials);
    assert_eq!(c.listen.to_string(), "127.0.0.1:6000");
    assert_eq!(c.socketio.engine.queue.max_bytes, 4_000_000);
    // Untouched values still come from the file.
    assert_eq!(c.socketio.engine.ping_timeout, Duration::from_secs(15));
    let o = &loaded.origins;
    assert_eq!(
        o.of("engine.ping_interval"),
        Origin::Env("SWITCHBOARD_ENGINE__PING_INTERVAL".into())
    );
    assert_eq!(o.of("listen"), Origin::Flag("--listen".into()));
    assert_eq!(
        o.of("queue.max_bytes"),
        Origin::Flag("--set queue.max_bytes".into())
    );
    assert_eq!(
        o.of("engine.ping_timeout"),
        Origin::File(testdata("valid.toml"))
    );
    // The file's `[engine]` leaves `body_timeout` out: it keeps its default and says so.
    assert_eq!(o.of("engine.body_timeout"), Origin::Default);
    // A section is blamed on the weightiest source of a value under it.
    assert_eq!(
        o.of("engine"),
        Origin::Env("SWITCHBOARD_ENGINE__PING_INTERVAL".into())
    );
    assert_eq!(
        o.of("cors"),
        Origin::Env("SWITCHBOARD_CORS__CREDENTIALS".into())
    );
    assert_eq!(o.of("socketio"), Origin::File(testdata("valid.toml")));
}

#[test]
fn env_values_are_checked_and_blamed_on_their_variable() {
    let env = [
        ("SWITCHBOARD_ENGINE__PING_TIMEOUT", "0"),
        ("SWITCHBOARD_ENGINE__PING_INTERVL", "5s"),
        ("SWITCHBOARD_", "x"),
    ];
    let errors = load_err(&sources(None, &env, &[]));
    assert_eq!(errors.0.len(), 3, "{errors}");
    assert!(errors.0.iter().any(|e| matches!(e,
        ConfigError::Invalid { key, origin: Origin::Env(var), .. }
            if key == "engine.ping_timeout" && var == "SWITCHBOARD_ENGINE__PING_TIMEOUT")));
    assert!(errors.0.iter().any(|e| matches!(e,
        ConfigError::UnknownKey { key, hint: Some(hint), .. }
            if key == "engine.ping_intervl" && hint == "ping_interval")));
    assert!(errors.0.iter().any(|e| matches!(e,
        ConfigError::BadOverride { source_name, .. } if source_name == "SWITCHBOARD_")));
}

#[test]
fn env_lists_are_comma_separated() {
    let env = [
        ("SWITCHBOARD_NAMESPACES", "/, /chat"),
        ("SWITCHBOARD_ENGINE__TRANSPORTS", "websocket"),
        (
            "SWITCHBOARD_CORS__ALLOWED_ORIGINS",
            "https://a.example,https://b.example",
        ),
    ];
    let c = load_ok(&sources(None, &env, &[])).config;
    assert_eq!(names(&c), ["/", "/chat"]);
    assert_eq!(c.socketio.engine.transports, [TransportKind::Websocket]);
    let expected = vec![
        "https://a.example".to_owned(),
        "https://b.example".to_owned(),
    ];
    assert_eq!(
        c.socketio.engine.cors.allowed_origins,
        AllowedOrigins::List(expected)
    );
}

#[test]
fn rust_log_sets_the_level_unless_switchboard_does() {
    let c = load_ok(&sources(None, &[("RUST_LOG", "debug")], &[])).config;
    assert_eq!(c.log.level.as_str(), "debug");
    let flags = [("--log-level", "trace")];
    let c = load_ok(&sources(None, &[("RUST_LOG", "debug")], &flags)).config;
    assert_eq!(c.log.level.as_str(), "trace");
}

#[test]
fn syntax_errors_name_the_line_and_other_sources_are_still_checked() {
    let env = [("SWITCHBOARD_LISTEN", "nowhere")];
    let errors = load_err(&sources(Some("syntax_error.toml"), &env, &[]));
    assert!(
        matches!(
            errors.0.as_slice(),
            [ConfigError::Syntax { message, .. }, ConfigError::Invalid { key, .. }]
                if message.starts_with("line 2, column") && key == "listen"
        ),
        "{errors}"
    );
}

#[test]
fn a_missing_file_is_an_error() {
    let errors = load_err(&sources(Some("does-not-exist.toml"), &[], &[]));
    assert!(matches!(errors.0.as_slice(), [ConfigError::Read { .. }]));
}

#[test]
fn summary_lists_values_with_their_origin() {
    let env = [("SWITCHBOARD_ENGINE__PING_INTERVAL", "1234")];
    let summary = super::summary(&load_ok(&sources(Some("minimal.toml"), &env, &[])));
    let listen = summary
        .lines()
        .find(|l| l.starts_with("listen "))
        .unwrap_or_default();
    assert!(listen.contains(r#"= "0.0.0.0:3000""#), "{summary}");
    let line = summary
        .lines()
        .find(|l| l.starts_with("engine.ping_interval "))
        .unwrap_or_default();
    assert!(line.contains(r#""1234ms""#), "{line}");
    assert!(
        line.ends_with("# env SWITCHBOARD_ENGINE__PING_INTERVAL"),
        "{line}"
    );
}

#[test]
fn example_file_is_valid_and_documentation_covers_every_key() {
    let root = manifest_dir().join("../..");
    let example = root.join("switchboard.example.toml");
    let loaded = load_ok(&Sources {
        file: Some(example.clone()),
        ..Sources::default()
    });
    let example_text = std::fs::read_to_string(&example).unwrap_or_default();
    let docs = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap_or_default();
    for key in raw::leaf_keys() {
        let leaf = key.rsplit('.').next().unwrap_or(&key);
        assert!(example_text.contains(leaf), "example lacks {key}");
        assert!(docs.contains(&format!("`{key}`")), "docs lack `{key}`");
        let env = format!("SWITCHBOARD_{}", key.to_uppercase().replace('.', "__"));
        assert!(docs.contains(&env), "docs lack {env}");
    }
    // The example documents the defaults: loading it changes nothing.
    assert_eq!(loaded.config, Config::default());
}

#[test]
fn drain_pacing_is_read_and_checked() {
    let env = [
        ("SWITCHBOARD_SHUTDOWN__DRAIN_BATCH", "25"),
        ("SWITCHBOARD_SHUTDOWN__DRAIN_INTERVAL", "0"),
    ];
    let c = load_ok(&sources(None, &env, &[])).config;
    assert_eq!((c.drain_batch, c.drain_interval), (25, Duration::ZERO));
    let defaults = Config::default();
    assert_eq!(defaults.drain_batch, 500);
    assert_eq!(defaults.drain_interval, Duration::from_millis(50));

    let flags = [
        ("--set", "shutdown.drain_batch=0"),
        ("--set", "shutdown.drain_interval=25h"),
    ];
    let errors = load_err(&sources(None, &[], &flags));
    let mut keys = errors.keys();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["shutdown.drain_batch", "shutdown.drain_interval"],
        "{errors}"
    );
}

#[test]
fn the_tcp_cap_follows_max_connections_unless_set_and_the_body_timeout_is_read() {
    let defaults = Config::default().socketio.engine;
    assert_eq!(
        defaults.max_tcp_connections,
        defaults.max_connections + 1000
    );
    assert_eq!(defaults.body_timeout, Duration::from_secs(10));
    assert_eq!(defaults.max_inbound_bytes, 256 << 20);
    let env = [("SWITCHBOARD_ENGINE__MAX_CONNECTIONS", "50")];
    let e = load_ok(&sources(None, &env, &[])).config.socketio.engine;
    assert_eq!(e.max_tcp_connections, 1050);
    let env = [
        ("SWITCHBOARD_ENGINE__MAX_CONNECTIONS", "50"),
        ("SWITCHBOARD_ENGINE__MAX_TCP_CONNECTIONS", "60"),
        ("SWITCHBOARD_ENGINE__BODY_TIMEOUT", "3s"),
        ("SWITCHBOARD_ENGINE__MAX_INBOUND_BYTES", "1048576"),
    ];
    let e = load_ok(&sources(None, &env, &[])).config.socketio.engine;
    assert_eq!(
        (e.max_tcp_connections, e.body_timeout, e.max_inbound_bytes),
        (60, Duration::from_secs(3), 1 << 20)
    );
    let flags = [
        ("--set", "engine.max_tcp_connections=0"),
        ("--set", "engine.body_timeout=0s"),
        ("--set", "engine.max_inbound_bytes=0"),
    ];
    let errors = load_err(&sources(None, &[], &flags));
    let mut keys = errors.keys();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "engine.body_timeout",
            "engine.max_inbound_bytes",
            "engine.max_tcp_connections"
        ]
    );
    // Sessions per address and trusted proxies: read, listed in errors.
    let env = [
        ("SWITCHBOARD_ENGINE__MAX_SESSIONS_PER_IP", "50"),
        (
            "SWITCHBOARD_ENGINE__TRUSTED_PROXIES",
            r#"["10.0.0.0/8", "fd00::/8", "192.0.2.1"]"#,
        ),
    ];
    let e = load_ok(&sources(None, &env, &[])).config.socketio.engine;
    assert_eq!(e.max_sessions_per_ip, 50);
    let nets: Vec<String> = e.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(nets, ["10.0.0.0/8", "fd00::/8", "192.0.2.1/32"]);
    assert_eq!(defaults.max_sessions_per_ip, 0);
    assert!(defaults.trusted_proxies.is_empty());
    let flags = [("--set", r#"engine.trusted_proxies=["10.0.0.0/33", "nope"]"#)];
    let errors = load_err(&sources(None, &[], &flags));
    assert_eq!(errors.keys(), ["engine.trusted_proxies"], "{errors}");
    assert!(errors.to_string().contains("\"nope\""), "{errors}");
    // It must take one message of the largest size.
    let env = [
        ("SWITCHBOARD_ENGINE__MAX_PAYLOAD", "2000000"),
        ("SWITCHBOARD_ENGINE__MAX_INBOUND_BYTES", "1000000"),
    ];
    let errors = load_err(&sources(None, &env, &[]));
    assert_eq!(errors.keys(), ["engine.max_inbound_bytes"], "{errors}");
    assert!(
        errors.to_string().contains("engine.max_payload (2000000)"),
        "{errors}"
    );
}

#[test]
fn the_handshake_rate_per_address_is_read_with_a_burst_of_ten_seconds_by_default() {
    let defaults = Config::default().socketio.engine.handshake_rate_per_ip;
    assert_eq!(defaults.per_second, 0, "off by default");
    let env = [("SWITCHBOARD_ENGINE__HANDSHAKES_PER_IP_PER_SECOND", "5")];
    let rate = load_ok(&sources(None, &env, &[]))
        .config
        .socketio
        .engine
        .handshake_rate_per_ip;
    assert_eq!((rate.per_second, rate.burst), (5, 50));
    let flags = [
        ("--set", "engine.handshakes_per_ip_per_second=2"),
        ("--set", "engine.handshake_burst_per_ip=3"),
    ];
    let rate = load_ok(&sources(None, &[], &flags))
        .config
        .socketio
        .engine
        .handshake_rate_per_ip;
    assert_eq!((rate.per_second, rate.burst), (2, 3));
    // Every bad key is listed.
    let flags = [
        ("--set", "engine.handshakes_per_ip_per_second=-1"),
        ("--set", "engine.handshake_burst_per_ip=0"),
    ];
    let errors = load_err(&sources(None, &[], &flags));
    assert_eq!(
        errors.keys(),
        [
            "engine.handshakes_per_ip_per_second",
            "engine.handshake_burst_per_ip"
        ],
        "{errors}"
    );
    let env = [(
        "SWITCHBOARD_ENGINE__HANDSHAKES_PER_IP_PER_SECOND",
        "5000000000",
    )];
    let errors = load_err(&sources(None, &env, &[]));
    assert!(errors.to_string().contains("too large"), "{errors}");
}

#[test]
fn credentials_or_cookie_tokens_need_an_origin_list() {
    let flags = [("--set", "cors.credentials=true")];
    let errors = load_err(&sources(None, &[], &flags));
    assert_eq!(errors.keys(), ["cors.credentials"], "{errors}");
    // A list that was written but refused is that list's error alone: the user did
    // not leave it at "*".
    let flags = [
        ("--set", "cors.credentials=true"),
        ("--set", "cors.allowed_origins=https://App.example.com"),
    ];
    let errors = load_err(&sources(None, &[], &flags));
    assert_eq!(errors.keys(), ["cors.allowed_origins"], "{errors}");

    let cookie_rules = r#"
        [[namespaces]]
        name = "/"
        [namespaces.auth]
        type = "jwt"
        secret = "a-secret-for-tests-only-32-bytes-long!"
        token_sources = ["auth:token", "cookie:session"]
    "#;
    let errors = from_text(cookie_rules).expect_err("cookie tokens with any origin");
    assert_eq!(
        errors.keys(),
        ["namespaces[0].auth.token_sources"],
        "{errors}"
    );
    let listed = format!(
        "{cookie_rules}\n[cors]\nallowed_origins = [\"https://a.example\"]\ncredentials = true\n"
    );
    assert!(
        from_text(&listed).is_ok(),
        "an explicit list makes both fine"
    );
}

#[test]
fn the_connect_auth_bound_is_read_and_must_be_positive() {
    assert_eq!(
        Config::default().socketio.max_connect_auth,
        switchboard_engine::config::DEFAULT_MAX_CONNECT_AUTH
    );
    let env = [("SWITCHBOARD_SOCKETIO__MAX_CONNECT_AUTH", "32768")];
    let loaded = load_ok(&sources(None, &env, &[]));
    assert_eq!(loaded.config.socketio.max_connect_auth, 32768);
    assert_zero_is_refused("socketio.max_connect_auth", &[]);
}

#[test]
fn the_pattern_namespace_cap_is_read_and_must_be_positive() {
    assert_eq!(
        Config::default().socketio.max_pattern_namespaces,
        switchboard_engine::config::DEFAULT_MAX_PATTERN_NAMESPACES
    );
    let env = [("SWITCHBOARD_SOCKETIO__MAX_PATTERN_NAMESPACES", "50000")];
    let loaded = load_ok(&sources(None, &env, &[]));
    assert_eq!(loaded.config.socketio.max_pattern_namespaces, 50_000);
    assert_zero_is_refused("socketio.max_pattern_namespaces", &[]);
}

#[test]
fn the_recovery_budget_of_all_namespaces_is_read_and_must_be_positive() {
    let on = [("SWITCHBOARD_RECOVERY__ENABLED", "true")];
    let loaded = load_ok(&sources(None, &on, &[]));
    let recovery = loaded.config.socketio.recovery.expect("recovery on");
    assert_eq!(
        recovery.max_total_bytes,
        switchboard_engine::sio::recovery::DEFAULT_MAX_TOTAL_BYTES
    );
    let flags = [("--set", "recovery.max_total_bytes=1048576")];
    let loaded = load_ok(&sources(None, &on, &flags));
    let recovery = loaded.config.socketio.recovery.expect("recovery on");
    assert_eq!(recovery.max_total_bytes, 1 << 20);
    assert_zero_is_refused("recovery.max_total_bytes", &on);
}

/// `key` set to 0 (with `env`) is refused, with `key` alone listed.
fn assert_zero_is_refused(key: &str, env: &[(&str, &str)]) {
    let zero = format!("{key}=0");
    let flags = [("--set", zero.as_str())];
    let errors = load_err(&sources(None, env, &flags));
    assert_eq!(errors.keys(), [key], "{errors}");
}

#[test]
fn a_redis_adapter_needs_a_long_enough_secret_listed_with_other_errors() {
    for adapter in ["redis", "redis-streams"] {
        // No secret, beside another bad key: both are reported.
        let env = [
            ("SWITCHBOARD_CLUSTER__ADAPTER", adapter),
            ("SWITCHBOARD_ENGINE__PING_INTERVAL", "soon"),
        ];
        let errors = load_err(&sources(None, &env, &[]));
        let mut keys = errors.keys();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["cluster.secret", "engine.ping_interval"],
            "{adapter}"
        );
        // Too short.
        let env = [
            ("SWITCHBOARD_CLUSTER__ADAPTER", adapter),
            ("SWITCHBOARD_CLUSTER__SECRET", "short"),
        ];
        let errors = load_err(&sources(None, &env, &[]));
        assert_eq!(errors.keys(), ["cluster.secret"], "{errors}");
        assert!(!errors.to_string().contains("short\""), "{errors}");
    }
    // Memory needs none.
    let env = [("SWITCHBOARD_CLUSTER__ADAPTER", "memory")];
    assert!(
        load_ok(&sources(None, &env, &[]))
            .config
            .cluster
            .cluster
            .secret
            .is_none()
    );
}

#[test]
fn tls_urls_are_accepted_and_passwords_and_the_secret_never_shown() {
    let secret = "0123456789abcdef0123456789abcdef-cluster";
    let env = [
        ("SWITCHBOARD_CLUSTER__ADAPTER", "redis-streams"),
        (
            "SWITCHBOARD_CLUSTER__REDIS_URL",
            "rediss://app:hunter2-password@cache.internal:6380/0",
        ),
        ("SWITCHBOARD_CLUSTER__SECRET", secret),
    ];
    let loaded = load_ok(&sources(None, &env, &[]));
    let k = &loaded.config.cluster.cluster;
    assert_eq!(
        k.redis_url,
        "rediss://app:hunter2-password@cache.internal:6380/0"
    );
    assert!(k.secret.is_some());
    let summary = super::summary(&loaded);
    for hidden in ["hunter2-password", secret] {
        assert!(!summary.contains(hidden), "{summary}");
        assert!(!format!("{:?}", loaded.config).contains(hidden));
    }
    let url = summary
        .lines()
        .find(|l| l.starts_with("cluster.redis_url "))
        .unwrap_or_default();
    assert!(
        url.contains(r#""rediss://app:***@cache.internal:6380/0""#),
        "{url}"
    );
    let line = summary
        .lines()
        .find(|l| l.starts_with("cluster.secret "))
        .unwrap_or_default();
    assert!(line.contains("(set, not shown)"), "{line}");
    assert!(
        line.ends_with("# env SWITCHBOARD_CLUSTER__SECRET"),
        "{line}"
    );

    // A CA file must exist, and only means something with TLS.
    let env = [
        ("SWITCHBOARD_CLUSTER__ADAPTER", "redis"),
        ("SWITCHBOARD_CLUSTER__SECRET", secret),
        ("SWITCHBOARD_CLUSTER__REDIS_CA_FILE", "/nonexistent/ca.pem"),
    ];
    let errors = load_err(&sources(None, &env, &[]));
    assert_eq!(errors.keys(), ["cluster.redis_ca_file"], "{errors}");
}

/// A CA file has a use with a Sentinel URL when either half speaks TLS: the master
/// (`rediss+sentinel://`) or the Sentinels (`sentinel_tls=true`); with neither it is
/// refused, named.
#[test]
fn a_ca_file_goes_with_tls_to_the_master_or_the_sentinels() {
    let secret = "a-cluster-secret-of-enough-length-0123456789";
    let ca = std::env::temp_dir().join(format!("sb-ca-{}.pem", std::process::id()));
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let ca_text = ca.to_string_lossy().into_owned();
    let with = |url: &'static str| {
        sources(
            None,
            &[
                ("SWITCHBOARD_CLUSTER__ADAPTER", "redis"),
                ("SWITCHBOARD_CLUSTER__SECRET", secret),
                ("SWITCHBOARD_CLUSTER__REDIS_URL", url),
                ("SWITCHBOARD_CLUSTER__REDIS_CA_FILE", &ca_text),
            ],
            &[],
        )
    };
    load_ok(&with("redis+sentinel://s1:26379/m?sentinel_tls=true"));
    load_ok(&with("rediss+sentinel://s1:26379/m"));
    let errors = load_err(&with("redis+sentinel://s1:26379/m?sentinel_tls=false"));
    assert_eq!(errors.keys(), ["cluster.redis_ca_file"], "{errors}");
    let _ = std::fs::remove_file(&ca);
}

/// With a Redis adapter, what one node sends the others must fit in a message they
/// decode (16 MiB, less 1 MiB of envelope): a larger `engine.max_payload`,
/// `api.max_body_bytes` or `queue.max_bytes` is refused, each named; one node alone
/// (memory) takes them.
#[test]
fn a_cluster_refuses_sizes_its_nodes_would_not_decode() {
    let big = "20000000";
    let sizes = [
        ("SWITCHBOARD_ENGINE__MAX_PAYLOAD", big),
        ("SWITCHBOARD_ENGINE__MAX_INBOUND_BYTES", "300000000"),
        ("SWITCHBOARD_API__MAX_BODY_BYTES", big),
        ("SWITCHBOARD_QUEUE__MAX_BYTES", "40000000"),
    ];
    let clustered = [
        ("SWITCHBOARD_CLUSTER__ADAPTER", "redis"),
        (
            "SWITCHBOARD_CLUSTER__SECRET",
            "0123456789abcdef0123456789abcdef-cluster",
        ),
    ];
    let env: Vec<_> = sizes.iter().chain(clustered.iter()).copied().collect();
    let errors = load_err(&sources(None, &env, &[]));
    assert_eq!(
        errors.keys(),
        [
            "engine.max_payload",
            "api.max_body_bytes",
            "queue.max_bytes"
        ],
        "{errors}"
    );
    assert!(errors.to_string().contains("16777216"), "{errors}");
    load_ok(&sources(None, &sizes, &[]));
}

/// Values each a number, but not one the server can run with, are refused with the
/// rest: connection caps past what the listener's semaphore counts (which passed and
/// then panicked the accept loop), a `max_payload` below a CONNECT's size, queue
/// bounds the server's own first packets fill. A refused `max_payload` is named once,
/// not again by the checks against it.
#[test]
fn sizes_that_cannot_work_are_refused_together() {
    let env = [
        ("SWITCHBOARD_ENGINE__MAX_CONNECTIONS", "2305843009213693951"),
        (
            "SWITCHBOARD_ENGINE__MAX_TCP_CONNECTIONS",
            "9223372036854775807",
        ),
        ("SWITCHBOARD_QUEUE__MAX_BYTES", "100"),
        ("SWITCHBOARD_QUEUE__MAX_PACKETS", "1"),
    ];
    let errors = load_err(&sources(None, &env, &[]));
    let mut keys = errors.keys();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "engine.max_connections",
            "engine.max_tcp_connections",
            "queue.max_bytes",
            "queue.max_packets"
        ],
        "{errors}"
    );
    let env = [
        ("SWITCHBOARD_ENGINE__MAX_PAYLOAD", "1"),
        ("SWITCHBOARD_ENGINE__MAX_INBOUND_BYTES", "1024"),
    ];
    let errors = load_err(&sources(None, &env, &[]));
    assert_eq!(errors.keys(), ["engine.max_payload"], "{errors}");
    // Timers of every connection, or always running: 100 ms at least.
    let env = [
        ("SWITCHBOARD_ENGINE__PING_INTERVAL", "1ms"),
        ("SWITCHBOARD_ENGINE__PING_TIMEOUT", "99ms"),
        ("SWITCHBOARD_SSE__HEARTBEAT", "10ms"),
        ("SWITCHBOARD_LIMITS__MEMORY_INTERVAL", "1ms"),
    ];
    let errors = load_err(&sources(None, &env, &[]));
    let mut keys = errors.keys();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "engine.ping_interval",
            "engine.ping_timeout",
            "limits.memory_interval",
            "sse.heartbeat"
        ],
        "{errors}"
    );
    let env = [
        ("SWITCHBOARD_ENGINE__PING_INTERVAL", "100ms"),
        ("SWITCHBOARD_ENGINE__MAX_CONNECTIONS", "100000000"),
        ("SWITCHBOARD_ENGINE__MAX_PAYLOAD", "1024"),
        ("SWITCHBOARD_QUEUE__MAX_BYTES", "1048576"),
        ("SWITCHBOARD_QUEUE__MAX_PACKETS", "16"),
    ];
    let e = load_ok(&sources(None, &env, &[])).config.socketio.engine;
    assert_eq!(
        (e.max_connections, e.max_payload, e.queue.max_bytes),
        (100_000_000, 1024, 1_048_576)
    );
    // Every receiver's queue takes the largest message one sender may make: twice a
    // client's event, and an API emit.
    for (key, size, names) in [
        (
            "SWITCHBOARD_ENGINE__MAX_PAYLOAD",
            "3000000",
            "twice engine.max_payload (3000000)",
        ),
        (
            "SWITCHBOARD_API__MAX_BODY_BYTES",
            "8388608",
            "api.max_body_bytes (8388608)",
        ),
    ] {
        let errors = load_err(&sources(None, &[(key, size)], &[]));
        assert_eq!(errors.keys(), ["queue.max_bytes"], "{errors}");
        assert!(errors.to_string().contains(names), "{errors}");
    }
}

/// A pod of a Kubernetes Service named `switchboard` gets `SWITCHBOARD_PORT`,
/// `SWITCHBOARD_SERVICE_HOST` and the like (`enableServiceLinks`): they are no
/// settings, and do not stop the server from starting. Any other unknown name still
/// does.
#[test]
fn kubernetes_service_links_are_not_settings() {
    let env = [
        ("SWITCHBOARD_PORT", "tcp://10.96.0.12:3000"),
        ("SWITCHBOARD_PORT_3000_TCP", "tcp://10.96.0.12:3000"),
        ("SWITCHBOARD_PORT_3000_TCP_ADDR", "10.96.0.12"),
        ("SWITCHBOARD_PORT_3000_TCP_PORT", "3000"),
        ("SWITCHBOARD_PORT_3000_TCP_PROTO", "tcp"),
        ("SWITCHBOARD_SERVICE_HOST", "10.96.0.12"),
        ("SWITCHBOARD_SERVICE_PORT", "3000"),
        ("SWITCHBOARD_SERVICE_PORT_HTTP", "3000"),
        ("SWITCHBOARD_SERVICE_PORT_HTTP_METRICS", "9100"),
        ("SWITCHBOARD_REDIS_SERVICE_HOST", "10.96.0.13"),
        ("SWITCHBOARD_REDIS_PORT_6379_TCP_PROTO", "tcp"),
        ("SWITCHBOARD_HEADLESS_PORT", "tcp://10.96.0.14:3000"),
        ("SWITCHBOARD_LISTEN", "127.0.0.1:5000"),
    ];
    let loaded = load_ok(&sources(None, &env, &[]));
    assert_eq!(loaded.config.listen.to_string(), "127.0.0.1:5000");
    let env = [
        ("SWITCHBOARD_PORTS", "3000"),
        ("SWITCHBOARD_PORT_X_TCP", "1"),
        ("SWITCHBOARD_ENGINE__PORT", "1"),
    ];
    let errors = load_err(&sources(None, &env, &[]));
    assert_eq!(
        errors.keys(),
        ["port_x_tcp", "ports", "engine.port"],
        "{errors}"
    );
}

/// The settings docs/security.md suggests for a node that faces the internet load, and
/// turn on what the page says they do.
#[test]
fn the_internet_facing_example_of_the_security_page_is_valid() {
    let page = std::fs::read_to_string(manifest_dir().join("../../docs/security.md"))
        .expect("docs/security.md");
    let section = page
        .split_once("### A node that faces the internet")
        .expect("the section")
        .1;
    let block = section
        .split_once("```toml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a TOML block")
        .0;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let secret = dir.path().join("jwt");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").expect("written");
    let file = dir.path().join("switchboard.toml");
    let text = block.replace("/run/secrets/jwt", &secret.display().to_string());
    std::fs::write(&file, text).expect("written");
    let loaded = load_ok(&Sources {
        file: Some(file),
        env: pairs(&[("SWITCHBOARD_API__KEYS", r#"["an-api-key-of-the-backend"]"#)]),
        flags: Vec::new(),
    });
    let e = &loaded.config.socketio.engine;
    assert_eq!(e.max_sessions_per_ip, 200);
    assert_eq!(
        (
            e.handshake_rate_per_ip.per_second,
            e.handshake_rate_per_ip.burst
        ),
        (5, 50)
    );
    assert!(!e.trusted_proxies.is_empty());
    assert!(loaded.config.api.metrics);
    let auth = loaded.config.namespaces[0].auth.as_ref().expect("auth");
    assert_eq!(auth.max_sockets_per_user, 20);
    assert!(loaded.config.namespaces[0].rate_limit.is_some());
}
