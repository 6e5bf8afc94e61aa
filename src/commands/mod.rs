//! One module per command. Each turns raw arguments into validated objects and returns the
//! contract's exit status.

mod check;
mod init;
mod preview;
mod report;
mod send;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::{AppError, Exit};

pub fn run(cli: Cli) -> Result<Exit, AppError> {
    let result = match &cli.command {
        Command::Send(a) => send::send(&load_config(&cli)?, a, cli.quiet),
        Command::Resume(a) => send::resume(&load_config(&cli)?, a, cli.quiet),
        // These commands never start a run: whatever stops them leaves nothing to resume.
        Command::Init(a) => init::run(a).map_err(nothing_to_resume),
        Command::Preview(a) => preview::run(&load_config(&cli)?, a).map_err(nothing_to_resume),
        Command::Report(a) => report::report(&load_config(&cli)?, a).map_err(nothing_to_resume),
        Command::Runs => report::runs(&load_config(&cli)?).map_err(nothing_to_resume),
        Command::Check(a) => check::run(&load_config(&cli)?, a).map_err(nothing_to_resume),
    };
    result.map_err(redact_runtime)
}

/// Exit 1 promises a run that `resume` can continue. A runtime error that leaves none (the
/// state folder locked by another process or unwritable, the journal unreadable, a run that
/// was never committed) is exit 2, with the cause.
fn nothing_to_resume(e: AppError) -> AppError {
    match e {
        AppError::Runtime(err) => AppError::invalid(format!("{err:#}")),
        invalid => invalid,
    }
}

/// A runtime error's chain can quote a provider's answer: take every secret out of it.
/// (`Invalid` messages are redacted when displayed.)
fn redact_runtime(e: AppError) -> AppError {
    match e {
        AppError::Runtime(err) => {
            let text = format!("{err:#}");
            match crate::secrets::redact(&text) {
                std::borrow::Cow::Owned(clean) => AppError::Runtime(anyhow::anyhow!(clean)),
                std::borrow::Cow::Borrowed(_) => AppError::Runtime(err),
            }
        }
        other => other,
    }
}

/// `--config`, `ANNOUNCE_CONFIG`, or ./channels.toml; `--state-dir` overrides the config.
fn load_config(cli: &Cli) -> Result<Config, AppError> {
    let path = cli.config.clone().unwrap_or_else(|| PathBuf::from("channels.toml"));
    if cli.config.is_none() && !Path::new(&path).exists() {
        return Err(AppError::invalid(
            "no channels.toml here: pass --config FILE, set ANNOUNCE_CONFIG, or run `announce init` to create a working folder",
        ));
    }
    let mut config = Config::load(&path)?;
    if let Some(dir) = &cli.state_dir {
        config.state_dir = dir.clone();
    }
    Ok(config)
}

fn runtime() -> Result<tokio::runtime::Runtime, AppError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AppError::runtime(format!("cannot start the async runtime: {e}")))
}

/// Ask on the terminal; refuse when there is none (scripts must say --yes).
fn confirm(question: &str, yes: bool) -> Result<bool, AppError> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(AppError::invalid(
            "not on a terminal: refusing to send without confirmation; pass --yes to send from a script",
        ));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| AppError::runtime(format!("cannot read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "j" | "ja"))
}
