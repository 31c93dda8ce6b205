//! A WebSocket client for Engine.IO frames; every read is bounded by [`SAFETY_TIMEOUT`].

use std::fmt;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as RawFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::SAFETY_TIMEOUT;

/// What the server sent, as the tests care about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
    /// The connection is closed: with the close frame's code, or `None` when the server
    /// dropped the TCP connection (or broke the WebSocket protocol) without one.
    Closed(Option<u16>),
}

impl Frame {
    /// The text of a text frame.
    ///
    /// # Panics
    ///
    /// When the frame is not text.
    pub fn text(self) -> String {
        match self {
            Frame::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Why a WebSocket handshake did not succeed.
#[derive(Debug)]
pub enum Refused {
    /// The server answered the upgrade with this HTTP status instead of 101.
    Status(u16),
    /// The connection failed or closed during the handshake.
    Failed(String),
}

/// A WebSocket client connection.
pub struct WsClient {
    /// The connection; a closed connection is remembered in `closed`.
    inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Set once the server closed; later reads return it again.
    closed: Option<Option<u16>>,
}

impl fmt::Debug for WsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsClient")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// Opens a WebSocket connection to `url`.
pub async fn connect(url: &str) -> Result<WsClient, Refused> {
    let attempt = tokio::time::timeout(SAFETY_TIMEOUT, tokio_tungstenite::connect_async(url));
    match attempt.await {
        Ok(Ok((inner, _response))) => Ok(WsClient {
            inner,
            closed: None,
        }),
        Ok(Err(tungstenite::Error::Http(response))) => {
            Err(Refused::Status(response.status().as_u16()))
        }
        Ok(Err(e)) => Err(Refused::Failed(e.to_string())),
        Err(_) => panic!("WebSocket handshake to {url} timed out"),
    }
}

impl WsClient {
    /// Sends a text frame. Fails when the connection is already closed.
    pub async fn send_text(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.send(Message::text(text)).await
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, data: &[u8]) -> Result<(), tungstenite::Error> {
        self.send(Message::binary(data.to_vec())).await
    }

    /// Sends a text frame whose payload is not checked for UTF-8 validity.
    pub async fn send_raw_text(&mut self, payload: &[u8]) -> Result<(), tungstenite::Error> {
        let frame = RawFrame::message(payload.to_vec(), OpCode::Data(Data::Text), true);
        self.send(Message::Frame(frame)).await
    }

    /// Sends one message, failing with `TimedOut` if the server stops reading.
    async fn send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        match tokio::time::timeout(SAFETY_TIMEOUT, self.inner.send(message)).await {
            Ok(result) => result,
            Err(_) => Err(tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into())),
        }
    }

    /// The next data frame or the close, skipping WebSocket-level ping and pong frames.
    ///
    /// # Panics
    ///
    /// When nothing arrives within [`SAFETY_TIMEOUT`].
    pub async fn recv(&mut self) -> Frame {
        self.recv_before(Instant::now() + SAFETY_TIMEOUT).await
    }

    /// [`WsClient::recv`] with a deadline shared by a whole loop of reads, so that a
    /// server sending nothing but pings cannot keep a test waiting forever.
    async fn recv_before(&mut self, deadline: Instant) -> Frame {
        if let Some(code) = self.closed {
            return Frame::Closed(code);
        }
        let frame = tokio::time::timeout_at(deadline, self.next_frame())
            .await
            .unwrap_or_else(|_| panic!("no expected WebSocket frame within {SAFETY_TIMEOUT:?}"));
        if let Frame::Closed(code) = frame {
            self.closed = Some(code);
        }
        frame
    }

    /// Reads until a data frame or the end of the connection.
    async fn next_frame(&mut self) -> Frame {
        loop {
            match self.inner.next().await {
                Some(Ok(Message::Text(text))) => return Frame::Text(text.as_str().to_owned()),
                Some(Ok(Message::Binary(data))) => return Frame::Binary(data.to_vec()),
                Some(Ok(Message::Close(close))) => {
                    return Frame::Closed(close.map(|c| u16::from(c.code)));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Err(_)) | None => return Frame::Closed(None),
            }
        }
    }

    /// The next text frame.
    ///
    /// # Panics
    ///
    /// When the next frame is not text.
    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Frame::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next frame that is not an Engine.IO ping, answering each ping with a pong,
    /// as an official client does.
    pub async fn recv_skipping_pings(&mut self) -> Frame {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        loop {
            match self.recv_before(deadline).await {
                Frame::Text(text) if text == "2" => {
                    let _ = self.send_text("3").await;
                }
                frame => return frame,
            }
        }
    }

    /// Waits for the server to close, ignoring Engine.IO pings (and not answering them).
    /// Returns the close code, if a close frame was sent.
    ///
    /// An Engine.IO `close` packet (`1`) before the close is accepted: the protocol lets
    /// either side announce the end of a transport with it (Switchboard does; Node.js
    /// just closes), and official clients treat both the same.
    ///
    /// # Panics
    ///
    /// When any other frame arrives first.
    pub async fn expect_closed(&mut self) -> Option<u16> {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        loop {
            match self.recv_before(deadline).await {
                Frame::Closed(code) => return code,
                Frame::Text(text) if text == "2" || text == "1" => {}
                other => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }

    /// Waits for the server to close while answering Engine.IO pings, so that the close
    /// cannot be a heartbeat timeout. A `close` packet first is accepted, as in
    /// [`WsClient::expect_closed`].
    ///
    /// # Panics
    ///
    /// When any frame other than a ping arrives first.
    pub async fn expect_closed_answering_pings(&mut self) -> Option<u16> {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        loop {
            match self.recv_before(deadline).await {
                Frame::Closed(code) => return code,
                Frame::Text(text) if text == "2" => {
                    let _ = self.send_text("3").await;
                }
                Frame::Text(text) if text == "1" => {}
                other => panic!("expected the connection to close, got {other:?}"),
            }
        }
    }

    /// Closes the connection from the client side, ignoring errors.
    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
    }
}
