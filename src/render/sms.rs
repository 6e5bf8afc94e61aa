//! SMS encoding, length and segment calculation (GSM 03.38 / 3GPP TS 23.038).
//!
//! * A text that consists only of characters from the GSM 03.38 basic set and
//!   its extension table is sent as **GSM-7**. Basic characters take one
//!   septet, extension characters (form feed, `^ { } \ [ ~ ] |` and `€`) take
//!   two (ESC + character). ESC itself is not a user character.
//! * Anything else forces **UCS-2** for the whole message; its length is
//!   counted in UTF-16 code units (an emoji outside the BMP counts 2).
//! * A single message holds 160 septets or 70 UTF-16 units. Longer texts are
//!   concatenated; the user data header leaves 153 septets or 67 units per
//!   part. An ESC pair is never split across parts (a part may then hold only
//!   152 septets) and neither is a surrogate pair (a part may hold 66 units).
//!   Other multi-code-point sequences (flags, ZWJ emoji, combining marks) may
//!   be split between parts; the handset reassembles the message anyway.
//! * Empty text is GSM-7 with 0 characters and counts as **1 segment** (an
//!   empty SMS is still one message), but [`split`] returns no parts for it.
//!
//! The segment counts are checked against an independent implementation
//! (npm `sms-segments-calculator`) in `tests/data/sms_corpus.json`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::thread::LocalKey;

/// Septets in a single (non-concatenated) GSM-7 message.
pub const GSM7_SINGLE: usize = 160;
/// Septets per part of a concatenated GSM-7 message.
pub const GSM7_MULTI: usize = 153;
/// UTF-16 code units in a single (non-concatenated) UCS-2 message.
pub const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message.
pub const UCS2_MULTI: usize = 67;

