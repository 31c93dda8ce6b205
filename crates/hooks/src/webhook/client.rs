//! One signed POST to the backend over the workspace's pooled HTTP/1.1 client
//! (`switchboard-http-client`: system roots plus `tls_ca_file`), bounded by a deadline
//! and a response-body limit.

use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::Full;
use switchboard_http_client::{BuildError, ClientBuilder, error_chain};
use tokio::time::{Instant, timeout_at};

use crate::settings::Secret;
use crate::signature::{self, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// Sent as `User-Agent`, so backends can tell hook traffic apart in their logs.
const USER_AGENT: &str = concat!("switchboard-hooks/", env!("CARGO_PKG_VERSION"));

/// Why a POST got no response.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PostError {
    /// The deadline passed before the response headers arrived.
    #[error("timed out")]
    Timeout,
    /// Connecting, TLS or the exchange failed.
    #[error("{0}")]
    Network(String),
}

/// A response: status and headers, and the body if it was read in time and within
/// the limit (`None` otherwise).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
}

/// A pooled client for one sink. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub(crate) struct Client {
    inner: switchboard_http_client::Client<Full<Bytes>>,
    secret: Secret,
}

impl Client {
    /// A client for `urls`. Root certificates (the system's, plus `ca_file`) are loaded
    /// only when one of them is `https`, so a plain-`http` deployment works in an image
    /// without a CA bundle.
    pub(crate) fn new(
        secret: Secret,
        urls: [&Uri; 2],
        ca_file: Option<&Path>,
    ) -> Result<Self, BuildError> {
        let inner = urls
            .into_iter()
            .fold(ClientBuilder::new(), ClientBuilder::url)
            .ca_file(ca_file)
            .build()?;
        Ok(Client { inner, secret })
    }

    /// POSTs `body` as event `id`, signed at the current time. Fails with
    /// [`PostError::Timeout`] if the response headers are not in by `deadline`; the body
    /// is read until the same deadline and at most `body_limit` bytes.
    pub(crate) async fn post(
        &self,
        url: &Uri,
        id: &str,
        body: &Bytes,
        deadline: Instant,
        body_limit: usize,
    ) -> Result<Response, PostError> {
        let request = self.request(url, id, body)?;
        let response = match timeout_at(deadline, self.inner.request(request)).await {
            Err(_) => return Err(PostError::Timeout),
            Ok(Err(err)) => return Err(PostError::Network(error_chain(&err))),
            Ok(Ok(response)) => response,
        };
        let (parts, incoming) = response.into_parts();
        let read = switchboard_http_client::read_capped(incoming, body_limit);
        let body = match timeout_at(deadline, read).await {
            Ok(Ok(bytes)) => Some(bytes),
            _ => None,
        };
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    fn request(
        &self,
        url: &Uri,
        id: &str,
        body: &Bytes,
    ) -> Result<Request<Full<Bytes>>, PostError> {
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let signature = signature::sign(self.secret.expose(), timestamp, body);
        Request::builder()
            .method(Method::POST)
            .uri(url.clone())
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .header(IDEMPOTENCY_HEADER, id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(Full::new(body.clone()))
            .map_err(|err| PostError::Network(format!("cannot build the request: {err}")))
    }
}
