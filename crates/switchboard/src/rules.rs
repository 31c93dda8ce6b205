//! Declarative namespace rules (DESIGN §2) turned into engine middleware and handlers:
//! who may connect, which rooms a client joins or may join, what its events do, how
//! fast it may send them, and which lifecycle events reach the backend hooks.
//!
//! # Layout
//!
//! - `auth`: the connect middleware and token refresh by event;
//! - `expiry`: one timer task that closes sockets whose token expired;
//! - `limit`: per-socket token buckets;
//! - `rooms`: join and leave decisions (pure) and the join, leave and auto-join
//!   handling;
//! - `events`: routing each client event — refresh, join, leave, relay, forward, deny;
//! - `forward`: a client event sent to the backend, its reply applied;
//! - `lifecycle`: connect and disconnect bookkeeping, and the lifecycle hooks;
//! - `hooks`: the hook sink (webhook or none) and its flush at shutdown;
//! - `reply`: acknowledgements and the refusal reasons clients see;
//! - `slots`: places counted per connection or socket, each with a cap;
//! - `users`: sockets counted per user (a token's `sub`), with a cap;
//! - `metrics`: counters for `/metrics`.
//!
//! Each `[[namespaces]]` entry becomes one [`Policy`], shared by the handlers of every
//! namespace it covers. Nothing here blocks a connection's read loop: verification,
//! refreshes and forwarded events run in their own tasks.

mod auth;
#[cfg(test)]
mod connect_tests;
mod events;
mod expiry;
mod forward;
mod hooks;
mod lifecycle;
mod limit;
mod metrics;
mod reply;
mod rooms;
mod slots;
#[cfg(test)]
mod tests;
mod users;

use std::sync::{Arc, Weak};
use std::time::SystemTime;
use switchboard_engine::untrusted::Untrusted;

use switchboard_auth::jwt::{Claims, KeySource};
use switchboard_engine::diagnosis::Reason;
use switchboard_engine::scrub::ClientIps;
use switchboard_engine::sio::Handlers;
use switchboard_engine::{ConnectError, DisconnectReason, Io, Shutdown, Socket};
use switchboard_hooks::HookSink;
use switchboard_protocol::Sid;
use tokio::time::Instant;

use crate::config::{Config, Events, NamespaceRules, Target};
use crate::http::Collector;
use crate::http::prometheus::Exposition;

use self::expiry::Timers;
use self::limit::Limiter;

pub(crate) use self::hooks::Hooks;
pub(crate) use self::metrics::Metrics;

/// The refusal sent for a namespace that is not configured: Node's message for a
/// namespace that does not exist, which clients already handle.
const INVALID_NAMESPACE: &str = "Invalid namespace";

/// One `[[namespaces]]` entry with what it needs at run time.
#[derive(Debug)]
pub(crate) struct Policy {
    rules: NamespaceRules,
    sink: Arc<dyn HookSink>,
    /// Token deadlines of every authenticated socket (shared by all policies).
    expiries: Arc<Timers<Sid, Weak<Socket>>>,
    /// Buckets, when the entry has a rate limit.
    limiter: Option<Limiter>,
    metrics: Arc<Metrics>,
    /// Bounds forwarded events waiting for the backend, in all and per connection (shared
    /// by all policies).
    pending_forwards: Arc<forward::PendingForwards>,
    /// Whether Server-Sent Events listeners may connect (`sse` of the entry, else
    /// `sse.enabled`).
    sse: bool,
    /// How much of the client's address the connection hook shows.
    client_ips: ClientIps,
    /// Sockets whose token refresh is being verified: one at a time per socket.
    refreshing: Arc<slots::PerKey>,
    /// Sockets per user, when the entry bounds them (`auth.max_sockets_per_user`).
    users: Option<users::PerUser>,
}

impl Policy {
    /// Closes `socket` when `claims` expire, replacing its previous deadline; a token
    /// without `exp` never expires.
    fn arm_expiry(&self, socket: &Arc<Socket>, claims: &Claims) {
        let at = claims
            .exp
            .and_then(|exp| expiry::deadline(exp, SystemTime::now(), Instant::now()));
        match at {
            Some(at) if socket.connected() => {
                self.expiries
                    .schedule(socket.id(), at, Arc::downgrade(socket));
                // Left meanwhile (its disconnect cancelled before this scheduled): the
                // entry, holding the socket's allocation until the token's `exp`, goes.
                if !socket.connected() {
                    self.cancel_expiry(socket);
                }
            }
            _ => self.cancel_expiry(socket),
        }
    }

