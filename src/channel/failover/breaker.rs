//! A circuit breaker per route (SMTP relay, SMS provider), so that a dead primary costs a few
//! requests per run instead of one (plus a timeout) per message.
//!
//! Closed: every delivery may use the route. After [`THRESHOLD`] consecutive relay-level
//! failures it opens for a pause (30 s, doubling up to 5 min while it keeps failing); deliveries
//! go straight to the next route. When the pause is over it is half-open: exactly one delivery
//! probes it; success closes it, failure opens it again. A success at any time resets the count.
//! A route that asks for a pause (`Retry-After`) is held until then without counting a failure.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Consecutive relay-level failures that open the breaker. Two, so that one dropped connection
/// does not move a whole run to the alternate, but a dead relay is left after the deliveries
/// that were already trying it in parallel.
pub const THRESHOLD: u32 = 2;
pub const FIRST_PAUSE: Duration = Duration::from_secs(30);
pub const MAX_PAUSE: Duration = Duration::from_secs(300);
/// How long others wait while one delivery probes a half-open route.
const PROBE_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Breaker {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    pause: Duration,
    probing: bool,
}

/// Permission to use the route once. Report the outcome with [`Ticket::success`] or
/// [`Ticket::failure`]; a probe dropped without an outcome (the attempt was cancelled) counts
/// as a failure, so the route is not left half-open with a probe that never returns.
#[derive(Debug)]
pub struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
    settled: bool,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: Mutex::new(State {
                failures: 0,
                open_until: None,
                pause: FIRST_PAUSE,
                probing: false,
            }),
        }
    }
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A ticket, or the instant from which it is worth asking again.
    pub fn admit(&self, now: Instant) -> Result<Ticket<'_>, Instant> {
        let mut s = self.lock();
        match s.open_until {
            None => Ok(Ticket {
                breaker: self,
                probe: false,
                settled: false,
            }),
            Some(until) if now < until => Err(until),
            Some(_) if s.probing => Err(now + PROBE_WAIT),
            Some(_) => {
                s.probing = true;
                Ok(Ticket {
                    breaker: self,
                    probe: true,
                    settled: false,
                })
            }
        }
    }

    /// When the route can be used again (`None`: now).
    pub fn available_at(&self, now: Instant) -> Option<Instant> {
        let s = self.lock();
        match s.open_until {
            Some(until) if now < until => Some(until),
            Some(_) if s.probing => Some(now + PROBE_WAIT),
            _ => None,
        }
    }

    fn succeeded(&self) {
        let mut s = self.lock();
        *s = State {
            failures: 0,
            open_until: None,
            pause: FIRST_PAUSE,
            probing: false,
        };
    }

    /// Hold the route until `now + wait` (its own request); neither a failure nor a success.
    fn hold(&self, probe: bool, now: Instant, wait: Duration) {
        let mut s = self.lock();
        if probe {
            s.probing = false;
        }
        let until = now + wait;
        if s.open_until.is_none_or(|u| u < until) {
            s.open_until = Some(until);
        }
    }

    /// Returns the pause when this failure opened (or re-opened) the breaker.
    fn failed(&self, probe: bool, now: Instant) -> Option<Duration> {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        if probe {
            s.probing = false;
            s.pause = (s.pause * 2).min(MAX_PAUSE);
            s.open_until = Some(now + s.pause);
            return Some(s.pause);
        }
        if s.open_until.is_none() && s.failures >= THRESHOLD {
            s.open_until = Some(now + s.pause);
            return Some(s.pause);
        }
        None
    }
}

impl Ticket<'_> {
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.succeeded();
    }

    /// Returns the pause when this failure opened the breaker (worth a warning).
    pub fn failure(mut self, now: Instant) -> Option<Duration> {
        self.settled = true;
        self.breaker.failed(self.probe, now)
    }

    /// The route asked to be left alone for `wait` (HTTP 429 with `Retry-After`).
    pub fn hold(mut self, now: Instant, wait: Duration) {
        self.settled = true;
        self.breaker.hold(self.probe, now, wait);
    }

    /// An outcome that says nothing about the route's health (it is the only one, and the
    /// caller's retries pace it): a probe leaves the breaker half-open for the next one.
    pub fn release(mut self) {
        self.settled = true;
        if self.probe {
            self.breaker.lock().probing = false;
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.breaker.failed(true, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_once() {
        let b = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(b.admit(t0).unwrap().failure(t0), None);
        assert_eq!(b.admit(t0).unwrap().failure(t0), Some(FIRST_PAUSE));
        // Open: refused until the pause is over.
        assert_eq!(b.admit(t0 + Duration::from_secs(1)).unwrap_err(), t0 + FIRST_PAUSE);
        // Half-open: one probe, the others wait.
        let later = t0 + FIRST_PAUSE + Duration::from_millis(1);
        let probe = b.admit(later).unwrap();
        assert!(b.admit(later).is_err());
        // A failed probe re-opens for longer.
        assert_eq!(probe.failure(later), Some(FIRST_PAUSE * 2));
        let much_later = later + FIRST_PAUSE * 2 + Duration::from_millis(1);
        b.admit(much_later).unwrap().success();
        assert!(b.admit(much_later).is_ok());
        assert_eq!(b.available_at(much_later), None);
    }

    #[test]
    fn success_resets_the_count() {
        let b = Breaker::default();
        let t = Instant::now();
        b.admit(t).unwrap().failure(t);
        b.admit(t).unwrap().success();
        assert_eq!(b.admit(t).unwrap().failure(t), None);
    }

    #[test]
    fn abandoned_probe_counts_as_failure() {
        let b = Breaker::default();
        let t = Instant::now();
        b.admit(t).unwrap().failure(t);
        b.admit(t).unwrap().failure(t);
        let later = t + FIRST_PAUSE + Duration::from_millis(1);
        drop(b.admit(later).unwrap());
        assert!(b.admit(later).is_err(), "an abandoned probe must re-open the breaker");
    }

    #[test]
    fn a_hold_pauses_without_counting_a_failure() {
        let b = Breaker::default();
        let t = Instant::now();
        b.admit(t).unwrap().failure(t);
        b.admit(t).unwrap().hold(t, Duration::from_secs(7));
        // Counted as a second failure, the hold would have opened it for FIRST_PAUSE.
        assert_eq!(b.available_at(t), Some(t + Duration::from_secs(7)));
        let later = t + Duration::from_secs(8);
        let probe = b.admit(later).unwrap();
        assert!(b.admit(later).is_err());
        probe.success();
        assert_eq!(b.admit(later).unwrap().failure(later), None);
    }

    #[test]
    fn a_released_probe_lets_the_next_delivery_probe() {
        let b = Breaker::default();
        let t = Instant::now();
        b.admit(t).unwrap().hold(t, Duration::from_secs(1));
        let later = t + Duration::from_secs(2);
        b.admit(later).unwrap().release();
        assert!(b.admit(later).is_ok());
    }
}
