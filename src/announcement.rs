//! What is sent: a Markdown file with TOML front matter between `+++` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AppError, SourceLocation};
use crate::render::markdown;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Minor,
    Major,
    Critical,
    Resolved,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
            Severity::Resolved => "resolved",
        }
    }
}

/// The front matter, exactly the contract's keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontMatter {
    pub title: String,
    pub summary: Option<String>,
    pub link: Option<String>,
    pub image: Option<String>,
    pub channels: Option<Vec<String>>,
    pub audience: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub thread: Option<String>,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub vars: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Clone)]
pub struct Announcement {
    /// Where it came from, for messages ("notice.md" or "<stdin>").
    pub origin: String,
    /// Folder that relative `image` / `audience` paths are resolved against.
    pub base_dir: PathBuf,
    pub meta: FrontMatter,
    pub body_markdown: String,
    pub body_html: String,
    pub body_text: String,
    /// The file as read; kept in the journal so `resume` renders exactly the same thing.
    pub source: String,
}

impl Announcement {
    pub fn load(path: &Path) -> Result<Announcement, AppError> {
        if path == Path::new("-") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| AppError::invalid(format!("<stdin>: cannot read announcement: {e}")))?;
            let cwd = std::env::current_dir().unwrap_or_default();
            return Announcement::parse("<stdin>", &cwd, s);
        }
        let bytes = std::fs::read(path)
            .map_err(|e| AppError::invalid(format!("{}: cannot read announcement: {e}", path.display())))?;
        let source = String::from_utf8(bytes).map_err(|e| {
            let loc = SourceLocation::from_offset(
                &path.display().to_string(),
                &String::from_utf8_lossy(e.as_bytes()),
                e.utf8_error().valid_up_to(),
            );
            AppError::invalid_at(Some(loc), "announcement is not valid UTF-8")
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Announcement::parse(&path.display().to_string(), &base, source)
    }

    pub fn parse(origin: &str, base_dir: &Path, source: String) -> Result<Announcement, AppError> {
        let text = source.strip_prefix('\u{feff}').unwrap_or(&source);
        let bom = source.len() - text.len();
        let at = |offset: usize| Some(SourceLocation::from_offset(origin, &source, offset));
        let first_line_end = text.find('\n').map_or(text.len(), |i| i + 1);
        if text[..first_line_end].trim_end() != "+++" {
            return Err(AppError::invalid_at(
                at(bom),
                "announcement must start with TOML front matter between '+++' lines (at least `title = \"...\"`)",
            ));
        }
        let fm_start = first_line_end;
        // The closing delimiter is a line that is exactly "+++".
        let mut pos = fm_start;
        let mut fm_end = None;
        while pos < text.len() {
            let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i + 1);
            if text[pos..end].trim_end() == "+++" {
                fm_end = Some((pos, end));
                break;
            }
            pos = end;
        }
        let Some((fm_end, body_start)) = fm_end else {
            return Err(AppError::invalid_at(
                at(bom),
                "front matter is not closed: add a line '+++' after it",
            ));
        };
        let front = &text[fm_start..fm_end];
        let meta: FrontMatter = toml::from_str(front).map_err(|e| {
            let offset = bom + fm_start + e.span().map_or(0, |s| s.start);
            AppError::invalid_at(at(offset), format!("invalid front matter: {}", e.message()))
        })?;
        if meta.title.trim().is_empty() {
            return Err(AppError::invalid_at(
                at(bom + fm_start),
                "front matter: `title` must not be empty",
            ));
        }
        if let Some(img) = &meta.image
            && img.starts_with("http://")
        {
            return Err(AppError::invalid_at(
                at(bom + fm_start + front.find("image").unwrap_or(0)),
                "front matter: `image` must be an https URL or a local file",
            ));
        }
        let body = text[body_start..].trim().to_string();
        Ok(Announcement {
            origin: origin.to_string(),
            base_dir: base_dir.to_path_buf(),
            body_html: markdown::to_html(&body),
            body_text: markdown::to_text(&body),
            body_markdown: body,
            meta,
            source,
        })
    }

    pub fn title(&self) -> &str {
        &self.meta.title
    }

    /// Where a front matter key is, for messages about values that are only checked later.
    pub fn locate(&self, key: &str) -> SourceLocation {
        let off = self.source.find(&format!("\n{key}")).map_or(0, |i| i + 1);
        SourceLocation::from_offset(&self.origin, &self.source, off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Announcement, AppError> {
        Announcement::parse("notice.md", Path::new("."), s.to_string())
    }

    #[test]
    fn every_contract_field() {
        let a = parse(
            "\u{feff}+++\r\ntitle = \"Störung\"\nsummary = \"kurz\"\nlink = \"https://s.example\"\nimage = \"pic.jpg\"\n\
             channels = [\"email\"]\naudience = \"c.csv\"\ntags = [\"t\"]\nthread = \"th\"\nseverity = \"major\"\n\
             [vars]\nhotline = \"030\"\n+++\r\nHallo **Welt**\n",
        )
        .unwrap();
        assert_eq!(a.meta.title, "Störung");
        assert_eq!(a.meta.severity, Severity::Major);
        assert_eq!(a.meta.vars["hotline"].as_str(), Some("030"));
        assert_eq!(a.body_text, "Hallo Welt");
        assert!(a.body_html.contains("<strong>Welt</strong>"));
    }

    #[test]
    fn front_matter_errors_name_file_line_and_column() {
        let err = parse("+++\ntitle = \"x\"\nseverity = \"apocalyptic\"\n+++\nbody")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("notice.md:3:"), "{err}");
        let err = parse("+++\ntitle = \"x\"\ncolour = 1\n+++\n").unwrap_err().to_string();
        assert!(err.starts_with("notice.md:3:1") && err.contains("colour"), "{err}");
        let err = parse("+++\nsummary = \"x\"\n+++\n").unwrap_err().to_string();
        assert!(err.contains("title"), "{err}");
        let err = parse("no front matter").unwrap_err().to_string();
        assert!(err.starts_with("notice.md:1:1"), "{err}");
        let err = parse("+++\ntitle = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("not closed"), "{err}");
    }
}
