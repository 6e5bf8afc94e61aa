//! In-process fakes of SMS gateways (wiremock on 127.0.0.1), following the contracts in
//! shared/reference/provider-apis.md §3. Every request is recorded with the time it arrived,
//! so tests can assert both its exact shape and the pacing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use serde_json::json;
use wiremock::{Request, Respond, ResponseTemplate};

/// One request as the fake saw it.
#[derive(Clone)]
pub struct Seen {
    pub at: Instant,
    pub request: Request,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.request.url.path()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.request.headers.get(name).map(|v| v.to_str().unwrap().to_string())
    }

    /// The form body as (name, value) pairs in order; panics unless it is a form.
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/x-www-form-urlencoded"),
            "not a form request"
        );
        parse_form(&String::from_utf8(self.request.body.clone()).unwrap())
    }

    /// The form body as a map; panics on a repeated field.
    pub fn form(&self) -> BTreeMap<String, String> {
        let pairs = self.form_pairs();
        let map: BTreeMap<_, _> = pairs.iter().cloned().collect();
        assert_eq!(map.len(), pairs.len(), "repeated form field in {pairs:?}");
        map
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.request.body).expect("JSON body")
    }
}

/// The shared request log of a fake.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn on(&self, path: &str) -> Vec<Seen> {
        self.all().into_iter().filter(|s| s.path() == path).collect()
    }

    fn push(&self, request: &Request) -> usize {
        let mut g = self.0.lock().unwrap();
        g.push(Seen {
            at: Instant::now(),
            request: request.clone(),
        });
        g.len()
    }
}

type Script = dyn Fn(&Request, usize) -> ResponseTemplate + Send + Sync;

/// A responder that records the request, then answers with `script(request, n)` where `n`
/// counts the requests this responder has seen (1-based).
pub struct Scripted {
    log: Log,
    count: AtomicUsize,
    script: Box<Script>,
}

impl Scripted {
    pub fn new(log: &Log, script: impl Fn(&Request, usize) -> ResponseTemplate + Send + Sync + 'static) -> Scripted {
        Scripted {
            log: log.clone(),
            count: AtomicUsize::new(0),
            script: Box::new(script),
        }
    }
}

impl Respond for Scripted {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.log.push(request);
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        (self.script)(request, n)
    }
}

/// `application/x-www-form-urlencoded` decoding.
pub fn parse_form(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("UTF-8 form value")
    }
    if body.is_empty() {
        return Vec::new();
    }
    body.split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The form value of a request body (for routing inside a script).
pub fn form_value(request: &Request, name: &str) -> Option<String> {
    parse_form(std::str::from_utf8(&request.body).ok()?)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

// --- Twilio -----------------------------------------------------------------------------------

pub const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
pub const TWILIO_TOKEN: &str = "twilio-test-token-5f3a";

pub fn twilio_messages_path() -> String {
    format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
}

/// A deterministic message sid per recipient: "SM" + the digits, zero-padded to 34 characters.
pub fn twilio_sid_for(to: &str) -> String {
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    format!("SM{digits:0>32}")
}

/// The message sid of a status lookup (`GET .../Messages/{sid}.json`).
pub fn twilio_fetched_sid(request: &Request) -> String {
    let last = request.url.path().rsplit('/').next().unwrap_or_default();
    last.trim_end_matches(".json").to_string()
}

/// `201 Created` as Twilio answers a message create.
pub fn twilio_created(request: &Request) -> ResponseTemplate {
    let to = form_value(request, "To").unwrap_or_default();
    let body = form_value(request, "Body").unwrap_or_default();
    let sid = twilio_sid_for(&to);
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": sid, "account_sid": TWILIO_SID, "to": to, "from": form_value(request, "From"),
        "body": body, "status": "queued", "num_segments": "1", "error_code": null,
        "error_message": null, "price": null, "date_created": "Fri, 03 Apr 2026 09:12:00 +0000",
        "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json"),
    }))
}

/// Twilio's error envelope.
pub fn twilio_error(http: u16, code: u32, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(http).set_body_json(json!({
        "code": code, "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": http,
    }))
}

// --- Vonage -----------------------------------------------------------------------------------

pub const VONAGE_KEY: &str = "abcd1234";
pub const VONAGE_SECRET: &str = "vonage-secret-9d2e";

/// HTTP 200 with one entry per part: `Ok(id)` accepted, `Err((status, text))` refused.
pub fn vonage_answer(to: &str, parts: &[Result<&str, (&str, &str)>]) -> ResponseTemplate {
    let messages: Vec<_> = parts
        .iter()
        .map(|p| match p {
            Ok(id) => json!({"to": to, "message-id": id, "status": "0",
                              "remaining-balance": "15.53590000", "message-price": "0.03330000",
                              "network": "26202"}),
            Err((status, text)) => json!({"to": to, "status": status, "error-text": text}),
        })
        .collect();
    ResponseTemplate::new(200).set_body_json(json!({
        "message-count": parts.len().to_string(), "messages": messages,
    }))
}

// --- seven.io ---------------------------------------------------------------------------------

pub const SEVEN_KEY: &str = "seven-key-7c1b";

