//! channels.toml -> a validated [`Config`].
//!
//! Parsing is two steps, as in ripgrep: serde turns the TOML into raw structs (unknown keys and
//! wrong types are errors with file, line and column), then [`Config::load`] checks what serde
//! cannot (rates, loopback-only plaintext, readable files) and resolves relative paths against
//! the config file's folder. Secrets are never in the file: only the *names* of environment
//! variables are, and they are resolved when a channel is built (so a disabled channel does not
//! need its secret).

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{AppError, SourceLocation};

/// The built-in default used by `announce init` and documented in the README.
pub const EXAMPLE_CONFIG: &str = include_str!("../channels.example.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<String>,
    templates_dir: Option<String>,
    default_region: Option<Spanned<String>>,
    #[serde(default)]
    org: Org,
    #[serde(default)]
    audience: RawAudience,
    #[serde(default)]
    channels: BTreeMap<String, Spanned<ChannelSettings>>,
}

/// `[org]`: available to templates as `org.*`.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Org {
    #[serde(default)]
    pub name: String,
    pub website: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    file: Option<String>,
    suppress: Option<String>,
    delimiter: Option<Spanned<String>>,
    /// `"utf-8"`, `"windows-1252"` or `"utf-16"`; absent: UTF-8, else Windows-1252 per line.
    encoding: Option<crate::audience::Encoding>,
}

#[derive(Debug, Clone)]
pub struct AudienceSettings {
    pub file: Option<PathBuf>,
    pub suppress: Option<PathBuf>,
    pub delimiter: Option<u8>,
    pub encoding: Option<crate::audience::Encoding>,
}

/// One `[channels.NAME]` table: the settings every channel has, plus its type's own.
#[derive(Debug, Clone, Deserialize)]
pub struct ChannelSettings {
    #[serde(flatten)]
    pub common: Common,
    #[serde(flatten)]
    pub kind: ChannelKind,
}

/// Keys every channel accepts.
#[derive(Debug, Clone, Deserialize)]
pub struct Common {
    #[serde(default = "yes")]
    pub enabled: bool,
    pub rate: Option<Rate>,
    pub burst: Option<NonZeroU32>,
    pub concurrency: Option<NonZeroU32>,
    pub max_attempts: Option<NonZeroU32>,
    pub retry_base: Option<HumanDuration>,
    pub retry_max: Option<HumanDuration>,
    /// Per-attempt deadline; a delivery still running then is retried (or `unknown` where the
    /// channel says a timeout is ambiguous).
    pub timeout: Option<HumanDuration>,
    pub template: Option<String>,
}

fn yes() -> bool {
    true
}

/// The channel types. Adding a channel: a variant here, a module in `channel/`, an arm in
/// `channel::build`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ChannelKind {
    Outbox(OutboxConfig),
    Email(EmailConfig),
    Sms(SmsConfig),
    Facebook(FacebookConfig),
    Instagram(InstagramConfig),
    Webhook(WebhookConfig),
    Telegram(TelegramConfig),
    Mastodon(MastodonConfig),
    Statuspage(StatuspageConfig),
}

impl ChannelKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Outbox(_) => "outbox",
            ChannelKind::Email(_) => "email",
            ChannelKind::Sms(_) => "sms",
            ChannelKind::Facebook(_) => "facebook",
            ChannelKind::Instagram(_) => "instagram",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Telegram(_) => "telegram",
            ChannelKind::Mastodon(_) => "mastodon",
            ChannelKind::Statuspage(_) => "statuspage",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    #[serde(default = "default_outbox_dir")]
    pub dir: String,
    /// Sender used in the `.eml` files (defaults to the org name at `outbox.invalid`).
    pub from: Option<String>,
    /// Per-message delay, to make a run observable in demos and tests ("200ms").
    pub delay: Option<HumanDuration>,
}

fn default_outbox_dir() -> String {
    "outbox".into()
}

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
    #[serde(default)]
    pub algorithm: DkimAlgorithm,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    #[default]
    Rsa,
    Ed25519,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub name: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
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

