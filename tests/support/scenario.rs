//! The scenario builder: a working folder from its parts (top-level config keys, `[org]`, an
//! audience, channel tables, an announcement, other files), in the style of just's `Test`:
//!
//! ```text
//! let w = Scenario::new().org("name = \"Studio\"").audience(csv).channel(block).notice("", "Text").build();
//! assert_outcome(&w.run(SEND).code(0).delivery("anna@example.de"), "sent", 1);
//! ```

use std::sync::Arc;

use serde_json::Value;

use super::{Run, Workspace};

/// What `notice` writes to and `SEND` sends.
pub const NOTICE: &str = "notices/n.md";
pub const SEND: &[&str] = &["send", NOTICE, "--yes", "--json"];

/// What `SEND` is for `Scenario::example()`.
pub const EXAMPLE_SEND: &[&str] = &["send", "notices/example.md", "--yes", "--json"];

/// `SEND` with more arguments (`--again`, ...).
pub fn send_with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = SEND.to_vec();
    args.extend_from_slice(extra);
    args
}

/// An announcement file: `title`, front matter lines `front`, `body`.
pub fn notice_text(title: &str, front: &str, body: &str) -> String {
    let front = if front.is_empty() || front.ends_with('\n') {
        front.to_string()
    } else {
        format!("{front}\n")
    };
    format!("+++\ntitle = \"{title}\"\n{front}+++\n{body}\n")
}

#[derive(Default)]
pub struct Scenario {
    top: String,
    title: Option<String>,
    /// The whole config as written (`example`), instead of the parts.
    raw_config: Option<String>,
    env: Vec<(String, String)>,
    secrets: Vec<String>,
    org: Option<String>,
    audience: Option<Vec<u8>>,
    channels: String,
    files: Vec<(String, String)>,
}

impl Scenario {
    pub fn new() -> Scenario {
        Scenario::default()
    }

    /// A copy of the repository's examples/ folder (the README's first command runs there):
    /// channels.example.toml as channels.toml, the customers, the opt-outs and
    /// notices/example.md (`EXAMPLE_SEND` sends it).
    pub fn example() -> Scenario {
        let read = |p: &str| std::fs::read_to_string(super::repo(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        let mut s = Scenario {
            raw_config: Some(read("channels.example.toml")),
            ..Scenario::default()
        };
        for f in ["customers.csv", "optouts.txt", "notices/example.md"] {
            s = s.file(f, &read(&format!("examples/{f}")));
        }
        s
    }

    /// Keys before the first table (`default_region = "DE"`, `templates_dir = ...`), one a line.
    pub fn top(mut self, keys: &str) -> Scenario {
        self.top.push_str(keys);
        if !keys.is_empty() && !keys.ends_with('\n') {
            self.top.push('\n');
        }
        self
    }

    /// The body of `[org]`.
    pub fn org(mut self, body: &str) -> Scenario {
        self.org = Some(body.to_string());
        self
    }

    /// customers.csv, and `[audience] file = "customers.csv"`.
    pub fn audience(self, csv: &str) -> Scenario {
        self.audience_bytes(csv.as_bytes())
    }

    /// `audience` for a file that need not be UTF-8.
    pub fn audience_bytes(mut self, csv: &[u8]) -> Scenario {
        self.audience = Some(csv.to_vec());
        self
    }

    /// One or more `[channels.NAME]` tables, as TOML text.
    pub fn channel(mut self, toml: &str) -> Scenario {
        self.channels.push_str(toml);
        if !toml.ends_with('\n') {
            self.channels.push('\n');
        }
        self
    }

    /// The title `notice` writes (else "Website gestört").
    pub fn title(mut self, title: &str) -> Scenario {
        self.title = Some(title.to_string());
        self
    }

    /// An environment variable every run gets (a secret the config names with `*_env`).
    pub fn env(mut self, key: &str, value: &str) -> Scenario {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// `env`, for a secret: every run of the folder fails if it prints `value`.
    pub fn secret(mut self, key: &str, value: &str) -> Scenario {
        self.secrets.push(value.to_string());
        self.env(key, value)
    }

    /// `env` for each pair.
    pub fn envs(self, pairs: &[(&str, &str)]) -> Scenario {
        pairs.iter().fold(self, |s, (k, v)| s.env(k, v))
    }

    /// Without the environment `env` gave (a test of a missing secret).
    pub fn no_env(mut self) -> Scenario {
        self.env.clear();
        self
    }

    /// notices/n.md with the title, front matter lines `front` and `body`.
    pub fn notice(self, front: &str, body: &str) -> Scenario {
        let text = notice_text(self.title.as_deref().unwrap_or("Website gestört"), front, body);
        self.file(NOTICE, &text)
    }

    pub fn file(mut self, rel: &str, contents: &str) -> Scenario {
        self.files.push((rel.to_string(), contents.to_string()));
        self
    }

    /// The config as written to channels.toml.
    pub fn config_text(&self) -> String {
        self.head() + &self.channels
    }

    /// The config without the channel tables.
    fn head(&self) -> String {
        if let Some(raw) = &self.raw_config {
            return raw.clone();
        }
        let mut c = format!("state_dir = \".announce\"\n{}", self.top);
        if let Some(org) = &self.org {
            c.push_str(&format!("\n[org]\n{org}\n"));
        }
        if self.audience.is_some() {
            c.push_str("\n[audience]\nfile = \"customers.csv\"\n");
        }
        c.push('\n');
        c
    }

    /// Shared, so async tests can hand it to the fakes' callbacks as well.
    pub fn build(self) -> Arc<Workspace> {
        let mut w = Workspace::empty().with_env(self.env.clone());
        w.base_config = self.head();
        w.secrets = self.secrets.clone();
        w.write("channels.toml", &self.config_text());
        if let Some(csv) = &self.audience {
            w.write_bytes("customers.csv", csv);
        }
        for (rel, contents) in &self.files {
            w.write(rel, contents);
        }
        Arc::new(w)
    }
}

impl Scenario {
    /// `build`, then `SEND` (from async tests, so the fakes on the runtime keep serving).
    pub async fn send_async(self) -> (Arc<Workspace>, Run) {
        let w = self.build();
        let r = w.run_async(SEND, super::NO_ENV).await;
        (w, r)
    }
}

/// A delivery's status and attempts, as the report gives them.
pub fn assert_outcome(d: &Value, status: &str, attempts: u64) {
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_u64()),
        (Some(status), Some(attempts)),
        "{d}"
    );
}

/// A delivery's error text; panics when it has none.
pub fn error_of(d: &Value) -> &str {
    d["error"].as_str().unwrap_or_else(|| panic!("no error in {d}"))
}

/// The first delivery to `recipient` in a report.
pub fn delivery_to(report: &Value, recipient: &str) -> Value {
    deliveries(report)
        .into_iter()
        .find(|d| d["recipient"] == recipient)
        .unwrap_or_else(|| panic!("no delivery to {recipient} in {report:#}"))
}

/// The deliveries of a `--json` report.
pub fn deliveries(report: &Value) -> Vec<Value> {
    report["deliveries"].as_array().cloned().unwrap_or_default()
}

impl Run {
    /// The deliveries of the `--json` report on stdout.
    pub fn deliveries(&self) -> Vec<Value> {
        deliveries(&self.json())
    }

