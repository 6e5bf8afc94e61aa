//! Secrets: reading them from the environment, remembering every form they can take in text, and
//! taking them out of any text before it is shown, logged or stored.
//!
//! A leaf module (it depends on nothing else in the crate) so that the log writer in `main.rs`,
//! the error types and every channel can use it. Redaction happens on whole texts; callers that
//! shorten a text (excerpts of provider answers) redact first and cut afterwards, so a cut can
//! never leave a recognisable piece of a secret behind.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use secrecy::SecretString;

/// What [`redact`] puts in place of a secret.
pub const REDACTED: &str = "[redacted]";

/// Shorter secrets are refused when read: a value of a few characters occurs by chance in
/// ordinary text, so redacting it would mangle messages, and not redacting it would leak it.
pub const MIN_SECRET_CHARS: usize = 8;

/// Forms shorter than this are not searched for (base64 fragments of short values would match
/// by chance).
const MIN_FORM_LEN: usize = 6;

#[derive(Default)]
struct Registry {
    forms: Vec<String>,
    matcher: Option<Arc<AhoCorasick>>,
}

static REGISTRY: RwLock<Registry> = RwLock::new(Registry {
    forms: Vec::new(),
    matcher: None,
});

/// Read a secret named by a `*_env` key. The message names the variable, never a value.
pub fn secret_from_env(var: &str, what: &str) -> Result<SecretString, String> {
    match std::env::var(var) {
        Ok(v) if v.is_empty() => Err(format!("{what}: environment variable {var} is empty")),
        Ok(v) if v.chars().count() < MIN_SECRET_CHARS => Err(format!(
            "{what}: the value of environment variable {var} is shorter than {MIN_SECRET_CHARS} characters; \
             such a short secret cannot be kept out of logs and reports reliably, so announce refuses it"
        )),
        Ok(v) => {
            register_secret(&v);
            Ok(SecretString::from(v))
        }
        Err(_) => Err(format!("{what}: environment variable {var} is not set")),
    }
}

/// Remember a secret value so that [`redact`] takes it out of any text in every form listed in
/// [`secret_forms`]. Values shorter than [`MIN_SECRET_CHARS`] are not tracked (see there).
pub fn register_secret(value: &str) {
    if value.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    add_forms(secret_forms(value));
}

/// Remember a user name and password pair as the protocols encode them together: SMTP AUTH
/// PLAIN (`base64("\0user\0password")`) and HTTP Basic (`base64("user:password")`), plus the
/// password alone.
pub fn register_credential(user: &str, secret: &str) {
    register_secret(secret);
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut forms = Vec::new();
    for joined in [
        format!("\0{user}\0{secret}"),
        format!("{user}\0{secret}"),
        format!("{user}:{secret}"),
    ] {
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ] {
            forms.push(engine.encode(joined.as_bytes()));
        }
    }
    add_forms(forms);
}

fn add_forms(new: Vec<String>) {
    let mut reg = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    let before = reg.forms.len();
    for f in new {
        if f.len() >= MIN_FORM_LEN && !reg.forms.contains(&f) {
            reg.forms.push(f);
        }
    }
    if reg.forms.len() != before {
        // Leftmost-longest: where a full encoding and a fragment of it both match, the whole
        // encoding goes.
        reg.matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(&reg.forms)
            .ok()
            .map(Arc::new);
    }
}

