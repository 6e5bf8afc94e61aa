//! The core, end to end through the binary on the outbox channel.

use crate::support;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use support::scenario::EXAMPLE_SEND as SEND;
use support::{Scenario, Workspace, outbox_recipient, repo};

#[test]
fn readme_first_command_broadcasts_the_example() {
    // The README's first command, verbatim apart from `cargo run --release --`.
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let cmd_line = readme
        .lines()
        .find(|l| l.contains("cargo run --release --"))
        .expect("README has the command");
    let args: Vec<&str> = cmd_line
        .split("cargo run --release --")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        args,
        [
            "--config",
            "examples/channels.toml",
            "send",
            "examples/notices/example.md",
            "--yes"
        ]
    );

    let w = Scenario::example().build();
    std::fs::create_dir(w.path("examples")).unwrap();
    for f in ["channels.toml", "customers.csv", "optouts.txt", "notices/example.md"] {
        w.write(&format!("examples/{f}"), &w.read(f));
    }
    let run = w.run(&[args.as_slice(), &["--json"]].concat());
    // Exit 3: the example audience has invalid rows, which are skipped and explained.
    run.code(3);
    let report = run.json();
    let files = w.files("examples/outbox");
    let sent = report["totals"]["sent"].as_u64().unwrap() as usize;
    assert!(sent >= 20, "{}", run.describe());
    assert_eq!(files.len(), sent, "one outbox file per sent delivery");
    let deliveries = report["deliveries"].as_array().unwrap();
    let skipped: Vec<_> = deliveries.iter().filter(|d| d["status"] == "skipped").collect();
    let reasons: Vec<&str> = skipped.iter().map(|d| d["error"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|r| r.contains("opted out")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("suppression list")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("invalid email address")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.starts_with("row 30:")),
        "the unreadable CSV row is named: {reasons:?}"
    );
    // Every sent delivery's file is there, named after its recipient.
    let mut by_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        *by_recipient.entry(outbox_recipient(f)).or_default() += 1;
    }
    for d in deliveries.iter().filter(|d| d["status"] == "sent") {
        assert_eq!(by_recipient.get(d["recipient"].as_str().unwrap()), Some(&1), "{d}");
    }
    // The duplicate (same address in another case) got one message.
    assert_eq!(
        files
            .iter()
            .filter(|f| outbox_recipient(f).eq_ignore_ascii_case("wilma.meier@example.de"))
            .count(),
        1
    );
}

#[test]
fn phone_only_recipients_get_the_sms_shape() {
    let w = Scenario::example().build();
    w.run(SEND).code(3);
    let json: Vec<_> = w
        .outbox()
        .into_iter()
        .filter(|p| p.extension().unwrap() == "json")
        .collect();
    assert!(!json.is_empty());
    let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json[0]).unwrap()).unwrap();
    assert!(doc["to"].as_str().unwrap().starts_with("+49"), "{doc}");
    assert_eq!(doc["encoding"], "GSM-7");
    assert!(doc["text"].as_str().unwrap().contains("Alle Termine finden statt"));
}

#[test]
fn invalid_input_exits_2_and_sends_nothing() {
    // Malformed config.
    let w = Scenario::example().build();
    w.config_replace("dir = \"outbox\"", "dir = \"outbox\"\ndri = 3");
    w.run(SEND).code(2).stderr_has("channels.toml:").stderr_has("dri");
    assert!(w.outbox().is_empty());
    assert!(!w.path(".announce/journal.sqlite3").exists(), "no run may be journaled");

    // A template that uses a variable the context does not have.
    let w = Scenario::example().build();
    w.config_replace("# templates_dir = \"templates\"", "templates_dir = \"templates\"");
    w.write("templates/email.txt.hbs", "Hallo\n\n{{recipient.nickname}}\n");
    let run = w.run(SEND);
    run.code(2).stderr_has("email.txt.hbs:3:");
    assert!(w.outbox().is_empty());
    assert!(!w.path(".announce/journal.sqlite3").exists());

    // A front matter error.
    let w = Scenario::example().build();
    w.write(
        "notices/bad.md",
        "+++\ntitle = \"x\"\nseverity = \"apocalyptic\"\n+++\nbody\n",
    );
    w.run(&["send", "notices/bad.md", "--yes"])
        .code(2)
        .stderr_has("notices/bad.md:3:");
    assert!(w.outbox().is_empty());
    assert!(!w.path(".announce/journal.sqlite3").exists());
}

