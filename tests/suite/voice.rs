//! The voice channel end to end through the binary, against in-process fakes of Twilio's Call
//! resource and Vonage's Voice API that follow the documented contracts
//! (tests/support/voice_fakes.rs): the request shapes, the TwiML read back by an independent XML
//! parser, the Vonage JWT verified with the public key, call statuses by `report --refresh`,
//! landlines called while SMS skips them, and the length limit checked before anything is sent.

use crate::support;
use crate::support::sms_fakes;
use crate::support::voice_fakes::*;

use serde_json::json;
use sms_fakes::{TWILIO_SID, TWILIO_TOKEN, basic, twilio_created, twilio_messages_path};
use support::scenario::SEND;
use support::{Scenario, delivery_to, error_of};

const TOKEN_ENV: &str = "ANNOUNCE_TEST_TWILIO_TOKEN";
/// Anna has a mobile, Lena only a landline.
const ANNA: (&str, &str) = ("0151 23456789", "+4915123456789");
const LENA: (&str, &str) = ("030 9876543", "+49309876543");
/// A title with every XML special character.
const TITLE: &str = r#"Störung <heute> & "morgen" 'ab 9'"#;
const SUMMARY: &str = "Die Website ist offline, alle Termine finden statt.";

/// A folder with the studio's phone number, Anna and Lena, `channels` and a notice whose title
/// has XML's special characters.
fn voice_folder(channels: &str) -> Scenario {
    Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"\nphone = \"+49 30 1234567\"")
        .audience(&format!("name,phone\nAnna,{}\nLena,{}\n", ANNA.0, LENA.0))
        .channel(channels)
        .title(&TITLE.replace('"', "\\\""))
        .notice(&format!("summary = \"{SUMMARY}\""), "Text.")
        .secret(TOKEN_ENV, TWILIO_TOKEN)
}

/// What the default (English) template says for the notice.
fn spoken() -> String {
    format!(
        "This is a message from Studio. {TITLE}. {SUMMARY} If you have questions, please call us back at \
         plus 4 9, 3 0, 1 2 3, 4 5 6 7."
    )
}

/// `report latest --refresh` (the call statuses), which must exit 0; the report is JSON.
async fn refresh(w: &support::Workspace) -> support::Run {
    let r = w
        .run_async(&["report", "latest", "--refresh", "--format", "json"], support::NO_ENV)
        .await;
    r.code(0);
    r
}

