//! The header of a WebSocket frame a client sent (RFC 6455 §5.2), read one byte at a
//! time by the watches that follow a client's frames without buffering them: the
//! relay's upgrade watch (`relay::watch`), the inbound budget's message watch
//! (`inbound`) and the reframer (`reframe`), which also writes headers: a frame's as
//! it came ([`Header::encode`]) or its pieces' ([`Header::piece`]). Payloads are never
//! read here; a header's claimed length is only a number of bytes to skip.

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// A frame header being read: its bytes so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HeaderBytes {
    bytes: [u8; MAX_HEADER],
    have: u8,
}

/// A whole frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// The final frame of its message.
    pub(crate) fin: bool,
    /// The three reserved bits, in place (`0x70`).
    pub(crate) rsv: u8,
    /// The opcode: `0x0` continuation, `0x1` text, `0x2` binary, `0x8`… control.
    pub(crate) opcode: u8,
    /// The payload's claimed length.
    pub(crate) len: u64,
    /// Whether the frame is masked (every frame a client sends must be).
    pub(crate) masked: bool,
    /// The masking key (zeros when the frame is not masked).
    pub(crate) mask: [u8; 4],
    /// The header's own length in bytes.
    pub(crate) size: usize,
}

impl Header {
    /// A data frame (text, binary or a continuation), not a control frame.
    pub(crate) fn is_data(&self) -> bool {
        self.opcode & 0x08 == 0
    }

    /// The header's bytes, as they were read: the length in the same one of its three
    /// forms (`size` tells which), so even a length written longer than it had to be
    /// comes out as it came in. Returns the bytes and how many of them are the header.
    pub(crate) fn encode(&self) -> ([u8; MAX_HEADER], usize) {
        let mut out = [0; MAX_HEADER];
        out[0] = (u8::from(self.fin) << 7) | self.rsv | self.opcode;
        let mask_bit = u8::from(self.masked) << 7;
        let extended = self.size - 2 - if self.masked { 4 } else { 0 };
        // A length that does not fit its form is never made: `size` came from the
        // same bytes as `len`, and `piece` keeps to its form.
        let at = match extended {
            2 => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
                4
            }
            8 => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&self.len.to_be_bytes());
                10
            }
            _ => {
                out[1] = mask_bit | self.len as u8;
                2
            }
        };
        if self.masked {
            out[at..at + 4].copy_from_slice(&self.mask);
        }
        (out, self.size)
    }

    /// A header for `len` bytes of this frame's payload, in the shortest form, with
    /// this frame's mask: the fields given, the rest (reserved bits aside) as here.
    pub(crate) fn piece(&self, fin: bool, rsv: u8, opcode: u8, len: u64) -> Header {
        let extended = match len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        Header {
            fin,
            rsv,
            opcode,
            len,
            masked: self.masked,
            mask: self.mask,
            size: 2 + extended + if self.masked { 4 } else { 0 },
        }
    }
}

impl HeaderBytes {
    /// Adds the next byte; the header, once this byte completed it (and then starts
    /// over for the next one).
    pub(crate) fn push(&mut self, byte: u8) -> Option<Header> {
        self.bytes[usize::from(self.have)] = byte;
        self.have += 1;
        let have = usize::from(self.have);
        let second = *self.bytes[..have].get(1)?;
        let extended = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let masked = second & 0x80 != 0;
        let size = 2 + extended + if masked { 4 } else { 0 };
        if have < size {
            return None;
        }
        let b = &self.bytes;
        let len = match extended {
            2 => u64::from(u16::from_be_bytes([b[2], b[3]])),
            8 => {
                let mut be = [0; 8];
                be.copy_from_slice(&b[2..10]);
                u64::from_be_bytes(be)
            }
            _ => u64::from(second & 0x7f),
        };
        let mut mask = [0; 4];
        if masked {
            mask.copy_from_slice(&b[2 + extended..size]);
        }
        let header = Header {
            fin: b[0] & 0x80 != 0,
            rsv: b[0] & 0x70,
            opcode: b[0] & 0x0f,
            len,
            masked,
            mask,
            size,
        };
        *self = HeaderBytes::default();
        Some(header)
    }
}

