//! Memory pressure: the node's resident memory against a budget, in tiers that act
//! before the kernel's OOM killer does, like a browser's pre-crash warnings.
//!
//! - **elevated** (≥ 70 % of the budget): a warning, a `pressure` step on every
//!   socket's timeline, the tier in the metrics (and, in the binary, a webhook);
//! - **critical** (≥ 85 %): new sessions are refused (503 with `Retry-After`),
//!   volatile packets are dropped, the outbound queue bounds and the recovery buffers'
//!   bounds are halved, and readiness turns not-ready;
//! - **imminent** (≥ 95 %): the connections holding the most queued bytes are closed
//!   (`server overloaded`, category `pressure`, recoverable) until the node is back
//!   under critical.
//!
//! A tier is left only once the share is [`HYSTERESIS`] below its threshold, so a node
//! hovering at a line does not flap. [`next_tier`] is the pure rule; [`Monitor`]
//! samples the process and applies it; the effects live where they act (the session's
//! queue, the handshake, the recovery buffer), reading the tier from [`Metrics`].
//!
//! [`Metrics`]: crate::Metrics

use std::time::Duration;

/// The tiers, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Tier {
    /// Under 70 % of the budget.
    #[default]
    Normal = 0,
    /// At or over 70 %.
    Elevated = 1,
    /// At or over 85 %.
    Critical = 2,
    /// At or over 95 %.
    Imminent = 3,
}

impl Tier {
    /// Every tier, in order.
    pub const ALL: [Tier; 4] = [Tier::Normal, Tier::Elevated, Tier::Critical, Tier::Imminent];

    /// `normal`, `elevated`, `critical`, `imminent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Normal => "normal",
            Tier::Elevated => "elevated",
            Tier::Critical => "critical",
            Tier::Imminent => "imminent",
        }
    }

    /// The tier stored as a number (out of range reads as imminent).
    pub fn from_u8(n: u8) -> Tier {
        match n {
            0 => Tier::Normal,
            1 => Tier::Elevated,
            2 => Tier::Critical,
            _ => Tier::Imminent,
        }
    }

    /// The share of the budget at which the tier begins.
    pub fn threshold(self) -> f64 {
        match self {
            Tier::Normal => 0.0,
            Tier::Elevated => 0.70,
            Tier::Critical => 0.85,
            Tier::Imminent => 0.95,
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far under its threshold the share must fall to leave a tier.
pub const HYSTERESIS: f64 = 0.05;

/// The tier for `used` bytes of `budget`, coming from `current`: up as soon as a
/// threshold is reached, down only once the share is [`HYSTERESIS`] below the
/// current tier's threshold (then as far down as the share says).
pub fn next_tier(current: Tier, used: u64, budget: u64) -> Tier {
    if budget == 0 {
        return Tier::Normal;
    }
    let share = used as f64 / budget as f64;
    let reached = Tier::ALL
        .into_iter()
        .rev()
        .find(|t| share >= t.threshold())
        .unwrap_or(Tier::Normal);
    if reached >= current {
        return reached;
    }
    if share < current.threshold() - HYSTERESIS {
        // Down to the tier whose band (with hysteresis) holds the share.
        Tier::ALL
            .into_iter()
            .rev()
            .find(|t| *t == Tier::Normal || share >= t.threshold() - HYSTERESIS)
            .unwrap_or(Tier::Normal)
            .min(current)
    } else {
        current
    }
}

/// A move from one tier to another, with the figures it was made on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The tier before.
    pub from: Tier,
    /// The tier now.
    pub to: Tier,
    /// Resident memory, in bytes.
    pub rss: u64,
    /// The budget, in bytes.
    pub budget: u64,
}

/// The memory budget and how often it is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressureConfig {
    /// Bytes of resident memory the process may use.
    pub budget: u64,
    /// How often resident memory is sampled.
    pub interval: Duration,
}

/// Sampled every second by default: growth between two samples must stay under the
/// 5 % between the imminent tier and the budget.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// The share of the machine's RAM the budget defaults to without a cgroup limit.
pub const DEFAULT_RAM_SHARE: f64 = 0.8;

/// The process' resident memory in bytes (`VmRSS` of `/proc/self/status`), `None`
/// where it cannot be read.
pub fn rss_bytes() -> Option<u64> {
    status_kib(
        &std::fs::read_to_string("/proc/self/status").ok()?,
        "VmRSS:",
    )
}

/// A `Name:  1234 kB` line of a `/proc` status file, in bytes.
fn status_kib(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// The default budget: the cgroup's memory limit when there is one (v2
/// `memory.max`, v1 `memory.limit_in_bytes`), else [`DEFAULT_RAM_SHARE`] of the RAM
/// (`/proc/meminfo`); `None` when neither can be read.
pub fn default_budget() -> Option<u64> {
    cgroup_limit().or_else(|| {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let total = status_kib(&meminfo, "MemTotal:")?;
        Some((total as f64 * DEFAULT_RAM_SHARE) as u64)
    })
}

/// The memory limit of this process' cgroup, if it has one.
pub fn cgroup_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for (path, v2) in cgroup_limit_files(&own) {
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Some(limit) = parse_limit(&text, v2)
        {
            return Some(limit);
        }
    }
    None
}

