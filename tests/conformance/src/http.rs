//! A minimal HTTP/1.1 client for long-polling: one TCP connection per request, so that
//! concurrent requests never share (or queue behind) a pooled connection; plus raw byte
//! exchanges for requests no well-behaved client would send.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{Fixture, SAFETY_TIMEOUT};

/// A complete HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Response {
    /// The body as UTF-8 text.
    ///
    /// # Panics
    ///
    /// When the body is not valid UTF-8 (a polling response must always be).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body)
            .unwrap_or_else(|e| panic!("body is not UTF-8 ({e}): {:?}", self.body))
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    ///
    /// When the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// Asserts an Engine.IO error response: HTTP `status` with body `{"code":C,"message":M}`.
    ///
    /// # Panics
    ///
    /// When the response differs.
    pub fn assert_error(&self, status: u16, code: u64, message: &str) {
        assert_eq!(self.status, status, "status of {self:?}");
        let body = self.json();
        assert_eq!(body["code"], code, "error code in {body}");
        assert_eq!(body["message"], message, "error message in {body}");
    }
}

/// Sends one request on a fresh connection and reads the whole response.
///
/// Fails with [`io::ErrorKind::TimedOut`] after [`crate::SAFETY_TIMEOUT`], and with other
/// errors when the server resets or closes the connection instead of answering.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> io::Result<Response> {
    let mut request = Request::builder()
        .method(method)
        .uri(target)
        .header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(body.into()))
        .map_err(io::Error::other)?;
    match tokio::time::timeout(SAFETY_TIMEOUT, exchange(addr, request)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "no response within the safety timeout",
        )),
    }
}

/// Performs one exchange on a new connection, then closes it.
async fn exchange(addr: SocketAddr, request: Request<Full<Bytes>>) -> io::Result<Response> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    let driver = tokio::spawn(conn);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(io::Error::other)?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }
    .await;
    driver.abort();
    result
}

/// Writes `bytes` on a new connection and reads until the server closes it.
///
/// Returns what the server wrote. Fails with [`io::ErrorKind::TimedOut`] when the server
/// keeps the connection open past [`crate::SAFETY_TIMEOUT`]. A reset after some bytes
/// were read counts as a close.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await?;
    // The server may close before reading everything: that is an answer, not a failure.
    let _ = tokio::time::timeout(SAFETY_TIMEOUT, stream.write_all(bytes)).await;
    let mut received = Vec::new();
    let read = tokio::time::timeout(SAFETY_TIMEOUT, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    match read {
        Ok(Ok(())) => Ok(received),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("connection still open; received {received:?}"),
        )),
    }
}

/// Opens a connection and writes `bytes` on it, leaving it open for the caller to hold.
pub async fn raw_open(addr: SocketAddr, bytes: &[u8]) -> io::Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    match tokio::time::timeout(SAFETY_TIMEOUT, stream.write_all(bytes)).await {
        Ok(written) => written.map(|()| stream),
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

impl Fixture {
    /// `GET path?query`.
    pub async fn get(&self, query: &str) -> io::Result<Response> {
        send(
            self.addr(),
            Method::GET,
            &self.target(query),
            &[],
            Bytes::new(),
        )
        .await
    }

    /// `POST path?query` with a text body.
    pub async fn post(&self, query: &str, body: impl Into<Bytes>) -> io::Result<Response> {
        let headers = [("content-type", "text/plain;charset=UTF-8")];
        send(
            self.addr(),
            Method::POST,
            &self.target(query),
            &headers,
            body,
        )
        .await
    }

    /// Any method on `path?query`, with explicit headers.
    pub async fn request(
        &self,
        method: Method,
        query: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> io::Result<Response> {
        send(self.addr(), method, &self.target(query), headers, body).await
    }
}
