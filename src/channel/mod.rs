//! The channel abstraction. A channel renders one message for one target and delivers it,
//! returning the provider's id or a *classified* error; the dispatcher owns retries, rate
//! limits, concurrency and the journal, so a channel module is only about its provider.
//!
//! # Registration
//!
//! Each channel module owns its config struct (the keys of its `[channels.NAME]` table) and
//! implements [`ChannelConfig`] for it: the checks serde cannot express, the URL keys for the
//! https rule, and `build`. The one list in `channels!` below turns those structs into
//! [`ChannelKind`] (dispatching on `type`), [`CHANNEL_TYPES`] and [`build`], and gives each
//! struct its type's name ([`Registered`]). `build` makes the channel, which holds a [`Meta`]:
//! `Meta::new::<ItsConfig>(name, reach)`, plus `.concurrency(n)` when 4 in flight is wrong for
//! the provider. [`Channel::meta`] is the one accessor a channel writes for it; `name`,
//! `type_name`, `reach` and `default_concurrency` read it. Adding a channel type is a module
//! and one line there (see the README's "Adding a channel").

pub mod email;
pub mod failover;
pub mod graph;
pub mod http;
pub mod mastodon;
pub mod outbox;
mod rendered;
pub mod sms;
pub mod statuspage;
pub mod telegram;
pub mod voice;
pub mod webhook;
pub mod whatsapp;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{AppError, SourceLocation};
use crate::render::{Context, Templates};
use crate::settings::{Common, Org};

/// Whom a channel reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// One delivery per recipient, addressed by this kind of address.
    PerPerson(AddressKind),
    /// One delivery per run, to this page / account / site.
    Broadcast(String),
    /// One delivery per run to each of these (e.g. several Telegram chats).
    Targets(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Email,
    Phone,
    /// The outbox: the email address when there is one, else the phone number.
    EmailOrPhone,
}

/// A message rendered for one target. Channels fill what they use.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rendered {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Rate-limiter cells this message costs (SMS segments with `rate_unit = "segment"`).
    #[serde(skip)]
    pub weight: u32,
    /// What the post carries besides its text, resolved while rendering; `deliver` reads it
    /// here, never from `stats` (which are for people to read).
    #[serde(skip)]
    pub media: Media,
    /// The BCP-47 language of the text, for a provider that must be told (a call's speech).
    #[serde(skip)]
    pub language: Option<String>,
    /// Lengths against limits, for `preview` and the plan.
    #[serde(skip)]
    pub stats: Vec<Stat>,
}

/// The announcement's image, link and alt text as a channel will post them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Media {
    pub image: Option<Image>,
    /// The link a text post previews.
    pub link: Option<String>,
    /// The image's alt text.
    pub alt: Option<String>,
}

/// An image to post: an https URL, or a local file that passed [`crate::media`]'s checks
/// (canonical, so a `resume` from another folder still finds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Url(String),
    File(std::path::PathBuf),
}

/// One measured property of a rendered message, e.g. "segments: 2 (max 3)".
#[derive(Debug, Clone, Serialize)]
pub struct Stat {
    pub label: String,
    pub value: String,
    /// The limit, when there is one.
    pub limit: Option<String>,
    pub over: bool,
}

impl Stat {
    pub fn new(label: &str, value: impl ToString) -> Stat {
        Stat {
            label: label.into(),
            value: value.to_string(),
            limit: None,
            over: false,
        }
    }

    pub fn limited(label: &str, value: usize, limit: usize) -> Stat {
        Stat {
            label: label.into(),
            value: value.to_string(),
            limit: Some(limit.to_string()),
            over: value > limit,
        }
    }
}

/// What the dispatcher knows about the delivery being attempted.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub run_id: String,
    /// Email address, E.164 number, or broadcast target id.
    pub address: String,
    pub name: String,
    pub attempt: u32,
    /// Stable across retries, relays and resumes (RFC 5322 Message-ID without brackets).
    pub message_id: String,
    /// Stable key for providers that deduplicate (Idempotency-Key, webhook-id).
    pub idempotency_key: String,
    /// Message-ID of the first message of this announcement's thread to this recipient.
    pub thread_root: Option<String>,
    /// The announcements published so far, for channels that list them (the status page).
    pub history: Arc<dyn History>,
}

