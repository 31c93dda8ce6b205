//! Wiring: builds the Socket.IO server from the config (the namespace rules and their
//! hooks included), serves it beside the HTTP routes on one listener, and drains it —
//! sessions in paced batches, then HTTP connections and the hook queue — within a
//! deadline when told to stop.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use switchboard_cluster::{AdapterKind, Cluster};
use switchboard_engine::shutdown::{self, DrainPlan, ShutdownTrigger};
use switchboard_engine::{Io, Metrics, Shutdown};
use switchboard_hooks::StartError;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::AdminMetrics;
use crate::api::{ApiMetrics, BoundSite, SiteError};
use crate::config::{Config, MemoryLimit};
use crate::http::State;
use crate::rules::{self, Hooks, Installed};

/// How often the drain checks whether every session has closed. The engine exposes a
/// count, not a notification; 10 ms keeps the exit prompt at no measurable cost during
/// a drain bounded by the deadline.
const DRAIN_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Time kept at the end of the drain deadline, after the paced closes, for the last
/// closed sessions to flush (the engine gives a slow WebSocket 1 s) and then the hook
/// sink to deliver their disconnects; half the deadline when that is shorter. Before,
/// it was 1 s: sessions closed at the paced deadline could take all of it, and then
/// neither their disconnect hooks nor the sink's flush had any time.
const FLUSH_RESERVE: Duration = Duration::from_secs(2);

/// How long, past the drain deadline, the webhook sink may take to dead-letter what it
/// could not deliver (writing the dead-letter file).
const DEAD_LETTER_WAIT: Duration = Duration::from_secs(1);

/// A bound server, not yet serving.
#[derive(Debug)]
pub(crate) struct Server {
    listener: TcpListener,
    /// The API, health, metrics and static files.
    site: BoundSite,
    io: Io,
    /// Its queued writes to Redis are flushed by the drain.
    cluster: Cluster,
    /// The namespace rules' metrics and the hook sink, flushed during the drain.
    rules: Installed,
    /// Fired when `run`'s stop future resolves: readiness turns 503 while the sessions
    /// are closed in paced batches (the engine refuses new ones by itself).
    draining: ShutdownTrigger,
    /// Fired once the paced close is over; every session driver, the accept loop, the
    /// HTTP connections and the rules' timers observe its [`Shutdown`].
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    drain: DrainSettings,
}

/// `[shutdown]`: how the drain is paced and bounded.
#[derive(Debug, Clone, Copy)]
struct DrainSettings {
    batch: usize,
    interval: Duration,
    deadline: Duration,
}

