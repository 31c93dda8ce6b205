//! Log output: `tracing` events to stderr as text or JSON lines, filtered by the
//! configured level (stdout is kept for the `listening on ADDR` line).

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. A second call (only possible in tests) is ignored.
pub(crate) fn init(config: &LogConfig) {
    use std::io::IsTerminal as _;
    // Colours only for a person at a terminal: log collectors would store the escape
    // codes verbatim.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(config.level.to_filter())
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
