//! Phone-number parsing and validation with a `phonenumber` database of only the country codes
//! in use.
//!
//! The crate's own [`phonenumber::metadata::DATABASE`] validates every regex of all ~250
//! regions when it is first touched (~55 ms); a run needs one or two country codes. `build.rs`
//! stores every region of the vendored metadata (`assets/phonenumber/`) as a postcard blob,
//! without the formatting rules (these databases never format; `PhoneNumber::format` uses the
//! crate's own). The process-wide store here starts empty and, when a number needs a country
//! code it does not hold yet, builds a small [`Database`] of every region of that code (DE:
//! ~0.3 ms). Past [`MAX_CODES`] codes it switches to the crate's full database.
//!
//! The answers are the crate's: [`parse`], [`is_valid`] and [`number_type`] call
//! `phonenumber::parse_with` / `is_valid_with` / `PhoneNumber::number_type` with the small
//! database. The crate only ever looks metadata up by the default region and by the number's
//! country code; country codes are prefix-free, so a database that holds the code the number
//! starts with finds the same code as the full one. When a parse still ends in "invalid country
//! code" (an international prefix such as `011` that only the region knows, an unusual
//! notation), it is repeated with the full database. Plain numbers reach the crate in its
//! RFC 3966 form, which skips its natural-language grammar's Unicode regexes (`plain`).

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use phonenumber::country::Id;
use phonenumber::metadata::{DATABASE, Database, loader};
use phonenumber::{ParseError, PhoneNumber, Type};

mod kinds;
mod plain;
use kinds::Kinds;

mod index {
    // `REGIONS: &[(region id, country code, start, end)]`: byte ranges in `BLOBS`, XML order.
    include!(concat!(env!("OUT_DIR"), "/phone_index.rs"));
}
use index::REGIONS;

/// One postcard-encoded `loader::Metadata` per region, at the ranges in `REGIONS`.
static BLOBS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/phone_regions.bin"));

/// More country codes than this and the store uses the crate's full database.
pub const MAX_CODES: usize = 16;

static STORE: Store = Store::new();

/// [`phonenumber::parse`], with the database of only the country codes needed so far.
pub fn parse(region: Option<Id>, s: &str) -> Result<PhoneNumber, ParseError> {
    STORE.parse(region, s)
}

/// [`PhoneNumber::is_valid`], with the database of only the country codes needed so far.
pub fn is_valid(number: &PhoneNumber) -> bool {
    STORE.is_valid(number)
}

/// [`PhoneNumber::number_type`] with the database of only the country codes needed so far.
pub fn number_type(number: &PhoneNumber) -> Type {
    STORE.number_type(number)
}

/// Build what reading numbers of `region` needs first (its country code's database, the
/// crate's parser tables, the patterns its mobile and fixed-line numbers go through) on a
/// thread of its own, while the caller loads templates and opens the journal: the first rows
/// read then do not wait for it. A head start only; no answer depends on it.
pub fn warm_up(region: Option<Id>) {
    warm_up_in(&STORE, region);
}

fn warm_up_in(store: &'static Store, region: Option<Id>) -> Option<std::thread::JoinHandle<()>> {
    let region = region?;
    let code = region_code(region)?;
    if store.warming.swap(true, Ordering::Relaxed) {
        return None;
    }
    let warm = move || {
        // A mobile and a fixed-line example, written as people write them: international, and
        // national with the region's prefix (the patterns each form goes through).
        let examples: Vec<(Option<Id>, String)> = {
            let db = store.database(&[code]);
            let Some(meta) = db.by_id(region.as_ref()) else {
                return;
            };
            let d = meta.descriptors();
            let prefix = meta.national_prefix().unwrap_or("");
            [d.mobile(), d.fixed_line()]
                .into_iter()
                .flatten()
                .filter_map(|d| d.example())
                .flat_map(|e| [(None, format!("+{code}{e}")), (Some(region), format!("{prefix}{e}"))])
                .collect()
        };
        for (region, example) in examples {
            if let Ok(number) = store.parse(region, &example) {
                store.validate(&number);
            }
        }
    };
    std::thread::Builder::new()
        .name("phone warm-up".into())
        .spawn(warm)
        .ok()
}

