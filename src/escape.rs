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

    #[test]
    fn json_str_escapes_without_the_quotes() {
        assert_eq!(json_str("a \"q\" \\ \n\u{1}é"), "a \\\"q\\\" \\\\ \\n\\u0001é");
        assert_eq!(json_str(""), "");
    }

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html("a & <b> \"q\" 'x' `y` =z"),
            "a &amp; &lt;b&gt; &quot;q&quot; &#x27;x&#x27; &#x60;y&#x60; &#x3D;z"
        );
    }

    #[test]
    fn escapes_and_drops_invalid_xml_chars() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(xml("'\t\n\r\u{FFFE}\u{FFFF}>"), "&apos;\t\n\r&gt;");
    }

    #[test]
    fn slack_mrkdwn_escapes_only_its_control_characters() {
        assert_eq!(slack_mrkdwn("<down> & \"out\" 'x'"), "&lt;down&gt; &amp; \"out\" 'x'");
        // `&` first, so an entity already in the text is escaped once, not twice.
        assert_eq!(slack_mrkdwn("&lt;"), "&amp;lt;");
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }
}
