//! `[admin]`: the Socket.IO Admin UI (`@socket.io/admin-ui`) on an admin namespace —
//! its login (a username and a bcrypt hash, or authentication explicitly off), its
//! mode, whether it may act, and the id this node shows in it (docs/admin.md).

use switchboard_engine::sio::server::is_valid_pattern_namespace;

use super::Config;
use super::check::Checked;
use super::raw::{Field, Unknown};
use super::validate::Validator;

/// `[admin]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawAdmin {
    pub(crate) enabled: Option<Field<bool>>,
    pub(crate) namespace: Option<Field<String>>,
    pub(crate) auth: Option<Field<bool>>,
    pub(crate) username: Option<Field<String>>,
    pub(crate) password_hash: Option<Field<String>>,
    pub(crate) mode: Option<Field<String>>,
    pub(crate) readonly: Option<Field<bool>>,
    pub(crate) server_id: Option<Field<String>>,
    pub(crate) accept_node_sessions: Option<Field<bool>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// The keys of `[admin]`, for [`super::raw::SECTIONS`].
pub(crate) const ADMIN_KEYS: &[&str] = &[
    "enabled",
    "namespace",
    "auth",
    "username",
    "password_hash",
    "mode",
    "readonly",
    "server_id",
    "accept_node_sessions",
];

/// What the Admin UI may see: `production` (stats and commands) or `development`
/// (also every socket, listed when the UI connects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum AdminMode {
    /// Stats and commands only.
    #[default]
    Production,
    /// Also the list of every socket.
    Development,
}

/// `[admin]` as the server uses it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct AdminConfig {
    /// Whether the admin namespace exists.
    pub(crate) enabled: bool,
    /// Its name.
    pub(crate) namespace: String,
    /// The login: `None` when `auth = false`.
    pub(crate) login: Option<Login>,
    /// What the UI may see.
    pub(crate) mode: AdminMode,
    /// No commands (join, leave, disconnect, emit).
    pub(crate) readonly: bool,
    /// This node's id in the UI (default: the host name).
    pub(crate) server_id: Option<String>,
    /// Whether a login session a Node server stored in Redis (`true` under the
    /// package's key) logs in here too.
    pub(crate) accept_node_sessions: bool,
}

/// A username and the bcrypt hash of its password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Login {
    pub(crate) username: String,
    pub(crate) password_hash: String,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("enabled", &self.enabled)
            .field("namespace", &self.namespace)
            .field("login", &self.login.as_ref().map(|l| &l.username))
            .field("mode", &self.mode)
            .field("readonly", &self.readonly)
            .finish_non_exhaustive()
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: false,
            namespace: "/admin".to_owned(),
            login: None,
            mode: AdminMode::Production,
            readonly: false,
            server_id: None,
            accept_node_sessions: false,
        }
    }
}

impl Validator<'_> {
    /// Reads `[admin]` into `c.admin`: enabled, it needs a login (a username and a
    /// bcrypt hash) or `auth = false`, and a namespace of its own.
    pub(super) fn admin(&mut self, raw: RawAdmin, c: &mut Config) {
        self.unknown("admin", raw.unknown);
        let a = &mut c.admin;
        self.read(&mut a.enabled, "admin.enabled", raw.enabled, Ok);
        self.read(
            &mut a.namespace,
            "admin.namespace",
            raw.namespace,
            namespace,
        );
        let mut auth = true;
        self.read(&mut auth, "admin.auth", raw.auth, Ok);
        let mut username = String::new();
        self.read(&mut username, "admin.username", raw.username, |u| {
            if u.is_empty() || u.len() > 128 || u.chars().any(char::is_control) {
                Err("must be 1 to 128 characters, none of them control characters".into())
            } else {
                Ok(u)
            }
        });
        let mut hash = String::new();
        self.read(
            &mut hash,
            "admin.password_hash",
            raw.password_hash,
            password_hash,
        );
        self.read(&mut a.mode, "admin.mode", raw.mode, |m| match m.as_str() {
            "production" => Ok(AdminMode::Production),
            "development" => Ok(AdminMode::Development),
            _ => Err(format!("`{m}` must be \"production\" or \"development\"")),
        });
        self.read(&mut a.readonly, "admin.readonly", raw.readonly, Ok);
        self.read(
            &mut a.accept_node_sessions,
            "admin.accept_node_sessions",
            raw.accept_node_sessions,
            Ok,
        );
        let mut server_id = None;
        self.read(&mut server_id, "admin.server_id", raw.server_id, |s| {
            if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
                Err("must be 1 to 128 characters, none of them control characters".into())
            } else {
                Ok(Some(s))
            }
        });
        a.server_id = server_id;
        a.login = (auth && !hash.is_empty()).then(|| Login {
            username: username.clone(),
            password_hash: hash.clone(),
        });
        if !a.enabled {
            return;
        }
        if auth && (username.is_empty() || hash.is_empty()) {
            self.invalid(
                "admin.password_hash",
                "the Admin UI needs `username` and `password_hash` (a bcrypt hash, e.g. \
                 from `htpasswd -bnBC 10 \"\" secret | tr -d ':\\n'`), or `auth = false` \
                 to leave it open"
                    .to_owned(),
            );
        }
        let taken = c.namespaces.iter().any(|n| match &n.target {
            super::Target::Name(name) => *name == c.admin.namespace,
            super::Target::Pattern(p) => p.matches(&c.admin.namespace),
        });
        if taken {
            self.invalid(
                "admin.namespace",
                format!(
                    "`{}` is also a namespace of `namespaces`; the Admin UI needs one of its own",
                    c.admin.namespace
                ),
            );
        }
    }
}

