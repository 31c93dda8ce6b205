//! The separate API listener (`api.listen`): HTTP/1.1 connections answered by the API
//! router alone (and `/metrics`, with `api.metrics`), until shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_engine::{
    HEADER_READ_TIMEOUT, MAX_BUF_BYTES, MAX_HEADER_BYTES, Shutdown, WriteBounded,
    drop_when_unacknowledged,
};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::Router;
use crate::http::{self as routes, State};
use crate::paths::METRICS_PATH;

/// Pause after a failed `accept` (usually EMFILE) before trying again, instead of
/// spinning on an error that lasts until a descriptor is freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Open connections on the API listener. Backends keep a few pooled connections each;
/// a thousand leaves room for many backends while bounding what a flood of idle
/// connections (the listener may be reachable by more than the backends) can hold.
/// One beyond is closed at once.
pub(crate) const MAX_API_CONNECTIONS: usize = 1024;

/// Serves `router` on `listener` until `shutdown`, and `/metrics` from `metrics` when
/// given. Each connection holds a clone of `alive` until it ends, so the drain can
/// wait for in-flight responses.
///
/// `stall`: how long a connection may go without its peer reading what is written to
/// it (a write making no progress; data sent and not acknowledged, seen by the
/// kernel), after which it is closed: the public listener's connections get the
/// heartbeat's whole cycle, and so do these, but at least 10 s. Before 2026-12-08 an
/// API connection had neither bound, so a client that asked for a large answer
/// (`GET /api/v1/sockets`) and never read it held its place among
/// [`MAX_API_CONNECTIONS`], and the answer, for as long as it kept the connection
/// open.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    metrics: Option<State>,
    shutdown: Shutdown,
    alive: mpsc::Sender<()>,
    stall: Duration,
) {
    let permits = Arc::new(Semaphore::new(MAX_API_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "api accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = shutdown.wait() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!("api connection limit reached, connection closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        drop_when_unacknowledged(&stream, stall);
        let conn = connection(
            WriteBounded::holding(stream, stall, permit),
            router.clone(),
            metrics.clone(),
            shutdown.clone(),
            alive.clone(),
        );
        tokio::spawn(conn);
    }
}

/// One connection: requests in turn, with the engine's header read timeout (slow
/// headers) and size bound, and the API's own body timeout (slow bodies). `stream`
/// holds its place among [`MAX_API_CONNECTIONS`] until it is dropped.
async fn connection(
    stream: WriteBounded<OwnedSemaphorePermit>,
    router: Router,
    metrics: Option<State>,
    shutdown: Shutdown,
    _alive: mpsc::Sender<()>,
) {
    // As the public listener's: a connection that never sent a request is dropped at
    // shutdown (hyper's graceful shutdown waits for its first request).
    let used = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let began = used.clone();
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        began.store(true, std::sync::atomic::Ordering::Relaxed);
        let router = router.clone();
        let metrics = metrics
            .as_ref()
            .filter(|_| req.uri().path() == METRICS_PATH)
            .cloned();
        async move {
            Ok::<_, std::convert::Infallible>(match metrics {
                Some(state) => routes::route(&state, &req),
                None => router.handle(req).await,
            })
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUF_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(error = %err, "api connection ended with error");
            }
        }
        () = shutdown.wait() => {
            if !used.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
