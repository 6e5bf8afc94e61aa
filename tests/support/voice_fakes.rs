//! In-process fakes of the voice APIs (wiremock on 127.0.0.1), following the providers'
//! documented contracts: Twilio's Call resource (`POST .../Calls.json`, form body, Basic
//! auth, `201` call resource or the `{code, message, more_info, status}` envelope; `GET
//! .../Calls/{sid}.json`) and Vonage's Voice API (`POST /v1/calls`, JSON, Bearer JWT, `201`
//! `{uuid, status, direction, conversation_uuid}` or an RFC 7807 problem; `GET
//! /v1/calls/{uuid}`, `GET /v1/calls`). A request missing what the provider requires gets
//! the provider's error, so a test sees it fail rather than pass on a lenient fake.
#![allow(dead_code)]

use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

use super::channels::python_script;
use super::sms_fakes::{Log, TWILIO_SID, TWILIO_TOKEN, answer, basic, form_value, twilio_error};

// --- Twilio -----------------------------------------------------------------------------------

pub fn twilio_calls_path() -> String {
    format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls.json")
}

/// A deterministic call sid per recipient: "CA" + the digits, zero-padded to 34 characters.
pub fn twilio_call_sid_for(to: &str) -> String {
    let digits: String = to.chars().filter(char::is_ascii_digit).collect();
    format!("CA{digits:0>32}")
}

/// What Twilio answers a call create that lacks its auth, content type or required fields.
fn twilio_refusal(request: &Request) -> Option<ResponseTemplate> {
    let auth = request.headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(basic(TWILIO_SID, TWILIO_TOKEN).as_str()) {
        return Some(twilio_error(401, 20003, "Authenticate"));
    }
    let form = request.headers.get("content-type").and_then(|v| v.to_str().ok());
    if form != Some("application/x-www-form-urlencoded") {
        return Some(twilio_error(400, 21205, "Url parameter is required"));
    }
    let field = |k: &str| form_value(request, k).filter(|v| !v.is_empty());
    if field("To").is_none() {
        return Some(twilio_error(400, 21201, "No 'To' number is specified"));
    }
    if field("From").is_none() {
        return Some(twilio_error(400, 21213, "No 'From' number is specified"));
    }
    if field("Twiml").is_none() && field("Url").is_none() && field("ApplicationSid").is_none() {
        return Some(twilio_error(400, 21205, "Url parameter is required"));
    }
    None
}

/// `201 Created` with the call resource, as Twilio answers a call create.
pub fn twilio_call_created(request: &Request) -> ResponseTemplate {
    if let Some(refused) = twilio_refusal(request) {
        return refused;
    }
    let to = form_value(request, "To").unwrap_or_default();
    let sid = twilio_call_sid_for(&to);
    ResponseTemplate::new(201).set_body_json(json!({
        "sid": sid, "account_sid": TWILIO_SID, "to": to, "from": form_value(request, "From"),
        "status": "queued", "direction": "outbound-api", "duration": null, "price": null,
        "price_unit": "USD", "start_time": null, "end_time": null, "queue_time": "0",
        "date_created": "Fri, 03 Apr 2026 09:12:00 +0000",
        "uri": format!("/2010-04-01/Accounts/{TWILIO_SID}/Calls/{sid}.json"),
    }))
}

/// The call resource as `GET .../Calls/{sid}.json` returns it, with `status`.
pub fn twilio_call_status(sid: &str, status: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "sid": sid, "account_sid": TWILIO_SID, "status": status, "direction": "outbound-api",
        "duration": "12", "answered_by": null,
    }))
}

/// A Twilio fake for voice: call creates answered by `create`, status lookups by
/// `status(sid)`, the account resource; returns the server and the logs of creates and lookups.
pub async fn twilio_voice_fake(
    create: impl Fn(&Request, usize) -> ResponseTemplate + Send + Sync + 'static,
    status: impl Fn(&str) -> &'static str + Send + Sync + 'static,
) -> (MockServer, Log, Log) {
    let server = MockServer::start().await;
    let calls = answer(&server, "POST", twilio_calls_path(), create).await;
    let lookups = Log::default();
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            r"^/2010-04-01/Accounts/{TWILIO_SID}/Calls/CA[0-9a-f]{{32}}\.json$"
        )))
        .respond_with(super::sms_fakes::Scripted::new(&lookups, move |req, _| {
            let sid = req.url.path().rsplit('/').next().unwrap().trim_end_matches(".json");
            twilio_call_status(sid, status(sid))
        }))
        .mount(&server)
        .await;
    (server, calls, lookups)
}

/// The `Twiml` of a call create parsed by Python's XML parser (an implementation independent
/// of ours): `{"tag", "attrib", "text", "children": [...]}` of the root.
pub fn parsed_twiml(twiml: &str) -> Value {
    let out = python_script(
        "xml.etree.ElementTree",
        "import sys, json, xml.etree.ElementTree as ET\n\
         def node(e): return {'tag': e.tag, 'attrib': e.attrib, 'text': e.text, 'children': [node(c) for c in e]}\n\
         print(json.dumps(node(ET.fromstring(sys.argv[1]))))",
        &[twiml],
    );
    serde_json::from_str(&out).unwrap()
}

// --- Vonage -----------------------------------------------------------------------------------

pub const VONAGE_APP_ID: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

/// A uuid per recipient number, so tests know which call is whose.
pub fn vonage_uuid_for(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    format!(
        "63f61863-4a51-4f6b-86e1-{:0>12}",
        &digits[digits.len().saturating_sub(12)..]
    )
}

