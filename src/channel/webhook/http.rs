//! HTTP plumbing shared by the webhook, Telegram and Mastodon channels: a client that never
//! follows redirects and always has timeouts, Retry-After parsing, and error messages that never
//! contain a URL (webhook and Bot API URLs carry secrets in their path).

use std::time::Duration;

use reqwest::header::HeaderMap;

use crate::channel::DeliveryError;

/// Connect timeout of every client here.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client with connect and overall timeouts that does not follow redirects (a 3xx is an answer
/// to classify, and following it could carry a signed body or a token to another host). TLS
/// certificates are verified (reqwest's default; never turned off here).
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .timeout(timeout)
        .user_agent(concat!("announce/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))
}

/// `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(v).ok()?;
    until(at)
}

/// Time from now until `at` (zero when it has passed).
pub fn until(at: jiff::Timestamp) -> Option<Duration> {
    let ms = at.as_millisecond() - jiff::Timestamp::now().as_millisecond();
    Some(Duration::from_millis(ms.max(0) as u64))
}

/// Host (and port when not the default) of a URL, for routes and messages.
pub fn host_of(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        _ => "?".into(),
    }
}

/// Parse a configured base URL; tokens travel over it, so plain http only to loopback hosts.
pub fn base_url(what: &str, s: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(s.trim()).map_err(|e| format!("{what} {s:?} is not a URL: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if url.host_str().is_some_and(crate::config::is_loopback_host) => {}
        "http" => {
            return Err(format!(
                "{what} {s:?}: plain http is only allowed to loopback hosts (a token travels with every request); use https"
            ));
        }
        other => return Err(format!("{what} {s:?}: unsupported scheme {other:?}")),
    }
    if url.host_str().is_none() {
        return Err(format!("{what} {s:?} has no host"));
    }
    Ok(url)
}

/// A request that got no HTTP answer. Connection failures never reached the server and are worth
/// retrying; for the rest (timeouts, a connection lost mid-request) the caller decides with
/// `after_send`: the server may have acted on the request. The message never holds the URL.
pub fn request_error(
    e: reqwest::Error,
    route: &str,
    after_send: impl FnOnce(String) -> DeliveryError,
) -> DeliveryError {
    let connect = e.is_connect();
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut msg = format!("{route}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    if connect && !timeout {
        DeliveryError::Transient {
            message: msg,
            retry_after: None,
            route: Some(route.to_string()),
        }
    } else {
        after_send(msg)
    }
}

/// The last `max` characters of a (provider's or command's) message, on one line.
pub fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    let n = s.chars().count();
    let t: String = if n > max {
        let skip = n - max;
        format!("…{}", s.chars().skip(skip).collect::<String>())
    } else {
        s.to_string()
    };
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters of a response body, on one line.
pub fn head(s: &str, max: usize) -> String {
    let s = s.trim();
    let t: String = if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s.to_string()
    };
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_seconds_and_http_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let date = later.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(d > Duration::from_secs(100) && d <= Duration::from_secs(120), "{d:?}");
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn base_urls_need_https_off_loopback() {
        assert!(base_url("x", "https://api.telegram.org").is_ok());
        assert!(base_url("x", "http://127.0.0.1:8080").is_ok());
        assert!(base_url("x", "http://localhost:1").is_ok());
        let e = base_url("base_url", "http://api.telegram.org").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(base_url("x", "ftp://h").is_err());
    }

    #[test]
    fn tails_and_heads() {
        assert_eq!(tail("a\nb\n  c  ", 100), "a b c");
        assert_eq!(tail("abcdef", 3), "…def");
        assert_eq!(head("abcdef", 3), "abc…");
    }
}
