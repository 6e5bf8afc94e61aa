//! An Instagram image post through the content-publishing flow (Facebook-login variant on
//! graph.facebook.com, or Instagram-login on graph.instagram.com — same paths):
//!
//! 1. `GET /{ig-user-id}/content_publishing_limit?fields=config,quota_usage` — refuse politely
//!    when the rolling-24-hour quota is used up (nothing is created then).
//! 2. The image must be a public URL. An https `image` is used as is; a local file is uploaded
//!    to the Page of a facebook channel unpublished (`published=false`) and its largest CDN
//!    rendition (`GET /{photo-id}?fields=images`) becomes the URL.
//! 3. `POST /{ig-user-id}/media` (`image_url`, `caption`, optional `alt_text`) → container id.
//! 4. `GET /{container}?fields=status_code,status` until `FINISHED`, backing off from
//!    `poll_interval` (doubling, at most once a minute) for at most `poll_timeout`; `ERROR`
//!    (with the reason in `status`) and `EXPIRED` end the attempt.
//! 5. `POST /{ig-user-id}/media_publish` (`creation_id`) → the media id (`provider_id`).
//!
//! Steps 1–4 publish nothing, so their failures are retryable; within one process a retry
//! reuses the hosted image and a still-valid container. Only step 5 publishes: a connection lost
//! after it was sent is ambiguous and the delivery becomes `unknown`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::InstagramConfig;
use super::client::{Effect, GraphClient, GraphError, classify, unexpected, valid_id};
use super::facebook::{PageHost, prefix};
use super::{Image, image_of};
use crate::channel::{Channel, Delivery, DeliveryError, Media, Meta, Probe, Reach, Receipt, Rendered, Stat};
use crate::media;
use crate::render::{Context, Templates};
use crate::settings::Common;

pub const MAX_CAPTION: usize = 2200;
pub const MAX_HASHTAGS: usize = 30;
pub const MAX_MENTIONS: usize = 20;
const MAX_POLL_GAP: Duration = Duration::from_secs(60);

pub struct Instagram {
    meta: Meta,
    ig_user_id: String,
    template: String,
    client: GraphClient,
    /// Where local images go; `Err` says why the configured host cannot be used.
    host: Option<Result<PageHost, String>>,
    poll_interval: Duration,
    poll_timeout: Duration,
    /// Per delivery: the hosted image URL and the container, reused by retries in this process.
    progress: Mutex<HashMap<i64, Progress>>,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    image_url: Option<String>,
    container: Option<String>,
}

impl Instagram {
    pub fn new(
        name: &str,
        common: &Common,
        cfg: &InstagramConfig,
        host: Option<Result<PageHost, String>>,
    ) -> Result<Instagram, String> {
        if !valid_id(&cfg.ig_user_id) {
            return Err(format!(
                "[channels.{name}] ig_user_id {:?} is not a Graph id (the Instagram professional account's id)",
                cfg.ig_user_id
            ));
        }
        let client = cfg.account.client(name, "Instagram (Page or Instagram user)")?;
        let poll_interval = cfg.poll_interval.map_or(Duration::from_secs(3), |d| d.0);
        let poll_timeout = cfg.poll_timeout.map_or(Duration::from_secs(300), |d| d.0);
        if poll_interval.is_zero() {
            return Err(format!("[channels.{name}] poll_interval must be longer than 0"));
        }
        Ok(Instagram {
            meta: Meta::new::<InstagramConfig>(name, Reach::Broadcast(cfg.ig_user_id.clone())).concurrency(1),
            ig_user_id: cfg.ig_user_id.clone(),
            template: common.template.clone().unwrap_or_else(|| "instagram.hbs".into()),
            client,
            host,
            poll_interval,
            poll_timeout,
            progress: Mutex::new(HashMap::new()),
        })
    }

