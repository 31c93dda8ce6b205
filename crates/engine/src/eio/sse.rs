//! Server-Sent Events: a one-way transport beside Engine.IO's two, for clients that
//! only listen (a browser's `EventSource`, `curl -N`, a backend in any language).
//!
//! An SSE listener is an ordinary session and socket underneath: `GET /sse?nsp=/chat`
//! opens a session on [`TransportKind::Sse`](switchboard_protocol::engineio::TransportKind)
//! and makes the Socket.IO CONNECT to the namespace on the client's behalf, with the
//! request's headers (a bearer token, a cookie) and the query parameters
//! [`SseConfig::auth_params`] names as the CONNECT `auth`. So the namespace's
//! middleware, rooms, broadcasts, recovery, limits, metrics and hooks apply as they do
//! to Socket.IO clients, and nothing above the engine needs to know (the rules read
//! the requested rooms from the handshake query).
//!
//! The response waits for the CONNECT's outcome: a refusal is an HTTP error with a
//! JSON `{code, message}` body; an acceptance starts the `text/event-stream`. The
//! stream then writes what the session's queue holds, translated frame by frame
//! ([`switchboard_protocol::sse`]): events as `id:`/`event:`/`data:`, pings as
//! heartbeat comments, the close packet as a `switchboard:close` notice.
//!
//! Liveness: the client cannot answer pings, so a heartbeat counts as answered once
//! the HTTP connection has taken it and asks for more — into buffers (hyper's, the
//! kernel's, the client's) that hold days of heartbeats, so a reader that stops
//! reading is closed once its queue fills (`slow consumer`), or, on a stream quiet but
//! for heartbeats, once those buffers are full (`ping timeout`). A client that goes
//! away drops the body, which closes the session (`transport close`); one gone without
//! a reset is found by the kernel ([`crate::serve`] sets `TCP_USER_TIMEOUT`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::Value;
use switchboard_protocol::sse::{self, SseFrame};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::session::decode_query;
use crate::config::SseConfig;
use crate::diagnosis::Ending;
use crate::reason::DisconnectReason;
use crate::sio::{AUTH_TOO_LARGE, TOO_MANY_SERVER_NAMESPACES};

use super::body::Body;
use super::session::{Frame, Session, now};

/// Longest wait for the CONNECT's outcome (middleware verifying a token may fetch a
/// key set); past it the request is answered 503 and the session closed.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Longest namespace name an SSE request may name, as a room name is bounded.
const MAX_NSP_LEN: usize = 256;

