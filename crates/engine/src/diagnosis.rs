//! Why a socket left, explained: a category from a fixed set, how sure the
//! classification is, and the facts it rests on, with numbers. Built from what the
//! engine saw at the disconnect ([`Facts`]), worded when a report is first read
//! ([`Wording`]): most reports leave the node's ring unread. Pure, so every rule is a
//! unit test.
//!
//! The classified reason ([`DisconnectReason`]) stays as it is (Node's strings); the
//! diagnosis adds the *why* an operator asks for: "transport close" becomes `network`
//! (the connection dropped without a close frame) or `client` (the client said
//! goodbye), and a drop while the client's queue was filling is more likely a slow or
//! vanished reader than a network blip.

use std::fmt;
use std::time::Duration;

use switchboard_protocol::engineio::TransportKind;

use crate::reason::DisconnectReason;

/// What a disconnect was, from a fixed, documented set (docs/diagnosis.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// The transport closed or failed without the client saying goodbye.
    Network,
    /// The client closed the connection or left the namespace.
    Client,
    /// The client stopped answering pings.
    Heartbeat,
    /// The client did not read fast enough.
    SlowConsumer,
    /// Credentials expired or were refused.
    Auth,
    /// A limit of the server's policy: rate, payload size.
    Policy,
    /// The client broke the protocol.
    Protocol,
    /// The server ended it: a drain, the API, the application.
    Server,
    /// Shed under memory pressure.
    Pressure,
}

impl Category {
    /// Every category, for metrics.
    pub const ALL: [Category; 9] = [
        Category::Network,
        Category::Client,
        Category::Heartbeat,
        Category::SlowConsumer,
        Category::Auth,
        Category::Policy,
        Category::Protocol,
        Category::Server,
        Category::Pressure,
    ];

    /// The category as a stable string (`slow_consumer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Network => "network",
            Category::Client => "client",
            Category::Heartbeat => "heartbeat",
            Category::SlowConsumer => "slow_consumer",
            Category::Auth => "auth",
            Category::Policy => "policy",
            Category::Protocol => "protocol",
            Category::Server => "server",
            Category::Pressure => "pressure",
        }
    }

    /// Index into [`Category::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a transport ended, as far as the engine could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// The client said goodbye: an Engine.IO `close` packet, a WebSocket close frame.
    Said,
    /// The connection went away without a word: end of stream or a reset, an aborted
    /// request, a Server-Sent Events reader gone.
    Lost,
    /// The server ended it, or nothing more is known.
    #[default]
    Unknown,
}

/// What the engine knew when a connection or socket ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// The classified reason.
    pub reason: DisconnectReason,
    /// The transport in use.
    pub transport: TransportKind,
    /// How the transport ended (for `transport close`).
    pub ending: Ending,
    /// Since the connection opened.
    pub connected_for: Duration,
    /// Since the client was last heard from (a pong, a message).
    pub silent_for: Duration,
    /// The ping interval and timeout of the connection.
    pub heartbeat: (Duration, Duration),
    /// The outbound queue when it ended (packets, bytes).
    pub queued: (usize, usize),
    /// The queue's bounds (packets, bytes).
    pub queue_bounds: (usize, usize),
    /// Why the engine cut off what the client was sending, when it did.
    pub cutoff: Option<Cutoff>,
    /// The node's memory, when it was under pressure or shed this connection.
    pub memory: Option<Memory>,
    /// What the application adds (a token's expiry, refused events), already worded.
    pub noted: Vec<String>,
}

/// Why the engine cut off a message (or polling body) a client was sending. Also the
/// error a read of that message ends with (a polling body's, a WebSocket's), so that
/// whoever handles the failed read finds the reason in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Cutoff {
    /// Over `engine.max_payload` (`payload too large`): its size (0: unknown, a
    /// chunked body) and the bound.
    #[error("a message of {size} B over engine.max_payload ({max} B)")]
    TooLarge {
        /// Bytes it had, or claimed.
        size: u64,
        /// `engine.max_payload`.
        max: usize,
    },
    /// Not whole within `engine.body_timeout` (`transport error`).
    #[error("a message not whole within engine.body_timeout ({timeout:?})")]
    TooSlow {
        /// `engine.body_timeout`.
        timeout: Duration,
    },
    /// The messages on their way in to the node held `engine.max_inbound_bytes`
    /// (`server overloaded`).
    #[error("messages on their way in hold engine.max_inbound_bytes ({limit} B)")]
    InboundFull {
        /// `engine.max_inbound_bytes`.
        limit: usize,
    },
    /// The messages on their way in held `engine.max_inbound_bytes`, and this one,
    /// unfinished the longest, gave way to a newer one (`server overloaded`).
    #[error(
        "the message on its way in longest ({after:?}) when engine.max_inbound_bytes ({limit} B) was full"
    )]
    InboundGaveWay {
        /// `engine.max_inbound_bytes`.
        limit: usize,
        /// How long it had been on its way in.
        after: Duration,
    },
}

