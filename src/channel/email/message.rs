//! Building one personalised email (used by the email channel and by the outbox's `.eml`).

use std::borrow::Cow;
use std::io::Write as _;
use std::time::SystemTime;

use lettre::message::header::{self, Header, HeaderName, HeaderValue, Headers};
use lettre::message::{Mailbox, Mailboxes, MultiPart, SinglePart, header::ContentType};
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

/// `value` with every run of control characters and line breaks (CR, LF, VT, FF, NEL, U+2028,
/// U+2029, any other Cc) replaced by one space: lettre panics on a line break in a display name
/// (its Display fails), and elsewhere one would start a new header line.
pub fn header_text(value: &str) -> Cow<'_, str> {
    let breaks = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !value.contains(breaks) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len());
    let mut in_run = false;
    for c in value.chars() {
        if breaks(c) {
            if !in_run {
                out.push(' ');
            }
            in_run = true;
        } else {
            out.push(c);
            in_run = false;
        }
    }
    Cow::Owned(out)
}

/// The mailbox with its display name made safe for a header (see [`header_text`]).
fn header_mailbox(m: &Mailbox) -> Mailbox {
    match m.name.as_deref().map(header_text) {
        Some(Cow::Owned(name)) => {
            Mailbox::new(Some(name.trim().to_string()).filter(|n| !n.is_empty()), m.email.clone())
        }
        _ => m.clone(),
    }
}

/// The recipient as the envelope's address and the `To` mailbox.
fn recipient(env: &Envelope<'_>) -> Result<(Address, Mailbox), String> {
    let to_addr: Address = env
        .to_address
        .parse()
        .map_err(|e| format!("invalid recipient address {:?}: {e}", env.to_address))?;
    // A display name is decoration: an absurdly long one (a CSV cell gone wrong) would make a
    // header line over RFC 5322's 998 characters, which relays refuse. Drop it instead.
    let name = header_text(env.to_name);
    let name = name.trim();
    let to_name = (!name.is_empty() && name.chars().count() <= MAX_DISPLAY_NAME).then(|| name.to_string());
    Ok((to_addr.clone(), Mailbox::new(to_name, to_addr)))
}

/// The SMTP envelope: given, not derived (lettre would parse the From and To headers).
fn smtp_envelope(env: &Envelope<'_>, to: Address) -> Result<lettre::address::Envelope, String> {
    lettre::address::Envelope::new(Some(env.from.email.clone()), vec![to])
        .map_err(|e| format!("cannot build the envelope: {e}"))
}

fn subject(msg: &Rendered) -> String {
    header_text(msg.subject.as_deref().unwrap_or_default())
        .trim()
        .to_string()
}

/// `List-Unsubscribe`, and `List-Unsubscribe-Post` when one-click applies.
fn unsubscribe_headers(u: &str) -> Vec<HeaderValue> {
    let value = unsubscribe_value(&header_text(u));
    // RFC 8058 one-click needs an https URI.
    let one_click = value.contains("<https://");
    let mut headers = vec![HeaderValue::new(LIST_UNSUBSCRIBE, value)];
    if one_click {
        headers.push(HeaderValue::new(
            LIST_UNSUBSCRIBE_POST,
            "List-Unsubscribe=One-Click".into(),
        ));
    }
    headers
}

/// The text part and the HTML part beside it; `Err`: the text part alone (no HTML).
fn body(msg: &Rendered) -> Result<MultiPart, SinglePart> {
    let (text, html) = parts(msg);
    match html {
        Some(html) => Ok(MultiPart::alternative().singlepart(text).singlepart(html)),
        None => Err(text),
    }
}

/// The text part, and the HTML part if there is one.
fn parts(msg: &Rendered) -> (SinglePart, Option<SinglePart>) {
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(text_body(&msg.text));
    let html = msg.html.as_ref().map(|html| {
        SinglePart::builder()
            .header(ContentType::TEXT_HTML)
            .body(text_body(html))
    });
    (text, html)
}

const CONTENT_TYPE: HeaderName = HeaderName::new_from_ascii_str("Content-Type");

/// [`body`] as lettre formats it, without lettre's `MultiPart`: its builder writes the MIME
/// type of a new boundary and parses it back, and its formatter parses it once more, for every
/// message. The boundary is made the way lettre makes one (40 random ASCII letters and digits)
/// and the header goes through lettre's own encoder, so the bytes are lettre's
/// (`tests::wire_bytes_are_lettres`).
fn formatted_body(msg: &Rendered) -> Vec<u8> {
    let (text, html) = parts(msg);
    let Some(html) = html else {
        return text.formatted();
    };
    let boundary: String = std::iter::repeat_with(fastrand::alphanumeric).take(40).collect();
    let mut headers = Headers::new();
    headers.insert_raw(HeaderValue::new(
        CONTENT_TYPE,
        format!("multipart/alternative; boundary=\"{boundary}\""),
    ));
    let parts = [text.formatted(), html.formatted()];
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum::<usize>() + 256);
    let _ = write!(out, "{headers}\r\n");
    for part in &parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

