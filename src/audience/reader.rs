//! Reading the audience CSV row by row, with every physical line accounted for.
//!
//! Lines come from [`Lines`] (decoded, bounded); records are cut by `csv_core`, fed one line at
//! a time, so that each row knows the lines it covers and a quoted field that is never closed
//! is found (instead of silently swallowing the rest of the file into one cell).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::lines::{Decoding, End, LineError, Lines};
use super::{AudienceError, AudienceOptions, ColumnMap, Recipient, RowError, build_recipient};

/// The longest line (and row) a data row may have.
pub const MAX_LINE: usize = 1 << 20;
/// The longest header row.
pub const MAX_HEADER: usize = 64 << 10;

/// One data row of a streamed audience, in file order.
#[derive(Debug)]
pub enum Row {
    Recipient(Recipient),
    /// A row that could not be read at all.
    Rejected(RowError),
    /// The rest of the file cannot be read (a line too long, a quote never closed): the
    /// audience as a whole is refused. Always the last item.
    Failed(AudienceError),
}

/// Where the physical lines of the file went. At the end of reading `lines == header + blank +
/// rows` (checked: a difference is an internal error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineAccount {
    /// Physical lines read (a final line break does not start another line).
    pub lines: u64,
    /// The header row, and an Excel `sep=` line.
    pub header: u64,
    /// Blank lines and rows whose cells are all empty.
    pub blank: u64,
    /// Lines of rows that came out as recipients or rejected rows.
    pub rows: u64,
}

impl LineAccount {
    pub fn balanced(&self) -> bool {
        self.lines == self.header + self.blank + self.rows
    }
}

/// The audience CSV read row by row ([`Reader::open`] streams the file, so memory does not grow
/// with its size). Whole-file problems (no header, no address column...) are found by the
/// constructor; rows come from the [`Iterator`] in file order.
pub struct Reader<'a> {
    path: PathBuf,
    /// Lowercased, trimmed header names in file order, blank ones included.
    names: Vec<String>,
    map: ColumnMap,
    opts: AudienceOptions,
    lines: Lines<'a>,
    core: csv_core::Reader,
    delimiter: u8,
    /// Lines read ahead to find the delimiter, still to be cut into records.
    ahead: VecDeque<(Vec<u8>, End, u64)>,
    held: Vec<u8>,
    feed: Feed,
    /// The text of the current record while it spans more than one line (for messages).
    spanning: Vec<u8>,
    account: LineAccount,
    done: bool,
}

/// The first and last line of a record.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: u64,
    last: u64,
}

impl Span {
    fn lines(self) -> u64 {
        self.last - self.first + 1
    }
}

impl Reader<'static> {
    /// Open and stream `path`.
    pub fn open(path: &Path, opts: &AudienceOptions) -> Result<Self, AudienceError> {
        let file = std::fs::File::open(path).map_err(|source| AudienceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Reader::new(path, file, opts)
    }
}

