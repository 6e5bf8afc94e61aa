//! The audience file as physical lines: decoded to UTF-8, numbered, and never longer than a
//! limit (a line over the limit is refused as soon as the limit is passed, so a 10 MB line
//! costs no more memory than a short one).

use std::io::{BufRead, Read};

/// How the bytes of the audience file are read (`[audience] encoding`). A byte-order mark
/// always wins over this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum Encoding {
    /// UTF-8 only: a line that is not valid UTF-8 is skipped with that reason.
    #[serde(rename = "utf-8", alias = "utf8")]
    Utf8,
    /// Every line as Windows-1252 (what Excel writes for "CSV" on a Western-European Windows).
    #[serde(rename = "windows-1252", alias = "cp1252")]
    Windows1252,
    /// UTF-16, little-endian unless a byte-order mark says otherwise (Excel's "Unicode text").
    #[serde(rename = "utf-16", alias = "utf16")]
    Utf16,
}

/// How each line is turned into UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// UTF-8 where the line is valid UTF-8, Windows-1252 where it is not.
    Auto,
    /// Kept as is: fields that are not UTF-8 are reported by the caller.
    Strict,
    Windows1252,
}

/// The line end a line had (its bytes matter inside quoted fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Lf,
    CrLf,
    Cr,
    /// The last line, without a line break.
    Eof,
}

impl End {
    pub(super) fn bytes(self) -> &'static [u8] {
        match self {
            End::Lf => b"\n",
            End::CrLf => b"\r\n",
            End::Cr => b"\r",
            End::Eof => b"",
        }
    }
}

/// A line longer than the limit, or a read error.
#[derive(Debug)]
pub(super) enum LineError {
    Io(std::io::Error),
    TooLong { line: u64 },
}

/// What decoding found, for the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Decoding {
    /// The file had a UTF-16 byte-order mark or `encoding = "utf-16"`.
    pub utf16: bool,
    /// Lines read as Windows-1252 (every line with a byte above 127 when it was configured).
    pub windows_1252_lines: u64,
    /// The first of them.
    pub first_windows_1252_line: Option<u64>,
    /// Lines with characters beyond ASCII that were valid UTF-8 (not counted when every line
    /// is read as Windows-1252).
    pub utf8_lines: u64,
    /// `encoding = "windows-1252"`: every line was read so, UTF-8 or not.
    pub windows_1252_configured: bool,
}

pub(super) struct Lines<'a> {
    src: Box<dyn BufRead + Send + 'a>,
    mode: Mode,
    /// The current line as read (and, in `Strict` mode, as returned).
    raw: Vec<u8>,
    /// The current line decoded from Windows-1252.
    decoded: String,
    /// Whether the current line is `decoded` rather than `raw`.
    latin: bool,
    /// Number of the last line returned.
    pub(super) number: u64,
    pub(super) decoding: Decoding,
}

/// How much is read from the file at once.
const CHUNK: usize = 64 * 1024;

impl<'a> Lines<'a> {
    pub(super) fn new(mut src: impl Read + Send + 'a, encoding: Option<Encoding>) -> std::io::Result<Lines<'a>> {
        let mut head = Vec::with_capacity(3);
        (&mut src).take(3).read_to_end(&mut head)?;
        let bom = encoding_rs::Encoding::for_bom(&head);
        let rest = std::io::Cursor::new(head[bom.map_or(0, |(_, len)| len)..].to_vec()).chain(src);
        // Plain bytes in a mode, or UTF-16 of an endianness.
        let how: Result<Mode, &'static encoding_rs::Encoding> = match (bom, encoding) {
            (Some((enc, _)), Some(Encoding::Utf8)) if enc == encoding_rs::UTF_8 => Ok(Mode::Strict),
            (Some((enc, _)), _) if enc == encoding_rs::UTF_8 => Ok(Mode::Auto),
            (Some((enc, _)), _) => Err(enc),
            (None, Some(Encoding::Utf16)) => Err(encoding_rs::UTF_16LE),
            (None, Some(Encoding::Utf8)) => Ok(Mode::Strict),
            (None, Some(Encoding::Windows1252)) => Ok(Mode::Windows1252),
            (None, None) => Ok(Mode::Auto),
        };
        let mut decoding = Decoding {
            windows_1252_configured: how == Ok(Mode::Windows1252),
            ..Decoding::default()
        };
        let (src, mode): (Box<dyn BufRead + Send + 'a>, Mode) = match how {
            Ok(mode) => (Box::new(std::io::BufReader::with_capacity(CHUNK, rest)), mode),
            Err(enc) => {
                decoding.utf16 = true;
                // What UTF-16 decodes to is valid UTF-8.
                (Box::new(utf16(rest, enc)), Mode::Auto)
            }
        };
        Ok(Lines {
            src,
            mode,
            raw: Vec::new(),
            decoded: String::new(),
            latin: false,
            number: 0,
            decoding,
        })
    }

    /// The current line's text, without its line end.
    pub(super) fn text(&self) -> &[u8] {
        if self.latin { self.decoded.as_bytes() } else { &self.raw }
    }

