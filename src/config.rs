//! channels.toml -> a validated [`Config`].
//!
//! Parsing is two steps, as in ripgrep: serde turns the TOML into raw structs (unknown keys and
//! wrong types are errors with file, line and column; each channel table goes to the struct its
//! `type` names, which its channel module owns), then [`Config::parse`] checks what serde cannot
//! (retry and timeout limits here, each type's own rules in its `ChannelConfig::validate`) and
//! resolves relative paths against the config file's folder. Secrets are never in the file: only the *names* of environment
//! variables are, and they are resolved when a channel is built (so a disabled channel does not
//! need its secret).

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

// The channels own these; the old paths stay for the callers (and tests) that name them here.
use crate::error::{AppError, SourceLocation};
// Secrets live in their own leaf module; these names stay here for the callers that use them.
use crate::channel::ChannelKind;
pub use crate::secrets::{REDACTED, redact, register_credential, register_secret, secret_from_env};

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
    reach: Option<RawReach>,
}

/// `[reach]`: the per-person fallback order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReach {
    order: Vec<Spanned<String>>,
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
    #[serde(default, deserialize_with = "concurrency")]
    pub concurrency: Option<NonZeroU32>,
    pub max_attempts: Option<NonZeroU32>,
    pub retry_base: Option<HumanDuration>,
    pub retry_max: Option<HumanDuration>,
    /// Per-attempt deadline; a delivery still running then is retried (or `unknown` where the
    /// channel says a timeout is ambiguous).
    pub timeout: Option<HumanDuration>,
    pub template: Option<String>,
}

pub(crate) fn yes() -> bool {
    true
}

/// `concurrency`: 1 to [`MAX_CONCURRENCY`]. (The error names the key: serde's own message for
/// a key in a flattened table would not.)
fn concurrency<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NonZeroU32>, D::Error> {
    let n = i64::deserialize(d)?;
    u32::try_from(n)
        .ok()
        .filter(|n| *n <= MAX_CONCURRENCY)
        .and_then(NonZeroU32::new)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("concurrency = {n}: use 1 to {MAX_CONCURRENCY}")))
}

/// A value with a fixed set of choices (a serde enum) for one key. Channel tables are parsed
/// flattened, where serde's "unknown variant" message does not name the key: [`keyed`] adds it.
pub trait Keyed {
    const KEY: &'static str;
}

impl<T: Keyed> Keyed for Option<T> {
    const KEY: &'static str = T::KEY;
}

/// `#[serde(deserialize_with = "keyed")]`: serde's own message, prefixed with the key.
pub fn keyed<'de, D: serde::Deserializer<'de>, T: Deserialize<'de> + Keyed>(d: D) -> Result<T, D::Error> {
    T::deserialize(d).map_err(|e| serde::de::Error::custom(format!("{}: {e}", T::KEY)))
}

/// `rate = "10/s"`: `count` cells per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: NonZeroU32,
    pub per: Duration,
}

impl Rate {
    /// A GCRA limiter: one cell every `per / count`, up to `burst` at once.
    pub fn limiter(self, burst: NonZeroU32) -> governor::DefaultDirectRateLimiter {
        let period = self.per / self.count.get();
        let quota = governor::Quota::with_period(period)
            .unwrap_or_else(|| governor::Quota::per_second(self.count))
            .allow_burst(burst);
        governor::RateLimiter::direct(quota)
    }
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
        // No setting needs more than a day; anything longer is a typo that would make a run
        // wait forever (and `from_secs_f64` would panic on the absurd ones).
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if d <= MAX_DURATION => Ok(HumanDuration(d)),
            _ => Err(format!("invalid duration {s:?}: at most 1 day (\"24h\")")),
        }
    }
}