    fn progress(&self, id: i64) -> Progress {
        self.progress
            .lock()
            .map(|m| m.get(&id).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    fn remember(&self, id: i64, f: impl FnOnce(&mut Progress)) {
        if let Ok(mut m) = self.progress.lock() {
            f(m.entry(id).or_default());
        }
    }

    fn forget(&self, id: i64) {
        if let Ok(mut m) = self.progress.lock() {
            m.remove(&id);
        }
    }

    fn err(&self, e: &GraphError, path: &str, attempt: u32) -> DeliveryError {
        classify(e, &self.client.hints, attempt, Some(self.client.route(path)))
    }

    /// Step 1: refuse when the quota is used up. A malformed answer is not fatal: the limit is
    /// enforced at `media_publish` anyway (error 9/2207042).
    async fn check_quota(&self, attempt: u32) -> Result<(), DeliveryError> {
        let path = format!("{}/content_publishing_limit", self.ig_user_id);
        let v = self
            .client
            .get(&path, "config,quota_usage")
            .await
            .map_err(|e| self.err(&e, &path, attempt))?;
        let entry = &v["data"][0];
        let (Some(used), Some(total)) = (entry["quota_usage"].as_u64(), entry["config"]["quota_total"].as_u64()) else {
            tracing::warn!(channel = %self.name(), "{}", unexpected(&v, Effect::Read));
            return Ok(());
        };
        if used >= total {
            let hours = entry["config"]["quota_duration"].as_u64().unwrap_or(86_400) / 3600;
            return Err(DeliveryError::Permanent {
                message: format!(
                    "Instagram's publishing limit is used up ({used} of {total} posts in the last {hours} hours), so \
                     nothing was posted; try again later with `announce resume RUN --retry-failed`"
                ),
                route: Some(self.client.route(&path)),
            });
        }
        Ok(())
    }

    /// Step 2.
    async fn image_url(&self, d: &Delivery, m: &Rendered) -> Result<String, DeliveryError> {
        match &m.media.image {
            None => Err(DeliveryError::permanent(
                "Instagram posts need an image and the announcement has none",
            )),
            Some(Image::Url(u)) => Ok(u.clone()),
            Some(Image::File(path)) => {
                if let Some(u) = self.progress(d.id).image_url {
                    return Ok(u);
                }
                let host = match &self.host {
                    Some(Ok(h)) => h,
                    Some(Err(e)) => return Err(DeliveryError::permanent(e.clone())),
                    None => return Err(DeliveryError::permanent(needs_public_url(&path.display().to_string()))),
                };
                let url = host.host(path, d.attempt).await?;
                tracing::info!(channel = %self.name(), "local image hosted as an unpublished photo on facebook channel `{}`", host.channel);
                self.remember(d.id, |p| p.image_url = Some(url.clone()));
                Ok(url)
            }
        }
    }

    /// Step 4: wait until the container is FINISHED.
    async fn wait_finished(&self, d: &Delivery, container: &str) -> Result<(), DeliveryError> {
        let start = Instant::now();
        let mut gap = self.poll_interval;
        loop {
            let v = self
                .client
                .get(container, "status_code,status")
                .await
                .map_err(|e| self.err(&e, container, d.attempt))?;
            let code = v["status_code"].as_str().unwrap_or("");
            let status = v["status"].as_str().unwrap_or("").trim();
            let why = if status.is_empty() {
                String::new()
            } else {
                format!(": {status}")
            };
            let route = Some(self.client.route(container));
            match code {
                "FINISHED" => return Ok(()),
                "PUBLISHED" => {
                    return Err(DeliveryError::Ambiguous {
                        message: format!("media container {container} is already published (by an earlier attempt)"),
                        route,
                    });
                }
                "ERROR" => {
                    self.forget(d.id);
                    let retryable = ["2207001", "2207003", "2207032"].iter().any(|s| status.contains(s));
                    let message = format!("Instagram could not process the image (container {container} ERROR{why})");
                    return Err(if retryable {
                        DeliveryError::Transient {
                            message,
                            retry_after: None,
                            route,
                        }
                    } else {
                        DeliveryError::Permanent { message, route }
                    });
                }
                "EXPIRED" => {
                    self.forget(d.id);
                    return Err(DeliveryError::Permanent {
                        message: format!("media container {container} EXPIRED before it was published{why}"),
                        route,
                    });
                }
                _ => {}
            }
            if start.elapsed() + gap > self.poll_timeout {
                return Err(DeliveryError::Permanent {
                    message: format!(
                        "Instagram did not finish processing the image within {:?} (container {container} is {}{why}); \
                         `announce resume RUN --retry-failed` tries again",
                        self.poll_timeout,
                        if code.is_empty() { "in an unknown state" } else { code }
                    ),
                    route,
                });
            }
            tokio::time::sleep(gap).await;
            gap = (gap * 2).min(MAX_POLL_GAP);
        }
    }
}

/// The validation message for a local image without a host.
fn needs_public_url(path: &str) -> String {
    format!(
        "Instagram needs a public https URL for the image, but `image` is the local file {path}; give an https \
         URL, or configure an enabled facebook channel to host local images (see `image_host`)"
    )
}

/// `#tag` and `@name` counts as Instagram sees them: a marker at the start of a word, followed by
/// a letter, digit or `_` (so `a@b.de` and `#1`-less `#` are not counted).
pub fn count_marked(text: &str, marker: char) -> usize {
    let mut count = 0;
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let at_word_start = prev.is_none_or(|p| !(p.is_alphanumeric() || p == '_' || p == marker));
        if c == marker && at_word_start && chars.peek().is_some_and(|n| n.is_alphanumeric() || *n == '_') {
            count += 1;
        }
        prev = Some(c);
    }
    count
}

#[async_trait]
impl Channel for Instagram {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn skip_broadcast(&self, ctx: &Context) -> Option<String> {
        let has_image = ctx.data()["image"].as_str().is_some_and(|s| !s.trim().is_empty());
        (!has_image).then(|| {
            "Instagram posts need an image and the announcement has none (set `image` in the front matter)".to_string()
        })
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let caption = templates.render_ctx(&self.template, ctx)?.trim().to_string();
        let chars = caption.chars().count();
        let hashtags = count_marked(&caption, '#');
        let mentions = count_marked(&caption, '@');
        let mut stats = vec![
            Stat::limited("caption characters", chars, MAX_CAPTION),
            Stat::limited("hashtags", hashtags, MAX_HASHTAGS),
            Stat::limited("mentions", mentions, MAX_MENTIONS),
        ];
        let mut over = Vec::new();
        if chars > MAX_CAPTION {
            over.push(format!("{chars} characters (max {MAX_CAPTION})"));
        }
        if hashtags > MAX_HASHTAGS {
            over.push(format!("{hashtags} hashtags (max {MAX_HASHTAGS})"));
        }
        if mentions > MAX_MENTIONS {
            over.push(format!("{mentions} @mentions (max {MAX_MENTIONS})"));
        }
        if !over.is_empty() {
            return Err(format!(
                "the Instagram caption has {}; shorten {}",
                over.join(", "),
                self.template
            ));
        }
        // A local file is uploaded to the Facebook Page first: both platforms' rules apply.
        let image = image_of(ctx, &[&media::INSTAGRAM_IMAGE, &media::FACEBOOK_PHOTO])?;
        match &image {
            Some(Image::Url(_)) => {}
            Some(Image::File(p)) => {
                let shown = p.display().to_string();
                match &self.host {
                    None => return Err(needs_public_url(&shown)),
                    Some(Err(e)) => return Err(format!("{}; {e}", needs_public_url(&shown))),
                    Some(Ok(h)) => {
                        stats.push(Stat::new(
                            "image hosting",
                            format!("uploaded unpublished to the Page of facebook channel `{}`", h.channel),
                        ));
                    }
                }
            }
            // Planning skips Instagram without an image (skip_broadcast); preview may still ask.
            None => {}
        }
        let alt = ctx.data()["vars"]["image_alt"]
            .as_str()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        let media = Media { image, link: None, alt };
        Ok(Rendered {
            media,
            ..Rendered::plain(caption, stats)
        })
    }