#[test]
fn without_a_terminal_send_needs_yes() {
    let w = Scenario::example().build();
    w.run(&["send", "notices/example.md"]).code(2).stderr_has("--yes");
    assert!(w.outbox().is_empty());
}

#[test]
fn sigkill_halfway_then_resume_completes_exactly_once() {
    let w = Scenario::example().build();
    // Two messages every 2 s: once 4 files are written the run has at least 9 rounds to go, so
    // the kill lands halfway however slow the machine is (no race on how fast the run goes).
    w.config_replace("# delay = \"200ms\"", "delay = \"2s\"\nconcurrency = 2");
    let mut child = w
        .command()
        .args(["send", "notices/example.md", "--yes"])
        .spawn()
        .unwrap();
    w.await_outbox(4);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The resume need not be slow; the journal, not the config, says what is left to send.
    w.config_replace("delay = \"2s\"\n", "");
    let before = w.outbox().len();
    let j = w.journal();
    let run_id = j.latest_run_id().unwrap().unwrap();
    let pending = j
        .deliveries(&run_id)
        .unwrap()
        .iter()
        .filter(|d| d.status.as_str() == "pending")
        .count();
    assert!(
        pending > 0 && before < 23,
        "killed too late to prove anything: {before} files"
    );

    let run = w.run(&["resume", &run_id, "--yes", "--json"]);
    run.code(3); // the example's bad rows stay skipped
    let report = run.json();
    assert_eq!(report["totals"]["pending"], 0);
    assert_eq!(
        report["totals"]["unknown"], 0,
        "the outbox re-sends in-flight deliveries safely"
    );
    let files = w.outbox();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        *per.entry(outbox_recipient(f)).or_default() += 1;
    }
    let sent: Vec<&str> = report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "sent")
        .map(|d| d["recipient"].as_str().unwrap())
        .collect();
    assert_eq!(sent.len(), 23);
    for r in sent {
        assert_eq!(per.get(r), Some(&1), "{r} must have exactly one file: {per:?}");
    }
    assert_eq!(files.len(), 23);
}

#[test]
fn rate_limit_holds_in_every_one_second_window() {
    let w = Scenario::example().build();
    w.audience("people.csv", 60);
    w.config_replace("dir = \"outbox\"", "dir = \"outbox\"\nrate = \"20/s\"\nconcurrency = 8");
    w.run(&["send", "notices/example.md", "--yes", "--audience", "people.csv"])
        .code(0);
    let j = w.journal();
    let run_id = j.latest_run_id().unwrap().unwrap();
    let times = j.attempt_times(&run_id, "outbox").unwrap();
    assert_eq!(times.len(), 60);
    // Timestamps are taken after the limiter granted the attempt, so they can only be later
    // than the grant: a window over-full here would mean the limiter let too many through.
    let burst = 1;
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count();
        assert!(in_window <= 20 + burst, "{in_window} attempts in the second after {t}");
    }
    assert!(
        times.last().unwrap() - times[0] >= 2000,
        "60 messages at 20/s take at least ~2.9 s"
    );
}

#[test]
fn the_same_announcement_twice_is_refused_unless_again() {
    let w = Scenario::example().build();
    let first = w.run(SEND);
    first.code(3);
    let run_id = first.json()["run_id"].as_str().unwrap().to_string();
    let files = w.outbox().len();
    w.run(SEND).code(2).stderr_has(&run_id);
    assert_eq!(w.outbox().len(), files, "the refused run sent nothing");
    let again = w.run(&[SEND, &["--again"]].concat());
    again.code(3);
    assert_ne!(again.json()["run_id"], run_id);
    assert_eq!(w.outbox().len(), files * 2);
}

