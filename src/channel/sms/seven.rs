//! seven.io (formerly sms77): `POST /api/sms` with `X-Api-Key`, a form body and `json=1`, which
//! makes the answer a JSON document whose `success` is a numeric return code ("100" = OK).
//! Without `json=1` the answer is the bare code; both are understood.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::ProviderConfig;
use super::{Gateway, Outgoing, base_or, failure, required_secret};
use crate::channel::http;
use crate::channel::{DeliveryError, Probe, Receipt};
use crate::render::sms::Encoding;

const PROVIDER: &str = "seven";

pub struct Seven {
    client: reqwest::Client,
    base: String,
    key: SecretString,
    from: Option<String>,
}

fn code_name(code: u32) -> &'static str {
    match code {
        100 => "OK",
        101 => "sending failed for at least one recipient",
        11 => "SMS carrier temporarily not available",
        201 => "invalid sender",
        202 => "invalid recipient number",
        301 => "`to` missing",
        305 => "`text` missing",
        401 => "text too long",
        402 => "reload lock: the same text went to this number moments ago",
        403 => "daily limit for this number reached",
        500 => "insufficient credit",
        600 => "carrier delivery failed",
        700 => "unknown error",
        900 => "authentication failed",
        901 => "invalid message id",
        902 => "API access disabled for this key",
        903 => "sender IP not allowed",
        _ => "unknown return code",
    }
}

/// A number that may come as a JSON number or a string.
fn as_code(v: &Value) -> Option<u32> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        v => v.as_u64().and_then(|n| u32::try_from(n).ok()),
    }
}

fn as_id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl Seven {
    pub fn new(at: &str, cfg: &ProviderConfig, client: reqwest::Client) -> Result<Seven, String> {
        Ok(Seven {
            client,
            base: base_or(cfg, "https://gateway.seven.io"),
            key: required_secret(at, "seven", "api_key_env", cfg.api_key_env.as_deref())?,
            from: cfg.from.clone().filter(|f| !f.trim().is_empty()),
        })
    }

    fn classify(code: u32, detail: Option<String>) -> DeliveryError {
        let message = format!(
            "{PROVIDER} {code}: {}",
            detail.unwrap_or_else(|| code_name(code).to_string())
        );
        let route = Some(PROVIDER.to_string());
        match code {
            // Credit, credentials, sender: every other delivery would fail the same way.
            500 | 900 | 902 | 903 | 201 => DeliveryError::Halt { message },
            11 | 600 | 700 => DeliveryError::Transient {
                message,
                retry_after: None,
                route,
            },
            _ => DeliveryError::Permanent { message, route },
        }
    }
}

#[async_trait]
impl Gateway for Seven {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        let mut form = vec![("to", m.to), ("text", m.text)];
        if let Some(f) = &self.from {
            form.push(("from", f.as_str()));
        }
        if m.info.encoding == Encoding::Ucs2 {
            form.push(("unicode", "1"));
        }
        form.push(("foreign_id", m.delivery.idempotency_key.as_str()));
        form.push(("json", "1"));
        let request = self
            .client
            .post(format!("{}/api/sms", self.base))
            .header("X-Api-Key", self.key.expose_secret())
            .form(&form);
        let reply = http::send(request).await.map_err(|f| failure(PROVIDER, f))?;
        if !reply.status.is_success() {
            return Err(http::classify_status(PROVIDER, &reply, &reply.excerpt()));
        }
        // With `json=1` the documented answer is a document with `success` and `messages[]`; a
        // bare return code (a JSON number) only for errors.
        let Some(v) = reply.json() else {
            return Err(reply.unexpected(PROVIDER, Some(PROVIDER.into())));
        };
        let (code, message) = match &v {
            Value::Object(_) => (as_code(&v["success"]), v["messages"].get(0).cloned()),
            other => (as_code(other), None),
        };
        let Some(code) = code else {
            return Err(reply.unexpected(PROVIDER, Some(PROVIDER.into())));
        };
        // "100" is only the documented success with the message's id (a failed message says so).
        if code == 100
            && message
                .as_ref()
                .is_none_or(|m| m["success"] != Value::Bool(false) && as_id(&m["id"]).is_none())
        {
            return Err(reply.unexpected(PROVIDER, Some(PROVIDER.into())));
        }
        let message = message.unwrap_or(Value::Null);
        if code == 100 && message["success"] != Value::Bool(false) {
            return Ok(Receipt {
                provider_id: as_id(&message["id"]).map(|id| http::excerpt(&id, 200)),
                route: Some(PROVIDER.into()),
            });
        }
        // 101 (or a message that failed): the message entry says why.
        let inner = if code == 100 || code == 101 {
            as_code(&message["error"])
        } else {
            None
        };
        let detail = message["error_text"].as_str().map(|t| http::excerpt(t, 300));
        Err(Self::classify(inner.unwrap_or(code), detail))
    }

    async fn check(&self) -> Probe {
        let subject = format!("{PROVIDER} account");
        let request = self
            .client
            .get(format!("{}/api/balance", self.base))
            .header("X-Api-Key", self.key.expose_secret());
        let (ok, detail) = match http::send(request).await {
            Err(e) => (false, format!("cannot reach {}: {e}", self.base)),
            Ok(a) => {
                let v: Value = a.json().unwrap_or_default();
                let balance = match &v {
                    Value::Object(_) => v["amount"]
                        .as_f64()
                        .map(|x| (x, v["currency"].as_str().map(|c| http::excerpt(c, 10)))),
                    // A bare number: a balance has decimals, an error is one of the codes.
                    Value::Number(n) if !matches!(n.as_u64(), Some(900 | 902 | 903)) => n.as_f64().map(|x| (x, None)),
                    _ => None,
                };
                match (a.status.is_success(), balance) {
                    (true, Some((amount, currency))) => (
                        amount > 0.0,
                        format!(
                            "credentials accepted; balance {}",
                            super::money(amount, currency.as_deref())
                        ),
                    ),
                    _ => {
                        let code = as_code(&v).map(|c| format!(" ({})", code_name(c))).unwrap_or_default();
                        (false, format!("HTTP {}: {}{code}", a.status.as_u16(), a.excerpt()))
                    }
                }
            }
        };
        Probe { subject, ok, detail }
    }
}
