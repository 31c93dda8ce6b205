//! One client of the recovery storm: connects to the node that will be killed, joins
//! its room, counts every numbered event and keeps the offset of the last one; when
//! that node dies, reconnects to the survivor after a random delay with a CONNECT that
//! claims its session (`pid`, `offset`), and counts on until told to stop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng as _;
use tokio::sync::{Semaphore, watch};

use crate::client::{Replies, Session, drain_frames, fill};
use crate::net::SourcePool;
use crate::sio::{self, Dialect, Incoming};

/// Time one first connection gets for its TCP, WebSocket, Engine.IO, Socket.IO and join
/// steps (as the fleet's setups).
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Reconnection attempts before a client gives up: a real client keeps trying, but an
/// attempt that fails here (no answer in 10 s, refused) already says the survivor is
/// not coping, and the count of such attempts is reported.
const RECONNECT_ATTEMPTS: u32 = 5;

/// Most events per room a client keeps count of: 200 events/s in one room for over 20
/// hours. A number past it (a server gone wrong) is ignored rather than allocated for,
/// and shows as lost events.
const MAX_EVENTS_PER_ROOM: usize = 1 << 24;

/// Where the clients stand, shared by them and the scenario. Atomics only: each client
/// touches it a few times per read, the scenario polls it.
#[derive(Debug)]
pub(crate) struct Board {
    /// Set just before the SIGKILL: a connection that ends before it was lost, it is
    /// not part of the storm.
    killed: AtomicBool,
    /// When the SIGKILL was sent.
    kill_at: OnceLock<Instant>,
    /// Per client: distinct numbered events received.
    distinct: Vec<AtomicU64>,
    /// Per client: whether its session was recovered.
    recovered: Vec<AtomicBool>,
    /// Clients that hold an offset (received at least one event).
    with_offset: AtomicUsize,
    /// Clients whose reconnection is decided (recovered, not recovered, gave up) or
    /// whose first connection ended before the kill.
    resolved: AtomicUsize,
}

impl Board {
    /// A board for `clients` clients.
    pub(crate) fn new(clients: usize) -> Board {
        Board {
            killed: AtomicBool::new(false),
            kill_at: OnceLock::new(),
            distinct: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            recovered: (0..clients).map(|_| AtomicBool::new(false)).collect(),
            with_offset: AtomicUsize::new(0),
            resolved: AtomicUsize::new(0),
        }
    }

    /// Notes that the node is about to be killed, now.
    pub(crate) fn kill(&self) -> Instant {
        let at = *self.kill_at.get_or_init(Instant::now);
        self.killed.store(true, Ordering::SeqCst);
        at
    }

    /// Clients holding an offset.
    pub(crate) fn with_offset(&self) -> usize {
        self.with_offset.load(Ordering::Relaxed)
    }

    /// Clients whose reconnection is decided.
    pub(crate) fn resolved(&self) -> usize {
        self.resolved.load(Ordering::Relaxed)
    }

    /// Whether client `i` was recovered, and the distinct events it has received.
    pub(crate) fn client(&self, i: usize) -> (bool, u64) {
        (
            self.recovered[i].load(Ordering::Relaxed),
            self.distinct[i].load(Ordering::Relaxed),
        )
    }
}

/// How a client's storm ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The survivor answered the claim with the session's old `sid`.
    Recovered,
    /// The survivor answered with a new `sid`: a fresh session, not in the room.
    NotRecovered,
    /// Every reconnection attempt failed; the last error.
    GaveUp(String),
    /// The first connection ended before the kill.
    LostBeforeKill(String),
    /// Stopped while still on its first connection (the kill never reached it).
    NeverDisconnected,
}

/// What one client saw.
#[derive(Debug, Clone)]
pub(crate) struct Tally {
    /// Its room's index.
    pub(crate) room: usize,
    /// Per event of its room (event `n` is the room's `n / rooms`-th), how many times
    /// it arrived.
    pub(crate) received: Vec<u8>,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Kill → the survivor's CONNECT answer.
    pub(crate) answered_after: Option<Duration>,
    /// Start of the answered attempt → the answer: the survivor's handshake and
    /// recovery time for this client, without the client's own delay.
    pub(crate) connect_took: Option<Duration>,
    /// Reconnection attempts that failed (no answer, refused, closed).
    pub(crate) failed_attempts: u32,
}

/// What a client needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Client index (its slot on the board).
    pub(crate) index: usize,
    /// Its room's index.
    pub(crate) room: usize,
    /// Number of rooms (event `n` goes to room `n % rooms`).
    pub(crate) rooms: usize,
    /// The node that is killed, where it connects first.
    pub(crate) doomed: SocketAddr,
    /// The node it reconnects to.
    pub(crate) survivor: SocketAddr,
    /// Longest random delay before each reconnection attempt.
    pub(crate) backoff: Duration,
    /// Source addresses.
    pub(crate) pool: Arc<SourcePool>,
}

/// The storm's room `i`.
pub(crate) fn room_name(i: usize) -> String {
    format!("storm-{i}")
}

/// One client's identity and what it has received.
struct State {
    spec: Spec,
    board: Arc<Board>,
    received: Vec<u8>,
    offset: Option<String>,
}

impl State {
    /// The tally of a client that ended with `outcome`.
    fn finish(self, outcome: Outcome) -> Tally {
        Tally {
            room: self.spec.room,
            received: self.received,
            outcome,
            answered_after: None,
            connect_took: None,
            failed_attempts: 0,
        }
    }

