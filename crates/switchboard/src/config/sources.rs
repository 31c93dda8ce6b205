//! Where settings come from — the TOML file, `SWITCHBOARD_*` environment variables and
//! command-line flags — merged into one TOML table by precedence (flags > environment >
//! file), keeping the origin of every value for messages and `check-config`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::error::ConfigError;

/// Environment variables with this prefix are settings.
pub(crate) const ENV_PREFIX: &str = "SWITCHBOARD_";
/// Separates a section from its key in a variable name: `SWITCHBOARD_ENGINE__PING_INTERVAL`
/// is `engine.ping_interval`. Doubled because keys themselves contain `_`.
pub(crate) const ENV_SEPARATOR: &str = "__";
/// Names the config file (read by the CLI), not a setting.
pub(crate) const CONFIG_FILE_ENV: &str = "SWITCHBOARD_CONFIG";
/// The conventional `tracing` filter variable: `log.level` when `SWITCHBOARD_LOG__LEVEL`
/// is not set, so `RUST_LOG=debug switchboard serve` does what Rust users expect.
pub(crate) const RUST_LOG_ENV: &str = "RUST_LOG";
/// `--set KEY=VALUE`: any setting from the command line.
pub(crate) const SET_FLAG: &str = "--set";

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Nobody set it.
    Default,
    /// The config file.
    File(PathBuf),
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, as written (`--listen`, `--set engine.path`).
    Flag(String),
}

impl Origin {
    /// Which origin wins when two set the same value: flags over the environment over
    /// the file over the default.
    fn precedence(&self) -> u8 {
        match self {
            Origin::Default => 0,
            Origin::File(_) => 1,
            Origin::Env(_) => 2,
            Origin::Flag(_) => 3,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "file {}", path.display()),
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// The origin of every value that was set, by dotted key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins(BTreeMap<String, Origin>);

impl Origins {
    /// Where `key` came from: its own origin, else that of the nearest section that
    /// was set as a whole (`--set hooks.webhook={…}`), else — for a key that is a
    /// section itself (`hooks.webhook`) — the weightiest origin of a value under it,
    /// else [`Origin::Default`]. A section written in the file (`[engine]`) is not set
    /// as a whole: only its values are recorded, so the keys it leaves out stay
    /// `default`.
    pub(crate) fn of(&self, key: &str) -> Origin {
        let mut prefix = key;
        loop {
            if let Some(origin) = self.0.get(prefix) {
                return origin.clone();
            }
            match prefix.rsplit_once('.') {
                Some((parent, _)) => prefix = parent,
                None => break,
            }
        }
        let nested = format!("{key}.");
        self.0
            .range(nested.clone()..)
            .take_while(|(k, _)| k.starts_with(&nested))
            .map(|(_, origin)| origin)
            .max_by_key(|origin| origin.precedence())
            .cloned()
            .unwrap_or(Origin::Default)
    }

    /// Records `key` and forgets what was recorded under it (it was replaced).
    fn set(&mut self, key: &str, origin: Origin) {
        let nested = format!("{key}.");
        self.0.retain(|k, _| !k.starts_with(&nested));
        self.0.insert(key.to_owned(), origin);
    }
}

/// Everything a configuration is loaded from. Tests build one by hand; the binary fills
/// it from the command line and the process environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// The TOML file, if any.
    pub(crate) file: Option<PathBuf>,
    /// Environment variables (all of them; only `SWITCHBOARD_*` and `RUST_LOG` are read).
    pub(crate) env: Vec<(String, String)>,
    /// Flags as `(flag, value)`, e.g. `("--listen", "127.0.0.1:0")` or
    /// `("--set", "engine.ping_interval=5s")`.
    pub(crate) flags: Vec<(String, String)>,
}

/// The sources merged into one table, ready for validation.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    /// Every value, by section.
    pub(crate) table: toml::Table,
    /// Where each value came from.
    pub(crate) origins: Origins,
    /// Problems with the sources themselves (unreadable file, bad override names).
    pub(crate) errors: Vec<ConfigError>,
    /// The environment and flag values read as a number or a boolean (`1`, `1.50`,
    /// `true`), with the text they were written as, by dotted key: validation reads
    /// such a value as that text where the setting takes text (an environment variable
    /// is always a string: `SWITCHBOARD_CLUSTER__NODE_NAME=1` names node "1").
    pub(crate) as_written: BTreeMap<String, String>,
}

