//! Facebook Page and Instagram through the Graph API (not implemented yet).

use std::sync::Arc;

use crate::channel::Channel;
use crate::config::{Common, Config, FacebookConfig, InstagramConfig};

pub fn build_facebook(
    _name: &str,
    _common: &Common,
    _cfg: &FacebookConfig,
    _config: &Config,
) -> Result<Arc<dyn Channel>, String> {
    Err("channel type `facebook` is not available in this version of announce yet (set `enabled = false`)".into())
}

pub fn build_instagram(
    _name: &str,
    _common: &Common,
    _cfg: &InstagramConfig,
    _config: &Config,
) -> Result<Arc<dyn Channel>, String> {
    Err("channel type `instagram` is not available in this version of announce yet (set `enabled = false`)".into())
}
