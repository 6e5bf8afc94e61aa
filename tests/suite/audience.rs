//! The audience CSV end to end through the binary: every row accounted for, spreadsheet
//! encodings, oversized input, and what `preview` says about recipients.

use crate::support;

use support::Scenario;

use support::scenario::EXAMPLE_SEND as SEND;

/// `n` well-formed data rows.
fn good_rows(n: usize) -> String {
    (0..n).map(|i| format!("Kunde {i},kunde{i}@example.de\n")).collect()
}

#[test]
fn an_unclosed_quote_refuses_the_file_naming_its_line() {
    let w = Scenario::example()
        .file(
            "customers.csv",
            &format!(
                "name,email\nAnna,anna@example.de\n\"Ben, unclosed,ben@example.de\n{}",
                good_rows(1000)
            ),
        )
        .build();
    let r = w.run(SEND);
    r.code(2)
        .stderr_has("customers.csv: line 3: a quoted field opens here and is never closed")
        .stderr_has("swallow the 1000 line(s) after it");
    w.assert_nothing_sent();

    // The same quote paired with a stray one 500 lines on: the lines between are rows.
    let csv = format!(
        "name,email\nAnna,anna@example.de\n\"Ben, unclosed,ben@example.de\n{}\"Zed\",zed@example.de\n{}",
        good_rows(500),
        good_rows(10)
    );
    w.write("customers.csv", &csv);
    w.run(SEND)
        .code(2)
        .stderr_has("customers.csv: line 3: a quoted field opens here and only closes on line 504")
        .stderr_has("swallow the 500 line(s) between");
    w.assert_nothing_sent();

    // Once fixed, every row is sent.
    w.write(
        "customers.csv",
        &format!(
            "name,email\nAnna,anna@example.de\n\"Ben, closed\",ben@example.de\n{}",
            good_rows(1000)
        ),
    );
    let r = w.run(SEND);
    r.code(0);
    assert_eq!(r.json()["totals"]["sent"], 1002, "{}", r.describe());
}

#[test]
fn a_german_excel_export_in_windows_1252_reaches_everyone() {
    let w = Scenario::example().build();
    let rows = [
        ("Jürgen Müller", "mueller@example.de"),
        ("Weiß, Anna", "weiss@example.de"),
        ("Özlem Kaya", "oezlem@example.de"),
    ];
    let mut text = String::from("Name;E-Mail;Telefon\r\n");
    for (name, mail) in rows {
        let name = if name.contains(',') {
            format!("\"{name}\"")
        } else {
            name.to_string()
        };
        text.push_str(&format!("{name};{mail};030 1234567\r\n"));
    }
    w.write_encoded("customers.csv", &text, "cp1252");
    assert!(std::str::from_utf8(&std::fs::read(w.path("customers.csv")).unwrap()).is_err());

    let r = w.run(SEND);
    r.code(0).stderr_has("read as Windows-1252");
    assert_eq!(r.json()["totals"]["sent"], 3, "{}", r.describe());
    let to = w.outbox_to_headers();
    assert_eq!(to.len(), 3, "{to:?}");
    for (name, mail) in rows {
        assert!(
            to.iter().any(|t| t.contains(name) && t.contains(mail)),
            "{name} <{mail}> in {to:?}"
        );
    }

    // Told it is UTF-8, the same file's rows are skipped, each with its line and reason.
    w.config_replace("[audience]\n", "[audience]\nencoding = \"utf-8\"\n");
    std::fs::remove_dir_all(w.path("outbox")).unwrap();
    w.run(&["send", "notices/example.md", "--yes", "--again"])
        .code(3)
        .stderr_has("line 2: not valid UTF-8 (column `name`)");
}

#[test]
fn excel_unicode_text_utf16_with_tabs_reaches_everyone() {
    let w = Scenario::example().build();
    let text = "Name\tE-Mail\tTelefon\r\nÖzlem Kaya\toezlem@example.de\t\r\nŁukasz Żółw\tlukasz@example.de\t\r\n";
    // Python's "utf-16" writes a BOM and the machine's byte order (little-endian here, as Excel).
    w.write_encoded("customers.csv", text, "utf-16");
    assert!(
        std::fs::read(w.path("customers.csv"))
            .unwrap()
            .starts_with(&[0xFF, 0xFE])
    );
    let r = w.run(SEND);
    r.code(0).stderr_has("read as UTF-16");
    assert_eq!(r.json()["totals"]["sent"], 2, "{}", r.describe());
    let to = w.outbox_to_headers();
    assert!(to.iter().any(|t| t.contains("Łukasz Żółw")), "{to:?}");
}

