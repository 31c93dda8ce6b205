//! A Socket.IO client on top of the raw long-polling client: connect to a namespace
//! with an `auth` payload, emit with or without an acknowledgement, and wait for
//! events, acknowledgements or the connection's end. Also signs test JWTs (HS256).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use super::client::{Polling, packets};

/// The HS256 secret of `testdata/rules_e2e.toml`.
pub(crate) const SECRET: &str = "end-to-end-secret-0123456789abcdef";

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A token for `sub` signed with [`SECRET`], expiring `ttl` seconds from now, with
/// `extra` claims merged in.
pub(crate) fn token(sub: &str, ttl: u64, extra: Value) -> anyhow::Result<String> {
    let mut claims = json!({ "sub": sub, "exp": now() + ttl });
    if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        claims.extend(extra);
    }
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?)
}

/// What the server said to a CONNECT.
#[derive(Debug)]
pub(crate) enum Connect {
    /// Accepted: the client and its socket id.
    Accepted(Box<SioClient>, String),
    /// Refused with this `CONNECT_ERROR` payload.
    Refused(Value),
}

impl Connect {
    /// The client, or an error if the connection was refused.
    pub(crate) fn accepted(self) -> anyhow::Result<(SioClient, String)> {
        match self {
            Connect::Accepted(client, sid) => Ok((*client, sid)),
            Connect::Refused(err) => bail!("connection refused: {err}"),
        }
    }
}

/// One Engine.IO session with one socket in namespace `nsp`.
#[derive(Debug)]
pub(crate) struct SioClient {
    polling: Polling,
    nsp: String,
    /// Packets received and not looked at yet.
    inbox: VecDeque<String>,
    next_ack: u64,
    /// Whether the server sent the Engine.IO `close` packet.
    closed: bool,
}

impl SioClient {
    /// Opens a session and connects to `nsp` with `auth` as the CONNECT payload.
    pub(crate) fn connect(addr: SocketAddr, nsp: &str, auth: Value) -> anyhow::Result<Connect> {
        let mut client = SioClient {
            polling: Polling::handshake(addr)?,
            nsp: nsp.to_owned(),
            inbox: VecDeque::new(),
            next_ack: 1,
            closed: false,
        };
        let packet = format!("40{}{auth}", client.prefix());
        client.polling.send(&[&packet])?;
        let reply = client.take(|p| p.starts_with("40") || p.starts_with("44"))?;
        let (kind, body) = reply.split_at(2);
        let body = body.strip_prefix(&client.prefix()).unwrap_or(body);
        let value: Value = serde_json::from_str(body)?;
        if kind == "44" {
            return Ok(Connect::Refused(value));
        }
        let sid = value["sid"].as_str().context("no sid")?.to_owned();
        Ok(Connect::Accepted(Box::new(client), sid))
    }

    /// `/chat,` for namespace `/chat`; nothing for `/`.
    fn prefix(&self) -> String {
        match self.nsp.as_str() {
            "/" => String::new(),
            nsp => format!("{nsp},"),
        }
    }

    fn event_packet(&self, id: Option<u64>, event: &str, args: &[Value]) -> String {
        let mut data = vec![Value::String(event.to_owned())];
        data.extend_from_slice(args);
        let id = id.map(|id| id.to_string()).unwrap_or_default();
        format!("42{}{id}{}", self.prefix(), Value::Array(data))
    }

    /// Emits without asking for an acknowledgement.
    pub(crate) fn emit(&mut self, event: &str, args: &[Value]) -> anyhow::Result<()> {
        let packet = self.event_packet(None, event, args);
        self.polling.send(&[&packet])
    }

    /// Emits asking for an acknowledgement; returns its id.
    pub(crate) fn emit_with_ack(&mut self, event: &str, args: &[Value]) -> anyhow::Result<u64> {
        Ok(self.emit_many(event, args, 1)?[0])
    }

    /// Emits the same event `n` times in one request, each asking for an
    /// acknowledgement; returns their ids.
    pub(crate) fn emit_many(
        &mut self,
        event: &str,
        args: &[Value],
        n: usize,
    ) -> anyhow::Result<Vec<u64>> {
        let ids: Vec<u64> = (0..n as u64).map(|i| self.next_ack + i).collect();
        self.next_ack += n as u64;
        let packets: Vec<String> = ids
            .iter()
            .map(|id| self.event_packet(Some(*id), event, args))
            .collect();
        let packets: Vec<&str> = packets.iter().map(String::as_str).collect();
        self.polling.send(&packets)?;
        Ok(ids)
    }