impl<'a> Reader<'a> {
    /// Read the header from `src` (whose name `path_for_messages` is used in messages).
    pub fn new(
        path_for_messages: &Path,
        src: impl std::io::Read + Send + 'a,
        opts: &AudienceOptions,
    ) -> Result<Self, AudienceError> {
        let path = path_for_messages;
        let mut lines = Lines::new(src, opts.encoding).map_err(|source| AudienceError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut account = LineAccount::default();
        // Excel may write a first line `sep=;`; then blank lines, then the header, whose first
        // line (or lines, when a quote is open at its end) picks the delimiter.
        let mut sep_hint = None;
        let mut ahead = VecDeque::new();
        let mut scan = HeadScan::default();
        let mut size = 0;
        loop {
            let end = match lines.next(MAX_HEADER) {
                Ok(Some(end)) => end,
                Ok(None) => break,
                Err(e) => return Err(line_error(path, e, true, ahead.front().map(|a: &(_, _, u64)| a.2))),
            };
            let text = lines.text();
            if ahead.is_empty() {
                if lines.number == 1 && text.len() == 5 && text[..4].eq_ignore_ascii_case(b"sep=") {
                    sep_hint = Some(text[4]);
                    account.header += 1;
                    continue;
                }
                if is_blank(text) {
                    account.blank += 1;
                    continue;
                }
            }
            size += text.len();
            if size > MAX_HEADER {
                return Err(AudienceError::HeaderTooLong {
                    path: path.to_path_buf(),
                    line: ahead.front().map_or(lines.number, |a| a.2),
                });
            }
            let complete = scan.line(text);
            ahead.push_back((text.to_vec(), end, lines.number));
            if complete {
                break;
            }
        }
        let delimiter = opts.delimiter.or(sep_hint).unwrap_or(scan.best());
        let mut core = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        // `csv_core` drops a UTF-8 BOM at the start of what it reads first, which here may be
        // the start of any line (the file's own BOM is gone already): a blank line first.
        let (primed, ..) = core.read_record(b"\n", &mut [0; 1], &mut [0; 1]);
        debug_assert_eq!(primed, csv_core::ReadRecordResult::InputEmpty);
        let mut reader = Reader {
            path: path.to_path_buf(),
            names: Vec::new(),
            map: ColumnMap::default(),
            opts: opts.clone(),
            lines,
            core,
            delimiter,
            ahead,
            held: Vec::new(),
            feed: Feed::default(),
            spanning: Vec::new(),
            account,
            done: false,
        };

        // Header: the first row that is not blank.
        loop {
            let Some(span) = reader.next_record(true)? else {
                return Err(AudienceError::NoHeader {
                    path: path.to_path_buf(),
                });
            };
            if reader.feed.fields().all(|f| f.trim_ascii().is_empty()) {
                reader.account.blank += span.lines();
                continue;
            }
            reader.account.header += span.lines();
            break;
        }
        let (names, map) = super::read_header(path, reader.feed.fields())?;
        reader.names = names;
        reader.map = map;
        Ok(reader)
    }

    /// Lowercased, trimmed header names in file order (columns with a blank header are left out).
    pub fn columns(&self) -> Vec<String> {
        self.names.iter().filter(|n| !n.is_empty()).cloned().collect()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the file was decoded (so far).
    pub fn decoding(&self) -> Decoding {
        self.lines.decoding
    }

    /// Where the lines read so far went.
    pub fn account(&self) -> LineAccount {
        LineAccount {
            lines: self.lines.number,
            ..self.account
        }
    }

    /// Read every row.
    pub fn collect_all(mut self) -> Result<super::Audience, AudienceError> {
        let mut audience = super::Audience {
            path: self.path.clone(),
            columns: self.columns(),
            recipients: Vec::new(),
            rejected: Vec::new(),
            decoding: Decoding::default(),
            account: LineAccount::default(),
        };
        for row in &mut self {
            match row {
                Row::Recipient(r) => audience.recipients.push(r),
                Row::Rejected(e) => audience.rejected.push(e),
                Row::Failed(e) => return Err(e),
            }
        }
        audience.decoding = self.decoding();
        audience.account = self.account();
        Ok(audience)
    }

    /// Cut the next record (into `self.feed`), skipping blank lines before it; `None` at the
    /// end of the file.
    fn next_record(&mut self, header: bool) -> Result<Option<Span>, AudienceError> {
        let limit = if header { MAX_HEADER } else { MAX_LINE };
        self.feed.clear();
        self.spanning.clear();
        let mut first = None;
        let mut size = 0;
        loop {
            let (text, end, number) = match self.ahead.pop_front() {
                Some((text, end, number)) => {
                    self.held = text;
                    (&self.held[..], end, number)
                }
                None => match self.lines.next(limit) {
                    Ok(Some(end)) => (self.lines.text(), end, self.lines.number),
                    Ok(None) => match first {
                        None => return Ok(None),
                        // Only an open quote keeps a record going past a line end.
                        Some(first) => return Err(self.unclosed(first)),
                    },
                    Err(e) => return Err(line_error(&self.path, e, header, first)),
                },
            };
            let first = match first {
                Some(f) => f,
                None if is_blank(text) => {
                    self.account.blank += 1;
                    continue;
                }
                None => *first.insert(number),
            };
            // Line ends do not count: a line of `limit` bytes is a row of `limit` bytes.
            size += text.len();
            if size > limit {
                return Err(if header {
                    AudienceError::HeaderTooLong {
                        path: self.path.clone(),
                        line: first,
                    }
                } else {
                    AudienceError::QuoteTooLong {
                        path: self.path.clone(),
                        line: first,
                        lines: number - first + 1,
                    }
                });
            }
            // A line holds no line breaks, so only its end can end the record; the last line
            // of the file gets one too.
            if !text.is_empty() {
                self.feed.push(&mut self.core, text);
            }
            let line_end = match end {
                End::Eof => b"\n",
                e => e.bytes(),
            };
            let ended = self.feed.push(&mut self.core, line_end);
            if !ended || first != number {
                self.spanning.extend_from_slice(text);
                self.spanning.extend_from_slice(line_end);
            }
            if !ended {
                if end == End::Eof {
                    return Err(self.unclosed(first));
                }
                continue;
            }
            let span = Span { first, last: number };
            if first != number
                && let Some(Quotes::ClosedLate { opened, closed }) = check_quotes(&self.spanning, self.delimiter, first)
            {
                return Err(AudienceError::QuoteClosedLate {
                    path: self.path.clone(),
                    line: opened,
                    closed,
                });
            }
            return Ok(Some(span));
        }
    }

    /// The error for a quoted field still open at the end of the file, read from `first` on.
    fn unclosed(&self, first: u64) -> AudienceError {
        let line = match check_quotes(&self.spanning, self.delimiter, first) {
            Some(Quotes::Unclosed { opened }) => opened,
            _ => first,
        };
        AudienceError::UnclosedQuote {
            path: self.path.clone(),
            line,
            swallowed: self.lines.number - line,
        }
    }

    fn row(&mut self, span: Span) -> Option<Row> {
        let ncols = self.names.len();
        let rec = &self.feed;
        if rec.fields().all(|f| f.trim_ascii().is_empty()) {
            self.account.blank += span.lines();
            return None;
        }
        // Surplus trailing cells that are empty (spreadsheets pad rows) are fine.
        let surplus_data = rec.fields().skip(ncols).any(|f| !f.trim_ascii().is_empty());
        if rec.len() < ncols || surplus_data {
            let mut reason = format!("expected {ncols} fields, found {}", rec.len());
            if span.lines() > 1 {
                // A quote that pairs up with a stray one lines later makes one row of many.
                reason.push_str(&format!(
                    " (the row runs over lines {}-{}: check its quotes)",
                    span.first, span.last
                ));
            }
            self.account.rows += span.lines();
            return Some(Row::Rejected(RowError {
                line: span.first,
                reason,
            }));
        }
        let mut fields: Vec<&str> = Vec::with_capacity(ncols);
        for (i, f) in rec.fields().take(ncols).enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => fields.push(s.trim()),
                Err(_) => {
                    let reason = match self.names[i].as_str() {
                        "" => format!("not valid UTF-8 (column {})", i + 1),
                        n => format!("not valid UTF-8 (column `{n}`)"),
                    };
                    self.account.rows += span.lines();
                    return Some(Row::Rejected(RowError {
                        line: span.first,
                        reason,
                    }));
                }
            }
        }
        if fields.iter().all(|f| f.is_empty()) {
            self.account.blank += span.lines();
            return None;
        }
        self.account.rows += span.lines();
        Some(Row::Recipient(build_recipient(
            span.first, &fields, &self.map, &self.opts,
        )))
    }
}

