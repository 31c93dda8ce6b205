//! A client's long WebSocket frames, cut into short ones before tungstenite reads
//! them, so that no connection keeps a read buffer the size of the largest message it
//! ever received.
//!
//! tungstenite reads a frame into one buffer, reserving the frame's whole length up
//! front, and keeps that buffer for the connection's life: a client that sent one
//! message of `engine.max_payload` (1 MB) and then only answered pings held 1 MB of
//! the node's heap where an idle WebSocket holds about 4.5 KB. A message sent in
//! fragments is gathered elsewhere (a buffer of the message's own, freed once it is
//! whole), so each frame a client sends with a payload longer than [`PIECE`] bytes is
//! handed to tungstenite as fragments of at most [`PIECE`]: the first keeps its
//! opcode and reserved bits, the rest are continuations, the last keeps its `FIN`.
//! What the WebSocket then keeps is one piece's room.
//!
//! The masking key stays: a piece is a multiple of 4 bytes, so every piece's payload
//! starts at a multiple of 4 into the frame's and the key lines up as it did; no byte
//! of a payload is touched. Frames tungstenite will refuse are passed as they came,
//! so it refuses them as it did: unmasked ones, control frames, reserved opcodes and
//! frames longer than `engine.max_payload` (refused from their header alone, before
//! any of their bytes are buffered). The messages tungstenite makes of the cut bytes
//! are the messages it made of the bytes as sent, which the `reframe` fuzz target
//! checks against tungstenite itself ([`fuzz`]).
//!
//! [`Reframer`] is the pure part (bytes in, bytes out); [`Reframe`] runs it on reads.

use std::io;
use std::mem::MaybeUninit;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::ws_frame::{Header, HeaderBytes, fuzz_reads};

/// The longest payload of a frame handed to tungstenite (unless it is passed as it
/// came, see the module docs): what a WebSocket's read buffer may keep after a large
/// message. A multiple of 4, so the masking key lines up in every piece.
pub(crate) const PIECE: u64 = 4096;

/// Most bytes read from the connection at once (on the stack of a read; what
/// tungstenite has no room for yet waits in [`Reframe`]'s `left`).
const READ_CHUNK: usize = 8 * 1024;

/// Cuts a client's long data frames into pieces: bytes of the connection in, the
/// same messages out in frames of at most a piece's payload.
#[derive(Debug, Clone)]
pub(crate) struct Reframer {
    /// Frames longer than this are passed as they came (tungstenite refuses them).
    max_frame: u64,
    /// The longest payload of a piece; a multiple of 4.
    piece: u64,
    state: State,
    /// A header to give out before anything else: its bytes, how many there are and
    /// how many were given.
    out: [u8; 14],
    out_len: u8,
    out_at: u8,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a frame header (not given out until whole).
    Header(HeaderBytes),
    /// Passing a payload as it came: the bytes left.
    Pass { left: u64 },
    /// Passing a cut frame's payload: the bytes left of this piece, of the frame after
    /// it, and its header (for the next pieces' mask and the last one's `FIN`).
    Piece {
        left: u64,
        after: u64,
        header: Header,
    },
}

impl Reframer {
    /// A reframer for a connection whose frames may be `max_frame` bytes long.
    pub(crate) fn new(max_frame: usize) -> Self {
        Reframer::with_piece(max_frame, PIECE)
    }

    /// With pieces of `piece` bytes (rounded down to a multiple of 4, at least 4): the
    /// fuzz target's short pieces.
    fn with_piece(max_frame: usize, piece: u64) -> Self {
        Reframer {
            max_frame: u64::try_from(max_frame).unwrap_or(u64::MAX),
            piece: (piece & !3).max(4),
            state: State::Header(HeaderBytes::default()),
            out: [0; 14],
            out_len: 0,
            out_at: 0,
        }
    }

