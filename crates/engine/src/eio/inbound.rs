//! Messages on their way in: what every session's half-received message costs the node,
//! bounded together.
//!
//! Each session may be receiving a message of up to `engine.max_payload` (1 MB by
//! default): a polling POST body being read, or a WebSocket message whose frames have
//! not all arrived. One at a time is cheap; `engine.max_connections` of them at once is
//! `max_connections` × `max_payload` (19 GB with the defaults), and a WebSocket client
//! can keep one unfinished for as long as it likes by sending it in fragments with pongs
//! in between. Two bounds close that:
//! - **one budget for the node**, `engine.max_inbound_bytes` ([`InboundBudget`]): the
//!   bytes of every unfinished message, both transports together. A read that would
//!   pass it fails, and its session is closed (`server overloaded`, with the bound in
//!   the diagnosis); a polling POST gets 503. A message that arrives whole in one read
//!   (nearly every message a real client sends) never holds any of it;
//! - **a deadline per WebSocket message**, `engine.body_timeout`, as a polling body has:
//!   a message must be whole that long after its first bytes were read, or its session
//!   is closed (`transport error`). An unfragmented message cannot take longer than the
//!   heartbeat anyway (no pong can get through it), so only a client that fragments
//!   and stalls meets this.
//!
//! The WebSocket side follows the client's frames below tungstenite, in the bytes
//! tungstenite reads ([`Watched`] around the upgraded connection): [`MessageWatch`]
//! reads frame headers (RFC 6455 §5.2) and counts payload bytes without buffering
//! them. It sees the bytes a client sends, so it is fuzzed (the `inbound_watch`
//! target, [`fuzz`]) against tungstenite's reading of the same frames.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::ws_frame::{Header, HeaderBytes, fuzz_reads};
use crate::diagnosis::Cutoff;

/// The node's budget of bytes on their way in (`engine.max_inbound_bytes`), and how
/// long one message may take to arrive whole (`engine.body_timeout`).
#[derive(Debug)]
pub(crate) struct InboundBudget {
    limit: usize,
    timeout: Duration,
    /// Bytes held now; kept in the server's metrics (`switchboard_inbound_bytes`).
    held: Arc<AtomicUsize>,
}

impl InboundBudget {
    /// A budget of `limit` bytes whose count is `held` (the metrics' gauge), for
    /// messages that must each arrive within `timeout`.
    pub(crate) fn new(limit: usize, timeout: Duration, held: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(InboundBudget {
            limit,
            timeout,
            held,
        })
    }

    /// Takes `n` bytes if they fit.
    fn take(&self, n: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
    }
}

/// What one message on its way in holds of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<InboundBudget>,
    held: usize,
}

impl Charge {
    pub(crate) fn new(budget: Arc<InboundBudget>) -> Self {
        Charge { budget, held: 0 }
    }

    /// Makes the charge `total` bytes. `Err` (the charge unchanged) when the budget has
    /// no room for the growth.
    pub(crate) fn set(&mut self, total: usize) -> Result<(), Cutoff> {
        if total > self.held {
            if !self.budget.take(total - self.held) {
                return Err(Cutoff::InboundFull {
                    limit: self.budget.limit,
                });
            }
        } else {
            self.budget.give(self.held - total);
        }
        self.held = total;
        Ok(())
    }
}

impl Charge {
    /// How long the message charged may take to arrive whole.
    pub(crate) fn timeout(&self) -> Duration {
        self.budget.timeout
    }

    /// Adds `n` bytes to the charge (see [`Charge::set`]).
    pub(crate) fn add(&mut self, n: usize) -> Result<(), Cutoff> {
        self.set(self.held.saturating_add(n))
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.give(self.held);
    }
}

/// The cutoff an I/O error from a [`Watched`] read carries, if it is one (the driver
/// closes the session for it).
pub(crate) fn cutoff_of(err: &io::Error) -> Option<Cutoff> {
    err.get_ref()?.downcast_ref::<Cutoff>().copied()
}

/// A WebSocket's connection, read through a [`MessageWatch`]: every read charges the
/// unfinished message's bytes to the budget and checks its deadline.
///
/// What it watches with is boxed: every WebSocket session's driver holds its stream
/// inline, and its 56 bytes, counted twice in that future, would move each session's
/// task into the next size of allocation (+128 bytes, see the driver's future budget);
/// boxed, it is one allocation of 56 bytes.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    io: S,
    state: Box<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    watch: MessageWatch,
    charge: Charge,
    /// When the unfinished message's first bytes were read.
    since: Option<Instant>,
}

