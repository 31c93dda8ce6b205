//! A token bucket shared by one node: at most `rate` takes a second, in bursts of up
//! to `burst`. What the engine and its users bound per node with it: the refusals
//! reported ([`crate::diagnosis::Reports`]), the Admin UI's password checks.

use std::sync::Mutex;
use std::time::Instant;

/// Tokens refill at `rate` a second up to `burst`; a take spends one.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Tokens left and when they were last counted.
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            rate,
            burst,
            state: Mutex::new((burst, now)),
        }
    }

    /// Takes a token at `now` if there is one; says whether it did. An instant
    /// earlier than the last one (a caller that read the clock before it awaited
    /// something) refills nothing and leaves the last one where it was: were the bucket
    /// to go back to it, the next take would refill the same time twice.
    pub fn take(&self, now: Instant) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        take(&mut state, (self.rate, self.burst), now).is_ok()
    }
}

/// The arithmetic of a token bucket kept by its caller: takes a token of `bucket`
/// (tokens left, when last counted), refilled at `rate` a second up to `burst`, at
/// `now`; or says how long until it has one. An instant before the last refills
/// nothing and leaves the last where it was.
pub(crate) fn take(
    bucket: &mut (f64, Instant),
    (rate, burst): (f64, f64),
    now: Instant,
) -> Result<(), std::time::Duration> {
    let (tokens, last) = bucket;
    let elapsed = now.saturating_duration_since(*last).as_secs_f64();
    let refilled = (*tokens + elapsed * rate).min(burst);
    *last = (*last).max(now);
    if refilled >= 1.0 {
        *tokens = refilled - 1.0;
        return Ok(());
    }
    *tokens = refilled;
    Err(std::time::Duration::from_secs_f64((1.0 - refilled) / rate))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let bucket = TokenBucket::new(5.0, 10.0, t0);
        assert_eq!((0..100).filter(|_| bucket.take(t0)).count(), 10);
        let later = t0 + Duration::from_secs(1);
        assert_eq!((0..100).filter(|_| bucket.take(later)).count(), 5);
        // An instant earlier than the last one refills nothing...
        assert!(!bucket.take(t0));
        // ...and does not turn the clock back: the time since it is not refilled again.
        assert!(!bucket.take(later), "refilled twice");
        let more = later + Duration::from_millis(200);
        assert_eq!((0..100).filter(|_| bucket.take(more)).count(), 1);
    }
}
