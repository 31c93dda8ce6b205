//! How a node reaches Redis: the client a `redis_url` (and an optional CA file) makes,
//! with TLS for `rediss://` and credentials from the URL; the URL as it may be printed;
//! and what a failed connection means. No IO but reading the CA file.
//!
//! - **TLS** (`rediss://`): rustls, trusting the system's roots plus the certificates
//!   of `redis_ca_file` (a private CA is the usual way to run Redis with TLS). The
//!   server's name is checked against the URL's host.
//! - **Credentials**: `redis://user:password@host` (an ACL user) or
//!   `redis://:password@host` (`requirepass`), sent with `AUTH` on every connection.
//! - **Never printed**: the password. [`redact_url`] is what logs and `check-config`
//!   show.

use std::path::Path;

use base64::Engine as _;

use crate::{ClusterConfig, ClusterError};

/// What replaces a password in a printed URL.
const REDACTED: &str = "***";

/// `url` with its password replaced by `***`: `redis://user:***@host:6379/0`,
/// `redis+unix:///run/redis.sock?pass=***`. Everything else is kept, so the printed
/// URL still says which Redis, which database and which user. A string that is not a
/// URL at all is returned as is (it holds no `user:password@` part to hide).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The query's passwords first (unix socket URLs carry one as `?pass=`, Sentinel
    // URLs as `sentinel_password=`), from the first `?`: a value holding `@` is then
    // gone before the user information is looked for.
    let rest = match rest.split_once('?') {
        Some((before, query)) => format!("{before}?{}", redact_query(query)),
        None => rest.to_owned(),
    };
    // The user information ends at the last `@` left, wherever it is: a password
    // holding `/`, `?` or `#` unencoded (generated ones do) ends the authority early
    // for a URL parser, and looking for the `@` only before those printed the password
    // whole. An `@` in another query value hides the host too: too much is hidden
    // rather than too little.
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, after)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{after}"),
            None => rest.clone(),
        },
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// A URL's query with the values of its password parameters replaced.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name @ ("pass" | "password" | "sentinel_password"), _)) => {
                format!("{name}={REDACTED}")
            }
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Checks a Redis URL (`redis://[user][:password@]host[:port][/db]`, `rediss://` for
/// TLS, `redis+unix://`, `unix://`) without connecting, for configuration checks at
/// start-up. The message shows the URL redacted.
pub fn check_redis_url(url: &str) -> Result<(), String> {
    if crate::sentinel::is_sentinel_url(url) {
        return crate::sentinel::SentinelUrl::parse(url)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    if crate::redis_cluster::is_cluster_url(url) {
        return crate::redis_cluster::ClusterUrl::parse(url)
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("`{}` is not a Redis URL: {e}", redact_url(url)))
}

/// Whether `url` asks for TLS anywhere (a Sentinel URL's `sentinel_tls=true` too), so
/// whether `cluster.redis_ca_file` has a use.
pub fn is_tls_url(url: &str) -> bool {
    url.starts_with("rediss://")
        || url.starts_with("valkeys://")
        || url.starts_with("rediss+sentinel://")
        || url.starts_with("rediss+cluster://")
        || (crate::sentinel::is_sentinel_url(url)
            && crate::sentinel::SentinelUrl::parse(url).is_ok_and(|u| u.sentinel_tls))
}

/// Checks a CA file for `redis_ca_file`: readable, and holding at least one PEM
/// certificate.
pub fn check_ca_file(path: &Path) -> Result<(), String> {
    read_ca_file(path).map(|_| ()).map_err(|e| e.to_string())
}

/// The client of `config`'s Redis: plain, or TLS with the system's roots plus the
/// configured CA file.
pub(crate) fn client(config: &ClusterConfig) -> Result<redis::Client, ClusterError> {
    client_for_url(config, &config.redis_url)
}

/// The client of `url` (the configured one, or a Sentinel or master of a Sentinel
/// URL) with `config`'s TLS settings.
pub(crate) fn client_for_url(
    config: &ClusterConfig,
    url: &str,
) -> Result<redis::Client, ClusterError> {
    let bad_url = |e: redis::RedisError| ClusterError::BadUrl(format!("{}: {e}", redact_url(url)));
    if !is_tls_url(url) {
        // A Sentinel URL's plain half (its master, with TLS to the Sentinels only, or
        // the other way round) leaves the CA file to the other half.
        if config.redis_ca_file.is_some() && !is_tls_url(&config.redis_url) {
            return Err(ClusterError::BadUrl(
                "a CA file is only used with a URL that asks for TLS (rediss://, or sentinel_tls=true)"
                    .to_owned(),
            ));
        }
        return redis::Client::open(url).map_err(bad_url);
    }
    redis::Client::build_with_tls(url, certificates(config)?).map_err(bad_url)
}

/// The certificates a TLS connection trusts: the system's roots plus the configured
/// CA file's.
pub(crate) fn certificates(config: &ClusterConfig) -> Result<redis::TlsCertificates, ClusterError> {
    // Read once per process: with Sentinel a client is made on every look (each
    // second), and reading the whole system store each time was blocking file reads
    // on a runtime thread.
    static SYSTEM_ROOTS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let mut roots = SYSTEM_ROOTS.get_or_init(system_roots).clone();
    if let Some(path) = &config.redis_ca_file {
        roots.extend_from_slice(&read_ca_file(path)?);
    }
    Ok(redis::TlsCertificates {
        client_tls: None,
        // Redis takes these instead of the system's roots, hence both.
        root_cert: Some(roots),
    })
}

/// The CA file's contents, checked to hold at least one PEM certificate.
fn read_ca_file(path: &Path) -> Result<Vec<u8>, ClusterError> {
    let bad = |why: String| ClusterError::CaFile(format!("{}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(pem)
}

/// The system's trusted roots as PEM (what Redis takes). A system without any is not
/// an error here: the CA file may be all that is needed, and a server nothing vouches
/// for fails its handshake with a clear error.
fn system_roots() -> Vec<u8> {
    let found = rustls_native_certs::load_native_certs();
    for err in &found.errors {
        tracing::debug!(error = %err, "a system root certificate could not be read");
    }
    let mut pem = Vec::new();
    for cert in found.certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    pem
}

/// A Redis error as the cluster reports it: refused credentials are told apart, since
/// retrying will not fix them.
pub(crate) fn classify(err: &redis::RedisError) -> ClusterError {
    let auth = err.kind() == redis::ErrorKind::AuthenticationFailed
        || err
            .code()
            .is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH");
    if auth {
        ClusterError::Auth(err.to_string())
    } else {
        ClusterError::Redis(err.to_string())
    }
}

/// Connects once to `config`'s Redis and runs `PING`: whether the URL, the
/// credentials and the TLS settings work. The node itself never needs this (it
/// connects lazily and retries); it is for tests and tools that want a clear answer.
pub async fn ping(config: &ClusterConfig) -> Result<(), ClusterError> {
    if crate::redis_cluster::is_cluster_url(&config.redis_url) {
        let url = crate::redis_cluster::ClusterUrl::parse(&config.redis_url)?;
        let client = url.client(config, std::time::Duration::from_secs(2), None)?;
        let mut conn = client
            .get_async_connection()
            .await
            .map_err(|e| classify(&e))?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| classify(&e))?;
        return Ok(());
    }
    let client = if crate::sentinel::is_sentinel_url(&config.redis_url) {
        let url = crate::sentinel::SentinelUrl::parse(&config.redis_url)?;
        let address = url.resolve(|u| client_for_url(config, u)).await?;
        client_for_url(config, &url.master_url(&address))?
    } else {
        client(config)?
    };
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| classify(&e))?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| classify(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        let cases = [
            ("redis://10.0.0.5:6379/0", "redis://10.0.0.5:6379/0"),
            (
                "redis://:hunter2@cache.internal:6380/2",
                "redis://:***@cache.internal:6380/2",
            ),
            (
                "rediss://app:p%40ss:w@cache.internal",
                "rediss://app:***@cache.internal",
            ),
            // A user without a password has nothing to hide.
            ("redis://app@cache", "redis://app@cache"),
            ("redis://a:b@c?x=1#f", "redis://a:***@c?x=1#f"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "redis+sentinel://:hunter2@s1:26379,s2:26379/m?sentinel_password=hunter2",
                "redis+sentinel://:***@s1:26379,s2:26379/m?sentinel_password=***",
            ),
            ("not a url", "not a url"),
            // Unencoded `/`, `?` and `#` in a password.
            ("redis://app:hun/ter2@h:6379", "redis://app:***@h:6379"),
            (
                "redis+cluster://u:hunter2/x?y#z@h:7000/1",
                "redis+cluster://u:***@h:7000/1",
            ),
            (
                "redis+sentinel://:p?hunter2@s:26379/m",
                "redis+sentinel://:***@s:26379/m",
            ),
            // `@` in a query's password.
            (
                "redis+unix:///run/redis.sock?pass=hunter2@cd",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            (
                "unix:///run/redis.sock?pass=hunter2@cd&db=1",
                "unix:///run/redis.sock?pass=***&db=1",
            ),
            (
                "redis+unix:///run/redis.sock?pass=a:hunter2@cd",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            (
                "redis+sentinel://s1:26379/m?sentinel_password=hun@ter2",
                "redis+sentinel://s1:26379/m?sentinel_password=***",
            ),
            (
                "redis+sentinel://:hunter2@s1:26379/m?sentinel_password=a@hunter2&x=1",
                "redis+sentinel://:***@s1:26379/m?sentinel_password=***&x=1",
            ),
        ];
        for (url, printed) in cases {
            assert_eq!(redact_url(url), printed, "{url}");
            assert!(!redact_url(url).contains("hunter2"));
        }
    }

    #[test]
    fn bad_urls_are_reported_redacted() {
        let err = check_redis_url("http://:hunter2@cache")
            .err()
            .unwrap_or_default();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("http://:***@cache"), "{err}");
        assert!(check_redis_url("rediss://cache.internal").is_ok());
        assert!(check_redis_url("redis://u:p@cache.internal:6380/2").is_ok());
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing").expect("write");
        assert!(check_ca_file(&empty).is_err());
        assert!(check_ca_file(&dir.path().join("missing.pem")).is_err());
    }
}
