//! announce: write one announcement, send it through every channel at once — email relays with
//! failover, SMS gateways, social pages, webhooks, a status page — with rate limits, retries, a
//! journal that survives crashes, and a report of who got what.
//!
//! The binary is a thin shell over [`run`]; tests and benchmarks use the modules directly.

pub mod announcement;
pub mod audience;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod fsutil;
pub mod journal;
pub mod media;
pub mod phone;
pub mod plan;
pub mod render;
pub mod report;

pub use error::{AppError, Exit};

/// Parse nothing, log nothing: run a parsed command line and say how it ended.
pub fn run(cli: cli::Cli) -> Exit {
    match commands::run(cli) {
        Ok(exit) => exit,
        Err(e) => {
            match &e {
                AppError::Invalid { .. } => eprintln!("error: {e}"),
                AppError::Runtime(err) => eprintln!("error: {err:#}"),
            }
            e.exit()
        }
    }
}
