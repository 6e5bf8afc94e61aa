//! `send` and `resume`: validate, plan, journal, dispatch, report.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::announcement::Announcement;
use crate::channel::ChannelKind;
use crate::channel::{self, Channel};
use crate::cli::{ResumeArgs, SendArgs};
use crate::config::Config;
use crate::dispatch::{self, Dispatch, Lane, QuietStop};
use crate::error::{AppError, Exit};
use crate::journal::{Journal, JournalError, Spare, Status};
use crate::plan::{Plan, PlannedChannel, Planner, Selection};
use crate::quiet::{Policy, Waiting};
use crate::render::{BaseContext, Templates};
use crate::report::{Format, Report, Source, summary_table};

use super::{confirm, runtime};

mod journaling;

use journaling::{Journaling, Slots};

pub fn send(config: &Config, args: &SendArgs, quiet: bool) -> Result<Exit, AppError> {
    let sel = Selection {
        channels: args.channels.clone(),
        audience: args.audience.clone(),
        tags: args.tags.clone(),
    };
    // A run that is refused leaves no journal behind where there was none.
    let state_existed = config.state_dir.exists();
    let journal_existed = Journal::path_in(&config.state_dir).exists();
    let mut lock = None;
    let mut journal = None;
    let mut started = false;
    // The state folder is locked and the journal opened (a new one costs fsyncs) while the
    // announcement is read, the planner built and the plan begun.
    let planned = std::thread::scope(|s| {
        let opening = std::thread::Builder::new()
            .name("journal-open".into())
            .spawn_scoped(s, || {
                let lock = Journal::lock(&config.state_dir)?;
                Ok((lock, Journal::open(&config.state_dir)))
            })
            .map_err(|source| JournalError::Io {
                path: config.state_dir.display().to_string(),
                source,
            });
        // After the journal's thread, which waits on the disk: on two cores a thread started
        // while two others compute waits for a time slice.
        crate::phone::warm_up(config.default_region);
        let slots = Slots {
            lock: &mut lock,
            journal: &mut journal,
        };
        match Announcement::load(&args.file).and_then(|ann| Planner::new(config, &ann, &sel, args.dry_run)) {
            Ok(planner) => {
                planner.prepare_templates();
                let journaling = Journaling::new(opening, planner.run().clone(), slots);
                plan_and_commit(config, args, planner, journaling, &mut started)
            }
            Err(e) => {
                let _ = slots.fill(opening);
                Err(e)
            }
        }
    });
    let result = match planned {
        Ok(Some(plan)) => {
            let journal = journal.as_mut().expect("a committed plan's journal is open");
            send_planned(config, args, plan, journal, quiet)
        }
        Ok(None) => Ok(Exit::Invalid),
        Err(e) => Err(e),
    };
    if !started {
        drop(journal);
        // Only while this process holds the lock: a journal another process is creating is not
        // this one's to remove.
        if lock.is_some() {
            forget_new_state(&config.state_dir, state_existed, journal_existed);
        }
        return result.map_err(super::nothing_to_resume);
    }
    result
}

