//! The deleter: writes to Redis at once, beside the node's write queue, the deletion of
//! each session whose socket left without one to keep (its client ended it, or it was
//! kicked).
//!
//! Why at once: the queue holds the stream entries of every broadcast, and with a busy
//! publisher (or a batch waiting for replicas that do not answer) a deletion waited
//! behind them. A client that ends its session and connects again at once keeps its
//! `pid` (the official client does), and a balancer may send it to another node, which
//! took the session still stored and resumed what the client had ended. Node never
//! stores such a session.
//!
//! Why it is safe beside the queue: the deletion fences (`ARGV[2]` of
//! [`FORGET_SESSION`]), so [`super::SAVE_SESSION`] ignores every later save of the
//! socket's epoch for [`super::FORGET_FENCE`], and an earlier one is deleted by it. A
//! save of that epoch still waiting in the queue is taken out of it
//! ([`super::queue::WriteQueue::forget_at_once`]); one in a batch the writer holds is
//! taken out of that batch before it is sent again ([`super::queue::Taker::strip`]),
//! so a batch Redis keeps failing cannot outlast the fence and bring the session back;
//! one in flight reaches Redis before the deletion (deleted) or after it (ignored). A
//! save of a later epoch (the session taken since) wins in either order, as in the
//! queue, because Redis' epoch is already past this one.
//!
//! Bounded: one task, fed by a channel of [`CHANNEL`] deletions, sending up to
//! [`PIPELINE`] at a time as one pipeline of `EVALSHA` (the script loaded once per
//! server), on a connection of its own with the writer's response timeout. Before, each
//! deletion was a task of its own and an `EVAL` of the whole script on the node's
//! shared connection (the one resuming clients' takes and reads use): a
//! `disconnectSockets` of 100,000 sockets made 100,000 tasks, whose timeouts counted
//! the time they queued on that connection, and while Redis was down they piled up for
//! the whole outage.
//!
//! What it cannot take goes the queued way ([`Direct::queue`]), behind the node's
//! other writes, as every deletion went before: when its channel is full, while its
//! connection fails (until Redis answers it again), and whatever it still holds when
//! it ends. The queue counts each deletion as unsent from the moment it is asked for
//! until Redis has it, whichever way it goes, so a drain waits for it. It ends when
//! the node drops its [`Deleter`], or at shutdown (after the drain closed the
//! sessions; later deletions are queued, for the writer, which a drain waits for).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use switchboard_engine::Shutdown;
use tokio::sync::mpsc::{self, error::TryRecvError};

use super::queue::Direct;
use super::{FORGET_SESSION, MAX_WRITE_BACKOFF, WRITER_TIMEOUT, forget_session_by, write_dropped};
use crate::broker::{Conn, Health, OwnConn, Target, jitter};
use crate::redis_cluster::SlotPipes;

/// Deletions waiting for the deleter; beyond them, a deletion is queued.
pub(super) const CHANNEL: usize = 1024;
/// Deletions sent as one pipeline.
pub(super) const PIPELINE: usize = 256;

/// The SHA-1 of [`FORGET_SESSION`], in hex, as `EVALSHA` names it: 40 bytes a
/// deletion instead of the script's 380.
static FORGET_SHA: LazyLock<String> = LazyLock::new(|| {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        FORGET_SESSION.as_bytes(),
    );
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
});

/// The node's side of the deleter.
#[derive(Debug)]
pub(super) struct Deleter {
    tx: mpsc::Sender<Direct>,
    /// Set while the deleter's connection fails (and once it has ended): deletions are
    /// queued without going through it.
    failing: Arc<AtomicBool>,
}

/// The deleter's side, until it runs ([`Deletions::run`]).
#[derive(Debug)]
pub(super) struct Deletions {
    rx: mpsc::Receiver<Direct>,
    failing: Arc<AtomicBool>,
}

impl Deleter {
    pub(super) fn new() -> (Deleter, Deletions) {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let failing = Arc::new(AtomicBool::new(false));
        let deletions = Deletions {
            rx,
            failing: failing.clone(),
        };
        (Deleter { tx, failing }, deletions)
    }

    /// Hands `direct` to the deleter; gives it back when the deleter cannot take it
    /// now (its channel full, its connection failing, or ended), for the caller to
    /// queue.
    pub(super) fn delete(&self, direct: Direct) -> Result<(), Direct> {
        if self.failing.load(Ordering::Acquire) {
            return Err(direct);
        }
        self.tx.try_send(direct).map_err(|e| e.into_inner())
    }
}

