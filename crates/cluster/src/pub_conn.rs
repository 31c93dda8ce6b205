//! The ordered publisher over a connection of its own to one Redis (plain TCP or a Unix
//! socket, opened as the subscriber's: `sub_conn.rs`): the caller of
//! [`PubConn::publish`] writes the `PUBLISH` into the socket itself, so a broadcast is
//! on its way to the other nodes before this node starts delivering it to its own
//! members.
//!
//! Why not the `redis` crate's connection, which published before: a publish went
//! through two tasks (the publisher's, then the connection's), with one pipeline in
//! flight at a time. On a busy node both tasks waited in the runtime's queue behind the
//! socket tasks the local delivery had just woken, and the next publish waited for the
//! previous one's answer, which waited there too. With a room of 1k spread over three
//! nodes at a tenth of the cluster's peak, the `PUBLISH` left the publisher's node
//! p90 1.4 ms and p99 4 ms after the event that caused it was read, with up to 335
//! local deliveries written first, and the other nodes' receivers paid for it in full
//! (`BENCHMARKS.md`, appendix).
//!
//! How: [`PubConn::publish`] encodes the command and, when nothing waits before it,
//! writes it with one non-blocking `writev` (header, payload, CRLF: the payload is not
//! copied). What the socket does not take, and what is published while a connection is
//! being made, waits in a buffer, in order, bounded by [`MAX_PENDING_PUBLISHES`]
//! commands and [`MAX_PENDING_BYTES`] (past either, publishes are dropped and counted):
//! the connection's task writes it when the socket can take more, or once connected.
//! When connecting fails, what waited fails, and so does every publish until the next
//! attempt (Redis is down: counted, not kept to be delivered late), as with the
//! `redis` crate's connection before. The same task reads the answers: an integer per
//! publish (counted as published) or an error reply (counted as failed). A lost
//! connection loses what was written and not answered, and a command it cut in two:
//! counted as failed, since nobody can tell whether Redis passed them on (pub/sub is at
//! most once, as in Node); whole commands still waiting go out on the next connection.
//!
//! With Sentinels the task reconnects when the master moves ([`Target::moved`]). TLS and
//! a Redis Cluster keep the `redis` crate's connection (`broker::publisher`).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use switchboard_protocol::cluster::resp::{self, Frame};
use tokio::sync::{Notify, oneshot, watch};

use crate::broker::{
    Health, MAX_BACKOFF, MAX_PENDING_PUBLISHES, MIN_BACKOFF, Publish, Target, jitter,
};
use crate::sub_conn::{self, Plain, PlainRead, PlainWrite, SubError};

/// Most bytes of commands waiting to be written (with [`MAX_PENDING_PUBLISHES`]).
pub(crate) const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// The most capacity the buffer of waiting commands keeps once written out.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// How long a connection must have lasted to be made again without a pause.
const LASTED: Duration = Duration::from_secs(1);

/// How long connecting (and `AUTH`) may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// The handle the broker publishes through; dropping it ends the connection's task.
pub(crate) struct PubConn {
    shared: Arc<Shared>,
    /// Dropped with the handle: tells the task to end.
    _alive: oneshot::Sender<()>,
}

impl std::fmt::Debug for PubConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubConn").finish_non_exhaustive()
    }
}

/// What the handle and the task share.
struct Shared {
    state: Mutex<State>,
    /// Commands written on the current connection and not answered yet.
    unanswered: AtomicU64,
    /// Wakes the task: commands wait and the connection is up.
    wake: Notify,
    health: Arc<Health>,
}

