//! The configuration as written: serde types that never stop at the first mistake, so
//! validation can report every bad value and every unknown key at once.
//!
//! `#[serde(deny_unknown_fields)]` would catch typos but stops at the first one; instead
//! each section collects the keys it does not know in `unknown`, and each value is a
//! [`Field`] that keeps its own parse error.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use switchboard_settings::HumanDuration;

/// Every key each section accepts (`""` is the top level), for unknown-key hints and
/// the documentation test. A unit test keeps it in step with the structs below.
pub(crate) const SECTIONS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "listen",
            "namespaces",
            "log",
            "engine",
            "socketio",
            "cors",
            "queue",
            "shutdown",
            "api",
            "static",
            "hooks",
            "cluster",
            "recovery",
            "sse",
            "diagnosis",
            "limits",
            "admin",
        ],
    ),
    ("log", &["format", "level"]),
    (
        "engine",
        &[
            "path",
            "transports",
            "ping_interval",
            "ping_timeout",
            "upgrade_timeout",
            "max_payload",
            "max_connections",
            "max_tcp_connections",
            "body_timeout",
            "max_inbound_bytes",
            "max_sessions_per_ip",
            "handshakes_per_ip_per_second",
            "handshake_burst_per_ip",
            "trusted_proxies",
        ],
    ),
    (
        "socketio",
        &[
            "connect_timeout",
            "max_attachments",
            "max_connect_auth",
            "max_pattern_namespaces",
        ],
    ),
    ("cors", &["allowed_origins", "credentials"]),
    ("queue", &["max_packets", "max_bytes"]),
    (
        "shutdown",
        &["drain_deadline", "drain_batch", "drain_interval"],
    ),
    ("api", super::api::API_KEYS),
    ("static", super::api::STATIC_KEYS),
    ("hooks", super::hooks::KEYS),
    ("cluster", super::cluster::CLUSTER_KEYS),
    ("recovery", super::cluster::RECOVERY_KEYS),
    ("sse", super::sse::SSE_KEYS),
    ("diagnosis", super::diagnosis::DIAGNOSIS_KEYS),
    ("limits", super::limits::LIMITS_KEYS),
    ("admin", super::admin::ADMIN_KEYS),
];

/// A value as written, with the outcome of reading it as `T`. Reading it never fails,
/// so one bad value does not hide the others.
#[derive(Debug)]
pub(crate) struct Field<T>(pub(crate) Result<T, String>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        Ok(Field(
            value.try_into::<T>().map_err(|e| e.message().to_owned()),
        ))
    }
}

/// Keys a section does not know, with their values.
pub(crate) type Unknown = BTreeMap<String, toml::Value>;

