//! The keys of a `type = "email"` table.

use std::sync::Arc;

use serde::Deserialize;

use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig};
use crate::settings::{Common, HumanDuration, Keyed, MIN_TIMEOUT, Rate, is_loopback_host, keyed};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub from: String,
    pub reply_to: Option<String>,
    pub list_unsubscribe: Option<String>,
    pub dkim: Option<DkimConfig>,
    /// Hostname announced in EHLO and used on the right of Message-IDs (default: From's domain).
    pub hello_name: Option<String>,
    pub relays: Vec<RelayConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub selector: String,
    pub domain: String,
    pub private_key_file: String,
    #[serde(default, deserialize_with = "keyed")]
    pub algorithm: DkimAlgorithm,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    #[default]
    Rsa,
    Ed25519,
}

impl Keyed for DkimAlgorithm {
    const KEY: &'static str = "dkim algorithm";
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub name: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "keyed")]
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub ca_file: Option<String>,
    pub rate: Option<Rate>,
    pub timeout: Option<HumanDuration>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Starttls,
    Tls,
    None,
}

impl Keyed for TlsMode {
    const KEY: &'static str = "relay tls";
}

/// The email templates (the outbox writes its `.eml` files with them too).
pub const SUBJECT_TEMPLATE: Builtin = ("email.subject.hbs", include_str!("email.subject.hbs"));
pub const TEXT_TEMPLATE: Builtin = ("email.txt.hbs", include_str!("email.txt.hbs"));
pub const HTML_TEMPLATE: Builtin = ("email.html.hbs", include_str!("email.html.hbs"));
pub const TEXT_TEMPLATE_DE: Builtin = ("email.txt.de.hbs", include_str!("email.txt.de.hbs"));
pub const HTML_TEMPLATE_DE: Builtin = ("email.html.de.hbs", include_str!("email.html.de.hbs"));

impl BuiltinTemplates for EmailConfig {
    const TEMPLATES: &'static [Builtin] = &[
        SUBJECT_TEMPLATE,
        TEXT_TEMPLATE,
        TEXT_TEMPLATE_DE,
        HTML_TEMPLATE,
        HTML_TEMPLATE_DE,
    ];
}

impl ChannelConfig for EmailConfig {
    fn validate(&self, name: &str) -> Result<(), String> {
        if self.relays.is_empty() {
            return Err(format!(
                "[channels.{name}] needs at least one [[channels.{name}.relays]]"
            ));
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|err| format!("[channels.{name}] from {:?} is not a valid address: {err}", self.from))?;
        for (i, r) in self.relays.iter().enumerate() {
            if r.tls == TlsMode::None && !is_loopback_host(&r.host) {
                return Err(format!(
                    "[channels.{name}] relay {} ({}): tls = \"none\" is only allowed for loopback hosts \
                     (localhost, 127.0.0.0/8, ::1); use \"starttls\" or \"tls\"",
                    r.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                    r.host
                ));
            }
            if let Some(t) = r.timeout
                && t.0 < MIN_TIMEOUT
            {
                return Err(format!(
                    "[channels.{name}] relay {}: timeout must be at least 1s",
                    r.host
                ));
            }
            if r.username.is_some() != r.password_env.is_some() {
                return Err(format!(
                    "[channels.{name}] relay {}: username and password_env go together",
                    r.host
                ));
            }
        }
        Ok(())
    }

    fn build(&self, name: &str, common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(super::Email::new(name, common, self, ctx)?))
    }
}
