//! The session driver: one task per session that owns its heartbeat timer and, on the
//! WebSocket transport, the socket itself (reads, batched writes). It is the only
//! place a session is finalized: removed from the registry, counted, and reported to
//! its handler.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use std::task::{Context, Poll, ready};

use futures_util::{SinkExt, StreamExt};
use switchboard_protocol::engineio::{HeartbeatEvent, Packet, TransportKind};
use tokio::time::{Instant as TokioInstant, Sleep};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::error::ProtocolError;

use crate::diagnosis::{self, Ending};
use crate::reason::DisconnectReason;
use crate::shutdown::Shutdown;

use super::inbound::cutoff_of;
use super::registry::Registry;
use super::session::{Frame, Session};
use super::wake;
use super::websocket::{self, Incoming, WsStream, now};

/// Longest time spent flushing the final frames (the `close` packet) to a WebSocket
/// client that is not reading, or waiting for a polling client closed by a drain to
/// fetch them; past it the socket is simply dropped.
pub(crate) const CLOSE_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a polling session closed by the client stays answerable, so that a GET
/// sent concurrently with the closing POST receives its noop.
const POLLING_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// Resolves once the session's queue was taken by a polling GET.
async fn drained(session: &Arc<Session>) {
    std::future::poll_fn(|cx| {
        loop {
            session.wake.take(wake::STATE);
            if session.lock().queue.is_empty() {
                return Poll::Ready(());
            }
            if !session.wake.register(cx.waker(), wake::STATE) {
                return Poll::Pending;
            }
        }
    })
    .await;
}

/// Drives `session` until it closes. `ws` is set when the session was opened over
/// WebSocket; a polling session adopts a WebSocket when an upgrade completes.
///
/// An `async` block rather than an `async fn`: an `async fn` moves its arguments into
/// locals and its future keeps room for both copies, and the future is every session's
/// largest allocation (`size_of` is guarded by a test below).
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn would keep two copies of its arguments"
)]
pub(crate) fn drive(
    session: Arc<Session>,
    mut ws: Option<WsStream>,
    registry: Arc<Registry>,
    shutdown: Shutdown,
) -> impl Future<Output = ()> + Send {
    async move {
        let mut out = Outbox::default();
        // One timer for the session's whole life, moved only when its deadline changes:
        // a fresh timer per wake-up would cost a timer-wheel insert and removal per
        // message on busy connections.
        let sleep = tokio::time::sleep_until(TokioInstant::now());
        tokio::pin!(sleep);
        let reason = loop {
            if let Some(reason) = prepare_step(&session, &mut ws, sleep.as_mut()) {
                break reason;
            }
            let step = match ws.as_mut() {
                Some(ws) => websocket_step(&session, ws, &mut out, sleep.as_mut(), &shutdown).await,
                None => polling_step(&session, sleep.as_mut(), &shutdown).await,
            };
            match step {
                Step::Continue => {}
                Step::Tick => {
                    out.release_if_idle(&session);
                    heartbeat(&session);
                    app_deadline(&session);
                }
                Step::Close(reason) => session.close(reason),
                Step::Ended(reason, ending) => session.close_ended(reason, ending),
            }
        };
        // The last steps are boxed: each runs once per session, and inline their futures
        // (a timer and a write) would make every session's task larger for its whole life.
        match ws.as_mut() {
            Some(ws) => {
                let finish = finish_websocket(&session, ws, &mut out);
                let _ = Box::pin(tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, finish)).await;
            }
            None if reason == DisconnectReason::TransportClose => {
                // The client closed with a POST; a GET racing it should still get its
                // noop rather than an unknown-session error.
                let grace = tokio::time::timeout(POLLING_CLOSE_GRACE, drained(&session));
                let _ = Box::pin(grace).await;
            }
            None if reason == DisconnectReason::ServerShuttingDown => {
                // A drain: the client's next GET takes what is queued and the `close`
                // packet (it sees "transport close" and reconnects elsewhere), unless it
                // does not come back in time.
                let _ =
                    Box::pin(tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, drained(&session))).await;
            }
            None if !lingers(&session, reason) => {}
            None => {
                // The server closed it otherwise (a kick, a refusal, a limit): closed
                // now — counted, the application's disconnect handlers run — and then
                // still reachable until the client's next GET took what is queued and
                // the `close` packet (after a kick: the DISCONNECT), or an SSE stream
                // wrote them. Node's polling transport likewise sends its close on the
                // next poll. What is left past the bound is dropped, so a stream still
                // writing to a slow listener ends.
                closed_now(&session, reason);
                let flushed =
                    Box::pin(tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, drained(&session))).await;
                if flushed.is_err() {
                    Session::discard_queue(&mut session.lock());
                }
                forget(&session, &registry);
                return;
            }
        }
        finalize(&session, &registry, reason);
    }
}

