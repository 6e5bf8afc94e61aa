//! Twilio Programmable Voice: `POST /2010-04-01/Accounts/{sid}/Calls.json` (form `To`, `From`,
//! `Twiml`; Basic auth `AccountSid:AuthToken`) answers `201` with the call resource and its
//! `sid`, or the error `{"code","message","more_info","status"}`. `GET .../Calls/{sid}.json`
//! gives the call's `status`; `GET /2010-04-01/Accounts/{sid}.json` the account's.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;

use super::{Api, Parts, Speech, base_or, place};
use crate::channel::http::{self, Answer};
use crate::channel::sms::{TwilioAccount, twilio_error_text};
use crate::channel::{DeliveryError, Probe, Receipt, Stat};

const PROVIDER: &str = "twilio";
/// Twilio refuses a longer inline `Twiml` (error 32018).
pub const MAX_TWIML_CHARS: usize = 4000;

/// Calls through the account, from `from`, spoken as `speech` says.
pub struct Twilio {
    account: TwilioAccount,
    from: String,
    speech: Speech,
}

/// `<Response><Say ...>text</Say></Response>`, every value XML-escaped; `loop` is how often the
/// text is spoken.
pub fn twiml(text: &str, speech: &Speech, language: &str) -> String {
    use crate::escape::xml;
    let voice = speech
        .voice
        .as_deref()
        .map(|v| format!(" voice=\"{}\"", xml(v)))
        .unwrap_or_default();
    format!(
        "<Response><Say language=\"{}\"{voice} loop=\"{}\">{}</Say></Response>",
        xml(language),
        speech.repeat,
        xml(text)
    )
}

impl Twilio {
    pub fn new(parts: Parts<'_>) -> Result<Twilio, String> {
        let cfg = parts.cfg;
        let base = base_or(cfg, "https://api.twilio.com");
        let (sid, token_env) = (cfg.account_sid.as_deref(), cfg.auth_token_env.as_deref());
        let account = TwilioAccount::new(parts.at, sid, token_env, base, parts.client)?;
        Ok(Twilio {
            account,
            from: parts.from,
            speech: parts.speech,
        })
    }

    /// Twilio's error envelope as a message, "twilio 21211: ... (more_info)", and its code.
    fn error_text(answer: &Answer) -> (Option<u64>, String) {
        let v: Value = answer.json().unwrap_or_default();
        let mut what = format!("{PROVIDER}{}", twilio_error_text(answer));
        if let Some(more) = v["more_info"].as_str() {
            what.push_str(&format!(" ({})", http::excerpt(more, 100)));
        }
        (v["code"].as_u64(), what)
    }

    fn classify(answer: &Answer) -> DeliveryError {
        let (code, what) = Self::error_text(answer);
        let Some(code) = code else {
            return http::classify_status(
                PROVIDER,
                answer,
                &format!("unexpected answer: {}, {}", answer.content_type(), answer.excerpt()),
            );
        };
        let route = Some(PROVIDER.to_string());
        let status = answer.status;
        match code {
            20429 => DeliveryError::Transient {
                message: what,
                retry_after: answer.retry_after(),
                route,
            },
            // Authentication, the account, or a caller id the account may not use: no call of
            // this channel can succeed.
            20003 | 20005 | 21210 | 21212 | 21213 => DeliveryError::Halt {
                message: format!("{what}; check account_sid, the auth token and `from`"),
            },
            _ if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() => DeliveryError::Transient {
                message: format!("{what} (HTTP {})", status.as_u16()),
                retry_after: answer.retry_after(),
                route,
            },
            // 21211 invalid To, 21214 To cannot be reached, 21215 no permission for the region,
            // 21216 blocked, 13223/13224 invalid number, and every other 4xx.
            _ => DeliveryError::Permanent { message: what, route },
        }
    }
}

#[async_trait]
impl Api for Twilio {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn stats(&self, text: &str, language: &str) -> Result<Vec<Stat>, String> {
        let n = twiml(text, &self.speech, language).chars().count();
        if n > MAX_TWIML_CHARS {
            return Err(format!(
                "the call's TwiML is {n} characters once XML-escaped, more than the {MAX_TWIML_CHARS} Twilio accepts: \
                 shorten the summary or avoid & < > \" ' in it"
            ));
        }
        Ok(vec![Stat::limited("TwiML characters", n, MAX_TWIML_CHARS)])
    }

    async fn call(&self, to: &str, text: &str, language: &str) -> Result<Receipt, DeliveryError> {
        let twiml = twiml(text, &self.speech, language);
        let form = [("To", to), ("From", self.from.as_str()), ("Twiml", twiml.as_str())];
        let request = self.account.post("/Calls.json").form(&form);
        // The documented success answer is the call resource, with its `sid` (CA...).
        place(PROVIDER, request, "sid", Self::classify).await
    }

    async fn check(&self) -> Probe {
        let mut probe = self.account.probe().await;
        probe.detail.push_str(&format!("; calls from {}", self.from));
        probe
    }

    async fn status(&self, provider_id: &str) -> Result<String, String> {
        let v = self.account.resource("call", "Calls", provider_id).await?;
        v["status"]
            .as_str()
            .map(|s| http::excerpt(s, 40))
            .ok_or_else(|| format!("{PROVIDER}: the call resource has no status"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn speech(voice: Option<&str>, repeat: u32) -> Speech {
        Speech {
            voice: voice.map(str::to_string),
            repeat,
        }
    }

    /// The TwiML parses as XML, with the attributes given and the text as it was.
    #[test]
    fn twiml_is_escaped_xml_that_reads_back_as_the_text() {
        let text = "Termine <heute> & \"morgen\" fallen 'nicht' aus";
        let xml = twiml(text, &speech(Some("Polly.Marlene"), 2), "de-DE");
        let mut reader = quick_xml::Reader::from_str(&xml);
        let mut names = Vec::new();
        let mut said = String::new();
        let mut attrs = Vec::new();
        loop {
            match reader.read_event().unwrap() {
                quick_xml::events::Event::Start(e) => {
                    names.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                    for a in e.attributes() {
                        let a = a.unwrap();
                        attrs.push((
                            String::from_utf8(a.key.as_ref().to_vec()).unwrap(),
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .unwrap()
                                .into_owned(),
                        ));
                    }
                }
                quick_xml::events::Event::Text(t) => said.push_str(&t.decode().unwrap()),
                quick_xml::events::Event::GeneralRef(r) => {
                    let name = r.decode().unwrap();
                    said.push_str(&quick_xml::escape::unescape(&format!("&{name};")).unwrap());
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(names, ["Response", "Say"]);
        assert_eq!(said, text);
        assert_eq!(
            attrs,
            [
                ("language".to_string(), "de-DE".to_string()),
                ("voice".into(), "Polly.Marlene".into()),
                ("loop".into(), "2".into())
            ]
        );
        // Without a voice the attribute is left out (Twilio's default voice).
        assert_eq!(
            twiml("Hallo", &speech(None, 1), "de-DE"),
            "<Response><Say language=\"de-DE\" loop=\"1\">Hallo</Say></Response>"
        );
    }
}
