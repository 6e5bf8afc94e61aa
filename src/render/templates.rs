//! Handlebars templates: built-ins (each channel type declares its own) embedded in the binary, overridable by file name from
//! `templates_dir`. One registry per output escaping, chosen by the file name:
//! `*.html.hbs` are HTML-escaped, `*.json.hbs` JSON-string-escaped, everything else is text
//! and left as written. All registries are strict: a missing variable is an error, found before
//! anything is sent because every channel renders for its first target during planning.
//!
//! The user's templates are compiled when loading, so a syntax error in any of them stops the
//! command before anything is sent. A built-in is compiled the first time it is used: a run
//! needs a few of the dozens every channel type brings, and handlebars' compiler is slow enough
//! for that to be most of the start-up time. (Built-ins always compile: a unit test compiles all.)

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use handlebars::template::TemplateElement;
use handlebars::{Handlebars, Template, TemplateError};
use serde::Serialize;

use super::lang::{Lang, builtin_name, split_template_name};
use crate::error::{AppError, SourceLocation};
use crate::locale::Locale;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escaping {
    // The index of its registry in `Templates::registries`.
    Html = 0,
    Json = 1,
    Text = 2,
}

/// By the file name, a translation by its base's (`email.html.de.hbs` is HTML).
fn escaping_of(name: &str) -> Escaping {
    let base = split_template_name(name).map(|(b, _)| b);
    let is = |ext: &str| name.ends_with(ext) || base.as_deref().is_some_and(|b| b.ends_with(ext));
    if is(".html.hbs") {
        Escaping::Html
    } else if is(".json.hbs") {
        Escaping::Json
    } else {
        Escaping::Text
    }
}

/// One known template.
struct Entry {
    /// Where it came from, for error messages.
    origin: String,
    escaping: Escaping,
    /// From `templates_dir` (not a built-in).
    user: bool,
    text: String,
    /// Set once it is compiled into its registry: whether its recipient values only reach the
    /// output as text (render/skeleton.rs).
    transparent: OnceLock<bool>,
}

/// Which registered template a name means, per language: worked out once when loading, so
/// rendering for a person looks it up without building names.
#[derive(Debug, Default)]
struct Route {
    by_lang: Vec<(Lang, String)>,
    /// For a language with nothing of its own.
    other: Option<String>,
}