    async fn deliver(&self, d: &Delivery, m: &Rendered) -> Result<Receipt, DeliveryError> {
        // Graph error texts can quote the request: no secret reaches the journal or a report.
        let result: Result<Receipt, DeliveryError> = async {
            self.check_quota(d.attempt).await?;
            let image_url = self.image_url(d, m).await?;

            let media = format!("{}/media", self.ig_user_id);
            let container = match self.progress(d.id).container {
                Some(c) => c,
                None => {
                    let mut params = vec![("image_url", image_url.as_str()), ("caption", m.text.as_str())];
                    if let Some(alt) = m.media.alt.as_deref() {
                        params.push(("alt_text", alt));
                    }
                    let v = self
                        .client
                        .post_form(&media, &params, Effect::Private)
                        .await
                        .map_err(|e| self.err(&e, &media, d.attempt))?;
                    let id = v["id"]
                        .as_str()
                        .filter(|id| valid_id(id))
                        .ok_or_else(|| self.err(&unexpected(&v, Effect::Private), &media, d.attempt))?
                        .to_string();
                    tracing::info!(channel = %self.name(), "media container {id} created");
                    self.remember(d.id, |p| p.container = Some(id.clone()));
                    id
                }
            };

            let publish = format!("{}/media_publish", self.ig_user_id);
            let started = Instant::now();
            loop {
                self.wait_finished(d, &container).await?;
                let result = self
                    .client
                    .post_form(&publish, &[("creation_id", container.as_str())], Effect::Publish)
                    .await;
                match result {
                    Ok(v) => {
                        self.forget(d.id);
                        let Some(id) = v["id"].as_str().filter(|id| valid_id(id)) else {
                            return Err(self.err(&unexpected(&v, Effect::Publish), &publish, d.attempt));
                        };
                        tracing::info!(channel = %self.name(), "published Instagram media {id}");
                        return Ok(Receipt {
                            provider_id: Some(id.to_string()),
                            route: Some(self.client.route(&publish)),
                        });
                    }
                    // 9007/2207027: not ready after all; keep polling within the same bound.
                    Err(GraphError::Api(a)) if a.subcode == Some(2207027) && started.elapsed() < self.poll_timeout => {
                        tokio::time::sleep(self.poll_interval).await;
                    }
                    Err(e) => {
                        if matches!(&e, GraphError::Api(a) if a.subcode == Some(2207020)) {
                            self.forget(d.id); // expired: the next attempt creates a new container
                        }
                        return Err(prefix(self.err(&e, &publish, d.attempt), "publishing"));
                    }
                }
            }
        }
        .await;
        result.map_err(DeliveryError::redacted)
    }

