//! The relays of a channel in config order, each behind a circuit breaker.

use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::response::Response;

use super::breaker::Breaker;
use super::classify::Failure;
use super::relay::Relay;
use crate::channel::DeliveryError;

pub struct Failover {
    relays: Vec<(Relay, Breaker)>,
}

/// A relay took the message.
pub struct Accepted {
    pub relay: String,
    pub reply: Response,
}

impl Failover {
    pub fn new(relays: Vec<Relay>) -> Failover {
        Failover {
            relays: relays.into_iter().map(|r| (r, Breaker::default())).collect(),
        }
    }

    pub fn relays(&self) -> impl Iterator<Item = &Relay> {
        self.relays.iter().map(|(r, _)| r)
    }

    /// Offer the message to each relay in order until one takes it or refuses it for good.
    ///
    /// * relay-level failure → the next relay (and the breaker counts it);
    /// * recipient / message refused → that outcome (5xx permanent, 4xx transient: the
    ///   dispatcher retries later, on whichever relay is first then);
    /// * ambiguous (no reply after the final ".") → ambiguous: trying another relay now could
    ///   deliver the message twice;
    /// * every relay failed or is paused → transient, routed to the last relay tried, and not
    ///   retried before the first paused relay may be probed again.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Accepted, DeliveryError> {
        let mut reasons = Vec::new();
        let mut last = None;
        for (relay, breaker) in &self.relays {
            let Ok(ticket) = breaker.admit(Instant::now()) else {
                tracing::debug!(relay = %relay.name, "relay paused after repeated failures; skipping it");
                continue;
            };
            match relay.send(envelope, message).await {
                Ok(reply) => {
                    ticket.success();
                    return Ok(Accepted {
                        relay: relay.name.clone(),
                        reply,
                    });
                }
                Err(Failure::Relay(reason)) => {
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
                Err(Failure::Refused { permanent, message }) => {
                    // The relay works; it said no to this recipient or this message.
                    ticket.success();
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
            }
        }
        let now = Instant::now();
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

    /// How long until some relay may be used again (`None` when one may be used now).
    fn next_available(&self, now: Instant) -> Option<Duration> {
        let mut soonest: Option<Instant> = None;
        for (_, breaker) in &self.relays {
            match breaker.available_at(now) {
                None => return None,
                Some(at) => soonest = Some(soonest.map_or(at, |s| s.min(at))),
            }
        }
        soonest.map(|at| at.saturating_duration_since(now))
    }
}
