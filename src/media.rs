//! Local image files that social channels publish. A local `image` must resolve (symlinks
//! followed) inside the announcement's folder or the working folder, and be an image the
//! platform takes — by its content, not its name — within the platform's size limit. Anything
//! else is refused while planning: the customer list renamed `.jpg` must never reach a public
//! Page.

use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl ImageKind {
    /// By the file's first bytes (its magic number).
    pub fn sniff(head: &[u8]) -> Option<ImageKind> {
        match head {
            [0xFF, 0xD8, 0xFF, ..] => Some(ImageKind::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(ImageKind::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(ImageKind::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(ImageKind::Webp),
            _ => None,
        }
    }

    pub fn mime(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "image/jpeg",
            ImageKind::Png => "image/png",
            ImageKind::Gif => "image/gif",
            ImageKind::Webp => "image/webp",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "JPEG",
            ImageKind::Png => "PNG",
            ImageKind::Gif => "GIF",
            ImageKind::Webp => "WebP",
        }
    }
}

/// Bytes needed to tell the kinds apart.
const HEAD: usize = 12;

/// What one platform takes.
#[derive(Debug)]
pub struct ImageRule {
    pub platform: &'static str,
    pub kinds: &'static [ImageKind],
    pub max_bytes: u64,
    /// The limit as the platform's documentation states it.
    pub max_text: &'static str,
}

/// Page photos (`POST /{page-id}/photos`, multipart `source`): Meta's photo upload guide asks
/// for files under 4 MB.
pub const FACEBOOK_PHOTO: ImageRule = ImageRule {
    platform: "Facebook",
    kinds: &[ImageKind::Jpeg, ImageKind::Png, ImageKind::Gif, ImageKind::Webp],
    max_bytes: 4 << 20,
    max_text: "4 MB",
};

/// Instagram feed images: JPEG only, 8 MiB (error 2207004 beyond).
pub const INSTAGRAM_IMAGE: ImageRule = ImageRule {
    platform: "Instagram",
    kinds: &[ImageKind::Jpeg],
    max_bytes: 8 << 20,
    max_text: "8 MiB",
};

/// Check an image's content against one platform's rule. `head` is the file's start.
pub fn check_content(shown: &str, head: &[u8], len: u64, rule: &ImageRule) -> Result<ImageKind, String> {
    let allowed = || {
        let names: Vec<&str> = rule.kinds.iter().map(|k| k.name()).collect();
        names.join(", ")
    };
    if len == 0 {
        return Err(format!("image {shown} is empty"));
    }
    let Some(kind) = ImageKind::sniff(head) else {
        return Err(format!(
            "image {shown} is not a JPEG, PNG, GIF or WebP file (judged by its content, not its name); \
             only image files are published"
        ));
    };
    if !rule.kinds.contains(&kind) {
        return Err(format!(
            "image {shown} is a {} file; {} takes only {}",
            kind.name(),
            rule.platform,
            allowed()
        ));
    }
    if len > rule.max_bytes {
        return Err(format!(
            "image {shown} has {len} bytes; {} takes images of at most {} ({} bytes)",
            rule.platform, rule.max_text, rule.max_bytes
        ));
    }
    Ok(kind)
}

/// A local image that passed every rule it was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// Canonical: absolute, symlinks resolved.
    pub path: PathBuf,
    pub kind: ImageKind,
}

/// Resolve `value` (relative to `announcement_dir`) and check it against each rule.
pub fn local_image(value: &str, announcement_dir: &Path, rules: &[&ImageRule]) -> Result<LocalImage, String> {
    let joined = announcement_dir.join(value);
    let path = std::fs::canonicalize(&joined).map_err(|e| format!("image {}: {e}", joined.display()))?;
    let roots: Vec<PathBuf> = [
        std::fs::canonicalize(announcement_dir).ok(),
        std::env::current_dir().ok().and_then(|d| std::fs::canonicalize(d).ok()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !roots.iter().any(|r| path.starts_with(r)) {
        return Err(format!(
            "image {value:?} resolves to {}, outside the announcement's folder and the working folder; \
             only files inside them are published",
            path.display()
        ));
    }
    let meta = std::fs::metadata(&path).map_err(|e| format!("image {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("image {} is not a file", path.display()));
    }
    let mut head = Vec::with_capacity(HEAD);
    std::fs::File::open(&path)
        .and_then(|f| f.take(HEAD as u64).read_to_end(&mut head))
        .map_err(|e| format!("image {}: {e}", path.display()))?;
    let shown = path.display().to_string();
    let mut kind = None;
    for rule in rules {
        kind = Some(check_content(&shown, &head, meta.len(), rule)?);
    }
    let kind = kind
        .or_else(|| ImageKind::sniff(&head))
        .ok_or_else(|| format!("image {shown} is not a JPEG, PNG, GIF or WebP file"))?;
    Ok(LocalImage { path, kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = &[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0, 1];
    const PNG: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D];

    #[test]
    fn kinds_are_told_by_content() {
        assert_eq!(ImageKind::sniff(JPEG), Some(ImageKind::Jpeg));
        assert_eq!(ImageKind::sniff(PNG), Some(ImageKind::Png));
        assert_eq!(ImageKind::sniff(b"GIF89a\x01\x00"), Some(ImageKind::Gif));
        assert_eq!(ImageKind::sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some(ImageKind::Webp));
        assert_eq!(ImageKind::sniff(b"RIFF\x10\0\0\0WAVEfmt "), None);
        assert_eq!(ImageKind::sniff(b"name,email\n"), None);
        assert_eq!(ImageKind::sniff(b"SQLite format 3\0"), None);
        assert_eq!(ImageKind::sniff(b"BM\0\0"), None);
        assert_eq!(ImageKind::sniff(&[0xFF, 0xD8]), None);
    }

    #[test]
    fn each_platform_has_its_kinds_and_size() {
        let e = check_content("a.png", PNG, 10, &INSTAGRAM_IMAGE).unwrap_err();
        assert!(e.contains("PNG") && e.contains("Instagram takes only JPEG"), "{e}");
        assert_eq!(check_content("a.png", PNG, 10, &FACEBOOK_PHOTO), Ok(ImageKind::Png));
        let e = check_content("a.jpg", JPEG, (4 << 20) + 1, &FACEBOOK_PHOTO).unwrap_err();
        assert!(e.contains("Facebook") && e.contains("4 MB"), "{e}");
        assert!(check_content("a.jpg", JPEG, 4 << 20, &FACEBOOK_PHOTO).is_ok());
        assert!(check_content("a.jpg", JPEG, (8 << 20) + 1, &INSTAGRAM_IMAGE).is_err());
        assert!(
            check_content("a.jpg", JPEG, 0, &FACEBOOK_PHOTO)
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn files_must_stay_inside_the_announcement_folder() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("notices");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("ok.jpg"), JPEG).unwrap();
        std::fs::write(outer.path().join("customers.jpg"), JPEG).unwrap();
        std::os::unix::fs::symlink(outer.path().join("customers.jpg"), dir.join("link.jpg")).unwrap();
        let got = local_image("ok.jpg", &dir, &[&FACEBOOK_PHOTO]).unwrap();
        assert!(got.path.is_absolute() && got.path.ends_with("notices/ok.jpg"));
        assert_eq!(got.kind, ImageKind::Jpeg);
        // The working folder of the test process is the crate, not `outer`.
        for bad in ["../customers.jpg", "link.jpg"] {
            let e = local_image(bad, &dir, &[&FACEBOOK_PHOTO]).unwrap_err();
            assert!(e.contains("outside the announcement's folder"), "{bad}: {e}");
        }
        let abs = outer.path().join("customers.jpg").display().to_string();
        assert!(local_image(&abs, &dir, &[&FACEBOOK_PHOTO]).is_err());
        assert!(
            local_image("missing.jpg", &dir, &[&FACEBOOK_PHOTO])
                .unwrap_err()
                .contains("missing.jpg")
        );
    }
}
