//! The keys of a `type = "sms"` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig};
use crate::settings::{Common, Keyed, Rate, keyed, yes};

/// `type = "sms"`: one SMS gateway (its keys directly in the table), or several tried in order
/// (`[[channels.sms.providers]]`). Which keys apply depends on `provider`; `Sms::new` checks
/// that the provider's keys are there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    // The rarely used keys are boxed (`Box<str>`: 16 bytes, not 24) to keep this variant of
    // `ChannelKind` from dwarfing the others (clippy::large_enum_variant).
    /// The one-provider form; absent when `providers` lists them.
    #[serde(default, deserialize_with = "keyed")]
    pub provider: Option<Provider>,
    // `flatten` with `deny_unknown_fields` still refuses unknown keys (serde checks what the
    // flattened struct left), as for `GraphAccount`.
    #[serde(flatten)]
    pub keys: ProviderKeys,
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
    /// The providers in the order they are tried (instead of the one-provider keys above).
    #[serde(default)]
    pub providers: Box<[ProviderConfig]>,
    /// Tries of one delivery on a provider that answers 429/5xx before the next takes over.
    pub provider_attempts: Option<u32>,
}

/// The keys of one gateway, in the table itself (one provider) or in a `[[providers]]` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderKeys {
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

/// One `[[channels.sms.providers]]` entry: the one-provider keys, a `name` and a `rate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The `route` in journal and report; defaults to `provider`.
    pub name: Option<String>,
    #[serde(deserialize_with = "keyed")]
    pub provider: Provider,
    #[serde(flatten)]
    pub keys: ProviderKeys,
    /// This provider's own limit, on top of the channel's `rate`.
    pub rate: Option<Rate>,
    /// Overrides the channel's `price_per_segment` for this provider.
    pub price_per_segment: Option<f64>,
}

/// The gateways read their keys as if they were the entry's own.
impl std::ops::Deref for ProviderConfig {
    type Target = ProviderKeys;

    fn deref(&self) -> &ProviderKeys {
        &self.keys
    }
}

impl ProviderConfig {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.provider.as_str())
    }
}

impl SmsConfig {
    /// The providers in order: the `[[providers]]`, or the one the table itself describes.
    pub fn gateways(&self) -> Vec<ProviderConfig> {
        if !self.providers.is_empty() {
            return self.providers.to_vec();
        }
        let Some(provider) = self.provider else {
            return Vec::new();
        };
        vec![ProviderConfig {
            name: None,
            provider,
            keys: self.keys.clone(),
            // The channel's own `rate` is the dispatcher's.
            rate: None,
            price_per_segment: self.price_per_segment,
        }]
    }

