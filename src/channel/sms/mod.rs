//! The `sms` channel: one text per mobile number through an HTTP SMS gateway — Twilio, Vonage
//! (SMS API), seven.io, or a generic gateway described in the config.
//!
//! * The text is the `sms.txt.hbs` template (or the channel's `template`), tidied, optionally
//!   normalised to GSM-7 (`normalize`), then measured with [`crate::render::sms`]: encoding,
//!   characters, segments. A text longer than `max_segments` is refused while planning (every
//!   recipient is rendered: `validate_every_target`), so nothing is sent.
//! * With `rate_unit = "segment"` a message weighs its segment count in the rate limiter.
//! * Numbers that are valid but not mobile (fixed line, toll free, ...) are skipped.
//! * Each gateway classifies its own errors (`twilio.rs`, `vonage.rs`, `seven.rs`,
//!   `generic.rs`). The providers are tried in order through the shared failover core
//!   ([`crate::channel::failover`], as email relays are): no connection, 401/403 and account
//!   errors → the next provider at once; 429/5xx → the dispatcher retries, and after
//!   `provider_attempts` of them the next provider takes over; a `Retry-After` holds that
//!   provider until then; when no provider is left, the error's `Retry-After` reaches the
//!   dispatcher, which pauses the whole lane (`retry_after_pauses_channel`): a gateway's 429
//!   throttles the account, not one recipient. Recipient errors
//!   are final, ambiguous ones `unknown`; neither fails over.
//! * Gateways have no idempotency key, so a request that got no answer is `unknown`, never
//!   re-sent automatically.

mod config;
mod generic;
mod seven;
mod twilio;
mod vonage;

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use governor::DefaultDirectRateLimiter;

use crate::channel::failover::{self, Failover, Policy, Route};
use crate::channel::{
    AddressKind, BuildContext, Channel, Delivery, DeliveryError, Meta, Probe, Reach, Receipt, Refreshed, Rendered, Stat,
};
use crate::render::sms::{self, Encoding, SmsInfo};
use crate::render::{Context, Templates};
use crate::settings::Common;

pub use config::{Provider, ProviderConfig, RateUnit, SmsConfig, TEXT_TEMPLATE};
/// The Twilio account, which the voice channel's calls share.
pub(crate) use twilio::{Account as TwilioAccount, error_text as twilio_error_text};

/// `max_segments` when the config does not say (Twilio's advice is to stay under 10).
pub const DEFAULT_MAX_SEGMENTS: u32 = 10;
/// The whole-attempt deadline the dispatcher uses when `timeout` is not configured.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// Upper bound of one HTTP request (it is also kept below the attempt deadline).
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// `provider_attempts` when the config does not say.
pub const DEFAULT_PROVIDER_ATTEMPTS: u32 = 2;

/// One message on its way to a gateway.
pub(crate) struct Outgoing<'a> {
    /// E.164, with the leading `+`.
    pub to: &'a str,
    pub text: &'a str,
    pub info: &'a SmsInfo,
    pub delivery: &'a Delivery,
}

