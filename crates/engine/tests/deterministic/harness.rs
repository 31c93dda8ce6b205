//! A polling client that talks to an in-process `Io` through `Io::handle`.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use switchboard_engine::eio::server::RequestBody;
use switchboard_engine::{Io, Shutdown, SocketIoConfig};

pub(crate) const PING_INTERVAL: Duration = Duration::from_millis(300);
pub(crate) const PING_TIMEOUT: Duration = Duration::from_millis(200);

/// The suites' timings on an otherwise default config.
pub(crate) fn config() -> SocketIoConfig {
    let mut config = SocketIoConfig::default();
    config.engine.ping_interval = PING_INTERVAL;
    config.engine.ping_timeout = PING_TIMEOUT;
    config.connect_timeout = Duration::from_millis(1000);
    config
}

/// Sessions closed so far with `reason` (the engine's disconnect counter).
pub(crate) fn disconnects(io: &Io, reason: &str) -> u64 {
    let snap = io.engine().metrics().snapshot();
    snap.disconnects
        .iter()
        .find(|(r, _)| r.as_str() == reason)
        .unwrap()
        .1
}

/// Each disconnect of `ns`'s sockets as its handlers see it: the reason, and whether
/// the socket's connection was closed by then.
pub(crate) fn disconnects_seen(
    ns: &switchboard_engine::Namespace,
) -> std::sync::Arc<std::sync::Mutex<Vec<(&'static str, bool)>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    ns.on_disconnect(move |socket, reason| {
        sink.lock()
            .unwrap()
            .push((reason.as_str(), socket.conn().is_closed()))
    });
    seen
}

pub(crate) fn server(config: SocketIoConfig) -> Io {
    Io::new(config, Shutdown::never())
}

/// One HTTP exchange.
pub(crate) async fn request(
    io: &Io,
    method: Method,
    query: &str,
    body: &str,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(format!("/socket.io/?{query}"))
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    send(io, req).await
}

