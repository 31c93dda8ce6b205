//! Memory and CPU of a process read from `/proc/<pid>/status` (VmRSS) and
//! `/proc/<pid>/stat` (utime + stime), plus a description of this machine.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::redis::{IoCount, io_count};
use crate::scenarios::Target;

/// Resident set size of `pid` in bytes.
pub(crate) fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS line")?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .context("empty VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

/// CPU time (user + system) used so far by `pid` (`None`: this process), in seconds.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> anyhow::Result<f64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(path)?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').context("bad stat")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).context("no utime")?.parse::<u64>()?
        + fields.get(12).context("no stime")?.parse::<u64>()?;
    Ok(ticks as f64 / clock_ticks())
}

/// Clock ticks per second of `/proc` CPU times.
fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// CPU time of the processes under test (a server, or a cluster's nodes and Redis) and of
/// this generator between two points of a phase.
#[derive(Debug, Clone)]
pub(crate) struct Usage {
    /// The processes measured, in the order [`Spent::each`] reports them.
    pids: Vec<u32>,
    /// Their CPU seconds at the start.
    start: Vec<f64>,
    /// Generator CPU seconds at the start.
    generator_cpu: f64,
    /// A cluster's Redis and its counters at the start.
    redis: Option<(std::net::SocketAddr, IoCount)>,
}

/// CPU seconds used since [`Usage::start`].
#[derive(Debug, Clone)]
pub(crate) struct Spent {
    /// Per process measured, in the order given to [`Usage::start`].
    pub(crate) each: Vec<f64>,
    /// By this generator.
    pub(crate) generator: f64,
    /// Commands a cluster's Redis took per read meanwhile (`None`: no Redis).
    pub(crate) redis_commands_per_read: Option<f64>,
}

impl Spent {
    /// All processes under test together.
    pub(crate) fn total(&self) -> f64 {
        self.each.iter().sum()
    }
}

impl Usage {
    /// Samples `pids` and this process now.
    pub(crate) fn start(pids: &[u32]) -> anyhow::Result<Usage> {
        Ok(Usage {
            pids: pids.to_vec(),
            start: pids
                .iter()
                .map(|&p| cpu_seconds(Some(p)))
                .collect::<anyhow::Result<_>>()?,
            generator_cpu: cpu_seconds(None)?,
            redis: None,
        })
    }

    /// Samples `target`'s processes, this process and, for a cluster, its Redis'
    /// counters ([`crate::redis::io_count`]) now.
    pub(crate) fn of(target: &Target) -> anyhow::Result<Usage> {
        let mut usage = Usage::start(&target.processes)?;
        if let Some(addr) = target.redis {
            let count = io_count(addr).context("redis' INFO stats at a phase's start")?;
            usage.redis = Some((addr, count));
        }
        Ok(usage)
    }

    /// CPU seconds used since `start`.
    pub(crate) fn since(&self) -> anyhow::Result<Spent> {
        let mut each = Vec::with_capacity(self.pids.len());
        for (&pid, start) in self.pids.iter().zip(&self.start) {
            each.push(cpu_seconds(Some(pid))? - start);
        }
        let redis_commands_per_read = match self.redis {
            Some((addr, start)) => {
                let now = io_count(addr).context("redis' INFO stats at a phase's end")?;
                start.per_read_until(now)
            }
            None => None,
        };
        Ok(Spent {
            each,
            generator: cpu_seconds(None)? - self.generator_cpu,
            redis_commands_per_read,
        })
    }
}

/// The most a process used over a stretch of time, sampled by [`sample_peaks`].
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct Peak {
    /// Highest CPU use over one sampling interval, in cores.
    pub(crate) peak_cores: f64,
    /// CPU seconds used over the whole stretch.
    pub(crate) cpu_seconds: f64,
    /// Highest RSS sampled, in bytes.
    pub(crate) peak_rss_bytes: u64,
}

/// Samples the CPU time and RSS of `pids` every `every` until `stop` says so (or its
/// sender is gone); the peak of each, in the order given. A process that has gone
/// keeps the peak it had.
pub(crate) async fn sample_peaks(
    pids: Vec<u32>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<Peak> {
    let mut peaks = vec![Peak::default(); pids.len()];
    let cpu = |pid| cpu_seconds(Some(pid)).ok();
    let first: Vec<Option<f64>> = pids.iter().map(|&p| cpu(p)).collect();
    let mut last = (std::time::Instant::now(), first.clone());
    // The first sample one interval in: an interval of ~0 s would turn one clock tick
    // into thousands of cores.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = stop.changed() => if changed.is_err() { break },
        }
        let now = std::time::Instant::now();
        let elapsed = now.duration_since(last.0).as_secs_f64();
        for (i, &pid) in pids.iter().enumerate() {
            let peak = &mut peaks[i];
            if let Ok(rss) = rss_bytes(pid) {
                peak.peak_rss_bytes = peak.peak_rss_bytes.max(rss);
            }
            let (Some(now_cpu), Some(before)) = (cpu(pid), last.1[i]) else {
                continue;
            };
            if elapsed > 0.0 {
                peak.peak_cores = peak.peak_cores.max((now_cpu - before) / elapsed);
            }
            if let Some(start) = first[i] {
                peak.cpu_seconds = now_cpu - start;
            }
            last.1[i] = Some(now_cpu);
        }
        last.0 = now;
    }
    peaks
}

/// The machine a run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// CPU model name.
    pub(crate) cpu: String,
    /// Cores available to processes.
    pub(crate) cores: usize,
    /// Total memory in GiB.
    pub(crate) memory_gib: f64,
    /// Kernel release.
    pub(crate) kernel: String,
    /// Soft limit on open files per process.
    pub(crate) open_files_limit: u64,
    /// Ephemeral port range of outgoing connections.
    pub(crate) port_range: String,
    /// `/proc/loadavg` when the run started (the machine is shared: other work shows here).
    pub(crate) load_at_start: String,
    /// `/proc/loadavg` when the run ended.
    pub(crate) load_at_end: String,
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    /// A two-core machine of 4 GiB for tests.
    #[cfg(test)]
    pub(crate) fn for_test() -> Machine {
        Machine {
            cpu: "test".to_owned(),
            cores: 2,
            memory_gib: 4.0,
            kernel: "test".to_owned(),
            open_files_limit: 20_000,
            port_range: "32768-60999".to_owned(),
            load_at_start: String::new(),
            load_at_end: String::new(),
        }
    }

    /// Describes this machine; `load_at_start` was sampled when the run began.
    pub(crate) fn describe(load_at_start: String) -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']))
            })
            .unwrap_or("unknown")
            .to_owned();
        let meminfo = read("/proc/meminfo");
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let open_files_limit =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(0, |(soft, _)| soft);
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: mem_kib / 1024.0 / 1024.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            open_files_limit,
            port_range: read("/proc/sys/net/ipv4/ip_local_port_range")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join("-"),
            load_at_start,
            load_at_end: load_average(),
        }
    }
}