/// One SMS provider's API.
#[async_trait]
pub(crate) trait Gateway: Send + Sync {
    /// "twilio", "vonage", ...: the `route` of the report and the prefix of error messages.
    fn provider(&self) -> &'static str;
    async fn send(&self, m: &Outgoing<'_>) -> Result<Receipt, DeliveryError>;
    /// A live check of the account without sending.
    async fn check(&self) -> Probe;
    fn can_refresh(&self) -> bool {
        false
    }
    async fn refresh(&self, _provider_id: &str) -> Result<Refreshed, String> {
        Err(format!(
            "{} has no status API here; it reports deliveries by webhook",
            self.provider()
        ))
    }
    /// A limit of the API on the text length in characters.
    fn max_chars(&self) -> Option<usize> {
        None
    }
}

/// One provider of the channel: its API, its own rate limit and price.
struct Member {
    name: String,
    gateway: Box<dyn Gateway>,
    /// Where it is (for log lines): its `base_url`, or the provider's API.
    endpoint: String,
    limiter: Option<DefaultDirectRateLimiter>,
    price: Option<f64>,
}

impl Route for Member {
    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> String {
        self.endpoint.clone()
    }
}

impl Member {
    async fn send(&self, m: &Outgoing<'_>) -> Result<Receipt, failover::Failure> {
        // The same mechanism as a relay's `rate`: wait for this provider's own cell.
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        self.gateway.send(m).await.map_err(|e| match e {
            // `failure`: the request never reached the gateway.
            DeliveryError::Transient {
                message, route: None, ..
            } => failover::Failure::Route(message),
            DeliveryError::Transient {
                message, retry_after, ..
            } => failover::Failure::Busy { message, retry_after },
            DeliveryError::Permanent { message, .. } => failover::Failure::Refused {
                permanent: true,
                message,
            },
            DeliveryError::Unsubscribed { message, .. } => failover::Failure::Unsubscribed(message),
            DeliveryError::Ambiguous { message, .. } => failover::Failure::Ambiguous(message),
            DeliveryError::Halt { message } => failover::Failure::Unusable(message),
        })
    }
}

pub struct Sms {
    meta: Meta,
    providers: Failover<Member>,
    template: String,
    normalize: bool,
    max_segments: u32,
    currency: Option<String>,
    weigh_segments: bool,
    /// Rendering once per shape of recipient data (planning renders every recipient's text).
    skeletons: crate::render::skeleton::Skeletons,
}

impl Sms {
    pub fn new(name: &str, common: &Common, cfg: &SmsConfig, _ctx: &BuildContext) -> Result<Sms, String> {
        let attempt = common.timeout.map_or(DEFAULT_ATTEMPT_TIMEOUT, |d| d.0);
        // Our own request timeout fires first, so a slow gateway is classified here (unknown)
        // rather than by the dispatcher's deadline.
        let client = crate::channel::http::client(HTTP_TIMEOUT.min(attempt.mul_f64(0.8)))?;
        let gateways = cfg.gateways();
        let mut members: Vec<Member> = Vec::new();
        for (i, p) in gateways.iter().enumerate() {
            let at = if cfg.providers.is_empty() {
                format!("[channels.{name}]")
            } else {
                format!("[channels.{name}] provider {} (#{})", p.name(), i + 1)
            };
            if members.iter().any(|m| m.name == p.name()) {
                return Err(format!(
                    "{at}: two providers are called {:?}; give them distinct `name`s (reports use them as route)",
                    p.name()
                ));
            }
            members.push(member(&at, p, client.clone())?);
        }
        let at = format!("[channels.{name}]");
        let max_segments = cfg.max_segments.unwrap_or(DEFAULT_MAX_SEGMENTS);
        if max_segments == 0 {
            return Err(format!("{at} max_segments must be at least 1"));
        }
        if let Some(p) = gateways
            .iter()
            .find_map(|g| g.price_per_segment.or(cfg.price_per_segment))
            && !(p.is_finite() && p >= 0.0)
        {
            return Err(format!("{at} price_per_segment must be a number >= 0"));
        }
        let weigh_segments = cfg.rate_unit == RateUnit::Segment;
        if weigh_segments && let Some(rate) = common.rate {
            // The limiter refuses a message that costs more cells than the burst holds.
            let burst = common.burst.map_or(1, |b| b.get());
            if burst < max_segments {
                return Err(format!(
                    "{at} rate_unit = \"segment\" weighs a message by its segments, so burst ({burst}) must be at \
                     least max_segments ({max_segments}); e.g. rate = \"{rate}\", burst = {max_segments}"
                ));
            }
        }
        Ok(Sms {
            // Gateways throttle hard; the rate limit does the pacing.
            meta: Meta::new::<SmsConfig>(name, Reach::PerPerson(AddressKind::Phone)).concurrency(2),
            providers: Failover::new(
                members,
                Policy {
                    noun: "provider",
                    route_attempts: cfg.provider_attempts.unwrap_or(DEFAULT_PROVIDER_ATTEMPTS),
                    pause_sole_route: false,
                },
            ),
            template: common.template.clone().unwrap_or_else(|| "sms.txt.hbs".into()),
            normalize: cfg.normalize,
            max_segments,
            currency: cfg.currency.as_deref().map(str::to_string),
            weigh_segments,
            skeletons: Default::default(),
        })
    }

