//! A local Graph API fake (wiremock, loopback) following provider-apis.md §1–§2 and §7:
//! versioned paths (`/v\d+\.\d+/...`), the token as `Authorization: Bearer` or `access_token`
//! (anything else gets the 190 envelope), `appsecret_proof` checked when the token has an app
//! secret, parameters from the query, a form, a JSON or a multipart body, the error envelope
//! with HTTP 400, usage headers, media containers that step through scripted states, and a
//! publishing limit enforced at `media_publish`; and the WhatsApp Cloud API's template messages
//! (`POST /{phone-number-id}/messages`, JSON only, checked field by field as documented, 132018
//! for a parameter with a line break, a tab or more than 4 spaces in a row) and phone-number
//! read (`GET /{phone-number-id}?fields=...`). Every request is recorded with its parsed
//! parameters, files and arrival time, so tests assert the exact requests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate, matchers::any};

pub const PAGE_ID: &str = "1234567890";
pub const IG_ID: &str = "17841400000000001";
pub const FB_TOKEN: &str = "EAAB-page-token-SECRET-1";
pub const FB_SECRET: &str = "fb-app-secret-SECRET-2";
pub const IG_TOKEN: &str = "EAAB-ig-token-SECRET-3";
/// The WhatsApp business phone number's Graph id, and a system user's token for it.
pub const WA_PHONE_ID: &str = "106540352242922";
pub const WA_TOKEN: &str = "EAAG-whatsapp-token-SECRET-4";

/// Which call a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    GetPage,
    GetIgUser,
    Feed,
    Photos,
    GetPhoto,
    Media,
    GetContainer,
    PublishingLimit,
    MediaPublish,
    /// `POST /{WA_PHONE_ID}/messages`.
    Messages,
    /// `GET /{WA_PHONE_ID}`.
    GetPhoneNumber,
    Unknown,
}

#[derive(Debug, Clone)]
pub struct FilePart {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    /// The full URL as received (to prove no secret is in it).
    pub url: String,
    pub query: BTreeMap<String, String>,
    /// Body parameters (form, JSON or multipart text parts).
    pub body: BTreeMap<String, String>,
    pub files: Vec<FilePart>,
    pub content_type: String,
    pub authorization: Option<String>,
    /// The body, when it is JSON.
    pub json: Option<Value>,
}

impl Recorded {
    /// A parameter from the body or the query.
    pub fn param(&self, k: &str) -> Option<&str> {
        self.body.get(k).or_else(|| self.query.get(k)).map(String::as_str)
    }
}

/// A scripted Graph error.
#[derive(Debug, Clone)]
pub struct FakeError {
    pub status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub headers: Vec<(String, String)>,
    /// The Cloud API's `error_data.details`.
    pub details: Option<String>,
}

impl FakeError {
    pub fn new(code: i64, subcode: Option<i64>, message: &str) -> FakeError {
        FakeError {
            status: 400,
            code,
            subcode,
            message: message.into(),
            headers: Vec::new(),
            details: None,
        }
    }

