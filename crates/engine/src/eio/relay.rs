//! WebSocket upgrades behind any load balancer: a node that receives the upgrade of a
//! session another node owns relays it to that node.
//!
//! A client starts on long-polling (the default) and then opens a WebSocket carrying
//! its session id. Behind a round-robin balancer that request reaches any node, but
//! only the session's owner can upgrade it: the session's queue, heartbeat and sockets
//! live there. So the node that receives it (tagged differently from the session id):
//!
//! 1. asks the owner, through the cluster's [`Forwarder`] (signed like a forwarded
//!    poll), where it can be reached. The owner answers with its relay address
//!    ([`EngineServer::set_relay_address`]) if it holds the session, open, on
//!    polling and not upgrading, and `Session ID unknown` otherwise;
//! 2. connects to that address and sends it the client's upgrade request, headers
//!    unchanged: the owner checks the origin and runs its ordinary upgrade, exactly as
//!    if the balancer had picked it;
//! 3. answers the client with the owner's `101 Switching Protocols` and then copies
//!    bytes both ways until either side closes.
//!
//! The upgrade itself (the probe, the pause of polling, the hand-over of the queued
//! packets) is the owner's usual code, so nothing is lost, duplicated or reordered
//! across it, and every client ends on WebSocket wherever its request landed.
//!
//! **Cost**: the relaying node holds two TCP connections and two copy buffers of
//! [`RELAY_BUFFER`] bytes per relayed client, and every frame crosses one more hop
//! (node to node; Redis carries only the one question of step 1). A relayed connection
//! counts against the relaying node's `max_connections`. While a node drains it
//! relays no new upgrades (those clients stay on polling), and the drain waits for the
//! upgrades it relays to complete: until the client's `upgrade` packet has gone by
//! (followed by [`watch`]), a relay ended by the node's shutdown would leave the
//! client paused until its ping timeout. At its shutdown its relayed clients lose
//! their WebSocket and reconnect at once (and resume, with connection state recovery).
//!
//! **Trust**: the address comes signed from the owner (an attacker who can write to
//! Redis cannot point a client's WebSocket, cookies included, elsewhere). The
//! connection to it is plain HTTP: nodes must reach each other on a private network,
//! as they reach their Redis.
//!
//! Without a relay address on the owner or a forwarder here, or when a step fails, the
//! client gets `400 Session ID unknown` for its WebSocket and stays on polling.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use http_body_util::Empty;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use switchboard_protocol::engineio::EngineErrorCode;

pub(crate) mod watch;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use self::watch::UpgradeWatch;
use super::forward::{FORWARDED_HEADERS, ForwardedRequest, Forwarder, only};
use super::registry::{RelayedUpgrade, Slot};
use super::server::{Body, error};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Bytes of each of the two copy buffers of a relayed connection.
pub(crate) const RELAY_BUFFER: usize = 4096;

/// Bytes of each of the two buffers used until the upgrade is done: what crosses then
/// is a probe, its answer and the `upgrade` packet.
const UPGRADE_BUFFER: usize = 512;

/// Beyond the heartbeat's `ping_interval + ping_timeout`, how long a relayed
/// WebSocket's owner may send nothing before the relay ends: the next ping is due
/// `ping_interval` after the client's pong (which may come up to `ping_timeout` after
/// the ping), plus the network and timers; as the cluster's forward timeout, nodes are
/// expected to share their heartbeat settings.
pub(crate) const IDLE_MARGIN: Duration = Duration::from_secs(5);

/// How long connecting to the owner and its answer to the upgrade may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest relay address an owner may answer with (`host:port`).
const MAX_ADDRESS_LEN: usize = 256;

/// What an upgrade request carries to the owner.
pub(crate) struct RelayHead {
    /// Path and query, as the client sent them.
    pub(crate) uri: Uri,
    /// Every header the client sent.
    pub(crate) headers: HeaderMap,
    /// The client's address, as this node saw it.
    pub(crate) remote: SocketAddr,
}

