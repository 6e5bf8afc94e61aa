//! Plain numbers, handed to the crate in its RFC 3966 form.
//!
//! `phonenumber::parse_with` tries an RFC 3966 grammar (`tel:+49-301234567`) before its
//! natural-language one, and the natural one begins with regexes over Unicode classes (digits and
//! letters of every script, extension words in a dozen languages) that are compiled on a
//! process's first number: most of the work of reading a small audience. Most numbers people
//! write are plain: an optional leading `+`, ASCII digits and the separators ` -./()`. The crate
//! reads those with a space (or a `/`, or no separator after the `+`) in the natural grammar,
//! and for them both grammars pass the same digits to the same later steps, under the
//! conditions [`tel`] checks; it writes such a number in the RFC 3966 form and leaves anything
//! else as it is. The answers stay the crate's: the tests compare both forms on every region's
//! example numbers and on random plain strings.

use phonenumber::country::Id;
use phonenumber::metadata::Database;

/// What may stand between the digits of a plain number.
const SEPARATORS: &[u8] = b" -./()";

/// The fewest national digits for which both grammars agree: the natural one counts the country
/// code in its first "too short" check, the RFC 3966 one does not, and the natural one reads two
/// digits apart ("3 0") as no number at all.
const MIN_NATIONAL: usize = 3;

/// Whether the crate's RFC 3966 grammar takes `s` as it is, for strings of [`SEPARATORS`],
/// digits and `+`: no space anywhere; after a leading `+`, the code up to the first of `-.()`;
/// then only digits and those four to the end.
fn rfc_3966(s: &str) -> bool {
    let number = |c: char| c.is_ascii_digit() || "-.()".contains(c);
    let national = match s.strip_prefix('+') {
        Some(rest) => match rest.find(|c| "-.()".contains(c)) {
            Some(end) if end > 0 && !rest[..end].contains(' ') => &rest[end..],
            _ => return false,
        },
        None => s,
    };
    !national.is_empty() && national.chars().all(number)
}

