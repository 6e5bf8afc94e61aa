//! Rendering a template once per *shape* of recipient data instead of once per message.
//!
//! Within one channel of one run, the only part of the template context that varies between
//! messages is `recipient.*`. For most templates, including every built-in one, a recipient's
//! values only ever reach the output as text: `{{recipient.name}}`, escaped as the template's
//! registry escapes, or as the condition of an `{{#if}}`. [`transparent`] decides that from the
//! compiled template. For such a template, the *skeleton* — the template rendered with a
//! placeholder in place of each non-blank recipient value — is rendered once, and each message
//! is the skeleton with its values, escaped, put back ([`fill`]). Blank values are kept
//! verbatim (they decide `{{#if}}`), so the shape of the data (its keys, its blank values, the
//! lengths of its lists, its numbers) is part of the cache key.
//!
//! Everything else (a helper that looks at a value such as `eq` or `len`, `{{#each}}` or
//! `{{#with}}` over recipient data, `{{{raw}}}` output in HTML, partials, paths that can reach
//! the whole context like `this`, `..` or `@root` as a helper argument) renders each message
//! with handlebars as before.
//!
//! Placeholders are private-use characters around a per-cache random nonce and the value's
//! index, so no text of the announcement can pass for one, and no escaping touches them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement};
use handlebars::{Path, PathSeg};
use serde_json::Value;

use super::{Context, Templates};

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';
/// Distinct shapes remembered per cache; beyond that, messages are rendered one by one.
pub const MAX_SHAPES: usize = 64;

/// What the template registry does to a value before writing it.
pub type Escape = fn(&str) -> String;

/// Placeholders of one cache.
#[derive(Debug, Clone)]
pub struct Placeholders {
    nonce: String,
}

impl Default for Placeholders {
    fn default() -> Self {
        // The random tail of a v7 UUID: 62 random bits, fresh per cache.
        let id = uuid::Uuid::now_v7().simple().to_string();
        Placeholders {
            nonce: id[16..].to_string(),
        }
    }
}

impl Placeholders {
    pub fn placeholder(&self, i: usize) -> String {
        format!("{OPEN}{}.{i}{CLOSE}", self.nonce)
    }

    /// `data` with every non-blank string replaced by a placeholder (its text pushed to `values`).
    pub fn skeleton<'a>(&self, data: &'a Value, values: &mut Vec<&'a str>) -> Value {
        match data {
            Value::String(s) if !s.trim().is_empty() => {
                values.push(s);
                Value::String(self.placeholder(values.len() - 1))
            }
            Value::Array(a) => Value::Array(a.iter().map(|v| self.skeleton(v, values)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), self.skeleton(v, values))).collect()),
            other => other.clone(),
        }
    }

    /// `template` with each placeholder replaced by its value, escaped by `escape`.
    pub fn fill(&self, template: &str, values: &[&str], escape: Escape) -> String {
        let mut out = String::with_capacity(template.len() + values.iter().map(|v| v.len() * 2).sum::<usize>());
        let mut rest = template;
        while let Some(start) = rest.find(OPEN) {
            out.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len_utf8()..];
            let value = after
                .strip_prefix(self.nonce.as_str())
                .and_then(|a| a.strip_prefix('.'))
                .and_then(|a| Some((a, a.find(CLOSE)?)))
                .and_then(|(a, end)| {
                    Some((
                        *values.get(a[..end].parse::<usize>().ok()?)?,
                        &a[end + CLOSE.len_utf8()..],
                    ))
                });
            match value {
                Some((v, tail)) => {
                    out.push_str(&escape(v));
                    rest = tail;
                }
                // Not one of ours: keep the character.
                None => {
                    out.push(OPEN);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// The cache key of a context's recipient data (template name, language, keys, blank values,
/// list lengths, other scalars) and its non-blank values, in placeholder order. Made without building
/// the skeleton, which is only needed for a shape not seen yet ([`skeleton_of`]).
pub fn shape_of<'a>(name: &str, ctx: &'a Context) -> (String, Vec<&'a str>) {
    let mut key = String::with_capacity(name.len() + 64);
    key.push_str(name);
    key.push('\0');
    // The rest of the context (title, body, date) is the language's.
    key.push_str(ctx.lang.as_str());
    key.push('\0');
    let mut values = Vec::new();
    signature(&ctx.data()["recipient"], &mut key, &mut values);
    (key, values)
}

/// The skeleton of a context's recipient data, placeholders in [`shape_of`]'s value order.
pub fn skeleton_of(p: &Placeholders, ctx: &Context) -> Value {
    p.skeleton(&ctx.data()["recipient"], &mut Vec::new())
}

/// Appends an unambiguous description of `data`'s shape (lengths prefix every free text), and
/// pushes its non-blank strings in the order [`Placeholders::skeleton`] numbers them.
fn signature<'a>(data: &'a Value, key: &mut String, values: &mut Vec<&'a str>) {
    // Made for every template of every message: lengths through itoa, not `write!`.
    let text = |key: &mut String, prefix: &str, t: &str| {
        key.push_str(prefix);
        key.push_str(itoa::Buffer::new().format(t.len()));
        key.push(':');
        key.push_str(t);
    };
    match data {
        Value::String(s) if !s.trim().is_empty() => {
            values.push(s);
            key.push('$');
        }
        Value::String(blank) => text(key, "\"", blank),
        Value::Array(a) => {
            key.push('[');
            for v in a {
                signature(v, key, values);
            }
            key.push(']');
        }
        Value::Object(o) => {
            key.push('{');
            for (k, v) in o {
                text(key, "", k);
                signature(v, key, values);
            }
            key.push('}');
        }
        other => {
            use std::fmt::Write;
            let _ = write!(key, "#{other};");
        }
    }
}

/// Things made once per shape key (rendered skeletons, inlined documents), at most
/// [`MAX_SHAPES`] of them.
pub struct ShapeCache<T> {
    shapes: Mutex<HashMap<String, Arc<T>>>,
}

// Not the cached texts: they are whole messages.
impl<T> std::fmt::Debug for ShapeCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShapeCache").finish_non_exhaustive()
    }
}

