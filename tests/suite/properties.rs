//! Property tests (proptest): the SMS segmenter on generated texts, the audience reader on
//! generated CSVs, and the rate limiter's windows on recorded grant times.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use announce::render::sms::{Encoding, analyze, is_gsm7, normalize, split};
use announce::settings::Rate;
use proptest::prelude::*;

/// Characters that exercise every rule: GSM-7 basic and extension (two septets), typographic
/// characters `normalize` maps, UCS-2 letters, astral emoji (surrogate pairs), joiners.
fn sms_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::sample::select(vec!['a', 'Z', '7', ' ', '\n', '@', 'ä', 'ß', 'É', '¿', '_']),
        2 => prop::sample::select(vec!['€', '[', ']', '{', '}', '~', '^', '|', '\\', '\u{0C}']),
        2 => prop::sample::select(vec!['„', '“', '”', '‘', '’', '–', '—', '…', '\u{A0}', '\u{200B}', '\u{AD}']),
        1 => prop::sample::select(vec!['ç', 'á', 'ł', 'α', '中', '\t', '`', '\u{301}']),
        1 => prop::sample::select(vec!['😀', '👨', '\u{200D}', '🇩', '🇪', '𝄞']),
    ]
}

fn sms_text() -> impl Strategy<Value = String> {
    prop::collection::vec(sms_char(), 0..700).prop_map(|v| v.into_iter().collect())
}

