//! Turning (config, announcement, audience, command line) into a validated plan: the channels
//! to use, one delivery per channel and target, and every reason something is skipped. Nothing
//! here sends; an `Err` means the whole run is refused (exit 2).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::announcement::Announcement;
use crate::audience::{self, Address, AudienceOptions, Decoding, LineAccount, Recipient, Row, RowError, Suppressions};
use crate::channel::{self, AddressKind, Channel, ChannelEntry, Reach, Rendered};
use crate::config::Config;
use crate::error::AppError;
use crate::journal::{DeliveryRef, NewDelivery, RunRow, RunWriter, Status, now_rfc3339};
use crate::render::{BaseContext, Context, Templates, recipient_value};

pub mod reach;

/// What the command line narrows down.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub channels: Vec<String>,
    pub audience: Option<PathBuf>,
    pub tags: Vec<String>,
}

pub struct PlannedChannel {
    pub entry: ChannelEntry,
    pub channel: Arc<dyn Channel>,
    pub counts: BTreeMap<Status, usize>,
    /// Skips caused by bad input (invalid address, unreadable row).
    pub problems: usize,
    /// The first target's rendering, for the plan and `preview`.
    pub sample: Option<Rendered>,
    /// Sum of message weights (SMS segments) when every target was rendered.
    pub total_weight: Option<u64>,
    /// SMS channels (every target rendered): messages, segments and encodings in all.
    pub texts: Option<TextTotals>,
}

/// The SMS texts of a channel, counted while planning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextTotals {
    pub messages: u64,
    pub segments: u64,
    /// Messages that need UCS-2.
    pub ucs2: u64,
}

pub struct AudienceSummary {
    pub path: PathBuf,
    pub rows: usize,
    /// The first unreadable rows (as many as the plan shows; the journal has every one).
    pub rejected: Vec<RowError>,
    /// All unreadable rows.
    pub rejected_count: usize,
    pub duplicates: usize,
    pub not_tagged: usize,
    /// How the file was decoded (for the "read as Windows-1252" note).
    pub decoding: Decoding,
    /// Where its lines went.
    pub account: LineAccount,
    /// With a `[reach]` order: who each of its channels takes first.
    pub reach: Option<reach::Chain>,
    /// How many people get each language.
    pub languages: crate::render::lang::Count,
    /// The rows with a delivery that is not on standby: the people the journal counts.
    pub people: usize,
}

/// Unreadable rows listed one by one in the plan; the rest are counted (the report has all).
const REJECTED_SHOWN: usize = 20;

impl AudienceSummary {
    /// The plan's lines about the audience: counts, how it was decoded, unreadable rows.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "audience {}: {} rows, {} unreadable, {} duplicate addresses, {} without a selected tag",
            self.path.display(),
            self.rows,
            self.rejected_count,
            self.duplicates,
            self.not_tagged
        )];
        out.extend(decoding_note(&self.decoding).map(|n| format!("  {n}")));
        out.extend(self.languages.describe().map(|l| format!("  {l}")));
        out.extend(self.reach.as_ref().map(|c| format!("  {}", c.describe())));
        for r in &self.rejected {
            out.push(format!("  line {}: {}", r.line, r.reason));
        }
        if self.rejected_count > self.rejected.len() {
            out.push(format!(
                "  ... and {} more unreadable rows (`announce report` lists them all)",
                self.rejected_count - self.rejected.len()
            ));
        }
        out
    }
}

/// "read as Windows-1252", when the file (or some lines of it) was not UTF-8; "read as UTF-16".
pub fn decoding_note(d: &Decoding) -> Option<String> {
    if d.utf16 {
        return Some("read as UTF-16".to_string());
    }
    let first = d.first_windows_1252_line?;
    Some(if d.windows_1252_configured {
        "read as Windows-1252 ([audience] encoding)".to_string()
    } else if d.utf8_lines == 0 {
        "read as Windows-1252 (not UTF-8)".to_string()
    } else {
        format!(
            "{} line(s) that are not valid UTF-8 read as Windows-1252, the first is line {first}",
            d.windows_1252_lines
        )
    })
}

pub struct Plan {
    pub run: RunRow,
    /// In id order; empty when the plan went into the journal ([`Planner::plan`]).
    pub deliveries: Vec<NewDelivery>,
    pub channels: Vec<PlannedChannel>,
    pub audience: Option<AudienceSummary>,
    pub templates: Arc<Templates>,
    pub base: BaseContext,
}

impl Plan {
    /// Compile the templates of every language the audience reads that
    /// [`Planner::prepare_templates`] did not: `send` does it while the plan is committed, so
    /// that the first message to such a person does not compile them (and hold up the others).
    pub fn prepare_languages(&self) {
        let Some(audience) = &self.audience else {
            return;
        };
        for c in &self.channels {
            for name in template_names(&c.entry) {
                for lang in audience.languages.langs() {
                    self.templates.prepare_in(name, lang);
                }
            }
        }
    }
}

/// The templates a channel renders with: its type's built-ins and its own `template`.
fn template_names(entry: &ChannelEntry) -> impl Iterator<Item = &str> {
    let own = entry.settings.common.template.as_deref();
    entry.settings.kind.templates().iter().map(|(n, _)| *n).chain(own)
}