/// An announcement as the journal recorded it.
#[derive(Debug, Clone)]
pub struct Published {
    pub run_id: String,
    /// The announcement file as it was read, and where it was read from.
    pub announcement: String,
    pub origin: String,
    /// The folder its relative paths start from.
    pub base_dir: String,
    /// RFC 3339.
    pub started_at: String,
}

/// A read-only view of what the journal has published, which the dispatcher hands to every
/// delivery: a channel never opens the journal itself.
pub trait History: Send + Sync + std::fmt::Debug {
    /// The announcements the channel `channel` published (a delivery `sent` or `delivered`; dry
    /// runs left out), plus the run `current` being sent now, in the order they were started.
    fn published(&self, channel: &str, current: &str) -> Result<Vec<Published>, String>;
}

/// A provider's acceptance.
#[derive(Debug, Clone, Default)]
pub struct Receipt {
    pub provider_id: Option<String>,
    /// Relay or endpoint that took it.
    pub route: Option<String>,
}

/// Why a delivery did not go through, classified for the retry policy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    /// Worth retrying (4xx SMTP, timeouts before the message was handed over, HTTP 429/5xx).
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
        route: Option<String>,
    },
    /// Retrying cannot help (invalid recipient, expired token, 5xx SMTP for a recipient).
    #[error("{message}")]
    Permanent { message: String, route: Option<String> },
    /// The provider may or may not have it (connection lost after the message was handed over).
    /// Never retried automatically: the delivery becomes `unknown`.
    #[error("{message}")]
    Ambiguous { message: String, route: Option<String> },
    /// Permanent: the recipient asked for no more messages (an SMS STOP reply). The dispatcher
    /// adds the address to the state folder's suppression list, so later runs skip it.
    #[error("{message}")]
    Unsubscribed { message: String, route: Option<String> },
    /// Permanent, and pointless for every other delivery of the channel (no credit, account
    /// barred): the channel stops and the rest stay `pending` for `resume`.
    #[error("{message}")]
    Halt { message: String },
}

impl DeliveryError {
    pub fn transient(message: impl Into<String>) -> Self {
        DeliveryError::Transient {
            message: message.into(),
            retry_after: None,
            route: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError::Permanent {
            message: message.into(),
            route: None,
        }
    }

    /// Not retried automatically: the delivery becomes `unknown`.
    pub fn ambiguous(message: impl Into<String>) -> Self {
        DeliveryError::Ambiguous {
            message: message.into(),
            route: None,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn route(&self) -> Option<&str> {
        match self {
            DeliveryError::Transient { route, .. }
            | DeliveryError::Permanent { route, .. }
            | DeliveryError::Ambiguous { route, .. }
            | DeliveryError::Unsubscribed { route, .. } => route.as_deref(),
            DeliveryError::Halt { .. } => None,
        }
    }

    /// The same error with every registered secret taken out of its message: gateways' error
    /// texts can quote the request, credentials included.
    #[must_use]
    pub fn redacted(self) -> DeliveryError {
        self.map_message(|m| crate::secrets::redact(&m).into_owned())
    }

    /// The same error (class, Retry-After, route) with its message changed by `f`.
    #[must_use]
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> DeliveryError {
        match self {
            DeliveryError::Transient {
                message,
                retry_after,
                route,
            } => DeliveryError::Transient {
                message: f(message),
                retry_after,
                route,
            },
            DeliveryError::Permanent { message, route } => DeliveryError::Permanent {
                message: f(message),
                route,
            },
            DeliveryError::Ambiguous { message, route } => DeliveryError::Ambiguous {
                message: f(message),
                route,
            },
            DeliveryError::Unsubscribed { message, route } => DeliveryError::Unsubscribed {
                message: f(message),
                route,
            },
            DeliveryError::Halt { message } => DeliveryError::Halt { message: f(message) },
        }
    }
}

/// What a provider says happened to an accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    Delivered,
    /// With the provider's reason (e.g. "30003 unreachable").
    Undelivered(String),
    /// Not final yet (queued, sent to carrier...).
    Pending,
}

/// One line of `announce check`.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// What was probed: the channel, or a relay / endpoint of it.
    pub subject: String,
    pub ok: bool,
    pub detail: String,
}

impl Probe {
    /// A probe that found `Ok(what it saw)` or `Err(why it failed)`.
    pub fn outcome(subject: String, result: Result<String, String>) -> Probe {
        Probe {
            subject,
            ok: result.is_ok(),
            detail: result.unwrap_or_else(|e| e),
        }
    }

