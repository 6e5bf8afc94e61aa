//! A run's delivery report, built from the journal, and its output formats: one formatter per
//! format behind [`Format::write`] (table, JSON — exactly the contract's document —, CSV, HTML).
//!
//! Only the summary (counted by SQL) is held in memory; every format streams the deliveries
//! from the journal as it writes them, so a run of a million deliveries is reported in
//! constant memory.

use std::borrow::Cow;
use std::io::{self, Write};

use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};

use crate::journal::{DeliveryRow, Journal, JournalError, RunRow, Status, Which};
use crate::people::{NotReached, People, Person, PersonDelivery};

mod html;
mod json;
mod rows;

use rows::Delivery;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    pub dry_run: bool,
    pub announcement: AnnouncementRef,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub totals: Totals,
    pub channels: Vec<ChannelTotals>,
    #[serde(default)]
    pub people: People,
    /// The call list: people no delivery reached, by row.
    #[serde(default)]
    pub not_reached: Vec<NotReached>,
    /// Channels that stopped for their quiet hours in the run just sent (`send`/`resume`
    /// `--json` only: the journal does not keep it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quiet_hours: Vec<crate::quiet::Waiting>,
    pub deliveries: Vec<DeliveryReport>,
    /// Where [`Report::load_summary`] found the run's deliveries (not part of the document).
    #[serde(skip)]
    layout: std::sync::OnceLock<rows::Layout>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnouncementRef {
    pub title: String,
    pub thread: Option<String>,
    pub digest: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    pub planned: usize,
    pub sent: usize,
    pub delivered: usize,
    pub undelivered: usize,
    pub failed: usize,
    pub skipped: usize,
    pub pending: usize,
    pub unknown: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelTotals {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub counts: Totals,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryReport {
    pub channel: String,
    pub recipient: String,
    pub status: Status,
    pub attempts: u32,
    pub provider_id: Option<String>,
    pub route: Option<String>,
    pub error: Option<String>,
    pub updated_at: String,
    /// The audience line where the person's record starts; `None` for broadcast channels.
    #[serde(default)]
    pub row: Option<u64>,
    #[serde(default)]
    pub fallback: bool,
}

impl DeliveryReport {
    pub fn from_row(r: &DeliveryRow) -> DeliveryReport {
        DeliveryReport {
            channel: r.channel.clone(),
            recipient: r.recipient.clone(),
            // A report of a dead run shows a delivery left `sending` as unknown.
            status: if r.status == Status::Sending {
                Status::Unknown
            } else {
                r.status
            },
            attempts: r.attempts,
            provider_id: r.provider_id.clone(),
            route: r.route.clone(),
            error: r.error.clone(),
            updated_at: r.updated_at.clone(),
            row: r.row,
            fallback: r.fallback,
        }
    }
}

impl Totals {
    fn add(&mut self, status: Status) {
        self.add_n(status, 1);
    }

    fn add_n(&mut self, status: Status, n: usize) {
        // A `[reach]` fallback that was not needed is no delivery of its person.
        if status == Status::Standby {
            return;
        }
        self.planned += n;
        match status {
            Status::Sent => self.sent += n,
            Status::Delivered => self.delivered += n,
            Status::Undelivered => self.undelivered += n,
            Status::Failed => self.failed += n,
            Status::Skipped => self.skipped += n,
            // `sending` only exists while a process runs; a report of a dead run shows it as unknown.
            Status::Pending => self.pending += n,
            Status::Sending | Status::Unknown => self.unknown += n,
            Status::Standby => {}
        }
    }
}

impl Report {
    pub fn load(journal: &Journal, run_id: &str) -> Result<Option<(Report, Vec<DeliveryRow>)>, JournalError> {
        let Some(run) = journal.run(run_id)? else {
            return Ok(None);
        };
        let rows = journal.deliveries(&run.id)?;
        Ok(Some((Report::from_rows(&run, &rows), rows)))
    }

    /// The report without its `deliveries` (the totals come from SQL counts: a run of a
    /// million deliveries is summed without reading them), and the number of deliveries skipped
    /// because of bad input.
    pub fn load_summary(journal: &Journal, run_id: &str) -> Result<Option<(Report, usize)>, JournalError> {
        let Some(run) = journal.run(run_id)? else {
            return Ok(None);
        };
        let mut report = Report::from_rows(&run, &[]);
        let counts = journal.status_counts(&run.id)?;
        let (people, layout) = rows::survey(journal, &run.id, &counts)?;
        report.people = people;
        report.layout = layout.into();
        let mut bad_skips = 0;
        for c in counts {
            bad_skips += c.bad_skips;
            report.add_channel(c.channel, c.channel_type, c.counts);
        }
        Ok(Some((report, bad_skips)))
    }

    /// The report without its `deliveries` of a run whose counts are known without reading
    /// the journal: a dry run's, from its plan. `channels` as [`Journal::status_counts`] gives
    /// them: in the order of their first delivery, each with a delivery not on standby.
    pub fn from_counts(
        run: &RunRow,
        channels: impl IntoIterator<Item = (String, String, Vec<(Status, usize)>)>,
        people: People,
    ) -> Report {
        let mut report = Report::from_rows(run, &[]);
        for (name, kind, counts) in channels {
            report.add_channel(name, kind, counts);
        }
        report.people = people;
        report
    }

    fn add_channel(&mut self, name: String, kind: String, counts: Vec<(Status, usize)>) {
        let mut totals = Totals::default();
        for (status, n) in counts {
            totals.add_n(status, n);
            self.totals.add_n(status, n);
        }
        self.channels.push(ChannelTotals {
            name,
            kind,
            counts: totals,
        });
    }

    pub fn from_rows(run: &RunRow, rows: &[DeliveryRow]) -> Report {
        let mut totals = Totals::default();
        let mut channels: Vec<ChannelTotals> = Vec::new();
        for r in rows {
            totals.add(r.status);
            let idx = match channels.iter().position(|c| c.name == r.channel) {
                Some(i) => i,
                None => {
                    channels.push(ChannelTotals {
                        name: r.channel.clone(),
                        kind: r.channel_type.clone(),
                        counts: Totals::default(),
                    });
                    channels.len() - 1
                }
            };
            channels[idx].counts.add(r.status);
        }
        let (people, not_reached) = people_of(rows);
        Report {
            run_id: run.id.clone(),
            dry_run: run.dry_run,
            announcement: AnnouncementRef {
                title: run.title.clone(),
                thread: run.thread.clone(),
                digest: run.digest.clone(),
            },
            started_at: run.started_at.clone(),
            finished_at: run.finished_at.clone(),
            totals,
            channels,
            people,
            not_reached,
            quiet_hours: Vec::new(),
            deliveries: rows.iter().map(DeliveryReport::from_row).collect(),
            layout: std::sync::OnceLock::new(),
        }
    }
}

/// People and the call list from deliveries in memory (the journal groups them in SQL instead).
fn people_of(rows: &[DeliveryRow]) -> (People, Vec<NotReached>) {
    let mut persons: std::collections::BTreeMap<u64, Person> = std::collections::BTreeMap::new();
    for r in rows {
        let Some(row) = r.row else { continue };
        persons
            .entry(row)
            .or_insert_with(|| Person::new(row))
            .add(&PersonDelivery {
                channel: &r.channel,
                recipient: &r.recipient,
                name: &r.name,
                status: r.status,
                error: r.error.as_deref(),
            });
    }
    let mut people = People::default();
    let mut list = Vec::new();
    for p in persons.into_values() {
        let (state, entry) = p.finish();
        people.add(state);
        list.extend(entry);
    }
    (people, list)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Html,
}

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The HTML report's template does not compile or render (a `templates_dir` override).
    #[error("{0}")]
    Template(String),
}

/// How a report is dressed: the org's time zone and language, and the folder whose
/// `report.html.hbs` replaces the HTML report's built-in template.
pub struct Style<'a> {
    pub tz: jiff::tz::TimeZone,
    pub locale: crate::locale::Locale,
    pub templates_dir: Option<&'a std::path::Path>,
}