/// Which configured channels this announcement goes to.
pub fn select_channels<'c>(
    config: &'c Config,
    ann: &Announcement,
    sel: &Selection,
) -> Result<Vec<&'c ChannelEntry>, AppError> {
    let (names, explicit): (Vec<String>, bool) = if !sel.channels.is_empty() {
        (sel.channels.clone(), true)
    } else if let Some(list) = &ann.meta.channels {
        (list.clone(), false)
    } else {
        return Ok(config.channels.iter().filter(|c| c.settings.common.enabled).collect());
    };
    let mut out: Vec<&ChannelEntry> = Vec::new();
    for name in &names {
        let by_name = config.channel(name).into_iter().collect::<Vec<_>>();
        // A type name selects every enabled channel of that type.
        let matched = if by_name.is_empty() {
            config
                .channels
                .iter()
                .filter(|c| c.type_name() == name && c.settings.common.enabled)
                .collect()
        } else {
            by_name
        };
        if matched.is_empty()
            && explicit
            && let Some(off) = config.channels.iter().find(|c| c.type_name() == name)
        {
            return Err(disabled_on_command_line(config, name, off));
        }
        if matched.is_empty() {
            let known = config
                .channels
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let msg = format!(
                "no channel named {name:?} in {} (configured: {known})",
                config.file_name()
            );
            return Err(if explicit {
                AppError::invalid(format!("--channel {name}: {msg}"))
            } else {
                AppError::invalid_at(Some(ann.locate("channels")), msg)
            });
        }
        for c in matched {
            if explicit && !c.settings.common.enabled {
                return Err(disabled_on_command_line(config, name, c));
            }
            if !explicit && !c.settings.common.enabled {
                tracing::warn!(
                    "channel {} is listed in the announcement but disabled in the config",
                    c.name
                );
                continue;
            }
            if !out.iter().any(|o| o.name == c.name) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// `--channel NAME` of a channel with `enabled = false`: refused, pointing at the line that
/// disables it, rather than silently connecting to a channel its owner switched off.
fn disabled_on_command_line(config: &Config, asked: &str, c: &ChannelEntry) -> AppError {
    let at = config.locate(&c.location, "enabled");
    AppError::invalid(format!(
        "--channel {asked}: channel {} is disabled in {}:{} (`enabled = false`); enable it there to use it",
        c.name, at.file, at.line
    ))
}

pub fn audience_path(config: &Config, ann: &Announcement, sel: &Selection) -> Option<PathBuf> {
    sel.audience
        .clone()
        .or_else(|| ann.meta.audience.as_ref().map(|a| ann.base_dir.join(a)))
        .or_else(|| config.audience.file.clone())
}

pub fn load_suppressions(config: &Config) -> Result<Suppressions, AppError> {
    let file = config.audience.suppress.as_deref();
    audience::suppression::load_all(file, &config.state_dir, config.default_region).map_err(AppError::invalid)
}

/// Content digest for idempotent sends: title, body, channels and audience.
pub fn digest(ann: &Announcement, channels: &[&ChannelEntry], audience: Option<&PathBuf>, tags: &[String]) -> String {
    let mut names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let audience = audience.map(|p| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string()
    });
    let mut doc = serde_json::json!({
        "title": ann.meta.title, "summary": ann.meta.summary, "link": ann.meta.link, "image": ann.meta.image,
        "body": ann.body_markdown, "channels": names, "audience": audience, "tags": tags,
    });
    // Only when there are any: runs without translations keep the digest they always had.
    if !ann.translations.is_empty() {
        let translations: Vec<_> = ann.translations.iter().map(|(l, t)| (l.as_str(), &t.source)).collect();
        doc["translations"] = serde_json::json!(translations);
    }
    format!("sha256:{}", hex::encode(Sha256::digest(doc.to_string().as_bytes())))
}

/// Plan in memory: the deliveries come back in [`Plan::deliveries`] (for `preview`, which only
/// looks; `send` streams them into the journal with [`Planner`]).
pub fn build(config: &Config, ann: &Announcement, sel: &Selection, dry_run: bool) -> Result<Plan, AppError> {
    let planner = Planner::new(config, ann, sel, dry_run)?;
    let mut memory = Memory::default();
    let mut plan = planner.plan(config, &mut memory, 1)?;
    plan.deliveries = memory.deliveries.into_values().collect();
    Ok(plan)
}

/// Where the planner puts deliveries: the journal (a [`RunWriter`]) or memory. Ids are given
/// by the planner; reading them back in id order lists the deliveries channel by channel.
pub trait PlanSink {
    fn add(&mut self, id: i64, d: &DeliveryRef<'_>) -> Result<(), AppError>;
    /// The recipient of a delivery added before.
    fn recipient(&self, id: i64) -> Result<Option<String>, AppError>;
}

impl PlanSink for RunWriter<'_> {
    fn add(&mut self, id: i64, d: &DeliveryRef<'_>) -> Result<(), AppError> {
        self.insert(id, d)?;
        Ok(())
    }

    fn recipient(&self, id: i64) -> Result<Option<String>, AppError> {
        Ok(RunWriter::recipient(self, id)?)
    }
}

/// Deliveries kept in memory, by id.
#[derive(Default)]
pub struct Memory {
    pub deliveries: BTreeMap<i64, NewDelivery>,
}

impl PlanSink for Memory {
    fn add(&mut self, id: i64, d: &DeliveryRef<'_>) -> Result<(), AppError> {
        self.deliveries.insert(id, d.to_owned());
        Ok(())
    }

    fn recipient(&self, id: i64) -> Result<Option<String>, AppError> {
        Ok(self.deliveries.get(&id).map(|d| d.recipient.clone()))
    }
}

/// Everything that is decided before the audience is read: templates, channels, the run.
pub struct Planner {
    templates: Arc<Templates>,
    channels: Vec<(ChannelEntry, Arc<dyn Channel>)>,
    run: RunRow,
    base: BaseContext,
    tags: Vec<String>,
    audience_file: Option<PathBuf>,
    /// The `[reach]` order: indices into `channels`.
    reach: Option<Vec<usize>>,
}

impl Planner {
    /// Templates, channel selection and construction (config errors), and the run's identity.
    pub fn new(config: &Config, ann: &Announcement, sel: &Selection, dry_run: bool) -> Result<Planner, AppError> {
        crate::phone::warm_up(config.default_region);
        let templates = Arc::new(Templates::load_for(
            channel::builtin_templates(),
            config.templates_dir.as_deref(),
            config.org.locale,
        )?);
        let entries = select_channels(config, ann, sel)?;
        if entries.is_empty() {
            return Err(AppError::invalid(format!(
                "no enabled channel in {}",
                config.file_name()
            )));
        }
        let channels: Vec<(ChannelEntry, Arc<dyn Channel>)> = entries
            .iter()
            .map(|e| Ok(((*e).clone(), channel::build(e, &config.build_context())?)))
            .collect::<Result<_, AppError>>()?;
        let reach = reach::resolve(config, ann, &channels)?;

        let run_id = uuid::Uuid::now_v7().to_string();
        let base = BaseContext::new(ann, &config.org, &run_id, &config.timezone());
        let tags = if sel.tags.is_empty() {
            ann.meta.tags.clone()
        } else {
            sel.tags.clone()
        };
        let audience_file = audience_path(config, ann, sel);
        let digest = digest(ann, &entries, audience_file.as_ref(), &tags);
        let run = RunRow {
            id: run_id,
            digest,
            dry_run,
            title: ann.meta.title.clone(),
            thread: ann.meta.thread.clone(),
            severity: ann.meta.severity.as_str().to_string(),
            announcement: ann.source.clone(),
            origin: ann.origin.clone(),
            base_dir: ann.base_dir.display().to_string(),
            started_at: now_rfc3339(),
            finished_at: None,
        };
        Ok(Planner {
            templates,
            channels,
            run,
            base,
            tags,
            audience_file,
            reach,
        })
    }

    /// Compile the templates the chosen channels render with (as resolved for the
    /// organisation's language) ahead of planning: `send` does it while the journal is being
    /// opened, so that the plan's first render does not wait for it.
    pub fn prepare_templates(&self) {
        for (entry, _) in &self.channels {
            for name in template_names(entry) {
                self.templates.prepare(name);
            }
        }
    }

    /// The run this plan is for (to be written before its deliveries).
    pub fn run(&self) -> &RunRow {
        &self.run
    }

    /// Read the audience once, row by row, and hand every delivery to `sink` with ids from
    /// `first_id` up. Every channel's deliveries get ids in a block of their own, so that in id
    /// order they come channel by channel, each channel's unreadable rows first, as the
    /// channels are configured. An `Err` (unreadable audience, a template or a limit a target
    /// breaks) means the plan is refused; what went into `sink` must then be thrown away.
    pub fn plan(self, config: &Config, sink: &mut dyn PlanSink, first_id: i64) -> Result<Plan, AppError> {
        let needs_people = self
            .channels
            .iter()
            .any(|(_, c)| matches!(c.reach(), Reach::PerPerson(_)));
        let mut lanes: Vec<LanePlan> = self
            .channels
            .into_iter()
            .map(|(entry, channel)| LanePlan::new(entry, channel))
            .collect();
        let (reader, suppressions) = if needs_people {
            (
                Some(open_audience(config, self.audience_file)?),
                load_suppressions(config)?,
            )
        } else {
            (None, Suppressions::default())
        };
        assign_id_blocks(&mut lanes, reader.as_ref(), first_id);
        plan_broadcasts(&mut lanes, &config.org.name, sink, &self.base, &self.templates)?;
        let audience = match reader {
            Some(reader) => Some(plan_audience(
                &mut lanes,
                reader,
                &self.tags,
                self.reach.as_deref(),
                &suppressions,
                sink,
                &self.base,
                &self.templates,
            )?),
            None => None,
        };
        Ok(Plan {
            run: self.run,
            deliveries: Vec::new(),
            channels: lanes.into_iter().map(LanePlan::planned).collect(),
            audience,
            templates: self.templates,
            base: self.base,
        })
    }
}

/// The audience file, opened for reading row by row.
fn open_audience(config: &Config, file: Option<PathBuf>) -> Result<audience::Reader<'_>, AppError> {
    let path = file.ok_or_else(|| {
        AppError::invalid(format!(
            "no audience: set [audience] file in {}, `audience` in the announcement, or --audience",
            config.file_name()
        ))
    })?;
    let opts = AudienceOptions {
        delimiter: config.audience.delimiter,
        default_region: config.default_region,
        encoding: config.audience.encoding,
    };
    audience::Reader::open(&path, &opts).map_err(|e| AppError::invalid(e.to_string()))
}

