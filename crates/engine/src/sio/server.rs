//! [`Io`]: the Socket.IO server. Owns the namespaces and the Engine.IO server, and is
//! the API a Rust application embeds.

use crate::untrusted::Untrusted;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use http::{Request, Response};

use crate::adapter::{AdapterFactory, memory_factory};
use crate::config::SocketIoConfig;
use crate::eio::server::RequestBody;
use crate::eio::{Body, EngineHandler, EngineServer, Session, SessionHandler};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

use super::client::Client;
use super::namespace::{Handlers, Namespace};

type Matcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Longest namespace name a pattern may create, in bytes. Each such name is a key of
/// the namespace registry, a label on `/metrics` and part of the cluster's Redis
/// channel names, and any client may choose it; real names (`/tenant-8f3a…`) are far
/// shorter.
pub const MAX_PATTERN_NAMESPACE_LEN: usize = 128;

/// `name` with its leading `/`.
fn absolute(name: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("/{name}")
    }
}

/// Whether a client may create the namespace `name` through a pattern: at most
/// [`MAX_PATTERN_NAMESPACE_LEN`] bytes, no control character, and none of
/// `* ? [ ] \ #`, which Redis channel patterns read as globs and the cluster's channel
/// names (`socket.io#/nsp#room#`) as separators. Otherwise a node would subscribe to
/// `socket.io#/tenant-*#*` and hear every tenant's broadcasts.
pub fn is_valid_pattern_namespace(name: &str) -> bool {
    name.len() <= MAX_PATTERN_NAMESPACE_LEN
        && name.starts_with('/')
        && !name
            .chars()
            .any(|c| c.is_control() || matches!(c, '*' | '?' | '[' | ']' | '\\' | '#'))
}

/// State shared by the server handle, connections and namespaces.
pub(crate) struct IoInner {
    pub(crate) config: SocketIoConfig,
    /// Namespaces by name, declared ones and those patterns created. Read on every
    /// CONNECT; written when one is created or removed. Lock order: this lock, then a
    /// namespace's socket lock.
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    /// Patterns that create namespaces on first use, with their shared handlers.
    dynamic: RwLock<Vec<(Matcher, Arc<Handlers>)>>,
    /// Namespaces in the registry that patterns created (declared ones excluded): at
    /// most `config.max_pattern_namespaces`. Changed under the registry's write lock.
    pattern_count: AtomicUsize,
    /// Emptied pattern namespaces waiting out their recovery window, the one whose
    /// window ends first first: what the sweeper removes, and those a new one may
    /// replace at the cap. Lock order: the registry, then this, then a namespace's
    /// `idle_key`.
    idle: Mutex<IdleIndex>,
    /// Wakes the sweeper when a namespace's window ends before those it waits for.
    sweep_wake: Arc<tokio::sync::Notify>,
    /// Ends the sweeper.
    shutdown: Shutdown,
    /// What the recovery buffers of every namespace hold together
    /// (`recovery.max_total_bytes`).
    recovery_budget: Arc<super::recovery::RecoveryBudget>,
    metrics: Arc<Metrics>,
    adapters: AdapterFactory,
    /// The last disconnects of this node, explained.
    pub(crate) reports: crate::diagnosis::Reports,
    /// The node's steps that belong on every socket's timeline (memory pressure
    /// changes): kept once here, merged into each timeline when it is read.
    node_trail: Mutex<crate::breadcrumbs::Trail>,
    /// Told of every memory pressure transition (the binary's hooks).
    pub(crate) pressure_listeners: Listeners<crate::pressure::Change>,
    /// Told of every refusal reported (the binary's hooks).
    refusal_listeners: Listeners<Arc<crate::diagnosis::Report>>,
    /// Told what sockets do, when a tool watches (see [`super::Observer`]).
    observer: std::sync::OnceLock<Arc<dyn super::Observer>>,
    /// The engine's budget of bytes on their way in (`engine.max_inbound_bytes`): a
    /// packet waiting for its binary attachments is one of them. Set once the engine
    /// exists.
    pub(crate) inbound: std::sync::OnceLock<Arc<crate::eio::inbound::InboundBudget>>,
    /// Reads of the durable event log under way for replays
    /// ([`super::client::MAX_LOG_READS`] permits).
    pub(crate) log_reads: tokio::sync::Semaphore,
    /// Resumes from the cluster's session store under way (see
    /// [`Io::resumes_in_flight`]).
    pub(crate) resumes: AtomicUsize,
}

