//! The `statuspage` channel: a static emergency website in `dir` — `index.html` (open incidents,
//! most severe first, then recently resolved ones), one `incident-<thread>.html` per thread
//! (updates newest first), the `pages_dir` pages, `feed.atom` and the Statuspage-shaped JSON
//! under `api/v2/`, all in the `[org] locale` with the org's contact block — that can be hosted
//! anywhere, in particular not on the broken server.
//!
//! The content comes from the journal, not from this one announcement: every announcement ever
//! sent through this channel (deliveries `sent`/`delivered`, plus the run being sent now), read
//! through the [`History`] the dispatcher hands each delivery, so
//! the site is always complete and can be regenerated at any time; sending again is harmless
//! (`resend_is_safe`). Files are replaced atomically (temp file + rename). An optional
//! `publish_command` runs afterwards (`sh -c`, `{dir}` replaced by the shell-quoted folder);
//! its failure fails the delivery with the tail of its stderr.

pub mod api;
pub mod atom;
mod config;
pub mod labels;
pub mod pages;
pub mod site;

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::announcement::{Announcement, Severity};
use crate::channel::webhook::http::tail;
use crate::channel::{
    BuildContext, Channel, Delivery, DeliveryError, History, Meta, Probe, Reach, Receipt, Rendered, Stat,
};
use crate::escape::shell_quote;
use crate::render::{Context, Templates};

use site::{Entry, Settings};

pub use config::StatuspageConfig;

const DEFAULT_RECENT_DAYS: u32 = 30;

pub struct Statuspage {
    meta: Meta,
    site: Arc<Site>,
}

/// Everything needed to (re)generate the site; shared with the blocking writer task.
pub struct Site {
    name: String,
    dir: PathBuf,
    templates_dir: Option<PathBuf>,
    /// `pages_dir`, absolute.
    pages_dir: Option<PathBuf>,
    publish_command: Option<String>,
    settings: Settings,
}

impl std::ops::Deref for Statuspage {
    type Target = Site;
    fn deref(&self) -> &Site {
        &self.site
    }
}

/// Write a file of the public site atomically. Unlike `fsutil::write_private_atomic` (0600, for
/// customer data) these files are meant to be served: 0644 files in 0755 folders, so a strict
/// umask cannot hide them from the web server or the publish command.
fn write_public_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create_public_dir(path.parent().unwrap_or(Path::new(".")))?;
    crate::fsutil::write_atomic(path, bytes, 0o644)
}