/// A multipart/alternative message (text + HTML), or text only when there is no HTML.
pub fn build(env: &Envelope<'_>, msg: &Rendered) -> Result<Message, String> {
    let (to_addr, to) = recipient(env)?;
    let mut b = Message::builder()
        .envelope(smtp_envelope(env, to_addr)?)
        .from(header_mailbox(env.from))
        .to(to)
        .subject(subject(msg))
        .date(env.date)
        .message_id(Some(format!("<{}>", env.message_id)))
        .raw_header(HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into()));
    if let Some(r) = env.reply_to {
        b = b.reply_to(header_mailbox(r));
    }
    if let Some(root) = env.thread_root {
        b = b.in_reply_to(format!("<{root}>")).references(format!("<{root}>"));
    }
    for h in env.list_unsubscribe.map(unsubscribe_headers).unwrap_or_default() {
        b = b.raw_header(h);
    }
    let built = match body(msg) {
        Ok(multi) => b.multipart(multi),
        Err(single) => b.singlepart(single),
    };
    built.map_err(|e| format!("cannot build the message: {e}"))
}

/// The header lines that are the same in every message of a channel, encoded once.
///
/// [`build`] makes a lettre `Message`, whose builder parses back the From and Date headers it
/// has just encoded, and whose formatter parses the MIME boundary again. [`Wire::format`]
/// writes the same bytes from the same lettre header types, with the channel's own headers
/// encoded once (`tests::wire_bytes_are_lettres`).
pub struct Wire {
    /// `From`.
    from: String,
    /// `Auto-Submitted`, `Reply-To`.
    middle: String,
    /// `List-Unsubscribe`, `List-Unsubscribe-Post`, `MIME-Version`.
    tail: String,
}

/// Header lines as lettre formats them.
fn lines(headers: impl IntoIterator<Item = HeaderValue>) -> String {
    let mut h = Headers::new();
    for v in headers {
        h.insert_raw(v);
    }
    h.to_string()
}

impl Wire {
    pub fn new(from: &Mailbox, reply_to: Option<&Mailbox>, list_unsubscribe: Option<&str>) -> Wire {
        let mut h = Headers::new();
        h.set(header::From::from(Mailboxes::from(header_mailbox(from))));
        let from = h.to_string();
        let mut middle = vec![HeaderValue::new(AUTO_SUBMITTED, "auto-generated".into())];
        if let Some(r) = reply_to {
            middle.push(header::ReplyTo::from(Mailboxes::from(header_mailbox(r))).display());
        }
        let mut tail = list_unsubscribe.map(unsubscribe_headers).unwrap_or_default();
        tail.push(header::MIME_VERSION_1_0.display());
        Wire {
            from,
            middle: lines(middle),
            tail: lines(tail),
        }
    }

