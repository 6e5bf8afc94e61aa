//! The `voice` channel: a text-to-speech call to every person with a valid phone number,
//! landlines included, through Twilio Programmable Voice (inline TwiML `<Say>`) or the Vonage
//! Voice API (an NCCO `talk` action, authenticated with an RS256 JWT of the application).
//!
//! * The text is `voice.txt.hbs` (English; `voice.txt.de.hbs` German, or the channel's
//!   `template`), with `org.phone_spoken` (the org's phone number spelled digit by digit) in the
//!   context, folded to one line. More than [`MAX_CHARS`] characters are refused while
//!   planning (every recipient is rendered), so nothing is sent.
//! * Numbers of kinds no one answers (premium rate, short codes, ...) are skipped with their
//!   kind ([`crate::phone::Reachable::Calls`]).
//! * One call per second unless `rate` says otherwise (Twilio's default CPS).
//! * Providers have no idempotency key: a request that got no answer is `unknown`, never
//!   re-sent automatically (the phone may already be ringing).
//! * `report --refresh` asks for the call's status: completed is delivered; busy, no answer,
//!   failed, cancelled (and Vonage's timeout, rejected, unanswered) undelivered; the rest is
//!   not final yet.

mod config;
mod twilio;
mod vonage;

use std::num::NonZeroU32;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::channel::{
    AddressKind, BuildContext, Channel, Delivery, DeliveryError, Meta, Probe, Reach, Receipt, Refreshed, Rendered, Stat,
};
use crate::render::{Context, Templates};
use crate::settings::{Common, Rate};

pub use config::{Provider, VoiceConfig};

/// The longest text a call speaks, in characters of the rendered text (before any escaping).
pub const MAX_CHARS: usize = 3000;
/// The most `repeat` allows: a message spoken more often only keeps the line busy.
pub const MAX_REPEAT: u32 = 10;
/// Speaking rate assumed for the estimate: a typical text-to-speech voice.
pub const WORDS_PER_MINUTE: usize = 150;
/// Upper bound of one HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the text is spoken, as the config says; the language is each call's (see
/// [`Voice::language`]).
#[derive(Debug, Clone)]
pub(crate) struct Speech {
    pub voice: Option<String>,
    pub repeat: u32,
}

/// What a provider's API is built from.
pub(crate) struct Parts<'a> {
    /// "[channels.NAME]", for messages.
    pub at: &'a str,
    pub cfg: &'a VoiceConfig,
    /// E.164.
    pub from: String,
    pub speech: Speech,
    pub client: reqwest::Client,
}

/// One voice provider's API.
#[async_trait]
pub(crate) trait Api: Send + Sync {
    fn provider(&self) -> &'static str;
    /// Measures of the rendered text the provider limits (Twilio: the TwiML's length).
    fn stats(&self, _text: &str, _language: &str) -> Result<Vec<Stat>, String> {
        Ok(Vec::new())
    }
    /// Start the call to `to` (E.164) speaking `text` in `language` (BCP-47).
    async fn call(&self, to: &str, text: &str, language: &str) -> Result<Receipt, DeliveryError>;
    async fn check(&self) -> Probe;
    /// The call's status, by the provider's id.
    async fn status(&self, provider_id: &str) -> Result<String, String>;
}

pub struct Voice {
    meta: Meta,
    api: Box<dyn Api>,
    template: String,
    /// The configured speech language; `None`: each person's (see [`Voice::language`]).
    language: Option<String>,
    org_locale: crate::locale::Locale,
    phone_spoken: Option<String>,
    repeat: u32,
}

impl Voice {
    pub fn new(name: &str, common: &Common, cfg: &VoiceConfig, ctx: &BuildContext) -> Result<Voice, String> {
        let at = format!("[channels.{name}]");
        let template = common.template.clone().unwrap_or_else(|| config::TEMPLATE.0.into());
        let language = match &cfg.language {
            Some(l) if !valid_language(l) => {
                return Err(format!(
                    "{at} language {l:?} is not a language tag such as \"de-DE\" or \"en-US\""
                ));
            }
            Some(l) => Some(l.clone()),
            // A template named for one language speaks it to everyone.
            None => crate::render::lang::split_template_name(&template)
                .and_then(|(_, l)| l.locale())
                .map(|l| speech_language(l).to_string()),
        };
        let speech = Speech {
            voice: cfg.voice.clone().filter(|v| !v.trim().is_empty()),
            repeat: cfg.repeat.unwrap_or(1),
        };
        let from = e164(&cfg.from).ok_or_else(|| {
            format!(
                "{at} from {:?} is not a phone number in E.164 (\"+4930123456\")",
                cfg.from
            )
        })?;
        let attempt = common.timeout.map_or(HTTP_TIMEOUT, |d| d.0);
        let client = crate::channel::http::client(HTTP_TIMEOUT.min(attempt.mul_f64(0.8)))?;
        let repeat = speech.repeat;
        let parts = Parts {
            at: &at,
            cfg,
            from,
            speech,
            client,
        };
        let api: Box<dyn Api> = match cfg.provider {
            Provider::Twilio => Box::new(twilio::Twilio::new(parts)?),
            Provider::Vonage => Box::new(vonage::Vonage::new(parts, ctx)?),
        };
        Ok(Voice {
            // Calls are paced by the rate; two in flight hide the request latency.
            meta: Meta::new::<VoiceConfig>(name, Reach::PerPerson(AddressKind::Phone)).concurrency(2),
            api,
            template,
            language,
            org_locale: ctx.org.locale,
            phone_spoken: ctx.org.phone.as_deref().map(spell_number).filter(|s| !s.is_empty()),
            repeat,
        })
    }
}

