//! Per-person languages (issue 18): built-in templates in German and English, `NAME.LANG.hbs`
//! in templates_dir, `notice.LANG.md` translations, dates in each language, the plan's counts.
//! Email goes to the real SMTP test server (tests/support/smtp_server.py).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::scenario::{SEND, send_with};
use crate::support::smtp::Server;
use crate::support::{Scenario, Workspace};

/// German (the organisation's language), English by region tag, no locale, and one announce
/// has no built-ins for.
const PEOPLE: &str = "name,email,locale\nAnna,anna@example.de,de\nFelix,felix@example.org,EN-gb\n\
                      Zoe,zoe@example.de,\nPierre,pierre@example.fr,fr\n";

/// The people of PEOPLE who get German.
const ORG_LANGUAGE: [&str; 3] = ["anna@example.de", "zoe@example.de", "pierre@example.fr"];

const ENGLISH: &str = "+++\ntitle = \"Website down\"\nsummary = \"Calls only\"\n+++\nAll appointments take place.\n";

fn scenario() -> Scenario {
    Scenario::new()
        .org("name = \"Studio\"\nlocale = \"de\"")
        .audience(PEOPLE)
        .title("Website gestört")
        .notice("summary = \"Nur telefonisch\"", "Alle Termine finden statt.")
}

/// `[channels.email]` to a plain SMTP server.
fn email_to(server: &Server) -> String {
    format!(
        "[channels.email]\ntype = \"email\"\nfrom = \"Studio <info@studio.example>\"\n\
         [[channels.email.relays]]\nname = \"local\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        server.port
    )
}

/// Send through a fresh SMTP server; each recipient's parsed message.
fn send_by_email(w: &Workspace) -> BTreeMap<String, Value> {
    let server = Server::smtp(&w.path("box"), &["--mode", "plain"]);
    w.channels(&email_to(&server));
    w.run(SEND).code(0);
    let messages = server.messages();
    assert_eq!(messages.len(), 4, "{}", server.log());
    messages
        .into_iter()
        .map(|m| (m["rcpt_tos"][0].as_str().unwrap().to_string(), m["parsed"].clone()))
        .collect()
}

fn text(m: &Value) -> &str {
    m["text"].as_str().unwrap_or_default()
}

#[test]
fn each_person_gets_the_built_in_email_and_translation_of_their_language() {
    let w = scenario()
        .file("notices/n.en.md", ENGLISH)
        // One user template for everyone (no translation of it): dates in each language.
        .top("templates_dir = \"templates\"")
        .file("templates/email.subject.hbs", "{{title}} ({{date}})")
        .build();
    let by = send_by_email(&w);
    let dated = |subject: &Value, title: &str, format: &str| {
        let s = subject.as_str().unwrap_or_default();
        let date = s
            .strip_prefix(title)
            .and_then(|d| d.strip_prefix(" (")?.strip_suffix(')'));
        date.is_some_and(|d| jiff::civil::DateTime::strptime(format, d).is_ok())
    };

    let english = (
        "Website down",
        "%d %b %Y %H:%M",
        "Hello ",
        ["Calls only", "All appointments take place."],
        "Alle Termine",
    );
    // German people, people without a locale and those of a language without anything of its
    // own get the organisation's language and the main file.
    let german = (
        "Website gestört",
        "%d.%m.%Y %H:%M",
        "Hallo ",
        ["Nur telefonisch", "Alle Termine finden statt."],
        "All appointments",
    );
    let expected = std::iter::once(("felix@example.org", english)).chain(ORG_LANGUAGE.map(|w| (w, german)));
    for (who, (title, format, greeting, says, not)) in expected {
        let m = &by[who];
        assert!(dated(&m["subject"], title, format), "{who}: {}", m["subject"]);
        let t = text(m);
        assert!(
            t.starts_with(greeting) && says.iter().all(|s| t.contains(s)) && !t.contains(not),
            "{who}: {t}"
        );
    }
    assert!(
        by["felix@example.org"]["html"]
            .as_str()
            .unwrap()
            .contains("<p>Hello Felix,</p>")
    );
    assert!(
        by["anna@example.de"]["html"]
            .as_str()
            .unwrap()
            .contains("<p>Hallo Anna,</p>")
    );
}

#[test]
fn a_users_translation_of_a_template_is_for_its_language_only() {
    let w = scenario()
        .top("templates_dir = \"templates\"")
        .file("templates/email.txt.en.hbs", "EN {{recipient.name}}: {{title}}\n")
        .build();
    let by = send_by_email(&w);
    assert_eq!(text(&by["felix@example.org"]).trim_end(), "EN Felix: Website gestört");
    let preview = w.run(&["preview", "notices/n.md"]);
    assert!(
        preview
            .stdout()
            .contains("email.txt.en.hbs is email.txt.hbs for people of language en)"),
        "{}",
        preview.describe()
    );
    for who in ORG_LANGUAGE {
        assert!(text(&by[who]).starts_with("Hallo "), "{who}: {}", text(&by[who]));
    }
}

#[test]
fn a_translation_may_only_say_what_is_said_in_a_language() {
    let w = scenario()
        .channel("[channels.out]\ntype = \"outbox\"")
        .file(
            "notices/n.en.md",
            "+++\ntitle = \"Website down\"\nseverity = \"major\"\n+++\nText\n",
        )
        .build();
    w.run(SEND)
        .code(2)
        .stderr_has("notices/n.en.md:3:1")
        .stderr_has("severity");
    w.assert_nothing_sent();
}

#[test]
fn editing_a_translation_is_a_change_and_the_plan_counts_languages() {
    let w = scenario()
        .channel("[channels.out]\ntype = \"outbox\"")
        .file("notices/n.en.md", ENGLISH)
        .build();
    let preview = w.run(&["preview", "notices/n.md"]);
    preview.code(0);
    assert!(
        preview.stdout().contains("languages: de 3, en 1"),
        "{}",
        preview.describe()
    );
    let first = w.run(&["send", "notices/n.md", "--yes"]);
    first.code(0);
    assert!(first.stderr().contains("languages: de 3, en 1") || first.stdout().contains("languages: de 3, en 1"));
    // Unchanged: the same announcement again is refused.
    w.run(SEND).code(2).stderr_has("already sent");
    w.write("notices/n.en.md", &ENGLISH.replace("take place", "will take place"));
    let again = w.run(&send_with(&[]));
    again.code(0);
    assert_eq!(again.deliveries().len(), 4, "{}", again.describe());
}
