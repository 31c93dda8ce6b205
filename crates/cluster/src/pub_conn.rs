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
//! How: [`PubConn::publish`] encodes the command and, when the link is idle (nothing
//! waits before it and the last write is [`COALESCE`] old or more), writes it with one
//! non-blocking `writev` (what waited, header, payload, CRLF: the payload is not
//! copied). Otherwise it waits in a buffer, in order, for the write due
//! [`COALESCE`] after the last one, which carries everything waiting: made by the
//! first publish past that moment, or by the flusher thread the first waiting publish
//! armed, whichever comes first. So an idle link adds nothing to a publish, and a busy
//! one writes (and Redis reads, answers and passes on) at most one batch per
//! [`COALESCE`] per node, not one per publish: Redis' cost per `PUBLISH` is mostly its
//! event loop's (a read, an answer, a write to each subscriber per turn), and written
//! one by one at 10k emits/s it doubled (`BENCHMARKS.md`, appendix). The flusher is a
//! thread, not a task: a task's timer has a millisecond's resolution, and it would
//! wait in the node's run queue, as the old hop did.
//!
//! The waiting buffer is bounded by [`MAX_PENDING_PUBLISHES`] commands and
//! [`MAX_PENDING_BYTES`] (past either, publishes are dropped and counted). What the
//! socket does not take waits too, written by the connection's task when the socket
//! can take more, as is what was published while a connection was being made, once
//! connected. When connecting fails, what waited fails, and so does every publish
//! until the next attempt (Redis is down: counted, not kept to be delivered late), as
//! with the `redis` crate's connection before. The same task reads the answers: an
//! integer per publish (counted as published) or an error reply (counted as failed). A
//! lost connection loses what was written and not answered, and a command it cut in
//! two: counted as failed, since nobody can tell whether Redis passed them on (pub/sub
//! is at most once, as in Node); whole commands still waiting go out on the next
//! connection.
//!
//! With Sentinels the task reconnects when the master moves ([`Target::moved`]). TLS and
//! a Redis Cluster keep the `redis` crate's connection (`broker::publisher`).

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use switchboard_protocol::cluster::resp::{self, Frame};
use tokio::sync::{Notify, oneshot, watch};

use crate::ClusterError;
use crate::broker::{
    Health, MAX_BACKOFF, MAX_PENDING_PUBLISHES, MIN_BACKOFF, Publish, Target, jitter,
};
use crate::sub_conn::{self, Plain, PlainRead, PlainWrite, SubError};

/// How long a publish waits, at most, for others to join its write: one written
/// this long or longer after the last write goes at once, carrying whatever waited;
/// one written sooner waits until then. At 10k emits/s a write carries two or three
/// publishes, at 50k a dozen; a room's broadcast every millisecond or less often is
/// written at once.
pub(crate) const COALESCE: Duration = Duration::from_micros(250);

/// Most bytes of commands waiting to be written (with [`MAX_PENDING_PUBLISHES`]).
pub(crate) const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// The most capacity the buffer of waiting commands keeps once written out.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// How long a connection must have lasted to be made again without a pause.
const LASTED: Duration = Duration::from_secs(1);

/// How long connecting (and `AUTH`) may take.
const CONNECT_WITHIN: Duration = Duration::from_secs(2);

/// The handle the broker publishes through; dropping it ends the connection's task
/// and the flusher thread.
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

impl Drop for PubConn {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.due.notify_one();
    }
}

/// What the handle, the task and the flusher share.
struct Shared {
    state: Mutex<State>,
    /// Commands written on the current connection and not answered yet.
    unanswered: AtomicU64,
    /// Wakes the task: the connection is up with commands waiting, or the socket is
    /// full.
    wake: Notify,
    /// Wakes the flusher: a publish waits for the next write.
    due: Condvar,
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
    /// When the last write was made: the next waits until `coalesce` after it.
    last_write: Option<Instant>,
    /// [`COALESCE`] (tests set their own).
    coalesce: Duration,
    /// Writes attempted (one `writev` each), on every connection.
    writes: u64,
    /// The socket did not take everything: the task writes the rest once it can take
    /// more, and publishes wait until then.
    blocked: bool,
    /// The flusher has a write to make: publishes wait in `out` for it.
    armed: bool,
    /// Set while a connection is being made: publishes wait for it. Between a failed
    /// attempt and the next they fail at once (Redis is down).
    connecting: bool,
    /// Set when a publish was dropped, cleared when one gets through: one log line per
    /// overflow.
    overflowing: bool,
    /// The handle was dropped: the flusher ends.
    stopped: bool,
}