/// The longest duration any setting accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);
/// The shortest per-attempt `timeout`: below it no provider can answer, and a delivery whose
/// message was handed over would be marked failed.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Most connections / requests in flight one channel may have.
pub const MAX_CONCURRENCY: u32 = 256;
/// `retry_base` / `retry_max` when the config does not say.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);

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
    /// `[reach] order`: channel names or types, each with where it is written.
    pub reach: Option<Vec<(String, SourceLocation)>>,
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
                let org = source.find("[org]").unwrap_or(0);
                let key = source[org..].find("timezone").map_or(org, |i| org + i);
                AppError::invalid_at(
                    Some(SourceLocation::from_offset(&file, &source, key)),
                    format!("[org] timezone {tz:?} is not a known IANA time zone name such as \"Europe/Berlin\""),
                )
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

        // `templates/` beside the config is used without being named; a folder that is named
        // must exist (a typo would silently send the built-in texts).
        let templates_dir = match raw.templates_dir.as_deref() {
            Some(dir) => {
                let path = resolve(dir);
                if !path.is_dir() {
                    let key = source.find("templates_dir").unwrap_or(0);
                    return Err(AppError::invalid_at(
                        Some(SourceLocation::from_offset(&file, &source, key)),
                        format!("templates_dir {dir:?}: {} is not a folder", path.display()),
                    ));
                }
                Some(path)
            }
            None => Some(base.join("templates")).filter(|p| p.is_dir()),
        };

        let mut channels = Vec::new();
        for (name, spanned) in raw.channels {
            let location = at(spanned.span());
            let settings = spanned.into_inner();
            validate_channel(&name, &settings).map_err(|(key, m)| {
                // Point at the key when the table has it, else at the table.
                let at_key = key
                    .and_then(|k| {
                        let table = &source[location.offset..];
                        let end = table[1..].find("\n[").map_or(table.len(), |i| i + 1);
                        table[..end]
                            .find(&format!("{k} "))
                            .or_else(|| table[..end].find(&format!("{k}=")))
                    })
                    .map_or(location.clone(), |i| {
                        SourceLocation::from_offset(&file, &source, location.offset + i)
                    });
                AppError::invalid_at(Some(at_key), m)
            })?;
            channels.push(ChannelEntry {
                name,
                settings,
                location,
            });
        }
        crate::channel::http::check_config_urls(&file, &source, &channels)?;
        let reach = match raw.reach {
            Some(r) => {
                let order: Vec<(String, SourceLocation)> = r
                    .order
                    .into_iter()
                    .map(|n| (n.get_ref().clone(), at(n.span())))
                    .collect();
                check_reach_names(&order, &channels)?;
                Some(order)
            }
            None => None,
        };

        Ok(Config {
            path: path.map(Path::to_path_buf),
            base_dir: base.to_path_buf(),
            state_dir: resolve(raw.state_dir.as_deref().unwrap_or(".announce")),
            templates_dir,
            default_region,
            org: raw.org,
            audience: AudienceSettings {
                file: raw.audience.file.as_deref().map(resolve),
                suppress: raw.audience.suppress.as_deref().map(resolve),
                delimiter,
                encoding: raw.audience.encoding,
            },
            channels,
            reach,
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

/// A `[reach] order` (or front matter `reach`) names configured channels, each once, by name or
/// type. Whether they reach people one by one is checked when the channels are built.
pub fn check_reach_names(order: &[(String, SourceLocation)], channels: &[ChannelEntry]) -> Result<(), AppError> {
    if order.is_empty() {
        return Err(AppError::invalid(
            "reach: the order is empty; name at least one channel, or leave it out",
        ));
    }
    for (i, (name, at)) in order.iter().enumerate() {
        if !channels.iter().any(|c| &c.name == name || c.type_name() == name) {
            let known = channels.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
            return Err(AppError::invalid_at(
                Some(at.clone()),
                format!("reach: no channel named {name:?} and no channel of that type (configured: {known})"),
            ));
        }
        if order[..i].iter().any(|(n, _)| n == name) {
            return Err(AppError::invalid_at(
                Some(at.clone()),
                format!("reach: {name:?} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Checks serde cannot express. Returns the key the problem is about (when there is one) and
/// a message; the caller adds the location.
fn validate_channel(name: &str, s: &ChannelSettings) -> Result<(), (Option<&'static str>, String)> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err((None, format!("channel name {name:?}: use letters, digits, '-' and '_'")));
    }
    validate_common(name, &s.common).map_err(|(k, m)| (Some(k), m))?;
    s.kind.config().validate(name).map_err(|m| (None, m))
}

/// The limits on the keys every channel has.
fn validate_common(name: &str, c: &Common) -> Result<(), (&'static str, String)> {
    let base = c.retry_base.map_or(DEFAULT_RETRY_BASE, |d| d.0);
    let max = c.retry_max.map_or(DEFAULT_RETRY_MAX, |d| d.0);
    if base > max {
        let key = if c.retry_base.is_some() {
            "retry_base"
        } else {
            "retry_max"
        };
        return Err((
            key,
            format!("[channels.{name}] retry_base ({base:?}) is larger than retry_max ({max:?})"),
        ));
    }
    if let Some(t) = c.timeout
        && t.0 < MIN_TIMEOUT
    {
        return Err((
            "timeout",
            format!("[channels.{name}] timeout must be at least 1s (no provider answers sooner)"),
        ));
    }
    Ok(())
}

/// Plaintext SMTP is only acceptable when it cannot leave the machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
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
        for t in crate::channel::CHANNEL_TYPES {
            assert!(types.contains(t), "example config lacks a {t} channel");
        }
    }

    #[test]
    fn unknown_type_lists_every_registered_type() {
        let msg = parse("[channels.x]\ntype = \"pigeon\"\n").unwrap_err().to_string();
        let listed: Vec<_> = msg.split('`').skip(3).step_by(2).collect();
        assert_eq!(listed, crate::channel::CHANNEL_TYPES, "{msg}");
    }

    /// A value outside a key's fixed set is refused by serde, at the table, naming the key, the
    /// value and every valid value.
    #[test]
    fn unknown_choices_name_key_value_and_choices() {
        let cases = [
            (
                "type = \"sms\"\nprovider = \"nexmo\"",
                "provider",
                "nexmo",
                ["twilio", "generic"],
            ),
            (
                "type = \"sms\"\nprovider = \"seven\"\nrate_unit = \"byte\"",
                "rate_unit",
                "byte",
                ["message", "segment"],
            ),
            (
                "type = \"webhook\"\nurl = \"https://x.example\"\npreset = \"irc\"",
                "preset",
                "irc",
                ["slack", "google-chat"],
            ),
            (
                "type = \"mastodon\"\ninstance = \"https://m.example\"\naccess_token_env = \"T\"\nvisibility = \"secret\"",
                "visibility",
                "secret",
                ["public", "direct"],
            ),
            (
                "type = \"telegram\"\nbot_token_env = \"T\"\nchat_ids = [\"1\"]\nparse_mode = \"html\"",
                "parse_mode",
                "html",
                ["HTML", "MarkdownV2"],
            ),
            (
                "type = \"email\"\nfrom = \"a@example.org\"\n[[channels.c.relays]]\nhost = \"h\"\ntls = \"ssl\"",
                "tls",
                "ssl",
                ["starttls", "none"],
            ),
        ];
        for (table, key, value, choices) in cases {
            let msg = parse(&format!("\n[channels.c]\n{table}\n")).unwrap_err().to_string();
            assert!(msg.starts_with("channels.toml:2:"), "{msg}");
            assert!(msg.contains(key) && msg.contains(&format!("`{value}`")), "{msg}");
            for c in choices {
                assert!(msg.contains(&format!("`{c}`")), "{msg}");
            }
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
    fn relative_paths_resolve_against_config_folder() {
        let c = parse("state_dir = \"st\"\n[audience]\nfile = \"c.csv\"\n").unwrap();
        assert_eq!(c.state_dir, Path::new("/base/st"));
        assert_eq!(c.audience.file.as_deref(), Some(Path::new("/base/c.csv")));
    }
}
