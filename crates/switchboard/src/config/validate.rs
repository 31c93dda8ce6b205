//! Raw values to typed settings: walks every section, applies the checks, and collects
//! every error with its dotted key and origin instead of stopping at the first.

use std::collections::BTreeMap;

use switchboard_settings::{ErrorKind, Errors};

use super::check::{self, Checked};
use super::error::{ConfigError, ConfigErrors};
use super::raw::{
    self, Field, RawConfig, RawCors, RawEngine, RawLog, RawQueue, RawShutdown, RawSocketIo,
    SECTIONS, StringList, Unknown,
};
use super::sources::{self, Merged, Origins};
use super::{Config, Loaded, LogFilter};

/// Validates merged sources into a [`Loaded`] config, or every error found.
pub(crate) fn validate(merged: Merged) -> Result<Loaded, ConfigErrors> {
    let Merged {
        table,
        origins,
        mut errors,
        as_written,
    } = merged;
    let (config, found) = check_as_written(table, &origins, &as_written);
    errors.extend(found);
    if errors.is_empty() {
        Ok(Loaded { config, origins })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// What one pass over the table found.
struct Pass {
    config: Config,
    errors: Vec<ConfigError>,
    /// Keys whose value was not even of the setting's type.
    mistyped: Vec<String>,
}

/// One pass over the merged table.
fn check_table(table: toml::Table, origins: &Origins) -> Pass {
    let mut validator = Validator {
        origins,
        errors: Vec::new(),
        mistyped: Vec::new(),
    };
    let mut config = Config::default();
    match raw::from_table(table) {
        Ok(raw) => validator.config(raw, &mut config),
        Err(message) => validator.invalid("", message),
    }
    Pass {
        config,
        errors: validator.errors,
        mistyped: validator.mistyped,
    }
}

/// Validates the table, reading an environment or flag value that looked like a
/// number or a boolean (`as_written`) as the text it was written as where the setting
/// takes text: where it was refused as a number and the text clears the error
/// (`SWITCHBOARD_CLUSTER__NODE_NAME=1`, a 16-digit API key), or where it was not even
/// of the setting's type (`SWITCHBOARD_LISTEN=3000` is then told it is not an address
/// and port, not that it is not a string). A setting that takes a number keeps it and
/// its message (`engine.max_payload=10` is under the minimum). Two more passes, and
/// only when such a value was refused.
fn check_as_written(
    table: toml::Table,
    origins: &Origins,
    as_written: &BTreeMap<String, String>,
) -> (Config, Vec<ConfigError>) {
    if as_written.is_empty() {
        let pass = check_table(table, origins);
        return (pass.config, pass.errors);
    }
    let typed = check_table(table.clone(), origins);
    let refused: Vec<&str> = as_written
        .keys()
        .map(String::as_str)
        .filter(|key| typed.errors.iter().any(|e| e.key() == Some(key)))
        .collect();
    if refused.is_empty() {
        return (typed.config, typed.errors);
    }
    let text = check_table(sources::with_text(&table, &refused, as_written), origins);
    // The text is taken where it clears the error, or where the setting takes text
    // but not that text (`SWITCHBOARD_LISTEN=3000`: told it is no address). Where the
    // text is of the wrong type too, the setting takes no text (a number, a boolean:
    // `SSE__ENABLED=1`), and the value's own message stands.
    let take: Vec<&str> = refused
        .iter()
        .copied()
        .filter(|key| {
            let text_refused = text.errors.iter().any(|e| e.key() == Some(key));
            !text_refused || !text.mistyped.iter().any(|k| k == key)
        })
        .collect();
    if take.is_empty() {
        return (typed.config, typed.errors);
    }
    if take.len() == refused.len() {
        // The text pass read exactly these as text: it is the answer.
        return (text.config, text.errors);
    }
    let pass = check_table(sources::with_text(&table, &take, as_written), origins);
    (pass.config, pass.errors)
}

/// The smallest `engine.max_payload`: below it, ordinary CONNECTs are refused.
const MIN_MAX_PAYLOAD: usize = 1024;

/// The most `engine.max_connections` and `engine.max_tcp_connections` may be: far
/// above what a machine holds, below what the listener's counting semaphore can (a
/// larger value passed validation and then panicked the accept loop).
const MAX_CONNECTIONS: usize = 100_000_000;

/// The most `socketio.max_attachments` may be. Each attachment is held until its
/// packet is whole, and a client chooses how many it announces; Node's default is 10.
const MAX_ATTACHMENTS: usize = 1_000;

/// The smallest `queue.max_packets`: a connection's own first packets must fit, also
/// halved under memory pressure.
const MIN_QUEUE_PACKETS: usize = 16;

/// The smallest `queue.max_bytes`, for the same reason (the WebSocket `open` packet
/// alone is over 100 bytes).
const MIN_QUEUE_BYTES: usize = 1024;

/// Collects errors while values are read; each reader returns `None` for a bad value
/// so the default stays in place and validation goes on. Sections in sibling modules
/// (`api`) add their own `impl Validator` blocks.
pub(super) struct Validator<'a> {
    origins: &'a Origins,
    errors: Vec<ConfigError>,
    /// Keys whose value was not of the setting's type (a number where text goes).
    mistyped: Vec<String>,
}

impl Validator<'_> {
    /// Whether `key` was already reported: checks of other keys against it are then
    /// skipped (they would compare with its default).
    pub(super) fn refused(&self, key: &str) -> bool {
        self.errors.iter().any(|e| e.key() == Some(key))
    }

    pub(super) fn invalid(&mut self, key: &str, message: String) {
        self.errors.push(ConfigError::Invalid {
            key: key.to_owned(),
            message,
            origin: self.origins.of(key),
        });
    }

    /// Reads `field` as written, checks it, and stores it in `slot`; a bad value is
    /// reported and leaves `slot` (the default) alone.
    pub(super) fn read<T, U>(
        &mut self,
        slot: &mut U,
        key: &str,
        field: Option<Field<T>>,
        check: impl FnOnce(T) -> Checked<U>,
    ) {
        let Some(field) = field else { return };
        let value = match field.0 {
            Ok(value) => value,
            Err(message) => {
                self.mistyped.push(key.to_owned());
                return self.invalid(key, message);
            }
        };
        match check(value) {
            Ok(value) => *slot = value,
            Err(message) => self.invalid(key, message),
        }
    }

    /// A section; one that is not a table is reported and read as empty.
    pub(super) fn section<T: Default>(&mut self, key: &str, field: Option<Field<T>>) -> T {
        match field.map(|f| f.0) {
            None => T::default(),
            Some(Ok(section)) => section,
            Some(Err(_)) => {
                self.invalid(key, format!("must be a table ([{key}])"));
                T::default()
            }
        }
    }

    pub(super) fn unknown(&mut self, section: &str, unknown: Unknown) {
        let known = SECTIONS
            .iter()
            .find(|(name, _)| *name == section)
            .map_or(&[][..], |(_, keys)| keys);
        for name in unknown.into_keys() {
            let key = if section.is_empty() {
                name.clone()
            } else {
                format!("{section}.{name}")
            };
            self.errors.push(ConfigError::UnknownKey {
                hint: closest(&name, known).map(str::to_owned),
                origin: self.origins.of(&key),
                key,
            });
        }
    }

    /// Records errors found by the hand-walked sections (`namespaces`, `hooks`) and the
    /// readers of `switchboard-auth` and `switchboard-hooks`, with the origin of the
    /// value they sit in and a hint for unknown keys.
    pub(super) fn report(&mut self, errors: Errors) {
        for err in errors {
            // `namespaces[0].auth.secret` sits in the `namespaces` array, which has one
            // origin; `hooks.webhook.secret` has its own.
            let origin = self
                .origins
                .of(err.key.split('[').next().unwrap_or_default());
            let error = match err.kind {
                ErrorKind::Invalid(message) => ConfigError::Invalid {
                    key: err.key,
                    message,
                    origin,
                },
                ErrorKind::Unknown { known } => {
                    let known: Vec<&str> = known.iter().map(String::as_str).collect();
                    ConfigError::UnknownKey {
                        hint: closest(err.key.rsplit('.').next().unwrap_or_default(), &known)
                            .map(str::to_owned),
                        key: err.key,
                        origin,
                    }
                }
            };
            self.errors.push(error);
        }
    }

    fn config(&mut self, raw: RawConfig, c: &mut Config) {
        self.unknown("", raw.unknown);
        self.read(&mut c.listen, "listen", raw.listen, check::listen);
        self.rules(raw.namespaces, raw.hooks, c);
        let log = self.section("log", raw.log);
        self.log(log, c);
        let engine = self.section("engine", raw.engine);
        self.engine(engine, c);
        let socketio = self.section("socketio", raw.socketio);
        self.socketio(socketio, c);
        let cors = self.section("cors", raw.cors);
        self.cors(cors, c);
        let queue = self.section("queue", raw.queue);
        self.queue(queue, c);
        let shutdown = self.section("shutdown", raw.shutdown);
        self.shutdown(shutdown, c);
        let api = self.section("api", raw.api);
        self.api(api, c);
        let statics = self.section("static", raw.statics);
        self.statics(statics, c);
        let cluster = self.section("cluster", raw.cluster);
        self.cluster(cluster, c);
        let recovery = self.section("recovery", raw.recovery);
        self.recovery(recovery, c);
        let sse = self.section("sse", raw.sse);
        self.sse(sse, c);
        let diagnosis = self.section("diagnosis", raw.diagnosis);
        self.diagnosis(diagnosis, c);
        let limits = self.section("limits", raw.limits);
        self.limits(limits, c);
        let admin = self.section("admin", raw.admin);
        self.admin(admin, c);
        self.browser_safety(c);
        self.cluster_message_sizes(c);
        self.queues_take_messages(c);
    }

    /// Each receiver's outbound queue must take the largest message one sender can
    /// make: a client's event (`engine.max_payload`, attachments included; relayed, it
    /// may be written up to half as long again, so twice it leaves room) and an API
    /// emit (`api.max_body_bytes`). A larger one closed every receiver as a slow
    /// consumer: one client could close every member of a room with one event. (Under
    /// critical memory pressure the bound is halved, and such an event may then not
    /// fit: shedding is that tier's purpose.)
    fn queues_take_messages(&mut self, c: &Config) {
        const QUEUE: &str = "queue.max_bytes";
        let queue = c.socketio.engine.queue.max_bytes;
        let payload = c.socketio.engine.max_payload;
        if self.refused(QUEUE) {
            return;
        }
        if !self.refused("engine.max_payload") && queue / 2 < payload {
            self.invalid(
                QUEUE,
                format!(
                    "must be at least twice engine.max_payload ({payload}): a client's event \
                     of that size, relayed to others, would close each of them as a slow \
                     consumer"
                ),
            );
        }
        let body = c.api.max_body_bytes;
        if !self.refused("api.max_body_bytes") && queue < body {
            self.invalid(
                QUEUE,
                format!(
                    "must be at least api.max_body_bytes ({body}): an emit of that size \
                     would close each receiver as a slow consumer"
                ),
            );
        }
    }

    /// With a Redis adapter, what one node sends the others must fit in a message
    /// they decode (`MAX_PEER_MESSAGE_BYTES`, 16 MiB, less 1 MiB for the envelope): a
    /// client's event or polling body (`engine.max_payload`), an API request's
    /// broadcast (`api.max_body_bytes`) and a forwarded poll's answer (up to
    /// `queue.max_bytes`). Larger ones would reach this node's clients and be dropped
    /// by every other node.
    fn cluster_message_sizes(&mut self, c: &Config) {
        if c.cluster.cluster.adapter == switchboard_cluster::AdapterKind::Memory {
            return;
        }
        let most = switchboard_cluster::MAX_PEER_MESSAGE_BYTES - (1 << 20);
        let sizes = [
            ("engine.max_payload", c.socketio.engine.max_payload),
            ("api.max_body_bytes", c.api.max_body_bytes),
            ("queue.max_bytes", c.socketio.engine.queue.max_bytes),
        ];
        for (key, size) in sizes {
            if size > most {
                self.invalid(
                    key,
                    format!(
                        "must be at most {most} with cluster.adapter = \"{}\": other nodes \
                         decode messages of at most {} bytes and drop longer ones",
                        c.cluster.cluster.adapter.as_str(),
                        switchboard_cluster::MAX_PEER_MESSAGE_BYTES
                    ),
                );
            }
        }
    }

    /// Settings that are each valid alone but together let any web page act as a
    /// logged-in user (cross-site request forgery and WebSocket hijacking): browsers
    /// attach cookies to cross-site requests, so credentials must come with an explicit
    /// list of trusted origins.
    fn browser_safety(&mut self, c: &Config) {
        use switchboard_auth::TokenSource;
        use switchboard_engine::config::AllowedOrigins;
        // A list that was refused stays "*" here: the user wrote one, and its own
        // error says what is wrong with it.
        if c.socketio.engine.cors.allowed_origins != AllowedOrigins::Any
            || self.refused("cors.allowed_origins")
        {
            return;
        }
        if c.socketio.engine.cors.credentials {
            self.invalid(
                "cors.credentials",
                "`true` needs an explicit `cors.allowed_origins` list: with \"*\" any web \
                 site could use its visitors' cookies here"
                    .to_owned(),
            );
        }
        let mut problems = Errors::new();
        for rules in &c.namespaces {
            let Some(auth) = &rules.auth else { continue };
            if auth
                .settings
                .sources
                .iter()
                .any(|s| matches!(s, TokenSource::Cookie { .. }))
            {
                // The entry's own path: entries with problems are left out of
                // `c.namespaces`, so its index there may not be the one written.
                problems.invalid(
                    switchboard_settings::join(&auth.settings.path, "token_sources"),
                    "a `cookie:` token source needs an explicit `cors.allowed_origins` \
                     list: with \"*\" any web site could connect as its visitors \
                     (cross-site WebSocket hijacking)",
                );
            }
        }
        self.report(problems);
    }

    fn log(&mut self, raw: RawLog, c: &mut Config) {
        self.unknown("log", raw.unknown);
        let log = &mut c.log;
        self.read(&mut log.format, "log.format", raw.format, Ok);
        let level = |s: String| LogFilter::parse(&s);
        self.read(&mut log.level, "log.level", raw.level, level);
    }

    fn engine(&mut self, raw: RawEngine, c: &mut Config) {
        use check::{positive_count as count, positive_duration as duration};
        self.unknown("engine", raw.unknown);
        let e = &mut c.socketio.engine;
        self.read(&mut e.path, "engine.path", raw.path, check::engine_path);
        let transports = |l: StringList| check::transports(l.0);
        self.read(
            &mut e.transports,
            "engine.transports",
            raw.transports,
            transports,
        );
        self.read(
            &mut e.ping_interval,
            "engine.ping_interval",
            raw.ping_interval,
            check::period,
        );
        self.read(
            &mut e.ping_timeout,
            "engine.ping_timeout",
            raw.ping_timeout,
            check::period,
        );
        self.read(
            &mut e.upgrade_timeout,
            "engine.upgrade_timeout",
            raw.upgrade_timeout,
            duration,
        );
        self.read(
            &mut e.max_payload,
            "engine.max_payload",
            raw.max_payload,
            check::count_in(
                MIN_MAX_PAYLOAD,
                usize::MAX,
                "a CONNECT carrying a token takes hundreds of bytes",
            ),
        );
        let connections = || {
            check::count_in(
                1,
                MAX_CONNECTIONS,
                "a bound no machine reaches (each connection is a file descriptor)",
            )
        };
        self.read(
            &mut e.max_connections,
            "engine.max_connections",
            raw.max_connections,
            connections(),
        );
        // Unset, the TCP cap follows `max_connections`, with room for connections
        // that are not sessions (see the constant).
        e.max_tcp_connections = e
            .max_connections
            .saturating_add(switchboard_engine::config::TCP_CONNECTION_HEADROOM);
        self.read(
            &mut e.max_tcp_connections,
            "engine.max_tcp_connections",
            raw.max_tcp_connections,
            connections(),
        );
        self.read(
            &mut e.body_timeout,
            "engine.body_timeout",
            raw.body_timeout,
            duration,
        );
        self.read(
            &mut e.max_inbound_bytes,
            "engine.max_inbound_bytes",
            raw.max_inbound_bytes,
            count,
        );
        self.read(
            &mut e.max_sessions_per_ip,
            "engine.max_sessions_per_ip",
            raw.max_sessions_per_ip,
            check::any_count,
        );
        let rate = &mut e.handshake_rate_per_ip;
        self.read(
            &mut rate.per_second,
            "engine.handshakes_per_ip_per_second",
            raw.handshakes_per_ip_per_second,
            check::u32_count,
        );
        // Unset, the burst is ten seconds' worth: a page's reconnects after a node
        // restarted, or a NAT's clients coming back together, pass at once.
        rate.burst = rate.per_second.saturating_mul(10).max(1);
        self.read(
            &mut rate.burst,
            "engine.handshake_burst_per_ip",
            raw.handshake_burst_per_ip,
            check::positive_u32,
        );
        let networks = |l: StringList| check::networks(l.0);
        self.read(
            &mut e.trusted_proxies,
            "engine.trusted_proxies",
            raw.trusted_proxies,
            networks,
        );
        // A bad `max_payload` is reported once, not again against what depends on it.
        if !self.refused("engine.max_payload") && e.max_inbound_bytes < e.max_payload {
            // A message of the allowed size could never arrive in pieces.
            self.invalid(
                "engine.max_inbound_bytes",
                format!(
                    "must be at least engine.max_payload ({}): a message of that size \
                     arriving in pieces is charged whole against it",
                    e.max_payload
                ),
            );
        }
    }

    fn socketio(&mut self, raw: RawSocketIo, c: &mut Config) {
        self.unknown("socketio", raw.unknown);
        let sio = &mut c.socketio;
        let (connect, attachments) = (raw.connect_timeout, raw.max_attachments);
        self.read(
            &mut sio.connect_timeout,
            "socketio.connect_timeout",
            connect,
            check::positive_duration,
        );
        self.read(
            &mut sio.max_attachments,
            "socketio.max_attachments",
            attachments,
            check::count_in(
                0,
                MAX_ATTACHMENTS,
                "each attachment is held until its packet is whole, and a client picks \
                 how many it sends (Node's default is 10)",
            ),
        );
        self.read(
            &mut sio.max_connect_auth,
            "socketio.max_connect_auth",
            raw.max_connect_auth,
            check::positive_count,
        );
        self.read(
            &mut sio.max_pattern_namespaces,
            "socketio.max_pattern_namespaces",
            raw.max_pattern_namespaces,
            check::positive_count,
        );
    }

    fn cors(&mut self, raw: RawCors, c: &mut Config) {
        self.unknown("cors", raw.unknown);
        let cors = &mut c.socketio.engine.cors;
        let origins = |l: StringList| check::allowed_origins(l.0);
        self.read(
            &mut cors.allowed_origins,
            "cors.allowed_origins",
            raw.allowed_origins,
            origins,
        );
        self.read(
            &mut cors.credentials,
            "cors.credentials",
            raw.credentials,
            Ok,
        );
    }

    fn queue(&mut self, raw: RawQueue, c: &mut Config) {
        self.unknown("queue", raw.unknown);
        let q = &mut c.socketio.engine.queue;
        self.read(
            &mut q.max_packets,
            "queue.max_packets",
            raw.max_packets,
            check::count_in(
                MIN_QUEUE_PACKETS,
                usize::MAX,
                "the server's own packets (the CONNECT answer, pings, an upgrade's) queue too, \
                 and memory pressure halves the bound",
            ),
        );
        self.read(
            &mut q.max_bytes,
            "queue.max_bytes",
            raw.max_bytes,
            check::count_in(
                MIN_QUEUE_BYTES,
                usize::MAX,
                "the server's own first packets must fit",
            ),
        );
    }

    fn shutdown(&mut self, raw: RawShutdown, c: &mut Config) {
        self.unknown("shutdown", raw.unknown);
        let deadline = raw.drain_deadline;
        self.read(
            &mut c.drain_deadline,
            "shutdown.drain_deadline",
            deadline,
            check::any_duration,
        );
        let (batch, interval) = (raw.drain_batch, raw.drain_interval);
        self.read(
            &mut c.drain_batch,
            "shutdown.drain_batch",
            batch,
            check::positive_count,
        );
        self.read(
            &mut c.drain_interval,
            "shutdown.drain_interval",
            interval,
            check::any_duration,
        );
    }
}

