//! The Engine.IO HTTP front: classifies each request, answers errors as Node does,
//! performs handshakes and upgrades, keeps the registry of live sessions, forwards
//! polling requests of other nodes' sessions, and drains.

use std::future::{Future, Ready};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::handshake::{self, Query, RequestKind};
use switchboard_protocol::engineio::{EngineErrorCode, Heartbeat, OpenPacket, TransportKind};

use crate::config::EngineConfig;
use crate::metrics::Metrics;
use crate::reason::DisconnectReason;
use crate::shutdown::{DrainPlan, DrainReport, Shutdown};

use super::client_ip::{ClientKey, client_ip};
use super::forward::{self, ForwardedRequest, ForwardedResponse, Forwarder};
use super::handshake_rate::HandshakeRates;
use super::inbound::InboundBudget;
use super::polling::{self, PollError};
use super::registry::{Full, Registry, Slot};
use super::session::{
    self, EngineHandler, Frame, HandshakeInfo, MAX_HANDSHAKE_HEADER_BYTES, Session, decode_query,
    kept_query,
};
use super::{cors, drain, driver, relay, sse, websocket};

pub use super::body::Body;

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

/// Where a request came from: a client of this node, or another node serving its
/// client through this one (the session's owner). Forwarded requests are never
/// forwarded again, and may only be polling requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Client,
    Forwarded,
}

