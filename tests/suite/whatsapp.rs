//! The `whatsapp` channel (Cloud API template messages) through the binary, against the Graph
//! fake's `/messages` and phone-number endpoints (tests/support/graph_fake.rs), and as the first
//! channel of a `[reach]` order with the Twilio SMS fake behind it.

use crate::support;
use crate::support::graph_fake;

use std::time::Duration;

use graph_fake::{Endpoint, FakeError, GraphFake, WA_PHONE_ID, WA_TOKEN};
use serde_json::{Value, json};
use support::scenario::{NOTICE, SEND, by_recipient_on, error_of};
use support::sms_fakes::{self, TWILIO_SID, TWILIO_TOKEN, twilio_created, twilio_messages_path};
use support::voice_fakes::{twilio_call_created, twilio_voice_fake};
use support::{NO_ENV, Scenario, assert_outcome};

const ANNA: &str = "+4915123456781";
const BEN: &str = "+4915123456782";
const CARA: &str = "+4915123456783";

fn whatsapp_block(uri: &str, extra: &str) -> String {
    format!(
        "[channels.whatsapp]\ntype = \"whatsapp\"\nphone_number_id = \"{WA_PHONE_ID}\"\n\
         access_token_env = \"WHATSAPP_TOKEN\"\nmessage_template = \"stoerung_info\"\nlanguage = \"de\"\n\
         parameters = [\"{{{{recipient.name}}}}\", \"{{{{summary}}}}\"]\ngraph_url = \"{uri}\"\n\
         api_version = \"v26.0\"\nretry_base = \"10ms\"\nretry_max = \"50ms\"\n{extra}\n"
    )
}

/// `csv` as the audience, the WhatsApp channel at `uri` with `extra` keys, the token a secret
/// no run may print, and an announcement whose summary has a line break, a tab and a run of
/// five spaces.
fn folder(csv: &str, uri: &str, extra: &str) -> Scenario {
    Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Sarah Kastner Fotografie\"")
        .audience(csv)
        .channel(&whatsapp_block(uri, extra))
        .secret("WHATSAPP_TOKEN", WA_TOKEN)
        .notice(
            "summary = \"Website offline.\\n\\tTermine     finden    statt.\"",
            "Alle Termine finden statt.",
        )
}

fn people(rows: &[(&str, &str)]) -> String {
    let mut s = String::from("name,phone\n");
    for (name, phone) in rows {
        s.push_str(&format!("{name},{phone}\n"));
    }
    s
}

