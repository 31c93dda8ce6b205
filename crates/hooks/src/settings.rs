//! Typed webhook settings, their defaults (each with its reason), and the loader from a
//! TOML table that reports every bad key at once.
//!
//! ```toml
//! [hooks.webhook]
//! url = "https://backend.internal/switchboard/hooks"   # required, http or https
//! forward_url = "https://backend.internal/switchboard/events"  # default: url
//! secret = "…"                 # required: the HMAC key for Switchboard-Signature
//! timeout = "10s"              # per lifecycle delivery attempt
//! forward_timeout = "5s"       # forwarded events: the whole wait for the reply
//! forward_concurrency = 256    # forwarded events in flight at once
//! queue_capacity = 10000       # lifecycle events waiting for delivery
//! concurrency = 4              # lifecycle deliveries in flight at once
//! overflow = "drop_newest"     # or "drop_oldest"
//! max_attempts = 8
//! backoff_initial = "500ms"
//! backoff_max = "30s"
//! backoff_multiplier = 2.0
//! max_retry_after = "5m"       # cap on a backend's Retry-After
//! dead_letter_path = "/var/lib/switchboard/dead-letters.jsonl"   # default: none
//! dead_letter_max_bytes = 67108864
//! dead_letter_memory = 256     # dead letters kept in memory for inspection
//! drain_timeout = "5s"         # on shutdown, time to flush the queue
//! tls_ca_file = "/etc/switchboard/backend-ca.pem"  # extra trusted roots (PEM)
//! ```

mod reader;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

pub use switchboard_settings::SettingError;
use switchboard_settings::TableReader;

use self::reader::{count, duration, integer, multiplier, overflow, path, secret, url};

/// Per-attempt timeout for lifecycle deliveries. A receiver only has to store the event;
/// ten seconds covers a slow cold start without letting one stuck request hold a worker
/// for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout for a forwarded event's reply. A client is waiting for its acknowledgement,
/// and Socket.IO clients commonly give acks 5–10 s: failing within 5 s lets the engine
/// answer the client with an error before the client gives up on its own.
pub const DEFAULT_FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// Forwarded events in flight at once. Each holds a connection to the backend; this
/// keeps a burst of client events from opening thousands of sockets, and the excess
/// waits for a slot within its own forward timeout.
pub const DEFAULT_FORWARD_CONCURRENCY: usize = 256;
/// Lifecycle events waiting for delivery. Bodies are a few hundred bytes, so this is a
/// few MB at most, and it absorbs a reconnect storm of thousands of sockets (a connect
/// and a disconnect each) while the backend catches up.
pub const DEFAULT_QUEUE_CAPACITY: usize = 10_000;
/// Lifecycle deliveries in flight at once: enough to hide one slow response, few
/// enough not to flood a backend that is recovering.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Attempts per lifecycle event. With the default backoff the last attempt comes about
/// a minute after the first at worst (31 s expected), which rides out a rolling restart
/// of the backend without parking a worker on one event for long.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;
/// First retry delay cap: long enough not to hammer a backend that just failed.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Largest retry delay cap: a backend that is down for longer is better served by the
/// dead-letter store than by ever longer waits.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Growth of the delay cap per attempt (the usual doubling).
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 2.0;
/// Longest `Retry-After` honoured: a backend asking to wait is obeyed, but not a value
/// (a bug, a misread date) that would park a worker for hours.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Size at which the dead-letter file is rotated: big enough for a long outage's worth
/// of events, small enough that two generations fit on any disk.
pub const DEFAULT_DEAD_LETTER_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Dead letters kept in memory for [`dead_letters`](crate::WebhookSink::dead_letters):
/// the recent failures an operator looks at, a few hundred KB at most.
pub const DEFAULT_DEAD_LETTER_MEMORY: usize = 256;
/// Time given to flush the queue on shutdown. A few seconds, well inside the usual
/// termination grace period (Kubernetes gives 30 s) once the engine has drained.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest accepted `queue_capacity`: a million small bodies is already hundreds of MB.
const MAX_QUEUE_CAPACITY: u64 = 1_000_000;
/// Largest accepted `concurrency`: more would be a flood, not a queue.
const MAX_CONCURRENCY: u64 = 256;
/// Largest accepted `forward_concurrency`: bounded by the sockets one process can open.
const MAX_FORWARD_CONCURRENCY: u64 = 10_000;
/// Largest accepted `max_attempts`.
const MAX_ATTEMPTS: u64 = 100;
/// Smallest accepted `dead_letter_max_bytes`: a file must hold at least a few records.
const MIN_DEAD_LETTER_BYTES: u64 = 4096;
/// Largest accepted `dead_letter_memory`.
const MAX_DEAD_LETTER_MEMORY: u64 = 100_000;