impl Cutoff {
    /// The reason a session cut off for this closes with.
    pub fn reason(self) -> DisconnectReason {
        match self {
            Cutoff::TooLarge { .. } => DisconnectReason::PayloadTooLarge,
            Cutoff::TooSlow { .. } => DisconnectReason::TransportError,
            Cutoff::InboundFull { .. } | Cutoff::InboundGaveWay { .. } => {
                DisconnectReason::ServerOverloaded
            }
        }
    }
}

/// A disconnect explained.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnosis {
    /// What it was.
    pub category: Category,
    /// How sure: 1.0 when the reason says it outright, less when it is inferred.
    pub confidence: f32,
    /// Short facts with numbers, most telling first.
    pub evidence: Vec<String>,
}

impl Diagnosis {
    /// The diagnosis as JSON: `{"category","confidence","evidence"}`.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "category": self.category.as_str(),
            "confidence": (f64::from(self.confidence) * 100.0).round() / 100.0,
            "evidence": self.evidence,
        })
    }
}

/// Where a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The Engine.IO handshake (or a Server-Sent Events request): no session opened.
    Handshake,
    /// The Socket.IO CONNECT to a namespace: no socket joined it.
    Connect,
}

impl Stage {
    /// Both stages, for metrics.
    pub const ALL: [Stage; 2] = [Stage::Handshake, Stage::Connect];

    /// `handshake`, `connect`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Handshake => "handshake",
            Stage::Connect => "connect",
        }
    }

    /// Index into [`Stage::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What a report is about: a socket that left, or a connection refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A socket left for this reason.
    Disconnect(DisconnectReason),
    /// A handshake or a CONNECT was refused.
    Refused(Stage),
}

impl Reason {
    /// The reason's string (`ping timeout`, or `handshake refused` / `connect
    /// refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Disconnect(reason) => reason.as_str(),
            Reason::Refused(Stage::Handshake) => "handshake refused",
            Reason::Refused(Stage::Connect) => "connect refused",
        }
    }
}

/// A refused handshake or CONNECT, as the layer that refused it saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// Where.
    pub stage: Stage,
    /// The namespace asked for (empty for a handshake).
    pub namespace: String,
    /// The transport of the request.
    pub transport: TransportKind,
    /// What kind of refusal.
    pub category: Category,
    /// A short machine-readable code (`forbidden`, `at_capacity`, `invalid_token`).
    pub code: String,
    /// Facts with numbers, most telling first, already worded and scrubbed.
    pub evidence: Vec<String>,
}

/// Longest refusal code or message a report keeps (they may come from the client or
/// the application).
const MAX_REFUSAL_TEXT: usize = 160;

impl Refusal {
    /// A refusal whose `message` (the client's or the application's words) becomes
    /// its first fact, cut to a bounded length, control characters dropped, e-mail
    /// addresses and tokens scrubbed.
    pub fn new(
        stage: Stage,
        namespace: &str,
        transport: TransportKind,
        category: Category,
        code: &str,
        message: &str,
    ) -> Self {
        Refusal {
            stage,
            namespace: bounded(namespace),
            transport,
            category,
            code: bounded(code),
            evidence: vec![bounded(message)],
        }
    }
}

/// `text` made fit for a report: control characters dropped, scrubbed, cut to
/// [`MAX_REFUSAL_TEXT`] bytes at a character boundary. Scrubbed before it is cut (of
/// its first [`SCRUBBED_TEXT`] bytes): an address or a token cut first no longer looks
/// like one, and its start got through (before 2026-12-07).
pub fn bounded(text: &str) -> String {
    let first = crate::untrusted::cut(text, SCRUBBED_TEXT);
    let clean: String = first.chars().filter(|c| !c.is_control()).collect();
    let scrubbed = crate::scrub::text(&clean);
    let cut = crate::untrusted::cut(&scrubbed, MAX_REFUSAL_TEXT);
    if cut.len() < scrubbed.len() || first.len() < text.len() {
        format!("{cut}…")
    } else {
        cut.to_owned()
    }
}

/// Bytes of a text [`bounded`] scrubs before it cuts: far more than a token or an
/// address it must recognize, few enough that the scrub's work is bounded.
const SCRUBBED_TEXT: usize = 16 * 1024;

/// A report's diagnosis: worded when the report was made (a refusal, whose words are
/// the refusing layer's), or the facts of a disconnect, worded the first time anyone
/// reads it. A node makes a report at every disconnect and keeps the last
/// [`MAX_REPORTS`]; most are pushed out unread, and wording one (a few strings with
/// numbers) cost more than the rest of the report. Reads as the [`Diagnosis`] it
/// holds or words (`report.diagnosis.category`).
#[derive(Debug, Clone)]
pub struct Wording(Words);

#[derive(Debug, Clone)]
enum Words {
    Worded(Diagnosis),
    /// Inline, not boxed: the report is one allocation.
    Facts(Facts, std::sync::OnceLock<Diagnosis>),
}

impl Wording {
    /// The facts of a disconnect, to be worded by [`diagnose`] when first read.
    pub fn of(facts: Facts) -> Self {
        Wording(Words::Facts(facts, std::sync::OnceLock::new()))
    }

