//! Outgoing TCP connections spread over loopback source addresses (127.0.0.x) so that a
//! long run does not exhaust one address's ephemeral ports.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::net::{TcpSocket, TcpStream};

/// Highest last octet tried for a source address (127.0.0.1 ..= 127.0.0.MAX).
const MAX_SOURCE_OCTET: u8 = 250;

/// Source-address pool: starts on 127.0.0.1 and moves to the next address when the
/// current one runs out of ephemeral ports.
#[derive(Debug)]
pub(crate) struct SourcePool {
    /// Last octet of the source address in use.
    octet: AtomicU8,
}

impl Default for SourcePool {
    fn default() -> Self {
        SourcePool {
            octet: AtomicU8::new(1),
        }
    }
}

impl SourcePool {
    /// Number of source addresses used so far.
    pub(crate) fn used(&self) -> u8 {
        self.octet.load(Ordering::Relaxed)
    }

    /// Connects to `target`, moving to the next source address when ports run short.
    pub(crate) async fn connect(&self, target: SocketAddr) -> std::io::Result<TcpStream> {
        loop {
            let octet = self.octet.load(Ordering::Relaxed);
            match connect_from(octet, target).await {
                Err(e) if is_port_exhaustion(&e) && octet < MAX_SOURCE_OCTET => {
                    let _ = self.octet.compare_exchange(
                        octet,
                        octet + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                other => return other,
            }
        }
    }
}

/// Whether a connect error means "no free local port for this source address".
fn is_port_exhaustion(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::AddrNotAvailable | ErrorKind::AddrInUse
    )
}

/// Connects from 127.0.0.`octet`; the first address lets the kernel pick (it can reuse a
/// port across destinations), the others bind explicitly.
async fn connect_from(octet: u8, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if octet > 1 {
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, octet), 0)))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
