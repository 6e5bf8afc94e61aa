//! Fault injection through real network behaviour and real file-system trouble, through the
//! binary: SMTP servers that drop, stall or answer 421 (tests/support/smtp_fault.py); HTTP
//! gateways that reset connections, answer too slowly, send malformed JSON or say "200, but
//! no" (Vonage style); a state folder that cannot be written, a corrupted journal, a journal
//! held by another process, and a full disk. Every case asserts the final statuses, that the
//! attempts were bounded (counted on both sides), and that the report explains each failure.

use crate::support;
use crate::support::smtp;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::scenario::{EXAMPLE_SEND, SEND};
use support::{NO_ENV, Recorder, Scenario, Workspace, assert_outcome, deliveries, error_of};
use wiremock::{Request, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn by_recipient(report: &Value) -> BTreeMap<String, Value> {
    deliveries(report)
        .into_iter()
        .map(|d| (d["recipient"].as_str().unwrap().to_string(), d))
        .collect()
}

/// The announcement's front matter and body.
const SUMMARY: &str = "summary = \"Website offline, Termine finden statt.\"";
const BODY: &str = "Alle Termine finden statt.";

// ---------------------------------------------------------------------------------------------
// SMTP
// ---------------------------------------------------------------------------------------------

/// One relay "only" on port 0 (a test replaces it once its fault server runs), one attempt
/// at a time.
fn smtp_scenario(recipients: usize, channel_extra: &str, relay_extra: &str) -> Scenario {
    Scenario::new()
        .org("name = \"Studio\"")
        .audience(&support::customers(recipients))
        .channel(&format!(
            "[channels.email]\ntype = \"email\"\nfrom = \"Studio <info@studio.example>\"\nconcurrency = 1\n\
             retry_base = \"50ms\"\nretry_max = \"100ms\"\n{channel_extra}\n\
             [[channels.email.relays]]\nname = \"only\"\nhost = \"127.0.0.1\"\nport = 0\ntls = \"none\"\n{relay_extra}\n"
        ))
        .notice(SUMMARY, BODY)
}

/// The relay closes the connection after the final "." without answering: it may have the
/// message, so the delivery is `unknown` after exactly one attempt, and is never retried.
#[test]
fn smtp_drop_after_data_is_unknown_after_one_attempt() {
    let ws = smtp_scenario(2, "max_attempts = 4", "").build();
    let fault = smtp::Server::fault(&ws.path("box"), "drop_after_data", &[]);
    ws.config_replace("port = 0", &format!("port = {}", fault.port));
    let run = ws.run(SEND);
    let report = run.json();
    run.code(3);
    for d in deliveries(&report) {
        assert_outcome(&d, "unknown", 1);
        assert_eq!(d["route"], "only");
        let e = error_of(&d);
        assert!(e.contains("may have accepted") && e.contains("--resend-unknown"), "{e}");
    }
    assert_eq!(report["totals"]["unknown"], 2);
    // Both messages were handed over completely, once each.
    assert_eq!(fault.stat("data_complete"), 2, "{}", fault.stats());
}

/// No answer after the final "." within the relay's timeout: `unknown`, one attempt.
#[test]
fn smtp_stall_after_data_times_out_as_unknown() {
    let ws = smtp_scenario(1, "max_attempts = 4", "timeout = \"1s\"").build();
    let fault = smtp::Server::fault(&ws.path("box"), "stall_after_data", &["--stall-seconds", "20"]);
    ws.config_replace("port = 0", &format!("port = {}", fault.port));
    let run = ws.run(SEND);
    let report = run.json();
    run.code(3);
    let d = &deliveries(&report)[0];
    assert_outcome(d, "unknown", 1);
    let e = error_of(d);
    assert!(e.contains("may have accepted"), "{e}");
    assert_eq!(fault.stat("data_complete"), 1);
    // The client, not the server's 20 s stall limit, ended the wait: the 1 s timeout applied.
    // The server notes the close when it reads EOF, which may come just after our exit.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !fault.transcript().contains("client closed while stalled") {
        assert!(Instant::now() < deadline, "no close noted:\n{}", fault.transcript());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !fault.transcript().contains("stall limit reached"),
        "{}",
        fault.transcript()
    );
}

