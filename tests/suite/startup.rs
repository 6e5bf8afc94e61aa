//! What start-up leaves for later (issue 19) must not move an error past the first message:
//! the built-in templates are compiled when first used, the user's when loading, so a broken
//! template stops `send` and `preview` even when only the last person would get it.

use crate::support::Scenario;
use crate::support::scenario::{NOTICE, SEND};

/// Two people with an email address, then one with only a phone: the outbox renders the SMS
/// text for that one alone, and the English text for Felix alone.
const PEOPLE: &str = "name,email,phone,locale\nAnna,anna@example.de,,de\nFelix,felix@example.org,,en\n\
                      Paul,,+49 151 12345678,de\n";

#[test]
fn a_broken_template_only_one_person_gets_stops_send_and_preview_before_anything_is_sent() {
    let broken = [
        (
            "templates/sms.txt.hbs",
            "Hallo\n{{#if title}}{{title}}\n",
            "templates/sms.txt.hbs:3:1:",
        ),
        (
            "templates/email.txt.en.hbs",
            "Hello {{recipient.name}}\n\n{{title}} {{/each}}\n",
            "templates/email.txt.en.hbs:3:13:",
        ),
    ];
    for (file, text, place) in broken {
        let w = Scenario::new()
            .top("templates_dir = \"templates\"")
            .org("name = \"Studio\"\nlocale = \"de\"")
            .audience(PEOPLE)
            .channel("[channels.out]\ntype = \"outbox\"")
            .notice("", "Text")
            .file(file, text)
            .build();
        for args in [SEND, &["preview", NOTICE]] {
            w.run(args)
                .code(2)
                .stderr_has(place)
                .stderr_has("template syntax error");
        }
        w.assert_nothing_sent();
    }
}
