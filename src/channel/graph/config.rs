//! The keys of `type = "facebook"` and `type = "instagram"` tables.

use std::sync::Arc;

use serde::Deserialize;

use crate::channel::{Channel, ChannelConfig};
use crate::config::{Common, Config, HumanDuration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacebookConfig {
    pub page_id: String,
    pub access_token_env: String,
    pub app_secret_env: Option<String>,
    pub graph_url: Option<String>,
    pub api_version: Option<String>,
    /// How long to wait before retrying when Graph throttles (usage at 100 %, error 368) without
    /// saying for how long (default "60s").
    pub throttle_wait: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstagramConfig {
    pub ig_user_id: String,
    pub access_token_env: String,
    pub app_secret_env: Option<String>,
    pub graph_url: Option<String>,
    pub api_version: Option<String>,
    /// As for Facebook (default "60s").
    pub throttle_wait: Option<HumanDuration>,
    /// First wait between media-container status checks (default "3s"); doubles up to 1 min.
    pub poll_interval: Option<HumanDuration>,
    /// Give up on a container that is not FINISHED after this long (default "5min").
    pub poll_timeout: Option<HumanDuration>,
    /// The facebook channel whose Page hosts local image files (uploaded unpublished), since
    /// Instagram only takes public URLs. Default: the first enabled channel of type facebook.
    pub image_host: Option<String>,
}

impl ChannelConfig for FacebookConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.graph_url.iter().map(|u| ("graph_url", u.as_str())).collect()
    }

    fn build(&self, name: &str, common: &Common, config: &Config) -> Result<Arc<dyn Channel>, String> {
        super::build_facebook(name, common, self, config)
    }
}

impl ChannelConfig for InstagramConfig {
    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.graph_url.iter().map(|u| ("graph_url", u.as_str())).collect()
    }

    fn build(&self, name: &str, common: &Common, config: &Config) -> Result<Arc<dyn Channel>, String> {
        super::build_instagram(name, common, self, config)
    }
}