#[test]
fn dry_run_sends_nothing_and_does_not_count_as_sent() {
    let w = Scenario::example().build();
    let run = w.run(&["send", "notices/example.md", "--dry-run", "--json"]);
    run.code(0);
    let r = run.json();
    assert_eq!(r["dry_run"], true);
    assert_eq!(r["totals"]["pending"], 23);
    assert!(w.outbox().is_empty());
    w.run(SEND).code(3);
    assert_eq!(w.outbox().len(), 23);
}

#[test]
fn send_reads_stdin() {
    let w = Scenario::example().build();
    let mut c = w.command();
    c.args(["send", "-", "--yes", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"+++\ntitle = \"Kurz\"\n+++\nText von stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["announcement"]["title"], "Kurz");
    assert_eq!(r["totals"]["sent"], 23);
}

#[test]
fn reports_in_every_format() {
    let w = Scenario::example().build();
    let sent = w.run(SEND);
    let id = sent.json()["run_id"].as_str().unwrap().to_string();
    let r = w.run(&["report", &id, "--format", "json"]);
    r.code(0);
    let doc = r.json();
    assert_eq!(doc, sent.json(), "send --json prints the report document");
    // The contract's shape (interface.md's example, its values standing for their JSON type).
    let counts =
        json!({"planned": 0, "sent": 0, "delivered": 0, "failed": 0, "skipped": 0, "pending": 0, "unknown": 0});
    let mut channel = json!({"name": "email", "type": "email"});
    channel
        .as_object_mut()
        .unwrap()
        .extend(counts.as_object().unwrap().clone());
    let contract = json!({
        "run_id": "01J...",
        "dry_run": false,
        "announcement": { "title": "...", "thread": null, "digest": "sha256:..." },
        "started_at": "2026-04-03T09:12:00Z",
        "finished_at": "2026-04-03T09:12:41Z",
        "totals": counts,
        "channels": [channel],
        "deliveries": [ { "channel": "email", "recipient": "anna@example.de", "status": "sent",
                          "attempts": 1, "provider_id": null, "route": null, "error": null, "updated_at": "..." } ]
    });
    assert_shape(&doc, &contract, "report");
    assert!(doc["announcement"]["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(doc["channels"][0]["name"], "outbox");
    assert_eq!(doc["channels"][0]["type"], "outbox");
    let statuses = [
        "pending",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "skipped",
        "unknown",
    ];
    for d in doc["deliveries"].as_array().unwrap() {
        assert!(statuses.contains(&d["status"].as_str().unwrap()));
    }
    let t = &doc["totals"];
    let sum: u64 = ["sent", "delivered", "failed", "skipped", "pending", "unknown"]
        .iter()
        .map(|k| t[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, t["planned"].as_u64().unwrap());

    let csv = w.run(&["report", &id, "--format", "csv"]);
    csv.code(0);
    let text = csv.stdout();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        rdr.headers().unwrap().iter().collect::<Vec<_>>()[..4],
        ["run_id", "channel", "recipient", "status"]
    );
    assert_eq!(rdr.records().count(), doc["deliveries"].as_array().unwrap().len());

    w.run(&["report", "latest", "--format", "html", "--output", "report.html"])
        .code(0);
    let html = w.read("report.html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<table") && html.contains("Website und E-Mail"));
    assert!(!html.contains("<script") && !html.contains("<link"), "self-contained");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(w.path("report.html")).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let table = w.run(&["report"]);
    table.code(0);
    assert!(table.stdout().contains(&id) && table.stdout().contains("anna.mueller@example.de"));
    let runs = w.run(&["runs"]);
    runs.code(0);
    assert!(runs.stdout().contains(&id) && runs.stdout().contains("finished"));
}

/// `actual` has every key of `expected`, with a value of the same JSON type (`null`: any value;
/// a number: a count), and every element of an array has the shape of `expected`'s first.
fn assert_shape(actual: &Value, expected: &Value, at: &str) {
    match expected {
        Value::Object(keys) => {
            for (k, e) in keys {
                let a = actual.get(k).unwrap_or_else(|| panic!("{at}: no {k:?} in {actual}"));
                assert_shape(a, e, &format!("{at}.{k}"));
            }
        }
        Value::Array(first) => {
            let items = actual
                .as_array()
                .unwrap_or_else(|| panic!("{at} is not an array: {actual}"));
            assert!(!items.is_empty(), "{at} is empty");
            for a in items {
                assert_shape(a, &first[0], &format!("{at}[]"));
            }
        }
        Value::Null => {}
        Value::Number(_) => assert!(actual.is_u64(), "{at} is not a count: {actual}"),
        Value::String(_) => assert!(actual.is_string(), "{at} is not a string: {actual}"),
        Value::Bool(_) => assert!(actual.is_boolean(), "{at} is not a boolean: {actual}"),
    }
}

#[test]
fn secrets_never_appear_anywhere() {
    let secrets = [
        ("PRIMARY_SMTP_PASSWORD", "s3cret-primary-7f3a"),
        ("BACKUP_SMTP_PASSWORD", "s3cret-backup-91cc"),
        ("TWILIO_AUTH_TOKEN", "s3cret-twilio-55aa"),
        ("FB_PAGE_TOKEN", "s3cret-fb-0e0e"),
        ("FB_APP_SECRET", "s3cret-fbapp-1234"),
        ("IG_ACCESS_TOKEN", "s3cret-ig-abcd"),
        ("WEBHOOK_SECRET", "whsec_c3VwZXJzZWNyZXRrZXk="),
        ("TELEGRAM_BOT_TOKEN", "s3cret-tg-9999"),
        ("MASTODON_TOKEN", "s3cret-masto-4242"),
    ];
    let w = Scenario::example().build();
    let mut outputs = String::new();
    for args in [
        vec!["-vv", "preview", "notices/example.md"],
        vec!["-vv", "send", "notices/example.md", "--yes", "--json"],
        vec!["-vv", "report", "--format", "json"],
        vec!["-vv", "report", "--format", "csv"],
        vec!["-vv", "report", "--format", "html", "--output", "r.html"],
        vec!["-vv", "report", "--format", "table"],
        vec!["-vv", "runs"],
        vec!["-vv", "check"],
    ] {
        let r = w.run_env(&args, &secrets);
        outputs.push_str(&r.stdout());
        outputs.push_str(&r.stderr());
    }
    let mut haystack = outputs.into_bytes();
    for f in w.files("") {
        haystack.extend(std::fs::read(f).unwrap());
    }
    let hay = String::from_utf8_lossy(&haystack);
    for (var, value) in secrets {
        assert!(!hay.contains(value), "the value of {var} leaked");
    }
    assert!(hay.contains("anna.mueller@example.de"), "the haystack is real");
}

#[test]
fn journal_and_outbox_are_private_even_with_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    let w = Scenario::example().build();
    let mut c = w.command();
    // umask 000 through a shell, so the process inherits it.
    let status = std::process::Command::new("sh")
        .current_dir(w.root())
        .arg("-c")
        .arg(format!(
            "umask 000 && exec '{}' send notices/example.md --yes",
            env!("CARGO_BIN_EXE_announce")
        ))
        .env_remove("ANNOUNCE_CONFIG")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    let _ = &mut c;
    assert_eq!(status.code(), Some(3));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&w.path(".announce")), 0o700);
    assert_eq!(mode(&w.path(".announce/journal.sqlite3")), 0o600);
    assert_eq!(mode(&w.path("outbox")), 0o700);
    for f in w.outbox() {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
        assert_eq!(mode(f.parent().unwrap()), 0o700);
    }
}