/// An error answer with the JSON body the HTTP API uses: `{"code","message"}`.
pub(crate) fn refusal(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// 503 at `max_connections` or while draining, with `Retry-After` as a handshake
/// gets it (clients retry with backoff), in the SSE refusals' form.
pub(crate) fn unavailable() -> Response<Body> {
    let mut res = refusal(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "server at capacity, under memory pressure or shutting down",
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// The Socket.IO CONNECT text made for an SSE request: the namespace of the `nsp`
/// parameter (`/` when absent) and an `auth` object of the configured parameters.
pub(crate) fn connect_packet(
    params: &[(String, String)],
    config: &SseConfig,
) -> Result<String, Box<Response<Body>>> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let nsp = param("nsp").unwrap_or("/");
    if !nsp.starts_with('/') || nsp.contains(',') || nsp.len() > MAX_NSP_LEN {
        return Err(Box::new(refusal(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "nsp must be a namespace name: '/' then at most 255 characters, no ','",
        )));
    }
    let mut auth = serde_json::Map::new();
    // Never `pid` or `offset`: they would resume a Socket.IO client's session.
    let copied = config
        .auth_params
        .iter()
        .filter(|name| !matches!(name.as_str(), "pid" | "offset"));
    for name in copied {
        if let Some(value) = param(name) {
            auth.insert(name.clone(), Value::String(value.to_owned()));
        }
    }
    let auth = Value::Object(auth).to_string();
    Ok(match nsp {
        "/" => format!("0{auth}"),
        nsp => format!("0{nsp},{auth}"),
    })
}

/// The request's query as the session keeps it (`handshake.query`, `url`): without the
/// parameters copied into the CONNECT `auth` ([`SseConfig::auth_params`]), which carry
/// tokens (an `EventSource` cannot send a header). Kept, they would be read wherever a
/// handshake goes: `fetchSockets` answers through Redis, the Admin UI, the
/// application's own handlers.
pub(crate) fn kept_query(raw: &str, config: &SseConfig) -> String {
    raw.split('&')
        .filter(|pair| {
            let copied = decode_query(pair).first().is_some_and(|(name, _)| {
                !matches!(name.as_str(), "pid" | "offset")
                    && config.auth_params.iter().any(|p| p == name)
            });
            !pair.is_empty() && !copied
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Closes the session when dropped, unless disarmed: the client went away (the
/// response future or the body was dropped).
struct CloseOnDrop(Option<Arc<Session>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(session) = self.0.take() {
            // An SSE client cannot say goodbye: it is always lost.
            session.close_ended(DisconnectReason::TransportClose, Ending::Lost);
        }
    }
}

/// Waits for the CONNECT's outcome, then answers: the event stream, or the refusal.
pub(crate) async fn open(session: Arc<Session>, config: SseConfig) -> Response<Body> {
    let guard = CloseOnDrop(Some(session.clone()));
    let first = tokio::time::timeout(CONNECT_WAIT, connect_frame(&session)).await;
    let text = match first {
        Ok(Some(Frame::Text(text))) => text,
        Ok(_) => {
            // Closed before answering (a malformed request, shutdown).
            let reason = session.closed_reason();
            tracing::debug!(sid = %session.sid(), ?reason, "sse session closed before connecting");
            return match reason {
                Some(DisconnectReason::ParseError) => {
                    refusal(StatusCode::BAD_REQUEST, "bad_request", "malformed request")
                }
                _ => unavailable(),
            };
        }
        Err(_) => {
            session.close_unread(DisconnectReason::ConnectTimeout);
            return refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "the namespace did not answer in time",
            );
        }
    };
    let Some((kind, json)) = connect_outcome(&text) else {
        session.close(DisconnectReason::ParseError);
        return refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "unexpected answer",
        );
    };
    if kind == '4' {
        session.close_refused();
        // Closed already (by a drain during the wait), it would wait for a reader.
        session.drop_unread();
        return refused(&json);
    }
    let stream = Stream {
        session,
        offsets: json.get("offsets").and_then(Value::as_bool) == Some(true),
        attachments_to_skip: 0,
        heartbeat_out: false,
        ended: false,
        _guard: guard,
    };
    let mut head = String::new();
    sse::write_retry(&mut head, config.retry.as_millis());
    if let Some(sid) = json.get("sid").and_then(Value::as_str) {
        head.push_str(": connected ");
        head.push_str(sid);
        head.push_str("\n\n");
    }
    if let Some(recovery) = json.get("recovery") {
        sse::write_event(
            &mut head,
            None,
            sse::notice::RECOVERY,
            &recovery.to_string(),
        );
    }
    let first = Bytes::from(head);
    let chunks = futures_util::stream::once(std::future::ready(first)).chain(
        futures_util::stream::unfold(stream, |mut stream| async move {
            let chunk = stream.next_chunk().await?;
            Some((chunk, stream))
        }),
    );
    let mut res = Response::new(Body::stream(chunks));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-transform"),
    );
    // nginx buffers proxied responses unless told not to.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res
}

/// `('0', answer)` for a CONNECT answer, `('4', error)` for a CONNECT_ERROR, from an
/// engine frame `40[/nsp,]{…}` or `44[/nsp,]{…}`.
fn connect_outcome(text: &str) -> Option<(char, Value)> {
    let packet = text.strip_prefix('4')?;
    let kind = packet.chars().next()?;
    if kind != '0' && kind != '4' {
        return None;
    }
    let rest = &packet[1..];
    let json = match rest.strip_prefix('/') {
        Some(_) => rest.split_once(',')?.1,
        None => rest,
    };
    Some((kind, serde_json::from_str(json).ok()?))
}

/// The HTTP answer to a refused CONNECT, from its `{message, data: {code}}`:
///
/// | refusal | status |
/// |---|---|
/// | `Invalid namespace` (none configured) | 404 `unknown_namespace` |
/// | `data.code` `keys_unavailable` (key set unreachable) | 503 |
/// | `data.code` `room_not_allowed`, `too_many_rooms`, `sse_disabled` | 403 |
/// | any other `data.code` (a token missing, expired, invalid…) | 401 |
/// | the engine's: too many namespaces created from patterns | 503 `too_many_namespaces`, `Retry-After` |
/// | the engine's: the CONNECT payload (`sse.auth_params` values) too large | 413 `auth_too_large` |
/// | no code (a middleware's own refusal) | 403 `refused` |
fn refused(error: &Value) -> Response<Body> {
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("refused");
    let code = error
        .get("data")
        .and_then(|d| d.get("code"))
        .and_then(Value::as_str);
    let (status, code) = match code {
        _ if message == "Invalid namespace" => (StatusCode::NOT_FOUND, "unknown_namespace"),
        None if message == TOO_MANY_SERVER_NAMESPACES => {
            let mut res = refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_namespaces",
                message,
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return res;
        }
        None if message == AUTH_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "auth_too_large"),
        Some(code @ "keys_unavailable") => (StatusCode::SERVICE_UNAVAILABLE, code),
        Some(code @ ("room_not_allowed" | "too_many_rooms" | "sse_disabled")) => {
            (StatusCode::FORBIDDEN, code)
        }
        Some(code) => (StatusCode::UNAUTHORIZED, code),
        None => (StatusCode::FORBIDDEN, "refused"),
    };
    refusal(status, code, message)
}

/// Most bytes of frames one chunk of the stream is made from (at least one frame), as
/// the WebSocket path takes at most this from the queue at once: hyper takes a chunk
/// whenever its write buffer holds less than about 400 KiB, so a listener that does
/// not read holds the queue's bounds plus that plus one chunk, where a chunk of the
/// whole queue (a replay's included) doubled it, and each listener's is its own copy.
const CHUNK_BYTES: usize = 64 * 1024;

/// The CONNECT's outcome (`40…` or `44…`), taken from the queue wherever it is in it;
/// `None` if the session closed first (a drain, a shutdown, a malformed request: the
/// caller answers by the close's reason). Heartbeats due while the CONNECT waits (an
/// `sse.heartbeat` shorter than a slow middleware, e.g. a JWKS fetch) count as
/// answered, as the listener is there, waiting for the response's head. Events the
/// application sent before the CONNECT was answered (from a middleware; the JS client
/// keeps such events until it is connected) stay queued: the stream sends them after
/// its head, in order. Before 2026-12-07 the first frame that was not a heartbeat was
/// read as the outcome, so such an event, or the `close` of a drain during the wait,
/// turned the open into a 500.
async fn connect_frame(session: &Arc<Session>) -> Option<Frame> {
    let heartbeat = |frame: &Frame| matches!(frame, Frame::Text(t) if t.as_str() == "2");
    let outcome =
        |frame: &Frame| matches!(frame, Frame::Text(t) if connect_outcome(t.as_str()).is_some());
    loop {
        let notified = session.writer.notified();
        let (found, answered) = {
            let mut inner = session.lock();
            let mut answered = false;
            while Session::take_first(&mut inner, heartbeat).is_some() {
                inner.heartbeat.on_pong(now());
                answered = true;
            }
            let found = Session::take_first(&mut inner, outcome);
            if found.is_none() && inner.closed.is_some() {
                // Nobody will read what is queued: the client gets a refusal. A drain
                // waits for the queue to be taken.
                drop(inner);
                session.drop_unread();
                return None;
            }
            (found, answered)
        };
        if answered {
            // The driver's timer still points at the pong deadline: move it.
            session.wake_driver();
        }
        if found.is_some() {
            return found;
        }
        notified.await;
    }
}

/// The state of an open event stream.
struct Stream {
    session: Arc<Session>,
    /// Connection state recovery is on: every event's last argument is its offset.
    offsets: bool,
    /// Binary frames still to come of a binary event that was skipped.
    attachments_to_skip: usize,
    /// A heartbeat was handed to the connection; asking for more means it was written.
    heartbeat_out: bool,
    /// The close notice went out: the stream ends.
    ended: bool,
    _guard: CloseOnDrop,
}

impl Stream {
    /// The next chunk of the stream: every frame queued now, translated. `None` ends
    /// the response.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.heartbeat_out {
            // The connection asks for more: the heartbeat was written. The pong an
            // Engine.IO client would send.
            self.heartbeat_out = false;
            self.session.lock().heartbeat.on_pong(now());
            // The driver's timer still points at the pong deadline: move it.
            self.session.wake_driver();
        }
        loop {
            if self.ended {
                return None;
            }
            let session = self.session.clone();
            let notified = session.writer.notified();
            let mut frames = VecDeque::new();
            let (more, closed) = {
                let mut inner = session.lock();
                let more = Session::drain_into(&mut inner, &mut frames, CHUNK_BYTES);
                (more, inner.closed)
            };
            if closed.is_some() {
                // A drain waits for the last frames to be taken.
                session.wake_driver();
            }
            let mut out = String::new();
            for frame in frames {
                self.translate(frame, closed, &mut out);
            }
            if !out.is_empty() {
                return Some(Bytes::from(out));
            }
            if more {
                continue;
            }
            if closed.is_some() {
                return None;
            }
            notified.await;
        }
    }

    fn translate(&mut self, frame: Frame, closed: Option<DisconnectReason>, out: &mut String) {
        let text = match frame {
            Frame::Binary(_) => {
                self.attachments_to_skip = self.attachments_to_skip.saturating_sub(1);
                return;
            }
            Frame::Text(text) => text,
        };
        match text.as_str() {
            "2" => {
                out.push_str(sse::HEARTBEAT);
                self.heartbeat_out = true;
            }
            "1" => {
                let reason = closed.map_or("transport close", DisconnectReason::as_str);
                let data = serde_json::json!({ "reason": reason }).to_string();
                sse::write_event(out, None, sse::notice::CLOSE, &data);
                self.ended = true;
            }
            _ => match translated(&text, self.offsets) {
                Translated::Event { sse, attachments } => {
                    self.attachments_to_skip = attachments;
                    out.push_str(&sse);
                }
                Translated::Disconnect => {
                    // The server disconnected the socket: a stream serves one namespace.
                    self.session
                        .close(DisconnectReason::ServerNamespaceDisconnect);
                }
                Translated::Other => {}
            },
        }
    }
}

