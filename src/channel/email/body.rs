//! Text bodies encoded for the wire exactly as lettre encodes them, but quoted-printable line by
//! line with a memo.
//!
//! lettre picks 7bit, quoted-printable or base64 for a body (email-encoding's chooser) and
//! encodes quoted-printable with the quoted_printable crate, a byte at a time: a sixth of all the
//! instructions of a personalised email (callgrind, bench/run's 4 KB message). Yet
//! quoted-printable is line-local: a hard line break resets the line length and the pending
//! soft break, so a body's encoding is its lines' encodings joined by CRLF. The messages of a
//! run differ in a line or two (the greeting), so each distinct line is encoded once per worker
//! thread and copied after that. `tests::same_bytes_as_lettre` checks the equivalence.

use std::cell::RefCell;

use lettre::message::Body;
use lettre::message::header::ContentTransferEncoding;

/// Distinct lines remembered per thread, and the longest line worth remembering (at most about
/// 4 MB per thread): a run's template lines are a few hundred at most, while the lines that
/// differ per recipient would otherwise grow the memo without bound.
const MAX_LINES: usize = 1024;
const MAX_LINE_BYTES: usize = 1024;

/// A line, its quoted-printable encoding and how many of its bytes need escaping.
type Memo = foldhash::HashMap<Box<str>, (Box<[u8]>, usize)>;

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::default();
}

/// `text` (any line endings) as a body: the same bytes and encoding as `Body::new(crlf(text))`.
pub fn text_body(text: &str) -> Body {
    // ASCII: 7bit unless a line is too long, lettre's own path (rare beyond 7bit).
    if text.is_ascii() {
        return Body::new(crlf(text));
    }
    // Not ASCII, no SMTPUTF8 assumed: lettre's chooser (email-encoding) takes quoted-printable
    // when at most a third of the bytes need escaping, else base64. The escapes are counted
    // while encoding, from the memo, rather than by a second scan of every byte of the body.
    let (encoded, escapes, len) = quoted_printable(text);
    if escapes <= len / 3 {
        Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::QuotedPrintable)
    } else {
        Body::new(crlf(text))
    }
}

/// The bytes email-encoding's chooser counts as needing an escape.
fn escapes(line: &str) -> usize {
    line.bytes().filter(|&b| !matches!(b, b'\t' | b' '..=b'~')).count()
}

/// Quoted-printable of `crlf(text)`, line by line, the bytes of it that need escaping, and its
/// length. The lines of `crlf(text)` are those of `text` split at LF, less one CR before the
/// LF, so `text` is encoded where it is, without the copy.
fn quoted_printable(text: &str) -> (Vec<u8>, usize, usize) {
    let mut out = Vec::with_capacity(text.len() + text.len() / 4);
    let mut escaped = 0;
    let mut len = 0;
    MEMO.with_borrow_mut(|memo| {
        let mut from = 0;
        let mut ends = memchr::memchr_iter(b'\n', text.as_bytes());
        loop {
            let end = ends.next();
            let line = match end {
                Some(i) => {
                    let line = &text[from..i];
                    line.strip_suffix('\r').unwrap_or(line)
                }
                None => &text[from..],
            };
            match memo.get(line) {
                Some((encoded, n)) => {
                    out.extend_from_slice(encoded);
                    escaped += n;
                }
                None => {
                    let encoded = quoted_printable::encode(line);
                    let n = escapes(line);
                    out.extend_from_slice(&encoded);
                    escaped += n;
                    if line.len() <= MAX_LINE_BYTES && memo.len() < MAX_LINES {
                        memo.insert(line.into(), (encoded.into(), n));
                    }
                }
            }
            len += line.len();
            match end {
                Some(i) => {
                    out.extend_from_slice(b"\r\n");
                    // CR and LF count as escapes too.
                    escaped += 2;
                    len += 2;
                    from = i + 1;
                }
                None => break,
            }
        }
    });
    (out, escaped, len)
}

