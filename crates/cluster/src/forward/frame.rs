//! The frames of polling forwarding on the wire and their seal; no IO.
//!
//! A frame is `kind (1) | header length (4, big-endian) | JSON header | body`, sealed
//! ([`crate::sign::Sealer`]: `salt (16) | nonce (12) | ciphertext | tag (16)`,
//! ChaCha20-Poly1305 under a key derived from the [`ClusterSecret`] and the sending
//! process's salt, a fixed label authenticated beside it); the header names the node the frame is for (`to`) and when it was sent (`ts`,
//! milliseconds since the Unix epoch). So a frame only a node that knows the secret
//! can make or read, that only its destination accepts, and that [`Seal::open`] hands
//! out only once its tag checks; freshness and replays are the forwarder's to judge
//! (it knows the clock and what it has seen).

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use switchboard_engine::eio::forward::{ForwardedRequest, ForwardedResponse};

use crate::ClusterSecret;
use crate::sign::{Sealer, Unsealed};

/// A forwarded request's id: random, so nobody can aim an answer or a cancel at a
/// request without having seen it.
pub(crate) type RequestId = u128;

/// Authenticated beside each frame, so a seal or tag made for anything else under the
/// same secret never passes for a forwarding frame's (and a future format gets its
/// own).
const DOMAIN: &[u8] = b"switchboard forwarding frame v1\0";

/// What crosses the forwarding channels.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Frame {
    /// A client's polling request, for the owner of its session.
    Request {
        /// The tag of the node that waits for the answer.
        from: String,
        id: RequestId,
        request: ForwardedRequest,
    },
    /// The owner's answer.
    Response {
        /// The owner's tag: the waiting node checks it is the node it asked.
        from: String,
        id: RequestId,
        response: ForwardedResponse,
    },
    /// The client gave up on request `id` of node `from`.
    Cancel { from: String, id: RequestId },
}

/// A frame that passed its tag, with what the tag vouches for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Envelope {
    /// The node the sender meant it for.
    pub(super) to: String,
    /// When it was sent, in milliseconds since the Unix epoch (the sender's clock).
    pub(super) sent_ms: u64,
    pub(super) frame: Frame,
}

const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
const KIND_CANCEL: u8 = 3;

/// The JSON header of a frame (the body follows it raw).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Header {
    id: RequestId,
    to: String,
    ts: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    from: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, String)>,
}