/// Whether `number` is valid, and its type when that comes with the answer. Validity is "the
/// type of the national number, leading zeros kept, is known"; [`number_type`] reads the number
/// without its leading zeros, so without any (nearly every number) both read the same digits
/// with the same metadata and one regex pass answers both.
pub fn validate(number: &PhoneNumber) -> (bool, Option<Type>) {
    STORE.validate(number)
}

/// The number an E.164 string stands for, for its type: the one [`remember`]ed last on this
/// thread when its E.164 form is that string (same country code and national number), else
/// parsed. Planning validates a row's number and then asks the SMS channel whether it is a
/// mobile one, on the same thread: one parse, not two.
pub fn parse_e164(e164: &str) -> Result<PhoneNumber, ParseError> {
    let remembered = LAST.with_borrow(|last| last.as_ref().filter(|m| m.e164 == e164).map(|m| m.number.clone()));
    match remembered {
        Some(n) => Ok(n),
        None => parse(None, e164),
    }
}

/// Remember `number`, whose E.164 form is `e164`, for [`parse_e164`], with its type if
/// [`validate`] gave it.
pub fn remember(e164: &str, number: &PhoneNumber, kind: Option<Type>) {
    LAST.set(Some(Memo {
        e164: e164.to_string(),
        number: number.clone(),
        kind,
    }));
}

/// The type of the number `e164` stands for; `None` when it does not parse.
fn type_of_e164(e164: &str) -> Option<Type> {
    let known = LAST.with_borrow(|last| last.as_ref().filter(|m| m.e164 == e164).and_then(|m| m.kind));
    match known {
        Some(t) => Some(t),
        None => parse_e164(e164).ok().map(|n| number_type(&n)),
    }
}

struct Memo {
    e164: String,
    number: PhoneNumber,
    kind: Option<Type>,
}

thread_local! {
    static LAST: std::cell::RefCell<Option<Memo>> = const { std::cell::RefCell::new(None) };
}

/// Which kinds of valid number a channel can reach, and so which it skips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reachable {
    /// Text messages (SMS, WhatsApp): mobile numbers, and those the metadata cannot tell from
    /// one (the US does not tell mobile from fixed line).
    Texts,
    /// Calls a person answers: every number but premium rate, short codes, emergency, pager,
    /// voicemail access and carrier service numbers (a call there costs or reaches no one).
    Calls,
}

/// Why a channel that reaches `reachable` skips this number, e.g. "not a mobile number (fixed
/// line)", or `None` when it takes it: the skip reason sms, whatsapp and voice report.
pub fn skip_reason(e164: &str, reachable: Reachable) -> Option<String> {
    let kind = refused_kind(e164, reachable)?;
    Some(match reachable {
        Reachable::Texts => format!("not a mobile number ({kind})"),
        Reachable::Calls => format!("not reachable by a call ({kind})"),
    })
}

/// What kind a valid number is when a channel that reaches `reachable` cannot take it (e.g.
/// "fixed line" for texts), from libphonenumber's metadata; `None` when it can.
pub fn refused_kind(e164: &str, reachable: Reachable) -> Option<&'static str> {
    let t = type_of_e164(e164)?;
    let accepted = match reachable {
        Reachable::Texts => matches!(
            t,
            Type::Mobile | Type::FixedLineOrMobile | Type::PersonalNumber | Type::Unknown
        ),
        Reachable::Calls => !matches!(
            t,
            Type::PremiumRate
                | Type::Emergency
                | Type::ShortCode
                | Type::Pager
                | Type::Voicemail
                | Type::StandardRate
                | Type::Carrier
                | Type::NoInternational
        ),
    };
    (!accepted).then(|| kind_name(t))
}