#[test]
fn an_unknown_encoding_in_the_config_is_refused_with_its_place() {
    let w = Scenario::example().build();
    w.config_replace("[audience]\n", "[audience]\nencoding = \"latin1\"\n");
    let r = w.run(SEND);
    r.code(2).stderr_has("channels.toml:").stderr_has("latin1");
    w.assert_nothing_sent();
}

#[test]
fn oversized_lines_and_headers_are_refused() {
    let w = Scenario::example().build();
    // 10 MB: a line of a data row, then a header.
    let huge = "x".repeat(10 << 20);
    w.write(
        "customers.csv",
        &format!("name,email\nAnna,anna@example.de\n{huge},b@example.de\n"),
    );
    w.run(SEND)
        .code(2)
        .stderr_has("customers.csv: line 3 is longer than 1 MiB");
    w.assert_nothing_sent();

    w.write("customers.csv", &format!("name,email,{huge}\nAnna,anna@example.de,\n"));
    w.run(SEND)
        .code(2)
        .stderr_has("customers.csv: line 1: the header row is longer than 64 KiB");
    w.assert_nothing_sent();
}

#[test]
fn preview_of_a_recipient_not_in_the_audience_is_exit_2() {
    let w = Scenario::example().build();
    w.run(&["preview", "notices/example.md", "--recipient", "nobody@example.de"])
        .code(2)
        .stderr_has("--recipient nobody@example.de: no such recipient to preview");
    // Someone on the suppression list: the reason is given.
    let optout = w
        .read("optouts.txt")
        .lines()
        .map(str::trim)
        .find(|l| l.contains('@') && !l.starts_with('#'))
        .expect("an email in optouts.txt")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let csv = format!("name,email\nAnna,anna@example.de\nOpted Out,{optout}\n");
    w.write("customers.csv", &csv);
    w.run(&["preview", "notices/example.md", "--recipient", &optout])
        .code(2)
        .stderr_has("outbox: skipped: on the suppression list");
    w.run(&["preview", "notices/example.md", "--recipient", "anna@example.de"])
        .code(0);
}

#[test]
fn preview_says_why_a_channel_has_nobody_to_show() {
    let w = Scenario::example().build();
    w.config_replace(
        "[channels.sms]\ntype = \"sms\"\nenabled = false\n",
        "[channels.sms]\ntype = \"sms\"\nenabled = true\n",
    );
    w.write("customers.csv", "name,email,phone\nAnna,,0000\n");
    let r = w.run_env(
        &["preview", "notices/example.md", "--channel", "sms"],
        &[("TWILIO_AUTH_TOKEN", "test-token")],
    );
    r.code(0);
    let out = r.stdout();
    assert!(
        out.contains("== sms (sms): no recipient to preview"),
        "{}",
        r.describe()
    );
    assert!(
        out.contains("all 1 planned deliveries are skipped") && out.contains("row 2: invalid phone number \"0000\""),
        "{}",
        r.describe()
    );
}

#[test]
fn preview_names_the_template_files_that_override_built_ins() {
    let w = Scenario::example().build();
    w.config_replace("# templates_dir = \"templates\"", "templates_dir = \"templates\"");
    w.write("templates/email.subject.hbs", "Wichtig: {{title}}");
    w.write("templates/extra.txt.hbs", "unused");
    let r = w.run(&["preview", "notices/example.md"]);
    r.code(0);
    let out = r.stdout();
    assert!(
        out.contains("templates: email.subject.hbs (./templates/email.subject.hbs overrides the built-in)"),
        "{out}"
    );
    assert!(
        out.contains("templates: extra.txt.hbs (./templates/extra.txt.hbs; no built-in has that name)"),
        "{out}"
    );
    assert!(out.contains("Subject: Wichtig: Website und E-Mail"), "{out}");
}

#[test]
fn the_plan_lists_the_first_unreadable_rows_and_counts_the_rest() {
    let w = Scenario::example().build();
    let bad: String = (0..25).map(|i| format!("Solo {i}\n")).collect();
    w.write("customers.csv", &format!("name,email\n{bad}Anna,anna@example.de\n"));
    let r = w.run(&["send", "notices/example.md", "--yes", "--dry-run"]);
    r.code(0)
        .stderr_has("26 rows, 25 unreadable")
        .stderr_has("line 21: expected 2 fields, found 1")
        .stderr_has("... and 5 more unreadable rows");
    assert!(!r.stderr().contains("line 22:"), "{}", r.describe());
}
