//! `report --format html`: one self-contained page a manager reads at a glance, rendered from
//! the `report.html.hbs` template (built in, overridable by name from `templates_dir`).
//!
//! The template's context holds only the summary. The deliveries and the call list reach it
//! through two block helpers, `{{#each_delivery "problems"}}` (or `"rest"`) and `{{#each_not_reached}}`,
//! that read the journal row by row while the page is written: a run of a million deliveries is
//! rendered in constant memory, like the other formats.

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use handlebars::{
    BlockContext, Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Renderable, Template,
    template::{Parameter, TemplateElement},
};
use serde::Serialize;

use super::rows::{self, Delivery};
use super::{Source, Style, Totals, WriteError};
use crate::journal::{Journal, JournalError, Status, Which};
use crate::locale::Locale;
use crate::people::NotReached;
use crate::render::Templates;

/// The template's name, also the file that overrides it in `templates_dir`.
pub const TEMPLATE: &str = "report.html.hbs";
const BUILTIN: &str = include_str!("report.html.hbs");

pub fn write(src: &Source<'_>, style: &Style<'_>, out: &mut dyn Write) -> Result<(), WriteError> {
    let mut templates = Templates::load(&[(TEMPLATE, BUILTIN)], style.templates_dir)
        .map_err(|e| WriteError::Template(e.to_string()))?;
    let origin = templates.origin(TEMPLATE).unwrap_or(TEMPLATE).to_string();
    // The helpers read through a connection of their own: handlebars wants helpers `Send + Sync`,
    // which a borrowed journal is not.
    let state_dir = src.journal.path().parent().unwrap_or(Path::new("."));
    let layout = src.scope()?.layout.clone();
    let rows = Arc::new(Rows {
        journal: Mutex::new(Journal::open(state_dir)?),
        run_id: src.report.run_id.clone(),
        layout,
        people: src.report.people,
        tz: style.tz.clone(),
        locale: style.locale,
        failed: Mutex::new(None),
    });
    let reg = templates.registry_for(TEMPLATE);
    for kind in [Kind::Deliveries, Kind::NotReached] {
        reg.register_helper(
            kind.name(),
            Box::new(Stream {
                rows: rows.clone(),
                kind,
            }),
        );
    }
    let rendered = reg.render_to_write(TEMPLATE, &page(src, style), Out(out));
    if let Some(e) = rows.failed.lock().unwrap_or_else(PoisonError::into_inner).take() {
        return Err(e.into());
    }
    rendered.map_err(|e| match e.reason() {
        RenderErrorReason::IOError(io) => WriteError::Io(io::Error::new(io.kind(), io.to_string())),
        _ => WriteError::Template(crate::render::templates::located(&origin, &e)),
    })
}

/// `render_to_write` takes its writer by value.
struct Out<'a>(&'a mut dyn Write);

impl Write for Out<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

struct Rows {
    journal: Mutex<Journal>,
    run_id: String,
    layout: rows::Layout,
    people: crate::people::People,
    tz: jiff::tz::TimeZone,
    locale: Locale,
    /// A journal error met while rendering, returned as itself rather than as a template error.
    failed: Mutex<Option<JournalError>>,
}

#[derive(Clone, Copy)]
enum Kind {
    // The order of `is_builtin_block`'s list.
    Deliveries,
    NotReached,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Deliveries => "each_delivery",
            Kind::NotReached => "each_not_reached",
        }
    }
}

/// A block helper that renders its block once per row of the journal.
struct Stream {
    rows: Arc<Rows>,
    kind: Kind,
}

