//! A working folder for driving the `announce` binary, in the style of just's `Test` builder:
//! `Scenario::example().build().run(&["send", "notices/example.md", "--yes"]).code(3)`.
#![allow(dead_code)]

pub mod channels;
pub mod graph_fake;
pub mod recorder;
pub mod scenario;
pub mod sms_fakes;
pub mod smtp;
pub mod voice_fakes;

pub use recorder::Recorder;
pub use scenario::{Scenario, assert_outcome, deliveries, delivery_to, error_of};
use std::path::{Path, PathBuf};

use std::ffi::OsStr;
use std::process::{Command, Output};

/// No extra environment, for `run_env`/`run_async`.
pub const NO_ENV: &[(&str, &str)] = &[];

/// Ctrl-C for a child process (SIGINT, through kill(1)).
pub fn ctrl_c(child: &std::process::Child) {
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -INT {}", child.id());
}

/// An audience CSV of `n` people with distinct addresses.
pub fn people(n: usize) -> String {
    let mut csv = String::from("name,email,phone,tags\n");
    for i in 0..n {
        csv.push_str(&format!("Person {i},person{i}@example.de,,\n"));
    }
    csv
}

/// An audience CSV of `n` customers, "Kundin 1 Müller" <kunde1@example.de> and on (a
/// non-ASCII name for the headers to encode).
pub fn customers(n: usize) -> String {
    let mut csv = String::from("name,email\n");
    for i in 1..=n {
        csv.push_str(&format!("Kundin {i} Müller,kunde{i}@example.de\n"));
    }
    csv
}

/// The recipient of an outbox file, from its name "000012-anna@example.de.eml".
pub fn outbox_recipient(p: &Path) -> String {
    let name = p.file_stem().unwrap().to_string_lossy().into_owned();
    name.split_once('-').unwrap().1.to_string()
}

