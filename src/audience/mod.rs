//! Loading the audience: the recipients CSV and the suppression (opt-out) list.
//!
//! The CSV rules come from the product spec: comma-, semicolon- or tab-delimited
//! (detected from the header row unless `[audience] delimiter` overrides it), UTF-8
//! with or without BOM (a line that is not UTF-8 is read as Windows-1252, unless `[audience]
//! encoding` says otherwise), UTF-16 with a BOM, LF, CRLF or CR line ends, a required header
//! row whose names are case-insensitive. Known columns are `name`, `email`, `phone`, `tags`,
//! `locale` and `opt_out`; every other column lands in [`Recipient::extra`].
//!
//! Only whole-file problems are errors ([`AudienceError`]), among them a line too long and a
//! quoted field that is never closed (which would otherwise swallow the rest of the file). A row that cannot be
//! read at all becomes a [`RowError`]; a row with a bad address becomes a
//! [`Recipient`] whose [`Address`] is [`Address::Invalid`], so the caller can report
//! it as `skipped` with its line number and reason. Messages never contain row
//! data other than the offending address itself in `Address::Invalid::raw`.
//!
//! Deduplication ("delivered once per channel") and suppression ("skipped with
//! reason") are decided by the caller with [`Address::valid`],
//! [`Recipient::opted_out_of`] and [`Suppressions`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use phonenumber::country::Id;

pub mod address;
mod lines;
mod reader;
pub mod suppression;

use address::{normalize_phone, validate_email};

pub use address::{Address, parse_region};
pub use lines::{Decoding, Encoding};
pub use reader::{LineAccount, MAX_HEADER, MAX_LINE, Reader, Row};
pub use suppression::Suppressions;

/// One data row of the audience CSV.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Recipient {
    /// Physical line number where the row starts (the header is line 1 when it is
    /// the first line of the file). Correct across quoted multi-line fields,
    /// blank lines and CRLF.
    pub line: u64,
    /// `""` when the column is absent.
    pub name: String,
    pub email: Address,
    pub phone: Address,
    /// Trimmed, empty entries dropped, original case kept, duplicates
    /// (case-insensitive) dropped. Separated by `;` (a `,` is accepted too).
    pub tags: Vec<String>,
    pub locale: Option<String>,
    /// Lowercased, trimmed channel names or types; may contain `all`.
    pub opt_out: Vec<String>,
    /// Every other column: key = header lowercased and trimmed, value = cell
    /// trimmed (`""` for an empty cell). A column used through an alias
    /// (`e-mail`, `telefon`, `handy`, ... see `EMAIL_ALIASES` / `PHONE_ALIASES`) is also kept
    /// here under its own name.
    pub extra: BTreeMap<String, String>,
}

impl Recipient {
    /// Case-insensitive tag check.
    pub fn has_tag(&self, tag: &str) -> bool {
        let tag = tag.trim().to_lowercase();
        self.tags.iter().any(|t| t.to_lowercase() == tag)
    }

    /// True when the recipient's `opt_out` cell names `all`, the channel's name
    /// or the channel's type (case-insensitive).
    pub fn opted_out_of(&self, channel_name: &str, channel_type: &str) -> bool {
        let name = channel_name.trim().to_lowercase();
        let kind = channel_type.trim().to_lowercase();
        self.opt_out
            .iter()
            .any(|o| o == "all" || (!name.is_empty() && *o == name) || (!kind.is_empty() && *o == kind))
    }
}

/// A row that could not be read at all (wrong field count, invalid UTF-8, ...).
/// `reason` does not repeat the line number; `Display` gives `line N: reason`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowError {
    pub line: u64,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// A parsed audience file.
#[derive(Debug, Default)]
pub struct Audience {
    pub path: PathBuf,
    /// Lowercased, trimmed header names in file order (columns with a blank
    /// header are left out).
    pub columns: Vec<String>,
    pub recipients: Vec<Recipient>,
    pub rejected: Vec<RowError>,
    pub decoding: Decoding,
    pub account: LineAccount,
}

#[derive(Debug, Clone, Default)]
pub struct AudienceOptions {
    /// Overrides delimiter detection (`b','`, `b';'`, `b'\t'`, ...).
    pub delimiter: Option<u8>,
    /// Region used for phone numbers written without a `+` / `00` prefix.
    pub default_region: Option<Id>,
    /// `None`: UTF-8, and Windows-1252 for a line that is not UTF-8 (a BOM always wins).
    pub encoding: Option<Encoding>,
}

impl AudienceOptions {
    /// The options the `audience` fuzz target picks with its input's first byte (delimiter
    /// override, default region), also used by the regression tests of what it found.
    #[doc(hidden)]
    pub fn from_fuzz_byte(opts: u8) -> AudienceOptions {
        let delimiter = match opts & 3 {
            0 => None,
            1 => Some(b','),
            2 => Some(b';'),
            _ => Some(b'\t'),
        };
        AudienceOptions {
            delimiter,
            default_region: (opts & 4 != 0).then_some(Id::DE),
            encoding: None,
        }
    }
}

