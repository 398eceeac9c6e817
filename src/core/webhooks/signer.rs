//! Standard Webhooks signing: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! one per secret, space-separated, so receivers can rotate secrets).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A signing secret, decoded from its `whsec_<base64>` form.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// Parses `whsec_<base64>` (the prefix is required, the key must not be empty).
    pub fn parse(text: &str) -> Result<Secret, String> {
        let b64 = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or("a webhook secret must start with whsec_")?;
        match STANDARD.decode(b64) {
            Ok(key) if !key.is_empty() => Ok(Secret(key)),
            _ => Err("a webhook secret must be whsec_ followed by base64".to_string()),
        }
    }

    /// Parses several secrets; the first bad one is the error.
    pub fn parse_all(texts: &[String]) -> Result<Vec<Secret>, String> {
        texts.iter().map(|t| Secret::parse(t)).collect()
    }

    /// `v1,<base64 signature>` of one message under this secret.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length: new_from_slice cannot fail for it.
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` value: one `v1,…` per secret, space-separated.
pub fn signature(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The three Standard Webhooks headers for one attempt (no signature header
/// when there is no secret).
pub fn headers(
    secrets: &[Secret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("webhook-id", msg_id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    if !secrets.is_empty() {
        h.push((
            "webhook-signature",
            signature(secrets, msg_id, timestamp, body),
        ));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        let s = Secret::parse(SECRET).unwrap();
        assert_eq!(s.sign(ID, TS, BODY), EXPECTED);
    }

    #[test]
    fn signs_with_every_secret_for_rotation() {
        let other = Secret::parse("whsec_c2VjcmV0LXR3bw==").unwrap();
        let both = vec![other.clone(), Secret::parse(SECRET).unwrap()];
        let sig = signature(&both, ID, TS, BODY);
        let parts: Vec<&str> = sig.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], other.sign(ID, TS, BODY));
        assert_eq!(parts[1], EXPECTED);
        let h = headers(&both, ID, TS, BODY);
        assert_eq!(h[0], ("webhook-id", ID.to_string()));
        assert_eq!(h[1], ("webhook-timestamp", TS.to_string()));
        assert_eq!(h[2].1, sig);
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(Secret::parse("whsec_").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
        assert!(format!("{:?}", Secret::parse(SECRET).unwrap()).contains(".."));
    }
}
