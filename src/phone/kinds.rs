//! A number's type and validity from the metadata, with the crate's answers and our own regexes.
//!
//! The crate matches each descriptor through its regex cache: every match locks a mutex, hashes
//! the pattern's source and looks it up in an LRU, and a miss compiles the pattern with Unicode
//! classes (`\d` as every decimal digit of Unicode, which makes `\d{8}` a large automaton). The
//! national numbers matched here are ASCII digits only, so the same pattern compiled without
//! Unicode accepts exactly the same strings, compiles in a fraction of the time, and is kept
//! right beside its descriptor: no lock, no hashing.
//!
//! The logic is `phonenumber::validator::{source_for, number_type}` and
//! `Descriptor::is_match`, step for step: the descriptors in the crate's order, a possible-length
//! check first, and a match that must start at the first digit (the crate's `find(..).start() ==
//! 0`: a leftmost match starts at 0 exactly when some match does, which is what `^` asks).

use std::sync::OnceLock;

use phonenumber::country::Id;
use phonenumber::metadata::{Database, Descriptor, Metadata};
use phonenumber::{PhoneNumber, Type};
use regex::bytes::{Regex, RegexBuilder};

/// The regions of some country codes, each code's regions in the database's order (its main
/// country first).
pub(super) struct Kinds {
    codes: Vec<(u16, Vec<Region>)>,
}

struct Region {
    /// A region the crate's `source_for` would not name (an id `Id` cannot parse).
    unnamed: bool,
    /// The "001" of non-geographic codes, which the crate finds by code rather than by id.
    by_code: bool,
    leading_digits: Option<Pattern>,
    general: Pattern,
    /// In the order `validator::number_type` tries them, before fixed line and mobile.
    special: Vec<(Type, Pattern)>,
    fixed_line: Option<Pattern>,
    mobile: Option<Pattern>,
    /// Fixed line and mobile have the same pattern: a match is "fixed line or mobile".
    same_fixed_and_mobile: bool,
}

/// A descriptor's national-number pattern and possible lengths, compiled on first use.
struct Pattern {
    source: String,
    lengths: Vec<u16>,
    regex: OnceLock<Regex>,
}

impl Kinds {
    /// The regions of `codes` in `db`.
    pub(super) fn new(db: &Database, codes: impl IntoIterator<Item = u16>) -> Kinds {
        let codes = codes
            .into_iter()
            .map(|code| {
                // In the order of `db.region(code)`, and by code rather than by id: the
                // non-geographic codes all have the id "001".
                let regions = db
                    .by_code(&code)
                    .unwrap_or_default()
                    .into_iter()
                    .map(Region::new)
                    .collect();
                (code, regions)
            })
            .collect();
        Kinds { codes }
    }

    /// [`phonenumber::is_valid_with`]: the type of the national number, leading zeros kept, is
    /// known.
    pub(super) fn is_valid(&self, number: &PhoneNumber) -> bool {
        let mut digits = Digits::new();
        let national = digits.national(number, true);
        self.region(number.code().value(), national)
            .is_some_and(|r| r.number_type(national) != Type::Unknown)
    }

    /// [`PhoneNumber::number_type`]: the type of the national number without its leading zeros.
    pub(super) fn number_type(&self, number: &PhoneNumber) -> Type {
        let mut digits = Digits::new();
        let national = digits.national(number, false);
        match self.region(number.code().value(), national) {
            Some(r) => r.number_type(national),
            None => Type::Unknown,
        }
    }

    /// `validator::source_for`: the one region of the code, else the first whose leading digits
    /// start the number or, without leading digits, that gives it a type.
    fn region(&self, code: u16, national: &[u8]) -> Option<&Region> {
        let (_, regions) = self.codes.iter().find(|(c, _)| *c == code)?;
        if let [only] = regions.as_slice() {
            return (only.by_code || !only.unnamed).then_some(only);
        }
        regions.iter().find(|r| match &r.leading_digits {
            Some(leading) => leading.matches_start(national),
            None => r.number_type(national) != Type::Unknown,
        })
    }
}

