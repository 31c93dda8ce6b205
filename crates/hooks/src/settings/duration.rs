//! Durations as people write them in config: `"250ms"`, `"5s"`, `"1m30s"`, `"2h"`, or
//! an integer number of milliseconds.

use std::time::Duration;

/// Reads a duration from a TOML value; the error is the message to show beside the key.
pub(crate) fn from_toml(value: &toml::Value) -> Result<Duration, String> {
    match value {
        toml::Value::Integer(ms) => u64::try_from(*ms)
            .map(Duration::from_millis)
            .map_err(|_| "a duration cannot be negative".to_owned()),
        toml::Value::String(text) => {
            parse(text).map_err(|why| format!("invalid duration {text:?}: {why}"))
        }
        other => Err(format!(
            r#"expected a duration such as "250ms", "5s" or integer milliseconds, found {}"#,
            other.type_str()
        )),
    }
}

/// Parses one or more `<integer><unit>` parts (`ms`, `s`, `m`, `h`), spaces allowed
/// between them.
pub(crate) fn parse(text: &str) -> Result<Duration, &'static str> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration");
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err("expected a number");
        }
        let number: u64 = rest[..digits].parse().map_err(|_| "duration too large")?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.len() - rest.trim_start_matches(|c: char| c.is_alphabetic()).len();
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "" => return Err("missing unit (use ms, s, m or h)"),
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err("unknown unit (use ms, s, m or h)"),
        };
        let part = number
            .checked_mul(millis_per_unit)
            .ok_or("duration too large")?;
        total = total
            .checked_add(Duration::from_millis(part))
            .ok_or("duration too large")?;
        rest = rest[unit_len..].trim_start();
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_and_integer_millis() {
        for (text, ms) in [
            ("250ms", 250),
            ("5s", 5_000),
            ("1m30s", 90_000),
            ("1m 5s", 65_000),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        assert_eq!(
            from_toml(&toml::Value::Integer(1500)),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            from_toml(&toml::Value::String("2h".into())),
            Ok(Duration::from_secs(7200))
        );
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for bad in ["", "5", "5 seconds", "s", "-1s", "99999999999999999999h"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(from_toml(&toml::Value::Integer(-1)).is_err());
        assert!(from_toml(&toml::Value::Boolean(true)).is_err());
    }
}
