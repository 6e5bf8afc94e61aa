//! Everything between the announcement and a channel's bytes: Markdown, templates, SMS text.

pub mod inline;
pub mod markdown;
pub mod skeleton;
pub mod sms;
pub mod templates;

use serde_json::{Map, Value, json};

pub use templates::Templates;

use crate::announcement::Announcement;
use crate::audience::Recipient;
use crate::settings::Org;

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
}

impl Context {
    pub fn new(data: Value, address: impl Into<String>) -> Context {
        Context {
            data: handlebars::Context::from(data),
            address: address.into(),
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

/// The part of the context shared by every message of a run, built once.
#[derive(Debug, Clone)]
pub struct BaseContext {
    base: Map<String, Value>,
}

impl BaseContext {
    pub fn new(a: &Announcement, org: &Org, run_id: &str, tz: &jiff::tz::TimeZone) -> BaseContext {
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
        let now = jiff::Timestamp::now().to_zoned_datetime(tz.clone());
        base.insert("date".into(), json!(now.strftime("%d.%m.%Y %H:%M").to_string()));
        // Absent optional org fields are removed so templates test them with {{#if}}.
        if let Some(Value::Object(o)) = base.get_mut("org") {
            o.retain(|_, v| !v.is_null());
        }
        BaseContext { base }
    }

    /// The full context for one target of one channel.
    pub fn for_target(&self, channel: &str, channel_type: &str, recipient: Option<&Value>, address: &str) -> Context {
        let mut data = self.base.clone();
        data.insert("channel".into(), json!({"name": channel, "type": channel_type}));
        data.insert("recipient".into(), recipient.cloned().unwrap_or_else(|| json!({})));
        Context::new(Value::Object(data), address)
    }
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