/// Whole-file problems. `Display` always starts with the file path.
#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("{}: cannot read file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no header row", path.display())]
    NoHeader { path: PathBuf },
    #[error("{}: header row is not valid UTF-8", path.display())]
    HeaderNotUtf8 { path: PathBuf },
    #[error(
        "{}: header row has neither an `email` nor a `phone` column{}",
        path.display(),
        if *looks_like_data { " (the first line looks like data: a header row is required)" } else { "" }
    )]
    NoAddressColumn { path: PathBuf, looks_like_data: bool },
    #[error("{}: duplicate column `{column}` in header row", path.display())]
    DuplicateColumn { path: PathBuf, column: String },
    #[error(
        "{}: line {line}: a quoted field opens here and is never closed; it would swallow the {swallowed} \
         line(s) after it. Close the quote (a quote inside a cell is written \"\")",
        path.display()
    )]
    UnclosedQuote { path: PathBuf, line: u64, swallowed: u64 },
    #[error(
        "{}: line {line}: a quoted field opens here and only closes on line {closed}, with more text after \
         the closing quote; it would swallow the {} line(s) between. Check the quotes on both lines",
        path.display(),
        closed - line - 1
    )]
    QuoteClosedLate { path: PathBuf, line: u64, closed: u64 },
    #[error(
        "{}: line {line}: a quoted field opens here and is still open {lines} lines and 1 MiB later; a closing \
         quote is probably missing",
        path.display()
    )]
    QuoteTooLong { path: PathBuf, line: u64, lines: u64 },
    #[error("{}: line {line} is longer than 1 MiB; is this really the audience CSV?", path.display())]
    LineTooLong { path: PathBuf, line: u64 },
    #[error("{}: line {line}: the header row is longer than 64 KiB; is this really the audience CSV?", path.display())]
    HeaderTooLong { path: PathBuf, line: u64 },
    #[error("{}: internal error while reading: {reason}", path.display())]
    Internal { path: PathBuf, reason: String },
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Read `path` and [`parse`] it.
pub fn load(path: &Path, opts: &AudienceOptions) -> Result<Audience, AudienceError> {
    Reader::open(path, opts)?.collect_all()
}

/// Parse audience CSV bytes. `path_for_messages` is only used in messages and
/// stored in [`Audience::path`].
pub fn parse(path_for_messages: &Path, bytes: &[u8], opts: &AudienceOptions) -> Result<Audience, AudienceError> {
    Reader::new(path_for_messages, bytes, opts)?.collect_all()
}

/// Which cell of a row feeds which field.
#[derive(Debug, Default)]
struct ColumnMap {
    name: Option<usize>,
    email: Option<usize>,
    phone: Option<usize>,
    tags: Option<usize>,
    locale: Option<usize>,
    opt_out: Option<usize>,
    /// (index, key) of every column that goes to `extra`.
    extra: Vec<(usize, String)>,
}

// What spreadsheets and address books call these columns, in English and German (the first
// users' exports say "E-Mail" and "Telefon"/"Handy").
const EMAIL_ALIASES: &[&str] = &[
    "e-mail",
    "mail",
    "email address",
    "e-mail address",
    "e-mail-adresse",
    "email-adresse",
    "emailadresse",
];
const PHONE_ALIASES: &[&str] = &[
    "mobile",
    "mobile phone",
    "phone number",
    "telephone",
    "tel",
    "telefon",
    "telefonnummer",
    "handy",
    "handynummer",
    "mobil",
    "mobilnummer",
    "mobiltelefon",
];

impl ColumnMap {
    fn new(names: &[String]) -> ColumnMap {
        let mut map = ColumnMap::default();
        for (i, n) in names.iter().enumerate() {
            let slot = match n.as_str() {
                "" => continue,
                "name" => &mut map.name,
                "email" => &mut map.email,
                "phone" => &mut map.phone,
                "tags" => &mut map.tags,
                "locale" => &mut map.locale,
                "opt_out" => &mut map.opt_out,
                _ => {
                    map.extra.push((i, n.clone()));
                    continue;
                }
            };
            // Duplicates are rejected before this; keep the first anyway.
            slot.get_or_insert(i);
        }
        let alias = |aliases: &[&str]| names.iter().position(|n| aliases.contains(&n.as_str()));
        if map.email.is_none() {
            map.email = alias(EMAIL_ALIASES);
        }
        if map.phone.is_none() {
            map.phone = alias(PHONE_ALIASES);
        }
        map
    }
}

/// The header's cells as column names and the map of known columns; whole-file errors for a
/// header that is not UTF-8, has no address column, or names a column twice.
fn read_header<'f>(
    path: &Path,
    cells: impl Iterator<Item = &'f [u8]>,
) -> Result<(Vec<String>, ColumnMap), AudienceError> {
    let mut names = Vec::new();
    for field in cells {
        let name = std::str::from_utf8(field).map_err(|_| AudienceError::HeaderNotUtf8 {
            path: path.to_path_buf(),
        })?;
        names.push(name.trim().to_lowercase());
    }
    let map = ColumnMap::new(&names);
    if map.email.is_none() && map.phone.is_none() {
        let looks_like_data = names.iter().any(|n| n.contains('@'))
            || names
                .iter()
                .any(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || "+-/() ".contains(c)));
        return Err(AudienceError::NoAddressColumn {
            path: path.to_path_buf(),
            looks_like_data,
        });
    }
    let mut seen = HashSet::new();
    for n in names.iter().filter(|n| !n.is_empty()) {
        if !seen.insert(n.as_str()) {
            return Err(AudienceError::DuplicateColumn {
                path: path.to_path_buf(),
                column: n.clone(),
            });
        }
    }
    Ok((names, map))
}

fn build_recipient(line: u64, fields: &[&str], map: &ColumnMap, opts: &AudienceOptions) -> Recipient {
    let cell = |idx: Option<usize>| idx.map_or("", |i| fields[i]);
    let email = match cell(map.email) {
        "" => Address::Missing,
        raw => match validate_email(raw) {
            Ok(v) => Address::Valid(v),
            Err(reason) => Address::Invalid {
                raw: raw.to_string(),
                reason,
            },
        },
    };
    let phone = match cell(map.phone) {
        "" => Address::Missing,
        raw => match normalize_phone(raw, opts.default_region) {
            Ok(v) => Address::Valid(v),
            Err(reason) => Address::Invalid {
                raw: raw.to_string(),
                reason,
            },
        },
    };
    let mut tags: Vec<String> = Vec::new();
    for t in split_list(cell(map.tags)) {
        if !tags.iter().any(|x| x.to_lowercase() == t.to_lowercase()) {
            tags.push(t.to_string());
        }
    }
    let mut opt_out: Vec<String> = Vec::new();
    for o in split_list(cell(map.opt_out)) {
        let o = o.to_lowercase();
        if !opt_out.contains(&o) {
            opt_out.push(o);
        }
    }
    let locale = match cell(map.locale) {
        "" => None,
        l => Some(l.to_string()),
    };
    let extra = map
        .extra
        .iter()
        .map(|(i, key)| (key.clone(), fields[*i].to_string()))
        .collect();
    Recipient {
        line,
        name: cell(map.name).to_string(),
        email,
        phone,
        tags,
        locale,
        opt_out,
        extra,
    }
}

