//! Handlebars templates: built-ins (each channel type declares its own) embedded in the binary, overridable by file name from
//! `templates_dir`. One registry per output escaping, chosen by the file name:
//! `*.html.hbs` are HTML-escaped, `*.json.hbs` JSON-string-escaped, everything else is text
//! and left as written. All registries are strict: a missing variable is an error, found before
//! anything is sent because every channel renders for its first target during planning.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use handlebars::Handlebars;
use serde::Serialize;

use crate::error::{AppError, SourceLocation};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escaping {
    Html,
    Json,
    Text,
}

fn escaping_of(name: &str) -> Escaping {
    if name.ends_with(".html.hbs") {
        Escaping::Html
    } else if name.ends_with(".json.hbs") {
        Escaping::Json
    } else {
        Escaping::Text
    }
}

pub struct Templates {
    html: Handlebars<'static>,
    json: Handlebars<'static>,
    text: Handlebars<'static>,
    /// Where each template came from, for error messages.
    origins: BTreeMap<String, String>,
    /// The templates whose recipient values only reach the output as text (render/skeleton.rs).
    transparent: BTreeSet<String>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.origins.keys())
            .finish()
    }
}

/// What a registry does to the values it writes (also what render/skeleton.rs puts back).
fn escape_fn(escaping: Escaping) -> super::skeleton::Escape {
    match escaping {
        Escaping::Html => handlebars::html_escape,
        Escaping::Json => crate::escape::json_str,
        Escaping::Text => handlebars::no_escape,
    }
}

fn registry(escaping: Escaping) -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.set_strict_mode(true);
    h.register_escape_fn(escape_fn(escaping));
    h
}

impl Templates {
    /// `builtins` (name, text), overridden (and extended) by the `*.hbs` files in `dir`. The
    /// caller passes the channel registry's list (`channel::builtin_templates`): this module
    /// does not know the channels.
    pub fn load(builtins: &[(&str, &str)], dir: Option<&Path>) -> Result<Templates, AppError> {
        let mut sources: BTreeMap<String, (String, String)> = builtins
            .iter()
            .map(|(n, s)| (n.to_string(), (format!("<built-in {n}>"), s.to_string())))
            .collect();
        if let Some(dir) = dir
            && dir.is_dir()
        {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| AppError::invalid(format!("{}: cannot read templates_dir: {e}", dir.display())))?;
            for entry in entries.flatten() {
                let path: PathBuf = entry.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                if !name.ends_with(".hbs") || !path.is_file() {
                    continue;
                }
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| AppError::invalid(format!("{}: cannot read template: {e}", path.display())))?;
                sources.insert(name.to_string(), (path.display().to_string(), text));
            }
        }
        let mut t = Templates {
            html: registry(Escaping::Html),
            json: registry(Escaping::Json),
            text: registry(Escaping::Text),
            origins: BTreeMap::new(),
            transparent: BTreeSet::new(),
        };
        for (name, (origin, text)) in sources {
            t.registry_mut(&name)
                .register_template_string(&name, &text)
                .map_err(|e| {
                    let (line, col) = e.pos().unwrap_or((1, 1));
                    let loc = SourceLocation {
                        file: origin.clone(),
                        line,
                        column: col,
                        offset: 0,
                    };
                    AppError::invalid_at(Some(loc), format!("template syntax error: {}", e.reason()))
                })?;
            let raw_is_escaped = escaping_of(&name) == Escaping::Text;
            if t.registry_mut(&name)
                .get_template(&name)
                .is_some_and(|compiled| super::skeleton::transparent(compiled, raw_is_escaped))
            {
                t.transparent.insert(name.clone());
            }
            t.origins.insert(name, origin);
        }
        Ok(t)
    }

    fn registry_mut(&mut self, name: &str) -> &mut Handlebars<'static> {
        match escaping_of(name) {
            Escaping::Html => &mut self.html,
            Escaping::Json => &mut self.json,
            Escaping::Text => &mut self.text,
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.origins.contains_key(name)
    }

    /// See [`super::skeleton::transparent`].
    pub fn is_transparent(&self, name: &str) -> bool {
        self.transparent.contains(name)
    }

    /// What `name`'s registry does to a value it writes.
    pub fn escape_of(&self, name: &str) -> super::skeleton::Escape {
        escape_fn(escaping_of(name))
    }

    /// Render `name`; an error names the template's file (and line when handlebars knows it).
    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> Result<String, String> {
        let (reg, origin) = self.lookup(name)?;
        reg.render(name, data).map_err(|e| located(origin, &e))
    }

    /// [`Templates::render`] for a message's context, which handlebars then need not copy.
    pub fn render_ctx(&self, name: &str, ctx: &super::Context) -> Result<String, String> {
        let (reg, origin) = self.lookup(name)?;
        reg.render_with_context(name, ctx.handlebars())
            .map_err(|e| located(origin, &e))
    }

    fn lookup(&self, name: &str) -> Result<(&Handlebars<'static>, &String), String> {
        let Some(origin) = self.origins.get(name) else {
            return Err(format!(
                "template {name} not found (neither built in nor in templates_dir)"
            ));
        };
        let reg = match escaping_of(name) {
            Escaping::Html => &self.html,
            Escaping::Json => &self.json,
            Escaping::Text => &self.text,
        };
        Ok((reg, origin))
    }

    /// Where `name` came from: its file in `templates_dir`, or `<built-in NAME>`.
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.origins.get(name).map(String::as_str)
    }

    /// The registry `name` is in, for a caller with helpers of its own (the HTML report streams
    /// its rows through them).
    pub fn registry_for(&mut self, name: &str) -> &mut Handlebars<'static> {
        self.registry_mut(name)
    }
}

/// A render error at its place: `origin:line:column: reason`.
pub fn located(origin: &str, e: &handlebars::RenderError) -> String {
    let place = match (e.line_no, e.column_no) {
        (Some(l), Some(c)) => format!("{origin}:{l}:{c}"),
        _ => origin.to_string(),
    };
    format!("{place}: {}", e.reason())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escaping_follows_the_file_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.html.hbs"), "{{v}}").unwrap();
        std::fs::write(dir.path().join("x.txt.hbs"), "{{v}}").unwrap();
        std::fs::write(dir.path().join("x.json.hbs"), "{\"v\":\"{{v}}\"}").unwrap();
        let t = Templates::load(&[], Some(dir.path())).unwrap();
        let data = json!({"v": "a & <b> \"q\"\n"});
        assert_eq!(
            t.render("x.html.hbs", &data).unwrap(),
            "a &amp; &lt;b&gt; &quot;q&quot;\n"
        );
        assert_eq!(t.render("x.txt.hbs", &data).unwrap(), "a & <b> \"q\"\n");
        let v: serde_json::Value = serde_json::from_str(&t.render("x.json.hbs", &data).unwrap()).unwrap();
        assert_eq!(v["v"], "a & <b> \"q\"\n");
    }

    #[test]
    fn strict_mode_reports_the_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sms.txt.hbs"), "Hi\n{{recipient.nickname}}").unwrap();
        let t = Templates::load(&[], Some(dir.path())).unwrap();
        let err = t
            .render("sms.txt.hbs", &json!({"recipient": {"name": "A"}}))
            .unwrap_err();
        assert!(err.contains("sms.txt.hbs:2:"), "{err}");
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("email.subject.hbs"), "ok\n{{#if x}}unclosed").unwrap();
        let err = Templates::load(&[], Some(dir.path())).unwrap_err().to_string();
        assert!(err.contains("email.subject.hbs"), "{err}");
    }
}