/// The `json=1` answer for one recipient.
pub fn seven_answer(
    success: &str,
    to: &str,
    text: &str,
    id: Option<&str>,
    error: Option<(&str, &str)>,
) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "success": success, "total_price": 0.075, "balance": 12.5, "debug": "false",
        "sms_type": "direct",
        "messages": [{
            "id": id, "sender": "Studio", "recipient": to.trim_start_matches('+'), "text": text,
            "encoding": "gsm", "parts": 1, "price": 0.075, "success": error.is_none(),
            "error": error.map(|e| e.0), "error_text": error.map(|e| e.1), "label": null,
        }],
    }))
}

impl Log {
    /// How many requests the fake has seen.
    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

// --- Outages ----------------------------------------------------------------------------------

/// How a provider that is down answers every request.
#[derive(Debug, Clone, Copy)]
pub enum Outage {
    /// Nothing listens: every connection is refused.
    Refused,
    /// Twilio 20003 "Authenticate" with HTTP 401 (wrong credentials).
    Unauthorized,
    /// HTTP 503 with Twilio's error envelope, throughout.
    Unavailable,
}

/// A base URL on which nothing listens (the port was free a moment ago), so every request is
/// refused at connect.
pub fn refusing_uri() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Twilio's answer to every message create during `outage` (not for `Refused`: no answer).
pub fn twilio_outage(outage: Outage) -> ResponseTemplate {
    match outage {
        Outage::Unauthorized => twilio_error(401, 20003, "Authenticate"),
        Outage::Unavailable => twilio_error(503, 20503, "Service Unavailable"),
        Outage::Refused => unreachable!("a refused connection has no answer"),
    }
}

/// seven.io accepting every message (`json=1` answer, one id per recipient).
pub fn seven_accepted(request: &Request) -> ResponseTemplate {
    let to = form_value(request, "to").unwrap_or_default();
    let text = form_value(request, "text").unwrap_or_default();
    let id: String = to.chars().filter(char::is_ascii_digit).collect();
    seven_answer("100", &to, &text, Some(&id), None)
}

/// A gateway's own pacing rules, checked as requests arrive: tests assert how many requests
/// broke them (a count), not how far apart they came.
///
/// A 429 with Retry-After closes the gateway until then (`close_for`); the rate is a GCRA
/// bucket of `per_second` cells with room for `burst` (governor's meaning), each request
/// weighing what the caller passes. `SLACK` absorbs scheduling jitter between the client's
/// limiter and the request's arrival.
#[derive(Clone)]
pub struct Pacing(Arc<Mutex<PacingState>>);

struct PacingState {
    cell: std::time::Duration,
    burst: u32,
    /// The theoretical arrival time of the next cell.
    tat: Option<Instant>,
    closed_until: Option<Instant>,
    early: usize,
    over_rate: usize,
}

const SLACK: std::time::Duration = std::time::Duration::from_millis(100);

impl Pacing {
    pub fn new(per_second: u32, burst: u32) -> Pacing {
        Pacing(Arc::new(Mutex::new(PacingState {
            cell: std::time::Duration::from_secs(1) / per_second,
            burst,
            tat: None,
            closed_until: None,
            early: 0,
            over_rate: 0,
        })))
    }

    /// Checks one request of `weight` cells arriving now against both rules.
    pub fn arrive(&self, weight: u32) {
        let now = Instant::now();
        let mut s = self.0.lock().unwrap();
        if s.closed_until.is_some_and(|u| now + SLACK < u) {
            s.early += 1;
        }
        let tat = s.tat.map_or(now, |t| t.max(now)) + s.cell * weight;
        if tat > now + s.cell * s.burst + SLACK {
            s.over_rate += 1;
        }
        s.tat = Some(tat);
    }

    /// The gateway accepts nothing for `d` from now (it just answered Retry-After).
    pub fn close_for(&self, d: std::time::Duration) {
        self.0.lock().unwrap().closed_until = Some(Instant::now() + d);
    }

    /// Requests that came while the gateway was closed.
    pub fn early(&self) -> usize {
        self.0.lock().unwrap().early
    }

    /// Requests the bucket had no room for.
    pub fn over_rate(&self) -> usize {
        self.0.lock().unwrap().over_rate
    }
}

/// A Twilio fake on its own server: POSTs to the Messages resource get `script(request, n)`.
pub async fn twilio_fake(
    script: impl Fn(&Request, usize) -> ResponseTemplate + Send + Sync + 'static,
) -> (wiremock::MockServer, Log) {
    let server = wiremock::MockServer::start().await;
    let log = answer(&server, "POST", twilio_messages_path(), script).await;
    (server, log)
}

/// Mounts `script` for `method` requests to `path` on `server`; returns their log.
pub async fn answer(
    server: &wiremock::MockServer,
    method: &str,
    path: impl Into<String>,
    script: impl Fn(&Request, usize) -> ResponseTemplate + Send + Sync + 'static,
) -> Log {
    let log = Log::default();
    wiremock::Mock::given(wiremock::matchers::method(method))
        .and(wiremock::matchers::path(path))
        .respond_with(Scripted::new(&log, script))
        .mount(server)
        .await;
    log
}

/// `twilio_fake` that refuses messages to `to` with a 400 of Twilio error `code`.
pub async fn twilio_refusing(to: &'static str, code: u32, message: &'static str) -> (wiremock::MockServer, Log) {
    twilio_fake(move |req, _| {
        if form_value(req, "To").as_deref() == Some(to) {
            twilio_error(400, code, message)
        } else {
            twilio_created(req)
        }
    })
    .await
}
