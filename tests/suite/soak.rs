//! Crash-resume soak: a run is killed with SIGKILL at random moments and resumed each time
//! until it is done, against a real SMTP server (aiosmtpd, tests/support/smtp_server.py) and
//! against an HTTP SMS gateway (the `generic` provider against an in-process counting fake).
//!
//! Afterwards every recipient got the message; without `--resend-unknown` nobody got it twice;
//! with it, only deliveries the report listed as `unknown` may have arrived twice.
//!
//! The moments are drawn from a seeded xorshift generator; the seed is printed, and
//! `SOAK_SEED=<n>` replays it. CI runs 1,200 deliveries and 10 kills per channel; the full one
//! (`scripts/soak`, which also runs the big-input measurements of tests/suite/limits.rs) is
//!
//! ```text
//! SOAK_DELIVERIES=2000 SOAK_KILLS=20 cargo test --release --test main suite::soak:: -- --nocapture
//! ```

use crate::support;
use crate::support::smtp;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Scenario, Workspace};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// xorshift64*: tiny, seedable, good enough to pick moments.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn seed(salt: u64) -> u64 {
    match std::env::var("SOAK_SEED") {
        Ok(v) => v.trim().parse().expect("SOAK_SEED is a number"),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            (t.as_nanos() as u64) ^ salt
        }
    }
}

/// What the crash loop did.
#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    /// Processes started (the first `send` and every `resume`, killed or not).
    processes: usize,
    /// Kills that hit before the run was journaled (the next process sends afresh).
    kills_before_journal: usize,
    /// Kills with nothing new delivered since the process started.
    kills_without_progress: usize,
}

struct Soak<'a> {
    ws: &'a Workspace,
    env: Vec<(String, String)>,
    send: Vec<String>,
    /// Messages the server has received so far (duplicates included).
    received: Box<dyn Fn() -> usize + Send + 'a>,
    total: usize,
    /// The channel's `concurrency`: at most this many deliveries are in flight at a kill.
    concurrency: usize,
}

impl Soak<'_> {
    fn latest_run(&self) -> Option<String> {
        let j = announce::journal::Journal::open_existing(&self.ws.path(".announce")).ok()??;
        j.latest_run_id().ok()?
    }

    fn spawn(&self, args: &[String], log: &str) -> std::process::Child {
        let mut c = self.ws.command();
        c.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.ws.path(log)).unwrap());
        c.spawn().expect("start announce")
    }

    /// Start, kill at a random moment, resume, ... `kills` times.
    fn crash_loop(&self, rng: &mut Rng, kills: usize) -> Figures {
        let mut f = Figures::default();
        // A kill lands within this many new messages, so the run is not over before the last.
        let step = (self.total / (kills * 3)).max(2) as u64;
        while f.kills < kills {
            let run = self.latest_run();
            let args: Vec<String> = match &run {
                None => self.send.clone(),
                Some(id) => ["resume", id, "--yes"].iter().map(|s| s.to_string()).collect(),
            };
            let before = (self.received)();
            let mut child = self.spawn(&args, &format!("process-{}.log", f.processes));
            f.processes += 1;
            // A third of the time an early moment (often during start-up, planning or the
            // first connection), otherwise after some more messages arrived (or a while later,
            // whichever comes first).
            let at = Instant::now()
                + Duration::from_millis(if rng.next().is_multiple_of(3) {
                    rng.range(0, 150)
                } else {
                    rng.range(150, 2000)
                });
            let after = before + rng.range(1, step) as usize;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    panic!(
                        "announce {args:?} ended by itself ({status}) before kill {} of {kills}; \
                         lower SOAK_KILLS or raise SOAK_DELIVERIES\n{}",
                        f.kills + 1,
                        self.ws.read(&format!("process-{}.log", f.processes - 1))
                    );
                }
                if Instant::now() >= at || (self.received)() >= after {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            f.kills += 1;
            if run.is_none() && self.latest_run().is_none() {
                f.kills_before_journal += 1;
            }
            if (self.received)() == before {
                f.kills_without_progress += 1;
            }
        }
        f
    }

    /// `resume` (or `send`, if no run was journaled yet) until it ends by itself.
    fn finish(&self, extra: &[&str], f: &mut Figures) -> support::Run {
        let args: Vec<String> = match self.latest_run() {
            None => self.send.clone(),
            Some(id) => ["resume", &id, "--yes"].iter().map(|s| s.to_string()).collect(),
        };
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        f.processes += 1;
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.ws.run_env(&all, &env)
    }

    fn report(&self) -> Value {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = self.ws.run_env(&["report", "latest", "--format", "json"], &env);
        r.code(0);
        r.json()
    }
}