impl HelperDef for Stream {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let Some(t) = h.template() else { return Ok(()) };
        let which = match (self.kind, h.param(0).and_then(|p| p.value().as_str())) {
            (Kind::NotReached, _) => None,
            (Kind::Deliveries, Some("problems")) => Some(Which::Problems),
            (Kind::Deliveries, Some("rest")) => Some(Which::NoProblems),
            (Kind::Deliveries, Some("all")) => Some(Which::All),
            (Kind::Deliveries, other) => {
                return Err(RenderErrorReason::Other(format!(
                    "each_delivery takes \"problems\", \"rest\" or \"all\", not {other:?}"
                ))
                .into());
            }
        };
        let rows = &*self.rows;
        let journal = rows.journal.lock().unwrap_or_else(PoisonError::into_inner);
        let walked = if is_builtin_block(self.kind, t) {
            rows.write_builtin(&journal, which, out)
        } else {
            rc.push_block(BlockContext::new());
            let mut each = |v: serde_json::Value| -> Result<(), RenderError> {
                if let Some(block) = rc.block_mut() {
                    block.set_base_value(v);
                }
                t.render(r, ctx, rc, out)
            };
            let walked = match which {
                Some(which) => rows
                    .scope(&journal)
                    .each(which, |d| each(row_value(d, &rows.tz, rows.locale))),
                None => rows
                    .scope(&journal)
                    .each_not_reached(&rows.people, |p| each(person_value(p))),
            };
            rc.pop_block();
            walked
        };
        walked.unwrap_or_else(|e| {
            *rows.failed.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            Err(RenderErrorReason::Other("the journal could not be read".into()).into())
        })
    }
}

/// Whether `block` is the built-in template's block of this helper: its rows are then written
/// by [`Rows::write_builtin`], not rendered by handlebars one at a time (a million renders of
/// the row's markup took most of the HTML report's time).
fn is_builtin_block(kind: Kind, block: &Template) -> bool {
    static BLOCKS: OnceLock<[Option<Template>; 2]> = OnceLock::new();
    let blocks = BLOCKS.get_or_init(|| {
        let page = Template::compile(BUILTIN).ok();
        [Kind::Deliveries, Kind::NotReached].map(|k| page.as_ref().and_then(|p| find_block(p, k.name())).cloned())
    });
    blocks[kind as usize]
        .as_ref()
        .is_some_and(|b| b.elements == block.elements)
}

/// The block of the first `{{#name}}` in `t`, at any depth.
fn find_block<'t>(t: &'t Template, name: &str) -> Option<&'t Template> {
    t.elements.iter().find_map(|e| match e {
        TemplateElement::HelperBlock(h) => match (&h.name, &h.template) {
            (Parameter::Name(n), Some(block)) if n == name => Some(block),
            _ => [&h.template, &h.inverse]
                .into_iter()
                .flatten()
                .find_map(|t| find_block(t, name)),
        },
        _ => None,
    })
}

/// `s` HTML-escaped onto `buf`, as [`crate::escape::html`] escapes it (a test holds the two
/// together) but without allocating: every character it replaces is ASCII, so the runs between
/// them are copied whole.
fn push_escaped(buf: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'&' => "&amp;",
            b'\'' => "&#x27;",
            b'`' => "&#x60;",
            b'=' => "&#x3D;",
            _ => continue,
        };
        buf.push_str(&s[start..i]);
        buf.push_str(entity);
        start = i + 1;
    }
    buf.push_str(&s[start..]);
}

impl Rows {
    fn scope<'a>(&'a self, journal: &'a Journal) -> rows::Scope<'a> {
        rows::Scope {
            journal,
            run_id: &self.run_id,
            layout: &self.layout,
        }
    }

    /// The built-in blocks' rows, written as handlebars would render them: the deliveries of
    /// `which`, or (`None`) the call list.
    fn write_builtin(
        &self,
        journal: &Journal,
        which: Option<Which>,
        out: &mut dyn Output,
    ) -> Result<HelperResult, JournalError> {
        let l = labels(self.locale);
        let mut buf = String::new();
        // Most rows of a run share their neighbour's timestamp, or its minute: the last one is kept.
        let mut updated: (String, String) = Default::default();
        let mut flush = |buf: &mut String| -> HelperResult {
            out.write(buf)?;
            buf.clear();
            Ok(())
        };
        let Some(which) = which else {
            return self.scope(journal).each_not_reached(&self.people, |p| {
                person_row(&mut buf, &p);
                flush(&mut buf)
            });
        };
        self.scope(journal).each(which, |d| {
            if updated.0 != d.updated_at {
                updated = (
                    d.updated_at.to_string(),
                    local_date(d.updated_at, &self.tz, self.locale),
                );
            }
            delivery_row(&mut buf, d, l, &updated.1);
            flush(&mut buf)
        })
    }
}

