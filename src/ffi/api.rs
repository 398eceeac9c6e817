//! The fs_cli commands: `c2c` (the core's command) and `pbx` (the HTTP API's
//! pure router, reached without HTTP).

use std::ffi::{c_char, c_int, CString};
use std::sync::{Arc, LazyLock};

use crate::core::admission::Admission;
use crate::core::command::{self, CommandHost};
use crate::core::config::{Config, ConfigError};
use crate::core::engine::Engine;
use crate::core::http::xmlrpc::{self, XmlRpcCall};
use crate::core::http::{route_as, HttpState, Request};
use crate::core::webhooks::{self, WebhookService};

use super::config_load::read_config;
use super::cstr::{borrowed, c_string};
use super::globals;
use super::guard::guard;
use super::log;
use super::sys;

/// Syntax strings FreeSWITCH keeps pointers to: alive as long as the library.
pub(crate) static C2C_USAGE: LazyLock<CString> = LazyLock::new(|| c_string(&command::usage()));

/// What `c2c` needs beyond the engine.
struct Host {
    webhooks: Arc<WebhookService>,
    http: Arc<HttpState>,
}

impl CommandHost for Host {
    fn webhooks(&self, args: &str) -> String {
        webhooks::cli::cli(&self.webhooks, args)
    }

    fn admission(&self) -> Option<Arc<dyn Admission>> {
        Some(self.http.admission())
    }

    fn load_config(&self) -> Result<Config, ConfigError> {
        let r = read_config();
        match &r {
            Ok(_) => log::info("config reloaded"),
            Err(e) => log::error(&format!("config refused, previous one kept: {e}")),
        }
        r
    }

    fn apply_config(&self, engine: &Engine, config: Config) -> Result<(), String> {
        crate::app::apply_config(engine, &self.webhooks, &self.http, config)
    }
}

fn write(stream: *mut sys::zc2c_stream, text: &str) {
    let t = c_string(text);
    // SAFETY: `stream` is the stream FreeSWITCH handed this API call (alive
    // for the call); the shim writes `t` with "%s".
    unsafe { sys::zc2c_stream_write(stream, t.as_ptr()) };
}

/// `c2c …`: runs [`command::execute`]. `cmd` may be NULL.
pub(crate) extern "C" fn c2c_api(cmd: *const c_char, stream: *mut sys::zc2c_stream) -> c_int {
    guard("c2c API", sys::ZC2C_STATUS_GENERR as c_int, || {
        // SAFETY: FreeSWITCH passes NULL or a NUL-terminated command for this call.
        let cmd = unsafe { borrowed(cmd) }.unwrap_or_default();
        let out = match globals::services() {
            Some(s) => command::execute(
                &s.engine,
                &Host {
                    webhooks: s.webhooks,
                    http: s.http,
                },
                &cmd,
            ),
            None => NOT_RUNNING.to_string(),
        };
        write(stream, &out);
        sys::ZC2C_STATUS_SUCCESS as c_int
    })
}

/// `pbx …`: the HTTP API's pure router without our listener. Behind
/// mod_xml_rpc (`/api/pbx/<path>`) it reads the request from the stream's
/// `param_event` ([`xmlrpc::handle`]); from fs_cli / ESL it reads
/// `pbx <METHOD> <path> [<JSON body>]` (callers FreeSWITCH already authenticated).
pub(crate) extern "C" fn pbx_api(cmd: *const c_char, stream: *mut sys::zc2c_stream) -> c_int {
    guard("pbx API", sys::ZC2C_STATUS_GENERR as c_int, || {
        // SAFETY: FreeSWITCH passes NULL or a NUL-terminated command for this call.
        let cmd = unsafe { borrowed(cmd) }.unwrap_or_default();
        let param = |name: &str| {
            let n = c_string(name);
            // SAFETY: `stream` is alive for this API call; the header (if any)
            // is borrowed from its param_event and copied at once.
            unsafe { borrowed(sys::zc2c_stream_param(stream, n.as_ptr())) }
        };
        let xml_rpc = param("HTTP-REQUESTLINE").map(|request_line| XmlRpcCall {
            request_line: Some(request_line),
            path_info: param("HTTP-Path-Info"),
            query: param("HTTP-QUERY"),
            user: param("HTTP-USER"),
        });
        let out = match (globals::services(), xml_rpc) {
            (None, _) => NOT_RUNNING.to_string(),
            (Some(s), Some(call)) => xmlrpc::handle(&s.http, &call),
            (Some(s), None) => match pbx_request(&cmd) {
                Some(req) => {
                    let r = route_as(&s.http, &req, PBX_TOKEN);
                    format!("{} {}\n", r.status, String::from_utf8_lossy(&r.body))
                }
                None => format!("-USAGE: {PBX_USAGE}\n"),
            },
        };
        write(stream, &out);
        sys::ZC2C_STATUS_SUCCESS as c_int
    })
}

/// What `pbx` answers for anything it cannot read.
pub(crate) const PBX_USAGE: &str = "pbx <METHOD> <path> [<JSON body>]";

/// Token name the `pbx` command's requests run as (rate limit, idempotency, webhooks).
const PBX_TOKEN: &str = "fs_cli";

const NOT_RUNNING: &str = "-ERR not_available mod_zorio_c2c is not running\n";

/// `POST /api/pbx/calls/click-to-call {...}` as a router request.
fn pbx_request(cmd: &str) -> Option<Request> {
    let cmd = cmd.trim();
    let (method, rest) = cmd.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (target, body) = rest
        .split_once(char::is_whitespace)
        .map_or((rest, ""), |(t, b)| (t, b.trim()));
    if !method.chars().all(|c| c.is_ascii_uppercase()) || !target.starts_with('/') {
        return None;
    }
    let mut req = Request::new(method, target);
    if !body.is_empty() {
        req = req
            .with_header("content-type", "application/json")
            .with_body(body.as_bytes().to_vec());
    }
    Some(req)
}

#[cfg(test)]
mod tests {
    use super::pbx_request;

    #[test]
    fn pbx_lines_become_router_requests() {
        let r =
            pbx_request(r#"POST /api/pbx/calls/click-to-call {"from_extension": "1001"}"#).unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("POST", "/api/pbx/calls/click-to-call")
        );
        assert_eq!(r.body, br#"{"from_extension": "1001"}"#.to_vec());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let r = pbx_request("GET /api/pbx/calls/abc?x=1").unwrap();
        assert_eq!(
            (r.path.as_str(), r.query.as_str()),
            ("/api/pbx/calls/abc", "x=1")
        );
        assert!(r.body.is_empty());
        assert!(pbx_request("").is_none());
        assert!(pbx_request("GET").is_none());
        assert!(pbx_request("get /x").is_none());
        assert!(pbx_request("GET x").is_none());
    }
}