    /// The one provider of the one-provider form (its name and route stay what they were).
    fn sole(&self) -> Option<&Member> {
        let mut all = self.providers.routes();
        all.next().filter(|_| all.next().is_none())
    }

    fn money(&self, amount: f64) -> String {
        money(amount, self.currency.as_deref())
    }
}

/// One provider, from its keys (the table's own in the one-provider form).
fn member(at: &str, cfg: &ProviderConfig, client: reqwest::Client) -> Result<Member, String> {
    unused_keys(at, cfg)?;
    let gateway: Box<dyn Gateway> = match cfg.provider {
        Provider::Twilio => Box::new(twilio::Twilio::new(at, cfg, client)?),
        Provider::Vonage => Box::new(vonage::Vonage::new(at, cfg, client)?),
        Provider::Seven => Box::new(seven::Seven::new(at, cfg, client)?),
        Provider::Generic => Box::new(generic::Generic::new(at, cfg, client)?),
    };
    Ok(Member {
        name: cfg.name().to_string(),
        gateway,
        endpoint: cfg
            .base_url
            .clone()
            .unwrap_or_else(|| format!("the {} API", cfg.provider.as_str())),
        limiter: cfg.rate.map(|r| r.limiter(NonZeroU32::MIN)),
        price: cfg.price_per_segment,
    })
}

/// Keys that belong to other providers are a mistake worth reporting, not ignoring.
fn unused_keys(at: &str, cfg: &ProviderConfig) -> Result<(), String> {
    let p = cfg.provider.as_str();
    let keys: [(&str, bool, &[&str]); 12] = [
        ("account_sid", cfg.account_sid.is_some(), &["twilio"]),
        ("api_key", cfg.api_key.is_some(), &["vonage"]),
        ("api_key_env", cfg.api_key_env.is_some(), &["vonage", "seven"]),
        ("api_secret_env", cfg.api_secret_env.is_some(), &["vonage"]),
        ("auth_token_env", cfg.auth_token_env.is_some(), &["twilio", "generic"]),
        ("url", cfg.url.is_some(), &["generic"]),
        ("method", cfg.method.is_some(), &["generic"]),
        ("headers", !cfg.headers.is_empty(), &["generic"]),
        ("body_template", cfg.body_template.is_some(), &["generic"]),
        ("body_format", cfg.body_format.is_some(), &["generic"]),
        ("id_pointer", cfg.id_pointer.is_some(), &["generic"]),
        ("success_statuses", cfg.success_statuses.is_some(), &["generic"]),
    ];
    for (key, set, providers) in keys {
        if set && !providers.contains(&p) {
            return Err(format!(
                "{at} {key} is not used by provider {p:?} (only by {})",
                providers.join(", ")
            ));
        }
    }
    Ok(())
}

/// A secret the provider cannot work without, from the variable `key` (e.g. `auth_token_env`)
/// names.
fn required_secret(at: &str, provider: &str, key: &str, var: Option<&str>) -> Result<secrecy::SecretString, String> {
    let var = var.ok_or_else(|| format!("{at} provider \"{provider}\" needs {key}"))?;
    crate::secrets::secret_from_env(var, &format!("{at} {key}"))
}

/// The sender, for providers that require one; `what` says what it may be.
fn required_from(at: &str, provider: &str, cfg: &ProviderConfig, what: &str) -> Result<String, String> {
    cfg.from
        .clone()
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| format!("{at} provider \"{provider}\" needs from ({what})"))
}

