//! Announcement and command-line input that must be refused before anything is sent: links
//! that are not absolute http(s) URLs, oversized bodies, `--channel` of a disabled channel.

use crate::support;

use support::Scenario;

/// Two outbox channels, one of them disabled, and a three-person audience.
fn two_outboxes() -> Scenario {
    Scenario::new().audience(&support::people(3)).channel(
        "[channels.letters]\ntype = \"outbox\"\ndir = \"outbox\"\n\n\
             [channels.archive]\ntype = \"outbox\"\nenabled = false\ndir = \"archive\"\n",
    )
}

#[test]
fn links_that_are_not_absolute_http_urls_are_refused_with_their_position() {
    let w = two_outboxes().build();
    for link in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "status.html",
    ] {
        w.notice_file(
            "n.md",
            "Störung",
            &format!("link = {}", serde_json::to_string(link).unwrap()),
            "Text",
        );
        let r = w.run(&["send", "n.md", "--yes"]);
        r.code(2)
            .stderr_has("n.md:3:8: front matter: `link` must be an absolute http or https URL");
        w.assert_nothing_sent();
    }
    w.notice_file("n.md", "Störung", "link = \"https://status.example.de\"", "Text");
    w.run(&["send", "n.md", "--yes"]).code(0);
    assert_eq!(w.outbox().len(), 3);
}

#[test]
fn a_body_over_one_mib_is_refused() {
    let w = two_outboxes().build();
    w.notice_file("n.md", "Störung", "", &"Zeile mit Text.\n".repeat(66_000));
    let r = w.run(&["send", "n.md", "--yes"]);
    r.code(2)
        .stderr_has("n.md:4:1: the announcement body has")
        .stderr_has("1 MiB");
    w.assert_nothing_sent();
    // Far beyond: refused without reading it all.
    w.write("n.md", &format!("+++\ntitle = \"x\"\n+++\n{}", "x".repeat(3 << 20)));
    w.run(&["send", "n.md", "--yes"])
        .code(2)
        .stderr_has("the announcement is larger than");
    w.assert_nothing_sent();
}

#[test]
fn channel_option_refuses_a_disabled_channel_and_a_type_selects_only_enabled_ones() {
    let w = two_outboxes().build();
    w.notice_file("n.md", "Störung", "", "Text");
    let r = w.run(&["send", "n.md", "--channel", "archive", "--yes"]);
    r.code(2)
        .stderr_has("--channel archive: channel archive is disabled in ")
        .stderr_has("channels.toml:12 (`enabled = false`)");
    w.assert_nothing_sent();
    // The type name: every enabled channel of that type, the disabled one left out.
    w.run(&["send", "n.md", "--channel", "outbox", "--yes"]).code(0);
    assert_eq!(w.outbox().len(), 3);
    assert!(w.files("archive").is_empty());
}
