//! The one HTTP layer of every HTTP channel (SMS gateways, webhooks, Graph, Telegram, Mastodon).
//!
//! * The client never follows redirects: a 3xx could carry credentials, a signed body or a
//!   customer's number to another host. It is a failure that names the status and the host of
//!   `Location` only (the full Location may hold a token).
//! * Plain http only to loopback hosts ([`check_url`], also run over the config when it is
//!   loaded: [`check_config_urls`]).
//! * Answers are read up to [`MAX_BODY`] bytes; the rest is never buffered.
//! * Quoting an answer ([`excerpt`]) redacts the whole text first and cuts afterwards.
//! * Transport errors never contain the URL (Telegram's holds the bot token, webhook URLs often
//!   hold one).
//! * [`classify_status`] is the default meaning of HTTP statuses; channels override only where
//!   their provider differs.

use std::borrow::Cow;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde_json::Value;

use crate::channel::ChannelEntry;
use crate::channel::DeliveryError;
use crate::error::{AppError, SourceLocation};
use crate::secrets::redact;

/// Connect timeout of every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest answer body read; providers' answers are a few KiB at most.
pub const MAX_BODY: usize = 64 * 1024;
/// Characters of an answer quoted in a message.
pub const EXCERPT_CHARS: usize = 200;

/// A client with connect and overall timeouts that never follows redirects. TLS (rustls) always
/// verifies certificates.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .user_agent(concat!("announce/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_text(&e)))
}

/// Parse a URL requests go to: https, or plain http to a loopback host (tokens travel with every
/// request). The message names only the host: the URL itself may hold a token.
pub fn check_url(what: &str, s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|e| format!("{what} is not a valid absolute URL ({e})"))?;
    let Some(host) = url.host_str().map(str::to_string) else {
        return Err(format!("{what} has no host"));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if crate::settings::is_loopback_host(&host) => Ok(url),
        "http" => Err(format!(
            "{what}: plain http to {host} is refused (credentials and messages would travel unencrypted); \
             use https (http is only allowed to loopback hosts such as 127.0.0.1 for tests)"
        )),
        other => Err(format!("{what}: unsupported scheme {other:?}; use https")),
    }
}

/// Host (and port when given) of a URL, for routes and messages.
pub fn host_of(url: &Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "?".into(),
    }
}

/// The https-unless-loopback rule over every URL key of every channel, when the config is
/// loaded, pointing at the key. (`url_env` values are checked when the channel reads them.)
pub fn check_config_urls(file: &str, source: &str, channels: &[ChannelEntry]) -> Result<(), AppError> {
    for entry in channels {
        let at = format!("[channels.{}]", entry.name);
        let keys = entry.settings.kind.config().urls();
        for (key, value) in keys {
            if let Err(m) = check_url(&format!("{at} {key}"), value) {
                let loc = key_location(file, source, &entry.location, key);
                return Err(AppError::invalid_at(Some(loc), m));
            }
        }
    }
    Ok(())
}

/// Where `key = ...` is written inside the table that starts at `table` (the table itself when
/// the key is written some other way, e.g. in an inline table).
fn key_location(file: &str, source: &str, table: &SourceLocation, key: &str) -> SourceLocation {
    let start = source.floor_char_boundary(table.offset.min(source.len()));
    let mut offset = start;
    for line in source[start..].split_inclusive('\n') {
        let trimmed = line.trim_start();
        if offset > start && trimmed.starts_with('[') {
            break;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return SourceLocation::from_offset(file, source, offset + (line.len() - trimmed.len()));
        }
        offset += line.len();
    }
    table.clone()
}

/// `Retry-After`: delta-seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past means now.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    parse_retry_after(v, jiff::Timestamp::now())
}

pub fn parse_retry_after(v: &str, now: jiff::Timestamp) -> Option<Duration> {
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    static PARSER: jiff::fmt::rfc2822::DateTimeParser = jiff::fmt::rfc2822::DateTimeParser::new();
    let at = PARSER.parse_timestamp(v).ok()?;
    until_from(at, now)
}

/// Time from now until `at` (zero when it has passed).
pub fn until(at: jiff::Timestamp) -> Option<Duration> {
    until_from(at, jiff::Timestamp::now())
}

fn until_from(at: jiff::Timestamp, now: jiff::Timestamp) -> Option<Duration> {
    let ms = at.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// An HTTP answer that is not a redirect, with at most [`MAX_BODY`] bytes of its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body was longer than [`MAX_BODY`]; the rest was not read.
    pub cut: bool,
}

