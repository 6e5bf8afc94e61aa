//! The pages announce writes for people to read — the status site and the HTML report — as
//! browsers and checkers see them: the Nu HTML Checker and axe-core (in Debian's chromium at
//! phone size) on every generated `.html` file, and the HTML report's shape parsed with a real
//! HTML parser.
//!
//! scripts/test installs the checkers and exports where they are (`ANNOUNCE_TEST_VNU_JAR`,
//! `ANNOUNCE_TEST_NODE_TOOLS`, `ANNOUNCE_TEST_CHROMIUM`); without them the check fails and says
//! how to install them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use scraper::{ElementRef, Html, Selector};
use serde_json::Value;

use crate::support;
use support::{Scenario, Workspace};

const INSTALL: &str = "scripts/test installs them; by hand: apt-get install default-jre-headless chromium \
                       nodejs npm && npm ci --prefix tests/support/node, then export \
                       ANNOUNCE_TEST_VNU_JAR=tests/support/node/node_modules/vnu-jar/build/dist/vnu.jar \
                       ANNOUNCE_TEST_NODE_TOOLS=tests/support/node ANNOUNCE_TEST_CHROMIUM=/usr/bin/chromium";

/// A tool the checks need, from the variable scripts/test sets; fails with the install hint.
fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var).map(PathBuf::from) {
        Some(p) if p.exists() => p,
        Some(p) => panic!("{var}={} does not exist. {INSTALL}", p.display()),
        None => panic!("{var} is not set. {INSTALL}"),
    }
}

/// A status site of two threads (major, update, resolved; and a critical one), from an org with
/// every contact field.
fn status_site(locale: &str) -> Arc<Workspace> {
    let w = Scenario::new()
        .org(&format!(
            "name = \"Sarah Kastner Fotografie\"\nlocale = \"{locale}\"\nwebsite = \"https://sarahkastner.example\"\n\
             phone = \"+49 30 1234567\"\nemail = \"termine@sarahkastner.example\"\n\
             address = \"Musterstr. 1, 10115 Berlin\"\nhours = \"Mo-Fr 9-18 Uhr\"\ntimezone = \"Europe/Berlin\""
        ))
        .channel("[channels.status]\ntype = \"statuspage\"\ndir = \"public/status\"\n")
        .build();
    let notices = [
        (
            "Website and email down",
            "summary = \"Our website is offline.\"\nthread = \"outage\"\nseverity = \"major\"",
            "Our hosting provider was **hacked**.\n\n- Appointments take place\n- Call us",
        ),
        (
            "Update: email works again",
            "thread = \"outage\"\nseverity = \"minor\"",
            "Email works again.",
        ),
        (
            "All systems back",
            "thread = \"outage\"\nseverity = \"resolved\"",
            "Everything is back.",
        ),
        (
            "Studio closed on Monday",
            "thread = \"closure\"\nseverity = \"critical\"\nlink = \"https://sarahkastner.example/news\"",
            "Appointments move to **Tuesday**.",
        ),
    ];
    for (i, (title, front, body)) in notices.iter().enumerate() {
        let rel = format!("notices/{i}.md");
        w.notice_file(&rel, title, front, body)
            .run(&["send", &rel, "--yes"])
            .code(0);
    }
    w
}

/// A run to five people through the outbox: two sent, one invalid address (skipped for bad
/// input), and, written into the journal as a provider and a crash would leave them, one
/// rejected with a 550 (failed) and one in flight when the process died (unknown). Then
/// `report --format html --output report.html`.
fn reported_run(locale: &str) -> Arc<Workspace> {
    let w = outbox_run(
        Scenario::new(),
        locale,
        "name,email\nAnna,anna@example.de\nBen,ben@example.de\nCarla,carla@example.de\n\
         Dora,dora@example.de\nGabi,gabi@\n",
        "Website gestört",
    );
    let db = rusqlite::Connection::open(w.path(".announce/journal.sqlite3")).unwrap();
    db.execute_batch(
        "UPDATE deliveries SET status = 'failed', attempts = 1,
           error = '550 5.1.1 <ben@example.de>: Recipient address rejected: User unknown'
         WHERE recipient = 'ben@example.de';
         UPDATE deliveries SET status = 'sending' WHERE recipient = 'carla@example.de';",
    )
    .unwrap();
    drop(db);
    w.run(&["report", "--format", "html", "--output", "report.html"])
        .code(0);
    w
}