    /// The category, without wording the diagnosis (a filter by category looks at
    /// every report it passes: wording each, kept for good, cost as much as reading
    /// them all).
    pub fn category(&self) -> Category {
        match &self.0 {
            Words::Worded(diagnosis) => diagnosis.category,
            Words::Facts(facts, worded) => match worded.get() {
                Some(diagnosis) => diagnosis.category,
                None => classify(facts).0,
            },
        }
    }

    /// The diagnosis, worded now if it was not yet.
    pub fn get(&self) -> &Diagnosis {
        match &self.0 {
            Words::Worded(diagnosis) => diagnosis,
            Words::Facts(facts, worded) => worded.get_or_init(|| diagnose(facts)),
        }
    }
}

impl From<Diagnosis> for Wording {
    fn from(diagnosis: Diagnosis) -> Self {
        Wording(Words::Worded(diagnosis))
    }
}

impl std::ops::Deref for Wording {
    type Target = Diagnosis;

    fn deref(&self) -> &Diagnosis {
        self.get()
    }
}

impl PartialEq for Wording {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// One disconnect or refusal as this node recorded it: who, when, why, explained.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// When the socket left, or the connection was refused.
    pub at: std::time::SystemTime,
    /// Its namespace (empty for a refused handshake).
    pub namespace: String,
    /// Its socket id (empty for a refusal: the client never had one).
    pub socket_id: String,
    /// The transport it used last.
    pub transport: TransportKind,
    /// The classified reason, or the refusal's stage.
    pub reason: Reason,
    /// The diagnosis (worded when first read).
    pub diagnosis: Wording,
    /// The last steps before it left, oldest first ([`crate::breadcrumbs`]).
    pub breadcrumbs: Vec<crate::breadcrumbs::Crumb>,
    /// Earlier steps not kept.
    pub dropped_steps: u32,
}

impl Report {
    /// The report's timeline as JSON: `[{"at","step",...}]`.
    pub fn breadcrumbs_value(&self) -> serde_json::Value {
        self.breadcrumbs.iter().map(|c| c.to_value()).collect()
    }

    /// What the `disconnection` hook carries as `diagnosis`: the diagnosis' fields
    /// with `breadcrumbs` and `dropped_steps`.
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = self.diagnosis.to_value();
        if let Some(map) = v.as_object_mut() {
            map.insert("breadcrumbs".into(), self.breadcrumbs_value());
            map.insert("dropped_steps".into(), self.dropped_steps.into());
        }
        v
    }
}

/// Reports a node keeps by default (the last ones, oldest dropped first): about 550
/// bytes each with a short timeline, unread (measured by the heap budget test), about
/// 1.6 KiB with a full one of short room names, so under 1.7 MB however many sockets
/// come and go. The worst case is a client's making: 32 steps each naming a room of
/// the longest name a client may join (256 bytes, kept after the room is gone) make a
/// report of about 10 KiB, and the reports about 10 MB at most.
pub const MAX_REPORTS: usize = 1000;

impl Report {
    /// The report of a refusal.
    pub fn refused(refusal: Refusal) -> Self {
        Report {
            at: std::time::SystemTime::now(),
            namespace: refusal.namespace,
            socket_id: String::new(),
            transport: refusal.transport,
            reason: Reason::Refused(refusal.stage),
            diagnosis: Diagnosis {
                category: refusal.category,
                confidence: 1.0,
                evidence: std::iter::once(format!("refused ({})", refusal.code))
                    .chain(refusal.evidence)
                    .collect(),
            }
            .into(),
            breadcrumbs: Vec::new(),
            dropped_steps: 0,
        }
    }
}

/// Refusal reports a node records per second at most, and in a burst: anyone can
/// send refused requests as fast as the network carries them, and they must neither
/// cost more than the refusal nor push the disconnects out of the ring. The metrics
/// count every refusal.
pub const REFUSAL_REPORTS_PER_SECOND: f64 = 20.0;
/// See [`REFUSAL_REPORTS_PER_SECOND`].
pub const REFUSAL_REPORTS_BURST: f64 = 100.0;

/// The last disconnects and refusals of a node (at most `max`), newest last.
///
/// Disconnects the client asked for (category `client`: it left the namespace, or
/// closed its connection saying so) take at most a quarter of the ring, oldest of them
/// dropped first: anyone can make them as fast as CONNECT and DISCONNECT packets go,
/// and before 2026-12-07 a few connections doing so replaced the whole ring in seconds,
/// pushing out the reports of the disconnects an operator comes to look for.
#[derive(Debug)]
pub struct Reports {
    ring: std::sync::Mutex<Ring>,
    max: usize,
    /// Refusal reports' rate.
    refusals: crate::bucket::TokenBucket,
}

impl Reports {
    /// A ring of at most `max` reports.
    pub fn new(max: usize) -> Self {
        Reports {
            ring: Default::default(),
            max,
            refusals: crate::bucket::TokenBucket::new(
                REFUSAL_REPORTS_PER_SECOND,
                REFUSAL_REPORTS_BURST,
                std::time::Instant::now(),
            ),
        }
    }

