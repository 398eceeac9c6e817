//! `Authorization: Bearer <token>` against the configured API tokens.

use crate::core::config::Config;
use crate::core::errors::{codes, ApiError};

use super::message::{Request, Response};

/// The realm named in `WWW-Authenticate`.
pub const REALM: &str = "zorio-c2c";

/// The name of the token the request presents, or the 401 to answer.
pub fn authenticate(config: &Config, req: &Request) -> Result<String, Response> {
    let presented = req.header("authorization").and_then(bearer);
    let Some(secret) = presented else {
        return Err(unauthorized(
            "missing Authorization: Bearer <token>",
            format!("Bearer realm=\"{REALM}\""),
        ));
    };
    match config.token_by_secret(secret) {
        Some(t) => Ok(t.name.clone()),
        None => Err(unauthorized(
            "the API token is not valid",
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
        )),
    }
}

/// Whether the request presents a valid API token (nothing built to say
/// why not: [`authenticate`] does that).
pub fn is_authorized(config: &Config, req: &Request) -> bool {
    req.header("authorization")
        .and_then(bearer)
        .is_some_and(|secret| config.token_by_secret(secret).is_some())
}

/// The token of a `Bearer` credential (scheme case-insensitive).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized(message: &str, challenge: String) -> Response {
    Response::error(&ApiError::new(401, codes::UNAUTHORIZED, message))
        .with_header("WWW-Authenticate", challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer   abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearer"), None);
    }
}
