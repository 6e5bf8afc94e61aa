//! announce: write one announcement, send it through every channel at once — email relays with
//! failover, SMS gateways, social pages, webhooks, a status page — with rate limits, retries, a
//! journal that survives crashes, and a report of who got what.
//!
//! The binary is a thin shell over [`run`]; tests and benchmarks use the modules directly.

// Printing never panics. std's `println!`/`eprintln!` panic when the other end of the pipe is
// gone (`announce send ... | head -1`): the run would die half-way with exit 101. These
// shadow them in every module of the crate (textual scope wins over the prelude), so output to
// a closed pipe is dropped and the run finishes with the exit status it would have had; the
// report stays in the journal.
macro_rules! println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
#[allow(unused_macros)]
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub mod announcement;
pub mod audience;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod escape;
pub mod fsutil;
pub mod journal;
pub mod locale;
pub mod media;
pub mod people;
pub mod phone;
pub mod plan;
pub mod quiet;
pub mod render;
pub mod report;
pub mod secrets;
pub mod settings;

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