    /// Moves the next bytes of the connection (`input`) to `output`, cutting long
    /// frames; returns how many bytes of `input` it took and how many it wrote. It
    /// stops when `input` is used up or `output` is full; a header's bytes are taken
    /// without writing anything until the header is whole.
    pub(crate) fn run(&mut self, input: &[u8], output: &mut [u8]) -> (usize, usize) {
        let (mut taken, mut written) = (0, 0);
        loop {
            if self.out_at < self.out_len {
                let (from, to) = (usize::from(self.out_at), usize::from(self.out_len));
                let n = (to - from).min(output.len() - written);
                output[written..written + n].copy_from_slice(&self.out[from..from + n]);
                written += n;
                self.out_at += n as u8;
                if self.out_at < self.out_len {
                    break;
                }
            }
            match &mut self.state {
                State::Header(bytes) => {
                    let Some(&byte) = input.get(taken) else {
                        break;
                    };
                    taken += 1;
                    if let Some(header) = bytes.push(byte) {
                        self.after_header(header);
                    }
                }
                State::Pass { left } | State::Piece { left, .. } => {
                    let room = (input.len() - taken).min(output.len() - written);
                    let n = usize::try_from(*left).map_or(room, |l| l.min(room));
                    output[written..written + n].copy_from_slice(&input[taken..taken + n]);
                    (taken, written) = (taken + n, written + n);
                    *left -= n as u64;
                    if *left > 0 {
                        break;
                    }
                    self.after_payload();
                }
            }
        }
        (taken, written)
    }

    /// Whether a header's bytes are taken and not yet given out: what a connection
    /// that ends now leaves unsaid.
    #[cfg(test)]
    fn holds_header(&self) -> bool {
        matches!(self.state, State::Header(bytes) if bytes != HeaderBytes::default())
            || self.out_at < self.out_len
    }

    /// A whole header was read: gives it out as it came, or the first piece's.
    fn after_header(&mut self, header: Header) {
        let cut = header.masked
            && matches!(header.opcode, 0..=2)
            && header.len > self.piece
            && header.len <= self.max_frame;
        if cut {
            self.give(header.piece(false, header.rsv, header.opcode, self.piece));
            self.state = State::Piece {
                left: self.piece,
                after: header.len - self.piece,
                header,
            };
        } else {
            self.give(header);
            self.state = match header.len {
                0 => State::Header(HeaderBytes::default()),
                left => State::Pass { left },
            };
        }
    }

    /// A payload (or a piece of one) was passed whole: what comes next.
    fn after_payload(&mut self) {
        self.state = match self.state {
            State::Piece { after, header, .. } if after > 0 => {
                let len = after.min(self.piece);
                let after = after - len;
                self.give(header.piece(header.fin && after == 0, 0, 0, len));
                State::Piece {
                    left: len,
                    after,
                    header,
                }
            }
            _ => State::Header(HeaderBytes::default()),
        }
    }

    /// Queues `header`'s bytes to be given out next.
    fn give(&mut self, header: Header) {
        let (bytes, len) = header.encode();
        self.out = bytes;
        self.out_len = len as u8;
        self.out_at = 0;
    }
}

/// A connection's reads through a [`Reframer`], and the bytes it read but could not
/// give out yet.
///
/// tungstenite asks for at most its read buffer's size at a time (512 bytes, see
/// `websocket::READ_BUFFER_SIZE`), which made every 512 bytes of a long message one
/// read from the socket: 2,000 system calls for a message of 1 MB. This reads up to
/// [`READ_CHUNK`] from the connection at once and gives tungstenite the rest from
/// `left` on its next reads (a header that took room also leaves bytes there). `left`
/// is allocated only while it holds bytes and freed once they are given out, so an
/// idle connection holds none.
#[derive(Debug)]
pub(crate) struct Reframe {
    reframer: Reframer,
    left: Vec<u8>,
    /// Bytes of `left` already given out.
    left_at: usize,
}