    /// The SMTP envelope and the message as [`build`] would format it. `env`'s From, Reply-To
    /// and List-Unsubscribe are those given to [`Wire::new`].
    pub fn format(&self, env: &Envelope<'_>, msg: &Rendered) -> Result<(lettre::address::Envelope, Vec<u8>), String> {
        let (to_addr, to) = recipient(env)?;
        let envelope = smtp_envelope(env, to_addr)?;
        let mut h = Headers::with_capacity(4);
        h.set(header::To::from(Mailboxes::from(to)));
        h.set(header::Subject::from(subject(msg)));
        h.set(header::Date::new(env.date));
        h.set(header::MessageId::from(format!("<{}>", env.message_id)));
        let mut thread = Headers::with_capacity(2);
        if let Some(root) = env.thread_root {
            thread.set(header::InReplyTo::from(format!("<{root}>")));
            thread.set(header::References::from(format!("<{root}>")));
        }
        let body = formatted_body(msg);
        let mut out = Vec::with_capacity(self.from.len() + self.middle.len() + self.tail.len() + 512 + body.len());
        out.extend_from_slice(self.from.as_bytes());
        write!(out, "{h}").map_err(|e| e.to_string())?;
        out.extend_from_slice(self.middle.as_bytes());
        write!(out, "{thread}").map_err(|e| e.to_string())?;
        out.extend_from_slice(self.tail.as_bytes());
        out.extend_from_slice(&body);
        Ok((envelope, out))
    }
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
        media: Default::default(),
        language: None,
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A first message (no thread) from `from` to c@d.example, sent now.
    fn envelope(from: &Mailbox) -> Envelope<'_> {
        Envelope {
            from,
            reply_to: None,
            to_address: "c@d.example",
            to_name: "",
            message_id: "x@b.example",
            thread_root: None,
            list_unsubscribe: None,
            date: SystemTime::now(),
        }
    }

    #[test]
    fn headers_for_bulk_notification() {
        let from: Mailbox = "Studio <info@studio.example>".parse().unwrap();
        let env = Envelope {
            to_address: "anna@example.de",
            to_name: "Anna Müller",
            message_id: "r1.7@studio.example",
            thread_root: Some("r0.7@studio.example"),
            list_unsubscribe: Some("https://studio.example/u/1, mailto:optout@studio.example"),
            ..envelope(&from)
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

    /// The MIME boundary of a formatted message, if it has one.
    fn boundary(raw: &str) -> Option<&str> {
        let from = raw.find("boundary=\"")? + "boundary=\"".len();
        Some(&raw[from..from + raw[from..].find('"')?])
    }

    #[test]
    fn wire_bytes_are_lettres() {
        let plain: Mailbox = "a@b.example".parse().unwrap();
        let named = Mailbox::new(
            Some("Sarah Kästner \"Fotografie\"".into()),
            "info@studio.example".parse().unwrap(),
        );
        let long_name = "Ä".repeat(MAX_DISPLAY_NAME + 1);
        let html = Rendered {
            subject: Some("Störung: Website und E-Mail vorübergehend gestört, alle Termine finden statt".into()),
            text: "Hallo Anna Müller,\n\nalle Termine finden statt.\n".into(),
            html: Some("<p>Hallo Anna Müller,</p>\n<p>.dot</p>".into()),
            ..Default::default()
        };
        let text_only = Rendered {
            subject: Some("plain\r\nsubject".into()),
            text: "ascii only\n".into(),
            ..Default::default()
        };
        let unsubscribes = [
            None,
            Some("mailto:u@b.example"),
            Some("https://b.example/u, mailto:u@b.example"),
        ];
        let mut compared = 0;
        for from in [&plain, &named] {
            for reply_to in [None, Some(&named)] {
                for unsubscribe in unsubscribes {
                    let wire = Wire::new(from, reply_to, unsubscribe);
                    for (to_name, thread_root) in [
                        ("", None),
                        ("Anna\r\nMüller", Some("r0.7@studio.example")),
                        (long_name.as_str(), None),
                    ] {
                        for msg in [&html, &text_only] {
                            let env = Envelope {
                                reply_to,
                                to_name,
                                thread_root,
                                list_unsubscribe: unsubscribe,
                                ..envelope(from)
                            };
                            let lettre = build(&env, msg).unwrap();
                            let (envelope, bytes) = wire.format(&env, msg).unwrap();
                            assert_eq!(&envelope, lettre.envelope());
                            let expected = String::from_utf8(lettre.formatted()).unwrap();
                            let mut ours = String::from_utf8(bytes).unwrap();
                            if let (Some(theirs), Some(b)) = (boundary(&expected), boundary(&ours)) {
                                ours = ours.replace(b, theirs);
                            }
                            assert_eq!(ours, expected);
                            compared += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 72);
        let bad = Envelope {
            to_address: "not an address",
            ..envelope(&plain)
        };
        assert!(Wire::new(&plain, None, None).format(&bad, &html).is_err());
    }

    #[test]
    fn one_click_only_for_https() {
        let from: Mailbox = "a@b.example".parse().unwrap();
        let env = Envelope {
            list_unsubscribe: Some("mailto:u@b.example"),
            ..envelope(&from)
        };
        let raw = String::from_utf8(build(&env, &Rendered::default()).unwrap().formatted()).unwrap();
        assert!(raw.contains("List-Unsubscribe: <mailto:u@b.example>"));
        assert!(!raw.contains("List-Unsubscribe-Post"));
    }

    #[test]
    fn line_breaks_and_control_characters_in_header_values_become_one_space() {
        assert_eq!(header_text("Anna\r\nMüller"), "Anna Müller");
        assert_eq!(
            header_text("Anna\u{b}\u{c}Müller\u{2028}B\u{2029}C\u{85}D\u{0}E"),
            "Anna Müller B C D E"
        );
        assert!(matches!(header_text("Anna Müller"), Cow::Borrowed(_)));

        // Every character of the first planes, in each header value that takes text: no panic,
        // and no header line is broken other than by lettre's own folding.
        let from: Mailbox = "a@b.example".parse().unwrap();
        let chars = (0u32..0x3000)
            .chain([0xfeff, 0xfffd, 0x1f600])
            .filter_map(char::from_u32);
        for c in chars {
            let name = format!("Anna{c}Mü{c}{c}ller");
            let from = Mailbox::new(Some(name.clone()), from.email.clone());
            let env = Envelope {
                reply_to: Some(&from),
                to_name: &name,
                list_unsubscribe: Some(&name),
                ..envelope(&from)
            };
            let msg = Rendered {
                subject: Some(name.clone()),
                ..Default::default()
            };
            let raw = build(&env, &msg).unwrap().formatted();
            let head = &raw[..memchr::memmem::find(&raw, b"\r\n\r\n").unwrap() + 2];
            for line in head.split_inclusive(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let line = line.strip_suffix(b"\r").unwrap_or_else(|| panic!("bare LF for {c:?}"));
                assert!(
                    !line.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f),
                    "control byte in a header line for {c:?}: {:?}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }
}
