//! Reading auth settings out of a `toml::Value`: the [`SettingError`] every parser returns
//! and a [`TableReader`] that keeps reading after a bad value, so one load reports every
//! problem with its dotted key path.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

/// One problem with a setting, named by its dotted key path
/// (e.g. `namespaces[0].auth.jwks_url`). Callers match on `key`, never on `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingError {
    /// Dotted path of the offending key, as given to the parser plus the key itself.
    pub key: String,
    /// What is wrong with it, for a person to read.
    pub message: String,
}

impl SettingError {
    /// An error about `key` (already a full dotted path).
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SettingError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// `path.name`, or `name` alone at the top level.
pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Reads the keys of one TOML table by name, remembering which keys were read and every
/// error met, so [`finish`](Self::finish) can add the keys nobody asked for.
///
/// Each getter returns `None` both for an absent key and for a bad value (the error is
/// recorded), so a parser can fall back to its default and go on.
#[derive(Debug)]
pub struct TableReader<'a> {
    /// Dotted path of the table itself.
    path: String,
    /// The table being read.
    table: &'a toml::Table,
    /// Keys asked for so far, known keys even when absent.
    known: BTreeSet<String>,
    /// Every problem met so far.
    errors: Vec<SettingError>,
}

impl<'a> TableReader<'a> {
    /// Starts reading `value`, which must be a table; `path` names it in errors.
    pub fn new(value: &'a toml::Value, path: &str) -> Result<Self, Vec<SettingError>> {
        match value.as_table() {
            Some(table) => Ok(TableReader {
                path: path.to_owned(),
                table,
                known: BTreeSet::new(),
                errors: Vec::new(),
            }),
            None => Err(vec![SettingError::new(
                path,
                format!("must be a table, not {}", value.type_str()),
            )]),
        }
    }

    /// The dotted path of `name` in this table.
    pub fn key(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// The dotted path of the table itself.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Records a problem with the table as a whole (e.g. a required key missing).
    pub fn table_error(&mut self, message: impl Into<String>) {
        self.errors
            .push(SettingError::new(self.path.clone(), message));
    }

    /// Whether `name` was written (and marks it known).
    pub fn has(&mut self, name: &str) -> bool {
        self.known.insert(name.to_owned());
        self.table.contains_key(name)
    }

    /// The raw value of `name`, if written (and marks it known).
    pub fn value(&mut self, name: &str) -> Option<&'a toml::Value> {
        self.known.insert(name.to_owned());
        self.table.get(name)
    }

