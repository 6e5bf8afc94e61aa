//! The `telegram` channel: Bot API `sendMessage` to each configured chat (core.telegram.org/bots/
//! api#sendmessage) — one delivery per chat id, so one blocked chat does not fail the others.
//!
//! The Bot API takes the token in the URL path (`/bot<TOKEN>/sendMessage`); there is no header
//! alternative. So the URL is never printed: errors are built without it (reqwest's
//! `without_url`) and name the API host only.
//!
//! Answers (`{"ok":false,"error_code":..,"description":..,"parameters":{..}}`): 429 with
//! `parameters.retry_after` is retried no sooner; 400 with `parameters.migrate_to_chat_id` (a
//! group became a supergroup) fails with the new id to put in `chat_ids`; 403 (bot blocked,
//! kicked) fails for that chat; 401/404 (token rejected) stop the channel; 5xx are retried. A
//! timeout after the request left is `unknown`: Telegram has no idempotency key, and a blind
//! retry could post twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::channel::http;
use crate::channel::{
    BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig, Delivery, DeliveryError, Meta, Probe, Reach,
    Receipt, Rendered, Stat,
};
use crate::render::{Context, Templates};
use crate::secrets::secret_from_env;
use crate::settings::{Common, Keyed, keyed};

/// "Text of the message to be sent, 1-4096 characters after entities parsing."
pub const MAX_TEXT: usize = 4096;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub bot_token_env: String,
    pub chat_ids: Vec<String>,
    pub base_url: Option<String>,
    /// "HTML" (uses the HTML-escaped telegram.html.hbs), or "MarkdownV2" / "Markdown" with your
    /// own `template`.
    #[serde(default, deserialize_with = "keyed")]
    pub parse_mode: Option<ParseMode>,
    /// Send silently (no notification sound).
    #[serde(default)]
    pub disable_notification: bool,
}

/// Telegram's `parse_mode`: how the Bot API reads the text's markup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ParseMode {
    #[serde(rename = "HTML")]
    Html,
    MarkdownV2,
    Markdown,
}

impl ParseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseMode::Html => "HTML",
            ParseMode::MarkdownV2 => "MarkdownV2",
            ParseMode::Markdown => "Markdown",
        }
    }
}

impl Keyed for ParseMode {
    const KEY: &'static str = "parse_mode";
}

impl BuiltinTemplates for TelegramConfig {
    const TEMPLATES: &'static [Builtin] = &[
        ("telegram.hbs", include_str!("telegram.hbs")),
        ("telegram.html.hbs", include_str!("telegram.html.hbs")),
    ];
}

impl ChannelConfig for TelegramConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.base_url.iter().map(|u| ("base_url", u.as_str())).collect()
    }

    fn build(&self, name: &str, common: &Common, _ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(Telegram::new(name, common, self)?))
    }
}

pub struct Telegram {
    meta: Meta,
    token: SecretString,
    base: reqwest::Url,
    host: String,
    chat_ids: Vec<String>,
    parse_mode: Option<ParseMode>,
    disable_notification: bool,
    template: String,
    client: reqwest::Client,
    timeout: Duration,
}

/// `chat_id`: "Unique identifier for the target chat or username of the target channel (in the
/// format @channelusername)".
fn valid_chat_id(s: &str) -> bool {
    if let Some(user) = s.strip_prefix('@') {
        (4..=32).contains(&user.len()) && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    } else {
        s.parse::<i64>().is_ok()
    }
}

