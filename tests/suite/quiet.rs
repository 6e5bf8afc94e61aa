//! Quiet hours on SMS, end to end: the Twilio fake of tests/support/sms_fakes.rs beside the
//! outbox. The windows are computed from the clock when the test runs (an hour either side of
//! now, or starting two hours from now), so no test depends on the time of day.

use crate::support;
use crate::support::sms_fakes::*;

use jiff::ToSpan;
use support::scenario::{SEND, by_recipient_on};
use support::{Scenario, deliveries};

const TOKEN_ENV: &str = "ANNOUNCE_TEST_TWILIO_TOKEN";
const ZONE: &str = "Europe/Berlin";
const PEOPLE: &str = "name,email,phone\nAnna,anna@example.de,0151 23456789\n\
                      Ben,ben@example.de,0160 1234567\nCara,cara@example.de,0176 98765432\n";

/// "HH:MM" of the wall clock in Berlin `hours` from now.
fn berlin_in(hours: i64) -> String {
    let t = jiff::ZonedDateTime::now()
        .with_time_zone(jiff::tz::TimeZone::get(ZONE).unwrap())
        .datetime()
        .checked_add(hours.hours())
        .unwrap();
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// A window that now is well inside (a minute boundary or a slow run cannot leave it).
fn covering_now() -> String {
    format!("{}-{}", berlin_in(-1), berlin_in(1))
}

/// A window that starts two hours from now.
fn not_covering_now() -> String {
    format!("{}-{}", berlin_in(2), berlin_in(3))
}

fn sms_channel(uri: &str, quiet_hours: &str) -> String {
    format!(
        "[channels.sms]\ntype = \"sms\"\nprovider = \"twilio\"\nfrom = \"+4930123456\"\n\
         account_sid = \"{TWILIO_SID}\"\nauth_token_env = \"{TOKEN_ENV}\"\nbase_url = \"{uri}\"\n\
         quiet_hours = \"{quiet_hours}\"\n"
    )
}

const OUTBOX: &str = "[channels.outbox]\ntype = \"outbox\"\ndir = \"outbox\"\n";

fn folder(channels: &str) -> Scenario {
    Scenario::new()
        .top("default_region = \"DE\"")
        .org(&format!("name = \"Studio\"\ntimezone = \"{ZONE}\""))
        .audience(PEOPLE)
        .channel(channels)
        .env(TOKEN_ENV, TWILIO_TOKEN)
        .notice("summary = \"Heute geschlossen.\"", "Das Studio bleibt heute zu.")
}

fn statuses(report: &serde_json::Value, channel: &str) -> Vec<String> {
    by_recipient_on(&deliveries(report), channel)
        .values()
        .map(|d| d["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn inside_quiet_hours_sms_waits_for_resume_and_the_outbox_is_sent() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let window = covering_now();
    let w = folder(&(OUTBOX.to_string() + &sms_channel(&fake.uri(), &window))).build();
    let end = &window[6..];

    let run = w.run_async(SEND, support::NO_ENV).await;
    run.code(1);
    assert_eq!(log.all().len(), 0, "no SMS may start inside the window");
    let report = run.json();
    assert_eq!(statuses(&report, "sms"), ["pending"; 3]);
    assert_eq!(statuses(&report, "outbox"), ["sent"; 3]);
    assert_eq!(w.outbox().len(), 3);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    // The plan says so before anything is sent, the summary when the run ends.
    run.stderr_has(&format!(
        "sms: quiet hours {window}, now inside: deliveries will wait until {end} ({ZONE})"
    ));
    run.stderr_has(&format!(
        "sms: 3 deliveries wait for quiet hours to end at {end} ({ZONE}) — run `announce resume {run_id}` then"
    ));
    let waiting = &report["quiet_hours"];
    assert_eq!(waiting.as_array().map(Vec::len), Some(1), "{report:#}");
    assert_eq!(
        (
            &waiting[0]["channel"],
            &waiting[0]["pending"],
            &waiting[0]["quiet_hours"]
        ),
        (&"sms".into(), &3.into(), &window.clone().into())
    );
    let until: jiff::ZonedDateTime = waiting[0]["until"].as_str().unwrap().parse().unwrap();
    assert_eq!(format!("{:02}:{:02}", until.hour(), until.minute()), end);
    assert!(until.timestamp() > jiff::Timestamp::now());

    // `report` shows them as pending, and nothing new.
    let shown = w.run_async(&["report", &run_id], support::NO_ENV).await;
    assert!(shown.stdout().contains("pending"), "{}", shown.describe());

    // Outside the window (the config changed) `resume` sends them, and the outbox not again.
    w.config_replace(
        &format!("quiet_hours = \"{window}\""),
        &format!("quiet_hours = \"{}\"", not_covering_now()),
    );
    let resumed = w
        .run_async(&["resume", &run_id, "--yes", "--json"], support::NO_ENV)
        .await;
    resumed.code(0);
    assert_eq!(log.all().len(), 3);
    assert_eq!(statuses(&resumed.json(), "sms"), ["sent"; 3]);
    assert!(resumed.json().get("quiet_hours").is_none());
    assert_eq!(w.outbox().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_quiet_hours_sms_is_sent_and_nothing_is_said() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let w = folder(&sms_channel(&fake.uri(), &not_covering_now())).build();
    let run = w.run_async(SEND, support::NO_ENV).await;
    run.code(0);
    assert_eq!(log.all().len(), 3);
    assert_eq!(statuses(&run.json(), "sms"), ["sent"; 3]);
    assert!(!run.stderr().contains("quiet hours"), "{}", run.describe());
    assert!(run.json().get("quiet_hours").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_says_when_a_channel_is_inside_its_quiet_hours() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let window = covering_now();
    let w = folder(&sms_channel(&fake.uri(), &window)).build();
    let run = w
        .run_async(&["preview", support::scenario::NOTICE], support::NO_ENV)
        .await;
    run.code(0);
    let note = format!(
        "sms: quiet hours {window}, now inside: deliveries will wait until {} ({ZONE})",
        &window[6..]
    );
    assert!(run.stdout().contains(&note), "{}", run.describe());
    assert_eq!(log.all().len(), 0);
}

/// Bad values and the key on a channel that does not call or text people: exit 2 at the key's
/// line and column, nothing sent.
#[tokio::test(flavor = "multi_thread")]
async fn bad_quiet_hours_are_refused_with_their_place() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    for (value, why) in [
        ("20:00-20:00", "the start and the end are the same"),
        ("25:00-08:00", "\"25:00\" is not a time of day"),
        ("20:00", "expected HH:MM-HH:MM"),
        ("8pm-8am", "expected HH:MM-HH:MM"),
    ] {
        let w = folder(&(OUTBOX.to_string() + &sms_channel(&fake.uri(), value))).build();
        let run = w.run_async(SEND, support::NO_ENV).await;
        run.code(2);
        let err = run.stderr();
        assert!(err.contains(&format!("quiet_hours {value:?}: {why}")), "{err}");
        assert!(
            err.contains(&format!("channels.toml:{}:1: ", key_line(&w, "sms"))),
            "{err}"
        );
        assert!(w.outbox().is_empty());
    }
    for table in [
        OUTBOX.to_string(),
        "[channels.mail]\ntype = \"email\"\nfrom = \"info@studio.example\"\n\
         [[channels.mail.relays]]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n"
            .to_string(),
    ] {
        let table = table.replacen("\"\n", "\"\nquiet_hours = \"20:00-08:00\"\n", 1);
        let w = folder(&(sms_channel(&fake.uri(), &not_covering_now()) + &table)).build();
        let run = w.run_async(SEND, support::NO_ENV).await;
        run.code(2);
        let name = table.split(['.', ']']).nth(1).unwrap();
        let line = key_line(&w, name);
        run.stderr_has(&format!(
            "channels.toml:{line}:1: [channels.{name}] quiet_hours is for channels that reach people by phone: sms, voice, whatsapp"
        ));
        assert!(w.outbox().is_empty());
    }
    assert_eq!(log.all().len(), 0);
}

/// The line of `quiet_hours` in the table `[channels.NAME]` of the folder's channels.toml.
fn key_line(w: &support::Workspace, name: &str) -> usize {
    let config = w.read("channels.toml");
    let lines: Vec<&str> = config.lines().collect();
    let table = lines.iter().position(|l| *l == format!("[channels.{name}]")).unwrap();
    1 + table
        + lines[table..]
            .iter()
            .position(|l| l.starts_with("quiet_hours = "))
            .unwrap()
}

/// `--wait` inside the window: the outbox is sent, SMS waits; Ctrl-C while it waits ends the
/// run as elsewhere (exit 1, the SMS `pending`, nothing sent to Twilio).
#[tokio::test(flavor = "multi_thread")]
async fn with_wait_sms_waits_and_ctrl_c_leaves_it_pending() {
    let (fake, log) = twilio_fake(|req, _| twilio_created(req)).await;
    let w = folder(&(OUTBOX.to_string() + &sms_channel(&fake.uri(), &covering_now()))).build();
    let child = w
        .command()
        .args(["send", support::scenario::NOTICE, "--yes", "--json", "--wait"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::task::spawn_blocking({
        let w = w.clone();
        move || {
            // The outbox is done: the run is dispatching and SMS is waiting for the window.
            w.await_outbox(3);
            support::ctrl_c(&child);
            child.wait_with_output().unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Interrupted. `announce resume"), "{stderr}");
    assert!(!stderr.contains("deliveries wait for quiet hours"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(statuses(&report, "sms"), ["pending"; 3]);
    assert_eq!(statuses(&report, "outbox"), ["sent"; 3]);
    assert_eq!(log.all().len(), 0);
}
