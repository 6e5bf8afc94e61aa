//! A person's language as templates and translations see it: the language subtag of their
//! `locale` column, any language (a user may translate into one announce has no built-ins for).
//! Copy and without allocation: the planner works it out for every person of the audience.

use crate::locale::Locale;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lang {
    code: [u8; 3],
    len: u8,
}

impl Lang {
    /// The language of a locale tag, as [`crate::locale::language_of`] reads it (`en` of `EN_gb`).
    pub fn of_tag(tag: &str) -> Option<Lang> {
        let lang = tag.trim().split(['-', '_']).next()?;
        if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let mut code = [0u8; 3];
        for (c, b) in code.iter_mut().zip(lang.bytes()) {
            *c = b.to_ascii_lowercase();
        }
        Some(Lang {
            code,
            len: lang.len() as u8,
        })
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored.
        std::str::from_utf8(&self.code[..usize::from(self.len)]).unwrap_or("")
    }

    /// The built-in language this is, if announce has one.
    pub fn locale(self) -> Option<Locale> {
        Locale::ALL.into_iter().find(|l| l.code() == self.as_str())
    }
}

impl From<Locale> for Lang {
    fn from(l: Locale) -> Lang {
        Lang::of_tag(l.code()).unwrap_or(Lang { code: *b"en\0", len: 2 })
    }
}

impl Default for Lang {
    fn default() -> Lang {
        Lang::from(Locale::default())
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// People per language, in the order first seen (a handful of languages: a list is enough).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Count(Vec<(Lang, usize)>);

impl Count {
    pub fn add(&mut self, lang: Lang) {
        match self.0.iter_mut().find(|(l, _)| *l == lang) {
            Some((_, n)) => *n += 1,
            None => self.0.push((lang, 1)),
        }
    }

    /// The languages counted, in the order first seen.
    pub fn langs(&self) -> impl Iterator<Item = Lang> + '_ {
        self.0.iter().map(|(l, _)| *l)
    }

    /// "languages: de 21, en 7" (by language code), or nothing without people.
    pub fn describe(&self) -> Option<String> {
        let mut all = self.0.clone();
        all.sort();
        let list: Vec<String> = all.iter().map(|(l, n)| format!("{l} {n}")).collect();
        (!list.is_empty()).then(|| format!("languages: {}", list.join(", ")))
    }
}

/// `NAME.LANG.hbs` → (`NAME.hbs`, LANG): a file that translates another template.
pub fn split_template_name(name: &str) -> Option<(String, Lang)> {
    let stem = name.strip_suffix(".hbs")?;
    let (base, lang) = stem.rsplit_once('.')?;
    // Lowercase only: `x.TXT.hbs` is no translation, and `base.lang` names stay unambiguous.
    if base.is_empty() || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some((format!("{base}.hbs"), Lang::of_tag(lang)?))
}

/// The built-in template of `base` for `locale`: `NAME.hbs` is English, `NAME.de.hbs` German.
pub fn builtin_name(base: &str, locale: Locale) -> String {
    match locale {
        Locale::En => base.to_string(),
        other => format!("{}.{}.hbs", base.strip_suffix(".hbs").unwrap_or(base), other.code()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_gives_its_language() {
        for (tag, code) in [
            ("de", "de"),
            ("EN_us", "en"),
            ("en-GB", "en"),
            (" Fr-CA ", "fr"),
            ("gsw", "gsw"),
        ] {
            assert_eq!(Lang::of_tag(tag).map(|l| l.to_string()).as_deref(), Some(code), "{tag}");
        }
        for bad in ["", "d", "deutsch", "1a", "-en"] {
            assert_eq!(Lang::of_tag(bad), None, "{bad}");
        }
        assert_eq!(Lang::of_tag("DE-at").and_then(Lang::locale), Some(Locale::De));
        assert_eq!(Lang::of_tag("fr").and_then(Lang::locale), None);
        assert_eq!(Lang::from(Locale::De).as_str(), "de");
    }

    #[test]
    fn template_names_and_their_translations() {
        let split = |n: &str| split_template_name(n).map(|(b, l)| (b, l.to_string()));
        assert_eq!(split("email.txt.en.hbs"), Some(("email.txt.hbs".into(), "en".into())));
        assert_eq!(split("email.html.de.hbs"), Some(("email.html.hbs".into(), "de".into())));
        assert_eq!(split("facebook.de.hbs"), Some(("facebook.hbs".into(), "de".into())));
        // `txt` reads as a language code; it only matters if `email.hbs` is a template.
        assert_eq!(split("email.txt.hbs"), Some(("email.hbs".into(), "txt".into())));
        for no in ["email.html.hbs", "email.hbs", "de.hbs", "x.EN.hbs", "x.en.txt"] {
            assert_eq!(split(no), None, "{no}");
        }
        assert_eq!(builtin_name("email.txt.hbs", Locale::De), "email.txt.de.hbs");
        assert_eq!(builtin_name("email.txt.hbs", Locale::En), "email.txt.hbs");
    }
}