/// Ids: one block per channel, each holding its unreadable rows, then its targets.
fn assign_id_blocks(lanes: &mut [LanePlan], reader: Option<&audience::Reader<'_>>, first_id: i64) {
    // Rows can be no more than the file has bytes.
    // (A pipe has no length: then blocks as large as `Seen` can count.)
    let max_rows = match reader {
        Some(r) => match std::fs::metadata(r.path()) {
            Ok(m) if m.is_file() && m.len() > 0 => m.len() as i64 + 1,
            _ => i64::from(u32::MAX),
        },
        None => 0,
    };
    let max_targets = lanes
        .iter()
        .map(|l| match l.channel.reach() {
            Reach::Targets(t) => t.len() as i64,
            _ => 1,
        })
        .max()
        .unwrap_or(1);
    let half = max_rows.max(max_targets) + 1;
    for (k, lane) in lanes.iter_mut().enumerate() {
        lane.st.rejected_next = first_id + 2 * half * k as i64;
        lane.st.targets_start = lane.st.rejected_next + half;
        lane.st.targets_next = lane.st.targets_start;
        lane.st.block_half = half;
    }
}

/// Broadcast channels: their one delivery (per target), named after the organisation.
fn plan_broadcasts(
    lanes: &mut [LanePlan],
    org_name: &str,
    sink: &mut dyn PlanSink,
    base: &BaseContext,
    templates: &Templates,
) -> Result<(), AppError> {
    for lane in lanes {
        let targets = match lane.channel.reach() {
            Reach::Broadcast(target) => vec![target],
            Reach::Targets(targets) => targets,
            Reach::PerPerson(_) => continue,
        };
        for target in targets {
            let ctx = base.for_target(&lane.entry.name, lane.entry.type_name(), None, &target);
            let skip = lane.channel.skip_broadcast(&ctx);
            let d = Bare {
                recipient: &target,
                name: org_name,
                error: skip.as_deref(),
                problem: false,
                rejected: false,
                row: None,
            };
            lane.emit_bare(&d, sink, base, templates)?;
        }
    }
    Ok(())
}

