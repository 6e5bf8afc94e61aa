//! The `webhook` channel: one POST per run of a JSON body to a URL — team chat (with a `preset`
//! for Slack, Discord, Teams, Mattermost or Google Chat) or any system that takes webhooks.
//!
//! - Body: without a preset, the `webhook.json.hbs` template (values JSON-escaped by the
//!   registry); the result must parse as JSON, or the run is refused before anything is sent.
//!   With a preset, the text template `webhook.chat.hbs` gives the message text and the body is
//!   built in the shape that API documents (see `presets`).
//! - Signing (optional, `secret_env`): Standard Webhooks v1 — `webhook-id` (the delivery's
//!   idempotency key: the same on every retry and resume, so receivers deduplicate),
//!   `webhook-timestamp` (this attempt), `webhook-signature: v1,<base64>`.
//! - Outcome: 2xx sent; 3xx failed (redirects are never followed); 410 failed for good (the
//!   endpoint is gone); 408/425/429/500/502/503/504, timeouts and lost connections are retried,
//!   never sooner than Retry-After; other answers are permanent.
//!
//! The URL itself may hold a token (Slack, Discord, Teams URLs do): messages name only its host.

// The shared HTTP layer, under its old path for the status page's `tail`.
pub use crate::channel::http;
mod config;
pub mod presets;
pub mod sign;

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::channel::{Channel, Delivery, DeliveryError, Meta, Probe, Reach, Receipt, Rendered, Stat};
use crate::render::{Context, Templates};
use crate::secrets::secret_from_env;
use crate::settings::Common;

use presets::{ChatMessage, Preset};
use sign::Signer;

pub use config::WebhookConfig;

/// Standard Webhooks suggests a request timeout of 15-30 s.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Headers announce sets itself; `headers` may not replace them.
const RESERVED: [&str; 5] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "content-length",
    "host",
];

pub struct Webhook {
    meta: Meta,
    /// Never printed: it may contain a token.
    url: reqwest::Url,
    host: String,
    signer: Option<Signer>,
    preset: Option<Preset>,
    headers: HeaderMap,
    template: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl Webhook {
    pub fn new(name: &str, common: &Common, cfg: &WebhookConfig) -> Result<Webhook, String> {
        let at = format!("[channels.{name}]");
        let url_text = match (&cfg.url, &cfg.url_env) {
            (Some(u), None) => u.clone(),
            (None, Some(var)) => {
                use secrecy::ExposeSecret;
                secret_from_env(var, &format!("{at} url_env"))?
                    .expose_secret()
                    .to_string()
            }
            (Some(_), Some(_)) => return Err(format!("{at} set either url or url_env, not both")),
            (None, None) => return Err(format!("{at} needs url (or url_env naming a variable that holds it)")),
        };
        // The message must not repeat the URL: it may contain a token.
        let url = http::check_url(&format!("{at} the webhook URL"), &url_text)?;
        let host = http::host_of(&url);
        let signer = match &cfg.secret_env {
            Some(var) => Some(
                Signer::new(&secret_from_env(var, &format!("{at} secret_env"))?)
                    .map_err(|e| format!("{at} secret_env {var}: {e}"))?,
            ),
            None => None,
        };
        let preset = cfg.preset;
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("{at} headers: {k:?} is not a valid header name"))?;
            if RESERVED.contains(&name.as_str()) {
                return Err(format!("{at} headers: {k} is set by announce and cannot be configured"));
            }
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("{at} headers: the value of {k} is not a valid header value"))?;
            headers.insert(name, value);
        }
        let template = common.template.clone().unwrap_or_else(|| {
            if preset.is_some() {
                "webhook.chat.hbs"
            } else {
                "webhook.json.hbs"
            }
            .to_string()
        });
        let timeout = common.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        Ok(Webhook {
            meta: Meta::new::<WebhookConfig>(name, Reach::Broadcast(host.clone())).concurrency(1),
            url,
            host,
            signer,
            preset,
            headers,
            template,
            client: http::client(timeout)?,
            timeout,
        })
    }

    fn render_body(&self, templates: &Templates, ctx: &Context) -> Result<String, String> {
        if let Some(preset) = self.preset {
            let text = templates.render_ctx(&self.template, ctx)?;
            let msg = ChatMessage {
                title: ctx.data()["title"].as_str().unwrap_or_default(),
                text: text.trim(),
                link: ctx.data()["link"].as_str(),
            };
            let body = preset
                .body(&msg)
                .map_err(|e| format!("preset {}: {e}", preset.name()))?;
            return Ok(body.to_string());
        }
        let mut data = ctx.data().clone();
        if let Value::Object(m) = &mut data {
            let now = jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now());
            m.insert("timestamp".into(), Value::String(now.to_string()));
        }
        let body = templates.render(&self.template, &data)?;
        if let Err(e) = serde_json::from_str::<Value>(&body) {
            return Err(format!(
                "{}: the rendered webhook body is not valid JSON ({e}); values are JSON-escaped only in templates named *.json.hbs",
                self.template
            ));
        }
        Ok(body.trim().to_string())
    }

    fn classify(&self, answer: &http::Answer) -> DeliveryError {
        let route = Some(self.host.clone());
        let code = answer.status.as_u16();
        let detail = if answer.body.iter().all(u8::is_ascii_whitespace) {
            String::new()
        } else {
            format!(": {}", answer.excerpt())
        };
        match code {
            410 => DeliveryError::Permanent {
                message: format!(
                    "{}: HTTP 410 Gone: the endpoint was removed; not retried{detail}",
                    self.host
                ),
                route,
            },
            408 | 425 | 429 | 500 | 502 | 503 | 504 => DeliveryError::Transient {
                message: format!("{}: HTTP {code}{detail}", self.host),
                retry_after: answer.retry_after(),
                route,
            },
            _ => DeliveryError::Permanent {
                message: format!("{}: HTTP {code}{detail}", self.host),
                route,
            },
        }
    }
}