/// The Engine.IO server: hand it every request under the configured path.
pub struct EngineServer {
    config: Arc<EngineConfig>,
    registry: Arc<Registry>,
    handler: Arc<dyn EngineHandler>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
    allow_request: OnceLock<AllowRequest>,
    /// Reaches the owners of other nodes' sessions (set once, by the cluster).
    forwarder: OnceLock<Arc<dyn Forwarder>>,
    /// Where other nodes reach this one to relay WebSocket upgrades (see [`relay`]).
    relay_address: OnceLock<String>,
    /// Bytes of messages on their way in, every session together
    /// (`max_inbound_bytes`, see [`super::inbound`]).
    inbound: Arc<InboundBudget>,
    /// New sessions per client address over time (`handshake_rate_per_ip`), when
    /// bounded.
    handshake_rates: Option<HandshakeRates>,
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
        let registry: Arc<Registry> = Arc::default();
        // Drivers check the flag at each step and sleep on their own wake-up, which
        // this raises for every open session.
        let sessions = Arc::downgrade(&registry);
        shutdown.on_trigger(move || {
            if let Some(registry) = sessions.upgrade() {
                for session in registry.open_sessions() {
                    session.wake.raise(super::wake::SHUTDOWN);
                }
            }
        });
        let inbound = InboundBudget::new(
            config.max_inbound_bytes,
            config.body_timeout,
            metrics.inbound_bytes.clone(),
            metrics.inbound_gave_way.clone(),
        );
        let handshake_rates = HandshakeRates::new(config.handshake_rate_per_ip, session::now());
        Arc::new(EngineServer {
            handshake_rates,
            config: Arc::new(config),
            registry,
            handler,
            metrics,
            shutdown,
            allow_request: OnceLock::new(),
            forwarder: OnceLock::new(),
            relay_address: OnceLock::new(),
            inbound,
        })
    }

    /// The node's budget of bytes on their way in (`max_inbound_bytes`), which a
    /// Socket.IO packet waiting for its binary attachments is charged to as well.
    pub(crate) fn inbound(&self) -> &Arc<InboundBudget> {
        &self.inbound
    }

    /// Installs the handshake filter (once; later calls are ignored).
    pub fn set_allow_request(&self, filter: AllowRequest) {
        let _ = self.allow_request.set(filter);
    }

    /// Installs the way to other nodes (once; later calls are ignored). With it and a
    /// [`EngineConfig::node_tag`], a polling request for a session this node does not
    /// hold is served by the node whose tag starts the session id.
    pub fn set_forwarder(&self, forwarder: Arc<dyn Forwarder>) {
        let _ = self.forwarder.set(forwarder);
    }

    /// Sets the `host:port` at which the other nodes of the cluster reach this node's
    /// HTTP listener (once; later calls are ignored). With it, a WebSocket upgrade of
    /// one of this node's sessions that the balancer sends to another node is relayed
    /// here by that node, instead of failing (see [`relay`]). Returns false, and sets
    /// nothing, for anything but a short printable `host:port`.
    pub fn set_relay_address(&self, address: &str) -> bool {
        if !relay::is_address(address) {
            return false;
        }
        let _ = self.relay_address.set(address.to_owned());
        true
    }

    /// The relay address, if set ([`EngineServer::set_relay_address`]).
    pub fn relay_address(&self) -> Option<&str> {
        self.relay_address.get().map(String::as_str)
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

    /// Bytes waiting in every open session's outbound queue (locks each session in
    /// turn: for diagnostics and tests, not for a hot path).
    pub fn queued_bytes(&self) -> u64 {
        self.registry
            .open_sessions()
            .iter()
            .map(|s| s.queued_bytes() as u64)
            .sum()
    }

    /// Closes session `sid` for `reason`, if this node holds it; says whether it did.
    /// For the cluster: when the answer to a forwarded poll could not reach its client,
    /// the session is closed, so the client resumes in a new one (with connection state
    /// recovery) instead of waiting on a stream with a hole in it.
    pub fn close_session(&self, sid: &str, reason: DisconnectReason) -> bool {
        let session = sid
            .parse::<Sid>()
            .ok()
            .and_then(|sid| self.registry.get(sid));
        match session {
            Some(session) => {
                session.close(reason);
                true
            }
            None => false,
        }
    }

    /// Whether a drain has started (new sessions are refused).
    pub fn is_draining(&self) -> bool {
        self.registry.is_draining()
    }

    /// Drains this node for a rolling restart: from now on new handshakes get 503
    /// (the client retries, and its load balancer sends it elsewhere), while the open
    /// sessions are closed with "server shutting down" in batches as `plan` says.
    /// Everything else keeps working meanwhile: requests of sessions not closed yet,
    /// requests forwarded by other nodes, a closed polling session's last GET.
    ///
    /// Returns once every session has finished and every upgrade this node relays has
    /// got past its client's `upgrade` packet (new relays are refused meanwhile), or at
    /// `plan.deadline`, having closed whatever was left at once. The engine stays
    /// draining: follow with shutdown.
    pub async fn drain(&self, plan: DrainPlan) -> DrainReport {
        self.registry.start_draining();
        tracing::info!(
            sessions = self.registry.len(),
            batch_size = plan.batch_size,
            interval_ms = plan.interval.as_millis() as u64,
            deadline_ms = plan.deadline.as_millis() as u64,
            "draining sessions"
        );
        drain::run(&self.registry, plan).await
    }

    /// Whether `path` belongs to this engine.
    pub fn matches(&self, path: &str) -> bool {
        let base = self.config.path.trim_end_matches('/');
        path == base || path.starts_with(&self.config.path) || self.is_sse_path(path)
    }

    /// Whether `path` is the Server-Sent Events endpoint (when it is served).
    fn is_sse_path(&self, path: &str) -> bool {
        self.config.sse.as_ref().is_some_and(|sse| sse.path == path)
    }

    /// Handles one HTTP request under the engine path.
    ///
    /// The request is routed before the returned future is made, so that the future
    /// holds only what the answer still needs, never the request: hyper keeps room for
    /// this future in every HTTP connection, and a long-poll holds it for up to a ping
    /// interval.
    pub fn handle<B: RequestBody>(
        self: &Arc<Self>,
        req: Request<B>,
        remote: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send + use<B> {
        let config = self.config.clone();
        let (answer, origin) = if !cors::origin_allowed(&config.cors, req.headers()) {
            let sse = self.is_sse_path(req.uri().path());
            let query = Query::parse(req.uri().query().unwrap_or(""));
            if sse || query.sid.is_none() {
                let origin = req
                    .headers()
                    .get(header::ORIGIN)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .unwrap_or_default();
                let ws = websocket::is_upgrade_request(req.headers());
                self.refuse(asked_transport(sse, ws), Why::Origin(origin));
            }
            let refused = if sse {
                sse::refusal(
                    StatusCode::FORBIDDEN,
                    "origin_not_allowed",
                    "this origin may not connect (cors.allowed_origins)",
                )
            } else {
                error(EngineErrorCode::Forbidden)
            };
            (now(refused), None)
        } else if req.method() == Method::OPTIONS {
            let mut res = empty(StatusCode::NO_CONTENT);
            cors::apply_preflight(req.headers(), res.headers_mut());
            (now(res), cors::request_origin(req.headers()))
        } else {
            let origin = cors::request_origin(req.headers());
            (self.route(req, remote, Via::Client), origin)
        };
        async move {
            let mut res = answer.await;
            cors::apply(&config.cors, origin.as_ref(), res.headers_mut());
            res
        }
    }

    /// Runs a request that another node received for a session of this one, exactly
    /// as if it had arrived here over HTTP (the origin check and CORS headers are the
    /// receiving node's job). A long-polling GET waits as usual, up to
    /// [`EngineConfig::longest_poll`]. Dropping the future aborts the request, which
    /// closes the session as an aborted local poll does.
    pub async fn handle_forwarded(
        self: &Arc<Self>,
        request: ForwardedRequest,
    ) -> ForwardedResponse {
        let remote = request.remote;
        let res = match request.into_request(&self.config.path) {
            Some(req) => self.route(req, remote, Via::Forwarded).await,
            None => error(EngineErrorCode::BadRequest),
        };
        ForwardedResponse::from_response(res).await
    }

    fn route<B: RequestBody>(
        self: &Arc<Self>,
        mut req: Request<B>,
        remote: SocketAddr,
        via: Via,
    ) -> Answer {
        if via == Via::Client && self.is_sse_path(req.uri().path()) {
            return self.sse(&req, remote);
        }
        let method = match *req.method() {
            Method::GET => handshake::Method::Get,
            Method::POST => handshake::Method::Post,
            _ => handshake::Method::Other,
        };
        let raw_query = req.uri().query().unwrap_or("").to_owned();
        let query = Query::parse(&raw_query);
        if via == Via::Forwarded
            && method == handshake::Method::Get
            && query.transport == Some("websocket")
            && let Some(sid) = query.sid.and_then(|s| s.parse::<Sid>().ok())
        {
            // Another node asks where to relay this session's WebSocket upgrade.
            return now(self.relay_target(sid));
        }
        let is_ws = websocket::is_upgrade_request(req.headers());
        let kind = match handshake::classify(method, &query, is_ws, &self.config.transports) {
            Ok(kind) => kind,
            Err(code) => {
                if query.sid.is_none() && via == Via::Client {
                    self.refuse(asked_transport(false, is_ws), Why::Protocol(code));
                }
                return now(error(code));
            }
        };
        match (kind, via) {
            (RequestKind::Polling { sid, read }, _) => self.polling(req, sid, read, remote, via),
            // Only polling requests of existing sessions are ever forwarded.
            (_, Via::Forwarded) => now(error(EngineErrorCode::BadRequest)),
            (RequestKind::Handshake(transport), Via::Client) => {
                now(self.handshake(&mut req, transport, raw_query, remote))
            }
            (RequestKind::Upgrade(sid), Via::Client) => self.upgrade(&mut req, sid, remote),
        }
    }

    /// The answer to another node asking where to relay the upgrade of session `sid`
    /// ([`relay`], step 1): this node's relay address if it holds the session, open,
    /// on polling and not upgrading.
    fn relay_target(&self, sid: Sid) -> Response<Body> {
        let Some(address) = self.relay_address.get() else {
            return error(EngineErrorCode::BadRequest);
        };
        if !self.config.transports.contains(&TransportKind::Websocket) {
            return error(EngineErrorCode::BadRequest);
        }
        match self.registry.get(sid) {
            Some(session) if !session.is_closed() && session.can_upgrade() => {
                text(StatusCode::OK, address.clone())
            }
            _ => error(EngineErrorCode::UnknownSid),
        }
    }

    fn new_session<B>(
        &self,
        req: &Request<B>,
        transport: TransportKind,
        query: String,
        remote: SocketAddr,
    ) -> Arc<Session> {
        let ping_interval = match (&self.config.sse, transport) {
            (Some(sse), TransportKind::Sse) => sse.heartbeat,
            _ => self.config.ping_interval,
        };
        let sid = match &self.config.node_tag {
            Some(tag) => Sid::from_random_tagged(tag, rand::random()),
            None => Sid::from_random(rand::random()),
        };
        let query = match kept_query(&query) {
            kept if kept.len() == query.len() => query,
            kept => {
                tracing::debug!(
                    kept = kept.len(),
                    sent = query.len(),
                    "handshake query over the kept budget cut"
                );
                kept.to_owned()
            }
        };
        let info = HandshakeInfo {
            headers: kept_headers(req.headers()),
            query_params: decode_query(&query),
            query,
            address: remote,
            issued: SystemTime::now(),
            transport,
        };
        let heartbeat = Heartbeat::new(websocket::now(), ping_interval, self.config.ping_timeout);
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

    /// Registers a new session in `slot`, tells the handler and starts its driver.
    fn start(
        self: &Arc<Self>,
        session: &Arc<Session>,
        ws: Option<websocket::WsStream>,
        slot: Slot,
    ) {
        self.registry.insert(session.clone(), slot);
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
        if self.is_draining() {
            // A WebSocket handshake accepted just before the drain started.
            session.close(DisconnectReason::ServerShuttingDown);
        }
    }

    /// A place for a new session (a handshake on any transport): a token of the
    /// client address's `handshake_rate_per_ip`, then a slot as
    /// [`Self::reserve_slot`] gives it; or why not (counted in `connections_refused`).
    fn new_session_slot(
        &self,
        headers: &http::HeaderMap,
        remote: SocketAddr,
    ) -> Result<Slot, NoSlot> {
        let key = (self.handshake_rates.is_some() || self.config.max_sessions_per_ip > 0)
            .then(|| self.client_key(headers, remote));
        // The slot first: a handshake refused for capacity spends no token, so a
        // client retrying against a full node keeps its bucket. A slot refused a token
        // is given back as it drops.
        let slot = self.slot_for(key).map_err(NoSlot::Full)?;
        if let (Some(rates), Some(key)) = (&self.handshake_rates, key)
            && let Err(retry_after) = rates.take(key, session::now())
        {
            self.metrics
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(NoSlot::TooFast(retry_after));
        }
        Ok(slot)
    }

    /// A place among `max_connections` (and the client address's
    /// `max_sessions_per_ip`) for a session not opened here (a relayed upgrade), or
    /// why not (counted in `connections_refused`).
    fn reserve_slot(&self, headers: &http::HeaderMap, remote: SocketAddr) -> Result<Slot, Full> {
        let key = (self.config.max_sessions_per_ip > 0).then(|| self.client_key(headers, remote));
        self.slot_for(key)
    }

    /// What the client is counted under: its address (from `X-Forwarded-For` behind
    /// a trusted proxy) as a [`ClientKey`].
    fn client_key(&self, headers: &http::HeaderMap, remote: SocketAddr) -> ClientKey {
        ClientKey::of(client_ip(
            remote.ip(),
            headers,
            &self.config.trusted_proxies,
        ))
    }

    /// A slot, counted under `key` when sessions per address are bounded.
    fn slot_for(&self, key: Option<ClientKey>) -> Result<Slot, Full> {
        let max = self.config.max_sessions_per_ip;
        let per_ip = key.filter(|_| max > 0).map(|key| (key, max));
        let slot = self.registry.reserve(self.config.max_connections, per_ip);
        if slot.is_err() {
            self.metrics
                .connections_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        slot
    }

    /// Whether a new session may open: the application's filter (Node's
    /// `allowRequest`) lets the request through, and the node is neither shutting down
    /// nor draining. Each transport answers a refusal in its own form.
    fn may_open(&self, headers: &http::HeaderMap, remote: SocketAddr) -> Result<(), Closed> {
        if let Some(allow) = self.allow_request.get()
            && !allow(headers, remote)
        {
            return Err(Closed::Refused);
        }
        if self.shutdown.is_triggered() || self.is_draining() {
            return Err(Closed::Unavailable);
        }
        if self.metrics.shrunk() {
            self.metrics
                .pressure_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(Closed::Pressure);
        }
        Ok(())
    }

    /// Counts and reports a refused handshake (see [`crate::diagnosis::Refusal`]).
    fn refuse(&self, transport: TransportKind, why: Why) {
        use crate::diagnosis::{Category, Refusal, Stage};
        let (category, code, message) = match why {
            Why::Origin(origin) => (
                Category::Policy,
                "origin_not_allowed",
                format!("the origin `{origin}` is not in cors.allowed_origins"),
            ),
            Why::Protocol(code) => (
                Category::Protocol,
                "bad_request",
                format!("not a valid Engine.IO handshake: {code}"),
            ),
            Why::Sse(code) => (
                Category::Protocol,
                code,
                "not a valid Server-Sent Events request".to_owned(),
            ),
            Why::Closed(Closed::Refused) => (
                Category::Policy,
                "forbidden",
                "the application's allowRequest refused the handshake".to_owned(),
            ),
            Why::Closed(Closed::Unavailable) => (
                Category::Server,
                "shutting_down",
                "the server is draining".to_owned(),
            ),
            Why::Closed(Closed::Pressure) => (
                Category::Pressure,
                "memory_pressure",
                crate::diagnosis::Memory::of(&self.metrics).fact(),
            ),
            Why::Capacity(NoSlot::Full(Full::Node)) => (
                Category::Policy,
                "at_capacity",
                format!(
                    "{} connections open (engine.max_connections {})",
                    self.registry.len(),
                    self.config.max_connections
                ),
            ),
            Why::Capacity(NoSlot::Full(Full::Address)) => (
                Category::Policy,
                "too_many_from_address",
                format!(
                    "the client's address holds engine.max_sessions_per_ip ({}) sessions",
                    self.config.max_sessions_per_ip
                ),
            ),
            Why::Capacity(NoSlot::TooFast(_)) => {
                let rate = self.config.handshake_rate_per_ip;
                (
                    Category::Policy,
                    "handshake_rate_limited",
                    format!(
                        "the client's address opened sessions faster than \
                         engine.handshakes_per_ip_per_second ({}, bursts of {})",
                        rate.per_second, rate.burst
                    ),
                )
            }
        };
        self.metrics.refused(Stage::Handshake, category);
        self.handler.on_refused(Refusal::new(
            Stage::Handshake,
            "",
            transport,
            category,
            code,
            &message,
        ));
    }

    /// Closes the connections holding the most queued bytes (`server overloaded`)
    /// until they held at least `excess` bytes together, at least one if any holds
    /// something; connections with nothing queued are left alone (closing them frees
    /// next to nothing). Returns how many were closed and the bytes they held.
    pub fn shed(&self, excess: u64) -> (usize, u64) {
        let mut held: Vec<(usize, Arc<Session>)> = self
            .registry
            .open_sessions()
            .into_iter()
            .map(|s| (s.queued_bytes(), s))
            .filter(|(bytes, _)| *bytes > 0)
            .collect();
        held.sort_by_key(|(bytes, _)| std::cmp::Reverse(*bytes));
        let (mut closed, mut freed) = (0, 0u64);
        for (bytes, session) in held {
            if closed > 0 && freed >= excess {
                break;
            }
            session.close(DisconnectReason::ServerOverloaded);
            closed += 1;
            freed += bytes as u64;
        }
        self.metrics
            .pressure_shed
            .fetch_add(closed as u64, std::sync::atomic::Ordering::Relaxed);
        (closed, freed)
    }

    /// A Server-Sent Events request ([`sse`]): the checks of a handshake, then a
    /// session on the SSE transport whose CONNECT to the namespace the query names is
    /// made on the client's behalf; the answer waits for that CONNECT's outcome.
    fn sse<B>(self: &Arc<Self>, req: &Request<B>, remote: SocketAddr) -> Answer {
        let Some(config) = self.config.sse.clone() else {
            return now(sse::refusal(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route",
            ));
        };
        if req.method() != Method::GET {
            let mut res = sse::refusal(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Server-Sent Events are read with GET",
            );
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return now(res);
        }
        match self.may_open(req.headers(), remote) {
            Ok(()) => {}
            Err(closed) => {
                self.refuse(TransportKind::Sse, Why::Closed(closed));
                return now(match closed {
                    Closed::Refused => {
                        sse::refusal(StatusCode::FORBIDDEN, "forbidden", "request refused")
                    }
                    Closed::Unavailable | Closed::Pressure => sse::unavailable(),
                });
            }
        }
        let raw_query = req.uri().query().unwrap_or("").to_owned();
        let connect = match sse::connect_packet(&decode_query(&raw_query), &config) {
            Ok(connect) => connect,
            Err(res) => {
                self.refuse(TransportKind::Sse, Why::Sse("bad_request"));
                return now(*res);
            }
        };
        let query = sse::kept_query(&raw_query, &config);
        // A listener's rooms and `lastEventId` are in its query: one a session would
        // keep only part of is refused, not served a stream missing rooms.
        if kept_query(&query).len() < query.len() {
            self.refuse(TransportKind::Sse, Why::Sse("bad_request"));
            return now(sse::refusal(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the query is longer than a session keeps (8 KiB)",
            ));
        }
        let slot = match self.new_session_slot(req.headers(), remote) {
            Ok(slot) => slot,
            Err(no) => {
                self.refuse(TransportKind::Sse, Why::Capacity(no));
                return now(match no {
                    NoSlot::Full(Full::Node) => sse::unavailable(),
                    no => refused_slot(no),
                });
            }
        };
        let session = self.new_session(req, TransportKind::Sse, query, remote);
        self.start(&session, None, slot);
        session.on_packet(
            switchboard_protocol::engineio::Packet::Message(Bytes::from(connect)),
            websocket::now(),
        );
        later(sse::open(session, config))
    }

    fn handshake<B>(
        self: &Arc<Self>,
        req: &mut Request<B>,
        transport: TransportKind,
        query: String,
        remote: SocketAddr,
    ) -> Response<Body> {
        match self.may_open(req.headers(), remote) {
            Ok(()) => {}
            Err(closed) => {
                self.refuse(transport, Why::Closed(closed));
                return match closed {
                    Closed::Refused => error(EngineErrorCode::Forbidden),
                    Closed::Unavailable | Closed::Pressure => unavailable(),
                };
            }
        }
        match transport {
            TransportKind::Polling => {
                let slot = match self.new_session_slot(req.headers(), remote) {
                    Ok(slot) => slot,
                    Err(no) => {
                        self.refuse(transport, Why::Capacity(no));
                        return refused_slot(no);
                    }
                };
                let session = self.new_session(req, transport, query, remote);
                let open = self.open_packet(&session, transport);
                self.start(&session, None, slot);
                text(StatusCode::OK, open)
            }
            TransportKind::Websocket => {
                let Some(accept) = websocket::accept_key(req.headers()) else {
                    self.refuse(transport, Why::Protocol(EngineErrorCode::BadRequest));
                    return error(EngineErrorCode::BadRequest);
                };
                // The slot is taken now, not when the WebSocket is up: handshakes in
                // flight count against `max_connections` too, so a burst of them cannot
                // overshoot it. A handshake that fails gives it back (the slot drops).
                let slot = match self.new_session_slot(req.headers(), remote) {
                    Ok(slot) => slot,
                    Err(no) => {
                        self.refuse(transport, Why::Capacity(no));
                        return refused_slot(no);
                    }
                };
                let session = self.new_session(req, transport, query, remote);
                let on_upgrade = hyper::upgrade::on(req);
                let server = self.clone();
                tokio::spawn(async move {
                    let Ok(upgraded) = on_upgrade.await else {
                        return;
                    };
                    let ws = websocket::stream(upgraded, &server.config, &server.inbound).await;
                    let open = server.open_packet(&session, transport);
                    // The queue is empty: the `open` packet fits unless the byte bound
                    // is absurdly small, and then the session closes as a slow consumer.
                    let _ = session.send_control_frame(Frame::text(open));
                    server.start(&session, Some(ws), slot);
                });
                websocket::switching_protocols(&accept)
            }
            // Never classified as a handshake: SSE has its own route.
            TransportKind::Sse => error(EngineErrorCode::UnknownTransport),
        }
    }

    fn polling<B: RequestBody>(
        self: &Arc<Self>,
        req: Request<B>,
        sid: Sid,
        read: bool,
        remote: SocketAddr,
        via: Via,
    ) -> Answer {
        // The body must arrive whole within the deadline, whether it is read here or
        // for forwarding (the wrapper costs a timer only once a read has to wait).
        let req = req.map(|body| polling::Deadline::new(body, self.inbound.clone()));
        let Some(session) = self.registry.get(sid) else {
            return match via {
                Via::Client => {
                    let server = self.clone();
                    later(async move {
                        let own = server.config.node_tag.as_ref();
                        let limit = (server.config.max_payload, &server.inbound);
                        let forwarder = server.forwarder.get();
                        forward::forward(forwarder, own, limit, req, sid, remote).await
                    })
                }
                Via::Forwarded => now(error(EngineErrorCode::UnknownSid)),
            };
        };
        session.expire_if_overdue(websocket::now());
        // A closed session serves requests until its last frames are taken: the
        // client's next GET gets what was queued before the close, then the `close`
        // packet (or, when the client closed, the noop of a GET racing its closing
        // POST), as Node's polling transport sends its close on the next poll. The
        // driver keeps it that long, within a bound (see `drive`). Before 2026-12-07
        // only a drain's closes did: a server's close or kick answered the next GET
        // with 400, losing what was queued — a kick's DISCONNECT included — and the
        // client reconnected as after a network error.
        let gone = match session.closed_reason() {
            None => false,
            Some(reason) => super::driver::client_gone(reason) || session.lock().queue.is_empty(),
        };
        if gone {
            return now(error(EngineErrorCode::UnknownSid));
        }
        if !read && is_binary_body(req.headers()) {
            // Engine.IO v4 sends binary as base64 text; a binary body is invalid.
            session.close(DisconnectReason::TransportError);
            return now(error(EngineErrorCode::BadRequest));
        }
        if read {
            return later(async move {
                let result = polling::get(&session).await;
                poll_answer(result.map(|body| text(StatusCode::OK, body)))
            });
        }
        let length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = req.into_body();
        let max_payload = self.config.max_payload;
        later(async move {
            let result = polling::post(&session, body, length, max_payload).await;
            poll_answer(result.map(|()| {
                let mut res = text(StatusCode::OK, "ok");
                res.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
                res
            }))
        })
    }

    fn upgrade<B>(self: &Arc<Self>, req: &mut Request<B>, sid: Sid, remote: SocketAddr) -> Answer {
        let Some(session) = self.registry.get(sid) else {
            return self.relay(req, sid, remote);
        };
        if session.is_closed() {
            // Closed, still there for its last polls: nothing to upgrade to.
            return now(error(EngineErrorCode::UnknownSid));
        }
        let Some(accept) = websocket::accept_key(req.headers()) else {
            return now(error(EngineErrorCode::BadRequest));
        };
        // A second upgrade of the same session is accepted and closed at once, as
        // Node does, so the transport in use keeps working.
        let duplicate = !session.try_start_upgrade();
        let on_upgrade = hyper::upgrade::on(req);
        let config = self.config.clone();
        let inbound = self.inbound.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                if !duplicate {
                    session.abort_upgrade();
                }
                return;
            };
            let mut ws = websocket::stream(upgraded, &config, &inbound).await;
            if duplicate {
                tracing::debug!(sid = %session.sid(), "duplicate upgrade closed");
                // As any closing WebSocket: a client that does not read the close
                // frame does not hold the task (and its connection) longer.
                let close = futures_util::SinkExt::close(&mut ws);
                let _ = tokio::time::timeout(super::driver::CLOSE_FLUSH_TIMEOUT, close).await;
                return;
            }
            websocket::upgrade(session, ws, config.upgrade_timeout).await;
        });
        now(websocket::switching_protocols(&accept))
    }

    /// The upgrade of a session another node owns: relayed to it ([`relay`]) when
    /// this node is clustered, not draining and has a slot; `Session ID unknown`
    /// otherwise (the client stays on polling).
    fn relay<B>(self: &Arc<Self>, req: &mut Request<B>, sid: Sid, remote: SocketAddr) -> Answer {
        let (Some(forwarder), Some(own)) = (self.forwarder.get(), &self.config.node_tag) else {
            return now(error(EngineErrorCode::UnknownSid));
        };
        let owner = match forward::owner_tag(sid.as_str(), own.len()) {
            Some(owner) if owner != own.as_str() => owner.to_owned(),
            _ => return now(error(EngineErrorCode::UnknownSid)),
        };
        if websocket::accept_key(req.headers()).is_none() {
            return now(error(EngineErrorCode::BadRequest));
        }
        if self.shutdown.is_triggered() {
            return now(error(EngineErrorCode::UnknownSid));
        }
        // Counted before anything else, so a drain starting now waits for it.
        let Some(upgrade) = self.registry.relayed_upgrade() else {
            return now(error(EngineErrorCode::UnknownSid));
        };
        let Ok(slot) = self.reserve_slot(req.headers(), remote) else {
            return now(unavailable());
        };
        let head = relay::RelayHead {
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            remote,
        };
        let client = hyper::upgrade::on(req);
        later(relay::relay(
            forwarder.clone(),
            owner,
            head,
            client,
            (slot, upgrade),
            (
                self.metrics.clone(),
                self.shutdown.clone(),
                self.config.longest_poll() + relay::IDLE_MARGIN,
            ),
        ))
    }
}

