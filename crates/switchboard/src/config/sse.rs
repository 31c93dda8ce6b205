//! `[sse]`: Server-Sent Events (`GET /sse`), their raw shape, checks and summary
//! lines. Off unless `enabled` here or `sse = true` on a `[[namespaces]]` entry; the
//! engine's [`SseConfig`] is set when any namespace serves SSE.

use switchboard_engine::SseConfig;
use switchboard_settings::duration::{self, HumanDuration};

use super::Config;
use super::check::{self, Checked};
use super::raw::{Field, StringList, Unknown};
use super::validate::Validator;
use crate::paths;

/// `[sse]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawSse {
    pub(crate) enabled: Option<Field<bool>>,
    pub(crate) path: Option<Field<String>>,
    pub(crate) heartbeat: Option<Field<HumanDuration>>,
    pub(crate) retry: Option<Field<HumanDuration>>,
    /// A list, or one comma-separated string (`token,access_token`) as every list.
    pub(crate) auth_params: Option<Field<StringList>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// The keys of `[sse]`, for [`super::raw::SECTIONS`].
pub(crate) const SSE_KEYS: &[&str] = &["enabled", "path", "heartbeat", "retry", "auth_params"];

/// `[sse]` as the server uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseSettings {
    /// Every namespace serves SSE unless its entry says `sse = false`.
    pub(crate) enabled: bool,
    /// Path, heartbeat, retry and auth parameters.
    pub(crate) config: SseConfig,
}

impl Validator<'_> {
    /// Reads `[sse]` into `c.sse`, then gives the engine its settings when any
    /// namespace serves SSE.
    pub(super) fn sse(&mut self, raw: RawSse, c: &mut Config) {
        self.unknown("sse", raw.unknown);
        let s = &mut c.sse;
        self.read(&mut s.enabled, "sse.enabled", raw.enabled, Ok);
        self.read(&mut s.config.path, "sse.path", raw.path, sse_path);
        self.read(
            &mut s.config.heartbeat,
            "sse.heartbeat",
            raw.heartbeat,
            check::period,
        );
        self.read(
            &mut s.config.retry,
            "sse.retry",
            raw.retry,
            check::positive_duration,
        );
        self.read(
            &mut s.config.auth_params,
            "sse.auth_params",
            raw.auth_params,
            |l: StringList| auth_params(l.0),
        );
        let engine = c.socketio.engine.path.trim_end_matches('/');
        if c.sse.config.path == engine || c.sse.config.path.starts_with(&c.socketio.engine.path) {
            self.invalid(
                "sse.path",
                format!("`{}` is under engine.path", c.sse.config.path),
            );
        }
        let served = c.namespaces.iter().any(|n| n.sse.unwrap_or(c.sse.enabled));
        c.socketio.engine.sse = served.then(|| c.sse.config.clone());
    }
}

/// A plain path of its own, away from the API, health, metrics and the engine.
fn sse_path(text: String) -> Checked<String> {
    if !text.starts_with('/') || text.len() < 2 {
        return Err(format!(
            "`{text}` must start with `/` and name a path (e.g. /sse)"
        ));
    }
    if text.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
        return Err(format!("`{text}` must be a plain URL path"));
    }
    if paths::is_api(&text) || paths::ROUTES.contains(&text.as_str()) {
        return Err(format!(
            "`{text}` is taken by the HTTP API or a health route"
        ));
    }
    Ok(text)
}

/// Query parameter names, each a plain word, never `pid` or `offset` (which would
/// resume a Socket.IO client's session).
fn auth_params(names: Vec<String>) -> Checked<Vec<String>> {
    for name in &names {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "`{name}` must be a word of letters, digits, `_` or `-`"
            ));
        }
        if matches!(
            name.as_str(),
            "pid" | "offset" | "nsp" | "room" | "lastEventId"
        ) {
            return Err(format!("`{name}` is reserved"));
        }
    }
    Ok(names)
}

/// The `[sse]` lines of `check-config`.
pub(crate) fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let s = &config.sse;
    let quote = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let params: Vec<toml::Value> = s
        .config
        .auth_params
        .iter()
        .map(|p| toml::Value::String(p.clone()))
        .collect();
    vec![
        ("sse.enabled", s.enabled.to_string()),
        ("sse.path", quote(&s.config.path)),
        (
            "sse.heartbeat",
            quote(&duration::format(s.config.heartbeat)),
        ),
        ("sse.retry", quote(&duration::format(s.config.retry))),
        ("sse.auth_params", toml::Value::Array(params).to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use crate::config::tests::sources;
    use crate::config::{ConfigErrors, Loaded, load};

    fn from_env(value: &str) -> Result<Loaded, ConfigErrors> {
        load(&sources(
            None,
            &[("SWITCHBOARD_SSE__AUTH_PARAMS", value)],
            &[],
        ))
    }

    /// `sse.auth_params` is a list like every other: from the environment, one
    /// comma-separated string (it was refused as "expected a sequence").
    #[test]
    fn auth_params_take_a_comma_separated_string() {
        let loaded = from_env("token,access_token")
            .unwrap_or_else(|errors| panic!("a comma-separated list: {errors}"));
        assert_eq!(
            loaded.config.sse.config.auth_params,
            ["token", "access_token"]
        );
        let loaded =
            from_env(r#"["token", "jwt"]"#).unwrap_or_else(|errors| panic!("an array: {errors}"));
        assert_eq!(loaded.config.sse.config.auth_params, ["token", "jwt"]);
        let errors = from_env("token,pid").expect_err("pid is reserved");
        assert_eq!(errors.keys(), ["sse.auth_params"], "{errors}");
    }
}