    /// The one-provider keys that are set (for "both forms at once").
    fn single_form_keys(&self) -> Vec<&'static str> {
        let k = &self.keys;
        let keys = [
            ("provider", self.provider.is_some()),
            ("from", k.from.is_some()),
            ("account_sid", k.account_sid.is_some()),
            ("api_key", k.api_key.is_some()),
            ("api_key_env", k.api_key_env.is_some()),
            ("api_secret_env", k.api_secret_env.is_some()),
            ("auth_token_env", k.auth_token_env.is_some()),
            ("base_url", k.base_url.is_some()),
            ("url", k.url.is_some()),
            ("method", k.method.is_some()),
            ("headers", !k.headers.is_empty()),
            ("body_template", k.body_template.is_some()),
            ("body_format", k.body_format.is_some()),
            ("id_pointer", k.id_pointer.is_some()),
            ("success_statuses", k.success_statuses.is_some()),
        ];
        keys.into_iter().filter(|(_, set)| *set).map(|(k, _)| k).collect()
    }

    /// ", estimated cost X" for `segments` segments: per provider when their prices differ.
    pub fn estimated_cost(&self, segments: u64) -> String {
        // Segment counts are far below 2^52: exact as f64.
        #[allow(clippy::cast_precision_loss)]
        let cost = |p: f64| super::money(p * segments as f64, self.currency.as_deref());
        let gateways = self.gateways();
        let prices: Vec<(&str, Option<f64>)> = gateways
            .iter()
            .map(|g| (g.name(), g.price_per_segment.or(self.price_per_segment)))
            .collect();
        match prices.as_slice() {
            [] | [(_, None)] => String::new(),
            [(_, Some(p))] => format!(", estimated cost {}", cost(*p)),
            _ if prices.iter().all(|(_, p)| *p == prices[0].1) => prices[0]
                .1
                .map_or_else(String::new, |p| format!(", estimated cost {}", cost(p))),
            _ => {
                let each: Vec<String> = prices
                    .iter()
                    .filter_map(|(name, p)| p.map(|p| format!("{} via {name}", cost(p))))
                    .collect();
                format!(", estimated cost {}", each.join(" or "))
            }
        }
    }
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
    fn validate(&self, name: &str) -> Result<(), String> {
        let single = self.single_form_keys();
        if !self.providers.is_empty() && !single.is_empty() {
            return Err(format!(
                "[channels.{name}] has both [[channels.{name}.providers]] and provider keys in the table itself ({}); \
                 use one form: move those keys into a providers entry",
                single.join(", ")
            ));
        }
        if self.providers.is_empty() && self.provider.is_none() {
            return Err(format!(
                "[channels.{name}] needs provider (or [[channels.{name}.providers]] entries)"
            ));
        }
        if self.provider_attempts == Some(0) {
            return Err(format!("[channels.{name}] provider_attempts must be at least 1"));
        }
        Ok(())
    }

    fn urls(&self) -> Vec<(&'static str, &str)> {
        let mut k = Vec::new();
        let tables = std::iter::once((self.keys.base_url.as_deref(), self.keys.url.as_deref()))
            .chain(self.providers.iter().map(|p| (p.base_url.as_deref(), p.url.as_deref())));
        for (base_url, url) in tables {
            if let Some(b) = base_url {
                k.push(("base_url", b));
            }
            // A relative `url` is a path under base_url.
            if let Some(u) = url
                && u.contains("://")
            {
                k.push(("url", u));
            }
        }
        k
    }

    fn build(&self, name: &str, common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(super::Sms::new(name, common, self, ctx)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> SmsConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn the_one_provider_form_is_one_provider_named_by_its_type() {
        let c = parse("provider = \"seven\"\napi_key_env = \"K\"\nprice_per_segment = 0.1\n");
        let g = c.gateways();
        assert_eq!((g.len(), g[0].name(), g[0].price_per_segment), (1, "seven", Some(0.1)));
        assert_eq!(c.validate("sms"), Ok(()));
        assert_eq!(c.estimated_cost(3), ", estimated cost 0.30");
    }

    #[test]
    fn providers_in_order_and_their_mistakes() {
        let two = "price_per_segment = 0.1\n[[providers]]\nname = \"a\"\nprovider = \"twilio\"\n\
                   [[providers]]\nprovider = \"seven\"\nprice_per_segment = 0.2\n";
        let c = parse(two);
        let names: Vec<String> = c.gateways().iter().map(|g| g.name().to_string()).collect();
        assert_eq!(names, ["a", "seven"]);
        // The channel's price is the default of a provider without its own.
        assert_eq!(c.estimated_cost(1), ", estimated cost 0.10 via a or 0.20 via seven");
        let both = parse(&format!("from = \"S\"\n{two}"));
        assert!(both.validate("sms").unwrap_err().contains("(from)"));
        let zero = parse(&format!("provider_attempts = 0\n{two}"));
        assert!(zero.validate("sms").unwrap_err().contains("provider_attempts"));
        assert!(
            parse("max_segments = 2\n")
                .validate("sms")
                .unwrap_err()
                .contains("needs provider")
        );
    }
}