/// Read the audience and plan every per-person channel's deliveries, row by row.
#[allow(clippy::too_many_arguments)]
fn plan_audience(
    lanes: &mut [LanePlan],
    reader: audience::Reader<'_>,
    tags: &[String],
    order: Option<&[usize]>,
    suppressions: &Suppressions,
    sink: &mut dyn PlanSink,
    base: &BaseContext,
    templates: &Templates,
) -> Result<AudienceSummary, AppError> {
    let mut s = AudienceSummary {
        path: reader.path().to_path_buf(),
        rows: 0,
        rejected: Vec::new(),
        rejected_count: 0,
        duplicates: 0,
        not_tagged: 0,
        decoding: Decoding::default(),
        account: LineAccount::default(),
        reach: None,
        languages: Default::default(),
        people: 0,
    };
    let people: Vec<(usize, AddressKind)> = lanes
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l.channel.reach() {
            Reach::PerPerson(kind) => Some((i, kind)),
            _ => None,
        })
        .collect();
    // The chain's channels as positions in `people`, in the order's order.
    s.reach = order.map(|order| {
        reach::Chain::new(
            order
                .iter()
                .filter_map(|&i| Some((people.iter().position(|&(l, _)| l == i)?, lanes[i].entry.name.clone())))
                .collect(),
        )
    });
    let checks: Vec<Check> = people
        .iter()
        .map(|&(i, kind)| Check {
            kind,
            entry: lanes[i].entry.clone(),
            channel: lanes[i].channel.clone(),
            every: lanes[i].st.every,
            is_sms: lanes[i].st.is_sms,
        })
        .collect();
    // Two threads: one reads and validates the rows (CSV, email syntax, phone numbers
    // against libphonenumber's metadata, the channels' own skip checks, `recipient.*`),
    // the other decides, renders and journals. Batches keep the hand-over cheap; the
    // bounded queue keeps memory flat.
    // Used batches go back to the reading thread to be freed there: memory freed by
    // another thread than the one that allocated it makes both fight over the
    // allocator's lock (a sixth of the time, measured).
    // Which thread renders a row's messages balances the two: the reading thread renders a
    // batch when the planning one is behind (batches wait for it), else leaves it to it.
    let waiting = &AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<(), AppError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(8);
        let (used_tx, used_rx) = std::sync::mpsc::channel::<Vec<Prepared>>();
        let checks = &checks;
        let mut reader = reader;
        let reading = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BATCH);
            let mut render = false;
            let mut context = None;
            for row in &mut reader {
                let p = prepare(
                    row,
                    tags,
                    checks,
                    suppressions,
                    base,
                    templates,
                    render.then_some(&mut context),
                );
                batch.push(p);
                if batch.len() == BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    render = waiting.fetch_add(1, Ordering::Relaxed) >= 1;
                    if tx.send(full).is_err() {
                        return (reader.decoding(), reader.account());
                    }
                    while let Ok(used) = used_rx.try_recv() {
                        drop(used);
                    }
                }
            }
            waiting.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(batch);
            (reader.decoding(), reader.account())
        });
        for batch in rx {
            waiting.fetch_sub(1, Ordering::Relaxed);
            for p in &batch {
                plan_row(lanes, &people, p, &mut s, sink, base, templates)?;
            }
            let _ = used_tx.send(batch);
        }
        (s.decoding, s.account) = reading
            .join()
            .map_err(|_| AppError::runtime("reading the audience failed unexpectedly"))?;
        Ok(())
    })?;
    s.duplicates = lanes.iter().map(|l| l.st.duplicates).max().unwrap_or(0);
    Ok(s)
}

