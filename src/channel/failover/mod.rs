//! The routes of a channel (SMTP relays, SMS providers) tried in config order, each behind a
//! circuit breaker ([`breaker`]). One policy for every channel with alternates:
//!
//! * the route certainly did not take the message ([`Failure::Route`], [`Failure::Unusable`])
//!   → the next route, in the same attempt (and the breaker counts it);
//! * the route is busy ([`Failure::Busy`]: HTTP 429/5xx) → the dispatcher retries it later,
//!   until it has been tried `route_attempts` times for this delivery; then the next route
//!   takes over. A busy route that names its pause (`Retry-After`) is held until then and the
//!   next route takes over at once;
//! * the recipient or the message is refused ([`Failure::Refused`]) → that outcome: another
//!   route would refuse it too;
//! * ambiguous (the request went out, no answer) → `unknown`: trying another route could
//!   deliver the message twice.
//!
//! The channel never sleeps here: every wait is a `retry_after` for the dispatcher.

pub mod breaker;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use breaker::Breaker;

use crate::channel::DeliveryError;

/// How long a channel goes on when no route takes a message and every one keeps failing
/// before it halts, the rest staying `pending`. As long as the longest breaker pause, so a
/// route gets at least one probe after it.
pub const GIVE_UP_AFTER: Duration = breaker::MAX_PAUSE;

/// One way out of a channel.
pub trait Route: Send + Sync {
    /// The `route` of the journal and the report.
    fn name(&self) -> &str;
    /// Where it is, for log lines.
    fn endpoint(&self) -> String;
}

/// How one route handled one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing was handed over (connection, TLS, a refusal before the recipient): another
    /// route may take it.
    Route(String),
    /// Like `Route`, but the route refuses us as configured (credentials, account, sender):
    /// retrying it cannot help until the settings change.
    Unusable(String),
    /// Not taken for now (rate limited, server error); `retry_after` when the route said
    /// how long to leave it alone.
    Busy {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The route works and refused this recipient or this message; `permanent` or worth a
    /// retry later on whichever route is first then.
    Refused { permanent: bool, message: String },
    /// Like a permanent refusal, and the recipient asked for no more messages (SMS STOP): the
    /// dispatcher adds them to the suppression list.
    Unsubscribed(String),
    /// The request went out and no answer came: the route may have the message.
    Ambiguous(String),
}

/// What differs between the channels that use the failover.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// What a route is called in messages: "relay", "provider".
    pub noun: &'static str,
    /// Busy answers of one route for one delivery before the next route takes over.
    pub route_attempts: u32,
    /// With a single route: still pause it after repeated failures and halt after
    /// [`GIVE_UP_AFTER`]. When false, a single route's failures go to the dispatcher as they
    /// are (its backoff paces them; only a `Retry-After` holds the route).
    pub pause_sole_route: bool,
}

/// One attempt on one route, as the channel makes it.
pub type Attempt<'a, T> = Pin<Box<dyn Future<Output = Result<T, Failure>> + Send + 'a>>;

pub struct Failover<R> {
    routes: Vec<Member<R>>,
    policy: Policy,
    /// Since when no route has taken (or even answered for) a message.
    failing_since: Mutex<Option<Instant>>,
    /// Busy answers per route for each delivery still under way.
    tries: Mutex<HashMap<i64, Vec<u32>>>,
}

struct Member<R> {
    route: R,
    breaker: Breaker,
    /// Why the route's latest failure says it refuses us as configured ([`Failure::Unusable`]).
    unusable: Mutex<Option<String>>,
}

impl<R> Member<R> {
    fn set_unusable(&self, reason: Option<String>) {
        *self.unusable.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }
}

impl<R: Route> Failover<R> {
    pub fn new(routes: Vec<R>, policy: Policy) -> Failover<R> {
        Failover {
            routes: routes
                .into_iter()
                .map(|route| Member {
                    route,
                    breaker: Breaker::default(),
                    unusable: Mutex::new(None),
                })
                .collect(),
            policy,
            failing_since: Mutex::new(None),
            tries: Mutex::new(HashMap::new()),
        }
    }

