//! Reading a TOML table by hand, where serde's derive would stop at the first mistake:
//! a [`Section`] is a table at a key path, and each typed getter reports a wrong type or
//! a bad value into an [`Errors`] under its full key path (`namespaces[0].rooms.allow`)
//! and reads it as absent, so one load reports every mistake.

use std::time::Duration;

use toml::Value;

use crate::duration;
use crate::error::{Errors, SettingError};

/// `path.name`, or `name` alone at the top level.
pub fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The TOML type of a value with its article (`an integer`), for messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

/// A value for a message: the integer itself, else its type.
fn describe(value: &Value) -> String {
    match value {
        Value::Integer(n) => n.to_string(),
        other => type_name(other).to_owned(),
    }
}

/// A TOML table at a key path. Cheap to copy; the errors go to the [`Errors`] each
/// getter is given.
#[derive(Debug, Clone, Copy)]
pub struct Section<'t> {
    /// Dotted path of the table itself (`""` at the top level).
    path: &'t str,
    /// The table.
    table: &'t toml::Table,
}

impl<'t> Section<'t> {
    /// The table `table`, found at `path`.
    pub fn new(path: &'t str, table: &'t toml::Table) -> Self {
        Section { path, table }
    }

    /// The section's own key path.
    pub fn path(&self) -> &'t str {
        self.path
    }

    /// The table itself.
    pub fn table(&self) -> &'t toml::Table {
        self.table
    }

    /// The key path of `name` in this section.
    pub fn key(&self, name: &str) -> String {
        join(self.path, name)
    }

    /// Reports every key not in `known` as unknown.
    pub fn only(&self, known: &[&str], errors: &mut Errors) {
        for name in self.table.keys() {
            if !known.contains(&name.as_str()) {
                errors.push(SettingError::unknown(self.key(name), known));
            }
        }
    }

    /// The raw value of `name`.
    pub fn get(&self, name: &str) -> Option<&'t Value> {
        self.table.get(name)
    }

    /// `name` read with `read`; a value `read` refuses is reported with its message and
    /// read as absent.
    pub fn read<T>(
        &self,
        name: &str,
        errors: &mut Errors,
        read: impl FnOnce(&'t Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.get(name)?;
        read(value)
            .map_err(|message| errors.invalid(self.key(name), message))
            .ok()
    }

    /// A string.
    pub fn string(&self, name: &str, errors: &mut Errors) -> Option<String> {
        self.read(name, errors, |v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected a string, found {}", type_name(other))),
        })
    }

    /// A string with something other than blanks in it.
    pub fn non_empty_string(&self, name: &str, errors: &mut Errors) -> Option<String> {
        self.read(name, errors, |v| match v {
            Value::String(s) if s.trim().is_empty() => Err("must not be empty".to_owned()),
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected a string, found {}", type_name(other))),
        })
    }

    /// A boolean.
    pub fn bool(&self, name: &str, errors: &mut Errors) -> Option<bool> {
        self.read(name, errors, |v| match v {
            Value::Boolean(b) => Ok(*b),
            other => Err(format!(
                "expected true or false, found {}",
                type_name(other)
            )),
        })
    }

    /// A non-negative integer.
    pub fn count(&self, name: &str, errors: &mut Errors) -> Option<u64> {
        self.read(name, errors, |v| match v {
            Value::Integer(n) if *n >= 0 => Ok(n.unsigned_abs()),
            other => Err(format!(
                "expected a non-negative integer, found {}",
                describe(other)
            )),
        })
    }

    /// An integer from `min` to `max`, both included.
    pub fn integer_in(&self, name: &str, min: u64, max: u64, errors: &mut Errors) -> Option<u64> {
        self.read(name, errors, |v| {
            let Value::Integer(n) = v else {
                return Err(format!("expected an integer, found {}", type_name(v)));
            };
            u64::try_from(*n)
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| format!("must be between {min} and {max}, found {n}"))
        })
    }

    /// A duration in the grammar of [`duration::parse`] or integer milliseconds, at
    /// most [`duration::MAX`].
    pub fn duration(&self, name: &str, errors: &mut Errors) -> Option<Duration> {
        self.read(name, errors, |v| {
            duration::from_value(v).map_err(|e| e.to_string())
        })
    }

    /// A list of strings: an array, or one comma-separated string (an environment
    /// variable can only hold the latter). For lists of names that never hold a comma.
    pub fn comma_list(&self, name: &str, errors: &mut Errors) -> Option<Vec<String>> {
        self.read(name, errors, comma_list)
    }

    /// A list of strings: an array, or one string read as a one-item list (`"a"` is
    /// `["a"]`). For lists whose items may hold a comma (issuers, audiences).
    pub fn string_list(&self, name: &str, errors: &mut Errors) -> Option<Vec<String>> {
        self.read(name, errors, string_list)
    }

    /// A sub-table; anything else is reported and read as absent.
    pub fn section(&self, name: &str, errors: &mut Errors) -> Option<&'t toml::Table> {
        self.read(name, errors, |v| match v {
            Value::Table(t) => Ok(t),
            other => Err(format!(
                "must be a table ([{}]), found {}",
                self.key(name),
                type_name(other)
            )),
        })
    }

    /// An array of tables (`[[name]]`), each with its index; a non-table entry is
    /// reported and skipped.
    pub fn tables(&self, name: &str, errors: &mut Errors) -> Vec<(usize, &'t toml::Table)> {
        let Some(value) = self.get(name) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            errors.invalid(
                self.key(name),
                format!(
                    "must be an array of tables ([[{}]]), found {}",
                    self.key(name),
                    type_name(value)
                ),
            );
            return Vec::new();
        };
        tables_of(&self.key(name), items, errors)
    }
}

