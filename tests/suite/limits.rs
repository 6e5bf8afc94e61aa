//! Bad and big input: a huge audience (peak memory measured), a huge body, a 1 MB CSV field,
//! invalid UTF-8 in each kind of file, byte order marks, CRLF, and semicolon-delimited CSV as
//! German spreadsheets write it. Each ends in a clear error naming the place, or in correct
//! handling.
//!
//! CI runs small sizes; the full ones are
//!
//! ```text
//! LIMITS_AUDIENCE_MB=200 cargo test --release --test main suite::limits:: -- --nocapture
//! ```

use crate::support;
use crate::support::smtp;

use std::io::Write;

use base64::Engine;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::scenario::SEND;
use support::{Scenario, Workspace};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

/// An outbox-only folder with `csv` as the audience and notices/n.md.
fn outbox_only(csv: &[u8]) -> Scenario {
    Scenario::new()
        .top("default_region = \"DE\"")
        .org("name = \"Studio\"")
        .audience_bytes(csv)
        .channel("[channels.outbox]\ntype = \"outbox\"\ndir = \"outbox\"\n")
        .notice(
            "summary = \"Website offline, Termine finden statt.\"",
            "Alle Termine finden statt.",
        )
}

/// Peak resident memory (VmHWM) of a child, polled from /proc while it runs.
fn run_measured(w: &Workspace, args: &[&str]) -> (std::process::ExitStatus, u64, Duration, String) {
    let started = Instant::now();
    let mut child = w
        .command()
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, peak_kb, started.elapsed(), w.read("stderr.log"))
}

/// A big audience (CI: 4 MB; `LIMITS_AUDIENCE_MB=200` for the real thing): the dry run plans
/// and journals every row. Memory is measured and printed; the bound asserted is generous
/// (planning is being made streaming), it catches only a blow-up.
#[test]
fn a_huge_audience_is_planned_with_bounded_memory() {
    let mb = env_num("LIMITS_AUDIENCE_MB", 4);
    let w = outbox_only(b"").build();
    let started = Instant::now();
    let mut f = std::io::BufWriter::new(std::fs::File::create(w.path("customers.csv")).unwrap());
    writeln!(f, "name,email,phone,tags,appointment").unwrap();
    let (mut rows, mut bytes) = (0u64, 0u64);
    while bytes < mb * 1024 * 1024 {
        let line = format!(
            "Kundin {rows} Müller,kunde{rows}@example.de,0151 {:08},appointments;portrait,2026-04-04 10:00\n",
            20_000_000 + rows % 70_000_000
        );
        f.write_all(line.as_bytes()).unwrap();
        bytes += line.len() as u64;
        rows += 1;
    }
    f.flush().unwrap();
    drop(f);
    let generated = started.elapsed();
    let (status, peak_kb, took, stderr) = run_measured(&w, &["send", "notices/n.md", "--yes", "--dry-run"]);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains(&format!("{rows} rows")), "{stderr}");
    let j = w.journal();
    let run = j.latest_run_id().unwrap().unwrap();
    assert_eq!(j.deliveries(&run).unwrap().len() as u64, rows);
    let journal_mb = std::fs::metadata(w.path(".announce/journal.sqlite3")).unwrap().len() as f64 / 1048576.0;
    println!(
        "audience {mb} MB ({rows} rows, generated in {:.1} s): send --dry-run took {:.1} s, peak RSS {} MB \
         ({:.1}x the file), journal {journal_mb:.0} MB",
        generated.as_secs_f64(),
        took.as_secs_f64(),
        peak_kb / 1024,
        peak_kb as f64 / 1024.0 / mb as f64,
    );
    let bound_mb = 150 + 40 * mb;
    assert!(
        peak_kb / 1024 < bound_mb,
        "peak RSS {} MB >= {bound_mb} MB",
        peak_kb / 1024
    );
}

