//! The effective settings as `check-config` prints them: one `key = value` line per
//! setting, in TOML syntax, with where each value came from.

use switchboard_engine::AllowedOrigins;
use switchboard_settings::duration::format as duration;

use super::{Config, Loaded};

/// Every setting of `config` as `(dotted key, TOML value)`, in documentation order.
pub(crate) fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let sio = &config.socketio;
    let e = &sio.engine;
    let origins = match &e.cors.allowed_origins {
        AllowedOrigins::Any => quote("*"),
        AllowedOrigins::List(list) => strings(list.iter().map(String::as_str)),
    };
    let proxies: Vec<String> = e.trusted_proxies.iter().map(ToString::to_string).collect();
    let mut entries = vec![
        ("listen", quote(config.listen)),
        ("namespaces", super::namespaces::summary(&config.namespaces)),
        ("log.format", quote(config.log.format)),
        ("log.level", quote(config.log.level.as_str())),
        ("engine.path", quote(&e.path)),
        (
            "engine.transports",
            strings(e.transports.iter().map(|t| t.as_str())),
        ),
        ("engine.ping_interval", quote(duration(e.ping_interval))),
        ("engine.ping_timeout", quote(duration(e.ping_timeout))),
        ("engine.upgrade_timeout", quote(duration(e.upgrade_timeout))),
        ("engine.max_payload", e.max_payload.to_string()),
        ("engine.max_connections", e.max_connections.to_string()),
        (
            "engine.max_tcp_connections",
            e.max_tcp_connections.to_string(),
        ),
        ("engine.body_timeout", quote(duration(e.body_timeout))),
        ("engine.max_inbound_bytes", e.max_inbound_bytes.to_string()),
        (
            "engine.max_sessions_per_ip",
            e.max_sessions_per_ip.to_string(),
        ),
        (
            "engine.handshakes_per_ip_per_second",
            e.handshake_rate_per_ip.per_second.to_string(),
        ),
        (
            "engine.handshake_burst_per_ip",
            e.handshake_rate_per_ip.burst.to_string(),
        ),
        (
            "engine.trusted_proxies",
            strings(proxies.iter().map(String::as_str)),
        ),
        (
            "socketio.connect_timeout",
            quote(duration(sio.connect_timeout)),
        ),
        ("socketio.max_attachments", sio.max_attachments.to_string()),
        (
            "socketio.max_connect_auth",
            sio.max_connect_auth.to_string(),
        ),
        (
            "socketio.max_pattern_namespaces",
            sio.max_pattern_namespaces.to_string(),
        ),
        ("cors.allowed_origins", origins),
        ("cors.credentials", e.cors.credentials.to_string()),
        ("queue.max_packets", e.queue.max_packets.to_string()),
        ("queue.max_bytes", e.queue.max_bytes.to_string()),
        (
            "shutdown.drain_deadline",
            quote(duration(config.drain_deadline)),
        ),
        ("shutdown.drain_batch", config.drain_batch.to_string()),
        (
            "shutdown.drain_interval",
            quote(duration(config.drain_interval)),
        ),
    ];
    entries.extend(super::api::entries(config));
    entries.push(("hooks.webhook", super::hooks::summary(&config.hooks)));
    entries.extend(super::cluster::entries(config));
    entries.extend(super::sse::entries(config));
    entries.extend(super::diagnosis::entries(config));
    entries.extend(super::limits::entries(config));
    entries.extend(super::admin::entries(config));
    entries
}

/// Values longer than this are not aligned with the others.
const MAX_ALIGNED_VALUE: usize = 48;

/// The summary: aligned `key = value  # origin` lines.
pub(crate) fn render(loaded: &Loaded) -> String {
    let entries = entries(&loaded.config);
    let key_width = entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    // Long values (namespace rules) are not padded to: they would push every origin
    // far to the right.
    let value_width = entries
        .iter()
        .map(|(_, v)| v.len())
        .filter(|len| *len <= MAX_ALIGNED_VALUE)
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (key, value) in &entries {
        let origin = loaded.origins.of(key);
        out.push_str(&format!(
            "{key:key_width$} = {value:value_width$}  # {origin}\n"
        ));
    }
    out
}

/// A TOML string.
fn quote(value: impl ToString) -> String {
    toml::Value::String(value.to_string()).to_string()
}

/// A TOML array of strings.
fn strings<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let items: Vec<String> = items.map(quote).collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::leaf_keys;

    #[test]
    fn lists_every_known_key_once() {
        let mut listed: Vec<&str> = entries(&Config::default())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut known = leaf_keys();
        listed.sort_unstable();
        known.sort_unstable();
        assert_eq!(listed, known);
    }

    #[test]
    fn values_are_valid_toml() -> Result<(), toml::de::Error> {
        for (key, value) in entries(&Config::default()) {
            let _: toml::Table = toml::from_str(&format!("v = {value}"))?;
            assert!(!key.is_empty());
        }
        Ok(())
    }
}
