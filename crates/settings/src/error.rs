//! The one setting error: a dotted key path and what is wrong with it, and [`Errors`],
//! every error of one load, so they can all be fixed in one go.

use std::fmt;

/// One problem with a setting, named by its dotted key path
/// (e.g. `namespaces[0].auth.jwks_url`). Callers match on `key` and `kind`, never on the
/// message text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {kind}")]
pub struct SettingError {
    /// Dotted path of the offending key: the table's path plus the key itself.
    pub key: String,
    /// What is wrong with it.
    pub kind: ErrorKind,
}

/// What is wrong with a setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// A value of the wrong type, out of range, missing or inconsistent with another;
    /// the message says which, for a person to read.
    #[error("{0}")]
    Invalid(String),
    /// A key the table does not have (usually a typo).
    #[error("unknown key")]
    Unknown {
        /// The keys the table does have, for a "did you mean" hint.
        known: Vec<String>,
    },
}

impl SettingError {
    /// A bad value at `key` (already a full dotted path).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SettingError {
            key: key.into(),
            kind: ErrorKind::Invalid(message.into()),
        }
    }

    /// An unknown key at `key`, in a table whose keys are `known`.
    pub fn unknown(key: impl Into<String>, known: &[&str]) -> Self {
        SettingError {
            key: key.into(),
            kind: ErrorKind::Unknown {
                known: known.iter().map(|&k| k.to_owned()).collect(),
            },
        }
    }
}

/// Every error found so far; readers add to it and go on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors(Vec<SettingError>);

impl Errors {
    /// No errors yet.
    pub fn new() -> Self {
        Errors::default()
    }

    /// Records a bad value at `key`.
    pub fn invalid(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(SettingError::new(key, message));
    }

    /// Records an error.
    pub fn push(&mut self, error: SettingError) {
        self.0.push(error);
    }

    /// Records errors found by a nested reader (already with full paths).
    pub fn extend(&mut self, errors: impl IntoIterator<Item = SettingError>) {
        self.0.extend(errors);
    }

    /// How many errors were recorded.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none were.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, SettingError> {
        self.0.iter()
    }

    /// The errors, in the order they were found.
    pub fn into_vec(self) -> Vec<SettingError> {
        self.0
    }

    /// `value` if nothing was recorded, else every error.
    pub fn into_result<T>(self, value: T) -> Result<T, Vec<SettingError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

impl IntoIterator for Errors {
    type Item = SettingError;
    type IntoIter = std::vec::IntoIter<SettingError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// One error a line, for logs and CLI output.
impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, err) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{err}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_text_format_for_every_error() {
        let mut errors = Errors::new();
        errors.invalid("engine.ping_timeout", "must be greater than 0");
        errors.push(SettingError::unknown("hooks.webhook.tiemout", &["timeout"]));
        assert_eq!(
            errors.to_string(),
            "engine.ping_timeout: must be greater than 0\nhooks.webhook.tiemout: unknown key"
        );
        assert_eq!(errors.len(), 2);
        let Err(errors) = errors.into_result(()) else {
            panic!("errors were recorded");
        };
        assert_eq!(
            errors[1].kind,
            ErrorKind::Unknown {
                known: vec!["timeout".to_owned()]
            }
        );
        assert_eq!(Errors::new().into_result(7), Ok(7));
    }
}