/// Where the limit of the cgroup described by `/proc/self/cgroup` text may be: its
/// own directory first, then the mount's root (a container sees its own cgroup as
/// the root). `true` for cgroup v2 files.
fn cgroup_limit_files(own: &str) -> Vec<(String, bool)> {
    let mut files = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if controllers.is_empty() {
            files.push((format!("/sys/fs/cgroup{path}/memory.max"), true));
        } else if controllers.split(',').any(|c| c == "memory") {
            files.push((
                format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"),
                false,
            ));
        }
    }
    files.push(("/sys/fs/cgroup/memory.max".to_owned(), true));
    files.push((
        "/sys/fs/cgroup/memory/memory.limit_in_bytes".to_owned(),
        false,
    ));
    files
}

/// A limit file's value: `max` (v2) or a number near `i64::MAX` (v1) is no limit.
fn parse_limit(text: &str, v2: bool) -> Option<u64> {
    let text = text.trim();
    if v2 && text == "max" {
        return None;
    }
    let n: u64 = text.parse().ok()?;
    // cgroup v1 writes "no limit" as the largest page-aligned i64.
    (n > 0 && n < (1 << 62)).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn tiers_go_up_at_their_thresholds_and_down_with_hysteresis() {
        let b = 100 * MIB;
        let at = |pct: u64| pct * MIB;
        assert_eq!(next_tier(Tier::Normal, at(69), b), Tier::Normal);
        assert_eq!(next_tier(Tier::Normal, at(70), b), Tier::Elevated);
        assert_eq!(next_tier(Tier::Elevated, at(85), b), Tier::Critical);
        assert_eq!(next_tier(Tier::Normal, at(96), b), Tier::Imminent);
        // Down only 5 points under the tier's line.
        assert_eq!(next_tier(Tier::Imminent, at(91), b), Tier::Imminent);
        assert_eq!(next_tier(Tier::Imminent, at(89), b), Tier::Critical);
        assert_eq!(next_tier(Tier::Critical, at(81), b), Tier::Critical);
        assert_eq!(next_tier(Tier::Critical, at(79), b), Tier::Elevated);
        assert_eq!(next_tier(Tier::Elevated, at(66), b), Tier::Elevated);
        assert_eq!(next_tier(Tier::Elevated, at(64), b), Tier::Normal);
        // A fall far below goes all the way down at once.
        assert_eq!(next_tier(Tier::Imminent, at(10), b), Tier::Normal);
        assert_eq!(next_tier(Tier::Imminent, at(70), b), Tier::Elevated);
        // No budget, no pressure.
        assert_eq!(next_tier(Tier::Critical, at(500), 0), Tier::Normal);
    }

    #[test]
    fn a_sequence_of_samples_moves_through_the_tiers_in_order() {
        let b = 100 * MIB;
        let mut tier = Tier::Normal;
        let mut seen = vec![tier];
        for pct in [50, 72, 80, 86, 90, 96, 97, 92, 88, 83, 78, 60, 40] {
            let next = next_tier(tier, pct * MIB, b);
            if next != tier {
                seen.push(next);
                tier = next;
            }
        }
        use Tier::*;
        assert_eq!(
            seen,
            [
                Normal, Elevated, Critical, Imminent, Critical, Elevated, Normal
            ]
        );
    }

    #[test]
    fn cgroup_limits_are_read_and_no_limit_is_none() {
        assert_eq!(parse_limit("max\n", true), None);
        assert_eq!(parse_limit("268435456\n", true), Some(256 * MIB));
        assert_eq!(parse_limit("9223372036854771712\n", false), None);
        assert_eq!(parse_limit("536870912", false), Some(512 * MIB));
        assert_eq!(parse_limit("garbage", false), None);
        let files = cgroup_limit_files("0::/kubepods/pod1\n4:memory:/docker/abc\n");
        assert_eq!(
            files[0],
            ("/sys/fs/cgroup/kubepods/pod1/memory.max".into(), true)
        );
        assert_eq!(
            files[1],
            (
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes".into(),
                false
            )
        );
        assert_eq!(
            status_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n", "MemTotal:"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(status_kib("VmRSS: x kB", "VmRSS:"), None);
    }

    #[test]
    fn this_process_has_a_resident_size_and_a_default_budget() {
        let rss = rss_bytes().unwrap_or(0);
        assert!(rss > 0);
        assert!(default_budget().unwrap_or(0) > rss);
    }
}
