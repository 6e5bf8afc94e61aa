//! A run's delivery report, built from the journal, and its output formats: one formatter per
//! format behind [`Format::write`] (table, JSON — exactly the contract's document —, CSV, HTML).

use std::io::{self, Write};

use comfy_table::{Cell, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};

use crate::journal::{DeliveryRow, Journal, JournalError, RunRow, Status};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub run_id: String,
    pub dry_run: bool,
    pub announcement: AnnouncementRef,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub totals: Totals,
    pub channels: Vec<ChannelTotals>,
    pub deliveries: Vec<DeliveryReport>,
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
}

impl Totals {
    fn add(&mut self, status: Status) {
        self.add_n(status, 1);
    }

    fn add_n(&mut self, status: Status, n: usize) {
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
        let mut bad_skips = 0;
        for c in journal.status_counts(&run.id)? {
            let mut counts = Totals::default();
            for (status, n) in c.counts {
                counts.add_n(status, n);
                report.totals.add_n(status, n);
            }
            bad_skips += c.bad_skips;
            report.channels.push(ChannelTotals {
                name: c.channel,
                kind: c.channel_type,
                counts,
            });
        }
        Ok(Some((report, bad_skips)))
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
            deliveries: rows
                .iter()
                .map(|r| DeliveryReport {
                    channel: r.channel.clone(),
                    recipient: r.recipient.clone(),
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
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Html,
}

impl Format {
    pub fn write(self, report: &Report, tz: &jiff::tz::TimeZone, out: &mut dyn Write) -> io::Result<()> {
        match self {
            Format::Table => write_table(report, tz, out),
            Format::Json => {
                serde_json::to_writer_pretty(&mut *out, report)?;
                writeln!(out)
            }
            Format::Csv => write_csv(report, out),
            Format::Html => write_html(report, tz, out),
        }
    }
}

/// "2026-04-03 11:12:41 CEST" in the org's time zone.
pub fn local_time(ts: &str, tz: &jiff::tz::TimeZone) -> String {
    ts.parse::<jiff::Timestamp>()
        .map(|t| {
            t.to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|_| ts.to_string())
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

fn write_table(report: &Report, tz: &jiff::tz::TimeZone, out: &mut dyn Write) -> io::Result<()> {
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
        local_time(&report.started_at, tz),
        report
            .finished_at
            .as_deref()
            .map_or("not finished".to_string(), |f| format!(
                "finished {}",
                local_time(f, tz)
            ))
    )?;
    writeln!(out, "{}", summary_table(report))?;
    let mut t = table();
    t.set_header([
        "channel",
        "recipient",
        "status",
        "attempts",
        "route",
        "provider id",
        "error",
    ]);
    for d in &report.deliveries {
        t.add_row([
            d.channel.clone(),
            d.recipient.clone(),
            d.status.as_str().to_string(),
            d.attempts.to_string(),
            d.route.clone().unwrap_or_default(),
            d.provider_id.clone().unwrap_or_default(),
            d.error.clone().unwrap_or_default(),
        ]);
    }
    writeln!(out, "{t}")
}

fn write_csv(report: &Report, out: &mut dyn Write) -> io::Result<()> {
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
    ])?;
    for d in &report.deliveries {
        w.write_record([
            report.run_id.as_str(),
            &d.channel,
            &d.recipient,
            d.status.as_str(),
            &d.attempts.to_string(),
            d.provider_id.as_deref().unwrap_or(""),
            d.route.as_deref().unwrap_or(""),
            d.error.as_deref().unwrap_or(""),
            &d.updated_at,
        ])?;
    }
    w.flush()
}

fn esc(s: &str) -> String {
    handlebars::html_escape(s)
}

fn write_html(report: &Report, tz: &jiff::tz::TimeZone, out: &mut dyn Write) -> io::Result<()> {
    let title = esc(&report.announcement.title);
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Delivery report: {title}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933}}\
         table{{border-collapse:collapse;margin:1rem 0;font-size:.9rem}}\
         th,td{{border:1px solid #d9e2ec;padding:.3rem .5rem;text-align:left;vertical-align:top}}\
         th{{background:#f0f4f8}} .sent,.delivered{{color:#2f855a}} .failed,.undelivered{{color:#c53030}}\
         .unknown,.pending{{color:#b7791f}} .skipped{{color:#52606d}}\
         </style></head><body>\n<h1>{title}</h1>\n<p>Run <code>{}</code>{} · started {} · {}</p>\n",
        esc(&report.run_id),
        if report.dry_run { " (dry run)" } else { "" },
        esc(&local_time(&report.started_at, tz)),
        report.finished_at.as_deref().map_or("not finished".into(), |f| format!(
            "finished {}",
            esc(&local_time(f, tz))
        )),
    )?;
    writeln!(
        out,
        "<table><thead><tr><th>channel</th><th>type</th><th>planned</th><th>sent</th><th>delivered</th><th>failed</th><th>skipped</th><th>pending</th><th>unknown</th></tr></thead><tbody>"
    )?;
    for c in &report.channels {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.name),
            esc(&c.kind),
            c.counts.planned,
            c.counts.sent,
            c.counts.delivered,
            c.counts.failed,
            c.counts.skipped,
            c.counts.pending,
            c.counts.unknown
        )?;
    }
    writeln!(
        out,
        "</tbody></table>\n<table><thead><tr><th>channel</th><th>recipient</th><th>status</th><th>attempts</th><th>route</th><th>provider id</th><th>error</th><th>updated</th></tr></thead><tbody>"
    )?;
    for d in &report.deliveries {
        writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{s}\">{s}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.channel),
            esc(&d.recipient),
            d.attempts,
            esc(d.route.as_deref().unwrap_or("")),
            esc(d.provider_id.as_deref().unwrap_or("")),
            esc(d.error.as_deref().unwrap_or("")),
            esc(&local_time(&d.updated_at, tz)),
            s = d.status.as_str(),
        )?;
    }
    writeln!(out, "</tbody></table>\n</body></html>")
}
