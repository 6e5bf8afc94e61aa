//! The SMS encoder and segmenter, any UTF-8 text. Invariants: the parts concatenate to the
//! input; there are exactly `segments` parts (none for empty text, which counts as 1 segment);
//! no part is empty or exceeds its limit (160/70 for a single message, 153/67 per part);
//! the unit counts add up; `normalize` returns GSM-7 text or the input unchanged, is
//! idempotent, and never makes a text cost more segments.
#![no_main]

use std::borrow::Cow;

use announce::render::sms::{Encoding, analyze, is_gsm7, normalize, split};
use libfuzzer_sys::fuzz_target;

fn units(part: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Ucs2 => part.encode_utf16().count(),
        Encoding::Gsm7 => {
            let info = analyze(part);
            assert_eq!(info.encoding, Encoding::Gsm7, "a part of a GSM-7 text is GSM-7");
            info.units
        }
    }
}

fuzz_target!(|text: &str| {
    let info = analyze(text);
    let parts = split(text);
    assert_eq!(parts.concat(), text, "parts concatenate to the input");
    assert_eq!(info.chars, text.chars().count());
    assert_eq!(info.encoding == Encoding::Gsm7, is_gsm7(text));
    if info.encoding == Encoding::Ucs2 {
        assert_eq!(info.units, text.encode_utf16().count());
    }
    if text.is_empty() {
        assert!(parts.is_empty());
        assert_eq!(info.segments, 1);
    } else {
        assert_eq!(parts.len(), info.segments as usize, "segments == parts");
        let limit = if parts.len() == 1 {
            info.encoding.single_limit()
        } else {
            info.encoding.multi_limit()
        };
        assert_eq!(info.per_segment, limit);
        let mut total = 0;
        for p in &parts {
            assert!(!p.is_empty());
            let u = units(p, info.encoding);
            assert!(u <= limit, "part of {u} units > {limit}");
            total += u;
        }
        assert_eq!(total, info.units, "units add up");
    }

    let n = normalize(text);
    match &n {
        Cow::Borrowed(b) => assert_eq!(*b, text),
        Cow::Owned(o) => {
            assert!(!is_gsm7(text), "GSM-7 text is left alone");
            assert!(is_gsm7(o), "a changed text is GSM-7");
        }
    }
    assert_eq!(normalize(&n), n.as_ref(), "normalize is idempotent");
    assert!(
        analyze(&n).segments <= info.segments,
        "normalize must not cost more segments: {} -> {}",
        info.segments,
        analyze(&n).segments
    );
});