impl Reframe {
    /// For a connection whose frames may be `max_frame` bytes long.
    pub(crate) fn new(max_frame: usize) -> Self {
        Reframe {
            reframer: Reframer::new(max_frame),
            left: Vec::new(),
            left_at: 0,
        }
    }

    /// Reads from `io` into `buf`, cut; `wire` sees the bytes of each read from `io`
    /// as they came (what the client sent, and what this holds until given out). Like
    /// any read, it is ready with no bytes only at the end of the connection (or with
    /// no room in `buf`).
    pub(crate) fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
        mut wire: impl FnMut(&[u8]),
    ) -> Poll<io::Result<()>> {
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if self.left_at < self.left.len() {
                let rest = &self.left[self.left_at..];
                let (taken, written) = self.reframer.run(rest, buf.initialize_unfilled());
                buf.advance(written);
                self.left_at += taken;
                if self.left_at == self.left.len() {
                    (self.left, self.left_at) = (Vec::new(), 0);
                }
                if written > 0 {
                    return Poll::Ready(Ok(()));
                }
                // All of it went into a header: read on.
            } else {
                // A header made after the last read may wait to be given out.
                let (_, written) = self.reframer.run(&[], buf.initialize_unfilled());
                buf.advance(written);
                if written > 0 {
                    return Poll::Ready(Ok(()));
                }
            }
            let mut chunk = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut read = ReadBuf::uninit(&mut chunk);
            ready!(std::pin::Pin::new(&mut *io).poll_read(cx, &mut read))?;
            let read = read.filled();
            wire(read);
            if read.is_empty() {
                // The end: a header cut short stays unsaid, as tungstenite would not
                // have used it either.
                return Poll::Ready(Ok(()));
            }
            let (taken, written) = self.reframer.run(read, buf.initialize_unfilled());
            buf.advance(written);
            self.left.extend_from_slice(&read[taken..]);
            if written > 0 {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

/// The `reframe` fuzz target's body (through [`crate::fuzz_reframe`]): the first bytes
/// of `data` choose the piece length and how the rest is cut into reads
/// ([`fuzz_reads`]) and into the room each read offers; the rest is what a client
/// sent. Asserts, beyond "no panic":
/// - the cut bytes are what the rule says, written out here without the reframer
///   ([`model`]): every frame as it came, byte for byte, but a masked text, binary or
///   continuation frame longer than a piece and within the frame bound, which becomes
///   pieces; a header cut short at the end is held back;
/// - [`Reframe`], read as tungstenite reads it (from a connection giving the chosen
///   reads, with `Pending` between them, into the chosen rooms), gives those bytes;
/// - tungstenite, as the server reads (`engine.max_payload` the frame and message
///   bound), makes the same messages of the cut bytes as of the bytes as sent, in
///   the same order, up to where either stops (at an error or the end).
pub(crate) fn fuzz(data: &[u8]) {
    let Some((&piece, data)) = data.split_first() else {
        return;
    };
    let piece = u64::from(piece % 32 + 1) * 4;
    let (sent, reads) = fuzz_reads(data);
    let rooms: Vec<usize> = data
        .iter()
        .take(4)
        .map(|b| usize::from(b % 23) + 1)
        .collect();
    let max_frame = 1 << 10;
    let expected = model(sent, max_frame as u64, piece);
    assert_eq!(
        cut_in_one(sent, max_frame, piece),
        expected,
        "cut in one run"
    );
    assert_eq!(
        read_through(sent, &reads, &rooms, max_frame, piece),
        expected,
        "read in reads"
    );
    assert_eq!(messages(&expected, max_frame), messages(sent, max_frame));
}

/// What cutting `sent` must give, from the rule alone (see [`fuzz`]).
fn model(sent: &[u8], max_frame: u64, piece: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < sent.len() {
        let bytes = &sent[at..];
        let Some(&[first, second]) = bytes.get(..2) else {
            break;
        };
        let (len_size, masked) = (
            match second & 0x7f {
                126 => 2,
                127 => 8,
                _ => 0,
            },
            second & 0x80 != 0,
        );
        let size = 2 + len_size + if masked { 4 } else { 0 };
        if bytes.len() < size {
            break; // held back until whole
        }
        let len = match len_size {
            2 => u64::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            8 => u64::from_be_bytes(bytes[2..10].try_into().unwrap_or_default()),
            _ => u64::from(second & 0x7f),
        };
        let mask = &bytes[size - if masked { 4 } else { 0 }..size];
        let payload = &bytes[size..];
        let here = usize::try_from(len).map_or(payload.len(), |l| l.min(payload.len()));
        let opcode = first & 0x0f;
        if masked && opcode <= 2 && len > piece && len <= max_frame {
            let mut done = 0u64;
            while done < len {
                let this = piece.min(len - done);
                let last = done + this == len;
                let (rsv, op) = match done {
                    0 => (first & 0x70, opcode),
                    _ => (0, 0),
                };
                out.push((u8::from(last && first & 0x80 != 0) << 7) | rsv | op);
                match this {
                    0..=125 => out.push(0x80 | this as u8),
                    _ => {
                        out.push(0x80 | 126);
                        out.extend_from_slice(&(this as u16).to_be_bytes());
                    }
                }
                out.extend_from_slice(mask);
                let from = done as usize;
                let to = (from + this as usize).min(here);
                out.extend_from_slice(&payload[from.min(here)..to]);
                if to < from + this as usize {
                    break; // the input ends inside this piece
                }
                done += this;
            }
        } else {
            out.extend_from_slice(&bytes[..size + here]);
        }
        if (here as u64) < len {
            break;
        }
        at += size + here;
    }
    out
}

/// `sent` read through a [`Reframe`] with pieces of `piece`: from a connection that
/// gives `reads` one at a time with `Pending` before each, into buffers of the
/// `rooms` sizes in turn, until the end.
fn read_through(
    sent: &[u8],
    reads: &[(usize, usize)],
    rooms: &[usize],
    max_frame: usize,
    piece: u64,
) -> Vec<u8> {
    /// The connection: each read comes after a `Pending`.
    struct Wire<'a> {
        sent: &'a [u8],
        reads: std::slice::Iter<'a, (usize, usize)>,
        ready: bool,
    }
    impl AsyncRead for Wire<'_> {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !std::mem::replace(&mut self.ready, false) {
                self.ready = true;
                return Poll::Pending;
            }
            if let Some(&(start, end)) = self.reads.next() {
                // A read offers at least a chunk, more than any fuzz read.
                buf.put_slice(&self.sent[start..end]);
            }
            Poll::Ready(Ok(()))
        }
    }
    let mut wire = Wire {
        sent,
        reads: reads.iter(),
        ready: false,
    };
    let mut reframe = Reframe {
        reframer: Reframer::with_piece(max_frame, piece),
        left: Vec::new(),
        left_at: 0,
    };
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let (mut out, mut room) = (Vec::new(), rooms.iter().copied().cycle());
    loop {
        let mut space = vec![0; room.next().unwrap_or(64)];
        let mut buf = ReadBuf::new(&mut space);
        let mut from_wire = 0;
        match reframe.poll_read(&mut wire, &mut cx, &mut buf, |b| from_wire += b.len()) {
            Poll::Pending => continue,
            Poll::Ready(result) => assert!(result.is_ok()),
        }
        if buf.filled().is_empty() {
            assert_eq!(from_wire, 0, "ended with bytes read");
            break;
        }
        out.extend_from_slice(buf.filled());
    }
    out
}

