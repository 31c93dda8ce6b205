//! Progress bars for long phases (opening thousands of connections, timed runs); they
//! draw on a terminal only, so CI logs stay plain.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Redraw interval of a timed phase's bar.
const TICK: Duration = Duration::from_millis(200);

/// A progress bar for one phase.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The bar (hidden when stderr is not a terminal).
    bar: ProgressBar,
}

impl Progress {
    /// A bar counting to `total` items.
    pub(crate) fn new(label: &str, total: u64) -> Progress {
        Progress::styled(
            label,
            total,
            "  {msg:36} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
    }

    /// A bar with the given indicatif template.
    fn styled(label: &str, total: u64, template: &str) -> Progress {
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_owned());
        Progress { bar }
    }

    /// A bar for a phase of `duration`, advanced by a ticker until finished.
    pub(crate) fn timed(label: &str, duration: Duration) -> Progress {
        let template = "  {msg:36} [{bar:30}] {elapsed} of {len}ms";
        let progress = Progress::styled(label, duration.as_millis() as u64, template);
        let bar = progress.bar.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            while !bar.is_finished() {
                tick.tick().await;
                bar.set_position(bar.elapsed().as_millis() as u64);
            }
        });
        progress
    }

    /// One more item done.
    pub(crate) fn inc(&self) {
        self.bar.inc(1);
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