    /// A Cloud API error: HTTP `status`, `code`, the title in the message, `details`.
    pub fn whatsapp(status: u16, code: i64, title: &str, details: &str) -> FakeError {
        FakeError {
            status,
            details: Some(details.into()),
            ..FakeError::new(code, None, &format!("(#{code}) {title}"))
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> FakeError {
        self.headers.push((k.into(), v.into()));
        self
    }
}

/// An answer computed from the request (to echo it back).
pub type Reply = Arc<dyn Fn(&Request) -> ResponseTemplate + Send + Sync>;

#[derive(Default)]
pub struct State {
    /// token -> its app secret (when the app requires appsecret_proof).
    tokens: HashMap<String, Option<String>>,
    pub requests: Vec<Recorded>,
    failures: HashMap<Endpoint, VecDeque<FakeError>>,
    /// Scripted answers that replace the next calls of an endpoint (e.g. a 200 without an id).
    replies: HashMap<Endpoint, VecDeque<Reply>>,
    delays: HashMap<Endpoint, Duration>,
    /// The least time before the k-th next call of an endpoint (the last repeats), and how
    /// many calls came sooner: a client's waits are asserted as a count.
    spacing: HashMap<Endpoint, Vec<Duration>>,
    too_soon: HashMap<Endpoint, usize>,
    /// (status_code, status) answered by successive polls of a new container; the last repeats.
    container_script: Vec<(String, String)>,
    containers: HashMap<String, (usize, String)>,
    unpublished_photos: Vec<String>,
    pub quota_usage: u64,
    pub quota_total: u64,
    next: u64,
    /// WhatsApp recipients (`to`, digits) whose every message is refused with this error.
    refused: HashMap<String, FakeError>,
}

impl State {
    fn note_spacing(&mut self, rec: &Recorded) {
        let Some(gaps) = self.spacing.get(&rec.endpoint) else {
            return;
        };
        let earlier: Vec<Instant> = self
            .requests
            .iter()
            .filter(|r| r.endpoint == rec.endpoint)
            .map(|r| r.at)
            .collect();
        if let (Some(prev), Some(gap)) = (
            earlier.last(),
            gaps.get(earlier.len().saturating_sub(1)).or(gaps.last()),
        ) && rec.at - *prev < *gap
        {
            *self.too_soon.entry(rec.endpoint).or_default() += 1;
        }
    }
}

#[derive(Clone)]
pub struct GraphFake {
    pub server: Arc<MockServer>,
    pub state: Arc<Mutex<State>>,
}

struct Handler(Arc<Mutex<State>>);

impl GraphFake {
    pub async fn start() -> GraphFake {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State {
            container_script: vec![
                ("IN_PROGRESS".into(), "In Progress".into()),
                ("IN_PROGRESS".into(), "In Progress".into()),
                (
                    "FINISHED".into(),
                    "Finished: Media has been uploaded and it is ready to be published.".into(),
                ),
            ],
            quota_total: 50,
            ..State::default()
        }));
        state
            .lock()
            .unwrap()
            .tokens
            .insert(FB_TOKEN.into(), Some(FB_SECRET.into()));
        state.lock().unwrap().tokens.insert(IG_TOKEN.into(), None);
        state.lock().unwrap().tokens.insert(WA_TOKEN.into(), None);
        Mock::given(any())
            .respond_with(Handler(state.clone()))
            .mount(&server)
            .await;
        GraphFake {
            server: Arc::new(server),
            state,
        }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn of(&self, e: Endpoint) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.endpoint == e).collect()
    }

    /// The next `times` calls of `e` fail with `err`.
    pub fn fail(&self, e: Endpoint, times: usize, err: FakeError) -> &GraphFake {
        let mut s = self.state.lock().unwrap();
        let q = s.failures.entry(e).or_default();
        for _ in 0..times {
            q.push_back(err.clone());
        }
        drop(s);
        self
    }

    /// The next `times` calls of `e` get `reply(request)` instead of Graph's answer.
    pub fn reply(
        &self,
        e: Endpoint,
        times: usize,
        reply: impl Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
    ) -> &GraphFake {
        let reply: Reply = Arc::new(reply);
        let q = &mut self.state.lock().unwrap().replies;
        q.entry(e).or_default().extend(std::iter::repeat_n(reply, times));
        self
    }

    pub fn delay(&self, e: Endpoint, d: Duration) -> &GraphFake {
        self.state.lock().unwrap().delays.insert(e, d);
        self
    }

    /// Calls of `e` must come at least `gaps[k]` after the one before (k from 0, the last
    /// repeats); `too_soon` counts those that did not.
    pub fn spacing(&self, e: Endpoint, gaps: &[Duration]) -> &GraphFake {
        self.state.lock().unwrap().spacing.insert(e, gaps.to_vec());
        self
    }

    /// Calls of `e` that came sooner than `spacing` allows.
    pub fn too_soon(&self, e: Endpoint) -> usize {
        self.state.lock().unwrap().too_soon.get(&e).copied().unwrap_or(0)
    }

    pub fn container_script(&self, steps: &[(&str, &str)]) -> &GraphFake {
        self.state.lock().unwrap().container_script =
            steps.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        self
    }

    /// Every WhatsApp message to `to` (E.164 digits, no `+`) gets `err`.
    pub fn refuse_to(&self, to: &str, err: FakeError) -> &GraphFake {
        self.state.lock().unwrap().refused.insert(to.into(), err);
        self
    }

    pub fn quota(&self, used: u64, total: u64) -> &GraphFake {
        let mut s = self.state.lock().unwrap();
        s.quota_usage = used;
        s.quota_total = total;
        drop(s);
        self
    }
}

