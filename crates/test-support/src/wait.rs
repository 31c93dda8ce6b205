//! Waiting in tokio tests: on a condition ([`eventually`]), on a future ([`within`]),
//! or on a whole test whose failure would be a deadlock ([`without_hanging`]).

use std::future::Future;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

/// The longest any single wait may take before the test fails: far beyond what any
/// step needs on a loaded 2-core CI machine, short enough to report a hang. Only
/// reached when something is broken; never a measurement.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// How often [`eventually`] and [`crate::blocking::eventually`] re-check: soon after
/// the condition holds, yet rarely enough to leave the CPU to the code under test.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// The longest a whole test run by [`without_hanging`] may take: a few [`DEADLINE`]s.
const HANG_LIMIT: Duration = Duration::from_secs(120);

/// Waits until `check` returns true, re-checking every 20 ms; fails the test with
/// `what` after [`DEADLINE`].
///
/// The deadline is on the real clock and the pauses between checks on tokio's: under
/// a paused clock (`start_paused`) tokio's time jumps ahead while the test waits on
/// real IO, and a deadline on that clock would fire before anything could happen.
///
/// `check` is a closure returning a future (`|| async { .. }`) rather than an async
/// closure: the future of an `AsyncFnMut` cannot be shown to be `Send`, and a test run
/// by [`without_hanging`] must be.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_before(Instant::now() + DEADLINE, what, check).await;
}

/// [`eventually`] with its deadline given (its tests give one already past).
async fn eventually_before<F, Fut>(deadline: Instant, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {DEADLINE:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Runs `future` to completion; fails the test with `what` after [`DEADLINE`] on
/// tokio's clock (under a paused clock, that deadline passes whenever the runtime
/// idles: wrap only what tokio's timers drive, or use [`eventually`]).
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {DEADLINE:?} waiting for {what}"),
    }
}

/// Runs `test` on a runtime of its own (two worker threads, as the multi-threaded
/// tests use) on another thread, and fails the test if it has not finished within two
/// minutes. For tests whose failure would be a deadlock: one that blocks the
/// runtime's threads stops the timers of [`within`] and [`eventually`] too, and the
/// test would hang instead of failing.
pub fn without_hanging(test: impl Future<Output = ()> + Send + 'static) {
    run_without_hanging(HANG_LIMIT, test);
}

/// [`without_hanging`] with its limit given (its tests give a short one).
fn run_without_hanging(limit: Duration, test: impl Future<Output = ()> + Send + 'static) {
    let (finished, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        runtime.block_on(test);
        let _ = finished.send(());
    });
    match done.recv_timeout(limit) {
        Ok(()) => {}
        Err(RecvTimeoutError::Timeout) => panic!("the test hung for {limit:?} (a deadlock?)"),
        Err(RecvTimeoutError::Disconnected) => panic!("the test failed (its panic is above)"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn eventually_returns_once_the_condition_holds() {
        let checks = AtomicUsize::new(0);
        eventually("the third check", || async {
            checks.fetch_add(1, Ordering::SeqCst) == 2
        })
        .await;
        assert_eq!(checks.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waiting until it holds")]
    async fn eventually_fails_the_test_at_its_deadline() {
        eventually_before(Instant::now(), "it holds", || async { false }).await;
    }

    #[tokio::test(start_paused = true)]
    async fn within_returns_what_the_future_gives() {
        assert_eq!(within("an answer", async { 42 }).await, 42);
    }

    /// Under a paused clock the deadline passes at once: the failure path, instantly.
    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "waiting for an answer")]
    async fn within_fails_the_test_when_the_future_never_ends() {
        within("an answer", std::future::pending::<()>()).await;
    }

    #[test]
    fn without_hanging_runs_the_test_to_its_end() {
        let ran = Arc::new(AtomicUsize::new(0));
        let seen = ran.clone();
        without_hanging(async move {
            tokio::task::yield_now().await;
            seen.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(ran.load(Ordering::SeqCst), 1);
    }

    #[test]
    #[should_panic(expected = "the test failed")]
    fn without_hanging_reports_a_failed_test() {
        without_hanging(async { panic!("a failing test") });
    }

    /// A test that never ends is reported (its thread stays blocked until the test
    /// binary exits, as a deadlocked one would).
    #[test]
    #[should_panic(expected = "the test hung")]
    fn without_hanging_reports_a_hung_test() {
        run_without_hanging(Duration::ZERO, std::future::pending());
    }
}
