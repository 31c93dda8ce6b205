//! A cluster under test: one throwaway `redis-server` and N nodes of one server on it
//! with one adapter, started together for one step and stopped together after it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::peers::{Adapter, Launch, Server, tail};
use crate::redis::Redis;

/// The processes of a running cluster; dropping it kills them all (see [`Server`]).
#[derive(Debug)]
pub(crate) struct Cluster {
    /// The Redis every node talks to.
    redis: Redis,
    /// The nodes, in order (the first is the publishers' node), with their log files.
    nodes: Vec<(Server, PathBuf)>,
    /// Redis's log file.
    redis_log: PathBuf,
    /// The node a scenario kills on purpose (the recovery storm): its SIGKILL exit is
    /// not a crash.
    killed_on_purpose: Option<usize>,
}

impl Cluster {
    /// Starts Redis on `host`, then `count` nodes of `launch` with `adapter` on it (named
    /// `node-1` …, each on a free port of `host`, one after the other so each is in the
    /// cluster before the next starts), each with `threads` worker threads when given.
    /// Logs go to `<logs>-redis.log`, `<logs>-node-<i>.log`.
    pub(crate) async fn start(
        launch: &Launch,
        adapter: Adapter,
        count: usize,
        threads: Option<usize>,
        host: &str,
        logs: &Path,
    ) -> anyhow::Result<Cluster> {
        let log_of = |what: &str| {
            let mut name = logs.as_os_str().to_owned();
            name.push(format!("-{what}.log"));
            PathBuf::from(name)
        };
        let redis_log = log_of("redis");
        let redis = Redis::start(host, &redis_log)
            .await
            .context("redis-server did not start")?;
        let mut nodes = Vec::with_capacity(count);
        for i in 1..=count {
            let name = format!("node-{i}");
            let log = log_of(&name);
            let node = launch.clustered(adapter, &redis.url, &name, threads);
            let server = Server::start(&node, host, 0, &log)
                .await
                .with_context(|| format!("{name} of {count}"))?;
            nodes.push((server, log));
        }
        Ok(Cluster {
            redis,
            nodes,
            redis_log,
            killed_on_purpose: None,
        })
    }

    /// The nodes' addresses, in order.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|(s, _)| s.addr).collect()
    }

    /// Redis' address.
    pub(crate) fn redis_addr(&self) -> SocketAddr {
        self.redis.server.addr
    }

    /// Every process whose CPU counts: the nodes in order, then Redis.
    pub(crate) fn processes(&self) -> Vec<u32> {
        let nodes = self.nodes.iter().map(|(s, _)| s.pid);
        nodes.chain([self.redis.server.pid]).collect()
    }

    /// Says that the scenario SIGKILLs node `index` (0-based) itself: [`Cluster::exited`]
    /// then reports that node only if it exits otherwise.
    pub(crate) fn expect_kill(&mut self, index: usize) {
        self.killed_on_purpose = Some(index);
    }

    /// What exited so far (a node or Redis), with its status and the end of its log;
    /// `None` while everything runs.
    pub(crate) fn exited(&mut self) -> Option<String> {
        use std::os::unix::process::ExitStatusExt as _;
        let mut gone = Vec::new();
        for (i, (server, log)) in self.nodes.iter_mut().enumerate() {
            let killed = |status: &std::process::ExitStatus| {
                status.signal() == Some(nix::sys::signal::Signal::SIGKILL as i32)
            };
            let status = server.exited();
            let status = status.filter(|s| !(self.killed_on_purpose == Some(i) && killed(s)));
            if let Some(status) = status {
                gone.push(format!(
                    "node-{} exited ({status}); stderr: {}",
                    i + 1,
                    tail(log)
                ));
            }
        }
        if let Some(status) = self.redis.server.exited() {
            let log = tail(&self.redis_log);
            gone.push(format!("redis-server exited ({status}); log: {log}"));
        }
        (!gone.is_empty()).then(|| gone.join("; "))
    }

    /// Stops the nodes, then Redis.
    pub(crate) async fn stop(self) {
        let stops = self.nodes.into_iter().map(|(server, _)| server.stop());
        futures_util::future::join_all(stops).await;
        self.redis.server.stop().await;
    }
}
