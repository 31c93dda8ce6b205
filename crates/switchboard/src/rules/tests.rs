//! Policy decisions without sockets: where each event goes, which rooms a client may
//! join or leave, and which rooms it is put in at connect.

use serde_json::{Value, json};
use switchboard_auth::jwt::Claims;

use super::events::{Route, route};
use super::reply::Refusal;
use super::rooms::{MAX_ROOM_LEN, after_refresh, auto_join, check_join, check_leave, room_arg};
use crate::config::{EventAction, NamespaceRules, RoomRules};

/// The rules of one `[[namespaces]]` entry written in TOML (without the header).
fn rules(body: &str) -> NamespaceRules {
    let text = format!("[[namespaces]]\nname = \"/\"\n{body}");
    match crate::config::from_text(&text) {
        Ok(config) => config.namespaces.into_iter().next().expect("one entry"),
        Err(errors) => panic!("invalid rules: {errors}"),
    }
}

fn claims(value: Value) -> Claims {
    match value {
        Value::Object(map) => Claims::from(map),
        _ => Claims::default(),
    }
}

const ROOMS: &str = r#"
[namespaces.auth]
secret = "0123456789abcdef0123456789abcdef"
[namespaces.rooms]
auto_join = ["user:{sub}", "org:{org}", "lobby"]
allow = ["chat:*", "dm:{sub}:*"]
max_per_socket = 3
"#;

fn room_rules(extra: &str) -> RoomRules {
    rules(&format!("{ROOMS}{extra}")).rooms
}

#[test]
fn control_events_come_first_then_the_first_matching_rule() {
    let r = rules(
        r#"
        [namespaces.auth]
        secret = "0123456789abcdef0123456789abcdef"
        refresh_event = "auth:refresh"
        [namespaces.rooms]
        allow = ["chat:*"]
        [[namespaces.events]]
        name = "order:cancel"
        action = "deny"
        [[namespaces.events]]
        name = "order:*"
        action = "forward"
        [[namespaces.events]]
        name = "message"
        action = "relay"
        [hooks.webhook]
        url = "http://127.0.0.1:9/"
        secret = "webhook-secret"
        "#,
    );
    assert_eq!(route(&r, "auth:refresh"), Route::Refresh);
    assert_eq!(route(&r, "join"), Route::Join);
    assert_eq!(route(&r, "leave"), Route::Leave);
    assert_eq!(route(&r, "order:cancel"), Route::Action(EventAction::Deny));
    assert_eq!(
        route(&r, "order:create"),
        Route::Action(EventAction::Forward)
    );
    assert_eq!(
        route(&r, "message"),
        Route::Action(EventAction::Relay {
            include_sender: false
        })
    );
    assert_eq!(route(&r, "messages"), Route::Action(EventAction::Deny));
    assert_eq!(route(&r, "anything"), Route::Action(EventAction::Deny));
}

#[test]
fn without_rooms_or_auth_join_and_refresh_are_ordinary_events() {
    let r = rules("[[namespaces.events]]\nname = \"*\"\naction = \"relay\"\n");
    let relay = Route::Action(EventAction::Relay {
        include_sender: false,
    });
    assert_eq!(route(&r, "join"), relay);
    assert_eq!(route(&r, "auth:refresh"), relay);
}

#[test]
fn joins_follow_patterns_templates_and_the_room_bound() {
    let rules = room_rules("");
    let alice = claims(json!({"sub": "alice"}));
    let c = Some(&alice);
    assert_eq!(check_join(&rules, "chat:general", c, 0), Ok(()));
    assert_eq!(check_join(&rules, "dm:alice:bob", c, 0), Ok(()));
    assert_eq!(
        check_join(&rules, "dm:bob:alice", c, 0),
        Err(Refusal::RoomNotAllowed)
    );
    assert_eq!(
        check_join(&rules, "admin", c, 0),
        Err(Refusal::RoomNotAllowed)
    );
    assert_eq!(
        check_join(&rules, "chat:general", c, 3),
        Err(Refusal::TooManyRooms)
    );
    // A claim never widens a rule: `sub = "*"` renders no pattern at all.
    let star = claims(json!({"sub": "*"}));
    assert_eq!(
        check_join(&rules, "dm:bob:x", Some(&star), 0),
        Err(Refusal::RoomNotAllowed)
    );
}

