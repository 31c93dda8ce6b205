//! A backend receiving Switchboard's webhooks on 127.0.0.1:0: it records every JSON
//! body, answers lifecycle events with an empty 200 and forwarded client events
//! (`"type": "event"`) with the reply the test chooses.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use anyhow::Context;
use serde_json::Value;

use super::support::{SAFETY_TIMEOUT, eventually};

type Reply = Arc<dyn Fn(&Value) -> Value + Send + Sync>;

/// The receiver; it serves until the test process ends.
#[derive(Clone)]
pub(crate) struct Backend {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Value>>>,
    gate: Arc<Gate>,
}

/// Whether the backend reads requests yet: a closed gate holds each request unread
/// (a stuck backend) until it opens, or [`SAFETY_TIMEOUT`] has passed.
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .opened
            .wait_timeout_while(closed, SAFETY_TIMEOUT, |closed| *closed);
    }

    fn set(&self, closed: bool) {
        *self.closed.lock().unwrap_or_else(|e| e.into_inner()) = closed;
        self.opened.notify_all();
    }
}

impl Backend {
    /// Starts a backend answering forwarded events with `reply(body)`.
    pub(crate) fn start(
        reply: impl Fn(&Value) -> Value + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let backend = Backend {
            addr: listener.local_addr()?,
            received: Arc::default(),
            gate: Arc::default(),
        };
        let reply: Reply = Arc::new(reply);
        let (received, gate) = (backend.received.clone(), backend.gate.clone());
        thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (received, reply, gate) = (received.clone(), reply.clone(), gate.clone());
                thread::spawn(move || {
                    gate.wait();
                    let _ = serve(stream, &received, &*reply);
                });
            }
        });
        Ok(backend)
    }

    /// Holds every request unread from now on, as a stuck backend would.
    pub(crate) fn stall(&self) {
        self.gate.set(true);
    }

    /// Reads and answers requests again, those held first.
    pub(crate) fn resume(&self) {
        self.gate.set(false);
    }

    /// The URL to configure as `hooks.webhook.url`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// Every body received so far.
    pub(crate) fn received(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits for a body of type `kind` whose `data` satisfies `wanted`.
    pub(crate) fn wait_for(
        &self,
        kind: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        eventually(&format!("a `{kind}` webhook"), || {
            Ok(self
                .received()
                .into_iter()
                .find(|body| body["type"] == kind && wanted(&body["data"])))
        })
        .with_context(|| format!("received: {:#?}", self.received()))
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("addr", &self.addr).finish()
    }
}

/// Answers one request (the response closes the connection).
fn serve(
    stream: TcpStream,
    received: &Mutex<Vec<Value>>,
    reply: &(dyn Fn(&Value) -> Value + Send + Sync),
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(SAFETY_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body)?;
    let answer = match body["type"].as_str() {
        Some("event") => reply(&body).to_string(),
        _ => String::new(),
    };
    received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(body);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{answer}",
        answer.len()
    );
    (&stream).write_all(response.as_bytes())?;
    Ok(())
}

/// A server with `testdata/rules_e2e.toml` whose webhook is a new [`Backend`]
/// answering forwarded events with `reply`.
pub(crate) fn serve_rules(
    reply: impl Fn(&Value) -> Value + Send + Sync + 'static,
) -> anyhow::Result<(super::support::TestServer, Backend)> {
    serve_rules_from("rules_e2e.toml", reply)
}

/// [`serve_rules`] with the rules of `testdata/<config>`.
pub(crate) fn serve_rules_from(
    config: &str,
    reply: impl Fn(&Value) -> Value + Send + Sync + 'static,
) -> anyhow::Result<(super::support::TestServer, Backend)> {
    let backend = Backend::start(reply)?;
    let config = super::support::testdata(config);
    let server = super::support::TestServer::builder()
        .args([std::ffi::OsStr::new("--config"), config.as_os_str()])
        .env("SWITCHBOARD_HOOKS__WEBHOOK__URL", &backend.url())
        .start()?;
    Ok((server, backend))
}

/// A backend with no forwarded-event logic: an empty reply.
pub(crate) fn no_reply(_: &Value) -> Value {
    Value::Object(serde_json::Map::new())
}
