//! When to retry a lifecycle delivery and how long to wait: status classification,
//! exponential backoff with full jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, header};

/// What an attempt's outcome means for the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The backend has it.
    Delivered,
    /// Worth another attempt; `after` is the backend's `Retry-After`, if it gave one.
    Retry {
        /// The backend's requested wait.
        after: Option<Duration>,
    },
    /// The backend refused it for good; retrying would get the same answer.
    Reject,
}

/// Classifies a response: 2xx delivered; 408, 429 and 5xx retried (429 and 503 with
/// their `Retry-After`); everything else (other 4xx, and 1xx/3xx since redirects are
/// not followed) rejected. Network errors and timeouts never get here: they are
/// always retried.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Verdict {
    if status.is_success() {
        return Verdict::Delivered;
    }
    let honours_retry_after =
        status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE;
    if status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
    {
        let after = if honours_retry_after {
            headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, now))
        } else {
            None
        };
        return Verdict::Retry { after };
    }
    Verdict::Reject
}

/// Reads a `Retry-After` value: delay-seconds (`"120"`) or an HTTP-date
/// (`"Wed, 21 Oct 2015 07:28:00 GMT"`, a wait until then from `now`; a date in the
/// past is no wait). `None` when it is neither.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with full jitter: before retry `n` (1 for the first retry) wait
/// a uniformly random time in `[0, min(max, initial * multiplier^(n-1))]`. Full jitter
/// spreads the retries of many events that failed together (the backend went down),
/// so they do not return as a synchronized wave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) initial: Duration,
    pub(crate) max: Duration,
    pub(crate) multiplier: f64,
}

impl Backoff {
    /// The cap before retry `retry` (1-based), without jitter.
    pub(crate) fn cap(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let seconds = self.initial.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The jittered delay before retry `retry` (1-based).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        self.cap(retry).mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    fn with_retry_after(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(header::RETRY_AFTER, v);
        }
        h
    }

    #[test]
    fn classifies_statuses() {
        let now = SystemTime::now();
        let none = HeaderMap::new();
        let verdict = |code: u16, h: &HeaderMap| {
            classify(
                StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT),
                h,
                now,
            )
        };
        assert_eq!(verdict(200, &none), Verdict::Delivered);
        assert_eq!(verdict(204, &none), Verdict::Delivered);
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(
                verdict(code, &none),
                Verdict::Retry { after: None },
                "{code}"
            );
        }
        for code in [301, 400, 401, 403, 404, 410, 422] {
            assert_eq!(verdict(code, &none), Verdict::Reject, "{code}");
        }
        let seven = with_retry_after("7");
        let after = Some(Duration::from_secs(7));
        assert_eq!(verdict(429, &seven), Verdict::Retry { after });
        assert_eq!(verdict(503, &seven), Verdict::Retry { after });
        // Only 429 and 503 define Retry-After for this purpose.
        assert_eq!(verdict(500, &seven), Verdict::Retry { after: None });
    }

    #[test]
    fn reads_retry_after_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 07:27:50 GMT
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_jitters_below_it() {
        let b = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
        };
        let caps: Vec<u128> = (1..=8).map(|n| b.cap(n).as_millis()).collect();
        assert_eq!(caps, vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(b.cap(1_000), Duration::from_secs(30));
        for n in 1..=8 {
            assert!(b.delay(n) <= b.cap(n));
        }
    }
}
