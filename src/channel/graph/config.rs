//! The keys of `type = "facebook"` and `type = "instagram"` tables.

use std::sync::Arc;

use serde::Deserialize;

use super::client::{GraphClient, Settings};
use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig, builtin};
use crate::settings::{Common, HumanDuration};

/// The keys facebook and instagram tables share: the Graph account and how to reach it.
#[derive(Debug, Clone, Deserialize)]
pub struct GraphAccount {
    pub access_token_env: String,
    pub app_secret_env: Option<String>,
    pub graph_url: Option<String>,
    pub api_version: Option<String>,
    /// How long to wait before retrying when Graph throttles (usage at 100 %, error 368) without
    /// saying for how long (default "60s").
    pub throttle_wait: Option<HumanDuration>,
}

impl GraphAccount {
    /// The client for channel `name`; `token_kind` ("Page"...) is for the renewal advice.
    pub fn client(&self, name: &str, token_kind: &'static str) -> Result<GraphClient, String> {
        GraphClient::new(&Settings {
            channel: name,
            graph_url: self.graph_url.as_deref(),
            api_version: self.api_version.as_deref(),
            token_env: &self.access_token_env,
            app_secret_env: self.app_secret_env.as_deref(),
            throttle_wait: self.throttle_wait.map(|d| d.0),
            token_kind,
        })
    }

    pub(crate) fn urls(&self) -> Vec<(&'static str, &str)> {
        self.graph_url.iter().map(|u| ("graph_url", u.as_str())).collect()
    }
}

// `flatten` with `deny_unknown_fields` still refuses unknown keys (serde checks what the
// flattened struct left), but its message does not list the valid keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacebookConfig {
    pub page_id: String,
    #[serde(flatten)]
    pub account: GraphAccount,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstagramConfig {
    pub ig_user_id: String,
    #[serde(flatten)]
    pub account: GraphAccount,
    /// First wait between media-container status checks (default "3s"); doubles up to 1 min.
    pub poll_interval: Option<HumanDuration>,
    /// Give up on a container that is not FINISHED after this long (default "5min").
    pub poll_timeout: Option<HumanDuration>,
    /// The facebook channel whose Page hosts local image files (uploaded unpublished), since
    /// Instagram only takes public URLs. Default: the first enabled channel of type facebook.
    pub image_host: Option<String>,
}

impl BuiltinTemplates for FacebookConfig {
    const TEMPLATES: &'static [Builtin] = &[builtin!("facebook.hbs"), builtin!("facebook.de.hbs")];
}

impl BuiltinTemplates for InstagramConfig {
    const TEMPLATES: &'static [Builtin] = &[builtin!("instagram.hbs"), builtin!("instagram.de.hbs")];
}

impl ChannelConfig for FacebookConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.account.urls()
    }

    fn build(&self, name: &str, common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        super::build_facebook(name, common, self, ctx)
    }
}

impl ChannelConfig for InstagramConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.account.urls()
    }

    fn build(&self, name: &str, common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        super::build_instagram(name, common, self, ctx)
    }
}