pub struct Templates {
    /// By [`Escaping`]; written only to compile a template on its first use.
    registries: [RwLock<Handlebars<'static>>; 3],
    entries: BTreeMap<String, Entry>,
    routes: HashMap<String, Route>,
    org: Lang,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("names", &self.entries.keys())
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
    /// [`Templates::load_for`] with English as the organisation's language.
    pub fn load(builtins: &[(&str, &str)], dir: Option<&Path>) -> Result<Templates, AppError> {
        Templates::load_for(builtins, dir, Locale::default())
    }

    /// `builtins` (name, text), overridden (and extended) by the `*.hbs` files in `dir`. The
    /// caller passes the channel registry's list (`channel::builtin_templates`): this module
    /// does not know the channels. `org` picks the built-ins of people without a language of
    /// their own, and of broadcasts.
    pub fn load_for(builtins: &[(&str, &str)], dir: Option<&Path>, org: Locale) -> Result<Templates, AppError> {
        let mut sources: BTreeMap<String, (String, String, bool)> = builtins
            .iter()
            .map(|(n, s)| (n.to_string(), (format!("<built-in {n}>"), s.to_string(), false)))
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
                sources.insert(name.to_string(), (path.display().to_string(), text, true));
            }
        }
        let mut t = Templates {
            registries: [Escaping::Html, Escaping::Json, Escaping::Text].map(|e| RwLock::new(registry(e))),
            entries: BTreeMap::new(),
            routes: HashMap::new(),
            org: Lang::from(org),
        };
        for (name, (origin, text, user)) in sources {
            let entry = Entry {
                origin,
                escaping: escaping_of(&name),
                user,
                text,
                transparent: OnceLock::new(),
            };
            t.entries.insert(name, entry);
        }
        let Templates {
            registries, entries, ..
        } = &mut t;
        for (name, entry) in entries.iter().filter(|(_, e)| e.user) {
            let reg = registries[entry.escaping as usize]
                .get_mut()
                .unwrap_or_else(|e| e.into_inner());
            if compile(reg, name, entry).map_err(|e| syntax_error(&entry.origin, &e))? {
                compile_rest(reg, entries, entry.escaping).map_err(|(origin, e)| syntax_error(origin, &e))?;
            }
        }
        t.routes = routes(&t.entries, org);
        Ok(t)
    }

    /// The registry of `escaping`, for rendering.
    fn read(&self, escaping: Escaping) -> RwLockReadGuard<'_, Handlebars<'static>> {
        // A panic while compiling leaves nothing half-registered that rendering could trip on.
        self.registries[escaping as usize]
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, escaping: Escaping) -> RwLockWriteGuard<'_, Handlebars<'static>> {
        self.registries[escaping as usize]
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Compile `name` into its registry unless it is there already; whether it is transparent.
    fn ensure(&self, name: &str, entry: &Entry) -> Result<bool, String> {
        if let Some(&t) = entry.transparent.get() {
            return Ok(t);
        }
        let mut reg = self.write(entry.escaping);
        if entry.transparent.get().is_none() {
            let partials = compile(&mut reg, name, entry).map_err(|e| syntax_error(&entry.origin, &e).to_string())?;
            if partials {
                compile_rest(&mut reg, &self.entries, entry.escaping)
                    .map_err(|(origin, e)| syntax_error(origin, &e).to_string())?;
            }
        }
        Ok(entry.transparent.get().copied().unwrap_or(false))
    }

    /// Compile what `name` (or, for a translation's name, its base) resolves to for the
    /// organisation's language, ahead of its first render. A template that does not compile is
    /// left for that render to report.
    pub fn prepare(&self, name: &str) {
        self.prepare_in(name, self.org);
    }

    /// [`Templates::prepare`] for people of `lang`.
    pub fn prepare_in(&self, name: &str, lang: Lang) {
        let base = split_template_name(name)
            .map(|(base, _)| base)
            .filter(|base| self.entries.contains_key(base));
        let _ = self.lookup(base.as_deref().unwrap_or(name), lang);
    }

    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The template `name` means for people of `lang`: their translation in `templates_dir`,
    /// the user's `name`, or the built-in of their language, else of the organisation's
    /// (see the README, "Languages"). A name that is not known at all stays as it is.
    pub fn resolve<'a>(&'a self, name: &'a str, lang: Lang) -> &'a str {
        let Some(route) = self.routes.get(name) else {
            return name;
        };
        route
            .by_lang
            .iter()
            .find(|(l, _)| *l == lang)
            .map(|(_, n)| n.as_str())
            .or(route.other.as_deref())
            .unwrap_or(name)
    }

    /// See [`super::skeleton::transparent`]; for a resolved name.
    pub fn is_transparent(&self, name: &str) -> bool {
        self.entries
            .get(name)
            .is_some_and(|e| self.ensure(name, e).unwrap_or(false))
    }

    /// What `name`'s registry does to a value it writes.
    pub fn escape_of(&self, name: &str) -> super::skeleton::Escape {
        escape_fn(self.entries.get(name).map_or_else(|| escaping_of(name), |e| e.escaping))
    }

    /// Render `name` in the organisation's language (broadcasts, pages); an error names the
    /// template's file (and line when handlebars knows it).
    pub fn render<T: Serialize>(&self, name: &str, data: &T) -> Result<String, String> {
        self.render_in(name, self.org, data)
    }

    /// Render `name` as resolved for `lang`.
    pub fn render_in<T: Serialize>(&self, name: &str, lang: Lang, data: &T) -> Result<String, String> {
        let (name, entry) = self.lookup(name, lang)?;
        self.read(entry.escaping)
            .render(name, data)
            .map_err(|e| located(&entry.origin, &e))
    }

    /// [`Templates::render`] for a message's context (in its person's language), which
    /// handlebars then need not copy.
    pub fn render_ctx(&self, name: &str, ctx: &super::Context) -> Result<String, String> {
        let (name, entry) = self.lookup(name, ctx.lang)?;
        self.read(entry.escaping)
            .render_with_context(name, ctx.handlebars())
            .map_err(|e| located(&entry.origin, &e))
    }

    /// The template `name` resolves to for `lang`, compiled.
    fn lookup<'a>(&'a self, name: &'a str, lang: Lang) -> Result<(&'a str, &'a Entry), String> {
        let name = self.resolve(name, lang);
        let Some(entry) = self.entries.get(name) else {
            return Err(format!(
                "template {name} not found (neither built in nor in templates_dir)"
            ));
        };
        self.ensure(name, entry)?;
        Ok((name, entry))
    }

    /// Where `name` came from: its file in `templates_dir`, or `<built-in NAME>`.
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.entries.get(name).map(|e| e.origin.as_str())
    }

    /// The registry `name` is in, for a caller with helpers of its own (the HTML report streams
    /// its rows through them).
    /// Every template of that registry is compiled into it first: the caller renders by name.
    /// (Only a built-in could fail to compile here, and none does; it would then be missing.)
    pub fn registry_for(&mut self, name: &str) -> &mut Handlebars<'static> {
        let escaping = escaping_of(name);
        let reg = self.registries[escaping as usize]
            .get_mut()
            .unwrap_or_else(|e| e.into_inner());
        let _ = compile_rest(reg, &self.entries, escaping);
        reg
    }
}

