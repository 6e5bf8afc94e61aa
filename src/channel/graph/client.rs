//! The Graph API client shared by the facebook and instagram channels.
//!
//! * URLs are `{graph_url}/{api_version}/{path}`; `graph_url` is configurable (tests, proxies,
//!   and `https://graph.instagram.com` for the Instagram-login variant).
//! * The token goes in an `Authorization: Bearer` header (marked sensitive), never in a URL.
//!   With `app_secret_env`, every call also carries `appsecret_proof =
//!   hex(HMAC-SHA256(key = app secret, msg = token))` — as a form / multipart field on POSTs and
//!   a query parameter on GETs (it is derived from the token but is not the token). reqwest's
//!   error texts name the URL, so they are always stripped of it.
//! * Errors are classified by the envelope's `code` / `error_subcode`, not by the HTTP status
//!   ([`classify`]); the usage headers `X-App-Usage` and `X-Business-Use-Case-Usage` (whose
//!   `estimated_time_to_regain_access` is in **minutes**) decide how long to wait.
//! * Whether a failed call may be repeated depends on what it does ([`Effect`]): a transport
//!   failure before a connection was made is always transient; after the request may have
//!   reached Graph it is transient for reads and for calls that create nothing public
//!   (containers, unpublished photos) but *ambiguous* for a call that publishes — the post may
//!   exist, and a duplicate public post is worse than a missing one.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use reqwest::Url;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;

use crate::channel::DeliveryError;
use crate::channel::http;

/// A supported Graph API version (v26.0: released 2026-07-29, the newest; Meta keeps each
/// version about two years). Configurable with `api_version`.
pub const DEFAULT_VERSION: &str = "v26.0";
pub const DEFAULT_GRAPH_URL: &str = "https://graph.facebook.com";
/// Longest wait we accept from a usage header before retrying.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
/// Attempts for error 368 ("temporarily blocked", 1390008 "posting too fast") before giving up,
/// whatever `max_attempts` says: hammering a block extends it.
pub const MAX_BLOCKED_ATTEMPTS: u32 = 3;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What a call does, for the classification of transport failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only.
    Read,
    /// Creates something nobody sees (a media container, an unpublished photo): repeating it
    /// at worst leaves an orphan that expires.
    Private,
    /// Publishes: a repeat may post twice.
    Publish,
}

/// Settings of one client.
pub struct Settings<'a> {
    /// `[channels.NAME]`, for messages.
    pub channel: &'a str,
    pub graph_url: Option<&'a str>,
    pub api_version: Option<&'a str>,
    pub token_env: &'a str,
    pub app_secret_env: Option<&'a str>,
    pub throttle_wait: Option<Duration>,
    /// "Page" or "Instagram", for the renewal advice.
    pub token_kind: &'static str,
}

pub struct GraphClient {
    http: reqwest::Client,
    /// `{graph_url}/{version}/`.
    base: Url,
    /// host + version, for `route` in reports ("graph.facebook.com/v26.0").
    endpoint: String,
    token: SecretString,
    proof: Option<String>,
    pub hints: Hints,
}

/// What [`classify`] needs besides the error.
#[derive(Debug, Clone)]
pub struct Hints {
    /// The environment variable holding the token (named in advice, never its value).
    pub token_env: String,
    pub token_kind: &'static str,
    pub throttle_wait: Duration,
}

/// A multipart file field.
pub struct FilePart {
    pub field: &'static str,
    pub file_name: String,
    pub mime: &'static str,
    pub bytes: Vec<u8>,
}

/// The Graph error envelope plus the usage headers of the response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiError {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub user_msg: Option<String>,
    pub is_transient: Option<bool>,
    pub fbtrace_id: Option<String>,
    pub usage: Usage,
    /// `error_data.details`: the Cloud API's explanation, which Meta says to act on.
    pub details: Option<String>,
    /// The answer's `Retry-After`, capped at [`MAX_WAIT`].
    pub retry_after: Option<Duration>,
}

/// Rate-limit signals from `X-App-Usage` / `X-Business-Use-Case-Usage`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Highest percentage over every counter of both headers.
    pub max_percent: Option<f64>,
    /// Highest `estimated_time_to_regain_access`, in minutes.
    pub regain_minutes: Option<u64>,
}

