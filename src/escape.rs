//! Escaping a value for the place it is written to: the inside of a JSON string, XML, HTML,
//! Slack mrkdwn, a `sh` command line. One module so that every output format escapes the same
//! way and a fix lands everywhere; it depends on nothing of ours.

/// The inside of a JSON string literal (the template supplies the quotes).
pub fn json_str(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// HTML text and attribute values (the same escaping handlebars applies in `.html.hbs`).
pub fn html(s: &str) -> String {
    handlebars::html_escape(s)
}

/// XML 1.0 text and attribute values. Characters XML does not allow at all are dropped: a feed
/// with one of them is rejected whole by readers.
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            '\u{FFFE}' | '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Slack mrkdwn: only `&`, `<` and `>` are control characters ("Formatting text for app
/// surfaces"); quotes stay as they are.
pub fn slack_mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Quote for `sh`: single quotes, with embedded ones as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each function's exact output (the tests of the copies this module replaces).
    #[test]
    fn each_escape_writes_exactly_this() {
        type Escape = fn(&str) -> String;
        let cases: [(Escape, &str, &str); 7] = [
            (json_str, "a \"q\" \\ \n\u{1}é", "a \\\"q\\\" \\\\ \\n\\u0001é"),
            (json_str, "", ""),
            (
                html,
                "a & <b> \"q\" 'x' `y` =z",
                "a &amp; &lt;b&gt; &quot;q&quot; &#x27;x&#x27; &#x60;y&#x60; &#x3D;z",
            ),
            // XML drops what XML 1.0 does not allow at all.
            (xml, "a<b & \"c\"\u{1}", "a&lt;b &amp; &quot;c&quot;"),
            (xml, "'\t\n\r\u{FFFE}\u{FFFF}>", "&apos;\t\n\r&gt;"),
            // mrkdwn: only its control characters; `&` first, so an entity is escaped once.
            (slack_mrkdwn, "<down> & \"out\" 'x'", "&lt;down&gt; &amp; \"out\" 'x'"),
            (slack_mrkdwn, "&lt;", "&amp;lt;"),
        ];
        for (escape, input, want) in cases {
            assert_eq!(escape(input), want, "{input:?}");
        }
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