#[test]
fn init_creates_a_folder_that_sends_at_once() {
    let w = Scenario::new().build();
    w.run(&["init", "studio"]).code(0);
    w.run_in("studio", &["send", "notices/example.md", "--yes"]).code(3);
    assert_eq!(w.files("studio/outbox").len(), 23);
    // init refuses to overwrite.
    w.run(&["init", "studio"]).code(2).stderr_has("overwrite");
}

/// The templates `init` writes are the ones in use, and `templates/` beside channels.toml is
/// used without being named; a named folder that does not exist is an error.
#[test]
fn edited_init_templates_change_the_messages() {
    // Every message in `dir` has a subject starting with `prefix` (and there is one).
    let subjects_start = |w: &Workspace, dir: &str, prefix: &str| {
        let subjects: Vec<String> = w
            .files(dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| {
                let eml = std::fs::read_to_string(p).unwrap();
                eml.lines().find(|l| l.starts_with("Subject: ")).unwrap().to_string()
            })
            .collect();
        assert!(
            !subjects.is_empty() && subjects.iter().all(|s| s.starts_with(prefix)),
            "{subjects:?}"
        );
    };
    let w = Scenario::new().build();
    w.run(&["init", "studio"]).code(0);
    assert!(
        w.read("studio/channels.toml")
            .contains("\ntemplates_dir = \"templates\"")
    );
    w.write("studio/templates/email.subject.hbs", "EDITED {{title}}");
    w.run_in("studio", &["send", "notices/example.md", "--yes"]).code(3);
    subjects_start(&w, "studio/outbox", "Subject: EDITED ");

    // Without the key: templates/ beside the config is still used.
    let w = Scenario::example().build();
    w.write("templates/email.subject.hbs", "DEFAULT DIR {{title}}");
    w.run(SEND).code(3);
    subjects_start(&w, "outbox", "Subject: DEFAULT DIR ");

    // A named folder that is not there.
    let w = Scenario::example().build();
    w.config_replace("# templates_dir = \"templates\"", "templates_dir = \"tmpl\"");
    w.run(SEND).code(2).stderr_has("channels.toml:12:1").stderr_has("tmpl");
    assert!(w.outbox().is_empty());
}

