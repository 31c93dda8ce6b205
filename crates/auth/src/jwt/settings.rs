//! JWT verification settings as typed data, and reading them from a namespace's `auth`
//! table. Nothing here touches the file system or the network: files are read and keys
//! parsed by [`JwtVerifier::new`](super::JwtVerifier::new).
//!
//! ```toml
//! [namespaces.auth]          # one namespace's table, e.g. `namespaces[0].auth`
//! type = "jwt"               # optional; if present it must say "jwt"
//! # exactly one key source:
//! secret = "…"               # HMAC secret (or `secret_file = "path"`)
//! public_key = "-----BEGIN PUBLIC KEY-----…"   # PEM (or `public_key_file = "path"`)
//! jwks_url = "https://idp.example.com/.well-known/jwks.json"
//! algorithms = ["RS256"]     # required except with a secret (then HS256)
//! issuer = "https://idp.example.com/"          # one or a list; unset: not checked
//! audience = "switchboard"                     # one or a list (see `audiences`)
//! leeway = "30s"
//! require_exp = true
//! token_sources = ["auth:token", "bearer", "cookie:session"]
//! jwks_cache_ttl = "10m"
//! jwks_refresh_interval = "30s"
//! jwks_fetch_timeout = "5s"
//! jwks_allow_http = false    # plain http is accepted for loopback hosts only
//! jwks_ca_file = "/etc/switchboard/idp-ca.pem"  # extra trusted roots (PEM)
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

use super::{Algorithm, KeyFamily};
use crate::token::TokenSource;
use switchboard_settings::{SettingError, TableReader, join};

/// Clock skew tolerated on `exp` and `nbf`. Hosts synced by NTP agree within a second;
/// 30 s also covers an issuer on a badly synced VM without keeping an expired token
/// alive for long.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway accepted: beyond a few minutes `exp` stops meaning anything.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// Tokens without `exp` never expire, so they are refused unless configured otherwise.
pub const DEFAULT_REQUIRE_EXP: bool = true;
/// How long a fetched key set is used before it is fetched again. Identity providers
/// publish a new key before they sign with it, and a `kid` miss refreshes early anyway,
/// so ten minutes keeps the endpoint quiet without holding a withdrawn key for long.
pub const DEFAULT_JWKS_CACHE_TTL: Duration = Duration::from_secs(600);
/// At most one fetch per this interval, whatever tokens arrive: a flood of made-up `kid`s
/// must not turn into a flood of requests to the identity provider. Also how long a key
/// published just after a fetch may be unknown.
pub const DEFAULT_JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// A fetch that takes longer is abandoned (connect, TLS, headers and body together);
/// connections that wait on it are refused with `KeysUnavailable` instead of hanging.
pub const DEFAULT_JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set body read. Real ones are a few KiB (a 4096-bit RSA JWK is under
/// 1 KiB); anything bigger is a misconfigured URL or an attack.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The longest token looked at. Ordinary JWTs are 1–4 KiB; this leaves room for large
/// claim sets while bounding the base64 and JSON work an unauthenticated client can ask
/// for.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The keys of the `auth` table that name a key source, exactly one of which is set.
const KEY_SOURCES: [&str; 5] = [
    "secret",
    "secret_file",
    "public_key",
    "public_key_file",
    "jwks_url",
];

/// How tokens are verified for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// The dotted path the settings were read from (e.g. `namespaces[0].auth`), used to
    /// name keys in errors found when the keys are loaded. Empty when built in code.
    pub path: String,
    /// Where the verification keys come from.
    pub key: KeySource,
    /// The only algorithms a token may declare: all HMAC (with a secret) or all public-key.
    pub algorithms: Vec<Algorithm>,
    /// Accepted `iss` values; when not empty a token must carry one of them.
    pub issuers: Vec<String>,
    /// Accepted `aud` values; when not empty a token must carry one of them. When empty,
    /// a token that carries an `aud` is refused, as RFC 7519 §4.1.3 requires.
    pub audiences: Vec<String>,
    /// Clock skew tolerated on `exp` and `nbf`: whole seconds, at most [`MAX_LEEWAY`]
    /// (a verifier refuses any other).
    pub leeway: Duration,
    /// Whether a token without `exp` is refused.
    pub require_exp: bool,
    /// Where the token is looked for, in order.
    pub sources: Vec<TokenSource>,
}