impl DrainSettings {
    /// The engine's part of the drain: the paced closes, over the deadline less the
    /// [`FLUSH_RESERVE`].
    fn plan(&self) -> DrainPlan {
        let reserve = FLUSH_RESERVE.min(self.deadline / 2);
        DrainPlan {
            batch_size: self.batch,
            interval: self.interval,
            deadline: self.deadline - reserve,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BindError {
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The cluster could not start (`[cluster]`).
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] switchboard_cluster::ClusterError),
    /// The webhook sink could not start (TLS roots, dead-letter file).
    #[error("cannot start the webhook sink: {0}")]
    Hooks(#[from] StartError),
    /// The API listener or the static files directory (`api.listen`, `static.dir`).
    #[error(transparent)]
    Site(#[from] SiteError),
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Whether every session and HTTP connection closed, the hook sink flushed and
    /// the writes to Redis were sent before the deadline.
    pub(crate) in_time: bool,
    /// Sessions still open when the drain ended.
    pub(crate) sessions_left: usize,
    /// How long the drain took.
    pub(crate) took: Duration,
}

impl Server {
    /// Binds the listener and builds the server `config` describes.
    pub(crate) async fn bind(config: &Config) -> Result<Self, BindError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| BindError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let (trigger, shutdown) = shutdown::channel();
        let (draining, not_ready) = shutdown::channel();
        let hooks = Hooks::start(&config.hooks)?;
        // The cluster lives until the very end of the drain: sessions closed by it are
        // saved for recovery through it.
        let cluster = Cluster::start(&config.cluster.cluster, shutdown.clone())?;
        let (io, rules, admin) = build_io(config, shutdown.clone(), hooks, &cluster);
        let node = config
            .cluster
            .node_name
            .clone()
            .or_else(|| cluster.uid().map(str::to_owned))
            .unwrap_or_default();
        // The other nodes' questions (the API's diagnosis) are answered from this
        // node's reports and sockets, under this node's name.
        cluster.answer_nodes(node.clone(), crate::api::node_answerer(io.clone()));
        if cluster.adapter() != AdapterKind::Memory {
            let relay = relay_address(config, listener.local_addr().ok());
            match &relay {
                Some(address) => {
                    io.engine().set_relay_address(address);
                }
                None => tracing::warn!(
                    listen = %config.listen,
                    "no cluster.advertise_address and the listen address is unspecified: \
                     a WebSocket upgrade the load balancer sends to another node than its \
                     session's stays on polling (set cluster.advertise_address to this \
                     node's host:port on the nodes' network)"
                ),
            }
            tracing::info!(
                adapter = cluster.adapter().as_str(),
                redis = switchboard_cluster::redact_url(&config.cluster.cluster.redis_url),
                uid = cluster.uid().unwrap_or_default(),
                node,
                recovery = config.socketio.recovery.is_some(),
                relay_address = relay.as_deref().unwrap_or("(none)"),
                "joining the cluster"
            );
        }
        // `/metrics`: the engine's families, then the API's, the rules' and the
        // cluster's.
        let api_metrics = Arc::new(ApiMetrics::default());
        let mut state = State::new(io.clone(), not_ready)
            .with_collector(api_metrics.clone())
            .with_collector(Arc::new(rules.clone()))
            .with_patterns(rules.patterns())
            .with_cluster(cluster.clone(), node);
        if let Some(admin) = admin {
            state = state.with_collector(admin);
        }
        let site = BoundSite::bind(config, &io, state, api_metrics).await?;
        Ok(Server {
            listener,
            site,
            io,
            cluster,
            rules,
            draining,
            trigger,
            shutdown,
            drain: DrainSettings {
                batch: config.drain_batch,
                interval: config.drain_interval,
                deadline: config.drain_deadline,
            },
        })
    }

    /// The bound address (with the real port when the config asked for port 0).
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The API listener's address, when `api.listen` gives it one.
    pub(crate) fn api_addr(&self) -> io::Result<Option<SocketAddr>> {
        self.site.api_addr()
    }

    /// Serves until `stop` resolves, then drains: readiness turns 503 and handshakes
    /// are refused while the sessions are closed with "server shutting down" in paced
    /// batches (everything else keeps serving); then the listener stops accepting, and
    /// the drain waits for the sessions, in-flight HTTP responses and hooks, all within
    /// the deadline.
    pub(crate) async fn run(self, stop: impl Future<Output = ()>) -> io::Result<Drained> {
        let (alive, finished) = mpsc::channel(1);
        // Listener → engine path to the engine, every other request to the site.
        // An API connection may stall for the heartbeat's whole cycle, as the public
        // listener's may, but never less than 10 s: the heartbeat means nothing to an
        // API client, and a fast one (2 s + 2 s) would cut off a backend still reading
        // a large answer through a pause of its own.
        let engine = self.io.engine().config();
        let stall =
            (engine.ping_interval + engine.ping_timeout).max(switchboard_engine::MIN_USER_TIMEOUT);
        let site = self.site.start(self.shutdown.clone(), alive, stall);
        let mut accept = tokio::spawn(switchboard_engine::serve(
            self.listener,
            self.io.engine().clone(),
            site,
            self.shutdown,
        ));
        tokio::select! {
            () = stop => {}
            ended = &mut accept => {
                // The accept loop only returns after shutdown, so this is a panic.
                return Err(io::Error::other(format!("accept loop ended: {ended:?}")));
            }
        }
        self.draining.trigger();
        let hooks = self.rules.hooks().clone();
        let ends = Ends {
            accept,
            finished,
            trigger: &self.trigger,
            cluster: &self.cluster,
        };
        Ok(drain(&self.io, &hooks, ends, self.drain).await)
    }
}

/// What the drain ends once the sessions are closed, and then waits for.
struct Ends<'a> {
    /// The accept loop.
    accept: JoinHandle<io::Result<()>>,
    /// Closed once the last HTTP connection ended.
    finished: mpsc::Receiver<()>,
    /// Stops the accept loops, HTTP connections and session drivers.
    trigger: &'a ShutdownTrigger,
    /// Its writes to Redis (the sessions the drain closed, saved for recovery) are
    /// waited for.
    cluster: &'a Cluster,
}

/// Closes the sessions in paced batches, then stops everything else and waits, up to
/// `drain.deadline` in all, for every session to finish, then at once for the hook
/// sink to flush (disconnect hooks included), for the writes to Redis queued so far to
/// be sent, and for the accept loop to return and every HTTP connection to end. What the sink has not delivered by the deadline is
/// dead-lettered, within [`DEAD_LETTER_WAIT`] more.
///
/// The sink's flush does not wait for the connections: a client holds an HTTP
/// connection as long as it likes (an SSE stream it does not read, a request head or
/// body sent slowly), and before, the flush began only after the last one ended, so
/// such a client made the deadline pass with the flush not begun, and the disconnect
/// hooks still queued were lost without a dead letter or a log line.
async fn drain(io: &Io, hooks: &Hooks, ends: Ends<'_>, drain: DrainSettings) -> Drained {
    let started = Instant::now();
    let end = started + drain.deadline;
    let engine = io.engine();
    let Ends {
        accept,
        mut finished,
        trigger,
        cluster,
    } = ends;
    let sessions_closed = async {
        let report = engine.drain(drain.plan()).await;
        tracing::info!(
            batches = report.batches,
            paced = report.paced,
            at_deadline = report.at_deadline,
            relayed_upgrades_unfinished = report.relayed_upgrades_unfinished,
            "sessions closed"
        );
        trigger.trigger();
        // And the resumes under way: a session taken from the store for a client whose
        // connection the drain closed is saved again only when its resume ends.
        while engine.session_count() > 0 || io.resumes_in_flight() > 0 {
            tokio::time::sleep(DRAIN_POLL_INTERVAL).await;
        }
    };
    let sessions_in_time = tokio::time::timeout_at(end, sessions_closed).await.is_ok();
    // Already done unless the deadline cut the sessions' close short.
    trigger.trigger();
    // Every disconnect hook is queued now (those of sessions still closing at the
    // deadline aside).
    let flushed = async {
        if tokio::time::timeout_at(end, hooks.flush()).await.is_ok() {
            return true;
        }
        if !hooks.expire(DEAD_LETTER_WAIT).await {
            tracing::warn!("the webhook sink's dead letters were not all written in time");
        }
        false
    };
    let connections_ended = tokio::time::timeout_at(end, async {
        let _ = accept.await;
        // `None` once the last connection dropped its `Site`.
        let _ = finished.recv().await;
    });
    // The sessions closed were saved for their clients to resume elsewhere: written
    // only once the writer sends them, which the exit would cut short unseen.
    let written = async {
        let unsent = cluster.flush_writes(end).await;
        if unsent > 0 {
            tracing::warn!(
                unsent_bytes = unsent,
                "writes to redis still queued at the drain deadline (sessions saved for recovery among them) are lost"
            );
        }
        unsent == 0
    };
    let (flushed, connections, written) = tokio::join!(flushed, connections_ended, written);
    Drained {
        in_time: sessions_in_time && flushed && connections.is_ok() && written,
        sessions_left: engine.session_count(),
        took: started.elapsed(),
    }
}

/// The Socket.IO server with the configured namespaces and their rules, on `cluster`'s
/// adapter; its session ids carry the node's tag and polling requests for other nodes'
/// sessions are served through them.
fn build_io(
    config: &Config,
    shutdown: Shutdown,
    hooks: Hooks,
    cluster: &Cluster,
) -> (Io, Installed, Option<Arc<AdminMetrics>>) {
    let mut socketio = config.socketio.clone();
    socketio.engine.node_tag = cluster.node_tag();
    let io = Io::with_adapter(
        socketio,
        cluster.adapter_factory(),
        Arc::new(Metrics::default()),
        shutdown.clone(),
    );
    cluster.serve_forwarded(io.engine());
    let installed = rules::install(&io, config, hooks, &shutdown);
    // Token refreshes carry tokens: the Admin UI's live events leave their arguments out.
    let private_events = config
        .namespaces
        .iter()
        .filter_map(|rules| rules.auth.as_ref()?.refresh_event.clone())
        .collect();
    let admin = crate::admin::install(
        &io,
        &config.admin,
        private_events,
        cluster.admin_sessions(),
        &shutdown,
    );
    watch_memory(&io, config, shutdown);
    (io, installed, admin)
}

/// Starts the memory pressure tiers on the configured budget (`limits.memory`; the
/// cgroup's limit or 80 % of the RAM for `auto`), unless it is `off` or unknown.
fn watch_memory(io: &Io, config: &Config, shutdown: Shutdown) {
    use switchboard_engine::pressure::{self, PressureConfig};
    let budget = match config.limits.memory {
        MemoryLimit::Off => None,
        MemoryLimit::Bytes(n) => Some(n),
        MemoryLimit::Auto => pressure::default_budget(),
    };
    let Some(budget) = budget else {
        tracing::info!("no memory budget: the memory pressure tiers are off");
        return;
    };
    let rss = pressure::rss_bytes().unwrap_or(0);
    tracing::info!(
        budget = %switchboard_engine::diagnosis::bytes(usize::try_from(budget).unwrap_or(usize::MAX)),
        rss = %switchboard_engine::diagnosis::bytes(usize::try_from(rss).unwrap_or(usize::MAX)),
        "memory budget"
    );
    let config = PressureConfig {
        budget,
        interval: config.limits.memory_interval,
    };
    io.watch_memory(config, pressure::rss_bytes, shutdown);
}

/// Where the other nodes reach this one to relay WebSocket upgrades: the configured
/// `cluster.advertise_address`, else the bound listen address unless it is unspecified
/// (`0.0.0.0`, `::`: which of the host's addresses the others can reach is unknown).
fn relay_address(config: &Config, bound: Option<SocketAddr>) -> Option<String> {
    if let Some(address) = &config.cluster.advertise_address {
        return Some(address.clone());
    }
    bound
        .filter(|a| !a.ip().is_unspecified())
        .map(|a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NamespaceRules;

    #[tokio::test]
    async fn stop_drains_at_once_without_sessions() -> anyhow::Result<()> {
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            ..Config::default()
        };
        let server = Server::bind(&config).await?;
        let drained = server.run(async {}).await?;
        assert!(drained.in_time);
        assert_eq!(drained.sessions_left, 0);
        Ok(())
    }

    #[test]
    fn the_relay_address_is_the_advertised_one_else_a_specific_listen_address() {
        let bound = |s: &str| s.parse::<SocketAddr>().ok();
        let mut config = Config::default();
        assert_eq!(
            relay_address(&config, bound("10.0.0.7:3000")).as_deref(),
            Some("10.0.0.7:3000")
        );
        assert_eq!(relay_address(&config, bound("0.0.0.0:3000")), None);
        assert_eq!(relay_address(&config, bound("[::]:3000")), None);
        config.cluster.advertise_address = Some("node-2.internal:3000".into());
        assert_eq!(
            relay_address(&config, bound("0.0.0.0:3000")).as_deref(),
            Some("node-2.internal:3000")
        );
    }

    #[test]
    fn the_paced_drain_leaves_time_to_flush_before_the_deadline() {
        let settings = |ms| DrainSettings {
            batch: 500,
            interval: Duration::from_millis(50),
            deadline: Duration::from_millis(ms),
        };
        let paced = |ms| settings(ms).plan().deadline.as_millis();
        assert_eq!(paced(10_000), 8_000, "2 s kept for the last flushes");
        assert_eq!(paced(3_000), 1_500, "half of a short deadline");
        assert_eq!(paced(0), 0, "no deadline: everything closes at once");
        let plan = settings(10_000).plan();
        assert_eq!(
            (plan.batch_size, plan.interval),
            (500, Duration::from_millis(50))
        );
    }

    #[tokio::test]
    async fn configured_namespaces_exist() -> anyhow::Result<()> {
        let config = Config {
            namespaces: vec![
                NamespaceRules::open("/chat"),
                NamespaceRules::open("/orders"),
            ],
            ..Config::default()
        };
        let cluster = Cluster::start(&config.cluster.cluster, Shutdown::never())?;
        let (io, _rules, _admin) = build_io(&config, Shutdown::never(), Hooks::none(), &cluster);
        let mut names: Vec<String> = io
            .namespaces()
            .iter()
            .map(|n| n.name().to_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["/", "/chat", "/orders"]);
        Ok(())
    }
}