/// CRLF line endings. lettre converts bare LFs itself, but one inserted character at a time —
/// quadratic in the body size (a 10 MB body took a minute).
pub fn crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut from = 0;
    for i in memchr::memchr_iter(b'\n', text.as_bytes()) {
        let line = &text[from..i];
        out.push_str(line);
        if !line.ends_with('\r') {
            out.push('\r');
        }
        out.push('\n');
        from = i + 1;
    }
    out.push_str(&text[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lettre(text: &str) -> (Vec<u8>, ContentTransferEncoding) {
        let b = Body::new(crlf(text));
        (b.as_ref().to_vec(), b.encoding())
    }

    fn ours(text: &str) -> (Vec<u8>, ContentTransferEncoding) {
        let b = text_body(text);
        (b.as_ref().to_vec(), b.encoding())
    }

    #[test]
    fn same_bytes_as_lettre_for_the_cases_that_matter() {
        let long = "ä".repeat(200);
        let cases = [
            "",
            "plain ascii\nshort lines\n",
            "Liebe Kundinnen und Kunden,\r\nunser Hosting-Anbieter wurde angegriffen. Unsere Website ist für einige Tage nicht erreichbar.\n",
            "trailing space \nand tab\t\r\nand = sign and =3D\n",
            ".leading dot\n\n\nblank lines\n",
            "a bare\rCR and a CR at the end\r",
            "CR before CRLF\r\r\nnext",
            long.as_str(),
            "Привет, мир! Ελληνικά 日本語 📬📬📬📬",
            "<p style=\"margin:0;padding:0;font-family:-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif\">Hallo Anna Müller,</p>\n",
        ];
        for text in cases {
            // Twice: the second time every line comes from the memo.
            assert_eq!(ours(text), lettre(text), "{text:?}");
            assert_eq!(ours(text), lettre(text), "{text:?} (memoised)");
        }
        assert_eq!(ours(cases[2]).1, ContentTransferEncoding::QuotedPrintable);
        assert_eq!(ours(cases[1]).1, ContentTransferEncoding::SevenBit);
        assert_eq!(ours(cases[8]).1, ContentTransferEncoding::Base64);
    }

    #[test]
    fn quoted_printable_or_base64_at_the_third_of_escaped_bytes() {
        // Each "ä" is two bytes to escape: the choice flips where they pass a third of all bytes.
        for umlauts in 0..40 {
            for lines in 1..4 {
                let line = format!("{}{}", "ä".repeat(umlauts), "a".repeat(60 - umlauts));
                let text = vec![line; lines].join("\n");
                assert_eq!(ours(&text), lettre(&text), "{umlauts} umlauts, {lines} lines");
            }
        }
        assert_eq!(ours(&"ä".repeat(30)).1, ContentTransferEncoding::Base64);
    }

    #[test]
    fn lines_beyond_the_memo_limits_are_still_encoded() {
        let long_line = format!("{}\n", "ü=".repeat(MAX_LINE_BYTES));
        for i in 0..(MAX_LINES + 10) {
            let text = format!("Hallo Kundin Nummer {i} mit Umlaut ä,\n{long_line}Grüße\n");
            assert_eq!(ours(&text), lettre(&text));
        }
    }

    proptest! {
        #[test]
        fn same_bytes_as_lettre(
            lines in proptest::collection::vec(
                proptest::string::string_regex("[a-zA-Z0-9 \t=.äöüß€\r-]{0,120}").unwrap(), 0..8),
            endings in proptest::collection::vec(prop_oneof!["\n", "\r\n"], 8),
        ) {
            let mut text = String::new();
            for (line, end) in lines.iter().zip(&endings) {
                text.push_str(line);
                text.push_str(end);
            }
            prop_assert_eq!(ours(&text), lettre(&text));
            // And once more with a line that is not the last followed by nothing.
            text.push_str("tail ä ");
            prop_assert_eq!(ours(&text), lettre(&text));
        }
    }
}
