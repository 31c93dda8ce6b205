//! One signed POST to the backend over a pooled HTTP/1.1 client (hyper-util's legacy
//! client, rustls for `https`), bounded by a deadline and a response-body limit.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use tokio::time::{Instant, timeout_at};

use crate::settings::Secret;
use crate::signature::{self, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

/// How long an idle pooled connection is kept. Below Node's default `keepAliveTimeout`
/// (5 s), so the client never reuses a connection the backend is about to close —
/// the race that turns a healthy backend's reply into a reset.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

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
    inner: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
    secret: Secret,
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// An `https` URL is configured but there is no root certificate to trust.
    #[error("no root certificates for https: the system has none and tls_ca_file is not set")]
    NoRoots,
    /// The configured CA file cannot be read or holds no usable certificate.
    #[error("{message}")]
    CaFile {
        /// What went wrong, with the path.
        message: String,
    },
    /// rustls refused its own default configuration (should not happen).
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

impl Client {
    /// A client. Root certificates (the system's, plus `ca_file`) are loaded only when
    /// `https` is needed, so a plain-`http` deployment works in an image without a CA
    /// bundle.
    pub(crate) fn new(
        secret: Secret,
        needs_tls: bool,
        ca_file: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = if needs_tls {
            root_store(ca_file)?
        } else {
            RootCertStore::empty()
        };
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        let inner = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
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
        let collected = timeout_at(deadline, Limited::new(incoming, body_limit).collect()).await;
        let body = match collected {
            Ok(Ok(collected)) => Some(collected.to_bytes()),
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

/// The system's root certificates (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`) and
/// those of `ca_file`, a PEM bundle of extra roots such as a private CA.
fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for err in &native.errors {
        tracing::debug!(cause = %err, "skipping unreadable system root certificates");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system root certificates loaded");
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| ClientError::CaFile {
                message: format!("cannot read {shown}: {err}"),
            })?;
        if certs.is_empty() {
            return Err(ClientError::CaFile {
                message: format!("{shown} holds no PEM certificate"),
            });
        }
        for cert in certs {
            roots.add(cert).map_err(|err| ClientError::CaFile {
                message: format!("{shown}: unusable certificate: {err}"),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(ClientError::NoRoots);
    }
    Ok(roots)
}

/// An error and its sources, `: `-separated (hyper-util's top error says little).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
