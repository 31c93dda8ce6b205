//! [`TimedConnector`]: every connection the client makes (TCP, then TLS) is made within
//! [`CONNECT_TIMEOUT`] or given up.
//!
//! A request bounds its own wait with its deadline, but not the connection the pool
//! started for it: when an idle connection comes free first, the pool hands the
//! request that one and finishes the new connection in the background, for the pool.
//! A server that takes the TCP connection and never finishes TLS (or a SYN that is
//! never answered) then held that task and its socket for ever (or for the kernel's
//! two minutes of SYN retries), one more each time it happened.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use tower_service::Service;

/// Longest a connection may take to be made, TLS handshake included, whether or not a
/// request still waits for it.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Wraps a connector so each connection is made within [`CONNECT_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct TimedConnector<C>(C);

impl<C> TimedConnector<C> {
    /// `inner`, each of its connections bounded by [`CONNECT_TIMEOUT`].
    pub fn new(inner: C) -> Self {
        TimedConnector(inner)
    }
}

/// The connection was not made in time.
#[derive(Debug, thiserror::Error)]
#[error("connection not made within {0:?}")]
pub struct ConnectTimedOut(Duration);

impl<C> Service<Uri> for TimedConnector<C>
where
    C: Service<Uri>,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = C::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<C::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.0.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move {
            match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(Box::new(ConnectTimedOut(CONNECT_TIMEOUT)) as BoxError),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connector whose connections never complete.
    #[derive(Clone)]
    struct Never;

    impl Service<Uri> for Never {
        type Response = ();
        type Error = std::io::Error;
        type Future = std::future::Pending<Result<(), std::io::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Uri) -> Self::Future {
            std::future::pending()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_never_made_is_given_up() {
        let mut connector = TimedConnector::new(Never);
        let uri = Uri::from_static("https://backend.example/");
        let made = connector.call(uri).await;
        let err = made.expect_err("given up");
        assert!(err.is::<ConnectTimedOut>(), "{err}");
    }
}
