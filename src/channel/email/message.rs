//! Building one personalised email (used by the email channel and by the outbox's `.eml`).

use std::time::SystemTime;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{Address, Message};

use super::body::text_body;
use crate::channel::Rendered;

/// Everything that varies between the messages of one channel.
pub struct Envelope<'a> {
    pub from: &'a Mailbox,
    pub reply_to: Option<&'a Mailbox>,
    pub to_address: &'a str,
    pub to_name: &'a str,
    /// Without angle brackets.
    pub message_id: &'a str,
    /// Message-ID (without brackets) of the first message of the thread to this recipient.
    pub thread_root: Option<&'a str>,
    pub list_unsubscribe: Option<&'a str>,
    pub date: SystemTime,
}

const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");

/// `List-Unsubscribe` wants each URI in angle brackets; accept the config with or without.
fn unsubscribe_value(v: &str) -> String {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.starts_with('<') {
                s.to_string()
            } else {
                format!("<{s}>")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const MAX_DISPLAY_NAME: usize = 200;

/// A multipart/alternative message (text + HTML), or text only when there is no HTML.
pub fn build(env: &Envelope<'_>, msg: &Rendered) -> Result<Message, String> {
    let to_addr: Address = env
        .to_address
        .parse()
        .map_err(|e| format!("invalid recipient address {:?}: {e}", env.to_address))?;
    // Given, not derived: lettre would parse the From and To headers it has just written.
    let envelope = lettre::address::Envelope::new(Some(env.from.email.clone()), vec![to_addr.clone()])
        .map_err(|e| format!("cannot build the envelope: {e}"))?;
    // A display name is decoration: an absurdly long one (a CSV cell gone wrong) would make a
    // header line over RFC 5322's 998 characters, which relays refuse. Drop it instead.
    let name = env.to_name.trim();
    let to_name = (!name.is_empty() && name.chars().count() <= MAX_DISPLAY_NAME).then(|| name.to_string());
    let mut b = Message::builder()
        .envelope(envelope)
        .from(env.from.clone())
        .to(Mailbox::new(to_name, to_addr))
        .subject(msg.subject.clone().unwrap_or_default())
        .date(env.date)
        .message_id(Some(format!("<{}>", env.message_id)))
        .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into()));
    if let Some(r) = env.reply_to {
        b = b.reply_to(r.clone());
    }
    if let Some(root) = env.thread_root {
        b = b.in_reply_to(format!("<{root}>")).references(format!("<{root}>"));
    }
    if let Some(u) = env.list_unsubscribe {
        let value = unsubscribe_value(u);
        b = b.raw_header(HeaderValue::new(LIST_UNSUBSCRIBE, value.clone()));
        // RFC 8058 one-click needs an https URI.
        if value.contains("<https://") {
            b = b.raw_header(HeaderValue::new(
                LIST_UNSUBSCRIBE_POST,
                "List-Unsubscribe=One-Click".into(),
            ));
        }
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(text_body(&msg.text));
    let built = match &msg.html {
        Some(html) => b.multipart(
            MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(text_body(html)),
            ),
        ),
        None => b.singlepart(text),
    };
    built.map_err(|e| format!("cannot build the message: {e}"))
}

/// Subject, text and inlined HTML from the email templates.
pub fn render(
    templates: &crate::render::Templates,
    ctx: &crate::render::Context,
    html_template: &str,
    css: &crate::render::inline::CssCache,
    text: &crate::render::skeleton::Skeletons,
) -> Result<Rendered, String> {
    let subject = text.render(templates, "email.subject.hbs", ctx)?;
    let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.render(templates, "email.txt.hbs", ctx)?;
    let html = css.render(templates, html_template, ctx)?;
    let stats = vec![
        crate::channel::Stat::limited("subject characters", subject.chars().count(), 78),
        crate::channel::Stat::new("text characters", text.chars().count()),
        crate::channel::Stat::new("HTML bytes", html.len()),
    ];
    Ok(Rendered {
        subject: Some(subject),
        text,
        html: Some(html),
        weight: 1,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_for_bulk_notification() {
        let from: Mailbox = "Studio <info@studio.example>".parse().unwrap();
        let env = Envelope {
            from: &from,
            reply_to: None,
            to_address: "anna@example.de",
            to_name: "Anna Müller",
            message_id: "r1.7@studio.example",
            thread_root: Some("r0.7@studio.example"),
            list_unsubscribe: Some("https://studio.example/u/1, mailto:optout@studio.example"),
            date: SystemTime::now(),
        };
        let msg = Rendered {
            subject: Some("Störung".into()),
            text: "t".into(),
            html: Some("<p>h</p>".into()),
            ..Default::default()
        };
        // Unfold header continuation lines (RFC 5322 folding) before looking.
        let raw = String::from_utf8(build(&env, &msg).unwrap().formatted())
            .unwrap()
            .replace("\r\n ", " ");
        for needle in [
            "Message-ID: <r1.7@studio.example>",
            "In-Reply-To: <r0.7@studio.example>",
            "References: <r0.7@studio.example>",
            "Auto-Submitted: auto-generated",
            "List-Unsubscribe: <https://studio.example/u/1>, <mailto:optout@studio.example>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Subject: =?utf-8?",
            "multipart/alternative",
        ] {
            assert!(raw.contains(needle), "missing {needle:?} in\n{raw}");
        }
    }

    #[test]
    fn one_click_only_for_https() {
        let from: Mailbox = "a@b.example".parse().unwrap();
        let env = Envelope {
            from: &from,
            reply_to: None,
            to_address: "c@d.example",
            to_name: "",
            message_id: "x@b.example",
            thread_root: None,
            list_unsubscribe: Some("mailto:u@b.example"),
            date: SystemTime::now(),
        };
        let raw = String::from_utf8(build(&env, &Rendered::default()).unwrap().formatted()).unwrap();
        assert!(raw.contains("List-Unsubscribe: <mailto:u@b.example>"));
        assert!(!raw.contains("List-Unsubscribe-Post"));
    }
}