/// One row the reading thread prepared: its deliveries on every per-person channel, or what
/// the summary counts about it.
fn plan_row(
    lanes: &mut [LanePlan],
    people: &[(usize, AddressKind)],
    p: &Prepared,
    s: &mut AudienceSummary,
    sink: &mut dyn PlanSink,
    base: &BaseContext,
    templates: &Templates,
) -> Result<(), AppError> {
    s.rows += 1;
    let planned = |lanes: &[LanePlan]| lanes.iter().map(|l| l.st.planned()).sum::<usize>();
    let before = planned(lanes);
    match p {
        Prepared::Rejected(bad) => {
            plan_rejected(lanes, people, bad, sink, base, templates)?;
            // Kept for the plan only up to what it shows: memory stays flat.
            s.rejected_count += 1;
            if s.rejected.len() < REJECTED_SHOWN {
                s.rejected.push(bad.clone());
            }
        }
        Prepared::Untagged => s.not_tagged += 1,
        Prepared::Failed(e) => return Err(AppError::invalid(format!("{e}; nothing was sent"))),
        Prepared::Person { r, data, lanes: preps } => {
            s.languages.add(base.served(base.lang_of(Some(&data.0))));
            // The chain's channels first, in its order; then the others as before.
            let mut link = reach::Link::default();
            if let Some(chain) = &mut s.reach {
                for (step, &(k, _)) in chain.lanes.iter().enumerate() {
                    link.step = u32::try_from(step).unwrap_or(u32::MAX);
                    let (i, kind) = people[k];
                    plan_person(
                        &mut lanes[i],
                        kind,
                        r,
                        &preps[k],
                        data,
                        Some(&mut link),
                        sink,
                        base,
                        templates,
                    )?;
                }
                chain.count(&link);
            }
            let chained = |k: usize| s.reach.as_ref().is_some_and(|c| c.lanes.iter().any(|&(p, _)| p == k));
            for (k, (&(i, kind), prep)) in people.iter().zip(preps).enumerate() {
                if !chained(k) {
                    plan_person(&mut lanes[i], kind, r, prep, data, None, sink, base, templates)?;
                }
            }
        }
    }
    if planned(lanes) > before {
        s.people += 1;
    }
    Ok(())
}

/// An unreadable row: a skipped delivery (bad input) on every per-person channel.
fn plan_rejected(
    lanes: &mut [LanePlan],
    people: &[(usize, AddressKind)],
    bad: &RowError,
    sink: &mut dyn PlanSink,
    base: &BaseContext,
    templates: &Templates,
) -> Result<(), AppError> {
    let recipient = format!("row {}", bad.line);
    let error = format!("row {}: {}", bad.line, bad.reason);
    let d = Bare {
        recipient: &recipient,
        name: "",
        error: Some(&error),
        problem: true,
        rejected: true,
        row: Some(bad.line),
    };
    for &(i, _) in people {
        lanes[i].emit_bare(&d, sink, base, templates)?;
    }
    Ok(())
}

/// One channel while it is being planned.
struct LanePlan {
    entry: ChannelEntry,
    channel: Arc<dyn Channel>,
    st: LaneState,
}

/// What planning a channel counts and keeps.
struct LaneState {
    every: bool,
    is_sms: bool,
    counts: BTreeMap<Status, usize>,
    problems: usize,
    duplicates: usize,
    sample: Option<Rendered>,
    total_weight: u64,
    texts: Option<TextTotals>,
    seen: Seen,
    rejected_next: i64,
    targets_start: i64,
    targets_next: i64,
    /// Ids per half block (unreadable rows, then targets).
    block_half: i64,
    /// The context of the last message this lane rendered, reused for the next.
    context: Option<Context>,
}

/// A delivery without recipient data: a broadcast target or an unreadable row. With an
/// `error` it is skipped.
struct Bare<'a> {
    recipient: &'a str,
    name: &'a str,
    error: Option<&'a str>,
    problem: bool,
    /// An unreadable row: its id comes from the block's first half.
    rejected: bool,
    /// The audience line of an unreadable row; `None` for a broadcast.
    row: Option<u64>,
}

impl LanePlan {
    fn emit_bare(
        &mut self,
        b: &Bare<'_>,
        sink: &mut dyn PlanSink,
        base: &BaseContext,
        templates: &Templates,
    ) -> Result<(), AppError> {
        let d = DeliveryRef {
            channel: &self.entry.name,
            channel_type: self.entry.type_name(),
            recipient: b.recipient,
            name: b.name,
            data: None,
            status: if b.error.is_some() {
                Status::Skipped
            } else {
                Status::Pending
            },
            error: b.error,
            problem: b.problem,
            row: b.row,
            fallback: false,
            step: None,
        };
        let id = if b.rejected {
            self.st.next_rejected_id()
        } else {
            self.st.next_target_id()
        };
        let id = id.ok_or_else(audience_grew)?;
        self.st.emit(
            &self.entry,
            self.channel.as_ref(),
            sink,
            id,
            &d,
            None,
            None,
            base,
            templates,
        )
    }

