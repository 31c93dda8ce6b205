//! Switchboard's outgoing HTTP(S) client: the one builder behind every request the server
//! makes itself (JWKS fetches in `switchboard-auth`, webhooks in `switchboard-hooks`), so
//! both trust the same certificates and pool connections the same way.
//!
//! # Layout
//!
//! - this file: [`ClientBuilder`], the pooled [`Client`] it builds, [`BuildError`],
//!   [`read_capped`] for a response's body, and [`error_chain`] for logging a request
//!   error with its causes;
//! - `timed`: [`TimedConnector`], every connection made within [`CONNECT_TIMEOUT`];
//! - `trust`: the root certificate store of the trust policy below;
//! - `resolve`: [`BoundedResolver`], host name lookups at most [`MAX_LOOKUPS`] at once,
//!   [`MAX_LOOKUPS_PER_NAME`] of one name.
//!
//! # Trust policy
//!
//! An `https` server must present a certificate for its host that chains to one of:
//!
//! - the **system's root certificates** (the platform store; on Linux the usual CA
//!   bundle, with `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured when set), and
//! - the certificates of an optional **CA file** (PEM, one or more certificates, e.g. a
//!   private CA), added to the system's, never replacing them.
//!
//! A CA file that cannot be read or holds no usable certificate is a configuration error
//! when the client is built, as is `https` with no root at all (no system bundle and no
//! CA file). Roots are loaded only when an `https` URL is declared, so a plain-`http`
//! deployment runs in an image without a CA bundle. TLS is rustls with the ring provider,
//! chosen explicitly so the result does not depend on the process-wide default.
//!
//! # Connections
//!
//! HTTP/1.1 only (identity providers and backends all speak it; no HTTP/2 stack to
//! carry). The client sets no request timeout: each caller bounds each request with its
//! own deadline (the JWKS fetch timeout, the webhook delivery deadline). Host names are
//! resolved by [`BoundedResolver`]: a DNS server that never answers holds at most
//! [`MAX_LOOKUPS`] threads, whatever the deadlines. A connection (TCP and TLS) must be
//! made within [`CONNECT_TIMEOUT`] whoever waits for it: the pool goes on making one a
//! request stopped waiting for (another connection came free first), outside that
//! request's deadline.

mod resolve;
mod timed;
mod trust;

pub use resolve::{BoundedResolver, MAX_LOOKUPS, MAX_LOOKUPS_PER_NAME};
pub use timed::{CONNECT_TIMEOUT, ConnectTimedOut, TimedConnector};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// How long an idle pooled connection is kept. Below Node's default `keepAliveTimeout`
/// (5 s), so the client never reuses a connection the server is about to close — the
/// race that turns a healthy server's reply into a reset.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A pooled HTTP/1.1 client for `http` and `https` URLs, sending bodies of type `B`.
/// Cloning it shares the pool.
pub type Client<B> = hyper_util::client::legacy::Client<
    TimedConnector<HttpsConnector<HttpConnector<BoundedResolver>>>,
    B,
>;

/// Why a client could not be built. Reported once, at startup, like bad config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An `https` URL is declared but no root certificate is trusted: the system has
    /// none (install a CA bundle or set `SSL_CERT_FILE`) and no CA file is set.
    #[error(
        "no root certificates for https: the system has none (install a CA bundle or set SSL_CERT_FILE) and no CA file is set"
    )]
    NoRoots,
    /// The CA file cannot be read, or is not PEM.
    #[error("cannot read CA file {}: {source}", path.display())]
    CaFileUnreadable {
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// The CA file holds no PEM certificate.
    #[error("CA file {} holds no PEM certificate", path.display())]
    CaFileEmpty {
        /// The configured path.
        path: PathBuf,
    },
    /// A certificate in the CA file cannot serve as a root.
    #[error("CA file {}: unusable certificate: {source}", path.display())]
    CaFileCertificate {
        /// The configured path.
        path: PathBuf,
        /// Why rustls refused it.
        source: rustls::Error,
    },
    /// rustls refused its own default configuration (should not happen).
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
}

impl BuildError {
    /// Whether the CA file is at fault (so callers can name their CA-file setting).
    pub fn is_ca_file(&self) -> bool {
        matches!(
            self,
            BuildError::CaFileUnreadable { .. }
                | BuildError::CaFileEmpty { .. }
                | BuildError::CaFileCertificate { .. }
        )
    }
}

/// Builds a [`Client`] under the crate's trust policy.
///
/// ```no_run
/// # fn demo(url: &hyper::Uri) -> Result<(), switchboard_http_client::BuildError> {
/// let client: switchboard_http_client::Client<String> =
///     switchboard_http_client::ClientBuilder::new().url(url).build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    /// Whether a declared URL is `https`: only then are roots loaded.
    https: bool,
    /// Extra roots, added to the system's.
    ca_file: Option<PathBuf>,
}

impl ClientBuilder {
    /// A builder with no URL declared and no CA file.
    pub fn new() -> Self {
        ClientBuilder::default()
    }

    /// Declares a URL the client will request; roots are loaded if any is `https`.
    pub fn url(mut self, url: &hyper::Uri) -> Self {
        self.https |= url.scheme() == Some(&hyper::http::uri::Scheme::HTTPS);
        self
    }

    /// Trusts the certificates of this PEM file as well as the system's (`None`: the
    /// system's only).
    pub fn ca_file(mut self, path: Option<&Path>) -> Self {
        self.ca_file = path.map(Path::to_path_buf);
        self
    }