/// Why a frame was refused. Only the kind is ever logged: never what it carried.
#[derive(Debug, thiserror::Error)]
pub(super) enum FrameError {
    /// Shorter than its tag, or than its header says.
    #[error("frame too short")]
    Short,
    /// The tag is not the one the cluster secret makes: unsigned, signed with another
    /// secret, or altered.
    #[error("bad signature")]
    Signature,
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("bad frame header: {0}")]
    Header(#[from] serde_json::Error),
    #[error("bad {0} in frame")]
    Field(&'static str),
}

impl From<Unsealed> for FrameError {
    fn from(err: Unsealed) -> Self {
        match err {
            Unsealed::Short => FrameError::Short,
            Unsealed::Signature => FrameError::Signature,
        }
    }
}

/// Seals frames (encrypted and authenticated) and opens them with the cluster
/// secret: a frame carries the session's id in its query, which is all it takes to
/// poll or post as the client on any node, so whoever reads Redis must not read it
/// (before 2026-12-07 frames were signed, not encrypted).
#[derive(Debug)]
pub(super) struct Seal {
    sealer: Sealer,
}

impl Seal {
    pub(super) fn new(secret: &ClusterSecret) -> Seal {
        Seal {
            sealer: Sealer::new(secret),
        }
    }

    /// `frame` for the node tagged `to`, sent at `sent_ms`, sealed.
    pub(super) fn seal(&self, to: &str, sent_ms: u64, frame: &Frame) -> Bytes {
        self.sealer.seal(DOMAIN, &encode(to, sent_ms, frame))
    }

    /// The frame, once its tag is checked and before anything of it is parsed.
    pub(super) fn open(&self, sealed: &[u8]) -> Result<Envelope, FrameError> {
        decode(&self.sealer.open(DOMAIN, sealed)?)
    }
}

fn encode(to: &str, sent_ms: u64, frame: &Frame) -> BytesMut {
    let (kind, header, body) = match frame {
        Frame::Request { from, id, request } => (
            KIND_REQUEST,
            Header {
                from: from.clone(),
                method: request.method.as_str().to_owned(),
                query: request.query.clone(),
                remote: Some(request.remote),
                headers: header_pairs(&request.headers),
                ..Header::new(*id, to, sent_ms)
            },
            request.body.clone(),
        ),
        Frame::Response { from, id, response } => (
            KIND_RESPONSE,
            Header {
                from: from.clone(),
                status: Some(response.status.as_u16()),
                headers: header_pairs(&response.headers),
                ..Header::new(*id, to, sent_ms)
            },
            response.body.clone(),
        ),
        Frame::Cancel { from, id } => (
            KIND_CANCEL,
            Header {
                from: from.clone(),
                ..Header::new(*id, to, sent_ms)
            },
            Bytes::new(),
        ),
    };
    // Serializing plain strings and numbers cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = BytesMut::with_capacity(5 + header.len() + body.len());
    out.put_u8(kind);
    out.put_u32(u32::try_from(header.len()).unwrap_or(u32::MAX));
    out.put_slice(&header);
    out.put_slice(&body);
    out
}

fn decode(frame: &[u8]) -> Result<Envelope, FrameError> {
    let (&kind, rest) = frame.split_first().ok_or(FrameError::Short)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or(FrameError::Short)?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(FrameError::Short);
    }
    let (header, body) = rest.split_at(len);
    let header: Header = serde_json::from_slice(header)?;
    let body = Bytes::copy_from_slice(body);
    let (to, sent_ms) = (header.to, header.ts);
    let frame = match kind {
        KIND_REQUEST => Frame::Request {
            from: header.from,
            id: header.id,
            request: ForwardedRequest {
                method: Method::from_bytes(header.method.as_bytes())
                    .map_err(|_| FrameError::Field("method"))?,
                query: header.query,
                headers: header_map(header.headers)?,
                body,
                remote: header.remote.ok_or(FrameError::Field("remote"))?,
            },
        },
        KIND_RESPONSE => Frame::Response {
            from: header.from,
            id: header.id,
            response: ForwardedResponse {
                status: header
                    .status
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or(FrameError::Field("status"))?,
                headers: header_map(header.headers)?,
                body,
            },
        },
        KIND_CANCEL => Frame::Cancel {
            from: header.from,
            id: header.id,
        },
        other => return Err(FrameError::Kind(other)),
    };
    Ok(Envelope { to, sent_ms, frame })
}

impl Header {
    fn new(id: RequestId, to: &str, ts: u64) -> Header {
        Header {
            id,
            to: to.to_owned(),
            ts,
            ..Header::default()
        }
    }
}

/// The headers as text pairs; a value that is not visible ASCII cannot be one the
/// engine reads or writes, and is left out.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// The headers back from their pairs. A value that is not visible ASCII (or tab) is
/// refused: [`header_pairs`] never writes one (`HeaderValue::from_str` alone would
/// take `obs-text` bytes, which the sender leaves out), so such a frame was not made
/// by a Switchboard node.
fn header_map(pairs: Vec<(String, String)>) -> Result<HeaderMap, FrameError> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| FrameError::Field("header"))?;
        let value = HeaderValue::from_str(&value)
            .ok()
            .filter(|v| v.to_str().is_ok())
            .ok_or(FrameError::Field("header"))?;
        map.append(name, value);
    }
    Ok(map)
}

