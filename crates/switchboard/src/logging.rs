//! Log output: `tracing` events to stderr as text or JSON lines, filtered by the
//! configured level (stdout is kept for the `listening on ADDR` line).

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. A second call (only possible in tests) is ignored.
pub(crate) fn init(config: &LogConfig) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(config.level.to_filter())
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
