//! A gateway described in the config: `url`, `method`, `headers`, a handlebars `body_template`
//! rendered as JSON (values JSON-string-escaped) or as a form (values form-urlencoded), the
//! HTTP statuses that mean "accepted" and a JSON pointer to the message id in the answer.
//! Anything else is classified by HTTP status: 408/429/5xx are retried (honouring
//! Retry-After), 401/403 stop the channel, the rest fail the delivery.

use async_trait::async_trait;
use handlebars::Handlebars;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::ProviderConfig;
use super::{Gateway, Outgoing, base, failure};
use crate::channel::http;
use crate::channel::{DeliveryError, Probe, Receipt};
use crate::render::sms::Encoding;
use crate::secrets::secret_from_env;

const PROVIDER: &str = "generic";
const JSON_BODY: &str = r#"{"to":"{{to}}","from":"{{from}}","text":"{{text}}"}"#;
const FORM_BODY: &str = "to={{to}}&from={{from}}&text={{text}}";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Form,
}

pub struct Generic {
    client: reqwest::Client,
    url: String,
    method: Method,
    headers: HeaderMap,
    body: Handlebars<'static>,
    format: Format,
    id_pointer: Option<String>,
    success: Vec<u16>,
    from: String,
}

impl Generic {
    pub fn new(at: &str, cfg: &ProviderConfig, client: reqwest::Client) -> Result<Generic, String> {
        let url = match (cfg.url.as_deref(), cfg.base_url.as_deref()) {
            (Some(u), _) if u.starts_with("https://") || u.starts_with("http://") => u.to_string(),
            (Some(path), Some(base)) => format!("{}/{}", self::base(base), path.trim_start_matches('/')),
            (Some(u), None) => {
                return Err(format!(
                    "{at} url {u:?} is not absolute: give a full https:// URL, or base_url and a path"
                ));
            }
            (None, Some(base)) => base.to_string(),
            (None, None) => return Err(format!("{at} provider \"generic\" needs url (or base_url)")),
        };
        http::check_url(&format!("{at} url"), &url)?;
        let method = cfg.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("{at} method {method:?} is not an HTTP method"))?;

        let token = match &cfg.auth_token_env {
            Some(var) => Some(secret_from_env(var, &format!("{at} auth_token_env"))?),
            None => None,
        };
        let mut headers = HeaderMap::new();
        let mut token_used = false;
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("{at} headers: {k:?} is not a header name"))?;
            let uses_token = v.contains("{token}");
            let value = match (&token, uses_token) {
                (Some(t), true) => v.replace("{token}", t.expose_secret()),
                (None, true) => return Err(format!("{at} headers.{k} uses {{token}} but auth_token_env is not set")),
                (_, false) => v.clone(),
            };
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| format!("{at} headers.{k}: not a valid header value"))?;
            if uses_token {
                value.set_sensitive(true);
                token_used = true;
            }
            headers.insert(name, value);
        }
        if let Some(t) = &token
            && !token_used
        {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", t.expose_secret()))
                .map_err(|_| format!("{at} auth_token_env: the token is not a valid header value"))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }

        let format = match cfg.body_format.as_deref() {
            None | Some("json") => Format::Json,
            Some("form") => Format::Form,
            Some(f) => return Err(format!("{at} body_format {f:?}: expected \"json\" or \"form\"")),
        };
        let mut body = Handlebars::new();
        body.set_strict_mode(true);
        match format {
            Format::Json => body.register_escape_fn(crate::escape::json_str),
            Format::Form => body.register_escape_fn(http::form_encode),
        }
        let template = cfg.body_template.as_deref().unwrap_or(match format {
            Format::Json => JSON_BODY,
            Format::Form => FORM_BODY,
        });
        body.register_template_string("body", template)
            .map_err(|e| format!("{at} body_template: {}", e.reason()))?;

        let id_pointer = cfg.id_pointer.as_deref().filter(|p| !p.is_empty()).map(str::to_string);
        if let Some(p) = &id_pointer
            && !p.starts_with('/')
        {
            return Err(format!(
                "{at} id_pointer {p:?} is not a JSON pointer (RFC 6901): start it with '/', e.g. \"/messages/0/id\""
            ));
        }
        let success = cfg
            .success_statuses
            .as_deref()
            .map_or_else(|| vec![200, 201, 202, 204], <[u16]>::to_vec);
        if success.is_empty() || success.iter().any(|s| !(100..=599).contains(s)) {
            return Err(format!("{at} success_statuses must be HTTP statuses (100-599)"));
        }
        let g = Generic {
            client,
            url,
            method,
            headers,
            body,
            format,
            id_pointer,
            success,
            from: cfg.from.clone().unwrap_or_default(),
        };
        // Render once now, so a template that cannot produce a valid body stops the run
        // before anything is sent.
        g.render_body(&sample())
            .map_err(|e| format!("{at} body_template: {e}"))?;
        Ok(g)
    }

    fn context(&self, m: &Outgoing<'_>) -> Value {
        json!({
            "to": m.to,
            "to_digits": m.to.trim_start_matches('+'),
            "from": self.from,
            "text": m.text,
            "encoding": m.info.encoding.as_str(),
            "unicode": m.info.encoding == Encoding::Ucs2,
            "segments": m.info.segments,
            "name": m.delivery.name,
            "reference": m.delivery.idempotency_key,
            "message_id": m.delivery.message_id,
        })
    }

    fn render_body(&self, ctx: &Value) -> Result<String, String> {
        let body = self.body.render("body", ctx).map_err(|e| e.reason().to_string())?;
        if self.format == Format::Json {
            serde_json::from_str::<Value>(&body)
                .map_err(|e| format!("the rendered body is not JSON ({e}): {}", http::excerpt(&body, 200)))?;
        }
        Ok(body)
    }
}

