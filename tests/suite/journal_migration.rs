//! A journal written by the previous version (schema version 0, tests/data/journal-v0.sqlite3,
//! made by tests/data/make-old-journal.sh) opens, is migrated, and reports its runs as before.

use crate::support::{self, scenario::Scenario};

const SENT_RUN: &str = "01a233d7-ba10-7656-89dd-8e657f2858cf";
const DRY_RUN: &str = "01a233d7-bb76-7294-9b3f-e4a8c2ca9c33";

fn rows(v: &serde_json::Value) -> Vec<(String, String, String, serde_json::Value)> {
    v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
            (s("channel"), s("recipient"), s("status"), d["row"].clone())
        })
        .collect()
}

#[test]
fn a_journal_of_the_previous_version_reports_its_runs_after_migrating() {
    let w = Scenario::new()
        .channel("[channels.outbox]\ntype = \"outbox\"\ndir = \"outbox\"\n")
        .build();
    std::fs::create_dir_all(w.path(".announce")).unwrap();
    std::fs::copy(
        support::repo("tests/data/journal-v0.sqlite3"),
        w.path(".announce/journal.sqlite3"),
    )
    .unwrap();
    let sent = w.run(&["report", SENT_RUN, "--format", "json"]);
    sent.code(0);
    let s = |c: &str, r: &str, st: &str, row: u64| (c.to_string(), r.to_string(), st.to_string(), row.into());
    assert_eq!(
        rows(&sent.json()),
        [
            s("outbox", "anna@example.de", "sent", 2),
            s("outbox", "ben@example.de", "sent", 3),
            s("outbox", "+4915133333333", "sent", 4),
            s("outbox", "dora@example.de", "sent", 5),
        ]
    );
    assert_eq!(sent.json()["people"]["reached"], 4);
    let dry = w.run(&["report", DRY_RUN, "--format", "json"]);
    dry.code(0);
    let v = dry.json();
    assert_eq!(
        rows(&v)[4..],
        [
            s("sms", "+4915111111111", "pending", 2),
            s("sms", "row 3", "skipped", 3),
            s("sms", "+4915133333333", "pending", 4),
            s("sms", "+4915144444444", "pending", 5),
        ]
    );
    assert_eq!(v["people"]["total"], 4);
    let db = rusqlite::Connection::open(w.path(".announce/journal.sqlite3")).unwrap();
    let version: i64 = db.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 1, "migrated to the current schema");
    let people: i64 = db.query_row("SELECT COUNT(*) FROM people", [], |r| r.get(0)).unwrap();
    assert_eq!(people, 8, "each run's four audience rows, once per run");

    // Every format reads the migrated runs.
    for format in ["table", "csv", "html"] {
        let out = w.run(&["report", DRY_RUN, "--format", format]);
        out.code(0);
        for r in ["anna@example.de", "+4915144444444", "row 3"] {
            assert!(
                out.stdout().contains(r),
                "{format} report without {r}:\n{}",
                out.stdout()
            );
        }
    }
    // `resume` re-renders from the migrated recipient data: the template greets Ben by name.
    db.execute(
        "UPDATE deliveries SET status = 'pending' WHERE recipient = 'ben@example.de' AND id IN
           (SELECT id FROM delivery_view WHERE run_id = ?1)",
        [SENT_RUN],
    )
    .unwrap();
    drop(db);
    w.run(&["resume", SENT_RUN, "--yes"]).code(0);
    let files: Vec<String> = walk(&w.path("outbox"));
    assert_eq!(files.len(), 1, "only Ben's message is sent again: {files:?}");
    assert!(files[0].contains("Hello Ben,"), "{}", files[0]);
}

/// The contents of every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    out
}