/// One HTTP exchange of a request built by the test (headers, a body of its own).
pub(crate) async fn send<B: RequestBody>(io: &Io, req: Request<B>) -> (StatusCode, String) {
    let res = io.handle(req, "127.0.0.1:9".parse().unwrap()).await;
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A polling session of one client.
pub(crate) struct Client {
    pub(crate) io: Io,
    pub(crate) sid: String,
}

impl Client {
    pub(crate) async fn handshake(io: &Io) -> Client {
        let (status, body) = request(io, Method::GET, "EIO=4&transport=polling", "").await;
        Client::opened(io, status, &body)
    }

    /// The client of a handshake answered `status` `body` (the `open` packet).
    pub(crate) fn opened(io: &Io, status: StatusCode, body: &str) -> Client {
        assert_eq!(status, StatusCode::OK, "{body}");
        let open: serde_json::Value =
            serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
        Client {
            io: io.clone(),
            sid: open["sid"].as_str().unwrap().to_owned(),
        }
    }

    /// Handshake and join namespace `/`, consuming the CONNECT answer.
    pub(crate) async fn connected(io: &Io) -> Client {
        let client = Client::handshake(io).await;
        client.post("40").await;
        let body = client.get().await;
        assert!(body.starts_with("40{\"sid\":"), "{body}");
        client
    }

    pub(crate) fn query(&self) -> String {
        format!("EIO=4&transport=polling&sid={}", self.sid)
    }

    pub(crate) async fn get_raw(&self) -> (StatusCode, String) {
        request(&self.io, Method::GET, &self.query(), "").await
    }

    pub(crate) async fn get(&self) -> String {
        let (status, body) = self.get_raw().await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub(crate) async fn post_raw(&self, body: &str) -> (StatusCode, String) {
        request(&self.io, Method::POST, &self.query(), body).await
    }

    pub(crate) async fn post(&self, body: &str) {
        let (status, answer) = self.post_raw(body).await;
        assert_eq!((status, answer.as_str()), (StatusCode::OK, "ok"));
    }
}

/// `(sid, pid)` of a CONNECT answer `40{"sid":..,"pid":..}` with recovery on
/// (possibly followed by more packets).
pub(crate) fn connect_answer(body: &str) -> (String, String) {
    let first = body.split('\x1e').next().unwrap();
    let v: serde_json::Value = serde_json::from_str(first.strip_prefix("40").unwrap()).unwrap();
    (
        v["sid"].as_str().unwrap().to_owned(),
        v["pid"].as_str().unwrap().to_owned(),
    )
}

impl Client {
    /// Asserts the session was closed: GETs either take what was queued before the
    /// close and then the close packet (it goes out alone, in a poll of its own), or
    /// find the session gone; after that the session is unknown.
    pub(crate) async fn assert_closed(&self) {
        for _ in 0..3 {
            let (status, body) = self.get_raw().await;
            if status != StatusCode::OK {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                return;
            }
            if body == "1" {
                let (status, body) = self.get_raw().await;
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                return;
            }
            assert!(
                !body.contains("\u{1e}1"),
                "the close packet shares a poll: {body:?}"
            );
        }
        panic!("no close packet in three polls");
    }
}

/// The room index of a test [`Adapter`](switchboard_engine::adapter::Adapter) kept in
/// its field `$index` (a `MemoryAdapter`): the seven methods every adapter has, for
/// adapters that change only what a cluster adds (a store, a node count, publishes).
#[allow(
    unused_macros,
    reason = "the harness is shared by test binaries that have no adapter"
)]
macro_rules! memory_index {
    ($index:ident) => {
        fn add_all(
            &self,
            sid: switchboard_engine::protocol::Sid,
            rooms: &[&str],
        ) -> Vec<switchboard_engine::adapter::Room> {
            self.$index.add_all(sid, rooms)
        }
        fn del(&self, sid: switchboard_engine::protocol::Sid, room: &str) -> bool {
            self.$index.del(sid, room)
        }
        fn del_all(
            &self,
            sid: switchboard_engine::protocol::Sid,
        ) -> Vec<switchboard_engine::adapter::Room> {
            self.$index.del_all(sid)
        }
        fn socket_rooms(
            &self,
            sid: switchboard_engine::protocol::Sid,
        ) -> Vec<switchboard_engine::adapter::Room> {
            self.$index.socket_rooms(sid)
        }
        fn sockets_in(
            &self,
            rooms: &[switchboard_engine::adapter::Room],
            out: &mut Vec<switchboard_engine::protocol::Sid>,
        ) {
            self.$index.sockets_in(rooms, out);
        }
        fn rooms(&self) -> Vec<switchboard_engine::adapter::Room> {
            self.$index.rooms()
        }
        fn room_size(&self, room: &str) -> usize {
            self.$index.room_size(room)
        }
    };
}
#[allow(
    unused_imports,
    reason = "the harness is shared by test binaries that have no adapter"
)]
pub(crate) use memory_index;

/// Holds a handler on its thread (real threads, not the paused clock): [`Gate::hold`] (in the handler) says it
/// has begun and waits; the test waits for that with [`Gate::entered`], does what it
/// races, and lets it go with [`Gate::open`].
pub(crate) struct Gate {
    entered_tx: Mutex<mpsc::Sender<()>>,
    entered: Mutex<mpsc::Receiver<()>>,
    go_tx: Mutex<mpsc::Sender<()>>,
    go: Mutex<mpsc::Receiver<()>>,
}

impl Gate {
    pub(crate) fn new() -> Arc<Self> {
        let (entered_tx, entered) = mpsc::channel();
        let (go_tx, go) = mpsc::channel();
        Arc::new(Gate {
            entered_tx: Mutex::new(entered_tx),
            entered: Mutex::new(entered),
            go_tx: Mutex::new(go_tx),
            go: Mutex::new(go),
        })
    }

    /// In the handler: blocks this thread until the test opens the gate.
    pub(crate) fn hold(&self) {
        self.entered_tx.lock().unwrap().send(()).unwrap();
        self.go
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10))
            .unwrap();
    }

    /// In the test: until a handler is held.
    pub(crate) async fn entered(self: &Arc<Self>) {
        let gate = self.clone();
        tokio::task::spawn_blocking(move || {
            gate.entered
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(10))
                .unwrap()
        })
        .await
        .unwrap();
    }

    pub(crate) fn open(&self) {
        self.go_tx.lock().unwrap().send(()).unwrap();
    }
}
