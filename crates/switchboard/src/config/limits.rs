//! `[limits]`: the node's memory budget and how often it is checked, for the memory
//! pressure tiers (docs/diagnosis.md#memory-pressure).

use std::time::Duration;

use switchboard_engine::pressure::DEFAULT_INTERVAL;
use switchboard_settings::duration::{self, HumanDuration};

use super::Config;
use super::check::{self, Checked};
use super::raw::{Field, Unknown};
use super::validate::Validator;

/// `[limits]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawLimits {
    pub(crate) memory: Option<Field<toml::Value>>,
    pub(crate) memory_interval: Option<Field<HumanDuration>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// The keys of `[limits]`, for [`super::raw::SECTIONS`].
pub(crate) const LIMITS_KEYS: &[&str] = &["memory", "memory_interval"];

/// The memory budget as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MemoryLimit {
    /// The cgroup's limit, else 80 % of the RAM.
    #[default]
    Auto,
    /// No budget: no tiers.
    Off,
    /// This many bytes.
    Bytes(u64),
}

/// `[limits]` as the server uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The memory budget.
    pub(crate) memory: MemoryLimit,
    /// How often resident memory is sampled.
    pub(crate) memory_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: MemoryLimit::Auto,
            memory_interval: DEFAULT_INTERVAL,
        }
    }
}

/// A budget smaller than this leaves no room above what an idle node holds.
const MIN_MEMORY: u64 = 32 << 20;

impl Validator<'_> {
    /// Reads `[limits]` into `c.limits`.
    pub(super) fn limits(&mut self, raw: RawLimits, c: &mut Config) {
        self.unknown("limits", raw.unknown);
        self.read(&mut c.limits.memory, "limits.memory", raw.memory, memory);
        self.read(
            &mut c.limits.memory_interval,
            "limits.memory_interval",
            raw.memory_interval,
            check::period,
        );
    }
}

/// `"auto"`, `"off"`, a number of bytes, or a size with its unit (`"512MiB"`,
/// `"2GiB"`, `"300MB"`).
fn memory(value: toml::Value) -> Checked<MemoryLimit> {
    let bytes = match &value {
        toml::Value::String(s) if s == "auto" => return Ok(MemoryLimit::Auto),
        toml::Value::String(s) if s == "off" => return Ok(MemoryLimit::Off),
        toml::Value::String(s) => parse_size(s).ok_or_else(|| {
            format!(
                "`{s}` must be \"auto\", \"off\", a number of bytes or a size such as \"512MiB\" or \"2GiB\""
            )
        })?,
        toml::Value::Integer(n) if *n > 0 => n.unsigned_abs(),
        other => {
            return Err(format!(
                "{other} must be \"auto\", \"off\", a number of bytes or a size such as \"512MiB\""
            ));
        }
    };
    if bytes < MIN_MEMORY {
        return Err(format!(
            "{} is less than the least budget, {}",
            format_size(bytes),
            format_size(MIN_MEMORY)
        ));
    }
    Ok(MemoryLimit::Bytes(bytes))
}

/// `512MiB`, `2 GiB`, `300MB`, `1.5GiB`, `1048576` → bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => return None,
    };
    let bytes = number * scale;
    (1.0..1e19).contains(&bytes).then_some(bytes as u64)
}

/// Bytes as `check-config` shows a budget: `"512MiB"` when whole, else the number.
fn format_size(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes.is_multiple_of(1 << 30) {
        format!("{}GiB", bytes >> 30)
    } else if bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// The `[limits]` lines of `check-config`.
pub(crate) fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let quote = |v: &str| toml::Value::String(v.to_owned()).to_string();
    let memory = match config.limits.memory {
        MemoryLimit::Auto => quote("auto"),
        MemoryLimit::Off => quote("off"),
        MemoryLimit::Bytes(n) => quote(&format_size(n)),
    };
    vec![
        ("limits.memory", memory),
        (
            "limits.memory_interval",
            quote(&duration::format(config.limits.memory_interval)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_budgets_are_read_and_checked() {
        let s = |t: &str| memory(toml::Value::String(t.into()));
        assert_eq!(s("auto"), Ok(MemoryLimit::Auto));
        assert_eq!(s("off"), Ok(MemoryLimit::Off));
        assert_eq!(s("512MiB"), Ok(MemoryLimit::Bytes(512 << 20)));
        assert_eq!(s("1.5GiB"), Ok(MemoryLimit::Bytes(3 << 29)));
        assert_eq!(s("300MB"), Ok(MemoryLimit::Bytes(300_000_000)));
        assert_eq!(
            memory(toml::Value::Integer(64 << 20)),
            Ok(MemoryLimit::Bytes(64 << 20))
        );
        for bad in ["lots", "12XB", "-5MiB", ""] {
            assert!(s(bad).is_err(), "{bad}");
        }
        let small = s("1MiB").unwrap_err();
        assert!(small.contains("32MiB"), "{small}");
        assert!(memory(toml::Value::Integer(0)).is_err());
        assert!(memory(toml::Value::Boolean(true)).is_err());
        assert_eq!(format_size(3 << 29), "1536MiB");
        assert_eq!(format_size(2 << 30), "2GiB");
    }
}