impl Iterator for Reader<'_> {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        while !self.done {
            match self.next_record(false) {
                Ok(Some(span)) => {
                    if let Some(row) = self.row(span) {
                        return Some(row);
                    }
                }
                Ok(None) => {
                    self.done = true;
                    let account = self.account();
                    if !account.balanced() {
                        return Some(Row::Failed(AudienceError::Internal {
                            path: self.path.clone(),
                            reason: format!("lines not accounted for: {account:?}"),
                        }));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Row::Failed(e));
                }
            }
        }
        None
    }
}

fn is_blank(text: &[u8]) -> bool {
    text.iter().all(u8::is_ascii_whitespace)
}

fn line_error(path: &Path, e: LineError, header: bool, first: Option<u64>) -> AudienceError {
    match e {
        LineError::Io(source) => AudienceError::Read {
            path: path.to_path_buf(),
            source,
        },
        LineError::TooLong { line } if header => AudienceError::HeaderTooLong {
            path: path.to_path_buf(),
            line: first.unwrap_or(line),
        },
        LineError::TooLong { line } => AudienceError::LineTooLong {
            path: path.to_path_buf(),
            line,
        },
    }
}

/// The cells of one record as `csv_core` cuts them.
#[derive(Default)]
struct Feed {
    out: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nends: usize,
}