/// What [`deliver`](crate::HookSink::deliver) does when the queue is full. Either way
/// the caller is not blocked, memory does not grow, and the lost event is counted
/// (`dropped_overflow`) and dead-lettered (reason `overflow`), so it can be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OverflowPolicy {
    /// Refuse the new event; what is queued keeps its place (oldest first delivery).
    #[default]
    DropNewest,
    /// Evict the oldest queued event to make room: the freshest state wins.
    DropOldest,
}

/// The HMAC key. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Settings of a [`WebhookSink`](crate::WebhookSink). Build with [`new`](Self::new)
/// (every default) or [`from_toml`](Self::from_toml), then adjust fields.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where lifecycle events are POSTed (`http` or `https`).
    pub url: Uri,
    /// Where forwarded events are POSTed; `None`: [`url`](Self::url).
    pub forward_url: Option<Uri>,
    /// The HMAC-SHA256 key of `Switchboard-Signature`.
    pub secret: Secret,
    /// Per-attempt timeout of a lifecycle delivery (connect, send, response headers).
    pub timeout: Duration,
    /// Whole wait for a forwarded event's reply, including waiting for a slot.
    pub forward_timeout: Duration,
    /// Forwarded events in flight at once.
    pub forward_concurrency: usize,
    /// Lifecycle events waiting for delivery.
    pub queue_capacity: usize,
    /// Lifecycle deliveries in flight at once (worker tasks).
    pub concurrency: usize,
    /// What to do when the queue is full.
    pub overflow: OverflowPolicy,
    /// Attempts per lifecycle event before it is dead-lettered (1: no retry).
    pub max_attempts: u32,
    /// Cap of the first retry delay.
    pub backoff_initial: Duration,
    /// Largest cap of a retry delay.
    pub backoff_max: Duration,
    /// Growth of the cap per attempt.
    pub backoff_multiplier: f64,
    /// Longest `Retry-After` honoured.
    pub max_retry_after: Duration,
    /// Append-only JSONL dead-letter file; `None`: memory only.
    pub dead_letter_path: Option<PathBuf>,
    /// Size at which the dead-letter file is rotated to `<path>.1`.
    pub dead_letter_max_bytes: u64,
    /// Dead letters kept in memory (0: none).
    pub dead_letter_memory: usize,
    /// Time given to flush the queue on shutdown.
    pub drain_timeout: Duration,
    /// A PEM bundle of root certificates trusted for `https` besides the system's
    /// (a private CA); `None`: the system's only.
    pub tls_ca_file: Option<PathBuf>,
}

impl WebhookSettings {
    /// Settings with every default, for `url` signed with `secret`.
    pub fn new(url: Uri, secret: Secret) -> Self {
        WebhookSettings {
            url,
            forward_url: None,
            secret,
            timeout: DEFAULT_TIMEOUT,
            forward_timeout: DEFAULT_FORWARD_TIMEOUT,
            forward_concurrency: DEFAULT_FORWARD_CONCURRENCY,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            concurrency: DEFAULT_CONCURRENCY,
            overflow: OverflowPolicy::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            backoff_multiplier: DEFAULT_BACKOFF_MULTIPLIER,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            dead_letter_path: None,
            dead_letter_max_bytes: DEFAULT_DEAD_LETTER_MAX_BYTES,
            dead_letter_memory: DEFAULT_DEAD_LETTER_MEMORY,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            tls_ca_file: None,
        }
    }

    /// Where forwarded events go.
    pub fn forward_url(&self) -> &Uri {
        self.forward_url.as_ref().unwrap_or(&self.url)
    }

    /// Reads the table at `path` (e.g. `hooks.webhook`), reporting every problem with
    /// its dotted key.
    pub fn from_toml(value: &toml::Value, path: &str) -> Result<Self, Vec<SettingError>> {
        let mut reader = TableReader::new(value, path)?;
        let settings = WebhookSettings::read(&mut reader);
        // Every key is asked for by `read`, so what is left is unknown.
        reader.finish()?;
        Ok(settings)
    }

