//! Bare HTTP/1.1 requests over a fresh connection each (`Connection: close`), for
//! tests that need what an HTTP client library would hide: exact statuses and bodies.
// Each test binary uses some of these.
#![allow(dead_code)]

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` and `body` on a new connection; the whole answer, headers included.
pub(crate) async fn response(addr: &str, head: String, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

/// Sends `head` and `body` on a new connection; the answer's status and body.
pub(crate) async fn request(addr: &str, head: String, body: &str) -> (u16, String) {
    let text = response(addr, head, body).await;
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

pub(crate) async fn get(addr: &str, path: &str) -> String {
    let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    request(addr, head, "").await.1
}

pub(crate) async fn post(addr: &str, path: &str, body: &str) -> (u16, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    request(addr, head, body).await
}

/// Sends `head` (a whole request without a body) on a new connection: the answer's
/// status and body.
pub(crate) async fn raw(addr: &str, head: String) -> (u16, String) {
    request(addr, head, "").await
}
