//! The languages announce speaks: built-in text, dates and the status page's chrome. A leaf
//! module, so settings, render, report and the channels can all use it.

use serde::{Deserialize, Serialize};

/// A language with built-in templates and labels. `[org] locale` picks the default; a person's
/// `locale` column picks theirs when it starts with one of these (`de-AT`, `EN_gb`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    De,
    #[default]
    En,
}

impl Locale {
    pub const ALL: [Locale; 2] = [Locale::De, Locale::En];

    /// The language code, as in file names (`email.txt.de.hbs`) and `<html lang>`.
    pub fn code(self) -> &'static str {
        match self {
            Locale::De => "de",
            Locale::En => "en",
        }
    }

    /// The built-in language a locale tag names: its language subtag, case-insensitive.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let lang = language_of(tag)?;
        Locale::ALL.into_iter().find(|l| l.code() == lang)
    }

    /// A date and time as people of this language write it: `03.04.2026 09:12` in German,
    /// `3 Apr 2026 09:12` in English.
    pub fn datetime(self, t: &jiff::civil::DateTime) -> String {
        match self {
            Locale::De => t.strftime("%d.%m.%Y %H:%M").to_string(),
            Locale::En => t.strftime("%-d %b %Y %H:%M").to_string(),
        }
    }
}

impl Locale {
    /// A journal timestamp (RFC 3339) in `tz` as people of this language read it, to the
    /// second and with the zone ("03.04.2026 11:12:41 CEST", "3 Apr 2026 11:12:41 CEST"): for
    /// reports people read. Anything unreadable is returned as it is.
    pub fn timestamp(self, ts: &str, tz: &jiff::tz::TimeZone) -> String {
        let Ok(t) = ts.parse::<jiff::Timestamp>() else {
            return ts.to_string();
        };
        let z = t.to_zoned_datetime(tz.clone());
        let date = match self {
            Locale::De => "%d.%m.%Y",
            Locale::En => "%-d %b %Y",
        };
        z.strftime(&format!("{date} %H:%M:%S %Z")).to_string()
    }
}

/// The lowercase language subtag of a locale tag (`en` of `en-GB`, `de` of `DE_at`), or `None`
/// for an empty or malformed tag.
pub fn language_of(tag: &str) -> Option<String> {
    let lang = tag.trim().split(['-', '_']).next()?;
    (lang.len() >= 2 && lang.len() <= 3 && lang.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| lang.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_names_its_language_case_insensitively() {
        assert_eq!(Locale::from_tag("de"), Some(Locale::De));
        assert_eq!(Locale::from_tag("EN-gb"), Some(Locale::En));
        assert_eq!(Locale::from_tag("de_AT"), Some(Locale::De));
        assert_eq!(Locale::from_tag("fr"), None);
        assert_eq!(Locale::from_tag(""), None);
        assert_eq!(Locale::from_tag("d"), None);
        assert_eq!(language_of(" Fr-CA "), Some("fr".into()));
    }

    #[test]
    fn dates_follow_the_language() {
        let t: jiff::civil::DateTime = "2026-04-03T09:12:00".parse().unwrap();
        assert_eq!(Locale::De.datetime(&t), "03.04.2026 09:12");
        assert_eq!(Locale::En.datetime(&t), "3 Apr 2026 09:12");
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            Locale::De.timestamp("2026-04-03T09:12:41Z", &berlin),
            "03.04.2026 11:12:41 CEST"
        );
        assert_eq!(
            Locale::En.timestamp("2026-04-03T09:12:41Z", &berlin),
            "3 Apr 2026 11:12:41 CEST"
        );
        assert_eq!(Locale::En.timestamp("not a time", &berlin), "not a time");
    }
}