/// Every namespace's recovery buffer drops what outlived the recovery window every
/// quarter of it (between 1 and 30 s), until the server is dropped or shut down:
/// otherwise a namespace expired what it held only on its own traffic, and a quiet
/// one kept its dead sessions and packets, charged to `recovery.max_total_bytes`
/// that every namespace shares, for ever (a few quiet namespaces could fill it and
/// leave the others keeping nothing).
fn spawn_recovery_expiry(
    inner: &Arc<IoInner>,
    window: std::time::Duration,
    runtime: &tokio::runtime::Handle,
) {
    let every = (window / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(30),
    );
    let io = Arc::downgrade(inner);
    let shutdown = inner.shutdown.clone();
    runtime.spawn(async move {
        let mut ticker = tokio::time::interval(every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = shutdown.wait() => return,
            }
            let Some(io) = io.upgrade() else { return };
            let now = crate::eio::session::now();
            let buffers: Vec<_> = io
                .registry()
                .values()
                .filter(|ns| ns.recovery().is_some())
                .cloned()
                .collect();
            drop(io);
            for ns in buffers {
                if let Some(buffer) = ns.recovery() {
                    buffer.expire_now(now);
                }
                tokio::task::yield_now().await;
            }
        }
    });
}

/// One resume from the session store under way, counted in
/// [`IoInner::resumes`] until dropped.
pub(crate) struct ResumeInFlight(Arc<IoInner>);

impl ResumeInFlight {
    pub(crate) fn new(io: &Arc<IoInner>) -> Self {
        io.resumes.fetch_add(1, Ordering::AcqRel);
        ResumeInFlight(io.clone())
    }
}

impl Drop for ResumeInFlight {
    fn drop(&mut self) {
        self.0.resumes.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Callbacks told of one kind of event, in the order they were added, from the task
/// where it happens (keep them quick). Telling works on a copy of the list, so a
/// callback may add another.
pub(crate) struct Listeners<E>(Mutex<Vec<Listener<E>>>);

/// One callback of [`Listeners`].
type Listener<E> = Arc<dyn Fn(&E) + Send + Sync>;

impl<E> Default for Listeners<E> {
    fn default() -> Self {
        Listeners(Mutex::default())
    }
}

impl<E> Listeners<E> {
    pub(crate) fn add(&self, listener: impl Fn(&E) + Send + Sync + 'static) {
        lock(&self.0).push(Arc::new(listener));
    }

    pub(crate) fn tell(&self, event: &E) {
        let listeners = lock(&self.0).clone();
        for listener in listeners {
            listener(event);
        }
    }
}

/// Node steps kept for the timelines.
const NODE_STEPS: usize = 16;

/// Where an emptied pattern namespace is in the [`IdleIndex`]: when its recovery
/// window ends, and a number that tells apart namespaces whose windows end together.
pub(crate) type IdleKey = (tokio::time::Instant, u64);

/// Emptied pattern namespaces in the order their recovery windows end. Every namespace
/// has the server's one window, counted from its last socket's departure, so this is
/// also the order they emptied in: the sweeper ([`IoInner::sweep`]) removes from the
/// front as windows end, and at the cap the front makes room for a new namespace
/// ([`IoInner::evict_idle`]). Each namespace is in it at most once, under the key kept
/// in its `idle_key`; a CONNECT takes it out, its next emptying puts it back with a
/// new key.
#[derive(Default)]
struct IdleIndex {
    /// Keys given so far (the second half of a key).
    given: u64,
    by_deadline: BTreeMap<IdleKey, Weak<Namespace>>,
    /// The sweeper task while one runs: from the first listing until it finds the
    /// index empty.
    sweeper: Option<tokio::task::AbortHandle>,
}

/// Namespaces the sweeper removes per hold of the registry's write lock, so that
/// thousands of windows ending together never keep CONNECTs waiting long.
const SWEEP_BATCH: usize = 256;

/// Why a CONNECT found no namespace to join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreserved {
    /// No namespace has the name, and no pattern creates it.
    Unknown,
    /// A pattern would create it, but `max_pattern_namespaces` exist and none of them
    /// is idle.
    Full,
}

impl IoInner {
    /// The engine's counters.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The node's steps, oldest first.
    pub(crate) fn node_crumbs(&self) -> Vec<crate::breadcrumbs::Crumb> {
        let trail = lock(&self.node_trail);
        trail.crumbs().cloned().collect()
    }