/// What a frame is to a stream, its SSE text ready to copy.
#[derive(Clone)]
enum Translated {
    Event {
        sse: Arc<str>,
        /// Binary frames that follow (the event was replaced by a notice).
        attachments: usize,
    },
    Disconnect,
    Other,
}

/// Frames translated lately, per worker thread. A broadcast's frame is one shared
/// buffer for the whole room (one encode per broadcast): the first listener a thread
/// writes it for translates it, the others of that thread copy the text. An entry holds
/// its frame, so the buffer cannot be freed and its address reused while the entry
/// lives; a hit is checked by address and length.
struct RecentFrames {
    entries: [Option<(Utf8Bytes, bool, Translated)>; RECENT_FRAMES],
    next: usize,
}

/// Entries of [`RecentFrames`]: a few broadcasts interleave on one thread, while every
/// entry keeps one frame alive.
const RECENT_FRAMES: usize = 16;

/// Largest frame [`RecentFrames`] keeps: what the entries of one thread hold stays
/// under 1 MiB (frame and text), and a larger event costs more to copy than to parse.
const MAX_RECENT_FRAME: usize = 16 * 1024;

thread_local! {
    static RECENT: std::cell::RefCell<RecentFrames> = const {
        std::cell::RefCell::new(RecentFrames {
            entries: [const { None }; RECENT_FRAMES],
            next: 0,
        })
    };
}