#[async_trait]
impl Channel for Webhook {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let body = self.render_body(templates, ctx)?;
        let mut stats = vec![Stat::new("webhook body bytes", body.len())];
        if let Some(p) = self.preset {
            stats.push(Stat::new("webhook preset", p.name()));
        }
        stats.push(Stat::new(
            "webhook signature",
            if self.signer.is_some() {
                "Standard Webhooks v1"
            } else {
                "none"
            },
        ));
        Ok(Rendered::plain(body, stats))
    }

    async fn deliver(&self, d: &Delivery, msg: &Rendered) -> Result<Receipt, DeliveryError> {
        let body = msg.text.clone().into_bytes();
        let id = d.idempotency_key.as_str();
        let ts = jiff::Timestamp::now().as_second();
        let mut req = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .headers(self.headers.clone())
            .header("webhook-id", id)
            .header("webhook-timestamp", ts.to_string());
        if let Some(s) = &self.signer {
            req = req.header("webhook-signature", s.sign(id, ts, &body));
        }
        // Receivers deduplicate on webhook-id, so a retry after a timeout is safe.
        let answer = http::send(req.body(body)).await.map_err(|f| {
            f.into_delivery(&self.host, |m| DeliveryError::Transient {
                message: m,
                retry_after: None,
                route: Some(self.host.clone()),
            })
        })?;
        if answer.status.is_success() {
            return Ok(Receipt {
                provider_id: Some(id.to_string()),
                route: Some(self.host.clone()),
            });
        }
        Err(self.classify(&answer))
    }

    async fn check(&self) -> Vec<Probe> {
        let sig = if self.signer.is_some() {
            "signed (Standard Webhooks v1)"
        } else {
            "unsigned"
        };
        let preset = self
            .preset
            .map_or("JSON template".to_string(), |p| format!("preset {}", p.name()));
        vec![Probe {
            subject: self.name().to_string(),
            ok: true,
            detail: format!(
                "POST to {} ({preset}, {sig}); no probe without sending: a webhook has no request without side effects",
                self.host
            ),
        }]
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        Some(self.timeout + Duration::from_secs(5))
    }
}