/// Why a new session may not open ([`EngineServer::may_open`]).
#[derive(Debug, Clone, Copy)]
enum Closed {
    /// The application's filter refused the request.
    Refused,
    /// The node is shutting down or draining.
    Unavailable,
    /// The node is at critical memory pressure or worse.
    Pressure,
}

/// The transport a refused request asked for: SSE on its path, WebSocket for an
/// upgrade, else long-polling.
fn asked_transport(sse: bool, upgrade: bool) -> TransportKind {
    if sse {
        TransportKind::Sse
    } else if upgrade {
        TransportKind::Websocket
    } else {
        TransportKind::Polling
    }
}

/// Why a handshake was refused, for its report.
#[derive(Debug)]
enum Why {
    /// The origin is not allowed (the origin as sent).
    Origin(String),
    /// Not a valid handshake.
    Protocol(EngineErrorCode),
    /// Not a valid SSE request (its error code).
    Sse(&'static str),
    /// [`EngineServer::may_open`] said no.
    Closed(Closed),
    /// `max_connections` are open, the client's address holds
    /// `max_sessions_per_ip`, or it opens sessions faster than
    /// `handshake_rate_per_ip`.
    Capacity(NoSlot),
}

/// Why a new session got no slot ([`EngineServer::new_session_slot`]).
#[derive(Debug, Clone, Copy)]
enum NoSlot {
    /// `max_connections` or the address's `max_sessions_per_ip` are taken.
    Full(Full),
    /// The address's `handshake_rate_per_ip` bucket is empty: a token is there after
    /// this long.
    TooFast(std::time::Duration),
}

/// The answer to a routed request: ready now (handshakes, upgrades, errors), or once
/// a long-poll, a request body or another node has answered. Only the waits are boxed,
/// each sized for itself, so that the future of [`EngineServer::handle`] stays small.
type Answer = Either<Ready<Response<Body>>, BoxFuture<'static, Response<Body>>>;

fn now(res: Response<Body>) -> Answer {
    Either::Left(std::future::ready(res))
}

fn later(answer: impl Future<Output = Response<Body>> + Send + 'static) -> Answer {
    Either::Right(Box::pin(answer))
}

/// The HTTP answer of a polling request.
pub(crate) fn poll_answer(result: Result<Response<Body>, PollError>) -> Response<Body> {
    result.unwrap_or_else(|err| match err {
        PollError::TooLarge => empty(StatusCode::PAYLOAD_TOO_LARGE),
        PollError::Timeout => {
            // The rest of the body is never read: the connection cannot be reused.
            let mut res = empty(StatusCode::REQUEST_TIMEOUT);
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
        PollError::Busy => {
            let mut res = json(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"code":4,"message":"Server busy: messages on their way in hold engine.max_inbound_bytes"}"#.to_owned(),
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            // The rest of the body is never read: the connection cannot be reused.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
        PollError::Overlap | PollError::BadRequest | PollError::BodyError => {
            error(EngineErrorCode::BadRequest)
        }
    })
}

/// Headers kept for the application (Socket.IO's `socket.handshake.headers`), at most
/// [`MAX_HANDSHAKE_HEADER_BYTES`] of them: every session keeps them for its whole life,
/// so what a client sends must not decide what it costs. `Authorization` and `Cookie`
/// come first, as the token sources of `[namespaces.auth]` read them; then the others
/// in order, skipping any that no longer fit. The WebSocket handshake's own headers
/// mean nothing once the connection is open and are never kept.
fn kept_headers(headers: &http::HeaderMap) -> http::HeaderMap {
    const DROPPED: [header::HeaderName; 5] = [
        header::SEC_WEBSOCKET_KEY,
        header::SEC_WEBSOCKET_VERSION,
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::CONNECTION,
        header::UPGRADE,
    ];
    const FIRST: [header::HeaderName; 2] = [header::AUTHORIZATION, header::COOKIE];
    let first = FIRST.iter().flat_map(|name| {
        headers
            .get_all(name)
            .into_iter()
            .map(move |value| (name, value))
    });
    let rest = headers
        .iter()
        .filter(|(name, _)| !FIRST.contains(name) && !DROPPED.contains(name));
    let mut budget = MAX_HANDSHAKE_HEADER_BYTES;
    let mut dropped = 0usize;
    let chosen: Vec<_> = first
        .chain(rest)
        .filter(|(name, value)| {
            let cost = header_cost(name, value);
            let fits = cost <= budget;
            if fits {
                budget -= cost;
            } else {
                dropped += 1;
            }
            fits
        })
        .collect();
    if dropped > 0 {
        tracing::debug!(dropped, "handshake headers over the kept budget dropped");
    }
    // Sized for what is kept: a map grown one header at a time reserves room for six.
    let mut kept = http::HeaderMap::with_capacity(chosen.len());
    for (name, value) in chosen {
        kept.append(name.clone(), owned_value(value));
    }
    kept
}

/// A copy of `value` in a buffer of its own. hyper parses headers as slices of the
/// connection's read buffer (8 KiB and more), and a clone would keep that whole buffer
/// alive for as long as the copy lives (a session keeps its headers for its life).
pub(crate) fn owned_value(value: &HeaderValue) -> HeaderValue {
    let mut owned = HeaderValue::from_maybe_shared(Bytes::copy_from_slice(value.as_bytes()))
        .unwrap_or_else(|_| value.clone());
    owned.set_sensitive(value.is_sensitive());
    owned
}

/// What a header counts against [`MAX_HANDSHAKE_HEADER_BYTES`].
fn header_cost(name: &header::HeaderName, value: &HeaderValue) -> usize {
    name.as_str().len() + value.len() + 32
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
    let mut res = Response::new(Body::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    res
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(Body::new(Bytes::from(body)));
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

/// The answer to a handshake that got no slot: 503 at `max_connections`, 429 at the
/// address's `max_sessions_per_ip` or `handshake_rate_per_ip`.
fn refused_slot(no: NoSlot) -> Response<Body> {
    match no {
        NoSlot::Full(Full::Node) => unavailable(),
        NoSlot::Full(Full::Address) => too_many_from_address(),
        NoSlot::TooFast(retry_after) => too_fast_from_address(retry_after),
    }
}

/// 429 for a handshake from an address whose `handshake_rate_per_ip` bucket is
/// empty, with `Retry-After` in whole seconds until it has a token (at least 1).
fn too_fast_from_address(retry_after: std::time::Duration) -> Response<Body> {
    let mut res = json(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"code":4,"message":"Too many handshakes from this address (engine.handshakes_per_ip_per_second)"}"#.to_owned(),
    );
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    res
}

/// 429 for a handshake from an address that holds `max_sessions_per_ip` sessions.
fn too_many_from_address() -> Response<Body> {
    let mut res = json(
        StatusCode::TOO_MANY_REQUESTS,
        r#"{"code":4,"message":"Too many sessions from this address (engine.max_sessions_per_ip)"}"#.to_owned(),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// 503 while shutting down or at `max_connections`; clients retry with backoff.
fn unavailable() -> Response<Body> {
    let mut res = json(
        StatusCode::SERVICE_UNAVAILABLE,
        r#"{"code":4,"message":"Server unavailable: at capacity, under memory pressure or shutting down"}"#.to_owned(),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}