/// How many leading bytes of a watch's fuzz input choose how the rest is cut into reads.
const FUZZ_CHUNKING: usize = 4;

/// Splits a watch's fuzz input into what a client sent and the reads it arrives in:
/// the first [`FUZZ_CHUNKING`] bytes give the sizes the reads cycle through (1 to 64
/// bytes; one read of everything when there are none). Returns the bytes sent and the
/// `(start, end)` of each read.
pub(crate) fn fuzz_reads(data: &[u8]) -> (&[u8], Vec<(usize, usize)>) {
    let (chunking, sent) = data.split_at(data.len().min(FUZZ_CHUNKING));
    let mut sizes = chunking.iter().map(|b| usize::from(b % 64) + 1).cycle();
    let mut reads = Vec::new();
    let mut end = 0;
    while end < sent.len() {
        let start = end;
        end = (start + sizes.next().unwrap_or(sent.len())).min(sent.len());
        reads.push((start, end));
    }
    (sent, reads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Vec<Option<Header>> {
        let mut header = HeaderBytes::default();
        bytes.iter().map(|b| header.push(*b)).collect()
    }

    #[test]
    fn headers_of_every_length_form_are_read_whole_and_only_then() {
        let short = read(&[0x81, 0x85, 1, 2, 3, 4]);
        assert!(short[..5].iter().all(Option::is_none));
        assert_eq!(
            short[5],
            Some(Header {
                fin: true,
                rsv: 0,
                opcode: 1,
                len: 5,
                masked: true,
                mask: [1, 2, 3, 4],
                size: 6
            })
        );
        let medium = read(&[0x02, 0x7e, 0x01, 0x00]);
        assert_eq!(
            medium[3].map(|h| (h.fin, h.opcode, h.len, h.size)),
            Some((false, 2, 256, 4))
        );
        let mut long = vec![0xc9, 0xff];
        long.extend_from_slice(&u64::MAX.to_be_bytes());
        long.extend_from_slice(&[9, 9, 9, 9]);
        let long = read(&long);
        let header = long[13].unwrap();
        assert_eq!((header.rsv, header.opcode, header.len), (0x40, 9, u64::MAX));
        assert!(!header.is_data());
        // The next header starts afresh.
        let mut bytes = HeaderBytes::default();
        assert!(bytes.push(0x81).is_none());
        assert!(bytes.push(0x00).is_some());
        assert!(bytes.push(0x80).is_none());
        assert_eq!(bytes.push(0x01).map(|h| h.len), Some(1));
    }

    #[test]
    fn a_header_encodes_to_the_bytes_it_was_read_from_in_every_form() {
        let mut long = vec![0xc9, 0xff];
        long.extend_from_slice(&u64::MAX.to_be_bytes());
        long.extend_from_slice(&[9, 9, 9, 9]);
        for bytes in [
            vec![0x81, 0x85, 1, 2, 3, 4],
            vec![0x02, 0x7e, 0x01, 0x00],
            // A length written longer than it had to be stays so.
            vec![0x82, 0xfe, 0x00, 0x05, 0, 0, 0, 0],
            vec![0x01, 0x7f, 0, 0, 0, 0, 0, 0, 0, 7],
            long,
        ] {
            let header = read(&bytes).last().copied().flatten().unwrap();
            let (out, size) = header.encode();
            assert_eq!(&out[..size], &bytes[..]);
        }
    }

    #[test]
    fn a_piece_takes_the_shortest_form_and_keeps_the_mask() {
        let header = read(&[0x81, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 5, 6, 7, 8])
            .last()
            .copied()
            .flatten()
            .unwrap();
        for (len, size) in [(0, 6), (125, 6), (126, 8), (0xffff, 8), (0x10000, 14)] {
            let piece = header.piece(false, 0, 0, len);
            let (out, n) = piece.encode();
            assert_eq!(n, size);
            let again = read(&out[..n]).last().copied().flatten().unwrap();
            assert_eq!(again, piece);
            assert_eq!(
                (again.mask, again.len, again.fin),
                ([5, 6, 7, 8], len, false)
            );
        }
    }
}
