//! Webhook (signed, chat presets), Telegram and Mastodon channels, end to end through the
//! binary against local fakes (wiremock on 127.0.0.1) that follow each provider's documented
//! contract. Signatures are verified by an independent implementation: the `standardwebhooks`
//! Python package (PyPI), run on the recorded requests.

use crate::support;
use crate::support::channels;

use std::time::{Duration, SystemTime};

use channels::{deliveries_of, header, python_script};
use serde_json::{Value, json};
use support::{NO_ENV, Recorder, Scenario, assert_outcome, error_of};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const TG_TOKEN: &str = "123456789:AAE-fake-telegram-token_xyz";
const MASTO_TOKEN: &str = "masto-fake-token-4711";

/// Quotes, backslashes, newlines and emoji in title, summary and body.
const TITLE: &str = "Say \"hi\" \\ back 🎉";
const NOTICE: &str = r#"+++
title = "Say \"hi\" \\ back 🎉"
summary = "Line one\nline two with \\ and \" quotes"
thread = "outage-2026-04"
severity = "major"
link = "https://status.example.de"
+++
Body with "quotes", a back\\slash, a tab	and emoji 🎉.

Second paragraph.
"#;

fn hooks(channels: &str) -> Scenario {
    Scenario::new()
        .org("name = \"Studio Kastner\"\nphone = \"+49 30 1234567\"")
        .channel(channels)
        .file("notice.md", NOTICE)
}

const SEND: &[&str] = &["send", "notice.md", "--yes", "--json"];

/// Verify recorded requests with the `standardwebhooks` package; also checks that it rejects a
/// tampered body (so the verification is real). Returns the payloads it returned.
fn verify_with_standardwebhooks(dir: &std::path::Path, reqs: &[wiremock::Request]) -> Vec<Value> {
    let mut files = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let body = dir.join(format!("req{i}.body"));
        std::fs::write(&body, &r.body).unwrap();
        let headers: serde_json::Map<String, Value> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap())))
            .collect();
        let h = dir.join(format!("req{i}.headers.json"));
        std::fs::write(&h, serde_json::to_vec(&headers).unwrap()).unwrap();
        files.push(body.display().to_string());
        files.push(h.display().to_string());
    }
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
secret, files = sys.argv[1], sys.argv[2:]
out = []
for body_path, headers_path in zip(files[0::2], files[1::2]):
    body = open(body_path, "rb").read()
    headers = json.load(open(headers_path))
    wh = Webhook(secret)
    payload = wh.verify(body, headers)          # raises if the signature or timestamp is wrong
    try:
        wh.verify(body + b" ", headers)
        sys.exit("a tampered body verified")
    except WebhookVerificationError:
        pass
    out.append(payload)
