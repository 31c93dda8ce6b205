//! `[diagnosis]`: how many disconnect reports and timeline steps a node keeps, and how
//! much of a client's IP address hooks and logs may show (docs/diagnosis.md).

use switchboard_engine::scrub::ClientIps;

use super::Config;
use super::check::{self, Checked};
use super::raw::{Count, Field, Unknown};
use super::validate::Validator;

/// `[diagnosis]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawDiagnosis {
    pub(crate) reports: Option<Field<Count>>,
    pub(crate) breadcrumbs: Option<Field<Count>>,
    pub(crate) client_ips: Option<Field<String>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// The keys of `[diagnosis]`, for [`super::raw::SECTIONS`].
pub(crate) const DIAGNOSIS_KEYS: &[&str] = &["reports", "breadcrumbs", "client_ips"];

/// Most reports a node may be told to keep: about 50 MB at the measured size of one
/// with a full timeline.
const MAX_REPORTS: usize = 20_000;
/// Most steps a socket's timeline may be told to keep.
const MAX_BREADCRUMBS: usize = 256;

impl Validator<'_> {
    /// Reads `[diagnosis]` into the engine's settings.
    pub(super) fn diagnosis(&mut self, raw: RawDiagnosis, c: &mut Config) {
        self.unknown("diagnosis", raw.unknown);
        let s = &mut c.socketio;
        self.read(
            &mut s.max_disconnect_reports,
            "diagnosis.reports",
            raw.reports,
            |n| at_most(n, MAX_REPORTS),
        );
        self.read(
            &mut s.breadcrumbs,
            "diagnosis.breadcrumbs",
            raw.breadcrumbs,
            |n| at_most(n, MAX_BREADCRUMBS),
        );
        self.read(
            &mut s.engine.client_ips,
            "diagnosis.client_ips",
            raw.client_ips,
            client_ips,
        );
    }
}

fn at_most(n: Count, max: usize) -> Checked<usize> {
    let n = check::any_count(n)?;
    if n > max {
        return Err(format!("{n} is more than {max}"));
    }
    Ok(n)
}

fn client_ips(name: String) -> Checked<ClientIps> {
    ClientIps::parse(&name).ok_or_else(|| {
        format!(
            "`{name}` must be one of {}",
            ClientIps::NAMES.map(|n| format!("\"{n}\"")).join(", ")
        )
    })
}

/// The name of a setting, as written in the configuration.
pub(crate) fn client_ips_name(ips: ClientIps) -> &'static str {
    match ips {
        ClientIps::Keep => "keep",
        ClientIps::Truncate => "truncate",
        ClientIps::Drop => "drop",
    }
}

/// The `[diagnosis]` lines of `check-config`.
pub(crate) fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let quote = |v: &str| toml::Value::String(v.to_owned()).to_string();
    vec![
        (
            "diagnosis.reports",
            config.socketio.max_disconnect_reports.to_string(),
        ),
        (
            "diagnosis.breadcrumbs",
            config.socketio.breadcrumbs.to_string(),
        ),
        (
            "diagnosis.client_ips",
            quote(client_ips_name(config.socketio.engine.client_ips)),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked() {
        assert_eq!(at_most(Count(5), 10), Ok(5));
        assert!(at_most(Count(11), 10).is_err());
        assert_eq!(client_ips("truncate".into()), Ok(ClientIps::Truncate));
        let err = client_ips("mask".into()).unwrap_err();
        assert!(err.contains("\"keep\", \"truncate\", \"drop\""), "{err}");
    }
}