impl Telegram {
    pub fn new(name: &str, common: &Common, cfg: &TelegramConfig) -> Result<Telegram, String> {
        let at = format!("[channels.{name}]");
        if cfg.chat_ids.is_empty() {
            return Err(format!(
                "{at} chat_ids is empty: list at least one chat id or @channelusername"
            ));
        }
        let mut chat_ids: Vec<String> = Vec::new();
        for id in &cfg.chat_ids {
            let id = id.trim().to_string();
            if !valid_chat_id(&id) {
                return Err(format!(
                    "{at} chat_ids: {id:?} is neither a numeric chat id (e.g. \"-1001234567890\") nor \"@channelusername\""
                ));
            }
            if !chat_ids.contains(&id) {
                chat_ids.push(id);
            }
        }
        let parse_mode = cfg.parse_mode;
        let template = match (&common.template, parse_mode) {
            (Some(t), _) => t.clone(),
            (None, None) => "telegram.hbs".into(),
            (None, Some(ParseMode::Html)) => "telegram.html.hbs".into(),
            (None, Some(m)) => {
                let m = m.as_str();
                return Err(format!(
                    "{at} parse_mode {m:?} needs your own `template` that escapes Telegram's Markdown special characters; or use parse_mode = \"HTML\" (built-in telegram.html.hbs)"
                ));
            }
        };
        let token = secret_from_env(&cfg.bot_token_env, &format!("{at} bot_token_env"))?;
        let base = http::check_url(
            &format!("{at} base_url"),
            cfg.base_url.as_deref().unwrap_or("https://api.telegram.org"),
        )?;
        let timeout = common.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
        Ok(Telegram {
            // The Bot API allows about one message per second per chat and 30 per second overall.
            meta: Meta::new::<TelegramConfig>(name, Reach::Targets(chat_ids.clone())),
            token,
            host: http::host_of(&base),
            base,
            chat_ids,
            parse_mode,
            disable_notification: cfg.disable_notification,
            template,
            client: http::client(timeout)?,
            timeout,
        })
    }

    /// `{base}/bot<token>/{method}`. Holds the token: never print it.
    fn method_url(&self, method: &str) -> reqwest::Url {
        let path = format!(
            "{}/bot{}/{method}",
            self.base.path().trim_end_matches('/'),
            self.token.expose_secret()
        );
        let mut url = self.base.clone();
        url.set_path(&path);
        url
    }

    fn chat_id_value(id: &str) -> Value {
        match id.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => json!(id),
        }
    }

    /// Text length as Telegram counts it: after entity parsing (tags removed, entities decoded for
    /// HTML), in UTF-16 code units (the unit of its entity offsets; an emoji counts 2).
    fn visible_len(&self, text: &str) -> usize {
        let visible = if self.parse_mode == Some(ParseMode::Html) {
            strip_html(text)
        } else {
            text.to_string()
        };
        visible.encode_utf16().count()
    }

    fn classify(&self, chat: &str, answer: &http::Answer) -> DeliveryError {
        let route = Some(self.host.clone());
        let headers = &answer.headers;
        let v: Value = answer.json().unwrap_or(Value::Null);
        let code = v["error_code"].as_u64().unwrap_or(u64::from(answer.status.as_u16()));
        let desc = v["description"]
            .as_str()
            .map_or_else(|| answer.excerpt(), |d| http::excerpt(d, 300));
        let message = format!("Telegram {code} for chat {chat}: {desc}");
        if let Some(new_id) = v["parameters"]["migrate_to_chat_id"].as_i64() {
            return DeliveryError::Permanent {
                message: format!(
                    "{message} — the group was upgraded to a supergroup: replace {chat} with {new_id} in chat_ids"
                ),
                route,
            };
        }
        match code {
            429 => {
                let ra = v["parameters"]["retry_after"]
                    .as_u64()
                    .map(Duration::from_secs)
                    .or_else(|| http::retry_after(headers));
                DeliveryError::Transient {
                    message,
                    retry_after: ra,
                    route,
                }
            }
            401 | 404 => DeliveryError::Halt {
                message: format!("{message} — the bot token was rejected; check bot_token_env"),
            },
            500..=599 => DeliveryError::Transient {
                message,
                retry_after: http::retry_after(headers),
                route,
            },
            _ => DeliveryError::Permanent { message, route },
        }
    }
}

/// Drop tags and decode the entities Telegram's HTML mode knows, to count visible characters.
fn strip_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    // Every entity (&lt; &#x27; ...) is one character after parsing.
    let mut counted = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find('&') {
        counted.push_str(&rest[..i]);
        let after = &rest[i..];
        match after.find(';') {
            Some(j) if j <= 10 && after[1..j].chars().all(|c| c.is_ascii_alphanumeric() || c == '#') && j > 1 => {
                counted.push('x');
                rest = &after[j + 1..];
            }
            _ => {
                counted.push('&');
                rest = &after[1..];
            }
        }
    }
    counted.push_str(rest);
    counted
}

