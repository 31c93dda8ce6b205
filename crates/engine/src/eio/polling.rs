//! The long-polling transport: one GET waits for queued frames, one POST delivers a
//! payload; a second concurrent request of either kind is a protocol error.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use switchboard_protocol::engineio::{Packet, TransportKind, payload};
use tokio::time::{Instant, Sleep};

use crate::reason::DisconnectReason;

use super::inbound::{Charge, InboundBudget};
use super::session::{Session, Upgrade};
use super::websocket::now;
use crate::diagnosis::Cutoff;

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
    /// The body did not arrive within `body_timeout`: 408, and the session is closed.
    Timeout,
    /// The body would pass `max_inbound_bytes`: 503, and the session is closed.
    Busy,
}

/// A request body that must arrive whole by a deadline (the inbound budget's
/// `body_timeout` from when the request was received): past it, reading fails with
/// [`Cutoff::TooSlow`]. Wraps every polling request body, so a slow-body (slowloris)
/// POST cannot hold its connection, its session and a growing buffer, whether the body
/// is read here or for forwarding to another node.
///
/// What it has read counts against the node's inbound budget until it is dropped
/// (`max_inbound_bytes`, [`super::inbound`]); a read that would pass it fails with
/// [`Cutoff::InboundFull`], and one that waits for more may be made to give way to a
/// newer message ([`Cutoff::InboundGaveWay`]).
#[derive(Debug)]
pub(crate) struct Deadline<B> {
    body: B,
    deadline: Instant,
    charge: Charge,
    /// Created on the first read that has to wait, so a body that is already there
    /// (or a GET without one) costs no timer. Boxed: a `Sleep` is not `Unpin`.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> Deadline<B> {
    /// `body`, charged to `budget` and to be read whole within its timeout from now.
    pub(crate) fn new(body: B, budget: Arc<InboundBudget>) -> Self {
        let charge = Charge::new(budget);
        Deadline {
            body,
            deadline: Instant::now() + charge.timeout(),
            charge,
            sleep: None,
        }
    }
}