/// `s` as `tel:DIGITS` (national) or `tel:+CODE-DIGITS`, when it is a plain number that both
/// grammars read alike with `region` and `db`; `None` otherwise. `is_code` says which country
/// codes the metadata knows (all of them, not only those in `db`).
pub fn tel(db: &Database, region: Option<Id>, s: &str, is_code: impl Fn(u16) -> bool) -> Option<String> {
    if rfc_3966(s) {
        // The crate reads it in that grammar itself.
        return None;
    }
    let s = s.trim_matches(|c: char| c.is_ascii_whitespace());
    let (plus, rest) = match s.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    if !rest.bytes().all(|b| b.is_ascii_digit() || SEPARATORS.contains(&b)) {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if !plus {
        return (digits.len() >= MIN_NATIONAL).then(|| format!("tel:{digits}"));
    }
    // After a `+`, the natural grammar first strips the region's international prefix when the
    // digits start with it ("+00 49 ...", "+011 ..."), then takes the shortest known code from
    // the digits; the RFC 3966 one takes the code as written. So: none of the first case, and
    // the code written where the natural grammar would find it.
    if digits.starts_with('0') {
        return None;
    }
    let idd = region
        .and_then(|r| db.by_id(r.as_ref()))
        .and_then(|m| m.international_prefix());
    if idd.is_some_and(|idd| idd.find(&digits).is_some_and(|m| m.start() == 0)) {
        return None;
    }
    let len = (1..=digits.len().min(3)).find(|&n| digits[..n].parse().is_ok_and(&is_code))?;
    let (code, national) = digits.split_at(len);
    (national.len() >= MIN_NATIONAL).then(|| format!("tel:+{code}-{national}"))
}

#[cfg(test)]
mod tests {
    use phonenumber::country::Id;
    use phonenumber::metadata::DATABASE;
    use proptest::prelude::*;

    use super::tel;

    fn is_code(code: u16) -> bool {
        DATABASE.by_code(&code).is_some()
    }

    /// The crate's answer for `s`: the number, or which error.
    fn answer(region: Option<Id>, s: &str) -> String {
        format!("{:?}", phonenumber::parse(region, s))
    }

    /// When `s` has an RFC 3966 form, the crate reads both alike; whether it had one.
    fn check(region: Option<Id>, s: &str) -> bool {
        let Some(t) = tel(&DATABASE, region, s, is_code) else {
            return false;
        };
        assert_eq!(answer(region, &t), answer(region, s), "{s:?} as {t:?} in {region:?}");
        true
    }

    #[test]
    fn plain_numbers_are_written_in_the_rfc_3966_form_and_others_left_alone() {
        let cases: &[(Option<Id>, &str, Option<&str>)] = &[
            (None, "+49 30 1234567", Some("tel:+49-301234567")),
            (Some(Id::DE), " +49 (0)30 123-45.67 ", Some("tel:+49-0301234567")),
            (Some(Id::DE), "0151 23456789", Some("tel:015123456789")),
            (Some(Id::DE), "(030) 1234/567", Some("tel:0301234567")),
            (Some(Id::US), "+1 650 253 0000", Some("tel:+1-6502530000")),
            (None, "+7 912 345-67-89", Some("tel:+7-9123456789")),
            (None, "+354 555 1234", Some("tel:+354-5551234")),
            // No separator after the code, or a `/`: the RFC 3966 grammar refuses it as written.
            (None, "+4930123456", Some("tel:+49-30123456")),
            (Some(Id::DE), "030/1234567", Some("tel:0301234567")),
            // No space: the crate reads it in the RFC 3966 grammar itself, code as written.
            (None, "+49-30-1234567", None),
            (None, "+100(0", None),
            (Some(Id::DE), "(030)1234567", None),
            // Where the grammars part: an international prefix after the `+`, the region's
            // own one ("810" in Russia) included; too few digits; anything not plain.
            (Some(Id::NZ), "+0064 3 331 6005", None),
            (Some(Id::RU), "+81 03 1234 5678", None),
            (None, "+49 12", None),
            (Some(Id::DE), "3 0", None),
            (Some(Id::DE), "+49 30 1234567 ext. 12", None),
            (Some(Id::CA), "1-800-FLOWERS", None),
            (None, "tel:+49-30-1234567", None),
            (None, "+49\u{a0}30 1234567", None),
            (None, "\u{ff0b}49 30 1234567", None),
            (Some(Id::DE), "030 + 1234567", None),
            (None, "+999 1234567", None),
        ];
        for &(region, s, want) in cases {
            assert_eq!(
                tel(&DATABASE, region, s, is_code).as_deref(),
                want,
                "{s:?} in {region:?}"
            );
            check(region, s);
        }
    }

    #[test]
    fn every_regions_example_numbers_read_alike_in_both_forms() {
        let mut rewritten = 0;
        for meta in DATABASE.iter() {
            let Ok(id) = meta.id().parse::<Id>() else { continue };
            let code = meta.country_code();
            let prefix = meta.national_prefix().unwrap_or("");
            let d = meta.descriptors();
            let examples = [d.fixed_line(), d.mobile(), d.toll_free(), d.premium_rate(), d.voip()]
                .into_iter()
                .flatten()
                .filter_map(|d| d.example());
            for e in examples {
                let (head, tail) = e.split_at(e.len().min(3));
                let spaced: String = e
                    .chars()
                    .enumerate()
                    .flat_map(|(i, c)| (i > 0 && i % 3 == 0).then_some(' ').into_iter().chain([c]))
                    .collect();
                let forms = [
                    format!("+{code} {e}"),
                    format!("+{code}-{spaced}"),
                    format!("+{code} ({head}) {tail}"),
                    format!("+{code}{e}"),
                    format!("{prefix}{e}"),
                    format!("({prefix}{head}) {tail}"),
                    format!("{prefix}{}", spaced.replace(' ', ".")),
                    e.to_string(),
                ];
                for s in &forms {
                    for region in [None, Some(id), Some(Id::DE), Some(Id::US), Some(Id::RU)] {
                        rewritten += usize::from(check(region, s));
                    }
                }
            }
        }
        // Most of them are plain: the comparison above is not vacuous.
        assert!(rewritten > 5_000, "{rewritten}");
    }

    proptest! {
        #[test]
        fn random_plain_strings_read_alike_in_both_forms(
            plus in proptest::bool::ANY,
            body in "[0-9 ./()-]{0,22}",
            region in proptest::sample::select(vec![
                None, Some(Id::DE), Some(Id::US), Some(Id::RU), Some(Id::GB), Some(Id::IT),
                Some(Id::FR), Some(Id::AU), Some(Id::JP), Some(Id::BR), Some(Id::KZ), Some(Id::NZ),
            ]),
        ) {
            let s = if plus { format!("+{body}") } else { body };
            check(region, &s);
        }
    }
}
