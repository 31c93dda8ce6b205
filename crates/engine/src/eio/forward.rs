//! Long-polling without sticky sessions: the seam ([`Forwarder`]) through which a node
//! serves a polling request of a session that another node owns, and the request and
//! answer that cross it.
//!
//! A round-robin load balancer sends each HTTP request of a polling session to any
//! node. The session lives on one node only (its queue, its heartbeat, its sockets),
//! the one whose [`NodeTag`] starts the session id. A node that gets a GET or POST for
//! a session it does not hold reads the owner's tag from the id ([`owner_tag`]), hands
//! the request to the [`Forwarder`], and returns the owner's answer to the client with
//! its own CORS headers. The owner runs the request with
//! [`EngineServer::handle_forwarded`](super::EngineServer::handle_forwarded), through
//! the very code an HTTP request takes there.
//!
//! WebSocket upgrades are not forwarded this way: a WebSocket for another node's
//! session is relayed to its owner over a direct connection (see the `relay` module;
//! the forwarder only carries the question where the owner can be reached), and
//! answered `400 Session ID unknown` when that is not possible, the client then
//! staying on polling. A WebSocket connection without a session id starts a new
//! session on whichever node receives it.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, LengthLimitError};
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::EngineErrorCode;
use tokio::time::Instant;

pub use switchboard_protocol::sid::owner_tag;

use crate::config::NodeTag;

use super::inbound::{Charge, InboundBudget};
use super::polling::PollError;
use super::server::{Body, RequestBody, error};

/// The request headers that travel with a forwarded request; the polling path reads no
/// others once a session exists.
///
/// - `content-type`: a binary (`application/octet-stream`) POST body is refused;
/// - `content-length`: a body over `maxPayload` gets 413 and closes the session (set
///   by the receiving node from what it read: a body over the limit is not read and
///   travels empty with a length over the limit);
/// - `origin`, `host`: kept so the owner's answer (the Origin check, same-origin
///   requests included) is the one a local request would get;
/// - `user-agent`, `x-forwarded-for`: who the client is, for the owner's logs.
pub const FORWARDED_HEADERS: [HeaderName; 6] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::ORIGIN,
    header::HOST,
    header::USER_AGENT,
    HeaderName::from_static("x-forwarded-for"),
];

/// The statuses a polling request is answered with: 200 (frames, or `ok` to a
/// POST), 400 (an Engine.IO error), 403 (`Forbidden`), 413 (a POST over
/// `maxPayload`), 500. An owner's answer with any other status is not passed to the
/// client: it gets `Session ID unknown`, as when forwarding fails.
pub const FORWARDED_STATUSES: [StatusCode; 5] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::FORBIDDEN,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::INTERNAL_SERVER_ERROR,
];

/// The response headers passed back from the owner: the polling path sets
/// `content-type` only (the length is the body's, CORS headers are the receiving
/// node's). Any other header an owner's answer carries is dropped.
pub const FORWARDED_RESPONSE_HEADERS: [HeaderName; 1] = [header::CONTENT_TYPE];

/// Carries a long-polling request to the node that owns its session and brings its
/// answer back.
///
/// Why a trait: the engine only knows that a session belongs elsewhere (by the tag at
/// the start of its id); how to reach that node — Redis, a direct call between
/// processes, or in-process in tests — is the cluster's business.
///
/// What an implementation must do:
///
/// - deliver `request` to the node tagged `owner`, run it there with
///   [`EngineServer::handle_forwarded`](super::EngineServer::handle_forwarded), and
///   return that answer unchanged (the engine passes on only
///   [`FORWARDED_STATUSES`] and [`FORWARDED_RESPONSE_HEADERS`]);
/// - accept requests and answers from the nodes of the cluster only: whoever can
///   reach the transport must not be able to run a poll on a session (take its
///   frames, send as its client) or answer one;
/// - wait long enough: a long-polling GET is answered only once the owner has frames
///   for it, which takes up to [`EngineConfig::longest_poll`](crate::EngineConfig::longest_poll)
///   (`pingInterval + pingTimeout`) — time out only after that, plus the network's
///   own delay;
/// - fail fast for a tag no node has: any client can send a made-up session id;
/// - propagate cancellation when it can: the returned future is dropped when the
///   client gives up on its request. Dropping the owner's `handle_forwarded` future
///   ends the request there as if its client had left (the session closes, as for a
///   local aborted poll), instead of frames being taken for a client no longer there.
///
/// Any error makes this node answer `400 {"code":1,"message":"Session ID unknown"}`,
/// as for a session that does not exist: the client opens a new session (and resumes
/// its Socket.IO state if connection state recovery is on).
pub trait Forwarder: Send + Sync + std::fmt::Debug + 'static {
    /// Forwards `request` to the node tagged `owner`.
    fn forward(
        &self,
        owner: &str,
        request: ForwardedRequest,
    ) -> BoxFuture<'static, Result<ForwardedResponse, ForwardError>>;
}