/// One value to set over the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Override {
    key: String,
    value: String,
    origin: Origin,
}

/// Merges `sources` by precedence: defaults < file < environment < flags.
pub(crate) fn merge(sources: &Sources) -> Merged {
    let mut merged = Merged::default();
    if let Some(path) = &sources.file {
        merged.read_file(path);
    }
    let env = env_overrides(&sources.env);
    let flags = sources.flags.iter().map(|(f, v)| flag_override(f, v));
    for over in env.into_iter().chain(flags) {
        match over {
            Ok(over) => merged.apply(over),
            Err(err) => merged.errors.push(err),
        }
    }
    merged
}

impl Merged {
    fn read_file(&mut self, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(source) => {
                let path = path.to_owned();
                return self.errors.push(ConfigError::Read { path, source });
            }
        };
        match toml::from_str::<toml::Table>(&text) {
            Ok(table) => {
                record_keys(
                    &mut self.origins,
                    "",
                    &table,
                    &Origin::File(path.to_owned()),
                );
                self.table = table;
            }
            Err(err) => self.errors.push(ConfigError::Syntax {
                path: path.to_owned(),
                message: syntax_message(&text, &err),
            }),
        }
    }

    /// Sets one dotted key, creating sections as needed.
    fn apply(&mut self, over: Override) {
        let mut segments: Vec<&str> = over.key.split('.').collect();
        let Some(leaf) = segments.pop() else { return };
        let mut table = &mut self.table;
        let mut path = String::new();
        for segment in segments {
            path = join(&path, segment);
            let entry = table
                .entry(segment.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(inner) = entry else {
                self.errors.push(ConfigError::Invalid {
                    message: format!("is not a table, so `{}` cannot be set", over.key),
                    origin: self.origins.of(&path),
                    key: path,
                });
                return;
            };
            table = inner;
        }
        let value = parse_value(&over.value);
        let nested = format!("{}.", over.key);
        self.as_written
            .retain(|k, _| *k != over.key && !k.starts_with(&nested));
        if matches!(
            value,
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)
        ) {
            self.as_written.insert(over.key.clone(), over.value.clone());
        }
        table.insert(leaf.to_owned(), value);
        self.origins.set(&over.key, over.origin);
    }
}

/// `table` with the value at each of `keys` (dotted, each in `as_written`) replaced by
/// the text it was written as.
pub(crate) fn with_text(
    table: &toml::Table,
    keys: &[&str],
    as_written: &BTreeMap<String, String>,
) -> toml::Table {
    let mut table = table.clone();
    for key in keys {
        let Some(text) = as_written.get(*key) else {
            continue;
        };
        let mut segments: Vec<&str> = key.split('.').collect();
        let Some(leaf) = segments.pop() else { continue };
        let mut inner = Some(&mut table);
        for segment in segments {
            inner = inner.and_then(|t| match t.get_mut(segment) {
                Some(toml::Value::Table(next)) => Some(next),
                _ => None,
            });
        }
        if let Some(value) = inner.and_then(|t| t.get_mut(leaf)) {
            *value = toml::Value::String(text.clone());
        }
    }
    table
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// Records `origin` for every value in `table` (arrays are single values). Sections are
/// not recorded: the keys a section leaves out keep their default, and their origin.
fn record_keys(origins: &mut Origins, prefix: &str, table: &toml::Table, origin: &Origin) {
    for (key, value) in table {
        let path = join(prefix, key);
        match value {
            toml::Value::Table(inner) => record_keys(origins, &path, inner, origin),
            _ => origins.set(&path, origin.clone()),
        }
    }
}

/// "line L, column C: message" for a TOML parse error.
fn syntax_message(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return err.message().to_owned();
    };
    let before = text.get(..span.start).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("line {line}, column {column}: {}", err.message().trim_end())
}

