//! The `whatsapp` channel: one approved template message per mobile number through the
//! WhatsApp Business Cloud API (`POST /{phone_number_id}/messages` on Graph, with the Graph
//! client, token, error envelope and usage headers of [`crate::channel::graph`]).
//!
//! * Business-initiated messages must be templates approved at Meta, so nothing but the
//!   template's body parameters is rendered here: each of `parameters` is a handlebars
//!   template, rendered per person, not escaped (the JSON encoding of the body is the only
//!   escaping), with line breaks, tabs and runs of more than 4 spaces folded to one space
//!   (WhatsApp refuses them with 132018).
//! * The rendered message's `text` lists the parameters one a line (`{{1}} = ...`), which is
//!   what `preview` shows and what `deliver` sends; template and language are in its stats.
//! * `biz_opaque_callback_data` is the delivery's idempotency key, the same on every retry, so
//!   the status webhooks can be matched to the journal.
//! * The API has no idempotency key: a request that got no answer is `unknown`, never re-sent
//!   automatically. Errors are classified by their `code` ([`classify`]).

mod classify;
mod config;
mod text;

use std::time::Duration;

use async_trait::async_trait;
use handlebars::Handlebars;
use serde_json::{Value, json};

use crate::channel::graph::client::{Effect, GraphClient, GraphError, unexpected};
use crate::channel::http;
use crate::channel::{AddressKind, Channel, Delivery, DeliveryError, Meta, Probe, Reach, Receipt, Rendered, Stat};
use crate::render::{Context, Templates};
use crate::settings::Common;

use classify::MAYBE_SENT;
pub use classify::classify;
pub use config::WhatsappConfig;
use text::{fold, line, parameters_of};

/// What `check` reads of the business phone number.
const PHONE_FIELDS: &str = "display_phone_number,verified_name,quality_rating";

pub struct Whatsapp {
    meta: Meta,
    phone_number_id: String,
    template: String,
    language: String,
    parameters: Vec<String>,
    compiled: Handlebars<'static>,
    client: GraphClient,
}

impl Whatsapp {
    pub fn new(name: &str, common: &Common, cfg: &WhatsappConfig) -> Result<Whatsapp, String> {
        if common.template.is_some() {
            return Err(format!(
                "[channels.{name}] template: a WhatsApp message is the approved template named by \
                 message_template; its body parameters are `parameters`"
            ));
        }
        Ok(Whatsapp {
            meta: Meta::new::<WhatsappConfig>(name, Reach::PerPerson(AddressKind::Phone)),
            phone_number_id: cfg.phone_number_id.clone(),
            template: cfg.message_template.clone(),
            language: cfg.language.clone(),
            parameters: cfg.parameters.clone(),
            compiled: cfg.compile(name)?,
            client: cfg.account.client(name, "WhatsApp")?,
        })
    }

    fn messages_path(&self) -> String {
        format!("{}/messages", self.phone_number_id)
    }

    /// The request body, exactly as the Cloud API documents a template message.
    fn body(&self, to: &str, parameters: &[&str], callback: &str) -> Value {
        let mut template = json!({"name": self.template, "language": {"code": self.language}});
        if !parameters.is_empty() {
            let texts: Vec<Value> = parameters.iter().map(|t| json!({"type": "text", "text": t})).collect();
            template["components"] = json!([{"type": "body", "parameters": texts}]);
        }
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to.trim_start_matches('+'),
            "type": "template",
            "template": template,
            "biz_opaque_callback_data": callback,
        })
    }
}

#[async_trait]
impl Channel for Whatsapp {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    // WhatsApp lives on mobile numbers; until numbers carry their kinds, SMS's rule decides.
    fn skip_reason(&self, address: &str) -> Option<String> {
        crate::phone::skip_reason(address, crate::phone::Reachable::Texts)
    }

    fn render(&self, _templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let mut lines = Vec::with_capacity(self.parameters.len());
        let mut stats = vec![
            Stat::new("template", &self.template),
            Stat::new("language", &self.language),
            Stat::new("parameters", self.parameters.len()),
        ];
        for (i, source) in self.parameters.iter().enumerate() {
            let raw = self
                .compiled
                .render_with_context(&text::parameter_name(i), ctx.handlebars())
                .map_err(|e| format!("[channels.{}] parameters[{i}] {source:?}: {}", self.name(), e.reason()))?;
            let value = fold(&raw);
            if value.is_empty() {
                return Err(format!(
                    "[channels.{}] parameters[{i}] {source:?} is empty for {}; WhatsApp refuses empty parameters \
                     (give a fallback, e.g. {{{{#if recipient.name}}}}{{{{recipient.name}}}}{{{{else}}}}Kundin, \
                     Kunde{{{{/if}}}})",
                    self.name(),
                    ctx.address
                ));
            }
            // The plan shows stats only: the rendered value goes there too.
            stats.push(Stat::new(
                &format!("parameter {}", i + 1),
                format!("{value} ({} characters)", value.chars().count()),
            ));
            lines.push(line(i, &value));
        }
        let text = if lines.is_empty() {
            "(the template has no parameters)".to_string()
        } else {
            lines.join("\n")
        };
        Ok(Rendered::plain(text, stats))
    }

    async fn deliver(&self, d: &Delivery, m: &Rendered) -> Result<Receipt, DeliveryError> {
        let path = self.messages_path();
        let route = Some(self.client.route(&path));
        let parameters = parameters_of(&m.text);
        if parameters.len() != self.parameters.len() {
            return Err(DeliveryError::permanent(format!(
                "the rendered message has {} of the template's {} parameters",
                parameters.len(),
                self.parameters.len()
            )));
        }
        let body = self.body(&d.address, &parameters, &d.idempotency_key);
        let fail = |e: GraphError| classify(&e, &self.client.hints, d.attempt, route.clone());
        // Graph error texts can quote the request: no secret reaches the journal or a report.
        let result = match self.client.post_json(&path, &body, Effect::Publish).await {
            Err(e) => Err(fail(e)),
            Ok(v) => match v["messages"][0]["id"].as_str().filter(|id| !id.trim().is_empty()) {
                Some(id) => Ok(Receipt {
                    provider_id: Some(http::excerpt(id, http::EXCERPT_CHARS)),
                    route: route.clone(),
                }),
                None => Err(fail(unexpected(&v, Effect::Publish))),
            },
        };
        result.map_err(DeliveryError::redacted)
    }

    /// `GET /{phone_number_id}?fields=display_phone_number,verified_name,quality_rating`.
    async fn check(&self) -> Vec<Probe> {
        let seen = match self.client.get(&self.phone_number_id, PHONE_FIELDS).await {
            Ok(v) => {
                let field = |k: &str| v[k].as_str().unwrap_or("?").to_string();
                Ok(format!(
                    "{} ({}), quality rating {}, via {}",
                    field("display_phone_number"),
                    field("verified_name"),
                    field("quality_rating"),
                    self.client.route("")
                ))
            }
            Err(e) => Err(crate::secrets::redact(&classify(&e, &self.client.hints, 1, None).to_string()).into_owned()),
        };
        vec![Probe::outcome(format!("phone number {}", self.phone_number_id), seen)]
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(90))
    }

    /// Throughput (130429) is the business number's, not one person's.
    fn retry_after_pauses_channel(&self) -> bool {
        true
    }

    fn timeout_error(&self, after: Duration) -> DeliveryError {
        DeliveryError::ambiguous(format!(
            "no answer from WhatsApp within {after:?} (the channel's `timeout`); {MAYBE_SENT}"
        ))
    }
}