impl<B: super::server::RequestBody> Body for Deadline<B> {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let since = this.deadline - this.charge.timeout();
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            if let Some(Ok(frame)) = &frame
                && let Some(data) = frame.data_ref()
                && let Err(cut) = this.charge.add(data.len(), since)
            {
                return Poll::Ready(Some(Err(Box::new(cut))));
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        // Waiting for more of the body: what it holds may be made to give way.
        if let Err(cut) = this.charge.wait(since, cx) {
            return Poll::Ready(Some(Err(Box::new(cut))));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let timeout = this.charge.timeout();
                Poll::Ready(Some(Err(Box::new(Cutoff::TooSlow { timeout }))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Clears the in-flight flag when the request ends. A request dropped before it was
/// answered means the client aborted it; like Node, that closes the session.
struct InFlight<'a> {
    session: &'a Session,
    read: bool,
    answered: bool,
}

impl InFlight<'_> {
    fn answer<T>(mut self, result: T) -> T {
        self.answered = true;
        result
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut inner = self.session.lock();
        if self.read {
            inner.get_active = false;
        } else {
            inner.post_active = false;
        }
        drop(inner);
        if !self.answered {
            tracing::debug!(sid = %self.session.sid(), "polling request aborted by the client");
            self.session.close_ended(
                DisconnectReason::TransportError,
                crate::diagnosis::Ending::Lost,
            );
        }
    }
}

fn begin(session: &Session, read: bool) -> Result<InFlight<'_>, PollError> {
    let mut inner = session.lock();
    // A session whose transport was lost (an aborted request) is over at once for
    // the client, as in Node, where it is gone: a request that comes before the
    // driver has removed it is refused, not answered with the `close` packet.
    let lost = inner.closed.is_some() && inner.ending == crate::diagnosis::Ending::Lost;
    if lost || inner.transport != TransportKind::Polling {
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
    Ok(InFlight {
        session,
        read,
        answered: false,
    })
}

/// A long-polling GET: waits until frames are queued, then returns them all.
pub(crate) async fn get(session: &Arc<Session>) -> Result<Bytes, PollError> {
    let in_flight = begin(session, true)?;
    let result = wait_for_frames(session).await;
    in_flight.answer(result)
}

/// Most packets in one polling response. python-engineio's client refuses payloads of
/// more than 16 packets (a guard against decode bombs) and drops the connection, so a
/// burst is split over several polls instead; the next poll returns at once.
pub(crate) const MAX_PACKETS_PER_POLL: usize = 16;

/// How long a GET made during an upgrade probe waits before getting a noop: Node's
/// upgrade check interval.
const PROBING_NOOP_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

async fn wait_for_frames(session: &Arc<Session>) -> Result<Bytes, PollError> {
    let mut probing_wait_over = false;
    loop {
        let notified = session.writer.notified();
        let probing = {
            let mut inner = session.lock();
            if !inner.queue.is_empty() {
                // A closing session flushes everything; an open one at most
                // MAX_PACKETS_PER_POLL, the rest going out on the next poll at once.
                let frames = match inner.closed {
                    // The `close` packet goes out alone, in the poll after the last
                    // frames. The official JS client emits a payload's packets on the
                    // next tick but handles a `close` in it at once, so events sharing
                    // a payload with the close reach a socket already disconnected: it
                    // buffers them and emits them after it reconnects, on top of the
                    // recovered replay of the same events (a duplicate), because the
                    // offset it resumed from was taken before it saw them.
                    Some(_) => {
                        let n = inner.queue.len();
                        let close_last = inner.queue.back().is_some_and(is_close_packet);
                        Session::take_up_to(&mut inner, if close_last { n.max(2) - 1 } else { n })
                    }
                    None => Session::take_up_to(&mut inner, MAX_PACKETS_PER_POLL),
                };
                if inner.closed.is_some() {
                    // The driver may be waiting for the final frames to be taken.
                    session.wake_driver();
                }
                return Ok(Session::encode_polling(&frames));
            }
            if inner.closed.is_some() || inner.transport != TransportKind::Polling {
                return Err(PollError::BadRequest);
            }
            match &mut inner.upgrade {
                // A GET pending when the probe arrived returns at once so the client
                // can pause polling; others wait a little for the upgrade (then 400).
                Upgrade::Probing { noop_owed } if *noop_owed || probing_wait_over => {
                    *noop_owed = false;
                    return Ok(Bytes::from_static(b"6"));
                }
                Upgrade::Probing { .. } => true,
                _ => false,
            }
        };
        if probing {
            probing_wait_over = tokio::time::timeout(PROBING_NOOP_INTERVAL, notified)
                .await
                .is_err();
        } else {
            notified.await;
        }
    }
}

/// Whether `frame` is the Engine.IO `close` packet a server-closed session ends with.
fn is_close_packet(frame: &super::session::Frame) -> bool {
    matches!(frame, super::session::Frame::Text(t) if t.as_str() == "1")
}

/// A polling POST: reads at most `max_payload` bytes and handles every packet.
pub(crate) async fn post<B: super::server::RequestBody>(
    session: &Arc<Session>,
    body: B,
    content_length: Option<u64>,
    max_payload: usize,
) -> Result<(), PollError> {
    let in_flight = begin(session, false)?;
    let result = read_and_handle(session, body, content_length, max_payload).await;
    in_flight.answer(result)
}

async fn read_and_handle<B: super::server::RequestBody>(
    session: &Arc<Session>,
    body: B,
    content_length: Option<u64>,
    max_payload: usize,
) -> Result<(), PollError> {
    if let Some(len) = content_length.filter(|len| *len > max_payload as u64) {
        session.close_too_large(len, max_payload);
        return Err(PollError::TooLarge);
    }
    let bytes = match super::body::read_capped(body, max_payload).await {
        Ok(bytes) => bytes,
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            // A chunked body: its size is known only to be over the bound.
            session.close_too_large(0, max_payload);
            return Err(PollError::TooLarge);
        }
        Err(err) if let Some(&cut) = err.downcast_ref::<Cutoff>() => {
            tracing::debug!(sid = %session.sid(), %cut, "polling body cut off");
            session.close_cut_off(cut);
            return Err(match cut {
                Cutoff::TooSlow { .. } => PollError::Timeout,
                Cutoff::InboundFull { .. } | Cutoff::InboundGaveWay { .. } => PollError::Busy,
                Cutoff::TooLarge { .. } => PollError::TooLarge,
            });
        }
        Err(_) => return Err(PollError::BodyError),
    };
    // One packet at a time: a body can hold hundreds of thousands of tiny packets, and
    // the first one refused (a client PING, a malformed element) ends the reading
    // without the rest ever being decoded or held.
    for packet in payload::packets(bytes) {
        // A `max_payload` body of tiny events is over 100,000 of them: handled in one
        // poll, they held a worker thread for tens of milliseconds per POST, timers
        // and other connections waiting. Each spends the task's budget, as a
        // WebSocket's messages do, and the task yields when it is spent.
        tokio::task::consume_budget().await;
        if session.is_closed() {
            if matches!(packet, Ok(Packet::Close)) {
                // The client closes a session the server closed (it did not poll for
                // the rest): nobody will take what is left.
                session.drop_unread();
            }
            break;
        }
        match packet {
            // Read per packet: the loop may yield between them.
            Ok(packet) => session.on_packet(packet, now()),
            Err(err) => {
                tracing::debug!(sid = %session.sid(), error = %err, "malformed polling payload");
                session.close(DisconnectReason::ParseError);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node's "closes the session upon cancelled polling request": once a GET was
    /// aborted the session is over for the client, even before its driver has run and
    /// removed it (a window that opens on a busy machine): the next request is refused,
    /// not answered with the `close` packet.
    #[test]
    fn a_request_after_an_aborted_get_is_refused() {
        let session = Session::for_test(TransportKind::Polling);
        let aborted = begin(&session, true).expect("the first GET begins");
        drop(aborted);
        assert_eq!(
            session.lock().closed,
            Some(DisconnectReason::TransportError)
        );
        assert_eq!(begin(&session, true).err(), Some(PollError::BadRequest));
        assert_eq!(begin(&session, false).err(), Some(PollError::BadRequest));
    }

    /// A body that sends its first bytes, then nothing more (a slow-body attacker).
    struct Stalls(Option<Bytes>);

    impl Body for Stalls {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                None => Poll::Pending,
            }
        }
    }

    /// A polling body waiting for the rest of its bytes is a holder of the inbound
    /// budget: a newer message that needs room makes it give way, and its read ends.
    #[tokio::test(start_paused = true)]
    async fn a_stalled_polling_body_gives_way_to_a_newer_message() {
        use super::super::inbound::Charge;
        let budget = InboundBudget::new(
            1000,
            std::time::Duration::from_secs(10),
            Arc::default(),
            Arc::default(),
        );
        let yields_after = budget.yields_after();
        let mut body = Deadline::new(Stalls(Some(Bytes::from(vec![b'x'; 900]))), budget.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        let mut newer = Charge::new(budget.clone());
        assert!(
            newer.set(500, Instant::now()).is_err(),
            "too young to give way"
        );
        tokio::time::advance(yields_after).await;
        assert_eq!(newer.set(500, Instant::now()), Ok(()));
        let Poll::Ready(Some(Err(err))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("the stalled body's read must end");
        };
        assert_eq!(
            err.downcast_ref::<Cutoff>(),
            Some(&Cutoff::InboundGaveWay {
                limit: 1000,
                after: yields_after
            })
        );
    }

    /// A session closed otherwise (here: the server's) still hands its `close` packet
    /// to the next GET.
    #[test]
    fn a_get_after_a_server_close_takes_the_close_packet() {
        let session = Session::for_test(TransportKind::Polling);
        session.close(DisconnectReason::ForcedClose);
        assert!(begin(&session, true).is_ok());
    }
}