    /// Reports a refused handshake or CONNECT (counted by the caller), within the
    /// refusal reports' rate: the log line, the ring, the listeners.
    pub(crate) fn refused(&self, refusal: crate::diagnosis::Refusal) {
        if !self.reports.admit_refusal(crate::eio::session::now()) {
            return;
        }
        let report = Arc::new(crate::diagnosis::Report::refused(refusal));
        tracing::debug!(
            stage = %report.reason.as_str(), namespace = %Untrusted(&report.namespace),
            transport = %report.transport, category = %report.diagnosis.category,
            evidence = %report.diagnosis.evidence.join("; "), "connection refused"
        );
        self.reports.push_refusal(report.clone());
        self.refusal_listeners.tell(&report);
    }

    /// The observer, if one watches.
    pub(crate) fn observer(&self) -> Option<&Arc<dyn super::Observer>> {
        self.observer.get()
    }

    /// Records a step on every socket's timeline.
    pub(crate) fn node_step(&self, step: crate::breadcrumbs::Step) {
        let mut trail = lock(&self.node_trail);
        trail.push(crate::breadcrumbs::Crumb::now(step), NODE_STEPS);
    }
}

impl std::fmt::Debug for IoInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IoInner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A connection being accepted into a namespace: keeps the namespace (one a pattern
/// created) from being removed until the socket is refused, or registered and its
/// connection handlers done. Dropping it lets the namespace go if nothing else holds
/// it.
#[derive(Debug)]
pub(crate) struct Reservation {
    io: Arc<IoInner>,
    ns: Arc<Namespace>,
}

impl Reservation {
    pub(crate) fn namespace(&self) -> &Arc<Namespace> {
        &self.ns
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.ns.sub_pending() {
            self.io.release(&self.ns);
        }
    }
}

impl IoInner {
    fn registry(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Namespace>>> {
        self.namespaces.read().unwrap_or_else(|e| e.into_inner())
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Namespace>>> {
        self.namespaces.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The handlers of the first pattern that accepts `name`.
    fn pattern_for(&self, name: &str) -> Option<Arc<Handlers>> {
        self.dynamic
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(matches, _)| matches(name))
            .map(|(_, h)| h.clone())
    }

    /// Reserves the namespace `name` for a CONNECT: an existing one, or one created
    /// from a matching pattern when `name` is valid ([`is_valid_pattern_namespace`]).
    /// A created namespace is not listed and its adapter not initialised until a
    /// connection is accepted; `None`: no such namespace.
    ///
    /// At `max_pattern_namespaces` pattern namespaces, creating one first removes the
    /// one emptied longest ago ([`IoInner::evict_idle`]); with none idle it is refused.
    pub(crate) fn reserve(self: &Arc<Self>, name: &str) -> Result<Reservation, Unreserved> {
        if let Some(ns) = self.registry().get(name) {
            // Under the registry lock: `release` cannot decide meanwhile.
            ns.add_pending();
            self.unlist_idle(ns);
            return Ok(Reservation {
                io: self.clone(),
                ns: ns.clone(),
            });
        }
        if !is_valid_pattern_namespace(name) {
            return Err(Unreserved::Unknown);
        }
        let handlers = self.pattern_for(name).ok_or(Unreserved::Unknown)?;
        let mut map = self.registry_mut();
        let ns = match map.get(name) {
            Some(ns) => ns.clone(),
            None => {
                let full = self.pattern_count.load(Ordering::Relaxed)
                    >= self.config.max_pattern_namespaces;
                if full && !self.evict_idle(&mut map) {
                    return Err(Unreserved::Full);
                }
                let ns = self.build(name, handlers, true, true);
                map.insert(name.to_owned(), ns.clone());
                self.pattern_count.fetch_add(1, Ordering::Relaxed);
                ns
            }
        };
        ns.add_pending();
        self.unlist_idle(&ns);
        Ok(Reservation {
            io: self.clone(),
            ns,
        })
    }

    /// Lists `ns`, a pattern namespace that may just have emptied, among those waiting
    /// out their recovery `window`; once, and only if it is idle. Its window ends
    /// `window` after its last socket left. Starts the sweeper if none runs, or wakes
    /// it when this window ends before every other listed one.
    fn list_idle(
        self: &Arc<Self>,
        ns: &Arc<Namespace>,
        window: Duration,
        runtime: &tokio::runtime::Handle,
    ) {
        let mut idle = lock(&self.idle);
        let mut listed = lock(&ns.idle_key);
        if listed.is_some() || !ns.is_idle() {
            return;
        }
        idle.given += 1;
        let key = (
            tokio::time::Instant::now() + ns.window_left(window),
            idle.given,
        );
        *listed = Some(key);
        drop(listed);
        let first = idle
            .by_deadline
            .first_key_value()
            .is_none_or(|(front, _)| key < *front);
        idle.by_deadline.insert(key, Arc::downgrade(ns));
        match idle.sweeper {
            None => idle.sweeper = Some(self.spawn_sweeper(runtime)),
            Some(_) if first => self.sweep_wake.notify_one(),
            Some(_) => {}
        }
    }

    /// Takes `ns` off that list: a CONNECT reserved it, or it goes.
    fn unlist_idle(&self, ns: &Namespace) {
        if lock(&ns.idle_key).is_none() {
            // Not listed (a listing racing with a CONNECT may slip past this; the
            // sweeper and the eviction check what they take).
            return;
        }
        let mut idle = lock(&self.idle);
        if let Some(key) = lock(&ns.idle_key).take() {
            idle.by_deadline.remove(&key);
        }
    }

    /// Takes the front of the list (whose window ends first) if `due` says yes to its
    /// deadline; `None` when the list is empty or the answer is no. The namespace is
    /// off the list once taken (its next emptying lists it again); a namespace already
    /// dropped comes back as `Some(None)`.
    fn take_front(
        &self,
        due: impl FnOnce(tokio::time::Instant) -> bool,
    ) -> Option<Option<Arc<Namespace>>> {
        let mut idle = lock(&self.idle);
        let (key, _) = idle.by_deadline.first_key_value()?;
        if !due(key.0) {
            return None;
        }
        let (key, listed) = idle.by_deadline.pop_first()?;
        let ns = listed.upgrade();
        if let Some(ns) = &ns {
            let mut current = lock(&ns.idle_key);
            if *current == Some(key) {
                *current = None;
            }
        }
        Some(ns)
    }

    /// Whether `ns` is the registry's namespace of its name, created from a pattern and
    /// idle: one the sweeper or the cap may remove (under the registry's write lock,
    /// where idleness cannot end).
    fn is_removable_now(map: &HashMap<String, Arc<Namespace>>, ns: &Arc<Namespace>) -> bool {
        map.get(ns.name()).is_some_and(|c| Arc::ptr_eq(c, ns)) && ns.removable() && ns.is_idle()
    }

    /// Makes room for one more pattern namespace: removes, from the registry `map`
    /// (its write lock), the idle namespace that emptied longest ago. Its kept
    /// sessions go with it, so those clients come back `recovered: false`, as when
    /// `recovery.max_sessions` drops the oldest session. False when none is idle.
    fn evict_idle(&self, map: &mut HashMap<String, Arc<Namespace>>) -> bool {
        loop {
            let Some(taken) = self.take_front(|_| true) else {
                return false;
            };
            let Some(ns) = taken else { continue };
            if Self::is_removable_now(map, &ns) {
                self.take_out(map, &ns);
                self.metrics
                    .namespaces_evicted
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(nsp = %Untrusted(ns.name()), "emptied namespace removed to make room (socketio.max_pattern_namespaces)");
                return true;
            }
        }
    }

    /// Removes `ns`, a pattern namespace, from the registry `map` (its write lock) and
    /// closes its adapter.
    ///
    /// The adapter is closed under the registry lock: a namespace of the same name
    /// created next is initialised after it, so a cluster adapter's unsubscribe never
    /// overtakes the new namespace's subscribe.
    fn take_out(&self, map: &mut HashMap<String, Arc<Namespace>>, ns: &Arc<Namespace>) {
        map.remove(ns.name());
        self.pattern_count.fetch_sub(1, Ordering::Relaxed);
        self.unlist_idle(ns);
        if ns.is_active() {
            ns.adapter().close(ns);
        }
    }

    /// A namespace `name`; with the server's connection state recovery when
    /// `recovery` (and the server has it).
    fn build(
        &self,
        name: &str,
        handlers: Arc<Handlers>,
        removable: bool,
        recovery: bool,
    ) -> Arc<Namespace> {
        Namespace::new(
            name.to_owned(),
            handlers,
            (self.adapters)(name),
            self.config
                .recovery
                .filter(|_| recovery)
                .map(|config| (config, self.recovery_budget.clone())),
            removable,
        )
    }

    /// The namespace `name`, declared for the server's lifetime (created if needed,
    /// with a matching pattern's handlers if one accepts it, and with recovery when
    /// `recovery`; one that exists keeps what it has).
    fn declare(&self, name: &str, recovery: bool) -> Arc<Namespace> {
        let ns = {
            let mut map = self.registry_mut();
            if let Some(ns) = map.get(name) {
                if ns.removable() {
                    ns.make_permanent();
                    self.pattern_count.fetch_sub(1, Ordering::Relaxed);
                    self.unlist_idle(ns);
                }
                ns.clone()
            } else {
                let handlers = self.pattern_for(name).unwrap_or_default();
                let ns = self.build(name, handlers, false, recovery);
                map.insert(name.to_owned(), ns.clone());
                ns
            }
        };
        ns.activate();
        ns
    }

    /// A namespace created from a pattern may have become idle: remove it now, or,
    /// with connection state recovery, list it for the sweeper, which removes it once
    /// the window from its last socket's departure is over (a client coming back
    /// within the window finds its session).
    ///
    /// One sweeper per server waits for every emptied namespace, so sockets coming and
    /// going never pile up timers, and a namespace used again leaves the list and
    /// comes back with the window of its new emptying.
    pub(crate) fn release(self: &Arc<Self>, ns: &Arc<Namespace>) {
        if !ns.removable() {
            return;
        }
        let window = ns.recovery_window().filter(|_| ns.is_active());
        match (window, tokio::runtime::Handle::try_current()) {
            // Not empty: the last to leave releases it.
            (Some(_), Ok(_)) if !ns.is_idle() => {}
            (Some(window), Ok(runtime)) => self.list_idle(ns, window, &runtime),
            _ => self.remove_if_idle(ns),
        }
    }

    /// Starts the sweeper: it sleeps until the first listed window ends (or a listing
    /// ends before it), removes the namespaces whose windows are over, and ends when
    /// the list is empty, the server is dropped, or shutdown is signalled.
    fn spawn_sweeper(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
    ) -> tokio::task::AbortHandle {
        let io = Arc::downgrade(self);
        let wake = self.sweep_wake.clone();
        let shutdown = self.shutdown.clone();
        let task = runtime.spawn(async move {
            loop {
                let Some(next) = io.upgrade().and_then(|io| io.next_deadline()) else {
                    return;
                };
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    () = wake.notified() => continue,
                    () = shutdown.wait() => return,
                }
                let Some(io) = io.upgrade() else { return };
                while io.sweep() {
                    tokio::task::yield_now().await;
                }
            }
        });
        task.abort_handle()
    }

    /// When the first listed window ends; `None` (and the sweeper is done) when no
    /// namespace is listed.
    fn next_deadline(&self) -> Option<tokio::time::Instant> {
        let mut idle = lock(&self.idle);
        let next = idle.by_deadline.first_key_value().map(|(key, _)| key.0);
        if next.is_none() {
            idle.sweeper = None;
        }
        next
    }

    /// Removes listed namespaces whose window is over, up to [`SWEEP_BATCH`] under one
    /// hold of the registry lock (so no CONNECT reserves one meanwhile); true when
    /// more may be due. A taken namespace in use again is left off the list (its next
    /// emptying lists it); one a socket left since it was listed is listed again with
    /// its new window.
    fn sweep(self: &Arc<Self>) -> bool {
        let now = tokio::time::Instant::now();
        let mut map = self.registry_mut();
        for _ in 0..SWEEP_BATCH {
            let Some(taken) = self.take_front(|deadline| deadline <= now) else {
                return false;
            };
            let Some(ns) = taken else { continue };
            let Some(window) = ns.recovery_window() else {
                continue;
            };
            if !Self::is_removable_now(&map, &ns) {
                continue;
            }
            if ns.window_left(window).is_zero() {
                self.take_out(&mut map, &ns);
                tracing::debug!(nsp = %Untrusted(ns.name()), "empty namespace removed after its recovery window");
            } else if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                self.list_idle(&ns, window, &runtime);
            }
        }
        true
    }

    /// Removes `ns` from the registry if it is still there and idle, then closes its
    /// adapter. Race-free with a CONNECT: a socket is only registered by a connection
    /// that reserved the namespace, and reserving takes the registry lock held here.
    fn remove_if_idle(&self, ns: &Arc<Namespace>) {
        let mut map = self.registry_mut();
        if Self::is_removable_now(&map, ns) {
            self.take_out(&mut map, ns);
            drop(map);
            tracing::debug!(nsp = %Untrusted(ns.name()), "empty namespace removed");
        }
    }
}

impl Drop for IoInner {
    fn drop(&mut self) {
        if let Some(sweeper) = lock(&self.idle).sweeper.take() {
            sweeper.abort();
        }
    }
}

/// Locks `mutex`, whose data stays consistent even if a holder panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates a [`Client`] for each new connection and closes connections that join no
/// namespace within `connect_timeout`. Holds the server state strongly: the engine
/// keeps the namespaces alive even when the embedder drops its [`Io`] handle.
struct Handler(Arc<IoInner>);

impl EngineHandler for Handler {
    fn on_open(&self, session: &Arc<Session>) -> Arc<dyn SessionHandler> {
        let io = self.0.clone();
        // Checked by the session's driver: no timer task per connection.
        session.set_app_deadline(Some(crate::eio::session::now() + io.config.connect_timeout));
        let client = Client::new(io);
        Arc::new(client)
    }

    fn on_refused(&self, refusal: crate::diagnosis::Refusal) {
        self.0.refused(refusal);
    }
}

/// A Socket.IO server.
///
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use switchboard_engine::{Io, SocketIoConfig, shutdown};
/// let (_trigger, signal) = shutdown::channel();
/// let io = Io::new(SocketIoConfig::default(), signal.clone());
/// io.of("/").on("message", |mut ev| {
///     let args = ev.payload.clone();
///     if let Some(ack) = ev.take_ack() { let _ = ack.send(args); }
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// switchboard_engine::serve(listener, io.engine().clone(), switchboard_engine::not_found, signal).await
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Io {
    inner: Arc<IoInner>,
    engine: Arc<EngineServer>,
}

impl Io {
    /// A server with in-memory rooms (one node). Namespace `/` exists from the start;
    /// other namespaces exist once [`Io::of`] or [`Io::of_matching`] declares them.
    pub fn new(config: SocketIoConfig, shutdown: Shutdown) -> Self {
        Io::with_adapter(
            config,
            memory_factory(),
            Arc::new(Metrics::default()),
            shutdown,
        )
    }

    /// A server with a custom adapter and a shared metrics registry.
    pub fn with_adapter(
        config: SocketIoConfig,
        adapters: AdapterFactory,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Self {
        let engine_config = config.engine.clone();
        let reports = crate::diagnosis::Reports::new(config.max_disconnect_reports);
        let recovery_budget = super::recovery::RecoveryBudget::counting(
            config.recovery.map_or(0, |r| r.max_total_bytes),
            metrics.recovery_bytes.clone(),
        );
        let inner = Arc::new(IoInner {
            config,
            namespaces: RwLock::default(),
            dynamic: RwLock::default(),
            pattern_count: AtomicUsize::new(0),
            idle: Mutex::default(),
            sweep_wake: Arc::default(),
            shutdown: shutdown.clone(),
            recovery_budget,
            metrics: metrics.clone(),
            adapters,
            reports,
            node_trail: Mutex::default(),
            pressure_listeners: Listeners::default(),
            refusal_listeners: Listeners::default(),
            observer: std::sync::OnceLock::new(),
            inbound: std::sync::OnceLock::new(),
            log_reads: tokio::sync::Semaphore::new(super::client::MAX_LOG_READS),
            resumes: AtomicUsize::new(0),
        });
        let handler = Arc::new(Handler(inner.clone()));
        let engine = EngineServer::new(engine_config, handler, metrics, shutdown);
        let _ = inner.inbound.set(engine.inbound().clone());
        // The main namespace always exists, as in Node (`io.sockets`).
        inner.declare("/", true);
        if let (Some(recovery), Ok(runtime)) = (
            inner.config.recovery.as_ref(),
            tokio::runtime::Handle::try_current(),
        ) {
            spawn_recovery_expiry(&inner, recovery.max_disconnection_duration, &runtime);
        }
        Io { inner, engine }
    }

    /// The namespace `name`, created if needed. It lives as long as the server, even
    /// when a pattern also accepts its name.
    pub fn of(&self, name: &str) -> Arc<Namespace> {
        self.inner.declare(&absolute(name), true)
    }

    /// As [`Io::of`], but the namespace keeps no sessions for recovery whatever the
    /// server's `[recovery]` says (one created before keeps what it has): for a
    /// namespace whose every connection must pass its middleware, such as one that
    /// checks a password (a resumed session would skip it, and a session stored in a
    /// shared Redis is anyone's to write).
    pub fn of_without_recovery(&self, name: &str) -> Arc<Namespace> {
        self.inner.declare(&absolute(name), false)
    }

    /// Accepts every namespace whose name satisfies `matches` and
    /// [`is_valid_pattern_namespace`]; each is created on its first connection and
    /// shares the returned handlers (Node's `io.of(regex)`), and is removed when its
    /// last socket leaves (Node's `cleanupEmptyChildNamespaces`).
    pub fn of_matching(
        &self,
        matches: impl Fn(&str) -> bool + Send + Sync + 'static,
    ) -> Arc<Handlers> {
        let handlers = Arc::new(Handlers::default());
        self.inner
            .dynamic
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push((Arc::new(matches), handlers.clone()));
        handlers
    }

    /// The namespace `name` if it exists now; never creates one (a pattern's
    /// namespaces exist while they have sockets).
    pub fn namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        self.inner
            .registry()
            .get(name)
            .filter(|ns| ns.is_active())
            .cloned()
    }

    /// Every namespace that exists now.
    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        self.inner
            .registry()
            .values()
            .filter(|ns| ns.is_active())
            .cloned()
            .collect()
    }

    /// The last disconnects of sockets on this node, explained, oldest first (at most
    /// [`SocketIoConfig::max_disconnect_reports`]).
    pub fn disconnect_reports(&self) -> Vec<Arc<crate::diagnosis::Report>> {
        self.inner.reports.snapshot()
    }

    /// Records a step on the timeline of every socket of this node (kept once, merged
    /// into each timeline when read): memory pressure changes, or what the application
    /// wants every timeline to show ("deploy started").
    pub fn mark_node(&self, step: crate::breadcrumbs::Step) {
        self.inner.node_step(step);
    }

    /// Installs the observer told what sockets do ([`super::Observer`]); once: a
    /// second call is refused with `false`.
    pub fn observe(&self, observer: Arc<dyn super::Observer>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    /// Tells `listener` of every refused handshake or CONNECT that is reported (at
    /// most [`crate::diagnosis::REFUSAL_REPORTS_PER_SECOND`]; the metrics count all).
    pub fn on_refusal(
        &self,
        listener: impl Fn(&Arc<crate::diagnosis::Report>) + Send + Sync + 'static,
    ) {
        self.inner.refusal_listeners.add(listener);
    }

    /// A live socket's timeline ([`Socket::timeline`]): `None` when no socket `id` is
    /// connected to namespace `nsp` on this node.
    pub fn timeline(&self, nsp: &str, id: &str) -> Option<(Vec<crate::breadcrumbs::Crumb>, u32)> {
        let ns = self.namespace(nsp)?;
        let socket = ns.socket(id.parse().ok()?)?;
        Some(socket.timeline())
    }

    pub(crate) fn inner(&self) -> &Arc<IoInner> {
        &self.inner
    }

    /// Clients resuming a session taken from the cluster's session store whose
    /// resume has not ended yet (connected, or the session put back because their
    /// connection closed meanwhile). A drain waits for them as for open sessions: the
    /// session is out of the store while they run, and one whose connection the drain
    /// closed is put back (saved again) only at its end.
    pub fn resumes_in_flight(&self) -> usize {
        self.inner.resumes.load(Ordering::Acquire)
    }

    /// The Engine.IO server (serve it with [`crate::serve`]).
    pub fn engine(&self) -> &Arc<EngineServer> {
        &self.engine
    }

    /// Handles one HTTP request under the engine path (see [`EngineServer::handle`]).
    pub fn handle<B: RequestBody>(
        &self,
        req: Request<B>,
        remote: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send + use<B> {
        self.engine.handle(req, remote)
    }
}