/// The built-in `each_delivery` block for one delivery.
fn delivery_row(buf: &mut String, d: &Delivery<'_>, l: &Labels, updated: &str) {
    let status = d.status.as_str();
    buf.push_str("<tr class=\"delivery ");
    push_escaped(buf, status);
    buf.push_str("\"><td>");
    push_escaped(buf, d.channel);
    buf.push_str("</td><td>");
    push_escaped(buf, d.recipient);
    buf.push_str("</td><td><span class=\"dot ");
    push_escaped(buf, status);
    buf.push_str("\"></span>");
    push_escaped(buf, l.status(d.status));
    buf.push_str("</td><td>");
    buf.push_str(itoa::Buffer::new().format(d.attempts));
    for cell in [d.error, d.route, d.provider_id, Some(updated)] {
        buf.push_str("</td><td>");
        push_escaped(buf, cell.unwrap_or(""));
    }
    buf.push_str("</td></tr>\n");
}

/// The built-in `each_not_reached` block for one person.
fn person_row(buf: &mut String, p: &NotReached) {
    buf.push_str("<tr class=\"failed\"><td>");
    buf.push_str(itoa::Buffer::new().format(p.row));
    buf.push_str("</td><td>");
    push_escaped(buf, &p.name);
    buf.push_str("</td><td>");
    if let Some(tel) = tel(&p.phone) {
        buf.push_str("<a href=\"tel:");
        push_escaped(buf, tel);
        buf.push_str("\">");
        push_escaped(buf, &p.phone);
        buf.push_str("</a>");
    } else {
        push_escaped(buf, &p.phone);
    }
    buf.push_str("</td><td>");
    push_escaped(buf, &p.email);
    buf.push_str("</td><td><ul class=\"reasons\">");
    for reason in &p.reasons {
        buf.push_str("<li>");
        push_escaped(buf, reason);
        buf.push_str("</li>");
    }
    buf.push_str("</ul></td></tr>\n");
}

/// One delivery as the template sees it.
fn row_value(d: &Delivery<'_>, tz: &jiff::tz::TimeZone, locale: Locale) -> serde_json::Value {
    serde_json::json!({
        "channel": d.channel,
        "recipient": d.recipient,
        "status": d.status.as_str(),
        "status_label": labels(locale).status(d.status),
        "attempts": d.attempts,
        "route": d.route,
        "provider_id": d.provider_id,
        "error": d.error,
        "updated": local_date(d.updated_at, tz, locale),
        "row": d.row,
        "fallback": d.fallback,
    })
}

/// One person of the call list, with a `tel:` target when the number is one a phone can dial.
fn person_value(p: NotReached) -> serde_json::Value {
    let tel = tel(&p.phone).map(str::to_string);
    serde_json::json!({
        "row": p.row,
        "name": p.name,
        "email": p.email,
        "phone": p.phone,
        "tel": tel,
        "reasons": p.reasons,
    })
}

/// The `tel:` target of a number a phone can dial.
fn tel(phone: &str) -> Option<&str> {
    let dialable = phone.strip_prefix('+').unwrap_or(phone);
    (!dialable.is_empty() && dialable.bytes().all(|b| b.is_ascii_digit())).then_some(phone)
}

/// A journal timestamp in the org's time zone, written as the locale writes dates.
fn local_date(ts: &str, tz: &jiff::tz::TimeZone, locale: Locale) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => {
            let z = t.to_zoned_datetime(tz.clone());
            format!("{} {}", locale.datetime(&z.datetime()), z.strftime("%Z"))
        }
        Err(_) => ts.to_string(),
    }
}