/// Register `entry` in `reg` (its registry) and record whether it is transparent; whether it
/// uses partials.
fn compile(reg: &mut Handlebars<'static>, name: &str, entry: &Entry) -> Result<bool, TemplateError> {
    reg.register_template_string(name, &entry.text)?;
    let compiled = reg.get_template(name).expect("just registered");
    let _ = entry
        .transparent
        .set(super::skeleton::transparent(compiled, entry.escaping == Escaping::Text));
    Ok(uses_partials(compiled))
}

/// Compile every template of `escaping` not compiled yet: a partial may name any of them.
fn compile_rest<'a>(
    reg: &mut Handlebars<'static>,
    entries: &'a BTreeMap<String, Entry>,
    escaping: Escaping,
) -> Result<(), (&'a str, TemplateError)> {
    for (name, entry) in entries {
        if entry.escaping == escaping && entry.transparent.get().is_none() {
            compile(reg, name, entry).map_err(|e| (entry.origin.as_str(), e))?;
        }
    }
    Ok(())
}

/// Whether `t` (or a block in it) includes a partial, which its registry looks up by name.
fn uses_partials(t: &Template) -> bool {
    t.elements.iter().any(|e| match e {
        TemplateElement::RawString(_)
        | TemplateElement::Comment(_)
        | TemplateElement::Expression(_)
        | TemplateElement::HtmlExpression(_)
        | TemplateElement::DecoratorExpression(_) => false,
        TemplateElement::HelperBlock(h) => {
            h.template.as_ref().is_some_and(uses_partials) || h.inverse.as_ref().is_some_and(uses_partials)
        }
        TemplateElement::DecoratorBlock(d) => d.template.as_ref().is_some_and(uses_partials),
        // Partials, and whatever a later handlebars adds: compile the whole registry.
        _ => true,
    })
}

/// A template's syntax error at its place (exit 2).
fn syntax_error(origin: &str, e: &TemplateError) -> AppError {
    let (line, col) = e.pos().unwrap_or((1, 1));
    let loc = SourceLocation {
        file: origin.to_string(),
        line,
        column: col,
        offset: 0,
    };
    AppError::invalid_at(Some(loc), format!("template syntax error: {}", e.reason()))
}

/// The route of every name a channel may ask for: each registered template, and the base of
/// each translation.
fn routes(entries: &BTreeMap<String, Entry>, org: Locale) -> HashMap<String, Route> {
    let mut translations: BTreeMap<String, Vec<Lang>> = BTreeMap::new();
    for name in entries.keys() {
        if let Some((base, lang)) = split_template_name(name) {
            translations.entry(base).or_default().push(lang);
        }
    }
    let mut routes = HashMap::new();
    for (base, langs) in &translations {
        // Built-in languages too: they decide which built-in is used.
        let mut all: Vec<Lang> = Locale::ALL.into_iter().map(Lang::from).collect();
        all.extend(langs.iter().copied().filter(|l| l.locale().is_none()));
        let by_lang = all
            .into_iter()
            .filter_map(|l| Some((l, route_for(entries, base, Some(l), org)?)))
            .collect();
        let other = route_for(entries, base, None, org);
        routes.insert(base.clone(), Route { by_lang, other });
    }
    // A translation asked for by its own name is itself.
    for name in entries.keys() {
        if !translations.contains_key(name) {
            routes.insert(
                name.clone(),
                Route {
                    by_lang: Vec::new(),
                    other: Some(name.clone()),
                },
            );
        }
    }
    routes
}

