//! The email channel: lettre over an ordered list of SMTP relays with failover.
//!
//! One envelope per recipient (a refused RCPT must not sink the others). The message is built
//! per attempt with the dispatcher's Message-ID, which is stable across retries, relays and
//! resumes, signed with DKIM when configured, and offered to the relays in order
//! ([`failover`]). Every relay keeps its own connection pool (size: the channel's
//! `concurrency`), rate limiter and circuit breaker (`crate::channel::failover::breaker`).
//!
//! # Failover and ambiguity policy
//!
//! The SMTP dialogue is driven one command at a time so each failure is classified by its stage
//! ([`classify`]):
//!
//! * Connection, DNS, TLS, certificate, timeout, or any 4xx/5xx at greeting, EHLO, STARTTLS,
//!   AUTH, MAIL or DATA, and relay-policy refusals at RCPT (530/535, "relay access denied"):
//!   the relay failed — try the next one. Nothing was handed over, so this is always safe.
//! * 5xx to RCPT (550 5.1.1 …): this recipient is refused — `failed`, one attempt, no failover
//!   (another relay would refuse it too). 4xx to RCPT: transient — the dispatcher retries with
//!   backoff, and the retry may go to any relay.
//! * After the final `.`: 250 is success; 4xx is a definite "not accepted" — next relay; 5xx
//!   refuses this message (size, content) — `failed`. **No reply (timeout, connection lost)
//!   is ambiguous**: the relay may have queued the message. It becomes `unknown` and is not
//!   retried nor offered to the next relay, because either could deliver it twice. `announce
//!   resume RUN --resend-unknown` re-sends it with the same Message-ID, so a recipient who gets
//!   both copies sees one thread entry and mail systems can de-duplicate.
//! * Every relay failed (or is paused by its breaker): transient, `route` = the last relay
//!   tried, retried by the dispatcher no sooner than a paused relay may be probed again.
//! * Every relay's latest failure says it cannot work as configured (certificate, STARTTLS or
//!   AUTH missing, 535, 530, a 5xx before RCPT, relaying denied; see `classify`): the channel
//!   halts at once, the rest stay `pending`. Backing off cannot help before the settings change.
//! * No relay has taken a message for `crate::channel::failover::GIVE_UP_AFTER` while every one keeps
//!   failing: the channel halts too, rather than back off for each delivery in turn.

mod body;
mod classify;
mod config;
pub mod dkim;
mod failover;
pub mod message;
mod pool;
mod relay;

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::extension::ClientId;

use crate::channel::{
    AddressKind, BuildContext, Channel, Delivery, DeliveryError, Meta, Probe, Reach, Receipt, Rendered,
};
use crate::settings::Common;

use crate::render::{Context, Templates};
pub use config::{
    DkimAlgorithm, DkimConfig, EmailConfig, HTML_TEMPLATE, HTML_TEMPLATE_DE, RelayConfig, SUBJECT_TEMPLATE,
    TEXT_TEMPLATE, TEXT_TEMPLATE_DE, TlsMode,
};

use failover::Failover;
use relay::Relay;

/// Default SMTP connections per relay (and deliveries in flight).
const DEFAULT_CONCURRENCY: u32 = 4;

pub struct Email {
    meta: Meta,
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_unsubscribe: Option<String>,
    html_template: String,
    css: crate::render::inline::CssCache,
    text: crate::render::skeleton::Skeletons,
    /// Right-hand side of Message-IDs.
    id_domain: String,
    dkim: Option<dkim::Signer>,
    /// The headers every message shares, encoded once (unsigned messages only).
    wire: message::Wire,
    relays: Failover,
    attempt_timeout: Duration,
}

