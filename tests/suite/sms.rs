//! The SMS channel end to end through the binary, against in-process fakes of Twilio, Vonage,
//! seven.io and a generic gateway that follow the documented contracts
//! (shared/reference/provider-apis.md §3). Segment counting itself is checked against an
//! independent implementation in `src/render/sms.rs` (corpus `tests/data/sms_corpus.json`).

use crate::support;
use crate::support::sms_fakes;

use std::time::Duration;

use serde_json::{Value, json};
use sms_fakes::*;
use support::scenario::SEND;
use support::{NO_ENV, Scenario, deliveries, delivery_to};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN_ENV: &str = "ANNOUNCE_TEST_TWILIO_TOKEN";
const LINK: &str = "https://status.example.de";

/// A folder with one or more `[channels.*]` blocks, an audience and a notice; every run gets
/// the gateways' secrets (and fails if it prints one).
fn sms_folder(channels: &str, csv: &str, summary: &str) -> Scenario {
    Scenario::new()
        .secret(TOKEN_ENV, TWILIO_TOKEN)
        .secret("ANNOUNCE_TEST_VONAGE_SECRET", VONAGE_SECRET)
        .secret(SEVEN_ENV, SEVEN_KEY)
        .secret("ANNOUNCE_TEST_GW_TOKEN", "gw-token-31")
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(csv)
        .channel(channels)
        .notice(
            &format!("summary = {}\nlink = \"{LINK}\"", toml_string(summary)),
            "Die Website ist offline.",
        )
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The SMS text the default template makes of a summary.
fn sms_text(summary: &str) -> String {
    format!("Studio: {summary} {LINK}")
}

fn twilio_channel(uri: &str, extra: &str) -> String {
    format!(
        "[channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"{TOKEN_ENV}\"\nbase_url = \"{uri}\"\n\
         max_segments = 3\nprice_per_segment = 0.075\ncurrency = \"EUR\"\nretry_base = \"50ms\"\n\
         retry_max = \"200ms\"\n{extra}\n"
    )
}

/// German mobiles as people write them; E.164 as the gateways get them.
const ANNA: (&str, &str) = ("0151 23456789", "+4915123456789");
const BEN: (&str, &str) = ("+49 160 1234567", "+491601234567");
const DORA: (&str, &str) = ("0176 98765432", "+4917698765432");
const LANDLINE: &str = "030 1234567";

fn csv(rows: &[(&str, &str)]) -> String {
    let mut s = String::from("name,phone\n");
    for (name, phone) in rows {
        s.push_str(&format!("{name},{phone}\n"));
    }
    s
}

fn mobiles(n: usize) -> String {
    let mut s = String::from("name,phone\n");
    for i in 0..n {
        s.push_str(&format!("Person {i},0151 {:08}\n", 20_000_000 + i));
    }
    s
}

// --- Twilio -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn twilio_requests_have_the_documented_shape() {
    let (server, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let account = answer(
        &server,
        "GET",
        format!("/2010-04-01/Accounts/{TWILIO_SID}.json"),
        |_, _| {
            ResponseTemplate::new(200).set_body_json(json!({
                "sid": TWILIO_SID, "friendly_name": "Studio", "status": "active", "type": "Full",
            }))
        },
    )
    .await;
    // Curly quotes and a dash: normalised to GSM-7, so one segment each.
    let summary = "Unsere Website ist „offline“ – alle Termine finden statt.";
    let w = sms_folder(
        &twilio_channel(&server.uri(), ""),
        &csv(&[
            ("Anna", ANNA.0),
            ("Ben", BEN.0),
            ("Festnetz", LANDLINE),
            ("Dora", DORA.0),
        ]),
        summary,
    )
    .build();

    let check = w.run_async(&["check"], NO_ENV).await;
    check.code(0);
    assert!(check.stdout().contains("active"), "{}", check.describe());
    let probes = account.all();
    assert_eq!(probes.len(), 1);
    assert_eq!(
        probes[0].header("authorization").as_deref(),
        Some(basic(TWILIO_SID, TWILIO_TOKEN).as_str())
    );
    assert!(log.all().is_empty(), "check sends nothing");

    let run = w.run_async(SEND, NO_ENV).await;
    run.code(0);
    // The plan shows encoding, characters, segments, and the cost per message and in all.
    let expected_text = sms_text("Unsere Website ist \"offline\" - alle Termine finden statt.");
    run.stderr_has("SMS encoding: GSM-7 (typographic characters normalised)")
        .stderr_has(&format!(
            "SMS characters: {0} ({0} septets)",
            expected_text.chars().count()
        ))
        .stderr_has("SMS segments: 1 (limit 3)")
        .stderr_has("SMS cost per message: 0.075 EUR (1 × 0.075)")
        .stderr_has("SMS in all: 3 segments for 3 messages (3 GSM-7, 0 UCS-2), estimated cost 0.225 EUR");

    let requests = log.all();
    assert_eq!(requests.len(), 3, "one request per mobile number");
    let mut to: Vec<String> = Vec::new();
    for r in &requests {
        assert_eq!(r.request.method.as_str(), "POST");
        assert_eq!(r.path(), twilio_messages_path());
        assert_eq!(
            r.header("authorization").as_deref(),
            Some(basic(TWILIO_SID, TWILIO_TOKEN).as_str())
        );
        let form = r.form();
        assert_eq!(
            form.keys().map(String::as_str).collect::<Vec<_>>(),
            ["Body", "From", "To"],
            "{form:?}"
        );
        assert_eq!(form["From"], "+4930123456");
        assert_eq!(form["Body"], expected_text);
        to.push(form["To"].clone());
    }
    to.sort();
    assert_eq!(to, [ANNA.1, BEN.1, DORA.1]);

    let report = run.json();
    assert_eq!(report["totals"]["sent"], 3);
    for e164 in [ANNA.1, BEN.1, DORA.1] {
        let d = delivery_to(&report, e164);
        assert_eq!(d["status"], "sent");
        assert_eq!(d["provider_id"], twilio_sid_for(e164));
        assert_eq!(d["route"], "twilio");
    }
    // The landline is skipped with the reason, and never reaches the gateway.
    let skipped: Vec<Value> = deliveries(&report)
        .into_iter()
        .filter(|d| d["status"] == "skipped")
        .collect();
    assert_eq!(skipped.len(), 1, "{report:#}");
    let why = skipped[0]["error"].as_str().unwrap();
    assert!(why.contains("not a mobile number (fixed line)"), "{why}");

    // The token is nowhere in the output or the journal.
    for text in [run.stdout(), run.stderr(), check.stdout(), check.stderr()] {
        assert!(!text.contains(TWILIO_TOKEN));
    }
    let journal = std::fs::read(w.path(".announce/journal.sqlite3")).unwrap();
    assert!(
        !journal
            .windows(TWILIO_TOKEN.len())
            .any(|win| win == TWILIO_TOKEN.as_bytes())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_stop_reply_suppresses_the_number_for_later_runs() {
    let (server, log) = twilio_refusing(BEN.1, 21610, "Attempt to send to unsubscribed recipient").await;
    let w = sms_folder(
        &twilio_channel(&server.uri(), ""),
        &csv(&[("Anna", ANNA.0), ("Ben", BEN.0)]),
        "Alle Termine finden statt.",
    )
    .build();
    let first = w.run_async(SEND, NO_ENV).await;
    first.code(3);
    let report = first.json();
    let ben = delivery_to(&report, BEN.1);
    assert_eq!(ben["status"], "failed");
    assert_eq!(ben["attempts"], 1, "21610 is permanent: {ben}");
    assert!(ben["error"].as_str().unwrap().contains("21610"), "{ben}");
    assert_eq!(delivery_to(&report, ANNA.1)["status"], "sent");
    let suppressed = w.read(".announce/suppressed.txt");
    assert_eq!(suppressed.lines().collect::<Vec<_>>(), [BEN.1]);
    assert_eq!(log.all().len(), 2);

    let second = w
        .run_async(&["send", "notices/n.md", "--yes", "--json", "--again"], NO_ENV)
        .await;
    second.code(0);
    let report = second.json();
    let ben = delivery_to(&report, BEN.1);
    assert_eq!(ben["status"], "skipped", "{report:#}");
    assert!(ben["error"].as_str().unwrap().contains("suppression list"), "{ben}");
    let to: Vec<String> = log.all()[2..].iter().map(|r| r.form()["To"].clone()).collect();
    assert_eq!(to, [ANNA.1], "the second run sends to Anna only");
}

#[tokio::test(flavor = "multi_thread")]
async fn report_refresh_records_final_twilio_statuses() {
    let (server, _log) = twilio_fake(|req, _| twilio_created(req)).await;
    let fetches = Log::default();
    Mock::given(method("GET"))
        .and(path_regex(format!(
            r"^/2010-04-01/Accounts/{TWILIO_SID}/Messages/SM[0-9]+\.json$"
        )))
        .respond_with(Scripted::new(&fetches, |req, _| {
            let sid = twilio_fetched_sid(req);
            let (status, code) = if sid == twilio_sid_for(ANNA.1) {
                ("delivered", Value::Null)
            } else if sid == twilio_sid_for(BEN.1) {
                ("undelivered", json!(30003))
            } else {
                ("sent", Value::Null)
            };
            ResponseTemplate::new(200).set_body_json(json!({
                "sid": sid, "account_sid": TWILIO_SID, "status": status, "error_code": code,
                "error_message": null, "num_segments": "1",
            }))
        }))
        .mount(&server)
        .await;
    let w = sms_folder(
        &twilio_channel(&server.uri(), ""),
        &csv(&[("Anna", ANNA.0), ("Ben", BEN.0), ("Dora", DORA.0)]),
        "Alle Termine finden statt.",
    )
    .build();
    w.run_async(&["send", "notices/n.md", "--yes"], NO_ENV).await.code(0);
    assert!(fetches.all().is_empty());

    let refreshed = w
        .run_async(&["report", "latest", "--refresh", "--format", "json"], NO_ENV)
        .await;
    refreshed.code(0);
    refreshed.stderr_has("sms: 1 delivered, 1 undelivered, 1 not final yet");
    let report = refreshed.json();
    assert_eq!(delivery_to(&report, ANNA.1)["status"], "delivered");
    let ben = delivery_to(&report, BEN.1);
    assert_eq!(ben["status"], "undelivered");
    assert!(ben["error"].as_str().unwrap().starts_with("30003"), "{ben}");
    assert_eq!(delivery_to(&report, DORA.1)["status"], "sent");
    let fetched = fetches.all();
    assert_eq!(fetched.len(), 3);
    for f in &fetched {
        assert_eq!(
            f.header("authorization").as_deref(),
            Some(basic(TWILIO_SID, TWILIO_TOKEN).as_str())
        );
    }

    // The journal keeps it: a plain report shows the final statuses without asking again.
    let again = w.run_async(&["report", "latest", "--format", "json"], NO_ENV).await;
    assert_eq!(delivery_to(&again.json(), BEN.1)["status"], "undelivered");
    assert_eq!(fetches.all().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_over_max_segments_is_refused_before_anything_is_sent() {
    let (server, log) = twilio_fake(|req, _| twilio_created(req)).await;
    // The template appends a per-recipient column: only the last recipient's text is too long,
    // so the limit must be checked for every recipient, not just the first.
    let w = sms_folder(
        &twilio_channel(&server.uri(), ""),
        &format!(
            "name,phone,note\nAnna,{},kurz\nBen,{},kurz\nDora,{},{}\n",
            ANNA.0,
            BEN.0,
            DORA.0,
            "sehr lang ".repeat(50)
        ),
        "Alle Termine finden statt.",
    )
    .build();
    w.write(
        "channels.toml",
        &format!("templates_dir = \"templates\"\n{}", w.read("channels.toml")),
    );
    w.write("templates/sms.txt.hbs", "{{summary}} {{recipient.note}}");
    let run = w.run_async(SEND, NO_ENV).await;
    run.code(2)
        .stderr_has(DORA.1)
        .stderr_has("the SMS is 4 segments (GSM-7, 526 characters = 526 septets), max_segments = 3")
        .stderr_has("nothing was sent");
    assert!(log.all().is_empty(), "the gateway received nothing");
    assert!(!w.path(".announce/journal.sqlite3").exists(), "no run was journaled");
}

// --- Retry-After, 5xx and the rate limit ------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_and_server_errors_are_honoured_within_the_rate() {
    const N: usize = 16;
    const RATE: usize = 5;
    const BURST: usize = 2;
    // Requests 1-3: 429 with Retry-After: 1; 4-5: 500; then accepted. The fake's pacing
    // counts every request that came before a Retry-After was over or beyond the rate.
    let pacing = Pacing::new(RATE as u32, BURST as u32);
    let gate = pacing.clone();
    let (server, log) = twilio_fake(move |req, n| {
        gate.arrive(1);
        match n {
            1..=3 => {
                gate.close_for(Duration::from_secs(1));
                twilio_error(429, 20429, "Too Many Requests").insert_header("Retry-After", "1")
            }
            4 | 5 => twilio_error(500, 20500, "Internal Server Error"),
            _ => twilio_created(req),
        }
    })
    .await;
    let w = sms_folder(
        &twilio_channel(
            &server.uri(),
            &format!("rate = \"{RATE}/s\"\nburst = {BURST}\nconcurrency = 1\nmax_attempts = 8"),
        ),
        &mobiles(N),
        "Alle Termine finden statt.",
    )
    .build();
    let run = w.run_async(SEND, NO_ENV).await;
    run.code(0);
    let report = run.json();
    assert_eq!(report["totals"]["sent"], N, "{report:#}");

    let seen = log.all();
    assert_eq!(seen.len(), N + 5, "16 messages + 5 refused attempts");
    assert_eq!(pacing.early(), 0, "requests before a Retry-After: 1 was over");
    // The first recipient got through on its 6th attempt; every attempt went to the same number.
    let first_to = seen[0].form()["To"].clone();
    assert!(seen[..6].iter().all(|r| r.form()["To"] == first_to));
    let d = delivery_to(&report, &first_to);
    assert_eq!(d["attempts"], 6, "{d}");
    assert_eq!(pacing.over_rate(), 0, "requests beyond rate {RATE}/s, burst {BURST}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_unit_segment_weighs_each_message_by_its_segments() {
    // 2 segments per message at 2 segments/s: a message every second at most. Weighed by
    // message, burst 3 would let all three go at once; the fake's bucket weighs each by its
    // segments and counts those it had no room for.
    let pacing = Pacing::new(2, 3);
    let gate = pacing.clone();
    let (server, log) = twilio_fake(move |req, _| {
        gate.arrive(2);
        twilio_created(req)
    })
    .await;
    let summary = "Wichtig: ".to_string() + &"Alle Termine finden statt. ".repeat(7);
    let w = sms_folder(
        &twilio_channel(
            &server.uri(),
            "rate = \"2/s\"\nburst = 3\nrate_unit = \"segment\"\nconcurrency = 3",
        ),
        &csv(&[("Anna", ANNA.0), ("Ben", BEN.0), ("Dora", DORA.0)]),
        &summary,
    )
    .build();
    let run = w.run_async(SEND, NO_ENV).await;
    run.code(0)
        .stderr_has("SMS segments: 2 (limit 3)")
        .stderr_has("SMS in all: 6 segments for 3 messages");
    let seen = log.all();
    assert_eq!(seen.len(), 3);
    assert_eq!(pacing.over_rate(), 0, "a message went before its segments were due");

    // burst below max_segments cannot work with segment weights: refused up front.
    let w = sms_folder(
        &twilio_channel(&server.uri(), "rate = \"2/s\"\nrate_unit = \"segment\""),
        &csv(&[("Anna", ANNA.0)]),
        "kurz",
    )
    .build();
    w.run_async(&["send", "notices/n.md", "--yes"], NO_ENV)
        .await
        .code(2)
        .stderr_has("burst (1) must be at least max_segments (3)");
    assert_eq!(log.all().len(), 3);
}

// --- Vonage -----------------------------------------------------------------------------------

fn vonage_channel(uri: &str, extra: &str) -> String {
    format!(
        "[channels.sms]\ntype = \"sms\"\nprovider = \"vonage\"\nfrom = \"Studio\"\napi_key = \"{VONAGE_KEY}\"\n\
         api_secret_env = \"ANNOUNCE_TEST_VONAGE_SECRET\"\nbase_url = \"{uri}\"\nretry_base = \"50ms\"\n\
         retry_max = \"200ms\"\n{extra}\n"
    )
}

async fn vonage_fake(
    script: impl Fn(&wiremock::Request, usize) -> ResponseTemplate + Send + Sync + 'static,
) -> (MockServer, Log) {
    let server = MockServer::start().await;
    let log = answer(&server, "POST", "/sms/json", script).await;
    (server, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn vonage_checks_every_part_status() {
    let (server, log) = vonage_fake(|req, _| {
        let to = form_value(req, "to").unwrap();
        if to == ANNA.1[1..] {
            vonage_answer(&to, &[Ok("0C000000217B7F02")])
        } else if to == BEN.1[1..] {
            vonage_answer(&to, &[Err(("6", "Invalid Message"))])
        } else {
            // Two parts, the second refused: not retried (the first part is out already).
            vonage_answer(&to, &[Ok("0C000000217B7F03"), Err(("1", "Throttled"))])
        }
    })
    .await;
    // An emoji forces UCS-2: Vonage needs type=unicode.
    let summary = "Alle Termine finden statt 📸";
    let w = sms_folder(
        &vonage_channel(&server.uri(), ""),
        &csv(&[("Anna", ANNA.0), ("Ben", BEN.0), ("Dora", DORA.0)]),
        summary,
    )
    .build();
    let run = w.run_async(SEND, NO_ENV).await;
    run.code(3).stderr_has("SMS encoding: UCS-2 (because of '📸' U+1F4F8)");
    let seen = log.all();
    assert_eq!(seen.len(), 3, "no retries: {}", run.describe());
    for r in &seen {
        assert_eq!(r.request.method.as_str(), "POST");
        let form = r.form();
        assert_eq!(
            form.keys().map(String::as_str).collect::<Vec<_>>(),
            ["api_key", "api_secret", "client-ref", "from", "text", "to", "type"],
            "{form:?}"
        );
        assert_eq!(form["api_key"], VONAGE_KEY);
        assert_eq!(form["api_secret"], VONAGE_SECRET);
        assert_eq!(form["from"], "Studio");
        assert_eq!(form["type"], "unicode");
        assert_eq!(form["text"], sms_text(summary));
        assert!(form["to"].starts_with("49") && form["to"].chars().all(|c| c.is_ascii_digit()));
        assert!(form["client-ref"].starts_with("announce-"));
    }
    let report = run.json();
    let anna = delivery_to(&report, ANNA.1);
    assert_eq!(anna["status"], "sent");
    assert_eq!(anna["provider_id"], "0C000000217B7F02");
    let ben = delivery_to(&report, BEN.1);
    assert_eq!(ben["status"], "failed");
    assert!(
        ben["error"].as_str().unwrap().contains("status 6: Invalid Message"),
        "{ben}"
    );
    let dora = delivery_to(&report, DORA.1);
    assert_eq!(dora["status"], "failed");
    let why = dora["error"].as_str().unwrap();
    assert!(
        why.contains("status 1: Throttled (part 2 of 2)") && why.contains("not retried"),
        "{why}"
    );

    // Vonage has no status API here: the report says so.
    w.run_async(&["report", "latest", "--refresh"], NO_ENV)
        .await
        .code(0)
        .stderr_has("cannot report final delivery statuses");
    assert_eq!(log.all().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn vonage_without_credit_stops_the_channel_and_keeps_the_rest_pending() {
    let (server, log) = vonage_fake(|req, _| {
        let to = form_value(req, "to").unwrap();
        vonage_answer(&to, &[Err(("9", "Quota Exceeded - rejected"))])
    })
    .await;
    let balance = answer(&server, "GET", "/account/get-balance", |_, _| {
        ResponseTemplate::new(200).set_body_json(json!({"value": 0.0, "autoReload": false}))
    })
    .await;
    let w = sms_folder(
        &vonage_channel(&server.uri(), "concurrency = 1"),
        &mobiles(5),
        "Alle Termine finden statt.",
    )
    .build();
    let check = w.run_async(&["check"], NO_ENV).await;
    check.code(1);
    assert!(check.stdout().contains("balance 0.00"), "{}", check.describe());
    assert_eq!(
        balance.all()[0].header("authorization").as_deref(),
        Some(basic(VONAGE_KEY, VONAGE_SECRET).as_str())
    );

    let run = w.run_async(SEND, NO_ENV).await;
    run.code(1);
    let report = run.json();
    assert_eq!(log.all().len(), 1, "nothing more after 'no credit'");
    assert_eq!(report["totals"]["failed"], 1, "{report:#}");
    assert_eq!(report["totals"]["pending"], 4, "{report:#}");
    let failed = deliveries(&report)
        .into_iter()
        .find(|d| d["status"] == "failed")
        .unwrap();
    assert!(failed["error"].as_str().unwrap().contains("status 9"), "{failed}");
}

// --- seven.io ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn seven_requests_and_return_codes() {
    let server = MockServer::start().await;
    let log = answer(&server, "POST", "/api/sms", |req, _| {
        let to = form_value(req, "to").unwrap();
        let text = form_value(req, "text").unwrap();
        if to == ANNA.1 {
            seven_answer("100", &to, &text, Some("77149843739"), None)
        } else {
            seven_answer("101", &to, &text, None, Some(("202", "invalid recipient")))
        }
    })
    .await;
    let balance = answer(&server, "GET", "/api/balance", |_, _| {
        ResponseTemplate::new(200).set_body_json(json!({"amount": 12.5, "currency": "EUR"}))
    })
    .await;
    let w = sms_folder(
        &format!(
            "[channels.sms]\ntype = \"sms\"\nprovider = \"seven\"\nfrom = \"Studio\"\n\
             api_key_env = \"ANNOUNCE_TEST_SEVEN_KEY\"\nbase_url = \"{}\"\nretry_base = \"50ms\"\n",
            server.uri()
        ),
        &csv(&[("Anna", ANNA.0), ("Ben", BEN.0)]),
        "Alle Termine finden statt.",
    )
    .build();
    let check = w.run_async(&["check"], NO_ENV).await;
    check.code(0);
    assert!(check.stdout().contains("balance 12.50 EUR"), "{}", check.describe());
    assert_eq!(balance.all()[0].header("x-api-key").as_deref(), Some(SEVEN_KEY));

    let run = w.run_async(SEND, NO_ENV).await;
    run.code(3);
    let seen = log.all();
    assert_eq!(seen.len(), 2, "202 is permanent: {}", run.describe());
    for r in &seen {
        assert_eq!(r.header("x-api-key").as_deref(), Some(SEVEN_KEY));
        assert_eq!(r.header("authorization"), None);
        let form = r.form();
        assert_eq!(
            form.keys().map(String::as_str).collect::<Vec<_>>(),
            ["foreign_id", "from", "json", "text", "to"],
            "{form:?}"
        );
        assert_eq!(form["json"], "1");
        assert_eq!(form["from"], "Studio");
        assert_eq!(form["text"], sms_text("Alle Termine finden statt."));
        assert!(form["to"].starts_with("+49"));
    }
    let report = run.json();
    let anna = delivery_to(&report, ANNA.1);
    assert_eq!(
        (anna["status"].as_str(), anna["provider_id"].as_str()),
        (Some("sent"), Some("77149843739"))
    );
    let ben = delivery_to(&report, BEN.1);
    assert_eq!(ben["status"], "failed");
    assert!(
        ben["error"].as_str().unwrap().contains("seven 202: invalid recipient"),
        "{ben}"
    );
}

// --- A generic gateway ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn generic_gateway_json_and_form_bodies() {
    let server = MockServer::start().await;
    let json_log = answer(&server, "POST", "/v1/messages", |_, n| {
        ResponseTemplate::new(202).set_body_json(json!({"result": {"id": format!("g-{n}"), "state": "queued"}}))
    })
    .await;
    let form_log = answer(&server, "PUT", "/legacy/send", |_, n| {
        if n == 1 {
            ResponseTemplate::new(503).insert_header("Retry-After", "0")
        } else {
            ResponseTemplate::new(200).set_body_json(json!({"ids": [4711]}))
        }
    })
    .await;
    let uri = server.uri();
    let channels = format!(
        r#"[channels.gw-json]
type = "sms"
provider = "generic"
from = "Studio"
base_url = "{uri}"
url = "/v1/messages"
auth_token_env = "ANNOUNCE_TEST_GW_TOKEN"
headers = {{ "X-Source" = "announce" }}
body_template = '{{"recipient":"{{{{to}}}}","sender":"{{{{from}}}}","message":"{{{{text}}}}","ref":"{{{{reference}}}}","unicode":{{{{unicode}}}}}}'
id_pointer = "/result/id"
success_statuses = [202]
retry_base = "50ms"

[channels.gw-form]
type = "sms"
provider = "generic"
url = "{uri}/legacy/send"
method = "put"
auth_token_env = "ANNOUNCE_TEST_GW_TOKEN"
headers = {{ "X-Api-Key" = "{{token}}" }}
body_format = "form"
body_template = "number={{{{to_digits}}}}&msg={{{{text}}}}&seg={{{{segments}}}}"
id_pointer = "/ids/0"
retry_base = "50ms"
"#
    );
    // Quotes, an ampersand and a line break: escaped for JSON, form-encoded for the form.
    let w = sms_folder(&channels, &csv(&[("Anna", ANNA.0)]), "Termine \"finden\" statt & mehr").build();
    let check = w.run_async(&["check"], NO_ENV).await;
    check.code(0);
    assert!(
        check.stdout().contains("no credential check available for generic"),
        "{}",
        check.describe()
    );

    let run = w.run_async(SEND, NO_ENV).await;
    run.code(0);
    let text = sms_text("Termine \"finden\" statt & mehr");

    let seen = json_log.all();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(r.header("authorization").as_deref(), Some("Bearer gw-token-31"));
    assert_eq!(r.header("x-source").as_deref(), Some("announce"));
    let body = r.json();
    assert_eq!(body["recipient"], ANNA.1);
    assert_eq!(body["sender"], "Studio");
    assert_eq!(body["message"], text);
    assert_eq!(body["unicode"], false);
    assert!(body["ref"].as_str().unwrap().starts_with("announce-"));
    assert_eq!(body.as_object().unwrap().len(), 5);

    let seen = form_log.all();
    assert_eq!(seen.len(), 2, "503 is retried");
    for r in &seen {
        assert_eq!(r.request.method.as_str(), "PUT");
        assert_eq!(r.header("x-api-key").as_deref(), Some("gw-token-31"));
        assert_eq!(r.header("authorization"), None, "the token went into X-Api-Key instead");
        assert_eq!(
            r.form_pairs(),
            [
                ("number".to_string(), ANNA.1[1..].to_string()),
                ("msg".to_string(), text.clone()),
                ("seg".to_string(), "1".to_string())
            ]
        );
    }

    let report = run.json();
    let ids: Vec<(String, String)> = deliveries(&report)
        .iter()
        .map(|d| {
            (
                d["channel"].as_str().unwrap().to_string(),
                d["provider_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert!(ids.contains(&("gw-json".into(), "g-1".into())), "{ids:?}");
    assert!(ids.contains(&("gw-form".into(), "4711".into())), "{ids:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_mistakes_are_reported_before_sending() {
    let cases: [(&str, &str); 4] = [
        (
            "[channels.sms]\ntype = \"sms\"\nprovider = \"vonage\"\nfrom = \"S\"\napi_key = \"k\"\n\
             api_secret_env = \"ANNOUNCE_TEST_UNSET_SECRET\"\n",
            "ANNOUNCE_TEST_UNSET_SECRET is not set",
        ),
        (
            "[channels.sms]\ntype = \"sms\"\nprovider = \"seven\"\napi_key_env = \"ANNOUNCE_TEST_SEVEN_KEY\"\n\
             account_sid = \"AC1\"\n",
            "account_sid is not used by provider \"seven\"",
        ),
        (
            "[channels.sms]\ntype = \"sms\"\nprovider = \"generic\"\nurl = \"/x\"\n",
            "is not absolute",
        ),
        (
            "[channels.sms]\ntype = \"sms\"\nprovider = \"generic\"\nurl = \"https://gw.example/x\"\n\
             body_template = '{\"to\": {{to}} }'\n",
            "the rendered body is not JSON",
        ),
    ];
    for (channel, message) in cases {
        let w = sms_folder(channel, &csv(&[("Anna", ANNA.0)]), "kurz").build();
        w.run_async(&["send", "notices/n.md", "--yes"], NO_ENV)
            .await
            .code(2)
            .stderr_has(message);
        assert!(!w.path(".announce/journal.sqlite3").exists());
    }
}

// --- Several providers: failover --------------------------------------------------------------

const SEVEN_ENV: &str = "ANNOUNCE_TEST_SEVEN_KEY";

/// Twilio ("primary", at `primary`) then seven.io ("backup", at `backup`), each priced.
fn two_providers(primary: &str, backup: &str, extra: &str) -> String {
    format!(
        "[channels.sms]\ntype = \"sms\"\nmax_segments = 3\ncurrency = \"EUR\"\nretry_base = \"50ms\"\n\
         retry_max = \"200ms\"\n{extra}\n\
         [[channels.sms.providers]]\nname = \"primary\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"{TOKEN_ENV}\"\nbase_url = \"{primary}\"\n\
         price_per_segment = 0.075\n\
         [[channels.sms.providers]]\nname = \"backup\"\nprovider = \"seven\"\nfrom = \"Studio\"\n\
         api_key_env = \"{SEVEN_ENV}\"\nbase_url = \"{backup}\"\nprice_per_segment = 0.09\n"
    )
}

async fn seven_fake() -> (MockServer, Log) {
    let server = MockServer::start().await;
    let log = answer(&server, "POST", "/api/sms", |req, _| seven_accepted(req)).await;
    (server, log)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_is_down_hands_every_message_to_the_next_exactly_once() {
    const N: usize = 8;
    for outage in [Outage::Refused, Outage::Unauthorized, Outage::Unavailable] {
        let (twilio, primary) = twilio_fake(move |_, _| twilio_outage(outage)).await;
        let primary_uri = match outage {
            Outage::Refused => refusing_uri(),
            _ => twilio.uri(),
        };
        let (seven, backup) = seven_fake().await;
        let w = sms_folder(
            &two_providers(&primary_uri, &seven.uri(), "max_attempts = 3"),
            &mobiles(N),
            "Alle Termine finden statt.",
        )
        .build();
        let run = w.run_async(SEND, NO_ENV).await;
        run.code(0);
        // The plan names the providers in order and the cost through each.
        run.stderr_has("SMS providers: primary, backup (tried in this order)")
            .stderr_has("SMS cost per message via primary: 0.075 EUR (1 × 0.075)")
            .stderr_has("SMS cost per message via backup: 0.09 EUR (1 × 0.09)")
            .stderr_has("estimated cost 0.60 EUR via primary or 0.72 EUR via backup");
        let report = run.json();
        assert_eq!(report["totals"]["sent"], N, "{outage:?}: {report:#}");
        for d in deliveries(&report) {
            assert_eq!(d["route"], "backup", "{outage:?}: {d}");
        }
        let mut to: Vec<String> = backup.all().iter().map(|s| s.form()["to"].clone()).collect();
        to.sort();
        to.dedup();
        assert_eq!(
            (backup.count(), to.len()),
            (N, N),
            "{outage:?}: each message exactly once"
        );
        // Two failures in a row pause the primary (the breaker), and a busy one is tried
        // provider_attempts = 2 times per delivery at most; with two deliveries in flight
        // (the default concurrency) two more may have been on their way. (A refused
        // connection never reaches the fake: 0.)
        assert!(
            primary.count() <= 4,
            "{outage:?}: the primary saw {} requests",
            primary.count()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_fails_over_within_the_same_attempt() {
    // A refused connection leaves nothing to count at the fake, so this counts attempts.
    let (seven, backup) = seven_fake().await;
    let w = sms_folder(
        &two_providers(&refusing_uri(), &seven.uri(), "concurrency = 1"),
        &mobiles(5),
        "Alle Termine finden statt.",
    )
    .build();
    let report = w.run_async(SEND, NO_ENV).await.code(0).json();
    // The first two deliveries found the primary refusing (breaker threshold); each still got
    // through on the backup in that same attempt; the rest went straight to the backup.
    for d in deliveries(&report) {
        assert_eq!(
            (d["route"].as_str(), d["attempts"].as_u64()),
            (Some("backup"), Some(1)),
            "{d}"
        );
    }
    assert_eq!(backup.count(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recipient_error_is_final_and_never_fails_over() {
    let (twilio, primary) = twilio_refusing(BEN.1, 21211, "The 'To' number is not a valid phone number.").await;
    let (seven, backup) = seven_fake().await;
    let w = sms_folder(
        &two_providers(&twilio.uri(), &seven.uri(), ""),
        &csv(&[("Anna", ANNA.0), ("Ben", BEN.0), ("Dora", DORA.0)]),
        "Alle Termine finden statt.",
    )
    .build();
    let report = w.run_async(SEND, NO_ENV).await.code(3).json();
    let ben = delivery_to(&report, BEN.1);
    assert_eq!(
        (ben["status"].as_str(), ben["route"].as_str()),
        (Some("failed"), Some("primary")),
        "{ben}"
    );
    assert!(ben["error"].as_str().unwrap().contains("21211"), "{ben}");
    assert_eq!(ben["attempts"], 1);
    for who in [ANNA.1, DORA.1] {
        assert_eq!(delivery_to(&report, who)["route"], "primary");
    }
    assert_eq!(primary.count(), 3);
    assert_eq!(backup.count(), 0, "nothing went to the backup");
}

#[tokio::test(flavor = "multi_thread")]
async fn both_provider_forms_at_once_are_refused_naming_the_line() {
    let channel = format!(
        "[channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         [[channels.sms.providers]]\nprovider = \"seven\"\napi_key_env = \"{SEVEN_ENV}\"\n"
    );
    let w = sms_folder(&channel, &csv(&[("Anna", ANNA.0)]), "kurz").build();
    let text = std::fs::read_to_string(w.path("channels.toml")).unwrap();
    let line = text.lines().position(|l| l == "[channels.sms]").unwrap() + 1;
    w.run_async(SEND, NO_ENV)
        .await
        .code(2)
        .stderr_has(&format!("channels.toml:{line}:1"))
        .stderr_has("both [[channels.sms.providers]] and provider keys in the table itself (provider, from)");
    assert!(!w.path(".announce/journal.sqlite3").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn check_probes_every_provider() {
    let (twilio, _) = twilio_fake(|req, _| twilio_created(req)).await;
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{TWILIO_SID}.json")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"sid": TWILIO_SID, "friendly_name": "Studio", "status": "active"})),
        )
        .mount(&twilio)
        .await;
    let (seven, _) = seven_fake().await;
    let balance = answer(&seven, "GET", "/api/balance", |_, _| {
        ResponseTemplate::new(200).set_body_json(json!({"amount": 0.0, "currency": "EUR"}))
    })
    .await;
    let w = sms_folder(
        &two_providers(&twilio.uri(), &seven.uri(), ""),
        &csv(&[("Anna", ANNA.0)]),
        "kurz",
    )
    .build();
    let check = w.run_async(&["check"], NO_ENV).await;
    // The backup has no credit: check fails, and says which provider it is.
    check.code(1);
    let out = check.stdout();
    let line = |name: &str| out.lines().find(|l| l.contains(name)).map(str::to_string);
    let primary = line("primary").unwrap_or_else(|| panic!("{}", check.describe()));
    let backup = line("backup").unwrap_or_else(|| panic!("{}", check.describe()));
    assert!(primary.contains("active"), "{primary}");
    assert!(backup.contains("balance 0.00"), "{backup}");
    assert_eq!(balance.count(), 1);
}

#[test]
fn an_unknown_key_in_either_form_is_exit_2_naming_file_and_line() {
    // The provider keys are one struct flattened into both forms; unknown keys still fail.
    let one = twilio_channel("http://127.0.0.1:9", "colour = \"red\"");
    let two = "[channels.sms]\ntype = \"sms\"\n[[channels.sms.providers]]\nprovider = \"twilio\"\n\
               from = \"+4930123456\"\ncolour = \"red\"\n";
    for channels in [one.as_str(), two] {
        let w = sms_folder(channels, &csv(&[("Anna", ANNA.0)]), "Kurz.").build();
        let r = w.run(&["send", "notices/n.md", "--yes"]);
        r.code(2)
            .stderr_has("channels.toml:")
            .stderr_has("unknown field `colour`");
    }
}