/// `type = "sms"`: one SMS gateway. Which keys apply depends on `provider`; `channel::sms::build`
/// checks that the provider's keys are there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    // The rarely used keys are boxed (`Box<str>`: 16 bytes, not 24) to keep this variant of
    // `ChannelKind` from dwarfing the others (clippy::large_enum_variant).
    /// twilio | vonage | seven | generic
    pub provider: String,
    /// Sender: an E.164 number or an alphanumeric sender id (twilio: also a Messaging Service
    /// SID `MG...`). Required for twilio and vonage.
    pub from: Option<String>,
    /// twilio: the Account SID (`AC...`).
    pub account_sid: Option<String>,
    /// vonage: the API key (not a secret; `api_key_env` reads it from the environment instead).
    pub api_key: Option<String>,
    /// vonage, seven: environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// vonage: environment variable holding the API secret.
    pub api_secret_env: Option<String>,
    /// twilio: environment variable holding the Auth Token. generic: an optional token, sent as
    /// `Authorization: Bearer ...` unless a header value contains `{token}`.
    pub auth_token_env: Option<String>,
    /// The gateway's API root (tests and proxies point it elsewhere). Defaults per provider.
    pub base_url: Option<String>,
    /// Refuse (before anything is sent) texts longer than this many segments. Default 10.
    pub max_segments: Option<u32>,
    /// Typographic quotes, dashes, ellipsis and odd spaces -> GSM-7 look-alikes. Default on.
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Price of one segment, for the cost estimate in `preview` and the plan.
    pub price_per_segment: Option<f64>,
    /// Shown after estimated costs, e.g. "EUR".
    pub currency: Option<Box<str>>,
    /// "message" (default) or "segment": what one rate-limit cell is.
    pub rate_unit: Option<String>,
    /// generic: the endpoint; absolute, or a path joined to `base_url`.
    pub url: Option<Box<str>>,
    /// generic: HTTP method, default POST.
    pub method: Option<Box<str>>,
    /// generic: extra request headers; `{token}` in a value is replaced by `auth_token_env`'s secret.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// generic: handlebars template of the request body, with `to`, `to_digits`, `from`, `text`,
    /// `encoding`, `unicode`, `segments`, `name`, `reference`, `message_id`.
    pub body_template: Option<Box<str>>,
    /// generic: "json" (default; values are JSON-string-escaped) or "form" (values are
    /// form-urlencoded).
    pub body_format: Option<Box<str>>,
    /// generic: RFC 6901 JSON pointer to the message id in the response, e.g. "/messages/0/id".
    pub id_pointer: Option<Box<str>>,
    /// generic: HTTP statuses that mean "accepted" (default 200, 201, 202, 204).
    pub success_statuses: Option<Box<[u16]>>,
}

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to POST. Chat webhook URLs carry their token in the path: prefer `url_env` for them.
    pub url: Option<String>,
    /// Environment variable holding the URL instead of `url` (exactly one of the two).
    pub url_env: Option<String>,
    /// Standard Webhooks signing secret(s) `whsec_...` (several, space-separated, during rotation).
    pub secret_env: Option<String>,
    /// slack | discord | teams | mattermost | google-chat: the body shape that API expects.
    pub preset: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub bot_token_env: String,
    pub chat_ids: Vec<String>,
    pub base_url: Option<String>,
    /// "HTML" (uses the HTML-escaped telegram.html.hbs), or "MarkdownV2" / "Markdown" with your
    /// own `template`.
    pub parse_mode: Option<String>,
    /// Send silently (no notification sound).
    #[serde(default)]
    pub disable_notification: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MastodonConfig {
    pub instance: String,
    pub access_token_env: String,
    pub visibility: Option<String>,
    pub max_characters: Option<usize>,
    /// ISO 639 language of the posts, e.g. "de".
    pub language: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatuspageConfig {
    pub dir: String,
    pub publish_command: Option<String>,
    /// Page title (default: "<org name> status").
    pub title: Option<String>,
    /// Public URL the site is served from: absolute links and ids in feed.atom.
    pub base_url: Option<String>,
    /// Resolved incidents stay under "Recently resolved" for this many days (default 30).
    pub recent_days: Option<u32>,
}

/// `rate = "10/s"`: `count` cells per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid rate {s:?}: expected COUNT/UNIT such as \"10/s\", \"300/min\" or \"1000/h\"");
        let (n, unit) = s.split_once('/').ok_or_else(bad)?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        let count =
            NonZeroU32::new(count).ok_or_else(|| format!("invalid rate {s:?}: the count must be at least 1"))?;
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            _ => return Err(bad()),
        };
        Ok(Rate { count, per })
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => "d",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A duration written for people: "250ms", "1s", "5min", "2h".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl std::str::FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration {s:?}: expected e.g. \"500ms\", \"1s\", \"5min\", \"2h\""))?;
        let secs = match unit.trim() {
            "ms" => value / 1000.0,
            "" | "s" | "sec" => value,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!(
                    "invalid duration {s:?}: unknown unit {unit:?} (use ms, s, min or h)"
                ));
            }
        };
        Ok(HumanDuration(Duration::from_secs_f64(secs)))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (`None` for the built-in default).
    pub path: Option<PathBuf>,
    pub base_dir: PathBuf,
    pub state_dir: PathBuf,
    pub templates_dir: Option<PathBuf>,
    pub default_region: Option<phonenumber::country::Id>,
    pub org: Org,
    pub audience: AudienceSettings,
    pub channels: Vec<ChannelEntry>,
    source: String,
}

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

