//! Cloud API failures in the dispatcher's classes, by the error's `code` (Meta's advice), not
//! the HTTP status; what is not WhatsApp's own goes to the Graph classification.

use std::time::Duration;

use crate::channel::DeliveryError;
use crate::channel::graph::client::{self, GraphError, Hints};

pub(super) const MAYBE_SENT: &str = "WhatsApp may or may not have taken the message, so it is not sent again automatically \
                          (`announce resume RUN --resend-unknown` sends it again)";

/// What the person's number cannot take, by Cloud API code: final for that person, so a
/// `[reach]` order falls back to the next channel.
fn for_the_person(code: i64) -> Option<&'static str> {
    Some(match code {
        131026 => "WhatsApp cannot deliver to this number (not on WhatsApp, terms not accepted, or an old app)",
        131047 => "more than 24 hours since the person last wrote, and WhatsApp refused the message",
        131051 => "WhatsApp does not support this message type for the number",
        132000 => "the number of parameters does not match the approved template's",
        132001 => "the template does not exist in this language (or is not approved yet)",
        132005 => "the template's text with the parameters is too long",
        132007 => "the template's text with the parameters breaks WhatsApp's format policy",
        132012 => "a parameter does not have the format the template expects",
        132015 => "the template is paused for low quality",
        // The rest of 132000-132015: the contract makes the whole range final for the person.
        132002..=132004 | 132006 | 132008..=132011 | 132013 | 132014 => "WhatsApp refused the template message",
        // Meta chose not to deliver (per-user marketing limit) or the person opted out of
        // marketing: retrying soon cannot help.
        131049 => "Meta did not deliver this message (per-person limit of business messages)",
        131050 => "the person stopped marketing messages from this business",
        131021 => "the number is the business's own number",
        130472 => "the number is part of a Meta experiment and was not sent the message",
        131008 | 131009 | 100 | 132018 | 135000 => "WhatsApp refused a parameter of the request",
        _ => return None,
    })
}

/// What no message of the channel can get past (account, payment, permissions): the channel
/// stops, the rest stay pending.
fn for_the_account(code: i64) -> Option<&'static str> {
    Some(match code {
        3 | 10 | 200..=299 => {
            "the token lacks a permission (whatsapp_business_messaging); grant it to the app's system user and \
             create a new token"
        }
        131005 => "access denied for this phone number; check the token's WhatsApp Business Account",
        131031 => "the WhatsApp Business Account is locked",
        131042 => "the WhatsApp Business Account has a payment problem (no valid payment method)",
        133010 => "the business phone number is not registered with the Cloud API",
        368 | 130497 => "the WhatsApp Business Account is restricted from messaging",
        132016 => "the template is disabled; choose another approved template",
        _ => return None,
    })
}

/// A Cloud API failure in the dispatcher's classes. Codes decide, not HTTP statuses (Meta's
/// advice); what is not WhatsApp's own goes to the Graph classification.
pub fn classify(e: &GraphError, h: &Hints, attempt: u32, route: Option<String>) -> DeliveryError {
    let GraphError::Api(a) = e else {
        return match client::classify(e, h, attempt, route.clone()) {
            // Graph's wording is about posts on a Page.
            DeliveryError::Ambiguous { .. } => DeliveryError::Ambiguous {
                message: format!("{e}; {MAYBE_SENT}"),
                route,
            },
            other => other,
        };
    };
    let desc = a.describe();
    let wait = a.usage.wait(h.throttle_wait).or(a.retry_after);
    if let Some(why) = for_the_person(a.code) {
        return DeliveryError::Permanent {
            message: format!("{why} ({desc})"),
            route,
        };
    }
    if let Some(why) = for_the_account(a.code) {
        return DeliveryError::Halt {
            message: format!("{why} ({desc})"),
        };
    }
    let transient = |what: &str, wait: Option<Duration>| {
        let how = wait.map_or_else(String::new, |w| {
            format!("; waiting {}s before retrying", w.as_secs_f64().ceil() as u64)
        });
        DeliveryError::Transient {
            message: format!("{what} ({desc}){how}"),
            retry_after: wait,
            route: route.clone(),
        }
    };
    match a.code {
        0 | 190 => DeliveryError::Halt {
            message: format!(
                "{} ({desc}); nothing can be sent with this token. Create a new one — a system user's token in \
                 Meta Business Suite (Business settings → System users → Generate new token, with \
                 whatsapp_business_messaging; it does not expire), or the temporary one of the app's WhatsApp → API \
                 Setup page (24 hours) — and put it in {}",
                client::token_problem(a.subcode),
                h.token_env
            ),
        },
        130429 => transient("WhatsApp's throughput limit for the business number is reached", wait),
        131056 => transient("too many messages to this number in a short time", wait),
        4 | 80007 => transient("WhatsApp rate limit reached", wait),
        // Quality-based: blocked or reported messages lower it; it recovers over time.
        131048 => transient(
            "WhatsApp's spam rate limit for the business number is reached (check its quality rating)",
            Some(wait.unwrap_or(h.throttle_wait)),
        ),
        131000 | 131016 | 133004 | 1 | 2 => transient("WhatsApp is temporarily unavailable", wait),
        _ => client::classify(e, h, attempt, route),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::graph::client::{ApiError, Effect};

    fn hints() -> Hints {
        Hints {
            token_env: "WHATSAPP_TOKEN".into(),
            token_kind: "WhatsApp",
            throttle_wait: Duration::from_secs(60),
        }
    }

    fn api(code: i64) -> GraphError {
        GraphError::Api(Box::new(ApiError {
            http_status: 400,
            code,
            message: format!("(#{code}) x"),
            details: Some("the details".into()),
            ..ApiError::default()
        }))
    }

    #[test]
    fn codes_decide_the_class() {
        let h = hints();
        let c = |code| classify(&api(code), &h, 1, None);
        for code in [131026, 131047, 131051, 132000, 132001, 132015, 131049, 100] {
            assert!(matches!(c(code), DeliveryError::Permanent { .. }), "{code}");
        }
        for code in [130429, 131056, 4, 80007, 131000, 131048] {
            assert!(c(code).is_transient(), "{code}");
        }
        for code in [190, 10, 131031, 131042, 368, 132016] {
            assert!(matches!(c(code), DeliveryError::Halt { .. }), "{code}");
        }
        let m = c(190).to_string();
        assert!(
            m.contains("WHATSAPP_TOKEN") && m.contains("System users") && m.contains("(#190) x"),
            "{m}"
        );
        assert!(c(131026).to_string().contains("the details"));
    }

    #[test]
    fn rate_limits_wait_as_the_usage_headers_or_retry_after_say() {
        let h = hints();
        let mut e = api(130429);
        if let GraphError::Api(a) = &mut e {
            a.usage.regain_minutes = Some(2);
        }
        assert_eq!(classify(&e, &h, 1, None).retry_after(), Some(Duration::from_secs(120)));
        if let GraphError::Api(a) = &mut e {
            a.usage = Default::default();
            a.retry_after = Some(Duration::from_secs(7));
        }
        assert_eq!(classify(&e, &h, 1, None).retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(classify(&api(130429), &h, 1, None).retry_after(), None);
    }

    #[test]
    fn a_lost_answer_is_unknown_in_whatsapp_terms() {
        let e = GraphError::Transport {
            message: "no answer in time".into(),
            connected: true,
            effect: Effect::Publish,
        };
        let d = classify(&e, &hints(), 1, None);
        assert!(matches!(d, DeliveryError::Ambiguous { .. }));
        assert!(d.to_string().contains("WhatsApp may or may not"), "{d}");
    }
}