/// The known key closest to `name` by Levenshtein distance (a transposition counts as
/// two edits), if it is close enough to be a typo of it.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load;
    use crate::config::tests::sources;

    fn with_flag(set: &str) -> Result<Loaded, ConfigErrors> {
        load(&sources(None, &[], &[("--set", set)]))
    }

    /// `socketio.max_attachments` has a bound: each attachment announced is held until
    /// its packet is whole (a billion let one session hold ~90 MB).
    #[test]
    fn max_attachments_is_at_most_a_thousand() {
        let ok = with_flag("socketio.max_attachments=1000")
            .unwrap_or_else(|errors| panic!("1000 is fine: {errors}"));
        assert_eq!(ok.config.socketio.max_attachments, 1000);
        let ok = with_flag("socketio.max_attachments=0")
            .unwrap_or_else(|errors| panic!("0 (no binary packets) is fine: {errors}"));
        assert_eq!(ok.config.socketio.max_attachments, 0);
        for over in ["1001", "1000000000"] {
            let errors =
                with_flag(&format!("socketio.max_attachments={over}")).expect_err("over the bound");
            assert_eq!(errors.keys(), ["socketio.max_attachments"], "{errors}");
            assert!(errors.to_string().contains("at most 1000"), "{errors}");
        }
    }

    #[test]
    fn typo_hints_pick_the_nearest_key() {
        let known = ["ping_interval", "ping_timeout", "path"];
        assert_eq!(closest("ping_intervl", &known), Some("ping_interval"));
        assert_eq!(closest("pth", &known), Some("path"));
        assert_eq!(closest("completely_else", &known), None);
        // Levenshtein, not Damerau: two swapped pairs are four edits, over the bound of 3
        // for a 13-letter key (the optimal-string-alignment distance would be 2).
        assert_eq!(closest("pnig_itnerval", &known), None);
        assert_eq!(closest("png_intrval", &known), Some("ping_interval"));
    }
}
