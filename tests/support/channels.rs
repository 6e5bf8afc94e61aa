//! Helpers for the webhook / Telegram / Mastodon / status page tests: the Python
//! interpreter for the independent verifiers (standardwebhooks, feedparser).
#![allow(dead_code)]

use std::path::PathBuf;

use wiremock::Request;

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
    super::smtp::run(std::process::Command::new(&py).arg("-c").arg(script).args(args))
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
