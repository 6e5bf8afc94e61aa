//! What an SMTP failure means, decided by the stage at which it happened.
//!
//! lettre's `Error` tells the reply code (`status()`) but not the command that drew it, and a
//! refused connection is indistinguishable from one dropped after the final `.` (no
//! `is_connection()`). The stage is what decides between "try the next relay", "this recipient
//! is refused" and "the relay may have the message", so [`super::relay`] drives the SMTP
//! dialogue one command at a time and hands each failure here together with its [`Stage`].

use std::error::Error as _;
use std::time::Duration;

use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::response::Response;

/// Where in the dialogue something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// TCP, implicit TLS, greeting, EHLO, STARTTLS.
    Connect,
    Auth,
    Mail,
    Rcpt,
    /// The DATA command itself (before any of the message is sent).
    Data,
    /// The message, the final `.` and the reply to it.
    EndOfData,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Connect => "connecting",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of data",
        }
    }
}

/// Why one step of the dialogue failed.
#[derive(Debug)]
pub enum StepError {
    Smtp(SmtpError),
    /// No reply within the relay's timeout.
    Timeout(Duration),
    /// Something we refuse to do with this relay (e.g. 8-bit content without 8BITMIME).
    Local(String),
    /// The server lacks what the relay's settings require (STARTTLS): no message can go
    /// through it until the settings change.
    Unsupported(String),
}

impl StepError {
    /// The server's reply code, when the failure is a reply.
    pub fn code(&self) -> Option<u16> {
        match self {
            StepError::Smtp(e) => e.status().map(u16::from),
            _ => None,
        }
    }

    /// The connection is unusable or gone (no reply code): worth one more try on a fresh
    /// connection when it was a pooled one, which the server may have closed while idle.
    pub fn is_stale_connection(&self) -> bool {
        match self {
            StepError::Smtp(e) => e.status().is_none() && !e.is_client(),
            StepError::Timeout(_) | StepError::Local(_) | StepError::Unsupported(_) => false,
        }
    }
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Smtp(e) => f.write_str(&describe(e)),
            StepError::Timeout(t) => write!(f, "no reply within {t:?}"),
            StepError::Local(m) | StepError::Unsupported(m) => f.write_str(m),
        }
    }
}

/// How one relay handled one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The relay could not take the message (connection, DNS, TLS, a 4xx/5xx before the
    /// recipient, a relay-policy refusal): nothing was handed over, another relay may take it.
    Relay(String),
    /// Like `Relay`, but the relay refuses us as configured (certificate not trusted, AUTH not
    /// offered, credentials refused, STARTTLS required, relaying denied): retrying it cannot
    /// help until the settings change.
    Unusable(String),
    /// The relay refused this recipient or this message; 5xx is `permanent`. Another relay
    /// would refuse it as well, so this is final for the attempt.
    Refused { permanent: bool, message: String },
    /// The whole message was sent and then the connection broke or went silent: the relay may
    /// have accepted it.
    Ambiguous(String),
}

/// Classify a failed step. The policy (see also the module docs of `email`):
///
/// * before RCPT (connect, TLS, greeting, EHLO, AUTH, MAIL) and at DATA: anything → next relay;
/// * at RCPT: 421 and relay-policy refusals (530/534/535/538/454, x.7.x with "relay access
///   denied", "authentication required", "client host rejected") → next relay; other 4xx →
///   transient for this recipient
///   (552 counts as 452, RFC 5321 §4.5.3.1.10); other 5xx → permanent for this recipient;
/// * after the final `.`: a 4xx reply is a definite "not accepted" → next relay; a 5xx is a
///   refusal of this message (size, content) → permanent, unless it is a relay-policy code;
///   no reply at all (timeout, connection lost) → ambiguous.
pub fn classify(stage: Stage, err: &StepError) -> Failure {
    let what = format!("{}: {err}", stage.label());
    if is_configuration(stage, err) {
        return Failure::Unusable(what);
    }
    let Some(code) = err.code() else {
        return match stage {
            Stage::EndOfData => Failure::Ambiguous(what),
            _ => Failure::Relay(what),
        };
    };
    let text = err.to_string();
    match stage {
        Stage::Connect | Stage::Auth | Stage::Mail | Stage::Data => Failure::Relay(what),
        Stage::Rcpt => {
            if code == 421 || is_relay_policy(code, &text) {
                Failure::Relay(what)
            } else {
                Failure::Refused {
                    permanent: code >= 500 && code != 552,
                    message: format!("recipient refused: {err}"),
                }
            }
        }
        Stage::EndOfData => {
            if code < 500 || is_relay_policy(code, &text) {
                Failure::Relay(what)
            } else {
                Failure::Refused {
                    permanent: true,
                    message: format!("message refused: {err}"),
                }
            }
        }
    }
}