#[derive(Debug, Clone)]
pub enum GraphError {
    /// Graph answered with its error envelope.
    Api(Box<ApiError>),
    /// A non-2xx answer without the envelope (a proxy, a load balancer).
    Http {
        status: u16,
        excerpt: String,
        retry_after: Option<Duration>,
        effect: Effect,
    },
    /// A 3xx, not followed (the message names only the Location's host).
    Redirect(String),
    /// A 2xx that is not the answer the call documents (not JSON, or without the id).
    Unexpected { message: String, effect: Effect },
    /// No (complete) answer. `connected`: the request may have reached Graph.
    Transport {
        message: String,
        connected: bool,
        effect: Effect,
    },
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Api(e) => write!(f, "{}", e.describe()),
            GraphError::Http { status, excerpt, .. } => write!(f, "HTTP {status} without a Graph error: {excerpt}"),
            GraphError::Transport { message, .. }
            | GraphError::Unexpected { message, .. }
            | GraphError::Redirect(message) => write!(f, "{message}"),
        }
    }
}

impl ApiError {
    /// "Graph error 190/463: Error validating access token (fbtrace_id X)".
    pub fn describe(&self) -> String {
        let code = match self.subcode {
            Some(s) => format!("{}/{s}", self.code),
            None => self.code.to_string(),
        };
        let mut out = format!("Graph error {code}: {}", self.message.trim());
        if let Some(u) = self
            .user_msg
            .as_deref()
            .filter(|u| !u.is_empty() && !self.message.contains(*u))
        {
            out.push_str(&format!(" ({u})"));
        }
        if let Some(d) = self
            .details
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty() && !self.message.contains(*d))
        {
            out.push_str(&format!(" ({d})"));
        }
        if let Some(t) = &self.fbtrace_id {
            out.push_str(&format!(" [fbtrace_id {t}]"));
        }
        out
    }
}

