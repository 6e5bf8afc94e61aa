//! Markdown -> HTML (email, status page) and -> plain text (SMS, social posts).
//!
//! Raw HTML in the Markdown is dropped, never passed through: announcements are pasted from
//! anywhere on a bad day, and an HTML email is no place for someone's stray `<script>`.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};

fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS
}

/// Link targets that could run code in a mail client or browser are neutralised.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim_start().to_ascii_lowercase();
    if ["javascript:", "vbscript:", "data:", "file:"]
        .iter()
        .any(|s| lower.starts_with(s))
    {
        CowStr::Borrowed("#")
    } else {
        url
    }
}

fn sanitized(markdown: &str) -> impl Iterator<Item = Event<'_>> {
    Parser::new_ext(markdown, options()).filter_map(|mut event| {
        match &mut event {
            Event::Html(_) | Event::InlineHtml(_) => return None,
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                *dest_url = safe_url(std::mem::replace(dest_url, CowStr::Borrowed("")));
            }
            _ => {}
        }
        Some(event)
    })
}

/// HTML fragment for the body.
pub fn to_html(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, sanitized(markdown));
    out
}

/// Plain text: paragraphs separated by a blank line, lists as "- item", links as
/// "text (url)" unless the text already is the url, emphasis dropped.
pub fn to_text(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    let mut link_stack: Vec<(String, usize)> = Vec::new();
    let mut list_stack: Vec<Option<u64>> = Vec::new();
    let block_break = |out: &mut String| {
        let trimmed = out.trim_end_matches([' ', '\n']).len();
        out.truncate(trimmed);
        if !out.is_empty() {
            out.push_str("\n\n");
        }
    };
    for event in sanitized(markdown) {
        match event {
            Event::Start(Tag::Paragraph) if list_stack.is_empty() => block_break(&mut out),
            Event::Start(Tag::Heading { .. }) | Event::Start(Tag::BlockQuote(_)) | Event::Start(Tag::CodeBlock(_)) => {
                block_break(&mut out)
            }
            Event::Start(Tag::List(start)) => {
                if list_stack.is_empty() {
                    block_break(&mut out);
                }
                list_stack.push(start);
            }
            Event::End(TagEnd::List(_)) => {
                list_stack.pop();
            }
            Event::Start(Tag::Item) => {
                let t = out.trim_end_matches(' ').len();
                out.truncate(t);
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str(&"  ".repeat(list_stack.len().saturating_sub(1)));
                match list_stack.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("- "),
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => link_stack.push((dest_url.to_string(), out.len())),
            Event::End(TagEnd::Link) => {
                if let Some((url, start)) = link_stack.pop() {
                    let text = out[start..].trim().to_string();
                    if !url.is_empty() && url != "#" && text != url && !url.ends_with(&text) {
                        out.push_str(&format!(" ({url})"));
                    }
                }
            }
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::Rule => {
                block_break(&mut out);
                out.push_str("---");
            }
            Event::TaskListMarker(done) => out.push_str(if done { "[x] " } else { "[ ] " }),
            _ => {}
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_never_passes_through() {
        let html = to_html("Hallo <script>alert(1)</script> **Welt**\n\n<div onclick=x>block</div>\n");
        assert!(!html.contains("<script") && !html.contains("<div"), "{html}");
        assert!(html.contains("<strong>Welt</strong>"), "{html}");
    }

    #[test]
    fn dangerous_links_are_neutralised() {
        let html = to_html(
            "[klick](javascript:alert(1)) [ok](https://example.de) ![bild](data:text/html,x) ![ok](https://example.de/a.png)",
        );
        assert!(!html.contains("javascript") && !html.contains("data:"), "{html}");
        assert!(html.contains("href=\"#\"") && html.contains("src=\"#\""), "{html}");
        assert!(html.contains("href=\"https://example.de\""), "{html}");
        assert!(html.contains("src=\"https://example.de/a.png\""), "{html}");
    }

    #[test]
    fn text_keeps_structure_and_links() {
        let text = to_text(
            "# Störung\n\nUnsere *Website* ist offline.\nMehr: [Status](https://status.example.de)\n\n- eins\n- zwei\n",
        );
        assert_eq!(
            text,
            "Störung\n\nUnsere Website ist offline. Mehr: Status (https://status.example.de)\n\n- eins\n- zwei"
        );
    }

    #[test]
    fn autolinks_are_not_doubled() {
        assert_eq!(to_text("<https://a.example>"), "https://a.example");
    }
}
