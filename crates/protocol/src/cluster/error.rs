//! The one error type of the cluster codecs.

use super::msgpack::MAX_DEPTH;

/// Why a cluster message was rejected. Node drops such messages (with a debug log); so
/// should the caller. Every variant is cheap to build: garbage on a shared channel is
/// not exceptional.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input ended inside a value (or was empty).
    #[error("unexpected end of input")]
    Truncated,
    /// Bytes remain after the top-level MessagePack value, which both Node decoders
    /// refuse.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A MessagePack marker byte that is never valid (`0xc1`).
    #[error("invalid MessagePack marker {0:#04x}")]
    InvalidMarker(u8),
    /// Arrays and maps nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A payload announced as JSON does not parse.
    #[error("invalid JSON")]
    Json,
    /// A payload announced as base64 does not decode.
    #[error("invalid base64")]
    Base64,
    /// A well-formed message lacks this field or has it with the wrong type.
    #[error("missing or invalid field `{0}`")]
    Field(&'static str),
    /// The `type` of a request, message or packet is not one this codec knows.
    #[error("unknown type {0}")]
    UnknownType(i64),
    /// A Redis stream id is not `<ms>-<seq>` with both parts fitting in 64 bits.
    #[error("invalid stream id")]
    StreamId,
}
