//! `feed.atom`: an Atom 1.0 feed (RFC 4287) with one entry per announcement, newest first.
//! Written by hand (it is small) with every text escaped for XML.

use sha2::{Digest, Sha256};

use super::site::{Entry, Settings, Thread};
use crate::escape::xml as esc;

/// A stable `urn:uuid:` for a name (RFC 9562 version 8, from SHA-256), for the feed's id when
/// the site's public URL is not configured.
fn name_uuid(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    format!("urn:uuid:{}", uuid::Builder::from_custom_bytes(b).into_uuid())
}

/// A link to a file of the site: absolute with `base_url`, else relative to the feed.
fn href(s: &Settings, file: &str) -> String {
    match &s.base_url {
        Some(b) => format!("{b}/{file}"),
        None => file.to_string(),
    }
}

/// The feed for these threads. `channel` makes the fallback id unique per status page.
pub fn feed(s: &Settings, threads: &[Thread], channel: &str) -> String {
    let mut entries: Vec<(&Thread, &Entry)> = threads
        .iter()
        .flat_map(|t| t.entries.iter().map(move |e| (t, e)))
        .collect();
    entries.sort_by(|a, b| b.1.at.cmp(&a.1.at).then_with(|| b.1.run_id.cmp(&a.1.run_id)));
    let updated = entries
        .first()
        .map_or_else(|| s.iso(jiff::Timestamp::UNIX_EPOCH), |(_, e)| s.iso(e.at));
    let id = match &s.base_url {
        Some(b) => format!("{b}/feed.atom"),
        None => name_uuid(&format!("announce statuspage\0{}\0{channel}", s.org.name)),
    };
    let author = if s.org.name.trim().is_empty() {
        s.title.as_str()
    } else {
        s.org.name.as_str()
    };

    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    x.push_str(&format!("  <title>{}</title>\n", esc(&s.full_title())));
    x.push_str(&format!("  <id>{}</id>\n", esc(&id)));
    x.push_str(&format!("  <updated>{updated}</updated>\n"));
    x.push_str(&format!(
        "  <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
        esc(&href(s, "index.html"))
    ));
    if s.base_url.is_some() {
        x.push_str(&format!(
            "  <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n",
            esc(&href(s, "feed.atom"))
        ));
    }
    x.push_str("  <author>\n");
    x.push_str(&format!("    <name>{}</name>\n", esc(author)));
    if let Some(e) = &s.org.email {
        x.push_str(&format!("    <email>{}</email>\n", esc(e)));
    }
    if let Some(w) = &s.org.website {
        x.push_str(&format!("    <uri>{}</uri>\n", esc(w)));
    }
    x.push_str("  </author>\n");
    x.push_str(&format!(
        "  <generator version=\"{}\">announce</generator>\n",
        env!("CARGO_PKG_VERSION")
    ));
    for (t, e) in entries {
        let when = s.iso(e.at);
        x.push_str("  <entry>\n");
        x.push_str(&format!("    <id>urn:uuid:{}</id>\n", esc(&e.run_id)));
        x.push_str(&format!("    <title>{}</title>\n", esc(&e.title)));
        x.push_str(&format!("    <published>{when}</published>\n"));
        x.push_str(&format!("    <updated>{when}</updated>\n"));
        x.push_str(&format!(
            "    <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n",
            esc(&href(s, &format!("{}#u-{}", t.file_name(), e.run_id)))
        ));
        x.push_str(&format!("    <category term=\"{}\"/>\n", esc(e.severity.as_str())));
        if let Some(sum) = &e.summary {
            x.push_str(&format!("    <summary>{}</summary>\n", esc(sum)));
        }
        let mut html = e.body_html.clone();
        if let Some(l) = &e.link {
            html.push_str(&format!("<p><a href=\"{}\">{}</a></p>", esc(l), esc(l)));
        }
        x.push_str(&format!("    <content type=\"html\">{}</content>\n", esc(&html)));
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_id_is_a_stable_uuid_urn() {
        let a = name_uuid("x");
        assert_eq!(a, name_uuid("x"));
        assert_ne!(a, name_uuid("y"));
        assert!(a.starts_with("urn:uuid:") && a.len() == "urn:uuid:".len() + 36, "{a}");
    }
}