/// Whether a polling or SSE session the server closed for `reason` stays reachable
/// until its client took what is queued (see `drive`). Not when the client is gone or
/// broke the protocol (no pong, an aborted GET, a malformed or oversized message:
/// it is answered with an error and does not come back for the rest), nor for a
/// session whose CONNECT was refused (its client has its answer), nor when nothing is
/// queued.
fn lingers(session: &Session, reason: DisconnectReason) -> bool {
    let inner = session.lock();
    // A WebSocket the upgrade finished with, not adopted yet: no GET will come.
    let polled = matches!(inner.transport, TransportKind::Polling | TransportKind::Sse);
    polled && !client_gone(reason) && !inner.refused && !inner.queue.is_empty()
}

/// Whether a session closed for `reason` has no client to read what is queued: no
/// pong came, its GET was aborted, or it broke the protocol (a malformed or oversized
/// message), and it was answered with an error. Its requests are refused from then
/// on (`EngineServer::polling`), as in Node.
pub(crate) fn client_gone(reason: DisconnectReason) -> bool {
    matches!(
        reason,
        DisconnectReason::PingTimeout
            | DisconnectReason::TransportError
            | DisconnectReason::ParseError
            | DisconnectReason::PayloadTooLarge
    )
}

/// Before each step: the reason if the session closed; otherwise adopts a WebSocket
/// the upgrade left and sets the timer to the next deadline. A function of its own, so
/// that none of its locals take room in the driver's future.
fn prepare_step(
    session: &Session,
    ws: &mut Option<WsStream>,
    sleep: Pin<&mut Sleep>,
) -> Option<DisconnectReason> {
    let deadline = {
        let mut inner = session.lock();
        if let Some(reason) = inner.closed {
            return Some(reason);
        }
        if let Some(upgraded) = inner.upgraded_ws.take() {
            *ws = Some(*upgraded);
            // Frames queued during the upgrade go out on the new transport now.
            session.wake.raise(wake::WRITE | wake::READ);
        }
        let heartbeat = inner.heartbeat.poll_timeout();
        inner.app_deadline.map_or(heartbeat, |d| d.min(heartbeat))
    };
    let deadline = TokioInstant::from_std(deadline);
    if sleep.is_elapsed() || sleep.deadline() != deadline {
        sleep.reset(deadline);
    }
    None
}

/// What woke the driver.
enum Step {
    /// State changed or frames were written; re-evaluate.
    Continue,
    /// The heartbeat deadline passed.
    Tick,
    /// The session must close for this reason.
    Close(DisconnectReason),
    /// The session must close for this reason, and the engine knows how the transport
    /// ended (for the diagnosis).
    Ended(DisconnectReason, Ending),
}

/// Waits for what a polling session's driver handles: a change of state, shutdown,
/// the heartbeat. (Its frames are written by the GETs.)
///
/// A `poll_fn` returned as it is rather than awaited in an `async fn`: the driver's
/// future holds it inline, and the `async fn` wrapper kept a second copy of the
/// arguments (40 bytes of every session's task).
fn polling_step<'a>(
    session: &'a Arc<Session>,
    mut sleep: Pin<&'a mut Sleep>,
    shutdown: &'a Shutdown,
) -> impl Future<Output = Step> + 'a {
    std::future::poll_fn(move |cx| {
        loop {
            let bits = session.wake.take(wake::STATE | wake::SHUTDOWN);
            if bits & wake::SHUTDOWN != 0 || shutdown.is_triggered() {
                return Poll::Ready(Step::Close(DisconnectReason::ServerShuttingDown));
            }
            if bits & wake::STATE != 0 {
                return Poll::Ready(Step::Continue);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Step::Tick);
            }
            if !session
                .wake
                .register(cx.waker(), wake::STATE | wake::SHUTDOWN)
            {
                return Poll::Pending;
            }
        }
    })
}