    /// Read the next line; `None` at the end of the file. A line of more than `limit` bytes
    /// is an error once `limit` bytes of it have been read.
    pub(super) fn next(&mut self, limit: usize) -> Result<Option<End>, LineError> {
        self.raw.clear();
        self.latin = false;
        let mut any = false;
        let end = loop {
            let buf = self.src.fill_buf().map_err(LineError::Io)?;
            if buf.is_empty() {
                if !any {
                    return Ok(None);
                }
                break End::Eof;
            }
            any = true;
            match memchr::memchr2(b'\n', b'\r', buf) {
                Some(i) => {
                    if self.raw.len() + i > limit {
                        return Err(LineError::TooLong { line: self.number + 1 });
                    }
                    self.raw.extend_from_slice(&buf[..i]);
                    let cr = buf[i] == b'\r';
                    self.src.consume(i + 1);
                    if !cr {
                        break End::Lf;
                    }
                    let next = self.src.fill_buf().map_err(LineError::Io)?;
                    if next.first() == Some(&b'\n') {
                        self.src.consume(1);
                        break End::CrLf;
                    }
                    break End::Cr;
                }
                None => {
                    let n = buf.len();
                    if self.raw.len() + n > limit {
                        return Err(LineError::TooLong { line: self.number + 1 });
                    }
                    self.raw.extend_from_slice(buf);
                    self.src.consume(n);
                }
            }
        };
        self.number += 1;
        if !self.raw.is_ascii() {
            self.decode();
        }
        Ok(Some(end))
    }

    fn decode(&mut self) {
        let valid = std::str::from_utf8(&self.raw).is_ok();
        let latin = match self.mode {
            Mode::Strict => false,
            Mode::Auto => !valid,
            Mode::Windows1252 => true,
        };
        if !latin {
            if valid {
                self.decoding.utf8_lines += 1;
            }
            return;
        }
        self.decoded.clear();
        self.decoded
            .push_str(&encoding_rs::WINDOWS_1252.decode_without_bom_handling(&self.raw).0);
        self.latin = true;
        self.decoding.windows_1252_lines += 1;
        self.decoding.first_windows_1252_line.get_or_insert(self.number);
    }
}

/// Decodes UTF-16 to UTF-8 as it is read (unpaired surrogates become U+FFFD).
fn utf16<'a>(src: impl Read + Send + 'a, enc: &'static encoding_rs::Encoding) -> impl BufRead + Send + 'a {
    std::io::BufReader::with_capacity(
        CHUNK,
        Utf16 {
            src: std::io::BufReader::with_capacity(CHUNK, src),
            decoder: enc.new_decoder_without_bom_handling(),
            done: false,
        },
    )
}

struct Utf16<R> {
    src: R,
    decoder: encoding_rs::Decoder,
    done: bool,
}

impl<R: BufRead> Read for Utf16<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        // A character takes up to 4 bytes of UTF-8 (3 for one replacement character).
        if out.len() < 4 {
            return Err(std::io::Error::other("read buffer too small for UTF-16 decoding"));
        }
        loop {
            if self.done {
                return Ok(0);
            }
            let input = self.src.fill_buf()?;
            let last = input.is_empty();
            let (result, read, written, _) = self.decoder.decode_to_utf8(input, out, last);
            self.src.consume(read);
            // At the end, done once the decoder has flushed everything into `out`.
            self.done = last && result == encoding_rs::CoderResult::InputEmpty;
            if written > 0 || last {
                return Ok(written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endless `x` without a line break, counting what was read from it.
    struct Endless<'a>(&'a std::sync::atomic::AtomicUsize);

    impl Read for Endless<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            out.fill(b'x');
            self.0.fetch_add(out.len(), std::sync::atomic::Ordering::Relaxed);
            Ok(out.len())
        }
    }

    #[test]
    fn a_line_over_the_limit_is_refused_before_more_of_it_is_read() {
        let read = std::sync::atomic::AtomicUsize::new(0);
        let mut lines = Lines::new(Endless(&read), None).unwrap();
        assert!(matches!(lines.next(1 << 20), Err(LineError::TooLong { line: 1 })));
        assert!(lines.raw.capacity() <= 2 << 20, "{} bytes kept", lines.raw.capacity());
        drop(lines);
        let read = read.into_inner();
        assert!(read <= (1 << 20) + 2 * CHUNK, "{read} bytes read");
    }

    #[test]
    fn line_ends_and_numbers() {
        let data = b"a\r\nb\rc\n\nd";
        let want = [
            (1, "a", End::CrLf),
            (2, "b", End::Cr),
            (3, "c", End::Lf),
            (4, "", End::Lf),
            (5, "d", End::Eof),
        ]
        .map(|(n, t, e)| (n, t.to_string(), e));
        // Reads of one byte split every CRLF.
        for n in [1, 2, 100] {
            let mut lines = Lines::new(super::super::tests::Trickle { data, n }, None).unwrap();
            let mut got = Vec::new();
            while let Some(end) = lines.next(100).unwrap() {
                got.push((lines.number, String::from_utf8(lines.text().to_vec()).unwrap(), end));
            }
            assert_eq!(got, want, "{n}-byte reads");
        }
    }
}
