//! The accept loop: HTTP/1.1 connections with upgrades, at most `max_tcp_connections`
//! of them (and, with `max_sessions_per_ip` set, at most twice that plus 8 from one
//! address that is not a trusted proxy), requests under the engine path to the engine,
//! everything else to the [`Site`], until shutdown.

use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::eio::client_ip::{AddressCounts, AddressPermit, ClientKey, is_trusted, tcp_bound};
use crate::eio::{Body, EngineServer};
use crate::shutdown::Shutdown;

/// A client that opened TCP but has not sent its request headers within this time is
/// disconnected: half-open, silent and slow-header connections must not hold file
/// descriptors. hyper starts this timer as soon as it waits for a request, so it also
/// reaps a connection that never sends a byte, and a keep-alive connection left idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes of a request's start line and headers; a larger head gets
/// `431 Request Header Fields Too Large` from hyper and never reaches the engine.
/// Node's default (`--max-http-header-size`), so clients that work with Socket.IO on
/// Node work here; hyper's own default (its ~400 KB read buffer) let each of many
/// connections hold hundreds of kilobytes of headers.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most bytes hyper buffers for one connection's reads or writes (its default is about
/// 400 KB): a response streamed to a client that reads slowly (a static file, an SSE
/// stream) waits in hyper's write buffer up to this, and the rest stays unread in its
/// source. A whole body (every Engine.IO answer) is handed over in one piece whatever
/// its size.
pub const MAX_BUF_BYTES: usize = 64 * 1024;

/// The rest of the site: answers every request on the listener that the engine does
/// not own (whose path is not under [`EngineConfig::path`](crate::EngineConfig::path)) —
/// an HTTP API, health checks, static files, or just a 404.
///
/// Why a trait: this is the one seam between the accept loop and whatever a program
/// serves beside Socket.IO, so the route from listener to handler reads
/// `serve` → [`EngineServer::matches`] → the engine or [`Site::answer`].
///
/// [`serve`] clones the site into every connection and drops that clone when the
/// connection ends, so a site may carry a per-connection token (the binary counts open
/// HTTP connections this way). Any `Clone` function or closure from a request to a
/// response future is a site; [`not_found`] answers every request with a 404.
pub trait Site: Clone + Send + Sync + 'static {
    /// Answers one request outside the engine path.
    fn answer(&self, req: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send;
}

impl<F, Fut> Site for F
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    fn answer(&self, req: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send {
        self(req)
    }
}

/// The smallest [`Site`]: 404 with a JSON error for every request.
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

/// Serves `engine` (and `site` for other paths) on `listener` until `shutdown`.
/// In-flight HTTP connections finish gracefully; sessions close through their own
/// drivers, which observe the same signal.
///
/// At most [`EngineConfig::max_tcp_connections`](crate::EngineConfig) connections are
/// open at once: each holds a permit for its whole life (a WebSocket keeps its
/// connection's), and one accepted beyond is closed at once and counted in
/// `tcp_connections_refused`.
pub async fn serve(
    listener: TcpListener,
    engine: Arc<EngineServer>,
    site: impl Site,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    // Why a semaphore: a permit is taken without waiting when one is free, and given
    // back by whoever owns the connection last (hyper, or the WebSocket it became).
    let permits = Arc::new(Semaphore::new(engine.config().max_tcp_connections));
    let per_address = tcp_bound(engine.config().max_sessions_per_ip);
    let addresses = Arc::new(AddressCounts::default());
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused(
                &engine,
                remote,
                "max_tcp_connections reached, connection closed",
            );
            continue;
        };
        // A trusted proxy carries many clients: only the others are counted.
        let address = match per_address {
            Some(bound) if !is_trusted(remote.ip(), &engine.config().trusted_proxies) => {
                let Some(counted) = addresses.take(ClientKey::of(remote.ip()), bound) else {
                    refused(
                        &engine,
                        remote,
                        "too many connections from one address, closed",
                    );
                    continue;
                };
                Some(counted)
            }
            _ => None,
        };
        let _ = stream.set_nodelay(true);
        // A peer gone without a reset (its network lost, a device asleep) is dropped
        // once what was sent to it goes unacknowledged for a heartbeat cycle (at least
        // `MIN_USER_TIMEOUT`), not after retransmissions give up (about 15 minutes).
        // Every transport's client misses a pong by then anyway; an SSE listener,
        // which cannot answer pings, had no other bound.
        let heartbeat = engine.config().ping_interval + engine.config().ping_timeout;
        drop_when_unacknowledged(&stream, heartbeat);
        let stream = WriteBounded::holding(stream, heartbeat, (permit, address));
        tokio::spawn(connection(
            stream,
            remote,
            engine.clone(),
            site.clone(),
            shutdown.clone(),
        ));
    }
}