/// The whole file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawConfig {
    pub(crate) listen: Option<Field<String>>,
    /// Plain names or `[[namespaces]]` tables: read by `namespaces`.
    pub(crate) namespaces: Option<toml::Value>,
    /// Read by `hooks`.
    pub(crate) hooks: Option<toml::Value>,
    pub(crate) log: Option<Field<RawLog>>,
    pub(crate) engine: Option<Field<RawEngine>>,
    pub(crate) socketio: Option<Field<RawSocketIo>>,
    pub(crate) cors: Option<Field<RawCors>>,
    pub(crate) queue: Option<Field<RawQueue>>,
    pub(crate) shutdown: Option<Field<RawShutdown>>,
    pub(crate) api: Option<Field<super::api::RawApi>>,
    #[serde(rename = "static")]
    pub(crate) statics: Option<Field<super::api::RawStatic>>,
    pub(crate) cluster: Option<Field<super::cluster::RawCluster>>,
    pub(crate) recovery: Option<Field<super::cluster::RawRecovery>>,
    pub(crate) sse: Option<Field<super::sse::RawSse>>,
    pub(crate) diagnosis: Option<Field<super::diagnosis::RawDiagnosis>>,
    pub(crate) limits: Option<Field<super::limits::RawLimits>>,
    pub(crate) admin: Option<Field<super::admin::RawAdmin>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[log]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawLog {
    pub(crate) format: Option<Field<super::LogFormat>>,
    pub(crate) level: Option<Field<String>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[engine]`: Engine.IO settings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawEngine {
    pub(crate) path: Option<Field<String>>,
    pub(crate) transports: Option<Field<StringList>>,
    pub(crate) ping_interval: Option<Field<HumanDuration>>,
    pub(crate) ping_timeout: Option<Field<HumanDuration>>,
    pub(crate) upgrade_timeout: Option<Field<HumanDuration>>,
    pub(crate) max_payload: Option<Field<Count>>,
    pub(crate) max_connections: Option<Field<Count>>,
    pub(crate) max_tcp_connections: Option<Field<Count>>,
    pub(crate) body_timeout: Option<Field<HumanDuration>>,
    pub(crate) max_inbound_bytes: Option<Field<Count>>,
    pub(crate) max_sessions_per_ip: Option<Field<Count>>,
    pub(crate) handshakes_per_ip_per_second: Option<Field<Count>>,
    pub(crate) handshake_burst_per_ip: Option<Field<Count>>,
    pub(crate) trusted_proxies: Option<Field<StringList>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[socketio]`: Socket.IO settings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawSocketIo {
    pub(crate) connect_timeout: Option<Field<HumanDuration>>,
    pub(crate) max_attachments: Option<Field<Count>>,
    pub(crate) max_connect_auth: Option<Field<Count>>,
    pub(crate) max_pattern_namespaces: Option<Field<Count>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[cors]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawCors {
    pub(crate) allowed_origins: Option<Field<StringList>>,
    pub(crate) credentials: Option<Field<bool>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[queue]`: per-connection outbound queue bounds.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawQueue {
    pub(crate) max_packets: Option<Field<Count>>,
    pub(crate) max_bytes: Option<Field<Count>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[shutdown]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawShutdown {
    pub(crate) drain_deadline: Option<Field<HumanDuration>>,
    pub(crate) drain_batch: Option<Field<Count>>,
    pub(crate) drain_interval: Option<Field<HumanDuration>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// A count or size: a non-negative integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count(pub(crate) u64);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(deserializer)? {
            toml::Value::Integer(n) if n >= 0 => Ok(Count(n.unsigned_abs())),
            other => Err(de::Error::custom(format_args!(
                "expected a non-negative integer, found {other}"
            ))),
        }
    }
}

/// A list of strings: a TOML array, or one comma-separated string (which is what an
/// environment variable can hold: `SWITCHBOARD_NAMESPACES=/,/chat`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StringList(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringListVisitor)
    }
}

struct StringListVisitor;

impl<'de> Visitor<'de> for StringListVisitor {
    type Value = StringList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings or a comma-separated string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<StringList, E> {
        let items = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        Ok(StringList(items))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<String>()? {
            items.push(item);
        }
        Ok(StringList(items))
    }
}

/// Parses a TOML document into the raw shape. Only a document that is not a table at
/// all could fail here, and TOML documents always are.
pub(crate) fn from_table(table: toml::Table) -> Result<RawConfig, String> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())
}

/// Every setting as a dotted key (`listen`, `engine.ping_interval`), from [`SECTIONS`].
#[cfg(test)]
pub(crate) fn leaf_keys() -> Vec<String> {
    let is_section = |key: &str| SECTIONS.iter().any(|(s, _)| *s == key);
    SECTIONS
        .iter()
        .flat_map(|(section, keys)| keys.iter().map(move |key| (*section, *key)))
        .filter_map(|(section, key)| match section {
            "" if is_section(key) => None,
            "" => Some(key.to_owned()),
            _ => Some(format!("{section}.{key}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with every key of [`SECTIONS`] set.
    fn every_key() -> toml::Table {
        let mut root = toml::Table::new();
        for (section, keys) in SECTIONS {
            if section.is_empty() {
                continue;
            }
            let table = keys
                .iter()
                .map(|k| ((*k).to_owned(), toml::Value::Integer(1)))
                .collect();
            root.insert((*section).to_owned(), toml::Value::Table(table));
        }
        root.insert("listen".into(), toml::Value::Integer(1));
        root.insert("namespaces".into(), toml::Value::Integer(1));
        root
    }

    #[test]
    fn sections_list_exactly_the_struct_fields() -> Result<(), String> {
        let raw = from_table(every_key())?;
        assert!(raw.unknown.is_empty(), "{:?}", raw.unknown);
        let log = raw.log.ok_or("log")?.0?;
        let engine = raw.engine.ok_or("engine")?.0?;
        let socketio = raw.socketio.ok_or("socketio")?.0?;
        let cors = raw.cors.ok_or("cors")?.0?;
        let queue = raw.queue.ok_or("queue")?.0?;
        let shutdown = raw.shutdown.ok_or("shutdown")?.0?;
        for unknown in [
            log.unknown,
            engine.unknown,
            socketio.unknown,
            cors.unknown,
            queue.unknown,
            shutdown.unknown,
        ] {
            assert!(unknown.is_empty(), "{unknown:?}");
        }
        assert!(engine.ping_interval.is_some() && queue.max_bytes.is_some());
        Ok(())
    }

    #[test]
    fn bad_values_do_not_hide_unknown_keys() -> Result<(), String> {
        let table: toml::Table = toml::from_str(
            "listen = 5\ntypo = 1\n[engine]\nping_interval = true\nping_intervl = 1\n",
        )
        .map_err(|e| e.to_string())?;
        let raw = from_table(table)?;
        assert!(raw.listen.ok_or("listen")?.0.is_err());
        assert!(raw.unknown.contains_key("typo"));
        let engine = raw.engine.ok_or("engine")?.0?;
        assert!(engine.ping_interval.ok_or("ping_interval")?.0.is_err());
        assert!(engine.unknown.contains_key("ping_intervl"));
        Ok(())
    }

    #[test]
    fn string_lists_accept_arrays_and_commas() -> Result<(), toml::de::Error> {
        let from_str: StringList = toml::Value::String(" /, /chat ,".into()).try_into()?;
        assert_eq!(from_str.0, ["/", "/chat"]);
        let array = toml::Value::Array(vec!["/".into(), "/chat".into()]);
        assert_eq!(array.try_into::<StringList>()?.0, ["/", "/chat"]);
        assert!(toml::Value::Integer(1).try_into::<StringList>().is_err());
        Ok(())
    }
}
