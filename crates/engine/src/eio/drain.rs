//! The paced drain: closes the open sessions in batches, a pause between batches,
//! everything left at once at the deadline (see [`DrainPlan`]).
//!
//! Each session is closed like any server-side close with reason "server shutting
//! down": its driver writes what is queued, then the Engine.IO `close` packet (a
//! polling session keeps its last frames for the client's next GET, briefly), then
//! ends the transport. The clients see "transport close" and reconnect by themselves
//! (a Socket.IO DISCONNECT packet would not do: the client takes "io server disconnect"
//! as final), and the reason is one the Socket.IO layer keeps recovery sessions for.
//!
//! The drain also waits, within the same deadline, for the WebSocket upgrades this
//! node relays to other nodes to get past the client's `upgrade` packet: cut before
//! it (by the shutdown that follows the drain), a client stays paused until its ping
//! timeout (see the relay's `watch` module). New relays are refused from the drain's
//! start, so that wait is short: one probe's round trip.

use tokio::time::Instant;

use crate::reason::DisconnectReason;
use crate::shutdown::{DrainPlan, DrainReport};

use super::registry::Registry;

/// Runs `plan` over the sessions of `registry`. Returns once every session has
/// finished, or at the deadline.
pub(crate) async fn run(registry: &Registry, plan: DrainPlan) -> DrainReport {
    let deadline = Instant::now() + plan.deadline;
    let batch_size = plan.batch_size.max(1);
    let mut report = DrainReport::default();
    loop {
        let open = registry.open_sessions();
        if open.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            report.at_deadline = open.len();
            tracing::debug!(sessions = open.len(), "drain deadline: closing the rest");
            for session in &open {
                session.close(DisconnectReason::ServerShuttingDown);
            }
            break;
        }
        let batch = &open[..batch_size.min(open.len())];
        for session in batch {
            session.close(DisconnectReason::ServerShuttingDown);
        }
        report.batches += 1;
        report.paced += batch.len();
        tracing::debug!(
            closed = batch.len(),
            left = open.len() - batch.len(),
            "drain batch"
        );
        // The engine refuses new sessions while draining, so once the last batch is
        // closed there is nothing to wait another interval for.
        if batch.len() == open.len() {
            break;
        }
        tokio::time::sleep_until((Instant::now() + plan.interval).min(deadline)).await;
    }
    let _ = tokio::time::timeout_at(deadline, registry.emptied()).await;
    report.unfinished = registry.len();
    report.relayed_upgrades_unfinished = registry.relayed_upgrades();
    report
}
