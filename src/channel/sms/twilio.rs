//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json` (form body,
//! Basic auth `AccountSid:AuthToken`) answers `201` with the message `sid`, or an error
//! `{"code","message","more_info","status"}`. Final statuses come from
//! `GET .../Messages/{sid}.json`.

use async_trait::async_trait;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

use super::ProviderConfig;
use super::{Gateway, Outgoing, base_or, failure, required_from, required_secret};
use crate::channel::http::{self, Answer};
use crate::channel::{DeliveryError, Probe, Receipt, Refreshed};

const PROVIDER: &str = "twilio";
/// Twilio refuses longer bodies (error 21617).
const MAX_BODY_CHARS: usize = 1600;

pub struct Twilio {
    account: Account,
    from: String,
}

/// A Twilio account as the REST API (2010-04-01) is asked for it: Basic auth
/// `AccountSid:AuthToken` on every request. Shared with the voice channel's calls.
pub(crate) struct Account {
    client: reqwest::Client,
    base: String,
    pub sid: String,
    token: SecretString,
}

impl Account {
    /// The account of `account_sid` with the token `auth_token_env` names, at `base`.
    pub fn new(
        at: &str,
        account_sid: Option<&str>,
        auth_token_env: Option<&str>,
        base: String,
        client: reqwest::Client,
    ) -> Result<Account, String> {
        let sid = account_sid
            .map(str::to_string)
            .ok_or_else(|| format!("{at} provider \"twilio\" needs account_sid (\"AC...\")"))?;
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "{at} account_sid {sid:?} is not a Twilio Account SID (\"AC...\")"
            ));
        }
        let token = required_secret(at, "twilio", "auth_token_env", auth_token_env)?;
        // Basic auth sends "AccountSid:AuthToken" base64-encoded as one piece.
        crate::secrets::register_credential(&sid, token.expose_secret());
        Ok(Account {
            client,
            base,
            sid,
            token,
        })
    }

    /// `{base}/2010-04-01/Accounts/{sid}{rest}`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/2010-04-01/Accounts/{}{rest}", self.base, self.sid)
    }

    pub fn get(&self, rest: &str) -> reqwest::RequestBuilder {
        self.client
            .get(self.url(rest))
            .basic_auth(&self.sid, Some(self.token.expose_secret()))
    }

    pub fn post(&self, rest: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(rest))
            .basic_auth(&self.sid, Some(self.token.expose_secret()))
    }

    /// `GET .../{collection}/{sid}.json` (a message, a call): its JSON (`null` when a 2xx is not
    /// JSON), or why not.
    pub async fn resource(&self, what: &str, collection: &str, sid: &str) -> Result<Value, String> {
        if sid.is_empty() || !sid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("{sid:?} is not a Twilio {what} sid"));
        }
        let a = http::send(self.get(&format!("/{collection}/{sid}.json")))
            .await
            .map_err(|e| format!("{PROVIDER}: {e}"))?;
        if !a.status.is_success() {
            return Err(format!("{PROVIDER}{} (HTTP {})", error_text(&a), a.status.as_u16()));
        }
        Ok(a.json().unwrap_or_default())
    }

    /// The account resource: its credentials work and it is `active`.
    pub async fn probe(&self) -> Probe {
        let subject = format!("{PROVIDER} account {}", self.sid);
        let (ok, detail) = match http::send(self.get(".json")).await {
            Err(e) => (false, format!("cannot reach {}: {e}", self.base)),
            Ok(a) => {
                let v: Value = a.json().unwrap_or_default();
                if a.status.is_success() {
                    let state = v["status"].as_str().unwrap_or("unknown");
                    let name = http::excerpt(v["friendly_name"].as_str().unwrap_or(""), 100);
                    (
                        state == "active",
                        format!("credentials accepted; account {name:?} is {}", http::excerpt(state, 40)),
                    )
                } else {
                    (false, format!("HTTP {}{}", a.status.as_u16(), error_text(&a)))
                }
            }
        };
        Probe { subject, ok, detail }
    }
}

/// Twilio's error envelope for a message: " 21211: <message>" (the code when there is one).
pub(crate) fn error_text(a: &Answer) -> String {
    let v: Value = a.json().unwrap_or_default();
    let code = v["code"].as_u64().map(|c| format!(" {c}")).unwrap_or_default();
    let msg = v["message"]
        .as_str()
        .map_or_else(|| a.excerpt(), |m| http::excerpt(m, 300));
    format!("{code}: {msg}")
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    code: Option<u32>,
    message: Option<String>,
    more_info: Option<String>,
}

