//! The shared HTTP layer, through the binary, for every HTTP channel at once (the four SMS
//! gateways, a plain webhook and each chat preset, Facebook, Instagram, WhatsApp, Telegram, Mastodon,
//! voice calls through Twilio and Vonage):
//!
//! * a 301/302/307/308 to a second server is a failure naming only the Location's host, and
//!   the second server receives nothing;
//! * a 2xx that is not the provider's documented success answer (an HTML page, an empty body,
//!   JSON without the id) is never `sent`;
//! * `http://` to a non-loopback host is refused for every URL key when the config is loaded,
//!   with file:line:column of the key, before anything is sent.

use crate::support;

use serde_json::json;
use support::scenario::{SEND, send_with};
use support::voice_fakes::{VONAGE_APP_ID, rsa_key_pair};
use support::{NO_ENV, Recorder, Scenario};
use wiremock::ResponseTemplate;

/// Every HTTP channel the config knows, with the one webhook per chat preset.
const CHANNELS: &[&str] = &[
    "twilio",
    "vonage",
    "seven",
    "generic",
    "hook",
    "slack",
    "discord",
    "teams",
    "mattermost",
    "google-chat",
    "facebook",
    "instagram",
    "whatsapp",
    "telegram",
    "mastodon",
    "voice-twilio",
    "voice-vonage",
];

const ENV: &[(&str, &str)] = &[
    ("T_TWILIO", "twilio-token-redirect-1"),
    ("T_VONAGE", "vonage-secret-redirect-2"),
    ("T_SEVEN", "seven-key-redirect-3"),
    ("T_GENERIC", "generic-token-redirect-4"),
    ("T_FB", "facebook-token-redirect-5"),
    ("T_IG", "instagram-token-redirect-6"),
    ("T_TG", "123456789:AAE-telegram-redirect-7"),
    ("T_MASTO", "mastodon-token-redirect-8"),
    ("T_WA", "whatsapp-token-redirect-9"),
];