    /// The probe of a channel that writes files into `dir`: `tried` is what failed ("create",
    /// "write to"), `note` follows the folder when it worked.
    pub fn folder(subject: &str, dir: &Path, result: std::io::Result<()>, tried: &str, note: &str) -> Probe {
        Probe {
            subject: subject.to_string(),
            ok: result.is_ok(),
            detail: match result {
                Ok(()) => format!("writes to {}{note}", dir.display()),
                Err(e) => format!("cannot {tried} {}: {e}", dir.display()),
            },
        }
    }
}

/// What a built channel declares and never changes: the name of its table, its type, whom it
/// reaches and how many requests it keeps in flight when the config does not say.
#[derive(Debug, Clone)]
pub struct Meta {
    name: String,
    type_name: &'static str,
    reach: Reach,
    default_concurrency: u32,
}

impl Meta {
    /// A channel of the type whose config is `C`: the type's name comes from its `channels!`
    /// line, so a channel never writes it again.
    pub fn new<C: Registered>(name: &str, reach: Reach) -> Meta {
        Meta {
            name: name.to_string(),
            type_name: C::TYPE_NAME,
            reach,
            default_concurrency: 4,
        }
    }

    /// Connections / requests in flight when the config does not say (else 4).
    #[must_use]
    pub fn concurrency(self, default_concurrency: u32) -> Meta {
        Meta {
            default_concurrency,
            ..self
        }
    }
}

#[async_trait]
pub trait Channel: Send + Sync {
    /// What the channel was built as; the four methods below read it.
    fn meta(&self) -> &Meta;
    fn name(&self) -> &str {
        &self.meta().name
    }
    fn type_name(&self) -> &'static str {
        self.meta().type_name
    }
    fn reach(&self) -> Reach {
        self.meta().reach.clone()
    }
    /// Connections / requests in flight when the config does not say.
    fn default_concurrency(&self) -> u32 {
        self.meta().default_concurrency
    }
    /// The rate when the config does not set `rate` (a provider's calls per second).
    fn default_rate(&self) -> Option<crate::settings::Rate> {
        None
    }
    /// Whether every target must be rendered while planning (limits that depend on the
    /// recipient, such as SMS segments) rather than only the first.
    fn validate_every_target(&self) -> bool {
        false
    }
    /// A reason to skip this address although it is valid (e.g. a landline for SMS). Checked while
    /// planning; the delivery becomes `skipped` with the reason.
    fn skip_reason(&self, _address: &str) -> Option<String> {
        None
    }
    /// A reason to skip a broadcast channel for this announcement (e.g. Instagram without an
    /// image). Checked while planning; the delivery becomes `skipped` with the reason.
    fn skip_broadcast(&self, _ctx: &Context) -> Option<String> {
        None
    }
    /// Render the message for one target. An `Err` is a template or limit problem: found while
    /// planning, it stops the run before anything is sent.
    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String>;
    /// Hand one rendered message to the provider. Called once per attempt.
    async fn deliver(&self, delivery: &Delivery, message: &Rendered) -> Result<Receipt, DeliveryError>;
    /// Probe without sending (connect, authenticate, check the account).
    async fn check(&self) -> Vec<Probe>;
    /// Whether sending a delivery again can never duplicate it (the outbox overwrites the same
    /// file; an API with an idempotency key). `resume` re-sends such `unknown` deliveries.
    fn resend_is_safe(&self) -> bool {
        false
    }
    /// Whether `report --refresh` can ask this channel's provider for final statuses.
    fn can_refresh(&self) -> bool {
        false
    }
    /// The final status of an accepted message (`provider_id` as recorded), for `report --refresh`.
    async fn refresh(&self, _provider_id: &str) -> Result<Refreshed, String> {
        Err("this channel's provider cannot report final statuses".into())
    }
    /// Right-hand side of the Message-IDs this channel mints (email: the From domain).
    fn message_id_domain(&self) -> String {
        "announce.local".into()
    }
    /// How long one attempt may take before it is abandoned.
    fn attempt_timeout(&self) -> Option<Duration> {
        None
    }
    /// Whether a Retry-After in one delivery's answer holds for every delivery of the channel
    /// (the dispatcher then pauses the whole lane until then), rather than only for the retry
    /// of that delivery.
    fn retry_after_pauses_channel(&self) -> bool {
        false
    }
    /// What a timeout of the whole attempt means for this channel.
    fn timeout_error(&self, after: Duration) -> DeliveryError {
        DeliveryError::Transient {
            message: format!("no answer within {after:?}"),
            retry_after: None,
            route: None,
        }
    }
}

