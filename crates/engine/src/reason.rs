//! Why a connection or a socket ended: one classified reason per disconnect (DESIGN §6).

use std::fmt;

/// Why a connection (Engine.IO session) or a socket (namespace member) ended.
///
/// The strings are Node's where Node has one, so dashboards and hooks keep their
/// meaning for teams migrating from Socket.IO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client closed the transport (or the TCP connection dropped).
    TransportClose,
    /// The transport failed (I/O error, overlapping polling requests, bad frame, a
    /// polling body slower than `body_timeout`), or the client broke the Engine.IO v4
    /// heartbeat by sending a ping (Node: "invalid heartbeat direction").
    TransportError,
    /// No pong arrived within `pingTimeout`.
    PingTimeout,
    /// The client sent bytes that are not valid Engine.IO or Socket.IO.
    ParseError,
    /// A message or polling body was larger than `maxPayload`.
    PayloadTooLarge,
    /// The client did not read fast enough and its outbound queue hit its bound.
    SlowConsumer,
    /// The server is shutting down or draining; the client should reconnect elsewhere.
    ServerShuttingDown,
    /// The server closed the whole connection.
    ForcedClose,
    /// The server disconnected the socket from its namespace.
    ServerNamespaceDisconnect,
    /// The client left the namespace.
    ClientNamespaceDisconnect,
    /// The connection joined no namespace within `connectTimeout`.
    ConnectTimeout,
    /// The client's credentials expired while connected.
    AuthExpired,
    /// The client sent more than its rate limit allows.
    RateLimited,
    /// Shed under memory pressure: the node was about to exceed its memory budget and
    /// this connection held the most queued bytes (see [`crate::pressure`]).
    ServerOverloaded,
}

impl DisconnectReason {
    /// Every reason, for metrics.
    pub const ALL: [DisconnectReason; 14] = [
        Self::TransportClose,
        Self::TransportError,
        Self::PingTimeout,
        Self::ParseError,
        Self::PayloadTooLarge,
        Self::SlowConsumer,
        Self::ServerShuttingDown,
        Self::ForcedClose,
        Self::ServerNamespaceDisconnect,
        Self::ClientNamespaceDisconnect,
        Self::ConnectTimeout,
        Self::AuthExpired,
        Self::RateLimited,
        Self::ServerOverloaded,
    ];

    /// The reason as a stable string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::PingTimeout => "ping timeout",
            Self::ParseError => "parse error",
            Self::PayloadTooLarge => "payload too large",
            Self::SlowConsumer => "slow consumer",
            Self::ServerShuttingDown => "server shutting down",
            Self::ForcedClose => "forced close",
            Self::ServerNamespaceDisconnect => "server namespace disconnect",
            Self::ClientNamespaceDisconnect => "client namespace disconnect",
            Self::ConnectTimeout => "connect timeout",
            Self::AuthExpired => "auth expired",
            Self::RateLimited => "rate limited",
            Self::ServerOverloaded => "server overloaded",
        }
    }

    /// Index into [`DisconnectReason::ALL`].
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
