//! `[cluster]` (several nodes over Redis) and `[recovery]` (connection state
//! recovery): their raw shapes, checks and summary lines. The typed settings are the
//! cluster crate's [`ClusterConfig`] and the engine's [`RecoveryConfig`].

use std::path::PathBuf;
use std::time::Duration;

use switchboard_cluster::{AdapterKind, ClusterConfig, ClusterSecret, SubscriptionMode};
use switchboard_engine::sio::RecoveryConfig;
use switchboard_settings::duration::{self, HumanDuration};

use super::Config;
use super::check::{self, Checked};
use super::raw::{Count, Field, Unknown};
use super::validate::Validator;

/// Longest `node_name`: a label for logs and metrics, not a document.
const MAX_NODE_NAME_LEN: usize = 64;

/// `[cluster]` as the binary uses it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ClusterSettings {
    /// The adapter and its Redis settings.
    pub(crate) cluster: ClusterConfig,
    /// A label for this node in logs and metrics; the node's uid when unset.
    pub(crate) node_name: Option<String>,
    /// `host:port` at which the other nodes reach this one, to relay WebSocket
    /// upgrades of its sessions; the listen address when unset and specific.
    pub(crate) advertise_address: Option<String>,
}

/// `[cluster]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawCluster {
    pub(crate) adapter: Option<Field<String>>,
    pub(crate) redis_url: Option<Field<String>>,
    pub(crate) redis_ca_file: Option<Field<String>>,
    pub(crate) secret: Option<Field<String>>,
    pub(crate) node_name: Option<Field<String>>,
    pub(crate) advertise_address: Option<Field<String>>,
    pub(crate) key_prefix: Option<Field<String>>,
    pub(crate) stream_name: Option<Field<String>>,
    pub(crate) stream_max_len: Option<Field<Count>>,
    pub(crate) session_key_prefix: Option<Field<String>>,
    pub(crate) request_timeout: Option<Field<HumanDuration>>,
    pub(crate) replicas_to_ack: Option<Field<Count>>,
    pub(crate) subscription_mode: Option<Field<String>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[recovery]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawRecovery {
    pub(crate) enabled: Option<Field<bool>>,
    pub(crate) max_disconnection_duration: Option<Field<HumanDuration>>,
    pub(crate) max_buffered_packets: Option<Field<Count>>,
    pub(crate) max_buffered_bytes: Option<Field<Count>>,
    pub(crate) max_sessions: Option<Field<Count>>,
    pub(crate) max_bytes: Option<Field<Count>>,
    pub(crate) max_total_bytes: Option<Field<Count>>,
    pub(crate) max_replay_bytes: Option<Field<Count>>,
    pub(crate) skip_middlewares: Option<Field<bool>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// The keys of `[cluster]`, for [`super::raw::SECTIONS`].
pub(crate) const CLUSTER_KEYS: &[&str] = &[
    "adapter",
    "redis_url",
    "redis_ca_file",
    "secret",
    "node_name",
    "advertise_address",
    "key_prefix",
    "stream_name",
    "stream_max_len",
    "session_key_prefix",
    "request_timeout",
    "replicas_to_ack",
    "subscription_mode",
];
/// The keys of `[recovery]`, for [`super::raw::SECTIONS`].
pub(crate) const RECOVERY_KEYS: &[&str] = &[
    "enabled",
    "max_disconnection_duration",
    "max_buffered_packets",
    "max_buffered_bytes",
    "max_sessions",
    "max_bytes",
    "max_total_bytes",
    "max_replay_bytes",
    "skip_middlewares",
];

impl Validator<'_> {
    /// Reads `[cluster]` into `c.cluster`.
    pub(super) fn cluster(&mut self, raw: RawCluster, c: &mut Config) {
        self.unknown("cluster", raw.unknown);
        let s = &mut c.cluster;
        let k = &mut s.cluster;
        self.read(&mut k.adapter, "cluster.adapter", raw.adapter, adapter);
        self.read(
            &mut k.redis_url,
            "cluster.redis_url",
            raw.redis_url,
            redis_url,
        );
        self.read(
            &mut k.redis_ca_file,
            "cluster.redis_ca_file",
            raw.redis_ca_file,
            ca_file,
        );
        // A secret written but refused is reported once, as a bad value.
        let secret_written = raw.secret.is_some();
        self.read(&mut k.secret, "cluster.secret", raw.secret, secret);
        self.read(
            &mut s.node_name,
            "cluster.node_name",
            raw.node_name,
            node_name,
        );
        self.read(
            &mut s.advertise_address,
            "cluster.advertise_address",
            raw.advertise_address,
            advertise_address,
        );
        let k = &mut s.cluster;
        let name = |key: &'static str| move |text: String| redis_name(key, text);
        self.read(
            &mut k.key_prefix,
            "cluster.key_prefix",
            raw.key_prefix,
            name("key_prefix"),
        );
        self.read(
            &mut k.stream_name,
            "cluster.stream_name",
            raw.stream_name,
            name("stream_name"),
        );
        self.read(
            &mut k.stream_max_len,
            "cluster.stream_max_len",
            raw.stream_max_len,
            check::positive_count,
        );
        self.read(
            &mut k.session_key_prefix,
            "cluster.session_key_prefix",
            raw.session_key_prefix,
            name("session_key_prefix"),
        );
        self.read(
            &mut k.request_timeout,
            "cluster.request_timeout",
            raw.request_timeout,
            check::positive_duration,
        );
        self.read(
            &mut k.replicas_to_ack,
            "cluster.replicas_to_ack",
            raw.replicas_to_ack,
            replicas_to_ack,
        );
        self.read(
            &mut k.subscription_mode,
            "cluster.subscription_mode",
            raw.subscription_mode,
            |text: String| text.parse::<SubscriptionMode>(),
        );
        self.cluster_trust(&c.cluster.cluster, secret_written);
    }

    /// What the Redis adapters need together: the secret that signs forwarded
    /// polling requests, and a TLS URL for a CA file to mean anything.
    fn cluster_trust(&mut self, k: &ClusterConfig, secret_written: bool) {
        if k.adapter != AdapterKind::Memory && !secret_written {
            self.invalid(
                "cluster.secret",
                format!(
                    "required with adapter = \"{}\": every node signs the polling requests \
                     it forwards with it (at least {} bytes, the same on every node; e.g. \
                     `openssl rand -hex 32` in SWITCHBOARD_CLUSTER__SECRET)",
                    k.adapter.as_str(),
                    ClusterSecret::MIN_LEN
                ),
            );
        }
        if k.redis_ca_file.is_some() && !switchboard_cluster::is_tls_url(&k.redis_url) {
            self.invalid(
                "cluster.redis_ca_file",
                "is only used with a TLS URL in cluster.redis_url (`rediss://…`, `rediss+cluster://…`, \
                 `rediss+sentinel://…`, or a Sentinel URL with `sentinel_tls=true`)"
                    .to_owned(),
            );
        }
    }

    /// Reads `[recovery]` into `c.socketio.recovery` (`None` unless enabled).
    pub(super) fn recovery(&mut self, raw: RawRecovery, c: &mut Config) {
        self.unknown("recovery", raw.unknown);
        let mut enabled = false;
        let mut r = RecoveryConfig::default();
        self.read(&mut enabled, "recovery.enabled", raw.enabled, Ok);
        self.read(
            &mut r.max_disconnection_duration,
            "recovery.max_disconnection_duration",
            raw.max_disconnection_duration,
            check::positive_duration,
        );
        self.read(
            &mut r.max_buffered_packets,
            "recovery.max_buffered_packets",
            raw.max_buffered_packets,
            check::positive_count,
        );
        self.read(
            &mut r.max_buffered_bytes,
            "recovery.max_buffered_bytes",
            raw.max_buffered_bytes,
            check::positive_count,
        );
        self.read(
            &mut r.max_sessions,
            "recovery.max_sessions",
            raw.max_sessions,
            check::positive_count,
        );
        self.read(
            &mut r.max_sessions_bytes,
            "recovery.max_bytes",
            raw.max_bytes,
            check::positive_count,
        );
        self.read(
            &mut r.max_total_bytes,
            "recovery.max_total_bytes",
            raw.max_total_bytes,
            check::positive_count,
        );
        self.read(
            &mut r.max_replay_bytes,
            "recovery.max_replay_bytes",
            raw.max_replay_bytes,
            check::positive_count,
        );
        self.read(
            &mut r.skip_middlewares,
            "recovery.skip_middlewares",
            raw.skip_middlewares,
            Ok,
        );
        c.socketio.recovery = enabled.then_some(r);
    }
}

