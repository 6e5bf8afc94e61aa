//! The `mastodon` channel: one status per run, `POST {instance}/api/v1/statuses`
//! (docs.joinmastodon.org/methods/statuses/#create) with `Authorization: Bearer <token>` and the
//! form parameters `status`, `visibility` (and `language`).
//!
//! Every attempt carries `Idempotency-Key: <delivery's idempotency key>` (the same on every retry
//! and resume): Mastodon keeps keys for an hour and answers a repeat with the original status,
//! so a retry after a timeout or a 5xx cannot double-post. Beyond that hour it could, so
//! `resend_is_safe` stays false and `resume` does not blindly re-send `unknown` ones.
//!
//! Length: Mastodon counts every URL as 23 characters (StatusLengthValidator); the text is
//! checked against `max_characters` (default 500) when the run is validated, before anything is
//! sent. Errors are `{"error": "..."}`: 401 and 422 are permanent; 429 waits for
//! `X-RateLimit-Reset` (ISO 8601); 5xx and timeouts are retried.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use crate::channel::http;
use crate::channel::{
    BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig, Delivery, DeliveryError, Meta, Probe, Reach,
    Receipt, Rendered, Stat,
};
use crate::render::{Context, Templates};
use crate::secrets::secret_from_env;
use crate::settings::{Common, Keyed, keyed};

/// Mastodon's default `configuration.statuses.max_characters`.
pub const DEFAULT_MAX_CHARACTERS: usize = 500;
/// "All URLs are counted as 23 characters" (characters_reserved_per_url).
const URL_WEIGHT: usize = 23;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MastodonConfig {
    pub instance: String,
    pub access_token_env: String,
    #[serde(default, deserialize_with = "keyed")]
    pub visibility: Visibility,
    pub max_characters: Option<usize>,
    /// ISO 639 language of the posts, e.g. "de".
    pub language: Option<String>,
}

/// Who sees the post (`visibility` of the statuses API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Public,
    Unlisted,
    Private,
    Direct,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
            Visibility::Direct => "direct",
        }
    }
}

impl Keyed for Visibility {
    const KEY: &'static str = "visibility";
}

impl BuiltinTemplates for MastodonConfig {
    const TEMPLATES: &'static [Builtin] = &[("mastodon.hbs", include_str!("mastodon.hbs"))];
}

impl ChannelConfig for MastodonConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        vec![("instance", self.instance.as_str())]
    }

    fn build(&self, name: &str, common: &Common, _ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Mastodon::new(name, common, self)?))
    }
}

pub struct Mastodon {
    meta: Meta,
    token: SecretString,
    instance: reqwest::Url,
    host: String,
    visibility: Visibility,
    language: Option<String>,
    max_characters: usize,
    template: String,
    client: reqwest::Client,
    timeout: Duration,
}

/// Length as Mastodon counts it: URLs weigh 23 characters; `@user@domain` mentions count only
/// `@user`. Characters are Unicode scalar values, never fewer than Mastodon's grapheme count.
pub fn status_length(text: &str) -> usize {
    let mut n = 0;
    for (i, word) in text.split(|c: char| c.is_whitespace()).enumerate() {
        if i > 0 {
            n += 1; // the separator
        }
        if word.starts_with("https://") || word.starts_with("http://") {
            n += URL_WEIGHT;
        } else if let Some(rest) = word.strip_prefix('@')
            && let Some((user, domain)) = rest.split_once('@')
            && !user.is_empty()
            && domain.contains('.')
        {
            n += 1 + user.chars().count();
        } else {
            n += word.chars().count();
        }
    }
    n
}

impl Mastodon {
    pub fn new(name: &str, common: &Common, cfg: &MastodonConfig) -> Result<Mastodon, String> {
        let at = format!("[channels.{name}]");
        let visibility = cfg.visibility;
        let max_characters = cfg.max_characters.unwrap_or(DEFAULT_MAX_CHARACTERS);
        if max_characters == 0 {
            return Err(format!("{at} max_characters must be at least 1"));
        }
        let instance = http::check_url(&format!("{at} instance"), &cfg.instance)?;
        let token = secret_from_env(&cfg.access_token_env, &format!("{at} access_token_env"))?;
        let timeout = common.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        Ok(Mastodon {
            meta: Meta::new::<MastodonConfig>(name, Reach::Broadcast(http::host_of(&instance))).concurrency(1),
            token,
            host: http::host_of(&instance),
            instance,
            visibility,
            language: cfg.language.clone(),
            max_characters,
            template: common.template.clone().unwrap_or_else(|| "mastodon.hbs".into()),
            client: http::client(timeout)?,
            timeout,
        })
    }

    fn endpoint(&self, path: &str) -> reqwest::Url {
        let mut url = self.instance.clone();
        url.set_path(&format!("{}{path}", self.instance.path().trim_end_matches('/')));
        url
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.token.expose_secret())
    }

    fn classify(&self, answer: &http::Answer) -> DeliveryError {
        let route = Some(self.host.clone());
        let code = answer.status.as_u16();
        let headers = &answer.headers;
        let v: Value = answer.json().unwrap_or(Value::Null);
        let err = v["error"]
            .as_str()
            .map_or_else(|| answer.excerpt(), |e| http::excerpt(e, 300));
        let message = format!("{}: HTTP {code}: {err}", self.host);
        match code {
            429 => DeliveryError::Transient {
                message,
                retry_after: rate_limit_reset(headers).or_else(|| http::retry_after(headers)),
                route,
            },
            401 => DeliveryError::Permanent {
                message: format!("{message} (the access token was rejected; check access_token_env)"),
                route,
            },
            408 | 500..=599 => DeliveryError::Transient {
                message,
                retry_after: http::retry_after(headers),
                route,
            },
            _ => DeliveryError::Permanent { message, route },
        }
    }
}

