//! Reads typed values out of one TOML table, collecting every error with its dotted
//! key instead of stopping at the first.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

use super::{KEYS, OverflowPolicy, Secret, SettingError, duration};

/// Reads typed values out of one table, collecting errors instead of stopping.
pub(super) struct Reader<'a> {
    /// The table being read.
    pub(super) table: &'a toml::Table,
    /// Its dotted path, the prefix of every error's key.
    pub(super) path: &'a str,
    /// Every problem found so far.
    pub(super) errors: Vec<SettingError>,
}

impl Reader<'_> {
    pub(super) fn error(&mut self, name: &str, message: String) {
        self.errors.push(SettingError {
            key: format!("{}.{name}", self.path),
            message,
        });
    }

    pub(super) fn unknown_keys(&mut self) {
        let unknown: Vec<String> = self
            .table
            .keys()
            .filter(|k| !KEYS.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.error(&key, "unknown key".to_owned());
        }
    }

    pub(super) fn string(&mut self, name: &str) -> Option<&str> {
        match self.table.get(name)? {
            toml::Value::String(s) => Some(s.as_str()),
            other => {
                let message = format!("expected a string, found {}", other.type_str());
                self.error(name, message);
                None
            }
        }
    }

    pub(super) fn url(&mut self, name: &str, required: bool) -> Option<Uri> {
        let Some(text) = self.string(name).map(str::to_owned) else {
            if required && !self.table.contains_key(name) {
                self.error(name, "required (the backend's webhook URL)".to_owned());
            }
            return None;
        };
        match text.parse::<Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some() =>
            {
                Some(uri)
            }
            Ok(_) => {
                self.error(name, format!("{text:?} is not an http:// or https:// URL"));
                None
            }
            Err(err) => {
                self.error(name, format!("{text:?} is not a URL: {err}"));
                None
            }
        }
    }

    pub(super) fn secret(&mut self) -> Option<Secret> {
        match self.string("secret") {
            Some("") => {
                self.error("secret", "must not be empty".to_owned());
                None
            }
            Some(s) => Some(Secret::new(s)),
            None => {
                if !self.table.contains_key("secret") {
                    self.error(
                        "secret",
                        "required (receivers verify Switchboard-Signature with it)".to_owned(),
                    );
                }
                None
            }
        }
    }

    pub(super) fn path(&mut self, name: &str) -> Option<PathBuf> {
        match self.string(name) {
            Some("") => {
                self.error(name, "must not be empty".to_owned());
                None
            }
            other => other.map(PathBuf::from),
        }
    }

    pub(super) fn duration(&mut self, name: &str, default: Duration, zero_ok: bool) -> Duration {
        let Some(value) = self.table.get(name) else {
            return default;
        };
        match duration::from_toml(value) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.error(name, "must be longer than zero".to_owned());
                default
            }
            Ok(d) => d,
            Err(message) => {
                self.error(name, message);
                default
            }
        }
    }

    pub(super) fn integer(&mut self, name: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(value) = self.table.get(name) else {
            return default;
        };
        let Some(n) = value.as_integer() else {
            let message = format!("expected an integer, found {}", value.type_str());
            self.error(name, message);
            return default;
        };
        match u64::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.error(name, format!("must be between {min} and {max}, found {n}"));
                default
            }
        }
    }

    pub(super) fn count(&mut self, name: &str, default: usize, min: u64, max: u64) -> usize {
        let default_u64 = u64::try_from(default).unwrap_or(u64::MAX);
        usize::try_from(self.integer(name, default_u64, min, max)).unwrap_or(default)
    }

    pub(super) fn multiplier(&mut self, default: f64) -> f64 {
        let name = "backoff_multiplier";
        let value = match self.table.get(name) {
            None => return default,
            Some(toml::Value::Float(f)) => *f,
            // Written as an integer (`2`), which is a fine multiplier.
            Some(toml::Value::Integer(i)) => *i as f64,
            Some(other) => {
                let message = format!("expected a number, found {}", other.type_str());
                self.error(name, message);
                return default;
            }
        };
        if (1.0..=100.0).contains(&value) {
            value
        } else {
            self.error(name, format!("must be between 1 and 100, found {value}"));
            default
        }
    }

    pub(super) fn overflow(&mut self) -> OverflowPolicy {
        match self.string("overflow") {
            None => OverflowPolicy::default(),
            Some("drop_newest") => OverflowPolicy::DropNewest,
            Some("drop_oldest") => OverflowPolicy::DropOldest,
            Some(other) => {
                let message =
                    format!(r#"expected "drop_newest" or "drop_oldest", found {other:?}"#);
                self.error("overflow", message);
                OverflowPolicy::default()
            }
        }
    }
}
