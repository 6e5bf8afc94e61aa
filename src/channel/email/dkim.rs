//! DKIM signing (RFC 6376) with lettre: key loading and the signed header list.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;

use super::{DkimAlgorithm, DkimConfig as Settings};
use crate::channel::BuildContext;

/// A loaded DKIM configuration plus a description for `check`.
pub struct Signer {
    pub config: DkimConfig,
    pub summary: String,
}

/// Headers the signature covers. Listing a header the message lacks is allowed (RFC 6376 §5.4:
/// it then signs its absence, so nobody can add it later), which keeps one list for every
/// message: In-Reply-To/References only exist on follow-ups. Content-Type is not signed:
/// lettre writes a multipart body's Content-Type when formatting, after signing, so a
/// signature over it would not verify.
const SIGNED: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Auto-Submitted",
];

/// Build the signer. `list_unsubscribe` is the channel's value: both List-Unsubscribe headers
/// are signed when they are sent (Gmail and Yahoo require it for one-click unsubscribe).
pub fn signer(cfg: &Settings, ctx: &BuildContext, list_unsubscribe: Option<&str>) -> Result<Signer, String> {
    let path = ctx.resolve(&cfg.private_key_file);
    let key = signing_key(&path, cfg.algorithm)?;
    let mut headers: Vec<HeaderName> = SIGNED.iter().map(|h| HeaderName::new_from_ascii_str(h)).collect();
    if let Some(u) = list_unsubscribe {
        headers.push(HeaderName::new_from_ascii_str("List-Unsubscribe"));
        if one_click(u) {
            headers.push(HeaderName::new_from_ascii_str("List-Unsubscribe-Post"));
        }
    }
    let canonicalization = DkimCanonicalization {
        header: DkimCanonicalizationType::Relaxed,
        body: DkimCanonicalizationType::Relaxed,
    };
    let algorithm = match cfg.algorithm {
        DkimAlgorithm::Rsa => "rsa-sha256",
        DkimAlgorithm::Ed25519 => "ed25519-sha256",
    };
    Ok(Signer {
        config: DkimConfig::new(cfg.selector.clone(), cfg.domain.clone(), key, headers, canonicalization),
        summary: format!(
            "signs d={} s={} ({algorithm}, key {})",
            cfg.domain,
            cfg.selector,
            path.display()
        ),
    })
}

/// Same rule as `message::build`: List-Unsubscribe-Post is only added for an https URI.
fn one_click(list_unsubscribe: &str) -> bool {
    list_unsubscribe
        .split(',')
        .any(|s| s.trim().trim_start_matches('<').starts_with("https://"))
}

/// Read a private key. RSA: PKCS#1 ("BEGIN RSA PRIVATE KEY", `openssl genrsa -traditional`) or
/// PKCS#8 ("BEGIN PRIVATE KEY", what `openssl genrsa` writes today), converted for lettre,
/// which only reads PKCS#1. Ed25519: the base64 of the 32-byte seed (as lettre and dknewkey
/// write it; a 64-byte seed+public key is accepted too) or a PKCS#8 PEM
/// (`openssl genpkey -algorithm ed25519`). Error messages never contain key material.
pub fn signing_key(path: &Path, algorithm: DkimAlgorithm) -> Result<DkimSigningKey, String> {
    let what = format!("dkim private_key_file {}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: cannot read it: {e}"))?;
    match algorithm {
        DkimAlgorithm::Rsa => {
            let key = if text.contains("-----BEGIN RSA PRIVATE KEY-----") {
                RsaPrivateKey::from_pkcs1_pem(text.trim())
                    .map_err(|e| format!("{what}: invalid PKCS#1 RSA key: {e}"))?
            } else if text.contains("-----BEGIN PRIVATE KEY-----") {
                RsaPrivateKey::from_pkcs8_pem(text.trim())
                    .map_err(|e| format!("{what}: invalid PKCS#8 key (is it an RSA key?): {e}"))?
            } else if text.contains("ENCRYPTED PRIVATE KEY") {
                return Err(format!(
                    "{what}: the key is encrypted; store it unencrypted with mode 0600 \
                     (`openssl rsa -in KEY -traditional -out dkim.pem`)"
                ));
            } else {
                return Err(format!(
                    "{what}: not a PEM RSA private key; expected \"-----BEGIN RSA PRIVATE KEY-----\" (PKCS#1, \
                     `openssl genrsa -traditional 2048`) or \"-----BEGIN PRIVATE KEY-----\" (PKCS#8)"
                ));
            };
            if key.size() < 128 {
                return Err(format!(
                    "{what}: the RSA key has {} bits; DKIM needs at least 1024 (use 2048)",
                    key.size() * 8
                ));
            }
            let pkcs1 = key.to_pkcs1_pem(LineEnding::LF).map_err(|e| format!("{what}: {e}"))?;
            DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa).map_err(|e| format!("{what}: {e}"))
        }
        DkimAlgorithm::Ed25519 => {
            let seed = ed25519_seed(&text).map_err(|e| format!("{what}: {e}"))?;
            DkimSigningKey::new(&STANDARD.encode(seed), DkimSigningAlgorithm::Ed25519)
                .map_err(|e| format!("{what}: {e}"))
        }
    }
}

/// DER prefix of a PKCS#8 Ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn ed25519_seed(text: &str) -> Result<Vec<u8>, String> {
    let bad = "not an Ed25519 key: expected the base64 of the 32-byte private key, or a PEM \
               \"-----BEGIN PRIVATE KEY-----\" from `openssl genpkey -algorithm ed25519`";
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = STANDARD.decode(body).map_err(|_| bad.to_string())?;
        return match der.strip_prefix(&ED25519_PKCS8_PREFIX[..]) {
            Some(seed) if seed.len() == 32 => Ok(seed.to_vec()),
            _ => Err(bad.into()),
        };
    }
    let raw = STANDARD.decode(text.trim()).map_err(|_| bad.to_string())?;
    match raw.len() {
        32 => Ok(raw),
        64 => Ok(raw[..32].to_vec()),
        _ => Err(bad.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_forms() {
        let seed = [7u8; 32];
        assert_eq!(ed25519_seed(&STANDARD.encode(seed)).unwrap(), seed);
        let mut both = seed.to_vec();
        both.extend([9u8; 32]);
        assert_eq!(ed25519_seed(&STANDARD.encode(&both)).unwrap(), seed);
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend(seed);
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(ed25519_seed(&pem).unwrap(), seed);
        assert!(ed25519_seed("not a key").is_err());
    }

    #[test]
    fn unreadable_rsa_key_names_pkcs1() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        std::fs::write(&p, "garbage").unwrap();
        let e = signing_key(&p, DkimAlgorithm::Rsa).err().unwrap();
        assert!(e.contains("BEGIN RSA PRIVATE KEY") && e.contains("k.pem"), "{e}");
    }

    #[test]
    fn one_click_needs_https() {
        assert!(one_click("<https://x.example/u>, mailto:u@x.example"));
        assert!(!one_click("mailto:u@x.example"));
    }
}