    /// The client. Reads the system's roots and the CA file now (when `https` is
    /// declared), so a bad CA file fails here rather than on the first request.
    pub fn build<B>(&self) -> Result<Client<B>, BuildError>
    where
        B: Body + Send + 'static,
        B::Data: Send,
    {
        let roots = if self.https {
            trust::root_store(self.ca_file.as_deref())?
        } else {
            rustls::RootCertStore::empty()
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(BuildError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new_with_resolver(BoundedResolver::default());
        // The scheme is the TLS connector's to check.
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .build(TimedConnector::new(connector)),
        )
    }
}

/// Why the port `uri` names cannot be connected to, if it names one that is not a
/// port (`:99999`, `:0`, `:` with nothing after it). For configuration checks: the
/// `http` crate parses such an authority and reports no port, and the connector then
/// uses the scheme's default, so `http://host:80800/` would reach port 80 of `host`.
pub fn port_problem(uri: &hyper::Uri) -> Option<String> {
    let authority = uri.authority()?.as_str();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.strip_prefix('[') {
        // `[v6]` or `[v6]:port`.
        Some(rest) => rest.split_once(']')?.1.strip_prefix(':')?,
        None => host_port.rsplit_once(':')?.1,
    };
    match port.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some(format!(
            "{port:?} is not a port (1 to 65535); leave it out for the scheme's default"
        )),
    }
}

/// Reads `path` as [`ClientBuilder::build`] would for an `https` URL: a file that
/// cannot be read, or holds no usable certificate, is an error. For configuration
/// checks, so a bad file is reported with every other bad setting at start-up.
pub fn check_ca_file(path: &Path) -> Result<(), BuildError> {
    trust::root_store(Some(path)).map(|_| ())
}

/// Reads a response's `body` whole into one buffer, at most `limit` bytes (past it,
/// `http_body_util`'s `LengthLimitError`). Each piece is copied and let go as it
/// comes: `collect()` kept every piece, and a body sent in one-byte chunks is a
/// million pieces for a megabyte, each held in a list and each keeping the read buffer
/// it was cut from alive — about 40 MiB held for a 1 MiB reply.
pub async fn read_capped<B>(
    body: B,
    limit: usize,
) -> Result<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use bytes::BufMut as _;
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(body, limit);
    let declared = usize::try_from(Body::size_hint(&limited).lower()).unwrap_or(limit);
    // Not the declared length at once: a server declaring the limit and sending
    // nothing would hold it until the caller's deadline.
    let mut out = bytes::BytesMut::with_capacity(declared.min(limit).min(64 * 1024));
    let mut limited = std::pin::pin!(limited);
    while let Some(frame) = limited.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.put(data);
        }
    }
    // Growing may have left the buffer up to twice its length.
    if out.capacity() > out.len() + out.len() / 4 {
        return Ok(bytes::Bytes::copy_from_slice(&out));
    }
    Ok(out.freeze())
}

/// An error and its sources, `: `-separated: hyper-util's top-level message ("client
/// error (Connect)") says little alone.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_must_be_one() {
        let problem = |u: &str| port_problem(&u.parse::<hyper::Uri>().unwrap());
        for ok in [
            "http://h/x",
            "http://h:8080/x",
            "https://[::1]/x",
            "https://[::1]:8443/x",
            "http://u:p@h:1/",
            "http://u:p@h/",
        ] {
            assert_eq!(problem(ok), None, "{ok}");
        }
        for bad in [
            "http://h:99999/x",
            "http://h:0/",
            "http://h:/",
            "https://[::1]:70000/",
        ] {
            assert!(problem(bad).is_some(), "{bad}");
        }
    }

    /// A body of that many one-byte frames.
    struct Pieces(usize);

    impl Body for Pieces {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>>
        {
            if self.0 == 0 {
                return std::task::Poll::Ready(None);
            }
            self.0 -= 1;
            let piece = bytes::Bytes::from_static(b"x");
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(piece))))
        }
    }

    #[tokio::test]
    async fn a_body_is_read_whole_into_one_buffer_within_its_limit() {
        let read = read_capped(Pieces(1000), 1000)
            .await
            .expect("within the limit");
        assert_eq!(read.len(), 1000);
        let err = read_capped(Pieces(1001), 1000)
            .await
            .expect_err("past the limit");
        assert!(err.is::<http_body_util::LengthLimitError>(), "{err}");
    }

    /// An error with one cause, to chain.
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_lists_every_cause() {
        let err = Outer(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
    }

    /// A client for `url` with a CA file that does not exist.
    fn with_missing_ca_file(url: &str) -> Result<Client<String>, BuildError> {
        let url: hyper::Uri = url.parse().expect("URL");
        ClientBuilder::new()
            .url(&url)
            .ca_file(Some(Path::new("/nonexistent/ca.pem")))
            .build()
    }

    #[test]
    fn plain_http_needs_no_roots_nor_a_readable_ca_file() {
        let built = with_missing_ca_file("http://127.0.0.1:9/");
        assert!(built.is_ok(), "{:?}", built.err());
    }

    #[test]
    fn https_with_a_missing_ca_file_is_a_ca_file_error() {
        let err = with_missing_ca_file("https://127.0.0.1:9/").expect_err("refused");
        assert!(err.is_ca_file(), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
