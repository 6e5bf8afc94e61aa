//! People rather than deliveries: `people` totals, the `not_reached` call list and
//! `report --not-reached`, through the binary against a real SMTP server (rejecting some
//! recipients with 550) and the Twilio fake (refusing one number with 21211).

use crate::support;
use crate::support::{sms_fakes, smtp};

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sms_fakes::*;
use support::scenario::error_on;
use support::{Scenario, Workspace};
use wiremock::MockServer;

const TOKEN_ENV: &str = "ANNOUNCE_TEST_TWILIO_TOKEN";

/// Line 1 is the header. Carla's and Fritz's names span two lines, so their rows are not
/// their index + 2.
const AUDIENCE: &str = "name,email,phone\n\
Anna,anna@example.de,0151 23456789\n\
Ben,ben@example.de,\n\
\"Carla\nMehrzeilig\",,0160 1234567\n\
Dora,dora@example.de,0176 98765432\n\
Emil,emil@example.de,0171 1111111\n\
\"Fritz\nOhne\",,\n\
Gabi,gabi@,0172 2222222\n";

/// Emil's number, as Twilio gets it: refused as invalid.
const EMIL_PHONE: &str = "+491711111111";

fn channels(smtp_port: u16, twilio: &str) -> String {
    format!(
        "[channels.email]\ntype = \"email\"\nfrom = \"Studio <info@studio.example>\"\nretry_base = \"50ms\"\n\
         retry_max = \"200ms\"\n  [[channels.email.relays]]\n  name = \"local\"\n  host = \"127.0.0.1\"\n  \
         port = {smtp_port}\n  tls = \"none\"\n\n\
         [channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"{TOKEN_ENV}\"\nbase_url = \"{twilio}\"\n\
         retry_base = \"50ms\"\nretry_max = \"200ms\"\n\n\
         [channels.statuspage]\ntype = \"statuspage\"\ndir = \"public/status\"\n"
    )
}

struct Sent {
    w: std::sync::Arc<Workspace>,
    _smtp: smtp::Server,
    _box: tempfile::TempDir,
    _twilio: MockServer,
    report: Value,
}

