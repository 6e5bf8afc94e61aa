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
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::channel::{BuildContext, ChannelEntry, ChannelSettings};
use crate::error::{AppError, SourceLocation};
use crate::settings::{Common, DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX, MIN_TIMEOUT, Org};

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
    /// enabled channel or not) for [`crate::secrets::redact`], before any channel talks to anyone: a provider
    /// that quotes a request can then never put any of them into a message.
    fn register_secrets(&self) {
        fn walk(v: &toml::Value) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        match v {
                            toml::Value::String(var) if k.ends_with("_env") => {
                                if let Ok(value) = std::env::var(var) {
                                    crate::secrets::register_secret(&value);
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
            // serde reports a bad value of a channel table's shared keys at the table; this
            // one names its key first, so point at the key.
            let loc = e.span().map(|s| {
                let key = e
                    .message()
                    .starts_with("quiet_hours ")
                    .then(|| key_in_table(&source[s.start..], "quiet_hours"))
                    .flatten();
                SourceLocation::from_offset(&file, &source, s.start + key.unwrap_or(0))
            });
            AppError::invalid_at(loc, format!("invalid config: {}", e.message()))
        })?;
        let at = |span: std::ops::Range<usize>| SourceLocation::from_offset(&file, &source, span.start);
        let resolve = |p: &str| crate::settings::resolve(base, p);

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
            zone(tz).ok_or_else(|| {
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
            let mut settings = spanned.into_inner();
            // Point at the key when the table has it, else at the table.
            let at_key = |k: &str| {
                key_in_table(&source[location.offset..], k).map_or(location.clone(), |i| {
                    SourceLocation::from_offset(&file, &source, location.offset + i)
                })
            };
            validate_channel(&name, &settings)
                .map_err(|(key, m)| AppError::invalid_at(Some(key.map_or(location.clone(), at_key)), m))?;
            if settings.common.quiet_hours.is_some() {
                settings.common.quiet_hours_at = Some(at_key("quiet_hours"));
            }
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
        crate::settings::resolve(&self.base_dir, p)
    }

    /// What channels read from the rest of the file when they are built.
    pub fn build_context(&self) -> BuildContext<'_> {
        BuildContext {
            base_dir: &self.base_dir,
            state_dir: &self.state_dir,
            templates_dir: self.templates_dir.as_deref(),
            org: &self.org,
            timezone: self.timezone(),
            channels: &self.channels,
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
            .and_then(zone)
            .unwrap_or(jiff::tz::TimeZone::UTC)
    }
}

/// jiff's `TimeZone::get`, by reading the zone's own file where jiff would find it: jiff lists
/// the whole zoneinfo tree on its first lookup (dozens of directory reads, on every start).
/// Anything else (`TZDIR`, another case, a file that is not TZif) goes to jiff as before.
fn zone(name: &str) -> Option<jiff::tz::TimeZone> {
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<Vec<(String, jiff::tz::TimeZone)>>> = OnceLock::new();
    let seen = SEEN.get_or_init(Mutex::default);
    let found = seen
        .lock()
        .ok()?
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, tz)| tz.clone());
    if found.is_some() {
        return found;
    }
    let plain = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-+".contains(&b))
    };
    let dir = Path::new("/usr/share/zoneinfo");
    // jiff leaves out these two trees of the same zones.
    let listed = !name.starts_with("posix/") && !name.starts_with("right/");
    let own_file = (std::env::var_os("TZDIR").is_none() && listed && name.split('/').all(plain) && dir.is_dir())
        .then(|| std::fs::read(dir.join(name)).ok())
        .flatten()
        .and_then(|bytes| jiff::tz::TimeZone::tzif(name, &bytes).ok());
    let tz = own_file.or_else(|| jiff::tz::TimeZone::get(name).ok())?;
    if let Ok(mut seen) = seen.lock() {
        seen.push((name.to_string(), tz.clone()));
    }
    Some(tz)
}

/// Where `key` is written in the table that starts `table` (the rest of the file from its
/// header): its offset in `table`.
fn key_in_table(table: &str, key: &str) -> Option<usize> {
    let end = table.get(1..)?.find("\n[").map_or(table.len(), |i| i + 1);
    table[..end]
        .find(&format!("{key} "))
        .or_else(|| table[..end].find(&format!("{key}=")))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, AppError> {
        Config::parse(Some(Path::new("channels.toml")), Path::new("/base"), s.to_string())
    }

    /// The zone's own file gives what jiff's database gives, for every zone it lists, and a
    /// name jiff refuses stays refused.
    #[test]
    fn zones_are_what_jiff_finds() {
        let names: Vec<String> = jiff::tz::db().available().map(|n| n.to_string()).collect();
        assert!(
            names.iter().any(|n| n == "Europe/Berlin"),
            "no zoneinfo here: apt-get install tzdata"
        );
        let odd = [
            "europe/berlin",
            "posix/Europe/Berlin",
            "Europe/Nowhere",
            "../zoneinfo/UTC",
            "zone.tab",
            "",
            "/etc/localtime",
        ];
        let times: Vec<jiff::Timestamp> = ["2026-01-15T12:00:00Z", "2026-07-15T12:00:00Z", "1990-03-25T01:30:00Z"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        for name in names.iter().map(String::as_str).chain(odd) {
            let (ours, jiffs) = (zone(name), jiff::tz::TimeZone::get(name).ok());
            assert_eq!(ours.is_some(), jiffs.is_some(), "{name}");
            if let (Some(a), Some(b)) = (ours, jiffs) {
                assert_eq!(a.iana_name(), b.iana_name(), "{name}");
                for t in &times {
                    assert_eq!(a.to_offset(*t), b.to_offset(*t), "{name} at {t}");
                }
            }
        }
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

    /// Facebook and Instagram share their Graph keys through a flattened struct; a key neither
    /// has is still refused at the table.
    #[test]
    fn graph_tables_refuse_unknown_keys() {
        for (ty, id) in [("facebook", "page_id"), ("instagram", "ig_user_id")] {
            let table = format!(
                "[channels.g]\ntype = \"{ty}\"\n{id} = \"1\"\naccess_token_env = \"T\"\ngraph_url = \"https://graph.example\"\nthrottle_wait = \"5s\"\n"
            );
            let c = parse(&table).unwrap();
            assert_eq!(c.channels[0].type_name(), ty);
            let msg = parse(&format!("\n{table}graph_uri = \"x\"\n")).unwrap_err().to_string();
            assert!(
                msg.starts_with("channels.toml:2:") && msg.contains("graph_uri"),
                "{msg}"
            );
        }
        let msg =
            parse("[channels.g]\ntype = \"facebook\"\npage_id = \"1\"\naccess_token_env = \"T\"\nig_user_id = \"2\"\n")
                .unwrap_err()
                .to_string();
        assert!(msg.contains("ig_user_id"), "{msg}");
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
    fn bad_rate_names_the_file() {
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
