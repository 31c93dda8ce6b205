//! The node's memory pressure monitor: samples resident memory, moves through the
//! tiers of [`crate::pressure`] and applies what each one does at the node level —
//! the log line and the timeline step of each transition, the recovery buffers pruned
//! to their halved bounds on entering critical, and, while imminent, the connections
//! holding the most queued bytes shed until the node is back under critical. The
//! per-packet effects (volatile drops, halved queue bounds, refused handshakes) read
//! the tier from the metrics where they act.

use std::sync::atomic::Ordering::Relaxed;

use tokio::time::MissedTickBehavior;

use crate::breadcrumbs::Step;
use crate::diagnosis::bytes;
use crate::pressure::{Change, PressureConfig, Tier, next_tier};
use crate::shutdown::Shutdown;

use super::Io;

impl Io {
    /// Watches resident memory against `config.budget` every `config.interval` until
    /// `shutdown`, reading it with `sample` ([`pressure::rss_bytes`] in production;
    /// a test passes its own). One monitor per node.
    pub fn watch_memory(
        &self,
        config: PressureConfig,
        mut sample: impl FnMut() -> Option<u64> + Send + 'static,
        shutdown: Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let io = self.clone();
        let metrics = io.engine().metrics().clone();
        metrics.memory_budget.store(config.budget, Relaxed);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(config.interval);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut tier = Tier::Normal;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    () = shutdown.wait() => return,
                }
                let Some(rss) = sample() else { continue };
                metrics.memory_rss.store(rss, Relaxed);
                let next = next_tier(tier, rss, config.budget);
                if next != tier {
                    io.pressure_changed(tier, next, rss, config.budget);
                    tier = next;
                }
                if tier == Tier::Imminent {
                    io.shed(rss, config.budget);
                }
            }
        })
    }

    /// Tells `listener` of every memory pressure transition, in order.
    pub fn on_pressure(&self, listener: impl Fn(&Change) + Send + Sync + 'static) {
        self.inner().pressure_listeners.add(listener);
    }

    fn pressure_changed(&self, from: Tier, to: Tier, rss: u64, budget: u64) {
        let metrics = self.engine().metrics();
        metrics.set_pressure_tier(to);
        let share = rss as f64 * 100.0 / budget.max(1) as f64;
        let (rss_text, budget_text) = (size(rss), size(budget));
        if to > from {
            tracing::warn!(
                from = %from, to = %to, rss = %rss_text, budget = %budget_text,
                share = format!("{share:.0} %"), "memory pressure rising"
            );
        } else {
            tracing::info!(
                from = %from, to = %to, rss = %rss_text, budget = %budget_text,
                share = format!("{share:.0} %"), "memory pressure easing"
            );
        }
        self.inner().node_step(Step::Pressure(to.as_str()));
        if to >= Tier::Critical && from < Tier::Critical {
            // The buffers' bounds are halved from now on: give back what is over them.
            for ns in self.namespaces() {
                if let Some(buffer) = ns.recovery() {
                    buffer.prune_now();
                }
            }
        }
        let change = Change {
            from,
            to,
            rss,
            budget,
        };
        self.inner().pressure_listeners.tell(&change);
    }

    /// Closes the connections holding the most queued bytes until what they held
    /// covers the excess over the critical line.
    fn shed(&self, rss: u64, budget: u64) {
        let critical = (budget as f64 * Tier::Critical.threshold()) as u64;
        let excess = rss.saturating_sub(critical);
        let (closed, freed) = self.engine().shed(excess);
        if closed > 0 {
            tracing::warn!(
                closed, held = %size(freed), excess = %size(excess),
                "memory pressure imminent: shed the connections holding the most queued bytes"
            );
        } else {
            tracing::warn!(
                excess = %size(excess),
                "memory pressure imminent, and no connection holds queued bytes to shed"
            );
        }
    }
}

fn size(n: u64) -> String {
    bytes(usize::try_from(n).unwrap_or(usize::MAX))
}