async fn send_to_everyone() -> Sent {
    let (twilio, _) = twilio_refusing(
        EMIL_PHONE,
        21211,
        "The 'To' number +491711111111 is not a valid phone number.",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let server = smtp::Server::smtp(
        &dir.path().join("box"),
        &[
            "--mode",
            "plain",
            "--reject-rcpt",
            "ben@example.de",
            "--reject-rcpt",
            "emil@example.de",
        ],
    );
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(AUDIENCE)
        .channel(&channels(server.port, &twilio.uri()))
        .notice("summary = \"Die Website ist offline.\"", "Die Website ist offline.")
        .build();
    let run = w.run_async(support::scenario::SEND, &[(TOKEN_ENV, TWILIO_TOKEN)]).await;
    run.code(3);
    assert!(
        run.stderr().starts_with("reached 4 of 7 people\n") || run.stderr().contains("\nreached 4 of 7 people\n"),
        "{}",
        run.describe()
    );
    let report = run.json();
    Sent {
        w,
        _smtp: server,
        _box: dir,
        _twilio: twilio,
        report,
    }
}

/// The call list as the contract's JSON, for the run above.
fn expected_not_reached(report: &Value) -> Value {
    let ben_550 = error_on(report, "email", "ben@example.de");
    let emil_550 = error_on(report, "email", "emil@example.de");
    let emil_21211 = error_on(report, "sms", EMIL_PHONE);
    assert!(ben_550.contains("550 5.1.1"), "{ben_550}");
    assert!(emil_21211.contains("21211"), "{emil_21211}");
    let gabi_email = error_on(report, "email", "row 10");
    assert!(
        gabi_email.starts_with("row 10: invalid email address \"gabi@\""),
        "{gabi_email}"
    );
    json!([
        {"row": 3, "name": "Ben", "email": "ben@example.de", "phone": "",
         "reasons": [format!("email: {ben_550}"), "sms: no phone number"]},
        {"row": 7, "name": "Emil", "email": "emil@example.de", "phone": EMIL_PHONE,
         "reasons": [format!("email: {emil_550}"), format!("sms: {emil_21211}")]},
        {"row": 8, "name": "Fritz\nOhne", "email": "", "phone": "",
         "reasons": ["email: no email address", "sms: no phone number"]},
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn people_totals_and_the_call_list_name_exactly_those_no_channel_reached() {
    let sent = send_to_everyone().await;
    let report = &sent.report;
    // Gabi's email is invalid but her SMS went out: reached.
    assert_eq!(
        report["people"],
        json!({"total": 7, "reached": 4, "not_reached": 3, "uncertain": 0}),
        "{report:#}"
    );
    assert_eq!(report["not_reached"], expected_not_reached(report), "{report:#}");

    // Every delivery carries the CSV line its person's record starts on; broadcasts none.
    let mut rows: BTreeMap<(String, String), Value> = BTreeMap::new();
    for d in report["deliveries"].as_array().unwrap() {
        assert_eq!(d["fallback"], false, "{d}");
        rows.insert(
            (
                d["channel"].as_str().unwrap().into(),
                d["recipient"].as_str().unwrap().into(),
            ),
            d["row"].clone(),
        );
    }
    let row = |c: &str, r: &str| rows[&(c.to_string(), r.to_string())].clone();
    assert_eq!(row("email", "anna@example.de"), 2);
    assert_eq!(row("sms", "+4915123456789"), 2);
    assert_eq!(row("sms", "+491601234567"), 4, "Carla's record starts on line 4");
    assert_eq!(row("email", "row 4"), 4);
    assert_eq!(row("email", "dora@example.de"), 6);
    assert_eq!(row("sms", "row 8"), 8, "Fritz's record starts on line 8");
    assert_eq!(row("email", "row 10"), 10);
    let broadcast: Vec<&Value> = report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["channel"] == "statuspage")
        .collect();
    assert_eq!(broadcast.len(), 1);
    assert_eq!(broadcast[0]["row"], Value::Null);

    // `report --not-reached`: exit 0 (it is a report), the same list in every format.
    let json_list = sent.w.run(&["report", "--not-reached", "--format", "json"]);
    json_list.code(0);
    assert_eq!(json_list.json(), json!({"not_reached": report["not_reached"].clone()}));

    let csv_list = sent.w.run(&["report", "--not-reached", "--format", "csv"]);
    csv_list.code(0);
    let out = csv_list.stdout();
    let mut r = csv::Reader::from_reader(out.as_bytes());
    assert_eq!(r.headers().unwrap(), vec!["row", "name", "email", "phone", "reasons"]);
    let lines: Vec<Vec<String>> = r
        .records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect();
    let expected: Vec<Vec<String>> = expected_not_reached(report)
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let phone = p["phone"].as_str().unwrap();
            vec![
                p["row"].to_string(),
                p["name"].as_str().unwrap().to_string(),
                p["email"].as_str().unwrap().to_string(),
                // A spreadsheet would read +49... as a number or formula.
                if phone.is_empty() {
                    String::new()
                } else {
                    format!("'{phone}")
                },
                p["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    assert_eq!(lines, expected, "{out}");

    let table = sent.w.run(&["report", "--not-reached"]);
    table.code(0);
    let t = table.stdout();
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("row  name"), "{t}");
    assert_eq!(lines.len(), 4, "a header and three people: {t}");
    // Aligned: every email column starts where the header's does.
    let email_at = lines[0].find("email").unwrap();
    assert_eq!(lines[1].find("ben@example.de"), Some(email_at), "{t}");
    assert_eq!(lines[2].find("emil@example.de"), Some(email_at), "{t}");

    // The full table report starts with the people.
    let full = sent.w.run(&["report"]);
    full.code(0);
    assert!(
        full.stdout().starts_with("reached 4 of 7 people\n"),
        "{}",
        full.stdout()
    );

    // The CSV report has row and fallback at the end.
    let csv_report = sent.w.run(&["report", "--format", "csv"]);
    let out = csv_report.stdout();
    let mut r = csv::Reader::from_reader(out.as_bytes());
    let headers: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(&headers[headers.len() - 2..], ["row", "fallback"]);
    let carla = r
        .records()
        .map(Result::unwrap)
        .find(|x| x.iter().any(|c| c == "'+491601234567"))
        .unwrap();
    assert_eq!((&carla[headers.len() - 2], &carla[headers.len() - 1]), ("4", "false"));

    sent.w.run(&["report", "--not-reached", "--format", "html"]).code(2);
}

/// A dry run prints what its plan counted, without counting the journal again: the people
/// line and the table must be the ones `report` counts from the journal. The audience has
/// what the two could count differently: rows the tag leaves out, a `[reach]` fallback on
/// standby, a duplicate, a row without any address, an unreadable row, a two-line name, and a
/// broadcast channel (no person) listed before the per-person ones.
#[test]
fn a_dry_runs_summary_is_the_one_the_journal_counts() {
    let audience = "name,email,phone,tags\n\
Anna,anna@example.de,0151 23456789,kunden\n\
Ben,ben@example.de,,kunden\n\
\"Carla\nMehrzeilig\",,0160 1234567,kunden\n\
Dora,dora@example.de,0176 98765432,presse\n\
Ben Zwei,BEN@example.de,,kunden\n\
Fritz,,,kunden\n\
Gabi,gabi@,0172 2222222,kunden\n\
Kaputt,a,b,c,d\n";
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(audience)
        .channel(&format!(
            "[channels.statuspage]\ntype = \"statuspage\"\ndir = \"public/status\"\n\n{}\n[reach]\norder = [\"sms\", \"email\"]\n",
            channels(9, "http://127.0.0.1:9")
                .split("[channels.statuspage]")
                .next()
                .unwrap()
        ))
        .notice("summary = \"Die Website ist offline.\"", "Die Website ist offline.")
        .build();
    let env = [(TOKEN_ENV, TWILIO_TOKEN)];
    let dry = w.run_env(&["send", "notices/n.md", "--tag", "kunden", "--dry-run"], &env);
    dry.code(0);
    let report = w.run_env(&["report", "latest"], &env);
    report.code(0);
    // The people line and the table, as each command prints them.
    let summary = |text: &str| -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        let people = lines.iter().find(|l| l.starts_with("reached ")).map(|l| l.to_string());
        let table = lines
            .iter()
            .skip_while(|l| !l.starts_with('┌'))
            .take_while(|l| !l.is_empty() && !l.starts_with("Run "))
            .map(|l| l.to_string());
        people.into_iter().chain(table).collect()
    };
    let printed = summary(&dry.stderr());
    assert_eq!(printed, summary(&report.stdout()), "{}", dry.describe());
    // Seven people (Dora has not the tag); Anna's and Carla's emails wait on standby, no
    // deliveries yet.
    assert_eq!(printed[0], "reached 0 of 7 people", "{}", dry.describe());
    let planned = |name: &str| {
        let row = printed.iter().find(|l| l.starts_with(&format!("│ {name} ")));
        row.and_then(|l| l.split('┆').nth(2)).map(|c| c.trim().to_string())
    };
    assert_eq!(
        [planned("email"), planned("sms"), planned("statuspage")],
        [Some("5".into()), Some("7".into()), Some("1".into())],
        "{printed:#?}"
    );
    assert_eq!(
        printed.len(),
        9,
        "people, the table's three channels and total: {printed:#?}"
    );
}

/// A journal written before deliveries had `row` and `fallback` (the old schema, as SQL) still
/// opens, gets the columns, and reports its run: nobody counted as a person (no rows known).
#[test]
fn a_journal_from_before_people_still_reports() {
    let w = Scenario::new()
        .channel("[channels.outbox]\ntype = \"outbox\"\ndir = \"outbox\"\n")
        .build();
    std::fs::create_dir_all(w.path(".announce")).unwrap();
    let db = rusqlite::Connection::open(w.path(".announce/journal.sqlite3")).unwrap();
    db.execute_batch(OLD_SCHEMA).unwrap();
    drop(db);
    let r = w.run(&["report", "old-run", "--format", "json"]);
    r.code(0);
    let v = r.json();
    assert_eq!(
        v["people"],
        json!({"total": 0, "reached": 0, "not_reached": 0, "uncertain": 0})
    );
    assert_eq!(v["not_reached"], json!([]));
    let d = &v["deliveries"][0];
    assert_eq!(
        (d["recipient"].as_str(), d["row"].clone(), d["fallback"].clone()),
        (Some("anna@example.de"), Value::Null, json!(false))
    );
    let list = w.run(&["report", "old-run", "--not-reached"]);
    list.code(0);
    assert!(list.stdout().contains("No people in this run"), "{}", list.stdout());
}

/// The journal schema as it was before `row` and `fallback`, with one run.
const OLD_SCHEMA: &str = "
CREATE TABLE runs (id TEXT PRIMARY KEY, digest TEXT NOT NULL, dry_run INTEGER NOT NULL, title TEXT NOT NULL,
    thread TEXT, severity TEXT NOT NULL, announcement TEXT NOT NULL, origin TEXT NOT NULL, base_dir TEXT NOT NULL,
    started_at TEXT NOT NULL, finished_at TEXT);
CREATE TABLE deliveries (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), channel TEXT NOT NULL,
    channel_type TEXT NOT NULL, recipient TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', data TEXT,
    status TEXT NOT NULL, problem INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0, provider_id TEXT,
    route TEXT, error TEXT, message_id TEXT, updated_at TEXT NOT NULL, UNIQUE (run_id, channel, recipient));
CREATE INDEX deliveries_run ON deliveries(run_id, channel, status);
CREATE TABLE attempts (delivery_id INTEGER NOT NULL REFERENCES deliveries(id), attempt INTEGER NOT NULL,
    started_ms INTEGER NOT NULL, finished_ms INTEGER, outcome TEXT, error TEXT, route TEXT,
    PRIMARY KEY (delivery_id, attempt)) WITHOUT ROWID;
INSERT INTO runs VALUES ('old-run', 'sha256:x', 0, 'Alt', NULL, 'info', '+++\ntitle = \"Alt\"\n+++\n', 'n.md', '.',
    '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z');
INSERT INTO deliveries (id, run_id, channel, channel_type, recipient, name, status, attempts, updated_at)
    VALUES (1, 'old-run', 'outbox', 'outbox', 'anna@example.de', 'Anna', 'sent', 1, '2026-01-01T00:00:01Z');
";
