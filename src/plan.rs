//! Turning (config, announcement, audience, command line) into a validated plan: the channels
//! to use, one delivery per channel and target, and every reason something is skipped. Nothing
//! here sends; an `Err` means the whole run is refused (exit 2).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::announcement::Announcement;
use crate::audience::{self, Address, Audience, AudienceOptions, RowError, Suppressions};
use crate::channel::{self, AddressKind, Channel, Reach, Rendered};
use crate::config::{ChannelEntry, Config};
use crate::error::AppError;
use crate::journal::{NewDelivery, RunRow, Status, now_rfc3339};
use crate::render::{BaseContext, Templates, recipient_value};

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
}

pub struct AudienceSummary {
    pub path: PathBuf,
    pub rows: usize,
    pub rejected: Vec<RowError>,
    pub duplicates: usize,
    pub not_tagged: usize,
}

pub struct Plan {
    pub run: RunRow,
    pub deliveries: Vec<NewDelivery>,
    pub channels: Vec<PlannedChannel>,
    pub audience: Option<AudienceSummary>,
    pub templates: Arc<Templates>,
    pub base: BaseContext,
}

/// The file name of the state folder's own suppression list (numbers that answered STOP...).
pub const STATE_SUPPRESSIONS: &str = "suppressed.txt";

/// Add an address to the state folder's own suppression list (e.g. a number that replied STOP):
/// every later run skips it.
pub fn add_state_suppression(state_dir: &std::path::Path, address: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    crate::fsutil::create_private_dir(state_dir)?;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(state_dir.join(STATE_SUPPRESSIONS))?;
    writeln!(f, "{address}")
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

pub fn audience_path(config: &Config, ann: &Announcement, sel: &Selection) -> Option<PathBuf> {
    sel.audience
        .clone()
        .or_else(|| ann.meta.audience.as_ref().map(|a| ann.base_dir.join(a)))
        .or_else(|| config.audience.file.clone())
}

pub fn load_suppressions(config: &Config) -> Result<Suppressions, AppError> {
    let mut s = match &config.audience.suppress {
        Some(p) => Suppressions::load(p, config.default_region).map_err(|e| AppError::invalid(e.to_string()))?,
        None => Suppressions::default(),
    };
    let own = config.state_dir.join(STATE_SUPPRESSIONS);
    if own.exists() {
        let extra = std::fs::read_to_string(&own).map_err(|e| AppError::invalid(format!("{}: {e}", own.display())))?;
        for line in extra
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            if line.contains('@') {
                s.insert_email(line)
            } else {
                s.insert_phone(line)
            }
        }
    }
    Ok(s)
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
    let doc = serde_json::json!({
        "title": ann.meta.title, "summary": ann.meta.summary, "link": ann.meta.link, "image": ann.meta.image,
        "body": ann.body_markdown, "channels": names, "audience": audience, "tags": tags,
    });
    format!("sha256:{}", hex::encode(Sha256::digest(doc.to_string().as_bytes())))
}

pub fn build(config: &Config, ann: &Announcement, sel: &Selection, dry_run: bool) -> Result<Plan, AppError> {
    let templates = Arc::new(Templates::load(config.templates_dir.as_deref())?);
    let entries = select_channels(config, ann, sel)?;
    if entries.is_empty() {
        return Err(AppError::invalid(format!(
            "no enabled channel in {}",
            config.file_name()
        )));
    }
    let channels: Vec<(ChannelEntry, Arc<dyn Channel>)> = entries
        .iter()
        .map(|e| Ok(((*e).clone(), channel::build(e, config)?)))
        .collect::<Result<_, AppError>>()?;

    let run_id = uuid::Uuid::now_v7().to_string();
    let base = BaseContext::new(ann, &config.org, &run_id, &config.timezone());
    let tags = if sel.tags.is_empty() {
        ann.meta.tags.clone()
    } else {
        sel.tags.clone()
    };

    let needs_people = channels.iter().any(|(_, c)| matches!(c.reach(), Reach::PerPerson(_)));
    let audience_file = audience_path(config, ann, sel);
    let (audience, suppressions) = if needs_people {
        let path = audience_file.clone().ok_or_else(|| {
            AppError::invalid(format!(
                "no audience: set [audience] file in {}, `audience` in the announcement, or --audience",
                config.file_name()
            ))
        })?;
        let opts = AudienceOptions {
            delimiter: config.audience.delimiter,
            default_region: config.default_region,
        };
        let a = audience::load(&path, &opts).map_err(|e| AppError::invalid(e.to_string()))?;
        (Some(a), load_suppressions(config)?)
    } else {
        (None, Suppressions::default())
    };

    let mut deliveries = Vec::new();
    let mut planned = Vec::new();
    let mut summary = audience.as_ref().map(|a| AudienceSummary {
        path: a.path.clone(),
        rows: a.recipients.len() + a.rejected.len(),
        rejected: a.rejected.clone(),
        duplicates: 0,
        not_tagged: 0,
    });
    for (entry, ch) in channels {
        let start = deliveries.len();
        match ch.reach() {
            Reach::Broadcast(target) => deliveries.push(broadcast(&entry, ch.as_ref(), &base, config, target)),
            Reach::Targets(targets) => {
                for target in targets {
                    deliveries.push(broadcast(&entry, ch.as_ref(), &base, config, target));
                }
            }
            Reach::PerPerson(kind) => {
                let a = audience.as_ref().expect("audience is loaded for per-person channels");
                let (dups, untagged) = plan_people(&entry, ch.as_ref(), kind, a, &tags, &suppressions, &mut deliveries);
                if let Some(s) = summary.as_mut() {
                    s.duplicates = s.duplicates.max(dups);
                    s.not_tagged = untagged;
                }
            }
        }
        let mine = &deliveries[start..];
        let mut counts = BTreeMap::new();
        for d in mine {
            *counts.entry(d.status).or_insert(0) += 1;
        }
        let problems = mine.iter().filter(|d| d.problem).count();
        let (sample, total_weight) = validate_rendering(&entry, ch.as_ref(), &templates, &base, mine)?;
        planned.push(PlannedChannel {
            entry,
            channel: ch,
            counts,
            problems,
            sample,
            total_weight,
        });
    }

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
    Ok(Plan {
        run,
        deliveries,
        channels: planned,
        audience: summary,
        templates,
        base,
    })
}