/// Why a request could not be served by its owner.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No node of the cluster has this tag (it left, or never existed).
    #[error("no node has tag {0:?}")]
    UnknownOwner(String),
    /// The owner did not answer in time.
    #[error("the owner did not answer in time")]
    Timeout,
    /// The request or its answer could not cross the cluster's transport.
    #[error("cluster transport failed: {0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A long-polling request on its way to the session's owner: everything the polling
/// path reads, with the body already read (at most `maxPayload` bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRequest {
    /// `GET` (receive) or `POST` (send).
    pub method: Method,
    /// The raw query string, without `?` (`EIO=4&transport=polling&sid=…`).
    pub query: String,
    /// The [`FORWARDED_HEADERS`] the client sent.
    pub headers: HeaderMap,
    /// The request body (empty for a GET).
    pub body: Bytes,
    /// The client's address, as the receiving node saw it.
    pub remote: SocketAddr,
}

/// The owner's answer to a [`ForwardedRequest`], returned to the client as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers (CORS headers are added by the node that answers the client).
    pub headers: HeaderMap,
    /// Response body.
    pub body: Bytes,
}

/// Serves a client's polling request for session `sid`, which this node (tagged `own`)
/// does not hold, through the node whose tag starts `sid`. Without a forwarder or a
/// tag of its own, for a session id naming this node, or when forwarding fails, the
/// session is unknown.
///
/// The body read is held until the owner answered (up to the forward timeout): it
/// stays charged to the node's inbound budget (`inbound`) until then, as a body being
/// read is, so a flood of POSTs forwarded to a slow owner cannot hold more than the
/// budget (before 2026-12-07 the charge ended once the body was read). Past the
/// budget the client gets 503, as for its own node's POSTs.
pub(crate) async fn forward<B: RequestBody>(
    forwarder: Option<&Arc<dyn Forwarder>>,
    own: Option<&NodeTag>,
    (max_payload, inbound): (usize, &Arc<InboundBudget>),
    req: Request<B>,
    sid: Sid,
    remote: SocketAddr,
) -> Response<Body> {
    let (Some(forwarder), Some(own)) = (forwarder, own) else {
        return error(EngineErrorCode::UnknownSid);
    };
    let owner = match owner_tag(sid.as_str(), own.len()) {
        Some(owner) if owner != own.as_str() => owner,
        _ => return error(EngineErrorCode::UnknownSid),
    };
    let request = match ForwardedRequest::from_request(req, remote, max_payload).await {
        Ok(request) => request,
        Err(err @ PollError::Busy) => return super::server::poll_answer(Err(err)),
        Err(_) => return error(EngineErrorCode::BadRequest),
    };
    let mut held = Charge::new(inbound.clone());
    if held.set(request.body.len(), Instant::now()).is_err() {
        return super::server::poll_answer(Err(PollError::Busy));
    }
    match forwarder.forward(owner, request).await {
        Ok(res) => res.into_response(),
        Err(err) => {
            tracing::debug!(%sid, owner, error = %err, "polling request not forwarded");
            error(EngineErrorCode::UnknownSid)
        }
    }
}

