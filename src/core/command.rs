//! The fs_cli command `c2c`: the same handler and error codes as the HTTP API,
//! answering `+OK …` / `-ERR <code> <message>` as FreeSWITCH modules do.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use super::config::{Config, ConfigError};
use super::engine::Engine;
use super::errors::ApiError;
use super::request::ClickToCallRequest;

/// The one-line usage answered for anything the command does not know.
pub const USAGE: &str = "-USAGE: c2c <from_extension> <to_phone> | c2c <JSON request body> | \
c2c status [<call_uuid>] | c2c hangup <call_uuid> | c2c reload | c2c webhooks [status|dead|replay <id>|replay-all]";

/// What the command needs beyond the engine.
pub trait CommandHost {
    /// Reads the config file again (whole, or an error naming the element).
    fn load_config(&self) -> Result<Config, ConfigError>;
    /// Puts a freshly loaded config in force (the module's host also moves
    /// webhook destinations over: [`crate::app::App::apply_config`]).
    fn apply_config(&self, engine: &Engine, config: Config) -> Result<(), String> {
        engine.set_config(config);
        Ok(())
    }
    /// `c2c webhooks …`.
    fn webhooks(&self, args: &str) -> String {
        let _ = args;
        "-ERR not_available webhooks are not running".to_string()
    }
}

/// Runs one `c2c` command line; `cmd` may be empty (FreeSWITCH passes NULL).
pub fn execute(engine: &Arc<Engine>, host: &dyn CommandHost, cmd: &str) -> String {
    let cmd = cmd.trim();
    if cmd.starts_with('{') {
        return place(engine, ClickToCallRequest::from_json_bytes(cmd.as_bytes()));
    }
    let mut words = cmd.split_whitespace();
    let first = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    match (first, rest.as_slice()) {
        ("status", []) => {
            let calls: Vec<_> = engine
                .active_calls()
                .iter()
                .map(|c| c.status_json())
                .collect();
            format!(
                "+OK {} calls in flight\n{}\n",
                calls.len(),
                pretty(&json!(calls))
            )
        }
        ("status", [id]) => match parse_uuid(id).and_then(|u| {
            engine.call(u).ok_or_else(|| {
                ApiError::new(
                    404,
                    super::errors::codes::CALL_NOT_FOUND,
                    format!("no call {u}"),
                )
            })
        }) {
            Ok(c) => format!("+OK {}\n{}\n", c.call_uuid, pretty(&c.status_json())),
            Err(e) => e.to_cli() + "\n",
        },
        ("hangup", [id]) => match parse_uuid(id).and_then(|u| engine.hangup(u).map(|_| u)) {
            Ok(u) => format!("+OK hangup requested for {u}\n"),
            Err(e) => e.to_cli() + "\n",
        },
        ("reload", []) => match host.load_config() {
            Ok(c) => {
                let summary = format!(
                    "{} trunks, {} LCR routes, {} caller ids, {} tokens",
                    c.trunks.len(),
                    c.lcr.len(),
                    c.caller_ids.len(),
                    c.tokens.len()
                );
                match host.apply_config(engine, c) {
                    Ok(()) => format!("+OK config reloaded: {summary}\n"),
                    Err(e) => format!("-ERR config_invalid {e} (previous config kept)\n"),
                }
            }
            Err(e) => format!("-ERR config_invalid {e} (previous config kept)\n"),
        },
        ("webhooks", args) => host.webhooks(&args.join(" ")),
        (ext, [phone]) if !ext.is_empty() => {
            let body = json!({"from_extension": ext, "to_phone": phone});
            place(engine, ClickToCallRequest::from_value(&body))
        }
        _ => USAGE.to_string() + "\n",
    }
}

fn place(engine: &Arc<Engine>, req: Result<ClickToCallRequest, ApiError>) -> String {
    match req.and_then(|r| engine.place(&r, None)) {
        Ok(a) => format!("+OK {}\n{}\n", a.call_uuid, pretty(&json!({ "data": a }))),
        Err(e) => e.to_cli() + "\n",
    }
}

fn parse_uuid(s: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(s).map_err(|_| {
        ApiError::new(
            400,
            super::errors::codes::BAD_REQUEST,
            format!("{s:?} is not a call UUID"),
        )
    })
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}
