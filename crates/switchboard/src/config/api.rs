//! `[api]` (the HTTP API for backends) and `[static]` (files served at `/`): their
//! typed settings, raw shapes, checks and summary lines.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchboard_settings::duration::{self, HumanDuration};

use super::Config;
use super::check::{self, Checked};
use super::raw::{Count, Field, StringList, Unknown};
use super::validate::Validator;

/// 1 MiB: an emit carrying a few hundred KiB of binary (as base64) fits; larger payloads
/// belong in object storage with a URL in the event. Every body is held in memory whole
/// while it is parsed, so the bound is what one request can cost.
pub(crate) const DEFAULT_API_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest `api.max_body_bytes` accepted: 64 MiB. Beyond that one request could hold a
/// large share of the memory the sockets need.
pub(crate) const MAX_API_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// 10 s: a 1 MiB body arrives in well under a second between a backend and its
/// server; ten times that tolerates a congested link, while a client that stalls
/// mid-body gives its connection back soon.
pub(crate) const DEFAULT_API_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// 200 requests per second per key: a busy backend emitting on every business event
/// stays well below it, while a runaway retry loop is cut off before it floods every
/// client with events.
pub(crate) const DEFAULT_API_RATE_LIMIT_PER_SECOND: u32 = 200;
/// Two seconds' worth of requests may come at once (a backend flushing a batch after
/// a pause) before the steady rate applies.
pub(crate) const DEFAULT_API_BURST: u32 = 400;
/// Shortest API key accepted: 16 characters of the allowed alphabet are over 90 bits
/// when random, out of reach of guessing through a rate-limited endpoint; anything
/// shorter is most likely a placeholder such as `changeme`.
pub(crate) const MIN_API_KEY_LEN: usize = 16;

/// `[api]`: the HTTP API for backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiConfig {
    /// Accepted bearer keys. Empty: the API is disabled (every `/api/` path is a 404).
    pub(crate) keys: Vec<ApiKey>,
    /// A separate listener for the API (then it is not on the main one).
    pub(crate) listen: Option<SocketAddr>,
    /// Largest request body accepted.
    pub(crate) max_body_bytes: usize,
    /// How long a request body may take to arrive.
    pub(crate) body_timeout: Duration,
    /// Per-key request rate.
    pub(crate) rate_limit: RateLimit,
    /// `/metrics` on the API's own listener instead of the main one.
    pub(crate) metrics: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            keys: Vec::new(),
            listen: None,
            max_body_bytes: DEFAULT_API_MAX_BODY_BYTES,
            body_timeout: DEFAULT_API_BODY_TIMEOUT,
            rate_limit: RateLimit::default(),
            metrics: false,
        }
    }
}

impl ApiConfig {
    /// Whether the API is served at all: only with at least one key, never open.
    pub(crate) fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether `/metrics` is served on the API's own listener (and not on the main
    /// one): `api.metrics`, which the checks allow only with `api.listen` and keys.
    pub(crate) fn metrics_on_own_listener(&self) -> bool {
        self.metrics && self.listen.is_some() && self.enabled()
    }
}

/// A token bucket's parameters, per API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// Requests per second in the long run; 0 turns rate limiting off.
    pub(crate) per_second: u32,
    /// Requests that may come at once (the bucket's size); at least 1.
    pub(crate) burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: DEFAULT_API_RATE_LIMIT_PER_SECOND,
            burst: DEFAULT_API_BURST,
        }
    }
}

/// A secret bearer key. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKey(String);

impl ApiKey {
    /// The key as configured, for the constant-time comparison only.
    pub(crate) fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// A key for tests.
    #[cfg(test)]
    pub(crate) fn new(key: &str) -> Self {
        ApiKey(key.to_owned())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<hidden>)")
    }
}

/// `[static]`: files served at `/`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StaticConfig {
    /// The directory; `None` serves no files.
    pub(crate) dir: Option<PathBuf>,
}

/// `[api]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawApi {
    pub(crate) keys: Option<Field<StringList>>,
    pub(crate) listen: Option<Field<String>>,
    pub(crate) max_body_bytes: Option<Field<Count>>,
    pub(crate) body_timeout: Option<Field<HumanDuration>>,
    pub(crate) rate_limit_per_second: Option<Field<Count>>,
    pub(crate) burst: Option<Field<Count>>,
    pub(crate) metrics: Option<Field<bool>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// `[static]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawStatic {
    pub(crate) dir: Option<Field<String>>,
    #[serde(flatten)]
    pub(crate) unknown: Unknown,
}

