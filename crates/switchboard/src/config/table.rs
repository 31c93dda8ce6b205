//! Reading nested TOML tables by hand (`[[namespaces]]`, `[hooks]`), where serde's
//! derive would stop at the first mistake: every wrong type, bad value and unknown key
//! is collected as a [`Problem`] under its full key path (`namespaces[0].rooms.allow`).

use toml::Value;

/// One problem found while reading a table; validation adds the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A value of the wrong type or out of range.
    Invalid {
        /// Full key path, e.g. `namespaces[1].rate_limit.burst`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A key the table does not have.
    Unknown {
        /// Full key path.
        key: String,
        /// The keys the table does have, for a "did you mean" hint.
        known: &'static [&'static str],
    },
}

impl Problem {
    /// The key path the problem is about.
    #[cfg(test)]
    pub(crate) fn key(&self) -> &str {
        match self {
            Problem::Invalid { key, .. } | Problem::Unknown { key, .. } => key,
        }
    }
}

/// Problems collected so far.
#[derive(Debug, Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    /// Records a bad value at `key`.
    pub(crate) fn invalid(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::Invalid {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// A TOML table at a key path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section<'t> {
    path: &'t str,
    table: &'t toml::Table,
}

/// `path.name`, or `name` at the top level.
pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// The TOML type of a value, for messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
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

impl<'t> Section<'t> {
    /// The table `table`, found at `path`.
    pub(crate) fn new(path: &'t str, table: &'t toml::Table) -> Self {
        Section { path, table }
    }

    /// The section's own key path.
    pub(crate) fn path(&self) -> &'t str {
        self.path
    }

    /// The table itself.
    pub(crate) fn table(&self) -> &'t toml::Table {
        self.table
    }

    /// The key path of `name` in this section.
    pub(crate) fn key(&self, name: &str) -> String {
        join(self.path, name)
    }

    /// Reports every key not in `known`.
    pub(crate) fn only(&self, known: &'static [&'static str], problems: &mut Problems) {
        for name in self.table.keys() {
            if !known.contains(&name.as_str()) {
                problems.0.push(Problem::Unknown {
                    key: self.key(name),
                    known,
                });
            }
        }
    }

    /// The raw value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&'t Value> {
        self.table.get(name)
    }

    /// `name` read with `read`; a value `read` refuses is reported and read as absent.
    pub(crate) fn value<T>(
        &self,
        name: &str,
        problems: &mut Problems,
        read: impl FnOnce(&'t Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.get(name)?;
        read(value)
            .map_err(|message| problems.invalid(self.key(name), message))
            .ok()
    }

    /// A string.
    pub(crate) fn string(&self, name: &str, problems: &mut Problems) -> Option<String> {
        self.value(name, problems, |v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected a string, found {}", type_name(other))),
        })
    }

    /// A string that is not empty.
    pub(crate) fn non_empty(&self, name: &str, problems: &mut Problems) -> Option<String> {
        self.value(name, problems, |v| match v {
            Value::String(s) if s.is_empty() => Err("must not be empty".to_owned()),
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected a string, found {}", type_name(other))),
        })
    }

    /// A list of strings: an array, or one comma-separated string (an environment
    /// variable can only hold the latter).
    pub(crate) fn strings(&self, name: &str, problems: &mut Problems) -> Option<Vec<String>> {
        self.value(name, problems, string_list)
    }

    /// A boolean.
    pub(crate) fn flag(&self, name: &str, problems: &mut Problems) -> Option<bool> {
        self.value(name, problems, |v| match v {
            Value::Boolean(b) => Ok(*b),
            other => Err(format!(
                "expected true or false, found {}",
                type_name(other)
            )),
        })
    }

    /// A non-negative integer.
    pub(crate) fn count(&self, name: &str, problems: &mut Problems) -> Option<u64> {
        self.value(name, problems, |v| match v {
            Value::Integer(n) if *n >= 0 => Ok(n.unsigned_abs()),
            other => Err(format!(
                "expected a non-negative integer, found {}",
                describe(other)
            )),
        })
    }

    /// A sub-table; anything else is reported and read as absent.
    pub(crate) fn section(&self, name: &str, problems: &mut Problems) -> Option<&'t toml::Table> {
        self.value(name, problems, |v| match v {
            Value::Table(t) => Ok(t),
            other => Err(format!(
                "must be a table ([{}]), found {}",
                self.key(name),
                type_name(other)
            )),
        })
    }

    /// An array of tables (`[[name]]`); a non-table entry is reported and skipped.
    /// Returns each table with its index.
    pub(crate) fn tables(
        &self,
        name: &str,
        problems: &mut Problems,
    ) -> Vec<(usize, &'t toml::Table)> {
        let Some(value) = self.get(name) else {
            return Vec::new();
        };
        let Value::Array(items) = value else {
            problems.invalid(
                self.key(name),
                format!(
                    "must be an array of tables ([[{}]]), found {}",
                    self.key(name),
                    type_name(value)
                ),
            );
            return Vec::new();
        };
        tables_of(&self.key(name), items, problems)
    }
}

