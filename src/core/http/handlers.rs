//! The handlers behind the routes, one per operation.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::core::admission::keys::MAX_KEY_LEN;
use crate::core::admission::{Answer, Ask, Verdict};
use crate::core::config::Config;
use crate::core::directory::Found;
use crate::core::engine::Accepted;
use crate::core::errors::{codes, ApiError, FieldError};
use crate::core::gcra::Decision;

use super::codes as http_codes;
use super::lookup::{call_not_found, find, not_here, replayed};
use super::message::{Request, Response};
use super::state::HttpState;

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

pub(crate) fn click_to_call(
    state: &HttpState,
    config: &Config,
    req: &Request,
    token: &str,
) -> Response {
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
    let key = match req.header("idempotency-key") {
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
            Some(key)
        }
    };
    // One admission whatever the backend: the key's claim (or replay), the
    // token's rate limit and, in a cluster, the call's owner record.
    let call_uuid = Uuid::new_v4();
    let verdict = state.admission().admit(&Ask {
        token,
        key,
        body: &req.body,
        ttl: config.http.idempotency_ttl,
        limit: config.http.rate_limit_per_minute,
        call_uuid,
    });
    let admitted = match verdict {
        Verdict::Proceed(a) => a,
        Verdict::Limited(d) => return rate_limited(&d),
        Verdict::Replay(a) => return replayed(a).with_header("Idempotent-Replayed", "true"),
        Verdict::Conflict(m) => {
            return Response::error(&ApiError::new(409, codes::IDEMPOTENCY_CONFLICT, m))
        }
        Verdict::Unavailable(e) => return key_unavailable(&e),
    };
    // The key's answer is committed with the call, before the 202 leaves
    // (where the backend keeps it in the durable store).
    let durable = |accepted: &Accepted| admitted.durable(&answer(&accepted_response(accepted)));
    let placed = req
        .click_to_call_body()
        .and_then(|r| state.engine.place_as(call_uuid, &r, Some(token), &durable));
    let mut response = placed_response(placed);
    let headers = admitted.headers();
    admitted.finish(&answer(&response));
    response.headers.extend(headers);
    response
}

/// What a key keeps of a response.
fn answer(r: &Response) -> Answer {
    Answer {
        status: r.status,
        headers: r.headers.clone(),
        body: r.body.clone(),
    }
}

/// 429, with the limit's headers.
fn rate_limited(d: &Decision) -> Response {
    let mut r = Response::error(&ApiError::new(
        429,
        codes::RATE_LIMITED,
        format!(
            "more than {} click-to-call requests per minute for this token",
            d.limit
        ),
    ));
    r.headers.extend(d.headers());
    r
}

/// The answer to a placement: 202, or the engine's refusal.
fn placed_response(placed: Result<Accepted, ApiError>) -> Response {
    match placed {
        Ok(accepted) => accepted_response(&accepted),
        Err(e) => {
            let r = Response::error(&e);
            match e.code {
                codes::SPOOL_FULL => r.with_header("Retry-After", SPOOL_FULL_RETRY_AFTER),
                codes::STORE_UNAVAILABLE => r.with_header("Retry-After", "5"),
                _ => r,
            }
        }
    }
}

/// 503: the key could not be checked, so the call is not placed.
fn key_unavailable(e: &str) -> Response {
    Response::error(&ApiError::new(
        503,
        codes::STORE_UNAVAILABLE,
        format!("the Idempotency-Key could not be checked: {e}"),
    ))
    .with_header("Retry-After", "5")
}

/// Seconds a client is told to wait when the spool is full: the CRM must
/// take a good part of its backlog first.
pub const SPOOL_FULL_RETRY_AFTER: &str = "60";

/// The 202 of an accepted call.
fn accepted_response(accepted: &Accepted) -> Response {
    let location = format!("/api/pbx/calls/{}", accepted.call_uuid);
    Response::data(202, json!(accepted)).with_header("Location", location)
}

pub(crate) fn caller_ids(config: &Config) -> Response {
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

pub(crate) fn call_status(state: &HttpState, raw: &str, token: &str, forwarded: bool) -> Response {
    match find(state, "GET", raw, token, forwarded) {
        Found::Here(mut c) => {
            if let Some(r) = c.recording.as_mut() {
                super::recordings::note_purged(r);
            }
            Response::data(200, c.status_json())
        }
        other => not_here(other, raw),
    }
}

pub(crate) fn call_hangup(state: &HttpState, raw: &str, token: &str, forwarded: bool) -> Response {
    let uuid = match find(state, "DELETE", raw, token, forwarded) {
        Found::Here(c) => c.call_uuid,
        other => return not_here(other, raw),
    };
    match state.engine.hangup(uuid) {
        Ok(()) => match state.engine.call(uuid) {
            Some(c) => Response::data(202, c.status_json()),
            None => call_not_found(raw),
        },
        Err(e) => Response::error(&e),
    }
}

pub(crate) fn health(state: &HttpState) -> Response {
    if state.engine.is_shutting_down() {
        return Response::error(&ApiError::new(
            503,
            codes::SHUTTING_DOWN,
            "the module is shutting down",
        ));
    }
    let mut body = json!({"status": "ok", "active_calls": state.engine.active_count()});
    if let Some(c) = state.cluster() {
        body["cluster"] = c.health_json();
    }
    Response::json(200, &body)
}

pub(crate) fn webhooks(state: &HttpState, name: &str, id: &str) -> Response {
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
    fn content_types() {
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
