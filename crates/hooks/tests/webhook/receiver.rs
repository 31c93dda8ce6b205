//! A scripted webhook receiver: a real hyper HTTP/1.1 server on `127.0.0.1:0` that
//! answers each request with the next scripted [`Answer`] and records what it got.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// How long a test waits for a request before failing (paused clock: costs nothing).
const SAFETY: Duration = Duration::from_secs(600);

/// What the receiver does with one request.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Answer with this status and an empty body.
    Status(u16),
    /// Answer with a status, extra headers and a body.
    Full(u16, Vec<(&'static str, String)>, String),
    /// Never answer (the connection stays open).
    Hang,
    /// Close the connection without answering.
    Drop,
}

/// One request as received.
#[derive(Debug)]
pub(crate) struct Recorded {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) at: Instant,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Debug)]
struct Script {
    next: VecDeque<Answer>,
    otherwise: Answer,
}

/// A running receiver.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) url: Uri,
    requests: mpsc::UnboundedReceiver<Recorded>,
}

impl Receiver {
    /// Answers `first` in order, then `otherwise` for every later request.
    pub(crate) async fn start(first: Vec<Answer>, otherwise: Answer) -> Receiver {
        Receiver::start_with(first, otherwise, None).await
    }

    /// The same over HTTPS, with `testdata/server.pem` (signed by `testdata/ca.pem`).
    pub(crate) async fn start_tls(first: Vec<Answer>, otherwise: Answer) -> Receiver {
        Receiver::start_with(first, otherwise, Some(tls_acceptor())).await
    }

    async fn start_with(
        first: Vec<Answer>,
        otherwise: Answer,
        tls: Option<TlsAcceptor>,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(Script {
            next: first.into(),
            otherwise,
        }));
        let (tx, requests) = mpsc::unbounded_channel();
        let scheme = if tls.is_some() { "https" } else { "http" };
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, tx) = (Arc::clone(&script), tx.clone());
                let service = service_fn(move |req| answer(req, Arc::clone(&script), tx.clone()));
                let http = hyper::server::conn::http1::Builder::new();
                match &tls {
                    None => {
                        tokio::spawn(http.serve_connection(TokioIo::new(stream), service));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            // A client that does not trust us aborts the handshake.
                            if let Ok(stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                        });
                    }
                }
            }
        });
        Receiver {
            url: format!("{scheme}://{addr}/hooks").parse().unwrap(),
            requests,
        }
    }

    /// The next request; panics if none comes within the safety timeout.
    pub(crate) async fn next(&mut self) -> Recorded {
        tokio::time::timeout(SAFETY, self.requests.recv())
            .await
            .expect("no request reached the receiver")
            .expect("receiver stopped")
    }

    /// Whether another request arrives within `wait` (of paused time).
    pub(crate) async fn more_within(&mut self, wait: Duration) -> Option<Recorded> {
        tokio::time::timeout(wait, self.requests.recv())
            .await
            .ok()
            .flatten()
    }
}

/// Path of a test certificate file: `switchboard-http-client`'s `testdata/`, which
/// builds the webhook client and keeps the one set of test certificates.
pub(crate) fn testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../http-client/testdata")
        .join(name)
}

fn tls_acceptor() -> TlsAcceptor {
    let certs = CertificateDer::pem_file_iter(testdata("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(testdata("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

async fn answer(
    req: Request<Incoming>,
    script: Arc<Mutex<Script>>,
    tx: mpsc::UnboundedSender<Recorded>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let _ = tx.send(Recorded {
        headers: parts.headers,
        body,
        at: Instant::now(),
    });
    let answer = {
        let mut script = script.lock().unwrap();
        let otherwise = script.otherwise.clone();
        script.next.pop_front().unwrap_or(otherwise)
    };
    let (status, headers, body) = match answer {
        Answer::Status(status) => (status, vec![], String::new()),
        Answer::Full(status, headers, body) => (status, headers, body),
        Answer::Hang => std::future::pending().await,
        Answer::Drop => return Err(std::io::Error::other("dropped by the script")),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    Ok(response)
}