    /// The one delivery to `recipient` in the `--json` report on stdout.
    pub fn delivery(&self, recipient: &str) -> Value {
        self.only(|d| d["recipient"] == recipient, recipient)
    }

    /// The one delivery on each of `channels`, in that order.
    pub fn deliveries_on(&self, channels: &[&str]) -> Vec<Value> {
        channels.iter().map(|c| self.delivery_on(c)).collect()
    }

    /// The one delivery on `channel` in the `--json` report on stdout.
    pub fn delivery_on(&self, channel: &str) -> Value {
        self.only(|d| d["channel"] == channel, channel)
    }

    fn only(&self, which: impl Fn(&Value) -> bool, what: &str) -> Value {
        let all = self.deliveries();
        let mut found = all.iter().filter(|d| which(d));
        let d = found
            .next()
            .unwrap_or_else(|| panic!("no delivery for {what}\n{}", self.describe()));
        assert!(found.next().is_none(), "more than one delivery for {what}");
        d.clone()
    }
}

impl Workspace {
    /// A later announcement `rel` in a built folder, as `notice_text` writes it.
    pub fn notice_file(&self, rel: &str, title: &str, front: &str, body: &str) -> &Workspace {
        self.write(rel, &notice_text(title, front, body))
    }

    /// `send REL --yes --json`, which must exit 0; its report.
    pub fn send_ok(&self, rel: &str) -> Value {
        let r = self.run(&["send", rel, "--yes", "--json"]);
        r.code(0);
        r.json()
    }
}

/// Of `ds`, the deliveries on `channel`, by recipient.
pub fn by_recipient_on(ds: &[Value], channel: &str) -> std::collections::BTreeMap<String, Value> {
    ds.iter()
        .filter(|d| d["channel"] == channel)
        .map(|d| (d["recipient"].as_str().unwrap_or_default().to_string(), d.clone()))
        .collect()
}

/// The error of the delivery on `channel` to `recipient` in a report.
pub fn error_on(report: &Value, channel: &str, recipient: &str) -> String {
    let d = by_recipient_on(&deliveries(report), channel).remove(recipient);
    let d = d.unwrap_or_else(|| panic!("no delivery on {channel} to {recipient} in {report:#}"));
    error_of(&d).to_string()
}

impl Run {
    /// Asserts that every delivery of the `--json` report ended `status` after `attempts`
    /// (and that there is one); returns their errors.
    pub fn all_ended(&self, status: &str, attempts: u64) -> Vec<String> {
        let ds = self.deliveries();
        assert!(!ds.is_empty(), "no deliveries\n{}", self.describe());
        ds.iter()
            .map(|d| {
                assert_outcome(d, status, attempts);
                d["error"].as_str().unwrap_or_default().to_string()
            })
            .collect()
    }
}
