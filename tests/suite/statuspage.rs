//! The static status page, end to end through the binary: content rebuilt from the journal,
//! thread state and order, the Atom feed (checked with Python's feedparser), file modes, and
//! `publish_command`. The Chromium screenshot is `scripts/screenshot-statuspage` (not a test, so
//! the suite does not depend on a browser).

use crate::support;
use crate::support::channels;

use std::os::unix::fs::PermissionsExt;

use channels::{deliveries_of, python_script};
use serde_json::Value;
use support::Scenario;

/// Asia/Kolkata: +05:30 all year, so the local times are predictable.
fn status_page(top: &str, channel_extra: &str) -> Scenario {
    status_page_with(top, "", channel_extra)
}

/// `status_page` with more `[org]` lines.
fn status_page_with(top: &str, org_extra: &str, channel_extra: &str) -> Scenario {
    Scenario::new()
        .top(top)
        .org(&format!(
            "name = \"Sarah Kastner Fotografie\"\nphone = \"+49 30 1234567\"\nemail = \"termine@example.de\"\n\
             website = \"https://sarahkastner.example\"\ntimezone = \"Asia/Kolkata\"\n{org_extra}"
        ))
        .channel(&format!(
            "[channels.status]\ntype = \"statuspage\"\ndir = \"public/status\"\n{channel_extra}"
        ))
}

/// Byte position of `needle` in `hay`, panicking with context when absent.
fn pos(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found in:\n{hay}"))
}

/// The part of the index between two headings (or to the end).
fn section<'a>(html: &'a str, heading: &str) -> &'a str {
    let start = pos(html, heading);
    let rest = &html[start..];
    let end = rest[1..].find("<h2").map_or(rest.len(), |i| i + 1);
    &rest[..end]
}

