//! A tiny blocking HTTP/1.1 client (one request per connection) and, on top of it, an
//! Engine.IO long-polling client that speaks the wire format by hand.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use anyhow::{Context, bail};

use super::support::{SAFETY_TIMEOUT, eventually};

/// Separates packets in a polling payload.
const RECORD_SEPARATOR: char = '\u{1e}';

/// A response, read to the end of the connection.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl HttpResponse {
    /// A header's value (case-insensitive name).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request written on a fresh connection, not yet answered.
#[derive(Debug)]
pub(crate) struct Pending {
    stream: TcpStream,
}

impl Pending {
    /// Writes `method path` with `body` and `Connection: close`.
    pub(crate) fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        body: &str,
    ) -> anyhow::Result<Self> {
        Self::send_with(addr, method, path, &[], body)
    }

    /// Writes `method path` with extra `headers`, `body` and `Connection: close`.
    pub(crate) fn send_with(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<Self> {
        let mut stream = TcpStream::connect_timeout(&addr, SAFETY_TIMEOUT)?;
        stream.set_read_timeout(Some(SAFETY_TIMEOUT))?;
        let extra: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes())?;
        Ok(Pending { stream })
    }

    /// Blocks until the server has read the request off the socket, so that it is being
    /// handled (Linux: the server socket's receive queue in `/proc/net/tcp` is empty).
    /// Elsewhere it returns at once.
    pub(crate) fn wait_until_read(&self) -> anyhow::Result<()> {
        let server = self.stream.peer_addr()?;
        let client = self.stream.local_addr()?;
        eventually("the server to read the request", || {
            let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
                return Ok(Some(()));
            };
            Ok(unread_bytes(&table, server, client)
                .filter(|n| *n == 0)
                .map(|_| ()))
        })
    }

    /// Reads the response.
    pub(crate) fn response(mut self) -> anyhow::Result<HttpResponse> {
        let mut raw = Vec::new();
        self.stream.read_to_end(&mut raw)?;
        parse_response(&raw)
    }
}

/// Bytes waiting in the receive queue of the socket `local` ← `remote`, from the text
/// of `/proc/net/tcp` (addresses as little-endian hex IPv4 and hex port).
fn unread_bytes(table: &str, local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => Some(format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        )),
        SocketAddr::V6(_) => None,
    };
    let (local, remote) = (hex(local)?, hex(remote)?);
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (l, r, queues) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
        if *l != local || *r != remote {
            return None;
        }
        u64::from_str_radix(queues.split(':').nth(1)?, 16).ok()
    })
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().context("no status line")?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .context("no status code")?
        .parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    };
    if response.header("transfer-encoding").is_some() {
        bail!("chunked responses are not supported by this test client");
    }
    Ok(response)
}

/// One request on a fresh connection.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<HttpResponse> {
    Pending::send(addr, method, path, body)?.response()
}

/// `GET path`.
pub(crate) fn get(addr: SocketAddr, path: &str) -> anyhow::Result<HttpResponse> {
    request(addr, "GET", path, "")
}

/// Waits until the node at `addr` answers `/health/ready` with 200 (`what` names the
/// wait in the error).
pub(crate) fn ready(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    eventually(what, || {
        Ok((get(addr, "/health/ready")?.status == 200).then_some(()))
    })
}

/// The value of one metric sample (`name{labels}` exactly as rendered), if present.
pub(crate) fn metric(addr: SocketAddr, sample: &str) -> anyhow::Result<Option<f64>> {
    let res = get(addr, "/metrics")?;
    anyhow::ensure!(res.status == 200, "/metrics answered {}", res.status);
    Ok(res.body.lines().find_map(|line| {
        let value = line.strip_prefix(sample)?.strip_prefix(' ')?;
        value.parse().ok()
    }))
}

/// An Engine.IO session over long-polling.
#[derive(Debug)]
pub(crate) struct Polling {
    addr: SocketAddr,
    sid: String,
    /// The `open` packet's JSON.
    pub(crate) open: serde_json::Value,
}

impl Polling {
    /// Performs the handshake.
    pub(crate) fn handshake(addr: SocketAddr) -> anyhow::Result<Self> {
        let res = get(addr, "/socket.io/?EIO=4&transport=polling")?;
        anyhow::ensure!(
            res.status == 200,
            "handshake answered {}: {}",
            res.status,
            res.body
        );
        let json = res.body.strip_prefix('0').context("not an open packet")?;
        let open: serde_json::Value = serde_json::from_str(json)?;
        let sid = open["sid"].as_str().context("no sid")?.to_owned();
        Ok(Polling { addr, sid, open })
    }

    /// The same session, its requests sent to `addr` (another node of a cluster).
    pub(crate) fn through(&self, addr: SocketAddr) -> Self {
        Polling {
            addr,
            sid: self.sid.clone(),
            open: self.open.clone(),
        }
    }

    fn path(&self) -> String {
        format!("/socket.io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    /// POSTs packets (e.g. `"40"` to join namespace `/`).
    pub(crate) fn send(&self, packets: &[&str]) -> anyhow::Result<()> {
        let body = packets.join(&RECORD_SEPARATOR.to_string());
        let res = request(self.addr, "POST", &self.path(), &body)?;
        anyhow::ensure!(
            res.status == 200,
            "POST answered {}: {}",
            res.status,
            res.body
        );
        Ok(())
    }

    /// Starts a GET without waiting for its answer.
    pub(crate) fn start_poll(&self) -> anyhow::Result<Pending> {
        Pending::send(self.addr, "GET", &self.path(), "")
    }

    /// GETs the packets waiting for this client (waiting for at least one).
    pub(crate) fn poll(&self) -> anyhow::Result<Vec<String>> {
        packets(self.start_poll()?.response()?)
    }
}

/// The packets of a polling response.
pub(crate) fn packets(res: HttpResponse) -> anyhow::Result<Vec<String>> {
    anyhow::ensure!(
        res.status == 200,
        "poll answered {}: {}",
        res.status,
        res.body
    );
    Ok(res
        .body
        .split(RECORD_SEPARATOR)
        .map(str::to_owned)
        .collect())
}

#[test]
fn proc_net_tcp_lines_are_parsed() {
    let table = "  sl  local_address rem_address   st tx_queue rx_queue\n   \
        0: 0100007F:0BB8 0100007F:D431 01 00000000:0000002A 00:00000000\n";
    let local = SocketAddr::from(([127, 0, 0, 1], 3000));
    let remote = SocketAddr::from(([127, 0, 0, 1], 54321));
    assert_eq!(unread_bytes(table, local, remote), Some(42));
    assert_eq!(unread_bytes(table, remote, local), None);
}