impl<S> Watched<S> {
    /// `io`, whose messages must each fit in `budget` and arrive within its timeout.
    pub(crate) fn new(io: S, budget: Arc<InboundBudget>) -> Self {
        Watched {
            io,
            state: Box::new(WatchState {
                watch: MessageWatch::default(),
                charge: Charge::new(budget),
                since: None,
            }),
        }
    }
}

impl WatchState {
    /// After a read that left `progress`: charges and checks the unfinished message.
    /// The clock (`now`) is read only when a message is unfinished: most reads end on
    /// a message's last byte.
    fn account(&mut self, progress: Progress, now: impl FnOnce() -> Instant) -> Result<(), Cutoff> {
        if progress.held == 0 {
            self.since = None;
            return self.charge.set(0);
        }
        let now = now();
        if progress.completed || self.since.is_none() {
            // A new message began in this read.
            self.since = Some(now);
        }
        let since = self.since.unwrap_or(now);
        let timeout = self.charge.timeout();
        if now.saturating_duration_since(since) > timeout {
            return Err(Cutoff::TooSlow { timeout });
        }
        self.charge
            .set(usize::try_from(progress.held).unwrap_or(usize::MAX))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let state = &mut *this.state;
        let progress = state.watch.feed(&buf.filled()[before..]);
        Poll::Ready(
            state
                .account(progress, Instant::now)
                .map_err(io::Error::other),
        )
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Follows the frames a client sends and counts the bytes of the message they are
/// building: the headers and payloads of its data frames (a text or binary frame and
/// its continuations) from its first frame's header until its final frame's last byte.
/// Control frames (ping, pong, close), which may come between fragments, are not part
/// of it. Reads headers only; payloads are skipped, whatever length a header claims.
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageWatch {
    state: State,
    /// Bytes of the unfinished message read so far (0: none is unfinished).
    held: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a frame header.
    Header(HeaderBytes),
    /// Skipping a payload: what is left of it, whether it counts (a data frame's) and
    /// whether the message ends with it (a final data frame's).
    Payload { left: u64, counts: bool, ends: bool },
}

impl Default for State {
    fn default() -> Self {
        State::Header(HeaderBytes::default())
    }
}

/// Where a [`MessageWatch`] stands after a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Bytes of the unfinished message so far (0: none is unfinished).
    pub(crate) held: u64,
    /// Whether a message was completed in the read (so `held`, if not 0, is a new
    /// message's).
    pub(crate) completed: bool,
}

impl MessageWatch {
    /// Follows `bytes`, the next the client sent.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Progress {
        let mut completed = false;
        while !bytes.is_empty() {
            match &mut self.state {
                State::Header(header) => {
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    if let Some(header) = header.push(byte) {
                        completed |= self.after_header(&header);
                    }
                }
                State::Payload { left, counts, ends } => {
                    let n = usize::try_from(*left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    // `n` ≤ `left`: the payload's rest, or all of `bytes`.
                    *left -= n as u64;
                    if *counts {
                        self.held += n as u64;
                    }
                    bytes = &bytes[n..];
                    if *left == 0 {
                        let ends = *ends;
                        self.state = State::default();
                        if ends {
                            self.held = 0;
                            completed = true;
                        }
                    }
                }
            }
        }
        Progress {
            held: self.held,
            completed,
        }
    }