/// The tables of an array, each with its index; other entries are reported.
pub(crate) fn tables_of<'t>(
    key: &str,
    items: &'t [Value],
    problems: &mut Problems,
) -> Vec<(usize, &'t toml::Table)> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::Table(t) => out.push((i, t)),
            other => problems.invalid(
                format!("{key}[{i}]"),
                format!("expected a table, found {}", type_name(other)),
            ),
        }
    }
    out
}

/// A list of strings from an array or a comma-separated string.
pub(crate) fn string_list(value: &Value) -> Result<Vec<String>, String> {
    match value {
        Value::String(text) => Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
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

/// A value for a message: its type, and the value itself when it is short.
fn describe(value: &Value) -> String {
    match value {
        Value::Integer(n) => n.to_string(),
        other => type_name(other).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap_or_default()
    }

    #[test]
    fn wrong_types_are_reported_with_their_path() {
        let t = table("a = 1\nb = \"x\"\nc = -1\nd = [1]\ne = 3\n");
        let section = Section::new("ns[0]", &t);
        let mut p = Problems::default();
        assert_eq!(section.string("a", &mut p), None);
        assert_eq!(section.string("b", &mut p), Some("x".into()));
        assert_eq!(section.count("c", &mut p), None);
        assert_eq!(section.strings("d", &mut p), None);
        assert_eq!(section.flag("e", &mut p), None);
        assert_eq!(section.string("missing", &mut p), None);
        let keys: Vec<&str> = p.0.iter().map(Problem::key).collect();
        assert_eq!(keys, ["ns[0].a", "ns[0].c", "ns[0].d", "ns[0].e"]);
    }

    #[test]
    fn unknown_keys_are_reported() {
        let t = table("name = \"/\"\nnmae = 1\n");
        let mut p = Problems::default();
        Section::new("ns[0]", &t).only(&["name"], &mut p);
        assert_eq!(
            p.0,
            [Problem::Unknown {
                key: "ns[0].nmae".into(),
                known: &["name"],
            }]
        );
    }

    #[test]
    fn arrays_of_tables_skip_other_entries() {
        let t = table("x = [{ a = 1 }, 2, { b = 3 }]\ny = 1\n");
        let section = Section::new("", &t);
        let mut p = Problems::default();
        let found: Vec<usize> = section
            .tables("x", &mut p)
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(found, [0, 2]);
        assert!(section.tables("y", &mut p).is_empty());
        let keys: Vec<&str> = p.0.iter().map(Problem::key).collect();
        assert_eq!(keys, ["x[1]", "y"]);
    }

    #[test]
    fn string_lists_accept_commas() {
        assert_eq!(
            string_list(&Value::String("a, b,".into())),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(string_list(&Value::Integer(1)).is_err());
    }
}
