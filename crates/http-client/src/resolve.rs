//! Host name lookups with a bound on how many run at once, process-wide.
//!
//! A lookup (`getaddrinfo`) blocks a thread until the DNS answers, which a DNS server
//! that never answers makes tens of seconds. hyper's own resolver runs each on tokio's
//! blocking pool and lets the request's deadline drop the wait but not the thread, so
//! while clients keep forwarding events to a backend whose name does not resolve, new
//! lookups start faster than old ones end, until the pool (512 threads) is full and
//! everything else that needs it (dead-letter writes, static files, password checks)
//! waits. Here at most [`MAX_LOOKUPS`] lookups run at once, and at most
//! [`MAX_LOOKUPS_PER_NAME`] of one name, so one backend whose name does not resolve
//! leaves the other lookups (another webhook's, the identity provider's) their turns.
//! The permits go with the blocking lookup itself and come back only when it ends, and
//! a request waiting for one gives up with its deadline, holding no thread.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;
use tokio::sync::Semaphore;

/// Lookups running at once in the process, every client together.
pub const MAX_LOOKUPS: usize = 8;

/// Lookups of one name running at once (of [`MAX_LOOKUPS`]).
pub const MAX_LOOKUPS_PER_NAME: usize = 2;

/// The bound of each name being looked up, by name.
type Names = Arc<Mutex<HashMap<String, Arc<Semaphore>>>>;

/// What resolves one name: blocking, run on the blocking pool.
type Lookup = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// A resolver for hyper's `HttpConnector` whose lookups share one bound.
#[derive(Clone)]
pub struct BoundedResolver {
    lookup: Lookup,
    running: Arc<Semaphore>,
    /// The names being looked up or waited for, each with its own bound; an entry
    /// goes once nobody holds or waits for it.
    names: Names,
}

impl std::fmt::Debug for BoundedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedResolver")
            .field("free", &self.running.available_permits())
            .finish_non_exhaustive()
    }
}

impl Default for BoundedResolver {
    /// The system's resolver (`getaddrinfo`), under the process-wide bound.
    fn default() -> Self {
        static RUNNING: OnceLock<Arc<Semaphore>> = OnceLock::new();
        static NAMES: OnceLock<Names> = OnceLock::new();
        BoundedResolver {
            lookup: Arc::new(|host| Ok((host, 0).to_socket_addrs()?.collect())),
            running: RUNNING
                .get_or_init(|| Arc::new(Semaphore::new(MAX_LOOKUPS)))
                .clone(),
            names: NAMES.get_or_init(Arc::default).clone(),
        }
    }
}

impl BoundedResolver {
    /// `lookup` under a bound of `max` at once (for tests).
    #[cfg(test)]
    fn with(lookup: Lookup, max: usize) -> Self {
        BoundedResolver {
            lookup,
            running: Arc::new(Semaphore::new(max)),
            names: Arc::default(),
        }
    }

    /// The bound of `host`'s lookups, made if none is in use; entries nobody holds any
    /// more go (each permit and each waiter holds a reference).
    fn bound_of(&self, host: &str) -> Arc<Semaphore> {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.retain(|_, bound| Arc::strong_count(bound) > 1);
        names
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(MAX_LOOKUPS_PER_NAME)))
            .clone()
    }
}

impl tower_service::Service<Name> for BoundedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (lookup, running) = (self.lookup.clone(), self.running.clone());
        let host = name.as_str().to_owned();
        let this_name = self.bound_of(&host);
        Box::pin(async move {
            let closed = |_| io::Error::other("resolver closed");
            let name_permit = this_name.acquire_owned().await.map_err(closed)?;
            let permit = running.acquire_owned().await.map_err(closed)?;
            tokio::task::spawn_blocking(move || {
                // Held by the lookup, not by the request: given back when the lookup
                // ends, however long after the request gave up.
                let _permits = (permit, name_permit);
                lookup(&host)
            })
            .await
            .map_err(io::Error::other)?
            .map(Vec::into_iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tower_service::Service;

    use super::*;

    /// 50 requests for each of two names whose lookups never end in time (a DNS
    /// server that does not answer: 300 ms each, against a 10 ms deadline): only
    /// [`MAX_LOOKUPS_PER_NAME`] lookups of each name begin, though the process-wide
    /// bound (here 4) would let one name take it all, and the requests waiting for a
    /// turn hold no thread. A third name waits while the bound is full; once the
    /// lookups end, lookups run again.
    #[tokio::test]
    async fn lookups_past_the_bounds_wait_and_requests_give_up_without_a_thread() {
        let started = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (s, n, m) = (started.clone(), now.clone(), most.clone());
        let lookup: Lookup = Arc::new(move |host| {
            s.fetch_add(1, Ordering::SeqCst);
            let running = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(running, Ordering::SeqCst);
            if host.starts_with("slow") {
                std::thread::sleep(Duration::from_millis(300));
            }
            n.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], 0))])
        });
        let resolver = BoundedResolver::with(lookup, 4);
        let name = |host: &str| host.parse::<Name>().expect("a name");
        let mut requests = Vec::new();
        for host in ["slow-a.invalid", "slow-b.invalid"] {
            for _ in 0..50 {
                let call = resolver.clone().call(name(host));
                requests.push(tokio::spawn(tokio::time::timeout(
                    Duration::from_millis(10),
                    call,
                )));
            }
        }
        for request in requests {
            assert!(request.await.expect("task").is_err(), "past its deadline");
        }
        assert_eq!(
            started.load(Ordering::SeqCst),
            2 * MAX_LOOKUPS_PER_NAME,
            "only each name's bound of lookups began"
        );
        // The global bound: a third slow name waits while the first two run.
        let third = resolver.clone().call(name("slow-c.invalid"));
        assert!(
            tokio::time::timeout(Duration::from_millis(10), third)
                .await
                .is_err()
        );
        assert_eq!(started.load(Ordering::SeqCst), 4, "the bound of 4 is full");
        let addrs: Vec<SocketAddr> = resolver
            .clone()
            .call(name("fast.invalid"))
            .await
            .expect("resolved")
            .collect();
        assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 0))]);
        assert_eq!(most.load(Ordering::SeqCst), 4, "never more at once");
        assert_eq!(started.load(Ordering::SeqCst), 5);
    }

    /// The system resolver behind the default one answers for a name (`localhost`,
    /// from the hosts file).
    #[tokio::test]
    async fn the_default_resolves_through_the_system() {
        let mut resolver = BoundedResolver::default();
        let addrs: Vec<SocketAddr> = resolver
            .call("localhost".parse::<Name>().expect("a name"))
            .await
            .expect("resolved")
            .collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
