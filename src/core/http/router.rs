//! The pure router: `route(state, &Request) -> Response`. No sockets here, so
//! any transport (our server, a FreeSWITCH API command) can call it.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::core::config::Config;
use crate::core::errors::{codes, ApiError, FieldError};
use crate::core::request::ClickToCallRequest;

use super::auth;
use super::codes as http_codes;
use super::idempotency::{Claim, MAX_KEY_LEN};
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
    let token = if let Some(t) = trusted {
        t.to_string()
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
        "call_status" => call_status(state, param),
        "call_hangup" => call_hangup(state, param),
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

/// Whether a `Content-Type` is JSON: `application/json`, optionally with
/// `charset=utf-8`.
pub fn is_json_content_type(value: Option<&str>) -> bool {
    let Some(value) = value else { return false };
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        Some(_) => true,
        None => p.trim().is_empty(),
    })
}

fn click_to_call(state: &HttpState, config: &Config, req: &Request, token: &str) -> Response {
    if req.body.len() > config.http.max_body_bytes {
        return Response::error(&ApiError::new(
            413,
            codes::PAYLOAD_TOO_LARGE,
            format!("the body exceeds {} bytes", config.http.max_body_bytes),
        ));
    }
    if !is_json_content_type(req.header("content-type")) {
        return Response::error(&ApiError::new(
            415,
            codes::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    }
    let pending = match req.header("idempotency-key") {
        None => None,
        Some(key) => {
            let valid = (1..=MAX_KEY_LEN).contains(&key.len())
                && key.bytes().all(|b| (0x21..=0x7e).contains(&b));
            if !valid {
                return Response::error(&ApiError::validation(vec![FieldError {
                    field: "Idempotency-Key".into(),
                    code: "invalid_format",
                    message: format!("must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
                }]));
            }
            match state
                .idempotency
                .claim(token, key, &req.body, config.http.idempotency_ttl)
            {
                Claim::Proceed(p) => Some(p),
                Claim::Replay(r) => return r.with_header("Idempotent-Replayed", "true"),
                Claim::Conflict(m) => {
                    return Response::error(&ApiError::new(409, codes::IDEMPOTENCY_CONFLICT, m))
                }
            }
        }
    };
    let mut limit_headers = Vec::new();
    if let Some(limit) = config.http.rate_limit_per_minute {
        let d = state.limiter.check(token, limit);
        limit_headers = d.headers();
        if !d.allowed {
            let mut r = Response::error(&ApiError::new(
                429,
                codes::RATE_LIMITED,
                format!("more than {limit} click-to-call requests per minute for this token"),
            ));
            r.headers.extend(limit_headers);
            if let Some(p) = pending {
                p.finish(&r);
            }
            return r;
        }
    }
    let placed = ClickToCallRequest::from_json_bytes(&req.body)
        .and_then(|r| state.engine.place(&r, Some(token)));
    let response = match placed {
        Ok(accepted) => {
            let location = format!("/api/pbx/calls/{}", accepted.call_uuid);
            Response::data(202, json!(accepted)).with_header("Location", location)
        }
        Err(e) => Response::error(&e),
    };
    if let Some(p) = pending {
        p.finish(&response);
    }
    let mut response = response;
    response.headers.extend(limit_headers);
    response
}

fn caller_ids(config: &Config) -> Response {
    let pool: Vec<Value> = config
        .caller_ids
        .iter()
        .map(|n| {
            let trunk = n.trunk_id.and_then(|id| config.trunk_by_id(id));
            json!({
                "number": n.number,
                "description": n.description,
                "trunk_id": n.trunk_id,
                "trunk_name": trunk.map(|t| t.name.clone()),
                "trunk_active": trunk.map(|t| t.active),
            })
        })
        .collect();
    Response::data(200, Value::Array(pool))
}

fn call_not_found(raw: &str) -> Response {
    Response::error(&ApiError::new(
        404,
        codes::CALL_NOT_FOUND,
        format!("no call {raw}"),
    ))
}

fn call_status(state: &HttpState, raw: &str) -> Response {
    match Uuid::parse_str(raw).ok().and_then(|u| state.engine.call(u)) {
        Some(c) => Response::data(200, c.status_json()),
        None => call_not_found(raw),
    }
}

fn call_hangup(state: &HttpState, raw: &str) -> Response {
    let Ok(uuid) = Uuid::parse_str(raw) else {
        return call_not_found(raw);
    };
    match state.engine.hangup(uuid) {
        Ok(()) => match state.engine.call(uuid) {
            Some(c) => Response::data(202, c.status_json()),
            None => call_not_found(raw),
        },
        Err(e) => Response::error(&e),
    }
}

fn health(state: &HttpState) -> Response {
    if state.engine.is_shutting_down() {
        return Response::error(&ApiError::new(
            503,
            codes::SHUTTING_DOWN,
            "the module is shutting down",
        ));
    }
    Response::json(
        200,
        &json!({"status": "ok", "active_calls": state.engine.active_calls().len()}),
    )
}

fn webhooks(state: &HttpState, name: &str, id: &str) -> Response {
    let Some(admin) = state.webhook_admin() else {
        return Response::error(&ApiError::new(
            503,
            http_codes::WEBHOOKS_UNAVAILABLE,
            "no webhook service is running",
        ));
    };
    let result = match name {
        "webhooks_status" => Ok((200, admin.status())),
        "dead_letters" => Ok((200, Value::Array(admin.dead_letters()))),
        "dead_letter_replay" => admin.replay(id).map(|v| (202, v)),
        _ => admin.replay_all().map(|n| (202, json!({ "replayed": n }))),
    };
    match result {
        Ok((status, data)) => Response::data(status, data),
        Err(e) => Response::error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_content_types() {
        assert_eq!(matches("/a/{x}/b", "/a/1/b"), Some(Some("1")));
        assert_eq!(matches("/a/{x}/b", "/a//b"), None);
        assert_eq!(matches("/a/b", "/a/b/"), None);
        assert_eq!(matches("/health", "/health"), Some(None));
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=UTF-8"
        )));
        assert!(is_json_content_type(Some(
            "application/json;charset=\"utf-8\""
        )));
        assert!(!is_json_content_type(Some(
            "application/json; charset=latin1"
        )));
        assert!(!is_json_content_type(Some("text/plain")));
        assert!(!is_json_content_type(Some("application/jsonx")));
        assert!(!is_json_content_type(None));
    }
}
