//! Server-Sent Events on `switchboard serve`, side by side with its Socket.IO clients
//! over WebSocket: the same server, config and publisher, only the receivers' transport
//! differs. Each step runs one transport on a fresh server process.
//!
//! - Idle: server RSS before any receiver, then with `--sse-idle-counts` receivers in
//!   one room (`GET /sse?nsp=/&room=idle`, or a Socket.IO client that joins `idle`),
//!   per receiver; and what the server's `/metrics` counts for the transport.
//! - Fan-out: one room of `--sse-room-sizes` receivers; the publisher is the HTTP API
//!   (`POST /api/v1/emit` of `bench` (room, 100-byte stamped payload) to the room,
//!   pipelined on one connection): as fast as the server accepts (the `fanout`
//!   scenario's closed loop), then at `--sse-rate` emits per second (latency).

use std::sync::Arc;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::fleet::{RoomsOf, Transport};
use crate::http::{self, METRICS_PATH};
use crate::publish::Via;
use crate::scenarios::fanout::{self, FanoutResult, LatencyResult};
use crate::scenarios::idle::{self, IdleResult};
use crate::scenarios::{Params, Target};

/// The room of the idle receivers (the WebSocket clients join it, as SSE listeners do,
/// so both hold one membership).
const IDLE_ROOM: &str = "idle";

/// What one transport measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TransportResult {
    /// The receivers' transport.
    pub(crate) transport: Transport,
    /// Idle memory.
    pub(crate) idle: Option<IdleResult>,
    /// `switchboard_connections{transport=…}` on the server's `/metrics` at the
    /// largest idle count: the server's own count of the receivers.
    pub(crate) server_connections: Option<u64>,
    /// Fan-out as fast as the server accepts, one per room size.
    pub(crate) fanout: Vec<FanoutResult>,
    /// Latency at the fixed rate, one per room size.
    pub(crate) latency: Vec<LatencyResult>,
}

impl TransportResult {
    /// Nothing measured yet.
    pub(crate) fn new(transport: Transport) -> TransportResult {
        TransportResult {
            transport,
            idle: None,
            server_connections: None,
            fanout: Vec::new(),
            latency: Vec::new(),
        }
    }
}

/// The `/metrics` series that counts a transport's connections.
fn connections_series(transport: Transport) -> &'static str {
    match transport {
        Transport::WebSocket => "switchboard_connections{transport=\"websocket\"}",
        Transport::Sse => "switchboard_connections{transport=\"sse\"}",
    }
}

/// Idle memory over `transport`; also the server's count of its connections at the
/// largest count.
pub(crate) async fn idle(
    target: &Target,
    params: &Params,
    transport: Transport,
) -> anyhow::Result<(IdleResult, u64)> {
    let rooms: RoomsOf = Arc::new(|_| vec![IDLE_ROOM.to_owned()]);
    let counts = &params.sse_idle_counts;
    let settle = params.idle_settle_secs;
    let (result, fleet) = idle::measure(target, transport, rooms, counts, settle).await?;
    let (status, text) = http::get(&target.pool, target.addr, METRICS_PATH)
        .await
        .context("GET /metrics")?;
    anyhow::ensure!(status == 200, "GET /metrics answered {status}");
    let series = connections_series(transport);
    let counted = http::sample(&text, series).with_context(|| format!("no {series}"))?;
    drop(fleet);
    Ok((result, counted as u64))
}

/// Fan-out and fixed-rate latency on one room of `size` receivers over `transport`,
/// published through the API.
pub(crate) async fn fanout(
    target: &Target,
    params: &Params,
    transport: Transport,
    size: usize,
) -> anyhow::Result<(FanoutResult, LatencyResult)> {
    let mut room = fanout::open_room_via(target, size, transport, Via::Api).await?;
    let (mut peak, _) = fanout::measure_peak(&mut room, target, params).await?;
    let what = transport.label();
    eprintln!(
        "    {what} fanout {size}: {:.0} deliveries/s, {:.2} server CPU s per M",
        peak.deliveries_per_sec, peak.server_cpu_s_per_m
    );
    let rate = (params.sse_rate.max(1.0), None);
    let latency =
        fanout::measure_latency(&mut room, target, rate, params.latency_secs, params).await?;
    eprintln!(
        "    {what} latency {size} at {:.0}/s: p50 {} µs, p99 {} µs, p99.9 {} µs, server {:.2} cores",
        latency.rate,
        latency.quantiles.p50_us,
        latency.quantiles.p99_us,
        latency.quantiles.p999_us,
        latency.server_cores
    );
    room.settle(&mut peak).await?;
    Ok((peak, latency))
}
