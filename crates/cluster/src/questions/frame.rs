//! The frames of node questions on the wire and their seal; no IO.
//!
//! A frame is `tag (32) | JSON`: the tag as [`crate::sign`] makes it under the cluster
//! secret and this module's label, the JSON one [`Frame`], externally tagged
//! (`{"question": {...}}`, `{"answer": {...}}`). Names (`from`, `to`, `node`) are 1 to
//! 64 visible ASCII characters, as node uids and `cluster.node_name` are; a frame with
//! any other is refused, signed or not. How large a frame may be is the caller's to
//! say ([`Seal::open`]'s `max_len`): it is checked before anything else.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ClusterSecret;
use crate::sign::{Signer, Unsealed};

/// Prefixed to what the tag covers, so a tag made for anything else under the same
/// secret (a forwarding frame's) never passes for a question's.
const LABEL: &[u8] = b"switchboard node question v1\0";

/// Longest name in a frame: what `cluster.node_name` allows.
const MAX_NAME: usize = 64;

/// A question's id: random, so nobody can aim an answer at a question without having
/// seen it.
pub(crate) type QuestionId = u128;

/// What crosses the question channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Frame {
    /// A node's question, to every other Switchboard node.
    Question {
        id: QuestionId,
        /// The asking node's uid: where the answers go.
        from: String,
        /// When it was sent, in milliseconds since the Unix epoch (the sender's clock).
        ts: u64,
        body: Value,
    },
    /// One node's answer to question `id` of node `to`.
    Answer {
        id: QuestionId,
        /// The answering node's uid: one answer per node is taken.
        from: String,
        /// The asking node's uid.
        to: String,
        /// The answering node's name, as the asker shows it.
        node: String,
        ts: u64,
        body: Value,
    },
}

/// Why a frame was refused. Only the kind is ever logged: never what it carried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// Larger than the bound for where it arrived; not opened.
    #[error("frame of {0} bytes, over the bound")]
    TooLarge(usize),
    /// Shorter than its tag, or not signed with the cluster secret for questions.
    #[error(transparent)]
    Unsealed(#[from] Unsealed),
    /// Signed, but not a frame (a newer format, or a bug).
    #[error("malformed frame: {0}")]
    Json(#[from] serde_json::Error),
    /// A name that no node can have.
    #[error("bad {0} in frame")]
    Name(&'static str),
}

/// Signs frames and opens them with the cluster secret.
#[derive(Debug)]
pub(crate) struct Seal {
    signer: Signer,
}

impl Seal {
    pub(crate) fn new(secret: &ClusterSecret) -> Seal {
        Seal {
            signer: Signer::new(secret),
        }
    }

    /// `frame`, signed.
    pub(crate) fn seal(&self, frame: &Frame) -> Result<Bytes, FrameError> {
        Ok(self.signer.seal(LABEL, &serde_json::to_vec(frame)?))
    }

    /// The frame, if it is at most `max_len` bytes (checked first), its tag checks and
    /// it parses with valid names.
    pub(crate) fn open(&self, sealed: &[u8], max_len: usize) -> Result<Frame, FrameError> {
        if sealed.len() > max_len {
            return Err(FrameError::TooLarge(sealed.len()));
        }
        decode(self.signer.open(LABEL, sealed)?)
    }
}

/// A frame from its JSON, names checked.
fn decode(json: &[u8]) -> Result<Frame, FrameError> {
    let frame: Frame = serde_json::from_slice(json)?;
    match &frame {
        Frame::Question { from, .. } => check_name(from, "from")?,
        Frame::Answer { from, to, node, .. } => {
            check_name(from, "from")?;
            check_name(to, "to")?;
            check_name(node, "node")?;
        }
    }
    Ok(frame)
}

/// Whether `name` could name a node: 1 to [`MAX_NAME`] visible ASCII characters.
pub(crate) fn is_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic())
}

fn check_name(name: &str, field: &'static str) -> Result<(), FrameError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(FrameError::Name(field))
    }
}

/// The fuzz target's way in (through [`crate::fuzz_question_frame`]); not used by the
/// server. `unsigned` is what follows a frame's tag. Under a tag the secret did not
/// make it never opens; signed, it opens as the parser reads it, and what opens seals
/// and opens again to the same frame: the same ids, names and times, and the bodies
/// returned for the caller to compare with a tolerance for floats (serde_json reads a
/// long number literal back one bit off at times).
pub(crate) fn fuzz(unsigned: &[u8]) -> Option<(Value, Value)> {
    static SEAL: std::sync::OnceLock<Seal> = std::sync::OnceLock::new();
    let seal = SEAL.get_or_init(|| {
        let secret = "fuzz".repeat(ClusterSecret::MIN_LEN);
        Seal::new(&ClusterSecret::new(&secret).expect("long enough"))
    });
    let forged = [&[0; crate::sign::TAG_LEN][..], unsigned].concat();
    assert!(seal.open(&forged, usize::MAX).is_err());
    let signed = seal.signer.seal(LABEL, unsigned);
    let Ok(frame) = seal.open(&signed, usize::MAX) else {
        return None;
    };
    let resealed = seal.seal(&frame).expect("a frame that opened seals");
    let again = seal
        .open(&resealed, usize::MAX)
        .expect("a sealed frame opens");
    let (head, body) = split(frame);
    let (head_again, body_again) = split(again);
    assert_eq!(head_again, head);
    Some((body, body_again))
}