/// An RFC 7807 problem as the Vonage APIs answer errors.
pub fn vonage_problem(http: u16, kind: &str, title: &str, detail: &str) -> ResponseTemplate {
    ResponseTemplate::new(http).set_body_raw(
        json!({
            "type": format!("https://developer.nexmo.com/api-errors#{kind}"),
            "title": title, "detail": detail, "instance": "bf0ca0bf927b3b52e3cb03217e1a1ddf",
        })
        .to_string(),
        "application/problem+json",
    )
}

/// What Vonage answers a call create without a Bearer token, as JSON, or without the
/// documented `to` / `from` / `ncco`.
fn vonage_refusal(request: &Request) -> Option<ResponseTemplate> {
    let auth = request.headers.get("authorization").and_then(|v| v.to_str().ok());
    if !auth.is_some_and(|a| a.starts_with("Bearer ") && a.split('.').count() == 3) {
        return Some(vonage_problem(
            401,
            "unauthorized",
            "Unauthorized",
            "You did not provide correct credentials.",
        ));
    }
    let ct = request.headers.get("content-type").and_then(|v| v.to_str().ok());
    let body: Option<Value> = serde_json::from_slice(&request.body).ok();
    let Some(body) = body.filter(|_| ct == Some("application/json")) else {
        return Some(vonage_problem(
            400,
            "bad-request",
            "Bad Request",
            "The request body is not JSON.",
        ));
    };
    let phone = |v: &Value| {
        v["type"] == "phone"
            && v["number"]
                .as_str()
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    };
    let talk = |a: &Value| a["action"] == "talk" && a["text"].as_str().is_some_and(|t| !t.is_empty());
    let ok = body["to"].as_array().is_some_and(|to| to.len() == 1 && phone(&to[0]))
        && phone(&body["from"])
        && body["ncco"]
            .as_array()
            .is_some_and(|n| !n.is_empty() && n.iter().all(talk));
    (!ok).then(|| {
        vonage_problem(
            400,
            "invalid-parameters",
            "Invalid Parameters",
            "to, from or ncco is invalid",
        )
    })
}

/// `201 Created` as Vonage answers a call create.
pub fn vonage_call_created(request: &Request) -> ResponseTemplate {
    if let Some(refused) = vonage_refusal(request) {
        return refused;
    }
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let uuid = vonage_uuid_for(body["to"][0]["number"].as_str().unwrap());
    ResponseTemplate::new(201).set_body_json(json!({
        "uuid": uuid, "status": "started", "direction": "outbound",
        "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
    }))
}

/// A Vonage Voice fake: call creates answered by `create`, `GET /v1/calls/{uuid}` with
/// `status(uuid)`, `GET /v1/calls` (the list); returns the server and the logs of creates and
/// reads (lookups and the list).
pub async fn vonage_voice_fake(
    create: impl Fn(&Request, usize) -> ResponseTemplate + Send + Sync + 'static,
    status: impl Fn(&str) -> &'static str + Send + Sync + 'static,
) -> (MockServer, Log, Log) {
    let server = MockServer::start().await;
    let calls = answer(&server, "POST", "/v1/calls", create).await;
    let reads = Log::default();
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path_regex(r"^/v1/calls(/[0-9a-f-]+)?$"))
        .respond_with(super::sms_fakes::Scripted::new(&reads, move |req, _| {
            if !req
                .headers
                .get("authorization")
                .is_some_and(|a| a.to_str().unwrap().starts_with("Bearer "))
            {
                return vonage_problem(
                    401,
                    "unauthorized",
                    "Unauthorized",
                    "You did not provide correct credentials.",
                );
            }
            match req.url.path().strip_prefix("/v1/calls/") {
                Some(uuid) => ResponseTemplate::new(200).set_body_json(json!({
                    "uuid": uuid, "conversation_uuid": "CON-f972836a-550f-45fa-956c-12a2ab5b7d22",
                    "status": status(uuid), "direction": "outbound", "duration": "12",
                })),
                None => ResponseTemplate::new(200).set_body_json(json!({
                    "count": 0, "page_size": 1, "record_index": 0, "_embedded": {"calls": []},
                })),
            }
        }))
        .mount(&server)
        .await;
    (server, calls, reads)
}

/// One RSA key pair for the whole test binary (made once: key generation is slow).
pub fn rsa_key_pair() -> &'static (String, String) {
    static PAIR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    PAIR.get_or_init(fresh_rsa_key_pair)
}

/// A fresh RSA key pair (Python's `cryptography`): the PKCS#8 private key and the public key,
/// both PEM.
fn fresh_rsa_key_pair() -> (String, String) {
    let out = python_script(
        "cryptography",
        "import json\n\
         from cryptography.hazmat.primitives.asymmetric import rsa\n\
         from cryptography.hazmat.primitives import serialization as s\n\
         k = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n\
         print(json.dumps([k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode(),\n\
         k.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo).decode()]))",
        &[],
    );
    let [private, public]: [String; 2] = serde_json::from_str(&out).unwrap();
    (private, public)
}

/// The header and claims of an RS256 JWT whose signature Python's `cryptography` verified
/// with `public_pem`; panics when it does not verify.
pub fn verified_jwt(token: &str, public_pem: &str) -> (Value, Value) {
    let out = python_script(
        "cryptography",
        "import sys, json, base64\n\
         from cryptography.hazmat.primitives import hashes, serialization\n\
         from cryptography.hazmat.primitives.asymmetric import padding\n\
         def b64(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))\n\
         h, c, sig = sys.argv[1].split('.')\n\
         key = serialization.load_pem_public_key(sys.argv[2].encode())\n\
         key.verify(b64(sig), (h + '.' + c).encode(), padding.PKCS1v15(), hashes.SHA256())\n\
         print(json.dumps([json.loads(b64(h)), json.loads(b64(c))]))",
        &[token, public_pem],
    );
    let [header, claims]: [Value; 2] = serde_json::from_str(&out).unwrap();
    (header, claims)
}
