//! `preview`: render each selected channel for one recipient and show lengths against limits.

use std::io::Write;

use crate::announcement::Announcement;
use crate::channel::{Image, Reach, Rendered, Stat};
use crate::cli::PreviewArgs;
use crate::config::Config;
use crate::error::{AppError, Exit};
use crate::journal::{NewDelivery, Status};
use crate::plan::{self, Selection};

pub fn run(config: &Config, args: &PreviewArgs) -> Result<Exit, AppError> {
    let ann = Announcement::load(&args.file)?;
    let sel = Selection {
        channels: args.channels.clone(),
        audience: args.audience.clone(),
        tags: Vec::new(),
    };
    let plan = plan::build(config, &ann, &sel, true)?;
    let wanted = args.recipient.as_deref().map(|w| (w, normalize(config, w)));
    let wanted = wanted.as_ref().map(|(w, p)| (*w, p.as_str()));
    // Per channel: its deliveries, and the one to show. `--recipient` picks among the people of
    // per-person channels; a broadcast channel shows its one post either way.
    let mut picks = Vec::new();
    for c in &plan.channels {
        let mine: Vec<&NewDelivery> = plan.deliveries.iter().filter(|d| d.channel == c.entry.name).collect();
        let per_person = matches!(c.channel.reach(), Reach::PerPerson(_));
        let pending = |d: &&&NewDelivery| to_be_sent(d);
        let target = match wanted {
            Some(want) if per_person => mine.iter().filter(pending).find(|d| is_recipient(d, want)),
            _ => mine.iter().find(pending),
        }
        .copied();
        picks.push((c, mine, per_person, target));
    }
    if let Some(want) = wanted
        && picks.iter().any(|p| p.2)
        && !picks.iter().any(|p| p.2 && p.3.is_some())
    {
        let mut msg = format!("--recipient {}: no such recipient to preview", want.0);
        if let Some(a) = &plan.audience {
            msg.push_str(&format!(" in {}", a.path.display()));
        }
        for (c, mine, ..) in &picks {
            for d in mine.iter().filter(|d| !to_be_sent(d) && is_recipient(d, want)) {
                let why = d.error.as_deref().unwrap_or("not to be sent");
                msg.push_str(&format!("\n  {}: skipped: {why}", c.entry.name));
            }
        }
        return Err(AppError::invalid(msg));
    }
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| AppError::runtime(format!("cannot write: {e}"));
    for note in template_notes(config)? {
        writeln!(out, "{note}").map_err(io)?;
    }
    if let Some(note) = plan.audience.as_ref().and_then(|a| plan::decoding_note(&a.decoding)) {
        writeln!(out, "audience: {note}").map_err(io)?;
    }
    if let Some(languages) = plan.audience.as_ref().and_then(|a| a.languages.describe()) {
        writeln!(out, "{languages}").map_err(io)?;
    }
    let mut over = false;
    for (c, mine, per_person, target) in picks {
        let Some(target) = target else {
            writeln!(
                out,
                "== {} ({}): no recipient to preview",
                c.entry.name,
                c.channel.type_name()
            )
            .map_err(io)?;
            for line in why_none(&mine, per_person && wanted.is_some()) {
                writeln!(out, "  {line}").map_err(io)?;
            }
            writeln!(out).map_err(io)?;
            continue;
        };
        let data = target.data.as_deref().and_then(|s| serde_json::from_str(s).ok());
        let ctx = plan
            .base
            .for_target(&c.entry.name, c.channel.type_name(), data.as_ref(), &target.recipient);
        let m = c.channel.render(&plan.templates, &ctx).map_err(AppError::invalid)?;
        writeln!(
            out,
            "== {} ({}) -> {}",
            c.entry.name,
            c.channel.type_name(),
            target.recipient
        )
        .map_err(io)?;
        if let Some(s) = &m.subject {
            writeln!(out, "Subject: {s}").map_err(io)?;
        }
        writeln!(out, "\n{}\n", m.text.trim_end()).map_err(io)?;
        for s in &shown_stats(&m) {
            let limit = s.limit.as_ref().map(|l| format!(" / {l}")).unwrap_or_default();
            let flag = if s.over { "  <-- over the limit" } else { "" };
            writeln!(out, "  {}: {}{limit}{flag}", s.label, s.value).map_err(io)?;
            over |= s.over;
        }
        if let Some(t) = super::send::sms_totals(c) {
            writeln!(out, "  {t}").map_err(io)?;
        }
        if let Some(n) = crate::quiet::plan_note(&c.entry.name, c.entry.settings.common.quiet_hours, &config.timezone())
        {
            writeln!(out, "  {n}").map_err(io)?;
        }
        writeln!(out).map_err(io)?;
    }
    if ann.meta.summary.is_none() {
        eprintln!("note: no `summary` in the front matter; short channels use the title and the body.");
    }
    Ok(if over { Exit::Partial } else { Exit::Ok })
}

