//! The HTTP routes that share the listener with the engine: liveness, readiness and
//! Prometheus metrics, with every error answered as JSON `{code, message}` from one place.
//!
//! - `error`: [`ApiError`], every HTTP error and its response, for these routes and
//!   the API alike;
//! - `prometheus`: rendering metrics in the text exposition format.
//!
//! [`route`] is a plain function of [`State`] and a request, so tests drive it without
//! a socket; the site (`api::site`) calls it for these paths. The parts of the server
//! above this module (the API's counters, the namespace rules) add their families to
//! `/metrics` as [`Collector`]s, so nothing here names them.

mod error;
pub(crate) mod prometheus;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use switchboard_cluster::Cluster;
use switchboard_engine::eio::Body;
use switchboard_engine::sio::Handlers;
use switchboard_engine::{Io, Shutdown};

pub(crate) use error::ApiError;
pub(crate) use prometheus::Collector;

use crate::paths::{METRICS_PATH, READY_PATH, ROUTES};

/// What the routes read: the server (for namespaces and metrics), the shutdown signal
/// (for readiness), the cluster (for both) and the other parts' metric families.
#[derive(Debug, Clone)]
pub(crate) struct State {
    io: Io,
    shutdown: Shutdown,
    /// Families rendered after the engine's, in the order they were added.
    collectors: Vec<Arc<dyn Collector>>,
    /// The cluster membership, whose broker readiness follows, and this node's name.
    cluster: Option<(Cluster, String)>,
    /// Namespace patterns and the handlers their namespaces share: a namespace a
    /// pattern created is counted under the pattern's text, not its own name, which
    /// the client chose (one series per pattern however many names clients rotate).
    patterns: Vec<(String, Arc<Handlers>)>,
}

impl State {
    /// Routes reporting on `io`, not ready once `shutdown` fires.
    pub(crate) fn new(io: Io, shutdown: Shutdown) -> Self {
        State {
            io,
            shutdown,
            collectors: Vec::new(),
            cluster: None,
            patterns: Vec::new(),
        }
    }

    /// Counts the namespaces each of `patterns` creates under the pattern's text.
    pub(crate) fn with_patterns(mut self, patterns: &[(String, Arc<Handlers>)]) -> Self {
        self.patterns = patterns.to_vec();
        self
    }

    /// Not ready while `cluster`'s broker is unreachable; reports its health.
    pub(crate) fn with_cluster(mut self, cluster: Cluster, node: String) -> Self {
        self.cluster = Some((cluster, node));
        self
    }

    /// Also reports `collector`'s families, after those added before it.
    pub(crate) fn with_collector(mut self, collector: Arc<dyn Collector>) -> Self {
        self.collectors.push(collector);
        self
    }

    fn ready(&self) -> bool {
        self.unready().is_none()
    }

    /// Why this node should get no new clients, if it should not.
    fn unready(&self) -> Option<ApiError> {
        if self.shutdown.is_triggered() {
            Some(ApiError::ShuttingDown)
        } else if self.cluster.as_ref().is_some_and(|(c, _)| !c.is_ready()) {
            Some(ApiError::ClusterUnavailable)
        } else if self.io.engine().metrics().shrunk() {
            Some(ApiError::MemoryPressure)
        } else {
            None
        }
    }
}

/// Answers one request outside the engine path.
pub(crate) fn route<B>(state: &State, req: &Request<B>) -> Response<Body> {
    let mut res = answer(state, req).unwrap_or_else(ApiError::into_response);
    if req.method() == Method::HEAD {
        *res.body_mut() = Body::default();
    }
    res
}

fn answer<B>(state: &State, req: &Request<B>) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path();
    if !ROUTES.contains(&path) {
        return Err(ApiError::NotFound);
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" });
    }
    match path {
        READY_PATH if let Some(why) = state.unready() => Err(why),
        METRICS_PATH => Ok(metrics(state)),
        _ => Ok(json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))),
    }
}