impl Twilio {
    pub fn new(at: &str, cfg: &ProviderConfig, client: reqwest::Client) -> Result<Twilio, String> {
        let account = Account::new(
            at,
            cfg.account_sid.as_deref(),
            cfg.auth_token_env.as_deref(),
            base_or(cfg, "https://api.twilio.com"),
            client,
        )?;
        let from = required_from(at, "twilio", cfg, "a number, sender id or \"MG...\"")?;
        Ok(Twilio { account, from })
    }

    /// `From`, or `MessagingServiceSid` for a Messaging Service (`MG` + 32 hex digits).
    fn sender_field(&self) -> &'static str {
        let f = &self.from;
        if f.len() == 34 && f.starts_with("MG") && f[2..].chars().all(|c| c.is_ascii_hexdigit()) {
            "MessagingServiceSid"
        } else {
            "From"
        }
    }

    fn classify(&self, answer: &Answer) -> DeliveryError {
        let (status, headers) = (answer.status, &answer.headers);
        let err: ApiError = answer
            .json()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let Some(code) = err.code else {
            return http::classify_status(
                PROVIDER,
                answer,
                &format!("unexpected answer: {}, {}", answer.content_type(), answer.excerpt()),
            );
        };
        let mut what = format!(
            "{PROVIDER} {code}: {}",
            http::excerpt(err.message.as_deref().unwrap_or("(no message)"), 300)
        );
        if let Some(more) = &err.more_info {
            what.push_str(&format!(" ({more})"));
        }
        let route = Some(PROVIDER.to_string());
        match code {
            20429 => DeliveryError::Transient {
                message: what,
                retry_after: http::retry_after(headers),
                route,
            },
            // Authentication, or a sender that cannot send: no delivery of this channel can succeed.
            20003 | 20005 | 21212 | 21606 => DeliveryError::Halt {
                message: format!("{what}; check account_sid, the auth token and `from`"),
            },
            // The recipient replied STOP: the dispatcher suppresses the number.
            21610 => DeliveryError::Unsubscribed { message: what, route },
            _ if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => DeliveryError::Transient {
                message: format!("{what} (HTTP {})", status.as_u16()),
                retry_after: http::retry_after(headers),
                route,
            },
            // 21211 invalid To, 21408 region, 21608 unverified (trial), 21612 unroutable,
            // 21614 not a mobile number, 21617 too long, and every other 4xx.
            _ => DeliveryError::Permanent { message: what, route },
        }
    }
}

/// Twilio's names for the asynchronous delivery errors.
fn delivery_error_name(code: u64) -> Option<&'static str> {
    Some(match code {
        30001 => "queue overflow",
        30002 => "account suspended",
        30003 => "unreachable destination handset",
        30004 => "message blocked",
        30005 => "unknown destination handset",
        30006 => "landline or unreachable carrier",
        30007 => "carrier filtering",
        30008 => "unknown error",
        _ => return None,
    })
}

#[async_trait]
impl Gateway for Twilio {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn max_chars(&self) -> Option<usize> {
        Some(MAX_BODY_CHARS)
    }

    async fn send(&self, m: &Outgoing<'_>) -> Result<Receipt, DeliveryError> {
        let form = [
            ("To", m.to),
            (self.sender_field(), self.from.as_str()),
            ("Body", m.text),
        ];
        let request = self.account.post("/Messages.json").form(&form);
        let answer = http::send(request).await.map_err(|f| failure(PROVIDER, f))?;
        if !answer.status.is_success() {
            return Err(self.classify(&answer));
        }
        // The documented success answer is the message resource, with its `sid`.
        answer.receipt("sid", PROVIDER)
    }

    async fn check(&self) -> Probe {
        self.account.probe().await
    }

    fn can_refresh(&self) -> bool {
        true
    }

    async fn refresh(&self, provider_id: &str) -> Result<Refreshed, String> {
        let v = self.account.resource("message", "Messages", provider_id).await?;
        let state = v["status"].as_str().unwrap_or("");
        Ok(match state {
            "delivered" | "read" => Refreshed::Delivered,
            "undelivered" | "failed" | "canceled" => {
                // error_code is a number in the API, a string in some fixtures.
                let code = v["error_code"]
                    .as_u64()
                    .or_else(|| v["error_code"].as_str().and_then(|s| s.parse().ok()));
                let text = v["error_message"]
                    .as_str()
                    .map(|t| http::excerpt(t, 200))
                    .or_else(|| code.and_then(delivery_error_name).map(str::to_string));
                let reason = match (code, text) {
                    (Some(c), Some(t)) => format!("{c} {t}"),
                    (Some(c), None) => c.to_string(),
                    (None, Some(t)) => t,
                    (None, None) => "no error code".into(),
                };
                Refreshed::Undelivered(format!("{reason} ({PROVIDER}: {state})"))
            }
            _ => Refreshed::Pending,
        })
    }
}