impl ForwardedRequest {
    /// Reads a client's request for forwarding: the kept headers and the body, at most
    /// `max_payload` bytes. A larger body is not read further: it is forwarded empty
    /// with a `content-length` above the limit, so the owner answers 413 and closes
    /// the session exactly as it would for the request itself. A GET's body is never
    /// read (the owner would ignore it, as a GET on its own node is): read, it would
    /// hold its bytes of the inbound budget for as long as the long-poll waits.
    pub(crate) async fn from_request<B: RequestBody>(
        req: Request<B>,
        remote: SocketAddr,
        max_payload: usize,
    ) -> Result<Self, PollError> {
        let (parts, body) = req.into_parts();
        let mut headers = only(&parts.headers, &FORWARDED_HEADERS);
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let over_limit = max_payload as u64 + 1;
        let body = if parts.method != Method::POST {
            Some(Bytes::new())
        } else if declared.is_some_and(|len| len > max_payload as u64) {
            None
        } else {
            match super::body::read_capped(body, max_payload).await {
                Ok(bytes) => Some(bytes),
                Err(err) if err.is::<LengthLimitError>() => None,
                // Over the node's inbound budget (`max_inbound_bytes`): 503.
                Err(err)
                    if matches!(
                        err.downcast_ref::<crate::diagnosis::Cutoff>(),
                        Some(
                            crate::diagnosis::Cutoff::InboundFull { .. }
                                | crate::diagnosis::Cutoff::InboundGaveWay { .. }
                        )
                    ) =>
                {
                    return Err(PollError::Busy);
                }
                Err(_) => return Err(PollError::BodyError),
            }
        };
        let (length, body) = match body {
            Some(body) => (body.len() as u64, body),
            None => (declared.unwrap_or(over_limit).max(over_limit), Bytes::new()),
        };
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        Ok(ForwardedRequest {
            method: parts.method,
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers,
            body,
            remote,
        })
    }

    /// The request as the owner's HTTP path takes it, under the engine `path`, with
    /// the [`FORWARDED_HEADERS`] only; `None` when the query string cannot be part of
    /// a URI.
    pub(crate) fn into_request(self, path: &str) -> Option<Request<Full<Bytes>>> {
        let uri: Uri = format!("{path}?{}", self.query).parse().ok()?;
        let mut req = Request::new(Full::new(self.body));
        *req.method_mut() = self.method;
        *req.uri_mut() = uri;
        *req.headers_mut() = only(&self.headers, &FORWARDED_HEADERS);
        Some(req)
    }
}

impl ForwardedResponse {
    /// Takes an engine answer apart for the trip back.
    pub(crate) async fn from_response(res: Response<Body>) -> Self {
        let (parts, body) = res.into_parts();
        // A `Full` body is one chunk already there; collecting it cannot fail.
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(never) => match never {},
        };
        ForwardedResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// The answer to give the client: with a [`FORWARDED_STATUSES`] status and the
    /// [`FORWARDED_RESPONSE_HEADERS`] only; any other status makes it
    /// `Session ID unknown`.
    pub(crate) fn into_response(self) -> Response<Body> {
        if !FORWARDED_STATUSES.contains(&self.status) {
            tracing::debug!(status = %self.status, "forwarded answer with an unexpected status");
            return error(EngineErrorCode::UnknownSid);
        }
        let mut res = Response::new(super::Body::new(self.body));
        *res.status_mut() = self.status;
        *res.headers_mut() = only(&self.headers, &FORWARDED_RESPONSE_HEADERS);
        res
    }
}

