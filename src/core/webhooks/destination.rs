//! Where an event goes: its API token's own webhook URL and secrets when
//! set, else the default ones; no URL at all means no delivery.

use std::collections::HashMap;
use std::sync::Arc;

use super::signer::Secret;
use crate::core::config::{ApiToken, WebhookSettings};

/// A receiver and the secrets its deliveries are signed with.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub url: String,
    pub secrets: Vec<Secret>,
}

/// The destinations of all tokens, resolved once at start.
#[derive(Debug, Default)]
pub struct Destinations {
    default: Option<Arc<Destination>>,
    by_token: HashMap<String, Option<Arc<Destination>>>,
}

impl Destinations {
    /// Resolves every token: its URL or the default URL, its secrets or the
    /// default secrets. Fails on a malformed secret.
    pub fn new(settings: &WebhookSettings, tokens: &[ApiToken]) -> Result<Destinations, String> {
        let default_secrets = Secret::parse_all(&settings.secrets)?;
        let default = settings.url.as_ref().map(|url| {
            Arc::new(Destination {
                url: url.clone(),
                secrets: default_secrets.clone(),
            })
        });
        let mut by_token = HashMap::new();
        for t in tokens {
            let own = Secret::parse_all(&t.webhook_secrets)
                .map_err(|e| format!("token {}: {e}", t.name))?;
            let dest = match (&t.webhook_url, own.is_empty()) {
                (None, true) => default.clone(),
                (url, _) => url.as_ref().or(settings.url.as_ref()).map(|url| {
                    Arc::new(Destination {
                        url: url.clone(),
                        secrets: if own.is_empty() {
                            default_secrets.clone()
                        } else {
                            own
                        },
                    })
                }),
            };
            by_token.insert(t.name.clone(), dest);
        }
        Ok(Destinations { default, by_token })
    }

    /// The destination of an event placed with `token` (`None`: keep it out of delivery).
    pub fn for_token(&self, token: Option<&str>) -> Option<Arc<Destination>> {
        match token.and_then(|t| self.by_token.get(t)) {
            Some(dest) => dest.clone(),
            None => self.default.clone(),
        }
    }

    /// Whether any event can be delivered at all.
    pub fn any(&self) -> bool {
        self.default.is_some() || self.by_token.values().any(Option::is_some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const S2: &str = "whsec_c2VjcmV0LXR3bw==";

    fn token(name: &str, url: Option<&str>, secrets: &[&str]) -> ApiToken {
        ApiToken {
            name: name.into(),
            secret: format!("{name}-secret-123"),
            webhook_url: url.map(str::to_string),
            webhook_secrets: secrets.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn token_settings_win_field_by_field_over_the_defaults() {
        let settings = WebhookSettings {
            url: Some("http://default/hook".into()),
            secrets: vec![S1.into()],
            ..WebhookSettings::default()
        };
        let tokens = [
            token("plain", None, &[]),
            token("own", Some("http://own/hook"), &[S2]),
            token("url-only", Some("http://other/hook"), &[]),
        ];
        let d = Destinations::new(&settings, &tokens).unwrap();
        let s1 = Secret::parse(S1).unwrap();
        let s2 = Secret::parse(S2).unwrap();
        assert_eq!(d.for_token(None).unwrap().url, "http://default/hook");
        assert_eq!(
            d.for_token(Some("unknown")).unwrap().url,
            "http://default/hook"
        );
        assert_eq!(
            d.for_token(Some("plain")).unwrap().secrets,
            vec![s1.clone()]
        );
        let own = d.for_token(Some("own")).unwrap();
        assert_eq!(
            (own.url.as_str(), own.secrets.clone()),
            ("http://own/hook", vec![s2])
        );
        let other = d.for_token(Some("url-only")).unwrap();
        assert_eq!(
            (other.url.as_str(), other.secrets.clone()),
            ("http://other/hook", vec![s1])
        );
    }

    #[test]
    fn no_url_anywhere_means_no_destination() {
        let tokens = [token("own", Some("http://own/hook"), &[])];
        let d = Destinations::new(&WebhookSettings::default(), &tokens).unwrap();
        assert!(d.for_token(None).is_none());
        assert!(d.for_token(Some("own")).is_some());
        assert!(d.any());
        let none = Destinations::new(&WebhookSettings::default(), &[]).unwrap();
        assert!(!none.any());
        let bad = [token("bad", None, &["nope"])];
        assert!(Destinations::new(&WebhookSettings::default(), &bad).is_err());
    }
}
