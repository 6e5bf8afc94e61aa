//! What is sent: a Markdown file with TOML front matter between `+++` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{AppError, SourceLocation};
use crate::render::lang::Lang;
use crate::render::markdown;

/// The largest body accepted: it is copied into every message (one email per recipient), so a
/// bigger one means gigabytes of memory and outbox for a text no one reads in full.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// What is read of the file at most: the body plus room for the front matter.
const MAX_FILE_BYTES: usize = MAX_BODY_BYTES + (64 << 10);

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
    /// Overrides `[reach] order` for this announcement.
    pub reach: Option<Vec<String>>,
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
    /// `notice.LANG.md` files beside it, by language: what the people of that language get,
    /// the main file's values filled in where it has none.
    pub translations: Vec<(Lang, Announcement)>,
}

/// The front matter of a translation: only what is said in a language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TranslatedMatter {
    title: Option<String>,
    summary: Option<String>,
    link: Option<String>,
    image: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, toml::Value>,
}

/// The parts of a file with front matter, offsets into its source.
pub struct Sections<'s> {
    pub front: &'s str,
    /// Where `front` starts in the source.
    pub front_at: usize,
    pub body: &'s str,
    pub body_at: usize,
}

impl Announcement {
    pub fn load(path: &Path) -> Result<Announcement, AppError> {
        if path == Path::new("-") {
            let s = utf8(
                "<stdin>",
                read_bounded("<stdin>", std::io::stdin().lock())?,
                "announcement",
            )?;
            let cwd = std::env::current_dir().unwrap_or_default();
            return Announcement::parse("<stdin>", &cwd, s);
        }
        let shown = path.display().to_string();
        let file = std::fs::File::open(path)
            .map_err(|e| AppError::invalid(format!("{shown}: cannot read announcement: {e}")))?;
        let source = utf8(&shown, read_bounded(&shown, file)?, "announcement")?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Announcement::parse(&shown, &base, source)?.with_translations_of(path)
    }

