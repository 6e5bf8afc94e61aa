//! The keys of a `type = "sms"` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig};
use crate::settings::{Common, Keyed, keyed, yes};

/// `type = "sms"`: one SMS gateway. Which keys apply depends on `provider`; `Sms::new`
/// checks that the provider's keys are there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    // The rarely used keys are boxed (`Box<str>`: 16 bytes, not 24) to keep this variant of
    // `ChannelKind` from dwarfing the others (clippy::large_enum_variant).
    #[serde(deserialize_with = "keyed")]
    pub provider: Provider,
    /// Sender: an E.164 number or an alphanumeric sender id (twilio: also a Messaging Service
    /// SID `MG...`). Required for twilio and vonage.
    pub from: Option<String>,
    /// twilio: the Account SID (`AC...`).
    pub account_sid: Option<String>,
    /// vonage: the API key (not a secret; `api_key_env` reads it from the environment instead).
    pub api_key: Option<String>,
    /// vonage, seven: environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// vonage: environment variable holding the API secret.
    pub api_secret_env: Option<String>,
    /// twilio: environment variable holding the Auth Token. generic: an optional token, sent as
    /// `Authorization: Bearer ...` unless a header value contains `{token}`.
    pub auth_token_env: Option<String>,
    /// The gateway's API root (tests and proxies point it elsewhere). Defaults per provider.
    pub base_url: Option<String>,
    /// Refuse (before anything is sent) texts longer than this many segments. Default 10.
    pub max_segments: Option<u32>,
    /// Typographic quotes, dashes, ellipsis and odd spaces -> GSM-7 look-alikes. Default on.
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Price of one segment, for the cost estimate in `preview` and the plan.
    pub price_per_segment: Option<f64>,
    /// Shown after estimated costs, e.g. "EUR".
    pub currency: Option<Box<str>>,
    /// What one rate-limit cell is.
    #[serde(default, deserialize_with = "keyed")]
    pub rate_unit: RateUnit,
    /// generic: the endpoint; absolute, or a path joined to `base_url`.
    pub url: Option<Box<str>>,
    /// generic: HTTP method, default POST.
    pub method: Option<Box<str>>,
    /// generic: extra request headers; `{token}` in a value is replaced by `auth_token_env`'s secret.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// generic: handlebars template of the request body, with `to`, `to_digits`, `from`, `text`,
    /// `encoding`, `unicode`, `segments`, `name`, `reference`, `message_id`.
    pub body_template: Option<Box<str>>,
    /// generic: "json" (default; values are JSON-string-escaped) or "form" (values are
    /// form-urlencoded).
    pub body_format: Option<Box<str>>,
    /// generic: RFC 6901 JSON pointer to the message id in the response, e.g. "/messages/0/id".
    pub id_pointer: Option<Box<str>>,
    /// generic: HTTP statuses that mean "accepted" (default 200, 201, 202, 204).
    pub success_statuses: Option<Box<[u16]>>,
}

/// The gateway whose API the channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Twilio,
    Vonage,
    Seven,
    Generic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Vonage => "vonage",
            Provider::Seven => "seven",
            Provider::Generic => "generic",
        }
    }
}

impl Keyed for Provider {
    const KEY: &'static str = "provider";
}

/// What one rate-limit cell is: a message (default) or a segment of one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    #[default]
    Message,
    Segment,
}

impl Keyed for RateUnit {
    const KEY: &'static str = "rate_unit";
}

/// The SMS text (the outbox writes it for recipients without an email address).
pub const TEXT_TEMPLATE: Builtin = ("sms.txt.hbs", include_str!("sms.txt.hbs"));

impl BuiltinTemplates for SmsConfig {
    const TEMPLATES: &'static [Builtin] = &[TEXT_TEMPLATE];
}

impl ChannelConfig for SmsConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        let mut k = Vec::new();
        if let Some(b) = &self.base_url {
            k.push(("base_url", b.as_str()));
        }
        // A relative `url` is a path under base_url.
        if let Some(u) = self.url.as_deref()
            && u.contains("://")
        {
            k.push(("url", u));
        }
        k
    }

    fn build(&self, name: &str, common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(super::Sms::new(name, common, self, ctx)?))
    }
}