/// 421 is transient wherever it comes: retried with backoff up to `max_attempts`, then
/// `failed` with the relay's words, and the message never arrives.
#[test]
fn smtp_421_is_retried_up_to_max_attempts() {
    // (script, the counter that shows one try per attempt): 421 to MAIL FROM (then the
    // connection closes), or 421 as the greeting.
    for (script, per_attempt) in [("mail421", "mail_from"), ("greet421", "connections")] {
        let ws = smtp_scenario(1, "max_attempts = 2", "").build();
        let fault = smtp::Server::fault(&ws.path("box"), script, &[]);
        ws.config_replace("port = 0", &format!("port = {}", fault.port));
        let run = ws.run(SEND);
        run.code(3);
        let d = &run.deliveries()[0];
        assert_outcome(d, "failed", 2);
        let e = error_of(d);
        assert!(
            e.contains("gave up after 2 attempts") && e.contains("421"),
            "{script}: {e}"
        );
        assert_eq!(fault.stat(per_attempt), 2, "{script}: {}", fault.stats());
        assert_eq!(fault.stat("messages"), 0, "{script}");
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP gateways (the SMS channel)
// ---------------------------------------------------------------------------------------------

const PHONES: [(&str, &str); 3] = [
    ("0151 23456781", "+4915123456781"),
    ("0151 23456782", "+4915123456782"),
    ("0151 23456783", "+4915123456783"),
];

/// The first `n` of `PHONES` and `[channels.sms]` with `channel`'s keys, three quick attempts.
fn sms_scenario(n: usize, channel: &str) -> Scenario {
    let mut csv = String::from("name,phone\n");
    for (i, (raw, _)) in PHONES.iter().take(n).enumerate() {
        csv.push_str(&format!("Kunde {i},{raw}\n"));
    }
    Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(&csv)
        .channel(&format!(
            "[channels.sms]\ntype = \"sms\"\nmax_attempts = 3\nretry_base = \"50ms\"\nretry_max = \"100ms\"\n{channel}\n"
        ))
        .notice(SUMMARY, BODY)
}

fn generic(url: &str, extra: &str) -> String {
    format!("provider = \"generic\"\nurl = \"{url}\"\nfrom = \"Studio\"\nid_pointer = \"/id\"\n{extra}")
}

fn vonage(base: &str, extra: &str) -> String {
    format!(
        "provider = \"vonage\"\nbase_url = \"{base}\"\nfrom = \"Studio\"\napi_key = \"abcd1234\"\n\
         api_secret_env = \"FAULT_VONAGE_SECRET\"\n{extra}"
    )
}

const VONAGE_ENV: &[(&str, &str)] = &[("FAULT_VONAGE_SECRET", "vonage-secret-f4u1t")];

fn resetting_listener() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { continue };
            c.fetch_add(1, Ordering::SeqCst);
            let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            // Unread bytes + close = RST on Linux; either way no HTTP answer.
            drop(s);
        }
    });
    (port, count)
}