/// The gateway's root without a trailing slash.
fn base(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

/// The root of a provider's API: the table's `base_url` (a fake, a regional endpoint), else the
/// provider's own.
fn base_or(cfg: &ProviderConfig, provider_root: &str) -> String {
    base(cfg.base_url.as_deref().unwrap_or(provider_root))
}

/// A request that got no answer: SMS gateways have no idempotency key, so one that may have
/// arrived is `unknown` rather than risk a duplicate text. One that never reached the gateway
/// is transient *without a route*: that is how [`Member::send`] tells it from a 429/5xx
/// (the next provider may take it at once).
fn failure(provider: &str, f: crate::channel::http::Failure) -> DeliveryError {
    let not_connected = matches!(f, crate::channel::http::Failure::NotConnected(_));
    match f.into_delivery(provider, |message| DeliveryError::Ambiguous {
        message: format!("{message}; the gateway may have accepted it"),
        route: Some(provider.to_string()),
    }) {
        DeliveryError::Transient {
            message, retry_after, ..
        } if not_connected => DeliveryError::Transient {
            message,
            retry_after,
            route: None,
        },
        e => e,
    }
}

/// An amount with up to 4 decimals, trailing zeros dropped (but at least 2): "0.225", "1.50".
pub fn money(amount: f64, currency: Option<&str>) -> String {
    let mut s = format!("{amount:.4}");
    while s.ends_with('0') && s.len() - s.find('.').unwrap_or(0) > 3 {
        s.pop();
    }
    match currency {
        Some(c) => format!("{s} {c}"),
        None => s,
    }
}

/// Line ends unified, trailing spaces dropped, at most one empty line in a row, trimmed.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut empty_run = 0;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            empty_run += 1;
            if empty_run > 1 {
                continue;
            }
        } else {
            empty_run = 0;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(line);
    }
    out
}

/// Why a text needs UCS-2: its first character that normalisation cannot map to GSM 03.38 (a
/// curly quote only forces UCS-2 because something else, e.g. an emoji, already does), else
/// its first character outside GSM 03.38.
fn first_non_gsm(text: &str) -> char {
    let fixable = |c: &char| sms::is_gsm7(&sms::normalize(c.encode_utf8(&mut [0; 4])));
    let outside = |c: &char| !sms::is_gsm7(c.encode_utf8(&mut [0; 4]));
    text.chars()
        .find(|c| outside(c) && !fixable(c))
        .or_else(|| text.chars().find(outside))
        .unwrap_or(' ')
}

#[async_trait]
impl Channel for Sms {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The segment count depends on each recipient's text (names, columns): check them all.
    fn validate_every_target(&self) -> bool {
        true
    }

    fn skip_reason(&self, address: &str) -> Option<String> {
        crate::phone::skip_reason(address, crate::phone::Reachable::Texts)
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let text = tidy(&self.skeletons.render(templates, &self.template, ctx)?);
        let normalized = if self.normalize {
            sms::normalize(&text).into_owned()
        } else {
            text.clone()
        };
        if normalized.is_empty() {
            return Err(format!("the SMS text ({}) is empty", self.template));
        }
        let info = sms::analyze(&normalized);
        let encoding = match info.encoding {
            Encoding::Ucs2 => {
                let culprit = first_non_gsm(&normalized);
                let mut e = format!("UCS-2 (because of {culprit:?} {})", unicode_name(culprit));
                if !self.normalize && sms::is_gsm7(&sms::normalize(&normalized)) {
                    e.push_str("; normalize = true would make it GSM-7");
                }
                e
            }
            e if normalized != text => format!("{e} (typographic characters normalised)"),
            e => e.to_string(),
        };
        let unit = match info.encoding {
            Encoding::Gsm7 => "septets",
            Encoding::Ucs2 => "UTF-16 units",
        };
        if info.segments > self.max_segments {
            return Err(format!(
                "the SMS is {} segments ({encoding}, {} characters = {} {unit}), max_segments = {}: shorten the \
                 summary (or the {} template) or raise max_segments",
                info.segments, info.chars, info.units, self.max_segments, self.template
            ));
        }
        // Any provider may end up sending it: each one's limit applies.
        for p in self.providers.routes() {
            if let Some(max) = p.gateway.max_chars()
                && info.chars > max
            {
                return Err(format!(
                    "the SMS has {} characters; {} accepts at most {max}",
                    info.chars,
                    p.gateway.provider()
                ));
            }
        }
        let mut stats = vec![
            Stat::new("SMS encoding", encoding),
            Stat::new("SMS characters", format!("{} ({} {unit})", info.chars, info.units)),
            Stat::limited("SMS segments", info.segments as usize, self.max_segments as usize),
        ];
        let cost = |p: f64| {
            format!(
                "{} ({} × {})",
                self.money(p * f64::from(info.segments)),
                info.segments,
                money(p, None)
            )
        };
        if let Some(p) = self.sole() {
            if let Some(price) = p.price {
                stats.push(Stat::new("SMS cost per message", cost(price)));
            }
        } else {
            let names: Vec<&str> = self.providers.routes().map(|p| p.name.as_str()).collect();
            stats.push(Stat::new(
                "SMS providers",
                format!("{} (tried in this order)", names.join(", ")),
            ));
            for p in self.providers.routes() {
                if let Some(price) = p.price {
                    stats.push(Stat::new(&format!("SMS cost per message via {}", p.name), cost(price)));
                }
            }
        }
        Ok(Rendered {
            subject: None,
            text: normalized,
            html: None,
            weight: if self.weigh_segments { info.segments } else { 1 },
            media: Default::default(),
            language: None,
            stats,
        })
    }

