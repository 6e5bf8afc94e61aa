//! `pages_dir`: the emergency website's own pages (FAQ, prices, appointments). Every `*.md` in
//! the folder is one page in the announcement format (front matter `title`, optional `order`),
//! written as `<slug>.html` and linked from every page of the site.

use std::path::Path;

use serde::Deserialize;

use crate::announcement::{MAX_BODY_BYTES, parse_front_matter};
use crate::error::{AppError, SourceLocation};
use crate::render::markdown;

use super::site::slug;

/// A page's front matter: exactly these keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageFront {
    title: String,
    order: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub slug: String,
    pub title: String,
    pub order: Option<i64>,
    pub body_html: String,
}

impl Page {
    pub fn file_name(&self) -> String {
        format!("{}.html", self.slug)
    }
}

/// Names the site writes itself; a page must not take them.
const RESERVED: &[&str] = &["index", "feed", "api"];

fn parse(origin: &str, stem: &str, source: &str) -> Result<Page, AppError> {
    let (front, parts): (PageFront, _) = parse_front_matter(origin, source)?;
    if front.title.trim().is_empty() {
        return Err(AppError::invalid_at(
            Some(SourceLocation::from_offset(origin, source, parts.front_at)),
            "front matter: `title` must not be empty",
        ));
    }
    let slug = slug(stem);
    if RESERVED.contains(&slug.as_str()) || slug.starts_with("incident-") {
        return Err(AppError::invalid(format!(
            "{origin}: the page would be {slug}.html, which the status page writes itself \
             (index, feed, api and incident-*); rename the file"
        )));
    }
    Ok(Page {
        slug,
        title: front.title,
        order: front.order,
        body_html: markdown::to_html(parts.body.trim()),
    })
}

/// Every page of `dir`, in link order: `order` (pages without one last), then title. A missing
/// folder is an error too: the config names it, so its absence is a mistake.
pub fn load(dir: &Path) -> Result<Vec<Page>, AppError> {
    let shown = dir.display();
    let entries =
        std::fs::read_dir(dir).map_err(|e| AppError::invalid(format!("{shown}: cannot read pages_dir: {e}")))?;
    let mut files: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.ends_with(".md") && !name.starts_with('.')
        })
        .collect();
    files.sort();
    let mut pages = Vec::with_capacity(files.len());
    for path in files {
        let origin = path.display().to_string();
        let cannot = |e: &dyn std::fmt::Display| AppError::invalid(format!("{origin}: cannot read page: {e}"));
        // Like an announcement's body, a page is a text for people, not a file dump.
        if std::fs::metadata(&path).map_err(|e| cannot(&e))?.len() > MAX_BODY_BYTES as u64 {
            return Err(cannot(&format!("larger than {MAX_BODY_BYTES} bytes")));
        }
        let source = std::fs::read_to_string(&path).map_err(|e| cannot(&e))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        pages.push(parse(&origin, stem, &source)?);
    }
    pages.sort_by(|a, b| {
        (a.order.is_none(), a.order, &a.title, &a.slug).cmp(&(b.order.is_none(), b.order, &b.title, &b.slug))
    });
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_is_title_and_order_only() {
        let p = parse("faq.md", "faq", "+++\ntitle = \"FAQ\"\norder = 2\n+++\n# Fragen\n").unwrap();
        assert_eq!((p.slug.as_str(), p.title.as_str(), p.order), ("faq", "FAQ", Some(2)));
        assert!(p.body_html.contains("<h1>Fragen</h1>"), "{}", p.body_html);
        let e = parse("faq.md", "faq", "+++\ntitle = \"FAQ\"\nsevrity = 1\n+++\nx").unwrap_err();
        assert!(e.to_string().starts_with("faq.md:3:1: "), "{e}");
        let e = parse("x.md", "x", "+++\norder = \"first\"\n+++\nx").unwrap_err();
        assert!(e.to_string().starts_with("x.md:2:"), "{e}");
        for stem in ["index", "feed", "api", "incident-phone"] {
            let e = parse("p.md", stem, "+++\ntitle = \"P\"\n+++\nx").unwrap_err();
            assert!(e.to_string().contains("rename the file"), "{e}");
        }
    }
}