/// Whether `name` is one of the variables Kubernetes gives every pod for each Service
/// of its namespace (`enableServiceLinks`, on by default), for a Service whose name
/// starts with `switchboard` (`switchboard`, `switchboard-redis`, …):
/// `<SERVICE>_SERVICE_HOST`, `<SERVICE>_SERVICE_PORT[_<NAME>]`, `<SERVICE>_PORT` and
/// `<SERVICE>_PORT_<N>_<TCP|UDP|SCTP>[_ADDR|_PORT|_PROTO]`. They name no setting (no
/// top-level key holds `_`, and a section's keys follow `__`); read as settings, the
/// unknown keys stopped the server from starting in such a pod.
fn is_service_link(name: &str) -> bool {
    if !name.starts_with(ENV_PREFIX) || name.contains(ENV_SEPARATOR) {
        return false;
    }
    let parts: Vec<&str> = name.split('_').collect();
    let n = parts.len();
    let service = |i: usize| parts.get(i) == Some(&"SERVICE");
    let port = |i: usize| parts.get(i) == Some(&"PORT");
    // `…_SERVICE_HOST`, `…_SERVICE_PORT`, `…_SERVICE_PORT_<NAME>` (a port's name,
    // its `-` written `_`: `HTTP_METRICS`).
    let service_link = (1..n).any(|i| {
        service(i) && ((i + 2 == n && parts[i + 1] == "HOST") || (i + 2 <= n && port(i + 1)))
    });
    // `…_PORT`, `…_PORT_<N>_<PROTO>`, `…_PORT_<N>_<PROTO>_<ADDR|PORT|PROTO>`.
    let port_link = (1..n).any(|i| {
        port(i)
            && (i + 1 == n
                || (parts
                    .get(i + 1)
                    .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                    && parts
                        .get(i + 2)
                        .is_some_and(|p| matches!(*p, "TCP" | "UDP" | "SCTP"))
                    && (i + 3 == n
                        || (i + 4 == n && matches!(parts[i + 3], "ADDR" | "PORT" | "PROTO")))))
    });
    service_link || port_link
}

/// The settings in the environment, sorted by variable name so errors come out in a
/// stable order.
fn env_overrides(vars: &[(String, String)]) -> Vec<Result<Override, ConfigError>> {
    let mut vars: Vec<&(String, String)> = vars.iter().collect();
    vars.sort();
    let mut out: Vec<_> = vars
        .iter()
        .filter(|(name, _)| {
            name.starts_with(ENV_PREFIX) && name != CONFIG_FILE_ENV && !is_service_link(name)
        })
        .map(|(name, value)| env_override(name, value))
        .collect();
    let level_env = format!("{ENV_PREFIX}LOG{ENV_SEPARATOR}LEVEL");
    let has_level = vars.iter().any(|(name, _)| *name == level_env);
    let rust_log = vars
        .iter()
        .find(|(name, v)| name == RUST_LOG_ENV && !v.is_empty());
    if let (false, Some((name, value))) = (has_level, rust_log) {
        out.insert(
            0,
            Ok(Override {
                key: "log.level".into(),
                value: value.clone(),
                origin: Origin::Env(name.clone()),
            }),
        );
    }
    out
}

/// `SWITCHBOARD_ENGINE__PING_INTERVAL=5s` → `engine.ping_interval = "5s"`.
fn env_override(name: &str, value: &str) -> Result<Override, ConfigError> {
    let rest = &name[ENV_PREFIX.len()..];
    let segments: Vec<String> = rest.split(ENV_SEPARATOR).map(str::to_lowercase).collect();
    if segments.iter().any(String::is_empty) {
        return Err(ConfigError::BadOverride {
            source_name: name.to_owned(),
            message: format!(
                "not a setting name (expected e.g. {ENV_PREFIX}LISTEN or \
                 {ENV_PREFIX}ENGINE{ENV_SEPARATOR}PING_INTERVAL)"
            ),
        });
    }
    Ok(Override {
        key: segments.join("."),
        value: value.to_owned(),
        origin: Origin::Env(name.to_owned()),
    })
}

/// The dotted key a flag sets; `--set` carries its own.
fn flag_override(flag: &str, value: &str) -> Result<Override, ConfigError> {
    let bad = |message: &str| ConfigError::BadOverride {
        source_name: format!("{flag} {value}"),
        message: message.to_owned(),
    };
    let (key, value, origin) = match flag {
        SET_FLAG => {
            let (key, value) = value
                .split_once('=')
                .ok_or_else(|| bad("expected KEY=VALUE, e.g. engine.ping_interval=5s"))?;
            let key = key.trim();
            if key.is_empty() || key.split('.').any(str::is_empty) {
                return Err(bad(
                    "expected KEY=VALUE with a dotted key, e.g. log.level=debug",
                ));
            }
            (key.to_owned(), value, format!("{flag} {key}"))
        }
        "--listen" => ("listen".to_owned(), value, flag.to_owned()),
        "--log-format" => ("log.format".to_owned(), value, flag.to_owned()),
        "--log-level" => ("log.level".to_owned(), value, flag.to_owned()),
        _ => return Err(bad("not a settings flag")),
    };
    Ok(Override {
        key,
        value: value.to_owned(),
        origin: Origin::Flag(origin),
    })
}

