//! The harness: an `Io` with namespaces `/` and `/chat`, the API router over it, and
//! long-polling clients that talk to the same `Io` through `Io::handle`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use serde_json::Value;
use switchboard_engine::adapter::AdapterFactory;
use switchboard_engine::{Io, Metrics, Shutdown, SocketIoConfig};

use crate::api::{ApiMetrics, ApiState, Router, router};
use crate::config::{ApiConfig, ApiKey};

/// The key every harness accepts.
pub(super) const KEY: &str = "test-key-0123456789abcdef";
/// Separates packets in a polling payload.
const RECORD_SEPARATOR: char = '\u{1e}';

/// The router under test and the server it acts on.
#[derive(Debug)]
pub(super) struct Harness {
    pub(super) io: Io,
    pub(super) router: Router,
    pub(super) metrics: Arc<ApiMetrics>,
}

/// An answer, with its body read.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    /// The body as JSON (`Null` if it is not JSON).
    pub(super) json: Value,
    pub(super) text: String,
}

impl Reply {
    /// The error code, `""` for a success.
    pub(super) fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or_default()
    }
}

impl Harness {
    /// The default API settings with [`KEY`].
    pub(super) fn new() -> Self {
        Harness::with(|_| {})
    }

    /// The default API settings with [`KEY`], then `edit`.
    pub(super) fn with(edit: impl FnOnce(&mut ApiConfig)) -> Self {
        Harness::on(Io::new(SocketIoConfig::default(), Shutdown::never()), edit)
    }

    /// The default API settings with [`KEY`], on namespaces served by `adapters`.
    pub(super) fn with_adapters(adapters: AdapterFactory) -> Self {
        let metrics = Arc::new(Metrics::default());
        let io = Io::with_adapter(
            SocketIoConfig::default(),
            adapters,
            metrics,
            Shutdown::never(),
        );
        Harness::on(io, |_| {})
    }

    /// The API over `io` (which gains `/chat`), with [`KEY`], then `edit`.
    fn on(io: Io, edit: impl FnOnce(&mut ApiConfig)) -> Self {
        io.of("/chat");
        let mut config = ApiConfig {
            keys: vec![ApiKey::new(KEY)],
            ..ApiConfig::default()
        };
        edit(&mut config);
        let metrics = Arc::<ApiMetrics>::default();
        let state = ApiState::new(io.clone(), &config, 4, metrics.clone());
        Harness {
            io,
            router: router(state),
            metrics,
        }
    }

    /// Sends `req` as it is.
    pub(super) async fn send(&self, req: Request<Full<Bytes>>) -> Reply {
        let res = self.router.handle(req).await;
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status,
            headers,
            json: serde_json::from_str(&text).unwrap_or_default(),
            text,
        }
    }

    /// `GET path` with the key.
    pub(super) async fn get(&self, path: &str) -> Reply {
        self.send(authorized("GET", path, "")).await
    }

    /// `POST path` with `body` as JSON and the key.
    pub(super) async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(authorized("POST", path, body.to_string())).await
    }

    /// A polling client connected to `namespace`.
    pub(super) async fn connect(&self, namespace: &str) -> Client {
        Client::connect(&self.io, namespace, "", &[]).await
    }
}

/// A request with `Authorization: Bearer KEY`.
pub(super) fn authorized(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    let mut req = request(method, path, body);
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {KEY}")
            .parse()
            .expect("a valid header value"),
    );
    req
}

/// A request without credentials.
pub(super) fn request(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(body.into()))
        .expect("a valid request")
}

/// A Socket.IO client over long-polling, connected to one namespace.
#[derive(Debug)]
pub(super) struct Client {
    io: Io,
    /// The Engine.IO session id.
    session: String,
    /// The socket id the server gave it.
    pub(super) id: String,
}

impl Client {
    /// Opens a session with `query` (extra parameters, each as `&name=value`) and
    /// `headers` on the handshake, and joins `namespace`.
    pub(super) async fn connect(
        io: &Io,
        namespace: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> Client {
        let mut open = engine_request("GET", query, "");
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            open.headers_mut()
                .insert(name, value.parse().expect("a header value"));
        }
        let open = call(io, open).await;
        let json: Value = serde_json::from_str(open.trim_start_matches('0')).unwrap_or_default();
        let session = json["sid"].as_str().unwrap_or_default().to_owned();
        let mut client = Client {
            io: io.clone(),
            session,
            id: String::new(),
        };
        let prefix = if namespace == "/" {
            "40".to_owned()
        } else {
            format!("40{namespace},")
        };
        client.send(&prefix).await;
        let connected = client.poll().await;
        let ack = connected
            .iter()
            .find(|p| p.starts_with(&prefix))
            .expect("a CONNECT answer");
        let body: Value = serde_json::from_str(&ack[prefix.len()..]).unwrap_or_default();
        client.id = body["sid"].as_str().unwrap_or_default().to_owned();
        assert_eq!(client.id.len(), 20, "{connected:?}");
        client
    }

    /// POSTs packets.
    pub(super) async fn send(&self, packets: &str) {
        let query = format!("&sid={}", self.session);
        call(&self.io, engine_request("POST", &query, packets)).await;
    }

    /// The packets waiting (waits for at least one: with paused time, a ping comes
    /// after the ping interval when nothing else does).
    pub(super) async fn poll(&self) -> Vec<String> {
        let query = format!("&sid={}", self.session);
        let body = call(&self.io, engine_request("GET", &query, "")).await;
        body.split(RECORD_SEPARATOR).map(str::to_owned).collect()
    }

    /// The next packets other than pings (answered with a pong): events, disconnects.
    /// Empty when only a ping came, i.e. nothing was sent within the ping interval.
    pub(super) async fn next(&self) -> Vec<String> {
        let packets = self.poll().await;
        if packets.iter().any(|p| p == "2") {
            self.send("3").await;
        }
        packets.into_iter().filter(|p| p != "2").collect()
    }
}

fn engine_request(method: &str, query: &str, body: &str) -> Request<Full<Bytes>> {
    let uri = format!("/socket.io/?EIO=4&transport=polling{query}");
    request(method, &uri, body.to_owned())
}

async fn call(io: &Io, req: Request<Full<Bytes>>) -> String {
    let remote = "127.0.0.1:40000".parse().expect("an address");
    let res = io.handle(req, remote).await;
    let bytes = res
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