/// Why an upgrade was not relayed (logged at debug; the client stays on polling).
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("the owner could not be asked: {0}")]
    Ask(#[from] super::forward::ForwardError),
    #[error("the owner does not relay this session (status {0})")]
    NotRelayed(StatusCode),
    #[error("the owner's relay address is unusable")]
    BadAddress,
    #[error("connecting to the owner failed: {0}")]
    Connect(#[from] std::io::Error),
    #[error("the owner's HTTP answer failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("the owner did not answer in time")]
    Timeout,
    #[error("the owner refused the upgrade (status {0})")]
    Refused(StatusCode),
}

/// Relays the upgrade in `head` to the node tagged `owner`: resolves to the owner's
/// `101` (and copies bytes between `client` and the owner from then on, holding
/// `slot`, and `upgrade` until the client's `upgrade` packet went by), or to `Session
/// ID unknown`. `idle`: how long the owner may send nothing before the relay ends
/// (its heartbeat's `ping_interval + ping_timeout`).
pub(crate) async fn relay(
    forwarder: Arc<dyn Forwarder>,
    owner: String,
    head: RelayHead,
    client: OnUpgrade,
    held: (Slot, RelayedUpgrade),
    (metrics, shutdown, idle): (Arc<Metrics>, Shutdown, Duration),
) -> Response<Body> {
    match connect(forwarder.as_ref(), &owner, head).await {
        Ok((answer, upstream)) => {
            metrics.upgrades_relayed.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(pipe(client, upstream, held, (metrics, idle), shutdown));
            answer
        }
        Err(err) => {
            tracing::debug!(owner, error = %err, "WebSocket upgrade not relayed");
            error(EngineErrorCode::UnknownSid)
        }
    }
}

/// Steps 1 and 2 of the module doc: the owner's `101` for the client, and the owner's
/// side of the connection once upgraded.
async fn connect(
    forwarder: &dyn Forwarder,
    owner: &str,
    head: RelayHead,
) -> Result<(Response<Body>, OnUpgrade), RelayError> {
    let address = ask_address(forwarder, owner, &head).await?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&*address))
        .await
        .map_err(|_| RelayError::Timeout)??;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.with_upgrades().await {
            tracing::debug!(error = %err, "relay connection to the owner ended");
        }
    });
    let mut req = Request::new(Empty::new());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = head
        .uri
        .path_and_query()
        .map_or_else(|| Uri::from_static("/"), |pq| Uri::from(pq.clone()));
    *req.headers_mut() = head.headers;
    let res = tokio::time::timeout(CONNECT_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| RelayError::Timeout)??;
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(RelayError::Refused(res.status()));
    }
    let mut answer = Response::new(Body::default());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *answer.headers_mut() = res.headers().clone();
    Ok((answer, hyper::upgrade::on(res)))
}

/// Step 1: the owner's relay address for this session, asked through the forwarder.
async fn ask_address(
    forwarder: &dyn Forwarder,
    owner: &str,
    head: &RelayHead,
) -> Result<String, RelayError> {
    let mut headers = only(&head.headers, &FORWARDED_HEADERS);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    let question = ForwardedRequest {
        method: Method::GET,
        query: head.uri.query().unwrap_or_default().to_owned(),
        headers,
        body: Bytes::new(),
        remote: head.remote,
    };
    let answer = forwarder.forward(owner, question).await?;
    if answer.status != StatusCode::OK {
        return Err(RelayError::NotRelayed(answer.status));
    }
    match std::str::from_utf8(&answer.body) {
        Ok(address) if is_address(address) => Ok(address.to_owned()),
        _ => Err(RelayError::BadAddress),
    }
}

/// `host:port`, short and printable: what [`EngineServer::set_relay_address`] accepts
/// (a port from 1 to 65535, at most 256 bytes, no spaces or control characters).
///
/// [`EngineServer::set_relay_address`]: super::EngineServer::set_relay_address
pub fn is_address(address: &str) -> bool {
    address.len() <= MAX_ADDRESS_LEN
        && address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        })
        && address.bytes().all(|b| b.is_ascii_graphic())
}

/// Step 3: copies bytes both ways between the client and the owner until either side
/// closes or the node shuts down; tells the drain when the upgrade is done.
async fn pipe(
    client: OnUpgrade,
    upstream: OnUpgrade,
    (slot, upgrade): (Slot, RelayedUpgrade),
    (metrics, idle): (Arc<Metrics>, Duration),
    shutdown: Shutdown,
) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(client), Ok(upstream)) => (client, upstream),
        (client, upstream) => {
            tracing::debug!(
                client = client.is_ok(),
                owner = upstream.is_ok(),
                "relayed upgrade did not complete"
            );
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    metrics.relayed_connections.fetch_add(1, Ordering::Relaxed);
    if until_upgraded(&mut client, &mut upstream, &shutdown).await {
        // The client is on its WebSocket now: a shutdown may end the relay.
        drop(upgrade);
        tokio::select! {
            result = frames(client, upstream, idle) => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "relayed WebSocket ended");
                }
            }
            () = shutdown.wait() => {}
        }
    } else {
        tracing::debug!("relayed WebSocket ended before the upgrade completed");
    }
    metrics.relayed_connections.fetch_sub(1, Ordering::Relaxed);
    drop(slot);
}

/// Copies bytes both ways once upgraded, until either side ends (its end of file or
/// an error) or the owner has sent nothing for `idle`. The end of either side ends
/// the relay: a WebSocket says goodbye in its frames, not with half a TCP connection,
/// and waiting for the other side's end instead (as a two-way copy does) kept the
/// relay, its place among `max_connections` and its buffers for as long as a client
/// that stopped reading without closing liked, long after the owner had closed the
/// session. The owner's heartbeat pings within `ping_interval + ping_timeout` of its
/// last ping, so an owner silent for `idle` (that, and [`IDLE_MARGIN`]) is gone (a
/// half-open connection to a node that died unheard).
async fn frames<C, U>(client: C, upstream: U, idle: Duration) -> io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_in, mut client_out) = tokio::io::split(client);
    let (mut owner_in, mut owner_out) = tokio::io::split(upstream);
    let to_owner = async {
        let mut buf = vec![0u8; RELAY_BUFFER];
        loop {
            let n = client_in.read(&mut buf).await?;
            if n == 0 {
                // Pass the client's end on (its close frame is already written), so
                // the owner reads it rather than a reset.
                return owner_out.shutdown().await;
            }
            owner_out.write_all(&buf[..n]).await?;
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; RELAY_BUFFER];
        loop {
            let n = tokio::time::timeout(idle, owner_in.read(&mut buf))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the owner went silent"))??;
            if n == 0 {
                // Pass the owner's end on (its close frame is already written).
                return client_out.shutdown().await;
            }
            // A client that stops reading holds the relay no longer than a silent
            // owner does (under `serve` its connection's write stall would end it
            // too; an embedder's own server may have no such bound).
            tokio::time::timeout(idle, client_out.write_all(&buf[..n]))
                .await
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")
                })??;
        }
    };
    tokio::select! {
        result = to_owner => result,
        result = to_client => result,
    }
}

