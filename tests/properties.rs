//! Property tests (proptest): the SMS segmenter on generated texts, and the rate limiter's
//! windows on recorded grant times.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use announce::config::Rate;
use announce::render::sms::{Encoding, analyze, is_gsm7, normalize, split};
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
    let limiter = Arc::new(announce::dispatch::limiter(rate, NonZeroU32::new(burst).unwrap()));
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