    /// What the plan reports about the channel once every delivery is planned.
    fn planned(self) -> PlannedChannel {
        PlannedChannel {
            entry: self.entry,
            channel: self.channel,
            counts: self.st.counts,
            problems: self.st.problems,
            sample: self.st.sample,
            total_weight: self.st.every.then_some(self.st.total_weight),
            texts: self.st.texts,
        }
    }

    fn new(entry: ChannelEntry, channel: Arc<dyn Channel>) -> LanePlan {
        let st = LaneState {
            every: channel.validate_every_target(),
            is_sms: channel.type_name() == "sms",
            counts: BTreeMap::new(),
            problems: 0,
            duplicates: 0,
            sample: None,
            total_weight: 0,
            texts: None,
            seen: Seen::default(),
            rejected_next: 0,
            targets_start: 0,
            targets_next: 0,
            block_half: 0,
            context: None,
        };
        LanePlan { entry, channel, st }
    }
}

impl LaneState {
    /// Deliveries planned so far that are not on standby.
    fn planned(&self) -> usize {
        self.counts
            .iter()
            .filter(|(s, _)| **s != Status::Standby)
            .map(|(_, n)| n)
            .sum()
    }

    /// The next id of the channel's block for targets; `None` when the block is full (the
    /// audience has more rows than it had bytes when planning started).
    fn next_target_id(&mut self) -> Option<i64> {
        let id = self.targets_next;
        // Blocks are `targets_start - rejected_start` long: the targets' part ends where the
        // next channel's block starts.
        if id >= self.targets_start + self.half() {
            return None;
        }
        self.targets_next += 1;
        Some(id)
    }

    fn next_rejected_id(&mut self) -> Option<i64> {
        let id = self.rejected_next;
        if id >= self.targets_start {
            return None;
        }
        self.rejected_next += 1;
        Some(id)
    }

    fn half(&self) -> i64 {
        self.block_half
    }
}

/// More rows than the audience file had bytes when planning started.
fn audience_grew() -> AppError {
    AppError::invalid("the audience file grew while it was being read; nothing was sent")
}

impl LaneState {
    /// Count, render when this target must be checked (or take what the reading thread
    /// rendered), and write one delivery.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        entry: &ChannelEntry,
        channel: &dyn Channel,
        sink: &mut dyn PlanSink,
        id: i64,
        d: &DeliveryRef<'_>,
        data: Option<&Value>,
        pre: Option<&PreRendered>,
        base: &BaseContext,
        templates: &Templates,
    ) -> Result<(), AppError> {
        *self.counts.entry(d.status).or_insert(0) += 1;
        if d.problem {
            self.problems += 1;
        }
        // Render the first pending target (every one for channels whose limits depend on the
        // recipient), so a template or limit problem stops the run before anything is sent.
        // A fallback on standby may be sent later: its limits are checked like the rest.
        let sendable = matches!(d.status, Status::Pending | Status::Standby);
        if sendable && (self.every || self.sample.is_none()) {
            let refused = |e: &str| {
                AppError::invalid(format!(
                    "channel {} ({}): {e}; nothing was sent",
                    entry.name, d.recipient
                ))
            };
            let owned;
            let (rendered, sms) = match pre {
                Some(p) => (p.result.as_ref().map_err(|e| refused(e))?, p.sms),
                None => {
                    let ctx = base.target_in(&mut self.context, &entry.name, entry.type_name(), data, d.recipient);
                    owned = channel.render(templates, ctx).map_err(|e| refused(&e))?;
                    let sms = (self.is_sms && self.every).then(|| sms_shape(&owned));
                    (&owned, sms)
                }
            };
            self.total_weight += u64::from(rendered.weight.max(1));
            if let Some((segments, ucs2)) = sms {
                let t = self.texts.get_or_insert_with(TextTotals::default);
                t.messages += 1;
                t.segments += u64::from(segments);
                t.ucs2 += u64::from(ucs2);
            }
            if self.sample.is_none() {
                self.sample = Some(rendered.clone());
            }
        }
        sink.add(id, d)
    }
}

/// Segments, and whether it needs UCS-2.
fn sms_shape(m: &Rendered) -> (u32, bool) {
    let info = crate::render::sms::analyze(&m.text);
    (info.segments, info.encoding == crate::render::sms::Encoding::Ucs2)
}

/// A target the reading thread rendered (channels that check every target).
struct PreRendered {
    result: Result<Rendered, String>,
    /// For SMS channels: segments and UCS-2.
    sms: Option<(u32, bool)>,
}

/// What a reading thread needs to know about a per-person channel.
struct Check {
    kind: AddressKind,
    entry: ChannelEntry,
    channel: Arc<dyn Channel>,
    every: bool,
    is_sms: bool,
}

/// What the reading thread found out about one recipient for one channel.
struct LanePrep {
    /// Why the address is skipped although valid (the channel's own reason, the `opt_out`
    /// column, the suppression list).
    skip: Option<String>,
    pre: Option<PreRendered>,
}