/// The tables of the array at `key`, each with its index; other entries are reported.
pub fn tables_of<'t>(
    key: &str,
    items: &'t [Value],
    errors: &mut Errors,
) -> Vec<(usize, &'t toml::Table)> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Table(t) => out.push((i, t)),
            other => errors.invalid(
                format!("{key}[{i}]"),
                format!("expected a table, found {}", type_name(other)),
            ),
        }
    }
    out
}

/// A list of strings from an array or a comma-separated string (blank items dropped).
pub fn comma_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        other => string_list(other),
    }
}

/// A list of strings from an array or one string.
pub fn string_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(one) => Ok(vec![one.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "expected a list of strings, found {} in it",
                    type_name(other)
                )),
            })
            .collect(),
        other => Err(format!(
            "expected a list of strings, found {}",
            type_name(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap_or_default()
    }

    fn keys(errors: &Errors) -> Vec<&str> {
        errors.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn wrong_types_are_reported_with_their_path() {
        let t = table("a = 1\nb = \"x\"\nc = -1\nd = [1]\ne = 3\nf = \" \"\ng = \"5 seconds\"\n");
        let section = Section::new("ns[0]", &t);
        let mut p = Errors::new();
        assert_eq!(section.string("a", &mut p), None);
        assert_eq!(section.string("b", &mut p), Some("x".into()));
        assert_eq!(section.count("c", &mut p), None);
        assert_eq!(section.comma_list("d", &mut p), None);
        assert_eq!(section.bool("e", &mut p), None);
        assert_eq!(section.non_empty_string("f", &mut p), None);
        assert_eq!(section.duration("g", &mut p), None);
        assert_eq!(section.string("missing", &mut p), None);
        assert_eq!(
            keys(&p),
            [
                "ns[0].a", "ns[0].c", "ns[0].d", "ns[0].e", "ns[0].f", "ns[0].g"
            ]
        );
    }

    #[test]
    fn integers_and_durations_are_range_checked() {
        let t = table("low = 0\nok = 5\nhigh = 11\nneg = -1\nlong = \"25h\"\nday = \"24h\"\n");
        let s = Section::new("", &t);
        let mut p = Errors::new();
        assert_eq!(s.integer_in("low", 1, 10, &mut p), None);
        assert_eq!(s.integer_in("ok", 1, 10, &mut p), Some(5));
        assert_eq!(s.integer_in("high", 1, 10, &mut p), None);
        assert_eq!(s.integer_in("neg", 0, 10, &mut p), None);
        assert_eq!(s.duration("long", &mut p), None);
        assert_eq!(s.duration("day", &mut p), Some(duration::MAX));
        assert_eq!(keys(&p), ["low", "high", "neg", "long"]);
    }

    #[test]
    fn unknown_keys_are_reported_with_the_known_ones() {
        let t = table("name = \"/\"\nnmae = 1\n");
        let mut p = Errors::new();
        Section::new("ns[0]", &t).only(&["name"], &mut p);
        assert_eq!(
            p.into_vec(),
            [SettingError {
                key: "ns[0].nmae".into(),
                kind: ErrorKind::Unknown {
                    known: vec!["name".into()]
                },
            }]
        );
    }

    #[test]
    fn arrays_of_tables_skip_other_entries() {
        let t = table("x = [{ a = 1 }, 2, { b = 3 }]\ny = 1\n");
        let section = Section::new("", &t);
        let mut p = Errors::new();
        let found: Vec<usize> = section
            .tables("x", &mut p)
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(found, [0, 2]);
        assert!(section.tables("y", &mut p).is_empty());
        assert_eq!(keys(&p), ["x[1]", "y"]);
    }

    #[test]
    fn the_two_list_forms() {
        assert_eq!(
            comma_list(&Value::String("a, b,".into())),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            string_list(&Value::String("a,b".into())),
            Ok(vec!["a,b".to_owned()])
        );
        let mixed = Value::Array(vec![Value::String("a".into()), 1.into()]);
        assert!(string_list(&mixed).is_err());
        assert!(comma_list(&mixed).is_err());
        assert!(comma_list(&Value::Integer(1)).is_err());
    }

    #[test]
    fn top_level_keys_have_no_leading_dot() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("p", "a"), "p.a");
    }
}