    /// Forgets `socket`'s deadline: its own, not one armed since for another socket
    /// under the same id (a session resumed while this one's refresh or disconnect
    /// handlers were still to run, which used to leave the resumed socket with no
    /// deadline at all).
    fn cancel_expiry(&self, socket: &Arc<Socket>) {
        self.expiries
            .cancel_if(socket.id(), |held| held.as_ptr() == Arc::as_ptr(socket));
    }
}

/// What the installed rules share with `/metrics`.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    metrics: Arc<Metrics>,
    hooks: Hooks,
    /// Each `pattern` entry's text and the handlers its namespaces share, in the
    /// configured order: what `/metrics` labels those namespaces by.
    patterns: Vec<(String, Arc<Handlers>)>,
}

impl Collector for Installed {
    /// The rules' and the hooks' families.
    fn render(&self, out: &mut Exposition) {
        self.metrics.render(out, self.hooks.metrics().as_ref());
    }
}

impl Installed {
    /// The hooks, for the shutdown path.
    pub(crate) fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// Each `pattern` entry's text and the handlers of the namespaces it creates.
    pub(crate) fn patterns(&self) -> &[(String, Arc<Handlers>)] {
        &self.patterns
    }
}

/// Installs the configured namespaces on `io`. Namespace `/`, which the engine always
/// has, refuses connections unless an entry names it.
pub(crate) fn install(io: &Io, config: &Config, hooks: Hooks, shutdown: &Shutdown) -> Installed {
    let namespaces = &config.namespaces;
    let metrics = Arc::new(Metrics::default());
    let expiries = Timers::start(shutdown.clone(), expire);
    let pending_forwards = forward::PendingForwards::new();
    let mut patterns = Vec::new();
    // Named entries first, whatever the file's order: a namespace declared after a
    // pattern that matches it took the pattern's handlers (as `Io::of` does, so that an
    // application's `of("/tenant-1")` keeps the pattern's middleware), and the two
    // entries' rules merged — the named entry's auth applied to every namespace of the
    // pattern, and both used whichever entry came last for the rest.
    let named = namespaces
        .iter()
        .filter(|r| matches!(r.target, Target::Name(_)));
    let matching = namespaces
        .iter()
        .filter(|r| matches!(r.target, Target::Pattern(_)));
    for rules in named.chain(matching) {
        let policy = Arc::new(Policy {
            rules: rules.clone(),
            sink: hooks.sink.clone(),
            expiries: expiries.clone(),
            limiter: rules.rate_limit.map(Limiter::new),
            metrics: metrics.clone(),
            pending_forwards: pending_forwards.clone(),
            sse: rules.sse.unwrap_or(config.sse.enabled),
            client_ips: config.socketio.engine.client_ips,
            refreshing: Arc::default(),
            users: rules
                .auth
                .as_ref()
                .and_then(|auth| users::PerUser::new(auth.max_sockets_per_user)),
        });
        warm_up(&policy);
        let handlers = handlers(io, &rules.target);
        if let Target::Pattern(pattern) = &rules.target {
            patterns.push((pattern.as_str().to_owned(), handlers.clone()));
        }
        attach(&handlers, policy);
    }
    let sink = hooks.sink.clone();
    io.on_refusal(move |report| {
        let stage = match report.reason {
            Reason::Refused(stage) => stage.as_str(),
            Reason::Disconnect(_) => return,
        };
        sink.deliver_with(|| switchboard_hooks::LifecycleEvent::Refused {
            stage: stage.to_owned(),
            namespace: report.namespace.clone(),
            transport: report.transport.as_str().to_owned(),
            reason: report.reason.as_str().to_owned(),
            diagnosis: report.diagnosis.to_value(),
            at: report.at,
        });
    });
    let sink = hooks.sink.clone();
    io.on_pressure(move |change| {
        sink.deliver_with(|| switchboard_hooks::LifecycleEvent::Pressure {
            from: change.from.as_str().to_owned(),
            tier: change.to.as_str().to_owned(),
            rss: change.rss,
            budget: change.budget,
            at: SystemTime::now(),
        });
    });
    if !namespaces
        .iter()
        .any(|r| r.target == Target::Name("/".to_owned()))
    {
        io.of("/")
            .use_middleware(|_socket| async { Err(ConnectError::new(INVALID_NAMESPACE)) });
    }
    Installed {
        metrics,
        hooks,
        patterns,
    }
}

