//! The request and response values the router works on, free of sockets.

use std::net::SocketAddr;

use serde_json::Value;

use crate::core::errors::ApiError;
use crate::core::request::ClickToCallRequest;

/// An HTTP request, fully read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, … as sent (methods are case-sensitive).
    pub method: String,
    /// The path without the query, e.g. `/api/pbx/caller-ids`.
    pub path: String,
    /// The query string without `?` (empty when none).
    pub query: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's address, when there is a socket.
    pub peer: Option<SocketAddr>,
    /// The body already parsed as a click-to-call request (the server does
    /// it once, to choose the thread; the handler takes it from here).
    pub(crate) click_to_call: Option<Result<ClickToCallRequest, ApiError>>,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: &str, target: &str) -> Request {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (target, ""),
        };
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            ..Request::default()
        }
    }

    /// Adds a header (builder style; the name is lower-cased).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self.click_to_call = None;
        self
    }

    /// The body as a click-to-call request (parsed now unless it was).
    pub fn click_to_call_body(&self) -> Result<ClickToCallRequest, ApiError> {
        match &self.click_to_call {
            Some(parsed) => parsed.clone(),
            None => ClickToCallRequest::from_json_bytes(&self.body),
        }
    }

    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A slice of a file to send as a response's body: the server reads it in
/// chunks as the client takes them, never whole into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSlice {
    pub path: std::path::PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// An HTTP response, before it is written out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Headers besides `Content-Length`, `Date` and `Connection` (the server adds those).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this response.
    pub close: bool,
    /// When set, the body is this file slice (and `body` is empty).
    pub file: Option<FileSlice>,
}

impl Response {
    /// A JSON response.
    pub fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            close: false,
            file: None,
        }
    }

    /// `{"data": …}` with `status`.
    pub fn data(status: u16, data: Value) -> Response {
        Response::json(status, &serde_json::json!({ "data": data }))
    }

    /// The one error shape: `{"error": {"code", "message", "fields"}}`.
    pub fn error(e: &ApiError) -> Response {
        Response {
            status: e.status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: e.to_json_bytes(),
            close: false,
            file: None,
        }
    }

    /// A plain-text response.
    pub fn text(status: u16, content_type: &str, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into_bytes(),
            close: false,
            file: None,
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json_body(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// The reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The first value of `name` (case-insensitive) in a header list.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
