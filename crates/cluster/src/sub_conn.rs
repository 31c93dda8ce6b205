//! The subscriber's own connection to one Redis over plain TCP or a Unix socket: RESP2
//! parsed where it lies in the read buffer (`switchboard_protocol::cluster::resp`) and
//! every message handed to the node as a slice of that buffer, on the subscriber's own
//! task.
//!
//! Why not the `redis` crate's pub/sub connection, which the subscriber used before:
//! that one reads on a task of its own, turns every reply into owned values (a vector
//! per string), copies the payload once more, and hands each message through a channel
//! to the subscriber's task (a second wake-up per message). Every node receives every
//! broadcast of the cluster, so that cost is paid once per node per broadcast: with
//! 10k rooms of 5 over three nodes it was about a tenth of a non-publishing node's CPU
//! (`BENCHMARKS.md`, appendix). A TLS URL (`rediss://`) keeps the `redis` crate's
//! connection; so do a Redis Cluster and shard channels (`broker::push_subscriber`).
//!
//! What it speaks: `AUTH` with the URL's credentials, then `SUBSCRIBE`, `PSUBSCRIBE`
//! and their opposites (RESP2: a subscribed connection reads only pushes, their
//! confirmations and errors). It sends no `SELECT` (pub/sub ignores the database) and
//! no `CLIENT SETINFO`.

use std::io::IoSlice;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use switchboard_protocol::cluster::resp::{self, Push, RespError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::broker::{Change, Sub};

/// Free room the read buffer keeps before a read: what one read can take at most.
const READ_CHUNK: usize = 64 * 1024;

/// Where a plain connection goes, with the URL's credentials.
#[derive(Debug, Clone)]
pub(crate) struct Plain {
    addr: PlainAddr,
    /// `(user, password)` for `AUTH`; no user: `requirepass`'s default user.
    auth: Option<(Option<String>, String)>,
}

/// A plain address: TCP or a Unix socket.
#[derive(Debug, Clone)]
enum PlainAddr {
    Tcp(String, u16),
    Unix(PathBuf),
}

impl Plain {
    /// The plain address of `client`; `None` for TLS, which keeps the `redis` crate's
    /// connection.
    pub(crate) fn of(client: &redis::Client) -> Option<Plain> {
        let info = client.get_connection_info();
        let addr = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => PlainAddr::Tcp(host.clone(), *port),
            redis::ConnectionAddr::Unix(path) => PlainAddr::Unix(path.clone()),
            _ => return None,
        };
        let settings = info.redis_settings();
        let auth = settings
            .password()
            .map(|p| (settings.username().map(str::to_owned), p.to_owned()));
        Some(Plain { addr, auth })
    }

    /// Connects and authenticates (`AUTH` with the URL's credentials), all within
    /// `within`: the connection's two halves, nothing read beyond the `AUTH` answer.
    pub(crate) async fn open(&self, within: Duration) -> Result<(PlainRead, PlainWrite), SubError> {
        let open = async {
            let (mut rd, mut wr) = match &self.addr {
                PlainAddr::Tcp(host, port) => {
                    let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                    stream.set_nodelay(true)?;
                    let (rd, wr) = stream.into_split();
                    (PlainRead::Tcp(rd), PlainWrite::Tcp(wr))
                }
                PlainAddr::Unix(path) => {
                    let (rd, wr) = tokio::net::UnixStream::connect(path).await?.into_split();
                    (PlainRead::Unix(rd), PlainWrite::Unix(wr))
                }
            };
            if let Some((user, password)) = &self.auth {
                let mut buf = BytesMut::new();
                authenticate(&mut rd, &mut wr, &mut buf, user.as_deref(), password).await?;
            }
            Ok((rd, wr))
        };
        tokio::time::timeout(within, open)
            .await
            .map_err(|_| SubError::Timeout(within))?
    }
}

/// The read half of a plain connection.
#[derive(Debug)]
pub(crate) enum PlainRead {
    Tcp(tokio::net::tcp::OwnedReadHalf),
    Unix(tokio::net::unix::OwnedReadHalf),
}

/// The write half of a plain connection: written through `&self` as well
/// ([`PlainWrite::try_write_vectored`]), which the publisher does from any thread.
#[derive(Debug)]
pub(crate) enum PlainWrite {
    Tcp(tokio::net::tcp::OwnedWriteHalf),
    Unix(tokio::net::unix::OwnedWriteHalf),
}

