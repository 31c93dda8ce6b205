//! `namespaces`: which namespaces accept connections and, in the `[[namespaces]]` form,
//! the rules of each — how a connection authenticates, which rooms a client may join,
//! what its events do and how fast it may send them — read with every problem reported
//! under its key path (`namespaces[0].rooms.allow`).
//!
//! - `auth`: `[namespaces.auth]`, the JWT settings (read by `switchboard-auth`), the
//!   verifier with its keys loaded, `refresh_event` and `max_sockets_per_user`;
//! - `rooms`: `[namespaces.rooms]`;
//! - `events`: `[[namespaces.events]]` and `[namespaces.rate_limit]`;
//! - `summary`: the rules as `check-config` prints them.
//!
//! The plain form `namespaces = ["/", "/chat"]` (or `"/,/chat"` from the environment)
//! still works: each name accepts anyone and its events have no effect.

mod auth;
mod events;
mod rooms;
mod summary;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use switchboard_auth::policy::RoomPattern;
use switchboard_settings::{Errors, Section, table};
use toml::Value;

use super::Config;
use super::validate::Validator;

pub(crate) use auth::AuthRules;
pub(crate) use events::{EventAction, EventRateLimit, Events};
pub(crate) use rooms::{AllowedRoom, RoomRules};
pub(crate) use summary::render as summary;

/// Every key of a `[[namespaces]]` entry.
const KEYS: &[&str] = &[
    "name",
    "pattern",
    "auth",
    "rooms",
    "events",
    "rate_limit",
    "sse",
];

/// The rules of one namespace (or of every namespace a pattern matches).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NamespaceRules {
    /// Which namespaces the rules apply to.
    pub(crate) target: Target,
    /// How a connection authenticates; `None` accepts anyone.
    pub(crate) auth: Option<AuthRules>,
    /// Rooms joined at connect and by client request.
    pub(crate) rooms: RoomRules,
    /// What client events do.
    pub(crate) events: Events,
    /// How many events a socket may send; `None` for no limit.
    pub(crate) rate_limit: Option<EventRateLimit>,
    /// Whether Server-Sent Events listeners may connect; `None` follows
    /// `sse.enabled`.
    pub(crate) sse: Option<bool>,
}

impl NamespaceRules {
    /// The plain form: a namespace that accepts anyone and ignores events.
    pub(crate) fn open(name: &str) -> Self {
        NamespaceRules {
            target: Target::Name(name.to_owned()),
            auth: None,
            rooms: RoomRules::default(),
            events: Events::Ignored,
            rate_limit: None,
            sse: None,
        }
    }
}

/// Which namespaces a rule applies to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    /// Exactly this namespace.
    Name(String),
    /// Every namespace matching the pattern (`*` matches any run of characters),
    /// created on its first connection.
    Pattern(RoomPattern),
}

impl Target {
    /// The name or pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Target::Name(name) => name,
            Target::Pattern(pattern) => pattern.as_str(),
        }
    }
}

/// What the rules may rely on from the rest of the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context {
    /// Whether `[hooks.webhook]` is set, so `forward` has somewhere to go.
    pub(crate) has_hook: bool,
}

impl Validator<'_> {
    /// Reads `hooks`, then `namespaces` (whose `forward` rules need a hook).
    pub(super) fn rules(
        &mut self,
        namespaces: Option<Value>,
        hooks: Option<Value>,
        c: &mut Config,
    ) {
        let mut problems = Errors::new();
        if let Some(hooks) = &hooks {
            c.hooks = super::hooks::parse(hooks, &mut problems);
        }
        // A webhook with bad settings still counts, so its errors are not repeated
        // as "forward needs a backend".
        let context = Context {
            has_hook: hooks.as_ref().and_then(|h| h.get("webhook")).is_some(),
        };
        // The entries that were read stand even beside entries with problems, so the
        // checks that look at namespaces (cookie token sources under `cors "*"`, the
        // Admin UI's namespace, SSE) see them, and report in the same run.
        if let Some(value) = &namespaces {
            c.namespaces = parse(value, context, &mut problems);
        }
        self.report(problems);
    }
}

/// Validates a whole configuration written as TOML text (tests of the rules).
#[cfg(test)]
pub(crate) fn from_text(text: &str) -> Result<Config, super::ConfigErrors> {
    let table = toml::from_str(text).unwrap_or_else(|e| panic!("bad test TOML: {e}"));
    let merged = super::sources::Merged {
        table,
        ..Default::default()
    };
    super::validate::validate(merged).map(|loaded| loaded.config)
}

/// Reads the `namespaces` value: a list of names, or an array of `[[namespaces]]`
/// tables. Problems go to `problems`; the names and entries that could be read are
/// returned all the same (an entry with a bad rule keeps the rest of its rules).
fn parse(value: &Value, context: Context, problems: &mut Errors) -> Vec<NamespaceRules> {
    let before = problems.len();
    let rules = match value {
        Value::Array(items) if items.iter().any(Value::is_table) => {
            entries(items, context, problems)
        }
        other => names(other, problems),
    };
    if rules.is_empty() && problems.len() == before {
        problems.invalid("namespaces", "needs at least one namespace (e.g. [\"/\"])");
    }
    rules
}