fn by_status(report: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in report["deliveries"].as_array().unwrap() {
        m.entry(d["status"].as_str().unwrap().to_string())
            .or_default()
            .insert(d["recipient"].as_str().unwrap().to_string());
    }
    m
}

/// The whole check, for any channel: `counts()` says how often each recipient got a message.
/// `strict`: also require that `unknown` means "was in flight or journaled ahead": no more
/// never-sent `unknown` deliveries per kill than the lane's window.
fn soak(
    name: &str,
    soak: &Soak<'_>,
    counts: &dyn Fn() -> BTreeMap<String, usize>,
    recipients: &BTreeSet<String>,
    salt: u64,
    strict: bool,
) {
    let seed = seed(salt);
    let kills = env_num("SOAK_KILLS", 10) as usize;
    println!(
        "{name}: seed {seed} (replay with SOAK_SEED={seed}), {} deliveries, {kills} kills",
        soak.total
    );
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let mut f = soak.crash_loop(&mut rng, kills);

    // 1. Resume without --resend-unknown: nothing is sent twice.
    let run = soak.finish(&[], &mut f);
    assert!(
        matches!(run.output.status.code(), Some(0 | 3)),
        "seed {seed}: {}",
        run.describe()
    );
    let report = soak.report();
    let statuses = by_status(&report);
    let unknown = statuses.get("unknown").cloned().unwrap_or_default();
    let sent = statuses.get("sent").cloned().unwrap_or_default();
    assert_eq!(
        statuses.keys().filter(|s| *s != "sent" && *s != "unknown").count(),
        0,
        "seed {seed}: only sent and unknown remain: {:?}",
        statuses.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    assert_eq!(sent.len() + unknown.len(), soak.total, "seed {seed}");
    let got = counts();
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "seed {seed}: duplicates without --resend-unknown: {twice:?}"
    );
    for r in &sent {
        assert_eq!(
            got.get(r),
            Some(&1),
            "seed {seed}: {r} is `sent` but arrived {:?} times",
            got.get(r)
        );
    }
    for r in got.keys() {
        assert!(recipients.contains(r), "seed {seed}: a message to a stranger {r}");
    }
    let unknown_arrived = unknown.iter().filter(|r| got.contains_key(*r)).count();
    let never_sent = unknown.len() - unknown_arrived;
    if strict {
        // In flight (`concurrency`) plus journaled ahead (the pipeline): see dispatch::Pace.
        let window = soak.concurrency + announce::dispatch::PIPELINE_DEPTH;
        assert!(
            never_sent <= window * f.kills,
            "seed {seed}: {never_sent} deliveries are `unknown` but never reached the server; at most \
             {} (window {window} x {} kills) can have been in flight or journaled ahead",
            window * f.kills,
            f.kills
        );
    }
    if let Ok(keep) = std::env::var("SOAK_KEEP") {
        // For a post-mortem: the state folder after the kills, with sqlite3.
        let to = std::path::Path::new(&keep).join(name);
        let _ = std::fs::remove_dir_all(&to);
        std::fs::create_dir_all(&to).unwrap();
        let ok = std::process::Command::new("cp")
            .arg("-r")
            .arg(soak.ws.path(".announce"))
            .arg(&to)
            .status()
            .unwrap();
        assert!(ok.success());
        println!("{name}: state folder kept in {}", to.display());
    }

    // 2. Resume with --resend-unknown: everyone has it; only `unknown` ones may have it twice.
    let run = soak.finish(&["--resend-unknown", "--json"], &mut f);
    run.code(0);
    let after = run.json();
    assert_eq!(after["totals"]["sent"].as_u64(), Some(soak.total as u64), "seed {seed}");
    let got = counts();
    let missing: Vec<_> = recipients.iter().filter(|r| !got.contains_key(*r)).collect();
    assert!(missing.is_empty(), "seed {seed}: never received: {missing:?}");
    let duplicates: BTreeSet<&String> = got.iter().filter(|(_, n)| **n > 1).map(|(r, _)| r).collect();
    for r in &duplicates {
        assert!(
            unknown.contains(*r),
            "seed {seed}: {r} got {} messages but was never `unknown`",
            got[*r]
        );
        assert_eq!(got[*r], 2, "seed {seed}: {r}");
    }
    println!(
        "{name}: seed {seed}: {} kills ({} before the run was journaled, {} without a new message), \
         {} processes ({} resumes), {} recipients, {} unknown after the kills ({} of them had arrived, \
         {} never sent), 0 duplicates without --resend-unknown, {} duplicates after --resend-unknown, {:.1} s",
        f.kills,
        f.kills_before_journal,
        f.kills_without_progress,
        f.processes,
        f.processes - 1,
        recipients.len(),
        unknown.len(),
        unknown_arrived,
        never_sent,
        duplicates.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        duplicates.len(),
        unknown_arrived,
        "seed {seed}: exactly the unknown ones that had arrived"
    );
}