print(json.dumps(out))
"#;
    let mut args = vec![SECRET];
    args.extend(files.iter().map(String::as_str));
    let out = python_script("standardwebhooks", script, &args);
    serde_json::from_str(out.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhook_verifies_and_keeps_its_id_across_a_retry() {
    let rec = Recorder::new(
        vec![ResponseTemplate::new(503).insert_header("Retry-After", "2")],
        ResponseTemplate::new(204),
    )
    .holding(|t| t + Duration::from_secs(2));
    let server = rec.serve_posts(Some("/hooks/incident")).await;
    let w = hooks(&format!(
        "[channels.hook]\ntype = \"webhook\"\nurl = \"{}/hooks/incident\"\nsecret_env = \"HOOK_SECRET\"\n\
         headers = {{ \"X-Source\" = \"announce\" }}\nretry_base = \"100ms\"\nmax_attempts = 3\n",
        server.uri()
    ))
    .build();
    let r = w.run_async(SEND, &[("HOOK_SECRET", SECRET)]).await;
    r.code(0);
    let report = r.json();
    let d = &deliveries_of(&report, "hook")[0];
    assert_eq!(d["status"], "sent", "{d}");
    assert_eq!(d["attempts"], 2, "{d}");
    assert!(!r.stdout().contains(SECRET) && !r.stderr().contains(SECRET));

    let reqs = rec.requests();
    // Never earlier than the receiver's Retry-After: an early retry gets the 503 again.
    assert_eq!(reqs.len(), 2, "503 then 2xx");
    let (a, b) = (&reqs[0].1, &reqs[1].1);
    // Stable id across the retry; per-attempt timestamp.
    assert!(!header(a, "webhook-id").is_empty());
    assert_eq!(header(a, "webhook-id"), header(b, "webhook-id"));
    assert_eq!(d["provider_id"], header(a, "webhook-id").as_str());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for req in [a, b] {
        let ts: i64 = header(req, "webhook-timestamp").parse().unwrap();
        assert!((now - ts).abs() <= 300, "timestamp {ts} not within 300 s of {now}");
        let sig = header(req, "webhook-signature");
        let b64 = sig.strip_prefix("v1,").unwrap_or_else(|| panic!("{sig}"));
        assert_eq!(b64.len(), 44, "base64 of a 32-byte HMAC-SHA256: {sig}");
        assert!(
            b64.chars().all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c)),
            "{sig}"
        );
        assert_eq!(header(req, "content-type"), "application/json");
        assert_eq!(header(req, "x-source"), "announce");
    }
    assert_eq!(a.body, b.body, "the same body on every attempt");

    let dir = tempfile::tempdir().unwrap();
    let payloads = verify_with_standardwebhooks(dir.path(), &[a.clone(), b.clone()]);
    assert_eq!(payloads.len(), 2);
    assert_eq!(payloads[0]["data"]["title"], TITLE);
}

