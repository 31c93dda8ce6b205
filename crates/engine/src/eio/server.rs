//! The Engine.IO HTTP front: classifies each request, answers errors as Node does,
//! performs handshakes and upgrades, and keeps the registry of live sessions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::handshake::{self, Query, RequestKind};
use switchboard_protocol::engineio::{EngineErrorCode, Heartbeat, OpenPacket, TransportKind};

use crate::config::EngineConfig;
use crate::metrics::Metrics;
use crate::reason::DisconnectReason;
use crate::shutdown::Shutdown;

use super::polling::{self, PollError};
use super::session::{EngineHandler, Frame, HandshakeInfo, Session};
use super::{cors, driver, websocket};

/// Response body of every engine answer.
pub type Body = Full<Bytes>;

/// Request bodies the engine accepts: hyper's `Incoming` in production, any byte
/// body (e.g. `Full<Bytes>`) in in-memory tests.
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + Unpin
    + 'static
{
}

impl<B> RequestBody for B
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
}

/// The live sessions, by id. Lookups happen on every polling request and upgrade;
/// writes on handshake and close; a `std` mutex held for a map operation only.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<Sid, Arc<Session>>>,
}

impl Registry {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Sid, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, sid: Sid) -> Option<Arc<Session>> {
        self.map().get(&sid).cloned()
    }

    pub(crate) fn remove(&self, sid: Sid) {
        self.map().remove(&sid);
    }

    fn len(&self) -> usize {
        self.map().len()
    }
}

/// The Engine.IO server: hand it every request under the configured path.
pub struct EngineServer {
    config: Arc<EngineConfig>,
    registry: Arc<Registry>,
    handler: Arc<dyn EngineHandler>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    allow_request: std::sync::OnceLock<AllowRequest>,
}

/// Decides whether a handshake may proceed (Node's `allowRequest`); a refusal is
/// answered with 403 `{"code":4,"message":"Forbidden"}`.
pub type AllowRequest = Arc<dyn Fn(&http::HeaderMap, SocketAddr) -> bool + Send + Sync>;

impl std::fmt::Debug for EngineServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineServer")
            .field("config", &self.config)
            .field("sessions", &self.registry.len())
            .finish_non_exhaustive()
    }
}