fn create_public_dir(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

impl Statuspage {
    pub fn new(name: &str, cfg: &StatuspageConfig, ctx: &BuildContext) -> Result<Statuspage, String> {
        let site = Site::new(name, cfg, ctx)?;
        Ok(Statuspage {
            meta: Meta::new::<StatuspageConfig>(name, Reach::Broadcast(site.target())).concurrency(1),
            site: Arc::new(site),
        })
    }

    /// The entry of the announcement being planned, from its template context.
    fn entry_from_context(ctx: &Context) -> Entry {
        let d = ctx.data();
        let s = |k: &str| d[k].as_str().map(str::to_string);
        Entry {
            run_id: s("run_id").unwrap_or_default(),
            title: s("title").unwrap_or_default(),
            summary: s("summary"),
            body_html: s("body_html").unwrap_or_default(),
            body_text: s("body_text").unwrap_or_default(),
            severity: serde_json::from_value::<Severity>(d["severity"].clone()).unwrap_or_default(),
            thread: s("thread"),
            link: s("link"),
            at: jiff::Timestamp::now(),
        }
    }
}

impl Site {
    pub fn new(name: &str, cfg: &StatuspageConfig, ctx: &BuildContext) -> Result<Site, String> {
        let at = format!("[channels.{name}]");
        if cfg.dir.trim().is_empty() {
            return Err(format!("{at} dir is empty"));
        }
        let base_url = match &cfg.base_url {
            None => None,
            Some(u) => {
                crate::channel::http::check_url(&format!("{at} base_url"), u)?;
                Some(u.trim().trim_end_matches('/').to_string())
            }
        };
        if let Some(c) = &cfg.publish_command
            && c.trim().is_empty()
        {
            return Err(format!("{at} publish_command is empty"));
        }
        let locale = ctx.org.locale;
        let title = cfg
            .title
            .clone()
            .unwrap_or_else(|| labels::label(locale, "title").to_string());
        let absolute = |p: &str| std::path::absolute(ctx.resolve(p));
        Ok(Site {
            name: name.to_string(),
            // Absolute: the report names it, and publish_command runs inside it.
            dir: absolute(&cfg.dir).map_err(|e| format!("{at} dir: {e}"))?,
            templates_dir: ctx.templates_dir.map(std::path::Path::to_path_buf),
            pages_dir: match &cfg.pages_dir {
                Some(p) => Some(absolute(p).map_err(|e| format!("{at} pages_dir: {e}"))?),
                None => None,
            },
            publish_command: cfg.publish_command.clone(),
            settings: Settings {
                title,
                org: ctx.org.clone(),
                tz: ctx.timezone.clone(),
                base_url,
                recent_days: cfg.recent_days.unwrap_or(DEFAULT_RECENT_DAYS),
                locale,
            },
        })
    }

    /// The report's recipient: the public URL, or the folder.
    fn target(&self) -> String {
        self.settings
            .base_url
            .clone()
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    fn route(&self) -> String {
        if self.publish_command.is_some() {
            "dir + publish_command".into()
        } else {
            "dir".into()
        }
    }

    /// Every announcement sent through this channel, plus the run `current` (being sent now).
    fn entries(&self, history: &dyn History, current: &str) -> Result<Vec<Entry>, String> {
        let mut out = Vec::new();
        for run in history.published(&self.name, current)? {
            let ann = match Announcement::parse(&run.origin, Path::new(&run.base_dir), run.announcement) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(channel = %self.name, run = %run.run_id, "left off the status page: {e}");
                    continue;
                }
            };
            let at = run
                .started_at
                .parse::<jiff::Timestamp>()
                .unwrap_or_else(|_| jiff::Timestamp::now());
            out.push(Entry {
                run_id: run.run_id.clone(),
                title: ann.meta.title.clone(),
                summary: ann.meta.summary.clone(),
                body_html: ann.body_html.clone(),
                body_text: ann.body_text.clone(),
                severity: ann.meta.severity,
                thread: ann.meta.thread.clone(),
                link: ann.meta.link.clone(),
                at,
            });
        }
        Ok(out)
    }

    /// The `pages_dir` pages (none without one).
    fn site_pages(&self) -> Result<Vec<pages::Page>, String> {
        self.pages_dir
            .as_deref()
            .map_or(Ok(Vec::new()), |d| pages::load(d).map_err(|e| e.to_string()))
    }

    /// Every file of the site, `(path under dir, bytes)`, the index last: a pure function of
    /// the threads, the pages and the day, so regenerating gives the same bytes.
    pub fn files(
        &self,
        templates: &Templates,
        threads: &[site::Thread],
        site_pages: &[pages::Page],
        now: jiff::Timestamp,
    ) -> Result<Vec<(String, String)>, String> {
        let mut html = site::pages(templates, &self.settings, threads, site_pages, now)?;
        let index = html.pop().expect("pages end with the index");
        html.extend(api::files(&self.settings, threads, &self.name));
        html.push(("feed.atom".into(), atom::feed(&self.settings, threads, &self.name)));
        html.push(index);
        Ok(html)
    }

    /// Regenerate the whole site. Returns the index path.
    pub fn generate(&self, history: &dyn History, current: &str) -> Result<PathBuf, DeliveryError> {
        // In the org's language, as planning checked them: a user's `NAME.de.hbs` is the site's
        // template when the site speaks German.
        let templates = Templates::load_for(
            crate::channel::builtin_templates(),
            self.templates_dir.as_deref(),
            self.settings.locale,
        )
        .map_err(|e| DeliveryError::permanent(format!("templates: {e}")))?;
        let entries = self
            .entries(history, current)
            .map_err(|e| DeliveryError::transient(format!("cannot read the journal: {e}")))?;
        let site_pages = self.site_pages().map_err(DeliveryError::permanent)?;
        let threads = site::threads(entries);
        let files = self
            .files(&templates, &threads, &site_pages, jiff::Timestamp::now())
            .map_err(|e| DeliveryError::permanent(format!("status page template: {e}")))?;
        // Pages first, the index (which links them) last.
        for (file, text) in files {
            let p = self.dir.join(file);
            write_public_atomic(&p, text.as_bytes())
                .map_err(|e| DeliveryError::transient(format!("cannot write {}: {e}", p.display())))?;
        }
        Ok(self.dir.join("index.html"))
    }

    /// Run `publish_command` with `sh -c` inside the folder: `{dir}` becomes the shell-quoted
    /// folder; without `{dir}` the folder is appended as the last argument. Also in the
    /// environment as `ANNOUNCE_STATUSPAGE_DIR`. Returns the output's tail.
    async fn publish(&self, command: &str) -> Result<String, DeliveryError> {
        let dir = self.dir.display().to_string();
        let line = if command.contains("{dir}") {
            command.replace("{dir}", &shell_quote(&dir))
        } else {
            format!("{command} {}", shell_quote(&dir))
        };
        let out = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .env("ANNOUNCE_STATUSPAGE_DIR", &self.dir)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| DeliveryError::permanent(format!("publish_command: cannot run sh: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return Ok(tail(&format!("{stdout}\n{stderr}"), 300));
        }
        let status = match out.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        let detail = if stderr.trim().is_empty() {
            tail(&stdout, 500)
        } else {
            tail(&stderr, 500)
        };
        Err(DeliveryError::Permanent {
            message: format!("publish_command failed ({status}): {detail}"),
            route: Some(self.route()),
        })
    }
}

#[async_trait]
impl Channel for Statuspage {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Regenerating writes the same files again.
    fn resend_is_safe(&self) -> bool {
        true
    }

    /// Renders this announcement's pages with the status page templates, so a template error
    /// stops the run before anything is sent.
    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let entry = Self::entry_from_context(ctx);
        let threads = site::threads(vec![entry]);
        // Read (and check) the pages now, so a bad one stops the run before anything is sent.
        let site_pages = self.site_pages()?;
        let pages = site::pages(templates, &self.settings, &threads, &site_pages, jiff::Timestamp::now())?;
        let t = &threads[0];
        let file = t.file_name();
        let html = pages.into_iter().find(|(f, _)| *f == file).map(|(_, h)| h);
        Ok(Rendered {
            subject: None,
            text: format!(
                "{} [{}] on {}",
                t.latest().title,
                t.latest().severity.as_str(),
                self.dir.join(&file).display()
            ),
            html,
            weight: 1,
            media: Default::default(),
            language: None,
            stats: vec![
                Stat::new("status page thread", t.name.as_deref().unwrap_or("(none)")),
                Stat::new("status page file", file),
            ],
        })
    }

    async fn deliver(&self, d: &Delivery, _msg: &Rendered) -> Result<Receipt, DeliveryError> {
        let site = self.site.clone();
        let (history, run_id) = (d.history.clone(), d.run_id.clone());
        let index = tokio::task::spawn_blocking(move || site.generate(history.as_ref(), &run_id))
            .await
            .map_err(|e| DeliveryError::transient(format!("status page writer failed: {e}")))??;
        if let Some(cmd) = &self.publish_command {
            let output = self.publish(cmd).await?;
            if !output.is_empty() {
                tracing::info!(channel = %self.name, "publish_command: {output}");
            }
        }
        Ok(Receipt {
            provider_id: Some(index.display().to_string()),
            route: Some(self.route()),
        })
    }

    async fn check(&self) -> Vec<Probe> {
        let probe = (|| -> io::Result<()> {
            create_public_dir(&self.dir)?;
            let p = self.dir.join(format!(".announce-check.{}", std::process::id()));
            write_public_atomic(&p, b"ok")?;
            fs::remove_file(&p)
        })();
        let publish = self
            .publish_command
            .as_ref()
            .map_or(String::new(), |_| "; publish_command is set (not run by check)".into());
        let mut probes = vec![Probe::folder(self.name(), &self.dir, probe, "write to", &publish)];
        if let Some(dir) = &self.pages_dir {
            let pages = self.site_pages();
            probes.push(Probe {
                subject: format!("{} pages_dir", self.name()),
                ok: pages.is_ok(),
                detail: pages.map_or_else(|e| e, |p| format!("{} pages in {}", p.len(), dir.display())),
            });
        }
        probes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Org;

    /// The files depend only on what was announced, not on when or in which order they are
    /// generated: regenerating later writes the same bytes.
    #[test]
    fn regenerating_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("p")).unwrap();
        std::fs::write(dir.path().join("p/faq.md"), "+++\ntitle = \"FAQ\"\n+++\n- a\n").unwrap();
        let org = Org {
            name: "Studio".into(),
            phone: Some("+49 (0)30 1234567".into()),
            ..Org::default()
        };
        let site = Site {
            name: "status".into(),
            dir: dir.path().join("site"),
            templates_dir: None,
            pages_dir: Some(dir.path().join("p")),
            publish_command: None,
            settings: site::settings(org),
        };
        let templates = Templates::load(crate::channel::builtin_templates(), None).unwrap();
        let pages = site.site_pages().unwrap();
        let mut entries = vec![
            site::entry("a", Some("x"), Severity::Major, 0),
            site::entry("b", None, Severity::Info, 5),
            site::entry("c", Some("x"), Severity::Resolved, 10),
            site::entry("d", Some("y"), Severity::Minor, 20),
        ];
        let now = jiff::Timestamp::from_second(1_775_000_100).unwrap();
        let first = site
            .files(&templates, &site::threads(entries.clone()), &pages, now)
            .unwrap();
        entries.reverse();
        let later = now + jiff::SignedDuration::from_hours(2);
        let again = site.files(&templates, &site::threads(entries), &pages, later).unwrap();
        assert_eq!(first, again);
        let names: Vec<&str> = first.iter().map(|(f, _)| f.as_str()).collect();
        for f in [
            "faq.html",
            "api/v2/status.json",
            "api/v2/summary.json",
            "api/v2/incidents.json",
            "feed.atom",
        ] {
            assert!(names.contains(&f), "{names:?}");
        }
        assert_eq!(names.last(), Some(&"index.html"), "the index is written last");
        // The trunk 0 in "(0)" is not dialled from abroad: E.164 leaves it out.
        assert!(first.last().unwrap().1.contains("href=\"tel:+49301234567\""));
    }
}