impl Answer {
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body as JSON, when it is a complete JSON document.
    pub fn json(&self) -> Option<Value> {
        if self.cut {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    /// "text/html" (parameters dropped), or "no content type".
    pub fn content_type(&self) -> String {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .filter(|v| !v.is_empty())
            .map_or_else(|| "no content type".into(), |v| excerpt(&v, 60))
    }

    /// The start of the body on one line, redacted, or "empty body".
    pub fn excerpt(&self) -> String {
        let e = excerpt(&self.text(), EXCERPT_CHARS);
        if e.is_empty() { "empty body".into() } else { e }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }

    /// A 2xx that is not the provider's documented success answer: the provider may or may not
    /// have acted on it (a captive portal, a proxy's page), so the delivery becomes `unknown`.
    pub fn unexpected(&self, provider: &str, route: Option<String>) -> DeliveryError {
        DeliveryError::Ambiguous {
            message: self.unexpected_text(provider),
            route,
        }
    }

    /// The receipt of `route` when this is the documented success answer: a JSON object whose
    /// `key` holds the provider's id (Twilio's `sid`, Vonage's `uuid`); else [`Answer::unexpected`].
    pub fn receipt(&self, key: &str, route: &str) -> Result<crate::channel::Receipt, DeliveryError> {
        match self.json().as_ref().and_then(|v| v[key].as_str()) {
            Some(id) if !id.is_empty() => Ok(crate::channel::Receipt {
                provider_id: Some(excerpt(id, 200)),
                route: Some(route.to_string()),
            }),
            _ => Err(self.unexpected(route, Some(route.to_string()))),
        }
    }

    pub fn unexpected_text(&self, provider: &str) -> String {
        format!(
            "unexpected answer from {provider} (HTTP {}): {}, {}",
            self.status.as_u16(),
            self.content_type(),
            self.excerpt()
        )
    }
}

/// A request that did not produce an [`Answer`].
#[derive(Debug, Clone)]
pub enum Failure {
    /// The request never reached the server (no connection): always safe to repeat.
    NotConnected(String),
    /// The request may have reached the server (timeout, connection lost, answer cut off).
    NoAnswer(String),
    /// A 3xx: not followed.
    Redirect { status: u16, to_host: Option<String> },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::NotConnected(m) | Failure::NoAnswer(m) => f.write_str(m),
            Failure::Redirect { status, to_host } => {
                let to = to_host.as_deref().map(|h| format!(" to {h}")).unwrap_or_default();
                write!(
                    f,
                    "HTTP {status} redirect{to} not followed (redirects are never followed, as they could carry \
                     credentials elsewhere; configure the final URL)"
                )
            }
        }
    }
}

impl Failure {
    /// The dispatcher's class: no connection is transient, a redirect permanent, and what a
    /// request that may have arrived means is the channel's to say (`after_send`).
    pub fn into_delivery(self, route: &str, after_send: impl FnOnce(String) -> DeliveryError) -> DeliveryError {
        let message = format!("{route}: {self}");
        match self {
            Failure::NotConnected(_) => DeliveryError::Transient {
                message,
                retry_after: None,
                route: Some(route.to_string()),
            },
            Failure::Redirect { .. } => DeliveryError::Permanent {
                message,
                route: Some(route.to_string()),
            },
            Failure::NoAnswer(_) => after_send(message),
        }
    }
}

/// Send a request and read its answer (bounded). Redirects are failures.
pub async fn send(request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
    let mut resp = request.send().await.map_err(|e| transport(&e))?;
    let status = resp.status();
    if status.is_redirection() {
        let to_host = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| resp.url().join(l).ok())
            .map(|u| host_of(&u));
        return Err(Failure::Redirect {
            status: status.as_u16(),
            to_host,
        });
    }
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    let mut cut = false;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    cut = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::NoAnswer(format!(
                    "the answer (HTTP {}) was cut off: {}",
                    status.as_u16(),
                    error_text(&e)
                )));
            }
        }
    }
    Ok(Answer {
        status,
        headers,
        body,
        cut,
    })
}

fn transport(e: &reqwest::Error) -> Failure {
    let text = error_text(e);
    if e.is_connect() && !e.is_timeout() || e.is_builder() {
        Failure::NotConnected(format!("cannot connect: {text}"))
    } else if e.is_timeout() {
        Failure::NoAnswer(format!("no answer in time: {text}"))
    } else {
        Failure::NoAnswer(format!("no answer to the request: {text}"))
    }
}

/// reqwest's message and its sources, without the URL, redacted.
pub fn error_text(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" for url ({u})"), "");
        s = s.replace(u.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        source = inner.source();
    }
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    redact(&s).into_owned()
}

/// At most `max` characters of a text, on one line, redacted *before* it is cut.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = redact(text);
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > max {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    } else {
        one_line
    }
}

