//! `report` through the binary: what staff open in a spreadsheet or read first.

use crate::support;

use support::Scenario;

#[test]
fn csv_report_cells_that_a_spreadsheet_would_run_as_formulas_start_with_a_quote() {
    let w = Scenario::new()
        .top("default_region = \"DE\"")
        .audience(
            "name,email,phone\nEve,=cmd|'/Ccalc'!A0@example.de,\nPlus,+1+2@example.de,\n\
             Phone,,0151 12345678\nAnna,anna@example.de,\n",
        )
        .channel("[channels.outbox]\ntype = \"outbox\"\ndir = \"outbox\"\n")
        .file("n.md", "+++\ntitle = \"Störung\"\n+++\nText\n")
        .build();
    w.run(&["send", "n.md", "--yes"]).code(0);
    let r = w.run(&["report", "--format", "csv"]);
    r.code(0);
    let out = r.stdout();
    let mut csv = csv::Reader::from_reader(out.as_bytes());
    let at = csv.headers().unwrap().iter().position(|h| h == "recipient").unwrap();
    let recipients: Vec<String> = csv.records().map(|x| x.unwrap()[at].to_string()).collect();
    assert_eq!(
        recipients,
        [
            "'=cmd|'/Ccalc'!A0@example.de",
            "'+1+2@example.de",
            "'+4915112345678",
            "anna@example.de"
        ],
        "{out}"
    );
}

#[test]
fn the_table_report_shows_the_rows_skipped_for_bad_input_before_the_sent_ones() {
    let w = Scenario::example().build();
    w.run(&["send", "notices/example.md", "--yes"]).code(3);
    let r = w.run(&["report"]);
    r.code(0);
    let out = r.stdout();
    let problems = out.find("Problems (2)").unwrap_or_else(|| panic!("{out}"));
    let rest = out.find("Everything else (25)").unwrap_or_else(|| panic!("{out}"));
    let rows =
        |from: usize, to: usize| -> Vec<&str> { out[from..to].lines().skip(2).filter(|l| !l.is_empty()).collect() };
    let first = rows(problems, rest);
    assert_eq!(first.len(), 2, "{out}");
    assert!(
        first.iter().all(|l| l.contains(" skipped ") && l.contains("row ")),
        "{out}"
    );
    let later = rows(rest, out.len());
    assert_eq!(later.len(), 25, "{out}");
    assert!(later.iter().any(|l| l.contains(" sent ")), "{out}");
}