    /// Emits and waits for the acknowledgement's arguments.
    pub(crate) fn call(&mut self, event: &str, args: &[Value]) -> anyhow::Result<Vec<Value>> {
        let id = self.emit_with_ack(event, args)?;
        self.ack(id)
    }

    /// Waits for the acknowledgement `id`.
    pub(crate) fn ack(&mut self, id: u64) -> anyhow::Result<Vec<Value>> {
        let head = format!("43{}{id}[", self.prefix());
        let packet = self.take(|p| p.starts_with(&head))?;
        let args = &packet[head.len() - 1..];
        Ok(serde_json::from_str(args)?)
    }

    /// Waits for the event `name`; returns its arguments.
    pub(crate) fn event(&mut self, name: &str) -> anyhow::Result<Vec<Value>> {
        let head = format!("42{}[{}", self.prefix(), Value::String(name.to_owned()));
        let packet = self.take(|p| p.starts_with(&head))?;
        let json = &packet[2 + self.prefix().len()..];
        let Value::Array(mut data) = serde_json::from_str(json)? else {
            bail!("not an event: {packet}");
        };
        data.remove(0);
        Ok(data)
    }

    /// Names of the events received and not yet taken.
    pub(crate) fn pending_events(&self) -> Vec<String> {
        let head = format!("42{}", self.prefix());
        self.inbox
            .iter()
            .filter_map(|p| p.strip_prefix(&head))
            .filter_map(|rest| serde_json::from_str::<Vec<Value>>(rest).ok())
            .filter_map(|data| data.first().and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    /// Waits until the server closes the session.
    pub(crate) fn closed(&mut self) -> anyhow::Result<()> {
        while !self.closed {
            self.receive()?;
        }
        Ok(())
    }

    /// Leaves the namespace.
    pub(crate) fn disconnect(&mut self) -> anyhow::Result<()> {
        let packet = format!("41{}", self.prefix());
        self.polling.send(&[&packet])
    }

    /// Leaves the namespace and connects to it again on the same connection (as
    /// `socket.disconnect().connect()` does on a multiplexed client); returns the
    /// server's answer: the new socket's id, or the `CONNECT_ERROR` payload.
    pub(crate) fn reconnect(&mut self, auth: Value) -> anyhow::Result<Result<String, Value>> {
        let (leave, connect) = (
            format!("41{}", self.prefix()),
            format!("40{}{auth}", self.prefix()),
        );
        self.polling.send(&[&leave, &connect])?;
        let reply = self.take(|p| p.starts_with("40") || p.starts_with("44"))?;
        let (kind, body) = reply.split_at(2);
        let value: Value = serde_json::from_str(body.strip_prefix(&self.prefix()).unwrap_or(body))?;
        Ok(match kind {
            "40" => Ok(value["sid"].as_str().context("no sid")?.to_owned()),
            _ => Err(value),
        })
    }

    /// The first packet matching `wanted`, polling as long as needed; packets before it
    /// stay in the inbox.
    fn take(&mut self, wanted: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        loop {
            if let Some(i) = self.inbox.iter().position(|p| wanted(p)) {
                return self.inbox.remove(i).context("inbox");
            }
            if self.closed {
                bail!("the server closed the session; received {:?}", self.inbox);
            }
            self.receive()?;
        }
    }

    /// One poll: answers pings, notes the `close` packet (or a session the server no
    /// longer knows: closed before the `close` packet could be polled), keeps
    /// Socket.IO packets.
    fn receive(&mut self) -> anyhow::Result<()> {
        let response = self.polling.start_poll()?.response()?;
        if response.status == 400 && response.body.contains("Session ID unknown") {
            self.closed = true;
            return Ok(());
        }
        for packet in packets(response)? {
            match packet.as_str() {
                "2" => self.polling.send(&["3"])?,
                "1" => self.closed = true,
                "6" => {}
                _ if packet.starts_with('4') => self.inbox.push_back(packet),
                _ => bail!("unexpected Engine.IO packet {packet:?}"),
            }
        }
        Ok(())
    }
}