    /// A whole `header` was read: what follows it. True when it ended a message (a
    /// final data frame with no payload).
    fn after_header(&mut self, header: &Header) -> bool {
        let data = header.is_data();
        if data {
            self.held += header.size as u64;
        }
        if header.len > 0 {
            self.state = State::Payload {
                left: header.len,
                counts: data,
                ends: data && header.fin,
            };
            return false;
        }
        self.state = State::default();
        if data && header.fin {
            self.held = 0;
            return true;
        }
        false
    }
}

/// The `inbound_watch` fuzz target's body (through [`crate::fuzz_inbound_watch`]): the
/// first bytes of `data` say how the rest is cut into reads ([`fuzz_reads`]),
/// the rest is what a client sent. Asserts, beyond "no panic":
/// - after each read, the watch holds what it holds after feeding every byte up to the
///   read's end one at a time (reads never change what it counts), and says a message
///   was completed exactly when one was completed within the read's bytes;
/// - it never holds more than the bytes read, and holds something exactly where
///   tungstenite's own frame header parser finds a message unfinished: from the end of
///   its first data frame's header to the last byte of its final data frame. Past a
///   header tungstenite refuses, nothing is compared but the above.
pub(crate) fn fuzz(data: &[u8]) {
    let (sent, reads) = fuzz_reads(data);
    // Byte by byte: what it holds after each byte, and after which bytes a message
    // was completed.
    let mut watch = MessageWatch::default();
    let mut held = Vec::with_capacity(sent.len());
    let mut completed = Vec::with_capacity(sent.len());
    for (at, byte) in sent.iter().enumerate() {
        let progress = watch.feed(std::slice::from_ref(byte));
        assert!(progress.held <= at as u64 + 1, "holds more than was read");
        held.push(progress.held);
        completed.push(progress.completed);
    }
    let mut watch = MessageWatch::default();
    for (start, end) in reads {
        let progress = watch.feed(&sent[start..end]);
        assert_eq!(progress.held, held[end - 1], "the read ending at {end}");
        assert_eq!(
            progress.completed,
            completed[start..end].iter().any(|c| *c),
            "the read ending at {end}"
        );
    }
    let (ends, refused_at) = reference_message_ends(sent);
    let known = refused_at.unwrap_or(sent.len());
    for (at, held) in held.iter().enumerate().take(known) {
        let after = at + 1;
        assert_eq!(
            *held > 0,
            ends.is_unfinished_after(after),
            "after {after} bytes"
        );
    }
}

/// Where tungstenite's frame header parser puts messages in a byte stream: for each
/// byte count, whether a message is unfinished after it.
struct MessageSpans {
    /// `(start, end)`: the end of a message's first header and its last byte + 1
    /// (`None`: not finished in the bytes).
    spans: Vec<(usize, Option<usize>)>,
}

impl MessageSpans {
    fn is_unfinished_after(&self, after: usize) -> bool {
        self.spans
            .iter()
            .any(|(start, end)| *start <= after && end.is_none_or(|end| after < end))
    }
}

/// Reads `sent` with tungstenite's `FrameHeader::parse`: the messages' spans, and
/// where it refused a header (a reserved opcode), if it did.
fn reference_message_ends(sent: &[u8]) -> (MessageSpans, Option<usize>) {
    use std::io::Cursor;
    use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode;

    let mut spans = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = 0;
    loop {
        let mut cursor = Cursor::new(&sent[at..]);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => break,
            Err(_) => {
                if let Some(start) = open {
                    spans.push((start, None));
                }
                return (MessageSpans { spans }, Some(at));
            }
        };
        let header_end = at + cursor.position() as usize;
        let data = matches!(header.opcode, OpCode::Data(_));
        if data && open.is_none() {
            open = Some(header_end);
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| header_end.checked_add(len));
        match end {
            Some(end) if end <= sent.len() => {
                if data
                    && header.is_final
                    && let Some(start) = open.take()
                {
                    spans.push((start, Some(end)));
                }
                at = end;
            }
            _ => break,
        }
    }
    if let Some(start) = open {
        spans.push((start, None));
    }
    (MessageSpans { spans }, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame: `first` (FIN, RSV, opcode) and `payload`.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let key = [1, 2, 3, 4];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    const TEXT: u8 = 0x01;
    const CONTINUATION: u8 = 0x00;
    const PONG: u8 = 0x0a;
    const FIN: u8 = 0x80;

    #[test]
    fn a_whole_message_in_one_read_holds_nothing() {
        let mut watch = MessageWatch::default();
        let progress = watch.feed(&frame(FIN | TEXT, &[b'4'; 300]));
        assert_eq!(
            progress,
            Progress {
                held: 0,
                completed: true
            }
        );
    }

    #[test]
    fn fragments_hold_their_bytes_until_the_final_one_pongs_between_not_counted() {
        let mut watch = MessageWatch::default();
        let first = frame(TEXT, &[b'x'; 1000]);
        assert_eq!(watch.feed(&first).held, first.len() as u64);
        let pong = frame(FIN | PONG, b"");
        assert_eq!(watch.feed(&pong).held, first.len() as u64, "a pong between");
        let second = frame(CONTINUATION, &[b'x'; 70_000]);
        // Half of it: a partial payload counts as it arrives.
        let half = second.len() / 2;
        assert_eq!(
            watch.feed(&second[..half]).held,
            (first.len() + half) as u64
        );
        assert_eq!(
            watch.feed(&second[half..]).held,
            (first.len() + second.len()) as u64
        );
        let last = frame(FIN | CONTINUATION, b"y");
        let progress = watch.feed(&last);
        assert_eq!(
            progress,
            Progress {
                held: 0,
                completed: true
            }
        );
        // The next message counts from nothing, even when it begins in the same read.
        let mut both = frame(FIN | TEXT, b"42[]");
        both.extend_from_slice(&frame(TEXT, b"partial"));
        let progress = watch.feed(&both);
        assert_eq!(progress.held, frame(TEXT, b"partial").len() as u64);
        assert!(progress.completed);
    }

    #[test]
    fn a_huge_claimed_length_is_skipped_not_believed() {
        let mut watch = MessageWatch::default();
        let mut header = vec![FIN | TEXT, 0x80 | 127];
        header.extend_from_slice(&u64::MAX.to_be_bytes());
        header.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(watch.feed(&header).held, header.len() as u64);
        assert_eq!(watch.feed(&[0; 100]).held, header.len() as u64 + 100);
    }

    fn budget(limit: usize) -> Arc<InboundBudget> {
        InboundBudget::new(limit, Duration::from_secs(10), Arc::default())
    }

    #[test]
    fn charges_share_the_budget_and_give_back_what_they_held() {
        let budget = budget(100);
        let mut a = Charge::new(budget.clone());
        let mut b = Charge::new(budget.clone());
        assert_eq!(a.set(60), Ok(()));
        assert_eq!(b.set(50), Err(Cutoff::InboundFull { limit: 100 }));
        assert_eq!(b.set(40), Ok(()));
        assert_eq!(budget.held.load(Ordering::Relaxed), 100);
        assert_eq!(a.set(10), Ok(()), "shrinking always fits");
        assert_eq!(b.set(90), Ok(()));
        drop(a);
        drop(b);
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_unfinished_past_the_timeout_is_cut_off() {
        let timeout = Duration::from_secs(10);
        let mut watched = *Watched::new((), budget(1 << 20)).state;
        let start = Instant::now();
        let first = frame(TEXT, b"part");
        let progress = watched.watch.feed(&first);
        assert_eq!(watched.account(progress, || start), Ok(()));
        let pong = watched.watch.feed(&frame(FIN | PONG, b""));
        let later = start + timeout;
        assert_eq!(
            watched.account(pong, || later),
            Ok(()),
            "within the timeout"
        );
        assert_eq!(
            watched.account(pong, || later + Duration::from_millis(1)),
            Err(Cutoff::TooSlow { timeout })
        );
        // A finished message and a new one: the new one's time counts from its start.
        let mut watched = *Watched::new((), budget(1 << 20)).state;
        let progress = watched.watch.feed(&first);
        assert_eq!(watched.account(progress, || start), Ok(()));
        let mut both = frame(FIN | CONTINUATION, b"end");
        both.extend_from_slice(&frame(TEXT, b"next"));
        let progress = watched.watch.feed(&both);
        assert_eq!(watched.account(progress, || later), Ok(()));
        let pong = watched.watch.feed(&frame(FIN | PONG, b""));
        assert_eq!(watched.account(pong, || later + timeout), Ok(()));
    }

    #[test]
    fn a_message_over_the_budget_is_cut_off_and_its_bytes_given_back() {
        let budget = budget(1000);
        let mut watched = *Watched::new((), budget.clone()).state;
        let now = Instant::now();
        let progress = watched.watch.feed(&frame(TEXT, &[0; 900]));
        assert_eq!(watched.account(progress, || now), Ok(()));
        let progress = watched.watch.feed(&frame(CONTINUATION, &[0; 200]));
        assert_eq!(
            watched.account(progress, || now),
            Err(Cutoff::InboundFull { limit: 1000 })
        );
        drop(watched);
        assert_eq!(budget.held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn fuzz_seeds_hold() {
        let mut stream = vec![0, 3, 7, 63];
        stream.extend(frame(TEXT, b"4abc"));
        stream.extend(frame(FIN | PONG, b""));
        stream.extend(frame(FIN | CONTINUATION, &[b'x'; 300]));
        stream.extend(frame(FIN | TEXT, b""));
        stream.extend(frame(FIN | 0x02, &[1; 70_000]));
        stream.extend(frame(TEXT, b"unfinished"));
        fuzz(&stream);
        fuzz(&[]);
        fuzz(&[1, 2, 3, 4, 0x8f, 0x80, 0, 0, 0, 0]);
    }
}