    /// Every key of the table, each bad one recorded in `r` and read as its default.
    fn read(r: &mut TableReader<'_>) -> Self {
        let url_value = url(r, "url", true);
        let forward_url = url(r, "forward_url", false);
        let secret = secret(r);
        let d = WebhookSettings::new(Uri::from_static("http://unset/"), Secret::new(""));
        let settings = WebhookSettings {
            url: url_value.clone().unwrap_or(d.url),
            forward_url,
            secret: secret.unwrap_or(d.secret),
            timeout: duration(r, "timeout", d.timeout, false),
            forward_timeout: duration(r, "forward_timeout", d.forward_timeout, false),
            forward_concurrency: count(
                r,
                "forward_concurrency",
                d.forward_concurrency,
                1,
                MAX_FORWARD_CONCURRENCY,
            ),
            queue_capacity: count(r, "queue_capacity", d.queue_capacity, 1, MAX_QUEUE_CAPACITY),
            concurrency: count(r, "concurrency", d.concurrency, 1, MAX_CONCURRENCY),
            overflow: overflow(r),
            max_attempts: integer(
                r,
                "max_attempts",
                u64::from(d.max_attempts),
                1,
                MAX_ATTEMPTS,
            )
            .try_into()
            .unwrap_or(d.max_attempts),
            backoff_initial: duration(r, "backoff_initial", d.backoff_initial, false),
            backoff_max: duration(r, "backoff_max", d.backoff_max, false),
            backoff_multiplier: multiplier(r, d.backoff_multiplier),
            // Zero would retry a backend that asked to wait at once.
            max_retry_after: duration(r, "max_retry_after", d.max_retry_after, false),
            dead_letter_path: path(r, "dead_letter_path"),
            dead_letter_max_bytes: integer(
                r,
                "dead_letter_max_bytes",
                d.dead_letter_max_bytes,
                MIN_DEAD_LETTER_BYTES,
                u64::MAX,
            ),
            dead_letter_memory: count(
                r,
                "dead_letter_memory",
                d.dead_letter_memory,
                0,
                MAX_DEAD_LETTER_MEMORY,
            ),
            drain_timeout: duration(r, "drain_timeout", d.drain_timeout, true),
            tls_ca_file: path(r, "tls_ca_file"),
        };
        if settings.backoff_max < settings.backoff_initial {
            r.error("backoff_max", "must not be shorter than backoff_initial");
        }
        if let Some(path) = &settings.dead_letter_path
            && let Some(why) = dead_letter_path_problem(path)
        {
            r.error("dead_letter_path", why);
        }
        // Read now, as the sink would at start, so a bad file is reported with every
        // other bad key; a file no `https` URL would use is a mistake too.
        if let (Some(ca), Some(url)) = (&settings.tls_ca_file, &url_value) {
            let https = [url, settings.forward_url()]
                .into_iter()
                .any(|u| u.scheme() == Some(&http::uri::Scheme::HTTPS));
            if !https {
                r.error(
                    "tls_ca_file",
                    "is only read for https, and neither url nor forward_url is https",
                );
            } else if let Err(err) = switchboard_http_client::check_ca_file(ca) {
                r.error("tls_ca_file", err.to_string());
            }
        }
        settings
    }
}