/// `audience` sent through the outbox (the last row's address is invalid: exit 3).
fn outbox_run(s: Scenario, locale: &str, audience: &str, title: &str) -> Arc<Workspace> {
    let w = s
        .org(&format!(
            "name = \"Studio\"\nlocale = \"{locale}\"\ntimezone = \"Europe/Berlin\""
        ))
        .audience(audience)
        .channel("[channels.outbox]\ntype = \"outbox\"\ndir = \"outbox\"\n")
        .title(title)
        .notice("", "Wir sind telefonisch erreichbar.")
        .build();
    w.run(&["send", support::scenario::NOTICE, "--yes"]).code(3);
    w
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

/// Where the first element matching `css` is in document order.
fn position(doc: &Html, css: &str) -> usize {
    let wanted = select(doc, css).first().map(|e| e.id());
    let wanted = wanted.unwrap_or_else(|| panic!("no {css} in\n{}", doc.html()));
    select(doc, "*").iter().position(|e| e.id() == wanted).unwrap()
}

#[test]
fn the_html_report_is_self_contained_with_the_people_first_and_the_problems_before_the_rest() {
    let w = reported_run("en");
    let text = w.read("report.html");
    let doc = Html::parse_document(&text);

    // Nothing the browser would fetch, nothing it would run.
    for e in select(&doc, "*") {
        for (name, value) in e.value().attrs() {
            if ["src", "href", "srcset", "xlink:href", "poster", "data", "action"].contains(&name) {
                assert!(
                    value.starts_with('#') || value.starts_with("tel:") || value.starts_with("mailto:"),
                    "<{} {name}={value:?}> points outside the file",
                    e.value().name()
                );
            }
            assert!(
                !name.starts_with("on"),
                "an event handler: <{} {name}>",
                e.value().name()
            );
        }
    }
    for tag in ["script", "link", "img", "iframe", "object", "embed", "source", "base"] {
        assert!(select(&doc, tag).is_empty(), "<{tag}> in\n{text}");
    }
    for style in select(&doc, "style") {
        let css = style.text().collect::<String>();
        assert!(!css.contains("url(") && !css.contains("@import"), "{css}");
    }

    // The people totals (the table report's numbers), then one inline bar per channel, then the
    // call list and the problems, then the rest.
    let line = select(&doc, ".people-line")[0].text().collect::<String>();
    assert_eq!(line, "Reached 2 of 5 people");
    assert!(
        w.run(&["report"])
            .stdout()
            .starts_with("reached 2 of 5 people, 1 uncertain (outcome unknown)\n")
    );
    let bars = select(&doc, "svg");
    assert_eq!(bars.len(), 1, "one channel, one bar");
    let rects: Vec<_> = bars[0].select(&Selector::parse("rect").unwrap()).collect();
    let widths: Vec<(&str, &str)> = rects
        .iter()
        .map(|r| (r.value().attr("class").unwrap(), r.value().attr("width").unwrap()))
        .collect();
    assert_eq!(
        widths,
        [
            ("sent", "400"),
            ("failed", "200"),
            ("unknown", "200"),
            ("skipped", "200")
        ]
    );
    let legend = select(&doc, ".legend")[0].text().collect::<String>();
    assert_eq!(legend, "sent 2failed 1unknown 1skipped 1", "readable without colour");
    assert!(position(&doc, ".people-line") < position(&doc, "svg"));
    assert!(position(&doc, "svg") < position(&doc, "#call-list"));
    assert!(position(&doc, "#call-list") < position(&doc, "#problems"));
    assert!(position(&doc, "tr.failed") < position(&doc, "tr.sent"));
    assert!(position(&doc, "#problems") < position(&doc, "#rest"));

    let rows = |css: &str| -> Vec<String> {
        select(&doc, css)
            .iter()
            .map(|r| r.text().collect::<Vec<_>>().join("|"))
            .collect()
    };
    let heading = select(&doc, "#call-list")[0].text().collect::<String>();
    assert!(heading.ends_with("(2)"), "{heading}");
    let call = rows("#call-list ~ table tbody tr");
    assert_eq!(call.len(), 2, "{call:?}");
    assert!(call[0].contains("Ben") && call[0].contains("550 5.1.1"), "{call:?}");
    assert!(call[1].contains("Gabi") && call[1].contains("gabi@"), "{call:?}");
    let problems: Vec<String> = select(&doc, "tbody tr.failed, tbody tr.unknown, tbody tr.skipped")
        .iter()
        .map(|r| r.value().attr("class").unwrap().to_string())
        .collect();
    assert_eq!(
        problems,
        [
            "failed",
            "failed",
            "delivery failed",
            "delivery unknown",
            "delivery skipped"
        ],
        "the call list, then the problems in journal order"
    );
    assert_eq!(select(&doc, "tr.delivery.sent").len(), 2);
}

#[test]
fn the_html_report_follows_the_org_locale() {
    let w = reported_run("de");
    let doc = Html::parse_document(&w.read("report.html"));
    assert_eq!(select(&doc, "html")[0].value().attr("lang"), Some("de"));
    let text = doc.root_element().text().collect::<String>();
    for word in [
        "Zustellbericht",
        "2 von 5 Personen erreicht",
        "fehlgeschlagen",
        "Alles andere (2)",
    ] {
        assert!(text.contains(word), "{word}:\n{text}");
    }
    let started = select(&doc, ".meta")[0].text().collect::<String>();
    let date = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Berlin").unwrap())
        .strftime("%d.%m.%Y")
        .to_string();
    assert!(started.contains(&date), "{started}");
}

/// The Nu HTML Checker's errors for these files (`--errors-only --format json`).
fn vnu_errors(files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new("java")
        .arg("-jar")
        .arg(tool("ANNOUNCE_TEST_VNU_JAR"))
        .args(["--errors-only", "--format", "json"])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("java: {e}. {INSTALL}"));
    let report: Value = serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("vnu printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    report["messages"].as_array().cloned().unwrap_or_default()
}

/// axe-core's serious and critical violations, by file, at 390x844.
fn axe_violations(files: &[PathBuf]) -> serde_json::Map<String, Value> {
    let tools = tool("ANNOUNCE_TEST_NODE_TOOLS");
    let out = Command::new("node")
        .arg(tools.join("axe.mjs"))
        .arg(tool("ANNOUNCE_TEST_CHROMIUM"))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("node: {e}. {INSTALL}"));
    assert!(
        out.status.success(),
        "axe.mjs failed: {}. {INSTALL}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Object(m)) => m,
        other => panic!("axe.mjs printed {other:?}"),
    }
}