/// Where verification keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// An HMAC secret written in the config.
    Secret(Secret),
    /// A file holding the HMAC secret (one trailing newline is ignored).
    SecretFile(PathBuf),
    /// A PEM public key (RSA, EC P-256/P-384 or Ed25519) written in the config.
    PublicKeyPem(String),
    /// A file holding a PEM public key.
    PublicKeyFile(PathBuf),
    /// A JWKS document fetched over HTTP(S) and cached.
    Jwks(JwksSettings),
}

impl KeySource {
    /// The config key that sets this source, for error paths.
    pub fn config_key(&self) -> &'static str {
        match self {
            KeySource::Secret(_) => "secret",
            KeySource::SecretFile(_) => "secret_file",
            KeySource::PublicKeyPem(_) => "public_key",
            KeySource::PublicKeyFile(_) => "public_key_file",
            KeySource::Jwks(_) => "jwks_url",
        }
    }
}

/// Where and how often a JWKS is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// The JWKS document URL. [`JwtSettings::from_toml`] accepts `https`, or `http` on
    /// loopback or with `jwks_allow_http`; a URL set in code is taken as given.
    pub url: Uri,
    /// How long a fetched set is used before it is fetched again.
    pub cache_ttl: Duration,
    /// At most one fetch per this interval (misses and expiries alike).
    pub refresh_interval: Duration,
    /// Fetches that take longer are abandoned.
    pub fetch_timeout: Duration,
    /// Extra trusted roots (PEM) besides the system's, for an `https` URL whose
    /// certificate is signed by a private CA. Read when the verifier is built.
    pub ca_file: Option<PathBuf>,
}

impl JwksSettings {
    /// Settings for `url` with the default cache TTL, refresh interval and timeout, and
    /// the system's roots only.
    pub fn new(url: Uri) -> Self {
        JwksSettings {
            url,
            cache_ttl: DEFAULT_JWKS_CACHE_TTL,
            refresh_interval: DEFAULT_JWKS_REFRESH_INTERVAL,
            fetch_timeout: DEFAULT_JWKS_FETCH_TIMEOUT,
            ca_file: None,
        }
    }
}

/// An HMAC secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes redacted>)", self.0.len())
    }
}

impl JwtSettings {
    /// Settings for `key` and `algorithms` with every other value at its default.
    pub fn new(key: KeySource, algorithms: Vec<Algorithm>) -> Self {
        JwtSettings {
            path: String::new(),
            key,
            algorithms,
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            require_exp: DEFAULT_REQUIRE_EXP,
            sources: TokenSource::defaults(),
        }
    }

    /// Reads the `auth` table at `path` (see the module docs for its keys). Returns every
    /// problem at once, each with its dotted key, including unknown keys.
    pub fn from_toml(value: &toml::Value, path: &str) -> Result<Self, Vec<SettingError>> {
        let mut r = TableReader::new(value, path)?;
        if let Some(kind) = r.string("type")
            && kind != "jwt"
        {
            r.error(
                "type",
                format!("must be \"jwt\" for JWT settings, not {kind:?}"),
            );
        }
        let key = key_source(&mut r);
        let algorithms = algorithms(&mut r, key.as_ref());
        let mut settings = JwtSettings::new(
            key.unwrap_or(KeySource::Secret(Secret::new(Vec::new()))),
            algorithms,
        );
        settings.path = path.to_owned();
        if let Some(issuers) = non_empty_list(&mut r, "issuer") {
            settings.issuers = issuers;
        }
        if let Some(audiences) = non_empty_list(&mut r, "audience") {
            settings.audiences = audiences;
        }
        if let Some(leeway) = r.duration("leeway") {
            match leeway_problem(leeway) {
                Some(message) => r.error("leeway", message),
                None => settings.leeway = leeway,
            }
        }
        if let Some(require) = r.bool("require_exp") {
            settings.require_exp = require;
        }
        if let Some(sources) = token_sources(&mut r) {
            settings.sources = sources;
        }
        r.finish()?;
        Ok(settings)
    }
}