/// One command: header, payload, CRLF.
type Command<'a> = [&'a [u8]; 3];

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
    /// Starts the connection's task, which connects to `target`'s current server (and
    /// again after a loss, with backoff, or when the server moves), and the flusher
    /// thread.
    pub(crate) fn start(target: Arc<Target>, health: Arc<Health>) -> Result<PubConn, ClusterError> {
        let shared = Arc::new(Shared {
            // The task's first attempt is under way from now on.
            state: Mutex::new(State {
                connecting: true,
                coalesce: COALESCE,
                ..State::default()
            }),
            unanswered: AtomicU64::new(0),
            wake: Notify::new(),
            due: Condvar::new(),
            health,
        });
        let flushing = shared.clone();
        std::thread::Builder::new()
            .name("redis-publish".into())
            .spawn(move || flusher(&flushing))
            .map_err(|e| ClusterError::Redis(format!("no thread for the publisher: {e}")))?;
        let (alive, ended) = oneshot::channel();
        tokio::spawn(run(target, shared.clone(), ended));
        Ok(PubConn {
            shared,
            _alive: alive,
        })
    }

    /// Publishes `payload` on `channel`, in call order: written now, with whatever
    /// waited, when the connection is up and the last write is [`COALESCE`] old, else
    /// queued for the next write (or dropped and counted past the bounds).
    pub(crate) fn publish(&self, kind: Publish, channel: &str, payload: &[u8]) {
        let head = header(kind, channel, payload.len());
        let len = head.len() + payload.len() + 2;
        let command: Command<'_> = [&head, payload, b"\r\n"];
        let shared = &*self.shared;
        let mut st = shared.lock();
        if st.wr.is_none() {
            if st.connecting {
                // Written by the task once connected.
                shared.enqueue(&mut st, &command, len);
            } else {
                drop(st);
                shared.health.publish_errors.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if st.blocked {
            // Written by the task once the socket takes more.
            shared.enqueue(&mut st, &command, len);
            return;
        }
        let now = Instant::now();
        if st
            .last_write
            .is_none_or(|at| now.duration_since(at) >= st.coalesce)
        {
            // An error other than a full socket is the connection's end, which the
            // task sees: the command waits whole for the next connection.
            if let Ok(Flushed::Blocked) = st.write(Some((&command, len)), &shared.unanswered, now) {
                drop(st);
                shared.wake.notify_one();
            }
            return;
        }
        if shared.enqueue(&mut st, &command, len) && !std::mem::replace(&mut st.armed, true) {
            drop(st);
            shared.due.notify_one();
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

    /// Writes what waits and then `extra` (one command of `len` bytes), if any, with
    /// one `writev` on the connection, as far as the socket takes them. What it does
    /// not take waits in `out` and the socket is `blocked` (the caller wakes the task).
    /// `unanswered` counts the commands written whole, before they are: Redis may
    /// answer before this returns. On an error everything waits, `extra` included.
    fn write(
        &mut self,
        extra: Option<(&Command<'_>, usize)>,
        unanswered: &AtomicU64,
        now: Instant,
    ) -> std::io::Result<Flushed> {
        if self.out.is_empty() && extra.is_none() {
            return Ok(Flushed::All);
        }
        let Some(wr) = self.wr.as_deref() else {
            return Err(std::io::ErrorKind::NotConnected.into());
        };
        self.last_write = Some(now);
        self.writes += 1;
        let whole = self.lens.len() as u64 + u64::from(extra.is_some());
        unanswered.fetch_add(whole, Ordering::Relaxed);
        let result = match extra {
            None => wr.try_write_vectored(&[IoSlice::new(&self.out)]),
            Some((parts, _)) => wr.try_write_vectored(&[
                IoSlice::new(&self.out),
                IoSlice::new(parts[0]),
                IoSlice::new(parts[1]),
                IoSlice::new(parts[2]),
            ]),
        };
        let written = match result {
            Ok(0) => Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        };
        let written = match written {
            Ok(n) => n,
            Err(e) => {
                unanswered.fetch_sub(whole, Ordering::Relaxed);
                if let Some((parts, len)) = extra {
                    self.queue(parts, len);
                }
                return Err(e);
            }
        };
        let from_out = written.min(self.out.len());
        self.out.advance(from_out);
        let mut done = self.written(from_out);
        if let Some((parts, len)) = extra {
            let into = written - from_out;
            if into == len {
                done += 1;
            } else {
                self.queue(parts, len);
                if into > 0 {
                    // What waited went whole: this command is the first now.
                    self.out.advance(into);
                    self.head_written = into;
                }
            }
        }
        unanswered.fetch_sub(whole - done, Ordering::Relaxed);
        if !self.out.is_empty() {
            self.blocked = true;
            return Ok(Flushed::Blocked);
        }
        self.blocked = false;
        self.overflowing = false;
        // A backlog (Redis slow for a while) leaves its buffers behind: give them back.
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = BytesMut::new();
            self.lens = VecDeque::new();
        }
        Ok(Flushed::All)
    }
}

/// How a write went.
#[derive(Debug, PartialEq, Eq)]
enum Flushed {
    /// Nothing waits.
    All,
    /// The socket is full: write again when it can take more.
    Blocked,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one command of `len` bytes, or drops and counts it past the bounds.
    /// Returns whether it was queued.
    fn enqueue(&self, st: &mut State, command: &Command<'_>, len: usize) -> bool {
        if st.lens.len() >= MAX_PENDING_PUBLISHES || st.out.len() + len > MAX_PENDING_BYTES {
            let first = !std::mem::replace(&mut st.overflowing, true);
            self.health.publish_dropped.fetch_add(1, Ordering::Relaxed);
            self.health.publish_errors.fetch_add(1, Ordering::Relaxed);
            if first {
                tracing::error!(
                    queued = MAX_PENDING_PUBLISHES,
                    bytes = MAX_PENDING_BYTES,
                    "redis publish queue full (redis not reading); dropping publishes"
                );
            }
            return false;
        }
        st.queue(command, len);
        true
    }

    /// Writes what waits (the task: once connected, or once the socket takes more).
    fn flush(&self) -> std::io::Result<Flushed> {
        self.lock().write(None, &self.unanswered, Instant::now())
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
        st.blocked = false;
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
        st.blocked = false;
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

/// The flusher thread: makes the write a waiting publish is due, [`COALESCE`] after
/// the last, unless a later publish made it first; ends when the handle is dropped.
fn flusher(shared: &Shared) {
    let mut st = shared.lock();
    loop {
        if st.stopped {
            return;
        }
        if !st.armed {
            st = shared.due.wait(st).unwrap_or_else(|e| e.into_inner());
            continue;
        }
        // Written meanwhile, or waiting for the task (the connection, a full socket).
        if st.out.is_empty() || st.blocked || st.wr.is_none() {
            st.armed = false;
            continue;
        }
        let now = Instant::now();
        if let Some(at) = st.last_write.map(|at| at + st.coalesce)
            && at > now
        {
            // Woken early only by the handle's drop: then `stopped` ends the loop.
            st = match shared.due.wait_timeout(st, at - now) {
                Ok((st, _)) => st,
                Err(poisoned) => poisoned.into_inner().0,
            };
            continue;
        }
        st.armed = false;
        // An error is the connection's end, which the task sees.
        if let Ok(Flushed::Blocked) = st.write(None, &shared.unanswered, now) {
            shared.wake.notify_one();
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

/// Serves one connection: writes what waits when woken (connected, or the socket is
/// full and can take more again), reads the answers.
async fn serve(
    shared: &Shared,
    mut rd: PlainRead,
    wr: &PlainWrite,
    stop: &mut oneshot::Receiver<()>,
    moved: &mut watch::Receiver<u64>,
) -> Ended {
    let mut buf = BytesMut::new();
    loop {
        // Set by any writer, which wakes this task after setting it.
        let blocked = shared.lock().blocked;
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
            () = shared.wake.notified(), if !blocked => shared.flush(),
            ready = wr.writable(), if blocked => match ready {
                Ok(()) => shared.flush(),
                Err(err) => Err(err),
            },
        };
        if let Err(err) = flushed {
            tracing::warn!(error = %err, "redis publisher connection lost");
            return Ended::Again;
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

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use crate::ClusterConfig;

    /// A publisher to a listener of the test's, and that listener.
    async fn to_listener() -> (PubConn, Arc<Health>, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let port = listener.local_addr().expect("an address").port();
        let (conn, health) = start_to(format!("redis://127.0.0.1:{port}"));
        (conn, health, listener)
    }

    /// A publisher to `redis_url`, and its counters.
    fn start_to(redis_url: String) -> (PubConn, Arc<Health>) {
        let config = ClusterConfig {
            redis_url,
            ..ClusterConfig::default()
        };
        let target = Target::new(&config, Duration::from_secs(5)).expect("a target");
        let health = Arc::new(Health::default());
        let conn = PubConn::start(target, health.clone()).expect("started");
        (conn, health)
    }

    /// A publisher connected to a "Redis" the test holds, publishing with `window` as
    /// its coalescing window.
    async fn connected(window: Duration) -> (PubConn, Arc<Health>, tokio::net::TcpStream) {
        let (conn, health, listener) = to_listener().await;
        let (redis, _) = listener.accept().await.expect("accepted");
        until_up(&conn).await;
        conn.shared.lock().coalesce = window;
        (conn, health, redis)
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

    /// Reads (at most 5 s) until `want`'s length is in, which must be `want`.
    async fn expect(redis: &mut tokio::net::TcpStream, want: &[u8]) {
        assert_eq!(
            String::from_utf8_lossy(&read(redis, want.len()).await),
            String::from_utf8_lossy(want)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_publish_on_an_idle_link_is_written_before_publish_returns() {
        let (conn, _health, mut redis) = connected(COALESCE).await;
        conn.publish(Publish::Classic, "sio#/#", b"first");
        // On this single-threaded runtime the connection's task has not run, and the
        // flusher thread was never asked to: nothing waits, so `publish` wrote it.
        {
            let st = conn.shared.lock();
            assert!(st.out.is_empty() && st.lens.is_empty() && !st.armed);
            assert_eq!(st.writes, 1);
        }
        expect(&mut redis, &publish_of("sio#/#", b"first")).await;
    }

    #[tokio::test]
    async fn publishes_soon_after_a_write_wait_and_go_in_one_write() {
        // A window no test machine's pause between two calls reaches.
        let (conn, health, mut redis) = connected(Duration::from_secs(1)).await;
        conn.publish(Publish::Classic, "ch", b"a");
        for payload in [b"b", b"c", b"d"] {
            conn.publish(Publish::Classic, "ch", payload);
        }
        {
            let st = conn.shared.lock();
            assert_eq!(st.writes, 1, "only the first was written at once");
            assert_eq!(st.lens.len(), 3, "the others wait, in order");
            assert!(st.armed, "for the flusher");
        }
        expect(&mut redis, &publish_of("ch", b"a")).await;
        // The flusher writes the three together, the window after the first.
        let mut want = Vec::new();
        for payload in [b"b", b"c", b"d"] {
            want.extend(publish_of("ch", payload));
        }
        expect(&mut redis, &want).await;
        assert_eq!(conn.shared.lock().writes, 2, "one write for the three");
        redis
            .write_all(b":1\r\n:1\r\n:1\r\n:1\r\n")
            .await
            .expect("answered");
        until(|| health.published.load(Ordering::Relaxed) == 4).await;
    }

    #[tokio::test]
    async fn a_publish_past_the_window_carries_what_waited() {
        // The flusher would write in an hour: the next publish past the window does.
        let (conn, _health, mut redis) = connected(Duration::from_secs(3600)).await;
        conn.publish(Publish::Classic, "ch", b"a");
        conn.publish(Publish::Classic, "ch", b"b");
        assert_eq!(conn.shared.lock().lens.len(), 1, "b waits");
        {
            // The window ends now. The flusher, which may be just waking for `b`,
            // stops in the same step: had it seen the window end, it would have
            // written `b` itself (found once under a loaded machine).
            let mut st = conn.shared.lock();
            st.coalesce = Duration::ZERO;
            st.stopped = true;
        }
        conn.publish(Publish::Classic, "ch", b"c");
        {
            let st = conn.shared.lock();
            assert!(st.lens.is_empty(), "b went with c");
            assert_eq!(st.writes, 2);
        }
        let mut want = publish_of("ch", b"a");
        want.extend(publish_of("ch", b"b"));
        want.extend(publish_of("ch", b"c"));
        expect(&mut redis, &want).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_socket_keeps_publishes_in_order_until_redis_reads_again() {
        let (conn, health, redis) = connected(COALESCE).await;
        // Redis stops reading: big publishes fill both sockets' buffers.
        let payload = vec![b'x'; 256 * 1024];
        let mut n = 0u64;
        while !conn.shared.lock().blocked {
            conn.publish(Publish::Classic, "ch", &payload);
            n += 1;
            assert!(n < 10_000, "the socket never filled");
        }
        // More wait behind the full socket, then Redis reads everything, in order.
        for _ in 0..3 {
            conn.publish(Publish::Classic, "ch", &payload);
            n += 1;
        }
        let want = publish_of("ch", &payload);
        let (mut rd, mut wr) = redis.into_split();
        let reader = tokio::spawn(async move {
            for _ in 0..n {
                let mut got = vec![0; want.len()];
                tokio::io::AsyncReadExt::read_exact(&mut rd, &mut got)
                    .await
                    .expect("read");
                assert!(got == want, "a command cut or out of order");
            }
        });
        tokio::time::timeout(Duration::from_secs(10), reader)
            .await
            .expect("everything written within 10 s")
            .expect("every command whole");
        for _ in 0..n {
            wr.write_all(b":1\r\n").await.expect("answered");
        }
        until(|| health.published.load(Ordering::Relaxed) == n).await;
        assert!(!conn.shared.lock().blocked);
        assert_eq!(health.publish_errors.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn dropping_the_handle_ends_the_flusher_thread_even_while_it_waits() {
        // The flusher has a write due in an hour.
        let (conn, _health, _redis) = connected(Duration::from_secs(3600)).await;
        conn.publish(Publish::Classic, "ch", b"a");
        conn.publish(Publish::Classic, "ch", b"b");
        assert!(conn.shared.lock().armed);
        let shared = Arc::downgrade(&conn.shared);
        drop(conn);
        // The task and the thread each held the shared state: both let go.
        until(|| shared.strong_count() == 0).await;
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
        let (conn, health) = start_to(redis.url());
        let conn = Arc::new(conn);
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

    /// Redis' own counts of the commands it ran and its reads from client sockets.
    async fn commands_and_reads(client: &redis::Client) -> (u64, u64) {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connected");
        let info: String = redis::cmd("INFO")
            .arg("stats")
            .query_async(&mut conn)
            .await
            .expect("INFO stats");
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
                .expect("the counter")
        };
        (
            field("total_commands_processed"),
            field("total_reads_processed"),
        )
    }

    #[tokio::test]
    async fn against_redis_a_burst_of_publishes_reaches_it_in_few_reads() {
        let redis = switchboard_test_support::RedisServer::start().await;
        let (conn, health) = start_to(redis.url());
        until_up(&conn).await;
        // A window no pause between two calls reaches, so the test does not hang on
        // how fast this machine runs the loop below.
        conn.shared.lock().coalesce = Duration::from_secs(1);
        let client = redis::Client::open(redis.url()).expect("a client");
        let (commands0, reads0) = commands_and_reads(&client).await;
        // One thread, back to back: the first is written at once, the others wait for
        // the write due a window later, which carries them all.
        let burst = 2_000u64;
        for i in 0..burst {
            conn.publish(Publish::Classic, "ch", format!("event {i}").as_bytes());
        }
        until(|| health.published.load(Ordering::Relaxed) == burst).await;
        let (commands1, reads1) = commands_and_reads(&client).await;
        // Less the INFO of the second count (one command, one read).
        let (commands, reads) = (commands1 - commands0 - 1, reads1 - reads0 - 1);
        assert!(
            commands >= burst,
            "{commands} commands for {burst} publishes"
        );
        // Written one by one, Redis would read them a few at a time (about 8 per read
        // on a debug build here, where Redis lags the loop; one per read at 10k/s).
        assert!(
            reads * 20 <= commands,
            "{reads} reads for {commands} commands: the publishes were not batched"
        );
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
