//! `[namespaces.auth]`: how connections authenticate. Every key but `refresh_event`
//! and `max_sockets_per_user` is a JWT setting read by `switchboard-auth` (key source, algorithms, issuer,
//! audience, leeway, token sources, JWKS options); the verifier's keys are loaded here,
//! so a missing key file, or a `jwks_ca_file` that cannot be read or holds no
//! certificate, is a configuration error like any other.

use std::fmt;

use switchboard_auth::jwt::{JwtSettings, JwtVerifier};
use switchboard_settings::{Errors, Section};
use toml::Value;

/// The keys read here rather than by `switchboard-auth`.
const REFRESH_EVENT: &str = "refresh_event";
const MAX_SOCKETS_PER_USER: &str = "max_sockets_per_user";

/// The keys that say where the verification keys come from and which algorithms they
/// verify: all [`JwtVerifier::new`] needs to load and check them (secret length, key
/// files, a JWKS client and its CA file).
const KEY_KEYS: &[&str] = &[
    "secret",
    "secret_file",
    "public_key",
    "public_key_file",
    "jwks_url",
    "algorithms",
    "jwks_cache_ttl",
    "jwks_refresh_interval",
    "jwks_fetch_timeout",
    "jwks_allow_http",
    "jwks_ca_file",
];

/// With other settings of the table wrong (`leeway`, a typo'd key), loads the keys
/// anyway when the keys' own settings are right, so their problems (a short secret,
/// a missing key file) come out in the same run rather than the next. When the keys'
/// settings are wrong themselves, they were reported already and nothing is loaded.
fn check_keys_alone(table: &toml::Table, path: &str, problems: &mut Errors) {
    let keys: toml::Table = table
        .iter()
        .filter(|(name, _)| KEY_KEYS.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if let Ok(settings) = JwtSettings::from_toml(&Value::Table(keys), path)
        && let Err(errors) = JwtVerifier::new(settings)
    {
        problems.extend(errors);
    }
}

/// How connections to a namespace authenticate.
#[derive(Clone)]
pub(crate) struct AuthRules {
    /// The JWT settings (`Debug` hides the secret).
    pub(crate) settings: JwtSettings,
    /// Checks tokens, keys loaded (cheap to clone: shared state).
    pub(crate) verifier: JwtVerifier,
    /// The event a connected client emits with a fresh token before its token expires.
    pub(crate) refresh_event: Option<String>,
    /// Most sockets one user (a token's `sub`) may have connected at once in the
    /// entry's namespaces on this node; 0: no bound.
    pub(crate) max_sockets_per_user: usize,
}

impl PartialEq for AuthRules {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
            && self.refresh_event == other.refresh_event
            && self.max_sockets_per_user == other.max_sockets_per_user
    }
}

impl fmt::Debug for AuthRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthRules")
            .field("settings", &self.settings)
            .field("refresh_event", &self.refresh_event)
            .field("max_sockets_per_user", &self.max_sockets_per_user)
            .finish_non_exhaustive()
    }
}

/// Reads `[namespaces.auth]`, loading the verifier's keys.
pub(crate) fn parse(s: Section<'_>, problems: &mut Errors) -> Option<AuthRules> {
    let refresh_event = s.non_empty_string(REFRESH_EVENT, problems);
    let max_sockets_per_user = s
        .count(MAX_SOCKETS_PER_USER, problems)
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut table = s.table().clone();
    table.remove(REFRESH_EVENT);
    table.remove(MAX_SOCKETS_PER_USER);
    let settings = match JwtSettings::from_toml(&Value::Table(table.clone()), s.path()) {
        Ok(settings) => settings,
        Err(errors) => {
            problems.extend(errors);
            check_keys_alone(&table, s.path(), problems);
            return None;
        }
    };
    let verifier = JwtVerifier::new(settings.clone())
        .map_err(|errors| problems.extend(errors))
        .ok()?;
    Some(AuthRules {
        settings,
        verifier,
        refresh_event,
        max_sockets_per_user,
    })
}

#[cfg(test)]
mod tests;