    /// A provider's `Retry-After` holds that provider (its breaker), not the channel: the next
    /// provider takes over, and only when every one is held does the delivery wait.
    async fn deliver(&self, d: &Delivery, msg: &Rendered) -> Result<Receipt, DeliveryError> {
        let info = sms::analyze(&msg.text);
        let out = Outgoing {
            to: &d.address,
            text: &msg.text,
            info: &info,
            delivery: d,
        };
        let out = &out;
        match self
            .providers
            .send(Some(d.id), |p| Box::pin(async move { p.send(out).await }))
            .await
        {
            Ok((name, receipt)) => Ok(Receipt {
                route: Some(name.to_string()),
                ..receipt
            }),
            Err(e) => Err(e.redacted()),
        }
    }

    /// A gateway's 429 throttles the account: every recipient waits.
    fn retry_after_pauses_channel(&self) -> bool {
        true
    }

    /// One probe per provider; in the multi-provider form each is named by its provider name.
    async fn check(&self) -> Vec<Probe> {
        let single = self.sole().is_some();
        let mut probes = Vec::new();
        for p in self.providers.routes() {
            let mut probe = p.gateway.check().await;
            probe.detail = crate::secrets::redact(&probe.detail).into_owned();
            if !single {
                probe.detail = format!("{}: {}", probe.subject, probe.detail);
                probe.subject.clone_from(&p.name);
            }
            probes.push(probe);
        }
        probes
    }

    fn can_refresh(&self) -> bool {
        self.providers.routes().any(|p| p.gateway.can_refresh())
    }

    /// The journal keeps only the provider's id: asked of each provider that can answer, in
    /// order, the first that knows the id answers.
    async fn refresh(&self, provider_id: &str) -> Result<Refreshed, String> {
        let redact = |s: String| crate::secrets::redact(&s).into_owned();
        let mut errors = Vec::new();
        let any = self.can_refresh();
        for p in self.providers.routes().filter(|p| !any || p.gateway.can_refresh()) {
            match p.gateway.refresh(provider_id).await {
                Ok(Refreshed::Undelivered(why)) => return Ok(Refreshed::Undelivered(redact(why))),
                Ok(r) => return Ok(r),
                Err(e) => errors.push(redact(e)),
            }
        }
        Err(errors.join("; "))
    }

