//! The relays of a channel in config order, each behind a circuit breaker: the shared
//! [`crate::channel::failover`] core with SMTP's classification ([`super::classify`]).

use lettre::address::Envelope;
use lettre::transport::smtp::response::Response;

use super::classify::Failure;
use super::relay::Relay;
use crate::channel::DeliveryError;
use crate::channel::failover::{self, Policy, Route};

const POLICY: Policy = Policy {
    noun: "relay",
    // SMTP has no "busy" answer that the relays' classification keeps for a retry on the same relay.
    route_attempts: 1,
    pause_sole_route: true,
};

pub struct Failover(failover::Failover<Relay>);

/// A relay took the message.
pub struct Accepted {
    pub relay: String,
    pub reply: Response,
}

impl Route for Relay {
    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> String {
        Relay::endpoint(self)
    }
}

impl Failover {
    pub fn new(relays: Vec<Relay>) -> Failover {
        Failover(failover::Failover::new(relays, POLICY))
    }

    pub fn relays(&self) -> impl Iterator<Item = &Relay> {
        self.0.routes()
    }

    /// Offer the message to each relay in order (see the `email` module docs for the policy).
    /// Every relay's latest failure saying it refuses us as configured ([`Failure::Unusable`])
    /// halts the channel: no message can go through before the settings change.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Accepted, DeliveryError> {
        let (relay, reply) = self
            .0
            .send(None, |relay| {
                Box::pin(async move {
                    relay.send(envelope, message).await.map_err(|f| match f {
                        Failure::Relay(reason) => failover::Failure::Route(reason),
                        Failure::Unusable(reason) => failover::Failure::Unusable(reason),
                        Failure::Refused { permanent, message } => failover::Failure::Refused { permanent, message },
                        Failure::Ambiguous(reason) => failover::Failure::Ambiguous(format!(
                            "{}: {reason}; the relay may have accepted the message, so it is not re-sent \
                             automatically (`announce resume RUN --resend-unknown` re-sends it with the same \
                             Message-ID)",
                            relay.name
                        )),
                    })
                })
            })
            .await?;
        Ok(Accepted {
            relay: relay.to_string(),
            reply,
        })
    }
}