    /// Records a problem with `name`.
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        let key = self.key(name);
        self.errors.push(SettingError::new(key, message));
    }

    /// Records problems found by a nested parser (already with full paths).
    pub fn extend(&mut self, errors: Vec<SettingError>) {
        self.errors.extend(errors);
    }

    /// A string value.
    pub fn string(&mut self, name: &str) -> Option<String> {
        let value = self.value(name)?;
        match value.as_str() {
            Some(text) => Some(text.to_owned()),
            None => {
                self.error(name, format!("must be a string, not {}", value.type_str()));
                None
            }
        }
    }

    /// A non-empty string value.
    pub fn non_empty_string(&mut self, name: &str) -> Option<String> {
        let text = self.string(name)?;
        if text.trim().is_empty() {
            self.error(name, "must not be empty");
            return None;
        }
        Some(text)
    }

    /// A boolean value.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        let value = self.value(name)?;
        match value.as_bool() {
            Some(flag) => Some(flag),
            None => {
                self.error(
                    name,
                    format!("must be true or false, not {}", value.type_str()),
                );
                None
            }
        }
    }

    /// A duration: `"25s"`, `"300ms"`, `"1m30s"`, or integer milliseconds.
    pub fn duration(&mut self, name: &str) -> Option<Duration> {
        let value = self.value(name)?;
        match duration_value(value) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// One string or an array of strings, read as a list (`"a"` is `["a"]`).
    pub fn string_list(&mut self, name: &str) -> Option<Vec<String>> {
        let value = self.value(name)?;
        match string_list_value(value) {
            Ok(list) => Some(list),
            Err(message) => {
                self.error(name, message);
                None
            }
        }
    }

    /// Ends the reading: every key of the table not asked for is reported as unknown.
    /// Returns every error met, or nothing.
    pub fn finish(mut self) -> Result<(), Vec<SettingError>> {
        for name in self.table.keys() {
            if !self.known.contains(name) {
                let key = self.key(name);
                self.errors.push(SettingError::new(key, "unknown key"));
            }
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }
}

/// What a duration value must look like, for error messages.
const DURATION_EXPECTED: &str =
    r#"must be a duration such as "25s", "300ms", "1m30s" or integer milliseconds"#;

/// Reads a duration the way the rest of the config writes them.
pub fn duration_value(value: &toml::Value) -> Result<Duration, String> {
    match value {
        toml::Value::Integer(millis) => u64::try_from(*millis)
            .map(Duration::from_millis)
            .map_err(|_| "a duration cannot be negative".to_owned()),
        toml::Value::String(text) => parse_duration(text),
        other => Err(format!("{DURATION_EXPECTED}, not {}", other.type_str())),
    }
}

/// Parses `"25s"`, `"300ms"`, `"1m30s"`, `"2h"`: one or more `<integer><unit>` parts,
/// spaces allowed between them.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{DURATION_EXPECTED}, not {text:?}");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_alphabetic()).len();
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        let part = number
            .checked_mul(millis_per_unit)
            .map(Duration::from_millis)
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

/// One string or an array of strings.
pub fn string_list_value(value: &toml::Value) -> Result<Vec<String>, String> {
    match value {
        toml::Value::String(one) => Ok(vec![one.clone()]),
        toml::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("must hold only strings, found {}", item.type_str()))
            })
            .collect(),
        other => Err(format!(
            "must be a string or an array of strings, not {}",
            other.type_str()
        )),
    }
}

/// Formats a list of setting errors one per line, for logs and CLI output.
#[derive(Debug)]
pub struct DisplayErrors<'a>(pub &'a [SettingError]);

impl fmt::Display for DisplayErrors<'_> {
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

    fn table(text: &str) -> toml::Value {
        match text.parse::<toml::Table>() {
            Ok(table) => toml::Value::Table(table),
            Err(err) => panic!("bad test TOML: {err}"),
        }
    }

    #[test]
    fn reports_every_bad_and_unknown_key_with_its_path() {
        let value = table("a = 1\nb = \"x\"\nc = true\ntypo = 3\n");
        let mut reader = TableReader::new(&value, "ns[0].auth").expect("a table");
        assert_eq!(reader.string("a"), None);
        assert_eq!(reader.bool("b"), None);
        assert_eq!(reader.bool("c"), Some(true));
        assert_eq!(reader.string("absent"), None);
        let errors = reader.finish().expect_err("errors");
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["ns[0].auth.a", "ns[0].auth.b", "ns[0].auth.typo"]);
    }

    #[test]
    fn a_non_table_is_an_error_at_its_own_path() {
        let value = toml::Value::Integer(3);
        let errors = TableReader::new(&value, "x.auth").expect_err("not a table");
        assert_eq!(errors[0].key, "x.auth");
    }

    #[test]
    fn top_level_keys_have_no_leading_dot() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("p", "a"), "p.a");
    }

    #[test]
    fn durations_read_like_the_rest_of_the_config() {
        let ok = [
            ("300ms", 300),
            ("25s", 25_000),
            ("1m30s", 90_000),
            ("1m 30s", 90_000),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for bad in ["", "25", "5sec", "-1s", "s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            duration_value(&toml::Value::Integer(1500)),
            Ok(Duration::from_millis(1500))
        );
        assert!(duration_value(&toml::Value::Integer(-1)).is_err());
        assert!(duration_value(&toml::Value::Boolean(true)).is_err());
    }

    #[test]
    fn string_lists_accept_one_string() {
        assert_eq!(
            string_list_value(&toml::Value::String("a".into())),
            Ok(vec!["a".to_owned()])
        );
        let mixed = toml::Value::Array(vec![toml::Value::String("a".into()), 1.into()]);
        assert!(string_list_value(&mixed).is_err());
    }
}