/// The connection and the commands waiting for it.
#[derive(Default)]
struct State {
    /// The connection's write half while one is up.
    wr: Option<Arc<PlainWrite>>,
    /// Commands not yet written, in publish order; the first may be partly written.
    out: BytesMut,
    /// The length of each command in `out`, the first first.
    lens: VecDeque<usize>,
    /// Bytes of the first command in `out` already written.
    head_written: usize,
    /// Set while a connection is being made: publishes wait for it. Between a failed
    /// attempt and the next they fail at once (Redis is down).
    connecting: bool,
    /// Set when a publish was dropped, cleared when one gets through: one log line per
    /// overflow.
    overflowing: bool,
}

/// The head of `kind`'s command on `channel` for a payload of `len` bytes, up to the
/// payload itself (which follows, then CRLF).
fn header(kind: Publish, channel: &str, len: usize) -> Vec<u8> {
    let command: &[u8] = match kind {
        Publish::Classic => b"PUBLISH",
        Publish::Shard => b"SPUBLISH",
    };
    let mut head = Vec::with_capacity(32 + channel.len());
    resp::command_head(&mut head, &[command, channel.as_bytes()], len);
    head
}

impl PubConn {
    /// Starts the connection's task: it connects to `target`'s current server (and
    /// again after a loss, with backoff, or when the server moves).
    pub(crate) fn start(target: Arc<Target>, health: Arc<Health>) -> PubConn {
        let shared = Arc::new(Shared {
            // The task's first attempt is under way from now on.
            state: Mutex::new(State {
                connecting: true,
                ..State::default()
            }),
            unanswered: AtomicU64::new(0),
            wake: Notify::new(),
            health,
        });
        let (alive, ended) = oneshot::channel();
        tokio::spawn(run(target, shared.clone(), ended));
        PubConn {
            shared,
            _alive: alive,
        }
    }

    /// Publishes `payload` on `channel`, in call order: written now when the connection
    /// is up and nothing waits before it, else queued (or dropped and counted past the
    /// bounds).
    pub(crate) fn publish(&self, kind: Publish, channel: &str, payload: &[u8]) {
        let head = header(kind, channel, payload.len());
        let len = head.len() + payload.len() + 2;
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.out.is_empty()
            && let Some(wr) = st.wr.as_deref()
        {
            let bufs = [
                IoSlice::new(&head),
                IoSlice::new(payload),
                IoSlice::new(b"\r\n"),
            ];
            // Counted before it is written: the task may read Redis' answer before this
            // thread gets past the write.
            shared.unanswered.fetch_add(1, Ordering::Relaxed);
            // An error other than a full socket is the connection's end, which the
            // task sees: the command waits whole for the next connection.
            let written = wr.try_write_vectored(&bufs).unwrap_or(0);
            if written == len {
                st.overflowing = false;
                return;
            }
            // Not whole, so not answered yet: counted when the task finishes writing it.
            shared.unanswered.fetch_sub(1, Ordering::Relaxed);
            st.queue(&[&head, payload, b"\r\n"], len);
            st.head_written = written;
            st.out.advance(written);
            drop(st);
            shared.wake.notify_one();
            return;
        }
        if st.wr.is_none() && !st.connecting {
            drop(st);
            shared.health.publish_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if st.lens.len() >= MAX_PENDING_PUBLISHES || st.out.len() + len > MAX_PENDING_BYTES {
            let first = !std::mem::replace(&mut st.overflowing, true);
            drop(st);
            shared
                .health
                .publish_dropped
                .fetch_add(1, Ordering::Relaxed);
            shared.health.publish_errors.fetch_add(1, Ordering::Relaxed);
            if first {
                tracing::error!(
                    queued = MAX_PENDING_PUBLISHES,
                    bytes = MAX_PENDING_BYTES,
                    "redis publish queue full (redis not reading); dropping publishes"
                );
            }
            return;
        }
        st.queue(&[&head, payload, b"\r\n"], len);
        let up = st.wr.is_some();
        drop(st);
        if up {
            shared.wake.notify_one();
        }
    }
}

impl State {
    /// Appends one command of `len` bytes made of `parts`.
    fn queue(&mut self, parts: &[&[u8]], len: usize) {
        self.out.reserve(len);
        for part in parts {
            self.out.extend_from_slice(part);
        }
        self.lens.push_back(len);
    }

