//! The value types of channels.toml that channels read as well as the config loader: the keys
//! every channel has, rates, durations, `[org]` and the limits on them. A leaf module (beside
//! `locale` and `error`'s locations it uses nothing of this crate), so `config` and `channel` can both depend on it without
//! depending on each other.

use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

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
    /// Opening hours as people should read them ("Mo-Fr 9-18 Uhr").
    pub hours: Option<String>,
    pub timezone: Option<String>,
    /// The language of the built-in templates and the status page, and of people without one.
    #[serde(default)]
    pub locale: crate::locale::Locale,
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
    /// When a phone channel starts no delivery, in `[org] timezone` (refused on other channels
    /// when they are built: only their reach says whether they call or text people).
    pub quiet_hours: Option<QuietHours>,
    /// Where `quiet_hours` is written (set by the config loader), for the message that refuses it.
    #[serde(skip)]
    pub quiet_hours_at: Option<crate::error::SourceLocation>,
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

/// Values written as strings, parsed with their `FromStr` (whose error names the value).
macro_rules! deserialize_from_str {
    ($($t:ty),+) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )+};
}

deserialize_from_str!(Rate, HumanDuration, QuietHours);

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

/// `quiet_hours = "20:00-08:00"`: a daily window of wall-clock time, start inclusive, end
/// exclusive; it may cross midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: jiff::civil::Time,
    pub end: jiff::civil::Time,
}

impl QuietHours {
    /// Whether `t` (wall-clock time) is inside the window.
    pub fn contains(self, t: jiff::civil::Time) -> bool {
        if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// When the window that `now` is inside ends; `None` when `now` is outside it. The end is
    /// the first instant whose wall-clock time is the window's end: where a DST change skips
    /// that time, the instant the clock jumps.
    pub fn ends_after(self, now: &jiff::ZonedDateTime) -> Option<jiff::ZonedDateTime> {
        let local = now.datetime();
        if !self.contains(local.time()) {
            return None;
        }
        let day = if local.time() < self.end {
            local.date()
        } else {
            local.date().tomorrow().ok()?
        };
        let tz = now.time_zone();
        let wanted = day.to_datetime(self.end);
        let end = tz.to_ambiguous_zoned_datetime(wanted).compatible().ok()?;
        if end.datetime() == wanted {
            return Some(end);
        }
        // In a gap `compatible` lands after it by the gap's length: the clock jumped earlier.
        let jump = tz.preceding(end.timestamp()).next()?.timestamp();
        Some(jump.to_zoned_datetime(tz.clone()))
    }
}

impl std::str::FromStr for QuietHours {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("quiet_hours {s:?}: {why}");
        let time = |t: &str| -> Result<jiff::civil::Time, String> {
            let (h, m) = t
                .trim()
                .split_once(':')
                .filter(|(h, m)| (1..=2).contains(&h.len()) && m.len() == 2)
                .ok_or_else(|| bad("expected HH:MM-HH:MM such as \"20:00-08:00\""))?;
            let (h, m): (i8, i8) = h
                .parse()
                .ok()
                .zip(m.parse().ok())
                .filter(|(h, m)| (0..24).contains(h) && (0..60).contains(m))
                .ok_or_else(|| bad(&format!("{:?} is not a time of day from 00:00 to 23:59", t.trim())))?;
            jiff::civil::Time::new(h, m, 0, 0).map_err(|e| bad(&e.to_string()))
        };
        let (start, end) = s
            .split_once('-')
            .ok_or_else(|| bad("expected HH:MM-HH:MM such as \"20:00-08:00\""))?;
        let q = QuietHours {
            start: time(start)?,
            end: time(end)?,
        };
        if q.start == q.end {
            return Err(bad(
                "the start and the end are the same; leave the key out for no quiet hours",
            ));
        }
        Ok(q)
    }
}

impl fmt::Display for QuietHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |t: jiff::civil::Time| format!("{:02}:{:02}", t.hour(), t.minute());
        write!(f, "{}-{}", hm(self.start), hm(self.end))
    }
}

/// Plaintext SMTP is only acceptable when it cannot leave the machine.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A path written in the config, relative to the config's folder `base`.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() { p.to_path_buf() } else { base.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations() {
        let r: Rate = "300/min".parse().unwrap();
        assert_eq!((r.count.get(), r.per), (300, Duration::from_secs(60)));
        assert!("0/s".parse::<Rate>().is_err());
        assert!("ten/s".parse::<Rate>().is_err());
        assert_eq!("250ms".parse::<HumanDuration>().unwrap().0, Duration::from_millis(250));
        assert_eq!("5min".parse::<HumanDuration>().unwrap().0, Duration::from_secs(300));
    }
}