impl Region {
    fn new(meta: &Metadata) -> Region {
        let d = meta.descriptors();
        let special = [
            (Type::PremiumRate, d.premium_rate()),
            (Type::TollFree, d.toll_free()),
            (Type::SharedCost, d.shared_cost()),
            (Type::Voip, d.voip()),
            (Type::PersonalNumber, d.personal_number()),
            (Type::Pager, d.pager()),
            (Type::Uan, d.uan()),
            (Type::Voicemail, d.voicemail()),
        ]
        .into_iter()
        .filter_map(|(t, desc)| desc.map(|desc| (t, Pattern::of(desc))))
        .collect();
        Region {
            unnamed: meta.id().parse::<Id>().is_err(),
            by_code: meta.id() == "001",
            leading_digits: meta.leading_digits().map(|re| Pattern::new(re.as_str(), &[])),
            general: Pattern::of(d.general()),
            special,
            fixed_line: d.fixed_line().map(Pattern::of),
            mobile: d.mobile().map(Pattern::of),
            same_fixed_and_mobile: source(d.fixed_line()) == source(d.mobile()),
        }
    }

    /// `validator::number_type`.
    fn number_type(&self, national: &[u8]) -> Type {
        if !self.general.is_match(national) {
            return Type::Unknown;
        }
        if let Some((t, _)) = self.special.iter().find(|(_, p)| p.is_match(national)) {
            return *t;
        }
        let mobile = || self.mobile.as_ref().is_some_and(|p| p.is_match(national));
        if self.fixed_line.as_ref().is_some_and(|p| p.is_match(national)) {
            return if self.same_fixed_and_mobile || mobile() {
                Type::FixedLineOrMobile
            } else {
                Type::FixedLine
            };
        }
        if mobile() { Type::Mobile } else { Type::Unknown }
    }
}

fn source(desc: Option<&Descriptor>) -> Option<&str> {
    desc.map(|d| d.national_number().as_str())
}

impl Pattern {
    fn of(desc: &Descriptor) -> Pattern {
        Pattern::new(desc.national_number().as_str(), desc.possible_length())
    }

    fn new(source: &str, lengths: &[u16]) -> Pattern {
        Pattern {
            source: source.to_string(),
            lengths: lengths.to_vec(),
            regex: OnceLock::new(),
        }
    }

    /// `Descriptor::is_match`.
    fn is_match(&self, national: &[u8]) -> bool {
        let length_ok = self.lengths.is_empty() || self.lengths.iter().any(|&l| usize::from(l) == national.len());
        length_ok && self.matches_start(national)
    }

    fn matches_start(&self, national: &[u8]) -> bool {
        self.regex.get_or_init(|| compile(&self.source)).is_match(national)
    }
}

/// `source` anchored at the start, whitespace ignored as the crate's builder does, and ASCII
/// classes (with Unicode ones should a pattern ever need them: on ASCII digits both answer
/// alike). The line break ends a `#` comment, should a pattern ever hold one.
fn compile(source: &str) -> Regex {
    let anchored = format!("^(?:{source}\n)");
    let build = |unicode| {
        RegexBuilder::new(&anchored)
            .ignore_whitespace(true)
            .unicode(unicode)
            .build()
    };
    build(false)
        .or_else(|_| build(true))
        .expect("the crate's builder checked this pattern's syntax")
}

/// The national number's digits, formatted without allocating.
struct Digits {
    buf: [u8; 40],
}

impl Digits {
    fn new() -> Digits {
        Digits { buf: [b'0'; 40] }
    }