    /// Whether a refusal may be reported now (see [`REFUSAL_REPORTS_PER_SECOND`]).
    pub fn admit_refusal(&self, now: std::time::Instant) -> bool {
        self.refusals.take(now)
    }

    /// Records a report, dropping the oldest beyond the bound.
    pub fn push(&self, report: std::sync::Arc<Report>) {
        self.push_as(report, Part::Other);
    }

    /// Records the report of a disconnect the client asked for (category `client`),
    /// within its quarter of the ring.
    pub fn push_client(&self, report: std::sync::Arc<Report>) {
        self.push_as(report, Part::Client);
    }

    /// Records the report of a refused handshake or CONNECT, within its quarter of the
    /// ring: anyone can make them at the refusal reports' rate for as long as they
    /// like, and before 2026-12-07 twenty a second pushed every disconnect out of the
    /// ring within a minute.
    pub fn push_refusal(&self, report: std::sync::Arc<Report>) {
        self.push_as(report, Part::Refusal);
    }

    fn push_as(&self, report: std::sync::Arc<Report>, part: Part) {
        if self.max == 0 {
            return;
        }
        let quarter = (self.max / 4).max(1);
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let own = &mut ring.parts[part as usize];
        if part != Part::Other && own.len() >= quarter {
            own.pop_front();
        }
        own.push_back(report);
        while ring
            .parts
            .iter()
            .map(std::collections::VecDeque::len)
            .sum::<usize>()
            > self.max
        {
            let oldest = ring
                .parts
                .iter_mut()
                .filter(|p| !p.is_empty())
                .min_by_key(|p| p.front().map(|r| r.at));
            if let Some(oldest) = oldest {
                oldest.pop_front();
            }
        }
    }

    /// The reports kept now, oldest first.
    pub fn snapshot(&self) -> Vec<std::sync::Arc<Report>> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = ring.parts.iter().flatten().cloned().collect();
        // Each part is in order; the sort is stable, so reports of one instant keep
        // the order they were recorded in within each part.
        all.sort_by_key(|r| r.at);
        all
    }
}

/// The parts of [`Reports`].
#[derive(Debug, Default)]
struct Ring {
    /// By [`Part`].
    parts: [std::collections::VecDeque<std::sync::Arc<Report>>; 3],
}

/// The parts of the ring: disconnects the client asked for and refusals, a quarter of
/// it each at most, and the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Client = 0,
    Refusal = 1,
    Other = 2,
}

/// A queue at least this full (of either bound) when a connection dropped suggests
/// the reader, not the network.
const FILLING: f64 = 0.5;

/// The category a reason alone gives, when `ending` and the queue add nothing: what
/// the engine's per-reason metrics count.
pub fn category_of(reason: DisconnectReason, ending: Ending) -> Category {
    use DisconnectReason as R;
    match reason {
        R::TransportClose if ending == Ending::Said => Category::Client,
        R::TransportClose | R::TransportError => Category::Network,
        R::PingTimeout => Category::Heartbeat,
        R::ParseError | R::ConnectTimeout => Category::Protocol,
        R::PayloadTooLarge | R::RateLimited => Category::Policy,
        R::SlowConsumer => Category::SlowConsumer,
        R::ServerShuttingDown | R::ForcedClose | R::ServerNamespaceDisconnect => Category::Server,
        R::ClientNamespaceDisconnect => Category::Client,
        R::AuthExpired => Category::Auth,
        R::ServerOverloaded => Category::Pressure,
    }
}

/// The category of a disconnect and how sure it is, without the evidence: what the
/// engine's per-connection metrics count (no strings built).
pub fn classify(facts: &Facts) -> (Category, f32) {
    use DisconnectReason as R;
    match (facts.reason, facts.ending) {
        // The official client closes its transport, saying so, when it gives up on its
        // own (no ping from the server in time, an error, the browser going offline):
        // a close it said is the client's choice only when nothing points elsewhere.
        // Pings stuck behind a backlog, or a client silent for most of a heartbeat
        // before it closed, point to a reader that fell behind or a heartbeat that
        // failed on the way to it.
        (R::TransportClose | R::TransportError, Ending::Said) if queue_fill(facts) >= FILLING => {
            (Category::SlowConsumer, 0.6)
        }
        (R::TransportClose | R::TransportError, Ending::Said) if gave_up_waiting(facts) => {
            (Category::Heartbeat, 0.6)
        }
        (R::TransportClose | R::TransportError, Ending::Said) => {
            (category_of(facts.reason, facts.ending), 1.0)
        }
        // A reader that vanished or stopped reading, most likely.
        (R::TransportClose | R::TransportError, _) if queue_fill(facts) >= FILLING => {
            (Category::SlowConsumer, 0.6)
        }
        (R::TransportClose | R::TransportError, Ending::Lost) => (Category::Network, 0.8),
        (R::TransportClose | R::TransportError, Ending::Unknown) => (Category::Network, 0.6),
        (R::ConnectTimeout, _) => (Category::Protocol, 0.9),
        (reason, ending) => (category_of(reason, ending), 1.0),
    }
}

