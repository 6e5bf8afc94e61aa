//! `check`: config, templates, secrets and a live probe per channel, without sending.

use crate::channel::{self, Probe};
use crate::cli::CheckArgs;
use crate::config::Config;
use crate::error::{AppError, Exit};
use crate::render::Templates;

pub fn run(config: &Config, args: &CheckArgs) -> Result<Exit, AppError> {
    Templates::load_for(
        channel::builtin_templates(),
        config.templates_dir.as_deref(),
        config.org.locale,
    )?;
    let entries: Vec<_> = if args.channels.is_empty() {
        config.channels.iter().filter(|c| c.settings.common.enabled).collect()
    } else {
        args.channels
            .iter()
            .map(|n| {
                config
                    .channel(n)
                    .ok_or_else(|| AppError::invalid(format!("--channel {n}: no such channel")))
            })
            .collect::<Result<_, _>>()?
    };
    let rt = super::runtime()?;
    let mut results: Vec<(String, String, Probe)> = Vec::new();
    for e in entries {
        match channel::build(e, &config.build_context()) {
            Err(err) => results.push((
                e.name.clone(),
                e.type_name().into(),
                Probe {
                    subject: "config".into(),
                    ok: false,
                    detail: err.to_string(),
                },
            )),
            Ok(ch) => {
                for p in rt.block_on(ch.check()) {
                    results.push((e.name.clone(), e.type_name().into(), p));
                }
            }
        }
    }
    let mut t = crate::report::table();
    t.set_header(["channel", "type", "probe", "state", "detail"]);
    for (name, kind, p) in &results {
        t.add_row([
            name.as_str(),
            kind,
            &p.subject,
            if p.ok { "ok" } else { "FAILED" },
            &crate::secrets::redact(&p.detail),
        ]);
    }
    println!("{t}");
    Ok(if results.iter().all(|(_, _, p)| p.ok) {
        Exit::Ok
    } else {
        Exit::Runtime
    })
}