    /// Counts numbered event `n` at `offset`.
    fn note(&mut self, n: u64, offset: &[u8]) {
        let k = usize::try_from(n / self.spec.rooms as u64).unwrap_or(usize::MAX);
        if k >= MAX_EVENTS_PER_ROOM {
            return;
        }
        if k >= self.received.len() {
            self.received.resize(k + 1, 0);
        }
        let count = &mut self.received[k];
        if *count == 0 {
            self.board.distinct[self.spec.index].fetch_add(1, Ordering::Relaxed);
        }
        *count = count.saturating_add(1);
        if !offset.is_empty() {
            if self.offset.is_none() {
                self.board.with_offset.fetch_add(1, Ordering::Relaxed);
            }
            self.offset = Some(String::from_utf8_lossy(offset).into_owned());
        }
    }
}

/// The tally of a client whose first session could not be set up.
pub(crate) fn failed(spec: &Spec, outcome: Outcome) -> Tally {
    Tally {
        room: spec.room,
        received: Vec::new(),
        outcome,
        answered_after: None,
        connect_took: None,
        failed_attempts: 0,
    }
}

/// Opens the client's first session (on the doomed node) and joins its room; its `sid`
/// and `pid`. `gate` bounds the setups in flight.
pub(crate) async fn setup(spec: &Spec, gate: &Semaphore) -> anyhow::Result<(Session, Ids)> {
    let _permit = gate.acquire().await.context("setup gate closed")?;
    let attempt = async {
        let (mut session, answer) =
            Session::connect(&spec.pool, spec.doomed, Dialect::Handlers, b"40").await?;
        let (Some(sid), Some(pid)) = (answer.sid, answer.pid) else {
            bail!("CONNECT answer without sid and pid: is recovery on?");
        };
        session.join(&room_name(spec.room)).await?;
        Ok((session, Ids { sid, pid }))
    };
    match tokio::time::timeout(SETUP_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => bail!("setup timed out after {SETUP_TIMEOUT:?}"),
    }
}

/// A session's ids from its CONNECT answer.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    /// Socket id (a recovered session keeps it).
    sid: String,
    /// Private session id, what a recovery claim names.
    pid: String,
}

/// Runs one client from its first session until `stop`: receive, and after the kill
/// reconnect and receive on the survivor.
pub(crate) async fn run(
    spec: Spec,
    board: Arc<Board>,
    (session, ids): (Session, Ids),
    mut stop: watch::Receiver<bool>,
) -> Tally {
    let mut state = State {
        spec,
        board: board.clone(),
        received: Vec::new(),
        offset: None,
    };
    let Some(closed) = receive(session, &mut state, &mut stop).await else {
        return state.finish(Outcome::NeverDisconnected);
    };
    if !board.killed.load(Ordering::SeqCst) {
        board.resolved.fetch_add(1, Ordering::Relaxed);
        return state.finish(Outcome::LostBeforeKill(format!("{closed:#}")));
    }
    let mut failed_attempts = 0;
    let mut last_error = "stopped before reconnecting".to_owned();
    for _ in 0..RECONNECT_ATTEMPTS {
        let delay = rand::rng().random_range(Duration::ZERO..=state.spec.backoff);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => break,
        }
        let started = Instant::now();
        let claim = sio::recovery_connect(&ids.pid, state.offset.as_deref());
        let (pool, survivor) = (&state.spec.pool, state.spec.survivor);
        match Session::connect(pool, survivor, Dialect::Handlers, claim.as_bytes()).await {
            Ok((session, answer)) => {
                let connect_took = started.elapsed();
                let answered_after = board.kill_at.get().map(Instant::elapsed);
                let recovered = answer.sid.as_deref() == Some(ids.sid.as_str());
                board.recovered[state.spec.index].store(recovered, Ordering::Relaxed);
                board.resolved.fetch_add(1, Ordering::Relaxed);
                let outcome = if recovered {
                    // An error after this shows as lost events.
                    let _ = receive(session, &mut state, &mut stop).await;
                    Outcome::Recovered
                } else {
                    Outcome::NotRecovered
                };
                return Tally {
                    answered_after,
                    connect_took: Some(connect_took),
                    failed_attempts,
                    ..state.finish(outcome)
                };
            }
            Err(e) => {
                failed_attempts += 1;
                last_error = format!("{e:#}");
            }
        }
    }
    board.resolved.fetch_add(1, Ordering::Relaxed);
    Tally {
        failed_attempts,
        ..state.finish(Outcome::GaveUp(last_error))
    }
}

/// Counts numbered events until the connection ends (`Some`, why) or `stop` (`None`).
/// Walks what is already buffered first: a replay can arrive with the CONNECT answer.
async fn receive(
    mut session: Session,
    state: &mut State,
    stop: &mut watch::Receiver<bool>,
) -> Option<anyhow::Error> {
    loop {
        let mut replies = Replies::default();
        let walked = drain_frames(&mut session.buf, &mut replies, |packet| {
            if let Incoming::Numbered(n, offset) = packet {
                state.note(n, offset);
            }
        });
        if let Err(e) = walked {
            return Some(e);
        }
        if let Err(e) = session.reply(&replies).await {
            return Some(e);
        }
        if replies.closed {
            return Some(anyhow::anyhow!("server closed the session"));
        }
        if *stop.borrow() {
            return None;
        }
        tokio::select! {
            read = fill(&mut session.stream, &mut session.buf) => {
                if let Err(e) = read {
                    return Some(e);
                }
            }
            _ = stop.changed() => return None,
        }
    }
}