/// One step of a WebSocket session: writes what is queued, reads the next message,
/// or sees a change of state, shutdown or the heartbeat's deadline.
///
/// A hand-written poll rather than a `select!` of futures: a broadcast wakes every
/// recipient's driver once, and per wake-up this takes the raised bits, moves the
/// queued frames to the outbox and writes them, and looks at the socket and the timer
/// (each only updating its waker), with nothing created, linked or unlinked.
///
/// Frames are moved from the session's queue only when the outbox is empty, and at
/// most [`OUTBOX_BYTES`] of them: a client that does not read leaves its write pending,
/// and what is queued behind it stays in the queue, whose bounds then close it as a
/// slow consumer. The `WRITE` bit raised meanwhile (or left by a take that did not
/// take everything) is left for when the write completes (waiting on it then would
/// only spin).
///
/// Returned as a `poll_fn`, not awaited in an `async fn` (see [`polling_step`]).
fn websocket_step<'a>(
    session: &'a Arc<Session>,
    ws: &'a mut WsStream,
    out: &'a mut Outbox,
    mut sleep: Pin<&'a mut Sleep>,
    shutdown: &'a Shutdown,
) -> impl Future<Output = Step> + 'a {
    let watched = |out: &Outbox| {
        if out.is_busy() {
            wake::READ | wake::STATE | wake::SHUTDOWN
        } else {
            wake::READ | wake::WRITE | wake::STATE | wake::SHUTDOWN
        }
    };
    std::future::poll_fn(move |cx| {
        loop {
            let bits = session.wake.take(watched(out));
            // Before any return below: the bit is taken now, and a `READ` taken with
            // `STATE` and then left unheeded was lost, the socket never read again
            // (a client's CONNECTs to several namespaces at once, whose answers raise
            // `STATE`, went unanswered from the first read that returned `Pending`).
            if bits & wake::READ != 0 {
                out.read_armed = false;
            }
            if bits & wake::WRITE != 0 {
                out.take_from(session);
            }
            if bits & wake::SHUTDOWN != 0 || shutdown.is_triggered() {
                return Poll::Ready(Step::Close(DisconnectReason::ServerShuttingDown));
            }
            if bits & wake::STATE != 0 {
                return Poll::Ready(Step::Continue);
            }
            // Reads come first: what a client sent in one burst is handled whole before
            // anything is written, so the replies it causes (acks, and the frames of its
            // broadcasts to sockets that share rooms) leave in one batch, not one
            // syscall each. The runtime's budget ends a long burst (the read returns
            // `Pending` and wakes `READ`), and the writes below run outside it.
            if !out.read_armed {
                let read_waker = futures_util::task::waker_ref(session);
                match ws.poll_next_unpin(&mut Context::from_waker(&read_waker)) {
                    Poll::Ready(msg) => return Poll::Ready(on_ws_message(session, msg)),
                    // Readiness will raise `READ`; until then there is nothing to read.
                    Poll::Pending => out.read_armed = true,
                }
            }
            // The write and the timer are polled outside the runtime's budget: a burst
            // of reads spends it, and they would then return `Pending` too, poll after
            // poll, as long as the client kept the socket full (a deep receive buffer):
            // no reply and no ping went out, and a client that read everything was
            // closed as a slow consumer (before 2026-12-07). Their work is bounded (one
            // outbox of at most `OUTBOX_BYTES`, one timer), and the reads still spend
            // the budget, so the task still yields.
            if out.is_busy() {
                let (o, w) = (&mut *out, &mut *ws);
                let write = tokio::task::coop::unconstrained(std::future::poll_fn(|cx| {
                    o.poll_write(w, cx)
                }));
                if let Poll::Ready(Err(_)) = std::pin::pin!(write).poll(cx) {
                    return Poll::Ready(Step::Ended(
                        DisconnectReason::TransportError,
                        Ending::Lost,
                    ));
                }
            }
            let timer = tokio::task::coop::unconstrained(sleep.as_mut());
            if std::pin::pin!(timer).poll(cx).is_ready() {
                return Poll::Ready(Step::Tick);
            }
            // A bit raised since the take (or `WRITE`, left while the write that has
            // just completed was pending) is handled now rather than slept on.
            if !session.wake.register(cx.waker(), watched(out)) {
                return Poll::Pending;
            }
        }
    })
}

