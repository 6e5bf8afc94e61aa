//! The keys of a `type = "whatsapp"` table.

use std::sync::Arc;

use handlebars::Handlebars;
use serde::Deserialize;

use crate::channel::graph::GraphAccount;
use crate::channel::graph::client::valid_id;
use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig};
use crate::settings::Common;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    /// The business phone number's Graph id (WhatsApp Manager → API Setup), not the number.
    pub phone_number_id: String,
    /// An approved template: business-initiated messages must be one.
    pub message_template: String,
    /// The template's language code as approved ("de", "en_US").
    pub language: String,
    /// The template body's parameters in order, each a handlebars template rendered per person.
    #[serde(default)]
    pub parameters: Vec<String>,
    /// The token, `graph_url`, `api_version` (as the facebook and instagram channels have them).
    #[serde(flatten)]
    pub account: GraphAccount,
}

impl BuiltinTemplates for WhatsappConfig {
    // The text is the approved template at Meta; only its parameters are rendered here.
    const TEMPLATES: &'static [Builtin] = &[];
}

impl WhatsappConfig {
    /// The parameters compiled: strict (a missing variable is an error while planning) and not
    /// escaped — the JSON encoding of the request body is their only escaping.
    pub(super) fn compile(&self, name: &str) -> Result<Handlebars<'static>, String> {
        let mut h = Handlebars::new();
        h.set_strict_mode(true);
        h.register_escape_fn(handlebars::no_escape);
        for (i, p) in self.parameters.iter().enumerate() {
            h.register_template_string(&super::text::parameter_name(i), p)
                .map_err(|e| {
                    format!(
                        "[channels.{name}] parameters[{i}] {p:?}: template syntax error: {}",
                        e.reason()
                    )
                })?;
        }
        Ok(h)
    }
}

/// Template names are lowercase letters, digits and underscores (as WhatsApp Manager creates
/// them); language codes letters and underscores ("de", "pt_BR").
fn plain(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.len() <= 512 && s.chars().all(ok)
}

impl ChannelConfig for WhatsappConfig {
    fn validate(&self, name: &str) -> Result<(), String> {
        let at = format!("[channels.{name}]");
        if !valid_id(&self.phone_number_id) || !self.phone_number_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!(
                "{at} phone_number_id {:?}: expected the number's Graph id (digits, from WhatsApp Manager → API \
                 Setup), not the phone number itself",
                self.phone_number_id
            ));
        }
        if !plain(&self.message_template, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'
        }) {
            return Err(format!(
                "{at} message_template {:?}: expected an approved template's name (lowercase letters, digits, _)",
                self.message_template
            ));
        }
        if !plain(&self.language, |c| c.is_ascii_alphabetic() || c == '_') {
            return Err(format!(
                "{at} language {:?}: expected the template's language code, such as \"de\" or \"en_US\"",
                self.language
            ));
        }
        self.compile(name).map(drop)
    }

    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.account.urls()
    }

    fn build(&self, name: &str, common: &Common, _ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(super::Whatsapp::new(name, common, self)?))
    }
}