/// The gateway takes the connection and drops it without an answer: the request may have
/// been processed, and SMS gateways have no idempotency key, so the delivery is `unknown`
/// after one attempt (never re-sent automatically).
#[tokio::test(flavor = "multi_thread")]
async fn http_connection_reset_is_unknown_after_one_attempt() {
    let (port, connections) = resetting_listener();
    let (_ws, run) = sms_scenario(2, &generic(&format!("http://127.0.0.1:{port}/send"), ""))
        .send_async()
        .await;
    for e in run.code(3).all_ended("unknown", 1) {
        assert!(
            e.contains("generic: no answer") && e.contains("may have accepted"),
            "{e}"
        );
        assert!(!e.contains(&port.to_string()), "the URL is kept out of errors: {e}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 2, "one connection per delivery");
}

/// Nobody listens: the request never left, so it is retried up to `max_attempts`, then
/// `failed`, with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn http_refused_connection_is_retried_then_failed() {
    let (_ws, run) = sms_scenario(
        1,
        &generic(&format!("http://127.0.0.1:{}/send", smtp::closed_port()), ""),
    )
    .send_async()
    .await;
    let report = run.json();
    run.code(3);
    let d = &deliveries(&report)[0];
    assert_outcome(d, "failed", 3);
    let e = error_of(d);
    assert!(
        e.contains("gave up after 3 attempts") && e.contains("cannot connect"),
        "{e}"
    );
}

/// An answer slower than the channel's `timeout`: the gateway got the request and may send
/// the text, so `unknown` after one attempt, and exactly one request per delivery.
#[tokio::test(flavor = "multi_thread")]
async fn http_slow_answer_beyond_timeout_is_unknown_after_one_attempt() {
    let (server, seen) = Recorder::serving_path("/send", |_, _| {
        ResponseTemplate::new(200)
            .set_body_json(json!({"id": "late"}))
            .set_delay(Duration::from_secs(4))
    })
    .await;
    let (_ws, run) = sms_scenario(2, &generic(&format!("{}/send", server.uri()), "timeout = \"1s\""))
        .send_async()
        .await;
    for e in run.code(3).all_ended("unknown", 1) {
        assert!(e.contains("may have accepted"), "{e}");
    }
    // The gateway's answer is a success: had the attempts waited for it, the deliveries would
    // be `sent`. `unknown` is what proves the 1 s timeout ended them first.
    assert_eq!(seen.count(), 2, "one request per delivery, never re-sent");
}

/// One delivery, one gateway answering every request with something malformed: the status,
/// the attempts (counted on both sides) and what the error quotes.
#[tokio::test(flavor = "multi_thread")]
async fn http_malformed_answers() {
    struct Case {
        what: &'static str,
        vonage: bool,
        answer: ResponseTemplate,
        outcome: (&'static str, u64),
        error: &'static [&'static str],
    }
    let cases = [
        // A gateway whose success is only in the body (Vonage): nobody knows whether it was
        // sent, so `unknown`, one attempt, and the report quotes the answer.
        Case {
            what: "HTTP 200 with a body that is not JSON, from Vonage",
            vonage: true,
            answer: ResponseTemplate::new(200)
                .set_body_raw("{\"message-count\":\"1\",\"messages\":[{\"sta", "application/json"),
            outcome: ("unknown", 1),
            error: &["unexpected answer from vonage", "message-count"],
        },
        // Garbage instead of an error envelope: transient, retried up to `max_attempts`, then
        // `failed` with the status and an excerpt.
        Case {
            what: "HTTP 500 with a malformed body",
            vonage: false,
            answer: ResponseTemplate::new(500).set_body_raw("<html>upstream exploded", "text/html"),
            outcome: ("failed", 3),
            error: &["gave up after 3 attempts", "HTTP 500", "upstream exploded"],
        },
        // A generic gateway with `id_pointer` whose 200 is not JSON: not the answer the config
        // describes (a proxy's page, a captive portal), so `unknown`, not `sent`.
        Case {
            what: "HTTP 200 with malformed JSON from a generic gateway",
            vonage: false,
            answer: ResponseTemplate::new(200).set_body_raw("OK{", "application/json"),
            outcome: ("unknown", 1),
            error: &["unexpected answer from generic", "OK{"],
        },
    ];
    for case in cases {
        let answer = case.answer.clone();
        let path = if case.vonage { "/sms/json" } else { "/send" };
        let (server, seen) = Recorder::serving_path(path, move |_, _| answer.clone()).await;
        let channel = if case.vonage {
            vonage(&server.uri(), "")
        } else {
            generic(&format!("{}/send", server.uri()), "")
        };
        let ws = sms_scenario(1, &channel).build();
        let run = ws.run_async(SEND, if case.vonage { VONAGE_ENV } else { NO_ENV }).await;
        run.code(3);
        let d = &run.deliveries()[0];
        assert_outcome(d, case.outcome.0, case.outcome.1);
        let e = error_of(d);
        for needle in case.error {
            assert!(e.contains(needle), "{}: {needle:?} not in {e}", case.what);
        }
        assert_eq!(seen.count() as u64, case.outcome.1, "{}", case.what);
    }
}

fn vonage_part(to: &str, status: &str, error: Option<&str>) -> Value {
    match error {
        None => json!({"to": to, "message-id": format!("id-{to}"), "status": status,
                       "remaining-balance": "15.5", "message-price": "0.03", "network": "26202"}),
        Some(text) => json!({"to": to, "status": status, "error-text": text}),
    }
}

fn form_to(r: &Request) -> String {
    let body = String::from_utf8_lossy(&r.body).into_owned();
    body.split('&')
        .find_map(|kv| kv.strip_prefix("to="))
        .unwrap_or("")
        .to_string()
}

/// Vonage answers HTTP 200 and puts the failure in the body. Per recipient: a permanent
/// refusal (29) fails after one attempt; "throttled" (1) is retried and then sent; a delivery
/// whose first part was accepted and second refused is not retried (that would re-send part 1).
#[tokio::test(flavor = "multi_thread")]
async fn http_200_with_an_error_body_vonage_style() {
    let attempts: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let a = attempts.clone();
    let (server, seen) = Recorder::serving_path("/sms/json", move |_, r| {
        let to = form_to(r);
        let n = {
            let mut g = a.lock().unwrap();
            let e = g.entry(to.clone()).or_default();
            *e += 1;
            *e
        };
        let parts = match (to.as_str(), n) {
            ("4915123456781", _) => vec![vonage_part(&to, "29", Some("Non White-listed Destination"))],
            ("4915123456782", 1) => vec![vonage_part(&to, "1", Some("Throughput Rate Exceeded"))],
            ("4915123456782", _) => vec![vonage_part(&to, "0", None)],
            _ => vec![
                vonage_part(&to, "0", None),
                vonage_part(&to, "5", Some("Internal Error")),
            ],
        };
        ResponseTemplate::new(200).set_body_json(json!({"message-count": parts.len().to_string(), "messages": parts}))
    })
    .await;
    let ws = sms_scenario(3, &vonage(&server.uri(), "")).build();
    let run = ws.run_async(SEND, VONAGE_ENV).await;
    let report = run.json();
    run.code(3);
    let by = by_recipient(&report);
    let refused = &by[PHONES[0].1];
    assert_outcome(refused, "failed", 1);
    assert!(
        error_of(refused).contains("vonage status 29: Non White-listed Destination"),
        "{refused}"
    );
    let throttled = &by[PHONES[1].1];
    assert_outcome(throttled, "sent", 2);
    assert_eq!(throttled["provider_id"], "id-4915123456782");
    let half = &by[PHONES[2].1];
    assert_outcome(half, "failed", 1);
    let e = error_of(half);
    assert!(
        e.contains("status 5") && e.contains("part 2 of 2") && e.contains("not retried"),
        "{e}"
    );
    assert_eq!(seen.count(), 4, "1 + 2 + 1 requests");
}

/// Vonage "partner quota exceeded" (9) in a 200 answer: no other delivery can get through
/// either, so the channel stops after one request; the rest stay `pending` for `resume`, the
/// run exits 1, and a later resume against a healthy gateway finishes it exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn http_200_quota_exceeded_stops_the_channel_and_resume_finishes() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = healthy.clone();
    let (server, seen) = Recorder::serving_path("/sms/json", move |_, r| {
        let to = form_to(r);
        let part = if h.load(Ordering::SeqCst) {
            vonage_part(&to, "0", None)
        } else {
            vonage_part(&to, "9", Some("Quota Exceeded - rejected"))
        };
        ResponseTemplate::new(200).set_body_json(json!({"message-count": "1", "messages": [part]}))
    })
    .await;
    let ws = sms_scenario(3, &vonage(&server.uri(), "concurrency = 1")).build();
    let run = ws.run_async(SEND, VONAGE_ENV).await;
    let report = run.json();
    run.code(1);
    let all = deliveries(&report);
    let statuses: Vec<(&Value, &Value)> = all.iter().map(|d| (&d["status"], &d["attempts"])).collect();
    let failed: Vec<_> = deliveries(&report)
        .into_iter()
        .filter(|d| d["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{statuses:?}");
    assert!(error_of(&failed[0]).contains("Quota Exceeded"), "{}", failed[0]);
    assert_eq!(report["totals"]["pending"], 2, "{statuses:?}");
    assert_eq!(seen.count(), 1, "the channel stopped after the first answer");

    healthy.store(true, Ordering::SeqCst);
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let run = ws
        .run_async(&["resume", &run_id, "--yes", "--json", "--retry-failed"], VONAGE_ENV)
        .await;
    run.code(0);
    let after = run.json();
    assert_eq!(after["totals"]["sent"], 3);
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for r in seen.received().iter() {
        *per.entry(form_to(r)).or_default() += 1;
    }
    let refused = failed[0]["recipient"]
        .as_str()
        .unwrap()
        .trim_start_matches('+')
        .to_string();
    for (to, n) in &per {
        let expected = if *to == refused { 2 } else { 1 };
        assert_eq!(
            *n, expected,
            "the refused one once more (--retry-failed), the others once: {per:?}"
        );
    }
    assert_eq!(per.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// State folder and journal
// ---------------------------------------------------------------------------------------------

/// The example folder with the outbox channel, slowed down so a run lasts a while.
fn outbox_workspace(recipients: usize, delay_ms: u64) -> Arc<Workspace> {
    let w = Scenario::example().build();
    w.audience("people.csv", recipients);
    w.config_replace("file = \"customers.csv\"", "file = \"people.csv\"");
    w.config_replace("suppress = \"optouts.txt\"", "");
    if delay_ms > 0 {
        w.config_replace(
            "# delay = \"200ms\"",
            &format!("delay = \"{delay_ms}ms\"\nconcurrency = 2"),
        );
    }
    w
}

/// A tmpfs at `dir`, or a failed test: these cases need `mount` (root, as in CI), and a fault
/// test that quietly does not run proves nothing.
fn mount_tmpfs(dir: &Path, opts: &str) -> Mount {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
        .arg(dir)
        .output()
        .expect("this test needs mount(8) (Debian package mount) and root, as CI has");
    assert!(
        out.status.success(),
        "this test needs to mount a tmpfs (run it as root, as CI does): {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Mount(dir.to_path_buf())
}

/// Unmounts on drop (also when the test panics).
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Change the options of a mounted tmpfs in place (its files stay).
fn remount(m: &Mount, opts: &str) {
    let out = Command::new("mount")
        .args(["-o", &format!("remount,{opts}")])
        .arg(&m.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "remount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The outbox's disk fills up (a 1 MB tmpfs): the channel halts at the first "No space left
/// on device" instead of burning every delivery's attempts — one delivery `failed` with the
/// reason, every other one `pending`, exit 1, no temp file left behind. With room again, plain
/// `resume` sends the pending ones (and removes a temp file a killed process left), and
/// `--retry-failed` the one that met the full disk: each recipient exactly one file.
#[test]
fn outbox_disk_full_halts_the_channel_and_resume_finishes_exactly_once() {
    const N: usize = 400;
    let w = outbox_workspace(N, 0);
    let m = mount_tmpfs(&w.path("outbox"), "size=1m");
    let run = w.run(EXAMPLE_SEND);
    run.code(1).stderr_has("stopping this channel");
    let report = run.json();
    let ds = deliveries(&report);
    let count = |s: &str| ds.iter().filter(|d| d["status"] == s).count();
    let failed: Vec<&Value> = ds.iter().filter(|d| d["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "only the delivery that met the full disk fails");
    assert!(error_of(failed[0]).contains("No space left on device"), "{}", failed[0]);
    assert!(error_of(failed[0]).contains("make room"), "{}", failed[0]);
    run.stderr_has(&format!("`announce resume {}`", report["run_id"].as_str().unwrap()));
    assert_eq!(failed[0]["attempts"], 1, "a full disk is not retried");
    let (sent, pending) = (count("sent"), count("pending"));
    assert!(sent > 0 && pending > 0, "sent {sent}, pending {pending}");
    assert_eq!(sent + pending + 1, N, "{:?}", report["totals"]);
    let temp: Vec<_> = w
        .files("outbox")
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert!(temp.is_empty(), "temp files left: {temp:?}");
    assert_eq!(w.outbox().len(), sent);

    // Room again; and a temp file as a process killed mid-write would leave it.
    remount(&m, "size=16m");
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let stale = w.path(&format!("outbox/{run_id}/.000999-x@example.de.eml.77777.tmp"));
    std::fs::write(&stale, "half a message").unwrap();
    let run = w.run(&["resume", &run_id, "--yes", "--json"]);
    run.code(3);
    assert!(!stale.exists(), "resume removes stale temp files");
    let totals = &run.json()["totals"];
    assert_eq!(
        (totals["sent"].as_u64(), totals["failed"].as_u64()),
        (Some(N as u64 - 1), Some(1))
    );
    let run = w.run(&["resume", &run_id, "--yes", "--json", "--retry-failed"]);
    run.code(0);
    assert_eq!(run.json()["totals"]["sent"], N as u64);
    let mut files: Vec<String> = w
        .outbox()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files.dedup();
    assert_eq!(files.len(), N, "one file per recipient");
    assert_eq!(w.files("outbox").len(), N, "and nothing else");
}

/// A state folder that cannot be created (a file is in the way: ENOTDIR, which stops root
/// too; chmod would not), and one on a read-only file
/// system (EROFS): a clear error naming the folder, exit 2 (no run to resume), nothing sent.
#[test]
fn unwritable_state_folder_is_a_clear_error_and_nothing_is_sent() {
    let w = outbox_workspace(5, 0);
    w.write("blocker", "a file, not a folder\n");
    w.config_replace("state_dir = \".announce\"", "state_dir = \"blocker/state\"");
    let run = w.run(EXAMPLE_SEND);
    run.code(2).stderr_has("blocker/state").stderr_has("Not a directory");
    assert!(w.outbox().is_empty(), "nothing may be sent without a journal");

    let w = outbox_workspace(5, 0);
    let _m = mount_tmpfs(&w.path("ro-state"), "ro,size=64k");
    w.config_replace("state_dir = \".announce\"", "state_dir = \"ro-state\"");
    let run = w.run(EXAMPLE_SEND);
    run.code(2).stderr_has("ro-state").stderr_has("Read-only file system");
    assert!(w.outbox().is_empty());
}

/// Garbage where the journal should be: every command says which file is broken and why;
/// `send` sends nothing and does not overwrite the file (it may be someone's only record).
#[test]
fn corrupted_journal_is_a_clear_error_and_nothing_is_sent() {
    let w = outbox_workspace(5, 0);
    std::fs::create_dir_all(w.path(".announce")).unwrap();
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(w.path(".announce/journal.sqlite3"), &garbage).unwrap();
    for args in [EXAMPLE_SEND, &["resume", "0190-0000", "--yes"], &["report"], &["runs"]] {
        let run = w.run(args);
        run.code(2)
            .stderr_has(".announce/journal.sqlite3")
            .stderr_has("file is not a database");
    }
    assert!(w.outbox().is_empty());
    assert_eq!(std::fs::read(w.path(".announce/journal.sqlite3")).unwrap(), garbage);

    // A real journal damaged afterwards (a page overwritten): reading it fails clearly.
    let w = outbox_workspace(40, 0);
    w.run(EXAMPLE_SEND).code(0);
    let files = w.outbox().len();
    let path = w.path(".announce/journal.sqlite3");
    // Fold the WAL into the file first, so the damage is not masked by the WAL copy.
    let j = rusqlite_free_checkpoint(&w);
    drop(j);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 3 * 4096, "journal of {} bytes", bytes.len());
    for b in &mut bytes[4096..3 * 4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let run = w.run(&["report", "--format", "json"]);
    run.code(2).stderr_has("journal.sqlite3").stderr_has("malformed");
    let run = w.run(&["send", "notices/example.md", "--yes", "--again"]);
    assert_eq!(run.output.status.code(), Some(2), "{}", run.describe());
    assert_eq!(w.outbox().len(), files, "nothing more was sent");
}

/// Open and close the journal through the library, which checkpoints the WAL on close.
fn rusqlite_free_checkpoint(w: &Workspace) -> announce::journal::Journal {
    let j = w.journal();
    let _ = j.runs();
    j
}

/// While one `send` runs, a second one against the same state folder (same announcement or
/// another) and a `resume` of the running run fail at once with a clear message, and send
/// nothing: the first run's recipients get exactly one message each.
#[test]
fn a_second_process_cannot_use_a_busy_state_folder() {
    let w = outbox_workspace(20, 100);
    w.write(
        "notices/other.md",
        "+++\ntitle = \"Another notice\"\nchannels = [\"outbox\"]\n+++\nSomething else.\n",
    );
    let mut first = w
        .command()
        .args(["send", "notices/example.md", "--yes"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    w.await_outbox(2);
    // Stopped, the first run holds the state folder however slow the others start: the test
    // depends on no timing.
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &first.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig}");
    };
    signal("-STOP");
    let run_id = w.journal().latest_run_id().unwrap().unwrap();
    for args in [
        &["send", "notices/example.md", "--yes", "--again"][..],
        &["send", "notices/other.md", "--yes"],
        &["resume", &run_id, "--yes"],
    ] {
        let run = w.run(args);
        run.code(2).stderr_has("in use by another announce process");
    }
    signal("-CONT");
    assert!(first.wait().unwrap().success());
    let files = w.outbox();
    assert_eq!(files.len(), 20, "only the first run sent: {files:?}");
    assert_eq!(w.journal().runs().unwrap().len(), 1, "no second run was journaled");
}

/// Two people send the same announcement at once: one on a terminal still reading the plan,
/// the other from a script. Either the script is told the state folder is busy, or it sends
/// and then the person's "y" is refused (same content, see `announce report RUN`): never both.
/// (With the duplicate check before the state lock, the second run sent everything again.)
#[test]
fn concurrent_sends_of_the_same_announcement_do_not_both_send() {
    let w = outbox_workspace(6, 0);
    // The person: `send` on a pseudo-terminal, stopped at the confirmation prompt.
    let mut person = w.terminal("send notices/example.md");
    let mut screen = BufReader::new(person.stdout.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.contains("[y/N]") {
        assert!(Instant::now() < deadline, "no prompt: {seen}");
        let mut chunk = Vec::new();
        let _ = screen.read_until(b']', &mut chunk);
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    // The script: sends and finishes meanwhile, or is told the state folder is busy.
    let script = w.run(&["send", "notices/example.md", "--yes"]);
    match script.output.status.code() {
        Some(0) => assert_eq!(w.outbox().len(), 6),
        Some(2) => {
            script.stderr_has("in use by another announce process");
            assert!(w.outbox().is_empty());
        }
        _ => panic!("{}", script.describe()),
    }
    // The person says yes.
    let mut stdin = person.stdin.take().unwrap();
    stdin.write_all(b"y\n").unwrap();
    drop(stdin);
    let mut rest = String::new();
    let _ = screen.read_to_string(&mut rest);
    let _ = person.wait();
    assert_eq!(
        w.outbox().len(),
        6,
        "the announcement went out twice; the second run said:\n{seen}{rest}"
    );
    assert_eq!(w.journal().runs().unwrap().len(), 1);
}

fn journal_at(w: &Workspace, state: &str) -> announce::journal::Journal {
    announce::journal::Journal::open_existing(&w.path(state))
        .unwrap()
        .expect("a journal")
}

/// Every outbox file is journaled as sent (or was in flight: unknown); nothing pending has a file.
fn assert_nothing_sent_unjournaled(w: &Workspace, state: &str) {
    let j = journal_at(w, state);
    let run_id = j.latest_run_id().unwrap().unwrap();
    let rows = j.deliveries(&run_id).unwrap();
    let files: Vec<String> = w
        .outbox()
        .iter()
        .map(|p| {
            p.file_stem()
                .unwrap()
                .to_string_lossy()
                .split_once('-')
                .unwrap()
                .1
                .to_string()
        })
        .collect();
    for f in &files {
        let row = rows
            .iter()
            .find(|r| &r.recipient == f)
            .expect("a file for a planned recipient");
        assert!(
            matches!(row.status.as_str(), "sent" | "sending" | "unknown"),
            "{f} has a file but is journaled as {}",
            row.status.as_str()
        );
    }
}

/// The disk fills up. (a) Before the plan fits into the journal: a clear error and nothing is
/// sent. (b) While sending: the run stops with a clear error, no message went out without
/// being journaled first, and once there is space again `resume` finishes it exactly once.
/// Uses a small tmpfs.
#[test]
fn full_disk_is_a_clear_error_and_nothing_is_sent_unjournaled() {
    // (a) The plan does not fit.
    let w = outbox_workspace(3000, 0);
    {
        let _m = mount_tmpfs(&w.path("small"), "size=128k");
        w.config_replace("state_dir = \".announce\"", "state_dir = \"small/state\"");
        let run = w.run(EXAMPLE_SEND);
        run.code(2).stderr_has("small/state").stderr_has("disk is full");
        assert!(w.outbox().is_empty());
    }

    // (b) The disk fills while sending.
    let w = outbox_workspace(200, 20);
    let _m = mount_tmpfs(&w.path("state"), "size=16m");
    w.config_replace("state_dir = \".announce\"", "state_dir = \"state\"");
    let mut child = w
        .command()
        .args(["send", "notices/example.md", "--yes"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.outbox().len() < 5 {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            panic!("the run never got going: {err}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // Fill every free byte.
    let mut filler = std::fs::File::create(w.path("state/filler")).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    let _ = filler.write_all(&[0u8; 512]);
    while filler.write_all(&[0u8; 1]).is_ok() {}
    drop(filler);
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    println!("disk full while sending: {}", err.trim());
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("disk is full") || err.contains("No space left"), "{err}");
    let sent_before = w.outbox().len();
    assert!(
        sent_before < 200,
        "the run stopped when the journal could not be written: {err}"
    );
    assert_nothing_sent_unjournaled(&w, "state");

    // Space again: resume finishes, one file per recipient.
    std::fs::remove_file(w.path("state/filler")).unwrap();
    let run_id = journal_at(&w, "state").latest_run_id().unwrap().unwrap();
    let run = w.run(&["resume", &run_id, "--yes", "--json"]);
    run.code(0);
    assert_eq!(run.json()["totals"]["sent"], 200);
    assert_eq!(w.outbox().len(), 200);
}
