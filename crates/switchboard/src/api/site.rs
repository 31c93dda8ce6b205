//! Everything served beside the engine: the API (on the main listener, or on its own
//! when `api.listen` is set), health and metrics, and static files; built from the
//! config when the server binds.

use std::io;
use std::net::SocketAddr;

use http::{Request, Response};
use switchboard_engine::eio::Body;
use switchboard_engine::eio::server::RequestBody;
use switchboard_engine::{Io, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::{ApiState, Router, StaticFiles, router};
use crate::config::Config;
use crate::http::{self as routes, ApiError, State};
use crate::server::BindError;

/// The parts, bound and ready to serve.
#[derive(Debug)]
pub(crate) struct Site {
    state: State,
    /// The API, when at least one key is configured.
    api: Option<Router>,
    /// The API's own listener, when `api.listen` is set and the API is enabled.
    api_listener: Option<TcpListener>,
    /// `[static] dir`, when set.
    files: Option<StaticFiles>,
}

impl Site {
    /// Builds the parts `config` asks for over `io`, binding the API listener if any;
    /// `state` serves health and metrics.
    pub(crate) async fn bind(config: &Config, io: &Io, state: State) -> Result<Self, BindError> {
        let api_config = &config.api;
        let api = api_config.enabled().then(|| {
            let max_binary = config.socketio.max_attachments;
            let metrics = state.api_metrics().clone();
            router(ApiState::new(io.clone(), api_config, max_binary, metrics))
        });
        let api_listener = match (api_config.listen, &api) {
            (Some(addr), Some(_)) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| BindError::ApiListen { addr, source })?,
            ),
            _ => None,
        };
        let files = match &config.statics.dir {
            Some(dir) => Some(
                StaticFiles::new(dir).map_err(|source| BindError::StaticDir {
                    dir: dir.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        Ok(Site {
            state,
            api,
            api_listener,
            files,
        })
    }

    /// The API listener's address, when it has its own.
    pub(crate) fn api_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.api_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()
    }

    /// Starts the API listener (if any) and returns the main listener's fallback.
    /// Both hold `alive` until their connections end.
    pub(crate) fn start(self, shutdown: Shutdown, alive: mpsc::Sender<()>) -> Fallback {
        let on_main = match (self.api_listener, self.api) {
            (Some(listener), Some(api)) => {
                tokio::spawn(super::serve(listener, api, shutdown, alive.clone()));
                None
            }
            (_, api) => api,
        };
        Fallback {
            state: self.state,
            api: on_main,
            files: self.files,
            _alive: alive,
        }
    }
}

/// What the main listener answers outside the engine path, plus a token that tells
/// the drain when every HTTP connection has ended.
///
/// `serve` moves a clone of its fallback into each connection task and drops it when
/// that connection ends, so the `_alive` senders count open HTTP connections. Waiting
/// for all of them means every response — notably the `close` packet a pending
/// long-poll receives — has been written before the process exits.
#[derive(Debug, Clone)]
pub(crate) struct Fallback {
    state: State,
    /// The API, when it is enabled and served on this listener.
    api: Option<Router>,
    files: Option<StaticFiles>,
    _alive: mpsc::Sender<()>,
}

impl Fallback {
    /// `/api/…` to the API (404 when it is disabled or elsewhere), then health and
    /// metrics, then static files, then a JSON 404.
    pub(crate) async fn route<B: RequestBody>(self, req: Request<B>) -> Response<Body> {
        let path = req.uri().path();
        if super::owns(path) {
            return match &self.api {
                Some(api) => api.handle(req).await,
                None => ApiError::NotFound.into_response(),
            };
        }
        match &self.files {
            Some(files) if !routes::ROUTES.contains(&path) => files.serve(&req).await,
            _ => routes::route(&self.state, &req),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};

    use super::*;
    use crate::config::ApiKey;

    const KEY: &str = "site-key-0123456789abcdef";

    async fn get(fallback: &Fallback, path: &str) -> (u16, String) {
        let req = Request::builder()
            .uri(path)
            .header("authorization", format!("Bearer {KEY}"))
            .body(Full::new(Bytes::new()))
            .unwrap_or_default();
        let res = fallback.clone().route(req).await;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.map(|c| c.to_bytes());
        (
            status,
            String::from_utf8_lossy(&body.unwrap_or_default()).into_owned(),
        )
    }

    async fn site(config: &Config) -> Result<Site, BindError> {
        let io = Io::new(config.socketio.clone(), Shutdown::never());
        let state = State::new(io.clone(), Shutdown::never());
        Site::bind(config, &io, state).await
    }

    async fn fallback(config: &Config) -> Result<Fallback, BindError> {
        let site = site(config).await?;
        let (alive, _finished) = mpsc::channel(1);
        Ok(site.start(Shutdown::never(), alive))
    }

    #[tokio::test]
    async fn without_keys_the_api_is_a_404_never_open() -> Result<(), BindError> {
        let fallback = fallback(&Config::default()).await?;
        for path in ["/api", "/api/v1/namespaces", "/api/v1/openapi.json"] {
            let (status, body) = get(&fallback, path).await;
            assert_eq!(status, 404, "{path}");
            assert!(body.contains("not_found"), "{body}");
        }
        assert_eq!(get(&fallback, "/health/live").await.0, 200);
        Ok(())
    }

    #[tokio::test]
    async fn with_keys_the_api_is_on_the_main_listener_unless_it_has_its_own() -> anyhow::Result<()>
    {
        let mut config = Config::default();
        config.api.keys = vec![ApiKey::new(KEY)];
        let main = fallback(&config).await?;
        assert_eq!(get(&main, "/api/v1/namespaces").await.0, 200);
        config.api.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        let site = site(&config).await?;
        assert!(site.api_addr()?.is_some());
        let (alive, _finished) = mpsc::channel(1);
        let main = site.start(Shutdown::never(), alive);
        assert_eq!(get(&main, "/api/v1/namespaces").await.0, 404);
        Ok(())
    }

    #[tokio::test]
    async fn static_files_do_not_hide_health_metrics_or_the_api() -> Result<(), BindError> {
        let mut config = Config::default();
        config.statics.dir = Some(env!("CARGO_MANIFEST_DIR").into());
        let fallback = fallback(&config).await?;
        let (status, body) = get(&fallback, "/Cargo.toml").await;
        assert_eq!(status, 200);
        assert!(body.contains("[package]"));
        assert_eq!(get(&fallback, "/health/ready").await.0, 200);
        assert_eq!(get(&fallback, "/metrics").await.0, 200);
        assert_eq!(get(&fallback, "/api/v1/namespaces").await.0, 404);
        assert_eq!(get(&fallback, "/nope.html").await.0, 404);
        Ok(())
    }
}