fn namespace(text: String) -> Checked<String> {
    if text.len() < 2 || !is_valid_pattern_namespace(&text) || text.contains([',', ' ']) {
        return Err(format!(
            "`{text}` must be a namespace name starting with `/` (e.g. /admin)"
        ));
    }
    Ok(text)
}

/// The highest bcrypt cost taken: each login attempt, anyone's, costs the server
/// 2^cost rounds, one check at a time. 14 is about a second of a core; 31 was
/// accepted, about 2^17 times that, so one unauthenticated CONNECT to the admin
/// namespace held a core for days and every later login waited it out.
const MAX_BCRYPT_COST: u32 = 14;

/// A bcrypt hash (`$2a$`, `$2b$` or `$2y$`, a cost of 4 to [`MAX_BCRYPT_COST`], 53
/// characters after it), as `@socket.io/admin-ui` requires; never a plain password.
fn password_hash(text: String) -> Checked<String> {
    let Ok(parts) = text.parse::<bcrypt::HashParts>() else {
        return Err("must be a bcrypt hash (`$2b$10$…`), never the password itself".to_owned());
    };
    if parts.get_cost() > MAX_BCRYPT_COST {
        return Err(format!(
            "a bcrypt cost of {} is more than {MAX_BCRYPT_COST}: every login attempt, an \
             unauthenticated one too, would cost that much CPU (hash it again with a cost \
             of 10 to {MAX_BCRYPT_COST})",
            parts.get_cost()
        ));
    }
    Ok(text)
}

/// The `[admin]` lines of `check-config` (never the hash).
pub(crate) fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let a = &config.admin;
    let quote = |v: &str| toml::Value::String(v.to_owned()).to_string();
    vec![
        ("admin.enabled", a.enabled.to_string()),
        ("admin.namespace", quote(&a.namespace)),
        ("admin.auth", (a.login.is_some() || !a.enabled).to_string()),
        (
            "admin.username",
            quote(a.login.as_ref().map_or("", |l| l.username.as_str())),
        ),
        (
            "admin.password_hash",
            quote(if a.login.is_some() {
                "(set, not shown)"
            } else {
                ""
            }),
        ),
        (
            "admin.mode",
            quote(match a.mode {
                AdminMode::Production => "production",
                AdminMode::Development => "development",
            }),
        ),
        ("admin.readonly", a.readonly.to_string()),
        (
            "admin.accept_node_sessions",
            a.accept_node_sessions.to_string(),
        ),
        (
            "admin.server_id",
            quote(a.server_id.as_deref().unwrap_or("(the host name)")),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_and_namespaces_are_checked() {
        let hash = bcrypt::hash("secret", 4).unwrap_or_default();
        assert!(password_hash(hash).is_ok());
        assert!(password_hash("secret".into()).is_err());
        assert!(password_hash("$2b$10$short".into()).is_err());
        // The cost is read from the hash: rewritten, the rest still parses.
        let hash = bcrypt::hash("secret", 4).unwrap_or_default();
        for (cost, ok) in [("14", true), ("15", false), ("31", false)] {
            let costly = hash.replacen("$04$", &format!("${cost}$"), 1);
            assert_eq!(password_hash(costly).is_ok(), ok, "cost {cost}");
        }
        assert!(namespace("/admin".into()).is_ok());
        assert!(namespace("admin".into()).is_err());
        assert!(namespace("/".into()).is_err());
    }
}
