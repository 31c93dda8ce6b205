//! Reading auth settings out of a `toml::Value`: the [`SettingError`] every parser
//! returns and the [`TableReader`] that keeps reading after a bad value, so one load
//! reports every problem with its dotted key path. Both are `switchboard-settings`'s,
//! shared with the binary and `switchboard-hooks` (one duration grammar, one error
//! format); this module only re-exports them under the paths the parsers use.

pub use switchboard_settings::{SettingError, TableReader, join};
