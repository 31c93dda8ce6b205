//! [`Io`]: the Socket.IO server. Owns the namespaces and the Engine.IO server, and is
//! the API a Rust application embeds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use http::{Request, Response};

use crate::adapter::{AdapterFactory, memory_factory};
use crate::config::SocketIoConfig;
use crate::eio::server::RequestBody;
use crate::eio::{Body, EngineHandler, EngineServer, Session, SessionHandler};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

use super::client::Client;
use super::namespace::{Handlers, Namespace};

type Matcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// State shared by the server handle, connections and namespaces.
pub(crate) struct IoInner {
    pub(crate) config: SocketIoConfig,
    /// Namespaces by name. Read on every CONNECT; written when one is created.
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    /// Patterns that create namespaces on first use, with their shared handlers.
    dynamic: RwLock<Vec<(Matcher, Arc<Handlers>)>>,
    adapters: AdapterFactory,
}

impl std::fmt::Debug for IoInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoInner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl IoInner {
    /// The namespace named `name`, created from a matching pattern if needed.
    pub(crate) fn namespace_for(&self, name: &str) -> Option<Arc<Namespace>> {
        if let Some(ns) = self
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Some(ns.clone());
        }
        let handlers = self
            .dynamic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(matches, _)| matches(name))
            .map(|(_, h)| h.clone())?;
        Some(self.create(name, handlers))
    }

    fn create(&self, name: &str, handlers: Arc<Handlers>) -> Arc<Namespace> {
        let mut map = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| {
                Namespace::new(
                    name.to_owned(),
                    handlers,
                    (self.adapters)(name),
                    self.config.recovery,
                )
            })
            .clone()
    }
}

/// Creates a [`Client`] for each new connection and closes connections that join no
/// namespace within `connect_timeout`. Holds the server state strongly: the engine
/// keeps the namespaces alive even when the embedder drops its [`Io`] handle.
struct Handler(Arc<IoInner>);

impl EngineHandler for Handler {
    fn on_open(&self, session: &Arc<Session>) -> Arc<dyn SessionHandler> {
        let io = self.0.clone();
        // Checked by the session's driver: no timer task per connection.
        session.set_app_deadline(Some(crate::eio::session::now() + io.config.connect_timeout));
        let client = Client::new(io);
        Arc::new(client)
    }
}

/// A Socket.IO server.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use switchboard_engine::{Io, SocketIoConfig, shutdown};
/// let (_trigger, signal) = shutdown::channel();
/// let io = Io::new(SocketIoConfig::default(), signal.clone());
/// io.of("/").on("message", |mut ev| {
///     let args = ev.payload.clone();
///     if let Some(ack) = ev.take_ack() { let _ = ack.send(args); }
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// switchboard_engine::serve(listener, io.engine().clone(), switchboard_engine::not_found, signal).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Io {
    inner: Arc<IoInner>,
    engine: Arc<EngineServer>,
}

impl Io {
    /// A server with in-memory rooms (one node). Namespace `/` exists from the start;
    /// other namespaces exist once [`Io::of`] or [`Io::of_matching`] declares them.
    pub fn new(config: SocketIoConfig, shutdown: Shutdown) -> Self {
        Io::with_adapter(
            config,
            memory_factory(),
            Arc::new(Metrics::default()),
            shutdown,
        )
    }

    /// A server with a custom adapter and a shared metrics registry.
    pub fn with_adapter(
        config: SocketIoConfig,
        adapters: AdapterFactory,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Self {
        let engine_config = config.engine.clone();
        let inner = Arc::new(IoInner {
            config,
            namespaces: RwLock::default(),
            dynamic: RwLock::default(),
            adapters,
        });
        let handler = Arc::new(Handler(inner.clone()));
        let engine = EngineServer::new(engine_config, handler, metrics, shutdown);
        // The main namespace always exists, as in Node (`io.sockets`).
        inner.create("/", Arc::default());
        Io { inner, engine }
    }

    /// The namespace `name`, created if needed.
    pub fn of(&self, name: &str) -> Arc<Namespace> {
        let name = if name.starts_with('/') {
            name.to_owned()
        } else {
            format!("/{name}")
        };
        self.inner
            .namespace_for(&name)
            .unwrap_or_else(|| self.inner.create(&name, Arc::default()))
    }

    /// Accepts every namespace whose name satisfies `matches`; each is created on its
    /// first connection and shares the returned handlers (Node's `io.of(regex)`).
    pub fn of_matching(
        &self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Arc<Handlers> {
        let handlers = Arc::new(Handlers::default());
        self.inner
            .dynamic
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((Arc::new(matches), handlers.clone()));
        handlers
    }

    /// The namespace `name` if it exists (or a pattern accepts it), without creating
    /// a static one.
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.inner.namespace_for(name)
    }

    /// Every namespace that exists now.
    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        self.inner
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The Engine.IO server (serve it with [`crate::serve`]).
    pub fn engine(&self) -> &Arc<EngineServer> {
        &self.engine
    }

    /// Handles one HTTP request under the engine path.
    pub async fn handle<B: RequestBody>(
        &self,
        req: Request<B>,
        remote: SocketAddr,
    ) -> Response<Body> {
        self.engine.handle(req, remote).await
    }
}