fn adapter(text: String) -> Checked<AdapterKind> {
    text.parse()
}

fn redis_url(text: String) -> Checked<String> {
    switchboard_cluster::check_redis_url(&text)?;
    Ok(text)
}

/// A readable PEM file of CA certificates.
fn ca_file(text: String) -> Checked<Option<PathBuf>> {
    let path = PathBuf::from(text);
    switchboard_cluster::check_ca_file(&path)?;
    Ok(Some(path))
}

/// At least [`ClusterSecret::MIN_LEN`] bytes.
fn secret(text: String) -> Checked<Option<ClusterSecret>> {
    ClusterSecret::new(&text).map(Some)
}

/// A printable label of at most [`MAX_NODE_NAME_LEN`] characters.
fn node_name(text: String) -> Checked<Option<String>> {
    if text.is_empty() || text.len() > MAX_NODE_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NODE_NAME_LEN} characters"));
    }
    if !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err("may only hold visible ASCII characters (no spaces)".into());
    }
    Ok(Some(text))
}

/// A replica count Redis can be asked to wait for (`WAIT`): at most 16.
fn replicas_to_ack(n: Count) -> Checked<usize> {
    match usize::try_from(n.0) {
        Ok(n) if n <= 16 => Ok(n),
        _ => Err("must be 0 to 16".into()),
    }
}