fn metrics(state: &State) -> Response<Body> {
    // Every pattern has its series, at 0 while it has no namespace.
    let mut sockets: BTreeMap<String, usize> = state
        .patterns
        .iter()
        .map(|(pattern, _)| (pattern.clone(), 0))
        .collect();
    let namespaces = state.io.namespaces();
    for ns in &namespaces {
        let label = state
            .patterns
            .iter()
            .find(|(_, handlers)| Arc::ptr_eq(handlers, ns.handlers()))
            .map_or(ns.name(), |(pattern, _)| pattern);
        *sockets.entry(label.to_owned()).or_default() += ns.socket_count();
    }
    let sockets: Vec<(String, usize)> = sockets.into_iter().collect();
    let snapshot = state.io.engine().metrics().snapshot();
    let mut text = prometheus::render(&snapshot, namespaces.len(), &sockets, state.ready());
    let mut out = prometheus::Exposition::default();
    for collector in &state.collectors {
        collector.render(&mut out);
    }
    if let Some((cluster, node)) = &state.cluster {
        prometheus::cluster(&mut out, cluster, node);
    }
    text.push_str(&out.into_string());
    let mut res = Response::new(Body::from(text));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus::CONTENT_TYPE),
    );
    res
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;
    use switchboard_engine::{SocketIoConfig, shutdown};

    use super::*;
    use crate::paths::LIVE_PATH;

    fn request(method: Method, path: &str) -> Request<()> {
        let mut req = Request::new(());
        *req.method_mut() = method;
        *req.uri_mut() = path.parse().unwrap_or_default();
        req
    }

    async fn body(res: Response<Body>) -> String {
        let bytes = res.into_body().collect().await.map(|b| b.to_bytes());
        String::from_utf8(bytes.unwrap_or_default().to_vec()).unwrap_or_default()
    }

    fn state() -> (shutdown::ShutdownTrigger, State) {
        let (trigger, signal) = shutdown::channel();
        let io = Io::new(SocketIoConfig::default(), signal.clone());
        (trigger, State::new(io, signal))
    }

    #[tokio::test]
    async fn health_is_live_and_ready_until_shutdown() {
        let (trigger, state) = state();
        assert_eq!(
            route(&state, &request(Method::GET, LIVE_PATH)).status(),
            200
        );
        assert_eq!(
            route(&state, &request(Method::GET, READY_PATH)).status(),
            200
        );
        trigger.trigger();
        assert_eq!(
            route(&state, &request(Method::GET, LIVE_PATH)).status(),
            200
        );
        let not_ready = route(&state, &request(Method::GET, READY_PATH));
        assert_eq!(not_ready.status(), 503);
        assert!(body(not_ready).await.contains(r#""code":"shutting_down""#));
    }

    #[tokio::test]
    async fn unknown_paths_are_json_404s() {
        let (_trigger, state) = state();
        let res = route(&state, &request(Method::GET, "/nope"));
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        let value: serde_json::Value = serde_json::from_str(&body(res).await).unwrap_or_default();
        assert_eq!(value["code"], "not_found");
        assert_eq!(value["message"], "no such route");
    }

    #[tokio::test]
    async fn routes_answer_only_get_and_head() {
        let (_trigger, state) = state();
        let res = route(&state, &request(Method::POST, METRICS_PATH));
        assert_eq!(res.status(), 405);
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD");
        let head = route(&state, &request(Method::HEAD, METRICS_PATH));
        assert_eq!(head.status(), 200);
        assert!(body(head).await.is_empty());
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let (_trigger, state) = state();
        let res = route(&state, &request(Method::GET, METRICS_PATH));
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            prometheus::CONTENT_TYPE
        );
        let text = body(res).await;
        assert!(text.contains("switchboard_namespaces 1\n"), "{text}");
        assert!(
            text.contains("switchboard_sockets{namespace=\"/\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("switchboard_ready 1\n"), "{text}");
    }
}