/// A number type as people call it.
pub fn kind_name(t: Type) -> &'static str {
    match t {
        Type::Mobile => "mobile",
        Type::FixedLineOrMobile => "fixed line or mobile",
        Type::PersonalNumber => "personal number",
        Type::Unknown => "unknown kind",
        Type::FixedLine => "fixed line",
        Type::TollFree => "toll free",
        Type::PremiumRate => "premium rate",
        Type::SharedCost => "shared cost",
        Type::Voip => "VoIP",
        Type::Pager => "pager",
        Type::Uan => "company number",
        Type::Emergency => "emergency",
        Type::Voicemail => "voicemail",
        Type::ShortCode => "short code",
        Type::StandardRate | Type::Carrier | Type::NoInternational => "service number",
    }
}

/// The country code of `region`, if the metadata knows the region.
pub fn region_code(region: Id) -> Option<u16> {
    REGIONS.iter().find(|r| r.0 == region.as_ref()).map(|r| r.1)
}

fn is_code(code: u16) -> bool {
    REGIONS.iter().any(|r| r.1 == code)
}

/// The country code that starts the digits after the first `+` of `s` (leading zeros and the
/// separators ` -./()` skipped), if the metadata knows one. Only a hint of what to load.
fn code_after_plus(s: &str) -> Option<u16> {
    let (_, rest) = s.split_once(['+', '\u{FF0B}'])?;
    let digits = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || " -./()".contains(*c))
        .filter(char::is_ascii_digit)
        .skip_while(|&c| c == '0');
    let mut code = 0;
    for digit in digits.take(3) {
        code = code * 10 + u16::from(digit as u8 - b'0');
        if is_code(code) {
            return Some(code);
        }
    }
    None
}

/// `+` and then only ASCII digits and ` -./()`: read without a region, the crate takes the
/// country code from the first digits after the `+` and from nothing else.
fn plain_international(s: &str) -> bool {
    s.trim()
        .strip_prefix('+')
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || " -./()".contains(c)))
}

/// The database for one call: the store's small one, or the crate's full one.
enum Handle {
    Small(Arc<Small>),
    Full,
}

/// A database of some country codes, and the number types of its regions.
struct Small {
    db: Database,
    kinds: Kinds,
}

/// The number types of every region of the crate's full database.
static FULL_KINDS: LazyLock<Kinds> = LazyLock::new(|| {
    let mut codes: Vec<u16> = REGIONS.iter().map(|r| r.1).collect();
    codes.sort_unstable();
    codes.dedup();
    Kinds::new(&DATABASE, codes)
});

impl Handle {
    fn kinds(&self) -> &Kinds {
        match self {
            Handle::Small(small) => &small.kinds,
            Handle::Full => &FULL_KINDS,
        }
    }
}

impl Deref for Handle {
    type Target = Database;

    fn deref(&self) -> &Database {
        match self {
            Handle::Small(small) => &small.db,
            Handle::Full => &DATABASE,
        }
    }
}

/// The databases handed out so far, one per set of country codes (nearly always a single code:
/// a national number needs its region's, an international one its own). A separate database
/// per code rather than one grown database: adding a code then builds only that code's
/// regions, and the regexes the others compiled on use stay compiled.
pub(crate) struct Store {
    inner: RwLock<Inner>,
    /// Parses repeated with the full database.
    fallbacks: AtomicUsize,
    /// A warm-up was started: `send` starts one as soon as the config is read, and the
    /// planner, which `preview` uses too, asks again.
    warming: AtomicBool,
}

struct Inner {
    /// Every country code some database holds.
    codes: Vec<u16>,
    /// (sorted codes, the database of all their regions).
    dbs: Vec<(Vec<u16>, Arc<Small>)>,
    /// Switched to the crate's full database.
    full: bool,
}

impl Store {
    pub(crate) const fn new() -> Store {
        Store {
            inner: RwLock::new(Inner {
                codes: Vec::new(),
                dbs: Vec::new(),
                full: false,
            }),
            fallbacks: AtomicUsize::new(0),
            warming: AtomicBool::new(false),
        }
    }

