//! The `sms` channel (not implemented yet).

use std::sync::Arc;

use crate::channel::Channel;
use crate::config::{Common, Config, SmsConfig};

pub fn build(_name: &str, _common: &Common, _cfg: &SmsConfig, _config: &Config) -> Result<Arc<dyn Channel>, String> {
    Err("channel type `sms` is not available in this version of announce yet (set `enabled = false`)".into())
}
