//! Body shapes of the chat tools' incoming webhooks. The message text comes from a text template
//! (`webhook.chat.hbs` by default); the title and link are placed the way each API shows them.
//! Bodies are built as JSON values, so they are valid JSON whatever the announcement contains.

use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    Slack,
    Discord,
    Teams,
    Mattermost,
    #[serde(alias = "googlechat")]
    GoogleChat,
}

impl crate::settings::Keyed for Preset {
    const KEY: &'static str = "preset";
}

/// What a preset needs: the announcement's title, the rendered text, the link.
pub struct ChatMessage<'a> {
    pub title: &'a str,
    pub text: &'a str,
    pub link: Option<&'a str>,
}

/// Discord: "content: the message contents (up to 2000 characters)".
pub const DISCORD_MAX: usize = 2000;
/// Slack: a header block's text is at most 150 characters, a section's at most 3000.
const SLACK_HEADER_MAX: usize = 150;
const SLACK_SECTION_MAX: usize = 3000;
/// Google Chat: a message's text is at most 4096 characters.
pub const GOOGLE_CHAT_MAX: usize = 4096;
/// Mattermost: a post's message is at most 16383 characters (server default).
pub const MATTERMOST_MAX: usize = 16383;

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Slack => "slack",
            Preset::Discord => "discord",
            Preset::Teams => "teams",
            Preset::Mattermost => "mattermost",
            Preset::GoogleChat => "google-chat",
        }
    }

    /// The JSON body, or why this message does not fit the API's limits.
    pub fn body(self, m: &ChatMessage<'_>) -> Result<Value, String> {
        match self {
            Preset::Slack => Ok(slack(m)),
            Preset::Discord => discord(m),
            Preset::Teams => Ok(teams(m)),
            Preset::Mattermost => mattermost(m),
            Preset::GoogleChat => google_chat(m),
        }
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn cut(s: &str, max: usize) -> String {
    if chars(s) <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

fn too_long(what: &str, n: usize, max: usize) -> String {
    format!("{what} is {n} characters, more than the {max} the API accepts; shorten the announcement or the template")
}

/// The title line as the tool marks it up, the text, the link on a line of its own; `Err` when
/// that is more than `max` characters.
fn titled(m: &ChatMessage<'_>, title: &str, what: &str, max: usize) -> Result<String, String> {
    let mut text = format!("{title}\n{}", m.text);
    if let Some(link) = m.link {
        text.push_str(&format!("\n{link}"));
    }
    let n = chars(&text);
    if n > max {
        return Err(too_long(what, n, max));
    }
    Ok(text)
}

/// Slack incoming webhooks (docs.slack.dev, "Sending messages using incoming webhooks"): a JSON
/// body with `text` and optional Block Kit `blocks`; with blocks, `text` is the notification
/// fallback. Text is mrkdwn, in which `&`, `<` and `>` must be escaped as entities
/// ("Formatting text for app surfaces"). Blocks: a `header` (plain_text, max 150 chars) and a
/// `section` (mrkdwn, max 3000 chars).
fn slack(m: &ChatMessage<'_>) -> Value {
    let esc = crate::escape::slack_mrkdwn;
    let mut text = format!("*{}*\n{}", esc(m.title), esc(m.text));
    let mut section = esc(m.text);
    if let Some(link) = m.link {
        text.push_str(&format!("\n<{}>", esc(link)));
        section.push_str(&format!("\n<{}>", esc(link)));
    }
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(m.title, SLACK_HEADER_MAX), "emoji": true}
    })];
    if !section.trim().is_empty() {
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": cut(&section, SLACK_SECTION_MAX)}
        }));
    }
    json!({"text": text, "blocks": blocks})
}

/// Discord "Execute Webhook" (discord.com/developers/docs/resources/webhook#execute-webhook):
/// JSON with `content` (up to 2000 characters, Markdown). `allowed_mentions` with an empty
/// `parse` list keeps "@everyone" in an announcement from pinging anybody.
fn discord(m: &ChatMessage<'_>) -> Result<Value, String> {
    let content = titled(m, &format!("**{}**", m.title), "the Discord message", DISCORD_MAX)?;
    Ok(json!({"content": content, "allowed_mentions": {"parse": []}}))
}