    pub fn routes(&self) -> impl Iterator<Item = &R> {
        self.routes.iter().map(|m| &m.route)
    }

    /// A route answered as a working route does.
    fn works(&self, member: &Member<R>) {
        member.set_unusable(None);
        *self.failing_since.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Every route failed (or was paused) at `now`: whether that has gone on since the last
    /// route that worked for [`GIVE_UP_AFTER`].
    fn given_up(&self, now: Instant) -> bool {
        let mut since = self.failing_since.lock().unwrap_or_else(PoisonError::into_inner);
        now.saturating_duration_since(*since.get_or_insert(now)) >= GIVE_UP_AFTER
    }

    /// This delivery's busy answers per route; a new round once every route has had its share.
    fn tries_of(&self, delivery: Option<i64>) -> Vec<u32> {
        let n = self.routes.len();
        let Some(id) = delivery else { return vec![0; n] };
        let mut all = self.tries.lock().unwrap_or_else(PoisonError::into_inner);
        let tries = all.entry(id).or_insert_with(|| vec![0; n]);
        if tries.iter().all(|&t| t >= self.policy.route_attempts) {
            tries.fill(0);
        }
        tries.clone()
    }

    /// Count one busy answer; returns how many this delivery has had from that route.
    fn add_try(&self, delivery: Option<i64>, route: usize) -> u32 {
        let Some(id) = delivery else { return 1 };
        let mut all = self.tries.lock().unwrap_or_else(PoisonError::into_inner);
        let tries = all.entry(id).or_insert_with(|| vec![0; self.routes.len()]);
        tries[route] = tries[route].saturating_add(1);
        tries[route]
    }

    /// The delivery is settled: forget its tries.
    fn done(&self, delivery: Option<i64>) {
        if let Some(id) = delivery {
            self.tries.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
        }
    }

    /// Offer one message to each route in order until one takes it or refuses it for good
    /// (the policy is in the module docs). `delivery` identifies it across the dispatcher's
    /// attempts, for `route_attempts`. Returns the name of the route that took it.
    ///
    /// When every route failed or is paused: every route's latest failure says it refuses us
    /// as configured → halt; otherwise transient, routed to the last route tried, not retried
    /// before some route may be used again; after [`GIVE_UP_AFTER`] without any route
    /// taking a message, halt.
    pub async fn send<'a, T>(
        &'a self,
        delivery: Option<i64>,
        attempt: impl Fn(&'a R) -> Attempt<'a, T>,
    ) -> Result<(&'a str, T), DeliveryError> {
        let noun = self.policy.noun;
        let sole = self.routes.len() == 1 && !self.policy.pause_sole_route;
        let tries = self.tries_of(delivery);
        let mut reasons = Vec::new();
        let mut last = None;
        for (i, member) in self.routes.iter().enumerate() {
            let (route, breaker) = (&member.route, &member.breaker);
            let name = route.name();
            if tries[i] >= self.policy.route_attempts {
                continue;
            }
            let Ok(ticket) = breaker.admit(Instant::now()) else {
                tracing::debug!(route = name, "{noun} paused; skipping it");
                continue;
            };
            let reason = match attempt(route).await {
                Ok(value) => {
                    ticket.success();
                    self.works(member);
                    self.done(delivery);
                    return Ok((name, value));
                }
                Err(Failure::Refused { permanent, message }) => {
                    // The route works; it said no to this recipient or this message.
                    ticket.success();
                    self.works(member);
                    self.done(delivery);
                    let route = Some(name.to_string());
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
                Err(Failure::Unsubscribed(message)) => {
                    ticket.success();
                    self.works(member);
                    self.done(delivery);
                    return Err(DeliveryError::Unsubscribed {
                        message,
                        route: Some(name.to_string()),
                    });
                }
                Err(Failure::Ambiguous(message)) => {
                    if sole {
                        ticket.release();
                    } else {
                        ticket.failure(Instant::now());
                    }
                    self.done(delivery);
                    return Err(DeliveryError::Ambiguous {
                        message,
                        route: Some(name.to_string()),
                    });
                }
                Err(Failure::Busy { message, retry_after }) => {
                    let n = self.add_try(delivery, i);
                    member.set_unusable(None);
                    match retry_after {
                        Some(wait) => ticket.hold(Instant::now(), wait),
                        None if sole => ticket.release(),
                        None => self.failed(member, ticket, &message),
                    }
                    if sole || (retry_after.is_none() && n < self.policy.route_attempts) {
                        return Err(DeliveryError::Transient {
                            message,
                            retry_after,
                            route: Some(name.to_string()),
                        });
                    }
                    message
                }
                Err(Failure::Route(reason)) if sole => {
                    ticket.release();
                    return Err(DeliveryError::Transient {
                        message: reason,
                        retry_after: None,
                        route: Some(name.to_string()),
                    });
                }
                Err(Failure::Unusable(message)) if sole => {
                    ticket.release();
                    return Err(DeliveryError::Halt { message });
                }
                Err(Failure::Route(reason)) => {
                    member.set_unusable(None);
                    self.failed(member, ticket, &reason);
                    reason
                }
                Err(Failure::Unusable(reason)) => {
                    member.set_unusable(Some(reason.clone()));
                    self.failed(member, ticket, &reason);
                    reason
                }
            };
            // The route could not take the message: the next one may.
            tracing::info!(route = name, "could not take the message: {reason}");
            reasons.push(format!("{name}: {reason}"));
            last = Some(name.to_string());
        }
        if let Some(reasons) = self.all_unusable() {
            return Err(DeliveryError::Halt {
                message: format!(
                    "no {noun} of this channel can send as configured ({}); fix the settings",
                    reasons.join("; ")
                ),
            });
        }
        let now = Instant::now();
        if !sole && self.given_up(now) {
            return Err(DeliveryError::Halt {
                message: format!(
                    "no {noun} has taken a message for {} minutes ({}); resume the run when one works again",
                    GIVE_UP_AFTER.as_secs() / 60,
                    if reasons.is_empty() {
                        format!("every {noun} is paused after repeated failures")
                    } else {
                        reasons.join("; ")
                    }
                ),
            });
        }
        let retry_after = self.next_available(now);
        let message = if reasons.is_empty() {
            format!(
                "every {noun} is paused after repeated failures or at its request; will try again when one may be used"
            )
        } else {
            format!("no {noun} took the message: {}", reasons.join("; "))
        };
        Err(DeliveryError::Transient {
            message,
            retry_after,
            route: last,
        })
    }

    /// The breaker counts a failure of the route (and says so when that pauses it).
    fn failed(&self, member: &Member<R>, ticket: breaker::Ticket<'_>, reason: &str) {
        if let Some(pause) = ticket.failure(Instant::now()) {
            tracing::warn!(
                "{} {} ({}) failed repeatedly and is skipped for {pause:?}: {reason}",
                self.policy.noun,
                member.route.name(),
                member.route.endpoint()
            );
        }
    }

    /// "route: reason" for every route, when each one's latest failure was [`Failure::Unusable`].
    fn all_unusable(&self) -> Option<Vec<String>> {
        self.routes
            .iter()
            .map(|m| {
                let reason = m.unusable.lock().unwrap_or_else(PoisonError::into_inner);
                reason.as_ref().map(|r| format!("{}: {r}", m.route.name()))
            })
            .collect()
    }

    /// How long until some route may be used again (`None` when one may be used now).
    fn next_available(&self, now: Instant) -> Option<Duration> {
        let mut soonest: Option<Instant> = None;
        for m in &self.routes {
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
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A route that answers from a script (the last answer repeats) and counts its requests.
    struct Fake {
        name: &'static str,
        answers: Mutex<VecDeque<Result<(), Failure>>>,
        calls: AtomicUsize,
    }

    impl Fake {
        fn new(name: &'static str, answers: Vec<Result<(), Failure>>) -> Fake {
            Fake {
                name,
                answers: Mutex::new(answers.into()),
                calls: AtomicUsize::new(0),
            }
        }

        fn answer(&self) -> Result<(), Failure> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut a = self.answers.lock().unwrap();
            if a.len() > 1 {
                a.pop_front().unwrap()
            } else {
                a[0].clone()
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl Route for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn endpoint(&self) -> String {
            format!("fake://{}", self.name)
        }
    }

    const PROVIDERS: Policy = Policy {
        noun: "provider",
        route_attempts: 2,
        pause_sole_route: false,
    };

    fn busy(retry_after: Option<Duration>) -> Result<(), Failure> {
        Err(Failure::Busy {
            message: "503".into(),
            retry_after,
        })
    }

    async fn send(f: &Failover<Fake>, delivery: i64) -> Result<String, DeliveryError> {
        f.send(Some(delivery), |r| Box::pin(async move { r.answer() }))
            .await
            .map(|(name, ())| name.to_string())
    }

    fn two(first: Vec<Result<(), Failure>>) -> Failover<Fake> {
        Failover::new(vec![Fake::new("a", first), Fake::new("b", vec![Ok(())])], PROVIDERS)
    }

    #[test]
    fn gives_up_after_a_stretch_without_any_route_working() {
        let f = Failover::<Fake>::new(Vec::new(), PROVIDERS);
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        assert!(!f.given_up(t0));
        assert!(!f.given_up(t0 + GIVE_UP_AFTER - min));
        assert!(f.given_up(t0 + GIVE_UP_AFTER));
        // A route that works starts the count again.
        *f.failing_since.lock().unwrap() = None;
        assert!(!f.given_up(t0 + GIVE_UP_AFTER + min));
        assert!(f.given_up(t0 + GIVE_UP_AFTER * 2 + min));
    }

    #[tokio::test]
    async fn a_route_failure_moves_on_in_the_same_attempt_and_the_breaker_stops_the_requests() {
        let f = two(vec![Err(Failure::Route("connection refused".into()))]);
        for id in 0..10 {
            assert_eq!(send(&f, id).await.unwrap(), "b");
        }
        assert_eq!(f.routes[0].route.calls(), breaker::THRESHOLD as usize);
        assert_eq!(f.routes[1].route.calls(), 10);
    }

    #[tokio::test]
    async fn a_busy_route_is_retried_route_attempts_times_then_the_next_takes_over() {
        let f = Failover::new(
            vec![Fake::new("a", vec![busy(None)]), Fake::new("b", vec![Ok(())])],
            Policy {
                route_attempts: 3,
                ..PROVIDERS
            },
        );
        let first = send(&f, 1).await.unwrap_err();
        assert!(first.is_transient() && first.route() == Some("a"), "{first:?}");
        assert!(send(&f, 1).await.is_err());
        // The breaker opened after two failures: the third try goes to the next route.
        assert_eq!(send(&f, 1).await.unwrap(), "b");
        assert_eq!(f.routes[0].route.calls(), 2);
        // Another delivery skips the paused route.
        assert_eq!(send(&f, 2).await.unwrap(), "b");
        assert_eq!(f.routes[0].route.calls(), 2);
    }

    #[tokio::test]
    async fn route_attempts_count_per_delivery() {
        let f = Failover::new(
            vec![
                Fake::new("a", vec![busy(None), Ok(()), busy(None), busy(None)]),
                Fake::new("b", vec![Ok(())]),
            ],
            PROVIDERS,
        );
        assert!(send(&f, 1).await.is_err());
        // Delivery 2 went through on a (which also closed its breaker) ...
        assert_eq!(send(&f, 2).await.unwrap(), "a");
        // ... delivery 1's second busy answer from a hands it to b at once.
        assert_eq!(send(&f, 1).await.unwrap(), "b");
        assert_eq!(f.routes[0].route.calls(), 3);
        // Delivery 3 starts with a clean count: one busy answer, back to the dispatcher.
        assert_eq!(send(&f, 3).await.unwrap_err().route(), Some("a"));
    }

    #[tokio::test]
    async fn retry_after_holds_the_route_and_the_next_takes_over() {
        let f = two(vec![busy(Some(Duration::from_secs(30))), Ok(())]);
        assert_eq!(send(&f, 1).await.unwrap(), "b");
        assert_eq!(send(&f, 2).await.unwrap(), "b");
        assert_eq!(f.routes[0].route.calls(), 1);
        assert!(f.routes[0].breaker.available_at(Instant::now()).is_some());
    }

    #[tokio::test]
    async fn a_sole_route_passes_its_failures_to_the_dispatcher() {
        let f = Failover::new(
            vec![Fake::new(
                "a",
                vec![
                    busy(None),
                    busy(None),
                    busy(None),
                    Err(Failure::Route("refused".into())),
                    Err(Failure::Route("refused".into())),
                    Ok(()),
                ],
            )],
            PROVIDERS,
        );
        for _ in 0..5 {
            let e = send(&f, 1).await.unwrap_err();
            assert!(e.is_transient() && e.retry_after().is_none(), "{e:?}");
        }
        // No breaker pause in between: the dispatcher's backoff paces a sole route.
        assert_eq!(send(&f, 1).await.unwrap(), "a");
        assert_eq!(f.routes[0].route.calls(), 6);
        let halt = Failover::new(
            vec![Fake::new("a", vec![Err(Failure::Unusable("20003".into()))])],
            PROVIDERS,
        );
        assert!(matches!(send(&halt, 1).await, Err(DeliveryError::Halt { message }) if message == "20003"));
    }

    #[tokio::test]
    async fn a_sole_route_that_asks_for_a_pause_holds_every_delivery() {
        let f = Failover::new(
            vec![Fake::new("a", vec![busy(Some(Duration::from_secs(30))), Ok(())])],
            PROVIDERS,
        );
        let first = send(&f, 1).await.unwrap_err();
        assert_eq!(first.retry_after(), Some(Duration::from_secs(30)));
        let second = send(&f, 2).await.unwrap_err();
        assert!(second.is_transient());
        assert!(second.retry_after().unwrap() > Duration::from_secs(29));
        assert_eq!(f.routes[0].route.calls(), 1);
    }

    #[tokio::test]
    async fn recipient_refusals_and_ambiguity_never_fail_over() {
        let f = two(vec![
            Err(Failure::Refused {
                permanent: true,
                message: "21211".into(),
            }),
            Err(Failure::Ambiguous("no answer".into())),
        ]);
        let refused = send(&f, 1).await.unwrap_err();
        assert!(matches!(&refused, DeliveryError::Permanent { route: Some(r), .. } if r == "a"));
        let ambiguous = send(&f, 2).await.unwrap_err();
        assert!(matches!(&ambiguous, DeliveryError::Ambiguous { route: Some(r), .. } if r == "a"));
        assert_eq!(f.routes[1].route.calls(), 0);
    }

    #[tokio::test]
    async fn every_route_unusable_halts() {
        let f = Failover::new(
            vec![
                Fake::new("a", vec![Err(Failure::Unusable("401".into()))]),
                Fake::new("b", vec![Err(Failure::Unusable("no credit".into()))]),
            ],
            PROVIDERS,
        );
        let e = send(&f, 1).await.unwrap_err();
        assert!(
            matches!(&e, DeliveryError::Halt { message } if message.contains("a: 401") && message.contains("b: no credit")),
            "{e:?}"
        );
    }
}