/// The plain form: a list of names.
fn names(value: &Value, problems: &mut Errors) -> Vec<NamespaceRules> {
    let names = match table::comma_list(value) {
        Ok(names) => names,
        Err(message) => {
            let hint = "a list of names, or [[namespaces]] tables";
            problems.invalid("namespaces", format!("{message} ({hint})"));
            return Vec::new();
        }
    };
    let mut messages: Vec<String> = names.iter().filter_map(|n| namespace_problem(n)).collect();
    let mut seen = HashSet::new();
    for name in &names {
        if !seen.insert(name) {
            messages.push(format!("`{name}` is listed twice"));
        }
    }
    if !messages.is_empty() {
        problems.invalid("namespaces", messages.join("; "));
    }
    let mut kept = HashSet::new();
    names
        .iter()
        .filter(|n| namespace_problem(n).is_none() && kept.insert(n.as_str()))
        .map(|n| NamespaceRules::open(n))
        .collect()
}

/// Reads `[[namespaces]]` entries; a name or pattern used twice is reported at the
/// second use.
fn entries(items: &[Value], context: Context, problems: &mut Errors) -> Vec<NamespaceRules> {
    if items.iter().any(|item| !item.is_table()) {
        problems.invalid(
            "namespaces",
            "mixes names and tables: write every namespace as a [[namespaces]] table",
        );
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(items.len());
    for (i, t) in table::tables_of("namespaces", items, problems) {
        let path = format!("namespaces[{i}]");
        let Some(rule) = entry(Section::new(&path, t), context, problems) else {
            continue;
        };
        if !seen.insert(rule.target.as_str().to_owned()) {
            let key = match rule.target {
                Target::Name(_) => "name",
                Target::Pattern(_) => "pattern",
            };
            let text = rule.target.as_str();
            problems.invalid(
                format!("{path}.{key}"),
                format!("`{text}` is configured twice"),
            );
        }
        rules.push(rule);
    }
    rules
}

/// Reads one `[[namespaces]]` entry.
fn entry(s: Section<'_>, context: Context, problems: &mut Errors) -> Option<NamespaceRules> {
    s.only(KEYS, problems);
    let target = target(s, problems);
    let auth = s
        .section("auth", problems)
        .and_then(|t| auth::parse(Section::new(&s.key("auth"), t), problems));
    let has_auth = s.get("auth").is_some();
    let rooms = match s.section("rooms", problems) {
        Some(t) => rooms::parse(Section::new(&s.key("rooms"), t), has_auth, problems),
        None => RoomRules::default(),
    };
    let events = events::parse_events(s, context, problems);
    let rate_limit = s
        .section("rate_limit", problems)
        .and_then(|t| events::parse_rate_limit(Section::new(&s.key("rate_limit"), t), problems));
    let sse = s.bool("sse", problems);
    let reserved = reserved_events(&auth, &rooms);
    events::check_reserved(s, &events, &reserved, problems);
    Some(NamespaceRules {
        target: target?,
        auth,
        rooms,
        events,
        rate_limit,
        sse,
    })
}

/// Event names the rules handle themselves, with the key that names each.
fn reserved_events(auth: &Option<AuthRules>, rooms: &RoomRules) -> Vec<(String, &'static str)> {
    let refresh = auth.as_ref().and_then(|a| a.refresh_event.clone());
    [
        (refresh, "auth.refresh_event"),
        (rooms.join_event.clone(), "rooms.join_event"),
        (rooms.leave_event.clone(), "rooms.leave_event"),
    ]
    .into_iter()
    .filter_map(|(name, key)| name.map(|n| (n, key)))
    .collect()
}

/// `name` or `pattern`, exactly one of them.
fn target(s: Section<'_>, problems: &mut Errors) -> Option<Target> {
    let name = s.string("name", problems);
    let pattern = s.string("pattern", problems);
    match (name, pattern) {
        (Some(name), None) => match namespace_problem(&name) {
            None => Some(Target::Name(name)),
            Some(message) => {
                problems.invalid(s.key("name"), message);
                None
            }
        },
        (None, Some(text)) => namespace_pattern(text)
            .map_err(|message| problems.invalid(s.key("pattern"), message))
            .ok(),
        (Some(_), Some(_)) => {
            problems.invalid(s.path(), "set `name` or `pattern`, not both");
            None
        }
        (None, None) if s.get("name").is_some() || s.get("pattern").is_some() => None,
        (None, None) => {
            problems.invalid(s.path(), "needs `name` (e.g. \"/chat\") or `pattern`");
            None
        }
    }
}

fn namespace_pattern(text: String) -> Result<Target, String> {
    if let Some(message) = namespace_problem(&text) {
        return Err(message);
    }
    if !text.contains('*') {
        return Err(format!("`{text}` has no `*`; use `name` for one namespace"));
    }
    let pattern = RoomPattern::parse(&text).map_err(|e| format!("`{text}`: {e}"))?;
    Ok(Target::Pattern(pattern))
}

/// Socket.IO ends the namespace of a packet at the first `,`, so a name cannot hold one.
fn namespace_problem(name: &str) -> Option<String> {
    if !name.starts_with('/') {
        return Some(format!("`{name}` must start with `/`"));
    }
    if name.contains(|c: char| c == ',' || c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "`{name}` must not contain `,`, spaces or control characters"
        ));
    }
    None
}
