//! Vonage Voice API: `POST /v1/calls` with JSON `to`, `from` (numbers as digits without `+`)
//! and an `ncco` of one `talk` action, `Authorization: Bearer <JWT>`: the application's JWT,
//! RS256-signed with its private key, claims `application_id`, `iat`, `exp`, `jti`. It answers
//! `201` with the call's `uuid`; errors are RFC 7807 `{type, title, detail, instance}`.
//! `GET /v1/calls/{uuid}` gives the call's `status`; `GET /v1/calls?page_size=1` is the
//! cheapest read a JWT authorises (the `check`).

use std::sync::Mutex;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{Api, Parts, Speech, base_or, place};
use crate::channel::http::{self, Answer};
use crate::channel::{BuildContext, DeliveryError, Probe, Receipt};

const PROVIDER: &str = "vonage";
/// How long a JWT is valid; a new one is made when less than [`JWT_MARGIN_SECS`] is left.
const JWT_LIFETIME_SECS: i64 = 15 * 60;
const JWT_MARGIN_SECS: i64 = 60;

pub struct Vonage {
    client: reqwest::Client,
    base: String,
    application_id: String,
    key: EncodingKey,
    /// The current JWT and when it expires (Unix seconds).
    jwt: Mutex<Option<(String, i64)>>,
    /// `from` without the `+`.
    from: String,
    speech: Speech,
    /// `voice` as Vonage's `style` number.
    style: Option<u32>,
}

/// The claims Vonage reads from an application JWT.
#[derive(serde::Serialize)]
struct Claims<'a> {
    application_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

impl Vonage {
    pub fn new(parts: Parts<'_>, ctx: &BuildContext) -> Result<Vonage, String> {
        let (at, cfg, speech) = (parts.at, parts.cfg, parts.speech);
        let application_id = cfg.application_id.clone().unwrap_or_default();
        if application_id.is_empty() || !application_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(format!(
                "{at} application_id {application_id:?} is not a Vonage application id (\"aaaaaaaa-bbbb-...\")"
            ));
        }
        let path = ctx.resolve(cfg.private_key_file.as_deref().unwrap_or_default());
        // The file's contents are a secret: messages name its path only.
        let pem = std::fs::read_to_string(&path)
            .map_err(|e| format!("{at} private_key_file {}: cannot read it: {e}", path.display()))?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
            format!(
                "{at} private_key_file {} is not an RSA private key in PEM (the application's \"private.key\")",
                path.display()
            )
        })?;
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            crate::secrets::register_secret(line.trim());
        }
        let style = match speech.voice.as_deref() {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
                format!("{at} voice {v:?}: for vonage, voice is the talk action's style number (0, 1, ...)")
            })?),
        };
        Ok(Vonage {
            client: parts.client,
            base: base_or(cfg, "https://api.nexmo.com"),
            application_id,
            key,
            jwt: Mutex::new(None),
            from: parts.from.trim_start_matches('+').to_string(),
            speech,
            style,
        })
    }

    /// A valid JWT of the application, made anew shortly before the last one expires. Each one
    /// is registered as a secret: it authorises calls until it expires.
    fn jwt(&self) -> Result<String, String> {
        let now = jiff::Timestamp::now().as_second();
        let mut current = self.jwt.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, exp)) = current.as_ref()
            && *exp - JWT_MARGIN_SECS > now
        {
            return Ok(token.clone());
        }
        let claims = Claims {
            application_id: &self.application_id,
            iat: now,
            exp: now + JWT_LIFETIME_SECS,
            jti: uuid::Uuid::now_v7().to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| format!("{PROVIDER}: cannot sign the JWT: {e}"))?;
        crate::secrets::register_secret(&token);
        *current = Some((token.clone(), claims.exp));
        Ok(token)
    }

    fn get(&self, url: String) -> Result<reqwest::RequestBuilder, String> {
        Ok(self.client.get(url).bearer_auth(self.jwt()?))
    }

    /// The RFC 7807 answer as a message: "vonage: title: detail (type)".
    fn error_text(answer: &Answer) -> String {
        let v: Value = answer.json().unwrap_or_default();
        let part = |k: &str| v[k].as_str().map(|s| http::excerpt(s, 200));
        match (part("title"), part("detail")) {
            (Some(t), Some(d)) => format!("{t}: {d}"),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => answer.excerpt(),
        }
    }

    fn classify(answer: &Answer) -> DeliveryError {
        let what = Self::error_text(answer);
        let v: Value = answer.json().unwrap_or_default();
        let kind = v["type"].as_str().unwrap_or_default();
        // No credit: no other call of the channel can go through either.
        if kind.ends_with("low-balance") || kind.ends_with("out-of-credit") {
            return DeliveryError::Halt {
                message: format!(
                    "{PROVIDER}: {what} (HTTP {}): top up the account",
                    answer.status.as_u16()
                ),
            };
        }
        http::classify_status(PROVIDER, answer, &what)
    }
}

#[async_trait]
impl Api for Vonage {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    async fn call(&self, to: &str, text: &str, language: &str) -> Result<Receipt, DeliveryError> {
        let mut talk = json!({
            "action": "talk",
            "text": text,
            "language": language,
            "loop": self.speech.repeat,
        });
        if let Some(style) = self.style {
            talk["style"] = json!(style);
        }
        let body = json!({
            "to": [{"type": "phone", "number": to.trim_start_matches('+')}],
            "from": {"type": "phone", "number": self.from},
            "ncco": [talk],
        });
        let jwt = self.jwt().map_err(DeliveryError::permanent)?;
        let request = self
            .client
            .post(format!("{}/v1/calls", self.base))
            .bearer_auth(jwt)
            .json(&body);
        // The documented success answer: {"uuid", "status", "direction", "conversation_uuid"}.
        place(PROVIDER, request, "uuid", Self::classify).await
    }

    async fn check(&self) -> Probe {
        let subject = format!("{PROVIDER} application {}", self.application_id);
        let request = match self.get(format!("{}/v1/calls?page_size=1", self.base)) {
            Ok(r) => r,
            Err(e) => {
                return Probe {
                    subject,
                    ok: false,
                    detail: e,
                };
            }
        };
        let (ok, detail) = match http::send(request).await {
            Err(e) => (false, format!("cannot reach {}: {e}", self.base)),
            Ok(a) if a.status.is_success() => (true, format!("JWT accepted; calls from {}", self.from)),
            Ok(a) => (false, format!("HTTP {}: {}", a.status.as_u16(), Self::error_text(&a))),
        };
        Probe { subject, ok, detail }
    }

    async fn status(&self, provider_id: &str) -> Result<String, String> {
        if provider_id.is_empty() || !provider_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(format!("{provider_id:?} is not a Vonage call uuid"));
        }
        let request = self.get(format!("{}/v1/calls/{provider_id}", self.base))?;
        let a = http::send(request).await.map_err(|e| format!("{PROVIDER}: {e}"))?;
        if !a.status.is_success() {
            return Err(format!(
                "{PROVIDER}: {} (HTTP {})",
                Self::error_text(&a),
                a.status.as_u16()
            ));
        }
        a.json()
            .and_then(|v| v["status"].as_str().map(|s| http::excerpt(s, 40)))
            .ok_or_else(|| a.unexpected_text(PROVIDER))
    }
}