#[tokio::test(flavor = "multi_thread")]
async fn default_body_is_valid_json_whatever_the_announcement_contains() {
    let rec = Recorder::always(ResponseTemplate::new(200).set_body_string("ok"));
    let server = rec.serve_posts(None).await;
    let w = hooks(&format!(
        "[channels.hook]\ntype = \"webhook\"\nurl = \"{}/in\"\n",
        server.uri()
    ))
    .build();
    w.run_async(SEND, NO_ENV).await.code(0);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0].1;
    assert!(header(r, "webhook-signature").is_empty(), "unsigned without secret_env");
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&r.body)));
    assert_eq!(v["type"], "announcement.published");
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &v["data"];
    assert_eq!(data["title"], TITLE);
    assert_eq!(data["summary"], "Line one\nline two with \\ and \" quotes");
    let body = data["body_text"].as_str().unwrap();
    for piece in ["\"quotes\"", "back\\slash", "\t", "🎉", "\n", "Second paragraph."] {
        assert!(body.contains(piece), "{piece:?} missing in {body:?}");
    }
    assert!(data["body_html"].as_str().unwrap().contains("<p>"));
    assert_eq!(data["severity"], "major");
    assert_eq!(data["thread"], "outage-2026-04");
    assert_eq!(data["link"], "https://status.example.de");
    assert_eq!(data["org"]["name"], "Studio Kastner");
    assert_eq!(data["run_id"].as_str().unwrap().len(), 36);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_is_retried_with_the_same_webhook_id() {
    let rec = Recorder::new(
        vec![ResponseTemplate::new(200).set_delay(Duration::from_secs(3))],
        ResponseTemplate::new(200),
    );
    let server = rec.serve_posts(None).await;
    let w = hooks(&format!(
        "[channels.hook]\ntype = \"webhook\"\nurl = \"{}/in\"\nsecret_env = \"HOOK_SECRET\"\ntimeout = \"1s\"\n\
         retry_base = \"100ms\"\nmax_attempts = 3\n",
        server.uri()
    ))
    .build();
    let r = w.run_async(SEND, &[("HOOK_SECRET", SECRET)]).await;
    r.code(0);
    let d = &deliveries_of(&r.json(), "hook")[0];
    assert_outcome(d, "sent", 2);
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(header(&reqs[0].1, "webhook-id"), header(&reqs[1].1, "webhook-id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_is_not_followed() {
    let target = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&target)
        .await;
    let rec = Recorder::always(
        ResponseTemplate::new(302).insert_header("Location", format!("{}/moved/secret-token", target.uri()).as_str()),
    );
    let server = rec.serve_posts(None).await;
    let w = hooks(&format!(
        "[channels.hook]\ntype = \"webhook\"\nurl = \"{}/in\"\nsecret_env = \"HOOK_SECRET\"\nretry_base = \"100ms\"\n",
        server.uri()
    ))
    .build();
    let r = w.run_async(SEND, &[("HOOK_SECRET", SECRET)]).await;
    r.code(3);
    let d = &deliveries_of(&r.json(), "hook")[0];
    assert_eq!(d["status"], "failed", "{d}");
    let err = d["error"].as_str().unwrap();
    assert!(err.contains("302") && err.contains("not followed"), "{err}");
    assert!(
        !err.contains("secret-token"),
        "the Location path is not repeated: {err}"
    );
    assert_eq!(
        rec.requests().len(),
        1,
        "a redirect is a permanent failure: not retried"
    );
    assert!(target.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_410_is_not_retried() {
    let rec = Recorder::always(ResponseTemplate::new(410).set_body_string("endpoint disabled"));
    let server = rec.serve_posts(None).await;
    let w = hooks(&format!(
        "[channels.hook]\ntype = \"webhook\"\nurl = \"{}/in\"\nretry_base = \"100ms\"\nmax_attempts = 5\n",
        server.uri()
    ))
    .build();
    let r = w.run_async(SEND, NO_ENV).await;
    let d = r.code(3).delivery_on("hook");
    assert_outcome(&d, "failed", 1);
    assert!(error_of(&d).contains("410"), "{d}");
    assert_eq!(rec.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_that_renders_invalid_json_stops_the_run_before_sending() {
    let rec = Recorder::always(ResponseTemplate::new(200));
    let server = rec.serve_posts(None).await;
    let w = hooks(&format!(
        "[channels.hook]\ntype = \"webhook\"\nurl = \"{}/in\"\n",
        server.uri()
    ))
    .top("templates_dir = \"templates\"")
    .build();
    // Unquoted value: not JSON once rendered.
    w.write("templates/webhook.json.hbs", "{\"title\": {{title}}}");
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(2).stderr_has("not valid JSON");
    assert!(rec.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn each_chat_preset_posts_its_documented_shape() {
    let server = MockServer::start().await;
    let mut recs = Vec::new();
    let mut cfg = String::new();
    for p in ["slack", "discord", "teams", "mattermost", "google-chat"] {
        let rec = Recorder::always(ResponseTemplate::new(200));
        Mock::given(method("POST"))
            .and(path(format!("/{p}")))
            .respond_with(rec.clone())
            .mount(&server)
            .await;
        recs.push((p, rec));
        cfg.push_str(&format!(
            "[channels.chat-{p}]\ntype = \"webhook\"\nurl = \"{}/{p}\"\npreset = \"{p}\"\n\n",
            server.uri()
        ));
    }
    let w = hooks(&cfg).build();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(0);
    let body = |p: &str| -> Value {
        let reqs = recs.iter().find(|(n, _)| *n == p).unwrap().1.requests();
        assert_eq!(reqs.len(), 1, "{p}");
        assert_eq!(header(&reqs[0].1, "content-type"), "application/json", "{p}");
        serde_json::from_slice(&reqs[0].1.body).unwrap()
    };
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };

    // Slack: {"text", "blocks"}: header block (plain_text title) and a mrkdwn section.
    let s = body("slack");
    assert_eq!(keys(&s), ["blocks", "text"]);
    assert!(s["text"].as_str().unwrap().starts_with(&format!("*{TITLE}*")));
    assert_eq!(s["blocks"][0]["type"], "header");
    assert_eq!(
        s["blocks"][0]["text"],
        json!({"type": "plain_text", "text": TITLE, "emoji": true})
    );
    assert_eq!(s["blocks"][1]["type"], "section");
    assert_eq!(s["blocks"][1]["text"]["type"], "mrkdwn");
    assert!(
        s["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("<https://status.example.de>")
    );

    // Discord: {"content" (<= 2000 chars), "allowed_mentions"}.
    let d = body("discord");
    assert_eq!(keys(&d), ["allowed_mentions", "content"]);
    let content = d["content"].as_str().unwrap();
    assert!(content.starts_with(&format!("**{TITLE}**\n")) && content.chars().count() <= 2000);
    assert_eq!(d["allowed_mentions"], json!({"parse": []}));

    // Teams (Workflows): a message with one Adaptive Card attachment.
    let t = body("teams");
    assert_eq!(t["type"], "message");
    let att = &t["attachments"][0];
    assert_eq!(t["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(att["contentType"], "application/vnd.microsoft.card.adaptive");
    assert!(att["contentUrl"].is_null());
    let card = &att["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["$schema"], "http://adaptivecards.io/schemas/adaptive-card.json");
    assert!(card["version"].as_str().unwrap().starts_with("1."));
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][0]["text"], TITLE);
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["url"], "https://status.example.de");

    // Mattermost and Google Chat: {"text"} only.
    let m = body("mattermost");
    assert_eq!(keys(&m), ["text"]);
    assert!(m["text"].as_str().unwrap().starts_with(&format!("#### {TITLE}\n")));
    let g = body("google-chat");
    assert_eq!(keys(&g), ["text"]);
    let gt = g["text"].as_str().unwrap();
    assert!(gt.starts_with(&format!("*{TITLE}*\n")) && gt.contains("Second paragraph."));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discord_message_over_2000_characters_is_refused_before_sending() {
    let rec = Recorder::always(ResponseTemplate::new(204));
    let server = rec.serve_posts(None).await;
    let w = hooks(&format!(
        "[channels.chat]\ntype = \"webhook\"\nurl = \"{}/d\"\npreset = \"discord\"\n",
        server.uri()
    ))
    .build();
    w.write(
        "long.md",
        &format!("+++\ntitle = \"Long\"\n+++\n{}\n", "word ".repeat(500)),
    );
    let r = w.run_async(&["send", "long.md", "--yes"], NO_ENV).await;
    r.code(2).stderr_has("2000");
    assert!(rec.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Telegram Bot API fake: POST /bot<token>/sendMessage with a JSON body.

fn tg_ok(chat: i64, message_id: i64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "ok": true,
        "result": {"message_id": message_id, "date": 1775000000, "chat": {"id": chat, "type": "channel"}, "text": "..."}
    }))
}

fn tg_error(code: u16, description: &str, parameters: Value) -> ResponseTemplate {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if !parameters.is_null() {
        body["parameters"] = parameters;
    }
    ResponseTemplate::new(code).set_body_json(body)
}

#[tokio::test(flavor = "multi_thread")]
async fn telegram_sends_one_message_per_chat_with_documented_error_handling() {
    let server = MockServer::start().await;
    let send_path = format!("/bot{TG_TOKEN}/sendMessage");
    let chat = |id: Value, rec: &Recorder| {
        Mock::given(method("POST"))
            .and(path(send_path.clone()))
            .and(body_partial_json(json!({ "chat_id": id })))
            .respond_with(rec.clone())
    };
    let news = Recorder::new(
        vec![tg_error(
            429,
            "Too Many Requests: retry after 2",
            json!({"retry_after": 2}),
        )],
        tg_ok(-1001111, 42),
    )
    .holding(|t| t + Duration::from_secs(2));
    let group = Recorder::always(tg_ok(-100123, 7));
    let blocked = Recorder::always(tg_error(403, "Forbidden: bot was blocked by the user", Value::Null));
    let migrated = Recorder::always(tg_error(
        400,
        "Bad Request: group chat was upgraded to a supergroup chat",
        json!({"migrate_to_chat_id": -1009990001}),
    ));
    chat(json!("@studio_news"), &news).mount(&server).await;
    chat(json!(-100123), &group).mount(&server).await;
    chat(json!(-100999), &blocked).mount(&server).await;
    chat(json!(-555), &migrated).mount(&server).await;

    let w = hooks(&format!(
        "[channels.tg]\ntype = \"telegram\"\nbot_token_env = \"TG_TOKEN\"\n\
         chat_ids = [\"@studio_news\", \"-100123\", \"-100999\", \"-555\"]\nbase_url = \"{}\"\n\
         retry_base = \"100ms\"\nmax_attempts = 3\n",
        server.uri()
    ))
    .build();
    let r = w.run_async(SEND, &[("TG_TOKEN", TG_TOKEN)]).await;
    r.code(3);
    let report = r.json();
    let ds = deliveries_of(&report, "tg");
    let by = |chat: &str| {
        ds.iter()
            .find(|d| d["recipient"] == chat)
            .unwrap_or_else(|| panic!("{chat}: {ds:?}"))
    };
    assert_eq!(ds.len(), 4, "one delivery per chat");

    let n = by("@studio_news");
    assert_eq!(
        (n["status"].as_str(), n["attempts"].as_u64()),
        (Some("sent"), Some(2)),
        "{n}"
    );
    assert_eq!(n["provider_id"], "-1001111:42");
    let reqs = news.requests();
    assert_eq!(
        reqs.len(),
        2,
        "no request before parameters.retry_after (it gets the 429 again)"
    );
    let b: Value = serde_json::from_slice(&reqs[0].1.body).unwrap();
    assert_eq!(header(&reqs[0].1, "content-type"), "application/json");
    assert_eq!(b["chat_id"], "@studio_news");
    let text = b["text"].as_str().unwrap();
    assert!(
        text.starts_with(TITLE) && text.contains("https://status.example.de"),
        "{text}"
    );
    assert!(b.get("parse_mode").is_none());

    assert_eq!(by("-100123")["status"], "sent");
    let bl = by("-100999");
    assert_eq!(bl["status"], "failed");
    assert_eq!(bl["attempts"], 1, "403 is permanent");
    assert!(bl["error"].as_str().unwrap().contains("blocked"), "{bl}");
    assert_eq!(blocked.requests().len(), 1);
    let mg = by("-555");
    assert_eq!(mg["status"], "failed");
    let err = mg["error"].as_str().unwrap();
    assert!(err.contains("-1009990001") && err.contains("chat_ids"), "{err}");
    assert_eq!(migrated.requests().len(), 1);

    // The token is in the URL path (the Bot API has no other place for it); it never leaks.
    assert!(!r.stdout().contains(TG_TOKEN) && !r.stderr().contains(TG_TOKEN));
    for f in w.files(".announce") {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(TG_TOKEN.len()).any(|win| win == TG_TOKEN.as_bytes()),
            "token in {}",
            f.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn telegram_connection_errors_never_show_the_token() {
    // A port with nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = hooks(&format!(
        "[channels.tg]\ntype = \"telegram\"\nbot_token_env = \"TG_TOKEN\"\nchat_ids = [\"@studio_news\"]\n\
         base_url = \"http://127.0.0.1:{port}\"\nmax_attempts = 1\n"
    ))
    .build();
    let r = w.run_async(SEND, &[("TG_TOKEN", TG_TOKEN)]).await;
    r.code(3);
    let d = &deliveries_of(&r.json(), "tg")[0];
    assert_eq!(d["status"], "failed");
    let err = d["error"].as_str().unwrap();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains(TG_TOKEN) && !r.stderr().contains(TG_TOKEN) && !r.stdout().contains(TG_TOKEN));
}

// ---------------------------------------------------------------------------------------------
// Mastodon fake: POST /api/v1/statuses, form body, Bearer token, Idempotency-Key.

fn masto_status(id: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": id, "uri": format!("https://social.example/users/studio/statuses/{id}"),
        "url": format!("https://social.example/@studio/{id}"), "created_at": "2026-04-03T09:12:00.000Z",
        "content": "<p>...</p>", "visibility": "unlisted"
    }))
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(body))).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn masto(server: &MockServer, extra: &str) -> Scenario {
    hooks(&format!(
        "[channels.masto]\ntype = \"mastodon\"\ninstance = \"{}\"\naccess_token_env = \"MASTO_TOKEN\"\n\
         visibility = \"unlisted\"\nretry_base = \"100ms\"\nmax_attempts = 4\n{extra}",
        server.uri()
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_retries_with_the_same_idempotency_key_and_waits_for_the_rate_limit_reset() {
    let server = MockServer::start().await;
    let reset = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(2);
    let reset_at = SystemTime::UNIX_EPOCH + Duration::from_millis(reset.as_millisecond() as u64);
    let rec = Recorder::new(
        vec![
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Limit", "300")
                .insert_header("X-RateLimit-Remaining", "0")
                .insert_header("X-RateLimit-Reset", reset.to_string().as_str())
                .set_body_json(json!({"error": "Too many requests"})),
            ResponseTemplate::new(503).set_body_string("upstream overloaded"),
        ],
        masto_status("109372845"),
    )
    .holding(move |_| reset_at);
    Mock::given(method("POST"))
        .and(path("/api/v1/statuses"))
        .respond_with(rec.clone())
        .mount(&server)
        .await;
    let w = masto(&server, "language = \"de\"\n").build();
    let r = w.run_async(SEND, &[("MASTO_TOKEN", MASTO_TOKEN)]).await;
    r.code(0);
    let d = &deliveries_of(&r.json(), "masto")[0];
    assert_eq!(d["status"], "sent", "{d}");
    assert_eq!(d["attempts"], 3);
    assert_eq!(d["provider_id"], "109372845");

    let reqs = rec.requests();
    // A retry before X-RateLimit-Reset would get the 429 again: a fourth request.
    assert_eq!(reqs.len(), 3);
    let key = header(&reqs[0].1, "idempotency-key");
    assert!(!key.is_empty());
    for (_, req) in &reqs {
        assert_eq!(header(req, "idempotency-key"), key, "same key on every attempt");
        assert_eq!(header(req, "authorization"), format!("Bearer {MASTO_TOKEN}"));
        assert_eq!(header(req, "content-type"), "application/x-www-form-urlencoded");
        let f = form(&req.body);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("visibility"), Some("unlisted"));
        assert_eq!(get("language"), Some("de"));
        let status = get("status").unwrap();
        assert!(
            status.starts_with(TITLE) && status.contains("https://status.example.de"),
            "{status}"
        );
        assert!(!req.url.query().is_some_and(|q| q.contains(MASTO_TOKEN)));
    }
    assert!(!r.stdout().contains(MASTO_TOKEN) && !r.stderr().contains(MASTO_TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_422_is_permanent() {
    let rec = Recorder::always(
        ResponseTemplate::new(422).set_body_json(json!({"error": "Validation failed: Text can't be blank"})),
    );
    let server = rec.serve_posts(Some("/api/v1/statuses")).await;
    let w = masto(&server, "").build();
    let r = w.run_async(SEND, &[("MASTO_TOKEN", MASTO_TOKEN)]).await;
    let d = r.code(3).delivery_on("masto");
    assert_outcome(&d, "failed", 1);
    assert!(error_of(&d).contains("Validation failed"), "{d}");
    assert_eq!(rec.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn mastodon_length_is_checked_before_anything_is_sent() {
    let rec = Recorder::always(masto_status("1"));
    let server = rec.serve_posts(None).await;
    let w = masto(&server, "max_characters = 40\n").build();
    let r = w.run_async(SEND, &[("MASTO_TOKEN", MASTO_TOKEN)]).await;
    r.code(2).stderr_has("max_characters = 40");
    assert!(rec.requests().is_empty());
}
