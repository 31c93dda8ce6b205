//! The header of a WebSocket frame a client sent (RFC 6455 §5.2), read one byte at a
//! time by the watches that follow a client's frames without buffering them: the
//! relay's upgrade watch (`relay::watch`) and the inbound budget's message watch
//! (`inbound`). Payloads are never read here; a header's claimed length is only a
//! number of bytes to skip.

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
}
