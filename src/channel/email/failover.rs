//! The relays of a channel in config order, each behind a circuit breaker.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::response::Response;

use super::breaker::Breaker;
use super::classify::Failure;
use super::relay::Relay;
use crate::channel::DeliveryError;

/// How long a channel goes on when no relay takes a message and every one keeps failing
/// (transiently: refused connections, 421...) before it halts, the rest staying `pending`.
/// As long as the longest breaker pause, so a relay gets at least one probe after it.
pub const GIVE_UP_AFTER: Duration = super::breaker::MAX_PAUSE;

pub struct Failover {
    relays: Vec<Member>,
    /// Since when no relay has taken (or even answered for) a message.
    failing_since: Mutex<Option<Instant>>,
}

struct Member {
    relay: Relay,
    breaker: Breaker,
    /// Why the relay's latest failure says it refuses us as configured ([`Failure::Unusable`]).
    unusable: Mutex<Option<String>>,
}

impl Member {
    fn set_unusable(&self, reason: Option<String>) {
        *self.unusable.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }
}

/// A relay took the message.
pub struct Accepted {
    pub relay: String,
    pub reply: Response,
}

impl Failover {
    pub fn new(relays: Vec<Relay>) -> Failover {
        Failover {
            relays: relays
                .into_iter()
                .map(|relay| Member {
                    relay,
                    breaker: Breaker::default(),
                    unusable: Mutex::new(None),
                })
                .collect(),
            failing_since: Mutex::new(None),
        }
    }

    pub fn relays(&self) -> impl Iterator<Item = &Relay> {
        self.relays.iter().map(|m| &m.relay)
    }

    /// A relay answered as a working relay does.
    fn works(&self, member: &Member) {
        member.set_unusable(None);
        *self.failing_since.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Every relay failed (or was paused) at `now`: whether that has gone on since the last
    /// relay that worked for [`GIVE_UP_AFTER`].
    fn given_up(&self, now: Instant) -> bool {
        let mut since = self.failing_since.lock().unwrap_or_else(PoisonError::into_inner);
        now.saturating_duration_since(*since.get_or_insert(now)) >= GIVE_UP_AFTER
    }

    /// Offer the message to each relay in order until one takes it or refuses it for good.
    ///
    /// * relay-level failure → the next relay (and the breaker counts it);
    /// * recipient / message refused → that outcome (5xx permanent, 4xx transient: the
    ///   dispatcher retries later, on whichever relay is first then);
    /// * ambiguous (no reply after the final ".") → ambiguous: trying another relay now could
    ///   deliver the message twice;
    /// * every relay's latest failure says it refuses us as configured ([`Failure::Unusable`])
    ///   → halt: no message of the channel can go through before the settings change;
    /// * every relay failed or is paused → transient, routed to the last relay tried, and not
    ///   retried before the first paused relay may be probed again; after [`GIVE_UP_AFTER`]
    ///   without any relay taking a message, halt.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Accepted, DeliveryError> {
        let mut reasons = Vec::new();
        let mut last = None;
        for member in &self.relays {
            let (relay, breaker) = (&member.relay, &member.breaker);
            let Ok(ticket) = breaker.admit(Instant::now()) else {
                tracing::debug!(relay = %relay.name, "relay paused after repeated failures; skipping it");
                continue;
            };
            let (reason, unusable) = match relay.send(envelope, message).await {
                Ok(reply) => {
                    ticket.success();
                    self.works(member);
                    return Ok(Accepted {
                        relay: relay.name.clone(),
                        reply,
                    });
                }
                Err(Failure::Relay(reason)) => (reason, false),
                Err(Failure::Unusable(reason)) => (reason, true),
                Err(Failure::Refused { permanent, message }) => {
                    // The relay works; it said no to this recipient or this message.
                    ticket.success();
                    self.works(member);
                    let route = Some(relay.name.clone());
                    return Err(if permanent {
                        DeliveryError::Permanent { message, route }
                    } else {
                        DeliveryError::Transient {
                            message,
                            retry_after: None,
                            route,
                        }
                    });
                }
                Err(Failure::Ambiguous(reason)) => {
                    ticket.failure(Instant::now());
                    return Err(DeliveryError::Ambiguous {
                        message: format!(
                            "{}: {reason}; the relay may have accepted the message, so it is not \
                             re-sent automatically (`announce resume RUN --resend-unknown` re-sends it \
                             with the same Message-ID)",
                            relay.name
                        ),
                        route: Some(relay.name.clone()),
                    });
                }
            };
            // The relay could not take the message: the next one may.
            member.set_unusable(unusable.then(|| reason.clone()));
            if let Some(pause) = ticket.failure(Instant::now()) {
                tracing::warn!(
                    "relay {} ({}) failed repeatedly and is skipped for {pause:?}: {reason}",
                    relay.name,
                    relay.endpoint()
                );
            }
            tracing::info!(relay = %relay.name, "could not take the message: {reason}");
            reasons.push(format!("{}: {reason}", relay.name));
            last = Some(relay.name.clone());
        }
        if let Some(reasons) = self.all_unusable() {
            return Err(DeliveryError::Halt {
                message: format!(
                    "no relay of this channel can send as configured ({}); fix the settings",
                    reasons.join("; ")
                ),
            });
        }
        let now = Instant::now();
        if self.given_up(now) {
            return Err(DeliveryError::Halt {
                message: format!(
                    "no relay has taken a message for {} minutes ({}); resume the run when one works again",
                    GIVE_UP_AFTER.as_secs() / 60,
                    if reasons.is_empty() {
                        "every relay is paused after repeated failures".to_string()
                    } else {
                        reasons.join("; ")
                    }
                ),
            });
        }
        let retry_after = self.next_available(now);
        let message = if reasons.is_empty() {
            "every relay is paused after repeated failures; will try again when one may be probed".to_string()
        } else {
            format!("no relay took the message: {}", reasons.join("; "))
        };
        Err(DeliveryError::Transient {
            message,
            retry_after,
            route: last,
        })
    }

    /// "relay: reason" for every relay, when each one's latest failure was [`Failure::Unusable`].
    fn all_unusable(&self) -> Option<Vec<String>> {
        self.relays
            .iter()
            .map(|m| {
                let reason = m.unusable.lock().unwrap_or_else(PoisonError::into_inner);
                reason.as_ref().map(|r| format!("{}: {r}", m.relay.name))
            })
            .collect()
    }

    /// How long until some relay may be used again (`None` when one may be used now).
    fn next_available(&self, now: Instant) -> Option<Duration> {
        let mut soonest: Option<Instant> = None;
        for m in &self.relays {
            match m.breaker.available_at(now) {
                None => return None,
                Some(at) => soonest = Some(soonest.map_or(at, |s| s.min(at))),
            }
        }
        soonest.map(|at| at.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_after_a_stretch_without_any_relay_working() {
        let f = Failover::new(Vec::new());
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        assert!(!f.given_up(t0));
        assert!(!f.given_up(t0 + GIVE_UP_AFTER - min));
        assert!(f.given_up(t0 + GIVE_UP_AFTER));
        // A relay that works starts the count again.
        *f.failing_since.lock().unwrap() = None;
        assert!(!f.given_up(t0 + GIVE_UP_AFTER + min));
        assert!(f.given_up(t0 + GIVE_UP_AFTER * 2 + min));
    }
}