/// `X-RateLimit-Reset: 2026-04-03T09:15:00.000Z` → time until then.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ratelimit-reset")?.to_str().ok()?;
    let at: jiff::Timestamp = v.trim().parse().ok()?;
    http::until(at)
}

#[async_trait]
impl Channel for Mastodon {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let text = templates.render_ctx(&self.template, ctx)?.trim().to_string();
        if text.is_empty() {
            return Err(format!("{}: the Mastodon post is empty", self.template));
        }
        let n = status_length(&text);
        if n > self.max_characters {
            return Err(format!(
                "the Mastodon post is {n} characters (URLs count 23), more than max_characters = {}; add a shorter `summary` or shorten the template",
                self.max_characters
            ));
        }
        Ok(Rendered::plain(
            text,
            vec![Stat::limited("Mastodon characters", n, self.max_characters)],
        ))
    }

    async fn deliver(&self, d: &Delivery, msg: &Rendered) -> Result<Receipt, DeliveryError> {
        let mut form: Vec<(&str, &str)> = vec![("status", &msg.text), ("visibility", self.visibility.as_str())];
        if let Some(l) = &self.language {
            form.push(("language", l));
        }
        let request = self
            .client
            .post(self.endpoint("/api/v1/statuses"))
            .header(AUTHORIZATION, self.bearer())
            .header("Idempotency-Key", &d.idempotency_key)
            .form(&form);
        // Safe to retry: the same Idempotency-Key returns the first status instead of a new one.
        let answer = http::send(request).await.map_err(|f| {
            f.into_delivery(&self.host, |m| DeliveryError::Transient {
                message: m,
                retry_after: None,
                route: Some(self.host.clone()),
            })
        })?;
        if !answer.status.is_success() {
            return Err(self.classify(&answer));
        }
        // The documented answer is the Status entity, with its `id`.
        match answer.json().as_ref().and_then(|v| v["id"].as_str()) {
            Some(id) if !id.is_empty() => Ok(Receipt {
                provider_id: Some(http::excerpt(id, 100)),
                route: Some(self.host.clone()),
            }),
            _ => Err(answer.unexpected("Mastodon", Some(self.host.clone()))),
        }
    }

    async fn check(&self) -> Vec<Probe> {
        let mut out = Vec::new();
        let request = self
            .client
            .get(self.endpoint("/api/v1/accounts/verify_credentials"))
            .header(AUTHORIZATION, self.bearer());
        let (ok, detail) = match http::send(request).await {
            Err(e) => (false, format!("verify_credentials: {e}")),
            Ok(a) => {
                let v: Value = a.json().unwrap_or(Value::Null);
                if a.status.is_success() {
                    let acct = http::excerpt(v["acct"].as_str().unwrap_or("?"), 100);
                    (
                        true,
                        format!("posts as @{acct} on {} ({})", self.host, self.visibility.as_str()),
                    )
                } else {
                    let err = v["error"]
                        .as_str()
                        .map_or_else(|| a.excerpt(), |e| http::excerpt(e, 300));
                    (false, format!("verify_credentials: HTTP {}: {err}", a.status.as_u16()))
                }
            }
        };
        out.push(Probe {
            subject: self.name().to_string(),
            ok,
            detail,
        });
        // The instance's real limit, when it tells (GET /api/v2/instance, no auth needed).
        if ok
            && let Ok(a) = http::send(self.client.get(self.endpoint("/api/v2/instance"))).await
            && a.status.is_success()
            && let Some(v) = a.json()
            && let Some(max) = v["configuration"]["statuses"]["max_characters"].as_u64()
        {
            let max = max as usize;
            out.push(Probe {
                subject: format!("{} max_characters", self.name()),
                ok: self.max_characters <= max,
                detail: if self.max_characters <= max {
                    format!("instance allows {max}, configured {}", self.max_characters)
                } else {
                    format!(
                        "configured max_characters = {} but the instance allows only {max}",
                        self.max_characters
                    )
                },
            });
        }
        out
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        Some(self.timeout + Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_count_23_and_mentions_their_user() {
        assert_eq!(status_length("abc"), 3);
        let url = "https://example.org/a/very/long/path/that/is/much/longer/than/twenty-three";
        assert_eq!(status_length(&format!("see {url}")), 4 + 23);
        assert_eq!(status_length("hi @anna@mastodon.social"), 3 + 5);
        assert_eq!(status_length("Störung 🎉"), 9);
    }

    #[test]
    fn rate_limit_reset_is_read() {
        let mut h = HeaderMap::new();
        let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(60);
        h.insert("x-ratelimit-reset", at.to_string().parse().unwrap());
        let d = rate_limit_reset(&h).unwrap();
        assert!(d > Duration::from_secs(50) && d <= Duration::from_secs(60), "{d:?}");
    }
}
