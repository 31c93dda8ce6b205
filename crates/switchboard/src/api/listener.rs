//! The separate API listener (`api.listen`): HTTP/1.1 connections answered by the API
//! router alone, until shutdown.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use switchboard_engine::{HEADER_READ_TIMEOUT, Shutdown};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Router;

/// Pause after a failed `accept` (usually EMFILE) before trying again, instead of
/// spinning on an error that lasts until a descriptor is freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown`. Each connection holds a clone of
/// `alive` until it ends, so the drain can wait for in-flight responses.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    alive: mpsc::Sender<()>,
) {
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
        let _ = stream.set_nodelay(true);
        let conn = connection(stream, router.clone(), shutdown.clone(), alive.clone());
        tokio::spawn(conn);
    }
}

/// One connection: requests in turn, with the engine's header read timeout (slow
/// headers) and the API's own body timeout (slow bodies).
async fn connection(
    stream: TcpStream,
    router: Router,
    shutdown: Shutdown,
    _alive: mpsc::Sender<()>,
) {
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        async move { Ok::<_, std::convert::Infallible>(router.handle(req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(error = %err, "api connection ended with error");
            }
        }
        () = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