/// A report to write: the summary from [`Report::load_summary`] (no `deliveries`), the number
/// of deliveries skipped for bad input, and the journal its deliveries are streamed from.
pub struct Source<'a> {
    pub journal: &'a Journal,
    pub report: &'a Report,
    pub bad_skips: usize,
}

impl Source<'_> {
    /// The run's deliveries in this journal; found again when the report is not
    /// [`Report::load_summary`]'s.
    fn scope(&self) -> Result<rows::Scope<'_>, JournalError> {
        let layout = match self.report.layout.get() {
            Some(layout) => layout,
            None => {
                let counts = self.journal.status_counts(&self.report.run_id)?;
                let (_, layout) = rows::survey(self.journal, &self.report.run_id, &counts)?;
                self.report.layout.get_or_init(|| layout)
            }
        };
        Ok(rows::Scope {
            journal: self.journal,
            run_id: &self.report.run_id,
            layout,
        })
    }

    fn each(&self, which: Which, f: impl FnMut(&Delivery<'_>) -> io::Result<()>) -> Result<(), WriteError> {
        self.scope()?.each(which, f)??;
        Ok(())
    }

    /// The call list, person by person.
    fn each_not_reached<E>(&self, f: impl FnMut(NotReached) -> Result<(), E>) -> Result<Result<(), E>, JournalError> {
        self.scope()?.each_not_reached(&self.report.people, f)
    }

    /// Failed, undelivered, unknown, and skipped for bad input: what the table lists first.
    fn problems(&self) -> usize {
        let t = &self.report.totals;
        t.failed + t.undelivered + t.unknown + self.bad_skips
    }
}

