//! `[[namespaces.events]]` (what each client event does) and `[namespaces.rate_limit]`
//! (how many events a socket may send).

use std::collections::HashSet;

use switchboard_auth::policy::RoomPattern;
use switchboard_protocol::socketio::is_reserved_event;
use switchboard_settings::{Errors, Section};

use super::Context;

const EVENT_KEYS: &[&str] = &["name", "action", "include_sender"];
const RATE_KEYS: &[&str] = &["events_per_second", "burst", "disconnect_after"];

/// Refusals in a row (without the bucket refilling in between) after which a socket is
/// disconnected: a client still sending after ten `rate limited` answers is not reading
/// them, so it is buggy or hostile, while an honest burst rarely overshoots ten times.
pub(crate) const DEFAULT_DISCONNECT_AFTER: u32 = 10;

/// What client events do in a namespace.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Events {
    /// The plain form: events are accepted and have no effect (no acknowledgement).
    Ignored,
    /// The first rule whose name matches decides; events no rule matches are denied.
    Rules(Vec<EventRule>),
}

/// What one event name (or pattern) does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EventRule {
    /// The name, or a pattern with `*` (a name without `*` matches only itself).
    pub(crate) pattern: RoomPattern,
    /// What happens.
    pub(crate) action: EventAction,
}

impl EventRule {
    /// The name or pattern as written.
    pub(crate) fn name(&self) -> &str {
        self.pattern.as_str()
    }
}

/// What happens to a client event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventAction {
    /// Broadcast to the room named by the first argument, which the sender must be in.
    Relay {
        /// Whether the sender receives its own event too.
        include_sender: bool,
    },
    /// Send to the backend hook; its reply becomes the acknowledgement.
    Forward,
    /// Refuse (`{"error":"event not allowed"}`).
    Deny,
}

impl EventAction {
    /// The action as written in the config.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventAction::Relay { .. } => "relay",
            EventAction::Forward => "forward",
            EventAction::Deny => "deny",
        }
    }
}

/// A token bucket per socket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EventRateLimit {
    /// Tokens added per second: the sustained event rate.
    pub(crate) events_per_second: f64,
    /// Bucket size: how many events may arrive at once after a quiet spell.
    pub(crate) burst: u32,
    /// Refusals before the socket is disconnected with reason `rate limited`; `0`
    /// never disconnects.
    pub(crate) disconnect_after: u32,
}

/// Reads `[[namespaces.events]]` of the entry `s`: no table means every event is
/// denied.
pub(crate) fn parse_events(s: Section<'_>, context: Context, problems: &mut Errors) -> Events {
    let mut rules = Vec::new();
    let mut seen = HashSet::new();
    let key = s.key("events");
    for (i, table) in s.tables("events", problems) {
        let path = format!("{key}[{i}]");
        let Some(rule) = event(Section::new(&path, table), context, problems) else {
            continue;
        };
        if !seen.insert(rule.name().to_owned()) {
            let message = format!("`{}` already has a rule", rule.name());
            problems.invalid(format!("{path}.name"), message);
        }
        rules.push(rule);
    }
    Events::Rules(rules)
}

fn event(s: Section<'_>, context: Context, problems: &mut Errors) -> Option<EventRule> {
    s.only(EVENT_KEYS, problems);
    let name = s.non_empty_string("name", problems);
    if name.is_none() && s.get("name").is_none() {
        problems.invalid(s.key("name"), "is required (an event name or pattern)");
    }
    let pattern = name.as_deref().and_then(|name| {
        let parsed = match is_reserved_event(name) {
            true => Err(format!("`{name}` is reserved by Socket.IO")),
            false => RoomPattern::parse(name).map_err(|e| format!("`{name}`: {e}")),
        };
        parsed.map_err(|m| problems.invalid(s.key("name"), m)).ok()
    });
    let action = action(s, context, problems);
    Some(EventRule {
        pattern: pattern?,
        action: action?,
    })
}

fn action(s: Section<'_>, context: Context, problems: &mut Errors) -> Option<EventAction> {
    let include_sender = s.bool("include_sender", problems);
    let written = s.string("action", problems);
    let action = match written.as_deref() {
        Some("relay") => EventAction::Relay {
            include_sender: include_sender.unwrap_or(false),
        },
        Some("forward") => EventAction::Forward,
        Some("deny") => EventAction::Deny,
        Some(other) => {
            let message = format!("unknown action `{other}` (expected relay, forward or deny)");
            problems.invalid(s.key("action"), message);
            return None;
        }
        None if s.get("action").is_none() => {
            problems.invalid(s.key("action"), "is required (relay, forward or deny)");
            return None;
        }
        None => return None,
    };
    if include_sender.is_some() && !matches!(action, EventAction::Relay { .. }) {
        problems.invalid(
            s.key("include_sender"),
            "applies to action = \"relay\" only",
        );
    }
    if action == EventAction::Forward && !context.has_hook {
        problems.invalid(
            s.key("action"),
            "\"forward\" needs a backend: set [hooks.webhook]",
        );
    }
    Some(action)
}

/// The event names the rules handle themselves (refresh, join, leave) must differ from
/// each other and from every event rule's name.
pub(crate) fn check_reserved(
    s: Section<'_>,
    events: &Events,
    reserved: &[(String, &'static str)],
    problems: &mut Errors,
) {
    for (i, (name, key)) in reserved.iter().enumerate() {
        if let Some((_, first)) = reserved[..i].iter().find(|(n, _)| n == name) {
            let message = format!("`{name}` is already {first}");
            problems.invalid(s.key(key), message);
        }
        if is_reserved_event(name) {
            problems.invalid(s.key(key), format!("`{name}` is reserved by Socket.IO"));
        }
    }
    let Events::Rules(rules) = events else { return };
    for (i, rule) in rules.iter().enumerate() {
        if let Some((_, key)) = reserved.iter().find(|(n, _)| n == rule.name()) {
            let message = format!("`{}` is handled by {key}", rule.name());
            problems.invalid(format!("{}[{i}].name", s.key("events")), message);
        }
    }
}

/// Reads `[namespaces.rate_limit]`.
pub(crate) fn parse_rate_limit(s: Section<'_>, problems: &mut Errors) -> Option<EventRateLimit> {
    s.only(RATE_KEYS, problems);
    let rate = s.read("events_per_second", problems, |v| match v {
        toml::Value::Integer(n) if *n > 0 => Ok(*n as f64),
        toml::Value::Float(f) if f.is_finite() && *f > 0.0 => Ok(*f),
        _ => Err("must be a number greater than 0".to_owned()),
    });
    if s.get("events_per_second").is_none() {
        problems.invalid(s.key("events_per_second"), "is required (e.g. 20)");
    }
    let small = |key: &str, n: u64, problems: &mut Errors| {
        u32::try_from(n)
            .map_err(|_| problems.invalid(s.key(key), format!("{n} is too large")))
            .ok()
    };
    let burst = match s.count("burst", problems) {
        Some(0) => {
            problems.invalid(s.key("burst"), "must be at least 1");
            None
        }
        Some(n) => small("burst", n, problems),
        // One second's worth of events.
        None => rate.map(|r| r.ceil().clamp(1.0, f64::from(u32::MAX)) as u32),
    };
    let disconnect_after = match s.count("disconnect_after", problems) {
        Some(n) => small("disconnect_after", n, problems),
        None => Some(DEFAULT_DISCONNECT_AFTER),
    };
    Some(EventRateLimit {
        events_per_second: rate?,
        burst: burst?,
        disconnect_after: disconnect_after?,
    })
}