impl Voice {
    /// The language a person's call is spoken in: the configured one, else that of the text
    /// they get (their built-in language, else the organisation's).
    fn language(&self, lang: crate::render::lang::Lang) -> String {
        self.language
            .clone()
            .unwrap_or_else(|| speech_language(lang.locale().unwrap_or(self.org_locale)).to_string())
    }
}

/// The text-to-speech language of the built-in texts.
fn speech_language(l: crate::locale::Locale) -> &'static str {
    match l {
        crate::locale::Locale::De => "de-DE",
        crate::locale::Locale::En => "en-US",
    }
}

/// A BCP-47-looking tag: letters, digits and hyphens, starting with a letter.
fn valid_language(l: &str) -> bool {
    (2..=35).contains(&l.len())
        && l.starts_with(|c: char| c.is_ascii_alphabetic())
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `+` and the digits of a number written with separators, if it is one.
fn e164(s: &str) -> Option<String> {
    let rest = s.trim().strip_prefix('+')?;
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    let separators_only = rest.chars().all(|c| c.is_ascii_digit() || " -./()".contains(c));
    (separators_only && (6..=15).contains(&digits.len())).then(|| format!("+{digits}"))
}

/// A phone number as a voice should read it: every digit on its own, groups as written
/// (a group of more than four digits in threes), separated by commas for a pause; a leading
/// `+` is "plus", a "(0)" left out. "+49 30 1234567" -> "plus 4 9, 3 0, 1 2 3, 4 5 6 7".
pub fn spell_number(phone: &str) -> String {
    let phone = phone.replace("(0)", " ");
    let mut groups: Vec<String> = Vec::new();
    for written in phone.split(|c: char| !c.is_ascii_digit()).filter(|g| !g.is_empty()) {
        let digits: Vec<char> = written.chars().collect();
        let mut rest = digits.as_slice();
        while !rest.is_empty() {
            let take = if rest.len() > 4 { 3 } else { rest.len() };
            let (group, tail) = rest.split_at(take);
            groups.push(group.iter().map(char::to_string).collect::<Vec<_>>().join(" "));
            rest = tail;
        }
    }
    let spelled = groups.join(", ");
    if phone.trim_start().starts_with('+') && !spelled.is_empty() {
        format!("plus {spelled}")
    } else {
        spelled
    }
}

/// Whitespace of every kind folded to single spaces: a voice reads one stream of words.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// About how long `text` takes to speak once, in whole seconds.
pub fn speaking_seconds(text: &str) -> usize {
    let words = text.split_whitespace().count();
    (words * 60).div_ceil(WORDS_PER_MINUTE)
}

/// What a provider's call status means for the delivery (the statuses of both providers).
pub fn final_status(provider: &str, status: &str) -> Refreshed {
    match status {
        "completed" => Refreshed::Delivered,
        "busy" | "no-answer" | "failed" | "canceled" | "cancelled" | "timeout" | "rejected" | "unanswered" => {
            Refreshed::Undelivered(format!("{status} ({provider} call status)"))
        }
        _ => Refreshed::Pending,
    }
}

/// A request that got no answer: the provider may have placed the call, so it is `unknown`.
fn failure(provider: &str, f: crate::channel::http::Failure) -> DeliveryError {
    f.into_delivery(provider, |message| DeliveryError::Ambiguous {
        message: format!("{message}; the provider may have placed the call"),
        route: Some(provider.to_string()),
    })
}

/// Send a call create and read its answer: the receipt with the id at `id_key` of the
/// documented success answer, or the error as the provider's `classify` reads it.
async fn place(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    id_key: &str,
    classify: fn(&crate::channel::http::Answer) -> DeliveryError,
) -> Result<Receipt, DeliveryError> {
    let answer = crate::channel::http::send(request)
        .await
        .map_err(|f| failure(provider, f))?;
    if !answer.status.is_success() {
        return Err(classify(&answer));
    }
    answer.receipt(id_key, provider)
}

/// The root of the provider's API without a trailing slash.
fn base_or(cfg: &VoiceConfig, provider_root: &str) -> String {
    cfg.base_url
        .as_deref()
        .unwrap_or(provider_root)
        .trim_end_matches('/')
        .to_string()
}

#[async_trait]
impl Channel for Voice {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn default_rate(&self) -> Option<Rate> {
        Some(Rate {
            count: NonZeroU32::MIN,
            per: Duration::from_secs(1),
        })
    }

    /// The length depends on each recipient's text (names, columns): check them all.
    fn validate_every_target(&self) -> bool {
        true
    }

    fn skip_reason(&self, address: &str) -> Option<String> {
        crate::phone::skip_reason(address, crate::phone::Reachable::Calls)
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let text = match &self.phone_spoken {
            Some(spoken) => {
                let mut data = ctx.data().clone();
                data["org"]["phone_spoken"] = json!(spoken);
                templates.render_in(&self.template, ctx.lang, &data)?
            }
            None => templates.render_ctx(&self.template, ctx)?,
        };
        let text = one_line(&text);
        let n = text.chars().count();
        if n == 0 {
            return Err(format!("the voice message ({}) is empty", self.template));
        }
        if n > MAX_CHARS {
            return Err(format!(
                "the voice message is {n} characters, more than the {MAX_CHARS} a call speaks: shorten the summary \
                 (or the {} template)",
                self.template
            ));
        }
        let once = speaking_seconds(&text);
        let mut time = format!("about {once} s at {WORDS_PER_MINUTE} words per minute");
        if self.repeat > 1 {
            time.push_str(&format!(
                ", {} s spoken {} times",
                once * self.repeat as usize,
                self.repeat
            ));
        }
        let mut stats = vec![
            // The plan lists stats only: this is how it shows what will be said.
            Stat::new("Voice text", crate::channel::http::excerpt(&text, 120)),
            Stat::limited("Voice characters", n, MAX_CHARS),
            Stat::new("Voice speaking time", time),
        ];
        let language = self.language(ctx.lang);
        stats.extend(self.api.stats(&text, &language)?);
        Ok(Rendered {
            language: Some(language),
            ..Rendered::plain(text, stats)
        })
    }

    async fn deliver(&self, d: &Delivery, msg: &Rendered) -> Result<Receipt, DeliveryError> {
        self.api
            .call(&d.address, &msg.text, msg.language.as_deref().unwrap_or("en-US"))
            .await
            .map_err(DeliveryError::redacted)
    }

    /// A 429 throttles the account: every call waits.
    fn retry_after_pauses_channel(&self) -> bool {
        true
    }

    async fn check(&self) -> Vec<Probe> {
        let mut probe = self.api.check().await;
        probe.detail = crate::secrets::redact(&probe.detail).into_owned();
        vec![probe]
    }

    fn can_refresh(&self) -> bool {
        true
    }

    async fn refresh(&self, provider_id: &str) -> Result<Refreshed, String> {
        let redact = |s: String| crate::secrets::redact(&s).into_owned();
        let status = self.api.status(provider_id).await.map_err(redact)?;
        Ok(final_status(self.api.provider(), &status))
    }

    /// Our request timeout is below the attempt deadline; if the deadline still fires, the
    /// request was on its way and the call may be ringing.
    fn timeout_error(&self, after: Duration) -> DeliveryError {
        let provider = self.api.provider();
        DeliveryError::Ambiguous {
            message: format!("{provider}: no answer within {after:?}; the provider may have placed the call"),
            route: Some(provider.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_spelled_digit_by_digit_in_their_groups() {
        assert_eq!(spell_number("+49 30 1234567"), "plus 4 9, 3 0, 1 2 3, 4 5 6 7");
        assert_eq!(spell_number("030 123 456"), "0 3 0, 1 2 3, 4 5 6");
        assert_eq!(spell_number("+49 (0)30/12345"), "plus 4 9, 3 0, 1 2 3, 4 5");
        assert_eq!(spell_number("0301234567"), "0 3 0, 1 2 3, 4 5 6 7");
        assert_eq!(spell_number("call us"), "");
        assert_eq!(spell_number("+"), "");
    }

    #[test]
    fn call_statuses_map_to_delivery_statuses() {
        for provider in ["twilio", "vonage"] {
            assert_eq!(final_status(provider, "completed"), Refreshed::Delivered);
        }
        for (provider, status) in [
            ("twilio", "busy"),
            ("twilio", "no-answer"),
            ("twilio", "failed"),
            ("twilio", "canceled"),
            ("vonage", "busy"),
            ("vonage", "timeout"),
            ("vonage", "failed"),
            ("vonage", "rejected"),
            ("vonage", "unanswered"),
            ("vonage", "cancelled"),
        ] {
            assert_eq!(
                final_status(provider, status),
                Refreshed::Undelivered(format!("{status} ({provider} call status)"))
            );
        }
        for status in ["queued", "ringing", "in-progress", "started", "answered", "machine"] {
            assert_eq!(final_status("twilio", status), Refreshed::Pending, "{status}");
        }
    }

    #[test]
    fn speaking_time_and_numbers() {
        assert_eq!(speaking_seconds(&"wort ".repeat(150)), 60);
        assert_eq!(speaking_seconds("eins zwei"), 1);
        assert_eq!(e164("+49 30 123456").as_deref(), Some("+4930123456"));
        assert_eq!(e164("030 123456"), None);
        assert_eq!(e164("+49 30 abc"), None);
        assert!(valid_language("de-DE") && !valid_language("de DE") && !valid_language("1"));
    }
}
