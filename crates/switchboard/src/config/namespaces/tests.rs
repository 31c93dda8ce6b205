//! Reading `namespaces` and `hooks`: every key of the fixtures, every mistake reported
//! under its key path at once, the plain form, and secrets kept out of output.

use std::path::PathBuf;

use switchboard_auth::jwt::KeySource;
use switchboard_auth::token::TokenSource;

use crate::config::error::ConfigError;
use crate::config::sources::Sources;
use crate::config::{
    AllowedRoom, Config, ConfigErrors, EventAction, Events, NamespaceRules, Target, from_text, load,
};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn from_file(name: &str) -> Result<Config, ConfigErrors> {
    let sources = Sources {
        file: Some(testdata(name)),
        ..Sources::default()
    };
    load(&sources).map(|loaded| loaded.config)
}

fn ok(result: Result<Config, ConfigErrors>) -> Config {
    result.unwrap_or_else(|errors| panic!("expected a valid config, got {errors}"))
}

/// The sorted keys of every error.
fn error_keys(result: Result<Config, ConfigErrors>) -> Vec<String> {
    let errors = match result {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors,
    };
    let mut keys: Vec<String> = errors.keys().into_iter().map(str::to_owned).collect();
    keys.sort();
    keys
}

#[test]
fn the_rules_fixture_sets_every_key() {
    let c = ok(from_file("rules.toml"));
    let [chat, tenants] = c.namespaces.as_slice() else {
        panic!("two entries expected: {:?}", c.namespaces);
    };
    assert_eq!(chat.target, Target::Name("/chat".into()));
    let auth = chat.auth.as_ref().expect("auth");
    assert!(matches!(auth.settings.key, KeySource::Secret(_)));
    assert_eq!(
        auth.settings.sources,
        [
            TokenSource::ConnectAuth {
                field: "token".into()
            },
            TokenSource::BearerHeader,
            TokenSource::Cookie {
                name: "session".into()
            },
        ]
    );
    assert_eq!(auth.refresh_event.as_deref(), Some("auth:refresh"));
    let rooms = &chat.rooms;
    let auto: Vec<&str> = rooms.auto_join.iter().map(|t| t.as_str()).collect();
    assert_eq!(auto, ["user:{sub}", "lobby"]);
    assert!(matches!(&rooms.allow[0], AllowedRoom::Pattern(p) if p.as_str() == "chat:*"));
    assert!(matches!(&rooms.allow[1], AllowedRoom::Template(t) if t.as_str() == "dm:{sub}:*"));
    assert_eq!(rooms.allow_from_claim.as_deref(), Some("rooms"));
    assert_eq!(rooms.join_event.as_deref(), Some("room:join"));
    assert_eq!(rooms.leave_event.as_deref(), Some("room:leave"));
    assert_eq!(rooms.max_per_socket, 50);
    let Events::Rules(events) = &chat.events else {
        panic!("rules expected");
    };
    let events: Vec<(&str, EventAction)> = events.iter().map(|e| (e.name(), e.action)).collect();
    assert_eq!(
        events,
        [
            (
                "message",
                EventAction::Relay {
                    include_sender: true
                }
            ),
            ("order:*", EventAction::Forward),
            ("admin:*", EventAction::Deny),
        ]
    );
    let limit = chat.rate_limit.expect("rate limit");
    assert_eq!(
        (limit.events_per_second, limit.burst, limit.disconnect_after),
        (20.0, 40, 3)
    );
    assert_eq!(tenants.target.as_str(), "/tenant-*");
    assert!(matches!(tenants.target, Target::Pattern(_)));
    assert_eq!(tenants.events, Events::Rules(Vec::new()), "deny by default");
    let webhook = c.hooks.webhook.as_ref().expect("webhook");
    assert_eq!(webhook.url, "http://127.0.0.1:9000/hooks");
}

