//! Vonage SMS API (the "Nexmo" one): `POST /sms/json` with a form body holding `api_key`,
//! `api_secret`, `from`, `to` (digits, no `+`), `text` and `type=unicode` for UCS-2. It answers
//! HTTP 200 even on failure, with one entry per segment whose `status` must be "0".

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::ProviderConfig;
use super::{Gateway, Outgoing, base_or, failure, required_from, required_secret};
use crate::channel::http;
use crate::channel::{DeliveryError, Probe, Receipt};
use crate::render::sms::Encoding;
use crate::secrets::secret_from_env;

const PROVIDER: &str = "vonage";

pub struct Vonage {
    client: reqwest::Client,
    base: String,
    key: SecretString,
    secret: SecretString,
    from: String,
}

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    messages: Vec<Part>,
}

#[derive(Debug, Deserialize)]
struct Part {
    /// A string in the documented answer; accept a number too.
    status: serde_json::Value,
    #[serde(rename = "message-id")]
    message_id: Option<String>,
    #[serde(rename = "error-text")]
    error_text: Option<String>,
}

impl Part {
    fn code(&self) -> Option<u32> {
        match &self.status {
            serde_json::Value::String(s) => s.trim().parse().ok(),
            v => v.as_u64().and_then(|n| u32::try_from(n).ok()),
        }
    }
}

/// Status codes that no other delivery of the channel can get past: credentials, account,
/// credit, sender.
const HALT: &[u32] = &[4, 8, 9, 11, 14, 15];
/// Worth retrying: throttled, internal error, too many binds.
const RETRY: &[u32] = &[1, 5, 10];

fn status_name(code: u32) -> &'static str {
    match code {
        1 => "throttled",
        2 => "missing parameters",
        3 => "invalid parameters",
        4 => "invalid credentials",
        5 => "internal error",
        6 => "invalid message",
        7 => "number barred",
        8 => "partner account barred",
        9 => "partner quota exceeded (insufficient credit)",
        10 => "too many existing binds",
        11 => "account not enabled for HTTP",
        12 => "message too long",
        14 => "invalid signature",
        15 => "invalid sender address",
        22 => "invalid network code",
        23 => "invalid callback URL",
        29 => "non-whitelisted destination",
        _ => "error",
    }
}

impl Vonage {
    pub fn new(at: &str, cfg: &ProviderConfig, client: reqwest::Client) -> Result<Vonage, String> {
        let key = match (&cfg.api_key, &cfg.api_key_env) {
            (Some(k), None) if !k.trim().is_empty() => SecretString::from(k.trim().to_string()),
            (None, Some(var)) => secret_from_env(var, &format!("{at} api_key_env"))?,
            (Some(_), Some(_)) => return Err(format!("{at} set api_key or api_key_env, not both")),
            _ => return Err(format!("{at} provider \"vonage\" needs api_key (or api_key_env)")),
        };
        let secret = required_secret(at, "vonage", "api_secret_env", cfg.api_secret_env.as_deref())?;
        // The balance check sends "key:secret" as HTTP Basic.
        crate::secrets::register_credential(key.expose_secret(), secret.expose_secret());
        let from = required_from(at, "vonage", cfg, "a number or sender id")?;
        Ok(Vonage {
            client,
            base: base_or(cfg, "https://rest.nexmo.com"),
            key,
            secret,
            from,
        })
    }
}

#[async_trait]
impl Gateway for Vonage {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        let to = m.to.trim_start_matches('+');
        let mut form = vec![
            ("api_key", self.key.expose_secret()),
            ("api_secret", self.secret.expose_secret()),
            ("from", self.from.as_str()),
            ("to", to),
            ("text", m.text),
        ];
        if m.info.encoding == Encoding::Ucs2 {
            form.push(("type", "unicode"));
        }
        form.push(("client-ref", m.delivery.idempotency_key.as_str()));
        let request = self.client.post(format!("{}/sms/json", self.base)).form(&form);
        let reply = http::send(request).await.map_err(|f| failure(PROVIDER, f))?;
        if !reply.status.is_success() {
            return Err(http::classify_status(PROVIDER, &reply, &reply.excerpt()));
        }
        let headers = &reply.headers;
        // The documented answer: `messages[]`, one entry per part, each with a `status`.
        let answer: Option<Answer> = reply.json().and_then(|v| serde_json::from_value(v).ok());
        let Some(answer) = answer.filter(|a| !a.messages.is_empty()) else {
            return Err(reply.unexpected(PROVIDER, Some(PROVIDER.into())));
        };
        // Accepted parts must carry their id; an accepted part without one is not the answer
        // Vonage documents.
        if answer
            .messages
            .iter()
            .any(|p| p.code() == Some(0) && p.message_id.as_deref().is_none_or(str::is_empty))
        {
            return Err(reply.unexpected(PROVIDER, Some(PROVIDER.into())));
        }
        let total = answer.messages.len();
        let accepted: Vec<&str> = answer
            .messages
            .iter()
            .filter(|p| p.code() == Some(0))
            .filter_map(|p| p.message_id.as_deref())
            .collect();
        let Some((i, bad)) = answer.messages.iter().enumerate().find(|(_, p)| p.code() != Some(0)) else {
            return Ok(Receipt {
                provider_id: Some(http::excerpt(&accepted.join(","), 400)),
                route: Some(PROVIDER.into()),
            });
        };
        let code = bad.code();
        let what = format!(
            "{PROVIDER} status {}: {} (part {} of {total})",
            code.map_or_else(|| format!("{:?}", bad.status), |c| c.to_string()),
            bad.error_text
                .as_deref()
                .map(|t| http::excerpt(t, 300))
                .unwrap_or_else(|| status_name(code.unwrap_or(u32::MAX)).to_string()),
            i + 1
        );
        let route = Some(PROVIDER.to_string());
        Err(match code {
            Some(c) if HALT.contains(&c) => DeliveryError::Halt { message: what },
            // A retry would send the accepted parts again.
            _ if !accepted.is_empty() => DeliveryError::Permanent {
                message: format!(
                    "{what}; {} part(s) were accepted ({}), so it is not retried",
                    accepted.len(),
                    accepted.join(",")
                ),
                route,
            },
            Some(c) if RETRY.contains(&c) => DeliveryError::Transient {
                message: what,
                retry_after: http::retry_after(headers),
                route,
            },
            _ => DeliveryError::Permanent { message: what, route },
        })
    }

    async fn check(&self) -> Probe {
        let subject = format!("{PROVIDER} account");
        let request = self
            .client
            .get(format!("{}/account/get-balance", self.base))
            .basic_auth(self.key.expose_secret(), Some(self.secret.expose_secret()));
        let (ok, detail) = match http::send(request).await {
            Err(e) => (false, format!("cannot reach {}: {e}", self.base)),
            Ok(a) => {
                let v: serde_json::Value = a.json().unwrap_or_default();
                match (a.status.is_success(), v["value"].as_f64()) {
                    (true, Some(balance)) => (
                        balance > 0.0,
                        format!("credentials accepted; balance {}", super::money(balance, None)),
                    ),
                    _ => (false, format!("HTTP {}: {}", a.status.as_u16(), a.excerpt())),
                }
            }
        };
        Probe { subject, ok, detail }
    }
}