pub fn proof(secret: &str, token: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn envelope(status: u16, code: i64, subcode: Option<i64>, message: &str) -> ResponseTemplate {
    enveloped(status, code, subcode, message, None)
}

fn enveloped(status: u16, code: i64, subcode: Option<i64>, message: &str, details: Option<&str>) -> ResponseTemplate {
    let mut e = json!({"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEfGh123"});
    if let Some(s) = subcode {
        e["error_subcode"] = json!(s);
    }
    if let Some(d) = details {
        e["error_data"] = json!({"messaging_product": "whatsapp", "details": d});
    }
    ResponseTemplate::new(status).set_body_json(json!({ "error": e }))
}

fn fake_error(err: &FakeError) -> ResponseTemplate {
    enveloped(err.status, err.code, err.subcode, &err.message, err.details.as_deref())
}

fn query_pairs(s: &str) -> BTreeMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{s}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    (from..=hay.len().saturating_sub(needle.len())).find(|&i| hay[i..].starts_with(needle))
}

/// multipart/form-data as reqwest (and browsers) write it.
fn multipart(body: &[u8], boundary: &str) -> (BTreeMap<String, String>, Vec<FilePart>) {
    let delim = format!("--{boundary}").into_bytes();
    let mut cuts = Vec::new();
    let mut at = 0;
    while let Some(i) = find(body, &delim, at) {
        cuts.push(i);
        at = i + delim.len();
    }
    let (mut fields, mut files) = (BTreeMap::new(), Vec::new());
    for w in cuts.windows(2) {
        let seg = &body[w[0] + delim.len()..w[1]];
        let seg = seg.strip_prefix(b"\r\n").unwrap_or(seg);
        let seg = seg.strip_suffix(b"\r\n").unwrap_or(seg);
        let Some(split) = find(seg, b"\r\n\r\n", 0) else {
            continue;
        };
        let head = String::from_utf8_lossy(&seg[..split]).to_string();
        let content = seg[split + 4..].to_vec();
        let attr = |name: &str| {
            let key = format!("{name}=\"");
            head.find(&key).map(|i| {
                let rest = &head[i + key.len()..];
                rest[..rest.find('"').unwrap_or(rest.len())].to_string()
            })
        };
        let name = attr(" name").or_else(|| attr("name")).unwrap_or_default();
        let content_type = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-type:"))
            .map(|l| l["content-type:".len()..].trim().to_string());
        match attr("filename") {
            Some(f) => files.push(FilePart {
                name,
                file_name: Some(f),
                content_type,
                bytes: content,
            }),
            None => {
                fields.insert(name, String::from_utf8_lossy(&content).into_owned());
            }
        }
    }
    (fields, files)
}