impl Format {
    pub fn write(self, src: &Source<'_>, style: &Style<'_>, out: &mut dyn Write) -> Result<(), WriteError> {
        match self {
            Format::Table => write_table(src, &style.tz, style.locale, out),
            Format::Json => json::write(src, out),
            Format::Csv => write_csv(src, out),
            Format::Html => html::write(src, style, out),
        }
    }
}

/// A table that wraps to the terminal's width — unless the width is unknown or tiny (a pty
/// without a size, a pipe), where wrapping would squash every column to one letter.
pub fn table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let wide = t.width().is_some_and(|w| w >= 60);
    t.set_content_arrangement(if wide {
        ContentArrangement::Dynamic
    } else {
        ContentArrangement::Disabled
    });
    t
}

fn counts_row(name: &str, kind: &str, x: &Totals) -> Vec<Cell> {
    let n = [
        x.planned,
        x.sent,
        x.delivered,
        x.failed,
        x.skipped,
        x.pending,
        x.unknown,
    ];
    [Cell::new(name), Cell::new(kind)]
        .into_iter()
        .chain(n.into_iter().map(Cell::new))
        .collect()
}

/// The per-channel summary that ends `send` and heads `report`.
pub fn summary_table(report: &Report) -> Table {
    let mut t = table();
    t.set_header([
        "channel",
        "type",
        "planned",
        "sent",
        "delivered",
        "failed",
        "skipped",
        "pending",
        "unknown",
    ]);
    for c in &report.channels {
        t.add_row(counts_row(&c.name, &c.kind, &c.counts));
    }
    t.add_row(counts_row("total", "", &report.totals));
    t
}

/// The delivery columns of the table, aligned to widths the journal measured (capped, so one
/// very long value does not push every row off the screen; the error comes last, unpadded).
struct Columns {
    widths: [usize; 4],
    /// The line being written, kept between rows so a row allocates nothing.
    line: String,
}

const MAX_WIDTH: usize = 48;
const DELIVERY_HEADER: [&str; 7] = [
    "channel",
    "recipient",
    "status",
    "attempts",
    "route",
    "provider id",
    "error",
];

