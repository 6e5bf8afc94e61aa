//! `[reach]`: each person gets one message, from the first channel of the order that can reach
//! them; a `failed` one falls back to the next channel in the same run, an `undelivered` one on
//! `resume`. Email through the real SMTP server (tests/support/smtp_server.py, `--reject-rcpt`
//! for 550s), SMS through the Twilio fake of tests/support/sms_fakes.rs.

use crate::support;
use crate::support::sms_fakes::*;
use crate::support::smtp;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use support::scenario::by_recipient_on;
use support::{Scenario, Workspace, deliveries};
use wiremock::Mock;
use wiremock::matchers::{method, path_regex};

const TOKEN_ENV: &str = "ANNOUNCE_TEST_TWILIO_TOKEN";
const SEND: &[&str] = &["send", "notices/n.md", "--yes", "--json"];

fn env() -> Vec<(&'static str, &'static str)> {
    vec![(TOKEN_ENV, TWILIO_TOKEN)]
}

/// One person of the audience: name, email (may be empty), phone (may be empty).
type Person = (&'static str, &'static str, &'static str);

/// Anna and Dora have working addresses; Ben's and Emil's are refused (550); Cara has no email.
const PEOPLE: &[Person] = &[
    ("Anna", "anna@example.de", "0151 23456789"),
    ("Ben", "ben@example.de", "0160 1234567"),
    ("Cara", "", "0176 98765432"),
    ("Dora", "dora@example.de", ""),
    ("Emil", "emil@example.de", "0157 11122233"),
];
const REFUSED: &[&str] = &["ben@example.de", "emil@example.de"];

fn csv(people: &[Person]) -> String {
    let mut s = String::from("name,email,phone\n");
    for (name, email, phone) in people {
        s.push_str(&format!("{name},{email},{phone}\n"));
    }
    s
}

fn email_channel(port: u16) -> String {
    format!(
        "[channels.email]\ntype = \"email\"\nfrom = \"Studio <info@studio.example>\"\nmax_attempts = 2\n\
         retry_base = \"50ms\"\nretry_max = \"100ms\"\n\
         [[channels.email.relays]]\nname = \"local\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"
    )
}

fn sms_channel(uri: &str) -> String {
    format!(
        "[channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"{TOKEN_ENV}\"\nbase_url = \"{uri}\"\n\
         retry_base = \"50ms\"\nretry_max = \"200ms\"\n"
    )
}

/// A real SMTP server refusing `refused` with 550.
fn smtp_server(w: &Workspace, refused: &[&str]) -> smtp::Server {
    let mut args = vec!["--mode", "plain"];
    for r in refused {
        args.extend(["--reject-rcpt", r]);
    }
    smtp::Server::smtp(&w.path("box"), &args)
}

/// The folder: email + SMS, the audience, `reach_table` (a `[reach]` table or nothing) and the
/// notice's front matter `front`. Channels are written after the server ports are known.
fn folder(people: &[Person], front: &str) -> Scenario {
    Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(&csv(people))
        .notice(front, "Die Website ist offline.")
}

const REACH: &str = "\n[reach]\norder = [\"email\", \"sms\"]\n";

/// Recipients the SMTP server accepted, and the numbers Twilio got, sorted.
fn arrivals(server: &smtp::Server, log: &Log) -> (Vec<String>, Vec<String>) {
    let mails = server.recipients();
    let mut texts: Vec<String> = log.all().iter().map(|s| s.form()["To"].clone()).collect();
    texts.sort();
    (mails, texts)
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_emails_fall_back_to_sms_in_the_same_run_and_nobody_gets_both() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let w = folder(PEOPLE, "").build();
    let server = smtp_server(&w, REFUSED);
    w.channels(&(email_channel(server.port) + &sms_channel(&fake.uri()) + REACH));

    let run = w.run_async(SEND, &env()).await;
    run.code(3); // the refused emails stay failed
    run.stderr_has("reach: email first for 4 people, sms first for 1, no channel for 0");
    let (mails, texts) = arrivals(&server, &log);
    assert_eq!(mails, ["anna@example.de", "dora@example.de"]);
    // Ben and Emil (refused) and Cara (no email): one SMS each; Anna none.
    assert_eq!(texts, ["+4915711122233", "+491601234567", "+4917698765432"]);

    let ds = run.deliveries();
    let email = by_recipient_on(&ds, "email");
    let sms = by_recipient_on(&ds, "sms");
    for r in REFUSED {
        assert_eq!(email[*r]["status"], "failed", "{}", email[*r]);
        assert!(email[*r]["error"].as_str().unwrap().contains("550"), "{}", email[*r]);
    }
    assert_eq!(sms["+491601234567"]["fallback"], true, "Ben: {}", sms["+491601234567"]);
    assert_eq!(sms["+4915711122233"]["fallback"], true);
    assert_eq!(sms["+4917698765432"]["fallback"], false, "Cara went straight to SMS");
    assert_eq!(sms["row 5"]["status"], "skipped", "Dora has no phone");
    assert!(
        sms.values().all(|d| d["status"] == "sent" || d["recipient"] == "row 5"),
        "{sms:?}"
    );
    // Anna needed no SMS: the report has no SMS delivery of hers, and nobody has two sent.
    assert!(!sms.contains_key("+4915123456789"), "{sms:?}");
    let mut sent_per_row: BTreeMap<u64, usize> = BTreeMap::new();
    for d in ds.iter().filter(|d| d["status"] == "sent") {
        *sent_per_row.entry(d["row"].as_u64().unwrap()).or_default() += 1;
    }
    assert_eq!(sent_per_row, BTreeMap::from([(2, 1), (3, 1), (4, 1), (5, 1), (6, 1)]));
    let report = run.json();
    // Everyone was reached, Ben and Emil through their fallback.
    assert_eq!(
        report["people"],
        json!({"total": 5, "reached": 5, "not_reached": 0, "uncertain": 0})
    );
    assert_eq!(report["not_reached"], json!([]));
    run.stderr_has("reached 5 of 5 people");
    assert_eq!(report["channels"][1]["name"], "sms");
    // Three SMS and Dora's skip: Anna's standby SMS is not counted.
    assert_eq!(report["channels"][1]["planned"], 4, "{}", report["channels"]);
    assert_eq!(report["totals"]["planned"], 9, "{}", report["totals"]);
    // Nothing is left for a resume, and `--retry-failed` does not mail Ben or Emil again.
    let id = report["run_id"].as_str().unwrap().to_string();
    let again = w.run_async(&["resume", &id, "--yes", "--retry-failed"], &env()).await;
    again.stderr_has("2 failed deliveries are not retried");
    assert_eq!(arrivals(&server, &log), (mails, texts));
}

#[tokio::test(flavor = "multi_thread")]
async fn people_no_channel_of_the_order_can_reach_are_the_call_list() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    // Ben's email is refused and he has no phone; Gabi has neither address; Anna is reached.
    let people: &[Person] = &[
        ("Anna", "anna@example.de", "0151 23456789"),
        ("Ben", "ben@example.de", ""),
        ("Gabi", "", ""),
    ];
    let w = folder(people, "").build();
    let server = smtp_server(&w, &["ben@example.de"]);
    w.channels(&(email_channel(server.port) + &sms_channel(&fake.uri()) + REACH));

    let run = w.run_async(SEND, &env()).await;
    run.code(3);
    run.stderr_has("reach: email first for 2 people, sms first for 0, no channel for 1");
    run.stderr_has("reached 1 of 3 people");
    let (mails, texts) = arrivals(&server, &log);
    assert_eq!(mails, ["anna@example.de"]);
    assert!(texts.is_empty(), "nobody needed or could get an SMS: {texts:?}");
    let report = run.json();
    assert_eq!(
        report["people"],
        json!({"total": 3, "reached": 1, "not_reached": 2, "uncertain": 0})
    );
    let id = report["run_id"].as_str().unwrap().to_string();
    let list = w
        .run_async(&["report", &id, "--not-reached", "--format", "csv"], &env())
        .await;
    list.code(0);
    let ben_reason = report["not_reached"][0]["reasons"][0].as_str().unwrap().to_string();
    assert!(
        ben_reason.starts_with("email: ") && ben_reason.contains("550"),
        "{ben_reason}"
    );
    assert_eq!(
        list.stdout(),
        format!(
            "row,name,email,phone,reasons\n3,Ben,ben@example.de,,{ben_reason}; sms: no phone number\n\
             4,Gabi,,,email: no email address; sms: no phone number\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_reach_every_channel_sends_to_everyone_it_can_reach() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let w = folder(PEOPLE, "").build();
    let server = smtp_server(&w, REFUSED);
    w.channels(&(email_channel(server.port) + &sms_channel(&fake.uri())));

    let run = w.run_async(SEND, &env()).await;
    run.code(3);
    assert!(!run.stderr().contains("reach:"), "{}", run.describe());
    let (mails, texts) = arrivals(&server, &log);
    assert_eq!(mails, ["anna@example.de", "dora@example.de"]);
    assert_eq!(
        texts,
        ["+4915123456789", "+4915711122233", "+491601234567", "+4917698765432"]
    );
    let ds = run.deliveries();
    // Every person on every channel, as planned before `[reach]` existed: 5 emails (Cara's
    // skipped), 5 SMS (Dora's skipped), none a fallback.
    assert_eq!(
        by_recipient_on(&ds, "email").len() + by_recipient_on(&ds, "sms").len(),
        10,
        "{ds:?}"
    );
    assert!(ds.iter().all(|d| d["fallback"] == false), "{ds:?}");
    assert_eq!(ds.iter().filter(|d| d["status"] == "skipped").count(), 2, "{ds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn front_matter_reach_overrides_the_config() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let w = folder(PEOPLE, "reach = [\"sms\", \"email\"]").build();
    let server = smtp_server(&w, REFUSED);
    w.channels(&(email_channel(server.port) + &sms_channel(&fake.uri()) + REACH));

    let run = w.run_async(SEND, &env()).await;
    run.code(0);
    run.stderr_has("reach: sms first for 4 people, email first for 1, no channel for 0");
    let (mails, texts) = arrivals(&server, &log);
    assert_eq!(mails, ["dora@example.de"], "only Dora, who has no phone, gets an email");
    assert_eq!(texts.len(), 4);
    assert!(run.deliveries().iter().all(|d| d["fallback"] == false));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_names_in_the_order_are_refused_with_their_place_and_nothing_is_sent() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let w = folder(PEOPLE, "").build();
    let server = smtp_server(&w, &[]);
    let status_page = "\n[channels.page]\ntype = \"statuspage\"\ndir = \"status\"\n";
    let refused = |w: &Workspace, text: &str, at: &str, says: &str| {
        let run = w.run_env(SEND, &env());
        run.code(2).stderr_has(at).stderr_has(says);
        assert!(
            !w.path(".announce/journal.sqlite3").exists(),
            "{text}: nothing journaled"
        );
    };
    // An unknown name in channels.toml: the name at column 19 of `order = [...]`.
    w.channels(&(email_channel(server.port) + &sms_channel(&fake.uri()) + "\n[reach]\norder = [\"email\", \"fax\"]\n"));
    let config = w.read("channels.toml");
    let line = config.lines().position(|l| l.starts_with("order")).unwrap() + 1;
    refused(
        &w,
        "unknown",
        &format!("channels.toml:{line}:19"),
        "no channel named \"fax\"",
    );
    // A broadcast channel in the order.
    w.channels(
        &(email_channel(server.port)
            + &sms_channel(&fake.uri())
            + &format!("{status_page}\n[reach]\norder = [\"email\", \"page\"]\n")),
    );
    let config = w.read("channels.toml");
    let line = config.lines().position(|l| l.starts_with("order")).unwrap() + 1;
    refused(
        &w,
        "broadcast",
        &format!("channels.toml:{line}:19"),
        "posts once per run",
    );
    // The same in the front matter: notice.md:line:col of the name.
    w.channels(&(email_channel(server.port) + &sms_channel(&fake.uri()) + REACH));
    w.write(
        "notices/n.md",
        "+++\ntitle = \"Website gestört\"\nreach = [\"sms\", \"telex\"]\n+++\nText\n",
    );
    refused(&w, "front matter", "notices/n.md:3:17", "no channel named \"telex\"");
    assert_eq!(arrivals(&server, &log), (vec![], vec![]));
}

/// An SMS that ends `undelivered` (learnt by `report --refresh`) hands the person to the next
/// channel; `resume` sends it.
#[tokio::test(flavor = "multi_thread")]
async fn undelivered_after_refresh_falls_back_on_resume() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let ben = twilio_sid_for("+491601234567");
    let statuses = Log::default();
    Mock::given(method("GET"))
        .and(path_regex(format!(
            r"^/2010-04-01/Accounts/{TWILIO_SID}/Messages/SM[0-9]+\.json$"
        )))
        .respond_with(Scripted::new(&statuses, move |req, _| {
            let sid = twilio_fetched_sid(req);
            let (status, code) = if sid == ben {
                ("undelivered", json!(30003))
            } else {
                ("delivered", Value::Null)
            };
            wiremock::ResponseTemplate::new(200).set_body_json(json!({
                "sid": sid, "account_sid": TWILIO_SID, "status": status, "error_code": code,
                "error_message": null, "num_segments": "1",
            }))
        }))
        .mount(&fake)
        .await;
    let people = &PEOPLE[..2];
    let w = folder(people, "reach = [\"sms\", \"email\"]").build();
    let server = smtp_server(&w, &[]);
    w.channels(&(email_channel(server.port) + &sms_channel(&fake.uri())));
    w.run_async(SEND, &env()).await.code(0);
    assert_eq!(arrivals(&server, &log).0, Vec::<String>::new());

    let refreshed = w
        .run_async(&["report", "latest", "--refresh", "--format", "json"], &env())
        .await;
    refreshed
        .code(0)
        .stderr_has("1 people now wait for the next channel of the reach order");
    let id = refreshed.json()["run_id"].as_str().unwrap().to_string();
    let resumed = w.run_async(&["resume", &id, "--yes", "--json"], &env()).await;
    resumed.code(3); // Ben's SMS stays undelivered
    let (mails, texts) = arrivals(&server, &log);
    assert_eq!(mails, ["ben@example.de"], "Anna's SMS was delivered: no email for her");
    assert_eq!(texts.len(), 2, "no SMS was sent twice");
    let ds = resumed.deliveries();
    let email = by_recipient_on(&ds, "email");
    assert_eq!(email["ben@example.de"]["fallback"], true);
    assert_eq!(email["ben@example.de"]["status"], "sent");
    assert!(!email.contains_key("anna@example.de"), "{ds:?}");
}

/// xorshift64*, seeded: the kill moments of the crash test.
fn next(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// SIGKILL at seeded random moments during a run where a third of the emails are refused, then
/// `resume`, again and again: in the end each person has one sent delivery (at most one if one
/// of theirs is `unknown`), every refused email has its SMS, nobody got an SMS and an email.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_fallbacks_then_resume_loses_none_and_sends_none_twice() {
    const N: usize = 45;
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let mut people = String::from("name,email,phone\n");
    let mut refused = Vec::new();
    for i in 0..N {
        let email = format!("p{i}@example.de");
        if i % 3 == 0 {
            refused.push(email.clone());
        }
        people.push_str(&format!("P{i},{email},0151 {:08}\n", 30_000_000 + i));
    }
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(&people)
        .notice("", "Die Website ist offline.")
        .build();
    let refused_refs: Vec<&str> = refused.iter().map(String::as_str).collect();
    let server = smtp_server(&w, &refused_refs);
    // Slow enough that kills land during the run: the rate, not a timing assertion.
    let mut c = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience("")
        .channel(&email_channel(server.port).replace(
            "max_attempts = 2\n",
            "max_attempts = 2\nrate = \"40/s\"\nconcurrency = 2\n",
        ))
        .channel(&format!("{}rate = \"40/s\"\n", sms_channel(&fake.uri())))
        .config_text();
    c.push_str(REACH);
    w.write("channels.toml", &c);

    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 | 1);
    eprintln!("reach crash test seed {seed} (SOAK_SEED={seed} replays it)");
    let ws = w.clone();
    let kills = tokio::task::spawn_blocking(move || {
        let mut state = seed;
        let mut kills = 0;
        // Bounded by count: at most 8 kills, then one process runs to the end.
        for _ in 0..8 {
            let run = ws
                .path(".announce/journal.sqlite3")
                .exists()
                .then(|| ws.journal().latest_run_id().unwrap())
                .flatten();
            let args: Vec<String> = match &run {
                None => SEND.iter().map(|s| s.to_string()).collect(),
                Some(id) => ["resume", id, "--yes"].iter().map(|s| s.to_string()).collect(),
            };
            let mut child = ws
                .command()
                .args(&args)
                .env(TOKEN_ENV, TWILIO_TOKEN)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(next(&mut state) % 1500));
            if child.try_wait().unwrap().is_some() {
                break; // done before the kill
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills += 1;
        }
        kills
    })
    .await
    .unwrap();
    // Then one process runs to the end: a resume, or the send if every kill came before the
    // run was journaled.
    let journaled = w.path(".announce/journal.sqlite3").exists();
    let report = match journaled.then(|| w.journal().latest_run_id().unwrap()).flatten() {
        None => w.run_async(SEND, &env()).await.json(),
        Some(id) => {
            let last = w.run_async(&["resume", &id, "--yes", "--json"], &env()).await;
            if last.stderr().contains("nothing left to send") {
                w.run_async(&["report", &id, "--format", "json"], &env()).await.json()
            } else {
                last.json()
            }
        }
    };
    assert_eq!(report["totals"]["pending"], 0, "{}", report["totals"]);
    eprintln!("{kills} kills");

    let ds = deliveries(&report);
    let mut per_row: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for d in &ds {
        per_row.entry(d["row"].as_u64().unwrap()).or_default().push(d);
    }
    assert_eq!(per_row.len(), N);
    for (row, ds) in &per_row {
        let sent = ds.iter().filter(|d| d["status"] == "sent").count();
        let unknown = ds.iter().any(|d| d["status"] == "unknown");
        if unknown {
            assert!(sent <= 1, "row {row}: {ds:?}");
        } else {
            assert_eq!(sent, 1, "row {row}: {ds:?}");
        }
        let failed_email = ds.iter().any(|d| d["channel"] == "email" && d["status"] == "failed");
        if failed_email {
            assert!(
                ds.iter().any(|d| d["channel"] == "sms" && d["fallback"] == true),
                "row {row}: the fallback was lost: {ds:?}"
            );
        }
    }
    // What arrived: nobody both, nobody twice (deliveries left `unknown` aside).
    let unknown: Vec<&str> = ds
        .iter()
        .filter(|d| d["status"] == "unknown")
        .map(|d| d["recipient"].as_str().unwrap())
        .collect();
    let (mails, texts) = arrivals(&server, &log);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for a in mails.iter().chain(&texts) {
        *count.entry(a.as_str()).or_default() += 1;
    }
    for (a, n) in &count {
        assert!(*n == 1 || unknown.contains(a), "{a} got {n} messages");
    }
    for i in 0..N {
        let email = format!("p{i}@example.de");
        let phone = format!("+49151{:08}", 30_000_000 + i);
        let both = count.contains_key(email.as_str()) && count.contains_key(phone.as_str());
        assert!(
            !both || unknown.contains(&email.as_str()),
            "P{i} got an email and an SMS"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_shows_a_fallback_on_standby_for_the_recipient_asked_for() {
    let (fake, _log) = twilio_fake(|req, _| twilio_created(req)).await;
    let w = folder(PEOPLE, "").build();
    w.channels(&(email_channel(1) + &sms_channel(&fake.uri()) + REACH));
    // Anna has an email, so her SMS waits on standby; it is still what she may get.
    let r = w
        .run_async(&["preview", "notices/n.md", "--recipient", "anna@example.de"], &env())
        .await;
    r.code(0);
    let out = r.stdout();
    assert!(out.contains("== email (email) -> anna@example.de"), "{out}");
    assert!(out.contains("== sms (sms) -> +4915123456789"), "{out}");
    assert!(!out.contains("no recipient to preview"), "{out}");
}