/// A context like [`Generic::context`]'s, for validating the template at build time.
fn sample() -> Value {
    json!({
        "to": "+4915123456789", "to_digits": "4915123456789", "from": "Sender",
        "text": "Line \"one\"\nLine & two", "encoding": "GSM-7", "unicode": false, "segments": 1,
        "name": "Anna", "reference": "announce-run-1", "message_id": "run.1@announce.local",
    })
}

#[async_trait]
impl Gateway for Generic {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        let body = self
            .render_body(&self.context(m))
            .map_err(|e| DeliveryError::permanent(format!("{PROVIDER}: body_template: {e}")))?;
        let mut req = self
            .client
            .request(self.method.clone(), &self.url)
            .headers(self.headers.clone());
        if !self.headers.contains_key(CONTENT_TYPE) {
            req = req.header(
                CONTENT_TYPE,
                match self.format {
                    Format::Json => "application/json",
                    Format::Form => "application/x-www-form-urlencoded",
                },
            );
        }
        let answer = http::send(req.body(body)).await.map_err(|f| failure(PROVIDER, f))?;
        if !self.success.contains(&answer.status.as_u16()) {
            return Err(http::classify_status(
                PROVIDER,
                &answer,
                &format!("gateway answered {}", answer.excerpt()),
            ));
        }
        // Without `id_pointer` the configured statuses are the whole contract; with it, the
        // answer must be JSON holding the id there.
        let Some(p) = &self.id_pointer else {
            return Ok(Receipt {
                provider_id: None,
                route: Some(PROVIDER.into()),
            });
        };
        let id = match answer.json().as_ref().and_then(|v| v.pointer(p)) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(answer.unexpected(PROVIDER, Some(PROVIDER.into()))),
        };
        Ok(Receipt {
            provider_id: Some(http::excerpt(&id, 200)),
            route: Some(PROVIDER.into()),
        })
    }

    async fn check(&self) -> Probe {
        Probe {
            subject: format!("{PROVIDER} gateway"),
            ok: true,
            detail: format!(
                "config and body template valid; no credential check available for generic gateways \
                 ({} {} is only called when sending)",
                self.method, self.url
            ),
        }
    }
}