fn record(req: &Request) -> Recorded {
    let content_type = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (body, files) = if content_type.starts_with("application/x-www-form-urlencoded") {
        (query_pairs(&String::from_utf8_lossy(&req.body)), Vec::new())
    } else if content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
        let m = v
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                    .collect()
            })
            .unwrap_or_default();
        (m, Vec::new())
    } else if let Some(b) = content_type.split("boundary=").nth(1) {
        multipart(&req.body, b.trim_matches('"'))
    } else {
        (BTreeMap::new(), Vec::new())
    };
    Recorded {
        at: Instant::now(),
        endpoint: Endpoint::Unknown,
        method: req.method.to_string(),
        path: req.url.path().to_string(),
        url: req.url.to_string(),
        query: query_pairs(req.url.query().unwrap_or("")),
        body,
        files,
        content_type,
        authorization: req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        json: serde_json::from_slice(&req.body).ok(),
    }
}

/// `/v26.0/a/b` -> ["a", "b"], or None when the version is missing.
fn versioned(path: &str) -> Option<Vec<String>> {
    let mut segs = path.trim_start_matches('/').split('/');
    let v = segs.next()?;
    let (major, minor) = v.strip_prefix('v')?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some(segs.filter(|s| !s.is_empty()).map(str::to_string).collect())
}

impl Respond for Handler {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let mut rec = record(req);
        let mut s = self.0.lock().unwrap();
        let segs = versioned(&rec.path);
        let method = rec.method.as_str();
        rec.endpoint = match (method, segs.as_deref()) {
            (_, None) => Endpoint::Unknown,
            ("GET", Some([id])) if id == PAGE_ID => Endpoint::GetPage,
            ("GET", Some([id])) if id == IG_ID => Endpoint::GetIgUser,
            ("GET", Some([id])) if id == WA_PHONE_ID => Endpoint::GetPhoneNumber,
            ("POST", Some([id, e])) if id == WA_PHONE_ID && e == "messages" => Endpoint::Messages,
            ("GET", Some([id])) if s.unpublished_photos.contains(id) => Endpoint::GetPhoto,
            ("GET", Some([id])) if s.containers.contains_key(id) => Endpoint::GetContainer,
            ("POST", Some([id, e])) if id == PAGE_ID && e == "feed" => Endpoint::Feed,
            ("POST", Some([id, e])) if id == PAGE_ID && e == "photos" => Endpoint::Photos,
            ("POST", Some([id, e])) if id == IG_ID && e == "media" => Endpoint::Media,
            ("POST", Some([id, e])) if id == IG_ID && e == "media_publish" => Endpoint::MediaPublish,
            ("GET", Some([id, e])) if id == IG_ID && e == "content_publishing_limit" => Endpoint::PublishingLimit,
            _ => Endpoint::Unknown,
        };
        let endpoint = rec.endpoint;
        s.note_spacing(&rec);
        s.requests.push(rec.clone());
        if let Some(reply) = s.replies.get_mut(&endpoint).and_then(VecDeque::pop_front) {
            return reply(req);
        }
        let delay = s.delays.get(&endpoint).copied().unwrap_or_default();
        let answer = answer(&mut s, &rec, segs.unwrap_or_default());
        let usage = r#"{"call_count":3,"total_time":2,"total_cputime":1}"#;
        let answer = if answer.1 {
            answer.0
        } else {
            answer.0.insert_header("x-app-usage", usage)
        };
        answer.set_delay(delay)
    }
}

