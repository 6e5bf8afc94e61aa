//! The status page's model — announcements grouped into incident threads — and its HTML pages,
//! rendered from overridable templates (`statuspage.index.html.hbs`,
//! `statuspage.incident.html.hbs`, `statuspage.css.hbs`), so labels can be translated.
//!
//! Output depends only on the announcements and the clock's day (what counts as "recent"), not on
//! when it is generated: regenerating gives the same files, which keeps `rsync` uploads small.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::announcement::Severity;
use crate::locale::Locale;
use crate::render::Templates;
use crate::settings::Org;

use super::labels;
use super::pages::Page;

/// One announcement as the status page shows it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub run_id: String,
    pub title: String,
    pub summary: Option<String>,
    pub body_html: String,
    pub body_text: String,
    pub severity: Severity,
    pub thread: Option<String>,
    pub link: Option<String>,
    pub at: Timestamp,
}

/// The announcements of one incident (a `thread`), or a single announcement without one.
#[derive(Debug, Clone)]
pub struct Thread {
    /// The thread name, or `None` for a lone announcement.
    pub name: Option<String>,
    pub slug: String,
    /// Oldest first.
    pub entries: Vec<Entry>,
}

impl Thread {
    pub fn latest(&self) -> &Entry {
        self.entries.last().expect("a thread has at least one entry")
    }

    pub fn first(&self) -> &Entry {
        &self.entries[0]
    }

    /// A `resolved` announcement closes the thread (a later one reopens it).
    pub fn is_open(&self) -> bool {
        self.latest().severity != Severity::Resolved
    }

    /// The current severity: the latest one other than `info` (an update that does not restate the
    /// severity does not downgrade the incident), `resolved` once closed.
    pub fn severity(&self) -> Severity {
        if !self.is_open() {
            return Severity::Resolved;
        }
        self.entries
            .iter()
            .rev()
            .map(|e| e.severity)
            .find(|s| *s != Severity::Info)
            .unwrap_or(Severity::Info)
    }

    pub fn file_name(&self) -> String {
        format!("incident-{}.html", self.slug)
    }
}

fn rank(s: Severity) -> u8 {
    match s {
        Severity::Critical => 4,
        Severity::Major => 3,
        Severity::Minor => 2,
        Severity::Info => 1,
        Severity::Resolved => 0,
    }
}

/// A file-name-safe, stable name for a thread: its readable form, plus a hash when that form
/// had to change (so "Outage 1" and "outage-1" never share a page).
pub fn slug(thread: &str) -> String {
    let mut s = String::new();
    for c in thread.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') {
            s.push('-');
        }
    }
    let mut s: String = s.trim_matches('-').chars().take(60).collect();
    if s != thread || s.is_empty() {
        let h = hex::encode(Sha256::digest(thread.as_bytes()));
        if !s.is_empty() {
            s.push('-');
        }
        s.push_str(&h[..8]);
    }
    s
}

/// Group entries into threads, each oldest first; threads in order of first appearance.
pub fn threads(mut entries: Vec<Entry>) -> Vec<Thread> {
    entries.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.run_id.cmp(&b.run_id)));
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Thread> = BTreeMap::new();
    for e in entries {
        let (key, name, slug) = match &e.thread {
            Some(t) => (format!("t:{t}"), Some(t.clone()), slug(t)),
            None => (format!("r:{}", e.run_id), None, format!("notice-{}", slug(&e.run_id))),
        };
        map.entry(key.clone())
            .or_insert_with(|| {
                order.push(key);
                Thread {
                    name,
                    slug,
                    entries: Vec::new(),
                }
            })
            .entries
            .push(e);
    }
    order.into_iter().filter_map(|k| map.remove(&k)).collect()
}

/// What the pages need besides the announcements.
#[derive(Debug, Clone)]
pub struct Settings {
    pub title: String,
    pub org: Org,
    pub tz: TimeZone,
    /// Public URL of the site (no trailing slash), for the feed.
    pub base_url: Option<String>,
    pub recent_days: u32,
    /// `[org] locale`: the language of the built-in text and dates.
    pub locale: Locale,
}