/// `s` and spaces up to `width` characters (what `{:<width$}` writes).
fn pad_right(line: &mut String, s: &str, width: usize) {
    line.push_str(s);
    line.extend(std::iter::repeat_n(' ', width.saturating_sub(s.chars().count())));
}

impl Columns {
    fn new(measured: [usize; 4]) -> Columns {
        let names = [
            DELIVERY_HEADER[0],
            DELIVERY_HEADER[1],
            DELIVERY_HEADER[4],
            DELIVERY_HEADER[5],
        ];
        let mut widths = measured;
        for (w, name) in widths.iter_mut().zip(names) {
            *w = (*w).min(MAX_WIDTH).max(name.len());
        }
        Columns {
            widths,
            line: String::new(),
        }
    }

    fn line(&mut self, out: &mut dyn Write, cells: [&str; 7]) -> io::Result<()> {
        let [c0, c1, c2, c3] = self.widths;
        let line = &mut self.line;
        line.clear();
        pad_right(line, &one_line(cells[0]), c0);
        line.push_str("  ");
        pad_right(line, &one_line(cells[1]), c1);
        line.push_str("  ");
        pad_right(line, cells[2], 11);
        line.push_str("  ");
        line.extend(std::iter::repeat_n(
            ' ',
            8usize.saturating_sub(cells[3].chars().count()),
        ));
        line.push_str(cells[3]);
        line.push_str("  ");
        pad_right(line, &one_line(cells[4]), c2);
        line.push_str("  ");
        pad_right(line, &one_line(cells[5]), c3);
        line.push_str("  ");
        line.push_str(&one_line(cells[6]));
        let kept = line.trim_end().len();
        line.truncate(kept);
        line.push('\n');
        out.write_all(line.as_bytes())
    }

    fn header(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.line(out, DELIVERY_HEADER)
    }

    fn row(&mut self, out: &mut dyn Write, d: &Delivery<'_>) -> io::Result<()> {
        self.line(
            out,
            [
                d.channel,
                d.recipient,
                d.status.as_str(),
                itoa::Buffer::new().format(d.attempts),
                d.route.unwrap_or(""),
                d.provider_id.unwrap_or(""),
                d.error.unwrap_or(""),
            ],
        )
    }
}

/// Line breaks and other control characters (from a provider's answer, a CSV cell) would break
/// the table's rows or drive the terminal: shown as spaces.
fn one_line(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// The summary, then the problem rows (failed, undelivered, unknown, skipped for bad input),
/// then everything else.
fn write_table(
    src: &Source<'_>,
    tz: &jiff::tz::TimeZone,
    locale: crate::locale::Locale,
    out: &mut dyn Write,
) -> Result<(), WriteError> {
    let report = src.report;
    if let Some(line) = report.people.line() {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "Run {}{}",
        report.run_id,
        if report.dry_run { " (dry run)" } else { "" }
    )?;
    writeln!(out, "Announcement: {}", report.announcement.title)?;
    writeln!(
        out,
        "Started {}, {}",
        locale.timestamp(&report.started_at, tz),
        report
            .finished_at
            .as_deref()
            .map_or("not finished".to_string(), |f| format!(
                "finished {}",
                locale.timestamp(f, tz)
            ))
    )?;
    writeln!(out, "{}", summary_table(report))?;
    let mut cols = Columns::new(src.scope()?.column_widths()?);
    let problems = src.problems();
    if problems == 0 {
        writeln!(
            out,
            "\nNo problems: nothing failed, is unknown or was skipped for bad input."
        )?;
    } else {
        writeln!(
            out,
            "\nProblems ({problems}): failed, undelivered, unknown, and skipped for bad input"
        )?;
        cols.header(out)?;
        src.each(Which::Problems, |d| cols.row(out, d))?;
    }
    let rest = report.totals.planned.saturating_sub(problems);
    if rest > 0 {
        writeln!(out, "\nEverything else ({rest}):")?;
        cols.header(out)?;
        src.each(Which::NoProblems, |d| cols.row(out, d))?;
    }
    Ok(())
}

/// A cell as spreadsheets can open it safely: one starting with `=`, `+`, `-`, `@`, TAB or CR
/// would be taken for a formula (OWASP "CSV injection"), so it gets a leading `'`. That also
/// keeps E.164 numbers (`+49...`) text instead of turning them into numbers.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn write_csv(src: &Source<'_>, out: &mut dyn Write) -> Result<(), WriteError> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "run_id",
        "channel",
        "recipient",
        "status",
        "attempts",
        "provider_id",
        "route",
        "error",
        "updated_at",
        "row",
        "fallback",
    ])
    .map_err(io::Error::from)?;
    let run_id = csv_cell(&src.report.run_id);
    let (mut attempts, mut row) = (itoa::Buffer::new(), itoa::Buffer::new());
    src.each(Which::All, |d| {
        let cells = [
            run_id.as_ref(),
            d.channel,
            d.recipient,
            d.status.as_str(),
            attempts.format(d.attempts),
            d.provider_id.unwrap_or(""),
            d.route.unwrap_or(""),
            d.error.unwrap_or(""),
            d.updated_at,
            d.row.map_or("", |n| row.format(n)),
            if d.fallback { "true" } else { "false" },
        ];
        w.write_record(cells.map(csv_cell).iter().map(|c| c.as_bytes()))
            .map_err(io::Error::from)
    })?;
    Ok(w.flush()?)
}