impl Deletions {
    /// Sends the deletions handed over, [`PIPELINE`] at a time, until the node drops
    /// its [`Deleter`] or `shutdown` fires.
    pub(super) async fn run(self, redis: Arc<Target>, health: Arc<Health>, shutdown: Shutdown) {
        let Deletions { mut rx, failing } = self;
        let Ok(mut conn) = OwnConn::new(&redis, WRITER_TIMEOUT) else {
            tracing::error!("the session deleter's connection could not be made");
            end(rx, Vec::new(), &failing, &health);
            return;
        };
        let mut batch = Vec::with_capacity(PIPELINE);
        loop {
            tokio::select! {
                biased;
                () = shutdown.wait() => break,
                taken = rx.recv_many(&mut batch, PIPELINE) => if taken == 0 { break },
            }
            // Bounded as a whole, not per request: with Redis down, the connection
            // retries to reconnect without end, and a request may wait on it as long.
            let deleted = tokio::select! {
                biased;
                () = shutdown.wait() => break,
                deleted = tokio::time::timeout(WRITER_TIMEOUT, delete(conn.get(), &batch)) => {
                    deleted.unwrap_or_else(|_| Err(timed_out()))
                }
            };
            match deleted {
                // Each `Direct` dropped: no longer counted as unsent.
                Ok(()) => batch.clear(),
                Err(err) => {
                    failing.store(true, Ordering::Release);
                    tracing::warn!(
                        error = %err,
                        deletions = batch.len(),
                        "session deletions failed; queued instead until Redis answers again"
                    );
                    // Perhaps applied all the same (a reply lost or late): a deletion
                    // applied twice is ignored the second time (its fence).
                    queue_all(batch.drain(..), &health);
                    if !recover(&mut conn, &mut rx, &failing, &health, &shutdown).await {
                        break;
                    }
                }
            }
        }
        end(rx, batch, &failing, &health);
    }
}

/// The error of a pipeline that took longer than the writer's timeout.
fn timed_out() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::Io,
        "session deletions timed out",
        format!("no answer within {WRITER_TIMEOUT:?}"),
    ))
}

/// Sends the deletions of `batch` as one pipeline (one per hash slot on a Redis
/// Cluster). A server that does not have the script yet (restarted, failed over, or
/// never asked) is given it, and the pipeline sent again: a deletion it applied
/// already (on another slot's master) is ignored the second time.
async fn delete(conn: &mut Conn, batch: &[Direct]) -> redis::RedisResult<()> {
    let cluster = matches!(conn, Conn::Cluster(_));
    let pipes = || {
        let mut pipes = SlotPipes::new(cluster);
        for direct in batch {
            let call = ("EVALSHA", FORGET_SHA.as_str());
            pipes
                .pipe(direct.key().as_bytes())
                .add_command(forget_session_by(call, direct.key(), direct.epoch(), true))
                .ignore();
        }
        pipes
    };
    match pipes().query(&*conn).await {
        Err(err) if no_script(&err) => {
            // On a Redis Cluster, to every master.
            let _: redis::Value = redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(FORGET_SESSION)
                .query_async(conn)
                .await?;
            pipes().query(&*conn).await.map(drop)
        }
        sent => sent.map(drop),
    }
}