/// Rows handed from the reading thread to the planning one at a time.
const BATCH: usize = 256;

/// A row, read and checked as far as that can be done without the plan's state (only
/// duplicates are left to find).
enum Prepared {
    Rejected(RowError),
    /// Without any of the selected tags.
    Untagged,
    /// The audience cannot be read on.
    Failed(audience::AudienceError),
    Person {
        r: Box<Recipient>,
        /// `recipient.*`, as a value for rendering and as the journal's JSON.
        data: (Value, String),
        /// Per per-person channel.
        lanes: Vec<LanePrep>,
    },
}

fn prepare(
    row: Row,
    tags: &[String],
    checks: &[Check],
    suppressions: &Suppressions,
    base: &BaseContext,
    templates: &Templates,
    // Render the messages here, reusing this context; `None`: the planning thread will.
    mut render: Option<&mut Option<Context>>,
) -> Prepared {
    let r = match row {
        Row::Rejected(bad) => return Prepared::Rejected(bad),
        Row::Failed(e) => return Prepared::Failed(e),
        Row::Recipient(r) => r,
    };
    if !tags.is_empty() && !tags.iter().any(|t| r.has_tag(t)) {
        return Prepared::Untagged;
    }
    let value = recipient_value(&r);
    let lanes = checks
        .iter()
        .map(|c| {
            let Address::Valid(address) = address_for(c.kind, &r).0 else {
                return LanePrep { skip: None, pre: None };
            };
            let skip = if let Some(why) = c.channel.skip_reason(address) {
                Some(format!("row {}: {why}", r.line))
            } else if r.opted_out_of(&c.entry.name, c.channel.type_name()) {
                Some(format!("row {}: opted out (opt_out column)", r.line))
            } else if (address.contains('@') && suppressions.contains_email(address))
                || suppressions.contains_phone(address)
            {
                Some("on the suppression list".to_string())
            } else {
                None
            };
            let pre = render
                .as_deref_mut()
                .filter(|_| c.every && skip.is_none())
                .map(|context| {
                    let ctx = base.target_in(context, &c.entry.name, c.entry.type_name(), Some(&value), address);
                    let result = c.channel.render(templates, ctx);
                    let sms = match &result {
                        Ok(m) if c.is_sms => Some(sms_shape(m)),
                        _ => None,
                    };
                    PreRendered { result, sms }
                });
            LanePrep { skip, pre }
        })
        .collect();
    let json = serde_json::to_string(&value).unwrap_or_default();
    Prepared::Person {
        r: Box::new(r),
        data: (value, json),
        lanes,
    }
}

/// The address a channel of this kind uses, and what it is called in messages.
fn address_for(kind: AddressKind, r: &Recipient) -> (&Address, &'static str) {
    match kind {
        AddressKind::Email => (&r.email, "email address"),
        AddressKind::Phone => (&r.phone, "phone number"),
        AddressKind::EmailOrPhone => match (&r.email, &r.phone) {
            (Address::Valid(_), _) | (Address::Invalid { .. }, Address::Missing) => (&r.email, "email address"),
            (_, Address::Valid(_)) | (Address::Missing, _) => (&r.phone, "phone number"),
            (Address::Invalid { .. }, Address::Invalid { .. }) => (&r.email, "email address"),
        },
    }
}

/// One recipient for one per-person channel: the delivery, its skip, or nothing (a duplicate).
#[allow(clippy::too_many_arguments)]
fn plan_person(
    lane: &mut LanePlan,
    kind: AddressKind,
    r: &Recipient,
    prep: &LanePrep,
    data: &(Value, String),
    link: Option<&mut reach::Link>,
    sink: &mut dyn PlanSink,
    base: &BaseContext,
    templates: &Templates,
) -> Result<(), AppError> {
    let LanePlan { entry, channel, st } = lane;
    let (address, what) = address_for(kind, r);
    let address = match address {
        Address::Valid(v) => v.as_str(),
        Address::Missing | Address::Invalid { .. } => {
            let (error, problem) = match address {
                Address::Invalid { raw, reason } => (format!("row {}: invalid {what} {raw:?}: {reason}", r.line), true),
                _ => (format!("row {}: no {what}", r.line), false),
            };
            let recipient = format!("row {}", r.line);
            let d = DeliveryRef {
                channel: &entry.name,
                channel_type: entry.type_name(),
                recipient: &recipient,
                name: &r.name,
                data: None,
                status: Status::Skipped,
                error: Some(&error),
                problem,
                row: Some(r.line),
                fallback: false,
                step: None,
            };
            let id = st.next_target_id().ok_or_else(audience_grew)?;
            return st.emit(entry, channel.as_ref(), sink, id, &d, None, None, base, templates);
        }
    };
    let id = st.targets_next;
    let start = st.targets_start;
    if id >= start + st.half() {
        return Err(audience_grew());
    }
    let offset = u32::try_from(id - start).map_err(|_| AppError::invalid("the audience is too large"))?;
    let is_new = st
        .seen
        .insert(address, offset, |o| sink.recipient(start + i64::from(o)))?;
    if !is_new {
        st.duplicates += 1;
        return Ok(());
    }
    st.targets_next += 1;
    let skip = &prep.skip;
    let (value, json) = data;
    let (status, fallback, step) = match (skip, link) {
        (Some(_), _) => (Status::Skipped, false, None),
        (None, None) => (Status::Pending, false, None),
        (None, Some(link)) => link.take(),
    };
    let d = DeliveryRef {
        channel: &entry.name,
        channel_type: entry.type_name(),
        recipient: address,
        name: &r.name,
        data: Some(json.as_str()),
        status,
        error: skip.as_deref(),
        problem: false,
        row: Some(r.line),
        fallback,
        step,
    };
    st.emit(
        entry,
        channel.as_ref(),
        sink,
        id,
        &d,
        Some(value),
        prep.pre.as_ref(),
        base,
        templates,
    )
}