#[test]
fn a_thread_of_three_updates_and_another_incident() {
    let w = status_page("", "").build();
    w.notice_file(
        "n1.md",
        "Website und E-Mail gestört",
        "thread = \"outage-2026-04\"\nseverity = \"major\"",
        "Unser Hoster wurde **gehackt**.",
    );
    w.notice_file(
        "n2.md",
        "Studio-Telefon gestört",
        "thread = \"phone\"\nseverity = \"minor\"",
        "Bitte per E-Mail.",
    );
    w.notice_file(
        "n3.md",
        "Update: E-Mail läuft wieder",
        "thread = \"outage-2026-04\"\nseverity = \"info\"",
        "Die Website ist noch offline.",
    );
    w.notice_file(
        "n4.md",
        "Alles wieder in Ordnung",
        "thread = \"outage-2026-04\"\nseverity = \"resolved\"",
        "Website und E-Mail laufen.",
    );

    let report = w.send_ok("n1.md");
    let d = &deliveries_of(&report, "status")[0];
    assert_eq!(d["status"], "sent");
    assert_eq!(d["route"], "dir");
    let index_path = w.path("public/status/index.html");
    assert_eq!(d["provider_id"], index_path.display().to_string().as_str());
    assert_eq!(d["recipient"], w.path("public/status").display().to_string().as_str());
    w.send_ok("n2.md");

    // Both open: the major one first although the minor one is newer.
    let index = w.read("public/status/index.html");
    let current = section(&index, "Current incidents");
    assert!(pos(current, "Website und E-Mail gestört") < pos(current, "Studio-Telefon gestört"));
    assert!(current.contains("Major disruption") && current.contains("Minor disruption"));
    assert!(!index.contains("Recently resolved"));

    w.send_ok("n3.md");
    // An update without a severity of its own keeps the incident major.
    let index = w.read("public/status/index.html");
    let current = section(&index, "Current incidents");
    assert!(pos(current, "Website und E-Mail gestört") < pos(current, "Studio-Telefon gestört"));
    assert!(
        current.contains("Die Website ist noch offline."),
        "the latest update is shown"
    );

    w.send_ok("n4.md");
    let index = w.read("public/status/index.html");
    let current = section(&index, "Current incidents");
    assert!(current.contains("Studio-Telefon gestört"));
    assert!(
        !current.contains("Website und E-Mail gestört"),
        "resolved closes the thread"
    );
    let resolved = section(&index, "Recently resolved");
    assert!(resolved.contains("Website und E-Mail gestört") && resolved.contains("Resolved"));
    assert!(resolved.contains("href=\"incident-outage-2026-04.html\""));
    // Org, contact details, the feed, times in the org's time zone.
    assert!(index.contains("Sarah Kastner Fotografie"));
    assert!(index.contains("href=\"tel:+49301234567\""));
    assert!(index.contains("mailto:termine@example.de"));
    assert!(index.contains("type=\"application/atom+xml\""));
    assert!(
        index.contains("+05:30\">") && index.contains(" IST</time>"),
        "local times: {index}"
    );
    assert!(index.contains("name=\"viewport\""));
    assert!(!index.to_lowercase().contains("<script"), "no JavaScript");

    // The thread page: closed, updates newest first.
    let thread = w.read("public/status/incident-outage-2026-04.html");
    assert!(thread.contains("Closed"));
    let (a, b, c) = (
        pos(&thread, "<h3>Alles wieder in Ordnung</h3>"),
        pos(&thread, "<h3>Update: E-Mail läuft wieder</h3>"),
        pos(&thread, "<h3>Website und E-Mail gestört</h3>"),
    );
    assert!(a < b && b < c, "newest first");
    assert!(thread.contains("<strong>gehackt</strong>"), "the Markdown body as HTML");
    let other = w.read("public/status/incident-phone.html");
    assert!(other.contains("Ongoing") && other.contains("Minor disruption"));

    // The feed: valid Atom per an independent parser, one entry per announcement.
    let feed = w.path("public/status/feed.atom");
    let out = python_script(
        "feedparser",
        r#"
import json, sys, feedparser
f = feedparser.parse(sys.argv[1])
print(json.dumps({
    "bozo": f.bozo, "error": str(f.get("bozo_exception", "")), "version": f.version,
    "title": f.feed.get("title"), "id": f.feed.get("id"), "author": f.feed.get("author"),
    "updated_parsed": f.feed.get("updated_parsed") is not None,
    "entries": [{"id": e.id, "title": e.title, "updated": e.updated, "link": e.link,
                 "updated_parsed": e.get("updated_parsed") is not None,
                 "content": e.content[0].value if "content" in e else ""} for e in f.entries],
}))
"#,
        &[&feed.display().to_string()],
    );
    let f: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        f["bozo"] == Value::Bool(false) || f["bozo"] == 0,
        "feedparser found a problem: {f}"
    );
    assert_eq!(f["version"], "atom10");
    // RFC 4287's required feed elements: id, title, updated (a date it can parse), author.
    assert!(f["id"].as_str().unwrap().starts_with("urn:uuid:"), "{f}");
    assert_eq!(f["title"], "Current status – Sarah Kastner Fotografie");
    assert_eq!(f["author"], "Sarah Kastner Fotografie (termine@example.de)");
    assert_eq!(f["updated_parsed"], true);
    let entries = f["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{f}");
    let titles: Vec<&str> = entries.iter().map(|e| e["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        [
            "Alles wieder in Ordnung",
            "Update: E-Mail läuft wieder",
            "Studio-Telefon gestört",
            "Website und E-Mail gestört"
        ],
        "newest first"
    );
    let ids: std::collections::HashSet<&str> = entries.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 4);
    for e in entries {
        assert_eq!(e["updated_parsed"], true, "{e}");
        assert!(e["id"].as_str().unwrap().starts_with("urn:uuid:"));
        assert!(e["updated"].as_str().unwrap().ends_with("+05:30"), "{e}");
    }
    assert!(
        entries[3]["content"]
            .as_str()
            .unwrap()
            .contains("<strong>gehackt</strong>")
    );
    assert!(
        entries[0]["link"]
            .as_str()
            .unwrap()
            .contains("incident-outage-2026-04.html#u-")
    );

    // Public files: 0644 in a 0755 folder (the state folder stays private).
    for f in ["index.html", "feed.atom", "incident-outage-2026-04.html"] {
        let mode = std::fs::metadata(w.path(&format!("public/status/{f}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{f}");
    }
    let mode = std::fs::metadata(w.path("public/status")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert!(
        !w.files("public/status")
            .iter()
            .any(|p| p.file_name().unwrap().to_string_lossy().ends_with(".tmp")),
        "no temp files left"
    );
}

#[test]
fn the_site_is_rebuilt_from_the_journal_and_leaves_out_other_channels_runs() {
    let w = status_page("", "").build();
    w.config_append(
        "\n[channels.files]\ntype = \"outbox\"\ndir = \"outbox\"\n\n[audience]\nfile = \"customers.csv\"\n",
    );
    w.write("customers.csv", "name,email\nAnna,anna@example.de\n");
    w.notice_file(
        "a.md",
        "Only on the status page",
        "thread = \"t1\"\nseverity = \"major\"",
        "a",
    );
    w.write(
        "b.md",
        "+++\ntitle = \"Only in the outbox\"\nchannels = [\"files\"]\naudience = \"customers.csv\"\n+++\nb\n",
    );
    w.send_ok("a.md");
    w.send_ok("b.md");
    // Deleting the site loses nothing: the next announcement rebuilds it completely.
    std::fs::remove_dir_all(w.path("public")).unwrap();
    w.notice_file("c.md", "Second incident", "thread = \"t2\"\nseverity = \"minor\"", "c");
    w.send_ok("c.md");
    let index = w.read("public/status/index.html");
    assert!(index.contains("Only on the status page") && index.contains("Second incident"));
    assert!(!index.contains("Only in the outbox"));
    let feed = w.read("public/status/feed.atom");
    assert_eq!(feed.matches("<entry>").count(), 2);
}

#[test]
fn publish_command_runs_with_the_folder_and_its_failure_fails_the_delivery() {
    // A folder name with a space and a quote: {dir} must be shell-quoted.
    let w = status_page(
        "",
        "publish_command = \"test -f {dir}/index.html && test -f {dir}/feed.atom && touch {dir}/../published\"\n",
    )
    .build();
    w.config_replace("dir = \"public/status\"", "dir = \"public/it's status\"");
    w.notice_file("a.md", "Outage", "thread = \"t\"\nseverity = \"major\"", "x");
    let report = w.send_ok("a.md");
    let d = &deliveries_of(&report, "status")[0];
    assert_eq!(d["route"], "dir + publish_command");
    assert!(
        w.path("public/published").exists(),
        "the command ran on the written folder"
    );

    // Without {dir} the folder is the last argument.
    let w = status_page(
        "",
        r#"publish_command = '''sh -c 'test -f "$1/index.html" && touch "$1/../published-arg"' publish'''"#,
    )
    .build();
    w.notice_file("a.md", "Outage", "thread = \"t\"\nseverity = \"major\"", "x");
    w.send_ok("a.md");
    assert!(w.path("public/published-arg").exists());

    let w = status_page(
        "",
        "publish_command = \"echo uploading; echo 'rsync: connection unexpectedly closed (0 bytes received)' >&2; exit 12\"\n",
    ).build();
    w.notice_file("a.md", "Outage", "thread = \"t\"\nseverity = \"major\"", "x");
    let r = w.run(&["send", "a.md", "--yes", "--json"]);
    r.code(3);
    let d = &deliveries_of(&r.json(), "status")[0];
    assert_eq!(d["status"], "failed", "{d}");
    let err = d["error"].as_str().unwrap();
    assert!(
        err.contains("publish_command failed (exit status 12)")
            && err.contains("rsync: connection unexpectedly closed"),
        "{err}"
    );
    assert_eq!(d["attempts"], 1);
    // The report command shows the same.
    let rep = w.run(&["report", "latest", "--format", "json"]);
    rep.code(0);
    assert!(rep.stdout().contains("rsync: connection unexpectedly closed"));
}

#[test]
fn a_broken_status_page_template_stops_the_run_before_anything_is_written() {
    let w = status_page("templates_dir = \"templates\"", "").build();
    w.write(
        "templates/statuspage.incident.html.hbs",
        "<html><body>{{thread.title}} {{thread.no_such_field}}</body></html>",
    );
    w.notice_file("a.md", "Outage", "thread = \"t\"\nseverity = \"major\"", "x");
    let r = w.run(&["send", "a.md", "--yes"]);
    r.code(2).stderr_has("statuspage.incident.html.hbs");
    assert!(!w.path("public/status").exists());
}

#[test]
fn a_users_status_page_translation_is_used_for_the_org_locale_only() {
    // `statuspage.index.html.de.hbs` is the German index; the site speaks `[org] locale`.
    for (locale, own) in [("de", true), ("en", false)] {
        let w = status_page_with("templates_dir = \"templates\"", &format!("locale = \"{locale}\""), "").build();
        w.write(
            "templates/statuspage.index.html.de.hbs",
            "<!doctype html><html lang=\"de\"><body><h1>Eigene Startseite</h1></body></html>",
        );
        w.notice_file("a.md", "Website gestört", "thread = \"t\"\nseverity = \"major\"", "x");
        w.send_ok("a.md");
        let index = std::fs::read_to_string(w.path("public/status/index.html")).unwrap();
        assert_eq!(index.contains("Eigene Startseite"), own, "locale {locale}:\n{index}");
    }
}

#[test]
fn base_url_makes_feed_links_absolute() {
    let w = status_page(
        "",
        "base_url = \"https://status.example.de/\"\ntitle = \"Betriebsstatus\"\n",
    )
    .build();
    w.notice_file(
        "a.md",
        "Outage & <more>",
        "thread = \"t\"\nseverity = \"critical\"",
        "x",
    );
    w.send_ok("a.md");
    let feed = w.read("public/status/feed.atom");
    assert!(feed.contains("<id>https://status.example.de/feed.atom</id>"), "{feed}");
    assert!(feed.contains("rel=\"self\" type=\"application/atom+xml\" href=\"https://status.example.de/feed.atom\""));
    assert!(feed.contains("href=\"https://status.example.de/incident-t.html#u-"));
    assert!(feed.contains("<title>Outage &amp; &lt;more&gt;</title>"));
    assert!(feed.contains("<title>Betriebsstatus – Sarah Kastner Fotografie</title>"));
    let index = w.read("public/status/index.html");
    assert!(index.contains("<h1>Betriebsstatus</h1>"));
    assert!(index.contains("Outage &amp; &lt;more&gt;"));
    let j = api(&w);
    assert_eq!(j["summary"]["page"]["url"], "https://status.example.de/");
    assert_eq!(j["summary"]["status"]["indicator"], "critical");
    assert_eq!(
        j["incidents"]["incidents"][0]["shortlink"],
        "https://status.example.de/incident-t.html"
    );
}

/// The emergency website's own pages: two with `order`, one without (linked last).
const PAGES: &[(&str, &str)] = &[
    (
        "status-pages/faq.md",
        "+++\ntitle = \"Fragen & Antworten\"\norder = 2\n+++\n## Shootings\n\n- Preise ab 89 €\n- Termine nach Absprache\n\n\
         [Terminkalender](https://termine.example.de)\n",
    ),
    (
        "status-pages/preise.md",
        "+++\ntitle = \"Preise\"\norder = 1\n+++\nPortrait: 89 €\n",
    ),
    (
        "status-pages/anfahrt.md",
        "+++\ntitle = \"Anfahrt\"\n+++\nU-Bahn Musterstraße\n",
    ),
];

fn with_pages(locale: &str) -> std::sync::Arc<support::Workspace> {
    let org = format!("locale = \"{locale}\"\naddress = \"Musterstr. 1, 10115 Berlin\"\nhours = \"Mo-Fr 9-18 Uhr\"");
    let s = status_page_with("", &org, "pages_dir = \"status-pages\"\n");
    PAGES.iter().fold(s, |s, (rel, text)| s.file(rel, text)).build()
}

#[test]
fn the_site_speaks_the_org_locale_with_contact_and_pages_on_every_page() {
    // (locale, the index's heading, a label of the contact block, a date's shape: 9 for a digit)
    let cases = [
        ("de", "Aktuelle Störungen", "Telefon:", "99.99.9999 99:99"),
        ("en", "Current incidents", "Phone:", "9 Mmm 9999 99:99"),
    ];
    for (locale, heading, phone_label, date) in cases {
        let w = with_pages(locale);
        w.notice_file(
            "n.md",
            "Website gestört",
            "thread = \"outage\"\nseverity = \"major\"",
            "Bitte anrufen.",
        );
        w.send_ok("n.md");
        let index = w.read("public/status/index.html");
        assert!(index.contains(&format!(">{heading}</h2>")), "{locale}: {index}");
        let shown = &index[..pos(&index, " IST</time>")];
        let shown = &shown[shown.rfind('>').unwrap() + 1..];
        let shape: String = shown
            .chars()
            .map(|c| match c {
                '0'..='9' => '9',
                'A'..='Z' => 'M',
                'a'..='z' => 'm',
                c => c,
            })
            .collect();
        assert_eq!(
            shape.trim_start_matches('9'),
            date.trim_start_matches('9'),
            "{locale}: {shown}"
        );
        let (other, other_heading) = if locale == "de" {
            ("Current incidents", "Größere Störung")
        } else {
            ("Aktuelle Störungen", "Major disruption")
        };
        assert!(!index.contains(other), "{locale}: one language only");
        assert!(index.contains(other_heading), "{locale}: the severity label");
        for file in [
            "index.html",
            "incident-outage.html",
            "faq.html",
            "preise.html",
            "anfahrt.html",
        ] {
            let html = w.read(&format!("public/status/{file}"));
            let at = format!("{locale} {file}");
            assert!(
                html.starts_with(&format!("<!doctype html>\n<html lang=\"{locale}\">")),
                "{at}"
            );
            // The contact block: tel: with the E.164 digits, the number as written.
            assert!(
                html.contains("<a href=\"tel:+49301234567\">+49 30 1234567</a>"),
                "{at}: {html}"
            );
            assert!(html.contains("<a href=\"mailto:termine@example.de\">"), "{at}");
            assert!(
                html.contains(phone_label) && html.contains("Musterstr. 1, 10115 Berlin"),
                "{at}"
            );
            assert!(html.contains("Mo-Fr 9-18 Uhr"), "{at}");
            // Every page links the index and the pages, in `order`, then the one without.
            let links: Vec<usize> = ["index.html", "preise.html", "faq.html", "anfahrt.html"]
                .iter()
                .map(|f| pos(&html, &format!("<li><a href=\"{f}\"")))
                .collect();
            assert!(links.windows(2).all(|p| p[0] < p[1]), "{at}: nav order {links:?}");
            assert!(
                html.contains(&format!("<a href=\"{file}\" aria-current=\"page\">")) || file.starts_with("incident-"),
                "{at}"
            );
            assert!(!html.to_lowercase().contains("<script"), "{at}: no JavaScript");
        }
        let faq = w.read("public/status/faq.html");
        assert!(faq.contains("<h1>Fragen &amp; Antworten</h1>"), "{faq}");
        assert!(
            faq.contains("<h2>Shootings</h2>") && faq.contains("<li>Preise ab 89 €</li>"),
            "{faq}"
        );
        assert!(
            faq.contains("<a href=\"https://termine.example.de\">Terminkalender</a>"),
            "{faq}"
        );
    }
}

#[test]
fn bad_pages_stop_the_run_at_file_line_column_before_anything_is_published() {
    let cases = [
        (
            "status-pages/faq.md",
            "+++\ntitle = \"FAQ\"\nsevrity = \"major\"\n+++\nx\n",
            "faq.md:3:1: invalid front matter",
        ),
        (
            "status-pages/preise.md",
            "+++\ntitle = \"Preise\"\norder = \"first\"\n+++\nx\n",
            "preise.md:3:",
        ),
        ("status-pages/kein.md", "title = \"FAQ\"\n", "kein.md:1:1: "),
        (
            "status-pages/index.md",
            "+++\ntitle = \"Start\"\n+++\nx\n",
            "index.html, which the status page writes",
        ),
    ];
    for (rel, text, message) in cases {
        let w = status_page("", "pages_dir = \"status-pages\"\n")
            .file(rel, text)
            .build();
        w.notice_file("n.md", "Outage", "thread = \"t\"\nseverity = \"major\"", "x");
        w.run(&["send", "n.md", "--yes"]).code(2).stderr_has(message);
        assert!(!w.path("public/status").exists(), "{rel}: nothing published");
        // `check` finds it too, without sending.
        let check = w.run(&["check"]);
        check.code(1);
        assert!(check.stdout().contains(message), "{}", check.describe());
    }
}

/// `[(path under api/v2, parsed JSON)]` of a site.
fn api(w: &support::Workspace) -> std::collections::BTreeMap<&'static str, Value> {
    ["status", "summary", "incidents"]
        .into_iter()
        .map(|f| {
            let text = w.read(&format!("public/status/api/v2/{f}.json"));
            (
                f,
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{f}.json: {e}\n{text}")),
            )
        })
        .collect()
}

#[test]
fn the_json_api_has_the_statuspage_shape() {
    let w = status_page("", "").build();
    let sends = [
        (
            "a.md",
            "Website down",
            "outage",
            "critical",
            "Der Hoster wurde gehackt.",
        ),
        ("b.md", "Telefon gestört", "phone", "major", "Bitte per E-Mail."),
        ("c.md", "E-Mail läuft wieder", "outage", "info", "Website noch offline."),
        (
            "d.md",
            "Alles wieder gut",
            "outage",
            "resolved",
            "Website und E-Mail laufen.",
        ),
        ("e.md", "Telefon teilweise zurück", "phone", "minor", "Festnetz geht."),
    ];
    for (file, title, thread, severity, body) in sends {
        w.notice_file(
            file,
            title,
            &format!("thread = \"{thread}\"\nseverity = \"{severity}\""),
            body,
        );
        w.send_ok(file);
    }
    let j = api(&w);
    let page = &j["status"]["page"];
    assert_eq!(page["name"], "Current status – Sarah Kastner Fotografie");
    assert_eq!(page["url"], "../../index.html", "relative to api/v2/ without base_url");
    assert_eq!(page["time_zone"], "Asia/Kolkata");
    assert!(page["updated_at"].as_str().unwrap().ends_with("+05:30"), "{page}");
    let id = page["id"].as_str().unwrap();
    assert!(id.len() == 12 && id.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
    // The indicator is the open incidents' current severity: the phone one went down to minor.
    let status = serde_json::json!({"indicator": "minor", "description": "Minor Service Outage"});
    for f in ["status", "summary", "incidents"] {
        assert_eq!(j[f]["page"], *page, "{f}");
    }
    assert_eq!(j["status"]["status"], status);
    assert_eq!(j["summary"]["status"], status);

    let incidents = j["incidents"]["incidents"].as_array().unwrap();
    let names: Vec<&str> = incidents.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Telefon gestört", "Website down"], "newest first");
    let (phone, outage) = (&incidents[0], &incidents[1]);
    assert_eq!(
        (outage["status"].as_str(), outage["impact"].as_str()),
        (Some("resolved"), Some("critical")),
        "{outage}"
    );
    let updates = outage["incident_updates"].as_array().unwrap();
    let statuses: Vec<&str> = updates.iter().map(|u| u["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["resolved", "investigating", "investigating"], "newest first");
    let bodies: Vec<&str> = updates.iter().map(|u| u["body"].as_str().unwrap()).collect();
    assert_eq!(
        bodies,
        [
            "Alles wieder gut\n\nWebsite und E-Mail laufen.",
            "E-Mail läuft wieder\n\nWebsite noch offline.",
            "Der Hoster wurde gehackt."
        ]
    );
    assert_eq!(outage["resolved_at"], updates[0]["created_at"]);
    assert_eq!(outage["created_at"], updates[2]["created_at"]);
    assert_eq!(outage["shortlink"], "../../incident-outage.html");
    for u in updates {
        assert_eq!(u["incident_id"], outage["id"]);
        assert!(u["created_at"].as_str().unwrap().ends_with("+05:30"), "{u}");
    }
    // Impact is the worst over the updates; open means investigating and no resolved_at.
    assert_eq!(
        (
            phone["status"].as_str(),
            phone["impact"].as_str(),
            &phone["resolved_at"]
        ),
        (Some("investigating"), Some("major"), &Value::Null),
        "{phone}"
    );
    let summary = &j["summary"];
    assert_eq!(
        summary["incidents"].as_array().unwrap(),
        std::slice::from_ref(phone),
        "only the unresolved"
    );
    assert_eq!(summary["components"], serde_json::json!([]));
    assert_eq!(summary["scheduled_maintenances"], serde_json::json!([]));
}