impl<T> Default for ShapeCache<T> {
    fn default() -> Self {
        ShapeCache {
            shapes: Mutex::default(),
        }
    }
}

impl<T> ShapeCache<T> {
    /// The value for `key`, made by `make` the first time; `None` when the cache is full.
    pub fn get_or_make(&self, key: &str, make: impl FnOnce() -> Result<T, String>) -> Result<Option<Arc<T>>, String> {
        {
            let shapes = self.shapes.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(v) = shapes.get(key) {
                return Ok(Some(v.clone()));
            }
            if shapes.len() >= MAX_SHAPES {
                return Ok(None);
            }
        }
        // Made outside the lock: two threads may both make the first one, which is harmless.
        let made = Arc::new(make()?);
        let mut shapes = self.shapes.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(Some(shapes.entry(key.to_string()).or_insert(made).clone()))
    }

    #[cfg(test)]
    pub fn values(&self) -> Vec<Arc<T>> {
        self.shapes.lock().unwrap().values().cloned().collect()
    }
}

/// Rendered skeletons of transparent text templates (subject, text body, SMS), per channel.
#[derive(Default, Debug)]
pub struct Skeletons {
    placeholders: Placeholders,
    shapes: ShapeCache<String>,
}

impl Skeletons {
    /// The same text as `templates.render_ctx(name, ctx)`.
    pub fn render(&self, templates: &Templates, name: &str, ctx: &Context) -> Result<String, String> {
        let name = templates.resolve(name, ctx.lang);
        if !templates.is_transparent(name) {
            return templates.render_ctx(name, ctx);
        }
        let (key, values) = shape_of(name, ctx);
        let rendered = self.shapes.get_or_make(&key, || {
            let mut data = ctx.data().clone();
            data["recipient"] = skeleton_of(&self.placeholders, ctx);
            templates.render_in(name, ctx.lang, &data)
        });
        match rendered {
            Ok(Some(r)) => Ok(self.placeholders.fill(&r, &values, templates.escape_of(name))),
            // A full cache, or an error: the skeleton's error is the message's own (same keys,
            // same template), but let handlebars report it for the real data.
            Ok(None) | Err(_) => templates.render_ctx(name, ctx),
        }
    }
}

/// Whether recipient values reach this template's output only as text (see the module docs).
/// `raw_is_escaped`: the registry escapes nothing, so `{{{value}}}` writes what `{{value}}` does.
pub fn transparent(t: &Template, raw_is_escaped: bool) -> bool {
    t.elements.iter().all(|e| element(e, raw_is_escaped))
}

fn element(e: &TemplateElement, raw_is_escaped: bool) -> bool {
    match e {
        TemplateElement::RawString(_) | TemplateElement::Comment(_) => true,
        // A value written as it is (escaped): whatever it is, the skeleton writes its
        // placeholders in the same places, and escaping is per character.
        TemplateElement::Expression(h) => value_only(h) || helper_ignores_recipient(h),
        TemplateElement::HtmlExpression(h) => (raw_is_escaped && value_only(h)) || helper_ignores_recipient(h),
        TemplateElement::HelperBlock(h) => {
            let condition = matches!(&h.name, Parameter::Name(n) if n == "if" || n == "unless")
                && h.hash.is_empty()
                && h.block_param.is_none()
                && matches!(h.params.as_slice(), [Parameter::Path(_)]);
            // `if` on a value: the skeleton keeps its truthiness (blank strings verbatim,
            // lists as long, numbers and booleans as they are).
            (condition || helper_ignores_recipient(h))
                && h.template.as_ref().is_none_or(|t| transparent(t, raw_is_escaped))
                && h.inverse.as_ref().is_none_or(|t| transparent(t, raw_is_escaped))
        }
        // Partials and decorators: not looked into.
        _ => false,
    }
}

