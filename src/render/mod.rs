//! Everything between the announcement and a channel's bytes: Markdown, templates, SMS text.

pub mod inline;
pub mod lang;
pub mod markdown;
pub mod skeleton;
pub mod sms;
pub mod templates;

use serde_json::{Map, Value, json};

pub use templates::Templates;

use crate::announcement::Announcement;
use crate::audience::Recipient;
use crate::settings::Org;
use lang::Lang;

/// The template context of one message: announcement fields, `vars.*`, `org.*`, `channel.*`,
/// `recipient.*` (with the CSV's extra columns), `run_id`, `date`.
///
/// Kept as a handlebars context so that every template of a message renders from it as it is
/// (handlebars would otherwise copy the whole data, bodies included, for each template).
#[derive(Debug, Clone)]
pub struct Context {
    data: handlebars::Context,
    /// The address this message goes to (email, E.164 phone, or broadcast target).
    pub address: String,
    /// The person's language (the organisation's for a broadcast): picks the templates.
    pub lang: Lang,
}

impl Context {
    pub fn new(data: Value, address: impl Into<String>) -> Context {
        Context {
            data: handlebars::Context::from(data),
            address: address.into(),
            lang: Lang::default(),
        }
    }

    pub fn data(&self) -> &Value {
        self.data.data()
    }

    pub fn handlebars(&self) -> &handlebars::Context {
        &self.data
    }

    pub fn recipient_name(&self) -> &str {
        self.data()["recipient"]["name"].as_str().unwrap_or("")
    }
}

/// The part of the context shared by every message of a run, built once per language: the
/// announcement's translation for it (or the main file), and dates as it writes them.
#[derive(Debug, Clone)]
pub struct BaseContext {
    org: Lang,
    /// The built-in languages and those of the translations.
    by_lang: Vec<(Lang, Map<String, Value>)>,
    /// Any other language: the main file, the organisation's dates.
    other: Map<String, Value>,
}

impl BaseContext {
    pub fn new(a: &Announcement, org: &Org, run_id: &str, tz: &jiff::tz::TimeZone) -> BaseContext {
        let now = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).datetime();
        let org_lang = Lang::from(org.locale);
        let mut langs: Vec<Lang> = crate::locale::Locale::ALL.into_iter().map(Lang::from).collect();
        for (l, _) in &a.translations {
            if !langs.contains(l) {
                langs.push(*l);
            }
        }
        let base = |lang: Option<Lang>| {
            let date = lang.and_then(Lang::locale).unwrap_or(org.locale).datetime(&now);
            base_map(a.version(lang.unwrap_or(org_lang)), org, run_id, date)
        };
        BaseContext {
            org: org_lang,
            by_lang: langs.into_iter().map(|l| (l, base(Some(l)))).collect(),
            other: base(None),
        }
    }

    /// The person's language: their `locale` column's, else the organisation's.
    pub fn lang_of(&self, recipient: Option<&Value>) -> Lang {
        recipient
            .and_then(|r| r["locale"].as_str())
            .and_then(Lang::of_tag)
            .unwrap_or(self.org)
    }

    /// The language whose text people of `lang` get: their own if announce or a translation
    /// has it, else the organisation's.
    pub fn served(&self, lang: Lang) -> Lang {
        if self.by_lang.iter().any(|(l, _)| *l == lang) {
            lang
        } else {
            self.org
        }
    }

    /// The full context for one target of one channel.
    pub fn for_target(&self, channel: &str, channel_type: &str, recipient: Option<&Value>, address: &str) -> Context {
        let lang = self.lang_of(recipient);
        let base = self
            .by_lang
            .iter()
            .find(|(l, _)| *l == lang)
            .map_or(&self.other, |(_, b)| b);
        let mut data = base.clone();
        data.insert("channel".into(), json!({"name": channel, "type": channel_type}));
        data.insert("recipient".into(), recipient.cloned().unwrap_or_else(|| json!({})));
        let mut ctx = Context::new(Value::Object(data), address);
        ctx.lang = lang;
        ctx
    }

    /// [`BaseContext::for_target`] in `slot`: made there the first time, retargeted after. The
    /// slot holds only contexts of this base (keep it beside the base, not in a thread-local
    /// that outlives it).
    pub fn target_in<'c>(
        &self,
        slot: &'c mut Option<Context>,
        channel: &str,
        channel_type: &str,
        recipient: Option<&Value>,
        address: &str,
    ) -> &'c Context {
        match slot {
            Some(ctx) => {
                self.retarget(ctx, channel, channel_type, recipient.cloned(), address);
                ctx
            }
            None => slot.insert(self.for_target(channel, channel_type, recipient, address)),
        }
    }

    /// [`BaseContext::for_target`] into `ctx`, a context this base made before: for a person of
    /// the same language only `channel`, `recipient` and the address change, rather than the
    /// shared part (bodies included) being copied again for every message.
    pub fn retarget(
        &self,
        ctx: &mut Context,
        channel: &str,
        channel_type: &str,
        recipient: Option<Value>,
        address: &str,
    ) {
        let lang = self.lang_of(recipient.as_ref());
        if ctx.lang == lang
            && let Value::Object(data) = ctx.data.data_mut()
        {
            data.insert("channel".into(), json!({"name": channel, "type": channel_type}));
            data.insert("recipient".into(), recipient.unwrap_or_else(|| json!({})));
            address.clone_into(&mut ctx.address);
        } else {
            *ctx = self.for_target(channel, channel_type, recipient.as_ref(), address);
        }
    }
}

