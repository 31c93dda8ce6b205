//! `[namespaces.rooms]`: rooms joined at connect (templates rendered from the token's
//! claims) and rooms a client may join or leave by emitting an event.

use switchboard_auth::jwt::Claims;
use switchboard_auth::policy::{RoomPattern, RoomTemplate};
use switchboard_settings::{Errors, Section};

const KEYS: &[&str] = &[
    "auto_join",
    "allow",
    "allow_from_claim",
    "join_event",
    "leave_event",
    "max_per_socket",
];

/// The event a client emits to join a room when `join_event` is not set: the name
/// Socket.IO tutorials use, so existing clients often already send it.
pub(crate) const DEFAULT_JOIN_EVENT: &str = "join";
/// The event a client emits to leave a room when `leave_event` is not set.
pub(crate) const DEFAULT_LEAVE_EVENT: &str = "leave";
/// Most rooms one socket may be in (its own id room aside). Enough for a client in
/// every channel of a large chat workspace; bounds what one client can add to the room
/// index (DESIGN §4: bound everything).
pub(crate) const DEFAULT_MAX_ROOMS_PER_SOCKET: usize = 100;

/// Room membership rules.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RoomRules {
    /// Rooms every socket joins when it connects, rendered from its claims; a template
    /// naming a claim the token lacks is skipped.
    pub(crate) auto_join: Vec<RoomTemplate>,
    /// Rooms a client may join or leave: patterns, or patterns made from claims.
    pub(crate) allow: Vec<AllowedRoom>,
    /// A claim listing the rooms (names or patterns) the client may join.
    pub(crate) allow_from_claim: Option<String>,
    /// The event that joins a room; `None` when clients cannot join rooms.
    pub(crate) join_event: Option<String>,
    /// The event that leaves a room; `None` when clients cannot leave rooms.
    pub(crate) leave_event: Option<String>,
    /// Most rooms a socket may be in, auto-joined ones included.
    pub(crate) max_per_socket: usize,
}

impl Default for RoomRules {
    fn default() -> Self {
        RoomRules {
            auto_join: Vec::new(),
            allow: Vec::new(),
            allow_from_claim: None,
            join_event: None,
            leave_event: None,
            max_per_socket: DEFAULT_MAX_ROOMS_PER_SOCKET,
        }
    }
}

/// One entry of `allow`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AllowedRoom {
    /// A room name or a pattern with `*`.
    Pattern(RoomPattern),
    /// A pattern made from claims (`user:{sub}`, `org:{org}:*`), rendered per socket.
    /// A claim value holding `*` renders to nothing, so claims never widen a rule.
    Template(RoomTemplate),
}

/// Reads `[namespaces.rooms]`; `has_auth` says whether claims exist to render from.
pub(crate) fn parse(s: Section<'_>, has_auth: bool, problems: &mut Errors) -> RoomRules {
    s.only(KEYS, problems);
    let mut rules = RoomRules::default();
    let need_auth = |key: &str, problems: &mut Errors| {
        if !has_auth {
            problems.invalid(s.key(key), "reads claims, so it needs [namespaces.auth]");
        }
    };
    if let Some(list) = s.comma_list("auto_join", problems) {
        rules.auto_join = templates(&s.key("auto_join"), &list, problems);
        if rules.auto_join.iter().any(RoomTemplate::has_placeholders) {
            need_auth("auto_join", problems);
        }
    }
    if let Some(list) = s.comma_list("allow", problems) {
        rules.allow = templates(&s.key("allow"), &list, problems)
            .into_iter()
            .map(allowed_room)
            .collect();
        if rules
            .allow
            .iter()
            .any(|a| matches!(a, AllowedRoom::Template(_)))
        {
            need_auth("allow", problems);
        }
    }
    rules.allow_from_claim = s.non_empty_string("allow_from_claim", problems);
    if rules.allow_from_claim.is_some() {
        need_auth("allow_from_claim", problems);
    }
    if let Some(max) = s.count("max_per_socket", problems) {
        match usize::try_from(max) {
            Ok(0) | Err(_) => problems.invalid(s.key("max_per_socket"), "must be at least 1"),
            Ok(max) => rules.max_per_socket = max,
        }
    }
    // Auto-joined rooms count towards the bound: more of them than it allows would
    // leave a socket past its bound from the start, and its session, past the bound a
    // resuming node holds stored sessions to, would never be recovered.
    if rules.auto_join.len() > rules.max_per_socket {
        problems.invalid(
            s.key("auto_join"),
            format!(
                "lists {} rooms, more than max_per_socket ({})",
                rules.auto_join.len(),
                rules.max_per_socket
            ),
        );
    }
    events(s, &mut rules, problems);
    rules
}

/// `join_event` and `leave_event`: on by default once something may be joined, and an
/// error when nothing may.
fn events(s: Section<'_>, rules: &mut RoomRules, problems: &mut Errors) {
    let joinable = !rules.allow.is_empty() || rules.allow_from_claim.is_some();
    let join = s.non_empty_string("join_event", problems);
    let leave = s.non_empty_string("leave_event", problems);
    for (key, set) in [("join_event", &join), ("leave_event", &leave)] {
        if set.is_some() && !joinable {
            problems.invalid(
                s.key(key),
                "no room may be joined: set rooms.allow or rooms.allow_from_claim",
            );
        }
    }
    if !joinable {
        return;
    }
    rules.join_event = Some(join.unwrap_or_else(|| DEFAULT_JOIN_EVENT.to_owned()));
    rules.leave_event = Some(leave.unwrap_or_else(|| DEFAULT_LEAVE_EVENT.to_owned()));
    if rules.join_event == rules.leave_event {
        problems.invalid(s.key("leave_event"), "must differ from join_event");
    }
}

fn templates(key: &str, list: &[String], problems: &mut Errors) -> Vec<RoomTemplate> {
    let (ok, bad): (Vec<_>, Vec<_>) = list
        .iter()
        .map(|text| RoomTemplate::parse(text).map_err(|e| format!("`{text}`: {e}")))
        .partition(Result::is_ok);
    if !bad.is_empty() {
        let messages: Vec<String> = bad.into_iter().filter_map(Result::err).collect();
        problems.invalid(key, messages.join("; "));
    }
    ok.into_iter().filter_map(Result::ok).collect()
}

/// A template without placeholders is a plain pattern (escapes resolved).
fn allowed_room(template: RoomTemplate) -> AllowedRoom {
    if template.has_placeholders() {
        return AllowedRoom::Template(template);
    }
    let text = template.render(&Claims::default()).unwrap_or_default();
    match RoomPattern::parse(&text) {
        Ok(pattern) => AllowedRoom::Pattern(pattern),
        Err(_) => AllowedRoom::Template(template),
    }
}