/// Plan into the journal (one transaction, committed only when the user confirms). `None`: the
/// user said no. `started` becomes true once the run is committed.
fn plan_and_commit(
    config: &Config,
    args: &SendArgs,
    planner: Planner,
    mut journaling: Journaling<'_, '_>,
    started: &mut bool,
) -> Result<Option<Committed>, AppError> {
    // Deliveries are numbered from 0 here and from the journal's first free id in it.
    let plan = match planner.plan(config, &mut journaling, 0) {
        Ok(plan) => plan,
        Err(e) => {
            journaling.settle();
            return Err(e);
        }
    };
    let writer = journaling.into_writer()?;
    if !args.again
        && !args.dry_run
        && let Some(earlier) = writer.earlier_run_with_digest(&plan.run.digest)?
    {
        return Err(AppError::invalid(format!(
            "this announcement was already sent in run {earlier} (same title, body, channels and audience); \
             see `announce report {earlier}`, or pass --again to send it again"
        )));
    }
    print_plan(&plan, &config.timezone());
    let to_send: usize = plan
        .channels
        .iter()
        .map(|c| c.counts.get(&Status::Pending).copied().unwrap_or(0))
        .sum();
    if !args.dry_run && to_send > 0 && !confirm(&format!("Send {to_send} messages now?"), args.yes)? {
        eprintln!("Nothing was sent.");
        return Ok(None);
    }
    // The run and every planned delivery are durable before the first message goes out.
    // Meanwhile (the commit waits on the disk) the other languages' templates compile, and
    // the runtime and the journal's second connection that sending needs are made.
    // One thread for all three: on two cores more would take turns with the commit's own.
    let (committed, sending) = std::thread::scope(|s| {
        let sending = (!args.dry_run).then(|| {
            s.spawn(|| {
                let rt = runtime();
                if let Ok(rt) = &rt {
                    // A thread for the blocking pool now, not when the first file is written.
                    drop(rt.spawn_blocking(|| ()));
                }
                // A connection that fails to open here fails again, and is reported, when the
                // writer opens its own.
                let made = (rt, Spare::open(&Journal::path_in(&config.state_dir)).ok());
                plan.prepare_languages();
                made
            })
        });
        (writer.commit(), sending.map(joined))
    });
    committed?;
    *started = true;
    Ok(Some(Committed { plan, sending }))
}

/// What a scoped thread returned; its panic goes on here.
fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// A plan made durable, with what sending it needs made while the commit waited.
struct Committed {
    plan: Plan,
    sending: Option<(Result<tokio::runtime::Runtime, AppError>, Option<Spare>)>,
}

/// A committed plan: a dry run's summary, or its deliveries sent.
fn send_planned(
    config: &Config,
    args: &SendArgs,
    committed: Committed,
    journal: &mut Journal,
    quiet: bool,
) -> Result<Exit, AppError> {
    let Committed { plan, sending } = committed;
    let run_id = plan.run.id.clone();
    let Some((runtime, spare)) = sending else {
        journal.finish_run(&run_id)?;
        eprintln!("Dry run {run_id}: nothing was sent.");
        if args.json {
            return finish(config, journal, &run_id, true, Vec::new());
        }
        // The plan counted what it journaled: the journal need not be read to count it again.
        return Ok(conclude(&planned_report(&plan), 0));
    };
    if let Some(spare) = spare {
        journal.keep_spare(spare);
    }
    let policy = policy(config, args.wait, args.json, quiet);
    let lanes = plan
        .channels
        .iter()
        .map(|c| lane(c.channel.clone(), &c.entry.settings.common, &policy))
        .collect();
    let ready = Ready {
        run_id: &run_id,
        thread: plan.run.thread.as_deref(),
        base: &plan.base,
        templates: plan.templates.clone(),
        lanes,
        runtime: runtime?,
    };
    deliver(config, journal, ready, args.json)
}

/// Remove the journal (and the state folder) a refused run created: nothing may look as if a
/// run had been journaled.
fn forget_new_state(state_dir: &Path, state_existed: bool, journal_existed: bool) {
    if journal_existed {
        return;
    }
    for p in crate::journal::files_of(&Journal::path_in(state_dir)) {
        let _ = std::fs::remove_file(p);
    }
    if !state_existed {
        let _ = std::fs::remove_file(state_dir.join("lock"));
        let _ = std::fs::remove_dir(state_dir);
    }
}

