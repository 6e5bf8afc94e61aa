//! Facebook Page and Instagram through the Graph API: a shared client ([`client`]) and one
//! broadcast channel each ([`facebook`], [`instagram`]).
//!
//! Both post publicly, once per run. A post that was in flight when the process died (or whose
//! answer was lost) is `unknown` and never re-posted without `--resend-unknown`:
//! [`Channel::resend_is_safe`] stays `false`, because a duplicate public post is worse than a
//! missing one.
//!
//! What `deliver` needs besides the text (the image, the link, the alt text) travels in the
//! rendered message's `stats`, under the labels below, so `preview` and the plan show it too.
//! The image is the announcement's `image`: an https URL, or a file relative to the
//! announcement (`announcement_dir` in the template context). Instagram's alt text comes from
//! the announcement's `vars.image_alt`.

pub mod client;
mod config;
pub mod facebook;
pub mod instagram;

use std::path::Path;
use std::sync::Arc;

use crate::channel::ChannelKind;
use crate::channel::{BuildContext, Channel, DeliveryError};
use crate::media::{self, ImageRule};
use crate::render::Context;
use crate::settings::Common;

pub use crate::channel::Image;
use client::FilePart;
pub use config::{FacebookConfig, GraphAccount, InstagramConfig};

pub fn build_facebook(
    name: &str,
    common: &Common,
    cfg: &FacebookConfig,
    _ctx: &BuildContext,
) -> Result<Arc<dyn Channel>, String> {
    Ok(Arc::new(facebook::Facebook::new(name, common, cfg)?))
}

pub fn build_instagram(
    name: &str,
    common: &Common,
    cfg: &InstagramConfig,
    ctx: &BuildContext,
) -> Result<Arc<dyn Channel>, String> {
    let host_entry = match &cfg.image_host {
        Some(h) => {
            let e = ctx
                .channel(h)
                .filter(|e| e.type_name() == "facebook")
                .ok_or_else(|| format!("[channels.{name}] image_host {h:?} is not a channel of type facebook"))?;
            Some(e)
        }
        None => ctx
            .channels
            .iter()
            .find(|e| e.type_name() == "facebook" && e.settings.common.enabled),
    };
    // A host that cannot be built (its token is not set...) only matters for a local image, so
    // the reason is kept for that case instead of refusing every Instagram post.
    let host = host_entry.and_then(|e| match &e.settings.kind {
        ChannelKind::Facebook(fc) => Some(
            facebook::client_for(&e.name, fc)
                .map(|client| facebook::PageHost {
                    channel: e.name.clone(),
                    page_id: fc.page_id.clone(),
                    client,
                })
                .map_err(|err| format!("facebook channel `{}` cannot host local images: {err}", e.name)),
        ),
        _ => None,
    });
    Ok(Arc::new(instagram::Instagram::new(name, common, cfg, host)?))
}

/// Resolve the context's `image`: an https URL, or a local file that passes [`media`]'s
/// confinement and each of `rules` (the platforms it will be uploaded to).
pub fn image_of(ctx: &Context, rules: &[&ImageRule]) -> Result<Option<Image>, String> {
    let Some(s) = ctx.data()["image"].as_str().map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if s.get(..8).is_some_and(|p| p.eq_ignore_ascii_case("https://")) {
        let url = reqwest::Url::parse(s).map_err(|e| format!("image {s:?} is not a valid URL: {e}"))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("image {s:?} has no host"));
        }
        return Ok(Some(Image::Url(url.to_string())));
    }
    if s.contains("://") {
        return Err(format!("image {s:?}: use an https URL or a local file"));
    }
    let dir = ctx.data()["announcement_dir"].as_str().unwrap_or(".");
    // Canonical, so that a later `resume` from another folder still finds it.
    Ok(Some(Image::File(media::local_image(s, Path::new(dir), rules)?.path)))
}

/// Read a local image for a multipart upload (`source`) to the Facebook Page — for Facebook
/// posts and for hosting Instagram's. Checked again: the file may have changed since planning.
pub async fn read_image(path: &Path) -> Result<FilePart, DeliveryError> {
    use tokio::io::AsyncReadExt;
    let refuse = |e: String| DeliveryError::permanent(e);
    let shown = path.display().to_string();
    // Planning stored the canonical path: anything else means a symlink was put in its place.
    let now = tokio::fs::canonicalize(path)
        .await
        .map_err(|e| refuse(format!("cannot read image {shown}: {e}")))?;
    if now != path {
        return Err(refuse(format!(
            "image {shown} was replaced by a link to {} since planning",
            now.display()
        )));
    }
    let rule = &media::FACEBOOK_PHOTO;
    let mut bytes = Vec::new();
    tokio::fs::File::open(path)
        .await
        .map_err(|e| refuse(format!("cannot read image {shown}: {e}")))?
        .take(rule.max_bytes + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| refuse(format!("cannot read image {shown}: {e}")))?;
    let kind = media::check_content(&shown, &bytes, bytes.len() as u64, rule).map_err(refuse)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    Ok(FilePart {
        field: "source",
        file_name,
        mime: kind.mime(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(image: &str, dir: &Path) -> Context {
        Context::new(
            json!({"image": image, "announcement_dir": dir.display().to_string()}),
            "1",
        )
    }

    #[test]
    fn images_are_https_urls_or_files_next_to_the_announcement() {
        let fb = &[&media::FACEBOOK_PHOTO];
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pics")).unwrap();
        std::fs::write(dir.path().join("pics/a.jpg"), [0xFF, 0xD8, 0xFF, 0xE0]).unwrap();
        assert_eq!(
            image_of(&ctx("https://cdn.example/a.jpg", dir.path()), fb).unwrap(),
            Some(Image::Url("https://cdn.example/a.jpg".into()))
        );
        match image_of(&ctx("pics/a.jpg", dir.path()), fb).unwrap() {
            Some(Image::File(p)) => assert!(p.is_absolute() && p.ends_with("pics/a.jpg")),
            other => panic!("{other:?}"),
        }
        assert!(
            image_of(&ctx("pics/missing.jpg", dir.path()), fb)
                .unwrap_err()
                .contains("missing.jpg")
        );
        assert!(image_of(&ctx("ftp://x/a.jpg", dir.path()), fb).is_err());
        assert!(
            image_of(&ctx("bild-ä€ö.jpg", dir.path()), fb)
                .unwrap_err()
                .contains("bild-ä€ö.jpg")
        );
        assert_eq!(image_of(&Context::new(json!({}), "1"), fb).unwrap(), None);
    }
}
