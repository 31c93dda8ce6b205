//! Versions of the toolchains and libraries measured, for the report, and the UTC
//! timestamp that names a run.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::peers::Paths;
use crate::prepare::run;
pub(crate) use crate::suite::Versions;

/// Collects versions; unknown ones are left empty.
pub(crate) async fn collect(paths: &Paths) -> Versions {
    let trim = |r: Result<String, String>| r.map(|s| s.trim().to_owned()).unwrap_or_default();
    let node_dir = paths.peer_dir("node");
    let socket_io = std::fs::read_to_string(node_dir.join("node_modules/socket.io/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v.get("version")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    Versions {
        rustc: trim(run(&paths.root, "rustc", &["--version"]).await),
        node: trim(run(&node_dir, "node", &["--version"]).await),
        socket_io,
        socketioxide: locked_version(
            &paths.peer_dir("socketioxide").join("Cargo.lock"),
            "socketioxide",
        ),
        switchboard: trim(run(&paths.root, "git", &["rev-parse", "--short", "HEAD"]).await),
        switchboard_binary: None,
        baseline_binary: None,
        baseline_rev: None,
    }
}

/// Version of package `name` in a Cargo.lock.
fn locked_version(lock: &std::path::Path, name: &str) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            let version = lines.next().unwrap_or_default();
            return version
                .trim_start_matches("version = ")
                .trim_matches('"')
                .to_owned();
        }
    }
    String::new()
}

/// Current UTC time as (`YYYYMMDD-HHMMSS`, `YYYY-MM-DD HH:MM:SS`).
pub(crate) fn utc_now() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    (
        format!("{y:04}{mo:02}{d:02}-{h:02}{m:02}{s:02}"),
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02} UTC"),
    )
}

/// Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_000), (2024, 10, 4));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
