//! [`TableReader`]: reads one flat table key by key (`[namespaces.auth]`,
//! `[hooks.webhook]`), owning its errors and remembering which keys were asked for, so
//! [`finish`](TableReader::finish) reports the keys nobody asked for as unknown without
//! a separate list of keys to keep in step.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::error::{Errors, SettingError};
use crate::table::{Section, join, type_name};

/// Reads the keys of one TOML table by name, remembering which keys were read and every
/// error met.
///
/// Each getter is [`Section`]'s, so values read the same way here as in the binary's
/// nested tables; each returns `None` both for an absent key and for a bad value (the
/// error is recorded), so a parser can fall back to its default and go on.
#[derive(Debug)]
pub struct TableReader<'a> {
    /// Dotted path of the table itself.
    path: String,
    /// The table being read.
    table: &'a toml::Table,
    /// Keys asked for so far, known keys even when absent.
    known: BTreeSet<String>,
    /// Every problem met so far.
    errors: Errors,
}

impl<'a> TableReader<'a> {
    /// Starts reading `value`, which must be a table; `path` names it in errors.
    pub fn new(value: &'a toml::Value, path: &str) -> Result<Self, Vec<SettingError>> {
        match value.as_table() {
            Some(table) => Ok(TableReader {
                path: path.to_owned(),
                table,
                known: BTreeSet::new(),
                errors: Errors::new(),
            }),
            None => Err(vec![SettingError::new(
                path,
                format!("expected a table, found {}", type_name(value)),
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
        self.errors.invalid(self.path.clone(), message);
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
        self.errors.invalid(key, message);
    }

    /// Records problems found by a nested parser (already with full paths).
    pub fn extend(&mut self, errors: impl IntoIterator<Item = SettingError>) {
        self.errors.extend(errors);
    }

    /// Marks `name` known and reads it with one of [`Section`]'s getters.
    fn with<T>(
        &mut self,
        name: &str,
        get: impl FnOnce(&Section<'_>, &mut Errors) -> Option<T>,
    ) -> Option<T> {
        self.known.insert(name.to_owned());
        get(&Section::new(&self.path, self.table), &mut self.errors)
    }

    /// `name` read with `read`; a value `read` refuses is reported and read as absent.
    pub fn read<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(&toml::Value) -> Result<T, String>,
    ) -> Option<T> {
        self.with(name, |s, e| s.read(name, e, read))
    }

    /// A string value.
    pub fn string(&mut self, name: &str) -> Option<String> {
        self.with(name, |s, e| s.string(name, e))
    }

    /// A string with something other than blanks in it.
    pub fn non_empty_string(&mut self, name: &str) -> Option<String> {
        self.with(name, |s, e| s.non_empty_string(name, e))
    }

    /// A boolean value.
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        self.with(name, |s, e| s.bool(name, e))
    }

    /// An integer from `min` to `max`, both included.
    pub fn integer_in(&mut self, name: &str, min: u64, max: u64) -> Option<u64> {
        self.with(name, |s, e| s.integer_in(name, min, max, e))
    }

    /// A duration: `"25s"`, `"300ms"`, `"1m30s"`, or integer milliseconds, at most
    /// [`MAX`](crate::duration::MAX).
    pub fn duration(&mut self, name: &str) -> Option<Duration> {
        self.with(name, |s, e| s.duration(name, e))
    }

    /// One string or an array of strings, read as a list (`"a"` is `["a"]`).
    pub fn string_list(&mut self, name: &str) -> Option<Vec<String>> {
        self.with(name, |s, e| s.string_list(name, e))
    }

    /// An array of strings, or one comma-separated string (`"a, b"` is `["a", "b"]`),
    /// for lists whose items never hold a comma.
    pub fn comma_list(&mut self, name: &str) -> Option<Vec<String>> {
        self.with(name, |s, e| s.comma_list(name, e))
    }

    /// Ends the reading: every key of the table not asked for is reported as unknown.
    /// Returns every error met, or nothing.
    pub fn finish(mut self) -> Result<(), Vec<SettingError>> {
        let known: Vec<&str> = self.known.iter().map(String::as_str).collect();
        for name in self.table.keys() {
            if !self.known.contains(name) {
                self.errors
                    .push(SettingError::unknown(join(&self.path, name), &known));
            }
        }
        self.errors.into_result(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn table(text: &str) -> toml::Value {
        match text.parse::<toml::Table>() {
            Ok(table) => toml::Value::Table(table),
            Err(err) => panic!("bad test TOML: {err}"),
        }
    }

    #[test]
    fn reports_every_bad_and_unknown_key_with_its_path() {
        let value = table("a = 1\nb = \"x\"\nc = true\ntypo = 3\nd = \"5 seconds\"\n");
        let mut reader = TableReader::new(&value, "ns[0].auth").expect("a table");
        assert_eq!(reader.string("a"), None);
        assert_eq!(reader.bool("b"), None);
        assert_eq!(reader.bool("c"), Some(true));
        assert_eq!(reader.duration("d"), None);
        assert_eq!(reader.string("absent"), None);
        let errors = reader.finish().expect_err("errors");
        let keys: Vec<_> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ns[0].auth.a",
                "ns[0].auth.b",
                "ns[0].auth.d",
                "ns[0].auth.typo"
            ]
        );
        assert_eq!(
            errors[3].kind,
            ErrorKind::Unknown {
                known: ["a", "absent", "b", "c", "d"].map(String::from).to_vec()
            }
        );
    }

    #[test]
    fn a_non_table_is_an_error_at_its_own_path() {
        let value = toml::Value::Integer(3);
        let errors = TableReader::new(&value, "x.auth").expect_err("not a table");
        assert_eq!(errors[0].key, "x.auth");
    }

    #[test]
    fn a_clean_table_finishes_without_errors() {
        let value = table("a = \"x\"\n");
        let mut reader = TableReader::new(&value, "").expect("a table");
        assert_eq!(reader.non_empty_string("a"), Some("x".into()));
        assert_eq!(reader.finish(), Ok(()));
    }
}
