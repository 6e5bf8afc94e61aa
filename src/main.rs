use std::io::Write;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

// glibc malloc serialises the tokio workers on its arena locks under load (seen in perf as lock
// wake-ups inside malloc/realloc); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The only way log lines reach stderr: each event is collected whole, then every registered
/// secret is taken out of it, whatever the level or the module that logged it (ours or a
/// dependency's at RUST_LOG=trace).
struct RedactingStderr;

/// One event's bytes, written out redacted when the formatter is done with it.
struct EventBuffer(Vec<u8>);

impl Write for EventBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = announce::secrets::redact_bytes(&self.0);
        // Nowhere to report a failed write to stderr.
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventBuffer;

    fn make_writer(&'a self) -> EventBuffer {
        EventBuffer(Vec::with_capacity(256))
    }
}

/// Each thread's first allocations would otherwise fault in whole 2 MiB pages, zeroed: a large
/// share of a small `send`'s start-up, and large plans ran no faster with them, in more memory
/// (README, "Performance", round four). The flag is read when a page is faulted in, so what was
/// mapped before `main` is covered too.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes no memory.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> std::process::ExitCode {
    no_transparent_huge_pages();
    let cli = announce::cli::Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    // RUST_LOG wins when set; logs always go to stderr so stdout stays machine-readable.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("announce={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_target(false)
        .init();
    std::process::ExitCode::from(announce::run(cli) as u8)
}