/// `hex(HMAC-SHA256(key = app_secret, msg = access_token))`.
pub fn appsecret_proof(app_secret: &str, token: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// An id from config or from a Graph answer, safe to put in a path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl GraphClient {
    pub fn new(s: &Settings<'_>) -> Result<GraphClient, String> {
        let ch = s.channel;
        let graph_url = s.graph_url.unwrap_or(DEFAULT_GRAPH_URL).trim_end_matches('/');
        let url = http::check_url(&format!("[channels.{ch}] graph_url"), graph_url)?;
        let host = url.host_str().unwrap_or_default().to_string();
        if url.query().is_some() || url.fragment().is_some() || url.username() != "" || url.password().is_some() {
            return Err(format!(
                "[channels.{ch}] graph_url {graph_url:?}: give only scheme, host and an optional path prefix"
            ));
        }
        let version = s.api_version.unwrap_or(DEFAULT_VERSION);
        let well_formed = version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.chars().all(|c| c.is_ascii_digit())
                    && b.chars().all(|c| c.is_ascii_digit())
            });
        if !well_formed {
            return Err(format!(
                "[channels.{ch}] api_version {version:?}: expected a Graph API version such as \"{DEFAULT_VERSION}\""
            ));
        }
        let base = Url::parse(&format!("{graph_url}/{version}/"))
            .map_err(|e| format!("[channels.{ch}] graph_url {graph_url:?}: {e}"))?;
        let token = crate::secrets::secret_from_env(s.token_env, &format!("[channels.{ch}] access_token_env"))?;
        let proof = match s.app_secret_env {
            Some(var) => {
                let secret = crate::secrets::secret_from_env(var, &format!("[channels.{ch}] app_secret_env"))?;
                Some(appsecret_proof(secret.expose_secret(), token.expose_secret()))
            }
            None => None,
        };
        let http = http::client(REQUEST_TIMEOUT).map_err(|e| format!("[channels.{ch}] {e}"))?;
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(GraphClient {
            http,
            endpoint: format!("{host}{port}/{version}"),
            base,
            token,
            proof,
            hints: Hints {
                token_env: s.token_env.to_string(),
                token_kind: s.token_kind,
                throttle_wait: s.throttle_wait.unwrap_or(Duration::from_secs(60)),
            },
        })
    }

    /// "graph.facebook.com/v26.0/{path}": the `route` of a report.
    pub fn route(&self, path: &str) -> String {
        format!("{}/{path}", self.endpoint)
    }

    fn url(&self, path: &str) -> Result<Url, GraphError> {
        self.base.join(path).map_err(|e| GraphError::Transport {
            message: format!("bad Graph path {path:?}: {e}"),
            connected: false,
            effect: Effect::Read,
        })
    }

    /// `GET /{path}?fields=...`.
    pub async fn get(&self, path: &str, fields: &str) -> Result<Value, GraphError> {
        let mut url = self.url(path)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("fields", fields);
            if let Some(p) = &self.proof {
                q.append_pair("appsecret_proof", p);
            }
        }
        let req = self.http.get(url).bearer_auth(self.token.expose_secret());
        self.finish(http::send(req).await, Effect::Read).await
    }

    /// `GET /{id}?fields=id,{field}`, for `check`: the account's `field` and id, or why the
    /// token cannot read them (redacted: Graph errors may quote the request).
    pub async fn identify(&self, id: &str, field: &str) -> Result<(String, String), String> {
        match self.get(id, &format!("id,{field}")).await {
            Ok(v) => Ok((
                v[field].as_str().unwrap_or("?").to_string(),
                v["id"].as_str().unwrap_or(id).to_string(),
            )),
            Err(e) => Err(crate::secrets::redact(&classify(&e, &self.hints, 1, None).to_string()).into_owned()),
        }
    }

    /// `POST /{path}` with a form body.
    pub async fn post_form(&self, path: &str, params: &[(&str, &str)], effect: Effect) -> Result<Value, GraphError> {
        let url = self.url(path)?;
        let mut form: Vec<(&str, &str)> = params.to_vec();
        if let Some(p) = &self.proof {
            form.push(("appsecret_proof", p));
        }
        let req = self.http.post(url).bearer_auth(self.token.expose_secret()).form(&form);
        self.finish(http::send(req).await, effect).await
    }

    /// `POST /{path}` with a JSON body (the WhatsApp Cloud API); `appsecret_proof` goes in the
    /// query, as Graph reads parameters from either.
    pub async fn post_json(&self, path: &str, body: &Value, effect: Effect) -> Result<Value, GraphError> {
        let mut url = self.url(path)?;
        if let Some(p) = &self.proof {
            url.query_pairs_mut().append_pair("appsecret_proof", p);
        }
        let req = self.http.post(url).bearer_auth(self.token.expose_secret()).json(body);
        self.finish(http::send(req).await, effect).await
    }

    /// `POST /{path}` as multipart/form-data with one file.
    pub async fn post_multipart(
        &self,
        path: &str,
        params: &[(&str, &str)],
        file: FilePart,
        effect: Effect,
    ) -> Result<Value, GraphError> {
        let url = self.url(path)?;
        let mut form = reqwest::multipart::Form::new();
        for (k, v) in params {
            form = form.text(k.to_string(), v.to_string());
        }
        if let Some(p) = &self.proof {
            form = form.text("appsecret_proof", p.clone());
        }
        let part = reqwest::multipart::Part::bytes(file.bytes)
            .file_name(file.file_name)
            .mime_str(file.mime)
            .map_err(|e| GraphError::Transport {
                message: format!("bad MIME type {}: {}", file.mime, e.without_url()),
                connected: false,
                effect,
            })?;
        form = form.part(file.field, part);
        let req = self
            .http
            .post(url)
            .bearer_auth(self.token.expose_secret())
            .multipart(form);
        self.finish(http::send(req).await, effect).await
    }

    async fn finish(&self, sent: Result<http::Answer, http::Failure>, effect: Effect) -> Result<Value, GraphError> {
        let answer = match sent {
            Ok(a) => a,
            Err(f @ http::Failure::Redirect { .. }) => return Err(GraphError::Redirect(f.to_string())),
            Err(f) => {
                return Err(GraphError::Transport {
                    connected: !matches!(f, http::Failure::NotConnected(_)),
                    message: f.to_string(),
                    effect,
                });
            }
        };
        let status = answer.status;
        let usage = Usage::from_headers(&answer.headers);
        if let Some(p) = usage.max_percent
            && p >= 80.0
        {
            tracing::warn!("Graph API usage at {p:.0}% of the rate limit");
        }
        let json = answer.json();
        if let Some(err) = json.as_ref().and_then(|v| v.get("error")).filter(|e| e.is_object()) {
            let mut api = ApiError::parse(status.as_u16(), err, usage);
            api.retry_after = answer.retry_after().map(|d| d.min(MAX_WAIT));
            return Err(GraphError::Api(Box::new(api)));
        }
        if status.is_success() {
            // Every Graph answer is a JSON object; anything else came from something in between.
            return match json {
                Some(v @ Value::Object(_)) => Ok(v),
                _ => Err(GraphError::Unexpected {
                    message: answer.unexpected_text("Graph"),
                    effect,
                }),
            };
        }
        Err(GraphError::Http {
            status: status.as_u16(),
            excerpt: answer.excerpt(),
            retry_after: answer.retry_after().map(|d| d.min(MAX_WAIT)),
            effect,
        })
    }
}