pub fn resume(config: &Config, args: &ResumeArgs, quiet: bool) -> Result<Exit, AppError> {
    // Until the lock is held and the run found there is nothing this process could resume.
    let _lock = Journal::lock(&config.state_dir).map_err(|e| super::nothing_to_resume(e.into()))?;
    let mut journal = Journal::open_existing(&config.state_dir)
        .map_err(|e| super::nothing_to_resume(e.into()))?
        .ok_or_else(|| {
            AppError::invalid(format!(
                "no journal in {}: nothing to resume",
                config.state_dir.display()
            ))
        })?;
    let run = journal
        .run(&args.run_id)
        .map_err(|e| super::nothing_to_resume(e.into()))?
        .ok_or_else(|| AppError::invalid(format!("no run {:?} in {}", args.run_id, journal.path().display())))?;
    if run.dry_run {
        return Err(AppError::invalid(format!(
            "run {} was a dry run; send the announcement instead",
            run.id
        )));
    }
    // We hold the lock, so anything still `sending` belongs to a process that died.
    let unknown = journal.mark_in_flight_unknown(&run.id)?;
    if unknown > 0 {
        eprintln!("{unknown} deliveries were in flight when the previous process stopped: now `unknown`.");
    }
    if args.retry_failed {
        journal.requeue(&run.id, Status::Failed, None)?;
        reach_note(&journal, &run.id)?;
    }
    if args.resend_unknown {
        journal.requeue(&run.id, Status::Unknown, None)?;
    }
    let ann = Announcement::parse(&run.origin, Path::new(&run.base_dir), run.announcement.clone())?
        .with_translations_of(Path::new(&run.origin))?;
    // Build every channel the run used: a channel whose re-send cannot duplicate also takes
    // back its `unknown` deliveries.
    let mut channels: Vec<(String, Arc<dyn Channel>, &crate::settings::Common)> = Vec::new();
    let mut used: Vec<String> = journal
        .deliveries(&run.id)?
        .into_iter()
        .map(|d| d.planned.channel)
        .collect();
    used.sort_unstable();
    used.dedup();
    let ctx = config.build_context();
    for name in used {
        let entry = config.channel(&name).ok_or_else(|| {
            AppError::invalid(format!(
                "run {} used channel {name}, which is no longer in {}",
                run.id,
                config.file_name()
            ))
        })?;
        let ch: Arc<dyn Channel> = channel::build(entry, &ctx)?;
        channel::outbox::sweep_run_folder(entry, &ctx, &run.id);
        if ch.resend_is_safe() {
            journal.requeue(&run.id, Status::Unknown, Some(&name))?;
        }
        channels.push((name, ch, &entry.settings.common));
    }
    let rows = journal.deliveries(&run.id)?;
    let pending = rows.iter().filter(|d| d.status == Status::Pending).count();
    if pending == 0 {
        eprintln!("Run {}: nothing left to send.", run.id);
        journal.finish_run(&run.id)?;
        return finish(config, &journal, &run.id, args.json, Vec::new());
    }
    if !confirm(
        &format!("Resume run {}: send {pending} pending messages?", run.id),
        args.yes,
    )? {
        eprintln!("Nothing was sent.");
        return Ok(Exit::Invalid);
    }
    let templates = Arc::new(Templates::load_for(
        channel::builtin_templates(),
        config.templates_dir.as_deref(),
        config.org.locale,
    )?);
    let policy = policy(config, args.wait, args.json, quiet);
    let lanes = channels
        .into_iter()
        .map(|(_, ch, common)| lane(ch, common, &policy))
        .collect();
    let base = BaseContext::new(&ann, &config.org, &run.id, &config.timezone());
    let ready = Ready {
        run_id: &run.id,
        thread: run.thread.as_deref(),
        base: &base,
        templates,
        lanes,
        runtime: runtime()?,
    };
    deliver(config, &mut journal, ready, args.json)
}

/// What the run does about quiet hours: `--wait`, and a countdown only where someone watches
/// stderr (a terminal, not `--json` or `-q`).
fn policy(config: &Config, wait: bool, json: bool, quiet: bool) -> Policy {
    Policy {
        tz: config.timezone(),
        wait,
        countdown: std::io::stderr().is_terminal() && !json && !quiet,
    }
}

fn lane(channel: Arc<dyn Channel>, common: &crate::settings::Common, policy: &Policy) -> Lane {
    Lane::new(channel, common).with_quiet_hours(common.quiet_hours, policy)
}