/// Copies bytes both ways until the client's `upgrade` packet has gone by (true), or
/// either side closes or fails, or the node shuts down (false: the relay is over).
async fn until_upgraded<C, U>(client: &mut C, upstream: &mut U, shutdown: &Shutdown) -> bool
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut watch = UpgradeWatch::default();
    let (mut up, mut down) = ([0u8; UPGRADE_BUFFER], [0u8; UPGRADE_BUFFER]);
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Some(bytes) = pass_on(read, &up, upstream).await else {
                    return false;
                };
                if watch.feed(bytes) {
                    return upstream.flush().await.is_ok();
                }
            }
            read = upstream.read(&mut down) => {
                if pass_on(read, &down, client).await.is_none() {
                    return false;
                }
            }
            () = shutdown.wait() => return false,
        }
    }
}

/// Writes to `to` what a `read` into `buf` brought, and returns it; `None` once the
/// reading side has ended, or either side failed.
async fn pass_on<'b, W: AsyncWrite + Unpin>(
    read: std::io::Result<usize>,
    buf: &'b [u8],
    to: &mut W,
) -> Option<&'b [u8]> {
    let n = read.ok().filter(|&n| n > 0)?;
    to.write_all(&buf[..n]).await.ok()?;
    Some(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owner that sends nothing for `idle` (no ping: its node died unheard, the
    /// connection half open) ends the relay, and so does either side's end.
    #[tokio::test(start_paused = true)]
    async fn a_relay_ends_when_the_owner_goes_silent_or_either_side_ends() {
        let idle = Duration::from_secs(45);
        // The owner stays silent.
        let (client, _client_peer) = tokio::io::duplex(64);
        let (owner, _owner_peer) = tokio::io::duplex(64);
        let ended = frames(client, owner, idle).await;
        assert_eq!(ended.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
        // The owner's end, while the client stays open and silent.
        ended_by(Side::Owner, idle).await;
        // The client's end, while the owner stays open: passed on to the owner.
        ended_by(Side::Client, idle).await;
    }

    /// A client that stops reading while the owner keeps talking (its pings) ends
    /// the relay after `idle`, rather than holding it for as long as it likes.
    #[tokio::test(start_paused = true)]
    async fn a_relay_ends_when_the_client_stops_reading() {
        let idle = Duration::from_secs(45);
        let (client, _client_peer) = tokio::io::duplex(64);
        let (owner, mut owner_peer) = tokio::io::duplex(64);
        let relay = tokio::spawn(frames(client, owner, idle));
        let talking = tokio::spawn(async move {
            loop {
                if owner_peer.write_all(&[b'2'; 32]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let ended = tokio::time::timeout(idle * 3, relay).await;
        talking.abort();
        let ended = ended.expect("the relay ended").unwrap();
        assert_eq!(ended.map_err(|e| e.kind()), Err(io::ErrorKind::TimedOut));
    }

    /// A side of a relay.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Side {
        Client,
        Owner,
    }

    /// Ends `side` of a relay while the other stays open and silent: the relay ends,
    /// and the other side sees the end.
    async fn ended_by(side: Side, idle: Duration) {
        let (client, client_peer) = tokio::io::duplex(64);
        let (owner, owner_peer) = tokio::io::duplex(64);
        let relay = tokio::spawn(frames(client, owner, idle));
        let (mut other, seen_by) = match side {
            Side::Owner => {
                drop(owner_peer);
                (client_peer, "the client sees the end")
            }
            Side::Client => {
                drop(client_peer);
                (owner_peer, "the owner sees the end")
            }
        };
        assert!(relay.await.unwrap().is_ok());
        let mut rest = Vec::new();
        other.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{seen_by}");
    }

    #[test]
    fn relay_addresses_are_host_and_port_only() {
        for ok in ["127.0.0.1:3000", "node-2.internal:80", "[::1]:3000"] {
            assert!(is_address(ok), "{ok}");
        }
        let long = format!("{}:1", "a".repeat(MAX_ADDRESS_LEN));
        for bad in [
            "",
            "host",
            ":80",
            "host:0",
            "host:99999",
            "a b:80",
            "h\n:80",
            &long,
        ] {
            assert!(!is_address(bad), "{bad:?}");
        }
    }
}