    /// The `NAME.LANG.md` files beside `path` (`notice.en.md` for `notice.md`), read and checked.
    pub fn with_translations_of(mut self, path: &Path) -> Result<Announcement, AppError> {
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            return Ok(self);
        };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(self);
        };
        let mut found: Vec<(Lang, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let lang = name
                    .strip_prefix(stem)?
                    .strip_prefix('.')?
                    .strip_suffix(ext)?
                    .strip_suffix('.')?;
                let is_code = lang.bytes().all(|b| b.is_ascii_lowercase());
                Some((Lang::of_tag(lang).filter(|l| is_code && l.as_str() == lang)?, e.path()))
            })
            .filter(|(_, p)| p.is_file())
            .collect();
        found.sort();
        for (lang, file) in found {
            let shown = file.display().to_string();
            let bytes = std::fs::File::open(&file)
                .map_err(|e| AppError::invalid(format!("{shown}: cannot read translation: {e}")))
                .and_then(|f| read_bounded(&shown, f))?;
            let t = self.translation(&shown, utf8(&shown, bytes, "translation")?)?;
            self.translations.push((lang, t));
        }
        Ok(self)
    }

    fn translation(&self, origin: &str, source: String) -> Result<Announcement, AppError> {
        let at = |offset: usize| Some(SourceLocation::from_offset(origin, &source, offset));
        let s = sections(origin, &source)?;
        let tm: TranslatedMatter = toml::from_str(s.front).map_err(|e| {
            let offset = s.front_at + e.span().map_or(0, |s| s.start);
            AppError::invalid_at(
                at(offset),
                format!(
                    "invalid front matter of a translation (it may hold title, summary, link, image and [vars]): {}",
                    e.message()
                ),
            )
        })?;
        check_urls(s.front, tm.link.as_deref(), tm.image.as_deref(), &at, s.front_at)?;
        let body = checked_body(s.body, s.body_at, &at)?;
        let mut meta = self.meta.clone();
        meta.vars.extend(tm.vars);
        meta.title = tm.title.filter(|t| !t.trim().is_empty()).unwrap_or(meta.title);
        meta.summary = tm.summary.or(meta.summary);
        meta.link = tm.link.or(meta.link);
        meta.image = tm.image.or(meta.image);
        let (body_markdown, body_html, body_text) = if body.is_empty() {
            (
                self.body_markdown.clone(),
                self.body_html.clone(),
                self.body_text.clone(),
            )
        } else {
            (body.clone(), markdown::to_html(&body), markdown::to_text(&body))
        };
        Ok(Announcement {
            origin: origin.to_string(),
            base_dir: self.base_dir.clone(),
            meta,
            body_markdown,
            body_html,
            body_text,
            source,
            translations: Vec::new(),
        })
    }

    /// What the people of `lang` read: its translation, else the main file.
    pub fn version(&self, lang: Lang) -> &Announcement {
        self.translations
            .iter()
            .find(|(l, _)| *l == lang)
            .map_or(self, |(_, t)| t)
    }

    pub fn parse(origin: &str, base_dir: &Path, source: String) -> Result<Announcement, AppError> {
        let at = |offset: usize| Some(SourceLocation::from_offset(origin, &source, offset));
        let (meta, s): (FrontMatter, _) = parse_front_matter(origin, &source)?;
        if meta.title.trim().is_empty() {
            return Err(AppError::invalid_at(
                at(s.front_at),
                "front matter: `title` must not be empty",
            ));
        }
        check_urls(s.front, meta.link.as_deref(), meta.image.as_deref(), &at, s.front_at)?;
        let body = checked_body(s.body, s.body_at, &at)?;
        Ok(Announcement {
            origin: origin.to_string(),
            base_dir: base_dir.to_path_buf(),
            body_html: markdown::to_html(&body),
            body_text: markdown::to_text(&body),
            body_markdown: body,
            meta,
            source,
            translations: Vec::new(),
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

    /// The front matter's `reach` list, each name with where it is written.
    pub fn reach_order(&self) -> Option<Vec<(String, SourceLocation)>> {
        let names = self.meta.reach.as_ref()?;
        let key = self.locate("reach");
        let mut from = key.offset;
        Some(
            names
                .iter()
                .map(|n| {
                    let quoted = format!("\"{n}\"");
                    let off = self.source[from..].find(&quoted).map_or(key.offset, |i| from + i);
                    from = off.max(from);
                    (n.clone(), SourceLocation::from_offset(&self.origin, &self.source, off))
                })
                .collect(),
        )
    }
}

/// Split `source` (announcement format: TOML front matter between `+++` lines, then Markdown)
/// and read its front matter as `T`; errors name `origin` with line and column.
pub fn parse_front_matter<'s, T: serde::de::DeserializeOwned>(
    origin: &str,
    source: &'s str,
) -> Result<(T, Sections<'s>), AppError> {
    let s = sections(origin, source)?;
    let meta: T = toml::from_str(s.front).map_err(|e| {
        let offset = s.front_at + e.span().map_or(0, |s| s.start);
        AppError::invalid_at(
            Some(SourceLocation::from_offset(origin, source, offset)),
            format!("invalid front matter: {}", e.message()),
        )
    })?;
    Ok((meta, s))
}

/// Spans of the front matter values that must be URLs (read again beside [`FrontMatter`]).
#[derive(Deserialize, Default)]
struct UrlSpans {
    link: Option<toml::Spanned<toml::Value>>,
    image: Option<toml::Spanned<toml::Value>>,
}

/// The front matter and body of a file that starts with `+++` lines.
fn sections<'s>(origin: &str, source: &'s str) -> Result<Sections<'s>, AppError> {
    let text = source.strip_prefix('\u{feff}').unwrap_or(source);
    let bom = source.len() - text.len();
    let at = |offset: usize| Some(SourceLocation::from_offset(origin, source, offset));
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
    Ok(Sections {
        front: &text[fm_start..fm_end],
        front_at: bom + fm_start,
        body: &text[body_start..],
        body_at: bom + body_start,
    })
}

/// `image` and `link` as the contract allows them; a refusal points at the value itself.
fn check_urls(
    front: &str,
    link: Option<&str>,
    image: Option<&str>,
    at: &dyn Fn(usize) -> Option<SourceLocation>,
    front_at: usize,
) -> Result<(), AppError> {
    let spans: UrlSpans = toml::from_str(front).unwrap_or_default();
    let value_at = |v: &Option<toml::Spanned<toml::Value>>, key: &str| {
        let off = v
            .as_ref()
            .map_or_else(|| front.find(key).unwrap_or(0), |v| v.span().start);
        at(front_at + off)
    };
    if let Some(img) = image
        && img.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("http://"))
    {
        return Err(AppError::invalid_at(
            value_at(&spans.image, "image"),
            "front matter: `image` must be an https URL or a local file",
        ));
    }
    if let Some(link) = link {
        check_link(link)
            .map_err(|e| AppError::invalid_at(value_at(&spans.link, "link"), format!("front matter: {e}")))?;
    }
    Ok(())
}

