//! `api/v2/status.json`, `summary.json` and `incidents.json` in the shape of Atlassian
//! Statuspage's public API (what monitoring tools and aggregators already read): an incident is
//! a thread, its updates are the thread's announcements, newest first. announce knows no
//! components, so `components` is always empty.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::labels;
use super::site::{Entry, Settings, Thread};
use crate::announcement::Severity;

/// Where the API files are, relative to the site's folder.
pub const DIR: &str = "api/v2";

#[derive(Serialize)]
struct Page<'a> {
    id: &'a str,
    name: &'a str,
    url: String,
    time_zone: &'a str,
    updated_at: String,
}

#[derive(Serialize)]
struct Status {
    indicator: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
struct Update {
    id: String,
    status: &'static str,
    body: String,
    incident_id: String,
    created_at: String,
    updated_at: String,
    display_at: String,
}

#[derive(Serialize)]
struct Incident {
    id: String,
    name: String,
    status: &'static str,
    impact: &'static str,
    created_at: String,
    updated_at: String,
    started_at: String,
    monitoring_at: Option<String>,
    resolved_at: Option<String>,
    shortlink: String,
    page_id: String,
    incident_updates: Vec<Update>,
    components: [(); 0],
}

#[derive(Serialize)]
struct StatusFile<'a> {
    page: &'a Page<'a>,
    status: &'a Status,
}

#[derive(Serialize)]
struct IncidentsFile<'a> {
    page: &'a Page<'a>,
    incidents: Vec<&'a Incident>,
}

#[derive(Serialize)]
struct SummaryFile<'a> {
    page: &'a Page<'a>,
    components: [(); 0],
    incidents: Vec<&'a Incident>,
    scheduled_maintenances: [(); 0],
    status: &'a Status,
}

/// Statuspage's impact/indicator words; `info` and `resolved` are no impact.
fn impact(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::Major => "major",
        Severity::Minor => "minor",
        Severity::Info | Severity::Resolved => "none",
    }
}

fn impact_rank(s: &str) -> u8 {
    match s {
        "critical" => 3,
        "major" => 2,
        "minor" => 1,
        _ => 0,
    }
}

/// A link from `api/v2/` to a file of the site: absolute with `base_url`, else relative to the
/// JSON file (as a browser resolves it).
fn href(s: &Settings, file: &str) -> String {
    match &s.base_url {
        Some(b) => format!("{b}/{file}"),
        None => format!("../../{file}"),
    }
}

/// An update's text: its title (unless it is the incident's name), summary and body as plain
/// text, since Statuspage bodies are text.
fn body(incident: &str, e: &Entry) -> String {
    let title = (e.title != incident).then_some(e.title.as_str());
    [title, e.summary.as_deref(), Some(e.body_text.as_str())]
        .into_iter()
        .flatten()
        .filter(|p| !p.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn incident(s: &Settings, page_id: &str, t: &Thread) -> Incident {
    let id = t.slug.clone();
    let name = t.first().title.clone();
    let closed_at = (!t.is_open()).then(|| s.iso(t.latest().at));
    let updates = t
        .entries
        .iter()
        .rev()
        .map(|e| {
            let at = s.iso(e.at);
            Update {
                id: e.run_id.clone(),
                status: if e.severity == Severity::Resolved {
                    "resolved"
                } else {
                    "investigating"
                },
                body: body(&name, e),
                incident_id: id.clone(),
                created_at: at.clone(),
                updated_at: at.clone(),
                display_at: at,
            }
        })
        .collect();
    let worst = t
        .entries
        .iter()
        .map(|e| impact(e.severity))
        .max_by_key(|i| impact_rank(i))
        .unwrap_or("none");
    Incident {
        status: if closed_at.is_some() {
            "resolved"
        } else {
            "investigating"
        },
        impact: worst,
        created_at: s.iso(t.first().at),
        updated_at: s.iso(t.latest().at),
        started_at: s.iso(t.first().at),
        monitoring_at: None,
        resolved_at: closed_at,
        shortlink: href(s, &t.file_name()),
        page_id: page_id.to_string(),
        incident_updates: updates,
        components: [],
        id,
        name,
    }
}

/// A stable 12-character page id (Statuspage's are 12 lowercase letters and digits).
fn page_id(s: &Settings, channel: &str) -> String {
    let d = Sha256::digest(format!("announce statuspage\0{}\0{channel}", s.org.name).as_bytes());
    hex::encode(d)[..12].to_string()
}

/// The three files: `(path under the site, JSON)`. `threads` in any order; the output lists
/// incidents newest first (by start) and depends only on them, not on the clock.
pub fn files(s: &Settings, threads: &[Thread], channel: &str) -> Vec<(String, String)> {
    let id = page_id(s, channel);
    let updated = threads.iter().map(|t| t.latest().at).max();
    let name = s.full_title();
    let page = Page {
        id: &id,
        name: &name,
        url: match &s.base_url {
            Some(b) => format!("{b}/"),
            None => href(s, "index.html"),
        },
        time_zone: s.tz.iana_name().unwrap_or("UTC"),
        updated_at: s.iso(updated.unwrap_or(jiff::Timestamp::UNIX_EPOCH)),
    };
    let mut sorted: Vec<&Thread> = threads.iter().collect();
    sorted.sort_by(|a, b| b.first().at.cmp(&a.first().at).then_with(|| a.slug.cmp(&b.slug)));
    let incidents: Vec<Incident> = sorted.iter().map(|t| incident(s, &id, t)).collect();
    // The indicator is the current state: the open threads' severity now (an `info` update
    // keeps it, a downgrade lowers it), not the worst they ever had.
    let indicator = threads
        .iter()
        .filter(|t| t.is_open())
        .map(|t| impact(t.severity()))
        .max_by_key(|i| impact_rank(i))
        .unwrap_or("none");
    let status = Status {
        indicator,
        description: labels::label(s.locale, &format!("status.{indicator}")),
    };
    let unresolved: Vec<&Incident> = incidents.iter().filter(|i| i.resolved_at.is_none()).collect();
    vec![
        (
            format!("{DIR}/status.json"),
            pretty(&StatusFile {
                page: &page,
                status: &status,
            }),
        ),
        (
            format!("{DIR}/summary.json"),
            pretty(&SummaryFile {
                page: &page,
                components: [],
                incidents: unresolved,
                scheduled_maintenances: [],
                status: &status,
            }),
        ),
        (
            format!("{DIR}/incidents.json"),
            pretty(&IncidentsFile {
                page: &page,
                incidents: incidents.iter().collect(),
            }),
        ),
    ]
}

fn pretty<T: Serialize>(v: &T) -> String {
    // Serializing these plain structs cannot fail (string keys, no maps).
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}
