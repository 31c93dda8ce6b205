//! The binary's typed settings and their loading: a TOML file, `SWITCHBOARD_*`
//! environment variables and flags, merged by precedence (flags > environment > file >
//! defaults), then validated into [`Config`] with every error reported at once.
//!
//! - `sources`: reading the file, the environment and flags into one table, with the
//!   origin of each value;
//! - `raw`: the serde shape of that table, which keeps going past bad values;
//! - `validate` and `check`: raw values to typed ones, collecting every error;
//! - `error`: the error types;
//! - `summary`: the effective settings as `check-config` prints them;
//! - `api`: the `[api]` and `[static]` sections;
//! - `namespaces`: `namespaces`, plain names or `[[namespaces]]` rules;
//! - `hooks`: the `[hooks]` section;
//! - `cluster`: the `[cluster]` and `[recovery]` sections;
//! - `sse`: the `[sse]` section;
//! - `diagnosis`: the `[diagnosis]` section;
//! - `limits`: the `[limits]` section (the memory budget);
//! - `admin`: the `[admin]` section (the Socket.IO Admin UI);
//!
//! Durations, the reader of nested tables (`namespaces`, `hooks`) and the errors it
//! collects are `switchboard-settings`'s, shared with `switchboard-auth` and
//! `switchboard-hooks`.
//!
//! The engine's own settings are the engine's types ([`SocketIoConfig`]) with the
//! engine's defaults; this module adds the process-level ones.

mod admin;
mod api;
mod check;
mod cluster;
mod diagnosis;
mod error;
mod hooks;
mod limits;
mod namespaces;
mod raw;
mod sources;
mod sse;
mod summary;
mod validate;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use switchboard_engine::SocketIoConfig;
use switchboard_engine::shutdown::{DEFAULT_DRAIN_BATCH, DEFAULT_DRAIN_INTERVAL};
use tracing_subscriber::EnvFilter;

pub(crate) use admin::{AdminConfig, AdminMode};
pub(crate) use api::{ApiConfig, ApiKey, RateLimit, StaticConfig};
pub(crate) use cluster::ClusterSettings;
pub(crate) use error::ConfigErrors;
pub(crate) use hooks::HooksConfig;
pub(crate) use limits::{Limits, MemoryLimit};
#[cfg(test)]
pub(crate) use namespaces::from_text;
pub(crate) use namespaces::{
    AllowedRoom, AuthRules, EventAction, EventRateLimit, Events, NamespaceRules, RoomRules, Target,
};
pub(crate) use sources::{CONFIG_FILE_ENV, Origins, SET_FLAG, Sources};
pub(crate) use sse::SseSettings;
pub(crate) use summary::render as summary;

/// Every interface on port 3000: Socket.IO's customary port, which the official clients'
/// examples and test suites use, reachable from other hosts as a server must be.
pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 3000));
/// Long enough for every session to receive its `close` packet and for in-flight
/// polling responses to be written (normally milliseconds), short enough to fit well
/// inside Kubernetes' default 30 s termination grace period.
pub(crate) const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// `info`: start-up, shutdown and warnings, but not one line per connection (those are
/// `debug`, as ordinary peer disconnects must not flood the logs).
pub(crate) const DEFAULT_LOG_LEVEL: &str = "info";
/// Only the main namespace, as a Node server with no `io.of(...)` calls accepts.
pub(crate) const DEFAULT_NAMESPACES: &[&str] = &["/"];
/// Everything the binary needs to run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Config {
    /// Address of the one listener (engine, health and metrics).
    pub(crate) listen: SocketAddr,
    /// Log output.
    pub(crate) log: LogConfig,
    /// Engine.IO and Socket.IO settings, as the engine takes them.
    pub(crate) socketio: SocketIoConfig,
    /// Namespaces that accept connections, with their rules.
    pub(crate) namespaces: Vec<NamespaceRules>,
    /// Where lifecycle events and forwarded client events go (`[hooks]`).
    pub(crate) hooks: HooksConfig,
    /// How long shutdown waits for sessions to close before exiting anyway.
    pub(crate) drain_deadline: Duration,
    /// Sessions closed per batch while draining (the engine's default: 500, so that
    /// the reconnection wave stays under what one node takes).
    pub(crate) drain_batch: usize,
    /// Pause between two batches while draining (the engine's default: 50 ms).
    pub(crate) drain_interval: Duration,
    /// The HTTP API for backends (`[api]`).
    pub(crate) api: ApiConfig,
    /// Files served at `/` (`[static]`).
    pub(crate) statics: StaticConfig,
    /// Other nodes and how to reach them (`[cluster]`).
    pub(crate) cluster: ClusterSettings,
    /// Server-Sent Events (`[sse]`).
    pub(crate) sse: SseSettings,
    /// The memory budget of the pressure tiers (`[limits]`).
    pub(crate) limits: Limits,
    /// The Socket.IO Admin UI (`[admin]`).
    pub(crate) admin: AdminConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            log: LogConfig::default(),
            socketio: SocketIoConfig::default(),
            namespaces: DEFAULT_NAMESPACES
                .iter()
                .map(|name| NamespaceRules::open(name))
                .collect(),
            drain_deadline: DEFAULT_DRAIN_DEADLINE,
            drain_batch: DEFAULT_DRAIN_BATCH,
            drain_interval: DEFAULT_DRAIN_INTERVAL,
            hooks: HooksConfig::default(),
            api: ApiConfig::default(),
            statics: StaticConfig::default(),
            cluster: ClusterSettings::default(),
            sse: SseSettings::default(),
            limits: Limits::default(),
            admin: AdminConfig::default(),
        }
    }
}