/// Whether the client had been silent for more than a ping interval and half its
/// timeout when it closed: a live client answers each ping within the interval, so
/// one that closed after that long most likely stopped hearing this node's pings and
/// gave up on them.
fn gave_up_waiting(facts: &Facts) -> bool {
    let (interval, timeout) = facts.heartbeat;
    !interval.is_zero() && facts.silent_for > interval + timeout / 2
}

/// Explains a disconnect: [`classify`], and the facts it rests on.
pub fn diagnose(facts: &Facts) -> Diagnosis {
    use DisconnectReason as R;
    let (category, confidence) = classify(facts);
    let dropped = || {
        format!(
            "the {} connection dropped without a close frame",
            facts.transport
        )
    };
    let mut evidence = Vec::new();
    let what = if facts.transport == TransportKind::Polling {
        "body"
    } else {
        "message"
    };
    match facts.cutoff {
        Some(Cutoff::TooSlow { timeout }) if facts.reason == R::TransportError => {
            evidence.push(format!(
                "a {} {what} did not arrive whole within engine.body_timeout ({})",
                facts.transport,
                secs(timeout)
            ));
        }
        Some(Cutoff::InboundFull { limit }) if facts.reason == R::ServerOverloaded => {
            evidence.push(format!(
                "messages on their way in to this node held engine.max_inbound_bytes ({}); this {} {what} would have passed it",
                bytes(limit),
                facts.transport
            ));
        }
        Some(Cutoff::InboundGaveWay { limit, after }) if facts.reason == R::ServerOverloaded => {
            evidence.push(format!(
                "messages on their way in to this node held engine.max_inbound_bytes ({}); this {} {what}, unfinished for {}, the longest of them, gave way to a newer one",
                bytes(limit),
                facts.transport,
                secs(after)
            ));
        }
        _ => {}
    }
    match facts.reason {
        R::TransportError if !evidence.is_empty() => {}
        R::TransportClose | R::TransportError => match facts.ending {
            Ending::Said => {
                evidence.push(format!(
                    "the client closed the {} connection",
                    facts.transport
                ));
                match category {
                    Category::SlowConsumer => evidence.push(queue_fact(facts)),
                    Category::Heartbeat => evidence.push(format!(
                        "last heard {} ago (ping interval {}, timeout {}): it likely gave up waiting for this node's pings",
                        secs(facts.silent_for),
                        secs(facts.heartbeat.0),
                        secs(facts.heartbeat.1)
                    )),
                    _ => {}
                }
            }
            _ if category == Category::SlowConsumer => {
                evidence.push(queue_fact(facts));
                evidence.push(dropped());
            }
            Ending::Lost => evidence.push(dropped()),
            Ending::Unknown => evidence.push(format!("the {} transport failed", facts.transport)),
        },
        R::PingTimeout => evidence.push(format!(
            "last heard {} ago (ping interval {}, timeout {})",
            secs(facts.silent_for),
            secs(facts.heartbeat.0),
            secs(facts.heartbeat.1)
        )),
        R::SlowConsumer => evidence.push(queue_fact(facts)),
        R::ConnectTimeout => evidence.push(format!(
            "no namespace joined in {}",
            secs(facts.connected_for)
        )),
        R::ParseError => evidence.push("the client sent a malformed packet".to_owned()),
        R::PayloadTooLarge => evidence.push(match facts.cutoff {
            // Exact bytes: `engine.max_payload` is configured in bytes.
            Some(Cutoff::TooLarge { size, max }) if size > 0 => format!(
                "a {} {what} of {size} B over engine.max_payload ({max} B)",
                facts.transport,
            ),
            Some(Cutoff::TooLarge { max, .. }) => format!(
                "a {} body over engine.max_payload ({max} B)",
                facts.transport,
            ),
            _ => "a message or polling body was over engine.max_payload".to_owned(),
        }),
        R::ServerShuttingDown => evidence.push("the server is draining".to_owned()),
        R::ForcedClose | R::ServerNamespaceDisconnect => {
            evidence.push("closed by the server (the HTTP API or the application)".to_owned())
        }
        R::ClientNamespaceDisconnect => evidence.push("the client left the namespace".to_owned()),
        R::ServerOverloaded if !evidence.is_empty() => {}
        R::ServerOverloaded => evidence.push(queue_fact(facts)),
        R::AuthExpired | R::RateLimited => {}
    }
    evidence.extend(facts.memory.map(|m| m.fact()));
    evidence.extend(facts.noted.iter().cloned());
    if facts.reason != R::ConnectTimeout {
        evidence.push(format!("connected for {}", secs(facts.connected_for)));
    }
    Diagnosis {
        category,
        confidence,
        evidence,
    }
}

/// The larger share of its bounds the queue held.
fn queue_fill(facts: &Facts) -> f64 {
    let share = |n: usize, max: usize| n as f64 / max.max(1) as f64;
    share(facts.queued.0, facts.queue_bounds.0).max(share(facts.queued.1, facts.queue_bounds.1))
}

fn queue_fact(facts: &Facts) -> String {
    format!(
        "outbound queue at {} packets / {} (bounds {} / {})",
        facts.queued.0,
        bytes(facts.queued.1),
        facts.queue_bounds.0,
        bytes(facts.queue_bounds.1)
    )
}