impl PlainWrite {
    /// Writes what the socket takes now, without waiting (`WouldBlock`: nothing).
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        match self {
            PlainWrite::Tcp(w) => w.try_write_vectored(bufs),
            PlainWrite::Unix(w) => w.try_write_vectored(bufs),
        }
    }

    /// Resolves when the socket may take more (it can still say `WouldBlock`).
    pub(crate) async fn writable(&self) -> std::io::Result<()> {
        match self {
            PlainWrite::Tcp(w) => w.writable().await,
            PlainWrite::Unix(w) => w.writable().await,
        }
    }
}

impl AsyncRead for PlainRead {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PlainRead::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            PlainRead::Unix(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PlainWrite {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PlainWrite::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            PlainWrite::Unix(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PlainWrite::Tcp(w) => Pin::new(w).poll_flush(cx),
            PlainWrite::Unix(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PlainWrite::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            PlainWrite::Unix(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Sends `AUTH` on `wr` and reads its answer from `rd` (into `buf`).
async fn authenticate(
    rd: &mut (impl AsyncRead + Unpin),
    wr: &mut (impl AsyncWrite + Unpin),
    buf: &mut BytesMut,
    user: Option<&str>,
    password: &str,
) -> Result<(), SubError> {
    let mut args: Vec<&[u8]> = vec![b"AUTH"];
    args.extend(user.map(str::as_bytes));
    args.push(password.as_bytes());
    let mut out = Vec::new();
    resp::command(&mut out, &args);
    wr.write_all(&out).await?;
    loop {
        if let Some((frame, n)) = resp::parse(buf)? {
            let answer = match resp::push(buf, &frame) {
                Push::Status => Ok(()),
                Push::Error(text) => Err(error_reply(&buf[text])),
                _ => Err(SubError::Refused("an unexpected answer to AUTH".to_owned())),
            };
            buf.advance(n);
            return answer;
        }
        fill(rd, buf).await?;
    }
}

/// The most capacity an empty read buffer keeps (see [`fill`]).
const KEEP_READ_CAPACITY: usize = 1024 * 1024;

/// Reads what `rd` has into `buf`. Cancel safe: dropped before it finishes, it has
/// read nothing.
pub(crate) async fn fill(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> Result<(), SubError> {
    // One large message (a peer's up to 16 MiB, or an oversized one read whole before
    // it was dropped) left the buffer its size: given back once parsed, not kept for
    // the connection's life.
    if buf.is_empty() && buf.capacity() > KEEP_READ_CAPACITY {
        *buf = BytesMut::new();
    }
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    match rd.read_buf(buf).await? {
        0 => Err(SubError::Closed),
        _ => Ok(()),
    }
}

/// Why the connection failed or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubError {
    /// The socket failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Connecting (and `AUTH`) took too long.
    #[error("no connection within {0:?}")]
    Timeout(Duration),
    /// Redis refused the credentials (`WRONGPASS`), or wants some (`NOAUTH`).
    #[error("{0}")]
    Auth(String),
    /// Redis answered with an error.
    #[error("redis answered: {0}")]
    Refused(String),
    /// Redis closed the connection.
    #[error("redis closed the connection")]
    Closed,
    /// Redis sent what is not RESP2 a subscriber reads.
    #[error(transparent)]
    Protocol(#[from] RespError),
}

/// The error an error reply `text` means.
fn error_reply(text: &[u8]) -> SubError {
    let text = String::from_utf8_lossy(text).into_owned();
    if text.starts_with("WRONGPASS") || text.starts_with("NOAUTH") {
        SubError::Auth(text)
    } else {
        SubError::Refused(text)
    }
}

/// One subscribed connection: to Redis over [`PlainRead`] and [`PlainWrite`]; the unit
/// tests give it an in-memory pipe's halves.
pub(crate) struct SubConn<R = PlainRead, W = PlainWrite> {
    rd: R,
    wr: W,
    /// Bytes read and not yet parsed (a frame's start at its front).
    buf: BytesMut,
    /// Commands not yet written.
    out: Vec<u8>,
    /// Subscription changes sent and not yet confirmed.
    unconfirmed: usize,
}

impl SubConn {
    /// Connects to `plain` and authenticates, all within `within`.
    pub(crate) async fn connect(plain: &Plain, within: Duration) -> Result<SubConn, SubError> {
        let (rd, wr) = plain.open(within).await?;
        Ok(SubConn::over(rd, wr))
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> SubConn<R, W> {
    /// A connection over a stream's two halves.
    fn over(rd: R, wr: W) -> Self {
        SubConn {
            rd,
            wr,
            buf: BytesMut::with_capacity(READ_CHUNK),
            out: Vec::new(),
            unconfirmed: 0,
        }
    }

    /// Sends `AUTH` and reads its answer.
    #[cfg(test)]
    async fn auth(&mut self, user: Option<&str>, password: &str) -> Result<(), SubError> {
        authenticate(&mut self.rd, &mut self.wr, &mut self.buf, user, password).await
    }

    /// Queues one subscription change ([`SubConn::flush`] sends it).
    pub(crate) fn queue(&mut self, change: Change, sub: &Sub) {
        let (command, name): (&[u8], &str) = match (change, sub) {
            (Change::Subscribe, Sub::Channel(c)) => (b"SUBSCRIBE", c),
            (Change::Subscribe, Sub::Pattern(p)) => (b"PSUBSCRIBE", p),
            (Change::Subscribe, Sub::Shard(c)) => (b"SSUBSCRIBE", c),
            (Change::Unsubscribe, Sub::Channel(c)) => (b"UNSUBSCRIBE", c),
            (Change::Unsubscribe, Sub::Pattern(p)) => (b"PUNSUBSCRIBE", p),
            (Change::Unsubscribe, Sub::Shard(c)) => (b"SUNSUBSCRIBE", c),
        };
        resp::command(&mut self.out, &[command, name.as_bytes()]);
        self.unconfirmed += 1;
    }

    /// Subscription changes sent and not yet confirmed by Redis.
    pub(crate) fn unconfirmed(&self) -> usize {
        self.unconfirmed
    }

    /// Writes the queued commands.
    pub(crate) async fn flush(&mut self) -> Result<(), SubError> {
        if !self.out.is_empty() {
            self.wr.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Reads what the socket has. Cancel safe: dropped before it finishes, it has
    /// read nothing.
    pub(crate) async fn fill(&mut self) -> Result<(), SubError> {
        fill(&mut self.rd, &mut self.buf).await
    }

    /// Hands every complete message read so far to `on_message` (its payload a slice
    /// of the read buffer) and counts confirmations; an error reply or bytes that are
    /// not RESP2 end the connection.
    pub(crate) fn dispatch(
        &mut self,
        on_message: &mut dyn FnMut(&str, Bytes),
    ) -> Result<(), SubError> {
        while let Some((frame, n)) = resp::parse(&self.buf)? {
            match resp::push(&self.buf, &frame) {
                Push::Message { channel, payload } => {
                    let frame = self.buf.split_to(n).freeze();
                    // Channel names are the adapters' own (UTF-8); another is no one's.
                    if let Ok(channel) = std::str::from_utf8(&frame[channel]) {
                        on_message(channel, frame.slice(payload));
                    }
                    continue;
                }
                Push::Confirmed => self.unconfirmed = self.unconfirmed.saturating_sub(1),
                Push::Error(text) => return Err(error_reply(&self.buf[text])),
                Push::Status | Push::Other => {}
            }
            self.buf.advance(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{DuplexStream, ReadHalf, WriteHalf};

    type Piped = SubConn<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

    /// A connection over an in-memory pipe, and the pipe's other end (the "server").
    fn piped() -> (Piped, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (rd, wr) = tokio::io::split(ours);
        (SubConn::over(rd, wr), theirs)
    }

    #[tokio::test]
    async fn messages_split_over_reads_arrive_whole_and_in_order() {
        let (mut conn, mut server) = piped();
        conn.queue(Change::Subscribe, &Sub::Pattern("sio#*".to_owned()));
        conn.flush().await.expect("written");
        let mut sent = vec![0; 64];
        let n = server.read(&mut sent).await.expect("read");
        assert_eq!(&sent[..n], b"*2\r\n$10\r\nPSUBSCRIBE\r\n$5\r\nsio#*\r\n");
        assert_eq!(conn.unconfirmed(), 1);
        let mut stream = b"*3\r\n$10\r\npsubscribe\r\n$5\r\nsio#*\r\n:1\r\n".to_vec();
        for i in 0..3 {
            let payload = format!("payload {i} \r\n with CRLF");
            stream.extend_from_slice(
                format!(
                    "*4\r\n$8\r\npmessage\r\n$5\r\nsio#*\r\n$5\r\nsio#{i}\r\n${}\r\n{payload}\r\n",
                    payload.len()
                )
                .as_bytes(),
            );
        }
        let mut got = Vec::new();
        // A few bytes at a time: every frame is cut somewhere.
        for piece in stream.chunks(7) {
            server.write_all(piece).await.expect("written");
            conn.fill().await.expect("read");
            conn.dispatch(&mut |channel: &str, payload: Bytes| {
                got.push((channel.to_owned(), payload));
            })
            .expect("valid");
        }
        assert_eq!(conn.unconfirmed(), 0);
        let want: Vec<(String, Bytes)> = (0..3)
            .map(|i| {
                (
                    format!("sio#{i}"),
                    Bytes::from(format!("payload {i} \r\n with CRLF")),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn an_error_reply_or_garbage_ends_the_connection() {
        let (mut conn, mut server) = piped();
        server
            .write_all(b"-ERR unknown command\r\n")
            .await
            .expect("written");
        conn.fill().await.expect("read");
        assert!(matches!(
            conn.dispatch(&mut |_, _| {}),
            Err(SubError::Refused(_))
        ));
        let (mut conn, mut server) = piped();
        server.write_all(b"?what\r\n").await.expect("written");
        conn.fill().await.expect("read");
        assert!(matches!(
            conn.dispatch(&mut |_, _| {}),
            Err(SubError::Protocol(_))
        ));
        drop(server);
        assert!(matches!(conn.fill().await, Err(SubError::Closed)));
    }

    #[tokio::test]
    async fn auth_sends_the_credentials_and_reads_the_verdict() {
        let (mut conn, mut server) = piped();
        let answer = tokio::spawn(async move {
            let mut sent = vec![0; 128];
            let n = server.read(&mut sent).await.expect("read");
            server
                .write_all(b"-WRONGPASS invalid username-password pair\r\n")
                .await
                .expect("written");
            (sent[..n].to_vec(), server)
        });
        let refused = conn.auth(Some("app"), "pw").await;
        assert!(matches!(refused, Err(SubError::Auth(_))));
        let (sent, _server) = answer.await.expect("joined");
        assert_eq!(sent, b"*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$2\r\npw\r\n");
    }

    #[test]
    fn tls_urls_keep_the_redis_crates_connection() {
        let plain = |url: &str| Plain::of(&redis::Client::open(url).expect("a URL"));
        let tcp = plain("redis://user:secret@127.0.0.1:6390/2").expect("plain");
        assert!(matches!(&tcp.addr, PlainAddr::Tcp(h, 6390) if h == "127.0.0.1"));
        assert_eq!(
            tcp.auth,
            Some((Some("user".to_owned()), "secret".to_owned()))
        );
        let unix = plain("redis+unix:///run/redis.sock").expect("plain");
        assert!(matches!(unix.addr, PlainAddr::Unix(_)));
        assert!(unix.auth.is_none());
        assert!(
            plain("redis://:only-a-password@localhost")
                .is_some_and(|p| p.auth == Some((None, "only-a-password".to_owned())))
        );
        let tls = redis::Client::build_with_tls(
            "rediss://localhost:6380",
            redis::TlsCertificates {
                client_tls: None,
                root_cert: None,
            },
        )
        .expect("a TLS client");
        assert!(Plain::of(&tls).is_none());
    }

    #[test]
    fn credentials_errors_are_told_apart_from_other_errors() {
        assert!(matches!(
            error_reply(b"WRONGPASS invalid username-password pair"),
            SubError::Auth(_)
        ));
        assert!(matches!(
            error_reply(b"NOAUTH Authentication required."),
            SubError::Auth(_)
        ));
        assert!(matches!(error_reply(b"ERR unknown"), SubError::Refused(_)));
    }

    // Against a real `redis-server` (Debian's package, as every cluster test).

    use switchboard_test_support::{RedisServer, within};

    const PASSWORD: &str = "default-password-0123456789";
    const USER: &str = "app";
    const USER_PASSWORD: &str = "app-password-0123456789";

    /// A server with `requirepass` and an ACL user.
    async fn guarded() -> RedisServer {
        let user_password = format!(">{USER_PASSWORD}");
        RedisServer::builder()
            .args(["--requirepass", PASSWORD])
            .args(["--user", USER, "on", &user_password, "~*", "&*", "+@all"])
            .start()
            .await
    }

    fn plain(url: &str) -> Plain {
        Plain::of(&redis::Client::open(url).expect("a URL")).expect("a plain URL")
    }

    /// A command connection to `redis`, to publish with.
    async fn publisher(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(redis.url()).expect("a URL");
        client
            .get_multiplexed_async_connection()
            .await
            .expect("connects")
    }

    /// Subscribes `conn` to `sub` and waits for Redis' confirmation.
    async fn subscribe(conn: &mut SubConn, sub: Sub) -> Result<(), SubError> {
        conn.queue(Change::Subscribe, &sub);
        conn.flush().await?;
        while conn.unconfirmed() > 0 {
            conn.fill().await?;
            conn.dispatch(&mut |_, _| {})?;
        }
        Ok(())
    }

    /// Reads until `n` messages arrived.
    async fn receive(conn: &mut SubConn, n: usize) -> Vec<(String, Bytes)> {
        let mut got = Vec::new();
        within("the messages", async {
            while got.len() < n {
                conn.fill().await.expect("read");
                conn.dispatch(&mut |channel: &str, payload: Bytes| {
                    got.push((channel.to_owned(), payload));
                })
                .expect("valid");
            }
        })
        .await;
        got
    }

    #[tokio::test]
    async fn against_redis_credentials_are_checked_and_a_user_or_the_password_subscribes() {
        let redis = guarded().await;
        let port = redis.port();
        let second = Duration::from_secs(2);
        for url in [
            format!("redis://{USER}:wrong@127.0.0.1:{port}"),
            format!("redis://:wrong@127.0.0.1:{port}"),
            format!("redis://nobody:{USER_PASSWORD}@127.0.0.1:{port}"),
        ] {
            match SubConn::connect(&plain(&url), second).await {
                Err(SubError::Auth(why)) => assert!(!why.contains("wrong"), "{why}"),
                Err(other) => panic!("{url}: {other}"),
                Ok(_) => panic!("{url}: accepted"),
            }
        }
        // No password at all: connected, and the first subscription is refused.
        let mut none = SubConn::connect(&plain(&redis.url()), second)
            .await
            .expect("connects");
        let refused = subscribe(&mut none, Sub::Channel("c".to_owned())).await;
        assert!(matches!(refused, Err(SubError::Auth(_))), "{refused:?}");
        for url in [
            format!("redis://{USER}:{USER_PASSWORD}@127.0.0.1:{port}"),
            format!("redis://:{PASSWORD}@127.0.0.1:{port}"),
        ] {
            let mut conn = SubConn::connect(&plain(&url), second).await.expect(&url);
            subscribe(&mut conn, Sub::Channel("c".to_owned()))
                .await
                .expect("subscribed");
        }
    }

    #[tokio::test]
    async fn against_redis_large_and_many_messages_arrive_whole_and_in_order() {
        let redis = RedisServer::start().await;
        let mut conn = SubConn::connect(&plain(&redis.url()), Duration::from_secs(2))
            .await
            .expect("connects");
        subscribe(&mut conn, Sub::Pattern("sio#*".to_owned()))
            .await
            .expect("subscribed");
        subscribe(&mut conn, Sub::Channel("exact".to_owned()))
            .await
            .expect("subscribed");
        let mut publisher = publisher(&redis).await;
        // Four reads' worth of binary payload with CRLFs in it, then many small ones.
        let big: Vec<u8> = (0..4 * READ_CHUNK).map(|i| (i % 251) as u8).collect();
        let mut want = vec![("sio#big".to_owned(), Bytes::from(big.clone()))];
        let mut pipe = redis::pipe();
        pipe.publish("sio#big", &big[..]).ignore();
        for i in 0..1000 {
            let channel = if i % 2 == 0 {
                "exact".to_owned()
            } else {
                format!("sio#{i}")
            };
            let payload = format!("event {i}\r\n");
            pipe.publish(&channel, &payload).ignore();
            want.push((channel, Bytes::from(payload)));
        }
        pipe.exec_async(&mut publisher).await.expect("published");
        assert_eq!(receive(&mut conn, want.len()).await, want);

        // Given back: what is published there no longer arrives.
        conn.queue(Change::Unsubscribe, &Sub::Channel("exact".to_owned()));
        conn.flush().await.expect("written");
        redis::pipe()
            .publish("exact", "gone")
            .ignore()
            .publish("sio#last", "last")
            .ignore()
            .exec_async(&mut publisher)
            .await
            .expect("published");
        let last = receive(&mut conn, 1).await;
        assert_eq!(last, [("sio#last".to_owned(), Bytes::from("last"))]);
        assert_eq!(conn.unconfirmed(), 0);
    }

    #[tokio::test]
    async fn against_redis_over_a_unix_socket() {
        let redis = RedisServer::start().await;
        let mut conn = SubConn::connect(&plain(&redis.unix_url()), Duration::from_secs(2))
            .await
            .expect("connects");
        subscribe(&mut conn, Sub::Channel("c".to_owned()))
            .await
            .expect("subscribed");
        let mut publisher = publisher(&redis).await;
        redis::cmd("PUBLISH")
            .arg("c")
            .arg("over the socket")
            .exec_async(&mut publisher)
            .await
            .expect("published");
        let got = receive(&mut conn, 1).await;
        assert_eq!(got, [("c".to_owned(), Bytes::from("over the socket"))]);
    }
}