impl Feed {
    fn clear(&mut self) {
        self.nout = 0;
        self.nends = 0;
    }

    /// Feed `input` (not empty: an empty input means the end of the file to `csv_core`);
    /// `true` when a record ended (what is left of `input` is the rest of a CRLF).
    fn push(&mut self, core: &mut csv_core::Reader, mut input: &[u8]) -> bool {
        use csv_core::ReadRecordResult as R;
        loop {
            if self.nout == self.out.len() {
                self.out.resize((self.out.len() * 2).max(256), 0);
            }
            if self.nends == self.ends.len() {
                self.ends.resize((self.ends.len() * 2).max(16), 0);
            }
            let (res, nin, nout, nend) =
                core.read_record(input, &mut self.out[self.nout..], &mut self.ends[self.nends..]);
            input = &input[nin..];
            self.nout += nout;
            self.nends += nend;
            match res {
                R::InputEmpty if input.is_empty() => return false,
                R::InputEmpty | R::OutputFull | R::OutputEndsFull => {}
                R::Record | R::End => return true,
            }
        }
    }

    fn len(&self) -> usize {
        self.nends
    }

    fn fields(&self) -> impl Iterator<Item = &[u8]> {
        let ends = &self.ends[..self.nends];
        ends.iter()
            .enumerate()
            .map(move |(i, &end)| &self.out[if i == 0 { 0 } else { ends[i - 1] }..end])
    }
}

/// What is wrong with the quotes of a record that spans lines.
#[derive(Debug, PartialEq, Eq)]
enum Quotes {
    /// A quoted field opened on `opened` is still open at the end.
    Unclosed { opened: u64 },
    /// A quoted field opened on `opened` closes on a later line, `closed`, and text follows
    /// the closing quote: the quote most likely pairs with a stray one, and the lines between
    /// are rows, not a cell.
    ClosedLate { opened: u64, closed: u64 },
}

/// Follow the quotes of a record's text (lines with their line ends) the way `csv_core`
/// does: a quote opens a field only at its start, `""` inside is a quote, and text after the
/// closing quote is taken as part of the cell. `first` is the number of its first line.
fn check_quotes(text: &[u8], delimiter: u8, first: u64) -> Option<Quotes> {
    #[derive(PartialEq)]
    enum S {
        Start,
        Field,
        Quoted,
        QuoteSeen,
    }
    let mut s = S::Start;
    let mut line = first;
    let mut opened = first;
    for (i, &b) in text.iter().enumerate() {
        let brk = b == b'\n' || b == b'\r';
        s = match s {
            S::Start if b == b'"' => {
                opened = line;
                S::Quoted
            }
            S::Start | S::Field if b == delimiter || brk => S::Start,
            S::Start | S::Field => S::Field,
            S::Quoted if b == b'"' => S::QuoteSeen,
            S::Quoted => S::Quoted,
            S::QuoteSeen if b == b'"' => S::Quoted,
            S::QuoteSeen if b == delimiter || brk => S::Start,
            S::QuoteSeen if opened != line => return Some(Quotes::ClosedLate { opened, closed: line }),
            S::QuoteSeen => S::Field,
        };
        if b == b'\n' || (b == b'\r' && text.get(i + 1) != Some(&b'\n')) {
            line += 1;
        }
    }
    (s == S::Quoted).then_some(Quotes::Unclosed { opened })
}

