//! `[hooks]`: where lifecycle events and forwarded client events go. The webhook
//! settings themselves belong to `switchboard-hooks`; this module places them in the
//! config and keeps their secret out of `Debug` output and summaries.

use std::fmt;

use switchboard_hooks::WebhookSettings;
use switchboard_settings::{Errors, Section};
use toml::Value;

/// Every key of `[hooks]`.
pub(crate) const KEYS: &[&str] = &["webhook"];

/// The hooks configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct HooksConfig {
    /// Signed HTTP webhooks; `None` drops lifecycle events and refuses forwarding.
    pub(crate) webhook: Option<Webhook>,
}

/// `[hooks.webhook]`, parsed.
#[derive(Clone)]
pub(crate) struct Webhook {
    /// The settings, as `switchboard-hooks` reads them.
    pub(crate) settings: WebhookSettings,
    /// The endpoint as written, for summaries.
    pub(crate) url: String,
    /// The table as written, for equality only: it holds the secret, so it is never
    /// printed.
    source: toml::Table,
}

impl PartialEq for Webhook {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// `hooks.webhook` as `check-config` prints it: the URL, never the secret.
pub(crate) fn summary(hooks: &HooksConfig) -> String {
    let url = hooks.webhook.as_ref().map_or("(none)", |w| w.url.as_str());
    Value::String(url.to_owned()).to_string()
}

/// Reads the `hooks` value.
pub(crate) fn parse(value: &Value, problems: &mut Errors) -> HooksConfig {
    let Value::Table(table) = value else {
        problems.invalid("hooks", "must be a table ([hooks])");
        return HooksConfig::default();
    };
    let s = Section::new("hooks", table);
    s.only(KEYS, problems);
    let webhook = s
        .section("webhook", problems)
        .and_then(|t| webhook(t, problems));
    HooksConfig { webhook }
}

fn webhook(table: &toml::Table, problems: &mut Errors) -> Option<Webhook> {
    let value = Value::Table(table.clone());
    match WebhookSettings::from_toml(&value, "hooks.webhook") {
        Ok(settings) => Some(Webhook {
            settings,
            url: table
                .get("url")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            source: table.clone(),
        }),
        Err(errors) => {
            problems.extend(errors);
            None
        }
    }
}
