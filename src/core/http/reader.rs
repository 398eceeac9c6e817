//! Reading one request off a connection: the head with httparse, then the
//! body, within the size limits and the read / idle timeouts.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::core::config::HttpSettings;
use crate::core::errors::codes;

use super::codes as http_codes;
use super::message::{Request, Response};
use super::server::error;

/// Most header lines in one request.
const MAX_HEADER_LINES: usize = 64;

enum Fill {
    Data,
    Closed,
    TimedOut,
}

/// Reads more bytes into `buf`, waiting at most until `deadline`.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant) -> Fill {
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Fill::TimedOut;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut chunk) {
            Ok(0) => return Fill::Closed,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Fill::Data;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Fill::Closed,
        }
    }
}

struct Head {
    method: String,
    target: String,
    version: u8,
    headers: Vec<(String, String)>,
    len: usize,
}

fn parse_head(buf: &[u8], max: usize) -> Result<Option<Head>, Response> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADER_LINES];
    let mut r = httparse::Request::new(&mut headers);
    let too_large = || {
        error(
            431,
            http_codes::HEADERS_TOO_LARGE,
            &format!("the request head exceeds {max} bytes"),
        )
    };
    match r.parse(buf) {
        Ok(httparse::Status::Complete(len)) => {
            if len > max {
                return Err(too_large());
            }
            Ok(Some(Head {
                method: r.method.unwrap_or("").to_string(),
                target: r.path.unwrap_or("").to_string(),
                version: r.version.unwrap_or(1),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                len,
            }))
        }
        Ok(httparse::Status::Partial) if buf.len() > max => Err(too_large()),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(too_large()),
        Err(e) => Err(error(
            400,
            codes::BAD_REQUEST,
            &format!("malformed HTTP request: {e}"),
        )),
    }
}

/// Reads one request. `Ok(None)`: the connection closed or stayed idle past
/// the idle timeout. `Err`: the answer to send before closing.
pub(crate) fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    settings: &HttpSettings,
) -> Result<Option<(Request, bool)>, Response> {
    // The whole request must arrive within read_timeout of its first byte.
    let mut started = (!buf.is_empty()).then(Instant::now);
    let idle_until = Instant::now() + settings.idle_timeout;
    let timeout = || {
        error(
            408,
            http_codes::REQUEST_TIMEOUT,
            "the request did not arrive in time",
        )
    };
    let head = loop {
        if !buf.is_empty() {
            if let Some(head) = parse_head(buf, settings.max_header_bytes)? {
                break head;
            }
        }
        let deadline = started.map_or(idle_until, |s| s + settings.read_timeout);
        match fill(stream, buf, deadline) {
            Fill::Data => {
                started.get_or_insert_with(Instant::now);
            }
            Fill::Closed => return Ok(None),
            Fill::TimedOut if started.is_some() => return Err(timeout()),
            Fill::TimedOut => return Ok(None),
        }
    };
    let started = started.unwrap_or_else(Instant::now);
    let mut req = Request::new(&head.method, &head.target);
    req.headers = head.headers;
    if req.header("transfer-encoding").is_some() {
        return Err(error(
            501,
            http_codes::NOT_IMPLEMENTED,
            "Transfer-Encoding is not supported; send Content-Length",
        ));
    }
    let lengths: Vec<&str> = req
        .headers
        .iter()
        .filter(|(n, _)| n == "content-length")
        .map(|(_, v)| v.trim())
        .collect();
    let length = match lengths.as_slice() {
        [] => 0,
        [one] => one
            .parse::<usize>()
            .map_err(|_| error(400, codes::BAD_REQUEST, "Content-Length is not a number"))?,
        _ => {
            return Err(error(
                400,
                codes::BAD_REQUEST,
                "more than one Content-Length",
            ))
        }
    };
    if length > settings.max_body_bytes {
        return Err(error(
            413,
            codes::PAYLOAD_TOO_LARGE,
            &format!("the body exceeds {} bytes", settings.max_body_bytes),
        ));
    }
    let total = head.len + length;
    let expects_continue = req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && buf.len() < total {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    while buf.len() < total {
        match fill(stream, buf, started + settings.read_timeout) {
            Fill::Data => {}
            Fill::Closed => return Ok(None),
            Fill::TimedOut => return Err(timeout()),
        }
    }
    req.body = buf[head.len..total].to_vec();
    buf.drain(..total);
    Ok(Some((req, head.version == 0)))
}