impl Config {
    /// Load and validate a config file.
    pub fn load(path: &Path) -> Result<Config, AppError> {
        let bytes = std::fs::read(path)
            .map_err(|e| AppError::invalid(format!("{}: cannot read config: {e}", path.display())))?;
        let source = String::from_utf8(bytes).map_err(|e| {
            let file = path.display().to_string();
            let lossy = String::from_utf8_lossy(e.as_bytes());
            let loc = SourceLocation::from_offset(&file, &lossy, e.utf8_error().valid_up_to());
            AppError::invalid_at(Some(loc), "config is not valid UTF-8 (save it as UTF-8)")
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        let config = Self::parse(Some(path), &base, source)?;
        config.register_secrets();
        Ok(config)
    }

    /// Register the value of every `*_env` variable the file names (set or not, used by an
    /// enabled channel or not) for [`redact`], before any channel talks to anyone: a provider
    /// that quotes a request can then never put any of them into a message.
    fn register_secrets(&self) {
        fn walk(v: &toml::Value) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        match v {
                            toml::Value::String(var) if k.ends_with("_env") => {
                                if let Ok(value) = std::env::var(var) {
                                    register_secret(&value);
                                }
                            }
                            other => walk(other),
                        }
                    }
                }
                toml::Value::Array(a) => a.iter().for_each(walk),
                _ => {}
            }
        }
        if let Ok(v) = toml::from_str::<toml::Value>(&self.source) {
            walk(&v);
        }
    }

    /// Parse config text; `path` names it in messages, `base` anchors relative paths.
    pub fn parse(path: Option<&Path>, base: &Path, source: String) -> Result<Config, AppError> {
        let file = path.map_or_else(|| "<built-in config>".to_string(), |p| p.display().to_string());
        let raw: RawConfig = toml::from_str(&source).map_err(|e| {
            let loc = e.span().map(|s| SourceLocation::from_offset(&file, &source, s.start));
            AppError::invalid_at(loc, format!("invalid config: {}", e.message()))
        })?;
        let at = |span: std::ops::Range<usize>| SourceLocation::from_offset(&file, &source, span.start);
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
        };

        let default_region = match &raw.default_region {
            None => None,
            Some(r) => Some(crate::audience::parse_region(r.get_ref()).ok_or_else(|| {
                AppError::invalid_at(
                    Some(at(r.span())),
                    format!(
                        "default_region {:?} is not an ISO 3166 country code such as \"DE\"",
                        r.get_ref()
                    ),
                )
            })?),
        };
        if let Some(tz) = &raw.org.timezone {
            jiff::tz::TimeZone::get(tz).map_err(|_| {
                AppError::invalid(format!(
                    "{file}: [org] timezone {tz:?} is not a known IANA time zone name"
                ))
            })?;
        }
        let delimiter = match &raw.audience.delimiter {
            None => None,
            Some(d) => match d.get_ref().as_str() {
                "," => Some(b','),
                ";" => Some(b';'),
                "\t" | "tab" => Some(b'\t'),
                other => {
                    return Err(AppError::invalid_at(
                        Some(at(d.span())),
                        format!("[audience] delimiter {other:?}: use \",\", \";\" or \"tab\""),
                    ));
                }
            },
        };

        let mut channels = Vec::new();
        for (name, spanned) in raw.channels {
            let location = at(spanned.span());
            let settings = spanned.into_inner();
            validate_channel(&name, &settings).map_err(|m| AppError::invalid_at(Some(location.clone()), m))?;
            channels.push(ChannelEntry {
                name,
                settings,
                location,
            });
        }

        Ok(Config {
            path: path.map(Path::to_path_buf),
            base_dir: base.to_path_buf(),
            state_dir: resolve(raw.state_dir.as_deref().unwrap_or(".announce")),
            templates_dir: raw.templates_dir.as_deref().map(resolve),
            default_region,
            org: raw.org,
            audience: AudienceSettings {
                file: raw.audience.file.as_deref().map(resolve),
                suppress: raw.audience.suppress.as_deref().map(resolve),
                delimiter,
                encoding: raw.audience.encoding,
            },
            channels,
            source,
        })
    }

    /// Resolve a path written in the config relative to the config's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn file_name(&self) -> String {
        self.path
            .as_ref()
            .map_or_else(|| "<built-in config>".into(), |p| p.display().to_string())
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelEntry> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// Location of the first occurrence of `needle` after `from` (for messages about keys).
    pub fn locate(&self, from: &SourceLocation, needle: &str) -> SourceLocation {
        let off = self.source[from.offset..]
            .find(needle)
            .map_or(from.offset, |i| from.offset + i);
        SourceLocation::from_offset(&self.file_name(), &self.source, off)
    }

    pub fn timezone(&self) -> jiff::tz::TimeZone {
        self.org
            .timezone
            .as_deref()
            .and_then(|t| jiff::tz::TimeZone::get(t).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// Checks serde cannot express. Returns a message; the caller adds the location.
fn validate_channel(name: &str, s: &ChannelSettings) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(format!("channel name {name:?}: use letters, digits, '-' and '_'"));
    }
    if let (Some(b), Some(m)) = (s.common.retry_base, s.common.retry_max)
        && b.0 > m.0
    {
        return Err(format!("[channels.{name}] retry_base is larger than retry_max"));
    }
    match &s.kind {
        ChannelKind::Email(e) => {
            if e.relays.is_empty() {
                return Err(format!(
                    "[channels.{name}] needs at least one [[channels.{name}.relays]]"
                ));
            }
            e.from
                .parse::<lettre::message::Mailbox>()
                .map_err(|err| format!("[channels.{name}] from {:?} is not a valid address: {err}", e.from))?;
            for (i, r) in e.relays.iter().enumerate() {
                if r.tls == TlsMode::None && !is_loopback_host(&r.host) {
                    return Err(format!(
                        "[channels.{name}] relay {} ({}): tls = \"none\" is only allowed for loopback hosts \
                         (localhost, 127.0.0.0/8, ::1); use \"starttls\" or \"tls\"",
                        r.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
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
        }
        ChannelKind::Sms(sms) => {
            if !["twilio", "vonage", "seven", "generic"].contains(&sms.provider.as_str()) {
                return Err(format!(
                    "[channels.{name}] provider {:?}: expected twilio, vonage, seven or generic",
                    sms.provider
                ));
            }
            if let Some(u) = &sms.rate_unit
                && u != "message"
                && u != "segment"
            {
                return Err(format!(
                    "[channels.{name}] rate_unit {u:?}: expected \"message\" or \"segment\""
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Plaintext SMTP is only acceptable when it cannot leave the machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Read a secret named by a `*_env` key. The message names the variable, never a value.
pub fn secret_from_env(var: &str, what: &str) -> Result<SecretString, String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => {
            register_secret(&v);
            Ok(SecretString::from(v))
        }
        Ok(_) => Err(format!("{what}: environment variable {var} is empty")),
        Err(_) => Err(format!("{what}: environment variable {var} is not set")),
    }
}

/// Every form of every secret read so far, longest first (see [`redact`]).
static SECRET_FORMS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// What [`redact`] puts in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// Remember a secret value so that [`redact`] takes it out of any text: as written, URL- and
/// form-encoded, JSON-escaped, and base64-encoded (as in `Authorization: Basic`, where it
/// follows a user name). Values shorter than 6 characters are not tracked (too many false
/// hits in ordinary text). [`secret_from_env`] calls this for every secret it reads.
pub fn register_secret(value: &str) {
    if value.chars().count() < 6 {
        return;
    }
    let mut forms = SECRET_FORMS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    for form in secret_forms(value) {
        if form.len() >= 6 && !forms.contains(&form) {
            forms.push(form);
        }
    }
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

fn secret_forms(value: &str) -> Vec<String> {
    use base64::Engine;
    let mut forms = vec![value.to_string()];
    // A secret URL (a chat webhook) carries its token in the path: that alone is secret too,
    // since messages and echoes often show the URL with another host or without the scheme.
    if let Ok(url) = reqwest::Url::parse(value)
        && url.has_host()
        && url.path().len() > 1
    {
        let mut tail = url.path().to_string();
        if let Some(q) = url.query() {
            tail.push('?');
            tail.push_str(q);
        }
        forms.extend(secret_forms(&tail));
    }
    let mut percent = String::new();
    let mut form = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            percent.push(b as char);
            form.push(b as char);
        } else {
            percent.push_str(&format!("%{b:02X}"));
            form.push_str(&if b == b' ' {
                "+".to_string()
            } else {
                format!("%{b:02X}")
            });
        }
    }
    forms.push(percent.clone());
    forms.push(percent.to_ascii_lowercase());
    forms.push(form);
    let json = serde_json::to_string(value).unwrap_or_default();
    forms.push(json[1..json.len().saturating_sub(1)].to_string());
    // base64 at the three byte alignments the value can have in a longer encoded text (e.g.
    // "user:secret"): only the characters that depend on the value alone.
    let bytes = value.as_bytes();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for shift in 0..3usize {
            let mut padded = vec![0u8; shift];
            padded.extend_from_slice(bytes);
            let enc = engine.encode(&padded);
            let skip = if shift == 0 { 0 } else { 4 };
            let whole_groups = (shift + bytes.len()) / 3;
            let end = whole_groups * 4;
            if end > skip {
                forms.push(enc[skip..end].to_string());
            }
        }
    }
    forms
}

/// `text` with every registered secret (in any of its forms) replaced by `[redacted]`: for
/// messages that quote what a provider answered, which may echo the request.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let forms = SECRET_FORMS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !forms.iter().any(|f| text.contains(f.as_str())) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = text.to_string();
    for f in forms.iter() {
        if out.contains(f.as_str()) {
            out = out.replace(f.as_str(), REDACTED);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, AppError> {
        Config::parse(Some(Path::new("channels.toml")), Path::new("/base"), s.to_string())
    }

    #[test]
    fn example_config_parses() {
        let c = parse(EXAMPLE_CONFIG).expect("example config must parse");
        let types: std::collections::BTreeSet<_> = c.channels.iter().map(|c| c.type_name()).collect();
        for t in [
            "outbox",
            "email",
            "sms",
            "facebook",
            "instagram",
            "webhook",
            "telegram",
            "mastodon",
            "statuspage",
        ] {
            assert!(types.contains(t), "example config lacks a {t} channel");
        }
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse("state_dir = \"s\"\n\n[channels.out]\ntype = \"outbox\"\ndri = \"x\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("channels.toml:3:"), "{msg}");
        assert!(msg.contains("dri"), "{msg}");
    }

    #[test]
    fn unknown_type_is_an_error() {
        let msg = parse("[channels.x]\ntype = \"pigeon\"\n").unwrap_err().to_string();
        assert!(msg.contains("channels.toml:1:") && msg.contains("pigeon"), "{msg}");
    }

    #[test]
    fn plaintext_smtp_only_to_loopback() {
        let cfg = |host: &str| {
            format!(
                "[channels.mail]\ntype = \"email\"\nfrom = \"a@example.org\"\n[[channels.mail.relays]]\nhost = \"{host}\"\ntls = \"none\"\n"
            )
        };
        assert!(parse(&cfg("127.0.0.1")).is_ok());
        assert!(parse(&cfg("localhost")).is_ok());
        let msg = parse(&cfg("smtp.example.org")).unwrap_err().to_string();
        assert!(msg.contains("loopback") && msg.starts_with("channels.toml:1:"), "{msg}");
    }

    #[test]
    fn rates_and_durations() {
        let r: Rate = "300/min".parse().unwrap();
        assert_eq!((r.count.get(), r.per), (300, Duration::from_secs(60)));
        assert!("0/s".parse::<Rate>().is_err());
        assert!("ten/s".parse::<Rate>().is_err());
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(250));
        assert_eq!("5min".parse::<HumanDuration>().unwrap().0, Duration::from_secs(300));
        let msg = parse("[channels.o]\ntype = \"outbox\"\nrate = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("channels.toml:") && msg.contains("invalid rate"), "{msg}");
    }

    #[test]
    fn registered_secrets_are_redacted_in_every_form() {
        use base64::Engine;
        let secret = "tok/en+With Spaces&9f3a";
        register_secret(secret);
        register_secret("short");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let text = format!(
            "raw {secret} | form tok%2Fen%2BWith+Spaces%269f3a | url tok%2Fen%2BWith%20Spaces%269f3a | \
             basic {} | basic2 {} | json {} | short stays",
            b64(&format!("AC1:{secret}")),
            b64(&format!("user12:{secret}")),
            serde_json::to_string(secret).unwrap()
        );
        let r = redact(&text);
        assert!(!r.contains("With"), "{r}");
        for shift in ["", "x", "xy"] {
            let enc = b64(&format!("{shift}{secret}"));
            assert!(!r.contains(&enc[4..enc.len() - 4]), "{r}");
        }
        assert!(r.contains("short stays") && r.contains(REDACTED), "{r}");
        assert!(matches!(redact("nothing secret here"), std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn relative_paths_resolve_against_config_folder() {
        let c = parse("state_dir = \"st\"\n[audience]\nfile = \"c.csv\"\n").unwrap();
        assert_eq!(c.state_dir, Path::new("/base/st"));
        assert_eq!(c.audience.file.as_deref(), Some(Path::new("/base/c.csv")));
    }
}