impl Email {
    /// Build from the config. Errors (bad address, unreadable key or CA file, missing password
    /// variable) are config errors; the caller adds file and line.
    pub fn new(name: &str, common: &Common, cfg: &EmailConfig, ctx: &BuildContext) -> Result<Email, String> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| format!("[channels.{name}] from {:?} is not a valid address: {e}", cfg.from))?;
        let reply_to = match &cfg.reply_to {
            Some(r) => Some(
                r.parse()
                    .map_err(|e| format!("[channels.{name}] reply_to {r:?} is not a valid address: {e}"))?,
            ),
            None => None,
        };
        let id_domain = cfg
            .hello_name
            .clone()
            .unwrap_or_else(|| from.email.domain().to_string());
        let hello = ClientId::Domain(id_domain.clone());
        let concurrency = common.concurrency.map_or(DEFAULT_CONCURRENCY, |c| c.get()) as usize;

        let mut relays = Vec::new();
        let mut names = HashSet::new();
        for (i, r) in cfg.relays.iter().enumerate() {
            let relay = Relay::new(name, i + 1, r, &hello, concurrency, ctx)?;
            if !names.insert(relay.name.clone()) {
                return Err(format!(
                    "[channels.{name}] two relays are called {:?}; give them distinct `name`s (reports use them as route)",
                    relay.name
                ));
            }
            relays.push(relay);
        }
        let dkim = match &cfg.dkim {
            Some(d) => Some(
                dkim::signer(d, ctx, cfg.list_unsubscribe.as_deref()).map_err(|e| format!("[channels.{name}] {e}"))?,
            ),
            None => None,
        };

        // Longer than anything the relays can take together, so that the per-command timeouts
        // (which know the stage) fire first and the dispatcher's deadline is only a backstop.
        let attempt_timeout = relays.iter().map(Relay::worst_case).sum::<Duration>() + Duration::from_secs(30);
        if let Some(t) = common.timeout
            && t.0 < attempt_timeout
        {
            tracing::debug!(
                channel = name,
                "timeout {:?} is shorter than the relays may need ({attempt_timeout:?}); an attempt cut short \
                 after the message was sent is recorded as unknown",
                t.0
            );
        }
        let wire = message::Wire::new(&from, reply_to.as_ref(), cfg.list_unsubscribe.as_deref());
        Ok(Email {
            wire,
            meta: Meta::new::<EmailConfig>(name, Reach::PerPerson(AddressKind::Email)).concurrency(DEFAULT_CONCURRENCY),
            from,
            reply_to,
            list_unsubscribe: cfg.list_unsubscribe.clone(),
            html_template: common.template.clone().unwrap_or_else(|| "email.html.hbs".into()),
            css: Default::default(),
            text: Default::default(),
            id_domain,
            dkim,
            relays: Failover::new(relays),
            attempt_timeout,
        })
    }
}

#[async_trait]
impl Channel for Email {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        message::render(templates, ctx, &self.html_template, &self.css, &self.text)
    }

    async fn deliver(&self, d: &Delivery, m: &Rendered) -> Result<Receipt, DeliveryError> {
        let env = message::Envelope {
            from: &self.from,
            reply_to: self.reply_to.as_ref(),
            to_address: &d.address,
            to_name: &d.name,
            message_id: &d.message_id,
            thread_root: d.thread_root.as_deref(),
            list_unsubscribe: self.list_unsubscribe.as_deref(),
            date: SystemTime::now(),
        };
        let accepted = match &self.dkim {
            Some(dkim) => {
                let mut msg = message::build(&env, m).map_err(DeliveryError::permanent)?;
                // Last, after every header is final: a header changed after signing breaks it.
                msg.sign(&dkim.config);
                self.relays.send(msg.envelope(), &msg.formatted()).await?
            }
            None => {
                let (envelope, bytes) = self.wire.format(&env, m).map_err(DeliveryError::permanent)?;
                self.relays.send(&envelope, &bytes).await?
            }
        };
        let mut provider_id = format!("<{}>", d.message_id);
        if let Some(q) = classify::queue_id(&accepted.reply) {
            provider_id.push_str(&format!(" (queued as {q})"));
        }
        Ok(Receipt {
            provider_id: Some(provider_id),
            route: Some(accepted.relay),
        })
    }

    /// Per relay: connect, TLS, EHLO, AUTH, QUIT. Nothing is sent.
    async fn check(&self) -> Vec<Probe> {
        let mut probes = Vec::new();
        for relay in self.relays.relays() {
            let (ok, detail) = match relay.probe().await {
                Ok(d) => (true, d),
                Err(e) => (false, e),
            };
            probes.push(Probe {
                subject: format!("relay {}", relay.name),
                ok,
                detail,
            });
        }
        if let Some(d) = &self.dkim {
            probes.push(Probe {
                subject: "dkim".into(),
                ok: true,
                detail: d.summary.clone(),
            });
        }
        probes
    }

    fn message_id_domain(&self) -> String {
        self.id_domain.clone()
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        Some(self.attempt_timeout)
    }

    /// The dispatcher's deadline cut the attempt short at an unknown stage — possibly after the
    /// final "." — so the only safe reading is "may have been sent". With the default deadline
    /// this does not happen: the per-command timeouts fire first and know the stage.
    fn timeout_error(&self, after: Duration) -> DeliveryError {
        DeliveryError::Ambiguous {
            message: format!(
                "the attempt was stopped after {after:?} (the channel's `timeout`), possibly after a relay \
                 had the message; raise or remove `timeout` (`announce resume RUN --resend-unknown` re-sends it)"
            ),
            route: None,
        }
    }
}
