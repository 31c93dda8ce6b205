//! The webhook-specific values of `[hooks.webhook]` — URLs, the secret, paths, the
//! overflow policy, ranges with defaults — read with `switchboard-settings`'s
//! [`TableReader`], which collects every error with its dotted key instead of stopping
//! at the first and reports the keys nobody asked for as unknown.

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use switchboard_settings::TableReader;
use switchboard_settings::table::type_name;

use super::{OverflowPolicy, Secret};

/// An `http` or `https` URL; `required` reports it when absent.
pub(super) fn url(r: &mut TableReader<'_>, name: &str, required: bool) -> Option<Uri> {
    let Some(text) = r.string(name) else {
        if required && !r.has(name) {
            r.error(name, "required (the backend's webhook URL)");
        }
        return None;
    };
    match text.parse::<Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() =>
        {
            // A port that is none (`:99999`) would be read as no port at all, and the
            // events sent to the scheme's default port.
            if let Some(why) = switchboard_http_client::port_problem(&uri) {
                r.error(name, format!("{text:?}: {why}"));
                return None;
            }
            Some(uri)
        }
        Ok(_) => {
            r.error(name, format!("{text:?} is not an http:// or https:// URL"));
            None
        }
        Err(err) => {
            r.error(name, format!("{text:?} is not a URL: {err}"));
            None
        }
    }
}

/// `secret`: required and not empty.
pub(super) fn secret(r: &mut TableReader<'_>) -> Option<Secret> {
    match r.string("secret").as_deref() {
        Some("") => {
            r.error("secret", "must not be empty");
            None
        }
        Some(s) => Some(Secret::new(s)),
        None => {
            if !r.has("secret") {
                r.error(
                    "secret",
                    "required (receivers verify Switchboard-Signature with it)",
                );
            }
            None
        }
    }
}

/// A file path, not empty.
pub(super) fn path(r: &mut TableReader<'_>, name: &str) -> Option<PathBuf> {
    r.non_empty_string(name).map(PathBuf::from)
}

/// A duration, `default` when absent or bad; zero is refused unless `zero_ok`.
pub(super) fn duration(
    r: &mut TableReader<'_>,
    name: &str,
    default: Duration,
    zero_ok: bool,
) -> Duration {
    match r.duration(name) {
        Some(d) if d.is_zero() && !zero_ok => {
            r.error(name, "must be longer than zero");
            default
        }
        Some(d) => d,
        None => default,
    }
}

/// An integer from `min` to `max`, `default` when absent or bad.
pub(super) fn integer(
    r: &mut TableReader<'_>,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> u64 {
    r.integer_in(name, min, max).unwrap_or(default)
}

/// A count from `min` to `max`, `default` when absent or bad.
pub(super) fn count(
    r: &mut TableReader<'_>,
    name: &str,
    default: usize,
    min: u64,
    max: u64,
) -> usize {
    r.integer_in(name, min, max)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(default)
}

/// `backoff_multiplier`: a number from 1 to 100.
pub(super) fn multiplier(r: &mut TableReader<'_>, default: f64) -> f64 {
    r.read("backoff_multiplier", |value| {
        let value = match value {
            toml::Value::Float(f) => *f,
            // Written as an integer (`2`), which is a fine multiplier.
            toml::Value::Integer(i) => *i as f64,
            other => return Err(format!("expected a number, found {}", type_name(other))),
        };
        if (1.0..=100.0).contains(&value) {
            Ok(value)
        } else {
            Err(format!("must be between 1 and 100, found {value}"))
        }
    })
    .unwrap_or(default)
}

/// `overflow`: `"drop_newest"` or `"drop_oldest"`.
pub(super) fn overflow(r: &mut TableReader<'_>) -> OverflowPolicy {
    r.read("overflow", |value| match value.as_str() {
        Some("drop_newest") => Ok(OverflowPolicy::DropNewest),
        Some("drop_oldest") => Ok(OverflowPolicy::DropOldest),
        Some(other) => Err(format!(
            r#"expected "drop_newest" or "drop_oldest", found {other:?}"#
        )),
        None => Err(format!("expected a string, found {}", type_name(value))),
    })
    .unwrap_or_default()
}