/// The body, trimmed, if it is not too long.
fn checked_body(body: &str, body_at: usize, at: &dyn Fn(usize) -> Option<SourceLocation>) -> Result<String, AppError> {
    let body = body.trim().to_string();
    if body.len() > MAX_BODY_BYTES {
        return Err(AppError::invalid_at(
            at(body_at),
            format!(
                "the announcement body has {} bytes; at most {MAX_BODY_BYTES} (1 MiB) are accepted: \
                 put long texts on a web page and link to it",
                body.len()
            ),
        ));
    }
    Ok(body)
}

/// `link` ends up in `href`s (email button, status page, feed): only an absolute http(s) URL
/// is harmless there; `javascript:`, `data:` and relative links are not.
pub fn check_link(link: &str) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "`link` must be an absolute http or https URL ({why}): {link:?}"
        ))
    };
    // The value goes into templates verbatim; browsers drop whitespace and controls inside
    // URLs, which is how "java\tscript:" gets past a scheme check.
    if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("it contains spaces or control characters");
    }
    match reqwest::Url::parse(link) {
        Err(e) => refuse(&e.to_string()),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => refuse(&format!("{}: is not allowed", u.scheme())),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => refuse("it has no host"),
        Ok(_) => Ok(()),
    }
}

/// The file's text; invalid UTF-8 is refused at its place.
fn utf8(shown: &str, bytes: Vec<u8>, what: &str) -> Result<String, AppError> {
    String::from_utf8(bytes).map_err(|e| {
        let loc = SourceLocation::from_offset(
            shown,
            &String::from_utf8_lossy(e.as_bytes()),
            e.utf8_error().valid_up_to(),
        );
        AppError::invalid_at(Some(loc), format!("{what} is not valid UTF-8"))
    })
}

/// Read at most [`MAX_FILE_BYTES`]: a huge file is refused without being held in memory.
fn read_bounded(shown: &str, r: impl std::io::Read) -> Result<Vec<u8>, AppError> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(r, MAX_FILE_BYTES as u64 + 1), &mut bytes)
        .map_err(|e| AppError::invalid(format!("{shown}: cannot read announcement: {e}")))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(AppError::invalid(format!(
            "{shown}: the announcement is larger than {MAX_FILE_BYTES} bytes; its body may have at most \
             {MAX_BODY_BYTES} (1 MiB): put long texts on a web page and link to it"
        )));
    }
    Ok(bytes)
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

    #[test]
    fn links_must_be_absolute_http_urls_and_errors_point_at_the_value() {
        for (link, why) in [
            ("javascript:alert(document.cookie)", "javascript"),
            ("JavaScript:alert(1)", "javascript"),
            ("data:text/html;base64,PHNjcmlwdD4=", "data"),
            ("status.html", "relative"),
            ("/status", "relative"),
            ("//evil.example/x", "relative"),
            ("java\tscript:alert(1)", "control"),
            ("https://", "host"),
            ("mailto:a@example.de", "mailto"),
        ] {
            let src = format!("+++\ntitle = \"x\"\nlink   =   {}\n+++\nbody", toml::Value::from(link));
            let err = parse(&src).unwrap_err().to_string();
            assert!(err.starts_with("notice.md:3:12: "), "{why}: {err}");
            assert!(err.contains("absolute http or https URL"), "{why}: {err}");
        }
        for ok in ["https://status.example.de", "http://status.example.de/a?b=c#d"] {
            let a = parse(&format!("+++\ntitle = \"x\"\nlink = \"{ok}\"\n+++\n")).unwrap();
            assert_eq!(a.meta.link.as_deref(), Some(ok));
        }
    }

    #[test]
    fn a_body_over_one_mib_is_refused_at_its_first_line() {
        let body = "a".repeat(MAX_BODY_BYTES + 1);
        let err = parse(&format!("+++\ntitle = \"x\"\n+++\n{body}"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("notice.md:4:1: ") && err.contains("1 MiB"), "{err}");
        let body = "a".repeat(MAX_BODY_BYTES);
        assert!(parse(&format!("+++\ntitle = \"x\"\n+++\n{body}")).is_ok());
    }
}