pub struct Workspace {
    dir: tempfile::TempDir,
    /// Set for every run (a Scenario's `env`).
    env: Vec<(String, String)>,
    /// The Scenario's config without its channel tables, for `channels`.
    base_config: String,
    /// Values (a Scenario's `secret`s) no run may print.
    secrets: Vec<String>,
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
            env: Vec::new(),
            base_config: String::new(),
            secrets: Vec::new(),
        }
    }

    /// Every run of this folder gets `env` as well.
    pub fn with_env(mut self, env: Vec<(String, String)>) -> Workspace {
        self.env = env;
        self
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, contents: &str) -> &Workspace {
        self.write_bytes(rel, contents.as_bytes())
    }

    /// `write` for contents that need not be UTF-8.
    pub fn write_bytes(&self, rel: &str, contents: &[u8]) -> &Workspace {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    /// channels.toml: the Scenario's keys and tables with these channel tables (for tests that
    /// start their servers in the folder, or change the channels between runs).
    pub fn channels(&self, toml: &str) -> &Workspace {
        self.write("channels.toml", &format!("{}{toml}", self.base_config))
    }

    /// Replace the line of channels.toml that starts with `key` (indentation aside) by `line`.
    pub fn config_line(&self, key: &str, line: &str) -> &Workspace {
        let c = self.read("channels.toml");
        assert!(
            c.lines().any(|l| l.trim_start().starts_with(key)),
            "channels.toml has no {key:?} line"
        );
        let edited: Vec<String> = c
            .lines()
            .map(|l| {
                if l.trim_start().starts_with(key) {
                    line.to_string()
                } else {
                    l.to_string()
                }
            })
            .collect();
        self.write("channels.toml", &edited.join("\n"))
    }

    /// Write `text` to `rel` with Python's codec `codec` (an encoder independent of ours).
    pub fn write_encoded(&self, rel: &str, text: &str, codec: &str) -> &Workspace {
        channels::python_script(
            "codecs",
            "import sys; open(sys.argv[1], 'w', encoding=sys.argv[2], newline='').write(sys.argv[3])",
            &[self.path(rel).to_str().unwrap(), codec, text],
        );
        self
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
        self.command_of(env!("CARGO_BIN_EXE_announce"))
    }

    /// `program` in the folder, without the environment that would change what announce reads.
    fn command_of(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.root())
            .env_remove("ANNOUNCE_CONFIG")
            .env_remove("RUST_LOG")
            .stdin(std::process::Stdio::null())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, NO_ENV)
    }

    pub fn run_env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&self, args: &[&str], env: &[(K, V)]) -> Run {
        let output = self.command_with(args, env).output().expect("run announce");
        self.checked(Run {
            output,
            args: args.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// The run, once it is clear that it printed none of the folder's secrets.
    fn checked(&self, run: Run) -> Run {
        let all = format!("{}{}", run.stdout(), run.stderr());
        for s in &self.secrets {
            assert!(
                !all.contains(s.as_str()),
                "a secret leaked into the output:\n{}",
                run.describe()
            );
        }
        run
    }

    /// None of the folder's secrets is in any file of the state folder.
    pub fn assert_secrets_absent(&self) {
        for s in &self.secrets {
            self.assert_absent(s, &[]);
        }
    }

    /// `run_env` from async tests: the binary blocks, so it runs on a blocking thread and the
    /// in-process fakes on the test's runtime keep serving.
    pub async fn run_async<K: AsRef<OsStr>, V: AsRef<OsStr>>(&self, args: &[&str], env: &[(K, V)]) -> Run {
        let mut c = self.command_with(args, env);
        let output = tokio::task::spawn_blocking(move || c.output().expect("run announce"))
            .await
            .unwrap();
        self.checked(Run {
            output,
            args: args.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// `run` in the subfolder `dir` (a folder `init` made).
    pub fn run_in(&self, dir: &str, args: &[&str]) -> Run {
        let mut c = self.command();
        let output = c.current_dir(self.path(dir)).args(args).output().expect("run announce");
        Run {
            output,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `announce ARGS` on a pseudo-terminal (util-linux `script`), not yet waited for: its
    /// stdin is the keyboard, its stdout the screen.
    pub fn terminal(&self, args: &str) -> std::process::Child {
        let mut c = self.command_of("script");
        c.args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_announce")),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
        c.spawn().expect("util-linux `script` runs commands on a pty")
    }

    /// `terminal`, typing `answer`; returns the screen.
    pub fn on_terminal(&self, args: &str, answer: &str) -> String {
        use std::io::Write;
        let mut child = self.terminal(args);
        child.stdin.take().unwrap().write_all(answer.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `run_env` with umask 000, through a shell so that the process inherits it.
    pub fn run_umask_000(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
        let mut c = self.command_of("sh");
        c.arg("-c").arg(format!(
            "umask 000 && exec '{}' {}",
            env!("CARGO_BIN_EXE_announce"),
            quoted.join(" ")
        ));
        c.envs(env.iter().copied());
        Run {
            output: c.output().expect("run announce"),
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

    /// The text of the outbox message whose file name contains `who` (a recipient's address).
    pub fn outbox_message(&self, who: &str) -> String {
        let path = self.outbox().into_iter().find(|p| p.to_string_lossy().contains(who));
        std::fs::read_to_string(path.unwrap_or_else(|| panic!("no outbox message for {who}"))).unwrap()
    }

    /// `secret` is nowhere: not in the runs' stdout/stderr, not in any file of the state folder.
    pub fn assert_absent(&self, secret: &str, runs: &[&Run]) {
        for r in runs {
            assert!(
                !r.stdout().contains(secret) && !r.stderr().contains(secret),
                "secret leaked:\n{}",
                r.describe()
            );
        }
        let files = self.files(".announce");
        assert!(!files.is_empty(), "no journal written");
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret found in {}",
                f.display()
            );
        }
    }

    /// The decoded `To` header of every .eml in the outbox (by Python's email package), sorted.
    pub fn outbox_to_headers(&self) -> Vec<String> {
        let files: Vec<String> = self
            .outbox()
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .map(|p| p.to_str().unwrap().to_string())
            .collect();
        let args: Vec<&str> = files.iter().map(String::as_str).collect();
        let out = channels::python_script(
            "email",
            "import sys, json, email, email.policy\n\
             print(json.dumps([str(email.message_from_bytes(open(p, 'rb').read(), policy=email.policy.default)['To']) \
             for p in sys.argv[1:]]))",
            &args,
        );
        let mut to: Vec<String> = serde_json::from_str(&out).unwrap();
        to.sort();
        to
    }

    /// No outbox file, and no run in the journal (if there is one).
    pub fn assert_nothing_sent(&self) {
        assert!(self.outbox().is_empty(), "{:?}", self.outbox());
        if self.path(".announce/journal.sqlite3").exists() {
            assert!(self.journal().runs().unwrap().is_empty(), "no run journaled");
        }
    }

    /// Wait until the outbox holds `n` files (a run in the background got going). The bound
    /// only keeps a hung run from hanging the suite.
    pub fn await_outbox(&self, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while self.outbox().len() < n {
            assert!(std::time::Instant::now() < deadline, "the run never got going");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// The recipient of each outbox file ("000012-anna@example.de.eml" -> anna@example.de).
    pub fn outbox_recipients(&self) -> Vec<String> {
        self.outbox().iter().map(|p| outbox_recipient(p)).collect()
    }

    /// The journal's rows of the latest run.
    pub fn latest_rows(&self) -> Vec<announce::journal::DeliveryRow> {
        let j = self.journal();
        let run = j.latest_run_id().unwrap().expect("a run");
        j.deliveries(&run).unwrap()
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
