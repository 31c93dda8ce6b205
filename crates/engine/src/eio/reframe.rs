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
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use super::ws_frame::{Header, HeaderBytes, fuzz_reads};

/// The longest payload of a frame handed to tungstenite (unless it is passed as it
/// came, see the module docs): what a WebSocket's read buffer may keep after a large
/// message. A multiple of 4, so the masking key lines up in every piece.
pub(crate) const PIECE: u64 = 4096;

/// Bytes read from the connection at once, on the stack of a read.
const READ_CHUNK: usize = 2048;

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
/// give out yet (a read's last bytes, when a piece's header took their room; held
/// only until the next read, then freed).
#[derive(Debug)]
pub(crate) struct Reframe {
    reframer: Reframer,
    left: Vec<u8>,
}

impl Reframe {
    /// For a connection whose frames may be `max_frame` bytes long.
    pub(crate) fn new(max_frame: usize) -> Self {
        Reframe {
            reframer: Reframer::new(max_frame),
            left: Vec::new(),
        }
    }

    /// Reads from `io` into `buf`, cut. Like any read, it is ready with no bytes only
    /// at the end of the connection (or with no room in `buf`).
    pub(crate) fn poll_read<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if !self.left.is_empty() {
                let (taken, written) = self.reframer.run(&self.left, buf.initialize_unfilled());
                buf.advance(written);
                self.left.drain(..taken);
                if self.left.is_empty() {
                    self.left = Vec::new();
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
            let mut chunk = [0; READ_CHUNK];
            let room = buf.remaining().min(READ_CHUNK);
            let mut read = ReadBuf::new(&mut chunk[..room]);
            ready!(std::pin::Pin::new(&mut *io).poll_read(cx, &mut read))?;
            let read = read.filled();
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
/// - tungstenite, as the server reads (`engine.max_payload` the frame and message
///   bound), makes the same messages of the cut bytes as of the bytes as sent, in
///   the same order, up to where either stops (at an error or the end);
/// - cutting does not depend on how the bytes arrive: reads of any size give the
///   bytes that one read of everything gives;
/// - every masked data frame in the cut bytes is at most a piece long, unless it is
///   longer than the frame bound (passed as it came, for tungstenite to refuse).
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
    let whole = cut_in_one(sent, max_frame, piece);
    // In reads, into outputs of the chosen sizes, with leftovers as `Reframe` keeps.
    let mut reframer = Reframer::with_piece(max_frame, piece);
    let (mut cut, mut left) = (Vec::new(), Vec::<u8>::new());
    let mut room = rooms.iter().copied().cycle();
    for (start, end) in reads {
        left.extend_from_slice(&sent[start..end]);
        loop {
            let mut out = vec![0; room.next().unwrap_or(64)];
            let (taken, written) = reframer.run(&left, &mut out);
            cut.extend_from_slice(&out[..written]);
            left.drain(..taken);
            if written == 0 {
                break;
            }
        }
        assert!(
            left.is_empty(),
            "a read's bytes were left over with room to spare"
        );
    }
    assert_eq!(cut, whole, "cut differently in reads");
    // What tungstenite makes of each.
    assert_eq!(messages(&whole, max_frame), messages(sent, max_frame));
    // The frames the cut bytes hold.
    let mut header = HeaderBytes::default();
    let mut skip = 0u64;
    for &byte in &whole {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if let Some(h) = header.push(byte) {
            if h.masked && matches!(h.opcode, 0..=2) && h.len <= max_frame as u64 {
                assert!(h.len <= piece, "a frame of {} bytes was left whole", h.len);
            }
            skip = h.len;
        }
    }
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

    /// An in-memory connection that gives out what it holds in reads of `step`.
    struct Wire {
        bytes: Vec<u8>,
        at: usize,
        step: usize,
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
            buf.put_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
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
        for (step, room) in [(1, 512), (2048, 512), (2048, 7), (300, 4096)] {
            let mut wire = Wire {
                bytes: sent.clone(),
                at: 0,
                step,
            };
            let mut reframe = Reframe::new(1 << 20);
            let waker = Arc::new(Noop).into();
            let mut cx = Context::from_waker(&waker);
            let mut got = Vec::new();
            loop {
                let mut space = vec![0; room];
                let mut buf = ReadBuf::new(&mut space);
                match reframe.poll_read(&mut wire, &mut cx, &mut buf) {
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