/// Whether the failure says this relay will refuse every message as configured, rather than
/// being down or busy for now:
///
/// * the certificate does not verify; the server lacks STARTTLS or AUTH that the settings need;
/// * a 5xx while connecting (greeting, EHLO) or at AUTH (535 credentials invalid, 534, 538);
/// * a 5xx to MAIL FROM (530 authentication or STARTTLS required, sender refused), except 552
///   (this message's size);
/// * a 5xx relay-policy refusal at RCPT or after the data (554 5.7.1 relay access denied).
///
/// 4xx replies (421, 454 temporary AUTH failure), timeouts and lost connections are transient.
fn is_configuration(stage: Stage, err: &StepError) -> bool {
    let e = match err {
        StepError::Unsupported(_) => return true,
        StepError::Timeout(_) | StepError::Local(_) => return false,
        StepError::Smtp(e) => e,
    };
    let Some(code) = err.code() else {
        // lettre's own refusals: no common AUTH mechanism, a certificate that does not verify.
        return (e.is_client() && stage == Stage::Auth) || describe(e).to_ascii_lowercase().contains("certificate");
    };
    if code < 500 {
        return false;
    }
    match stage {
        Stage::Connect | Stage::Auth => true,
        Stage::Mail => code != 552,
        Stage::Rcpt | Stage::EndOfData => is_relay_policy(code, &err.to_string()),
        Stage::Data => false,
    }
}

/// A refusal about us (not authenticated, not allowed to relay, our host refused) rather than
/// about the recipient or the message: another relay, with other credentials, may accept.
fn is_relay_policy(code: u16, text: &str) -> bool {
    if matches!(code, 530 | 534 | 535 | 538 | 454) {
        return true;
    }
    let t = text.to_ascii_lowercase();
    enhanced_code(text).is_some_and(|e| e.starts_with("5.7.") || e.starts_with("4.7."))
        && (t.contains("relay") || t.contains("authenticat") || t.contains("client host"))
}

/// The RFC 3463 enhanced status code ("5.1.1") at the start of a reply text, if any.
pub fn enhanced_code(text: &str) -> Option<&str> {
    let first = text
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))?;
    let mut parts = first.split('.');
    let ok = parts.next().is_some_and(|c| matches!(c, "2" | "4" | "5"))
        && parts
            .next()
            .is_some_and(|s| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .next()
            .is_some_and(|s| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()))
        && parts.next().is_none();
    ok.then_some(first)
}

/// "550 5.1.1 <x>: user unknown" for a reply, lettre's own text (with its cause) otherwise.
pub fn describe(err: &SmtpError) -> String {
    match err.status() {
        Some(code) => {
            let text = err.source().map(|s| s.to_string()).unwrap_or_default();
            format!("{} {}", u16::from(code), text.trim()).trim_end().to_string()
        }
        None => err.to_string(),
    }
}

/// The queue id in a final 250 reply ("250 2.0.0 Ok: queued as 4A3B2C"), as Postfix, Exim
/// ("id=...") and most relays report it.
pub fn queue_id(reply: &Response) -> Option<String> {
    let text = reply.message().collect::<Vec<_>>().join(" ");
    let lower = text.to_ascii_lowercase();
    let start = lower.find("queued as ").map(|i| i + "queued as ".len())?;
    let id: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "-_.@<>".contains(*c))
        .collect();
    let id = id.trim_end_matches('.').to_string();
    (!id.is_empty()).then_some(id)
}

/// What a timeout means at a stage.
pub fn timed_out(stage: Stage, after: Duration) -> Failure {
    classify(stage, &StepError::Timeout(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes() {
        assert_eq!(enhanced_code("5.1.1 <a@b>: user unknown"), Some("5.1.1"));
        assert_eq!(enhanced_code("Ok 4.7.0 try later"), Some("4.7.0"));
        assert_eq!(enhanced_code("Relay access denied"), None);
        assert_eq!(enhanced_code("version 1.2.3.4"), None);
    }

    #[test]
    fn relay_policy_refusals_are_about_us() {
        assert!(is_relay_policy(535, "5.7.8 Authentication credentials invalid"));
        assert!(is_relay_policy(554, "5.7.1 <x@y>: Relay access denied"));
        assert!(is_relay_policy(550, "5.7.1 Unable to relay"));
        assert!(is_relay_policy(530, "5.7.0 Authentication required"));
        assert!(!is_relay_policy(
            550,
            "5.1.1 <x@y>: Recipient address rejected: User unknown"
        ));
        assert!(!is_relay_policy(550, "5.7.1 recipient blocked by policy"));
        assert!(is_relay_policy(
            450,
            "4.7.1 Client host rejected: cannot find your hostname"
        ));
        assert!(!is_relay_policy(451, "4.3.0 Temporary local problem"));
    }

    #[test]
    fn timeouts_before_and_after_the_final_dot() {
        assert!(matches!(
            timed_out(Stage::Mail, Duration::from_secs(1)),
            Failure::Relay(_)
        ));
        assert!(matches!(
            timed_out(Stage::Data, Duration::from_secs(1)),
            Failure::Relay(_)
        ));
        assert!(matches!(
            timed_out(Stage::EndOfData, Duration::from_secs(1)),
            Failure::Ambiguous(_)
        ));
    }

    #[test]
    fn queue_ids() {
        use lettre::transport::smtp::response::{Category, Code, Detail, Severity};
        let code = Code::new(Severity::PositiveCompletion, Category::MailSystem, Detail::Zero);
        let r = Response::new(code, vec!["2.0.0 Ok: queued as 4A3B2C".into()]);
        assert_eq!(queue_id(&r).as_deref(), Some("4A3B2C"));
        let r = Response::new(code, vec!["OK".into()]);
        assert_eq!(queue_id(&r), None);
    }
}