/// Split a `;`- (or `,`-) separated cell; entries trimmed, empty ones dropped.
fn split_list(cell: &str) -> impl Iterator<Item = &str> {
    cell.split([';', ',']).map(str::trim).filter(|s| !s.is_empty())
}

/// The whole-buffer reader this module had before streaming, kept to check the streaming one
/// against it.
#[cfg(test)]
mod reference {
    use super::*;

    fn is_blank_record(rec: &csv::ByteRecord) -> bool {
        rec.iter().all(|f| f.trim_ascii().is_empty())
    }

    fn csv_reason(e: &csv::Error) -> String {
        match e.kind() {
            csv::ErrorKind::Io(_) => "read error".to_string(),
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_string(),
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("expected {expected_len} fields, found {len}")
            }
            _ => "malformed CSV".to_string(),
        }
    }

    /// Excel writes an optional first line `sep=;`. Returns where the CSV proper
    /// starts and the delimiter it names.
    fn excel_sep_hint(data: &[u8]) -> (usize, Option<u8>) {
        if data.len() >= 5 && data[..4].eq_ignore_ascii_case(b"sep=") {
            let rest = &data[5..];
            let end = match rest {
                [] => Some(0),
                [b'\r', b'\n', ..] => Some(2),
                [b'\n' | b'\r', ..] => Some(1),
                _ => None,
            };
            if let Some(end) = end {
                return (5 + end, Some(data[4]));
            }
        }
        (0, None)
    }

    pub fn parse_whole(
        path_for_messages: &Path,
        bytes: &[u8],
        opts: &AudienceOptions,
    ) -> Result<Audience, AudienceError> {
        let path = path_for_messages;
        let data = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let (start, sep_hint) = excel_sep_hint(data);
        let body = &data[start..];
        let delimiter = opts.delimiter.or(sep_hint).unwrap_or_else(|| detect_delimiter(body));

        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(body);
        let mut lines = LineCounter::new(data);
        let mut rec = csv::ByteRecord::new();
        let record_line = |rec: &csv::ByteRecord, lines: &mut LineCounter<'_>| {
            let byte = rec.position().map_or(0, |p| p.byte()) as usize;
            lines.line_at(start + byte)
        };

        // Header: the first row that is not blank.
        loop {
            match rdr.read_byte_record(&mut rec) {
                Ok(true) if is_blank_record(&rec) => continue,
                Ok(true) => break,
                Ok(false) => {
                    return Err(AudienceError::NoHeader {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) => {
                    return Err(AudienceError::Internal {
                        path: path.to_path_buf(),
                        reason: format!("line {}: {}", error_line(&e, &mut lines, start), csv_reason(&e)),
                    });
                }
            }
        }
        let (names, map) = read_header(path, rec.iter())?;
        let ncols = names.len();

        let mut audience = Audience {
            path: path.to_path_buf(),
            columns: names.iter().filter(|n| !n.is_empty()).cloned().collect(),
            recipients: Vec::new(),
            rejected: Vec::new(),
            ..Default::default()
        };

        loop {
            match rdr.read_byte_record(&mut rec) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    audience.rejected.push(RowError {
                        line: error_line(&e, &mut lines, start),
                        reason: csv_reason(&e),
                    });
                    if e.is_io_error() {
                        break;
                    }
                    continue;
                }
            }
            if is_blank_record(&rec) {
                continue;
            }
            let line = record_line(&rec, &mut lines);
            // Surplus trailing cells that are empty (spreadsheets pad rows) are fine.
            let surplus_data = rec.iter().skip(ncols).any(|f| !f.trim_ascii().is_empty());
            if rec.len() < ncols || surplus_data {
                audience.rejected.push(RowError {
                    line,
                    reason: format!("expected {ncols} fields, found {}", rec.len()),
                });
                continue;
            }
            let mut fields: Vec<&str> = Vec::with_capacity(ncols);
            let mut bad_utf8 = None;
            for (i, f) in rec.iter().take(ncols).enumerate() {
                match std::str::from_utf8(f) {
                    Ok(s) => fields.push(s.trim()),
                    Err(_) => {
                        bad_utf8 = Some(i);
                        break;
                    }
                }
            }
            if let Some(i) = bad_utf8 {
                let reason = match names[i].as_str() {
                    "" => format!("not valid UTF-8 (column {})", i + 1),
                    n => format!("not valid UTF-8 (column `{n}`)"),
                };
                audience.rejected.push(RowError { line, reason });
                continue;
            }
            if fields.iter().all(|f| f.is_empty()) {
                continue;
            }
            audience.recipients.push(build_recipient(line, &fields, &map, opts));
        }
        Ok(audience)
    }

    fn error_line(e: &csv::Error, lines: &mut LineCounter<'_>, start: usize) -> u64 {
        match e.position() {
            Some(p) => lines.line_at(start + p.byte() as usize),
            None => lines.line,
        }
    }

    /// Count `,`, `;` and tab outside quotes in the first non-blank line; the most
    /// frequent wins, ties in that order, `,` when there are none.
    fn detect_delimiter(data: &[u8]) -> u8 {
        const CANDIDATES: [u8; 3] = [b',', b';', b'\t'];
        let mut counts = [0usize; 3];
        let mut in_quotes = false;
        let mut has_content = false;
        for &b in data {
            match b {
                b'"' => {
                    in_quotes = !in_quotes;
                    has_content = true;
                }
                b'\n' | b'\r' if !in_quotes => {
                    if has_content {
                        break;
                    }
                    counts = [0; 3];
                }
                _ if in_quotes => {}
                _ => {
                    if let Some(i) = CANDIDATES.iter().position(|&c| c == b) {
                        counts[i] += 1;
                    }
                    if !b.is_ascii_whitespace() {
                        has_content = true;
                    }
                }
            }
        }
        let mut best = 0;
        for i in 1..CANDIDATES.len() {
            if counts[i] > counts[best] {
                best = i;
            }
        }
        CANDIDATES[best]
    }

    /// Maps byte offsets to physical line numbers. `csv::Position::line` is not
    /// usable as is: it is taken before blank lines are skipped and, with CRLF, before
    /// the `\n` of the previous record is consumed. Offsets must be asked for in
    /// increasing order (they are: records come in file order).
    struct LineCounter<'a> {
        data: &'a [u8],
        pos: usize,
        line: u64,
    }

    impl<'a> LineCounter<'a> {
        fn new(data: &'a [u8]) -> Self {
            LineCounter { data, pos: 0, line: 1 }
        }

        /// Line of the first byte at or after `offset` that is not a line break.
        fn line_at(&mut self, offset: usize) -> u64 {
            let mut target = offset.min(self.data.len());
            while target < self.data.len() && matches!(self.data[target], b'\r' | b'\n') {
                target += 1;
            }
            while self.pos < target {
                match self.data[self.pos] {
                    b'\n' => self.line += 1,
                    b'\r' if self.data.get(self.pos + 1) != Some(&b'\n') => self.line += 1,
                    _ => {}
                }
                self.pos += 1;
            }
            self.line
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `n` bytes per call, to put chunk boundaries everywhere.
    pub(super) struct Trickle<'a> {
        pub data: &'a [u8],
        pub n: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let k = self.n.min(out.len()).min(self.data.len());
            out[..k].copy_from_slice(&self.data[..k]);
            self.data = &self.data[k..];
            Ok(k)
        }
    }

    fn outcome(r: Result<Audience, AudienceError>) -> String {
        // The whole-buffer reader gave no hint on rows over several lines.
        let r = r.map(|mut a| {
            for e in &mut a.rejected {
                if let Some(i) = e.reason.find(" (the row runs over lines") {
                    e.reason.truncate(i);
                }
            }
            a
        });
        match r {
            Ok(a) => format!("{:?} {:?} {:?} {:?}", a.path, a.columns, a.recipients, a.rejected),
            Err(e) => format!("error: {e}"),
        }
    }

    /// The streaming reader reads exactly what the whole-buffer reader it replaced did, whatever
    /// the chunk boundaries: random files made of the pieces that matter (BOM, `sep=` lines,
    /// CR / LF / CRLF, blank lines, quotes with line breaks inside, bad UTF-8, short and long
    /// rows, big fields that cross chunk boundaries).
    #[test]
    fn streaming_matches_the_whole_buffer_reader() {
        const PIECES: &[&[u8]] = &[
            b"name,email,phone,tags\n",
            b"name;email;phone\r\n",
            b"email\tphone\r",
            b"sep=;\r\n",
            b"\xEF\xBB\xBF",
            b"Ada,ada@example.com,030 1234567,vip\n",
            b"Bob;bob@example.org;+1 650 253 0000\r\n",
            b"\"Doe, Jane\",jane@example.com,,\"a\r\nb\"\n",
            b"\n",
            b"\r\n",
            b"\r",
            b"  ,  ,  \n",
            b"x,y\n",
            b"a,b,c,d,e,f\n",
            b"\xff\xfe,bad@example.com\n",
            b"\"unterminated,",
            b",",
            b";",
            b"\t",
            b"\"",
            b"0151 23456789",
            b"kunde@example.de",
        ];
        // Strict UTF-8, as the whole-buffer reader was.
        let opts_all = [
            AudienceOptions {
                encoding: Some(Encoding::Utf8),
                ..opts()
            },
            AudienceOptions {
                delimiter: Some(b';'),
                default_region: None,
                encoding: Some(Encoding::Utf8),
            },
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut quote_errors = 0;
        for case in 0..2000 {
            let mut data = Vec::new();
            let parts = 1 + next() % 14;
            for _ in 0..parts {
                let piece = PIECES[(next() % PIECES.len() as u64) as usize];
                data.extend_from_slice(piece);
                // Now and then a field long enough to cross the reader's chunks.
                if next() % 40 == 0 {
                    data.extend(std::iter::repeat_n(b'x', 70_000 + (next() % 3) as usize));
                }
            }
            if data.starts_with(b"\xff\xfe") {
                // A UTF-16 byte-order mark now.
                continue;
            }
            let o = &opts_all[case % 2];
            let got = parse(Path::new("c.csv"), &data, o);
            // Where the whole-buffer reader let a quote swallow the rest of the file (or the
            // lines up to a stray quote), the streaming one refuses the file.
            if let Err(AudienceError::UnclosedQuote { .. } | AudienceError::QuoteClosedLate { .. }) = &got {
                assert!(data.contains(&b'"'), "case {case}: {data:?}");
                quote_errors += 1;
                continue;
            }
            if let Err(AudienceError::HeaderTooLong { .. }) = &got {
                assert!(data.len() > MAX_HEADER, "case {case}");
                continue;
            }
            let want = outcome(reference::parse_whole(Path::new("c.csv"), &data, o));
            assert_eq!(outcome(got), want, "case {case}: {data:?}");
            for n in [1, 3, 7, 4096] {
                let got = Reader::new(Path::new("c.csv"), Trickle { data: &data, n }, o).and_then(Reader::collect_all);
                assert_eq!(outcome(got), want, "case {case}, {n}-byte reads: {data:?}");
            }
        }
        // Both kinds of cases were generated.
        assert!((1..1500).contains(&quote_errors), "{quote_errors}");
    }

    fn opts() -> AudienceOptions {
        AudienceOptions {
            delimiter: None,
            default_region: Some(Id::DE),
            encoding: None,
        }
    }

    fn parse_bytes(bytes: &[u8]) -> Audience {
        parse(Path::new("customers.csv"), bytes, &opts()).expect("parses")
    }

    fn parse_ok(text: &str) -> Audience {
        parse_bytes(text.as_bytes())
    }

    fn parse_err(text: &str) -> AudienceError {
        parse(Path::new("customers.csv"), text.as_bytes(), &opts()).expect_err("must fail")
    }

    fn valid(s: &str) -> Address {
        Address::Valid(s.to_string())
    }

    fn fixture(name: &str) -> PathBuf {
        // `file!()` is this file's path as given to rustc: relative to the
        // package root in the main crate (where tests run), absolute elsewhere.
        Path::new(file!())
            .parent()
            .unwrap()
            .join("../../tests/data/audience")
            .join(name)
    }

    #[test]
    fn comma_file_all_known_columns() {
        let a = parse_ok(
            "name,email,phone,tags,locale,opt_out\n\
             Ada,ada@example.com,030 1234567,\"vip; Beta ;;\",de-DE,SMS ; Email\n\
             Bob,,+1 650 253 0000,,,\n",
        );
        assert_eq!(a.path, Path::new("customers.csv"));
        assert_eq!(a.columns, ["name", "email", "phone", "tags", "locale", "opt_out"]);
        assert!(a.rejected.is_empty());
        assert_eq!(a.recipients.len(), 2);
        let ada = &a.recipients[0];
        assert_eq!(ada.line, 2);
        assert_eq!(ada.name, "Ada");
        assert_eq!(ada.email, valid("ada@example.com"));
        assert_eq!(ada.phone, valid("+49301234567"));
        assert_eq!(ada.tags, ["vip", "Beta"]);
        assert_eq!(ada.locale.as_deref(), Some("de-DE"));
        assert_eq!(ada.opt_out, ["sms", "email"]);
        assert!(ada.extra.is_empty());
        let bob = &a.recipients[1];
        assert_eq!(bob.line, 3);
        assert_eq!(bob.email, Address::Missing);
        assert!(bob.email.is_missing());
        assert_eq!(bob.phone.valid(), Some("+16502530000"));
        assert!(bob.tags.is_empty());
        assert_eq!(bob.locale, None);
        assert!(bob.opt_out.is_empty());
    }

    #[test]
    fn semicolon_file_is_detected() {
        let a = parse_ok("name;email;city\n\"Doe, Jane\";jane@example.com;Berlin, Mitte\nJohn;john@example.org;Köln\n");
        assert_eq!(a.columns, ["name", "email", "city"]);
        assert!(a.rejected.is_empty());
        assert_eq!(a.recipients.len(), 2);
        assert_eq!(a.recipients[0].name, "Doe, Jane");
        assert_eq!(a.recipients[0].extra["city"], "Berlin, Mitte");
        assert_eq!(a.recipients[1].email, valid("john@example.org"));
        assert_eq!(a.recipients[1].extra["city"], "Köln");
    }

    #[test]
    fn tab_file_is_detected() {
        let a = parse_ok("name\temail\tnote\nAda\tada@example.com\ta, b; c\n");
        assert_eq!(a.columns, ["name", "email", "note"]);
        assert_eq!(a.recipients[0].extra["note"], "a, b; c");
    }

    #[test]
    fn delimiter_detection_ignores_quoted_text_and_defaults_to_comma() {
        let columns = |text: &str| parse_ok(text).columns;
        assert_eq!(columns("\"a;b;c\",email\n"), ["a;b;c", "email"]);
        assert_eq!(columns("\"x,y,z\";email;name\n"), ["x,y,z", "email", "name"]);
        assert_eq!(columns("email\n1;2;3;4\n"), ["email"]);
        assert_eq!(columns("\r\n\r\nname;email\r\n"), ["name", "email"]);
        // Tie: comma wins.
        assert_eq!(columns("a;b,email\n"), ["a;b", "email"]);
    }

    #[test]
    fn delimiter_option_overrides_detection() {
        let text = "email;name,with,commas\na@example.com;x,y,z\n";
        // Detection picks ',' (3 vs 1), which leaves no `email` column.
        assert!(matches!(parse_err(text), AudienceError::NoAddressColumn { .. }));
        let o = AudienceOptions {
            delimiter: Some(b';'),
            ..opts()
        };
        let a = parse(Path::new("c.csv"), text.as_bytes(), &o).unwrap();
        assert_eq!(a.columns, ["email", "name,with,commas"]);
        assert_eq!(a.recipients[0].email, valid("a@example.com"));
        assert_eq!(a.recipients[0].extra["name,with,commas"], "x,y,z");
    }

    #[test]
    fn excel_sep_hint_line_is_honoured() {
        let a = parse_ok("sep=;\r\nname;email\r\nAda;ada@example.com\r\nBad\r\n");
        assert_eq!(a.columns, ["name", "email"]);
        assert_eq!(a.recipients.len(), 1);
        assert_eq!(a.recipients[0].line, 3);
        assert_eq!(
            a.rejected,
            [RowError {
                line: 4,
                reason: "expected 2 fields, found 1".into()
            }]
        );
    }

    #[test]
    fn bom_and_crlf() {
        let a = parse_bytes(b"\xEF\xBB\xBFemail,name\r\nada@example.com,Ada\r\n\r\nbob@example.com,Bob\r\nbroken\r\n");
        assert_eq!(a.columns, ["email", "name"], "BOM must not stick to the first column");
        assert_eq!(a.recipients.len(), 2);
        assert_eq!(a.recipients[0].email, valid("ada@example.com"));
        assert_eq!(a.recipients[0].name, "Ada", "no trailing \\r");
        assert_eq!(a.recipients[0].line, 2);
        assert_eq!(a.recipients[1].line, 4);
        assert_eq!(a.rejected.len(), 1);
        assert_eq!(a.rejected[0].line, 5);
    }

    #[test]
    fn old_mac_cr_line_ends() {
        let a = parse_ok("email,name\rada@example.com,Ada\rx\r");
        assert_eq!(a.recipients[0].line, 2);
        assert_eq!(a.recipients[0].name, "Ada");
        assert_eq!(a.rejected[0].line, 3);
    }

    #[test]
    fn headers_are_case_insensitive_and_trimmed() {
        let a = parse_ok(
            " NAME ,EMAIL,Phone, Tags,LOCALE,Opt_Out ,Customer ID\nAda,ada@example.com,030 1234567,VIP,fr,ALL,42\n",
        );
        assert_eq!(
            a.columns,
            ["name", "email", "phone", "tags", "locale", "opt_out", "customer id"]
        );
        let r = &a.recipients[0];
        assert_eq!(r.name, "Ada");
        assert_eq!(r.email, valid("ada@example.com"));
        assert_eq!(r.phone, valid("+49301234567"));
        assert_eq!(r.tags, ["VIP"]);
        assert_eq!(r.locale.as_deref(), Some("fr"));
        assert_eq!(r.opt_out, ["all"]);
        assert_eq!(r.extra.len(), 1);
        assert_eq!(r.extra["customer id"], "42");
    }

    #[test]
    fn aliases_apply_only_without_the_canonical_column() {
        let a = parse_ok("E-Mail,Mobile\nada@example.com,0151 23456789\n");
        let r = &a.recipients[0];
        assert_eq!(r.email, valid("ada@example.com"));
        assert_eq!(r.phone, valid("+4915123456789"));
        // The aliased columns stay available under their own names.
        assert_eq!(r.extra["e-mail"], "ada@example.com");
        assert_eq!(r.extra["mobile"], "0151 23456789");

        let a = parse_ok("Name;E-Mail-Adresse;Telefon\nAda;ada@example.com;030 1234567\n");
        let r = &a.recipients[0];
        assert_eq!(r.email, valid("ada@example.com"));
        assert_eq!(r.phone, valid("+49301234567"));
        let a = parse_ok("Name;Handy\nAda;0151 23456789\n");
        assert_eq!(a.recipients[0].phone, valid("+4915123456789"));

        let a = parse_ok("email,mail,tel\nada@example.com,old@example.com,030 1234567\n");
        let r = &a.recipients[0];
        assert_eq!(r.email, valid("ada@example.com"));
        assert_eq!(r.phone, valid("+49301234567"));
        assert_eq!(r.extra["mail"], "old@example.com");
    }

    #[test]
    fn extra_columns_reach_extra() {
        let a =
            parse_ok("email,First Name, Plan ,Empty,\nada@example.com,  Ada  ,Pro,,\nbob@example.com,Bob,Free,x,\n");
        // A blank header name (trailing delimiter) is dropped.
        assert_eq!(a.columns, ["email", "first name", "plan", "empty"]);
        let r = &a.recipients[0];
        assert_eq!(r.extra.len(), 3);
        assert_eq!(r.extra["first name"], "Ada");
        assert_eq!(r.extra["plan"], "Pro");
        assert_eq!(r.extra["empty"], "");
        assert_eq!(a.recipients[1].extra["empty"], "x");
        assert_eq!(r.name, "", "no name column");
        assert_eq!(r.phone, Address::Missing, "no phone column");
    }

    #[test]
    fn invalid_email_row_is_kept_with_reason() {
        let a = parse_ok(
            "name,email\nA,no-at-sign.example.com\nB,b@localhost\nC,Carl <c@example.com>\nD, d@example.com \nE,e e@example.com\n",
        );
        assert!(a.rejected.is_empty());
        let r = &a.recipients;
        assert_eq!(
            r[0].email,
            Address::Invalid {
                raw: "no-at-sign.example.com".into(),
                reason: "invalid email address: missing '@'".into()
            }
        );
        assert_eq!(r[0].line, 2);
        assert_eq!(r[0].email.valid(), None);
        assert!(r[1].email.invalid_reason().unwrap().contains("top-level domain"));
        assert!(r[2].email.invalid_reason().unwrap().contains("bare address"));
        assert_eq!(r[3].email, valid("d@example.com"));
        assert!(
            r[4].email
                .invalid_reason()
                .unwrap()
                .starts_with("invalid email address:")
        );
    }

    #[test]
    fn invalid_phone_row_is_kept_with_reason() {
        let a = parse_ok("name,phone\nA,12\nB,030 1234567 abc\nC,+999 1234567\nD,(030) 123-45-67\n");
        let r = &a.recipients;
        assert_eq!(
            r[0].phone,
            Address::Invalid {
                raw: "12".into(),
                reason: "not a valid phone number for region DE".into()
            }
        );
        assert_eq!(
            r[1].phone.invalid_reason(),
            Some("invalid phone number: unexpected character 'a'")
        );
        assert_eq!(
            r[2].phone.invalid_reason(),
            Some("invalid phone number: unknown country code")
        );
        assert_eq!(r[3].phone, valid("+49301234567"));
    }

    #[test]
    fn phone_without_region() {
        let o = AudienceOptions::default();
        let a = parse(
            Path::new("c.csv"),
            b"phone\n030 1234567\n+49 30 1234567\n0049 30 1234567\n",
            &o,
        )
        .unwrap();
        assert_eq!(
            a.recipients[0].phone,
            Address::Invalid {
                raw: "030 1234567".into(),
                reason: "no country code and no default_region configured".into()
            }
        );
        assert_eq!(a.recipients[1].phone, valid("+49301234567"));
        assert_eq!(a.recipients[2].phone, valid("+49301234567"));
    }

    #[test]
    fn e164_normalisation_with_region_de() {
        let de = Some(Id::DE);
        let ok = |raw: &str| normalize_phone(raw, de).unwrap();
        assert_eq!(ok("030 1234567"), "+49301234567");
        assert_eq!(ok("0151 23456789"), "+4915123456789");
        // phonenumber drops the "(0)" national prefix after the country code.
        assert_eq!(ok("+49 (0)30 1234567"), "+49301234567");
        assert_eq!(ok("+49 (0)151 23456789"), "+4915123456789");
        assert_eq!(ok("030/1234567"), "+49301234567");
        assert_eq!(ok("030-123 45 67"), "+49301234567");
        assert_eq!(ok("(030) 1234567"), "+49301234567");
        assert_eq!(ok("+49.30.1234567"), "+49301234567");
        assert_eq!(ok("0049 30 1234567"), "+49301234567");
        assert_eq!(ok("00 49 151 23456789"), "+4915123456789");
        assert_eq!(ok("\u{a0}030\u{a0}1234567 "), "+49301234567");
        // An explicit country code beats the default region.
        assert_eq!(ok("+1 (650) 253-0000"), "+16502530000");
        assert_eq!(ok("+44 (0)20 7946 0958"), "+442079460958");
        // Region changes the reading of national numbers.
        assert_eq!(normalize_phone("(650) 253-0000", Some(Id::US)).unwrap(), "+16502530000");

        assert_eq!(
            normalize_phone("0151 2345678901234", de).unwrap_err(),
            "not a valid phone number for region DE"
        );
        assert_eq!(normalize_phone("+49 12", de).unwrap_err(), "not a valid phone number");
        assert!(
            normalize_phone("1-800-FLOWERS", Some(Id::US)).is_err(),
            "no vanity letters"
        );
        assert!(normalize_phone("+49 30 1234567 ext. 12", de).is_err());
        assert!(normalize_phone("49+30", de).is_err());
        assert!(normalize_phone("---", de).unwrap_err().contains("no digits"));
        assert!(normalize_phone("", de).is_err());
    }

    #[test]
    fn wrong_field_count_gives_row_error_with_line() {
        let a = parse_ok(
            "name,email,city\n\
             Ada,ada@example.com,Berlin\n\
             Bob,bob@example.com\n\
             Cy,cy@example.com,Rome,extra\n\
             Dee,dee@example.com,Oslo,,\n",
        );
        assert_eq!(
            a.rejected,
            [
                RowError {
                    line: 3,
                    reason: "expected 3 fields, found 2".into()
                },
                RowError {
                    line: 4,
                    reason: "expected 3 fields, found 4".into()
                },
            ]
        );
        assert_eq!(a.rejected[0].to_string(), "line 3: expected 3 fields, found 2");
        // Row data never appears in the reason.
        assert!(!a.rejected[0].reason.contains("bob"));
        // Empty surplus cells (spreadsheet padding) are accepted.
        let names: Vec<_> = a.recipients.iter().map(|r| (r.line, r.name.as_str())).collect();
        assert_eq!(names, [(2, "Ada"), (5, "Dee")]);
    }

    #[test]
    fn line_numbers_survive_quoted_multiline_fields() {
        let a = parse_ok(
            "name,email,note\n\
             Ada,ada@example.com,\"first\nsecond\nthird\"\n\
             Bob,bob@example.com\n\
             \"Cy\r\nCyrus\",cy@example.com,ok\n\
             Dee\n",
        );
        assert_eq!(a.recipients.len(), 2);
        assert_eq!(a.recipients[0].line, 2);
        assert_eq!(a.recipients[0].extra["note"], "first\nsecond\nthird");
        assert_eq!(a.recipients[1].line, 6);
        assert_eq!(a.recipients[1].name, "Cy\r\nCyrus");
        let lines: Vec<u64> = a.rejected.iter().map(|e| e.line).collect();
        assert_eq!(lines, [5, 8]);
    }

    #[test]
    fn non_utf8_row_is_rejected_when_utf8_is_configured() {
        let strict = AudienceOptions {
            encoding: Some(Encoding::Utf8),
            ..opts()
        };
        let a = parse(
            Path::new("c.csv"),
            b"name,email\nM\xfcller,m@example.com\nAda,ada@example.com\n",
            &strict,
        )
        .unwrap();
        assert_eq!(a.rejected.len(), 1);
        assert_eq!(a.rejected[0].line, 2);
        assert!(
            a.rejected[0].reason.starts_with("not valid UTF-8"),
            "{}",
            a.rejected[0].reason
        );
        assert!(a.rejected[0].reason.contains("`name`"));
        assert_eq!(a.recipients.len(), 1);
        assert_eq!(a.recipients[0].line, 3);
    }

    #[test]
    fn lines_that_are_not_utf8_are_read_as_windows_1252() {
        // Line 3 is UTF-8, lines 2 and 4 Windows-1252 (0x80 is the euro sign there).
        let data = b"name,email\nM\xfcller,m@example.com\nJ\xc3\xbcrgen,j@example.com\n\x80 Wei\xdf,w@example.com\n";
        let a = parse_bytes(data);
        assert!(a.rejected.is_empty());
        let names: Vec<_> = a.recipients.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["Müller", "Jürgen", "€ Weiß"]);
        assert_eq!(
            a.decoding,
            Decoding {
                utf16: false,
                windows_1252_lines: 2,
                first_windows_1252_line: Some(2),
                utf8_lines: 1,
                windows_1252_configured: false
            }
        );
        // Configured: every line, UTF-8 or not.
        let latin = AudienceOptions {
            encoding: Some(Encoding::Windows1252),
            ..opts()
        };
        let a = parse(Path::new("c.csv"), data, &latin).unwrap();
        assert_eq!(a.recipients[1].name, "JÃ¼rgen");
        assert_eq!(a.decoding.windows_1252_lines, 3);
        assert!(a.decoding.windows_1252_configured);
    }

    #[test]
    fn utf16_with_bom_is_read_and_may_be_tab_separated() {
        let text = "Name\tE-Mail\r\nÖzlem\tö@example.de\r\n😀 Ben\tben@example.de\r\n";
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        let be: Vec<u8> = [0xFE, 0xFF]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_be_bytes))
            .collect();
        for data in [le.clone(), be] {
            for n in [1, 2, 3, 4096] {
                let a = Reader::new(Path::new("c.csv"), Trickle { data: &data, n }, &opts())
                    .and_then(Reader::collect_all)
                    .unwrap();
                assert_eq!(a.columns, ["name", "e-mail"]);
                let got: Vec<_> = a.recipients.iter().map(|r| (r.line, r.name.as_str())).collect();
                assert_eq!(got, [(2, "Özlem"), (3, "😀 Ben")], "{n}-byte reads");
                assert!(a.decoding.utf16);
            }
        }
        // Without a BOM only when configured (little-endian).
        let utf16 = AudienceOptions {
            encoding: Some(Encoding::Utf16),
            ..opts()
        };
        let a = parse(Path::new("c.csv"), &le[2..], &utf16).unwrap();
        assert_eq!(a.recipients.len(), 2);
    }

    #[test]
    fn empty_rows_are_ignored_silently() {
        let a = parse_ok("email,name\n\n,\n  ,  \n\nada@example.com,Ada\n\n");
        assert!(a.rejected.is_empty());
        assert_eq!(a.recipients.len(), 1);
        assert_eq!(a.recipients[0].line, 6);
    }

    #[test]
    fn row_without_any_address_is_kept_for_the_caller_to_skip() {
        let a = parse_ok("name,email,phone\nAda,,\n");
        assert_eq!(a.recipients.len(), 1);
        assert!(a.recipients[0].email.is_missing() && a.recipients[0].phone.is_missing());
    }

    #[test]
    fn header_only_file_has_no_recipients() {
        let a = parse_ok("email\r\n");
        assert_eq!(a.columns, ["email"]);
        assert!(a.recipients.is_empty() && a.rejected.is_empty());
    }

    #[test]
    fn whole_file_errors() {
        let e = parse_err("");
        assert!(matches!(e, AudienceError::NoHeader { .. }));
        assert_eq!(e.to_string(), "customers.csv: no header row");
        assert!(matches!(
            parse(Path::new("x.csv"), b"\xEF\xBB\xBF\r\n\r\n", &opts()),
            Err(AudienceError::NoHeader { .. })
        ));

        let e = parse_err("name,city\nAda,Berlin\n");
        assert!(matches!(
            e,
            AudienceError::NoAddressColumn {
                looks_like_data: false,
                ..
            }
        ));
        assert_eq!(
            e.to_string(),
            "customers.csv: header row has neither an `email` nor a `phone` column"
        );
        // A file without header: the hint says so but does not echo the data.
        let e = parse_err("Ada Lovelace,ada@example.com\n");
        let msg = e.to_string();
        assert!(msg.starts_with("customers.csv: "), "{msg}");
        assert!(msg.contains("looks like data"), "{msg}");
        assert!(!msg.contains("ada@example.com") && !msg.contains("Lovelace"), "{msg}");

        let e = parse_err("Email,name,EMAIL\n");
        assert!(matches!(&e, AudienceError::DuplicateColumn { column, .. } if column == "email"));
        assert!(e.to_string().starts_with("customers.csv: duplicate column `email`"));

        let strict = AudienceOptions {
            encoding: Some(Encoding::Utf8),
            ..opts()
        };
        let e = parse(Path::new("c.csv"), b"em\xffail\n", &strict).unwrap_err();
        assert_eq!(e.to_string(), "c.csv: header row is not valid UTF-8");
        // Otherwise read as Windows-1252.
        let a = parse(
            Path::new("c.csv"),
            b"E-Mail;Stra\xdfe\na@example.de;Hauptstr. 1\n",
            &opts(),
        )
        .unwrap();
        assert_eq!(a.columns, ["e-mail", "straße"]);
    }

    #[test]
    fn load_missing_file_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customers.csv");
        let e = load(&path, &opts()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(&path.display().to_string()), "{msg}");
        assert!(msg.contains("cannot read file"), "{msg}");
        assert!(matches!(&e, AudienceError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        std::fs::write(&path, "email\nada@example.com\n").unwrap();
        let a = load(&path, &opts()).unwrap();
        assert_eq!(a.path, path);
        assert_eq!(a.recipients[0].email, valid("ada@example.com"));
    }

    #[test]
    fn excel_export_fixture() {
        let a = load(&fixture("excel_semicolon_bom_crlf.csv"), &opts()).unwrap();
        assert_eq!(
            a.columns,
            ["name", "e-mail", "phone", "tags", "locale", "opt_out", "customer no"]
        );
        let got: Vec<_> = a
            .recipients
            .iter()
            .map(|r| (r.line, r.name.as_str(), r.email.valid(), r.phone.valid()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    2,
                    "Müller, Jürgen",
                    Some("juergen.mueller@example.de"),
                    Some("+49301234567")
                ),
                (3, "Schmidt; Anna", Some("anna@example.com"), Some("+4915123456789")),
                (5, "Bad Mail", None, Some("+4915123456789")),
                (6, "Multi\r\nLine", Some("multi@example.com"), None),
                (9, "Last", Some("last@example.com"), None),
            ]
        );
        let anna = &a.recipients[1];
        assert_eq!(anna.tags, ["beta", "newsletter"]);
        assert!(anna.opted_out_of("Twilio", "sms"));
        assert!(!anna.opted_out_of("newsletter", "email"));
        assert_eq!(anna.extra["customer no"], "10002");
        assert!(a.recipients[3].opted_out_of("anything", "email"));
        assert_eq!(
            a.rejected,
            [RowError {
                line: 8,
                reason: "expected 7 fields, found 2".into()
            }]
        );
    }

    #[test]
    fn has_tag_and_opted_out_of() {
        let a = parse_ok(
            "email,tags,opt_out\n\
             a@example.com,VIP;Beta,\"Newsletter, SMS\"\n\
             b@example.com,,All\n\
             c@example.com,,\n",
        );
        let [a_, b, c] = &a.recipients[..] else { panic!() };
        assert!(a_.has_tag("vip") && a_.has_tag("BETA") && !a_.has_tag("alpha"));
        assert!(a_.opted_out_of("newsletter", "email"), "by channel name");
        assert!(a_.opted_out_of("Twilio", "SMS"), "by channel type");
        assert!(!a_.opted_out_of("Mastodon", "mastodon"));
        assert!(!a_.opted_out_of("", ""));
        assert!(b.opted_out_of("whatever", "webhook"), "all");
        assert!(!c.opted_out_of("newsletter", "email"));
    }

    #[test]
    fn address_serde_round_trip() {
        for a in [
            Address::Missing,
            valid("+49301234567"),
            Address::Invalid {
                raw: "x".into(),
                reason: "why".into(),
            },
        ] {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        }
        let e = serde_json::to_value(RowError {
            line: 3,
            reason: "r".into(),
        })
        .unwrap();
        assert_eq!(e, serde_json::json!({"line": 3, "reason": "r"}));
    }
}
