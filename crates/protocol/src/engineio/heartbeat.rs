//! The server-initiated heartbeat of Engine.IO v4 as a state machine over `Instant`s:
//! ping every `pingInterval`, give up when no pong arrives within `pingTimeout`.

use std::time::{Duration, Instant};

/// What the driver must do when the heartbeat deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatEvent {
    /// Send a ping packet now.
    SendPing,
    /// No pong arrived in time: close the session with reason "ping timeout".
    TimedOut {
        /// When the last pong (or the handshake) was seen, for the disconnect diagnosis.
        last_seen: Instant,
    },
}

/// Heartbeat state of one session.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    /// When the next ping is due, while no pong is awaited.
    next_ping: Option<Instant>,
    /// When the awaited pong is overdue.
    pong_deadline: Option<Instant>,
    last_seen: Instant,
}

impl Heartbeat {
    /// Starts the heartbeat at the handshake: the first ping is due one interval later.
    pub fn new(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Heartbeat {
            interval,
            timeout,
            next_ping: Some(now + interval),
            pong_deadline: None,
            last_seen: now,
        }
    }

    /// The next instant at which [`Heartbeat::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Instant {
        self.pong_deadline
            .or(self.next_ping)
            .unwrap_or(self.last_seen + self.interval)
    }

    /// Advances the state machine to `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<HeartbeatEvent> {
        if let Some(deadline) = self.pong_deadline {
            if now >= deadline {
                return Some(HeartbeatEvent::TimedOut {
                    last_seen: self.last_seen,
                });
            }
            return None;
        }
        match self.next_ping {
            Some(due) if now >= due => {
                self.next_ping = None;
                // From the scheduled time, not `now`: a late timer must not extend
                // the peer's allowance beyond pingInterval + pingTimeout.
                self.pong_deadline = Some(due + self.timeout);
                Some(HeartbeatEvent::SendPing)
            }
            _ => None,
        }
    }

    /// Whether the pong deadline has passed at `now` (whatever the timer says).
    pub fn is_overdue(&self, now: Instant) -> bool {
        self.pong_deadline.is_some_and(|d| now >= d)
            || self.next_ping.is_some_and(|due| now >= due + self.timeout)
    }

    /// Records a pong: the next ping is due one interval from now.
    pub fn on_pong(&mut self, now: Instant) {
        self.last_seen = now;
        if self.pong_deadline.take().is_some() {
            self.next_ping = Some(now + self.interval);
        }
    }

    /// When the peer last answered.
    pub fn last_seen(&self) -> Instant {
        self.last_seen
    }

    /// The ping interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How long a pong may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: Duration = Duration::from_millis(300);
    const T: Duration = Duration::from_millis(200);

    #[test]
    fn pings_then_times_out_without_pong() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        assert_eq!(hb.poll_timeout(), t0 + I);
        assert_eq!(hb.handle_timeout(t0 + I / 2), None);
        assert_eq!(hb.handle_timeout(t0 + I), Some(HeartbeatEvent::SendPing));
        assert_eq!(hb.poll_timeout(), t0 + I + T);
        assert_eq!(hb.handle_timeout(t0 + I + T / 2), None);
        assert_eq!(
            hb.handle_timeout(t0 + I + T),
            Some(HeartbeatEvent::TimedOut { last_seen: t0 })
        );
    }

    #[test]
    fn pong_reschedules_next_ping() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        assert_eq!(hb.handle_timeout(t0 + I), Some(HeartbeatEvent::SendPing));
        let pong_at = t0 + I + T / 2;
        hb.on_pong(pong_at);
        assert_eq!(hb.poll_timeout(), pong_at + I);
        assert_eq!(
            hb.handle_timeout(pong_at + I),
            Some(HeartbeatEvent::SendPing)
        );
        assert_eq!(hb.last_seen(), pong_at);
    }

    #[test]
    fn a_late_timer_does_not_extend_the_deadline() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        let late = t0 + I + Duration::from_millis(50);
        assert_eq!(hb.handle_timeout(late), Some(HeartbeatEvent::SendPing));
        assert_eq!(hb.poll_timeout(), t0 + I + T);
        assert!(!hb.is_overdue(t0 + I + T / 2));
        assert!(hb.is_overdue(t0 + I + T));
    }

    #[test]
    fn overdue_even_if_the_ping_timer_never_fired() {
        let t0 = Instant::now();
        let hb = Heartbeat::new(t0, I, T);
        assert!(!hb.is_overdue(t0 + I));
        assert!(hb.is_overdue(t0 + I + T));
    }

    #[test]
    fn unsolicited_pong_does_not_shift_the_schedule() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0, I, T);
        hb.on_pong(t0 + I / 2);
        assert_eq!(hb.poll_timeout(), t0 + I);
    }
}