/// What the dedupe compares: emails case-insensitively, phone numbers as they are (E.164).
fn dedupe_key(address: &str) -> std::borrow::Cow<'_, str> {
    if address.contains('@') && address.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
        std::borrow::Cow::Owned(address.to_lowercase())
    } else {
        std::borrow::Cow::Borrowed(address)
    }
}

/// The addresses a channel has planned, so that each gets one delivery: a `hashbrown` table of
/// 8-byte entries (a 32-bit hash tag and the delivery's offset in the channel's id block), not
/// the addresses themselves — a million addresses take 16 MB, not 70. A tag match is confirmed
/// against the delivery already written, so the answer is exact; growing needs only the tags.
#[derive(Default)]
struct Seen {
    table: hashbrown::HashTable<u64>,
}

impl Seen {
    /// Record `address` (its delivery at `offset`); `false` when an equal one was recorded.
    fn insert(
        &mut self,
        address: &str,
        offset: u32,
        mut stored: impl FnMut(u32) -> Result<Option<String>, AppError>,
    ) -> Result<bool, AppError> {
        let key = dedupe_key(address);
        let tag = {
            use std::hash::{Hash, Hasher};
            let mut h = std::hash::DefaultHasher::new();
            key.hash(&mut h);
            (h.finish() >> 32) as u32
        };
        let mut failed = None;
        let same = |&entry: &u64| {
            (entry >> 32) as u32 == tag
                && match stored(entry as u32) {
                    Ok(r) => r.is_some_and(|r| dedupe_key(&r) == key),
                    Err(e) => {
                        failed = Some(e);
                        false
                    }
                }
        };
        let entry = self.table.entry(spread(tag), same, |&e| spread((e >> 32) as u32));
        if let Some(e) = failed {
            return Err(e);
        }
        match entry {
            hashbrown::hash_table::Entry::Occupied(_) => Ok(false),
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert((u64::from(tag) << 32) | u64::from(offset));
                Ok(true)
            }
        }
    }
}

/// The table's 64-bit hash from a 32-bit tag: hashbrown takes its control bits from the top
/// of the hash, so the tag is multiplied up into them (odd factor: no two tags collide).
fn spread(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_says_how_the_audience_was_decoded() {
        let note = |d: Decoding| decoding_note(&d);
        assert_eq!(note(Decoding::default()), None);
        let latin = Decoding {
            windows_1252_lines: 3,
            first_windows_1252_line: Some(2),
            ..Decoding::default()
        };
        assert_eq!(note(latin).as_deref(), Some("read as Windows-1252 (not UTF-8)"));
        assert_eq!(
            note(Decoding { utf8_lines: 5, ..latin }).as_deref(),
            Some("3 line(s) that are not valid UTF-8 read as Windows-1252, the first is line 2")
        );
        assert_eq!(
            note(Decoding {
                windows_1252_configured: true,
                ..latin
            })
            .as_deref(),
            Some("read as Windows-1252 ([audience] encoding)")
        );
        assert_eq!(
            note(Decoding {
                utf16: true,
                ..Decoding::default()
            })
            .as_deref(),
            Some("read as UTF-16")
        );
    }

    /// `Seen` answers exactly like a set of dedupe keys, through growth, case variants of
    /// emails, and tag matches that must be confirmed against what was stored.
    #[test]
    fn seen_is_an_exact_set_of_addresses() {
        let mut seen = Seen::default();
        let mut stored: Vec<String> = Vec::new();
        let mut reference = std::collections::HashSet::new();
        let mut next: u64 = 7;
        for i in 0..20_000u32 {
            next = next
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let n = (next >> 33) % 6_000;
            let address = match i % 3 {
                0 => format!("Kunde.{n}@Example.DE"),
                1 => format!("kunde.{n}@example.de"),
                _ => format!("+49151{n:08}"),
            };
            let offset = u32::try_from(stored.len()).unwrap();
            let new = seen
                .insert(&address, offset, |o| Ok(stored.get(o as usize).cloned()))
                .unwrap();
            assert_eq!(new, reference.insert(dedupe_key(&address).into_owned()), "{address}");
            if new {
                stored.push(address);
            }
        }
        assert_eq!(seen.table.len(), reference.len());
        // A matching tag whose stored address differs is not a duplicate.
        let mut seen = Seen::default();
        assert!(seen.insert("a@x.de", 0, |_| Ok(None)).unwrap());
        assert!(seen.insert("a@x.de", 1, |_| Ok(Some("b@x.de".into()))).unwrap());
        assert!(!seen.insert("A@X.DE", 2, |_| Ok(Some("a@x.de".into()))).unwrap());
    }
}