/// A journaled run about to be sent: planned by `send`, or rebuilt from the journal by `resume`.
struct Ready<'a> {
    run_id: &'a str,
    /// The announcement's `thread`, whose earlier messages new emails reply to.
    thread: Option<&'a str>,
    base: &'a BaseContext,
    templates: Arc<Templates>,
    lanes: Vec<Lane>,
    runtime: tokio::runtime::Runtime,
}

/// Send the run's pending deliveries, mark the run finished unless interrupted, and report.
fn deliver(config: &Config, journal: &mut Journal, ready: Ready<'_>, json: bool) -> Result<Exit, AppError> {
    let run_id = ready.run_id;
    let thread_roots = match ready.thread {
        Some(t) => journal.thread_roots(t, run_id, &["email", "outbox"])?,
        None => HashMap::new(),
    };
    let (interrupted, quiet) = execute(&config.state_dir, journal, ready, thread_roots)?;
    if !interrupted {
        journal.finish_run(run_id)?;
    }
    finish(config, journal, run_id, json, quiet)
}

/// Dispatch with Ctrl-C handling. Returns whether the run was interrupted, and the channels
/// that stopped for their quiet hours.
fn execute(
    state_dir: &std::path::Path,
    journal: &mut Journal,
    ready: Ready<'_>,
    thread_roots: HashMap<String, String>,
) -> Result<(bool, Vec<QuietStop>), AppError> {
    let Ready {
        run_id,
        base,
        templates,
        lanes,
        runtime: rt,
        ..
    } = ready;
    let cancel = CancellationToken::new();
    let result = rt.block_on(async {
        let c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!(
                    "\nStopping: finishing messages in flight (Ctrl-C again to quit at once; they become `unknown`)..."
                );
                c.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
        let d = Dispatch {
            run_id,
            base,
            templates,
            thread_roots,
            cancel: cancel.clone(),
            progress: std::io::stderr().is_terminal(),
            state_dir,
        };
        dispatch::run(d, journal, lanes).await
    });
    let quiet = result.map_err(|e| {
        AppError::Runtime(
            anyhow::Error::new(e).context(format!("run {run_id} stopped; `announce resume {run_id}` continues it")),
        )
    })?;
    if cancel.is_cancelled() {
        eprintln!("Interrupted. `announce resume {run_id}` sends the rest.");
    }
    Ok((cancel.is_cancelled(), quiet))
}

/// `--retry-failed` leaves a failed delivery alone when the person's next `[reach]` channel
/// already took over: retrying it could reach them twice.
fn reach_note(journal: &Journal, run_id: &str) -> Result<(), AppError> {
    let taken = journal.failed_with_fallback(run_id)?;
    if taken > 0 {
        eprintln!(
            "{taken} failed deliveries are not retried: the next channel of their person's reach order took over."
        );
    }
    Ok(())
}

fn print_plan(plan: &Plan, tz: &jiff::tz::TimeZone) {
    eprintln!("Plan for \"{}\":", plan.run.title);
    for line in plan.audience.iter().flat_map(|a| a.describe()) {
        eprintln!("  {line}");
    }
    for c in &plan.channels {
        let count = |s: Status| c.counts.get(&s).copied().unwrap_or(0);
        eprint!(
            "  {} ({}): {} to send, {} skipped",
            c.entry.name,
            c.channel.type_name(),
            count(Status::Pending),
            count(Status::Skipped)
        );
        if c.problems > 0 {
            eprint!(" ({} for bad input)", c.problems);
        }
        if count(Status::Standby) > 0 {
            eprint!(", {} as fallback if an earlier channel fails", count(Status::Standby));
        }
        eprintln!();
        if let Some(sample) = &c.sample {
            for s in &super::preview::shown_stats(sample) {
                let limit = s.limit.as_ref().map(|l| format!(" (limit {l})")).unwrap_or_default();
                eprintln!(
                    "      {}: {}{limit}{}",
                    s.label,
                    s.value,
                    if s.over { "  OVER THE LIMIT" } else { "" }
                );
            }
        }
        if let Some(totals) = sms_totals(c) {
            eprintln!("      {totals}");
        }
        if let Some(note) = crate::quiet::plan_note(&c.entry.name, c.entry.settings.common.quiet_hours, tz) {
            eprintln!("      {note}");
        }
    }
}

