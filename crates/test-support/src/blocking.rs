//! Waiting in tests without a runtime: [`eventually`] polls a condition from the test's
//! own thread, for at most [`DEADLINE`], and gives up with an error the test returns.

use std::time::Instant;

use crate::wait::{DEADLINE, POLL};

/// Polls `check` every 20 ms until it returns `Some`, and returns that value.
///
/// An error from `check` ends the wait at once and is returned; after [`DEADLINE`]
/// the wait ends with an error saying what it was for.
pub fn eventually<T>(
    what: &str,
    check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    eventually_before(Instant::now() + DEADLINE, what, check)
}

/// [`eventually`] with its deadline given (its tests give one already past).
fn eventually_before<T>(
    deadline: Instant,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {DEADLINE:?} waiting for {what}");
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_value_comes_back_once_the_check_gives_one() -> anyhow::Result<()> {
        let mut checks = 0;
        let value = eventually("the third check", || {
            checks += 1;
            Ok((checks == 3).then_some("third"))
        })?;
        assert_eq!((value, checks), ("third", 3));
        Ok(())
    }

    #[test]
    fn an_error_of_the_check_ends_the_wait_at_once() {
        let mut checks = 0;
        let value: anyhow::Result<()> = eventually("a broken check", || {
            checks += 1;
            anyhow::bail!("broken")
        });
        assert_eq!(value.map_err(|e| e.to_string()), Err("broken".to_owned()));
        assert_eq!(checks, 1);
    }

    #[test]
    fn the_deadline_ends_the_wait_with_what_was_awaited() {
        let value: anyhow::Result<()> = eventually_before(Instant::now(), "the moon", || Ok(None));
        assert_eq!(
            value.map_err(|e| e.to_string()),
            Err("timed out after 30s waiting for the moon".to_owned())
        );
    }
}