/// Reads an environment or flag value the way TOML would when it is a boolean, a number
/// or an array (`true`, `1000`, `["/", "/chat"]`), and as a plain string otherwise
/// (`0.0.0.0:3000`, `25s`, `/,/chat`). Validation then checks it like a file value.
pub(crate) fn parse_value(text: &str) -> toml::Value {
    let plain = || toml::Value::String(text.to_owned());
    if text.contains(['\n', '\r']) {
        return plain();
    }
    let Ok(mut table) = toml::from_str::<toml::Table>(&format!("v = {text}")) else {
        return plain();
    };
    match table.remove("v") {
        Some(toml::Value::Table(_) | toml::Value::Datetime(_)) | None => plain(),
        Some(_) if !table.is_empty() => plain(),
        Some(value) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigErrors;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_names_map_to_dotted_keys() {
        let overrides = env_overrides(&env(&[
            ("SWITCHBOARD_ENGINE__PING_INTERVAL", "5s"),
            ("SWITCHBOARD_LISTEN", "127.0.0.1:0"),
            ("SWITCHBOARD_CONFIG", "ignored.toml"),
            ("HOME", "/root"),
        ]));
        let keys: Vec<_> = overrides
            .iter()
            .map(|o| o.as_ref().map(|o| o.key.as_str()).ok())
            .collect();
        assert_eq!(keys, [Some("engine.ping_interval"), Some("listen")]);
    }

    #[test]
    fn malformed_env_names_are_errors() {
        let overrides = env_overrides(&env(&[("SWITCHBOARD_ENGINE____X", "1")]));
        assert!(matches!(
            overrides.as_slice(),
            [Err(ConfigError::BadOverride { source_name, .. })] if source_name == "SWITCHBOARD_ENGINE____X"
        ));
    }

    #[test]
    fn rust_log_is_the_fallback_for_log_level() {
        let only_rust_log = env_overrides(&env(&[("RUST_LOG", "debug")]));
        assert!(matches!(
            only_rust_log.as_slice(),
            [Ok(Override { key, origin: Origin::Env(name), .. })]
                if key == "log.level" && name == "RUST_LOG"
        ));
        let both = env_overrides(&env(&[
            ("RUST_LOG", "debug"),
            ("SWITCHBOARD_LOG__LEVEL", "warn"),
        ]));
        assert!(matches!(
            both.as_slice(),
            [Ok(Override { value, .. })] if value == "warn"
        ));
    }

    #[test]
    fn values_are_typed_like_toml_when_they_can_be() {
        assert_eq!(parse_value("true"), toml::Value::Boolean(true));
        assert_eq!(parse_value("1000"), toml::Value::Integer(1000));
        assert_eq!(
            parse_value(r#"["/", "/chat"]"#),
            toml::Value::Array(vec!["/".into(), "/chat".into()])
        );
        assert_eq!(
            parse_value(r#""quoted""#),
            toml::Value::String("quoted".into())
        );
        for plain in [
            "0.0.0.0:3000",
            "25s",
            "/,/chat",
            "*",
            "info,hyper=warn",
            "1\nx = 2",
        ] {
            assert_eq!(
                parse_value(plain),
                toml::Value::String(plain.into()),
                "{plain}"
            );
        }
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<crate::config::Loaded, ConfigErrors> {
        crate::config::load(&crate::config::tests::sources(None, pairs, &[]))
    }

    /// An environment variable is always a string: a value that looks like a number or
    /// a boolean is read as the text it was written as where the setting takes text
    /// (`invalid type: integer, expected a string` before, with no hint), and as the
    /// number or boolean where the setting takes one.
    #[test]
    fn numeric_looking_env_values_are_text_where_the_setting_takes_text() {
        let loaded = load_env(&[
            ("SWITCHBOARD_CLUSTER__NODE_NAME", "1.50"),
            ("SWITCHBOARD_API__KEYS", "1234567890123456789"),
            ("SWITCHBOARD_ENGINE__MAX_PAYLOAD", "2000000"),
            ("SWITCHBOARD_ENGINE__PING_INTERVAL", "5000"),
            ("SWITCHBOARD_SSE__ENABLED", "true"),
            // Read by hand (`switchboard-hooks`), not by serde: text all the same.
            (
                "SWITCHBOARD_HOOKS__WEBHOOK__URL",
                "http://127.0.0.1:9000/hooks",
            ),
            ("SWITCHBOARD_HOOKS__WEBHOOK__SECRET", "1234567890123456"),
        ])
        .unwrap_or_else(|errors| panic!("valid: {errors}"));
        let c = &loaded.config;
        assert_eq!(c.cluster.node_name.as_deref(), Some("1.50"), "as written");
        assert_eq!(c.api.keys.len(), 1);
        assert_eq!(c.socketio.engine.max_payload, 2_000_000);
        assert_eq!(
            c.socketio.engine.ping_interval,
            std::time::Duration::from_secs(5)
        );
        assert!(c.sse.enabled);
        let loaded = load_env(&[("SWITCHBOARD_CLUSTER__NODE_NAME", "1")])
            .unwrap_or_else(|errors| panic!("valid: {errors}"));
        assert_eq!(loaded.config.cluster.node_name.as_deref(), Some("1"));
    }

    /// Refused either way, a value keeps the message about what the setting takes: a
    /// number under its minimum is told so, an address that is a bare number is told
    /// it is not an address and port (not that it is not a string).
    #[test]
    fn refused_numeric_looking_env_values_are_told_what_the_setting_takes() {
        let errors = load_env(&[
            ("SWITCHBOARD_ENGINE__MAX_PAYLOAD", "10"),
            ("SWITCHBOARD_LISTEN", "3000"),
            ("SWITCHBOARD_SSE__ENABLED", "1"),
            ("SWITCHBOARD_CLUSTER__NODE_NAME", "1"),
        ])
        .expect_err("refused");
        let mut keys = errors.keys();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["engine.max_payload", "listen", "sse.enabled"],
            "{errors}"
        );
        let shown = errors.to_string();
        assert!(shown.contains("must be at least 1024"), "{shown}");
        assert!(
            shown.contains("`3000` is not an IP address and port"),
            "{shown}"
        );
        // A boolean setting given `1` is told it got an integer, the value as read,
        // not the text `"1"` (the setting takes no text).
        let line = shown
            .lines()
            .find(|l| l.contains("sse.enabled"))
            .unwrap_or_default();
        assert!(line.contains("integer"), "{line}");
        assert!(!line.contains(r#"string "1""#), "{line}");
    }

    #[test]
    fn set_flag_needs_key_and_value() {
        assert!(flag_override(SET_FLAG, "engine.path=/x/").is_ok());
        assert!(flag_override(SET_FLAG, "engine.path").is_err());
        assert!(flag_override(SET_FLAG, "engine..path=1").is_err());
        assert!(flag_override(SET_FLAG, "=1").is_err());
    }

    #[test]
    fn later_layers_win_and_remember_their_origin() {
        let sources = Sources {
            file: None,
            env: env(&[("SWITCHBOARD_LISTEN", "127.0.0.1:1")]),
            flags: vec![("--listen".into(), "127.0.0.1:2".into())],
        };
        let merged = merge(&sources);
        assert!(merged.errors.is_empty());
        assert_eq!(merged.table["listen"].as_str(), Some("127.0.0.1:2"));
        assert_eq!(merged.origins.of("listen"), Origin::Flag("--listen".into()));
        assert_eq!(merged.origins.of("engine.path"), Origin::Default);
    }

    #[test]
    fn an_override_under_a_non_table_is_an_error() {
        let sources = Sources {
            env: env(&[("SWITCHBOARD_LISTEN__PORT", "1")]),
            flags: vec![("--listen".into(), "127.0.0.1:0".into())],
            ..Sources::default()
        };
        // The env layer creates `listen.port`; the flag then replaces the `listen` table.
        let merged = merge(&sources);
        assert!(merged.errors.is_empty());
        let sources = Sources {
            env: env(&[("SWITCHBOARD_LISTEN", "127.0.0.1:0")]),
            flags: vec![(SET_FLAG.into(), "listen.port=1".into())],
            ..Sources::default()
        };
        let merged = merge(&sources);
        assert!(matches!(
            merged.errors.as_slice(),
            [ConfigError::Invalid { key, .. }] if key == "listen"
        ));
    }
}
