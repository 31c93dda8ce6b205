//! HTTP API v1 for backends (emit, join, leave, disconnect, list namespaces, rooms,
//! sockets and the last disconnects explained), and the static files served at `/`.
//!
//! - `routes`: the route table and path matching;
//! - `auth`: bearer API keys, compared in constant time;
//! - `rate`: a token bucket per key;
//! - `body`: JSON bodies with a size limit and a deadline, query strings;
//! - `select`: namespace lookup and socket selections;
//! - `emit`, `sockets`, `inspect`, `disconnects`: the handlers;
//! - `view`: how a socket is shown, secrets left out;
//! - `metrics`: requests by route and status;
//! - `openapi`: the OpenAPI 3.1 document;
//! - `listener`: the optional separate listener (`api.listen`);
//! - `static_files`: `[static] dir`;
//! - `site`: how the API, health, metrics and static files share the listeners (the
//!   binary's `switchboard_engine::Site`).
//!
//! [`router`] builds a [`Router`] from an [`ApiState`]; tests call [`Router::handle`]
//! with in-memory requests. Every error goes through [`ApiError::into_response`].

mod auth;
mod body;
mod disconnects;
mod emit;
mod inspect;
mod listener;
mod metrics;
mod openapi;
mod rate;
mod routes;
mod select;
mod site;
mod sockets;
mod static_files;
mod view;

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use serde::Serialize;
use switchboard_engine::Io;
use switchboard_engine::eio::Body;
use switchboard_engine::eio::server::RequestBody;
use tokio::time::Instant;

pub(crate) use disconnects::node_answerer;
pub(crate) use listener::serve;
pub(crate) use metrics::ApiMetrics;
pub(crate) use site::{BoundSite, SiteError};
pub(crate) use static_files::StaticFiles;

use self::auth::ApiKeys;
use self::body::BodyLimits;
use self::rate::RateLimiter;
use self::routes::{Endpoint, Matched};
use crate::config::ApiConfig;
use crate::http::{ApiError, json};
use crate::paths;

/// What the handlers work on.
#[derive(Debug)]
pub(crate) struct ApiState {
    /// The server whose sockets the API acts on.
    io: Io,
    keys: ApiKeys,
    limiter: RateLimiter,
    limits: BodyLimits,
    /// Most binary arguments in one emit: what the server accepts from a client
    /// (`socketio.max_attachments`), so what it sends is never more than it takes.
    max_binary_args: usize,
    metrics: Arc<ApiMetrics>,
}

impl ApiState {
    /// The API over `io` as `config` describes it, counting into `metrics`.
    pub(crate) fn new(
        io: Io,
        config: &ApiConfig,
        max_binary_args: usize,
        metrics: Arc<ApiMetrics>,
    ) -> Self {
        let keys = ApiKeys::new(config.keys.clone());
        let limiter = RateLimiter::new(config.rate_limit, keys.len(), Instant::now());
        ApiState {
            io,
            keys,
            limiter,
            limits: BodyLimits {
                max_bytes: config.max_body_bytes,
                timeout: config.body_timeout,
            },
            max_binary_args,
            metrics,
        }
    }
}

/// Answers API requests; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Router {
    state: Arc<ApiState>,
}

/// The API's router.
pub(crate) fn router(state: ApiState) -> Router {
    Router {
        state: Arc::new(state),
    }
}

impl Router {
    /// Answers one request (any path: those outside the API are 404s) and counts it.
    pub(crate) async fn handle<B: RequestBody>(&self, req: Request<B>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let label = routes::template_of(parts.uri.path()).unwrap_or(routes::UNMATCHED);
        let res = self
            .answer(&parts, body)
            .await
            .unwrap_or_else(ApiError::into_response);
        let status = res.status();
        self.state.metrics.record(label, &parts.method, status);
        let (method, status) = (&parts.method, status.as_u16());
        tracing::debug!(%method, route = label, status, "api request");
        res
    }

    /// Authentication, then the rate limit, then routing, then the body: a client
    /// without a valid key learns nothing about routes, and no body is read for a
    /// request that will be refused anyway.
    async fn answer<B: RequestBody>(
        &self,
        parts: &http::request::Parts,
        body: B,
    ) -> Result<Response<Body>, ApiError> {
        let state = &self.state;
        if !paths::is_api(parts.uri.path()) {
            return Err(ApiError::NotFound);
        }
        let key = state.keys.authenticate(&parts.headers)?;
        state.limiter.check(key, Instant::now())?;
        let matched = routes::find(&parts.method, parts.uri.path())?;
        let body = if matched.route.method == Method::POST {
            body::read(&parts.headers, body, state.limits).await?
        } else {
            bytes::Bytes::new()
        };
        dispatch(state, &matched, parts.uri.query(), &body).await
    }
}

/// Runs the handler of `matched`.
async fn dispatch(
    state: &ApiState,
    matched: &Matched,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let param = |i: usize| matched.params.get(i).map_or("", String::as_str);
    match matched.route.endpoint {
        Endpoint::Emit => ok(&emit::emit(state, body).await?),
        Endpoint::Join => ok(&sockets::join(state, body).await?),
        Endpoint::Leave => ok(&sockets::leave(state, body).await?),
        Endpoint::Disconnect => ok(&sockets::disconnect(state, body).await?),
        Endpoint::Namespaces => ok(&inspect::namespaces(state).await?),
        Endpoint::Rooms => ok(&inspect::rooms(state, param(0)).await?),
        Endpoint::Room => ok(&inspect::room(state, param(0), param(1)).await?),
        Endpoint::Sockets => ok(&inspect::sockets(state, param(0), query).await?),
        Endpoint::Socket => ok(&inspect::socket(state, param(0), param(1)).await?),
        Endpoint::Timeline => ok(&disconnects::timeline(state, param(0), param(1)).await?),
        Endpoint::Disconnects => ok(&disconnects::list(state, query).await?),
        Endpoint::OpenApi => Ok(openapi::response()),
    }
}

/// A 200 with `value` as JSON.
fn ok(value: &impl Serialize) -> Result<Response<Body>, ApiError> {
    let value = serde_json::to_value(value).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json(StatusCode::OK, &value))
}

#[cfg(test)]
mod tests;
