//! Durations as people write them in config: `"25s"`, `"300ms"`, `"1m30s"`, `"2h"`, or an
//! integer number of milliseconds; the one grammar every Switchboard setting uses.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use crate::table::type_name;

/// Longest duration accepted for any setting (`docs/configuration.md`: "at most 24
/// hours"): anything longer is surely a unit mistake (milliseconds written as seconds),
/// and huge values risk overflowing timer arithmetic.
pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// What a duration value must look like, for error messages.
const EXPECTED: &str = r#"a duration such as "25s", "300ms", "1m30s" or integer milliseconds"#;

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("empty duration")]
    Empty,
    /// A number was not followed by a unit (`"25"` inside a string).
    #[error("missing unit after {0} (use ms, s, m or h)")]
    MissingUnit(u64),
    /// A unit other than `ms`, `s`, `m`, `h`.
    #[error("unknown unit `{0}` (use ms, s, m or h)")]
    UnknownUnit(String),
    /// A unit without a number before it, or a stray character.
    #[error("expected a number at `{0}`")]
    ExpectedNumber(String),
    /// The value does not fit in a duration.
    #[error("duration too large")]
    Overflow,
}

/// Why a TOML value is not a setting's duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A string that does not follow the grammar.
    #[error("invalid duration {text:?}: {source}")]
    Text {
        /// The string as written.
        text: String,
        /// What is wrong with it.
        source: DurationError,
    },
    /// A negative integer.
    #[error("a duration cannot be negative")]
    Negative,
    /// Neither a string nor an integer; the type as a message names it (`a boolean`).
    #[error("expected {EXPECTED}, found {0}")]
    WrongType(&'static str),
    /// Longer than [`MAX`].
    #[error("{} is longer than the {} maximum", format(*.0), format(MAX))]
    TooLong(Duration),
}

/// Parses `"25s"`, `"300ms"`, `"1m30s"`, `"2h"`: one or more `<integer><unit>` parts
/// (units `ms`, `s`, `m`, `h`), blanks allowed around the parts and between a number and
/// its unit (`"1m 30s"`, `"5 s"`). Only the grammar: the [`MAX`] cap is [`check_max`]'s.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(DurationError::ExpectedNumber(rest.to_owned()));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::Overflow)?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_alphabetic()).len();
        let part = scale(number, &rest[..unit_len])?;
        total = total.checked_add(part).ok_or(DurationError::Overflow)?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

/// `number` of `unit`.
fn scale(number: u64, unit: &str) -> Result<Duration, DurationError> {
    let millis_per_unit: u64 = match unit {
        "" => return Err(DurationError::MissingUnit(number)),
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        other => return Err(DurationError::UnknownUnit(other.to_owned())),
    };
    number
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .ok_or(DurationError::Overflow)
}

/// Formats a duration the way [`parse`] reads it: whole seconds as `"25s"`, else `"300ms"`.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

/// `duration` if it is at most [`MAX`].
pub fn check_max(duration: Duration) -> Result<Duration, ValueError> {
    if duration > MAX {
        return Err(ValueError::TooLong(duration));
    }
    Ok(duration)
}

/// Reads a setting's duration from a TOML value: a string in the grammar of [`parse`]
/// or a non-negative integer of milliseconds, at most [`MAX`].
pub fn from_value(value: &toml::Value) -> Result<Duration, ValueError> {
    let duration = match value {
        toml::Value::Integer(millis) => u64::try_from(*millis)
            .map(Duration::from_millis)
            .map_err(|_| ValueError::Negative)?,
        toml::Value::String(text) => parse(text).map_err(|source| ValueError::Text {
            text: text.clone(),
            source,
        })?,
        other => return Err(ValueError::WrongType(type_name(other))),
    };
    check_max(duration)
}

/// A duration read by serde (the binary's derived config sections): a string in the
/// grammar of [`parse`] or integer milliseconds. The [`MAX`] cap is left to the reader,
/// which checks it with [`check_max`] after its own checks (e.g. "greater than 0").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HumanDurationVisitor)
    }
}