/// The data coding an SMS is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Encoding {
    /// GSM 03.38 7-bit default alphabet (with extension table).
    #[serde(rename = "GSM-7")]
    Gsm7,
    /// UCS-2 / UTF-16.
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl Encoding {
    /// The conventional name: `"GSM-7"` or `"UCS-2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }

    /// Units that fit a single, non-concatenated message.
    pub fn single_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_SINGLE,
            Encoding::Ucs2 => UCS2_SINGLE,
        }
    }

    /// Units that fit one part of a concatenated message.
    pub fn multi_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => GSM7_MULTI,
            Encoding::Ucs2 => UCS2_MULTI,
        }
    }

    /// Length of one character in this encoding's units.
    /// Only meaningful for GSM-7 when the character is GSM-7.
    fn units_of(self, c: char) -> usize {
        match self {
            Encoding::Gsm7 => gsm7_septets(c).unwrap_or(1),
            Encoding::Ucs2 => c.len_utf16(),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of [`analyze`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SmsInfo {
    /// GSM-7 when every character is in GSM 03.38, UCS-2 otherwise.
    pub encoding: Encoding,
    /// Unicode scalar values in the text.
    pub chars: usize,
    /// Septets (GSM-7; extension characters count 2) or UTF-16 code units
    /// (UCS-2).
    pub units: usize,
    /// Messages the text is sent as (1 for empty text).
    pub segments: u32,
    /// Capacity of one segment for this text: 160/70 when it fits a single
    /// message, 153/67 when it is concatenated.
    pub per_segment: usize,
}

/// Septets a character takes in GSM-7: `Some(1)` for the basic set,
/// `Some(2)` for the extension table, `None` when it is not GSM-7.
fn gsm7_septets(c: char) -> Option<usize> {
    // Nearly every character of a text is ASCII: a table lookup, not the whole match.
    match ASCII_SEPTETS.get(c as usize) {
        Some(0) => None,
        Some(&n) => Some(usize::from(n)),
        None => gsm7_septets_of(c),
    }
}

/// [`gsm7_septets_of`] for the ASCII characters, 0 for "not GSM-7".
const ASCII_SEPTETS: [u8; 128] = {
    let mut table = [0; 128];
    let mut i = 0;
    while i < 128 {
        table[i] = match gsm7_septets_of(i as u8 as char) {
            Some(n) => n as u8,
            None => 0,
        };
        i += 1;
    }
    table
};

const fn gsm7_septets_of(c: char) -> Option<usize> {
    match c {
        '@'
        | '£'
        | '$'
        | '¥'
        | 'è'
        | 'é'
        | 'ù'
        | 'ì'
        | 'ò'
        | 'Ç'
        | '\n'
        | 'Ø'
        | 'ø'
        | '\r'
        | 'Å'
        | 'å'
        | 'Δ'
        | '_'
        | 'Φ'
        | 'Γ'
        | 'Λ'
        | 'Ω'
        | 'Π'
        | 'Ψ'
        | 'Σ'
        | 'Θ'
        | 'Ξ'
        | 'Æ'
        | 'æ'
        | 'ß'
        | 'É'
        | ' '..='#'
        | '¤'
        | '%'..='?'
        | '¡'
        | 'A'..='Z'
        | 'Ä'
        | 'Ö'
        | 'Ñ'
        | 'Ü'
        | '§'
        | '¿'
        | 'a'..='z'
        | 'ä'
        | 'ö'
        | 'ñ'
        | 'ü'
        | 'à' => Some(1),
        '\u{0C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

/// Whether the whole text can be sent in the GSM 03.38 7-bit alphabet
/// (basic set plus extension table). Empty text is GSM-7.
pub fn is_gsm7(text: &str) -> bool {
    text.chars().all(|c| gsm7_septets(c).is_some())
}

fn encoding_of(text: &str) -> Encoding {
    if is_gsm7(text) { Encoding::Gsm7 } else { Encoding::Ucs2 }
}

fn count_units(text: &str, encoding: Encoding) -> usize {
    text.chars().map(|c| encoding.units_of(c)).sum()
}

/// Calls `part(start, end)` with the byte range of every part the text is
/// sent as, in order. Nothing is called for empty text.
fn for_each_part(text: &str, encoding: Encoding, units: usize, mut part: impl FnMut(usize, usize)) {
    if text.is_empty() {
        return;
    }
    if units <= encoding.single_limit() {
        part(0, text.len());
        return;
    }
    let limit = encoding.multi_limit();
    let mut start = 0;
    let mut used = 0;
    for (i, c) in text.char_indices() {
        // A character (ESC pair, surrogate pair) is never split: if it does
        // not fit entirely, it starts the next part.
        let n = encoding.units_of(c);
        if used + n > limit {
            part(start, i);
            start = i;
            used = 0;
        }
        used += n;
    }
    part(start, text.len());
}

/// Encoding, length and segment count of `text` as an SMS.
pub fn analyze(text: &str) -> SmsInfo {
    thread_local! {
        static LAST: Last<SmsInfo> = const { RefCell::new(None) };
    }
    remembered(&LAST, text, analyze_uncached)
}

/// The last text a function of texts was asked about on this thread, and its answer.
type Last<T> = RefCell<Option<(String, T)>>;

/// `f(text)`, or the answer `last` remembers for this text. Most runs send every recipient the
/// same text (the built-in template has no recipient values), and planning and rendering both
/// ask.
fn remembered<T: Clone>(last: &'static LocalKey<Last<T>>, text: &str, f: impl FnOnce(&str) -> T) -> T {
    if let Some(known) = last.with_borrow(|l| l.as_ref().filter(|(t, _)| t == text).map(|(_, v)| v.clone())) {
        return known;
    }
    let answer = f(text);
    last.set(Some((text.to_string(), answer.clone())));
    answer
}

fn analyze_uncached(text: &str) -> SmsInfo {
    let encoding = encoding_of(text);
    let units = count_units(text, encoding);
    let (segments, per_segment) = if units <= encoding.single_limit() {
        (1, encoding.single_limit())
    } else {
        let mut n: usize = 0;
        for_each_part(text, encoding, units, |_, _| n += 1);
        (u32::try_from(n).unwrap_or(u32::MAX), encoding.multi_limit())
    };
    SmsInfo {
        encoding,
        chars: text.chars().count(),
        units,
        segments,
        per_segment,
    }
}

/// The parts `text` is sent as: the whole text when it fits a single message,
/// otherwise parts of at most 153 septets / 67 UTF-16 units that never split
/// an ESC pair or a surrogate pair. The parts concatenate to `text`.
///
/// `split(t).len() == analyze(t).segments`, except for empty text, which
/// gives no parts (but counts as 1 segment).
pub fn split(text: &str) -> Vec<String> {
    let encoding = encoding_of(text);
    let units = count_units(text, encoding);
    let mut parts = Vec::new();
    for_each_part(text, encoding, units, |start, end| {
        parts.push(text[start..end].to_owned());
    });
    parts
}

/// GSM-7 replacement for a typographic character, `""` to drop it, `None`
/// to keep it.
fn typographic(c: char) -> Option<&'static str> {
    Some(match c {
        // single quotes, low-9 quote, prime
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => "'",
        // double quotes, low-9 quote, double prime, guillemets
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' | '\u{AB}' | '\u{BB}' => "\"",
        // hyphen, non-breaking hyphen, figure dash, en/em dash, horizontal bar, minus
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        // no-break space, en/em/thin/hair spaces, narrow no-break space,
        // medium mathematical space
        '\u{A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' => " ",
        // zero-width space/non-joiner/joiner, word joiner, BOM, soft hyphen
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{AD}' => "",
        _ => return None,
    })
}

/// Replaces typographic characters by their GSM-7 look-alikes so that the
/// text can be sent as GSM-7 instead of UCS-2:
///
/// * `‘ ’ ‚ ‛ ′` → `'`; `“ ” „ ‟ ″ « »` → `"`;
/// * `‐ ‑ ‒ – — ― −` → `-`; `…` → `...`;
/// * no-break space, en/em/thin/hair spaces, narrow no-break space → space;
/// * zero-width space/joiner/non-joiner, word joiner, BOM and soft hyphen are
///   removed.
///
/// Letters are never changed (`ç` is not turned into `Ç`: that changes the
/// meaning). The mapping is applied only when its result is GSM-7: if the
/// text would still need UCS-2 (emoji, `ç`, CJK, …) it is returned unchanged,
/// since replacing typography would then save nothing (in UCS-2 `...` is even
/// longer than `…`) and could break emoji ZWJ sequences. Nor is it applied
/// when the GSM-7 text would need more segments than the original (`…` takes
/// three septets as `...`: a text of many ellipses is cheaper in UCS-2).
/// Returns [`Cow::Borrowed`] whenever nothing changes.
pub fn normalize(text: &str) -> Cow<'_, str> {
    if is_gsm7(text) {
        return Cow::Borrowed(text);
    }
    thread_local! {
        static LAST: Last<Option<String>> = const { RefCell::new(None) };
    }
    match remembered(&LAST, text, normalized) {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(text),
    }
}

/// [`normalize`] of a text that is not GSM-7: `None` when it stays as it is.
fn normalized(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match typographic(c) {
            Some(replacement) => out.push_str(replacement),
            None if gsm7_septets(c).is_some() => out.push(c),
            // Stays UCS-2 whatever we map: leave the text alone.
            None => return None,
        }
    }
    (analyze_uncached(&out).segments <= analyze_uncached(text).segments).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Deviation {
        segments: u32,
        reason: String,
    }

    #[derive(serde::Deserialize)]
    struct CorpusEntry {
        text: String,
        encoding: String,
        chars: usize,
        units: usize,
        segments: u32,
        #[serde(default)]
        note: Option<String>,
        #[serde(default)]
        deviation: Option<Deviation>,
    }

    const CORPUS: &str = include_str!("../../tests/data/sms_corpus.json");

    fn utf16_len(s: &str) -> usize {
        s.encode_utf16().count()
    }

    /// Checks the invariants of `split` and returns the parts.
    /// Each text's encoding, units, segments and units per segment, and a split that checks out.
    fn check_analysis<const N: usize>(encoding: Encoding, cases: [(String, usize, u32, usize); N]) {
        for (text, units, segments, per) in cases {
            let info = analyze(&text);
            assert_eq!(
                (info.encoding, info.units, info.segments, info.per_segment),
                (encoding, units, segments, per),
                "{text:?}"
            );
            check_split(&text);
        }
    }

    fn check_split(text: &str) -> Vec<String> {
        let info = analyze(text);
        let parts = split(text);
        assert_eq!(parts.concat(), text, "parts must concatenate to the input");
        if text.is_empty() {
            assert!(parts.is_empty());
            return parts;
        }
        assert_eq!(parts.len(), info.segments as usize, "split vs analyze: {text:?}");
        let limit = if parts.len() == 1 {
            info.encoding.single_limit()
        } else {
            info.encoding.multi_limit()
        };
        assert_eq!(info.per_segment, limit);
        for p in &parts {
            assert!(!p.is_empty(), "empty part for {text:?}");
            let units = count_units(p, info.encoding);
            assert!(units <= limit, "part of {units} units > {limit}: {p:?}");
            if info.encoding == Encoding::Ucs2 {
                assert_eq!(units, utf16_len(p));
            }
        }
        parts
    }

    #[test]
    fn corpus_matches_independent_implementation() {
        let corpus: Vec<CorpusEntry> = serde_json::from_str(CORPUS).expect("valid corpus JSON");
        assert!(corpus.len() >= 60, "corpus has only {} texts", corpus.len());
        let mut mismatches = Vec::new();
        let mut deviations = 0;
        for (i, e) in corpus.iter().enumerate() {
            let info = analyze(&e.text);
            let expected_segments = match &e.deviation {
                Some(d) => {
                    deviations += 1;
                    assert_ne!(d.segments, e.segments, "#{i}: deviation equals library");
                    assert!(!d.reason.is_empty());
                    d.segments
                }
                None => e.segments,
            };
            let got = (info.encoding.to_string(), info.chars, info.units, info.segments);
            let want = (e.encoding.clone(), e.chars, e.units, expected_segments);
            if got != want {
                let note = e.note.as_deref().unwrap_or("");
                let shown: String = e.text.chars().take(40).collect();
                mismatches.push(format!(
                    "#{i} {shown:?}… ({note}): got (encoding, chars, units, segments) = \
                     {got:?}, expected {want:?}"
                ));
            }
            let parts = split(&e.text).len();
            if !e.text.is_empty() && parts != info.segments as usize {
                mismatches.push(format!("#{i}: split gives {parts} parts, analyze {info:?}"));
            }
        }
        assert!(deviations <= 5, "too many documented deviations");
        assert!(
            mismatches.is_empty(),
            "{} of {} corpus texts differ:\n{}",
            mismatches.len(),
            corpus.len(),
            mismatches.join("\n")
        );
    }

    #[test]
    fn split_invariants_on_corpus() {
        let corpus: Vec<CorpusEntry> = serde_json::from_str(CORPUS).expect("valid corpus JSON");
        for e in &corpus {
            check_split(&e.text);
        }
    }

    #[test]
    fn gsm7_basic_set() {
        let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡\
                     ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        assert_eq!(basic.chars().count(), 127);
        for c in basic.chars() {
            assert_eq!(gsm7_septets(c), Some(1), "{c:?}");
        }
        let info = analyze(basic);
        assert_eq!((info.encoding, info.units, info.segments), (Encoding::Gsm7, 127, 1));
    }

    #[test]
    fn gsm7_extension_table() {
        for c in "\u{0C}^{}\\[~]|€".chars() {
            assert_eq!(gsm7_septets(c), Some(2), "{c:?}");
        }
        let info = analyze("Preis: 5 €");
        assert_eq!((info.encoding, info.chars, info.units), (Encoding::Gsm7, 10, 11));
    }

    #[test]
    fn non_gsm7_characters_force_ucs2() {
        for s in [
            "\u{1B}", "`", "ç", "á", "í", "ó", "ú", "ê", "â", "„", "“", "”", "‘", "’", "–", "—", "…", "\u{A0}", "😀",
            "\t", "α", "¢", "\u{200B}", "e\u{301}",
        ] {
            assert!(!is_gsm7(s), "{s:?}");
            assert!(!is_gsm7(&format!("Hallo {s} Welt")), "{s:?}");
            assert_eq!(analyze(s).encoding, Encoding::Ucs2, "{s:?}");
        }
        assert!(is_gsm7(""));
        assert!(is_gsm7("Grüße aus Köln, Straße [1] {2} ~3~ ^4^ |5| \\6\\ €7"));
    }

    #[test]
    fn empty_text_is_one_segment_without_parts() {
        let info = analyze("");
        assert_eq!(
            info,
            SmsInfo {
                encoding: Encoding::Gsm7,
                chars: 0,
                units: 0,
                segments: 1,
                per_segment: 160,
            }
        );
        assert!(split("").is_empty());
    }

    #[test]
    fn gsm7_limits() {
        let a = |n| "a".repeat(n);
        let cases = [
            (a(160), 160, 1, 160),
            (a(161), 161, 2, 153),
            (a(306), 306, 2, 153),
            (a(307), 307, 3, 153),
            (a(158) + "€", 160, 1, 160),
            (a(159) + "€", 161, 2, 153),
            ("€".repeat(80), 160, 1, 160),
            ("€".repeat(81), 162, 2, 153),
            // 153 pairs = 306 septets, but a part holds only 76 pairs.
            ("{".repeat(153), 306, 3, 153),
        ];
        check_analysis(Encoding::Gsm7, cases);
    }

    #[test]
    fn extension_char_at_boundary_moves_to_next_part() {
        let a = |n| "a".repeat(n);
        // € would take septets 153 and 154: the first part holds only 152.
        let text = a(152) + "€" + &a(10);
        let parts = check_split(&text);
        assert_eq!(parts, vec![a(152), "€".to_owned() + &a(10)]);

        // 306 septets, but because € straddles 153 it needs 3 parts.
        let text = a(152) + "€" + &a(152);
        let parts = check_split(&text);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], a(152));
        assert_eq!(parts[1], "€".to_owned() + &a(151));
        assert_eq!(parts[2], "a");

        // € ending exactly at 153 stays in the first part.
        let text = a(151) + "€" + &a(153);
        assert_eq!(check_split(&text), vec![a(151) + "€", a(153)]);

        // Up to 160 septets no splitting happens at all.
        let text = a(152) + "[" + "b";
        assert_eq!(check_split(&text), vec![text.clone()]);
    }

    #[test]
    fn ucs2_limits_and_surrogate_pairs() {
        let x = |n| "x".repeat(n);
        let c = |n| "ç".repeat(n);
        let cases = [
            (c(70), 70, 1, 70),
            (c(71), 71, 2, 67),
            (c(134), 134, 2, 67),
            (c(135), 135, 3, 67),
            ("😀".repeat(35), 70, 1, 70),
            ("😀".repeat(36), 72, 2, 67),
            // parts of 33 emoji (66 units): 200 units need 4 parts.
            ("😀".repeat(100), 200, 4, 67),
        ];
        check_analysis(Encoding::Ucs2, cases);

        // The emoji would take units 67 and 68: the first part holds 66.
        let text = "ç".to_owned() + &x(65) + "😀" + &x(66);
        let parts = check_split(&text);
        assert_eq!(parts.len(), 3);
        assert_eq!(utf16_len(&parts[0]), 66);
        assert!(parts[1].starts_with('😀'));

        // Regional indicators are separate scalars: a flag may be split.
        let text = "ç".to_owned() + &x(64) + "🇩🇪" + &x(65);
        let parts = check_split(&text);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].ends_with('\u{1F1E9}'));
        assert!(parts[1].starts_with('\u{1F1EA}'));
    }

    #[test]
    fn split_invariants_over_many_texts() {
        let fillers = ["a", "€", "ä", "ç", "😀", "\r\n", "{}", "👨‍👩‍👧"];
        for len in 0..=480 {
            for (k, filler) in fillers.iter().enumerate() {
                // Base text of `len` chars with an inserted special char at a
                // varying position, so boundaries are hit at every offset.
                let mut text: String = "b".repeat(len);
                let pos = (len * (k + 1) / (fillers.len() + 1)).min(text.len());
                text.insert_str(pos, filler);
                let parts = check_split(&text);
                // Greedy packing: every part but the last is full enough that
                // its successor's first char did not fit.
                let info = analyze(&text);
                if parts.len() > 1 {
                    for w in parts.windows(2) {
                        let used = count_units(&w[0], info.encoding);
                        let next = w[1].chars().next().unwrap();
                        assert!(used + info.encoding.units_of(next) > info.per_segment);
                    }
                }
            }
        }
    }

    #[test]
    fn normalize_makes_german_typography_gsm7() {
        let text = "„Hallo“ – bis gleich…";
        assert!(!is_gsm7(text));
        let n = normalize(text);
        assert!(matches!(n, Cow::Owned(_)));
        assert_eq!(n, "\"Hallo\" - bis gleich...");
        assert!(is_gsm7(&n));
        assert_eq!(analyze(&n).encoding, Encoding::Gsm7);
    }

    #[test]
    fn normalize_mappings() {
        for (from, to) in [
            ("‘a’ ‚b‘ 5′", "'a' 'b' 5'"),
            ("“a” „b“ 5″ «c» »d«", "\"a\" \"b\" 5\" \"c\" \"d\""),
            ("a–b—c‒d−e", "a-b-c-d-e"),
            ("Warte…", "Warte..."),
            ("10\u{A0}€ 5\u{2009}km 3\u{202F}%", "10 € 5 km 3 %"),
            ("a\u{200B}b\u{200C}c\u{200D}d\u{2060}e\u{FEFF}", "abcde"),
        ] {
            assert_eq!(normalize(from), to, "{from:?}");
            assert!(is_gsm7(&normalize(from)));
        }
    }

    #[test]
    fn normalize_never_costs_more_segments() {
        // 60 ellipses: 60 UTF-16 units (1 segment) in UCS-2, 180 septets (2 segments) as "...".
        let text = "…".repeat(60);
        assert_eq!(analyze(&text).segments, 1);
        assert_eq!(analyze(&"...".repeat(60)).segments, 2);
        assert!(matches!(normalize(&text), Cow::Borrowed(_)));
        // 20 ellipses: both fit one segment; GSM-7 it is.
        assert_eq!(normalize(&"…".repeat(20)), "...".repeat(20));
    }

    #[test]
    fn normalize_borrows_when_nothing_changes() {
        for text in ["", "Hallo Welt", "Grüße, 5 € [x]", "ç", "„Ça va?“ 😀", "Café – 3… 😀"] {
            assert!(matches!(normalize(text), Cow::Borrowed(t) if t == text), "{text:?}");
        }
        // ç is never turned into Ç, so its text stays UCS-2 and untouched.
        assert_eq!(normalize("„garçon“"), "„garçon“");
        // Emoji ZWJ sequences are not broken.
        assert_eq!(normalize("👨\u{200D}👩"), "👨\u{200D}👩");
    }

    #[test]
    fn display_and_serialize() {
        assert_eq!(Encoding::Gsm7.to_string(), "GSM-7");
        assert_eq!(Encoding::Ucs2.to_string(), "UCS-2");
        let json = serde_json::to_value(analyze("Hi 👋")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "encoding": "UCS-2", "chars": 4, "units": 5, "segments": 1, "per_segment": 70
            })
        );
        assert_eq!(serde_json::to_value(Encoding::Gsm7).unwrap(), "GSM-7");
    }

    #[test]
    fn chars_counts_scalars() {
        let info = analyze("Grüße 👨‍👩‍👧");
        assert_eq!(info.chars, 11);
        assert_eq!(info.units, 14);
    }
}