    pub(crate) fn parse(&self, region: Option<Id>, s: &str) -> Result<PhoneNumber, ParseError> {
        let mut codes = Vec::with_capacity(2);
        if let Some(region) = region {
            match region_code(region) {
                Some(code) => codes.push(code),
                // Unknown to the metadata: whatever the crate does with it.
                None => return phonenumber::parse_with(&DATABASE, Some(region), s),
            }
        }
        codes.extend(code_after_plus(s));
        let db = self.database(&codes);
        let tel = plain::tel(&db, region, s, is_code);
        let s = tel.as_deref().unwrap_or(s);
        match phonenumber::parse_with(&db, region, s) {
            // A code we did not load? Not when the digits after a plain '+' start with none.
            Err(ParseError::InvalidCountryCode)
                if matches!(db, Handle::Small(_))
                    && !(region.is_none() && codes.is_empty() && plain_international(s)) =>
            {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                phonenumber::parse_with(&DATABASE, region, s)
            }
            result => result,
        }
    }

    pub(crate) fn is_valid(&self, number: &PhoneNumber) -> bool {
        self.database_for(number).kinds().is_valid(number)
    }

    pub(crate) fn number_type(&self, number: &PhoneNumber) -> Type {
        self.database_for(number).kinds().number_type(number)
    }

    /// [`validate`].
    pub(crate) fn validate(&self, number: &PhoneNumber) -> (bool, Option<Type>) {
        if number.national().zeros() == 0 {
            let t = self.number_type(number);
            (t != Type::Unknown, Some(t))
        } else {
            (self.is_valid(number), None)
        }
    }

    /// A code the metadata does not know is in neither database: any will do.
    fn database_for(&self, number: &PhoneNumber) -> Handle {
        let code = number.code().value();
        let codes = [code];
        self.database(if is_code(code) { &codes } else { &[] })
    }