/// Why the dead-letter file at `path` could not be opened at start, if that can be
/// told without touching it: its directory must exist and, when the file does not
/// yet, be writable by this user (the file is made there, and rotated by renames in
/// it); a file that exists must be a regular file this user may write (a FIFO or a
/// device would block or misbehave; nothing is opened here, so the check cannot hang).
/// Checked with every other key, so `check-config` finds it; before, only `serve`
/// did, exiting 1 rather than 64.
fn dead_letter_path_problem(path: &std::path::Path) -> Option<String> {
    use rustix::fs::{Access, access};
    let shown = path.display();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Some(format!("`{shown}`: {} is not a directory", dir.display())),
        Err(err) => return Some(format!("`{shown}`: its directory {}: {err}", dir.display())),
    }
    let writable = |at: &std::path::Path, what: &str| {
        access(at, Access::WRITE_OK)
            .err()
            .map(|err| format!("`{shown}`: {what} is not writable by this user: {err}"))
    };
    // `metadata` follows a link: it is judged by what it points at.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => writable(path, "the file")
            .or_else(|| writable(dir, &format!("its directory {}", dir.display()))),
        Ok(_) => Some(format!("`{shown}` is not a regular file")),
        Err(_) => writable(dir, &format!("its directory {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebhookSettings, Vec<SettingError>> {
        let value: toml::Value =
            toml::from_str(text).map_err(|e| vec![SettingError::new("<toml>", e.to_string())])?;
        let Some(table) = value.get("webhook") else {
            return Err(vec![]);
        };
        WebhookSettings::from_toml(table, "hooks.webhook")
    }

    fn keys(errors: &[SettingError]) -> Vec<&str> {
        errors.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn minimal_table_takes_every_default() -> Result<(), Vec<SettingError>> {
        let s = parse("[webhook]\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"k\"\n")?;
        assert_eq!(s.url, Uri::from_static("http://127.0.0.1:9/h"));
        assert_eq!(s.forward_url(), &s.url);
        assert_eq!(s.secret.expose(), b"k");
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.queue_capacity, DEFAULT_QUEUE_CAPACITY);
        assert_eq!(s.overflow, OverflowPolicy::DropNewest);
        assert_eq!(s.dead_letter_path, None);
        assert!(
            !format!("{s:?}").contains("\"k\""),
            "secret must not be printed"
        );
        Ok(())
    }

    #[test]
    fn reads_every_key() -> Result<(), Vec<SettingError>> {
        let s = parse(
            &r#"[webhook]
url = "https://example.test/hooks"
forward_url = "http://127.0.0.1:8080/events"
secret = "k"
timeout = "250ms"
forward_timeout = 3000
forward_concurrency = 8
queue_capacity = 10
concurrency = 2
overflow = "drop_oldest"
max_attempts = 3
backoff_initial = "10ms"
backoff_max = "1s"
backoff_multiplier = 3
max_retry_after = "1m"
dead_letter_path = "/tmp/dl.jsonl"
dead_letter_max_bytes = 8192
dead_letter_memory = 0
drain_timeout = "0s"
tls_ca_file = "CA"
"#
            .replace("CA", &test_ca().display().to_string()),
        )?;
        assert_eq!(
            s.forward_url(),
            &Uri::from_static("http://127.0.0.1:8080/events")
        );
        assert_eq!(s.timeout, Duration::from_millis(250));
        assert_eq!(s.forward_timeout, Duration::from_secs(3));
        assert_eq!(s.forward_concurrency, 8);
        assert_eq!((s.queue_capacity, s.concurrency), (10, 2));
        assert_eq!(s.overflow, OverflowPolicy::DropOldest);
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.backoff_initial, Duration::from_millis(10));
        assert_eq!(s.backoff_max, Duration::from_secs(1));
        assert!((s.backoff_multiplier - 3.0).abs() < f64::EPSILON);
        assert_eq!(s.max_retry_after, Duration::from_secs(60));
        assert_eq!(s.dead_letter_path, Some(PathBuf::from("/tmp/dl.jsonl")));
        assert_eq!((s.dead_letter_max_bytes, s.dead_letter_memory), (8192, 0));
        assert_eq!(s.drain_timeout, Duration::ZERO);
        assert_eq!(s.tls_ca_file, Some(test_ca()));
        Ok(())
    }

    /// The test CA of `switchboard-http-client`.
    fn test_ca() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../http-client/testdata/ca.pem")
    }

    /// A CA file is read with the rest of the settings: one that cannot be read, or one
    /// no `https` URL would use, is a bad key like any other; `max_retry_after = 0`
    /// (retry at once a backend that asked to wait) is one too.
    #[test]
    fn a_ca_file_is_checked_with_the_other_keys() {
        let table = |url: &str, ca: &str| {
            format!(
                "[webhook]\nurl = \"{url}\"\nsecret = \"k\"\ntls_ca_file = \"{ca}\"\nmax_retry_after = 0\n"
            )
        };
        let missing = parse(&table("https://127.0.0.1:9/h", "/nonexistent/ca.pem"));
        let errors = missing.err().unwrap_or_default();
        assert_eq!(
            keys(&errors),
            ["hooks.webhook.max_retry_after", "hooks.webhook.tls_ca_file"]
        );
        let ca = test_ca().display().to_string();
        let unused = parse(&table("http://127.0.0.1:9/h", &ca))
            .err()
            .unwrap_or_default();
        assert!(
            unused.iter().any(|e| e.key == "hooks.webhook.tls_ca_file"
                && e.kind
                    .to_string()
                    .contains("neither url nor forward_url is https")),
            "{unused:?}"
        );
    }

    /// A port that is none would be read as no port, and the events sent to the
    /// scheme's default port (80 or 443) of that host.
    #[test]
    fn a_url_whose_port_is_no_port_is_refused() {
        for url in [
            "http://127.0.0.1:99999/h",
            "https://backend:0/h",
            "http://backend:/h",
        ] {
            let errors = parse(&format!(
                "[webhook]\nurl = \"http://ok:8080/\"\nforward_url = \"{url}\"\nsecret = \"k\"\n"
            ))
            .err()
            .unwrap_or_default();
            assert_eq!(keys(&errors), ["hooks.webhook.forward_url"], "{url}");
            let errors = parse(&format!("[webhook]\nurl = \"{url}\"\nsecret = \"k\"\n"))
                .err()
                .unwrap_or_default();
            assert_eq!(keys(&errors), ["hooks.webhook.url"], "{url}");
        }
    }

    /// A dead-letter file that could not be opened is found with every other key,
    /// not when the server starts.
    #[test]
    fn a_dead_letter_file_that_cannot_be_opened_is_refused() {
        let dir = std::env::temp_dir();
        let with = |path: &str| {
            parse(&format!(
                "[webhook]\nurl = \"http://ok/\"\nsecret = \"k\"\ndead_letter_path = {path:?}\n"
            ))
        };
        for bad in [
            "/nonexistent-switchboard-dir/dl.jsonl".to_owned(),
            dir.display().to_string(),
        ] {
            let errors = with(&bad).err().unwrap_or_default();
            assert_eq!(keys(&errors), ["hooks.webhook.dead_letter_path"], "{bad}");
        }
        let fine = dir.join(format!("sb-dl-{}.jsonl", std::process::id()));
        assert!(with(&fine.display().to_string()).is_ok());
        assert!(!fine.exists(), "checking writes nothing");
        // A FIFO without a reader: refused, and the check does not block opening it.
        let scratch = tempfile::tempdir().unwrap();
        let fifo = scratch.path().join("dl.fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let errors = with(&fifo.display().to_string()).err().unwrap_or_default();
        assert_eq!(keys(&errors), ["hooks.webhook.dead_letter_path"]);
        // An existing regular file is fine.
        let file = scratch.path().join("dl.jsonl");
        std::fs::write(&file, "").unwrap();
        assert!(with(&file.display().to_string()).is_ok());
    }

    #[test]
    fn reports_every_bad_key_with_its_path() {
        let errors = parse(
            r#"[webhook]
url = "ftp://x"
timeout = "5 seconds"
forward_timeout = 0
queue_capacity = 0
concurrency = "4"
overflow = "block"
max_attempts = -1
backoff_initial = "2s"
backoff_max = "1s"
backoff_multiplier = 0.5
dead_letter_max_bytes = 10
tiemout = "1s"
"#,
        )
        .err()
        .unwrap_or_default();
        let mut got = keys(&errors);
        got.sort_unstable();
        assert_eq!(
            got,
            vec![
                "hooks.webhook.backoff_max",
                "hooks.webhook.backoff_multiplier",
                "hooks.webhook.concurrency",
                "hooks.webhook.dead_letter_max_bytes",
                "hooks.webhook.forward_timeout",
                "hooks.webhook.max_attempts",
                "hooks.webhook.overflow",
                "hooks.webhook.queue_capacity",
                "hooks.webhook.secret",
                "hooks.webhook.tiemout",
                "hooks.webhook.timeout",
                "hooks.webhook.url",
            ]
        );
    }

    #[test]
    fn a_non_table_is_one_error_at_the_path() {
        let errors = WebhookSettings::from_toml(&toml::Value::Integer(1), "hooks.webhook")
            .err()
            .unwrap_or_default();
        assert_eq!(keys(&errors), vec!["hooks.webhook"]);
    }
}
