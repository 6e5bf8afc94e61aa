//! `report` and `runs`.

use std::io::Write;

use crate::channel::{self, Refreshed};
use crate::cli::ReportArgs;
use crate::config::Config;
use crate::error::{AppError, Exit};
use crate::fsutil;
use crate::journal::{Journal, Status};
use crate::report::{Format, Report, Source, Style, WriteError, write_not_reached};

fn journal(config: &Config) -> Result<Journal, AppError> {
    Journal::open_existing(&config.state_dir)?
        .ok_or_else(|| AppError::invalid(format!("no journal in {}: no run yet", config.state_dir.display())))
}

pub fn report(config: &Config, args: &ReportArgs) -> Result<Exit, AppError> {
    if args.not_reached && args.format == Format::Html {
        return Err(AppError::invalid(
            "--not-reached prints a table, csv or json; the html report has the list in it",
        ));
    }
    let journal = journal(config)?;
    let run = journal
        .run(&args.run_id)?
        .ok_or_else(|| AppError::invalid(format!("no run {:?} in {}", args.run_id, journal.path().display())))?;
    if args.refresh {
        refresh(config, &journal, &run.id)?;
    }
    let (report, bad_skips) =
        Report::load_summary(&journal, &run.id)?.ok_or_else(|| AppError::runtime("run vanished from the journal"))?;
    let src = Source {
        journal: &journal,
        report: &report,
        bad_skips,
    };
    let what = if args.not_reached {
        What::NotReached(args.format)
    } else {
        What::Report(args.format)
    };
    match &args.output {
        Some(path) => {
            let f =
                fsutil::create_private_file(path).map_err(|e| AppError::runtime(format!("{}: {e}", path.display())))?;
            print(what, &src, config, f)?;
        }
        None => print(what, &src, config, std::io::stdout().lock())?,
    }
    // Also with people on the call list: it is a report, not a failure.
    Ok(Exit::Ok)
}

/// The whole report, or (`--not-reached`) the call list alone.
#[derive(Clone, Copy)]
pub enum What {
    Report(Format),
    NotReached(Format),
}

impl From<Format> for What {
    fn from(f: Format) -> What {
        What::Report(f)
    }
}

/// Write a report (deliveries streamed from the journal) to `out`, buffered. A reader that
/// goes away (`announce report | head`) is not an error.
pub fn print(what: impl Into<What>, src: &Source<'_>, config: &Config, out: impl Write) -> Result<(), AppError> {
    let mut out = std::io::BufWriter::new(out);
    let written = match what.into() {
        What::Report(format) => format.write(src, &style(config), &mut out),
        What::NotReached(format) => write_not_reached(format, src, &mut out),
    }
    .and_then(|()| Ok(out.flush()?));
    match written {
        Err(WriteError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(WriteError::Io(e)) => Err(AppError::runtime(format!("cannot write the report: {e}"))),
        Err(WriteError::Journal(e)) => Err(e.into()),
        Err(WriteError::Template(e)) => Err(AppError::invalid(e)),
        Ok(()) => Ok(()),
    }
}

fn style(config: &Config) -> Style<'_> {
    Style {
        tz: config.timezone(),
        locale: config.org.locale,
        templates_dir: config.templates_dir.as_deref(),
    }
}

/// Ask each channel that can tell for the final status of its `sent` deliveries.
fn refresh(config: &Config, journal: &Journal, run_id: &str) -> Result<(), AppError> {
    let rows = journal.deliveries(run_id)?;
    let mut names: Vec<&str> = rows
        .iter()
        .filter(|r| r.status == Status::Sent)
        .map(|r| r.channel.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    let rt = super::runtime()?;
    let mut fallbacks = 0;
    for name in names {
        let Some(entry) = config.channel(name) else {
            eprintln!("note: channel {name} is no longer configured; its statuses were not refreshed");
            continue;
        };
        let ch = channel::build(entry, &config.build_context())?;
        if !ch.can_refresh() {
            eprintln!(
                "note: channel {name} ({}) cannot report final delivery statuses",
                ch.type_name()
            );
            continue;
        }
        let (mut delivered, mut undelivered, mut open) = (0, 0, 0);
        for row in rows.iter().filter(|r| r.channel == name && r.status == Status::Sent) {
            let Some(id) = row.provider_id.as_deref() else { continue };
            match rt.block_on(ch.refresh(id)) {
                Ok(Refreshed::Delivered) => {
                    journal.set_status(row.id, Status::Delivered, None)?;
                    delivered += 1;
                }
                Ok(Refreshed::Undelivered(why)) => {
                    fallbacks += usize::from(journal.set_status(row.id, Status::Undelivered, Some(&why))?);
                    undelivered += 1;
                }
                Ok(Refreshed::Pending) => open += 1,
                Err(e) => eprintln!("warning: {name}: {}: {e}", row.recipient),
            }
        }
        eprintln!("{name}: {delivered} delivered, {undelivered} undelivered, {open} not final yet");
    }
    if fallbacks > 0 {
        eprintln!(
            "{fallbacks} people now wait for the next channel of the reach order: `announce resume {run_id}` sends it"
        );
    }
    Ok(())
}

pub fn runs(config: &Config) -> Result<Exit, AppError> {
    let journal = journal(config)?;
    let tz = config.timezone();
    let mut t = crate::report::table();
    t.set_header([
        "run", "started", "title", "planned", "sent", "failed", "skipped", "pending", "unknown", "state",
    ]);
    for run in journal.runs()? {
        let (r, _) = Report::load_summary(&journal, &run.id)?.unwrap_or_else(|| (Report::from_rows(&run, &[]), 0));
        let state = if run.dry_run {
            "dry run"
        } else if run.finished_at.is_some() {
            "finished"
        } else {
            "interrupted"
        };
        let x = &r.totals;
        t.add_row([
            run.id.clone(),
            config.org.locale.timestamp(&run.started_at, &tz),
            run.title.clone(),
            x.planned.to_string(),
            (x.sent + x.delivered).to_string(),
            x.failed.to_string(),
            x.skipped.to_string(),
            x.pending.to_string(),
            x.unknown.to_string(),
            state.to_string(),
        ]);
    }
    println!("{t}");
    Ok(Exit::Ok)
}