/// The keys of `[api]`, for [`super::raw::SECTIONS`].
pub(crate) const API_KEYS: &[&str] = &[
    "keys",
    "listen",
    "max_body_bytes",
    "body_timeout",
    "rate_limit_per_second",
    "burst",
    "metrics",
];
/// The keys of `[static]`, for [`super::raw::SECTIONS`].
pub(crate) const STATIC_KEYS: &[&str] = &["dir"];

impl Validator<'_> {
    /// Reads `[api]` into `c.api`; `c.listen` must already be read (they must differ).
    pub(super) fn api(&mut self, raw: RawApi, c: &mut Config) {
        self.unknown("api", raw.unknown);
        let a = &mut c.api;
        self.read(&mut a.keys, "api.keys", raw.keys, |l| keys(l.0));
        let main = c.listen;
        let listen = |text: String| api_listen(text, main);
        self.read(&mut a.listen, "api.listen", raw.listen, listen);
        let (body, timeout) = (raw.max_body_bytes, raw.body_timeout);
        self.read(
            &mut a.max_body_bytes,
            "api.max_body_bytes",
            body,
            body_bytes,
        );
        self.read(
            &mut a.body_timeout,
            "api.body_timeout",
            timeout,
            body_timeout,
        );
        let (rate, burst) = (raw.rate_limit_per_second, raw.burst);
        let limit = &mut a.rate_limit;
        self.read(
            &mut limit.per_second,
            "api.rate_limit_per_second",
            rate,
            check::u32_count,
        );
        self.read(&mut limit.burst, "api.burst", burst, check::positive_u32);
        self.read(&mut a.metrics, "api.metrics", raw.metrics, Ok);
        if a.metrics && (a.listen.is_none() || !a.enabled()) {
            self.invalid(
                "api.metrics",
                "serves /metrics on the API's own listener: set api.listen and api.keys".into(),
            );
        }
    }

    /// Reads `[static]` into `c.statics`.
    pub(super) fn statics(&mut self, raw: RawStatic, c: &mut Config) {
        self.unknown("static", raw.unknown);
        self.read(&mut c.statics.dir, "static.dir", raw.dir, static_dir);
    }
}

/// Each key long enough, made of characters a bearer token may hold, listed once.
/// Messages name keys by position and never echo them.
fn keys(list: Vec<String>) -> Checked<Vec<ApiKey>> {
    let mut problems = Vec::new();
    for (i, key) in list.iter().enumerate() {
        if key.len() < MIN_API_KEY_LEN {
            problems.push(format!(
                "key #{} is shorter than {MIN_API_KEY_LEN} characters",
                i + 1
            ));
        } else if !key.bytes().all(is_token_char) {
            problems.push(format!(
                "key #{} may only hold letters, digits and `-._~+/=`",
                i + 1
            ));
        } else if list[..i].contains(key) {
            problems.push(format!("key #{} repeats an earlier key", i + 1));
        }
    }
    if problems.is_empty() {
        Ok(list.into_iter().map(ApiKey).collect())
    } else {
        Err(problems.join("; "))
    }
}

/// The characters of an HTTP bearer token (RFC 6750 `b64token`).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

/// An address other than the main listener's, and one that can be bound beside it.
fn api_listen(text: String, main: SocketAddr) -> Checked<Option<SocketAddr>> {
    let addr = check::listen(text)?;
    if addr == main && addr.port() != 0 {
        return Err(format!(
            "`{addr}` is the main `listen` address; leave `api.listen` unset to serve the \
             API there"
        ));
    }
    if collides(addr, main) {
        return Err(format!(
            "`{addr}` and the main `listen` address `{main}` share port {} on addresses \
             that overlap, so the second could not be bound; give the API another port",
            addr.port()
        ));
    }
    Ok(Some(addr))
}

/// Whether two listeners on these addresses could not both be bound: the same
/// non-zero port, and addresses that overlap (equal, or one is a wildcard of the
/// other's family; `[::]` also takes IPv4, as Linux binds it dual-stack). Checked at
/// start-up: before, `check-config` accepted `127.0.0.1:P` beside `0.0.0.0:P`, and
/// `serve` failed to bind with exit 1.
fn collides(a: SocketAddr, b: SocketAddr) -> bool {
    if a.port() != b.port() || a.port() == 0 {
        return false;
    }
    // An IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]`) binds as its IPv4 address.
    let canonical = |s: SocketAddr| SocketAddr::new(s.ip().to_canonical(), s.port());
    let (a, b) = (canonical(a), canonical(b));
    let covers = |wild: SocketAddr, other: SocketAddr| {
        wild.ip().is_unspecified() && (wild.is_ipv6() || other.is_ipv4())
    };
    a.ip() == b.ip() || covers(a, b) || covers(b, a)
}