/// Least `TCP_USER_TIMEOUT` of an accepted connection, whatever the heartbeat: the
/// option holds for every connection (the API's, static files', relays'), and a
/// heartbeat of a few hundred milliseconds (tests, fast failure detection) would have
/// let one burst of loss end them.
pub const MIN_USER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Has the kernel drop `stream` once what was sent on it has gone unacknowledged for
/// `after`, or [`MIN_USER_TIMEOUT`] if that is longer (`TCP_USER_TIMEOUT`, Linux
/// only): a peer gone without a reset is then noticed within it, not after
/// retransmissions give up (about 15 minutes).
pub fn drop_when_unacknowledged(stream: &TcpStream, after: Duration) {
    #[cfg(target_os = "linux")]
    let _ = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(after.max(MIN_USER_TIMEOUT)));
    #[cfg(not(target_os = "linux"))]
    let _ = (stream, after);
}

/// Counts and logs a connection closed as soon as accepted (it is dropped by the
/// caller: the peer sees the connection closed, or reset).
fn refused(engine: &EngineServer, remote: SocketAddr, why: &'static str) {
    engine
        .metrics()
        .tcp_connections_refused
        .fetch_add(1, Ordering::Relaxed);
    let remote = engine.config().client_ips.show(remote.ip());
    tracing::debug!(?remote, "{why}");
}

/// A TCP connection of the public listener with its place among
/// `max_tcp_connections` (and its address's, when counted): both go back when the
/// connection is dropped, by hyper or by the WebSocket it was upgraded to. A write
/// that makes no progress for the heartbeat's whole cycle fails the connection.
type Counted = WriteBounded<(OwnedSemaphorePermit, Option<AddressPermit>)>;

/// A TCP stream whose writes fail (`TimedOut`) once one has made no progress for its
/// limit: the peer stopped reading. The public listener's connections have it (the
/// heartbeat's whole cycle), and the API listener's. It holds `H` (the connection's
/// places among the listener's bounds) until it is dropped.
#[derive(Debug)]
pub struct WriteBounded<H = ()> {
    stream: TcpStream,
    stall: WriteStall,
    _held: H,
}

impl WriteBounded {
    /// `stream`, whose writes may wait at most `limit` for the peer to read.
    pub fn new(stream: TcpStream, limit: Duration) -> Self {
        WriteBounded::holding(stream, limit, ())
    }
}

impl<H> WriteBounded<H> {
    /// [`WriteBounded::new`], holding `held` until the stream is dropped.
    pub fn holding(stream: TcpStream, limit: Duration, held: H) -> Self {
        WriteBounded {
            stream,
            stall: WriteStall::new(limit),
            _held: held,
        }
    }
}

/// How long a write may wait for the peer to read: the heartbeat's whole cycle
/// (`ping_interval + ping_timeout`), past which a client that reads nothing is dead to
/// the heartbeat anyway. Without it a peer that stops reading (its window closed, its
/// acknowledgements still coming) kept its connection, with what hyper had buffered
/// for it and the session its response streams from (an SSE stream's), after its
/// session had ended: hyper has no write timeout, and the connection's slot was all
/// that bounded it.
#[derive(Debug)]
struct WriteStall {
    limit: Duration,
    /// The deadline of the write waiting now; kept between stalls (one allocation per
    /// connection that ever stalls, none for the others).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    armed: bool,
}

impl WriteStall {
    fn new(limit: Duration) -> Self {
        WriteStall {
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Passes a write's outcome through: progress disarms the deadline; `Pending`
    /// arms it, and once it has passed, fails the write (`TimedOut`).
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        outcome: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if outcome.is_ready() {
            self.armed = false;
            return outcome;
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the peer read nothing for the heartbeat's whole cycle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<H: Unpin> AsyncRead for WriteBounded<H> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<H: Unpin> AsyncWrite for WriteBounded<H> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let outcome = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.stall.check(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let outcome = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.stall.check(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// One HTTP connection: each request to the engine when its path is the engine's,
/// otherwise to `site`; `site` is dropped when the connection ends.
async fn connection(
    stream: Counted,
    remote: SocketAddr,
    engine: Arc<EngineServer>,
    site: impl Site,
    shutdown: Shutdown,
) {
    let ips = engine.config().client_ips;
    // Whether a request ever began: hyper's graceful shutdown closes an idle
    // connection at once, but not one that has not sent its first request yet (a
    // browser's preconnect, a balancer's spare socket), which held every drain to its
    // deadline until its header read timed out.
    let used = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let began = used.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let engine = engine.clone();
        let site = site.clone();
        began.store(true, std::sync::atomic::Ordering::Relaxed);
        async move {
            let res = if engine.matches(req.uri().path()) {
                engine.handle(req, remote).await
            } else {
                site.answer(req).await
            };
            Ok::<_, std::convert::Infallible>(res)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_BUF_BYTES)
        // At most 100 headers (more get 431): hyper's default, left unset because
        // setting it moves hyper's header array to the heap for every request.
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(err) = res {
                let remote = ips.show(remote.ip());
                tracing::debug!(?remote, error = %err, "http connection ended with error");
            }
        }
        _ = shutdown.wait() => {
            if !used.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