impl EngineServer {
    /// Creates a server whose sessions report to `handler` and stop on `shutdown`.
    pub fn new(
        config: EngineConfig,
        handler: Arc<dyn EngineHandler>,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Arc<Self> {
        Arc::new(EngineServer {
            config: Arc::new(config),
            registry: Arc::default(),
            handler,
            metrics,
            shutdown,
            allow_request: std::sync::OnceLock::new(),
        })
    }

    /// Installs the handshake filter (once; later calls are ignored).
    pub fn set_allow_request(&self, filter: AllowRequest) {
        let _ = self.allow_request.set(filter);
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.registry.len()
    }

    /// Whether `path` belongs to this engine.
    pub fn matches(&self, path: &str) -> bool {
        let base = self.config.path.trim_end_matches('/');
        path == base || path.starts_with(&self.config.path)
    }

    /// Handles one HTTP request under the engine path.
    pub async fn handle<B: RequestBody>(
        self: &Arc<Self>,
        req: Request<B>,
        remote: SocketAddr,
    ) -> Response<Body> {
        let cors_cfg = &self.config.cors;
        if !cors::origin_allowed(cors_cfg, req.headers()) {
            return error(EngineErrorCode::Forbidden);
        }
        let origin_headers = cors::request_headers(req.headers());
        let mut res = if req.method() == Method::OPTIONS {
            let mut res = empty(StatusCode::NO_CONTENT);
            cors::apply_preflight(req.headers(), res.headers_mut());
            res
        } else {
            self.route(req, remote).await
        };
        cors::apply(cors_cfg, &origin_headers, res.headers_mut());
        res
    }

    async fn route<B: RequestBody>(
        self: &Arc<Self>,
        mut req: Request<B>,
        remote: SocketAddr,
    ) -> Response<Body> {
        let method = match *req.method() {
            Method::GET => handshake::Method::Get,
            Method::POST => handshake::Method::Post,
            _ => handshake::Method::Other,
        };
        let raw_query = req.uri().query().unwrap_or("").to_owned();
        let query = Query::parse(&raw_query);
        let is_ws = websocket::is_upgrade_request(req.headers());
        let kind = match handshake::classify(method, &query, is_ws, &self.config.transports) {
            Ok(kind) => kind,
            Err(code) => return error(code),
        };
        match kind {
            RequestKind::Handshake(transport) => {
                self.handshake(&mut req, transport, raw_query, remote)
            }
            RequestKind::Polling { sid, read } => self.polling(req, sid, read).await,
            RequestKind::Upgrade(sid) => self.upgrade(&mut req, sid),
        }
    }

    fn new_session<B>(
        &self,
        req: &Request<B>,
        transport: TransportKind,
        query: String,
        remote: SocketAddr,
    ) -> Arc<Session> {
        let sid = Sid::from_random(rand::random());
        let info = HandshakeInfo {
            headers: kept_headers(req.headers()),
            query,
            address: remote,
            issued: SystemTime::now(),
            transport,
        };
        let heartbeat = Heartbeat::new(
            websocket::now(),
            self.config.ping_interval,
            self.config.ping_timeout,
        );
        Session::new(
            sid,
            info,
            self.config.queue,
            self.metrics.clone(),
            heartbeat,
        )
    }

    fn open_packet(&self, session: &Session, transport: TransportKind) -> String {
        let upgrades = match transport {
            TransportKind::Polling
                if self.config.transports.contains(&TransportKind::Websocket) =>
            {
                vec![TransportKind::Websocket]
            }
            _ => vec![],
        };
        let open = OpenPacket {
            sid: session.sid(),
            upgrades,
            ping_interval: self.config.ping_interval,
            ping_timeout: self.config.ping_timeout,
            max_payload: self.config.max_payload,
        };
        format!("0{}", open.to_json())
    }

    /// Registers a new session, tells the handler and starts its driver.
    fn start(self: &Arc<Self>, session: &Arc<Session>, ws: Option<websocket::WsStream>) {
        self.registry.map().insert(session.sid(), session.clone());
        self.metrics
            .connection_opened(session.handshake().transport);
        let handler = self.handler.on_open(session);
        session.set_handler(handler);
        // One span per connection, so every event it logs carries its id and peer.
        let span = tracing::debug_span!(
            "session",
            sid = %session.sid(),
            peer = %session.handshake().address,
        );
        let driver = driver::drive(
            session.clone(),
            ws,
            self.registry.clone(),
            self.shutdown.clone(),
        );
        tokio::spawn(tracing::Instrument::instrument(driver, span));
    }

    fn at_capacity(&self) -> bool {
        if self.registry.len() >= self.config.max_connections {
            self.metrics
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return true;
        }
        false
    }

    fn handshake<B>(
        self: &Arc<Self>,
        req: &mut Request<B>,
        transport: TransportKind,
        query: String,
        remote: SocketAddr,
    ) -> Response<Body> {
        if let Some(allow) = self.allow_request.get()
            && !allow(req.headers(), remote)
        {
            return error(EngineErrorCode::Forbidden);
        }
        if self.shutdown.is_triggered() || self.at_capacity() {
            return unavailable();
        }
        match transport {
            TransportKind::Polling => {
                let session = self.new_session(req, transport, query, remote);
                let open = self.open_packet(&session, transport);
                self.start(&session, None);
                text(StatusCode::OK, open)
            }
            TransportKind::Websocket => {
                let Some(accept) = websocket::accept_key(req.headers()) else {
                    return error(EngineErrorCode::BadRequest);
                };
                let session = self.new_session(req, transport, query, remote);
                let on_upgrade = hyper::upgrade::on(req);
                let server = self.clone();
                tokio::spawn(async move {
                    let Ok(upgraded) = on_upgrade.await else {
                        return;
                    };
                    let ws = websocket::stream(upgraded, server.config.max_payload).await;
                    let open = server.open_packet(&session, transport);
                    session.send_control_frame(Frame::text(open));
                    server.start(&session, Some(ws));
                });
                websocket::switching_protocols(&accept)
            }
        }
    }

    async fn polling<B: RequestBody>(
        &self,
        req: Request<B>,
        sid: Sid,
        read: bool,
    ) -> Response<Body> {
        let Some(session) = self.registry.get(sid) else {
            return error(EngineErrorCode::UnknownSid);
        };
        session.expire_if_overdue(websocket::now());
        // A session the server closed is gone for new requests, as in Node (a request
        // already waiting gets the close packet). One the client closed stays briefly
        // so a GET racing the closing POST gets its noop.
        let gone = match session.closed_reason() {
            None => false,
            Some(DisconnectReason::TransportClose) => session.lock().queue.is_empty(),
            Some(_) => true,
        };
        if gone {
            return error(EngineErrorCode::UnknownSid);
        }
        if !read && is_binary_body(req.headers()) {
            // Engine.IO v4 sends binary as base64 text; a binary body is invalid.
            session.close(DisconnectReason::TransportError);
            return error(EngineErrorCode::BadRequest);
        }
        let result = if read {
            polling::get(&session)
                .await
                .map(|body| text(StatusCode::OK, body))
        } else {
            let length = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body = req.into_body();
            polling::post(&session, body, length, self.config.max_payload)
                .await
                .map(|()| {
                    let mut res = text(StatusCode::OK, "ok");
                    res.headers_mut()
                        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                    res
                })
        };
        result.unwrap_or_else(|err| match err {
            PollError::TooLarge => empty(StatusCode::PAYLOAD_TOO_LARGE),
            PollError::Overlap | PollError::BadRequest | PollError::BodyError => {
                error(EngineErrorCode::BadRequest)
            }
        })
    }

    fn upgrade<B>(self: &Arc<Self>, req: &mut Request<B>, sid: Sid) -> Response<Body> {
        let Some(session) = self.registry.get(sid) else {
            return error(EngineErrorCode::UnknownSid);
        };
        let Some(accept) = websocket::accept_key(req.headers()) else {
            return error(EngineErrorCode::BadRequest);
        };
        // A second upgrade of the same session is accepted and closed at once, as
        // Node does, so the transport in use keeps working.
        let duplicate = !session.try_start_upgrade();
        let on_upgrade = hyper::upgrade::on(req);
        let config = self.config.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                if !duplicate {
                    session.abort_upgrade();
                }
                return;
            };
            let mut ws = websocket::stream(upgraded, config.max_payload).await;
            if duplicate {
                tracing::debug!(sid = %session.sid(), "duplicate upgrade closed");
                let _ = futures_util::SinkExt::close(&mut ws).await;
                return;
            }
            websocket::upgrade(session, ws, config.upgrade_timeout).await;
        });
        websocket::switching_protocols(&accept)
    }
}

/// Headers kept for the application (Socket.IO's `socket.handshake.headers`): all but
/// the WebSocket handshake's own, which mean nothing once the connection is open and
/// would cost every idle connection memory.
fn kept_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    const DROPPED: [header::HeaderName; 5] = [
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::CONNECTION,
        header::UPGRADE,
    ];
    let mut kept = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !DROPPED.contains(name) {
            kept.append(name.clone(), value.clone());
        }
    }
    kept
}

fn is_binary_body(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Body::default());
    *res.status_mut() = status;
    res
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    res
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The Engine.IO error answer: status 400 (403 for Forbidden) and `{"code","message"}`.
pub(crate) fn error(code: EngineErrorCode) -> Response<Body> {
    let status = StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json(status, code.json_body())
}

/// 503 while shutting down or at `max_connections`; clients retry with backoff.
fn unavailable() -> Response<Body> {
    let mut res = json(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"code":4,"message":"Server unavailable: at capacity or shutting down"}"#.to_owned(),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}