/// Between 1 byte and [`MAX_API_MAX_BODY_BYTES`].
fn body_bytes(n: Count) -> Checked<usize> {
    let n = check::positive_count(n)?;
    if n > MAX_API_MAX_BODY_BYTES {
        return Err(format!(
            "{n} is more than the {MAX_API_MAX_BODY_BYTES} bytes maximum"
        ));
    }
    Ok(n)
}

/// Greater than zero: a zero timeout would refuse every request with a body.
fn body_timeout(d: HumanDuration) -> Checked<Duration> {
    check::positive_duration(d)
}

/// An existing directory (relative paths are from the working directory).
fn static_dir(text: String) -> Checked<Option<PathBuf>> {
    let path = PathBuf::from(&text);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(Some(path)),
        Ok(_) => Err(format!("`{text}` is not a directory")),
        Err(err) => Err(format!("`{text}` cannot be read: {err}")),
    }
}

/// The `check-config` lines of both sections, as `(dotted key, TOML value)`.
pub(crate) fn entries(config: &Config) -> Vec<(&'static str, String)> {
    let a = &config.api;
    let quote = |s: String| toml::Value::String(s).to_string();
    // Keys are secrets: only how many there are is shown.
    let keys: Vec<&str> = a.keys.iter().map(|_| "\"<hidden>\"").collect();
    let listen = a
        .listen
        .map_or_else(|| quote("(main listener)".into()), |l| quote(l.to_string()));
    let dir = config.statics.dir.as_ref().map_or_else(
        || quote("(none)".into()),
        |d| quote(d.display().to_string()),
    );
    vec![
        ("api.keys", format!("[{}]", keys.join(", "))),
        ("api.listen", listen),
        ("api.max_body_bytes", a.max_body_bytes.to_string()),
        ("api.body_timeout", quote(duration::format(a.body_timeout))),
        (
            "api.rate_limit_per_second",
            a.rate_limit.per_second.to_string(),
        ),
        ("api.burst", a.rate_limit.burst.to_string()),
        ("api.metrics", a.metrics.to_string()),
        ("static.dir", dir),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_that_overlap_on_a_port_collide() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        for (a, b) in [
            ("127.0.0.1:3901", "0.0.0.0:3901"),
            ("0.0.0.0:3901", "127.0.0.1:3901"),
            ("[::]:3901", "0.0.0.0:3901"),
            ("[::]:3901", "127.0.0.1:3901"),
            ("[::1]:3901", "[::]:3901"),
            ("10.0.0.1:3901", "10.0.0.1:3901"),
            ("127.0.0.1:3901", "[::ffff:127.0.0.1]:3901"),
            ("0.0.0.0:3901", "[::ffff:127.0.0.1]:3901"),
            ("[::ffff:0.0.0.0]:3901", "127.0.0.1:3901"),
        ] {
            assert!(collides(at(a), at(b)), "{a} {b}");
        }
        for (a, b) in [
            ("127.0.0.1:3901", "0.0.0.0:3902"),
            ("127.0.0.1:3901", "10.0.0.1:3901"),
            ("[::1]:3901", "0.0.0.0:3901"),
            ("127.0.0.1:3901", "[::1]:3901"),
            ("0.0.0.0:0", "127.0.0.1:0"),
        ] {
            assert!(!collides(at(a), at(b)), "{a} {b}");
        }
    }

    #[test]
    fn raw_sections_know_exactly_their_keys() -> Result<(), toml::de::Error> {
        let table = |keys: &[&str]| {
            let t: toml::Table = keys
                .iter()
                .map(|k| ((*k).to_owned(), toml::Value::Integer(1)))
                .collect();
            toml::Value::Table(t)
        };
        let api: RawApi = table(API_KEYS).try_into()?;
        assert!(api.unknown.is_empty(), "{:?}", api.unknown);
        let statics: RawStatic = table(STATIC_KEYS).try_into()?;
        assert!(statics.unknown.is_empty(), "{:?}", statics.unknown);
        Ok(())
    }

    #[test]
    fn keys_must_be_long_distinct_tokens_and_are_never_echoed() {
        let good = "k".repeat(MIN_API_KEY_LEN);
        assert_eq!(
            keys(vec![good.clone()]).map(|k| k.len()),
            Ok(1),
            "a {MIN_API_KEY_LEN}-character key is enough"
        );
        let short = "secret-short";
        let spaced = "has spaces but is long enough";
        let err = keys(vec![short.into(), spaced.into(), good.clone(), good])
            .err()
            .unwrap_or_default();
        assert!(err.contains("key #1 is shorter"), "{err}");
        assert!(err.contains("key #2 may only"), "{err}");
        assert!(err.contains("key #4 repeats"), "{err}");
        assert!(!err.contains(short) && !err.contains(spaced), "{err}");
        assert_eq!(keys(vec![]), Ok(vec![]));
        assert_eq!(
            format!("{:?}", ApiKey::new("super-secret-value")),
            "ApiKey(<hidden>)"
        );
    }

    /// `api.metrics` moves `/metrics` to the API's own listener: without one (or
    /// without keys, which turn the API off) it is an error under its key.
    #[test]
    fn api_metrics_needs_the_apis_own_listener() {
        let keys = "keys = [\"a-key-of-sixteen-chars\"]";
        for (toml, ok) in [
            (
                format!("[api]\nmetrics = true\n{keys}\nlisten = \"127.0.0.1:0\""),
                true,
            ),
            (format!("[api]\nmetrics = true\n{keys}"), false),
            (
                "[api]\nmetrics = true\nlisten = \"127.0.0.1:0\"".to_owned(),
                false,
            ),
        ] {
            match crate::config::from_text(&toml) {
                Ok(config) => assert!(ok && config.api.metrics_on_own_listener(), "{toml}"),
                Err(errors) => {
                    assert!(!ok, "{toml}: {errors}");
                    assert_eq!(errors.keys(), ["api.metrics"], "{toml}");
                }
            }
        }
    }

    #[test]
    fn the_api_listener_must_differ_from_the_main_one() {
        let main: SocketAddr = ([127, 0, 0, 1], 3000).into();
        assert!(api_listen("127.0.0.1:3000".into(), main).is_err());
        assert_eq!(
            api_listen("127.0.0.1:3001".into(), main),
            Ok(Some(([127, 0, 0, 1], 3001).into()))
        );
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        assert!(api_listen("127.0.0.1:0".into(), any).is_ok());
        assert!(api_listen("localhost:1".into(), main).is_err());
    }

    #[test]
    fn bounds_have_limits() {
        assert!(body_bytes(Count(0)).is_err());
        assert!(body_bytes(Count(MAX_API_MAX_BODY_BYTES as u64 + 1)).is_err());
        assert_eq!(body_bytes(Count(10)), Ok(10));
        assert_eq!(check::u32_count(Count(0)), Ok(0));
        assert!(check::positive_u32(Count(0)).is_err());
        assert!(check::u32_count(Count(u64::from(u32::MAX) + 1)).is_err());
        assert!(body_timeout(HumanDuration(Duration::ZERO)).is_err());
    }

    #[test]
    fn every_bad_api_value_is_reported_at_once_with_its_variable() {
        let env = [
            ("SWITCHBOARD_API__KEYS", "tiny-secret"),
            ("SWITCHBOARD_API__LISTEN", "localhost:1"),
            ("SWITCHBOARD_API__MAX_BODY_BYTES", "0"),
            ("SWITCHBOARD_API__BODY_TIMEOUT", "0"),
            ("SWITCHBOARD_API__RATE_LIMIT_PER_SECOND", "-1"),
            ("SWITCHBOARD_API__BURST", "0"),
            ("SWITCHBOARD_API__BRUST", "1"),
            ("SWITCHBOARD_STATIC__DIR", "/no/such/dir"),
        ];
        let sources = super::super::Sources {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        };
        let Err(errors) = super::super::load(&sources) else {
            panic!("the values are invalid");
        };
        let mut keys = errors.keys();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "api.body_timeout",
                "api.brust",
                "api.burst",
                "api.keys",
                "api.listen",
                "api.max_body_bytes",
                "api.rate_limit_per_second",
                "static.dir",
            ],
            "{errors}"
        );
        assert!(!errors.to_string().contains("tiny-secret"), "{errors}");
    }

    #[test]
    fn static_dir_must_be_a_directory() {
        let here = env!("CARGO_MANIFEST_DIR");
        assert!(static_dir(here.into()).is_ok());
        assert!(static_dir(format!("{here}/Cargo.toml")).is_err());
        assert!(static_dir(format!("{here}/no-such-dir")).is_err());
    }
}