/// The response, and whether it already carries its own usage headers.
fn answer(s: &mut State, r: &Recorded, segs: Vec<String>) -> (ResponseTemplate, bool) {
    if versioned(&r.path).is_none() {
        return (
            envelope(400, 2500, None, "Unknown path components: version missing"),
            false,
        );
    }
    // Auth: Bearer header or access_token parameter.
    let token = r
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .or_else(|| r.param("access_token"))
        .map(str::to_string);
    let Some(token) = token else {
        return (
            envelope(
                400,
                190,
                None,
                "An active access token must be used to query information.",
            ),
            false,
        );
    };
    let Some(secret) = s.tokens.get(&token).cloned() else {
        return (
            envelope(400, 190, None, "Invalid OAuth access token - Cannot parse access token"),
            false,
        );
    };
    if let Some(secret) = secret {
        match r.param("appsecret_proof") {
            None => {
                return (
                    envelope(
                        400,
                        100,
                        None,
                        "API calls from the server require an appsecret_proof argument",
                    ),
                    false,
                );
            }
            Some(p) if p != proof(&secret, &token) => {
                return (
                    envelope(400, 100, None, "Invalid appsecret_proof provided in the API argument"),
                    false,
                );
            }
            _ => {}
        }
    }
    if let Some(err) = s.failures.get_mut(&r.endpoint).and_then(VecDeque::pop_front) {
        let mut t = fake_error(&err);
        let own = !err.headers.is_empty();
        for (k, v) in &err.headers {
            t = t.insert_header(k.as_str(), v.as_str());
        }
        return (t, own);
    }
    s.next += 1;
    let n = s.next;
    let ok = |v: Value| (ResponseTemplate::new(200).set_body_json(v), false);
    let fields = r.param("fields").unwrap_or("").to_string();
    match r.endpoint {
        Endpoint::GetPage => {
            if fields != "id,name" {
                return (envelope(400, 100, None, "(#100) unexpected fields"), false);
            }
            ok(json!({"id": PAGE_ID, "name": "Sarah Kastner Fotografie"}))
        }
        Endpoint::GetIgUser => ok(json!({"id": IG_ID, "username": "sarahkastner.foto"})),
        Endpoint::Feed => {
            if r.param("message").is_none() && r.param("link").is_none() {
                return (envelope(400, 100, None, "(#100) Missing message or attachment"), false);
            }
            ok(json!({"id": format!("{PAGE_ID}_{n}")}))
        }
        Endpoint::Photos => {
            let has_source = r.files.iter().any(|f| f.name == "source" && !f.bytes.is_empty());
            if r.param("url").is_none() && !has_source {
                return (envelope(400, 324, None, "(#324) Requires upload file"), false);
            }
            let photo = format!("{}", 900_000 + n);
            if r.param("published") == Some("false") {
                s.unpublished_photos.push(photo.clone());
                ok(json!({"id": photo}))
            } else {
                ok(json!({"id": photo, "post_id": format!("{PAGE_ID}_{n}")}))
            }
        }
        Endpoint::GetPhoto => {
            let id = &segs[0];
            if fields != "images" {
                return (envelope(400, 100, None, "(#100) unexpected fields"), false);
            }
            // Not largest-first on purpose: the client must pick the largest.
            ok(json!({"id": id, "images": [
                {"height": 480, "width": 640, "source": format!("https://scontent.fake.example/s640/{id}.jpg")},
                {"height": 1080, "width": 1440, "source": format!("https://scontent.fake.example/o1440/{id}.jpg")},
                {"height": 135, "width": 180, "source": format!("https://scontent.fake.example/s180/{id}.jpg")}
            ]}))
        }
        Endpoint::Media => {
            if r.param("image_url").is_none() {
                return (
                    envelope(400, 100, None, "(#100) The parameter image_url is required"),
                    false,
                );
            }
            let id = format!("{}", 1_780_000 + n);
            s.containers.insert(id.clone(), (0, "IN_PROGRESS".into()));
            ok(json!({"id": id}))
        }
        Endpoint::GetContainer => {
            let id = segs[0].clone();
            if !fields.split(',').any(|f| f == "status_code") {
                return (envelope(400, 100, None, "(#100) unexpected fields"), false);
            }
            let script = s.container_script.clone();
            let c = s.containers.get_mut(&id).unwrap();
            let (code, status) = script[c.0.min(script.len() - 1)].clone();
            c.0 += 1;
            c.1 = code.clone();
            ok(json!({"id": id, "status_code": code, "status": status}))
        }
        Endpoint::PublishingLimit => ok(json!({"data": [{
            "quota_usage": s.quota_usage,
            "config": {"quota_total": s.quota_total, "quota_duration": 86400}
        }]})),
        Endpoint::MediaPublish => {
            let Some(c) = r.param("creation_id").and_then(|c| s.containers.get(c)) else {
                return (envelope(400, 100, None, "(#100) creation_id is invalid"), false);
            };
            if c.1 != "FINISHED" {
                return (envelope(400, 9007, Some(2207027), "Media ID is not available"), false);
            }
            if s.quota_usage >= s.quota_total {
                return (
                    envelope(400, 9, Some(2207042), "Application request limit reached"),
                    false,
                );
            }
            s.quota_usage += 1;
            let id = r.param("creation_id").unwrap().to_string();
            s.containers.get_mut(&id).unwrap().1 = "PUBLISHED".into();
            ok(json!({"id": format!("{}", 1_790_000 + n)}))
        }
        Endpoint::GetPhoneNumber => {
            if fields != "display_phone_number,verified_name,quality_rating" {
                return (envelope(400, 100, None, "(#100) unexpected fields"), false);
            }
            ok(
                json!({"display_phone_number": "+49 30 1234567", "verified_name": "Sarah Kastner Fotografie",
                "quality_rating": "GREEN", "id": WA_PHONE_ID}),
            )
        }
        Endpoint::Messages => match whatsapp_message(r) {
            Err(e) => (fake_error(&e), false),
            Ok(to) => match s.refused.get(&to) {
                Some(e) => (fake_error(e), false),
                None => ok(json!({
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": format!("wamid.HBgN{to}FQIAERgS{n:06}"), "message_status": "accepted"}]
                })),
            },
        },
        Endpoint::Unknown => (
            envelope(400, 100, Some(33), "Unsupported request: unknown path components"),
            false,
        ),
    }
}