/// Every HTTP channel of `CHANNELS` pointed at `uri`, one attempt each, with a customer and
/// an announcement with an image; its runs get `ENV`.
fn every_http_channel(uri: &str) -> Scenario {
    let one = "max_attempts = 1\n";
    let mut presets = String::new();
    for p in ["slack", "discord", "teams", "mattermost", "google-chat"] {
        presets.push_str(&format!(
            "[channels.{p}]\ntype = \"webhook\"\npreset = \"{p}\"\nurl = \"{uri}/hook/{p}\"\n{one}"
        ));
    }
    // The same Twilio account sends texts and places calls.
    let twilio = format!(
        "provider = \"twilio\"\nfrom = \"+4930123456\"\naccount_sid = \"AC0123456789abcdef0123456789abcdef\"\n\
         auth_token_env = \"T_TWILIO\"\nbase_url = \"{uri}\"\n{one}"
    );
    let tables = format!(
        r#"[channels.twilio]
type = "sms"
{twilio}
[channels.vonage]
type = "sms"
provider = "vonage"
from = "Studio"
api_key = "abcd1234"
api_secret_env = "T_VONAGE"
base_url = "{uri}"
{one}
[channels.seven]
type = "sms"
provider = "seven"
api_key_env = "T_SEVEN"
base_url = "{uri}"
{one}
[channels.generic]
type = "sms"
provider = "generic"
url = "{uri}/generic/send"
auth_token_env = "T_GENERIC"
id_pointer = "/id"
{one}
[channels.hook]
type = "webhook"
url = "{uri}/hook/plain"
{one}
{presets}
[channels.facebook]
type = "facebook"
page_id = "1234567890"
access_token_env = "T_FB"
graph_url = "{uri}"
{one}
[channels.instagram]
type = "instagram"
ig_user_id = "17841400000000001"
access_token_env = "T_IG"
graph_url = "{uri}"
poll_interval = "10ms"
{one}
[channels.whatsapp]
type = "whatsapp"
phone_number_id = "106540352242922"
access_token_env = "T_WA"
message_template = "stoerung_info"
language = "de"
parameters = ["{{{{recipient.name}}}}"]
graph_url = "{uri}"
{one}
[channels.telegram]
type = "telegram"
bot_token_env = "T_TG"
chat_ids = ["@studio_news"]
base_url = "{uri}"
{one}
[channels.mastodon]
type = "mastodon"
instance = "{uri}"
access_token_env = "T_MASTO"
{one}
[channels.voice-twilio]
type = "voice"
{twilio}
[channels.voice-vonage]
type = "voice"
provider = "vonage"
from = "+4930123456"
application_id = "{VONAGE_APP_ID}"
private_key_file = "vonage.key"
base_url = "{uri}"
{one}"#
    );
    Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience("name,email,phone\nAnna,anna@example.de,+4915123456789\n")
        .notice(
            "summary = \"Website offline, Termine finden statt.\"\nimage = \"https://cdn.example.de/notice.jpg\"",
            "Alle Termine finden statt.",
        )
        .channel(&tables)
        .file("vonage.key", &rsa_key_pair().0)
        .envs(ENV)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_never_followed_by_any_http_channel() {
    let (capture_server, capture) =
        Recorder::serving(|_| ResponseTemplate::new(200).set_body_json(json!({"id": "x"}))).await;
    let capture_host = capture_server.address().to_string();
    for status in [301u16, 302, 307, 308] {
        let location = format!("{}/capture/secret-path", capture_server.uri());
        let (server, first) =
            Recorder::serving(move |_| ResponseTemplate::new(status).insert_header("Location", location.as_str()))
                .await;
        let w = every_http_channel(&server.uri()).build();
        let r = w.run_async(SEND, NO_ENV).await;
        let deliveries = r.deliveries_on(CHANNELS);
        r.code(3);
        for (ch, d) in CHANNELS.iter().zip(&deliveries) {
            assert_eq!(d["status"], "failed", "{ch} after a {status}: {d}");
            let e = d["error"].as_str().unwrap_or_default();
            assert!(
                e.contains(&format!("HTTP {status} redirect to {capture_host} not followed")),
                "{ch} after a {status}: {e}"
            );
            assert!(!e.contains("secret-path") && !e.contains("/capture"), "{ch}: {e}");
        }
        assert!(
            !r.stderr().contains("secret-path"),
            "the full Location was printed:\n{}",
            r.describe()
        );
        // Each channel asked the first server (once: a redirect is not retried)...
        assert_eq!(first.count(), CHANNELS.len(), "{:?}", first.paths());
        // ...and nothing at all reached the server it pointed to.
        assert_eq!(capture.count(), 0, "followed a {status} to {:?}", capture.paths());
    }
}

/// 2xx answers that are not what the provider documents as its success answer.
fn odd_answers() -> Vec<(&'static str, ResponseTemplate)> {
    vec![
        (
            "an HTML page",
            ResponseTemplate::new(200).set_body_raw(
                "<html><head><title>Hotel WiFi</title></head><body>Please log in</body></html>",
                "text/html; charset=utf-8",
            ),
        ),
        ("an empty body", ResponseTemplate::new(200)),
        (
            "JSON without the id",
            // Each provider's envelope without its id: Twilio's sid, Vonage's message-id,
            // seven's messages[].id, the generic /id, Graph's id, Telegram's result, Mastodon's id.
            ResponseTemplate::new(200).set_body_json(json!({
                "ok": true, "status": "queued", "success": "100",
                "messages": [{"status": "0", "to": "4915123456789"}],
            })),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_that_is_not_the_documented_answer_is_never_sent() {
    for (what, answer) in odd_answers() {
        let (server, fake) = Recorder::serving(move |_| answer.clone()).await;
        let w = every_http_channel(&server.uri()).build();
        let r = w.run_async(SEND, NO_ENV).await;
        let deliveries = r.deliveries_on(CHANNELS);
        for (ch, d) in CHANNELS.iter().zip(&deliveries) {
            let webhook = ["hook", "slack", "discord", "teams", "mattermost", "google-chat"].contains(ch);
            if webhook {
                // A webhook's contract is any 2xx.
                assert_eq!(d["status"], "sent", "{ch} with {what}: {d}");
                continue;
            }
            assert_ne!(d["status"], "sent", "{ch} counted {what} as sent: {d}");
            let e = d["error"].as_str().unwrap_or_default();
            assert!(e.contains("unexpected answer from"), "{ch} with {what}: {e}");
            if *ch != "instagram" {
                // The request may have been acted on: unknown, never retried automatically.
                assert_eq!(d["status"], "unknown", "{ch} with {what}: {d}");
                assert_eq!(d["attempts"], 1, "{ch} with {what}: {d}");
            }
        }
        assert!(fake.count() >= CHANNELS.len(), "{}", r.describe());
        r.code(3);
    }
}

/// The line and column where `key` starts in `toml` (1-based), for the expected message.
fn position(toml: &str, key: &str) -> (usize, usize) {
    for (i, line) in toml.lines().enumerate() {
        let t = line.trim_start();
        if t.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
        {
            return (i + 1, line.len() - t.len() + 1);
        }
    }
    panic!("no {key} in {toml}");
}

#[test]
fn plain_http_off_loopback_is_refused_for_every_url_key() {
    let http = "http://api.example.org";
    let cases: Vec<(&str, String)> = vec![
        (
            "base_url",
            format!(
                "[channels.s]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
                 account_sid = \"AC1\"\nauth_token_env = \"T_TWILIO\"\nbase_url = \"{http}\"\n"
            ),
        ),
        (
            "base_url",
            format!(
                "[channels.s]\ntype = \"sms\"\nprovider = \"vonage\"\nfrom = \"S\"\napi_key = \"k\"\n\
                 api_secret_env = \"T_VONAGE\"\n    base_url = \"{http}\"\n"
            ),
        ),
        (
            "base_url",
            format!(
                "[channels.s]\ntype = \"sms\"\nprovider = \"seven\"\napi_key_env = \"T_SEVEN\"\nbase_url=\"{http}\"\n"
            ),
        ),
        (
            "url",
            format!("[channels.s]\ntype = \"sms\"\nprovider = \"generic\"\nurl = \"{http}/send\"\n"),
        ),
        (
            "base_url",
            format!("[channels.s]\ntype = \"sms\"\nprovider = \"generic\"\nbase_url = \"{http}\"\nurl = \"/send\"\n"),
        ),
        (
            "url",
            format!("[channels.w]\ntype = \"webhook\"\nurl = \"{http}/hook/abc\"\n"),
        ),
        (
            "graph_url",
            format!(
                "[channels.f]\ntype = \"facebook\"\npage_id = \"1\"\naccess_token_env = \"T_FB\"\ngraph_url = \"{http}\"\n"
            ),
        ),
        (
            "graph_url",
            format!(
                "[channels.i]\ntype = \"instagram\"\nig_user_id = \"1\"\naccess_token_env = \"T_IG\"\ngraph_url = \"{http}\"\n"
            ),
        ),
        (
            "graph_url",
            format!(
                "[channels.wa]\ntype = \"whatsapp\"\nphone_number_id = \"1\"\naccess_token_env = \"T_WA\"\n\
                 message_template = \"t\"\nlanguage = \"de\"\ngraph_url = \"{http}\"\n"
            ),
        ),
        (
            "base_url",
            format!(
                "[channels.t]\ntype = \"telegram\"\nbot_token_env = \"T_TG\"\nchat_ids = [\"@a\"]\nbase_url = \"{http}\"\n"
            ),
        ),
        (
            "instance",
            format!("[channels.m]\ntype = \"mastodon\"\ninstance = \"{http}\"\naccess_token_env = \"T_MASTO\"\n"),
        ),
        (
            "base_url",
            format!("[channels.p]\ntype = \"statuspage\"\ndir = \"public\"\nbase_url = \"{http}\"\n"),
        ),
        (
            "base_url",
            format!(
                "[channels.v]\ntype = \"voice\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\naccount_sid = \"AC1\"\n\
                 auth_token_env = \"T_TWILIO\"\nbase_url = \"{http}\"\n"
            ),
        ),
    ];
    for (key, table) in cases {
        // Something before the table, so the line is not trivially 1.
        let w = Scenario::new()
            .top("default_region = \"DE\"")
            .org("name = \"Studio\"")
            .audience("name,email\nAnna,anna@example.de\n")
            .channel(&format!("[channels.out]\ntype = \"outbox\"\n\n{table}"))
            .notice("", "Body")
            .envs(ENV)
            .build();
        let (line, col) = position(&w.read("channels.toml"), key);
        for args in [&["check"][..], SEND] {
            let r = w.run(args);
            r.code(2);
            r.stderr_has(&format!("channels.toml:{line}:{col}: "))
                .stderr_has(&format!("{key}: plain http to api.example.org is refused"));
        }
        assert!(w.outbox().is_empty(), "something was sent for {table}");
    }
    // A webhook URL from the environment is checked when it is read (and never printed).
    let w = Scenario::new()
        .channel("[channels.w]\ntype = \"webhook\"\nurl_env = \"HOOK_URL\"\n")
        .notice("", "Body")
        .env("HOOK_URL", "http://hooks.example.org/T0/B0/secret-token-path")
        .build();
    let line = w
        .read("channels.toml")
        .lines()
        .position(|l| l == "[channels.w]")
        .unwrap()
        + 1;
    let r = w.run(SEND);
    r.code(2)
        .stderr_has(&format!("channels.toml:{line}:1: "))
        .stderr_has("plain http to hooks.example.org is refused");
    assert!(!r.stderr().contains("secret-token-path"), "{}", r.describe());
}

/// An endless-looking answer is read only up to the layer's bound, then judged: a Twilio 200
/// whose JSON would only be complete after megabytes of padding is not the documented answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_answer_is_read_only_up_to_the_bound() {
    let body = format!("{{\"pad\":\"{}\",\"sid\":\"SM1\"}}", "x".repeat(4 << 20));
    let (server, fake) =
        Recorder::serving(move |_| ResponseTemplate::new(201).set_body_raw(body.clone(), "application/json")).await;
    let w = every_http_channel(&server.uri()).build();
    let r = w.run_async(&send_with(&["--channel", "twilio"]), NO_ENV).await;
    r.code(3);
    let d = &r.json()["deliveries"][0];
    assert_eq!(d["status"], "unknown", "{d}");
    let e = d["error"].as_str().unwrap();
    assert!(
        e.contains("unexpected answer from twilio (HTTP 201): application/json, {\"pad\":\"xxx"),
        "{e}"
    );
    assert!(e.len() < 1000, "the whole answer was quoted: {} bytes", e.len());
    assert_eq!(fake.count(), 1);
}

#[test]
fn secrets_shorter_than_eight_characters_are_refused_without_showing_them() {
    let w = Scenario::new()
        .channel("[channels.m]\ntype = \"mastodon\"\ninstance = \"https://mastodon.example\"\naccess_token_env = \"SHORT_TOKEN\"\n")
        .notice("", "Body")
        .build();
    let r = w.run_env(SEND, &[("SHORT_TOKEN", "sh0rt77")]);
    r.code(2)
        .stderr_has("SHORT_TOKEN")
        .stderr_has("shorter than 8 characters");
    assert!(
        !r.stderr().contains("sh0rt77") && !r.stdout().contains("sh0rt77"),
        "{}",
        r.describe()
    );
    // Eight characters are enough.
    let r = w.run_env(&send_with(&["--dry-run"]), &[("SHORT_TOKEN", "l0nger88")]);
    r.code(0);
}