/// `host:port` other nodes can connect to.
fn advertise_address(text: String) -> Checked<Option<String>> {
    if !switchboard_engine::eio::is_relay_address(&text) {
        return Err(
            "must be `host:port` (port 1 to 65535, at most 256 visible characters), \
             e.g. \"10.0.0.7:3000\""
                .into(),
        );
    }
    Ok(Some(text))
}

/// A channel, stream or key name part: not empty, no spaces or control characters
/// (they would not match what the Node.js servers of the cluster use).
fn redis_name(key: &str, text: String) -> Checked<String> {
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "`{key}` must be non-empty, without spaces or control characters"
        ));
    }
    switchboard_cluster::check_key_name(&text)?;
    Ok(text)
}

/// The `[cluster]` and `[recovery]` lines of `check-config`.
pub(crate) fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let k = &config.cluster.cluster;
    let quote = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let d = |v: Duration| quote(&duration::format(v));
    let r = config.socketio.recovery;
    let recovery = r.unwrap_or_default();
    vec![
        ("cluster.adapter", quote(k.adapter.as_str())),
        (
            "cluster.redis_url",
            quote(&switchboard_cluster::redact_url(&k.redis_url)),
        ),
        (
            "cluster.redis_ca_file",
            k.redis_ca_file
                .as_deref()
                .map_or_else(|| quote("(none)"), |p| quote(&p.display().to_string())),
        ),
        (
            "cluster.secret",
            quote(if k.secret.is_some() {
                "(set, not shown)"
            } else {
                "(none)"
            }),
        ),
        (
            "cluster.node_name",
            config
                .cluster
                .node_name
                .as_deref()
                .map_or_else(|| quote("(node uid)"), quote),
        ),
        (
            "cluster.advertise_address",
            config
                .cluster
                .advertise_address
                .as_deref()
                .map_or_else(|| quote("(the listen address)"), quote),
        ),
        ("cluster.key_prefix", quote(&k.key_prefix)),
        ("cluster.stream_name", quote(&k.stream_name)),
        ("cluster.stream_max_len", k.stream_max_len.to_string()),
        ("cluster.session_key_prefix", quote(&k.session_key_prefix)),
        ("cluster.request_timeout", d(k.request_timeout)),
        ("cluster.replicas_to_ack", k.replicas_to_ack.to_string()),
        (
            "cluster.subscription_mode",
            quote(k.subscription_mode.as_str()),
        ),
        ("recovery.enabled", r.is_some().to_string()),
        (
            "recovery.max_disconnection_duration",
            d(recovery.max_disconnection_duration),
        ),
        (
            "recovery.max_buffered_packets",
            recovery.max_buffered_packets.to_string(),
        ),
        (
            "recovery.max_buffered_bytes",
            recovery.max_buffered_bytes.to_string(),
        ),
        ("recovery.max_sessions", recovery.max_sessions.to_string()),
        (
            "recovery.max_bytes",
            recovery.max_sessions_bytes.to_string(),
        ),
        (
            "recovery.max_total_bytes",
            recovery.max_total_bytes.to_string(),
        ),
        (
            "recovery.max_replay_bytes",
            recovery.max_replay_bytes.to_string(),
        ),
        (
            "recovery.skip_middlewares",
            recovery.skip_middlewares.to_string(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_sections_know_exactly_their_keys() -> Result<(), toml::de::Error> {
        let table = |keys: &[&str]| {
            toml::Value::Table(
                keys.iter()
                    .map(|k| ((*k).to_owned(), toml::Value::Integer(1)))
                    .collect(),
            )
        };
        let cluster: RawCluster = table(CLUSTER_KEYS).try_into()?;
        assert!(cluster.unknown.is_empty(), "{:?}", cluster.unknown);
        let recovery: RawRecovery = table(RECOVERY_KEYS).try_into()?;
        assert!(recovery.unknown.is_empty(), "{:?}", recovery.unknown);
        Ok(())
    }

    #[test]
    fn values_are_checked() {
        assert!(adapter("redis-streams".into()).is_ok());
        assert!(adapter("kafka".into()).is_err());
        assert!(redis_url("redis://10.0.0.5:6379/0".into()).is_ok());
        assert!(redis_url("redis://:secret@cache.internal:6380/2".into()).is_ok());
        assert!(redis_url("rediss://app:secret@cache.internal:6380/2".into()).is_ok());
        assert!(secret("x".repeat(ClusterSecret::MIN_LEN)).is_ok());
        assert!(secret("x".repeat(ClusterSecret::MIN_LEN - 1)).is_err());
        assert!(ca_file("/nonexistent/ca.pem".into()).is_err());
        assert!(redis_url("http://10.0.0.5".into()).is_err());
        assert!(redis_url("10.0.0.5:6379".into()).is_err());
        assert_eq!(node_name("eu-1a".into()), Ok(Some("eu-1a".into())));
        assert!(node_name("".into()).is_err());
        assert!(node_name("two words".into()).is_err());
        assert!(node_name("x".repeat(65)).is_err());
        assert!(redis_name("key_prefix", "socket.io".into()).is_ok());
        assert!(redis_name("key_prefix", "".into()).is_err());
    }
}
