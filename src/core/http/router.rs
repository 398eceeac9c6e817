//! The pure router: `route(state, &Request) -> Response`. No sockets here, so
//! any transport (our server, a FreeSWITCH API command) can call it.

use crate::core::cluster::lookup;
use crate::core::errors::{codes, ApiError};

use super::auth;
use super::handlers::{call_hangup, call_status, caller_ids, click_to_call, health, webhooks};
use super::message::{Request, Response};
use super::metrics;
use super::state::HttpState;

/// One route: a path pattern (`{name}` matches one segment) and a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSpec {
    /// Stable name, used as the `route` label of the metrics.
    pub name: &'static str,
    pub method: &'static str,
    pub pattern: &'static str,
    /// Needs `Authorization: Bearer <token>`.
    pub auth: bool,
    /// Counts against the per-token rate limit (the calls group).
    pub rate_limited: bool,
}

const fn spec(
    name: &'static str,
    method: &'static str,
    pattern: &'static str,
    auth: bool,
    rate_limited: bool,
) -> RouteSpec {
    RouteSpec {
        name,
        method,
        pattern,
        auth,
        rate_limited,
    }
}

/// Every route the API serves.
pub const ROUTES: &[RouteSpec] = &[
    spec(
        "click_to_call",
        "POST",
        "/api/pbx/calls/click-to-call",
        true,
        true,
    ),
    spec("caller_ids", "GET", "/api/pbx/caller-ids", true, false),
    spec(
        "call_status",
        "GET",
        "/api/pbx/calls/{call_uuid}",
        true,
        false,
    ),
    spec(
        "call_hangup",
        "DELETE",
        "/api/pbx/calls/{call_uuid}",
        true,
        false,
    ),
    spec("health", "GET", "/health", false, false),
    spec("metrics", "GET", "/metrics", true, false),
    spec(
        "webhooks_status",
        "GET",
        "/api/pbx/webhooks/status",
        true,
        false,
    ),
    spec(
        "dead_letters",
        "GET",
        "/api/pbx/webhooks/dead-letters",
        true,
        false,
    ),
    spec(
        "dead_letter_replay",
        "POST",
        "/api/pbx/webhooks/dead-letters/{id}/replay",
        true,
        false,
    ),
    spec(
        "dead_letters_replay_all",
        "POST",
        "/api/pbx/webhooks/dead-letters/replay",
        true,
        false,
    ),
];

/// The path parameter of a matched pattern, if it has one.
fn matches<'a>(pattern: &str, path: &'a str) -> Option<Option<&'a str>> {
    let mut param = None;
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(param),
            (Some(pp), Some(ss)) if pp.starts_with('{') && !ss.is_empty() => param = Some(ss),
            (Some(pp), Some(ss)) if pp == ss => {}
            _ => return None,
        }
    }
}

/// Handles one request. Every answer is counted in the metrics.
pub fn route(state: &HttpState, req: &Request) -> Response {
    let (name, response) = dispatch(state, req, None);
    state.metrics.record(name, response.status);
    response
}

/// Handles a request whose caller is already authenticated as the API token
/// named `token` (e.g. a FreeSWITCH API command behind mod_xml_rpc's own
/// auth): no `Authorization` header is needed; the rate limit, idempotency
/// keys and webhooks use that token's name as usual.
pub fn route_as(state: &HttpState, req: &Request, token: &str) -> Response {
    let (name, response) = dispatch(state, req, Some(token));
    state.metrics.record(name, response.status);
    response
}

fn dispatch(state: &HttpState, req: &Request, trusted: Option<&str>) -> (&'static str, Response) {
    // `/calls/click-to-call` is literal; it wins over `/calls/{call_uuid}`.
    let mut found: Vec<(&RouteSpec, Option<&str>)> = ROUTES
        .iter()
        .filter_map(|r| matches(r.pattern, &req.path).map(|p| (r, p)))
        .collect();
    if found.iter().any(|(r, _)| !r.pattern.contains('{')) {
        found.retain(|(r, _)| !r.pattern.contains('{'));
    }
    if found.is_empty() {
        let e = ApiError::new(404, codes::NOT_FOUND, format!("no route for {}", req.path));
        return ("unknown", Response::error(&e));
    }
    let Some(&(spec, param)) = found.iter().find(|(r, _)| r.method == req.method) else {
        let allow: Vec<&str> = found.iter().map(|(r, _)| r.method).collect();
        let e = ApiError::new(
            405,
            codes::METHOD_NOT_ALLOWED,
            format!(
                "{} is not allowed here; use {}",
                req.method,
                allow.join(", ")
            ),
        );
        return (
            found[0].0.name,
            Response::error(&e).with_header("Allow", allow.join(", ")),
        );
    };
    let config = state.engine.config();
    // A call lookup another node of the cluster forwarded, on behalf of a token.
    let forwarded = match (spec.name, state.cluster()) {
        ("call_status" | "call_hangup", Some(c)) if trusted.is_none() => c.forwarded_token(
            req.header(lookup::NODE_SECRET_HEADER),
            req.header(lookup::NODE_TOKEN_HEADER),
        ),
        _ => None,
    };
    let token = if let Some(t) = trusted {
        t.to_string()
    } else if let Some(t) = &forwarded {
        t.clone()
    } else if spec.auth {
        match auth::authenticate(&config, req) {
            Ok(t) => t,
            Err(r) => return (spec.name, r),
        }
    } else {
        String::new()
    };
    let param = param.unwrap_or("");
    let response = match spec.name {
        "click_to_call" => click_to_call(state, &config, req, &token),
        "caller_ids" => caller_ids(&config),
        // Never forwarded again, nor from a FreeSWITCH thread (`pbx`):
        // those answer for this node's own calls.
        "call_status" => call_status(
            state,
            param,
            &token,
            forwarded.is_some() || trusted.is_some(),
        ),
        "call_hangup" => call_hangup(
            state,
            param,
            &token,
            forwarded.is_some() || trusted.is_some(),
        ),
        "health" => health(state),
        "metrics" => Response::text(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(state),
        ),
        _ => webhooks(state, spec.name, param),
    };
    (spec.name, response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert_eq!(matches("/a/{x}/b", "/a/1/b"), Some(Some("1")));
        assert_eq!(matches("/a/{x}/b", "/a//b"), None);
        assert_eq!(matches("/a/b", "/a/b/"), None);
        assert_eq!(matches("/health", "/health"), Some(None));
    }
}
