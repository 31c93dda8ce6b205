//! Everything served beside the engine: the API (on the main listener, or on its own
//! when `api.listen` is set), health and metrics, and static files; built from the
//! config when the server binds.
//!
//! The route of a request on the main listener, from socket to handler:
//!
//! 1. `switchboard_engine::serve` accepts the connection and hands each request whose
//!    path is under `engine.path` to the engine;
//! 2. every other request goes to [`Site`], this listener's
//!    [`switchboard_engine::Site`]:
//!    - `/api` and `/api/…` to the API [`Router`] (404 when the API is disabled or has
//!      its own listener),
//!    - then static files, when `[static] dir` is set, for every path but health and
//!      metrics,
//!    - then [`http::route`](crate::http::route): health, metrics, or a JSON 404.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use switchboard_engine::eio::Body;
use switchboard_engine::eio::server::RequestBody;
use switchboard_engine::{Io, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{ApiMetrics, ApiState, Router, StaticFiles, router};
use crate::config::Config;
use crate::http::{self as routes, ApiError, State};
use crate::paths;

/// Why the site could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SiteError {
    /// The API's own listener (`api.listen`) could not be bound.
    #[error("cannot listen on {addr} (api.listen): {source}")]
    ApiListen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The static files directory (`static.dir`) cannot be served.
    #[error("cannot serve {} (static.dir): {source}", dir.display())]
    StaticDir {
        /// The configured directory.
        dir: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The parts, bound and ready to serve.
#[derive(Debug)]
pub(crate) struct BoundSite {
    state: State,
    /// The API, when at least one key is configured.
    api: Option<Router>,
    /// The API's own listener, when `api.listen` is set and the API is enabled.
    api_listener: Option<TcpListener>,
    /// `[static] dir`, when set.
    files: Option<StaticFiles>,
    /// `/metrics` on the API's own listener, not here (`api.metrics`).
    metrics_moved: bool,
}

impl BoundSite {
    /// Builds the parts `config` asks for over `io`, binding the API listener if any;
    /// `state` serves health and metrics, and the API counts its requests into
    /// `api_metrics`.
    pub(crate) async fn bind(
        config: &Config,
        io: &Io,
        state: State,
        api_metrics: Arc<ApiMetrics>,
    ) -> Result<Self, SiteError> {
        let api_config = &config.api;
        let api = api_config.enabled().then(|| {
            let max_binary = config.socketio.max_attachments;
            router(ApiState::new(
                io.clone(),
                api_config,
                max_binary,
                api_metrics,
            ))
        });
        let api_listener = match (api_config.listen, &api) {
            (Some(addr), Some(_)) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| SiteError::ApiListen { addr, source })?,
            ),
            _ => None,
        };
        let files = match &config.statics.dir {
            Some(dir) => Some(
                StaticFiles::new(dir).map_err(|source| SiteError::StaticDir {
                    dir: dir.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        let metrics_moved = api_listener.is_some() && api_config.metrics_on_own_listener();
        Ok(BoundSite {
            state,
            api,
            api_listener,
            files,
            metrics_moved,
        })
    }

    /// The API listener's address, when it has its own.
    pub(crate) fn api_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.api_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
    }

    /// Starts the API listener (if any) and returns what the main listener answers
    /// outside the engine path. Both hold `alive` until their connections end. An API
    /// connection whose peer reads nothing for `stall` is closed.
    pub(crate) fn start(
        self,
        shutdown: Shutdown,
        alive: mpsc::Sender<()>,
        stall: std::time::Duration,
    ) -> Site {
        let on_main = match (self.api_listener, self.api) {
            (Some(listener), Some(api)) => {
                let metrics = self.metrics_moved.then(|| self.state.clone());
                tokio::spawn(super::serve(
                    listener,
                    api,
                    metrics,
                    shutdown,
                    alive.clone(),
                    stall,
                ));
                None
            }
            (_, api) => api,
        };
        Site {
            state: self.state,
            api: on_main,
            files: self.files,
            metrics_here: !self.metrics_moved,
            _alive: alive,
        }
    }
}

/// What the main listener answers outside the engine path, plus a token that tells
/// the drain when every HTTP connection has ended.
///
/// `serve` moves a clone of its site into each connection task and drops it when
/// that connection ends, so the `_alive` senders count open HTTP connections. Waiting
/// for all of them means every response — notably the `close` packet a pending
/// long-poll receives — has been written before the process exits.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    state: State,
    /// The API, when it is enabled and served on this listener.
    api: Option<Router>,
    files: Option<StaticFiles>,
    /// Whether `/metrics` is served here (not when `api.metrics` moved it).
    metrics_here: bool,
    _alive: mpsc::Sender<()>,
}

impl Site {
    /// `/api/…` to the API (404 when it is disabled or elsewhere), then health and
    /// metrics, then static files, then a JSON 404.
    pub(crate) async fn route<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        let path = req.uri().path();
        if paths::is_api(path) {
            return match &self.api {
                Some(api) => api.handle(req).await,
                None => ApiError::NotFound.into_response(),
            };
        }
        if path == paths::METRICS_PATH && !self.metrics_here {
            return ApiError::NotFound.into_response();
        }
        match &self.files {
            Some(files) if !paths::ROUTES.contains(&path) => files.serve(&req).await,
            _ => routes::route(&self.state, &req),
        }
    }
}

impl switchboard_engine::Site for Site {
    fn answer(&self, req: Request<Incoming>) -> impl Future<Output = Response<Body>> + Send {
        self.route(req)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};

    use super::*;
    use crate::config::ApiKey;

    const KEY: &str = "site-key-0123456789abcdef";

    async fn get(site: &Site, path: &str) -> (u16, String) {
        let req = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {KEY}"))
            .body(Full::new(Bytes::new()))
            .unwrap_or_default();
        let res = site.route(req).await;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.map(|c| c.to_bytes());
        (
            status,
            String::from_utf8_lossy(&body.unwrap_or_default()).into_owned(),
        )
    }

    async fn bound(config: &Config) -> Result<BoundSite, SiteError> {
        let io = Io::new(config.socketio.clone(), Shutdown::never());
        let state = State::new(io.clone(), Shutdown::never());
        BoundSite::bind(config, &io, state, Arc::default()).await
    }

    async fn site(config: &Config) -> Result<Site, SiteError> {
        let bound = bound(config).await?;
        let (alive, _finished) = mpsc::channel(1);
        Ok(bound.start(Shutdown::never(), alive, std::time::Duration::from_secs(45)))
    }

    #[tokio::test]
    async fn without_keys_the_api_is_a_404_never_open() -> Result<(), SiteError> {
        let site = site(&Config::default()).await?;
        for path in ["/api", "/api/v1/namespaces", "/api/v1/openapi.json"] {
            let (status, body) = get(&site, path).await;
            assert_eq!(status, 404, "{path}");
            assert!(body.contains("not_found"), "{body}");
        }
        assert_eq!(get(&site, "/health/live").await.0, 200);
        Ok(())
    }

    #[tokio::test]
    async fn with_keys_the_api_is_on_the_main_listener_unless_it_has_its_own() -> anyhow::Result<()>
    {
        let mut config = Config::default();
        config.api.keys = vec![ApiKey::new(KEY)];
        let main = site(&config).await?;
        assert_eq!(get(&main, "/api/v1/namespaces").await.0, 200);
        config.api.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let bound = bound(&config).await?;
        assert!(bound.api_addr()?.is_some());
        let (alive, _finished) = mpsc::channel(1);
        let main = bound.start(Shutdown::never(), alive, std::time::Duration::from_secs(45));
        assert_eq!(get(&main, "/api/v1/namespaces").await.0, 404);
        Ok(())
    }

    /// `api.metrics`: `/metrics` on the API's own listener, with no key (a scraper's
    /// request), and a 404 on the main one, whose health routes stay.
    #[tokio::test]
    async fn api_metrics_moves_metrics_to_the_api_listener() -> anyhow::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut config = Config::default();
        config.api.keys = vec![ApiKey::new(KEY)];
        config.api.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.api.metrics = true;
        let bound = bound(&config).await?;
        let api = bound
            .api_addr()?
            .ok_or_else(|| anyhow::anyhow!("no api listener"))?;
        let (alive, _finished) = mpsc::channel(1);
        let main = bound.start(Shutdown::never(), alive, std::time::Duration::from_secs(45));
        assert_eq!(get(&main, "/metrics").await.0, 404);
        assert_eq!(get(&main, "/health/ready").await.0, 200);
        let mut stream = tokio::net::TcpStream::connect(api).await?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:.200}");
        assert!(answer.contains("switchboard_ready"), "{answer:.400}");
        Ok(())
    }

    #[tokio::test]
    async fn static_files_do_not_hide_health_metrics_or_the_api() -> Result<(), SiteError> {
        let mut config = Config::default();
        config.statics.dir = Some(env!("CARGO_MANIFEST_DIR").into());
        let site = site(&config).await?;
        let (status, body) = get(&site, "/Cargo.toml").await;
        assert_eq!(status, 200);
        assert!(body.contains("[package]"));
        assert_eq!(get(&site, "/health/ready").await.0, 200);
        assert_eq!(get(&site, "/metrics").await.0, 200);
        assert_eq!(get(&site, "/api/v1/namespaces").await.0, 404);
        assert_eq!(get(&site, "/nope.html").await.0, 404);
        Ok(())
    }
}