/// Units of a part in the text's encoding.
fn units(part: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Ucs2 => part.encode_utf16().count(),
        Encoding::Gsm7 => analyze(part).units,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn segmenter_parts_are_the_text_within_limits(text in sms_text()) {
        let info = analyze(&text);
        let parts = split(&text);
        prop_assert_eq!(parts.concat(), text.clone());
        prop_assert_eq!(info.encoding == Encoding::Gsm7, is_gsm7(&text));
        if text.is_empty() {
            prop_assert!(parts.is_empty());
            prop_assert_eq!(info.segments, 1);
        } else {
            prop_assert_eq!(parts.len(), info.segments as usize);
            let limit = if parts.len() == 1 { info.encoding.single_limit() } else { info.encoding.multi_limit() };
            prop_assert_eq!(info.per_segment, limit);
            let mut total = 0;
            for p in &parts {
                prop_assert!(!p.is_empty());
                let u = units(p, info.encoding);
                prop_assert!(u <= limit, "part of {} units > {}", u, limit);
                total += u;
            }
            prop_assert_eq!(total, info.units);
            // Greedy: no part could have taken the next part's first character.
            for w in parts.windows(2) {
                let next = w[1].chars().next().unwrap();
                let n = units(next.encode_utf8(&mut [0; 4]), info.encoding);
                prop_assert!(units(&w[0], info.encoding) + n > limit);
            }
        }
    }

    #[test]
    fn normalize_is_gsm7_or_untouched_idempotent_and_never_dearer(text in sms_text()) {
        let n = normalize(&text);
        if n != text {
            prop_assert!(!is_gsm7(&text));
            prop_assert!(is_gsm7(&n));
        }
        prop_assert_eq!(normalize(&n), n.clone());
        prop_assert!(analyze(&n).segments <= analyze(&text).segments);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// `…` becomes three septets: a text of mostly ellipses must stay UCS-2 when that is cheaper.
    #[test]
    fn normalize_never_dearer_on_ellipsis_heavy_text(
        v in prop::collection::vec(prop_oneof![9 => Just('…'), 1 => prop::sample::select(vec!['a', '–', '„'])], 0..260)
    ) {
        let text: String = v.into_iter().collect();
        prop_assert!(analyze(&normalize(&text)).segments <= analyze(&text).segments);
    }
}

/// Take `weights.len()` grants from one limiter with `tasks` concurrent takers (like the
/// dispatcher's deliveries in flight); returns (grant time, weight) in grant order.
fn grants(rate: Rate, burst: u32, weights: &[u32], tasks: usize) -> Vec<(Instant, u32)> {
    let limiter = Arc::new(rate.limiter(NonZeroU32::new(burst).unwrap()));
    let queue = Arc::new(Mutex::new(weights.to_vec()));
    let out = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let (limiter, queue, out) = (limiter.clone(), queue.clone(), out.clone());
            handles.push(tokio::spawn(async move {
                loop {
                    let Some(w) = queue.lock().unwrap().pop() else { break };
                    limiter.until_n_ready(NonZeroU32::new(w).unwrap()).await.unwrap();
                    out.lock().unwrap().push((Instant::now(), w));
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    let mut v = out.lock().unwrap().clone();
    v.sort_by_key(|(t, _)| *t);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// A channel at `count/s` with `burst` never takes more than `count × W + burst` cells in
    /// any window of length W (GCRA), in particular never more than count + burst in one
    /// second. Grant times are taken just after the grant, so a late reading can only shrink a
    /// window's start: a small slack covers that, nothing else.
    #[test]
    fn rate_limit_windows_hold(
        count in 40u32..120,
        burst in 1u32..6,
        weights in prop::collection::vec(1u32..4, 20..45),
        tasks in 1usize..6,
    ) {
        let weights: Vec<u32> = weights.into_iter().map(|w| w.min(burst)).collect();
        let rate: Rate = format!("{count}/s").parse().unwrap();
        let g = grants(rate, burst, &weights, tasks);
        let period = 1.0 / f64::from(count);
        let slack = 0.004;
        for i in 0..g.len() {
            let mut cells = 0u32;
            for (t, w) in &g[i..] {
                cells += w;
                let window = t.duration_since(g[i].0).as_secs_f64();
                let allowed = f64::from(burst) + (window + slack) / period;
                prop_assert!(
                    f64::from(cells) <= allowed + 1e-9,
                    "{} cells within {:.4}s at {}/s burst {}",
                    cells, window, count, burst
                );
            }
        }
        // And it did not just refuse: everything was granted, paced by the rate.
        let total: u32 = weights.iter().sum();
        prop_assert_eq!(g.iter().map(|(_, w)| w).sum::<u32>(), total);
        if total > burst {
            let span = g.last().unwrap().0.duration_since(g[0].0);
            let least = Duration::from_secs_f64(f64::from(total - burst) * period);
            prop_assert!(span + Duration::from_millis(5) >= least, "{:?} < {:?}", span, least);
        }
    }
}

/// One generated row of an audience CSV, with what the reader must make of it.
#[derive(Debug, Clone)]
enum Item {
    /// A person; the name may be quoted (with the delimiter, `""` or line breaks inside) or
    /// have a stray quote inside an unquoted cell.
    Good(NameShape),
    /// An address that is not one: a recipient with an invalid email.
    BadEmail,
    /// One cell, or three with data: a rejected row.
    BadCount(bool),
    /// Empty, spaces, or only delimiters.
    Blank(u8),
    /// A quoted name whose quote is never closed.
    Unclosed,
}

#[derive(Debug, Clone)]
enum NameShape {
    Plain,
    QuotedDelimiter,
    EscapedQuotes,
    /// Quoted, with these line breaks inside.
    Broken(Vec<usize>),
    StrayQuote,
}

const BREAKS: [&str; 3] = ["\n", "\r\n", "\r"];

fn item() -> impl Strategy<Value = Item> {
    let shape = prop_oneof![
        3 => Just(NameShape::Plain),
        1 => Just(NameShape::QuotedDelimiter),
        1 => Just(NameShape::EscapedQuotes),
        1 => prop::collection::vec(0usize..3, 1..3).prop_map(NameShape::Broken),
        1 => Just(NameShape::StrayQuote),
    ];
    prop_oneof![
        8 => shape.prop_map(Item::Good),
        1 => Just(Item::BadEmail),
        1 => any::<bool>().prop_map(Item::BadCount),
        2 => (0u8..3).prop_map(Item::Blank),
        1 => Just(Item::Unclosed),
    ]
}

/// Physical lines: LF, CRLF and a lone CR each end one; a final line break starts none.
fn physical_lines(text: &str) -> u64 {
    let b = text.as_bytes();
    let breaks = (0..b.len())
        .filter(|&i| b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')))
        .count() as u64;
    let unterminated = !b.is_empty() && !matches!(b[b.len() - 1], b'\n' | b'\r');
    breaks + u64::from(unterminated)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Every line of an audience is accounted for: each person comes out with the line their
    /// row starts on and their name as written, each bad row is rejected or invalid at its line,
    /// the header, blank lines and rows add up to the file's lines — or, when a quote is never
    /// closed, the file is refused naming the line where that quote opened.
    #[test]
    fn every_line_of_the_audience_is_accounted_for(
        items in prop::collection::vec((item(), 0usize..3), 0..30),
        semicolon in any::<bool>(),
        final_break in any::<bool>(),
    ) {
        use announce::audience::{self, AudienceError, AudienceOptions};
        let d = if semicolon { ';' } else { ',' };
        let mut text = format!("name{d}email\n");
        let mut line = 2u64;
        // (line, name, email) of every recipient, rejected lines, first unclosed quote.
        let mut people = Vec::new();
        let mut rejected = Vec::new();
        let mut unclosed = None;
        let mut row_lines = 0;
        let n = items.len();
        for (k, (item, brk)) in items.into_iter().enumerate() {
            let email = format!("p{k}@example.de");
            let (row, name, spans) = match &item {
                Item::Good(shape) => {
                    let (cell, name) = match shape {
                        NameShape::Plain => (format!("Anna {k}"), format!("Anna {k}")),
                        NameShape::QuotedDelimiter => (format!("\"Weiß{d} Anna {k}\""), format!("Weiß{d} Anna {k}")),
                        NameShape::EscapedQuotes => (format!("\"Ben \"\"B\"\" {k}\""), format!("Ben \"B\" {k}")),
                        NameShape::Broken(breaks) => {
                            let mut name = format!("Clara {k}");
                            for b in breaks {
                                name.push_str(BREAKS[*b]);
                                name.push_str("Müller");
                            }
                            (format!("\"{name}\""), name)
                        }
                        NameShape::StrayQuote => (format!("Dee \"D\" {k}"), format!("Dee \"D\" {k}")),
                    };
                    let spans = 1 + match shape { NameShape::Broken(b) => b.len() as u64, _ => 0 };
                    (format!("{cell}{d}{email}"), Some(name), spans)
                }
                Item::BadEmail => (format!("Eve {k}{d}not-an-address-{k}"), Some(format!("Eve {k}")), 1),
                Item::BadCount(one) => (
                    if *one { format!("Solo {k}") } else { format!("a {k}{d}b{d}c") },
                    None,
                    1,
                ),
                Item::Blank(0) => (String::new(), None, 1),
                Item::Blank(1) => ("   ".to_string(), None, 1),
                Item::Blank(_) => (d.to_string(), None, 1),
                Item::Unclosed => (format!("\"Broken {k}{d}{email}"), None, 1),
            };
            // An empty line after a lone CR would make one CRLF of two line ends.
            let mut end = BREAKS[brk];
            if row.is_empty() && text.ends_with('\r') && end.starts_with('\n') {
                end = "\r";
            }
            let last = k + 1 == n;
            if last && !final_break && !row.is_empty() {
                end = "";
            }
            text.push_str(&row);
            text.push_str(end);
            match item {
                Item::Good(_) | Item::BadEmail => {
                    people.push((line, name.unwrap(), matches!(item, Item::Good(_))));
                    row_lines += spans;
                }
                Item::BadCount(_) => {
                    rejected.push(line);
                    row_lines += spans;
                }
                Item::Unclosed => {
                    unclosed.get_or_insert(line);
                }
                Item::Blank(_) => {}
            }
            line += spans;
        }
        let opts = AudienceOptions { default_region: audience::parse_region("DE"), ..Default::default() };
        let got = audience::parse(std::path::Path::new("c.csv"), text.as_bytes(), &opts);
        if let Some(opened) = unclosed {
            match got {
                Err(AudienceError::UnclosedQuote { line, .. } | AudienceError::QuoteClosedLate { line, .. }) => {
                    prop_assert_eq!(line, opened, "{:?}", text);
                }
                other => prop_assert!(false, "{:?} for {:?}", other.map(|a| a.account), text),
            }
            return Ok(());
        }
        let a = got.map_err(|e| TestCaseError::fail(format!("{e} for {text:?}")))?;
        let seen: Vec<(u64, String, bool)> = a
            .recipients
            .iter()
            .map(|r| (r.line, r.name.clone(), r.email.valid().is_some()))
            .collect();
        prop_assert_eq!(seen, people, "{:?}", text);
        prop_assert_eq!(a.rejected.iter().map(|e| e.line).collect::<Vec<_>>(), rejected, "{:?}", text);
        prop_assert!(a.account.balanced(), "{:?}", a.account);
        prop_assert_eq!(a.account.lines, physical_lines(&text), "{:?}", text);
        prop_assert_eq!(a.account.header, 1);
        prop_assert_eq!(a.account.rows, row_lines, "{:?}", text);
    }
}