/// The soaks' folder: `[org]`, the announcement and an audience (written once it is made).
fn soak_scenario() -> Scenario {
    Scenario::new().org("name = \"Studio\"").audience("").notice(
        "summary = \"Website offline, Termine finden statt.\"",
        "Alle Termine finden statt.",
    )
}

/// Also the contract on `unknown`: a SIGKILL leaves `unknown` only the deliveries that were
/// in flight or journaled ahead of the provider (the lane's pipeline, at most
/// `dispatch::PIPELINE_DEPTH` beyond `concurrency`), so never-sent `unknown` ones are bounded
/// per kill.
#[test]
fn email_survives_sigkill_at_random_moments() {
    email_soak(env_num("SOAK_DELIVERIES", 1200) as usize, true);
}

fn email_soak(total: usize, strict: bool) {
    let ws = soak_scenario().build();
    let server = smtp::Server::smtp(&ws.path("box"), &["--mode", "plain"]);
    ws.channels(&format!(
        "[channels.email]\ntype = \"email\"\nfrom = \"Studio <info@studio.example>\"\nconcurrency = 4\n\
             retry_base = \"50ms\"\nretry_max = \"200ms\"\n\
             [[channels.email.relays]]\nname = \"local\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
        server.port
    ));
    let mut csv = String::from("name,email\n");
    let mut recipients = BTreeSet::new();
    for i in 0..total {
        csv.push_str(&format!("Kunde {i},kunde{i}@example.de\n"));
        recipients.insert(format!("kunde{i}@example.de"));
    }
    ws.write("customers.csv", &csv);
    let server = &server;
    let counts = || {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for msg in server.messages() {
            for r in msg["rcpt_tos"].as_array().unwrap() {
                *m.entry(r.as_str().unwrap().to_string()).or_default() += 1;
            }
        }
        m
    };
    let s = Soak {
        ws: &ws,
        env: Vec::new(),
        send: ["send", "notices/n.md", "--yes"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        received: Box::new(move || server.stat("messages") as usize),
        total,
        concurrency: 4,
    };
    soak("email", &s, &counts, &recipients, 0x5eed_e3a1, strict);
}

/// Counts requests per recipient (`to` of the JSON body) and answers like a gateway, a little
/// slowly so that kills often land while a request is in flight.
#[derive(Clone, Default)]
struct Counting {
    per_recipient: Arc<Mutex<BTreeMap<String, usize>>>,
    total: Arc<AtomicUsize>,
}

impl Respond for Counting {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let to = body["to"].as_str().unwrap_or("?").to_string();
        let n = self.total.fetch_add(1, Ordering::SeqCst) + 1;
        *self.per_recipient.lock().unwrap().entry(to).or_default() += 1;
        ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({ "id": format!("msg-{n}") }))
            .set_delay(Duration::from_millis(3))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_gateway_survives_sigkill_at_random_moments() {
    let total = env_num("SOAK_DELIVERIES", 1200) as usize;
    let server = MockServer::start().await;
    let fake = Counting::default();
    Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/send"))
        .and(wiremock::matchers::header("authorization", "Bearer soak-token-1"))
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    let uri = server.uri();
    tokio::task::spawn_blocking(move || {
        let ws = soak_scenario().top("default_region = \"DE\"").build();
        ws.channels(&format!(
            "[channels.sms]\ntype = \"sms\"\nprovider = \"generic\"\nbase_url = \"{uri}\"\nurl = \"/send\"\n\
                 from = \"Studio\"\nauth_token_env = \"SOAK_SMS_TOKEN\"\nid_pointer = \"/id\"\nconcurrency = 8\n\
                 retry_base = \"50ms\"\nretry_max = \"200ms\"\n"
        ));
        let mut csv = String::from("name,phone\n");
        let mut recipients = BTreeSet::new();
        for i in 0..total {
            csv.push_str(&format!("Kunde {i},0151 {:08}\n", 20_000_000 + i));
            recipients.insert(format!("+49151{:08}", 20_000_000 + i));
        }
        ws.write("customers.csv", &csv);
        let received = fake.total.clone();
        let per = fake.per_recipient.clone();
        let counts = move || per.lock().unwrap().clone();
        let s = Soak {
            ws: &ws,
            env: vec![("SOAK_SMS_TOKEN".into(), "soak-token-1".into())],
            send: ["send", "notices/n.md", "--yes"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            received: Box::new(move || received.load(Ordering::SeqCst)),
            total,
            concurrency: 8,
        };
        soak("sms", &s, &counts, &recipients, 0x5eed_5a5a, false);
    })
    .await
    .unwrap();
}
