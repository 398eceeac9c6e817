//! The API through FreeSWITCH's own mod_xml_rpc port: `POST
//! /api/pbx/calls/click-to-call` there runs the API command `pbx`, which
//! hands us what mod_xml_rpc put in the stream's `param_event`; we run the
//! same router and write the answer.
//!
//! Limits (mod_xml_rpc's, not ours): the HTTP status is always 200 (the real
//! one is in the `X-PBX-Status` header and in the JSON body), a POST body is
//! cut at 8 KiB, request headers (`Idempotency-Key`, `Authorization`) are not
//! passed on, and mod_xml_rpc's own authentication stands in for the Bearer
//! token: calls are rate-limited as the token `xml_rpc:<user>`.

use super::message::Request;
use super::router::route_as;
use super::state::HttpState;

/// What mod_xml_rpc tells an API command about the HTTP request (headers of
/// `stream->param_event`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlRpcCall {
    /// `HTTP-REQUESTLINE`, e.g. `POST /api/pbx/calls/click-to-call HTTP/1.1`.
    pub request_line: Option<String>,
    /// `HTTP-Path-Info`: the path after `/api/pbx/`, e.g. `calls/click-to-call`.
    pub path_info: Option<String>,
    /// `HTTP-QUERY`: the URL query, or for a POST the body.
    pub query: Option<String>,
    /// `HTTP-USER`: who mod_xml_rpc authenticated.
    pub user: Option<String>,
}

/// Runs one request from mod_xml_rpc; returns the text to write to the
/// stream: header lines (`Content-Type`, `X-PBX-Status`, …), a blank line, the body.
pub fn handle(state: &HttpState, call: &XmlRpcCall) -> String {
    let method = call
        .request_line
        .as_deref()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("GET");
    let path = format!(
        "/api/pbx/{}",
        call.path_info
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
    );
    let mut req = Request::new(method, &path);
    let query = call.query.clone().unwrap_or_default();
    if method == "GET" || method == "DELETE" {
        req.query = query;
    } else {
        req = req
            .with_header("Content-Type", "application/json")
            .with_body(query.into_bytes());
    }
    let token = match call.user.as_deref() {
        Some(u) if !u.is_empty() => format!("xml_rpc:{u}"),
        _ => "xml_rpc".to_string(),
    };
    let resp = route_as(state, &req, &token);
    let mut out = String::new();
    let mut typed = false;
    for (name, value) in &resp.headers {
        // Our own values, but never let one break the header block.
        if name.contains(['\r', '\n', ':']) || value.contains(['\r', '\n']) {
            continue;
        }
        typed |= name.eq_ignore_ascii_case("content-type");
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !typed {
        out.push_str("Content-Type: application/json\r\n");
    }
    out.push_str(&format!("X-PBX-Status: {}\r\n\r\n", resp.status));
    out.push_str(&String::from_utf8_lossy(&resp.body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::Config;
    use crate::core::engine::Engine;
    use crate::core::events::EventLog;
    use crate::sim::{SimOptions, SimSwitch};
    use crate::switch::leg_channel;
    use std::sync::Arc;

    fn state() -> (Arc<HttpState>, Arc<SimSwitch>) {
        let config = Config::from_xml(include_str!(
            "../../../conf/autoload_configs/zorio_c2c.conf.xml"
        ))
        .unwrap();
        let (tx, rx) = leg_channel();
        let sim = SimSwitch::new(SimOptions::demo(), tx);
        let engine = Engine::new(config, sim.clone(), rx, Arc::new(EventLog::default()));
        (HttpState::new(engine), sim)
    }

    fn split(out: String) -> (String, serde_json::Value) {
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (head.to_string(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn a_post_through_xml_rpc_places_the_call() {
        let (s, sim) = state();
        let out = handle(
            &s,
            &XmlRpcCall {
                request_line: Some("POST /api/pbx/calls/click-to-call HTTP/1.1".into()),
                path_info: Some("calls/click-to-call".into()),
                query: Some(r#"{"from_extension":"1001","to_phone":"0987654321"}"#.into()),
                user: Some("admin".into()),
            },
        );
        let (head, body) = split(out);
        assert!(head.contains("X-PBX-Status: 202"), "{head}");
        assert!(head.contains("Content-Type: application/json"), "{head}");
        assert_eq!(body["data"]["routing_mode"], "dialplan_default");
        assert_eq!(body["data"]["status"], "queued");
        s.engine.shutdown(std::time::Duration::from_secs(5));
        sim.stop();
    }

    #[test]
    fn errors_and_gets_keep_their_status_and_shape() {
        let (s, sim) = state();
        let post = |body: &str| XmlRpcCall {
            request_line: Some("POST /api/pbx/calls/click-to-call HTTP/1.1".into()),
            path_info: Some("calls/click-to-call".into()),
            query: Some(body.into()),
            user: None,
        };
        let (head, body) = split(handle(&s, &post(r#"{"from_extension":"1001""#)));
        assert!(head.contains("X-PBX-Status: 400"));
        assert_eq!(body["error"]["code"], "malformed_json");
        let (head, body) = split(handle(&s, &post(r#"{"to_phone":"12"}"#)));
        assert!(head.contains("X-PBX-Status: 422"));
        assert_eq!(body["error"]["fields"].as_array().unwrap().len(), 2);
        let get = XmlRpcCall {
            request_line: Some("GET /api/pbx/caller-ids HTTP/1.1".into()),
            path_info: Some("caller-ids".into()),
            ..XmlRpcCall::default()
        };
        let (head, body) = split(handle(&s, &get));
        assert!(head.contains("X-PBX-Status: 200"));
        assert_eq!(body["data"][0]["number"], "0900000020");
        let nowhere = XmlRpcCall {
            path_info: Some("nowhere".into()),
            ..XmlRpcCall::default()
        };
        assert!(handle(&s, &nowhere).contains("X-PBX-Status: 404"));
        sim.stop();
    }
}