/// Log output settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LogConfig {
    /// Line format.
    pub(crate) format: LogFormat,
    /// Which events are logged.
    pub(crate) level: LogFilter,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The levels a bare word of a log filter may be.
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Words that are meant as a level but are none: `tracing` would read each as a
/// target to log everything of, so the filter would name no level at all.
const NOT_LEVELS: [(&str, &str); 16] = [
    ("warning", "warn"),
    ("warnings", "warn"),
    ("fatal", "error"),
    ("critical", "error"),
    ("crit", "error"),
    ("err", "error"),
    ("errors", "error"),
    ("verbose", "debug"),
    ("all", "trace"),
    ("none", "off"),
    ("quiet", "off"),
    ("silent", "off"),
    ("notice", "info"),
    ("information", "info"),
    ("informational", "info"),
    ("dbg", "debug"),
];

/// A `tracing` filter directive (`info`, `warn,switchboard_engine=debug`) known to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFilter(String);

impl LogFilter {
    /// Checks `directive` with the same parser [`LogFilter::to_filter`] uses. Each
    /// comma-separated part is taken without the blanks around it: `tracing` keeps
    /// them, so `warn, info` read ` info` as a target and the filter named no level
    /// for the rest. A bare word that is not a level but is a common way of meaning
    /// one ([`NOT_LEVELS`]: `warning`, `fatal`, `verbose`, `none`, …) is refused:
    /// `tracing` reads it as a target to log everything of, so such a word parsed and
    /// silenced every line, errors included. Other bare words stay targets, as
    /// `RUST_LOG=hyper` means (a near miss such as `wran` too: `warp` is a crate's
    /// name); numbers 0 to 5 stay levels.
    pub(crate) fn parse(directive: &str) -> Result<Self, String> {
        let parts: Vec<&str> = directive.split(',').map(str::trim).collect();
        for part in &parts {
            if part.is_empty() || part.contains(['=', '[']) {
                continue;
            }
            let lower = part.to_ascii_lowercase();
            if LEVELS.contains(&lower.as_str()) {
                continue;
            }
            let meant = NOT_LEVELS
                .iter()
                .find(|(word, _)| *word == lower)
                .map(|(_, level)| *level);
            if let Some(level) = meant {
                return Err(format!(
                    "invalid log filter `{directive}`: `{part}` is not a level \
                     (trace, debug, info, warn, error, off); did you mean `{level}`? \
                     (for everything of a target of that name write `{part}=trace`)"
                ));
            }
        }
        let normalized = parts.join(",");
        EnvFilter::builder()
            .parse(&normalized)
            .map(|_| LogFilter(normalized))
            .map_err(|e| format!("invalid log filter `{directive}`: {e}"))
    }

    /// The directive as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// The filter to install.
    pub(crate) fn to_filter(&self) -> EnvFilter {
        EnvFilter::builder()
            .parse(&self.0)
            .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_LEVEL))
    }
}

impl Default for LogFilter {
    fn default() -> Self {
        LogFilter(DEFAULT_LOG_LEVEL.to_owned())
    }
}

/// A validated configuration and where each of its values came from.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    /// The settings.
    pub(crate) config: Config,
    /// Their origins, for `check-config`.
    pub(crate) origins: Origins,
}

/// Loads and validates the configuration from `sources`, reporting every problem.
pub(crate) fn load(sources: &Sources) -> Result<Loaded, ConfigErrors> {
    validate::validate(sources::merge(sources))
}

#[cfg(test)]
mod tests;