/// A body just under the 1 MiB limit (a larger one is refused: tests/suite/input_safety.rs) goes out
/// whole, as HTML and text.
#[test]
fn a_huge_body_is_sent_whole() {
    let mb = 1;
    let w = outbox_only(b"name,email\nAnna,anna@example.de\n").build();
    let para = "Liebe Kundinnen und Kunden, **alle Termine** finden statt. Fragen: 030 1234567. \
                [Status](https://status.example.de)\n\n";
    let body = para.repeat((announce::announcement::MAX_BODY_BYTES - 100) / para.len());
    w.write(
        "notices/n.md",
        &format!("+++\ntitle = \"Langer Text\"\nsummary = \"kurz\"\n+++\n{body}LETZTE-ZEILE\n"),
    );
    let (status, peak_kb, took, stderr) = run_measured(&w, &["send", "notices/n.md", "--yes"]);
    assert!(status.success(), "{stderr}");
    let files = w.outbox();
    assert_eq!(files.len(), 1);
    let eml = std::fs::read_to_string(&files[0]).unwrap();
    assert_eq!(eml.matches("LETZTE-ZEILE").count(), 2, "in the text and the HTML part");
    let longest = eml.lines().map(str::len).max().unwrap();
    assert!(longest <= 998, "RFC 5322 line limit: a line of {longest}");
    println!(
        "body {mb} MB: sent in {:.1} s, peak RSS {} MB, message {} MB",
        took.as_secs_f64(),
        peak_kb / 1024,
        eml.len() / 1048576
    );
}

/// A 1 MB cell in an extra column is carried to the templates (`recipient.notes`) and the
/// message; the other rows are unaffected. (A line over 1 MiB is refused: see tests/suite/audience.rs.)
#[test]
fn a_one_megabyte_csv_field_is_carried() {
    let big = "Notiz ".repeat(1_000_000 / 6);
    let w =
        outbox_only(format!("name,email,notes\nAnna,anna@example.de,\"{big}\"\nBen,ben@example.de,kurz\n").as_bytes())
            .build();
    std::fs::create_dir_all(w.path("templates")).unwrap();
    w.config_replace("[org]", "templates_dir = \"templates\"\n[org]");
    w.write(
        "templates/email.txt.hbs",
        "Hallo {{recipient.name}}\n{{recipient.notes}}\nENDE\n",
    );
    let r = w.run(SEND);
    r.code(0);
    let ds = r.deliveries();
    assert!(ds.iter().all(|d| d["status"] == "sent"), "{ds:?}");
    let eml = w.outbox_message("anna");
    assert!(eml.len() > 1_000_000 && eml.contains("ENDE"), "{} bytes", eml.len());
    assert!(eml.lines().all(|l| l.len() <= 998), "RFC 5322 line limit");
}

/// A 1 MB *name* cannot be a display name: the message must still be valid (no header line
/// over 998 characters), or the delivery must fail with a reason; the other rows go out.
#[test]
fn a_one_megabyte_name_does_not_make_an_invalid_message() {
    let huge = "N".repeat(1_000_000);
    let w = outbox_only(format!("name,email\n{huge},anna@example.de\nBen,ben@example.de\n").as_bytes()).build();
    let r = w.run(SEND);
    let ds = r.deliveries();
    let ben = ds.iter().find(|d| d["recipient"] == "ben@example.de").unwrap();
    assert_eq!(ben["status"], "sent");
    for f in w.outbox() {
        let eml = std::fs::read_to_string(&f).unwrap();
        let longest = eml.lines().map(str::len).max().unwrap_or(0);
        assert!(longest <= 998, "{}: a line of {longest} characters", f.display());
    }
}

/// Through a real SMTP server: the 1 MB name is dropped from the To: header (it would make a
/// line the server refuses), so both recipients get their message.
#[test]
fn a_one_megabyte_name_does_not_cost_its_email_delivery() {
    let huge = "N".repeat(1_000_000);
    let w = outbox_only(format!("name,email\n{huge},anna@example.de\nBen,ben@example.de\n").as_bytes()).build();
    let server = smtp::Server::smtp(&w.path("box"), &["--mode", "plain"]);
    w.write(
        "channels.toml",
        &format!(
            "state_dir = \".announce\"\n[org]\nname = \"Studio\"\n[audience]\nfile = \"customers.csv\"\n\
             [channels.email]\ntype = \"email\"\nfrom = \"Studio <info@studio.example>\"\nmax_attempts = 2\n\
             retry_base = \"50ms\"\nretry_max = \"100ms\"\n\
             [[channels.email.relays]]\nname = \"local\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            server.port
        ),
    );
    let r = w.run(SEND);
    r.code(0);
    let ds = r.deliveries();
    assert!(ds.iter().all(|d| d["status"] == "sent"), "{ds:?}");
    assert_eq!(server.recipients(), ["anna@example.de", "ben@example.de"]);
}