/// Most bytes of frames the driver takes from the session's queue at once (at least
/// one frame): a client that does not read holds its queue's bounds plus this plus the
/// WebSocket library's write buffer, not twice the queue. A batch this large already
/// fills several of tungstenite's 16 KiB writes, so the cap costs no syscalls; only a
/// client far behind meets it.
const OUTBOX_BYTES: usize = 64 * 1024;

/// Frames taken from the session's queue and not yet handed to the WebSocket, owned by
/// the driver so that an interrupted write loses nothing: a frame leaves `pending`
/// only when tungstenite is ready for it, and is handed over in the same poll; `dirty`
/// stays set until it is flushed.
#[derive(Debug, Default)]
struct Outbox {
    pending: VecDeque<Frame>,
    dirty: bool,
    /// The WebSocket's read side returned `Pending` with the session's read waker
    /// registered: it is not polled again until that raises `READ`.
    read_armed: bool,
}

impl Outbox {
    fn is_busy(&self) -> bool {
        self.dirty || !self.pending.is_empty()
    }

    /// Takes what is queued, up to [`OUTBOX_BYTES`] (at least one frame). What stays
    /// leaves `WRITE` raised, to be taken once this is written. True if frames stay.
    fn take_from(&mut self, session: &Session) -> bool {
        let more = Session::drain_into(&mut session.lock(), &mut self.pending, OUTBOX_BYTES);
        if more {
            session.wake.leave(wake::WRITE);
        }
        more
    }

    /// Feeds every pending frame, then flushes once (one batch, few syscalls).
    /// Cancel-safe: see the type's documentation.
    fn poll_write(&mut self, ws: &mut WsStream, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        while !self.pending.is_empty() {
            ready!(ws.poll_ready_unpin(cx))?;
            // Taken only once the sink is ready, and handed over whole: a frame shared
            // by a broadcast's recipients is not cloned again (its count is touched by
            // every recipient, from every worker).
            if let Some(frame) = self.pending.pop_front() {
                ws.start_send_unpin(websocket::to_ws(frame))?;
            }
            self.dirty = true;
        }
        if self.dirty {
            ready!(ws.poll_flush_unpin(cx))?;
            self.dirty = false;
        }
        Poll::Ready(Ok(()))
    }

    /// [`Self::poll_write`] as a future.
    async fn write(&mut self, ws: &mut WsStream) -> Result<(), WsError> {
        std::future::poll_fn(|cx| self.poll_write(ws, cx)).await
    }

    /// At each heartbeat, an idle connection gives back its two frame buffers (this
    /// one and the session's queue), which a busy one keeps and reuses: 320 bytes a
    /// session otherwise held for the frames of long ago. After its ping, an idle
    /// session holds one of them until the next heartbeat.
    fn release_if_idle(&mut self, session: &Session) {
        if !self.is_busy() {
            self.pending = VecDeque::new();
            Session::release_idle_queue(&mut session.lock());
        }
    }
}

fn on_ws_message(
    session: &Arc<Session>,
    msg: Option<Result<tokio_tungstenite::tungstenite::Message, WsError>>,
) -> Step {
    match msg {
        None | Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => {
            Step::Ended(DisconnectReason::TransportClose, Ending::Lost)
        }
        Some(Err(WsError::Capacity(err))) => {
            use tokio_tungstenite::tungstenite::error::CapacityError;
            if let CapacityError::MessageTooLong { size, max_size } = err {
                session.lock().cutoff = Some(crate::diagnosis::Cutoff::TooLarge {
                    size: size as u64,
                    max: max_size,
                });
            }
            Step::Close(DisconnectReason::PayloadTooLarge)
        }
        Some(Err(WsError::Utf8(_))) => Step::Close(DisconnectReason::ParseError),
        // A peer that vanished without a closing handshake just closed the transport.
        Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
            Step::Ended(DisconnectReason::TransportClose, Ending::Lost)
        }
        Some(Err(WsError::Protocol(_))) => Step::Close(DisconnectReason::ParseError),
        // A message on its way in cut off by its bounds (`inbound`).
        Some(Err(WsError::Io(err))) if let Some(cut) = cutoff_of(&err) => {
            session.lock().cutoff = Some(cut);
            Step::Close(cut.reason())
        }
        // A reset or another I/O error: the connection went away without a close frame.
        Some(Err(WsError::Io(_))) => Step::Ended(DisconnectReason::TransportError, Ending::Lost),
        Some(Err(_)) => Step::Close(DisconnectReason::TransportError),
        Some(Ok(msg)) => match websocket::decode(msg) {
            Incoming::Packet(p) => {
                session.on_packet(p, now());
                Step::Continue
            }
            Incoming::Ignore => Step::Continue,
            Incoming::Closed => Step::Ended(DisconnectReason::TransportClose, Ending::Said),
            Incoming::Malformed => Step::Close(DisconnectReason::ParseError),
        },
    }
}