/// Every way a secret can appear in text that quotes a request: as written; percent-encoded
/// (both hex cases) and form-encoded; JSON-escaped as serde writes it, with `\/` for `/`, with
/// `\uXXXX` for non-ASCII (PHP's `json_encode`) and with `\u00xx` for every punctuation
/// character (`JSON_HEX_*`); base64 (standard and url-safe) whole and at the three byte
/// alignments it can have inside a longer encoded text. A URL also yields its path and query,
/// and its last path segment: chat webhook URLs carry their token there.
pub fn secret_forms(value: &str) -> Vec<String> {
    let mut forms = vec![value.to_string()];
    if let Ok(url) = reqwest::Url::parse(value)
        && url.has_host()
        && url.path().len() > 1
    {
        let mut tail = url.path().to_string();
        if let Some(q) = url.query() {
            tail.push('?');
            tail.push_str(q);
        }
        if let Some(last) = url.path_segments().and_then(|mut s| s.next_back())
            && last.chars().count() >= MIN_SECRET_CHARS
        {
            forms.extend(secret_forms(last));
        }
        forms.extend(secret_forms(&tail));
    }
    // RFC 3986 (unreserved characters kept), the same with `+` for a space (as Python's
    // `quote_plus` writes it), and WHATWG form encoding (reqwest's `.form()`, which keeps `*`
    // and encodes `~`); each with upper- and lower-case hex digits.
    let percent = percent_encoding::utf8_percent_encode(value, RFC3986_RESERVED).to_string();
    let plus = percent.replace("%20", "+");
    let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
    for encoded in [percent, plus, form] {
        forms.push(lower_hex(&encoded));
        forms.push(encoded);
    }
    forms.extend(json_forms(value));
    forms.extend(base64_forms(value.as_bytes()));
    forms
}

/// What RFC 3986 percent-encodes: everything but its unreserved characters.
const RFC3986_RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A percent-encoded text with lower-case hex digits (`%2f`), as some encoders write them.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut digits = 0;
    for c in encoded.chars() {
        if digits > 0 {
            out.push(c.to_ascii_lowercase());
            digits -= 1;
        } else {
            digits = if c == '%' { 2 } else { 0 };
            out.push(c);
        }
    }
    out
}

fn json_forms(value: &str) -> Vec<String> {
    let serde = serde_json::to_string(value).unwrap_or_default();
    let serde = serde[1..serde.len().saturating_sub(1)].to_string();
    let slashed = serde.replace('/', "\\/");
    let mut php = String::new();
    let mut hex_lower = String::new();
    let mut hex_upper = String::new();
    for c in value.chars() {
        let mut units = [0u16; 2];
        match c {
            c if c.is_ascii_alphanumeric() => {
                php.push(c);
                hex_lower.push(c);
                hex_upper.push(c);
            }
            c => {
                let escaped: Vec<u16> = c.encode_utf16(&mut units).to_vec();
                let lower: String = escaped.iter().map(|u| format!("\\u{u:04x}")).collect();
                let upper: String = escaped.iter().map(|u| format!("\\u{u:04X}")).collect();
                hex_lower.push_str(&lower);
                hex_upper.push_str(&upper);
                match c {
                    '/' => php.push_str("\\/"),
                    '"' => php.push_str("\\\""),
                    '\\' => php.push_str("\\\\"),
                    c if c.is_ascii() && !c.is_ascii_control() => php.push(c),
                    _ => php.push_str(&lower),
                }
            }
        }
    }
    vec![serde, slashed, php, hex_lower, hex_upper]
}

fn base64_forms(bytes: &[u8]) -> Vec<String> {
    let mut forms = Vec::new();
    for engine in [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        forms.push(engine.encode(bytes));
        // Inside a longer text the value starts at any byte alignment: only the characters that
        // depend on the value alone are fixed.
        for shift in 0..3usize {
            let mut padded = vec![0u8; shift];
            padded.extend_from_slice(bytes);
            let enc = engine.encode(&padded);
            let skip = if shift == 0 { 0 } else { 4 };
            let end = (shift + bytes.len()) / 3 * 4;
            if end > skip {
                forms.push(enc[skip..end].to_string());
            }
        }
    }
    forms
}

/// `text` with every registered secret (in any of its forms) replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    match redact_bytes(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // The forms are UTF-8, so replacing them keeps the text UTF-8.
        Cow::Owned(v) => {
            Cow::Owned(String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
        }
    }
}

