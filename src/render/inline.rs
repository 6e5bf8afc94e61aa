//! CSS inlining for HTML email, done once per *shape* of recipient data instead of once per
//! message.
//!
//! Inlining parses the whole document with html5ever and matches every rule against every
//! element: most of the CPU time of a personalised email. Yet within one run the only thing that
//! varies between messages is `recipient.*`, and a recipient's values only ever become escaped
//! text or attribute values. So the template is rendered once with a placeholder in place of
//! each recipient value (render/skeleton.rs), that *skeleton* is inlined once, and each message
//! is the inlined skeleton with its own values put back.
//!
//! That is only right when the values do not change the document's structure:
//! * the template must be transparent (render/skeleton.rs: values only reach the output as
//!   text), or else the message's own rendering must equal the skeleton's rendering with its
//!   values put back, checked for every message (a `{{#if}}`, `{{#each}}`, `eq` or `len` that
//!   depends on a value makes them differ);
//! * blank values are kept verbatim in the skeleton (they decide `{{#if}}`, `:empty`, and
//!   where html5ever puts whitespace), so blank and non-blank values never share a skeleton;
//! * each placeholder must survive inlining exactly as often as it was rendered (not inside a
//!   removed `<style>`), and stylesheets with attribute selectors turn the shortcut off (a
//!   selector could match a value).
//!
//! Whenever a check fails the message is inlined on its own, exactly as without the cache.

use super::skeleton::{Placeholders, ShapeCache, shape_of, skeleton_of};
use super::{Context, Templates};

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

#[derive(Default, Debug)]
pub struct CssCache {
    placeholders: Placeholders,
    shapes: ShapeCache<Option<Shape>>,
}

impl CssCache {
    /// Render the HTML template `name` for `data` and inline its CSS. Same document as
    /// `inline_css(render(..))`, up to how characters are escaped.
    ///
    /// A transparent template (render/skeleton.rs) is not rendered per message at all: its
    /// rendering *is* the skeleton's with the values put back. Any other is rendered, and the
    /// shortcut taken only when that rendering equals the filled skeleton.
    pub fn render(&self, templates: &Templates, name: &str, ctx: &Context) -> Result<String, String> {
        let name = templates.resolve(name, ctx.lang);
        let html = if templates.is_transparent(name) {
            None
        } else {
            Some(templates.render_ctx(name, ctx)?)
        };
        let (key, values) = shape_of(name, ctx);
        let shape = self.shapes.get_or_make(&key, || {
            let mut data = ctx.data().clone();
            data["recipient"] = skeleton_of(&self.placeholders, ctx);
            let rendered = templates.render_in(name, ctx.lang, &data)?;
            Shape::new(rendered, values.len(), &self.placeholders)
        })?;
        let fill = |t: &str| self.placeholders.fill(t, &values, templates.escape_of(name));
        if let Some(Some(shape)) = shape.as_deref()
            && html.as_ref().is_none_or(|h| fill(&shape.rendered) == *h)
        {
            return Ok(fill(&shape.inlined));
        }
        match html {
            Some(h) => inline_css(&h),
            None => inline_css(&templates.render_ctx(name, ctx)?),
        }
    }
}

impl Shape {
    fn new(rendered: String, placeholders: usize, p: &Placeholders) -> Result<Option<Shape>, String> {
        if has_attribute_selector(&rendered) {
            return Ok(None);
        }
        let inlined = inline_css(&rendered)?;
        let survived = (0..placeholders).all(|i| {
            let p = p.placeholder(i);
            rendered.matches(&p).count() == inlined.matches(&p).count()
        });
        Ok(survived.then_some(Shape { rendered, inlined }))
    }
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
    use serde_json::{Value, json};

    fn templates(html: &str) -> (tempfile::TempDir, Templates) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.html.hbs"), html).unwrap();
        let t = Templates::load(crate::channel::builtin_templates(), Some(dir.path())).unwrap();
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
        assert!(cache.shapes.values().len() <= 4);
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
        let t = Templates::load(crate::channel::builtin_templates(), None).unwrap();
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
        assert!(cache.shapes.values().iter().any(|s| s.is_some()));
    }
}
