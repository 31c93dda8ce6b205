//! Durations as people write them in config: `"25s"`, `"300ms"`, `"1m30s"`, or an
//! integer number of milliseconds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// What a duration value must look like, for error messages.
const EXPECTED: &str = r#"a duration such as "25s", "300ms", "1m30s" or integer milliseconds"#;

/// Why a duration string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DurationError {
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

/// Parses `"25s"`, `"300ms"`, `"1m30s"`, `"2h"`: one or more `<integer><unit>` parts,
/// spaces allowed between them (`"1m 30s"`).
pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
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
pub(crate) fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis.is_multiple_of(1_000) {
        format!("{}s", millis / 1_000)
    } else {
        format!("{millis}ms")
    }
}

/// A duration read from config: a human string or integer milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HumanDuration(pub(crate) Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(HumanDurationVisitor)
    }
}

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
            .map_err(|_| E::custom("a duration cannot be negative"))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
        parse(text)
            .map(HumanDuration)
            .map_err(|err| E::custom(format_args!("invalid duration {text:?}: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        let ok = [
            ("300ms", 300),
            ("25s", 25_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1m30s", 90_000),
            (" 0s ", 0),
            ("1m 30s", 90_000),
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
        assert!(
            matches!(parse("25 seconds"), Err(DurationError::UnknownUnit(u)) if u == "seconds")
        );
        assert!(matches!(parse("5sec"), Err(DurationError::UnknownUnit(u)) if u == "sec"));
        assert!(matches!(parse("s"), Err(DurationError::ExpectedNumber(_))));
        assert!(matches!(
            parse("-5s"),
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