/// Writes what is pending and what is still queued (the `close` packet last), then
/// closes.
async fn finish_websocket(session: &Arc<Session>, ws: &mut WsStream, out: &mut Outbox) {
    loop {
        let more = out.take_from(session);
        if out.write(ws).await.is_err() || !more {
            break;
        }
    }
    let _ = ws.close(None).await;
}

fn heartbeat(session: &Arc<Session>) {
    let event = session.lock().heartbeat.handle_timeout(now());
    match event {
        Some(HeartbeatEvent::SendPing) => {
            // A ping that does not fit in the queue closes the session as a slow
            // consumer: a client that reads nothing cannot pong anyway.
            let _ = session.send_control(&Packet::Ping(Default::default()));
        }
        Some(HeartbeatEvent::TimedOut { last_seen }) => {
            tracing::debug!(
                sid = %session.sid(),
                silent_ms = now().saturating_duration_since(last_seen).as_millis() as u64,
                "ping timeout"
            );
            session.close(DisconnectReason::PingTimeout);
        }
        None => {}
    }
}

/// Runs the application's deadline callback once it has passed.
fn app_deadline(session: &Arc<Session>) {
    let due = {
        let mut inner = session.lock();
        match inner.app_deadline {
            Some(d) if now() >= d => inner.app_deadline.take().is_some(),
            _ => false,
        }
    };
    if due && let Some(handler) = session.handler() {
        handler.on_deadline(session);
    }
}

fn finalize(session: &Arc<Session>, registry: &Registry, reason: DisconnectReason) {
    closed_now(session, reason);
    forget(session, registry);
}

/// What a close does at once: counted, logged, the application's handlers told.
fn closed_now(session: &Arc<Session>, reason: DisconnectReason) {
    let transport = session.transport();
    if session.lock().refused {
        session.metrics.connection_refused_after_open(transport);
    } else {
        let (category, _) = diagnosis::classify(&session.facts(reason));
        session
            .metrics
            .connection_closed(transport, reason, category);
    }
    tracing::debug!(sid = %session.sid(), %reason, %transport, "session closed");
    if let Some(handler) = session.handler() {
        handler.on_close(session, reason);
    }
}

/// The session stops counting and can no longer be found.
fn forget(session: &Arc<Session>, registry: &Registry) {
    // Only now: a drain that waits for the count to reach zero then knows every
    // disconnect handler has run (and queued its hooks).
    registry.remove(session.sid());
    // A polling GET may still wait for the `close` packet.
    session.writer.notify_one();
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Most bytes the driver's future may take. Every session's task holds it, in a
    /// cell of the future plus 144 bytes (tokio's header, scheduler, id and trailer,
    /// and the tracing span) rounded up to 128: at most 624 keeps that cell at 768
    /// bytes (it takes 568: 616 once the step was a hand-written poll, with a `select!`
    /// it took 872, in a cell of 1 KiB; the steps returned as `poll_fn`s rather than
    /// awaited in `async fn`s saved 64, and the inbound watch's box took 16 of that
    /// back). docs/memory.md has the whole per-session budget.
    const DRIVER_FUTURE_BUDGET: usize = 624;

    #[test]
    fn the_driver_future_fits_its_budget() {
        let session = Session::for_test(TransportKind::Websocket);
        let driver = drive(session, None, Arc::default(), Shutdown::never());
        let size = std::mem::size_of_val(&driver);
        assert!(
            size <= DRIVER_FUTURE_BUDGET,
            "the driver's future takes {size} bytes, over its budget of {DRIVER_FUTURE_BUDGET}"
        );
    }
}
