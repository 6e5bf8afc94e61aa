//! HTTP plumbing shared by the gateways: the client, the settings every provider reads the same
//! way, sending a request, Retry-After, transport errors, and the classification of HTTP
//! statuses that every gateway treats alike.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use secrecy::SecretString;

use crate::channel::DeliveryError;
use crate::config::{SmsConfig, redact, secret_from_env};

/// Connect timeout of every gateway request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client with connect and overall timeouts; TLS is always verified (reqwest's default).
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .user_agent(concat!("announce/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// `Retry-After`: delta-seconds or an HTTP date. A date in the past means "now".
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
    let ms = at.as_millisecond() - now.as_millisecond();
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// A secret the provider cannot work without, from the variable `key` (e.g. `auth_token_env`)
/// names.
pub fn required_secret(at: &str, provider: &str, key: &str, var: Option<&str>) -> Result<SecretString, String> {
    let var = var.ok_or_else(|| format!("{at} provider \"{provider}\" needs {key}"))?;
    secret_from_env(var, &format!("{at} {key}"))
}

/// The sender, for providers that require one; `what` says what it may be.
pub fn required_from(at: &str, provider: &str, cfg: &SmsConfig, what: &str) -> Result<String, String> {
    cfg.from
        .clone()
        .filter(|f| !f.trim().is_empty())
        .ok_or_else(|| format!("{at} provider \"{provider}\" needs from ({what})"))
}

/// Send `request`: its status, headers and body, or the transport error as a delivery error.
pub async fn answer(
    provider: &str,
    request: reqwest::RequestBuilder,
) -> Result<(StatusCode, HeaderMap, reqwest::Result<String>), DeliveryError> {
    let resp = request.send().await.map_err(|e| transport_error(provider, &e))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    Ok((status, headers, resp.text().await))
}

/// A request that got no HTTP answer. Refused connections never reached the gateway and are
/// retried; anything later (timeout, connection reset mid-request) may have been accepted, and
/// SMS gateways have no idempotency key: the delivery becomes `unknown` rather than risk a
/// duplicate text.
pub fn transport_error(provider: &str, e: &reqwest::Error) -> DeliveryError {
    let detail = without_url(e);
    if e.is_connect() || e.is_builder() {
        DeliveryError::Transient {
            message: format!("{provider}: cannot connect: {detail}"),
            retry_after: None,
            route: Some(provider.to_string()),
        }
    } else {
        DeliveryError::Ambiguous {
            message: format!("{provider}: no answer to the request ({detail}); the gateway may have accepted it"),
            route: Some(provider.to_string()),
        }
    }
}

/// reqwest's message without the URL (which can hold an account id; never a secret, but noisy).
pub fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(&format!(" for url ({u})"), "");
        s = s.replace(u.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    redact(&s).into_owned()
}

/// At most 200 characters of a response body, on one line, for error messages. Secrets the
/// gateway echoed back (some quote the request) are redacted.
pub fn excerpt(body: &str) -> String {
    let body = redact(body);
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 200 {
        format!("{}…", one_line.chars().take(200).collect::<String>())
    } else {
        one_line
    }
}

/// What an HTTP status means when the body says nothing more specific: 408, 425, 429 and 5xx
/// (except 501) are worth retrying (honouring Retry-After); 401/403 mean the credentials are
/// wrong, which no other delivery can get past either (halt); the rest is permanent.
pub fn classify_status(provider: &str, status: StatusCode, headers: &HeaderMap, what: String) -> DeliveryError {
    let route = Some(provider.to_string());
    let message = format!("{provider}: {what} (HTTP {})", status.as_u16());
    let code = status.as_u16();
    if code == 408 || code == 425 || code == 429 || (status.is_server_error() && code != 501) {
        DeliveryError::Transient {
            message,
            retry_after: retry_after(headers),
            route,
        }
    } else if code == 401 || code == 403 {
        DeliveryError::Halt {
            message: format!("{message}: check the credentials"),
        }
    } else {
        DeliveryError::Permanent { message, route }
    }
}

/// `application/x-www-form-urlencoded` encoding of one value (WHATWG URL standard).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The gateway's root without a trailing slash.
pub fn base(url: &str) -> String {
    url.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn form_encoding() {
        assert_eq!(form_encode("a b&c=d+€"), "a+b%26c%3Dd%2B%E2%82%AC");
        assert_eq!(form_encode("+4915123456789"), "%2B4915123456789");
    }

    #[test]
    fn statuses() {
        let h = HeaderMap::new();
        let c = |s: u16| classify_status("x", StatusCode::from_u16(s).unwrap(), &h, "y".into());
        assert!(c(429).is_transient());
        assert!(c(503).is_transient());
        assert!(!c(501).is_transient());
        assert!(matches!(c(401), DeliveryError::Halt { .. }));
        assert!(matches!(c(400), DeliveryError::Permanent { .. }));
    }
}