#[test]
fn every_generated_page_passes_the_nu_html_checker_and_axe_core() {
    let sites = [status_site("de"), status_site("en")];
    let reports = [reported_run("en"), reported_run("de")];
    let html = |p: &Path| p.extension().is_some_and(|x| x == "html");
    let mut files: Vec<PathBuf> = sites
        .iter()
        .flat_map(|w| w.files("public/status"))
        .filter(|p| html(p))
        .collect();
    let pages = files.len();
    assert!(pages >= 6, "an index and two incident pages per site: {files:?}");
    files.extend(reports.iter().map(|w| w.path("report.html")));

    let errors = vnu_errors(&files);
    assert!(
        errors.is_empty(),
        "Nu HTML Checker errors:\n{}",
        serde_json::to_string_pretty(&errors).unwrap()
    );
    let violations = axe_violations(&files);
    assert_eq!(violations.len(), files.len(), "axe checked every page: {violations:?}");
    let bad: Vec<_> = violations
        .iter()
        .filter(|(_, v)| v.as_array().is_none_or(|a| !a.is_empty()))
        .collect();
    assert!(bad.is_empty(), "axe-core serious/critical violations: {bad:#?}");
}

/// The built-in blocks' rows are written without handlebars; a block that differs only by a
/// comment goes through handlebars. Both must write the same bytes, escaping included.
#[test]
fn the_html_reports_direct_rows_are_the_bytes_handlebars_writes() {
    let w = outbox_run(
        Scenario::new()
            .top("templates_dir = \"templates\"")
            .file("templates/README", "templates of our own"),
        "de",
        "name,email,phone\nAnna,anna@example.de,\n\"Zoë \"\"Z\"\" O'Neil & <Co>\",zoe@example.de,+49 151 23456789\n\
         Ben,ben@example.de,\nGabi,gabi@,\n",
        "Website <gestört> & mehr",
    );
    let db = rusqlite::Connection::open(w.path(".announce/journal.sqlite3")).unwrap();
    db.execute_batch(
        "UPDATE deliveries SET status = 'failed', attempts = 2,
           error = '550 5.1.1 <x@example.de>: \"rejected\" & ''unknown'''
         WHERE recipient IN ('ben@example.de', 'zoe@example.de');",
    )
    .unwrap();
    drop(db);
    w.run(&["report", "--format", "html", "--output", "direct.html"])
        .code(0);

    let builtin = include_str!("../../src/report/report.html.hbs");
    let mut own = builtin.to_string();
    for block in [
        "{{#each_not_reached}}",
        "{{#each_delivery \"problems\"}}",
        "{{#each_delivery \"rest\"}}",
    ] {
        assert!(own.contains(block), "{block} is not in the built-in report template");
        own = own.replace(block, &format!("{block}{{{{!-- through handlebars --}}}}"));
    }
    w.write("templates/report.html.hbs", &own);
    w.run(&["report", "--format", "html", "--output", "handlebars.html"])
        .code(0);

    let (direct, handlebars) = (w.read("direct.html"), w.read("handlebars.html"));
    assert!(
        direct.contains("Zoë &quot;Z&quot; O&#x27;Neil &amp; &lt;Co&gt;")
            || direct.contains("Zoë &quot;Z&quot; O&#39;Neil &amp; &lt;Co&gt;"),
        "{direct}"
    );
    assert_eq!(direct.matches("<tr class=\"delivery ").count(), 4, "{direct}");
    assert_eq!(direct, handlebars);
}