impl Settings {
    /// "<title> – <org name>", for browser tabs and feed readers.
    pub fn full_title(&self) -> String {
        if self.org.name.trim().is_empty() {
            self.title.clone()
        } else {
            format!("{} – {}", self.title, self.org.name)
        }
    }

    /// A time as people of the locale write it, with the zone's abbreviation.
    pub fn local(&self, t: Timestamp) -> String {
        let z = t.to_zoned_datetime(self.tz.clone());
        format!("{} {}", self.locale.datetime(&z.datetime()), z.strftime("%Z"))
    }

    pub fn iso(&self, t: Timestamp) -> String {
        t.to_zoned_datetime(self.tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }
}

fn entry_value(s: &Settings, e: &Entry) -> Value {
    let mut m = Map::new();
    m.insert("run_id".into(), json!(e.run_id));
    m.insert("anchor".into(), json!(format!("u-{}", e.run_id)));
    m.insert("title".into(), json!(e.title));
    if let Some(x) = &e.summary {
        m.insert("summary".into(), json!(x));
    }
    m.insert("body_html".into(), json!(e.body_html));
    m.insert("severity".into(), json!(e.severity.as_str()));
    m.insert("severity_label".into(), json!(labels::severity(s.locale, e.severity)));
    if let Some(x) = &e.link {
        m.insert("link".into(), json!(x));
    }
    m.insert("time_local".into(), json!(s.local(e.at)));
    m.insert("time_iso".into(), json!(s.iso(e.at)));
    Value::Object(m)
}

fn thread_value(s: &Settings, t: &Thread) -> Value {
    let latest = t.latest();
    let updates: Vec<Value> = t.entries.iter().rev().map(|e| entry_value(s, e)).collect();
    let mut m = Map::new();
    if let Some(n) = &t.name {
        m.insert("name".into(), json!(n));
    }
    m.insert("href".into(), json!(t.file_name()));
    // The incident is known by its first announcement's title; updates have their own.
    m.insert("title".into(), json!(t.first().title));
    m.insert("severity".into(), json!(t.severity().as_str()));
    m.insert("severity_label".into(), json!(labels::severity(s.locale, t.severity())));
    m.insert("open".into(), json!(t.is_open()));
    m.insert("started_local".into(), json!(s.local(t.first().at)));
    m.insert("started_iso".into(), json!(s.iso(t.first().at)));
    m.insert("updated_local".into(), json!(s.local(latest.at)));
    m.insert("updated_iso".into(), json!(s.iso(latest.at)));
    m.insert("latest".into(), entry_value(s, latest));
    m.insert("update_count".into(), json!(t.entries.len()));
    m.insert("updates".into(), Value::Array(updates));
    Value::Object(m)
}

/// A `tel:` target: the number in E.164 when it parses as an international one (`+49 (0)30 …`
/// drops the trunk 0), else its digits and `+` as written.
fn tel(phone: &str) -> String {
    match crate::phone::parse(None, phone) {
        Ok(n) => n.format().mode(phonenumber::Mode::E164).to_string(),
        Err(_) => phone.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect(),
    }
}

fn org_value(org: &Org) -> Value {
    let mut v = serde_json::to_value(org).unwrap_or_else(|_| json!({}));
    if let Value::Object(o) = &mut v {
        o.retain(|_, v| !v.is_null());
        if let Some(p) = &org.phone {
            o.insert("tel".into(), json!(tel(p)));
        }
        let contact = [&org.phone, &org.email, &org.address, &org.hours, &org.website];
        o.insert("has_contact".into(), json!(contact.iter().any(|f| f.is_some())));
    }
    v
}

/// The index's sections: `incidents` (open, minor or worse, most severe first, then latest
/// update), `notices` (open `info` ones of the last `recent_days`), `resolved` (closed within
/// `recent_days`, newest first) and `earlier` (the rest, newest first).
pub fn index_context(s: &Settings, threads: &[Thread], now: Timestamp) -> Value {
    let horizon = now - jiff::SignedDuration::from_hours(24 * i64::from(s.recent_days));
    let mut incidents: Vec<&Thread> = Vec::new();
    let mut notices = Vec::new();
    let mut resolved = Vec::new();
    let mut earlier = Vec::new();
    for t in threads {
        let recent = t.latest().at >= horizon;
        match (t.is_open(), t.severity()) {
            (true, Severity::Info) if recent => notices.push(t),
            (true, Severity::Info) => earlier.push(t),
            (true, _) => incidents.push(t),
            (false, _) if recent => resolved.push(t),
            (false, _) => earlier.push(t),
        }
    }
    let newest_first = |a: &&Thread, b: &&Thread| b.latest().at.cmp(&a.latest().at);
    incidents.sort_by(|a, b| {
        rank(b.severity())
            .cmp(&rank(a.severity()))
            .then_with(|| newest_first(a, b))
    });
    notices.sort_by(newest_first);
    resolved.sort_by(newest_first);
    earlier.sort_by(newest_first);
    let list = |v: &[&Thread]| Value::Array(v.iter().map(|t| thread_value(s, t)).collect());
    let worst = incidents.first().map(|t| t.severity().as_str());
    json!({
        "heading": s.title,
        "worst": worst,
        "incidents": list(&incidents),
        "notices": list(&notices),
        "resolved": list(&resolved),
        "earlier": list(&earlier),
    })
}

fn site_value(s: &Settings, threads: &[Thread]) -> Value {
    let newest = threads.iter().map(|t| t.latest().at).max();
    let mut m = Map::new();
    m.insert("title".into(), json!(s.title));
    m.insert("full_title".into(), json!(s.full_title()));
    m.insert("index_href".into(), json!("index.html"));
    m.insert("feed_href".into(), json!("feed.atom"));
    if let Some(t) = newest {
        m.insert("updated_local".into(), json!(s.local(t)));
        m.insert("updated_iso".into(), json!(s.iso(t)));
    }
    m.insert("timezone".into(), json!(s.tz.iana_name().unwrap_or("UTC")));
    Value::Object(m)
}

/// What every page shares: site, org (the contact block), labels, the links to the index and
/// the `pages_dir` pages, and the style sheet.
struct Chrome {
    common: Map<String, Value>,
    /// (href, title) of the index and every page, in link order.
    links: Vec<(String, String)>,
}

impl Chrome {
    fn new(s: &Settings, threads: &[Thread], pages: &[Page], style: String) -> Chrome {
        let mut common = Map::new();
        common.insert("site".into(), site_value(s, threads));
        common.insert("org".into(), org_value(&s.org));
        common.insert("style".into(), json!(style));
        common.insert("lang".into(), json!(s.locale.code()));
        common.insert("labels".into(), labels::all(s.locale));
        let links = std::iter::once(("index.html".to_string(), s.title.clone()))
            .chain(pages.iter().map(|p| (p.file_name(), p.title.clone())))
            .collect();
        Chrome { common, links }
    }

