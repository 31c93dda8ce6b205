//! Configuration errors: one typed error per problem, all of them collected per load.

use std::fmt;
use std::path::PathBuf;

use super::sources::Origin;

/// One problem with the configuration. Tests and callers match on the variant and its
/// `key`, never on the message text.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML; nothing in it can be trusted.
    #[error("{} is not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A key that no setting has (usually a typo).
    #[error("{key}: unknown key{} ({origin})", hint_suffix(.hint.as_deref()))]
    UnknownKey {
        /// Dotted path, e.g. `engine.ping_intervl`.
        key: String,
        /// The closest known key, if one is close.
        hint: Option<String>,
        /// Where it was written.
        origin: Origin,
    },
    /// A value of the wrong type or out of range.
    #[error("{key}: {message} ({origin})")]
    Invalid {
        /// Dotted path, e.g. `engine.ping_timeout`.
        key: String,
        /// What is wrong with it.
        message: String,
        /// Where it was written.
        origin: Origin,
    },
    /// An override that names no key: `SWITCHBOARD_` alone, or `--set` without `=`.
    #[error("{source_name}: {message}")]
    BadOverride {
        /// The variable or flag as given.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
}

fn hint_suffix(hint: Option<&str>) -> String {
    hint.map(|h| format!(", did you mean `{h}`?"))
        .unwrap_or_default()
}

impl ConfigError {
    /// The dotted key the error is about, when it is about one.
    pub(crate) fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Every problem found in one load, in a stable order (source problems first, then by
/// key), so they can all be fixed in one go.
#[derive(Debug, thiserror::Error)]
pub(crate) struct ConfigErrors(pub(crate) Vec<ConfigError>);

impl ConfigErrors {
    /// The keys that have errors.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> Vec<&str> {
        self.0.iter().filter_map(ConfigError::key).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "invalid configuration ({n} error{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for err in &self.0 {
            write!(f, "\n  - {err}")?;
        }
        Ok(())
    }
}