/// `sent` cut by one run over all of it, with room for everything.
fn cut_in_one(sent: &[u8], max_frame: usize, piece: u64) -> Vec<u8> {
    let mut reframer = Reframer::with_piece(max_frame, piece);
    // Every piece adds at most one header (14 bytes) for each `piece` (≥ 4) bytes.
    let mut out = vec![0; sent.len() * 5 + 14];
    let (taken, written) = reframer.run(sent, &mut out);
    assert_eq!(taken, sent.len());
    out.truncate(written);
    out
}

/// The messages tungstenite, as the server, reads from `bytes` before it stops.
fn messages(bytes: &[u8], max_frame: usize) -> Vec<tokio_tungstenite::tungstenite::Message> {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};

    /// The client's bytes to read; what tungstenite writes back (pongs, the close
    /// reply) goes nowhere.
    struct Wire<'a>(io::Cursor<&'a [u8]>);
    impl io::Read for Wire<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }
    impl io::Write for Wire<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let config = super::websocket::config(max_frame, max_frame);
    let mut ws =
        WebSocket::from_raw_socket(Wire(io::Cursor::new(bytes)), Role::Server, Some(config));
    let mut out = Vec::new();
    while let Ok(message) = ws.read() {
        out.push(message);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::Wake;

    use tokio_tungstenite::tungstenite::Message;

    /// A client frame: `first` (FIN, reserved bits, opcode), masked with `mask`.
    fn frame(first: u8, mask: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    /// The payload lengths and `FIN`/opcode bytes of the frames in `bytes`.
    fn frames(bytes: &[u8]) -> Vec<(u8, u64)> {
        let mut header = HeaderBytes::default();
        let (mut out, mut skip) = (Vec::new(), 0u64);
        for &byte in bytes {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if let Some(h) = header.push(byte) {
                out.push(((u8::from(h.fin) << 7) | h.rsv | h.opcode, h.len));
                skip = h.len;
            }
        }
        out
    }

    #[test]
    fn a_long_text_frame_becomes_pieces_and_the_same_message() {
        let text = "é".repeat(5000); // 10,000 bytes, pieces cut inside characters
        let sent = frame(0x81, [1, 2, 3, 4], text.as_bytes());
        let cut = cut_in_one(&sent, 1 << 20, PIECE);
        assert_eq!(
            frames(&cut),
            vec![(0x01, 4096), (0x00, 4096), (0x80, 10_000 - 8192)]
        );
        assert_eq!(messages(&cut, 1 << 20), vec![Message::text(text)]);
    }

    #[test]
    fn frames_tungstenite_refuses_or_needs_whole_pass_as_they_came() {
        let long = vec![7; 5000];
        let mut sent = frame(0x82, [9, 9, 9, 9], &[1; 4096]); // exactly a piece
        sent.extend(frame(0x89, [1, 1, 1, 1], &long)); // a control frame
        sent.extend(frame(0x83, [1, 1, 1, 1], &long)); // a reserved opcode
        let mut unmasked = vec![0x82, 126];
        unmasked.extend_from_slice(&5000u16.to_be_bytes());
        unmasked.extend_from_slice(&long);
        sent.extend(&unmasked);
        assert_eq!(cut_in_one(&sent, 1 << 20, PIECE), sent);
        // Longer than the frame bound: refused from its header, so not cut.
        let over = frame(0x82, [1, 2, 3, 4], &long);
        assert_eq!(cut_in_one(&over, 4999, PIECE), over);
    }

    #[test]
    fn fragments_with_pings_between_keep_their_order_and_last_fin() {
        let mut sent = frame(0x02, [1, 2, 3, 4], &[1; 5000]);
        sent.extend(frame(0x89, [5, 5, 5, 5], b"ping"));
        sent.extend(frame(0x80, [6, 7, 8, 9], &[2; 9000]));
        let cut = cut_in_one(&sent, 1 << 20, PIECE);
        assert_eq!(
            frames(&cut),
            vec![
                (0x02, 4096),
                (0x00, 904),
                (0x89, 4),
                (0x00, 4096),
                (0x00, 4096),
                (0x80, 808)
            ]
        );
        let mut whole = vec![1; 5000];
        whole.extend([2; 9000]);
        assert_eq!(
            messages(&cut, 1 << 20),
            vec![Message::Ping("ping".into()), Message::binary(whole)]
        );
    }

    #[test]
    fn a_header_is_given_out_only_once_whole() {
        let sent = frame(0x82, [1, 2, 3, 4], &[0; 70_000]);
        let mut reframer = Reframer::new(1 << 20);
        let mut out = [0; 64];
        // 13 of the 14 header bytes: nothing out yet.
        assert_eq!(reframer.run(&sent[..13], &mut out), (13, 0));
        assert!(reframer.holds_header());
        // The last one: the first piece's header (8 bytes) comes out, a byte at a time
        // if that is the room there is.
        assert_eq!(reframer.run(&sent[13..14], &mut out[..1]), (1, 1));
        assert_eq!(reframer.run(&[], &mut out[1..8]), (0, 7));
        assert_eq!(frames(&out[..8]), vec![(0x02, 4096)]);
        assert!(!reframer.holds_header());
    }

    /// An in-memory connection that gives out what it holds in reads of `step`, and
    /// counts the reads.
    struct Wire {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
        reads: usize,
    }

    impl AsyncRead for Wire {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = (self.bytes.len() - self.at)
                .min(self.step)
                .min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.bytes[at..at + n]);
            self.at += n;
            self.reads += 1;
            Poll::Ready(Ok(()))
        }
    }

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    #[test]
    fn reads_give_every_byte_cut_and_keep_nothing_once_read() {
        let mut sent = frame(0x81, [1, 2, 3, 4], &[b'a'; 9000]);
        sent.extend(frame(0x82, [4, 3, 2, 1], &[7; 100]));
        // The room tungstenite offers is 512 bytes at most; reads of the connection
        // are not held to it.
        for (step, room) in [
            (1, 512),
            (2048, 512),
            (2048, 7),
            (300, 4096),
            (1 << 20, 512),
        ] {
            let mut wire = Wire {
                bytes: sent.clone(),
                at: 0,
                step,
                reads: 0,
            };
            let mut reframe = Reframe::new(1 << 20);
            let waker = Arc::new(Noop).into();
            let mut cx = Context::from_waker(&waker);
            let mut got = Vec::new();
            loop {
                let mut space = vec![0; room];
                let mut buf = ReadBuf::new(&mut space);
                match reframe.poll_read(&mut wire, &mut cx, &mut buf, |_| {}) {
                    Poll::Ready(Ok(())) if buf.filled().is_empty() => break,
                    Poll::Ready(Ok(())) => got.extend_from_slice(buf.filled()),
                    other => panic!("{other:?}"),
                }
            }
            assert_eq!(
                got,
                cut_in_one(&sent, 1 << 20, PIECE),
                "reads of {step}, room {room}"
            );
            assert_eq!(reframe.left.capacity(), 0, "kept its leftover buffer");
            assert!(
                wire.reads <= sent.len().div_ceil(step.min(READ_CHUNK)) + 1,
                "{} reads of the connection for {} bytes in reads of {step}",
                wire.reads,
                sent.len()
            );
        }
    }

    #[test]
    fn fuzz_seeds_hold() {
        let mut seed = vec![3, 5, 17, 1, 63];
        seed.extend(frame(
            0x81,
            [1, 2, 3, 4],
            "héllo wörld, a text frame".as_bytes(),
        ));
        seed.extend(frame(0x02, [0, 0, 0, 0], &[1; 300]));
        seed.extend(frame(0x8a, [1, 1, 1, 1], b"pong"));
        seed.extend(frame(0x80, [1, 0, 0, 1], &[2; 50]));
        seed.extend(frame(0xc2, [1, 2, 3, 4], &[3; 200]));
        fuzz(&seed);
        fuzz(&[]);
        fuzz(&[0, 0x81, 0xff, 0xff]);
    }
}
