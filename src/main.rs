use clap::Parser;
use tracing_subscriber::EnvFilter;

// glibc malloc serialises the tokio workers on its arena locks under load (seen in perf as lock
// wake-ups inside malloc/realloc); mimalloc keeps per-thread heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
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
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    std::process::ExitCode::from(announce::run(cli) as u8)
}