/// A frame without its body (left `null`), and the body.
fn split(mut frame: Frame) -> (Frame, Value) {
    let body = match &mut frame {
        Frame::Question { body, .. } | Frame::Answer { body, .. } => std::mem::take(body),
    };
    (frame, body)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn seal(fill: char) -> Seal {
        Seal::new(&ClusterSecret::new(&fill.to_string().repeat(32)).expect("long enough"))
    }

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Question {
                id: u128::MAX - 3,
                from: "a1b2c3".into(),
                ts: 1_700_000_000_000,
                body: json!({"disconnects": {"limit": 10, "socket": null}}),
            },
            Frame::Answer {
                id: 7,
                from: "d4e5f6".into(),
                to: "a1b2c3".into(),
                node: "eu-1a".into(),
                ts: 1_700_000_000_001,
                body: json!({"disconnects": [{"socket_id": "x", "at": 1.5}]}),
            },
        ]
    }

    #[test]
    fn every_frame_survives_the_round_trip() {
        let seal = seal('k');
        for frame in frames() {
            let sealed = seal.seal(&frame).expect("seals");
            assert_eq!(seal.open(&sealed, sealed.len()).ok(), Some(frame));
        }
    }

    #[test]
    fn frames_not_sealed_with_the_secret_are_refused() {
        let (seal, other) = (seal('k'), seal('o'));
        for frame in frames() {
            let sealed = seal.seal(&frame).expect("seals");
            assert!(matches!(
                other.open(&sealed, usize::MAX),
                Err(FrameError::Unsealed(Unsealed::Signature))
            ));
            // The JSON alone, as anyone on the Redis could publish it.
            let unsigned = serde_json::to_vec(&frame).expect("json");
            assert!(seal.open(&unsigned, usize::MAX).is_err());
            // A forwarding frame's tag over the same bytes: another label.
            let forwarding = Signer::new(&ClusterSecret::new(&"k".repeat(32)).expect("long"))
                .seal(b"switchboard forwarding frame v1\0", &unsigned);
            assert!(matches!(
                seal.open(&forwarding, usize::MAX),
                Err(FrameError::Unsealed(Unsealed::Signature))
            ));
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_before_its_tag_is_checked() {
        let seal = seal('k');
        let big = Frame::Answer {
            id: 1,
            from: "b".into(),
            to: "a".into(),
            node: "b".into(),
            ts: 1,
            body: json!("x".repeat(10_000)),
        };
        let sealed = seal.seal(&big).expect("seals");
        assert!(matches!(
            seal.open(&sealed, 10_000),
            Err(FrameError::TooLarge(n)) if n == sealed.len()
        ));
        // Garbage of that size is refused the same way, without hashing it.
        assert!(matches!(
            seal.open(&vec![0; 20_000], 10_000),
            Err(FrameError::TooLarge(20_000))
        ));
    }

    #[test]
    fn signed_frames_with_bad_names_or_shapes_are_errors() {
        let seal = seal('k');
        let signed = |json: &str| seal.signer.seal(LABEL, json.as_bytes());
        let bad_names = [
            r#"{"question":{"id":1,"from":"","ts":1,"body":null}}"#,
            r#"{"question":{"id":1,"from":"two words","ts":1,"body":null}}"#,
            &format!(
                r#"{{"answer":{{"id":1,"from":"b","to":"a","node":"{}","ts":1,"body":null}}}}"#,
                "n".repeat(65)
            ),
            r#"{"answer":{"id":1,"from":"b","to":"a","node":"é","ts":1,"body":null}}"#,
        ];
        for json in bad_names {
            assert!(
                matches!(
                    seal.open(&signed(json), usize::MAX),
                    Err(FrameError::Name(_))
                ),
                "{json}"
            );
        }
        let bad_shapes = [
            "",
            "[]",
            r#"{"question":{"id":-1,"from":"a","ts":1,"body":null}}"#,
            r#"{"question":{"id":1,"from":"a","ts":1}}"#,
            r#"{"question":{"id":1,"from":"a","ts":1,"body":null,"extra":1}}"#,
            r#"{"shout":{"id":1}}"#,
            // Nested past serde_json's recursion limit: an error, not a stack overflow.
            &format!(
                r#"{{"question":{{"id":1,"from":"a","ts":1,"body":{}1{}}}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            ),
        ];
        for json in bad_shapes {
            assert!(
                matches!(
                    seal.open(&signed(json), usize::MAX),
                    Err(FrameError::Json(_))
                ),
                "{json}"
            );
        }
    }
}
