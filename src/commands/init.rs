//! `announce init DIR`: a working folder that sends at once through the outbox.

use std::path::Path;

use crate::cli::InitArgs;
use crate::error::{AppError, Exit};

const FILES: &[(&str, &str)] = &[
    ("customers.csv", include_str!("../../examples/customers.csv")),
    ("optouts.txt", include_str!("../../examples/optouts.txt")),
    ("notices/example.md", include_str!("../../examples/notices/example.md")),
    (".gitignore", ".announce/\noutbox/\n"),
];

pub fn run(args: &InitArgs) -> Result<Exit, AppError> {
    let dir = &args.dir;
    // The templates written below are the ones in use: say so in the config, so that editing
    // templates/email.subject.hbs changes the subject.
    let config = crate::config::EXAMPLE_CONFIG.replacen(
        "# templates_dir = \"templates\"  ",
        "templates_dir = \"templates\"    ",
        1,
    );
    let templates = crate::channel::builtin_templates()
        .iter()
        .map(|(n, s)| (format!("templates/{n}"), *s));
    let all: Vec<(String, &str)> = std::iter::once(("channels.toml".to_string(), config.as_str()))
        .chain(FILES.iter().map(|(n, s)| (n.to_string(), *s)))
        .chain(templates)
        .collect();
    let existing: Vec<&str> = all
        .iter()
        .filter(|(n, _)| dir.join(n).exists())
        .map(|(n, _)| n.as_str())
        .collect();
    if !existing.is_empty() {
        return Err(AppError::invalid(format!(
            "{}: would overwrite {}; choose an empty folder",
            dir.display(),
            existing.join(", ")
        )));
    }
    for (name, text) in &all {
        write(&dir.join(name), text)?;
    }
    eprintln!(
        "Created {d}. Try:\n  cd {d}\n  announce preview notices/example.md\n  announce send notices/example.md\n\
         Messages go to {d}/outbox until you enable a real channel in {d}/channels.toml.",
        d = dir.display()
    );
    Ok(Exit::Ok)
}

fn write(path: &Path, text: &str) -> Result<(), AppError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| AppError::runtime(format!("{}: {e}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(|e| AppError::runtime(format!("{}: {e}", path.display())))
}
