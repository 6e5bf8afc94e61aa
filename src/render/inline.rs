//! CSS inlining for HTML email, done once per *shape* of recipient data instead of once per
//! message.
//!
//! Inlining parses the whole document with html5ever and matches every rule against every
//! element: most of the CPU time of a personalised email. Yet within one run the only thing that
//! varies between messages is `recipient.*`, and a recipient's values only ever become escaped
//! text or attribute values. So the template is rendered once with a placeholder in place of
//! each recipient value, that *skeleton* is inlined once, and each message is the inlined
//! skeleton with its own values put back.
//!
//! That is only right when the values do not change the document's structure, and this is
//! checked rather than assumed, for every message:
//! * the message's own rendering must equal the skeleton's rendering with its values put back
//!   (a `{{#if}}`, `{{#each}}`, `eq` or `len` that depends on a value makes them differ);
//! * blank values are kept verbatim in the skeleton (they decide `{{#if}}`, `:empty`, and
//!   where html5ever puts whitespace), so blank and non-blank values never share a skeleton;
//! * each placeholder must survive inlining exactly as often as it was rendered (not inside a
//!   removed `<style>`), and stylesheets with attribute selectors turn the shortcut off (a
//!   selector could match a value).
//!
//! Whenever a check fails the message is inlined on its own, exactly as without the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{Context, Templates};

/// Placeholders are private-use characters around the value's index: no escaping touches them.
const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';
/// Distinct shapes remembered; beyond that, messages are inlined one by one.
const MAX_SHAPES: usize = 64;

/// Inline the `<style>` rules into `style=""` attributes: many mail clients drop `<style>`.
/// Never fetches anything remote.
pub fn inline_css(html: &str) -> Result<String, String> {
    css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_at_rules(true)
        .build()
        .inline(html)
        .map_err(|e| format!("cannot inline the CSS of the HTML template: {e}"))
}

/// A skeleton rendered and inlined, or `None` when this template cannot take the shortcut.
struct Shape {
    rendered: String,
    inlined: String,
}

#[derive(Default)]
pub struct CssCache {
    shapes: Mutex<HashMap<String, Arc<Option<Shape>>>>,
}

impl std::fmt::Debug for CssCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CssCache").finish_non_exhaustive()
    }
}

impl CssCache {
    /// Render the HTML template `name` for `data` and inline its CSS. Same document as
    /// `inline_css(render(..))`, up to how characters are escaped.
    pub fn render(&self, templates: &Templates, name: &str, ctx: &Context) -> Result<String, String> {
        let html = templates.render_ctx(name, ctx)?;
        let data = ctx.data();
        let mut values = Vec::new();
        let skeleton = skeleton(&data["recipient"], &mut values);
        let key = format!("{name}\0{skeleton}");
        let shape = self.shape(&key, || {
            let mut data = data.clone();
            data["recipient"] = skeleton.clone();
            let rendered = templates.render(name, &data)?;
            Shape::new(rendered, values.len())
        })?;
        if let Some(Some(shape)) = shape.as_deref()
            && fill(&shape.rendered, &values) == html
        {
            return Ok(fill(&shape.inlined, &values));
        }
        inline_css(&html)
    }

    fn shape(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Option<Shape>, String>,
    ) -> Result<Option<Arc<Option<Shape>>>, String> {
        if let Some(s) = self.shapes.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(Some(s.clone()));
        }
        if self.shapes.lock().unwrap_or_else(|e| e.into_inner()).len() >= MAX_SHAPES {
            return Ok(None);
        }
        // Made outside the lock: two threads may both make the first one, which is harmless.
        let shape = Arc::new(make()?);
        let mut shapes = self.shapes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Some(shapes.entry(key.to_string()).or_insert(shape).clone()))
    }
}

impl Shape {
    fn new(rendered: String, placeholders: usize) -> Result<Option<Shape>, String> {
        if has_attribute_selector(&rendered) {
            return Ok(None);
        }
        let inlined = inline_css(&rendered)?;
        let survived = (0..placeholders).all(|i| {
            let p = placeholder(i);
            rendered.matches(&p).count() == inlined.matches(&p).count()
        });
        Ok(survived.then_some(Shape { rendered, inlined }))
    }
}

/// `data` with every non-blank string replaced by a placeholder (its text pushed to `values`).
fn skeleton<'a>(data: &'a Value, values: &mut Vec<&'a str>) -> Value {
    match data {
        Value::String(s) if !s.trim().is_empty() => {
            values.push(s);
            Value::String(placeholder(values.len() - 1))
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| skeleton(v, values)).collect()),
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), skeleton(v, values))).collect()),
        other => other.clone(),
    }
}

fn placeholder(i: usize) -> String {
    format!("{OPEN}{i}{CLOSE}")
}

