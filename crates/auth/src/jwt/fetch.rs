//! Getting a JWKS document's bytes: the [`FetchKeys`] seam the cache calls, and its
//! HTTP(S) implementation on the workspace's client (`switchboard-http-client`: the
//! system's root certificates plus an optional CA file, rustls on ring, HTTP/1.1).

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::Empty;
use switchboard_http_client::{BuildError, Client, ClientBuilder, error_chain};

use super::settings::MAX_JWKS_BYTES;

/// What a fetch returns: the document body, or why there is none.
pub(crate) type FetchFuture = Pin<Box<dyn Future<Output = Result<Bytes, FetchError>> + Send>>;

/// Fetches one key set document. A seam so the cache's timing rules can be tested with
/// paused time and a scripted fetcher, without sockets.
pub(crate) trait FetchKeys: Send + Sync + fmt::Debug + 'static {
    /// Starts a fetch; the caller bounds it with the fetch timeout.
    fn fetch(&self) -> FetchFuture;
}

/// Why a JWKS fetch failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// Connecting, TLS, or the exchange itself failed.
    #[error("request failed: {0}")]
    Transport(String),
    /// The server answered with something other than 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// The body was cut off or longer than [`MAX_JWKS_BYTES`].
    #[error("body unreadable or over {MAX_JWKS_BYTES} bytes: {0}")]
    Body(String),
    /// The fetch took longer than the timeout.
    #[error("timed out")]
    Timeout,
    /// The body is not a JWKS document.
    #[error("not a key set: {0}")]
    Invalid(String),
}

/// The `User-Agent` sent, so identity providers can tell who is fetching.
const AGENT: &str = concat!("switchboard/", env!("CARGO_PKG_VERSION"));

/// Fetches a JWKS URL with hyper's pooled client.
#[derive(Clone)]
pub(crate) struct HttpFetcher {
    /// The document's URL.
    url: Uri,
    /// Pooled HTTP/1.1 client; cloning it shares the pool.
    client: Client<Empty<Bytes>>,
}

impl fmt::Debug for HttpFetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFetcher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl HttpFetcher {
    /// A client for `url`, under the workspace's trust policy: for `https`, the
    /// system's root certificates and those of `ca_file` are read now, so a bad CA file,
    /// or no root at all, is a startup error.
    pub(crate) fn new(url: Uri, ca_file: Option<&Path>) -> Result<Self, BuildError> {
        let client = ClientBuilder::new().url(&url).ca_file(ca_file).build()?;
        Ok(HttpFetcher { url, client })
    }

    /// One GET of the document, its body capped at [`MAX_JWKS_BYTES`].
    async fn get(self) -> Result<Bytes, FetchError> {
        let request = Request::get(self.url.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .header(USER_AGENT, AGENT)
            .body(Empty::new())
            .map_err(|err| FetchError::Transport(err.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| FetchError::Transport(error_chain(&err)))?;
        if response.status() != StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        switchboard_http_client::read_capped(response.into_body(), MAX_JWKS_BYTES)
            .await
            .map_err(|err| FetchError::Body(err.to_string()))
    }
}

impl FetchKeys for HttpFetcher {
    fn fetch(&self) -> FetchFuture {
        Box::pin(self.clone().get())
    }
}