/// Invalid UTF-8: in the announcement and the config a clear error with file:line:column
/// (exit 2, nothing sent); in the CSV read as Windows-1252, or with `encoding = "utf-8"` the
/// row is skipped with its line and column (a Latin-1 "Müller" from an old Excel export).
#[test]
fn invalid_utf8_is_reported_with_its_place() {
    let w = outbox_only(b"name,email\nAnna,anna@example.de\n").build();
    std::fs::write(w.path("notices/bad.md"), b"+++\ntitle = \"Gest\xf6rt\"\n+++\nText\n").unwrap();
    w.run(&["send", "notices/bad.md", "--yes"])
        .code(2)
        .stderr_has("notices/bad.md:2:")
        .stderr_has("not valid UTF-8");
    std::fs::write(w.path("notices/bad2.md"), b"+++\ntitle = \"x\"\n+++\nGr\xfc\xdfe\n").unwrap();
    w.run(&["send", "notices/bad2.md", "--yes"])
        .code(2)
        .stderr_has("notices/bad2.md:4:3");
    assert!(w.outbox().is_empty());

    let mut cfg = std::fs::read(w.path("channels.toml")).unwrap();
    let at = cfg.windows(6).position(|x| x == b"Studio").unwrap();
    cfg.splice(at + 2..at + 3, [0xFC]); // "St\xfcdio"
    std::fs::write(w.path("latin1.toml"), &cfg).unwrap();
    // Line and column of the byte (the column counts the `name = "St` before it, plus one).
    let line = cfg[..at].iter().filter(|&&b| b == b'\n').count() + 1;
    assert_eq!(&cfg[at - 8..at], b"name = \"");
    w.run(&["--config", "latin1.toml", "send", "notices/n.md", "--yes"])
        .code(2)
        .stderr_has(&format!("latin1.toml:{line}:11"))
        .stderr_has("not valid UTF-8");

    // In the CSV, what is not UTF-8 is read as Windows-1252 (an old Excel export), and the
    // plan says so; UTF-16 with a BOM is read too.
    std::fs::write(w.path("head.csv"), b"n\xe4me,email\nAnna,anna@example.de\n").unwrap();
    w.run(&["send", "notices/n.md", "--yes", "--audience", "head.csv"])
        .code(0)
        .stderr_has("read as Windows-1252");
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "name,email\r\nAnna,anna@example.de\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    std::fs::write(w.path("utf16.csv"), utf16).unwrap();
    w.run(&["send", "notices/n.md", "--yes", "--audience", "utf16.csv"])
        .code(0)
        .stderr_has("read as UTF-16");

    std::fs::write(
        w.path("latin1.csv"),
        b"name,email\nAnna,anna@example.de\nM\xfcller,mueller@example.de\nBen,ben@example.de\n",
    )
    .unwrap();
    let r = w.run(&["send", "notices/n.md", "--yes", "--json", "--audience", "latin1.csv"]);
    r.code(0).stderr_has("read as Windows-1252");
    let ds = r.deliveries();
    let sent: Vec<&str> = ds.iter().map(|d| d["recipient"].as_str().unwrap()).collect();
    assert_eq!(sent, ["anna@example.de", "mueller@example.de", "ben@example.de"]);

    // `encoding = "utf-8"`: a row that is not UTF-8 is skipped with its line and column, the
    // rest is sent; a header that is not UTF-8 is an error.
    w.config_replace("[audience]\n", "[audience]\nencoding = \"utf-8\"\n");
    w.run(&["send", "notices/n.md", "--yes", "--audience", "head.csv", "--again"])
        .code(2)
        .stderr_has("head.csv: header row is not valid UTF-8");
    let r = w.run(&[
        "send",
        "notices/n.md",
        "--yes",
        "--json",
        "--audience",
        "latin1.csv",
        "--again",
    ]);
    r.code(3);
    let ds = r.deliveries();
    let skipped: Vec<&str> = ds
        .iter()
        .filter(|d| d["status"] == "skipped")
        .map(|d| d["error"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, ["row 3: not valid UTF-8 (column `name`)"]);
}

/// Spreadsheet exports as they come, read alike: a byte order mark and CRLF in every file (the
/// config and the notice too), read as if they were not there; semicolon-delimited CSV (German
/// Excel), detected from the header row, with or without the `sep=;` line Excel writes, commas
/// inside cells left alone; or set by `[audience] delimiter`.
#[test]
fn boms_crlf_and_semicolon_csv_are_read_correctly() {
    let bom = "\u{feff}";
    let csv = "Name;E-Mail;Mobil;Tags;Notiz\r\n\"Müller, Anna\";anna@example.de;0151 / 23456781;vip;\"a, b; c\"\r\n\
               Ben Schröder;ben@example.de;+49 (0)151 23456782;;\r\n";
    let bom_crlf = format!(
        "{bom}name,email,tags,notiz\r\n\"Müller, Anna\",anna@example.de,\"vip;\r\nportrait\",\"a, b; c\"\r\nBen,ben@example.de,,\r\n"
    );
    for (label, content, extra, everywhere) in [
        ("BOM and CRLF", bom_crlf, "", true),
        ("detected", csv.to_string(), "", false),
        ("sep= line", format!("sep=;\r\n{csv}"), "", false),
        ("configured", csv.to_string(), "delimiter = \";\"\n", false),
    ] {
        let w = outbox_only(content.as_bytes()).build();
        if !extra.is_empty() {
            w.config_replace(
                "file = \"customers.csv\"\n",
                &format!("file = \"customers.csv\"\n{extra}"),
            );
        }
        if everywhere {
            let cfg = w.read("channels.toml").replace('\n', "\r\n");
            w.write("channels.toml", &format!("{bom}{cfg}"));
            w.write(
                "notices/n.md",
                &format!(
                    "{bom}+++\r\ntitle = \"Gestört\"\r\nsummary = \"kurz\"\r\n+++\r\nAlle Termine\r\nfinden statt.\r\n"
                ),
            );
        }
        let r = w.run(SEND);
        r.code(0);
        let ds = r.deliveries();
        let sent: Vec<&str> = ds.iter().map(|d| d["recipient"].as_str().unwrap()).collect();
        assert_eq!(sent, ["anna@example.de", "ben@example.de"], "{label}");
        let eml = w.outbox_message("anna");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert!(
            eml.contains(&format!("To: =?utf-8?b?{}?= <anna@example.de>", b64("Müller, Anna"))),
            "{label}: {eml}"
        );
        if everywhere {
            assert!(
                eml.contains(&format!("Subject: =?utf-8?b?{}?=", b64("Gestört"))),
                "{eml}"
            );
        }
        assert!(!eml.contains('\u{feff}'), "{label}: no BOM in the message");
        let rows = w.latest_rows();
        assert_eq!(rows[0].name, "Müller, Anna", "{label}");
        let data: Value = serde_json::from_str(rows[0].data.as_deref().unwrap()).unwrap();
        assert_eq!(data["notiz"], "a, b; c", "{label}: {data}");
        assert!(data.to_string().contains("\"vip\""), "{label}: {data}");
    }
    // A header that says nothing: told explicitly, a tab-delimited file works too.
    let w = outbox_only(b"name\temail\nAnna\tanna@example.de\n").build();
    w.config_replace(
        "file = \"customers.csv\"\n",
        "file = \"customers.csv\"\ndelimiter = \"tab\"\n",
    );
    w.run(SEND).code(0);
    // A wrong explicit delimiter is a clear error, not a silent empty run.
    let w = outbox_only(b"name;email\nAnna;anna@example.de\n").build();
    w.config_replace(
        "file = \"customers.csv\"\n",
        "file = \"customers.csv\"\ndelimiter = \",\"\n",
    );
    w.run(&["send", "notices/n.md", "--yes"])
        .code(2)
        .stderr_has("customers.csv: header row has neither an `email` nor a `phone` column");
}