/// Whether `d` may still be sent: a `[reach]` fallback on `standby` is sent when the channel
/// before it fails, so staff want to see what it would say.
fn to_be_sent(d: &NewDelivery) -> bool {
    matches!(d.status, Status::Pending | Status::Standby)
}

/// The stats of `m` and then what the post carries (its typed `media`), as people read them
/// in the preview and the plan.
pub(super) fn shown_stats(m: &Rendered) -> Vec<Stat> {
    let mut all = m.stats.clone();
    let media = &m.media;
    match &media.image {
        Some(Image::Url(u)) => all.push(Stat::new("image", u)),
        Some(Image::File(p)) => all.push(Stat::new("image", p.display())),
        None => {}
    }
    all.extend(media.link.iter().map(|l| Stat::new("link", l)));
    all.extend(media.alt.iter().map(|a| Stat::new("alt text", a)));
    all
}

fn normalize(config: &Config, want: &str) -> String {
    crate::audience::address::normalize_phone(want, config.default_region).unwrap_or_else(|_| want.to_string())
}

/// Whether delivery `d` is for `want` (as typed, and as a phone number in E.164).
fn is_recipient(d: &NewDelivery, (want, phone): (&str, &str)) -> bool {
    let data: serde_json::Value = d
        .data
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    d.recipient.eq_ignore_ascii_case(want)
        || d.recipient == phone
        || data["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(want))
        || data["phone"].as_str() == Some(phone)
}

/// Skipped rows shown when a channel has nobody to preview.
const WHY_SHOWN: usize = 5;

/// Why a channel has no delivery to show: the first few skipped ones and their reasons.
fn why_none(mine: &[&NewDelivery], other_recipient: bool) -> Vec<String> {
    if other_recipient {
        return vec!["(the recipient asked for is not among this channel's recipients)".to_string()];
    }
    let skipped: Vec<&&NewDelivery> = mine.iter().filter(|d| d.status == Status::Skipped).collect();
    if skipped.is_empty() {
        return vec!["nothing was planned for it (no row of the audience has an address it uses)".to_string()];
    }
    let mut lines = vec![format!(
        "all {} planned deliveries are skipped; the first {}:",
        skipped.len(),
        skipped.len().min(WHY_SHOWN)
    )];
    for d in skipped.iter().take(WHY_SHOWN) {
        let why = d.error.as_deref().unwrap_or("skipped");
        // Reasons for bad rows start with the row already ("row 3: ...").
        lines.push(if why.starts_with("row ") {
            format!("  {why}")
        } else {
            format!("  {}: {why}", d.recipient)
        });
    }
    lines
}

/// "templates: email.subject.hbs (templates/email.subject.hbs overrides the built-in)", for every
/// file of `templates_dir`.
fn template_notes(config: &Config) -> Result<Vec<String>, AppError> {
    let Some(dir) = config.templates_dir.as_deref().filter(|d| d.is_dir()) else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| AppError::invalid(format!("{}: cannot read templates_dir: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".hbs"))
        .collect();
    names.sort();
    Ok(names
        .into_iter()
        .map(|name| {
            let file = dir.join(&name);
            let builtin = |n: &str| crate::channel::builtin_templates().iter().any(|(b, _)| *b == n);
            let translated = crate::render::lang::split_template_name(&name).filter(|(base, _)| builtin(base));
            let what = if builtin(&name) {
                " overrides the built-in".to_string()
            } else if let Some((base, lang)) = translated {
                format!(" is {base} for people of language {lang}")
            } else {
                "; no built-in has that name".to_string()
            };
            format!("templates: {name} ({}{what})", file.display())
        })
        .collect())
}