fn value_only(h: &HelperTemplate) -> bool {
    h.params.is_empty() && h.hash.is_empty() && h.block_param.is_none() && matches!(h.name, Parameter::Path(_))
}

fn helper_ignores_recipient(h: &HelperTemplate) -> bool {
    !mentions(&h.name) && !h.params.iter().any(mentions) && !h.hash.values().any(mentions)
}

/// Whether a parameter may reach recipient data: it names `recipient`, or it is a path that
/// can reach the whole context (`this`, `.`, `..`, `@root`). Deliberately coarse.
fn mentions(p: &Parameter) -> bool {
    match p {
        Parameter::Name(n) => n.contains("recipient") || n == "this" || n == ".",
        Parameter::Path(Path::Relative((segs, raw))) => {
            raw.contains("recipient")
                || raw.contains("this")
                || raw.contains("..")
                || raw == "."
                || raw.starts_with("./")
                || segs.iter().any(|s| matches!(s, PathSeg::Ruled(_)))
        }
        Parameter::Path(Path::Local((_, name, raw))) => {
            name.contains("root") || raw.contains("recipient") || raw.contains("..")
        }
        Parameter::Literal(v) => v.to_string().contains("recipient"),
        Parameter::Subexpression(s) => match s.element.as_ref() {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => !helper_ignores_recipient(h),
            _ => true,
        },
        // A kind of parameter a later handlebars adds: assume the worst.
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(src: &str) -> Template {
        Template::compile(src).unwrap()
    }

    #[test]
    fn what_counts_as_transparent() {
        let yes = [
            "Hallo {{recipient.name}}, {{title}}",
            "{{#if recipient.name}}Hallo {{recipient.name}}{{else}}Hallo{{/if}}",
            "{{#unless recipient.locale}}de{{/unless}}{{#if a}}x{{else if recipient.b}}y{{/if}}",
            "{{{body_html}}} {{len title}} {{#each tags}}{{this}} {{../recipient.name}}{{/each}}",
            "{{!-- {{recipient.name}} --}}{{recipient}}",
            "{{@root.recipient.name}} {{this}}",
        ];
        for src in yes {
            assert!(transparent(&t(src), false), "{src}");
        }
        let no = [
            "{{#if (eq recipient.tier \"vip\")}}x{{/if}}",
            "{{#each recipient.tags}}{{this}}{{/each}}",
            "{{#with recipient}}{{name}}{{/with}}",
            "{{len recipient.name}}",
            "{{lookup this \"recipient\"}}",
            "{{#each this}}{{@key}}{{/each}}",
            "{{#with this}}{{name}}{{/with}}",
            "{{#with @root}}{{/with}}",
            "{{#each org.list}}{{lookup ../this \"x\"}}{{/each}}",
            "{{> partial}}",
            "{{#if recipient.a includeZero=true}}{{/if}}",
            "{{#if a}}{{#each recipient.tags}}{{/each}}{{/if}}",
            "{{upper (lookup recipient \"name\")}}",
        ];
        for src in no {
            assert!(!transparent(&t(src), false), "{src}");
        }
        // Raw output of a value is only the same as the escaped output where nothing is escaped.
        assert!(!transparent(&t("{{{recipient.name}}}"), false));
        assert!(transparent(&t("{{{recipient.name}}}"), true));
    }

    #[test]
    fn the_built_in_templates_are_transparent() {
        let templates = Templates::load(crate::channel::builtin_templates(), None).unwrap();
        for name in [
            "email.subject.hbs",
            "email.txt.hbs",
            "email.txt.de.hbs",
            "email.html.hbs",
            "email.html.de.hbs",
            "sms.txt.hbs",
        ] {
            assert!(templates.is_transparent(name), "{name}");
        }
    }

    /// Rendering through the skeletons gives exactly handlebars' own output, for transparent and
    /// other templates, every registry, odd values, and blank ones.
    #[test]
    fn same_text_as_rendering_each_message() {
        let dir = tempfile::tempdir().unwrap();
        let sources = [
            (
                "a.txt.hbs",
                "{{#if recipient.name}}Hallo {{recipient.name}},{{else}}Hallo,{{/if}} {{title}} {{recipient.tags}}",
            ),
            (
                "b.html.hbs",
                "<p title=\"{{recipient.name}}\">{{recipient.name}}</p>{{{body_html}}}{{#if recipient.locale}}{{recipient.locale}}{{/if}}",
            ),
            ("c.json.hbs", "{\"to\": \"{{recipient.name}}\", \"t\": \"{{title}}\"}"),
            (
                "d.txt.hbs",
                "{{#if (eq recipient.name \"Anna\")}}A{{else}}{{recipient.name}}{{/if}}",
            ),
        ];
        for (n, s) in sources {
            std::fs::write(dir.path().join(n), s).unwrap();
        }
        let templates = Templates::load(crate::channel::builtin_templates(), Some(dir.path())).unwrap();
        assert!(!templates.is_transparent("d.txt.hbs"));
        let skeletons = Skeletons::default();
        let names = [
            "Anna",
            "Ben Müller",
            "",
            "  ",
            "O'Brien & <Söhne> \"q\" `t` =eq \\ \n",
            "\u{E000}0\u{E001}",
            "Zoë 👩‍👩‍👧",
        ];
        for name in names {
            for tags in [json!([]), json!(["x", " ", "<y>"])] {
                let data = json!({
                    "title": "Störung \u{E000}0\u{E001}", "body_html": "<b>hi</b>",
                    "recipient": {"name": name, "tags": tags, "locale": name},
                });
                let ctx = Context::new(data.clone(), "a@b.example");
                for (n, _) in sources {
                    assert_eq!(
                        skeletons.render(&templates, n, &ctx).unwrap(),
                        templates.render(n, &data).unwrap(),
                        "{n} for {name:?}"
                    );
                }
            }
        }
        // One skeleton per shape, not one per message.
        assert!(skeletons.shapes.values().len() <= 3 * 3 * 2);
    }

    #[test]
    fn missing_variables_are_still_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("e.txt.hbs"), "Hallo {{recipient.nickname}}").unwrap();
        let templates = Templates::load(crate::channel::builtin_templates(), Some(dir.path())).unwrap();
        let ctx = Context::new(json!({"recipient": {"name": "A"}}), "a@b.example");
        let e = Skeletons::default().render(&templates, "e.txt.hbs", &ctx).unwrap_err();
        assert!(e.contains("recipient.nickname"), "{e}");
    }

    #[test]
    fn shape_keys_tell_shapes_apart_and_values_keep_the_skeletons_order() {
        let data = json!({"b": ["x", " ", {"c": "y", "a": ""}], "a": "z", "n": 1, "t": true, "u": null});
        let ctx = Context::new(json!({ "recipient": data }), "a@b.example");
        let (_, values) = shape_of("t", &ctx);
        let mut order = Vec::new();
        Placeholders::default().skeleton(&data, &mut order);
        assert_eq!(values, order);
        assert_eq!(values, ["z", "x", "y"]);
        let key = |r: Value| shape_of("t", &Context::new(json!({ "recipient": r }), "x")).0;
        let same = [
            (json!({"a": "x", "b": ""}), json!({"a": "other", "b": ""})),
            (json!(["x", "y"]), json!(["p", "q"])),
        ];
        for (a, b) in same {
            assert_eq!(key(a), key(b));
        }
        let different = [
            (json!({"a": "x", "b": ""}), json!({"a": "", "b": "x"})),
            (json!({"a": ""}), json!({"a": " "})),
            (json!(["x"]), json!(["x", "y"])),
            (json!({"ab": "x"}), json!({"a": "x"})),
            (json!({"a": 1}), json!({"a": 2})),
            (json!({"a": {"b": "x"}}), json!({"a": ["x"]})),
        ];
        for (a, b) in different {
            assert_ne!(key(a.clone()), key(b.clone()), "{a} vs {b}");
        }
        assert_ne!(
            shape_of("a", &Context::new(json!({"recipient": {}}), "x")).0,
            shape_of("b", &Context::new(json!({"recipient": {}}), "x")).0
        );
    }

    #[test]
    fn fill_leaves_foreign_placeholders_alone() {
        let p = Placeholders::default();
        let ours = p.placeholder(0);
        let text = format!(
            "a\u{E000}x\u{E001}b{ours}c\u{E000}0\u{E001}\u{E000}{}.9\u{E001}",
            p.nonce
        );
        assert_eq!(
            p.fill(&text, &["<v>"], handlebars::html_escape),
            format!(
                "a\u{E000}x\u{E001}b&lt;v&gt;c\u{E000}0\u{E001}\u{E000}{}.9\u{E001}",
                p.nonce
            )
        );
    }
}