#[async_trait]
impl Channel for Telegram {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let text = templates.render_ctx(&self.template, ctx)?.trim().to_string();
        let n = self.visible_len(&text);
        if n == 0 {
            return Err(format!("{}: the Telegram message is empty", self.template));
        }
        if n > MAX_TEXT {
            return Err(format!(
                "the Telegram message is {n} characters, more than the {MAX_TEXT} sendMessage accepts; shorten the announcement or the template"
            ));
        }
        Ok(Rendered::plain(
            text,
            vec![Stat::limited("Telegram characters", n, MAX_TEXT)],
        ))
    }

    async fn deliver(&self, d: &Delivery, msg: &Rendered) -> Result<Receipt, DeliveryError> {
        let chat = d.address.as_str();
        let mut body = json!({
            "chat_id": Self::chat_id_value(chat),
            "text": msg.text,
        });
        if let Some(m) = self.parse_mode {
            body["parse_mode"] = json!(m.as_str());
        }
        if self.disable_notification {
            body["disable_notification"] = json!(true);
        }
        let url = self.method_url("sendMessage");
        let answer = http::send(self.client.post(url).json(&body)).await.map_err(|f| {
            f.into_delivery(&self.host, |m| DeliveryError::Ambiguous {
                message: format!("{m} (the message may have been posted; Telegram has no idempotency key, so it is not re-sent automatically)"),
                route: Some(self.host.clone()),
            })
        })?;
        if !answer.status.is_success() {
            return Err(self.classify(chat, &answer));
        }
        // The documented answer: {"ok": true, "result": <Message>}.
        let v = answer.json().unwrap_or(Value::Null);
        if v["ok"] == json!(true) && v["result"].is_object() {
            let mid = v["result"]["message_id"].as_i64();
            let chat_id = v["result"]["chat"]["id"]
                .as_i64()
                .map_or(chat.to_string(), |c| c.to_string());
            return Ok(Receipt {
                provider_id: mid.map(|m| format!("{chat_id}:{m}")),
                route: Some(self.host.clone()),
            });
        }
        if v["ok"] == json!(false) {
            return Err(self.classify(chat, &answer));
        }
        Err(answer.unexpected("Telegram", Some(self.host.clone())))
    }

    async fn check(&self) -> Vec<Probe> {
        let probe = |ok: bool, detail: String| {
            vec![Probe {
                subject: self.name().to_string(),
                ok,
                detail,
            }]
        };
        let url = self.method_url("getMe");
        let a = match http::send(self.client.get(url)).await {
            Ok(a) => a,
            Err(e) => return probe(false, format!("getMe: {e}")),
        };
        let v: Value = a.json().unwrap_or(Value::Null);
        if a.status.is_success() && v["ok"] == json!(true) {
            let user = http::excerpt(v["result"]["username"].as_str().unwrap_or("?"), 100);
            probe(
                true,
                format!(
                    "bot @{user} on {}; sends to {} chat(s): {}",
                    self.host,
                    self.chat_ids.len(),
                    self.chat_ids.join(", ")
                ),
            )
        } else {
            let desc = v["description"]
                .as_str()
                .map_or_else(|| a.excerpt(), |d| http::excerpt(d, 300));
            probe(false, format!("getMe: HTTP {}: {desc}", a.status.as_u16()))
        }
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        Some(self.timeout + Duration::from_secs(5))
    }

    fn timeout_error(&self, after: Duration) -> DeliveryError {
        DeliveryError::Ambiguous {
            message: format!("no answer within {after:?}; the message may have been posted"),
            route: Some(self.host.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids() {
        assert!(valid_chat_id("-1001234567890"));
        assert!(valid_chat_id("@studio_news"));
        assert!(!valid_chat_id("studio_news"));
        assert!(!valid_chat_id("@a b"));
    }

    #[test]
    fn html_length_counts_visible_text() {
        assert_eq!(strip_html("<b>Hi &amp; you</b>").chars().count(), "Hi & you".len());
        assert_eq!(strip_html("a & b"), "a & b");
    }
}