    /// Counts `n` more bytes of `out` written (already taken off `out`): the commands
    /// they complete are written. Returns how many.
    fn written(&mut self, n: usize) -> u64 {
        let mut done = 0;
        let mut at = self.head_written + n;
        while let Some(&len) = self.lens.front() {
            if at < len {
                break;
            }
            at -= len;
            self.lens.pop_front();
            done += 1;
        }
        self.head_written = at;
        done
    }
}

/// How writing what waits went.
#[derive(Debug, PartialEq, Eq)]
enum Flushed {
    /// Nothing waits.
    All,
    /// The socket is full: write again when it is writable.
    Blocked,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes what waits, as far as the socket takes it.
    fn flush(&self, wr: &PlainWrite) -> std::io::Result<Flushed> {
        let mut st = self.lock();
        while !st.out.is_empty() {
            match wr.try_write_vectored(&[IoSlice::new(&st.out)]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    st.out.advance(n);
                    let done = st.written(n);
                    self.unanswered.fetch_add(done, Ordering::Relaxed);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Ok(Flushed::Blocked);
                }
                Err(e) => return Err(e),
            }
        }
        st.overflowing = false;
        // A backlog (Redis slow for a while) leaves its buffers behind: give them back.
        if st.out.capacity() > KEEP_CAPACITY {
            st.out = BytesMut::new();
            st.lens = VecDeque::new();
        }
        Ok(Flushed::All)
    }

    /// A connection is being made: publishes wait for it.
    fn connecting(&self) {
        self.lock().connecting = true;
    }

    /// The connection is up: publishes go to `wr` from now on.
    fn up(&self, wr: Arc<PlainWrite>) {
        let mut st = self.lock();
        st.wr = Some(wr);
        st.connecting = false;
        drop(st);
        self.wake.notify_one();
    }

    /// Connecting failed: what waited for it fails, and so does every publish until
    /// the next attempt.
    fn failed(&self) {
        let mut st = self.lock();
        st.connecting = false;
        let lost = st.lens.len() as u64;
        st.lens.clear();
        st.out.clear();
        st.head_written = 0;
        drop(st);
        self.health
            .publish_errors
            .fetch_add(lost, Ordering::Relaxed);
        self.health.commands(false);
    }

    /// The connection is gone: what it took and did not answer is lost, and so is a
    /// command it cut in two; whole commands keep waiting.
    fn down(&self) {
        let mut st = self.lock();
        st.wr = None;
        let mut lost = self.unanswered.swap(0, Ordering::Relaxed);
        if st.head_written > 0 {
            let rest = st.lens.pop_front().unwrap_or(0) - st.head_written;
            let rest = rest.min(st.out.len());
            st.out.advance(rest);
            st.head_written = 0;
            lost += 1;
        }
        drop(st);
        if lost > 0 {
            self.health
                .publish_errors
                .fetch_add(lost, Ordering::Relaxed);
            tracing::warn!(
                lost,
                "redis publisher connection lost with publishes unanswered"
            );
        }
    }

    /// One answer to a publish.
    fn answered(&self, frame: &Frame, buf: &[u8]) -> Result<(), SubError> {
        let previous = self.unanswered.fetch_sub(1, Ordering::Relaxed);
        if previous == 0 {
            self.unanswered.store(0, Ordering::Relaxed);
            return Err(SubError::Refused("an answer to nothing asked".to_owned()));
        }
        match frame {
            Frame::Int(_) => {
                self.health.published.fetch_add(1, Ordering::Relaxed);
                self.health.commands(true);
                Ok(())
            }
            Frame::Error(text) => {
                self.health.publish_errors.fetch_add(1, Ordering::Relaxed);
                self.health.commands(false);
                tracing::warn!(
                    error = %String::from_utf8_lossy(&buf[text.clone()]),
                    "publish refused by redis"
                );
                Ok(())
            }
            _ => Err(SubError::Refused(
                "an unexpected answer to a publish".to_owned(),
            )),
        }
    }
}

