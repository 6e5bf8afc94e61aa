//! `report --format json`: the contract's document in serde_json's pretty layout, its summary
//! serialized by serde and its two long lists (the call list and the deliveries) written here
//! field by field while they are read from the journal. serde's pretty serializer escaped every
//! key and tracked its indentation for each of a million rows: most of the JSON report's time
//! after SQLite's. The fields are those of [`Report`](super::Report), in its order (a test
//! compares the two documents byte for byte).

use std::io::{self, BufWriter, Write};

use serde::Serialize;

use super::rows::Delivery;
use super::{Source, WriteError};
use crate::journal::Which;
use crate::people::NotReached;

/// The whole report.
pub fn write(src: &Source<'_>, out: &mut dyn Write) -> Result<(), WriteError> {
    let r = src.report;
    let mut w = Json::new(out);
    w.raw("{")?;
    w.field("run_id", &r.run_id)?;
    w.field("dry_run", &r.dry_run)?;
    w.field("announcement", &r.announcement)?;
    w.field("started_at", &r.started_at)?;
    w.field("finished_at", &r.finished_at)?;
    w.field("totals", &r.totals)?;
    w.field("channels", &r.channels)?;
    w.field("people", &r.people)?;
    w.not_reached(src)?;
    if !r.quiet_hours.is_empty() {
        w.field("quiet_hours", &r.quiet_hours)?;
    }
    w.key("deliveries")?;
    let mut list = List::default();
    src.each(Which::All, |d| {
        list.next(&mut w)?;
        w.delivery(d)
    })?;
    list.end(&mut w)?;
    w.finish()
}

/// `report --not-reached --format json`: `{"not_reached": [...]}`.
pub fn write_not_reached(src: &Source<'_>, out: &mut dyn Write) -> Result<(), WriteError> {
    let mut w = Json::new(out);
    w.raw("{")?;
    w.not_reached(src)?;
    w.finish()
}

struct Json<'a> {
    out: BufWriter<&'a mut dyn Write>,
    /// No field of the top-level object written yet.
    first: bool,
}

/// Where a streamed array is: serde_json writes an empty one as `[]`.
#[derive(Default)]
struct List {
    started: bool,
}

impl List {
    fn next(&mut self, w: &mut Json<'_>) -> io::Result<()> {
        w.raw(if self.started { ",\n    " } else { "[\n    " })?;
        self.started = true;
        Ok(())
    }

    fn end(self, w: &mut Json<'_>) -> io::Result<()> {
        w.raw(if self.started { "\n  ]" } else { "[]" })
    }
}

impl<'a> Json<'a> {
    fn new(out: &'a mut dyn Write) -> Json<'a> {
        Json {
            // One buffer of a known type: the many small writes are not calls through `dyn`.
            out: BufWriter::with_capacity(1 << 16, out),
            first: true,
        }
    }

    fn raw(&mut self, s: &str) -> io::Result<()> {
        self.out.write_all(s.as_bytes())
    }

    /// `"key": ` on a line of its own in the top-level object.
    fn key(&mut self, key: &str) -> io::Result<()> {
        self.raw(if self.first { "\n  \"" } else { ",\n  \"" })?;
        self.first = false;
        self.raw(key)?;
        self.raw("\": ")
    }

    /// A top-level field as serde writes it: its value pretty-printed, indented one level (a
    /// JSON string holds no raw line break, so every one starts a line of the value).
    fn field(&mut self, key: &str, value: &impl Serialize) -> io::Result<()> {
        self.key(key)?;
        let text = serde_json::to_vec_pretty(value).map_err(io::Error::from)?;
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                self.raw("\n  ")?;
            }
            self.out.write_all(line)?;
        }
        Ok(())
    }

    /// A JSON string, escaped as serde_json escapes it.
    fn str(&mut self, s: &str) -> io::Result<()> {
        if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            return serde_json::to_writer(&mut self.out, s).map_err(io::Error::from);
        }
        self.raw("\"")?;
        self.raw(s)?;
        self.raw("\"")
    }

    fn opt_str(&mut self, s: Option<&str>) -> io::Result<()> {
        match s {
            Some(s) => self.str(s),
            None => self.raw("null"),
        }
    }

    fn num(&mut self, n: impl itoa::Integer) -> io::Result<()> {
        self.raw(itoa::Buffer::new().format(n))
    }

    fn not_reached(&mut self, src: &Source<'_>) -> Result<(), WriteError> {
        self.key("not_reached")?;
        let mut list = List::default();
        src.each_not_reached(|p| {
            list.next(self)?;
            self.person(&p)
        })??;
        Ok(list.end(self)?)
    }

    /// One element of `not_reached`.
    fn person(&mut self, p: &NotReached) -> io::Result<()> {
        self.raw("{\n      \"row\": ")?;
        self.num(p.row)?;
        self.raw(",\n      \"name\": ")?;
        self.str(&p.name)?;
        self.raw(",\n      \"email\": ")?;
        self.str(&p.email)?;
        self.raw(",\n      \"phone\": ")?;
        self.str(&p.phone)?;
        self.raw(",\n      \"reasons\": ")?;
        if p.reasons.is_empty() {
            self.raw("[]")?;
        } else {
            for (i, reason) in p.reasons.iter().enumerate() {
                self.raw(if i == 0 { "[\n        " } else { ",\n        " })?;
                self.str(reason)?;
            }
            self.raw("\n      ]")?;
        }
        self.raw("\n    }")
    }

    /// One element of `deliveries` (a [`DeliveryReport`](super::DeliveryReport)).
    fn delivery(&mut self, d: &Delivery<'_>) -> io::Result<()> {
        self.raw("{\n      \"channel\": ")?;
        self.str(d.channel)?;
        self.raw(",\n      \"recipient\": ")?;
        self.str(d.recipient)?;
        self.raw(",\n      \"status\": ")?;
        self.str(d.status.as_str())?;
        self.raw(",\n      \"attempts\": ")?;
        self.num(d.attempts)?;
        self.raw(",\n      \"provider_id\": ")?;
        self.opt_str(d.provider_id)?;
        self.raw(",\n      \"route\": ")?;
        self.opt_str(d.route)?;
        self.raw(",\n      \"error\": ")?;
        self.opt_str(d.error)?;
        self.raw(",\n      \"updated_at\": ")?;
        self.str(d.updated_at)?;
        self.raw(",\n      \"row\": ")?;
        match d.row {
            Some(n) => self.num(n)?,
            None => self.raw("null")?,
        }
        self.raw(",\n      \"fallback\": ")?;
        self.raw(if d.fallback { "true" } else { "false" })?;
        self.raw("\n    }")
    }

    fn finish(mut self) -> Result<(), WriteError> {
        self.raw("\n}\n")?;
        Ok(self.out.flush()?)
    }
}
