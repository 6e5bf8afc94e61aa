//! Standard Webhooks v1 signatures (standardwebhooks.com, spec `standard-webhooks.md`):
//! `webhook-signature: v1,<base64(HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}"))>`
//! where the key is the base64-decoded secret without its `whsec_` prefix. Several secrets
//! (space-separated, while a receiver rotates) give several space-separated signatures.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;

pub struct Signer {
    keys: Vec<SecretBox<Vec<u8>>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} key(s), redacted)", self.keys.len())
    }
}

impl Signer {
    /// From the secret(s) as configured: `whsec_<base64>` (the prefix is optional), separated by
    /// whitespace. Errors never repeat the secret.
    pub fn new(secret: &SecretString) -> Result<Signer, String> {
        let mut keys = Vec::new();
        for (i, part) in secret.expose_secret().split_whitespace().enumerate() {
            let b64 = part.strip_prefix("whsec_").unwrap_or(part);
            let key = STANDARD
                .decode(b64)
                .or_else(|_| STANDARD_NO_PAD.decode(b64.trim_end_matches('=')))
                .map_err(|_| {
                    format!(
                        "signing secret #{} is not `whsec_` followed by base64 (Standard Webhooks secrets are 24-64 random bytes, base64-encoded)",
                        i + 1
                    )
                })?;
            if key.is_empty() {
                return Err(format!("signing secret #{} is empty", i + 1));
            }
            keys.push(SecretBox::new(Box::new(key)));
        }
        if keys.is_empty() {
            return Err("the signing secret is empty".into());
        }
        Ok(Signer { keys })
    }

    /// The `webhook-signature` header value for this id, timestamp (unix seconds) and raw body.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        self.keys
            .iter()
            .map(|k| {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(k.expose_secret())
                    .expect("HMAC accepts keys of any length");
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks spec (also in the reference libraries' tests).
    #[test]
    fn spec_test_vector() {
        let s = Signer::new(&SecretString::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap();
        assert_eq!(
            s.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        // Without the prefix the same key.
        let s = Signer::new(&SecretString::from("C2FVsBQIhrscChlQIMV+b5sSYspob7oD")).unwrap();
        assert!(
            s.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, b"x")
                .starts_with("v1,")
        );
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let s = Signer::new(&SecretString::from(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ))
        .unwrap();
        let sig = s.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
        assert!(parts[1].starts_with("v1,") && parts[1] != parts[0]);
    }

    #[test]
    fn bad_secrets_are_refused_without_echo() {
        let e = Signer::new(&SecretString::from("whsec_not*base64!")).unwrap_err();
        assert!(!e.contains("not*base64"), "{e}");
        assert!(Signer::new(&SecretString::from("   ")).is_err());
    }
}
