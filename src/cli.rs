//! Command-line definitions (raw arguments; `commands` turns them into validated objects).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::report::Format;

#[derive(Debug, Parser)]
#[command(
    name = "announce",
    version,
    about = "Write one announcement, send it through every channel at once."
)]
pub struct Cli {
    /// Configuration file [default: ./channels.toml]
    #[arg(long, global = true, env = "ANNOUNCE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// State folder (journal, suppressions) [default: state_dir from the config]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// More log output (-v info, -vv debug)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate, plan, confirm and send an announcement
    Send(SendArgs),
    /// Render every selected channel for one recipient and show lengths against limits
    Preview(PreviewArgs),
    /// Continue an interrupted run
    Resume(ResumeArgs),
    /// Print a run's delivery report
    Report(ReportArgs),
    /// List runs
    Runs,
    /// Verify channels without sending (config, templates, secrets, live probe)
    Check(CheckArgs),
    /// Create a working folder that `send` can use at once (through the outbox)
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Announcement file (Markdown with +++ TOML front matter), or - for stdin
    pub file: PathBuf,
    /// Only these channels (names, or types such as "email")
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Audience CSV instead of the announcement's or the config's
    #[arg(long, value_name = "FILE")]
    pub audience: Option<PathBuf>,
    /// Only recipients with any of these tags (replaces the announcement's tags)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Render and plan everything, journal it as a dry run, send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required when not on a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the final report as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Send even if the same announcement was already sent
    #[arg(long)]
    pub again: bool,
    /// Wait for channels' quiet hours to end instead of leaving their deliveries for `resume`
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    pub file: PathBuf,
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
    /// Render for this recipient (email or phone) instead of the first one
    #[arg(long, value_name = "EMAIL|PHONE")]
    pub recipient: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub audience: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    pub run_id: String,
    /// Also retry deliveries that failed
    #[arg(long)]
    pub retry_failed: bool,
    /// Also re-send deliveries whose outcome is unknown (may duplicate them)
    #[arg(long)]
    pub resend_unknown: bool,
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[arg(long)]
    pub json: bool,
    /// Wait for channels' quiet hours to end instead of leaving their deliveries pending
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run id, or "latest"
    #[arg(default_value = "latest")]
    pub run_id: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to this file (mode 0600) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Ask providers that can tell for the final status of accepted messages
    #[arg(long)]
    pub refresh: bool,
    /// Only the people no delivery reached, to phone them (table, csv or json)
    #[arg(long)]
    pub not_reached: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long = "channel", value_name = "NAME")]
    pub channels: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}