/// A template message as the Cloud API documents it; its `to`, or the error Meta answers.
fn whatsapp_message(r: &Recorded) -> Result<String, FakeError> {
    let invalid = |what: &str| {
        FakeError::whatsapp(
            400,
            100,
            "Invalid parameter",
            &format!("Parameter {what} is invalid or missing"),
        )
    };
    if !r.content_type.starts_with("application/json") {
        return Err(invalid("body (application/json expected)"));
    }
    let b = r
        .json
        .as_ref()
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("body"))?;
    let known = [
        "messaging_product",
        "recipient_type",
        "to",
        "type",
        "template",
        "biz_opaque_callback_data",
    ];
    if let Some(k) = b.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(invalid(k));
    }
    if b.get("messaging_product") != Some(&json!("whatsapp")) {
        return Err(invalid("messaging_product"));
    }
    if b.get("recipient_type").is_some_and(|t| t != "individual") {
        return Err(invalid("recipient_type"));
    }
    let to = b.get("to").and_then(Value::as_str).unwrap_or_default();
    if to.is_empty() || !to.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid("to"));
    }
    if b.get("type") != Some(&json!("template")) {
        return Err(invalid("type"));
    }
    if b.get("biz_opaque_callback_data")
        .is_some_and(|c| c.as_str().is_none_or(|c| c.chars().count() > 512))
    {
        return Err(invalid("biz_opaque_callback_data"));
    }
    let t = &b["template"];
    let named = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
    if !named(&t["name"]) || !named(&t["language"]["code"]) {
        return Err(FakeError::whatsapp(
            404,
            132001,
            "Template name does not exist in the translation",
            "template name or language missing",
        ));
    }
    for c in t["components"].as_array().into_iter().flatten() {
        if c["type"] != "body" {
            return Err(invalid("template.components.type"));
        }
        for p in c["parameters"].as_array().into_iter().flatten() {
            let text = p["text"].as_str().unwrap_or_default();
            if p["type"] != "text" || text.is_empty() {
                return Err(invalid("template.components.parameters"));
            }
            if text.contains(['\n', '\t']) || text.contains("     ") {
                return Err(FakeError::whatsapp(
                    400,
                    132018,
                    "There was an issue with the parameters in your template.",
                    "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
                ));
            }
        }
    }
    Ok(to.to_string())
}