/// The "SMS in all: ... segments for ... messages" line with the estimated cost, from
/// what planning counted (for the plan here and for `preview`).
pub(super) fn sms_totals(c: &PlannedChannel) -> Option<String> {
    let ChannelKind::Sms(cfg) = &c.entry.settings.kind else {
        return None;
    };
    let t = c.texts.filter(|t| t.messages > 0)?;
    let mut line = format!(
        "SMS in all: {} segments for {} messages ({} GSM-7, {} UCS-2)",
        t.segments,
        t.messages,
        t.messages - t.ucs2,
        t.ucs2
    );
    line.push_str(&cfg.estimated_cost(t.segments));
    Some(line)
}

/// Print the summary (or the JSON report) and choose the exit status. `quiet`: the channels
/// that stopped for their quiet hours.
fn finish(
    config: &Config,
    journal: &Journal,
    run_id: &str,
    json: bool,
    quiet: Vec<QuietStop>,
) -> Result<Exit, AppError> {
    let vanished = || AppError::runtime("run vanished from the journal");
    // The summary is counted by SQL; the JSON report streams the deliveries from the journal.
    let (mut report, bad_skips) = Report::load_summary(journal, run_id)?.ok_or_else(vanished)?;
    report.quiet_hours = quiet
        .into_iter()
        .map(|(name, hours, end)| {
            let pending = report
                .channels
                .iter()
                .find(|c| c.name == name)
                .map_or(0, |c| c.counts.pending);
            Waiting::new(&name, hours, &end, pending)
        })
        .collect();
    if json {
        let src = Source {
            journal,
            report: &report,
            bad_skips,
        };
        super::report::print(Format::Json, &src, config, std::io::stdout().lock())?;
    }
    Ok(conclude(&report, bad_skips))
}

/// A dry run's report, from what its plan counted (in the order and with the channels the
/// journal's counts would give).
fn planned_report(plan: &Plan) -> Report {
    let channels = plan.channels.iter().filter_map(|c| {
        let counts: Vec<(Status, usize)> = c
            .counts
            .iter()
            .filter(|&(&s, &n)| s != Status::Standby && n > 0)
            .map(|(&s, &n)| (s, n))
            .collect();
        (!counts.is_empty()).then(|| (c.entry.name.clone(), c.entry.type_name().to_string(), counts))
    });
    // Planned deliveries reach nobody yet.
    let mut people = crate::people::People::default();
    people.add_n(
        crate::people::State::NotReached,
        plan.audience.as_ref().map_or(0, |a| a.people),
    );
    Report::from_counts(&plan.run, channels, people)
}

/// The end of `send` and `resume`: the summary on stderr, what to do next, the exit status.
fn conclude(report: &Report, bad_skips: usize) -> Exit {
    let run_id = &report.run_id;
    if let Some(line) = report.people.line() {
        eprintln!("{line}");
    }
    eprintln!("{}", summary_table(report));
    eprintln!("Run {run_id}. Details: announce report {run_id}");
    if report.people.not_reached > 0 {
        eprintln!(
            "not reached: {}; the call list: announce report {run_id} --not-reached",
            report.people.not_reached
        );
    }
    // Last: what to do next (and that those not reached are not to be phoned at night either).
    for w in &report.quiet_hours {
        eprintln!("{}", w.line(run_id));
    }
    let t = &report.totals;
    if report.dry_run {
        Exit::Ok
    } else if t.pending > 0 {
        Exit::Runtime
    } else if t.failed > 0 || t.unknown > 0 || t.undelivered > 0 || bad_skips > 0 {
        Exit::Partial
    } else {
        Exit::Ok
    }
}