/// The statuses a channel's bar shows, in the bar's order (reached, then lost, then open).
const BAR: [Status; 7] = [
    Status::Delivered,
    Status::Sent,
    Status::Failed,
    Status::Undelivered,
    Status::Unknown,
    Status::Pending,
    Status::Skipped,
];

fn count_of(t: &Totals, s: Status) -> usize {
    match s {
        Status::Delivered => t.delivered,
        Status::Sent => t.sent,
        Status::Failed => t.failed,
        Status::Undelivered => t.undelivered,
        Status::Unknown | Status::Sending => t.unknown,
        Status::Pending => t.pending,
        Status::Skipped => t.skipped,
        Status::Standby => 0,
    }
}

/// The width of a bar in SVG user units.
const BAR_WIDTH: usize = 1000;

#[derive(Serialize)]
struct Segment {
    status: &'static str,
    label: &'static str,
    count: usize,
    x: usize,
    width: usize,
}

/// A channel's statuses with a count, each as wide as its share of the channel's deliveries
/// (cumulative rounding, so the segments fill the bar exactly).
fn segments(t: &Totals, l: &Labels) -> Vec<Segment> {
    let mut done = 0;
    BAR.iter()
        .filter_map(|&s| {
            let count = count_of(t, s);
            if count == 0 {
                return None;
            }
            let x = done * BAR_WIDTH / t.planned.max(1);
            done += count;
            let end = done * BAR_WIDTH / t.planned.max(1);
            Some(Segment {
                status: s.as_str(),
                label: l.status(s),
                count,
                x,
                width: end - x,
            })
        })
        .collect()
}

/// The template's context: the summary only (the rows come from the helpers).
fn page(src: &Source<'_>, style: &Style<'_>) -> serde_json::Value {
    let r = src.report;
    let l = labels(style.locale);
    let problems = src.problems();
    let channels: Vec<_> = r
        .channels
        .iter()
        .map(|c| {
            let segments = segments(&c.counts, l);
            let summary = segments
                .iter()
                .map(|s| format!("{} {}", s.label, s.count))
                .collect::<Vec<_>>()
                .join(", ");
            serde_json::json!({
                "name": c.name,
                "type": c.kind,
                "planned": c.counts.planned,
                "segments": segments,
                "summary": summary,
            })
        })
        .collect();
    serde_json::json!({
        "lang": style.locale.code(),
        "t": l,
        "title": r.announcement.title,
        "run_id": r.run_id,
        "dry_run": r.dry_run,
        "started": local_date(&r.started_at, &style.tz, style.locale),
        "finished": r.finished_at.as_deref().map(|f| local_date(f, &style.tz, style.locale)),
        "people": r.people,
        "people_line": (r.people.total > 0).then(|| (l.people_line)(r.people.reached, r.people.total)),
        "channels": channels,
        "bar_width": BAR_WIDTH,
        "not_reached": r.people.not_reached,
        "problems": problems,
        "rest": r.totals.planned.saturating_sub(problems),
    })
}

/// The page's built-in words, in each language.
#[derive(Serialize)]
struct Labels {
    report: &'static str,
    run: &'static str,
    dry_run: &'static str,
    started: &'static str,
    finished: &'static str,
    not_finished: &'static str,
    people: &'static str,
    reached: &'static str,
    not_reached: &'static str,
    uncertain: &'static str,
    total: &'static str,
    no_people: &'static str,
    channels: &'static str,
    planned: &'static str,
    call_list: &'static str,
    problems: &'static str,
    no_problems: &'static str,
    rest: &'static str,
    col: Columns,
    #[serde(skip)]
    statuses: [&'static str; 7],
    #[serde(skip)]
    people_line: fn(usize, usize) -> String,
}

#[derive(Serialize)]
struct Columns {
    row: &'static str,
    name: &'static str,
    email: &'static str,
    phone: &'static str,
    reasons: &'static str,
    channel: &'static str,
    recipient: &'static str,
    status: &'static str,
    attempts: &'static str,
    route: &'static str,
    provider_id: &'static str,
    error: &'static str,
    updated: &'static str,
}

impl Labels {
    fn status(&self, s: Status) -> &'static str {
        let i = BAR.iter().position(|&b| b == s).unwrap_or(4);
        self.statuses[i]
    }
}