fn twilio_voice(uri: &str, extra: &str) -> String {
    format!(
        "[channels.call]\ntype = \"voice\"\nprovider = \"twilio\"\nfrom = \"+49 30 123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"{TOKEN_ENV}\"\nlanguage = \"de-DE\"\n\
         voice = \"Polly.Marlene\"\nrepeat = 2\nbase_url = \"{uri}\"\nretry_base = \"50ms\"\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn twilio_calls_speak_escaped_twiml_and_refresh_final_statuses() {
    let (server, calls, lookups) = twilio_voice_fake(
        |req, _| twilio_call_created(req),
        |sid| {
            if sid == twilio_call_sid_for(ANNA.1) {
                "completed"
            } else {
                "busy"
            }
        },
    )
    .await;
    let account = sms_fakes::answer(
        &server,
        "GET",
        format!("/2010-04-01/Accounts/{TWILIO_SID}.json"),
        |_, _| {
            wiremock::ResponseTemplate::new(200)
                .set_body_json(json!({"sid": TWILIO_SID, "friendly_name": "Studio", "status": "active"}))
        },
    )
    .await;
    let w = voice_folder(&twilio_voice(&server.uri(), "")).build();

    let check = w.run_async(&["check"], support::NO_ENV).await;
    check.code(0);
    assert!(check.stdout().contains("is active"), "{}", check.describe());
    assert_eq!(account.all().len(), 1);
    assert!(calls.all().is_empty(), "check calls no one");

    let run = w.run_async(SEND, support::NO_ENV).await;
    run.code(0);
    let text = spoken();
    // The plan shows what is said, its length and how long it takes.
    run.stderr_has(&format!("Voice characters: {} (limit 3000)", text.chars().count()))
        .stderr_has("Voice speaking time: about ")
        .stderr_has("at 150 words per minute, ")
        .stderr_has("s spoken 2 times")
        .stderr_has("Voice text: This is a message from Studio.");
    let requests = calls.all();
    assert_eq!(requests.len(), 2, "one call each, the landline included");
    let mut to = Vec::new();
    for r in &requests {
        assert_eq!(
            r.header("authorization").as_deref(),
            Some(basic(TWILIO_SID, TWILIO_TOKEN).as_str())
        );
        let form = r.form();
        assert_eq!(form.keys().collect::<Vec<_>>(), ["From", "To", "Twiml"], "{form:?}");
        assert_eq!(form["From"], "+4930123456");
        // The special characters are escaped in the XML...
        let raw = &form["Twiml"];
        assert!(
            raw.contains("St\u{f6}rung &lt;heute&gt; &amp; &quot;morgen&quot; &apos;ab 9&apos;"),
            "{raw}"
        );
        // ...and an independent parser reads back exactly the text, with the attributes.
        let twiml = parsed_twiml(raw);
        assert_eq!(twiml["tag"], "Response");
        let say = &twiml["children"][0];
        assert_eq!(twiml["children"].as_array().unwrap().len(), 1);
        assert_eq!(say["tag"], "Say");
        assert_eq!(
            say["attrib"],
            json!({"language": "de-DE", "voice": "Polly.Marlene", "loop": "2"})
        );
        assert_eq!(say["text"], text);
        to.push(form["To"].clone());
    }
    to.sort();
    assert_eq!(to, [ANNA.1, LENA.1]);
    let report = run.json();
    for e164 in [ANNA.1, LENA.1] {
        let d = delivery_to(&report, e164);
        assert_eq!(
            (d["status"].as_str(), d["route"].as_str()),
            (Some("sent"), Some("twilio"))
        );
        assert_eq!(d["provider_id"], twilio_call_sid_for(e164));
    }
    assert!(lookups.all().is_empty());

    let refreshed = refresh(&w).await;
    refreshed.stderr_has("call: 1 delivered, 1 undelivered, 0 not final yet");
    let report = refreshed.json();
    assert_eq!(delivery_to(&report, ANNA.1)["status"], "delivered");
    let lena = delivery_to(&report, LENA.1);
    assert_eq!(lena["status"], "undelivered");
    assert!(error_of(&lena).starts_with("busy"), "{lena}");
    let fetched: Vec<String> = lookups.all().iter().map(|s| s.path().to_string()).collect();
    assert_eq!(fetched.len(), 2);
    assert!(
        fetched.contains(&format!(
            "/2010-04-01/Accounts/{TWILIO_SID}/Calls/{}.json",
            twilio_call_sid_for(LENA.1)
        )),
        "{fetched:?}"
    );
    w.assert_secrets_absent();
}

#[tokio::test(flavor = "multi_thread")]
async fn vonage_calls_carry_a_verifiable_jwt_and_a_talk_ncco() {
    let (server, calls, reads) = vonage_voice_fake(|req, _| vonage_call_created(req), |_| "unanswered").await;
    let (private_pem, public_pem) = rsa_key_pair();
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"\nphone = \"030 1234567\"")
        .audience(&format!("name,phone\nAnna,{}\n", ANNA.0))
        .channel(&format!(
            "[channels.call]\ntype = \"voice\"\nprovider = \"vonage\"\nfrom = \"+4930123456\"\n\
             application_id = \"{VONAGE_APP_ID}\"\nprivate_key_file = \"keys/vonage.key\"\n\
             template = \"voice.txt.de.hbs\"\nvoice = \"3\"\nbase_url = \"{}\"\n",
            server.uri()
        ))
        .file("keys/vonage.key", private_pem)
        .notice(&format!("summary = \"{SUMMARY}\""), "Text.")
        .build();

    let check = w.run_async(&["check"], support::NO_ENV).await;
    check.code(0);
    assert!(check.stdout().contains("JWT accepted"), "{}", check.describe());
    let list = reads.all();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].path(), "/v1/calls");
    assert_eq!(list[0].request.url.query(), Some("page_size=1"));

    let run = w.run_async(SEND, support::NO_ENV).await;
    run.code(0);
    let requests = calls.all();
    assert_eq!(requests.len(), 1, "{}", run.describe());
    let r = &requests[0];
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    let token = r.header("authorization").unwrap();
    let token = token.strip_prefix("Bearer ").expect("a Bearer token");
    let (header, claims) = verified_jwt(token, public_pem);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["application_id"], VONAGE_APP_ID);
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert!(exp > iat, "{claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()), "{claims}");
    // The German template, its language by default, numbers as digits without `+`.
    let german = format!(
        "Hier ist eine Nachricht von Studio. Website gestört. {SUMMARY} Bei Fragen rufen Sie uns bitte zurück unter \
         0 3 0, 1 2 3, 4 5 6 7."
    );
    assert_eq!(
        r.json(),
        json!({
            "to": [{"type": "phone", "number": "4915123456789"}],
            "from": {"type": "phone", "number": "4930123456"},
            "ncco": [{"action": "talk", "text": german, "language": "de-DE", "loop": 1, "style": 3}],
        })
    );
    let d = run.delivery(ANNA.1);
    assert_eq!(d["provider_id"], vonage_uuid_for(ANNA.1));

    let refreshed = refresh(&w).await;
    let anna = delivery_to(&refreshed.json(), ANNA.1);
    assert_eq!(anna["status"], "undelivered");
    assert!(error_of(&anna).starts_with("unanswered"), "{anna}");
    let lookup = reads.all().pop().unwrap();
    assert_eq!(lookup.path(), format!("/v1/calls/{}", vonage_uuid_for(ANNA.1)));
    // Neither the private key nor a JWT made with it is printed or kept.
    let key_line = private_pem.lines().nth(2).unwrap();
    w.assert_absent(key_line, &[&check, &run, &refreshed]);
    w.assert_absent(token, &[&check, &run, &refreshed]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_landline_only_person_is_called_and_skipped_by_sms() {
    let (server, calls, _) = twilio_voice_fake(|req, _| twilio_call_created(req), |_| "queued").await;
    let texts = sms_fakes::answer(&server, "POST", twilio_messages_path(), |req, _| twilio_created(req)).await;
    let sms = format!(
        "[channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"{TOKEN_ENV}\"\nbase_url = \"{}\"\n",
        server.uri()
    );
    let w = voice_folder(&format!("{sms}{}", twilio_voice(&server.uri(), ""))).build();
    let run = w.run_async(SEND, support::NO_ENV).await;
    run.code(0);
    let ds = run.deliveries();
    let on = |channel: &str| support::scenario::by_recipient_on(&ds, channel);
    let (by_sms, by_call) = (on("sms"), on("call"));
    assert_eq!(by_sms[ANNA.1]["status"], "sent");
    assert_eq!(by_sms[LENA.1]["status"], "skipped");
    assert!(
        error_of(&by_sms[LENA.1]).contains("not a mobile number (fixed line)"),
        "{}",
        by_sms[LENA.1]
    );
    assert_eq!(by_call[LENA.1]["status"], "sent");
    assert_eq!(by_call[ANNA.1]["status"], "sent");
    let called: Vec<String> = calls.all().iter().map(|r| r.form()["To"].clone()).collect();
    let texted: Vec<String> = texts.all().iter().map(|r| r.form()["To"].clone()).collect();
    assert!(called.contains(&LENA.1.to_string()) && called.len() == 2, "{called:?}");
    assert_eq!(texted, [ANNA.1]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_over_the_limit_or_a_config_mistake_stops_before_any_call() {
    let (server, calls, _) = twilio_voice_fake(|req, _| twilio_call_created(req), |_| "queued").await;
    let long = "sehr lang ".repeat(310);
    let w = voice_folder(&twilio_voice(&server.uri(), ""))
        .notice(&format!("summary = \"{long}\""), "Text.")
        .build();
    let r = w.run_async(SEND, support::NO_ENV).await;
    r.code(2)
        .stderr_has("the voice message is ")
        .stderr_has("more than the 3000 a call speaks");
    // A premium-rate number is no one's phone: skipped with its kind.
    w.write(
        "customers.csv",
        "name,phone\nHotline,0900 1234567\nAnna,0151 23456789\n",
    )
    .notice_file("notices/n.md", "Kurz", "summary = \"Kurz.\"", "Text.");
    let r = w.run_async(SEND, support::NO_ENV).await;
    r.code(0);
    let hotline = r.delivery("+499001234567");
    assert_eq!(hotline["status"], "skipped");
    assert!(
        error_of(&hotline).contains("not reachable by a call (premium rate)"),
        "{hotline}"
    );
    assert_eq!(calls.all().len(), 1, "only Anna is called");
    // Keys of the other provider, and repeat out of range, are refused naming the line.
    w.config_line("repeat = 2", "application_id = \"x\"");
    let r = w.run_async(&["check"], support::NO_ENV).await;
    r.code(2)
        .stderr_has("application_id is not used by provider \"twilio\"");
    w.config_line("application_id", "repeat = 0");
    let r = w.run_async(&["check"], support::NO_ENV).await;
    r.code(2)
        .stderr_has("repeat = 0: use 1 to 10")
        .stderr_has("channels.toml:");
    assert_eq!(calls.all().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_errors_are_classified_per_call_or_for_the_channel() {
    // Twilio: Lena's number cannot be reached (final for her), Anna's first try is throttled.
    let (server, calls, _) = twilio_voice_fake(
        |req, n| match sms_fakes::form_value(req, "To").as_deref() {
            Some(to) if to == LENA.1 => sms_fakes::twilio_error(400, 21214, "'To' phone number cannot be reached"),
            _ if n <= 2 => sms_fakes::twilio_error(429, 20429, "Too Many Requests"),
            _ => twilio_call_created(req),
        },
        |_| "queued",
    )
    .await;
    let w = voice_folder(&twilio_voice(&server.uri(), "concurrency = 1\nmax_attempts = 3")).build();
    let run = w.run_async(SEND, support::NO_ENV).await;
    run.code(3);
    let (anna, lena) = (run.delivery(ANNA.1), run.delivery(LENA.1));
    support::assert_outcome(&lena, "failed", 1);
    assert!(error_of(&lena).contains("twilio 21214"), "{lena}");
    assert_eq!(anna["status"], "sent", "{anna}");
    assert!(anna["attempts"].as_u64().unwrap() >= 2, "the 20429 was retried: {anna}");
    assert_eq!(calls.all().len() as u64, 1 + anna["attempts"].as_u64().unwrap());

    // Vonage: credentials refused, so no call of the channel can work: it stops, the rest wait.
    let (server, calls, _) = vonage_voice_fake(
        |_, _| {
            vonage_problem(
                401,
                "unauthorized",
                "Unauthorized",
                "You did not provide correct credentials.",
            )
        },
        |_| "started",
    )
    .await;
    let w = voice_folder(&format!(
        "[channels.call]\ntype = \"voice\"\nprovider = \"vonage\"\nfrom = \"+4930123456\"\n\
         application_id = \"{VONAGE_APP_ID}\"\nprivate_key_file = \"vonage.key\"\nconcurrency = 1\nbase_url = \"{}\"\n",
        server.uri()
    ))
    .file("vonage.key", &rsa_key_pair().0)
    .build();
    let run = w.run_async(SEND, support::NO_ENV).await;
    run.code(1);
    let report = run.json();
    assert_eq!(
        (
            report["totals"]["failed"].as_u64(),
            report["totals"]["pending"].as_u64()
        ),
        (Some(1), Some(1)),
        "{report:#}"
    );
    assert_eq!(calls.all().len(), 1, "nothing more after the 401");
    let failed = support::deliveries(&report)
        .into_iter()
        .find(|d| d["status"] == "failed")
        .unwrap();
    assert!(
        error_of(&failed).contains("Unauthorized: You did not provide correct credentials"),
        "{failed}"
    );
}

/// Without `language`, each call speaks the text its person gets: the German built-in as de-DE
/// to a `de` person, the English one as en-US to an `en` person.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_language_key_each_person_is_called_in_their_language() {
    let (server, calls, _) = twilio_voice_fake(|req, _| twilio_call_created(req), |_| "queued").await;
    let table = twilio_voice(&server.uri(), "").replace("language = \"de-DE\"\n", "");
    let w = voice_folder(&table)
        .audience(&format!(
            "name,phone,locale\nAnna,{},de\nLena,{},en-GB\n",
            ANNA.0, LENA.0
        ))
        .build();
    w.run_async(SEND, support::NO_ENV).await.code(0);
    let mut said: Vec<(String, String, String)> = calls
        .all()
        .iter()
        .map(|r| {
            let say = parsed_twiml(&r.form()["Twiml"])["children"][0].clone();
            let text = say["text"].as_str().unwrap().to_string();
            (
                r.form()["To"].clone(),
                say["attrib"]["language"].as_str().unwrap().to_string(),
                text,
            )
        })
        .collect();
    said.sort();
    assert_eq!(said.len(), 2, "{said:?}");
    let (anna, lena) = (&said[0], &said[1]);
    assert_eq!((anna.0.as_str(), anna.1.as_str()), (ANNA.1, "de-DE"));
    assert!(anna.2.starts_with("Hier ist eine Nachricht von Studio."), "{anna:?}");
    assert_eq!((lena.0.as_str(), lena.1.as_str()), (LENA.1, "en-US"));
    assert_eq!(lena.2, spoken());
}