/// What is wrong with a leeway, if anything: more than [`MAX_LEEWAY`], or a part of a
/// second (`exp` and `nbf` are whole seconds, and the check tolerates whole seconds
/// only: `"500ms"` was read as no leeway at all).
pub(crate) fn leeway_problem(leeway: Duration) -> Option<String> {
    if leeway > MAX_LEEWAY {
        return Some(format!("must be at most {}s", MAX_LEEWAY.as_secs()));
    }
    if leeway.subsec_nanos() != 0 {
        let up = leeway.as_secs() + 1;
        return Some(format!(
            "must be a whole number of seconds (token times are whole seconds): write \"{}s\" or \"{up}s\"",
            leeway.as_secs()
        ));
    }
    None
}

/// The one key source set in the table, with its JWKS options.
fn key_source(r: &mut TableReader<'_>) -> Option<KeySource> {
    let set: Vec<&str> = KEY_SOURCES.into_iter().filter(|name| r.has(name)).collect();
    let jwks = jwks_options(r, set.contains(&"jwks_url"));
    match set.as_slice() {
        [] => {
            r.table_error(format!("needs one of {}", KEY_SOURCES.join(", ")));
            None
        }
        [only] => match *only {
            "secret" => r
                .non_empty_string("secret")
                .map(|s| KeySource::Secret(Secret::new(s))),
            "secret_file" => r
                .non_empty_string("secret_file")
                .map(|p| KeySource::SecretFile(p.into())),
            "public_key" => r
                .non_empty_string("public_key")
                .map(KeySource::PublicKeyPem),
            "public_key_file" => r
                .non_empty_string("public_key_file")
                .map(|p| KeySource::PublicKeyFile(p.into())),
            _ => jwks.map(KeySource::Jwks),
        },
        [_, extra @ ..] => {
            for name in extra {
                r.error(name, format!("only one of {} may be set", set.join(", ")));
            }
            None
        }
    }
}

/// `jwks_url` and its options; the options without the URL are errors.
fn jwks_options(r: &mut TableReader<'_>, has_url: bool) -> Option<JwksSettings> {
    const OPTIONS: [&str; 5] = [
        "jwks_cache_ttl",
        "jwks_refresh_interval",
        "jwks_fetch_timeout",
        "jwks_allow_http",
        "jwks_ca_file",
    ];
    if !has_url {
        for name in OPTIONS {
            if r.has(name) {
                r.error(name, "only applies with jwks_url");
            }
        }
        return None;
    }
    let allow_http = r.bool("jwks_allow_http").unwrap_or(false);
    let url = r
        .non_empty_string("jwks_url")
        .and_then(|text| match jwks_url(&text, allow_http) {
            Ok(url) => Some(url),
            Err(message) => {
                r.error("jwks_url", message);
                None
            }
        });
    let mut jwks = JwksSettings::new(url.unwrap_or_default());
    jwks.ca_file = r.non_empty_string("jwks_ca_file").map(PathBuf::from);
    if let Some(ttl) = r.duration("jwks_cache_ttl") {
        jwks.cache_ttl = ttl;
    }
    if let Some(interval) = r.duration("jwks_refresh_interval") {
        if interval.is_zero() {
            r.error("jwks_refresh_interval", "must be more than zero (it is what keeps a flood of unknown kids off the endpoint)");
        } else {
            jwks.refresh_interval = interval;
        }
    }
    if let Some(timeout) = r.duration("jwks_fetch_timeout") {
        if timeout.is_zero() {
            r.error("jwks_fetch_timeout", "must be more than zero");
        } else {
            jwks.fetch_timeout = timeout;
        }
    }
    if jwks.cache_ttl < jwks.refresh_interval {
        r.error(
            "jwks_cache_ttl",
            "must be at least jwks_refresh_interval (a set cannot be refreshed more often)",
        );
    }
    Some(jwks)
}

/// Checks a JWKS URL: absolute `https`, or `http` to a loopback host or when allowed.
pub(crate) fn jwks_url(text: &str, allow_http: bool) -> Result<Uri, String> {
    let url: Uri = text.parse().map_err(|err| format!("not a URL: {err}"))?;
    let host = url.host().ok_or("must be an absolute URL with a host")?;
    if let Some(why) = switchboard_http_client::port_problem(&url) {
        return Err(why);
    }
    match url.scheme_str() {
        Some("https") => Ok(url),
        Some("http") if allow_http || is_loopback(host) => Ok(url),
        Some("http") => Err(
            "must use https (keys fetched over plain http can be replaced in transit); \
             set jwks_allow_http = true to accept it anyway"
                .to_owned(),
        ),
        _ => Err("must be an http or https URL".to_owned()),
    }
}