/// `frame` as an SSE event (or what else it is), translated once per thread.
fn translated(frame: &Utf8Bytes, offsets: bool) -> Translated {
    let same = |(cached, cached_offsets, _): &&(Utf8Bytes, bool, Translated)| {
        cached.as_str().as_ptr() == frame.as_str().as_ptr()
            && cached.len() == frame.len()
            && *cached_offsets == offsets
    };
    let hit = RECENT.with_borrow(|recent| {
        recent
            .entries
            .iter()
            .flatten()
            .find(same)
            .map(|(_, _, t)| t.clone())
    });
    if let Some(hit) = hit {
        return hit;
    }
    let fresh = match sse::parse_frame(frame.as_str(), offsets) {
        SseFrame::Event(event) => {
            let mut text = String::new();
            if event.attachments > 0 {
                sse::write_skipped(&mut text, &event);
            } else {
                sse::write_event(&mut text, event.id.as_deref(), &event.name, &event.data);
            }
            Translated::Event {
                sse: Arc::from(text),
                attachments: event.attachments,
            }
        }
        SseFrame::Disconnect => return Translated::Disconnect,
        SseFrame::Other => return Translated::Other,
    };
    if frame.len() > MAX_RECENT_FRAME {
        return fresh;
    }
    RECENT.with_borrow_mut(|recent| {
        let slot = recent.next;
        recent.entries[slot] = Some((frame.clone(), offsets, fresh.clone()));
        recent.next = (slot + 1) % RECENT_FRAMES;
    });
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_frame_is_translated_once_per_thread() {
        let frame = Utf8Bytes::from(r#"42["tick",1,"o-1"]"#.to_owned());
        let text = |t: Translated| match t {
            Translated::Event { sse, .. } => sse,
            _ => Arc::from(""),
        };
        let first = text(translated(&frame, true));
        assert_eq!(&*first, "id: o-1\nevent: tick\ndata: [1]\n\n");
        // Another listener of the same broadcast: the same text, not a new one.
        assert!(Arc::ptr_eq(&first, &text(translated(&frame.clone(), true))));
        // The same bytes in another buffer, or without offsets, are translated anew.
        let copy = Utf8Bytes::from(frame.as_str().to_owned());
        assert!(!Arc::ptr_eq(&first, &text(translated(&copy, true))));
        assert_eq!(
            &*text(translated(&frame, false)),
            "event: tick\ndata: [1,\"o-1\"]\n\n"
        );
    }

    #[test]
    fn refusals_map_to_statuses() {
        let cases = [
            (r#"{"message":"Invalid namespace"}"#, 404),
            (
                r#"{"message":"token expired","data":{"code":"expired"}}"#,
                401,
            ),
            (r#"{"message":"x","data":{"code":"room_not_allowed"}}"#, 403),
            (r#"{"message":"x","data":{"code":"keys_unavailable"}}"#, 503),
            (r#"{"message":"go away"}"#, 403),
            (r#"{"message":"too many namespaces on this server"}"#, 503),
            (r#"{"message":"auth payload too large"}"#, 413),
        ];
        for (json, status) in cases {
            let value: Value = serde_json::from_str(json).unwrap_or_default();
            assert_eq!(refused(&value).status().as_u16(), status, "{json}");
        }
    }

    #[test]
    fn connect_packets_carry_the_namespace_and_configured_params() {
        let config = SseConfig {
            auth_params: vec!["token".into()],
            ..SseConfig::default()
        };
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let packet = connect_packet(
            &params(&[("nsp", "/chat"), ("token", "t"), ("x", "y")]),
            &config,
        );
        assert_eq!(packet.ok().as_deref(), Some(r#"0/chat,{"token":"t"}"#));
        let packet = connect_packet(&params(&[]), &SseConfig::default());
        assert_eq!(packet.ok().as_deref(), Some("0{}"));
        for bad in ["chat", "/a,b"] {
            assert!(
                connect_packet(&params(&[("nsp", bad)]), &config).is_err(),
                "{bad}"
            );
        }
    }

    /// The token copied into `auth` is not kept in the query (percent-encoded names
    /// included); everything else is, as it came.
    #[test]
    fn the_query_kept_has_no_auth_params() {
        let config = SseConfig {
            auth_params: vec!["token".into(), "key".into()],
            ..SseConfig::default()
        };
        assert_eq!(
            kept_query(
                "nsp=%2Fchat&token=secret&room=a&%6Bey=k&tok=x&&token",
                &config
            ),
            "nsp=%2Fchat&room=a&tok=x"
        );
        assert_eq!(kept_query("", &config), "");
        assert_eq!(kept_query("token=t", &SseConfig::default()), "token=t");
    }

    #[test]
    fn connect_outcomes_are_read_with_or_without_a_namespace() {
        let (kind, json) =
            connect_outcome(r#"40/chat,{"sid":"a","offsets":true}"#).unwrap_or(('x', Value::Null));
        assert_eq!((kind, json["sid"].as_str()), ('0', Some("a")));
        let (kind, json) = connect_outcome(r#"44{"message":"m"}"#).unwrap_or(('x', Value::Null));
        assert_eq!((kind, json["message"].as_str()), ('4', Some("m")));
        assert!(connect_outcome("42[\"a\"]").is_none());
    }
}