/// The one delivery of a broadcast channel to `target`, or its skip.
fn broadcast(
    entry: &ChannelEntry,
    ch: &dyn Channel,
    base: &BaseContext,
    config: &Config,
    target: String,
) -> NewDelivery {
    let skip = ch.skip_broadcast(&base.for_target(&entry.name, entry.type_name(), None, &target));
    NewDelivery {
        channel: entry.name.clone(),
        channel_type: entry.type_name().to_string(),
        recipient: target,
        name: config.org.name.clone(),
        data: None,
        status: if skip.is_some() {
            Status::Skipped
        } else {
            Status::Pending
        },
        error: skip,
        problem: false,
    }
}

/// One delivery per distinct address; skipped ones carry their reason. Returns the number of
/// duplicates and of recipients without a matching tag.
fn plan_people(
    entry: &ChannelEntry,
    ch: &dyn Channel,
    kind: AddressKind,
    a: &Audience,
    tags: &[String],
    suppressions: &Suppressions,
    out: &mut Vec<NewDelivery>,
) -> (usize, usize) {
    let new =
        |recipient: String, name: &str, data: Option<String>, status, error: Option<String>, problem| NewDelivery {
            channel: entry.name.clone(),
            channel_type: entry.type_name().to_string(),
            recipient,
            name: name.to_string(),
            data,
            status,
            error,
            problem,
        };
    for bad in &a.rejected {
        out.push(new(
            format!("row {}", bad.line),
            "",
            None,
            Status::Skipped,
            Some(format!("row {}: {}", bad.line, bad.reason)),
            true,
        ));
    }
    let mut seen = HashSet::new();
    let (mut dups, mut untagged) = (0, 0);
    for r in &a.recipients {
        if !tags.is_empty() && !tags.iter().any(|t| r.has_tag(t)) {
            untagged += 1;
            continue;
        }
        let row_key = || format!("row {}", r.line);
        let choice = match kind {
            AddressKind::Email => (&r.email, "email address"),
            AddressKind::Phone => (&r.phone, "phone number"),
            AddressKind::EmailOrPhone => match (&r.email, &r.phone) {
                (Address::Valid(_), _) | (Address::Invalid { .. }, Address::Missing) => (&r.email, "email address"),
                (_, Address::Valid(_)) | (Address::Missing, _) => (&r.phone, "phone number"),
                (Address::Invalid { .. }, Address::Invalid { .. }) => (&r.email, "email address"),
            },
        };
        let (address, what) = choice;
        let address = match address {
            Address::Valid(v) => v.clone(),
            Address::Missing => {
                out.push(new(
                    row_key(),
                    &r.name,
                    None,
                    Status::Skipped,
                    Some(format!("row {}: no {what}", r.line)),
                    false,
                ));
                continue;
            }
            Address::Invalid { raw, reason } => {
                let msg = format!("row {}: invalid {what} {raw:?}: {reason}", r.line);
                out.push(new(row_key(), &r.name, None, Status::Skipped, Some(msg), true));
                continue;
            }
        };
        let key = if address.contains('@') {
            address.to_lowercase()
        } else {
            address.clone()
        };
        if !seen.insert(key) {
            dups += 1;
            continue;
        }
        let skip = if let Some(why) = ch.skip_reason(&address) {
            Some(format!("row {}: {why}", r.line))
        } else if r.opted_out_of(&entry.name, ch.type_name()) {
            Some(format!("row {}: opted out (opt_out column)", r.line))
        } else if (address.contains('@') && suppressions.contains_email(&address))
            || suppressions.contains_phone(&address)
        {
            Some("on the suppression list".to_string())
        } else {
            None
        };
        let data = serde_json::to_string(&recipient_value(r)).ok();
        let status = if skip.is_some() {
            Status::Skipped
        } else {
            Status::Pending
        };
        out.push(new(address, &r.name, data, status, skip, false));
    }
    (dups, untagged)
}

/// Render the first pending target (every target for channels whose limits depend on the
/// recipient) so a template or limit problem stops the run before anything is sent.
fn validate_rendering(
    entry: &ChannelEntry,
    ch: &dyn Channel,
    templates: &Templates,
    base: &BaseContext,
    deliveries: &[NewDelivery],
) -> Result<(Option<Rendered>, Option<u64>), AppError> {
    let every = ch.validate_every_target();
    let mut sample = None;
    let mut total = 0u64;
    for d in deliveries.iter().filter(|d| d.status == Status::Pending) {
        let data = d.data.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let ctx = base.for_target(&entry.name, entry.type_name(), data.as_ref(), &d.recipient);
        let rendered = ch.render(templates, &ctx).map_err(|e| {
            AppError::invalid(format!(
                "channel {} ({}): {e}; nothing was sent",
                entry.name, d.recipient
            ))
        })?;
        total += u64::from(rendered.weight.max(1));
        if sample.is_none() {
            sample = Some(rendered);
        }
        if !every {
            break;
        }
    }
    Ok((sample, every.then_some(total)))
}