fn to_of(r: &graph_fake::Recorded) -> String {
    r.json.as_ref().unwrap()["to"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_is_exactly_the_documented_template_message() {
    let fake = GraphFake::start().await;
    // A name cell with quotes, a backslash, an emoji and a line break; a landline.
    let csv = people(&[
        ("\"Anna \"\"Nanni\"\"\nBack\\slash 🎉\"", "0151 23456781"),
        ("Praxis", "030 1234567"),
    ]);
    let w = folder(&csv, &fake.uri(), "").build();

    let preview = w.run_async(&["preview", NOTICE], NO_ENV).await;
    preview.code(0);
    for shown in [
        "template: stoerung_info",
        "language: de",
        "parameters: 2",
        "{{1}} = Anna \"Nanni\" Back\\slash 🎉",
        "{{2}} = Website offline. Termine finden    statt.",
        "parameter 2: Website offline. Termine finden    statt. (41 characters)",
    ] {
        assert!(
            preview.stdout().contains(shown),
            "no {shown:?}:\n{}",
            preview.describe()
        );
    }
    let check = w.run_async(&["check"], NO_ENV).await;
    check.code(0);
    assert!(
        check
            .stdout()
            .contains("+49 30 1234567 (Sarah Kastner Fotografie), quality rating GREEN"),
        "{}",
        check.describe()
    );
    assert!(
        fake.of(Endpoint::Messages).is_empty(),
        "preview or check sent a message"
    );

    let r = w.run_async(SEND, NO_ENV).await;
    r.code(0);
    let run_id = r.json()["run_id"].as_str().unwrap().to_string();
    let d = r.delivery(ANNA);
    assert_outcome(&d, "sent", 1);
    // The fake's second answer (`check` read the phone number first).
    assert_eq!(d["provider_id"], "wamid.HBgN4915123456781FQIAERgS000002", "{d}");
    let host = fake.uri().replace("http://", "");
    assert_eq!(d["route"], format!("{host}/v26.0/{WA_PHONE_ID}/messages"), "{d}");
    let landline = r.delivery("+49301234567");
    assert_eq!(landline["status"], "skipped", "{landline}");
    assert!(
        error_of(&landline).contains("not a mobile number (fixed line)"),
        "{landline}"
    );

    let sent = fake.of(Endpoint::Messages);
    assert_eq!(sent.len(), 1);
    let m = &sent[0];
    assert_eq!(m.method, "POST");
    assert_eq!(m.path, format!("/v26.0/{WA_PHONE_ID}/messages"));
    assert_eq!(m.authorization.as_deref(), Some(format!("Bearer {WA_TOKEN}").as_str()));
    assert_eq!(m.content_type, "application/json");
    assert!(m.query.is_empty() && !m.url.contains(WA_TOKEN), "{}", m.url);
    let body = m.json.clone().unwrap();
    let callback = body["biz_opaque_callback_data"].as_str().unwrap().to_string();
    assert!(callback.starts_with(&format!("announce-{run_id}-")), "{callback}");
    assert_eq!(
        body,
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "4915123456781",
            "type": "template",
            "template": {
                "name": "stoerung_info",
                "language": {"code": "de"},
                "components": [{"type": "body", "parameters": [
                    {"type": "text", "text": "Anna \"Nanni\" Back\\slash 🎉"},
                    {"type": "text", "text": "Website offline. Termine finden    statt."}
                ]}]
            },
            "biz_opaque_callback_data": callback,
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_number_not_on_whatsapp_fails_after_one_request() {
    let fake = GraphFake::start().await;
    fake.refuse_to(
        "4915123456782",
        FakeError::whatsapp(
            400,
            131026,
            "Message Undeliverable.",
            "Unable to deliver message: the number is not a WhatsApp user",
        ),
    );
    let csv = people(&[("Anna", ANNA), ("Ben", BEN)]);
    let (_w, r) = folder(&csv, &fake.uri(), "max_attempts = 3\n").send_async().await;
    r.code(3);
    assert_outcome(&r.delivery(ANNA), "sent", 1);
    let ben = r.delivery(BEN);
    assert_outcome(&ben, "failed", 1);
    let e = error_of(&ben);
    assert!(
        e.contains("WhatsApp cannot deliver to this number")
            && e.contains("131026")
            && e.contains("not a WhatsApp user"),
        "{e}"
    );
    let to_ben = fake
        .of(Endpoint::Messages)
        .iter()
        .filter(|m| to_of(m) == "4915123456782")
        .count();
    assert_eq!(to_ben, 1, "a final refusal was retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_throughput_limit_is_retried_after_retry_after_and_sent() {
    let fake = GraphFake::start().await;
    fake.fail(
        Endpoint::Messages,
        1,
        FakeError::whatsapp(
            429,
            130429,
            "Rate limit hit",
            "Cloud API message throughput has been reached.",
        )
        .header("Retry-After", "1"),
    );
    // Counted, not timed: a call sooner than Retry-After after the refused one is `too_soon`.
    fake.spacing(Endpoint::Messages, &[Duration::from_secs(1)]);
    let (_w, r) = folder(&people(&[("Anna", ANNA)]), &fake.uri(), "").send_async().await;
    r.code(0);
    let d = r.delivery(ANNA);
    assert_outcome(&d, "sent", 2);
    assert_eq!(fake.of(Endpoint::Messages).len(), 2);
    assert_eq!(fake.too_soon(Endpoint::Messages), 0, "Retry-After was not honoured");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_token_halts_the_channel_the_rest_stay_pending_and_it_never_leaks() {
    const EXPIRED: &str = "EAAG-expired-whatsapp-token-SECRET-9";
    let fake = GraphFake::start().await;
    let csv = people(&[("Anna", ANNA), ("Ben", BEN), ("Cara", CARA)]);
    // The fake answers 190 to a token it does not know.
    let w = folder(&csv, &fake.uri(), "concurrency = 1\n")
        .secret("WHATSAPP_TOKEN", EXPIRED)
        .build();
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(1);
    let ds = r.deliveries();
    let statuses: Vec<&str> = ds.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(
        (
            statuses.iter().filter(|s| **s == "failed").count(),
            statuses.iter().filter(|s| **s == "pending").count()
        ),
        (1, 2),
        "{}",
        r.describe()
    );
    let failed = ds.iter().find(|d| d["status"] == "failed").unwrap();
    let e = error_of(failed);
    assert!(
        e.contains("190") && e.contains("System users") && e.contains("WHATSAPP_TOKEN"),
        "no renewal advice: {e}"
    );
    assert_eq!(fake.of(Endpoint::Messages).len(), 1, "the channel went on after 190");
    let run_id = r.json()["run_id"].as_str().unwrap().to_string();
    let report = w.run_async(&["report", &run_id, "--format", "json"], NO_ENV).await;
    report.code(0);
    // Neither token is in any output (checked on every run of the folder) or any file.
    w.assert_absent(EXPIRED, &[&r, &report]);
    w.assert_absent(WA_TOKEN, &[&r, &report]);

    // With a new token, `resume` sends the rest and the failed one.
    let r = w
        .run_async(
            &["resume", &run_id, "--yes", "--retry-failed", "--json"],
            &[("WHATSAPP_TOKEN", WA_TOKEN)],
        )
        .await;
    r.code(0);
    let sent = r.deliveries().iter().filter(|d| d["status"] == "sent").count();
    assert_eq!((sent, fake.of(Endpoint::Messages).len()), (3, 4), "{}", r.describe());
}

#[tokio::test(flavor = "multi_thread")]
async fn reach_whatsapp_then_sms_then_voice_texts_who_is_not_on_whatsapp_and_calls_a_landline() {
    const LENA: &str = "+49309876543";
    let fake = GraphFake::start().await;
    fake.refuse_to(
        "4915123456782",
        FakeError::whatsapp(400, 131026, "Message Undeliverable.", "not a WhatsApp user"),
    );
    // Twilio's Messages and Calls resources on one fake account.
    let (twilio, calls, _) = twilio_voice_fake(|req, _| twilio_call_created(req), |_| "queued").await;
    let texts = sms_fakes::answer(&twilio, "POST", twilio_messages_path(), |req, _| twilio_created(req)).await;
    let channels = format!(
        "[channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"TWILIO_TOKEN\"\nbase_url = \"{uri}\"\n\
         [channels.voice]\ntype = \"voice\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"TWILIO_TOKEN\"\nbase_url = \"{uri}\"\n\
         [reach]\norder = [\"whatsapp\", \"sms\", \"voice\"]\n",
        uri = twilio.uri()
    );
    let (_w, r) = folder(
        &people(&[("Anna", ANNA), ("Ben", BEN), ("Lena", "030 9876543")]),
        &fake.uri(),
        "",
    )
    .channel(&channels)
    .env("TWILIO_TOKEN", TWILIO_TOKEN)
    .send_async()
    .await;
    // Ben's WhatsApp delivery failed (and counts); the SMS reached him.
    r.code(3);
    let ds = r.deliveries();
    let wa = by_recipient_on(&ds, "whatsapp");
    assert_eq!(wa[ANNA]["status"], "sent");
    assert_eq!(wa[BEN]["status"], "failed");
    let sms = by_recipient_on(&ds, "sms");
    assert_eq!(sms.keys().collect::<Vec<_>>(), [BEN, LENA], "{}", r.describe());
    assert_eq!(sms[BEN]["status"], "sent");
    assert_eq!(sms[BEN]["fallback"], true);
    // Lena has only a landline: WhatsApp and SMS skip her with the reason, the call is her first.
    for channel in [&wa, &sms] {
        assert_eq!(channel[LENA]["status"], "skipped");
        assert!(
            error_of(&channel[LENA]).contains("not a mobile number (fixed line)"),
            "{}",
            channel[LENA]
        );
    }
    let voice = by_recipient_on(&ds, "voice");
    assert_eq!(voice.keys().collect::<Vec<_>>(), [LENA], "{}", r.describe());
    assert_eq!(voice[LENA]["status"], "sent");
    assert_eq!(voice[LENA]["fallback"], false);
    let sent_to = |log: &sms_fakes::Log| -> Vec<String> { log.all().iter().map(|s| s.form()["To"].clone()).collect() };
    assert_eq!(sent_to(&texts), [BEN]);
    assert_eq!(sent_to(&calls), [LENA]);
    let to: Vec<String> = fake.of(Endpoint::Messages).iter().map(to_of).collect();
    assert_eq!(to.len(), 2, "WhatsApp tried Anna and Ben only: {to:?}");
    assert_eq!(r.json()["people"]["reached"], Value::from(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_are_refused_before_anything_is_sent() {
    let fake = GraphFake::start().await;
    let w = folder(&people(&[("Anna", ANNA)]), &fake.uri(), "").build();
    // A parameter that does not compile: refused when the file is loaded, at its table.
    w.config_replace("\"{{summary}}\"]", "\"{{#if summary}}\"]");
    let config = w.read("channels.toml");
    let line = config.lines().position(|l| l == "[channels.whatsapp]").unwrap() + 1;
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(2)
        .stderr_has(&format!("channels.toml:{line}:1: "))
        .stderr_has("parameters[1] \"{{#if summary}}\": template syntax error");
    // One that renders only white space for the person: refused while planning.
    w.config_replace("\"{{#if summary}}\"]", "\"{{vars.note}}\"]");
    w.notice_file(NOTICE, "Website gestört", "[vars]\nnote = \" \\n\\t \"", "Body");
    let r = w.run_async(SEND, NO_ENV).await;
    r.code(2)
        .stderr_has(&format!("parameters[1] \"{{{{vars.note}}}}\" is empty for {ANNA}"));
    assert!(fake.of(Endpoint::Messages).is_empty(), "something was sent");
}
