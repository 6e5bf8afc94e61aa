//! A Facebook Page post: `POST /{page-id}/feed` (`message`, `link`) without an image;
//! `POST /{page-id}/photos` with one (`url` for an https URL, multipart `source` for a local
//! file, `caption`). The report's `provider_id` is the post id (`post_id` for photos).

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::FacebookConfig;
use super::client::{Effect, FilePart, GraphClient, GraphError, classify, unexpected, valid_id};
use super::{Image, image_of, read_image};
use crate::channel::{Channel, Delivery, DeliveryError, Media, Meta, Probe, Reach, Receipt, Rendered, Stat};
use crate::render::{Context, Templates};
use crate::settings::Common;

/// Facebook's limit for the text of a post.
pub const MAX_MESSAGE: usize = 63_206;

pub struct Facebook {
    meta: Meta,
    page_id: String,
    template: String,
    client: GraphClient,
}

/// The Page a local image is uploaded to, unpublished, so Instagram can fetch it.
pub struct PageHost {
    pub channel: String,
    pub page_id: String,
    pub client: GraphClient,
}

pub fn client_for(name: &str, cfg: &FacebookConfig) -> Result<GraphClient, String> {
    if !valid_id(&cfg.page_id) {
        return Err(format!(
            "[channels.{name}] page_id {:?} is not a Graph id (digits, as shown in the Page's About section)",
            cfg.page_id
        ));
    }
    cfg.account.client(name, "Page")
}

impl Facebook {
    pub fn new(name: &str, common: &Common, cfg: &FacebookConfig) -> Result<Facebook, String> {
        Ok(Facebook {
            meta: Meta::new::<FacebookConfig>(name, Reach::Broadcast(cfg.page_id.clone())).concurrency(1),
            page_id: cfg.page_id.clone(),
            template: common.template.clone().unwrap_or_else(|| "facebook.hbs".into()),
            client: client_for(name, cfg)?,
        })
    }
}

impl PageHost {
    /// Upload a local image to the Page without publishing it and return its largest CDN URL
    /// (`GET /{photo-id}?fields=images`). Creates nothing public, so failures are retryable.
    pub async fn host(&self, path: &Path, attempt: u32) -> Result<String, DeliveryError> {
        let file = read_image(path).await?;
        let photos = format!("{}/photos", self.page_id);
        let route = Some(self.client.route(&photos));
        let err = |e: GraphError| {
            let d = classify(&e, &self.client.hints, attempt, route.clone());
            prefix(d, &format!("hosting the image on facebook channel `{}`", self.channel))
        };
        let v = self
            .client
            .post_multipart(&photos, &[("published", "false")], file, Effect::Private)
            .await
            .map_err(err)?;
        let photo = v["id"]
            .as_str()
            .filter(|id| valid_id(id))
            .ok_or_else(|| err(unexpected(&v, Effect::Private)))?
            .to_string();
        let v = self.client.get(&photo, "images").await.map_err(err)?;
        largest_image(&v).ok_or_else(|| {
            DeliveryError::transient(format!(
                "photo {photo} has no image URL yet (answer: {}); retrying",
                crate::channel::http::excerpt(&v.to_string(), crate::channel::http::EXCERPT_CHARS)
            ))
        })
    }
}

/// `images[]` holds renditions `{height, width, source}`; take the largest.
pub fn largest_image(v: &Value) -> Option<String> {
    v["images"]
        .as_array()?
        .iter()
        .filter_map(|i| {
            let src = i["source"].as_str()?;
            let area = i["width"].as_u64().unwrap_or(0) * i["height"].as_u64().unwrap_or(0);
            Some((area, src))
        })
        .max_by_key(|(area, _)| *area)
        .map(|(_, s)| s.to_string())
}

/// Prefix an error's message with what was being done.
pub fn prefix(e: DeliveryError, what: &str) -> DeliveryError {
    e.map_message(|message| format!("{what}: {message}"))
}

