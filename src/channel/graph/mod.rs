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
pub mod facebook;
pub mod instagram;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::channel::{Channel, DeliveryError, Rendered};
use crate::config::{ChannelKind, Common, Config, FacebookConfig, InstagramConfig};
use crate::render::Context;

use client::FilePart;

/// `stats` label of the image: an https URL or an absolute file path.
pub const IMAGE_STAT: &str = "image";
/// `stats` label of the link a Facebook text post previews.
pub const LINK_STAT: &str = "link";
/// `stats` label of Instagram's alt text.
pub const ALT_STAT: &str = "alt text";

pub fn build_facebook(
    name: &str,
    common: &Common,
    cfg: &FacebookConfig,
    _config: &Config,
) -> Result<Arc<dyn Channel>, String> {
    Ok(Arc::new(facebook::Facebook::new(name, common, cfg)?))
}

pub fn build_instagram(
    name: &str,
    common: &Common,
    cfg: &InstagramConfig,
    config: &Config,
) -> Result<Arc<dyn Channel>, String> {
    let host_entry = match &cfg.image_host {
        Some(h) => {
            let e = config
                .channel(h)
                .filter(|e| e.type_name() == "facebook")
                .ok_or_else(|| format!("[channels.{name}] image_host {h:?} is not a channel of type facebook"))?;
            Some(e)
        }
        None => config
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

/// The announcement's image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Url(String),
    File(PathBuf),
}

impl Image {
    /// Back from the `image` stat written by `render`.
    pub fn from_stat(v: &str) -> Image {
        if v.starts_with("https://") {
            Image::Url(v.to_string())
        } else {
            Image::File(PathBuf::from(v))
        }
    }
}

/// The value of a `stats` entry.
pub fn stat_value<'m>(m: &'m Rendered, label: &str) -> Option<&'m str> {
    m.stats.iter().find(|s| s.label == label).map(|s| s.value.as_str())
}

/// Resolve the context's `image`: an https URL, or a readable file relative to the announcement.
pub fn image_of(ctx: &Context) -> Result<Option<Image>, String> {
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
    let path = Path::new(dir).join(s);
    let meta = std::fs::metadata(&path).map_err(|e| format!("image {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("image {} is not a file", path.display()));
    }
    if meta.len() == 0 {
        return Err(format!("image {} is empty", path.display()));
    }
    // Absolute, so that a later `resume` from another folder still finds it.
    Ok(Some(Image::File(std::fs::canonicalize(&path).unwrap_or(path))))
}

/// Read a local image for a multipart upload (`source`).
pub async fn read_image(path: &Path) -> Result<FilePart, DeliveryError> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| DeliveryError::permanent(format!("cannot read image {}: {e}", path.display())))?;
    let mime = sniff_mime(&bytes);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    Ok(FilePart {
        field: "source",
        file_name,
        mime,
        bytes,
    })
}

fn sniff_mime(b: &[u8]) -> &'static str {
    match b {
        [0xFF, 0xD8, 0xFF, ..] => "image/jpeg",
        [0x89, b'P', b'N', b'G', ..] => "image/png",
        [b'G', b'I', b'F', b'8', ..] => "image/gif",
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "image/webp",
        [b'B', b'M', ..] => "image/bmp",
        [b'I', b'I', 0x2A, 0x00, ..] | [b'M', b'M', 0x00, 0x2A, ..] => "image/tiff",
        _ => "application/octet-stream",
    }
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
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pics")).unwrap();
        std::fs::write(dir.path().join("pics/a.jpg"), [0xFF, 0xD8, 0xFF, 0xE0]).unwrap();
        assert_eq!(
            image_of(&ctx("https://cdn.example/a.jpg", dir.path())).unwrap(),
            Some(Image::Url("https://cdn.example/a.jpg".into()))
        );
        match image_of(&ctx("pics/a.jpg", dir.path())).unwrap() {
            Some(Image::File(p)) => assert!(p.is_absolute() && p.ends_with("pics/a.jpg")),
            other => panic!("{other:?}"),
        }
        assert!(
            image_of(&ctx("pics/missing.jpg", dir.path()))
                .unwrap_err()
                .contains("missing.jpg")
        );
        assert!(image_of(&ctx("ftp://x/a.jpg", dir.path())).is_err());
        assert!(
            image_of(&ctx("bild-ä€ö.jpg", dir.path()))
                .unwrap_err()
                .contains("bild-ä€ö.jpg")
        );
        assert_eq!(image_of(&Context::new(json!({}), "1")).unwrap(), None);
        assert_eq!(sniff_mime(&[0xFF, 0xD8, 0xFF, 0xE0]), "image/jpeg");
    }
}