/// `localhost`, `127.0.0.0/8` or `[::1]`.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `algorithms`, checked against the key source's family.
fn algorithms(r: &mut TableReader<'_>, key: Option<&KeySource>) -> Vec<Algorithm> {
    let Some(names) = r.comma_list("algorithms") else {
        return match key {
            Some(KeySource::Secret(_) | KeySource::SecretFile(_)) => vec![Algorithm::HS256],
            Some(_) => {
                r.error(
                    "algorithms",
                    "is required with a public key or jwks_url, e.g. [\"RS256\"]",
                );
                Vec::new()
            }
            None => Vec::new(),
        };
    };
    let mut algorithms = Vec::new();
    for name in &names {
        match Algorithm::parse(name) {
            Some(alg) if !algorithms.contains(&alg) => algorithms.push(alg),
            Some(_) => {}
            None if name.eq_ignore_ascii_case("none") => {
                r.error(
                    "algorithms",
                    "\"none\" would accept unsigned tokens and is never allowed",
                );
            }
            None => {
                let known: Vec<_> = Algorithm::ALL.iter().map(|a| a.name()).collect();
                r.error(
                    "algorithms",
                    format!("unknown algorithm {name:?} (use {})", known.join(", ")),
                );
            }
        }
    }
    if names.is_empty() {
        r.error("algorithms", "must name at least one algorithm");
    }
    if let Some(message) = family_problem(&algorithms, key) {
        r.error("algorithms", message);
    }
    algorithms
}

/// Why `algorithms` cannot go with `key`, if they cannot. HMAC and public-key
/// algorithms never mix: that is what would let a public key be used as an HMAC secret.
/// Public-key families may mix (a JWKS can hold RSA and EC keys); each token's `alg`
/// must still fit the key it names.
fn family_problem(algorithms: &[Algorithm], key: Option<&KeySource>) -> Option<String> {
    if algorithms.is_empty() {
        return None;
    }
    let hmac = algorithms
        .iter()
        .filter(|alg| alg.family() == KeyFamily::Hmac)
        .count();
    if hmac != 0 && hmac != algorithms.len() {
        return Some(
            "must not mix HS* with public-key algorithms (that would let a public key be used as an HMAC secret)"
                .to_owned(),
        );
    }
    match (key?, hmac != 0) {
        (KeySource::Secret(_) | KeySource::SecretFile(_), true) => None,
        (KeySource::Secret(_) | KeySource::SecretFile(_), false) => {
            Some("a secret verifies HS256, HS384 or HS512 only".to_owned())
        }
        (_, true) => Some("HS* algorithms need a secret, not a public key or JWKS".to_owned()),
        (_, false) => None,
    }
}

/// `issuer`/`audience`: a string or a list of them, none empty.
fn non_empty_list(r: &mut TableReader<'_>, name: &str) -> Option<Vec<String>> {
    let list = r.string_list(name)?;
    if list.is_empty() || list.iter().any(|item| item.is_empty()) {
        r.error(
            name,
            "must not be empty or hold empty strings (leave it out to skip the check)",
        );
        return None;
    }
    Some(list)
}

/// `token_sources`, each element checked with its index in the path.
fn token_sources(r: &mut TableReader<'_>) -> Option<Vec<TokenSource>> {
    let names = r.comma_list("token_sources")?;
    if names.is_empty() {
        r.error(
            "token_sources",
            "must name at least one place to look for the token",
        );
        return None;
    }
    let key = r.key("token_sources");
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match TokenSource::parse(name) {
            Ok(source) => sources.push(source),
            Err(message) => errors.push(SettingError::new(format!("{key}[{i}]"), message)),
        }
    }
    if errors.is_empty() {
        Some(sources)
    } else {
        r.extend(errors);
        None
    }
}

/// The dotted path of `name` under the settings' own path.
pub(crate) fn setting_key(settings: &JwtSettings, name: &str) -> String {
    join(&settings.path, name)
}

#[cfg(test)]
mod tests;