#[test]
fn every_mistake_is_reported_under_its_key_at_once() {
    let keys = error_keys(from_file("invalid_rules.toml"));
    let mut expected = vec![
        "namespaces[0].name",
        "namespaces[0].colour",
        "namespaces[0].auth.algorithms",
        "namespaces[0].auth.refresh_event",
        "namespaces[0].rooms.auto_join",
        "namespaces[0].rooms.max_per_socket",
        "namespaces[0].rooms.join_event",
        "namespaces[0].events[0].name",
        "namespaces[0].events[1].action",
        "namespaces[0].events[2].action",
        "namespaces[0].events[2].include_sender",
        "namespaces[0].rate_limit.events_per_second",
        "namespaces[0].rate_limit.burst",
        "namespaces[1]",
        "namespaces[2].pattern",
        "namespaces[3]",
        "namespaces[3].rooms.allow_from_claim",
        "hooks.retries",
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[test]
fn errors_carry_the_file_as_origin_and_unknown_keys_a_hint() {
    let Err(errors) = from_file("invalid_rules.toml") else {
        panic!("expected errors");
    };
    let hint = errors.0.iter().find_map(|e| match e {
        ConfigError::UnknownKey { key, hint, origin } if key == "hooks.retries" => {
            Some((hint.clone(), origin.to_string()))
        }
        _ => None,
    });
    let (hint, origin) = hint.expect("hooks.retries reported as unknown");
    assert_eq!(hint, None);
    assert!(origin.contains("invalid_rules.toml"), "{origin}");
    let keys = error_keys(from_text(
        "[[namespaces]]\nname = \"/\"\n[namespaces.rooms]\nalow = [\"a\"]\n",
    ));
    assert_eq!(keys, ["namespaces[0].rooms.alow"]);
    let Err(errors) = from_text("[[namespaces]]\nname = \"/\"\n[namespaces.rooms]\nalow = 1\n")
    else {
        panic!("expected errors");
    };
    assert!(
        matches!(&errors.0[0], ConfigError::UnknownKey { hint: Some(h), .. } if h == "allow"),
        "{errors}"
    );
}

/// Auto-joined rooms count towards `max_per_socket`: more of them than it allows is a
/// configuration error (a socket would start past its bound, and its stored session
/// would never be resumed); as many is fine.
#[test]
fn auto_join_may_not_list_more_rooms_than_max_per_socket() {
    let rooms = |max: u32| {
        format!(
            "[[namespaces]]\nname = \"/\"\n[namespaces.rooms]\n\
             auto_join = [\"lobby\", \"news\", \"status\"]\nmax_per_socket = {max}\n"
        )
    };
    assert_eq!(
        error_keys(from_text(&rooms(2))),
        ["namespaces[0].rooms.auto_join"]
    );
    ok(from_text(&rooms(3)));
}

#[test]
fn the_plain_form_still_works_and_cannot_be_mixed() {
    let names = |c: &Config| -> Vec<String> {
        c.namespaces
            .iter()
            .map(|n| n.target.as_str().to_owned())
            .collect()
    };
    let c = ok(from_text("namespaces = [\"/\", \"/chat\"]"));
    assert_eq!(names(&c), ["/", "/chat"]);
    assert_eq!(c.namespaces[1], NamespaceRules::open("/chat"));
    assert_eq!(c.namespaces[1].events, Events::Ignored);
    let c = ok(from_text("namespaces = \"/, /orders\""));
    assert_eq!(names(&c), ["/", "/orders"]);
    for bad in [
        "namespaces = [\"/\", { name = \"/chat\" }]",
        "namespaces = []",
        "namespaces = 3",
        "namespaces = [\"/\", \"/\"]",
    ] {
        assert_eq!(error_keys(from_text(bad)), ["namespaces"], "{bad}");
    }
}

#[test]
fn names_and_patterns_are_configured_once() {
    let text = "[[namespaces]]\nname = \"/a\"\n[[namespaces]]\nname = \"/a\"\n\
                [[namespaces]]\npattern = \"/t-*\"\n[[namespaces]]\npattern = \"/t-*\"\n";
    assert_eq!(
        error_keys(from_text(text)),
        ["namespaces[1].name", "namespaces[3].pattern"]
    );
}

#[test]
fn events_the_rules_handle_cannot_have_rules_of_their_own() {
    let text = r#"
        [[namespaces]]
        name = "/"
        [namespaces.auth]
        secret = "0123456789abcdef0123456789abcdef"
        refresh_event = "join"
        [namespaces.rooms]
        allow = ["chat:*"]
        [[namespaces.events]]
        name = "leave"
        action = "relay"
    "#;
    assert_eq!(
        error_keys(from_text(text)),
        [
            "namespaces[0].events[0].name",
            "namespaces[0].rooms.join_event"
        ]
    );
}

#[test]
fn rooms_default_their_events_only_when_something_may_be_joined() {
    let c = ok(from_text(
        "[[namespaces]]\nname = \"/\"\n[namespaces.rooms]\nallow = [\"chat:*\"]\n",
    ));
    let rooms = &c.namespaces[0].rooms;
    assert_eq!(rooms.join_event.as_deref(), Some("join"));
    assert_eq!(rooms.leave_event.as_deref(), Some("leave"));
    assert_eq!(rooms.max_per_socket, 100);
    let c = ok(from_text(
        "[[namespaces]]\nname = \"/\"\n[namespaces.rooms]\nauto_join = [\"lobby\"]\n",
    ));
    assert_eq!(c.namespaces[0].rooms.join_event, None);
    let claims = "[[namespaces]]\nname = \"/\"\n[namespaces.rooms]\nallow = [\"u:{sub}\"]\n";
    assert_eq!(error_keys(from_text(claims)), ["namespaces[0].rooms.allow"]);
}

#[test]
fn rate_limits_default_the_burst_to_one_second() {
    let c = ok(from_text(
        "[[namespaces]]\nname = \"/\"\n[namespaces.rate_limit]\nevents_per_second = 2.5\n",
    ));
    let limit = c.namespaces[0].rate_limit.expect("rate limit");
    assert_eq!((limit.burst, limit.disconnect_after), (3, 10));
    let missing = "[[namespaces]]\nname = \"/\"\n[namespaces.rate_limit]\nburst = 3\n";
    assert_eq!(
        error_keys(from_text(missing)),
        ["namespaces[0].rate_limit.events_per_second"]
    );
}

#[test]
fn the_webhook_is_read_by_the_hooks_crate_and_overridable_from_the_environment() {
    let keys = error_keys(from_text("[hooks.webhook]\nurl = \"ftp://x\"\n"));
    assert!(
        keys.iter().all(|k| k.starts_with("hooks.webhook.")),
        "{keys:?}"
    );
    assert!(keys.len() >= 2, "bad url and missing secret: {keys:?}");
    let sources = Sources {
        file: Some(testdata("rules.toml")),
        env: vec![(
            "SWITCHBOARD_HOOKS__WEBHOOK__URL".into(),
            "http://127.0.0.1:1234/x".into(),
        )],
        ..Sources::default()
    };
    let c = ok(load(&sources).map(|l| l.config));
    assert_eq!(
        c.hooks.webhook.map(|w| w.url).as_deref(),
        Some("http://127.0.0.1:1234/x")
    );
}

#[test]
fn secrets_stay_out_of_debug_output_and_the_summary() {
    let c = ok(from_file("rules.toml"));
    let debug = format!("{c:?}");
    let summary = crate::config::summary::entries(&c);
    let summary: String = summary
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    for secret in [
        "chat-secret-for-tests-only-32-bytes-long",
        "webhook-secret-for-tests",
    ] {
        assert!(!debug.contains(secret), "{debug}");
        assert!(!summary.contains(secret), "{summary}");
    }
    let line = summary
        .lines()
        .find(|l| l.starts_with("namespaces = "))
        .unwrap_or_default();
    let parsed: Result<toml::Table, _> = toml::from_str(line);
    assert!(parsed.is_ok(), "{line}");
    assert!(line.contains(r#"action = "forward""#), "{line}");
    assert!(summary.contains(r#"hooks.webhook = "http://127.0.0.1:9000/hooks""#));
}

#[test]
fn sse_is_served_when_enabled_globally_or_by_one_namespace() {
    let off = ok(from_text("namespaces = [\"/\"]"));
    assert_eq!(off.socketio.engine.sse, None);
    let global = ok(from_text("namespaces = [\"/\"]\n[sse]\nenabled = true\n"));
    assert_eq!(
        global.socketio.engine.sse.map(|s| s.path),
        Some("/sse".to_owned())
    );
    let one = ok(from_text(
        "[[namespaces]]\nname = \"/\"\n[[namespaces]]\nname = \"/feed\"\nsse = true\n[sse]\npath = \"/events\"\n",
    ));
    assert_eq!(one.namespaces[0].sse, None);
    assert_eq!(one.namespaces[1].sse, Some(true));
    assert_eq!(
        one.socketio.engine.sse.map(|s| s.path),
        Some("/events".to_owned())
    );
    let none = ok(from_text(
        "[[namespaces]]\nname = \"/\"\nsse = false\n[sse]\nenabled = true\n",
    ));
    assert_eq!(none.socketio.engine.sse, None);
}

#[test]
fn sse_settings_are_checked() {
    let keys = error_keys(from_text(
        "namespaces = [\"/\"]\n[sse]\nenabled = true\npath = \"/socket.io/sse\"\nheartbeat = \"0s\"\nretry = \"soon\"\nauth_params = [\"pid\"]\nbogus = 1\n",
    ));
    assert_eq!(
        keys,
        [
            "sse.auth_params",
            "sse.bogus",
            "sse.heartbeat",
            "sse.path",
            "sse.retry"
        ]
    );
    for path in ["/api/sse", "/metrics", "sse", "/a b"] {
        let text = format!("namespaces = [\"/\"]\n[sse]\npath = \"{path}\"\n");
        assert_eq!(error_keys(from_text(&text)), ["sse.path"], "{path}");
    }
    let keys = error_keys(from_text("[[namespaces]]\nname = \"/\"\nsse = \"yes\"\n"));
    assert_eq!(keys, ["namespaces[0].sse"]);
}

/// The entries that were read stand beside entries with problems, so the checks that
/// look at namespaces report in the same run: before, one bad entry left the default
/// `["/"]` in place, and a cookie token source under `cors "*"` or the Admin UI's
/// namespace taken came out only once the other mistake was fixed.
#[test]
fn namespace_checks_run_on_the_entries_read_beside_bad_ones() {
    const COOKIE_AUTH: &str = r#"
        [namespaces.auth]
        secret = "a-secret-for-tests-only-32-bytes-long!"
        token_sources = ["cookie:sid"]
    "#;
    // A typo'd key in another entry's table.
    let text = format!(
        "[[namespaces]]\nname = \"/\"\n{COOKIE_AUTH}\n\
         [[namespaces]]\nname = \"/x\"\n[namespaces.rooms]\nalow = [\"a\"]\n"
    );
    assert_eq!(
        error_keys(from_text(&text)),
        [
            "namespaces[0].auth.token_sources",
            "namespaces[1].rooms.alow"
        ]
    );
    // In the same entry's other table, and after an entry that could not be read at
    // all: the key names the entry as written.
    let text = format!(
        "[[namespaces]]\nname = \"chat\"\n\
         [[namespaces]]\nname = \"/\"\n{COOKIE_AUTH}\n[namespaces.rooms]\nalow = [\"a\"]\n"
    );
    assert_eq!(
        error_keys(from_text(&text)),
        [
            "namespaces[0].name",
            "namespaces[1].auth.token_sources",
            "namespaces[1].rooms.alow"
        ]
    );
    // The Admin UI's namespace, taken by an entry beside a bad one.
    let admin = "[admin]\nenabled = true\nauth = false\n";
    let text = format!(
        "{admin}[[namespaces]]\nname = \"/admin\"\n[[namespaces]]\nname = \"/x\"\ncolour = 1\n"
    );
    assert_eq!(
        error_keys(from_text(&text)),
        ["admin.namespace", "namespaces[1].colour"]
    );
    // The plain form: the good names stand beside a bad one.
    let text = format!("namespaces = [\"/admin\", \"nope\"]\n{admin}");
    assert_eq!(
        error_keys(from_text(&text)),
        ["admin.namespace", "namespaces"]
    );
}