    /// Our request timeout is below the attempt deadline; if the deadline still fires, the
    /// request was on its way and the gateway may have it.
    fn timeout_error(&self, after: Duration) -> DeliveryError {
        let route = self.sole().map(|p| p.name.clone());
        DeliveryError::Ambiguous {
            message: format!(
                "{}: no answer within {after:?}; the gateway may have accepted it",
                route.as_deref().unwrap_or("no provider")
            ),
            route,
        }
    }
}

/// A few names for the characters that most often force UCS-2.
fn unicode_name(c: char) -> String {
    match c {
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2018}' | '\u{2019}' => "a typographic quote".into(),
        '\u{2013}' | '\u{2014}' => "a dash".into(),
        '\u{2026}' => "an ellipsis".into(),
        '\u{A0}' => "a no-break space".into(),
        _ => format!("U+{:04X}", c as u32),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn money_format() {
        assert_eq!(money(0.15, None), "0.15");
        assert_eq!(money(0.225, Some("EUR")), "0.225 EUR");
        assert_eq!(money(1.5, None), "1.50");
        assert_eq!(money(0.0, None), "0.00");
        assert_eq!(money(0.07526, None), "0.0753");
    }

    #[test]
    fn tidy_text() {
        assert_eq!(tidy("  a  \r\nb\n\n\n\nc \n"), "a\nb\n\nc");
    }

    /// Accepts every message (rendering tests never send).
    #[derive(Default)]
    struct Fake;

    #[async_trait]
    impl Gateway for Arc<Fake> {
        fn provider(&self) -> &'static str {
            "fake"
        }
        async fn send(&self, _m: &Outgoing<'_>) -> Result<Receipt, DeliveryError> {
            Ok(Receipt::default())
        }
        async fn check(&self) -> Probe {
            Probe {
                subject: "fake".into(),
                ok: true,
                detail: String::new(),
            }
        }
    }

    fn channel(weigh_segments: bool, gateway: Arc<Fake>) -> Sms {
        let member = Member {
            name: "fake".into(),
            gateway: Box::new(gateway),
            endpoint: "fake".into(),
            limiter: None,
            price: Some(0.075),
        };
        let policy = Policy {
            noun: "provider",
            route_attempts: DEFAULT_PROVIDER_ATTEMPTS,
            pause_sole_route: false,
        };
        Sms {
            meta: Meta::new::<SmsConfig>("sms", Reach::PerPerson(AddressKind::Phone)),
            providers: Failover::new(vec![member], policy),
            template: "sms.txt.hbs".into(),
            normalize: true,
            max_segments: 3,
            currency: None,
            weigh_segments,
            skeletons: Default::default(),
        }
    }

    fn context(summary: &str) -> Context {
        Context::new(
            serde_json::json!({"summary": summary, "org": {}, "recipient": {}}),
            "+4915123456789",
        )
    }

    #[test]
    fn weight_is_segments_only_with_rate_unit_segment() {
        let templates = Templates::load(crate::channel::builtin_templates(), None).unwrap();
        let two_segments = "x".repeat(200);
        let by_segment = channel(true, Arc::default()).render(&templates, &context(&two_segments));
        let by_message = channel(false, Arc::default()).render(&templates, &context(&two_segments));
        assert_eq!(by_segment.unwrap().weight, 2);
        assert_eq!(by_message.unwrap().weight, 1);
        let long = "x".repeat(500);
        let err = channel(false, Arc::default())
            .render(&templates, &context(&long))
            .unwrap_err();
        assert!(err.contains("4 segments") && err.contains("max_segments = 3"), "{err}");
    }

    #[test]
    fn render_normalises_and_reports_cost() {
        let templates = Templates::load(crate::channel::builtin_templates(), None).unwrap();
        let r = channel(false, Arc::default())
            .render(&templates, &context("„Termine“ – finden statt…"))
            .unwrap();
        assert_eq!(r.text, "\"Termine\" - finden statt...");
        let stat = |label: &str| r.stats.iter().find(|s| s.label == label).unwrap().value.clone();
        assert_eq!(stat("SMS encoding"), "GSM-7 (typographic characters normalised)");
        assert_eq!(stat("SMS cost per message"), "0.075 (1 × 0.075)");
    }
}
