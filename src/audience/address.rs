//! Address validation: an email or phone cell into an [`Address`] (emails checked, phones
//! normalised to E.164 with the default region).

use phonenumber::country::Id;

/// One address cell (email or phone) of a recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Address {
    /// The column is absent or the cell is empty.
    Missing,
    /// Email: trimmed as written. Phone: E.164, e.g. `+4930123456`.
    Valid(String),
    /// The cell holds something that is not a usable address.
    Invalid { raw: String, reason: String },
}

impl Address {
    /// The usable address, if any.
    pub fn valid(&self) -> Option<&str> {
        match self {
            Address::Valid(s) => Some(s),
            _ => None,
        }
    }

    /// True when the column is absent or the cell is empty.
    pub fn is_missing(&self) -> bool {
        matches!(self, Address::Missing)
    }

    /// The human-readable reason when the address is invalid.
    pub fn invalid_reason(&self) -> Option<&str> {
        match self {
            Address::Invalid { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

/// `"DE"` / `"de"` -> `Some(Id::DE)`.
pub fn parse_region(code: &str) -> Option<Id> {
    code.trim().to_ascii_uppercase().parse().ok()
}

/// Validate an email address (a TLD is required, `Name <addr>` and IP-literal
/// domains are not accepted). Returns the trimmed address, or a reason starting
/// with `invalid email address: `.
pub fn validate_email(raw: &str) -> Result<String, String> {
    use email_address::{EmailAddress, Error, Options};

    let addr = raw.trim();
    let why = |r: &str| Err(format!("invalid email address: {r}"));
    if addr.is_empty() {
        return why("empty");
    }
    if addr.contains('<') || addr.contains('>') {
        return why("only the bare address is allowed, not 'Name <address>'");
    }
    if addr.chars().any(char::is_whitespace) && !addr.starts_with('"') {
        return why("contains a space");
    }
    let options = Options::default()
        .with_required_tld()
        .without_display_text()
        .without_domain_literal();
    match EmailAddress::parse_with_options(addr, options) {
        Ok(_) => Ok(addr.to_string()),
        Err(e) => why(match e {
            Error::MissingSeparator => "missing '@'",
            Error::LocalPartEmpty => "nothing before '@'",
            Error::LocalPartTooLong => "the part before '@' is longer than 64 characters",
            Error::DomainEmpty => "nothing after '@'",
            Error::DomainTooLong => "the domain is too long",
            Error::SubDomainEmpty => "the domain has an empty part (stray '.')",
            Error::SubDomainTooLong => "a part of the domain is longer than 63 characters",
            Error::DomainTooFew => "the domain has no top-level domain (like '.com')",
            Error::UnsupportedDomainLiteral => "IP-address domains are not supported",
            Error::UnbalancedQuotes => "unbalanced quotes",
            Error::UnsupportedDisplayName | Error::MissingDisplayName | Error::MissingEndBracket => {
                "only the bare address is allowed, not 'Name <address>'"
            }
            Error::InvalidCharacter => "invalid character",
            _ => "malformed",
        }),
    }
}

/// Normalise a phone number to E.164 (`+4930123456`). A leading `00` is taken
/// as the international prefix; without `+`/`00` the number is read in
/// `region`. Spaces, `/`, `-`, `.`, `(` and `)` are accepted as separators
/// (`+49 (0)30 ...` is understood). Letters and extensions are rejected.
pub fn normalize_phone(raw: &str, region: Option<Id>) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("invalid phone number: empty".to_string());
    }
    for (i, c) in s.char_indices() {
        let ok =
            c.is_ascii_digit() || c.is_whitespace() || matches!(c, '-' | '/' | '.' | '(' | ')') || (c == '+' && i == 0);
        if !ok {
            return Err(format!("invalid phone number: unexpected character '{c}'"));
        }
    }
    if !s.chars().any(|c| c.is_ascii_digit()) {
        return Err("invalid phone number: no digits".to_string());
    }
    // A leading "00" (after optional separators such as "(00 49)") is the
    // international prefix: rewrite it as '+'.
    let first_digit = s.find(|c: char| c.is_ascii_digit()).unwrap_or(0);
    let owned;
    let s = if !s.starts_with('+') && s[first_digit..].starts_with("00") {
        owned = format!("+{}", &s[first_digit + 2..]);
        owned.as_str()
    } else {
        s
    };
    let international = s.starts_with('+');
    if !international && region.is_none() {
        return Err("no country code and no default_region configured".to_string());
    }
    let region = if international { None } else { region };
    let number = crate::phone::parse(region, s).map_err(|e| {
        use phonenumber::ParseError as E;
        let why = match e {
            E::InvalidCountryCode => "unknown country code",
            E::TooShortAfterIdd | E::TooShortNsn => "too short",
            E::TooLong => "too long",
            _ => "not a phone number",
        };
        format!("invalid phone number: {why}")
    })?;
    if number.extension().is_some() {
        return Err("invalid phone number: extensions are not supported".to_string());
    }
    let (valid, kind) = crate::phone::validate(&number);
    if !valid {
        return Err(match region {
            Some(r) => format!("not a valid phone number for region {}", r.as_ref()),
            None => "not a valid phone number".to_string(),
        });
    }
    let e164 = e164(&number);
    crate::phone::remember(&e164, &number, kind);
    Ok(e164)
}

/// `+<country code><national number>`: what `number.format().mode(Mode::E164)` writes, without
/// the regex work that formatter does first (picking a national format it does not use for
/// E.164).
fn e164(number: &phonenumber::PhoneNumber) -> String {
    format!("+{}{}", number.country().code(), number.national())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_is_what_the_formatter_writes() {
        for (raw, region) in [
            ("+39 06 1234 5678", None),
            ("+39 333 123 4567", None),
            ("0151 23456789", Some(Id::DE)),
            ("030 1234567", Some(Id::DE)),
            ("+1 650 253 0000", None),
            ("+44 20 7946 0958", None),
            ("+225 07 12 34 56 78", None),
            ("+7 912 345 67 89", None),
            ("+352 621 123 456", None),
            ("+800 1234 5678", None),
            ("+886 2 2345 6789", None),
        ] {
            let n = phonenumber::parse(region, raw).unwrap();
            assert!(n.is_valid(), "{raw}");
            assert_eq!(e164(&n), n.format().mode(phonenumber::Mode::E164).to_string(), "{raw}");
        }
    }

    #[test]
    fn validate_email_reasons() {
        assert_eq!(validate_email("  ada@example.com ").unwrap(), "ada@example.com");
        assert_eq!(
            validate_email("Ada.Lovelace+x@Example.COM").unwrap(),
            "Ada.Lovelace+x@Example.COM"
        );
        let r = |s: &str| validate_email(s).unwrap_err();
        assert_eq!(r("adaexample.com"), "invalid email address: missing '@'");
        assert_eq!(r("@example.com"), "invalid email address: nothing before '@'");
        assert_eq!(r("ada@"), "invalid email address: nothing after '@'");
        assert!(r("ada@example").contains("top-level domain"));
        assert!(r("ada@example..com").contains("empty part"));
        assert!(r("ada@[127.0.0.1]").contains("IP-address"));
        assert!(r("Ada <ada@example.com>").contains("bare address"));
        assert!(r("ada@exa mple.com").contains("space"));
        assert!(r("ada,bob@example.com").contains("invalid character"));
        assert_eq!(r(""), "invalid email address: empty");
    }

    #[test]
    fn parse_region_codes() {
        assert_eq!(parse_region("DE"), Some(Id::DE));
        assert_eq!(parse_region(" de "), Some(Id::DE));
        assert_eq!(parse_region("us"), Some(Id::US));
        assert_eq!(parse_region("XX"), None);
        assert_eq!(parse_region(""), None);
    }
}