/// The headers of `headers` named in `kept`.
pub(crate) fn only(headers: &HeaderMap, kept: &[HeaderName]) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in kept {
        for value in headers.get_all(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9))
    }

    fn post(body: &'static str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = Uri::from_static("/socket.io/?EIO=4&transport=polling&sid=x");
        for (name, value) in headers {
            req.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap_or(header::WARNING),
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("")),
            );
        }
        req
    }

    #[tokio::test]
    async fn keeps_the_query_body_and_listed_headers_only() -> Result<(), PollError> {
        let req = post(
            "42[\"x\"]",
            &[
                ("content-type", "text/plain;charset=UTF-8"),
                ("origin", "https://app.example"),
                ("cookie", "secret=1"),
            ],
        );
        let fwd = ForwardedRequest::from_request(req, remote(), 100).await?;
        assert_eq!(fwd.method, Method::POST);
        assert_eq!(fwd.query, "EIO=4&transport=polling&sid=x");
        assert_eq!(fwd.body, Bytes::from_static(b"42[\"x\"]"));
        assert_eq!(fwd.headers.len(), 3, "{:?}", fwd.headers);
        assert_eq!(fwd.headers[header::CONTENT_LENGTH], "7");
        assert!(fwd.headers.get(header::COOKIE).is_none());
        let back = fwd.into_request("/socket.io/");
        let back = back.map(|r| (r.method().clone(), r.uri().to_string()));
        assert_eq!(
            back,
            Some((
                Method::POST,
                "/socket.io/?EIO=4&transport=polling&sid=x".to_owned()
            ))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_body_over_the_limit_goes_empty_with_a_length_over_the_limit() -> Result<(), PollError>
    {
        // Declared too large: not read at all.
        let req = post("0123456789", &[("content-length", "10")]);
        let fwd = ForwardedRequest::from_request(req, remote(), 4).await?;
        assert!(fwd.body.is_empty());
        assert_eq!(fwd.headers[header::CONTENT_LENGTH], "10");
        // Not declared, found too large while reading.
        let req = post("0123456789", &[]);
        let fwd = ForwardedRequest::from_request(req, remote(), 4).await?;
        assert!(fwd.body.is_empty());
        assert_eq!(fwd.headers[header::CONTENT_LENGTH], "5");
        Ok(())
    }

    #[tokio::test]
    async fn a_get_goes_without_its_body() -> Result<(), PollError> {
        // Read, a GET's body would hold the inbound budget while the long-poll waits.
        let mut req = post("0123456789", &[("content-length", "10")]);
        *req.method_mut() = Method::GET;
        let fwd = ForwardedRequest::from_request(req, remote(), 100).await?;
        assert_eq!(fwd.method, Method::GET);
        assert!(fwd.body.is_empty());
        assert_eq!(fwd.headers[header::CONTENT_LENGTH], "0");
        Ok(())
    }

    #[tokio::test]
    async fn responses_survive_the_round_trip() {
        for status in FORWARDED_STATUSES {
            let mut res = Response::new(super::Body::from("ok"));
            *res.status_mut() = status;
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
            let fwd = ForwardedResponse::from_response(res).await;
            assert_eq!(fwd.body, Bytes::from_static(b"ok"));
            let back = fwd.clone().into_response();
            assert_eq!(back.status(), status);
            assert_eq!(back.headers()[header::CONTENT_TYPE], "text/html");
            assert_eq!(ForwardedResponse::from_response(back).await, fwd);
        }
    }

    #[tokio::test]
    async fn only_the_statuses_and_headers_of_polling_come_back() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        headers.insert(header::SET_COOKIE, HeaderValue::from_static("session=evil"));
        headers.insert(header::LOCATION, HeaderValue::from_static("https://evil"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        let answer = |status| ForwardedResponse {
            status,
            headers: headers.clone(),
            body: Bytes::from_static(b"<script>"),
        };
        let res = answer(StatusCode::OK).into_response();
        let names: Vec<&str> = res.headers().keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["content-type"]);
        for status in [
            StatusCode::FOUND,
            StatusCode::UNAUTHORIZED,
            StatusCode::IM_A_TEAPOT,
        ] {
            let res = answer(status).into_response();
            assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{status}");
            assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
            let body = res.into_body().collect().await.map(|b| b.to_bytes());
            assert_eq!(
                body.ok(),
                Some(Bytes::from(EngineErrorCode::UnknownSid.json_body()))
            );
        }
    }

    #[test]
    fn the_owner_reads_only_the_forwarded_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("sid=1"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let fwd = ForwardedRequest {
            method: Method::POST,
            query: "EIO=4&transport=polling&sid=x".to_owned(),
            headers,
            body: Bytes::new(),
            remote: remote(),
        };
        let req = fwd.into_request("/socket.io/");
        let names: Option<Vec<String>> =
            req.map(|r| r.headers().keys().map(|k| k.to_string()).collect());
        assert_eq!(names, Some(vec!["content-type".to_owned()]));
    }
}
