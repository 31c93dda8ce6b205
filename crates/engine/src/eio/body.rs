//! The body of every response the engine and the site answer: whole bytes (every
//! Engine.IO and API answer), or a stream that ends when its source does (a
//! Server-Sent Events stream); and [`read_capped`], how a request's body is read.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut as _, Bytes, BytesMut};
use futures_util::{Stream, StreamExt as _};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Frame, SizeHint};

/// A response body: whole, or streamed chunk by chunk.
pub struct Body(Kind);

enum Kind {
    Full(Full<Bytes>),
    Stream(Pin<Box<dyn Stream<Item = Bytes> + Send>>),
}

impl Body {
    /// A body of these bytes.
    pub fn new(bytes: Bytes) -> Self {
        Body(Kind::Full(Full::new(bytes)))
    }

    /// A body written as `chunks` yields, ending when it does (and staying ended if
    /// polled again). Dropping the body (the client went away) drops the stream.
    pub fn stream(chunks: impl Stream<Item = Bytes> + Send + 'static) -> Self {
        Body(Kind::Stream(Box::pin(chunks.fuse())))
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Kind::Full(full) => f.debug_tuple("Body").field(full).finish(),
            Kind::Stream(_) => f.write_str("Body(stream)"),
        }
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::new(Bytes::new())
    }
}

impl From<Bytes> for Body {
    fn from(bytes: Bytes) -> Self {
        Body::new(bytes)
    }
}

impl From<String> for Body {
    fn from(text: String) -> Self {
        Body::new(Bytes::from(text))
    }
}

impl From<&'static str> for Body {
    fn from(text: &'static str) -> Self {
        Body::new(Bytes::from_static(text.as_bytes()))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body::new(Bytes::from(bytes))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.0 {
            Kind::Full(full) => Pin::new(full).poll_frame(cx),
            Kind::Stream(stream) => stream
                .as_mut()
                .poll_next(cx)
                .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(full) => full.is_end_stream(),
            Kind::Stream(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(full) => full.size_hint(),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

/// The error of [`read_capped`]: the body's own, or `http_body_util`'s
/// `LengthLimitError` past the limit (as `Limited` reports it).
pub type ReadError = Box<dyn std::error::Error + Send + Sync>;

/// Reads `body` whole into one buffer, at most `limit` bytes (past it, `Limited`'s
/// `LengthLimitError`). Each piece is copied and let go as it comes: `collect()` kept
/// every piece, and a body sent in one-byte chunks is a million pieces for a
/// megabyte, each held in a list and each keeping the connection's read buffer it was
/// cut from alive — about 40 MiB held for a 1 MB body, counted as 1 MB.
pub async fn read_capped<B>(body: B, limit: usize) -> Result<Bytes, ReadError>
where
    B: hyper::body::Body,
    B::Error: Into<ReadError>,
{
    let limited = Limited::new(body, limit);
    let declared = usize::try_from(hyper::body::Body::size_hint(&limited).lower()).unwrap_or(limit);
    // Not the declared length at once: a client declaring a megabyte and sending
    // nothing would hold it, uncounted, until its body timed out.
    let mut out = BytesMut::with_capacity(declared.min(limit).min(FIRST_CAPACITY));
    let mut limited = std::pin::pin!(limited);
    while let Some(frame) = limited.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.put(data);
        }
    }
    Ok(fitted(out))
}

/// Room a body's buffer starts with; it grows as bytes come.
const FIRST_CAPACITY: usize = 64 * 1024;

/// `out` as bytes, copied to a buffer of its size when growing left it much larger
/// (up to twice): packets sliced from it keep the whole buffer alive.
fn fitted(out: BytesMut) -> Bytes {
    if out.capacity() > out.len() + out.len() / 4 {
        Bytes::copy_from_slice(&out)
    } else {
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A piece of a body that counts the pieces alive (as each of hyper's pieces
    /// keeps its read buffer alive).
    struct Piece(Arc<AtomicUsize>, [u8; 1]);

    impl AsRef<[u8]> for Piece {
        fn as_ref(&self) -> &[u8] {
            &self.1
        }
    }

    impl Drop for Piece {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A body of `n` one-byte pieces; the most alive at once is kept in `peak`.
    fn one_byte_pieces(
        n: usize,
        alive: &Arc<AtomicUsize>,
        peak: &Arc<AtomicUsize>,
    ) -> http_body_util::StreamBody<impl Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        let (alive, peak) = (alive.clone(), peak.clone());
        http_body_util::StreamBody::new(futures_util::stream::iter(0..n).map(move |i| {
            let now = alive.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            let byte = b'a' + u8::try_from(i % 26).unwrap_or(0);
            Ok(Frame::data(Bytes::from_owner(Piece(alive.clone(), [byte]))))
        }))
    }

    #[tokio::test]
    async fn pieces_are_copied_and_let_go_as_they_come() {
        let (alive, peak) = (Arc::default(), Arc::default());
        let body = one_byte_pieces(10_000, &alive, &peak);
        let read = read_capped(body, 1 << 20).await.expect("read");
        assert_eq!(read.len(), 10_000);
        assert_eq!(&read[..3], b"abc");
        assert_eq!(alive.load(Ordering::SeqCst), 0);
        assert!(
            peak.load(Ordering::SeqCst) <= 2,
            "{peak:?} pieces held at once"
        );
    }

    #[tokio::test]
    async fn past_the_limit_is_limiteds_error() {
        let (alive, peak) = (Arc::default(), Arc::default());
        let body = one_byte_pieces(101, &alive, &peak);
        let err = read_capped(body, 100).await.expect_err("over the limit");
        assert!(err.is::<http_body_util::LengthLimitError>(), "{err}");
    }
}