#[test]
fn preview_shows_lengths_against_limits() {
    let w = Scenario::example().build();
    let r = w.run(&["preview", "notices/example.md", "--recipient", "0171 2345678"]);
    r.code(0);
    let out = r.stdout();
    assert!(
        out.contains("-> greta.becker@example.de") || out.contains("-> +491712345678"),
        "{out}"
    );
    let r = w.run(&["preview", "notices/example.md"]);
    assert!(
        r.stdout().contains("Subject: Website und E-Mail vorübergehend gestört"),
        "{}",
        r.describe()
    );
    assert!(r.stdout().contains("subject characters: 40 / 78"), "{}", r.describe());
    assert!(
        w.outbox().is_empty() && !w.path(".announce/journal.sqlite3").exists(),
        "preview neither sends nor journals"
    );
}

#[test]
fn ctrl_c_finishes_in_flight_messages_and_leaves_the_run_resumable() {
    let w = Scenario::example().build();
    w.config_replace("# delay = \"200ms\"", "delay = \"80ms\"\nconcurrency = 2");
    let child = w
        .command()
        .args(["send", "notices/example.md", "--yes"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    w.await_outbox(4);
    support::ctrl_c(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "interrupted runs exit 1 (resumable)\n{stderr}"
    );
    assert!(stderr.contains("announce resume"), "{stderr}");

    let j = w.journal();
    let run_id = j.latest_run_id().unwrap().unwrap();
    let rows = j.deliveries(&run_id).unwrap();
    let count = |s: &str| rows.iter().filter(|d| d.status.as_str() == s).count();
    assert_eq!(
        count("sending") + count("unknown"),
        0,
        "in-flight deliveries were finished, not abandoned"
    );
    assert!(count("pending") > 0, "stopped taking new deliveries");
    assert_eq!(count("sent"), w.outbox().len(), "every sent delivery has its file");

    w.run(&["resume", &run_id, "--yes"]).code(3);
    assert_eq!(w.outbox().len(), 23);
}

/// A Ctrl-C ends the waits that are no attempt: a retry's backoff and a rate limit's next cell.
/// Each would otherwise hold the stop for up to ten minutes or an hour; the guard below only
/// keeps such a run from hanging the suite.
#[test]
fn ctrl_c_ends_a_retry_backoff_and_a_rate_limit_wait() {
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience(
            "name,email,phone\nAnna,anna@example.de,0151 23456789\nBen,ben@example.de,0160 1234567\n\
             Cem,cem@example.de,0171 2345678\n",
        )
        .channel("[channels.out]\ntype = \"outbox\"\nrate = \"1/h\"\n")
        .channel(&format!(
            "[channels.sms]\ntype = \"sms\"\nprovider = \"generic\"\nurl = \"http://127.0.0.1:{}/send\"\n\
             from = \"Studio\"\nid_pointer = \"/id\"\nmax_attempts = 3\nretry_base = \"10m\"\nretry_max = \"10m\"\n",
            support::smtp::closed_port()
        ))
        .notice("summary = \"Website offline.\"", "Alle Termine finden statt.")
        .build();
    let mut child = w
        .command()
        .args(["send", "notices/n.md", "--yes"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Going: one message out (the next cell is an hour away), and texts refused once and
    // waiting ten minutes for their second attempt (those still under way hold the lane's
    // window: the others wait for it).
    let waiting = |w: &Workspace| {
        let Some(j) = announce::journal::Journal::open_existing(&w.path(".announce")).unwrap() else {
            return false;
        };
        let Some(run) = j.latest_run_id().unwrap() else {
            return false;
        };
        let rows = j.deliveries(&run).unwrap();
        let refused = rows
            .iter()
            .filter(|d| d.channel == "sms" && d.attempts == 1 && d.error.is_some());
        w.outbox().len() == 1 && refused.count() >= 1
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !waiting(&w) {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run never got going");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    support::ctrl_c(&child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("still waiting a minute after Ctrl-C: a backoff or a rate limit held the stop");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(1), "interrupted runs exit 1 (resumable)\n{stderr}");
    let rows = w.latest_rows();
    let of = |channel: &str| rows.iter().filter(|d| d.channel == channel).collect::<Vec<_>>();
    assert_eq!(w.outbox().len(), 1, "no message after the stop");
    let sms = of("sms");
    assert!(
        sms.iter().all(|d| d.status.as_str() == "pending" && d.attempts <= 1),
        "{sms:?}"
    );
    assert!(sms.iter().any(|d| d.attempts == 1), "{sms:?}");
    let out = of("out");
    assert_eq!(out.iter().filter(|d| d.status.as_str() == "sent").count(), 1);
    assert_eq!(out.iter().filter(|d| d.status.as_str() == "pending").count(), 2);
}

#[test]
fn config_from_environment_and_state_dir_override() {
    let w = Scenario::example().build();
    std::fs::rename(w.path("channels.toml"), w.path("studio.toml")).unwrap();
    w.run(&["send", "notices/example.md", "--yes"])
        .code(2)
        .stderr_has("announce init");
    let r = w.run_env(
        &["--state-dir", "elsewhere", "send", "notices/example.md", "--yes"],
        &[("ANNOUNCE_CONFIG", "studio.toml")],
    );
    r.code(3);
    assert!(w.path("elsewhere/journal.sqlite3").exists());
    assert!(!w.path(".announce").exists());
}

#[test]
fn on_a_terminal_send_shows_the_plan_and_asks() {
    let w = Scenario::example().build();
    let screen = w.on_terminal("send notices/example.md", "n\n");
    assert!(screen.contains("outbox (outbox): 23 to send, 4 skipped"), "{screen}");
    assert!(screen.contains("Send 23 messages now? [y/N]"), "{screen}");
    assert!(w.outbox().is_empty(), "answering no sends nothing");
    let screen = w.on_terminal("send notices/example.md", "y\n");
    assert!(screen.contains("Details: announce report"), "{screen}");
    assert_eq!(w.outbox().len(), 23);
}

/// `announce send ... 2>&1 | head -1`: the reader goes away after the first line. The run
/// still finishes (every delivery journaled, every file written) and exits with the status it
/// would have had, not 101 from a panic on the closed pipe.
#[test]
fn a_closed_output_pipe_does_not_stop_the_run() {
    use std::io::BufRead;
    let w = Scenario::example().build();
    // Slow enough that the summary and the JSON report are written after the reader left.
    w.config_replace("type = \"outbox\"", "type = \"outbox\"\ndelay = \"20ms\"");
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = {
        let mut c = w.command();
        c.args(SEND).stdout(writer.try_clone().unwrap()).stderr(writer);
        c.spawn().unwrap()
    };
    let mut first = String::new();
    std::io::BufReader::new(reader).read_line(&mut first).unwrap();
    assert!(!first.is_empty(), "nothing was printed");
    // The BufReader (and with it the pipe's only read end) is gone here.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "first line: {first}");
    let journal = w.journal();
    let run_id = journal.latest_run_id().unwrap().unwrap();
    let rows = journal.deliveries(&run_id).unwrap();
    let sent = rows
        .iter()
        .filter(|d| d.status == announce::journal::Status::Sent)
        .count();
    assert!(rows.iter().all(|d| d.status != announce::journal::Status::Pending));
    assert_eq!(w.outbox().len(), sent, "one file per sent delivery");
    assert!(sent >= 20);
}

/// Settings that cannot work are refused before anything is sent, at the key's line and column.
#[test]
fn config_values_that_cannot_work_are_refused_at_their_line() {
    let cases: &[(&str, &str)] = &[
        ("timeout = \"0s\"", "at least 1s"),
        ("timeout = \"500ms\"", "at least 1s"),
        ("retry_base = \"99999999999999h\"", "at most 1 day"),
        ("retry_max = \"2d\"", "invalid duration"),
        ("retry_base = \"10min\"", "larger than retry_max"),
        ("retry_base = \"2s\"\nretry_max = \"1s\"", "larger than retry_max"),
        ("concurrency = 100000", "use 1 to 256"),
        ("concurrency = 0", "use 1 to 256"),
    ];
    for (setting, why) in cases {
        let w = Scenario::example().build();
        w.config_append(&format!("\n[channels.extra]\ntype = \"outbox\"\n{setting}\n"));
        let config = w.read("channels.toml");
        let line_of = |needle: &str| config[..config.rfind(needle).unwrap()].matches('\n').count() + 1;
        let (table, key) = (line_of("[channels.extra]"), line_of(setting.split(' ').next().unwrap()));
        let run = w.run(SEND);
        run.code(2).stderr_has(why);
        let err = run.stderr();
        let at = err
            .split("channels.toml:")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|l| l.parse::<usize>().ok());
        // Serde reports errors in flattened keys at their table, our own checks at the key.
        assert!(
            at == Some(key) || at == Some(table),
            "{setting}: expected channels.toml:{key}:COL (or the table's line {table})\n{err}"
        );
        assert!(w.outbox().is_empty() && !w.path(".announce/journal.sqlite3").exists());
    }
    // [org] timezone: at the key.
    let w = Scenario::example().build();
    let c = w.read("channels.toml");
    let (before, _) = c.split_once("\ntimezone").expect("the example has a timezone");
    let line = before.matches('\n').count() + 2;
    w.config_line("timezone", "timezone = \"Mars/Olympus_Mons\"");
    w.run(SEND)
        .code(2)
        .stderr_has(&format!("channels.toml:{line}:"))
        .stderr_has("Mars/Olympus_Mons");
}