/// "unexpected answer from Graph (HTTP 200): application/json, {...}" for a JSON answer that
/// lacks what the call documents (redacted, then cut).
pub fn unexpected(v: &Value, effect: Effect) -> GraphError {
    GraphError::Unexpected {
        message: format!(
            "unexpected answer from Graph: application/json, {}",
            http::excerpt(&v.to_string(), http::EXCERPT_CHARS)
        ),
        effect,
    }
}

impl ApiError {
    fn parse(http_status: u16, e: &Value, usage: Usage) -> ApiError {
        let int = |k: &str| {
            e.get(k)
                .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        };
        let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        ApiError {
            http_status,
            code: int("code").unwrap_or(0),
            subcode: int("error_subcode"),
            message: text("message").unwrap_or_else(|| "(no message)".into()),
            user_msg: text("error_user_msg"),
            is_transient: e.get("is_transient").and_then(Value::as_bool),
            fbtrace_id: text("fbtrace_id"),
            usage,
            details: e
                .get("error_data")
                .and_then(|d| d.get("details"))
                .and_then(Value::as_str)
                .map(str::to_string),
            retry_after: None,
        }
    }
}

impl Usage {
    pub fn from_headers(h: &HeaderMap) -> Usage {
        let mut u = Usage::default();
        let header = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
        };
        if let Some(v) = header("x-app-usage") {
            u.absorb(&v);
        }
        if let Some(v) = header("x-ad-account-usage") {
            u.absorb(&v);
        }
        // {"<id>": [{"type": "pages", "call_count": 97, ..., "estimated_time_to_regain_access": 0}]}
        if let Some(Value::Object(ids)) = header("x-business-use-case-usage") {
            for entries in ids.values() {
                for entry in entries.as_array().into_iter().flatten() {
                    u.absorb(entry);
                }
            }
        }
        u
    }

    fn absorb(&mut self, v: &Value) {
        let Value::Object(m) = v else { return };
        for (k, val) in m {
            let Some(n) = val.as_f64().or_else(|| val.as_str().and_then(|s| s.parse().ok())) else {
                continue;
            };
            if k == "estimated_time_to_regain_access" {
                let mins = n.max(0.0).ceil() as u64;
                self.regain_minutes = Some(self.regain_minutes.map_or(mins, |m| m.max(mins)));
            } else if matches!(
                k.as_str(),
                "call_count" | "total_time" | "total_cputime" | "acc_id_util_pct"
            ) {
                self.max_percent = Some(self.max_percent.map_or(n, |m| m.max(n)));
            }
        }
    }

    /// How long Graph asks us to wait: the regain estimate (minutes), else `throttle_wait` when a
    /// counter is at 100 %, else nothing (the dispatcher's backoff decides).
    pub fn wait(&self, throttle_wait: Duration) -> Option<Duration> {
        if let Some(m) = self.regain_minutes.filter(|m| *m > 0) {
            return Some(Duration::from_secs(m.saturating_mul(60)).min(MAX_WAIT));
        }
        if self.max_percent.is_some_and(|p| p >= 100.0) {
            return Some(throttle_wait);
        }
        None
    }
}

/// What the token failure means, by `error_subcode` of code 190.
pub fn token_problem(subcode: Option<i64>) -> &'static str {
    match subcode {
        Some(458) => "the app is not installed for the user the token belongs to",
        Some(459) => "the user is checkpointed (must log in at facebook.com first)",
        Some(460) => "the user's password was changed, which invalidated the token",
        Some(463) => "the access token expired",
        Some(464) => "the user is not confirmed",
        Some(467) => "the access token is invalid (logged out or revoked)",
        Some(492) => "the user has no role on the Page any more",
        _ => "the access token is invalid or expired",
    }
}

