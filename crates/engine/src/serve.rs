//! The accept loop: HTTP/1.1 connections with upgrades, requests under the engine
//! path to the engine, everything else to a fallback service, until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::eio::{Body, EngineServer};
use crate::shutdown::Shutdown;

/// A client that opened TCP but has not sent its request headers within this time is
/// disconnected: half-open and slow-header connections must not hold file descriptors.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The default fallback: 404 with a JSON error.
pub async fn not_found(_req: Request<Incoming>) -> Response<Body> {
    let mut res = Response::new(Body::from(
        r#"{"code":"not_found","message":"no such route"}"#,
    ));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    res
}

/// Serves `engine` (and `fallback` for other paths) on `listener` until `shutdown`.
/// In-flight HTTP connections finish gracefully; sessions close through their own
/// drivers, which observe the same signal.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    engine: Arc<EngineServer>,
    fallback: F,
    shutdown: Shutdown,
) -> std::io::Result<()>
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            remote,
            engine.clone(),
            fallback.clone(),
            shutdown.clone(),
        ));
    }
}

async fn connection<F, Fut>(
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    engine: Arc<EngineServer>,
    fallback: F,
    shutdown: Shutdown,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |req: Request<Incoming>| {
        let engine = engine.clone();
        let fallback = fallback.clone();
        async move {
            let res = if engine.matches(req.uri().path()) {
                engine.handle(req, remote).await
            } else {
                fallback(req).await
            };
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                tracing::debug!(%remote, error = %err, "http connection ended with error");
            }
        }
        _ = shutdown.wait() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
