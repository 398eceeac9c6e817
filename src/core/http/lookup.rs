//! Finding the call a request names, wherever it lives, and answering for
//! one that is not here (its owner's answer, 503, or 404): the call routes
//! and the recording routes share it.

use uuid::Uuid;

use super::codes as http_codes;
use super::message::Response;
use super::state::HttpState;
use crate::core::admission::Answer;
use crate::core::directory::Found;
use crate::core::errors::{codes, ApiError};

/// A key's stored answer, sent again.
pub(super) fn replayed(a: Answer) -> Response {
    Response {
        status: a.status,
        headers: a.headers,
        body: a.body,
        close: false,
        file: None,
    }
}

pub(super) fn call_not_found(raw: &str) -> Response {
    Response::error(&ApiError::new(
        404,
        codes::CALL_NOT_FOUND,
        format!("no call {raw}"),
    ))
}

/// The call `raw` names, wherever it lives, as `token` may see it; a request
/// forwarded by another node (or from a FreeSWITCH thread) is never forwarded.
pub(super) fn find(
    state: &HttpState,
    method: &str,
    raw: &str,
    token: &str,
    forwarded: bool,
) -> Found {
    match Uuid::parse_str(raw) {
        Ok(uuid) => state.directory().find(uuid, token, method, !forwarded),
        Err(_) => Found::Nowhere,
    }
}

/// The answer for a call that is not here.
pub(super) fn not_here(found: Found, raw: &str) -> Response {
    match found {
        Found::Elsewhere(a) => replayed(a),
        Found::Unreachable(e) => Response::error(&ApiError::new(
            503,
            http_codes::CALL_OWNER_UNAVAILABLE,
            format!("call {raw} belongs to another node, which cannot be asked now: {e}"),
        ))
        .with_header("Retry-After", "5"),
        Found::Here(_) | Found::Nowhere => call_not_found(raw),
    }
}