/// What every channel type's config struct provides.
pub trait ChannelConfig {
    /// Checks serde cannot express, when the file is loaded (before any secret is read).
    fn validate(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }
    /// The URL keys written in the file (key, value), for the https-unless-loopback rule.
    fn urls(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }
    /// The channel itself. Secrets are read from the environment here, so a disabled channel
    /// does not need its secret.
    fn build(&self, name: &str, common: &Common, ctx: &BuildContext) -> Result<Arc<dyn Channel>, String>;
}

/// The `type` a config struct is registered under; `channels!` implements it for each, so
/// [`Meta::new`] learns the type's name from the one list.
pub trait Registered {
    const TYPE_NAME: &'static str;
}

/// A built-in template: the file name that overrides it in `templates_dir`, and its text.
pub type Builtin = (&'static str, &'static str);

/// A [`Builtin`] from the file of that name beside the channel's source, the name written once.
macro_rules! builtin {
    ($name:literal) => {
        ($name, include_str!($name))
    };
}
pub(crate) use builtin;

/// The built-in templates a channel type renders with: its own, and those of another type it
/// shares (named by that type's constant). Not part of [`ChannelConfig`]: an associated const
/// would make that trait unusable as `dyn ChannelConfig`.
pub trait BuiltinTemplates {
    const TEMPLATES: &'static [Builtin];
}

/// What a channel may read from the rest of the config when it is built (vector's
/// `SinkContext`). The caller builds it from the loaded config, so this module does not depend
/// on `config` and the dependency goes one way.
#[derive(Debug, Clone)]
pub struct BuildContext<'a> {
    /// The config file's folder, which relative paths in it are relative to.
    pub base_dir: &'a Path,
    pub state_dir: &'a Path,
    pub templates_dir: Option<&'a Path>,
    pub org: &'a Org,
    pub timezone: jiff::tz::TimeZone,
    /// Every channel of the file (Instagram finds its image host among them).
    pub channels: &'a [ChannelEntry],
}

impl BuildContext<'_> {
    /// A path written in the config, relative to the config's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        crate::settings::resolve(self.base_dir, p)
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelEntry> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// One `[channels.NAME]` table: the settings every channel has, plus its type's own.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelSettings {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub kind: ChannelKind,
}

/// A channel table of the loaded config, with where it is written.
#[derive(Debug, Clone)]
pub struct ChannelEntry {
    pub name: String,
    pub settings: ChannelSettings,
    pub location: SourceLocation,
}

impl ChannelEntry {
    pub fn type_name(&self) -> &'static str {
        self.settings.kind.type_name()
    }
}

/// The one list of channel types: `"type" => Variant(config struct)`. It generates the enum
/// serde parses a `[channels.NAME]` table into (dispatching on `type`), its `type_name`,
/// [`CHANNEL_TYPES`], [`builtin_templates`] and each config's [`Registered`].
macro_rules! channels {
    ($($type:literal => $variant:ident($config:ty)),+ $(,)?) => {
        $(impl Registered for $config {
            const TYPE_NAME: &'static str = $type;
        })+

        /// A channel table's own keys, by its `type`.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type")]
        pub enum ChannelKind {
            $(#[serde(rename = $type)] $variant($config),)+
        }

        /// Every `type` a channel may have, in registration order.
        pub const CHANNEL_TYPES: &[&str] = &[$($type),+];

        /// Each type's [`BuiltinTemplates::TEMPLATES`], in registration order.
        const DECLARED_TEMPLATES: &[&[Builtin]] = &[$(<$config as BuiltinTemplates>::TEMPLATES),+];

        /// Every type's built-in templates, each name once (a type that shares another type's
        /// template names that type's constant), for `render::Templates::load` and `init`.
        pub fn builtin_templates() -> &'static [Builtin] {
            static ALL: LazyLock<Vec<Builtin>> = LazyLock::new(|| {
                let mut all: Vec<Builtin> = Vec::new();
                for t in DECLARED_TEMPLATES.iter().copied().flatten() {
                    if !all.iter().any(|(name, _)| *name == t.0) {
                        all.push(*t);
                    }
                }
                all
            });
            &ALL
        }

        impl ChannelKind {
            pub fn type_name(&self) -> &'static str {
                match self {
                    $(ChannelKind::$variant(_) => $type,)+
                }
            }

            /// The type's [`BuiltinTemplates::TEMPLATES`].
            pub fn templates(&self) -> &'static [Builtin] {
                match self {
                    $(ChannelKind::$variant(_) => <$config as BuiltinTemplates>::TEMPLATES,)+
                }
            }

            /// The type's own config, through the trait every config implements.
            pub fn config(&self) -> &dyn ChannelConfig {
                match self {
                    $(ChannelKind::$variant(c) => c,)+
                }
            }
        }
    };
}