#[async_trait]
impl Channel for Facebook {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn render(&self, templates: &Templates, ctx: &Context) -> Result<Rendered, String> {
        let text = templates.render_ctx(&self.template, ctx)?.trim().to_string();
        let chars = text.chars().count();
        let mut stats = vec![Stat::limited("post characters", chars, MAX_MESSAGE)];
        if text.is_empty() {
            return Err(format!("{}: the Facebook post is empty", self.template));
        }
        if chars > MAX_MESSAGE {
            return Err(format!(
                "the Facebook post has {chars} characters; Facebook allows {MAX_MESSAGE}"
            ));
        }
        let mut media = Media {
            image: image_of(ctx, &[&crate::media::FACEBOOK_PHOTO])?,
            ..Media::default()
        };
        match &media.image {
            Some(Image::Url(_)) => stats.push(Stat::new("post type", "photo (from the image URL)")),
            Some(Image::File(_)) => stats.push(Stat::new("post type", "photo (uploaded from the local file)")),
            None => {
                media.link = ctx.data()["link"]
                    .as_str()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string);
                stats.push(Stat::new(
                    "post type",
                    if media.link.is_some() {
                        "text with link preview"
                    } else {
                        "text"
                    },
                ));
            }
        }
        Ok(Rendered {
            media,
            ..Rendered::plain(text, stats)
        })
    }

    async fn deliver(&self, d: &Delivery, m: &Rendered) -> Result<Receipt, DeliveryError> {
        // Graph error texts can quote the request: no secret reaches the journal or a report.
        let result: Result<Receipt, DeliveryError> = async {
            let (path, result) = match &m.media.image {
                None => {
                    let path = format!("{}/feed", self.page_id);
                    let mut params = vec![("message", m.text.as_str())];
                    if let Some(link) = m.media.link.as_deref() {
                        params.push(("link", link));
                    }
                    let r = self.client.post_form(&path, &params, Effect::Publish).await;
                    (path, r)
                }
                Some(Image::Url(url)) => {
                    let path = format!("{}/photos", self.page_id);
                    let params = [("url", url.as_str()), ("caption", m.text.as_str())];
                    let r = self.client.post_form(&path, &params, Effect::Publish).await;
                    (path, r)
                }
                Some(Image::File(file)) => {
                    let path = format!("{}/photos", self.page_id);
                    let part: FilePart = read_image(file).await?;
                    let r = self
                        .client
                        .post_multipart(&path, &[("caption", m.text.as_str())], part, Effect::Publish)
                        .await;
                    (path, r)
                }
            };
            let route = Some(self.client.route(&path));
            let fail = |e: GraphError| classify(&e, &self.client.hints, d.attempt, route.clone());
            let v = result.map_err(fail)?;
            // Photos answer {"id": photo, "post_id": post}; the feed answers {"id": post}.
            let Some(id) = v["post_id"]
                .as_str()
                .or_else(|| v["id"].as_str())
                .filter(|id| valid_id(id))
            else {
                return Err(fail(unexpected(&v, Effect::Publish)));
            };
            tracing::info!(channel = %self.name(), "published Facebook post {id}");
            Ok(Receipt {
                provider_id: Some(id.to_string()),
                route,
            })
        }
        .await;
        result.map_err(DeliveryError::redacted)
    }

    /// `GET /{page-id}?fields=id,name` with the token; nothing is posted.
    async fn check(&self) -> Vec<Probe> {
        let found = self.client.identify(&self.page_id, "name").await;
        let seen = found.map(|(name, id)| format!("Page {name:?} ({id}) via {}", self.client.route("")));
        vec![Probe::outcome(format!("page {}", self.page_id), seen)]
    }

    fn attempt_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(150))
    }

    /// The attempt was cut off by the channel's `timeout`, possibly after Facebook created the post.
    fn timeout_error(&self, after: Duration) -> DeliveryError {
        DeliveryError::Ambiguous {
            message: format!(
                "no answer from Facebook within {after:?} (the channel's `timeout`); the post may or may not have \
                 been published, so it is not sent again automatically (check the Page, then `announce resume RUN \
                 --resend-unknown` if it is missing)"
            ),
            route: None,
        }
    }
}