/// `report --not-reached`: the call list alone (HTML is refused by the command: the HTML
/// report has its own section).
pub fn write_not_reached(format: Format, src: &Source<'_>, out: &mut dyn Write) -> Result<(), WriteError> {
    let each = |f: &mut dyn FnMut(NotReached) -> io::Result<()>| -> Result<(), WriteError> {
        src.each_not_reached(f)??;
        Ok(())
    };
    match format {
        Format::Json => json::write_not_reached(src, out),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record(CALL_HEADER).map_err(io::Error::from)?;
            each(&mut |p| {
                let row = p.row.to_string();
                let reasons = p.reasons.join("; ");
                let cells = [row.as_str(), &p.name, &p.email, &p.phone, &reasons];
                w.write_record(cells.map(csv_cell).iter().map(|c| c.as_bytes()))
                    .map_err(io::Error::from)
            })?;
            Ok(w.flush()?)
        }
        Format::Table | Format::Html => {
            // Two passes over the list, one to measure and one to print: nothing is held.
            let mut widths = CALL_HEADER.map(str::len);
            let mut n = 0usize;
            each(&mut |p| {
                n += 1;
                for (w, cell) in widths
                    .iter_mut()
                    .zip([p.row.to_string().as_str(), &p.name, &p.email, &p.phone])
                {
                    *w = (*w).max(cell.chars().count()).min(MAX_WIDTH);
                }
                Ok(())
            })?;
            if n == 0 {
                let people = &src.report.people;
                match people.line() {
                    Some(line) => writeln!(out, "Nobody to call: {line}.")?,
                    None => writeln!(out, "No people in this run: it has no per-person channel.")?,
                }
                return Ok(());
            }
            let [w0, w1, w2, w3, _] = widths;
            let mut line = |cells: [&str; 5]| {
                let text = format!(
                    "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                    cells[0],
                    one_line(cells[1]),
                    one_line(cells[2]),
                    one_line(cells[3]),
                    one_line(cells[4]),
                );
                writeln!(out, "{}", text.trim_end())
            };
            line(CALL_HEADER)?;
            each(&mut |p| line([&p.row.to_string(), &p.name, &p.email, &p.phone, &p.reasons.join("; ")]))?;
            Ok(())
        }
    }
}

