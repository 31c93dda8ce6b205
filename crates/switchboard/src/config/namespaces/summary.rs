//! `namespaces` as `check-config` prints it: the plain list when no rule is set, else
//! one inline table per entry with everything but secrets.

use toml::Value;
use toml::map::Map;

use super::{AllowedRoom, EventAction, Events, NamespaceRules, RoomRules, Target};

/// The `namespaces` value, in TOML syntax.
pub(crate) fn render(rules: &[NamespaceRules]) -> String {
    let plain = rules
        .iter()
        .all(|r| *r == NamespaceRules::open(r.target.as_str()));
    if plain {
        let names = rules.iter().map(|r| r.target.as_str().into()).collect();
        return Value::Array(names).to_string();
    }
    let entries: Vec<String> = rules.iter().map(entry).collect();
    format!("[{}]", entries.join(", "))
}

/// An inline table with its keys in the order given (TOML maps sort them, which would
/// bury the namespace's name among its rules).
fn inline(pairs: Vec<(&str, Value)>) -> String {
    let pairs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", pairs.join(", "))
}

fn entry(rule: &NamespaceRules) -> String {
    let mut pairs = match &rule.target {
        Target::Name(name) => vec![("name", name.as_str().into())],
        Target::Pattern(p) => vec![("pattern", p.as_str().into())],
    };
    if let Some(auth) = &rule.auth {
        let mut a = Map::new();
        a.insert("type".into(), "jwt".into());
        a.insert("key".into(), auth.settings.key.config_key().into());
        let sources = auth.settings.sources.iter().map(|s| s.to_string().into());
        a.insert("token_sources".into(), Value::Array(sources.collect()));
        if let Some(refresh) = &auth.refresh_event {
            a.insert("refresh_event".into(), refresh.as_str().into());
        }
        if auth.max_sockets_per_user > 0 {
            let max = i64::try_from(auth.max_sockets_per_user).unwrap_or(i64::MAX);
            a.insert("max_sockets_per_user".into(), max.into());
        }
        pairs.push(("auth", Value::Table(a)));
    }
    if rule.rooms != RoomRules::default() {
        pairs.push(("rooms", rooms(&rule.rooms)));
    }
    if let Events::Rules(list) = &rule.events {
        let events = list.iter().map(|e| {
            let mut m = Map::new();
            m.insert("name".into(), e.name().into());
            m.insert("action".into(), e.action.as_str().into());
            if let EventAction::Relay {
                include_sender: true,
            } = e.action
            {
                m.insert("include_sender".into(), true.into());
            }
            Value::Table(m)
        });
        pairs.push(("events", Value::Array(events.collect())));
    }
    if let Some(limit) = &rule.rate_limit {
        let mut m = Map::new();
        m.insert("events_per_second".into(), limit.events_per_second.into());
        m.insert("burst".into(), i64::from(limit.burst).into());
        let after = i64::from(limit.disconnect_after);
        m.insert("disconnect_after".into(), after.into());
        pairs.push(("rate_limit", Value::Table(m)));
    }
    if let Some(sse) = rule.sse {
        pairs.push(("sse", sse.into()));
    }
    inline(pairs)
}

fn rooms(r: &RoomRules) -> Value {
    let mut m = Map::new();
    let auto = r.auto_join.iter().map(|t| t.as_str().into());
    m.insert("auto_join".into(), Value::Array(auto.collect()));
    let allow = r.allow.iter().map(|a| match a {
        AllowedRoom::Pattern(p) => p.as_str().into(),
        AllowedRoom::Template(t) => t.as_str().into(),
    });
    m.insert("allow".into(), Value::Array(allow.collect()));
    let optional = [
        ("allow_from_claim", &r.allow_from_claim),
        ("join_event", &r.join_event),
        ("leave_event", &r.leave_event),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            m.insert(key.into(), value.as_str().into());
        }
    }
    let max = i64::try_from(r.max_per_socket).unwrap_or(i64::MAX);
    m.insert("max_per_socket".into(), max.into());
    Value::Table(m)
}
