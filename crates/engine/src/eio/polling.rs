//! The long-polling transport: one GET waits for queued frames, one POST delivers a
//! payload; a second concurrent request of either kind is a protocol error.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use switchboard_protocol::engineio::{TransportKind, payload};

use crate::reason::DisconnectReason;

use super::session::{Session, Upgrade};
use super::websocket::now;

/// Why a polling request failed; each maps to an HTTP answer in `server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PollError {
    /// A second GET or POST while one is in flight: 400, and the session is closed.
    Overlap,
    /// The session is no longer on polling (upgraded) or is gone: 400.
    BadRequest,
    /// The body exceeds `maxPayload`: 413, and the session is closed.
    TooLarge,
    /// The body could not be read.
    BodyError,
}

/// Clears the in-flight flag when the request ends, including when the client aborts.
struct InFlight<'a> {
    session: &'a Session,
    read: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut inner = self.session.lock();
        if self.read {
            inner.get_active = false;
        } else {
            inner.post_active = false;
        }
    }
}

fn begin(session: &Session, read: bool) -> Result<InFlight<'_>, PollError> {
    let mut inner = session.lock();
    if inner.transport != TransportKind::Polling {
        return Err(PollError::BadRequest);
    }
    let active = if read {
        &mut inner.get_active
    } else {
        &mut inner.post_active
    };
    if *active {
        drop(inner);
        session.close(DisconnectReason::TransportError);
        return Err(PollError::Overlap);
    }
    *active = true;
    Ok(InFlight { session, read })
}

/// A long-polling GET: waits until frames are queued, then returns them all.
pub(crate) async fn get(session: &Arc<Session>) -> Result<Bytes, PollError> {
    let _in_flight = begin(session, true)?;
    loop {
        let notified = session.writer.notified();
        {
            let mut inner = session.lock();
            if !inner.queue.is_empty() {
                let frames = Session::take_queue(&mut inner);
                return Ok(Session::encode_polling(&frames));
            }
            if inner.closed.is_some() || inner.transport != TransportKind::Polling {
                return Err(PollError::BadRequest);
            }
            if inner.upgrade == Upgrade::Probing {
                // Lets the client pause polling and finish the upgrade.
                return Ok(Bytes::from_static(b"6"));
            }
        }
        notified.await;
    }
}

/// A polling POST: reads at most `max_payload` bytes and handles every packet.
pub(crate) async fn post<B: super::server::RequestBody>(
    session: &Arc<Session>,
    body: B,
    content_length: Option<u64>,
    max_payload: usize,
) -> Result<(), PollError> {
    let _in_flight = begin(session, false)?;
    if content_length.is_some_and(|len| len > max_payload as u64) {
        session.close(DisconnectReason::PayloadTooLarge);
        return Err(PollError::TooLarge);
    }
    let limited = http_body_util::Limited::new(body, max_payload);
    let bytes = match limited.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            session.close(DisconnectReason::PayloadTooLarge);
            return Err(PollError::TooLarge);
        }
        Err(_) => return Err(PollError::BodyError),
    };
    match payload::decode(bytes) {
        Ok(packets) => {
            let now = now();
            for packet in packets {
                if session.is_closed() {
                    break;
                }
                session.on_packet(packet, now);
            }
        }
        Err(err) => {
            tracing::debug!(sid = %session.sid(), error = %err, "malformed polling payload");
            session.close(DisconnectReason::ParseError);
        }
    }
    Ok(())
}
