//! Helpers for the webhook / Telegram / Mastodon / status page tests: a recording wiremock
//! responder with scripted answers, running the binary off the async runtime, and the Python
//! interpreter for the independent verifiers (standardwebhooks, feedparser).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use wiremock::{Request, Respond, ResponseTemplate};

use crate::support::{Run, Workspace};

/// Answers with `script` in order, then `fallback` forever; records every request with the
/// wall-clock time it arrived.
#[derive(Clone)]
pub struct Recorder {
    log: Arc<Mutex<Vec<(SystemTime, Request)>>>,
    script: Arc<Mutex<VecDeque<ResponseTemplate>>>,
    fallback: ResponseTemplate,
}

impl Recorder {
    pub fn new(script: Vec<ResponseTemplate>, fallback: ResponseTemplate) -> Recorder {
        Recorder {
            log: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
            fallback,
        }
    }

    pub fn always(r: ResponseTemplate) -> Recorder {
        Recorder::new(Vec::new(), r)
    }

    pub fn requests(&self) -> Vec<(SystemTime, Request)> {
        self.log.lock().unwrap().clone()
    }
}

impl Respond for Recorder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.log.lock().unwrap().push((SystemTime::now(), request.clone()));
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| self.fallback.clone())
    }
}

/// The binary blocks; run it on a blocking thread so the in-process fakes keep serving.
pub async fn run(w: &Arc<Workspace>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let w = w.clone();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        w.run_env(&a, &e)
    })
    .await
    .unwrap()
}

/// The Python the tests use: `ANNOUNCE_TEST_PYTHON` (set by scripts/test), else `python3`.
/// Panics with an install hint when `module` cannot be imported: a missing verifier must fail
/// the test, never skip it.
pub fn python_with(module: &str) -> PathBuf {
    let py = std::env::var_os("ANNOUNCE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let ok = std::process::Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import {module}: run scripts/test, or `{} -m pip install -r tests/support/requirements.txt`",
        py.display(),
        py.display()
    );
    py
}

/// Run a Python script with arguments; returns stdout, panics with stderr on failure.
pub fn python_script(module: &str, script: &str, args: &[&str]) -> String {
    let py = python_with(module);
    let out = std::process::Command::new(&py)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The report's deliveries of one channel.
pub fn deliveries_of(report: &serde_json::Value, channel: &str) -> Vec<serde_json::Value> {
    report["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["channel"] == channel)
        .cloned()
        .collect()
}

pub fn header(r: &Request, name: &str) -> String {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}