/// Counts `,`, `;` and tab outside quotes in the header's first line (and the lines a quote
/// keeps open); the most frequent wins, ties in that order, `,` when there are none.
#[derive(Default)]
struct HeadScan {
    counts: [usize; 3],
    in_quotes: bool,
}

const CANDIDATES: [u8; 3] = [b',', b';', b'\t'];

impl HeadScan {
    /// Take one line; `true` when the header's first record is complete.
    fn line(&mut self, text: &[u8]) -> bool {
        for &b in text {
            if b == b'"' {
                self.in_quotes = !self.in_quotes;
            } else if !self.in_quotes
                && let Some(i) = CANDIDATES.iter().position(|&c| c == b)
            {
                self.counts[i] += 1;
            }
        }
        !self.in_quotes
    }

    fn best(&self) -> u8 {
        let mut best = 0;
        for i in 1..CANDIDATES.len() {
            if self.counts[i] > self.counts[best] {
                best = i;
            }
        }
        CANDIDATES[best]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(data: &[u8]) -> Result<super::super::Audience, AudienceError> {
        super::super::parse(Path::new("c.csv"), data, &AudienceOptions::default())
    }

    #[test]
    fn limits_are_exact() {
        // A row of exactly MAX_LINE bytes (CRLF not counted) is read; one more byte is not.
        let row = |len: usize| format!("{},a@example.de\r\n", "n".repeat(len - ",a@example.de".len()));
        let a = parse(format!("name,email\r\n{}", row(MAX_LINE)).as_bytes()).unwrap();
        assert_eq!(a.recipients.len(), 1);
        let e = parse(format!("name,email\r\n{}", row(MAX_LINE + 1)).as_bytes()).unwrap_err();
        assert!(matches!(e, AudienceError::LineTooLong { line: 2, .. }), "{e}");
        let header = |len: usize| format!("email,{}\n", "h".repeat(len - "email,".len()));
        assert!(parse(header(MAX_HEADER).as_bytes()).is_ok());
        let e = parse(header(MAX_HEADER + 1).as_bytes()).unwrap_err();
        assert!(matches!(e, AudienceError::HeaderTooLong { line: 1, .. }), "{e}");
        // A quoted cell over many short lines is bounded as a whole, named by its first line.
        let cell = "short line\n".repeat(MAX_LINE / 10);
        let e = parse(format!("name,email\nAda,a@example.de\n\"{cell}\",b@example.de\n").as_bytes()).unwrap_err();
        assert!(matches!(e, AudienceError::QuoteTooLong { line: 3, .. }), "{e}");
    }

    #[test]
    fn quotes_are_followed_like_csv_core() {
        assert_eq!(check_quotes(b"a,\"b\nc\",d\n", b',', 5), None);
        assert_eq!(
            check_quotes(b"\"Ben, x\nAda,a@x.de\n", b',', 3),
            Some(Quotes::Unclosed { opened: 3 })
        );
        // Closed and opened again on the next line: the open quote is the second one.
        assert_eq!(
            check_quotes(b"\"a\r\nb\",\"c\rd\n", b',', 1),
            Some(Quotes::Unclosed { opened: 2 })
        );
        assert_eq!(
            check_quotes(b"\"Ben,b@x.de\nAda,a@x.de\n\"Zed\",z@x.de\n", b',', 3),
            Some(Quotes::ClosedLate { opened: 3, closed: 5 })
        );
        // Text after a closing quote on the same line is fine (csv_core keeps it).
        assert_eq!(check_quotes(b"\"M\" GmbH,\"x\ny\"\n", b',', 1), None);
        // `""` is a quote inside the cell.
        assert_eq!(check_quotes(b"\"say \"\"hi\nthere\"\"\",z\n", b',', 1), None);
    }
}