/// The resolution rule for one base name and language (`None`: one with nothing of its own).
fn route_for(entries: &BTreeMap<String, Entry>, base: &str, lang: Option<Lang>, org: Locale) -> Option<String> {
    let user = |n: &str| entries.get(n).is_some_and(|e| e.user).then(|| n.to_string());
    let any = |n: String| entries.contains_key(&n).then_some(n);
    let stem = base.strip_suffix(".hbs").unwrap_or(base);
    let own = lang.and_then(|l| user(&format!("{stem}.{l}.hbs")));
    let locale = lang.and_then(Lang::locale).unwrap_or(org);
    own.or_else(|| user(base))
        .or_else(|| any(builtin_name(base, locale)))
        .or_else(|| any(builtin_name(base, org)))
        .or_else(|| any(base.to_string()))
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

    /// The resolution rule: the user's translation, the user's file, the built-in of the
    /// person's language, of the organisation's, English.
    #[test]
    fn which_template_each_language_gets() {
        let builtins = [
            ("a.txt.hbs", "builtin en"),
            ("a.txt.de.hbs", "builtin de"),
            ("b.txt.hbs", "builtin en"),
            ("b.txt.de.hbs", "builtin de"),
            ("c.html.hbs", "builtin en"),
            ("c.html.de.hbs", "builtin de"),
            ("neutral.txt.hbs", "one for all"),
        ];
        let dir = tempfile::tempdir().unwrap();
        let user = [
            ("a.txt.hbs", "user"),
            ("a.txt.fr.hbs", "user fr"),
            ("b.txt.en.hbs", "user en"),
            ("c.html.fr.hbs", "user fr {{v}}"),
            ("only.txt.fr.hbs", "user fr"),
        ];
        for (n, s) in user {
            std::fs::write(dir.path().join(n), s).unwrap();
        }
        let lang = |t: &str| Lang::of_tag(t).unwrap();
        // (name, language, with `[org] locale` de, with en)
        let cases = [
            ("a.txt.hbs", "de", Ok("user"), Ok("user")),
            ("a.txt.hbs", "fr", Ok("user fr"), Ok("user fr")),
            ("a.txt.hbs", "en", Ok("user"), Ok("user")),
            ("b.txt.hbs", "en", Ok("user en"), Ok("user en")),
            ("b.txt.hbs", "de", Ok("builtin de"), Ok("builtin de")),
            ("b.txt.hbs", "es", Ok("builtin de"), Ok("builtin en")),
            ("c.html.hbs", "fr", Ok("user fr &lt;"), Ok("user fr &lt;")),
            ("c.html.hbs", "en", Ok("builtin en"), Ok("builtin en")),
            ("c.html.hbs", "de", Ok("builtin de"), Ok("builtin de")),
            ("neutral.txt.hbs", "de", Ok("one for all"), Ok("one for all")),
            ("only.txt.hbs", "fr", Ok("user fr"), Ok("user fr")),
            (
                "only.txt.hbs",
                "de",
                Err("only.txt.hbs not found"),
                Err("only.txt.hbs not found"),
            ),
            // A translation asked for by its own name is itself, for anyone.
            ("b.txt.de.hbs", "en", Ok("builtin de"), Ok("builtin de")),
        ];
        for org in [Locale::De, Locale::En] {
            let t = Templates::load_for(&builtins, Some(dir.path()), org).unwrap();
            for (name, l, de, en) in cases {
                let want = if org == Locale::De { de } else { en };
                let got = t.render_in(name, lang(l), &json!({"v": "<"}));
                match want {
                    Ok(w) => assert_eq!(got.as_deref(), Ok(w), "{name} for {l} ({org:?})"),
                    Err(e) => assert!(got.as_ref().is_err_and(|g| g.contains(e)), "{name} for {l}: {got:?}"),
                }
            }
            // Without a language of one's own: the organisation's.
            assert_eq!(
                t.render("c.html.hbs", &json!({})).unwrap(),
                format!("builtin {}", org.code())
            );
        }
    }

    #[test]
    fn prepare_compiles_the_organisations_version_only() {
        let t = Templates::load_for(crate::channel::builtin_templates(), None, Locale::De).unwrap();
        let compiled = |name: &str| t.entries[name].transparent.get().is_some();
        assert!(!compiled("email.txt.de.hbs"));
        t.prepare("email.txt.hbs");
        assert!(compiled("email.txt.de.hbs"), "resolved for the organisation's language");
        assert!(
            !compiled("email.txt.hbs"),
            "the English one waits for an English reader"
        );
        t.prepare_in("email.txt.hbs", Lang::of_tag("en").unwrap());
        assert!(compiled("email.txt.hbs"), "prepared for an English reader");
        t.prepare("no-such.hbs");
        let en = Templates::load_for(crate::channel::builtin_templates(), None, Locale::En).unwrap();
        en.prepare("email.txt.de.hbs");
        assert!(en.entries["email.txt.hbs"].transparent.get().is_some());
        assert!(
            en.entries["email.txt.de.hbs"].transparent.get().is_none(),
            "a translation's name means its base"
        );
    }

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

    /// Which templates are in their registries.
    fn compiled(t: &Templates) -> Vec<&str> {
        let names = t.entries.iter().filter(|(_, e)| e.transparent.get().is_some());
        names.map(|(n, _)| n.as_str()).collect()
    }

    /// A user's file is compiled when loading (its errors stop the command), a built-in when
    /// first used, and only that one.
    #[test]
    fn built_ins_are_compiled_when_first_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.txt.hbs"), "{{v}}").unwrap();
        let t = Templates::load(crate::channel::builtin_templates(), Some(dir.path())).unwrap();
        assert_eq!(compiled(&t), ["mine.txt.hbs"]);
        assert_eq!(
            t.render("email.subject.hbs", &json!({"title": "T"}))
                .unwrap()
                .trim_end(),
            "T"
        );
        assert!(t.is_transparent("email.txt.hbs"));
        assert_eq!(compiled(&t), ["email.subject.hbs", "email.txt.hbs", "mine.txt.hbs"]);
    }

    /// A partial may name a template nobody used yet, and the user's file may be that partial.
    #[test]
    fn a_partial_finds_templates_not_used_before() {
        let builtins = [
            ("page.html.hbs", "[{{#if v}}{{> part.html.hbs}}{{/if}}]"),
            ("part.html.hbs", "built-in {{v}}"),
            ("other.html.hbs", "{{v}}"),
            ("plain.txt.hbs", "{{v}}"),
        ];
        let t = Templates::load(&builtins, None).unwrap();
        assert_eq!(
            t.render("page.html.hbs", &json!({"v": "<"})).unwrap(),
            "[built-in &lt;]"
        );
        // The registry of the template with the partial, all of it; not the others.
        assert_eq!(compiled(&t), ["other.html.hbs", "page.html.hbs", "part.html.hbs"]);

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part.html.hbs"), "mine {{v}}").unwrap();
        let t = Templates::load(&builtins, Some(dir.path())).unwrap();
        assert_eq!(t.render("page.html.hbs", &json!({"v": "<"})).unwrap(), "[mine &lt;]");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("page.html.hbs"), "({{> part.html.hbs}})").unwrap();
        let mut t = Templates::load(&builtins, Some(dir.path())).unwrap();
        assert_eq!(t.render("page.html.hbs", &json!({"v": 1})).unwrap(), "(built-in 1)");
        // A caller rendering through the registry itself finds every template of it.
        let reg = t.registry_for("other.html.hbs");
        assert_eq!(reg.render("other.html.hbs", &json!({"v": 2})).unwrap(), "2");
    }

    /// What loading no longer does for the built-ins: each compiles, in its registry.
    #[test]
    fn every_built_in_compiles() {
        let t = Templates::load(crate::channel::builtin_templates(), None).unwrap();
        for (name, entry) in &t.entries {
            let mut reg = t.write(entry.escaping);
            if let Err(e) = compile(&mut reg, name, entry) {
                panic!("{}", syntax_error(&entry.origin, &e));
            }
        }
        assert_eq!(compiled(&t).len(), crate::channel::builtin_templates().len());
    }
}