/// Microsoft Teams, Workflows "When a Teams webhook request is received" (learn.microsoft.com,
/// "Create incoming webhooks with Workflows for Microsoft Teams" and "Send Adaptive Cards using an
/// incoming webhook"): `{"type":"message","attachments":[{"contentType":
/// "application/vnd.microsoft.card.adaptive","contentUrl":null,"content":<AdaptiveCard>}]}`.
/// Workflows accept Adaptive Cards only (the old MessageCard format of Office 365 connectors is
/// retired), so this is the one shape that works with both.
fn teams(m: &ChatMessage<'_>) -> Value {
    let mut body = vec![json!({
        "type": "TextBlock", "text": m.title, "weight": "Bolder", "size": "Medium", "wrap": true
    })];
    if !m.text.trim().is_empty() {
        body.push(json!({"type": "TextBlock", "text": m.text, "wrap": true}));
    }
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    });
    if let Some(link) = m.link {
        card["actions"] = json!([{"type": "Action.OpenUrl", "title": "Details", "url": link}]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }]
    })
}

/// Mattermost incoming webhooks (developers.mattermost.com/integrate/webhooks/incoming): JSON with
/// `text` in Markdown (Slack-compatible `attachments` are optional and not used).
fn mattermost(m: &ChatMessage<'_>) -> Result<Value, String> {
    let text = titled(
        m,
        &format!("#### {}", m.title),
        "the Mattermost message",
        MATTERMOST_MAX,
    )?;
    Ok(json!({"text": text}))
}

/// Google Chat incoming webhooks (developers.google.com/workspace/chat/quickstart/webhooks): a
/// Message with `text` (`*bold*`, URLs are linked; at most 4096 characters).
fn google_chat(m: &ChatMessage<'_>) -> Result<Value, String> {
    let text = titled(m, &format!("*{}*", m.title), "the Google Chat message", GOOGLE_CHAT_MAX)?;
    Ok(json!({"text": text}))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: ChatMessage<'static> = ChatMessage {
        title: "Website <down> & \"out\"",
        text: "Line 1\nLine 2 🎉",
        link: Some("https://status.example"),
    };

    #[test]
    fn slack_escapes_mrkdwn_and_has_fallback_text() {
        let b = Preset::Slack.body(&M).unwrap();
        assert_eq!(
            b["text"],
            "*Website &lt;down&gt; &amp; \"out\"*\nLine 1\nLine 2 🎉\n<https://status.example>"
        );
        assert_eq!(b["blocks"][0]["type"], "header");
        assert_eq!(b["blocks"][0]["text"]["text"], M.title);
        assert_eq!(b["blocks"][1]["text"]["type"], "mrkdwn");
    }

    #[test]
    fn discord_refuses_over_2000() {
        let long = "x".repeat(2100);
        let m = ChatMessage {
            title: "t",
            text: &long,
            link: None,
        };
        let e = Preset::Discord.body(&m).unwrap_err();
        assert!(e.contains("2000"), "{e}");
        let b = Preset::Discord.body(&M).unwrap();
        assert!(b["content"].as_str().unwrap().starts_with("**Website"));
        assert_eq!(b["allowed_mentions"]["parse"], json!([]));
    }

    #[test]
    fn teams_is_an_adaptive_card_message() {
        let b = Preset::Teams.body(&M).unwrap();
        assert_eq!(b["type"], "message");
        let a = &b["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        assert_eq!(a["content"]["actions"][0]["url"], "https://status.example");
    }

    fn parse(s: &str) -> Result<Preset, serde_json::Error> {
        serde_json::from_value(serde_json::Value::from(s))
    }

    #[test]
    fn names_round_trip() {
        for p in [
            Preset::Slack,
            Preset::Discord,
            Preset::Teams,
            Preset::Mattermost,
            Preset::GoogleChat,
        ] {
            assert_eq!(parse(p.name()).ok(), Some(p));
        }
        assert_eq!(parse("googlechat").ok(), Some(Preset::GoogleChat));
        let err = parse("irc").unwrap_err().to_string();
        assert!(err.contains("`slack`") && err.contains("`google-chat`"), "{err}");
    }
}
