//! `preview`: render each selected channel for one recipient and show lengths against limits.

use std::io::Write;

use crate::announcement::Announcement;
use crate::cli::PreviewArgs;
use crate::config::Config;
use crate::error::{AppError, Exit};
use crate::journal::Status;
use crate::plan::{self, Selection};

pub fn run(config: &Config, args: &PreviewArgs) -> Result<Exit, AppError> {
    let ann = Announcement::load(&args.file)?;
    let sel = Selection {
        channels: args.channels.clone(),
        audience: args.audience.clone(),
        tags: Vec::new(),
    };
    let plan = plan::build(config, &ann, &sel, true)?;
    let mut out = std::io::stdout().lock();
    let io = |e: std::io::Error| AppError::runtime(format!("cannot write: {e}"));
    let mut over = false;
    for c in &plan.channels {
        let mine = plan
            .deliveries
            .iter()
            .filter(|d| d.channel == c.entry.name && d.status == Status::Pending);
        let target = match &args.recipient {
            Some(want) => {
                let phone = normalize(config, want);
                mine.clone().find(|d| {
                    let data: serde_json::Value = d
                        .data
                        .as_deref()
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or_default();
                    d.recipient.eq_ignore_ascii_case(want)
                        || d.recipient == phone
                        || data["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(want))
                        || data["phone"].as_str() == Some(phone.as_str())
                })
            }
            None => mine.clone().next(),
        };
        let Some(target) = target else {
            writeln!(
                out,
                "== {} ({}): no recipient to preview",
                c.entry.name,
                c.channel.type_name()
            )
            .map_err(io)?;
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
        for s in &m.stats {
            let limit = s.limit.as_ref().map(|l| format!(" / {l}")).unwrap_or_default();
            let flag = if s.over { "  <-- over the limit" } else { "" };
            writeln!(out, "  {}: {}{limit}{flag}", s.label, s.value).map_err(io)?;
            over |= s.over;
        }
        if let Some(t) = crate::channel::sms::plan_totals(&plan, c) {
            writeln!(out, "  {t}").map_err(io)?;
        }
        writeln!(out).map_err(io)?;
    }
    if ann.meta.summary.is_none() {
        eprintln!("note: no `summary` in the front matter; short channels use the title and the body.");
    }
    Ok(if over { Exit::Partial } else { Exit::Ok })
}

fn normalize(config: &Config, want: &str) -> String {
    crate::audience::normalize_phone(want, config.default_region).unwrap_or_else(|_| want.to_string())
}