/// The context of one language: `a` is the announcement's version for it.
fn base_map(a: &Announcement, org: &Org, run_id: &str, date: String) -> Map<String, Value> {
    let m = &a.meta;
    let mut base = Map::new();
    base.insert("title".into(), json!(m.title));
    let optional = [
        ("summary", &m.summary),
        ("link", &m.link),
        ("image", &m.image),
        ("thread", &m.thread),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            base.insert(k.into(), json!(v));
        }
    }
    base.insert("severity".into(), json!(m.severity.as_str()));
    base.insert("tags".into(), json!(m.tags));
    base.insert("body_html".into(), json!(a.body_html));
    base.insert("body_text".into(), json!(a.body_text));
    base.insert("body_markdown".into(), json!(a.body_markdown));
    base.insert(
        "vars".into(),
        serde_json::to_value(&m.vars).unwrap_or_else(|_| json!({})),
    );
    base.insert("org".into(), serde_json::to_value(org).unwrap_or_else(|_| json!({})));
    base.insert("run_id".into(), json!(run_id));
    // Local files named in the front matter (image) are relative to the announcement.
    base.insert("announcement_dir".into(), json!(a.base_dir.display().to_string()));
    base.insert("date".into(), json!(date));
    // Absent optional org fields are removed so templates test them with {{#if}}.
    if let Some(Value::Object(o)) = base.get_mut("org") {
        o.retain(|_, v| !v.is_null());
    }
    base
}

/// `recipient.*`: the known columns plus every extra column of the CSV row.
pub fn recipient_value(r: &Recipient) -> Value {
    let mut m = Map::new();
    for (k, v) in &r.extra {
        m.insert(k.clone(), json!(v));
    }
    m.insert("name".into(), json!(r.name));
    if let Some(e) = r.email.valid() {
        m.insert("email".into(), json!(e));
    }
    if let Some(p) = r.phone.valid() {
        m.insert("phone".into(), json!(p));
    }
    m.insert("tags".into(), json!(r.tags));
    if let Some(l) = &r.locale {
        m.insert("locale".into(), json!(l));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retargeted_context_is_the_one_for_target_makes() {
        let ann = Announcement::parse(
            "n.md",
            std::path::Path::new("."),
            "+++\ntitle = \"t\"\n+++\nbody\n".into(),
        )
        .unwrap();
        let base = BaseContext::new(&ann, &Org::default(), "r1", &jiff::tz::TimeZone::UTC);
        let people = [
            Some(json!({"name": "Anna", "email": "a@x.de"})),
            Some(json!({"name": "Ben", "locale": "de", "extra": "1"})),
            None,
            Some(json!({"name": "Chloé", "locale": "fr"})),
            Some(json!({"name": "Dana", "locale": "de"})),
        ];
        let mut ctx = base.for_target("sms", "generic", people[1].as_ref(), "+4915100000000");
        for (i, p) in people.iter().enumerate() {
            let channel = if i % 2 == 0 { "email" } else { "sms" };
            let address = format!("p{i}@x.de");
            base.retarget(&mut ctx, channel, "email", p.clone(), &address);
            let fresh = base.for_target(channel, "email", p.as_ref(), &address);
            assert_eq!(ctx.data(), fresh.data(), "person {i}");
            assert_eq!((&ctx.address, ctx.lang), (&fresh.address, fresh.lang), "person {i}");
        }
    }
}