    /// The context of the page `href`: the shared part, `nav` (marking this page `current`)
    /// and the page's own keys.
    fn context(&self, href: &str, own: Value) -> Value {
        let mut m = self.common.clone();
        let nav = self
            .links
            .iter()
            .map(|(h, t)| json!({"href": h, "title": t, "current": h == href}))
            .collect();
        m.insert("nav".into(), Value::Array(nav));
        if let Value::Object(o) = own {
            m.extend(o);
        }
        Value::Object(m)
    }
}

/// Render every HTML page: `(file name, HTML)`, thread pages and `pages_dir` pages first, the
/// index last.
pub fn pages(
    templates: &Templates,
    s: &Settings,
    threads: &[Thread],
    site_pages: &[Page],
    now: Timestamp,
) -> Result<Vec<(String, String)>, String> {
    let style = templates.render("statuspage.css.hbs", &json!({}))?;
    let chrome = Chrome::new(s, threads, site_pages, style);
    let mut out = Vec::with_capacity(threads.len() + site_pages.len() + 1);
    for t in threads {
        let own = json!({"heading": t.first().title, "thread": thread_value(s, t)});
        let html = templates.render("statuspage.incident.html.hbs", &chrome.context(&t.file_name(), own))?;
        out.push((t.file_name(), html));
    }
    for p in site_pages {
        let own = json!({"heading": p.title, "page": {"title": p.title, "body_html": p.body_html}});
        let html = templates.render("statuspage.page.html.hbs", &chrome.context(&p.file_name(), own))?;
        out.push((p.file_name(), html));
    }
    let own = index_context(s, threads, now);
    let index = templates.render("statuspage.index.html.hbs", &chrome.context("index.html", own))?;
    out.push(("index.html".to_string(), index));
    Ok(out)
}

/// An announcement of `secs` after a fixed time, for tests.
#[cfg(test)]
pub fn entry(id: &str, thread: Option<&str>, sev: Severity, secs: i64) -> Entry {
    Entry {
        run_id: id.into(),
        title: format!("title {id}"),
        summary: None,
        body_html: "<p>b</p>".into(),
        body_text: "b".into(),
        severity: sev,
        thread: thread.map(str::to_string),
        link: None,
        at: Timestamp::from_second(1_775_000_000 + secs).unwrap(),
    }
}

/// English, UTC, no base_url, for tests.
#[cfg(test)]
pub fn settings(org: Org) -> Settings {
    Settings {
        title: "Status".into(),
        org,
        tz: TimeZone::UTC,
        base_url: None,
        recent_days: 30,
        locale: Locale::En,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_safe_and_distinct() {
        assert_eq!(slug("outage-2026-04"), "outage-2026-04");
        let a = slug("Outage 1");
        assert!(a.starts_with("outage-1-") && a.len() == "outage-1-".len() + 8, "{a}");
        assert_ne!(slug("Outage 1"), slug("outage-1"));
        assert!(slug("../../etc").chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(slug("Störung").len(), "st-rung-".len() + 8);
    }

    #[test]
    fn resolved_closes_and_info_updates_do_not_downgrade() {
        let ts = threads(vec![
            entry("b", Some("x"), Severity::Info, 10),
            entry("a", Some("x"), Severity::Major, 0),
            entry("c", None, Severity::Minor, 5),
        ]);
        assert_eq!(ts.len(), 2);
        let x = ts.iter().find(|t| t.name.as_deref() == Some("x")).unwrap();
        assert_eq!(
            x.entries.iter().map(|e| e.run_id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(x.is_open());
        assert_eq!(x.severity(), Severity::Major);
        let ts = threads(vec![
            entry("a", Some("x"), Severity::Major, 0),
            entry("b", Some("x"), Severity::Resolved, 10),
        ]);
        assert!(!ts[0].is_open());
        assert_eq!(ts[0].severity(), Severity::Resolved);
    }

    #[test]
    fn index_orders_most_severe_first() {
        let s = settings(Org::default());
        let ts = threads(vec![
            entry("a", Some("minor"), Severity::Minor, 100),
            entry("b", Some("crit"), Severity::Critical, 0),
            entry("c", Some("major"), Severity::Major, 50),
            entry("d", Some("done"), Severity::Resolved, 10),
        ]);
        let now = Timestamp::from_second(1_775_000_000 + 200).unwrap();
        let v = index_context(&s, &ts, now);
        let names: Vec<&str> = v["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["crit", "major", "minor"]);
        assert_eq!(v["resolved"][0]["name"], "done");
        assert_eq!(v["worst"], "critical");
    }
}
