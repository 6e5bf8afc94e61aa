//! A working folder for driving the `announce` binary, in the style of just's `Test` builder:
//! `Workspace::example().run(&["send", "notices/example.md", "--yes"]).code(3)`.
#![allow(dead_code)]

pub mod channels;
pub mod graph_fake;
pub mod recorder;
pub mod scenario;
pub mod sms_fakes;
pub mod smtp;

pub use recorder::Recorder;
pub use scenario::{Scenario, assert_outcome, deliveries, delivery_to, error_of};
use std::path::{Path, PathBuf};

use std::ffi::OsStr;
use std::process::{Command, Output};

/// No extra environment, for `run_env`/`run_async`.
pub const NO_ENV: &[(&str, &str)] = &[];

/// An audience CSV of `n` people with distinct addresses.
pub fn people(n: usize) -> String {
    let mut csv = String::from("name,email,phone,tags\n");
    for i in 0..n {
        csv.push_str(&format!("Person {i},person{i}@example.de,,\n"));
    }
    csv
}

pub struct Workspace {
    dir: tempfile::TempDir,
}

pub struct Run {
    pub output: Output,
    pub args: Vec<String>,
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

impl Workspace {
    pub fn empty() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A copy of the repository's examples/ folder (the README's first command runs there).
    pub fn example() -> Workspace {
        let w = Workspace::empty();
        w.write(
            "channels.toml",
            &std::fs::read_to_string(repo("channels.example.toml")).unwrap(),
        );
        for f in ["customers.csv", "optouts.txt", "notices/example.md"] {
            w.write(f, &std::fs::read_to_string(repo(&format!("examples/{f}"))).unwrap());
        }
        w
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, contents: &str) -> &Workspace {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// Append to channels.toml.
    pub fn config_append(&self, text: &str) -> &Workspace {
        let mut c = std::fs::read_to_string(self.path("channels.toml")).unwrap_or_default();
        c.push_str(text);
        self.write("channels.toml", &c)
    }

    /// Replace a line-exact substring of channels.toml.
    pub fn config_replace(&self, from: &str, to: &str) -> &Workspace {
        let c = self.read("channels.toml");
        assert!(c.contains(from), "channels.toml has no {from:?}");
        self.write("channels.toml", &c.replacen(from, to, 1))
    }

    /// An audience of `n` people with distinct addresses.
    pub fn audience(&self, rel: &str, n: usize) -> &Workspace {
        self.write(rel, &people(n))
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_announce"));
        c.current_dir(self.root())
            .env_remove("ANNOUNCE_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, NO_ENV)
    }

    pub fn run_env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&self, args: &[&str], env: &[(K, V)]) -> Run {
        let output = self.command_with(args, env).output().expect("run announce");
        Run {
            output,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `run_env` from async tests: the binary blocks, so it runs on a blocking thread and the
    /// in-process fakes on the test's runtime keep serving.
    pub async fn run_async<K: AsRef<OsStr>, V: AsRef<OsStr>>(&self, args: &[&str], env: &[(K, V)]) -> Run {
        let mut c = self.command_with(args, env);
        let output = tokio::task::spawn_blocking(move || c.output().expect("run announce"))
            .await
            .unwrap();
        Run {
            output,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn command_with<K: AsRef<OsStr>, V: AsRef<OsStr>>(&self, args: &[&str], env: &[(K, V)]) -> Command {
        let mut c = self.command();
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    /// Every file under `rel`, recursively.
    pub fn files(&self, rel: &str) -> Vec<PathBuf> {
        fn walk(p: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let p = e.path();
                    if p.is_dir() { walk(&p, out) } else { out.push(p) }
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path(rel), &mut out);
        out.sort();
        out
    }

    pub fn outbox(&self) -> Vec<PathBuf> {
        self.files("outbox")
            .into_iter()
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect()
    }

    pub fn journal(&self) -> announce::journal::Journal {
        announce::journal::Journal::open_existing(&self.path(".announce"))
            .unwrap()
            .expect("a journal")
    }
}

impl Run {
    pub fn code(&self, expected: i32) -> &Run {
        assert_eq!(
            self.output.status.code(),
            Some(expected),
            "announce {:?}\n{}",
            self.args,
            self.describe()
        );
        self
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.describe()
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }

    pub fn describe(&self) -> String {
        format!(
            "--- exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status.code(),
            self.stdout(),
            self.stderr()
        )
    }
}
