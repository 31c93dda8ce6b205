//! Wiring: builds the Socket.IO server from the config, serves it beside the HTTP routes
//! on one listener, and drains it within a deadline when told to stop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use switchboard_engine::eio::Body;
use switchboard_engine::shutdown::{self, ShutdownTrigger};
use switchboard_engine::{ConnectError, Io, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::config::Config;
use crate::http::{self as routes, State};

/// How often the drain checks whether every session has closed. The engine exposes a
/// count, not a notification; 10 ms keeps the exit prompt at no measurable cost during
/// a drain bounded by the deadline.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The refusal sent for a namespace that is not configured: Node's message for a
/// namespace that does not exist, which clients already handle.
const INVALID_NAMESPACE: &str = "Invalid namespace";

/// A bound server, not yet serving.
#[derive(Debug)]
pub(crate) struct Server {
    listener: TcpListener,
    io: Io,
    /// Fired once, when `run`'s stop future resolves; every session driver, the accept
    /// loop and the HTTP connections observe its [`Shutdown`].
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    drain_deadline: Duration,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Whether every session and HTTP connection closed before the deadline.
    pub(crate) in_time: bool,
    /// Sessions still open when the drain ended.
    pub(crate) sessions_left: usize,
    /// How long the drain took.
    pub(crate) took: Duration,
}

impl Server {
    /// Binds the listener and builds the server `config` describes.
    pub(crate) async fn bind(config: &Config) -> io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let (trigger, shutdown) = shutdown::channel();
        let io = build_io(config, shutdown.clone());
        Ok(Server {
            listener,
            io,
            trigger,
            shutdown,
            drain_deadline: config.drain_deadline,
        })
    }

    /// The bound address (with the real port when the config asked for port 0).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` resolves, then shuts down: readiness turns 503, the listener
    /// stops accepting, every session is closed with "server shutting down", and the
    /// drain waits for them (and for in-flight HTTP responses) up to the deadline.
    pub(crate) async fn run(self, stop: impl Future<Output = ()>) -> io::Result<Drained> {
        let (alive, finished) = mpsc::channel(1);
        let fallback = Fallback {
            state: State::new(self.io.clone(), self.shutdown.clone()),
            _alive: alive,
        };
        let mut accept = tokio::spawn(switchboard_engine::serve(
            self.listener,
            self.io.engine().clone(),
            move |req| std::future::ready(fallback.route(req)),
            self.shutdown,
        ));
        tokio::select! {
            () = stop => {}
            ended = &mut accept => {
                // The accept loop only returns after shutdown, so this is a panic.
                return Err(io::Error::other(format!("accept loop ended: {ended:?}")));
            }
        }
        self.trigger.trigger();
        Ok(drain(&self.io, accept, finished, self.drain_deadline).await)
    }
}

/// The fallback handed to `serve`: the HTTP routes, plus a token that tells the drain
/// when every HTTP connection has ended.
///
/// `serve` moves a clone of its fallback into each connection task and drops it when
/// that connection ends, so the `_alive` senders count open HTTP connections. Waiting
/// for all of them means every response — notably the `close` packet a pending
/// long-poll receives — has been written before the process exits.
#[derive(Debug, Clone)]
struct Fallback {
    state: State,
    _alive: mpsc::Sender<()>,
}

impl Fallback {
    fn route<B>(&self, req: Request<B>) -> Response<Body> {
        routes::route(&self.state, &req)
    }
}

/// Waits, up to `deadline`, for every session to close, the accept loop to return and
/// every HTTP connection to end.
async fn drain(
    io: &Io,
    accept: JoinHandle<io::Result<()>>,
    mut finished: mpsc::Receiver<()>,
    deadline: Duration,
) -> Drained {
    let started = Instant::now();
    let engine = io.engine();
    let all_closed = async {
        while engine.session_count() > 0 {
            tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
        }
        let _ = accept.await;
        // `None` once the last connection dropped its `Fallback`.
        let _ = finished.recv().await;
    };
    let in_time = tokio::time::timeout(deadline, all_closed).await.is_ok();
    Drained {
        in_time,
        sessions_left: engine.session_count(),
        took: started.elapsed(),
    }
}

/// The Socket.IO server: the configured namespaces accept every connection; namespace
/// `/`, which the engine always has, refuses connections unless it is configured.
fn build_io(config: &Config, shutdown: Shutdown) -> Io {
    let io = Io::new(config.socketio.clone(), shutdown);
    for name in &config.namespaces {
        let ns = io.of(name);
        ns.on_connection(|socket| {
            tracing::debug!(sid = %socket.id(), namespace = socket.namespace(), "socket connected");
        });
        ns.on_disconnect(|socket, reason| {
            tracing::debug!(
                sid = %socket.id(),
                namespace = socket.namespace(),
                %reason,
                "socket disconnected"
            );
        });
    }
    if !config.namespaces.iter().any(|name| name == "/") {
        io.of("/")
            .use_middleware(|_socket| async { Err(ConnectError::new(INVALID_NAMESPACE)) });
    }
    io
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stop_drains_at_once_without_sessions() -> io::Result<()> {
        let config = Config {
            listen: "127.0.0.1:0".parse().map_err(io::Error::other)?,
            ..Config::default()
        };
        let server = Server::bind(&config).await?;
        let drained = server.run(async {}).await?;
        assert!(drained.in_time);
        assert_eq!(drained.sessions_left, 0);
        Ok(())
    }

    #[tokio::test]
    async fn configured_namespaces_exist() {
        let config = Config {
            namespaces: vec!["/chat".into(), "/orders".into()],
            ..Config::default()
        };
        let io = build_io(&config, Shutdown::never());
        let mut names: Vec<String> = io
            .namespaces()
            .iter()
            .map(|n| n.name().to_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["/", "/chat", "/orders"]);
    }
}