/// The last `max` characters of a (command's or provider's) message, on one line, redacted
/// before it is cut.
pub fn tail(s: &str, max: usize) -> String {
    let s = redact(s.trim());
    let n = s.chars().count();
    let t: String = if n > max {
        format!("…{}", s.chars().skip(n - max).collect::<String>())
    } else {
        s.into_owned()
    };
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What an HTTP status means when the provider says nothing more specific: 408, 425, 429 and
/// 5xx (except 501) are worth retrying (honouring Retry-After); 401/403 mean the credentials are
/// wrong, which no other delivery can get past either (halt); the rest is permanent.
pub fn classify_status(route: &str, answer: &Answer, what: &str) -> DeliveryError {
    let status = answer.status;
    let code = status.as_u16();
    let message = format!("{route}: {what} (HTTP {code})");
    if code == 408 || code == 425 || code == 429 || (status.is_server_error() && code != 501) {
        DeliveryError::Transient {
            message,
            retry_after: answer.retry_after(),
            route: Some(route.to_string()),
        }
    } else if code == 401 || code == 403 {
        DeliveryError::Halt {
            message: format!("{message}: check the credentials"),
        }
    } else {
        DeliveryError::Permanent {
            message,
            route: Some(route.to_string()),
        }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (WHATWG URL standard), as reqwest
/// encodes its `.form()` bodies.
pub fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, ct: Option<&str>, body: &str) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(ct) = ct {
            headers.insert(CONTENT_TYPE, ct.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec(),
            cut: false,
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now: jiff::Timestamp = "2026-04-03T09:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0.5", now), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Fri, 03 Apr 2026 09:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Fri, 03 Apr 2026 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn urls_need_https_off_loopback() {
        assert!(check_url("x", "https://api.telegram.org").is_ok());
        assert!(check_url("x", "http://127.0.0.1:8080").is_ok());
        assert!(check_url("x", "http://localhost:1").is_ok());
        assert!(check_url("x", "http://[::1]:1").is_ok());
        let e = check_url("base_url", "http://api.example.org/secret-path").unwrap_err();
        assert!(
            e.contains("loopback") && e.contains("api.example.org") && !e.contains("secret-path"),
            "{e}"
        );
        assert!(check_url("x", "ftp://h").is_err());
        assert!(check_url("x", "/relative").is_err());
    }

    #[test]
    fn excerpts_redact_before_cutting() {
        let secret = "Straddling-Secret-Value-0193";
        crate::secrets::register_secret(secret);
        for pad in 150..=EXCERPT_CHARS + 5 {
            let body = format!("{}{secret} tail", "x".repeat(pad));
            let e = excerpt(&body, EXCERPT_CHARS);
            assert!(!e.contains("Straddl"), "pad {pad}: {e}");
        }
        let t = tail(&format!("{secret}{}", "y".repeat(190)), EXCERPT_CHARS);
        assert!(!t.contains("Value-0193"), "{t}");
    }

    #[test]
    fn unexpected_answers_name_the_content_type_and_start() {
        let a = answer(
            200,
            Some("text/html; charset=utf-8"),
            "<html>\n<body>Login</body></html>",
        );
        let d = a.unexpected("twilio", None);
        assert!(matches!(d, DeliveryError::Ambiguous { .. }));
        let m = d.to_string();
        assert!(
            m.contains("unexpected answer from twilio") && m.contains("text/html, <html> <body>"),
            "{m}"
        );
        assert!(
            answer(200, None, "")
                .unexpected_text("x")
                .contains("no content type, empty body")
        );
    }

    #[test]
    fn statuses() {
        let c = |s: u16| classify_status("x", &answer(s, None, ""), "y");
        assert!(c(429).is_transient());
        assert!(c(503).is_transient());
        assert!(!c(501).is_transient());
        assert!(matches!(c(401), DeliveryError::Halt { .. }));
        assert!(matches!(c(400), DeliveryError::Permanent { .. }));
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b&c=d+€"), "a+b%26c%3Dd%2B%E2%82%AC");
        assert_eq!(form_encode("+4915123456789"), "%2B4915123456789");
        // What the channels send is one of the forms a secret is redacted in.
        let sent = form_encode("Ab*cd~ef gh/ij");
        assert_eq!(sent, "Ab*cd%7Eef+gh%2Fij");
        assert!(crate::secrets::secret_forms("Ab*cd~ef gh/ij").contains(&sent));
    }

    #[test]
    fn redirects_are_described_by_host_only() {
        let f = Failure::Redirect {
            status: 307,
            to_host: Some("evil.example:8443".into()),
        };
        let d = f.into_delivery("twilio", DeliveryError::transient);
        assert!(matches!(d, DeliveryError::Permanent { .. }));
        assert!(
            d.to_string()
                .contains("HTTP 307 redirect to evil.example:8443 not followed"),
            "{d}"
        );
    }
}
