//! A fleet of receiving clients: opened quickly with bounded concurrency, each joined to
//! its rooms, each then running the receive loop until the fleet is dropped. Receiver `i`
//! connects to node `i % nodes` of the target, so a cluster's receivers are spread evenly
//! and every room of consecutive receivers spans the nodes. Receivers are Socket.IO
//! clients over WebSocket, or Server-Sent Events listeners ([`Transport`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use serde::{Deserialize, Serialize};

use crate::client::Session;
use crate::net::SourcePool;
use crate::progress::Progress;
use crate::scenarios::Target;
use crate::sio::Dialect;
use crate::sse::Listener;
use crate::stats::{Group, Stats};

/// Connection setups in flight at once: enough to open thousands per second, few enough
/// not to overflow a server's listen backlog (Node's default is 511).
const CONNECT_CONCURRENCY: usize = 256;
/// Time one connection gets for its TCP, WebSocket, Engine.IO, Socket.IO and join steps.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts per connection before the fleet counts it as failed.
const SETUP_ATTEMPTS: usize = 3;

/// Which rooms receiver `i` joins.
pub(crate) type RoomsOf = Arc<dyn Fn(usize) -> Vec<String> + Send + Sync>;

/// How a fleet's receivers reach the server and join their rooms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    /// Socket.IO over WebSocket (`/socket.io/?EIO=4&transport=websocket`), answering
    /// pings; rooms joined with the `join` event, each acked.
    WebSocket,
    /// A Server-Sent Events stream (`GET /sse?nsp=/&room=…`, `switchboard serve` only):
    /// rooms named in the request, nothing sent after it.
    Sse,
}

impl Transport {
    /// How reports and progress bars name it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "WebSocket",
            Transport::Sse => "SSE",
        }
    }
}

/// One receiver, set up and ready to count deliveries.
enum Receiver {
    /// A Socket.IO client.
    WebSocket(Session),
    /// An SSE listener.
    Sse(Listener),
}

impl Receiver {
    /// Counts deliveries until the connection ends.
    async fn receive(self, stats: &Stats, lane: (Group, usize)) -> anyhow::Result<()> {
        match self {
            Receiver::WebSocket(session) => session.receive(stats, lane).await,
            Receiver::Sse(listener) => listener.receive(stats, lane).await,
        }
    }
}

/// Receiving clients of one scenario; dropping the fleet closes them all.
pub(crate) struct Fleet {
    /// The nodes the clients talk to (one for a single server, never empty); the first
    /// is the publisher's.
    nodes: Vec<SocketAddr>,
    /// Source addresses for outgoing connections.
    pool: Arc<SourcePool>,
    /// How the server joins rooms and delivers.
    dialect: Dialect,
    /// How receivers connect.
    transport: Transport,
    /// Counters shared by every receiver.
    stats: Arc<Stats>,
    /// One task per connection: its receive loop.
    tasks: JoinSet<anyhow::Result<()>>,
    /// Connections opened so far (also the next receiver index).
    opened: usize,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("nodes", &self.nodes)
            .field("opened", &self.opened)
            .finish()
    }
}

impl Fleet {
    /// An empty fleet of Socket.IO clients aimed at `target`.
    pub(crate) fn new(target: &Target, stats: Arc<Stats>) -> Fleet {
        Fleet {
            nodes: if target.nodes.is_empty() {
                vec![target.addr]
            } else {
                target.nodes.clone()
            },
            pool: target.pool.clone(),
            dialect: target.dialect,
            transport: Transport::WebSocket,
            stats,
            tasks: JoinSet::new(),
            opened: 0,
        }
    }

    /// The same fleet, its receivers connecting over `transport` (before any is opened).
    pub(crate) fn over(self, transport: Transport) -> Fleet {
        Fleet { transport, ..self }
    }

    /// Connections opened so far.
    pub(crate) fn len(&self) -> usize {
        self.opened
    }

    /// Opens `count` more receivers, each joining `rooms_of(index)` on node `index %
    /// nodes`; fails if any connection could not be set up after retries.
    pub(crate) async fn grow(
        &mut self,
        count: usize,
        rooms_of: RoomsOf,
        label: &str,
    ) -> anyhow::Result<()> {
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let (ready_tx, mut ready_rx) = mpsc::channel(CONNECT_CONCURRENCY);
        for index in self.opened..self.opened + count {
            let node = index % self.nodes.len();
            let group = if node == 0 {
                Group::SameNode
            } else {
                Group::OtherNode
            };
            let setup = Setup {
                target: self.nodes[node],
                pool: self.pool.clone(),
                dialect: self.dialect,
                transport: self.transport,
                gate: gate.clone(),
                rooms: rooms_of(index),
            };
            let (stats, ready) = (self.stats.clone(), ready_tx.clone());
            self.tasks.spawn(async move {
                let session = setup.run().await;
                let ok = session.as_ref().map(|_| ()).map_err(|e| format!("{e:#}"));
                let _ = ready.send(ok).await;
                drop(ready);
                session?.receive(&stats, (group, index)).await
            });
        }
        drop(ready_tx);
        self.opened += count;
        let progress = Progress::new(label, count as u64);
        let mut first_error = None;
        let mut failed = 0;
        for _ in 0..count {
            let Some(result) = ready_rx.recv().await else {
                break;
            };
            progress.inc();
            if let Err(e) = result {
                failed += 1;
                first_error.get_or_insert(e);
            }
        }
        progress.finish();
        match first_error {
            Some(e) => bail!("{failed} of {count} connections failed; first: {e}"),
            None => Ok(()),
        }
    }

    /// Receivers whose connection ended (server closed it or it failed) so far.
    pub(crate) fn lost(&mut self) -> usize {
        while self.tasks.try_join_next().is_some() {}
        self.opened - self.tasks.len()
    }
}

/// Everything one connection setup needs.
struct Setup {
    /// Server address.
    target: SocketAddr,
    /// Source addresses.
    pool: Arc<SourcePool>,
    /// How the server joins rooms.
    dialect: Dialect,
    /// How to connect.
    transport: Transport,
    /// Bounds concurrent setups.
    gate: Arc<Semaphore>,
    /// Rooms to join.
    rooms: Vec<String>,
}

impl Setup {
    /// Opens the session and joins its rooms, retrying a few times.
    async fn run(self) -> anyhow::Result<Receiver> {
        let _permit = self.gate.acquire().await.context("setup gate closed")?;
        let mut last = None;
        for _ in 0..SETUP_ATTEMPTS {
            match tokio::time::timeout(SETUP_TIMEOUT, self.attempt()).await {
                Ok(Ok(session)) => return Ok(session),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(anyhow::anyhow!("setup timed out after {SETUP_TIMEOUT:?}")),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt made")))
    }

    /// One attempt: connect, handshake, join (an SSE listener names its rooms in its
    /// request).
    async fn attempt(&self) -> anyhow::Result<Receiver> {
        if self.transport == Transport::Sse {
            let listener = Listener::open(&self.pool, self.target, &self.rooms, self.dialect);
            return Ok(Receiver::Sse(listener.await?));
        }
        let mut session = Session::open(&self.pool, self.target, self.dialect).await?;
        for room in &self.rooms {
            session.join(room).await?;
        }
        Ok(Receiver::WebSocket(session))
    }
}