/// Reads the two forms of a [`HumanDuration`].
struct HumanDurationVisitor;

impl Visitor<'_> for HumanDurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, millis: u64) -> Result<HumanDuration, E> {
        Ok(HumanDuration(Duration::from_millis(millis)))
    }

    fn visit_i64<E: de::Error>(self, millis: i64) -> Result<HumanDuration, E> {
        u64::try_from(millis)
            .map(|ms| HumanDuration(Duration::from_millis(ms)))
            .map_err(|_| E::custom(ValueError::Negative))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        parse(text).map(HumanDuration).map_err(|source| {
            E::custom(ValueError::Text {
                text: text.to_owned(),
                source,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        let ok = [
            ("300ms", 300),
            ("250ms", 250),
            ("5s", 5_000),
            ("25s", 25_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("2h", 7_200_000),
            ("1m30s", 90_000),
            (" 0s ", 0),
            ("1m 30s", 90_000),
            ("1m 5s", 65_000),
            ("5 s", 5_000),
        ];
        for (text, millis) in ok {
            assert_eq!(parse(text), Ok(Duration::from_millis(millis)), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_strings() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("25"), Err(DurationError::MissingUnit(25)));
        assert_eq!(parse("5"), Err(DurationError::MissingUnit(5)));
        assert!(
            matches!(parse("25 seconds"), Err(DurationError::UnknownUnit(u)) if u == "seconds")
        );
        assert!(matches!(parse("5sec"), Err(DurationError::UnknownUnit(u)) if u == "sec"));
        assert!(matches!(parse("s"), Err(DurationError::ExpectedNumber(_))));
        assert!(matches!(
            parse("-5s"),
            Err(DurationError::ExpectedNumber(_))
        ));
        assert!(matches!(
            parse("-1s"),
            Err(DurationError::ExpectedNumber(_))
        ));
        assert_eq!(parse("99999999999999999999h"), Err(DurationError::Overflow));
        assert_eq!(parse("9999999999999999h"), Err(DurationError::Overflow));
    }

    #[test]
    fn formats_what_it_parses() {
        for millis in [0, 300, 1_000, 25_000, 1_500] {
            let d = Duration::from_millis(millis);
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(25)), "25s");
        assert_eq!(format(Duration::from_millis(300)), "300ms");
    }

    #[test]
    fn values_are_strings_or_integer_millis_up_to_the_cap() {
        let value = |v: toml::Value| from_value(&v);
        assert_eq!(value(1500.into()), Ok(Duration::from_millis(1500)));
        assert_eq!(value("2h".into()), Ok(Duration::from_secs(7200)));
        assert_eq!(value("24h".into()), Ok(MAX));
        assert_eq!(value((-1).into()), Err(ValueError::Negative));
        assert_eq!(value(true.into()), Err(ValueError::WrongType("a boolean")));
        assert!(matches!(
            value("5 seconds".into()),
            Err(ValueError::Text {
                source: DurationError::UnknownUnit(_),
                ..
            })
        ));
        assert_eq!(
            value("24h 1ms".into()),
            Err(ValueError::TooLong(MAX + Duration::from_millis(1)))
        );
        assert_eq!(
            ValueError::TooLong(Duration::from_secs(90_000)).to_string(),
            "90000s is longer than the 86400s maximum"
        );
    }

    #[test]
    fn deserializes_integers_as_milliseconds() -> Result<(), toml::de::Error> {
        let millis: HumanDuration = toml::Value::Integer(1500).try_into()?;
        assert_eq!(millis.0, Duration::from_millis(1500));
        let text: HumanDuration = toml::Value::String("2s".into()).try_into()?;
        assert_eq!(text.0, Duration::from_secs(2));
        assert!(
            toml::Value::Integer(-1)
                .try_into::<HumanDuration>()
                .is_err()
        );
        assert!(
            toml::Value::Boolean(true)
                .try_into::<HumanDuration>()
                .is_err()
        );
        Ok(())
    }
}