/// Permission names quoted in a 10 / 2xx message, e.g. "(#200) ... requires both
/// pages_read_engagement and pages_manage_posts".
pub fn permissions_in(message: &str) -> Vec<String> {
    const PREFIXES: &[&str] = &[
        "pages_",
        "instagram_",
        "publish_",
        "business_",
        "ads_",
        "read_",
        "manage_",
        "page_",
        "user_",
    ];
    let mut out: Vec<String> = Vec::new();
    for w in message.split(|c: char| !(c.is_ascii_lowercase() || c == '_')) {
        let w = w.trim_matches('_');
        if w.contains('_') && PREFIXES.iter().any(|p| w.starts_with(p)) && !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    }
    out
}

const RATE_LIMIT_CODES: &[i64] = &[4, 17, 32, 613, 341];

/// Turn a Graph failure into the dispatcher's classes. `attempt` is the attempt that failed
/// (1-based); `route` goes into the error for the report.
pub fn classify(e: &GraphError, h: &Hints, attempt: u32, route: Option<String>) -> DeliveryError {
    let transient = |message: String, retry_after: Option<Duration>| DeliveryError::Transient {
        message,
        retry_after,
        route: route.clone(),
    };
    let permanent = |message: String| DeliveryError::Permanent {
        message,
        route: route.clone(),
    };
    let e = match e {
        GraphError::Transport {
            message,
            connected,
            effect,
        } => {
            return if *connected && *effect == Effect::Publish {
                DeliveryError::Ambiguous {
                    message: format!(
                        "{message}; the post may or may not have been published, so it is not sent again \
                         automatically (check the Page, then `announce resume RUN --resend-unknown` if it is missing)"
                    ),
                    route: route.clone(),
                }
            } else {
                transient(message.clone(), None)
            };
        }
        GraphError::Redirect(message) => return permanent(message.clone()),
        GraphError::Unexpected { message, effect } => {
            return if *effect == Effect::Publish {
                DeliveryError::Ambiguous {
                    message: format!(
                        "{message}; the post may or may not have been published, so it is not sent again automatically"
                    ),
                    route: route.clone(),
                }
            } else {
                transient(message.clone(), None)
            };
        }
        GraphError::Http {
            status,
            excerpt,
            retry_after,
            effect,
        } => {
            let msg = format!("HTTP {status} without a Graph error body: {excerpt}");
            return match status {
                429 | 502 | 503 => transient(msg, *retry_after),
                500..=599 if *effect == Effect::Publish => DeliveryError::Ambiguous {
                    message: format!(
                        "{msg}; the post may or may not have been published, so it is not sent again automatically"
                    ),
                    route: route.clone(),
                },
                500..=599 => transient(msg, *retry_after),
                _ => permanent(msg),
            };
        }
        GraphError::Api(a) => a,
    };
    let desc = e.describe();
    let wait = e.usage.wait(h.throttle_wait);
    match (e.code, e.subcode) {
        // Instagram publishing: subcodes first, they refine generic codes.
        (_, Some(2207042)) => permanent(format!(
            "Instagram's publishing limit for the last 24 hours is reached; nothing was posted. Wait for the next \
             window, then `announce resume RUN --retry-failed` ({desc})"
        )),
        (_, Some(2207051)) => permanent(format!(
            "Instagram refused the post as suspected spam; not retried ({desc})"
        )),
        (_, Some(2207001 | 2207003 | 2207032)) => {
            transient(format!("Instagram could not take the media yet ({desc})"), wait)
        }
        (_, Some(2207020)) => transient(
            format!("the media container expired; a new one is needed ({desc})"),
            wait,
        ),
        (_, Some(2207027)) => transient(format!("the media is not ready yet ({desc})"), wait),
        (_, Some(2207009 | 2207004 | 2207050)) => permanent(format!("Instagram refused the media ({desc})")),
        (190, sub) => permanent(format!(
            "{} ({desc}); create a new {} access token (e.g. Graph API Explorer, then the long-lived token \
             exchange), put it in {} and run again",
            token_problem(sub),
            h.token_kind,
            h.token_env
        )),
        (1 | 2, _) => transient(format!("Graph is temporarily unavailable ({desc})"), wait),
        (c, _) if RATE_LIMIT_CODES.contains(&c) || (80000..80100).contains(&c) => {
            let how = match wait {
                Some(w) => format!("; waiting {}s before retrying", w.as_secs_f64().ceil() as u64),
                None => String::new(),
            };
            transient(format!("Graph rate limit reached ({desc}){how}"), wait)
        }
        (368, _) if e.message.to_lowercase().contains("already posted") => {
            permanent(format!("Facebook refused a duplicate post ({desc})"))
        }
        (368, sub) => {
            let why = if sub == Some(1390008) {
                "posting too fast"
            } else {
                "temporarily blocked for policy violations"
            };
            if attempt >= MAX_BLOCKED_ATTEMPTS {
                permanent(format!(
                    "still blocked after {attempt} attempts, {why}; try again later with `announce resume RUN --retry-failed` ({desc})"
                ))
            } else {
                transient(
                    format!("{why} ({desc})"),
                    Some(wait.unwrap_or(h.throttle_wait).max(h.throttle_wait)),
                )
            }
        }
        (10 | 200..=299, _) => {
            let perms = permissions_in(&e.message);
            let missing = if perms.is_empty() {
                "a permission is missing".to_string()
            } else {
                format!("missing permission: {}", perms.join(", "))
            };
            permanent(format!(
                "{missing}; grant it to the app and create a new {} token for {} ({desc})",
                h.token_kind, h.token_env
            ))
        }
        (506, _) => permanent(format!("Facebook refused a duplicate post ({desc})")),
        (1609005, _) => permanent(format!("Facebook could not fetch the link for its preview ({desc})")),
        (100, _) => permanent(format!("Graph refused a parameter ({desc})")),
        (-1 | -2, _) => transient(format!("Graph server error ({desc})"), wait),
        _ if e.is_transient == Some(true) => transient(desc, wait),
        _ => permanent(desc),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn hints() -> Hints {
        Hints {
            token_env: "FB_PAGE_TOKEN".into(),
            token_kind: "Page",
            throttle_wait: Duration::from_secs(60),
        }
    }

    fn api(code: i64, subcode: Option<i64>, message: &str) -> GraphError {
        GraphError::Api(Box::new(ApiError {
            http_status: 400,
            code,
            subcode,
            message: message.into(),
            ..ApiError::default()
        }))
    }

    #[test]
    fn appsecret_proof_is_hex_hmac_sha256() {
        // echo -n "token" | openssl dgst -sha256 -hmac "secret"
        assert_eq!(
            appsecret_proof("secret", "token"),
            "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"
        );
        assert_ne!(appsecret_proof("secret", "token"), "token");
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn regain_estimate_is_in_minutes() {
        let h = headers(&[(
            "x-business-use-case-usage",
            r#"{"1234":[{"type":"pages","call_count":97,"total_cputime":23,"total_time":23,"estimated_time_to_regain_access":0}],"5678":[{"type":"pages","call_count":100,"total_cputime":10,"total_time":12,"estimated_time_to_regain_access":7}]}"#,
        )]);
        let u = Usage::from_headers(&h);
        assert_eq!(u.regain_minutes, Some(7));
        assert_eq!(u.max_percent, Some(100.0));
        assert_eq!(u.wait(Duration::from_secs(60)), Some(Duration::from_secs(7 * 60)));
        // Capped.
        let h = headers(&[(
            "x-business-use-case-usage",
            r#"{"1":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":1440}]}"#,
        )]);
        assert_eq!(Usage::from_headers(&h).wait(Duration::from_secs(60)), Some(MAX_WAIT));
    }

    #[test]
    fn app_usage_at_100_percent_waits_throttle_wait() {
        let h = headers(&[(
            "x-app-usage",
            r#"{"call_count":100,"total_time":25,"total_cputime":25}"#,
        )]);
        assert_eq!(
            Usage::from_headers(&h).wait(Duration::from_secs(42)),
            Some(Duration::from_secs(42))
        );
        let h = headers(&[("x-app-usage", r#"{"call_count":28,"total_time":25,"total_cputime":25}"#)]);
        assert_eq!(Usage::from_headers(&h).wait(Duration::from_secs(42)), None);
        assert_eq!(Usage::from_headers(&HeaderMap::new()), Usage::default());
    }

    #[test]
    fn classification_by_code_not_status() {
        let h = hints();
        let c = |code, sub, msg: &str| classify(&api(code, sub, msg), &h, 1, None);
        for code in [1, 2, 4, 17, 32, 613, 341, 80001] {
            assert!(c(code, None, "x").is_transient(), "code {code}");
        }
        let expired = c(190, Some(463), "Error validating access token: Session has expired");
        assert!(matches!(expired, DeliveryError::Permanent { .. }));
        let m = expired.to_string();
        assert!(
            m.contains("expired") && m.contains("190/463") && m.contains("FB_PAGE_TOKEN"),
            "{m}"
        );
        assert!(c(190, Some(460), "x").to_string().contains("password"));
        let perm = c(
            200,
            None,
            "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts permission",
        );
        assert!(matches!(perm, DeliveryError::Permanent { .. }));
        assert!(
            perm.to_string()
                .contains("missing permission: pages_read_engagement, pages_manage_posts"),
            "{perm}"
        );
        for (code, sub) in [
            (100, None),
            (506, None),
            (1609005, None),
            (10, None),
            (9, Some(2207042)),
        ] {
            assert!(matches!(c(code, sub, "x"), DeliveryError::Permanent { .. }), "{code}");
        }
        assert!(c(9, Some(2207042), "x").to_string().contains("publishing limit"));
        assert!(c(-2, Some(2207003), "timeout").is_transient());
        assert!(matches!(
            c(368, None, "You've already posted this"),
            DeliveryError::Permanent { .. }
        ));
        // Unknown codes: permanent unless the envelope says transient.
        assert!(!c(12345, None, "x").is_transient());
        let mut t = api(12345, None, "x");
        if let GraphError::Api(a) = &mut t {
            a.is_transient = Some(true);
        }
        assert!(classify(&t, &h, 1, None).is_transient());
    }

    #[test]
    fn blocked_368_is_retried_a_bounded_number_of_times() {
        let h = hints();
        let e = api(
            368,
            Some(1390008),
            "It looks like you were misusing this feature by going too fast.",
        );
        for attempt in 1..MAX_BLOCKED_ATTEMPTS {
            let d = classify(&e, &h, attempt, None);
            assert!(d.is_transient());
            assert!(d.retry_after().unwrap() >= h.throttle_wait);
        }
        let last = classify(&e, &h, MAX_BLOCKED_ATTEMPTS, None);
        assert!(matches!(last, DeliveryError::Permanent { .. }));
        assert!(last.to_string().contains("368/1390008"), "{last}");
    }

    #[test]
    fn rate_limits_wait_as_the_headers_say() {
        let h = hints();
        let mut e = api(80001, None, "There have been too many calls to this Page account.");
        if let GraphError::Api(a) = &mut e {
            a.usage.regain_minutes = Some(3);
        }
        assert_eq!(classify(&e, &h, 1, None).retry_after(), Some(Duration::from_secs(180)));
        assert_eq!(classify(&api(4, None, "x"), &h, 1, None).retry_after(), None);
    }

    #[test]
    fn transport_failures_after_sending_a_post_are_ambiguous() {
        let h = hints();
        let t = |connected, effect| {
            classify(
                &GraphError::Transport {
                    message: "no answer in time".into(),
                    connected,
                    effect,
                },
                &h,
                1,
                None,
            )
        };
        assert!(matches!(t(true, Effect::Publish), DeliveryError::Ambiguous { .. }));
        assert!(t(false, Effect::Publish).is_transient());
        assert!(t(true, Effect::Private).is_transient());
        assert!(t(true, Effect::Read).is_transient());
        let http = |status, effect| {
            classify(
                &GraphError::Http {
                    status,
                    excerpt: "x".into(),
                    retry_after: None,
                    effect,
                },
                &h,
                1,
                None,
            )
        };
        assert!(http(503, Effect::Publish).is_transient());
        assert!(matches!(http(504, Effect::Publish), DeliveryError::Ambiguous { .. }));
        assert!(matches!(http(404, Effect::Read), DeliveryError::Permanent { .. }));
    }

    #[test]
    fn ids_are_checked_before_they_go_into_paths() {
        assert!(valid_id("1234567890") && valid_id("123_456") && valid_id("17841400000000000"));
        assert!(!valid_id("") && !valid_id("12/feed") && !valid_id("..") && !valid_id("a?b"));
    }
}