#[test]
fn rooms_that_name_sockets_or_are_too_long_are_refused() {
    let rules = room_rules("");
    let socket_like = "chat:abcdefghijklmnop";
    assert_eq!(socket_like.len(), 21);
    assert_eq!(check_join(&rules, socket_like, None, 0), Ok(()));
    let anyone = rules_allowing_everything();
    assert_eq!(
        check_join(&anyone, "AAAAAAAAAAAAAAAAAAAA", None, 0),
        Err(Refusal::RoomNotAllowed),
        "20 url-safe characters name a socket's own room"
    );
    let long = format!("chat:{}", "x".repeat(MAX_ROOM_LEN));
    assert_eq!(
        check_join(&rules, &long, None, 0),
        Err(Refusal::RoomNotAllowed)
    );
}

fn rules_allowing_everything() -> RoomRules {
    rules("[namespaces.rooms]\nallow = [\"*\"]\n").rooms
}

#[test]
fn a_claim_can_list_the_rooms_alone_or_on_top_of_patterns() {
    let both = room_rules("allow_from_claim = \"rooms\"\n");
    let token = claims(json!({"sub": "a", "rooms": ["chat:1", "chat:team-*"]}));
    let t = Some(&token);
    assert_eq!(check_join(&both, "chat:1", t, 0), Ok(()));
    assert_eq!(check_join(&both, "chat:team-red", t, 0), Ok(()));
    assert_eq!(
        check_join(&both, "chat:2", t, 0),
        Err(Refusal::RoomNotAllowed)
    );
    assert_eq!(
        check_join(&both, "chat:1", None, 0),
        Err(Refusal::RoomNotAllowed)
    );
    let alone = rules(
        "[namespaces.auth]\nsecret = \"0123456789abcdef0123456789abcdef\"\n[namespaces.rooms]\nallow_from_claim = \"rooms\"\n",
    )
    .rooms;
    let one = claims(json!({"rooms": "game:7"}));
    assert_eq!(check_join(&alone, "game:7", Some(&one), 0), Ok(()));
    assert_eq!(
        check_join(&alone, "game:8", Some(&one), 0),
        Err(Refusal::RoomNotAllowed)
    );
}

#[test]
fn only_rooms_a_client_could_join_can_be_left() {
    let rules = room_rules("");
    let alice = claims(json!({"sub": "alice"}));
    assert_eq!(check_leave(&rules, "chat:general", Some(&alice)), Ok(()));
    assert_eq!(
        check_leave(&rules, "user:alice", Some(&alice)),
        Err(Refusal::RoomNotAllowed),
        "auto-joined rooms stay joined"
    );
}

#[test]
fn auto_join_renders_templates_and_skips_missing_claims() {
    let rules = room_rules("");
    let alice = claims(json!({"sub": "alice"}));
    assert_eq!(
        auto_join(&rules, Some(&alice)),
        ["user:alice".to_owned(), "lobby".to_owned()]
    );
    let full = claims(json!({"sub": 42, "org": "acme"}));
    assert_eq!(
        auto_join(&rules, Some(&full)),
        ["user:42", "org:acme", "lobby"].map(String::from)
    );
    assert_eq!(auto_join(&rules, None), ["lobby".to_owned()]);
}

#[test]
fn the_room_argument_must_be_a_non_empty_string() {
    assert_eq!(room_arg(&[json!("chat:1"), json!("hi")]), Ok("chat:1"));
    for bad in [
        vec![],
        vec![json!("")],
        vec![json!(1)],
        vec![json!({"room": "x"})],
    ] {
        assert_eq!(room_arg(&bad), Err(Refusal::RoomRequired), "{bad:?}");
    }
}

/// A refresh moves the rooms with the claims: the old claims' `auto_join` rooms the
/// new ones do not render are left and theirs joined; a room the old claims let the
/// client join and the new ones do not is left; a room no claim ever gave (a
/// backend's), and rooms still allowed, stay.
#[test]
fn a_refresh_moves_the_rooms_with_the_claims() {
    let r = room_rules("allow_from_claim = \"rooms\"\n");
    let old = claims(json!({"sub": "alice", "org": "acme", "rooms": ["chat:a", "chat:b"]}));
    let new = claims(json!({"sub": "alice", "org": "globex", "rooms": ["chat:a"]}));
    let current: Vec<String> = [
        "SID",
        "user:alice",
        "org:acme",
        "lobby",
        "chat:a",
        "chat:b",
        "backend:x",
    ]
    .map(String::from)
    .to_vec();
    let (leave, join) = after_refresh(&r, &current, "SID", Some(&old), &new);
    assert_eq!(leave, ["org:acme", "chat:b"]);
    assert_eq!(join, ["org:globex"]);
    // The same claims again: nothing moves.
    let (leave, join) = after_refresh(&r, &current, "SID", Some(&old), &old);
    assert!(leave.is_empty() && join.is_empty(), "{leave:?} {join:?}");
}
