//! `GET` and `DELETE /api/pbx/calls/{call_uuid}/recording`: the file of a
//! call's recording, to the token that placed the call only (another
//! token's call does not exist for it), with `ETag`, `Range` (206 / 416)
//! and `If-None-Match` (304), streamed from disk.

use std::path::Path;

use crate::core::directory::Found;
use crate::core::errors::{codes, ApiError};
use crate::core::recording::{Recording, RecordingState};

use super::lookup::{find, not_here};
use super::message::{FileSlice, Request, Response};
use super::range::{self, RangeAsk};
use super::state::HttpState;

/// The `Content-Type` of a recording's format.
fn content_type(format: &str) -> &'static str {
    match format {
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "flac" => "audio/flac",
        _ => "application/octet-stream",
    }
}

/// An available recording whose file is gone (`recording-retention`
/// purged it) reads as deleted.
pub(super) fn note_purged(r: &mut Recording) {
    if r.state == RecordingState::Available && !Path::new(&r.path).exists() {
        r.state = RecordingState::Deleted;
        r.note = Some("purged after recording-retention".into());
    }
}

fn not_found(message: String) -> Response {
    Response::error(&ApiError::new(404, codes::RECORDING_NOT_FOUND, message))
}

/// `GET …/recording`.
pub(super) fn serve(state: &HttpState, req: &Request, raw: &str, token: &str) -> Response {
    let c = match find(state, "GET", raw, token, false) {
        Found::Here(c) => c,
        other => return not_here(other, raw),
    };
    let Some(mut rec) = c.recording else {
        return not_found(format!("call {raw} was not recorded"));
    };
    note_purged(&mut rec);
    match rec.state {
        RecordingState::Available => {}
        RecordingState::Recording => {
            return Response::error(&ApiError::new(
                409,
                codes::RECORDING_IN_PROGRESS,
                "the call is still being recorded: ask again once it ended",
            ))
        }
        s => {
            let why = rec.note.unwrap_or_default();
            return not_found(format!(
                "the recording of call {raw} is {} ({why})",
                s.as_str()
            ));
        }
    }
    let Ok(meta) = std::fs::metadata(&rec.path) else {
        return not_found(format!("the recording of call {raw} is gone"));
    };
    let size = meta.len();
    let etag = match &rec.sha256 {
        Some(sha) => format!("\"{sha}\""),
        None => format!("\"{size:x}\""),
    };
    let headers = |r: Response| {
        r.with_header("ETag", etag.clone())
            .with_header("Accept-Ranges", "bytes")
    };
    let matches_tag = req.header("if-none-match").is_some_and(|v| {
        v.split(',').any(|t| {
            t.trim() == etag || t.trim() == "*" || t.trim().trim_start_matches("W/") == etag
        })
    });
    if matches_tag {
        return headers(Response::text(
            304,
            content_type(&rec.format),
            String::new(),
        ));
    }
    let ask = range::parse(req.header("range"), size);
    let (status, offset, len) = match ask {
        RangeAsk::Whole => (200, 0, size),
        RangeAsk::Part { start, end } => (206, start, end - start + 1),
        RangeAsk::Unsatisfiable => {
            let e = ApiError::new(
                416,
                codes::RANGE_NOT_SATISFIABLE,
                format!("the recording has {size} bytes"),
            );
            return headers(Response::error(&e))
                .with_header("Content-Range", format!("bytes */{size}"));
        }
    };
    let mut r = headers(Response::text(
        status,
        content_type(&rec.format),
        String::new(),
    ))
    .with_header(
        "Content-Disposition",
        format!("attachment; filename=\"{}.{}\"", c.call_uuid, rec.format),
    );
    if status == 206 {
        r = r.with_header(
            "Content-Range",
            format!("bytes {offset}-{}/{size}", offset + len - 1),
        );
    }
    r.file = Some(FileSlice {
        path: rec.path.into(),
        offset,
        len,
    });
    r
}

/// `DELETE …/recording`: erases the file; the call's record says so.
pub(super) fn erase(state: &HttpState, raw: &str, token: &str) -> Response {
    let c = match find(state, "DELETE", raw, token, false) {
        Found::Here(c) => c,
        other => return not_here(other, raw),
    };
    match state.engine.erase_recording(c.call_uuid) {
        Ok(c) => Response::data(200, c.status_json()),
        Err(e) => Response::error(&e),
    }
}