/// The call list's columns (the contract's CSV header).
const CALL_HEADER: [&str; 5] = ["row", "name", "email", "phone", "reasons"];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::tests::{delivery, run};

    /// A journal holding run r1 with these (recipient, status, bad input, error) deliveries.
    fn journal(rows: &[(&str, Status, bool, Option<&str>)]) -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        let ds: Vec<_> = rows
            .iter()
            .map(|(r, status, problem, error)| crate::journal::NewDelivery {
                status: *status,
                problem: *problem,
                error: error.map(str::to_string),
                ..delivery(r)
            })
            .collect();
        j.create_run(&run("r1"), &ds).unwrap();
        (dir, j)
    }

    fn written(j: &Journal, format: Format) -> String {
        written_as(j, format, None).unwrap()
    }

    fn written_as(j: &Journal, format: Format, templates_dir: Option<&std::path::Path>) -> Result<String, WriteError> {
        let (report, bad_skips) = Report::load_summary(j, "r1").unwrap().unwrap();
        let src = Source {
            journal: j,
            report: &report,
            bad_skips,
        };
        let mut out = Vec::new();
        let style = Style {
            tz: jiff::tz::TimeZone::UTC,
            locale: crate::locale::Locale::En,
            templates_dir,
        };
        format.write(&src, &style, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    const MIXED: &[(&str, Status, bool, Option<&str>)] = &[
        ("a@example.de", Status::Sent, false, None),
        ("b@example.de", Status::Failed, false, Some("550 5.1.1 no such user")),
        ("c@example.de", Status::Sent, false, None),
        ("line 7", Status::Skipped, true, Some("invalid email address")),
        ("e@example.de", Status::Skipped, false, Some("opted out")),
        ("f@example.de", Status::Sending, false, None),
        ("g@example.de", Status::Pending, false, None),
    ];

    #[test]
    fn the_table_lists_problem_rows_before_everything_else() {
        let (_d, j) = journal(MIXED);
        let out = written(&j, Format::Table);
        let at = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("no {needle:?} in\n{out}"));
        let (problems, rest) = (at("Problems (3)"), at("Everything else (4)"));
        for p in ["b@example.de", "line 7", "f@example.de"] {
            assert!(problems < at(p) && at(p) < rest, "{p} is a problem row:\n{out}");
        }
        for r in ["a@example.de", "c@example.de", "e@example.de", "g@example.de"] {
            assert!(at(r) > rest, "{r} comes after the problems:\n{out}");
        }
        // In id order within each part; a dead run's `sending` shows as unknown.
        assert!(at("b@example.de") < at("line 7") && at("a@example.de") < at("c@example.de"));
        let f_line = out.lines().find(|l| l.contains("f@example.de")).unwrap();
        assert!(f_line.contains("unknown"), "{f_line}");

        let (_d, j) = journal(&MIXED[..1]);
        assert!(written(&j, Format::Table).contains("No problems"));
    }

    #[test]
    fn streamed_json_is_the_contract_document() {
        let (_d, j) = journal(MIXED);
        let run = j.run("r1").unwrap().unwrap();
        let in_memory = Report::from_rows(&run, &j.deliveries("r1").unwrap());
        let expected = format!("{}\n", serde_json::to_string_pretty(&in_memory).unwrap());
        assert_eq!(written(&j, Format::Json), expected);
        let (_d, j) = journal(&[]);
        let v: serde_json::Value = serde_json::from_str(&written(&j, Format::Json)).unwrap();
        assert_eq!(v["deliveries"], serde_json::json!([]));
    }

    /// A run's rows are found by their id range: another run's rows inside it are left out,
    /// and a row of the run numbered after another run's is still in every format.
    #[test]
    fn a_report_holds_its_runs_rows_and_no_other_runs() {
        let (d, mut j) = journal(&MIXED[..2]);
        j.create_run(&run("r2"), &[delivery("other@example.de")]).unwrap();
        let conn = rusqlite::Connection::open(j.path()).unwrap();
        conn.execute(
            "INSERT INTO deliveries (lane, person, recipient, status)
             SELECT lane, person, 'late@example.de', 'sent' FROM deliveries ORDER BY id LIMIT 1",
            [],
        )
        .unwrap();
        drop(conn);
        let json: serde_json::Value = serde_json::from_str(&written(&j, Format::Json)).unwrap();
        let ds = &json["deliveries"];
        assert_eq!(
            [0, 1, 2, 3].map(|i| ds[i]["recipient"].as_str()),
            [
                Some("a@example.de"),
                Some("b@example.de"),
                Some("late@example.de"),
                None
            ]
        );
        assert_eq!(json["totals"]["planned"], 3);
        let in_memory = Report::from_rows(&j.run("r1").unwrap().unwrap(), &j.deliveries("r1").unwrap());
        assert_eq!(serde_json::to_value(&in_memory).unwrap(), json);
        for format in [Format::Table, Format::Csv, Format::Html] {
            let out = written(&j, format);
            assert!(
                out.contains("late@example.de") && !out.contains("other@example.de"),
                "{out}"
            );
        }
        drop(d);
    }

    /// The people counted and listed by SQL are those the in-memory classification finds.
    #[test]
    fn people_from_sql_match_people_from_memory() {
        use Status::*;
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        // (channel, recipient, row, status, error)
        type Planned<'a> = (&'a str, &'a str, Option<u64>, Status, Option<&'a str>);
        let rows: &[Planned<'_>] = &[
            ("email", "a@x.de", Some(2), Failed, Some("550 no")),
            ("sms", "+4915100000002", Some(2), Sent, None),
            ("email", "b@x.de", Some(3), Unknown, None),
            ("sms", "row 3", Some(3), Skipped, Some("row 3: no phone number")),
            ("email", "c@x.de", Some(5), Failed, Some("550 no")),
            ("sms", "+4915100000005", Some(5), Pending, None),
            (
                "email",
                "row 6",
                Some(6),
                Skipped,
                Some("row 6: invalid email address \"x@\": no domain"),
            ),
            (
                "sms",
                "+4915100000006",
                Some(6),
                Undelivered,
                Some("30005 unknown handset"),
            ),
            ("email", "d@x.de", Some(7), Delivered, None),
            ("status", "page", None, Failed, Some("disk full")),
        ];
        let ds: Vec<_> = rows
            .iter()
            .map(|(channel, r, row, status, error)| crate::journal::NewDelivery {
                channel: channel.to_string(),
                status: *status,
                row: *row,
                error: error.map(str::to_string),
                ..delivery(r)
            })
            .collect();
        j.create_run(&run("r1"), &ds).unwrap();
        let v: serde_json::Value = serde_json::from_str(&written(&j, Format::Json)).unwrap();
        assert_eq!(
            v["people"],
            serde_json::json!({"total": 5, "reached": 2, "not_reached": 2, "uncertain": 1})
        );
        assert_eq!(
            v["not_reached"],
            serde_json::json!([
                {"row": 5, "name": "", "email": "c@x.de", "phone": "+4915100000005",
                 "reasons": ["email: 550 no", "sms: not sent yet (pending)"]},
                {"row": 6, "name": "", "email": "", "phone": "+4915100000006",
                 "reasons": ["email: invalid email address \"x@\": no domain", "sms: 30005 unknown handset"]},
            ])
        );
        let in_memory = Report::from_rows(&j.run("r1").unwrap().unwrap(), &j.deliveries("r1").unwrap());
        assert_eq!(
            serde_json::to_value(&in_memory).unwrap(),
            v,
            "the streamed document is the in-memory one"
        );
        assert!(written(&j, Format::Table).starts_with("reached 2 of 5 people, 1 uncertain (outcome unknown)\n"));
    }

    #[test]
    fn csv_cells_that_start_a_formula_get_a_quote() {
        let (_d, j) = journal(&[
            ("=cmd|'/Ccalc'!A0@example.de", Status::Sent, false, None),
            ("+1+2@example.de", Status::Sent, false, None),
            ("+4915112345678", Status::Sent, false, None),
            ("@SUM(A1)@example.de", Status::Failed, false, Some("-ERR relay denied")),
            ("\tx@example.de", Status::Failed, false, Some("\r=1+1")),
            ("anna@example.de", Status::Failed, false, Some("550 no such user")),
        ]);
        let out = written(&j, Format::Csv);
        let mut r = csv::Reader::from_reader(out.as_bytes());
        let headers = r.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
        let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
        let (recipient, error) = (col("recipient"), col("error"));
        let cells: Vec<(&str, &str)> = rows.iter().map(|x| (&x[recipient], &x[error])).collect();
        assert_eq!(
            cells,
            [
                ("'=cmd|'/Ccalc'!A0@example.de", ""),
                ("'+1+2@example.de", ""),
                ("'+4915112345678", ""),
                ("'@SUM(A1)@example.de", "'-ERR relay denied"),
                ("'\tx@example.de", "'\r=1+1"),
                ("anna@example.de", "550 no such user"),
            ]
        );
    }

    #[test]
    fn the_html_report_shows_the_bars_then_the_problems_then_the_rest() {
        let (_d, j) = journal(MIXED);
        let out = written(&j, Format::Html);
        let at = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("no {needle:?} in\n{out}"));
        assert!(
            out.starts_with("<!DOCTYPE html>") && out.contains("<html lang=\"en\">"),
            "{out}"
        );
        // One bar of 7 deliveries: sent 2, failed 1, unknown 1, pending 1, skipped 2.
        let bar = &out[at("<svg")..at("</svg>")];
        assert!(
            bar.contains("aria-label=\"out: sent 2, failed 1, unknown 1, pending 1, skipped 2\""),
            "{bar}"
        );
        assert!(
            bar.contains("x=\"0\" y=\"0\" width=\"285\""),
            "sent: 2/7 of the bar\n{bar}"
        );
        assert_eq!(bar.matches("<rect").count(), 5, "{bar}");
        let (problems, rest) = (at("Problems: failed"), at("Everything else (4)"));
        assert!(at("</svg>") < problems);
        for p in ["b@example.de", "line 7", "f@example.de", "550 5.1.1 no such user"] {
            assert!(problems < at(p) && at(p) < rest, "{p} is a problem row:\n{out}");
        }
        for r in [
            "a@example.de",
            "c@example.de",
            "e@example.de",
            "g@example.de",
            "opted out",
        ] {
            assert!(at(r) > rest, "{r} comes after the problems:\n{out}");
        }
        assert!(out.contains("This run has no per-person channel"), "{out}");

        let (_d, j) = journal(&MIXED[..1]);
        let out = written(&j, Format::Html);
        assert!(
            out.contains("No problems") && out.contains("Everything else (1)"),
            "{out}"
        );
    }

    #[test]
    fn the_html_report_template_can_be_replaced_from_templates_dir() {
        let (_d, j) = journal(MIXED);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("report.html.hbs"),
            "{{title}}/{{people_line}}:{{#each_delivery \"problems\"}}[{{recipient}} {{status_label}}]{{/each_delivery}}",
        )
        .unwrap();
        let own = written_as(&j, Format::Html, Some(dir.path())).unwrap();
        assert_eq!(own, "t/:[b@example.de failed][line 7 skipped][f@example.de unknown]");

        std::fs::write(dir.path().join("report.html.hbs"), "{{title}}\n{{#if x}}unclosed").unwrap();
        let err = written_as(&j, Format::Html, Some(dir.path())).unwrap_err();
        assert!(
            matches!(&err, WriteError::Template(m) if m.contains("report.html.hbs")),
            "{err}"
        );
        std::fs::write(dir.path().join("report.html.hbs"), "{{title}}\n{{nope}}").unwrap();
        let err = written_as(&j, Format::Html, Some(dir.path())).unwrap_err();
        assert!(
            matches!(&err, WriteError::Template(m) if m.contains("report.html.hbs:2:")),
            "{err}"
        );
    }
}