/// The node's memory against its budget at one moment, for what happens under memory
/// pressure (a disconnect, a refused handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident memory at the last sample, in bytes.
    pub rss: u64,
    /// The budget, in bytes.
    pub budget: u64,
    /// The tier then.
    pub tier: crate::pressure::Tier,
}

impl Memory {
    /// The figures `metrics` holds now.
    pub fn of(metrics: &crate::Metrics) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Memory {
            rss: metrics.memory_rss.load(Relaxed),
            budget: metrics.memory_budget.load(Relaxed),
            tier: metrics.pressure_tier(),
        }
    }

    /// `memory 245.3 MiB of a 256.0 MiB budget (96 %, tier imminent; queue bounds
    /// halved)`.
    pub fn fact(&self) -> String {
        let share = if self.budget == 0 {
            0.0
        } else {
            self.rss as f64 * 100.0 / self.budget as f64
        };
        format!(
            "memory {} of a {} budget ({share:.0} %, tier {}{})",
            bytes(usize::try_from(self.rss).unwrap_or(usize::MAX)),
            bytes(usize::try_from(self.budget).unwrap_or(usize::MAX)),
            self.tier,
            if self.tier >= crate::pressure::Tier::Critical {
                "; queue bounds halved"
            } else {
                ""
            }
        )
    }
}

/// The last second `httpdate` can format (31 Dec 9999 23:59:59 GMT); it panics past it.
const LAST_HTTP_DATE_SECS: u64 = 253_402_300_799;