    /// The national significant number, with its leading zeros (as `NationalNumber`'s
    /// `Display`) or without (as its value's).
    fn national(&mut self, number: &PhoneNumber, zeros: bool) -> &[u8] {
        let national = number.national();
        let mut itoa = itoa::Buffer::new();
        let value = itoa.format(national.value()).as_bytes();
        let zeros = if zeros {
            usize::from(national.zeros()).min(self.buf.len() - value.len())
        } else {
            0
        };
        self.buf[..zeros].fill(b'0');
        self.buf[zeros..zeros + value.len()].copy_from_slice(value);
        &self.buf[..zeros + value.len()]
    }
}

#[cfg(test)]
mod tests {
    use phonenumber::metadata::DATABASE;
    use phonenumber::{PhoneNumber, Type};

    use super::Kinds;

    const TYPES: [Type; 15] = [
        Type::FixedLine,
        Type::Mobile,
        Type::TollFree,
        Type::PremiumRate,
        Type::SharedCost,
        Type::PersonalNumber,
        Type::Voip,
        Type::Pager,
        Type::Uan,
        Type::Emergency,
        Type::Voicemail,
        Type::ShortCode,
        Type::StandardRate,
        Type::Carrier,
        Type::NoInternational,
    ];

    /// Each example national number of every region of the crate's metadata, and near misses:
    /// its last digit changed, one digit cut, one added, a leading zero.
    fn numbers() -> Vec<PhoneNumber> {
        let mut codes: Vec<u16> = super::super::REGIONS.iter().map(|r| r.1).collect();
        codes.sort_unstable();
        codes.dedup();
        let mut numbers = Vec::new();
        // By code: the non-geographic codes share one id, "001".
        for meta in codes.iter().flat_map(|code| DATABASE.by_code(code).unwrap_or_default()) {
            let d = meta.descriptors();
            let examples = TYPES.iter().filter_map(|&t| d.get(t)).filter_map(|desc| desc.example());
            for example in examples {
                let mut last_changed = example.to_string();
                if let Some(last) = last_changed.pop() {
                    last_changed.push(if last == '9' { '0' } else { char::from(last as u8 + 1) });
                }
                let cut = &example[..example.len().saturating_sub(1)];
                for variant in [
                    example.to_string(),
                    last_changed,
                    cut.to_string(),
                    format!("{example}7"),
                    format!("0{example}"),
                ] {
                    if let Ok(n) = phonenumber::parse(None, format!("+{}{variant}", meta.country_code())) {
                        numbers.push(n);
                    }
                }
            }
        }
        numbers
    }

    #[test]
    fn the_crates_type_and_validity_for_every_regions_examples_and_near_misses() {
        let kinds = &*super::super::FULL_KINDS;
        let numbers = numbers();
        let (mut valid, mut invalid, mut leading_zeros) = (0, 0, 0);
        for n in &numbers {
            let expected = n.is_valid();
            assert_eq!(kinds.is_valid(n), expected, "{n:?}");
            assert_eq!(kinds.number_type(n), n.number_type(&DATABASE), "{n:?}");
            if expected {
                valid += 1
            } else {
                invalid += 1
            }
            leading_zeros += usize::from(n.national().zeros() > 0);
        }
        // Enough of each to mean something: both answers, and the numbers whose validity is read
        // with their leading zeros.
        assert!(
            valid > 1000 && invalid > 1000 && leading_zeros > 50,
            "{valid} {invalid} {leading_zeros}"
        );
    }

    #[test]
    fn a_small_database_answers_as_the_full_one() {
        // Codes shared by several regions pick the region by leading digits or by type.
        let numbers = numbers();
        for code in [1, 7, 44, 49, 262, 590, 599, 800, 882] {
            let db = super::super::build(&[code]);
            let kinds = Kinds::new(&db, [code]);
            for n in numbers.iter().filter(|n| n.code().value() == code) {
                assert_eq!(kinds.number_type(n), n.number_type(&DATABASE), "{n:?}");
                assert_eq!(kinds.is_valid(n), n.is_valid(), "{n:?}");
            }
        }
    }
}