/// The handlers of the namespace a target names, or of every namespace it matches.
fn handlers(io: &Io, target: &Target) -> Arc<Handlers> {
    match target {
        Target::Name(name) => io.of(name).handlers().clone(),
        Target::Pattern(pattern) => {
            let pattern = pattern.clone();
            io.of_matching(move |name| pattern.matches(name))
        }
    }
}

/// Wires `policy` into `handlers`.
fn attach(handlers: &Handlers, policy: Arc<Policy>) {
    // Joins the application asks for, another node's included, are held to the same
    // bound as a client's own.
    handlers.set_max_rooms_per_socket(policy.rules.rooms.max_per_socket);
    if policy.rules.auth.is_some() {
        let p = policy.clone();
        handlers.use_middleware(move |socket| auth::authenticate(p.clone(), socket));
        let rooms = policy.rules.rooms.clone();
        handlers.on_resume(move |resume| auth::may_resume(&rooms, resume));
    }
    if !policy.rules.rooms.auto_join.is_empty() {
        // Last, once the claims are known, and before the CONNECT answer: a client
        // that hears "connected" is already in its rooms, so a message sent to
        // `user:{sub}` at that instant reaches it.
        let p = policy.clone();
        handlers.use_middleware(move |socket| {
            lifecycle::auto_join(&p, &socket);
            std::future::ready(Ok(()))
        });
    }
    // After auth (the rooms may depend on claims) and auto-join (counted against
    // `max_per_socket` first).
    let p = policy.clone();
    handlers.use_middleware(move |socket| std::future::ready(rooms::sse_listen(&p, &socket)));
    let p = policy.clone();
    handlers.on_connection(move |socket| lifecycle::connected(&p, socket));
    let p = policy.clone();
    handlers.on_disconnect(move |socket, reason| lifecycle::disconnected(&p, socket, reason));
    let p = policy.clone();
    handlers.on_room_occupied(move |ns, room, by| lifecycle::room_occupied(&p, ns, room, by));
    let p = policy.clone();
    handlers.on_room_vacated(move |ns, room, by| lifecycle::room_vacated(&p, ns, room, by));
    if let Events::Rules(_) = policy.rules.events {
        handlers.on_any(move |event| events::dispatch(&policy, event));
    }
}

/// Fetches a JWKS in the background at start-up, so an unreachable identity provider
/// is logged before the first client meets it.
fn warm_up(policy: &Policy) {
    let Some(auth) = &policy.rules.auth else {
        return;
    };
    if !matches!(auth.settings.key, KeySource::Jwks(_)) {
        return;
    }
    let verifier = auth.verifier.clone();
    let namespace = policy.rules.target.as_str().to_owned();
    tokio::spawn(async move {
        if let Err(err) = verifier.warm_up().await {
            tracing::warn!(%namespace, error = %err, "cannot fetch the signing keys yet");
        }
    });
}

/// A token expired: close the socket's connection with reason `auth expired`.
fn expire(socket: Weak<Socket>) {
    let Some(socket) = socket.upgrade().filter(|s| s.connected()) else {
        return;
    };
    tracing::debug!(sid = %socket.id(), namespace = %Untrusted(socket.namespace()), "token expired");
    let exp = auth::claims_of(&socket).and_then(|c| c.exp);
    socket.note(match exp {
        Some(exp) => format!(
            "token expired at {} (exp {exp}), no refresh received",
            switchboard_engine::diagnosis::http_date(exp)
        ),
        None => "token expired, no refresh received".to_owned(),
    });
    socket.close_connection(DisconnectReason::AuthExpired);
}