    /// `GET /{ig-user-id}?fields=id,username` and the publishing quota; nothing is posted.
    async fn check(&self) -> Vec<Probe> {
        let mut probes = Vec::new();
        let (ok, detail) = match self.client.identify(&self.ig_user_id, "username").await {
            Ok((username, id)) => (
                true,
                format!("account @{username} ({id}) via {}", self.client.route("")),
            ),
            Err(e) => (false, e),
        };
        probes.push(Probe {
            subject: format!("account {}", self.ig_user_id),
            ok,
            detail,
        });
        if ok {
            let (ok, detail) = match self.check_quota(1).await {
                Ok(()) => (true, "posts can be published now".to_string()),
                Err(e) => (false, crate::secrets::redact(&e.to_string()).into_owned()),
            };
            probes.push(Probe {
                subject: "publishing limit".into(),
                ok,
                detail,
            });
        }
        probes.push(match &self.host {
            Some(Ok(h)) => Probe {
                subject: "local images".into(),
                ok: true,
                detail: format!("hosted on the Page of facebook channel `{}`", h.channel),
            },
            Some(Err(e)) => Probe {
                subject: "local images".into(),
                ok: false,
                detail: e.clone(),
            },
            None => Probe {
                subject: "local images".into(),
                ok: true,
                detail: "no facebook channel to host them: `image` must be an https URL".into(),
            },
        });
        probes
    }

    /// Polling may take `poll_timeout`; add room for the calls around it.
    fn attempt_timeout(&self) -> Option<Duration> {
        Some(self.poll_timeout + Duration::from_secs(300))
    }

    fn timeout_error(&self, after: Duration) -> DeliveryError {
        DeliveryError::Ambiguous {
            message: format!(
                "the attempt was stopped after {after:?} (the channel's `timeout`), possibly while publishing; \
                 it is not sent again automatically (check the account, then `announce resume RUN \
                 --resend-unknown` if the post is missing)"
            ),
            route: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashtags_and_mentions_are_counted_as_instagram_does() {
        assert_eq!(count_marked("#a #b c#d #1 # #_x ##e", '#'), 4);
        assert_eq!(count_marked("Fragen an @studio oder info@example.de, @ allein", '@'), 1);
        assert_eq!(count_marked("#Störung #Fotografie", '#'), 2);
        let tags: String = (0..31).map(|i| format!("#tag{i} ")).collect();
        assert_eq!(count_marked(&tags, '#'), 31);
    }
}