channels! {
    "outbox" => Outbox(outbox::OutboxConfig),
    "email" => Email(email::EmailConfig),
    "sms" => Sms(sms::SmsConfig),
    "facebook" => Facebook(graph::FacebookConfig),
    "instagram" => Instagram(graph::InstagramConfig),
    "webhook" => Webhook(webhook::WebhookConfig),
    "telegram" => Telegram(telegram::TelegramConfig),
    "mastodon" => Mastodon(mastodon::MastodonConfig),
    "statuspage" => Statuspage(statuspage::StatuspageConfig),
    "voice" => Voice(voice::VoiceConfig),
    "whatsapp" => Whatsapp(whatsapp::WhatsappConfig),
}

/// Build the channel a config entry describes. Secrets are read from the environment here.
pub fn build(entry: &ChannelEntry, ctx: &BuildContext) -> Result<Arc<dyn Channel>, AppError> {
    let common = &entry.settings.common;
    let channel = entry
        .settings
        .kind
        .config()
        .build(&entry.name, common, ctx)
        .map_err(|m| AppError::invalid_at(Some(entry.location.clone()), m))?;
    crate::quiet::allowed_on(channel.as_ref(), common.quiet_hours).map_err(|m| {
        let at = common.quiet_hours_at.as_ref().unwrap_or(&entry.location);
        AppError::invalid_at(Some(at.clone()), m)
    })?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, table: &str) -> ChannelEntry {
        ChannelEntry {
            name: name.into(),
            settings: toml::from_str(table).unwrap(),
            location: SourceLocation {
                file: "announce.toml".into(),
                line: 1,
                column: 1,
                offset: 0,
            },
        }
    }

    /// A built channel's name is its table's, its type the one its `channels!` line registers
    /// (not one the channel writes again), and reach and default concurrency are what the
    /// channel set in its `Meta`.
    #[test]
    fn a_built_channel_declares_its_table_name_and_registered_type() {
        let dir = tempfile::tempdir().unwrap();
        let org = Org::default();
        let entries = [
            entry("spool", "type = \"outbox\"\ndir = \"out\""),
            entry(
                "status",
                "type = \"statuspage\"\ndir = \"site\"\nbase_url = \"https://status.example.org\"",
            ),
        ];
        let ctx = BuildContext {
            base_dir: dir.path(),
            state_dir: dir.path(),
            templates_dir: None,
            org: &org,
            timezone: jiff::tz::TimeZone::UTC,
            channels: &entries,
        };
        let declared: Vec<_> = entries
            .iter()
            .map(|e| {
                let c = build(e, &ctx).unwrap();
                (c.name().to_string(), c.type_name(), c.reach(), c.default_concurrency())
            })
            .collect();
        assert_eq!(
            declared,
            [
                ("spool".into(), "outbox", Reach::PerPerson(AddressKind::EmailOrPhone), 8),
                (
                    "status".into(),
                    "statuspage",
                    Reach::Broadcast("https://status.example.org".into()),
                    1
                ),
            ]
        );
    }

    /// Types that name the same template share its text (else which one is used would depend on
    /// the registration order), and every built-in compiles.
    #[test]
    fn builtin_templates_are_consistent_and_compile() {
        let all = builtin_templates();
        for (name, text) in DECLARED_TEMPLATES.iter().copied().flatten() {
            let collected: Vec<_> = all.iter().filter(|(n, _)| n == name).collect();
            assert_eq!(collected.len(), 1, "{name}");
            assert_eq!(collected[0].1, *text, "{name} is declared twice with different texts");
        }
        let templates = Templates::load(all, None).unwrap();
        for (name, _) in all {
            assert!(templates.has(name), "{name}");
        }
    }
}