    /// A database holding every region of `codes` (all known to the index).
    fn database(&self, codes: &[u16]) -> Handle {
        let mut key = codes.to_vec();
        key.sort_unstable();
        key.dedup();
        let cached = |inner: &Inner| inner.dbs.iter().find(|(k, _)| *k == key).map(|(_, db)| db.clone());
        {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            if inner.full {
                return Handle::Full;
            }
            if let Some(db) = cached(&inner) {
                return Handle::Small(db);
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.full {
            return Handle::Full;
        }
        if let Some(db) = cached(&inner) {
            return Handle::Small(db);
        }
        for &code in &key {
            if !inner.codes.contains(&code) {
                inner.codes.push(code);
            }
        }
        if inner.codes.len() > MAX_CODES {
            inner.full = true;
            inner.dbs.clear();
            return Handle::Full;
        }
        let db = build(&key);
        let small = Arc::new(Small {
            kinds: Kinds::new(&db, key.iter().copied()),
            db,
        });
        inner.dbs.push((key, small.clone()));
        Handle::Small(small)
    }

    /// The country codes loaded so far, sorted; `None` after the switch to the full database.
    #[cfg(test)]
    fn loaded(&self) -> Option<Vec<u16>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let mut codes = inner.codes.clone();
        codes.sort_unstable();
        (!inner.full).then_some(codes)
    }
}

/// The database of every region of `codes`, in the order of the metadata (which
/// `Database::from` keeps among the regions of one code).
fn build(codes: &[u16]) -> Database {
    let regions = REGIONS
        .iter()
        .filter(|r| codes.contains(&r.1))
        .map(|&(_, _, start, end)| {
            postcard::from_bytes::<loader::Metadata>(&BLOBS[start..end]).expect("build.rs wrote this blob")
        })
        .collect();
    Database::from(regions).expect("the metadata is the crate's own")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (default region, input): across many countries, types, and failure modes.
    const CORPUS: &[(Option<Id>, &str)] = &[
        // Germany: mobile, landline, toll free, premium, shared cost, VoIP-ish, too short/long.
        (None, "+49 151 23456789"),
        (None, "+49 160 1234567"),
        (None, "+49 30 1234567"),
        (None, "+49 (0)30 1234567"),
        (None, "+49 800 1234567"),
        (None, "+49 900 1234567"),
        (None, "+49 180 1234567"),
        (None, "+49 32 12345678"),
        (None, "+49 12"),
        (None, "+49 1512 3456789012345"),
        (Some(Id::DE), "0151 23456789"),
        (Some(Id::DE), "0176 98765432"),
        (Some(Id::DE), "030 9876543"),
        (Some(Id::DE), "089 12345678"),
        (Some(Id::DE), "0800 1234567"),
        (Some(Id::DE), "0900 1234567"),
        (Some(Id::DE), "30 1234567"),
        (Some(Id::DE), "0049 30 1234567"),
        (Some(Id::DE), "4930 1234567"),
        (Some(Id::DE), "0151 2345678901234"),
        (Some(Id::DE), "12"),
        (Some(Id::DE), "+43 664 1234567"),
        // Austria, Switzerland.
        (None, "+43 664 1234567"),
        (None, "+43 1 5123456"),
        (Some(Id::AT), "0664 1234567"),
        (Some(Id::AT), "01 5123456"),
        (None, "+41 79 123 45 67"),
        (None, "+41 44 668 18 00"),
        (Some(Id::CH), "079 123 45 67"),
        (Some(Id::CH), "0800 123 456"),
        // UK and the crown dependencies (code 44 shared).
        (None, "+44 7911 123456"),
        (None, "+44 20 7946 0958"),
        (None, "+44 1624 456789"),
        (None, "+44 7624 123456"),
        (None, "+44 1481 256789"),
        (None, "+44 7781 123456"),
        (None, "+44 1534 456789"),
        (None, "+44 7797 123456"),
        (Some(Id::GB), "07911 123456"),
        (Some(Id::GB), "0800 123 4567"),
        (Some(Id::GG), "01481 256789"),
        (Some(Id::JE), "07797 123456"),
        (Some(Id::IM), "07624 123456"),
        // North America (code 1 shared).
        (None, "+1 650 253 0000"),
        (None, "+1 212 555 0100"),
        (None, "+1 416 555 0123"),
        (None, "+1 604 555 0199"),
        (None, "+1 800 555 0100"),
        (None, "+1 900 555 0100"),
        (None, "+1 787 555 0100"),
        (Some(Id::US), "(650) 253-0000"),
        (Some(Id::US), "1 650 253 0000"),
        (Some(Id::US), "011 49 30 1234567"),
        (Some(Id::CA), "416 555 0123"),
        (Some(Id::CA), "1-800-FLOWERS"),
        // France, Italy (leading zero kept), Russia/Kazakhstan (code 7 shared).
        (None, "+33 6 12 34 56 78"),
        (None, "+33 1 42 68 53 00"),
        (Some(Id::FR), "06 12 34 56 78"),
        (None, "+39 06 6982 1234"),
        (None, "+39 312 345 6789"),
        (Some(Id::IT), "06 6982 1234"),
        (Some(Id::IT), "02 1234 5678"),
        (None, "+7 912 345-67-89"),
        (None, "+7 495 123-45-67"),
        (None, "+7 701 123 4567"),
        (None, "+7 727 258 1234"),
        (Some(Id::RU), "8 912 345-67-89"),
        (Some(Id::KZ), "8 701 123 4567"),
        // Australia, Japan, Brazil, India.
        (None, "+61 412 345 678"),
        (None, "+61 2 9876 5432"),
        (Some(Id::AU), "0412 345 678"),
        (None, "+81 90-1234-5678"),
        (None, "+81 3-1234-5678"),
        (Some(Id::JP), "03-1234-5678"),
        (None, "+55 11 91234-5678"),
        (None, "+55 11 3123-4567"),
        (Some(Id::BR), "(11) 91234-5678"),
        (None, "+91 98765 43210"),
        (None, "+91 11 2345 6789"),
        (Some(Id::IN), "098765 43210"),
        // Non-geographic, unknown, malformed.
        (None, "+800 1234 5678"),
        (None, "+882 1234 5678"),
        (None, "+999 1234567"),
        (None, "+0 151 23456789"),
        (None, "+049-30-1234567"),
        (None, "+ 00 49 30 1234567"),
        (None, "+49"),
        (None, "+4"),
        (None, "0151 23456789"),
        (None, "tel:+49-30-1234567"),
        (None, "tel:030-1234567;phone-context=+49"),
        (Some(Id::NZ), "+0064 3 331 6005"),
        (Some(Id::DE), "hello"),
        (Some(Id::DE), ""),
        (Some(Id::DE), "+49 30 1234567 ext. 12"),
    ];

    /// What the crate's full database says: the parse (or its error), validity and type.
    fn reference(region: Option<Id>, s: &str) -> String {
        match phonenumber::parse(region, s) {
            Ok(n) => format!("{n:?} valid={} type={:?}", n.is_valid(), n.number_type(&DATABASE)),
            Err(e) => format!("error {e:?}"),
        }
    }

    fn ours(store: &Store, region: Option<Id>, s: &str) -> String {
        match store.parse(region, s) {
            Ok(n) => format!("{n:?} valid={} type={:?}", store.is_valid(&n), store.number_type(&n)),
            Err(e) => format!("error {e:?}"),
        }
    }

    fn assert_same_answers(store: &Store) {
        for &(region, s) in CORPUS {
            assert_eq!(ours(store, region, s), reference(region, s), "{s:?} in {region:?}");
        }
    }

    #[test]
    fn same_answers_as_the_full_database() {
        assert!(CORPUS.len() >= 60);
        let store = Store::new();
        assert_same_answers(&store);
        // The corpus has exactly these codes; it is not enough to switch.
        assert_eq!(
            store.loaded(),
            Some(vec![1, 7, 33, 39, 41, 43, 44, 49, 55, 61, 64, 81, 91, 800, 882])
        );
        // The public functions use the same machinery.
        let n = parse(None, "+49 151 23456789").unwrap();
        assert!(is_valid(&n));
        assert_eq!(number_type(&n), Type::Mobile);
    }

    #[test]
    fn validate_answers_as_is_valid_and_number_type() {
        let mut typed = 0;
        for &(region, s) in CORPUS {
            let Ok(n) = phonenumber::parse(region, s) else { continue };
            let (valid, kind) = validate(&n);
            assert_eq!(valid, n.is_valid(), "{s:?} in {region:?}");
            if let Some(t) = kind {
                typed += 1;
                assert_eq!(t, n.number_type(&DATABASE), "{s:?} in {region:?}");
            }
        }
        // Italy's fixed lines keep a leading zero: only those are left untyped.
        assert!(typed >= 60, "{typed}");
    }

    #[test]
    fn same_answers_from_several_threads() {
        // Planning uses two threads; each store grows while the others read it.
        let store = Store::new();
        std::thread::scope(|scope| {
            for offset in 0..4 {
                let store = &store;
                scope.spawn(move || {
                    for i in 0..CORPUS.len() {
                        let (region, s) = CORPUS[(i + offset * 17) % CORPUS.len()];
                        assert_eq!(ours(store, region, s), reference(region, s), "{s:?} in {region:?}");
                    }
                });
            }
        });
    }

    #[test]
    fn every_answer_also_fresh() {
        // Each input on its own, so an answer cannot lean on codes loaded for earlier ones.
        for &(region, s) in CORPUS {
            assert_eq!(
                ours(&Store::new(), region, s),
                reference(region, s),
                "{s:?} in {region:?}"
            );
        }
    }

    #[test]
    fn loads_only_the_codes_needed() {
        let store = Store::new();
        assert_eq!(store.loaded(), Some(vec![]));
        for s in ["+49 151 23456789", "0151 23456789", "030 1234567", "+49 (0)30 1234567"] {
            let n = store.parse(Some(Id::DE), s).unwrap();
            assert!(store.is_valid(&n), "{s}");
        }
        let n = store.parse(None, "+49 800 1234567").unwrap();
        assert_eq!(store.number_type(&n), Type::TollFree);
        assert_eq!(store.loaded(), Some(vec![49]));
        // Invalid and unknown codes load nothing and need no fallback.
        assert!(store.parse(None, "+999 1234567").is_err());
        assert!(!store.is_valid(&store.parse(Some(Id::DE), "12").unwrap()));
        assert_eq!(store.loaded(), Some(vec![49]));
        assert_eq!(store.fallbacks.load(Ordering::Relaxed), 0);

        // A second code is added beside the first, whose database stays as it is.
        let Handle::Small(de) = store.database(&[49]) else {
            panic!("full database")
        };
        let at = store.parse(None, "+43 664 1234567").unwrap();
        let Handle::Small(still) = store.database(&[49]) else {
            panic!("full database")
        };
        assert!(Arc::ptr_eq(&de, &still));
        assert_eq!(store.number_type(&at), Type::Mobile);
        assert_eq!(store.loaded(), Some(vec![43, 49]));
        assert!(store.is_valid(&n));

        // A national number in another region loads that region's code (1: US, CA, ...).
        let us = store.parse(Some(Id::US), "(650) 253-0000").unwrap();
        assert!(store.is_valid(&us));
        assert_eq!(store.loaded(), Some(vec![1, 43, 49]));
        assert_eq!(store.fallbacks.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn each_channel_kind_reaches_its_number_kinds() {
        use Reachable::{Calls, Texts};
        let cases = [
            ("+4915123456789", None, None),
            ("+491701234567", None, None),
            ("+49301234567", Some("fixed line"), None),
            ("+498001234567", Some("toll free"), None),
            ("+499001234567", Some("premium rate"), Some("premium rate")),
            // The US does not tell mobile from fixed line: both reach it.
            ("+12015550123", None, None),
        ];
        for (number, texts, calls) in cases {
            assert_eq!(refused_kind(number, Texts), texts, "{number} by text");
            assert_eq!(refused_kind(number, Calls), calls, "{number} by call");
        }
    }

    #[test]
    fn international_prefix_of_the_region_falls_back_to_the_full_database() {
        let store = Store::new();
        let n = store.parse(Some(Id::US), "011 49 30 1234567").unwrap();
        assert_eq!(n.code().value(), 49);
        assert_eq!(store.fallbacks.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_remembered_number_has_the_type_of_its_e164_form() {
        for (raw, region, e164) in [
            ("0151 23456789", Some(Id::DE), "+4915123456789"),
            ("030 1234567", Some(Id::DE), "+49301234567"),
            ("+39 06 1234 5678", None, "+390612345678"),
        ] {
            let national = parse(region, raw).unwrap();
            let fresh = number_type(&parse(None, e164).unwrap());
            let (valid, kind) = validate(&national);
            assert!(valid, "{raw}");
            assert_eq!(kind.is_some(), national.national().zeros() == 0, "{raw}");
            remember(e164, &national, kind);
            assert_eq!(number_type(&parse_e164(e164).unwrap()), fresh, "{raw}");
            assert_eq!(type_of_e164(e164), Some(fresh), "{raw}");
            // Another string is parsed, not taken from the memo.
            assert_eq!(parse_e164("+4930999999").unwrap().national().to_string(), "30999999");
        }
    }

    #[test]
    fn the_warm_up_loads_the_regions_code_only() {
        let store: &'static Store = Box::leak(Box::new(Store::new()));
        assert!(warm_up_in(store, None).is_none());
        warm_up_in(store, Some(Id::AT)).unwrap().join().unwrap();
        assert_eq!(store.loaded(), Some(vec![43]));
        assert!(warm_up_in(store, Some(Id::AT)).is_none(), "one warm-up per store");
    }

    #[test]
    fn switches_to_the_full_database_after_many_codes() {
        let store = Store::new();
        let numbers = [
            "+49 30 1234567",
            "+43 1 5123456",
            "+41 44 668 18 00",
            "+44 20 7946 0958",
            "+1 650 253 0000",
            "+33 1 42 68 53 00",
            "+39 06 6982 1234",
            "+7 495 123-45-67",
            "+61 2 9876 5432",
            "+81 3-1234-5678",
            "+55 11 3123-4567",
            "+91 11 2345 6789",
            "+31 20 123 4567",
            "+32 2 123 45 67",
            "+34 912 345 678",
            "+45 32 12 34 56",
        ];
        for s in numbers {
            store.parse(None, s).unwrap();
        }
        assert_eq!(store.loaded().map(|c| c.len()), Some(MAX_CODES));
        store.parse(None, "+46 8 123 456 78").unwrap();
        assert_eq!(store.loaded(), None, "switched to the full database");
        assert_same_answers(&store);
    }

    /// Every field of a region's metadata but the formatting rules (which build.rs drops);
    /// regexes by their source (compiling them all takes seconds in a debug build).
    fn fingerprint(m: &phonenumber::Metadata) -> String {
        use std::fmt::Write as _;
        let mut s = format!(
            "{} {} idd={:?}/{:?} np={:?} ext={:?} npp={:?} npt={:?} main={} ld={:?} portable={}\n",
            m.id(),
            m.country_code(),
            m.international_prefix().map(|r| r.as_str()),
            m.preferred_international_prefix(),
            m.national_prefix(),
            m.preferred_extension_prefix(),
            m.national_prefix_for_parsing().map(|r| r.as_str()),
            m.national_prefix_transform_rule(),
            m.is_main_country_for_code(),
            m.leading_digits().map(|r| r.as_str()),
            m.is_mobile_number_portable(),
        );
        use Type::*;
        for kind in [
            Unknown,
            FixedLine,
            Mobile,
            TollFree,
            PremiumRate,
            SharedCost,
            PersonalNumber,
            Voip,
            Pager,
            Uan,
            Emergency,
            Voicemail,
            ShortCode,
            StandardRate,
            Carrier,
            NoInternational,
        ] {
            if let Some(d) = m.descriptors().get(kind) {
                let (re, lengths, local) = (
                    d.national_number().as_str(),
                    d.possible_length(),
                    d.possible_local_length(),
                );
                writeln!(s, "{kind:?} {re} {lengths:?} {local:?} {:?}", d.example()).unwrap();
            }
        }
        s
    }

    #[test]
    fn vendored_metadata_is_the_crates() {
        // The crate's database keeps one "001" (non-geographic) entry by id, we keep all nine.
        let ids: std::collections::HashSet<&str> = REGIONS.iter().map(|r| r.0).collect();
        assert_eq!(ids.len(), DATABASE.iter().count());
        let mut codes: Vec<u16> = REGIONS.iter().map(|r| r.1).collect();
        codes.sort_unstable();
        codes.dedup();
        for code in codes {
            // Every field used by parsing and validation, the regexes by their source, in order.
            let ours = build(&[code]);
            let fingerprints = |db: &Database| {
                db.by_code(&code)
                    .unwrap()
                    .into_iter()
                    .map(fingerprint)
                    .collect::<Vec<_>>()
            };
            assert_eq!(fingerprints(&ours), fingerprints(&DATABASE), "metadata of {code}");
            assert!(
                ours.iter()
                    .all(|m| m.formats().is_empty() && m.international_formats().is_empty())
            );
            assert_eq!(ours.region(&code), DATABASE.region(&code), "regions of {code}");
        }
        assert_eq!(region_code(Id::DE), Some(49));
        assert_eq!(region_code(Id::GG), Some(44));
        assert_eq!(code_after_plus("+ (49) 30"), Some(49));
        assert_eq!(code_after_plus("+0 351"), Some(351));
        assert_eq!(code_after_plus("+999"), None);
        assert_eq!(code_after_plus("030"), None);
    }
}
