//! The pure router: `route(state, &Request) -> Response`. No sockets here, so
//! any transport (our server, a FreeSWITCH API command) can call it.

use std::time::Instant;

use crate::core::directory::{NODE_SECRET_HEADER, NODE_TOKEN_HEADER};
use crate::core::errors::{codes, ApiError};

use super::auth;
use super::handlers::{call_hangup, call_status, caller_ids, click_to_call, health, webhooks};
use super::message::{Request, Response};
use super::metrics;
use super::recordings;
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
    spec(
        "call_recording",
        "GET",
        "/api/pbx/calls/{call_uuid}/recording",
        true,
        false,
    ),
    spec(
        "call_recording_delete",
        "DELETE",
        "/api/pbx/calls/{call_uuid}/recording",
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

/// The path parameter of a matched pattern, if it has one. A pattern has
/// at most one `{name}`, a whole segment.
fn matches<'a>(pattern: &str, path: &'a str) -> Option<Option<&'a str>> {
    let Some(open) = pattern.find('{') else {
        return (pattern == path).then_some(None);
    };
    let rest = path.strip_prefix(&pattern[..open])?;
    let tail = &pattern[open + pattern[open..].find('}')? + 1..];
    let (segment, after) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (!segment.is_empty() && after == tail).then_some(Some(segment))
}

/// Handles one request. Every answer is counted in the metrics.
pub fn route(state: &HttpState, req: &Request) -> Response {
    let began = Instant::now();
    let (name, response) = dispatch(state, req, None);
    state
        .metrics
        .record_timed(name, response.status, began.elapsed());
    response
}

/// Handles a request whose caller is already authenticated as the API token
/// named `token` (e.g. a FreeSWITCH API command behind mod_xml_rpc's own
/// auth): no `Authorization` header is needed; the rate limit, idempotency
/// keys and webhooks use that token's name as usual.
pub fn route_as(state: &HttpState, req: &Request, token: &str) -> Response {
    let began = Instant::now();
    let (name, response) = dispatch(state, req, Some(token));
    state
        .metrics
        .record_timed(name, response.status, began.elapsed());
    response
}

fn dispatch(state: &HttpState, req: &Request, trusted: Option<&str>) -> (&'static str, Response) {
    // `/calls/click-to-call` is literal; it wins over `/calls/{call_uuid}`.
    let literal = ROUTES.iter().any(|r| r.pattern == req.path);
    let found = || {
        ROUTES
            .iter()
            .filter(move |r| !literal || !r.pattern.contains('{'))
            .filter_map(|r| matches(r.pattern, &req.path).map(|p| (r, p)))
    };
    let Some((spec, param)) = found().find(|(r, _)| r.method == req.method) else {
        let allow: Vec<&str> = found().map(|(r, _)| r.method).collect();
        let Some(first) = found().next() else {
            let e = ApiError::new(404, codes::NOT_FOUND, format!("no route for {}", req.path));
            return ("unknown", Response::error(&e));
        };
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
            first.0.name,
            Response::error(&e).with_header("Allow", allow.join(", ")),
        );
    };
    let config = state.engine.config();
    // A call lookup another node of the cluster forwarded, on behalf of a token.
    let forwarded = match spec.name {
        "call_status" | "call_hangup" if trusted.is_none() => state.directory().forwarded_token(
            req.header(NODE_SECRET_HEADER),
            req.header(NODE_TOKEN_HEADER),
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
        "call_recording" => recordings::serve(state, req, param, &token),
        "call_recording_delete" => recordings::erase(state, param, &token),
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
        assert_eq!(matches("/a/{x}", "/a/1"), Some(Some("1")));
        assert_eq!(matches("/a/{x}", "/a/1/"), None);
        assert_eq!(matches("/a/{x}/b", "/a/1/bc"), None);
        assert_eq!(matches("/a/{x}/b", "/b/1/b"), None);
    }
}