/// Why one connection ended.
enum Ended {
    /// The handle was dropped.
    Stopped,
    /// Lost, or the server moved: connect again.
    Again,
}

/// Keeps a connection up to `target`'s current server until the handle is dropped.
async fn run(target: Arc<Target>, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    let mut moved = target.moved();
    let mut backoff = MIN_BACKOFF;
    loop {
        moved.borrow_and_update();
        shared.connecting();
        let plain = target.current().client.as_ref().and_then(Plain::of);
        let opened = match &plain {
            Some(plain) => tokio::select! {
                _ = &mut stop => return,
                opened = plain.open(CONNECT_WITHIN) => opened,
            },
            None => Err(SubError::Refused(
                "not a plain TCP or Unix-socket address".to_owned(),
            )),
        };
        match opened {
            Ok((rd, wr)) => {
                let opened = tokio::time::Instant::now();
                let wr = Arc::new(wr);
                shared.up(wr.clone());
                let ended = serve(&shared, rd, &wr, &mut stop, &mut moved).await;
                shared.down();
                match ended {
                    Ended::Stopped => return,
                    // A connection that lasted is made again at once; one that ended
                    // right away (a server that accepts and closes: `maxclients`) waits
                    // its backoff, or this would be a busy loop.
                    Ended::Again if opened.elapsed() >= LASTED => {
                        backoff = MIN_BACKOFF;
                        continue;
                    }
                    Ended::Again => {}
                }
            }
            Err(err) => {
                shared.failed();
                tracing::warn!(error = %err, retry_in = ?backoff, "redis publisher connection failed");
            }
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = moved.changed() => {}
            () = tokio::time::sleep(jitter(backoff)) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Serves one connection: writes what waits whenever woken or writable again, reads
/// the answers.
async fn serve(
    shared: &Shared,
    mut rd: PlainRead,
    wr: &PlainWrite,
    stop: &mut oneshot::Receiver<()>,
    moved: &mut watch::Receiver<u64>,
) -> Ended {
    let mut buf = BytesMut::new();
    let mut blocked = false;
    loop {
        let flushed = tokio::select! {
            _ = &mut *stop => return Ended::Stopped,
            // The sender lives in the target this task holds: a change is a move.
            _ = moved.changed() => return Ended::Again,
            read = sub_conn::fill(&mut rd, &mut buf) => {
                if let Err(err) = read.and_then(|()| answers(shared, &mut buf)) {
                    tracing::warn!(error = %err, "redis publisher connection lost");
                    return Ended::Again;
                }
                continue;
            }
            () = shared.wake.notified(), if !blocked => shared.flush(wr),
            ready = wr.writable(), if blocked => match ready {
                Ok(()) => shared.flush(wr),
                Err(err) => Err(err),
            },
        };
        match flushed {
            Ok(f) => blocked = f == Flushed::Blocked,
            Err(err) => {
                tracing::warn!(error = %err, "redis publisher connection lost");
                return Ended::Again;
            }
        }
    }
}

/// Takes every complete answer off `buf`.
fn answers(shared: &Shared, buf: &mut BytesMut) -> Result<(), SubError> {
    while let Some((frame, n)) = resp::parse(buf)? {
        shared.answered(&frame, buf)?;
        buf.advance(n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_the_resp_array_redis_reads() {
        let mut out = Vec::new();
        resp::command(&mut out, &[b"PUBLISH", b"sio#/#", b"a\r\nb"]);
        let mut ours = header(Publish::Classic, "sio#/#", 4);
        ours.extend_from_slice(b"a\r\nb\r\n");
        assert_eq!(ours, out);
        let mut out = Vec::new();
        resp::command(&mut out, &[b"SPUBLISH", b"c", b""]);
        let mut ours = header(Publish::Shard, "c", 0);
        ours.extend_from_slice(b"\r\n");
        assert_eq!(ours, out);
    }

    #[test]
    fn partly_written_commands_count_once_whole() {
        let mut st = State::default();
        st.queue(&[b"aaaa"], 4);
        st.queue(&[b"bb"], 2);
        st.queue(&[b"ccc"], 3);
        assert_eq!(st.written(3), 0);
        assert_eq!(st.head_written, 3);
        assert_eq!(st.written(1), 1, "the first is whole now");
        assert_eq!(st.written(4), 1, "the second, and two bytes of the third");
        assert_eq!(st.head_written, 2);
        assert_eq!(st.written(1), 1);
        assert!(st.lens.is_empty());
        assert_eq!(st.head_written, 0);
    }

    // The connection against a socket the test holds as "Redis": what the publisher
    // writes, when, and what it makes of the answers.

    use std::io::Read;

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use crate::ClusterConfig;

    /// A publisher to a listener of the test's, and that listener.
    async fn to_listener() -> (PubConn, Arc<Health>, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let port = listener.local_addr().expect("an address").port();
        let config = ClusterConfig {
            redis_url: format!("redis://127.0.0.1:{port}"),
            ..ClusterConfig::default()
        };
        let target = Target::new(&config, Duration::from_secs(5)).expect("a target");
        let health = Arc::new(Health::default());
        (PubConn::start(target, health.clone()), health, listener)
    }

    /// Lets the publisher's task run until the connection is up.
    async fn until_up(conn: &PubConn) {
        while conn.shared.lock().wr.is_none() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits (at most 5 s) until `cond` holds.
    async fn until(cond: impl Fn() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
        waited.await.expect("the condition within 5 s");
    }

    /// Reads exactly `n` bytes (at most 5 s).
    async fn read(redis: &mut tokio::net::TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0; n];
        let read = tokio::io::AsyncReadExt::read_exact(redis, &mut got);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("within 5 s")
            .expect("read");
        got
    }

    fn publish_of(channel: &str, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        resp::command(&mut out, &[b"PUBLISH", channel.as_bytes(), payload]);
        out
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_caller_writes_the_publish_before_it_returns() {
        let (conn, _health, listener) = to_listener().await;
        let (redis, _) = listener.accept().await.expect("accepted");
        until_up(&conn).await;
        // On this single-threaded runtime no task runs until this one awaits: the
        // bytes are in the socket because `publish` wrote them itself.
        conn.publish(Publish::Classic, "sio#/#", b"first");
        conn.publish(Publish::Classic, "sio#/#", b"second");
        let mut redis = redis.into_std().expect("a std socket");
        redis.set_nonblocking(false).expect("blocking");
        redis
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("a timeout");
        let mut want = publish_of("sio#/#", b"first");
        want.extend(publish_of("sio#/#", b"second"));
        let mut got = vec![0; want.len()];
        redis
            .read_exact(&mut got)
            .expect("written before publish returned");
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn answers_are_counted_and_a_lost_connection_fails_what_it_did_not_answer() {
        let (conn, health, listener) = to_listener().await;
        let (mut redis, _) = listener.accept().await.expect("accepted");
        until_up(&conn).await;
        for payload in [b"a", b"b", b"c"] {
            conn.publish(Publish::Classic, "ch", payload);
        }
        read(&mut redis, 3 * publish_of("ch", b"a").len()).await;
        redis
            .write_all(b":2\r\n-NOPERM no permissions\r\n")
            .await
            .expect("answered");
        until(|| health.published.load(Ordering::Relaxed) == 1).await;
        until(|| health.publish_errors.load(Ordering::Relaxed) == 1).await;
        // The third is never answered: the connection dies with it.
        drop(redis);
        until(|| health.publish_errors.load(Ordering::Relaxed) == 2).await;
        // The publisher connects again, and publishes flow on the new connection.
        let (mut redis, _) = listener.accept().await.expect("accepted again");
        until_up(&conn).await;
        conn.publish(Publish::Shard, "ch", b"d");
        let mut want = Vec::new();
        resp::command(&mut want, &[b"SPUBLISH", b"ch", b"d"]);
        assert_eq!(read(&mut redis, want.len()).await, want);
        redis.write_all(b":1\r\n").await.expect("answered");
        until(|| health.published.load(Ordering::Relaxed) == 2).await;
        assert_eq!(health.publish_errors.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn publishes_wait_for_the_connection_being_made_and_fail_while_redis_is_down() {
        let (conn, health, listener) = to_listener().await;
        // Before the publisher's task even ran: the publish waits for its connection.
        conn.publish(Publish::Classic, "ch", b"early");
        let (mut redis, _) = listener.accept().await.expect("accepted");
        let want = publish_of("ch", b"early");
        assert_eq!(read(&mut redis, want.len()).await, want);
        // Redis goes away for good: the publish in flight and every later one fail.
        drop(listener);
        drop(redis);
        until(|| health.publish_errors.load(Ordering::Relaxed) == 1).await;
        until(|| {
            let st = conn.shared.lock();
            st.wr.is_none() && !st.connecting
        })
        .await;
        conn.publish(Publish::Classic, "ch", b"while down");
        assert_eq!(health.publish_errors.load(Ordering::Relaxed), 2);
        assert!(
            conn.shared.lock().out.is_empty(),
            "nothing kept to send late"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn against_redis_publishes_from_many_threads_are_all_answered() {
        let redis = switchboard_test_support::RedisServer::start().await;
        let config = ClusterConfig {
            redis_url: redis.url(),
            ..ClusterConfig::default()
        };
        let target = Target::new(&config, Duration::from_secs(5)).expect("a target");
        let health = Arc::new(Health::default());
        let conn = Arc::new(PubConn::start(target, health.clone()));
        until_up(&conn).await;
        // Redis answers as fast as it can while other threads publish: an answer may
        // come back before the thread that wrote its command has moved on.
        let per_thread = 20_000u64;
        let publishers: Vec<_> = (0..4)
            .map(|t| {
                let conn = conn.clone();
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        let payload = format!("{t}:{i}");
                        conn.publish(Publish::Classic, "ch", payload.as_bytes());
                    }
                })
            })
            .collect();
        for publisher in publishers {
            publisher.join().expect("published");
        }
        let total = 4 * per_thread;
        let answered = tokio::time::timeout(Duration::from_secs(30), async {
            while health.published.load(Ordering::Relaxed) < total {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        answered.await.expect("every publish answered");
        assert_eq!(health.published.load(Ordering::Relaxed), total);
        assert_eq!(health.publish_errors.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_server_that_closes_at_once_is_not_reconnected_to_in_a_loop() {
        let (_conn, _health, listener) = to_listener().await;
        let mut accepted = Vec::new();
        for _ in 0..4 {
            let (mut redis, _) = listener.accept().await.expect("accepted");
            accepted.push(tokio::time::Instant::now());
            // As Redis past `maxclients`: an error, then the connection closes.
            let _ = redis
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
        }
        // Each attempt waits its backoff (100 ms, doubling) after the close it saw,
        // which came after this side accepted: a lower bound a loaded machine only
        // lengthens. A loop without backoff would come back within a millisecond.
        for (i, pair) in accepted.windows(2).enumerate() {
            let waited = pair[1] - pair[0];
            let backoff = MIN_BACKOFF * 2u32.pow(i as u32);
            assert!(
                waited >= backoff,
                "attempt {} came {waited:?} after the one before, under its backoff {backoff:?}",
                i + 2
            );
        }
    }
}