fn labels(locale: Locale) -> &'static Labels {
    match locale {
        Locale::De => &DE,
        Locale::En => &EN,
    }
}

// The statuses in the order of `BAR`.
static EN: Labels = Labels {
    report: "Delivery report",
    run: "Run",
    dry_run: "dry run",
    started: "Started",
    finished: "Finished",
    not_finished: "not finished",
    people: "People",
    reached: "reached",
    not_reached: "not reached",
    uncertain: "uncertain (outcome unknown)",
    total: "in total",
    no_people: "This run has no per-person channel: there are no people to count.",
    channels: "Channels",
    planned: "planned",
    call_list: "Not reached: please call these people",
    problems: "Problems: failed, undelivered, unknown, skipped for bad input",
    no_problems: "No problems: nothing failed, is unknown or was skipped for bad input.",
    rest: "Everything else",
    col: Columns {
        row: "row",
        name: "name",
        email: "email",
        phone: "phone",
        reasons: "reasons",
        channel: "channel",
        recipient: "recipient",
        status: "status",
        attempts: "attempts",
        route: "route",
        provider_id: "provider id",
        error: "reason",
        updated: "updated",
    },
    statuses: [
        "delivered",
        "sent",
        "failed",
        "undelivered",
        "unknown",
        "pending",
        "skipped",
    ],
    people_line: |reached, total| format!("Reached {reached} of {total} people"),
};

static DE: Labels = Labels {
    report: "Zustellbericht",
    run: "Lauf",
    dry_run: "Probelauf",
    started: "Begonnen",
    finished: "Beendet",
    not_finished: "nicht beendet",
    people: "Personen",
    reached: "erreicht",
    not_reached: "nicht erreicht",
    uncertain: "ungewiss (Ausgang unbekannt)",
    total: "insgesamt",
    no_people: "Dieser Lauf hat keinen Kanal für einzelne Personen: es gibt keine Personen zu zählen.",
    channels: "Kanäle",
    planned: "geplant",
    call_list: "Nicht erreicht: bitte diese Personen anrufen",
    problems: "Probleme: fehlgeschlagen, nicht zugestellt, unbekannt, wegen fehlerhafter Daten übersprungen",
    no_problems: "Keine Probleme: nichts ist fehlgeschlagen, unbekannt oder wegen fehlerhafter Daten übersprungen.",
    rest: "Alles andere",
    col: Columns {
        row: "Zeile",
        name: "Name",
        email: "E-Mail",
        phone: "Telefon",
        reasons: "Gründe",
        channel: "Kanal",
        recipient: "Empfänger",
        status: "Status",
        attempts: "Versuche",
        route: "Route",
        provider_id: "Anbieter-ID",
        error: "Grund",
        updated: "Aktualisiert",
    },
    statuses: [
        "zugestellt",
        "gesendet",
        "fehlgeschlagen",
        "nicht zugestellt",
        "unbekannt",
        "ausstehend",
        "übersprungen",
    ],
    people_line: |reached, total| format!("{reached} von {total} Personen erreicht"),
};

#[cfg(test)]
mod tests {
    #[test]
    fn push_escaped_writes_what_the_html_escape_writes() {
        for s in [
            "",
            "plain@example.de",
            "N\u{e4}\"me <7> & 'x' `y` =z",
            "=<>&\"'`",
            "\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{2713} \u{6f22}",
            "a=b&c\n",
        ] {
            let mut buf = String::from("kept ");
            super::push_escaped(&mut buf, s);
            assert_eq!(buf, format!("kept {}", crate::escape::html(s)), "{s:?}");
        }
    }
}
