//! The keys of a `type = "voice"` table.

use std::sync::Arc;

use serde::Deserialize;

use crate::channel::{BuildContext, Builtin, BuiltinTemplates, Channel, ChannelConfig};
use crate::settings::{Common, Keyed, keyed};

/// `type = "voice"`: a text-to-speech call to every person with a valid phone number, through
/// one provider. Which keys apply depends on `provider`; `Voice::new` checks them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceConfig {
    #[serde(deserialize_with = "keyed")]
    pub provider: Provider,
    /// The number the call comes from (E.164; a number the provider lets the account use).
    pub from: String,
    /// twilio: the Account SID (`AC...`).
    pub account_sid: Option<String>,
    /// twilio: environment variable holding the Auth Token.
    pub auth_token_env: Option<String>,
    /// vonage: the application's id; its JWT is signed with `private_key_file`.
    pub application_id: Option<String>,
    /// vonage: the application's RSA private key (PEM), relative to the config's folder.
    pub private_key_file: Option<String>,
    /// BCP-47 language of the speech, e.g. "de-DE". Default: the language of the text each
    /// person gets (or of a `template` named for one language).
    pub language: Option<String>,
    /// The provider's voice name (twilio: "Polly.Marlene"; vonage: a `style` number).
    pub voice: Option<String>,
    /// How often the message is spoken in the call. Default 1.
    pub repeat: Option<u32>,
    /// The API root (tests and proxies point it elsewhere). Defaults per provider.
    pub base_url: Option<String>,
}

/// The voice API the channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Twilio,
    Vonage,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Vonage => "vonage",
        }
    }
}

impl Keyed for Provider {
    const KEY: &'static str = "provider";
}

/// The spoken text, in English and German.
pub const TEMPLATE: Builtin = ("voice.txt.hbs", include_str!("voice.txt.hbs"));
pub const TEMPLATE_DE: Builtin = ("voice.txt.de.hbs", include_str!("voice.txt.de.hbs"));

impl BuiltinTemplates for VoiceConfig {
    const TEMPLATES: &'static [Builtin] = &[TEMPLATE, TEMPLATE_DE];
}

impl ChannelConfig for VoiceConfig {
    fn validate(&self, name: &str) -> Result<(), String> {
        let at = format!("[channels.{name}]");
        let p = self.provider.as_str();
        let keys: [(&str, bool, Provider); 4] = [
            ("account_sid", self.account_sid.is_some(), Provider::Twilio),
            ("auth_token_env", self.auth_token_env.is_some(), Provider::Twilio),
            ("application_id", self.application_id.is_some(), Provider::Vonage),
            ("private_key_file", self.private_key_file.is_some(), Provider::Vonage),
        ];
        for (key, set, owner) in keys {
            if set && owner != self.provider {
                return Err(format!(
                    "{at} {key} is not used by provider {p:?} (only by {:?})",
                    owner.as_str()
                ));
            }
            if !set && owner == self.provider {
                return Err(format!("{at} provider {p:?} needs {key}"));
            }
        }
        if let Some(r) = self.repeat
            && !(1..=super::MAX_REPEAT).contains(&r)
        {
            return Err(format!(
                "{at} repeat = {r}: use 1 to {} (how often the message is spoken)",
                super::MAX_REPEAT
            ));
        }
        Ok(())
    }

    fn urls(&self) -> Vec<(&'static str, &str)> {
        self.base_url.iter().map(|u| ("base_url", u.as_str())).collect()
    }

    fn build(&self, name: &str, common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String> {
        Ok(Arc::new(super::Voice::new(name, common, self, ctx)?))
    }
}
