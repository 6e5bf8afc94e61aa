//! The keys of a `type = "webhook"` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::presets::Preset;
use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig};
use crate::settings::{Common, keyed};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST. Chat webhook URLs carry their token in the path: prefer `url_env` for them.
    pub url: Option<String>,
    /// Environment variable holding the URL instead of `url` (exactly one of the two).
    pub url_env: Option<String>,
    /// Standard Webhooks signing secret(s) `whsec_...` (several, space-separated, during rotation).
    pub secret_env: Option<String>,
    /// The body shape a chat tool's API expects.
    #[serde(default, deserialize_with = "keyed")]
    pub preset: Option<Preset>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl BuiltinTemplates for WebhookConfig {
    const TEMPLATES: &'static [Builtin] = &[
        ("webhook.json.hbs", include_str!("webhook.json.hbs")),
        ("webhook.chat.hbs", include_str!("webhook.chat.hbs")),
    ];
}

impl ChannelConfig for WebhookConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.url.iter().map(|u| ("url", u.as_str())).collect()
    }

    fn build(&self, name: &str, common: &Common, _ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(super::Webhook::new(name, common, self)?))
    }
}