/// `Sun, 22 Nov 2026 10:00:00 GMT` for seconds since the Unix epoch, clamped to what
/// an HTTP date can show, so a wild clock or a token's `exp` cannot panic it.
pub fn http_date(secs: u64) -> String {
    let secs = secs.min(LAST_HTTP_DATE_SECS);
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

/// `46.1 s`, `250 ms`.
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `3.9 MiB`, `12.0 KiB`, `512 B`.
pub fn bytes(n: usize) -> String {
    const KIB: f64 = 1024.0;
    let n = n as f64;
    if n >= KIB * KIB {
        format!("{:.1} MiB", n / (KIB * KIB))
    } else if n >= KIB {
        format!("{:.1} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(reason: DisconnectReason, ending: Ending) -> Facts {
        Facts {
            reason,
            transport: TransportKind::Websocket,
            ending,
            connected_for: Duration::from_secs(90),
            silent_for: Duration::from_millis(46_100),
            heartbeat: (Duration::from_secs(25), Duration::from_secs(20)),
            queued: (3, 300),
            queue_bounds: (1024, 4 << 20),
            cutoff: None,
            memory: None,
            noted: Vec::new(),
        }
    }

    #[test]
    fn a_ping_timeout_names_the_silence_and_the_heartbeat() {
        let d = diagnose(&facts(DisconnectReason::PingTimeout, Ending::Unknown));
        assert_eq!((d.category, d.confidence), (Category::Heartbeat, 1.0));
        assert_eq!(
            d.evidence[0],
            "last heard 46.1 s ago (ping interval 25.0 s, timeout 20.0 s)"
        );
        assert_eq!(d.evidence[1], "connected for 90.0 s");
    }

    #[test]
    fn transport_close_is_client_when_said_and_network_when_lost() {
        let mut said = facts(DisconnectReason::TransportClose, Ending::Said);
        said.silent_for = Duration::from_secs(1);
        let said = diagnose(&said);
        assert_eq!((said.category, said.confidence), (Category::Client, 1.0));
        let lost = diagnose(&facts(DisconnectReason::TransportClose, Ending::Lost));
        assert_eq!((lost.category, lost.confidence), (Category::Network, 0.8));
        assert!(
            lost.evidence[0].contains("without a close frame"),
            "{lost:?}"
        );
    }

    /// The official client closes its transport, saying so, when it gives up on its
    /// own: a close said with a backlog, or after a heartbeat's silence, is not
    /// reported as the client's choice at full confidence.
    #[test]
    fn a_close_the_client_said_after_a_backlog_or_a_silence_is_not_its_choice() {
        let mut backlog = facts(DisconnectReason::TransportClose, Ending::Said);
        backlog.queued = (700, 3 << 20);
        let d = diagnose(&backlog);
        assert_eq!((d.category, d.confidence), (Category::SlowConsumer, 0.6));
        assert!(
            d.evidence[1].starts_with("outbound queue at 700 packets"),
            "{d:?}"
        );
        let mut silent = facts(DisconnectReason::TransportClose, Ending::Said);
        silent.silent_for = silent.heartbeat.0 + silent.heartbeat.1;
        let d = diagnose(&silent);
        assert_eq!((d.category, d.confidence), (Category::Heartbeat, 0.6));
        assert!(d.evidence[1].contains("gave up waiting"), "{d:?}");
        let mut recent = facts(DisconnectReason::TransportClose, Ending::Said);
        recent.silent_for = recent.heartbeat.0 / 2;
        assert_eq!(classify(&recent), (Category::Client, 1.0));
    }

    #[test]
    fn a_drop_with_a_filling_queue_is_more_likely_a_slow_reader() {
        let mut f = facts(DisconnectReason::TransportClose, Ending::Lost);
        f.queued = (700, 3 << 20);
        let d = diagnose(&f);
        assert_eq!((d.category, d.confidence), (Category::SlowConsumer, 0.6));
        assert_eq!(
            d.evidence[0],
            "outbound queue at 700 packets / 3.0 MiB (bounds 1024 / 4.0 MiB)"
        );
    }

    #[test]
    fn http_dates_are_right() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_795_341_600), "Sun, 22 Nov 2026 10:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(u64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn an_oversized_message_names_its_size_and_the_bound() {
        let mut f = facts(DisconnectReason::PayloadTooLarge, Ending::Unknown);
        f.cutoff = Some(Cutoff::TooLarge {
            size: 2011,
            max: 1000,
        });
        assert_eq!(
            diagnose(&f).evidence[0],
            "a websocket message of 2011 B over engine.max_payload (1000 B)"
        );
        f.transport = TransportKind::Polling;
        f.cutoff = Some(Cutoff::TooLarge {
            size: 0,
            max: 1 << 20,
        });
        assert_eq!(
            diagnose(&f).evidence[0],
            "a polling body over engine.max_payload (1048576 B)"
        );
    }

    #[test]
    fn a_message_cut_off_on_its_way_in_says_which_bound() {
        let mut f = facts(DisconnectReason::TransportError, Ending::Unknown);
        f.cutoff = Some(Cutoff::TooSlow {
            timeout: Duration::from_secs(10),
        });
        let d = diagnose(&f);
        assert_eq!(
            d.evidence[0],
            "a websocket message did not arrive whole within engine.body_timeout (10.0 s)"
        );
        assert_eq!(d.evidence[1], "connected for 90.0 s");
        let mut f = facts(DisconnectReason::ServerOverloaded, Ending::Unknown);
        f.transport = TransportKind::Polling;
        f.cutoff = Some(Cutoff::InboundFull { limit: 256 << 20 });
        let d = diagnose(&f);
        assert_eq!(d.category, Category::Pressure);
        assert_eq!(
            d.evidence[0],
            "messages on their way in to this node held engine.max_inbound_bytes (256.0 MiB); this polling body would have passed it"
        );
        assert!(
            !d.evidence.iter().any(|e| e.contains("outbound queue")),
            "{d:?}"
        );
        let mut f = facts(DisconnectReason::ServerOverloaded, Ending::Unknown);
        f.cutoff = Some(Cutoff::InboundGaveWay {
            limit: 8 << 20,
            after: Duration::from_millis(4200),
        });
        let d = diagnose(&f);
        assert_eq!(d.category, Category::Pressure);
        assert_eq!(
            d.evidence[0],
            "messages on their way in to this node held engine.max_inbound_bytes (8.0 MiB); this websocket message, unfinished for 4.2 s, the longest of them, gave way to a newer one"
        );
    }

    #[test]
    fn every_reason_has_a_category_and_evidence() {
        for reason in DisconnectReason::ALL {
            for ending in [Ending::Said, Ending::Lost, Ending::Unknown] {
                let mut f = facts(reason, ending);
                f.noted.push("noted".into());
                let d = diagnose(&f);
                assert!(!d.evidence.is_empty(), "{reason}");
                assert!(d.evidence.iter().any(|e| e == "noted"), "{reason}");
                assert!((0.0..=1.0).contains(&d.confidence));
            }
        }
        assert_eq!(
            category_of(DisconnectReason::AuthExpired, Ending::Unknown),
            Category::Auth
        );
        assert_eq!(
            category_of(DisconnectReason::RateLimited, Ending::Unknown),
            Category::Policy
        );
        assert!(
            Category::ALL
                .iter()
                .enumerate()
                .all(|(i, c)| c.index() == i)
        );
    }

    /// Disconnects the client asked for keep to a quarter of the ring: a flood of them
    /// pushes out only older ones of their kind, never the others.
    #[test]
    fn disconnects_the_client_asked_for_keep_to_a_quarter_of_the_ring() {
        let report = |n: u64, reason: DisconnectReason| {
            std::sync::Arc::new(Report {
                at: std::time::UNIX_EPOCH + Duration::from_millis(n),
                namespace: "/".into(),
                socket_id: n.to_string(),
                transport: TransportKind::Polling,
                reason: Reason::Disconnect(reason),
                diagnosis: Wording::of(facts(reason, Ending::Unknown)),
                breadcrumbs: Vec::new(),
                dropped_steps: 0,
            })
        };
        let reports = Reports::new(100);
        for n in 0..60 {
            reports.push(report(n, DisconnectReason::PingTimeout));
        }
        for n in 60..1060 {
            reports.push_client(report(n, DisconnectReason::ClientNamespaceDisconnect));
        }
        let kept = reports.snapshot();
        let timeouts = kept
            .iter()
            .filter(|r| r.reason.as_str() == "ping timeout")
            .count();
        assert_eq!(
            (kept.len(), timeouts),
            (85, 60),
            "all 60 others, 25 of the client's"
        );
        assert!(kept.windows(2).all(|w| w[0].at <= w[1].at), "oldest first");
        assert_eq!(kept.last().map(|r| r.socket_id.as_str()), Some("1059"));
        // Refusals (anyone's, at the refusal reports' rate for as long as they like)
        // take their own quarter, not the disconnects'.
        for n in 1100..1900 {
            reports.push_refusal(report(n, DisconnectReason::TransportError));
        }
        let kept = reports.snapshot();
        let timeouts = kept
            .iter()
            .filter(|r| r.reason.as_str() == "ping timeout")
            .count();
        let refusals = kept
            .iter()
            .filter(|r| r.reason.as_str() == "transport error")
            .count();
        assert_eq!(
            (kept.len(), timeouts, refusals),
            (100, 50, 25),
            "the others keep half: the client's and the refusals' quarters aside"
        );
        // The others still take the whole ring when they are all there is.
        for n in 2000..2200 {
            reports.push(report(n, DisconnectReason::PingTimeout));
        }
        let kept = reports.snapshot();
        assert_eq!(kept.len(), 100);
        assert!(kept.iter().all(|r| r.reason.as_str() == "ping timeout"));
    }

    /// A report's category is read without wording it (a filter by category reads
    /// every report it passes), and is the worded one's.
    #[test]
    fn a_category_is_read_without_wording_the_report() {
        let wording = Wording::of(facts(DisconnectReason::PingTimeout, Ending::Unknown));
        assert_eq!(wording.category(), Category::Heartbeat);
        let Words::Facts(_, worded) = &wording.0 else {
            panic!("facts");
        };
        assert!(worded.get().is_none(), "not worded");
        assert_eq!(wording.get().category, wording.category());
    }

    #[test]
    fn reports_keep_the_last_ones() {
        let reports = Reports::new(MAX_REPORTS);
        for n in 0..MAX_REPORTS + 5 {
            reports.push(std::sync::Arc::new(Report {
                at: std::time::UNIX_EPOCH,
                namespace: "/".into(),
                socket_id: n.to_string(),
                transport: TransportKind::Polling,
                reason: Reason::Disconnect(DisconnectReason::PingTimeout),
                diagnosis: Wording::of(facts(DisconnectReason::PingTimeout, Ending::Unknown)),
                breadcrumbs: Vec::new(),
                dropped_steps: 0,
            }));
        }
        let kept = reports.snapshot();
        assert_eq!(kept.len(), MAX_REPORTS);
        assert_eq!(kept[0].socket_id, "5");
    }

    #[test]
    fn refusal_reports_are_bounded_in_rate_and_text() {
        let reports = Reports::new(MAX_REPORTS);
        let t0 = std::time::Instant::now();
        let admitted = (0..1000).filter(|_| reports.admit_refusal(t0)).count();
        assert_eq!(admitted, REFUSAL_REPORTS_BURST as usize);
        let later = t0 + Duration::from_secs(1);
        let admitted = (0..1000).filter(|_| reports.admit_refusal(later)).count();
        assert_eq!(admitted, REFUSAL_REPORTS_PER_SECOND as usize);
        let long = format!("bad\u{7}token for ann@example.com {}", "é".repeat(200));
        let b = bounded(&long);
        assert!(b.len() <= MAX_REFUSAL_TEXT + "…".len() + 10, "{b}");
        assert!(b.starts_with("badtoken for [email] é"), "{b}");
        assert!(b.ends_with('…'));
        // An address across the cut is scrubbed whole, not cut into one that no
        // longer looks like an address.
        let across = format!("{} ann.lee@example.com", "x".repeat(MAX_REFUSAL_TEXT - 8));
        let b = bounded(&across);
        assert!(!b.contains("ann"), "{b}");
        assert_eq!(
            bounded("bad\ntoken"),
            "badtoken",
            "nothing cut, no ellipsis"
        );
        let r = Report::refused(Refusal::new(
            Stage::Connect,
            "/chat",
            TransportKind::Websocket,
            Category::Auth,
            "invalid_token",
            "token expired",
        ));
        assert_eq!(r.reason.as_str(), "connect refused");
        assert_eq!(
            r.diagnosis.evidence,
            ["refused (invalid_token)", "token expired"]
        );
    }

    #[test]
    fn a_disconnect_is_worded_when_first_read_as_diagnose_words_it() {
        let facts = facts(DisconnectReason::PingTimeout, Ending::Unknown);
        let wording = Wording::of(facts.clone());
        let Words::Facts(_, worded) = &wording.0 else {
            panic!("a disconnect's wording starts as its facts");
        };
        assert!(worded.get().is_none(), "worded before anyone read it");
        assert_eq!(*wording, diagnose(&facts));
        assert!(worded.get().is_some());
        assert_eq!(wording, Wording::from(diagnose(&facts)));
    }

    #[test]
    fn the_json_form_rounds_the_confidence() {
        let d = diagnose(&facts(DisconnectReason::TransportClose, Ending::Lost));
        let v = d.to_value();
        assert_eq!(v["category"], "network");
        assert_eq!(v["confidence"], 0.8);
    }
}