/// Whether `err` says the server does not know the script (of a pipeline: its first
/// error; every command of the pipeline calls the same script).
fn no_script(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// After a failure: waits until Redis answers the deleter's connection again (a
/// `PING`, tried with the writer's backoff), queueing meanwhile whatever was handed
/// over before [`Deleter::delete`] saw the failure. False when the deleter is to end
/// instead (shutdown, or the node dropped its [`Deleter`]).
async fn recover(
    conn: &mut OwnConn,
    rx: &mut mpsc::Receiver<Direct>,
    failing: &AtomicBool,
    health: &Health,
    shutdown: &Shutdown,
) -> bool {
    let mut backoff = Duration::from_millis(50);
    loop {
        loop {
            match rx.try_recv() {
                Ok(direct) => queued(direct, health),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        let answered = tokio::select! {
            biased;
            () = shutdown.wait() => return false,
            answered = async {
                tokio::time::sleep(jitter(backoff)).await;
                let ping = redis::cmd("PING");
                tokio::time::timeout(WRITER_TIMEOUT, ping.query_async::<redis::Value>(conn.get()))
                    .await
            } => matches!(answered, Ok(Ok(_))),
        };
        if answered {
            // Deletions handed over from now on are sent again; any that came in
            // between are in the channel, and sent next.
            failing.store(false, Ordering::Release);
            return true;
        }
        backoff = (backoff * 2).min(MAX_WRITE_BACKOFF);
    }
}

/// The deleter ends: nothing more is handed to it, and what it holds or still has in
/// its channel is queued, for the writer to send (a drain waits for it).
fn end(mut rx: mpsc::Receiver<Direct>, batch: Vec<Direct>, failing: &AtomicBool, health: &Health) {
    failing.store(true, Ordering::Release);
    rx.close();
    queue_all(batch, health);
    while let Ok(direct) = rx.try_recv() {
        queued(direct, health);
    }
}

fn queue_all(directs: impl IntoIterator<Item = Direct>, health: &Health) {
    for direct in directs {
        queued(direct, health);
    }
}

/// Queues `direct` behind the node's other writes (the writer retries it until Redis
/// has it); counts it dropped when the queue is full.
fn queued(direct: Direct, health: &Health) {
    if !direct.queue() {
        write_dropped(health);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ClusterConfig;
    use crate::streams::queue::WriteQueue;
    use crate::streams::{Write, epoch_key};
    use switchboard_test_support::{RedisServer, eventually, within};

    /// A deleter running against `redis`, the write queue its deletions fall back to
    /// (with the writer's receiving end, never read by a writer here), and the
    /// deleter's task.
    struct Running {
        deleter: Deleter,
        queue: WriteQueue,
        queued: mpsc::Receiver<Write>,
        task: tokio::task::JoinHandle<()>,
        trigger: switchboard_engine::shutdown::ShutdownTrigger,
    }

    fn running(redis: &RedisServer) -> Running {
        let config = ClusterConfig {
            redis_url: redis.url(),
            ..ClusterConfig::default()
        };
        let target = Target::new(&config, WRITER_TIMEOUT).expect("a target");
        let (queue, _taker, queued) = WriteQueue::new(16_384, 1 << 24);
        let (deleter, deletions) = Deleter::new();
        let (trigger, shutdown) = switchboard_engine::shutdown::channel();
        let task = tokio::spawn(deletions.run(target, Arc::default(), shutdown));
        Running {
            deleter,
            queue,
            queued,
            task,
            trigger,
        }
    }

    async fn connect(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
        redis::Client::open(redis.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("a connection")
    }

    /// How many times Redis ran `command` (`INFO commandstats`).
    async fn calls(conn: &mut redis::aio::MultiplexedConnection, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await
            .expect("INFO");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    async fn stored(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) -> usize {
        let mut n = 0;
        for chunk in keys.chunks(500) {
            let found: usize = redis::cmd("EXISTS")
                .arg(chunk)
                .query_async(conn)
                .await
                .expect("EXISTS");
            n += found;
        }
        n
    }

    async fn store(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) {
        for key in keys {
            let _: () = redis::cmd("SET")
                .arg(key)
                .arg("a session")
                .arg("PX")
                .arg(600_000)
                .query_async(conn)
                .await
                .expect("SET");
        }
    }

    fn keys(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("sio:session:{prefix}{i}")).collect()
    }

    /// The deletions queued so far (the fallback), as (key, epoch, fence).
    fn queued(queued: &mut mpsc::Receiver<Write>) -> Vec<(String, u64, bool)> {
        let mut out = Vec::new();
        while let Ok(write) = queued.try_recv() {
            if let Write::Forget { key, epoch, fence } = write {
                out.push((key, epoch, fence));
            }
        }
        out
    }

    /// The hash the deletions name is the script's, as Redis computes it.
    #[tokio::test]
    async fn the_hash_is_the_scripts() {
        let redis = RedisServer::start().await;
        let mut conn = connect(&redis).await;
        let loaded: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(FORGET_SESSION)
            .query_async(&mut conn)
            .await
            .expect("SCRIPT LOAD");
        assert_eq!(loaded, *FORGET_SHA);
    }

    /// A burst of deletions (a `disconnectSockets`) goes out from the one task, as
    /// pipelines calling the script by its hash (loaded once, the server not having
    /// it at first), each fenced; counted unsent until Redis has it, and none queued.
    #[tokio::test]
    async fn a_burst_of_deletions_is_sent_by_hash_in_pipelines_and_counted_until_done() {
        let redis = RedisServer::start().await;
        let mut conn = connect(&redis).await;
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .expect("SCRIPT FLUSH");
        let keys = keys("burst", 1000);
        store(&mut conn, &keys).await;
        let mut r = running(&redis);
        let evals = calls(&mut conn, "eval").await;
        for key in &keys {
            let direct = r.queue.forget_at_once(key.clone(), 0);
            assert!(r.deleter.delete(direct).is_ok(), "the channel takes 1,024");
        }
        eventually("every deletion is done", || async {
            r.queue.unsent_bytes() == 0
        })
        .await;
        assert_eq!(stored(&mut conn, &keys).await, 0, "all deleted");
        let epoch_keys: Vec<String> = keys.iter().map(|k| epoch_key(k)).collect();
        assert_eq!(stored(&mut conn, &epoch_keys).await, keys.len(), "fenced");
        assert!(calls(&mut conn, "evalsha").await >= 1000);
        assert_eq!(
            calls(&mut conn, "eval").await,
            evals,
            "no EVAL of the script"
        );
        assert_eq!(calls(&mut conn, "script|load").await, 1, "loaded once");
        assert!(queued(&mut r.queued).is_empty(), "none went the queued way");
    }

    /// Redis away: what the deleter was sending is queued, and so is every deletion
    /// after it, without going through it, until Redis answers again; then deletions
    /// go out at once again.
    #[tokio::test]
    async fn while_redis_fails_deletions_are_queued_until_it_answers_again() {
        let mut redis = RedisServer::start().await;
        let mut r = running(&redis);
        // Connected and working.
        let key = keys("before", 1).remove(0);
        r.deleter
            .delete(r.queue.forget_at_once(key, 1))
            .expect("taken");
        eventually("the first deletion is done", || async {
            r.queue.unsent_bytes() == 0
        })
        .await;

        redis.kill();
        let down = keys("down", 3);
        for key in &down {
            r.deleter
                .delete(r.queue.forget_at_once(key.clone(), 2))
                .expect("taken: the deleter has not failed yet");
        }
        let mut seen = Vec::new();
        eventually("the deletions are queued", || {
            seen.extend(queued(&mut r.queued));
            let n = seen.len();
            async move { n == 3 }
        })
        .await;
        assert!(
            seen.iter()
                .all(|(k, e, fence)| down.contains(k) && *e == 2 && *fence)
        );
        assert!(r.queue.unsent_bytes() > 0, "counted unsent, queued");
        let later = r.queue.forget_at_once("sio:session:later".into(), 2);
        assert!(r.deleter.delete(later).is_err(), "given back to be queued");

        redis.restart().await;
        let mut conn = connect(&redis).await;
        let again = keys("again", 1);
        store(&mut conn, &again).await;
        let deleter = &r.deleter;
        let queue = &r.queue;
        let key = &again[0];
        eventually("the deleter takes deletions again", || async {
            deleter.delete(queue.forget_at_once(key.clone(), 3)).is_ok()
        })
        .await;
        eventually("sent at once", || {
            let key = key.clone();
            let redis = &redis;
            async move {
                let mut conn = connect(redis).await;
                stored(&mut conn, &[key]).await == 0
            }
        })
        .await;
    }

    /// At shutdown the deleter ends, even in the middle of a pipeline Redis does not
    /// answer: what it held and what waited in its channel is queued, still counted
    /// unsent (the writer sends it; a drain waits for it), and later deletions are
    /// given back to be queued.
    #[tokio::test]
    async fn at_shutdown_the_deleter_ends_and_queues_what_it_holds() {
        let redis = RedisServer::start().await;
        let mut r = running(&redis);
        redis.pause();
        for key in keys("held", 300) {
            r.deleter
                .delete(r.queue.forget_at_once(key, 0))
                .expect("taken");
        }
        r.trigger.trigger();
        within("the deleter ends", &mut r.task)
            .await
            .expect("the deleter's task");
        let queued = queued(&mut r.queued);
        assert_eq!(queued.len(), 300, "all queued");
        assert!(r.queue.unsent_bytes() > 0, "still unsent");
        let later = r.queue.forget_at_once("sio:session:later".into(), 0);
        assert!(r.deleter.delete(later).is_err(), "given back to be queued");
        redis.resume();
    }

    /// The deleter ends when the node drops its side.
    #[tokio::test]
    async fn the_deleter_ends_with_the_node() {
        let redis = RedisServer::start().await;
        let r = running(&redis);
        drop(r.deleter);
        within("the deleter ends", r.task)
            .await
            .expect("the deleter's task");
    }
}