/// `template` with each placeholder replaced by its value, HTML-escaped as the template
/// registry escapes it.
fn fill(template: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(template.len() + values.iter().map(|v| v.len() * 2).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len_utf8()..];
        let value = after
            .find(CLOSE)
            .and_then(|end| Some((after[..end].parse::<usize>().ok()?, end)))
            .and_then(|(i, end)| Some((*values.get(i)?, end)));
        match value {
            Some((v, end)) => {
                out.push_str(&handlebars::html_escape(v));
                rest = &after[end + CLOSE.len_utf8()..];
            }
            // Not one of ours: keep the character (the equality check then decides).
            None => {
                out.push(OPEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether any `<style>` block of the document has an attribute selector (`[lang="de"]`).
fn has_attribute_selector(html: &str) -> bool {
    let lower = html.to_ascii_lowercase();
    lower.split("<style").skip(1).any(|s| {
        let css = s.split("</style").next().unwrap_or("");
        css.contains('[')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn templates(html: &str) -> (tempfile::TempDir, Templates) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.html.hbs"), html).unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        (dir, t)
    }

    /// Parsed and serialised again, so two spellings of the same document compare equal.
    fn normal(html: &str) -> String {
        inline_css(html).unwrap()
    }

    fn both_ways(t: &Templates, data: &Value, cache: &CssCache) -> (String, String) {
        let fast = cache
            .render(t, "t.html.hbs", &Context::new(data.clone(), "a@b.example"))
            .unwrap();
        let slow = inline_css(&t.render("t.html.hbs", data).unwrap()).unwrap();
        (fast, slow)
    }

    const DOC: &str = "<html><head><style>p { color: red } .n { font-weight: bold } span:empty { display: none }</style></head>\
        <body><p>Hallo <span class=\"n\">{{recipient.name}}</span>,</p>\
        <a href=\"mailto:{{recipient.email}}\" title=\"{{recipient.name}}\">x</a>{{{body_html}}}</body></html>";

    #[test]
    fn same_document_as_inlining_each_message() {
        let (_d, t) = templates(DOC);
        let cache = CssCache::default();
        let names = [
            "Anna Müller",
            "O'Brien & <Söhne> \"quoted\" `tick` =eq",
            "",
            "   ",
            "\u{E000}0\u{E001}",
            "Zoë 👩‍👩‍👧",
        ];
        for name in names {
            let data = json!({"recipient": {"name": name, "email": "a@b.example"}, "body_html": "<p>Body</p>"});
            let (fast, slow) = both_ways(&t, &data, &cache);
            assert_eq!(normal(&fast), normal(&slow), "name {name:?}");
            assert!(fast.contains("<p style=\"color: red"), "{fast}");
        }
        // One shape for the non-blank names, one per blank spelling: not one per message.
        assert!(cache.shapes.lock().unwrap().len() <= 4);
    }

    #[test]
    fn plain_names_give_byte_identical_output() {
        let (_d, t) = templates(DOC);
        let cache = CssCache::default();
        for name in ["Anna", "Ben Müller"] {
            let data = json!({"recipient": {"name": name, "email": "x@y.example"}, "body_html": ""});
            let (fast, slow) = both_ways(&t, &data, &cache);
            assert_eq!(fast, slow);
        }
    }

    #[test]
    fn values_that_change_the_structure_fall_back() {
        let doc = "<style>b { color: red } i { color: blue }</style>\
            {{#if (eq recipient.tier \"vip\")}}<b>{{recipient.name}}</b>{{else}}<i>{{recipient.name}}</i>{{/if}}\
            {{#each recipient.tags}}<b>{{this}}</b>{{/each}}";
        let (_d, t) = templates(doc);
        let cache = CssCache::default();
        for (tier, tags) in [("vip", json!(["a", "b"])), ("basic", json!(["c"])), ("vip", json!([]))] {
            let data = json!({"recipient": {"name": "N", "tier": tier, "tags": tags}});
            let (fast, slow) = both_ways(&t, &data, &cache);
            assert_eq!(fast, slow, "tier {tier}");
        }
    }

    #[test]
    fn values_inside_style_or_attribute_selectors_disable_the_shortcut() {
        let (_d, t) = templates("<style>p { color: {{recipient.color}} }</style><p>x</p>");
        let cache = CssCache::default();
        for color in ["red", "blue"] {
            let data = json!({"recipient": {"color": color}});
            let (fast, slow) = both_ways(&t, &data, &cache);
            assert_eq!(fast, slow);
            assert!(fast.contains(color));
        }
        let (_d, t) =
            templates("<html lang=\"{{recipient.locale}}\"><style>[lang=en] p { color: red }</style><p>x</p></html>");
        for locale in ["en", "de"] {
            let data = json!({"recipient": {"locale": locale}});
            let (fast, slow) = both_ways(&t, &data, &cache);
            assert_eq!(fast, slow, "{locale}");
        }
    }

    #[test]
    fn the_built_in_email_template_matches_inlining_each_message() {
        let t = Templates::load(None).unwrap();
        let cache = CssCache::default();
        let recipients = [
            json!({"name": "Anna Müller", "email": "anna@example.de", "tags": ["vip"]}),
            json!({"name": "Ben <b>O'Neil</b> & Co", "email": "ben@example.de", "tags": []}),
            json!({"name": "", "email": "c@example.de", "tags": ["a", "b"]}),
            json!({"name": "Chloé", "email": "d@example.fr", "locale": "fr", "tags": []}),
        ];
        for r in recipients {
            let data = json!({
                "title": "Störung", "severity": "major", "summary": "Kurz", "link": "https://x.example/s",
                "body_html": "<p>Text <strong>wichtig</strong></p>", "org": {"name": "Studio", "phone": "+49 30 1"},
                "recipient": r,
            });
            let ctx = Context::new(data.clone(), "x@example.de");
            let fast = cache.render(&t, "email.html.hbs", &ctx).unwrap();
            let slow = inline_css(&t.render("email.html.hbs", &data).unwrap()).unwrap();
            assert_eq!(normal(&fast), normal(&slow), "{r}");
        }
        // The shortcut was taken: shapes were made and kept.
        let shapes = cache.shapes.lock().unwrap();
        assert!(shapes.values().any(|s| s.is_some()));
    }

    #[test]
    fn fill_leaves_foreign_private_use_characters_alone() {
        assert_eq!(
            fill("a\u{E000}x\u{E001}b\u{E000}0\u{E001}", &["<v>"]),
            "a\u{E000}x\u{E001}b&lt;v&gt;"
        );
        assert_eq!(fill("\u{E000}9\u{E001}", &["v"]), "\u{E000}9\u{E001}");
    }
}