/// [`redact`] for bytes that may not be UTF-8 (a log line, a provider's answer).
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    let matcher = {
        let reg = REGISTRY.read().unwrap_or_else(PoisonError::into_inner);
        match &reg.matcher {
            Some(m) => m.clone(),
            None => return Cow::Borrowed(bytes),
        }
    };
    if !matcher.is_match(bytes) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    matcher.replace_all_with_bytes(bytes, &mut out, |_, _, dst| {
        dst.extend_from_slice(REDACTED.as_bytes());
        true
    });
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn registered_secrets_are_redacted_in_every_form() {
        let secret = "tok/en+With Spaces&9f3a";
        register_secret(secret);
        register_secret("short");
        let text = format!(
            "raw {secret} | form tok%2Fen%2BWith+Spaces%269f3a | url tok%2fen%2bWith%20Spaces%269f3a | \
             basic {} | basic2 {} | json {} | php tok\\/en+With Spaces&9f3a | \
             hex tok\\u002fen\\u002bWith\\u0020Spaces\\u00269f3a | short stays",
            b64(format!("AC1:{secret}").as_bytes()),
            b64(format!("user12:{secret}").as_bytes()),
            serde_json::to_string(secret).unwrap()
        );
        let r = redact(&text);
        assert!(!r.contains("With"), "{r}");
        for shift in ["", "x", "xy"] {
            let enc = b64(format!("{shift}{secret}").as_bytes());
            assert!(!r.contains(&enc[4..enc.len() - 4]), "{r}");
        }
        assert!(r.contains("short stays") && r.contains(REDACTED), "{r}");
        assert!(matches!(redact("nothing secret here"), Cow::Borrowed(_)));
    }

    /// `*` and `~` are where the encoders differ: RFC 3986 keeps `~` and encodes `*`, a form
    /// body (reqwest, WHATWG) the other way round. Every one is a form, in both hex cases, and
    /// only the hex digits change case.
    #[test]
    fn percent_and_form_encodings_of_every_encoder_are_forms() {
        let forms = secret_forms("Ab*cd~ef gh/ij");
        for f in [
            "Ab%2Acd~ef%20gh%2Fij",
            "Ab%2acd~ef%20gh%2fij",
            "Ab%2Acd~ef+gh%2Fij",
            "Ab%2acd~ef+gh%2fij",
            "Ab*cd%7Eef+gh%2Fij",
            "Ab*cd%7eef+gh%2fij",
        ] {
            assert!(forms.iter().any(|x| x == f), "{f} missing from {forms:?}");
        }
    }

    #[test]
    fn credentials_are_redacted_as_auth_plain_and_basic_send_them() {
        register_credential("mailuser@example.org", "pl41n-Passw0rd");
        let plain = b64(b"\0mailuser@example.org\0pl41n-Passw0rd");
        let basic = b64(b"mailuser@example.org:pl41n-Passw0rd");
        let line = format!("535 5.7.8 Authentication failed for AUTH PLAIN {plain} / Basic {basic}");
        let r = redact(&line);
        assert!(!r.contains(&plain) && !r.contains(&basic), "{r}");
        // Nothing of the encoding survives around the marker.
        assert!(r.ends_with(&format!("PLAIN {REDACTED} / Basic {REDACTED}")), "{r}");
    }

    #[test]
    fn url_secrets_are_redacted_by_path_and_last_segment() {
        register_secret("https://hooks.example/services/T0/B0/Zq8TokenInPath77");
        let r = redact(r#"{"url":"https:\/\/other.host\/services\/T0\/B0\/Zq8TokenInPath77"} and Zq8TokenInPath77"#);
        assert!(!r.contains("Zq8Token"), "{r}");
    }

    #[test]
    fn short_secrets_are_refused_naming_the_variable_only() {
        // SAFETY: a variable only this test uses.
        unsafe { std::env::set_var("ANNOUNCE_UNIT_SHORT_SECRET", "abc1234") };
        let e = secret_from_env("ANNOUNCE_UNIT_SHORT_SECRET", "[channels.x] token_env").unwrap_err();
        assert!(
            e.contains("ANNOUNCE_UNIT_SHORT_SECRET") && !e.contains("abc1234"),
            "{e}"
        );
    }
}