/// The fuzz target's way in (`fuzz/`, target `forward_frame`, through
/// [`crate::fuzz_forward_frame`]); not used by the server. `unsigned` is what follows
/// a frame's tag. Under a tag the secret did not make it never opens; signed, it opens
/// as the parser reads it, and what opens seals and opens again to the same envelope.
pub(crate) fn fuzz(unsigned: &[u8]) {
    static SEAL: std::sync::OnceLock<Seal> = std::sync::OnceLock::new();
    let seal = SEAL.get_or_init(|| {
        let secret = "fuzz".repeat(ClusterSecret::MIN_LEN);
        Seal::new(&ClusterSecret::new(&secret).expect("long enough"))
    });
    let forged = [&[0; crate::sign::SEAL_OVERHEAD][..], unsigned].concat();
    assert!(matches!(
        seal.open(&forged),
        Err(FrameError::Short | FrameError::Signature)
    ));
    let signed = seal.sealer.seal(DOMAIN, unsigned);
    let Ok(envelope) = seal.open(&signed) else {
        return;
    };
    let resealed = seal.seal(&envelope.to, envelope.sent_ms, &envelope.frame);
    let again = seal.open(&resealed).expect("a sealed frame opens");
    assert_eq!(again, envelope);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(fill: char) -> ClusterSecret {
        ClusterSecret::new(&fill.to_string().repeat(32)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn request() -> ForwardedRequest {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("7"));
        ForwardedRequest {
            method: Method::POST,
            query: "EIO=4&transport=polling&sid=AbCdEf123".to_owned(),
            headers,
            body: Bytes::from_static(b"42[\"x\"]"),
            remote: SocketAddr::from(([10, 0, 0, 7], 50_123)),
        }
    }

    fn frames() -> Vec<Frame> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=UTF-8"),
        );
        vec![
            Frame::Request {
                from: "node01".to_owned(),
                id: u128::MAX - 7,
                request: request(),
            },
            Frame::Response {
                from: "node02".to_owned(),
                id: 7,
                response: ForwardedResponse {
                    status: StatusCode::OK,
                    headers,
                    // Binary bodies cross untouched.
                    body: Bytes::from_static(&[0, 255, 1, 2]),
                },
            },
            Frame::Cancel {
                from: "node01".to_owned(),
                id: 7,
            },
        ]
    }

    #[test]
    fn every_frame_survives_the_round_trip() {
        let seal = Seal::new(&secret('k'));
        for frame in frames() {
            let opened = seal.open(&seal.seal("node02", 1_700_000_000_000, &frame));
            let expected = Envelope {
                to: "node02".to_owned(),
                sent_ms: 1_700_000_000_000,
                frame,
            };
            assert_eq!(opened.ok(), Some(expected));
        }
    }

    #[test]
    fn frames_not_sealed_with_the_secret_are_refused() {
        let seal = Seal::new(&secret('k'));
        let other = Seal::new(&secret('o'));
        for frame in frames() {
            let sealed = seal.seal("node02", 1, &frame);
            // Another secret.
            assert!(matches!(other.open(&sealed), Err(FrameError::Signature)));
            // No tag at all: the frame as it was before signing.
            let unsigned = encode("node02", 1, &frame);
            assert!(seal.open(&unsigned).is_err());
            // Any byte changed, the destination and the time included.
            let nonce_len = crate::sign::SEAL_OVERHEAD - 16;
            for at in [0, nonce_len, nonce_len + 10, sealed.len() - 1] {
                let mut altered = sealed.to_vec();
                altered[at] ^= 1;
                assert!(
                    matches!(seal.open(&altered), Err(FrameError::Signature)),
                    "byte {at}"
                );
            }
        }
        assert!(matches!(seal.open(&[1, 2, 3]), Err(FrameError::Short)));
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(matches!(decode(&[]), Err(FrameError::Short)));
        assert!(matches!(
            decode(&[1, 0, 0, 0, 9, b'{']),
            Err(FrameError::Short)
        ));
        let mut bad_kind = encode(
            "n",
            1,
            &Frame::Cancel {
                from: "a".into(),
                id: 1,
            },
        );
        bad_kind[0] = 9;
        assert!(matches!(decode(&bad_kind), Err(FrameError::Kind(9))));
        let header = br#"{"id":1,"to":"n","ts":1,"method":"GET","query":"","status":null}"#;
        let mut no_remote = vec![KIND_REQUEST];
        no_remote.extend_from_slice(&(header.len() as u32).to_be_bytes());
        no_remote.extend_from_slice(header);
        assert!(matches!(
            decode(&no_remote),
            Err(FrameError::Field("remote"))
        ));
    }

    /// Found by the `forward_frame` fuzz target: a header value with bytes above 0x7f
    /// (UTF-8 text such as `ʏ`) opened, but sealed again without that header, so a frame
    /// did not survive its own round trip. The sender never writes such a value; the
    /// receiver now refuses it.
    #[test]
    fn a_header_value_the_sender_never_writes_is_refused() {
        let header = r#"{"id":1,"to":"n","ts":1,"method":"POST","query":"","status":null,"remote":"10.0.0.7:1","headers":[["content-type","textʏalin"]]}"#;
        let mut frame = vec![KIND_REQUEST];
        frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
        frame.extend_from_slice(header.as_bytes());
        assert!(matches!(decode(&frame), Err(FrameError::Field("header"))));
        let visible = header.replace(r"ʏ", "p");
        let mut frame = vec![KIND_REQUEST];
        frame.extend_from_slice(&(visible.len() as u32).to_be_bytes());
        frame.extend_from_slice(visible.as_bytes());
        assert!(
            decode(&frame).is_ok(),
            "the same frame with a visible value opens"
        );
    }
}
