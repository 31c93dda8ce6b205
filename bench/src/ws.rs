//! A minimal WebSocket (RFC 6455) codec shared by the load generator and the bare
//! broadcaster: handshakes, frame headers, masking. No IO beyond the handshake helpers.
//!
//! Both sides only ever see small, unfragmented frames in this workload, so fragmented
//! messages are refused rather than reassembled: that keeps the per-message work to a
//! header parse and a slice.

use anyhow::{Context, bail};
use base64::Engine as _;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Text frame opcode.
pub(crate) const OP_TEXT: u8 = 0x1;
/// Binary frame opcode (tests only: the workload is text).
#[cfg(test)]
pub(crate) const OP_BINARY: u8 = 0x2;
/// Close frame opcode.
pub(crate) const OP_CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub(crate) const OP_PING: u8 = 0x9;
/// Pong frame opcode.
pub(crate) const OP_PONG: u8 = 0xA;

/// Largest HTTP upgrade head either side accepts; real ones are a few hundred bytes.
const MAX_HTTP_HEAD: usize = 16 * 1024;
/// Largest frame payload accepted; the workload's frames are ~150 bytes.
const MAX_PAYLOAD: usize = 1 << 20;
/// Initial read buffer per connection: small, because idle connections must stay cheap.
pub(crate) const READ_BUFFER: usize = 2 * 1024;

/// One complete frame found in a read buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameHead {
    /// Frame opcode (`OP_*`).
    pub(crate) opcode: u8,
    /// Masking key, present on client-to-server frames.
    mask: Option<[u8; 4]>,
    /// Bytes of header before the payload.
    header_len: usize,
    /// Payload length in bytes.
    payload_len: usize,
}

impl FrameHead {
    /// Parses the frame at the start of `buf`; `None` until the whole frame is there.
    pub(crate) fn parse(buf: &[u8]) -> anyhow::Result<Option<FrameHead>> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0F);
        if !fin || opcode == 0 {
            bail!("fragmented WebSocket message (not used by this workload)");
        }
        let masked = buf[1] & 0x80 != 0;
        let (mut header_len, payload_len) = match buf[1] & 0x7F {
            126 if buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))),
            127 if buf.len() >= 10 => {
                let raw = u64::from_be_bytes(buf[2..10].try_into()?);
                (10, usize::try_from(raw)?)
            }
            126 | 127 => return Ok(None),
            len => (2, usize::from(len)),
        };
        if payload_len > MAX_PAYLOAD {
            bail!("WebSocket frame of {payload_len} bytes is over the {MAX_PAYLOAD} limit");
        }
        let mask = if masked {
            let Some(key) = buf.get(header_len..header_len + 4) else {
                return Ok(None);
            };
            header_len += 4;
            Some(key.try_into()?)
        } else {
            None
        };
        let head = FrameHead {
            opcode,
            mask,
            header_len,
            payload_len,
        };
        Ok((buf.len() >= head.total_len()).then_some(head))
    }

    /// Header plus payload length.
    pub(crate) fn total_len(&self) -> usize {
        self.header_len + self.payload_len
    }

    /// The (unmasked) payload of this frame inside `frame`, which starts at the header.
    pub(crate) fn payload<'a>(&self, frame: &'a mut [u8]) -> &'a [u8] {
        let payload = &mut frame[self.header_len..self.total_len()];
        if let Some(key) = self.mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= key[i & 3];
            }
        }
        payload
    }
}

/// Appends one frame to `out`; clients pass a masking key, servers `None`.
pub(crate) fn encode_frame(out: &mut BytesMut, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) {
    out.reserve(payload.len() + 14);
    out.extend_from_slice(&[0x80 | opcode]);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.extend_from_slice(&[mask_bit | len as u8]),
        len @ 126..=0xFFFF => {
            out.extend_from_slice(&[mask_bit | 126]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.extend_from_slice(&[mask_bit | 127]);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        }
        None => out.extend_from_slice(payload),
    }
}

/// Reads from `io` into `buf` until it holds a complete HTTP head; returns its length.
async fn read_http_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
) -> anyhow::Result<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(end + 4);
        }
        if buf.len() > MAX_HTTP_HEAD {
            bail!("HTTP head over {MAX_HTTP_HEAD} bytes");
        }
        if io.read_buf(buf).await? == 0 {
            bail!("connection closed during the WebSocket handshake");
        }
    }
}

/// Value of header `name` (lowercase) in an HTTP head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Performs the client side of the upgrade to `path`; bytes after the head stay in `buf`.
pub(crate) async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    host: &str,
    path: &str,
    buf: &mut BytesMut,
) -> anyhow::Result<()> {
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await?;
    let len = read_http_head(io, buf).await?;
    let head = std::str::from_utf8(&buf[..len]).context("non-UTF-8 upgrade response")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        bail!("upgrade refused: {status}");
    }
    if header(head, "sec-websocket-accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
        bail!("bad Sec-WebSocket-Accept in the upgrade response");
    }
    buf.advance(len);
    Ok(())
}

/// Performs the server side of the upgrade; bytes after the head stay in `buf`.
pub(crate) async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    buf: &mut BytesMut,
) -> anyhow::Result<()> {
    let len = read_http_head(io, buf).await?;
    let head = std::str::from_utf8(&buf[..len]).context("non-UTF-8 upgrade request")?;
    let Some(key) = header(head, "sec-websocket-key") else {
        io.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await?;
        bail!("request without Sec-WebSocket-Key");
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    io.write_all(response.as_bytes()).await?;
    buf.advance(len);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_frame_round_trips() {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, OP_TEXT, b"42[\"x\"]", Some([1, 2, 3, 4]));
        let head = FrameHead::parse(&buf).expect("valid").expect("complete");
        assert_eq!(head.opcode, OP_TEXT);
        assert_eq!(head.payload(&mut buf[..]), b"42[\"x\"]");
    }

    #[test]
    fn long_frames_use_extended_lengths() {
        for len in [125, 126, 70_000] {
            let mut buf = BytesMut::new();
            let payload = vec![b'a'; len];
            encode_frame(&mut buf, OP_BINARY, &payload, None);
            let head = FrameHead::parse(&buf).expect("valid").expect("complete");
            assert_eq!(head.payload(&mut buf[..]).len(), len);
            assert!(
                FrameHead::parse(&buf[..buf.len() - 1])
                    .expect("valid")
                    .is_none()
            );
        }
    }

    #[test]
    fn fragments_are_refused() {
        assert!(FrameHead::parse(&[0x01, 0x00]).is_err());
    }
}
